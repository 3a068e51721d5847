/*
 * phone.h - normalise phone numbers to E.164, with Kyrgyz national forms.
 */
#ifndef ARYZ_PHONE_H
#define ARYZ_PHONE_H

#include <stddef.h>

/* "+" + up to 15 digits + NUL */
#define PHONE_E164_MAX	17

/*
 * Normalise in to E.164 in out (at least PHONE_E164_MAX bytes).
 * Kyrgyz forms: "0555 12 34 56", "555123456", "996555123456",
 * "+996 (555) 12-34-56", "00996555123456" all become "+996555123456".
 * Other countries are accepted only in international form ("+7...",
 * "007..."), 8 to 15 digits.  Spaces, dashes, dots and parentheses are
 * ignored; anything else is garbage.  Returns 0, or -1 for garbage.
 */
int phone_normalize(const char *in, char *out, size_t outlen)
    __attribute__((warn_unused_result));

#endif
