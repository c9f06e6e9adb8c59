/* metrics.c -- summing and printing struct metrics, the per-worker tables
 * of upstream blocks, and the Prometheus text exposition (see metrics.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "obs/json.h"
#include "obs/metrics.h"

#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

void metrics_format(const struct metrics *m, char *buf, size_t cap)
{
	size_t n = 0;
	buf[0] = '\0';
#define METRICS_FMT(name)                                                                                              \
	if (n < cap)                                                                                                   \
		n += (size_t)snprintf(buf + n, cap - n, "%s" #name "=%llu", n ? " " : "",                              \
				      (unsigned long long)__atomic_load_n(&m->name, __ATOMIC_RELAXED));
	METRICS_FIELDS(METRICS_FMT)
#undef METRICS_FMT
}

void metrics_sum(struct metrics *dst, const struct metrics *src)
{
#define METRICS_ADD(name) dst->name += __atomic_load_n(&src->name, __ATOMIC_RELAXED);
	METRICS_FIELDS(METRICS_ADD)
#undef METRICS_ADD
	for (unsigned i = 0; i < MF_KINDS; i++) {
		uint64_t v = LOAD(&src->by_frontend[i]);
		dst->by_frontend[i] += v;
		dst->queries += v;
	}
	for (unsigned i = 0; i < 17; i++) {
		uint64_t v = LOAD(&src->by_rcode[i]);
		if (i < 16)
			dst->by_rcode[i] += v;
		dst->answered += v;
	}
}

/* ---- the table of upstream blocks ---- */

static struct upstream_stats *block_new(const char *name)
{
	struct upstream_stats *st = calloc(1, sizeof(*st));
	if (st)
		snprintf(st->name, sizeof(st->name), "%s", name);
	return st;
}

int ustats_table_init(struct ustats_table *t, unsigned cap)
{
	memset(t, 0, sizeof(*t));
	t->cap = cap ? cap : 1;
	t->slot = calloc(t->cap, sizeof(*t->slot));
	t->other = block_new("other");
	if (!t->slot || !t->other) {
		ustats_table_deinit(t);
		return -ENOMEM;
	}
	return 0;
}

void ustats_table_deinit(struct ustats_table *t)
{
	bool other_published = false;
	for (unsigned i = 0; t->slot && i < t->n; i++) {
		other_published |= t->slot[i] == t->other;
		free(t->slot[i]);
	}
	if (!other_published)
		free(t->other);
	free(t->slot);
	memset(t, 0, sizeof(*t));
}

static void publish(struct ustats_table *t, struct upstream_stats *st)
{
	t->slot[t->n] = st;
	__atomic_store_n(&t->n, t->n + 1, __ATOMIC_RELEASE); /* the slot and the block's name before the count */
}

struct upstream_stats *ustats_table_get(struct ustats_table *t, const char *name)
{
	for (unsigned i = 0; i < t->n; i++)
		if (t->slot[i] != t->other && strcmp(t->slot[i]->name, name) == 0)
			return t->slot[i];
	struct upstream_stats *st = t->n + 1 < t->cap ? block_new(name) : NULL; /* the last slot: "other" */
	if (!st) {
		st = t->other;
		for (unsigned i = 0; i < t->n; i++)
			if (t->slot[i] == st)
				return st;
	}
	publish(t, st);
	return st;
}

unsigned ustats_table_count(const struct ustats_table *t)
{
	return __atomic_load_n(&t->n, __ATOMIC_ACQUIRE);
}

/* ---- text ---- */

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void __attribute__((format(printf, 2, 3))) put(struct sbuf *b, const char *fmt, ...)
{
	for (int tries = 0; tries < 2 && !b->oom; tries++) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap * 2 > b->len + (size_t)n + 1 ? b->cap * 2 : b->len + (size_t)n + 1024;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

/* A label value: backslash, double quote and newline escaped (the text
 * format's rules), into out. */
static void label_value(const char *s, char *out, size_t cap)
{
	size_t k = 0;
	for (; *s && k + 3 < cap; s++) {
		if (*s == '\\' || *s == '"') {
			out[k++] = '\\';
			out[k++] = *s;
		} else if (*s == '\n') {
			out[k++] = '\\';
			out[k++] = 'n';
		} else {
			out[k++] = *s;
		}
	}
	out[k] = '\0';
}

static void family(struct sbuf *b, const char *name, const char *type, const char *help)
{
	put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One upstream URL, every worker's blocks of it added up. */
struct agg {
	const char *name;  /* the URL (a block's: immutable once published) */
	char label[1300];  /* name, escaped */
	uint64_t queries, errors[UERR_KINDS], connects, handshakes[2];
	uint64_t instances, inflight, circuits;
	bool down;
	struct hist h[4];  /* latency, queue, wire, handshake */
};

static void hist_add(struct hist *dst, const struct hist *src)
{
	for (unsigned i = 0; i < HIST_BUCKETS; i++)
		dst->bucket[i] += LOAD(&src->bucket[i]);
	dst->sum_us += LOAD(&src->sum_us);
}

static void agg_add(struct agg *a, const struct upstream_stats *st)
{
	uint64_t inst = LOAD(&st->instances);
	a->queries += LOAD(&st->queries);
	for (unsigned k = 0; k < UERR_KINDS; k++)
		a->errors[k] += LOAD(&st->errors[k]);
	a->connects += LOAD(&st->connects);
	a->handshakes[0] += LOAD(&st->handshakes[0]);
	a->handshakes[1] += LOAD(&st->handshakes[1]);
	a->instances += inst;
	a->inflight += LOAD(&st->inflight);
	a->circuits += LOAD(&st->circuits);
	if (inst && !LOAD(&st->up))
		a->down = true;
	hist_add(&a->h[0], &st->latency);
	hist_add(&a->h[1], &st->queue);
	hist_add(&a->h[2], &st->wire);
	hist_add(&a->h[3], &st->handshake);
}

static int by_name(const void *x, const void *y)
{
	const struct upstream_stats *a = *(const struct upstream_stats *const *)x;
	const struct upstream_stats *b = *(const struct upstream_stats *const *)y;
	return strcmp(a->name, b->name);
}

/* Every worker's published blocks, grouped by URL; only URLs some worker
 * still has an instance of (a removed upstream leaves /metrics). */
static struct agg *aggregate(const struct metrics_source *src, unsigned n, size_t *n_out)
{
	size_t total = 0, k = 0;
	for (unsigned w = 0; w < n; w++)
		total += ustats_table_count(src[w].t);
	*n_out = 0;
	if (!total)
		return calloc(1, sizeof(struct agg));
	const struct upstream_stats **all = malloc(total * sizeof(*all));
	struct agg *out = calloc(total, sizeof(*out));
	if (!all || !out) {
		free(all);
		free(out);
		return NULL;
	}
	for (unsigned w = 0; w < n; w++) {
		unsigned c = ustats_table_count(src[w].t);
		for (unsigned i = 0; i < c && k < total; i++)
			all[k++] = src[w].t->slot[i];
	}
	qsort(all, k, sizeof(*all), by_name);
	size_t g = 0;
	for (size_t i = 0; i < k; i++) {
		bool same = i > 0 && strcmp(all[i]->name, all[i - 1]->name) == 0;
		if (!same) {
			if (g && out[g - 1].instances == 0)
				memset(&out[--g], 0, sizeof(out[0])); /* not configured any more */
			out[g].name = all[i]->name;
			label_value(all[i]->name, out[g].label, sizeof(out[g].label));
			g++;
		}
		agg_add(&out[g - 1], all[i]);
	}
	if (g && out[g - 1].instances == 0)
		g--;
	free(all);
	*n_out = g;
	return out;
}

static void upstream_counter(struct sbuf *b, const char *name, const char *help, const struct agg *a, size_t n,
			     size_t off)
{
	family(b, name, "counter", help);
	for (size_t i = 0; i < n; i++)
		put(b, "%s{upstream=\"%s\"} %llu\n", name, a[i].label,
		    (unsigned long long)*(const uint64_t *)(const void *)((const char *)&a[i] + off));
}

static void upstream_hist(struct sbuf *b, const char *name, const char *help, const struct agg *a, size_t n,
			  unsigned which)
{
	family(b, name, "histogram", help);
	for (size_t i = 0; i < n; i++) {
		const struct hist *h = &a[i].h[which];
		uint64_t cum = 0;
		for (unsigned k = 0; k < HIST_BUCKETS; k++) {
			cum += h->bucket[k];
			if (k + 1 < HIST_BUCKETS) {
				uint64_t bound_us = 1ull << (HIST_MIN_LOG2 + k);
				put(b, "%s_bucket{upstream=\"%s\",le=\"%llu.%06llu\"} %llu\n", name, a[i].label,
				    (unsigned long long)(bound_us / 1000000), (unsigned long long)(bound_us % 1000000),
				    (unsigned long long)cum);
			} else {
				put(b, "%s_bucket{upstream=\"%s\",le=\"+Inf\"} %llu\n", name, a[i].label, (unsigned long long)cum);
			}
		}
		put(b, "%s_sum{upstream=\"%s\"} %llu.%06llu\n", name, a[i].label, (unsigned long long)(h->sum_us / 1000000),
		    (unsigned long long)(h->sum_us % 1000000));
		put(b, "%s_count{upstream=\"%s\"} %llu\n", name, a[i].label, (unsigned long long)cum);
	}
}

static const char *const rcode_name[16] = {
	"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
	"NXRRSET", "NOTAUTH", "NOTZONE", "RCODE11", "RCODE12", "RCODE13", "RCODE14", "RCODE15",
};
static const char *const frontend_name[MF_KINDS] = {"internal", "udp", "tcp", "dot", "doh"};
static const char *const error_name[UERR_KINDS] = {"timeout", "reset", "refused", "tls", "mismatch"};

static void global_part(struct sbuf *b, const struct metrics *m, const struct metrics_extra *x)
{
	family(b, "dnsmux_queries_total", "counter", "Client queries received, by frontend.");
	for (unsigned i = MF_UDP; i < MF_KINDS; i++)
		put(b, "dnsmux_queries_total{frontend=\"%s\"} %llu\n", frontend_name[i],
		    (unsigned long long)m->by_frontend[i]);
	family(b, "dnsmux_answers_total", "counter", "Answers sent to clients, by rcode.");
	for (unsigned i = 0; i < 16; i++)
		if (i <= 5 || m->by_rcode[i])
			put(b, "dnsmux_answers_total{rcode=\"%s\"} %llu\n", rcode_name[i], (unsigned long long)m->by_rcode[i]);
	family(b, "dnsmux_cache_hits_total", "counter", "Queries answered from the cache.");
	put(b, "dnsmux_cache_hits_total %llu\n", (unsigned long long)m->cache_hits);
	family(b, "dnsmux_cache_misses_total", "counter", "Cacheable queries the cache had no fresh answer for.");
	put(b, "dnsmux_cache_misses_total %llu\n", (unsigned long long)m->cache_misses);
	family(b, "dnsmux_cache_entries", "gauge", "Answers in the cache.");
	put(b, "dnsmux_cache_entries %llu\n", (unsigned long long)(x->has_cache ? x->cache_entries : 0));
	family(b, "dnsmux_dropped_total", "counter",
	       "Messages dropped without an answer, by reason; acl and ratelimit: queries refused by policy (dropped "
	       "over UDP, answered REFUSED over streams).");
	const struct {
		const char *reason;
		uint64_t v;
	} drops[] = {
		{"short", m->dropped_short},          {"qr", m->dropped_qr},
		{"nomem", m->dropped_nomem},          {"send_error", m->send_errors},
		{"late_answer", m->late},             {"mismatched_answer", m->mismatched},
		{"malformed_answer", m->malformed_answers},
		{"acl", m->dropped_acl},              {"ratelimit", m->dropped_ratelimit},
	};
	for (size_t i = 0; i < sizeof(drops) / sizeof(drops[0]); i++)
		put(b, "dnsmux_dropped_total{reason=\"%s\"} %llu\n", drops[i].reason, (unsigned long long)drops[i].v);
	family(b, "dnsmux_ratelimit_slipped_total", "counter",
	       "UDP queries over the rate answered with an empty TC=1 answer (slip), of dropped_total{reason=\"ratelimit\"}.");
	put(b, "dnsmux_ratelimit_slipped_total %llu\n", (unsigned long long)m->ratelimit_slipped);
	family(b, "dnsmux_querylog_dropped_total", "counter", "Query log lines lost (ring full, or the file not writable).");
	put(b, "dnsmux_querylog_dropped_total %llu\n", (unsigned long long)(m->querylog_dropped + x->querylog_dropped));
}

static void upstream_part(struct sbuf *b, const struct agg *a, size_t n)
{
	upstream_counter(b, "dnsmux_upstream_queries_total", "Queries sent to the upstream (each try).", a, n,
			 offsetof(struct agg, queries));
	family(b, "dnsmux_upstream_errors_total", "counter", "Upstream failures, by kind.");
	for (size_t i = 0; i < n; i++)
		for (unsigned k = 0; k < UERR_KINDS; k++)
			put(b, "dnsmux_upstream_errors_total{upstream=\"%s\",kind=\"%s\"} %llu\n", a[i].label, error_name[k],
			    (unsigned long long)a[i].errors[k]);
	upstream_hist(b, "dnsmux_upstream_latency_seconds", "Query taken by the upstream to answered.", a, n, 0);
	upstream_hist(b, "dnsmux_upstream_queue_seconds", "Query taken to written to its connection or socket.", a, n, 1);
	upstream_hist(b, "dnsmux_upstream_wire_seconds", "Query written to answered.", a, n, 2);
	upstream_hist(b, "dnsmux_upstream_handshake_seconds", "Connect started to connection ready (TCP, TLS).", a, n, 3);
	family(b, "dnsmux_upstream_inflight", "gauge", "Queries the upstream holds (in flight or waiting).");
	for (size_t i = 0; i < n; i++)
		put(b, "dnsmux_upstream_inflight{upstream=\"%s\"} %llu\n", a[i].label, (unsigned long long)a[i].inflight);
	family(b, "dnsmux_upstream_up", "gauge", "1 when no worker has the upstream down, else 0.");
	for (size_t i = 0; i < n; i++)
		put(b, "dnsmux_upstream_up{upstream=\"%s\"} %d\n", a[i].label, a[i].down ? 0 : 1);
	family(b, "dnsmux_circuits", "gauge", "Connections to the upstream, open or opening.");
	for (size_t i = 0; i < n; i++)
		put(b, "dnsmux_circuits{upstream=\"%s\"} %llu\n", a[i].label, (unsigned long long)a[i].circuits);
	upstream_counter(b, "dnsmux_circuit_connects_total", "Connections started to the upstream.", a, n,
			 offsetof(struct agg, connects));
	family(b, "dnsmux_tls_handshakes_total", "counter", "TLS handshakes completed with the upstream.");
	for (size_t i = 0; i < n; i++) {
		put(b, "dnsmux_tls_handshakes_total{upstream=\"%s\",resumed=\"no\"} %llu\n", a[i].label,
		    (unsigned long long)a[i].handshakes[0]);
		put(b, "dnsmux_tls_handshakes_total{upstream=\"%s\",resumed=\"yes\"} %llu\n", a[i].label,
		    (unsigned long long)a[i].handshakes[1]);
	}
}

int metrics_render(const struct metrics_source *src, unsigned n, const struct metrics_extra *x, char **out,
		   size_t *len)
{
	struct metrics total;
	memset(&total, 0, sizeof(total));
	for (unsigned w = 0; w < n; w++)
		metrics_sum(&total, src[w].m);
	size_t n_agg;
	struct agg *a = aggregate(src, n, &n_agg);
	struct sbuf b = {.p = malloc(16384), .cap = 16384};
	if (!a || !b.p) {
		free(a);
		free(b.p);
		return -ENOMEM;
	}
	b.p[0] = '\0';
	global_part(&b, &total, x);
	upstream_part(&b, a, n_agg);
	free(a);
	if (b.oom) {
		free(b.p);
		return -ENOMEM;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

/* ---- JSON ---- */

/* o[k] = v; a NULL (out of memory) anywhere marks the whole NULL. */
static void set(json_t *o, const char *k, json_t *v, bool *oom)
{
	if (!v || json_object_set_new(o, k, v) < 0) /* (which takes v, even from a NULL o) */
		*oom = true;
}

static json_t *num(uint64_t v)
{
	return json_integer((json_int_t)v);
}

static json_t *hist_json(const struct hist *h, bool *oom)
{
	uint64_t count = 0;
	for (unsigned k = 0; k < HIST_BUCKETS; k++)
		count += h->bucket[k];
	json_t *o = json_object();
	set(o, "count", num(count), oom);
	set(o, "sum_seconds", json_real((double)h->sum_us / 1e6), oom);
	return o;
}

static json_t *upstream_json(const struct agg *a, bool full, bool *oom)
{
	json_t *o = json_object();
	set(o, "url", json_text(a->name), oom);
	set(o, "up", json_boolean(!a->down), oom);
	set(o, "inflight", num(a->inflight), oom);
	set(o, "circuits", num(a->circuits), oom);
	if (!full)
		return o;
	set(o, "queries", num(a->queries), oom);
	json_t *e = json_object();
	for (unsigned k = 0; k < UERR_KINDS; k++)
		set(e, error_name[k], num(a->errors[k]), oom);
	set(o, "errors", e, oom);
	set(o, "connects", num(a->connects), oom);
	json_t *hs = json_object();
	set(hs, "full", num(a->handshakes[0]), oom);
	set(hs, "resumed", num(a->handshakes[1]), oom);
	set(o, "tls_handshakes", hs, oom);
	static const char *const hist_name[4] = {"latency", "queue", "wire", "handshake"};
	for (unsigned k = 0; k < 4; k++)
		set(o, hist_name[k], hist_json(&a->h[k], oom), oom);
	return o;
}

static json_t *upstreams_json(const struct metrics_source *src, unsigned n, bool full, bool *oom)
{
	size_t n_agg;
	struct agg *a = aggregate(src, n, &n_agg);
	json_t *l = json_array();
	if (!a || !l) {
		*oom = true;
		free(a);
		return l;
	}
	for (size_t i = 0; i < n_agg; i++) {
		json_t *u = upstream_json(&a[i], full, oom);
		if (!u || json_array_append_new(l, u) < 0)
			*oom = true;
	}
	free(a);
	return l;
}

static json_t *counters_json(const struct metrics *m, const struct metrics_extra *x, bool *oom)
{
	json_t *c = json_object();
#define METRICS_JSON(name) set(c, #name, num(m->name), oom);
	METRICS_FIELDS(METRICS_JSON)
#undef METRICS_JSON
	set(c, "querylog_dropped", num(m->querylog_dropped + x->querylog_dropped), oom); /* as /metrics adds them */
	return c;
}

json_t *metrics_json(const struct metrics_source *src, unsigned n, const struct metrics_extra *x)
{
	struct metrics total;
	bool oom = false;
	memset(&total, 0, sizeof(total));
	for (unsigned w = 0; w < n; w++)
		metrics_sum(&total, src[w].m);
	json_t *o = json_object();
	set(o, "counters", counters_json(&total, x, &oom), &oom);
	json_t *f = json_object();
	for (unsigned i = MF_UDP; i < MF_KINDS; i++)
		set(f, frontend_name[i], num(total.by_frontend[i]), &oom);
	set(o, "queries_by_frontend", f, &oom);
	json_t *r = json_object();
	for (unsigned i = 0; i < 16; i++)
		if (i <= 5 || total.by_rcode[i])
			set(r, rcode_name[i], num(total.by_rcode[i]), &oom);
	set(o, "answers_by_rcode", r, &oom);
	if (x->has_cache) {
		json_t *c = json_object();
		set(c, "entries", num(x->cache_entries), &oom);
		set(c, "bytes", num(x->cache_bytes), &oom);
		set(o, "cache", c, &oom);
	}
	set(o, "upstreams", upstreams_json(src, n, true, &oom), &oom);
	if (oom) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *metrics_upstreams_json(const struct metrics_source *src, unsigned n)
{
	bool oom = false;
	json_t *l = upstreams_json(src, n, false, &oom);
	if (oom) {
		json_decref(l);
		return NULL;
	}
	return l;
}
