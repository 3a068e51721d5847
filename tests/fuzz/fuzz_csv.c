/*
 * fuzz_csv.c - libFuzzer target for the CSV reader.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *fp = fmemopen((void *)(uintptr_t)data, size, "r");
	struct csv_row r = { 0 };
	int rc;

	if (fp == NULL)
		return 0;
	while ((rc = csv_read(fp, &r)) == 1)
		if (r.nfields < 1 || r.nfields > CSV_MAX_FIELDS)
			__builtin_trap();
	csv_row_free(&r);
	fclose(fp);
	return 0;
}
