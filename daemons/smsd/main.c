/*
 * main.c - aryz-smsd start-up: configuration, database connections and
 * prepared statements, the lexicon and USSD reference caches, the janitor
 * timer, graceful drain on SIGTERM.
 */
#include <event2/event.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "lexicon_pg.h"
#include "log.h"
#include "normalize.h"
#include "pgconn.h"
#include "smsd.h"
#include "xmalloc.h"

#define S(path, field, def, max, fl, help) \
	{ path, CFG_STR, offsetof(struct smsd_cfg, field), 0, def, 0, max, fl, help }
#define I(path, field, def, min, max, fl, help) \
	{ path, CFG_INT, offsetof(struct smsd_cfg, field), def, NULL, min, max, fl, help }

static const struct cfg_opt smsd_opts[] = {
	DAEMON_COMMON_OPTS(struct smsd_cfg),
	I("database.pool", db_pool, 2, 1, 16, 0,
	    "ingress database connections (one query at a time each)"),
	S("http.listen", http_listen, "127.0.0.1", 64, 0, "address to listen on"),
	I("http.port", http_port, 8080, 1, 65535, 0, "TCP port"),
	I("http.max_body", http_max_body, 65536, 1024, 1048576, 0,
	    "largest request body in bytes; larger ones get 413 unread"),
	I("http.max_text", http_max_text, 2000, 160, 65536, CFG_RELOAD,
	    "largest message text in bytes; larger is stored as rejected, 413"),
	I("http.timeout", http_timeout, 30, 1, 600, 0,
	    "seconds to read a request"),
	S("kannel.token", kannel_token, "", 256, CFG_RELOAD | CFG_SECRET,
	    "shared secret for /sms/kannel (X-Aryz-Token or token=); empty: none"),
	S("kannel.allow", kannel_allow, "127.0.0.1, ::1", 1024, CFG_RELOAD,
	    "client addresses allowed on /sms/kannel; empty: any"),
	S("json.token", json_token, "", 256, CFG_RELOAD | CFG_SECRET, "secret for /sms/json"),
	S("json.allow", json_allow, "127.0.0.1, ::1", 1024, CFG_RELOAD,
	    "clients allowed on /sms/json"),
	S("ussd.token", ussd_token, "", 256, CFG_RELOAD | CFG_SECRET, "secret for /ussd"),
	S("ussd.allow", ussd_allow, "127.0.0.1, ::1", 1024, CFG_RELOAD,
	    "clients allowed on /ussd"),
	I("ussd.session_ttl", ussd_session_ttl, 86400, 60, 2592000, CFG_RELOAD,
	    "seconds a finished or abandoned session row is kept"),
	S("dlr.token", dlr_token, "", 256, CFG_RELOAD | CFG_SECRET, "secret for /dlr"),
	S("dlr.allow", dlr_allow, "127.0.0.1, ::1", 1024, CFG_RELOAD,
	    "clients allowed on /dlr"),
	I("multipart.max_age", mp_max_age, 600, 1, 604800, CFG_RELOAD,
	    "seconds before an incomplete multipart SMS becomes a complaint "
	    "with what arrived"),
	I("multipart.check_interval", mp_check, 30, 1, 3600, CFG_RELOAD,
	    "seconds between multipart sweeps"),
	{ "mt.enabled", CFG_BOOL, offsetof(struct smsd_cfg, mt_enabled), 1,
	  NULL, 0, 1, 0, "send outbox SMS through Kannel" },
	S("mt.url", mt_url, "http://127.0.0.1:13013/cgi-bin/sendsms", 1024, 0,
	    "Kannel sendsms URL"),
	S("mt.username", mt_username, "aryz", 128, CFG_RELOAD,
	    "sendsms-user username"),
	S("mt.password", mt_password, "", 128, CFG_RELOAD | CFG_SECRET,
	    "sendsms-user password"),
	S("mt.from", mt_from, "1212", 32, CFG_RELOAD, "sender (short code)"),
	S("mt.smsc", mt_smsc, "", 64, CFG_RELOAD, "smsc id to route through; "
	    "empty: Kannel chooses"),
	S("mt.dlr_url", mt_dlr_url, "http://127.0.0.1:8080/dlr", 1024,
	    CFG_RELOAD, "our /dlr endpoint as Kannel reaches it"),
	I("mt.dlr_mask", mt_dlr_mask, 31, 0, 31, CFG_RELOAD,
	    "Kannel dlr-mask: 1 delivered, 2 failed, 4 buffered, 8 smsc "
	    "accepted, 16 smsc rejected"),
	I("mt.batch", mt_batch, 20, 1, 500, CFG_RELOAD,
	    "rows claimed per round"),
	I("mt.lease", mt_lease, 60, 5, 3600, CFG_RELOAD,
	    "seconds a claimed row stays ours; more than mt.timeout + 2"),
	I("mt.poll", mt_poll, 5, 1, 3600, CFG_RELOAD,
	    "seconds between polls (LISTEN aryz_outbox wakes us earlier)"),
	I("mt.timeout", mt_timeout, 10, 1, 300, CFG_RELOAD,
	    "seconds for a whole sendsms request, answer included"),
	I("mt.max_attempts", mt_max_attempts, 8, 1, 100, CFG_RELOAD,
	    "attempts before a message is marked dead"),
	I("mt.max_parts", mt_max_parts, 4, 1, 255, CFG_RELOAD,
	    "Kannel sendsms-user max-messages; longer texts are logged"),
	I("mt.backoff_min", mt_backoff_min, 5, 1, 86400, CFG_RELOAD,
	    "seconds before the first retry (doubles each time)"),
	I("mt.backoff_max", mt_backoff_max, 3600, 1, 604800, CFG_RELOAD,
	    "longest wait between retries"),
	CFG_END
};

static const char help[] =
"NAME\n"
"     aryz-smsd - SMS and USSD gateway: HTTP ingress for Kannel sms-service, aggregator JSON\n"
"     and USSD callbacks; sends outbox SMS through Kannel sendsms\n"
"\n"
"SYNOPSIS\n"
"     aryz-smsd [-c config] [-n | --check-config] [--dump-config]\n"
"\n"
"DESCRIPTION\n"
"     Every accepted message is answered 200 only after the PostgreSQL COMMIT that\n"
"     stores it (and the complaint it produced); with the database away it answers 503\n"
"     with Retry-After.  Redelivery with the same message id creates nothing new.\n"
"     Malformed input gets a one-line 4xx reason and, when sender and id are known,\n"
"     is stored raw as 'rejected'.  Staff and resident commands (OK, DONE, INFO,\n"
"     STATUS, 1-5, NO) change the complaint and answer by SMS.  Multipart SMS are\n"
"     reassembled; incomplete ones become a complaint after multipart.max_age.\n"
"     The MT worker claims outbox rows (channel sms), sends them to Kannel's sendsms\n"
"     with coding=0 for pure GSM 03.38 text, else coding=2 charset=UTF-8, and retries\n"
"     with exponential backoff until mt.max_attempts ('dead').\n"
"\n"
"OPTIONS\n"
"     -c, --config file   configuration (default /etc/aryz/aryz-smsd.conf)\n"
"     -n, --check-config  validate the configuration, print\n"
"                         \"configuration OK\" and exit\n"
"     --dump-config       print the effective configuration and exit\n"
"     -h, --help          this text\n"
"     -V, --version       print the version\n"
"\n"
"ENDPOINTS\n"
"     GET|POST /sms/kannel  Kannel sms-service (get-url with from, to, id, text, smsc,\n"
"                           time, coding, charset, udh; or post-url with X-Kannel-*)\n"
"     POST /sms/json        {\"message_id\",\"from\",\"to\",\"text\"[,\"udh\"|\"concat\"]}\n"
"     POST /ussd            sessionId, serviceCode, phoneNumber, networkCode, text\n"
"     GET  /dlr             id=<outbox id>&status=%d (Kannel dlr-url)\n"
"     GET  /health          200 ok when the database is ready, else 503\n"
"     Each ingress may require X-Aryz-Token (or token=) and a client allow-list.\n"
"\n"
"SIGNALS\n"
"     SIGTERM, SIGINT     stop accepting, finish requests and sends in flight;\n"
"                         a second one exits at once\n"
"     SIGHUP              reload the configuration, reopen the log file\n"
"\n"
"FILES\n"
"     /etc/aryz/aryz-smsd.conf   configuration; see docs/kannel.md for Kannel\n"
"\n"
"EXIT STATUS\n"
"     0 after a clean stop, 1 on a startup error, 2 on bad usage.\n";

/* Prepared on every ingress connection. */
static const struct {
	const char *name, *sql;
} stmts[] = {
	{ "smsd_store_inbound", "SELECT inbound_id, duplicate FROM "
	  "aryz_store_inbound($1, $2, $3, $4, $5::bytea, $6, $7::jsonb, $8, $9)" },
	{ "smsd_submit", "SELECT complaint_id, ticket, duplicate FROM "
	  "aryz_sms_submit($1, $2, $3, $4, $5::bytea, $6, $7::jsonb, $8, $9, "
	  "$10, $11)" },
	{ "smsd_command", "SELECT handled, duplicate, reply FROM "
	  "aryz_sms_command($1, $2, $3, $4::bytea, $5, $6::jsonb, $7, $8, "
	  "$9::int)" },
	{ "smsd_part", "SELECT concat_id, duplicate, complete, text FROM "
	  "aryz_sms_part($1, $2, $3, $4::bytea, $5, $6::jsonb, $7::int, "
	  "$8::int, $9::int)" },
	{ "smsd_concat_submit", "SELECT complaint_id, ticket, duplicate FROM "
	  "aryz_sms_concat_submit($1::bigint, $2, $3, $4, $5, $6::boolean)" },
	{ "smsd_concat_due", "SELECT concat_id, partial, text FROM "
	  "aryz_sms_concat_due($1::int, $2::int)" },
	{ "smsd_ussd_touch", "SELECT language, home_soate, finished, "
	  "complaint_ticket FROM aryz_ussd_touch($1, $2, $3, $4, $5)" },
	{ "smsd_ussd_submit", "SELECT complaint_id, ticket, duplicate FROM "
	  "aryz_ussd_submit($1, $2::int, $3, $4, $5, $6, $7, $8, $9)" },
	{ "smsd_ussd_set", "SELECT aryz_ussd_set($1, $2::int, $3, $4, $5, $6, "
	  "$7)" },
	{ "smsd_ussd_status", "SELECT aryz_ussd_status($1, $2, $3)" },
	{ "smsd_ussd_expire", "DELETE FROM ussd_session WHERE updated_at < "
	  "now() - $1::int * interval '1 second'" },
	{ "smsd_dlr", "SELECT aryz_sms_dlr($1::bigint, $2::int, $3)" },
	{ "smsd_kw", LEXICON_SQL_KEYWORDS },
	{ "smsd_alias", LEXICON_SQL_PLACES },
	{ "smsd_rayons", LEXICON_SQL_RAYONS },
};

struct pgconn *
smsd_db(struct smsd *s)
{
	for (int i = 0; i < s->npool; i++) {
		struct pgconn *pc = s->pool[(s->next + i) % s->npool];
		if (pgconn_ready(pc)) {
			s->next = (s->next + i + 1) % s->npool;
			return pc;
		}
	}
	return NULL;
}

/* ---- lexicon ---- */

static void
lexicon_loaded(struct lexicon *lx, const char *err, void *arg)
{
	struct smsd *s = arg;

	if (lx == NULL) {
		log_warnx("loading the lexicon failed (%s); %s", err,
		    s->lex ? "keeping the old one" : "texts are not classified "
		    "until it loads");
		return;
	}
	lexicon_free(&s->lex);
	s->lex = lx;
	log_info("lexicon loaded: %zu keywords, %zu place names, %zu rayon "
	    "names", lexicon_nkeywords(lx), lexicon_nplaces(lx),
	    lexicon_nrayons(lx));
}

/* (Re)load the lexicon and the USSD menu data; the old ones stay until
 * the new ones are complete. */
static void
load_reference(struct smsd *s, struct pgconn *pc)
{
	static const char *const lex_stmts[3] = { "smsd_kw", "smsd_alias",
		"smsd_rayons" };

	if (lexicon_pg_load(pc, lex_stmts, lexicon_loaded, s) < 0)
		log_warnx("cannot load the lexicon now: database not ready");
	ussd_load(s);
}

static void
on_connect(struct pgconn *pc, void *arg)
{
	struct smsd *s = arg;

	/* Reference data may have changed while we were away: reload. */
	if (pc == s->pool[0])
		load_reference(s, pc);
}

/* SIGHUP: new keywords, aliases or municipalities take effect. */
static void
on_reload(void *arg)
{
	struct smsd *s = arg;
	struct pgconn *db = smsd_db(s);

	if (db != NULL)
		load_reference(s, db);
}

/* ---- janitor and drain ---- */

static void
janitor(evutil_socket_t fd, short what, void *arg)
{
	struct smsd *s = arg;
	struct pgconn *db;
	char ttl[16];	/* int */
	const char *v[1];
	(void)fd;
	(void)what;

	if (s->stopping) {
		if (s->inflight == 0 && (s->mt == NULL || mt_busy(s->mt) == 0)) {
			log_info("drained, stopping");
			event_del(s->janitor);
			daemon_stopped(s->d);
		}
		return;
	}
	s->ticks++;
	if (s->ticks % s->cfg->mp_check == 0)
		mp_sweep(s);
	if (s->ticks % 300 == 0 && (db = smsd_db(s)) != NULL) {
		snprintf(ttl, sizeof(ttl), "%d", s->cfg->ussd_session_ttl);
		v[0] = ttl;
		if (pgconn_query(db, "smsd_ussd_expire", true, 1, v, NULL,
		    NULL) < 0)
			log_debug("session expiry skipped: queue full");
	}
}

static void
on_stop(void *arg)
{
	struct smsd *s = arg;
	struct timeval tv = { 0, 100000 };	/* drain check every 100 ms */

	s->stopping = true;
	http_close_listener(s->http);
	if (s->mt)
		mt_stop(s->mt);
	event_del(s->janitor);
	event_add(s->janitor, &tv);
}

static int
validate(void *cfgp, char *err, size_t len)
{
	struct smsd_cfg *c = cfgp;
	const char *lists[] = { c->kannel_allow, c->json_allow, c->ussd_allow,
	    c->dlr_allow };

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		if (http_check_allow(lists[i], err, len) < 0)
			return -1;
	if (c->mt_backoff_max < c->mt_backoff_min) {
		snprintf(err, len, "mt.backoff_max is below mt.backoff_min");
		return -1;
	}
	/* A row must stay ours until its send (bounded by mt.timeout) is
	 * over, or another claim sends it a second time. */
	if (c->mt_lease <= c->mt_timeout + 2) {
		snprintf(err, len, "mt.lease (%d) must be longer than "
		    "mt.timeout (%d) + 2", c->mt_lease, c->mt_timeout);
		return -1;
	}
	if (c->mt_enabled && strncmp(c->mt_url, "http://", 7) != 0) {
		snprintf(err, len, "mt.url must start with http://");
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct smsd_cfg cfg = { 0 };
	struct smsd s = { 0 };
	struct daemon d = {
		.name = "aryz-smsd",
		.help = help,
		.default_config = "/etc/aryz/aryz-smsd.conf",
		.opts = smsd_opts,
		.cfg = &cfg,
		.cfg_size = sizeof(cfg),
		.validate = validate,
		.on_stop = on_stop,
		.on_reload = on_reload,
		.arg = &s,
	};
	struct timeval sec = { 1, 0 };
	int rc;

	daemon_init(&d, argc, argv);
	s.d = &d;
	s.cfg = &cfg;
	s.base = d.base;
	s.npool = cfg.db_pool;
	s.pool = xcalloc((size_t)s.npool, sizeof(*s.pool));
	for (int i = 0; i < s.npool; i++) {
		char name[24];	/* "ingress-" + an int */
		snprintf(name, sizeof(name), "ingress-%d", i);
		s.pool[i] = pgconn_new(d.base, cfg.common.db_conninfo, name);
		for (size_t k = 0; k < sizeof(stmts) / sizeof(stmts[0]); k++)
			pgconn_prepare(s.pool[i], stmts[k].name, stmts[k].sql);
		pgconn_set_callbacks(s.pool[i], on_connect, NULL, NULL, &s);
		pgconn_start(s.pool[i]);
	}
	s.http = http_start(&s);
	if (cfg.mt_enabled)
		s.mt = mt_new(&s);
	s.janitor = event_new(d.base, -1, EV_PERSIST, janitor, &s);
	event_add(s.janitor, &sec);

	rc = daemon_run(&d);

	/* Queries still queued (drain timed out) answer 503 before the
	 * HTTP server goes. */
	event_free(s.janitor);
	mt_free(&s.mt);
	for (int i = 0; i < s.npool; i++)
		pgconn_free(&s.pool[i]);
	free(s.pool);
	http_stop(&s.http);
	lexicon_free(&s.lex);
	ussd_free(&s.ussd);
	daemon_done(&d);
	return rc;
}
