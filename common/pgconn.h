/*
 * pgconn.h - one asynchronous PostgreSQL connection driven by libevent.
 *
 * Connects with PQconnectStart/PQconnectPoll, reconnects with exponential
 * backoff and jitter when the server goes away, re-prepares registered
 * statements and re-issues LISTEN after every (re)connect, and runs queued
 * queries one at a time.  Every query runs in its own implicit transaction,
 * so a statement that calls an SQL function is one COMMIT.
 */
#ifndef ARYZ_PGCONN_H
#define ARYZ_PGCONN_H

#include <libpq-fe.h>
#include <stdbool.h>

struct event_base;
struct pgconn;

/*
 * Result callback.  res is NULL when the query never got an answer (the
 * connection broke or pgconn_free() ran): the outcome is unknown, so the
 * caller must treat it as "maybe committed" and rely on idempotency.  res
 * may carry an error status (PQresultStatus).  pgconn clears res after the
 * callback returns.
 */
typedef void pgconn_result_cb(PGresult *res, void *arg);

/* Called after each successful (re)connect, once setup is done. */
typedef void pgconn_event_cb(struct pgconn *pc, void *arg);
typedef void pgconn_notify_cb(const char *channel, const char *payload,
    void *arg);

struct pgconn *pgconn_new(struct event_base *base, const char *conninfo,
    const char *name);
/* Close, fail queued queries with res == NULL, free; sets *pc to NULL. */
void pgconn_free(struct pgconn **pc);

void pgconn_set_callbacks(struct pgconn *pc, pgconn_event_cb *on_connect,
    pgconn_event_cb *on_disconnect, pgconn_notify_cb *on_notify, void *arg);
/* Register a statement prepared on every connection (before start). */
void pgconn_prepare(struct pgconn *pc, const char *name, const char *sql);
/* LISTEN on channel on every connection (before start). */
void pgconn_listen(struct pgconn *pc, const char *channel);
/* Begin connecting; retries forever with backoff. */
void pgconn_start(struct pgconn *pc);

/* True when connected and set up: queries will be sent. */
bool pgconn_ready(const struct pgconn *pc);
/* Queries queued or in flight. */
int pgconn_pending(const struct pgconn *pc);

/*
 * Queue a query: stmt is a prepared statement name when prepared is true,
 * else SQL text.  values are copied (NULL entries are SQL NULL).  Returns
 * 0, or -1 without calling cb when the connection is not ready or the
 * queue is full (the caller answers "try again later").  cb is never
 * called from inside pgconn_query(): the query is sent from the event loop.
 */
int pgconn_query(struct pgconn *pc, const char *stmt, bool prepared,
    int nparams, const char *const *values, pgconn_result_cb *cb, void *arg)
    __attribute__((warn_unused_result));

/* True if res is a successful command or tuple result. */
bool pgconn_ok(const PGresult *res);
/* The error text of res, or "connection lost" for NULL. */
const char *pgconn_errmsg(const PGresult *res);

#endif
