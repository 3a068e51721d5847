/*
 * fuzz_mqtt.c - libFuzzer target for aryz-mqttd's topic and JSON payload
 * decoder (daemons/mqttd/payload.c, compiled in here because it is not
 * part of libcommon).  The first byte picks a topic, the rest is the
 * payload.  Invariants: a topic of ours always yields a batch element of a
 * known kind with a receipt topic; a rejection always carries a reason; an
 * accepted complaint always carries its idempotency key and text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../daemons/mqttd/payload.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const topics[] = {
	"aryz/v1/41703220856000/waste/in/dev-1",
	"aryz/v1/-/-/in/dev-1",
	"aryz/v1/4170322085600x/-/in/dev-1",
	"aryz/v1/-/Waste!/in/dev-1",
	"aryz/v1/providers/provider-1/cmd",
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct payload_limits lim = { 2048, 500 };
	char *resp = NULL, *msg_id = NULL;
	const char *k;
	json_t *e;

	if (size < 1)
		return 0;
	e = payload_decode(topics[data[0] % 5], data + 1, size - 1, &lim,
	    &resp, &msg_id);
	if (e == NULL || resp == NULL)
		__builtin_trap();
	k = json_string_value(json_object_get(e, "k"));
	if (k == NULL)
		__builtin_trap();
	if (strcmp(k, "reject") == 0) {
		if (json_string_value(json_object_get(e, "reason")) == NULL)
			__builtin_trap();
	} else if (strcmp(k, "complaint") == 0) {
		if (json_string_value(json_object_get(e, "idem")) == NULL ||
		    json_string_value(json_object_get(e, "text")) == NULL)
			__builtin_trap();
	} else if (strcmp(k, "command") != 0)
		__builtin_trap();
	if (json_string_value(json_object_get(e, "raw")) == NULL)
		__builtin_trap();
	json_decref(e);
	free(resp);
	free(msg_id);
	return 0;
}
