/*
 * test_utf8.c - utf8_valid/utf8_count/utf8_prefix against
 * tests/unit/data/utf8.txt.  Each line: hex bytes<TAB>1|0 (valid or not).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

static size_t
unhex(const char *hex, char *out)
{
	size_t n = 0;
	while (hex[0] && hex[1]) {
		char b[3] = { hex[0], hex[1], 0 };
		out[n++] = (char)strtol(b, NULL, 16);
		hex += 2;
		while (*hex == ' ')
			hex++;
	}
	return n;
}

static void
test_table(void **state)
{
	FILE *fp = fopen("data/utf8.txt", "r");
	char line[512], bytes[256];	/* data lines are short */
	int n = 0;

	(void)state;
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		char *tab;
		size_t len;
		bool want;

		if (line[0] == '#' || line[0] == '\n')
			continue;
		tab = strchr(line, '\t');
		assert_non_null(tab);
		*tab = '\0';
		want = tab[1] == '1';
		len = unhex(line, bytes);
		if (utf8_valid(bytes, len, NULL) != want)
			fail_msg("'%s': want %s", line, want ? "valid" : "invalid");
		n++;
	}
	fclose(fp);
	assert_true(n >= 15);
}

static void
test_count_and_prefix(void **state)
{
	const char *s = "таштанды abc";	/* 8 Cyrillic + space + 3 */
	size_t bad = 99;

	(void)state;
	assert_int_equal(utf8_count(s, strlen(s)), 12);
	assert_int_equal(utf8_prefix(s, strlen(s), 3), 6);
	assert_int_equal(utf8_prefix(s, strlen(s), 100), strlen(s));
	assert_false(utf8_valid("ab\xff", 3, &bad));
	assert_int_equal(bad, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_count_and_prefix),
	};
	return cmocka_run_group_tests_name("utf8", tests, NULL, NULL);
}
