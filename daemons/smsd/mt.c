/*
 * mt.c - the SMS outbox worker: claims pending outbox rows of channel
 * 'sms' (lease in locked_until, FOR UPDATE SKIP LOCKED, so several smsd
 * instances share the work), sends each through Kannel's /cgi-bin/sendsms
 * with libevent's HTTP client, and records the outcome: 'sent' on 2xx,
 * otherwise a retry after an exponential backoff with jitter, 'dead'
 * after mt.max_attempts.  Woken by LISTEN aryz_outbox, with a poll timer
 * as the fallback.  A crash while sending leaves the lease to expire: the
 * message is sent again (at least once).
 *
 * Encoding: coding=0 only when every character is in the GSM 03.38
 * default alphabet (or its extension table), else coding=2 with
 * charset=UTF-8 (Kannel turns Cyrillic sent as coding=0 into '?').  A
 * text longer than one SMS is sent as one sendsms request and Kannel
 * splits it into a concatenated SMS with UDH (sendsms-user
 * "concatenation = true", "max-messages" >= 3; see docs/kannel.md), so one
 * outbox row stays one message, one DLR and one retry unit.
 */
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"
#include "sms.h"
#include "smsd.h"
#include "xmalloc.h"

struct mt {
	struct smsd		*s;
	struct pgconn		*db;
	struct evhttp_uri	*uri;
	struct evdns_base	*dns;		/* resolves mt.url's host without
						 * blocking the event loop */
	struct event		*poll;
	bool			 claiming;	/* claim query in flight */
	bool			 again;		/* notified while claiming */
	bool			 stopping;
	int			 sending;	/* sendsms requests + updates */
	/* Items whose sendsms request is in flight, freed by mt_free()
	 * when the drain timed out before Kannel answered. */
	LIST_HEAD(, mt_item)	 wire;
};

struct mt_item {
	struct mt	*mt;
	struct evhttp_connection *evcon;	/* one per send, freed after */
	LIST_ENTRY(mt_item)	 link;		/* in mt->wire while evcon */
	struct event	*deadline;	/* mt.timeout for the whole request */
	char		 id[24];	/* outbox id */
	char		*to, *body;
	int		 attempt;
};

static void mt_claim(struct mt *m);

static void
item_free(struct mt_item *it)
{
	if (it->deadline)
		event_free(it->deadline);
	free(it->to);
	free(it->body);
	free(it);
}

static void
update_done(PGresult *res, void *arg)
{
	struct mt_item *it = arg;
	struct mt *m = it->mt;

	if (!pgconn_ok(res))
		log_warnx("outbox %s: recording the result failed (%s); the "
		    "lease will expire and it is sent again", it->id,
		    pgconn_errmsg(res));
	else if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0),
	    "dead") == 0)
		log_warnx("outbox %s: dead after %d attempts", it->id,
		    it->attempt);
	m->sending--;
	item_free(it);
	if (m->sending == 0 && !m->claiming)
		mt_claim(m);	/* more may be due */
}

static void
record(struct mt_item *it, bool ok, const char *what)
{
	struct mt *m = it->mt;
	struct smsd_cfg *c = m->s->cfg;
	char max[16], bmin[16], bmax[16];	/* ints */
	const char *v[5];
	int rc;

	if (ok) {
		log_info("outbox %s: sent to %.6s... (%s)", it->id, it->to,
		    what);
		v[0] = it->id;
		v[1] = what;
		rc = pgconn_query(m->db, "smsd_sent", true, 2, v, update_done,
		    it);
	} else {
		log_warnx("outbox %s: attempt %d failed: %s", it->id,
		    it->attempt, what);
		snprintf(max, sizeof(max), "%d", c->mt_max_attempts);
		snprintf(bmin, sizeof(bmin), "%d", c->mt_backoff_min);
		snprintf(bmax, sizeof(bmax), "%d", c->mt_backoff_max);
		v[0] = it->id;
		v[1] = what;
		v[2] = max;
		v[3] = bmin;
		v[4] = bmax;
		rc = pgconn_query(m->db, "smsd_failed", true, 5, v,
		    update_done, it);
	}
	if (rc < 0) {
		log_warnx("outbox %s: database away, result not recorded; the "
		    "lease will expire", it->id);
		m->sending--;
		item_free(it);
	}
}

/* libevent must not free a connection inside its own callback. */
static void
evcon_free_later(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	evhttp_connection_free(arg);
}

static void
sent_cb(struct evhttp_request *req, void *arg)
{
	struct mt_item *it = arg;
	struct timeval now = { 0, 0 };
	int code = req ? evhttp_request_get_response_code(req) : 0;
	char line[128];	/* Kannel's answer, first line */
	size_t n = 0;

	line[0] = '\0';
	if (req) {
		struct evbuffer *b = evhttp_request_get_input_buffer(req);
		n = evbuffer_get_length(b);
		if (n >= sizeof(line))
			n = sizeof(line) - 1;
		evbuffer_copyout(b, line, n);
		line[n] = '\0';
		line[strcspn(line, "\r\n")] = '\0';
	}
	if (event_base_once(it->mt->s->base, -1, EV_TIMEOUT, evcon_free_later,
	    it->evcon, &now) < 0)
		log_warnx("cannot schedule freeing an HTTP connection");
	it->evcon = NULL;
	LIST_REMOVE(it, link);
	event_del(it->deadline);
	if (code == 200 || code == 202)
		record(it, true, line[0] ? line : "accepted");
	else {
		char why[192];	/* "HTTP 503: ..." */
		if (code == 0)
			snprintf(why, sizeof(why), "no answer from %s "
			    "(refused or timed out)", "Kannel");
		else
			snprintf(why, sizeof(why), "HTTP %d: %s", code, line);
		record(it, false, why);
	}
}

/*
 * libevent's HTTP timeout is per read or write, so an answer trickling in
 * would hold the row past its lease (and another claim would send it
 * again).  The whole request gets mt.timeout; then the connection is
 * freed (which frees the request without calling sent_cb) and the attempt
 * counts as failed.
 */
static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct mt_item *it = arg;
	char why[96];	/* the reason, for last_error */
	(void)fd;
	(void)what;

	LIST_REMOVE(it, link);
	evhttp_connection_free(it->evcon);
	it->evcon = NULL;
	snprintf(why, sizeof(why), "no complete answer from Kannel within "
	    "mt.timeout (%d s)", it->mt->s->cfg->mt_timeout);
	record(it, false, why);
}

static void
qadd(struct evbuffer *b, const char *k, const char *v)
{
	char *e = evhttp_encode_uri(v);

	evbuffer_add_printf(b, "%s%s=%s", evbuffer_get_length(b) ? "&" : "",
	    k, e);
	free(e);
}

static void
send_item(struct mt *m, struct mt_item *it)
{
	struct smsd_cfg *c = m->s->cfg;
	const char *host = evhttp_uri_get_host(m->uri);
	int port = evhttp_uri_get_port(m->uri);
	struct evhttp_connection *evcon;
	struct evhttp_request *req;
	struct evbuffer *q = evbuffer_new();
	char mask[16], *dlr, *path;	/* mask: an int */
	bool gsm = sms_gsm7_only(it->body);
	int parts = sms_parts(it->body, NULL);
	struct timeval tmo = { c->mt_timeout, 0 };

	qadd(q, "username", c->mt_username);
	qadd(q, "password", c->mt_password);
	qadd(q, "from", c->mt_from);
	qadd(q, "to", it->to);
	qadd(q, "text", it->body);
	if (gsm)
		qadd(q, "coding", "0");
	else {
		qadd(q, "coding", "2");
		qadd(q, "charset", "UTF-8");
	}
	if (c->mt_smsc[0])
		qadd(q, "smsc", c->mt_smsc);
	if (c->mt_dlr_mask > 0 && c->mt_dlr_url[0]) {
		snprintf(mask, sizeof(mask), "%d", c->mt_dlr_mask);
		qadd(q, "dlr-mask", mask);
		dlr = xasprintf("%s%sid=%s&status=%%d&smsc=%%i&ts=%%T&answer=%%A%s%s",
		    c->mt_dlr_url, strchr(c->mt_dlr_url, '?') ? "&" : "?",
		    it->id, c->dlr_token[0] ? "&token=" : "", c->dlr_token);
		qadd(q, "dlr-url", dlr);
		free(dlr);
	}
	evbuffer_add(q, "", 1);
	path = xasprintf("%s?%s", evhttp_uri_get_path(m->uri) &&
	    *evhttp_uri_get_path(m->uri) ? evhttp_uri_get_path(m->uri) : "/",
	    (const char *)evbuffer_pullup(q, -1));
	evbuffer_free(q);

	m->sending++;
	evcon = evhttp_connection_base_new(m->s->base, m->dns, host,
	    (ev_uint16_t)(port > 0 ? port : 80));
	evhttp_connection_set_timeout(evcon, c->mt_timeout);
	evhttp_connection_set_retries(evcon, 0);
	it->evcon = evcon;
	LIST_INSERT_HEAD(&m->wire, it, link);
	it->deadline = evtimer_new(m->s->base, on_deadline, it);
	evtimer_add(it->deadline, &tmo);
	req = evhttp_request_new(sent_cb, it);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host",
	    host);
	if (parts > c->mt_max_parts)
		log_warnx("outbox %s: text needs %d SMS, more than mt.max_parts "
		    "%d: check Kannel's max-messages", it->id, parts,
		    c->mt_max_parts);
	log_debug("outbox %s: sendsms coding=%d parts=%d", it->id, gsm ? 0 : 2,
	    parts);
	if (evhttp_make_request(evcon, req, EVHTTP_REQ_GET, path) < 0) {
		/* req was freed by libevent; the connection is ours. */
		evhttp_connection_free(evcon);
		it->evcon = NULL;
		LIST_REMOVE(it, link);
		event_del(it->deadline);
		record(it, false, "cannot start the sendsms request");
	}
	free(path);
}

static void
claimed(PGresult *res, void *arg)
{
	struct mt *m = arg;
	int n;

	m->claiming = false;
	if (!pgconn_ok(res)) {
		if (res)
			log_warnx("outbox claim failed: %s", pgconn_errmsg(res));
		return;
	}
	n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		struct mt_item *it = xcalloc(1, sizeof(*it));
		char *end;
		it->mt = m;
		snprintf(it->id, sizeof(it->id), "%s", PQgetvalue(res, i, 0));
		it->to = xstrdup(PQgetvalue(res, i, 1));
		it->body = xstrdup(PQgetvalue(res, i, 2));
		it->attempt = (int)strtol(PQgetvalue(res, i, 3), &end, 10);
		send_item(m, it);
	}
	if (m->again && n == 0) {
		m->again = false;
		mt_claim(m);
	}
}

static void
mt_claim(struct mt *m)
{
	struct smsd_cfg *c = m->s->cfg;
	char batch[16], lease[16];	/* ints */
	const char *v[2];

	if (m->stopping)
		return;
	if (m->claiming || m->sending > 0) {
		m->again = true;
		return;
	}
	snprintf(batch, sizeof(batch), "%d", c->mt_batch);
	snprintf(lease, sizeof(lease), "%d", c->mt_lease);
	v[0] = batch;
	v[1] = lease;
	m->again = false;
	/* Set before the call: pgconn_query() runs claimed() at once when
	 * sending finds the connection broken, and that clears the flag. */
	m->claiming = true;
	if (pgconn_query(m->db, "smsd_claim", true, 2, v, claimed, m) < 0)
		m->claiming = false;
}

static void
on_poll(evutil_socket_t fd, short what, void *arg)
{
	struct mt *m = arg;
	struct timeval tv = { m->s->cfg->mt_poll, 0 };
	(void)fd;
	(void)what;

	mt_claim(m);
	evtimer_add(m->poll, &tv);
}

static void
on_notify(const char *channel, const char *payload, void *arg)
{
	(void)channel;
	if (payload == NULL || strcmp(payload, "sms") == 0)
		mt_claim(arg);
}

static void
on_connect(struct pgconn *pc, void *arg)
{
	(void)pc;
	mt_claim(arg);	/* drain what queued while we were away */
}

struct mt *
mt_new(struct smsd *s)
{
	struct mt *m = xcalloc(1, sizeof(*m));
	struct timeval tv = { s->cfg->mt_poll, 0 };

	m->s = s;
	LIST_INIT(&m->wire);
	m->uri = evhttp_uri_parse(s->cfg->mt_url);
	if (m->uri == NULL || evhttp_uri_get_host(m->uri) == NULL)
		fatalx("mt.url '%s' is not a URL", s->cfg->mt_url);
	/* NULL (no usable resolv.conf) falls back to blocking look-ups. */
	m->dns = evdns_base_new(s->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (m->dns == NULL)
		log_warnx("no asynchronous DNS resolver; a host name in mt.url "
		    "is looked up with a blocking call");
	m->db = pgconn_new(s->base, s->cfg->common.db_conninfo, "mt");
	pgconn_prepare(m->db, "smsd_claim", "SELECT id, recipient, body, "
	    "attempts FROM aryz_sms_claim($1::int, $2::int)");
	pgconn_prepare(m->db, "smsd_sent",
	    "SELECT 'sent' FROM aryz_sms_sent($1::bigint, $2)");
	pgconn_prepare(m->db, "smsd_failed", "SELECT aryz_sms_failed("
	    "$1::bigint, $2, $3::int, $4::int, $5::int)");
	pgconn_listen(m->db, "aryz_outbox");
	pgconn_set_callbacks(m->db, on_connect, NULL, on_notify, m);
	pgconn_start(m->db);
	m->poll = evtimer_new(s->base, on_poll, m);
	evtimer_add(m->poll, &tv);
	log_info("MT worker sending through %s", s->cfg->mt_url);
	return m;
}

int
mt_busy(const struct mt *m)
{
	return m->sending + (m->claiming ? 1 : 0);
}

void
mt_stop(struct mt *m)
{
	m->stopping = true;
	event_del(m->poll);
}

void
mt_free(struct mt **mp)
{
	struct mt *m = *mp;
	struct mt_item *it;

	if (m == NULL)
		return;
	event_free(m->poll);
	/* Kannel never answered (drain timed out): the lease expires and
	 * the message is sent again.  Freeing the connection frees its
	 * request without calling sent_cb. */
	while ((it = LIST_FIRST(&m->wire)) != NULL) {
		LIST_REMOVE(it, link);
		log_warnx("outbox %s: stopped before Kannel answered; it is "
		    "sent again after its lease", it->id);
		evhttp_connection_free(it->evcon);
		m->sending--;
		item_free(it);
	}
	pgconn_free(&m->db);
	if (m->dns != NULL)
		evdns_base_free(m->dns, 0);
	evhttp_uri_free(m->uri);
	free(m);
	*mp = NULL;
}
