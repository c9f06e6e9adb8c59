/* fuzz_udp_answer.c -- the UDP answer path (fuzz/README.md): an upstream's
 * answer cut for a client's size with msg_truncate, and error replies built
 * with msg_error_reply from any message.
 *
 * msg_truncate(answer, len, max), max 512..65535: 0, or at most max bytes
 * that msg_scan accepts, TC=1, the header and question as they were, the OPT
 * kept when it fits; 0 only when the answer does not parse or even its
 * question does not fit. msg_error_reply never writes past its buffer
 * (allocated to the byte) and always writes a message that parses.
 *
 * Input: [0..1] max, [2] reply buffer size, [3] rcode, then the message. */
#include "fuzz.h"

#define CTL_LEN 4

static void check_truncate(const uint8_t *msg, size_t len, size_t max)
{
	struct msg_info before;
	bool parses = msg_scan(msg, len, &before) == 0 && before.has_question;
	uint8_t *w = fz_dup(msg, len, 0);
	size_t r = msg_truncate(w, len, max);
	if (r == 0) {
		CHECK(!parses || before.question_end > max);
		free(w);
		return;
	}
	CHECK(parses && r <= max && r <= len);
	CHECK(knot_wire_get_tc(w));
	CHECK(knot_wire_get_id(w) == knot_wire_get_id(msg));
	CHECK((w[2] | KNOT_WIRE_TC_MASK) == (msg[2] | KNOT_WIRE_TC_MASK) && w[3] == msg[3]);
	CHECK(knot_wire_get_qdcount(w) == 1 && knot_wire_get_ancount(w) == 0 && knot_wire_get_nscount(w) == 0);
	CHECK(memcmp(w + MSG_HDR, msg + MSG_HDR, before.question_end - MSG_HDR) == 0);
	struct msg_info after;
	CHECK(msg_scan(w, r, &after) == 0 && after.end == r);
	if (before.opt_off && before.question_end + before.opt_len <= max) {
		CHECK(after.opt_off == before.question_end && after.opt_len == before.opt_len);
		CHECK(memcmp(w + after.opt_off, msg + before.opt_off, before.opt_len) == 0);
		CHECK(knot_wire_get_arcount(w) == 1);
	} else {
		CHECK(after.opt_off == 0 && knot_wire_get_arcount(w) == 0 && r == before.question_end);
	}
	/* what libknot takes whole, it takes cut as well */
	if (fz_knot_parse(msg, before.end, NULL) == KNOT_EOK)
		CHECK(fz_knot_parse(w, r, NULL) == KNOT_EOK);
	free(w);
}

/* A reply written into a buffer of exactly cap bytes (ASan: any byte past
 * it is a fault); mi may be NULL. */
static void check_reply(const uint8_t *msg, size_t len, const struct msg_info *mi, int rcode, size_t cap)
{
	uint8_t *out = fz_dup(NULL, 0, cap);
	size_t n = msg_error_reply(msg, len, mi, rcode, out, cap);
	CHECK(n <= cap);
	if (len < MSG_HDR) {
		CHECK(n == 0);
	} else {
		struct msg_info ri;
		CHECK(n >= MSG_HDR && msg_scan(out, n, &ri) == 0 && ri.end == n);
		CHECK(knot_wire_get_qr(out) && knot_wire_get_id(out) == knot_wire_get_id(msg));
		CHECK(knot_wire_get_rcode(out) == (rcode & 0xf));
		if (ri.has_question)
			CHECK(memcmp(out + MSG_HDR, msg + MSG_HDR, ri.question_end - MSG_HDR) == 0);
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl c = {data, size < CTL_LEN ? size : CTL_LEN};
	size_t max = MSG_UDP_MIN + ctl_u16(&c) % (MSG_MAX - MSG_UDP_MIN + 1);
	size_t cap = MSG_HDR + ctl_u8(&c) * 2; /* 12..522: around query_fail's 282 */
	int rcode = ctl_u8(&c);
	const uint8_t *in = size > CTL_LEN ? data + CTL_LEN : data;
	size_t len = size > CTL_LEN ? size - CTL_LEN : 0;
	if (len > MSG_MAX)
		len = MSG_MAX;
	uint8_t *msg = fz_dup(in, len, 0);

	check_truncate(msg, len, max);

	struct msg_info mi;
	(void)msg_parse_query(msg, len, &mi); /* any verdict: query_fail answers every one */
	check_reply(msg, len, &mi, rcode, cap);
	check_reply(msg, len, NULL, rcode, cap);
	if (len >= MSG_HDR) {
		(void)msg_scan(msg, len, &mi); /* facts as far as the scan got */
		check_reply(msg, len, &mi, rcode, cap);
	}
	free(msg);
	return 0;
}
