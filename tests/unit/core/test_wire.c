/* test_wire.c -- src/core/wire.c: reassembly of 2-byte length-framed messages
 * (RFC 1035 4.2.2) from reads of any size, buffer compaction and growth, and
 * framing of outgoing messages. */
#include "test.h"
#include "core/wire.h"

/* Frame msg (len bytes) into out; returns the framed length. */
static size_t frame(uint8_t *out, const uint8_t *msg, size_t len)
{
	out[0] = (uint8_t)(len >> 8);
	out[1] = (uint8_t)len;
	memcpy(out + 2, msg, len);
	return len + 2;
}

/* A recognisable message body of len bytes. */
static void body(uint8_t *m, size_t len, uint8_t salt)
{
	for (size_t i = 0; i < len; i++)
		m[i] = (uint8_t)(i * 7 + salt);
}

/* One "read": copy n bytes into the buffer's room, as a read callback does. */
static void feed(struct frame_buf *fb, const uint8_t *bytes, size_t n)
{
	uint8_t *p;
	size_t room;
	assert_int_equal(frame_buf_room(fb, n ? n : 1, &p, &room), 0);
	assert_true(room >= n);
	assert_ptr_equal(p, fb->data + fb->len);
	memcpy(p, bytes, n);
	frame_buf_filled(fb, n);
}

static void expect_msg(struct frame_buf *fb, const uint8_t *want, size_t want_len)
{
	uint8_t *msg = NULL;
	size_t len = 12345;
	assert_int_equal(frame_next(fb, &msg, &len), 1);
	assert_int_equal(len, want_len);
	if (want_len)
		assert_memory_equal(msg, want, want_len);
}

static void expect_none(struct frame_buf *fb)
{
	uint8_t *msg = NULL;
	size_t len = 12345;
	assert_int_equal(frame_next(fb, &msg, &len), 0);
	assert_null(msg);
	assert_int_equal(len, 12345);
}

static void one_message_one_read(void **state)
{
	(void)state;
	struct frame_buf fb;
	uint8_t m[40], w[42];
	body(m, sizeof(m), 1);
	size_t n = frame(w, m, sizeof(m));
	assert_int_equal(frame_buf_init(&fb, 128), 0);
	expect_none(&fb);
	feed(&fb, w, n);
	expect_msg(&fb, m, sizeof(m));
	expect_none(&fb);
	assert_int_equal(frame_pending(&fb), 0);
	frame_buf_deinit(&fb);
	assert_null(fb.data);
}

/* A 300-byte message (both length bytes matter) split at every position. */
static void split_at_every_byte(void **state)
{
	(void)state;
	uint8_t m[300], w[302];
	body(m, sizeof(m), 3);
	size_t n = frame(w, m, sizeof(m));
	for (size_t cut = 0; cut <= n; cut++) {
		struct frame_buf fb;
		assert_int_equal(frame_buf_init(&fb, 64), 0);
		feed(&fb, w, cut);
		if (cut < n) {
			expect_none(&fb);
			assert_int_equal(frame_pending(&fb), cut);
		}
		feed(&fb, w + cut, n - cut);
		expect_msg(&fb, m, sizeof(m));
		expect_none(&fb);
		assert_int_equal(frame_pending(&fb), 0);
		frame_buf_deinit(&fb);
	}
}

/* Three messages (one of them empty) arriving one byte per read: each comes
 * out exactly when its last byte arrives. */
static void one_byte_at_a_time(void **state)
{
	(void)state;
	uint8_t m1[29], m3[257], stream[2 + 29 + 2 + 2 + 257];
	body(m1, sizeof(m1), 5);
	body(m3, sizeof(m3), 9);
	size_t n = frame(stream, m1, sizeof(m1));
	size_t end1 = n;
	n += frame(stream + n, (const uint8_t *)"", 0);
	size_t end2 = n;
	n += frame(stream + n, m3, sizeof(m3));
	size_t end3 = n;
	assert_int_equal(n, sizeof(stream));

	struct frame_buf fb;
	assert_int_equal(frame_buf_init(&fb, 16), 0);
	int got = 0;
	for (size_t i = 0; i < n; i++) {
		feed(&fb, stream + i, 1);
		if (i + 1 == end1) {
			expect_msg(&fb, m1, sizeof(m1));
			got++;
		} else if (i + 1 == end2) {
			expect_msg(&fb, NULL, 0);
			got++;
		} else if (i + 1 == end3) {
			expect_msg(&fb, m3, sizeof(m3));
			got++;
		}
		expect_none(&fb);
	}
	assert_int_equal(got, 3);
	assert_int_equal(frame_pending(&fb), 0);
	frame_buf_deinit(&fb);
}

/* Several messages and the start of another in one read (pipelining). */
static void coalesced_in_one_read(void **state)
{
	(void)state;
	uint8_t m[4][100], stream[4 * 102];
	size_t lens[4] = {12, 100, 1, 60};
	size_t n = 0;
	for (int i = 0; i < 4; i++) {
		body(m[i], lens[i], (uint8_t)(i * 50));
		n += frame(stream + n, m[i], lens[i]);
	}
	size_t last = 2 + lens[3];
	struct frame_buf fb;
	assert_int_equal(frame_buf_init(&fb, 64), 0);
	feed(&fb, stream, n - last + 5); /* 3 whole, 5 bytes of the 4th */
	for (int i = 0; i < 3; i++)
		expect_msg(&fb, m[i], lens[i]);
	expect_none(&fb);
	assert_int_equal(frame_pending(&fb), 5);
	feed(&fb, stream + n - last + 5, last - 5);
	expect_msg(&fb, m[3], lens[3]);
	expect_none(&fb);
	frame_buf_deinit(&fb);
}

static void zero_length_frame(void **state)
{
	(void)state;
	const uint8_t stream[] = {0, 0, 0, 0, 0, 3, 'a', 'b', 'c'};
	struct frame_buf fb;
	assert_int_equal(frame_buf_init(&fb, 32), 0);
	feed(&fb, stream, 1);
	expect_none(&fb); /* one byte of a length is not a frame */
	feed(&fb, stream + 1, sizeof(stream) - 1);
	expect_msg(&fb, NULL, 0);
	expect_msg(&fb, NULL, 0);
	expect_msg(&fb, (const uint8_t *)"abc", 3);
	expect_none(&fb);
	frame_buf_deinit(&fb);
}

/* The largest message, through a buffer that starts small, in reads of 1000. */
static void max_size_message(void **state)
{
	(void)state;
	static uint8_t m[65535], w[FRAME_MAX];
	body(m, sizeof(m), 11);
	size_t n = frame(w, m, sizeof(m));
	assert_int_equal(n, FRAME_MAX);
	assert_int_equal(w[0], 0xff);
	assert_int_equal(w[1], 0xff);
	struct frame_buf fb;
	assert_int_equal(frame_buf_init(&fb, 512), 0);
	for (size_t off = 0; off < n; off += 1000) {
		expect_none(&fb);
		feed(&fb, w + off, off + 1000 <= n ? 1000 : n - off);
	}
	assert_true(fb.cap >= FRAME_MAX);
	expect_msg(&fb, m, sizeof(m));
	expect_none(&fb);
	frame_buf_deinit(&fb);
}

/* frame_buf_room moves the unconsumed bytes to the front before it grows. */
static void room_compacts_then_grows(void **state)
{
	(void)state;
	struct frame_buf fb;
	uint8_t m[10], w[12 + 3];
	body(m, sizeof(m), 21);
	size_t n = frame(w, m, sizeof(m));
	const uint8_t partial[3] = {0x00, 0x05, 0xaa}; /* a 5-byte message, 1 byte in */
	memcpy(w + n, partial, 3);
	assert_int_equal(frame_buf_init(&fb, 64), 0);
	feed(&fb, w, n + 3);
	expect_msg(&fb, m, sizeof(m));
	assert_int_equal(fb.start, 12);

	/* enough room already: compaction only, no growth */
	uint8_t *p;
	size_t room;
	assert_int_equal(frame_buf_room(&fb, 10, &p, &room), 0);
	assert_int_equal(fb.start, 0);
	assert_int_equal(fb.len, 3);
	assert_int_equal(fb.cap, 64);
	assert_memory_equal(fb.data, partial, 3);
	assert_ptr_equal(p, fb.data + 3);
	assert_int_equal(room, 61);

	/* more than the capacity: grows, keeps the pending bytes */
	assert_int_equal(frame_buf_room(&fb, 1000, &p, &room), 0);
	assert_true(fb.cap >= 1003);
	assert_int_equal(fb.len, 3);
	assert_memory_equal(fb.data, partial, 3);
	assert_ptr_equal(p, fb.data + 3);
	assert_int_equal(room, fb.cap - 3);
	assert_true(room >= 1000);

	/* finish the message in the new room */
	const uint8_t rest[4] = {0xbb, 0xcc, 0xdd, 0xee};
	memcpy(p, rest, 4);
	frame_buf_filled(&fb, 4);
	expect_msg(&fb, (const uint8_t *)"\xaa\xbb\xcc\xdd\xee", 5);
	expect_none(&fb);

	/* nothing pending: compaction leaves an empty buffer with all its room */
	size_t cap = fb.cap;
	assert_int_equal(frame_buf_room(&fb, 1, &p, &room), 0);
	assert_int_equal(fb.len, 0);
	assert_int_equal(fb.start, 0);
	assert_ptr_equal(p, fb.data);
	assert_int_equal(room, cap);
	frame_buf_deinit(&fb);
}

/* Without consumed bytes to drop, room grows (doubling) past what is held. */
static void room_grows_full_buffer(void **state)
{
	(void)state;
	struct frame_buf fb;
	assert_int_equal(frame_buf_init(&fb, 8), 0);
	uint8_t bytes[8] = {0x01, 0x00, 1, 2, 3, 4, 5, 6}; /* a 256-byte message begins */
	feed(&fb, bytes, 8);
	assert_int_equal(fb.len, 8);
	uint8_t *p;
	size_t room;
	assert_int_equal(frame_buf_room(&fb, 1, &p, &room), 0);
	assert_true(fb.cap > 8);
	assert_true(room >= 1);
	assert_memory_equal(fb.data, bytes, 8);
	assert_ptr_equal(p, fb.data + 8);
	frame_buf_deinit(&fb);
}

static void reserve(void **state)
{
	(void)state;
	struct frame_buf fb;
	assert_int_equal(frame_buf_init(&fb, 32), 0);
	uint8_t *before = fb.data;
	assert_int_equal(frame_buf_reserve(&fb, 32), 0);
	assert_int_equal(fb.cap, 32); /* fits: untouched */
	assert_ptr_equal(fb.data, before);
	fb.len = 20;
	assert_int_equal(frame_buf_reserve(&fb, 13), 0);
	assert_true(fb.cap >= 33);
	assert_int_equal(fb.len, 20);
	frame_buf_deinit(&fb);
}

/* frame_append writes length + bytes; what it writes reads back. */
static void append_then_read_back(void **state)
{
	(void)state;
	static uint8_t big[65535];
	body(big, sizeof(big), 13);
	uint8_t small[3] = {7, 8, 9};
	struct frame_buf out;
	assert_int_equal(frame_buf_init(&out, 4), 0); /* forces growth on every append */

	assert_int_equal(frame_append(&out, small, 3), 0);
	assert_int_equal(out.len, 5);
	assert_memory_equal(out.data, "\x00\x03\x07\x08\x09", 5);
	assert_int_equal(frame_append(&out, (const uint8_t *)"", 0), 0);
	assert_int_equal(out.len, 7);
	assert_memory_equal(out.data + 5, "\x00\x00", 2);
	assert_int_equal(frame_append(&out, big, 300), 0);
	assert_int_equal(out.data[7], 0x01);
	assert_int_equal(out.data[8], 0x2c);
	assert_int_equal(frame_append(&out, big, sizeof(big)), 0);
	assert_int_equal(out.len, 5 + 2 + 302 + FRAME_MAX);
	assert_true(out.cap >= out.len);
	assert_memory_equal(out.data, "\x00\x03\x07\x08\x09", 5); /* growth kept the start */

	/* the output, fed to a reader in odd-sized reads, gives back the messages */
	struct frame_buf in;
	assert_int_equal(frame_buf_init(&in, 100), 0);
	size_t off = 0;
	int got = 0;
	while (off < out.len) {
		size_t n = out.len - off < 777 ? out.len - off : 777;
		feed(&in, out.data + off, n);
		off += n;
		uint8_t *msg;
		size_t len;
		while (frame_next(&in, &msg, &len)) {
			switch (got++) {
			case 0:
				assert_int_equal(len, 3);
				assert_memory_equal(msg, small, 3);
				break;
			case 1:
				assert_int_equal(len, 0);
				break;
			case 2:
				assert_int_equal(len, 300);
				assert_memory_equal(msg, big, 300);
				break;
			case 3:
				assert_int_equal(len, sizeof(big));
				assert_memory_equal(msg, big, sizeof(big));
				break;
			default:
				fail_msg("extra message");
			}
		}
	}
	assert_int_equal(got, 4);
	assert_int_equal(frame_pending(&in), 0);
	frame_buf_deinit(&in);
	frame_buf_deinit(&out);
}

/* Random read sizes over a random stream of messages. */
static void random_reads(void **state)
{
	(void)state;
	enum { NMSG = 300 };
	static uint8_t stream[NMSG * (2 + 1500)];
	size_t lens[NMSG], offs[NMSG], n = 0;
	uint64_t s = 99;
	for (int i = 0; i < NMSG; i++) {
		lens[i] = xr_below(&s, 1500);
		uint8_t m[1500];
		body(m, lens[i], (uint8_t)i);
		offs[i] = n + 2;
		n += frame(stream + n, m, lens[i]);
	}
	struct frame_buf fb;
	assert_int_equal(frame_buf_init(&fb, 256), 0);
	size_t off = 0;
	int got = 0;
	while (off < n) {
		size_t want = 1 + xr_below(&s, 3000);
		if (want > n - off)
			want = n - off;
		feed(&fb, stream + off, want);
		off += want;
		uint8_t *msg;
		size_t len;
		while (frame_next(&fb, &msg, &len)) {
			assert_true(got < NMSG);
			assert_int_equal(len, lens[got]);
			assert_memory_equal(msg, stream + offs[got], len);
			got++;
		}
	}
	assert_int_equal(got, NMSG);
	assert_int_equal(frame_pending(&fb), 0);
	frame_buf_deinit(&fb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(one_message_one_read),
		cmocka_unit_test(split_at_every_byte),
		cmocka_unit_test(one_byte_at_a_time),
		cmocka_unit_test(coalesced_in_one_read),
		cmocka_unit_test(zero_length_frame),
		cmocka_unit_test(max_size_message),
		cmocka_unit_test(room_compacts_then_grows),
		cmocka_unit_test(room_grows_full_buffer),
		cmocka_unit_test(reserve),
		cmocka_unit_test(append_then_read_back),
		cmocka_unit_test(random_reads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
