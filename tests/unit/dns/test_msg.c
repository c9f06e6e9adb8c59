/* test_msg.c -- src/dns/msg.c: client query verdicts and EDNS facts, answer
 * matching, truncation for UDP clients, error replies, EDNS option edits.
 * Well-formed messages come from libknot or the byte builder in test.h;
 * malformed ones are built byte by byte. */
#include "test.h"
#include "core/err.h"
#include "dns/msg.h"

/* Parse a copy in a heap block of exactly len bytes, so that the sanitizer
 * build catches any read past the end of the message. */
static enum msg_verdict parse_len(const uint8_t *w, size_t len, struct msg_info *mi)
{
	uint8_t *copy = malloc(len ? len : 1);
	assert_non_null(copy);
	memcpy(copy, w, len);
	enum msg_verdict v = msg_parse_query(copy, len, mi);
	free(copy);
	return v;
}

static enum msg_verdict parse(const struct pb *p, struct msg_info *mi)
{
	return parse_len(p->b, p->len, mi);
}

static uint16_t flags_of(const uint8_t *w)
{
	return msg_get16(w + 2);
}

/* ---- msg_parse_query: verdicts ------------------------------------------ */

static void short_is_dropped(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	pb_query(&p, 1, "example.com", KNOT_RRTYPE_A, 0, false);
	for (size_t len = 0; len < MSG_HDR; len++)
		assert_int_equal(parse_len(p.b, len, &mi), MSG_DROP_SHORT);
	/* a bare header with QDCOUNT=1 is not short, it is malformed */
	assert_int_equal(parse_len(p.b, MSG_HDR, &mi), MSG_FORMERR);
}

static void qr_is_dropped(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	pb_query(&p, 1, "example.com", KNOT_RRTYPE_A, 1232, false);
	p.b[2] |= 0x80;
	assert_int_equal(parse(&p, &mi), MSG_DROP_QR);
	/* even when the rest is garbage or the opcode is odd */
	pb_hdr(&p, 1, PB_QR | PB_OPCODE(5), 7, 0, 0, 0);
	assert_int_equal(parse(&p, &mi), MSG_DROP_QR);
}

static void other_opcodes_are_notimp(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	const int ops[] = {1, 2, 4, 5, 6, 15}; /* IQUERY STATUS NOTIFY UPDATE DSO, unassigned */
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		pb_hdr(&p, 9, PB_OPCODE(ops[i]), 1, 0, 0, 0);
		pb_question(&p, "example.com", KNOT_RRTYPE_SOA, KNOT_CLASS_IN);
		assert_int_equal(parse(&p, &mi), MSG_NOTIMP);
		/* the question is known, for the NOTIMP reply */
		assert_true(mi.has_question);
		assert_int_equal(mi.qtype, KNOT_RRTYPE_SOA);
		assert_int_equal(mi.question_end, p.len);
	}
	/* an UPDATE carries records after the zone section: still NOTIMP */
	pb_hdr(&p, 9, PB_OPCODE(5), 1, 0, 1, 0);
	pb_question(&p, "example.com", KNOT_RRTYPE_SOA, KNOT_CLASS_IN);
	const uint8_t a[4] = {192, 0, 2, 1};
	pb_rr(&p, "host.example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN, 60, a, 4);
	assert_int_equal(parse(&p, &mi), MSG_NOTIMP);
	/* NOTIFY without a question */
	pb_hdr(&p, 9, PB_OPCODE(4), 0, 0, 0, 0);
	assert_int_equal(parse(&p, &mi), MSG_NOTIMP);
	assert_false(mi.has_question);
}

static void qdcount_must_be_one(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	pb_hdr(&p, 1, PB_RD, 0, 0, 0, 0);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);
	pb_hdr(&p, 1, PB_RD, 0, 0, 0, 1); /* QD=0 with an OPT */
	pb_opt(&p, 1232, false, NULL, 0);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);
	pb_hdr(&p, 1, PB_RD, 2, 0, 0, 0);
	pb_question(&p, "a.example", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_question(&p, "b.example", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);
	assert_false(mi.has_question); /* which one would it be? */
	pb_hdr(&p, 1, PB_RD, 2, 0, 0, 0);
	pb_question(&p, "a.example", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);
	pb_hdr(&p, 1, PB_RD, 0xffff, 0, 0, 0);
	pb_question(&p, "a.example", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);
}

/* ---- msg_parse_query: facts of good queries ------------------------------ */

static void plain_query_facts(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	pb_query(&p, 0x1234, "www.example.com", KNOT_RRTYPE_AAAA, 0, false);
	assert_int_equal(parse(&p, &mi), MSG_OK);
	assert_true(mi.has_question);
	assert_int_equal(mi.qname_len, 17);
	assert_int_equal(mi.qtype, KNOT_RRTYPE_AAAA);
	assert_int_equal(mi.qclass, KNOT_CLASS_IN);
	assert_int_equal(mi.question_end, MSG_HDR + 17 + 4);
	assert_int_equal(mi.end, p.len);
	assert_int_equal(mi.opt_off, 0);
	assert_int_equal(mi.opt_len, 0);
	assert_int_equal(mi.udp_size, 0);
	assert_false(mi.do_bit);
	assert_int_equal(msg_client_udp_max(&mi), 512);

	/* the root name, class CH */
	pb_hdr(&p, 1, 0, 1, 0, 0, 0);
	pb_question(&p, ".", KNOT_RRTYPE_NS, KNOT_CLASS_CH);
	assert_int_equal(parse(&p, &mi), MSG_OK);
	assert_int_equal(mi.qname_len, 1);
	assert_int_equal(mi.qclass, KNOT_CLASS_CH);
	assert_int_equal(mi.question_end, 17);
}

static void edns_facts(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	pb_query(&p, 1, "www.example.com", KNOT_RRTYPE_A, 1232, true);
	assert_int_equal(parse(&p, &mi), MSG_OK);
	assert_int_equal(mi.opt_off, mi.question_end);
	assert_int_equal(mi.opt_len, 11);
	assert_int_equal(mi.udp_size, 1232);
	assert_true(mi.do_bit);
	assert_int_equal(mi.end, p.len);
	assert_int_equal(msg_client_udp_max(&mi), 1232);

	pb_query(&p, 1, "www.example.com", KNOT_RRTYPE_A, 4096, false);
	assert_int_equal(parse(&p, &mi), MSG_OK);
	assert_false(mi.do_bit);
	assert_int_equal(msg_client_udp_max(&mi), 4096);

	/* RFC 6891 6.2.5: values below 512 are treated as 512 */
	pb_query(&p, 1, "www.example.com", KNOT_RRTYPE_A, 100, false);
	assert_int_equal(parse(&p, &mi), MSG_OK);
	assert_int_equal(mi.udp_size, 100);
	assert_int_equal(msg_client_udp_max(&mi), 512);

	/* only the DO bit of the flags counts: other Z bits set, DO clear */
	pb_hdr(&p, 1, 0, 1, 0, 0, 1);
	pb_question(&p, "example", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	size_t opt = p.len;
	pb_opt(&p, 1400, false, NULL, 0);
	p.b[opt + 7] = 0x7f; /* Z bits */
	p.b[opt + 8] = 0xff;
	assert_int_equal(parse(&p, &mi), MSG_OK);
	assert_false(mi.do_bit);
	assert_int_equal(mi.udp_size, 1400);
}

/* OPT after another additional record; trailing bytes are not the message. */
static void opt_position_and_trailing_bytes(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	const uint8_t a[4] = {192, 0, 2, 1};
	pb_hdr(&p, 1, PB_RD, 1, 0, 0, 2);
	pb_question(&p, "example.org", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_rr(&p, "glue.example.org", KNOT_RRTYPE_A, KNOT_CLASS_IN, 60, a, 4);
	size_t opt_at = p.len;
	const uint8_t cookie[12] = {0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8};
	pb_opt(&p, 1232, true, cookie, sizeof(cookie));
	size_t end = p.len;
	pb_bytes(&p, "\xde\xad\xbe\xef\x00\x00\x01", 7);
	assert_int_equal(parse(&p, &mi), MSG_OK);
	assert_int_equal(mi.opt_off, opt_at);
	assert_int_equal(mi.opt_len, 11 + 12);
	assert_int_equal(mi.end, end);
	assert_true(mi.do_bit);
}

/* A query from libknot's writer, EDNS with a cookie option. */
static void knot_built_query(void **state)
{
	(void)state;
	uint8_t w[512];
	const uint8_t cookie[8] = {9, 8, 7, 6, 5, 4, 3, 2};
	size_t len = knot_query(w, sizeof(w), 0xabcd, "Mixed.Case.example.", KNOT_RRTYPE_MX, 1232, true,
				KNOT_EDNS_OPTION_COOKIE, cookie, 8);
	struct msg_info mi;
	assert_int_equal(msg_parse_query(w, len, &mi), MSG_OK);
	assert_int_equal(mi.qname_len, 20);
	assert_int_equal(mi.qtype, KNOT_RRTYPE_MX);
	assert_int_equal(mi.udp_size, 1232);
	assert_true(mi.do_bit);
	assert_int_equal(mi.opt_len, 11 + 4 + 8);
	assert_int_equal(mi.opt_off + mi.opt_len, len);
	assert_int_equal(mi.end, len);
	size_t o = msg_find_option(w, mi.opt_off, mi.opt_len, KNOT_EDNS_OPTION_COOKIE);
	assert_int_equal(o, mi.opt_off + 11);
	assert_memory_equal(w + o + 4, cookie, 8);
}

/* ---- msg_parse_query: malformed names and records ------------------------ */

static void bad_labels(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	uint8_t label[64];
	memset(label, 'x', sizeof(label));

	/* a 64-byte label */
	pb_hdr(&p, 1, 0, 1, 0, 0, 0);
	pb_u8(&p, 64);
	pb_bytes(&p, label, 64);
	pb_u8(&p, 0);
	pb_u16(&p, 1);
	pb_u16(&p, 1);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);

	/* 63 is fine (control) */
	pb_hdr(&p, 1, 0, 1, 0, 0, 0);
	pb_u8(&p, 63);
	pb_bytes(&p, label, 63);
	pb_u8(&p, 0);
	pb_u16(&p, 1);
	pb_u16(&p, 1);
	assert_int_equal(parse(&p, &mi), MSG_OK);

	/* the reserved label types 0x40 and 0x80 */
	const uint8_t types[] = {0x41, 0x80, 0xbf};
	for (size_t i = 0; i < sizeof(types); i++) {
		pb_hdr(&p, 1, 0, 1, 0, 0, 0);
		pb_u8(&p, types[i]);
		pb_bytes(&p, label, 2);
		pb_u8(&p, 0);
		pb_u16(&p, 1);
		pb_u16(&p, 1);
		assert_int_equal(parse(&p, &mi), MSG_FORMERR);
	}

	/* a label that runs past the end */
	pb_hdr(&p, 1, 0, 1, 0, 0, 0);
	pb_u8(&p, 20);
	pb_bytes(&p, "short", 5);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);

	/* no terminating root label */
	pb_hdr(&p, 1, 0, 1, 0, 0, 0);
	pb_u8(&p, 3);
	pb_bytes(&p, "com", 3);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);
}

/* Compression in the question (nothing to point back to) and loops. */
static void compression_in_question(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	pb_hdr(&p, 1, 0, 1, 0, 0, 0); /* a pointer to itself */
	pb_u16(&p, 0xc000 | MSG_HDR);
	pb_u16(&p, 1);
	pb_u16(&p, 1);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);

	pb_hdr(&p, 1, 0, 1, 0, 0, 0); /* a pointer into the header */
	pb_u8(&p, 1);
	pb_u8(&p, 'a');
	pb_u16(&p, 0xc000 | 4);
	pb_u16(&p, 1);
	pb_u16(&p, 1);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);
}

static void compression_loops_in_records(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	const uint8_t a[4] = {192, 0, 2, 1};

	/* control: an additional record whose owner points at the qname */
	pb_hdr(&p, 1, 0, 1, 0, 0, 1);
	pb_question(&p, "example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_u16(&p, 0xc000 | MSG_HDR);
	pb_rr_tail(&p, KNOT_RRTYPE_A, KNOT_CLASS_IN, 60, a, 4);
	assert_int_equal(parse(&p, &mi), MSG_OK);

	/* a pointer to itself */
	pb_hdr(&p, 1, 0, 1, 0, 0, 1);
	pb_question(&p, "example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_u16(&p, (uint16_t)(0xc000 | p.len));
	pb_rr_tail(&p, KNOT_RRTYPE_A, KNOT_CLASS_IN, 60, a, 4);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);

	/* a loop through a label: X: 01 'x' C0 X */
	pb_hdr(&p, 1, 0, 1, 0, 0, 1);
	pb_question(&p, "example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	uint16_t x = (uint16_t)p.len;
	pb_u8(&p, 1);
	pb_u8(&p, 'x');
	pb_u16(&p, 0xc000 | x);
	pb_rr_tail(&p, KNOT_RRTYPE_A, KNOT_CLASS_IN, 60, a, 4);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);

	/* two records pointing at each other: the second points back into the
	 * first, whose name points forward to the second */
	pb_hdr(&p, 1, 0, 1, 0, 0, 2);
	pb_question(&p, "example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	uint16_t r1 = (uint16_t)p.len;
	pb_u8(&p, 1);
	pb_u8(&p, 'y');
	size_t fwd = p.len;
	pb_u16(&p, 0); /* patched below */
	pb_rr_tail(&p, KNOT_RRTYPE_A, KNOT_CLASS_IN, 60, a, 4);
	uint16_t r2 = (uint16_t)p.len;
	pb_u16(&p, 0xc000 | r1);
	pb_rr_tail(&p, KNOT_RRTYPE_A, KNOT_CLASS_IN, 60, a, 4);
	msg_put16(p.b + fwd, 0xc000 | r2);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);

	/* a pointer past the end of the message */
	pb_hdr(&p, 1, 0, 1, 0, 0, 1);
	pb_question(&p, "example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_u16(&p, 0xc000 | 0x3000);
	pb_rr_tail(&p, KNOT_RRTYPE_A, KNOT_CLASS_IN, 60, a, 4);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);
}

/* A name of 4 labels: 63, 63, 63 and last bytes; wire length 3*64 + last+1 + 1. */
static void put_long_name(struct pb *p, size_t last)
{
	uint8_t label[63];
	memset(label, 'a', sizeof(label));
	for (int i = 0; i < 3; i++) {
		pb_u8(p, 63);
		pb_bytes(p, label, 63);
	}
	pb_u8(p, (uint8_t)last);
	pb_bytes(p, label, last);
	pb_u8(p, 0);
}

static void overlong_name(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	/* 255 bytes: the longest legal name (RFC 1035 2.3.4) */
	pb_hdr(&p, 1, 0, 1, 0, 0, 0);
	put_long_name(&p, 61);
	pb_u16(&p, 1);
	pb_u16(&p, 1);
	assert_int_equal(parse(&p, &mi), MSG_OK);
	assert_int_equal(mi.qname_len, 255);

	/* 256 bytes */
	pb_hdr(&p, 1, 0, 1, 0, 0, 0);
	put_long_name(&p, 62);
	pb_u16(&p, 1);
	pb_u16(&p, 1);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);

	/* too long only once a compression pointer is followed: a 255-byte
	 * owner (fine), then a one-label prefix pointing at it (257 bytes) */
	pb_hdr(&p, 1, 0, 1, 0, 0, 2);
	pb_question(&p, "www.example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	const uint8_t a[4] = {192, 0, 2, 1};
	uint16_t long_owner = (uint16_t)p.len;
	put_long_name(&p, 61);
	pb_rr_tail(&p, KNOT_RRTYPE_A, KNOT_CLASS_IN, 60, a, 4);
	pb_u8(&p, 1);
	pb_u8(&p, 'z');
	pb_u16(&p, 0xc000 | long_owner); /* 2 + 255 = 257 */
	pb_rr_tail(&p, KNOT_RRTYPE_A, KNOT_CLASS_IN, 60, a, 4);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);
}

static void truncated_question(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	pb_query(&p, 1, "www.example.com", KNOT_RRTYPE_A, 0, false);
	size_t full = p.len;
	for (size_t len = MSG_HDR; len < full; len++)
		assert_int_equal(parse_len(p.b, len, &mi), MSG_FORMERR);
	assert_int_equal(msg_parse_query(p.b, full, &mi), MSG_OK);
}

static void bad_record_lengths(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	const uint8_t rdata[10] = {0};

	/* RDLENGTH past the end */
	pb_hdr(&p, 1, 0, 1, 0, 0, 1);
	pb_question(&p, "example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_rr(&p, "x.example.com", KNOT_RRTYPE_TXT, KNOT_CLASS_IN, 0, rdata, 10);
	size_t good = p.len;
	assert_int_equal(parse(&p, &mi), MSG_OK); /* control */
	assert_int_equal(parse_len(p.b, good - 1, &mi), MSG_FORMERR);
	msg_put16(p.b + good - 10 - 2, 11);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);
	msg_put16(p.b + good - 10 - 2, 0xffff);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);

	/* the fixed part of a record cut short (owner + 9 of 10 bytes) */
	pb_hdr(&p, 1, 0, 1, 0, 0, 1);
	pb_question(&p, "example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_name(&p, "x");
	pb_bytes(&p, "\x00\x01\x00\x01\x00\x00\x00\x00\x00", 9);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);

	/* counts promise more records than there are */
	pb_hdr(&p, 1, 0, 1, 2, 0, 0);
	pb_question(&p, "example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_rr(&p, "example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN, 0, rdata, 4);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);
	pb_hdr(&p, 1, 0, 1, 0, 0, 1);
	pb_question(&p, "example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);

	/* the same records, counted in every section, are fine (control) */
	pb_hdr(&p, 1, 0, 1, 1, 1, 1);
	pb_question(&p, "example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	for (int i = 0; i < 3; i++)
		pb_rr(&p, "example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN, 0, rdata, 4);
	assert_int_equal(parse(&p, &mi), MSG_OK);
	assert_int_equal(mi.end, p.len);
}

static void misplaced_or_duplicate_opt(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	/* OPT in the answer section */
	pb_hdr(&p, 1, 0, 1, 1, 0, 0);
	pb_question(&p, "example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_opt(&p, 1232, false, NULL, 0);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);

	/* OPT in the authority section */
	pb_hdr(&p, 1, 0, 1, 0, 1, 0);
	pb_question(&p, "example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_opt(&p, 1232, false, NULL, 0);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);

	/* two OPT records (RFC 6891 6.1.1) */
	pb_hdr(&p, 1, 0, 1, 0, 0, 2);
	pb_question(&p, "example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_opt(&p, 1232, false, NULL, 0);
	pb_opt(&p, 4096, true, NULL, 0);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);

	/* OPT owned by a name other than the root */
	pb_hdr(&p, 1, 0, 1, 0, 0, 1);
	pb_question(&p, "example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_name(&p, "example.com");
	pb_u16(&p, KNOT_RRTYPE_OPT);
	pb_u16(&p, 1232);
	pb_u32(&p, 0);
	pb_u16(&p, 0);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);

	/* OPT owned by a compression pointer (to the qname): not the root */
	pb_hdr(&p, 1, 0, 1, 0, 0, 1);
	pb_question(&p, "example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_u16(&p, 0xc000 | MSG_HDR);
	pb_u16(&p, KNOT_RRTYPE_OPT);
	pb_u16(&p, 1232);
	pb_u32(&p, 0);
	pb_u16(&p, 0);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);
}

static void over_max_length(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	pb_query(&p, 1, "example.com", KNOT_RRTYPE_A, 0, false);
	memset(p.b + p.len, 0, 65536 - p.len);
	assert_int_equal(msg_parse_query(p.b, 65535, &mi), MSG_OK); /* trailing zeros */
	assert_int_equal(msg_parse_query(p.b, 65536, &mi), MSG_FORMERR);
}

/* msg_scan on answers: QD=0 allowed, OPT found. */
static void scan_answers(void **state)
{
	(void)state;
	static uint8_t w[4096];
	struct msg_info mi;
	size_t len = knot_answer(w, sizeof(w), 7, "www.example.com", 3, 2, 1232);
	assert_int_equal(msg_scan(w, len, &mi), 0);
	assert_int_equal(mi.end, len);
	assert_int_equal(mi.udp_size, 1232);
	assert_int_equal(mi.opt_off + mi.opt_len, len);
	assert_int_equal(msg_scan(w, len - 1, &mi), ERR_MALFORMED);
	assert_int_equal(msg_scan(w, 11, &mi), ERR_MALFORMED);
	static struct pb p;
	pb_hdr(&p, 1, PB_QR | 1, 0, 0, 0, 0); /* FORMERR reply without a question */
	assert_int_equal(msg_scan(p.b, p.len, &mi), 0);
	assert_false(mi.has_question);
}

/* msg_answer_facts: the smallest TTL (a SOA's MINIMUM counted, the OPT's
 * "TTL" not), the OPT's place; a cut message stays in bounds. */
static void answer_facts(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_facts f;
	const uint8_t addr[4] = {192, 0, 2, 7};
	pb_hdr(&p, 1, PB_QR, 1, 2, 0, 1);
	pb_question(&p, "www.example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_u16(&p, 0xc000 | MSG_HDR);
	pb_rr_tail(&p, KNOT_RRTYPE_A, KNOT_CLASS_IN, 300, addr, 4);
	pb_u16(&p, 0xc000 | MSG_HDR);
	pb_rr_tail(&p, KNOT_RRTYPE_A, KNOT_CLASS_IN, 42, addr, 4);
	size_t opt = p.len;
	pb_u8(&p, 0);
	pb_rr_tail(&p, 41, 1232, 0, addr, 0); /* OPT, "TTL" 0: not a TTL */
	msg_answer_facts(p.b, p.len, &f);
	assert_true(f.has_ttl);
	assert_int_equal(f.min_ttl, 42);
	assert_int_equal(f.opt_off, opt);
	assert_int_equal(f.opt_len, 11);
	for (size_t cut = 0; cut < p.len; cut++) /* in bounds, and no OPT past the end */
		msg_answer_facts(p.b, cut, &f), assert_int_equal(f.opt_off, 0);

	/* NXDOMAIN: the SOA's MINIMUM below its TTL */
	uint8_t soa[22 + 20] = {0};
	soa[0] = 0, soa[1] = 0;                /* MNAME, RNAME: the root */
	soa[2 + 16] = 0, soa[2 + 19] = 30;     /* MINIMUM 30 */
	pb_hdr(&p, 1, PB_QR | 3, 1, 0, 1, 0);
	pb_question(&p, "nx.example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_u8(&p, 0);
	pb_rr_tail(&p, KNOT_RRTYPE_SOA, KNOT_CLASS_IN, 3600, soa, 22);
	msg_answer_facts(p.b, p.len, &f);
	assert_true(f.has_ttl);
	assert_int_equal(f.min_ttl, 30);
	assert_int_equal(f.opt_off, 0);

	pb_hdr(&p, 1, PB_QR | 2, 1, 0, 0, 0); /* SERVFAIL: no record, no TTL */
	pb_question(&p, "www.example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	msg_answer_facts(p.b, p.len, &f);
	assert_false(f.has_ttl);
}

/* ---- msg_answer_matches -------------------------------------------------- */

struct qa {
	struct pb q;
	struct msg_info qi;
	struct pb a;
};

/* A query for www.Example.COM A, and an answer the caller shapes. */
static void qa_query(struct qa *x)
{
	pb_query(&x->q, 0x5555, "www.Example.COM", KNOT_RRTYPE_A, 1232, false);
	assert_int_equal(msg_parse_query(x->q.b, x->q.len, &x->qi), MSG_OK);
}

static void qa_answer(struct qa *x, uint16_t flags, uint16_t qd, const char *name, uint16_t type, uint16_t cls)
{
	const uint8_t addr[4] = {192, 0, 2, 7};
	pb_hdr(&x->a, 0x5555, flags, qd, 1, 0, 0);
	if (qd)
		pb_question(&x->a, name, type, cls);
	pb_u16(&x->a, 0xc000 | MSG_HDR);
	pb_rr_tail(&x->a, type, cls, 60, addr, 4);
}

static bool matches_len(const struct qa *x, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	assert_non_null(copy);
	memcpy(copy, x->a.b, len);
	bool m = msg_answer_matches(copy, len, x->q.b, &x->qi);
	free(copy);
	return m;
}

static bool matches(const struct qa *x)
{
	return matches_len(x, x->a.len);
}

static void answer_matches(void **state)
{
	(void)state;
	static struct qa x;
	qa_query(&x);

	qa_answer(&x, PB_QR | PB_RD | PB_RA, 1, "www.Example.COM", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	assert_true(matches(&x));
	/* case differs: still the same name (RFC 4343) */
	qa_answer(&x, PB_QR | PB_RD | PB_RA, 1, "WWW.example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	assert_true(matches(&x));
	/* from libknot, with EDNS and more records */
	size_t len = knot_answer(x.a.b, sizeof(x.a.b), 0x5555, "wWw.eXample.cOm.", 5, 2, 1232);
	assert_true(msg_answer_matches(x.a.b, len, x.q.b, &x.qi));
	/* only letters fold: '[' and '{' differ by 0x20 but are different bytes */
	pb_query(&x.q, 0x5555, "a[b.example", KNOT_RRTYPE_A, 0, false);
	assert_int_equal(msg_parse_query(x.q.b, x.q.len, &x.qi), MSG_OK);
	qa_answer(&x, PB_QR, 1, "a{b.example", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	assert_false(matches(&x));
	qa_answer(&x, PB_QR, 1, "A[B.EXAMPLE", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	assert_true(matches(&x));
	qa_query(&x);
	/* an answer with rcode NXDOMAIN still matches */
	qa_answer(&x, PB_QR | 3, 1, "www.example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	assert_true(matches(&x));
}

static void answer_mismatches(void **state)
{
	(void)state;
	static struct qa x;
	qa_query(&x);
	const uint16_t ok = PB_QR | PB_RD | PB_RA;

	qa_answer(&x, PB_RD, 1, "www.example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN); /* QR=0 */
	assert_false(matches(&x));
	qa_answer(&x, ok, 1, "www.examplf.com", KNOT_RRTYPE_A, KNOT_CLASS_IN); /* same length */
	assert_false(matches(&x));
	qa_answer(&x, ok, 1, "ww.example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	assert_false(matches(&x));
	qa_answer(&x, ok, 1, "www.example.co", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	assert_false(matches(&x));
	qa_answer(&x, ok, 1, "www.example.com.evil", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	assert_false(matches(&x));
	qa_answer(&x, ok, 1, "wwwexample.com", KNOT_RRTYPE_A, KNOT_CLASS_IN); /* labels differ */
	assert_false(matches(&x));
	qa_answer(&x, ok, 1, "wwwe.xample.com", KNOT_RRTYPE_A, KNOT_CLASS_IN); /* same length, split differs */
	assert_false(matches(&x));
	qa_answer(&x, ok, 1, "www.example.com", KNOT_RRTYPE_AAAA, KNOT_CLASS_IN);
	assert_false(matches(&x));
	qa_answer(&x, ok, 1, "www.example.com", KNOT_RRTYPE_A, KNOT_CLASS_CH);
	assert_false(matches(&x));
	qa_answer(&x, ok, 0, NULL, KNOT_RRTYPE_A, KNOT_CLASS_IN); /* no question */
	assert_false(matches(&x));

	/* QDCOUNT=2 with our question first */
	qa_answer(&x, ok, 1, "www.example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	assert_true(matches(&x));
	msg_put16(x.a.b + 4, 2);
	assert_false(matches(&x));

	/* cut short: the answer ends inside its question */
	qa_answer(&x, ok, 1, "www.example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	for (size_t len = 0; len < x.qi.question_end; len++)
		assert_false(matches_len(&x, len));
	assert_true(matches_len(&x, x.qi.question_end));

	/* the answer's question compressed (pointing at its own header) */
	pb_hdr(&x.a, 0x5555, ok, 1, 0, 0, 0);
	pb_u16(&x.a, 0xc000 | 0);
	pb_u16(&x.a, KNOT_RRTYPE_A);
	pb_u16(&x.a, KNOT_CLASS_IN);
	pb_bytes(&x.a, x.q.b + MSG_HDR, x.qi.question_end - MSG_HDR);
	assert_false(matches(&x));
}

/* ---- msg_truncate --------------------------------------------------------- */

/* Truncate a copy of an answer to max and check the RFC 1035 4.2.1 shape. */
static size_t truncate_and_check(const uint8_t *orig, size_t len, size_t max, bool expect_opt)
{
	uint8_t *w = malloc(len);
	assert_non_null(w);
	memcpy(w, orig, len);
	struct msg_info before, after;
	assert_int_equal(msg_scan(orig, len, &before), 0);
	size_t n = msg_truncate(w, len, max);
	assert_true(n > 0);
	assert_true(n <= max);
	assert_int_equal(knot_wire_get_id(w), knot_wire_get_id(orig));
	assert_true(knot_wire_get_tc(w));
	assert_true(knot_wire_get_qr(w));
	assert_int_equal(knot_wire_get_rcode(w), knot_wire_get_rcode(orig));
	assert_int_equal(knot_wire_get_qdcount(w), 1);
	assert_int_equal(knot_wire_get_ancount(w), 0);
	assert_int_equal(knot_wire_get_nscount(w), 0);
	assert_memory_equal(w + MSG_HDR, orig + MSG_HDR, before.question_end - MSG_HDR); /* question kept */
	assert_int_equal(msg_scan(w, n, &after), 0);
	assert_int_equal(after.end, n);
	assert_int_equal(after.question_end, before.question_end);
	if (expect_opt) {
		assert_int_equal(knot_wire_get_arcount(w), 1);
		assert_int_equal(after.opt_off, before.question_end);
		assert_int_equal(after.opt_len, before.opt_len);
		assert_memory_equal(w + after.opt_off, orig + before.opt_off, before.opt_len);
		assert_int_equal(n, before.question_end + before.opt_len);
	} else {
		assert_int_equal(knot_wire_get_arcount(w), 0);
		assert_int_equal(after.opt_off, 0);
		assert_int_equal(n, before.question_end);
	}
	free(w);
	return n;
}

static void truncate_for_512_and_1232_clients(void **state)
{
	(void)state;
	static uint8_t a[8192];
	/* 200 A records and 10 NS: far over both limits */
	size_t len = knot_answer(a, sizeof(a), 0x7777, "www.example.com", 200, 10, 4096);
	assert_true(len > 1232);
	truncate_and_check(a, len, 512, true);
	truncate_and_check(a, len, 1232, true);

	/* without EDNS */
	len = knot_answer(a, sizeof(a), 0x7777, "www.example.com", 200, 10, 0);
	truncate_and_check(a, len, 512, false);
	truncate_and_check(a, len, 1232, false);
}

/* An OPT record carrying a big option is kept only where it fits. */
static void truncate_opt_only_when_it_fits(void **state)
{
	(void)state;
	static struct pb p;
	static uint8_t pad[600];
	memset(pad, 0, sizeof(pad));
	msg_put16(pad, KNOT_EDNS_OPTION_PADDING);
	msg_put16(pad + 2, sizeof(pad) - 4);
	const uint8_t addr[4] = {192, 0, 2, 1};
	pb_hdr(&p, 3, PB_QR | PB_RD | PB_RA, 1, 100, 0, 1);
	pb_question(&p, "big.example", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	for (int i = 0; i < 100; i++) {
		pb_u16(&p, 0xc000 | MSG_HDR);
		pb_rr_tail(&p, KNOT_RRTYPE_A, KNOT_CLASS_IN, 60, addr, 4);
	}
	pb_opt(&p, 1232, true, pad, sizeof(pad));
	const size_t qend = MSG_HDR + 13 + 4, opt_len = 11 + sizeof(pad);

	truncate_and_check(p.b, p.len, 512, false); /* 17 + 611 > 512 */
	truncate_and_check(p.b, p.len, 1232, true);
	/* the exact boundary */
	truncate_and_check(p.b, p.len, qend + opt_len, true);
	truncate_and_check(p.b, p.len, qend + opt_len - 1, false);
	truncate_and_check(p.b, p.len, qend, false);
}

/* OPT not the last record: the records after it go, the OPT stays. */
static void truncate_opt_in_the_middle(void **state)
{
	(void)state;
	static struct pb p;
	const uint8_t addr[4] = {192, 0, 2, 1};
	pb_hdr(&p, 3, PB_QR, 1, 40, 0, 3);
	pb_question(&p, "mid.example", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	for (int i = 0; i < 40; i++)
		pb_rr(&p, "mid.example", KNOT_RRTYPE_A, KNOT_CLASS_IN, 60, addr, 4);
	pb_rr(&p, "ns.mid.example", KNOT_RRTYPE_A, KNOT_CLASS_IN, 60, addr, 4);
	const uint8_t cookie[12] = {0, 10, 0, 8, 1, 1, 2, 3, 5, 8, 13, 21};
	pb_opt(&p, 1232, false, cookie, sizeof(cookie));
	pb_rr(&p, "ns2.mid.example", KNOT_RRTYPE_A, KNOT_CLASS_IN, 60, addr, 4);
	assert_true(p.len > 512);
	truncate_and_check(p.b, p.len, 512, true);
}

static void truncate_gives_zero(void **state)
{
	(void)state;
	static uint8_t a[4096];
	size_t len = knot_answer(a, sizeof(a), 1, "www.example.com", 50, 0, 1232);
	struct msg_info mi;
	assert_int_equal(msg_scan(a, len, &mi), 0);
	/* not even the question fits */
	assert_int_equal(msg_truncate(a, len, mi.question_end - 1), 0);
	assert_int_equal(msg_truncate(a, len, 0), 0);
	/* garbage */
	static uint8_t g[600];
	uint64_t s = 5;
	for (size_t i = 0; i < sizeof(g); i++)
		g[i] = (uint8_t)xr_next(&s);
	msg_put16(g + 4, 1);
	msg_put16(g + 6, 0xffff);
	assert_int_equal(msg_truncate(g, sizeof(g), 512), 0);
	assert_int_equal(msg_truncate(g, 5, 512), 0);
	/* a cut answer (records promised, not there) */
	assert_int_equal(msg_truncate(a, len - 3, 512), 0);
	/* no question to keep */
	static struct pb p;
	pb_hdr(&p, 1, PB_QR | 2, 0, 0, 0, 0);
	assert_int_equal(msg_truncate(p.b, p.len, 512), 0);
}

/* ---- msg_error_reply ------------------------------------------------------ */

static void error_reply_keeps_id_flags_question_opt(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	pb_hdr(&p, 0xbeef, PB_RD | PB_CD | PB_AD | PB_AA | PB_TC | PB_RA | 0x0040, 1, 0, 0, 1);
	pb_question(&p, "www.example.com", KNOT_RRTYPE_AAAA, KNOT_CLASS_IN);
	pb_opt(&p, 4096, true, NULL, 0);
	assert_int_equal(parse(&p, &mi), MSG_OK);

	uint8_t out[512];
	memset(out, 0xee, sizeof(out));
	size_t n = msg_error_reply(p.b, p.len, &mi, KNOT_RCODE_SERVFAIL, out, sizeof(out));
	assert_int_equal(n, mi.question_end + 11);
	assert_int_equal(knot_wire_get_id(out), 0xbeef);
	assert_int_equal(flags_of(out), PB_QR | PB_RD | PB_CD | KNOT_RCODE_SERVFAIL); /* AA TC RA AD Z off */
	assert_int_equal(knot_wire_get_qdcount(out), 1);
	assert_int_equal(knot_wire_get_ancount(out), 0);
	assert_int_equal(knot_wire_get_nscount(out), 0);
	assert_int_equal(knot_wire_get_arcount(out), 1);
	assert_memory_equal(out + MSG_HDR, p.b + MSG_HDR, mi.question_end - MSG_HDR);
	struct msg_info ri;
	assert_int_equal(msg_scan(out, n, &ri), 0);
	assert_int_equal(ri.end, n);
	assert_int_equal(ri.opt_off, mi.question_end);
	assert_int_equal(ri.opt_len, 11);
	assert_true(ri.udp_size >= 512);
	/* the reply matches the query it answers */
	assert_true(msg_answer_matches(out, n, p.b, &mi));

	/* RD and CD off in the query: off in the reply */
	pb_query(&p, 0x0102, "www.example.com", KNOT_RRTYPE_A, 0, false);
	p.b[2] &= (uint8_t)~0x01;
	assert_int_equal(parse(&p, &mi), MSG_OK);
	n = msg_error_reply(p.b, p.len, &mi, KNOT_RCODE_REFUSED, out, sizeof(out));
	assert_int_equal(n, mi.question_end); /* no OPT without EDNS */
	assert_int_equal(knot_wire_get_id(out), 0x0102);
	assert_int_equal(flags_of(out), PB_QR | KNOT_RCODE_REFUSED);
	assert_int_equal(knot_wire_get_arcount(out), 0);
	assert_int_equal(knot_wire_get_qdcount(out), 1);
}

static void error_reply_for_bad_queries(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	uint8_t out[512];

	/* NOTIFY: NOTIMP with the opcode echoed and the question */
	pb_hdr(&p, 77, PB_OPCODE(4) | PB_AA, 1, 0, 0, 0);
	pb_question(&p, "example.com", KNOT_RRTYPE_SOA, KNOT_CLASS_IN);
	assert_int_equal(parse(&p, &mi), MSG_NOTIMP);
	size_t n = msg_error_reply(p.b, p.len, &mi, KNOT_RCODE_NOTIMPL, out, sizeof(out));
	assert_int_equal(n, p.len);
	assert_int_equal(flags_of(out), PB_QR | PB_OPCODE(4) | KNOT_RCODE_NOTIMPL);
	assert_int_equal(knot_wire_get_qdcount(out), 1);
	assert_memory_equal(out + MSG_HDR, p.b + MSG_HDR, p.len - MSG_HDR);

	/* FORMERR for a bad record after a good question: the question goes back */
	pb_hdr(&p, 78, PB_RD, 1, 0, 0, 1);
	pb_question(&p, "example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	size_t qend = p.len;
	pb_u8(&p, 0xc0 | 0x3f); /* pointer past the end */
	pb_u8(&p, 0xff);
	pb_rr_tail(&p, KNOT_RRTYPE_A, KNOT_CLASS_IN, 0, "\0\0\0\0", 4);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);
	n = msg_error_reply(p.b, p.len, &mi, KNOT_RCODE_FORMERR, out, sizeof(out));
	assert_int_equal(n, qend);
	assert_int_equal(flags_of(out), PB_QR | PB_RD | KNOT_RCODE_FORMERR);
	assert_int_equal(knot_wire_get_qdcount(out), 1);
	assert_int_equal(knot_wire_get_arcount(out), 0);

	/* FORMERR with QDCOUNT=2: a bare header */
	pb_hdr(&p, 79, PB_RD, 2, 0, 0, 0);
	pb_question(&p, "a.example", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_question(&p, "b.example", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);
	n = msg_error_reply(p.b, p.len, &mi, KNOT_RCODE_FORMERR, out, sizeof(out));
	assert_int_equal(n, MSG_HDR);
	assert_int_equal(knot_wire_get_id(out), 79);
	assert_int_equal(knot_wire_get_qdcount(out), 0);
	assert_int_equal(knot_wire_get_rcode(out), KNOT_RCODE_FORMERR);

	/* no facts at all */
	n = msg_error_reply(p.b, p.len, NULL, KNOT_RCODE_SERVFAIL, out, sizeof(out));
	assert_int_equal(n, MSG_HDR);
	assert_int_equal(knot_wire_get_qdcount(out), 0);
	assert_int_equal(knot_wire_get_arcount(out), 0);

	/* shorter than a header: nothing */
	assert_int_equal(msg_error_reply(p.b, 11, NULL, KNOT_RCODE_SERVFAIL, out, sizeof(out)), 0);
}

/* The output buffer bounds what goes in. */
static void error_reply_small_buffer(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	uint8_t out[600];
	pb_query(&p, 5, "www.example.com", KNOT_RRTYPE_A, 1232, false);
	assert_int_equal(parse(&p, &mi), MSG_OK);
	for (size_t cap = MSG_HDR; cap < sizeof(out); cap++) {
		memset(out, 0xee, sizeof(out));
		size_t n = msg_error_reply(p.b, p.len, &mi, KNOT_RCODE_SERVFAIL, out, cap);
		assert_true(n >= MSG_HDR && n <= cap);
		assert_int_equal(out[cap], 0xee); /* nothing written past cap */
		struct msg_info ri;
		assert_int_equal(msg_scan(out, n, &ri), 0);
		assert_int_equal(ri.end, n);
	}
	size_t n = msg_error_reply(p.b, p.len, &mi, KNOT_RCODE_SERVFAIL, out, mi.question_end + 11);
	assert_int_equal(n, mi.question_end + 11);
}

/* ---- msg_find_option / msg_remove_option --------------------------------- */

/* A query whose OPT holds: cookie (10, 8 bytes), padding (12, 4 bytes),
 * ECS (8, 7 bytes); and, when tail, an A record after the OPT. */
static void opts_query(struct pb *p, bool tail, struct msg_info *mi)
{
	uint8_t o[12 + 8 + 11];
	size_t n = 0;
	msg_put16(o + n, 10);
	msg_put16(o + n + 2, 8);
	memcpy(o + n + 4, "COOKIE!!", 8);
	n += 12;
	msg_put16(o + n, 12);
	msg_put16(o + n + 2, 4);
	memset(o + n + 4, 0, 4);
	n += 8;
	msg_put16(o + n, 8);
	msg_put16(o + n + 2, 7);
	memcpy(o + n + 4, "\x00\x01\x18\x00\xc0\x00\x02", 7);
	n += 11;
	pb_hdr(p, 1, PB_RD, 1, 0, 0, tail ? 2 : 1);
	pb_question(p, "opt.example", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_opt(p, 1232, true, o, (uint16_t)n);
	if (tail)
		pb_rr(p, "t.example", KNOT_RRTYPE_A, KNOT_CLASS_IN, 1, "\x0a\x0b\x0c\x0d", 4);
	assert_int_equal(msg_parse_query(p->b, p->len, mi), MSG_OK);
	assert_int_equal(mi->opt_len, 11 + n);
}

static void find_option(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	opts_query(&p, false, &mi);
	size_t base = mi.opt_off + 11;
	assert_int_equal(msg_find_option(p.b, mi.opt_off, mi.opt_len, 10), base);
	assert_int_equal(msg_find_option(p.b, mi.opt_off, mi.opt_len, 12), base + 12);
	assert_int_equal(msg_find_option(p.b, mi.opt_off, mi.opt_len, 8), base + 20);
	assert_int_equal(msg_find_option(p.b, mi.opt_off, mi.opt_len, 15), 0);
	assert_int_equal(msg_find_option(p.b, mi.opt_off, mi.opt_len, 0), 0);

	/* an empty OPT */
	pb_query(&p, 1, "opt.example", KNOT_RRTYPE_A, 1232, false);
	assert_int_equal(parse(&p, &mi), MSG_OK);
	assert_int_equal(msg_find_option(p.b, mi.opt_off, mi.opt_len, 10), 0);

	/* an option whose length runs past the RDATA is not found, nor what follows */
	opts_query(&p, false, &mi);
	msg_put16(p.b + base + 12 + 2, 200);
	assert_int_equal(msg_find_option(p.b, mi.opt_off, mi.opt_len, 10), base);
	assert_int_equal(msg_find_option(p.b, mi.opt_off, mi.opt_len, 12), 0);
	assert_int_equal(msg_find_option(p.b, mi.opt_off, mi.opt_len, 8), 0);
}

static void remove_option_each(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi, after;
	const uint16_t codes[3] = {10, 12, 8};
	const size_t sizes[3] = {12, 8, 11};
	for (int tail = 0; tail <= 1; tail++) {
		for (int k = 0; k < 3; k++) {
			opts_query(&p, tail, &mi);
			size_t len = p.len;
			uint16_t rdlen = msg_get16(p.b + mi.opt_off + 9);
			size_t at = msg_find_option(p.b, mi.opt_off, mi.opt_len, codes[k]);
			assert_true(at > 0);
			size_t n = msg_remove_option(p.b, len, mi.opt_off, at);
			assert_int_equal(n, len - sizes[k]);
			assert_int_equal(msg_get16(p.b + mi.opt_off + 9), rdlen - sizes[k]);
			assert_int_equal(msg_parse_query(p.b, n, &after), MSG_OK);
			assert_int_equal(after.end, n);
			assert_int_equal(after.opt_off, mi.opt_off);
			assert_int_equal(after.opt_len, mi.opt_len - sizes[k]);
			assert_true(after.do_bit);
			assert_int_equal(msg_find_option(p.b, after.opt_off, after.opt_len, codes[k]), 0);
			for (int j = 0; j < 3; j++)
				if (j != k)
					assert_true(msg_find_option(p.b, after.opt_off, after.opt_len, codes[j]) > 0);
			size_t c = msg_find_option(p.b, after.opt_off, after.opt_len, 10);
			if (k != 0)
				assert_memory_equal(p.b + c + 4, "COOKIE!!", 8);
			size_t e = msg_find_option(p.b, after.opt_off, after.opt_len, 8);
			if (k != 2)
				assert_memory_equal(p.b + e + 4, "\x00\x01\x18\x00\xc0\x00\x02", 7);
			if (tail)
				assert_memory_equal(p.b + n - 4, "\x0a\x0b\x0c\x0d", 4); /* the record after moved intact */
		}
	}
}

static void remove_all_options(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	opts_query(&p, true, &mi);
	size_t len = p.len;
	const uint16_t order[3] = {12, 10, 8};
	for (int k = 0; k < 3; k++) {
		size_t at = msg_find_option(p.b, mi.opt_off, mi.opt_len, order[k]);
		assert_true(at > 0);
		len = msg_remove_option(p.b, len, mi.opt_off, at);
		assert_int_equal(msg_parse_query(p.b, len, &mi), MSG_OK);
		assert_int_equal(mi.end, len);
	}
	assert_int_equal(mi.opt_len, 11);
	assert_int_equal(msg_get16(p.b + mi.opt_off + 9), 0);
	assert_int_equal(len, mi.question_end + 11 + 11 + 10 + 4); /* OPT, then t.example A */
}

/* RFC 3225 3: the DO bit of the query is copied into the response. */
static void error_reply_copies_do_bit(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	uint8_t out[512];
	for (int do_bit = 0; do_bit <= 1; do_bit++) {
		pb_hdr(&p, 0x1234, PB_RD, 1, 0, 0, 1);
		pb_question(&p, "www.example.com", KNOT_RRTYPE_A, KNOT_CLASS_IN);
		pb_opt(&p, 1232, do_bit, NULL, 0);
		assert_int_equal(parse(&p, &mi), MSG_OK);
		size_t n = msg_error_reply(p.b, p.len, &mi, KNOT_RCODE_SERVFAIL, out, sizeof(out));
		struct msg_info ri;
		assert_int_equal(msg_scan(out, n, &ri), 0);
		assert_true(ri.opt_off > 0);
		assert_int_equal(ri.do_bit, do_bit);
	}
}

/* RFC 6891 7: a NOTIMP reply to a query with an OPT record carries one too. */
static void notimp_reply_keeps_opt(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	uint8_t out[512];
	pb_hdr(&p, 0x4321, PB_OPCODE(KNOT_OPCODE_NOTIFY), 1, 0, 0, 1);
	pb_question(&p, "example.com", KNOT_RRTYPE_SOA, KNOT_CLASS_IN);
	pb_opt(&p, 1232, false, NULL, 0);
	assert_int_equal(parse(&p, &mi), MSG_NOTIMP);
	size_t n = msg_error_reply(p.b, p.len, &mi, KNOT_RCODE_NOTIMPL, out, sizeof(out));
	assert_int_equal(knot_wire_get_arcount(out), 1);
	assert_int_equal(knot_wire_get_rcode(out), KNOT_RCODE_NOTIMPL);
	struct msg_info ri;
	assert_int_equal(msg_scan(out, n, &ri), 0);
	assert_true(ri.opt_off > 0);
}

/* A TSIG RDATA (RFC 8945 4.2): algorithm "hmac-sha", times, an empty MAC. */
static const uint8_t tsig_rdata[] = {0x08, 'h', 'm', 'a', 'c', '-', 's', 'h', 'a', 0, 0, 0, 0, 0, 0, 0,
				     1, 0x2c, 0, 0, 0, 7, 0, 0, 0, 0};

/* ---- msg_parse_query: what an upstream would choke on (issue 7, fault 3) - */

/* Parse a query built as hex (spaces allowed). */
static enum msg_verdict parse_hex(const char *hex, struct msg_info *mi)
{
	static uint8_t w[1024];
	size_t n = 0;
	for (const char *h = hex; *h; h++) {
		if (*h == ' ')
			continue;
		unsigned v;
		assert_int_equal(sscanf(h, "%2x", &v), 1);
		w[n++] = (uint8_t)v;
		h++;
	}
	return parse_len(w, n, mi);
}

static void attacker_opt_forms_are_formerr(void **state)
{
	(void)state;
	struct msg_info mi;
	/* the two forms the probe sent: an option running past RDLENGTH, and RDLENGTH 1 */
	assert_int_equal(parse_hex("abcd0100000100000000000103777777047465737400000100010000 2904d0000000000004000a4018", &mi),
			 MSG_FORMERR);
	assert_true(mi.has_question); /* answered with its question and an OPT */
	assert_true(mi.opt_off != 0);
	assert_int_equal(parse_hex("abcd010000010000000000010377777704746573740000010001 00002904d000000000000100", &mi),
			 MSG_FORMERR);
	/* control: the same with a well-framed option */
	assert_int_equal(parse_hex("abcd0100000100000000000103777777047465737400000100010000 2904d0000000000004ff000000", &mi),
			 MSG_OK);
}

/* One record in the additional or authority section with an RDATA its type
 * cannot have; the same record well formed is accepted (slow path). */
static void bad_rdata_is_formerr(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	static const struct {
		uint16_t type;
		uint16_t len;
		bool ok;
	} cases[] = {
		{KNOT_RRTYPE_A, 5, false}, {KNOT_RRTYPE_A, 3, false}, {KNOT_RRTYPE_A, 4, true},
		{KNOT_RRTYPE_AAAA, 4, false}, {KNOT_RRTYPE_AAAA, 16, true}, {KNOT_RRTYPE_SOA, 0, false},
		{KNOT_RRTYPE_NS, 0, false}, {KNOT_RRTYPE_MX, 1, false},
	};
	static const uint8_t zeros[16];
	for (int section = 0; section < 3; section++) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			pb_hdr(&p, 7, PB_RD, 1, section == 0, section == 1, section == 2);
			pb_question(&p, "www.test", KNOT_RRTYPE_A, KNOT_CLASS_IN);
			pb_rr(&p, "www.test", cases[i].type, KNOT_CLASS_IN, 60, zeros, cases[i].len);
			assert_int_equal(parse(&p, &mi), cases[i].ok ? MSG_OK : MSG_FORMERR);
		}
	}
}

static void option_syntax(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	static const struct {
		uint16_t code;
		uint16_t len;
		const char *data;
		bool ok;
	} cases[] = {
		{MSG_OPT_ECS, 7, "\x00\x01\x18\x00\xc0\x00\x02", true},       /* 192.0.2.0/24 */
		{MSG_OPT_ECS, 8, "\x00\x01\x18\x00\xc0\x00\x02\x00", false},  /* one address byte too many */
		{MSG_OPT_ECS, 6, "\x00\x01\x18\x00\xc0\x00", false},          /* one too few */
		{MSG_OPT_ECS, 7, "\x00\x01\x17\x00\xc0\x00\x03", false},      /* a bit set past /23 */
		{MSG_OPT_ECS, 7, "\x00\x01\x18\x10\xc0\x00\x02", false},      /* SCOPE set in a query */
		{MSG_OPT_ECS, 8, "\x00\x01\x21\x00\xc0\x00\x02\x01", false},  /* /33 for IPv4 */
		{MSG_OPT_ECS, 4, "\x00\x03\x00\x00", false},                  /* no such family */
		{MSG_OPT_ECS, 4, "\x00\x02\x00\x00", true},                   /* ::/0 */
		{MSG_OPT_COOKIE, 8, "12345678", true},
		{MSG_OPT_COOKIE, 4, "1234", false},
		{MSG_OPT_COOKIE, 12, "123456789012", false},
		{MSG_OPT_COOKIE, 16, "1234567890123456", true},
		{MSG_OPT_EXPIRE, 0, "", true},
		{MSG_OPT_EXPIRE, 4, "\x00\x00\x00\x01", false},
		{MSG_OPT_KEY_TAG, 3, "\x00\x01\x02", false},
		{MSG_OPT_KEY_TAG, 4, "\x00\x01\x00\x02", true},
		{MSG_OPT_CHAIN, 6, "\x04test\x00", true},
		{MSG_OPT_CHAIN, 5, "\x04test", false},
		{65001, 3, "abc", true}, /* unknown: only framing is checked */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t opt[64];
		msg_put16(opt, cases[i].code);
		msg_put16(opt + 2, cases[i].len);
		memcpy(opt + 4, cases[i].data, cases[i].len);
		pb_hdr(&p, 7, PB_RD, 1, 0, 0, 1);
		pb_question(&p, "www.test", KNOT_RRTYPE_A, KNOT_CLASS_IN);
		pb_opt(&p, 1232, false, opt, (uint16_t)(4 + cases[i].len));
		assert_int_equal(parse(&p, &mi), cases[i].ok ? MSG_OK : MSG_FORMERR);
	}
}

static void question_class_and_type(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	static const struct {
		uint16_t type, cls;
		enum msg_verdict v;
	} cases[] = {
		{KNOT_RRTYPE_A, KNOT_CLASS_IN, MSG_OK},      {KNOT_RRTYPE_TXT, KNOT_CLASS_CH, MSG_OK},
		{KNOT_RRTYPE_A, 4, MSG_OK},                  {KNOT_RRTYPE_ANY, KNOT_CLASS_ANY, MSG_OK},
		{KNOT_RRTYPE_A, 0, MSG_FORMERR},             {KNOT_RRTYPE_A, KNOT_CLASS_NONE, MSG_FORMERR},
		{KNOT_RRTYPE_A, 2, MSG_REFUSED},             {KNOT_RRTYPE_A, 999, MSG_REFUSED},
		{0, KNOT_CLASS_IN, MSG_FORMERR},             {KNOT_RRTYPE_OPT, KNOT_CLASS_IN, MSG_FORMERR},
		{KNOT_RRTYPE_TSIG, KNOT_CLASS_IN, MSG_FORMERR}, {KNOT_RRTYPE_AXFR, KNOT_CLASS_IN, MSG_REFUSED},
		{KNOT_RRTYPE_IXFR, KNOT_CLASS_IN, MSG_REFUSED}, {KNOT_RRTYPE_TKEY, KNOT_CLASS_IN, MSG_REFUSED},
		{253, KNOT_CLASS_IN, MSG_NOTIMP},            {128, KNOT_CLASS_IN, MSG_NOTIMP},
		{65280, KNOT_CLASS_IN, MSG_OK},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pb_hdr(&p, 7, PB_RD, 1, 0, 0, 0);
		pb_question(&p, "www.test", cases[i].type, cases[i].cls);
		assert_int_equal(parse(&p, &mi), cases[i].v);
		assert_true(mi.has_question); /* the reply carries it */
	}
}

static void normalize_raises_udp_size_and_drops_hop_options(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	/* keepalive, a cookie, padding: the cookie stays */
	static const uint8_t opts[] = {0, 11, 0, 0, 0, 10, 0, 8, '1', '2', '3', '4', '5', '6', '7', '8', 0, 12, 0, 3, 0, 0, 0};
	pb_hdr(&p, 7, PB_RD, 1, 0, 0, 1);
	pb_question(&p, "www.test", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_opt(&p, 100, false, opts, sizeof(opts));
	assert_int_equal(parse(&p, &mi), MSG_OK);
	size_t len = msg_normalize_query(p.b, p.len, &mi);
	assert_int_equal(len, p.len - 4 - 7);
	assert_int_equal(mi.end, len);
	assert_int_equal(msg_get16(p.b + mi.opt_off + 3), 512);
	assert_int_equal(msg_get16(p.b + mi.opt_off + 9), 12);
	assert_int_equal(msg_get16(p.b + mi.opt_off + 11), MSG_OPT_COOKIE);
	struct msg_info again;
	assert_int_equal(parse_len(p.b, len, &again), MSG_OK);
	assert_int_equal(again.opt_len, mi.opt_len);
	/* an OPT that a TSIG follows is left alone */
	pb_hdr(&p, 7, PB_RD, 1, 0, 0, 2);
	pb_question(&p, "www.test", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_opt(&p, 100, false, opts, sizeof(opts));
	pb_rr(&p, "key", KNOT_RRTYPE_TSIG, KNOT_CLASS_ANY, 0, tsig_rdata, sizeof(tsig_rdata));
	assert_int_equal(parse(&p, &mi), MSG_OK);
	assert_int_equal(msg_normalize_query(p.b, p.len, &mi), p.len);
}

/* ---- msg_parse_query: findings of fuzz/fuzz_query.c ----------------------- */

/* The check only reads: libknot's knot_pkt_parse strips a TSIG from the
 * buffer it parses (ARCOUNT - 1), which made the forwarded query one record
 * short, its TSIG trailing bytes (fuzz/corpus/fuzz_query/tsig-*). */
static void query_check_only_reads(void **state)
{
	(void)state;
	static struct pb p;
	static uint8_t before[PB_CAP];
	struct msg_info mi;
	pb_hdr(&p, 7, PB_RD, 1, 0, 0, 2);
	pb_question(&p, "www.test", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_opt(&p, 1232, false, NULL, 0);
	pb_rr(&p, "key", KNOT_RRTYPE_TSIG, KNOT_CLASS_ANY, 0, tsig_rdata, sizeof(tsig_rdata));
	memcpy(before, p.b, p.len);
	assert_int_equal(msg_parse_query(p.b, p.len, &mi), MSG_OK);
	assert_memory_equal(p.b, before, p.len);
	assert_int_equal(mi.end, p.len);
}

/* A compression pointer may name any earlier offset (RFC 1035 4.1.4), the
 * ID field too; but a circuit writes its own ID there, and upstream the name
 * is another one or none, and the query malformed
 * (fuzz/corpus/fuzz_query/crash-64a26c7303dde3a4a89b6d8f4e34ac40e11d40ff,
 * finding-id-pointer-*). */
static void pointer_to_the_id_is_formerr(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	static const uint8_t a[4] = {192, 0, 2, 1};
	/* an additional record owned by offset 0, the ID's first byte (0x00: the root) */
	pb_hdr(&p, 0x002d, PB_RD, 1, 0, 0, 1);
	pb_question(&p, "www.test", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_u16(&p, 0xc000);
	pb_rr_tail(&p, KNOT_RRTYPE_A, KNOT_CLASS_IN, 60, a, 4);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);
	assert_true(mi.has_question);
	/* an NS record whose RDATA points at offset 0: with ID 0x0141 and RD the
	 * name 1 'A' 1 0x00 0 (ID, flags, QDCOUNT's first byte) */
	pb_hdr(&p, 0x0141, PB_RD, 1, 0, 1, 0);
	pb_question(&p, "www.test", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_rr(&p, "test", KNOT_RRTYPE_NS, KNOT_CLASS_IN, 60, "\xc0\x00", 2);
	assert_int_equal(parse(&p, &mi), MSG_FORMERR);
	/* control: the same records pointing at the question's name */
	pb_hdr(&p, 0x002d, PB_RD, 1, 0, 0, 1);
	pb_question(&p, "www.test", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_u16(&p, 0xc000 | MSG_HDR);
	pb_rr_tail(&p, KNOT_RRTYPE_A, KNOT_CLASS_IN, 60, a, 4);
	assert_int_equal(parse(&p, &mi), MSG_OK);
	pb_hdr(&p, 0x0141, PB_RD, 1, 0, 1, 0);
	pb_question(&p, "www.test", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_rr(&p, "test", KNOT_RRTYPE_NS, KNOT_CLASS_IN, 60, "\xc0\x0c", 2);
	assert_int_equal(parse(&p, &mi), MSG_OK);
}

/* An answer whose names reach into the header, or whose lengths run past
 * its end, is discarded (fuzz/README.md findings A and B); the header comes
 * back as it was. */
static void scan_answer_rejects_header_pointers(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	static const uint8_t a[4] = {192, 0, 2, 1};
	pb_hdr(&p, 0x1234, PB_QR | PB_RD, 1, 1, 0, 0);
	pb_question(&p, "www.test", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_u16(&p, 0xc000 | MSG_HDR); /* owner: the qname */
	pb_rr_tail(&p, KNOT_RRTYPE_A, KNOT_CLASS_IN, 60, a, 4);
	uint8_t before[MSG_HDR];
	memcpy(before, p.b, MSG_HDR);
	assert_int_equal(msg_scan_answer(p.b, p.len, NULL, &mi), 0);
	assert_memory_equal(p.b, before, MSG_HDR);
	msg_put16(p.b + MSG_HDR + 14, 0xc000 | 5); /* owner: offset 5, QDCOUNT and ANCOUNT read as labels */
	assert_int_equal(msg_scan(p.b, p.len, &mi), 0); /* a plain walk follows it */
	assert_int_equal(msg_scan_answer(p.b, p.len, NULL, &mi), ERR_MALFORMED);
	assert_memory_equal(p.b, before, MSG_HDR);
	msg_put16(p.b + MSG_HDR + 14, 0xc000 | MSG_HDR);
	msg_put16(p.b + p.len - 6, 255); /* RDLENGTH past the end */
	assert_int_equal(msg_scan_answer(p.b, p.len, NULL, &mi), ERR_MALFORMED);
}

/* A name read through a pointer ends before the pointer (RFC 1035 4.1.4):
 * fuzz_upstream_stream's input, an answer whose owner points into the
 * question's QTYPE and whose labels run on from there past the pointer and
 * into the OPT -- which rewrite_answer removes -- is malformed. */
static void names_read_through_a_pointer_end_before_it(void **state)
{
	(void)state;
	static const uint8_t ans[163] = {0x0a, 0x0a, 0x81, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x03, 0x77, 0x77, 0x77, 0x04, 0x74, 0x65, 0x73, 0x74, 0x00, 0x00, 0x01, 0x00, 0x01, 0xc0, 0x17, 0xa9, 0x38, 0x06, 0x00, 0xf8, 0xff, 0x0f, 0x2c, 0x00, 0x04, 0xc0, 0x00, 0x00, 0x01, 0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x16, 0x00, 0x00, 0x00, 0x00, 0x6e, 0x00, 0x0b, 0x00, 0x02, 0x01, 0x2c, 0x00, 0x0c, 0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5d, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x77, 0x77, 0x77, 0x04, 0x74, 0x00};
	struct msg_info mi;
	assert_int_not_equal(msg_scan(ans, sizeof(ans), &mi), 0);
	/* the same answer with its owner a pointer to the question's name: fine */
	uint8_t ok[sizeof(ans)];
	memcpy(ok, ans, sizeof(ans));
	ok[27] = 0x0c;
	assert_int_equal(msg_scan(ok, sizeof(ok), &mi), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(short_is_dropped),
		cmocka_unit_test(error_reply_copies_do_bit),
		cmocka_unit_test(notimp_reply_keeps_opt),
		cmocka_unit_test(qr_is_dropped),
		cmocka_unit_test(other_opcodes_are_notimp),
		cmocka_unit_test(qdcount_must_be_one),
		cmocka_unit_test(plain_query_facts),
		cmocka_unit_test(edns_facts),
		cmocka_unit_test(opt_position_and_trailing_bytes),
		cmocka_unit_test(knot_built_query),
		cmocka_unit_test(bad_labels),
		cmocka_unit_test(compression_in_question),
		cmocka_unit_test(compression_loops_in_records),
		cmocka_unit_test(overlong_name),
		cmocka_unit_test(truncated_question),
		cmocka_unit_test(bad_record_lengths),
		cmocka_unit_test(misplaced_or_duplicate_opt),
		cmocka_unit_test(over_max_length),
		cmocka_unit_test(scan_answers),
		cmocka_unit_test(answer_facts),
		cmocka_unit_test(answer_matches),
		cmocka_unit_test(answer_mismatches),
		cmocka_unit_test(truncate_for_512_and_1232_clients),
		cmocka_unit_test(truncate_opt_only_when_it_fits),
		cmocka_unit_test(truncate_opt_in_the_middle),
		cmocka_unit_test(truncate_gives_zero),
		cmocka_unit_test(error_reply_keeps_id_flags_question_opt),
		cmocka_unit_test(error_reply_for_bad_queries),
		cmocka_unit_test(error_reply_small_buffer),
		cmocka_unit_test(find_option),
		cmocka_unit_test(remove_option_each),
		cmocka_unit_test(remove_all_options),
		cmocka_unit_test(attacker_opt_forms_are_formerr),
		cmocka_unit_test(scan_answer_rejects_header_pointers),
		cmocka_unit_test(bad_rdata_is_formerr),
		cmocka_unit_test(option_syntax),
		cmocka_unit_test(question_class_and_type),
		cmocka_unit_test(normalize_raises_udp_size_and_drops_hop_options),
		cmocka_unit_test(query_check_only_reads),
		cmocka_unit_test(pointer_to_the_id_is_formerr),
		cmocka_unit_test(names_read_through_a_pointer_end_before_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
