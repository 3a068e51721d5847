/*
 * names.h - the spellings of a place name as the reference data writes
 * it: "Семеновка → Кожояр", "Semyonovka / Kojoyar", "Karakol (AA)",
 * "Дархан ?" (unverified).  aryzctl turns them into municipality aliases
 * and the normalizer's tests build their lexicon the same way.
 */
#ifndef ARYZ_NAMES_H
#define ARYZ_NAMES_H

/* Return non-zero to stop names_each() with that value. */
typedef int names_fn(const char *variant, void *arg);

/*
 * Call fn for every variant of name: parts split on "→" and "/",
 * parenthesised remarks dropped, spaces and a trailing "?" trimmed, empty
 * parts skipped.  Returns 0, or the first non-zero value fn returned.
 */
int names_each(const char *name, names_fn *fn, void *arg);

/* Trim spaces and a trailing "?" marker of s in place; returns the start. */
char *names_trim(char *s);

#endif
