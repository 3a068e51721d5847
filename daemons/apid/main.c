/*
 * main.c - aryz-apid start-up: configuration, database, event loop.
 */
#include <event2/event.h>
#include <stddef.h>
#include <stdlib.h>

#include "daemon.h"
#include "log.h"
#include "pgconn.h"

struct apid_cfg {
	struct daemon_common	common;
};

static const struct cfg_opt apid_opts[] = {
	DAEMON_COMMON_OPTS(struct apid_cfg),
	CFG_END
};

static const char help[] =
"NAME\n"
"     aryz-apid - staff and provider dashboard, JSON API, Open311 and metrics\n"
"\n"
"SYNOPSIS\n"
"     aryz-apid [-c config] [-n | --check-config] [--dump-config]\n"
"\n"
"OPTIONS\n"
"     -c, --config file   configuration (default /etc/aryz/aryz-apid.conf)\n"
"     -n, --check-config  validate the configuration, print\n"
"                         \"configuration OK\" and exit\n"
"     --dump-config       print the effective configuration and exit\n"
"     -h, --help          this text\n"
"     -V, --version       print the version\n"
"\n"
"SIGNALS\n"
"     SIGTERM, SIGINT     stop gracefully; a second one exits at once\n"
"     SIGHUP              reload the configuration, reopen the log file\n"
"\n"
"EXIT STATUS\n"
"     0 after a clean stop, 1 on a startup error, 2 on bad usage.\n";

int
main(int argc, char **argv)
{
	struct apid_cfg cfg = { 0 };
	struct daemon d = {
		.name = "aryz-apid",
		.help = help,
		.default_config = "/etc/aryz/aryz-apid.conf",
		.opts = apid_opts,
		.cfg = &cfg,
		.cfg_size = sizeof(cfg),
	};
	struct pgconn *db;
	int rc;

	daemon_init(&d, argc, argv);
	db = pgconn_new(d.base, cfg.common.db_conninfo, "main");
	pgconn_start(db);
	rc = daemon_run(&d);
	pgconn_free(&db);
	daemon_done(&d);
	return rc;
}
