/*
 * lexicon_pg.c - fill a normalizer lexicon from PostgreSQL: add result
 * rows, and load a whole lexicon asynchronously through a pgconn.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "lexicon_pg.h"
#include "pgconn.h"
#include "xmalloc.h"

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

/* One lexicon load in flight: three queries in turn on one connection. */
struct lexload {
	struct pgconn	*pc;
	char		*stmt[3];
	int		 step;		/* 0 keywords, 1 places, 2 rayons */
	struct lexicon	*lx;
	lexicon_pg_done	*done;
	void		*arg;
};

static void
load_finish(struct lexload *l, struct lexicon *lx, const char *err)
{
	l->done(lx, err, l->arg);
	lexicon_free(&l->lx);
	for (int i = 0; i < 3; i++)
		free(l->stmt[i]);
	free(l);
}

static void
load_step(PGresult *res, void *arg)
{
	struct lexload *l = arg;
	char err[256];		/* one reason */
	struct lexicon *lx;
	int n;

	if (l->step == 0)
		n = lexicon_add_keywords_pg(l->lx, res, err, sizeof(err));
	else if (l->step == 1)
		n = lexicon_add_places_pg(l->lx, res, err, sizeof(err));
	else
		n = lexicon_add_rayons_pg(l->lx, res, err, sizeof(err));
	if (n < 0) {
		load_finish(l, NULL, err);
		return;
	}
	if (++l->step == 3) {
		lx = l->lx;
		l->lx = NULL;
		load_finish(l, lx, NULL);
		return;
	}
	/* pgconn never runs a callback inside pgconn_query(). */
	if (pgconn_query(l->pc, l->stmt[l->step], true, 0, NULL, load_step,
	    l) < 0)
		load_finish(l, NULL, "database connection not ready");
}

int
lexicon_pg_load(struct pgconn *pc, const char *const stmts[3],
    lexicon_pg_done *done, void *arg)
{
	struct lexload *l = xcalloc(1, sizeof(*l));

	l->pc = pc;
	for (int i = 0; i < 3; i++)
		l->stmt[i] = xstrdup(stmts[i]);
	l->lx = lexicon_new();
	l->done = done;
	l->arg = arg;
	if (pgconn_query(pc, l->stmt[0], true, 0, NULL, load_step, l) < 0) {
		lexicon_free(&l->lx);
		for (int i = 0; i < 3; i++)
			free(l->stmt[i]);
		free(l);
		return -1;
	}
	return 0;
}
