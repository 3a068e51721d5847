/*
 * publish.c - the MQTT side of the transactional outbox.
 *
 * A separate MQTT connection (client id "<client_id>-pub", clean session)
 * and a separate database connection, so that neither waits behind the
 * ingest batches (whose writes are held until their COMMIT).  Rows of channel 'mqtt' are leased with
 * aryz_mqtt_claim() (FOR UPDATE SKIP LOCKED, so instances share the work),
 * published with QoS 1 and marked 'sent' (aryz_mqtt_sent) only when the
 * broker's PUBACK arrives.  At most out_max_inflight publishes await a
 * PUBACK at once (message ids wrap at 65535).  A lost connection makes the
 * unacknowledged rows due again (aryz_mqtt_release); a crash leaves them
 * leased until the lease runs out.  Either way delivery is at least once.
 * Wake-ups: LISTEN aryz_outbox, plus a poll every out_poll seconds.
 */
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mqconn.h"
#include "mqttd.h"
#include "pgconn.h"
#include "xmalloc.h"

#define PUB_MIDS	65536	/* every possible MQTT message id */

/* A growable list of outbox ids. */
struct idlist {
	int64_t	*v;
	int	 n, cap;
};

struct publisher {
	struct event_base	*base;
	const struct mqttd_cfg	*cfg;
	struct pgconn		*db;
	struct mqconn		*mq;
	int64_t			*mids;		/* mid -> outbox id, 0: none */
	int			 outstanding;	/* outbox publishes w/o PUBACK */
	struct idlist		 acked;		/* to mark sent */
	struct idlist		 unacked;	/* to release */
	struct idlist		 dbq;		/* ids of the update in flight */
	bool			 updating;	/* sent/release query in flight */
	bool			 dbq_sent;	/* it is aryz_mqtt_sent */
	bool			 claiming;
	bool			 more;		/* claim again when done */
	bool			 stopping, freeing;
	struct event		*poll;
	struct event		*kick;		/* run pub_pump soon */
	unsigned long		 nsent;
};

static void
idl_add(struct idlist *l, int64_t id)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xrealloc(l->v, (size_t)l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = id;
}

/* "{1,2,3}": a bigint[] literal of at most max ids, removed from l. */
static char *
idl_take(struct idlist *l, int max, struct idlist *into)
{
	size_t size = 3, off;
	char *s;
	int n = l->n < max ? l->n : max;

	size += (size_t)n * 21;		/* 20 digits and a comma per id */
	s = xmalloc(size);
	off = (size_t)snprintf(s, size, "{");
	for (int i = 0; i < n; i++) {
		off += (size_t)snprintf(s + off, size - off, "%s%lld",
		    i ? "," : "", (long long)l->v[i]);
		idl_add(into, l->v[i]);
	}
	snprintf(s + off, size - off, "}");
	memmove(l->v, l->v + n, (size_t)(l->n - n) * sizeof(*l->v));
	l->n -= n;
	return s;
}

static void pub_pump(struct publisher *p);

static void
pub_kick(struct publisher *p)
{
	if (!p->freeing)
		event_active(p->kick, 0, 0);
}

static void
pub_update_cb(PGresult *res, void *arg)
{
	struct publisher *p = arg;
	bool ok = res != NULL && pgconn_ok(res);

	p->updating = false;
	if (!ok) {
		/* Unknown outcome: the updates are idempotent, try again. */
		log_warnx("outbox update failed: %s", pgconn_errmsg(res));
		for (int i = 0; i < p->dbq.n; i++)
			idl_add(p->dbq_sent ? &p->acked : &p->unacked,
			    p->dbq.v[i]);
	}
	p->dbq.n = 0;
	if (ok)
		pub_kick(p);
}

/* Mark acknowledged rows sent, then release unacknowledged ones. */
static void
pub_update(struct publisher *p)
{
	char delay[16], *ids;	/* delay: an int in decimal */
	const char *vals[3];
	struct idlist *from;
	bool sent;

	if (p->updating || !pgconn_ready(p->db))
		return;
	if (p->acked.n > 0) {
		from = &p->acked;
		sent = true;
	} else if (p->unacked.n > 0) {
		from = &p->unacked;
		sent = false;
	} else
		return;
	ids = idl_take(from, 1000, &p->dbq);
	vals[0] = ids;
	snprintf(delay, sizeof(delay), "%d", p->cfg->out_retry);
	vals[1] = "not acknowledged by the broker (connection lost)";
	vals[2] = delay;
	/*
	 * Set before the call: a send that fails at once runs the callback
	 * inside pgconn_query(), which must find these already set.
	 */
	p->updating = true;
	p->dbq_sent = sent;
	if (pgconn_query(p->db, sent ? "mqttd_sent" : "mqttd_release", true,
	    sent ? 1 : 3, vals, pub_update_cb, p) < 0) {
		/* Not connected: put them back for the next connection. */
		for (int i = 0; i < p->dbq.n; i++)
			idl_add(from, p->dbq.v[i]);
		p->dbq.n = 0;
		p->updating = false;
	}
	free(ids);
}

static void
pub_dead(struct publisher *p, int64_t id, const char *why)
{
	char sid[24];	/* an int64 in decimal */
	const char *vals[2] = { sid, why };

	snprintf(sid, sizeof(sid), "%lld", (long long)id);
	log_warnx("outbox %lld: cannot publish: %s; marked dead",
	    (long long)id, why);
	if (pgconn_query(p->db, "mqttd_dead", true, 2, vals, NULL, NULL) < 0)
		log_warnx("outbox %lld: not marked dead (database "
		    "unavailable); it will be retried", (long long)id);
}

/* A QoS 1 publish got message id mid: remember which row it carries. */
static void
pub_track(struct publisher *p, int mid, int64_t id)
{
	int64_t old;

	if (mid < 0 || mid >= PUB_MIDS)
		return;
	old = p->mids[mid];
	if (old != 0) {
		/* Only after 65535 newer publishes: count it as lost. */
		log_warnx("outbox %lld: message id %d reused before its "
		    "PUBACK; will be sent again", (long long)old, mid);
		idl_add(&p->unacked, old);
		p->outstanding--;
	}
	p->mids[mid] = id;
	if (id != 0)
		p->outstanding++;
}

static void
pub_claim_cb(PGresult *res, void *arg)
{
	struct publisher *p = arg;
	int rows;

	p->claiming = false;
	if (res == NULL || !pgconn_ok(res)) {
		if (!p->freeing)
			log_warnx("outbox claim failed: %s",
			    pgconn_errmsg(res));
		return;
	}
	rows = PQntuples(res);
	for (int i = 0; i < rows; i++) {
		const char *sid = PQgetvalue(res, i, 0);
		const char *topic = PQgetvalue(res, i, 1);
		const char *body = PQgetvalue(res, i, 2);
		int64_t id = strtoll(sid, NULL, 10);
		int mid = 0, rc;

		rc = mqconn_publish(p->mq, topic, body,
		    (size_t)PQgetlength(res, i, 2), 1, &mid);
		if (rc == 0) {
			pub_track(p, mid, id);
			log_debug("outbox %lld: published to %s (mid %d)",
			    (long long)id, topic, mid);
		} else if (rc == -2)
			pub_dead(p, id, "refused by the MQTT library (topic "
			    "or payload invalid)");
		else
			idl_add(&p->unacked, id);
	}
	if (rows > 0)
		p->more = true;		/* a full page may mean more */
	pub_kick(p);
}

static void
pub_claim(struct publisher *p)
{
	char lim[16], lease[16];	/* ints in decimal */
	const char *vals[2] = { lim, lease };
	int room = p->cfg->out_max_inflight - p->outstanding;

	if (p->claiming || p->stopping || !pgconn_ready(p->db) ||
	    !mqconn_connected(p->mq) || room <= 0)
		return;
	snprintf(lim, sizeof(lim), "%d",
	    room < p->cfg->out_batch ? room : p->cfg->out_batch);
	snprintf(lease, sizeof(lease), "%d", p->cfg->out_lease);
	p->more = false;
	p->claiming = true;	/* before: see pub_update() */
	if (pgconn_query(p->db, "mqttd_claim", true, 2, vals, pub_claim_cb,
	    p) < 0)
		p->claiming = false;
}

static void
pub_pump(struct publisher *p)
{
	if (p->freeing)
		return;
	pub_update(p);
	if (p->more)
		pub_claim(p);
}

static void
pub_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pub_pump(arg);
}

static void
pub_poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct publisher *p = arg;
	(void)fd;
	(void)what;

	p->more = true;
	pub_pump(p);
}

static void
pub_db_connect(struct pgconn *pc, void *arg)
{
	struct publisher *p = arg;
	(void)pc;

	p->more = true;
	pub_kick(p);
}

static void
pub_db_notify(const char *channel, const char *payload, void *arg)
{
	struct publisher *p = arg;

	if (strcmp(channel, "aryz_outbox") == 0 &&
	    (payload == NULL || strcmp(payload, "mqtt") == 0 ||
	    payload[0] == '\0')) {
		p->more = true;
		pub_kick(p);
	}
}

static void
pub_mq_connect(struct mqconn *mq, void *arg)
{
	struct publisher *p = arg;
	(void)mq;

	p->more = true;
	pub_kick(p);
}

/* Whatever awaited a PUBACK on the lost connection is due again. */
static void
pub_mq_disconnect(struct mqconn *mq, void *arg)
{
	struct publisher *p = arg;
	int n = 0;
	(void)mq;

	for (int mid = 0; mid < PUB_MIDS; mid++) {
		if (p->mids[mid] != 0) {
			idl_add(&p->unacked, p->mids[mid]);
			p->mids[mid] = 0;
			n++;
		}
	}
	p->outstanding = 0;
	if (n > 0)
		log_warnx("outbox: %d publishes not acknowledged before the "
		    "connection was lost; they will be sent again", n);
	pub_kick(p);
}

static void
pub_mq_publish(struct mqconn *mq, int mid, void *arg)
{
	struct publisher *p = arg;
	int64_t id;
	(void)mq;

	if (mid < 0 || mid >= PUB_MIDS || (id = p->mids[mid]) == 0)
		return;		/* from before a reconnect */
	p->mids[mid] = 0;
	p->outstanding--;
	p->nsent++;
	idl_add(&p->acked, id);
	p->more = true;
	pub_kick(p);
}

struct publisher *
publisher_new(struct event_base *base, const struct mqttd_cfg *cfg)
{
	struct publisher *p = xcalloc(1, sizeof(*p));
	char *cid = xasprintf("%s-pub", cfg->mq_client_id);
	struct mqconn_opts o = {
		.name = "publish",
		.host = cfg->mq_host,
		.port = cfg->mq_port,
		.username = cfg->mq_username,
		.password = cfg->mq_password,
		.client_id = cid,
		.clean_session = true,
		.keepalive = cfg->mq_keepalive,
		.max_inflight = 100,
	};
	struct mqconn_callbacks cb = {
		.on_connect = pub_mq_connect,
		.on_disconnect = pub_mq_disconnect,
		.on_publish = pub_mq_publish,
		.arg = p,
	};
	struct timeval tv = { cfg->out_poll, 0 };

	p->base = base;
	p->cfg = cfg;
	p->mids = xcalloc(PUB_MIDS, sizeof(*p->mids));
	p->mq = mqconn_new(base, &o, &cb);
	free(cid);
	p->db = pgconn_new(base, cfg->common.db_conninfo, "outbox");
	pgconn_set_callbacks(p->db, pub_db_connect, NULL, pub_db_notify, p);
	pgconn_prepare(p->db, "mqttd_claim",
	    "SELECT id, topic, payload FROM aryz_mqtt_claim($1::int, $2::int)");
	pgconn_prepare(p->db, "mqttd_sent",
	    "SELECT aryz_mqtt_sent($1::bigint[])");
	pgconn_prepare(p->db, "mqttd_release",
	    "SELECT aryz_mqtt_release($1::bigint[], $2, $3::int)");
	pgconn_prepare(p->db, "mqttd_dead",
	    "SELECT aryz_mqtt_dead($1::bigint, $2)");
	pgconn_listen(p->db, "aryz_outbox");
	p->poll = event_new(base, -1, EV_PERSIST, pub_poll_cb, p);
	event_add(p->poll, &tv);
	p->kick = event_new(base, -1, 0, pub_kick_cb, p);
	return p;
}

void
publisher_start(struct publisher *p)
{
	pgconn_start(p->db);
	mqconn_start(p->mq);
}

void
publisher_stop(struct publisher *p)
{
	p->stopping = true;
	pub_kick(p);
}

/* Nothing awaits a PUBACK or a database update that can still happen. */
bool
publisher_idle(const struct publisher *p)
{
	bool db = pgconn_ready(p->db);

	if (p->outstanding > 0 && mqconn_connected(p->mq))
		return false;
	if (db && (p->claiming || p->updating || p->acked.n > 0 ||
	    p->unacked.n > 0 || pgconn_pending(p->db) > 0))
		return false;
	return true;
}

void
publisher_free(struct publisher **pp)
{
	struct publisher *p = *pp;

	if (p == NULL)
		return;
	p->freeing = true;
	mqconn_stop(p->mq, true);
	mqconn_free(&p->mq);
	pgconn_free(&p->db);
	log_info("outbox: %lu published and acknowledged", p->nsent);
	event_free(p->poll);
	event_free(p->kick);
	free(p->mids);
	free(p->acked.v);
	free(p->unacked.v);
	free(p->dbq.v);
	free(p);
	*pp = NULL;
}
