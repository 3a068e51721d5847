/*
 * csv.c - a small RFC 4180 reader for the reference data files.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "xmalloc.h"

static void
put(struct csv_row *r, size_t *len, char c)
{
	if (*len + 1 >= r->cap) {
		r->cap = r->cap ? r->cap * 2 : 256;
		r->buf = xrealloc(r->buf, r->cap);
	}
	r->buf[(*len)++] = c;
}

int
csv_read(FILE *fp, struct csv_row *r)
{
	size_t len = 0, starts[CSV_MAX_FIELDS];
	bool quoted = false, any = false;
	int c, n = 0;

	r->line = ++r->lineno;
	starts[n++] = 0;
	while ((c = fgetc(fp)) != EOF) {
		any = true;
		if (quoted) {
			if (c == '"') {
				int d = fgetc(fp);
				if (d == '"')
					put(r, &len, '"');
				else {
					quoted = false;
					if (d != EOF)
						ungetc(d, fp);
				}
			} else {
				if (c == '\n')
					r->lineno++;
				put(r, &len, (char)c);
			}
			continue;
		}
		if (c == '"')
			quoted = true;
		else if (c == ',') {
			put(r, &len, '\0');
			if (n == CSV_MAX_FIELDS)
				return -1;
			starts[n++] = len;
		} else if (c == '\r')
			continue;
		else if (c == '\n')
			break;
		else
			put(r, &len, (char)c);
	}
	if (!any)
		return 0;
	if (quoted)
		return -1;
	put(r, &len, '\0');
	r->nfields = n;
	for (int i = 0; i < n; i++)
		r->field[i] = r->buf + starts[i];
	return 1;
}

void
csv_row_free(struct csv_row *r)
{
	xfree(&r->buf);
	r->cap = 0;
	r->nfields = 0;
}
