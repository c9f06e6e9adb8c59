/* worker.c -- one thread's loop (see worker.h): start listeners on the
 * sockets the daemon bound, own the pool's upstream instances, drive every
 * deadline from one timer, flush circuits once per loop turn, drain and
 * close on stop. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <libknot/libknot.h>
#include "circuit/circuit.h"
#include "core/query.h"
#include "core/worker.h"
#include "config/snapshot.h"
#include "frontend/frontend.h"
#include "obs/log.h"
#include "obs/qlog.h"
#include "route/route.h"
#include "upstream/probe.h"
#include "upstream/udp.h"
#include "upstream/upstream.h"

#define UDP_DGRAM_MAX (64 * 1024) /* recvmmsg chunk: any UDP datagram fits */
#define FREE_QUERIES_MAX 1024     /* released queries kept for reuse */

static void timer_cb(uv_timer_t *t);
static void finish_stop(struct worker *w);
static void drain_retired(struct worker *w);
static void apply_config(struct worker *w, const struct config *next);

void worker_arm(struct worker *w, uint64_t at_ms)
{
	if (at_ms >= w->timer_at)
		return;
	uint64_t now = worker_now(w);
	w->timer_at = at_ms;
	uv_timer_start(&w->timer, timer_cb, at_ms > now ? at_ms - now : 0, 0);
}

static void rearm(struct worker *w)
{
	uint64_t next = tq_next_ms(&w->deadlines);
	uint64_t t = tq_next_ms(&w->udp_retry);
	if (t < next)
		next = t;
	t = tq_next_ms(&w->tcp_idle);
	if (t < next)
		next = t;
	t = tq_next_ms(&w->tls_hs);
	if (t < next)
		next = t;
	t = tq_next_ms(&w->tcp_linger);
	if (t < next)
		next = t;
	for (unsigned i = 0; i < w->n_pools; i++) {
		const struct pool *p = &w->pools[i];
		if ((t = tq_next_ms(&p->tries)) < next)
			next = t;
		if ((t = tq_next_ms(&p->probes)) < next)
			next = t;
		if (p->conf->health.interval_ms && !w->is_stopping && p->next_probe_ms < next)
			next = p->next_probe_ms;
	}
	if (w->is_stopping && !w->is_closed && w->stop_by_ms < next)
		next = w->stop_by_ms;
	if (next != UINT64_MAX)
		worker_arm(w, next);
}

static void timer_cb(uv_timer_t *t)
{
	struct worker *w = t->data;
	uint64_t now = worker_now(w);
	struct tq_entry *e;
	w->timer_at = UINT64_MAX;
	while ((e = tq_pop_expired(&w->deadlines, now))) {
		struct query *q = tq_container(e, struct query, deadline);
		METRIC_INC(&w->m, upstream_timeouts);
		if (q->up && q->state != Q_IDLE)
			upstream_count_error(q->up, UERR_TIMEOUT);
		query_fail(q, KNOT_RCODE_SERVFAIL); /* detaches it: a later answer counts as late */
	}
	while ((e = tq_pop_expired(&w->udp_retry, now)))
		upstream_udp_retry_expired(tq_container(e, struct query, link));
	for (unsigned i = 0; i < w->n_pools; i++) {
		while ((e = tq_pop_expired(&w->pools[i].tries, now)))
			query_try_expired(tq_container(e, struct query, try_timer));
		while ((e = tq_pop_expired(&w->pools[i].probes, now)))
			probe_expired(tq_container(e, struct query, try_timer));
	}
	probe_due(w, now);
	frontend_tcp_idle_expired(w, now);
	finish_stop(w);
	if (!w->is_closed)
		rearm(w);
}

struct query *worker_query_new(struct worker *w, size_t wire_len)
{
	struct query *q = w->free_queries;
	if (q) {
		w->free_queries = q->next_free;
		w->n_free--;
	} else {
		q = malloc(sizeof(*q));
		if (!q)
			return NULL;
	}
	memset(q, 0, offsetof(struct query, inline_buf));
	q->w = w;
	q->wire = q->inline_buf;
	if (wire_len > QUERY_INLINE) {
		q->wire = malloc(wire_len);
		if (!q->wire) {
			q->next_free = w->free_queries;
			w->free_queries = q;
			w->n_free++;
			return NULL;
		}
		q->heap_len = (uint32_t)wire_len;
		w->query_heap_len += wire_len;
	}
	w->inflight++;
	return q;
}

void worker_query_release(struct query *q)
{
	struct worker *w = q->w;
	tq_remove(&q->deadline);
	tq_remove(&q->link);
	tq_remove(&q->try_timer);
	if (q->wire != q->inline_buf) {
		free(q->wire);
		w->query_heap_len -= q->heap_len;
	}
	if (q->client.ops && q->client.ops->release)
		q->client.ops->release(q);
	w->inflight--;
	if (w->n_free < FREE_QUERIES_MAX) {
		q->next_free = w->free_queries;
		w->free_queries = q;
		w->n_free++;
	} else {
		free(q);
	}
}

/* Close everything; the loop ends when the last handle's close callback ran. */
static void close_all(struct worker *w)
{
	w->is_closed = true;
	udptx_flush(w->tx); /* nothing queued may outlive its socket */
	for (unsigned i = 0; i < w->n_upstreams; i++)
		upstream_close(w->upstreams[i]);
	w->n_upstreams = 0;
	for (unsigned i = 0; i < w->n_retired; i++)
		if (!w->retired[i].closed_turn)
			upstream_close(w->retired[i].u);
	w->n_retired = 0;
	frontend_udp_close(w);
	uv_close((uv_handle_t *)&w->timer, NULL);
	uv_close((uv_handle_t *)&w->stats_timer, NULL);
	uv_close((uv_handle_t *)&w->check, NULL);
	uv_close((uv_handle_t *)&w->prepare, NULL);
	uv_close((uv_handle_t *)&w->wake, NULL);
}

/* Write what circuits and UDP sends queued. Runs after the I/O callbacks
 * (check) and again before the loop polls (prepare), so output queued by a
 * timer does not wait for the next event. */
void worker_flush(struct worker *w)
{
	if (w->tx->n)
		udptx_flush(w->tx);
	while (w->dirty) {
		struct circuit *c = w->dirty;
		w->dirty = NULL;
		for (struct circuit *next; c; c = next) {
			next = circuit_next_dirty(c);
			circuit_flush(c);
		}
	}
	if (w->tx->n) /* a circuit that failed may have answered queries */
		udptx_flush(w->tx);
}

unsigned worker_udp_iov(struct worker *w, struct udp_width *uw, struct iovec *iov)
{
	unsigned c = uw->chunks ? uw->chunks : 1;
	if (uw->got >= c)
		c = c * 2 > WORKER_UDP_CHUNKS ? WORKER_UDP_CHUNKS : c * 2; /* it was full: widen */
	else
		c = uw->got > 1 ? uw->got : 1; /* it was not: as wide as what came */
	uw->chunks = (uint16_t)c;
	uw->got = 0;
	for (unsigned i = 0; i < c; i++)
		iov[i] = (struct iovec){.iov_base = w->udp_rbuf + i * UDP_DGRAM_MAX, .iov_len = UDP_DGRAM_MAX};
	return c;
}

void worker_batch_done(struct worker *w)
{
	if (w->turn_inputs <= WORKER_BATCH_INPUTS)
		worker_flush(w);
}

static void prepare_cb(uv_prepare_t *h)
{
	worker_flush(h->data);
}

/* A stop is complete when the last query is answered and every client
 * connection has drained (its answers written), or when the drain time is
 * up: then what is left is closed, its unwritten answers counted. Called at
 * the end of a loop turn and from the timer, never from deep inside a
 * callback. */
static void finish_stop(struct worker *w)
{
	if (!w->is_stopping || w->is_closed || w->inflight != 0)
		return;
	if (w->clients && worker_now(w) < w->stop_by_ms)
		return;
	if (w->clients)
		log_warn(WORKER, "worker %u: %u client connections still draining at the end of the drain time: closing them",
			 w->idx, w->n_clients);
	frontend_tcp_abort_all(w);
	close_all(w);
}

static void check_cb(uv_check_t *h)
{
	struct worker *w = h->data;
	worker_flush(w);
	w->turn_inputs = 0;
	w->turns++;
	if (w->n_retired)
		drain_retired(w);
	finish_stop(w);
}

static void wake_cb(uv_async_t *a)
{
	struct worker *w = a->data;
	const struct config *next = __atomic_exchange_n(&w->next_cfg, NULL, __ATOMIC_ACQ_REL);
	if (next && !w->is_stopping && next != w->cfg)
		apply_config(w, next);
	if (!__atomic_load_n(&w->stop_requested, __ATOMIC_ACQUIRE) || w->is_stopping)
		return;
	w->is_stopping = true;
	/* the queries in flight have their deadlines, then each connection its
	 * drain time; this is the backstop for both */
	w->stop_by_ms = worker_now(w) + w->cfg->timeout_ms + worker_drain_ms(w->cfg);
	worker_arm(w, w->stop_by_ms);
	log_debug(WORKER, "worker %u stopping: %u queries in flight", w->idx, w->inflight);
	frontend_udp_stop(w);
	frontend_tcp_stop(w);
	frontend_tcp_close_idle(w);
}

void worker_request_config(struct worker *w, const struct config *next)
{
	__atomic_store_n(&w->next_cfg, next, __ATOMIC_RELEASE);
	uv_async_send(&w->wake);
}

void worker_request_stop(struct worker *w)
{
	__atomic_store_n(&w->stop_requested, 1, __ATOMIC_RELEASE);
	uv_async_send(&w->wake);
}

static int start_listeners(struct worker *w)
{
	const struct config *cfg = w->cfg;
	w->listens = malloc(sizeof(*w->listens) * (cfg->n_listens ? cfg->n_listens : 1));
	if (!w->listens)
		return UV_ENOMEM;
	memcpy(w->listens, cfg->listens, sizeof(*w->listens) * cfg->n_listens);
	for (size_t i = 0; i < cfg->n_listens; i++) {
		const struct listen_conf *lc = &w->listens[i];
		int r = 0;
		if (w->fds[2 * i] >= 0)
			r = frontend_udp_start(w, lc, w->fds[2 * i]);
		if (r == 0 && w->fds[2 * i + 1] >= 0)
			r = frontend_tcp_start(w, lc, w->fds[2 * i + 1]);
		if (r < 0) {
			log_err(WORKER, "worker %u: cannot listen on %s: %s", w->idx, lc->text, uv_strerror(r));
			return r;
		}
	}
	return 0;
}

/* Pools for cfg over the upstream instances ups (one per cfg->upstreams[i]),
 * and the route scratch; into *pools, *n_pools. */
static int build_pools(struct worker *w, const struct config *cfg, struct upstream **ups, struct pool **pools_out,
		       struct route_scratch **scratch)
{
	struct pool *pools = calloc(cfg->n_pools ? cfg->n_pools : 1, sizeof(*pools));
	if (!pools)
		return -ENOMEM;
	for (unsigned p = 0; p < cfg->n_pools; p++) {
		pools[p].conf = &cfg->pools[p];
		tq_init(&pools[p].tries, cfg->pools[p].timeout_ms);
		tq_init(&pools[p].probes, cfg->pools[p].health.timeout_ms);
		pools[p].next_probe_ms = uv_now(&w->loop); /* the first round at once */
		pools[p].members = calloc(cfg->pools[p].n_members ? cfg->pools[p].n_members : 1, sizeof(struct upstream *));
		if (!pools[p].members) {
			for (unsigned k = 0; k <= p; k++)
				free(pools[k].members);
			free(pools);
			return -ENOMEM;
		}
	}
	*scratch = NULL;
	if (cfg->route_table && !(*scratch = route_scratch_new(cfg->route_table))) {
		for (unsigned k = 0; k < cfg->n_pools; k++)
			free(pools[k].members);
		free(pools);
		return -ENOMEM;
	}
	for (size_t i = 0; i < cfg->n_upstreams; i++) {
		struct pool *p = &pools[cfg->upstreams[i].pool];
		ups[i]->wants_rtt = p->conf->policy == POOL_FASTEST;
		p->members[p->n++] = ups[i];
	}
	*pools_out = pools;
	return 0;
}

static void free_pools(struct pool *pools, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		free(pools[i].members);
	free(pools);
}

static void arm_probes(struct worker *w)
{
	for (unsigned i = 0; i < w->n_pools; i++)
		if (w->pools[i].conf->health.interval_ms)
			worker_arm(w, w->pools[i].next_probe_ms);
}

/* This worker's upstream instances, and its pools of them (config order). */
static int make_pools(struct worker *w)
{
	const struct config *cfg = w->cfg;
	w->upstreams = calloc(cfg->n_upstreams ? cfg->n_upstreams : 1, sizeof(*w->upstreams));
	if (!w->upstreams)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_upstreams; i++) {
		struct upstream *u = upstream_new(w, &cfg->upstreams[i]);
		if (!u)
			return -ENOMEM;
		w->upstreams[w->n_upstreams++] = u;
	}
	if (build_pools(w, cfg, w->upstreams, &w->pools, &w->route_scratch) < 0)
		return -ENOMEM;
	w->n_pools = (unsigned)cfg->n_pools;
	int d = config_find_pool(cfg, "default");
	w->default_pool = d < 0 ? 0 : (unsigned)d;
	return 0;
}

/* Add one instance's state into its block's scratch. */
static void add_instance(struct upstream *u)
{
	struct upstream_stats *st = u->stats;
	st->acc_instances++;
	st->acc_inflight += upstream_outstanding(u);
	st->acc_circuits += u->n_circuits;
	if (u->health.is_down || u->health.probe_down)
		st->acc_down = true;
	if (u->tcp_twin) { /* its TCP twin (TC=1 retries) has the same URL: its load counts, not its health */
		struct upstream *t = u->tcp_twin;
		t->stats->acc_inflight += upstream_outstanding(t);
		t->stats->acc_circuits += t->n_circuits;
	}
}

void worker_publish_stats(struct worker *w)
{
	struct ustats_table *t = &w->ustats;
	for (unsigned i = 0; i < w->n_upstreams; i++)
		add_instance(w->upstreams[i]);
	for (unsigned i = 0; i < w->n_retired; i++)
		if (!w->retired[i].closed_turn) /* (closed ones are freed) */
			add_instance(w->retired[i].u);
	for (unsigned i = 0; i < t->n; i++) {
		struct upstream_stats *st = t->slot[i];
		STAT_SET(st, instances, st->acc_instances);
		STAT_SET(st, inflight, st->acc_inflight);
		STAT_SET(st, circuits, st->acc_circuits);
		STAT_SET(st, up, (uint64_t)(st->acc_instances && !st->acc_down));
		st->acc_instances = st->acc_inflight = st->acc_circuits = 0;
		st->acc_down = false;
	}
}

static void stats_cb(uv_timer_t *h)
{
	worker_publish_stats(h->data);
}

/* The oldest snapshot this worker still uses: its own, or one a retired
 * upstream's conf lives in. Read by the daemon to free older ones. */
static void publish_min_gen(struct worker *w)
{
	unsigned long g = w->cfg->generation;
	for (unsigned i = 0; i < w->n_retired; i++)
		if (w->retired[i].gen < g)
			g = w->retired[i].gen;
	__atomic_store_n(&w->min_gen, g, __ATOMIC_RELEASE);
}

/* Retired upstreams: close each once it holds no query; forget it a turn
 * later, when its handles' close callbacks have run. */
static void drain_retired(struct worker *w)
{
	unsigned k = 0;
	bool changed = false;
	for (unsigned i = 0; i < w->n_retired; i++) {
		struct retired_upstream *r = &w->retired[i];
		if (!r->closed_turn && (upstream_outstanding(r->u) == 0 || w->is_closed)) {
			log_debug(WORKER, "worker %u: upstream %s, removed by a reload, closed", w->idx, r->u->name);
			upstream_close(r->u);
			r->closed_turn = w->turns;
			worker_arm(w, worker_now(w)); /* a next turn, even when nothing else happens */
		}
		if (r->closed_turn && r->closed_turn < w->turns) {
			changed = true;
			continue;
		}
		w->retired[k++] = *r;
	}
	w->n_retired = k;
	if (changed) {
		publish_min_gen(w);
		worker_publish_stats(w);
	}
}

/* A reload's snapshot: the same upstreams keep their instances (circuits,
 * health, latency), new ones are made, removed ones retire; queries in
 * flight move to the new pool of the same name (none: they wait on their
 * upstream, not retried), with their try timers; probes in flight are
 * dropped (the new pools probe at once). */
static void apply_config(struct worker *w, const struct config *next)
{
	const struct config *old = w->cfg;
	struct upstream **ups = calloc(next->n_upstreams ? next->n_upstreams : 1, sizeof(*ups));
	bool *kept = calloc(w->n_upstreams ? w->n_upstreams : 1, sizeof(*kept));
	struct retired_upstream *ret = NULL;
	struct pool *pools = NULL;
	struct route_scratch *scratch = NULL;
	size_t i, k, made = 0;
	if (!ups || !kept)
		goto oom;
	for (i = 0; i < next->n_upstreams; i++) {
		for (k = 0; k < w->n_upstreams; k++)
			if (!kept[k] && config_upstream_same(old, w->upstreams[k]->conf, next, &next->upstreams[i]))
				break;
		if (k < w->n_upstreams) {
			kept[k] = true;
			ups[i] = w->upstreams[k];
		} else if (!(ups[i] = upstream_new(w, &next->upstreams[i]))) {
			goto oom;
		} else {
			made++;
		}
	}
	size_t gone = w->n_upstreams - (next->n_upstreams - made);
	ret = realloc(w->retired, (w->n_retired + gone + 1) * sizeof(*ret));
	if (!ret)
		goto oom;
	w->retired = ret;
	if (build_pools(w, next, ups, &pools, &scratch) < 0)
		goto oom;
	/* from here on nothing fails */
	for (i = 0; i < next->n_upstreams; i++)
		if (ups[i]->conf != &next->upstreams[i] && ups[i]->conf >= old->upstreams &&
		    ups[i]->conf < old->upstreams + old->n_upstreams)
			ups[i]->conf = &next->upstreams[i];
	for (k = 0; k < w->n_upstreams; k++)
		if (!kept[k])
			w->retired[w->n_retired++] = (struct retired_upstream){.u = w->upstreams[k], .gen = old->generation};
	for (unsigned p = 0; p < w->n_pools; p++) {
		struct tq_entry *e;
		while ((e = tq_pop_expired(&w->pools[p].probes, UINT64_MAX))) {
			struct query *q = tq_container(e, struct query, try_timer);
			query_detach(q);
			worker_query_release(q);
		}
	}
	for (struct tq_entry *e = w->deadlines.head.next; e != &w->deadlines.head; e = e->next) {
		struct query *q = tq_container(e, struct query, deadline);
		int np = q->pool < w->n_pools ? config_find_pool(next, old->pools[q->pool].name) : -1;
		if (tq_entry_queued(&q->try_timer)) {
			if (np >= 0)
				tq_append_as_is(&pools[np].tries, &q->try_timer);
			else
				tq_remove(&q->try_timer);
		}
		q->pool = np < 0 ? QUERY_NO_POOL : (uint16_t)np;
	}
	free_pools(w->pools, w->n_pools);
	free(w->upstreams);
	route_scratch_free(w->route_scratch);
	w->upstreams = ups;
	w->n_upstreams = (unsigned)next->n_upstreams;
	w->pools = pools;
	w->n_pools = (unsigned)next->n_pools;
	w->route_scratch = scratch;
	int d = config_find_pool(next, "default");
	w->default_pool = d < 0 ? 0 : (unsigned)d;
	/* fixed-delay queues: a lower delay holds entries already queued behind
	 * older ones, never beyond their old deadline */
	w->deadlines.delay_ms = next->timeout_ms;
	w->udp_retry.delay_ms = next->udp_retry_ms;
	w->tcp_idle.delay_ms = next->tcp_idle_ms;
	w->tls_hs.delay_ms = next->tls_handshake_ms;
	w->tcp_linger.delay_ms = worker_drain_ms(next);
	w->cfg = next;
	free(kept);
	arm_probes(w);
	publish_min_gen(w);
	worker_publish_stats(w);
	log_debug(WORKER, "worker %u: configuration %lu in force (%zu upstreams kept, %zu new, %zu retiring)", w->idx,
		  next->generation, next->n_upstreams - made, made, gone);
	drain_retired(w);
	return;
oom:
	for (i = 0; ups && i < next->n_upstreams; i++)
		if (ups[i] && !(ups[i]->conf >= old->upstreams && ups[i]->conf < old->upstreams + old->n_upstreams))
			upstream_close(ups[i]);
	free(ups);
	free(kept);
	log_err(WORKER, "worker %u: out of memory: configuration %lu not applied, %lu kept", w->idx, next->generation,
		old->generation);
}

int worker_init(struct worker *w, unsigned idx, const struct config *cfg, int *fds)
{
	memset(w, 0, sizeof(*w));
	w->idx = idx;
	w->cfg = cfg;
	w->min_gen = cfg->generation;
	w->fds = fds;
	w->timer_at = UINT64_MAX;
	int r = uv_loop_init(&w->loop);
	if (r < 0)
		return r;
	rnd_init(&w->rnd);
	tq_init(&w->deadlines, cfg->timeout_ms);
	tq_init(&w->udp_retry, cfg->udp_retry_ms);
	tq_init(&w->tcp_idle, cfg->tcp_idle_ms);
	tq_init(&w->tls_hs, cfg->tls_handshake_ms);
	tq_init(&w->tcp_linger, worker_drain_ms(cfg));
	w->udp_rbuf_len = WORKER_UDP_CHUNKS * UDP_DGRAM_MAX;
	w->udp_rbuf = malloc(w->udp_rbuf_len);
	w->tx = malloc(sizeof(*w->tx));
	if (!w->tx)
		return -ENOMEM;
	w->tx->n = 0;
	w->tx->used = 0;
	w->tx->m = &w->m;
	if (ustats_table_init(&w->ustats, USTATS_MAX) < 0)
		return -ENOMEM;
	if (cfg->log_queries[0] && !(w->qlog = qlog_ring_new(QLOG_RING_ENTRIES)))
		return -ENOMEM;
	if (!w->udp_rbuf || make_pools(w) < 0)
		return -ENOMEM;
	uv_timer_init(&w->loop, &w->timer);
	w->timer.data = w;
	worker_publish_stats(w);
	uv_timer_init(&w->loop, &w->stats_timer);
	w->stats_timer.data = w;
	uv_timer_start(&w->stats_timer, stats_cb, WORKER_STATS_MS, WORKER_STATS_MS);
	arm_probes(w); /* the first probes */
	uv_check_init(&w->loop, &w->check);
	w->check.data = w;
	uv_check_start(&w->check, check_cb);
	uv_prepare_init(&w->loop, &w->prepare);
	w->prepare.data = w;
	uv_prepare_start(&w->prepare, prepare_cb);
	uv_async_init(&w->loop, &w->wake, wake_cb);
	w->wake.data = w;
	/* before the thread runs, so a failure is reported by the daemon */
	return start_listeners(w);
}

void worker_run(void *arg)
{
	struct worker *w = arg;
	uv_run(&w->loop, UV_RUN_DEFAULT);
}

void worker_deinit(struct worker *w)
{
	/* every handle is closed once uv_run returned; drain close callbacks */
	uv_run(&w->loop, UV_RUN_DEFAULT);
	for (unsigned i = 0; i < w->n_upstreams; i++)
		upstream_close(w->upstreams[i]);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	while (w->free_queries) {
		struct query *q = w->free_queries;
		w->free_queries = q->next_free;
		free(q);
	}
	free(w->upstreams);
	free_pools(w->pools, w->n_pools);
	free(w->retired);
	free(w->listens);
	route_scratch_free(w->route_scratch);
	free(w->udp_rbuf);
	upstream_udp_free_spare(w);
	free(w->tx);
	ustats_table_deinit(&w->ustats); /* (the daemon reads no more: its /metrics server closed first) */
	qlog_ring_free(w->qlog);          /* (and its query log writer) */
	if (uv_loop_close(&w->loop) != 0)
		log_warn(WORKER, "worker %u: handles left open at exit", w->idx);
}
