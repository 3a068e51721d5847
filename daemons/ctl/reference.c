/*
 * reference.c - aryzctl load-reference: territory (SOATE), categories,
 * keywords, holidays and the demo set, in one transaction, idempotently
 * (upserts keyed on codes), so a newer official list can be loaded over
 * an older one without code changes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unicase.h>
#include <uninorm.h>

#include "csv.h"
#include "ctl.h"
#include "names.h"
#include "xmalloc.h"

typedef int row_fn(struct ctl *c, struct csv_row *r);

/* Lower-case UTF-8 s with libunistring; caller frees. */
static char *
fold(const char *s)
{
	size_t n = 0;
	uint8_t *r = u8_tolower((const uint8_t *)s, strlen(s), NULL, UNINORM_NFC,
	    NULL, &n);
	char *out;

	if (r == NULL)
		return xstrdup(s);
	out = xstrndup((const char *)r, n);
	free(r);
	return out;
}

static int
exec_params(struct ctl *c, const char *sql, int n, const char *const *v)
{
	PGresult *r = ctl_query(c, sql, n, v);
	if (r == NULL)
		return -1;
	PQclear(r);
	return 0;
}

static int
load_csv(struct ctl *c, const char *file, int minfields, row_fn *fn)
{
	char *path = xasprintf("%s/data/%s", c->sqldir, file);
	FILE *fp = fopen(path, "r");
	struct csv_row row = { 0 };
	int rc = -1, n = 0, r;

	if (fp == NULL) {
		fprintf(stderr, "aryzctl: cannot open %s\n", path);
		free(path);
		return -1;
	}
	if (csv_read(fp, &row) != 1)	/* header */
		goto bad;
	while ((r = csv_read(fp, &row)) == 1) {
		if (row.nfields == 1 && row.field[0][0] == '\0')
			continue;
		if (row.nfields < minfields)
			goto bad;
		if (fn(c, &row) < 0) {
			fprintf(stderr, "aryzctl: %s:%d: row rejected\n", path,
			    row.line);
			goto out;
		}
		n++;
	}
	if (r < 0)
		goto bad;
	printf("loaded %d rows from %s\n", n, file);
	rc = 0;
	goto out;
bad:
	fprintf(stderr, "aryzctl: %s:%d: malformed row (expected %d fields)\n",
	    path, row.line, minfields);
out:
	csv_row_free(&row);
	fclose(fp);
	free(path);
	return rc;
}

static int
row_oblast(struct ctl *c, struct csv_row *r)
{
	const char *v[] = { r->field[0], r->field[1], r->field[2], r->field[3] };
	return exec_params(c, "INSERT INTO oblast (soate, name_latin, name_ru, "
	    "name_ky) VALUES ($1,$2,$3,$4) ON CONFLICT (soate) DO UPDATE SET "
	    "name_latin = $2, name_ru = $3, name_ky = $4", 4, v);
}

static int add_city_aliases(struct ctl *c, const char *soate, const char *ru,
    const char *ky, const char *latin);

/* rayons.csv: oblast,rayon_ky,rayon_ru,rayon_latin,soate */
static int
row_rayon(struct ctl *c, struct csv_row *r)
{
	char oblast[15], *soate = r->field[4];
	bool city = strncmp(r->field[2], "г.", strlen("г.")) == 0;
	const char *v[6];
	int rc;

	if (strlen(soate) != 14)
		return -1;
	snprintf(oblast, sizeof(oblast), "%.5s000000000", soate);
	v[0] = soate;
	v[1] = oblast;
	v[2] = city ? "city" : "rayon";
	v[3] = r->field[2];
	v[4] = r->field[1];
	v[5] = r->field[3];
	rc = exec_params(c, "INSERT INTO rayon (soate, oblast_soate, kind, "
	    "name_ru, name_ky, name_latin) VALUES ($1,$2,$3,$4,$5,$6) "
	    "ON CONFLICT (soate) DO UPDATE SET oblast_soate = $2, kind = $3, "
	    "name_ru = $4, name_ky = $5, name_latin = $6", 6, v);
	if (rc < 0 || !city)
		return rc;
	/* A city is also a municipality of its own. */
	if (exec_params(c, "INSERT INTO municipality (soate, rayon_soate, "
	    "kind, name_ru, name_ky, name_latin) VALUES ($1,$1,'city',$2,$3,$4) "
	    "ON CONFLICT (soate) DO UPDATE SET name_ru = $2, name_ky = $3, "
	    "name_latin = $4", 4, (const char *const[]){ v[0], v[3], v[4], v[5] }) < 0)
		return -1;
	return add_city_aliases(c, soate, r->field[2], r->field[1], r->field[3]);
}

struct alias_arg {
	struct ctl	*c;
	const char	*soate;
};

static int
add_alias(const char *variant, void *arg)
{
	struct alias_arg *a = arg;
	char *f = fold(variant);
	const char *v[] = { a->soate, f };
	int rc = exec_params(a->c, "INSERT INTO municipality_alias (soate, "
	    "alias) VALUES ($1, $2) ON CONFLICT DO NOTHING", 2, v);

	free(f);
	return rc;
}

/* Add a lower-cased alias for every spelling in name (names.h). */
static int
add_aliases(struct ctl *c, const char *soate, const char *name)
{
	struct alias_arg a = { c, soate };

	return names_each(name, add_alias, &a);
}

/*
 * A city's names without the "г. " (Russian) and " шаары" (Kyrgyz)
 * markers; the Latin "(city)" remark goes with the parentheses.
 */
static int
add_city_aliases(struct ctl *c, const char *soate, const char *ru,
    const char *ky, const char *latin)
{
	const char *gor = "г. ", *shaary = " шаары";
	char *kyc = xstrdup(ky), *end;
	int rc;

	if (strncmp(ru, gor, strlen(gor)) == 0)
		ru += strlen(gor);
	end = strstr(kyc, shaary);
	if (end != NULL)
		*end = '\0';
	rc = add_aliases(c, soate, ru);
	if (rc == 0)
		rc = add_aliases(c, soate, kyc);
	if (rc == 0)
		rc = add_aliases(c, soate, latin);
	free(kyc);
	return rc;
}

/* aiyl_aimaks.csv: oblast,rayon,aa_name_ru,aa_name_ky,aa_name_latin,soate,notes */
static int
row_municipality(struct ctl *c, struct csv_row *r)
{
	char rayon[15], *soate = names_trim(r->field[5]);
	char *ru = names_trim(r->field[2]), *ky = r->field[3];
	char *latin = names_trim(r->field[4]);
	const char *kind = "aiyl_aimak";
	bool verified = strchr(ky, '?') == NULL;
	const char *v[8];

	if (strlen(soate) != 14)
		return -1;
	if (strncmp(ru, "(town)", 6) == 0) {
		kind = "town";
		ru = names_trim(ru + 6);
	}
	ky = names_trim(ky);
	snprintf(rayon, sizeof(rayon), "%.8s000000", soate);
	v[0] = soate;
	v[1] = rayon;
	v[2] = kind;
	v[3] = ru;
	v[4] = ky;
	v[5] = verified ? "t" : "f";
	v[6] = latin;
	v[7] = r->nfields > 6 ? r->field[6] : "";
	if (exec_params(c, "INSERT INTO municipality (soate, rayon_soate, kind, "
	    "name_ru, name_ky, name_ky_verified, name_latin, notes) "
	    "VALUES ($1,$2,$3,$4,$5,$6,$7,NULLIF($8,'')) "
	    "ON CONFLICT (soate) DO UPDATE SET rayon_soate = $2, kind = $3, "
	    "name_ru = $4, name_ky = $5, name_ky_verified = $6, "
	    "name_latin = $7, notes = NULLIF($8,'')", 8, v) < 0)
		return -1;
	if (add_aliases(c, soate, ky) < 0 || add_aliases(c, soate, latin) < 0 ||
	    add_aliases(c, soate, ru) < 0)
		return -1;
	return 0;
}

static int
row_category(struct ctl *c, struct csv_row *r)
{
	const char *v[] = { r->field[0], r->field[1], r->field[2], r->field[3],
	    r->field[4] };
	return exec_params(c, "INSERT INTO service_category (code, name_ky, "
	    "name_ru, name_en, sort) VALUES ($1,$2,$3,$4,$5::int) "
	    "ON CONFLICT (code) DO UPDATE SET name_ky = $2, name_ru = $3, "
	    "name_en = $4, sort = $5::int", 5, v);
}

static int
row_keyword(struct ctl *c, struct csv_row *r)
{
	char *kw = fold(names_trim(r->field[2]));
	const char *v[] = { r->field[0], r->field[1], kw };
	int rc = exec_params(c, "INSERT INTO category_keyword (category_code, "
	    "lang, keyword) VALUES ($1,$2,$3) ON CONFLICT DO NOTHING", 3, v);
	free(kw);
	return rc;
}

/* holidays.csv: name, MM-DD (every year) or YYYY-MM-DD (that year only) */
static int
row_holiday(struct ctl *c, struct csv_row *r)
{
	const char *d = r->field[1];
	const char *v[] = { r->field[0], d };

	if (strlen(d) == 5)
		return exec_params(c, "INSERT INTO calendar_holiday (calendar_id, "
		    "name, month, mday) VALUES (1, $1, split_part($2,'-',1)::int, "
		    "split_part($2,'-',2)::int) ON CONFLICT DO NOTHING", 2, v);
	return exec_params(c, "INSERT INTO calendar_holiday (calendar_id, name, "
	    "day) VALUES (1, $1, $2::date) ON CONFLICT DO NOTHING", 2, v);
}

static int
run_sql_file(struct ctl *c, const char *file)
{
	char *path = xasprintf("%s/data/%s", c->sqldir, file);
	char *buf = ctl_slurp(path);
	int rc = -1;

	if (buf != NULL && (rc = ctl_exec(c, buf)) == 0)
		printf("loaded %s\n", file);
	free(buf);
	free(path);
	return rc;
}

int
cmd_load_reference(struct ctl *c)
{
	if (ctl_exec(c, "BEGIN") < 0)
		return -1;
	if (ctl_exec(c, "INSERT INTO work_calendar (id, name) VALUES "
	    "(1, 'Kyrgyz Republic') ON CONFLICT (id) DO NOTHING") < 0 ||
	    load_csv(c, "oblasts.csv", 4, row_oblast) < 0 ||
	    load_csv(c, "rayons.csv", 5, row_rayon) < 0 ||
	    load_csv(c, "aiyl_aimaks.csv", 6, row_municipality) < 0 ||
	    load_csv(c, "categories.csv", 5, row_category) < 0 ||
	    load_csv(c, "keywords.csv", 3, row_keyword) < 0 ||
	    load_csv(c, "holidays.csv", 2, row_holiday) < 0 ||
	    (c->demo && run_sql_file(c, "demo.sql") < 0)) {
		(void)ctl_exec(c, "ROLLBACK");
		fprintf(stderr, "aryzctl: load-reference failed, nothing "
		    "changed\n");
		return -1;
	}
	return ctl_exec(c, "COMMIT");
}
