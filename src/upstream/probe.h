/* probe.h -- active health probes (pools.*.health): at each interval every
 * member of the pool gets a query (id.server. CH TXT by default) over its
 * own transport, as an internal client of its own; answered (any rcode but
 * SERVFAIL) or not within health.timeout, the result goes to the member's
 * health (route/health.h: fall failures in a row -> down, rise answers ->
 * up), and each transition is logged once. */
#pragma once
#include <stdint.h>

struct worker;
struct pool;
struct query;

/** Probe every member of the pools whose interval is due (worker timer). */
void probe_due(struct worker *w, uint64_t now_ms);

/** A probe's time ran out: it counts as unanswered. */
void probe_expired(struct query *q);
