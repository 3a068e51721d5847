/*
 * sms.h - SMS encoding facts: the GSM 03.38 alphabet, how many SMS a text
 * takes, and the concatenation information element of a UDH.
 */
#ifndef ARYZ_SMS_H
#define ARYZ_SMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * True when every character of the UTF-8 text is in the GSM 03.38
 * default alphabet or its extension table (^ { } \ [ ~ ] | € and form
 * feed), so it can go as coding=0.  False for invalid UTF-8.
 */
bool sms_gsm7_only(const char *text);

/*
 * Number of SMS the UTF-8 text takes: GSM-7 160 septets alone or 153 per
 * concatenated part (extension characters count two); otherwise UCS-2
 * 70 UTF-16 units alone or 67 per part (a character outside the BMP counts
 * two).  An empty text is one SMS.  *units (if not NULL) receives the
 * septets or UTF-16 units.
 */
int sms_parts(const char *text, size_t *units);

/*
 * Find the concatenation element in a UDH (udh[0] is its length): IEI
 * 0x00 with an 8-bit reference or IEI 0x08 with a 16-bit one.  Fills ref,
 * total and seq and returns true only for a valid "seq of total" with
 * total >= 2 and 1 <= seq <= total.
 */
bool sms_udh_concat(const uint8_t *udh, size_t len, int *ref, int *total,
    int *seq);

#endif
