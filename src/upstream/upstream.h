/* upstream.h -- one upstream server reached by one transport, as seen by one
 * worker. Stream transports (tcp, unix) keep circuits (circuit/circuit.h);
 * UDP sends from rotating sockets (upstream/udp.c), retries, and has a TCP
 * twin for answers that come back truncated.
 *
 * upstream_send() takes the query or answers it SERVFAIL; it never blocks. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "circuit/inflight.h"
#include "config/config.h"
#include "obs/metrics.h"
#include "route/health.h"

struct worker;
struct query;
struct circuit;
struct mdns;

struct upstream {
	const struct upstream_conf *conf; /* address and kind; owned by the config (or by twin_conf) */
	struct worker *w;                 /* owner */
	struct health health;             /* failures, backoff */
	uint32_t rtt_ewma_us;             /* answer latency, EWMA (fastest policy); 0 until measured */
	bool wants_rtt;                   /* its pool picks by latency: keep rtt_ewma_us */
	char name[640];                   /* for logs, and the upstream label of /metrics */
	struct upstream_stats *stats;     /* its counters: the worker's block for name (never NULL) */
	/* stream transports */
	struct circuit *circuits[CONFIG_CIRCUIT_MAX_LIMIT]; /* open or opening */
	unsigned n_circuits;
	uint64_t connects_window_ms;      /* start of the current one-second window of connects */
	unsigned connects_in_window;      /* connects started in it (circuit.c rate limit) */
	/* UDP */
	struct udp_sock *udp;             /* socket new queries go out on; NULL until needed */
	struct upstream *tcp_twin;        /* same server over TCP, for TC=1 answers; lazily made */
	struct upstream_conf twin_conf;   /* the twin's conf */
	/* mDNS */
	struct mdns *mdns;                /* sockets and waiting queries (upstream/mdns.c); NULL until needed */
};

/** Make the instance of conf for worker w; NULL when out of memory. */
struct upstream *upstream_new(struct worker *w, const struct upstream_conf *conf);
/** Close its sockets and circuits (queries still held are answered SERVFAIL first); frees
 * once every handle has closed. Accepts NULL. */
void upstream_close(struct upstream *u);

/** Send q (Q_IDLE) to u. Returns 0, or a negative code after which q is still
 * the caller's (ERR_FULL: every circuit is full). */
int upstream_send(struct upstream *u, struct query *q) __attribute__((warn_unused_result));

/** Queries u holds now (in flight or waiting on its circuits and sockets). */
uint32_t upstream_outstanding(const struct upstream *u);

/** An answer came from u for q: into u's latency histograms (total, queue
 * and wire time), and its EWMA (1/8 per sample) when its pool wants it. */
void upstream_note_answer(struct upstream *u, struct query *q);

/** Count an error of kind (enum upstream_error) against u. */
static inline void upstream_count_error(struct upstream *u, enum upstream_error kind)
{
	STAT_INC(u->stats, errors[kind]);
}

/** Remove q from whatever table or list of u holds it. */
void upstream_cancel(struct upstream *u, struct query *q);

/** Worker timer: retransmit UDP queries whose retry interval ran out. */
void upstream_udp_retry_expired(struct query *q);

/** Answer from a UDP upstream or a circuit carried TC=1. */
void upstream_retry_tcp(struct upstream *u, struct query *q);
