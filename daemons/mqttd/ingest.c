/*
 * ingest.c - the subscriber: complaints, sensor events and provider
 * commands in, receipts out, nothing acknowledged before its COMMIT.
 *
 * libmosquitto queues the PUBACK of a QoS 1 message before on_message
 * runs.  The connection is in threaded mode and mqconn writes only while
 * not held, so:
 *
 *   ING_COLLECT  reading.  The first message of a batch holds all writes
 *                (its PUBACK stays queued) and arms the batch timer.  The
 *                batch closes when it is full, when the socket has no more
 *                input for now, or when the timer fires.
 *   ING_FLUSH    the batch went to aryz_mqtt_ingest() as ONE
 *                statement; reading is paused, so no PUBACK of an
 *                uncommitted message can join the queue.  When the result
 *                arrives the batch is committed: receipts are queued on the
 *                same connection, writes are released and flushed (PUBACKs
 *                and receipts leave), reading resumes -> ING_COLLECT.
 *   ING_DOWN     no broker connection (or no database).
 *
 * If the statement fails or its outcome is unknown, the broker connection
 * is dropped without writing: the held PUBACKs die with it and the broker
 * redelivers the batch to our persistent session (clean_session = false,
 * fixed client id) on reconnect; aryz_mqtt_ingest() is idempotent on
 * (client id, msg_id), so a batch that did commit becomes "duplicate".
 * The broker connection is only up while the database is: when the
 * database goes away the broker keeps the messages for us.
 */
#include <event2/event.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lexicon_pg.h"
#include "log.h"
#include "mqconn.h"
#include "mqttd.h"
#include "pgconn.h"
#include "xmalloc.h"

enum ing_state {
	ING_DOWN,		/* no broker connection: batch empty */
	ING_COLLECT,		/* reading; writes held iff batch non-empty */
	ING_FLUSH,		/* batch in the database; reads paused, held */
};

struct inmsg {
	json_t	*elem;		/* batch element for aryz_mqtt_ingest() */
	char	*resp_topic;	/* where the receipt goes */
	char	*msg_id;	/* the client's, or NULL */
};

/* One batch on its way to the database. */
struct ibatch {
	struct ingest	*in;
	unsigned	 gen;		/* broker connection it came on */
	struct inmsg	*m;
	int		 n;
};

struct ingest {
	struct event_base	*base;
	const struct mqttd_cfg	*cfg;
	struct pgconn		*db;
	struct mqconn		*mq;
	bool			 mq_running;
	enum ing_state		 state;
	unsigned		 gen;		/* ++ per broker connection */
	struct inmsg		*m;		/* the batch being collected */
	int			 n, cap;
	struct event		*timer;		/* in_batch_ms after 1st msg */
	struct event		*kick;		/* flush now */
	struct payload_limits	 lim;
	struct lexicon		*lex;		/* NULL until loaded */
	bool			 lex_loading;	/* a lexicon_pg_load() in flight */
	bool			 stopping, freeing;
	unsigned long		 naccepted, nduplicate, nrejected, ncommands;
	unsigned long		 nbatches;
};

static void
ing_set_state(struct ingest *in, enum ing_state st)
{
	static const char *const names[] = { "down", "collect", "flush" };

	log_debug("ingest: %s -> %s", names[in->state], names[st]);
	in->state = st;
}

static void
inmsg_free(struct inmsg *m, int n)
{
	for (int i = 0; i < n; i++) {
		json_decref(m[i].elem);
		free(m[i].resp_topic);
		free(m[i].msg_id);
	}
	free(m);
}

/* Forget the batch being collected (the broker will redeliver it). */
static void
ing_discard(struct ingest *in)
{
	if (in->n > 0)
		log_info("ingest: %d unacknowledged messages left to the "
		    "broker for redelivery", in->n);
	inmsg_free(in->m, in->n);
	in->m = NULL;
	in->n = in->cap = 0;
	event_del(in->timer);
}

static void
ing_receipt(struct ingest *in, struct inmsg *m, const char *outcome,
    const char *ticket, const char *reason, const char *detail)
{
	json_t *r = json_object(), *d;
	char *text;
	int mid;
	char who[80];	/* the sender for the log, up to 64 code points */
	char ctx[200];	/* "client=... msg_id=..." with two bounded ids */
	const char *sender = json_string_value(json_object_get(m->elem,
	    "sender"));

	json_object_set_new(r, "msg_id", m->msg_id ? json_string(m->msg_id) :
	    json_null());
	json_object_set_new(r, "status", json_string(outcome));
	if (ticket != NULL && ticket[0] != '\0')
		json_object_set_new(r, "ticket", json_string(ticket));
	if (reason != NULL && reason[0] != '\0')
		json_object_set_new(r, "reason", json_string(reason));
	if (detail != NULL && detail[0] != '\0' &&
	    (d = json_loads(detail, 0, NULL)) != NULL)
		json_object_set_new(r, "detail", d);
	/*
	 * On the connection the message came in on, queued behind the held
	 * PUBACKs: both leave together once the hold is released.  Best
	 * effort: if the connection is lost first, the broker redelivers
	 * the message and the sender gets a "duplicate" receipt instead; a
	 * sender without a receipt resends with the same msg_id.  QoS 0 on
	 * purpose: libmosquitto's mosquitto_loop_read() reads as many packets
	 * per call as it has QoS > 0 messages of its own in flight, so QoS 1
	 * receipts would let one read overshoot in_batch_size without bound.
	 */
	if ((text = json_dumps(r, JSON_COMPACT)) != NULL &&
	    mqconn_publish(in->mq, m->resp_topic, text, strlen(text), 0,
	    &mid) != 0)
		log_debug("receipt to %s dropped: not connected",
		    m->resp_topic);
	free(text);
	json_decref(r);

	/* An unusable client id may hold anything: keep the line logfmt. */
	snprintf(who, sizeof(who), "%s", sender ? sender : "?");
	for (char *c = who; *c; c++)
		if ((unsigned char)*c <= ' ' || *c == '"' || *c == '\\' ||
		    *c == '=' || (unsigned char)*c >= 0x7f)
			*c = '?';
	snprintf(ctx, sizeof(ctx), "client=%s msg_id=%s", who,
	    m->msg_id ? m->msg_id : "-");
	if (strcmp(outcome, "rejected") == 0)
		clog_info(ctx, "rejected: %s", reason ? reason : "?");
	else
		clog_debug(ctx, "%s ticket=%s", outcome,
		    ticket && ticket[0] ? ticket : "-");
}

static void
ing_result(PGresult *res, void *arg)
{
	struct ibatch *b = arg;
	struct ingest *in = b->in;
	int rows;

	if (in->freeing || b->gen != in->gen || in->state != ING_FLUSH) {
		/* Its connection is gone; the broker redelivers. */
		goto done;
	}
	if (res == NULL || !pgconn_ok(res)) {
		log_warnx("ingest: batch of %d not stored (%s); dropping the "
		    "broker connection so that it is redelivered", b->n,
		    pgconn_errmsg(res));
		mqconn_drop(in->mq, "batch not stored");
		goto done;
	}
	/* Committed: tell the senders, then let the PUBACKs go. */
	rows = PQntuples(res);
	for (int i = 0; i < rows; i++) {
		long idx = strtol(PQgetvalue(res, i, 0), NULL, 10);
		const char *outcome = PQgetvalue(res, i, 1);

		if (idx < 0 || idx >= b->n)
			continue;
		if (strcmp(outcome, "accepted") == 0)
			in->naccepted++;
		else if (strcmp(outcome, "duplicate") == 0)
			in->nduplicate++;
		else if (strcmp(outcome, "rejected") == 0)
			in->nrejected++;
		else
			in->ncommands++;
		ing_receipt(in, &b->m[idx], outcome,
		    PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2),
		    PQgetisnull(res, i, 3) ? NULL : PQgetvalue(res, i, 3),
		    PQgetisnull(res, i, 4) ? NULL : PQgetvalue(res, i, 4));
	}
	in->nbatches++;
	log_debug("ingest: batch of %d committed", b->n);
	ing_set_state(in, ING_COLLECT);
	mqconn_hold(in->mq, false);
	mqconn_flush(in->mq);
	if (!in->stopping && in->state == ING_COLLECT)
		mqconn_pause(in->mq, false);
done:
	inmsg_free(b->m, b->n);
	free(b);
}

/* Send the collected batch to the database as one statement. */
static void
ing_flush(struct ingest *in)
{
	struct ibatch *b;
	json_t *arr;
	char *text;
	const char *vals[1];

	if (in->state != ING_COLLECT || in->n == 0)
		return;
	event_del(in->timer);
	mqconn_pause(in->mq, true);
	arr = json_array();
	for (int i = 0; i < in->n; i++)
		json_array_append(arr, in->m[i].elem);
	text = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	b = xcalloc(1, sizeof(*b));
	b->in = in;
	b->gen = in->gen;
	b->m = in->m;
	b->n = in->n;
	in->m = NULL;
	in->n = in->cap = 0;
	vals[0] = text;
	ing_set_state(in, ING_FLUSH);
	if (text == NULL || pgconn_query(in->db, "mqttd_ingest", true, 1,
	    vals, ing_result, b) < 0) {
		log_warnx("ingest: database unavailable; dropping the broker "
		    "connection so that %d messages are redelivered", b->n);
		inmsg_free(b->m, b->n);
		free(b);
		mqconn_drop(in->mq, "database unavailable");
	}
	free(text);
}

static void
ing_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	ing_flush(arg);
}

/*
 * A complaint without a category, municipality or language: ask the
 * normalizer (keywords and place names from the database).  What the
 * topic or the payload said always wins; an unrecognised text leaves the
 * field empty and aryz-routerd puts the complaint into triage.
 */
static void
ing_normalize(struct ingest *in, json_t *e)
{
	struct norm_result nr;
	json_t *meta = json_object_get(e, "meta");
	const char *text, *lang;

	if (strcmp(json_string_value(json_object_get(e, "k")), "complaint") != 0 ||
	    (json_object_get(e, "category") != NULL &&
	    json_object_get(e, "municipality") != NULL &&
	    json_object_get(e, "lang") != NULL) ||
	    (text = json_string_value(json_object_get(e, "text"))) == NULL)
		return;
	normalize_text(in->lex, text, strlen(text), &nr);
	if (json_object_get(e, "category") == NULL && nr.category[0] != '\0') {
		json_object_set_new(e, "category", json_string(nr.category));
		json_object_set_new(meta, "category_from", json_string("text"));
	}
	if (json_object_get(e, "municipality") == NULL && nr.soate[0] != '\0') {
		json_object_set_new(e, "municipality", json_string(nr.soate));
		json_object_set_new(meta, "municipality_from",
		    json_string("text"));
	}
	lang = norm_lang_code(nr.lang);
	if (json_object_get(e, "lang") == NULL && lang[0] != '\0')
		json_object_set_new(e, "lang", json_string(lang));
}

static void
ing_on_message(struct mqconn *mq, const struct mosquitto_message *msg,
    void *arg)
{
	struct ingest *in = arg;
	struct inmsg *m;
	json_t *elem;
	char *resp = NULL, *msg_id = NULL;

	if (in->state != ING_COLLECT) {
		/* Cannot happen while reads are paused; never ack it. */
		log_warnx("ingest: message on %s while %s; dropping the "
		    "connection", msg->topic, in->state == ING_FLUSH ?
		    "flushing" : "down");
		mqconn_drop(mq, "message out of turn");
		return;
	}
	elem = payload_decode(msg->topic, msg->payload,
	    (size_t)(msg->payloadlen > 0 ? msg->payloadlen : 0), &in->lim,
	    &resp, &msg_id);
	if (elem == NULL) {
		log_debug("ingest: ignoring message on %s", msg->topic);
		return;		/* not ours; acknowledging it is harmless */
	}
	if (!in->cfg->in_commands &&
	    strcmp(json_string_value(json_object_get(elem, "k")),
	    "command") == 0) {
		json_object_set_new(elem, "k", json_string("reject"));
		json_object_set_new(elem, "reason",
		    json_string("commands_disabled"));
	}
	ing_normalize(in, elem);
	/* From here on its PUBACK must wait for the COMMIT. */
	mqconn_hold(mq, true);
	if (in->n == in->cap) {
		in->cap = in->cap ? in->cap * 2 : 64;
		in->m = xrealloc(in->m, (size_t)in->cap * sizeof(*in->m));
	}
	m = &in->m[in->n++];
	m->elem = elem;
	m->resp_topic = resp;
	m->msg_id = msg_id;
	if (in->n == 1) {
		struct timeval tv = { in->cfg->in_batch_ms / 1000,
		    (in->cfg->in_batch_ms % 1000) * 1000 };
		evtimer_add(in->timer, &tv);
	}
	if (in->n >= in->cfg->in_batch_size)
		mqconn_pause(mq, true);	/* full: read no more */
	/* Decide when this read call has returned (ing_kick_cb). */
	event_active(in->kick, 0, 0);
}

static void
ing_on_connect(struct mqconn *mq, void *arg)
{
	struct ingest *in = arg;
	char *topic;
	bool ok = true;

	in->gen++;
	ing_discard(in);
	ing_set_state(in, ING_COLLECT);
	/* Subscribed again on every connect: harmless if the session has it. */
	if (in->cfg->mq_shared_group[0] != '\0')
		topic = xasprintf("$share/%s/aryz/v1/+/+/in/+",
		    in->cfg->mq_shared_group);
	else
		topic = xstrdup("aryz/v1/+/+/in/+");
	if (mqconn_subscribe(mq, topic, 1) < 0)
		ok = false;
	free(topic);
	if (in->cfg->in_commands) {
		if (in->cfg->mq_shared_group[0] != '\0')
			topic = xasprintf("$share/%s/aryz/v1/providers/+/cmd",
			    in->cfg->mq_shared_group);
		else
			topic = xstrdup("aryz/v1/providers/+/cmd");
		if (mqconn_subscribe(mq, topic, 1) < 0)
			ok = false;
		free(topic);
	}
	if (!ok)
		mqconn_drop(mq, "subscribe failed");
	else
		log_info("ingest: subscribed (batch %d messages / %d ms)",
		    in->cfg->in_batch_size, in->cfg->in_batch_ms);
}

static void
ing_on_disconnect(struct mqconn *mq, void *arg)
{
	struct ingest *in = arg;
	(void)mq;

	in->gen++;
	ing_discard(in);
	ing_set_state(in, ING_DOWN);
}

/*
 * After a read: flush when the batch is full or when the broker has
 * nothing more for us right now (an empty receive buffer).  The broker
 * sends at most max_inflight_messages unacknowledged messages, so waiting
 * longer would only add latency; in_batch_ms bounds the wait otherwise.
 */
static void
ing_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ingest *in = arg;
	(void)fd;
	(void)what;

	if (in->n >= in->cfg->in_batch_size || in->stopping ||
	    mqconn_pending_input(in->mq) <= 0)
		ing_flush(in);
}

/* Connect to the broker if the database is up and we are not stopping. */
static void
ing_go(struct ingest *in)
{
	if (in->stopping || in->mq_running || !pgconn_ready(in->db))
		return;
	in->mq_running = true;
	mqconn_start(in->mq);
}

/*
 * Lexicon loading (common/lexicon_pg.c): the new lexicon replaces the old
 * one only when all three queries loaded.  A failure keeps the old one
 * (or none: complaints then rely on the topic and payload).
 */
static void
ing_lex_loaded(struct lexicon *lx, const char *err, void *arg)
{
	struct ingest *in = arg;

	in->lex_loading = false;
	if (in->freeing) {
		lexicon_free(&lx);
		return;
	}
	if (lx == NULL)
		log_warnx("ingest: loading the lexicon failed (%s); %s", err,
		    in->lex ? "keeping the old one" : "texts without a category "
		    "go to triage");
	else {
		lexicon_free(&in->lex);
		in->lex = lx;
		log_info("ingest: lexicon loaded: %zu keywords, %zu place "
		    "names", lexicon_nkeywords(in->lex),
		    lexicon_nplaces(in->lex));
	}
	ing_go(in);
}

void
ingest_reload(struct ingest *in)
{
	static const char *const stmts[3] = { "mqttd_lex_keywords",
		"mqttd_lex_places", "mqttd_lex_rayons" };

	if (in->lex_loading || !pgconn_ready(in->db))
		return;
	if (lexicon_pg_load(in->db, stmts, ing_lex_loaded, in) == 0)
		in->lex_loading = true;
	else
		ing_go(in);
}

/* The broker connection lives only while the database is up. */
static void
ing_db_connect(struct pgconn *pc, void *arg)
{
	struct ingest *in = arg;
	(void)pc;

	if (in->lex == NULL)
		ingest_reload(in);	/* then ing_go() */
	else
		ing_go(in);
}

static void
ing_db_disconnect(struct pgconn *pc, void *arg)
{
	struct ingest *in = arg;
	(void)pc;

	if (!in->mq_running)
		return;
	log_warnx("ingest: database lost; leaving the broker until it is "
	    "back (the broker keeps our messages)");
	in->mq_running = false;
	mqconn_stop(in->mq, false);
	ing_on_disconnect(in->mq, in);
}

struct ingest *
ingest_new(struct event_base *base, const struct mqttd_cfg *cfg)
{
	struct ingest *in = xcalloc(1, sizeof(*in));
	struct mqconn_opts o = {
		.name = "ingest",
		.host = cfg->mq_host,
		.port = cfg->mq_port,
		.username = cfg->mq_username,
		.password = cfg->mq_password,
		.client_id = cfg->mq_client_id,
		.clean_session = false,
		.keepalive = cfg->mq_keepalive,
		.max_inflight = 20,	/* unused: we publish QoS 0 only */
	};
	struct mqconn_callbacks cb = {
		.on_connect = ing_on_connect,
		.on_disconnect = ing_on_disconnect,
		.on_message = ing_on_message,
		.arg = in,
	};

	in->base = base;
	in->cfg = cfg;
	in->lim.max_payload = (size_t)cfg->in_max_payload;
	in->lim.max_text = (size_t)cfg->in_max_text;
	in->mq = mqconn_new(base, &o, &cb);
	in->db = pgconn_new(base, cfg->common.db_conninfo, "ingest");
	pgconn_set_callbacks(in->db, ing_db_connect, ing_db_disconnect, NULL,
	    in);
	pgconn_prepare(in->db, "mqttd_lex_keywords", LEXICON_SQL_KEYWORDS);
	pgconn_prepare(in->db, "mqttd_lex_places", LEXICON_SQL_PLACES);
	pgconn_prepare(in->db, "mqttd_lex_rayons", LEXICON_SQL_RAYONS);
	pgconn_prepare(in->db, "mqttd_ingest",
	    "SELECT idx, outcome, ticket, reason, detail "
	    "FROM aryz_mqtt_ingest($1::jsonb)");
	in->timer = evtimer_new(base, ing_timer_cb, in);
	in->kick = event_new(base, -1, 0, ing_kick_cb, in);
	return in;
}

void
ingest_start(struct ingest *in)
{
	pgconn_start(in->db);
}

void
ingest_stop(struct ingest *in)
{
	in->stopping = true;
	if (in->state == ING_COLLECT) {
		mqconn_pause(in->mq, true);
		ing_flush(in);
	}
}

/* No batch in the database and nothing committed still unwritten. */
bool
ingest_idle(const struct ingest *in)
{
	if (in->state == ING_FLUSH)
		return false;
	if (in->state == ING_COLLECT && (in->n > 0 ||
	    mqconn_want_write(in->mq)))
		return false;
	return true;
}

void
ingest_free(struct ingest **inp)
{
	struct ingest *in = *inp;

	if (in == NULL)
		return;
	in->freeing = true;
	/* Graceful only if nothing uncommitted is held (mqconn checks). */
	mqconn_stop(in->mq, true);
	pgconn_free(&in->db);
	mqconn_free(&in->mq);
	ing_discard(in);
	lexicon_free(&in->lex);
	event_free(in->timer);
	event_free(in->kick);
	log_info("ingest: %lu accepted, %lu duplicate, %lu rejected, "
	    "%lu commands in %lu batches", in->naccepted, in->nduplicate,
	    in->nrejected, in->ncommands, in->nbatches);
	free(in);
	*inp = NULL;
}
