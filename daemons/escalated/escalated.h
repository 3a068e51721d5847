/*
 * escalated.h - internal interface of aryz-escalated: its configuration
 * and the timer loop that fires due SLA timers in the database.
 */
#ifndef ARYZ_ESCALATED_H
#define ARYZ_ESCALATED_H

#include "daemon.h"

struct event_base;
struct pgconn;

struct escalated_cfg {
	struct daemon_common	common;
	int			batch_size;	/* timers per transaction */
	int			poll_interval_ms; /* longest sleep */
	int			idle_delay_ms;	/* sleep when due ones are busy */
	int			clock_offset_seconds; /* TESTING ONLY */
};

/* timers.c */
struct timers;

/*
 * The timer loop on connection db (not owned).  cfg is read at every
 * batch, so reloaded values apply from the next one.
 */
struct timers *timers_new(struct event_base *base, struct pgconn *db,
    const struct escalated_cfg *cfg);
/* Register the prepared statement, LISTEN and callbacks (before start). */
void timers_attach(struct timers *t);
/*
 * Stop firing; done(arg) is called once no batch is in flight (perhaps
 * before timers_stop returns).
 */
void timers_stop(struct timers *t, void (*done)(void *), void *arg);
/* The configuration was reloaded: recompute the sleep. */
void timers_reload(struct timers *t);
/* Timers fired since start. */
long long timers_fired(const struct timers *t);
/* Free; sets *tp to NULL.  Accepts NULL. */
void timers_free(struct timers **tp);

#endif
