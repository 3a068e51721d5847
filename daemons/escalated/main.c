/*
 * main.c - aryz-escalated start-up: configuration, database, event loop.
 * The work itself is in timers.c (when to fire) and in the SQL function
 * aryz_fire_timers() (what firing does).
 */
#include <event2/event.h>
#include <stddef.h>
#include <stdlib.h>

#include "daemon.h"
#include "escalated.h"
#include "log.h"
#include "pgconn.h"

static const struct cfg_opt escalated_opts[] = {
	DAEMON_COMMON_OPTS(struct escalated_cfg),
	{ "timers.batch_size", CFG_INT,
	  offsetof(struct escalated_cfg, batch_size), 200, NULL, 1, 10000,
	  CFG_RELOAD, "timers claimed and fired per transaction" },
	{ "timers.poll_interval_ms", CFG_INT,
	  offsetof(struct escalated_cfg, poll_interval_ms), 5000, NULL, 10,
	  600000, CFG_RELOAD,
	  "longest sleep between looks at the database (NOTIFY fallback)" },
	{ "timers.idle_delay_ms", CFG_INT,
	  offsetof(struct escalated_cfg, idle_delay_ms), 50, NULL, 1, 60000,
	  CFG_RELOAD,
	  "pause when due timers are all claimed by another instance" },
	{ "timers.clock_offset_seconds", CFG_INT,
	  offsetof(struct escalated_cfg, clock_offset_seconds), 0, NULL, 0,
	  31536000, CFG_RELOAD,
	  "TESTING ONLY: pretend the clock is this far ahead; keep 0" },
	CFG_END
};

static const char help[] =
"NAME\n"
"     aryz-escalated - escalation: fires SLA timers, escalates up the chain, follows up\n"
"     with residents\n"
"\n"
"SYNOPSIS\n"
"     aryz-escalated [-c config] [-n | --check-config] [--dump-config]\n"
"\n"
"DESCRIPTION\n"
"     SLA timers live in the PostgreSQL table sla_timer, armed by aryz-routerd\n"
"     (aryz_arm_sla) and by status changes (aryz_transition).  aryz-escalated\n"
"     calls aryz_fire_timers(), which claims a batch of due timers (SKIP\n"
"     LOCKED on their complaints) and, in the same transaction, acts on each:\n"
"     warnings before a breach, breach events, escalation up the chain\n"
"     (provider dispatcher, municipal specialist, head of the aiyl okmotu,\n"
"     rayon administration), the legal bound of 14 working days, update\n"
"     reminders and the automatic close of resolved complaints.  Every step\n"
"     is an event in complaint_event and messages in the outbox.\n"
"\n"
"     The daemon sleeps until the next timer is due, wakes on NOTIFY\n"
"     aryz_timer when a sooner one is armed, and looks at least every\n"
"     timers.poll_interval_ms.  After a (re)connect it drains everything\n"
"     that fell due.  Several instances may run at once; none fires a\n"
"     timer twice, and a crash loses none.\n"
"\n"
"OPTIONS\n"
"     -c, --config file   configuration (default /etc/aryz/aryz-escalated.conf)\n"
"     -n, --check-config  validate the configuration, print\n"
"                         \"configuration OK\" and exit\n"
"     --dump-config       print the effective configuration and exit\n"
"     -h, --help          this text\n"
"     -V, --version       print the version\n"
"\n"
"SIGNALS\n"
"     SIGTERM, SIGINT     stop gracefully: the batch in flight commits first;\n"
"                         a second one exits at once (the batch in flight\n"
"                         then commits or rolls back as a whole)\n"
"     SIGHUP              reload the configuration (the timers.* settings\n"
"                         apply from the next batch), reopen the log file\n"
"\n"
"CONFIGURATION\n"
"     timers.batch_size (200), timers.poll_interval_ms (5000),\n"
"     timers.idle_delay_ms (50), and timers.clock_offset_seconds (0; for\n"
"     tests only: fire as if the clock were this far ahead).  All reload on\n"
"     SIGHUP.  --dump-config prints every setting.\n"
"\n"
"FILES\n"
"     /etc/aryz/aryz-escalated.conf  configuration; see docs/escalation.md\n"
"\n"
"EXIT STATUS\n"
"     0 after a clean stop, 1 on a startup error, 2 on bad usage.\n";

struct escalated {
	struct daemon	*d;
	struct timers	*timers;
};

static void
on_drained(void *arg)
{
	struct escalated *e = arg;

	daemon_stopped(e->d);
}

static void
on_stop(void *arg)
{
	struct escalated *e = arg;

	timers_stop(e->timers, on_drained, e);
}

static void
on_reload(void *arg)
{
	struct escalated *e = arg;

	timers_reload(e->timers);
}

int
main(int argc, char **argv)
{
	struct escalated_cfg cfg = { 0 };
	struct escalated e = { 0 };
	struct daemon d = {
		.name = "aryz-escalated",
		.help = help,
		.default_config = "/etc/aryz/aryz-escalated.conf",
		.opts = escalated_opts,
		.cfg = &cfg,
		.cfg_size = sizeof(cfg),
		.on_stop = on_stop,
		.on_reload = on_reload,
		.arg = &e,
	};
	struct pgconn *db;
	int rc;

	daemon_init(&d, argc, argv);
	e.d = &d;
	db = pgconn_new(d.base, cfg.common.db_conninfo, "main");
	e.timers = timers_new(d.base, db, &cfg);
	timers_attach(e.timers);
	pgconn_start(db);
	rc = daemon_run(&d);
	log_info("fired %lld timers in total", timers_fired(e.timers));
	/* pgconn_free may still call back into the timers: free it first. */
	pgconn_free(&db);
	timers_free(&e.timers);
	daemon_done(&d);
	return rc;
}
