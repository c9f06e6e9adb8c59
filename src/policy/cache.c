/* cache.c -- see cache.h. */
#include <endian.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "policy/cache.h"

#define CACHE_SHARDS 32               /* a power of two */
#define CACHE_ALIGN 16                /* records start at multiples of it */
#define CACHE_SLOT_BYTES 64           /* a slot per this many bytes of a shard's budget: a record takes 80 or more */
#define CACHE_SLOTS_MIN 16
#define CACHE_MAX_MOVES 4             /* second chances given per put (see take) */
#define CACHE_MALLOC_OVERHEAD 16      /* per allocation, counted in the bytes: the ring */
#define CACHE_HUGE (2u << 20)         /* a huge page (x86-64, arm64 with 4 KiB pages) */
#define CACHE_MAX_TTLS (MSG_MAX / 11) /* records in a message: at least 11 bytes each */

/* entry state */
#define REC_LIVE 1                    /* in the index */
#define REC_DEAD 2                    /* replaced or flushed: only waits for the tail */
#define REC_KIND 3
#define REC_HIT 4                     /* hit since it was stored or last moved: a second chance */
#define REC_REFRESHING 8              /* a fresh hit asked for its refresh already */

/* A shard's index is a table of links, open addressing with linear
 * probing: a link is 0 (empty) or a record's hash (its low 32 bits: they
 * choose its home slot, too) above its offset in the ring in CACHE_ALIGN
 * units plus 1. A lookup that misses reads the slots from the key's home
 * to the first empty one -- one or two cache lines, which cache_prefetch
 * can fetch ahead -- and no record; a chain of records would cost a
 * dependent memory access per record passed, the miss path's largest
 * stall. There are a slot per CACHE_SLOT_BYTES of the budget and at most
 * 7 live records per 8 slots (a record takes 80 bytes or more: about half
 * the slots are used). */
typedef uint64_t link_t;

/* A record in a shard's ring: this header, then data. */
struct entry {
	uint64_t expire_ms;        /* when it was put + its TTL */
	uint32_t hash;             /* the key's hash, low bits (its link's) */
	uint32_t ttl_s;            /* its TTL: the smallest of its records' (clamped) */
	uint32_t size;             /* the record's bytes in the ring, this header included (a multiple of CACHE_ALIGN) */
	uint16_t msg_len, n_ttls;
	uint16_t key_tail;         /* the key's last two bytes: flags, variant */
	uint8_t qname_len;         /* the key's name: the message's question, in lower case */
	uint8_t state;             /* REC_* */
	uint8_t data[];            /* n_ttls offsets (uint16, host order), the message */
};

/* Records lie in ring from tail to head, oldest first, each contiguous:
 * [tail, head) -- or, wrapped, [tail, end) then [0, head). */
struct shard {
	atomic_bool lock;          /* held for a lookup or an insert: a copy, a few pointers (see lock) */
	uint8_t *ring;             /* cap bytes */
	size_t cap, head, tail, end;
	size_t used;               /* bytes of the records in it, live and dead */
	bool wrapped;
	uint32_t n;                /* live entries */
	uint32_t n_slots, max_n;   /* the index's size; most live entries, 7/8 of it */
	link_t *slots;             /* the index */
	uint64_t fixed;            /* what the index and the ring's allocation take */
	/* where the next put will likely write and evict, for cache_prefetch
	 * (written under the lock, read without it) */
	_Atomic size_t hint_head, hint_tail;
	_Atomic uint32_t hint_evict; /* the tail record's hash */
} __attribute__((aligned(64)));

struct cache {
	struct shard shards[CACHE_SHARDS];
	void *index_map;           /* every shard's slots, one mapping */
	size_t index_len;
};

/* A spinlock inline, as glibc's pthread_spin_lock is but for the call each
 * way (~7 instructions a lookup on the miss path): a shard is held for a
 * few hundred instructions at most, and 32 shards seldom meet. */
static inline void lock(struct shard *s)
{
	while (atomic_exchange_explicit(&s->lock, true, memory_order_acquire))
		while (atomic_load_explicit(&s->lock, memory_order_relaxed)) {
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause();
#endif
		}
}

static inline void unlock(struct shard *s)
{
	atomic_store_explicit(&s->lock, false, memory_order_release);
}

static const uint8_t *entry_msg(const struct entry *e)
{
	return e->data + 2u * e->n_ttls;
}

static inline uint8_t lower(uint8_t c)
{
	return (uint8_t)((unsigned)(c - 'A') < 26u ? c + 32 : c);
}

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return le64toh(v);
}

static inline void store64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

/* ASCII upper to lower case in the 8 bytes of v: only A-Z change (so a
 * label length, < 64, never does). Per byte b: bit 7 of b+0x3f (b < 0x80)
 * is b >= 'A', of b+0x25 is b > 'Z'; no carry crosses a byte. */
static inline uint64_t fold8(uint64_t v)
{
	const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
	uint64_t low7 = v & ~high;
	uint64_t upper = ((low7 + (0x80 - 'A') * ones) ^ (low7 + (0x7f - 'Z') * ones)) & ~v & high;
	return v | upper >> 2;
}

/* One word into the hash: a multiply per word; the finish mixes the high
 * bits down (the slot is chosen by the low 32, the shard by the top 5). */
static inline uint64_t mix(uint64_t h, uint64_t v)
{
	return (h + v) * 0x9fb21c651e98df25ull;
}

bool cache_key_of(struct cache_key *k, const uint8_t *query, const struct msg_info *mi, uint8_t variant)
{
	/* QDCOUNT 1, ANCOUNT and NSCOUNT 0, ARCOUNT 1 with an OPT, else 0:
	 * bytes 4-11 of the header, read little-endian */
	if (load64(query + 4) != (0x0100ull | (uint64_t)(mi->opt_off != 0) << 56))
		return false;
	const uint8_t *n = query + MSG_HDR;
	size_t nl = mi->qname_len;
	if (nl == 0 || nl > KNOT_DNAME_MAXLEN)
		return false;
	/* msg_parse_query checked the name. One that ends in a compression
	 * pointer is not worth a key: its last two bytes are 0b11xxxxxx and an
	 * offset (a name of labels ends in its 0 label; a label byte of 0xc0 or
	 * more just before it -- binary data -- only costs that name its key) */
	if (n[nl - 1] != 0 || (nl >= 2 && (n[nl - 2] & 0xc0) == 0xc0))
		return false;
	/* fold and hash in one pass, 8 bytes at a time; the last 1-7 bytes
	 * are read as the 8 that end the name, shifted down when the name is
	 * shorter than 8 (the header is before it), else overlapping the word
	 * before (folded the same) */
	uint64_t h = 0x9e3779b97f4a7c15ull, v;
	if (nl < 8) {
		v = fold8(load64(n + nl - 8) >> (8 * (8 - nl)));
		store64(k->b, v);
		h = mix(h, v);
	} else {
		for (size_t i = 0; i + 8 < nl; i += 8) {
			v = fold8(load64(n + i));
			store64(k->b + i, v);
			h = mix(h, v);
		}
		v = fold8(load64(n + nl - 8));
		store64(k->b + nl - 8, v);
		h = mix(h, v);
	}
	/* then qtype and qclass as the question has them, flags, variant: one
	 * store (the two bytes after them are room, CACHE_KEY_MAX) */
	uint32_t tc;
	memcpy(&tc, n + nl, 4);
	uint64_t flags = (query[2] & 0x01u ? CACHE_KEY_RD : 0) | (query[3] & 0x10u ? CACHE_KEY_CD : 0) |
			 (mi->do_bit ? CACHE_KEY_DO : 0) | (mi->opt_off ? CACHE_KEY_EDNS : 0);
	uint64_t tail = le32toh(tc) | flags << 32 | (uint64_t)variant << 40;
	store64(k->b + nl, tail);
	k->len = (uint16_t)(nl + 6);
	h = mix(h, tail);
	h = (h ^ (h >> 32)) * 0xff51afd7ed558ccdull;
	k->hash = h ^ (h >> 29);
	/* an ECS option: the answer is for the client's subnet (RFC 7871 7.3) */
	return !mi->opt_off || mi->opt_len <= 11 || !msg_find_option(query, mi->opt_off, mi->opt_len, MSG_OPT_ECS);
}

struct cache *cache_new(uint64_t size)
{
	struct cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	uint64_t budget = size / CACHE_SHARDS;
	uint64_t ns = budget / CACHE_SLOT_BYTES;
	ns = ns < CACHE_SLOTS_MIN ? CACHE_SLOTS_MIN : ns > UINT32_MAX ? UINT32_MAX : ns;
	uint64_t fixed = ns * sizeof(link_t) + CACHE_MALLOC_OVERHEAD;
	uint64_t cap = budget > fixed ? (budget - fixed) / CACHE_ALIGN * CACHE_ALIGN : 0;
	if (cap / CACHE_ALIGN >= UINT32_MAX) /* (a link's offset: size is at most 64 GiB) */
		cap = (uint64_t)(UINT32_MAX - 1) * CACHE_ALIGN;
	/* The slots of all shards in one mapping, in huge pages where the
	 * kernel gives them: every lookup reads a random slot (a TLB miss in
	 * 4 KiB pages, even for a prefetch); the rings are read and written
	 * in order, and mapped lazily as malloc's large blocks are. */
	size_t len = (size_t)(CACHE_SHARDS * ns * sizeof(link_t)), slack = len >= CACHE_HUGE ? CACHE_HUGE : 0;
	uint8_t *m = mmap(NULL, len + slack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		free(c);
		return NULL;
	}
	if (slack) { /* on a huge page boundary: the slack before and after it unmapped */
		uint8_t *at = (uint8_t *)(((uintptr_t)m + CACHE_HUGE - 1) & ~(uintptr_t)(CACHE_HUGE - 1));
		if (at > m)
			munmap(m, (size_t)(at - m));
		if (at + len < m + len + slack)
			munmap(at + len, (size_t)(m + len + slack - (at + len)));
		m = at;
#ifdef MADV_HUGEPAGE
		(void)madvise(m, len, MADV_HUGEPAGE); /* (a hint: 4 KiB pages without) */
#endif
	}
	c->index_map = m;
	c->index_len = len;
	for (unsigned i = 0; i < CACHE_SHARDS; i++) {
		struct shard *s = &c->shards[i];
		atomic_init(&s->lock, false);
		s->n_slots = (uint32_t)ns;
		s->max_n = (uint32_t)(ns / 8 * 7);
		s->slots = (link_t *)m + i * ns;
		s->fixed = fixed;
		s->cap = (size_t)cap;
		/* (malloc maps a large ring lazily: its pages are taken as the head first passes them) */
		s->ring = cap ? aligned_alloc(CACHE_ALIGN, s->cap) : NULL;
		if (cap && !s->ring) {
			cache_free(c);
			return NULL;
		}
	}
	return c;
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < CACHE_SHARDS; i++)
		free(c->shards[i].ring);
	munmap(c->index_map, c->index_len);
	free(c);
}

static struct shard *shard_of(struct cache *c, uint64_t hash)
{
	return &c->shards[hash >> (64 - 5)];
}

static inline struct entry *at(const struct shard *s, link_t l)
{
	return (struct entry *)(s->ring + (size_t)((uint32_t)l - 1) * CACHE_ALIGN);
}

static inline link_t link_to(const struct shard *s, const struct entry *e, uint32_t hash)
{
	return (link_t)hash << 32 | (link_t)(((const uint8_t *)e - s->ring) / CACHE_ALIGN + 1);
}

/* the slot a hash belongs in: its low 32 bits scaled to the table */
static inline uint32_t home(const struct shard *s, uint32_t hash)
{
	return (uint32_t)((uint64_t)hash * s->n_slots >> 32);
}

static inline uint32_t next_slot(const struct shard *s, uint32_t i)
{
	return ++i == s->n_slots ? 0 : i;
}

/* (the hash was compared: the link carries it) */
static bool is_key(const struct entry *e, const struct cache_key *k)
{
	size_t nl = k->len - 6u;
	uint16_t tail;
	memcpy(&tail, k->b + nl + 4, 2);
	return e->qname_len == nl && e->key_tail == tail && memcmp(entry_msg(e) + MSG_HDR, k->b, nl + 4) == 0;
}

/* k's slot, or the empty one that ends its probe (where it would go);
 * there is always one (at most max_n of the slots are used) */
static inline __attribute__((always_inline)) uint32_t find(const struct shard *s, const struct cache_key *k)
{
	uint32_t hash = (uint32_t)k->hash, i = home(s, hash);
	for (link_t l; (l = s->slots[i]); i = next_slot(s, i))
		if ((uint32_t)(l >> 32) == hash && is_key(at(s, l), k))
			break;
	return i;
}

/* k's record, or NULL */
static inline __attribute__((always_inline)) struct entry *lookup(const struct shard *s, const struct cache_key *k)
{
	link_t l = s->slots[find(s, k)];
	return l ? at(s, l) : NULL;
}

static uint32_t find_entry(const struct shard *s, const struct entry *e)
{
	link_t l = link_to(s, e, e->hash);
	uint32_t i = home(s, e->hash);
	while (s->slots[i] != l)
		i = next_slot(s, i);
	return i;
}

/* Empty slot i: the links after it in its run that may move back (their
 * home is not after i, cyclically) fill the gap, so that every probe still
 * reaches its key before an empty slot (Knuth's algorithm R). */
static void unlink_slot(struct shard *s, uint32_t i)
{
	for (uint32_t j = next_slot(s, i);; j = next_slot(s, j)) {
		link_t l = s->slots[j];
		if (!l)
			break;
		uint32_t h = home(s, (uint32_t)(l >> 32));
		if (i <= j ? h <= i || h > j : h <= i && h > j) {
			s->slots[i] = l;
			i = j;
		}
	}
	s->slots[i] = 0;
}

/* Take the record of slot i out of the index; its bytes wait for the tail. */
static void drop(struct shard *s, uint32_t i)
{
	at(s, s->slots[i])->state = REC_DEAD;
	unlink_slot(s, i);
	s->n--;
}

/* ---- the ring: a bump allocator that reclaims in the order it gave.
 *
 * A put takes its record at the head; room comes from the tail, the
 * oldest record. A tail record hit since it was stored (or last moved)
 * gets a second chance: it is moved to the head with the flag cleared
 * rather than dropped -- CLOCK, the usual stand-in for LRU, with a
 * bounded number of moves per put. Unlike blocks of a heap, records never
 * fragment the ring: any answer (up to half a shard) fits once enough old
 * ones have gone, and what a shard holds is exactly its records. */

static void tail_advance(struct shard *s, size_t by)
{
	s->tail += by;
	if (s->wrapped && s->tail == s->end) {
		s->tail = 0;
		s->wrapped = false;
	}
	if (!s->wrapped && s->tail == s->head)
		s->head = s->tail = 0; /* empty: start again at the bottom */
	atomic_store_explicit(&s->hint_tail, s->tail, memory_order_relaxed);
	if (s->tail != s->head || s->wrapped) /* (the next record: cache_prefetch fetched it with the tail's) */
		atomic_store_explicit(&s->hint_evict, ((struct entry *)(s->ring + s->tail))->hash, memory_order_relaxed);
}

void cache_prefetch(struct cache *c, const struct cache_key *k, bool put)
{
	struct shard *s = shard_of(c, k->hash);
	__builtin_prefetch(&s->slots[home(s, (uint32_t)k->hash)]);
	if (!put || !s->ring)
		return;
	/* the records a put evicts: the tail's and the next, and the slot of
	 * the tail's; the head, which it writes (the hints may be a put or
	 * two old, or cleared by a flush: any offset in the ring is safe) */
	size_t t = atomic_load_explicit(&s->hint_tail, memory_order_relaxed);
	__builtin_prefetch(s->ring + t);
	if (t + 64 < s->cap)
		__builtin_prefetch(s->ring + t + 64);
	__builtin_prefetch(s->ring + atomic_load_explicit(&s->hint_head, memory_order_relaxed), 1);
	__builtin_prefetch(&s->slots[home(s, atomic_load_explicit(&s->hint_evict, memory_order_relaxed))]);
}

/* Move the (live, hit) record at the tail to the head, flag cleared. */
static void move_tail(struct shard *s)
{
	struct entry *e = (struct entry *)(s->ring + s->tail);
	uint32_t i = find_entry(s, e);
	size_t r = e->size;
	if (!s->wrapped && s->cap - s->head < r) {
		s->end = s->head; /* (the top is wasted until the tail passes) */
		s->head = 0;
		s->wrapped = true;
	}
	struct entry *to = (struct entry *)(s->ring + s->head);
	memmove(to, e, r); /* (to is below e when wrapped: the two may overlap) */
	to->state = REC_LIVE | (uint8_t)(to->state & REC_REFRESHING);
	s->slots[i] = link_to(s, to, to->hash);
	s->head += r;
	tail_advance(s, r);
}

/* Room for a record of size bytes (at most cap): from the free space, or
 * from the oldest records -- also while the index has its most live
 * records (a slot for the new one). */
static __attribute__((noinline)) struct entry *take(struct shard *s, size_t size)
{
	unsigned moves = CACHE_MAX_MOVES;
	for (;;) {
		size_t at = SIZE_MAX;
		if (s->n >= s->max_n) {
			/* the index is as full as it may be: evict first */
		} else if (!s->wrapped && s->cap - s->head >= size) {
			at = s->head;
		} else if (!s->wrapped && s->tail >= size) {
			s->end = s->head;
			s->wrapped = true;
			at = 0;
		} else if (s->wrapped && s->tail - s->head >= size) {
			at = s->head;
		}
		if (at != SIZE_MAX) {
			s->head = at + size;
			s->used += size;
			return (struct entry *)(s->ring + at);
		}
		struct entry *e = (struct entry *)(s->ring + s->tail);
		if ((e->state & REC_KIND) == REC_LIVE && (e->state & REC_HIT) && moves) {
			moves--;
			move_tail(s);
			continue;
		}
		if ((e->state & REC_KIND) == REC_LIVE)
			drop(s, find_entry(s, e));
		s->used -= e->size;
		tail_advance(s, e->size);
	}
}

/* take, with the common case first: room at the head */
static inline struct entry *room(struct shard *s, size_t size)
{
	if ((s->wrapped ? s->tail : s->cap) - s->head < size || s->n >= s->max_n)
		return take(s, size);
	struct entry *e = (struct entry *)(s->ring + s->head);
	s->head += size;
	s->used += size;
	return e;
}

enum cache_result cache_get(struct cache *c, const struct cache_key *k, uint64_t now_ms, uint64_t stale_ms,
			    uint8_t *out, size_t cap, size_t *len, bool *refresh)
{
	struct shard *s = shard_of(c, k->hash);
	lock(s);
	struct entry *e = lookup(s, k);
	uint64_t ttl_ms = e ? e->ttl_s * 1000ull : 0;
	if (!e || e->msg_len > cap || now_ms + ttl_ms < e->expire_ms) { /* (the clock before the put: a miss) */
		unlock(s);
		return CACHE_MISS;
	}
	enum cache_result r = CACHE_FRESH;
	if (now_ms >= e->expire_ms) {
		if (!stale_ms || now_ms - e->expire_ms >= stale_ms) {
			unlock(s);
			return CACHE_MISS;
		}
		r = CACHE_STALE;
	}
	uint32_t age_s = (uint32_t)((now_ms + ttl_ms - e->expire_ms) / 1000);
	if (refresh && r == CACHE_FRESH && !(e->state & REC_REFRESHING) && (e->expire_ms - now_ms) * 10 < ttl_ms) {
		e->state |= REC_REFRESHING;
		*refresh = true;
	}
	e->state |= REC_HIT;
	size_t n = e->n_ttls;
	memcpy(out, entry_msg(e), e->msg_len);
	*len = e->msg_len;
	for (size_t i = 0; i < n; i++) {
		uint16_t off;
		memcpy(&off, e->data + 2 * i, 2);
		uint8_t *p = out + off;
		uint32_t t = knot_wire_read_u32(p);
		knot_wire_write_u32(p, r == CACHE_STALE ? CACHE_STALE_TTL : t > age_s ? t - age_s : 0);
	}
	unlock(s);
	return r;
}

/* ---- what an answer's records say: their TTLs, the SOA, the OPT */

struct walk {
	uint16_t ttls[CACHE_MAX_TTLS]; /* offsets of every TTL but the OPT's */
	size_t n_ttls;
	size_t opt_off, opt_len;       /* the OPT record, 0 without */
};

static uint32_t clamp(uint32_t t, uint32_t lo, uint32_t hi)
{
	t = t < lo ? lo : t;
	return t > hi ? hi : t;
}

/* Does [a, b) overlap a TTL of r's (offsets ascending, n of them)? */
static bool on_a_ttl(const struct walk *r, size_t n, size_t a, size_t b)
{
	size_t lo = 0, hi = n;
	while (lo < hi) { /* the first TTL that ends after a */
		size_t mid = (lo + hi) / 2;
		if (r->ttls[mid] + 4u > a)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo < n && r->ttls[lo] < b;
}

/* The name at *off reads no byte of a TTL through a compression pointer
 * (the n TTLs so far: a pointer names an earlier offset); *off is stepped
 * past it, as msg_skip_name does. A cached answer's
 * TTLs are rewritten -- clamped here, counted down at every hit -- so a
 * name read from one would change with them: an upstream could make a
 * name of its answer mean something new each second, or nothing. Such an
 * answer is forwarded as it came, but not cached. */
static bool name_clear_of_ttls(const uint8_t *w, size_t len, size_t *at, const struct walk *r, size_t n)
{
	bool via = false;
	size_t off = *at;
	for (unsigned hops = 0, read = 0; off < len;) {
		uint8_t b = w[off];
		if (b >= 0xc0) {
			if (off + 1 >= len || (via && on_a_ttl(r, n, off, off + 2)))
				return false;
			size_t t = (size_t)(b & 0x3f) << 8 | w[off + 1];
			if (t >= off || ++hops > KNOT_DNAME_MAXLABELS)
				return false;
			if (!via)
				*at = off + 2; /* (where the name ends in place) */
			if (n && t + KNOT_DNAME_MAXLEN + 2 <= r->ttls[0])
				return true; /* (below every TTL whatever it reads: at most a name's length, and back) */
			off = t;
			via = true;
			continue;
		}
		read += 1u + b;
		if (b > 63 || read > KNOT_DNAME_MAXLEN || (via && on_a_ttl(r, n, off, off + 1u + b)))
			return false;
		if (b == 0) {
			if (!via)
				*at = off + 1;
			return true;
		}
		off += 1u + b;
	}
	return false;
}

/* The names in the RDATA of a record of type (at rd, rdlen bytes) that a
 * client decompresses: RFC 1035's types, and those later ones whose names
 * some decompress all the same (RFC 3597 4). */
static bool rdata_clear_of_ttls(const uint8_t *w, size_t len, uint16_t type, size_t rd, size_t rdlen,
				const struct walk *r, size_t n)
{
	size_t skip = 0;
	switch (type) {
	case KNOT_RRTYPE_NS:
	case KNOT_RRTYPE_CNAME:
	case KNOT_RRTYPE_PTR:
	case KNOT_RRTYPE_DNAME:
	case 3:  /* MD */
	case 4:  /* MF */
	case 7:  /* MB */
	case 8:  /* MG */
	case 9:  /* MR */
		break;
	case KNOT_RRTYPE_MX:
	case KNOT_RRTYPE_AFSDB:
	case KNOT_RRTYPE_RT:
	case KNOT_RRTYPE_KX:
		skip = 2;
		break;
	case KNOT_RRTYPE_SRV:
		skip = 6;
		break;
	case KNOT_RRTYPE_SOA:
	case KNOT_RRTYPE_RP:
	case KNOT_RRTYPE_MINFO: { /* two names */
		size_t at = rd;
		return name_clear_of_ttls(w, len, &at, r, n) && at <= rd + rdlen && name_clear_of_ttls(w, len, &at, r, n);
	}
	default:
		return true;
	}
	size_t at = rd + skip;
	return skip < rdlen && name_clear_of_ttls(w, len, &at, r, n);
}

/* Walk the records after the question, which ends at qend (it is the
 * key's), clamping each TTL in place: returns the smallest, or 0 when the
 * answer is not for the cache. A negative answer's first SOA in the
 * authority section gets the negative TTL (RFC 2308 5); a negative answer
 * without one is not cached. (An answer found not cacheable half way may
 * have some TTLs clamped already: cache.h allows it.) */
static uint32_t walk_clamp(uint8_t *w, size_t len, size_t qend, bool negative, const struct cache_conf *cc,
			   struct walk *r)
{
	size_t off = qend, n = 0;
	if (knot_wire_get_qdcount(w) != 1 || qend > len)
		return 0;
	unsigned an = knot_wire_get_ancount(w), an_ns = an + knot_wire_get_nscount(w);
	unsigned total = an_ns + knot_wire_get_arcount(w);
	uint32_t ttl = UINT32_MAX;
	bool soa = false;
	r->opt_off = r->opt_len = 0;
	for (unsigned i = 0; i < total; i++) {
		size_t start = off;
		if (off + 2 <= len && w[off] == 0xc0 && w[off + 1] == MSG_HDR)
			off += 2; /* (the usual owner: a pointer to the question's name, uncompressed, below every TTL) */
		else if (!name_clear_of_ttls(w, len, &off, r, n))
			return 0;
		if (off + 10 > len)
			return 0;
		uint16_t type = msg_get16(w + off), rdlen = msg_get16(w + off + 8);
		uint8_t *p = w + off + 4;
		off += 10u + rdlen;
		if (off > len)
			return 0;
		if (type == KNOT_RRTYPE_OPT) {
			r->opt_off = start;
			r->opt_len = off - start;
			continue;
		}
		if (type == KNOT_RRTYPE_TSIG || type == KNOT_RRTYPE_SIG || n == CACHE_MAX_TTLS)
			return 0; /* (a TSIG or SIG(0) answer is for one client) */
		uint32_t t = knot_wire_read_u32(p);
		if (t > 0x7fffffffu)
			t = 0; /* RFC 2181 8: the top bit set means zero */
		if (negative && type == KNOT_RRTYPE_SOA && i >= an && i < an_ns && !soa && rdlen >= 22) {
			uint32_t minimum = knot_wire_read_u32(w + off - 4);
			t = t < minimum ? t : minimum;
			t = t < cc->neg_max_ttl_s ? t : cc->neg_max_ttl_s;
			soa = true;
		} else {
			t = clamp(t, cc->min_ttl_s, cc->max_ttl_s);
		}
		knot_wire_write_u32(p, t); /* (the client that asked sees the TTLs later ones will) */
		ttl = t < ttl ? t : ttl;
		r->ttls[n++] = (uint16_t)(p - w);
		if (!rdata_clear_of_ttls(w, len, type, off - rdlen, rdlen, r, n))
			return 0;
	}
	r->n_ttls = n;
	if (negative && !soa)
		return 0; /* RFC 2308 5: no SOA, no negative caching */
	return ttl == UINT32_MAX ? 0 : ttl;
}

/* The cookie is between one client and the server: not for others. */
static __attribute__((noinline)) size_t strip_cookies(uint8_t *m, size_t len, struct walk *r)
{
	size_t at;
	while ((at = msg_find_option(m, r->opt_off, r->opt_len, MSG_OPT_COOKIE))) {
		size_t olen = 4u + msg_get16(m + at + 2);
		len = msg_remove_option(m, len, r->opt_off, at);
		r->opt_len -= olen;
	}
	return len;
}

enum cache_put_result cache_put(struct cache *c, const struct cache_key *k, uint8_t *ans, size_t len,
				const struct cache_conf *cc, uint64_t now_ms)
{
	static __thread struct walk r __attribute__((tls_model("initial-exec")));
	int rcode = knot_wire_get_rcode(ans);
	if (len < MSG_HDR || len > MSG_MAX || knot_wire_get_tc(ans) ||
	    (rcode != KNOT_RCODE_NOERROR && rcode != KNOT_RCODE_NXDOMAIN))
		return CACHE_NOT_CACHEABLE;
	size_t nl = k->len - 6u;
	bool negative = rcode == KNOT_RCODE_NXDOMAIN || knot_wire_get_ancount(ans) == 0;
	uint32_t ttl = walk_clamp(ans, len, MSG_HDR + nl + 4, negative, cc, &r);
	if (ttl == 0)
		return CACHE_NOT_CACHEABLE;
	struct shard *s = shard_of(c, k->hash);
	size_t n = r.n_ttls;
	size_t size = (offsetof(struct entry, data) + 2 * n + len + CACHE_ALIGN - 1) / CACHE_ALIGN * CACHE_ALIGN;
	if (size > s->cap / 2) /* (cap is fixed: no lock needed to read it) */
		return CACHE_TOO_BIG;
	lock(s);
	struct entry *e = room(s, size);
	uint32_t slot = find(s, k); /* (after room: it may move or drop what the index holds) */
	if (s->slots[slot]) { /* replaced in its place */
		at(s, s->slots[slot])->state = REC_DEAD;
		s->n--;
	}
	s->slots[slot] = link_to(s, e, (uint32_t)k->hash);
	s->n++;
	e->expire_ms = now_ms + ttl * 1000ull;
	e->hash = (uint32_t)k->hash;
	e->ttl_s = ttl;
	e->size = (uint32_t)size;
	e->n_ttls = (uint16_t)n;
	memcpy(&e->key_tail, k->b + nl + 4, 2);
	e->qname_len = (uint8_t)nl;
	e->state = REC_LIVE;
	for (size_t i = 0; i < n; i++) /* (n >= 1: a TTL was found) */
		memcpy(e->data + 2 * i, &r.ttls[i], 2);
	uint8_t *m = e->data + 2 * n;
	memcpy(m, ans, len);
	m[0] = m[1] = 0; /* the ID */
	memcpy(m + MSG_HDR, k->b, nl + 4); /* the question: the key's, name in lower case */
	if (r.opt_off && r.opt_off + r.opt_len == len && r.opt_len > 11)
		len = strip_cookies(m, len, &r);
	e->msg_len = (uint16_t)len;
	atomic_store_explicit(&s->hint_head, s->head, memory_order_relaxed);
	unlock(s);
	return CACHE_STORED;
}

/* Is the entry's qname name (nl bytes, lower case), or with below, a name
 * under it? The key's name is the stored question's, lower case,
 * uncompressed: its label starts are walked until as many bytes as name's
 * remain. */
static bool flush_match(const struct entry *e, const uint8_t *name, size_t nl, bool below)
{
	const uint8_t *k = entry_msg(e) + MSG_HDR;
	size_t kl = e->qname_len; /* the qname's bytes */
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
	for (unsigned si = 0; si < CACHE_SHARDS; si++) {
		struct shard *s = &c->shards[si];
		lock(s);
		if (!name) { /* all of it: the ring starts empty again */
			dropped += s->n;
			memset(s->slots, 0, s->n_slots * sizeof(*s->slots));
			s->head = s->tail = s->end = s->used = 0;
			s->wrapped = false;
			s->n = 0;
		}
		/* (a drop moves later links of the run back, into slot i or
		 * after it -- or, where the run wraps, slots already passed and
		 * kept: slot i is looked at again after a drop) */
		for (uint32_t i = 0; name && i < s->n_slots;) {
			if (s->slots[i] && flush_match(at(s, s->slots[i]), low, nl, below)) {
				drop(s, i);
				dropped++;
			} else {
				i++;
			}
		}
		unlock(s);
	}
	return dropped;
}

void cache_usage(struct cache *c, uint64_t *entries, uint64_t *bytes)
{
	*entries = *bytes = 0;
	for (unsigned i = 0; i < CACHE_SHARDS; i++) {
		struct shard *s = &c->shards[i];
		lock(s);
		*entries += s->n;
		*bytes += s->fixed + s->used + (s->wrapped ? s->cap - s->end : 0);
		unlock(s);
	}
}
