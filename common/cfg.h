/*
 * cfg.h - declarative configuration on top of libconfig.
 *
 * A daemon describes its configuration once, as a table of struct cfg_opt
 * (path, type, where it goes, default, bounds, reloadable).  The same table
 * drives loading, validation, --check-config and --dump-config, and reload.
 * Errors come back as "file:line: message".
 */
#ifndef ARYZ_CFG_H
#define ARYZ_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum cfg_type {
	CFG_INT,		/* int, bounded by min/max */
	CFG_STR,		/* char *, owned by the config struct */
	CFG_BOOL,		/* bool */
};

#define CFG_RELOAD	0x1	/* may change on SIGHUP */
#define CFG_REQUIRED	0x2	/* must be present in the file */
#define CFG_SECRET	0x4	/* password or token: never printed */
#define CFG_CONNINFO	0x8	/* libpq connection string: printed without
				   its password */

struct cfg_opt {
	const char	*path;	/* libconfig path, e.g. "http.port" */
	enum cfg_type	 type;
	size_t		 off;	/* offsetof() into the config struct */
	long long	 idef;	/* default for CFG_INT and CFG_BOOL */
	const char	*sdef;	/* default for CFG_STR; NULL means "" */
	long long	 min, max;
	unsigned	 flags;
	const char	*help;	/* one line, for --dump-config */
};

/* Terminates every table. */
#define CFG_END { NULL, CFG_INT, 0, 0, NULL, 0, 0, 0, NULL }

/*
 * Load file into dst (a zeroed struct of the table's type): defaults first,
 * then the file.  Unknown settings, wrong types and out-of-range values are
 * errors.  On error, writes "file:line: message" into err and returns -1;
 * dst then holds defaults and must still be released with cfg_free().
 */
int cfg_load(const struct cfg_opt *tab, void *dst, const char *file,
    char *err, size_t errlen) __attribute__((warn_unused_result));

/* Release the strings a config struct owns (not the struct itself). */
void cfg_free(const struct cfg_opt *tab, void *dst);

/* Print the effective configuration in libconfig syntax. */
void cfg_dump(const struct cfg_opt *tab, const void *src, FILE *fp);

/* Extra validation of a loaded config: write err and return -1 to refuse. */
typedef int cfg_validate_fn(void *cfg, void *arg, char *err, size_t errlen);

/*
 * Reload: parse file into a fresh struct of size bytes; keep the old value
 * of every non-reloadable option that changed (with a warning); if the
 * result passes validate (may be NULL), swap it into cur.  On failure cur
 * is untouched and "reload FAILED, keeping old configuration" is logged.
 */
int cfg_reload(const struct cfg_opt *tab, void *cur, size_t size,
    const char *file, cfg_validate_fn *validate, void *arg)
    __attribute__((warn_unused_result));

#endif
