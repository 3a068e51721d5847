/*
 * fold.h - fold Kyrgyz/Russian text, Cyrillic or Latin, into "skeleton"
 * words so that spellings residents actually type compare equal.
 *
 * The pipeline (fold.c has the details and the reasons):
 *   1. libunistring u8_casefold() with NFKD: case folded, compatibility
 *      forms (full-width digits, ligatures) expanded, accents split off;
 *      the combining marks are then dropped (ö -> o, й -> и, ё -> е).
 *   2. A word mixing Cyrillic and Latin letters gets its Latin look-alikes
 *      (a c e o p x y k m t h b) read as Cyrillic ("мусоp" with Latin p).
 *   3. Cyrillic is transliterated to Latin (ң ө ү -> n o u; Kyrgyz letters
 *      set FOLD_F_KY).
 *   4. One ASCII pass merges what transliterations and chat habits mix
 *      up: zh/dj/dzh/ж -> j, sh/щ -> S, ch -> C, kh/x -> h, ng/q -> n,
 *      v/w/в/ү -> u, y/ы/й/и -> i, ie -> e, c -> k, and an "8" standing
 *      alone between letters -> o (ө).
 *   5. Words are runs of letters or of digits; everything else (spaces,
 *      punctuation, emoji, hyphens) separates words.
 *
 * The skeleton is lossy on purpose: it is a matching key, never shown.
 * Keywords and aliases must go through the same fold as the text.
 */
#ifndef ARYZ_FOLD_H
#define ARYZ_FOLD_H

#include <stdbool.h>
#include <stddef.h>

#define FOLD_MAX_INPUT	4096	/* bytes folded; an SMS is at most ~1600 */
#define FOLD_MAX_WORDS	512	/* more words than a 4 KiB text can hold */

/* Text-wide flags in struct fold_text.flags. */
#define FOLD_F_KY	0x01	/* Kyrgyz-only letters seen (ң ө ү, Latin ö ü ñ) */
#define FOLD_F_CYR	0x02	/* some Cyrillic letter */
#define FOLD_F_LAT	0x04	/* some Latin letter */
#define FOLD_F_RU	0x08	/* Russian-only letters seen (щ ъ) */

struct fold_word {
	const char	*s;	/* NUL-terminated skeleton, points into buf */
	size_t		 len;
	bool		 digits;	/* only ASCII digits */
};

struct fold_text {
	char		*buf;	/* words, each NUL-terminated */
	size_t		 len, cap;
	struct fold_word *w;
	size_t		 nw, wcap;
	unsigned	 flags;
};

void fold_init(struct fold_text *ft);
void fold_release(struct fold_text *ft);

/*
 * Fold UTF-8 text[0..len) into ft (previous content replaced).  At most
 * FOLD_MAX_INPUT bytes and FOLD_MAX_WORDS words are looked at.  Invalid
 * UTF-8 bytes act as separators; this never fails.
 */
void fold_text(struct fold_text *ft, const char *text, size_t len);

/*
 * Fold s into one skeleton string with single spaces between words,
 * allocated (xmalloc); "" when s has no letter or digit.
 */
char *fold_key(const char *s);

#endif
