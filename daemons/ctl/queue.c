/*
 * queue.c - aryzctl status, dead-letters and requeue.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static int
print_result(struct ctl *c, const char *sql, int n, const char *const *v)
{
	PGresult *r = ctl_query(c, sql, n, v);
	int rows, cols;

	if (r == NULL)
		return -1;
	rows = PQntuples(r);
	cols = PQnfields(r);
	for (int j = 0; j < cols; j++)
		printf("%s%s", j ? "\t" : "", PQfname(r, j));
	putchar('\n');
	for (int i = 0; i < rows; i++) {
		for (int j = 0; j < cols; j++)
			printf("%s%s", j ? "\t" : "", PQgetvalue(r, i, j));
		putchar('\n');
	}
	PQclear(r);
	return 0;
}

int
cmd_status(struct ctl *c)
{
	return print_result(c,
	    "SELECT 'job:' || kind AS queue, count(*) AS depth, "
	    "  coalesce(max(attempts), 0) AS max_attempts, "
	    "  coalesce(extract(epoch FROM now() - min(run_at))::int, 0) AS oldest_s "
	    "FROM job GROUP BY kind "
	    "UNION ALL SELECT 'job:' || kind || ':retrying', count(*), "
	    "  max(attempts), "
	    "  coalesce(extract(epoch FROM now() - min(created_at))::int, 0) "
	    "FROM job WHERE attempts > 0 GROUP BY kind "
	    "UNION ALL SELECT 'outbox:' || channel || ':' || status, count(*), "
	    "  coalesce(max(attempts), 0), "
	    "  coalesce(extract(epoch FROM now() - min(created_at))::int, 0) "
	    "FROM outbox WHERE status IN ('pending','failed','dead') "
	    "GROUP BY channel, status "
	    "UNION ALL SELECT 'dead_letter', count(*), coalesce(max(attempts), 0), "
	    "  coalesce(extract(epoch FROM now() - min(failed_at))::int, 0) "
	    "FROM dead_letter WHERE requeued_at IS NULL "
	    "UNION ALL SELECT 'complaint:' || status, count(*), 0, 0 "
	    "FROM complaint GROUP BY status ORDER BY 1", 0, NULL);
}

int
cmd_dead_letters(struct ctl *c)
{
	return print_result(c, "SELECT id, job_id, kind, attempts, failed_at, "
	    "left(payload::text, 40) AS payload, "
	    "left(last_error, 80) AS last_error FROM dead_letter "
	    "WHERE requeued_at IS NULL ORDER BY id", 0, NULL);
}

/*
 * Put dead letters back on the queue as fresh jobs (attempts 0, due now)
 * and wake the consumers.  A dead letter whose dedup_key is already queued
 * again (e.g. aryz_route_request) counts as requeued: its work is pending.
 */
int
cmd_requeue(struct ctl *c, const char *what)
{
	const char *v[1] = { NULL };
	PGresult *r;
	char *end;
	long long id;
	int rc = 0;

	if (strcmp(what, "all") != 0) {
		errno = 0;
		id = strtoll(what, &end, 10);
		if (errno != 0 || end == what || *end != '\0' || id <= 0) {
			fprintf(stderr, "aryzctl: requeue: '%s' is not a dead "
			    "letter id (see aryzctl dead-letters) or 'all'\n",
			    what);
			return -1;
		}
		v[0] = what;
	}
	r = ctl_query(c,
	    "WITH d AS (UPDATE dead_letter SET requeued_at = now() "
	    "  WHERE requeued_at IS NULL AND ($1::bigint IS NULL OR id = $1::bigint) "
	    "  RETURNING kind, dedup_key, payload), "
	    "i AS (INSERT INTO job (kind, dedup_key, payload) "
	    "  SELECT kind, dedup_key, payload FROM d "
	    "  ON CONFLICT (dedup_key) DO NOTHING RETURNING 1), "
	    "n AS (SELECT pg_notify('aryz_job', 'requeue')) "
	    "SELECT (SELECT count(*) FROM d), (SELECT count(*) FROM i), "
	    "  (SELECT count(*) FROM n)", 1, v);
	if (r == NULL)
		return -1;
	if (v[0] != NULL && strcmp(PQgetvalue(r, 0, 0), "0") == 0) {
		fprintf(stderr, "aryzctl: requeue: no dead letter %s waiting "
		    "(already requeued, or no such id)\n", what);
		rc = -1;
	} else
		printf("requeued %s job(s)\n", PQgetvalue(r, 0, 1));
	PQclear(r);
	return rc;
}
