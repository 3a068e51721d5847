/*
 * normalize.c - classify a resident's message (category, municipality,
 * language) and recognise short staff/resident commands.
 *
 * Everything is compared on fold.h skeletons, text and lexicon alike.
 *
 * Word matching (word_match): a text word matches a lexicon word when it
 * is equal, or starts with it and the rest is an inflection: Kyrgyz is
 * agglutinative (таштандыны, суусуз, Сузакта) and Russian inflects
 * (мусора, фонари, Сузакском).  A lexicon word of 5+ skeleton letters
 * takes any ending; a shorter one only endings from a list of Kyrgyz case,
 * plural and possessive suffixes and Russian noun/adjective endings, so
 * "бак" does not match "Бакыт" and "Тоң" does not match "тонна".  A word
 * of 4+ letters ending in a vowel also matches by its stem (вода ->
 * воды).  A Russian adjectival alias (сузакский) matches any adjectival
 * ending (сузакском).  Words of 5+ letters also match with one typo
 * (substitution, insertion, deletion or swap, not in the first letter).
 * In a multi-word entry only the last word may be inflected; the entry
 * written as one word (акбулун for ак-булуң) also matches.
 *
 * Scores are skeleton letters matched (a typo costs 2).  Places are found
 * first; their words are then not used as keywords (Светлая Поляна is a
 * village, not a light).  Category rule: for each category, walk the text
 * and take at each word its category's longest matching keyword (then
 * skip the words it used); a category's score is the sum; the highest
 * score wins and a tie goes to the category whose first keyword was added
 * to the lexicon first.  Municipality rule: an explicit 14-digit SOATE
 * code starting 417 wins; then a shared name qualified by an unambiguous
 * place of the same rayon ("Арал, Ноокен" -> Aral of Nooken rayon); else
 * the best-scoring alias match(es): one municipality, or several
 * candidates and no soate (ambiguous).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fold.h"
#include "normalize.h"
#include "xmalloc.h"

#define LEX_MAX_WORDS	6	/* longest alias: "айылный аймак садыр аке" */
#define CAT_MAX		32	/* categories: 6 today */
/*
 * Shortest lexicon word matched with a typo.  Places need more letters:
 * with ~400 names a 5-letter typo match hits ordinary words (барды ~ Барпы).
 */
#define TYPO_MIN_KEYWORD 5
#define TYPO_MIN_PLACE	6

struct lex_entry {
	char		*key;		/* skeleton words, NUL-separated */
	const char	*w[LEX_MAX_WORDS];
	size_t		 wl[LEX_MAX_WORDS];
	int		 nw;
	char		*joined;	/* the words run together, or NULL */
	size_t		 score;		/* sum of word lengths */
	bool		 adj;		/* Russian adjective: last word ends "skii" */
	int		 cat;		/* keyword: index into lexicon.cat */
	char		(*soate)[15];	/* place: municipalities with this alias */
	int		 nsoate;
};

struct lexicon {
	struct lex_entry *kw, *pl, *ry;	/* keywords, places, rayons */
	size_t		 nkw, kwcap, npl, plcap, nry, rycap;
	char		 cat[CAT_MAX][32];
	int		 ncat;
};

struct lexicon *
lexicon_new(void)
{
	return xcalloc(1, sizeof(struct lexicon));
}

static void
entries_free(struct lex_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].key);
		free(e[i].joined);
		free(e[i].soate);
	}
	free(e);
}

void
lexicon_free(struct lexicon **lxp)
{
	struct lexicon *lx = *lxp;

	if (lx == NULL)
		return;
	entries_free(lx->kw, lx->nkw);
	entries_free(lx->pl, lx->npl);
	entries_free(lx->ry, lx->nry);
	free(lx);
	*lxp = NULL;
}

size_t
lexicon_nkeywords(const struct lexicon *lx)
{
	return lx->nkw;
}

size_t
lexicon_nplaces(const struct lexicon *lx)
{
	return lx->npl;
}

size_t
lexicon_nrayons(const struct lexicon *lx)
{
	return lx->nry;
}

/*
 * Fill e from the folded phrase s.  Returns false (e untouched) when the
 * phrase has no letters, has digits, or has too many words.
 */
static bool
entry_init(struct lex_entry *e, const char *s)
{
	struct fold_text ft;
	size_t n = 0, off = 0;
	bool ok = false;

	fold_init(&ft);
	fold_text(&ft, s, strlen(s));
	if (ft.nw == 0 || ft.nw > LEX_MAX_WORDS)
		goto done;
	for (size_t i = 0; i < ft.nw; i++) {
		if (ft.w[i].digits)
			goto done;
		n += ft.w[i].len + 1;
	}
	memset(e, 0, sizeof(*e));
	e->key = xmalloc(n);
	for (size_t i = 0; i < ft.nw; i++) {
		memcpy(e->key + off, ft.w[i].s, ft.w[i].len + 1);
		e->w[i] = e->key + off;
		e->wl[i] = ft.w[i].len;
		e->score += ft.w[i].len;
		off += ft.w[i].len + 1;
	}
	e->nw = (int)ft.nw;
	if (e->nw > 1) {
		e->joined = xmalloc(e->score + 1);
		off = 0;
		for (int i = 0; i < e->nw; i++) {
			memcpy(e->joined + off, e->w[i], e->wl[i]);
			off += e->wl[i];
		}
		e->joined[off] = '\0';
	}
	n = e->wl[e->nw - 1];
	e->adj = n >= 6 && strcmp(e->w[e->nw - 1] + n - 4, "skii") == 0;
	ok = true;
done:
	fold_release(&ft);
	return ok;
}

static bool
entry_same(const struct lex_entry *a, const struct lex_entry *b)
{
	if (a->nw != b->nw)
		return false;
	for (int i = 0; i < a->nw; i++)
		if (strcmp(a->w[i], b->w[i]) != 0)
			return false;
	return true;
}

static int
cat_index(struct lexicon *lx, const char *category)
{
	for (int i = 0; i < lx->ncat; i++)
		if (strcmp(lx->cat[i], category) == 0)
			return i;
	if (lx->ncat == CAT_MAX || strlen(category) >= sizeof(lx->cat[0]) ||
	    category[0] == '\0')
		return -1;
	strcpy(lx->cat[lx->ncat], category);
	return lx->ncat++;
}

bool
lexicon_add_keyword(struct lexicon *lx, const char *category,
    const char *keyword)
{
	struct lex_entry e;
	int cat = cat_index(lx, category);

	if (cat < 0 || !entry_init(&e, keyword))
		return false;
	e.cat = cat;
	for (size_t i = 0; i < lx->nkw; i++)
		if (lx->kw[i].cat == cat && entry_same(&lx->kw[i], &e)) {
			free(e.key);
			free(e.joined);
			return true;	/* another spelling, same skeleton */
		}
	if (lx->nkw == lx->kwcap) {
		lx->kwcap = lx->kwcap ? lx->kwcap * 2 : 64;
		lx->kw = xrealloc(lx->kw, lx->kwcap * sizeof(*lx->kw));
	}
	lx->kw[lx->nkw++] = e;
	return true;
}

static bool
soate_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return i == 14;
}

/* Add (soate, e) to a name list: one entry per skeleton, many codes. */
static void
names_add(struct lex_entry **arr, size_t *n, size_t *cap, const char *soate,
    struct lex_entry *e)
{
	struct lex_entry *t = NULL;

	for (size_t i = 0; i < *n && t == NULL; i++)
		if (entry_same(&(*arr)[i], e))
			t = &(*arr)[i];
	if (t != NULL) {
		free(e->key);
		free(e->joined);
	} else {
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 256;
			*arr = xrealloc(*arr, *cap * sizeof(**arr));
		}
		t = &(*arr)[(*n)++];
		*t = *e;
	}
	for (int i = 0; i < t->nsoate; i++)
		if (strcmp(t->soate[i], soate) == 0)
			return;
	t->soate = xrealloc(t->soate, (size_t)(t->nsoate + 1) * sizeof(*t->soate));
	memcpy(t->soate[t->nsoate++], soate, 15);
}

bool
lexicon_add_place(struct lexicon *lx, const char *soate, const char *alias)
{
	struct lex_entry e;

	if (!soate_valid(soate) || !entry_init(&e, alias))
		return false;
	names_add(&lx->pl, &lx->npl, &lx->plcap, soate, &e);
	return true;
}

/* Words of a rayon's official name that are not part of the name. */
static bool
rayon_filler(const char *w)
{
	static const char *const fill[] = { "raion", "raionu", "Saari", "g",
	    "gorod" };
	for (size_t i = 0; i < sizeof(fill) / sizeof(fill[0]); i++)
		if (strcmp(w, fill[i]) == 0)
			return true;
	return false;
}

bool
lexicon_add_rayon(struct lexicon *lx, const char *soate, const char *name)
{
	struct lex_entry e;
	char *copy = xstrdup(name), *p, *q;
	bool ok = false;

	/* "Ysyk-Köl (Issyk-Kul)": drop remarks in parentheses. */
	while ((p = strchr(copy, '(')) != NULL) {
		q = strchr(p, ')');
		if (q == NULL)
			*p = '\0';
		else
			memmove(p, q + 1, strlen(q + 1) + 1);
	}
	if (!soate_valid(soate) || !entry_init(&e, copy))
		goto done;
	/* "Сузак району" -> "сузак": keep the name words only. */
	while (e.nw > 0 && rayon_filler(e.w[e.nw - 1]))
		e.nw--;
	while (e.nw > 0 && rayon_filler(e.w[0])) {
		memmove(e.w, e.w + 1, (size_t)(e.nw - 1) * sizeof(e.w[0]));
		memmove(e.wl, e.wl + 1, (size_t)(e.nw - 1) * sizeof(e.wl[0]));
		e.nw--;
	}
	if (e.nw == 0) {
		free(e.key);
		free(e.joined);
		goto done;
	}
	free(e.joined);
	e.joined = NULL;
	e.score = 0;
	for (int i = 0; i < e.nw; i++)
		e.score += e.wl[i];
	e.adj = e.wl[e.nw - 1] >= 6 &&
	    strcmp(e.w[e.nw - 1] + e.wl[e.nw - 1] - 4, "skii") == 0;
	names_add(&lx->ry, &lx->nry, &lx->rycap, soate, &e);
	ok = true;
done:
	free(copy);
	return ok;
}

/* ---- word matching ---------------------------------------------------- */

/*
 * Endings a short (< 5 letter) stem may take, as skeletons: Kyrgyz case,
 * plural, possessive, privative suffixes in their vowel-harmony and
 * assimilation variants, and Russian noun endings.  An ending may chain
 * up to three of them (таштандыларыбызды is long enough not to need it).
 * The 2nd person possessives -ың/-ум are left out: "атайын" (special)
 * would read as the village Атай.
 */
static const char *const suffixes[] = {
	/* Kyrgyz locative, ablative, dative, accusative, genitive */
	"da", "de", "do", "ta", "te", "to", "nda", "nde", "ndo",
	"dan", "den", "don", "tan", "ten", "ton", "ndan", "nden", "ndon",
	"ga", "ge", "go", "ka", "ke", "ko",
	"ni", "nu", "di", "du", "ti", "tu",
	"nin", "nun", "din", "dun", "tin", "tun",
	/* plural, possessive, privative, adjectival */
	"lar", "ler", "lor", "dar", "der", "dor", "tar", "ter", "tor",
	"si", "su", "ibiz", "ubuz", "imiz", "umuz",
	"siz", "suz", "luu", "lu", "dagi", "tagi", "daki", "taki", "Ci",
	/* Russian noun endings */
	"a", "e", "i", "u", "o", "om", "oi", "ei", "ami", "ah", "am", "ov",
	"ev", "ia", "iu", "em",
};

static bool
suffix_ok(const char *s, int depth)
{
	if (*s == '\0')
		return true;
	if (depth == 0)
		return false;
	/* Russian adjective from a place name: Тоңский, Аралском */
	if (s[0] == 's' && s[1] == 'k' && strlen(s) <= 5)
		return true;
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		size_t n = strlen(suffixes[i]);
		if (strncmp(s, suffixes[i], n) == 0 && suffix_ok(s + n, depth - 1))
			return true;
	}
	return false;
}

/* True when t[0..tl) begins with k[0..kl) followed by an allowed ending. */
static bool
prefix_with_ending(const char *k, size_t kl, const char *t, size_t tl)
{
	if (tl < kl || memcmp(k, t, kl) != 0)
		return false;
	return kl >= 5 || suffix_ok(t + kl, 3);
}

/*
 * True when some prefix of t is k with exactly one edit (substitution,
 * insertion, deletion, adjacent swap) after the first letter.
 */
static bool
prefix_one_edit(const char *k, size_t kl, const char *t, size_t tl)
{
	size_t p = 0;

	while (p < kl && p < tl && k[p] == t[p])
		p++;
	if (p == 0 || p == kl)
		return false;	/* first letter differs, or no edit needed */
	/* substitution */
	if (p < tl && tl - p - 1 >= kl - p - 1 &&
	    memcmp(k + p + 1, t + p + 1, kl - p - 1) == 0)
		return true;
	/* extra letter in t */
	if (tl - p >= kl - p + 1 && memcmp(k + p, t + p + 1, kl - p) == 0)
		return true;
	/* letter missing in t */
	if (tl - p >= kl - p - 1 && memcmp(k + p + 1, t + p, kl - p - 1) == 0)
		return true;
	/* swapped neighbours */
	if (p + 1 < kl && p + 1 < tl && k[p] == t[p + 1] && k[p + 1] == t[p] &&
	    tl - p - 2 >= kl - p - 2 &&
	    memcmp(k + p + 2, t + p + 2, kl - p - 2) == 0)
		return true;
	return false;
}

static bool
is_vowel(char c)
{
	return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u';
}

/*
 * Score of text word t against lexicon word k (0: no match).  last: k is
 * the last word of its entry (only it may be inflected).  adj: k is a
 * Russian adjective ending in "skii".
 */
static size_t
word_match(const char *k, size_t kl, const struct fold_word *t, bool last,
    bool adj, size_t typo_min)
{
	if (t->digits)
		return 0;
	if (t->len == kl && memcmp(k, t->s, kl) == 0)
		return kl;
	if (last) {
		if (prefix_with_ending(k, kl, t->s, t->len))
			return kl;
		/* вода -> воды, лампа -> лампы: the stem with an ending */
		if (kl >= 4 && is_vowel(k[kl - 1]) && t->len >= kl &&
		    prefix_with_ending(k, kl - 1, t->s, t->len))
			return kl - 1;
		/* сузакский -> сузакском, сузакского */
		if (adj && t->len >= kl - 2 && t->len <= kl + 2 &&
		    memcmp(k, t->s, kl - 2) == 0)
			return kl;
	}
	if (kl >= typo_min) {
		if (last && prefix_one_edit(k, kl, t->s, t->len))
			return kl - 2;
		if (!last && (t->len + 1 == kl || t->len == kl ||
		    t->len == kl + 1) && prefix_one_edit(k, kl, t->s, t->len) &&
		    !prefix_one_edit(k, kl, t->s, t->len - 1))
			return kl - 2;
	}
	return 0;
}

/*
 * Match entry e at text word i; words marked in used[] are not available.
 * Returns the score and sets *nw to the text words taken.
 */
static size_t
entry_match(const struct lex_entry *e, const struct fold_text *ft, size_t i,
    const bool *used, size_t typo_min, size_t *nw)
{
	size_t score = 0;

	if (used != NULL && used[i])
		return 0;
	/* Every way of matching keeps the first letter: cheap reject. */
	if (ft->w[i].s[0] != e->w[0][0])
		return 0;
	if (i + (size_t)e->nw <= ft->nw) {
		int j;
		for (j = 0; j < e->nw; j++) {
			size_t s;
			if (used != NULL && used[i + (size_t)j])
				break;
			s = word_match(e->w[j], e->wl[j], &ft->w[i + (size_t)j],
			    j == e->nw - 1, e->adj && j == e->nw - 1, typo_min);
			if (s == 0)
				break;
			score += s;
		}
		if (j == e->nw) {
			*nw = (size_t)e->nw;
			return score;
		}
	}
	if (e->joined != NULL) {
		/* No typos here: too many near-misses among run-together names. */
		score = word_match(e->joined, e->score, &ft->w[i], true, false,
		    SIZE_MAX);
		if (score > 0) {
			*nw = 1;
			return score;
		}
	}
	return 0;
}

/* ---- language --------------------------------------------------------- */

#define TABLE_KEY_MAX	32	/* skeleton of a built-in word: 12 at most */

struct langword {
	const char	*src;
	int		 ky, ru;	/* weights */
	char		 key[TABLE_KEY_MAX];	/* folded, filled once */
	size_t		 kl;
};

/*
 * Function words weigh 2; domain words 1, because Kyrgyz speech borrows
 * "свет", "мусор": "свет жок" is Kyrgyz.
 */
static struct langword langwords[] = {
	{ "жок", 2, 0, "", 0 }, { "эмес", 2, 0, "", 0 },
	{ "бар", 2, 0, "", 0 }, { "жана", 2, 0, "", 0 },
	{ "менен", 2, 0, "", 0 }, { "үчүн", 2, 0, "", 0 },
	{ "керек", 2, 0, "", 0 }, { "бүгүн", 2, 0, "", 0 },
	{ "кечээ", 2, 0, "", 0 }, { "эмне", 2, 0, "", 0 },
	{ "качан", 2, 0, "", 0 }, { "күн", 2, 0, "", 0 },
	{ "бери", 2, 0, "", 0 }, { "болду", 2, 0, "", 0 },
	{ "жатат", 2, 0, "", 0 }, { "турат", 2, 0, "", 0 },
	{ "келбей", 2, 0, "", 0 }, { "иштебей", 2, 0, "", 0 },
	{ "айыл", 2, 0, "", 0 }, { "көчө", 2, 0, "", 0 },
	{ "биз", 2, 0, "", 0 }, { "сураныч", 2, 0, "", 0 },
	{ "рахмат", 2, 0, "", 0 }, { "дагы", 2, 0, "", 0 },
	{ "жерде", 2, 0, "", 0 }, { "үй", 2, 0, "", 0 },
	{ "түнү", 2, 0, "", 0 }, { "апта", 2, 0, "", 0 },
	{ "чыгарбай", 2, 0, "", 0 }, { "чыкпай", 2, 0, "", 0 },
	{ "күйбөй", 2, 0, "", 0 }, { "ташылбай", 2, 0, "", 0 },
	{ "суу", 1, 0, "", 0 }, { "жарык", 1, 0, "", 0 },
	{ "таштанды", 1, 0, "", 0 }, { "чырак", 1, 0, "", 0 },
	{ "нет", 0, 2, "", 0 }, { "не", 0, 2, "", 0 },
	{ "уже", 0, 2, "", 0 }, { "на", 0, 2, "", 0 },
	{ "по", 0, 2, "", 0 }, { "для", 0, 2, "", 0 },
	{ "нас", 0, 2, "", 0 }, { "очень", 0, 2, "", 0 },
	{ "пожалуйста", 0, 2, "", 0 }, { "когда", 0, 2, "", 0 },
	{ "улице", 0, 2, "", 0 }, { "улица", 0, 2, "", 0 },
	{ "дней", 0, 2, "", 0 }, { "дня", 0, 2, "", 0 },
	{ "неделю", 0, 2, "", 0 }, { "горит", 0, 2, "", 0 },
	{ "работает", 0, 2, "", 0 }, { "вывозят", 0, 2, "", 0 },
	{ "сегодня", 0, 2, "", 0 }, { "вчера", 0, 2, "", 0 },
	{ "есть", 0, 2, "", 0 }, { "почему", 0, 2, "", 0 },
	{ "снова", 0, 2, "", 0 }, { "опять", 0, 2, "", 0 },
	{ "нужно", 0, 2, "", 0 }, { "мы", 0, 2, "", 0 },
	{ "течет", 0, 2, "", 0 }, { "сломан", 0, 2, "", 0 },
	{ "мусор", 0, 1, "", 0 }, { "вода", 0, 1, "", 0 },
	{ "свет", 0, 1, "", 0 }, { "вывоз", 0, 1, "", 0 },
	{ "освещение", 0, 1, "", 0 }, { "округ", 0, 2, "", 0 },
	{ "айыльный", 0, 2, "", 0 }, { "айыльном", 0, 2, "", 0 },
};

/* ---- commands ----------------------------------------------------------- */

struct verb {
	const char	*src;
	enum cmd_kind	 kind;
	char		 key[TABLE_KEY_MAX];	/* folded, filled once */
};

static struct verb verbs[] = {
	{ "ok", CMD_ACK, "" }, { "okay", CMD_ACK, "" },
	{ "ack", CMD_ACK, "" }, { "кабыл", CMD_ACK, "" },
	{ "кабыл алдым", CMD_ACK, "" }, { "кабыл алынды", CMD_ACK, "" },
	{ "принято", CMD_ACK, "" }, { "принял", CMD_ACK, "" },
	{ "приняла", CMD_ACK, "" }, { "принята", CMD_ACK, "" },
	{ "done", CMD_DONE, "" }, { "бүттү", CMD_DONE, "" },
	{ "бүтүрдүм", CMD_DONE, "" }, { "аткарылды", CMD_DONE, "" },
	{ "готово", CMD_DONE, "" }, { "выполнено", CMD_DONE, "" },
	{ "сделано", CMD_DONE, "" }, { "решено", CMD_DONE, "" },
	{ "fixed", CMD_DONE, "" },
	{ "info", CMD_INFO, "" }, { "маалымат", CMD_INFO, "" },
	{ "status", CMD_STATUS, "" }, { "абал", CMD_STATUS, "" },
	{ "no", CMD_REOPEN, "" }, { "жок", CMD_REOPEN, "" },
	{ "нет", CMD_REOPEN, "" },
};

/*
 * Words that do not stop a short reply from being a command: thanks
 * ("OK 4821 рахмат") and rating units ("5 баллов", "4 жылдыз").  Matched
 * as word prefixes of their skeleton.
 */
static struct verb fillers[] = {
	{ "рахмат", CMD_NONE, "" }, { "спасибо", CMD_NONE, "" },
	{ "спс", CMD_NONE, "" }, { "thanks", CMD_NONE, "" },
	{ "thank", CMD_NONE, "" }, { "балл", CMD_NONE, "" },
	{ "звезд", CMD_NONE, "" }, { "жылдыз", CMD_NONE, "" },
};

static pthread_once_t fold_once = PTHREAD_ONCE_INIT;

/* Fold the built-in word lists once (the fold may change, the lists not). */
static void
fold_into(char *dst, const char *src)
{
	char *k = fold_key(src);

	snprintf(dst, TABLE_KEY_MAX, "%s", k);	/* the tables are short */
	free(k);
}

static void
fold_tables(void)
{
	for (size_t i = 0; i < sizeof(langwords) / sizeof(langwords[0]); i++) {
		fold_into(langwords[i].key, langwords[i].src);
		langwords[i].kl = strlen(langwords[i].key);
	}
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		fold_into(verbs[i].key, verbs[i].src);
	for (size_t i = 0; i < sizeof(fillers) / sizeof(fillers[0]); i++)
		fold_into(fillers[i].key, fillers[i].src);
}

static bool
is_filler(const struct fold_word *w)
{
	for (size_t i = 0; i < sizeof(fillers) / sizeof(fillers[0]); i++)
		if (!w->digits && strncmp(w->s, fillers[i].key,
		    strlen(fillers[i].key)) == 0)
			return true;
	return false;
}

static enum norm_lang
detect_lang(const struct fold_text *ft)
{
	int ky = 0, ru = 0;

	if (ft->flags & FOLD_F_KY)
		ky += 3;
	if (ft->flags & FOLD_F_RU)
		ru += 1;
	for (size_t i = 0; i < ft->nw; i++) {
		const struct langword *best = NULL;

		/* The longest list word matching wins: айыльный over айыл. */
		for (size_t j = 0; j < sizeof(langwords) / sizeof(langwords[0]);
		    j++) {
			const struct langword *l = &langwords[j];
			if ((best == NULL || l->kl > best->kl) &&
			    l->key[0] == ft->w[i].s[0] &&
			    word_match(l->key, l->kl, &ft->w[i], true, false,
			    SIZE_MAX) == l->kl)
				best = l;
		}
		if (best != NULL) {
			ky += best->ky;
			ru += best->ru;
		}
	}
	if (ky > ru)
		return NORM_LANG_KY;
	if (ru > ky)
		return NORM_LANG_RU;
	return NORM_LANG_UNKNOWN;
}

/* ---- normalize ---------------------------------------------------------- */

struct place_match {
	const struct lex_entry *e;
	size_t		 score;
	size_t		 i, nw;		/* text words taken */
	bool		 drop;		/* read as a rayon, not a municipality */
};

struct rayon_match {
	const char	*rayon;		/* 14-digit rayon code */
	size_t		 i, nw;
	bool		 explicit_;	/* followed by "район"/"району" */
};

#define PLACE_MATCH_MAX	64	/* a message names a few places */

static void
add_candidate(struct norm_result *out, const char *soate)
{
	for (int i = 0; i < out->ncandidates; i++)
		if (strcmp(out->candidates[i], soate) == 0)
			return;
	if (out->ncandidates < NORM_MAX_CANDIDATES)
		memcpy(out->candidates[out->ncandidates++], soate, 15);
}

static bool
same_rayon(const char *a, const char *b)
{
	return memcmp(a, b, 8) == 0;
}

/*
 * True when the text names the rayon of soate: a rayon name, or another
 * unambiguous municipality (not pm[self]) of that rayon.
 */
static bool
rayon_named(const struct place_match *pm, size_t npm, size_t self,
    const struct rayon_match *rm, size_t nrm, const char *soate)
{
	for (size_t r = 0; r < nrm; r++)
		if (same_rayon(rm[r].rayon, soate))
			return true;
	for (size_t m = 0; m < npm; m++) {
		const char *o = pm[m].e->soate[0];
		if (m == self || pm[m].drop || pm[m].e->nsoate != 1 ||
		    pm[m].e == pm[self].e)
			continue;
		if (same_rayon(o, soate) && strcmp(o, soate) != 0)
			return true;
	}
	return false;
}

/*
 * A shared name qualified by its rayon ("Кызыл-Туу, Сузак району",
 * "Кызыл-Туу Аксыйского района") or by another, unambiguous place of the
 * same rayon ("Арал Ноокен") means the namesake in that rayon.  Returns
 * true and sets out when exactly one such reading exists.
 */
static bool
qualified_place(const struct place_match *pm, size_t npm,
    const struct rayon_match *rm, size_t nrm, struct norm_result *out)
{
	const char *pick = NULL;
	size_t pick_score = 0;

	for (size_t m = 0; m < npm; m++) {
		const char *hit = NULL;
		int nhit = 0;
		if (pm[m].drop || pm[m].e->nsoate < 2)
			continue;
		for (int s = 0; s < pm[m].e->nsoate; s++)
			if (rayon_named(pm, npm, m, rm, nrm, pm[m].e->soate[s])) {
				hit = pm[m].e->soate[s];
				nhit++;
			}
		if (nhit != 1)
			continue;
		if (pick != NULL && strcmp(pick, hit) != 0 &&
		    pm[m].score == pick_score)
			return false;	/* two readings: leave it to the caller */
		if (pick == NULL || pm[m].score > pick_score) {
			pick = hit;
			pick_score = pm[m].score;
		}
	}
	if (pick == NULL)
		return false;
	add_candidate(out, pick);
	memcpy(out->soate, pick, 15);
	return true;
}

/*
 * A municipality named like its rayon (Сузак, Ноокен, Базар-Коргон) is
 * read as the rayon when the text says "району"/"района" after it, or
 * names another municipality of that rayon ("Базар-Коргон району,
 * Арстанбап" is Arstanbap).  Sets pm[].drop.
 */
static void
drop_rayon_readings(struct place_match *pm, size_t npm,
    const struct rayon_match *rm, size_t nrm)
{
	for (size_t r = 0; r < nrm; r++) {
		bool other = false;

		for (size_t m = 0; m < npm && !other; m++)
			other = !(pm[m].i >= rm[r].i &&
			    pm[m].i < rm[r].i + rm[r].nw) &&
			    pm[m].e->nsoate >= 1 &&
			    same_rayon(pm[m].e->soate[0], rm[r].rayon);
		for (size_t m = 0; m < npm; m++)
			if (pm[m].i >= rm[r].i && pm[m].i < rm[r].i + rm[r].nw &&
			    (rm[r].explicit_ || other))
				pm[m].drop = true;
	}
}

static void
find_places(const struct lexicon *lx, const struct fold_text *ft, bool *used,
    struct norm_result *out)
{
	struct place_match pm[PLACE_MATCH_MAX];
	struct rayon_match rm[PLACE_MATCH_MAX];
	size_t npm = 0, nrm = 0, best = 0;

	for (size_t i = 0; i < ft->nw; i++) {
		/* "айыл кеңеши", "айыл өкмөтү": village council, not Kengesh */
		if (i > 0 && strcmp(ft->w[i - 1].s, "aiil") == 0)
			continue;
		for (size_t k = 0; k < lx->npl && npm < PLACE_MATCH_MAX; k++) {
			size_t nw, s = entry_match(&lx->pl[k], ft, i, NULL,
			    TYPO_MIN_PLACE, &nw);
			if (s == 0)
				continue;
			pm[npm] = (struct place_match){ &lx->pl[k], s, i, nw,
			    false };
			npm++;
			for (size_t j = 0; j < nw; j++)
				used[i + j] = true;
		}
		for (size_t k = 0; k < lx->nry && nrm < PLACE_MATCH_MAX; k++) {
			size_t nw, s = entry_match(&lx->ry[k], ft, i, NULL,
			    TYPO_MIN_PLACE, &nw);
			if (s == 0)
				continue;
			for (int r = 0; r < lx->ry[k].nsoate &&
			    nrm < PLACE_MATCH_MAX; r++) {
				rm[nrm] = (struct rayon_match){
				    lx->ry[k].soate[r], i, nw,
				    i + nw < ft->nw &&
				    strncmp(ft->w[i + nw].s, "raion", 5) == 0 };
				nrm++;
			}
			for (size_t j = 0; j < nw; j++)
				used[i + j] = true;
		}
	}
	if (out->soate[0] != '\0')
		return;		/* an explicit code was given */
	drop_rayon_readings(pm, npm, rm, nrm);
	if (qualified_place(pm, npm, rm, nrm, out))
		return;
	/* Otherwise the longest name; equally long names are all candidates. */
	for (size_t m = 0; m < npm; m++)
		if (!pm[m].drop && pm[m].score > best)
			best = pm[m].score;
	for (size_t m = 0; m < npm; m++)
		if (!pm[m].drop && pm[m].score == best)
			for (int s = 0; s < pm[m].e->nsoate; s++)
				add_candidate(out, pm[m].e->soate[s]);
	if (out->ncandidates == 1)
		memcpy(out->soate, out->candidates[0], 15);
}

static void
find_category(const struct lexicon *lx, const struct fold_text *ft,
    const bool *used, struct norm_result *out)
{
	size_t score[CAT_MAX] = { 0 };
	size_t pos[CAT_MAX] = { 0 };	/* next free word per category */
	int best = -1;

	for (size_t i = 0; i < ft->nw; i++) {
		size_t bs[CAT_MAX] = { 0 }, bn[CAT_MAX] = { 0 };

		for (size_t k = 0; k < lx->nkw; k++) {
			const struct lex_entry *e = &lx->kw[k];
			size_t nw, s;
			if (pos[e->cat] > i)
				continue;
			s = entry_match(e, ft, i, used, TYPO_MIN_KEYWORD, &nw);
			if (s > bs[e->cat]) {
				bs[e->cat] = s;
				bn[e->cat] = nw;
			}
		}
		for (int c = 0; c < lx->ncat; c++)
			if (bs[c] > 0) {
				score[c] += bs[c];
				pos[c] = i + bn[c];
			}
	}
	for (int c = 0; c < lx->ncat; c++)
		if (score[c] > 0 && (best < 0 || score[c] > score[best]))
			best = c;
	if (best >= 0)
		strcpy(out->category, lx->cat[best]);
}

void
normalize_text(const struct lexicon *lx, const char *text, size_t len,
    struct norm_result *out)
{
	struct fold_text ft;
	bool used[FOLD_MAX_WORDS] = { false };

	pthread_once(&fold_once, fold_tables);
	memset(out, 0, sizeof(*out));
	fold_init(&ft);
	fold_text(&ft, text, len);
	for (size_t i = 0; i < ft.nw; i++)
		if (ft.w[i].digits && ft.w[i].len == 14 &&
		    strncmp(ft.w[i].s, "417", 3) == 0) {
			memcpy(out->soate, ft.w[i].s, 15);
			add_candidate(out, out->soate);
			break;
		}
	if (lx != NULL) {
		find_places(lx, &ft, used, out);
		find_category(lx, &ft, used, out);
	}
	out->lang = detect_lang(&ft);
	fold_release(&ft);
}

const char *
norm_lang_code(enum norm_lang lang)
{
	switch (lang) {
	case NORM_LANG_KY: return "ky";
	case NORM_LANG_RU: return "ru";
	default: return "";
	}
}

/*
 * A command is the whole message: a verb (one or two words), optionally
 * followed or preceded by one ticket number; or a lone digit.  Anything
 * else ("нет воды 3 дня") is a complaint.  Punctuation, emoji, thanks and
 * rating units ("5 баллов") do not count as words.
 */
bool
command_parse(const char *text, size_t len, struct command *out)
{
	struct fold_text ft;
	const struct fold_word *w;
	size_t nw, first = 0, vn = 0;
	const char *ticket = NULL;
	enum cmd_kind kind = CMD_NONE;

	pthread_once(&fold_once, fold_tables);
	memset(out, 0, sizeof(*out));
	fold_init(&ft);
	if (len > 256)
		goto done;	/* a command is short; this is a complaint */
	fold_text(&ft, text, len);
	/* Drop thanks and rating units, keeping the other words in order. */
	nw = 0;
	for (size_t i = 0; i < ft.nw; i++)
		if (!is_filler(&ft.w[i]))
			ft.w[nw++] = ft.w[i];
	w = ft.w;
	if (nw == 0 || nw > 3)
		goto done;
	if (nw == 1 && w[0].digits && w[0].len == 1) {
		if (w[0].s[0] == '0')
			kind = CMD_REOPEN;
		else if (w[0].s[0] >= '1' && w[0].s[0] <= '5') {
			kind = CMD_RATE;
			out->rating = w[0].s[0] - '0';
		}
		goto done;
	}
	/* A ticket may come first ("4821 OK") or last ("OK 4821"). */
	if (nw == 2 && w[0].digits && w[1].digits &&
	    strcmp(w[0].s, "0") == 0) {
		kind = CMD_REOPEN;	/* "0 4821" */
		ticket = w[1].s;
		goto ticket;
	}
	if (w[0].digits && nw > 1) {
		ticket = w[0].s;
		first = 1;
	} else if (w[nw - 1].digits) {
		ticket = w[nw - 1].s;
		nw--;
	}
	vn = nw - first;
	if (vn >= 1 && vn <= 2) {
		char phrase[128];	/* a verb is at most two short words */
		size_t o = 0;

		for (size_t i = first; i < nw; i++) {
			if (w[i].digits || o + w[i].len + 2 > sizeof(phrase))
				goto done;
			if (o > 0)
				phrase[o++] = ' ';
			memcpy(phrase + o, w[i].s, w[i].len);
			o += w[i].len;
		}
		phrase[o] = '\0';
		for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
			if (strcmp(verbs[i].key, phrase) == 0) {
				kind = verbs[i].kind;
				break;
			}
	}
ticket:
	if (kind != CMD_NONE && ticket != NULL) {
		if (strlen(ticket) >= sizeof(out->ticket))
			kind = CMD_NONE;
		else
			strcpy(out->ticket, ticket);
	}
done:
	out->kind = kind;
	fold_release(&ft);
	return kind != CMD_NONE;
}
