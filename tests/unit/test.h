/* test.h -- shared helpers for the cmocka unit tests: the includes cmocka
 * needs, a deterministic PRNG, a struct rnd fed with chosen IDs, and DNS
 * packet builders (a byte-level one for malformed input, libknot for the
 * well-formed messages a real peer would send). Header-only: every helper is
 * static inline so a test that does not use one gets no warning. */
#pragma once
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <libknot/libknot.h>
#include "core/rand.h"

/* ---- deterministic randomness ------------------------------------------- */

/* xorshift64*: reproducible sequences for randomised tests (seeded per test). */
static inline uint64_t xr_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Uniform-ish in [0, n). */
static inline uint32_t xr_below(uint64_t *s, uint32_t n)
{
	return (uint32_t)((xr_next(s) >> 32) % n);
}

/* Make r hand out exactly these IDs, in order, from its buffer (rnd_u16 reads
 * two bytes little-endian); the rest of the buffer is zero. */
static inline void rnd_feed(struct rnd *r, const uint16_t *ids, size_t n)
{
	assert_true(n * 2 <= RAND_BLOCK);
	memset(r->buf, 0, sizeof(r->buf));
	for (size_t i = 0; i < n; i++) {
		r->buf[2 * i] = (uint8_t)ids[i];
		r->buf[2 * i + 1] = (uint8_t)(ids[i] >> 8);
	}
	r->pos = 0;
}

/* ---- byte-level packet builder ------------------------------------------ */

#define PB_CAP (65535 + 64)

/* A message under construction; every put checks the capacity. */
struct pb {
	uint8_t b[PB_CAP];
	size_t len;
};

static inline void pb_u8(struct pb *p, uint8_t v)
{
	assert_true(p->len + 1 <= PB_CAP);
	p->b[p->len++] = v;
}

static inline void pb_u16(struct pb *p, uint16_t v)
{
	pb_u8(p, (uint8_t)(v >> 8));
	pb_u8(p, (uint8_t)v);
}

static inline void pb_u32(struct pb *p, uint32_t v)
{
	pb_u16(p, (uint16_t)(v >> 16));
	pb_u16(p, (uint16_t)v);
}

static inline void pb_bytes(struct pb *p, const void *d, size_t n)
{
	assert_true(p->len + n <= PB_CAP);
	memcpy(p->b + p->len, d, n);
	p->len += n;
}

/* Header flag bits as they sit in the 16-bit flags word (bytes 2-3). */
#define PB_QR 0x8000u
#define PB_OPCODE(op) ((uint16_t)(((op) & 0xf) << 11))
#define PB_AA 0x0400u
#define PB_TC 0x0200u
#define PB_RD 0x0100u
#define PB_RA 0x0080u
#define PB_AD 0x0020u
#define PB_CD 0x0010u

/* Start over with a header. */
static inline void pb_hdr(struct pb *p, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns,
			  uint16_t ar)
{
	p->len = 0;
	pb_u16(p, id);
	pb_u16(p, flags);
	pb_u16(p, qd);
	pb_u16(p, an);
	pb_u16(p, ns);
	pb_u16(p, ar);
}

/* A name in presentation form ("www.example.com", "" or "." for the root),
 * uncompressed; labels must be at most 63 bytes (use pb_u8/pb_bytes to build
 * bad ones). */
static inline void pb_name(struct pb *p, const char *name)
{
	const char *s = name;
	while (*s && strcmp(s, ".") != 0) {
		const char *dot = strchr(s, '.');
		size_t n = dot ? (size_t)(dot - s) : strlen(s);
		assert_true(n > 0 && n <= 63);
		pb_u8(p, (uint8_t)n);
		pb_bytes(p, s, n);
		s += n;
		if (*s == '.')
			s++;
	}
	pb_u8(p, 0);
}

static inline void pb_question(struct pb *p, const char *name, uint16_t type, uint16_t cls)
{
	pb_name(p, name);
	pb_u16(p, type);
	pb_u16(p, cls);
}

/* RR fields after the owner name. */
static inline void pb_rr_tail(struct pb *p, uint16_t type, uint16_t cls, uint32_t ttl, const void *rdata,
			      uint16_t rdlen)
{
	pb_u16(p, type);
	pb_u16(p, cls);
	pb_u32(p, ttl);
	pb_u16(p, rdlen);
	pb_bytes(p, rdata, rdlen);
}

static inline void pb_rr(struct pb *p, const char *owner, uint16_t type, uint16_t cls, uint32_t ttl,
			 const void *rdata, uint16_t rdlen)
{
	pb_name(p, owner);
	pb_rr_tail(p, type, cls, ttl, rdata, rdlen);
}

/* An OPT record (RFC 6891 6.1.2) with the given options already encoded. */
static inline void pb_opt(struct pb *p, uint16_t udp_size, bool do_bit, const void *opts, uint16_t opts_len)
{
	pb_u8(p, 0);
	pb_u16(p, KNOT_RRTYPE_OPT);
	pb_u16(p, udp_size);
	pb_u32(p, do_bit ? 0x8000u : 0); /* ext-rcode 0, version 0, DO, Z */
	pb_u16(p, opts_len);
	if (opts_len)
		pb_bytes(p, opts, opts_len);
}

/* The common case: a standard query (RD=1) for name/type IN, with an OPT
 * record when udp_size is not 0. */
static inline void pb_query(struct pb *p, uint16_t id, const char *name, uint16_t type, uint16_t udp_size,
			    bool do_bit)
{
	pb_hdr(p, id, PB_RD, 1, 0, 0, udp_size ? 1 : 0);
	pb_question(p, name, type, KNOT_CLASS_IN);
	if (udp_size)
		pb_opt(p, udp_size, do_bit, NULL, 0);
}

/* ---- libknot-built messages ---------------------------------------------- */

#define MSG_MAX_WIRE 65535 /* knot_pkt_new takes a uint16_t size */

/* A query as a real client library writes it: qname/qtype IN, RD=1, and an OPT
 * record (udp_size, DO, one option when opt_code != 0) when udp_size != 0.
 * Returns the length written to out. */
static inline size_t knot_query(uint8_t *out, size_t cap, uint16_t id, const char *qname, uint16_t qtype,
				uint16_t udp_size, bool do_bit, uint16_t opt_code, const uint8_t *opt_data,
				uint16_t opt_len)
{
	knot_pkt_t *pkt = knot_pkt_new(out, (uint16_t)(cap > MSG_MAX_WIRE ? MSG_MAX_WIRE : cap), NULL);
	assert_non_null(pkt);
	knot_pkt_clear(pkt); /* a wire given to knot_pkt_new is taken for parsing */
	knot_wire_set_id(pkt->wire, id);
	knot_wire_set_rd(pkt->wire);
	knot_dname_t *dn = knot_dname_from_str_alloc(qname);
	assert_non_null(dn);
	assert_int_equal(knot_pkt_put_question(pkt, dn, KNOT_CLASS_IN, qtype), KNOT_EOK);
	knot_rrset_t opt;
	if (udp_size) {
		assert_int_equal(knot_edns_init(&opt, udp_size, 0, 0, NULL), KNOT_EOK);
		if (do_bit)
			knot_edns_set_do(&opt);
		if (opt_code)
			assert_int_equal(knot_edns_add_option(&opt, opt_code, opt_len, opt_data, NULL), KNOT_EOK);
		assert_int_equal(knot_pkt_begin(pkt, KNOT_ADDITIONAL), KNOT_EOK);
		assert_int_equal(knot_pkt_put(pkt, KNOT_COMPR_HINT_NONE, &opt, 0), KNOT_EOK);
	}
	size_t len = pkt->size;
	knot_pkt_free(pkt);
	if (udp_size)
		knot_rrset_clear(&opt, NULL);
	knot_dname_free(dn, NULL);
	return len;
}

/* An answer as an upstream writes it: QR=1 RD=1 RA=1, the question (type A),
 * n_a A records for qname (compressed against the question), n_ns NS records
 * in the authority section, and an OPT record (udp_size) when udp_size != 0.
 * Returns the length written to out. */
static inline size_t knot_answer(uint8_t *out, size_t cap, uint16_t id, const char *qname, unsigned n_a,
				 unsigned n_ns, uint16_t udp_size)
{
	knot_pkt_t *pkt = knot_pkt_new(out, (uint16_t)(cap > MSG_MAX_WIRE ? MSG_MAX_WIRE : cap), NULL);
	assert_non_null(pkt);
	knot_pkt_clear(pkt); /* a wire given to knot_pkt_new is taken for parsing */
	knot_wire_set_id(pkt->wire, id);
	knot_wire_set_qr(pkt->wire);
	knot_wire_set_rd(pkt->wire);
	knot_wire_set_ra(pkt->wire);
	knot_dname_t *dn = knot_dname_from_str_alloc(qname);
	assert_non_null(dn);
	assert_int_equal(knot_pkt_put_question(pkt, dn, KNOT_CLASS_IN, KNOT_RRTYPE_A), KNOT_EOK);

	knot_rrset_t *a = knot_rrset_new(dn, KNOT_RRTYPE_A, KNOT_CLASS_IN, 300, NULL);
	knot_rrset_t *ns = knot_rrset_new(dn, KNOT_RRTYPE_NS, KNOT_CLASS_IN, 300, NULL);
	assert_non_null(a);
	assert_non_null(ns);
	for (unsigned i = 0; i < n_a; i++) {
		uint8_t addr[4] = {192, 0, (uint8_t)(i >> 8), (uint8_t)i};
		assert_int_equal(knot_rrset_add_rdata(a, addr, 4, NULL), KNOT_EOK);
	}
	for (unsigned i = 0; i < n_ns; i++) {
		char txt[32];
		uint8_t target[KNOT_DNAME_MAXLEN];
		assert_true(snprintf(txt, sizeof(txt), "ns%u.example.net.", i) > 0);
		assert_non_null(knot_dname_from_str(target, txt, sizeof(target)));
		assert_int_equal(knot_rrset_add_rdata(ns, target, (uint16_t)knot_dname_size(target), NULL), KNOT_EOK);
	}
	assert_int_equal(knot_pkt_begin(pkt, KNOT_ANSWER), KNOT_EOK);
	if (n_a)
		assert_int_equal(knot_pkt_put(pkt, KNOT_COMPR_HINT_QNAME, a, 0), KNOT_EOK);
	assert_int_equal(knot_pkt_begin(pkt, KNOT_AUTHORITY), KNOT_EOK);
	if (n_ns)
		assert_int_equal(knot_pkt_put(pkt, KNOT_COMPR_HINT_QNAME, ns, 0), KNOT_EOK);
	knot_rrset_t opt;
	if (udp_size) {
		assert_int_equal(knot_edns_init(&opt, udp_size, 0, 0, NULL), KNOT_EOK);
		assert_int_equal(knot_pkt_begin(pkt, KNOT_ADDITIONAL), KNOT_EOK);
		assert_int_equal(knot_pkt_put(pkt, KNOT_COMPR_HINT_NONE, &opt, 0), KNOT_EOK);
	}
	size_t len = pkt->size;
	knot_pkt_free(pkt);
	if (udp_size)
		knot_rrset_clear(&opt, NULL);
	knot_rrset_free(a, NULL);
	knot_rrset_free(ns, NULL);
	knot_dname_free(dn, NULL);
	return len;
}
