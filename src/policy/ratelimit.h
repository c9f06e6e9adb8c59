/* ratelimit.h -- a listener's rate limit (ratelimit: in CONFIG.md): a token
 * bucket per client prefix (/32 and /64 by default, as dnsdist's
 * MaxQPSIPRule groups them), refilled at qps tokens a second up to burst,
 * one token per query. The frontend asks before it starts a query
 * (frontend/frontend.c) and decides what an over-rate query gets: over UDP
 * nothing, or every slip-th time an empty TC=1 answer (as DNS RRL); over a
 * stream REFUSED.
 *
 * The table is one per listener, shared by every worker: SO_REUSEPORT
 * spreads one client's source ports over the workers, so per-worker buckets
 * at qps/threads would let a client that keeps one port through a single
 * worker have only a share of its rate. It has a fixed number of entries
 * (RATELIMIT_ENTRIES), in sets of RATELIMIT_WAYS: a client's prefix hashes
 * (with a seed of the table's) to one set, and a prefix new to a full set
 * takes the place of the one in it used least recently -- a flood of
 * spoofed sources costs no memory, and pushes out only clients idle longer
 * than every entry of their set. Each set has its own spinlock, held for the
 * refill and take of one bucket: no lock is global, and two workers meet
 * only on one set. Datagram and stream queries of one prefix have buckets
 * of their own: the TCP retry a slipped TC=1 answer asks for must not find
 * the bucket the UDP flood emptied. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include "config/config.h"

#define RATELIMIT_WAYS 8        /* entries per set */
#define RATELIMIT_ENTRIES 32768 /* per table: 4,096 sets, 1.3 MB */

enum ratelimit_verdict {
	RATELIMIT_PASS,  /* within the rate: one token taken */
	RATELIMIT_DROP,  /* over it */
	RATELIMIT_SLIP,  /* over it, and a datagram's slip-th: answer with TC=1 */
};

/** A table for conf (qps > 0, burst > 0) of about entries prefixes
 * (rounded up to whole sets, a power of two of them); NULL on ENOMEM. */
struct ratelimit *ratelimit_new(const struct ratelimit_conf *conf, unsigned entries);
void ratelimit_free(struct ratelimit *rl);

/** Take a token for a query from client (AF_INET or AF_INET6; any other
 * family passes) at now_ms (a monotonic clock in ms; times a little out of
 * order across threads are fine). is_stream: over TCP, DoT or DoH (its own
 * bucket; never SLIP). Any thread. */
enum ratelimit_verdict ratelimit_take(struct ratelimit *rl, const struct sockaddr *client, bool is_stream,
				      uint64_t now_ms);

/** The parameters rl was made with. */
const struct ratelimit_conf *ratelimit_conf(const struct ratelimit *rl);

/** Prefixes in the table now (for tests: it never exceeds its entries). */
unsigned ratelimit_count(struct ratelimit *rl);
