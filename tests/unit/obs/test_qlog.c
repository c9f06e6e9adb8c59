/* test_qlog.c -- src/obs/qlog.c alone: the ring (fills to its size, then
 * refuses; entries come out in order; wraps), the same with a producer and
 * a consumer thread, and the line format (ISO 8601 time, client, frontend,
 * name, type, rcode, upstream, latency in ms). */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include "test.h"
#include "obs/metrics.h"
#include "obs/qlog.h"

static void ring_fills_and_wraps(void **state)
{
	(void)state;
	assert_null(qlog_ring_new(3));
	struct qlog_ring *r = qlog_ring_new(4);
	assert_non_null(r);
	struct qlog_entry out;
	assert_false(qlog_ring_pop(r, &out));
	for (unsigned round = 0; round < 3; round++) {
		for (uint32_t i = 0; i < 4; i++) {
			struct qlog_entry *e = qlog_ring_claim(r);
			assert_non_null(e);
			e->latency_us = round * 10 + i;
			qlog_ring_commit(r);
		}
		assert_null(qlog_ring_claim(r)); /* full: the caller counts a drop */
		for (uint32_t i = 0; i < 4; i++) {
			assert_true(qlog_ring_pop(r, &out));
			assert_int_equal(out.latency_us, round * 10 + i);
		}
		assert_false(qlog_ring_pop(r, &out));
	}
	qlog_ring_free(r);
}

#define N_THREADED 200000

static void *producer(void *arg)
{
	struct qlog_ring *r = arg;
	for (uint32_t i = 0; i < N_THREADED;) {
		struct qlog_entry *e = qlog_ring_claim(r);
		if (!e)
			continue; /* (a worker would drop it; here it waits, to check the order) */
		e->latency_us = i++;
		qlog_ring_commit(r);
	}
	return NULL;
}

static void ring_between_two_threads(void **state)
{
	(void)state;
	struct qlog_ring *r = qlog_ring_new(64);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, producer, r), 0);
	struct qlog_entry out;
	for (uint32_t want = 0; want < N_THREADED;)
		if (qlog_ring_pop(r, &out))
			assert_int_equal(out.latency_us, want++);
	pthread_join(t, NULL);
	assert_false(qlog_ring_pop(r, &out));
	qlog_ring_free(r);
}

static void line_has_every_field(void **state)
{
	(void)state;
	struct upstream_stats up;
	memset(&up, 0, sizeof(up));
	snprintf(up.name, sizeof(up.name), "tls://127.0.0.1:853#dns.test");
	struct qlog_entry e;
	memset(&e, 0, sizeof(e));
	e.done_us = 5000000;
	e.latency_us = 1234;
	e.family = AF_INET;
	inet_pton(AF_INET, "127.0.0.1", e.addr);
	e.port = 53012;
	e.frontend = MF_UDP;
	e.rcode = 3;
	e.qtype = 28;
	memcpy(e.qname, "\x02n1\x04test\x00", 9);
	e.qname_len = 9;
	e.upstream = &up;
	char line[512];
	/* 2026-12-01T14:03:05.000Z: 1,796,133,785 s after the epoch, less the 5 s of done_us */
	size_t n = qlog_format(&e, 1796133780ll * 1000000, line, sizeof(line));
	assert_string_equal(line, "2026-12-01T14:03:05.000Z 127.0.0.1#53012 udp n1.test. AAAA NXDOMAIN "
				  "tls://127.0.0.1:853#dns.test 1.234\n");
	assert_int_equal(n, strlen(line));
	e.family = AF_INET6;
	inet_pton(AF_INET6, "::1", e.addr);
	e.frontend = MF_DOH;
	e.rcode = 0;
	e.qtype = 65280;
	memcpy(e.qname, "\x03" "a b\x00", 5); /* a space in a label: escaped, the line keeps its fields */
	e.qname_len = 5;
	e.upstream = NULL;
	e.latency_us = 7;
	qlog_format(&e, 1796133780ll * 1000000 + 999, line, sizeof(line));
	assert_string_equal(line, "2026-12-01T14:03:05.000Z ::1#53012 doh a\\032b. TYPE65280 NOERROR - 0.007\n");
	assert_int_equal(qlog_format(&e, 0, line, 20), 0); /* does not fit */
	n = qlog_format(&e, 1796133780ll * 1000000 + 999, line, sizeof(line));
	assert_int_equal(qlog_format(&e, 1796133780ll * 1000000 + 999, line, n), 0); /* no room for its NUL */
	assert_int_equal(qlog_format(&e, 1796133780ll * 1000000 + 999, line, n + 1), n);

	/* the root, and no question at all */
	e.family = AF_INET;
	inet_pton(AF_INET, "192.0.2.255", e.addr);
	e.port = 7;
	e.qtype = 2;
	memcpy(e.qname, "\x00", 1);
	e.qname_len = 1;
	e.latency_us = 12345678;
	qlog_format(&e, 1796133780ll * 1000000, line, sizeof(line));
	assert_string_equal(line, "2026-12-01T14:03:05.000Z 192.0.2.255#7 doh . NS NOERROR - 12345.678\n");
	e.qname_len = 0;
	qlog_format(&e, 1796133780ll * 1000000, line, sizeof(line));
	assert_string_equal(line, "2026-12-01T14:03:05.000Z 192.0.2.255#7 doh . - NOERROR - 12345.678\n");

	/* names spelt here are libknot's text form: random names of every byte */
	uint64_t seed = 42;
	for (int round = 0; round < 2000; round++) {
		uint8_t wire[KNOT_DNAME_MAXLEN];
		size_t len = 0;
		unsigned labels = xr_below(&seed, 4);
		for (unsigned l = 0; l < labels; l++) {
			unsigned ll = 1 + xr_below(&seed, 12);
			wire[len++] = (uint8_t)ll;
			for (unsigned j = 0; j < ll; j++) /* mostly name bytes, sometimes any byte */
				wire[len++] = xr_below(&seed, 8) ? (uint8_t)"aZ09-_q."[xr_below(&seed, 7)] : (uint8_t)xr_below(&seed, 256);
		}
		wire[len++] = 0;
		char want[KNOT_DNAME_TXT_MAXLEN + 1], got[512];
		assert_non_null(knot_dname_to_str(want, wire, sizeof(want)));
		memcpy(e.qname, wire, len);
		e.qname_len = (uint8_t)len;
		e.qtype = 1;
		qlog_format(&e, 1796133780ll * 1000000, got, sizeof(got));
		char *name = strstr(got, " doh ") + 5;
		*strchr(name, ' ') = '\0';
		assert_string_equal(name, want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ring_fills_and_wraps),
		cmocka_unit_test(ring_between_two_threads),
		cmocka_unit_test(line_has_every_field),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
