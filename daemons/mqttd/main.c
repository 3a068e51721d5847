/*
 * main.c - aryz-mqttd start-up: configuration, the ingest subscriber and
 * the outbox publisher, graceful shutdown.
 */
#include <event2/event.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "mqttd.h"

#define C(f) offsetof(struct mqttd_cfg, f)

static const struct cfg_opt mqttd_opts[] = {
	DAEMON_COMMON_OPTS(struct mqttd_cfg),
	{ "mqtt.host", CFG_STR, C(mq_host), 0, "127.0.0.1", 1, 255, 0,
	  "broker host" },
	{ "mqtt.port", CFG_INT, C(mq_port), 1883, NULL, 1, 65535, 0,
	  "broker port" },
	{ "mqtt.username", CFG_STR, C(mq_username), 0, "aryz-mqttd", 0, 128,
	  0, "MQTT username of the service account" },
	{ "mqtt.password", CFG_STR, C(mq_password), 0, "", 0, 256, CFG_SECRET,
	  "its password" },
	{ "mqtt.client_id", CFG_STR, C(mq_client_id), 0, "aryz-mqttd-1", 1,
	  64, 0, "fixed client id of this instance (persistent session); "
	  "unique per instance" },
	{ "mqtt.keepalive", CFG_INT, C(mq_keepalive), 30, NULL, 5, 600, 0,
	  "seconds" },
	{ "mqtt.shared_group", CFG_STR, C(mq_shared_group), 0, "", 0, 64, 0,
	  "subscribe through $share/<group>/...; empty: plain subscription" },
	/*
	 * At most 64: aryz_mqtt_ingest gives every message a subtransaction,
	 * and a transaction with more than 64 subtransaction ids overflows
	 * PostgreSQL's per-backend cache, which slows every snapshot taken
	 * in the database while it runs.
	 */
	{ "ingest.batch_size", CFG_INT, C(in_batch_size), 60, NULL, 1, 64,
	  0, "messages per database COMMIT (at most 64)" },
	{ "ingest.batch_ms", CFG_INT, C(in_batch_ms), 20, NULL, 0, 10000, 0,
	  "longest wait for a batch to fill, ms" },
	{ "ingest.max_payload", CFG_INT, C(in_max_payload), 16384, NULL, 64,
	  1048576, 0, "bytes; larger payloads are rejected" },
	{ "ingest.max_text", CFG_INT, C(in_max_text), 2000, NULL, 16, 100000,
	  0, "characters of complaint text" },
	{ "ingest.commands", CFG_BOOL, C(in_commands), 1, NULL, 0, 1, 0,
	  "accept provider commands on aryz/v1/providers/+/cmd" },
	{ "outbox.max_inflight", CFG_INT, C(out_max_inflight), 1000, NULL, 1,
	  60000, 0, "publishes awaiting PUBACK (message ids wrap at 65535)" },
	{ "outbox.batch", CFG_INT, C(out_batch), 100, NULL, 1, 5000, 0,
	  "rows per claim" },
	{ "outbox.lease", CFG_INT, C(out_lease), 60, NULL, 5, 86400, 0,
	  "seconds a claimed row stays ours (crash recovery)" },
	{ "outbox.poll", CFG_INT, C(out_poll), 5, NULL, 1, 3600, 0,
	  "seconds between polls besides NOTIFY aryz_outbox" },
	{ "outbox.retry", CFG_INT, C(out_retry), 5, NULL, 0, 3600, 0,
	  "seconds before an unacknowledged row is due again" },
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
"DESCRIPTION\n"
"     Devices and apps publish complaints and sensor events (JSON, QoS 1) to\n"
"     aryz/v1/{soate}/{category}/in/{client_id}; aryz-mqttd stores them in\n"
"     batches, one database COMMIT per batch, and only then lets the PUBACKs go,\n"
"     so the broker redelivers anything not stored.  A receipt (accepted with\n"
"     the ticket, duplicate, or rejected with a reason) goes to\n"
"     aryz/v1/clients/{client_id}/resp.  Providers send ack/done/info commands\n"
"     to aryz/v1/providers/{username}/cmd and get answers on .../resp.  The\n"
"     outbox worker publishes rows of channel 'mqtt' with QoS 1 and marks them\n"
"     sent on PUBACK.  See docs/mqtt.md.\n"
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
"     SIGTERM, SIGINT     stop gracefully: stop reading, commit the batch in\n"
"                         flight and send its PUBACKs, wait for outbox PUBACKs;\n"
"                         a second one exits at once\n"
"     SIGHUP              reload the configuration (log settings) and the\n"
"                         normalizer's keywords and place names, reopen the log\n"
"\n"
"FILES\n"
"     /etc/aryz/aryz-mqttd.conf\n"
"\n"
"TOPICS\n"
"     aryz/v1/{soate|-}/{category|-}/in/{client_id}   subscribed, QoS 1\n"
"     aryz/v1/providers/{username}/cmd                subscribed, QoS 1\n"
"     aryz/v1/clients/{client_id}/resp                receipts\n"
"     aryz/v1/providers/{username}/resp               command answers\n"
"     any outbox topic (aryz/v1/{soate}/..., aryz/v1/providers/{username}/...)\n"
"\n"
"EXIT STATUS\n"
"     0 after a stop by signal (also when the drain timed out), 1 on a startup\n"
"     error or after a second signal, 2 on bad usage.\n";

struct mqttd {
	struct daemon		*d;
	struct ingest		*in;
	struct publisher	*pub;
	struct event		*drain;		/* polls for idle on stop */
};

static void
mqttd_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mqttd *m = arg;
	(void)fd;
	(void)what;

	if (ingest_idle(m->in) && publisher_idle(m->pub)) {
		event_del(m->drain);
		daemon_stopped(m->d);
	}
}

static void
mqttd_on_stop(void *arg)
{
	struct mqttd *m = arg;
	struct timeval tv = { 0, 50 * 1000 };

	ingest_stop(m->in);
	publisher_stop(m->pub);
	event_add(m->drain, &tv);
}

static void
mqttd_on_reload(void *arg)
{
	struct mqttd *m = arg;

	ingest_reload(m->in);
}

static int
mqttd_validate(void *cfgp, char *err, size_t len)
{
	struct mqttd_cfg *cfg = cfgp;

	for (const char *s = cfg->mq_shared_group; *s; s++) {
		if (*s == '/' || *s == '+' || *s == '#') {
			snprintf(err, len, "mqtt.shared_group must not "
			    "contain '/', '+' or '#'");
			return -1;
		}
	}
	if (strchr(cfg->mq_client_id, '/') != NULL) {
		snprintf(err, len, "mqtt.client_id must not contain '/'");
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct mqttd_cfg cfg = { 0 };
	struct mqttd m = { 0 };
	struct daemon d = {
		.name = "aryz-mqttd",
		.help = help,
		.default_config = "/etc/aryz/aryz-mqttd.conf",
		.opts = mqttd_opts,
		.cfg = &cfg,
		.cfg_size = sizeof(cfg),
		.validate = mqttd_validate,
		.on_stop = mqttd_on_stop,
		.on_reload = mqttd_on_reload,
		.arg = &m,
	};
	int rc;

	daemon_init(&d, argc, argv);
	m.d = &d;
	m.pub = publisher_new(d.base, &cfg);
	m.in = ingest_new(d.base, &cfg);
	m.drain = event_new(d.base, -1, EV_PERSIST, mqttd_drain_cb, &m);
	publisher_start(m.pub);
	ingest_start(m.in);
	log_info("aryz-mqttd started: broker %s:%d, client id %s", cfg.mq_host,
	    cfg.mq_port, cfg.mq_client_id);
	rc = daemon_run(&d);
	ingest_free(&m.in);
	publisher_free(&m.pub);
	event_free(m.drain);
	daemon_done(&d);
	return rc;
}
