/* udp.h -- UDP transport of struct upstream.
 *
 * Queries leave from a connected socket (the kernel drops datagrams from
 * anyone but the server) with a random ID. Sockets rotate: each carries at
 * most UDP_SOCK_USES queries, then a new one, on a fresh kernel-chosen
 * source port, takes over while the old one drains. So a forger must guess
 * an unknown port as well as the ID (RFC 5452 9.2), while answers that
 * arrive together are still read in one recvmmsg batch from one socket (a
 * socket per query costs a third of the throughput on loopback, bench/).
 *
 * No answer within --udp-retry: sent again from the current socket, to
 * another pool member when there is one; an answer with TC=1 is retried over
 * TCP (RFC 7766 5). */
#pragma once

#define UDP_SOCK_USES 256 /* queries per source port */
#define UDP_SOCK_CAP 512  /* queries in flight per socket */

#include <stdint.h>

struct upstream;
struct query;
struct udp_sock;
struct worker;

int upstream_udp_send(struct upstream *u, struct query *q) __attribute__((warn_unused_result));
void upstream_udp_cancel(struct upstream *u, struct query *q);
/** Retire the current socket (at upstream close). */
void upstream_udp_close(struct upstream *u);
/** Free the closed socket a worker keeps for reuse (at the worker's end). */
void upstream_udp_free_spare(struct worker *w);
/** Queries in flight on the current socket. */
uint32_t upstream_udp_outstanding(const struct upstream *u);
