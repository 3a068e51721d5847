/*
 * test_phone.c - phone_normalize() against tests/unit/data/phone.txt.
 * Each data line: input<TAB>expected ("-" means rejected).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "phone.h"

static void
test_table(void **state)
{
	FILE *fp = fopen("data/phone.txt", "r");
	char line[256];		/* data lines are short */
	int n = 0;

	(void)state;
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		char *tab, out[PHONE_E164_MAX];
		int rc;

		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		tab = strrchr(line, '\t');
		assert_non_null(tab);
		*tab++ = '\0';
		rc = phone_normalize(line, out, sizeof(out));
		if (strcmp(tab, "-") == 0) {
			if (rc != -1)
				fail_msg("'%s' accepted as %s", line, out);
		} else {
			if (rc != 0)
				fail_msg("'%s' rejected, want %s", line, tab);
			assert_string_equal(out, tab);
		}
		n++;
	}
	fclose(fp);
	assert_true(n >= 20);
}

static void
test_small_buffer(void **state)
{
	char out[8];
	(void)state;
	assert_int_equal(phone_normalize("0555123456", out, sizeof(out)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_small_buffer),
	};
	return cmocka_run_group_tests_name("phone", tests, NULL, NULL);
}
