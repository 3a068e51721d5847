/*
 * metrics.c - GET /metrics in the Prometheus text format: complaints by
 * status, job queue depth by kind, outbox messages pending by channel,
 * unrequeued dead letters and the age of the oldest due job, all from one
 * query.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <string.h>

#include "apid.h"
#include "log.h"

/* What each metric is; rows of the query name one of these. */
static const struct metric {
	const char	*name;
	const char	*type;
	const char	*label;		/* label key, NULL for none */
	const char	*help;
} metrics[] = {
	{ "aryz_complaints", "gauge", "status", "Complaints by status." },
	{ "aryz_jobs", "gauge", "kind", "Jobs in the queue by kind." },
	{ "aryz_outbox_pending", "gauge", "channel",
	  "Outbox messages waiting to be sent, by channel." },
	{ "aryz_dead_letters", "gauge", NULL,
	  "Dead letters not yet requeued." },
	{ "aryz_oldest_job_age_seconds", "gauge", NULL,
	  "Seconds the oldest due job has been waiting (0 when none)." },
	{ NULL, NULL, NULL, NULL },
};

void
metrics_prepare(struct pgconn *db)
{
	pgconn_prepare(db, "metrics",
	    "SELECT 'aryz_complaints' AS m, v.s AS l, count(c.id)::float8 AS n"
	    " FROM unnest(ARRAY['received', 'triage', 'routed',"
	    "   'acknowledged', 'in_progress', 'waiting_resident', 'resolved',"
	    "   'closed', 'rejected', 'duplicate']) v(s)"
	    " LEFT JOIN complaint c ON c.status = v.s GROUP BY v.s"
	    " UNION ALL"
	    " SELECT 'aryz_jobs', v.k, count(j.id)::float8"
	    " FROM unnest(ARRAY['route', 'escalate', 'notify']) v(k)"
	    " LEFT JOIN job j ON j.kind = v.k GROUP BY v.k"
	    " UNION ALL"
	    " SELECT 'aryz_outbox_pending', v.ch, count(o.id)::float8"
	    " FROM unnest(ARRAY['sms', 'mqtt']) v(ch)"
	    " LEFT JOIN outbox o ON o.channel = v.ch AND o.status = 'pending'"
	    " GROUP BY v.ch"
	    " UNION ALL"
	    " SELECT 'aryz_dead_letters', NULL, count(*)::float8"
	    " FROM dead_letter WHERE requeued_at IS NULL"
	    " UNION ALL"
	    " SELECT 'aryz_oldest_job_age_seconds', NULL, COALESCE(round("
	    "   extract(epoch FROM now() - min(run_at)), 3), 0)::float8"
	    " FROM job WHERE run_at <= now()"
	    " ORDER BY 1, 2");
}

static void
metrics_done(PGresult *res, void *arg)
{
	struct apreq *r = arg;
	struct evbuffer *out;
	int n;

	if (!http_result_ok(r, res))
		goto done;
	if ((out = evbuffer_new()) == NULL)
		fatalx("out of memory");
	n = PQntuples(res);
	for (const struct metric *m = metrics; m->name; m++) {
		evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n",
		    m->name, m->help, m->name, m->type);
		for (int i = 0; i < n; i++) {
			if (strcmp(PQgetvalue(res, i, 0), m->name) != 0)
				continue;
			/* Label values are fixed words of the query. */
			if (m->label != NULL && !PQgetisnull(res, i, 1))
				evbuffer_add_printf(out, "%s{%s=\"%s\"} %s\n",
				    m->name, m->label, PQgetvalue(res, i, 1),
				    PQgetvalue(res, i, 2));
			else
				evbuffer_add_printf(out, "%s %s\n", m->name,
				    PQgetvalue(res, i, 2));
		}
	}
	evbuffer_add_printf(out, "# HELP aryz_apid_requests_inflight "
	    "HTTP requests waiting for the database.\n"
	    "# TYPE aryz_apid_requests_inflight gauge\n"
	    "aryz_apid_requests_inflight %d\n", r->a->inflight);
	reply_buffer(r->req, 200, "text/plain; version=0.0.4; charset=utf-8",
	    out);
	evbuffer_free(out);
done:
	req_free(&r);
}

void
metrics_page(struct apid *a, struct evhttp_request *req)
{
	struct apreq *r = req_new(a, req, "metrics");

	if (http_query(r, "metrics", 0, NULL, metrics_done) < 0)
		return;
}
