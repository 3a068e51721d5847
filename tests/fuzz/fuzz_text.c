/*
 * fuzz_text.c - libFuzzer target for the byte-level text parsers:
 * utf8_valid/count/prefix and phone_normalize.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phone.h"
#include "utf8.h"
#include "xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	char out[PHONE_E164_MAX];
	char *z;
	size_t bad = 0;

	if (utf8_valid(s, size, &bad)) {
		size_t n = utf8_count(s, size);
		if (utf8_prefix(s, size, n) != size)
			__builtin_trap();
	} else if (bad >= size && size > 0)
		__builtin_trap();
	z = xstrndup(s, size);
	if (phone_normalize(z, out, sizeof(out)) == 0 &&
	    (out[0] != '+' || strlen(out) > PHONE_E164_MAX - 1))
		__builtin_trap();
	free(z);
	return 0;
}
