/* h2.h -- HTTP/2 as a circuit's framing (DoH upstreams, RFC 8484): each
 * query a POST (or GET) stream, each answer the body of its stream's
 * response. Where a tcp:// or tls:// circuit frames messages with DNS's
 * 2-byte length (core/wire.h), an https:// circuit hands them to this layer;
 * everything else -- the in-flight table, requeue on reset, EOF or GOAWAY,
 * stall and idle handling, backoff -- is circuit.c's, once, for both (see
 * circuit/README.md, "Layers").
 *
 * On nghttp2's memory interface: no I/O here. The circuit feeds the
 * plaintext it reads (h2f_input) and writes what h2f_output appends; events
 * come back through struct h2f_events. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/wire.h"

struct h2_framing;

/* What the layer tells the circuit (arg is the circuit). */
struct h2f_events {
	void *arg;
	/** The answer to the query sent as up_id (msg is the response body,
	 * writable, valid during the call). */
	void (*answer)(void *arg, uint16_t up_id, uint8_t *msg, size_t len);
	/** The stream of up_id ended without an answer: refused = the server
	 * did not process it (REFUSED_STREAM, or above a GOAWAY's last stream),
	 * so it may be sent again; else an HTTP error or a reset. */
	void (*failed)(void *arg, uint16_t up_id, bool refused, const char *why);
	/** The server sent GOAWAY: no new streams on this connection. */
	void (*goaway)(void *arg);
};

struct h2f_opts {
	const char *authority; /* :authority (the AUTH-NAME, or the IP literal and port) */
	const char *path;      /* e.g. "/dns-query" */
	bool use_get;          /* GET ?dns=BASE64URL instead of POST */
};

/** A client session (our SETTINGS queued); NULL on ENOMEM. */
struct h2_framing *h2f_new(const struct h2f_opts *o, const struct h2f_events *ev);
void h2f_free(struct h2_framing *f);

/** Send msg (len bytes, copied) as a request for up_id. Returns its stream
 * id (> 0), or -ENOMEM. */
int32_t h2f_submit(struct h2_framing *f, const uint8_t *msg, size_t len, uint16_t up_id)
	__attribute__((warn_unused_result));

/** Plaintext read from the server. 0, or < 0: the connection is broken
 * (a protocol error; the circuit fails). Events fire from inside. */
int h2f_input(struct h2_framing *f, const uint8_t *data, size_t len) __attribute__((warn_unused_result));

/** Append what is to be sent (frames) to out. 0 or -ENOMEM. */
int h2f_output(struct h2_framing *f, struct frame_buf *out) __attribute__((warn_unused_result));

/** The server's SETTINGS_MAX_CONCURRENT_STREAMS (unbounded until it says):
 * a circuit holds no more queries than that in flight. */
uint32_t h2f_max_streams(const struct h2_framing *f);

/** Forget a stream: its query was given up (deadline); RST_STREAM CANCEL,
 * and nothing more is reported for it. */
void h2f_cancel(struct h2_framing *f, int32_t stream_id);
