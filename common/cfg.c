/*
 * cfg.c - table-driven libconfig loading, validation, dump and reload.
 */
#include <libconfig.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "log.h"
#include "xmalloc.h"

#define FIELD(dst, o, T) ((T *)(void *)((char *)(dst) + (o)->off))
#define CFIELD(src, o, T) ((const T *)(const void *)((const char *)(src) + (o)->off))

static void
set_defaults(const struct cfg_opt *tab, void *dst)
{
	for (const struct cfg_opt *o = tab; o->path; o++) {
		switch (o->type) {
		case CFG_INT:
			*FIELD(dst, o, int) = (int)o->idef;
			break;
		case CFG_BOOL:
			*FIELD(dst, o, bool) = o->idef != 0;
			break;
		case CFG_STR:
			*FIELD(dst, o, char *) = xstrdup(o->sdef ? o->sdef : "");
			break;
		}
	}
}

static const struct cfg_opt *
find_opt(const struct cfg_opt *tab, const char *path)
{
	for (const struct cfg_opt *o = tab; o->path; o++)
		if (strcmp(o->path, path) == 0)
			return o;
	return NULL;
}

/* Does any option live under group path "prefix."? */
static bool
is_group(const struct cfg_opt *tab, const char *prefix)
{
	size_t n = strlen(prefix);
	for (const struct cfg_opt *o = tab; o->path; o++)
		if (strncmp(o->path, prefix, n) == 0 && o->path[n] == '.')
			return true;
	return false;
}

/* Reject settings the table does not know: a typo must not pass silently. */
static int
check_unknown(const struct cfg_opt *tab, config_setting_t *grp,
    const char *prefix, const char *file, char *err, size_t errlen)
{
	int n = config_setting_length(grp);

	for (int i = 0; i < n; i++) {
		config_setting_t *s = config_setting_get_elem(grp, (unsigned)i);
		const char *name = config_setting_name(s);
		char path[256];	/* longest option path is far below this */

		if (name == NULL)
			continue;
		snprintf(path, sizeof(path), "%s%s%s", prefix,
		    prefix[0] ? "." : "", name);
		if (config_setting_is_group(s)) {
			if (!is_group(tab, path)) {
				snprintf(err, errlen, "%s:%d: unknown section '%s'",
				    file, config_setting_source_line(s), path);
				return -1;
			}
			if (check_unknown(tab, s, path, file, err, errlen) < 0)
				return -1;
		} else if (find_opt(tab, path) == NULL) {
			snprintf(err, errlen, "%s:%d: unknown setting '%s'",
			    file, config_setting_source_line(s), path);
			return -1;
		}
	}
	return 0;
}

static int
load_opt(const struct cfg_opt *o, config_t *c, void *dst, const char *file,
    char *err, size_t errlen)
{
	config_setting_t *s = config_lookup(c, o->path);
	int line;

	if (s == NULL) {
		if (o->flags & CFG_REQUIRED) {
			snprintf(err, errlen, "%s:1: missing required setting '%s'",
			    file, o->path);
			return -1;
		}
		return 0;
	}
	line = config_setting_source_line(s);
	switch (o->type) {
	case CFG_INT: {
		long long v;
		int t = config_setting_type(s);
		if (t == CONFIG_TYPE_INT)
			v = config_setting_get_int(s);
		else if (t == CONFIG_TYPE_INT64)
			v = config_setting_get_int64(s);
		else {
			snprintf(err, errlen, "%s:%d: '%s' must be an integer",
			    file, line, o->path);
			return -1;
		}
		if (v < o->min || v > o->max) {
			snprintf(err, errlen,
			    "%s:%d: '%s' is %lld, must be between %lld and %lld",
			    file, line, o->path, v, o->min, o->max);
			return -1;
		}
		*FIELD(dst, o, int) = (int)v;
		break;
	}
	case CFG_BOOL:
		if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
			snprintf(err, errlen, "%s:%d: '%s' must be true or false",
			    file, line, o->path);
			return -1;
		}
		*FIELD(dst, o, bool) = config_setting_get_bool(s) != 0;
		break;
	case CFG_STR: {
		const char *v = config_setting_get_string(s);
		if (v == NULL) {
			snprintf(err, errlen, "%s:%d: '%s' must be a string",
			    file, line, o->path);
			return -1;
		}
		if (o->max > 0 && (long long)strlen(v) > o->max) {
			snprintf(err, errlen,
			    "%s:%d: '%s' is longer than %lld characters",
			    file, line, o->path, o->max);
			return -1;
		}
		free(*FIELD(dst, o, char *));
		*FIELD(dst, o, char *) = xstrdup(v);
		break;
	}
	}
	return 0;
}

int
cfg_load(const struct cfg_opt *tab, void *dst, const char *file, char *err,
    size_t errlen)
{
	config_t c;
	int rc = -1;

	set_defaults(tab, dst);
	config_init(&c);
	if (config_read_file(&c, file) != CONFIG_TRUE) {
		if (config_error_type(&c) == CONFIG_ERR_FILE_IO)
			snprintf(err, errlen, "%s:0: cannot read file", file);
		else
			snprintf(err, errlen, "%s:%d: %s",
			    config_error_file(&c) ? config_error_file(&c) : file,
			    config_error_line(&c), config_error_text(&c));
		goto out;
	}
	if (check_unknown(tab, config_root_setting(&c), "", file, err,
	    errlen) < 0)
		goto out;
	for (const struct cfg_opt *o = tab; o->path; o++)
		if (load_opt(o, &c, dst, file, err, errlen) < 0)
			goto out;
	rc = 0;
out:
	config_destroy(&c);
	return rc;
}

void
cfg_free(const struct cfg_opt *tab, void *dst)
{
	for (const struct cfg_opt *o = tab; o->path; o++)
		if (o->type == CFG_STR)
			xfree(FIELD(dst, o, char *));
}

/* Print s as a libconfig string literal. */
static void
dump_str(FILE *fp, const char *s)
{
	fputc('"', fp);
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', fp);
		fputc(*s, fp);
	}
	fputc('"', fp);
}

/*
 * A libpq connection string (key=value or URI) rebuilt as key=value pairs
 * from what libpq parses, the password replaced by ********; *hidden tells
 * whether there was one.  NULL when libpq cannot parse it.
 */
static char *
conninfo_masked(const char *s, bool *hidden)
{
	PQconninfoOption *opts = PQconninfoParse(s, NULL);
	char *out = NULL;
	size_t len = 0;
	bool first = true;
	FILE *fp;

	*hidden = false;
	if (opts == NULL)
		return NULL;
	if ((fp = open_memstream(&out, &len)) == NULL) {
		PQconninfoFree(opts);
		return NULL;
	}
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		fprintf(fp, "%s%s=", first ? "" : " ", o->keyword);
		first = false;
		if (strcmp(o->keyword, "password") == 0) {
			fputs("********", fp);
			*hidden = true;
		} else if (o->val[0] == '\0' || strpbrk(o->val, " \t\n'\\")) {
			/* libpq's quoting: single quotes, \' and \\ inside. */
			fputc('\'', fp);
			for (const char *c = o->val; *c; c++) {
				if (*c == '\'' || *c == '\\')
					fputc('\\', fp);
				fputc(*c, fp);
			}
			fputc('\'', fp);
		} else
			fputs(o->val, fp);
	}
	fclose(fp);
	PQconninfoFree(opts);
	return out;
}

void
cfg_dump(const struct cfg_opt *tab, const void *src, FILE *fp)
{
	for (const struct cfg_opt *o = tab; o->path; o++) {
		const char *end = (o->flags & CFG_SECRET) ?
		    "; # secret, not shown\n" : ";\n";

		if (o->help)
			fprintf(fp, "# %s%s\n", o->help,
			    (o->flags & CFG_RELOAD) ? " (reloadable)" : "");
		fprintf(fp, "%s = ", o->path);
		switch (o->type) {
		case CFG_INT:
			fprintf(fp, "%d", *CFIELD(src, o, int));
			break;
		case CFG_BOOL:
			fputs(*CFIELD(src, o, bool) ? "true" : "false", fp);
			break;
		case CFG_STR:
			if ((o->flags & CFG_SECRET) && **CFIELD(src, o, char *const))
				fputs("\"********\"", fp);
			else if (o->flags & CFG_CONNINFO) {
				bool hidden;
				char *m = conninfo_masked(*CFIELD(src, o,
				    char *const), &hidden);

				if (m == NULL) {
					fputs("\"********\"", fp);
					end = "; # not a valid connection "
					    "string, not shown\n";
				} else if (hidden) {
					dump_str(fp, m);
					end = "; # password not shown\n";
				} else	/* as written */
					dump_str(fp, *CFIELD(src, o,
					    char *const));
				free(m);
			} else
				dump_str(fp, *CFIELD(src, o, char *const));
			break;
		}
		fputs(end, fp);
	}
}

static bool
opt_equal(const struct cfg_opt *o, const void *a, const void *b)
{
	switch (o->type) {
	case CFG_INT:
		return *CFIELD(a, o, int) == *CFIELD(b, o, int);
	case CFG_BOOL:
		return *CFIELD(a, o, bool) == *CFIELD(b, o, bool);
	case CFG_STR:
		return strcmp(*CFIELD(a, o, char *const),
		    *CFIELD(b, o, char *const)) == 0;
	}
	return true;
}

int
cfg_reload(const struct cfg_opt *tab, void *cur, size_t size, const char *file,
    cfg_validate_fn *validate, void *arg)
{
	char err[512];		/* one file:line: message */
	void *fresh = xcalloc(1, size);

	if (cfg_load(tab, fresh, file, err, sizeof(err)) < 0)
		goto fail;
	for (const struct cfg_opt *o = tab; o->path; o++) {
		if ((o->flags & CFG_RELOAD) || opt_equal(o, cur, fresh))
			continue;
		log_warnx("'%s' cannot change on reload, keeping the old value; "
		    "restart to apply it", o->path);
		if (o->type == CFG_STR) {
			char **dstp = FIELD(fresh, o, char *);
			free(*dstp);
			*dstp = xstrdup(*FIELD(cur, o, char *));
		} else
			memcpy((char *)fresh + o->off, (char *)cur + o->off,
			    o->type == CFG_INT ? sizeof(int) : sizeof(bool));
	}
	if (validate != NULL && validate(fresh, arg, err, sizeof(err)) < 0)
		goto fail;
	cfg_free(tab, cur);
	memcpy(cur, fresh, size);
	free(fresh);
	log_info("configuration reloaded from %s", file);
	return 0;
fail:
	log_errorx("reload FAILED, keeping old configuration: %s", err);
	cfg_free(tab, fresh);
	free(fresh);
	return -1;
}
