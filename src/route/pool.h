/* pool.h -- the members of one pool and the pick: round-robin over healthy
 * members; when all are down, the one whose backoff ends first (queries are
 * never dropped just because every member failed once). */
#pragma once
#include <stdint.h>

struct upstream;

struct pool {
	struct upstream **members; /* owned: freed by pool_deinit's caller via upstream_free */
	unsigned n;
	unsigned rr;               /* next member to try */
};

/** The member the next query goes to, NULL when the pool is empty. Skips the
 * member "avoid" when another is usable (a retry should go elsewhere). */
struct upstream *pool_pick(struct pool *p, uint64_t now_ms, const struct upstream *avoid);
