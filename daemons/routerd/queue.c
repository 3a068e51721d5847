/*
 * queue.c - the route-job consumer of aryz-routerd.
 *
 * Routing is database-only work, so one statement does it all:
 * aryz_route_batch() claims up to batch_size due jobs with FOR UPDATE
 * SKIP LOCKED, routes each in a subtransaction and deletes it, in one
 * COMMIT.  This file only decides when to call it:
 *
 *   - on NOTIFY aryz_job (sent after the ingress COMMIT).  However many
 *     notifications arrive, at most one batch is in flight; those that
 *     arrive during a batch set "dirty" and cause one more batch;
 *   - again at once while a batch comes back full;
 *   - on a timer: when the earliest retried job is due, and at the
 *     latest after poll_interval_ms (covers a lost NOTIFY, and jobs
 *     released by a worker that died);
 *   - right after every (re)connect (notifications sent while we were
 *     away are lost);
 *   - after a failed batch, with exponential backoff and jitter.
 *
 * Several routerd processes may run at once: SKIP LOCKED gives them
 * disjoint jobs, and the complaint's status check makes a late repeat a
 * no-op.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>	/* embedded struct event */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pgconn.h"
#include "routerd.h"
#include "xmalloc.h"

/*
 * Not a prepared statement: planning it is trivial, and a server-side
 * prepared statement that failed (schema not migrated yet) would keep
 * failing after the fix until the next reconnect.
 */
#define Q_SQL		"SELECT claimed, routed, retried, dead, next_due_ms " \
			"FROM aryz_route_batch($1::int, $2::text)"
#define Q_CHANNEL	"aryz_job"
#define Q_BACKOFF_MIN	100	/* ms after the first failed batch */
#define Q_STATS_SEC	60	/* totals are logged this often when busy */
#define Q_WORKER_MAX	128	/* "aryz-routerd@" + host name + ":" + pid */

enum queue_state {
	QS_DOWN,	/* no database connection: waiting for on_connect */
	QS_IDLE,	/* connected, no batch in flight, timer armed */
	QS_BUSY,	/* a batch is in flight (exactly one) */
	QS_BACKOFF,	/* the last batch failed: only the timer restarts */
	QS_STOPPED,	/* queue_stop() ran: nothing is sent any more */
};

struct queue_totals {
	uint64_t	batches, claimed, routed, retried, dead;
	uint64_t	failed_batches;
};

struct queue {
	struct event_base		*base;
	struct pgconn			*db;
	const struct routerd_cfg	*cfg;
	enum queue_state		 state;
	bool				 dirty;	/* woken during a batch */
	bool				 stopping;
	int				 errors; /* consecutive failed batches */
	struct event			 ev_kick;  /* start a batch next turn */
	struct event			 ev_timer; /* poll, next due, backoff */
	struct event			 ev_stats; /* periodic totals */
	char				 worker[Q_WORKER_MAX];
	struct queue_totals		 tot, logged;
	void				(*done)(void *);
	void				*done_arg;
};

static void queue_send(struct queue *q);

static const char *
state_name(enum queue_state s)
{
	static const char *const names[] = { "down", "idle", "busy",
		"backoff", "stopped" };

	return names[s];
}

static void
enter_state(struct queue *q, enum queue_state s)
{
	if (q->state != s)
		log_debug("queue: %s -> %s", state_name(q->state),
		    state_name(s));
	q->state = s;
}

static void
arm_timer(struct queue *q, long long ms)
{
	struct timeval tv;

	if (ms < 1)
		ms = 1;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	evtimer_add(&q->ev_timer, &tv);
}

/* Wake-up: start a batch now, or remember to run one more. */
static void
queue_kick(struct queue *q, const char *why)
{
	switch (q->state) {
	case QS_IDLE:
		log_debug("queue: wake-up (%s)", why);
		evtimer_del(&q->ev_timer);	/* re-armed when idle again */
		enter_state(q, QS_BUSY);
		/*
		 * Deferred to the next loop turn: every notification read in
		 * this turn coalesces into this one batch.
		 */
		event_active(&q->ev_kick, EV_TIMEOUT, 0);
		break;
	case QS_BUSY:
		q->dirty = true;
		break;
	case QS_DOWN:		/* the reconnect drains */
	case QS_BACKOFF:	/* the backoff timer drains */
	case QS_STOPPED:
		break;
	}
}

static void
finish_stop(struct queue *q)
{
	void (*done)(void *) = q->done;

	enter_state(q, QS_STOPPED);
	evtimer_del(&q->ev_timer);
	q->done = NULL;
	if (done != NULL)
		done(q->done_arg);
}

/* Parse an integer column (NULL gives LLONG_MIN); false if not one. */
static bool
get_num(PGresult *res, int col, long long *out)
{
	const char *s;
	char *end;

	if (PQgetisnull(res, 0, col)) {
		*out = LLONG_MIN;
		return true;
	}
	s = PQgetvalue(res, 0, col);
	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno == 0 && end != s && *end == '\0';
}

/* After a batch that did not come back full: sleep until woken. */
static void
go_idle(struct queue *q, long long next_due_ms)
{
	long long wait = q->cfg->poll_interval_ms;

	enter_state(q, QS_IDLE);
	/* A retried job is due before the next poll: wake for it. */
	if (next_due_ms != LLONG_MIN && next_due_ms > 0 && next_due_ms < wait)
		wait = next_due_ms;
	arm_timer(q, wait);
}

static void
batch_failed(struct queue *q, const char *why)
{
	char msg[512];		/* the server's error, cut: one log line */
	long long ms = Q_BACKOFF_MIN;
	size_t n;

	snprintf(msg, sizeof(msg), "%s", why);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';

	q->tot.failed_batches++;
	for (int i = 1; i < q->errors && ms < q->cfg->error_backoff_max_ms; i++)
		ms *= 2;
	if (ms > q->cfg->error_backoff_max_ms)
		ms = q->cfg->error_backoff_max_ms;
	/* 75..125%: instances that failed together do not retry together. */
	ms = ms * 3 / 4 + rand() % (ms / 2 + 1);
	log_warnx("queue: route batch failed (%d in a row), retrying in %lld "
	    "ms: %s", q->errors, ms, msg);
	enter_state(q, QS_BACKOFF);
	arm_timer(q, ms);
}

static void
batch_done(PGresult *res, void *arg)
{
	struct queue *q = arg;
	long long claimed, routed, retried, dead, next_due;

	if (res == NULL) {
		/*
		 * Connection lost with the batch in flight: it committed or
		 * rolled back as a whole.  Either way the reconnect drains.
		 */
		enter_state(q, QS_DOWN);
		if (q->stopping)
			finish_stop(q);
		return;
	}
	if (!pgconn_ok(res) || PQntuples(res) != 1 || PQnfields(res) != 5 ||
	    !get_num(res, 0, &claimed) || !get_num(res, 1, &routed) ||
	    !get_num(res, 2, &retried) || !get_num(res, 3, &dead) ||
	    !get_num(res, 4, &next_due) || claimed < 0) {
		q->errors++;
		if (q->stopping)
			finish_stop(q);
		else
			batch_failed(q, pgconn_ok(res) ?
			    "unexpected result shape" : pgconn_errmsg(res));
		return;
	}
	q->errors = 0;
	q->tot.batches++;
	q->tot.claimed += (uint64_t)claimed;
	q->tot.routed += (uint64_t)routed;
	q->tot.retried += (uint64_t)retried;
	q->tot.dead += (uint64_t)dead;
	log_debug("queue: batch claimed=%lld routed=%lld retried=%lld "
	    "dead=%lld next_due_ms=%lld%s", claimed, routed, retried, dead,
	    next_due == LLONG_MIN ? 0 : next_due,
	    next_due == LLONG_MIN ? " (queue empty)" : "");
	if (retried > 0)
		log_warnx("queue: %lld route job(s) failed and will be "
		    "retried (see job.last_error)", retried);
	if (dead > 0)
		log_warnx("queue: %lld route job(s) moved to dead_letter "
		    "(aryzctl dead-letters)", dead);

	if (q->stopping) {
		finish_stop(q);
		return;
	}
	if (claimed >= q->cfg->batch_size || q->dirty) {
		q->dirty = false;
		queue_send(q);
		return;
	}
	go_idle(q, next_due);
}

/* Send one batch; state is QS_BUSY. */
static void
queue_send(struct queue *q)
{
	char limit[16];		/* batch_size <= 64 */
	const char *v[2];

	snprintf(limit, sizeof(limit), "%d", q->cfg->batch_size);
	v[0] = limit;
	v[1] = q->worker;
	if (pgconn_query(q->db, Q_SQL, false, 2, v, batch_done, q) < 0) {
		/* Not connected: on_connect will drain. */
		enter_state(q, QS_DOWN);
		if (q->stopping)
			finish_stop(q);
	}
}

static void
on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	(void)fd;
	(void)what;

	if (q->state != QS_BUSY)
		return;
	q->dirty = false;
	queue_send(q);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	(void)fd;
	(void)what;

	if (q->state == QS_BACKOFF)
		enter_state(q, QS_IDLE);
	queue_kick(q, "timer");
}

static void
on_stats(evutil_socket_t fd, short what, void *arg)
{
	struct queue *q = arg;
	(void)fd;
	(void)what;

	if (q->tot.batches == q->logged.batches &&
	    q->tot.failed_batches == q->logged.failed_batches)
		return;
	log_info("queue: last %ds: batches=%" PRIu64 " claimed=%" PRIu64
	    " routed=%" PRIu64 " retried=%" PRIu64 " dead=%" PRIu64
	    " failed_batches=%" PRIu64, Q_STATS_SEC,
	    q->tot.batches - q->logged.batches,
	    q->tot.claimed - q->logged.claimed,
	    q->tot.routed - q->logged.routed,
	    q->tot.retried - q->logged.retried,
	    q->tot.dead - q->logged.dead,
	    q->tot.failed_batches - q->logged.failed_batches);
	q->logged = q->tot;
}

static void
on_connect(struct pgconn *pc, void *arg)
{
	struct queue *q = arg;
	(void)pc;

	if (q->state == QS_STOPPED)
		return;
	log_info("queue: listening on %s as %s, draining", Q_CHANNEL,
	    q->worker);
	q->errors = 0;
	evtimer_del(&q->ev_timer);
	enter_state(q, QS_IDLE);
	queue_kick(q, "connect");
}

static void
on_disconnect(struct pgconn *pc, void *arg)
{
	struct queue *q = arg;
	(void)pc;

	if (q->state == QS_STOPPED)
		return;
	evtimer_del(&q->ev_timer);
	enter_state(q, QS_DOWN);
}

static void
on_notify(const char *channel, const char *payload, void *arg)
{
	struct queue *q = arg;

	if (strcmp(channel, Q_CHANNEL) != 0)
		return;
	/* The payload names the job kind; other kinds are not ours. */
	if (strcmp(payload, "escalate") == 0 || strcmp(payload, "notify") == 0)
		return;
	queue_kick(q, "notify");
}

struct queue *
queue_new(struct event_base *base, struct pgconn *db,
    const struct routerd_cfg *cfg)
{
	struct queue *q = xcalloc(1, sizeof(*q));
	struct timeval stats = { Q_STATS_SEC, 0 };
	char host[64];		/* longer names are cut: only a label */

	q->base = base;
	q->db = db;
	q->cfg = cfg;
	q->state = QS_DOWN;
	if (cfg->worker_id[0] != '\0')
		snprintf(q->worker, sizeof(q->worker), "%s", cfg->worker_id);
	else {
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		snprintf(q->worker, sizeof(q->worker), "aryz-routerd@%s:%ld",
		    host, (long)getpid());
	}
	event_assign(&q->ev_kick, base, -1, 0, on_kick, q);
	evtimer_assign(&q->ev_timer, base, on_timer, q);
	event_assign(&q->ev_stats, base, -1, EV_PERSIST, on_stats, q);
	evtimer_add(&q->ev_stats, &stats);

	pgconn_listen(db, Q_CHANNEL);
	pgconn_set_callbacks(db, on_connect, on_disconnect, on_notify, q);
	return q;
}

void
queue_stop(struct queue *q, void (*done)(void *), void *arg)
{
	q->stopping = true;
	q->done = done;
	q->done_arg = arg;
	/* The connection carries only our batches: pending means in flight. */
	if (q->state == QS_BUSY && pgconn_pending(q->db) > 0) {
		log_info("queue: waiting for the batch in flight");
		return;		/* batch_done() finishes the stop */
	}
	event_del(&q->ev_kick);
	finish_stop(q);
}

void
queue_free(struct queue **qp)
{
	struct queue *q = *qp;

	if (q == NULL)
		return;
	event_del(&q->ev_kick);
	evtimer_del(&q->ev_timer);
	evtimer_del(&q->ev_stats);
	log_info("queue: totals batches=%" PRIu64 " claimed=%" PRIu64
	    " routed=%" PRIu64 " retried=%" PRIu64 " dead=%" PRIu64
	    " failed_batches=%" PRIu64, q->tot.batches, q->tot.claimed,
	    q->tot.routed, q->tot.retried, q->tot.dead,
	    q->tot.failed_batches);
	free(q);
	*qp = NULL;
}
