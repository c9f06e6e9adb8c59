/* test_mdns.c -- src/upstream/mdns.c: mDNS responses as responders send
 * them (ID 0, no question section, cache-flush bit, long TTLs, goodbyes,
 * CNAMEs, SRV with the target's addresses in the additional section) turned
 * into unicast answers to the client's query; and the multicast query. The
 * responses are built byte by byte (test.h), the answers read with libknot. */
#include "test.h"
#include "dns/msg.h"
#include "upstream/mdns.h"

#define FLUSH 0x8000 /* RFC 6762 10.2 cache-flush bit in the class */
#define RESP_FLAGS 0x8400 /* QR=1 AA=1, as responders send */

static const uint8_t ADDR4[4] = {10, 77, 0, 2};
static const uint8_t ADDR4B[4] = {10, 77, 0, 3};
static const uint8_t ADDR6[16] = {0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};

struct conv {
	struct pb q;            /* the client query */
	struct msg_info mi;
	uint8_t out[4096];
	size_t len;
	knot_pkt_t *ans;        /* out, parsed */
};

static void client_query(struct conv *c, uint16_t id, const char *name, uint16_t type, uint16_t udp_size)
{
	pb_query(&c->q, id, name, type, udp_size, false);
	assert_int_equal(msg_parse_query(c->q.b, c->q.len, &c->mi), MSG_OK);
}

static enum mdns_verdict convert(struct conv *c, const struct pb *resp)
{
	/* a heap copy of exactly its length: ASan sees any read past the end */
	uint8_t *copy = malloc(resp->len);
	assert_non_null(copy);
	memcpy(copy, resp->b, resp->len);
	enum mdns_verdict v = mdns_convert(copy, resp->len, c->q.b, &c->mi, c->out, sizeof(c->out), &c->len);
	free(copy);
	if (v != MDNS_ANSWER)
		return v;
	c->ans = knot_pkt_new(c->out, (uint16_t)c->len, NULL);
	assert_non_null(c->ans);
	assert_int_equal(knot_pkt_parse(c->ans, 0), KNOT_EOK);
	return v;
}

static void done(struct conv *c)
{
	knot_pkt_free(c->ans);
	c->ans = NULL;
}

static const knot_rrset_t *rr_at(const struct conv *c, knot_section_t sec, uint16_t i)
{
	const knot_pktsection_t *s = knot_pkt_section(c->ans, sec);
	assert_true(i < s->count);
	return knot_pkt_rr(s, i);
}

static uint16_t count(const struct conv *c, knot_section_t sec)
{
	return knot_pkt_section(c->ans, sec)->count;
}

/* A header as mDNS responders write it: ID 0, no question (RFC 6762 6). */
static void resp_hdr(struct pb *p, uint16_t an, uint16_t ar)
{
	pb_hdr(p, 0, RESP_FLAGS, 0, an, 0, ar);
}

static void header_is_unicast(const struct conv *c, uint16_t id)
{
	assert_int_equal(knot_wire_get_id(c->out), id);
	assert_true(knot_wire_get_qr(c->out));
	assert_false(knot_wire_get_aa(c->out));
	assert_true(knot_wire_get_ra(c->out));
	assert_true(knot_wire_get_rd(c->out)); /* the client's RD=1 */
	assert_false(knot_wire_get_tc(c->out));
	assert_int_equal(knot_wire_get_rcode(c->out), KNOT_RCODE_NOERROR);
	/* the client's question, byte for byte */
	assert_int_equal(knot_wire_get_qdcount(c->out), 1);
	assert_memory_equal(c->out + MSG_HDR, c->q.b + MSG_HDR, c->mi.qname_len + 4u);
}

/* ---- tests ---- */

static void a_without_question_gets_id_question_flags(void **state)
{
	(void)state;
	static struct conv c;
	static struct pb r;
	client_query(&c, 0x1234, "printer.local", KNOT_RRTYPE_A, 0);
	resp_hdr(&r, 1, 0);
	pb_rr(&r, "printer.local", KNOT_RRTYPE_A, KNOT_CLASS_IN | FLUSH, 120, ADDR4, 4);
	assert_int_equal(convert(&c, &r), MDNS_ANSWER);
	header_is_unicast(&c, 0x1234);
	assert_int_equal(count(&c, KNOT_ANSWER), 1);
	const knot_rrset_t *a = rr_at(&c, KNOT_ANSWER, 0);
	assert_int_equal(a->type, KNOT_RRTYPE_A);
	assert_int_equal(a->rclass, KNOT_CLASS_IN); /* cache-flush bit cleared */
	assert_memory_equal(a->rrs.rdata->data, ADDR4, 4);
	done(&c);
}

static void ttl_is_capped(void **state)
{
	(void)state;
	static struct conv c;
	static struct pb r;
	client_query(&c, 7, "printer.local", KNOT_RRTYPE_AAAA, 0);
	resp_hdr(&r, 1, 0);
	pb_rr(&r, "printer.local", KNOT_RRTYPE_AAAA, KNOT_CLASS_IN | FLUSH, 4500, ADDR6, 16);
	assert_int_equal(convert(&c, &r), MDNS_ANSWER);
	assert_int_equal(rr_at(&c, KNOT_ANSWER, 0)->ttl, MDNS_TTL_CAP_S);
	done(&c);
	/* a short TTL stays as it is */
	resp_hdr(&r, 1, 0);
	pb_rr(&r, "printer.local", KNOT_RRTYPE_AAAA, KNOT_CLASS_IN, 10, ADDR6, 16);
	assert_int_equal(convert(&c, &r), MDNS_ANSWER);
	assert_int_equal(rr_at(&c, KNOT_ANSWER, 0)->ttl, 10);
	done(&c);
}

static void legacy_unicast_with_question_and_id(void **state)
{
	(void)state;
	static struct conv c;
	static struct pb r;
	client_query(&c, 99, "printer.local", KNOT_RRTYPE_A, 0);
	/* RFC 6762 6.7: to a query from a port other than 5353, the ID and question are repeated */
	pb_hdr(&r, 0, RESP_FLAGS, 1, 2, 0, 0);
	pb_question(&r, "printer.local", KNOT_RRTYPE_A, KNOT_CLASS_IN);
	pb_rr(&r, "PRINTER.local", KNOT_RRTYPE_A, KNOT_CLASS_IN, 10, ADDR4, 4);
	pb_rr(&r, "printer.local", KNOT_RRTYPE_A, KNOT_CLASS_IN, 10, ADDR4B, 4);
	assert_int_equal(convert(&c, &r), MDNS_ANSWER);
	header_is_unicast(&c, 99);
	assert_int_equal(count(&c, KNOT_ANSWER), 2); /* the owner compared case-insensitively */
	done(&c);
}

static void other_name_or_type_is_not_for_it(void **state)
{
	(void)state;
	static struct conv c;
	static struct pb r;
	client_query(&c, 1, "printer.local", KNOT_RRTYPE_A, 0);
	resp_hdr(&r, 1, 0);
	pb_rr(&r, "scanner.local", KNOT_RRTYPE_A, KNOT_CLASS_IN | FLUSH, 120, ADDR4, 4);
	assert_int_equal(convert(&c, &r), MDNS_NOT_FOR_IT);
	resp_hdr(&r, 1, 0);
	pb_rr(&r, "printer.local", KNOT_RRTYPE_AAAA, KNOT_CLASS_IN | FLUSH, 120, ADDR6, 16);
	assert_int_equal(convert(&c, &r), MDNS_NOT_FOR_IT);
	/* a goodbye (TTL 0, RFC 6762 10.1) says the record is gone: no answer */
	resp_hdr(&r, 1, 0);
	pb_rr(&r, "printer.local", KNOT_RRTYPE_A, KNOT_CLASS_IN | FLUSH, 0, ADDR4, 4);
	assert_int_equal(convert(&c, &r), MDNS_NOT_FOR_IT);
}

static void not_a_response_is_bad(void **state)
{
	(void)state;
	static struct conv c;
	static struct pb r;
	client_query(&c, 1, "printer.local", KNOT_RRTYPE_A, 0);
	pb_hdr(&r, 0, 0x0000, 0, 1, 0, 0); /* QR=0: another host's query */
	pb_rr(&r, "printer.local", KNOT_RRTYPE_A, KNOT_CLASS_IN, 120, ADDR4, 4);
	assert_int_equal(convert(&c, &r), MDNS_BAD);
	resp_hdr(&r, 1, 0);
	pb_name(&r, "printer.local"); /* cut in the middle of the record */
	pb_u16(&r, KNOT_RRTYPE_A);
	assert_int_equal(convert(&c, &r), MDNS_BAD);
	pb_hdr(&r, 0, RESP_FLAGS | 3, 0, 0, 0, 0); /* rcode 3 */
	assert_int_equal(convert(&c, &r), MDNS_BAD);
	r.len = 5;
	assert_int_equal(convert(&c, &r), MDNS_BAD);
}

static void cname_is_followed(void **state)
{
	(void)state;
	static struct conv c;
	static struct pb r;
	static uint8_t target[64];
	client_query(&c, 5, "www.local", KNOT_RRTYPE_A, 0);
	assert_non_null(knot_dname_from_str(target, "printer.local.", sizeof(target)));
	resp_hdr(&r, 2, 1);
	pb_rr(&r, "www.local", KNOT_RRTYPE_CNAME, KNOT_CLASS_IN | FLUSH, 4500, target, (uint16_t)knot_dname_size(target));
	pb_rr(&r, "other.local", KNOT_RRTYPE_TXT, KNOT_CLASS_IN, 4500, "\x03x=y", 4);
	pb_rr(&r, "printer.local", KNOT_RRTYPE_A, KNOT_CLASS_IN | FLUSH, 120, ADDR4, 4); /* in the additional section */
	assert_int_equal(convert(&c, &r), MDNS_ANSWER);
	header_is_unicast(&c, 5);
	assert_int_equal(count(&c, KNOT_ANSWER), 2);
	const knot_rrset_t *cn = rr_at(&c, KNOT_ANSWER, 0), *a = rr_at(&c, KNOT_ANSWER, 1);
	assert_int_equal(cn->type, KNOT_RRTYPE_CNAME);
	assert_int_equal(cn->rclass, KNOT_CLASS_IN);
	assert_int_equal(cn->ttl, MDNS_TTL_CAP_S);
	assert_true(knot_dname_is_case_equal(knot_cname_name(cn->rrs.rdata), target));
	assert_int_equal(a->type, KNOT_RRTYPE_A);
	assert_true(knot_dname_is_case_equal(a->owner, target));
	/* the unrelated TXT stays as an additional record */
	assert_int_equal(count(&c, KNOT_ADDITIONAL), 1);
	assert_int_equal(rr_at(&c, KNOT_ADDITIONAL, 0)->type, KNOT_RRTYPE_TXT);
	done(&c);
	/* a CNAME whose target is not in the response: nothing to answer with yet */
	resp_hdr(&r, 1, 0);
	pb_rr(&r, "www.local", KNOT_RRTYPE_CNAME, KNOT_CLASS_IN, 120, target, (uint16_t)knot_dname_size(target));
	assert_int_equal(convert(&c, &r), MDNS_NOT_FOR_IT);
	/* asked for the CNAME itself: it is the answer */
	client_query(&c, 6, "www.local", KNOT_RRTYPE_CNAME, 0);
	assert_int_equal(convert(&c, &r), MDNS_ANSWER);
	assert_int_equal(count(&c, KNOT_ANSWER), 1);
	done(&c);
}

static void cname_loop_ends(void **state)
{
	(void)state;
	static struct conv c;
	static struct pb r;
	static uint8_t a[64], b[64];
	client_query(&c, 5, "a.local", KNOT_RRTYPE_A, 0);
	assert_non_null(knot_dname_from_str(a, "a.local.", sizeof(a)));
	assert_non_null(knot_dname_from_str(b, "b.local.", sizeof(b)));
	resp_hdr(&r, 2, 0);
	pb_rr(&r, "a.local", KNOT_RRTYPE_CNAME, KNOT_CLASS_IN, 120, b, (uint16_t)knot_dname_size(b));
	pb_rr(&r, "b.local", KNOT_RRTYPE_CNAME, KNOT_CLASS_IN, 120, a, (uint16_t)knot_dname_size(a));
	assert_int_equal(convert(&c, &r), MDNS_NOT_FOR_IT);
}

static void srv_keeps_target_addresses(void **state)
{
	(void)state;
	static struct conv c;
	static struct pb r, srv;
	client_query(&c, 0x4242, "test._ipp._tcp.local", KNOT_RRTYPE_SRV, 1232);
	srv.len = 0;
	pb_u16(&srv, 0);   /* priority */
	pb_u16(&srv, 0);   /* weight */
	pb_u16(&srv, 631); /* port */
	pb_name(&srv, "printer.local");
	resp_hdr(&r, 1, 4);
	pb_rr(&r, "test._ipp._tcp.local", KNOT_RRTYPE_SRV, KNOT_CLASS_IN | FLUSH, 120, srv.b, (uint16_t)srv.len);
	pb_rr(&r, "printer.local", KNOT_RRTYPE_A, KNOT_CLASS_IN | FLUSH, 120, ADDR4, 4);
	pb_rr(&r, "printer.local", KNOT_RRTYPE_AAAA, KNOT_CLASS_IN | FLUSH, 120, ADDR6, 16);
	pb_rr(&r, "test._ipp._tcp.local", KNOT_RRTYPE_SRV, KNOT_CLASS_IN | FLUSH, 120, srv.b, (uint16_t)srv.len); /* repeated */
	pb_opt(&r, 1440, false, NULL, 0); /* responders may send EDNS; not passed on */
	assert_int_equal(convert(&c, &r), MDNS_ANSWER);
	header_is_unicast(&c, 0x4242);
	assert_int_equal(count(&c, KNOT_ANSWER), 1);
	assert_int_equal(rr_at(&c, KNOT_ANSWER, 0)->type, KNOT_RRTYPE_SRV);
	/* the target's A and AAAA, and our own OPT for the client that sent one */
	assert_int_equal(count(&c, KNOT_ADDITIONAL), 3);
	assert_int_equal(rr_at(&c, KNOT_ADDITIONAL, 0)->type, KNOT_RRTYPE_A);
	assert_int_equal(rr_at(&c, KNOT_ADDITIONAL, 0)->rclass, KNOT_CLASS_IN);
	assert_int_equal(rr_at(&c, KNOT_ADDITIONAL, 1)->type, KNOT_RRTYPE_AAAA);
	assert_non_null(c.ans->opt_rr);
	assert_int_equal(knot_edns_get_payload(c.ans->opt_rr), 1232);
	done(&c);
}

static void txt_and_ptr(void **state)
{
	(void)state;
	static struct conv c;
	static struct pb r;
	static uint8_t inst[64];
	client_query(&c, 3, "test._ipp._tcp.local", KNOT_RRTYPE_TXT, 0);
	resp_hdr(&r, 1, 0);
	pb_rr(&r, "test._ipp._tcp.local", KNOT_RRTYPE_TXT, KNOT_CLASS_IN | FLUSH, 4500, "\x0erp=printers/x", 15);
	assert_int_equal(convert(&c, &r), MDNS_ANSWER);
	const knot_rrset_t *t = rr_at(&c, KNOT_ANSWER, 0);
	assert_int_equal(t->type, KNOT_RRTYPE_TXT);
	assert_int_equal(t->ttl, MDNS_TTL_CAP_S);
	assert_memory_equal(t->rrs.rdata->data, "\x0erp=printers/x", 15);
	done(&c);
	/* service browsing: PTR (shared records: no cache-flush bit) */
	client_query(&c, 4, "_ipp._tcp.local", KNOT_RRTYPE_PTR, 0);
	assert_non_null(knot_dname_from_str(inst, "test._ipp._tcp.local.", sizeof(inst)));
	resp_hdr(&r, 1, 0);
	pb_rr(&r, "_ipp._tcp.local", KNOT_RRTYPE_PTR, KNOT_CLASS_IN, 4500, inst, (uint16_t)knot_dname_size(inst));
	assert_int_equal(convert(&c, &r), MDNS_ANSWER);
	assert_int_equal(rr_at(&c, KNOT_ANSWER, 0)->type, KNOT_RRTYPE_PTR);
	done(&c);
}

static void other_types_and_sections_left_out(void **state)
{
	(void)state;
	static struct conv c;
	static struct pb r, nsec;
	client_query(&c, 3, "printer.local", KNOT_RRTYPE_A, 0);
	nsec.len = 0;
	pb_name(&nsec, "printer.local");
	pb_bytes(&nsec, "\x00\x04\x40\x00\x00\x08", 6); /* A, AAAA */
	pb_hdr(&r, 0, RESP_FLAGS, 0, 1, 1, 1);
	pb_rr(&r, "printer.local", KNOT_RRTYPE_A, KNOT_CLASS_IN | FLUSH, 120, ADDR4, 4);
	pb_rr(&r, "printer.local", KNOT_RRTYPE_A, KNOT_CLASS_IN, 120, ADDR4B, 4);               /* authority */
	pb_rr(&r, "printer.local", KNOT_RRTYPE_NSEC, KNOT_CLASS_IN | FLUSH, 120, nsec.b, (uint16_t)nsec.len);
	assert_int_equal(convert(&c, &r), MDNS_ANSWER);
	assert_int_equal(count(&c, KNOT_ANSWER), 1);
	assert_int_equal(count(&c, KNOT_AUTHORITY), 0);
	assert_int_equal(count(&c, KNOT_ADDITIONAL), 0);
	done(&c);
}

static void small_buffer_is_bad_not_overrun(void **state)
{
	(void)state;
	static struct conv c;
	static struct pb r;
	client_query(&c, 3, "printer.local", KNOT_RRTYPE_A, 0);
	resp_hdr(&r, 1, 0);
	pb_rr(&r, "printer.local", KNOT_RRTYPE_A, KNOT_CLASS_IN, 120, ADDR4, 4);
	for (size_t cap = 0; cap < 60; cap++) {
		uint8_t *out = malloc(cap ? cap : 1);
		size_t len = 0;
		enum mdns_verdict v = mdns_convert(r.b, r.len, c.q.b, &c.mi, out, cap, &len);
		assert_true(v == MDNS_BAD || (v == MDNS_ANSWER && len <= cap));
		free(out);
	}
}

static void query_is_the_question_alone(void **state)
{
	(void)state;
	static struct conv c;
	uint8_t out[600];
	client_query(&c, 0x5555, "Printer.local", KNOT_RRTYPE_AAAA, 1232);
	size_t n = mdns_query(c.q.b, &c.mi, out, sizeof(out));
	assert_int_equal(n, MSG_HDR + c.mi.qname_len + 4u);
	static const uint8_t hdr[MSG_HDR] = {0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}; /* ID 0, no RD (RFC 6762 18) */
	assert_memory_equal(out, hdr, MSG_HDR);
	assert_memory_equal(out + MSG_HDR, c.q.b + MSG_HDR, c.mi.qname_len + 4u);
	assert_int_equal(mdns_query(c.q.b, &c.mi, out, n - 1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_without_question_gets_id_question_flags),
		cmocka_unit_test(ttl_is_capped),
		cmocka_unit_test(legacy_unicast_with_question_and_id),
		cmocka_unit_test(other_name_or_type_is_not_for_it),
		cmocka_unit_test(not_a_response_is_bad),
		cmocka_unit_test(cname_is_followed),
		cmocka_unit_test(cname_loop_ends),
		cmocka_unit_test(srv_keeps_target_addresses),
		cmocka_unit_test(txt_and_ptr),
		cmocka_unit_test(other_types_and_sections_left_out),
		cmocka_unit_test(small_buffer_is_bad_not_overrun),
		cmocka_unit_test(query_is_the_question_alone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
