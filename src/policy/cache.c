/* cache.c -- see cache.h. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "policy/cache.h"

#define CACHE_SHARDS 32                /* a power of two */
#define CACHE_BUCKETS_MIN 64           /* per shard, doubled as entries come */
#define CACHE_MALLOC_OVERHEAD 16       /* counted per allocation, so that size bounds the heap, not our sums */
#define CACHE_MAX_TTLS (MSG_MAX / 11)  /* records in a message: at least 11 bytes each */

struct entry {
	struct entry *hnext;       /* bucket chain */
	struct entry *prev, *next; /* LRU list: most recently used first */
	uint64_t hash;
	uint64_t stored_ms;        /* when it was put */
	uint64_t expire_ms;        /* stored_ms + its TTL */
	uint32_t ttl_s;            /* its TTL: the smallest of its records' (clamped) */
	uint16_t key_len, msg_len, n_ttls;
	uint16_t slack;            /* bytes allocated past the message (a cookie taken out) */
	bool refreshing;           /* a fresh hit asked for its refresh already */
	uint8_t data[];            /* n_ttls offsets (uint16, host order), the key, the message */
};

struct shard {
	pthread_spinlock_t lock; /* held for a lookup or an insert: a copy, a few pointers */
	struct entry **buckets;
	uint32_t n_buckets;        /* a power of two */
	uint32_t n;                /* entries */
	uint64_t bytes;            /* what they and the buckets take */
	uint64_t budget;
	struct entry lru;          /* sentinel */
} __attribute__((aligned(64)));

struct cache {
	struct shard shards[CACHE_SHARDS];
};

static size_t entry_size(const struct entry *e)
{
	return sizeof(*e) + 2u * e->n_ttls + e->key_len + e->msg_len + e->slack + CACHE_MALLOC_OVERHEAD;
}

static const uint8_t *entry_key(const struct entry *e)
{
	return e->data + 2u * e->n_ttls;
}

static uint8_t *entry_msg(struct entry *e)
{
	return e->data + 2u * e->n_ttls + e->key_len;
}

static inline uint8_t lower(uint8_t c)
{
	return (uint8_t)((unsigned)(c - 'A') < 26u ? c + 32 : c);
}

/* A hash of the key, 8 bytes at a time (the key buffer is zero-padded to a multiple of 8 past len). */
static uint64_t key_hash(const uint8_t *b, size_t len)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ len;
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v;
		memcpy(&v, b + i, 8);
		h = (h ^ v) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	return h ^ (h >> 29);
}

bool cache_key_of(struct cache_key *k, const uint8_t *query, const struct msg_info *mi, uint8_t variant)
{
	if (knot_wire_get_qdcount(query) != 1 || knot_wire_get_ancount(query) || knot_wire_get_nscount(query) ||
	    knot_wire_get_arcount(query) != (mi->opt_off ? 1 : 0))
		return false;
	if (mi->opt_off && mi->opt_len > 11 && msg_find_option(query, mi->opt_off, mi->opt_len, MSG_OPT_ECS))
		return false;
	const uint8_t *n = query + MSG_HDR;
	size_t nl = mi->qname_len, i;
	if (nl == 0 || nl > KNOT_DNAME_MAXLEN)
		return false;
	/* msg_parse_query checked the name. One that ends in a compression
	 * pointer is not worth a key: its last two bytes are 0b11xxxxxx and an
	 * offset (a name of labels ends in its 0 label; a label byte of 0xc0 or
	 * more just before it -- binary data -- only costs that name its key) */
	if (n[nl - 1] != 0 || (nl >= 2 && (n[nl - 2] & 0xc0) == 0xc0))
		return false;
	memcpy(k->b, n, nl);
	for (i = 0; i < nl; i += 8) { /* ASCII upper to lower case, 8 bytes at a time (label lengths < 64 stay) */
		const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
		uint64_t v;
		memcpy(&v, k->b + i, 8);
		uint64_t low7 = v & ~high;
		uint64_t ge_a = low7 + (0x80 - 'A') * ones, gt_z = low7 + (0x7f - 'Z') * ones;
		uint64_t upper = (ge_a ^ gt_z) & ~v & high;
		v |= upper >> 2;
		memcpy(k->b + i, &v, 8);
	}
	uint8_t *t = k->b + nl;
	msg_put16(t, mi->qtype);
	msg_put16(t + 2, mi->qclass);
	t[4] = (uint8_t)((knot_wire_get_rd(query) ? CACHE_KEY_RD : 0) | (knot_wire_get_cd(query) ? CACHE_KEY_CD : 0) |
			 (mi->do_bit ? CACHE_KEY_DO : 0) | (mi->opt_off ? CACHE_KEY_EDNS : 0));
	t[5] = variant;
	k->len = (uint16_t)(nl + 6);
	memset(k->b + k->len, 0, 8); /* (CACHE_KEY_MAX leaves room) */
	k->hash = key_hash(k->b, k->len);
	return true;
}

struct cache *cache_new(uint64_t size)
{
	struct cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	for (unsigned i = 0; i < CACHE_SHARDS; i++) {
		struct shard *s = &c->shards[i];
		pthread_spin_init(&s->lock, PTHREAD_PROCESS_PRIVATE);
		s->n_buckets = CACHE_BUCKETS_MIN;
		s->buckets = calloc(s->n_buckets, sizeof(*s->buckets));
		if (!s->buckets) {
			cache_free(c);
			return NULL;
		}
		s->bytes = s->n_buckets * sizeof(*s->buckets) + CACHE_MALLOC_OVERHEAD;
		s->budget = size / CACHE_SHARDS;
		s->lru.prev = s->lru.next = &s->lru;
	}
	return c;
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < CACHE_SHARDS; i++) {
		struct shard *s = &c->shards[i];
		for (struct entry *e = s->lru.next, *next; e && e != &s->lru; e = next) {
			next = e->next;
			free(e);
		}
		free(s->buckets);
		pthread_spin_destroy(&s->lock);
	}
	free(c);
}

static struct shard *shard_of(struct cache *c, uint64_t hash)
{
	return &c->shards[hash >> (64 - 5)];
}

static struct entry **slot_of(struct shard *s, const struct cache_key *k)
{
	struct entry **p = &s->buckets[k->hash & (s->n_buckets - 1)];
	for (; *p; p = &(*p)->hnext)
		if ((*p)->hash == k->hash && (*p)->key_len == k->len && memcmp(entry_key(*p), k->b, k->len) == 0)
			break;
	return p;
}

static void lru_unlink(struct entry *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
}

static void lru_push(struct shard *s, struct entry *e)
{
	e->prev = &s->lru;
	e->next = s->lru.next;
	s->lru.next->prev = e;
	s->lru.next = e;
}

/* Unlink e (at *slot) from its shard and free it. */
static void drop(struct shard *s, struct entry **slot)
{
	struct entry *e = *slot;
	*slot = e->hnext;
	lru_unlink(e);
	s->n--;
	s->bytes -= entry_size(e);
	free(e);
}

static struct entry **slot_of_entry(struct shard *s, const struct entry *e)
{
	struct entry **p = &s->buckets[e->hash & (s->n_buckets - 1)];
	while (*p != e)
		p = &(*p)->hnext;
	return p;
}

static void grow(struct shard *s)
{
	uint32_t nb = s->n_buckets * 2;
	struct entry **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* longer chains, still correct */
	for (uint32_t i = 0; i < s->n_buckets; i++) {
		for (struct entry *e = s->buckets[i], *next; e; e = next) {
			next = e->hnext;
			e->hnext = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	}
	free(s->buckets);
	s->bytes += (uint64_t)(nb - s->n_buckets) * sizeof(*b);
	s->buckets = b;
	s->n_buckets = nb;
}

enum cache_result cache_get(struct cache *c, const struct cache_key *k, uint64_t now_ms, uint64_t stale_ms,
			    uint8_t *out, size_t cap, size_t *len, bool *refresh)
{
	static __thread uint16_t offs[CACHE_MAX_TTLS];
	struct shard *s = shard_of(c, k->hash);
	pthread_spin_lock(&s->lock);
	struct entry *e = *slot_of(s, k);
	if (!e || e->msg_len > cap || now_ms < e->stored_ms) {
		pthread_spin_unlock(&s->lock);
		return CACHE_MISS;
	}
	enum cache_result r = CACHE_FRESH;
	if (now_ms >= e->expire_ms) {
		if (!stale_ms || now_ms - e->expire_ms >= stale_ms) {
			pthread_spin_unlock(&s->lock);
			return CACHE_MISS;
		}
		r = CACHE_STALE;
	}
	uint32_t age_s = (uint32_t)((now_ms - e->stored_ms) / 1000);
	if (refresh && r == CACHE_FRESH && !e->refreshing && (uint64_t)(e->expire_ms - now_ms) * 10 < e->ttl_s * 1000ull) {
		e->refreshing = true;
		*refresh = true;
	}
	size_t n = e->n_ttls;
	memcpy(offs, e->data, 2 * n);
	memcpy(out, entry_msg(e), e->msg_len);
	*len = e->msg_len;
	if (s->lru.next != e) {
		lru_unlink(e);
		lru_push(s, e);
	}
	pthread_spin_unlock(&s->lock);
	for (size_t i = 0; i < n; i++) {
		uint8_t *p = out + offs[i];
		uint32_t t = knot_wire_read_u32(p);
		knot_wire_write_u32(p, r == CACHE_STALE ? CACHE_STALE_TTL : t > age_s ? t - age_s : 0);
	}
	return r;
}

/* ---- what an answer's records say: their TTLs, the SOA, the OPT */

static bool skip_name(const uint8_t *w, size_t len, size_t *off)
{
	while (*off < len) {
		uint8_t l = w[*off];
		if (l == 0) {
			(*off)++;
			return true;
		}
		if ((l & 0xc0) == 0xc0) {
			*off += 2;
			return *off <= len;
		}
		if (l & 0xc0)
			return false;
		*off += 1u + l;
	}
	return false;
}

struct walk {
	uint16_t ttls[CACHE_MAX_TTLS]; /* offsets of every TTL but the OPT's */
	size_t n_ttls;
	size_t soa_ttl_off;            /* the authority section's SOA: its TTL, 0 without */
	uint32_t soa_min;              /* and its MINIMUM */
	size_t opt_off, opt_len;       /* the OPT record, 0 without */
	bool other;                    /* a TSIG or SIG(0): for one client */
};

static bool walk_records(const uint8_t *w, size_t len, struct walk *r)
{
	size_t off = MSG_HDR;
	if (knot_wire_get_qdcount(w) != 1 || !skip_name(w, len, &off) || (off += 4) > len)
		return false;
	unsigned counts[3] = {knot_wire_get_ancount(w), knot_wire_get_nscount(w), knot_wire_get_arcount(w)};
	r->n_ttls = 0;
	r->soa_ttl_off = r->opt_off = r->opt_len = 0;
	r->other = false;
	for (unsigned sec = 0; sec < 3; sec++) {
		for (unsigned i = 0; i < counts[sec]; i++) {
			size_t start = off;
			if (!skip_name(w, len, &off) || off + 10 > len)
				return false;
			uint16_t type = msg_get16(w + off), rdlen = msg_get16(w + off + 8);
			size_t ttl_off = off + 4, rdata = off + 10;
			off = rdata + rdlen;
			if (off > len)
				return false;
			if (type == KNOT_RRTYPE_OPT) {
				r->opt_off = start;
				r->opt_len = off - start;
				continue;
			}
			if (type == KNOT_RRTYPE_TSIG || type == KNOT_RRTYPE_SIG)
				r->other = true;
			if (type == KNOT_RRTYPE_SOA && sec == 1 && !r->soa_ttl_off && rdlen >= 22) {
				r->soa_ttl_off = ttl_off;
				r->soa_min = knot_wire_read_u32(w + off - 4);
			}
			if (r->n_ttls == CACHE_MAX_TTLS)
				return false;
			r->ttls[r->n_ttls++] = (uint16_t)ttl_off;
		}
	}
	return true;
}

static uint32_t clamp(uint32_t t, uint32_t lo, uint32_t hi)
{
	t = t < lo ? lo : t;
	return t > hi ? hi : t;
}

enum cache_put_result cache_put(struct cache *c, const struct cache_key *k, uint8_t *ans, size_t len,
				const struct cache_conf *cc, uint64_t now_ms)
{
	static __thread struct walk r;
	int rcode = knot_wire_get_rcode(ans);
	if (len < MSG_HDR || len > MSG_MAX || knot_wire_get_tc(ans) ||
	    (rcode != KNOT_RCODE_NOERROR && rcode != KNOT_RCODE_NXDOMAIN))
		return CACHE_NOT_CACHEABLE;
	if (!walk_records(ans, len, &r) || r.other)
		return CACHE_NOT_CACHEABLE;
	bool negative = rcode == KNOT_RCODE_NXDOMAIN || knot_wire_get_ancount(ans) == 0;
	if (negative && !r.soa_ttl_off)
		return CACHE_NOT_CACHEABLE; /* RFC 2308 5: no SOA, no negative caching */
	uint32_t ttl = UINT32_MAX;
	for (size_t i = 0; i < r.n_ttls; i++) {
		uint8_t *p = ans + r.ttls[i]; /* (the client that asked sees the TTLs later ones will) */
		uint32_t t = knot_wire_read_u32(p);
		if (t > 0x7fffffffu)
			t = 0; /* RFC 2181 8: the top bit set means zero */
		if (negative && r.ttls[i] == r.soa_ttl_off) {
			t = t < r.soa_min ? t : r.soa_min;
			t = t < cc->neg_max_ttl_s ? t : cc->neg_max_ttl_s;
		} else {
			t = clamp(t, cc->min_ttl_s, cc->max_ttl_s);
		}
		knot_wire_write_u32(p, t);
		ttl = t < ttl ? t : ttl;
	}
	if (ttl == 0 || ttl == UINT32_MAX)
		return CACHE_NOT_CACHEABLE;
	struct entry *e = malloc(sizeof(*e) + 2 * r.n_ttls + k->len + len);
	if (!e)
		return CACHE_NOMEM;
	e->hash = k->hash;
	e->stored_ms = now_ms;
	e->ttl_s = ttl;
	e->expire_ms = now_ms + ttl * 1000ull;
	e->key_len = k->len;
	e->n_ttls = (uint16_t)r.n_ttls;
	e->refreshing = false;
	memcpy(e->data, r.ttls, 2 * r.n_ttls);
	memcpy(e->data + 2 * r.n_ttls, k->b, k->len);
	uint8_t *m = e->data + 2 * r.n_ttls + k->len;
	memcpy(m, ans, len);
	e->slack = (uint16_t)len;
	knot_wire_set_id(m, 0);
	memcpy(m + MSG_HDR, k->b, k->len - 6); /* the question in lower case */
	/* the cookie is between one client and the server: not for others */
	if (r.opt_off && r.opt_off + r.opt_len == len && r.opt_len > 11) {
		size_t at;
		while ((at = msg_find_option(m, r.opt_off, r.opt_len, MSG_OPT_COOKIE))) {
			size_t olen = 4u + msg_get16(m + at + 2);
			len = msg_remove_option(m, len, r.opt_off, at);
			r.opt_len -= olen;
		}
	}
	e->slack = (uint16_t)(e->slack - len); /* what the cookie took, still allocated */
	e->msg_len = (uint16_t)len;
	struct shard *s = shard_of(c, k->hash);
	size_t size = entry_size(e);
	if (size > s->budget / 2) { /* (budget is fixed: no lock needed to read it) */
		free(e);
		return CACHE_TOO_BIG;
	}
	pthread_spin_lock(&s->lock);
	struct entry **slot = slot_of(s, k);
	if (*slot)
		drop(s, slot);
	e->hnext = s->buckets[k->hash & (s->n_buckets - 1)];
	s->buckets[k->hash & (s->n_buckets - 1)] = e;
	lru_push(s, e);
	s->n++;
	s->bytes += size;
	while (s->bytes > s->budget && s->lru.prev != e)
		drop(s, slot_of_entry(s, s->lru.prev));
	if (s->n > s->n_buckets && s->bytes + s->n_buckets * sizeof(*s->buckets) <= s->budget)
		grow(s);
	pthread_spin_unlock(&s->lock);
	return CACHE_STORED;
}

/* Is the entry's qname name (nl bytes, lower case), or with below, a name
 * under it? The key starts with the qname, lower case, uncompressed: its
 * label starts are walked until as many bytes as name's remain. */
static bool flush_match(const struct entry *e, const uint8_t *name, size_t nl, bool below)
{
	const uint8_t *k = entry_key(e);
	size_t kl = (size_t)e->key_len - 6; /* the qname's bytes */
	if (!below)
		return kl == nl && memcmp(k, name, nl) == 0;
	for (size_t p = 0; p < kl && kl - p >= nl; p += (size_t)k[p] + 1) {
		if (kl - p == nl)
			return memcmp(k + p, name, nl) == 0;
		if (k[p] == 0)
			break;
	}
	return false;
}

size_t cache_flush(struct cache *c, const uint8_t *name, bool below)
{
	uint8_t low[KNOT_DNAME_MAXLEN];
	size_t nl = 0, dropped = 0;
	if (name) {
		nl = knot_dname_size(name);
		if (nl == 0 || nl > sizeof(low))
			return 0;
		for (size_t i = 0; i < nl; i++)
			low[i] = lower(name[i]); /* (length bytes are < 64: unchanged) */
	}
	for (unsigned i = 0; i < CACHE_SHARDS; i++) {
		struct shard *s = &c->shards[i];
		pthread_spin_lock(&s->lock);
		for (uint32_t b = 0; b < s->n_buckets; b++) {
			struct entry **p = &s->buckets[b];
			while (*p) {
				if (!name || flush_match(*p, low, nl, below)) {
					drop(s, p);
					dropped++;
				} else {
					p = &(*p)->hnext;
				}
			}
		}
		pthread_spin_unlock(&s->lock);
	}
	return dropped;
}

void cache_usage(struct cache *c, uint64_t *entries, uint64_t *bytes)
{
	*entries = *bytes = 0;
	for (unsigned i = 0; i < CACHE_SHARDS; i++) {
		struct shard *s = &c->shards[i];
		pthread_spin_lock(&s->lock);
		*entries += s->n;
		*bytes += s->bytes;
		pthread_spin_unlock(&s->lock);
	}
}
