/* circuit.h -- the multiplexer: one persistent stream connection to one
 * upstream (TCP or unix socket) carrying many queries at once, each under a
 * fresh upstream-side ID, answered in any order (RFC 7766 6.2.1.1).
 *
 * Life: BACKOFF -> CONNECTING -> READY -> closed. Queries given before READY
 * wait on a list; on READY they are written. Writes are batched per loop turn
 * (worker check callback calls circuit_flush). If the connection drops, every
 * query it held is handed back to query_requeue() at once. See circuit/README.md. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

struct upstream;
struct query;
struct circuit;

/** Open a circuit for u (connecting now, or after u's backoff) and add it
 * to u->circuits, where it stays until it closes. Never fails or calls back
 * before it returns: a connect that fails at once is reported from the
 * circuit's timer. NULL on ENOMEM (u->circuits unchanged). */
struct circuit *circuit_new(struct upstream *u);

/** Queries it holds (in flight and waiting). */
unsigned circuit_held(const struct circuit *c);

/** Can it take one more query (in flight + waiting below the cap, not closing)? */
bool circuit_has_room(const struct circuit *c);

/** Hand q to c: written this loop turn if READY, else queued until it is. */
int circuit_send(struct circuit *c, struct query *q) __attribute__((warn_unused_result));

/** Take q back (deadline reached): no answer will be delivered for it. */
void circuit_cancel(struct circuit *c, struct query *q);

/** Write what was queued this turn (called from the worker's check callback). */
void circuit_flush(struct circuit *c);

/** Close c; queries it holds are requeued (requeue=true) or answered SERVFAIL. */
void circuit_close(struct circuit *c, bool requeue);

/** Next in the worker's list of circuits to flush. */
struct circuit *circuit_next_dirty(struct circuit *c);
