/* fuzz_cache.c -- policy/cache.c under a stream of puts, gets and flushes
 * against a shadow copy: answers an upstream could send (each one passed
 * by msg_answer_matches and msg_scan_answer first, as on the query path)
 * go into a cache of 1 KiB shards, so that rings wrap, records move and
 * old ones are evicted all the time -- all of them into one shard, whose
 * 16 index slots then hold runs that wrap round the table, with links
 * moved back at every drop.
 *
 * Invariants: cache_usage never reports more than the size; a fresh hit
 * is the last answer stored for that key, byte for byte (at time 0 no TTL
 * has counted down; ID 0) unless its OPT had options (a cookie may have
 * gone), and always parses; flush drops no more than were stored; and at
 * the end every entry cache_usage counts is found by its key.
 *
 * Input: ops of [op][arg], a put followed by [len 2 bytes][header 12]
 * [len bytes of records]. */
#include "fuzz.h"
#include "policy/cache.h"

#define SIZE (32 * 1024) /* 32 shards of 1 KiB: 16 slots, room for ~10 records */
#define NAMES 64 /* all of one shard (names_of_one_shard): they evict each other, and its index has long runs */
#define KEYS (2 * NAMES) /* each name without and with EDNS */

static const struct cache_conf CC = {.min_ttl_s = 0, .max_ttl_s = 86400, .neg_max_ttl_s = 3600};

struct shadow {
	bool stored, exact;
	size_t len;
	uint8_t msg[MSG_HDR + 32 + 1200]; /* (put takes at most 1,200 bytes of records) */
};

static struct shadow sh[KEYS];

/* The names: "n<4 digits>.t." whose keys (without EDNS) fall in shard 0,
 * the hash's top 5 bits (cache.c), the first NAMES of them. */
static uint16_t name_num[NAMES];

static size_t name_wire(unsigned num, uint8_t *w)
{
	w[0] = 5;
	w[1] = 'n';
	for (unsigned d = 0, v = num; d < 4; d++, v /= 10)
		w[5 - d] = (uint8_t)('0' + v % 10);
	w[6] = 1;
	w[7] = 't';
	w[8] = 0;
	return 9;
}

/* The query of key i: name i/2 A, RD, and an OPT when i is odd. */
static size_t query_of(unsigned i, uint8_t *q)
{
	static const uint8_t opt[11] = {0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0};
	size_t n = 0;
	memset(q, 0, MSG_HDR);
	q[2] = 0x01;
	q[5] = 1;
	n = MSG_HDR;
	n += name_wire(name_num[i / 2], q + n);
	const uint8_t tail[4] = {0, 1, 0, 1};
	memcpy(q + n, tail, 4);
	n += 4;
	if (i & 1) {
		memcpy(q + n, opt, sizeof(opt));
		n += sizeof(opt);
		q[11] = 1;
	}
	return n;
}

static bool key_of(unsigned i, struct cache_key *k, uint8_t *q, size_t *qlen, struct msg_info *mi)
{
	*qlen = query_of(i, q);
	return msg_parse_query(q, *qlen, mi) == MSG_OK && cache_key_of(k, q, mi, 0);
}

static void put(struct cache *c, unsigned i, struct ctl *in)
{
	static uint8_t q[512], a[MSG_MAX];
	struct cache_key k;
	struct msg_info mi, ami;
	size_t qlen, len = ctl_u16(in) % 1200;
	if (!key_of(i, &k, q, &qlen, &mi))
		return;
	for (size_t j = 0; j < MSG_HDR; j++)
		a[j] = ctl_u8(in);
	a[2] |= 0x80; /* QR */
	a[4] = 0;
	a[5] = 1;
	size_t qend = mi.question_end;
	memcpy(a + MSG_HDR, q + MSG_HDR, qend - MSG_HDR);
	len = len < in->n ? len : in->n;
	memcpy(a + qend, in->p, len);
	in->p += len;
	in->n -= len;
	len += qend;
	if (!msg_answer_matches(a, len, q, &mi) || msg_scan_answer(a, len, &mi, &ami) < 0)
		return;
	enum cache_put_result r = cache_put(c, &k, a, len, &CC, 0);
	CHECK(r == CACHE_STORED || r == CACHE_NOT_CACHEABLE || r == CACHE_TOO_BIG);
	if (r != CACHE_STORED)
		return; /* (what k had stays) */
	sh[i].stored = true;
	sh[i].exact = !ami.opt_off || ami.opt_len == 11;
	sh[i].len = len;
	memcpy(sh[i].msg, a, len);
	sh[i].msg[0] = sh[i].msg[1] = 0;
}

static void get(struct cache *c, unsigned i)
{
	static uint8_t q[512], out[MSG_MAX];
	struct cache_key k;
	struct msg_info mi, omi;
	size_t qlen, len;
	bool refresh = false;
	if (!key_of(i, &k, q, &qlen, &mi))
		return;
	enum cache_result r = cache_get(c, &k, 0, 0, out, sizeof(out), &len, &refresh);
	if (r == CACHE_MISS)
		return;
	CHECK(r == CACHE_FRESH && sh[i].stored);
	CHECK(msg_scan(out, len, &omi) == 0 && omi.has_question);
	CHECK(len <= sh[i].len);
	if (sh[i].exact)
		CHECK(len == sh[i].len && memcmp(out, sh[i].msg, len) == 0);
}

static void flush(struct cache *c, unsigned arg)
{
	size_t stored = 0, dropped;
	if (arg & 0x80) {
		for (unsigned i = 0; i < KEYS; i++)
			stored += sh[i].stored;
		dropped = cache_flush(c, NULL, false);
		for (unsigned i = 0; i < KEYS; i++)
			sh[i].stored = false;
	} else {
		unsigned n = arg % NAMES;
		uint8_t dn[16];
		name_wire(name_num[n], dn);
		dn[1] = 'N'; /* (any case) */
		dn[7] = 'T';
		stored = sh[2 * n].stored + sh[2 * n + 1].stored;
		dropped = cache_flush(c, dn, false);
		sh[2 * n].stored = sh[2 * n + 1].stored = false;
	}
	CHECK(dropped <= stored);
}

static void names_of_one_shard(void)
{
	static bool done;
	for (unsigned num = 0, found = 0; !done && found < NAMES; num++) {
		uint8_t q[512];
		struct msg_info mi;
		struct cache_key k;
		name_num[found] = (uint16_t)num;
		size_t qlen = query_of(2 * found, q);
		CHECK(num < 10000 && msg_parse_query(q, qlen, &mi) == MSG_OK && cache_key_of(&k, q, &mi, 0));
		found += (k.hash >> 59) == 0;
	}
	done = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl in = {data, size};
	names_of_one_shard();
	struct cache *c = cache_new(SIZE);
	CHECK(c);
	for (unsigned i = 0; i < KEYS; i++)
		sh[i].stored = false;
	while (in.n) {
		uint8_t op = ctl_u8(&in), arg = ctl_u8(&in);
		switch (op % 3) {
		case 0: put(c, arg % KEYS, &in); break;
		case 1: get(c, arg % KEYS); break;
		default: flush(c, arg); break;
		}
		uint64_t entries, bytes, stored = 0;
		cache_usage(c, &entries, &bytes);
		for (unsigned i = 0; i < KEYS; i++)
			stored += sh[i].stored;
		CHECK(bytes <= SIZE && entries <= stored);
	}
	/* every entry the cache counts can be found (the index lost none) */
	uint64_t entries, bytes, found = 0;
	cache_usage(c, &entries, &bytes);
	for (unsigned i = 0; i < KEYS; i++) {
		static uint8_t q[512], out[MSG_MAX];
		struct cache_key k;
		struct msg_info mi;
		size_t qlen, len;
		found += key_of(i, &k, q, &qlen, &mi) && cache_get(c, &k, 0, 0, out, sizeof(out), &len, NULL) != CACHE_MISS;
	}
	CHECK(found == entries);
	cache_free(c);
	return 0;
}
