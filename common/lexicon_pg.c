/*
 * lexicon_pg.c - add PostgreSQL result rows to a normalizer lexicon.
 */
#include <stdbool.h>
#include <stdio.h>

#include "lexicon_pg.h"

typedef bool add_fn(struct lexicon *, const char *, const char *);

static int
add_rows(struct lexicon *lx, const PGresult *res, add_fn *add,
    char *errbuf, size_t errlen)
{
	int n = 0;

	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		if (errbuf != NULL)
			snprintf(errbuf, errlen, "%s", res == NULL ?
			    "no result" : PQresultErrorMessage(res));
		return -1;
	}
	if (PQnfields(res) < 2) {
		if (errbuf != NULL)
			snprintf(errbuf, errlen, "expected 2 columns, got %d",
			    PQnfields(res));
		return -1;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		if (PQgetisnull(res, i, 0) || PQgetisnull(res, i, 1))
			continue;
		if (add(lx, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1)))
			n++;
	}
	return n;
}

int
lexicon_add_keywords_pg(struct lexicon *lx, const PGresult *res,
    char *errbuf, size_t errlen)
{
	return add_rows(lx, res, lexicon_add_keyword, errbuf, errlen);
}

int
lexicon_add_places_pg(struct lexicon *lx, const PGresult *res,
    char *errbuf, size_t errlen)
{
	return add_rows(lx, res, lexicon_add_place, errbuf, errlen);
}

int
lexicon_add_rayons_pg(struct lexicon *lx, const PGresult *res,
    char *errbuf, size_t errlen)
{
	return add_rows(lx, res, lexicon_add_rayon, errbuf, errlen);
}
