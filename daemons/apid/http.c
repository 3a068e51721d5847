/*
 * http.c - the HTTP listener of aryz-apid: evhttp set-up, routing by method
 * and path, request objects that wait for the database, replies, and the
 * helpers every handler shares (parameter parsing, result -> JSON).
 */
#include <ctype.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "apid.h"
#include "log.h"
#include "xmalloc.h"

#define HTTP_MAX_HEADERS	8192	/* bytes of request headers */
#define HTTP_MAX_SEGS		6	/* path segments we ever route on */
#define HTTP_SEG_MAX		64	/* bytes per path segment */

/* PostgreSQL type OIDs (pg_type.h) that map to JSON types. */
#define OID_BOOL	16
#define OID_INT8	20
#define OID_INT2	21
#define OID_INT4	23
#define OID_JSON	114
#define OID_FLOAT4	700
#define OID_FLOAT8	701
#define OID_NUMERIC	1700
#define OID_JSONB	3802

/*
 * The daemon whose listener this is (one per process), so that replies,
 * which know only their request, can count answers not yet written.
 */
static struct apid *http_owner;

struct apreq *
req_new(struct apid *a, struct evhttp_request *req, const char *route)
{
	struct apreq *r = xcalloc(1, sizeof(*r));

	r->a = a;
	r->req = req;
	r->route = route;
	a->inflight++;
	return r;
}

void
req_free(struct apreq **rp)
{
	struct apreq *r = *rp;
	struct apid *a;

	if (r == NULL)
		return;
	a = r->a;
	xfree(rp);
	a->inflight--;
	http_check_drained(a);
}

/*
 * Stopping: leave the loop once every request was answered and every
 * answer was written to its socket (an answer whose client vanished is
 * never confirmed; shutdown_timeout ends that wait).
 */
void
http_check_drained(struct apid *a)
{
	if (a->stopping && a->inflight == 0 && a->unsent == 0)
		daemon_stopped(a->d);
}

static void
sent_cb(struct evhttp_request *req, void *arg)
{
	struct apid *a = arg;
	(void)req;

	a->unsent--;
	http_check_drained(a);
}

/* Query parameters whose values never reach a log line. */
static bool
secret_param(const char *name, size_t n)
{
	static const char *const names[] = { "api_key", "token",
		"access_token", "phone", NULL };

	for (int i = 0; names[i] != NULL; i++)
		if (strlen(names[i]) == n && strncasecmp(name, names[i], n) == 0)
			return true;
	return false;
}

/*
 * The request URI cut to a length fit for a log line, with the values of
 * secret parameters (an Open311 api_key sent in the URL, a phone number)
 * replaced by "*".
 */
const char *
http_log_uri(struct evhttp_request *req, char *buf, size_t len)
{
	const char *u = evhttp_request_get_uri(req), *q, *p;
	size_t o;

	if (u == NULL)
		u = "";
	if ((q = strchr(u, '?')) == NULL) {
		snprintf(buf, len, "%s", u);
		return buf;
	}
	snprintf(buf, len, "%.*s", (int)(q - u + 1), u);
	o = strlen(buf);
	for (p = q + 1; *p != '\0' && o + 1 < len; ) {
		size_t plen = strcspn(p, "&;"), nlen = strcspn(p, "=&;");

		if (nlen < plen && secret_param(p, nlen))
			snprintf(buf + o, len - o, "%.*s=*", (int)nlen, p);
		else
			snprintf(buf + o, len - o, "%.*s", (int)plen, p);
		o = strlen(buf);
		p += plen;
		if (*p != '\0') {
			if (o + 1 < len) {
				buf[o++] = *p;
				buf[o] = '\0';
			}
			p++;
		}
	}
	return buf;
}

void
reply_buffer(struct evhttp_request *req, int code, const char *ctype,
    struct evbuffer *buf)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	/*
	 * Count answers given while stopping until their last byte is out.
	 * Only then: evhttp never confirms an answer whose client vanished,
	 * so counting every answer would leak into a slow shutdown.
	 */
	if (http_owner != NULL && http_owner->stopping &&
	    evhttp_request_get_connection(req) != NULL) {
		http_owner->unsent++;
		evhttp_request_set_on_complete_cb(req, sent_cb, http_owner);
	}
	evhttp_send_reply(req, code, NULL, buf);
}

/* Takes the reference of body. */
void
reply_json(struct evhttp_request *req, int code, json_t *body)
{
	struct evbuffer *buf = evbuffer_new();
	char *text;

	if (buf == NULL)
		fatalx("out of memory");
	text = json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (text == NULL)
		fatalx("out of memory");
	evbuffer_add(buf, text, strlen(text));
	evbuffer_add(buf, "\n", 1);
	free(text);
	json_decref(body);
	reply_buffer(req, code, "application/json; charset=utf-8", buf);
	evbuffer_free(buf);
}

/*
 * An error answer {"error": "..."}; one log line: info for the client's
 * mistakes (4xx), warn for ours (5xx).
 */
void
reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
	char msg[512];		/* one human-readable reason */
	char uri[HTTP_URI_LOG];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (code >= 500)
		log_warnx("%d %s: %s", code, http_log_uri(req, uri, sizeof(uri)),
		    msg);
	else
		log_info("%d %s: %s", code, http_log_uri(req, uri, sizeof(uri)),
		    msg);
	if (code == 401)
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "WWW-Authenticate", "Bearer realm=\"aryz\"");
	if (code == 503)
		evhttp_add_header(evhttp_request_get_output_headers(req),
		    "Retry-After", "5");
	reply_json(req, code, json_pack("{s:s, s:i}", "error", msg,
	    "status", code));
}

/* An error answer in the shape of the request's API. */
static void
req_error(struct apreq *r, int code, const char *msg)
{
	if (r->open311) {
		if (code == 503)
			evhttp_add_header(evhttp_request_get_output_headers(
			    r->req), "Retry-After", "5");
		open311_error(r->req, code, msg);
	} else
		reply_error(r->req, code, "%s", msg);
}

int
http_query(struct apreq *r, const char *stmt, int nparams,
    const char *const *values, pgconn_result_cb *cb)
{
	if (pgconn_query(r->a->db, stmt, true, nparams, values, cb, r) < 0) {
		req_error(r, 503, "database unavailable, retry later");
		req_free(&r);
		return -1;
	}
	return 0;
}

/*
 * Check a query result; on failure answer the request (503 when the
 * connection broke, 400 for a data error such as a malformed date, 500
 * otherwise) and return false.  The caller frees r either way.
 */
bool
http_result_ok(struct apreq *r, PGresult *res)
{
	const char *state;
	char msg[300];		/* "invalid parameter: " + PostgreSQL's text */

	if (res == NULL) {
		req_error(r, 503, "database connection lost, retry later");
		return false;
	}
	if (pgconn_ok(res))
		return true;
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (state != NULL && strncmp(state, "22", 2) == 0) {
		const char *m = PQresultErrorField(res,
		    PG_DIAG_MESSAGE_PRIMARY);
		snprintf(msg, sizeof(msg), "invalid parameter: %s",
		    m ? m : "bad value");
		req_error(r, 400, msg);
		return false;
	}
	log_warnx("query for %s failed: %s", r->route, pgconn_errmsg(res));
	req_error(r, 500, "internal error");
	return false;
}

const char *
http_param(const struct evkeyvalq *q, const char *key)
{
	return evhttp_find_header(q, key);
}

/* Strict decimal integer in [min, max]; no atoi. */
int
http_parse_int(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0' || strlen(s) > 19)
		return -1;
	for (const char *p = s; *p; p++)
		if (!isdigit((unsigned char)*p) && !(p == s && *p == '-'))
			return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

bool
http_valid_soate(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!isdigit((unsigned char)s[n]))
			return false;
	return n == 14;
}

bool
http_valid_ticket(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && s[n] != '-')
			return false;
	return n >= 1 && n <= APID_TICKET_MAX;
}

/* One value of a result as JSON, by the column's type. */
static json_t *
value_json(PGresult *res, int row, int col)
{
	const char *v;
	json_t *j;

	if (PQgetisnull(res, row, col))
		return json_null();
	v = PQgetvalue(res, row, col);
	switch (PQftype(res, col)) {
	case OID_INT2:
	case OID_INT4:
	case OID_INT8:
		return json_integer(strtoll(v, NULL, 10));
	case OID_FLOAT4:
	case OID_FLOAT8:
	case OID_NUMERIC:
		return json_real(strtod(v, NULL));
	case OID_BOOL:
		return json_boolean(v[0] == 't');
	case OID_JSON:
	case OID_JSONB:
		j = json_loads(v, JSON_DECODE_ANY, NULL);
		return j ? j : json_null();
	default:
		return json_string(v);
	}
}

/* Row row of res as an object keyed by column name. */
json_t *
http_row_json(PGresult *res, int row)
{
	json_t *o = json_object();
	int nf = PQnfields(res);

	for (int c = 0; c < nf; c++)
		json_object_set_new(o, PQfname(res, c), value_json(res, row, c));
	return o;
}

json_t *
http_rows_json(PGresult *res)
{
	json_t *arr = json_array();
	int n = PQntuples(res);

	for (int i = 0; i < n; i++)
		json_array_append_new(arr, http_row_json(res, i));
	return arr;
}

/* Split path into at most HTTP_MAX_SEGS segments; -1 if it does not fit. */
static int
split_path(const char *path, char segs[][HTTP_SEG_MAX], int *nseg)
{
	const char *p = path;
	int n = 0;

	if (*p != '/')
		return -1;
	while (*p == '/') {
		const char *e;
		size_t len;

		p++;
		if (*p == '\0')
			break;		/* trailing slash */
		e = strchr(p, '/');
		len = e ? (size_t)(e - p) : strlen(p);
		if (n == HTTP_MAX_SEGS || len >= HTTP_SEG_MAX || len == 0)
			return -1;
		memcpy(segs[n], p, len);
		segs[n][len] = '\0';
		n++;
		p += len;
	}
	*nseg = n;
	return 0;
}

/* Strip suffix (".json") from s in place; false if s does not end so. */
static bool
strip_suffix(char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	if (n <= m || strcmp(s + n - m, suffix) != 0)
		return false;
	s[n - m] = '\0';
	return true;
}

static bool
method_is(struct evhttp_request *req, enum evhttp_cmd_type want,
    const char *allow)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);

	if (m == want || (want == EVHTTP_REQ_GET && m == EVHTTP_REQ_HEAD))
		return true;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
	    allow);
	reply_error(req, 405, "method not allowed here; use %s", allow);
	return false;
}

#define SEG(i, s)	(strcmp(segs[i], (s)) == 0)

static void route(struct apid *, struct evhttp_request *,
    char [][HTTP_SEG_MAX], int, const struct evkeyvalq *);

/*
 * Answers leave in more than one write (headers, then body); with Nagle on
 * the last segment would wait for the client's delayed ACK (~40 ms).
 */
static void
set_nodelay(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev;
	int one = 1;
	evutil_socket_t fd;

	if (evcon == NULL ||
	    (bev = evhttp_connection_get_bufferevent(evcon)) == NULL ||
	    (fd = bufferevent_getfd(bev)) < 0)
		return;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void
dispatch(struct evhttp_request *req, void *arg)
{
	struct apid *a = arg;
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *path = u ? evhttp_uri_get_path(u) : NULL;
	char segs[HTTP_MAX_SEGS][HTTP_SEG_MAX];
	struct evkeyvalq q;
	const char *qs = u ? evhttp_uri_get_query(u) : NULL;
	int n = 0;

	set_nodelay(req);
	if (a->stopping) {
		reply_error(req, 503, "shutting down");
		return;
	}
	if (path == NULL || *path == '\0')
		path = "/";
	if (split_path(path, segs, &n) < 0) {
		reply_error(req, 404, "no such resource");
		return;
	}
	TAILQ_INIT(&q);
	if (qs != NULL && evhttp_parse_query_str(qs, &q) < 0) {
		reply_error(req, 400, "malformed query string");
		goto done;
	}
	log_debug("%s %s", evhttp_request_get_command(req) ==
	    EVHTTP_REQ_POST ? "POST" : "GET", path);
	route(a, req, segs, n, &q);
done:
	evhttp_clear_headers(&q);
}

/* Call the handler of the path in segs[0..n-1]; query parameters in q. */
static void
route(struct apid *a, struct evhttp_request *req,
    char segs[][HTTP_SEG_MAX], int n, const struct evkeyvalq *q)
{
	if (n == 0) {
		if (method_is(req, EVHTTP_REQ_GET, "GET"))
			dashboard_page(a, req, q);
		return;
	}
	if (n == 1 && SEG(0, "health")) {
		if (method_is(req, EVHTTP_REQ_GET, "GET"))
			api_health(a, req);
		return;
	}
	if (n == 1 && SEG(0, "metrics")) {
		if (method_is(req, EVHTTP_REQ_GET, "GET"))
			metrics_page(a, req);
		return;
	}
	if (n >= 3 && SEG(0, "api") && SEG(1, "v1")) {
		if (n == 3 && SEG(2, "complaints")) {
			if (method_is(req, EVHTTP_REQ_GET, "GET"))
				api_complaints(a, req, q);
			return;
		}
		if (n == 4 && SEG(2, "complaints")) {
			if (method_is(req, EVHTTP_REQ_GET, "GET"))
				api_complaint(a, req, segs[3]);
			return;
		}
		if (n == 5 && SEG(2, "complaints") && (SEG(4, "ack") ||
		    SEG(4, "done") || SEG(4, "reject"))) {
			if (method_is(req, EVHTTP_REQ_POST, "POST"))
				api_action(a, req, segs[3], segs[4]);
			return;
		}
		if (n == 3 && SEG(2, "municipalities")) {
			if (method_is(req, EVHTTP_REQ_GET, "GET"))
				api_municipalities(a, req, q);
			return;
		}
		if (n == 5 && SEG(2, "providers") && SEG(4, "scorecard")) {
			if (method_is(req, EVHTTP_REQ_GET, "GET"))
				api_scorecard(a, req, segs[3]);
			return;
		}
	}
	if (n >= 3 && SEG(0, "open311") && SEG(1, "v2")) {
		if (n == 3 && SEG(2, "services.json")) {
			if (method_is(req, EVHTTP_REQ_GET, "GET"))
				open311_services(a, req);
			return;
		}
		if (n == 3 && SEG(2, "requests.json")) {
			if (evhttp_request_get_command(req) ==
			    EVHTTP_REQ_POST)
				open311_submit(a, req);
			else if (method_is(req, EVHTTP_REQ_GET, "GET, POST"))
				open311_requests(a, req, q);
			return;
		}
		if (n == 4 && SEG(2, "requests") &&
		    strip_suffix(segs[3], ".json")) {
			if (method_is(req, EVHTTP_REQ_GET, "GET"))
				open311_request(a, req, segs[3]);
			return;
		}
		open311_error(req, 404, "no such Open311 resource");
		return;
	}
	reply_error(req, 404, "no such resource");
}

int
http_start(struct apid *a)
{
	struct apid_cfg *c = a->cfg;

	http_owner = a;
	a->http = evhttp_new(a->d->base);
	if (a->http == NULL)
		return -1;
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_POST);
	evhttp_set_max_body_size(a->http, (ev_ssize_t)c->http_max_body);
	evhttp_set_max_headers_size(a->http, HTTP_MAX_HEADERS);
	evhttp_set_timeout(a->http, c->http_timeout);
	evhttp_set_gencb(a->http, dispatch, a);
	if (evhttp_bind_socket_with_handle(a->http, c->http_listen,
	    (ev_uint16_t)c->http_port) == NULL) {
		log_warn("cannot listen on %s:%d", c->http_listen,
		    c->http_port);
		return -1;
	}
	log_info("listening on http://%s:%d/", c->http_listen, c->http_port);
	return 0;
}

void
http_stop(struct apid *a)
{
	if (a->http != NULL) {
		evhttp_free(a->http);
		a->http = NULL;
	}
	http_owner = NULL;
}
