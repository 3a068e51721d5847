/*
 * mqttd.h - internal interface of aryz-mqttd, grouped by the file that
 * implements each part.
 *
 *   main.c     configuration, start-up, shutdown
 *   ingest.c   the subscriber: batches of messages, one COMMIT per batch,
 *              PUBACKs released only after it; receipts
 *   payload.c  topic and JSON payload decoding and validation
 *   publish.c  the outbox worker
 */
#ifndef ARYZ_MQTTD_H
#define ARYZ_MQTTD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "daemon.h"

struct event_base;
struct ingest;
struct publisher;

/* Configuration: one struct, described by the table in main.c. */
struct mqttd_cfg {
	struct daemon_common	common;
	char	*mq_host;
	int	 mq_port;
	char	*mq_username;
	char	*mq_password;
	char	*mq_client_id;		/* ingest; "-pub" appended for publish */
	int	 mq_keepalive;		/* seconds */
	char	*mq_shared_group;	/* "" or a $share group name */
	int	 in_batch_size;		/* messages per COMMIT (soft bound) */
	int	 in_batch_ms;		/* max wait for a batch to fill */
	int	 in_max_payload;	/* bytes; larger payloads are rejected */
	int	 in_max_text;		/* characters of text */
	bool	 in_commands;		/* accept provider commands */
	int	 out_max_inflight;	/* outbox publishes awaiting PUBACK */
	int	 out_batch;		/* rows per claim */
	int	 out_lease;		/* seconds a claimed row stays ours */
	int	 out_poll;		/* seconds between polls (besides NOTIFY) */
	int	 out_retry;		/* seconds before an unacked row is due */
};

/* payload.c */
struct payload_limits {
	size_t	max_payload;	/* bytes */
	size_t	max_text;	/* code points */
};

/*
 * Decode one message that arrived on topic.  Always returns a new batch
 * element (see aryz_mqtt_ingest() in sql/migrations/0020_mqtt.sql): a
 * "complaint", a "command", or a "reject" with a reason.  Returns NULL
 * only for a topic that is not ours (not subscribed; ignore it).
 * *resp_topic receives the receipt topic (caller frees); *msg_id the
 * client's msg_id or NULL (caller frees).
 */
json_t *payload_decode(const char *topic, const void *payload, size_t len,
    const struct payload_limits *lim, char **resp_topic, char **msg_id);
/* Category of a sensor event ("bin_full" -> "waste"), or NULL. */
const char *payload_event_category(const char *event);

/* publish.c */
struct publisher *publisher_new(struct event_base *base,
    const struct mqttd_cfg *cfg);
void publisher_free(struct publisher **p);
void publisher_start(struct publisher *p);
/* Begin draining for shutdown; publisher_idle() tells when done. */
void publisher_stop(struct publisher *p);
bool publisher_idle(const struct publisher *p);

/* ingest.c */
struct ingest *ingest_new(struct event_base *base,
    const struct mqttd_cfg *cfg);
void ingest_free(struct ingest **in);
void ingest_start(struct ingest *in);
/* Stop reading; finish the batch in flight; ingest_idle() tells when done. */
void ingest_stop(struct ingest *in);
bool ingest_idle(const struct ingest *in);
/* Reload the normalizer's lexicon from the database (SIGHUP). */
void ingest_reload(struct ingest *in);

#endif
