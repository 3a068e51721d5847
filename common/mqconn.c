/*
 * mqconn.c - libmosquitto on libevent: read_cb (mosquitto_loop_read),
 * write_cb (mosquitto_loop_write, only while not held), misc_cb (1 s:
 * mosquitto_loop_misc, connect timeout) and a reconnect timer.  See
 * mqconn.h for the contract.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <mosquitto.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mqconn.h"
#include "xmalloc.h"

#define MQC_BACKOFF_MIN		200	/* ms */
#define MQC_BACKOFF_MAX		10000	/* ms */
#define MQC_CONNECT_TIMEOUT	10	/* s from socket to CONNACK */

enum mqc_state {
	MQC_IDLE,		/* not started, or stopped */
	MQC_CONNECTING,		/* socket open, waiting for CONNACK */
	MQC_CONNECTED,		/* CONNACK accepted */
	MQC_WAIT_RETRY,		/* no socket, reconnect timer armed */
};

struct mqconn {
	struct event_base	*base;
	char			*name, *host, *username, *password, *client_id;
	int			 port, keepalive;
	bool			 clean_session;
	unsigned		 max_inflight;
	struct mqconn_callbacks	 cb;

	struct mosquitto	*mosq;		/* rebuilt on every connect */
	enum mqc_state		 state;
	int			 fd;
	struct event		*rev;		/* readable, persistent */
	struct event		*wev;		/* writable, one-shot */
	struct event		*misc;		/* 1 s, persistent */
	struct event		*retry;		/* reconnect timer */
	int			 backoff_ms;
	int			 connect_age;	/* seconds in MQC_CONNECTING */
	bool			 hold;		/* no loop_write */
	bool			 paused;	/* no loop_read */
	bool			 in_loop;	/* inside a libmosquitto call */
	char			*lost;		/* loss noticed inside a call */
};

static int mqc_lib_refs;

static void mqc_update(struct mqconn *mq);
static void mqc_connect(struct mqconn *mq);

static void
mqc_set_state(struct mqconn *mq, enum mqc_state st)
{
	static const char *const names[] = { "idle", "connecting",
		"connected", "wait_retry" };

	log_debug("mqtt %s: %s -> %s", mq->name, names[mq->state], names[st]);
	mq->state = st;
}

static void
mqc_close_socket(struct mqconn *mq)
{
	if (mq->rev != NULL)
		event_free(mq->rev);
	if (mq->wev != NULL)
		event_free(mq->wev);
	mq->rev = mq->wev = NULL;
	if (mq->mosq != NULL)
		mosquitto_destroy(mq->mosq);	/* closes without writing */
	mq->mosq = NULL;
	mq->fd = -1;
}

/* The connection is gone: clean up and arm the reconnect timer. */
static void
mqc_lose(struct mqconn *mq, const char *why)
{
	struct timeval tv;
	int delay;

	log_warnx("mqtt %s: connection to %s:%d lost: %s; reconnecting in "
	    "%d ms", mq->name, mq->host, mq->port, why, mq->backoff_ms);
	mqc_close_socket(mq);
	mqc_set_state(mq, MQC_WAIT_RETRY);
	/* Jitter: 75..125% of the backoff, so instances do not stampede. */
	delay = mq->backoff_ms * 3 / 4 + rand() % (mq->backoff_ms / 2 + 1);
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(mq->retry, &tv);
	mq->backoff_ms *= 2;
	if (mq->backoff_ms > MQC_BACKOFF_MAX)
		mq->backoff_ms = MQC_BACKOFF_MAX;
	if (mq->cb.on_disconnect != NULL)
		mq->cb.on_disconnect(mq, mq->cb.arg);
}

/* After a libmosquitto call: act on a loss noticed during it. */
static void
mqc_after_call(struct mqconn *mq, int rc, const char *what)
{
	char why[256];	/* a reason line; longer ones are cut */

	mq->in_loop = false;
	if (mq->lost != NULL) {
		snprintf(why, sizeof(why), "%s", mq->lost);
		xfree(&mq->lost);
		mqc_lose(mq, why);
		return;
	}
	if (mq->mosq == NULL)
		return;
	if (rc != MOSQ_ERR_SUCCESS || mosquitto_socket(mq->mosq) < 0) {
		snprintf(why, sizeof(why), "%s: %s", what,
		    rc == MOSQ_ERR_ERRNO ? "socket error" :
		    rc == MOSQ_ERR_SUCCESS ? "socket closed" :
		    mosquitto_strerror(rc));
		mqc_lose(mq, why);
		return;
	}
	mqc_update(mq);
}

static void
mqc_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mqconn *mq = arg;
	int rc;
	(void)fd;
	(void)what;

	if (mq->mosq == NULL)
		return;
	mq->in_loop = true;
	rc = mosquitto_loop_read(mq->mosq, 1);
	mqc_after_call(mq, rc, "read");
}

static void
mqc_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mqconn *mq = arg;
	int rc;
	(void)fd;
	(void)what;

	if (mq->mosq == NULL || mq->hold)
		return;
	mq->in_loop = true;
	rc = mosquitto_loop_write(mq->mosq, 1);
	mqc_after_call(mq, rc, "write");
}

static void
mqc_misc_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mqconn *mq = arg;
	int rc;
	(void)fd;
	(void)what;

	if (mq->mosq == NULL)
		return;
	if (mq->state == MQC_CONNECTING &&
	    ++mq->connect_age > MQC_CONNECT_TIMEOUT) {
		mqc_lose(mq, "no CONNACK in time");
		return;
	}
	mq->in_loop = true;
	rc = mosquitto_loop_misc(mq->mosq);
	mqc_after_call(mq, rc, "keepalive");
}

static void
mqc_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	mqc_connect(arg);
}

/* Arm reads unless paused, writes while something waits and not held. */
static void
mqc_update(struct mqconn *mq)
{
	if (mq->mosq == NULL || mq->rev == NULL || mq->in_loop)
		return;
	if (!mq->paused || mq->state == MQC_CONNECTING)
		event_add(mq->rev, NULL);
	else
		event_del(mq->rev);
	if (!mq->hold && mosquitto_want_write(mq->mosq))
		event_add(mq->wev, NULL);
	else
		event_del(mq->wev);
}

/* libmosquitto callbacks: called inside loop_read/loop_write/loop_misc. */
static void
mqc_on_connect(struct mosquitto *mosq, void *arg, int rc)
{
	struct mqconn *mq = arg;
	(void)mosq;

	if (rc != 0) {
		/* Refused (bad credentials, ...): libmosquitto closes. */
		log_warnx("mqtt %s: broker refused the connection: %s",
		    mq->name, mosquitto_connack_string(rc));
		if (mq->lost == NULL)
			mq->lost = xstrdup(mosquitto_connack_string(rc));
		return;
	}
	mqc_set_state(mq, MQC_CONNECTED);
	mq->backoff_ms = MQC_BACKOFF_MIN;
	log_info("mqtt %s: connected to %s:%d as %s", mq->name, mq->host,
	    mq->port, mq->client_id);
	if (mq->cb.on_connect != NULL)
		mq->cb.on_connect(mq, mq->cb.arg);
}

static void
mqc_on_message(struct mosquitto *mosq, void *arg,
    const struct mosquitto_message *msg)
{
	struct mqconn *mq = arg;
	(void)mosq;

	if (mq->cb.on_message != NULL && mq->lost == NULL)
		mq->cb.on_message(mq, msg, mq->cb.arg);
}

static void
mqc_on_publish(struct mosquitto *mosq, void *arg, int mid)
{
	struct mqconn *mq = arg;
	(void)mosq;

	if (mq->cb.on_publish != NULL && mq->lost == NULL)
		mq->cb.on_publish(mq, mid, mq->cb.arg);
}

static void
mqc_connect(struct mqconn *mq)
{
	const char *why;
	int rc;

	mqc_close_socket(mq);
	mq->hold = false;
	mq->paused = false;
	mq->connect_age = 0;
	mq->mosq = mosquitto_new(mq->client_id, mq->clean_session, mq);
	if (mq->mosq == NULL) {
		mqc_lose(mq, "mosquitto_new failed");
		return;
	}
	/*
	 * Threaded mode: packets are only queued by the library and reach
	 * the wire in mosquitto_loop_write(), which is what lets us hold the
	 * PUBACKs until the COMMIT.
	 */
	mosquitto_threaded_set(mq->mosq, true);
	if (mq->username != NULL && mq->username[0] != '\0')
		mosquitto_username_pw_set(mq->mosq, mq->username, mq->password);
	mosquitto_max_inflight_messages_set(mq->mosq, mq->max_inflight);
	mosquitto_connect_callback_set(mq->mosq, mqc_on_connect);
	mosquitto_message_callback_set(mq->mosq, mqc_on_message);
	mosquitto_publish_callback_set(mq->mosq, mqc_on_publish);
	rc = mosquitto_connect_async(mq->mosq, mq->host, mq->port,
	    mq->keepalive);
	if (rc != MOSQ_ERR_SUCCESS) {
		why = rc == MOSQ_ERR_ERRNO ? "connect failed" :
		    mosquitto_strerror(rc);
		mqc_lose(mq, why);
		return;
	}
	mq->fd = mosquitto_socket(mq->mosq);
	if (mq->fd < 0) {
		mqc_lose(mq, "no socket");
		return;
	}
	mq->rev = event_new(mq->base, mq->fd, EV_READ | EV_PERSIST,
	    mqc_read_cb, mq);
	mq->wev = event_new(mq->base, mq->fd, EV_WRITE, mqc_write_cb, mq);
	mqc_set_state(mq, MQC_CONNECTING);
	mqc_update(mq);
}

struct mqconn *
mqconn_new(struct event_base *base, const struct mqconn_opts *o,
    const struct mqconn_callbacks *cb)
{
	struct mqconn *mq = xcalloc(1, sizeof(*mq));

	if (mqc_lib_refs++ == 0)
		mosquitto_lib_init();
	mq->base = base;
	mq->name = xstrdup(o->name);
	mq->host = xstrdup(o->host);
	mq->port = o->port;
	mq->username = xstrdup(o->username ? o->username : "");
	mq->password = xstrdup(o->password ? o->password : "");
	mq->client_id = xstrdup(o->client_id);
	mq->clean_session = o->clean_session;
	mq->keepalive = o->keepalive;
	mq->max_inflight = o->max_inflight;
	mq->cb = *cb;
	mq->fd = -1;
	mq->backoff_ms = MQC_BACKOFF_MIN;
	mq->misc = event_new(base, -1, EV_PERSIST, mqc_misc_cb, mq);
	mq->retry = evtimer_new(base, mqc_retry_cb, mq);
	return mq;
}

void
mqconn_free(struct mqconn **mqp)
{
	struct mqconn *mq = *mqp;

	if (mq == NULL)
		return;
	mqc_close_socket(mq);
	event_free(mq->misc);
	event_free(mq->retry);
	free(mq->name);
	free(mq->host);
	free(mq->username);
	free(mq->password);
	free(mq->client_id);
	free(mq->lost);
	free(mq);
	*mqp = NULL;
	if (--mqc_lib_refs == 0)
		mosquitto_lib_cleanup();
}

void
mqconn_start(struct mqconn *mq)
{
	struct timeval sec = { 1, 0 };

	event_add(mq->misc, &sec);
	mqc_connect(mq);
}

void
mqconn_stop(struct mqconn *mq, bool graceful)
{
	int tries = 0;	/* local socket: a few writes flush everything */

	event_del(mq->misc);
	event_del(mq->retry);
	if (graceful && mq->mosq != NULL && mq->state == MQC_CONNECTED &&
	    !mq->hold) {
		mosquitto_disconnect(mq->mosq);
		while (mosquitto_want_write(mq->mosq) && tries++ < 100 &&
		    mosquitto_loop_write(mq->mosq, 1) == MOSQ_ERR_SUCCESS)
			;
	}
	mqc_close_socket(mq);
	mqc_set_state(mq, MQC_IDLE);
}

void
mqconn_drop(struct mqconn *mq, const char *reason)
{
	if (mq->mosq == NULL || mq->state == MQC_WAIT_RETRY ||
	    mq->state == MQC_IDLE)
		return;
	if (mq->in_loop) {
		/*
		 * Inside a libmosquitto callback we may not destroy the
		 * client: shut the socket so nothing more can be written,
		 * and finish the job when the call returns.
		 */
		if (mq->fd >= 0)
			shutdown(mq->fd, SHUT_RDWR);
		if (mq->lost == NULL)
			mq->lost = xstrdup(reason);
		return;
	}
	mqc_lose(mq, reason);
}

bool
mqconn_connected(const struct mqconn *mq)
{
	return mq->state == MQC_CONNECTED && mq->lost == NULL;
}

bool
mqconn_want_write(const struct mqconn *mq)
{
	return mq->mosq != NULL && mosquitto_want_write(mq->mosq);
}

int
mqconn_pending_input(const struct mqconn *mq)
{
	int n = 0;

	if (mq->mosq == NULL || mq->fd < 0 || ioctl(mq->fd, FIONREAD, &n) < 0)
		return -1;
	return n;
}

void
mqconn_hold(struct mqconn *mq, bool hold)
{
	mq->hold = hold;
	mqc_update(mq);
}

void
mqconn_flush(struct mqconn *mq)
{
	int rc;

	if (mq->mosq == NULL || mq->hold || mq->in_loop ||
	    mq->state == MQC_IDLE || !mosquitto_want_write(mq->mosq))
		return;
	mq->in_loop = true;
	rc = mosquitto_loop_write(mq->mosq, 1);
	mqc_after_call(mq, rc, "write");
}

void
mqconn_pause(struct mqconn *mq, bool pause)
{
	mq->paused = pause;
	mqc_update(mq);
}

int
mqconn_subscribe(struct mqconn *mq, const char *topic, int qos)
{
	int rc;

	if (!mqconn_connected(mq))
		return -1;
	rc = mosquitto_subscribe(mq->mosq, NULL, topic, qos);
	if (rc != MOSQ_ERR_SUCCESS) {
		log_warnx("mqtt %s: subscribe %s: %s", mq->name, topic,
		    mosquitto_strerror(rc));
		return -1;
	}
	mqc_update(mq);
	return 0;
}

int
mqconn_publish(struct mqconn *mq, const char *topic, const void *payload,
    size_t len, int qos, int *mid)
{
	int rc;

	if (!mqconn_connected(mq))
		return -1;
	if (len > 268435455)	/* the MQTT maximum payload */
		return -2;
	rc = mosquitto_publish(mq->mosq, mid, topic, (int)len, payload, qos,
	    false);
	switch (rc) {
	case MOSQ_ERR_SUCCESS:
		mqc_update(mq);
		return 0;
	case MOSQ_ERR_INVAL:
	case MOSQ_ERR_PAYLOAD_SIZE:
	case MOSQ_ERR_MALFORMED_UTF8:
	case MOSQ_ERR_QOS_NOT_SUPPORTED:
	case MOSQ_ERR_OVERSIZE_PACKET:
		return -2;
	default:
		return -1;
	}
}
