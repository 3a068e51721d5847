/*
 * log.h - levelled logfmt logging to stderr or a file.
 *
 * Every line is logfmt:
 *   ts=2026-11-27T21:00:00.123Z level=info proc=aryz-smsd <ctx> msg="..."
 * where <ctx> is an optional string of key=value pairs supplied by the
 * caller (message id, channel, hashed phone...).  The level macros do not
 * evaluate their arguments when the level is disabled.
 */
#ifndef ARYZ_LOG_H
#define ARYZ_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

extern int log_level_cur;

/*
 * file NULL or "" means stderr.  Returns 0, or -1 if file cannot be opened
 * (the log then stays where it was; proc and level are set either way).
 */
int log_init(const char *proc, const char *file, int level)
    __attribute__((warn_unused_result));
/* Reopen the log file (SIGHUP, after logrotate); no-op for stderr. */
void log_reopen(void);
void log_set_level(int level);
/* "error"/"warn"/"info"/"debug" -> level, or -1. */
int log_level_parse(const char *s);

void log_emit(int level, const char *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vemit(int level, const char *ctx, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define log_enabled(l) (log_level_cur >= (l))
#define log_at(l, ctx, ...) \
	do { if (log_enabled(l)) log_emit((l), (ctx), __VA_ARGS__); } while (0)

#define log_debug(...)	log_at(LOG_LVL_DEBUG, NULL, __VA_ARGS__)
#define log_info(...)	log_at(LOG_LVL_INFO, NULL, __VA_ARGS__)
#define log_warnx(...)	log_at(LOG_LVL_WARN, NULL, __VA_ARGS__)
#define log_errorx(...)	log_at(LOG_LVL_ERROR, NULL, __VA_ARGS__)
/* With a context prefix ("msg_id=42 chan=sms"). */
#define clog_debug(c, ...)	log_at(LOG_LVL_DEBUG, (c), __VA_ARGS__)
#define clog_info(c, ...)	log_at(LOG_LVL_INFO, (c), __VA_ARGS__)
#define clog_warn(c, ...)	log_at(LOG_LVL_WARN, (c), __VA_ARGS__)

/* log_warn appends ": strerror(errno)". */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log at error level and exit(1); only before the event loop runs. */
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif
