/* qlog.h -- the query log (log.queries: PATH): one line per answered
 * query, written off the query path. Each worker fills a ring of its own
 * (single producer, single consumer, no lock: a full ring drops the line
 * and counts it); the writer on the daemon thread's loop drains the rings
 * every QLOG_DRAIN_MS, formats the lines and writes them to a file opened
 * O_APPEND|O_NONBLOCK -- a FIFO nobody reads, or a full disk, loses lines
 * (counted), never time on the query path. Line format (qlog_format):
 *   2026-12-01T14:03:05.123Z 127.0.0.1#53012 udp n1.test. A NOERROR tcp://127.0.0.1:53 0.412 */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct upstream_stats;

#define QLOG_RING_ENTRIES 4096 /* per worker: 80 ms at 50,000 answers/s */
#define QLOG_DRAIN_MS 20
#define QLOG_BUF 65536         /* lines formatted and not yet written; past it lines are dropped */

struct qlog_entry {
	uint64_t done_us;          /* clock_us() when answered */
	uint32_t latency_us;       /* since the query came */
	uint16_t qtype;
	uint16_t port;             /* the client's, host order */
	uint8_t family;            /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	uint8_t frontend;          /* enum metrics_frontend */
	uint8_t rcode;
	uint8_t qname_len;         /* of qname, wire form; 0: no question */
	const struct upstream_stats *upstream; /* whose answer (its name); NULL: the cache's or dnsmux's own */
	uint8_t qname[255];
};

struct qlog_ring {
	uint32_t mask;             /* entries - 1 */
	uint64_t head __attribute__((aligned(64))); /* next to fill: the worker's, stored with release */
	uint64_t tail __attribute__((aligned(64))); /* next to take: the writer's, stored with release */
	struct qlog_entry e[] __attribute__((aligned(64)));
};

/** A ring of entries (a power of two); NULL without memory. */
struct qlog_ring *qlog_ring_new(uint32_t entries);
void qlog_ring_free(struct qlog_ring *r);

/** Producer (one thread): the entry to fill, or NULL when the ring is full. */
static inline struct qlog_entry *qlog_ring_claim(struct qlog_ring *r)
{
	uint64_t h = r->head;
	if (h - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) > r->mask)
		return NULL;
	return &r->e[h & r->mask];
}

/** Producer: the claimed entry is filled. */
static inline void qlog_ring_commit(struct qlog_ring *r)
{
	__atomic_store_n(&r->head, r->head + 1, __ATOMIC_RELEASE);
}

/** Consumer (one thread): copy the oldest entry to out; false when empty. */
bool qlog_ring_pop(struct qlog_ring *r, struct qlog_entry *out);

/** One line for e (with its '\n', then a '\0' not counted) into buf;
 * realtime_minus_mono_us turns done_us into wall-clock time. Returns its
 * length, 0 if cap is too small. */
size_t qlog_format(const struct qlog_entry *e, int64_t realtime_minus_mono_us, char *buf, size_t cap);

struct qlog_writer;

/** Drain rings[0..n) into path on loop, every QLOG_DRAIN_MS. The rings
 * must outlive the writer. NULL without memory (a path that cannot be
 * opened is logged, and tried again at each drain). */
struct qlog_writer *qlog_writer_new(uv_loop_t *loop, const char *path, struct qlog_ring **rings, unsigned n);
/** SIGHUP: close and open path again (log rotation), or a new path. */
void qlog_writer_reopen(struct qlog_writer *q, const char *path);
/** Lines the writer lost (buffer full, file not open or not writable). */
uint64_t qlog_writer_dropped(const struct qlog_writer *q);
/** Drain what is left (once the producers stopped), close the file and
 * its timer (freed by its close callback). Accepts NULL. */
void qlog_writer_close(struct qlog_writer *q);
