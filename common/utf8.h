/*
 * utf8.h - strict UTF-8 validation (RFC 3629).
 */
#ifndef ARYZ_UTF8_H
#define ARYZ_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/*
 * True when s[0..len) is well-formed UTF-8 with no NUL byte: no overlong
 * forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF, no
 * truncated sequence.  On false, *bad (if not NULL) is the byte offset
 * of the first offending byte.
 */
bool utf8_valid(const char *s, size_t len, size_t *bad);

/* Number of code points in valid UTF-8 s[0..len). */
size_t utf8_count(const char *s, size_t len);

/*
 * Byte length of the longest prefix of valid UTF-8 s that holds at most
 * max code points (never splits a character).
 */
size_t utf8_prefix(const char *s, size_t len, size_t max);

#endif
