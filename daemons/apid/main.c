/*
 * main.c - aryz-apid start-up: configuration, database, HTTP listener,
 * event loop, graceful stop (answer what is in flight, then exit).
 */
#include <event2/event.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "apid.h"
#include "log.h"
#include "pgconn.h"

static const struct cfg_opt apid_opts[] = {
	DAEMON_COMMON_OPTS(struct apid_cfg),
	{ "http.listen", CFG_STR, offsetof(struct apid_cfg, http_listen), 0,
	  "127.0.0.1", 1, 255, 0, "address to listen on" },
	{ "http.port", CFG_INT, offsetof(struct apid_cfg, http_port), 8081,
	  NULL, 1, 65535, 0, "TCP port to listen on" },
	{ "http.max_body", CFG_INT, offsetof(struct apid_cfg, http_max_body),
	  16384, NULL, 256, 1048576, 0,
	  "largest request body in bytes; larger ones get 413" },
	{ "http.timeout", CFG_INT, offsetof(struct apid_cfg, http_timeout), 30,
	  NULL, 1, 3600, 0, "seconds an idle or slow connection may live" },
	{ "api.token", CFG_STR, offsetof(struct apid_cfg, api_token), 0, "",
	  0, 256, CFG_RELOAD | CFG_SECRET,
	  "Bearer token for staff actions (ack/done/reject); empty disables" },
	{ "open311.api_key", CFG_STR,
	  offsetof(struct apid_cfg, open311_api_key), 0, "", 0, 256,
	  CFG_RELOAD | CFG_SECRET, "api_key of Open311 clients that may POST requests; "
	  "empty disables" },
	{ "api.default_limit", CFG_INT,
	  offsetof(struct apid_cfg, api_default_limit), 50, NULL, 1, 1000,
	  CFG_RELOAD, "page size when the client gives no limit" },
	{ "api.max_limit", CFG_INT, offsetof(struct apid_cfg, api_max_limit),
	  200, NULL, 1, 1000, CFG_RELOAD, "largest page size a client may ask" },
	CFG_END
};

static const char help[] =
"NAME\n"
"     aryz-apid - staff and provider dashboard, JSON API, Open311 and metrics\n"
"\n"
"SYNOPSIS\n"
"     aryz-apid [-c config] [-n | --check-config] [--dump-config]\n"
"\n"
"DESCRIPTION\n"
"     aryz-apid serves the read side of aryz over HTTP, plus the staff\n"
"     actions acknowledge, done and reject.  Every answer comes from one\n"
"     query on PostgreSQL; when the database is unreachable it answers 503\n"
"     so that clients retry.  Bad input gets 400 with a reason.\n"
"\n"
"OPTIONS\n"
"     -c, --config file   configuration (default /etc/aryz/aryz-apid.conf)\n"
"     -n, --check-config  validate the configuration, print\n"
"                         \"configuration OK\" and exit\n"
"     --dump-config       print the effective configuration and exit\n"
"     -h, --help          this text\n"
"     -V, --version       print the version\n"
"\n"
"ENDPOINTS\n"
"     GET  /                                  dashboard (HTML)\n"
"     GET  /health                            200, or 503 when the DB is down\n"
"     GET  /metrics                           Prometheus text format\n"
"     GET  /api/v1/complaints                 ?municipality=&status=&provider=\n"
"                                             &limit=&after_id=\n"
"     GET  /api/v1/complaints/TICKET          one complaint with its events\n"
"     POST /api/v1/complaints/TICKET/ack      staff: Authorization: Bearer\n"
"     POST /api/v1/complaints/TICKET/done     staff\n"
"     POST /api/v1/complaints/TICKET/reject   staff, body {\"reason\": \"...\"}\n"
"     GET  /api/v1/municipalities?q=          search by name or alias\n"
"     GET  /api/v1/providers/ID/scorecard     provider performance\n"
"     GET  /open311/v2/services.json          Open311 GeoReport v2\n"
"     GET  /open311/v2/requests.json\n"
"     POST /open311/v2/requests.json          new complaint (form: api_key,\n"
"                                             service_code, description,\n"
"                                             address_id or lat/long, phone;\n"
"                                             Idempotency-Key header)\n"
"     GET  /open311/v2/requests/TICKET.json\n"
"\n"
"SIGNALS\n"
"     SIGTERM, SIGINT     stop gracefully: answer requests in flight, then\n"
"                         exit; a second one exits at once\n"
"     SIGHUP              reload the configuration (api.*, log.*), reopen\n"
"                         the log file\n"
"\n"
"FILES\n"
"     /etc/aryz/aryz-apid.conf\n"
"\n"
"EXIT STATUS\n"
"     0 after a clean stop, 1 on a startup error, 2 on bad usage.\n";

static int
validate(void *arg, char *err, size_t len)
{
	struct apid_cfg *c = arg;

	if (c->api_default_limit > c->api_max_limit) {
		snprintf(err, len, "api.default_limit (%d) is larger than "
		    "api.max_limit (%d)", c->api_default_limit,
		    c->api_max_limit);
		return -1;
	}
	return 0;
}

static void
on_stop(void *arg)
{
	struct apid *a = arg;

	a->stopping = true;
	if (a->inflight > 0)
		log_info("waiting for %d request(s) in flight", a->inflight);
	http_check_drained(a);
}

static void
session_done(PGresult *res, void *arg)
{
	(void)arg;
	if (res != NULL && !pgconn_ok(res))
		log_warnx("cannot set plan_cache_mode: %s", pgconn_errmsg(res));
}

/*
 * Each (re)connect: plan every execution for its parameters.  The list
 * queries have optional filters ("$1 IS NULL OR ..."); the generic plan
 * PostgreSQL switches to after five runs cannot drop the unused ones and
 * sorts the whole table (measured: 1.5 ms -> 36 ms for a page of 50).
 */
static void
on_connect(struct pgconn *pc, void *arg)
{
	(void)arg;
	if (pgconn_query(pc, "SET plan_cache_mode = force_custom_plan", false,
	    0, NULL, session_done, NULL) < 0)
		log_warnx("cannot queue the session set-up");
}

static void
on_reload(void *arg)
{
	struct apid *a = arg;

	log_info("staff actions %s", a->cfg->api_token[0] ? "enabled" :
	    "disabled (api.token is empty)");
}

int
main(int argc, char **argv)
{
	struct apid_cfg cfg = { 0 };
	struct apid a = { 0 };
	struct daemon d = {
		.name = "aryz-apid",
		.help = help,
		.default_config = "/etc/aryz/aryz-apid.conf",
		.opts = apid_opts,
		.cfg = &cfg,
		.cfg_size = sizeof(cfg),
		.validate = validate,
		.on_stop = on_stop,
		.on_reload = on_reload,
		.arg = &a,
	};
	int rc;

	a.d = &d;
	a.cfg = &cfg;
	daemon_init(&d, argc, argv);
	a.db = pgconn_new(d.base, cfg.common.db_conninfo, "main");
	pgconn_set_callbacks(a.db, on_connect, NULL, NULL, &a);
	api_prepare(a.db);
	open311_prepare(a.db);
	dashboard_prepare(a.db);
	metrics_prepare(a.db);
	if (http_start(&a) < 0)
		fatalx("cannot start the HTTP listener");
	on_reload(&a);
	pgconn_start(a.db);
	rc = daemon_run(&d);
	/*
	 * Database first: queries still queued (drain deadline) are failed
	 * and their callbacks answer 503 on requests evhttp still owns.
	 */
	a.stopping = true;
	pgconn_free(&a.db);
	http_stop(&a);
	daemon_done(&d);
	return rc;
}
