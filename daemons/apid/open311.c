/*
 * open311.c - the read side of Open311 GeoReport v2 (JSON only):
 * services.json (the service categories), requests.json (search) and
 * requests/{ticket}.json.  service_request_id is the aryz ticket; aryz
 * statuses map to open/closed by aryz_open311_status() (0050_api.sql).
 * Errors of this part use the GeoReport shape [{"code":..,"description":..}].
 * POST requests.json creates a complaint through aryz_submit_complaint()
 * (channel 'api'), idempotent on the client's Idempotency-Key.
 */
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "apid.h"
#include "log.h"
#include "phone.h"
#include "utf8.h"
#include "xmalloc.h"

#define O311_IDS_MAX	50	/* tickets in one service_request_id list */
#define O311_IDS_BUF	(O311_IDS_MAX * (APID_TICKET_MAX + 1) + 3)
#define O311_DATE_MAX	35	/* "2026-11-27T21:00:00.123456+06:00" */

/* One statement serves both the search and the single request. */
static const char requests_sql[] =
    "SELECT c.ticket AS service_request_id,"
    " aryz_open311_status(c.status) AS status,"
    " CASE c.status WHEN 'rejected' THEN 'rejected: ' || c.reject_reason"
    "   WHEN 'duplicate' THEN 'duplicate of ' || d.ticket"
    "   ELSE c.status END AS status_notes,"
    " s.name_en AS service_name, c.category_code AS service_code,"
    " c.description,"
    " CASE WHEN c.responsible = 'provider' THEN p.name"
    "   WHEN m.soate IS NOT NULL THEN m.name_latin || ' municipality'"
    " END AS agency_responsible,"
    " NULL::text AS service_notice,"
    " aryz_iso(c.created_at) AS requested_datetime,"
    " aryz_iso(c.updated_at) AS updated_datetime,"
    " (SELECT aryz_iso(min(t.due_at)) FROM sla_timer t"
    "   WHERE t.complaint_id = c.id AND t.kind = 'resolve_breach'"
    "     AND t.fired_at IS NULL AND t.cancelled_at IS NULL"
    "     AND t.due_at < 'infinity') AS expected_datetime,"
    " CASE WHEN m.soate IS NOT NULL THEN m.name_latin || ', ' ||"
    "   r.name_latin END AS address,"
    " c.municipality_soate AS address_id, NULL::text AS zipcode,"
    " c.geo_lat AS lat, c.geo_lon AS long, NULL::text AS media_url"
    " FROM complaint c"
    " LEFT JOIN complaint d ON d.id = c.duplicate_of"
    " LEFT JOIN municipality m ON m.soate = c.municipality_soate"
    " LEFT JOIN rayon r ON r.soate = m.rayon_soate"
    " LEFT JOIN provider p ON p.id = c.provider_id"
    " LEFT JOIN service_category s ON s.code = c.category_code"
    " WHERE ($1::text[] IS NULL OR c.ticket = ANY ($1::text[]))"
    "   AND ($2::text IS NULL OR c.category_code = $2)"
    "   AND ($3::text IS NULL OR aryz_open311_status(c.status) = $3)"
    /* GeoReport: without dates, the 90 days before end_date (or now). */
    "   AND ($1::text[] IS NOT NULL OR c.created_at >= COALESCE("
    "        $4::timestamptz, COALESCE($5::timestamptz, now())"
    "        - interval '90 days'))"
    "   AND ($5::timestamptz IS NULL OR c.created_at <= $5::timestamptz)"
    "   AND ($6::text IS NULL OR c.municipality_soate = $6)"
    " ORDER BY c.id DESC LIMIT $7::int";

void
open311_prepare(struct pgconn *db)
{
	pgconn_prepare(db, "o311_services",
	    "SELECT s.code AS service_code, s.name_en AS service_name,"
	    " s.name_ky || ' / ' || s.name_ru AS description,"
	    " false AS metadata, 'realtime' AS type,"
	    " COALESCE((SELECT string_agg(k.keyword, ',' ORDER BY k.keyword)"
	    "   FROM category_keyword k WHERE k.category_code = s.code), '')"
	    "   AS keywords,"
	    " 'municipal services' AS \"group\""
	    " FROM service_category s ORDER BY s.sort, s.code");
	pgconn_prepare(db, "o311_requests", requests_sql);
	pgconn_prepare(db, "o311_submit",
	    /* No row when the service code is unknown: nothing is written. */
	    "SELECT s.ticket, s.duplicate FROM service_category c,"
	    " LATERAL aryz_submit_complaint('api', $1, $2,"
	    "  '/open311/v2/requests.json', $3::bytea, $4, $5::jsonb, $6, $7,"
	    "  c.code, NULL, $4, $9::float8, $10::float8) s"
	    " WHERE c.code = $8");
}

void
open311_error(struct evhttp_request *req, int code, const char *desc)
{
	char uri[HTTP_URI_LOG];

	log_info("%d %s: %s", code, http_log_uri(req, uri, sizeof(uri)),
	    desc);
	reply_json(req, code, json_pack("[{s:i, s:s}]", "code", code,
	    "description", desc));
}

static void
services_done(PGresult *res, void *arg)
{
	struct apreq *r = arg;

	if (http_result_ok(r, res))
		reply_json(r->req, 200, http_rows_json(res));
	req_free(&r);
}

void
open311_services(struct apid *a, struct evhttp_request *req)
{
	struct apreq *r = req_new(a, req, "open311 services");

	r->open311 = true;
	if (http_query(r, "o311_services", 0, NULL, services_done) < 0)
		return;
}

static void
requests_done(PGresult *res, void *arg)
{
	struct apreq *r = arg;

	if (!http_result_ok(r, res))
		goto done;
	if (r->kind == 1 && PQntuples(res) == 0)
		open311_error(r->req, 404, "no such service_request_id");
	else
		reply_json(r->req, 200, http_rows_json(res));
done:
	req_free(&r);
}

/* A W3C/ISO 8601 date or date-time, as GeoReport uses. */
static bool
valid_date(const char *s)
{
	size_t n = strlen(s);

	if (n < 10 || n > O311_DATE_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (i < 10) {
			if ((i == 4 || i == 7) ? c != '-' :
			    !isdigit((unsigned char)c))
				return false;
		} else if (!isdigit((unsigned char)c) && !strchr("T:+-.Z ",
		    c))
			return false;
	}
	return true;
}

/* "1001,1002" -> "{1001,1002}" with every ticket checked. */
static int
parse_ids(const char *v, char *out, size_t len)
{
	char t[APID_TICKET_MAX + 1];
	size_t o = 0;
	int count = 0;

	out[o++] = '{';
	while (*v) {
		size_t n = strcspn(v, ",");

		if (n == 0 || n > APID_TICKET_MAX || ++count > O311_IDS_MAX ||
		    o + n + 2 >= len)
			return -1;
		memcpy(t, v, n);
		t[n] = '\0';
		if (!http_valid_ticket(t))
			return -1;
		if (o > 1)
			out[o++] = ',';
		memcpy(out + o, t, n);
		o += n;
		v += n;
		if (*v == ',' && *++v == '\0')
			return -1;
	}
	if (count == 0)
		return -1;
	out[o++] = '}';
	out[o] = '\0';
	return 0;
}

void
open311_requests(struct apid *a, struct evhttp_request *req,
    const struct evkeyvalq *q)
{
	const char *ids = http_param(q, "service_request_id");
	const char *code = http_param(q, "service_code");
	const char *status = http_param(q, "status");
	const char *start = http_param(q, "start_date");
	const char *end = http_param(q, "end_date");
	const char *muni = http_param(q, "municipality");
	const char *limit = http_param(q, "limit");
	char idbuf[O311_IDS_BUF], limbuf[16];
	const char *vals[7];
	long long lim = a->cfg->api_max_limit;
	struct apreq *r;

	if (ids != NULL && parse_ids(ids, idbuf, sizeof(idbuf)) < 0) {
		open311_error(req, 400, "service_request_id must be a comma-"
		    "separated list of at most 50 tickets");
		return;
	}
	if (code != NULL && (strlen(code) > 32 || strspn(code,
	    "abcdefghijklmnopqrstuvwxyz_") != strlen(code) || !*code)) {
		open311_error(req, 400, "service_code is not a service code");
		return;
	}
	if (status != NULL && strcmp(status, "open") != 0 &&
	    strcmp(status, "closed") != 0) {
		open311_error(req, 400, "status must be open or closed");
		return;
	}
	if ((start != NULL && !valid_date(start)) ||
	    (end != NULL && !valid_date(end))) {
		open311_error(req, 400, "start_date and end_date must be "
		    "ISO 8601 dates, e.g. 2026-11-27T00:00:00Z");
		return;
	}
	if (muni != NULL && !http_valid_soate(muni)) {
		open311_error(req, 400, "municipality must be a 14-digit "
		    "SOATE code");
		return;
	}
	if (limit != NULL && http_parse_int(limit, 1, a->cfg->api_max_limit,
	    &lim) < 0) {
		open311_error(req, 400, "limit is out of range");
		return;
	}
	snprintf(limbuf, sizeof(limbuf), "%lld", lim);
	vals[0] = ids ? idbuf : NULL;
	vals[1] = code;
	vals[2] = status;
	vals[3] = start;
	vals[4] = end;
	vals[5] = muni;
	vals[6] = limbuf;
	r = req_new(a, req, "open311 requests");
	r->open311 = true;
	if (http_query(r, "o311_requests", 7, vals, requests_done) < 0)
		return;
}

void
open311_request(struct apid *a, struct evhttp_request *req,
    const char *ticket)
{
	const char *vals[7] = { NULL };
	char idbuf[APID_TICKET_MAX + 3];
	struct apreq *r;

	if (!http_valid_ticket(ticket)) {
		open311_error(req, 400, "service_request_id must be a ticket");
		return;
	}
	snprintf(idbuf, sizeof(idbuf), "{%s}", ticket);
	vals[0] = idbuf;
	vals[6] = "1";
	r = req_new(a, req, "open311 request");
	r->open311 = true;
	r->kind = 1;
	if (http_query(r, "o311_requests", 7, vals, requests_done) < 0)
		return;
}

/* ---- POST /open311/v2/requests.json ---- */

static void
submit_done(PGresult *res, void *arg)
{
	struct apreq *r = arg;
	bool dup;

	if (!http_result_ok(r, res))
		goto done;
	if (PQntuples(res) == 0) {
		open311_error(r->req, 400, "unknown service_code (see "
		    "services.json)");
		goto done;
	}
	if (PQgetisnull(res, 0, 0)) {
		/* The key was used by a message that made no complaint. */
		open311_error(r->req, 409, "idempotency key already used");
		goto done;
	}
	dup = PQgetvalue(res, 0, 1)[0] == 't';
	log_info("open311 request %s %s", PQgetvalue(res, 0, 0),
	    dup ? "replayed (duplicate key)" : "accepted");
	reply_json(r->req, dup ? 200 : 201, json_pack("[{s:s, s:s, s:n}]",
	    "service_request_id", PQgetvalue(res, 0, 0), "service_notice",
	    "Registered; the ticket number identifies it.", "account_id"));
done:
	req_free(&r);
}

/* A coordinate: strict decimal in [-lim, lim]. */
static int
parse_coord(const char *s, double lim, double *out)
{
	char *end;
	double v;

	if (s == NULL || *s == '\0' || strlen(s) > 32 ||
	    strspn(s, "+-0123456789.") != strlen(s))
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !isfinite(v) || v < -lim || v > lim)
		return -1;
	*out = v;
	return 0;
}

/* Printable ASCII without spaces, 1..APID_IDEM_MAX bytes. */
static bool
valid_idem(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > APID_IDEM_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return false;
	return true;
}

/* Constant-time equality of two NUL-terminated strings. */
static bool
key_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = la != lb;

	for (size_t i = 0; i < la && lb > 0; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)b[i % lb];
	return diff == 0 && lb > 0;
}

/* body as "\x..." hex, the text form of bytea. */
static char *
bytea_hex(const unsigned char *b, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char *out = xmalloc(2 * n + 3), *p = out;

	*p++ = '\\';
	*p++ = 'x';
	for (size_t i = 0; i < n; i++) {
		*p++ = hex[b[i] >> 4];
		*p++ = hex[b[i] & 15];
	}
	*p = '\0';
	return out;
}

void
open311_submit(struct apid *a, struct evhttp_request *req)
{
	struct evkeyvalq *hdrs = evhttp_request_get_input_headers(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const char *ctype = evhttp_find_header(hdrs, "Content-Type");
	const char *key, *idem, *code, *desc, *soate, *phone, *slat, *slon;
	const char *addr;
	size_t len = evbuffer_get_length(in);
	char *body = NULL, *raw = NULL, *meta = NULL;
	char idembuf[APID_IDEM_MAX + 16], e164[PHONE_E164_MAX];
	char latbuf[40], lonbuf[40];	/* "%.17g" of a double */
	double lat = 0, lon = 0;
	bool has_geo = false;
	const char *vals[10];
	struct evkeyvalq f;
	struct apreq *r;
	json_t *m;

	TAILQ_INIT(&f);
	if (ctype == NULL || strncasecmp(ctype,
	    "application/x-www-form-urlencoded", 33) != 0) {
		open311_error(req, 400, "POST requests.json takes an "
		    "application/x-www-form-urlencoded body");
		goto done;
	}
	body = xmalloc(len + 1);
	if (evbuffer_copyout(in, body, len) != (ev_ssize_t)len)
		fatalx("evbuffer_copyout");
	body[len] = '\0';
	if (strlen(body) != len || evhttp_parse_query_str(body, &f) < 0) {
		open311_error(req, 400, "malformed form body");
		goto done;
	}
	key = evhttp_find_header(&f, "api_key");
	if (a->cfg->open311_api_key[0] == '\0') {
		open311_error(req, 403, "creating requests is disabled "
		    "(open311.api_key is not set)");
		goto done;
	}
	if (key == NULL || !key_equal(key, a->cfg->open311_api_key)) {
		open311_error(req, 403, "missing or wrong api_key");
		goto done;
	}
	if ((idem = evhttp_find_header(hdrs, "Idempotency-Key")) == NULL)
		idem = evhttp_find_header(&f, "idempotency_key");
	if (idem == NULL || !valid_idem(idem)) {
		open311_error(req, 400, "an Idempotency-Key header (or "
		    "idempotency_key field) of 1 to 128 printable characters "
		    "is required, so that a retry cannot create a second "
		    "complaint");
		goto done;
	}
	code = evhttp_find_header(&f, "service_code");
	if (code == NULL || *code == '\0' || strlen(code) > 32 ||
	    strspn(code, "abcdefghijklmnopqrstuvwxyz_") != strlen(code)) {
		open311_error(req, 400, "service_code is required (see "
		    "services.json)");
		goto done;
	}
	desc = evhttp_find_header(&f, "description");
	if (desc == NULL || *desc == '\0' ||
	    !utf8_valid(desc, strlen(desc), NULL) ||
	    utf8_count(desc, strlen(desc)) > APID_DESC_MAX) {
		open311_error(req, 400, "description is required: UTF-8 text "
		    "of at most 1000 characters");
		goto done;
	}
	soate = evhttp_find_header(&f, "address_id");
	if (soate != NULL && !http_valid_soate(soate)) {
		open311_error(req, 400, "address_id must be the 14-digit "
		    "SOATE code of the municipality");
		goto done;
	}
	slat = evhttp_find_header(&f, "lat");
	slon = evhttp_find_header(&f, "long");
	if (slat != NULL || slon != NULL) {
		if (parse_coord(slat, 90, &lat) < 0 ||
		    parse_coord(slon, 180, &lon) < 0) {
			open311_error(req, 400, "lat and long must be decimal "
			    "degrees, both given");
			goto done;
		}
		has_geo = true;
	}
	if (soate == NULL && !has_geo) {
		open311_error(req, 400, "a location is required: address_id "
		    "(SOATE) or lat and long");
		goto done;
	}
	phone = evhttp_find_header(&f, "phone");
	if (phone != NULL && *phone != '\0' &&
	    phone_normalize(phone, e164, sizeof(e164)) < 0) {
		open311_error(req, 400, "phone is not a phone number");
		goto done;
	}
	addr = evhttp_find_header(&f, "address_string");
	if (addr != NULL && (!utf8_valid(addr, strlen(addr), NULL) ||
	    utf8_count(addr, strlen(addr)) > 200)) {
		open311_error(req, 400, "address_string must be UTF-8 of at "
		    "most 200 characters");
		goto done;
	}

	snprintf(idembuf, sizeof(idembuf), "open311:%s", idem);
	raw = bytea_hex((const unsigned char *)body, len);
	m = json_pack("{s:s}", "via", "open311");
	if (addr != NULL)
		json_object_set_new(m, "address_string", json_string(addr));
	meta = json_dumps(m, JSON_COMPACT);
	json_decref(m);
	if (meta == NULL)
		fatalx("out of memory");
	snprintf(latbuf, sizeof(latbuf), "%.17g", lat);
	snprintf(lonbuf, sizeof(lonbuf), "%.17g", lon);
	vals[0] = idembuf;
	vals[1] = (phone && *phone) ? e164 : "open311";
	vals[2] = raw;
	vals[3] = desc;
	vals[4] = meta;
	vals[5] = (phone && *phone) ? e164 : NULL;
	vals[6] = soate;
	vals[7] = code;
	vals[8] = has_geo ? latbuf : NULL;
	vals[9] = has_geo ? lonbuf : NULL;
	r = req_new(a, req, "open311 submit");
	r->open311 = true;
	if (http_query(r, "o311_submit", 10, vals, submit_done) < 0)
		goto done;
done:
	evhttp_clear_headers(&f);
	free(meta);
	free(raw);
	free(body);
}
