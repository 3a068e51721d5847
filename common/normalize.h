/*
 * normalize.h - turn a resident's free text into category, municipality
 * and language; parse staff and resident commands.  Used by every ingress.
 *
 * Matching works on a folded form of the text: lower case (libunistring),
 * Kyrgyz letters ң ө ү folded to н о у, Latin transliteration habits
 * (q, 8, v ...) folded, punctuation to spaces.  Keywords and place names
 * come from the database (category_keyword, municipality_alias) through a
 * struct lexicon, so operators add spellings without code changes.
 */
#ifndef ARYZ_NORMALIZE_H
#define ARYZ_NORMALIZE_H

#include <stdbool.h>
#include <stddef.h>

struct lexicon;

struct lexicon *lexicon_new(void);
void lexicon_free(struct lexicon **lx);
/*
 * Add a keyword of a service category (category code, e.g. "waste").
 * Any spelling is accepted (it is folded like the text); returns false
 * and adds nothing when the keyword has no letters, contains digits or
 * more than 6 words, or the code is empty or longer than 31 bytes.
 */
bool lexicon_add_keyword(struct lexicon *lx, const char *category,
    const char *keyword);
/*
 * Add a spelling of a municipality's name; names may repeat across rayons.
 * Returns false (nothing added) unless soate is 14 digits and alias is
 * a usable name (as for keywords).
 */
bool lexicon_add_place(struct lexicon *lx, const char *soate,
    const char *alias);
/*
 * Optional: add a name of a rayon (district), as stored in rayon.name_ky,
 * name_ru or name_latin ("Сузак району", "Сузакский район", "Suzak");
 * "району", "район", "шаары", "г." and "(...)" are dropped.  Rayon names
 * are never a result: they qualify a municipality name that repeats
 * ("Кызыл-Туу, Сузак району") and tell a rayon from the municipality of
 * the same name.  Returns false (nothing added) for an unusable name.
 */
bool lexicon_add_rayon(struct lexicon *lx, const char *soate,
    const char *name);
/* Distinct folded keywords, place names, rayon names held (for logging). */
size_t lexicon_nkeywords(const struct lexicon *lx);
size_t lexicon_nplaces(const struct lexicon *lx);
size_t lexicon_nrayons(const struct lexicon *lx);

enum norm_lang {
	NORM_LANG_UNKNOWN = 0,
	NORM_LANG_KY,
	NORM_LANG_RU,
};

/* "ky", "ru", or "" for unknown: the complaint.language value. */
const char *norm_lang_code(enum norm_lang lang);

#define NORM_MAX_CANDIDATES 8	/* a name repeats at most ~3 times in a country */

struct norm_result {
	char		category[32];	/* category code, "" if none found */
	char		soate[15];	/* municipality, "" if none or ambiguous */
	int		ncandidates;	/* municipalities whose name matched */
	char		candidates[NORM_MAX_CANDIDATES][15];
	enum norm_lang	lang;
};

/*
 * Classify UTF-8 text[0..len).  Never fails on valid UTF-8; an empty or
 * unrecognisable text gives an empty category and soate.  An explicit
 * 14-digit SOATE code in the text wins over names.  A name shared by
 * several municipalities leaves soate empty and lists the candidates.
 * Invalid UTF-8 bytes are treated as spaces; only the first 4096 bytes
 * are read.  lx may be NULL (language only).  The matching rules are
 * described at the top of normalize.c.
 */
void normalize_text(const struct lexicon *lx, const char *text, size_t len,
    struct norm_result *out);

enum cmd_kind {
	CMD_NONE = 0,		/* not a command: a complaint text */
	CMD_ACK,		/* staff: OK <ticket>       (Кабыл/Принято) */
	CMD_DONE,		/* staff: DONE <ticket>     (Бүттү/Готово) */
	CMD_INFO,		/* staff: INFO <ticket> */
	CMD_STATUS,		/* resident: STATUS <ticket> (Статус/Абал) */
	CMD_RATE,		/* resident: a lone 1..5 after resolution */
	CMD_REOPEN,		/* resident: NO / 0 / ЖОК / НЕТ [ticket] */
};

struct command {
	enum cmd_kind	kind;
	char		ticket[16];	/* digits, "" when not given */
	int		rating;		/* 1..5 for CMD_RATE */
};

/* Recognise a command in text; returns false (kind CMD_NONE) otherwise. */
bool command_parse(const char *text, size_t len, struct command *out);

#endif
