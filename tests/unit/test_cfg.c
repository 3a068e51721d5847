/*
 * test_cfg.c - the declarative config loader: defaults, bounds, unknown
 * keys and syntax errors reported as file:line, reload keeping
 * non-reloadable values, secrets never dumped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "log.h"

struct tcfg {
	int	 port;
	char	*name;
	bool	 flag;
	int	 batch;
	char	*pass;
};

static const struct cfg_opt opts[] = {
	{ "http.port", CFG_INT, offsetof(struct tcfg, port), 8080, NULL, 1, 65535, 0, "port" },
	{ "name", CFG_STR, offsetof(struct tcfg, name), 0, "x", 0, 10, CFG_RELOAD, "name" },
	{ "flag", CFG_BOOL, offsetof(struct tcfg, flag), 1, NULL, 0, 0, CFG_RELOAD, "flag" },
	{ "batch", CFG_INT, offsetof(struct tcfg, batch), 5, NULL, 1, 100, CFG_RELOAD, "b" },
	{ "pass", CFG_STR, offsetof(struct tcfg, pass), 0, "", 0, 64, CFG_SECRET, "p" },
	CFG_END
};

/* One file per run (the pid in its name), removed when the tests end. */
static char path[64];

static void
write_file(const char *text)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/* Load text; return 0/-1 and leave the error in err. */
static int
load(const char *text, struct tcfg *c, char *err, size_t len)
{
	write_file(text);
	memset(c, 0, sizeof(*c));
	return cfg_load(opts, c, path, err, len);
}

static void
test_defaults_and_values(void **state)
{
	struct tcfg c;
	char err[256];
	(void)state;

	assert_int_equal(load("", &c, err, sizeof(err)), 0);
	assert_int_equal(c.port, 8080);
	assert_string_equal(c.name, "x");
	assert_true(c.flag);
	cfg_free(opts, &c);

	assert_int_equal(load("http: { port = 99; };\nname = \"ab\";\nflag = false;\n",
	    &c, err, sizeof(err)), 0);
	assert_int_equal(c.port, 99);
	assert_string_equal(c.name, "ab");
	assert_false(c.flag);
	cfg_free(opts, &c);
}

static void
test_errors_have_file_and_line(void **state)
{
	static const struct { const char *text, *want; } cases[] = {
		{ "\n\nhttp: { port = 0; };\n", ":3: 'http.port' is 0, must be between 1 and 65535" },
		{ "name = 5;\n", ":1: 'name' must be a string" },
		{ "\nflag = 1;\n", ":2: 'flag' must be true or false" },
		{ "\n\n\nbogus = 1;\n", ":4: unknown setting 'bogus'" },
		{ "web: { port = 1; };\n", ":1: unknown section 'web'" },
		{ "http: { prot = 1; };\n", ":1: unknown setting 'http.prot'" },
		{ "name = \"01234567890\";\n", ":1: 'name' is longer than 10 characters" },
		{ "http: {\n port = 1\n", ":3: syntax error" },
		{ "http: { port = \"80\"; };\n", ":1: 'http.port' must be an integer" },
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tcfg c;
		char err[256], want[300];
		assert_int_equal(load(cases[i].text, &c, err, sizeof(err)), -1);
		snprintf(want, sizeof(want), "%s%s", path, cases[i].want);
		if (strncmp(err, want, strlen(want)) != 0)
			fail_msg("got '%s', want '%s'", err, want);
		cfg_free(opts, &c);
	}
}

static int
refuse_bad(void *cfg, void *arg, char *err, size_t len)
{
	struct tcfg *c = cfg;
	(void)arg;
	if (strcmp(c->name, "bad") == 0) {
		snprintf(err, len, "name must not be bad");
		return -1;
	}
	return 0;
}

static void
test_reload(void **state)
{
	struct tcfg c;
	char err[256];
	(void)state;

	assert_int_equal(load("http: { port = 10; };\nbatch = 7;\n", &c, err,
	    sizeof(err)), 0);
	/* port is not reloadable: kept; batch and name change. */
	write_file("http: { port = 11; };\nbatch = 8;\nname = \"new\";\n");
	assert_int_equal(cfg_reload(opts, &c, sizeof(c), path, NULL, NULL), 0);
	assert_int_equal(c.port, 10);
	assert_int_equal(c.batch, 8);
	assert_string_equal(c.name, "new");
	/* A broken file changes nothing. */
	write_file("batch = 500;\n");
	assert_int_equal(cfg_reload(opts, &c, sizeof(c), path, NULL, NULL), -1);
	assert_int_equal(c.batch, 8);
	/* A file the daemon's own validation refuses changes nothing either. */
	write_file("batch = 9;\nname = \"bad\";\n");
	assert_int_equal(cfg_reload(opts, &c, sizeof(c), path, refuse_bad, NULL), -1);
	assert_int_equal(c.batch, 8);
	assert_string_equal(c.name, "new");
	cfg_free(opts, &c);
	remove(path);
}

static void
test_dump_hides_secrets(void **state)
{
	struct tcfg c;
	char err[256], *out = NULL;
	size_t len = 0;
	FILE *fp;
	(void)state;

	assert_int_equal(load("pass = \"hunter2\";\nname = \"n\";\n", &c, err,
	    sizeof(err)), 0);
	fp = open_memstream(&out, &len);
	cfg_dump(opts, &c, fp);
	fclose(fp);
	assert_null(strstr(out, "hunter2"));
	assert_non_null(strstr(out, "pass = \"********\"; # secret, not shown"));
	assert_non_null(strstr(out, "http.port = 8080;"));
	assert_non_null(strstr(out, "name = \"n\";"));
	free(out);
	cfg_free(opts, &c);
}

/* A connection string is dumped without its password, quoting kept valid. */
static void
test_dump_conninfo(void **state)
{
	struct cdb {
		char	*db;
	} c;
	static const struct cfg_opt copts[] = {
		{ "db", CFG_STR, offsetof(struct cdb, db), 0, "", 0, 4096,
		  CFG_CONNINFO, "conninfo" },
		CFG_END
	};
	char err[256], *out = NULL;
	size_t len = 0;
	FILE *fp;
	(void)state;

	write_file("db = \"host=h password=pw1x application_name='a b'\";\n");
	memset(&c, 0, sizeof(c));
	assert_int_equal(cfg_load(copts, &c, path, err, sizeof(err)), 0);
	fp = open_memstream(&out, &len);
	cfg_dump(copts, &c, fp);
	fclose(fp);
	assert_null(strstr(out, "pw1x"));
	assert_non_null(strstr(out, "password=********"));
	assert_non_null(strstr(out, "application_name='a b'"));
	assert_non_null(strstr(out, "; # password not shown"));
	free(out);
	cfg_free(copts, &c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_values),
		cmocka_unit_test(test_errors_have_file_and_line),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_dump_hides_secrets),
		cmocka_unit_test(test_dump_conninfo),
	};
	int rc;

	log_set_level(LOG_LVL_ERROR - 1);
	snprintf(path, sizeof(path), "/tmp/aryz-test-cfg-%ld.conf", (long)getpid());
	rc = cmocka_run_group_tests_name("cfg", tests, NULL, NULL);
	remove(path);
	return rc;
}
