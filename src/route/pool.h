/* pool.h -- the members of one pool (per worker) and the pick, by the pool's
 * policy (CONFIG.md pools.*.policy): round-robin, random (weighted),
 * least-outstanding, fastest (latency EWMA, with a share of the picks
 * probing the others so a recovered member is noticed), failover (the
 * first usable in order). Members down or at their max-inflight are
 * skipped; when none is usable, the one whose backoff ends first (or, with
 * when-all-down: servfail, none). No I/O: unit-tested alone. */
#pragma once
#include <stdint.h>
#include "config/config.h"
#include "circuit/timeout.h"
#include "core/rand.h"

struct upstream;

#define POOL_PROBE_EVERY 20 /* fastest: one pick in this many goes to another usable member */

struct pool {
	const struct pool_conf *conf;
	struct upstream **members; /* the worker's upstream instances (borrowed), conf order */
	unsigned n;
	unsigned rr;               /* round-robin: next member to try */
	uint32_t picks;            /* fastest: picks so far (the probing share) */
	struct tq tries;           /* queries on a member, delay = conf->timeout_ms (0: not used) */
	struct tq probes;          /* health probes in flight, delay = conf->health.timeout_ms */
	uint64_t next_probe_ms;    /* when the members are probed next (health.interval set) */
};

/** The member the next query goes to, NULL when there is none to try.
 * Skips "avoid" (the one that just failed it) when another is usable. */
struct upstream *pool_pick(struct pool *p, uint64_t now_ms, const struct upstream *avoid, struct rnd *r);
