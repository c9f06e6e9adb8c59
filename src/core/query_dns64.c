/* query_dns64.c -- DNS64 on the query path (policy/dns64.h decides and
 * builds; this file only moves queries).
 *
 * An AAAA query whose answer calls for synthesis waits (its deadline and
 * its client kept, q->dns64 set) while an ordinary query for A of the same
 * name goes out with an internal client: routed, looked up in and stored
 * into the cache, under its own deadline, like any other. Its answer (or
 * failure) comes back through that client, and the waiting query is
 * answered once: synthesised, or with the AAAA answer it had when there is
 * nothing to synthesise from or the A query failed (as BIND does). Should
 * the waiting query's own deadline come first, it is answered the same way
 * and the A query goes on alone, its answer still cached. A PTR query under
 * a prefix waits the same way for the PTR query of its IPv4 name. */
#include <stdlib.h>
#include <string.h>
#include <libknot/libknot.h>
#include "core/query.h"
#include "core/scratch.h"
#include "core/worker.h"
#include "frontend/frontend.h"
#include "policy/dns64.h"

struct dns64_wait {
	struct query *orig;     /* the client's query, waiting */
	struct query *sub;      /* its A or PTR query, NULL once that is done or cut off */
	bool is_ptr;
	uint32_t ttl_cap;       /* AAAA: the synthesised records' TTL at most this */
	uint8_t target[DNS64_V4_NAME_MAX]; /* PTR: the in-addr.arpa name */
	uint16_t len;
	uint8_t ans[];          /* AAAA: the answer given when nothing is synthesised */
};

#define SYNTH_MAX MSG_MAX
static __thread void *synth_slot; /* a synthesised or filtered answer (core/scratch.h) */

static uint8_t *synth_buf(void)
{
	return scratch(&synth_slot, SYNTH_MAX);
}

static const struct dns64_conf *entry_of(const struct query *q)
{
	const struct config *cfg = q->w->cfg; /* (after a reload: the entry at the same place) */
	unsigned i = q->cache_variant - 1u;
	return q->cache_variant && i < cfg->n_dns64 ? &cfg->dns64[i] : NULL;
}

/* orig is answered (ans) and the wait ends */
static void done(struct dns64_wait *d, uint8_t *ans, size_t len)
{
	struct query *orig = d->orig;
	orig->dns64 = NULL;
	if (ans)
		query_answer_as_is(orig, ans, len);
	else
		query_fail(orig, KNOT_RCODE_SERVFAIL);
	free(d);
}

/* nothing came of the lookup: what the client's query had */
static void fall_back(struct dns64_wait *d)
{
	METRIC_INC(&d->orig->w->m, dns64_unsynthesised);
	done(d, d->is_ptr ? NULL : d->ans, d->len);
}

/* The A or PTR query's answer, or query_fail's reply for it. */
static void sub_reply(struct query *s, const uint8_t *msg, size_t len)
{
	struct dns64_wait *d = s->client.u.stream.conn;
	if (!d)
		return; /* the client's query went without it: its answer went to the cache */
	s->client.u.stream.conn = NULL;
	d->sub = NULL;
	struct worker *w = d->orig->w;
	uint8_t *out = synth_buf();
	size_t n = 0;
	int r = -1;
	if (d->is_ptr) {
		/* BIND: what the IPv4 name's PTR query says, or SERVFAIL when it
		 * neither answers nor says NXDOMAIN */
		int rc = len >= MSG_HDR ? knot_wire_get_rcode(msg) : KNOT_RCODE_SERVFAIL;
		if (rc == KNOT_RCODE_NOERROR || rc == KNOT_RCODE_NXDOMAIN)
			r = dns64_ptr_answer(d->orig->wire + MSG_HDR, d->target, msg, len, out, SYNTH_MAX, &n);
		if (r == 0 && n) {
			METRIC_INC(&w->m, dns64_reverse);
			done(d, out, n);
			return;
		}
	} else {
		const struct dns64_conf *e = entry_of(d->orig);
		if (e)
			r = dns64_synthesise(e, msg, len, d->ttl_cap, d->orig->mi.do_bit, out, SYNTH_MAX, &n);
		if (r == 0 && n) {
			METRIC_INC(&w->m, dns64_synthesised);
			done(d, out, n);
			return;
		}
	}
	fall_back(d);
}

/* released without a reply (not expected: query_fail always replies) */
static void sub_release(struct query *s)
{
	struct dns64_wait *d = s->client.u.stream.conn;
	if (!d)
		return;
	s->client.u.stream.conn = NULL;
	d->sub = NULL;
	fall_back(d);
}

static uint16_t sub_max_answer(const struct query *q, const struct msg_info *mi)
{
	(void)q;
	(void)mi;
	return UINT16_MAX;
}

static const struct client_ops dns64_client = {
	.name = "dns64",
	.max_answer = sub_max_answer,
	.reply = sub_reply,
	.release = sub_release,
};

/* The query for qname (NULL: orig's own) and qtype, with orig's flags and
 * EDNS, for d; NULL without memory. */
static struct query *sub_new(struct dns64_wait *d, const uint8_t *qname, uint16_t qtype)
{
	struct query *orig = d->orig;
	uint8_t wire[MSG_HDR + KNOT_DNAME_MAXLEN + 4 + 512];
	const uint8_t *name = qname ? qname : orig->wire + MSG_HDR;
	size_t nlen = knot_dname_size(name), n = MSG_HDR;
	size_t opt = orig->mi.opt_off ? orig->mi.opt_len : 0;
	if (MSG_HDR + nlen + 4 + opt > sizeof(wire))
		opt = 0;
	memcpy(wire, orig->wire, MSG_HDR);
	knot_wire_set_qdcount(wire, 1);
	knot_wire_set_ancount(wire, 0);
	knot_wire_set_nscount(wire, 0);
	knot_wire_set_arcount(wire, opt ? 1 : 0);
	memcpy(wire + n, name, nlen);
	n += nlen;
	msg_put16(wire + n, qtype);
	msg_put16(wire + n + 2, KNOT_CLASS_IN);
	n += 4;
	if (opt) {
		memcpy(wire + n, orig->wire + orig->mi.opt_off, opt);
		n += opt;
	}
	struct query *s = worker_query_new(orig->w, n);
	if (!s)
		return NULL;
	memcpy(s->wire, wire, n);
	s->len = (uint16_t)n;
	if (msg_parse_query(s->wire, n, &s->mi) != MSG_OK) {
		worker_query_release(s);
		return NULL;
	}
	s->client.ops = &dns64_client;
	s->client.peer = orig->client.peer; /* routes with client conditions see who asked */
	s->client.u.stream.conn = d;
	s->max_answer = UINT16_MAX;
	return s;
}

/* Send s (d's query) as the frontend sends a client's: routed, from the
 * cache when it can be. It may be answered, and d with it, before this
 * returns. */
static void sub_send(struct dns64_wait *d, struct query *s)
{
	struct worker *w = s->w;
	d->sub = s;
	METRIC_INC(&w->m, dns64_lookups);
	if (!frontend_route(w, s))
		return; /* answered SERVFAIL: d fell back */
	if (w->cfg->cache_obj && !s->no_cache && query_from_cache(s))
		return;
	tq_add(&w->deadlines, &s->deadline, worker_now(w));
	worker_arm(w, s->deadline.deadline_ms);
	query_dispatch(s, NULL);
}

static struct dns64_wait *wait_new(struct query *q, const uint8_t *ans, size_t len)
{
	struct dns64_wait *d = calloc(1, sizeof(*d) + len);
	if (!d)
		return NULL;
	d->orig = q;
	if (len)
		memcpy(d->ans, ans, len);
	d->len = (uint16_t)len;
	q->dns64 = d;
	return d;
}

static bool start_ptr(struct query *q)
{
	struct worker *w = q->w;
	const struct config *cfg = w->cfg;
	uint8_t target[DNS64_V4_NAME_MAX];
	enum dns64_reverse r = DNS64_REV_OUTSIDE;
	for (size_t i = 0; i < cfg->n_dns64 && r == DNS64_REV_OUTSIDE; i++)
		r = dns64_reverse(&cfg->dns64[i], q->wire + MSG_HDR, target);
	if (r == DNS64_REV_OUTSIDE)
		return false;
	q->is_activity = true;
	if (r != DNS64_REV_CNAME) {
		size_t n = 0;
		int rcode = r == DNS64_REV_NXDOMAIN ? KNOT_RCODE_NXDOMAIN : KNOT_RCODE_NOERROR;
		uint8_t *out = synth_buf();
		if (dns64_ptr_empty(q->wire, q->len, rcode, out, SYNTH_MAX, &n) < 0 || !n)
			query_fail(q, KNOT_RCODE_SERVFAIL);
		else
			query_answer_as_is(q, out, n);
		return true;
	}
	tq_add(&w->deadlines, &q->deadline, worker_now(w));
	worker_arm(w, q->deadline.deadline_ms);
	struct dns64_wait *d = wait_new(q, NULL, 0);
	if (!d) {
		query_fail(q, KNOT_RCODE_SERVFAIL);
		return true;
	}
	d->is_ptr = true;
	memcpy(d->target, target, sizeof(target));
	struct query *s = sub_new(d, target, KNOT_RRTYPE_PTR);
	if (!s) {
		fall_back(d);
		return true;
	}
	sub_send(d, s);
	return true;
}

bool query_dns64_start(struct query *q)
{
	const struct config *cfg = q->w->cfg;
	if (q->mi.qclass != KNOT_CLASS_IN)
		return false;
	if (q->mi.qtype == KNOT_RRTYPE_AAAA) {
		/* CD=1: the client validates, and a synthesised answer would
		 * fail it (RFC 6147 5.5): the real answer, never synthesised */
		int i = knot_wire_get_cd(q->wire) ? -1 : dns64_entry_for(cfg->dns64, cfg->n_dns64, &q->client.peer.sa);
		if (i >= 0)
			q->cache_variant = (uint8_t)(i + 1);
		return false;
	}
	return q->mi.qtype == KNOT_RRTYPE_PTR && start_ptr(q);
}

bool query_dns64_answer(struct query *q, uint8_t *ans, size_t len)
{
	const struct dns64_conf *e = entry_of(q);
	struct dns64_need need;
	if (!e || q->mi.qtype != KNOT_RRTYPE_AAAA || dns64_check_aaaa(e, ans, len, q->mi.do_bit, &need) < 0)
		return false;
	size_t n = 0;
	uint8_t *out = synth_buf();
	switch (need.verdict) {
	case DNS64_AS_IS: return false;
	case DNS64_FILTER:
		if (dns64_filter(e, ans, len, out, SYNTH_MAX, &n) < 0 || !n)
			return false;
		METRIC_INC(&q->w->m, dns64_filtered);
		query_answer_as_is(q, out, n);
		return true;
	case DNS64_SYNTH: break;
	}
	/* with only excluded addresses, what is left when nothing is
	 * synthesised is the answer without them (BIND) */
	if (need.excluded && dns64_filter(e, ans, len, out, SYNTH_MAX, &n) == 0 && n) {
		ans = out;
		len = n;
	}
	struct dns64_wait *d = wait_new(q, ans, len);
	if (!d)
		return false;
	d->ttl_cap = need.ttl_cap;
	struct query *s = sub_new(d, NULL, KNOT_RRTYPE_A);
	if (!s) {
		fall_back(d);
		return true;
	}
	sub_send(d, s);
	return true;
}

void query_dns64_fail(struct query *q)
{
	struct dns64_wait *d = q->dns64;
	query_detach(q);
	if (d->sub) { /* it goes on alone: its answer is still cached */
		d->sub->client.u.stream.conn = NULL;
		d->sub = NULL;
	}
	fall_back(d);
}
