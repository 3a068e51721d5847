/*
 * timers.c - the timer loop of aryz-escalated.
 *
 * The timers live in PostgreSQL (sla_timer); firing one is database work
 * done by aryz_fire_timers() (sql/migrations/0040_escalation.sql), which
 * claims a batch of due timers with FOR UPDATE SKIP LOCKED, acts on them
 * and marks them fired in one transaction, and answers how long until the
 * next one is due.  This loop only decides when to call it:
 *
 *   - at once after every (re)connect, to drain what fell due meanwhile;
 *   - again at once while batches come back full;
 *   - otherwise when the next timer is due, but at least every
 *     poll_interval_ms (in case a NOTIFY was lost);
 *   - when NOTIFY aryz_timer says a timer was armed (it may be sooner).
 *
 * Several instances may run: SKIP LOCKED keeps them from firing a timer
 * twice, and a crash rolls back the batch in flight, so nothing is lost.
 */
#include <errno.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escalated.h"
#include "log.h"
#include "pgconn.h"
#include "xmalloc.h"

#define TIMERS_STMT	"esc_fire"
#define TIMERS_CHANNEL	"aryz_timer"

enum timers_state {
	TM_WAIT_DB,		/* not connected: on_connect restarts us */
	TM_SLEEPING,		/* ev armed for the next batch */
	TM_FIRING,		/* one aryz_fire_timers() call in flight */
	TM_STOPPED,		/* SIGTERM: nothing in flight, nothing armed */
};

struct timers {
	struct event_base		*base;
	struct pgconn			*db;
	const struct escalated_cfg	*cfg;
	struct event			 ev;	/* wake-up for the next batch */
	enum timers_state		 state;
	bool				 rerun;	/* NOTIFY during a batch */
	bool				 stopping;
	void				(*done)(void *);
	void				*done_arg;
	long long			 fired;	/* since start */
	long long			 batches;
};

static void timers_fire(struct timers *t);

static void
enter_state(struct timers *t, enum timers_state st)
{
	static const char *const names[] = { "wait_db", "sleeping", "firing",
		"stopped" };

	if (t->state != st)
		log_debug("timers: %s -> %s", names[t->state], names[st]);
	t->state = st;
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	timers_fire(arg);
}

/* Sleep ms milliseconds (0: yield to the loop once, then fire). */
static void
timers_sleep(struct timers *t, long long ms)
{
	struct timeval tv;

	if (ms < 0)
		ms = 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	enter_state(t, TM_SLEEPING);
	evtimer_add(&t->ev, &tv);
}

static void
timers_finish_stop(struct timers *t)
{
	void (*done)(void *) = t->done;

	evtimer_del(&t->ev);
	enter_state(t, TM_STOPPED);
	log_info("timer loop stopped, fired=%lld batches=%lld", t->fired,
	    t->batches);
	t->done = NULL;
	if (done != NULL)
		done(t->done_arg);
}

/* Parse a non-negative decimal count; -1 if it is not one. */
static long long
parse_count(const char *s)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0)
		return -1;
	return v;
}

static void
on_fired(PGresult *res, void *arg)
{
	struct timers *t = arg;
	const struct escalated_cfg *cfg = t->cfg;
	long long fired, next_ms, sleep_ms;

	if (res == NULL) {
		/*
		 * Connection lost with the batch in flight: it either
		 * committed or rolled back as a whole; on_connect drains
		 * whatever is still due.
		 */
		enter_state(t, TM_WAIT_DB);
		if (t->stopping)
			timers_finish_stop(t);
		return;
	}
	if (!pgconn_ok(res) || PQntuples(res) != 1 || PQnfields(res) < 2) {
		log_warnx("firing timers failed: %s; retrying in %d ms",
		    pgconn_ok(res) ? "unexpected result shape" :
		    pgconn_errmsg(res), cfg->poll_interval_ms);
		if (t->stopping)
			timers_finish_stop(t);
		else
			timers_sleep(t, cfg->poll_interval_ms);
		return;
	}
	fired = parse_count(PQgetvalue(res, 0, 0));
	if (fired < 0) {
		log_warnx("firing timers: bad count '%s'", PQgetvalue(res, 0, 0));
		fired = 0;
	}
	/* NULL: nothing is armed at all. */
	next_ms = PQgetisnull(res, 0, 1) ? -1 :
	    parse_count(PQgetvalue(res, 0, 1));
	t->batches++;
	t->fired += fired;
	if (fired > 0)
		log_info("fired=%lld total=%lld next_in_ms=%lld", fired,
		    t->fired, next_ms);
	if (t->stopping) {
		timers_finish_stop(t);
		return;
	}

	if (fired >= cfg->batch_size || t->rerun)
		sleep_ms = 0;		/* more are due, or one was armed */
	else if (PQgetisnull(res, 0, 1))
		sleep_ms = cfg->poll_interval_ms;
	else if (next_ms <= 0)
		/* Due but claimed by another instance (or just now due). */
		sleep_ms = cfg->idle_delay_ms;
	else
		/* +1: wake just after, not just before, the due time. */
		sleep_ms = next_ms + 1;
	if (sleep_ms > cfg->poll_interval_ms)
		sleep_ms = cfg->poll_interval_ms;
	t->rerun = false;
	timers_sleep(t, sleep_ms);
}

static void
timers_fire(struct timers *t)
{
	char limit[16], offset[16];	/* decimal int */
	const char *params[2] = { limit, offset };

	if (t->stopping || t->state == TM_FIRING)
		return;
	evtimer_del(&t->ev);
	snprintf(limit, sizeof(limit), "%d", t->cfg->batch_size);
	snprintf(offset, sizeof(offset), "%d", t->cfg->clock_offset_seconds);
	if (pgconn_query(t->db, TIMERS_STMT, true, 2, params, on_fired,
	    t) < 0) {
		/* Not connected: on_connect starts us again. */
		enter_state(t, TM_WAIT_DB);
		return;
	}
	t->rerun = false;
	enter_state(t, TM_FIRING);
}

static void
on_connect(struct pgconn *pc, void *arg)
{
	struct timers *t = arg;
	(void)pc;

	if (t->stopping)
		return;
	if (t->cfg->clock_offset_seconds != 0)
		log_warnx("clock_offset_seconds=%d: timers fire early; "
		    "for tests only", t->cfg->clock_offset_seconds);
	/* Drain whatever fell due while we were away. */
	timers_fire(t);
}

static void
on_disconnect(struct pgconn *pc, void *arg)
{
	struct timers *t = arg;
	(void)pc;

	evtimer_del(&t->ev);
	if (t->state != TM_STOPPED)
		enter_state(t, TM_WAIT_DB);
}

static void
on_notify(const char *channel, const char *payload, void *arg)
{
	struct timers *t = arg;

	if (strcmp(channel, TIMERS_CHANNEL) != 0)
		return;
	log_debug("timer armed, due %s", payload ? payload : "?");
	/*
	 * Ask the database rather than trusting the payload: one cheap
	 * query answers both "is anything due" and "when is the next".
	 */
	if (t->state == TM_FIRING)
		t->rerun = true;
	else if (t->state == TM_SLEEPING)
		timers_fire(t);
}

struct timers *
timers_new(struct event_base *base, struct pgconn *db,
    const struct escalated_cfg *cfg)
{
	struct timers *t = xcalloc(1, sizeof(*t));

	t->base = base;
	t->db = db;
	t->cfg = cfg;
	t->state = TM_WAIT_DB;
	evtimer_assign(&t->ev, base, on_wake, t);
	return t;
}

void
timers_attach(struct timers *t)
{
	pgconn_prepare(t->db, TIMERS_STMT,
	    "SELECT fired, next_in_ms FROM aryz_fire_timers($1::int, $2::int)");
	pgconn_listen(t->db, TIMERS_CHANNEL);
	pgconn_set_callbacks(t->db, on_connect, on_disconnect, on_notify, t);
}

void
timers_stop(struct timers *t, void (*done)(void *), void *arg)
{
	t->stopping = true;
	t->done = done;
	t->done_arg = arg;
	if (t->state != TM_FIRING)
		timers_finish_stop(t);
	/* else on_fired finishes the stop when the batch commits. */
}

void
timers_reload(struct timers *t)
{
	/* The sleep was computed with the old settings: look again now. */
	if (t->state == TM_SLEEPING)
		timers_fire(t);
	else if (t->state == TM_FIRING)
		t->rerun = true;
}

long long
timers_fired(const struct timers *t)
{
	return t->fired;
}

void
timers_free(struct timers **tp)
{
	struct timers *t = *tp;

	if (t == NULL)
		return;
	evtimer_del(&t->ev);
	free(t);
	*tp = NULL;
}
