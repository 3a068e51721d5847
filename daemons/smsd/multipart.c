/*
 * multipart.c - concatenated SMS that arrive as separate parts (UDH IEI
 * 0x00 with an 8-bit reference, IEI 0x08 with a 16-bit one).  Each part
 * is committed on its own (200 to the sender after that COMMIT); the last
 * part to arrive also creates the complaint from the whole text.  A sweep
 * finishes groups the daemon died on, and surfaces groups that never
 * complete as a complaint holding what arrived ("[...]" marks a gap); a
 * part arriving after that fills its gap in the same complaint (event
 * 'late_part') instead of starting a group of its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "normalize.h"
#include "pgconn.h"
#include "smsd.h"
#include "xmalloc.h"

#define SWEEP_BATCH	50	/* groups finished per sweep */

static const char *
lang_code(enum norm_lang l)
{
	return l == NORM_LANG_KY ? "ky" : l == NORM_LANG_RU ? "ru" : NULL;
}

/* Queue aryz_sms_concat_submit for group with normalized text. */
static int
concat_submit(struct smsd *s, struct pgconn *db, const char *group,
    const char *text, bool partial, pgconn_result_cb *cb, void *arg)
{
	struct norm_result nr;
	const char *v[6];

	normalize_text(s->lex, text, strlen(text), &nr);
	v[0] = group;
	v[1] = nr.soate[0] ? nr.soate : NULL;
	v[2] = nr.category[0] ? nr.category : NULL;
	v[3] = lang_code(nr.lang);
	v[4] = text;
	v[5] = partial ? "t" : "f";
	return pgconn_query(db, "smsd_concat_submit", true, 6, v, cb, arg);
}

static void
complete_done(PGresult *res, void *arg)
{
	struct sreq *r = arg;

	if (!pgconn_ok(res) || PQntuples(res) != 1) {
		clog_warn(r->ctx, "multipart submit failed: %s",
		    pgconn_errmsg(res));
		/* The part is stored; a redelivery or the sweep completes. */
		sreq_unavailable(r, "query failed");
		return;
	}
	sreq_reply(r, 200, "OK ticket=%s parts complete",
	    PQgetvalue(res, 0, 1));
}

static void
part_done(PGresult *res, void *arg)
{
	struct sreq *r = arg;
	struct mo_msg *m = r->priv;
	struct pgconn *db;

	if (!pgconn_ok(res) || PQntuples(res) != 1) {
		clog_warn(r->ctx, "storing part failed: %s",
		    pgconn_errmsg(res));
		sreq_unavailable(r, "query failed");
		return;
	}
	if (strcmp(PQgetvalue(res, 0, 2), "t") != 0) {
		sreq_reply(r, 200, "OK part %d/%d%s", m->seq, m->total,
		    strcmp(PQgetvalue(res, 0, 1), "t") == 0 ?
		    " duplicate" : "");
		return;
	}
	if ((db = smsd_db(r->s)) == NULL || r->s->lex == NULL ||
	    concat_submit(r->s, db, PQgetvalue(res, 0, 0),
	    PQgetvalue(res, 0, 3), false, complete_done, r) < 0)
		sreq_unavailable(r, "not connected");
}

void
mp_part(struct sreq *r, struct mo_msg *m)
{
	struct pgconn *db = smsd_db(r->s);
	char ref[16], total[16], seq[16];	/* ints */
	char *hex;
	const char *v[9];
	int rc;

	if (db == NULL) {
		sreq_unavailable(r, "not connected");
		return;
	}
	snprintf(ref, sizeof(ref), "%d", m->ref);
	snprintf(total, sizeof(total), "%d", m->total);
	snprintf(seq, sizeof(seq), "%d", m->seq);
	hex = bytea_hex(m->raw, m->rawlen);
	v[0] = m->idem;
	v[1] = m->sender;
	v[2] = m->receiver;
	v[3] = hex;
	v[4] = m->text;
	v[5] = m->meta;
	v[6] = ref;
	v[7] = total;
	v[8] = seq;
	rc = pgconn_query(db, "smsd_part", true, 9, v, part_done, r);
	free(hex);
	if (rc < 0)
		sreq_unavailable(r, "queue full");
}

/* ---- sweep ---- */

struct sweep_item {
	struct smsd	*s;
	char		 group[24];	/* bigint as text */
	bool		 partial;
};

static void
sweep_submitted(PGresult *res, void *arg)
{
	struct sweep_item *it = arg;

	it->s->sweeping--;
	it->s->inflight--;
	if (pgconn_ok(res) && PQntuples(res) == 1)
		log_info("multipart group %s %s: complaint ticket=%s",
		    it->group, it->partial ? "incomplete, surfaced" :
		    "completed by sweep", PQgetvalue(res, 0, 1));
	else
		log_warnx("multipart group %s: submit failed: %s", it->group,
		    pgconn_errmsg(res));
	free(it);
}

static void
sweep_due(PGresult *res, void *arg)
{
	struct smsd *s = arg;
	struct pgconn *db;

	s->sweeping--;
	s->inflight--;
	if (!pgconn_ok(res)) {
		log_warnx("multipart sweep failed: %s", pgconn_errmsg(res));
		return;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		struct sweep_item *it = xcalloc(1, sizeof(*it));

		it->s = s;
		snprintf(it->group, sizeof(it->group), "%s",
		    PQgetvalue(res, i, 0));
		it->partial = strcmp(PQgetvalue(res, i, 1), "t") == 0;
		if ((db = smsd_db(s)) == NULL || concat_submit(s, db,
		    it->group, PQgetvalue(res, i, 2), it->partial,
		    sweep_submitted, it) < 0) {
			free(it);
			return;
		}
		s->sweeping++;
		s->inflight++;
	}
}

void
mp_sweep(struct smsd *s)
{
	struct pgconn *db = smsd_db(s);
	char age[16], lim[16];	/* ints */
	const char *v[2];

	if (db == NULL || s->lex == NULL || s->sweeping > 0 || s->stopping)
		return;
	snprintf(age, sizeof(age), "%d", s->cfg->mp_max_age);
	snprintf(lim, sizeof(lim), "%d", SWEEP_BATCH);
	v[0] = age;
	v[1] = lim;
	if (pgconn_query(db, "smsd_concat_due", true, 2, v, sweep_due, s) == 0) {
		s->sweeping++;
		s->inflight++;
	}
}
