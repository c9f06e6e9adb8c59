/* timeout.h -- deadlines as intrusive entries in fixed-delay FIFO queues.
 *
 * Every entry in one queue gets the same delay, so appending keeps the queue
 * sorted by deadline: add, remove and "what expires next" are all O(1). A
 * worker has a few queues (query deadline, UDP retransmit, client idle) and
 * one uv_timer_t armed at the earliest head (core/worker.c). No I/O here:
 * time is passed in, so tests drive it with a fake clock. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tq_entry {
	struct tq_entry *prev, *next; /* NULL when not queued */
	uint64_t deadline_ms;         /* absolute, in the worker's clock */
};

struct tq {
	struct tq_entry head; /* sentinel of a circular list */
	uint64_t delay_ms;    /* the delay every entry of this queue gets */
};

static inline void tq_init(struct tq *q, uint64_t delay_ms)
{
	q->head.prev = q->head.next = &q->head;
	q->head.deadline_ms = UINT64_MAX;
	q->delay_ms = delay_ms;
}

static inline bool tq_entry_queued(const struct tq_entry *e)
{
	return e->next != NULL;
}

/** Remove e from its queue; harmless when it is not queued. */
static inline void tq_remove(struct tq_entry *e)
{
	if (!e->next)
		return;
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->prev = e->next = NULL;
}

/** Queue e to expire at now + the queue's delay (re-queues if already queued). */
static inline void tq_add(struct tq *q, struct tq_entry *e, uint64_t now_ms)
{
	tq_remove(e);
	e->deadline_ms = now_ms + q->delay_ms;
	e->prev = q->head.prev;
	e->next = &q->head;
	q->head.prev->next = e;
	q->head.prev = e;
}

/** Queue e with the deadline it has (moving it from another queue): the
 * queue stays sorted only if no entry already in it expires later. */
static inline void tq_append_as_is(struct tq *q, struct tq_entry *e)
{
	uint64_t at = e->deadline_ms;
	tq_remove(e);
	e->deadline_ms = at;
	e->prev = q->head.prev;
	e->next = &q->head;
	q->head.prev->next = e;
	q->head.prev = e;
}

static inline bool tq_empty(const struct tq *q)
{
	return q->head.next == &q->head;
}

/** Deadline of the earliest entry, UINT64_MAX when empty. */
static inline uint64_t tq_next_ms(const struct tq *q)
{
	return q->head.next->deadline_ms;
}

/** Unlink and return the earliest entry if it expired by now, else NULL. */
static inline struct tq_entry *tq_pop_expired(struct tq *q, uint64_t now_ms)
{
	struct tq_entry *e = q->head.next;
	if (e == &q->head || e->deadline_ms > now_ms)
		return NULL;
	tq_remove(e);
	return e;
}

#define tq_container(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))
