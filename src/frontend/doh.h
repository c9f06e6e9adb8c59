/* doh.h -- DNS-over-HTTPS requests and responses (RFC 8484), whatever HTTP
 * carries them: frontend/h2.c (HTTP/2, nghttp2) and frontend/h1.c (HTTP/1.x,
 * http-parser) parse the framing and call doh_request_start() for each
 * complete request, and doh_response_for_answer() when its answer comes.
 * Here: GET ?dns=BASE64URL and POST application/dns-message on the DoH path,
 * the JSON API at /resolve (application/dns-json, as Google's and
 * Cloudflare's resolvers answer it), cache-control from the answer's TTLs,
 * padding over TLS, and X-Forwarded-For from trusted proxies. No I/O. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "core/query.h"

#define DOH_PATH_MAX 8192     /* :path with its query string (a GET query of ~6 KB in base64url) */
#define DOH_BODY_MAX 65535    /* a POST body is one DNS message */
#define DOH_JSON_MAX 131072   /* largest JSON answer (a 64 KB answer in text form) */

struct tcp_client;

/* One HTTP request, as the framing layer collected it. */
struct doh_request {
	enum { DOH_GET, DOH_POST, DOH_HEAD, DOH_OTHER } method;
	const char *path;            /* :path with its query string, path_len bytes, not NUL-terminated
	                                (the framing layer's: nghttp2's header buffer, h1.c's copy); NULL when absent */
	size_t path_len;
	bool path_too_long;
	bool ct_dns_message;         /* content-type: application/dns-message */
	bool has_ct;
	const uint8_t *body;         /* POST body, body_len bytes (borrowed) */
	size_t body_len;
	bool body_too_long;
	char forwarded_for[64];      /* the client address a trusted proxy gave (X-Forwarded-For / Forwarded), or "" */
};

static inline void doh_request_init(struct doh_request *r)
{
	memset(r, 0, sizeof(*r));
}

/* What a request wants back. */
enum doh_kind { DOH_KIND_WIRE, DOH_KIND_JSON };

/* A response to write: status, content type and body (borrowed). */
struct doh_response {
	int status;
	const char *content_type;   /* NULL: text/plain for errors */
	const uint8_t *body;
	size_t len;
	bool has_max_age;
	uint32_t max_age;           /* cache-control: max-age (RFC 8484 5.1) */
};

/** Turn a complete request into a query (started with client ops `ops` and
 * stream id `stream` on tc), or fill *err with the 4xx/5xx to send at once.
 * Returns true when a query started; *kind says how to answer it. */
bool doh_request_start(struct tcp_client *tc, const struct doh_request *r, const struct client_ops *ops,
		       uint32_t stream, enum doh_kind *kind, struct doh_response *err);

/** The response for the answer msg (len bytes) to q: the DNS message itself
 * (padded over TLS, max-age from its TTLs) or its JSON form, built in buf
 * (cap bytes). */
void doh_response_for_answer(const struct query *q, enum doh_kind kind, const uint8_t *msg, size_t len,
			     uint8_t *buf, size_t cap, struct doh_response *out);

/** Header name/value: does the value of a Content-Type header say
 * application/dns-message (parameters allowed)? */
bool doh_is_dns_message(const char *v, size_t len);

/** Note a forwarding header (X-Forwarded-For or Forwarded) in r. */
void doh_forwarded_header(struct doh_request *r, const char *name, size_t nlen, const char *v, size_t vlen);

/** A short text for a status (the body of an error response). */
const char *doh_status_text(int status);
