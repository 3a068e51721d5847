/*
 * names.c - split a reference-data place name into its spellings.
 */
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "xmalloc.h"

char *
names_trim(char *s)
{
	size_t n;

	while (*s == ' ')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '?'))
		s[--n] = '\0';
	return s;
}

int
names_each(const char *name, names_fn *fn, void *arg)
{
	char *copy = xstrdup(name), *p = copy, *part;
	int rc = 0;

	/* The arrow is 3 bytes of UTF-8: make it a '/' padded with spaces. */
	while ((part = strstr(copy, "→")) != NULL)
		memcpy(part, " / ", 3);
	while (rc == 0 && (part = strsep(&p, "/")) != NULL) {
		char *paren = strchr(part, '(');
		char *t;

		if (paren != NULL) {
			char *close = strchr(paren, ')');
			if (close != NULL)
				memmove(paren, close + 1, strlen(close + 1) + 1);
			else
				*paren = '\0';
		}
		t = names_trim(part);
		if (*t != '\0')
			rc = fn(t, arg);
	}
	free(copy);
	return rc;
}
