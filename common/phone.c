/*
 * phone.c - phone number normalisation to E.164.
 *
 * Kyrgyz numbers are +996 followed by a 9-digit national significant
 * number (NSN).  Mobile NSNs start 5, 7, 9 (and 2 for some operators);
 * geographic ones start 3 (e.g. 3222 Jalal-Abad, 3922 Karakol).  An NSN
 * starting 0, 1, 4, 6 or 8 is not assigned, so we reject it rather than
 * store a number nobody can answer.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "phone.h"

static bool
kg_nsn_ok(const char *nsn)
{
	return strlen(nsn) == 9 && strchr("23579", nsn[0]) != NULL;
}

int
phone_normalize(const char *in, char *out, size_t outlen)
{
	char d[32];		/* digits only; longer input is garbage */
	size_t n = 0;
	bool plus = false;
	const char *p = in;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '+') {
		plus = true;
		p++;
	}
	for (; *p; p++) {
		if (isdigit((unsigned char)*p)) {
			if (n + 1 >= sizeof(d))
				return -1;
			d[n++] = *p;
		} else if (strchr(" -.()\t", *p) == NULL)
			return -1;
	}
	d[n] = '\0';
	if (n == 0 || outlen < PHONE_E164_MAX)
		return -1;

	const char *intl = NULL;	/* digits after the "+" */
	if (plus)
		intl = d;
	else if (strncmp(d, "00", 2) == 0)
		intl = d + 2;
	else if (strncmp(d, "996", 3) == 0 && n == 12)
		intl = d;
	else if (d[0] == '0' && n == 10 && kg_nsn_ok(d + 1)) {
		snprintf(out, outlen, "+996%s", d + 1);
		return 0;
	} else if (n == 9 && kg_nsn_ok(d)) {
		snprintf(out, outlen, "+996%s", d);
		return 0;
	} else
		return -1;

	if (strncmp(intl, "996", 3) == 0) {
		if (!kg_nsn_ok(intl + 3))
			return -1;
	} else {
		size_t len = strlen(intl);
		if (len < 8 || len > 15 || intl[0] == '0')
			return -1;
	}
	snprintf(out, outlen, "+%s", intl);
	return 0;
}
