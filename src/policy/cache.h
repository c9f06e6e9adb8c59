/* cache.h -- the answer cache, shared by all workers (DESIGN.md: the one
 * lock on the query path, sharded so that workers seldom meet on it).
 *
 * An entry is an upstream's whole answer (fetched over a stream, or over UDP
 * at the client's size and retried over TCP when truncated), keyed by the
 * lower-case qname, qtype, qclass, the RD, CD and DO bits, whether the
 * query had EDNS, and a variant byte for what else changes the answer
 * (the DNS64 entry that applied). A hit copies it out with its TTLs counted
 * down; the caller puts the client's ID and question case back and
 * truncates to the client's size (so a client that takes the whole answer
 * never gets TC=1 because an earlier one could not). TTLs are clamped to
 * min-ttl/max-ttl; NXDOMAIN and NODATA are cached for the SOA's negative
 * TTL (RFC 2308 5: the SOA's TTL and MINIMUM, the smaller, capped by
 * negative-max-ttl); SERVFAIL, TC=1, other rcodes and answers without a TTL
 * are not.
 *
 * Memory: each shard has one ring of its share of size (less its index,
 * 8 bytes per 64 of the share, fixed: see cache.c), taken
 * once and never grown. A put takes its record -- a 28-byte header, the
 * TTL offsets, the message; the key is the message's own question, stored
 * in lower case, and two bytes -- at the ring's head, rounded to 16 bytes;
 * room comes from the tail, the oldest record, so records never fragment
 * the ring and no put calls malloc. Eviction is CLOCK (second-chance
 * FIFO), the usual stand-in for LRU: a tail record hit since it was put
 * is moved to the head once (at most a few per put) instead of dropped.
 * The bytes a shard reports are its index and ring allocation, its records
 * (live, and replaced or flushed ones until the tail passes them) and the
 * top of the ring skipped at a wrap: never more than its share of size.
 * Expired entries stay (until evicted or replaced) so that
 * serve-stale (RFC 8767) can answer from them. No I/O: unit-tested alone. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libknot/libknot.h>
#include "config/config.h"
#include "dns/msg.h"


#define CACHE_STALE_TTL 30 /* RFC 8767 4: the TTL of a stale answer */

/* key flags */
#define CACHE_KEY_RD 1
#define CACHE_KEY_CD 2
#define CACHE_KEY_DO 4
#define CACHE_KEY_EDNS 8

#define CACHE_KEY_MAX (KNOT_DNAME_MAXLEN + 6 + 8) /* name, type, class, flags, variant; room for the name's last 8-byte store */

struct cache_key {
	uint64_t hash;
	uint16_t len;
	uint8_t b[CACHE_KEY_MAX]; /* lower-case qname, qtype, qclass, flags, variant */
};

struct cache;

/** The key of a query msg_parse_query passed; false when its answer must
 * not be cached or come from the cache (an ECS option: the answer is for
 * the client's subnet, RFC 7871 7.3; or a record besides the question and
 * the OPT, such as a TSIG). */
bool cache_key_of(struct cache_key *k, const uint8_t *query, const struct msg_info *mi, uint8_t variant);

/** A cache of at most size bytes (index, records and their headers), all
 * of it allocated here -- the rings lazily, as malloc maps them; NULL on
 * ENOMEM. */
struct cache *cache_new(uint64_t size);
void cache_free(struct cache *c);

/** Start fetching the memory a cache_get of k will read (put: and that a
 * cache_put will write -- the slots, the records it is likely to evict, the
 * ring's head) without waiting for it: a worker calls it for each query
 * or answer of a batch before it handles the first, so that their memory
 * accesses overlap instead of stalling one after another. Takes no lock;
 * a hint only (whatever the shard does meanwhile, nothing is wrong). */
void cache_prefetch(struct cache *c, const struct cache_key *k, bool put);

enum cache_result {
	CACHE_MISS = 0,
	CACHE_FRESH, /* within its TTL */
	CACHE_STALE, /* expired less than stale_ms ago, TTLs set to CACHE_STALE_TTL */
};

/** Look k up at now_ms. A hit is copied to out (cap bytes; MSG_MAX always
 * fits) with its TTLs counted down, ID 0, the question in lower case; *len
 * its length. With stale_ms, an entry expired less than that long ago is a
 * CACHE_STALE hit; without, a miss. *refresh (may be NULL) is set true once
 * per entry, on the first fresh hit in the last tenth of its TTL. */
enum cache_result cache_get(struct cache *c, const struct cache_key *k, uint64_t now_ms, uint64_t stale_ms,
			    uint8_t *out, size_t cap, size_t *len, bool *refresh);

enum cache_put_result {
	CACHE_STORED = 0,
	CACHE_NOT_CACHEABLE, /* rcode, TC=1, no TTL (zero, or a negative answer without SOA) */
	CACHE_TOO_BIG,       /* larger than half a shard's ring */
	CACHE_NOMEM,
};

/** Store ans (len bytes: an upstream's answer to the query of k, which
 * msg_answer_matches and msg_scan_answer accepted -- its question is k's
 * but for case) at now_ms, replacing what k had; older entries of its
 * shard make room. Its TTLs are
 * clamped by cc in place as they are walked (the client that asked sees
 * what the next ones will), whether or not it is stored -- one found not
 * cacheable part way (a TSIG, a negative answer without SOA) may keep the
 * clamped TTLs of its first records; the copy has ID 0 and the EDNS
 * COOKIE option removed (it is the client's and the server's, RFC 7873). */
enum cache_put_result cache_put(struct cache *c, const struct cache_key *k, uint8_t *ans, size_t len,
				const struct cache_conf *cc, uint64_t now_ms);

/** Drop every entry (name NULL), or those whose qname is name (wire form,
 * any case) -- with below, also every name under it, on label boundaries
 * -- whatever their type; returns how many. Any thread (each shard under
 * its lock, one after another): the control socket's cache-flush. */
size_t cache_flush(struct cache *c, const uint8_t *name, bool below);

/** Entries and bytes held now (summed over the shards, each under its lock). */
void cache_usage(struct cache *c, uint64_t *entries, uint64_t *bytes);
