/* route.c -- the route table (see route.h). Suffix rules: a hash of every
 * rule's suffix, probed once per label count that some rule has, hashed
 * from the query name's end and case-folded on the fly; a bit set of the
 * rules' first label words (the front filter) passes over most suffixes no
 * rule has before they are hashed. Regex rules: each pattern's literal
 * tail (the text right before a final '$', e.g. ".shard5.example." of
 * '^[ab]*\.shard5\.example\.$') indexes it, so a name tries only the
 * regexes whose tail it ends with, plus those without one, still in file
 * order; a bit set of the tails' last labels passes over the index for
 * most names. Where to start: route_lookup, at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libknot/libknot.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "route/route.h"

/* Tails are cut to one of these lengths (a tail's own suffix is required
 * too), so a name is hashed at no more than a few lengths. */
static const uint8_t TAIL_LENS[] = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32};
#define TAIL_MAX 32

struct rule {
	const struct route_conf *rc;
	bool has_conditions; /* rc has a qtype or client condition */
	pcre2_code *re;      /* regex rules */
	bool is_jit;         /* re is JIT-compiled: pcre2_jit_match */
	struct rule *next;   /* suffix rules: the next (in file order) for the same suffix */
};

/* One suffix: its rules, and what find() compares on a hash match. */
struct entry {
	const uint8_t *suffix; /* lower-case wire form (the rule's) */
	uint32_t len;          /* its length in bytes */
	struct rule *rules;    /* in file order */
};

/* 8 bytes a slot, so that the probe of a name no rule has (the common
 * case: one slot read) touches as little of the table as it can. */
struct bucket {
	uint32_t hash;         /* finish() of the entry's suffix */
	uint32_t ent;          /* 1 + index into entries; 0: empty */
};

/* The regexes (ascending indexes into regex_rules) whose match must end
 * with text (lower case, len bytes). */
struct tail {
	char text[TAIL_MAX];
	uint32_t hash;         /* 0 and n == 0: empty slot */
	uint32_t len;
	uint32_t *idx;
	uint32_t n;
};

struct route_table {
	struct bucket *buckets;  /* open addressing, mask + 1 of them */
	uint32_t mask;
	struct entry *entries;   /* one per distinct suffix */
	uint32_t n_entries;
	uint64_t depths[2];      /* bit d: some suffix rule has d labels (d < 128) */
	uint64_t *fronts;        /* bit front_bit(): some rule's suffix starts so (front_may_be) */
	unsigned fronts_shift;   /* 64 - log2 of the bits in fronts */
	struct rule *suffix_rules;
	size_t n_suffix;
	struct rule *regex_rules; /* file order */
	size_t n_regex;
	struct tail *tails;      /* open addressing, tail_mask + 1 of them */
	uint32_t tail_mask;
	uint64_t tail_lens;      /* bit L: some tail has L bytes */
	unsigned tail_max;       /* the longest tail */
	uint64_t last8[16];      /* bit (mix of a tail's last 8 bytes) >> 54: some tail ends so */
	bool has_short_tail;     /* a tail under 8 bytes: no last8 filter */
	uint64_t tail_keys[4];   /* bit tail_bit(the last 8 bytes of "L."): some tail ends ".L." */
	bool has_unkeyed_tail;   /* a tail that may end a text without that form: no tail_keys filter */
	uint32_t *untailed;      /* indexes of the regexes without a tail, ascending */
	uint32_t n_untailed;
	struct rule *root_rules;  /* "suffix: .", file order */
	size_t n_root;
	uint8_t lower[256];      /* a byte as a lower-case ASCII letter, itself otherwise */
	/* make_text: the byte's text (low 8 bits), + 1 << 16 for a dot, + 1 << 24
	 * for a byte libknot escapes; summed over at most 254 bytes, the text
	 * bytes stay under 1 << 16 and the counts in their own byte each */
	uint32_t text_map[256];
	uint8_t plain[256];      /* a label byte as knot_dname_to_str writes it, lower case; 0: escaped; make_text: "." */
};

struct route_scratch {
	pcre2_match_data *md;
};

/* Names are hashed 8 bytes at a time (the last word overlapping the one
 * before when the length is not a multiple of 8), each word case-folded
 * first with SWAR, so that a query name needs no lower-case copy and a
 * 20-byte suffix costs three words, not twenty bytes. */
static uint64_t load8(const uint8_t *p)
{
	uint64_t w;
	memcpy(&w, p, sizeof(w));
	return w;
}

/* w with every byte 'A'..'Z' made lower case (+0x20), the others kept. */
static uint64_t fold8(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	uint64_t low7 = w & ~high;
	uint64_t ge_a = low7 + (0x80 - 'A') * ones;     /* high bit: byte >= 'A' */
	uint64_t gt_z = low7 + (0x80 - 'Z' - 1) * ones; /* high bit: byte > 'Z' */
	return w | ((ge_a & ~gt_z & ~w & high) >> 2);
}

/* The 32 bits a table is keyed by, from a multiplicative hash h: a
 * product's low bits depend only on its factor's low bits (the first
 * bytes of the last word), so its high half is folded in and mixed again
 * before the high half is taken. Without it, 100 tails '.shardN.example.'
 * (the same first 5 bytes in each word) fell onto two probe chains. */
static inline uint32_t hash_key(uint64_t h)
{
	h ^= h >> 32;
	h *= 0xbf58476d1ce4e5b9ull;
	return (uint32_t)(h >> 32);
}

static uint32_t hash_bytes(const uint8_t *p, size_t n)
{
	const uint64_t k = 0x9e3779b97f4a7c15ull;
	uint64_t h = (n + 1) * k;
	if (n < 8) {
		uint64_t w = 0;
		for (size_t i = 0; i < n; i++)
			w |= (uint64_t)p[i] << (8 * i);
		h = (h ^ fold8(w)) * k;
	} else {
		size_t i = 0;
		for (; i + 8 <= n; i += 8)
			h = (h ^ fold8(load8(p + i))) * k;
		if (i < n)
			h = (h ^ fold8(load8(p + n - 8))) * k;
	}
	return hash_key(h);
}

/* Where each label of wire name n starts; their count. */
static unsigned label_offsets(const uint8_t *n, uint8_t off[KNOT_DNAME_MAXLABELS])
{
	unsigned k = 0;
	for (unsigned o = 0; n[o]; o += n[o] + 1u)
		off[k++] = (uint8_t)o;
	return k;
}

/* ---- suffix hashes ----
 * A suffix is hashed 8 bytes at a time from its end, which is the query
 * name's end: its words are the name's last words, the same for every
 * suffix of the name, so one walk over them serves the hashes of all the
 * suffixes probed, shortest to longest (each word read once), then the
 * 0-7 bytes in front of a suffix's last full word finish its hash. Each
 * word is ORed with 0x20 in every byte: 'A'..'Z' become 'a'..'z' (and
 * a few other bytes fall onto each other, a rare false hit that
 * same_name() refuses), so the name needs no lower-case copy. */
#define HASH_K 0x9e3779b97f4a7c15ull
#define HASH_SEED 0x243f6a8885a308d3ull
#define FOLD_HASH 0x2020202020202020ull

/* h continued with the words of name n (len bytes) from its end, 8 bytes
 * at a time from *rolled bytes (a multiple of 8) on, until the suffix of
 * slen bytes has no whole word left; *rolled: the bytes taken. */
static inline __attribute__((always_inline)) uint64_t roll(uint64_t h, const uint8_t *n, unsigned len,
							   unsigned slen, unsigned *rolled)
{
	const uint8_t *p = n + len - *rolled, *front = n + len - slen;
	while (p - front >= 8) {
		p -= 8;
		h = (h ^ (load8(p) | FOLD_HASH)) * HASH_K;
	}
	*rolled = (unsigned)(n + len - p);
	return h;
}

/* The r bytes n[from..from + r) (r <= 8) of a name of len bytes as a
 * little-endian word, zero above, read without touching a byte outside
 * the name: the 8 bytes that end where they end, or the name's first 8. */
static inline __attribute__((always_inline)) uint64_t bytes_at(const uint8_t *n, unsigned from, unsigned r,
							       unsigned len)
{
	uint64_t w = 0;
	if (r && from + r >= 8)
		return load8(n + from + r - 8) >> (64 - 8 * r);
	if (r && len >= 8)
		return (load8(n) >> (8 * from)) & ((1ull << (8 * r)) - 1);
	for (unsigned i = 0; i < r; i++) /* a name of under 8 bytes */
		w |= (uint64_t)n[from + i] << (8 * i);
	return w;
}

/* The low r bytes of a word (r < 8). */
static const uint64_t LOW_BYTES[8] = {0, 0xff, 0xffff, 0xffffff, 0xffffffff, 0xffffffffffull, 0xffffffffffffull,
				      0xffffffffffffffull};

/* The key of the suffix of slen bytes of name n (len bytes), from h with
 * its whole words rolled in: the slen % 8 bytes in front of them and the
 * length finish it. A suffix of 8 bytes or more has its first 8 inside the
 * name; a shorter one is read as bytes_at() reads. */
static inline __attribute__((always_inline)) uint32_t finish(uint64_t h, const uint8_t *n, unsigned len,
							     unsigned slen)
{
	uint64_t w = slen >= 8 ? load8(n + len - slen) & LOW_BYTES[slen % 8] : bytes_at(n, len - slen, slen, len);
	return hash_key((h ^ (w | FOLD_HASH) ^ slen) * HASH_K);
}

/* A whole wire name's (len bytes) hash, as the lookup makes it. */
static uint32_t suffix_hash(const uint8_t *n, unsigned len)
{
	unsigned rolled = 0;
	return finish(roll(HASH_SEED, n, len, len, &rolled), n, len, len);
}

/* ---- the front filter ----
 * Before a suffix of d labels is hashed whole, its first label's first
 * bytes (up to 8, with the length byte) and d are looked up in a bit set
 * of every rule's: a name whose suffix of d labels starts as no rule's
 * does costs one word and one bit, not a hash of the whole suffix and a
 * probe. With 16 bits per rule, about 3 % of such names pass anyway. */
static inline __attribute__((always_inline)) uint64_t front_word(const uint8_t *n, unsigned front, unsigned len)
{
	unsigned m = n[front] < 7 ? n[front] + 1u : 8;
	if (front + 8 <= len)
		return load8(n + front) & (m == 8 ? ~0ull : LOW_BYTES[m]);
	return bytes_at(n, front, m, len);
}

static inline unsigned front_bit(const struct route_table *t, unsigned d, uint64_t w)
{
	return (unsigned)((((w | FOLD_HASH) ^ d) * HASH_K) >> t->fronts_shift);
}

static inline bool front_may_be(const struct route_table *t, unsigned d, const uint8_t *n, unsigned front,
				unsigned len)
{
	unsigned bit = front_bit(t, d, front_word(n, front, len));
	return t->fronts[bit / 64] & (1ull << (bit % 64));
}

/* a (any case) and b (lower case) are the same len bytes, as case-blind
 * DNS compares them. */
static bool same_folded(const uint8_t *a, const uint8_t *b, uint32_t len)
{
	if (len < 8) {
		uint64_t wa = 0, wb = 0;
		for (uint32_t i = 0; i < len; i++) {
			wa |= (uint64_t)a[i] << (8 * i);
			wb |= (uint64_t)b[i] << (8 * i);
		}
		return fold8(wa) == wb;
	}
	uint64_t diff = 0;
	uint32_t i = 0;
	for (; i + 8 <= len; i += 8)
		diff |= fold8(load8(a + i)) ^ load8(b + i);
	return !(diff | (fold8(load8(a + len - 8)) ^ load8(b + len - 8)));
}

/* The same, trying the bytes as they are first: most names are asked in
 * lower case. */
static bool same_name(const uint8_t *a, const uint8_t *b, uint32_t len)
{
	if (len >= 8) {
		uint64_t diff = load8(a + len - 8) ^ load8(b + len - 8);
		for (uint32_t i = 0; i + 8 <= len; i += 8)
			diff |= load8(a + i) ^ load8(b + i);
		if (!diff)
			return true;
	}
	return same_folded(a, b, len);
}

/* The slot of suffix n (any case, len bytes, key h): its entry's, or the
 * empty one where it would go (building the table; probe() is the
 * lookup's). */
static struct bucket *find(const struct route_table *t, const uint8_t *n, uint32_t len, uint32_t h)
{
	for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
		struct bucket *b = &t->buckets[i];
		if (!b->ent)
			return b;
		const struct entry *e = &t->entries[b->ent - 1];
		if (b->hash == h && e->len == len && same_name(n, e->suffix, len))
			return b;
	}
}

static __attribute__((noinline)) bool conditions_hold(const struct route_conf *rc, uint16_t qtype,
						      const struct sockaddr *client)
{
	if (rc->n_qtypes) {
		bool any = false;
		for (unsigned i = 0; i < rc->n_qtypes && !any; i++)
			any = rc->qtypes[i] == qtype;
		if (!any)
			return false;
	}
	return !rc->clients || (client && config_addr_match(rc->clients, client));
}

static struct rule *first_that_holds(struct rule *r, uint16_t qtype, const struct sockaddr *client)
{
	for (; r; r = r->next)
		if (!r->has_conditions || conditions_hold(r->rc, qtype, client))
			return r;
	return NULL;
}

/* ---- regex tails ---- */

/* Past the character class that starts at p[i] ('['), as PCRE2 reads it:
 * a ']' first is a literal, so are escapes, and [:name:] is one item. */
static size_t skip_class(const char *p, size_t i)
{
	i++;
	if (p[i] == '^')
		i++;
	if (p[i] == ']')
		i++;
	while (p[i] && p[i] != ']') {
		if (p[i] == '\\' && p[i + 1])
			i += 2;
		else if (p[i] == '[' && p[i + 1] == ':' && strstr(p + i + 2, ":]"))
			i = (size_t)(strstr(p + i + 2, ":]") - p) + 2;
		else
			i++;
	}
	return p[i] ? i + 1 : i;
}

/* The literal text every match of regex p must end with (lower case, into
 * out, cut to the longest of TAIL_LENS it holds: its last bytes; and into
 * whole, uncut but for TAIL_MAX, *whole_len bytes), or 0 when there is none
 * this reader is sure of. Sure means: p ends with an unescaped '$' right
 * after a run of plain literals (letters, digits, '-', '_', escaped
 * punctuation) that no quantifier follows, and p has no alternation, no
 * (?...) or (*...) (options such as x change what the text means) and no
 * \Q. The subject never holds a newline (knot_dname_to_str escapes it), so
 * '$' is its end. Anything else: 0, and the regex is tried for every name. */
static size_t literal_tail(const char *p, char out[TAIL_MAX], char whole[TAIL_MAX], size_t *whole_len)
{
	size_t len = strlen(p), i = 0, run = 0;
	char buf[TAIL_MAX];
	if (len < 2 || p[len - 1] != '$')
		return 0;
	while (i < len - 1) {
		char c = p[i], n = p[i + 1];
		if (c == '\\') {
			if (n == 'Q' || (unsigned char)n >= 0x80)
				return 0;
			if ((n >= '0' && n <= '9') || (n >= 'a' && n <= 'z') || (n >= 'A' && n <= 'Z')) {
				run = 0; /* a class, a backreference, an assertion ... */
			} else {
				buf[run % TAIL_MAX] = n;
				run++;
			}
			i += 2;
			continue;
		}
		if (c == '[') {
			i = skip_class(p, i);
			run = 0;
			continue;
		}
		if (c == '|' || (c == '(' && (n == '?' || n == '*')))
			return 0;
		if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_') {
			buf[run % TAIL_MAX] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
			run++;
		} else {
			run = 0; /* '.', a quantifier (the literal before it is not required), a group ... */
		}
		i++;
	}
	if (i != len - 1) /* the '$' was escaped or inside a class */
		return 0;
	size_t keep = run < TAIL_MAX ? run : TAIL_MAX, cut = 0;
	for (size_t j = 0; j < sizeof(TAIL_LENS); j++)
		if (TAIL_LENS[j] <= keep)
			cut = TAIL_LENS[j];
	for (size_t j = 0; j < cut; j++)
		out[j] = buf[(run - cut + j) % TAIL_MAX];
	for (size_t j = 0; j < keep; j++)
		whole[j] = buf[(run - keep + j) % TAIL_MAX];
	*whole_len = keep;
	return cut;
}

static struct tail *tail_find(const struct route_table *t, const char *text, uint32_t len, uint32_t h)
{
	for (uint32_t i = h & t->tail_mask;; i = (i + 1) & t->tail_mask) {
		struct tail *x = &t->tails[i];
		if (!x->n || (x->hash == h && x->len == len && memcmp(x->text, text, len) == 0))
			return x;
	}
}

static unsigned last8_bit(uint64_t w)
{
	return (unsigned)((w * 0x9e3779b97f4a7c15ull) >> 54);
}

static unsigned tail_bit(uint64_t w)
{
	return (unsigned)(((w | FOLD_HASH) * HASH_K) >> 56);
}

/* A tail "X.L." (L a last label of plain characters) can end the text of
 * a name only if the name's last label is L (case aside), or holds a dot
 * of its own: libknot writes a dot inside a label as "\." and every other
 * byte it escapes with a backslash, so the ".L" before the final dot is
 * either the label boundary and L itself, or a "\." and the bytes after
 * a '.' in the last label. The last 8 bytes of the wire form of "L." (all
 * of them when fewer) pick a bit of tail_keys: 1 with that bit in *key; 0
 * when the tail cannot end any text (every text ends with '.'); -1 when
 * it has another form (no dot before L, an empty L, a character libknot
 * escapes). */
static int tail_key(const struct route_table *t, const char *text, size_t len, uint32_t *key)
{
	if (text[len - 1] != '.')
		return 0;
	size_t from = len - 1;
	while (from > 0 && text[from - 1] != '.')
		from--;
	if (from == 0 || from == len - 1)
		return -1;
	uint8_t wire[TAIL_MAX + 2];
	size_t n = len - 1 - from;
	wire[0] = (uint8_t)n;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = (uint8_t)text[from + i];
		if (!t->plain[c] || c == '.')
			return -1;
		wire[1 + i] = c;
	}
	wire[1 + n] = 0;
	unsigned wlen = (unsigned)n + 2, m = wlen < 8 ? wlen : 8;
	*key = tail_bit(bytes_at(wire, wlen - m, m, wlen));
	return 1;
}

/* The tail index over the compiled regex rules: each regex with a tail is
 * listed under it, the others in untailed. */
static int build_tails(struct route_table *t)
{
	uint32_t size = 16;
	while (size < 2 * t->n_regex + 2)
		size *= 2;
	t->tail_mask = size - 1;
	t->tails = calloc(size, sizeof(*t->tails));
	t->untailed = calloc(t->n_regex + 1, sizeof(*t->untailed));
	if (!t->tails || !t->untailed)
		return -ENOMEM;
	for (uint32_t i = 0; i < t->n_regex; i++) {
		char text[TAIL_MAX], whole[TAIL_MAX];
		size_t whole_len, len = literal_tail(t->regex_rules[i].rc->regex, text, whole, &whole_len);
		if (!len) {
			t->untailed[t->n_untailed++] = i;
			continue;
		}
		uint32_t h = hash_bytes((const uint8_t *)text, len);
		struct tail *x = tail_find(t, text, (uint32_t)len, h);
		if (!x->n) {
			memcpy(x->text, text, len);
			x->hash = h;
			x->len = (uint32_t)len;
		}
		uint32_t *idx = realloc(x->idx, (x->n + 1) * sizeof(*idx));
		if (!idx)
			return -ENOMEM;
		idx[x->n++] = i;
		x->idx = idx;
		t->tail_lens |= 1ull << len;
		uint32_t key;
		int kind = tail_key(t, whole, whole_len, &key);
		if (kind > 0)
			t->tail_keys[key / 64] |= 1ull << (key % 64);
		else if (kind < 0)
			t->has_unkeyed_tail = true;
		if (len < 8) {
			t->has_short_tail = true;
		} else {
			unsigned bit = last8_bit(load8((const uint8_t *)text + len - 8));
			t->last8[bit / 64] |= 1ull << (bit % 64);
		}
		if (len > t->tail_max)
			t->tail_max = (unsigned)len;
	}
	return 0;
}

/* ---- the table ---- */

/* lower[] and plain[]: plain[b] is b (lower case) when knot_dname_to_str
 * writes the byte b of a label as itself, 0 when it escapes it -- asked of
 * libknot itself, so the fast text path below writes what it would. */
static void build_maps(struct route_table *t)
{
	for (unsigned b = 0; b < 256; b++) {
		t->lower[b] = (uint8_t)(b >= 'A' && b <= 'Z' ? b - 'A' + 'a' : b);
		uint8_t wire[3] = {1, (uint8_t)b, 0};
		char text[8];
		if (b && knot_dname_to_str(text, wire, sizeof(text)) && text[0] == (char)b && strcmp(text + 1, ".") == 0)
			t->plain[b] = t->lower[b];
	}
	t->plain['.'] = '.'; /* make_text's own dots; one inside a label is counted */
	for (unsigned b = 0; b < 256; b++) {
		bool listed = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || b == '-' ||
			      b == '_' || b == '*' || b == '/' || b == '.';
		if (listed != (t->plain[b] != 0))
			t->has_short_tail = true; /* not the libknot last8_may_match knows: no filter */
	}
	for (unsigned b = 0; b < 256; b++)
		t->text_map[b] = t->plain[b] ? t->plain[b] | (b == '.' ? 1u << 16 : 0) : 1u << 24;
}

static int add_regex(struct route_table *t, const struct route_conf *rc, char *err, size_t errlen)
{
	struct rule *r = &t->regex_rules[t->n_regex++];
	int code;
	PCRE2_SIZE off;
	r->rc = rc;
	r->has_conditions = rc->n_qtypes || rc->clients;
	r->re = pcre2_compile((PCRE2_SPTR)rc->regex, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &code, &off, NULL);
	if (!r->re) {
		snprintf(err, errlen, "route at line %u: regex '%s' does not compile", rc->line, rc->regex);
		return -EINVAL;
	}
	/* without JIT (not built in, no executable memory) the interpreter runs it */
	r->is_jit = pcre2_jit_compile(r->re, PCRE2_JIT_COMPLETE) == 0;
	return 0;
}

static void add_suffix(struct route_table *t, const struct route_conf *rc, struct rule **tails)
{
	struct rule *r = &t->suffix_rules[t->n_suffix++];
	uint8_t off[KNOT_DNAME_MAXLABELS];
	unsigned k = label_offsets(rc->suffix, off);
	uint32_t len = (uint32_t)knot_dname_size(rc->suffix), h = suffix_hash(rc->suffix, len);
	r->rc = rc;
	r->has_conditions = rc->n_qtypes || rc->clients;
	t->depths[k / 64] |= 1ull << (k % 64);
	unsigned bit = front_bit(t, k, front_word(rc->suffix, 0, len));
	t->fronts[bit / 64] |= 1ull << (bit % 64);
	struct bucket *b = find(t, rc->suffix, len, h);
	if (!b->ent) {
		struct entry *e = &t->entries[t->n_entries++];
		e->suffix = rc->suffix;
		e->len = len;
		e->rules = r;
		b->hash = h;
		b->ent = t->n_entries;
	} else {
		tails[b->ent - 1]->next = r;
	}
	tails[b->ent - 1] = r;
}

struct route_table *route_table_new(const struct config *c, char *err, size_t errlen)
{
	struct route_table *t = calloc(1, sizeof(*t));
	struct rule **tails = NULL;
	if (!t)
		goto nomem;
	build_maps(t);
	size_t n_s = 0, n_r = 0, n_root = 0;
	for (size_t i = 0; i < c->n_routes; i++) {
		const struct route_conf *rc = &c->routes[i];
		if (rc->kind == ROUTE_REGEX)
			n_r++;
		else if (rc->suffix[0] == 0)
			n_root++;
		else
			n_s++;
	}
	uint32_t size = 16;
	while (size < 2 * n_s + 2)
		size *= 2;
	t->mask = size - 1;
	t->buckets = calloc(size, sizeof(*t->buckets));
	unsigned log2_bits = 6;
	while ((1ull << log2_bits) < 16 * n_s)
		log2_bits++;
	t->fronts_shift = 64 - log2_bits;
	t->fronts = calloc((1ull << log2_bits) / 64, sizeof(*t->fronts));
	t->entries = calloc(n_s + 1, sizeof(*t->entries));
	t->suffix_rules = calloc(n_s + 1, sizeof(struct rule));
	t->regex_rules = calloc(n_r + 1, sizeof(struct rule));
	t->root_rules = calloc(n_root + 1, sizeof(struct rule));
	/* file order is kept within each kind; a suffix's rules chain in it */
	tails = calloc(n_s + 1, sizeof(*tails)); /* by entry */
	if (!t->buckets || !t->fronts || !t->entries || !t->suffix_rules || !t->regex_rules || !t->root_rules || !tails)
		goto nomem;
	for (size_t i = 0; i < c->n_routes; i++) {
		const struct route_conf *rc = &c->routes[i];
		if (rc->kind == ROUTE_REGEX) {
			if (add_regex(t, rc, err, errlen) < 0)
				goto fail;
		} else if (rc->suffix[0] == 0) {
			struct rule *r = &t->root_rules[t->n_root];
			r->rc = rc;
			r->has_conditions = rc->n_qtypes || rc->clients;
			if (t->n_root)
				t->root_rules[t->n_root - 1].next = r;
			t->n_root++;
		} else {
			add_suffix(t, rc, tails);
		}
	}
	if (build_tails(t) < 0)
		goto nomem;
	free(tails);
	return t;
nomem:
	snprintf(err, errlen, "out of memory building the route table");
fail:
	free(tails);
	route_table_free(t);
	return NULL;
}

void route_table_free(struct route_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; t->regex_rules && i < t->n_regex; i++)
		pcre2_code_free(t->regex_rules[i].re);
	for (uint32_t i = 0; t->tails && i <= t->tail_mask; i++)
		free(t->tails[i].idx);
	free(t->tails);
	free(t->untailed);
	free(t->buckets);
	free(t->fronts);
	free(t->entries);
	free(t->suffix_rules);
	free(t->regex_rules);
	free(t->root_rules);
	free(t);
}

struct route_scratch *route_scratch_new(const struct route_table *t)
{
	struct route_scratch *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (t && t->n_regex && !(s->md = pcre2_match_data_create(1, NULL))) {
		free(s);
		return NULL;
	}
	return s;
}

void route_scratch_free(struct route_scratch *s)
{
	if (!s)
		return;
	pcre2_match_data_free(s->md);
	free(s);
}

/* ---- lookup ---- */

/* The query name, as the lookup sees it. */
struct qname {
	const uint8_t *wire;    /* any case */
	uint32_t len;           /* wire length */
	unsigned k;             /* labels (the root not counted) */
	const uint8_t *off;     /* where each starts (route_lookup's) */
	char text[KNOT_DNAME_TXT_MAXLEN + 1]; /* lower case, final dot; made when a regex runs */
	size_t text_len;
	bool has_text;
};

/* The entry of slot ent if it holds suffix n (any case, len bytes); NULL:
 * another suffix with the same key. Out of line: the probe stays small. */
static __attribute__((noinline)) const struct entry *entry_of(const struct route_table *t, uint32_t ent,
							      const uint8_t *n, uint32_t len)
{
	const struct entry *e = &t->entries[ent - 1];
	return e->len == len && same_name(n, e->suffix, len) ? e : NULL;
}

/* The suffix of name n (len bytes) that starts at front: its rule (kept
 * in *best if one holds) when the table has it. *h and *rolled: the hash
 * so far, of the name's last *rolled bytes (roll). */
static inline __attribute__((always_inline)) void probe(const struct route_table *t, const uint8_t *n,
							unsigned len, unsigned front, uint64_t *h, unsigned *rolled,
							uint16_t qtype, const struct sockaddr *client,
							const struct rule **best)
{
	unsigned slen = len - front;
	*h = roll(*h, n, len, slen, rolled);
	uint32_t key = finish(*h, n, len, slen);
	for (uint32_t i = key & t->mask;; i = (i + 1) & t->mask) {
		struct bucket b = t->buckets[i];
		if (!b.ent)
			return;
		const struct entry *e = b.hash == key ? entry_of(t, b.ent, n + front, slen) : NULL;
		if (e) {
			const struct rule *r = first_that_holds(e->rules, qtype, client);
			*best = r ? r : *best;
			return;
		}
	}
}

/* The probes of the label counts in bits (bit i: base + i labels) of
 * name n (len bytes, k labels at off[]), shortest first, each passed over
 * when front_may_be() says no rule's suffix of that many labels starts so. */
static inline __attribute__((always_inline)) void probe_depths(const struct route_table *t, const uint8_t *n,
							       unsigned len, const uint8_t *off, unsigned k,
							       unsigned base, uint64_t bits, uint64_t *h,
							       unsigned *rolled, uint16_t qtype,
							       const struct sockaddr *client,
							       const struct rule **best)
{
	for (; bits; bits &= bits - 1) {
		unsigned d = base + (unsigned)__builtin_ctzll(bits), front = off[k - d];
		if (front_may_be(t, d, n, front, len))
			probe(t, n, len, front, h, rolled, qtype, client, best);
	}
}

/* Names of 64 labels or more: both words of depths. */
static __attribute__((noinline)) const struct rule *lookup_suffix_deep(const struct route_table *t,
								       const uint8_t *n, unsigned len,
								       const uint8_t *off, unsigned k, uint16_t qtype,
								       const struct sockaddr *client)
{
	uint64_t h = HASH_SEED;
	unsigned rolled = 0;
	const struct rule *best = NULL;
	probe_depths(t, n, len, off, k, 0, t->depths[0], &h, &rolled, qtype, client, &best);
	uint64_t deeper = t->depths[1] & (k < 127 ? (2ull << (k - 64)) - 1 : ~0ull);
	probe_depths(t, n, len, off, k, 64, deeper, &h, &rolled, qtype, client, &best);
	return best;
}

/* The rule of the longest of name n's suffixes in the table with one whose
 * conditions hold (n: len bytes, k labels starting at off[]). Only the
 * label counts some rule has are probed, shortest to longest, each
 * suffix's hash continuing the shorter one's words: the last rule kept is
 * the longest's. (Scalars, not struct qname: a store through uint8_t *
 * would make the compiler reload a struct's fields.) */
static const struct rule *lookup_suffix(const struct route_table *t, const uint8_t *n, unsigned len,
					const uint8_t *off, unsigned k, uint16_t qtype, const struct sockaddr *client)
{
	if (k >= 64)
		return lookup_suffix_deep(t, n, len, off, k, qtype, client);
	uint64_t h = HASH_SEED;
	unsigned rolled = 0;
	const struct rule *best = NULL;
	/* the label counts 1..k some rule has (2 << 63 is 0: all of them) */
	probe_depths(t, n, len, off, k, 0, t->depths[0] & ((2ull << k) - 1), &h, &rolled, qtype, client, &best);
	return best;
}

/* q's text form, lower case, as knot_dname_to_str writes it (then lower
 * case). Written here when every byte of the name's labels is one libknot
 * writes as itself (plain[]): the text is then the wire form shifted by one,
 * each length byte and the root's 0 turned into a dot. One flat pass maps
 * every byte and notes a refused one; the length bytes (any value 1..63,
 * some of them "plain" digits) are dots in plain_or_dot[], so that pass
 * runs over the text once the dots are in. A dot inside a label (libknot
 * escapes it) is caught by counting the dots. */
static bool make_text(const struct route_table *t, struct qname *q)
{
	if (q->has_text)
		return true;
	size_t n = q->len - 1;
	if (!q->k || n == 0 || n >= sizeof(q->text))
		goto escaped; /* the root: "." */
	char *x = q->text;
	memcpy(x, q->wire + 1, n);
	for (unsigned j = 1; j < q->k; j++)
		x[q->off[j] - 1] = '.';
	x[n - 1] = '.';
	/* one table load per byte: the text byte, and counts that add up */
	const uint32_t *map = t->text_map;
	uint32_t sum = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t v = map[(uint8_t)x[i]];
		x[i] = (char)v;
		sum += v;
	}
	if (sum >> 24 || ((sum >> 16) & 0xff) != q->k)
		goto escaped;
	x[n] = 0;
	q->text_len = n;
	q->has_text = true;
	return true;
escaped:
	if (!knot_dname_to_str(q->text, q->wire, sizeof(q->text)))
		return false;
	size_t m = 0;
	for (; q->text[m]; m++)
		q->text[m] = (char)t->lower[(uint8_t)q->text[m]];
	q->text_len = m;
	q->has_text = true;
	return true;
}

/* High bit of each byte of x (bytes < 0x80) that is in lo..hi / equal to c. */
static uint64_t in_range8(uint64_t x, uint8_t lo, uint8_t hi)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	return (x + (0x80 - lo) * ones) & ~(x + (0x7f - hi) * ones) & high;
}

static uint64_t eq8(uint64_t x, uint8_t c)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	return ~((x ^ (c * ones)) + 0x7f * ones) & high;
}

/* Whether some tail may end q's text, from its last 8 bytes alone (no text
 * made): the wire form's last 8 bytes with their length bytes and the root
 * made dots, folded to lower case, if libknot writes each of them as
 * itself (else: maybe) -- letters, digits, '-', '_', '*', '/' (build_maps
 * checks this list against libknot), and no dot but the ones put in. Every
 * tail is 8 bytes or more here. */
static bool last8_may_match(const struct route_table *t, const struct qname *q)
{
	const uint64_t high = 0x8080808080808080ull;
	uint8_t b[8];
	uint32_t from = q->len - 8;
	uint64_t dots = 0x80ull << 56;
	memcpy(b, q->wire + from, 8);
	b[7] = '.';
	for (unsigned j = q->k; j-- > 1 && q->off[j] >= from;) {
		b[q->off[j] - from] = '.';
		dots |= 0x80ull << (8 * (q->off[j] - from));
	}
	uint64_t w = fold8(load8(b)), x = w & ~high;
	uint64_t ok = in_range8(x, 'a', 'z') | in_range8(x, '0', '9') | eq8(x, '-') | eq8(x, '_') | eq8(x, '*') |
		      eq8(x, '/');
	uint64_t is_dot = eq8(x, '.') & ~w;
	if (((~ok & ~is_dot) | w) & high || is_dot != dots)
		return true;
	unsigned bit = last8_bit(w);
	return t->last8[bit / 64] & (1ull << (bit % 64));
}

/* The tails that q's text ends with: up to one per tail length. */
static unsigned matching_tails(const struct route_table *t, struct qname *q, const struct tail **out)
{
	unsigned got = 0;
	if (!t->has_short_tail && q->len >= 10 && !last8_may_match(t, q))
		return 0;
	if (!make_text(t, q))
		return 0;
	/* the tail lengths some tail has, up to the text's length */
	uint64_t lens = t->tail_lens & (q->text_len >= 63 ? ~0ull : (2ull << q->text_len) - 1);
	for (; lens; lens &= lens - 1) {
		uint32_t len = (uint32_t)__builtin_ctzll(lens);
		const char *end = q->text + q->text_len - len;
		const struct tail *x = tail_find(t, end, len, hash_bytes((const uint8_t *)end, len));
		if (x->n)
			out[got++] = x;
	}
	return got;
}

static bool regex_matches(const struct rule *r, struct route_scratch *s, const struct qname *q)
{
	if (r->is_jit)
		return pcre2_jit_match(r->re, (PCRE2_SPTR)q->text, q->text_len, 0, 0, s->md, NULL) >= 0;
	return pcre2_match(r->re, (PCRE2_SPTR)q->text, q->text_len, 0, 0, s->md, NULL) >= 0;
}

/* Whether a regex tail may end the text of name n (len bytes, k labels at
 * off[]): when every tail has a key (tail_key), only a name whose last
 * label W is a tail's L, or ends with a '.' and L, may. The key is of the
 * last 8 bytes of W and the root, so W = "x.L" and L share it when L has 7
 * bytes or more; when L is shorter, that '.' is in those 8 bytes. One
 * word read, no text made. */
static bool tails_may_end(const struct route_table *t, const uint8_t *n, unsigned len, const uint8_t *off,
			  unsigned k)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	if (t->has_unkeyed_tail)
		return true;
	if (!k)
		return false; /* "." */
	unsigned slen = len - off[k - 1], m = slen < 8 ? slen : 8;
	/* W's last bytes and the root (W's length byte too, under 7: no '.') */
	uint64_t w = bytes_at(n, len - m, m, len), x = w ^ ('.' * ones);
	if ((x - ones) & ~x & high)
		return true;
	unsigned bit = tail_bit(w);
	return t->tail_keys[bit / 64] & (1ull << (bit % 64));
}

/* The first regex rule in file order that matches and whose conditions
 * hold, among the untailed ones and those listed under a tail the name
 * ends with: a merge of those ascending lists. Off the common path: here
 * is the room for the text form. */
static __attribute__((noinline)) const struct rule *lookup_regex(const struct route_table *t,
								 struct route_scratch *s, const uint8_t *n,
								 unsigned len, const uint8_t *off, unsigned k,
								 bool try_tails, uint16_t qtype,
								 const struct sockaddr *client)
{
	struct qname qn, *q = &qn;
	qn.wire = n;
	qn.len = len;
	qn.k = k;
	qn.off = off;
	qn.has_text = false;
	const struct tail *hits[sizeof(TAIL_LENS)];
	const uint32_t *list[sizeof(TAIL_LENS) + 1];
	uint32_t left[sizeof(TAIL_LENS) + 1];
	unsigned nl = try_tails ? matching_tails(t, q, hits) : 0;
	for (unsigned i = 0; i < nl; i++) {
		list[i] = hits[i]->idx;
		left[i] = hits[i]->n;
	}
	if (t->n_untailed) {
		list[nl] = t->untailed;
		left[nl++] = t->n_untailed;
	}
	for (;;) {
		unsigned best = nl;
		for (unsigned i = 0; i < nl; i++)
			if (left[i] && (best == nl || list[i][0] < list[best][0]))
				best = i;
		if (best == nl)
			return NULL;
		const struct rule *r = &t->regex_rules[*list[best]++];
		left[best]--;
		if (conditions_hold(r->rc, qtype, client) && make_text(t, q) && regex_matches(r, s, q))
			return r;
	}
}

int route_lookup(const struct route_table *t, struct route_scratch *s, const uint8_t *qname, uint16_t qtype,
		 const struct sockaddr *client, const struct route_conf **route)
{
	uint8_t off[KNOT_DNAME_MAXLABELS], *o = off;
	const uint8_t *p = qname;
	for (unsigned c = *p; c; c = *p) {
		*o++ = (uint8_t)(p - qname);
		p += c + 1;
	}
	unsigned k = (unsigned)(o - off), len = (unsigned)(p - qname) + 1;
	const struct rule *hit = NULL;
	if (t->n_suffix)
		hit = lookup_suffix(t, qname, len, off, k, qtype, client);
	if (!hit && t->n_regex) {
		bool try_tails = t->tail_lens && tails_may_end(t, qname, len, off, k);
		if (try_tails || t->n_untailed)
			hit = lookup_regex(t, s, qname, len, off, k, try_tails, qtype, client);
	}
	if (!hit && t->n_root)
		hit = first_that_holds(t->root_rules, qtype, client);
	if (!hit)
		return -1;
	if (route)
		*route = hit->rc;
	return (int)hit->rc->pool;
}
