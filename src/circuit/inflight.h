/* inflight.h -- the table of queries in flight on one channel (a circuit, or a
 * UDP socket to one upstream), keyed by the upstream-side message ID.
 *
 * inflight_add() picks the ID: random (core/rand.h), retried on collision as
 * Unbound's select_id does, so IDs are unique on the channel and
 * unpredictable. Open addressing with linear probing and backward-shift
 * deletion; the table is sized to twice the cap so probes stay short.
 * No I/O, no clock: unit-tested alone (tests/unit/circuit/test_inflight.c). */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "core/rand.h"

#define INFLIGHT_ID_TRIES 16 /* random draws before giving up on a busy table */

struct inflight_slot {
	void *val;   /* the query; NULL when the slot is free */
	uint16_t id; /* upstream-side message ID */
};

struct inflight {
	struct inflight_slot *slots; /* mask + 1 of them */
	uint8_t *gone;               /* bitmap of 65536 IDs given up on (late answers are told from bogus ones) */
	uint32_t mask;               /* table size - 1 (a power of two) */
	uint32_t count;              /* entries in use */
	uint32_t cap;                /* at most this many in flight */
	uint32_t pop_from;           /* where inflight_pop_any() looks first */
	bool has_gone;               /* a bit of gone may be set (inflight_clear clears them only then) */
};

/** Size the table for up to cap entries (1..32768). Returns 0 or -ENOMEM/-EINVAL. */
int inflight_init(struct inflight *t, uint32_t cap) __attribute__((warn_unused_result));
void inflight_deinit(struct inflight *t);
/** Make an empty table (count == 0) as new, for reuse by another channel:
 * its given-up IDs are forgotten. Costs nothing when none were given up. */
void inflight_clear(struct inflight *t);

/** Store val (not NULL) under a fresh random ID, written to *id. Returns 0, ERR_FULL when
 * count == cap, or ERR_NOID when INFLIGHT_ID_TRIES draws all collided. */
int inflight_add(struct inflight *t, struct rnd *r, void *val, uint16_t *id)
	__attribute__((warn_unused_result));

/** The value stored under id, or NULL. */
void *inflight_get(const struct inflight *t, uint16_t id);

/** Remove and return the value stored under id, or NULL when there is none. */
void *inflight_del(struct inflight *t, uint16_t id);

static inline bool inflight_full(const struct inflight *t)
{
	return t->count >= t->cap;
}

/** Remove id's entry because its query gave up (deadline); an answer that
 * still comes for it is "late", not "mismatched". Returns the value or NULL. */
void *inflight_abandon(struct inflight *t, uint16_t id);

/** Was id abandoned (and not reused since)? Clears the mark. */
bool inflight_take_gone(struct inflight *t, uint16_t id);

/** Remove one entry (any) and return its value; NULL when empty. For draining. */
void *inflight_pop_any(struct inflight *t);
