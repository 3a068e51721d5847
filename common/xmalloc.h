/*
 * xmalloc.h - allocation that never returns NULL.
 *
 * aryz's OOM policy, chosen once: running out of memory aborts the
 * process.  Every daemon is crash-safe by design (state is in PostgreSQL),
 * so dying is cheaper and safer than half-handling an allocation failure.
 */
#ifndef ARYZ_XMALLOC_H
#define ARYZ_XMALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Free *pp and set it to NULL; accepts NULL and a pointer to NULL. */
void xfree(void *pp);

#endif
