/* pool.c -- the pick by policy (see pool.h). */
#include <stddef.h>
#include "route/pool.h"
#include "upstream/upstream.h"

/* May it take a query now: healthy (or its backoff is over: a probe with a
 * real query), and below its own cap? */
static bool usable(const struct upstream *u, uint64_t now_ms)
{
	return health_usable(&u->health, now_ms) &&
	       (!u->conf->max_inflight || upstream_outstanding(u) < u->conf->max_inflight);
}

static struct upstream *round_robin(struct pool *p, uint64_t now, const struct upstream *avoid)
{
	for (unsigned i = 0; i < p->n; i++) {
		unsigned k = (p->rr + i) % p->n;
		struct upstream *u = p->members[k];
		if (u != avoid && usable(u, now)) {
			p->rr = k + 1;
			return u;
		}
	}
	return NULL;
}

static struct upstream *weighted(struct pool *p, uint64_t now, const struct upstream *avoid, struct rnd *r)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < p->n; i++)
		if (p->members[i] != avoid && usable(p->members[i], now))
			total += p->members[i]->conf->weight;
	if (!total)
		return NULL;
	uint64_t x = (((uint64_t)rnd_u16(r) << 16) | rnd_u16(r)) % total;
	for (unsigned i = 0; i < p->n; i++) {
		struct upstream *u = p->members[i];
		if (u == avoid || !usable(u, now))
			continue;
		if (x < u->conf->weight)
			return u;
		x -= u->conf->weight;
	}
	return NULL;
}

static struct upstream *least_outstanding(struct pool *p, uint64_t now, const struct upstream *avoid)
{
	struct upstream *best = NULL;
	uint32_t best_n = UINT32_MAX;
	for (unsigned i = 0; i < p->n; i++) {
		unsigned k = (p->rr + i) % p->n; /* ties go round */
		struct upstream *u = p->members[k];
		if (u == avoid || !usable(u, now))
			continue;
		uint32_t n = upstream_outstanding(u);
		if (n < best_n) {
			best = u;
			best_n = n;
		}
	}
	p->rr++;
	return best;
}

/* The lowest latency EWMA; members never measured count as fastest (so each
 * is tried); one pick in POOL_PROBE_EVERY goes round-robin instead, so a
 * member that was slow, and has recovered, is seen again. */
static struct upstream *fastest(struct pool *p, uint64_t now, const struct upstream *avoid)
{
	if (++p->picks % POOL_PROBE_EVERY == 0)
		return round_robin(p, now, avoid);
	struct upstream *best = NULL;
	for (unsigned i = 0; i < p->n; i++) {
		struct upstream *u = p->members[i];
		if (u != avoid && usable(u, now) && (!best || u->rtt_ewma_us < best->rtt_ewma_us))
			best = u;
	}
	return best;
}

static struct upstream *failover(struct pool *p, uint64_t now, const struct upstream *avoid)
{
	for (unsigned i = 0; i < p->n; i++)
		if (p->members[i] != avoid && usable(p->members[i], now))
			return p->members[i];
	return NULL;
}

struct upstream *pool_pick(struct pool *p, uint64_t now_ms, const struct upstream *avoid, struct rnd *r)
{
	if (p->n == 0)
		return NULL;
	for (int pass = 0; pass < 2; pass++) {
		struct upstream *u = NULL;
		switch (p->conf->policy) {
		case POOL_ROUND_ROBIN: u = round_robin(p, now_ms, avoid); break;
		case POOL_RANDOM: u = weighted(p, now_ms, avoid, r); break;
		case POOL_LEAST_OUTSTANDING: u = least_outstanding(p, now_ms, avoid); break;
		case POOL_FASTEST: u = fastest(p, now_ms, avoid); break;
		case POOL_FAILOVER: u = failover(p, now_ms, avoid); break;
		}
		if (u)
			return u;
		avoid = NULL; /* nobody else: the one that failed may still try again */
	}
	if (p->conf->when_all_down == ALL_DOWN_SERVFAIL)
		return NULL;
	/* least-bad: the member whose backoff ends first (queries are not
	 * dropped just because every member failed once) */
	struct upstream *fallback = NULL;
	for (unsigned i = 0; i < p->n; i++) {
		struct upstream *u = p->members[i];
		if (!fallback || u->health.retry_at_ms < fallback->health.retry_at_ms)
			fallback = u;
	}
	return fallback;
}
