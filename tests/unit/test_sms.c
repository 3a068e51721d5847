/*
 * test_sms.c - sms_gsm7_only() and sms_parts() against
 * tests/unit/data/sms.txt, and sms_udh_concat() on UDH byte strings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sms.h"

/* Expand "R<n>x<char>" into n copies of the UTF-8 character. */
static void
expand(const char *in, char *out, size_t cap)
{
	char *end;
	long n;
	size_t clen, o = 0;

	if (in[0] != 'R' || (n = strtol(in + 1, &end, 10)) <= 0 || *end != 'x') {
		snprintf(out, cap, "%s", in);
		return;
	}
	clen = strlen(end + 1);
	for (long i = 0; i < n && o + clen < cap; i++, o += clen)
		memcpy(out + o, end + 1, clen);
	out[o] = '\0';
}

static void
test_table(void **state)
{
	FILE *fp = fopen("data/sms.txt", "r");
	char line[512];		/* data lines are short */
	char text[4096];	/* 400 four-byte characters at most */
	int n = 0;

	(void)state;
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		char *t1, *t2;
		int gsm, parts;

		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		t1 = strchr(line, '\t');
		assert_non_null(t1);
		t2 = strchr(t1 + 1, '\t');
		assert_non_null(t2);
		*t1 = *t2 = '\0';
		gsm = line[0] == '1';
		parts = atoi(t1 + 1);
		expand(t2 + 1, text, sizeof(text));
		if (sms_gsm7_only(text) != gsm)
			fail_msg("gsm7_only(%s) != %d", t2 + 1, gsm);
		if (sms_parts(text, NULL) != parts)
			fail_msg("parts(%s) = %d, want %d", t2 + 1,
			    sms_parts(text, NULL), parts);
		n++;
	}
	fclose(fp);
	assert_true(n >= 20);
}

static void
test_invalid_utf8_not_gsm(void **state)
{
	(void)state;
	assert_false(sms_gsm7_only("abc\xff"));
	assert_false(sms_gsm7_only("\xc3"));
}

static void
test_udh(void **state)
{
	static const struct {
		uint8_t	udh[16];
		size_t	len;
		bool	ok;
		int	ref, total, seq;
	} c[] = {
		{ { 5, 0, 3, 42, 3, 1 }, 6, true, 42, 3, 1 },
		{ { 6, 8, 4, 0x12, 0x34, 2, 2 }, 7, true, 0x1234, 2, 2 },
		/* another IE (port addressing) before the concat one */
		{ { 11, 5, 4, 0x0b, 0x84, 0x23, 0xf0, 0, 3, 7, 2, 1 }, 12, true, 7, 2, 1 },
		{ { 5, 0, 3, 42, 1, 1 }, 6, false, 0, 0, 0 },	/* 1 of 1 */
		{ { 5, 0, 3, 42, 3, 0 }, 6, false, 0, 0, 0 },	/* part 0 */
		{ { 5, 0, 3, 42, 3, 4 }, 6, false, 0, 0, 0 },	/* 4 of 3 */
		{ { 5, 0, 3, 42, 3 }, 5, false, 0, 0, 0 },	/* truncated */
		{ { 5, 0, 9, 42, 3, 1 }, 6, false, 0, 0, 0 },	/* IE too long */
		{ { 4, 5, 2, 0, 0 }, 5, false, 0, 0, 0 },	/* no concat IE */
		{ { 0 }, 0, false, 0, 0, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		int ref = -1, total = -1, seq = -1;
		bool ok = sms_udh_concat(c[i].udh, c[i].len, &ref, &total, &seq);
		if (ok != c[i].ok)
			fail_msg("case %zu: ok=%d", i, ok);
		if (ok) {
			assert_int_equal(ref, c[i].ref);
			assert_int_equal(total, c[i].total);
			assert_int_equal(seq, c[i].seq);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_invalid_utf8_not_gsm),
		cmocka_unit_test(test_udh),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
