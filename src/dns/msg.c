/* msg.c -- DNS message checks and edits for the forwarding path (see msg.h). */
#include <string.h>
#include <libknot/libknot.h>
#include "core/err.h"
#include "dns/msg.h"

#define OPT_TYPE 41

/* Skip one resource record starting at off; returns the offset after it or -1.
 * Reports an OPT record through *mi (only one is allowed, RFC 6891 6.1.1). */
static int skip_rr(const uint8_t *wire, size_t len, size_t off, bool in_additional, struct msg_info *mi)
{
	int nl = knot_dname_wire_check(wire + off, wire + len, wire);
	if (nl <= 0)
		return -1;
	size_t p = off + (size_t)nl;
	if (p + 10 > len)
		return -1;
	uint16_t type = msg_get16(wire + p);
	uint16_t rdlen = msg_get16(wire + p + 8);
	size_t end = p + 10 + rdlen;
	if (end > len)
		return -1;
	if (type == OPT_TYPE) {
		if (!in_additional || mi->opt_off || nl != 1 || wire[off] != 0)
			return -1;
		mi->opt_off = (uint16_t)off;
		mi->opt_len = (uint16_t)(end - off);
		mi->udp_size = msg_get16(wire + p + 2);
		mi->do_bit = (wire[p + 6] & 0x80) != 0;
	}
	return (int)end;
}

/* Parse the single question at MSG_HDR. */
static int parse_question(const uint8_t *wire, size_t len, struct msg_info *mi)
{
	int nl = knot_dname_wire_check(wire + MSG_HDR, wire + len, NULL);
	if (nl <= 0)
		return ERR_MALFORMED;
	size_t p = MSG_HDR + (size_t)nl;
	if (p + 4 > len)
		return ERR_MALFORMED;
	mi->qname_len = (uint16_t)nl;
	mi->qtype = msg_get16(wire + p);
	mi->qclass = msg_get16(wire + p + 2);
	mi->question_end = (uint16_t)(p + 4);
	mi->has_question = true;
	return 0;
}

int msg_scan(const uint8_t *wire, size_t len, struct msg_info *mi)
{
	if (len < MSG_HDR || len > MSG_MAX)
		return ERR_MALFORMED;
	memset(mi, 0, sizeof(*mi));
	size_t off = MSG_HDR;
	uint16_t qd = knot_wire_get_qdcount(wire);
	if (qd == 1) {
		if (parse_question(wire, len, mi) < 0)
			return ERR_MALFORMED;
		off = mi->question_end;
	} else if (qd != 0) {
		return ERR_MALFORMED;
	}
	uint32_t an_ns = (uint32_t)knot_wire_get_ancount(wire) + knot_wire_get_nscount(wire);
	uint32_t total = an_ns + knot_wire_get_arcount(wire);
	for (uint32_t i = 0; i < total; i++) {
		int next = skip_rr(wire, len, off, i >= an_ns, mi);
		if (next < 0)
			return ERR_MALFORMED;
		off = (size_t)next;
	}
	mi->end = (uint16_t)off;
	return 0;
}

/* The question alone, for the error reply to a query that fails later checks. */
static void question_only(const uint8_t *wire, size_t len, struct msg_info *mi)
{
	memset(mi, 0, sizeof(*mi));
	if (knot_wire_get_qdcount(wire) == 1)
		(void)parse_question(wire, len, mi);
}

enum msg_verdict msg_parse_query(const uint8_t *wire, size_t len, struct msg_info *mi)
{
	memset(mi, 0, sizeof(*mi));
	if (len < MSG_HDR)
		return MSG_DROP_SHORT;
	if (knot_wire_get_qr(wire))
		return MSG_DROP_QR;
	if (knot_wire_get_opcode(wire) != KNOT_OPCODE_QUERY) {
		if (msg_scan(wire, len, mi) < 0) /* its OPT too, for the reply (RFC 6891 7) */
			question_only(wire, len, mi);
		return MSG_NOTIMP;
	}
	/* one walk over the message on the common path: msg_scan parses the question */
	if (knot_wire_get_qdcount(wire) != 1 || len > MSG_MAX || msg_scan(wire, len, mi) < 0) {
		question_only(wire, len, mi);
		return MSG_FORMERR;
	}
	return MSG_OK;
}

bool msg_answer_matches(const uint8_t *ans, size_t ans_len, const uint8_t *q, const struct msg_info *qi)
{
	if (ans_len < qi->question_end || !knot_wire_get_qr(ans) || knot_wire_get_qdcount(ans) != 1)
		return false;
	/* The answer's question must be the very same name (RFC 5452 9.1 asks for the
	 * question to match). Usually the bytes are identical (the query's name is
	 * valid, so then the answer's is too); else compare labels case-insensitively. */
	if (memcmp(ans + MSG_HDR, q + MSG_HDR, (size_t)qi->qname_len + 4) == 0)
		return true;
	int nl = knot_dname_wire_check(ans + MSG_HDR, ans + ans_len, NULL);
	if (nl != qi->qname_len)
		return false;
	if (!knot_dname_is_case_equal(ans + MSG_HDR, q + MSG_HDR))
		return false;
	return memcmp(ans + MSG_HDR + nl, q + MSG_HDR + nl, 4) == 0;
}

size_t msg_truncate(uint8_t *wire, size_t len, size_t max)
{
	struct msg_info mi;
	if (msg_scan(wire, len, &mi) < 0 || !mi.has_question)
		return 0;
	size_t out = mi.question_end;
	bool keep_opt = mi.opt_off && out + mi.opt_len <= max;
	if (out > max)
		return 0;
	if (keep_opt) {
		memmove(wire + out, wire + mi.opt_off, mi.opt_len);
		out += mi.opt_len;
	}
	knot_wire_set_tc(wire);
	knot_wire_set_ancount(wire, 0);
	knot_wire_set_nscount(wire, 0);
	knot_wire_set_arcount(wire, keep_opt ? 1 : 0);
	return out;
}

size_t msg_error_reply(const uint8_t *q, size_t qlen, const struct msg_info *mi, int rcode,
		       uint8_t *out, size_t out_cap)
{
	if (qlen < MSG_HDR || out_cap < MSG_HDR)
		return 0;
	memset(out, 0, MSG_HDR);
	knot_wire_set_id(out, knot_wire_get_id(q));
	/* keep opcode, RD and CD from the query (RFC 6895 2) */
	out[2] = (uint8_t)((q[2] & 0x79) | 0x80); /* QR | opcode | RD */
	out[3] = (uint8_t)((q[3] & 0x10) | (rcode & 0x0f)); /* CD | RCODE */
	size_t n = MSG_HDR;
	if (mi && mi->has_question && mi->question_end <= qlen && mi->question_end <= out_cap) {
		memcpy(out + MSG_HDR, q + MSG_HDR, mi->question_end - MSG_HDR);
		knot_wire_set_qdcount(out, 1);
		n = mi->question_end;
	}
	if (mi && mi->opt_off && n + 11 <= out_cap) {
		/* RFC 6891 7: a responder that understands EDNS includes an OPT record */
		static const uint8_t opt[11] = {0, 0, OPT_TYPE, 0x04, 0xd0, 0, 0, 0, 0, 0, 0}; /* 1232 bytes */
		memcpy(out + n, opt, sizeof(opt));
		if (mi->do_bit)
			out[n + 7] = 0x80; /* RFC 3225 3: the DO bit is copied into the response */
		n += sizeof(opt);
		knot_wire_set_arcount(out, 1);
	}
	return n;
}

size_t msg_add_opt(uint8_t *wire, size_t len, uint16_t udp_size)
{
	uint8_t *p = wire + len;
	memset(p, 0, 11);
	p[2] = OPT_TYPE;
	msg_put16(p + 3, udp_size);
	knot_wire_set_arcount(wire, (uint16_t)(knot_wire_get_arcount(wire) + 1));
	return len + 11;
}

size_t msg_append_option(uint8_t *wire, size_t len, size_t opt_off, uint16_t code, uint16_t optlen)
{
	uint8_t *p = wire + len;
	msg_put16(p, code);
	msg_put16(p + 2, optlen);
	memset(p + 4, 0, optlen);
	msg_put16(wire + opt_off + 9, (uint16_t)(msg_get16(wire + opt_off + 9) + 4 + optlen));
	return len + 4 + optlen;
}

size_t msg_find_option(const uint8_t *wire, size_t opt_off, size_t opt_len, uint16_t code)
{
	size_t p = opt_off + 11, end = opt_off + opt_len;
	while (p + 4 <= end) {
		uint16_t c = msg_get16(wire + p), l = msg_get16(wire + p + 2);
		if (p + 4 + l > end)
			return 0;
		if (c == code)
			return p;
		p += 4 + (size_t)l;
	}
	return 0;
}

size_t msg_remove_option(uint8_t *wire, size_t len, size_t opt_off, size_t option_off)
{
	size_t olen = 4 + (size_t)msg_get16(wire + option_off + 2);
	memmove(wire + option_off, wire + option_off + olen, len - option_off - olen);
	msg_put16(wire + opt_off + 9, (uint16_t)(msg_get16(wire + opt_off + 9) - olen));
	return len - olen;
}
