/* test_route.c -- src/route/route.c and src/route/pool.c (with the YAML
 * loader, src/config/yaml.c, making their input): suffix rules on label
 * boundaries with the longest winning whatever the order, regexes in file
 * order, the root as the default after both, conditions; the policies'
 * distribution over many picks. No event loop. */
#include <arpa/inet.h>
#include <unistd.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "test.h"
#include "config/config.h"
#include "route/pool.h"
#include "route/route.h"
#include "upstream/upstream.h"

static struct config cfg;

static void load(const char *yaml)
{
	char path[] = "/tmp/dnsmux-test-route-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
	close(fd);
	config_free(&cfg);
	config_defaults(&cfg);
	char err[2048];
	int r = config_load_file(&cfg, path, err, sizeof(err));
	unlink(path);
	if (r < 0)
		fail_msg("%s", err);
}

static int lookup(const struct route_table *t, struct route_scratch *s, const char *name, uint16_t qtype, const char *ip)
{
	uint8_t dn[KNOT_DNAME_MAXLEN];
	assert_non_null(knot_dname_from_str(dn, name, sizeof(dn)));
	struct sockaddr_in a = {.sin_family = AF_INET};
	inet_pton(AF_INET, ip ? ip : "127.0.0.1", &a.sin_addr);
	return route_lookup(t, s, dn, qtype, (struct sockaddr *)&a, NULL);
}

#define POOLS "pools:\n  a: {members: [tcp://127.0.0.1:1]}\n  b: {members: [tcp://127.0.0.1:2]}\n" \
	      "  c: {members: [tcp://127.0.0.1:3]}\n  d: {members: [tcp://127.0.0.1:4]}\n"

static void suffix_longest_and_boundaries(void **state)
{
	(void)state;
	load(POOLS "routes:\n"
		   "  - {suffix: example., pool: a}\n"
		   "  - {suffix: corp.example., pool: b}\n"
		   "  - {suffix: x.corp.example., pool: c}\n");
	char err[256];
	struct route_table *t = route_table_new(&cfg, err, sizeof(err));
	assert_non_null(t);
	struct route_scratch *s = route_scratch_new(t);
	assert_int_equal(lookup(t, s, "www.example.", 1, NULL), 0);
	assert_int_equal(lookup(t, s, "example.", 1, NULL), 0);
	assert_int_equal(lookup(t, s, "www.corp.example.", 1, NULL), 1);
	assert_int_equal(lookup(t, s, "WWW.CORP.Example.", 1, NULL), 1);
	assert_int_equal(lookup(t, s, "a.x.corp.example.", 1, NULL), 2);
	assert_int_equal(lookup(t, s, "xcorp.example.", 1, NULL), 0); /* label boundary */
	assert_int_equal(lookup(t, s, "example.net.", 1, NULL), -1);
	assert_int_equal(lookup(t, s, "com.", 1, NULL), -1);
	route_scratch_free(s);
	route_table_free(t);
}

static void regex_then_root_default(void **state)
{
	(void)state;
	load(POOLS "routes:\n"
		   "  - {suffix: ., pool: d}\n" /* written first: still the last resort */
		   "  - {regex: '^[ab]*\\.miek\\.nl\\.$', pool: a}\n"
		   "  - {regex: 'miek', pool: b}\n"
		   "  - {suffix: nl., qtype: [MX], pool: c}\n");
	char err[256];
	struct route_table *t = route_table_new(&cfg, err, sizeof(err));
	assert_non_null(t);
	struct route_scratch *s = route_scratch_new(t);
	assert_int_equal(lookup(t, s, "ab.miek.nl.", 1, NULL), 0);
	assert_int_equal(lookup(t, s, "AB.Miek.NL.", 1, NULL), 0);
	assert_int_equal(lookup(t, s, "c.miek.nl.", 1, NULL), 1);   /* the second regex, in file order */
	assert_int_equal(lookup(t, s, "ab.miek.nl.", 15, NULL), 2); /* a suffix rule whose qtype holds comes first */
	assert_int_equal(lookup(t, s, "www.test.", 1, NULL), 3);    /* the default */
	route_scratch_free(s);
	route_table_free(t);
}

static void client_conditions(void **state)
{
	(void)state;
	load(POOLS "routes:\n"
		   "  - {suffix: example., client: ['!10.1.0.0/16', 10.0.0.0/8], pool: a}\n"
		   "  - {suffix: example., client: [private], pool: b}\n"
		   "  - {suffix: example., pool: c}\n");
	char err[256];
	struct route_table *t = route_table_new(&cfg, err, sizeof(err));
	struct route_scratch *s = route_scratch_new(t);
	assert_int_equal(lookup(t, s, "www.example.", 1, "10.2.3.4"), 0);
	assert_int_equal(lookup(t, s, "www.example.", 1, "10.1.3.4"), 1); /* excluded from a, private */
	assert_int_equal(lookup(t, s, "www.example.", 1, "192.168.1.1"), 1);
	assert_int_equal(lookup(t, s, "www.example.", 1, "198.51.100.1"), 2);
	route_scratch_free(s);
	route_table_free(t);
}

static void many_suffix_rules(void **state)
{
	(void)state;
	static char yaml[1 << 21];
	size_t n = (size_t)snprintf(yaml, sizeof(yaml), "%sroutes:\n", POOLS);
	for (int i = 0; i < 10000; i++)
		n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "  - {suffix: z%d.example., pool: %c}\n", i, 'a' + i % 4);
	load(yaml);
	char err[256];
	struct route_table *t = route_table_new(&cfg, err, sizeof(err));
	assert_non_null(t);
	struct route_scratch *s = route_scratch_new(t);
	for (int i = 0; i < 10000; i += 97) {
		char name[64];
		snprintf(name, sizeof(name), "www.z%d.example.", i);
		assert_int_equal(lookup(t, s, name, 1, NULL), i % 4);
	}
	assert_int_equal(lookup(t, s, "www.z10000.example.", 1, NULL), -1);
	route_scratch_free(s);
	route_table_free(t);
}

/* The regex index: a regex's literal tail (before a final '$') only ever
 * narrows which regexes a name tries; the first in file order that matches
 * still wins, tailed or not, anchored or not. */
static void regex_file_order_with_tails(void **state)
{
	(void)state;
	load(POOLS "routes:\n"
		   "  - {regex: '^[ab]*\\.shard1\\.example\\.$', pool: a}\n" /* tail ".shard1.example." */
		   "  - {regex: 'shard', pool: b}\n"                         /* unanchored, no tail */
		   "  - {regex: '^[a-z]+\\.shard2\\.example\\.$', pool: c}\n"
		   "  - {regex: '\\.example\\.$', pool: d}\n");               /* a shorter tail */
	char err[256];
	struct route_table *t = route_table_new(&cfg, err, sizeof(err));
	assert_non_null(t);
	struct route_scratch *s = route_scratch_new(t);
	assert_int_equal(lookup(t, s, "ab.shard1.example.", 1, NULL), 0);
	assert_int_equal(lookup(t, s, "AB.Shard1.EXAMPLE.", 1, NULL), 0);
	assert_int_equal(lookup(t, s, "xy.shard1.example.", 1, NULL), 1); /* not [ab]*: the untailed one next */
	assert_int_equal(lookup(t, s, "xy.shard2.example.", 1, NULL), 1); /* 'shard' is before shard2's in the file */
	assert_int_equal(lookup(t, s, "www.example.", 1, NULL), 3);
	assert_int_equal(lookup(t, s, "www.example.net.", 1, NULL), -1);
	assert_int_equal(lookup(t, s, "example.", 1, NULL), -1); /* "example." does not end with ".example." */
	route_scratch_free(s);
	route_table_free(t);
	/* the same set with the untailed regex last: each tail is taken in order */
	load(POOLS "routes:\n"
		   "  - {regex: '\\.example\\.$', pool: d}\n"
		   "  - {regex: '^[ab]*\\.shard1\\.example\\.$', pool: a}\n"
		   "  - {regex: 'shard', pool: b}\n");
	t = route_table_new(&cfg, err, sizeof(err));
	s = route_scratch_new(t);
	assert_int_equal(lookup(t, s, "ab.shard1.example.", 1, NULL), 3);
	assert_int_equal(lookup(t, s, "ab.shard1.example.net.", 1, NULL), 1);
	route_scratch_free(s);
	route_table_free(t);
}

/* Patterns whose tail this reader cannot be sure of are tried for every
 * name: alternation, an escaped '$', a quantified last literal, (?x). A
 * backreference works as PCRE2 has it. */
static void regex_without_sure_tail(void **state)
{
	(void)state;
	load(POOLS "routes:\n"
		   "  - {regex: '^([a-z]+)\\.\\1\\.example\\.$', pool: a}\n"
		   "  - {regex: '^q|x\\.example\\.$', pool: b}\n"
		   "  - {regex: 'shard9\\.?$', pool: c}\n"
		   "  - {regex: '(?x) ^ w w w \\. test \\. $', pool: d}\n");
	char err[256];
	struct route_table *t = route_table_new(&cfg, err, sizeof(err));
	assert_non_null(t);
	struct route_scratch *s = route_scratch_new(t);
	assert_int_equal(lookup(t, s, "foo.foo.example.", 1, NULL), 0);
	assert_int_equal(lookup(t, s, "foo.bar.example.", 1, NULL), -1);
	assert_int_equal(lookup(t, s, "qqq.test.", 1, NULL), 1); /* the '^q' alternative */
	assert_int_equal(lookup(t, s, "a.x.example.", 1, NULL), 1);
	assert_int_equal(lookup(t, s, "a.shard9.", 1, NULL), 2);
	assert_int_equal(lookup(t, s, "www.test.", 1, NULL), 3);
	route_scratch_free(s);
	route_table_free(t);
}

/* Conditions on regex rules: a matching regex whose qtype or client does
 * not hold is passed over for the next in file order. */
static void regex_conditions(void **state)
{
	(void)state;
	load(POOLS "routes:\n"
		   "  - {regex: '^[ab]*\\.shard1\\.example\\.$', qtype: [MX], pool: a}\n"
		   "  - {regex: '^[ab]*\\.shard1\\.example\\.$', client: [10.0.0.0/8], pool: b}\n"
		   "  - {regex: 'shard1', pool: c}\n"
		   "  - {suffix: ., pool: d}\n");
	char err[256];
	struct route_table *t = route_table_new(&cfg, err, sizeof(err));
	struct route_scratch *s = route_scratch_new(t);
	assert_int_equal(lookup(t, s, "ab.shard1.example.", 15, NULL), 0);
	assert_int_equal(lookup(t, s, "ab.shard1.example.", 1, "10.1.2.3"), 1);
	assert_int_equal(lookup(t, s, "ab.shard1.example.", 1, "192.0.2.1"), 2);
	assert_int_equal(lookup(t, s, "ab.shard2.example.", 1, NULL), 3);
	route_scratch_free(s);
	route_table_free(t);
}

/* The text a regex sees is libknot's, escapes and all, whether the name is
 * written out by libknot or by route.c's fast path: a dot inside a label,
 * a byte libknot writes as \DDD, a long name, the root. */
static void regex_text_form(void **state)
{
	(void)state;
	load(POOLS "routes:\n"
		   "  - {regex: '^x\\\\\\.shard1\\.example\\.$', pool: a}\n" /* x\.shard1.example. */
		   "  - {regex: '001abcdefgh\\.example\\.$', pool: b}\n"
		   "  - {regex: '^\\.$', pool: c}\n"
		   "  - {regex: '^[a-z0-9-]{60}\\.[a-z]{60}\\.long\\.test\\.$', pool: d}\n");
	char err[256];
	struct route_table *t = route_table_new(&cfg, err, sizeof(err));
	assert_non_null(t);
	struct route_scratch *s = route_scratch_new(t);
	uint8_t dn[KNOT_DNAME_MAXLEN];
	struct sockaddr_in a = {.sin_family = AF_INET};
	/* one label "x.shard1", then example. */
	memcpy(dn, "\x08x.shard1\x07" "example\x00", 18);
	assert_int_equal(route_lookup(t, s, dn, 1, (struct sockaddr *)&a, NULL), 0);
	/* the same bytes as labels x, shard1: not the regex's text */
	assert_int_equal(lookup(t, s, "x.shard1.example.", 1, NULL), -1);
	memcpy(dn, "\x09\x01" "abcdefgh\x07" "example\x00", 19);
	assert_int_equal(route_lookup(t, s, dn, 1, (struct sockaddr *)&a, NULL), 1);
	assert_int_equal(lookup(t, s, ".", 1, NULL), 2);
	char name[200];
	snprintf(name, sizeof(name), "%s.%s.long.test.", "0123456789-abcdefghij0123456789-ABCDEFGHIJ0123456789-abcdefg",
		 "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij");
	assert_int_equal(lookup(t, s, name, 1, NULL), 3);
	route_scratch_free(s);
	route_table_free(t);
}

/* Suffix rules of several label counts: only those counts are probed, the
 * longest still first; names longer than every rule. */
static void suffix_depths(void **state)
{
	(void)state;
	load(POOLS "routes:\n"
		   "  - {suffix: example., pool: a}\n"
		   "  - {suffix: a.b.c.d.example., pool: b}\n"
		   "  - {suffix: Mixed.CASE.example., pool: c}\n");
	char err[256];
	struct route_table *t = route_table_new(&cfg, err, sizeof(err));
	struct route_scratch *s = route_scratch_new(t);
	assert_int_equal(lookup(t, s, "x.y.z.a.b.c.d.example.", 1, NULL), 1);
	assert_int_equal(lookup(t, s, "a.b.c.d.example.", 1, NULL), 1);
	assert_int_equal(lookup(t, s, "b.c.d.example.", 1, NULL), 0);
	assert_int_equal(lookup(t, s, "www.mixed.case.EXAMPLE.", 1, NULL), 2);
	assert_int_equal(lookup(t, s, "a.b.c.d.example.org.", 1, NULL), -1);
	route_scratch_free(s);
	route_table_free(t);
}

/* The filter in front of the tail index: a name tries the tailed regexes
 * only if its last label is the one a tail ends with (".L."), in any case,
 * or holds a dot itself (libknot writes it "\."), whatever the tail's
 * length; a tail of another form turns the filter off. */
static void regex_tail_keys(void **state)
{
	(void)state;
	load(POOLS "routes:\n"
		   "  - {regex: '\\.example\\.$', pool: a}\n"
		   "  - {regex: '^[ab]*\\.shard1\\.longtldname\\.$', pool: b}\n"
		   "  - {regex: 'never$', pool: c}\n"); /* the text always ends with '.' */
	char err[256];
	struct route_table *t = route_table_new(&cfg, err, sizeof(err));
	assert_non_null(t);
	struct route_scratch *s = route_scratch_new(t);
	struct sockaddr_in a = {.sin_family = AF_INET};
	uint8_t dn[KNOT_DNAME_MAXLEN];
	assert_int_equal(lookup(t, s, "www.example.", 1, NULL), 0);
	assert_int_equal(lookup(t, s, "WWW.EXAMPLE.", 1, NULL), 0);
	assert_int_equal(lookup(t, s, "www.xexample.", 1, NULL), -1);
	assert_int_equal(lookup(t, s, "example.", 1, NULL), -1);
	assert_int_equal(lookup(t, s, "ab.shard1.LongTLDName.", 1, NULL), 1);
	assert_int_equal(lookup(t, s, "ab.shard1.longtldnames.", 1, NULL), -1);
	assert_int_equal(lookup(t, s, "never.", 1, NULL), -1);
	assert_int_equal(lookup(t, s, ".", 1, NULL), -1);
	/* one last label "foo.example": the text "foo\.example." ends with ".example." */
	memcpy(dn, "\x0b" "foo.example\x00", 13);
	assert_int_equal(route_lookup(t, s, dn, 1, (struct sockaddr *)&a, NULL), 0);
	/* a dot in a longer last label, "a.b.c.example" */
	memcpy(dn, "\x01x\x0d" "a.b.c.example\x00", 17);
	assert_int_equal(route_lookup(t, s, dn, 1, (struct sockaddr *)&a, NULL), 0);
	memcpy(dn, "\x01x\x0d" "a.b.c.exampld\x00", 17);
	assert_int_equal(route_lookup(t, s, dn, 1, (struct sockaddr *)&a, NULL), -1);
	route_scratch_free(s);
	route_table_free(t);
	/* the '.' at each place the filter reads it: with the last label's
	 * length byte in the word (".nl"), first in the word (".abcdef"), in
	 * the word after the label's first bytes ("x.abcdef") */
	load(POOLS "routes:\n"
		   "  - {regex: '\\.nl\\.$', pool: a}\n"
		   "  - {regex: '\\.abcdef\\.$', pool: b}\n");
	t = route_table_new(&cfg, err, sizeof(err));
	s = route_scratch_new(t);
	memcpy(dn, "\x01x\x03" ".nl\x00", 7);
	assert_int_equal(route_lookup(t, s, dn, 1, (struct sockaddr *)&a, NULL), 0);
	memcpy(dn, "\x01x\x07" ".abcdef\x00", 11);
	assert_int_equal(route_lookup(t, s, dn, 1, (struct sockaddr *)&a, NULL), 1);
	memcpy(dn, "\x01x\x08" "x.abcdef\x00", 12);
	assert_int_equal(route_lookup(t, s, dn, 1, (struct sockaddr *)&a, NULL), 1);
	memcpy(dn, "\x01x\x08" "xyabcdef\x00", 12);
	assert_int_equal(route_lookup(t, s, dn, 1, (struct sockaddr *)&a, NULL), -1);
	route_scratch_free(s);
	route_table_free(t);
	/* "ample." has no dot before its last label, "a\\$" is the text of the
	 * label "a$": no filter, still found */
	load(POOLS "routes:\n"
		   "  - {regex: '\\.example\\.$', pool: a}\n"
		   "  - {regex: '[0-9]ample\\.$', pool: b}\n"
		   "  - {regex: '\\.a\\\\\\$\\.$', pool: c}\n");
	t = route_table_new(&cfg, err, sizeof(err));
	s = route_scratch_new(t);
	assert_int_equal(lookup(t, s, "www.example.", 1, NULL), 0);
	assert_int_equal(lookup(t, s, "www.x1ample.", 1, NULL), 1);
	assert_int_equal(lookup(t, s, "www.xample.", 1, NULL), -1);
	memcpy(dn, "\x01x\x02" "a$\x00", 6);
	assert_int_equal(route_lookup(t, s, dn, 1, (struct sockaddr *)&a, NULL), 2);
	route_scratch_free(s);
	route_table_free(t);
	load(POOLS "routes:\n"
		   "  - {regex: '\\.a\\\\\\$\\.$', pool: c}\n");
	t = route_table_new(&cfg, err, sizeof(err));
	s = route_scratch_new(t);
	assert_int_equal(route_lookup(t, s, dn, 1, (struct sockaddr *)&a, NULL), 2);
	route_scratch_free(s);
	route_table_free(t);
}

/* ---- route_lookup against a plain reading of CONFIG.md ---- */

/* The rule route_lookup must give, found the slow way: every suffix rule
 * compared on label boundaries (the most labels winning, file order among
 * equals, conditions held), then every regex in file order (PCRE2 without
 * JIT, on libknot's text form in lower case), then "suffix: .". */
static bool ref_conditions(const struct route_conf *rc, uint16_t qtype, const struct sockaddr *client)
{
	bool any = rc->n_qtypes == 0;
	for (unsigned i = 0; i < rc->n_qtypes; i++)
		any = any || rc->qtypes[i] == qtype;
	return any && (!rc->clients || (client && config_addr_match(rc->clients, client)));
}

static const struct route_conf *ref_lookup(const uint8_t *dn, uint16_t qtype, const struct sockaddr *client)
{
	size_t n_len = knot_dname_size(dn);
	const struct route_conf *best = NULL;
	int best_labels = 0;
	for (size_t i = 0; i < cfg.n_routes; i++) {
		const struct route_conf *rc = &cfg.routes[i];
		if (rc->kind != ROUTE_SUFFIX || !rc->suffix[0] || !ref_conditions(rc, qtype, client))
			continue;
		size_t s_len = knot_dname_size(rc->suffix);
		int labels = knot_dname_labels(rc->suffix, NULL);
		for (size_t o = 0; dn[o] && !(best && labels <= best_labels); o += dn[o] + 1u) {
			if (n_len - o != s_len)
				continue;
			if (knot_dname_is_case_equal(dn + o, rc->suffix)) {
				best = rc;
				best_labels = labels;
			}
			break;
		}
	}
	if (best)
		return best;
	char text[KNOT_DNAME_TXT_MAXLEN + 1];
	assert_non_null(knot_dname_to_str(text, dn, sizeof(text)));
	for (char *c = text; *c; c++)
		*c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
	for (size_t i = 0; i < cfg.n_routes; i++) {
		const struct route_conf *rc = &cfg.routes[i];
		if (rc->kind != ROUTE_REGEX || !ref_conditions(rc, qtype, client))
			continue;
		int code;
		PCRE2_SIZE off;
		pcre2_code *re = pcre2_compile((PCRE2_SPTR)rc->regex, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &code, &off, NULL);
		assert_non_null(re);
		pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
		int m = pcre2_match(re, (PCRE2_SPTR)text, strlen(text), 0, 0, md, NULL);
		pcre2_match_data_free(md);
		pcre2_code_free(re);
		if (m >= 0)
			return rc;
	}
	for (size_t i = 0; i < cfg.n_routes; i++) {
		const struct route_conf *rc = &cfg.routes[i];
		if (rc->kind == ROUTE_SUFFIX && !rc->suffix[0] && ref_conditions(rc, qtype, client))
			return rc;
	}
	return NULL;
}

static const char *const WORDS[] = {"a", "b", "ab", "q", "x-1", "test", "example", "shard1", "nl", "miek",
				    "longlabel-0123456789", "seven77", "eight888"};
#define N_WORDS (sizeof(WORDS) / sizeof(WORDS[0]))

/* A random name: labels from WORDS in random case (or two of them joined
 * by a '.' inside the label), or random bytes among those libknot escapes
 * ('.', '\\', 0x01, 0xc3 ...), or long ones. */
static void random_name(uint64_t *seed, uint8_t dn[KNOT_DNAME_MAXLEN])
{
	static const uint8_t odd[] = {'.', '\\', 1, 0xc3, '_', '*', '/', '$', 'A', 'z', '0', '9', '-', 0x0e, 0x2e + 0x20};
	unsigned labels = xr_below(seed, 7), o = 0;
	for (unsigned i = 0; i < labels; i++) {
		unsigned kind = xr_below(seed, 10), len;
		uint8_t lab[63];
		if (kind < 7) {
			char w[48];
			/* now and then one label "word.word": its text "word\.word" */
			if (kind == 6)
				snprintf(w, sizeof(w), "%s.%s", WORDS[xr_below(seed, N_WORDS)], WORDS[xr_below(seed, N_WORDS)]);
			else
				snprintf(w, sizeof(w), "%s", WORDS[xr_below(seed, N_WORDS)]);
			len = (unsigned)strlen(w);
			for (unsigned j = 0; j < len; j++)
				lab[j] = (uint8_t)(xr_below(seed, 3) == 0 && w[j] >= 'a' ? w[j] - 'a' + 'A' : w[j]);
		} else {
			len = kind == 9 ? 20 + xr_below(seed, 44) : 1 + xr_below(seed, 12);
			for (unsigned j = 0; j < len; j++)
				lab[j] = xr_below(seed, 2) ? odd[xr_below(seed, sizeof(odd))] : (uint8_t)('a' + xr_below(seed, 26));
		}
		if (o + len + 2 > KNOT_DNAME_MAXLEN)
			break;
		dn[o] = (uint8_t)len;
		memcpy(dn + o + 1, lab, len);
		o += len + 1;
	}
	dn[o] = 0;
}

/* A random rule set: suffixes of 1-4 labels from WORDS, some with
 * conditions; regexes with a keyed tail, an unkeyed one, none, one that can
 * never match; a default or not. */
static size_t random_rules(uint64_t *seed, char *yaml, size_t size)
{
	size_t n = (size_t)snprintf(yaml, size, "%sroutes:\n", POOLS);
	unsigned n_suffix = xr_below(seed, 60), n_regex = xr_below(seed, 10);
	for (unsigned i = 0; i < n_suffix; i++) {
		char sfx[128];
		size_t at = 0;
		unsigned labels = 1 + xr_below(seed, 4);
		for (unsigned j = 0; j < labels; j++)
			at += (size_t)snprintf(sfx + at, sizeof(sfx) - at, "%s.", WORDS[xr_below(seed, N_WORDS)]);
		const char *cond = xr_below(seed, 5) == 0 ? ", qtype: [MX]" : xr_below(seed, 6) == 0 ? ", client: [10.0.0.0/8]" : "";
		n += (size_t)snprintf(yaml + n, size - n, "  - {suffix: '%s'%s, pool: %c}\n", sfx, cond, 'a' + (int)xr_below(seed, 4));
	}
	for (unsigned i = 0; i < n_regex; i++) {
		const char *w1 = WORDS[xr_below(seed, N_WORDS)], *w2 = WORDS[xr_below(seed, N_WORDS)];
		char re[160];
		switch (xr_below(seed, 8)) {
		case 0: snprintf(re, sizeof(re), "^[ab]*\\.%s\\.%s\\.$", w1, w2); break;
		case 1: snprintf(re, sizeof(re), "\\.%s\\.$", w1); break;
		case 2: snprintf(re, sizeof(re), "%s\\.$", w1); break; /* no dot before the last label */
		case 3: snprintf(re, sizeof(re), "%s", w1); break;      /* no tail */
		case 4: snprintf(re, sizeof(re), "\\\\\\.%s\\.$", w1); break; /* "\.": a dot inside the last label */
		case 5: snprintf(re, sizeof(re), "%s$", w1); break;     /* can never match: the text ends with '.' */
		case 6: snprintf(re, sizeof(re), "^.\\.%s\\.$", w1); break;
		default: snprintf(re, sizeof(re), "[0-9]\\.%s\\.%s\\.$", w1, w2); break;
		}
		const char *cond = xr_below(seed, 5) == 0 ? ", qtype: [MX]" : "";
		n += (size_t)snprintf(yaml + n, size - n, "  - {regex: '%s'%s, pool: %c}\n", re, cond, 'a' + (int)xr_below(seed, 4));
	}
	if (xr_below(seed, 2))
		n += (size_t)snprintf(yaml + n, size - n, "  - {suffix: ., pool: d}\n");
	if (n_suffix + n_regex == 0)
		n += (size_t)snprintf(yaml + n, size - n, "  - {suffix: example., pool: a}\n");
	return n;
}

static void lookup_as_reference(void **state)
{
	(void)state;
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	static char yaml[1 << 14];
	struct sockaddr_in in10 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a010203)};
	struct sockaddr_in other = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0xc0000201)};
	const struct sockaddr *clients[] = {(struct sockaddr *)&in10, (struct sockaddr *)&other, NULL};
	unsigned checked = 0;
	for (unsigned set = 0; set < 60; set++) {
		random_rules(&seed, yaml, sizeof(yaml));
		load(yaml);
		char err[256];
		struct route_table *t = route_table_new(&cfg, err, sizeof(err));
		assert_non_null(t);
		struct route_scratch *s = route_scratch_new(t);
		assert_non_null(s);
		for (unsigned i = 0; i < 400; i++) {
			/* the name in a buffer of exactly its size: the lookup reads nothing around it */
			uint8_t tmp[KNOT_DNAME_MAXLEN];
			random_name(&seed, tmp);
			size_t len = knot_dname_size(tmp);
			uint8_t *dn = malloc(len);
			memcpy(dn, tmp, len);
			uint16_t qtype = xr_below(&seed, 2) ? KNOT_RRTYPE_A : KNOT_RRTYPE_MX;
			const struct sockaddr *client = clients[xr_below(&seed, 3)];
			const struct route_conf *want = ref_lookup(dn, qtype, client), *got = NULL;
			int p = route_lookup(t, s, dn, qtype, client, &got);
			if (p != (want ? (int)want->pool : -1) || (want && got != want)) {
				char text[KNOT_DNAME_TXT_MAXLEN + 1];
				knot_dname_to_str(text, dn, sizeof(text));
				fail_msg("set %u, name '%s' qtype %u: route at line %u (pool %d), want line %u\n%s", set, text,
					 qtype, p >= 0 && got ? got->line : 0, p, want ? want->line : 0, yaml);
			}
			free(dn);
			checked++;
		}
		route_scratch_free(s);
		route_table_free(t);
	}
	assert_int_equal(checked, 60 * 400);
}

/* ---- pools ---- */

static struct upstream ups[4];
static struct upstream_conf ucs[4];

static struct pool make_pool(enum pool_policy policy, struct pool_conf *pc)
{
	memset(pc, 0, sizeof(*pc));
	pc->policy = policy;
	pc->when_all_down = ALL_DOWN_LEAST_BAD;
	static struct upstream *members[4];
	for (int i = 0; i < 4; i++) {
		memset(&ups[i], 0, sizeof(ups[i]));
		memset(&ucs[i], 0, sizeof(ucs[i]));
		ucs[i].kind = UPSTREAM_TCP; /* no circuits: nothing outstanding */
		ucs[i].weight = (uint32_t)(i + 1);
		ups[i].conf = &ucs[i];
		health_init(&ups[i].health);
		members[i] = &ups[i];
	}
	struct pool p = {.conf = pc, .members = members, .n = 4};
	return p;
}

static void policies_distribution(void **state)
{
	(void)state;
	struct pool_conf pc;
	struct rnd r;
	rnd_init(&r);
	unsigned hits[4] = {0};
	/* round-robin: even */
	struct pool p = make_pool(POOL_ROUND_ROBIN, &pc);
	for (int i = 0; i < 4000; i++)
		hits[pool_pick(&p, 0, NULL, &r) - ups]++;
	for (int i = 0; i < 4; i++)
		assert_int_equal(hits[i], 1000);
	/* random: by weight 1:2:3:4, within 10 % */
	p = make_pool(POOL_RANDOM, &pc);
	memset(hits, 0, sizeof(hits));
	for (int i = 0; i < 100000; i++)
		hits[pool_pick(&p, 0, NULL, &r) - ups]++;
	for (int i = 0; i < 4; i++) {
		double want = 100000.0 * (i + 1) / 10;
		assert_true(hits[i] > want * 0.9 && hits[i] < want * 1.1);
	}
	/* failover: the first usable; a down one is skipped, the avoided one too */
	p = make_pool(POOL_FAILOVER, &pc);
	assert_ptr_equal(pool_pick(&p, 0, NULL, &r), &ups[0]);
	ups[0].health.is_down = true;
	ups[0].health.retry_at_ms = 1000;
	assert_ptr_equal(pool_pick(&p, 0, NULL, &r), &ups[1]);
	assert_ptr_equal(pool_pick(&p, 0, &ups[1], &r), &ups[2]);
	assert_ptr_equal(pool_pick(&p, 2000, NULL, &r), &ups[0]); /* its backoff is over: probed again */
	/* fastest: the lowest EWMA, one pick in POOL_PROBE_EVERY elsewhere */
	p = make_pool(POOL_FASTEST, &pc);
	for (int i = 0; i < 4; i++)
		ups[i].rtt_ewma_us = (uint32_t)(1000 * (4 - i));
	memset(hits, 0, sizeof(hits));
	for (int i = 0; i < 2000; i++)
		hits[pool_pick(&p, 0, NULL, &r) - ups]++;
	assert_true(hits[3] >= 2000 - 2000 / POOL_PROBE_EVERY);
	assert_true(hits[0] > 0 && hits[1] > 0 && hits[2] > 0); /* the others are probed */
	/* every member down: least-bad gives the one whose backoff ends first, servfail none */
	p = make_pool(POOL_ROUND_ROBIN, &pc);
	for (int i = 0; i < 4; i++) {
		ups[i].health.is_down = true;
		ups[i].health.retry_at_ms = (uint64_t)(5000 - i);
	}
	assert_ptr_equal(pool_pick(&p, 0, NULL, &r), &ups[3]);
	pc.when_all_down = ALL_DOWN_SERVFAIL;
	assert_null(pool_pick(&p, 0, NULL, &r));
}

/* The active health state machine: fall failures in a row -> down (once),
 * rise answers in a row -> up (once); a success breaks a run of failures. */
static void health_probe_states(void **state)
{
	(void)state;
	struct health h;
	health_init(&h);
	assert_int_equal(health_probe(&h, false, 3, 2), 0);
	assert_int_equal(health_probe(&h, false, 3, 2), 0);
	assert_int_equal(health_probe(&h, true, 3, 2), 0); /* the run is broken */
	assert_int_equal(health_probe(&h, false, 3, 2), 0);
	assert_int_equal(health_probe(&h, false, 3, 2), 0);
	assert_true(health_usable(&h, 0));
	assert_int_equal(health_probe(&h, false, 3, 2), -1);
	assert_false(health_usable(&h, UINT64_MAX)); /* no backoff lets it through */
	assert_int_equal(health_probe(&h, false, 3, 2), 0); /* logged once */
	assert_int_equal(health_probe(&h, true, 3, 2), 0);
	assert_int_equal(health_probe(&h, true, 3, 2), 1);
	assert_true(health_usable(&h, 0));
	assert_int_equal(health_probe(&h, true, 3, 2), 0);
}

static int teardown(void **state)
{
	(void)state;
	config_free(&cfg);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(suffix_longest_and_boundaries),
		cmocka_unit_test(regex_then_root_default),
		cmocka_unit_test(client_conditions),
		cmocka_unit_test(many_suffix_rules),
		cmocka_unit_test(regex_file_order_with_tails),
		cmocka_unit_test(regex_without_sure_tail),
		cmocka_unit_test(regex_conditions),
		cmocka_unit_test(regex_text_form),
		cmocka_unit_test(suffix_depths),
		cmocka_unit_test(regex_tail_keys),
		cmocka_unit_test(lookup_as_reference),
		cmocka_unit_test(policies_distribution),
		cmocka_unit_test(health_probe_states),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
