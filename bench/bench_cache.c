/* bench_cache.c -- the cache's share of a query, alone, under callgrind
 * (bench/README.md, "The cache scenarios"): what dnsmux's miss path does
 * for the cache -- cache_key_of, a missing cache_get, msg_scan_answer of
 * the origin's answer and cache_put -- for NAMES unique names shaped as
 * bench/run's miss workload (<8 hex digits>N.bench.test. A, RD, no EDNS;
 * the answer knotd's wildcard gives: one A record, TTL 3600), into a cache
 * of SIZE bytes; then HITS lookups of the first 100 names. Per-call costs:
 * callgrind_annotate --inclusive=yes, divided by the call counts.
 * Usage: bench_cache SIZE NAMES HITS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libknot/libknot.h>
#include "dns/msg.h"
#include "policy/cache.h"

static const struct cache_conf CC = {.min_ttl_s = 0, .max_ttl_s = 86400, .neg_max_ttl_s = 3600};

/* The query for name (wire form, nl bytes) and the origin's answer to it. */
static size_t build(uint8_t *qw, uint8_t *aw, size_t *alen, const uint8_t *dn, size_t nl, uint16_t id)
{
	static const uint8_t hdr_q[MSG_HDR] = {0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
	static const uint8_t hdr_a[MSG_HDR] = {0, 0, 0x85, 0x00, 0, 1, 0, 1, 0, 0, 0, 0};
	static const uint8_t tail[4] = {0, 1, 0, 1};
	static const uint8_t rr[16] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 1};
	memcpy(qw, hdr_q, MSG_HDR);
	knot_wire_set_id(qw, id);
	memcpy(qw + MSG_HDR, dn, nl);
	memcpy(qw + MSG_HDR + nl, tail, 4);
	memcpy(aw, hdr_a, MSG_HDR);
	knot_wire_set_id(aw, id);
	memcpy(aw + MSG_HDR, dn, nl);
	memcpy(aw + MSG_HDR + nl, tail, 4);
	memcpy(aw + MSG_HDR + nl + 4, rr, sizeof(rr));
	*alen = MSG_HDR + nl + 4 + sizeof(rr);
	return MSG_HDR + nl + 4;
}

static size_t name_of(uint8_t *dn, unsigned prefix, int i)
{
	char name[64];
	snprintf(name, sizeof(name), "%08x%d.bench.test.", prefix, i);
	knot_dname_from_str(dn, name, KNOT_DNAME_MAXLEN);
	return knot_dname_size(dn);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s SIZE NAMES HITS\n", argv[0]);
		return 2;
	}
	uint64_t size = strtoull(argv[1], NULL, 10);
	int names = atoi(argv[2]), hits = atoi(argv[3]);
	struct cache *c = cache_new(size);
	if (!c)
		return 1;
	static uint8_t qw[MSG_MAX], aw[MSG_MAX], out[MSG_MAX];
	uint8_t dn[KNOT_DNAME_MAXLEN];
	unsigned prefix = 0x5eed1234;
	long stored = 0, fresh = 0;
	for (int i = 0; i < names; i++) {
		size_t nl = name_of(dn, prefix, i), alen, len;
		size_t qlen = build(qw, aw, &alen, dn, nl, (uint16_t)i);
		struct msg_info mi, ami;
		struct cache_key k;
		if (msg_parse_query(qw, qlen, &mi) != MSG_OK || !cache_key_of(&k, qw, &mi, 0))
			return 1;
		if (cache_get(c, &k, 1000, 0, out, sizeof(out), &len, NULL) != CACHE_MISS)
			return 1;
		if (!msg_answer_matches(aw, alen, qw, &mi) || msg_scan_answer(aw, alen, &mi, &ami) < 0)
			return 1;
		stored += cache_put(c, &k, aw, alen, &CC, 1000) == CACHE_STORED;
	}
	for (int i = 0; i < hits; i++) {
		size_t nl = name_of(dn, prefix, i % 100), alen, len;
		size_t qlen = build(qw, aw, &alen, dn, nl, (uint16_t)i);
		struct msg_info mi;
		struct cache_key k;
		bool refresh = false;
		if (msg_parse_query(qw, qlen, &mi) != MSG_OK || !cache_key_of(&k, qw, &mi, 0))
			return 1;
		fresh += cache_get(c, &k, 2000, 0, out, sizeof(out), &len, &refresh) == CACHE_FRESH;
	}
	uint64_t entries, bytes;
	cache_usage(c, &entries, &bytes);
	printf("%d names, %ld stored; %d lookups, %ld fresh; %llu entries, %llu bytes\n", names, stored, hits, fresh,
	       (unsigned long long)entries, (unsigned long long)bytes);
	cache_free(c);
	return 0;
}
