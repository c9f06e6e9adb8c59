/* test_rewrite.c -- src/circuit/rewrite.c: what a circuit writes for a query
 * is one frame holding one valid query, whatever its size (issue 7, fault 2:
 * a 65,534-byte query once got a wrapped length prefix from the keepalive
 * option), and rewrite_answer takes away exactly what was added. */
#include "test.h"
#include "circuit/rewrite.h"
#include "dns/msg.h"

static uint8_t out[2 + 65535 + REWRITE_GROWTH];

/* The frame in out holds one message that libknot parses whole. */
static size_t check_one_frame(size_t n, uint16_t id)
{
	assert_true(n >= 2 + MSG_HDR);
	size_t len = msg_get16(out);
	assert_int_equal(len, n - 2);
	knot_pkt_t *pkt = knot_pkt_new(out + 2, (uint16_t)len, NULL);
	assert_non_null(pkt);
	assert_int_equal(knot_pkt_parse(pkt, 0), KNOT_EOK);
	knot_pkt_free(pkt);
	assert_int_equal(knot_wire_get_id(out + 2), id);
	return len;
}

/* A query of exactly total bytes: its OPT holds one private option that
 * fills it up (the attacker's shape). */
static size_t big_query(struct pb *p, size_t total)
{
	pb_hdr(p, 1, PB_RD, 1, 0, 0, 1);
	pb_question(p, "www.test", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	size_t fill = total - p->len - 11 - 4;
	static uint8_t opt[65535];
	msg_put16(opt, 65001);
	msg_put16(opt + 2, (uint16_t)fill);
	memset(opt + 4, 0, fill);
	pb_opt(p, 1232, false, opt, (uint16_t)(4 + fill));
	assert_int_equal(p->len, total);
	return total;
}

static void near_max_queries_stay_one_frame(void **state)
{
	(void)state;
	static struct pb p;
	for (size_t total = 65400; total <= 65535; total++) {
		struct msg_info mi;
		big_query(&p, total);
		assert_int_equal(msg_parse_query(p.b, p.len, &mi), MSG_OK);
		for (int tls = 0; tls < 2; tls++) {
			struct rewrite_opts o = {.id = 0x4242, .keepalive = true, .pad_block = tls ? REWRITE_PAD_BLOCK : 0};
			unsigned added;
			size_t len = check_one_frame(rewrite_query(out, p.b, p.len, &mi, &o, &added), 0x4242);
			assert_true(len <= MSG_MAX);
			/* what fits is added, what does not is left out */
			assert_int_equal((added & REWRITE_KEEPALIVE) != 0, total + 4 <= MSG_MAX);
			if (added & REWRITE_PADDING)
				assert_int_equal(len % REWRITE_PAD_BLOCK, 0);
		}
	}
}

static void small_query_gets_opt_keepalive_and_padding(void **state)
{
	(void)state;
	static struct pb p;
	struct msg_info mi;
	pb_query(&p, 9, "www.test", KNOT_RRTYPE_A, 0, false);
	assert_int_equal(msg_parse_query(p.b, p.len, &mi), MSG_OK);
	struct rewrite_opts o = {.id = 77, .keepalive = true, .pad_block = REWRITE_PAD_BLOCK};
	unsigned added;
	size_t len = check_one_frame(rewrite_query(out, p.b, p.len, &mi, &o, &added), 77);
	assert_int_equal(added, REWRITE_OPT | REWRITE_KEEPALIVE | REWRITE_PADDING);
	assert_int_equal(len, 128);
	/* the answer: the server echoes a keepalive of 30 s and pads; all of it goes */
	uint8_t *m = out + 2;
	knot_wire_set_qr(m);
	struct msg_info ami;
	assert_int_equal(msg_scan(m, len, &ami), 0);
	size_t ka = msg_find_option(m, ami.opt_off, ami.opt_len, MSG_OPT_TCP_KEEPALIVE);
	assert_true(ka != 0);
	/* turn our empty keepalive option into the server's 2-byte one */
	memmove(m + ka + 6, m + ka + 4, len - ka - 4);
	msg_put16(m + ka + 2, 2);
	msg_put16(m + ka + 4, 300);
	msg_put16(m + ami.opt_off + 9, (uint16_t)(msg_get16(m + ami.opt_off + 9) + 2));
	uint32_t ka_ms;
	size_t alen = rewrite_answer(m, len + 2, added, &ka_ms);
	assert_int_equal(ka_ms, 30000);
	assert_int_equal(alen, p.len); /* the OPT we added is gone whole */
	assert_int_equal(knot_wire_get_arcount(m), 0);
}

/* A query without OPT that rewrite_query, asked for keepalive and padding,
 * must write as it came but for the ID: it may not add an OPT to it. */
static void assert_only_id_rewritten(const struct pb *p)
{
	struct msg_info mi;
	assert_int_equal(msg_parse_query(p->b, p->len, &mi), MSG_OK);
	struct rewrite_opts o = {.id = 5, .keepalive = true, .pad_block = REWRITE_PAD_BLOCK};
	unsigned added;
	size_t len = check_one_frame(rewrite_query(out, p->b, p->len, &mi, &o, &added), 5);
	assert_int_equal(added, 0);
	assert_int_equal(len, p->len);
	assert_memory_equal(out + 4, p->b + 2, p->len - 2);
}

static void no_opt_added_after_other_additional_records(void **state)
{
	(void)state;
	static struct pb p;
	static const uint8_t a[4] = {192, 0, 2, 1};
	pb_hdr(&p, 1, PB_RD, 1, 0, 0, 1);
	pb_question(&p, "www.test", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_rr(&p, "www.test", KNOT_RRTYPE_A, KNOT_CLASS_IN, 60, a, 4);
	assert_only_id_rewritten(&p);
}

/* ---- findings of fuzz/fuzz_query.c ---------------------------------------- */

/* A record owned by a pointer to ARCOUNT's low byte (0x00: the root) named
 * nothing at all once an OPT for padding made ARCOUNT 1: the upstream got a
 * malformed query (fuzz/corpus/fuzz_query/finding-arcount-pointer-*). */
static void no_opt_added_where_a_record_may_read_arcount(void **state)
{
	(void)state;
	static struct pb p;
	static const uint8_t a[4] = {192, 0, 2, 1};
	for (int section = 0; section < 2; section++) {
		pb_hdr(&p, 0x0707, PB_RD, 1, section == 0, section == 1, 0);
		pb_question(&p, "www.test", KNOT_RRTYPE_A, KNOT_CLASS_IN);
		pb_u16(&p, 0xc000 | 11);
		pb_rr_tail(&p, KNOT_RRTYPE_A, KNOT_CLASS_IN, 60, a, 4);
		assert_only_id_rewritten(&p);
	}
}

/* A TSIG RDATA (RFC 8945 4.2): algorithm "hmac-sha", times, an empty MAC. */
static const uint8_t tsig_rdata[] = {0x08, 'h', 'm', 'a', 'c', '-', 's', 'h', 'a', 0, 0, 0, 0, 0, 0, 0,
				     1, 0x2c, 0, 0, 0, 7, 0, 0, 0, 0};

/* An answer whose OPT a TSIG follows lost its padding option, and with it
 * the signature the client checks
 * (fuzz/corpus/fuzz_query/crash-fc79388c80ca5962ea86b9f85656b0848d3b25dc). */
static void answer_opt_behind_tsig_stays_as_signed(void **state)
{
	(void)state;
	static struct pb p;
	static uint8_t before[PB_CAP];
	static const uint8_t pads[] = {0, MSG_OPT_PADDING, 0, 4, 0, 0, 0, 0, 0, MSG_OPT_PADDING, 0, 0};
	uint32_t ka_ms;
	pb_hdr(&p, 7, PB_QR | PB_RD | PB_RA, 1, 0, 0, 2);
	pb_question(&p, "www.test", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_opt(&p, 1232, false, pads, 8);
	pb_rr(&p, "key", KNOT_RRTYPE_TSIG, KNOT_CLASS_ANY, 0, tsig_rdata, sizeof(tsig_rdata));
	memcpy(before, p.b, p.len);
	assert_int_equal(rewrite_answer(p.b, p.len, REWRITE_KEEPALIVE | REWRITE_PADDING, &ka_ms), p.len);
	assert_memory_equal(p.b, before, p.len);
	/* control: the OPT last, the padding goes -- both options, should an
	 * upstream send two (RFC 7830 allows one) */
	pb_hdr(&p, 7, PB_QR | PB_RD | PB_RA, 1, 0, 0, 1);
	pb_question(&p, "www.test", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	size_t bare = p.len + 11;
	pb_opt(&p, 1232, false, pads, sizeof(pads));
	assert_int_equal(rewrite_answer(p.b, p.len, REWRITE_PADDING, &ka_ms), bare);
	assert_int_equal(msg_get16(p.b + bare - 2), 0); /* RDLENGTH */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(near_max_queries_stay_one_frame),
		cmocka_unit_test(small_query_gets_opt_keepalive_and_padding),
		cmocka_unit_test(no_opt_added_after_other_additional_records),
		cmocka_unit_test(no_opt_added_where_a_record_may_read_arcount),
		cmocka_unit_test(answer_opt_behind_tsig_stays_as_signed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
