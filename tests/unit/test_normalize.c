/*
 * test_normalize.c - normalize_text() and command_parse() against
 * tests/unit/data/normalize.txt and commands.txt, with a lexicon built
 * from the real reference data (sql/data/keywords.csv and aliases derived
 * from sql/data/aiyl_aimaks.csv the way aryzctl load-reference does),
 * plus the fold, the PGresult loader and robustness cases.
 *
 * normalize.txt lines: text<TAB>category|-<TAB>soate|-|ambiguous<TAB>ky|ru|-
 * commands.txt lines:  text<TAB>kind<TAB>ticket|-<TAB>rating|-
 * Lines starting with '#' are comments.  "\t" cannot occur in a text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "csv.h"
#include "fold.h"
#include "lexicon_pg.h"
#include "names.h"
#include "normalize.h"
#include "xmalloc.h"

#define KEYWORDS_CSV	"../../sql/data/keywords.csv"
#define AIMAKS_CSV	"../../sql/data/aiyl_aimaks.csv"
#define RAYONS_CSV	"../../sql/data/rayons.csv"

static struct lexicon *lex;

/* Trim spaces and the "?" marking unverified names, in place. */
struct place_arg {
	struct lexicon	*lx;
	const char	*soate;
};

static int
add_place(const char *variant, void *arg)
{
	struct place_arg *a = arg;

	if (!lexicon_add_place(a->lx, a->soate, variant))
		fail_msg("alias '%s' of %s refused", variant, a->soate);
	return 0;
}

/* One name column, split into spellings exactly as aryzctl does. */
static void
add_names(struct lexicon *lx, const char *soate, const char *name)
{
	struct place_arg a = { lx, soate };

	(void)names_each(name, add_place, &a);
}

static struct lexicon *
load_reference(void)
{
	struct lexicon *lx = lexicon_new();
	struct csv_row row = { 0 };
	FILE *fp;
	int rc, n = 0;

	fp = fopen(KEYWORDS_CSV, "r");
	assert_non_null(fp);
	while ((rc = csv_read(fp, &row)) == 1) {
		if (strcmp(row.field[0], "category") == 0 || row.nfields < 3)
			continue;	/* header */
		assert_true(lexicon_add_keyword(lx, row.field[0], row.field[2]));
		n++;
	}
	assert_int_equal(rc, 0);
	fclose(fp);
	assert_true(n > 50);

	fp = fopen(AIMAKS_CSV, "r");
	assert_non_null(fp);
	n = 0;
	while ((rc = csv_read(fp, &row)) == 1) {
		char *ru;
		if (strcmp(row.field[0], "oblast") == 0 || row.nfields < 6)
			continue;	/* header */
		ru = names_trim(row.field[2]);
		if (strncmp(ru, "(town)", 6) == 0)
			ru = ru + 6;
		add_names(lx, names_trim(row.field[5]), row.field[3]);
		add_names(lx, names_trim(row.field[5]), row.field[4]);
		add_names(lx, names_trim(row.field[5]), ru);
		n++;
	}
	assert_int_equal(rc, 0);
	fclose(fp);
	assert_true(n > 100);

	/* rayons.csv: oblast,rayon_ky,rayon_ru,rayon_latin,soate; no cities */
	fp = fopen(RAYONS_CSV, "r");
	assert_non_null(fp);
	n = 0;
	while ((rc = csv_read(fp, &row)) == 1) {
		if (strcmp(row.field[0], "oblast") == 0 || row.nfields < 5 ||
		    strncmp(row.field[2], "г.", strlen("г.")) == 0)
			continue;
		for (int i = 1; i <= 3; i++)
			assert_true(lexicon_add_rayon(lx, row.field[4],
			    row.field[i]));
		n++;
	}
	assert_int_equal(rc, 0);
	fclose(fp);
	csv_row_free(&row);
	assert_true(n >= 10);
	return lx;
}

static int
setup(void **state)
{
	(void)state;
	lex = load_reference();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	lexicon_free(&lex);
	return 0;
}

/* Split line into exactly n tab-separated fields; false if malformed. */
static bool
split(char *line, char **f, int n)
{
	for (int i = 0; i < n; i++) {
		f[i] = line;
		line = i < n - 1 ? strchr(line, '\t') : NULL;
		if (i < n - 1) {
			if (line == NULL)
				return false;
			*line++ = '\0';
		}
	}
	return strchr(f[n - 1], '\t') == NULL;
}

static const char *
lang_name(enum norm_lang l)
{
	return l == NORM_LANG_KY ? "ky" : l == NORM_LANG_RU ? "ru" : "-";
}

/* Run data/normalize.txt against lx; returns the misclassified count. */
static int
run_table(const struct lexicon *lx, int *count)
{
	FILE *fp = fopen("data/normalize.txt", "r");
	char line[1024];	/* test messages are SMS-sized */
	int n = 0, bad = 0;

	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		struct norm_result r;
		char *f[4], got_soate[32];

		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (!split(line, f, 4))
			fail_msg("malformed data line: %s", line);
		normalize_text(lx, f[0], strlen(f[0]), &r);
		if (r.soate[0] != '\0')
			snprintf(got_soate, sizeof(got_soate), "%s", r.soate);
		else if (r.ncandidates > 1)
			snprintf(got_soate, sizeof(got_soate), "ambiguous");
		else
			snprintf(got_soate, sizeof(got_soate), "-");
		if (strcmp(r.category[0] ? r.category : "-", f[1]) != 0 ||
		    strcmp(got_soate, f[2]) != 0 ||
		    strcmp(lang_name(r.lang), f[3]) != 0) {
			print_error("'%s': got %s %s %s, want %s %s %s\n", f[0],
			    r.category[0] ? r.category : "-", got_soate,
			    lang_name(r.lang), f[1], f[2], f[3]);
			bad++;
		}
		/* Invariants of the result whatever the text. */
		if (r.soate[0] != '\0') {
			assert_int_equal(r.ncandidates, 1);
			assert_string_equal(r.candidates[0], r.soate);
		}
		assert_true(r.ncandidates >= 0 &&
		    r.ncandidates <= NORM_MAX_CANDIDATES);
		n++;
	}
	fclose(fp);
	*count = n;
	return bad;
}

static void
test_messages(void **state)
{
	int n, bad;

	(void)state;
	bad = run_table(lex, &n);
	if (bad > 0)
		fail_msg("%d of %d messages misclassified", bad, n);
	assert_true(n >= 100);
}

static PGresult *
db_query(PGconn *conn, const char *sql)
{
	PGresult *res = PQexec(conn, sql);

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(res));
	return res;
}

/*
 * With ARYZ_TEST_CONNINFO (set by tests/integration/test_normalize_db.py
 * on a database loaded by aryzctl load-reference), load the lexicon with
 * the LEXICON_SQL_* queries and run the same table on it.  With
 * ARYZ_TEST_RETIRED=<soate> too, check instead that a municipality whose
 * valid_to has passed is not loaded.
 */
static void
test_real_db(void **state)
{
	const char *conninfo = getenv("ARYZ_TEST_CONNINFO");
	const char *retired = getenv("ARYZ_TEST_RETIRED");
	struct lexicon *lx;
	PGconn *conn;
	PGresult *res;
	char err[256];
	int n, bad;

	(void)state;
	if (conninfo == NULL) {
		skip();
		return;
	}
	conn = PQconnectdb(conninfo);
	if (PQstatus(conn) != CONNECTION_OK)
		fail_msg("connect: %s", PQerrorMessage(conn));
	lx = lexicon_new();
	res = db_query(conn, LEXICON_SQL_KEYWORDS);
	assert_true(lexicon_add_keywords_pg(lx, res, err, sizeof(err)) > 50);
	PQclear(res);
	res = db_query(conn, LEXICON_SQL_PLACES);
	assert_true(lexicon_add_places_pg(lx, res, err, sizeof(err)) > 200);
	PQclear(res);
	res = db_query(conn, LEXICON_SQL_RAYONS);
	assert_true(lexicon_add_rayons_pg(lx, res, err, sizeof(err)) >= 30);
	PQclear(res);
	PQfinish(conn);
	printf("real database: %zu keywords, %zu places, %zu rayon names\n",
	    lexicon_nkeywords(lx), lexicon_nplaces(lx), lexicon_nrayons(lx));
	if (retired != NULL) {
		static const char *const names[] = { "Сузак", "Suzak",
		    "Сузакский айылный аймак" };
		struct norm_result r;
		for (size_t i = 0; i < 3; i++) {
			normalize_text(lx, names[i], strlen(names[i]), &r);
			for (int c = 0; c < r.ncandidates; c++)
				assert_string_not_equal(r.candidates[c], retired);
		}
		printf("retired municipality %s not loaded\n", retired);
	} else {
		bad = run_table(lx, &n);
		if (bad > 0)
			fail_msg("%d of %d messages misclassified", bad, n);
		printf("real database: %d messages classified as expected\n", n);
	}
	lexicon_free(&lx);
}

static enum cmd_kind
kind_of(const char *s)
{
	static const char *const names[] = { "none", "ack", "done", "info",
	    "status", "rate", "reopen" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0)
			return (enum cmd_kind)i;
	fail_msg("unknown kind %s", s);
	return CMD_NONE;
}

static void
test_commands(void **state)
{
	FILE *fp = fopen("data/commands.txt", "r");
	char line[512];		/* command lines are short */
	int n = 0, bad = 0;

	(void)state;
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp)) {
		struct command c;
		char *f[4];
		bool is;
		enum cmd_kind want;
		int rating;

		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (!split(line, f, 4))
			fail_msg("malformed data line: %s", line);
		want = kind_of(f[1]);
		rating = strcmp(f[3], "-") == 0 ? 0 : f[3][0] - '0';
		is = command_parse(f[0], strlen(f[0]), &c);
		if (c.kind != want || is != (want != CMD_NONE) ||
		    strcmp(c.ticket, strcmp(f[2], "-") == 0 ? "" : f[2]) != 0 ||
		    c.rating != rating) {
			print_error("'%s': got kind %d ticket '%s' rating %d, "
			    "want %s %s %s\n", f[0], c.kind, c.ticket, c.rating,
			    f[1], f[2], f[3]);
			bad++;
		}
		n++;
	}
	fclose(fp);
	if (bad > 0)
		fail_msg("%d of %d commands misparsed", bad, n);
	assert_true(n >= 40);
}

/* The same word in the spellings residents use folds to one skeleton. */
static void
test_fold_equivalents(void **state)
{
	static const char *const groups[][6] = {
		{ "таштанды", "ТАШТАНДЫ", "tashtandy", "Tashtandi", "ташtанды", NULL },
		{ "жарык", "zharyk", "JARYK", "жарык", NULL, NULL },
		{ "көчө", "кочо", "k8ch8", "köchö", "КӨЧӨ", NULL },
		{ "үй", "уй", "vy", "üy", NULL, NULL },
		{ "Кеңеш", "Кенеш", "Kengesh", "keqesh", NULL, NULL },
		{ "Джаны-Джол", "Жаңы-Жол", "jany jol", "Djany-Djol", NULL, NULL },
		{ "свет", "svet", "СВЕТ", "cвeт", NULL, NULL },
		{ "４２", "42", NULL, NULL, NULL, NULL },
	};

	(void)state;
	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		char *first = fold_key(groups[g][0]);
		for (int i = 1; i < 6 && groups[g][i] != NULL; i++) {
			char *k = fold_key(groups[g][i]);
			if (strcmp(k, first) != 0)
				fail_msg("'%s' -> '%s' but '%s' -> '%s'",
				    groups[g][0], first, groups[g][i], k);
			free(k);
		}
		free(first);
	}
}

/* Lone 8 between letters is ө; digits elsewhere stay digits. */
static void
test_fold_digits(void **state)
{
	struct fold_text ft;

	(void)state;
	fold_init(&ft);
	fold_text(&ft, "ok8821 8 kun 41703220856000", 27);
	assert_int_equal(ft.nw, 5);
	assert_string_equal(ft.w[0].s, "ok");
	assert_string_equal(ft.w[1].s, "8821");
	assert_true(ft.w[1].digits);
	assert_string_equal(ft.w[2].s, "8");
	assert_string_equal(ft.w[4].s, "41703220856000");
	fold_release(&ft);
}

/* Bad bytes, NUL, huge input, NULL lexicon: no crash, sane output. */
static void
test_robust(void **state)
{
	struct norm_result r;
	struct command c;
	char *big;
	static const char bad[] = "\xff\xfe мусор \xc3 \xe2\x82 suu\0jok";

	(void)state;
	normalize_text(lex, bad, sizeof(bad) - 1, &r);
	assert_string_equal(r.category, "waste");
	normalize_text(lex, "", 0, &r);
	assert_string_equal(r.category, "");
	assert_int_equal(r.lang, NORM_LANG_UNKNOWN);
	normalize_text(NULL, "суу жок", strlen("суу жок"), &r);
	assert_string_equal(r.category, "");
	assert_int_equal(r.lang, NORM_LANG_KY);

	big = xmalloc(100000);
	for (size_t i = 0; i < 100000; i += 10)
		memcpy(big + i, "musor suu ", 10);
	normalize_text(lex, big, 100000, &r);
	assert_true(r.category[0] != '\0');
	assert_false(command_parse(big, 100000, &c));
	free(big);

	assert_false(command_parse("OK 12345678901234567890", 23, &c));
	assert_int_equal(c.kind, CMD_NONE);
	assert_false(command_parse("", 0, &c));
	assert_true(command_parse("\xff" "OK 4821", 8, &c));
	assert_string_equal(c.ticket, "4821");
}

/* The PGresult loader, on results built client-side with libpq. */
static PGresult *
make_result(const char *const rows[][2], int n, int ncols)
{
	PGresAttDesc att[2] = {
		{ .name = (char *)(uintptr_t)"a", .format = 0, .typid = 25,
		  .typlen = -1, .atttypmod = -1 },
		{ .name = (char *)(uintptr_t)"b", .format = 0, .typid = 25,
		  .typlen = -1, .atttypmod = -1 },
	};
	PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);

	assert_non_null(res);
	assert_true(PQsetResultAttrs(res, ncols, att));
	for (int i = 0; i < n; i++)
		for (int j = 0; j < ncols; j++)
			assert_true(PQsetvalue(res, i, j,
			    (char *)(uintptr_t)rows[i][j],
			    (int)strlen(rows[i][j])));
	return res;
}

static void
test_pg_loader(void **state)
{
	static const char *const kw[][2] = {
		{ "waste", "таштанды" }, { "water", "суу" }, { "water", "" },
	};
	static const char *const pl[][2] = {
		{ "41703220856000", "сузак" }, { "41703211849000", "кызыл-туу" },
		{ "41703220842000", "кызыл-туу" }, { "bad", "x" },
	};
	struct lexicon *lx = lexicon_new();
	struct norm_result r;
	char err[128];
	PGresult *res;

	(void)state;
	res = make_result(kw, 3, 2);
	assert_int_equal(lexicon_add_keywords_pg(lx, res, err, sizeof(err)), 2);
	PQclear(res);
	res = make_result(pl, 4, 2);
	assert_int_equal(lexicon_add_places_pg(lx, res, err, sizeof(err)), 3);
	PQclear(res);
	assert_int_equal(lexicon_nkeywords(lx), 2);
	assert_int_equal(lexicon_nplaces(lx), 2);

	res = make_result(pl, 1, 1);
	assert_int_equal(lexicon_add_places_pg(lx, res, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "2 columns"));
	PQclear(res);
	res = PQmakeEmptyPGresult(NULL, PGRES_FATAL_ERROR);
	assert_int_equal(lexicon_add_keywords_pg(lx, res, NULL, 0), -1);
	PQclear(res);
	assert_int_equal(lexicon_add_keywords_pg(lx, NULL, err, sizeof(err)), -1);

	normalize_text(lx, "Кызыл-Туу суу жок", strlen("Кызыл-Туу суу жок"), &r);
	assert_string_equal(r.category, "water");
	assert_string_equal(r.soate, "");
	assert_int_equal(r.ncandidates, 2);
	normalize_text(lx, "Сузакта таштанды", strlen("Сузакта таштанды"), &r);
	assert_string_equal(r.category, "waste");
	assert_string_equal(r.soate, "41703220856000");
	lexicon_free(&lx);
	assert_null(lx);
	lexicon_free(&lx);
}

static bool
all_digits(const char *s, size_t want)
{
	size_t n = strlen(s);

	if (want != 0 && n != want)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/*
 * Random texts built from fragments residents and broken phones produce
 * (Kyrgyz letters, digits, emoji, stray UTF-8 bytes, NUL) must keep every
 * output invariant; run under ASan/UBSan this is a small fuzz smoke test.
 */
static void
test_fuzz(void **state)
{
	static const char *const frag[] = {
		"суу", "жок", "ТАШТАНДЫ", "ң", "ө", "ү", "Ө", "8", "q", "v",
		"4821", "41703220856000", "4170322085600", " ", "-", "№", "#",
		"ok", "OK", "нет", "0", "5", "😡", "🗑️", "\xe2\x80", "\xff",
		"\xc3\xa9", "Кызыл-Туу", "Aral", "сузакском", "ий", "ё",
		"\xf0\x9f", "zh", "dzh", "sh", "a\xcc\x88", "\0", "ＯＫ",
		"района", "айыл", "skii", "8ch8", "'",
	};
	unsigned seed = 12345;
	char buf[512];		/* fragments are short; 40 of them fit */

	(void)state;
	for (int iter = 0; iter < 20000; iter++) {
		struct norm_result r;
		struct command c;
		size_t len = 0;
		int nfrag;

		seed = seed * 1103515245u + 12345u;
		nfrag = (int)(seed >> 16) % 40;
		for (int k = 0; k < nfrag; k++) {
			const char *f;
			size_t fl;
			seed = seed * 1103515245u + 12345u;
			f = frag[(seed >> 16) % (sizeof(frag) / sizeof(frag[0]))];
			fl = f[0] == '\0' ? 1 : strlen(f);
			if (len + fl > sizeof(buf))
				break;
			memcpy(buf + len, f, fl);
			len += fl;
		}
		normalize_text(lex, buf, len, &r);
		assert_true(r.category[0] == '\0' ||
		    strcmp(r.category, "waste") == 0 ||
		    strcmp(r.category, "water") == 0 ||
		    strcmp(r.category, "lighting") == 0 ||
		    strcmp(r.category, "landscaping") == 0 ||
		    strcmp(r.category, "culture") == 0);
		assert_true(r.soate[0] == '\0' || all_digits(r.soate, 14));
		assert_true(r.ncandidates >= 0 &&
		    r.ncandidates <= NORM_MAX_CANDIDATES);
		for (int k = 0; k < r.ncandidates; k++)
			assert_true(all_digits(r.candidates[k], 14));
		if (r.soate[0] == '\0')
			assert_true(r.ncandidates != 1);
		if (command_parse(buf, len, &c)) {
			assert_true(c.kind != CMD_NONE);
			assert_true(all_digits(c.ticket, 0));
			assert_true(c.kind != CMD_RATE ||
			    (c.rating >= 1 && c.rating <= 5));
		} else
			assert_int_equal(c.kind, CMD_NONE);
	}
}

/* Not a check: prints the cost of one message (bench/normalize.sh). */
static void
test_speed(void **state)
{
	static const char *const msgs[] = {
		"Сузак айылында 3 күндөн бери таштанды чыгарылбай жатат",
		"В Ак-Булунском айыльном округе нет воды уже неделю",
		"Kyzyl-Tuu kochodo jaryk jok, tunku saat 10don beri",
		"ФОНАРЬ НЕ ГОРИТ НА УЛИЦЕ ЛЕНИНА 😡😡",
	};
	struct timespec a, b;
	struct norm_result r;
	int n = 0;
	double us;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < 2000; i++)
		for (size_t m = 0; m < 4; m++, n++)
			normalize_text(lex, msgs[m], strlen(msgs[m]), &r);
	clock_gettime(CLOCK_MONOTONIC, &b);
	us = ((double)(b.tv_sec - a.tv_sec) * 1e6 +
	    (double)(b.tv_nsec - a.tv_nsec) / 1e3) / n;
	printf("normalize_text: %.1f us/message (%zu keywords, %zu places)\n",
	    us, lexicon_nkeywords(lex), lexicon_nplaces(lex));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fold_equivalents),
		cmocka_unit_test(test_fold_digits),
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_robust),
		cmocka_unit_test(test_fuzz),
		cmocka_unit_test(test_pg_loader),
		cmocka_unit_test(test_real_db),
		cmocka_unit_test(test_speed),
	};
	return cmocka_run_group_tests_name("normalize", tests, setup,
	    teardown);
}
