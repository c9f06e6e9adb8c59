/* msg.h -- thin helpers over libknot's wire functions for the query path:
 * validate a client query, check an upstream answer against it, truncate an
 * answer for a UDP client, and build SERVFAIL/FORMERR/NOTIMP replies.
 *
 * Names are checked with knot_dname_wire_check() (which also follows
 * compression pointers); the rest of a record is fixed-size fields. These
 * functions never touch the network, and allocate only where
 * msg_parse_query has libknot parse a rare query with more records than a
 * question and an OPT. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MSG_HDR 12
#define MSG_MAX 65535
#define MSG_UDP_MIN 512
#define MSG_UDP_MAX_V4 65507 /* 65,535 - 20 (IPv4 header) - 8 (UDP header) */
#define MSG_UDP_MAX_V6 65527 /* 65,535 - 8: IPv6's payload length leaves out its own header */

/* What parsing a client query decided. */
enum msg_verdict {
	MSG_OK = 0,        /* forward it */
	MSG_DROP_SHORT,    /* not even a header: drop, count as malformed */
	MSG_DROP_QR,       /* QR=1: an answer sent to us, drop */
	MSG_FORMERR,       /* answer FORMERR */
	MSG_NOTIMP,        /* opcode other than QUERY, or a meta-type asked: answer NOTIMP */
	MSG_REFUSED,       /* AXFR, IXFR, TKEY, or a class nobody serves: answer REFUSED */
};

/* EDNS option codes (IANA "DNS EDNS0 Option Codes") */
#define MSG_OPT_ECS 8            /* RFC 7871 */
#define MSG_OPT_EXPIRE 9         /* RFC 7314 */
#define MSG_OPT_COOKIE 10        /* RFC 7873 */
#define MSG_OPT_TCP_KEEPALIVE 11 /* RFC 7828 */
#define MSG_OPT_PADDING 12       /* RFC 7830 */
#define MSG_OPT_CHAIN 13         /* RFC 7901 */
#define MSG_OPT_KEY_TAG 14       /* RFC 8145 */

/* The facts the query path needs, all offsets into the message. */
struct msg_info {
	uint16_t qname_len;   /* question name length, at offset MSG_HDR */
	uint16_t qtype, qclass;
	uint16_t question_end; /* offset just past the question */
	uint16_t end;          /* offset just past the last record (trailing bytes are not part of it) */
	uint16_t opt_off;      /* offset of the OPT record, 0 when there is none */
	uint16_t opt_len;      /* its whole length (11 + RDLENGTH) */
	uint16_t udp_size;     /* EDNS UDP payload size, 0 without EDNS */
	bool has_question;     /* a question parsed (for error replies) */
	bool do_bit;           /* EDNS DO flag */
};

/** Parse a message received from a client. Fills *mi as far as it gets.
 * MSG_OK only for a message that parses completely and correctly (a message
 * an upstream could choke on must never reach a circuit other clients
 * share): one question of a class and type a server answers; every record's
 * name, length and RDATA well formed for its type (libknot's knot_pkt_parse
 * where there are records besides the OPT); at most one OPT, in the
 * additional section, owned by the root, its options filling RDATA exactly
 * and those with a defined syntax (ECS, cookie, expire, chain, key tag)
 * well formed; no name whose compression pointer reads the ID (a circuit
 * writes its own there). Bytes after the last record are not part of it
 * (mi->end). The message is only read. */
enum msg_verdict msg_parse_query(const uint8_t *wire, size_t len, struct msg_info *mi);

/** Put a query that msg_parse_query passed into the form we forward, in
 * place: the message ends at its last record; an EDNS UDP size below 512 is
 * raised to 512 (RFC 6891 6.2.5); the hop-by-hop options keepalive and
 * padding are removed. Only when the OPT is the last record (else a TSIG
 * follows and covers it). Updates mi; returns the new length (<= len). */
size_t msg_normalize_query(uint8_t *wire, size_t len, struct msg_info *mi);

/** Walk all records of a message (answer or query): find the end and the OPT
 * record. Returns 0 or ERR_MALFORMED. */
int msg_scan(const uint8_t *wire, size_t len, struct msg_info *mi) __attribute__((warn_unused_result));

/** msg_scan for a message from an upstream, in place (the header is
 * restored before it returns): also ERR_MALFORMED when a name's compression
 * pointer reaches into the header, whose ID, flags and counts dnsmux
 * rewrites on the way to the client. q: the facts of the query whose
 * question msg_answer_matches found in it (the walk starts after it), or
 * NULL to check the question too. */
int msg_scan_answer(uint8_t *wire, size_t len, const struct msg_info *q, struct msg_info *mi)
	__attribute__((warn_unused_result));

/** Step *off past the name there in a message already checked (its labels
 * are walked, no compression pointer is followed): false when it runs past
 * len or has a label type other than length and pointer. */
static inline bool msg_skip_name(const uint8_t *w, size_t len, size_t *off)
{
	while (*off < len) {
		uint8_t l = w[*off];
		if (l == 0) {
			(*off)++;
			return true;
		}
		if ((l & 0xc0) == 0xc0) {
			*off += 2;
			return *off <= len;
		}
		if (l & 0xc0)
			return false;
		*off += 1u + l;
	}
	return false;
}

/* What the client side needs of an answer on its way out (msg_answer_facts). */
struct msg_facts {
	uint32_t min_ttl;      /* the smallest TTL of the records but the OPT (a SOA's MINIMUM counted) */
	bool has_ttl;          /* there was such a record */
	uint16_t opt_off;      /* offset of the OPT record, 0 when there is none */
	uint16_t opt_len;      /* its whole length */
};

/** For a message already checked (msg_scan or msg_scan_answer passed it,
 * or dnsmux built it), the facts of one cheap walk: the smallest TTL (RFC
 * 8484 5.1; for a SOA the lesser of its TTL and MINIMUM, RFC 2308 5) and
 * where the OPT record is. It follows no compression pointer and never
 * reads past len: a message nobody checked gets wrong facts, nothing worse. */
void msg_answer_facts(const uint8_t *wire, size_t len, struct msg_facts *f);

/** Does the answer carry QR=1 and the question (qname compared
 * case-insensitively, qtype, qclass) of the query? */
bool msg_answer_matches(const uint8_t *ans, size_t ans_len, const uint8_t *q, const struct msg_info *qi);

/** Cut an answer down to at most max bytes (RFC 1035 4.2.1, RFC 6891 7):
 * header with TC=1, the question, and the OPT record if it had one; in place.
 * Returns the new length, or 0 if even that does not fit or it does not parse. */
size_t msg_truncate(uint8_t *wire, size_t len, size_t max);

/** Build a reply with rcode to the query (its ID, opcode, RD and CD kept, and the question
 * and a minimal OPT record when mi says they parsed). Returns the length written to out (at
 * least MSG_HDR bytes of room), or 0 when the query is shorter than a header. */
size_t msg_error_reply(const uint8_t *q, size_t qlen, const struct msg_info *mi, int rcode,
		       uint8_t *out, size_t out_cap);

/** The maximum answer a UDP client said it takes: 512 without EDNS, else its
 * UDP size (never below 512). */
static inline uint16_t msg_client_udp_max(const struct msg_info *mi)
{
	return mi->udp_size > MSG_UDP_MIN ? mi->udp_size : MSG_UDP_MIN;
}

/** Append an empty OPT record (UDP size udp_size) at len and count it in
 * ARCOUNT; the caller guarantees 11 bytes of room. Returns the new length. */
size_t msg_add_opt(uint8_t *wire, size_t len, uint16_t udp_size);

/** Append option code with optlen zero bytes to the OPT record at opt_off,
 * which must be the last record (ends at len); the caller guarantees 4 +
 * optlen bytes of room. Returns the new length. */
size_t msg_append_option(uint8_t *wire, size_t len, size_t opt_off, uint16_t code, uint16_t optlen);

/** Bytes of padding option data that bring a message of len bytes (before
 * the 4-byte option header) to a multiple of block (RFC 7830, RFC 8467 4.1). */
static inline uint16_t msg_padding_for(size_t len, size_t block)
{
	return (uint16_t)((block - (len + 4) % block) % block);
}

/** Find an EDNS option in the OPT record at opt_off; returns the offset of its
 * code field, or 0. */
size_t msg_find_option(const uint8_t *wire, size_t opt_off, size_t opt_len, uint16_t code);

/** Remove the option at option_off from the OPT record at opt_off (updating RDLENGTH),
 * moving the bytes after it; returns the new message length. */
size_t msg_remove_option(uint8_t *wire, size_t len, size_t opt_off, size_t option_off);

static inline uint16_t msg_get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline void msg_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
