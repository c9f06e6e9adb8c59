/* http.h -- the HTTP layers a client connection (frontend/tcp.c) can carry
 * instead of DNS's 2-byte framing: HTTP/2 (h2.c) and HTTP/1.x (h1.c), both
 * serving DoH (doh.c). tcp.c owns the socket, TLS, idle time and draining;
 * a layer turns plaintext into requests and writes responses back through
 * frontend_conn_write(). */
#pragma once
#include <stddef.h>
#include <stdint.h>

struct tcp_client;

struct http_proto {
	const char *name;
	/** Consume plaintext read from the client; returns the bytes taken
	 * (everything the layer could use), or -1 when the connection must
	 * close (a protocol error, or the peer is done). */
	int (*input)(void *h, const uint8_t *data, size_t len);
	/** No more requests will be taken (draining): tell the client. */
	void (*goaway)(void *h);
	void (*free)(void *h);
};

extern const struct http_proto http2_proto, http1_proto;

/** A layer for tc; NULL on ENOMEM. max: concurrent streams (HTTP/2) or
 * pipelined requests (HTTP/1.1) in flight. */
void *http2_new(struct tcp_client *tc, uint32_t max);
void *http1_new(struct tcp_client *tc, uint32_t max);
