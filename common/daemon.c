/*
 * daemon.c - shared start-up, signals, reload and shutdown of aryz daemons.
 */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "xmalloc.h"

const char aryz_version[] = "0.1.0";

struct daemon_priv {
	struct event	*ev_term, *ev_int, *ev_hup;
	struct event	*ev_deadline;	/* shutdown_timeout after SIGTERM */
};

static void
usage_exit(const struct daemon *d, int code)
{
	fputs(d->help, code ? stderr : stdout);
	exit(code);
}

static int
apply_log(const struct daemon *d)
{
	struct daemon_common *c = DAEMON_COMMON(d);
	int lvl = log_level_parse(c->log_level);

	if (lvl < 0)
		lvl = LOG_LVL_INFO;
	return log_init(d->name, c->log_file, lvl);
}

/* Validate cfg, a config of daemon arg (the current one or a reload). */
static int
validate_cfg(void *cfg, void *arg, char *err, size_t len)
{
	struct daemon *d = arg;
	struct daemon_common *c = cfg;

	if (log_level_parse(c->log_level) < 0) {
		snprintf(err, len, "%s: log.level '%s' is not one of error, "
		    "warn, info, debug", d->config_path, c->log_level);
		return -1;
	}
	if (d->validate != NULL)
		return d->validate(cfg, err, len);
	return 0;
}

static int
validate(struct daemon *d, char *err, size_t len)
{
	return validate_cfg(d->cfg, d, err, len);
}

/* Switch to the configured user when started as root; refuse otherwise. */
static void
drop_privileges(const struct daemon *d)
{
	const char *user = DAEMON_COMMON(d)->user;
	struct passwd *pw;

	if (geteuid() != 0)
		return;
	if (user[0] == '\0')
		fatalx("refusing to run as root: set user = \"name\" in %s",
		    d->config_path);
	if ((pw = getpwnam(user)) == NULL)
		fatalx("user '%s' does not exist", user);
	if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		fatal("cannot switch to user %s", user);
	if (setuid(0) == 0)
		fatalx("privilege drop to %s did not stick", user);
	log_info("running as user %s", user);
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	(void)fd;
	(void)what;
	log_warnx("drain did not finish within %d s, stopping anyway",
	    DAEMON_COMMON(d)->shutdown_timeout);
	event_base_loopbreak(d->base);
}

static void
on_term(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval tv = { DAEMON_COMMON(d)->shutdown_timeout, 0 };
	(void)what;

	if (d->stopping) {
		log_warnx("signal %d again, exiting immediately", (int)sig);
		_exit(1);
	}
	d->stopping = true;
	log_info("signal %d: draining, send again to exit at once", (int)sig);
	d->priv->ev_deadline = evtimer_new(d->base, on_deadline, d);
	evtimer_add(d->priv->ev_deadline, &tv);
	if (d->on_stop != NULL)
		d->on_stop(d->arg);
	else
		daemon_stopped(d);
}

static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	(void)sig;
	(void)what;

	log_reopen();
	if (cfg_reload(d->opts, d->cfg, d->cfg_size, d->config_path,
	    validate_cfg, d) < 0)
		return;
	if (apply_log(d) < 0)
		log_warn("cannot open log file %s, logging where it was",
		    DAEMON_COMMON(d)->log_file);
	if (d->on_reload != NULL)
		d->on_reload(d->arg);
}

void
daemon_init(struct daemon *d, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'n' },
		{ "dump-config", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	char err[512];		/* one file:line: message */
	bool check = false, dump = false;
	int ch;

	d->config_path = d->default_config;
	while ((ch = getopt_long(argc, argv, "c:nhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			d->config_path = optarg;
			break;
		case 'n':
			check = true;
			break;
		case 'D':
			dump = true;
			break;
		case 'h':
			usage_exit(d, 0);
			break;
		case 'V':
			printf("%s %s\n", d->name, aryz_version);
			exit(0);
		default:
			usage_exit(d, 2);
		}
	}
	if (optind != argc)
		usage_exit(d, 2);

	if (cfg_load(d->opts, d->cfg, d->config_path, err, sizeof(err)) < 0 ||
	    validate(d, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", d->name, err);
		exit(1);
	}
	if (check) {
		printf("configuration OK\n");
		cfg_free(d->opts, d->cfg);
		exit(0);
	}
	if (dump) {
		cfg_dump(d->opts, d->cfg, stdout);
		cfg_free(d->opts, d->cfg);
		exit(0);
	}
	if (apply_log(d) < 0)
		fatal("cannot open log file %s", DAEMON_COMMON(d)->log_file);
	drop_privileges(d);
	signal(SIGPIPE, SIG_IGN);

	d->priv = xcalloc(1, sizeof(*d->priv));
	if ((d->base = event_base_new()) == NULL)
		fatalx("cannot create event base");
	d->priv->ev_term = evsignal_new(d->base, SIGTERM, on_term, d);
	d->priv->ev_int = evsignal_new(d->base, SIGINT, on_term, d);
	d->priv->ev_hup = evsignal_new(d->base, SIGHUP, on_hup, d);
	evsignal_add(d->priv->ev_term, NULL);
	evsignal_add(d->priv->ev_int, NULL);
	evsignal_add(d->priv->ev_hup, NULL);
	log_info("%s %s starting, config %s", d->name, aryz_version,
	    d->config_path);
}

int
daemon_run(struct daemon *d)
{
	if (event_base_dispatch(d->base) < 0) {
		log_errorx("event loop failed");
		return 1;
	}
	log_info("%s stopped", d->name);
	return 0;
}

void
daemon_stopped(struct daemon *d)
{
	event_base_loopbreak(d->base);
}

void
daemon_done(struct daemon *d)
{
	if (d->priv != NULL) {
		if (d->priv->ev_term)
			event_free(d->priv->ev_term);
		if (d->priv->ev_int)
			event_free(d->priv->ev_int);
		if (d->priv->ev_hup)
			event_free(d->priv->ev_hup);
		if (d->priv->ev_deadline)
			event_free(d->priv->ev_deadline);
		xfree(&d->priv);
	}
	if (d->base != NULL) {
		event_base_free(d->base);
		d->base = NULL;
	}
	cfg_free(d->opts, d->cfg);
}
