/* dns64.h -- DNS64 (RFC 6147) with RFC 6052 addresses, configured as
 * BIND's dns64 block: pure functions, no I/O (the query path that uses them
 * is core/dns64.c).
 *
 * On the way out, an AAAA query from a client some entry's `clients` match
 * carries that entry (the first that matches). On the way back, an answer
 * that is NOERROR without AAAA (NODATA, or a CNAME chain ending without
 * AAAA) or with only `exclude`d addresses asks for A; the A answer becomes
 * AAAA records, one per `mapped` A, under the prefix: owner names and the
 * CNAME chain kept, TTL the smallest of the A records' and the AAAA
 * answer's (the SOA's negative TTL for an empty one: RFC 6147 5.1.7).
 * NXDOMAIN is returned as it is (5.1.2). With DO=1 and break-dnssec off,
 * signed A records are not synthesised from, and signed AAAA records are
 * not filtered (5.5, as BIND); CD=1 is never synthesised for (5.5: the
 * client validates). A PTR query for an ip6.arpa name under a prefix is
 * answered with a CNAME to the IPv4 in-addr.arpa name, as BIND's built-in
 * reverse zone does. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "config/config.h"

#define DNS64_CNAME_TTL 600 /* BIND's synthesised reverse CNAMEs */
#define DNS64_TTL_UNKNOWN 600 /* a cap when the AAAA answer said none (BIND) */
#define DNS64_V4_NAME_MAX 30 /* "255.255.255.255.in-addr.arpa." in wire form */

/** Is len one of RFC 6052's prefix lengths (32, 40, 48, 56, 64, 96)? */
bool dns64_prefix_len_ok(unsigned len);

/** The first byte after the IPv4 part (and the u-octet) for a prefix of
 * len bits: where a suffix starts. */
unsigned dns64_suffix_start(unsigned len);

/** RFC 6052 2.2: the IPv6 address of v4 under bits/len (bits also holds
 * the suffix, from dns64_suffix_start(len) on); the u-octet stays zero. */
void dns64_addr(const uint8_t bits[16], unsigned len, const uint8_t v4[4], uint8_t out[16]);

/** The reverse: the IPv4 address embedded in v6 by a prefix of len bits. */
void dns64_v4_of(const uint8_t v6[16], unsigned len, uint8_t v4[4]);

/** The index of the first entry whose clients match client, or -1. */
int dns64_entry_for(const struct dns64_conf *v, size_t n, const struct sockaddr *client);

/** Is the A record v4 to be mapped by e (mapped:, any by default)? */
bool dns64_is_mapped(const struct dns64_conf *e, const uint8_t v4[4]);

/** Is v6 an address e treats as absent (exclude:, ::ffff:0:0/96 by default)? */
bool dns64_is_excluded(const struct dns64_conf *e, const uint8_t v6[16]);

enum dns64_reverse {
	DNS64_REV_OUTSIDE = 0, /* not under the prefix's ip6.arpa zone */
	DNS64_REV_CNAME,       /* a whole address: CNAME to the in-addr.arpa name */
	DNS64_REV_EMPTY,       /* a name in the zone above a whole address: NODATA */
	DNS64_REV_NXDOMAIN,    /* in the zone, but no such name (not nibbles, u-octet not zero) */
};

/** Where qname (wire form, any case) stands in e's reverse zone; for
 * DNS64_REV_CNAME the in-addr.arpa name is written to target. The suffix
 * is not checked (nor is it by BIND). */
enum dns64_reverse dns64_reverse(const struct dns64_conf *e, const uint8_t *qname, uint8_t target[DNS64_V4_NAME_MAX]);

enum dns64_verdict {
	DNS64_AS_IS = 0,  /* the answer goes to the client unchanged */
	DNS64_SYNTH,      /* ask for A and synthesise */
	DNS64_FILTER,     /* some AAAA records are excluded: the others go (dns64_filter) */
};

/* What an AAAA answer calls for. */
struct dns64_need {
	enum dns64_verdict verdict;
	uint32_t ttl_cap;  /* DNS64_SYNTH: the synthesised records' TTL at most this */
	bool excluded;     /* DNS64_SYNTH: the answer had AAAA records, all excluded */
};

/** Look at the answer ans to an AAAA query whose entry is e; do_bit: the
 * query's DO. Returns 0 with *need filled, or ERR_MALFORMED. */
int dns64_check_aaaa(const struct dns64_conf *e, const uint8_t *ans, size_t len, bool do_bit, struct dns64_need *need)
	__attribute__((warn_unused_result));

/** Build the synthesised answer to the AAAA query from a_ans, the answer
 * to the same name's A query: its header and question (as AAAA), its CNAME
 * chain, an AAAA record under e's prefix for each mapped A record (TTL at
 * most ttl_cap), its OPT; no authority. RRSIGs covering A are left out.
 * *out_len 0 when there is nothing to synthesise from (no mapped A, not
 * NOERROR, or signed A records with do_bit and break-dnssec off). Returns
 * 0 or a negative code (ERR_MALFORMED, -ENOSPC, -ENOMEM). */
int dns64_synthesise(const struct dns64_conf *e, const uint8_t *a_ans, size_t a_len, uint32_t ttl_cap, bool do_bit,
		     uint8_t *out, size_t cap, size_t *out_len) __attribute__((warn_unused_result));

/** ans (an AAAA answer) without its excluded AAAA records, into out
 * (BIND's filter when some, not all, are excluded; and with all excluded,
 * what is left when synthesis found nothing). Returns 0 or a negative code. */
int dns64_filter(const struct dns64_conf *e, const uint8_t *ans, size_t len, uint8_t *out, size_t cap,
		 size_t *out_len) __attribute__((warn_unused_result));

/** The answer to a PTR query for qname (under a prefix, which
 * dns64_reverse mapped to target) from ptr_ans, the answer to target's PTR
 * query: its header, the question qname PTR, the CNAME qname -> target
 * (DNS64_CNAME_TTL), then ptr_ans's records. Returns 0 or a negative code. */
int dns64_ptr_answer(const uint8_t *qname, const uint8_t *target, const uint8_t *ptr_ans, size_t ptr_len, uint8_t *out,
		     size_t cap, size_t *out_len) __attribute__((warn_unused_result));

/** An answer of our own to a PTR query for qname (DNS64_REV_EMPTY: NOERROR;
 * DNS64_REV_NXDOMAIN): the query's header with QR, RA and the rcode, the
 * question, its OPT if it had one. Returns 0 or a negative code. */
int dns64_ptr_empty(const uint8_t *query, size_t qlen, int rcode, uint8_t *out, size_t cap, size_t *out_len)
	__attribute__((warn_unused_result));
