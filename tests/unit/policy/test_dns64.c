/* test_dns64.c -- policy/dns64.c: RFC 6052 addresses for every prefix
 * length (the RFC's own table, 2.4), the clients/mapped/exclude decisions,
 * the reverse zone, and the answers built from an A answer. */
#include <arpa/inet.h>
#include "test.h"
#include "config/config.h"
#include "core/err.h"
#include "dns/msg.h"
#include "policy/dns64.h"

static struct dns64_conf entry(const char *prefix, unsigned len)
{
	struct dns64_conf e;
	memset(&e, 0, sizeof(e));
	assert_int_equal(inet_pton(AF_INET6, prefix, e.bits), 1);
	e.prefix_len = (uint8_t)len;
	return e;
}

static void add_addr(struct addr_list *l, const char *s)
{
	char why[200];
	assert_int_equal(config_parse_addr(l, s, why, sizeof(why)), 0);
}

/* RFC 6052 2.4: 192.0.2.33 under each length */
static void test_rfc6052_table(void **state)
{
	(void)state;
	static const struct {
		const char *prefix;
		unsigned len;
		const char *want;
	} rows[] = {
		{"2001:db8::", 32, "2001:db8:c000:221::"},
		{"2001:db8:100::", 40, "2001:db8:1c0:2:21::"},
		{"2001:db8:122::", 48, "2001:db8:122:c000:2:2100::"},
		{"2001:db8:122:300::", 56, "2001:db8:122:3c0:0:221::"},
		{"2001:db8:122:344::", 64, "2001:db8:122:344:c0:2:2100:0"},
		{"2001:db8:122:344::", 96, "2001:db8:122:344::192.0.2.33"},
		{"64:ff9b::", 96, "64:ff9b::192.0.2.33"},
	};
	const uint8_t v4[4] = {192, 0, 2, 33};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct dns64_conf e = entry(rows[i].prefix, rows[i].len);
		uint8_t got[16], want[16], back[4];
		assert_true(dns64_prefix_len_ok(rows[i].len));
		assert_int_equal(inet_pton(AF_INET6, rows[i].want, want), 1);
		dns64_addr(e.bits, e.prefix_len, v4, got);
		assert_memory_equal(got, want, 16);
		assert_int_equal(got[8], 0); /* the u-octet */
		dns64_v4_of(got, e.prefix_len, back);
		assert_memory_equal(back, v4, 4);
	}
	assert_false(dns64_prefix_len_ok(24));
	assert_false(dns64_prefix_len_ok(80));
	assert_false(dns64_prefix_len_ok(128));
}

/* BIND's suffix: the bits after the IPv4 part (and the u-octet) */
static void test_suffix(void **state)
{
	(void)state;
	const uint8_t v4[4] = {192, 0, 2, 33};
	struct dns64_conf e = entry("2001:db8::", 32);
	uint8_t suffix[16], got[16], want[16];
	assert_int_equal(dns64_suffix_start(32), 9);
	assert_int_equal(dns64_suffix_start(64), 13);
	assert_int_equal(dns64_suffix_start(96), 16);
	assert_int_equal(inet_pton(AF_INET6, "::42", suffix), 1);
	memcpy(e.bits + 9, suffix + 9, 7);
	dns64_addr(e.bits, 32, v4, got);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8:c000:221::42", want), 1);
	assert_memory_equal(got, want, 16);
}

static void test_decisions(void **state)
{
	(void)state;
	struct dns64_conf v[2] = {entry("64:ff9b::", 96), entry("2001:db8::", 32)};
	v[0].has_clients = true;
	add_addr(&v[0].clients, "192.168.0.0/16");
	struct sockaddr_in in = {.sin_family = AF_INET};
	inet_pton(AF_INET, "192.168.1.1", &in.sin_addr);
	assert_int_equal(dns64_entry_for(v, 2, (struct sockaddr *)&in), 0);
	inet_pton(AF_INET, "10.1.1.1", &in.sin_addr);
	assert_int_equal(dns64_entry_for(v, 2, (struct sockaddr *)&in), 1);
	v[1].has_clients = true;
	add_addr(&v[1].clients, "!10.0.0.0/8");
	add_addr(&v[1].clients, "any");
	assert_int_equal(dns64_entry_for(v, 2, (struct sockaddr *)&in), -1);

	/* mapped: any by default; "!10.0.0.0/8, any" */
	const uint8_t ten[4] = {10, 1, 2, 3}, doc[4] = {192, 0, 2, 1};
	assert_true(dns64_is_mapped(&v[0], ten));
	v[0].has_mapped = true;
	add_addr(&v[0].mapped, "!10.0.0.0/8");
	add_addr(&v[0].mapped, "any");
	assert_false(dns64_is_mapped(&v[0], ten));
	assert_true(dns64_is_mapped(&v[0], doc));

	/* exclude: ::ffff:0:0/96 by default */
	uint8_t a6[16];
	inet_pton(AF_INET6, "::ffff:192.0.2.1", a6);
	assert_true(dns64_is_excluded(&v[0], a6));
	inet_pton(AF_INET6, "2001:db8::1", a6);
	assert_false(dns64_is_excluded(&v[0], a6));
	v[0].has_exclude = true;
	add_addr(&v[0].exclude, "2001:db8::/32");
	assert_true(dns64_is_excluded(&v[0], a6));
	inet_pton(AF_INET6, "::ffff:192.0.2.1", a6);
	assert_false(dns64_is_excluded(&v[0], a6)); /* the list given replaces the default */
}

static enum dns64_reverse rev(const struct dns64_conf *e, const char *name, char *target, size_t cap)
{
	uint8_t dn[KNOT_DNAME_MAXLEN], t[DNS64_V4_NAME_MAX];
	assert_non_null(knot_dname_from_str(dn, name, sizeof(dn)));
	enum dns64_reverse r = dns64_reverse(e, dn, t);
	target[0] = '\0';
	if (r == DNS64_REV_CNAME)
		assert_non_null(knot_dname_to_str(target, t, cap));
	return r;
}

/* the ip6.arpa name of a, or its first nibbles only (n < 32) */
static void rev_name(const char *a, unsigned n, char *out)
{
	uint8_t b[16];
	assert_int_equal(inet_pton(AF_INET6, a, b), 1);
	size_t k = 0;
	for (int i = (int)n - 1; i >= 0; i--) {
		unsigned x = (b[i / 2] >> (i % 2 ? 0 : 4)) & 0xf;
		out[k++] = "0123456789abcdef"[x];
		out[k++] = '.';
	}
	strcpy(out + k, "ip6.arpa.");
}

static void test_reverse(void **state)
{
	(void)state;
	char name[128], t[64];
	struct dns64_conf wk = entry("64:ff9b::", 96);
	rev_name("64:ff9b::192.0.2.33", 32, name);
	assert_int_equal(rev(&wk, name, t, sizeof(t)), DNS64_REV_CNAME);
	assert_string_equal(t, "33.2.0.192.in-addr.arpa.");
	for (char *c = name; *c; c++) /* any case */
		*c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
	assert_int_equal(rev(&wk, name, t, sizeof(t)), DNS64_REV_CNAME);
	assert_string_equal(t, "33.2.0.192.in-addr.arpa.");
	rev_name("64:ff9b::192.0.2.33", 28, name);
	assert_int_equal(rev(&wk, name, t, sizeof(t)), DNS64_REV_EMPTY);
	rev_name("64:ff9b::", 24, name);
	assert_int_equal(rev(&wk, name, t, sizeof(t)), DNS64_REV_EMPTY); /* the zone's apex */
	rev_name("64:ff9a::192.0.2.33", 32, name);
	assert_int_equal(rev(&wk, name, t, sizeof(t)), DNS64_REV_OUTSIDE);
	assert_int_equal(rev(&wk, "1.0.0.127.in-addr.arpa.", t, sizeof(t)), DNS64_REV_OUTSIDE);
	assert_int_equal(rev(&wk, "b.9.f.f.4.6.0.0.ip6.arpa.", t, sizeof(t)), DNS64_REV_OUTSIDE);
	assert_int_equal(rev(&wk, "x.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.b.9.f.f.4.6.0.0.ip6.arpa.", t, sizeof(t)),
			 DNS64_REV_NXDOMAIN);

	/* every length: the RFC's table again, backwards */
	struct dns64_conf e64 = entry("2001:db8:122:344::", 64);
	rev_name("2001:db8:122:344:c0:2:2100:0", 32, name);
	assert_int_equal(rev(&e64, name, t, sizeof(t)), DNS64_REV_CNAME);
	assert_string_equal(t, "33.2.0.192.in-addr.arpa.");
	rev_name("2001:db8:122:344:1c0:2:2100:0", 32, name); /* u-octet 0x01 */
	assert_int_equal(rev(&e64, name, t, sizeof(t)), DNS64_REV_NXDOMAIN);
	struct dns64_conf e56 = entry("2001:db8:122:300::", 56);
	rev_name("2001:db8:122:3c0:0:221::", 32, name);
	assert_int_equal(rev(&e56, name, t, sizeof(t)), DNS64_REV_CNAME);
	assert_string_equal(t, "33.2.0.192.in-addr.arpa.");
	struct dns64_conf e32 = entry("2001:db8::", 32);
	rev_name("2001:db8:c000:221::", 32, name);
	assert_int_equal(rev(&e32, name, t, sizeof(t)), DNS64_REV_CNAME);
	assert_string_equal(t, "33.2.0.192.in-addr.arpa.");
	struct dns64_conf e40 = entry("2001:db8:100::", 40);
	rev_name("2001:db8:1c0:2:21::", 32, name);
	assert_int_equal(rev(&e40, name, t, sizeof(t)), DNS64_REV_CNAME);
	struct dns64_conf e48 = entry("2001:db8:122::", 48);
	rev_name("2001:db8:122:c000:2:2100::", 32, name);
	assert_int_equal(rev(&e48, name, t, sizeof(t)), DNS64_REV_CNAME);
	assert_string_equal(t, "33.2.0.192.in-addr.arpa.");
}

/* ---- messages ---- */

struct rec {
	int section; /* KNOT_ANSWER, KNOT_AUTHORITY */
	const char *owner;
	uint16_t type;
	uint32_t ttl;
	const char *data; /* A/AAAA: an address; CNAME: a name; SOA: its minimum; RRSIG: the type covered */
};

/* An answer to qname/qtype with rcode, the records recs (each its own set). */
static size_t build(uint8_t *out, const char *qname, uint16_t qtype, int rcode, const struct rec *recs, size_t n,
		    bool edns_do)
{
	knot_pkt_t *pkt = knot_pkt_new(out, MSG_MAX, NULL);
	assert_non_null(pkt);
	knot_pkt_clear(pkt);
	knot_wire_set_id(pkt->wire, 0x1234);
	knot_wire_set_qr(pkt->wire);
	knot_wire_set_rd(pkt->wire);
	knot_wire_set_ra(pkt->wire);
	knot_wire_set_rcode(pkt->wire, (uint8_t)rcode);
	uint8_t qn[KNOT_DNAME_MAXLEN];
	assert_non_null(knot_dname_from_str(qn, qname, sizeof(qn)));
	assert_int_equal(knot_pkt_put_question(pkt, qn, KNOT_CLASS_IN, qtype), KNOT_EOK);
	int cur = KNOT_ANSWER;
	assert_int_equal(knot_pkt_begin(pkt, KNOT_ANSWER), KNOT_EOK);
	for (size_t i = 0; i < n; i++) {
		uint8_t owner[KNOT_DNAME_MAXLEN], rd[512];
		uint16_t len = 0;
		assert_non_null(knot_dname_from_str(owner, recs[i].owner, sizeof(owner)));
		if (recs[i].section != cur) {
			cur = recs[i].section;
			assert_int_equal(knot_pkt_begin(pkt, (knot_section_t)cur), KNOT_EOK);
		}
		switch (recs[i].type) {
		case KNOT_RRTYPE_A: assert_int_equal(inet_pton(AF_INET, recs[i].data, rd), 1); len = 4; break;
		case KNOT_RRTYPE_AAAA: assert_int_equal(inet_pton(AF_INET6, recs[i].data, rd), 1); len = 16; break;
		case KNOT_RRTYPE_CNAME:
		case KNOT_RRTYPE_PTR:
			assert_non_null(knot_dname_from_str(rd, recs[i].data, sizeof(rd)));
			len = (uint16_t)knot_dname_size(rd);
			break;
		case KNOT_RRTYPE_SOA: {
			const uint8_t names[] = "\2ns\0\4host\0";
			memcpy(rd, names, 10);
			uint32_t v[5] = {1, 3600, 600, 86400, (uint32_t)atoi(recs[i].data)};
			for (int k = 0; k < 5; k++)
				for (int b = 0; b < 4; b++)
					rd[10 + 4 * k + b] = (uint8_t)(v[k] >> (24 - 8 * b));
			len = 30;
			break;
		}
		case KNOT_RRTYPE_RRSIG: /* type covered, then filler the parser takes */
			memset(rd, 0, sizeof(rd));
			msg_put16(rd, (uint16_t)atoi(recs[i].data));
			rd[2] = 13;
			rd[3] = 2;
			rd[18] = 0; /* signer: the root */
			memset(rd + 19, 0xab, 64);
			len = 19 + 64;
			break;
		default: fail();
		}
		knot_rrset_t *rr = knot_rrset_new(owner, recs[i].type, KNOT_CLASS_IN, recs[i].ttl, NULL);
		assert_non_null(rr);
		assert_int_equal(knot_rrset_add_rdata(rr, rd, len, NULL), KNOT_EOK);
		assert_int_equal(knot_pkt_put(pkt, KNOT_COMPR_HINT_NONE, rr, 0), KNOT_EOK);
		knot_rrset_free(rr, NULL);
	}
	knot_rrset_t opt;
	assert_int_equal(knot_edns_init(&opt, 1232, 0, 0, NULL), KNOT_EOK);
	if (edns_do)
		knot_edns_set_do(&opt);
	assert_int_equal(knot_pkt_begin(pkt, KNOT_ADDITIONAL), KNOT_EOK);
	assert_int_equal(knot_pkt_put(pkt, KNOT_COMPR_HINT_NONE, &opt, 0), KNOT_EOK);
	size_t len = pkt->size;
	knot_rrset_clear(&opt, NULL);
	knot_pkt_free(pkt);
	return len;
}

/* the answer section of msg as "owner TTL TYPE data" lines */
static void answers(const uint8_t *msg, size_t len, char *out, size_t cap)
{
	knot_pkt_t *pkt = knot_pkt_new((void *)(uintptr_t)msg, (uint16_t)len, NULL);
	assert_non_null(pkt);
	assert_int_equal(knot_pkt_parse(pkt, 0), KNOT_EOK);
	const knot_pktsection_t *an = knot_pkt_section(pkt, KNOT_ANSWER);
	size_t k = 0;
	out[0] = '\0';
	for (uint16_t i = 0; i < an->count; i++) {
		const knot_rrset_t *rr = knot_pkt_rr(an, i);
		char owner[256], data[256] = "", type[16];
		knot_dname_to_str(owner, rr->owner, sizeof(owner));
		knot_rrtype_to_string(rr->type, type, sizeof(type));
		for (uint16_t r = 0; r < rr->rrs.count; r++) {
			const knot_rdata_t *rd = knot_rdataset_at(&rr->rrs, r);
			if (rr->type == KNOT_RRTYPE_AAAA)
				inet_ntop(AF_INET6, rd->data, data, sizeof(data));
			else if (rr->type == KNOT_RRTYPE_A)
				inet_ntop(AF_INET, rd->data, data, sizeof(data));
			else if (rr->type == KNOT_RRTYPE_CNAME || rr->type == KNOT_RRTYPE_PTR)
				knot_dname_to_str(data, rd->data, sizeof(data));
			k += (size_t)snprintf(out + k, cap - k, "%s %u %s %s\n", owner, rr->ttl, type, data);
		}
	}
	knot_pkt_free(pkt);
}

static void test_check_aaaa(void **state)
{
	(void)state;
	static uint8_t m[MSG_MAX];
	struct dns64_conf e = entry("64:ff9b::", 96);
	struct dns64_need need;
	/* NODATA: the SOA's TTL and MINIMUM, the smaller */
	const struct rec nodata[] = {{KNOT_AUTHORITY, "example.", KNOT_RRTYPE_SOA, 300, "60"}};
	size_t n = build(m, "a.example.", KNOT_RRTYPE_AAAA, KNOT_RCODE_NOERROR, nodata, 1, false);
	assert_int_equal(dns64_check_aaaa(&e, m, n, false, &need), 0);
	assert_int_equal(need.verdict, DNS64_SYNTH);
	assert_int_equal(need.ttl_cap, 60);
	const struct rec nodata2[] = {{KNOT_AUTHORITY, "example.", KNOT_RRTYPE_SOA, 30, "60"}};
	n = build(m, "a.example.", KNOT_RRTYPE_AAAA, KNOT_RCODE_NOERROR, nodata2, 1, false);
	assert_int_equal(dns64_check_aaaa(&e, m, n, false, &need), 0);
	assert_int_equal(need.ttl_cap, 30);
	/* no SOA at all: BIND's 600 */
	n = build(m, "a.example.", KNOT_RRTYPE_AAAA, KNOT_RCODE_NOERROR, NULL, 0, false);
	assert_int_equal(dns64_check_aaaa(&e, m, n, false, &need), 0);
	assert_int_equal(need.verdict, DNS64_SYNTH);
	assert_int_equal(need.ttl_cap, DNS64_TTL_UNKNOWN);
	/* NXDOMAIN stays NXDOMAIN */
	n = build(m, "a.example.", KNOT_RRTYPE_AAAA, KNOT_RCODE_NXDOMAIN, nodata, 1, false);
	assert_int_equal(dns64_check_aaaa(&e, m, n, false, &need), 0);
	assert_int_equal(need.verdict, DNS64_AS_IS);
	/* a CNAME chain that ends without AAAA */
	const struct rec chain[] = {{KNOT_ANSWER, "c.example.", KNOT_RRTYPE_CNAME, 300, "a.example."},
				    {KNOT_AUTHORITY, "example.", KNOT_RRTYPE_SOA, 300, "120"}};
	n = build(m, "c.example.", KNOT_RRTYPE_AAAA, KNOT_RCODE_NOERROR, chain, 2, false);
	assert_int_equal(dns64_check_aaaa(&e, m, n, false, &need), 0);
	assert_int_equal(need.verdict, DNS64_SYNTH);
	assert_int_equal(need.ttl_cap, 120);
	/* a real AAAA */
	const struct rec real[] = {{KNOT_ANSWER, "a.example.", KNOT_RRTYPE_AAAA, 300, "2001:db8::1"},
				   {KNOT_ANSWER, "a.example.", KNOT_RRTYPE_AAAA, 300, "::ffff:192.0.2.1"}};
	n = build(m, "a.example.", KNOT_RRTYPE_AAAA, KNOT_RCODE_NOERROR, real, 1, false);
	assert_int_equal(dns64_check_aaaa(&e, m, n, false, &need), 0);
	assert_int_equal(need.verdict, DNS64_AS_IS);
	/* only excluded: synthesise, the AAAA's TTL the cap */
	const struct rec excl[] = {{KNOT_ANSWER, "a.example.", KNOT_RRTYPE_AAAA, 200, "::ffff:192.0.2.1"}};
	n = build(m, "a.example.", KNOT_RRTYPE_AAAA, KNOT_RCODE_NOERROR, excl, 1, false);
	assert_int_equal(dns64_check_aaaa(&e, m, n, false, &need), 0);
	assert_int_equal(need.verdict, DNS64_SYNTH);
	assert_true(need.excluded);
	assert_int_equal(need.ttl_cap, 200);
	/* some excluded: those are filtered out */
	n = build(m, "a.example.", KNOT_RRTYPE_AAAA, KNOT_RCODE_NOERROR, real, 2, false);
	assert_int_equal(dns64_check_aaaa(&e, m, n, false, &need), 0);
	assert_int_equal(need.verdict, DNS64_FILTER);
	static uint8_t f[MSG_MAX];
	size_t fl;
	char text[1024];
	assert_int_equal(dns64_filter(&e, m, n, f, sizeof(f), &fl), 0);
	answers(f, fl, text, sizeof(text));
	assert_string_equal(text, "a.example. 300 AAAA 2001:db8::1\n");
	/* signed excluded AAAA, DO=1, break-dnssec off: left alone (BIND) */
	const struct rec sig[] = {{KNOT_ANSWER, "a.example.", KNOT_RRTYPE_AAAA, 200, "::ffff:192.0.2.1"},
				  {KNOT_ANSWER, "a.example.", KNOT_RRTYPE_RRSIG, 200, "28"}};
	n = build(m, "a.example.", KNOT_RRTYPE_AAAA, KNOT_RCODE_NOERROR, sig, 2, true);
	assert_int_equal(dns64_check_aaaa(&e, m, n, true, &need), 0);
	assert_int_equal(need.verdict, DNS64_AS_IS);
	assert_int_equal(dns64_check_aaaa(&e, m, n, false, &need), 0);
	assert_int_equal(need.verdict, DNS64_SYNTH);
	e.break_dnssec = true;
	assert_int_equal(dns64_check_aaaa(&e, m, n, true, &need), 0);
	assert_int_equal(need.verdict, DNS64_SYNTH);
}

static void test_synthesise(void **state)
{
	(void)state;
	static uint8_t m[MSG_MAX], out[MSG_MAX];
	char text[1024];
	size_t len;
	struct dns64_conf e = entry("64:ff9b::", 96);
	e.has_mapped = true;
	add_addr(&e.mapped, "!10.0.0.0/8");
	add_addr(&e.mapped, "any");
	/* the chain kept, each mapped A made AAAA, TTL the smaller */
	const struct rec a[] = {{KNOT_ANSWER, "www.example.", KNOT_RRTYPE_CNAME, 3600, "host.example."},
				{KNOT_ANSWER, "host.example.", KNOT_RRTYPE_A, 300, "192.0.2.33"},
				{KNOT_ANSWER, "host.example.", KNOT_RRTYPE_A, 300, "10.0.0.1"},
				{KNOT_ANSWER, "host.example.", KNOT_RRTYPE_A, 300, "198.51.100.7"}};
	size_t n = build(m, "www.example.", KNOT_RRTYPE_A, KNOT_RCODE_NOERROR, a, 4, false);
	assert_int_equal(dns64_synthesise(&e, m, n, 60, false, out, sizeof(out), &len), 0);
	assert_true(len > 0);
	answers(out, len, text, sizeof(text));
	assert_string_equal(text, "www.example. 3600 CNAME host.example.\n"
				  "host.example. 60 AAAA 64:ff9b::c000:221\n"
				  "host.example. 60 AAAA 64:ff9b::c633:6407\n");
	assert_int_equal(knot_wire_get_rcode(out), KNOT_RCODE_NOERROR);
	assert_int_equal(msg_get16(out + MSG_HDR + 13), KNOT_RRTYPE_AAAA); /* the question: www.example. AAAA */
	assert_false(knot_wire_get_ad(out));
	/* the A records' TTL when it is the smaller */
	assert_int_equal(dns64_synthesise(&e, m, n, 900, false, out, sizeof(out), &len), 0);
	answers(out, len, text, sizeof(text));
	assert_non_null(strstr(text, "host.example. 300 AAAA 64:ff9b::c000:221\n"));
	/* nothing mapped: nothing made */
	n = build(m, "www.example.", KNOT_RRTYPE_A, KNOT_RCODE_NOERROR, a + 2, 1, false);
	assert_int_equal(dns64_synthesise(&e, m, n, 60, false, out, sizeof(out), &len), 0);
	assert_int_equal(len, 0);
	/* NODATA for A too, and NXDOMAIN: nothing */
	n = build(m, "www.example.", KNOT_RRTYPE_A, KNOT_RCODE_NOERROR, NULL, 0, false);
	assert_int_equal(dns64_synthesise(&e, m, n, 60, false, out, sizeof(out), &len), 0);
	assert_int_equal(len, 0);
	n = build(m, "www.example.", KNOT_RRTYPE_A, KNOT_RCODE_NXDOMAIN, NULL, 0, false);
	assert_int_equal(dns64_synthesise(&e, m, n, 60, false, out, sizeof(out), &len), 0);
	assert_int_equal(len, 0);
	/* signed A, DO=1: only with break-dnssec; the A's RRSIG left out */
	const struct rec sa[] = {{KNOT_ANSWER, "www.example.", KNOT_RRTYPE_A, 300, "192.0.2.33"},
				 {KNOT_ANSWER, "www.example.", KNOT_RRTYPE_RRSIG, 300, "1"}};
	n = build(m, "www.example.", KNOT_RRTYPE_A, KNOT_RCODE_NOERROR, sa, 2, true);
	assert_int_equal(dns64_synthesise(&e, m, n, 600, true, out, sizeof(out), &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(dns64_synthesise(&e, m, n, 600, false, out, sizeof(out), &len), 0);
	assert_true(len > 0);
	e.break_dnssec = true;
	assert_int_equal(dns64_synthesise(&e, m, n, 600, true, out, sizeof(out), &len), 0);
	answers(out, len, text, sizeof(text));
	assert_string_equal(text, "www.example. 300 AAAA 64:ff9b::c000:221\n");
	/* a /56 prefix with a suffix */
	struct dns64_conf e56 = entry("2001:db8:122:300::", 56);
	e56.bits[15] = 0x42;
	n = build(m, "www.example.", KNOT_RRTYPE_A, KNOT_RCODE_NOERROR, sa, 1, false);
	assert_int_equal(dns64_synthesise(&e56, m, n, 600, false, out, sizeof(out), &len), 0);
	answers(out, len, text, sizeof(text));
	assert_string_equal(text, "www.example. 300 AAAA 2001:db8:122:3c0:0:221:0:42\n");
	/* garbage */
	assert_int_equal(dns64_synthesise(&e, m, 20, 600, false, out, sizeof(out), &len), ERR_MALFORMED);
}

static void test_ptr_answer(void **state)
{
	(void)state;
	static uint8_t m[MSG_MAX], out[MSG_MAX];
	char text[1024], name[128];
	size_t len;
	rev_name("64:ff9b::192.0.2.33", 32, name);
	uint8_t qn[KNOT_DNAME_MAXLEN], target[DNS64_V4_NAME_MAX];
	assert_non_null(knot_dname_from_str(qn, name, sizeof(qn)));
	assert_non_null(knot_dname_from_str(target, "33.2.0.192.in-addr.arpa.", sizeof(target)));
	const struct rec p[] = {{KNOT_ANSWER, "33.2.0.192.in-addr.arpa.", KNOT_RRTYPE_PTR, 300, "host.example."}};
	size_t n = build(m, "33.2.0.192.in-addr.arpa.", KNOT_RRTYPE_PTR, KNOT_RCODE_NOERROR, p, 1, false);
	assert_int_equal(dns64_ptr_answer(qn, target, m, n, out, sizeof(out), &len), 0);
	answers(out, len, text, sizeof(text));
	char want[512];
	snprintf(want, sizeof(want), "%s 600 CNAME 33.2.0.192.in-addr.arpa.\n33.2.0.192.in-addr.arpa. 300 PTR host.example.\n",
		 name);
	assert_string_equal(text, want);
	/* NXDOMAIN for the IPv4 name: the CNAME, and NXDOMAIN */
	n = build(m, "33.2.0.192.in-addr.arpa.", KNOT_RRTYPE_PTR, KNOT_RCODE_NXDOMAIN, NULL, 0, false);
	assert_int_equal(dns64_ptr_answer(qn, target, m, n, out, sizeof(out), &len), 0);
	assert_int_equal(knot_wire_get_rcode(out), KNOT_RCODE_NXDOMAIN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc6052_table), cmocka_unit_test(test_suffix),
		cmocka_unit_test(test_decisions),     cmocka_unit_test(test_reverse),
		cmocka_unit_test(test_check_aaaa),    cmocka_unit_test(test_synthesise),
		cmocka_unit_test(test_ptr_answer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
