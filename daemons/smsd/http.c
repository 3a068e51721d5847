/*
 * http.c - the HTTP front of aryz-smsd: listener, routing, per-ingress
 * shared secret and client allow-list, size limits, one log line per
 * request, and the reply helpers every ingress ends with.
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "pgconn.h"
#include "smsd.h"
#include "utf8.h"
#include "xmalloc.h"

#define HTTP_MAX_HEADERS	16384	/* Kannel sends ~10 short headers */
#define RETRY_AFTER		"5"	/* seconds, for 503 */

struct http_srv {
	struct smsd		*s;
	struct evhttp		*http;
	struct evhttp_bound_socket *sock;
};

enum ingress {
	ING_KANNEL,
	ING_JSON,
	ING_USSD,
	ING_DLR,
};

char *
bytea_hex(const void *raw, size_t len)
{
	static const char hx[] = "0123456789abcdef";
	const unsigned char *p = raw;
	char *out = xmalloc(len * 2 + 3), *o = out;

	*o++ = '\\';
	*o++ = 'x';
	for (size_t i = 0; i < len; i++) {
		*o++ = hx[p[i] >> 4];
		*o++ = hx[p[i] & 15];
	}
	*o = '\0';
	return out;
}

char *
safe_text(const char *s)
{
	size_t len = strlen(s), bad;
	char *out = xstrdup(s);

	while (!utf8_valid(out, len, &bad))
		out[bad] = '?';
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			out[i] = '?';
	return out;
}

char *
http_body(struct evhttp_request *req, size_t *len)
{
	struct evbuffer *b = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(b);
	char *out = xmalloc(n + 1);

	evbuffer_copyout(b, out, n);
	out[n] = '\0';
	*len = n;
	return out;
}

struct sreq *
sreq_new(struct smsd *s, struct evhttp_request *req)
{
	struct sreq *r = xcalloc(1, sizeof(*r));

	r->s = s;
	r->req = req;
	s->inflight++;
	return r;
}

static const char *
method_name(struct evhttp_request *req)
{
	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_GET:	return "GET";
	case EVHTTP_REQ_POST:	return "POST";
	case EVHTTP_REQ_HEAD:	return "HEAD";
	default:		return "OTHER";
	}
}

/* Reply text; the log line shows logtext instead when it is not NULL. */
static void
reply_raw(struct evhttp_request *req, const char *ctx, int code,
    const char *text, const char *logtext, bool retry)
{
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	struct evbuffer *b = evbuffer_new();
	const char *path = evhttp_request_get_uri(req);
	char shortpath[64];	/* the path alone, for the log line */
	size_t n = strcspn(path ? path : "", "?");

	if (n >= sizeof(shortpath))
		n = sizeof(shortpath) - 1;
	memcpy(shortpath, path ? path : "", n);
	shortpath[n] = '\0';
	evhttp_add_header(oh, "Content-Type", "text/plain; charset=utf-8");
	if (retry)
		evhttp_add_header(oh, "Retry-After", RETRY_AFTER);
	evbuffer_add_printf(b, "%s\n", text);
	if (logtext == NULL)
		logtext = text;
	if (code >= 500)
		clog_warn(ctx, "%s %s -> %d %s", method_name(req), shortpath,
		    code, logtext);
	else
		clog_info(ctx, "%s %s -> %d %s", method_name(req), shortpath,
		    code, logtext);
	/* The standard reason phrase: the text may quote client input. */
	evhttp_send_reply(req, code, NULL, b);
	evbuffer_free(b);
}

static void sreq_release(struct sreq *);

void
sreq_reply(struct sreq *r, int code, const char *fmt, ...)
{
	char text[1024];	/* one line, or one USSD screen */
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	reply_raw(r->req, r->ctx[0] ? r->ctx : NULL, code, text, NULL,
	    code == 503);
	sreq_release(r);
}

void
sreq_reply_private(struct sreq *r, int code, const char *text,
    const char *logtext)
{
	reply_raw(r->req, r->ctx[0] ? r->ctx : NULL, code, text, logtext,
	    code == 503);
	sreq_release(r);
}

static void
sreq_release(struct sreq *r)
{
	r->s->inflight--;
	if (r->priv_free)
		r->priv_free(r->priv);
	free(r);
}

void
sreq_unavailable(struct sreq *r, const char *why)
{
	sreq_reply(r, 503, "database unavailable, retry later (%s)", why);
}

/* Is the dotted or colon address a inside one entry of the list? */
static bool
addr_allowed(const char *list, const char *addr)
{
	unsigned char a[16], n[16];
	int fa, alen;
	const char *p = list;

	if (list == NULL || list[0] == '\0')
		return true;
	if (inet_pton(AF_INET, addr, a) == 1) {
		fa = AF_INET;
		alen = 4;
	} else if (inet_pton(AF_INET6, addr, a) == 1) {
		fa = AF_INET6;
		alen = 16;
		/* v4-mapped ::ffff:a.b.c.d compares as IPv4 */
		if (memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
			memmove(a, a + 12, 4);
			fa = AF_INET;
			alen = 4;
		}
	} else
		return false;
	while (*p) {
		char ent[64];	/* an IPv6 address with /prefix fits */
		size_t len;
		char *slash;
		long bits;
		int fn;

		p += strspn(p, " ,\t");
		len = strcspn(p, " ,\t");
		if (len == 0)
			break;
		if (len >= sizeof(ent))
			len = sizeof(ent) - 1;
		memcpy(ent, p, len);
		ent[len] = '\0';
		p += len;
		slash = strchr(ent, '/');
		if (slash)
			*slash++ = '\0';
		if (inet_pton(AF_INET, ent, n) == 1)
			fn = AF_INET;
		else if (inet_pton(AF_INET6, ent, n) == 1)
			fn = AF_INET6;
		else
			continue;
		if (fn != fa)
			continue;
		bits = alen * 8;
		if (slash) {
			char *end;
			bits = strtol(slash, &end, 10);
			if (*end != '\0' || bits < 0 || bits > alen * 8)
				continue;
		}
		{
			int full = (int)bits / 8, rest = (int)bits % 8;
			if (memcmp(a, n, (size_t)full) != 0)
				continue;
			if (rest && ((a[full] ^ n[full]) &
			    (0xff << (8 - rest)) & 0xff))
				continue;
		}
		return true;
	}
	return false;
}

/* Validate an allow-list string; -1 with err filled if an entry is bad. */
int
http_check_allow(const char *list, char *err, size_t errlen)
{
	const char *p = list;

	while (p && *p) {
		char ent[64];	/* see addr_allowed */
		unsigned char n[16];
		size_t len;
		char *slash, *end;
		long bits, maxbits;

		p += strspn(p, " ,\t");
		len = strcspn(p, " ,\t");
		if (len == 0)
			break;
		if (len >= sizeof(ent)) {
			snprintf(err, errlen, "allow-list entry too long");
			return -1;
		}
		memcpy(ent, p, len);
		ent[len] = '\0';
		p += len;
		slash = strchr(ent, '/');
		if (slash)
			*slash++ = '\0';
		if (inet_pton(AF_INET, ent, n) == 1)
			maxbits = 32;
		else if (inet_pton(AF_INET6, ent, n) == 1)
			maxbits = 128;
		else {
			snprintf(err, errlen, "bad address '%s' in allow-list",
			    ent);
			return -1;
		}
		/* An entry with a bad prefix would match nothing, silently. */
		if (slash && ((bits = strtol(slash, &end, 10)) < 0 ||
		    bits > maxbits || *end != '\0' || end == slash)) {
			snprintf(err, errlen, "bad prefix '/%s' in allow-list",
			    slash);
			return -1;
		}
	}
	return 0;
}

/* Constant-time string equality, so the token leaks nothing by timing. */
static bool
token_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = la != lb;

	for (size_t i = 0; i < la; i++)
		d |= (unsigned char)a[i] ^ (unsigned char)b[i % (lb ? lb : 1)];
	return d == 0;
}

static bool
token_ok(struct evhttp_request *req, const char *want)
{
	const char *got;
	struct evkeyvalq q;
	const char *uri;
	bool ok = false;

	if (want == NULL || want[0] == '\0')
		return true;
	got = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "X-Aryz-Token");
	if (got)
		return token_equal(got, want);
	uri = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	if (uri == NULL)
		return false;
	TAILQ_INIT(&q);
	if (evhttp_parse_query_str(uri, &q) == 0 &&
	    (got = evhttp_find_header(&q, "token")) != NULL)
		ok = token_equal(got, want);
	evhttp_clear_headers(&q);
	return ok;
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct http_srv *h = arg;
	struct smsd *s = h->s;
	struct smsd_cfg *c = s->cfg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	char *peer = NULL;
	ev_uint16_t port = 0;
	const char *allow, *token;
	enum ingress ing;
	struct sreq *r;
	char ctx[64];	/* "peer=<addr>" */

	evhttp_connection_get_peer(evhttp_request_get_connection(req), &peer,
	    &port);
	snprintf(ctx, sizeof(ctx), "peer=%s", peer ? peer : "?");
	if (path == NULL)
		path = "";
	if (strcmp(path, "/health") == 0) {
		bool up = smsd_db(s) != NULL && s->ussd != NULL;
		reply_raw(req, ctx, up ? 200 : 503,
		    up ? "ok" : "database not ready", NULL, !up);
		return;
	}
	if (strcmp(path, "/sms/kannel") == 0) {
		ing = ING_KANNEL;
		allow = c->kannel_allow;
		token = c->kannel_token;
	} else if (strcmp(path, "/sms/json") == 0) {
		ing = ING_JSON;
		allow = c->json_allow;
		token = c->json_token;
	} else if (strcmp(path, "/ussd") == 0) {
		ing = ING_USSD;
		allow = c->ussd_allow;
		token = c->ussd_token;
	} else if (strcmp(path, "/dlr") == 0) {
		ing = ING_DLR;
		allow = c->dlr_allow;
		token = c->dlr_token;
	} else {
		reply_raw(req, ctx, 404, "no such endpoint", NULL, false);
		return;
	}
	if ((ing == ING_JSON || ing == ING_USSD) && cmd != EVHTTP_REQ_POST) {
		reply_raw(req, ctx, 405, "use POST", NULL, false);
		return;
	}
	if (cmd != EVHTTP_REQ_POST && cmd != EVHTTP_REQ_GET) {
		reply_raw(req, ctx, 405, "use GET or POST", NULL, false);
		return;
	}
	if (!addr_allowed(allow, peer ? peer : "")) {
		reply_raw(req, ctx, 403, "client address not allowed", NULL,
		    false);
		return;
	}
	if (!token_ok(req, token)) {
		reply_raw(req, ctx, 401, "missing or wrong token", NULL, false);
		return;
	}
	if (s->stopping) {
		reply_raw(req, ctx, 503, "shutting down", NULL, true);
		return;
	}
	r = sreq_new(s, req);
	snprintf(r->ctx, sizeof(r->ctx), "%s", ctx);
	switch (ing) {
	case ING_KANNEL:
		mo_kannel(r);
		break;
	case ING_JSON:
		mo_json(r);
		break;
	case ING_USSD:
		ussd_request(r);
		break;
	case ING_DLR:
		dlr_request(r);
		break;
	}
}

struct http_srv *
http_start(struct smsd *s)
{
	struct http_srv *h = xcalloc(1, sizeof(*h));

	h->s = s;
	h->http = evhttp_new(s->base);
	if (h->http == NULL)
		fatalx("cannot create the HTTP server");
	evhttp_set_max_body_size(h->http, s->cfg->http_max_body);
	evhttp_set_max_headers_size(h->http, HTTP_MAX_HEADERS);
	evhttp_set_timeout(h->http, s->cfg->http_timeout);
	evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD);
	evhttp_set_gencb(h->http, on_request, h);
	h->sock = evhttp_bind_socket_with_handle(h->http, s->cfg->http_listen,
	    (ev_uint16_t)s->cfg->http_port);
	if (h->sock == NULL)
		fatal("cannot listen on %s:%d", s->cfg->http_listen,
		    s->cfg->http_port);
	log_info("listening on http://%s:%d", s->cfg->http_listen,
	    s->cfg->http_port);
	return h;
}

/* Stop accepting connections; requests in flight still get answers. */
void
http_close_listener(struct http_srv *h)
{
	if (h && h->sock) {
		evhttp_del_accept_socket(h->http, h->sock);
		h->sock = NULL;
	}
}

void
http_stop(struct http_srv **hp)
{
	struct http_srv *h = *hp;

	if (h == NULL)
		return;
	evhttp_free(h->http);
	free(h);
	*hp = NULL;
}
