/*
 * dlr.c - Kannel delivery reports: GET /dlr?id=<outbox id>&status=%d...
 * (the dlr-url the MT worker puts on every sendsms).  Every report is
 * recorded in sms_dlr; status 1 marks the outbox row delivered, 2 and 16
 * mark it failed (a later "delivered" still wins).
 */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"
#include "smsd.h"
#include "utf8.h"
#include "xmalloc.h"

static void
dlr_done(PGresult *res, void *arg)
{
	struct sreq *r = arg;

	if (!pgconn_ok(res) || PQntuples(res) != 1) {
		clog_warn(r->ctx, "recording DLR failed: %s",
		    pgconn_errmsg(res));
		sreq_unavailable(r, "query failed");
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		sreq_reply(r, 404, "unknown outbox id");
		return;
	}
	sreq_reply(r, 200, "OK");
}

/* A decimal in 1..max, else -1. */
static long long
num(const char *s, long long max)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0' || strspn(s, "0123456789") != strlen(s))
		return -1;
	v = strtoll(s, &end, 10);
	return v > max ? -1 : v;
}

void
dlr_request(struct sreq *r)
{
	const char *query = evhttp_uri_get_query(
	    evhttp_request_get_evhttp_uri(r->req));
	struct evkeyvalq q;
	const char *id, *st, *answer;
	struct pgconn *db;
	char detail[300];	/* smsc + time + SMSC answer, cut */
	const char *v[3];

	TAILQ_INIT(&q);
	if (query == NULL || evhttp_parse_query_str(query, &q) < 0) {
		sreq_reply(r, 400, "missing query");
		goto out;
	}
	id = evhttp_find_header(&q, "id");
	st = evhttp_find_header(&q, "status");
	if (num(id, 9000000000000000000LL) < 1) {
		sreq_reply(r, 400, "missing or bad id");
		goto out;
	}
	if (num(st, 255) < 0) {
		sreq_reply(r, 400, "missing or bad status");
		goto out;
	}
	answer = evhttp_find_header(&q, "answer");
	snprintf(detail, sizeof(detail), "smsc=%s ts=%s answer=%s",
	    evhttp_find_header(&q, "smsc") ? evhttp_find_header(&q, "smsc") :
	    "", evhttp_find_header(&q, "ts") ? evhttp_find_header(&q, "ts") :
	    "", answer ? answer : "");
	detail[utf8_prefix(detail, strlen(detail), sizeof(detail))] = '\0';
	if (!utf8_valid(detail, strlen(detail), NULL))
		snprintf(detail, sizeof(detail), "(not UTF-8)");
	snprintf(r->ctx + strlen(r->ctx), sizeof(r->ctx) - strlen(r->ctx),
	    " ch=dlr outbox=%s status=%s", id, st);
	if ((db = smsd_db(r->s)) == NULL) {
		sreq_unavailable(r, "not connected");
		goto out;
	}
	v[0] = id;
	v[1] = st;
	v[2] = detail;
	if (pgconn_query(db, "smsd_dlr", true, 3, v, dlr_done, r) < 0)
		sreq_unavailable(r, "queue full");
out:
	evhttp_clear_headers(&q);
}
