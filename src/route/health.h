/* health.h -- passive health of one upstream instance (per worker): consecutive
 * failures, when it may be tried again, reconnect backoff with jitter. Pure
 * state, no I/O: upstream code reports successes and failures, the pool reads
 * health_usable(). As nginx keeps fails/max_fails on its peers. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "core/rand.h"

#define HEALTH_MAX_FAILS 2        /* consecutive failures that mark an upstream down */
#define HEALTH_BACKOFF_MIN_MS 50  /* first reconnect delay after a failed connect */
#define HEALTH_BACKOFF_MAX_MS 400 /* cap, so a restarted upstream is back well within a second */
#define HEALTH_AUTH_BACKOFF_MS 2000 /* after a certificate was rejected */

struct health {
	uint32_t fails;          /* consecutive failures */
	uint32_t backoff_ms;     /* current reconnect delay (before jitter) */
	uint64_t retry_at_ms;    /* not before this: next connect or probe */
	bool is_down;            /* skipped by the pool until it answers again */
	/* active probes (pools.*.health): */
	uint32_t probe_fails;    /* consecutive probes without an answer */
	uint32_t probe_oks;      /* consecutive probes answered */
	bool probe_down;         /* down by the probes: skipped until `rise` answer */
};

static inline void health_init(struct health *h)
{
	h->fails = 0;
	h->backoff_ms = 0;
	h->retry_at_ms = 0;
	h->is_down = false;
	h->probe_fails = h->probe_oks = 0;
	h->probe_down = false;
}

/** A probe's result: `fall` failures in a row mark it down, `rise` answers
 * in a row up again. Returns -1 when it just went down, +1 when it just came
 * up, 0 otherwise (the caller logs transitions, once each). */
static inline int health_probe(struct health *h, bool answered, uint32_t fall, uint32_t rise)
{
	if (answered) {
		h->probe_fails = 0;
		h->probe_oks++;
		if (h->probe_down && h->probe_oks >= rise) {
			h->probe_down = false;
			return 1;
		}
		return 0;
	}
	h->probe_oks = 0;
	h->probe_fails++;
	if (!h->probe_down && h->probe_fails >= fall) {
		h->probe_down = true;
		return -1;
	}
	return 0;
}

/** It answered: healthy again, no backoff. */
static inline void health_ok(struct health *h)
{
	h->fails = 0;
	h->backoff_ms = 0;
	h->retry_at_ms = 0;
	h->is_down = false;
}

/** It failed (connect refused, circuit died unanswered, timeout): back off,
 * doubling from HEALTH_BACKOFF_MIN_MS to the cap, each delay jittered to
 * 50-100 % so workers and restarts do not reconnect in lockstep. */
static inline void health_fail(struct health *h, struct rnd *r, uint64_t now_ms)
{
	h->fails++;
	if (h->fails >= HEALTH_MAX_FAILS)
		h->is_down = true;
	h->backoff_ms = h->backoff_ms ? h->backoff_ms * 2 : HEALTH_BACKOFF_MIN_MS;
	if (h->backoff_ms > HEALTH_BACKOFF_MAX_MS)
		h->backoff_ms = HEALTH_BACKOFF_MAX_MS;
	uint32_t half = h->backoff_ms / 2;
	h->retry_at_ms = now_ms + half + rnd_u16(r) % (half + 1);
}

/** May the pool send a query to it now? Down members are tried again (a probe
 * with a real query) once their backoff has run out. */
static inline bool health_usable(const struct health *h, uint64_t now_ms)
{
	if (h->probe_down)
		return false; /* until its probes are answered again */
	return !h->is_down || now_ms >= h->retry_at_ms;
}
