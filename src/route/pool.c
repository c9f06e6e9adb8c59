/* pool.c -- round-robin pick over healthy members (see pool.h). */
#include <stddef.h>
#include "route/pool.h"
#include "upstream/upstream.h"

struct upstream *pool_pick(struct pool *p, uint64_t now_ms, const struct upstream *avoid)
{
	if (p->n == 0)
		return NULL;
	struct upstream *fallback = NULL;
	for (unsigned i = 0; i < p->n; i++) {
		unsigned k = (p->rr + i) % p->n;
		struct upstream *u = p->members[k];
		if (!health_usable(&u->health, now_ms) || (u == avoid && p->n > 1)) {
			if (!fallback || u->health.retry_at_ms < fallback->health.retry_at_ms)
				fallback = u;
			continue;
		}
		p->rr = k + 1;
		return u;
	}
	return fallback;
}
