/*
 * fold.c - text folding for matching (see fold.h for the pipeline).
 *
 * Case folding and decomposition come from libunistring (u8_casefold with
 * UNINORM_NFKD): it is already a dependency, it implements full Unicode
 * case folding (Ң -> ң, Ö -> ö) and NFKD, and it works on UTF-8 directly,
 * which ICU does not.  The only tables here are a Cyrillic -> Latin
 * transliteration and a Latin -> Cyrillic look-alike map; that is
 * transliteration, not case mapping.
 *
 * Why the merges in step 4: residents and our keyword list disagree on
 * spelling in predictable ways.  Latin spellings of one Cyrillic word
 * vary (жарык: jaryk, zharyk; Джаны: djany, jany), Kyrgyz letters are
 * typed as the nearest Russian letter (ң ө ү -> н о у) or as q 8 v in
 * Latin chat, и/ы/й are all "i" or "y" in Latin.  Merging those classes
 * costs some precision (в and у become one letter), which is harmless for
 * picking one of a few categories and a few hundred place names.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unicase.h>
#include <uninorm.h>
#include <unistr.h>

#include "fold.h"
#include "xmalloc.h"

#define WORD_MAX_CP	64	/* longer runs are cut: no real word is longer */

void
fold_init(struct fold_text *ft)
{
	memset(ft, 0, sizeof(*ft));
}

void
fold_release(struct fold_text *ft)
{
	xfree(&ft->buf);
	xfree(&ft->w);
	ft->len = ft->cap = ft->nw = ft->wcap = 0;
}

/*
 * Cyrillic lower-case letter -> Latin; NULL if c is not one we know.
 * ь and ъ give "" (dropped).  *flags gets FOLD_F_KY / FOLD_F_RU hints.
 */
static const char *
cyr_latin(ucs4_t c, unsigned *flags)
{
	/* а..я, U+0430..U+044F */
	static const char *const basic[32] = {
		"a", "b", "v", "g", "d", "e", "zh", "z", "i", "y", "k", "l",
		"m", "n", "o", "p", "r", "s", "t", "u", "f", "kh", "ts", "ch",
		"sh", "shch", "", "y", "", "e", "yu", "ya",
	};

	if (c >= 0x430 && c <= 0x44F) {
		if (c == 0x449 || c == 0x44A)	/* щ ъ */
			*flags |= FOLD_F_RU;
		return basic[c - 0x430];
	}
	switch (c) {
	case 0x4A3: case 0x4A5: case 0x4C8:	/* ң ҥ ӈ */
		*flags |= FOLD_F_KY;
		return "n";
	case 0x4E9: case 0x473: case 0x4EB:	/* ө, ѳ and ӫ typed for it */
		*flags |= FOLD_F_KY;
		return "o";
	case 0x4AF: case 0x4B1:			/* ү, ұ typed for it */
		*flags |= FOLD_F_KY;
		return "u";
	case 0x450: case 0x451:			/* ѐ ё (if not decomposed) */
		return "e";
	case 0x454:				/* є */
		return "e";
	case 0x456: case 0x457:			/* і ї */
		return "i";
	case 0x458:				/* ј */
		return "j";
	case 0x45E:				/* ў */
		return "u";
	case 0x493:				/* ғ */
		return "g";
	case 0x49B:				/* қ */
		return "k";
	case 0x4BB:				/* һ */
		return "h";
	case 0x4D9:				/* ә */
		return "a";
	default:
		return NULL;
	}
}

static bool
is_cyr(ucs4_t c)
{
	return c >= 0x400 && c <= 0x4FF;
}

static bool
is_latin(ucs4_t c)
{
	return (c >= 'a' && c <= 'z') || c == 0x131 || c == 0xF8 ||
	    c == 0xE6 || c == 0x111 || c == 0x142 || c == 0xDF;
}

/* Latin letter (after decomposition) -> ASCII; NULL if unknown. */
static const char *
latin_ascii(ucs4_t c)
{
	static const char one[26][2] = {
		"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m",
		"n", "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z",
	};

	if (c >= 'a' && c <= 'z')
		return one[c - 'a'];
	switch (c) {
	case 0x131: return "i";		/* dotless ı (Turkish-style Latin) */
	case 0xF8: return "o";		/* ø */
	case 0xE6: return "ae";		/* æ */
	case 0x111: return "d";		/* đ */
	case 0x142: return "l";		/* ł */
	case 0xDF: return "ss";		/* ß if casefold left it */
	default: return NULL;
	}
}

/* Latin look-alike -> Cyrillic letter, for words that mix both. */
static ucs4_t
homoglyph_cyr(ucs4_t c)
{
	switch (c) {
	case 'a': return 0x430;
	case 'b': return 0x432;	/* capital B looks like В */
	case 'c': return 0x441;
	case 'e': return 0x435;
	case 'h': return 0x43D;	/* capital H looks like Н */
	case 'k': return 0x43A;
	case 'm': return 0x43C;
	case 'o': return 0x43E;
	case 'p': return 0x440;
	case 't': return 0x442;
	case 'x': return 0x445;
	case 'y': return 0x443;
	default: return c;
	}
}

static void
buf_put(struct fold_text *ft, const char *s, size_t n)
{
	if (ft->len + n + 1 > ft->cap) {
		size_t ncap = ft->cap ? ft->cap * 2 : 256;
		while (ncap < ft->len + n + 1)
			ncap *= 2;
		ft->buf = xrealloc(ft->buf, ncap);
		ft->cap = ncap;
	}
	memcpy(ft->buf + ft->len, s, n);
	ft->len += n;
	ft->buf[ft->len] = '\0';
}

static bool
asc_alpha(char c)
{
	return c >= 'a' && c <= 'z';
}

static bool
asc_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Record one skeleton word of n bytes that starts at buf offset off. */
static void
word_add(struct fold_text *ft, size_t off, size_t n, bool digits)
{
	if (n == 0 || ft->nw >= FOLD_MAX_WORDS)
		return;
	if (ft->nw == ft->wcap) {
		ft->wcap = ft->wcap ? ft->wcap * 2 : 32;
		ft->w = xrealloc(ft->w, ft->wcap * sizeof(*ft->w));
	}
	/* s is fixed up at the end: buf may still move. */
	ft->w[ft->nw].s = (const char *)(uintptr_t)off;
	ft->w[ft->nw].len = n;
	ft->w[ft->nw].digits = digits;
	ft->nw++;
}

/*
 * Step 4 and 5 on one ASCII run a[0..n) of lower-case letters and digits:
 * merge spelling classes, then split at letter/digit boundaries.
 */
static void
emit_ascii(struct fold_text *ft, const char *a, size_t n)
{
	char out[WORD_MAX_CP * 4 + 1];	/* a transliterated letter is <= 4 */
	size_t i = 0, o = 0, start;

	while (i < n && o < sizeof(out) - 1) {
		char c = a[i];
		const char *r = a + i;
		size_t left = n - i;

		if (asc_digit(c)) {
			size_t j = i;
			while (j < n && asc_digit(a[j]))
				j++;
			/* "k8ch8": a lone 8 after a letter is ө. */
			if (c == '8' && j == i + 1 && i > 0 && asc_alpha(a[i - 1]))
				out[o++] = 'o';
			else
				while (i < j && o < sizeof(out) - 1)
					out[o++] = a[i++];
			if (i < j)
				i = j;
			continue;
		}
		if (left >= 4 && strncmp(r, "shch", 4) == 0) {
			out[o++] = 'S';
			i += 4;
		} else if (left >= 3 && strncmp(r, "dzh", 3) == 0) {
			out[o++] = 'j';
			i += 3;
		} else if (left >= 2 && (strncmp(r, "dj", 2) == 0 ||
		    strncmp(r, "zh", 2) == 0)) {
			out[o++] = 'j';
			i += 2;
		} else if (left >= 2 && strncmp(r, "sh", 2) == 0) {
			out[o++] = 'S';
			i += 2;
		} else if (left >= 2 && strncmp(r, "ch", 2) == 0) {
			out[o++] = 'C';
			i += 2;
		} else if (left >= 2 && strncmp(r, "kh", 2) == 0) {
			out[o++] = 'h';
			i += 2;
		} else if (left >= 2 && strncmp(r, "ng", 2) == 0) {
			out[o++] = 'n';
			i += 2;
		} else if (left >= 2 && (c == 'i' || c == 'y') && r[1] == 'e') {
			out[o++] = 'e';	/* Latin "ye" for е, "ие" ~ "е" */
			i += 2;
		} else {
			switch (c) {
			case 'c': c = 'k'; break;
			case 'q': c = 'n'; break;
			case 'v': case 'w': c = 'u'; break;
			case 'y': c = 'i'; break;
			case 'x': c = 'h'; break;
			default: break;
			}
			out[o++] = c;
			i++;
		}
	}
	out[o] = '\0';

	/* Split into runs of letters and runs of digits. */
	for (i = 0; i < o; i = start) {
		bool dig = asc_digit(out[i]);
		size_t off;

		start = i;
		while (start < o && asc_digit(out[start]) == dig)
			start++;
		if (ft->len > 0)
			buf_put(ft, "", 1);	/* keep the previous NUL */
		off = ft->len;
		buf_put(ft, out + i, start - i);
		word_add(ft, off, start - i, dig);
	}
}

/*
 * Copy text, replacing invalid UTF-8 and "№" (NFKD would make it "No",
 * which reads as the command NO) by spaces.  Returns an xmalloc'd buffer.
 */
static uint8_t *
sanitize(const char *text, size_t len, size_t *outlen)
{
	const uint8_t *s = (const uint8_t *)text;
	uint8_t *r = xmalloc(len + 1);
	size_t i = 0, o = 0;

	while (i < len) {
		ucs4_t c;
		int n = u8_mbtoucr(&c, s + i, len - i);

		if (n <= 0) {
			r[o++] = ' ';
			i++;
			continue;
		}
		if (c == 0x2116 || c == 0) {
			r[o++] = ' ';
		} else {
			memcpy(r + o, s + i, (size_t)n);
			o += (size_t)n;
		}
		i += (size_t)n;
	}
	*outlen = o;
	return r;
}

void
fold_text(struct fold_text *ft, const char *text, size_t len)
{
	uint8_t *clean = NULL, *folded = NULL;
	size_t clen, flen = 0, i = 0;
	ucs4_t word[WORD_MAX_CP];
	size_t nword = 0;
	bool cyr = false, lat = false;

	ft->len = 0;
	ft->nw = 0;
	ft->flags = 0;
	if (ft->buf != NULL)
		ft->buf[0] = '\0';
	if (len > FOLD_MAX_INPUT)
		len = FOLD_MAX_INPUT;	/* may cut a character: sanitized */
	clean = sanitize(text, len, &clen);
	folded = u8_casefold(clean, clen, NULL, UNINORM_NFKD, NULL, &flen);
	if (folded == NULL)
		goto done;

	/* Step 2 needs the whole word, so gather code points per word. */
	while (i <= flen) {
		ucs4_t c = 0;
		int n = 1;
		bool letter = false;

		if (i < flen) {
			n = u8_mbtouc(&c, folded + i, flen - i);
			if (c >= 0x300 && c <= 0x36F) {
				/* Combining mark: dropped, but ö ü mark Kyrgyz. */
				if (c == 0x308 && nword > 0 &&
				    (word[nword - 1] == 'o' || word[nword - 1] == 'u'))
					ft->flags |= FOLD_F_KY;
				if (c == 0x303 && nword > 0 && word[nword - 1] == 'n')
					ft->flags |= FOLD_F_KY;	/* ñ */
				if (c == 0x327 && nword > 0 && nword < WORD_MAX_CP &&
				    (word[nword - 1] == 's' || word[nword - 1] == 'c'))
					word[nword++] = 'h';	/* ş ç */
				i += (size_t)n;
				continue;
			}
			if (c == '\'' || c == 0x2019 || c == 0x2BC || c == 0x60) {
				i += (size_t)n;		/* apostrophes join */
				continue;
			}
			letter = (c >= '0' && c <= '9') || is_latin(c) ||
			    (is_cyr(c) && cyr_latin(c, &(unsigned){ 0 }) != NULL);
		}
		if (letter) {
			if (nword < WORD_MAX_CP)
				word[nword++] = c;
			if (is_cyr(c))
				cyr = true;
			else if (is_latin(c))
				lat = true;
		} else if (nword > 0) {
			char asc[WORD_MAX_CP * 4 + 1];	/* <= 4 bytes a letter */
			size_t a = 0;

			for (size_t k = 0; k < nword; k++) {
				ucs4_t w = word[k];
				const char *t;

				if (cyr && lat && w < 0x80)
					w = homoglyph_cyr(w);
				if (w >= '0' && w <= '9') {
					asc[a++] = (char)w;
					continue;
				}
				t = is_cyr(w) ? cyr_latin(w, &ft->flags) :
				    latin_ascii(w);
				if (t == NULL)
					continue;
				if (is_cyr(w))
					ft->flags |= FOLD_F_CYR;
				else
					ft->flags |= FOLD_F_LAT;
				while (*t != '\0')
					asc[a++] = *t++;
			}
			emit_ascii(ft, asc, a);
			nword = 0;
			cyr = lat = false;
		}
		i += (size_t)n;
	}
done:
	for (size_t k = 0; k < ft->nw; k++)
		ft->w[k].s = ft->buf + (uintptr_t)ft->w[k].s;
	free(clean);
	free(folded);
}

char *
fold_key(const char *s)
{
	struct fold_text ft;
	char *r, *p;
	size_t n = 0;

	fold_init(&ft);
	fold_text(&ft, s, strlen(s));
	for (size_t k = 0; k < ft.nw; k++)
		n += ft.w[k].len + 1;
	r = p = xmalloc(n + 1);
	for (size_t k = 0; k < ft.nw; k++) {
		if (k > 0)
			*p++ = ' ';
		memcpy(p, ft.w[k].s, ft.w[k].len);
		p += ft.w[k].len;
	}
	*p = '\0';
	fold_release(&ft);
	return r;
}
