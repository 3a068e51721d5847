/*
 * api.c - the JSON API of aryz-apid (/health and /api/v1/...): complaint
 * list with keyset pagination, one complaint with its events, staff
 * actions (ack, done, reject) through aryz_transition(), municipality
 * search and the provider scorecard.
 */
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apid.h"
#include "log.h"
#include "utf8.h"
#include "xmalloc.h"

#define STATUS_LIST_MAX	256	/* bytes of a "{a,b,c}" status array */
#define DETAIL_MAX	2048	/* bytes of the event detail we build */

/* Every complaint status, as the schema's CHECK lists them. */
static const char *const statuses[] = {
	"received", "triage", "routed", "acknowledged", "in_progress",
	"waiting_resident", "resolved", "closed", "rejected", "duplicate",
	NULL
};

/* Staff actions: URL word -> target status. */
static const struct action {
	const char	*word;
	const char	*to;
	bool		 needs_reason;
} actions[] = {
	{ "ack",	"acknowledged",	false },
	{ "done",	"resolved",	false },
	{ "reject",	"rejected",	true },
	{ NULL, NULL, false },
};

void
api_prepare(struct pgconn *db)
{
	pgconn_prepare(db, "api_health", "SELECT 1");
	pgconn_prepare(db, "api_complaints",
	    "SELECT * FROM aryz_api_complaint"
	    " WHERE ($1::text IS NULL OR municipality_soate = $1::text)"
	    "   AND ($2::text[] IS NULL OR status = ANY ($2::text[]))"
	    "   AND ($3::bigint IS NULL OR provider_id = $3::bigint)"
	    "   AND id > $4::bigint"
	    " ORDER BY id LIMIT $5::int");
	pgconn_prepare(db, "api_complaint",
	    "SELECT v.*, (SELECT COALESCE(jsonb_agg(jsonb_build_object("
	    "  'id', e.id, 'at', aryz_iso(e.at), 'kind', e.kind,"
	    "  'from_status', e.from_status, 'to_status', e.to_status,"
	    "  'actor', CASE WHEN e.actor = c.reporter THEN 'resident'"
	    "                ELSE e.actor END,"
	    "  'detail', e.detail) ORDER BY e.id), '[]'::jsonb)"
	    "   FROM complaint_event e JOIN complaint c"
	    "     ON c.id = e.complaint_id WHERE e.complaint_id = v.id)"
	    "  AS events"
	    " FROM aryz_api_complaint v WHERE v.ticket = $1");
	/*
	 * Two steps in one statement would see the old status, so the answer
	 * reports the target status when aryz_transition() returns NULL.
	 */
	pgconn_prepare(db, "api_action",
	    "SELECT c.id, c.status AS from_status,"
	    " aryz_transition(c.id, $2, $3, $4::jsonb) AS error"
	    " FROM complaint c WHERE c.ticket = $1");
	pgconn_prepare(db, "api_municipalities",
	    "SELECT m.soate, m.kind, m.name_ru, m.name_ky, m.name_latin,"
	    " jsonb_build_object('soate', r.soate, 'name_ru', r.name_ru,"
	    "   'name_latin', r.name_latin) AS rayon,"
	    " jsonb_build_object('soate', o.soate, 'name_ru', o.name_ru,"
	    "   'name_latin', o.name_latin) AS oblast"
	    " FROM municipality m JOIN rayon r ON r.soate = m.rayon_soate"
	    " JOIN oblast o ON o.soate = r.oblast_soate"
	    " WHERE (m.valid_to IS NULL OR m.valid_to > current_date)"
	    "   AND (m.soate = $1"
	    "     OR strpos(lower(m.name_ru), lower($1)) > 0"
	    "     OR strpos(lower(m.name_latin), lower($1)) > 0"
	    "     OR strpos(lower(COALESCE(m.name_ky, '')), lower($1)) > 0"
	    "     OR EXISTS (SELECT 1 FROM municipality_alias a"
	    "        WHERE a.soate = m.soate AND strpos(a.alias, lower($1)) > 0))"
	    " ORDER BY m.name_latin, m.soate LIMIT $2::int");
	pgconn_prepare(db, "api_scorecard",
	    "SELECT * FROM aryz_provider_scorecard WHERE provider_id = $1");
}

/* ---- /health ---- */

static void
health_done(PGresult *res, void *arg)
{
	struct apreq *r = arg;

	if (pgconn_ok(res))
		reply_json(r->req, 200, json_pack("{s:s, s:s}", "status", "ok",
		    "database", "up"));
	else {
		log_warnx("health check failed: %s", pgconn_errmsg(res));
		reply_json(r->req, 503, json_pack("{s:s, s:s, s:s}", "status",
		    "unavailable", "database", "down", "error",
		    pgconn_errmsg(res)));
	}
	req_free(&r);
}

void
api_health(struct apid *a, struct evhttp_request *req)
{
	struct apreq *r = req_new(a, req, "health");

	if (pgconn_query(a->db, "api_health", true, 0, NULL, health_done,
	    r) < 0) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Retry-After", "5");
		reply_json(req, 503, json_pack("{s:s, s:s, s:s}", "status",
		    "unavailable", "database", "down", "error",
		    "no database connection"));
		req_free(&r);
	}
}

/* ---- GET /api/v1/complaints ---- */

/* limit parameter: default when absent, 400 when bad. */
static int
parse_limit(struct apid *a, struct evhttp_request *req,
    const struct evkeyvalq *q, long long *limit)
{
	const char *v = http_param(q, "limit");

	*limit = a->cfg->api_default_limit;
	if (*limit > a->cfg->api_max_limit)	/* a reload can leave it so */
		*limit = a->cfg->api_max_limit;
	if (v == NULL)
		return 0;
	if (http_parse_int(v, 1, a->cfg->api_max_limit, limit) < 0) {
		reply_error(req, 400, "limit must be an integer from 1 to %d",
		    a->cfg->api_max_limit);
		return -1;
	}
	return 0;
}

/*
 * "routed,acknowledged" -> "{routed,acknowledged}" after checking every
 * word against the known statuses.
 */
static int
parse_statuses(const char *v, char *out, size_t len)
{
	char word[32];		/* longer than any status */
	size_t o = 0;
	const char *p = v;

	if (*v == '\0')
		return -1;
	out[o++] = '{';
	while (*p) {
		size_t n = strcspn(p, ",");
		bool known = false;

		if (n == 0 || n >= sizeof(word))
			return -1;
		memcpy(word, p, n);
		word[n] = '\0';
		for (int i = 0; statuses[i]; i++)
			if (strcmp(statuses[i], word) == 0)
				known = true;
		if (!known || o + n + 2 >= len)
			return -1;
		if (o > 1)
			out[o++] = ',';
		memcpy(out + o, word, n);
		o += n;
		p += n;
		if (*p == ',' && *++p == '\0')
			return -1;
	}
	out[o++] = '}';
	out[o] = '\0';
	return 0;
}

static void
complaints_done(PGresult *res, void *arg)
{
	struct apreq *r = arg;
	json_t *list, *body;
	int n;

	if (!http_result_ok(r, res))
		goto done;
	list = http_rows_json(res);
	n = PQntuples(res);
	body = json_pack("{s:o, s:i}", "complaints", list, "count", n);
	/* A full page may have a next one: its keyset starts after our last. */
	if (n > 0 && n == r->limit)
		json_object_set_new(body, "next_after_id", json_integer(
		    strtoll(PQgetvalue(res, n - 1, PQfnumber(res, "id")), NULL,
		    10)));
	else
		json_object_set_new(body, "next_after_id", json_null());
	reply_json(r->req, 200, body);
done:
	req_free(&r);
}

void
api_complaints(struct apid *a, struct evhttp_request *req,
    const struct evkeyvalq *q)
{
	const char *muni = http_param(q, "municipality");
	const char *status = http_param(q, "status");
	const char *prov = http_param(q, "provider");
	const char *after = http_param(q, "after_id");
	char st[STATUS_LIST_MAX], limbuf[16], afterbuf[24], provbuf[24];
	const char *vals[5];
	long long limit, after_id = 0, prov_id = 0;
	struct apreq *r;

	if (muni != NULL && !http_valid_soate(muni)) {
		reply_error(req, 400, "municipality must be a 14-digit SOATE "
		    "code");
		return;
	}
	if (status != NULL && parse_statuses(status, st, sizeof(st)) < 0) {
		reply_error(req, 400, "status must be a comma-separated list "
		    "of: received, triage, routed, acknowledged, in_progress, "
		    "waiting_resident, resolved, closed, rejected, duplicate");
		return;
	}
	if (prov != NULL && http_parse_int(prov, 1, INT64_MAX, &prov_id) < 0) {
		reply_error(req, 400, "provider must be a positive integer id");
		return;
	}
	if (after != NULL && http_parse_int(after, 0, INT64_MAX,
	    &after_id) < 0) {
		reply_error(req, 400, "after_id must be a non-negative integer");
		return;
	}
	if (parse_limit(a, req, q, &limit) < 0)
		return;
	snprintf(limbuf, sizeof(limbuf), "%lld", limit);
	snprintf(afterbuf, sizeof(afterbuf), "%lld", after_id);
	snprintf(provbuf, sizeof(provbuf), "%lld", prov_id);
	vals[0] = muni;
	vals[1] = status ? st : NULL;
	vals[2] = prov ? provbuf : NULL;
	vals[3] = afterbuf;
	vals[4] = limbuf;
	r = req_new(a, req, "complaints");
	r->limit = (int)limit;
	if (http_query(r, "api_complaints", 5, vals, complaints_done) < 0)
		return;
}

/* ---- GET /api/v1/complaints/{ticket} ---- */

static void
complaint_done(PGresult *res, void *arg)
{
	struct apreq *r = arg;

	if (!http_result_ok(r, res))
		goto done;
	if (PQntuples(res) == 0)
		reply_error(r->req, 404, "no complaint with ticket %s",
		    r->ticket);
	else
		reply_json(r->req, 200, http_row_json(res, 0));
done:
	req_free(&r);
}

void
api_complaint(struct apid *a, struct evhttp_request *req, const char *ticket)
{
	struct apreq *r;
	const char *vals[1];

	if (!http_valid_ticket(ticket)) {
		reply_error(req, 400, "a ticket is 1 to %d letters, digits or "
		    "dashes", APID_TICKET_MAX);
		return;
	}
	r = req_new(a, req, "complaint");
	snprintf(r->ticket, sizeof(r->ticket), "%s", ticket);
	vals[0] = r->ticket;
	if (http_query(r, "api_complaint", 1, vals, complaint_done) < 0)
		return;
}

/* ---- POST /api/v1/complaints/{ticket}/ack|done|reject ---- */

/* Constant-time comparison, so the token does not leak by timing. */
static bool
token_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = la != lb;

	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)b[i % (lb ? lb : 1)];
	return diff == 0;
}

static bool
authorized(struct apid *a, struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Authorization");

	if (a->cfg->api_token[0] == '\0') {
		reply_error(req, 403, "staff actions are disabled: api.token "
		    "is not set");
		return false;
	}
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
		reply_error(req, 401, "staff action needs Authorization: "
		    "Bearer <token>");
		return false;
	}
	if (!token_equal(h + 7, a->cfg->api_token)) {
		reply_error(req, 401, "wrong token");
		return false;
	}
	return true;
}

/* Number of UTF-8 code points of a valid UTF-8 string. */
static size_t
u8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* An optional string member: NULL if absent; -1 (answered) if bad. */
static int
body_string(struct evhttp_request *req, json_t *body, const char *key,
    size_t max, const char **out)
{
	json_t *v = json_object_get(body, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		reply_error(req, 400, "%s must be a string", key);
		return -1;
	}
	if (u8_chars(json_string_value(v)) > max) {
		reply_error(req, 400, "%s is longer than %zu characters", key,
		    max);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

static void
action_done(PGresult *res, void *arg)
{
	struct apreq *r = arg;
	const char *err;

	if (!http_result_ok(r, res))
		goto done;
	if (PQntuples(res) == 0) {
		reply_error(r->req, 404, "no complaint with ticket %s",
		    r->ticket);
		goto done;
	}
	if (PQgetisnull(res, 0, 2)) {
		log_info("complaint %s: %s -> %s by api", r->ticket,
		    PQgetvalue(res, 0, 1), actions[r->kind].to);
		reply_json(r->req, 200, json_pack("{s:s, s:s, s:s}", "ticket",
		    r->ticket, "from_status", PQgetvalue(res, 0, 1), "status",
		    actions[r->kind].to));
		goto done;
	}
	err = PQgetvalue(res, 0, 2);
	if (strcmp(err, "not_found") == 0)
		reply_error(r->req, 404, "no complaint with ticket %s",
		    r->ticket);
	else
		reply_error(r->req, 409, "cannot %s complaint %s in status "
		    "%s: %s", actions[r->kind].word, r->ticket,
		    PQgetvalue(res, 0, 1), err);
done:
	req_free(&r);
}

void
api_action(struct apid *a, struct evhttp_request *req, const char *ticket,
    const char *action)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *reason = NULL, *note = NULL, *actor = NULL;
	json_t *body = NULL, *detail = NULL;
	/* "api:" + 64 characters of up to 4 bytes each: never cut UTF-8. */
	char actorbuf[4 + APID_ACTOR_MAX * 4 + 1], *detail_text = NULL;
	const char *vals[4];
	json_error_t jerr;
	struct apreq *r;
	int kind = -1;

	for (int i = 0; actions[i].word; i++)
		if (strcmp(actions[i].word, action) == 0)
			kind = i;
	if (kind < 0) {
		reply_error(req, 404, "no such action");
		return;
	}
	if (!http_valid_ticket(ticket)) {
		reply_error(req, 400, "a ticket is 1 to %d letters, digits or "
		    "dashes", APID_TICKET_MAX);
		return;
	}
	if (!authorized(a, req))
		return;
	if (len > 0) {
		body = json_loadb((const char *)evbuffer_pullup(in, -1), len,
		    JSON_REJECT_DUPLICATES, &jerr);
		if (body == NULL || !json_is_object(body)) {
			reply_error(req, 400, "body must be a JSON object: %s",
			    body ? "not an object" : jerr.text);
			goto fail;
		}
		if (body_string(req, body, "reason", APID_REASON_MAX,
		    &reason) < 0 ||
		    body_string(req, body, "note", APID_REASON_MAX, &note) < 0 ||
		    body_string(req, body, "actor", APID_ACTOR_MAX,
		    &actor) < 0)
			goto fail;
	}
	if (actions[kind].needs_reason && (reason == NULL || *reason == '\0')) {
		reply_error(req, 400, "reject needs a non-empty \"reason\"");
		goto fail;
	}
	detail = json_pack("{s:s}", "via", "api");
	if (reason != NULL)
		json_object_set_new(detail, "reason", json_string(reason));
	if (note != NULL)
		json_object_set_new(detail, "note", json_string(note));
	detail_text = json_dumps(detail, JSON_COMPACT);
	if (detail_text == NULL)
		fatalx("out of memory");
	snprintf(actorbuf, sizeof(actorbuf), "api%s%s", actor ? ":" : "",
	    actor ? actor : "");

	r = req_new(a, req, "action");
	r->kind = kind;
	snprintf(r->ticket, sizeof(r->ticket), "%s", ticket);
	vals[0] = r->ticket;
	vals[1] = actions[kind].to;
	vals[2] = actorbuf;
	vals[3] = detail_text;
	if (http_query(r, "api_action", 4, vals, action_done) < 0)
		goto fail;	/* answered 503 */
fail:
	free(detail_text);
	json_decref(detail);
	json_decref(body);
}

/* ---- GET /api/v1/municipalities?q= ---- */

static void
municipalities_done(PGresult *res, void *arg)
{
	struct apreq *r = arg;

	if (http_result_ok(r, res))
		reply_json(r->req, 200, json_pack("{s:o}", "municipalities",
		    http_rows_json(res)));
	req_free(&r);
}

void
api_municipalities(struct apid *a, struct evhttp_request *req,
    const struct evkeyvalq *q)
{
	const char *text = http_param(q, "q");
	const char *vals[2];
	char limbuf[16];
	long long limit;
	struct apreq *r;

	if (text == NULL || *text == '\0') {
		reply_error(req, 400, "q (part of a name, an alias or a SOATE "
		    "code) is required");
		return;
	}
	if (!utf8_valid(text, strlen(text), NULL) ||
	    u8_chars(text) > APID_QUERY_MAX) {
		reply_error(req, 400, "q must be valid UTF-8 of at most %d "
		    "characters", APID_QUERY_MAX);
		return;
	}
	if (parse_limit(a, req, q, &limit) < 0)
		return;
	snprintf(limbuf, sizeof(limbuf), "%lld", limit);
	vals[0] = text;
	vals[1] = limbuf;
	r = req_new(a, req, "municipalities");
	if (http_query(r, "api_municipalities", 2, vals,
	    municipalities_done) < 0)
		return;
}

/* ---- GET /api/v1/providers/{id}/scorecard ---- */

static void
scorecard_done(PGresult *res, void *arg)
{
	struct apreq *r = arg;

	if (!http_result_ok(r, res))
		goto done;
	if (PQntuples(res) == 0)
		reply_error(r->req, 404, "no provider %s", r->ticket);
	else
		reply_json(r->req, 200, http_row_json(res, 0));
done:
	req_free(&r);
}

void
api_scorecard(struct apid *a, struct evhttp_request *req, const char *id)
{
	long long v;
	const char *vals[1];
	struct apreq *r;

	if (http_parse_int(id, 1, INT64_MAX, &v) < 0) {
		reply_error(req, 400, "provider id must be a positive integer");
		return;
	}
	r = req_new(a, req, "scorecard");
	snprintf(r->ticket, sizeof(r->ticket), "%lld", v);
	vals[0] = r->ticket;
	if (http_query(r, "api_scorecard", 1, vals, scorecard_done) < 0)
		return;
}
