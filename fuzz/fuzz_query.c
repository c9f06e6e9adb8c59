/* fuzz_query.c -- a client message through the checks and a circuit's
 * rewrite (fuzz/README.md). The invariant: whatever a client sends, what a
 * circuit writes is exactly one frame holding one valid query with the
 * client's question and our upstream ID, and undoing the rewrite on the
 * upstream's answer gives the client's message back.
 *
 * Input: 6 control bytes, then the client message (cut at 65,535 bytes, as
 * the frontends' reads are):
 *   [0] bit 0 keepalive, bit 1 padding to 128, bit 2 the upstream answers
 *       the keepalive with a timeout, bit 3 it pads its answer, bit 4 its
 *       padding comes before its keepalive, bit 5 it pads unasked
 *   [1..2] upstream ID   [3..4] upstream's timeout   [5] its padding length */
#include "circuit/rewrite.h"
#include "fuzz.h"

#define CTL_LEN 6
#define REPLY_CAP (MSG_HDR + KNOT_DNAME_MAXLEN + 4 + 11) /* core/query.c query_fail's buffer */

struct upstream_plan {
	bool keepalive;   /* answer our keepalive with a timeout */
	bool pad;         /* pad the answer when we padded the query */
	bool pad_first;   /* padding before keepalive in its OPT */
	bool pad_unasked; /* pad even when we did not */
	uint16_t timeout; /* keepalive timeout, units of 100 ms */
	uint8_t pad_len;  /* padding option length */
};

/* A FORMERR/NOTIMP/REFUSED reply as core/query.c query_fail builds it, from
 * what frontend_query keeps of a rejected message. */
static void check_error_reply(const uint8_t *msg, size_t len, const struct msg_info *mi, enum msg_verdict v)
{
	int rcode = v == MSG_FORMERR ? KNOT_RCODE_FORMERR : v == MSG_NOTIMP ? KNOT_RCODE_NOTIMPL : KNOT_RCODE_REFUSED;
	size_t keep = len < MSG_HDR + 260 ? len : MSG_HDR + 260; /* frontend/frontend.c */
	uint8_t *q = fz_dup(msg, keep, 0);
	uint8_t *out = fz_dup(NULL, 0, REPLY_CAP);
	size_t n = msg_error_reply(q, keep, mi, rcode, out, REPLY_CAP);
	CHECK(n >= MSG_HDR && n <= REPLY_CAP);
	struct msg_info ri;
	CHECK(msg_scan(out, n, &ri) == 0 && ri.end == n);
	CHECK(knot_wire_get_qr(out) && knot_wire_get_id(out) == knot_wire_get_id(msg));
	CHECK(knot_wire_get_rcode(out) == rcode);
	CHECK(knot_wire_get_qdcount(out) == (mi->has_question ? 1 : 0));
	if (mi->has_question)
		CHECK(memcmp(out + MSG_HDR, msg + MSG_HDR, mi->question_end - MSG_HDR) == 0);
	CHECK(fz_knot_parse(out, n, NULL) == KNOT_EOK);
	free(out);
	free(q);
}

/* Append option code with a body of len zero bytes (value in the first two
 * when len == 2) to the OPT that ends the message, if it still fits. */
static size_t put_option(uint8_t *m, size_t len, size_t opt_off, uint16_t code, uint16_t olen, uint16_t value)
{
	if (len + 4 + olen > MSG_MAX)
		return len;
	len = msg_append_option(m, len, opt_off, code, olen);
	if (olen == 2)
		msg_put16(m + len - 2, value);
	return len;
}

/* What an upstream answers to the query m: its question and OPT echoed (QR
 * set), our keepalive and padding replaced by its own (RFC 7828 3.3.2: a
 * timeout; RFC 7830: padding of its choice). Written to ans (room for mlen +
 * 8 + 4 + 255); returns its length, 0 when there is no such answer. */
static size_t upstream_answer(uint8_t *ans, const uint8_t *m, size_t mlen, unsigned added, const struct upstream_plan *p,
			      bool *ka_put)
{
	*ka_put = false;
	memcpy(ans, m, mlen);
	knot_wire_set_qr(ans);
	struct msg_info ai;
	if (msg_scan(ans, mlen, &ai) < 0)
		return 0; /* a record named by a pointer to the flags (QR now set): no upstream echoes that */
	size_t len = mlen;
	if (!ai.opt_off || ai.opt_off + ai.opt_len != len)
		return len; /* no OPT, or one a TSIG follows: nothing to answer in it */
	size_t at;
	while ((at = msg_find_option(ans, ai.opt_off, ai.opt_len, MSG_OPT_TCP_KEEPALIVE)) ||
	       (at = msg_find_option(ans, ai.opt_off, ai.opt_len, MSG_OPT_PADDING))) {
		size_t olen = 4 + (size_t)msg_get16(ans + at + 2);
		len = msg_remove_option(ans, len, ai.opt_off, at);
		ai.opt_len = (uint16_t)(ai.opt_len - olen);
	}
	bool ka = p->keepalive && (added & REWRITE_KEEPALIVE);
	bool pad = (p->pad && (added & REWRITE_PADDING)) || p->pad_unasked;
	if (pad && p->pad_first)
		len = put_option(ans, len, ai.opt_off, MSG_OPT_PADDING, p->pad_len, 0);
	if (ka) {
		size_t before = len;
		len = put_option(ans, len, ai.opt_off, MSG_OPT_TCP_KEEPALIVE, 2, p->timeout);
		*ka_put = len != before;
	}
	if (pad && !p->pad_first)
		len = put_option(ans, len, ai.opt_off, MSG_OPT_PADDING, p->pad_len, 0);
	return len;
}

/* Every record of a is in b, in the same place and with the same meaning
 * (names decompressed), but for the OPT, which the rewrite may edit or add:
 * a compression pointer into bytes the rewrite changes would show here. */
static bool same_records(const knot_pkt_t *a, const knot_pkt_t *b)
{
	for (int sec = KNOT_ANSWER; sec <= KNOT_ADDITIONAL; sec++) {
		const knot_pktsection_t *x = knot_pkt_section(a, (knot_section_t)sec);
		const knot_pktsection_t *y = knot_pkt_section(b, (knot_section_t)sec);
		uint16_t i = 0, j = 0;
		for (;; i++, j++) {
			while (i < x->count && knot_pkt_rr(x, i)->type == KNOT_RRTYPE_OPT)
				i++;
			while (j < y->count && knot_pkt_rr(y, j)->type == KNOT_RRTYPE_OPT)
				j++;
			if (i >= x->count || j >= y->count)
				break;
			if (!knot_rrset_equal(knot_pkt_rr(x, i), knot_pkt_rr(y, j), true))
				return false;
		}
		if (i < x->count || j < y->count)
			return false;
	}
	return true;
}

/* The frame a circuit writes for the normalized query q: one frame, one
 * valid query, the client's question, our ID; what was added is there. */
static void check_frame(const uint8_t *out, size_t n, const uint8_t *q, size_t qlen, const struct msg_info *qi,
			const struct rewrite_opts *o, unsigned added)
{
	CHECK(n >= 2 + MSG_HDR && n <= 2 + qlen + REWRITE_GROWTH);
	size_t mlen = n - 2;
	CHECK(mlen <= MSG_MAX && msg_get16(out) == mlen);
	const uint8_t *m = out + 2;
	knot_pkt_t *pkt = NULL;
	CHECK(fz_knot_parse(m, mlen, &pkt) == KNOT_EOK); /* KNOT_ETRAIL would be a second message */
	CHECK(!knot_wire_get_qr(m) && knot_wire_get_opcode(m) == KNOT_OPCODE_QUERY && knot_wire_get_qdcount(m) == 1);
	CHECK(knot_wire_get_id(m) == o->id);
	CHECK(knot_pkt_wire_qname(pkt) && knot_dname_size(knot_pkt_wire_qname(pkt)) == qi->qname_len);
	CHECK(memcmp(knot_pkt_wire_qname(pkt), q + MSG_HDR, qi->qname_len) == 0); /* as the client spelt it */
	CHECK(knot_pkt_qtype(pkt) == qi->qtype && knot_pkt_qclass(pkt) == qi->qclass);
	knot_pkt_t *client = NULL;
	CHECK(fz_knot_parse(q, qlen, &client) == KNOT_EOK);
	CHECK(same_records(client, pkt));
	fz_knot_free(client);
	fz_knot_free(pkt);
	CHECK(memcmp(m + 2, q + 2, 2) == 0); /* flags untouched */
	CHECK(!(added & ~(unsigned)(REWRITE_KEEPALIVE | REWRITE_OPT | REWRITE_PADDING)));
	CHECK(o->keepalive || !(added & REWRITE_KEEPALIVE));
	CHECK(o->pad_block || !(added & (REWRITE_OPT | REWRITE_PADDING)));
	CHECK(knot_wire_get_arcount(m) == knot_wire_get_arcount(q) + ((added & REWRITE_OPT) ? 1 : 0));
	/* what goes upstream passes our own checks, too */
	struct msg_info mi;
	CHECK(msg_parse_query(m, mlen, &mi) == MSG_OK && mi.end == mlen);
	if (added & REWRITE_PADDING)
		CHECK(mlen % o->pad_block == 0);
	if (added & REWRITE_KEEPALIVE)
		CHECK(fz_has_option(m, mi.opt_off, mi.opt_len, MSG_OPT_TCP_KEEPALIVE));
	/* a change is left out only when the message cannot grow by it */
	bool opt_last = qi->opt_off && (size_t)qi->opt_off + qi->opt_len == qlen;
	if (o->keepalive && (opt_last || (added & REWRITE_OPT)) && !(added & REWRITE_KEEPALIVE))
		CHECK(qlen + ((added & REWRITE_OPT) ? 11 : 0) + 4 > MSG_MAX);
}

/* The answer to the rewritten query m, undone by rewrite_answer, is the
 * normalized query q again (with QR=1 and our ID): nothing of ours or of the
 * upstream's hop-by-hop options is left, and nothing of the client's lost. */
static void check_answer(const uint8_t *m, size_t mlen, const uint8_t *q, size_t qlen, unsigned added,
			 const struct upstream_plan *p)
{
	uint8_t *tmp = fz_dup(NULL, 0, mlen + 8 + 4 + 255);
	bool ka_put;
	size_t alen = upstream_answer(tmp, m, mlen, added, p, &ka_put);
	if (alen == 0) {
		free(tmp);
		return;
	}
	uint8_t *ans = fz_dup(tmp, alen, 0);
	free(tmp);
	uint32_t ka_ms = 1;
	size_t r = rewrite_answer(ans, alen, added, &ka_ms);
	CHECK(r <= alen);
	struct msg_info ai;
	CHECK(msg_scan(ans, r, &ai) == 0 && ai.end == r);
	CHECK(ka_ms == (ka_put ? (uint32_t)p->timeout * 100 : 0));
	if (ai.opt_off && (size_t)ai.opt_off + ai.opt_len == ai.end) { /* (one a TSIG follows stays as signed) */
		if (added & REWRITE_KEEPALIVE)
			CHECK(!fz_has_option(ans, ai.opt_off, ai.opt_len, MSG_OPT_TCP_KEEPALIVE));
		CHECK(!fz_has_option(ans, ai.opt_off, ai.opt_len, MSG_OPT_PADDING));
	}
	if (added & REWRITE_OPT)
		CHECK(ai.opt_off == 0);
	CHECK(r == qlen);
	CHECK(knot_wire_get_id(ans) == knot_wire_get_id(m) && knot_wire_get_qr(ans));
	CHECK(ans[2] == (q[2] | 0x80) && ans[3] == q[3]);
	CHECK(memcmp(ans + 4, q + 4, qlen - 4) == 0);
	free(ans);
}

static void check_forwarded(const uint8_t *msg, const struct msg_info *mi, const struct rewrite_opts *o,
			    const struct upstream_plan *p)
{
	/* our fast path accepts nothing libknot rejects -- but for one quirk of
	 * libknot's: an OPT with UDP size 1 (CLASS IN) and no options, which it
	 * takes for an IN record of a type that needs RDATA. That size goes out
	 * as 512 (msg_normalize_query, checked below). */
	if (fz_knot_parse(msg, mi->end, NULL) != KNOT_EOK) {
		CHECK(mi->opt_off && mi->udp_size == 1 && mi->opt_len == 11);
		uint8_t *raised = fz_dup(msg, mi->end, 0);
		msg_put16(raised + mi->opt_off + 3, MSG_UDP_MIN);
		CHECK(fz_knot_parse(raised, mi->end, NULL) == KNOT_EOK);
		free(raised);
	}
	/* frontend/frontend.c: the message up to its last record, normalized */
	uint8_t *q = fz_dup(msg, mi->end, 0);
	struct msg_info qi = *mi;
	size_t qlen = msg_normalize_query(q, mi->end, &qi);
	CHECK(qlen <= mi->end && qlen >= mi->question_end && qi.end == qlen);
	struct msg_info ni;
	CHECK(msg_parse_query(q, qlen, &ni) == MSG_OK && ni.end == qlen);
	CHECK(fz_knot_parse(q, qlen, NULL) == KNOT_EOK);
	CHECK(ni.opt_off == qi.opt_off && ni.opt_len == qi.opt_len && ni.question_end == qi.question_end);
	if (qi.opt_off && (size_t)qi.opt_off + qi.opt_len == qlen) {
		CHECK(!fz_has_option(q, qi.opt_off, qi.opt_len, MSG_OPT_TCP_KEEPALIVE));
		CHECK(!fz_has_option(q, qi.opt_off, qi.opt_len, MSG_OPT_PADDING));
		CHECK(msg_get16(q + qi.opt_off + 3) >= MSG_UDP_MIN);
	}
	/* circuit/circuit.c append_query */
	uint8_t *out = fz_dup(NULL, 0, 2 + qlen + REWRITE_GROWTH);
	unsigned added = ~0u;
	size_t n = rewrite_query(out, q, qlen, &qi, o, &added);
	check_frame(out, n, q, qlen, &qi, o, added);
	check_answer(out + 2, n - 2, q, qlen, added, p);
	free(out);
	free(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl c = {data, size < CTL_LEN ? size : CTL_LEN};
	uint8_t flags = ctl_u8(&c);
	struct rewrite_opts o = {
		.keepalive = (flags & 1) != 0,
		.pad_block = (flags & 2) ? REWRITE_PAD_BLOCK : 0,
	};
	o.id = ctl_u16(&c);
	struct upstream_plan p = {
		.keepalive = (flags & 4) != 0,
		.pad = (flags & 8) != 0,
		.pad_first = (flags & 16) != 0,
		.pad_unasked = (flags & 32) != 0,
	};
	p.timeout = ctl_u16(&c);
	p.pad_len = ctl_u8(&c);
	const uint8_t *in = size > CTL_LEN ? data + CTL_LEN : data;
	size_t len = size > CTL_LEN ? size - CTL_LEN : 0;
	if (len > MSG_MAX)
		len = MSG_MAX; /* a datagram or a frame is never longer */
	uint8_t *msg = fz_dup(in, len, 0);
	struct msg_info mi;
	enum msg_verdict v = msg_parse_query(msg, len, &mi);
	CHECK(memcmp(msg, in, len) == 0); /* the check only reads (the read buffer is shared) */
	CHECK(v == MSG_OK || !mi.has_question || mi.question_end <= len);
	if (v == MSG_OK)
		check_forwarded(msg, &mi, &o, &p);
	else if (v == MSG_FORMERR || v == MSG_NOTIMP || v == MSG_REFUSED)
		check_error_reply(msg, len, &mi, v);
	else
		CHECK(v == MSG_DROP_SHORT || v == MSG_DROP_QR);
	free(msg);
	return 0;
}
