/*
 * lexicon_pg.h - fill a normalizer lexicon from PostgreSQL.
 *
 * A daemon prepares the queries below on its pgconn and loads a fresh
 * lexicon with lexicon_pg_load() (at start and on SIGHUP), swapping it in
 * only when every query succeeded; a failed reload keeps the old one.
 * The queries return the stored (lower-cased) spellings; the lexicon
 * folds them itself, so any spelling an operator inserts works.
 */
#ifndef ARYZ_LEXICON_PG_H
#define ARYZ_LEXICON_PG_H

#include <libpq-fe.h>

#include "normalize.h"

/* Columns: category_code, keyword. */
#define LEXICON_SQL_KEYWORDS \
	"SELECT category_code, keyword FROM category_keyword"

/* Columns: soate, alias; only municipalities valid today. */
#define LEXICON_SQL_PLACES \
	"SELECT a.soate, a.alias FROM municipality_alias a " \
	"JOIN municipality m USING (soate) " \
	"WHERE m.valid_to IS NULL OR m.valid_to > current_date"

/*
 * Optional third query, columns: soate, name; rayon names in all three
 * spellings, for "Кызыл-Туу, Сузак району" (see lexicon_add_rayon()).
 */
#define LEXICON_SQL_RAYONS \
	"SELECT r.soate, n.name FROM rayon r, " \
	"LATERAL unnest(ARRAY[r.name_ky, r.name_ru, r.name_latin]) AS n(name) " \
	"WHERE r.kind = 'rayon' AND n.name IS NOT NULL " \
	"AND (r.valid_to IS NULL OR r.valid_to > current_date)"

/*
 * Add the rows of a LEXICON_SQL_KEYWORDS / _PLACES / _RAYONS result.
 * Returns the number of rows added, or -1 when res is NULL, not a
 * PGRES_TUPLES_OK result, or has fewer than two columns (then nothing is
 * added and errbuf, if not NULL, holds the reason).  Rows the lexicon
 * refuses (e.g. an alias with no letters) are skipped, not counted.
 */
int lexicon_add_keywords_pg(struct lexicon *lx, const PGresult *res,
    char *errbuf, size_t errlen) __attribute__((warn_unused_result));
int lexicon_add_places_pg(struct lexicon *lx, const PGresult *res,
    char *errbuf, size_t errlen) __attribute__((warn_unused_result));
int lexicon_add_rayons_pg(struct lexicon *lx, const PGresult *res,
    char *errbuf, size_t errlen) __attribute__((warn_unused_result));

struct pgconn;

/*
 * Called once when a load ends: lx is the new lexicon (the callee owns
 * it), or NULL with err saying why (connection lost, bad result).
 */
typedef void lexicon_pg_done(struct lexicon *lx, const char *err, void *arg);

/*
 * Load a fresh lexicon through pc: run the prepared statements stmts[0]
 * (LEXICON_SQL_KEYWORDS), stmts[1] (_PLACES) and stmts[2] (_RAYONS) one
 * after the other, then call done.  The names are copied.  Returns 0, or
 * -1 without calling done when the first query cannot be queued.
 */
int lexicon_pg_load(struct pgconn *pc, const char *const stmts[3],
    lexicon_pg_done *done, void *arg) __attribute__((warn_unused_result));

#endif
