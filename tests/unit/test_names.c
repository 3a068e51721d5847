/*
 * test_names.c - names_each() on the shapes of aiyl_aimaks.csv names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "names.h"

static int
collect(const char *variant, void *arg)
{
	char *out = arg;

	if (*out)
		strcat(out, "|");
	strcat(out, variant);
	return 0;
}

static int
stop_at_second(const char *variant, void *arg)
{
	int *n = arg;
	(void)variant;
	return ++*n == 2 ? 7 : 0;
}

static void
test_variants(void **state)
{
	static const struct { const char *in, *want; } cases[] = {
		{ "Ак-Булуң", "Ак-Булуң" },
		{ "Семеновка → Кожояр", "Семеновка|Кожояр" },
		{ "Semyonovka / Kojoyar", "Semyonovka|Kojoyar" },
		{ "Karakol (AA)", "Karakol" },
		{ "Дархан ?", "Дархан" },
		{ "Temir(ovka)", "Temir" },
		{ "Kara-Köl (city", "Kara-Köl" },
		{ " / () / ", "" },
		{ "", "" },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[256] = "";	/* every case joins to far less */
		assert_int_equal(names_each(cases[i].in, collect, out), 0);
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("'%s' gave '%s', want '%s'", cases[i].in, out,
			    cases[i].want);
	}
}

static void
test_stop_value(void **state)
{
	int n = 0;
	(void)state;

	assert_int_equal(names_each("a / b / c", stop_at_second, &n), 7);
	assert_int_equal(n, 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_variants),
		cmocka_unit_test(test_stop_value),
	};
	return cmocka_run_group_tests_name("names", tests, NULL, NULL);
}
