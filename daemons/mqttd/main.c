/*
 * main.c - aryz-mqttd start-up: configuration, database, event loop.
 */
#include <event2/event.h>
#include <stddef.h>
#include <stdlib.h>

#include "daemon.h"
#include "log.h"
#include "pgconn.h"

struct mqttd_cfg {
	struct daemon_common	common;
};

static const struct cfg_opt mqttd_opts[] = {
	DAEMON_COMMON_OPTS(struct mqttd_cfg),
	CFG_END
};

static const char help[] =
"NAME\n"
"     aryz-mqttd - MQTT ingest and publish: subscribes to complaint topics, publishes\n"
"     routed complaints and status changes from the outbox\n"
"\n"
"SYNOPSIS\n"
"     aryz-mqttd [-c config] [-n | --check-config] [--dump-config]\n"
"\n"
"OPTIONS\n"
"     -c, --config file   configuration (default /etc/aryz/aryz-mqttd.conf)\n"
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
	struct mqttd_cfg cfg = { 0 };
	struct daemon d = {
		.name = "aryz-mqttd",
		.help = help,
		.default_config = "/etc/aryz/aryz-mqttd.conf",
		.opts = mqttd_opts,
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
