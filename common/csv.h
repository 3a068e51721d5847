/*
 * csv.h - RFC 4180 CSV reader (quoted fields, doubled quotes, CRLF).
 */
#ifndef ARYZ_CSV_H
#define ARYZ_CSV_H

#include <stdio.h>

#define CSV_MAX_FIELDS	32	/* reference files have fewer than 10 */

struct csv_row {
	int	 nfields;
	char	*field[CSV_MAX_FIELDS];	/* point into the row's buffer */
	char	*buf;
	size_t	 cap;
	int	 line;			/* line number where the row began */
	int	 lineno;		/* lines consumed so far (reader state) */
};

/*
 * Read the next row from fp into row (reusing its buffer).  Returns 1 for
 * a row, 0 at end of file, -1 for a malformed row (unterminated quote,
 * too many fields).  Use one zeroed row per file: it counts the lines.  Free the buffer with csv_row_free().
 */
int csv_read(FILE *fp, struct csv_row *row) __attribute__((warn_unused_result));
void csv_row_free(struct csv_row *row);

#endif
