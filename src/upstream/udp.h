/* udp.h -- UDP transport of struct upstream. Each transmission leaves from a
 * fresh socket, so a fresh kernel-chosen source port, with a random ID: RFC
 * 5452 9.2 asks for both, so that a forged answer must guess about 32 bits
 * instead of 16 (as Unbound does). The socket is connect()ed, so the kernel
 * drops datagrams from anyone but the server. No answer within --udp-retry:
 * close it and send again (to another pool member when there is one); an
 * answer with TC=1 is retried over TCP (RFC 7766 5). */
#pragma once

struct upstream;
struct query;
struct udp_sock;

int upstream_udp_send(struct upstream *u, struct query *q) __attribute__((warn_unused_result));
void upstream_udp_cancel(struct upstream *u, struct query *q);
