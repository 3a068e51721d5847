/*
 * sms.c - SMS encoding facts: GSM 03.38 alphabet membership, SMS part
 * counting, and the concatenation element of a UDH (3GPP TS 23.040
 * 9.2.3.24.1 and .8).
 */
#include "sms.h"

/* GSM 03.38 default alphabet beyond [0-9A-Za-z], as code points. */
static const unsigned gsm_basic[] = {
	'@', 0xa3, '$', 0xa5, 0xe8, 0xe9, 0xf9, 0xec, 0xf2, 0xc7, '\n', 0xd8,
	0xf8, '\r', 0xc5, 0xe5, 0x394, '_', 0x3a6, 0x393, 0x39b, 0x3a9, 0x3a0,
	0x3a8, 0x3a3, 0x398, 0x39e, 0xc6, 0xe6, 0xdf, 0xc9, ' ', '!', '"', '#',
	0xa4, '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', ':', ';',
	'<', '=', '>', '?', 0xa1, 0xc4, 0xd6, 0xd1, 0xdc, 0xa7, 0xbf, 0xe4,
	0xf6, 0xf1, 0xfc, 0xe0,
};

/* The extension table: each costs an escape plus one septet. */
static const unsigned gsm_ext[] = {
	'^', '{', '}', '\\', '[', '~', ']', '|', 0x20ac, '\f',
};

/* Septets of cp in GSM-7: 1, 2 (extension), or 0 if not representable. */
static int
gsm_septets(unsigned cp)
{
	if ((cp >= '0' && cp <= '9') || (cp >= 'A' && cp <= 'Z') ||
	    (cp >= 'a' && cp <= 'z'))
		return 1;
	for (size_t i = 0; i < sizeof(gsm_basic) / sizeof(gsm_basic[0]); i++)
		if (gsm_basic[i] == cp)
			return 1;
	for (size_t i = 0; i < sizeof(gsm_ext) / sizeof(gsm_ext[0]); i++)
		if (gsm_ext[i] == cp)
			return 2;
	return 0;
}

/* Decode one UTF-8 character at *p; returns its length, 0 if invalid. */
static int
next_cp(const unsigned char *p, unsigned *cp)
{
	int n;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	} else if ((p[0] & 0xe0) == 0xc0) {
		*cp = p[0] & 0x1f;
		n = 2;
	} else if ((p[0] & 0xf0) == 0xe0) {
		*cp = p[0] & 0x0f;
		n = 3;
	} else if ((p[0] & 0xf8) == 0xf0) {
		*cp = p[0] & 0x07;
		n = 4;
	} else
		return 0;
	for (int i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		*cp = *cp << 6 | (p[i] & 0x3f);
	}
	return n;
}

bool
sms_gsm7_only(const char *text)
{
	const unsigned char *p = (const unsigned char *)text;
	unsigned cp;
	int n;

	while (*p) {
		if ((n = next_cp(p, &cp)) == 0 || gsm_septets(cp) == 0)
			return false;
		p += n;
	}
	return true;
}

int
sms_parts(const char *text, size_t *units)
{
	const unsigned char *p = (const unsigned char *)text;
	bool gsm = sms_gsm7_only(text);
	size_t u = 0, one = gsm ? 160 : 70, part = gsm ? 153 : 67;
	unsigned cp;
	int n;

	while (*p) {
		if ((n = next_cp(p, &cp)) == 0)
			n = 1, cp = 0xfffd;
		u += gsm ? (size_t)gsm_septets(cp) : (cp > 0xffff ? 2 : 1);
		p += n;
	}
	if (units)
		*units = u;
	if (u <= one)
		return 1;
	return (int)((u + part - 1) / part);
}

bool
sms_udh_concat(const uint8_t *udh, size_t len, int *ref, int *total,
    int *seq)
{
	size_t end, i;

	if (len < 1)
		return false;
	end = (size_t)udh[0] + 1;
	if (end > len)
		return false;
	for (i = 1; i + 2 <= end; ) {
		uint8_t iei = udh[i], iel = udh[i + 1];
		const uint8_t *d = udh + i + 2;

		if (i + 2 + iel > end)
			return false;
		if (iei == 0x00 && iel == 3) {
			*ref = d[0];
			*total = d[1];
			*seq = d[2];
		} else if (iei == 0x08 && iel == 4) {
			*ref = d[0] << 8 | d[1];
			*total = d[2];
			*seq = d[3];
		} else {
			i += 2 + iel;
			continue;
		}
		/* A "1 of 1" is a plain message; 0 is not a part number. */
		return *total >= 2 && *seq >= 1 && *seq <= *total;
	}
	return false;
}
