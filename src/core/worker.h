/* worker.h -- one thread, one uv_loop_t. A worker owns its listeners (its own
 * SO_REUSEPORT sockets), its upstream instances with their circuits and
 * in-flight tables, its queries and its timers: nothing on the query path is
 * shared between workers, so nothing takes a lock. core/daemon.c starts and
 * stops workers. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "circuit/timeout.h"
#include "config/config.h"
#include "core/rand.h"
#include "core/udptx.h"
#include "obs/metrics.h"
#include "route/pool.h"

struct worker;
struct query;
struct circuit;
struct frontend_udp;
struct frontend_tcp;
struct tcp_client;
struct udp_sock;

#define WORKER_UDP_CHUNKS 16 /* most datagrams per recvmmsg batch */
/* Bytes of client messages too large for a query's inline buffer that a
 * worker holds at once; past it, large queries are answered SERVFAIL
 * (overflow). 64 KB queries to a silent upstream would otherwise take ~1 GB
 * at --max-inflight 10000. */
#define WORKER_QUERY_HEAP_MAX (16u * 1024 * 1024)

/* How many datagrams a UDP socket asks recvmmsg for (frontend/udp.c,
 * upstream/udp.c): every chunk is set up for each call, and calls go on
 * while they come back full (worker_read_on), so a wide batch costs
 * instructions when one datagram comes per wakeup and saves system calls
 * when many do. The width follows what the last call got. */
struct udp_width {
	uint16_t chunks; /* width of the next call */
	uint16_t got;    /* datagrams received in the current call */
};

#define WORKER_UDP_READS 32 /* recvmmsg calls per readiness event at most, as libuv */

/** The buffers of the next recvmmsg call, iov[0..n) of the worker's shared
 * buffer, n (returned, also uw->chunks) as wide as uw says. */
unsigned worker_udp_iov(struct worker *w, struct udp_width *uw, struct iovec *iov);

/* An upstream a reload removed: it takes no new query, answers what it
 * holds, and is closed once it holds nothing; its conf is in the snapshot
 * of generation gen, which stays alive until then. */
struct retired_upstream {
	struct upstream *u;
	unsigned long gen;
	uint64_t closed_turn; /* the loop turn it was closed in; 0: open */
};

struct worker {
	unsigned idx;                  /* 0..threads-1, for logs and stats */
	const struct config *cfg;      /* immutable snapshot (config/snapshot.h) */
	const struct config *next_cfg; /* daemon -> worker: switch to this one (reload) */
	unsigned long min_gen;         /* worker -> daemon: the oldest snapshot generation still used */
	struct listen_conf *listens;   /* the listeners' confs: a copy, as listeners outlive snapshots */
	struct retired_upstream *retired; /* upstreams removed by reloads, draining */
	unsigned n_retired;
	uint64_t turns;                /* loop turns (check_cb) */
	uv_loop_t loop;
	uv_thread_t thread;
	uv_timer_t timer;              /* armed at the earliest deadline of the queues below */
	uint64_t timer_at;             /* when timer fires, UINT64_MAX when stopped */
	uv_check_t check;              /* after I/O callbacks: flush circuits and UDP sends */
	uv_prepare_t prepare;          /* before polling: the same, for what timers queued */
	uv_async_t wake;               /* daemon -> worker: stop */
	struct tq deadlines;           /* queries, delay = timeout */
	struct tq udp_retry;           /* queries sent over UDP, delay = udp_retry */
	struct tq tcp_idle;            /* client TCP connections, delay = tcp_idle */
	struct tq tls_hs;              /* DoT clients in their handshake, delay = tls_handshake */
	struct tq tcp_linger;          /* client connections draining, delay = WORKER_DRAIN_MS */
	struct rnd rnd;                /* IDs and jitter */
	struct metrics m;              /* counters, read by the daemon */
	struct ustats_table ustats;    /* per-upstream counters by URL, read by the daemon (obs/metrics.h) */
	uv_timer_t stats_timer;        /* publishes the per-upstream gauges (WORKER_STATS_MS) */
	struct qlog_ring *qlog;        /* the query log's ring (obs/qlog.h): filled here, drained by the daemon; NULL without log.queries */
	struct upstream **upstreams;   /* this worker's instance of each cfg->upstreams[i] (owned) */
	unsigned n_upstreams;
	struct pool *pools;            /* one per cfg->pools[i]; members borrowed from upstreams */
	unsigned n_pools;
	unsigned default_pool;         /* where names go when there are no routes */
	struct route_scratch *route_scratch; /* PCRE2 match data for cfg->route_table */
	uint32_t inflight;             /* queries alive */
	size_t query_heap_len;         /* bytes of their messages on the heap (WORKER_QUERY_HEAP_MAX) */
	uint32_t turn_inputs;          /* messages read in this loop turn (worker_batch_done) */
	struct query *free_queries;    /* released queries, for reuse */
	uint32_t n_free;
	struct circuit *dirty;         /* circuits with output to flush this turn */
	struct frontend_udp *udps;     /* UDP listeners (list) */
	struct frontend_tcp *tcps;     /* TCP listeners (list) */
	struct tcp_client *clients;    /* client TCP connections (list) */
	uint32_t n_clients;
	struct udptx *tx;              /* UDP datagrams to send at the end of this loop turn */
	uint8_t *udp_rbuf;             /* recvmmsg buffer, shared by all UDP sockets of the worker */
	struct udp_sock *spare_usock;  /* a closed UDP upstream socket, kept for the next (upstream/udp.c) */
	size_t udp_rbuf_len;
	int *fds;                      /* listener sockets made by the daemon, per listen_conf and proto */
	volatile int stop_requested;   /* set by the daemon before waking the worker */
	bool is_stopping;              /* listeners closed, draining */
	uint64_t stop_by_ms;           /* stopping: client connections still draining are closed then */
	bool is_closed;                /* every handle closing */
};

int worker_init(struct worker *w, unsigned idx, const struct config *cfg, int *fds)
	__attribute__((warn_unused_result));
void worker_deinit(struct worker *w);
/** Thread entry: runs the loop until stopped. */
void worker_run(void *arg);
/** From another thread: ask the worker to stop gracefully. */
void worker_request_stop(struct worker *w);
/** From another thread: switch to snapshot next (it must outlive the
 * worker's use of it: see min_gen). Upstreams in both keep their instances
 * and circuits; queries in flight move to their pools' namesakes. */
void worker_request_config(struct worker *w, const struct config *next);

/* A recvmmsg of n datagrams came back full: call it again? A batch of one
 * is taken as all there is while it is the only message of the loop turn
 * -- a light load, where reading on would cost an empty call per datagram,
 * and if more is waiting the level-triggered poll says so at once; with
 * other messages in the turn (a load), read on until a call comes back
 * short, as a wider batch would. */
static inline bool worker_read_on(const struct worker *w, unsigned n)
{
	return n > 1 || w->turn_inputs > 1;
}

static inline uint64_t worker_now(struct worker *w)
{
	return uv_now(&w->loop);
}

/** A query from the free list (or malloc), with room for a wire_len-byte
 * message in q->wire (inline, or from the heap past QUERY_INLINE: counted in
 * query_heap_len until released). NULL when out of memory. */
struct query *worker_query_new(struct worker *w, size_t wire_len);
void worker_query_release(struct query *q);

/** Send what is queued: circuits' output and batched UDP datagrams. Called
 * at the end of each loop turn. */
void worker_flush(struct worker *w);

/** End of a batch of input (a recvmmsg, a stream read): under light load
 * flush now, so a query waits for its batch and not for the whole turn;
 * under heavy load (more than WORKER_BATCH_INPUTS this turn) leave it to the
 * end of the turn, where larger batches cost fewer writes and TLS records. */
void worker_batch_done(struct worker *w);

#define WORKER_BATCH_INPUTS 16

/* How often a worker publishes its per-upstream gauges (in flight,
 * circuits, up) for /metrics: they are the state of its instances, which
 * only it may read. */
#define WORKER_STATS_MS 1000

/** Publish the per-upstream gauges now (also done every WORKER_STATS_MS). */
void worker_publish_stats(struct worker *w);

/** How long a closing client connection may take to flush its answers (and
 * a stopping worker its connections): the query timeout, at least 2 s. */
static inline uint32_t worker_drain_ms(const struct config *cfg)
{
	return cfg->timeout_ms > 2000 ? cfg->timeout_ms : 2000;
}

/** Make sure the worker timer fires by at_ms. */
void worker_arm(struct worker *w, uint64_t at_ms);
