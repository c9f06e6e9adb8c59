/* test_h2.c -- src/circuit/h2.c, a DoH circuit's HTTP/2 framing, against
 * server frames written byte by byte here: what fuzz/fuzz_h2_upstream.c
 * found. A response cut by RST_STREAM(NO_ERROR) before its END_STREAM is a
 * failure, not an answer (RFC 9113 8.1); a query cancelled while nghttp2
 * still holds its request back (the server's SETTINGS_MAX_CONCURRENT_STREAMS)
 * hears nothing more; requests held back when a GOAWAY comes are refused
 * (RFC 9113 6.8), not left waiting. No event loop, no socket. */
#include "test.h"
#include "circuit/h2.h"
#include "core/wire.h"

struct events {
	int answers, failures, refusals, goaways;
	uint16_t last_id;
	size_t last_len;
};

static void on_answer(void *arg, uint16_t up_id, uint8_t *msg, size_t len)
{
	struct events *e = arg;
	(void)msg;
	e->answers++;
	e->last_id = up_id;
	e->last_len = len;
}

static void on_failed(void *arg, uint16_t up_id, bool refused, const char *why)
{
	struct events *e = arg;
	(void)why;
	e->failures++;
	e->refusals += refused;
	e->last_id = up_id;
}

static void on_goaway(void *arg)
{
	((struct events *)arg)->goaways++;
}

static struct h2_framing *framing(struct events *e)
{
	memset(e, 0, sizeof(*e));
	struct h2f_opts o = {.authority = "dns.test", .path = "/dns-query"};
	struct h2f_events ev = {.arg = e, .answer = on_answer, .failed = on_failed, .goaway = on_goaway};
	struct h2_framing *f = h2f_new(&o, &ev);
	assert_non_null(f);
	return f;
}

/* What the framing wants to send (discarded: the tests script the server). */
static void drain(struct h2_framing *f)
{
	struct frame_buf out;
	assert_int_equal(frame_buf_init(&out, 1024), 0);
	assert_int_equal(h2f_output(f, &out), 0);
	frame_buf_deinit(&out);
}

static size_t frame(uint8_t *p, uint8_t type, uint8_t flags, uint32_t stream, const void *payload, size_t len)
{
	p[0] = (uint8_t)(len >> 16);
	p[1] = (uint8_t)(len >> 8);
	p[2] = (uint8_t)len;
	p[3] = type;
	p[4] = flags;
	p[5] = (uint8_t)(stream >> 24);
	p[6] = (uint8_t)(stream >> 16);
	p[7] = (uint8_t)(stream >> 8);
	p[8] = (uint8_t)stream;
	if (len)
		memcpy(p + 9, payload, len);
	return 9 + len;
}

static void server(struct h2_framing *f, const uint8_t *p, size_t n)
{
	assert_int_equal(h2f_input(f, p, n), 0);
	drain(f);
}

/* SETTINGS (MAX_CONCURRENT_STREAMS max_streams, or none), and the ACK of ours. */
static void settings(struct h2_framing *f, int max_streams)
{
	uint8_t buf[64], iv[6] = {0, 3, 0, 0, 0, (uint8_t)max_streams};
	size_t n = frame(buf, 4, 0, 0, iv, max_streams < 0 ? 0 : 6);
	n += frame(buf + n, 4, 1, 0, NULL, 0);
	server(f, buf, n);
}

/* HEADERS of a 200 application/dns-message response (HPACK: :status 200
 * indexed, content-type a literal without indexing). */
static size_t response_headers(uint8_t *p, uint32_t stream, uint8_t flags)
{
	static const char ct[] = "\x0f\x10\x17" "application/dns-message"; /* name index 31, 23-byte value */
	uint8_t block[64] = {0x88};
	memcpy(block + 1, ct, sizeof(ct) - 1);
	return frame(p, 1, 4 | flags, stream, block, sizeof(ct));
}

static const uint8_t query[] = {0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w', 'w', 'w', 0, 0, 1, 0, 1};

/* A framing with the query sent on stream 1, the SETTINGS exchanged. */
static struct h2_framing *one_query(struct events *e)
{
	struct h2_framing *f = framing(e);
	assert_int_equal(h2f_submit(f, query, sizeof(query), 0x1234), 1);
	drain(f);
	settings(f, -1);
	return f;
}

static void whole_response_is_an_answer(void **state)
{
	(void)state;
	struct events e;
	struct h2_framing *f = one_query(&e);
	uint8_t buf[256];
	size_t n = response_headers(buf, 1, 0);
	n += frame(buf + n, 0, 1, 1, query, sizeof(query)); /* DATA, END_STREAM */
	server(f, buf, n);
	assert_int_equal(e.answers, 1);
	assert_int_equal(e.last_id, 0x1234);
	assert_int_equal(e.last_len, sizeof(query));
	h2f_free(f);
}

static void reset_before_end_stream_is_a_failure(void **state)
{
	(void)state;
	struct events e;
	struct h2_framing *f = one_query(&e);
	uint8_t buf[256], no_error[4] = {0};
	size_t n = response_headers(buf, 1, 0);
	n += frame(buf + n, 0, 0, 1, query, 12);            /* DATA: the first 12 bytes, no END_STREAM */
	n += frame(buf + n, 3, 0, 1, no_error, sizeof(no_error)); /* RST_STREAM NO_ERROR */
	server(f, buf, n);
	assert_int_equal(e.answers, 0);
	assert_int_equal(e.failures, 1);
	assert_int_equal(e.refusals, 0);
	h2f_free(f);
}

static void cancelled_while_held_hears_nothing(void **state)
{
	(void)state;
	struct events e;
	struct h2_framing *f = framing(&e);
	settings(f, 0); /* no stream may open: the request is held back */
	int32_t sid = h2f_submit(f, query, sizeof(query), 0x1234);
	assert_true(sid > 0);
	drain(f);
	h2f_cancel(f, sid);
	drain(f);
	settings(f, 10);
	/* had the request gone out after all, this would be its answer */
	uint8_t buf[256];
	size_t n = response_headers(buf, (uint32_t)sid, 0);
	n += frame(buf + n, 0, 1, (uint32_t)sid, query, sizeof(query));
	int r = h2f_input(f, buf, n); /* (ignored by nghttp2: a stream it closed) */
	(void)r;
	assert_int_equal(e.answers + e.failures, 0);
	h2f_free(f);
}

static void held_requests_are_refused_by_goaway(void **state)
{
	(void)state;
	struct events e;
	struct h2_framing *f = framing(&e);
	settings(f, 0);
	assert_true(h2f_submit(f, query, sizeof(query), 0x1111) > 0);
	assert_true(h2f_submit(f, query, sizeof(query), 0x2222) > 0);
	drain(f);
	uint8_t buf[64], goaway[8] = {0}; /* last stream 0, NO_ERROR */
	server(f, buf, frame(buf, 7, 0, 0, goaway, sizeof(goaway)));
	assert_int_equal(e.goaways, 1);
	assert_int_equal(e.failures, 2);
	assert_int_equal(e.refusals, 2); /* may go to another circuit at once */
	drain(f);
	assert_int_equal(e.failures, 2); /* once each */
	h2f_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(whole_response_is_an_answer),
		cmocka_unit_test(reset_before_end_stream_is_a_failure),
		cmocka_unit_test(cancelled_while_held_hears_nothing),
		cmocka_unit_test(held_requests_are_refused_by_goaway),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
