/*
 * main.c - aryzctl, the operator CLI: argument parsing and dispatch.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "daemon.h"
#include "xmalloc.h"

#ifndef ARYZ_SQLDIR
#define ARYZ_SQLDIR "sql"
#endif

static const char help[] =
"NAME\n"
"     aryzctl - operate an aryz installation\n"
"\n"
"SYNOPSIS\n"
"     aryzctl [-d conninfo] [-s sqldir] command [args]\n"
"\n"
"DESCRIPTION\n"
"     aryzctl applies the database schema, loads reference data and\n"
"     inspects and repairs the job queue.\n"
"\n"
"COMMANDS\n"
"     migrate            apply sql/migrations/*.sql not yet applied, in\n"
"                        order, each in its own transaction; recorded in\n"
"                        schema_migration, so running it again is a no-op\n"
"     load-reference     load oblasts, rayons, municipalities (SOATE),\n"
"                        service categories, keywords, holidays and a\n"
"                        demo set of providers and contracts (is_demo);\n"
"                        idempotent\n"
"     status             queue depths, outbox and dead letters\n"
"     dead-letters       list jobs that failed too often\n"
"     requeue ID|all     put dead-lettered jobs back on the queue\n"
"\n"
"OPTIONS\n"
"     -d conninfo   libpq connection string (default: $ARYZ_DATABASE,\n"
"                   else \"dbname=aryz\")\n"
"     -s sqldir     directory with migrations/ and data/ (default:\n"
"                   $ARYZ_SQLDIR, else " ARYZ_SQLDIR ")\n"
"     --no-demo     load-reference without the demo providers\n"
"     -h, --help    this text;  -V, --version  print the version\n"
"\n"
"EXIT STATUS\n"
"     0 on success, 1 on a database or data error, 2 on bad usage.\n";

int
ctl_exec(struct ctl *c, const char *sql)
{
	PGresult *r = PQexec(c->db, sql);
	int rc = 0;

	if (PQresultStatus(r) != PGRES_COMMAND_OK &&
	    PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "aryzctl: %s", PQresultErrorMessage(r));
		rc = -1;
	}
	PQclear(r);
	return rc;
}

/*
 * Read a whole text file into a NUL-terminated buffer the caller frees;
 * NULL (after printing why) if it cannot be read or holds a NUL byte.
 */
char *
ctl_slurp(const char *path)
{
	FILE *fp = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0, got;

	if (fp == NULL) {
		fprintf(stderr, "aryzctl: cannot open %s: %s\n", path,
		    strerror(errno));
		return NULL;
	}
	do {
		cap += 65536;
		buf = xrealloc(buf, cap + 1);
		got = fread(buf + n, 1, cap - n, fp);
		n += got;
	} while (got > 0);
	if (ferror(fp) || memchr(buf, '\0', n) != NULL) {
		fprintf(stderr, "aryzctl: cannot read %s as text\n", path);
		xfree(&buf);
	} else
		buf[n] = '\0';
	fclose(fp);
	return buf;
}

/* Run a parameterised query; on error print it and return NULL. */
PGresult *
ctl_query(struct ctl *c, const char *sql, int n, const char *const *vals)
{
	PGresult *r = PQexecParams(c->db, sql, n, NULL, vals, NULL, NULL, 0);

	if (PQresultStatus(r) != PGRES_COMMAND_OK &&
	    PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "aryzctl: %s", PQresultErrorMessage(r));
		PQclear(r);
		return NULL;
	}
	return r;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "no-demo", no_argument, NULL, 'N' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl c = { .demo = true };
	const char *conninfo = getenv("ARYZ_DATABASE");
	const char *cmd;
	int ch, rc;

	c.sqldir = getenv("ARYZ_SQLDIR") ? getenv("ARYZ_SQLDIR") : ARYZ_SQLDIR;
	while ((ch = getopt_long(argc, argv, "d:s:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			conninfo = optarg;
			break;
		case 's':
			c.sqldir = optarg;
			break;
		case 'N':
			c.demo = false;
			break;
		case 'h':
			fputs(help, stdout);
			return 0;
		case 'V':
			printf("aryzctl %s\n", aryz_version);
			return 0;
		default:
			fputs(help, stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fputs(help, stderr);
		return 2;
	}
	cmd = argv[optind];

	c.db = PQconnectdb(conninfo ? conninfo : "dbname=aryz");
	if (PQstatus(c.db) != CONNECTION_OK) {
		fprintf(stderr, "aryzctl: cannot connect: %s",
		    PQerrorMessage(c.db));
		PQfinish(c.db);
		return 1;
	}
	if (ctl_exec(&c, "SET client_min_messages = warning") < 0)
		rc = -1;
	else if (strcmp(cmd, "migrate") == 0)
		rc = cmd_migrate(&c);
	else if (strcmp(cmd, "load-reference") == 0)
		rc = cmd_load_reference(&c);
	else if (strcmp(cmd, "status") == 0)
		rc = cmd_status(&c);
	else if (strcmp(cmd, "dead-letters") == 0)
		rc = cmd_dead_letters(&c);
	else if (strcmp(cmd, "requeue") == 0 && optind + 1 < argc)
		rc = cmd_requeue(&c, argv[optind + 1]);
	else {
		fprintf(stderr, "aryzctl: unknown command '%s'\n", cmd);
		PQfinish(c.db);
		return 2;
	}
	PQfinish(c.db);
	return rc < 0 ? 1 : 0;
}
