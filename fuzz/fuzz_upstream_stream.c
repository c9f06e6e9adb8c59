/* fuzz_upstream_stream.c -- an upstream's byte stream into a circuit with
 * queries in flight (fuzz/README.md). The invariant: an answer goes only to
 * the query whose upstream ID it carries and whose question it matches (and
 * to every such query: a right answer is never thrown away); what reaches
 * the client after rewrite_answer and query_answer's steps has the client's
 * ID and exact question, and parses (msg_scan) if the upstream's answer did,
 * or was cut to 0 by msg_truncate (SERVFAIL). Never a fault, whatever the
 * bytes. An answer that does not parse, or whose names point into the
 * header (which the client's ID goes back into), is discarded and counted
 * (malformed_answers): the two findings of fuzz/README.md, fixed.
 *
 * Input: [0] number of queries (1..8), [1..8] seed of the read sizes, then
 * per query: flags (bit 0 EDNS, 1 DO, 2 a TLS circuit: padding, 3 keepalive
 * asked, 4 given up on), client ID, 2 bytes of randomness for its upstream
 * ID (little-endian, as rnd_u16 reads), QTYPE, the client's answer size,
 * name length, the name's bytes ('.' separates labels); then the stream. */
#include "circuit/inflight.h"
#include "circuit/rewrite.h"
#include "core/query.h"
#include "core/worker.h"
#include "fuzz.h"

#define MAX_QUERIES 8
#define CIRCUIT_RBUF 16384 /* circuit/circuit.c: its read buffer, and the room it asks per read */
#define ROOM 4096

static struct worker w; /* query_for_answer counts into w.m only */

struct sent {
	struct query *q;
	bool tls;      /* the circuit's answers always go through rewrite_answer */
	bool answered; /* an answer was delivered (the query left the table) */
	bool given_up; /* abandoned before any answer, or never sent */
};

/* A name from the input bytes: labels split at '.', each at most 63 bytes,
 * the whole at most 255 (RFC 1035 2.3.4); returns its wire length. */
static size_t put_name(uint8_t *out, const uint8_t *s, size_t n)
{
	size_t len = 0, i = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && s[j] != '.')
			j++;
		size_t l = j - i > 63 ? 63 : j - i;
		if (l && len + 1 + l + 1 <= KNOT_DNAME_MAXLEN) {
			out[len++] = (uint8_t)l;
			memcpy(out + len, s + i, l);
			len += l;
		}
		i = j + 1;
	}
	out[len++] = 0;
	return len;
}

/* A query as frontend_query makes it: checked, kept, normalized; then put
 * in flight as circuit.c write_query does (ID from the table, the rewrite's
 * additions remembered). Returns false when it is not forwarded. */
static bool send_query(struct ctl *c, struct inflight *t, struct rnd *r, struct sent *s)
{
	uint8_t flags = ctl_u8(c);
	uint16_t client_id = ctl_u16(c);
	/* the next two bytes rnd_u16 hands out (retries after a collision get zeros) */
	if (r->pos + 2 > RAND_BLOCK)
		abort();
	r->buf[r->pos] = ctl_u8(c);
	r->buf[r->pos + 1] = ctl_u8(c);
	uint16_t qtype = ctl_u16(c);
	uint16_t max = ctl_u16(c);
	size_t nlen = ctl_u8(c);
	if (nlen > c->n)
		nlen = c->n;
	uint8_t wire[MSG_HDR + KNOT_DNAME_MAXLEN + 4 + 11];
	memset(wire, 0, MSG_HDR);
	msg_put16(wire, client_id);
	wire[2] = 0x01; /* RD */
	wire[5] = 1;    /* QDCOUNT */
	size_t len = MSG_HDR + put_name(wire + MSG_HDR, c->p, nlen);
	c->p += nlen;
	c->n -= nlen;
	msg_put16(wire + len, qtype);
	msg_put16(wire + len + 2, KNOT_CLASS_IN);
	len += 4;
	if (flags & 1) {
		len = msg_add_opt(wire, len, 1232);
		if (flags & 2)
			wire[len - 4] = 0x80; /* DO (RFC 3225) */
	}
	struct msg_info mi;
	if (msg_parse_query(wire, len, &mi) != MSG_OK)
		return false; /* answered by dnsmux itself (REFUSED, NOTIMP...) */
	struct query *q = calloc(1, sizeof(*q));
	if (!q)
		abort();
	q->wire = fz_dup(wire, mi.end, 0);
	q->mi = mi;
	q->len = (uint16_t)msg_normalize_query(q->wire, mi.end, &q->mi);
	q->client_id = client_id;
	q->max_answer = max < MSG_UDP_MIN ? MSG_UDP_MIN : max;
	s->q = q;
	s->tls = (flags & 4) != 0;
	if (inflight_add(t, r, q, &q->up_id) < 0) {
		s->given_up = true; /* no ID: SERVFAIL, never sent; nothing may answer it */
		return true;
	}
	struct rewrite_opts o = {.id = q->up_id, .keepalive = (flags & 8) != 0, .pad_block = s->tls ? REWRITE_PAD_BLOCK : 0};
	uint8_t *out = fz_dup(NULL, 0, 2 + q->len + REWRITE_GROWTH);
	unsigned added;
	(void)rewrite_query(out, q->wire, q->len, &q->mi, &o, &added);
	free(out);
	q->added = (uint8_t)added;
	if (flags & 16) {
		CHECK(inflight_abandon(t, q->up_id) == q);
		s->given_up = true;
	}
	return true;
}

/* The query an answer belongs to, found without the table: in flight (not
 * answered, not given up), the answer's ID, QR=1, one question equal to its. */
static struct sent *owner(struct sent *s, size_t n, const uint8_t *a, size_t len)
{
	if (len < MSG_HDR || !knot_wire_get_qr(a) || knot_wire_get_qdcount(a) != 1)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!s[i].answered && !s[i].given_up && s[i].q->up_id == knot_wire_get_id(a) &&
		    fz_same_question(a, len, s[i].q->wire, s[i].q->len))
			return &s[i];
	return NULL;
}

/* circuit.c on_answer + clean_answer, then core/query.c query_answer's steps
 * up to the send. */
static void deliver(struct sent *s, uint8_t *a, size_t len)
{
	struct query *q = s->q;
	struct msg_info before;
	bool parsed = msg_scan(a, len, &before) == 0;
	/* a name whose compression pointer reads the ID breaks when the
	 * client's ID goes back in: the same test as msg_parse_query's, on a
	 * copy with ID 0xffff (a finding in core/query.c, see the README) */
	bool reads_id = false;
	if (parsed) {
		uint8_t *poisoned = fz_dup(a, len, 0);
		knot_wire_set_id(poisoned, 0xffff);
		struct msg_info pi;
		reads_id = msg_scan(poisoned, len, &pi) != 0;
		free(poisoned);
	}
	if (q->added || s->tls) {
		uint32_t ka_ms;
		size_t n = rewrite_answer(a, len, q->added, &ka_ms);
		CHECK(n <= len && n >= q->mi.question_end);
		struct msg_info mi;
		CHECK(!parsed || (msg_scan(a, n, &mi) == 0 && mi.end <= n));
		if (parsed && mi.opt_off && (size_t)mi.opt_off + mi.opt_len == mi.end) {
			if (q->added & REWRITE_KEEPALIVE)
				CHECK(!fz_has_option(a, mi.opt_off, mi.opt_len, MSG_OPT_TCP_KEEPALIVE));
			CHECK(!fz_has_option(a, mi.opt_off, mi.opt_len, MSG_OPT_PADDING));
		}
		bool opt_last = parsed && before.opt_off && (size_t)before.opt_off + before.opt_len == before.end;
		if (opt_last && (q->added & REWRITE_OPT))
			CHECK(mi.opt_off == 0); /* our OPT is gone again */
		len = n;
	}
	knot_wire_set_id(a, q->client_id);
	memcpy(a + MSG_HDR, q->wire + MSG_HDR, q->mi.qname_len);
	if (len > q->max_answer) {
		len = msg_truncate(a, len, q->max_answer);
		if (len == 0)
			return; /* SERVFAIL instead */
		CHECK(len <= q->max_answer && knot_wire_get_tc(a));
	}
	/* what the client gets */
	CHECK(knot_wire_get_id(a) == q->client_id && knot_wire_get_qr(a));
	CHECK(memcmp(a + MSG_HDR, q->wire + MSG_HDR, q->mi.question_end - MSG_HDR) == 0);
	struct msg_info mi;
	/* query_for_answer delivers only answers that parse with the header
	 * hidden (msg_scan_answer): what the client gets parses too */
	CHECK(parsed && !reads_id);
	CHECK(msg_scan(a, len, &mi) == 0);
}

static void on_message(struct inflight *t, struct sent *s, size_t n, const uint8_t *m, size_t len)
{
	uint8_t *a = fz_dup(m, len, 0); /* exactly its size: the in-place edits stay inside it */
	struct sent *expect = owner(s, n, a, len);
	uint64_t late = w.m.late, mismatched = w.m.mismatched, malformed = w.m.malformed_answers;
	struct query *q = query_for_answer(&w, t, a, len);
	/* never another query's answer; the owner's only if it parses */
	CHECK(q == (expect ? expect->q : NULL) || (!q && expect && w.m.malformed_answers == malformed + 1));
	if (q) {
		CHECK(knot_wire_get_id(a) == q->up_id);
		CHECK(inflight_del(t, q->up_id) == q && !inflight_get(t, q->up_id));
		expect->answered = true;
		CHECK(w.m.late == late && w.m.mismatched == mismatched);
		deliver(expect, a, len);
	} else {
		CHECK(w.m.late + w.m.mismatched + w.m.malformed_answers == late + mismatched + malformed + 1);
	}
	free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl c = {data, size};
	size_t nq = 1 + (ctl_u8(&c) % MAX_QUERIES);
	uint64_t seed = 0;
	for (int i = 0; i < 8; i++)
		seed = seed << 8 | ctl_u8(&c);

	static struct rnd r;
	memset(&r, 0, sizeof(r)); /* IDs: only what the input says, then zeros */
	struct inflight t;
	if (inflight_init(&t, MAX_QUERIES) < 0)
		abort();
	struct sent s[MAX_QUERIES];
	memset(s, 0, sizeof(s));
	size_t n = 0;
	for (size_t i = 0; i < nq; i++) {
		if (send_query(&c, &t, &r, &s[n]))
			n++;
	}

	/* the upstream's stream, in reads of sizes from the seed */
	struct frame_buf in;
	if (frame_buf_init(&in, CIRCUIT_RBUF) < 0)
		abort();
	size_t off = 0;
	while (off < c.n) {
		size_t want = fz_chunk(&seed);
		off += fz_read(&in, ROOM, c.p + off, want < c.n - off ? want : c.n - off);
		uint8_t *m;
		size_t len;
		while (frame_next(&in, &m, &len))
			on_message(&t, s, n, m, len);
	}
	frame_buf_deinit(&in);
	inflight_deinit(&t);
	for (size_t i = 0; i < n; i++) {
		free(s[i].q->wire);
		free(s[i].q);
	}
	return 0;
}
