/* query.c -- answering and dispatching a struct query (see query.h). */
#include <string.h>
#include <libknot/libknot.h>
#include "circuit/inflight.h"
#include "core/err.h"
#include "core/query.h"
#include "core/scratch.h"
#include "core/worker.h"
#include "frontend/frontend.h"
#include "obs/log.h"
#include "policy/cache.h"
#include "upstream/upstream.h"

struct query *query_for_answer(struct worker *w, struct inflight *t, uint8_t *msg, size_t len)
{
	return query_for_answer_from(w, NULL, t, msg, len);
}

struct query *query_for_answer_from(struct worker *w, struct upstream_stats *st, struct inflight *t, uint8_t *msg,
				    size_t len)
{
	if (len < MSG_HDR) {
		METRIC_INC(&w->m, mismatched);
		if (st)
			STAT_INC(st, errors[UERR_MISMATCH]);
		return NULL;
	}
	uint16_t id = knot_wire_get_id(msg);
	struct query *q = inflight_get(t, id);
	if (!q) {
		if (inflight_take_gone(t, id)) {
			METRIC_INC(&w->m, late);
		} else {
			METRIC_INC(&w->m, mismatched);
			if (st)
				STAT_INC(st, errors[UERR_MISMATCH]);
		}
		return NULL;
	}
	if (!msg_answer_matches(msg, len, q->wire, &q->mi)) {
		METRIC_INC(&w->m, mismatched); /* keep waiting for the right one */
		if (st)
			STAT_INC(st, errors[UERR_MISMATCH]);
		return NULL;
	}
	/* a client gets only answers that parse: every record's name and
	 * length (and no pointer into the header we rewrite) */
	struct msg_info ami;
	if (msg_scan_answer(msg, len, &q->mi, &ami) < 0) {
		METRIC_INC(&w->m, malformed_answers); /* discarded: the query waits, then SERVFAIL */
		if (st)
			STAT_INC(st, errors[UERR_MISMATCH]);
		return NULL;
	}
	return q;
}

/* ---- the cache (policy/cache.h) on the path ---- */

static uint16_t internal_max_answer(const struct query *q, const struct msg_info *mi)
{
	(void)q;
	(void)mi;
	return UINT16_MAX;
}

static void refresh_reply(struct query *q, const uint8_t *msg, size_t len)
{
	(void)q;
	(void)msg;
	(void)len; /* the cache took the answer on its way (query_answer) */
}

static const struct client_ops refresh_client = {
	.name = "prefetch",
	.max_answer = internal_max_answer,
	.reply = refresh_reply,
};

/* The same question again, from nobody, to refresh the cache entry
 * (sent by prefetch_send once q is answered: it may fail at once and
 * look in the cache itself). */
static struct query *prefetch_new(const struct query *q)
{
	struct worker *w = q->w;
	struct query *r = worker_query_new(w, q->len);
	if (!r)
		return NULL;
	memcpy(r->wire, q->wire, q->len);
	r->len = q->len;
	r->mi = q->mi;
	r->client_id = q->client_id;
	r->client.ops = &refresh_client;
	r->client.peer = q->client.peer;
	r->max_answer = UINT16_MAX;
	r->pool = q->pool;
	r->cache_variant = q->cache_variant;
	r->cache_store = true;
	r->cache_key = q->cache_key;
	return r;
}

static void prefetch_send(struct query *r)
{
	struct worker *w = r->w;
	METRIC_INC(&w->m, cache_prefetches);
	tq_add(&w->deadlines, &r->deadline, worker_now(w));
	worker_arm(w, r->deadline.deadline_ms);
	query_dispatch(r, NULL);
}

/* a hit, until it is answered (core/scratch.h; initial-exec: dnsmux is one
 * executable, and the default model for PIC code costs a call's worth of
 * spills at each use) */
static __thread void *cache_slot __attribute__((tls_model("initial-exec")));

void query_cache_prefetch(const struct query *q)
{
	if (q->cache_store && q->w->cfg->cache_obj)
		cache_prefetch(q->w->cfg->cache_obj, &q->cache_key, true);
}

bool query_from_cache(struct query *q)
{
	return cache_key_of(&q->cache_key, q->wire, &q->mi, q->cache_variant) && query_cache_lookup(q);
}

bool query_cache_lookup(struct query *q)
{
	struct worker *w = q->w;
	const struct config *cfg = w->cfg;
	struct cache_key *k = &q->cache_key;
	uint8_t *buf = scratch(&cache_slot, MSG_MAX);
	size_t len;
	bool refresh = false;
	if (cache_get(cfg->cache_obj, k, worker_now(w), 0, buf, MSG_MAX, &len, cfg->cache.prefetch ? &refresh : NULL) ==
	    CACHE_MISS) {
		METRIC_INC(&w->m, cache_misses);
		q->cache_store = true;
		return false;
	}
	METRIC_INC(&w->m, cache_hits);
	if (len > MSG_UDP_MIN && len <= q->max_answer)
		METRIC_INC(&w->m, cache_truncations_avoided);
	struct query *r = refresh ? prefetch_new(q) : NULL;
	query_answer(q, buf, len);
	if (r)
		prefetch_send(r);
	return true;
}

/* Every member failed or timed out: an expired answer within
 * cache.serve-stale rather than SERVFAIL (RFC 8767). q is detached. */
static bool serve_stale(struct query *q)
{
	struct worker *w = q->w;
	const struct config *cfg = w->cfg;
	q->cache_store = false; /* (q->cache_key is set while it was true) */
	if (!cfg->cache.stale_s || !cfg->cache_obj)
		return false;
	uint8_t *buf = scratch(&cache_slot, MSG_MAX);
	size_t len;
	if (cache_get(cfg->cache_obj, &q->cache_key, worker_now(w), cfg->cache.stale_s * 1000ull, buf, MSG_MAX, &len, NULL) ==
	    CACHE_MISS)
		return false;
	METRIC_INC(&w->m, cache_stale);
	query_answer(q, buf, len);
	return true;
}

static void cache_store(struct query *q, uint8_t *ans, size_t len)
{
	struct worker *w = q->w;
	q->cache_store = false;
	if (w->cfg->cache_obj)
		(void)cache_put(w->cfg->cache_obj, &q->cache_key, ans, len, &w->cfg->cache, worker_now(w));
}

void query_answer(struct query *q, uint8_t *ans, size_t len)
{
	if (q->cache_variant && query_dns64_answer(q, ans, len))
		return;
	query_answer_as_is(q, ans, len);
}

void query_answer_as_is(struct query *q, uint8_t *ans, size_t len)
{
	struct worker *w = q->w;
	if (q->cache_store) {
		if (knot_wire_get_rcode(ans) == KNOT_RCODE_SERVFAIL && serve_stale(q))
			return;
		cache_store(q, ans, len);
	}
	knot_wire_set_id(ans, q->client_id);
	/* msg_answer_matches() checked the names are equal but for case: put the
	 * client's exact spelling back (some stubs use 0x20 case randomisation). */
	memcpy(ans + MSG_HDR, q->wire + MSG_HDR, q->mi.qname_len);
	if (len > q->max_answer) {
		len = msg_truncate(ans, len, q->max_answer);
		METRIC_INC(&w->m, truncated);
		if (len == 0) {
			query_fail(q, KNOT_RCODE_SERVFAIL);
			return;
		}
	}
	frontend_reply(q, ans, len); /* (counts it) */
	worker_query_release(q);
}

void query_fail(struct query *q, int rcode)
{
	struct worker *w = q->w;
	uint8_t buf[MSG_HDR + KNOT_DNAME_MAXLEN + 4 + 11];
	if (q->dns64) {
		query_dns64_fail(q);
		return;
	}
	query_detach(q);
	if (q->cache_store && rcode == KNOT_RCODE_SERVFAIL && serve_stale(q))
		return;
	q->cache_store = false;
	size_t n = msg_error_reply(q->wire, q->len, &q->mi, rcode, buf, sizeof(buf));
	if (n) {
		knot_wire_set_id(buf, q->client_id);
		/* an opcode we do not implement is not a query we recursed for:
		 * no RA, and no CD or AD echoed (as the origin answers it) */
		if (rcode == KNOT_RCODE_NOTIMPL)
			knot_wire_clear_cd(buf);
		else
			knot_wire_set_ra(buf);
		frontend_reply(q, buf, n);
	}
	switch (rcode) {
	case KNOT_RCODE_SERVFAIL: METRIC_INC(&w->m, servfail); break;
	case KNOT_RCODE_FORMERR: METRIC_INC(&w->m, formerr); break;
	case KNOT_RCODE_NOTIMPL: METRIC_INC(&w->m, notimp); break;
	case KNOT_RCODE_REFUSED: METRIC_INC(&w->m, refused); break;
	default: break;
	}
	worker_query_release(q);
}

void query_detach(struct query *q)
{
	if (q->state != Q_IDLE && q->up)
		upstream_cancel(q->up, q);
	q->state = Q_IDLE;
	q->up = NULL;
}

void query_dispatch(struct query *q, const struct upstream *avoid)
{
	struct worker *w = q->w;
	uint64_t now = worker_now(w);
	if (now >= q->deadline.deadline_ms) {
		METRIC_INC(&w->m, upstream_timeouts);
		query_fail(q, KNOT_RCODE_SERVFAIL);
		return;
	}
	struct upstream *u = q->pool < w->n_pools ? pool_pick(&w->pools[q->pool], now, avoid, &w->rnd) : NULL;
	if (!u) {
		query_fail(q, KNOT_RCODE_SERVFAIL);
		return;
	}
	int r = upstream_send(u, q);
	if (r < 0) {
		if (r == ERR_FULL || r == ERR_NOID)
			METRIC_INC(&w->m, overflow);
		query_fail(q, KNOT_RCODE_SERVFAIL);
		return;
	}
	struct pool *p = &w->pools[q->pool];
	if (p->conf->timeout_ms && q->tries < p->conf->retries) {
		tq_add(&p->tries, &q->try_timer, now);
		worker_arm(w, q->try_timer.deadline_ms);
	}
}

/* Another member, if the pool has retries left for q and a member other
 * than the one that failed it. */
static bool retry_elsewhere(struct query *q, struct upstream *failed)
{
	struct worker *w = q->w;
	if (q->pool >= w->n_pools)
		return false;
	const struct pool *p = &w->pools[q->pool];
	if (q->tries >= p->conf->retries || p->n < 2 || worker_now(w) >= q->deadline.deadline_ms)
		return false;
	q->tries++;
	METRIC_INC(&w->m, pool_retries);
	query_dispatch(q, failed);
	return true;
}

void query_upstream_answer(struct query *q, struct upstream *u, uint8_t *ans, size_t len)
{
	tq_remove(&q->try_timer);
	/* a SERVFAIL from one server is more often that server's trouble than
	 * the name's: another member may answer (pools.*.retries) */
	if (knot_wire_get_rcode(ans) == KNOT_RCODE_SERVFAIL && u) {
		health_fail(&u->health, &q->w->rnd, worker_now(q->w)); /* a passive signal */
		if (retry_elsewhere(q, u))
			return;
	}
	query_answer(q, ans, len);
}

void query_try_expired(struct query *q)
{
	struct worker *w = q->w;
	struct upstream *u = q->up;
	if (q->state == Q_IDLE || !u || q->pool >= w->n_pools)
		return;
	const struct pool *p = &w->pools[q->pool];
	health_fail(&u->health, &w->rnd, worker_now(w)); /* a passive signal */
	upstream_count_error(u, UERR_TIMEOUT);
	if (p->n < 2 || worker_now(w) >= q->deadline.deadline_ms)
		return; /* nobody else to ask: it waits on u, under its deadline */
	query_detach(q); /* a late answer from u counts as late */
	if (!retry_elsewhere(q, u))
		query_fail(q, KNOT_RCODE_SERVFAIL);
}

void query_dispatch_elsewhere(struct query *q, const struct upstream *u)
{
	struct worker *w = q->w;
	struct upstream *next = q->pool < w->n_pools ? pool_pick(&w->pools[q->pool], worker_now(w), u, &w->rnd) : NULL;
	if (!next || next == u || !health_usable(&next->health, worker_now(w)) || upstream_send(next, q) < 0)
		query_fail(q, KNOT_RCODE_SERVFAIL);
}

void query_requeue(struct query *q)
{
	if (q->suspicion >= QUERY_MAX_SUSPICION) {
		METRIC_INC(&q->w->m, suspects); /* see QUERY_MAX_SUSPICION */
		query_fail(q, KNOT_RCODE_SERVFAIL);
		return;
	}
	if (q->circuit_deaths > QUERY_MAX_CIRCUIT_DEATHS) {
		query_fail(q, KNOT_RCODE_SERVFAIL);
		return;
	}
	query_dispatch(q, NULL);
}
