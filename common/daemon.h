/*
 * daemon.h - what every aryz process does the same way: command line,
 * configuration, logging, privilege drop, event base and signals.
 *
 * Signals (handled through libevent, so handlers are ordinary code):
 *   SIGTERM, SIGINT  graceful stop: on_stop is called, the daemon drains
 *                    and calls daemon_stopped(); a second one exits at once
 *   SIGHUP           reload the configuration and reopen the log file
 *   SIGPIPE          ignored
 */
#ifndef ARYZ_DAEMON_H
#define ARYZ_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"

struct event_base;

/* Settings every daemon has; embed as member "common" of the config. */
struct daemon_common {
	char	*db_conninfo;
	char	*log_level;
	char	*log_file;
	char	*user;
	int	 shutdown_timeout;
};

#define DAEMON_COMMON_OPTS(T) \
	{ "database.conninfo", CFG_STR, offsetof(T, common.db_conninfo), 0, \
	  "host=127.0.0.1 port=5432 dbname=aryz user=aryz", 0, 4096, \
	  CFG_CONNINFO, \
	  "libpq connection string" }, \
	{ "log.level", CFG_STR, offsetof(T, common.log_level), 0, "info", 0, 16, \
	  CFG_RELOAD, "error, warn, info or debug" }, \
	{ "log.file", CFG_STR, offsetof(T, common.log_file), 0, "", 0, 4096, \
	  CFG_RELOAD, "log file; empty means stderr" }, \
	{ "user", CFG_STR, offsetof(T, common.user), 0, "", 0, 64, 0, \
	  "user to switch to when started as root" }, \
	{ "shutdown_timeout", CFG_INT, offsetof(T, common.shutdown_timeout), 10, \
	  NULL, 0, 3600, CFG_RELOAD, "seconds to drain on SIGTERM" }

struct daemon {
	/* Filled by the daemon before daemon_init(). */
	const char		*name;		/* "aryz-smsd" */
	const char		*help;		/* man-page style --help text */
	const char		*default_config;
	const struct cfg_opt	*opts;
	void			*cfg;		/* zeroed struct for opts */
	size_t			 cfg_size;
	/* Optional: extra validation after load; write err, return -1. */
	int			(*validate)(void *cfg, char *err, size_t len);
	void			(*on_stop)(void *arg);	/* begin draining */
	void			(*on_reload)(void *arg);/* config swapped in */
	void			*arg;

	/* Set by daemon_init(). */
	struct event_base	*base;
	const char		*config_path;
	bool			 stopping;
	struct daemon_priv	*priv;
};

/* The common part of the config of d. */
#define DAEMON_COMMON(d) ((struct daemon_common *)(d)->cfg)

/*
 * Parse the command line (-c, -n/--check-config, --dump-config, -h, -V),
 * load and validate the config, open the log, drop privileges, create the
 * event base and install signal handlers.  Exits the process itself for
 * --help, --version, --check-config and on any startup error.
 */
void daemon_init(struct daemon *d, int argc, char **argv);

/* Run the event loop until daemon_stopped() or a second signal. */
int daemon_run(struct daemon *d) __attribute__((warn_unused_result));

/* The daemon finished draining after on_stop: leave the loop. */
void daemon_stopped(struct daemon *d);

/* Free what daemon_init() made. */
void daemon_done(struct daemon *d);

/* Version string of aryz. */
extern const char aryz_version[];

#endif
