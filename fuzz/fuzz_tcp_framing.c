/* fuzz_tcp_framing.c -- a client's TCP byte stream, split and coalesced
 * (fuzz/README.md). The invariant: however the kernel cuts the stream into
 * reads, and however long the frontend leaves whole messages waiting in the
 * buffer (pipeline cap, backpressure), frame_next hands out the same
 * messages as from the whole stream read at once; and each message goes
 * through msg_parse_query (and msg_normalize_query) without a fault.
 *
 * Input: 8 bytes that seed the read sizes and the waits, then the stream. */
#include "fuzz.h"

#define CTL_LEN 8
/* frontend/tcp.c: a client's buffer, and the size past which it is given
 * back once empty */
#define CLIENT_RBUF 4096
#define CLIENT_RBUF_KEEP (4 * CLIENT_RBUF)
#define ROOM 1024 /* frontend/tcp.c alloc_cb asks this much room per read */

/* Take every whole message out of fb, appending each (framed) to out. */
static void drain(struct frame_buf *fb, struct frame_buf *out, size_t *count)
{
	uint8_t *m;
	size_t len;
	while (frame_next(fb, &m, &len)) {
		if (frame_append(out, m, len) < 0)
			abort();
		(*count)++;
	}
}

/* The stream in reads of sizes from the seed, with whole messages left in
 * the buffer now and then while more bytes come. */
static void read_split(const uint8_t *s, size_t n, uint64_t seed, struct frame_buf *fb, struct frame_buf *out,
		       size_t *count)
{
	size_t off = 0;
	while (off < n) {
		size_t want = fz_chunk(&seed);
		off += fz_read(fb, ROOM, s + off, want < n - off ? want : n - off);
		if (fz_rand(&seed) % 4 == 0)
			continue; /* backpressure: nothing taken this time */
		drain(fb, out, count);
		if (fb->start == fb->len && fb->cap > CLIENT_RBUF_KEEP) {
			frame_buf_deinit(fb); /* as frontend/tcp.c process() gives a grown buffer back */
			if (frame_buf_init(fb, CLIENT_RBUF) < 0)
				abort();
		}
	}
	drain(fb, out, count);
}

/* Every message as frontend_query checks it: copied to the end of a global
 * array (ASan's redzone right behind it catches a read past the message,
 * without a 64 KiB allocation per message, which costs page faults). */
static void check_messages(const struct frame_buf *out)
{
	static uint8_t tail[MSG_MAX];
	size_t p = 0;
	while (p < out->len) {
		size_t len = msg_get16(out->data + p);
		uint8_t *m = tail + sizeof(tail) - len;
		memcpy(m, out->data + p + 2, len);
		struct msg_info mi;
		if (msg_parse_query(m, len, &mi) == MSG_OK) {
			CHECK(mi.end <= len);
			size_t n = msg_normalize_query(m, mi.end, &mi);
			CHECK(n <= len && mi.end == n);
		}
		p += 2 + len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t seed = 0;
	for (size_t i = 0; i < CTL_LEN && i < size; i++)
		seed = seed << 8 | data[i];
	const uint8_t *s = size > CTL_LEN ? data + CTL_LEN : data;
	size_t n = size > CTL_LEN ? size - CTL_LEN : 0;

	/* kept from one input to the next, as a connection's buffer is from one
	 * read to the next (and large allocations are slow under ASan) */
	static struct frame_buf whole, split, out_whole, out_split;
	if (!whole.data && (frame_buf_init(&whole, CLIENT_RBUF) < 0 || frame_buf_init(&split, CLIENT_RBUF) < 0 ||
			    frame_buf_init(&out_whole, 512) < 0 || frame_buf_init(&out_split, 512) < 0))
		abort();
	whole.start = whole.len = split.start = split.len = out_whole.len = out_split.len = 0;
	size_t count_whole = 0, count_split = 0;
	size_t off = 0;
	while (off < n) /* all at once: one read as large as the stream */
		off += fz_read(&whole, n - off, s + off, n - off);
	drain(&whole, &out_whole, &count_whole);
	read_split(s, n, seed, &split, &out_split, &count_split);

	CHECK(count_whole == count_split);
	CHECK(out_whole.len == out_split.len && memcmp(out_whole.data, out_split.data, out_whole.len) == 0);
	/* the messages, framed again, are the stream up to its last whole frame */
	CHECK(out_whole.len <= n && memcmp(out_whole.data, s, out_whole.len) == 0);
	CHECK(frame_pending(&whole) == n - out_whole.len && frame_pending(&split) == n - out_whole.len);
	CHECK(frame_pending(&whole) < 2 || frame_pending(&whole) < 2 + (size_t)msg_get16(s + out_whole.len));
	check_messages(&out_whole);
	return 0;
}
