/* dns64.c -- see dns64.h. Messages are read and written with libknot
 * (knot_pkt_parse, knot_pkt_put); nothing here does I/O. */
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <libknot/libknot.h>
#include "core/err.h"
#include "dns/msg.h"
#include "policy/dns64.h"

bool dns64_prefix_len_ok(unsigned len)
{
	return len == 32 || len == 40 || len == 48 || len == 56 || len == 64 || len == 96;
}

unsigned dns64_suffix_start(unsigned len)
{
	/* the prefix's bytes, four of IPv4, and the u-octet (byte 8) when it
	 * falls among them (every length but 96) */
	return len / 8 + 4 + (len <= 64 ? 1 : 0);
}

void dns64_addr(const uint8_t bits[16], unsigned len, const uint8_t v4[4], uint8_t out[16])
{
	unsigned k = len / 8;
	memcpy(out, bits, 16); /* prefix and suffix; the IPv4 part is written over */
	for (unsigned i = 0; i < 4; i++) {
		if (k == 8)
			out[k++] = 0; /* the u-octet, bits 64-71 (RFC 6052 2.2) */
		out[k++] = v4[i];
	}
	if (k == 8)
		out[k] = 0;
}

void dns64_v4_of(const uint8_t v6[16], unsigned len, uint8_t v4[4])
{
	unsigned k = len / 8;
	for (unsigned i = 0; i < 4; i++) {
		if (k == 8)
			k++;
		v4[i] = v6[k++];
	}
}

int dns64_entry_for(const struct dns64_conf *v, size_t n, const struct sockaddr *client)
{
	for (size_t i = 0; i < n; i++)
		if (!v[i].has_clients || config_addr_match(&v[i].clients, client))
			return (int)i;
	return -1;
}

bool dns64_is_mapped(const struct dns64_conf *e, const uint8_t v4[4])
{
	if (!e->has_mapped)
		return true;
	struct sockaddr_in a = {.sin_family = AF_INET};
	memcpy(&a.sin_addr, v4, 4);
	return config_addr_match(&e->mapped, (const struct sockaddr *)&a);
}

bool dns64_is_excluded(const struct dns64_conf *e, const uint8_t v6[16])
{
	if (!e->has_exclude) {
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		return memcmp(v6, mapped, sizeof(mapped)) == 0; /* ::ffff:0:0/96 */
	}
	struct sockaddr_in6 a = {.sin6_family = AF_INET6};
	memcpy(&a.sin6_addr, v6, 16);
	return config_addr_match(&e->exclude, (const struct sockaddr *)&a);
}

/* ---- the reverse zone ---- */

static int hex_nibble(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

enum dns64_reverse dns64_reverse(const struct dns64_conf *e, const uint8_t *qname, uint8_t target[DNS64_V4_NAME_MAX])
{
	static const uint8_t ip6_arpa[] = "\3ip6\4arpa";
	const uint8_t *labels[KNOT_DNAME_MAXLABELS];
	unsigned n = 0;
	const uint8_t *p = qname;
	while (*p && n < KNOT_DNAME_MAXLABELS) {
		labels[n++] = p;
		p += 1 + *p;
	}
	/* the last two labels are ip6.arpa, before them the nibbles, last first */
	if (*p || n < 2 || !knot_dname_is_case_equal(labels[n - 2], ip6_arpa))
		return DNS64_REV_OUTSIDE;
	unsigned nibbles = n - 2, zone = e->prefix_len / 4;
	if (nibbles < zone)
		return DNS64_REV_OUTSIDE;
	/* the zone's own nibbles: labels[nibbles - 1] is the address's first */
	uint8_t v6[16] = {0};
	for (unsigned i = 0; i < nibbles && i < 32; i++) {
		const uint8_t *l = labels[nibbles - 1 - i];
		int x = l[0] == 1 ? hex_nibble(l[1]) : -1;
		if (x < 0) {
			if (i < zone)
				return DNS64_REV_OUTSIDE;
			return DNS64_REV_NXDOMAIN;
		}
		if (i < zone && x != ((e->bits[i / 2] >> (i % 2 ? 0 : 4)) & 0xf))
			return DNS64_REV_OUTSIDE;
		v6[i / 2] |= (uint8_t)(x << (i % 2 ? 0 : 4));
	}
	if (nibbles > 32)
		return DNS64_REV_NXDOMAIN;
	/* the u-octet's nibbles (16 and 17), where the name has them */
	if (e->prefix_len < 96 && nibbles > 16 && v6[8] != 0)
		return DNS64_REV_NXDOMAIN;
	if (nibbles < 32)
		return DNS64_REV_EMPTY;
	uint8_t v4[4];
	dns64_v4_of(v6, e->prefix_len, v4);
	char text[32];
	snprintf(text, sizeof(text), "%u.%u.%u.%u.in-addr.arpa.", v4[3], v4[2], v4[1], v4[0]);
	if (!knot_dname_from_str(target, text, DNS64_V4_NAME_MAX))
		return DNS64_REV_NXDOMAIN; /* (not reached: it always fits) */
	return DNS64_REV_CNAME;
}

/* ---- messages ---- */

static knot_pkt_t *parse(const uint8_t *wire, size_t len)
{
	if (len < MSG_HDR || len > MSG_MAX)
		return NULL;
	/* knot_pkt_parse only reads the wire it is given */
	knot_pkt_t *pkt = knot_pkt_new((void *)(uintptr_t)wire, (uint16_t)len, NULL);
	if (pkt && knot_pkt_parse(pkt, 0) != KNOT_EOK) {
		knot_pkt_free(pkt);
		return NULL;
	}
	return pkt;
}

/* An empty message in out with src's header flags (AD cleared: nothing
 * made here is validated) and the question qname/qtype, src's class. */
static knot_pkt_t *start(uint8_t *out, size_t cap, const uint8_t *src_wire, const uint8_t *qname, uint16_t qtype,
			 uint16_t qclass)
{
	knot_pkt_t *pkt = knot_pkt_new(out, (uint16_t)(cap > MSG_MAX ? MSG_MAX : cap), NULL);
	if (!pkt)
		return NULL;
	knot_pkt_clear(pkt);
	knot_wire_set_id(pkt->wire, knot_wire_get_id(src_wire));
	pkt->wire[2] = src_wire[2];
	pkt->wire[3] = src_wire[3];
	knot_wire_clear_ad(pkt->wire);
	if (knot_pkt_put_question(pkt, qname, qclass, qtype) != KNOT_EOK) {
		knot_pkt_free(pkt);
		return NULL;
	}
	return pkt;
}

static int put(knot_pkt_t *pkt, const knot_rrset_t *rr)
{
	int r = knot_pkt_put(pkt, KNOT_COMPR_HINT_NONE, rr, 0);
	return r == KNOT_EOK ? 0 : r == KNOT_ESPACE ? -ENOSPC : ERR_MALFORMED;
}

static int put_opt(knot_pkt_t *pkt, const knot_pkt_t *src)
{
	if (!src->opt_rr)
		return 0;
	if (knot_pkt_begin(pkt, KNOT_ADDITIONAL) != KNOT_EOK)
		return ERR_MALFORMED;
	return put(pkt, src->opt_rr);
}

static bool signed_for(const knot_pktsection_t *an, uint16_t type)
{
	for (uint16_t i = 0; i < an->count; i++) {
		const knot_rrset_t *rr = knot_pkt_rr(an, i);
		for (uint16_t k = 0; rr->type == KNOT_RRTYPE_RRSIG && k < rr->rrs.count; k++)
			if (knot_rrsig_type_covered(knot_rdataset_at(&rr->rrs, k)) == type)
				return true;
	}
	return false;
}

int dns64_check_aaaa(const struct dns64_conf *e, const uint8_t *ans, size_t len, bool do_bit, struct dns64_need *need)
{
	memset(need, 0, sizeof(*need));
	if (len < MSG_HDR)
		return ERR_MALFORMED;
	if (knot_wire_get_rcode(ans) != KNOT_RCODE_NOERROR || knot_wire_get_tc(ans))
		return 0; /* NXDOMAIN stays NXDOMAIN (RFC 6147 5.1.2); errors as they are */
	knot_pkt_t *pkt = parse(ans, len);
	if (!pkt)
		return ERR_MALFORMED;
	const knot_pktsection_t *an = knot_pkt_section(pkt, KNOT_ANSWER);
	unsigned n_aaaa = 0, n_excluded = 0;
	uint32_t aaaa_ttl = UINT32_MAX;
	for (uint16_t i = 0; i < an->count; i++) {
		const knot_rrset_t *rr = knot_pkt_rr(an, i);
		if (rr->type != KNOT_RRTYPE_AAAA || rr->rclass != KNOT_CLASS_IN)
			continue;
		for (uint16_t k = 0; k < rr->rrs.count; k++) {
			const knot_rdata_t *rd = knot_rdataset_at(&rr->rrs, k);
			n_aaaa++;
			if (rd->len == 16 && dns64_is_excluded(e, rd->data))
				n_excluded++;
		}
		if (rr->ttl < aaaa_ttl)
			aaaa_ttl = rr->ttl;
	}
	if (n_aaaa == 0) {
		/* NODATA: the SOA's negative TTL, the smaller of its TTL and MINIMUM */
		uint32_t cap = DNS64_TTL_UNKNOWN;
		const knot_pktsection_t *ns = knot_pkt_section(pkt, KNOT_AUTHORITY);
		for (uint16_t i = 0; i < ns->count; i++) {
			const knot_rrset_t *rr = knot_pkt_rr(ns, i);
			if (rr->type == KNOT_RRTYPE_SOA && rr->rrs.count) {
				uint32_t min = knot_soa_minimum(knot_rdataset_at(&rr->rrs, 0));
				cap = rr->ttl < min ? rr->ttl : min;
				break;
			}
		}
		need->verdict = DNS64_SYNTH;
		need->ttl_cap = cap;
	} else if (n_excluded && do_bit && !e->break_dnssec && signed_for(an, KNOT_RRTYPE_AAAA)) {
		need->verdict = DNS64_AS_IS; /* BIND: the entry does not apply to signed data */
	} else if (n_excluded == n_aaaa) {
		need->verdict = DNS64_SYNTH;
		need->ttl_cap = aaaa_ttl;
		need->excluded = true;
	} else if (n_excluded) {
		need->verdict = DNS64_FILTER;
	}
	knot_pkt_free(pkt);
	return 0;
}

int dns64_synthesise(const struct dns64_conf *e, const uint8_t *a_ans, size_t a_len, uint32_t ttl_cap, bool do_bit,
		     uint8_t *out, size_t cap, size_t *out_len)
{
	*out_len = 0;
	if (a_len < MSG_HDR || knot_wire_get_rcode(a_ans) != KNOT_RCODE_NOERROR)
		return 0;
	knot_pkt_t *src = parse(a_ans, a_len);
	if (!src)
		return ERR_MALFORMED;
	int r = 0;
	knot_pkt_t *pkt = NULL;
	knot_rrset_t *aaaa = NULL;
	const knot_pktsection_t *an = knot_pkt_section(src, KNOT_ANSWER);
	if (knot_pkt_qtype(src) != KNOT_RRTYPE_A || (do_bit && !e->break_dnssec && signed_for(an, KNOT_RRTYPE_A)))
		goto out;
	unsigned made = 0;
	pkt = start(out, cap, a_ans, knot_pkt_qname(src), KNOT_RRTYPE_AAAA, knot_pkt_qclass(src));
	if (!pkt || knot_pkt_begin(pkt, KNOT_ANSWER) != KNOT_EOK) {
		r = -ENOMEM;
		goto out;
	}
	for (uint16_t i = 0; i < an->count && r == 0; i++) {
		const knot_rrset_t *rr = knot_pkt_rr(an, i);
		if (rr->type == KNOT_RRTYPE_RRSIG) {
			bool of_a = false;
			for (uint16_t k = 0; k < rr->rrs.count; k++)
				of_a |= knot_rrsig_type_covered(knot_rdataset_at(&rr->rrs, k)) == KNOT_RRTYPE_A;
			if (!of_a)
				r = put(pkt, rr);
			continue;
		}
		if (rr->type != KNOT_RRTYPE_A || rr->rclass != KNOT_CLASS_IN) {
			r = put(pkt, rr); /* the CNAME chain (and DNAMEs) as they came */
			continue;
		}
		aaaa = knot_rrset_new(rr->owner, KNOT_RRTYPE_AAAA, KNOT_CLASS_IN, rr->ttl < ttl_cap ? rr->ttl : ttl_cap,
				      NULL);
		if (!aaaa) {
			r = -ENOMEM;
			break;
		}
		for (uint16_t k = 0; k < rr->rrs.count && r == 0; k++) {
			const knot_rdata_t *rd = knot_rdataset_at(&rr->rrs, k);
			uint8_t v6[16];
			if (rd->len != 4 || !dns64_is_mapped(e, rd->data))
				continue;
			dns64_addr(e->bits, e->prefix_len, rd->data, v6);
			if (knot_rrset_add_rdata(aaaa, v6, 16, NULL) != KNOT_EOK)
				r = -ENOMEM;
		}
		if (r == 0 && aaaa->rrs.count) {
			made += aaaa->rrs.count;
			r = put(pkt, aaaa);
		}
		knot_rrset_free(aaaa, NULL);
		aaaa = NULL;
	}
	if (r == 0 && made)
		r = put_opt(pkt, src);
	if (r == 0 && made)
		*out_len = pkt->size;
out:
	knot_rrset_free(aaaa, NULL);
	knot_pkt_free(pkt);
	knot_pkt_free(src);
	return r;
}

int dns64_filter(const struct dns64_conf *e, const uint8_t *ans, size_t len, uint8_t *out, size_t cap,
		 size_t *out_len)
{
	*out_len = 0;
	knot_pkt_t *src = parse(ans, len);
	if (!src)
		return ERR_MALFORMED;
	int r = 0;
	knot_rrset_t *kept = NULL;
	knot_pkt_t *pkt = start(out, cap, ans, knot_pkt_qname(src), knot_pkt_qtype(src), knot_pkt_qclass(src));
	if (!pkt) {
		r = -ENOMEM;
		goto out;
	}
	knot_wire_set_rcode(pkt->wire, knot_wire_get_rcode(ans));
	for (int s = KNOT_ANSWER; s <= KNOT_AUTHORITY && r == 0; s++) {
		const knot_pktsection_t *sec = knot_pkt_section(src, (knot_section_t)s);
		if (knot_pkt_begin(pkt, (knot_section_t)s) != KNOT_EOK) {
			r = ERR_MALFORMED;
			break;
		}
		for (uint16_t i = 0; i < sec->count && r == 0; i++) {
			const knot_rrset_t *rr = knot_pkt_rr(sec, i);
			if (s != KNOT_ANSWER || rr->type != KNOT_RRTYPE_AAAA) {
				r = put(pkt, rr);
				continue;
			}
			kept = knot_rrset_new(rr->owner, rr->type, rr->rclass, rr->ttl, NULL);
			if (!kept) {
				r = -ENOMEM;
				break;
			}
			for (uint16_t k = 0; k < rr->rrs.count && r == 0; k++) {
				const knot_rdata_t *rd = knot_rdataset_at(&rr->rrs, k);
				if (rd->len == 16 && dns64_is_excluded(e, rd->data))
					continue;
				if (knot_rrset_add_rdata(kept, rd->data, rd->len, NULL) != KNOT_EOK)
					r = -ENOMEM;
			}
			if (r == 0 && kept->rrs.count)
				r = put(pkt, kept);
			knot_rrset_free(kept, NULL);
			kept = NULL;
		}
	}
	if (r == 0)
		r = put_opt(pkt, src);
	if (r == 0)
		*out_len = pkt->size;
out:
	knot_rrset_free(kept, NULL);
	knot_pkt_free(pkt);
	knot_pkt_free(src);
	return r;
}

int dns64_ptr_answer(const uint8_t *qname, const uint8_t *target, const uint8_t *ptr_ans, size_t ptr_len, uint8_t *out,
		     size_t cap, size_t *out_len)
{
	*out_len = 0;
	knot_pkt_t *src = parse(ptr_ans, ptr_len);
	if (!src)
		return ERR_MALFORMED;
	int r = 0;
	knot_rrset_t *cname = NULL;
	knot_pkt_t *pkt = start(out, cap, ptr_ans, qname, KNOT_RRTYPE_PTR, KNOT_CLASS_IN);
	if (!pkt) {
		r = -ENOMEM;
		goto out;
	}
	knot_wire_set_rcode(pkt->wire, knot_wire_get_rcode(ptr_ans));
	knot_wire_clear_aa(pkt->wire); /* the CNAME is ours, the rest came from elsewhere */
	cname = knot_rrset_new(qname, KNOT_RRTYPE_CNAME, KNOT_CLASS_IN, DNS64_CNAME_TTL, NULL);
	if (!cname || knot_rrset_add_rdata(cname, target, (uint16_t)knot_dname_size(target), NULL) != KNOT_EOK) {
		r = -ENOMEM;
		goto out;
	}
	if (knot_pkt_begin(pkt, KNOT_ANSWER) != KNOT_EOK || (r = put(pkt, cname)) < 0)
		goto out;
	for (int s = KNOT_ANSWER; s <= KNOT_AUTHORITY && r == 0; s++) {
		const knot_pktsection_t *sec = knot_pkt_section(src, (knot_section_t)s);
		if (s != KNOT_ANSWER && knot_pkt_begin(pkt, (knot_section_t)s) != KNOT_EOK) {
			r = ERR_MALFORMED;
			break;
		}
		for (uint16_t i = 0; i < sec->count && r == 0; i++)
			r = put(pkt, knot_pkt_rr(sec, i));
	}
	if (r == 0)
		r = put_opt(pkt, src);
	if (r == 0)
		*out_len = pkt->size;
out:
	knot_rrset_free(cname, NULL);
	knot_pkt_free(pkt);
	knot_pkt_free(src);
	return r;
}

int dns64_ptr_empty(const uint8_t *query, size_t qlen, int rcode, uint8_t *out, size_t cap, size_t *out_len)
{
	*out_len = 0;
	knot_pkt_t *src = parse(query, qlen);
	if (!src)
		return ERR_MALFORMED;
	int r = 0;
	knot_rrset_t opt;
	bool has_opt = false;
	knot_pkt_t *pkt = start(out, cap, query, knot_pkt_qname(src), knot_pkt_qtype(src), knot_pkt_qclass(src));
	if (!pkt) {
		r = -ENOMEM;
		goto out;
	}
	knot_wire_set_qr(pkt->wire);
	knot_wire_set_ra(pkt->wire);
	knot_wire_set_aa(pkt->wire); /* the zone is ours, as BIND's built-in one is its */
	knot_wire_set_rcode(pkt->wire, (uint8_t)rcode);
	if (src->opt_rr) {
		if (knot_edns_init(&opt, 1232, 0, 0, NULL) != KNOT_EOK) {
			r = -ENOMEM;
			goto out;
		}
		has_opt = true;
		if (knot_edns_do(src->opt_rr))
			knot_edns_set_do(&opt);
		if (knot_pkt_begin(pkt, KNOT_ADDITIONAL) != KNOT_EOK || (r = put(pkt, &opt)) < 0)
			goto out;
	}
	*out_len = pkt->size;
out:
	if (has_opt)
		knot_rrset_clear(&opt, NULL);
	knot_pkt_free(pkt);
	knot_pkt_free(src);
	return r;
}
