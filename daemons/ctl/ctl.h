/*
 * ctl.h - aryzctl internals: one file per command family.
 */
#ifndef ARYZCTL_H
#define ARYZCTL_H

#include <libpq-fe.h>
#include <stdbool.h>

struct ctl {
	PGconn		*db;
	const char	*sqldir;	/* holds migrations/ and data/ */
	bool		 demo;		/* load-reference: include demo set */
};

/* main.c */
int ctl_exec(struct ctl *c, const char *sql);
char *ctl_slurp(const char *path);
PGresult *ctl_query(struct ctl *c, const char *sql, int n,
    const char *const *vals);

/* migrate.c */
int cmd_migrate(struct ctl *c) __attribute__((warn_unused_result));

/* reference.c */
int cmd_load_reference(struct ctl *c) __attribute__((warn_unused_result));

/* queue.c */
int cmd_status(struct ctl *c) __attribute__((warn_unused_result));
int cmd_dead_letters(struct ctl *c) __attribute__((warn_unused_result));
int cmd_requeue(struct ctl *c, const char *what) __attribute__((warn_unused_result));

#endif
