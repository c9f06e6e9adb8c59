/* metrics.h -- per-worker counters, and per-upstream counters, gauges and
 * histograms. Only the owning worker writes them (a relaxed atomic store of
 * value + 1, a plain move on x86); other threads read them with relaxed
 * loads and add them up: the stats lines on SIGUSR1 and at exit, and the
 * Prometheus text of /metrics (metrics_render, served by obs/metrics_http.c).
 * Nothing here takes a lock. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define METRICS_FIELDS(X)                                                                                              \
	X(queries)           /* client queries received (the sum of by_frontend) */                                  \
	X(answered)          /* answers sent, to clients and internal callers (the sum of by_rcode) */               \
	X(servfail)          /* SERVFAIL made by dnsmux (timeout, no upstream, overflow) */                          \
	X(formerr)           /* FORMERR sent for unparseable queries */                                              \
	X(notimp)            /* NOTIMP sent for opcodes other than QUERY */                                          \
	X(refused)           /* REFUSED sent */                                                                      \
	X(dropped_qr)        /* client messages with QR=1, dropped */                                                \
	X(malformed)         /* client messages that did not parse (FORMERR or dropped) */                           \
	X(truncated)         /* answers truncated for a UDP client */                                                \
	X(late)              /* upstream answers for queries already answered or forgotten */                        \
	X(mismatched)        /* upstream answers whose QR, ID or question did not match */                           \
	X(upstream_errors)   /* DoH upstream streams that ended in an HTTP error or a reset */                       \
	X(malformed_answers) /* upstream answers that matched a query but did not parse: discarded */               \
	X(overflow)          /* queries refused by an in-flight cap (answered SERVFAIL) */                           \
	X(no_route)          /* queries no route matched (answered SERVFAIL) */                                       \
	X(upstream_timeouts) /* queries that reached their deadline */                                               \
	X(udp_retries)       /* UDP retransmissions */                                                               \
	X(tc_retries)        /* UDP answers with TC=1 retried over TCP */                                            \
	X(requeued)          /* queries resent because their circuit dropped */                                      \
	X(pool_retries)      /* queries tried on another member after a SERVFAIL or a try's timeout */              \
	X(suspects)          /* queries first unanswered on two circuits that died: SERVFAIL, never resent */      \
	X(circuits_opened)   /* upstream connections opened */                                                       \
	X(circuits_failed)   /* upstream connections that failed or died */                                          \
	X(circuit_writes)    /* writes to upstream connections (queries per write: the batching) */                  \
	X(circuit_acks)      /* immediate ACKs asked of the kernel, so an upstream's Nagle holds no answer */        \
	X(send_errors)       /* answers that could not be sent to the client */                                      \
	X(tcp_writes_cancelled) /* writes to TCP/DoT clients cancelled by a close (drain timed out, error) */       \
	X(tcp_backlogged)    /* times a TCP/DoT client left so many answers unread that reading it paused */        \
	X(tcp_clients)       /* client TCP connections accepted */                                                   \
	X(tcp_rejected)      /* client TCP connections closed at once by the cap */                                  \
	X(tls_handshakes)    /* upstream TLS sessions established */                                                 \
	X(tls_resumed)       /* of which resumed from a session ticket */                                            \
	X(tls_auth_failures) /* upstream certificates rejected (no query sent) */                                    \
	X(tls_clients)       /* DoT client connections that completed a handshake */                                 \
	X(tls_client_failures) /* DoT client handshakes that failed or timed out */                                \
	X(doh_h2_clients)    /* DoH client connections speaking HTTP/2 */                                            \
	X(doh_h1_clients)    /* DoH client connections speaking HTTP/1.x */                                          \
	X(doh_bad_requests)  /* DoH requests answered 4xx/5xx (wrong method, path, type, base64, message) */        \
	X(cache_hits)        /* queries answered from the cache (fresh) */                                            \
	X(cache_misses)      /* cacheable queries the cache had no fresh answer for */                                \
	X(cache_stale)       /* queries answered from an expired entry, every upstream having failed (serve-stale) */ \
	X(cache_prefetches)  /* entries refreshed ahead of expiry (prefetch) */                                       \
	X(cache_truncations_avoided) /* hits over 512 bytes served whole to a client taking them */ \
	X(dns64_lookups)     /* A (or PTR) queries DNS64 asked for a client's AAAA (or ip6.arpa PTR) query */        \
	X(dns64_synthesised) /* AAAA answers synthesised from A */                                                    \
	X(dns64_filtered)    /* AAAA answers sent without their excluded addresses */                                  \
	X(dns64_unsynthesised) /* of the lookups, those answered with the AAAA answer (no mapped A, or it failed) */  \
	X(dns64_reverse)     /* PTR queries under a prefix answered from the IPv4 name */ \
	X(dropped_short)     /* client messages shorter than a header, dropped */                                    \
	X(dropped_nomem)     /* client messages dropped for want of memory for their query */                       \
	X(dropped_acl)       /* queries from clients their listener's acl refuses: dropped (UDP), else REFUSED */   \
	X(dropped_ratelimit) /* queries over their client's rate: dropped or slipped (UDP), else REFUSED */          \
	X(ratelimit_slipped) /* of those, UDP ones answered with an empty TC=1 answer (slip) */                     \
	X(querylog_dropped)  /* query log lines lost: the worker's ring was full (obs/qlog.h) */

/* Who a query came from (struct client_ops.kind): the frontend label of
 * dnsmux_queries_total. Internal clients (probes, prefetch, DNS64's own
 * lookups) are 0 and not counted as queries or answers. */
enum metrics_frontend { MF_INTERNAL = 0, MF_UDP, MF_TCP, MF_DOT, MF_DOH, MF_KINDS };

struct metrics {
#define METRICS_DECL(name) uint64_t name;
	METRICS_FIELDS(METRICS_DECL)
#undef METRICS_DECL
	/* queries and answered are not counted on the path but made by
	 * metrics_sum from these (one increment per query and answer less) */
	uint64_t by_frontend[MF_KINDS]; /* client queries received, per frontend (enum metrics_frontend) */
	uint64_t by_rcode[17];          /* answers sent to clients, per rcode (the header's 4 bits); [16]: to internal callers */
};

#define METRIC_INC(m, field) __atomic_store_n(&(m)->field, (m)->field + 1, __ATOMIC_RELAXED)
#define METRIC_ADD(m, field, n) __atomic_store_n(&(m)->field, (m)->field + (n), __ATOMIC_RELAXED)

/** Format "key=value key=value ..." of m into buf. */
void metrics_format(const struct metrics *m, char *buf, size_t cap);
/** Add src to dst, reading src with relaxed loads (src is another thread's). */
void metrics_sum(struct metrics *dst, const struct metrics *src);

/* ---- histograms ----
 * Fixed buckets, powers of two of microseconds: le 16 us, 32 us, ... 2^22 us
 * (4.19 s), then +Inf. The bucket is a count-leading-zeros away, so an
 * observation costs a few instructions; counts are kept per bucket (not
 * cumulative) and summed on scrape, _count being their total. */
#define HIST_MIN_LOG2 4
#define HIST_BUCKETS 20 /* 19 bounds, 2^4 .. 2^22 us, and +Inf */

struct hist {
	uint64_t bucket[HIST_BUCKETS]; /* observations in (bound[i-1], bound[i]] */
	uint64_t sum_us;               /* their sum, us */
};

/** The bucket of an observation of us microseconds. */
static inline unsigned hist_index(uint64_t us)
{
	/* ceil(log2(us)) - MIN, without a branch: 0..16 us all land in bucket 0 */
	uint64_t v = (us - (us != 0)) | ((1u << HIST_MIN_LOG2) - 1);
	unsigned k = 64u - (unsigned)__builtin_clzll(v) - HIST_MIN_LOG2;
	return k < HIST_BUCKETS - 1 ? k : HIST_BUCKETS - 1;
}

/** Record us (owning worker only). */
static inline void hist_observe(struct hist *h, uint64_t us)
{
	unsigned i = hist_index(us);
	__atomic_store_n(&h->bucket[i], h->bucket[i] + 1, __ATOMIC_RELAXED);
	__atomic_store_n(&h->sum_us, h->sum_us + us, __ATOMIC_RELAXED);
}

/* ---- per upstream ----
 * A block per upstream URL per worker, in the worker's table. Upstream
 * instances (upstream/upstream.h) point to their block; instances come and
 * go with reloads, blocks stay for the worker's life, so a counter never
 * goes back and the daemon thread may read any block the table has
 * published, whatever the worker does meanwhile. */
enum upstream_error { UERR_TIMEOUT, UERR_RESET, UERR_REFUSED, UERR_TLS, UERR_MISMATCH, UERR_KINDS };

struct upstream_stats {
	/* counters, written on the query path */
	uint64_t queries;              /* queries sent (each try, each resend) */
	uint64_t errors[UERR_KINDS];   /* enum upstream_error */
	uint64_t connects;             /* connections started */
	uint64_t handshakes[2];        /* TLS handshakes completed: [0] full, [1] resumed */
	struct hist latency;           /* taken by the upstream -> answered */
	struct hist queue;             /* taken -> written to its connection or socket */
	struct hist wire;              /* written -> answered */
	struct hist handshake;         /* connect started -> ready (TCP connect, and TLS) */
	/* gauges, published by the worker every WORKER_STATS_MS (worker.c) */
	uint64_t instances;            /* live instances with this URL (0: not configured any more) */
	uint64_t inflight;             /* queries they hold */
	uint64_t circuits;             /* connections they have open or opening */
	uint64_t up;                   /* 1 when none of them is down (passive failures or probes) */
	/* the worker's scratch while it adds those up */
	uint64_t acc_instances, acc_inflight, acc_circuits;
	bool acc_down;
	char name[640];                /* the URL as logged (upstream.name); immutable once published */
};

#define STAT_INC(st, field) __atomic_store_n(&(st)->field, (st)->field + 1, __ATOMIC_RELAXED)
#define STAT_SET(st, field, v) __atomic_store_n(&(st)->field, (v), __ATOMIC_RELAXED)

/* The worker's blocks: slot[0..n) are published (n stored with release
 * after the slot is filled), never moved or freed before the table is. */
#define USTATS_MAX 1024 /* URLs per worker; past it they share one block, upstream="other" */

struct ustats_table {
	struct upstream_stats **slot;  /* cap pointers, allocated once */
	unsigned cap;
	unsigned n;                    /* published: read with ustats_table_count() */
	struct upstream_stats *other;  /* for URLs past cap, or when out of memory */
};

/** cap slots (at least 1). -ENOMEM. */
int ustats_table_init(struct ustats_table *t, unsigned cap) __attribute__((warn_unused_result));
/** Frees every block: only when no other thread reads the table any more. */
void ustats_table_deinit(struct ustats_table *t);
/** The block for name, made and published when new; when the table is
 * full (or memory ran out), the shared "other" block. Never NULL after a
 * successful init. Owning worker only. */
struct upstream_stats *ustats_table_get(struct ustats_table *t, const char *name);
/** Blocks published so far (any thread: slot[0..count) may be read). */
unsigned ustats_table_count(const struct ustats_table *t);

/* ---- the Prometheus text (version 0.0.4) ---- */
struct metrics_source {
	const struct metrics *m;        /* a worker's counters */
	const struct ustats_table *t;   /* and its upstream blocks */
};

struct metrics_extra {
	bool has_cache;
	uint64_t cache_entries;         /* cache_usage() */
	uint64_t cache_bytes;           /* (the JSON only) */
	uint64_t querylog_dropped;      /* lines the query log's writer could not write (obs/qlog.h) */
};

/** Render every metric of n workers (summed; upstreams by URL) into a
 * malloc'd buffer *out of *len bytes (the caller frees). -ENOMEM. Any
 * thread: reads the sources with relaxed loads. */
int metrics_render(const struct metrics_source *src, unsigned n, const struct metrics_extra *x, char **out,
		   size_t *len) __attribute__((warn_unused_result));

/* ---- the same as JSON, for the control socket (control/server.h) ---- */

/** Every counter of n workers, summed as metrics_render sums them, as a
 * JSON object: "counters" (each METRICS_FIELDS name), "queries_by_frontend",
 * "answers_by_rcode", "cache" (with x->has_cache) and "upstreams" (a list,
 * by URL: its counters, gauges and histograms' count and sum). NULL for
 * lack of memory. Any thread, as metrics_render. */
json_t *metrics_json(const struct metrics_source *src, unsigned n, const struct metrics_extra *x);

/** The upstreams alone, as a JSON list of {"url", "up", "inflight",
 * "circuits"} by URL (what "status" shows). NULL for lack of memory. */
json_t *metrics_upstreams_json(const struct metrics_source *src, unsigned n);
