/* udp.h -- UDP transport of struct upstream: one connected socket per
 * upstream per worker, random IDs in its own in-flight table, retransmission
 * every --udp-retry until the query's deadline, and TC=1 answers handed to
 * the upstream's TCP twin (RFC 7766 5: a truncated answer is retried over TCP). */
#pragma once

struct upstream;
struct query;

int upstream_udp_send(struct upstream *u, struct query *q) __attribute__((warn_unused_result));
void upstream_udp_cancel(struct upstream *u, struct query *q);
void upstream_udp_close(struct upstream *u);
