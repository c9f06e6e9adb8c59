/* frontend.h -- what every listener provides. A frontend owns sockets and
 * framing only: it turns bytes into a struct query (frontend_query) and later
 * writes the answer back (frontend_reply); it knows nothing of upstreams. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "config/config.h"
#include "core/query.h"

struct worker;
struct query;
struct tcp_client;

/** Start a UDP / TCP listener of w on the already bound socket fd; lc is
 * one of w->listens (its index names the listener in every snapshot's
 * listens[], where its acl and rate limit are read per query). */
int frontend_udp_start(struct worker *w, const struct listen_conf *lc, int fd) __attribute__((warn_unused_result));
int frontend_tcp_start(struct worker *w, const struct listen_conf *lc, int fd) __attribute__((warn_unused_result));

/** Stop accepting: UDP sockets stop reading (answers still go out through
 * them), TCP listeners close; client connections stay until drained. */
void frontend_udp_stop(struct worker *w);
void frontend_tcp_stop(struct worker *w);
/** Close the UDP sockets (when no query is left). */
void frontend_udp_close(struct worker *w);

/** At shutdown: stop reading client connections; each drains (every
 * answer due written, then FIN) once nothing is in flight. */
void frontend_tcp_close_idle(struct worker *w);
/** Close every client connection now (the drain time ran out). */
void frontend_tcp_abort_all(struct worker *w);

/* How UDP clients are answered (frontend.c): datagrams batched per turn. */
extern const struct client_ops frontend_udp_client;

/** A message arrived from a client: check it and start a query, or answer
 * an error at once. from says who asked and how to answer (copied), and
 * from->listener which listener's acl and rate limit apply (w->cfg's):
 * a client the acl refuses, or over its rate, is dropped over UDP (an over-
 * rate one answered with TC=1 every slip-th time), answered REFUSED over a
 * stream; both counted (dropped_acl, dropped_ratelimit).
 * Returns 1 when it became a query for an upstream (only that counts as a
 * client's activity), 0 when it was answered at once (FORMERR, NOTIMP,
 * REFUSED, SERVFAIL), -1 when it was dropped without an answer (shorter
 * than a header, QR=1, out of memory). */
int frontend_query(struct worker *w, const uint8_t *msg, size_t len, const struct client *from);

/** frontend_query in two steps, for a batch of datagrams (frontend/udp.c):
 * the first does all but the cache lookup and the dispatch, and returns in
 * *next the query that still needs them (else NULL); the second, called
 * for each such query once the batch has taken its first step, does them.
 * The cache's memory for the lookups is fetched meanwhile, for all the
 * batch at once rather than a query after another. With next NULL, both
 * at once: frontend_query. */
int frontend_query_take(struct worker *w, const uint8_t *msg, size_t len, const struct client *from,
			struct query **next);
void frontend_query_go(struct query *q);

/** Over TLS, an answer to a query with EDNS padded to a multiple of 468
 * bytes (RFC 8467 4.1, RFC 7830 4), in a thread-local copy (msg may sit in
 * a circuit's read buffer). Returns msg itself when there is nothing to pad.
 * facts: msg_answer_facts of msg if the caller has them, else NULL. */
const uint8_t *frontend_pad_answer(const uint8_t *msg, size_t *len, const struct msg_facts *facts);

/* What the HTTP layers (frontend/h1.c, h2.c, doh.c) use of a client
 * connection of frontend/tcp.c. */
void frontend_conn_write(struct tcp_client *tc, const uint8_t *data, size_t len); /* through TLS if any */
struct worker *frontend_conn_worker(const struct tcp_client *tc);
const struct client *frontend_conn_client(const struct tcp_client *tc); /* peer and connection */
void *frontend_conn_http(const struct tcp_client *tc);  /* the HTTP layer's state; NULL once closing */
bool frontend_conn_is_tls(const struct tcp_client *tc);
void frontend_conn_no_more(struct tcp_client *tc);      /* no more requests: drain once answered */
void frontend_conn_query_start(struct query *q);        /* client_ops start/release of a DoH query */
void frontend_conn_query_release(struct query *q);

/** The pool of q's route into q->pool (and its cache: false); false when
 * no route matches (answered SERVFAIL, as dnsrouter does). */
bool frontend_route(struct worker *w, struct query *q);

/** Send an answer for q to its client, whatever kind it is. */
void frontend_reply(struct query *q, const uint8_t *msg, size_t len);

/** Worker timer: a client connection's idle time (or a drain's linger
 * time) ran out. */
void frontend_tcp_idle_expired(struct worker *w, uint64_t now_ms);
