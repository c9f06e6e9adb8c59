/* mdns.h -- the mdns://[INTERFACE] upstream: .local names over multicast DNS.
 *
 * Each query goes out once (RFC 6762 5.1, "one-shot" queries) from an
 * ephemeral port, so responders answer by unicast to that port (6.7), to
 * 224.0.0.251 and ff02::fb port 5353 on the interface (every interface with
 * an address for mdns://). Responses are taken only from port 5353 (6) and
 * from an address on the link (11). The first response that carries records
 * of the asked name and type (directly, or at the end of a CNAME chain)
 * becomes an ordinary unicast answer: the client's ID and question, QR=1
 * AA=0 RA=1, the cache-flush bit cleared, TTLs capped at MDNS_TTL_CAP_S.
 * Nothing heard within the wait -> NXDOMAIN (without SOA: there is no zone).
 *
 * One pair of sockets (IPv4, IPv6) per upstream instance (per worker), not
 * one per query: responses are matched by their records, never by ID or
 * question (6: "Multicast DNS responses MUST NOT contain any questions"), so
 * a socket per query buys nothing, and a shared one keeps descriptors at two
 * per worker whatever the load. At most MDNS_INFLIGHT_MAX queries wait per
 * instance; more are refused (ERR_FULL, answered SERVFAIL and counted). */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <libknot/libknot.h>
#include "dns/msg.h"

#define MDNS_PORT 5353
#define MDNS_TTL_CAP_S 120     /* TTLs in converted answers at most this */
#define MDNS_WAIT_MS 1000      /* wait for a response when the pool gives no timeout */
#define MDNS_INFLIGHT_MAX 256  /* queries waiting per instance */
#define MDNS_CNAME_MAX 8       /* CNAMEs followed within one response */
#define MDNS_RR_MAX 128        /* records of a response looked at */
#define MDNS_MSG_MAX 9000      /* RFC 6762 17: a response fits a 9000-byte jumbo frame */

struct upstream;
struct query;

enum mdns_verdict {
	MDNS_ANSWER = 0,     /* *out_len bytes of answer in out */
	MDNS_NOT_FOR_IT = 1, /* no record of the query's name and type: keep waiting */
	MDNS_BAD = -1,       /* not a usable response (does not parse, not a response, out of room) */
};

/** The unicast answer to the query (wire q with facts mi, as msg_parse_query
 * made them) that the parsed mDNS response resp holds, written to out (cap
 * bytes). Looks at resp's answer and additional sections; records with TTL 0
 * (goodbye packets, RFC 6762 10.1) and of types other than A, AAAA, PTR,
 * SRV, TXT and CNAME are left out. Pure: no I/O, no state. */
enum mdns_verdict mdns_answer(const knot_pkt_t *resp, const uint8_t *q, const struct msg_info *mi, uint8_t *out,
			      size_t cap, size_t *out_len);

/** mdns_answer on a response in wire form (parsed here). */
enum mdns_verdict mdns_convert(const uint8_t *resp, size_t resp_len, const uint8_t *q, const struct msg_info *mi,
			       uint8_t *out, size_t cap, size_t *out_len);

/** The multicast query for the client query q: ID 0, no flags (RFC 6762
 * 18), the client's question alone. Returns its length, 0 when cap is short. */
size_t mdns_query(const uint8_t *q, const struct msg_info *mi, uint8_t *out, size_t cap);

/** Send q (Q_IDLE) to mdns upstream u. 0, or a negative code after which q
 * is still the caller's (ERR_FULL, -ENODEV: no such interface, -ENOMEM). */
int upstream_mdns_send(struct upstream *u, struct query *q) __attribute__((warn_unused_result));
/** Take q (Q_MDNS) off u: it hears nothing more. */
void upstream_mdns_cancel(struct upstream *u, struct query *q);
/** Queries waiting on u. */
uint32_t upstream_mdns_outstanding(const struct upstream *u);
/** At upstream close: queries still waiting are answered SERVFAIL, the
 * sockets and timer close, and the state is freed in their close callbacks. */
void upstream_mdns_close(struct upstream *u);
