/* test_cache.c -- src/policy/cache.c alone, with a fake clock: the key
 * (case folded, the bits that change an answer, ECS and TSIG queries
 * without one), TTLs clamped and counted down, negative answers for the
 * SOA's time (RFC 2308 5), what is never cached, the cookie taken out,
 * eviction within the byte budget, serve-stale, the refresh signal, a
 * whole answer truncated per client at hit time, flush; and the shards'
 * rings: room reused whatever the sizes, big answers, the second chance a
 * hit earns. */
#include <pthread.h>
#include "test.h"
#include "dns/msg.h"
#include "policy/cache.h"

static const struct cache_conf CC = {
	.size = 1 << 20, .min_ttl_s = 0, .max_ttl_s = 86400, .neg_max_ttl_s = 3600, .stale_s = 0, .prefetch = true};

static void key_for(struct cache_key *k, struct pb *q)
{
	struct msg_info mi;
	assert_int_equal(msg_parse_query(q->b, q->len, &mi), MSG_OK);
	assert_true(cache_key_of(k, q->b, &mi, 0));
}

static bool key_of(struct cache_key *k, struct pb *q)
{
	struct msg_info mi;
	assert_int_equal(msg_parse_query(q->b, q->len, &mi), MSG_OK);
	return cache_key_of(k, q->b, &mi, 0);
}

static struct pb q, a;

/* An answer: the question, one A record (ttl) for name, an OPT when edns. */
static void answer_a(struct pb *p, const char *name, uint32_t ttl, bool edns)
{
	pb_hdr(p, 0x1234, PB_QR | PB_RD | PB_RA, 1, 1, 0, edns ? 1 : 0);
	pb_question(p, name, KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_u16(p, 0xc00c);
	pb_rr_tail(p, KNOT_RRTYPE_A, KNOT_CLASS_IN, ttl, "\xc0\x00\x02\x01", 4);
	if (edns)
		pb_opt(p, 1232, false, NULL, 0);
}

/* Store answer_a's answer (TTL 300) for "<prefix><i>.example."; its key in k. */
static void put_a(struct cache *c, const char *prefix, unsigned i, struct cache_key *k)
{
	char name[64];
	snprintf(name, sizeof(name), "%s%u.example.", prefix, i);
	pb_query(&q, 1, name, KNOT_RRTYPE_A, 0, false);
	key_for(k, &q);
	answer_a(&a, name, 300, false);
	assert_int_equal(cache_put(c, k, a.b, a.len, &CC, 0), CACHE_STORED);
}

/* A negative answer: rcode, the SOA in authority (its TTL and MINIMUM). */
static void answer_neg(struct pb *p, const char *name, int rcode, uint32_t soa_ttl, uint32_t minimum)
{
	pb_hdr(p, 1, (uint16_t)(PB_QR | PB_RD | PB_RA | rcode), 1, 0, 1, 0);
	pb_question(p, name, KNOT_RRTYPE_A, KNOT_CLASS_IN);
	struct pb rd = {.len = 0};
	pb_name(&rd, "ns.example.");
	pb_name(&rd, "hostmaster.example.");
	pb_u32(&rd, 1);
	pb_u32(&rd, 3600);
	pb_u32(&rd, 600);
	pb_u32(&rd, 86400);
	pb_u32(&rd, minimum);
	pb_rr(p, "example.", KNOT_RRTYPE_SOA, KNOT_CLASS_IN, soa_ttl, rd.b, (uint16_t)rd.len);
}

static uint32_t ttl_at(const uint8_t *m, size_t off)
{
	return knot_wire_read_u32(m + off);
}

/* offset of the first record's TTL in answer_a's layout */
static size_t a_ttl_off(const char *name)
{
	uint8_t dn[KNOT_DNAME_MAXLEN];
	assert_non_null(knot_dname_from_str(dn, name, sizeof(dn)));
	return MSG_HDR + knot_dname_size(dn) + 4 + 2 + 4;
}

static uint8_t out[MSG_MAX];

/* An answer with n A records for name (TTL 300). */
static void answer_n(struct pb *p, const char *name, unsigned n)
{
	pb_hdr(p, 0x4321, PB_QR | PB_RD | PB_RA, 1, (uint16_t)n, 0, 0);
	pb_question(p, name, KNOT_RRTYPE_A, KNOT_CLASS_IN);
	for (unsigned i = 0; i < n; i++) {
		uint8_t addr[4] = {192, 0, (uint8_t)(i >> 8), (uint8_t)i};
		pb_u16(p, 0xc00c);
		pb_rr_tail(p, KNOT_RRTYPE_A, KNOT_CLASS_IN, 300, addr, 4);
	}
}

/* Bytes a cache of size takes empty (its index and allocations). */
static uint64_t empty_bytes(uint64_t size)
{
	struct cache *c = cache_new(size);
	uint64_t entries, bytes;
	assert_non_null(c);
	cache_usage(c, &entries, &bytes);
	cache_free(c);
	return bytes;
}

/* A name "<prefix><i>.example." (i from *i on) whose key falls in shard
 * (the hash's top 5 bits: cache.c's 32 shards); its key in k. */
static void name_in_shard(char *name, size_t cap, const char *prefix, unsigned *i, unsigned shard, struct cache_key *k)
{
	for (;; (*i)++) {
		snprintf(name, cap, "%s%u.example.", prefix, *i);
		pb_query(&q, 1, name, KNOT_RRTYPE_A, 0, false);
		key_for(k, &q);
		if ((k->hash >> 59) == shard) {
			(*i)++;
			return;
		}
	}
}

static void key_folds_case_and_keeps_the_bits(void **state)
{
	(void)state;
	struct cache_key k1, k2;
	pb_query(&q, 1, "WwW.Example.", KNOT_RRTYPE_A, 0, false);
	key_for(&k1, &q);
	pb_query(&q, 2, "www.example.", KNOT_RRTYPE_A, 0, false);
	key_for(&k2, &q);
	assert_int_equal(k1.len, k2.len);
	assert_memory_equal(k1.b, k2.b, k1.len);
	assert_true(k1.hash == k2.hash);
	/* each of these changes the answer: another key */
	struct pb *v = &q;
	pb_query(v, 1, "www.example.", KNOT_RRTYPE_AAAA, 0, false);
	key_for(&k2, v);
	assert_false(k1.hash == k2.hash && memcmp(k1.b, k2.b, k1.len) == 0);
	pb_query(v, 1, "www.example.", KNOT_RRTYPE_A, 1232, false); /* EDNS */
	key_for(&k2, v);
	assert_memory_not_equal(k1.b, k2.b, k1.len);
	struct cache_key k3;
	pb_query(v, 1, "www.example.", KNOT_RRTYPE_A, 1232, true); /* DO */
	key_for(&k3, v);
	assert_memory_not_equal(k2.b, k3.b, k2.len);
	pb_hdr(v, 1, PB_RD | PB_CD, 1, 0, 0, 0); /* CD */
	pb_question(v, "www.example.", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	key_for(&k2, v);
	assert_memory_not_equal(k1.b, k2.b, k1.len);
	pb_hdr(v, 1, 0, 1, 0, 0, 0); /* RD=0 */
	pb_question(v, "www.example.", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	key_for(&k2, v);
	assert_memory_not_equal(k1.b, k2.b, k1.len);
	/* ECS: the answer is for the client's subnet: no key */
	static const uint8_t ecs[] = {0, 8, 0, 7, 0, 1, 24, 0, 192, 0, 2};
	pb_hdr(v, 1, PB_RD, 1, 0, 0, 1);
	pb_question(v, "www.example.", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_opt(v, 1232, false, ecs, sizeof(ecs));
	assert_false(key_of(&k2, v));
}


/* A query for a name given in wire form (nl bytes), type A. */
static void query_wire(struct pb *p, const uint8_t *dn, size_t nl)
{
	pb_hdr(p, 1, PB_RD, 1, 0, 0, 0);
	pb_bytes(p, dn, nl);
	pb_u16(p, KNOT_RRTYPE_A);
	pb_u16(p, KNOT_CLASS_IN);
}

/* Only A-Z fold, whatever the name's length (the key is built 8 bytes at
 * a time, the last word shifted or overlapping): every byte value against
 * itself with bit 5 flipped, at each place of names 3 to 70 bytes long. */
static void key_folds_exactly_a_to_z(void **state)
{
	(void)state;
	uint8_t dn[80], dn2[80];
	struct cache_key k1, k2;
	for (size_t nl = 3; nl <= 70; nl++) {
		/* labels of up to 63 bytes: one, or two when longer */
		size_t l1 = nl - 2 > 63 ? 30 : nl - 2;
		dn[0] = (uint8_t)l1;
		memset(dn + 1, 'x', l1);
		if (l1 != nl - 2) {
			dn[1 + l1] = (uint8_t)(nl - 3 - l1);
			memset(dn + 2 + l1, 'y', nl - 3 - l1);
		}
		dn[nl - 1] = 0;
		for (unsigned b = 1; b < 256; b += (nl < 12 ? 1 : 7)) {
			size_t at = 1 + (b + nl) % l1; /* a byte of the first label */
			if (at == nl - 2 && b >= 0xc0)
				continue; /* (reads as a pointer: no key, see cache_key_of) */
			memcpy(dn2, dn, nl);
			dn[at] = (uint8_t)b;
			dn2[at] = (uint8_t)(b ^ 0x20);
			query_wire(&q, dn, nl);
			key_for(&k1, &q);
			query_wire(&q, dn2, nl);
			key_for(&k2, &q);
			bool letter = (b | 0x20) >= 'a' && (b | 0x20) <= 'z';
			bool same = k1.len == k2.len && memcmp(k1.b, k2.b, k1.len) == 0;
			assert_true(same == letter);
			if (letter)
				assert_true(k1.hash == k2.hash);
			assert_int_equal(k1.len, nl + 6);
			dn[at] = 'x';
		}
	}
}

static void ttl_counts_down_and_is_clamped(void **state)
{
	(void)state;
	struct cache *c = cache_new(1 << 20);
	struct cache_key k;
	size_t len;
	pb_query(&q, 7, "www.example.", KNOT_RRTYPE_A, 0, false);
	key_for(&k, &q);
	assert_int_equal(cache_get(c, &k, 1000, 0, out, sizeof(out), &len, NULL), CACHE_MISS);
	answer_a(&a, "www.example.", 300, false);
	assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 1000), CACHE_STORED);
	assert_int_equal(cache_get(c, &k, 1000, 0, out, sizeof(out), &len, NULL), CACHE_FRESH);
	assert_int_equal(len, a.len);
	assert_int_equal(knot_wire_get_id(out), 0);
	assert_int_equal(ttl_at(out, a_ttl_off("www.example.")), 300);
	assert_int_equal(cache_get(c, &k, 1000 + 99999, 0, out, sizeof(out), &len, NULL), CACHE_FRESH);
	assert_int_equal(ttl_at(out, a_ttl_off("www.example.")), 201);
	assert_int_equal(cache_get(c, &k, 1000 + 300000, 0, out, sizeof(out), &len, NULL), CACHE_MISS); /* expired */
	/* clamped: max-ttl lowers, min-ttl raises */
	struct cache_conf cc = CC;
	cc.max_ttl_s = 60;
	answer_a(&a, "www.example.", 300, false);
	assert_int_equal(cache_put(c, &k, a.b, a.len, &cc, 0), CACHE_STORED);
	assert_int_equal(cache_get(c, &k, 0, 0, out, sizeof(out), &len, NULL), CACHE_FRESH);
	assert_int_equal(ttl_at(out, a_ttl_off("www.example.")), 60);
	cc = CC;
	cc.min_ttl_s = 30;
	answer_a(&a, "www.example.", 0, false);
	assert_int_equal(cache_put(c, &k, a.b, a.len, &cc, 0), CACHE_STORED);
	assert_int_equal(cache_get(c, &k, 0, 0, out, sizeof(out), &len, NULL), CACHE_FRESH);
	assert_int_equal(ttl_at(out, a_ttl_off("www.example.")), 30);
	/* TTL 0 without min-ttl: not cached (and what k had is kept) */
	answer_a(&a, "www.example.", 0, false);
	assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_NOT_CACHEABLE);
	cache_free(c);
}

static void negative_answers_for_the_soas_time(void **state)
{
	(void)state;
	struct cache *c = cache_new(1 << 20);
	struct cache_key k;
	size_t len;
	pb_query(&q, 7, "nx.example.", KNOT_RRTYPE_A, 0, false);
	key_for(&k, &q);
	/* min(SOA TTL 3600, MINIMUM 60) = 60 */
	answer_neg(&a, "nx.example.", KNOT_RCODE_NXDOMAIN, 3600, 60);
	assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_STORED);
	assert_int_equal(cache_get(c, &k, 59999, 0, out, sizeof(out), &len, NULL), CACHE_FRESH);
	assert_int_equal(knot_wire_get_rcode(out), KNOT_RCODE_NXDOMAIN);
	assert_int_equal(cache_get(c, &k, 60000, 0, out, sizeof(out), &len, NULL), CACHE_MISS);
	/* min(SOA TTL 30, MINIMUM 600) = 30; NODATA as NXDOMAIN */
	answer_neg(&a, "nx.example.", KNOT_RCODE_NOERROR, 30, 600);
	assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_STORED);
	assert_int_equal(cache_get(c, &k, 29999, 0, out, sizeof(out), &len, NULL), CACHE_FRESH);
	assert_int_equal(cache_get(c, &k, 30000, 0, out, sizeof(out), &len, NULL), CACHE_MISS);
	/* capped by negative-max-ttl, and the SOA says so to the client */
	struct cache_conf cc = CC;
	cc.neg_max_ttl_s = 10;
	answer_neg(&a, "nx.example.", KNOT_RCODE_NXDOMAIN, 3600, 3600);
	assert_int_equal(cache_put(c, &k, a.b, a.len, &cc, 0), CACHE_STORED);
	assert_int_equal(cache_get(c, &k, 4000, 0, out, sizeof(out), &len, NULL), CACHE_FRESH);
	size_t soa_off = MSG_HDR + 12 /* nx.example. */ + 4 + 9 /* example. */ + 4;
	assert_int_equal(ttl_at(out, soa_off), 6);
	/* a negative answer without a SOA: not cached (RFC 2308 5) */
	pb_hdr(&a, 1, PB_QR | KNOT_RCODE_NXDOMAIN, 1, 0, 0, 0);
	pb_question(&a, "nx.example.", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_NOT_CACHEABLE);
	cache_free(c);
}

static void servfail_and_tc_are_not_cached(void **state)
{
	(void)state;
	struct cache *c = cache_new(1 << 20);
	struct cache_key k;
	size_t len;
	pb_query(&q, 7, "www.example.", KNOT_RRTYPE_A, 0, false);
	key_for(&k, &q);
	answer_a(&a, "www.example.", 300, false);
	a.b[3] = (uint8_t)((a.b[3] & 0xf0) | KNOT_RCODE_SERVFAIL);
	assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_NOT_CACHEABLE);
	answer_a(&a, "www.example.", 300, false);
	knot_wire_set_tc(a.b);
	assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_NOT_CACHEABLE);
	answer_a(&a, "www.example.", 300, false);
	a.b[3] = (uint8_t)((a.b[3] & 0xf0) | KNOT_RCODE_REFUSED);
	assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_NOT_CACHEABLE);
	/* signed for one client (a TSIG in the additional section) */
	pb_hdr(&a, 1, PB_QR | PB_RD | PB_RA, 1, 1, 0, 1);
	pb_question(&a, "www.example.", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_u16(&a, 0xc00c);
	pb_rr_tail(&a, KNOT_RRTYPE_A, KNOT_CLASS_IN, 300, "\xc0\x00\x02\x01", 4);
	pb_rr(&a, "key.example.", KNOT_RRTYPE_TSIG, KNOT_CLASS_ANY, 0, "\0\0\0\0", 4);
	assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_NOT_CACHEABLE);
	assert_int_equal(cache_get(c, &k, 0, 0, out, sizeof(out), &len, NULL), CACHE_MISS);
	cache_free(c);
}

static void the_cookie_is_taken_out(void **state)
{
	(void)state;
	struct cache *c = cache_new(1 << 20);
	struct cache_key k;
	size_t len;
	pb_query(&q, 7, "www.example.", KNOT_RRTYPE_A, 1232, false);
	key_for(&k, &q);
	static const uint8_t opts[] = {0, 10, 0, 16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
				       0, 3, 0, 2, 'n', 's'}; /* COOKIE, then NSID */
	pb_hdr(&a, 1, PB_QR | PB_RD | PB_RA, 1, 1, 0, 1);
	pb_question(&a, "www.example.", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_u16(&a, 0xc00c);
	pb_rr_tail(&a, KNOT_RRTYPE_A, KNOT_CLASS_IN, 60, "\xc0\x00\x02\x01", 4);
	pb_opt(&a, 1232, false, opts, sizeof(opts));
	assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_STORED);
	assert_int_equal(cache_get(c, &k, 0, 0, out, sizeof(out), &len, NULL), CACHE_FRESH);
	assert_int_equal(len, a.len - 20);
	struct msg_info mi;
	assert_int_equal(msg_scan(out, len, &mi), 0);
	assert_int_equal(msg_find_option(out, mi.opt_off, mi.opt_len, MSG_OPT_COOKIE), 0);
	assert_true(msg_find_option(out, mi.opt_off, mi.opt_len, 3) > 0); /* NSID stays */
	cache_free(c);
}

static void eviction_keeps_within_the_budget(void **state)
{
	(void)state;
	const uint64_t size = 256 * 1024;
	struct cache *c = cache_new(size);
	struct cache_key k;
	uint64_t entries, bytes;
	for (unsigned i = 0; i < 20000; i++) {
		put_a(c, "n", i, &k);
		if (i % 1000 == 999) {
			cache_usage(c, &entries, &bytes);
			assert_true(bytes <= size);
		}
	}
	cache_usage(c, &entries, &bytes);
	assert_true(entries > 500 && entries < 20000);
	/* the most recent are there, the first ones gone */
	size_t len;
	pb_query(&q, 1, "n19999.example.", KNOT_RRTYPE_A, 0, false);
	key_for(&k, &q);
	assert_int_equal(cache_get(c, &k, 0, 0, out, sizeof(out), &len, NULL), CACHE_FRESH);
	pb_query(&q, 1, "n0.example.", KNOT_RRTYPE_A, 0, false);
	key_for(&k, &q);
	assert_int_equal(cache_get(c, &k, 0, 0, out, sizeof(out), &len, NULL), CACHE_MISS);
	assert_int_equal(cache_flush(c, NULL, false), entries);
	cache_usage(c, &entries, &bytes);
	assert_int_equal(entries, 0);
	cache_free(c);
}

static void stale_and_refresh(void **state)
{
	(void)state;
	struct cache *c = cache_new(1 << 20);
	struct cache_key k;
	size_t len;
	bool refresh = false;
	pb_query(&q, 7, "www.example.", KNOT_RRTYPE_A, 0, false);
	key_for(&k, &q);
	answer_a(&a, "www.example.", 100, false);
	assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_STORED);
	assert_int_equal(cache_get(c, &k, 89000, 0, out, sizeof(out), &len, &refresh), CACHE_FRESH);
	assert_false(refresh);
	assert_int_equal(cache_get(c, &k, 91000, 0, out, sizeof(out), &len, &refresh), CACHE_FRESH);
	assert_true(refresh); /* the last tenth: once */
	refresh = false;
	assert_int_equal(cache_get(c, &k, 92000, 0, out, sizeof(out), &len, &refresh), CACHE_FRESH);
	assert_false(refresh);
	/* expired: a miss, or stale within the window, with TTL 30 */
	assert_int_equal(cache_get(c, &k, 100000, 0, out, sizeof(out), &len, NULL), CACHE_MISS);
	assert_int_equal(cache_get(c, &k, 100000 + 59999, 60000, out, sizeof(out), &len, NULL), CACHE_STALE);
	assert_int_equal(ttl_at(out, a_ttl_off("www.example.")), CACHE_STALE_TTL);
	assert_int_equal(cache_get(c, &k, 100000 + 60000, 60000, out, sizeof(out), &len, NULL), CACHE_MISS);
	cache_free(c);
}

static void whole_answer_truncated_per_client(void **state)
{
	(void)state;
	struct cache *c = cache_new(1 << 20);
	struct cache_key k;
	size_t len;
	pb_query(&q, 7, "big.example.", KNOT_RRTYPE_A, 4096, false);
	key_for(&k, &q);
	size_t n = knot_answer(a.b, sizeof(a.b), 1, "big.example.", 100, 0, 4096); /* 100 A: > 512 bytes */
	a.len = n;
	assert_true(n > 1500);
	assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_STORED);
	/* a client taking 4096 gets it whole */
	assert_int_equal(cache_get(c, &k, 0, 0, out, sizeof(out), &len, NULL), CACHE_FRESH);
	assert_int_equal(len, n);
	assert_false(knot_wire_get_tc(out));
	/* one taking 1232 gets TC=1 from the same entry, and the next whole again */
	size_t t = msg_truncate(out, len, 1232);
	assert_true(t > 0 && t <= 1232);
	assert_true(knot_wire_get_tc(out));
	assert_int_equal(cache_get(c, &k, 0, 0, out, sizeof(out), &len, NULL), CACHE_FRESH);
	assert_int_equal(len, n);
	assert_false(knot_wire_get_tc(out));
	cache_free(c);
}

static void flush_one_name(void **state)
{
	(void)state;
	struct cache *c = cache_new(1 << 20);
	struct cache_key k1, k2;
	size_t len;
	pb_query(&q, 7, "www.example.", KNOT_RRTYPE_A, 0, false);
	key_for(&k1, &q);
	answer_a(&a, "www.example.", 100, false);
	assert_int_equal(cache_put(c, &k1, a.b, a.len, &CC, 0), CACHE_STORED);
	pb_query(&q, 7, "other.example.", KNOT_RRTYPE_A, 0, false);
	key_for(&k2, &q);
	answer_a(&a, "other.example.", 100, false);
	assert_int_equal(cache_put(c, &k2, a.b, a.len, &CC, 0), CACHE_STORED);
	uint8_t dn[KNOT_DNAME_MAXLEN];
	assert_non_null(knot_dname_from_str(dn, "WWW.example.", sizeof(dn)));
	assert_int_equal(cache_flush(c, dn, false), 1);
	assert_int_equal(cache_get(c, &k1, 0, 0, out, sizeof(out), &len, NULL), CACHE_MISS);
	assert_int_equal(cache_get(c, &k2, 0, 0, out, sizeof(out), &len, NULL), CACHE_FRESH);
	cache_free(c);
}


/* The index (open addressing, links moved back when one is dropped) loses
 * no entry and keeps none it should not: 300 names of one 4 KiB shard (64
 * slots, ~40 records: long runs, some wrapping round the table) put,
 * replaced, looked up and flushed in a random order 30,000 times. A name
 * is there right after its put, with the answer put; a flushed one is gone
 * until put again; and every 500 steps the names found are exactly the
 * entries the cache counts, each with its last answer. */
static void index_keeps_every_entry_findable(void **state)
{
	(void)state;
	enum { NAMES = 300 };
	struct cache *c = cache_new(32 * 4096);
	static char names[NAMES][64];
	static struct cache_key keys[NAMES];
	size_t lens[NAMES] = {0}; /* the last answer put (0: none, or flushed) */
	unsigned next = 0;
	for (unsigned i = 0; i < NAMES; i++)
		name_in_shard(names[i], sizeof(names[i]), "ix", &next, 5, &keys[i]);
	uint64_t rnd = 0x9e3779b97f4a7c15ull;
	size_t len;
	for (unsigned step = 1; step <= 30000; step++) {
		rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
		unsigned i = (unsigned)(rnd >> 33) % NAMES, op = (unsigned)(rnd >> 20) % 10;
		if (op < 6) {
			answer_n(&a, names[i], 1 + (unsigned)(rnd >> 45) % 3);
			assert_int_equal(cache_put(c, &keys[i], a.b, a.len, &CC, 0), CACHE_STORED);
			lens[i] = a.len;
			assert_int_equal(cache_get(c, &keys[i], 0, 0, out, sizeof(out), &len, NULL), CACHE_FRESH);
			assert_int_equal(len, a.len);
		} else if (op < 9) {
			enum cache_result r = cache_get(c, &keys[i], 0, 0, out, sizeof(out), &len, NULL);
			if (r != CACHE_MISS)
				assert_int_equal(len, lens[i]); /* (evicted: a miss) */
			else
				lens[i] = 0;
		} else {
			uint8_t dn[KNOT_DNAME_MAXLEN];
			assert_non_null(knot_dname_from_str(dn, names[i], sizeof(dn)));
			assert_true(cache_flush(c, dn, false) <= (lens[i] ? 1u : 0u)); /* (0: it was evicted) */
			lens[i] = 0;
			assert_int_equal(cache_get(c, &keys[i], 0, 0, out, sizeof(out), &len, NULL), CACHE_MISS);
		}
		if (step % 500)
			continue;
		uint64_t entries, bytes, found = 0;
		for (unsigned j = 0; j < NAMES; j++) {
			if (cache_get(c, &keys[j], 0, 0, out, sizeof(out), &len, NULL) == CACHE_MISS) {
				lens[j] = 0;
				continue;
			}
			assert_int_equal(len, lens[j]);
			found++;
		}
		cache_usage(c, &entries, &bytes);
		assert_int_equal(found, entries);
		assert_true(entries > 20);
	}
	cache_free(c);
}

/* A name read through a compression pointer from a TTL's bytes would
 * change as the cache rewrites them (clamped at the put, counted down at
 * every hit): such an answer is not cached. A name that points into
 * another record's RDATA -- the A record of a CNAME's target -- is. */
static void names_read_from_a_ttl_are_not_cached(void **state)
{
	(void)state;
	struct cache *c = cache_new(1 << 20);
	struct cache_key k;
	size_t len;
	pb_query(&q, 1, "www.example.", KNOT_RRTYPE_A, 0, false);
	key_for(&k, &q);
	/* the first record's TTL (at 12 + 13 + 4 + 2 + 4 = 35) is 01 61 00 00:
	 * read as a name, "a."; the second record's owner points there */
	pb_hdr(&a, 1, PB_QR | PB_RD | PB_RA, 1, 2, 0, 0);
	pb_question(&a, "www.example.", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_u16(&a, 0xc00c);
	pb_rr_tail(&a, KNOT_RRTYPE_A, KNOT_CLASS_IN, 0x01610000, "\xc0\x00\x02\x01", 4);
	assert_int_equal(a.b[35], 0x01);
	pb_u16(&a, 0xc000 | 35);
	pb_rr_tail(&a, KNOT_RRTYPE_A, KNOT_CLASS_IN, 300, "\xc0\x00\x02\x02", 4);
	struct msg_info mi, ami;
	assert_int_equal(msg_parse_query(q.b, q.len, &mi), MSG_OK);
	assert_true(msg_answer_matches(a.b, a.len, q.b, &mi));
	assert_true(msg_scan_answer(a.b, a.len, &mi, &ami) >= 0); /* (the answer is well formed as it came) */
	assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_NOT_CACHEABLE);
	assert_int_equal(cache_get(c, &k, 0, 0, out, sizeof(out), &len, NULL), CACHE_MISS);
	/* the same through a CNAME's RDATA: www CNAME a.example. (at 41), a A */
	pb_hdr(&a, 1, PB_QR | PB_RD | PB_RA, 1, 2, 0, 0);
	pb_question(&a, "www.example.", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_u16(&a, 0xc00c);
	pb_rr_tail(&a, KNOT_RRTYPE_CNAME, KNOT_CLASS_IN, 300, "\x01" "a" "\xc0\x10", 4);
	assert_int_equal(a.b[41], 0x01);
	pb_u16(&a, 0xc000 | 41);
	pb_rr_tail(&a, KNOT_RRTYPE_A, KNOT_CLASS_IN, 300, "\xc0\x00\x02\x02", 4);
	assert_true(msg_scan_answer(a.b, a.len, &mi, &ami) >= 0);
	assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_STORED);
	/* and a CNAME whose target is read from the TTL of the record before it */
	pb_hdr(&a, 1, PB_QR | PB_RD | PB_RA, 1, 2, 0, 0);
	pb_question(&a, "www.example.", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_u16(&a, 0xc00c);
	pb_rr_tail(&a, KNOT_RRTYPE_A, KNOT_CLASS_IN, 0x01610000, "\xc0\x00\x02\x01", 4);
	pb_u16(&a, 0xc00c);
	pb_rr_tail(&a, KNOT_RRTYPE_CNAME, KNOT_CLASS_IN, 300, "\xc0\x23", 2);
	assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_NOT_CACHEABLE);
	cache_free(c);
}

/* Answers of any size from 1 to 60 records, 20,000 of them through a
 * small cache: each is there whole right after its put, the bytes never
 * pass the size, the ring keeps being reused (entries stay many), and an
 * entry still there is the answer that was put. */
static void rings_reuse_room_whatever_the_sizes(void **state)
{
	(void)state;
	const uint64_t size = 512 * 1024;
	struct cache *c = cache_new(size);
	struct cache_key k;
	uint64_t entries, bytes, rnd = 0x9e3779b97f4a7c15ull;
	unsigned recent[64] = {0};
	char name[64];
	size_t len;
	for (unsigned i = 0; i < 20000; i++) {
		unsigned n = 1 + xr_below(&rnd, 60);
		snprintf(name, sizeof(name), "r%u.example.", i);
		pb_query(&q, 1, name, KNOT_RRTYPE_A, 0, false);
		key_for(&k, &q);
		answer_n(&a, name, n);
		assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_STORED);
		assert_int_equal(cache_get(c, &k, 0, 0, out, sizeof(out), &len, NULL), CACHE_FRESH);
		assert_int_equal(len, a.len);
		assert_memory_equal(out + 2, a.b + 2, len - 2); /* (ID 0) */
		recent[i % 64] = n;
		if (i >= 64) { /* one of the last 64, if it is still there, is as it was put */
			unsigned j = i - 1 - xr_below(&rnd, 63);
			snprintf(name, sizeof(name), "r%u.example.", j);
			pb_query(&q, 1, name, KNOT_RRTYPE_A, 0, false);
			key_for(&k, &q);
			if (cache_get(c, &k, 0, 0, out, sizeof(out), &len, NULL) == CACHE_FRESH) {
				answer_n(&a, name, recent[j % 64]);
				assert_int_equal(len, a.len);
				assert_memory_equal(out + 2, a.b + 2, len - 2);
			}
		}
		cache_usage(c, &entries, &bytes);
		assert_true(bytes <= size);
		if (i > 10000)
			assert_true(entries > 400); /* ~500 bytes a record: most of 512 KiB in use */
	}
	/* flushed, it is as it was new, and takes answers again */
	cache_usage(c, &entries, &bytes);
	assert_int_equal(cache_flush(c, NULL, false), entries);
	cache_usage(c, &entries, &bytes);
	assert_int_equal(entries, 0);
	assert_int_equal(bytes, empty_bytes(size));
	answer_n(&a, name, 3);
	assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_STORED);
	assert_int_equal(cache_get(c, &k, 0, 0, out, sizeof(out), &len, NULL), CACHE_FRESH);
	cache_free(c);
}

/* An answer up to half a shard finds room in a full one (the oldest make
 * way, however small they are); a larger one is CACHE_TOO_BIG. */
static void big_answers_make_room(void **state)
{
	(void)state;
	const uint64_t size = 32 * 128 * 1024; /* 128 KiB shards */
	struct cache *c = cache_new(size);
	struct cache_key k, big;
	uint64_t entries, bytes;
	size_t len;
	for (unsigned i = 0; i < 40000; i++)
		put_a(c, "s", i, &k);
	uint64_t before;
	cache_usage(c, &before, &bytes);
	pb_query(&q, 1, "big.example.", KNOT_RRTYPE_A, 0, false);
	key_for(&big, &q);
	answer_n(&a, "big.example.", 1900); /* 30 KB */
	assert_int_equal(cache_put(c, &big, a.b, a.len, &CC, 0), CACHE_STORED);
	assert_int_equal(cache_get(c, &big, 0, 0, out, sizeof(out), &len, NULL), CACHE_FRESH);
	assert_int_equal(len, a.len);
	assert_memory_equal(out + 2, a.b + 2, len - 2);
	cache_usage(c, &entries, &bytes);
	assert_true(bytes <= size);
	assert_true(entries < before && entries > before - 700); /* ~30 KB of small ones went, no more */
	answer_n(&a, "big.example.", 3900); /* 62 KB: more than half of 128 KiB less its index */
	assert_int_equal(cache_put(c, &big, a.b, a.len, &CC, 0), CACHE_TOO_BIG);
	assert_int_equal(cache_get(c, &big, 0, 0, out, sizeof(out), &len, NULL), CACHE_FRESH); /* the 30 KB one stays */
	cache_free(c);
}

/* Eviction takes the oldest first, but an entry hit since its put gets a
 * second chance: those put after it go first. */
static void a_hit_saves_an_entry_from_eviction(void **state)
{
	(void)state;
	struct cache *c = cache_new(32 * 8192); /* 8 KiB shards: ~70 records */
	struct cache_key k, first, second;
	uint64_t entries, bytes;
	char name[64];
	unsigned i = 0, cap = 0;
	size_t len;
	/* how many one-record answers shard 3 holds */
	for (uint64_t prev = 0;; prev = entries) {
		name_in_shard(name, sizeof(name), "cap", &i, 3, &k);
		answer_a(&a, name, 300, false);
		assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_STORED);
		cache_usage(c, &entries, &bytes);
		if (entries == prev) {
			cap = (unsigned)entries;
			break;
		}
	}
	assert_true(cap > 20);
	cache_flush(c, NULL, false);
	name_in_shard(name, sizeof(name), "x", &i, 3, &first);
	answer_a(&a, name, 300, false);
	assert_int_equal(cache_put(c, &first, a.b, a.len, &CC, 0), CACHE_STORED);
	name_in_shard(name, sizeof(name), "x", &i, 3, &second);
	answer_a(&a, name, 300, false);
	assert_int_equal(cache_put(c, &second, a.b, a.len, &CC, 0), CACHE_STORED);
	for (unsigned j = 2; j < cap - 2; j++) {
		name_in_shard(name, sizeof(name), "x", &i, 3, &k);
		answer_a(&a, name, 300, false);
		assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_STORED);
	}
	assert_int_equal(cache_get(c, &first, 0, 0, out, sizeof(out), &len, NULL), CACHE_FRESH); /* hit */
	for (unsigned j = 0; j < cap / 2; j++) {
		name_in_shard(name, sizeof(name), "y", &i, 3, &k);
		answer_a(&a, name, 300, false);
		assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_STORED);
	}
	assert_int_equal(cache_get(c, &second, 0, 0, out, sizeof(out), &len, NULL), CACHE_MISS);
	assert_int_equal(cache_get(c, &first, 0, 0, out, sizeof(out), &len, NULL), CACHE_FRESH);
	cache_usage(c, &entries, &bytes);
	assert_int_equal(entries, cap); /* moved, not copied */
	cache_free(c);
}

/* What flush or a replacement leaves is counted until the ring's tail
 * passes it, then reused. */
static void dropped_entries_are_counted_then_reused(void **state)
{
	(void)state;
	struct cache *c = cache_new(1 << 20);
	struct cache_key k;
	uint64_t entries, bytes, empty = empty_bytes(1 << 20), one;
	pb_query(&q, 7, "www.example.", KNOT_RRTYPE_A, 0, false);
	key_for(&k, &q);
	answer_a(&a, "www.example.", 300, false);
	assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_STORED);
	cache_usage(c, &entries, &bytes);
	one = bytes - empty;
	assert_true(entries == 1 && one >= a.len && one < a.len + 64);
	assert_int_equal(cache_put(c, &k, a.b, a.len, &CC, 0), CACHE_STORED); /* replaced */
	cache_usage(c, &entries, &bytes);
	assert_true(entries == 1 && bytes == empty + 2 * one);
	uint8_t dn[KNOT_DNAME_MAXLEN];
	assert_non_null(knot_dname_from_str(dn, "www.example.", sizeof(dn)));
	assert_int_equal(cache_flush(c, dn, false), 1);
	cache_usage(c, &entries, &bytes);
	assert_true(entries == 0 && bytes == empty + 2 * one);
	/* enough others in that shard and the ring has gone round: bytes stay bounded */
	for (unsigned i = 0; i < 50000; i++)
		put_a(c, "o", i, &k);
	cache_usage(c, &entries, &bytes);
	assert_true(bytes <= (1 << 20) && entries > 5000);
	cache_free(c);
}

/* Workers share the cache: threads putting and getting names that fall
 * in the same few shards (a 64 KiB cache: 2 KiB shards, records moving
 * and evicted all the time). Any hit is the answer of its own name, whole;
 * the bytes stay within the size. (Run under ThreadSanitizer too.) */
struct worker_arg {
	struct cache *c;
	unsigned seed;
};

static void *cache_worker(void *p)
{
	struct worker_arg *wa = p;
	static __thread struct pb tq, ta;
	static __thread uint8_t tout[MSG_MAX];
	uint64_t rnd = wa->seed;
	struct cache_key k;
	struct msg_info mi;
	char name[64];
	size_t len;
	for (unsigned i = 0; i < 20000; i++) {
		unsigned n = xr_below(&rnd, 200), records = 1 + n % 7;
		snprintf(name, sizeof(name), "w%u.example.", n);
		pb_query(&tq, 1, name, KNOT_RRTYPE_A, 0, false);
		if (msg_parse_query(tq.b, tq.len, &mi) != MSG_OK || !cache_key_of(&k, tq.b, &mi, 0))
			return "key";
		answer_n(&ta, name, records);
		if (xr_below(&rnd, 2)) {
			if (cache_put(wa->c, &k, ta.b, ta.len, &CC, 0) != CACHE_STORED)
				return "put";
		} else if (cache_get(wa->c, &k, 0, 0, tout, sizeof(tout), &len, NULL) == CACHE_FRESH) {
			if (len != ta.len || memcmp(tout + 2, ta.b + 2, len - 2) != 0)
				return "content";
		}
	}
	return NULL;
}

static void threads_share_the_shards(void **state)
{
	(void)state;
	struct cache *c = cache_new(64 * 1024);
	pthread_t t[4];
	struct worker_arg wa[4];
	for (unsigned i = 0; i < 4; i++) {
		wa[i] = (struct worker_arg){c, 1000 + i};
		assert_int_equal(pthread_create(&t[i], NULL, cache_worker, &wa[i]), 0);
	}
	for (unsigned i = 0; i < 4; i++) {
		void *r;
		assert_int_equal(pthread_join(t[i], &r), 0);
		if (r)
			fail_msg("worker %u: %s", i, (const char *)r);
	}
	uint64_t entries, bytes;
	cache_usage(c, &entries, &bytes);
	assert_true(bytes <= 64 * 1024 && entries > 0);
	cache_free(c);
}

/* cache-flush NAME (without --exact): the name and the names under it, on
 * label boundaries, every type; not a name that only ends in the same bytes */
static void flush_a_name_and_below(void **state)
{
	(void)state;
	static const char *const names[] = {"example.", "www.example.", "a.b.example.", "xexample.", "example.org.",
					    "other."};
	static const bool under[] = {true, true, true, false, false, false};
	struct cache *c = cache_new(1 << 20);
	struct cache_key k[6];
	size_t len;
	for (unsigned i = 0; i < 6; i++) {
		pb_query(&q, 7, names[i], KNOT_RRTYPE_A, 0, false);
		key_for(&k[i], &q);
		answer_a(&a, names[i], 100, false);
		assert_int_equal(cache_put(c, &k[i], a.b, a.len, &CC, 0), CACHE_STORED);
	}
	uint8_t dn[KNOT_DNAME_MAXLEN];
	assert_non_null(knot_dname_from_str(dn, "Example.", sizeof(dn)));
	assert_int_equal(cache_flush(c, dn, true), 3);
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(cache_get(c, &k[i], 0, 0, out, sizeof(out), &len, NULL), under[i] ? CACHE_MISS : CACHE_FRESH);
	/* the root is every name */
	assert_non_null(knot_dname_from_str(dn, ".", sizeof(dn)));
	assert_int_equal(cache_flush(c, dn, true), 3);
	cache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(key_folds_case_and_keeps_the_bits),
		cmocka_unit_test(key_folds_exactly_a_to_z),
		cmocka_unit_test(ttl_counts_down_and_is_clamped),
		cmocka_unit_test(negative_answers_for_the_soas_time),
		cmocka_unit_test(servfail_and_tc_are_not_cached),
		cmocka_unit_test(the_cookie_is_taken_out),
		cmocka_unit_test(eviction_keeps_within_the_budget),
		cmocka_unit_test(stale_and_refresh),
		cmocka_unit_test(whole_answer_truncated_per_client),
		cmocka_unit_test(flush_one_name),
		cmocka_unit_test(index_keeps_every_entry_findable),
		cmocka_unit_test(names_read_from_a_ttl_are_not_cached),
		cmocka_unit_test(rings_reuse_room_whatever_the_sizes),
		cmocka_unit_test(big_answers_make_room),
		cmocka_unit_test(a_hit_saves_an_entry_from_eviction),
		cmocka_unit_test(dropped_entries_are_counted_then_reused),
		cmocka_unit_test(threads_share_the_shards),
		cmocka_unit_test(flush_a_name_and_below),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
