/*
 * payload.c - decode and validate what devices and providers publish.
 *
 * Topics (the ACL binds {client_id} and {user} to the MQTT username, so
 * they are authenticated identities):
 *   aryz/v1/{soate|-}/{category|-}/in/{client_id}   a complaint or event
 *   aryz/v1/providers/{user}/cmd                    a provider command
 * Payloads are JSON objects, schema version 1, bounded in size; unknown
 * fields are refused so that a typo does not silently lose data.  Values
 * in the topic win over values in the payload.  Every outcome is a batch
 * element for aryz_mqtt_ingest(): nothing is decided here that needs the
 * database (unknown municipality and category are checked there).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqttd.h"
#include "utf8.h"
#include "xmalloc.h"

#define PL_MAX_ID	64	/* msg_id, device_id, client id: bytes */
#define PL_MAX_REASON	200	/* a rejection reason: bytes (jansson's error text is < 160) */

static const struct {
	const char	*event;
	const char	*category;
} pl_events[] = {
	{ "bin_full",		"waste" },
	{ "bin_overflow",	"waste" },
	{ "bin_fire",		"waste" },
	{ "lamp_failure",	"lighting" },
	{ "lamp_on_daytime",	"lighting" },
	{ "cabinet_open",	"lighting" },
	{ "no_water",		"water" },
	{ "low_pressure",	"water" },
	{ "leak",		"water" },
	{ "water_quality",	"water" },
};

const char *
payload_event_category(const char *event)
{
	for (size_t i = 0; i < sizeof(pl_events) / sizeof(pl_events[0]); i++)
		if (strcmp(pl_events[i].event, event) == 0)
			return pl_events[i].category;
	return NULL;
}

/* An identifier: 1..PL_MAX_ID of [A-Za-z0-9._:@-]. */
static bool
pl_ident(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > PL_MAX_ID)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || strchr("._:@-", *s) != NULL))
			return false;
	return true;
}

static bool
pl_soate(const char *s)
{
	if (strlen(s) != 14)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* A category code as the table has them: [a-z_]{1,31}. */
static bool
pl_category(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 31)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
			return false;
	return true;
}

static bool
pl_digits(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static char *
pl_hex(const void *p, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *b = p;
	char *s = xmalloc(len * 2 + 1);

	for (size_t i = 0; i < len; i++) {
		s[2 * i] = digits[b[i] >> 4];
		s[2 * i + 1] = digits[b[i] & 0xf];
	}
	s[len * 2] = '\0';
	return s;
}

/* Split topic into at most max segments; returns their number, or -1. */
static int
pl_split(char *topic, char **seg, int max)
{
	int n = 0;
	char *p = topic, *slash;

	for (;;) {
		if (n == max)
			return -1;
		seg[n++] = p;
		if ((slash = strchr(p, '/')) == NULL)
			return n;
		*slash = '\0';
		p = slash + 1;
	}
}

/* The common part of every element: who, where, exactly what arrived. */
static json_t *
pl_element(const char *kind, const char *sender, const char *topic,
    const void *payload, size_t len, size_t max_payload, bool utf8_ok)
{
	json_t *e = json_object(), *meta = json_object();
	size_t keep = len > max_payload ? max_payload : len;
	char *hex = pl_hex(payload, keep);

	json_object_set_new(e, "k", json_string(kind));
	json_object_set_new(e, "sender", json_string(sender));
	json_object_set_new(e, "topic", json_string(topic));
	json_object_set_new(e, "raw", json_string(hex));
	free(hex);
	/* body: the payload as text, when it is text and not oversized. */
	if (utf8_ok && len <= max_payload && memchr(payload, '\0', len) == NULL)
		json_object_set_new(e, "body", json_stringn(payload, len));
	json_object_set_new(meta, "topic", json_string(topic));
	json_object_set_new(meta, "size", json_integer((json_int_t)len));
	if (keep < len)
		json_object_set_new(meta, "truncated", json_true());
	json_object_set_new(e, "meta", meta);
	return e;
}

static json_t *
pl_reject(json_t *e, const char *fmt, const char *arg)
{
	char reason[PL_MAX_REASON];
	size_t bad;

	/*
	 * arg may quote the input (jansson's error text does): cut at the
	 * first invalid byte, which is also where snprintf may have split a
	 * character, so that the reason is valid UTF-8 for JSON and SQL.
	 */
	snprintf(reason, sizeof(reason), fmt, arg);
	if (!utf8_valid(reason, strlen(reason), &bad))
		reason[bad] = '\0';
	json_object_set_new(e, "k", json_string("reject"));
	json_object_set_new(e, "reason", json_string(reason));
	return e;
}

/* Keys allowed in an object; the first unknown one, or NULL. */
static const char *
pl_unknown_key(json_t *obj, const char *const *allowed)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		const char *const *a;
		for (a = allowed; *a != NULL; a++)
			if (strcmp(*a, key) == 0)
				break;
		if (*a == NULL)
			return key;
	}
	return NULL;
}

/* An optional string member: NULL if absent, "" flags a wrong type. */
static const char *
pl_str(json_t *obj, const char *key, bool *bad)
{
	json_t *v = json_object_get(obj, key);

	if (v == NULL || json_is_null(v))
		return NULL;
	if (!json_is_string(v)) {
		*bad = true;
		return NULL;
	}
	return json_string_value(v);
}

/* A shortened copy of an untrusted key for a reason text. */
static void
pl_short(char *dst, size_t size, const char *s)
{
	size_t n = utf8_prefix(s, strlen(s), 40);

	if (n >= size)
		n = size - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static json_t *
pl_complaint(json_t *e, json_t *root, const char *soate, const char *cat,
    const char *client, const struct payload_limits *lim)
{
	static const char *const allowed[] = { "v", "msg_id", "text",
		"category", "municipality", "lang", "geo", "event",
		"device_id", NULL };
	static const char *const geo_keys[] = { "lat", "lon", NULL };
	json_t *v, *meta = json_object_get(e, "meta");
	const char *key, *msg_id, *text, *pcat, *muni, *lang, *event,
	    *device, *evcat = NULL;
	char shortkey[48];	/* 40 code points of a key, for the reason */
	char idem[2 * PL_MAX_ID + 2];
	bool bad = false;
	double lat = 0, lon = 0;
	bool have_geo = false;

	if ((key = pl_unknown_key(root, allowed)) != NULL) {
		pl_short(shortkey, sizeof(shortkey), key);
		return pl_reject(e, "unknown_field: %s", shortkey);
	}
	v = json_object_get(root, "v");
	if (v == NULL)
		return pl_reject(e, "missing_field: %s", "v");
	if (!json_is_integer(v) || json_integer_value(v) != 1)
		return pl_reject(e, "unsupported_version%s", "");
	msg_id = pl_str(root, "msg_id", &bad);
	if (bad || (msg_id != NULL && !pl_ident(msg_id)))
		return pl_reject(e, "invalid_field: %s", "msg_id");
	if (msg_id == NULL)
		return pl_reject(e, "missing_field: %s", "msg_id");
	text = pl_str(root, "text", &bad);
	if (bad)
		return pl_reject(e, "invalid_field: %s", "text");
	pcat = pl_str(root, "category", &bad);
	if (bad || (pcat != NULL && !pl_category(pcat)))
		return pl_reject(e, "invalid_field: %s", "category");
	muni = pl_str(root, "municipality", &bad);
	if (bad || (muni != NULL && !pl_soate(muni)))
		return pl_reject(e, "invalid_field: %s", "municipality");
	lang = pl_str(root, "lang", &bad);
	if (bad || (lang != NULL && strcmp(lang, "ky") != 0 &&
	    strcmp(lang, "ru") != 0))
		return pl_reject(e, "invalid_field: %s", "lang");
	event = pl_str(root, "event", &bad);
	if (bad)
		return pl_reject(e, "invalid_field: %s", "event");
	if (event != NULL && (evcat = payload_event_category(event)) == NULL) {
		pl_short(shortkey, sizeof(shortkey), event);
		return pl_reject(e, "unknown_event: %s", shortkey);
	}
	device = pl_str(root, "device_id", &bad);
	if (bad || (device != NULL && !pl_ident(device)))
		return pl_reject(e, "invalid_field: %s", "device_id");
	if ((v = json_object_get(root, "geo")) != NULL) {
		json_t *la = json_object_get(v, "lat"), *lo =
		    json_object_get(v, "lon");
		if (!json_is_object(v) || pl_unknown_key(v, geo_keys) != NULL ||
		    !json_is_number(la) || !json_is_number(lo))
			return pl_reject(e, "invalid_field: %s", "geo");
		lat = json_number_value(la);
		lon = json_number_value(lo);
		if (!(lat >= -90 && lat <= 90 && lon >= -180 && lon <= 180))
			return pl_reject(e, "invalid_field: %s", "geo");
		have_geo = true;
	}
	if (text != NULL && utf8_count(text, strlen(text)) > lim->max_text)
		return pl_reject(e, "text_too_long%s", "");
	if ((text == NULL || text[0] == '\0') && event == NULL)
		return pl_reject(e, "missing_field: %s", "text");

	/* Server-side values win: the topic over the payload. */
	if (strcmp(soate, "-") != 0)
		muni = soate;
	if (strcmp(cat, "-") != 0)
		pcat = cat;
	else if (pcat == NULL)
		pcat = evcat;

	snprintf(idem, sizeof(idem), "%s:%s", client, msg_id);
	json_object_set_new(e, "k", json_string("complaint"));
	json_object_set_new(e, "idem", json_string(idem));
	if (muni != NULL)
		json_object_set_new(e, "municipality", json_string(muni));
	if (pcat != NULL)
		json_object_set_new(e, "category", json_string(pcat));
	if (lang != NULL)
		json_object_set_new(e, "lang", json_string(lang));
	if (text != NULL && text[0] != '\0')
		json_object_set_new(e, "text", json_string(text));
	else {
		char etext[96];	/* "sensor event: " + a known event name */
		snprintf(etext, sizeof(etext), "sensor event: %s", event);
		json_object_set_new(e, "text", json_string(etext));
	}
	if (have_geo) {
		json_object_set_new(e, "lat", json_real(lat));
		json_object_set_new(e, "lon", json_real(lon));
	}
	if (device != NULL) {
		json_object_set_new(e, "device_id", json_string(device));
		json_object_set_new(meta, "device_id", json_string(device));
	}
	if (event != NULL)
		json_object_set_new(meta, "event", json_string(event));
	json_object_set_new(meta, "msg_id", json_string(msg_id));
	json_object_set_new(meta, "client_id", json_string(client));
	return e;
}

static json_t *
pl_command(json_t *e, json_t *root, const char *user)
{
	static const char *const allowed[] = { "v", "cmd", "ticket",
		"msg_id", "text", NULL };
	json_t *v, *meta = json_object_get(e, "meta");
	const char *key, *cmd, *ticket, *msg_id, *text;
	char shortkey[48];	/* 40 code points of a key, for the reason */
	char idem[2 * PL_MAX_ID + 8];
	bool bad = false;

	if ((key = pl_unknown_key(root, allowed)) != NULL) {
		pl_short(shortkey, sizeof(shortkey), key);
		return pl_reject(e, "unknown_field: %s", shortkey);
	}
	if ((v = json_object_get(root, "v")) != NULL &&
	    (!json_is_integer(v) || json_integer_value(v) != 1))
		return pl_reject(e, "unsupported_version%s", "");
	msg_id = pl_str(root, "msg_id", &bad);
	if (bad || (msg_id != NULL && !pl_ident(msg_id)))
		return pl_reject(e, "invalid_field: %s", "msg_id");
	if (msg_id == NULL)
		return pl_reject(e, "missing_field: %s", "msg_id");
	cmd = pl_str(root, "cmd", &bad);
	if (bad || cmd == NULL || (strcmp(cmd, "ack") != 0 &&
	    strcmp(cmd, "done") != 0 && strcmp(cmd, "info") != 0))
		return pl_reject(e, "invalid_field: %s", "cmd");
	ticket = pl_str(root, "ticket", &bad);
	if (bad || ticket == NULL || !pl_digits(ticket, 15))
		return pl_reject(e, "invalid_field: %s", "ticket");
	text = pl_str(root, "text", &bad);
	if (bad || (text != NULL && utf8_count(text, strlen(text)) > 500))
		return pl_reject(e, "invalid_field: %s", "text");

	snprintf(idem, sizeof(idem), "cmd:%s:%s", user, msg_id);
	json_object_set_new(e, "k", json_string("command"));
	json_object_set_new(e, "idem", json_string(idem));
	json_object_set_new(e, "cmd", json_string(cmd));
	json_object_set_new(e, "ticket", json_string(ticket));
	if (text != NULL)
		json_object_set_new(e, "text", json_string(text));
	json_object_set_new(meta, "msg_id", json_string(msg_id));
	json_object_set_new(meta, "command", json_string(cmd));
	return e;
}

json_t *
payload_decode(const char *topic, const void *payload, size_t len,
    const struct payload_limits *lim, char **resp_topic, char **msg_id)
{
	char *buf = xstrdup(topic);
	char *seg[7];	/* the longest topic of ours has 6 levels */
	char sender[4 * PL_MAX_ID + 1];	/* PL_MAX_ID code points of UTF-8 */
	json_t *e = NULL, *root = NULL, *id;
	json_error_t jerr;
	bool is_cmd, utf8_ok, who_ok;
	const char *who;
	int n;

	*resp_topic = NULL;
	*msg_id = NULL;
	n = pl_split(buf, seg, 7);
	if (n == 5 && strcmp(seg[0], "aryz") == 0 &&
	    strcmp(seg[1], "v1") == 0 && strcmp(seg[2], "providers") == 0 &&
	    strcmp(seg[4], "cmd") == 0 && seg[3][0] != '\0') {
		is_cmd = true;
		who = seg[3];
		*resp_topic = xasprintf("aryz/v1/providers/%s/resp", who);
	} else if (n == 6 && strcmp(seg[0], "aryz") == 0 &&
	    strcmp(seg[1], "v1") == 0 && strcmp(seg[4], "in") == 0 &&
	    seg[5][0] != '\0') {
		is_cmd = false;
		who = seg[5];
		*resp_topic = xasprintf("aryz/v1/clients/%s/resp", who);
	} else {
		free(buf);
		return NULL;	/* not a topic we subscribe to */
	}
	/*
	 * The sender is the username (the ACL binds the segment to it).  A
	 * username that cannot be an identifier is an operator's mistake:
	 * store the message as rejected with a clear reason.
	 */
	who_ok = pl_ident(who);
	n = (int)utf8_prefix(who, strlen(who), PL_MAX_ID);
	memcpy(sender, who, (size_t)n);	/* at most 4 bytes per code point */
	sender[n] = '\0';
	if (!utf8_valid(sender, strlen(sender), NULL))	/* broker checks it */
		snprintf(sender, sizeof(sender), "invalid-utf8");

	utf8_ok = len <= lim->max_payload && utf8_valid(payload, len, NULL);
	e = pl_element("reject", sender, topic, payload, len,
	    lim->max_payload, utf8_ok);
	if (!who_ok) {
		e = pl_reject(e, "invalid_topic: %s", "client_id");
		goto done;
	}
	if (len > lim->max_payload) {
		char size[64];	/* two size_t in decimal */
		snprintf(size, sizeof(size), "%zu > %zu bytes", len,
		    lim->max_payload);
		e = pl_reject(e, "oversized: %s", size);
		goto done;
	}
	if (!utf8_ok) {
		e = pl_reject(e, "invalid_utf8%s", "");
		goto done;
	}
	root = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		e = pl_reject(e, "invalid_json: %s", jerr.text);
		goto done;
	}
	if (!json_is_object(root)) {
		e = pl_reject(e, "invalid_json: %s", "not an object");
		goto done;
	}
	/* For the receipt: the client's msg_id, even if the rest is bad. */
	id = json_object_get(root, "msg_id");
	if (json_is_string(id) && pl_ident(json_string_value(id)))
		*msg_id = xstrdup(json_string_value(id));

	if (is_cmd)
		e = pl_command(e, root, who);
	else if (strcmp(seg[2], "-") != 0 && !pl_soate(seg[2]))
		e = pl_reject(e, "invalid_topic: %s", "municipality");
	else if (strcmp(seg[3], "-") != 0 && !pl_category(seg[3]))
		e = pl_reject(e, "invalid_topic: %s", "category");
	else
		e = pl_complaint(e, root, seg[2], seg[3], who, lim);
	if (*msg_id != NULL)
		json_object_set_new(json_object_get(e, "meta"), "msg_id",
		    json_string(*msg_id));
done:
	json_decref(root);
	free(buf);
	return e;
}
