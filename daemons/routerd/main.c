/*
 * main.c - aryz-routerd start-up: configuration, database, event loop.
 * The work itself is in queue.c and in SQL (sql/migrations/0030_routing.sql).
 */
#include <event2/event.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "pgconn.h"
#include "routerd.h"

static const struct cfg_opt routerd_opts[] = {
	DAEMON_COMMON_OPTS(struct routerd_cfg),
	/*
	 * At most 64: every job of a batch is a subtransaction, and more
	 * than 64 per transaction overflow PostgreSQL's per-backend cache.
	 */
	{ "queue.batch_size", CFG_INT, offsetof(struct routerd_cfg,
	  batch_size), 50, NULL, 1, 64, CFG_RELOAD,
	  "route jobs claimed per transaction" },
	{ "queue.poll_interval_ms", CFG_INT, offsetof(struct routerd_cfg,
	  poll_interval_ms), 2000, NULL, 10, 600000, CFG_RELOAD,
	  "look for due jobs this often without a NOTIFY" },
	{ "queue.error_backoff_max_ms", CFG_INT, offsetof(struct routerd_cfg,
	  error_backoff_max_ms), 30000, NULL, 100, 600000, CFG_RELOAD,
	  "longest wait after failed batches" },
	{ "queue.worker_id", CFG_STR, offsetof(struct routerd_cfg, worker_id),
	  0, "", 0, 100, 0,
	  "actor name in complaint events; empty: aryz-routerd@host:pid" },
	CFG_END
};

static const char help[] =
"NAME\n"
"     aryz-routerd - router: takes complaints off the PostgreSQL queue, finds municipality,\n"
"     contract and provider, arms SLA timers, writes outbox messages\n"
"\n"
"SYNOPSIS\n"
"     aryz-routerd [-c config] [-n | --check-config] [--dump-config]\n"
"\n"
"DESCRIPTION\n"
"     aryz-routerd consumes the 'route' jobs that every ingress queues with\n"
"     a new complaint.  Each batch is one database transaction running\n"
"     aryz_route_batch(): it claims up to queue.batch_size due jobs with\n"
"     FOR UPDATE SKIP LOCKED and routes each complaint in a subtransaction:\n"
"       - no municipality or no category: status triage, the resident is\n"
"         asked by SMS for what is missing;\n"
"       - an open complaint of the same resident, category and\n"
"         municipality within duplicate_window_hours: status duplicate,\n"
"         linked to it, the resident is told the ticket it joined;\n"
"       - else routed: to the provider of the contract in force on the\n"
"         day of the complaint, or to the municipality's own service desk;\n"
"         SLA timers are armed and SMS/MQTT notifications written to the\n"
"         outbox (resident, provider dispatcher, municipality).\n"
"     A job that fails is retried with exponential backoff and jitter and\n"
"     moves to dead_letter after max_job_attempts (table aryz_setting);\n"
"     see aryzctl dead-letters and aryzctl requeue.\n"
"\n"
"     It wakes on NOTIFY aryz_job, polls every queue.poll_interval_ms,\n"
"     and drains at once after every (re)connect.  Any number of\n"
"     instances may run against one database.\n"
"\n"
"OPTIONS\n"
"     -c, --config file   configuration (default /etc/aryz/aryz-routerd.conf)\n"
"     -n, --check-config  validate the configuration, print\n"
"                         \"configuration OK\" and exit\n"
"     --dump-config       print the effective configuration and exit\n"
"     -h, --help          this text\n"
"     -V, --version       print the version\n"
"\n"
"SIGNALS\n"
"     SIGTERM, SIGINT     stop gracefully: the batch in flight commits, no\n"
"                         new one starts; a second signal exits at once\n"
"                         (the batch then commits or rolls back whole)\n"
"     SIGHUP              reload the configuration (queue.batch_size,\n"
"                         queue.poll_interval_ms, queue.error_backoff_max_ms,\n"
"                         log.*), reopen the log file\n"
"\n"
"FILES\n"
"     /etc/aryz/aryz-routerd.conf\n"
"     docs/queue.md       queue design, dead letters, autovacuum\n"
"\n"
"EXIT STATUS\n"
"     0 after a clean stop, 1 on a startup error, 2 on bad usage.\n";

struct routerd {
	struct daemon	*d;
	struct queue	*queue;
};

static void
routerd_stopped(void *arg)
{
	struct routerd *r = arg;

	daemon_stopped(r->d);
}

static void
routerd_stop(void *arg)
{
	struct routerd *r = arg;

	queue_stop(r->queue, routerd_stopped, r);
}

int
main(int argc, char **argv)
{
	struct routerd_cfg cfg = { 0 };
	struct routerd r = { 0 };
	struct daemon d = {
		.name = "aryz-routerd",
		.help = help,
		.default_config = "/etc/aryz/aryz-routerd.conf",
		.opts = routerd_opts,
		.cfg = &cfg,
		.cfg_size = sizeof(cfg),
		.on_stop = routerd_stop,
		.arg = &r,
	};
	struct pgconn *db;
	int rc;

	daemon_init(&d, argc, argv);
	/* Jitter of the retry backoff differs between instances. */
	srand((unsigned)time(NULL) ^ (unsigned)getpid());
	r.d = &d;
	db = pgconn_new(d.base, cfg.common.db_conninfo, "main");
	r.queue = queue_new(d.base, db, &cfg);
	pgconn_start(db);
	rc = daemon_run(&d);
	/* First the connection: it fails a batch still in flight into q. */
	pgconn_free(&db);
	queue_free(&r.queue);
	daemon_done(&d);
	return rc;
}
