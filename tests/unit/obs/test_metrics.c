/* test_metrics.c -- src/obs/metrics.c alone: histogram buckets, the table
 * of upstream blocks (one per URL, "other" past its size), and the
 * Prometheus text: sums over workers, upstreams grouped by URL and hidden
 * once no instance is left, cumulative buckets whose +Inf equals _count,
 * escaped label values. Also core/clock.h against CLOCK_MONOTONIC. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "test.h"
#include "core/clock.h"
#include "obs/metrics.h"

static void buckets_are_powers_of_two(void **state)
{
	(void)state;
	assert_int_equal(hist_index(0), 0);
	assert_int_equal(hist_index(16), 0);
	assert_int_equal(hist_index(17), 1);
	assert_int_equal(hist_index(32), 1);
	assert_int_equal(hist_index(33), 2);
	assert_int_equal(hist_index(1u << 22), HIST_BUCKETS - 2);
	assert_int_equal(hist_index((1u << 22) + 1), HIST_BUCKETS - 1);
	assert_int_equal(hist_index(UINT64_MAX), HIST_BUCKETS - 1);
	assert_int_equal(hist_index(1), 0);
	assert_int_equal(hist_index(64), 2);
	assert_int_equal(hist_index(65), 3);
	struct hist h;
	memset(&h, 0, sizeof(h));
	hist_observe(&h, 100);
	hist_observe(&h, 100);
	hist_observe(&h, 5000000);
	assert_int_equal(h.bucket[3], 2); /* (64, 128] */
	assert_int_equal(h.bucket[HIST_BUCKETS - 1], 1);
	assert_int_equal(h.sum_us, 5000200);
}

static void table_one_block_per_url(void **state)
{
	(void)state;
	struct ustats_table t;
	assert_int_equal(ustats_table_init(&t, 4), 0);
	struct upstream_stats *a = ustats_table_get(&t, "tcp://127.0.0.1:53");
	struct upstream_stats *b = ustats_table_get(&t, "udp://127.0.0.1:53");
	assert_ptr_equal(ustats_table_get(&t, "tcp://127.0.0.1:53"), a);
	assert_ptr_not_equal(a, b);
	assert_int_equal(ustats_table_count(&t), 2);
	struct upstream_stats *c = ustats_table_get(&t, "tls://127.0.0.1:853");
	/* the last slot is the shared one */
	struct upstream_stats *o1 = ustats_table_get(&t, "tcp://127.0.0.2:53");
	struct upstream_stats *o2 = ustats_table_get(&t, "tcp://127.0.0.3:53");
	assert_ptr_equal(o1, o2);
	assert_string_equal(o1->name, "other");
	assert_ptr_not_equal(c, o1);
	assert_int_equal(ustats_table_count(&t), 4);
	assert_ptr_equal(ustats_table_get(&t, "tls://127.0.0.1:853"), c);
	ustats_table_deinit(&t);
}

/* The value of the sample line that starts with prefix (name and labels). */
static long long sample(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, prefix, n) == 0 && p[n] == ' ')
			return strtoll(p + n + 1, NULL, 10);
	fail_msg("no sample %s in:\n%s", prefix, text);
	return -1;
}

static bool has(const char *text, const char *s)
{
	return strstr(text, s) != NULL;
}

static void render_sums_workers_and_groups_by_url(void **state)
{
	(void)state;
	struct metrics m[2];
	struct ustats_table t[2];
	memset(m, 0, sizeof(m));
	m[0].by_frontend[MF_UDP] = 3;
	m[1].by_frontend[MF_UDP] = 4;
	m[1].by_frontend[MF_DOH] = 1;
	m[0].by_rcode[0] = 5;
	m[1].by_rcode[3] = 2;
	m[1].by_rcode[9] = 1;
	m[0].cache_hits = 1;
	m[1].cache_misses = 6;
	m[0].dropped_qr = 2;
	m[1].querylog_dropped = 7;
	const char *url = "tls://127.0.0.1:853#dns.\"test\"";
	for (int w = 0; w < 2; w++) {
		assert_int_equal(ustats_table_init(&t[w], 8), 0);
		struct upstream_stats *st = ustats_table_get(&t[w], url);
		st->queries = 10 + (uint64_t)w;
		st->errors[UERR_TIMEOUT] = 1;
		st->handshakes[1] = 2;
		st->instances = 1;
		st->inflight = 3;
		st->circuits = 1;
		st->up = w == 0; /* worker 1 has it down */
		hist_observe(&st->latency, 100);
		hist_observe(&st->latency, 3000);
		struct upstream_stats *gone = ustats_table_get(&t[w], "tcp://127.0.0.9:53");
		gone->queries = 99; /* no instance left: not shown */
	}
	m[1].by_rcode[16] = 4; /* answers to probes: in answered, not in answers_total */
	struct metrics sum;
	memset(&sum, 0, sizeof(sum));
	metrics_sum(&sum, &m[0]);
	metrics_sum(&sum, &m[1]);
	assert_int_equal(sum.queries, 8);   /* made from by_frontend */
	assert_int_equal(sum.answered, 12); /* and from by_rcode */
	struct metrics_source src[2] = {{&m[0], &t[0]}, {&m[1], &t[1]}};
	struct metrics_extra x = {.has_cache = true, .cache_entries = 42, .querylog_dropped = 1};
	char *text;
	size_t len;
	assert_int_equal(metrics_render(src, 2, &x, &text, &len), 0);
	assert_int_equal(strlen(text), len);
	assert_int_equal(sample(text, "dnsmux_queries_total{frontend=\"udp\"}"), 7);
	assert_int_equal(sample(text, "dnsmux_queries_total{frontend=\"doh\"}"), 1);
	assert_int_equal(sample(text, "dnsmux_queries_total{frontend=\"tcp\"}"), 0);
	assert_int_equal(sample(text, "dnsmux_answers_total{rcode=\"NOERROR\"}"), 5);
	assert_int_equal(sample(text, "dnsmux_answers_total{rcode=\"NXDOMAIN\"}"), 2);
	assert_int_equal(sample(text, "dnsmux_answers_total{rcode=\"NOTAUTH\"}"), 1);
	assert_int_equal(sample(text, "dnsmux_answers_total{rcode=\"REFUSED\"}"), 0);
	assert_false(has(text, "rcode=\"NOTZONE\""));
	assert_int_equal(sample(text, "dnsmux_cache_hits_total"), 1);
	assert_int_equal(sample(text, "dnsmux_cache_misses_total"), 6);
	assert_int_equal(sample(text, "dnsmux_cache_entries"), 42);
	assert_int_equal(sample(text, "dnsmux_dropped_total{reason=\"qr\"}"), 2);
	assert_int_equal(sample(text, "dnsmux_querylog_dropped_total"), 8);
	const char *L = "upstream=\"tls://127.0.0.1:853#dns.\\\"test\\\"\"";
	char k[512];
	snprintf(k, sizeof(k), "dnsmux_upstream_queries_total{%s}", L);
	assert_int_equal(sample(text, k), 21);
	snprintf(k, sizeof(k), "dnsmux_upstream_errors_total{%s,kind=\"timeout\"}", L);
	assert_int_equal(sample(text, k), 2);
	snprintf(k, sizeof(k), "dnsmux_upstream_errors_total{%s,kind=\"mismatch\"}", L);
	assert_int_equal(sample(text, k), 0);
	snprintf(k, sizeof(k), "dnsmux_upstream_inflight{%s}", L);
	assert_int_equal(sample(text, k), 6);
	snprintf(k, sizeof(k), "dnsmux_upstream_up{%s}", L);
	assert_int_equal(sample(text, k), 0);
	snprintf(k, sizeof(k), "dnsmux_circuits{%s}", L);
	assert_int_equal(sample(text, k), 2);
	snprintf(k, sizeof(k), "dnsmux_tls_handshakes_total{%s,resumed=\"yes\"}", L);
	assert_int_equal(sample(text, k), 4);
	snprintf(k, sizeof(k), "dnsmux_tls_handshakes_total{%s,resumed=\"no\"}", L);
	assert_int_equal(sample(text, k), 0);
	/* cumulative: 100 us is in le 128 us, 3 ms in le 4.096 ms */
	snprintf(k, sizeof(k), "dnsmux_upstream_latency_seconds_bucket{%s,le=\"0.000064\"}", L);
	assert_int_equal(sample(text, k), 0);
	snprintf(k, sizeof(k), "dnsmux_upstream_latency_seconds_bucket{%s,le=\"0.000128\"}", L);
	assert_int_equal(sample(text, k), 2);
	snprintf(k, sizeof(k), "dnsmux_upstream_latency_seconds_bucket{%s,le=\"0.002048\"}", L);
	assert_int_equal(sample(text, k), 2);
	snprintf(k, sizeof(k), "dnsmux_upstream_latency_seconds_bucket{%s,le=\"0.004096\"}", L);
	assert_int_equal(sample(text, k), 4);
	snprintf(k, sizeof(k), "dnsmux_upstream_latency_seconds_bucket{%s,le=\"+Inf\"}", L);
	assert_int_equal(sample(text, k), 4);
	snprintf(k, sizeof(k), "dnsmux_upstream_latency_seconds_count{%s}", L);
	assert_int_equal(sample(text, k), 4);
	assert_true(has(text, "dnsmux_upstream_latency_seconds_sum{upstream=\"tls://127.0.0.1:853#dns.\\\"test\\\"\"} "
			      "0.006200\n"));
	assert_true(has(text, "# TYPE dnsmux_upstream_latency_seconds histogram\n"));
	assert_true(has(text, "# TYPE dnsmux_upstream_queue_seconds histogram\n"));
	assert_true(has(text, "# TYPE dnsmux_upstream_wire_seconds histogram\n"));
	assert_true(has(text, "# TYPE dnsmux_upstream_handshake_seconds histogram\n"));
	assert_true(has(text, "# TYPE dnsmux_upstream_up gauge\n"));
	assert_true(has(text, "# TYPE dnsmux_queries_total counter\n"));
	assert_false(has(text, "127.0.0.9"));
	assert_int_equal(text[len - 1], '\n');
	free(text);
	ustats_table_deinit(&t[0]);
	ustats_table_deinit(&t[1]);
}

static void render_without_upstreams(void **state)
{
	(void)state;
	struct metrics m;
	struct ustats_table t;
	memset(&m, 0, sizeof(m));
	assert_int_equal(ustats_table_init(&t, 2), 0);
	struct metrics_source src = {&m, &t};
	struct metrics_extra x = {0};
	char *text;
	size_t len;
	assert_int_equal(metrics_render(&src, 1, &x, &text, &len), 0);
	assert_int_equal(sample(text, "dnsmux_cache_entries"), 0);
	assert_true(has(text, "# TYPE dnsmux_upstream_queries_total counter\n"));
	assert_false(has(text, "upstream=\""));
	free(text);
	ustats_table_deinit(&t);
}

static void tsc_clock_follows_monotonic(void **state)
{
	(void)state;
	clock_init();
	uint64_t a = clock_us(), s = clock_us_slow();
	assert_true(a + 1000 > s && s + 1000 > a); /* within a millisecond */
	uint64_t b = clock_us();
	assert_true(b >= a);
	assert_int_equal(clock_since(b, a), 0);
	assert_int_equal(clock_since(a, a + 5), 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(buckets_are_powers_of_two),
		cmocka_unit_test(table_one_block_per_url),
		cmocka_unit_test(render_sums_workers_and_groups_by_url),
		cmocka_unit_test(render_without_upstreams),
		cmocka_unit_test(tsc_clock_follows_monotonic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
