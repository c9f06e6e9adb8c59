/* ratelimit.c -- see ratelimit.h. */
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "policy/ratelimit.h"

/* Tokens are counted in thousandths of a query: qps tokens a second is qps
 * thousandths a millisecond, so the refill is one multiply whatever the
 * rate (burst <= 1,000,000 fits in 32 bits). */
#define MILLI 1000u

struct entry {
	uint64_t key[2];   /* the client's prefix (IPv4 as ::ffff:a.b.c.d), its host bits zero */
	uint64_t stamp_ms; /* last refill; 0: a free entry */
	uint32_t tokens;   /* thousandths of a query left */
	uint16_t over;     /* queries over the rate since the last slipped one (0 .. slip-1) */
	uint8_t is_stream; /* the stream bucket of the prefix */
	uint8_t pad;
};

struct set {
	pthread_spinlock_t lock; /* held for one refill and take */
	struct entry e[RATELIMIT_WAYS];
} __attribute__((aligned(64)));

struct ratelimit {
	struct ratelimit_conf conf;
	uint32_t v4_mask;             /* the prefix bits, in the address's byte order */
	uint64_t v6_mask[2];
	uint64_t seed;                /* of the set hash: a spoofed flood cannot aim at one set */
	uint32_t cap_milli;           /* burst in thousandths */
	uint32_t n_sets;              /* a power of two */
	struct set *sets;
};

struct ratelimit *ratelimit_new(const struct ratelimit_conf *conf, unsigned entries)
{
	struct ratelimit *rl = calloc(1, sizeof(*rl));
	if (!rl)
		return NULL;
	rl->conf = *conf;
	rl->cap_milli = conf->burst * MILLI;
	uint64_t m4[2];
	config_prefix_mask(conf->ipv4_prefix, 4, m4);
	memcpy(&rl->v4_mask, m4, 4);
	config_prefix_mask(conf->ipv6_prefix, 16, rl->v6_mask);
	if (getrandom(&rl->seed, sizeof(rl->seed), 0) != sizeof(rl->seed))
		rl->seed = (uint64_t)(uintptr_t)rl ^ 0x9e3779b97f4a7c15ull;
	rl->n_sets = 1;
	while (rl->n_sets * RATELIMIT_WAYS < entries)
		rl->n_sets <<= 1;
	rl->sets = aligned_alloc(64, rl->n_sets * sizeof(struct set));
	if (!rl->sets) {
		free(rl);
		return NULL;
	}
	memset(rl->sets, 0, rl->n_sets * sizeof(struct set));
	for (uint32_t i = 0; i < rl->n_sets; i++)
		pthread_spin_init(&rl->sets[i].lock, PTHREAD_PROCESS_PRIVATE);
	return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
	if (!rl)
		return;
	for (uint32_t i = 0; i < rl->n_sets; i++)
		pthread_spin_destroy(&rl->sets[i].lock);
	free(rl->sets);
	free(rl);
}

const struct ratelimit_conf *ratelimit_conf(const struct ratelimit *rl)
{
	return &rl->conf;
}

/* The client's prefix as a key: false for an address of no IP family. */
static bool key_of(const struct ratelimit *rl, const struct sockaddr *a, uint64_t key[2])
{
	if (a->sa_family == AF_INET) {
		uint8_t b[8] = {0, 0, 0xff, 0xff};
		uint32_t v;
		memcpy(&v, &((const struct sockaddr_in *)a)->sin_addr, 4);
		v &= rl->v4_mask;
		memcpy(b + 4, &v, 4);
		key[0] = 0;
		memcpy(&key[1], b, 8);
		return true;
	}
	if (a->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)a)->sin6_addr, 16);
		key[0] &= rl->v6_mask[0];
		key[1] &= rl->v6_mask[1];
		return true;
	}
	return false;
}

static uint32_t set_of(const struct ratelimit *rl, const uint64_t key[2], bool is_stream)
{
	uint64_t h = (key[0] ^ rl->seed) * 0xff51afd7ed558ccdull;
	h = (h ^ (h >> 32) ^ key[1] ^ is_stream) * 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 29;
	return (uint32_t)h & (rl->n_sets - 1);
}

/* The entry of key in s, or the one it replaces: a free one, else the one
 * refilled longest ago (LRU within the set). */
static struct entry *find(struct set *s, const uint64_t key[2], uint8_t is_stream, bool *found)
{
	struct entry *victim = &s->e[0];
	for (unsigned i = 0; i < RATELIMIT_WAYS; i++) {
		struct entry *e = &s->e[i];
		if (e->stamp_ms && e->key[0] == key[0] && e->key[1] == key[1] && e->is_stream == is_stream) {
			*found = true;
			return e;
		}
		if (e->stamp_ms < victim->stamp_ms)
			victim = e;
	}
	*found = false;
	return victim;
}

enum ratelimit_verdict ratelimit_take(struct ratelimit *rl, const struct sockaddr *client, bool is_stream,
				      uint64_t now_ms)
{
	uint64_t key[2];
	if (!key_of(rl, client, key))
		return RATELIMIT_PASS;
	if (now_ms == 0)
		now_ms = 1; /* (0 marks a free entry) */
	struct set *s = &rl->sets[set_of(rl, key, is_stream)];
	bool found;
	enum ratelimit_verdict v = RATELIMIT_PASS;
	pthread_spin_lock(&s->lock);
	struct entry *e = find(s, key, is_stream, &found);
	if (!found) {
		e->key[0] = key[0];
		e->key[1] = key[1];
		e->is_stream = is_stream;
		e->tokens = rl->cap_milli;
		e->over = 0;
	} else if (now_ms > e->stamp_ms) {
		/* (a time before the stamp, another worker's loop a little behind, adds nothing) */
		uint64_t t = e->tokens + (now_ms - e->stamp_ms) * rl->conf.qps;
		e->tokens = t < rl->cap_milli ? (uint32_t)t : rl->cap_milli;
	}
	if (now_ms > e->stamp_ms)
		e->stamp_ms = now_ms;
	if (e->tokens >= MILLI) {
		e->tokens -= MILLI;
	} else {
		v = RATELIMIT_DROP;
		if (!is_stream && rl->conf.slip && (e->over = (uint16_t)((e->over + 1) % rl->conf.slip)) == 0)
			v = RATELIMIT_SLIP;
	}
	pthread_spin_unlock(&s->lock);
	return v;
}

unsigned ratelimit_count(struct ratelimit *rl)
{
	unsigned n = 0;
	for (uint32_t i = 0; i < rl->n_sets; i++) {
		struct set *s = &rl->sets[i];
		pthread_spin_lock(&s->lock);
		for (unsigned k = 0; k < RATELIMIT_WAYS; k++)
			n += s->e[k].stamp_ms != 0;
		pthread_spin_unlock(&s->lock);
	}
	return n;
}
