/*
 * log.c - logfmt lines with timestamp, level, process and context.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

int log_level_cur = LOG_LVL_INFO;

static const char *log_proc = "aryz";
static char *log_path;		/* NULL: stderr */
static FILE *log_fp;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

int
log_level_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

void
log_set_level(int level)
{
	log_level_cur = level;
}

int
log_init(const char *proc, const char *file, int level)
{
	FILE *fp = stderr;

	log_proc = proc;
	log_level_cur = level;
	/*
	 * Open the new file before closing the old one: on SIGHUP, after the
	 * privilege drop, the file may no longer be ours to open, and the
	 * log must then stay where it was rather than go to stderr.
	 */
	if (file != NULL && file[0] != '\0') {
		if ((fp = fopen(file, "a")) == NULL)
			return -1;
		setvbuf(fp, NULL, _IOLBF, 0);
	}
	if (log_fp != NULL && log_fp != stderr)
		fclose(log_fp);
	log_fp = fp;
	free(log_path);
	log_path = fp != stderr ? strdup(file) : NULL;
	return 0;
}

void
log_reopen(void)
{
	FILE *fp;

	if (log_path == NULL)
		return;
	fp = fopen(log_path, "a");
	if (fp == NULL) {
		log_warn("cannot reopen log file %s, keeping the old one",
		    log_path);
		return;
	}
	setvbuf(fp, NULL, _IOLBF, 0);
	fclose(log_fp);
	log_fp = fp;
}

/* Write s as a logfmt quoted value: escape quote, backslash, control bytes. */
static void
put_quoted(FILE *fp, const char *s)
{
	fputc('"', fp);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(fp, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", fp);
		else if (c < 0x20 || c == 0x7f)
			fprintf(fp, "\\x%02x", c);
		else
			fputc(c, fp);
	}
	fputc('"', fp);
}

void
log_vemit(int level, const char *ctx, const char *fmt, va_list ap)
{
	char msg[2048];		/* a log line longer than this is truncated */
	char ts[40];
	struct timeval tv;
	struct tm tm;
	FILE *fp = log_fp ? log_fp : stderr;
	int saved = errno;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	if (level < 0)
		level = 0;
	if (level > LOG_LVL_DEBUG)
		level = LOG_LVL_DEBUG;

	flockfile(fp);
	fprintf(fp, "ts=%s.%03ldZ level=%s proc=%s pid=%ld ", ts,
	    (long)tv.tv_usec / 1000, level_names[level], log_proc,
	    (long)getpid());
	if (ctx != NULL && ctx[0] != '\0')
		fprintf(fp, "%s ", ctx);
	fputs("msg=", fp);
	put_quoted(fp, msg);
	fputc('\n', fp);
	funlockfile(fp);
	fflush(fp);
	errno = saved;
}

void
log_emit(int level, const char *ctx, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(level, ctx, fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	char buf[1024];		/* the caller's part of the message */
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_emit(LOG_LVL_WARN, NULL, "%s: %s", buf, strerror(saved));
}

void
fatal(const char *fmt, ...)
{
	char buf[1024];		/* the caller's part of the message */
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	log_emit(LOG_LVL_ERROR, NULL, "%s: %s", buf, strerror(saved));
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LVL_ERROR, NULL, fmt, ap);
	va_end(ap);
	exit(1);
}
