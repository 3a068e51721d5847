/*
 * ussd.c - the USSD menu (Africa's Talking-style callback: form POST of
 * sessionId, serviceCode, phoneNumber, networkCode, text with the inputs
 * joined by '*'; reply text/plain "CON ..." or "END ...").
 *
 * The aggregator resends the whole input path on every callback, so the
 * menu state is a pure function of (path, snapshot): each callback replays
 * the path over the cached categories, rayons and municipalities.  The
 * snapshot (language and home municipality at the first callback) lives
 * in ussd_session, so a session survives a daemon restart.  A callback is
 * one fast query (aryz_ussd_touch); the final step adds the one query that
 * does the work (submit, set, status).  Nothing is written for a complaint
 * before the confirm step, so an abandoned session leaves no complaint.
 *
 * Every screen fits 182 GSM-7 or 80 UCS-2 characters (ussd_fits); lists
 * are cut into pages that fit, with "9" next and "0" back.
 */
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"
#include "phone.h"
#include "sms.h"
#include "smsd.h"
#include "utf8.h"
#include "xmalloc.h"

#define USSD_GSM_MAX	182	/* GSM-7 characters on one screen */
#define USSD_UCS2_MAX	80	/* UCS-2 characters on one screen */
#define PAGE_ITEMS	8	/* choices 1..8; 9 next, 0 back */
#define NAME_MAX_B	96	/* bytes of a cached name */
#define SCREEN_B	1024	/* bytes of a screen being built */
#define DESC_MAX_B	480	/* bytes of a USSD description kept */

struct ucat {
	char	code[32];
	char	name[2][NAME_MAX_B];	/* [0] ky, [1] ru */
};

struct umuni {
	char	soate[15];
	char	name[2][NAME_MAX_B];
};

struct urayon {
	char	soate[15];
	char	name[2][NAME_MAX_B];
	int	first, count;		/* its municipalities in munis[] */
};

struct ussd_data {
	struct ucat	*cats;
	int		 ncats;
	struct urayon	*rayons;
	int		 nrayons;
	struct umuni	*munis;
	int		 nmunis;
};

/* Short labels that fit a screen; the DB name is the fallback. */
static const struct {
	const char *code, *ky, *ru;
} short_cat[] = {
	{ "waste", "Таштанды", "Мусор" },
	{ "lighting", "Көчө жарыгы", "Освещение" },
	{ "landscaping", "Көрктөндүрүү", "Благоустройство" },
	{ "culture", "Маданият", "Культура" },
	{ "water", "Суу", "Вода" },
	{ "other", "Башка", "Другое" },
};

enum { KY = 0, RU = 1 };

/* Every fixed text of the menu, [ky, ru]. */
static const char *const T_MAIN[2] = {
	"Арыз кызматы\n1 Жаңы арыз\n2 Арыздын абалы\n3 Тил / Язык\n4 Менин айылым",
	"Жалобы\n1 Новая жалоба\n2 Статус жалобы\n3 Язык / Тил\n4 Мой айыл",
};
/* Short: with six labels and "0 back" the list must fit 80 UCS-2. */
static const char *const T_CAT[2] = { "Кызмат:", "Услуга:" };
static const char *const T_RAYON[2] = { "Район:", "Район:" };
static const char *const T_AA[2] = { "Айыл аймак:", "Айыл аймак:" };
static const char *const T_HOME[2] = { "Айыл:\n1 %s\n2 Башка айыл",
	"Айыл:\n1 %s\n2 Другой айыл" };
static const char *const T_DESC[2] = { "Көйгөйдү кыскача жазыңыз:",
	"Кратко опишите проблему:" };
static const char *const T_CONFIRM[2] = { "%s, %s:\n%s\n1 Жөнөтүү\n2 Жокко чыгаруу",
	"%s, %s:\n%s\n1 Отправить\n2 Отмена" };
static const char *const T_TICKET[2] = { "Рахмат! Арыз №%s кабыл алынды.",
	"Спасибо! Заявка №%s принята." };
static const char *const T_CANCEL[2] = { "Арыз жокко чыгарылды.",
	"Заявка отменена." };
static const char *const T_ASK_TICKET[2] = { "Арыздын номерин жазыңыз:",
	"Введите номер заявки:" };
static const char *const T_LANG = "1 Кыргызча\n2 Русский";
static const char *const T_LANG_SET[2] = { "Тил сакталды: кыргызча.",
	"Язык сохранён: русский." };
static const char *const T_HOME_SET[2] = { "Айылыңыз сакталды: %s.",
	"Ваш айыл сохранён: %s." };
static const char *const T_NEXT[2] = { "9 Дагы", "9 Далее" };
static const char *const T_BACK[2] = { "0 Артка", "0 Назад" };

bool
ussd_fits(const char *text)
{
	size_t units;	/* septets, or UTF-16 units */

	(void)sms_parts(text, &units);
	return units <= (sms_gsm7_only(text) ? USSD_GSM_MAX : USSD_UCS2_MAX);
}

/* Cut s (in place) so that prefix + s fits a screen. */
static void
fit_cut(const char *prefix, char *s)
{
	char buf[SCREEN_B];
	size_t len = strlen(s);

	for (;;) {
		snprintf(buf, sizeof(buf), "%s%s", prefix, s);
		if (ussd_fits(buf) || len == 0)
			return;
		len = utf8_prefix(s, len, utf8_count(s, len) - 1);
		s[len] = '\0';
	}
}

/* ---- reference cache ---- */

void
ussd_free(struct ussd_data **up)
{
	struct ussd_data *u = *up;

	if (u == NULL)
		return;
	free(u->cats);
	free(u->rayons);
	free(u->munis);
	free(u);
	*up = NULL;
}

struct uload {
	struct smsd		*s;
	struct ussd_data	*u;
	int			 step;
};

static const char *const load_sql[] = {
	"SELECT code, name_ky, name_ru FROM service_category ORDER BY sort, code",
	"SELECT m.soate, m.rayon_soate, COALESCE(m.name_ky, m.name_ru), m.name_ru,"
	" COALESCE(r.name_ky, r.name_ru), r.name_ru"
	" FROM municipality m JOIN rayon r ON r.soate = m.rayon_soate"
	" WHERE m.valid_to IS NULL OR m.valid_to > current_date"
	" ORDER BY r.name_latin, r.soate, m.name_latin, m.soate",
};

static void
copy_name(char *dst, const char *src)
{
	size_t n = utf8_prefix(src, strlen(src), 40);

	if (n >= NAME_MAX_B)
		n = utf8_prefix(src, NAME_MAX_B - 1, NAME_MAX_B / 4);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* "Ак-Суу району" -> "Ак-Суу"; "Ак-Суйский район" -> "Ак-Суйский". */
static void
strip_suffix(char *s)
{
	static const char *const suf[] = { " району", " район", " шаары" };

	for (size_t i = 0; i < sizeof(suf) / sizeof(suf[0]); i++) {
		size_t n = strlen(s), k = strlen(suf[i]);
		if (n > k && strcmp(s + n - k, suf[i]) == 0) {
			s[n - k] = '\0';
			return;
		}
	}
}

static void
load_step(PGresult *res, void *arg)
{
	struct uload *ul = arg;
	struct ussd_data *u = ul->u;
	struct pgconn *db;
	int n;

	if (!pgconn_ok(res)) {
		log_warnx("USSD reference load failed: %s", pgconn_errmsg(res));
		goto fail;
	}
	n = PQntuples(res);
	if (ul->step == 0) {
		u->cats = xcalloc((size_t)n + 1, sizeof(*u->cats));
		u->ncats = n;	/* paged like the other lists */
		for (int i = 0; i < u->ncats; i++) {
			const char *code = PQgetvalue(res, i, 0);
			snprintf(u->cats[i].code, sizeof(u->cats[i].code), "%s",
			    code);
			copy_name(u->cats[i].name[KY], PQgetvalue(res, i, 1));
			copy_name(u->cats[i].name[RU], PQgetvalue(res, i, 2));
			for (size_t k = 0; k < sizeof(short_cat) /
			    sizeof(short_cat[0]); k++)
				if (strcmp(short_cat[k].code, code) == 0) {
					copy_name(u->cats[i].name[KY],
					    short_cat[k].ky);
					copy_name(u->cats[i].name[RU],
					    short_cat[k].ru);
				}
		}
	} else {
		u->munis = xcalloc((size_t)n + 1, sizeof(*u->munis));
		u->rayons = xcalloc((size_t)n + 1, sizeof(*u->rayons));
		u->nmunis = n;
		for (int i = 0; i < n; i++) {
			struct umuni *m = &u->munis[i];
			const char *rs = PQgetvalue(res, i, 1);
			struct urayon *r;

			snprintf(m->soate, sizeof(m->soate), "%s",
			    PQgetvalue(res, i, 0));
			copy_name(m->name[KY], PQgetvalue(res, i, 2));
			copy_name(m->name[RU], PQgetvalue(res, i, 3));
			if (u->nrayons == 0 ||
			    strcmp(u->rayons[u->nrayons - 1].soate, rs) != 0) {
				r = &u->rayons[u->nrayons++];
				snprintf(r->soate, sizeof(r->soate), "%s", rs);
				copy_name(r->name[KY], PQgetvalue(res, i, 4));
				copy_name(r->name[RU], PQgetvalue(res, i, 5));
				strip_suffix(r->name[KY]);
				strip_suffix(r->name[RU]);
				r->first = i;
			}
			u->rayons[u->nrayons - 1].count++;
		}
	}
	if (++ul->step < (int)(sizeof(load_sql) / sizeof(load_sql[0]))) {
		if ((db = smsd_db(ul->s)) != NULL && pgconn_query(db,
		    load_sql[ul->step], false, 0, NULL, load_step, ul) == 0)
			return;
		goto fail;
	}
	ussd_free(&ul->s->ussd);
	ul->s->ussd = u;
	log_info("USSD menu loaded: %d categories, %d rayons, %d municipalities",
	    u->ncats, u->nrayons, u->nmunis);
	free(ul);
	return;
fail:
	ussd_free(&ul->u);
	free(ul);
}

void
ussd_load(struct smsd *s)
{
	struct uload *ul = xcalloc(1, sizeof(*ul));
	struct pgconn *db = smsd_db(s);

	ul->s = s;
	ul->u = xcalloc(1, sizeof(*ul->u));
	if (db == NULL || pgconn_query(db, load_sql[0], false, 0, NULL,
	    load_step, ul) < 0) {
		ussd_free(&ul->u);
		free(ul);
	}
}

static const struct umuni *
find_muni(const struct ussd_data *u, const char *soate)
{
	for (int i = 0; soate && *soate && i < u->nmunis; i++)
		if (strcmp(u->munis[i].soate, soate) == 0)
			return &u->munis[i];
	return NULL;
}

/* ---- menu replay ---- */

enum ustate {
	US_MAIN,	/* main menu */
	US_CAT,		/* choose a category */
	US_HOME,	/* use the home municipality or another */
	US_RAYON,	/* rayon list page */
	US_AA,		/* municipality list page of one rayon */
	US_DESC,	/* type the description */
	US_CONFIRM,	/* send or cancel */
	US_ASK,		/* type a ticket number */
	US_LANG,	/* choose a language */
};

enum uact {
	UA_NONE,	/* just show the screen */
	UA_SUBMIT,	/* create the complaint */
	UA_STATUS,	/* look up a ticket */
	UA_SET,		/* set language or home */
	UA_END,		/* end without work (cancel) */
};

struct menu {
	int			 lang;		/* KY or RU */
	const char		*home;		/* soate or NULL */
	/* result */
	enum uact		 act;
	char			 screen[SCREEN_B];
	int			 cat;		/* index into cats */
	const struct umuni	*muni;
	char			 desc[DESC_MAX_B];
	char			 ticket[24];
	int			 set_lang;	/* -1 none */
};

/*
 * Build a list page: header, items [first, first+k) as "n name", nav.
 * Returns k, the number of items that fit (at least 1 when any remain).
 */
static int
list_page(char *out, size_t cap, int lang, const char *header,
    const char *const *names, int first, int total)
{
	int k;

	for (k = PAGE_ITEMS < total - first ? PAGE_ITEMS : total - first;
	    k > 1; k--) {
		size_t o = (size_t)snprintf(out, cap, "%s", header);
		for (int i = 0; i < k; i++)
			o += (size_t)snprintf(out + o, cap - o, "\n%d %s", i + 1,
			    names[first + i]);
		if (first + k < total)
			o += (size_t)snprintf(out + o, cap - o, "\n%s",
			    T_NEXT[lang]);
		snprintf(out + o, cap - o, "\n%s", T_BACK[lang]);
		if (ussd_fits(out))
			return k;
	}
	{
		char name[NAME_MAX_B];	/* one item, cut to fit */
		char pre[SCREEN_B];
		snprintf(name, sizeof(name), "%s", total > first ?
		    names[first] : "");
		snprintf(pre, sizeof(pre), "%s\n1 ", header);
		fit_cut(pre, name);
		snprintf(out, cap, "%s\n1 %s%s%s\n%s", header, name,
		    first + 1 < total ? "\n" : "",
		    first + 1 < total ? T_NEXT[lang] : "", T_BACK[lang]);
		if (!ussd_fits(out))
			snprintf(out, cap, "%s\n1 %s", header, name);
	}
	return 1;
}

/* The page starts of a list, computed greedily from the first page. */
static int
page_start(int lang, const char *header, const char *const *names,
    int total, int page, int *count)
{
	char buf[SCREEN_B];
	int first = 0, k = 0;

	for (int p = 0; ; p++) {
		k = list_page(buf, sizeof(buf), lang, header, names, first,
		    total);
		if (p == page || first + k >= total)
			break;
		first += k;
	}
	*count = k;
	return first;
}

#define CAT_LIST	(-2)	/* names_of(): the categories */

/* Names of rayons (rayon -1), of the municipalities of one rayon, or of
 * the categories (CAT_LIST), in lang. */
static const char **
names_of(const struct ussd_data *u, int lang, int rayon, int *n)
{
	const char **v;

	if (rayon == CAT_LIST) {
		v = xcalloc((size_t)u->ncats + 1, sizeof(*v));
		for (int i = 0; i < u->ncats; i++)
			v[i] = u->cats[i].name[lang];
		*n = u->ncats;
	} else if (rayon < 0) {
		v = xcalloc((size_t)u->nrayons + 1, sizeof(*v));
		for (int i = 0; i < u->nrayons; i++)
			v[i] = u->rayons[i].name[lang];
		*n = u->nrayons;
	} else {
		const struct urayon *r = &u->rayons[rayon];
		v = xcalloc((size_t)r->count + 1, sizeof(*v));
		for (int i = 0; i < r->count; i++)
			v[i] = u->munis[r->first + i].name[lang];
		*n = r->count;
	}
	return v;
}

static int
choice(const char *t)
{
	if (t[0] >= '0' && t[0] <= '9' && t[1] == '\0')
		return t[0] - '0';
	return -1;
}

/*
 * Replay the input path.  tok[0..n) are the inputs.  Fills m->screen
 * (without CON/END), m->act and the chosen values.
 */
static void
menu_replay(const struct ussd_data *u, struct menu *m, char **tok, int n)
{
	enum ustate st = US_MAIN;
	bool home_flow = false;	/* rayon/AA pick sets the home */
	int page = 0, rayon = -1, lang = m->lang;
	const char **names = NULL;
	int nn, first, k;

	m->act = UA_NONE;
	m->cat = -1;
	m->set_lang = -1;
	for (int i = 0; i < n; i++) {
		const char *t = tok[i];
		int c = choice(t);

		switch (st) {
		case US_MAIN:
			if (c == 1) {
				st = US_CAT;
				page = 0;
				home_flow = false;
			} else if (c == 2)
				st = US_ASK;
			else if (c == 3)
				st = US_LANG;
			else if (c == 4) {
				st = US_RAYON;
				home_flow = true;
				page = 0;
			}
			break;
		case US_CAT:
			names = names_of(u, lang, CAT_LIST, &nn);
			first = page_start(lang, T_CAT[lang], names, nn, page,
			    &k);
			free(names);
			if (c == 9 && first + k < nn)
				page++;
			else if (c == 0 && page > 0)
				page--;
			else if (c == 0)
				st = US_MAIN;
			else if (c >= 1 && c <= k) {
				m->cat = first + c - 1;
				page = 0;
				st = find_muni(u, m->home) ? US_HOME : US_RAYON;
			}
			break;
		case US_HOME:
			if (c == 1) {
				m->muni = find_muni(u, m->home);
				st = US_DESC;
			} else if (c == 2) {
				st = US_RAYON;
				page = 0;
			} else if (c == 0) {
				st = US_CAT;
				page = 0;
			}
			break;
		case US_RAYON:
		case US_AA:
			names = names_of(u, lang, st == US_AA ? rayon : -1, &nn);
			first = page_start(lang, st == US_AA ? T_AA[lang] :
			    T_RAYON[lang], names, nn, page, &k);
			free(names);
			if (c == 9 && first + k < nn)
				page++;
			else if (c == 0 && page > 0)
				page--;
			else if (c == 0 && st == US_AA) {
				st = US_RAYON;
				page = 0;
			} else if (c == 0)
				st = home_flow ? US_MAIN : (find_muni(u, m->home) ?
				    US_HOME : US_CAT);
			else if (c >= 1 && c <= k && st == US_RAYON) {
				rayon = first + c - 1;
				st = US_AA;
				page = 0;
			} else if (c >= 1 && c <= k) {
				m->muni = &u->munis[u->rayons[rayon].first +
				    first + c - 1];
				if (home_flow) {
					m->act = UA_SET;
					snprintf(m->screen, sizeof(m->screen),
					    T_HOME_SET[lang], m->muni->name[lang]);
					return;
				}
				st = US_DESC;
			}
			break;
		case US_DESC:
			if (t[0] != '\0') {
				size_t l = utf8_prefix(t, strlen(t), 160);
				if (l >= sizeof(m->desc))
					l = utf8_prefix(t, sizeof(m->desc) - 1,
					    (sizeof(m->desc) - 1) / 4);
				memcpy(m->desc, t, l);
				m->desc[l] = '\0';
				st = US_CONFIRM;
			}
			break;
		case US_CONFIRM:
			if (c == 1) {
				m->act = UA_SUBMIT;	/* screen after commit */
				return;
			} else if (c == 2) {
				m->act = UA_END;
				snprintf(m->screen, sizeof(m->screen), "%s",
				    T_CANCEL[lang]);
				return;
			}
			break;
		case US_ASK:
			if (t[0] != '\0' && strspn(t, "0123456789") ==
			    strlen(t) && strlen(t) < sizeof(m->ticket)) {
				snprintf(m->ticket, sizeof(m->ticket), "%s", t);
				m->act = UA_STATUS;
				return;
			}
			break;
		case US_LANG:
			if (c == 1 || c == 2) {
				m->set_lang = c == 1 ? KY : RU;
				m->lang = m->set_lang;
				m->act = UA_SET;
				snprintf(m->screen, sizeof(m->screen), "%s",
				    T_LANG_SET[m->set_lang]);
				return;
			} else if (c == 0)
				st = US_MAIN;
			break;
		}
	}

	/* Show the screen of state st. */
	switch (st) {
	case US_MAIN:
		snprintf(m->screen, sizeof(m->screen), "%s", T_MAIN[lang]);
		break;
	case US_CAT:
		names = names_of(u, lang, CAT_LIST, &nn);
		first = page_start(lang, T_CAT[lang], names, nn, page, &k);
		list_page(m->screen, sizeof(m->screen), lang, T_CAT[lang],
		    names, first, nn);
		free(names);
		break;
	case US_HOME: {
		char name[NAME_MAX_B];	/* the home's name, cut to fit */
		snprintf(name, sizeof(name), "%s",
		    find_muni(u, m->home)->name[lang]);
		fit_cut(T_HOME[lang], name);
		snprintf(m->screen, sizeof(m->screen), T_HOME[lang], name);
		break;
	}
	case US_RAYON:
	case US_AA:
		names = names_of(u, lang, st == US_AA ? rayon : -1, &nn);
		first = page_start(lang, st == US_AA ? T_AA[lang] :
		    T_RAYON[lang], names, nn, page, &k);
		list_page(m->screen, sizeof(m->screen), lang, st == US_AA ?
		    T_AA[lang] : T_RAYON[lang], names, first, nn);
		free(names);
		break;
	case US_DESC:
		snprintf(m->screen, sizeof(m->screen), "%s", T_DESC[lang]);
		break;
	case US_CONFIRM: {
		char d[DESC_MAX_B], pre[SCREEN_B];
		snprintf(d, sizeof(d), "%s", m->desc);
		snprintf(pre, sizeof(pre), T_CONFIRM[lang],
		    u->cats[m->cat].name[lang], m->muni->name[lang], "");
		fit_cut(pre, d);
		snprintf(m->screen, sizeof(m->screen), T_CONFIRM[lang],
		    u->cats[m->cat].name[lang], m->muni->name[lang], d);
		break;
	}
	case US_ASK:
		snprintf(m->screen, sizeof(m->screen), "%s", T_ASK_TICKET[lang]);
		break;
	case US_LANG:
		snprintf(m->screen, sizeof(m->screen), "%s", T_LANG);
		break;
	}
}

/* ---- the request ---- */

struct ucall {
	char		*sid, *phone, *service, *network, *text;
	char		*buf;		/* text, split on '*' into tok */
	char		**tok;
	int		 ntok;
	struct menu	 m;
};

static void
ucall_free(void *p)
{
	struct ucall *c = p;

	if (c == NULL)
		return;
	free(c->sid);
	free(c->phone);
	free(c->service);
	free(c->network);
	free(c->text);
	free(c->buf);
	free(c->tok);
	free(c);
}

/*
 * Reply "CON screen" or "END screen", cut to fit as a last resort.  The
 * log line has the kind and size only: screens quote what the resident
 * typed (description, ticket) and names.
 */
static void
ussd_answer(struct sreq *r, bool end, char *screen)
{
	char text[SCREEN_B + 8], logtext[48];	/* "END " + screen */

	fit_cut("", screen);
	snprintf(text, sizeof(text), "%s %s", end ? "END" : "CON", screen);
	snprintf(logtext, sizeof(logtext), "%s (%zu characters)",
	    end ? "END" : "CON", utf8_count(screen, strlen(screen)));
	sreq_reply_private(r, 200, text, logtext);
}

static void
action_done(PGresult *res, void *arg)
{
	struct sreq *r = arg;
	struct ucall *c = r->priv;
	struct menu *m = &c->m;

	if (!pgconn_ok(res) || PQntuples(res) != 1) {
		clog_warn(r->ctx, "USSD action failed: %s", pgconn_errmsg(res));
		sreq_unavailable(r, "query failed");
		return;
	}
	if (m->act == UA_SUBMIT)
		snprintf(m->screen, sizeof(m->screen), T_TICKET[m->lang],
		    PQgetvalue(res, 0, 1));
	else if (m->act == UA_STATUS)
		snprintf(m->screen, sizeof(m->screen), "%s",
		    PQgetvalue(res, 0, 0));
	ussd_answer(r, true, m->screen);
}

static void
touched(PGresult *res, void *arg)
{
	struct sreq *r = arg;
	struct ucall *c = r->priv;
	struct menu *m = &c->m;
	struct ussd_data *u = r->s->ussd;
	struct pgconn *db;
	char step[16];	/* int */
	const char *v[9];
	int rc = 0;

	if (!pgconn_ok(res) || PQntuples(res) != 1 || u == NULL) {
		clog_warn(r->ctx, "USSD session failed: %s", pgconn_errmsg(res));
		sreq_unavailable(r, "query failed");
		return;
	}
	m->lang = strcmp(PQgetvalue(res, 0, 0), "ru") == 0 ? RU : KY;
	m->home = PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1);
	menu_replay(u, m, c->tok, c->ntok);
	m->home = NULL;		/* res is cleared after this callback */
	if (m->act == UA_NONE || m->act == UA_END) {
		ussd_answer(r, m->act == UA_END, m->screen);
		return;
	}
	if ((db = smsd_db(r->s)) == NULL) {
		sreq_unavailable(r, "not connected");
		return;
	}
	snprintf(step, sizeof(step), "%d", c->ntok);
	switch (m->act) {
	case UA_SUBMIT:
		v[0] = c->sid;
		v[1] = step;
		v[2] = c->phone;
		v[3] = c->service;
		v[4] = c->text;
		v[5] = m->muni->soate;
		v[6] = u->cats[m->cat].code;
		v[7] = m->lang == RU ? "ru" : "ky";
		v[8] = m->desc;
		rc = pgconn_query(db, "smsd_ussd_submit", true, 9, v,
		    action_done, r);
		break;
	case UA_SET:
		v[0] = c->sid;
		v[1] = step;
		v[2] = c->phone;
		v[3] = c->service;
		v[4] = c->text;
		v[5] = m->set_lang < 0 ? NULL : m->set_lang == RU ? "ru" : "ky";
		v[6] = m->set_lang < 0 && m->muni ? m->muni->soate : NULL;
		rc = pgconn_query(db, "smsd_ussd_set", true, 7, v, action_done,
		    r);
		break;
	case UA_STATUS:
		v[0] = c->phone;
		v[1] = m->ticket;
		v[2] = m->lang == RU ? "ru" : "ky";
		rc = pgconn_query(db, "smsd_ussd_status", true, 3, v,
		    action_done, r);
		break;
	default:
		break;
	}
	if (rc < 0)
		sreq_unavailable(r, "queue full");
}

/* Split the path on '*' in place; "" gives no inputs. */
static void
split_path(struct ucall *c)
{
	int cap = 1;

	c->buf = xstrdup(c->text);
	for (const char *p = c->buf; *p; p++)
		cap += *p == '*';
	c->tok = xcalloc((size_t)cap + 1, sizeof(*c->tok));
	if (c->buf[0] == '\0')
		return;
	for (char *p = c->buf, *q; ; p = q + 1) {
		q = strchr(p, '*');
		c->tok[c->ntok++] = p;
		if (q == NULL)
			break;
		*q = '\0';
	}
}

void
ussd_request(struct sreq *r)
{
	size_t len;
	char *body = http_body(r->req, &len);
	struct evkeyvalq q;
	struct ucall *c = xcalloc(1, sizeof(*c));
	const char *sid, *phone, *text;
	char e164[PHONE_E164_MAX];
	struct pgconn *db;
	const char *v[5];

	r->priv = c;
	r->priv_free = ucall_free;
	TAILQ_INIT(&q);
	if (strlen(body) != len || evhttp_parse_query_str(body, &q) < 0) {
		sreq_reply(r, 400, "malformed form body");
		goto out;
	}
	sid = evhttp_find_header(&q, "sessionId");
	phone = evhttp_find_header(&q, "phoneNumber");
	text = evhttp_find_header(&q, "text");
	if (sid == NULL || *sid == '\0' || strlen(sid) > 128 ||
	    !utf8_valid(sid, strlen(sid), NULL)) {
		sreq_reply(r, 400, "missing or bad sessionId");
		goto out;
	}
	if (phone == NULL || phone_normalize(phone, e164, sizeof(e164)) < 0) {
		sreq_reply(r, 400, "missing or invalid phoneNumber");
		goto out;
	}
	if (text == NULL)
		text = "";
	if (!utf8_valid(text, strlen(text), NULL) ||
	    strlen(text) > (size_t)r->s->cfg->http_max_text) {
		sreq_reply(r, 400, "text is not UTF-8 or too long");
		goto out;
	}
	snprintf(r->ctx + strlen(r->ctx), sizeof(r->ctx) - strlen(r->ctx),
	    " ch=ussd session=%.40s", sid);
	c->sid = xstrdup(sid);
	c->phone = xstrdup(e164);
	c->service = safe_text(evhttp_find_header(&q, "serviceCode") ?
	    evhttp_find_header(&q, "serviceCode") : "");
	c->network = safe_text(evhttp_find_header(&q, "networkCode") ?
	    evhttp_find_header(&q, "networkCode") : "");
	c->text = xstrdup(text);
	split_path(c);
	if (r->s->ussd == NULL || (db = smsd_db(r->s)) == NULL) {
		sreq_unavailable(r, "not ready");
		goto out;
	}
	v[0] = c->sid;
	v[1] = c->phone;
	v[2] = c->service;
	v[3] = c->network;
	v[4] = c->text;
	if (pgconn_query(db, "smsd_ussd_touch", true, 5, v, touched, r) < 0)
		sreq_unavailable(r, "queue full");
out:
	evhttp_clear_headers(&q);
	free(body);
}
