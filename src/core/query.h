/* query.h -- struct query: one client message on its way through dnsmux.
 *
 * A query is created by a frontend, dispatched to a pool member, and answered
 * exactly once: query_answer() with the upstream's answer, or query_fail()
 * with an rcode of our own; both release it. Between the two it belongs to
 * exactly one place: a circuit's waiting list or in-flight table, or a UDP
 * upstream's in-flight table (state says which). Memory comes from the
 * worker's free list (core/worker.c). */
#pragma once
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "circuit/timeout.h"
#include "core/udptx.h"
#include "dns/msg.h"
#include "policy/cache.h"

struct worker;
struct upstream;
struct circuit;
struct inflight;
struct upstream_stats;

#define QUERY_INLINE 512 /* most queries fit; larger ones get a heap buffer */
/* A query in flight on a circuit that died is resent on another; after
 * QUERY_MAX_CIRCUIT_DEATHS such deaths it is answered SERVFAIL. And one that
 * was the oldest unanswered query of QUERY_MAX_SUSPICION dying circuits --
 * where a server that closes on a message it cannot parse stopped reading
 * (circuit.c, hand_back_written) -- is a suspect: SERVFAIL, never resent, so
 * even an input our checks did not foresee costs the other clients one
 * reconnect at most. */
#define QUERY_MAX_CIRCUIT_DEATHS 3
#define QUERY_MAX_SUSPICION 2
/* q->pool of a query whose pool a reload removed: it waits on its upstream,
 * and is not retried elsewhere */
#define QUERY_NO_POOL UINT16_MAX

enum query_state {
	Q_IDLE = 0,   /* not held by any upstream */
	Q_WAITING,    /* on a circuit's waiting list (connecting, or backing off) */
	Q_CIRCUIT,    /* written to a circuit, in its in-flight table */
	Q_UDP,        /* sent on a UDP socket, in its in-flight table (upstream/udp.c) */
	Q_MDNS,       /* multicast, waiting for a response on q->link (upstream/mdns.c) */
};

union sockaddr_any {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

struct msg_info;
struct query;

/* How to answer a query's client, whatever it is: a UDP datagram, a frame on
 * a TCP or DoT connection, an HTTP/2 stream, an HTTP/1.x response, or an
 * internal caller (a health probe, DNS64's A lookup, a cache prefetch).
 * Core code calls these and never asks which kind it is. */
struct client_ops {
	const char *name; /* "udp", "tcp", "dot", "doh": for counters and logs */
	uint8_t kind;     /* enum metrics_frontend (obs/metrics.h); 0 for internal callers */
	/** The largest answer this client takes for a query with facts mi. */
	uint16_t (*max_answer)(const struct query *q, const struct msg_info *mi);
	/** A query from it starts (take a reference on the connection); may be NULL. */
	void (*start)(struct query *q);
	/** Send the answer (msg is borrowed: copy what must outlive the call). */
	void (*reply)(struct query *q, const uint8_t *msg, size_t len);
	/** The query is done with its client, answered or not (drop the
	 * reference); may be NULL. Called once, when the query is released. */
	void (*release)(struct query *q);
};

/* Who asked, as the frontend fills it in. */
struct client {
	const struct client_ops *ops;
	union sockaddr_any peer;       /* its address (UDP, TCP; a trusted proxy's client for DoH) */
	uint8_t listener;              /* the index of the listener it came to (cfg->listens[]; frontends only) */
	bool via_proxy;                /* DoH: peer is the client a trusted proxy named */
	union {
		struct {
			int fd;            /* listener socket that received it */
			struct udp_src src; /* where it was sent to (wildcard listeners), else family 0 */
		} udp;
		struct {
			void *conn;        /* the connection it came on (the frontend's own type) */
			uint32_t stream;   /* HTTP/2 stream id, or the frontend's request handle */
		} stream;
	} u;
};

struct query {
	struct tq_entry deadline;  /* in worker->deadlines: answered SERVFAIL when it expires */
	struct tq_entry link;      /* circuit waiting list, or worker->udp_retry */
	struct tq_entry try_timer; /* in its pool's tries while a member holds it (pools.*.timeout) */
	struct worker *w;          /* owner */
	struct upstream *up;       /* upstream holding it (state != Q_IDLE) */
	struct circuit *circ;      /* circuit holding it (Q_WAITING, Q_CIRCUIT) */
	struct udp_sock *usock;    /* UDP socket it was sent on (Q_UDP) */
	uint16_t up_id;            /* upstream-side message ID (Q_CIRCUIT, Q_UDP) */
	uint16_t client_id;        /* the client's message ID, restored on the answer */
	uint16_t max_answer;       /* largest answer the client takes, bytes */
	uint16_t len;              /* message length in wire */
	uint8_t state;             /* enum query_state */
	uint8_t circuit_deaths;    /* circuits that died with it in flight (QUERY_MAX_CIRCUIT_DEATHS) */
	uint8_t suspicion;         /* of which it was the oldest unanswered (QUERY_MAX_SUSPICION) */
	uint32_t write_seq;        /* its number in its circuit's write order */
	int32_t h2_stream;         /* its HTTP/2 stream on a DoH circuit */
	uint16_t pool;             /* the pool its route chose (w->pools) */
	uint8_t tries;             /* members tried after the first (pools.*.retries) */
	struct upstream_stats *answered_by; /* the upstream whose answer it got (query log), else NULL */
	uint8_t udp_tries;         /* UDP transmissions so far */
	uint8_t added;             /* what its circuit added to it (enum rewrite_added), taken from the answer */
	bool was_sent;             /* written to an upstream at least once */
	bool is_activity;          /* a real query of its client's (frontend_query): restarts idle clocks */
	bool cache_store;          /* a cache miss: its answer goes into the cache */
	bool no_cache;             /* its route says cache: false */
	bool cache_keyed;          /* its cache_key is made: the lookup is next (frontend_query_take) */
	uint8_t cache_variant;     /* what else changes its answer (the DNS64 entry), part of the cache key */
	struct dns64_wait *dns64;  /* waiting for its DNS64 A (or PTR) query (core/query_dns64.c), else NULL */
	uint32_t heap_len;         /* bytes of wire on the heap (0: inline) */
	struct msg_info mi;        /* parsed facts of the client message */
	struct client client;      /* who asked and how to answer */
	uint8_t *wire;             /* the client message, ID field holds up_id once sent */
	struct query *next_free;   /* worker free list */
	uint8_t inline_buf[QUERY_INLINE];
	/* not zeroed by worker_query_new either: each is set before it is read */
	uint64_t taken_us;         /* clock_us() when an upstream last took it (upstream_send; latency, EWMA) */
	uint64_t written_us;       /* and when it was written to its connection or socket */
	uint64_t start_us;         /* clock_us() when it came (with a query log only) */
	struct cache_key cache_key; /* its key, while cache_store (not zeroed by worker_query_new) */
};

/** The query in t that an upstream's message answers: its ID is in flight,
 * it carries QR=1 and the query's question, and it parses whole
 * (msg_scan_answer; msg is restored). Else NULL, counted as late (an ID
 * given up on), mismatched or malformed_answers; the query, if any, keeps
 * waiting. */
struct query *query_for_answer(struct worker *w, struct inflight *t, uint8_t *msg, size_t len);
/** The same, counting a mismatched or malformed answer against st too
 * (its upstream's "mismatch" errors) when st is not NULL. */
struct query *query_for_answer_from(struct worker *w, struct upstream_stats *st, struct inflight *t, uint8_t *msg,
				    size_t len);

/** Answer q from the cache when it holds a fresh answer (true: q is
 * answered and released); else mark q so that its answer is stored. A hit
 * in the last tenth of its TTL also sends a copy of q to refresh the entry
 * (cache.prefetch). */
bool query_from_cache(struct query *q);

/** query_from_cache once q->cache_key is made (frontend_query_take makes
 * it early, to fetch the memory of the lookup for a batch at once). */
bool query_cache_lookup(struct query *q);

/** For a batch of answers (upstream/udp.c): start fetching the memory that
 * storing the answer of q will write, when it will be stored. */
void query_cache_prefetch(const struct query *q);

/** Answer with an upstream's message (modified in place: ID, question case,
 * truncation). Releases q. */
void query_answer(struct query *q, uint8_t *ans, size_t len);

/** query_answer without the DNS64 step: the answer is final (synthesised,
 * or one the step let through). Releases q. */
void query_answer_as_is(struct query *q, uint8_t *ans, size_t len);

/* DNS64 on the path (core/query_dns64.c, policy/dns64.h). */
/** A client's query, before its route: an AAAA query from a client an
 * entry matches takes that entry (q->cache_variant); a PTR query under a
 * prefix is answered here (true: q is answered or waits for its IPv4
 * name's PTR). */
bool query_dns64_start(struct query *q);
/** The answer for q, which has an entry: true when the DNS64 step took it
 * (q answered with the rest filtered out, or waiting for its A query). */
bool query_dns64_answer(struct query *q, uint8_t *ans, size_t len);
/** q fails (its deadline) while it waits for its A or PTR query: answered
 * with what it had (the AAAA answer, as BIND does), or SERVFAIL for PTR. */
void query_dns64_fail(struct query *q);

/** Answer with an rcode of our own (SERVFAIL, FORMERR, ...). Releases q. */
void query_fail(struct query *q, int rcode);

/** Send q to a pool member, avoiding "avoid" (the one that just failed it)
 * when another is usable. On failure the query is answered SERVFAIL. */
void query_dispatch(struct query *q, const struct upstream *avoid);

/** Detach q from whatever upstream holds it (no answer is sent). */
void query_detach(struct query *q);

/** Send q to a usable pool member other than u, or answer it SERVFAIL when
 * there is none (u's certificate was rejected: no point waiting for it). */
void query_dispatch_elsewhere(struct query *q, const struct upstream *u);

/** An upstream's answer for q (state already Q_IDLE): a SERVFAIL from u is
 * tried on another member while the pool's retries allow, else the answer
 * goes to the client (query_answer). */
void query_upstream_answer(struct query *q, struct upstream *u, uint8_t *ans, size_t len);

/** Worker timer: q's try on its member ran out (pools.*.timeout): another
 * member while the pool's retries allow; else it waits on (its deadline). */
void query_try_expired(struct query *q);

/** Put q back into circulation after its circuit failed: resend at once, or
 * SERVFAIL when it has been resent too often or its deadline passed. */
void query_requeue(struct query *q);
