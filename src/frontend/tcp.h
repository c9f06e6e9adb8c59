/* tcp.h -- client TCP connections (RFC 7766): framing, pipelining, answers
 * written as they come, idle timeout, caps on connections and on queries in
 * flight per connection. A struct tcp_client lives while its handle is open
 * or any query still refers to it. */
#pragma once
#include <stddef.h>
#include <stdint.h>

struct tcp_client;

/** A query from tc starts (takes a reference). */
void frontend_tcp_query_start(struct tcp_client *tc);
/** Write a framed answer to tc (dropped if it has closed). */
void frontend_tcp_send(struct tcp_client *tc, const uint8_t *msg, size_t len);
