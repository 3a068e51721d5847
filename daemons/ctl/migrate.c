/*
 * migrate.c - apply sql/migrations/NNNN_name.sql in order, once each.
 *
 * Each file runs in its own transaction together with its row in
 * schema_migration; an advisory lock serialises concurrent migrators.  A
 * file whose checksum changed after it was applied is reported, never
 * re-run.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "xmalloc.h"

#define MIGRATE_LOCK "7263"	/* advisory lock key for migrations */

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Apply one file unless already recorded.  1 applied, 0 skipped, -1 error. */
static int
apply(struct ctl *c, const char *dir, const char *name)
{
	char *path = xasprintf("%s/%s", dir, name);
	char *sql = ctl_slurp(path);
	const char *v[2];
	PGresult *r;
	int rc = -1;

	if (sql == NULL)
		goto out;
	v[0] = name;
	v[1] = sql;
	r = ctl_query(c, "SELECT md5($2) = checksum FROM schema_migration "
	    "WHERE version = $1", 2, v);
	if (r == NULL)
		goto out;
	if (PQntuples(r) == 1) {
		if (strcmp(PQgetvalue(r, 0, 0), "t") != 0)
			fprintf(stderr, "aryzctl: warning: %s changed after it "
			    "was applied; not re-applying\n", name);
		PQclear(r);
		rc = 0;
		goto out;
	}
	PQclear(r);
	if (ctl_exec(c, "BEGIN") < 0)
		goto out;
	if (ctl_exec(c, sql) < 0) {
		fprintf(stderr, "aryzctl: migration %s failed\n", name);
		(void)ctl_exec(c, "ROLLBACK");
		goto out;
	}
	r = ctl_query(c, "INSERT INTO schema_migration (version, checksum) "
	    "VALUES ($1, md5($2))", 2, v);
	if (r == NULL || ctl_exec(c, "COMMIT") < 0) {
		PQclear(r);
		(void)ctl_exec(c, "ROLLBACK");
		goto out;
	}
	PQclear(r);
	printf("applied %s\n", name);
	rc = 1;
out:
	free(sql);
	free(path);
	return rc;
}

int
cmd_migrate(struct ctl *c)
{
	char *dir = xasprintf("%s/migrations", c->sqldir);
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	DIR *d;
	int rc = -1, applied = 0;

	if ((d = opendir(dir)) == NULL) {
		fprintf(stderr, "aryzctl: cannot open %s\n", dir);
		free(dir);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len > 4 && strcmp(de->d_name + len - 4, ".sql") == 0) {
			names = xrealloc(names, (n + 1) * sizeof(*names));
			names[n++] = xstrdup(de->d_name);
		}
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_names);

	/*
	 * Lock first: two migrators on a fresh database would otherwise both
	 * create schema_migration, and the second fail on the catalog's
	 * unique index (IF NOT EXISTS does not see an uncommitted table).
	 */
	if (ctl_exec(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")") < 0)
		goto out;
	if (ctl_exec(c, "CREATE TABLE IF NOT EXISTS schema_migration ("
	    "version text PRIMARY KEY, checksum text NOT NULL, "
	    "applied_at timestamptz NOT NULL DEFAULT now())") < 0)
		goto unlock;
	for (size_t i = 0; i < n; i++) {
		int r = apply(c, dir, names[i]);
		if (r < 0)
			goto unlock;
		applied += r;
	}
	printf("schema up to date (%d applied, %zu total)\n", applied, n);
	rc = 0;
unlock:
	(void)ctl_exec(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")");
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(dir);
	return rc;
}
