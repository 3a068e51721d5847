/*
 * test_csv.c - the RFC 4180 reader on the shapes the reference data has:
 * quoted fields with commas and doubled quotes, CRLF, empty fields, and
 * an unterminated quote.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "csv.h"

static FILE *
from_string(const char *s)
{
	FILE *fp = tmpfile();
	assert_non_null(fp);
	fputs(s, fp);
	rewind(fp);
	return fp;
}

static void
test_rows(void **state)
{
	FILE *fp = from_string("a,b,c\r\n1,\"x, y\",\"say \"\"hi\"\"\"\n,,\n"
	    "\"multi\nline\",2,3\n");
	struct csv_row r = { 0 };
	(void)state;

	assert_int_equal(csv_read(fp, &r), 1);
	assert_int_equal(r.nfields, 3);
	assert_string_equal(r.field[2], "c");
	assert_int_equal(csv_read(fp, &r), 1);
	assert_string_equal(r.field[0], "1");
	assert_string_equal(r.field[1], "x, y");
	assert_string_equal(r.field[2], "say \"hi\"");
	assert_int_equal(csv_read(fp, &r), 1);
	assert_int_equal(r.nfields, 3);
	assert_string_equal(r.field[0], "");
	assert_int_equal(csv_read(fp, &r), 1);
	assert_string_equal(r.field[0], "multi\nline");
	assert_int_equal(r.line, 4);
	assert_int_equal(csv_read(fp, &r), 0);
	csv_row_free(&r);
	fclose(fp);
}

static void
test_malformed(void **state)
{
	FILE *fp = from_string("a,\"never closed\n");
	struct csv_row r = { 0 };
	(void)state;

	assert_int_equal(csv_read(fp, &r), -1);
	csv_row_free(&r);
	fclose(fp);
}

static void
test_reference_file(void **state)
{
	FILE *fp = fopen("../../sql/data/aiyl_aimaks.csv", "r");
	struct csv_row r = { 0 };
	int rows = 0, rc;
	(void)state;

	assert_non_null(fp);
	while ((rc = csv_read(fp, &r)) == 1) {
		assert_true(r.nfields >= 6);
		rows++;
	}
	assert_int_equal(rc, 0);
	assert_true(rows >= 130);	/* header + 129 aiyl aimaks + towns */
	csv_row_free(&r);
	fclose(fp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_reference_file),
	};
	return cmocka_run_group_tests_name("csv", tests, NULL, NULL);
}
