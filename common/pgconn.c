/*
 * pgconn.c - async libpq on libevent: connect_cb (PQconnectPoll),
 * flush_cb (PQflush) and read_cb (PQconsumeInput/PQgetResult) phases.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"
#include "xmalloc.h"

#define PGC_MAX_QUEUE	20000	/* queued queries before refusing more */
#define PGC_BACKOFF_MIN	100	/* ms */
#define PGC_BACKOFF_MAX	5000	/* ms */

enum pgc_state {
	PGC_IDLE,		/* not started, or freed */
	PGC_CONNECTING,		/* PQconnectPoll in progress */
	PGC_SETUP,		/* connected, prepares/LISTENs queued */
	PGC_READY,		/* accepting queries */
	PGC_WAIT_RETRY,		/* disconnected, backoff timer armed */
};

struct pgq {
	struct pgq		*next;
	char			*stmt;
	bool			 prepared;
	bool			 internal;	/* setup step: failure reconnects */
	int			 nparams;
	char			**values;
	pgconn_result_cb	*cb;
	void			*arg;
};

struct strlist {
	char		*a, *b;
	struct strlist	*next;
};

struct pgconn {
	struct event_base	*base;
	char			*conninfo;
	char			*name;
	PGconn			*conn;
	enum pgc_state		 state;
	struct event		*rev;		/* socket readable, persistent */
	struct event		*wev;		/* socket writable, one-shot */
	struct event		*cev;		/* connect poll / retry timer */
	struct event		*kick;		/* send a query queued by the caller */
	int			 backoff_ms;
	struct pgq		*head, *tail;	/* head is in flight if sent */
	bool			 sent;
	bool			 setup_failed;	/* a PREPARE or LISTEN refused */
	int			 nqueued;
	PGresult		*result;	/* first result of the head query */
	struct strlist		*stmts;		/* name, sql */
	struct strlist		*channels;	/* channel, NULL */
	pgconn_event_cb		*on_connect, *on_disconnect;
	pgconn_notify_cb	*on_notify;
	void			*cbarg;
};

static void start_connect(struct pgconn *pc);
static void send_next(struct pgconn *pc);

static void
q_free(struct pgq *q)
{
	for (int i = 0; i < q->nparams; i++)
		free(q->values[i]);
	free(q->values);
	free(q->stmt);
	free(q);
}

static void
set_state(struct pgconn *pc, enum pgc_state st)
{
	static const char *const names[] = { "idle", "connecting", "setup",
		"ready", "wait_retry" };
	log_debug("pgconn %s: %s -> %s", pc->name, names[pc->state],
	    names[st]);
	pc->state = st;
}

static void
clear_events(struct pgconn *pc)
{
	if (pc->rev) {
		event_free(pc->rev);
		pc->rev = NULL;
	}
	if (pc->wev) {
		event_free(pc->wev);
		pc->wev = NULL;
	}
	if (pc->cev)
		event_del(pc->cev);
}

/* Fail every queued query with res == NULL. */
static void
fail_all(struct pgconn *pc)
{
	struct pgq *q;

	PQclear(pc->result);
	pc->result = NULL;
	while ((q = pc->head) != NULL) {
		pc->head = q->next;
		pc->nqueued--;
		if (q->cb)
			q->cb(NULL, q->arg);
		q_free(q);
	}
	pc->tail = NULL;
	pc->sent = false;
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	start_connect(arg);
}

/* Connection lost or failed: close, fail queries, schedule reconnect. */
static void
lose(struct pgconn *pc, const char *why)
{
	bool was_up = pc->state == PGC_READY || pc->state == PGC_SETUP;
	struct timeval tv;
	int delay;

	log_warnx("database connection %s lost: %s; reconnecting in %d ms",
	    pc->name, why, pc->backoff_ms);
	clear_events(pc);
	if (pc->conn) {
		PQfinish(pc->conn);
		pc->conn = NULL;
	}
	set_state(pc, PGC_WAIT_RETRY);
	fail_all(pc);
	if (was_up && pc->on_disconnect)
		pc->on_disconnect(pc, pc->cbarg);
	/* Jitter: 75..125% of the backoff, so instances do not stampede. */
	delay = pc->backoff_ms * 3 / 4 + rand() % (pc->backoff_ms / 2 + 1);
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	event_assign(pc->cev, pc->base, -1, 0, on_retry, pc);
	evtimer_add(pc->cev, &tv);
	pc->backoff_ms *= 2;
	if (pc->backoff_ms > PGC_BACKOFF_MAX)
		pc->backoff_ms = PGC_BACKOFF_MAX;
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pgconn *pc = arg;
	int r;
	(void)fd;
	(void)what;

	r = PQflush(pc->conn);
	if (r < 0)
		lose(pc, PQerrorMessage(pc->conn));
	else if (r == 1)
		event_add(pc->wev, NULL);
}

static void
finish_head(struct pgconn *pc)
{
	struct pgq *q = pc->head;
	PGresult *res = pc->result;

	pc->head = q->next;
	if (pc->head == NULL)
		pc->tail = NULL;
	pc->nqueued--;
	pc->sent = false;
	pc->result = NULL;
	if (q->internal && !pgconn_ok(res)) {
		log_warnx("database %s: setup step '%s' failed: %s", pc->name,
		    q->stmt, pgconn_errmsg(res));
	}
	if (q->cb)
		q->cb(res, q->arg);
	PQclear(res);
	q_free(q);
}

static void
read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pgconn *pc = arg;
	PGnotify *n;
	(void)fd;
	(void)what;

	if (!PQconsumeInput(pc->conn)) {
		lose(pc, PQerrorMessage(pc->conn));
		return;
	}
	while ((n = PQnotifies(pc->conn)) != NULL) {
		if (pc->on_notify)
			pc->on_notify(n->relname, n->extra, pc->cbarg);
		PQfreemem(n);
		if (pc->state != PGC_READY && pc->state != PGC_SETUP)
			return;
	}
	while (pc->sent && !PQisBusy(pc->conn)) {
		PGresult *res = PQgetResult(pc->conn);
		if (res != NULL) {
			/*
			 * Keep the first result, unless a later one is an
			 * error: a failed COMMIT (deferred constraint, disk
			 * full) arrives after the rows of the statement.
			 */
			if (pc->result == NULL)
				pc->result = res;
			else if (pgconn_ok(pc->result) && !pgconn_ok(res)) {
				PQclear(pc->result);
				pc->result = res;
			} else
				PQclear(res);
			continue;
		}
		finish_head(pc);
		if (pc->state != PGC_READY && pc->state != PGC_SETUP)
			return;
		send_next(pc);
	}
	if (PQstatus(pc->conn) == CONNECTION_BAD)
		lose(pc, PQerrorMessage(pc->conn));
}

static void
send_next(struct pgconn *pc)
{
	struct pgq *q = pc->head;
	int ok, r;

	if (q == NULL || pc->sent || pc->conn == NULL)
		return;
	if (q->prepared)
		ok = PQsendQueryPrepared(pc->conn, q->stmt, q->nparams,
		    (const char *const *)q->values, NULL, NULL, 0);
	else if (q->nparams > 0)
		ok = PQsendQueryParams(pc->conn, q->stmt, q->nparams, NULL,
		    (const char *const *)q->values, NULL, NULL, 0);
	else
		ok = PQsendQuery(pc->conn, q->stmt);
	if (!ok) {
		lose(pc, PQerrorMessage(pc->conn));
		return;
	}
	pc->sent = true;
	r = PQflush(pc->conn);
	if (r < 0)
		lose(pc, PQerrorMessage(pc->conn));
	else if (r == 1)
		event_add(pc->wev, NULL);
}

/*
 * Append q.  Internal steps are sent at once; a query of the caller is
 * sent from the kick event in the next loop iteration, so a send that
 * fails (and fails every queued callback) never runs a callback inside
 * pgconn_query().
 */
static void
enqueue(struct pgconn *pc, struct pgq *q, bool from_caller)
{
	if (pc->tail)
		pc->tail->next = q;
	else
		pc->head = q;
	pc->tail = q;
	pc->nqueued++;
	if (!from_caller)
		send_next(pc);
	else if (!pc->sent)
		event_active(pc->kick, EV_TIMEOUT, 0);
}

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pgconn *pc = arg;
	(void)fd;
	(void)what;

	if (pc->state == PGC_READY)
		send_next(pc);
}

static struct pgq *
q_new(const char *stmt, bool prepared, int nparams, const char *const *values,
    pgconn_result_cb *cb, void *arg)
{
	struct pgq *q = xcalloc(1, sizeof(*q));

	q->stmt = xstrdup(stmt);
	q->prepared = prepared;
	q->nparams = nparams;
	q->values = xcalloc((size_t)(nparams > 0 ? nparams : 1),
	    sizeof(char *));
	for (int i = 0; i < nparams; i++)
		q->values[i] = values[i] ? xstrdup(values[i]) : NULL;
	q->cb = cb;
	q->arg = arg;
	return q;
}

static void
setup_done(PGresult *res, void *arg)
{
	struct pgconn *pc = arg;

	if (res == NULL)
		return;		/* connection already lost */
	if (pc->setup_failed) {
		/* Not ready: reconnect with backoff until the schema fits
		 * (typically after aryzctl migrate), instead of running with
		 * statements that do not exist. */
		lose(pc, "setup refused by the server");
		return;
	}
	set_state(pc, PGC_READY);
	pc->backoff_ms = PGC_BACKOFF_MIN;
	log_info("database connection %s ready", pc->name);
	if (pc->on_connect)
		pc->on_connect(pc, pc->cbarg);
}

static void
setup_step(PGresult *res, void *arg)
{
	struct pgconn *pc = arg;

	/* A failed prepare means the schema is not what we expect. */
	if (res != NULL && !pgconn_ok(res)) {
		pc->setup_failed = true;
		log_errorx("database %s: setup failed, check the schema "
		    "version (aryzctl migrate)", pc->name);
	}
}

/* Connected: queue the prepares and LISTENs, then declare ready. */
static void
begin_setup(struct pgconn *pc)
{
	int fd = PQsocket(pc->conn);

	PQsetnonblocking(pc->conn, 1);
	pc->setup_failed = false;
	event_del(pc->cev);
	pc->rev = event_new(pc->base, fd, EV_READ | EV_PERSIST, read_cb, pc);
	pc->wev = event_new(pc->base, fd, EV_WRITE, flush_cb, pc);
	event_add(pc->rev, NULL);
	set_state(pc, PGC_SETUP);

	for (struct strlist *s = pc->stmts; s; s = s->next) {
		struct pgq *q = q_new(s->a, false, 0, NULL, setup_step, pc);
		free(q->stmt);
		q->stmt = xasprintf("PREPARE %s AS %s", s->a, s->b);
		q->internal = true;
		enqueue(pc, q, false);
	}
	for (struct strlist *s = pc->channels; s; s = s->next) {
		char *esc = PQescapeIdentifier(pc->conn, s->a, strlen(s->a));
		char *sql = xasprintf("LISTEN %s", esc ? esc : s->a);
		struct pgq *q = q_new(sql, false, 0, NULL, setup_step, pc);
		q->internal = true;
		enqueue(pc, q, false);
		free(sql);
		PQfreemem(esc);
	}
	enqueue(pc, q_new("SELECT 1", false, 0, NULL, setup_done, pc), false);
}

static void
connect_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pgconn *pc = arg;
	PostgresPollingStatusType st;
	struct timeval tv = { 10, 0 };	/* connect timeout per poll step */
	(void)fd;

	if (what & EV_TIMEOUT) {
		lose(pc, "connect timed out");
		return;
	}
	st = PQconnectPoll(pc->conn);
	switch (st) {
	case PGRES_POLLING_OK:
		begin_setup(pc);
		return;
	case PGRES_POLLING_READING:
		event_assign(pc->cev, pc->base, PQsocket(pc->conn), EV_READ,
		    connect_cb, pc);
		break;
	case PGRES_POLLING_WRITING:
		event_assign(pc->cev, pc->base, PQsocket(pc->conn), EV_WRITE,
		    connect_cb, pc);
		break;
	default:
		lose(pc, PQerrorMessage(pc->conn));
		return;
	}
	event_add(pc->cev, &tv);
}

static void
start_connect(struct pgconn *pc)
{
	set_state(pc, PGC_CONNECTING);
	pc->conn = PQconnectStart(pc->conninfo);
	if (pc->conn == NULL || PQstatus(pc->conn) == CONNECTION_BAD) {
		lose(pc, pc->conn ? PQerrorMessage(pc->conn) : "out of memory");
		return;
	}
	/* The first poll is due as if the socket were writable. */
	event_assign(pc->cev, pc->base, PQsocket(pc->conn), EV_WRITE,
	    connect_cb, pc);
	event_active(pc->cev, EV_WRITE, 0);
}

struct pgconn *
pgconn_new(struct event_base *base, const char *conninfo, const char *name)
{
	struct pgconn *pc = xcalloc(1, sizeof(*pc));

	pc->base = base;
	pc->conninfo = xstrdup(conninfo);
	pc->name = xstrdup(name);
	pc->backoff_ms = PGC_BACKOFF_MIN;
	pc->cev = event_new(base, -1, 0, on_retry, pc);
	pc->kick = event_new(base, -1, 0, kick_cb, pc);
	return pc;
}

void
pgconn_set_callbacks(struct pgconn *pc, pgconn_event_cb *on_connect,
    pgconn_event_cb *on_disconnect, pgconn_notify_cb *on_notify, void *arg)
{
	pc->on_connect = on_connect;
	pc->on_disconnect = on_disconnect;
	pc->on_notify = on_notify;
	pc->cbarg = arg;
}

static void
strlist_add(struct strlist **l, const char *a, const char *b)
{
	struct strlist *s = xcalloc(1, sizeof(*s));

	s->a = xstrdup(a);
	s->b = b ? xstrdup(b) : NULL;
	while (*l)
		l = &(*l)->next;
	*l = s;
}

static void
strlist_free(struct strlist **l)
{
	while (*l) {
		struct strlist *s = *l;
		*l = s->next;
		free(s->a);
		free(s->b);
		free(s);
	}
}

void
pgconn_prepare(struct pgconn *pc, const char *name, const char *sql)
{
	strlist_add(&pc->stmts, name, sql);
}

void
pgconn_listen(struct pgconn *pc, const char *channel)
{
	strlist_add(&pc->channels, channel, NULL);
}

void
pgconn_start(struct pgconn *pc)
{
	start_connect(pc);
}

bool
pgconn_ready(const struct pgconn *pc)
{
	return pc->state == PGC_READY;
}

int
pgconn_pending(const struct pgconn *pc)
{
	return pc->nqueued;
}

int
pgconn_query(struct pgconn *pc, const char *stmt, bool prepared, int nparams,
    const char *const *values, pgconn_result_cb *cb, void *arg)
{
	if (pc->state != PGC_READY || pc->nqueued >= PGC_MAX_QUEUE)
		return -1;
	enqueue(pc, q_new(stmt, prepared, nparams, values, cb, arg), true);
	return 0;
}

bool
pgconn_ok(const PGresult *res)
{
	ExecStatusType st;

	if (res == NULL)
		return false;
	st = PQresultStatus(res);
	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

const char *
pgconn_errmsg(const PGresult *res)
{
	const char *m;

	if (res == NULL)
		return "connection lost";
	m = PQresultErrorMessage(res);
	return (m && *m) ? m : "no error";
}

void
pgconn_free(struct pgconn **pcp)
{
	struct pgconn *pc = *pcp;

	if (pc == NULL)
		return;
	clear_events(pc);
	if (pc->cev)
		event_free(pc->cev);
	if (pc->kick)
		event_free(pc->kick);
	if (pc->conn)
		PQfinish(pc->conn);
	pc->conn = NULL;
	pc->state = PGC_IDLE;
	fail_all(pc);
	strlist_free(&pc->stmts);
	strlist_free(&pc->channels);
	free(pc->conninfo);
	free(pc->name);
	free(pc);
	*pcp = NULL;
}
