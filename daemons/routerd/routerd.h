/*
 * routerd.h - aryz-routerd internals: configuration (main.c) and the
 * route-job queue consumer (queue.c).
 */
#ifndef ARYZ_ROUTERD_H
#define ARYZ_ROUTERD_H

#include <stdbool.h>

#include "daemon.h"

struct event_base;
struct pgconn;

struct routerd_cfg {
	struct daemon_common	common;
	int			batch_size;	/* jobs per claiming transaction */
	int			poll_interval_ms; /* fallback wake-up */
	int			error_backoff_max_ms; /* cap after failed batches */
	char			*worker_id;	/* actor in events; "" = host:pid */
};

/* queue.c */
struct queue;

/*
 * Create the consumer of db: registers LISTEN aryz_job and the
 * connect/notify callbacks, so call it before pgconn_start(db).  cfg is
 * read at every batch (reloadable values).
 */
struct queue *queue_new(struct event_base *base, struct pgconn *db,
    const struct routerd_cfg *cfg);
/*
 * Stop claiming.  done(arg) runs once no batch is in flight (at once if
 * none is): a batch is one transaction, so nothing is half done.
 */
void queue_stop(struct queue *q, void (*done)(void *), void *arg);
/* Free q and log its totals; sets *qp to NULL.  Accepts NULL. */
void queue_free(struct queue **qp);

#endif
