/*
 * mo.c - mobile-originated SMS: the Kannel sms-service endpoint (GET with
 * query parameters, POST with X-Kannel-* headers and the text as body) and
 * the aggregator JSON endpoint.  Decodes the text (UCS-2/UTF-16BE and other
 * charsets through iconv), validates it, and hands it to a command, the
 * multipart store, or a new complaint.  Answers 200 only after COMMIT.
 */
#include <errno.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <iconv.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "normalize.h"
#include "pgconn.h"
#include "phone.h"
#include "sms.h"
#include "smsd.h"
#include "utf8.h"
#include "xmalloc.h"

#define IDEM_MAX	200	/* longest message id we accept */

void
mo_msg_free(struct mo_msg *m)
{
	if (m == NULL)
		return;
	free(m->idem);
	free(m->receiver);
	free(m->raw);
	free(m->text);
	free(m->meta);
	free(m);
}

static void
mo_priv_free(void *p)
{
	mo_msg_free(p);
}

/*
 * Convert in[0..len) from charset to UTF-8.  Returns a NUL-terminated
 * buffer, or NULL with why filled.
 */
static char *
to_utf8(const char *charset, const char *in, size_t len, size_t *outlen,
    char *why, size_t whylen)
{
	iconv_t cd = iconv_open("UTF-8", charset);
	size_t cap = len * 2 + 16, left, inleft = len;
	char *out, *op, *ip = (char *)(uintptr_t)in;

	if (cd == (iconv_t)-1) {
		snprintf(why, whylen, "unsupported charset '%s'", charset);
		return NULL;
	}
	out = xmalloc(cap);
	op = out;
	left = cap - 1;
	while (inleft > 0) {
		if (iconv(cd, &ip, &inleft, &op, &left) == (size_t)-1) {
			if (errno == E2BIG) {
				size_t used = (size_t)(op - out);
				cap *= 2;
				out = xrealloc(out, cap);
				op = out + used;
				left = cap - used - 1;
				continue;
			}
			snprintf(why, whylen, "text is not valid %s at byte %zu",
			    charset, len - inleft);
			free(out);
			iconv_close(cd);
			return NULL;
		}
	}
	iconv_close(cd);
	*op = '\0';
	*outlen = (size_t)(op - out);
	return out;
}

/* Kannel's charset names to iconv's. */
static const char *
charset_of(const char *charset, int coding)
{
	if (charset && *charset) {
		if (strcasecmp(charset, "UCS-2") == 0 ||
		    strcasecmp(charset, "UCS2") == 0 ||
		    strcasecmp(charset, "UTF-16") == 0)
			return "UTF-16BE";
		return charset;
	}
	return coding == 2 ? "UTF-16BE" : "UTF-8";
}

/* Decode hex "0500030A0201" into bytes; -1 if not hex. */
static int
unhex(const char *s, uint8_t *out, size_t cap, size_t *n)
{
	size_t len = strlen(s);

	if (len % 2 || len / 2 > cap)
		return -1;
	for (size_t i = 0; i < len; i += 2) {
		unsigned v;
		if (sscanf(s + i, "%2x", &v) != 1 || !strchr(
		    "0123456789abcdefABCDEF", s[i]) || !strchr(
		    "0123456789abcdefABCDEF", s[i + 1]))
			return -1;
		out[i / 2] = (uint8_t)v;
	}
	*n = len / 2;
	return 0;
}

/*
 * The UDH arrives raw (get-url %u, url-decoded) or as hex (X-Kannel-UDH,
 * JSON).  A raw UDH starts with its own length byte, so try that first.
 */
static bool
parse_udh(const char *s, size_t slen, int *ref, int *total, int *seq)
{
	uint8_t buf[140];	/* a UDH never exceeds one SMS */
	size_t n;

	if (slen == 0)
		return false;
	if ((size_t)(uint8_t)s[0] + 1 == slen)
		return sms_udh_concat((const uint8_t *)s, slen, ref, total, seq);
	if (unhex(s, buf, sizeof(buf), &n) == 0)
		return sms_udh_concat(buf, n, ref, total, seq);
	return false;
}

static const char *
lang_code(enum norm_lang l)
{
	return l == NORM_LANG_KY ? "ky" : l == NORM_LANG_RU ? "ru" : NULL;
}

/* ---- rejected: store the raw message, then answer 4xx ---- */

static void
reject_done(PGresult *res, void *arg)
{
	struct sreq *r = arg;
	struct mo_msg *m = r->priv;

	if (!pgconn_ok(res)) {
		clog_warn(r->ctx, "storing rejected message failed: %s",
		    pgconn_errmsg(res));
		sreq_unavailable(r, "could not store");
		return;
	}
	sreq_reply(r, m->rcode, "%s", m->rwhy);
}

/* Store m as rejected with reason why, then answer code. */
static void
mo_reject(struct sreq *r, struct mo_msg *m, int code, const char *why)
{
	struct pgconn *db = smsd_db(r->s);
	char *hex, *safe;
	const char *v[9];
	int rc;

	/* why may quote client bytes, and the cut may split a character. */
	m->rcode = code;
	snprintf(m->rwhy, sizeof(m->rwhy), "%s", why);
	safe = safe_text(m->rwhy);
	memcpy(m->rwhy, safe, strlen(safe) + 1);	/* same length */
	free(safe);
	why = m->rwhy;
	if (db == NULL) {
		sreq_unavailable(r, "not connected");
		return;
	}
	hex = bytea_hex(m->raw, m->rawlen);
	v[0] = "sms";
	v[1] = m->idem;
	v[2] = m->sender;
	v[3] = m->receiver;
	v[4] = hex;
	v[5] = NULL;
	v[6] = m->meta;
	v[7] = "rejected";
	v[8] = why;
	rc = pgconn_query(db, "smsd_store_inbound", true, 9, v, reject_done, r);
	free(hex);
	if (rc < 0)
		sreq_unavailable(r, "queue full");
}

static struct mo_msg *
mo_msg_new(void)
{
	return xcalloc(1, sizeof(struct mo_msg));
}

/* ---- complaint and command ---- */

static void
submit_done(PGresult *res, void *arg)
{
	struct sreq *r = arg;

	if (!pgconn_ok(res) || PQntuples(res) != 1) {
		clog_warn(r->ctx, "submit failed: %s", pgconn_errmsg(res));
		sreq_unavailable(r, "query failed");
		return;
	}
	sreq_reply(r, 200, "OK ticket=%s%s", PQgetvalue(res, 0, 1),
	    strcmp(PQgetvalue(res, 0, 2), "t") == 0 ? " duplicate" : "");
}

/*
 * Add what the normalizer found to m->meta, so triage shows the
 * candidate municipalities of an ambiguous name.
 */
static void
norm_meta(struct mo_msg *m, const struct norm_result *nr)
{
	json_t *o = json_loads(m->meta ? m->meta : "{}", 0, NULL);
	json_t *n, *c;

	if (o == NULL)
		o = json_object();
	n = json_object();
	c = json_array();
	json_object_set_new(n, "category", json_string(nr->category));
	json_object_set_new(n, "municipality", json_string(nr->soate));
	for (int i = 0; i < nr->ncandidates && i < NORM_MAX_CANDIDATES; i++)
		json_array_append_new(c, json_string(nr->candidates[i]));
	json_object_set_new(n, "candidates", c);
	if (lang_code(nr->lang))
		json_object_set_new(n, "language", json_string(lang_code(nr->lang)));
	json_object_set_new(o, "normalized", n);
	free(m->meta);
	m->meta = json_dumps(o, JSON_COMPACT);
	json_decref(o);
}

static void
mo_submit(struct sreq *r, struct mo_msg *m)
{
	struct pgconn *db = smsd_db(r->s);
	struct norm_result nr;
	char *hex;
	const char *v[11];
	int rc;

	if (db == NULL || r->s->lex == NULL) {
		sreq_unavailable(r, "not connected");
		return;
	}
	normalize_text(r->s->lex, m->text, m->textlen, &nr);
	norm_meta(m, &nr);
	hex = bytea_hex(m->raw, m->rawlen);
	v[0] = "sms";
	v[1] = m->idem;
	v[2] = m->sender;
	v[3] = m->receiver;
	v[4] = hex;
	v[5] = m->text;
	v[6] = m->meta;
	v[7] = nr.soate[0] ? nr.soate : NULL;
	v[8] = nr.category[0] ? nr.category : NULL;
	v[9] = lang_code(nr.lang);
	v[10] = m->text;
	clog_debug(r->ctx, "normalized category=%s soate=%s candidates=%d",
	    nr.category, nr.soate, nr.ncandidates);
	rc = pgconn_query(db, "smsd_submit", true, 11, v, submit_done, r);
	free(hex);
	if (rc < 0)
		sreq_unavailable(r, "queue full");
}

static void
command_done(PGresult *res, void *arg)
{
	struct sreq *r = arg;

	if (!pgconn_ok(res) || PQntuples(res) != 1) {
		clog_warn(r->ctx, "command failed: %s", pgconn_errmsg(res));
		sreq_unavailable(r, "query failed");
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		/* Not applicable (nothing to rate): it is a complaint text. */
		mo_submit(r, r->priv);
		return;
	}
	sreq_reply(r, 200, "OK command%s",
	    strcmp(PQgetvalue(res, 0, 1), "t") == 0 ? " duplicate" : "");
}

static const char *
cmd_word(enum cmd_kind k)
{
	switch (k) {
	case CMD_ACK:		return "ack";
	case CMD_DONE:		return "done";
	case CMD_INFO:		return "info";
	case CMD_STATUS:	return "status";
	case CMD_RATE:		return "rate";
	case CMD_REOPEN:	return "reopen";
	default:		return NULL;
	}
}

/* A valid message: multipart, command or complaint. */
static void
mo_accept(struct sreq *r, struct mo_msg *m)
{
	struct command cmd;
	struct pgconn *db;
	char rating[16], *hex;	/* an int, 1..5 */
	const char *v[9];
	int rc;

	if (m->concat) {
		mp_part(r, m);
		return;
	}
	if (!command_parse(m->text, m->textlen, &cmd) || cmd_word(cmd.kind) ==
	    NULL) {
		mo_submit(r, m);
		return;
	}
	if ((db = smsd_db(r->s)) == NULL) {
		sreq_unavailable(r, "not connected");
		return;
	}
	snprintf(rating, sizeof(rating), "%d", cmd.rating);
	hex = bytea_hex(m->raw, m->rawlen);
	v[0] = m->idem;
	v[1] = m->sender;
	v[2] = m->receiver;
	v[3] = hex;
	v[4] = m->text;
	v[5] = m->meta;
	v[6] = cmd_word(cmd.kind);
	v[7] = cmd.ticket;
	v[8] = cmd.kind == CMD_RATE ? rating : NULL;
	rc = pgconn_query(db, "smsd_command", true, 9, v, command_done, r);
	free(hex);
	if (rc < 0)
		sreq_unavailable(r, "queue full");
}

/*
 * Common path after the fields are known: decode, validate, store the
 * rejects, accept the rest.  r->priv is m.
 */
static void
mo_validate(struct sreq *r, struct mo_msg *m, const char *charset, int coding)
{
	char why[160];	/* one-line reason */
	size_t bad, n;
	const char *cs = charset_of(charset, coding);

	if (m->rawlen > (size_t)r->s->cfg->http_max_text) {
		snprintf(why, sizeof(why), "text too long: %zu bytes, limit %d",
		    m->rawlen, r->s->cfg->http_max_text);
		mo_reject(r, m, 413, why);
		return;
	}
	if (coding == 1) {
		mo_reject(r, m, 415, "8-bit binary message (coding=1) "
		    "is not text");
		return;
	}
	if (strcasecmp(cs, "UTF-8") == 0 || strcasecmp(cs, "UTF8") == 0) {
		m->text = xmalloc(m->rawlen + 1);
		memcpy(m->text, m->raw, m->rawlen);
		m->text[m->rawlen] = '\0';
		m->textlen = m->rawlen;
	} else if ((m->text = to_utf8(cs, m->raw, m->rawlen, &m->textlen,
	    why, sizeof(why))) == NULL) {
		mo_reject(r, m, 400, why);
		return;
	}
	if (!utf8_valid(m->text, m->textlen, &bad)) {
		snprintf(why, sizeof(why), "invalid UTF-8 at byte %zu", bad);
		free(m->text);
		m->text = NULL;
		mo_reject(r, m, 400, why);
		return;
	}
	n = strspn(m->text, " \t\r\n");
	if (n == m->textlen) {
		free(m->text);
		m->text = NULL;
		mo_reject(r, m, 400, "empty text");
		return;
	}
	mo_accept(r, m);
}

static const char *
kv(struct evkeyvalq *q, const char *k)
{
	const char *v = evhttp_find_header(q, k);
	return v ? v : "";
}

/* Integer field; def when absent or not a number. */
static int
intval(const char *s, int def)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return def;
	v = strtol(s, &end, 10);
	if (*end != '\0' || v < -1 || v > 65535)
		return def;
	return (int)v;
}

/* meta JSON text: the fields as they came. */
static char *
meta_text(const char *ingress, const char *smsc, const char *time,
    int coding, const char *charset, const char *udh, size_t udhlen)
{
	json_t *o = json_object();
	char *s, *hex;

	json_object_set_new(o, "ingress", json_string(ingress));
	if (smsc && *smsc && utf8_valid(smsc, strlen(smsc), NULL))
		json_object_set_new(o, "smsc", json_string(smsc));
	if (time && *time && utf8_valid(time, strlen(time), NULL))
		json_object_set_new(o, "time", json_string(time));
	if (coding >= 0)
		json_object_set_new(o, "coding", json_integer(coding));
	if (charset && *charset && utf8_valid(charset, strlen(charset), NULL))
		json_object_set_new(o, "charset", json_string(charset));
	if (udhlen && (size_t)(uint8_t)udh[0] + 1 == udhlen) {
		hex = bytea_hex(udh, udhlen);	/* raw bytes from %u */
		json_object_set_new(o, "udh", json_string(hex + 2));
		free(hex);
	} else if (udhlen && utf8_valid(udh, udhlen, NULL))
		json_object_set_new(o, "udh", json_string(udh));
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

/* Fill the sender and idempotency key; 0, or -1 after replying 400. */
static int
mo_ids(struct sreq *r, struct mo_msg *m, const char *prefix, const char *from,
    const char *id)
{
	if (from == NULL || *from == '\0') {
		sreq_reply(r, 400, "missing sender (from)");
		return -1;
	}
	if (phone_normalize(from, m->sender, sizeof(m->sender)) < 0) {
		sreq_reply(r, 400, "invalid sender phone number");
		return -1;
	}
	if (id == NULL || *id == '\0') {
		sreq_reply(r, 400, "missing message id (id)");
		return -1;
	}
	if (strlen(id) > IDEM_MAX || !utf8_valid(id, strlen(id), NULL)) {
		sreq_reply(r, 400, "message id too long or not UTF-8");
		return -1;
	}
	m->idem = xasprintf("%s:%s", prefix, id);
	snprintf(r->ctx + strlen(r->ctx), sizeof(r->ctx) - strlen(r->ctx),
	    " ch=sms idem=%.40s", m->idem);
	return 0;
}

/*
 * The url-decoded value of key in query, with its length: a text in
 * UCS-2 or a UDH holds NUL bytes, which evhttp_parse_query_str cannot
 * return.  NULL when absent.
 */
static char *
query_raw(const char *query, const char *key, size_t *len)
{
	size_t kl = strlen(key);
	const char *p = query;

	while (p && *p) {
		size_t n = strcspn(p, "&");
		if (n > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
			char *enc = xstrndup(p + kl + 1, n - kl - 1);
			char *dec = evhttp_uridecode(enc, 1, len);
			free(enc);
			return dec;
		}
		p += n;
		if (*p == '&')
			p++;
	}
	return NULL;
}

void
mo_kannel(struct sreq *r)
{
	struct evhttp_request *req = r->req;
	struct evkeyvalq q, *hd = evhttp_request_get_input_headers(req);
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct mo_msg *m = mo_msg_new();
	const char *from, *to, *id, *smsc, *tim, *charset, *udh, *ct;
	char csbuf[40];	/* a charset name from Content-Type */
	bool post = evhttp_request_get_command(req) == EVHTTP_REQ_POST;
	char *udhraw = NULL;
	size_t udhlen;
	int coding;

	r->priv = m;
	r->priv_free = mo_priv_free;
	TAILQ_INIT(&q);
	if (query && evhttp_parse_query_str(query, &q) < 0) {
		evhttp_clear_headers(&q);
		sreq_reply(r, 400, "malformed query string");
		return;
	}
#define FIELD(qk, hk) (*kv(&q, qk) ? kv(&q, qk) : \
	(evhttp_find_header(hd, hk) ? evhttp_find_header(hd, hk) : ""))
	from = FIELD("from", "X-Kannel-From");
	to = FIELD("to", "X-Kannel-To");
	id = FIELD("id", "X-Kannel-Id");
	smsc = FIELD("smsc", "X-Kannel-SMSC");
	tim = FIELD("time", "X-Kannel-Time");
	coding = intval(FIELD("coding", "X-Kannel-Coding"), 0);
	charset = FIELD("charset", "X-Kannel-Charset");
	udh = FIELD("udh", "X-Kannel-UDH");
#undef FIELD
	if (*charset == '\0' && post &&
	    (ct = evhttp_find_header(hd, "Content-Type")) != NULL &&
	    (ct = strcasestr(ct, "charset=")) != NULL) {
		/* Kannel 1.4.5 quotes it: charset="UTF-16BE". */
		ct += strlen("charset=");
		if (*ct == '"')
			ct++;
		snprintf(csbuf, sizeof(csbuf), "%s", ct);
		csbuf[strcspn(csbuf, " ;\"")] = '\0';
		charset = csbuf;
	}
	if (mo_ids(r, m, "kannel", from, id) < 0)
		goto out;
	m->receiver = safe_text(to);
	if (post)
		m->raw = http_body(req, &m->rawlen);
	else if ((m->raw = query_raw(query, "text", &m->rawlen)) == NULL) {
		m->raw = xstrdup("");
		m->rawlen = 0;
	}
	/* The UDH holds NUL bytes (IEI 00): decode it with its length. */
	if ((udhraw = query_raw(query, "udh", &udhlen)) != NULL)
		udh = udhraw;
	else
		udhlen = strlen(udh);
	if (udhlen && parse_udh(udh, udhlen, &m->ref, &m->total, &m->seq))
		m->concat = true;
	m->meta = meta_text("kannel", smsc, tim, coding, charset,
	    udh, udhlen);
	free(udhraw);
	/* charset may point into q, which goes now. */
	if (charset != csbuf) {
		snprintf(csbuf, sizeof(csbuf), "%s", charset);
		charset = csbuf;
	}
	evhttp_clear_headers(&q);
	mo_validate(r, m, charset, coding);
	return;
out:
	evhttp_clear_headers(&q);
}

void
mo_json(struct sreq *r)
{
	size_t len, bad = 0;
	char *body = http_body(r->req, &len), *clean = NULL;
	json_error_t err;
	json_t *o, *t, *c;
	struct mo_msg *m = mo_msg_new();
	const char *from, *id, *to, *udh;
	char idbuf[32];	/* a numeric message id */
	bool badutf8 = !utf8_valid(body, len, &bad);

	r->priv = m;
	r->priv_free = mo_priv_free;
	/*
	 * jansson refuses a document with invalid UTF-8.  Parse a copy with
	 * the bad bytes replaced, only to learn sender and id, so the raw
	 * body can still be stored as rejected.
	 */
	if (badutf8) {
		clean = xmalloc(len + 1);
		for (size_t i = 0; i < len; i++)
			clean[i] = (unsigned char)body[i] < 0x80 ? body[i] : '?';
		clean[len] = '\0';
	}
	o = json_loadb(badutf8 ? clean : body, len, 0, &err);
	free(clean);
	if (o == NULL || !json_is_object(o)) {
		free(body);
		sreq_reply(r, 400, "invalid JSON: %s", o ? "not an object" :
		    err.text);
		goto out;
	}
	from = json_string_value(json_object_get(o, "from"));
	to = json_string_value(json_object_get(o, "to"));
	t = json_object_get(o, "message_id");
	id = json_string_value(t);
	if (json_is_integer(t)) {
		snprintf(idbuf, sizeof(idbuf), "%lld",
		    (long long)json_integer_value(t));
		id = idbuf;
	}
	if (mo_ids(r, m, "json", from, id) < 0) {
		free(body);
		goto out;
	}
	m->receiver = xstrdup(to ? to : "");
	if (badutf8) {
		char why[64];	/* "invalid UTF-8 at byte N" */
		snprintf(why, sizeof(why), "invalid UTF-8 at byte %zu", bad);
		m->raw = body;		/* the whole document, as it came */
		m->rawlen = len;
		m->meta = meta_text("json", NULL, NULL, -1, NULL, NULL, 0);
		mo_reject(r, m, 400, why);
		goto out;
	}
	free(body);
	t = json_object_get(o, "text");
	if (t != NULL && !json_is_string(t)) {
		m->raw = xstrdup("");
		m->meta = meta_text("json", NULL, NULL, -1, NULL, NULL, 0);
		mo_reject(r, m, 400, "text must be a string");
		goto out;
	}
	len = t ? json_string_length(t) : 0;
	m->raw = xmalloc(len + 1);
	memcpy(m->raw, t ? json_string_value(t) : "", len);
	m->raw[len] = '\0';
	m->rawlen = len;
	udh = json_string_value(json_object_get(o, "udh"));
	if (udh && parse_udh(udh, strlen(udh), &m->ref, &m->total, &m->seq))
		m->concat = true;
	if ((c = json_object_get(o, "concat")) != NULL && json_is_object(c)) {
		json_int_t ref = json_integer_value(json_object_get(c, "ref"));
		json_int_t tot = json_integer_value(json_object_get(c, "total"));
		json_int_t seq = json_integer_value(json_object_get(c, "seq"));
		if (ref < 0 || ref > 65535 || tot < 2 || tot > 255 || seq < 1 ||
		    seq > tot) {
			m->meta = meta_text("json", NULL, NULL, -1, NULL, NULL, 0);
			mo_reject(r, m, 400, "bad concat: need ref 0..65535, "
			    "total 2..255, seq 1..total");
			goto out;
		}
		m->concat = true;
		m->ref = (int)ref;
		m->total = (int)tot;
		m->seq = (int)seq;
	}
	m->meta = meta_text("json", NULL,
	    json_string_value(json_object_get(o, "time")), -1, NULL,
	    udh, udh ? strlen(udh) : 0);
	mo_validate(r, m, "UTF-8", 0);
out:
	json_decref(o);
}
