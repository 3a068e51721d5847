/*
 * mqconn.h - one MQTT client connection (libmosquitto) driven by libevent.
 *
 * The socket is registered for reads, and for writes while
 * mosquitto_want_write() is true; mosquitto_loop_misc() runs from a 1 s
 * timer.  The library runs in "threaded" mode (mosquitto_threaded_set), so
 * nothing it queues - PUBACKs included - reaches the wire except through
 * mosquitto_loop_write(), which mqconn calls only while writes are not held
 * (mqconn_hold()).  A subscriber that holds writes from the moment a QoS 1
 * message arrives until the COMMIT that stores it never acknowledges a
 * message it has not stored.
 *
 * Every (re)connect builds a fresh struct mosquitto: nothing queued for an
 * old connection (a held PUBACK, an unacknowledged publish) can leak onto
 * the next one; the broker redelivers what was not acknowledged.  The
 * socket changes on every reconnect; the events are rebuilt each time.
 * Reconnects back off exponentially (0.2 s .. 10 s, with jitter).
 */
#ifndef ARYZ_MQCONN_H
#define ARYZ_MQCONN_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct mqconn;
struct mosquitto_message;

struct mqconn_opts {
	const char	*name;		/* for the log: "ingest", "publish" */
	const char	*host;
	int		 port;
	const char	*username;	/* NULL or "" for none */
	const char	*password;
	const char	*client_id;
	bool		 clean_session;
	int		 keepalive;	/* seconds */
	unsigned	 max_inflight;	/* QoS 1 publishes on the wire at once */
};

struct mqconn_callbacks {
	/* CONNACK accepted: (re)subscribe here. */
	void	(*on_connect)(struct mqconn *mq, void *arg);
	/* The connection is gone (or a connect failed); reconnect is armed. */
	void	(*on_disconnect)(struct mqconn *mq, void *arg);
	/* A message arrived (its PUBACK, if QoS 1, is queued and held). */
	void	(*on_message)(struct mqconn *mq,
		    const struct mosquitto_message *msg, void *arg);
	/* The broker acknowledged our QoS 1 publish mid. */
	void	(*on_publish)(struct mqconn *mq, int mid, void *arg);
	void	*arg;
};

/* Copies opts.  Call mqconn_start() to connect. */
struct mqconn *mqconn_new(struct event_base *base,
    const struct mqconn_opts *opts, const struct mqconn_callbacks *cb);
/* Drop the connection without writing anything more; free; *mq = NULL. */
void mqconn_free(struct mqconn **mq);

/* Connect (asynchronously), and keep reconnecting until mqconn_stop(). */
void mqconn_start(struct mqconn *mq);
/*
 * Disconnect and do not reconnect.  graceful: send what is queued (unless
 * held) and a DISCONNECT first; else drop the socket without writing.
 */
void mqconn_stop(struct mqconn *mq, bool graceful);
/*
 * Drop the connection now without writing anything that is queued (held
 * PUBACKs are discarded, so the broker will redeliver those messages) and
 * reconnect after the backoff.  reason is logged.
 */
void mqconn_drop(struct mqconn *mq, const char *reason);

/* True between CONNACK and the loss of the connection. */
bool mqconn_connected(const struct mqconn *mq);
/* True when something is queued for the wire. */
bool mqconn_want_write(const struct mqconn *mq);

/*
 * Bytes waiting in the socket's receive buffer (FIONREAD): 0 means the
 * peer has nothing more for us right now.  -1 when not connected.
 */
int mqconn_pending_input(const struct mqconn *mq);
/* Hold (true) or release (false) every write to the socket. */
void mqconn_hold(struct mqconn *mq, bool hold);
/*
 * Write what is queued now, unless held (call after releasing a hold, so
 * the released packets leave before anything new is read).
 */
void mqconn_flush(struct mqconn *mq);
/* Stop (true) or resume (false) reading from the socket. */
void mqconn_pause(struct mqconn *mq, bool pause);

/* Subscribe; returns 0 or -1 (logged).  Only while connected. */
int mqconn_subscribe(struct mqconn *mq, const char *topic, int qos)
    __attribute__((warn_unused_result));
/*
 * Publish; *mid receives the message id (for on_publish).  Returns 0, or
 * -1 when not connected, or -2 when libmosquitto refuses the message
 * itself (bad topic, too large): retrying will not help.
 */
int mqconn_publish(struct mqconn *mq, const char *topic, const void *payload,
    size_t len, int qos, int *mid) __attribute__((warn_unused_result));

#endif
