/* metrics.h -- per-worker counters. Only the owning worker writes them (a
 * relaxed atomic store of value + 1, a plain move on x86); other threads read
 * them with relaxed loads and add them up (stats lines on SIGUSR1 and at exit). */
#pragma once
#include <stdint.h>

#define METRICS_FIELDS(X)                                                                                              \
	X(queries)           /* client queries received */                                                           \
	X(answered)          /* answers sent to clients (any rcode) */                                               \
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
	X(dns64_reverse)     /* PTR queries under a prefix answered from the IPv4 name */

struct metrics {
#define METRICS_DECL(name) uint64_t name;
	METRICS_FIELDS(METRICS_DECL)
#undef METRICS_DECL
};

#define METRIC_INC(m, field) __atomic_store_n(&(m)->field, (m)->field + 1, __ATOMIC_RELAXED)
#define METRIC_ADD(m, field, n) __atomic_store_n(&(m)->field, (m)->field + (n), __ATOMIC_RELAXED)

/** Format "key=value key=value ..." of m into buf. */
void metrics_format(const struct metrics *m, char *buf, size_t cap);
/** Add src to dst, reading src with relaxed loads (src is another thread's). */
void metrics_sum(struct metrics *dst, const struct metrics *src);
