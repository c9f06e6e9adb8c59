/* frontend.c -- the part every frontend shares: checking a client message
 * (dns/msg.c) and turning it into a query, or answering an error at once;
 * and writing an answer back to the right kind of client. */
#include <string.h>
#include <libknot/libknot.h>
#include "core/clock.h"
#include "core/query.h"
#include "core/scratch.h"
#include "core/worker.h"
#include "frontend/frontend.h"
#include "obs/qlog.h"
#include "policy/cache.h"
#include "policy/ratelimit.h"
#include "route/route.h"

/* The largest UDP answer that can leave at all, whatever the client
 * advertises: 65,535 less the IP and UDP headers (IPv6's header is not
 * counted in its payload length). */
static uint16_t udp_max_answer(const struct query *q, const struct msg_info *mi)
{
	uint16_t client = msg_client_udp_max(mi);
	uint16_t path = q->client.peer.sa.sa_family == AF_INET6 ? MSG_UDP_MAX_V6 : MSG_UDP_MAX_V4;
	return client < path ? client : path;
}

/* sent at the end of this loop turn */
static void udp_reply(struct query *q, const uint8_t *msg, size_t len)
{
	const struct client *c = &q->client;
	udptx_add(q->w->tx, c->u.udp.fd, &c->peer.sa, c->u.udp.src.family ? &c->u.udp.src : NULL, msg, len);
}

const struct client_ops frontend_udp_client = {
	.name = "udp",
	.kind = MF_UDP,
	.max_answer = udp_max_answer,
	.reply = udp_reply,
};

bool frontend_route(struct worker *w, struct query *q)
{
	const struct route_table *t = w->cfg->route_table;
	if (!t) {
		q->pool = (uint16_t)w->default_pool;
		return true;
	}
	const struct route_conf *rc = NULL;
	int p = route_lookup(t, w->route_scratch, q->wire + MSG_HDR, q->mi.qtype, &q->client.peer.sa, &rc);
	if (p < 0) {
		METRIC_INC(&w->m, no_route);
		query_fail(q, KNOT_RCODE_SERVFAIL);
		return false;
	}
	q->pool = (uint16_t)p;
	q->no_cache = rc->no_cache;
	return true;
}

/* RRL's slip (as BIND and Knot DNS send it): an empty answer, header and
 * question, TC=1, so that a real client behind the address asks again over
 * TCP and a spoofed one's victim gets no more bytes than it sent. */
static void udp_slip(struct worker *w, const uint8_t *msg, size_t len, const struct client *from)
{
	uint8_t buf[MSG_HDR + KNOT_DNAME_MAXLEN + 4 + 11];
	struct msg_info mi;
	enum msg_verdict v = msg_parse_query(msg, len, &mi);
	if (v == MSG_DROP_SHORT || v == MSG_DROP_QR) /* (no answer at all, as below the rate) */
		return;
	size_t n = msg_error_reply(msg, len, &mi, KNOT_RCODE_NOERROR, buf, sizeof(buf));
	if (!n)
		return;
	knot_wire_set_tc(buf);
	knot_wire_set_ra(buf);
	METRIC_INC(&w->m, ratelimit_slipped);
	METRIC_INC(&w->m, by_rcode[KNOT_RCODE_NOERROR]);
	udptx_add(w->tx, from->u.udp.fd, &from->peer.sa, from->u.udp.src.family ? &from->u.udp.src : NULL, buf, n);
}

/* The policy of the listener for a query its acl did not let through, or
 * when it has a rate limit (kept off the path of the others): -1 to drop
 * it (UDP), 1 to answer it REFUSED (streams), 0 to take it. A request a
 * trusted proxy forwarded is judged by the client it names; but the
 * default acl of a listener (none given) is about who connects, and the
 * proxy, trusted, is who connects: it admits its own clients. */
static __attribute__((noinline)) int admit(struct worker *w, const struct listen_conf *lc, bool acl_ok,
					   const uint8_t *msg, size_t len, const struct client *from)
{
	bool is_udp = from->ops == &frontend_udp_client;
	if (!acl_ok && !(from->via_proxy && !lc->has_acl)) {
		METRIC_INC(&w->m, dropped_acl);
		return is_udp ? -1 : 1; /* UDP: not even a REFUSED, which an open resolver must not give */
	}
	if (!lc->rl_table)
		return 0;
	enum ratelimit_verdict v = ratelimit_take(lc->rl_table, &from->peer.sa, !is_udp, worker_now(w));
	if (v == RATELIMIT_PASS)
		return 0;
	METRIC_INC(&w->m, dropped_ratelimit);
	if (!is_udp)
		return 1; /* a stream's address is no spoofed one: tell it, at the cost of a REFUSED */
	if (v == RATELIMIT_SLIP)
		udp_slip(w, msg, len, from);
	return -1;
}

static inline void go(struct worker *w, struct query *q)
{
	if (q->cache_keyed && query_cache_lookup(q))
		return;
	tq_add(&w->deadlines, &q->deadline, worker_now(w));
	worker_arm(w, q->deadline.deadline_ms);
	query_dispatch(q, NULL);
}

void frontend_query_go(struct query *q)
{
	go(q->w, q);
}

/* frontend_query and frontend_query_take (next NULL: the former, each
 * compiled with what it needs of it) */
static inline __attribute__((always_inline)) int take(struct worker *w, const uint8_t *msg, size_t len,
						      const struct client *from, struct query **next)
{
	struct msg_info mi;
	if (next)
		*next = NULL;
	METRIC_INC(&w->m, by_frontend[from->ops->kind]); /* (queries: their sum) */
	w->turn_inputs++;
	const struct listen_conf *lc = w->cfg->listens + (size_t)from->listener;
	bool acl_ok = config_addr_match(&lc->acl, &from->peer.sa);
	int refuse = 0;
	if (__builtin_expect(!acl_ok || lc->rl_table, 0) && (refuse = admit(w, lc, acl_ok, msg, len, from)) < 0)
		return -1;
	enum msg_verdict v = msg_parse_query(msg, len, &mi);
	if (v == MSG_DROP_SHORT) {
		METRIC_INC(&w->m, malformed);
		METRIC_INC(&w->m, dropped_short);
		return -1;
	}
	if (v == MSG_DROP_QR) {
		METRIC_INC(&w->m, dropped_qr);
		return -1;
	}
	/* keep the message up to its last record: trailing bytes are not forwarded */
	size_t keep = v == MSG_OK ? mi.end : (len < MSG_HDR + 260 ? len : MSG_HDR + 260);
	bool no_room = keep > QUERY_INLINE && w->query_heap_len + keep > WORKER_QUERY_HEAP_MAX;
	if (no_room) {
		/* memory per query in flight is bounded in bytes as well as in count:
		 * keep only what the SERVFAIL needs */
		METRIC_INC(&w->m, overflow);
		keep = mi.question_end ? mi.question_end : MSG_HDR;
	}
	struct query *q = worker_query_new(w, keep);
	if (!q) {
		METRIC_INC(&w->m, dropped_nomem);
		return -1; /* out of memory: dropped (the client will retry) */
	}
	memcpy(q->wire, msg, keep);
	q->len = (uint16_t)keep;
	if (w->qlog)
		q->start_us = clock_us();
	q->mi = mi;
	q->client_id = knot_wire_get_id(msg);
	q->client = *from;
	q->max_answer = from->ops->max_answer(q, &mi);
	if (from->ops->start)
		from->ops->start(q);
	if (refuse) {
		query_fail(q, KNOT_RCODE_REFUSED);
		return 0;
	}
	if (no_room) {
		query_fail(q, KNOT_RCODE_SERVFAIL);
		return 0;
	}
	switch (v) {
	case MSG_OK: break;
	case MSG_FORMERR:
		METRIC_INC(&w->m, malformed);
		query_fail(q, KNOT_RCODE_FORMERR);
		return 0;
	case MSG_NOTIMP: query_fail(q, KNOT_RCODE_NOTIMPL); return 0;
	case MSG_REFUSED: query_fail(q, KNOT_RCODE_REFUSED); return 0;
	default: query_fail(q, KNOT_RCODE_SERVFAIL); return 0; /* (not reached: the drops returned above) */
	}
	if (w->inflight > w->cfg->max_inflight) {
		METRIC_INC(&w->m, overflow);
		query_fail(q, KNOT_RCODE_SERVFAIL);
		return 0;
	}
	q->len = (uint16_t)msg_normalize_query(q->wire, q->len, &q->mi);
	if (w->cfg->n_dns64 && query_dns64_start(q))
		return 1;
	if (!frontend_route(w, q))
		return 0;
	q->is_activity = true;
	struct cache *c = w->cfg->cache_obj;
	q->cache_keyed = c && !q->no_cache && cache_key_of(&q->cache_key, q->wire, &q->mi, q->cache_variant);
	if (!next) {
		go(w, q);
		return 1;
	}
	if (q->cache_keyed)
		cache_prefetch(c, &q->cache_key, false);
	*next = q;
	return 1;
}

int frontend_query(struct worker *w, const uint8_t *msg, size_t len, const struct client *from)
{
	return take(w, msg, len, from, NULL);
}

int frontend_query_take(struct worker *w, const uint8_t *msg, size_t len, const struct client *from,
			struct query **next)
{
	return take(w, msg, len, from, next);
}

#define PAD_ANSWER_BLOCK 468 /* RFC 8467 4.1: block-length padding of responses */

/* RFC 8467 4.1 and RFC 7830 4: over TLS, answers to queries with EDNS are
 * padded to a multiple of 468 bytes (in a copy: msg may sit in a circuit's
 * read buffer). Returns msg itself when there is nothing to pad. */
const uint8_t *frontend_pad_answer(const uint8_t *msg, size_t *len, const struct msg_facts *facts)
{
	static __thread void *padded_slot;
	struct msg_facts own;
	if (!facts) {
		msg_answer_facts(msg, *len, &own);
		facts = &own;
	}
	if (!facts->opt_off || facts->opt_off + facts->opt_len != *len ||
	    msg_find_option(msg, facts->opt_off, facts->opt_len, MSG_OPT_PADDING))
		return msg;
	uint16_t pad = msg_padding_for(*len, PAD_ANSWER_BLOCK);
	if (*len + 4 + pad > MSG_MAX)
		return msg;
	uint8_t *padded = scratch(&padded_slot, MSG_MAX);
	memcpy(padded, msg, *len);
	*len = msg_append_option(padded, *len, facts->opt_off, MSG_OPT_PADDING, pad);
	return padded;
}

/* A line for the query log: the worker's ring takes it, or it is counted
 * (the writer, on the daemon thread, formats it; obs/qlog.h). */
static __attribute__((noinline)) void log_query(struct query *q, const uint8_t *msg)
{
	struct worker *w = q->w;
	struct qlog_entry *e = qlog_ring_claim(w->qlog);
	if (!e) {
		METRIC_INC(&w->m, querylog_dropped);
		return;
	}
	uint64_t now = clock_us(), lat = clock_since(q->start_us, now);
	const union sockaddr_any *p = &q->client.peer;
	e->done_us = now;
	e->latency_us = lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat;
	e->family = p->sa.sa_family == AF_INET6 ? AF_INET6 : AF_INET;
	if (e->family == AF_INET6) {
		memcpy(e->addr, &p->in6.sin6_addr, 16);
		e->port = ntohs(p->in6.sin6_port);
	} else {
		memcpy(e->addr, &p->in.sin_addr, 4);
		e->port = ntohs(p->in.sin_port);
	}
	e->frontend = q->client.ops->kind;
	e->rcode = (uint8_t)knot_wire_get_rcode(msg);
	e->qtype = q->mi.qtype;
	e->qname_len = 0;
	if (q->mi.has_question && q->mi.qname_len <= sizeof(e->qname) && MSG_HDR + q->mi.qname_len <= q->len) {
		e->qname_len = (uint8_t)q->mi.qname_len;
		memcpy(e->qname, q->wire + MSG_HDR, q->mi.qname_len);
	}
	e->upstream = q->answered_by;
	qlog_ring_commit(w->qlog);
}

void frontend_reply(struct query *q, const uint8_t *msg, size_t len)
{
	const struct client_ops *ops = q->client.ops;
	/* before the send: a client that saw it may read the counters; a
	 * probe's or a prefetch's answer is counted apart (by_rcode[16]) */
	METRIC_INC(&q->w->m, by_rcode[ops->kind ? knot_wire_get_rcode(msg) : 16]);
	if (q->w->qlog && ops->kind)
		log_query(q, msg);
	ops->reply(q, msg, len);
}
