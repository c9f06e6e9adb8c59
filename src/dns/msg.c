/* msg.c -- DNS message checks and edits for the forwarding path (see msg.h). */
#include <endian.h>
#include <stdlib.h>
#include <string.h>
#include <libknot/libknot.h>
#include "core/err.h"
#include "dns/msg.h"

#define OPT_TYPE 41

/* RFC 1035 4.1.4: a pointer names a prior occurrence of a name, so what is
 * read through it ends before the pointer. libknot's check lets the labels
 * read from the target run on forward, past the pointer -- into records
 * dnsmux edits (the OPT rewrite_answer removes), and then the name it
 * forwarded no longer parses. The name at off passed knot_dname_wire_check
 * (labels, pointers backward, within the message). */
static bool reads_only_prior_bytes(const uint8_t *wire, size_t off)
{
	for (size_t limit = SIZE_MAX;;) {
		uint8_t b = wire[off];
		if (b >= 0xc0) {
			if (off + 2 > limit)
				return false;
			limit = off;
			off = (size_t)(b & 0x3f) << 8 | wire[off + 1];
			continue;
		}
		if (off + 1u + b > limit)
			return false;
		if (b == 0)
			return true;
		off += 1u + b;
	}
}

/* Skip one resource record starting at off; returns the offset after it or -1.
 * Reports an OPT record through *mi (only one is allowed, RFC 6891 6.1.1). */
static int skip_rr(const uint8_t *wire, size_t len, size_t off, bool in_additional, struct msg_info *mi)
{
	int nl;
	/* the two owners nearly every record has: the root (an OPT), and a
	 * pointer to the question's name, which parse_question checked -- no
	 * need to walk its labels again for each record */
	if (off < len && wire[off] == 0)
		nl = 1;
	else if (mi->has_question && off + 2 <= len && wire[off] == 0xc0 && wire[off + 1] == MSG_HDR)
		nl = 2;
	else if ((nl = knot_dname_wire_check(wire + off, wire + len, wire)) > 0 && !reads_only_prior_bytes(wire, off))
		return -1;
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

/* The length of the uncompressed name at p (what knot_dname_wire_check
 * with no packet answers, in a loop of its own: this is every query's
 * first walk), or -1: labels of 1-63 bytes, the 0 label within end, at
 * most KNOT_DNAME_MAXLEN bytes, no compression pointer and no other
 * label type. */
static inline int plain_name_len(const uint8_t *p, const uint8_t *end)
{
	size_t avail = (size_t)(end - p), off = 0;
	if (avail > KNOT_DNAME_MAXLEN)
		avail = KNOT_DNAME_MAXLEN; /* (the 0 label must fall within the most a name may have) */
	while (off < avail) {
		uint8_t l = p[off];
		if (l == 0)
			return (int)off + 1;
		if (l > KNOT_DNAME_MAXLABELLEN)
			return -1;
		off += 1u + l;
	}
	return -1;
}

/* Bytes 4-11 of the header (the four counts) as one big-endian number. */
static inline uint64_t load64_be(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return be64toh(v);
}

/* Parse the single question at MSG_HDR. */
static int parse_question(const uint8_t *wire, size_t len, struct msg_info *mi)
{
	int nl = plain_name_len(wire + MSG_HDR, wire + len);
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

/* The records after the header, given its counts (read before the walk:
 * msg_scan_answer hides the header during it); with a question known to be
 * the same as a checked one (q), from its end. */
static int scan_records(const uint8_t *wire, size_t len, uint16_t qd, uint32_t an_ns, uint32_t total,
			const struct msg_info *q, struct msg_info *mi)
{
	memset(mi, 0, sizeof(*mi));
	size_t off = MSG_HDR;
	if (qd == 1 && q) {
		mi->qname_len = q->qname_len;
		mi->qtype = q->qtype;
		mi->qclass = q->qclass;
		mi->question_end = q->question_end;
		mi->has_question = true;
		off = q->question_end;
	} else if (qd == 1) {
		if (parse_question(wire, len, mi) < 0)
			return ERR_MALFORMED;
		off = mi->question_end;
	} else if (qd != 0) {
		return ERR_MALFORMED;
	}
	for (uint32_t i = 0; i < total; i++) {
		int next = skip_rr(wire, len, off, i >= an_ns, mi);
		if (next < 0)
			return ERR_MALFORMED;
		off = (size_t)next;
	}
	mi->end = (uint16_t)off;
	return 0;
}

static void counts(const uint8_t *wire, uint16_t *qd, uint32_t *an_ns, uint32_t *total)
{
	*qd = knot_wire_get_qdcount(wire);
	*an_ns = (uint32_t)knot_wire_get_ancount(wire) + knot_wire_get_nscount(wire);
	*total = *an_ns + knot_wire_get_arcount(wire);
}

int msg_scan(const uint8_t *wire, size_t len, struct msg_info *mi)
{
	if (len < MSG_HDR || len > MSG_MAX)
		return ERR_MALFORMED;
	uint16_t qd;
	uint32_t an_ns, total;
	counts(wire, &qd, &an_ns, &total);
	return scan_records(wire, len, qd, an_ns, total, NULL, mi);
}

int msg_scan_answer(uint8_t *wire, size_t len, const struct msg_info *q, struct msg_info *mi)
{
	if (len < MSG_HDR || len > MSG_MAX)
		return ERR_MALFORMED;
	uint16_t qd;
	uint32_t an_ns, total;
	counts(wire, &qd, &an_ns, &total);
	/* RFC 1035 4.1.4: a pointer names an earlier name. One into the header
	 * would change meaning when dnsmux writes the client's ID (or TC, or the
	 * counts) there: with the header filled with 0xff it reads as a bad label. */
	uint8_t hdr[MSG_HDR];
	memcpy(hdr, wire, MSG_HDR);
	memset(wire, 0xff, MSG_HDR);
	int r = scan_records(wire, len, qd, an_ns, total, qd == 1 ? q : NULL, mi);
	memcpy(wire, hdr, MSG_HDR);
	return r;
}

void msg_answer_facts(const uint8_t *wire, size_t len, struct msg_facts *f)
{
	memset(f, 0, sizeof(*f));
	f->min_ttl = UINT32_MAX;
	if (len < MSG_HDR)
		return;
	uint16_t qd;
	uint32_t an_ns, total;
	counts(wire, &qd, &an_ns, &total);
	size_t off = MSG_HDR;
	for (unsigned i = 0; i < qd; i++)
		if (!msg_skip_name(wire, len, &off) || (off += 4) > len)
			return;
	for (uint32_t i = 0; i < total; i++) {
		size_t p = off;
		if (!msg_skip_name(wire, len, &p) || p + 10 > len)
			return;
		uint16_t type = msg_get16(wire + p), rdlen = msg_get16(wire + p + 8);
		size_t end = p + 10 + rdlen;
		if (end > len)
			return;
		if (type == OPT_TYPE) {
			f->opt_off = (uint16_t)off;
			f->opt_len = (uint16_t)(end - off);
		} else {
			uint32_t ttl = (uint32_t)msg_get16(wire + p + 4) << 16 | msg_get16(wire + p + 6);
			if (type == KNOT_RRTYPE_SOA && rdlen >= 20) {
				uint32_t minimum = (uint32_t)msg_get16(wire + end - 4) << 16 | msg_get16(wire + end - 2);
				if (minimum < ttl)
					ttl = minimum;
			}
			if (ttl < f->min_ttl)
				f->min_ttl = ttl;
			f->has_ttl = true;
		}
		off = end;
	}
}

/* The question alone, for the error reply to a query that fails later checks. */
static void question_only(const uint8_t *wire, size_t len, struct msg_info *mi)
{
	memset(mi, 0, sizeof(*mi));
	if (knot_wire_get_qdcount(wire) == 1)
		(void)parse_question(wire, len, mi);
}

/* RFC 7871 6: FAMILY 1 or 2, SOURCE PREFIX-LENGTH within it, SCOPE 0 in a
 * query, exactly ceil(SOURCE/8) address bytes and no bits set past SOURCE. */
static bool ecs_ok(const uint8_t *d, uint16_t l)
{
	if (l < 4)
		return false;
	uint16_t family = msg_get16(d);
	unsigned source = d[2], max = family == 1 ? 32 : family == 2 ? 128 : 0;
	if (max == 0 || source > max || d[3] != 0 || (size_t)l - 4 != (source + 7) / 8)
		return false;
	return source % 8 == 0 || (d[l - 1] & (0xff >> (source % 8))) == 0;
}

/* Options whose syntax an RFC fixes: a server that meets a broken one
 * answers FORMERR, and some then close the connection (see msg.h). */
static bool option_ok(uint16_t code, const uint8_t *d, uint16_t l)
{
	switch (code) {
	case MSG_OPT_ECS: return ecs_ok(d, l);
	case MSG_OPT_EXPIRE: return l == 0;                            /* RFC 7314 2: empty in a query */
	case MSG_OPT_COOKIE: return l == 8 || (l >= 16 && l <= 40);     /* RFC 7873 4 */
	case MSG_OPT_CHAIN: return l > 0 && knot_dname_wire_check(d, d + l, NULL) == (int)l; /* RFC 7901 4 */
	case MSG_OPT_KEY_TAG: return l >= 2 && l % 2 == 0;              /* RFC 8145 4.1 */
	default: return true;
	}
}

/* RFC 6891 6.1.2: the options fill RDATA exactly, each framed by its own
 * length; and each known one is well formed. */
static bool opt_ok(const uint8_t *wire, const struct msg_info *mi)
{
	size_t p = (size_t)mi->opt_off + 11, end = (size_t)mi->opt_off + mi->opt_len;
	while (p < end) {
		if (p + 4 > end)
			return false;
		uint16_t code = msg_get16(wire + p), l = msg_get16(wire + p + 2);
		if (p + 4 + l > end || !option_ok(code, wire + p + 4, l))
			return false;
		p += 4 + (size_t)l;
	}
	return true;
}

/* Records besides the question and the OPT are rare in a query (TSIG,
 * SIG(0), an answer section from odd clients). libknot parses them fully:
 * every RDATA checked against its type's layout, as the servers built on it
 * (knotd) check what they receive. The common shape -- a question and at
 * most an OPT -- is checked by msg_scan and opt_ok alone, which accept
 * nothing that knot_pkt_parse rejects (fuzz/fuzz_query.c holds them to it)
 * but for one quirk of libknot's: it rejects an OPT with UDP size 1 (CLASS
 * IN) and no options, as an IN record of a type that needs RDATA. RFC 6891
 * 6.2.5 makes that size 512, and msg_normalize_query writes 512 before the
 * query goes anywhere.
 *
 * libknot parses a copy, for two reasons. knot_pkt_parse edits the buffer
 * it parses (it strips a TSIG: ARCOUNT - 1), and the client's message must
 * stay as it came. And in the copy the ID is 0xffff: a circuit writes its
 * own ID there, so a name whose compression pointer reads the ID field
 * (RFC 1035 4.1.4 lets a pointer name any earlier offset) would mean
 * something else upstream -- or nothing. Read from the copy, an ID byte is
 * 0xff, a pointer forward, which libknot rejects. The pointers of a message
 * with only a question and an OPT never read the header: the question may
 * not be compressed and the OPT's owner is the root. */
static bool records_ok(const uint8_t *wire, const struct msg_info *mi)
{
	uint32_t records = (uint32_t)knot_wire_get_ancount(wire) + knot_wire_get_nscount(wire) +
			   knot_wire_get_arcount(wire);
	if (records <= (mi->opt_off ? 1u : 0u))
		return true;
	uint8_t *copy = malloc(mi->end);
	if (!copy)
		return false;
	memcpy(copy, wire, mi->end);
	knot_wire_set_id(copy, 0xffff);
	int r = KNOT_ENOMEM;
	knot_pkt_t *pkt = knot_pkt_new(copy, mi->end, NULL);
	if (pkt) {
		r = knot_pkt_parse(pkt, KNOT_PF_KEEPWIRE);
		knot_pkt_free(pkt);
	}
	free(copy);
	return r == KNOT_EOK;
}

/* Which questions are worth an upstream's time (RFC 6895 3.1). */
static enum msg_verdict question_verdict(const struct msg_info *mi)
{
	switch (mi->qclass) {
	case KNOT_CLASS_IN:
	case KNOT_CLASS_CH:
	case 4: /* HS */
	case KNOT_CLASS_ANY: break;
	case 0:
	case KNOT_CLASS_NONE: return MSG_FORMERR; /* NONE only means something in UPDATE (RFC 2136) */
	default: return MSG_REFUSED;               /* a class nobody serves */
	}
	switch (mi->qtype) {
	case 0:
	case KNOT_RRTYPE_OPT:
	case KNOT_RRTYPE_TSIG: return MSG_FORMERR; /* pseudo-records, never a question */
	case KNOT_RRTYPE_AXFR:
	case KNOT_RRTYPE_IXFR:                     /* zone transfers: many messages per query, not for a shared circuit */
	case KNOT_RRTYPE_TKEY: return MSG_REFUSED; /* a key exchange with whom? */
	case KNOT_RRTYPE_ANY: return MSG_OK;
	default: break;
	}
	if (mi->qtype >= 128 && mi->qtype <= 254)
		return MSG_NOTIMP; /* MAILA, MAILB and the unassigned meta-types */
	return MSG_OK;
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
	/* the common shape -- one question and at most one more record (an
	 * OPT) -- walked here, the rest by msg_scan: the same checks */
	if (len <= MSG_MAX && load64_be(wire + 4) <= 0x0001000000000001ull && knot_wire_get_qdcount(wire) == 1) {
		int next = parse_question(wire, len, mi);
		if (next == 0 && knot_wire_get_arcount(wire) == 1)
			next = skip_rr(wire, len, mi->question_end, true, mi);
		if (next < 0) {
			question_only(wire, len, mi);
			return MSG_FORMERR;
		}
		mi->end = (uint16_t)(next ? next : mi->question_end);
	} else if (knot_wire_get_qdcount(wire) != 1 || len > MSG_MAX || msg_scan(wire, len, mi) < 0) {
		question_only(wire, len, mi);
		return MSG_FORMERR;
	}
	/* Forward only what parses completely: an upstream that meets a broken
	 * record may answer FORMERR and close the connection, and with it every
	 * other client's query pipelined behind this one. */
	if ((mi->opt_off && !opt_ok(wire, mi)) || !records_ok(wire, mi))
		return MSG_FORMERR; /* (mi as scanned: the reply has the question, and an OPT if it had one) */
	return question_verdict(mi);
}

size_t msg_normalize_query(uint8_t *wire, size_t len, struct msg_info *mi)
{
	if (!mi->opt_off || (size_t)mi->opt_off + mi->opt_len != len)
		return len; /* no OPT, or one a TSIG follows: the signature covers it as it is */
	/* RFC 6891 6.2.5: a UDP size below 512 is treated as 512 (some servers
	 * close the connection on it) */
	if (msg_get16(wire + mi->opt_off + 3) < MSG_UDP_MIN)
		msg_put16(wire + mi->opt_off + 3, MSG_UDP_MIN);
	/* keepalive (RFC 7828 3) and padding (RFC 7830 3) are for one hop: the
	 * client's were meant for us; a circuit adds its own */
	size_t opt;
	if (mi->opt_len == 11)
		return len; /* no options at all (the common case) */
	while ((opt = msg_find_option(wire, mi->opt_off, mi->opt_len, MSG_OPT_TCP_KEEPALIVE)) ||
	       (opt = msg_find_option(wire, mi->opt_off, mi->opt_len, MSG_OPT_PADDING))) {
		size_t olen = 4 + (size_t)msg_get16(wire + opt + 2);
		len = msg_remove_option(wire, len, mi->opt_off, opt);
		mi->opt_len = (uint16_t)(mi->opt_len - olen);
	}
	mi->end = (uint16_t)len;
	return len;
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
