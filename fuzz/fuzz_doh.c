/* fuzz_doh.c -- a DoH client's bytes through the server's HTTP layers
 * (fuzz/README.md): frontend/h2.c (HTTP/2 on nghttp2) or frontend/h1.c
 * (HTTP/1.x on http-parser), and frontend/doh.c's request semantics. This
 * file plays the rest: it defines what the layers use of frontend/tcp.c and
 * frontend.c (frontend_conn_*, frontend_query, frontend_pad_answer), so no
 * socket is involved. Bytes arrive in reads of input-chosen sizes; every
 * query is recorded and answered -- at once, later, or into a connection
 * that closed -- and everything written is kept. The invariants, against an
 * independent reading of both directions (fuzz_h2.h's walker; for HTTP/1.x a
 * second http_parser on the request side and a response parser here):
 *   - what is written is HTTP/2 frames / HTTP/1.1 responses, well formed,
 *     and nothing once the connection closed or the layer was freed;
 *   - a query starts only for a whole request, at most one per request, and
 *     its message is what the request carried (GET ?dns= base64url-decoded,
 *     the POST body; /resolve: a query for its name and type);
 *   - every answered query gets a 200 with its answer (padded over TLS,
 *     max-age its TTL) on its own stream, or in request order over HTTP/1.x;
 *     every other complete request a 4xx (503 when no query could start),
 *     not silence -- unless the client reset the stream or the connection
 *     failed; no body for HEAD; nothing processed after a request that
 *     closes (RFC 9112 9.6); after EOF the connection drains.
 *
 * Input: [0] flags: bit 0 HTTP/2 (else HTTP/1.x), bit 1 the stream brings
 * its own preface (else the HTTP/2 preface goes first), bit 2 over TLS,
 * bit 3 the connection closes at the end with queries in flight, bit 4 the
 * client is a trusted proxy; [1] pipeline cap - 1 (mod 16); [2..9] seed of
 * the read sizes and of when and how queries are answered; then the
 * client's bytes. */
#include <arpa/inet.h>
#include <jansson.h>
#include "core/worker.h"
#include "frontend/doh.h"
#include "frontend/frontend.h"
#include "frontend/http.h"
#include "fuzz.h"
#include "fuzz_h1.h"
#include "fuzz_h2.h"

#define CTL_LEN 10
#define F_H2 1
#define F_OWN_PREFACE 2
#define F_TLS 4
#define F_ABORT 8
#define F_PROXY 16
#define PAD_BLOCK 468 /* frontend/frontend.c: RFC 8467 4.1 */

/* One call of frontend_query. */
struct rec {
	uint32_t stream;       /* HTTP/2 stream id, HTTP/1.x request number */
	uint8_t *msg;          /* the message it was given (heap, len bytes) */
	size_t len;
	bool is_refused;       /* it returned -1: no query (a 503) */
	struct query *q;       /* while in flight */
	uint8_t *answer;       /* what it was answered with (heap) */
	size_t answer_len;
	bool is_answered_open; /* answered while the connection was open */
	bool has_ttl;          /* the answer has a record: max-age = ttl */
	uint32_t ttl;
	uint8_t rcode;
};

/* The connection (frontend/tcp.c's struct, as far as the layers see it). */
struct tcp_client {
	struct worker *w;
	struct client as_client;
	const struct http_proto *proto;
	void *http;
	bool is_tls;              /* answers are padded (frontend_pad_answer) */
	bool no_more, saw_eof;    /* the layer takes no more requests; the client sent its last byte */
	bool has_failed;          /* the layer's input said -1 (a protocol error) */
	bool is_draining, is_closing, is_freed; /* tcp.c's client_drain, client_close, the last unref */
	bool in_process;          /* process() is on the stack */
	uint8_t *in;              /* what the client sent so far (heap); the layer took in_start bytes */
	size_t in_start, in_len, in_cap;
	uint32_t inflight;        /* queries started and not released */
	uint8_t *out;             /* all that was written (heap) */
	size_t out_len, out_cap;
	uint64_t rng;             /* when and how queries are answered */
	struct rec **recs;        /* every frontend_query call (heap, each rec too) */
	size_t n_recs, recs_cap;
	struct h2w walk;          /* HTTP/2: the client's frames as the layer took them */
	struct h1_shadow shadow;  /* HTTP/1.x: its requests as the layer took them */
};

static struct tcp_client conn;
static struct worker worker;
static struct config cfg;
static uint8_t *last_padded; /* frontend_pad_answer's copy */

/* ---- requests and answers as the test reads them ---- */

struct req_view {
	const uint8_t *method, *path, *ct, *body;
	size_t method_len, path_len, ct_len, body_len;
	bool has_ct;
};

enum want { WANT_ERROR, WANT_QUERY, WANT_JSON /* /resolve: a query, or a 400 for its parameters */ };

static bool is(const uint8_t *p, size_t n, const char *s)
{
	return p && n == strlen(s) && memcmp(p, s, n) == 0;
}

/* RFC 9110 8.3: type/subtype, then parameters after ';' (OWS around). */
static bool is_dns_message(const uint8_t *v, size_t n)
{
	if (!n)
		return false;
	const uint8_t *semi = memchr(v, ';', n);
	size_t start = 0, end = semi ? (size_t)(semi - v) : n;
	while (start < end && (v[start] == ' ' || v[start] == '\t'))
		start++;
	while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
		end--;
	return fz_is_nocase(v + start, end - start, "application/dns-message");
}

/* What a complete request should become (RFC 8484 4.1; doh.h). */
static enum want expect(const struct req_view *r, uint8_t *msg, size_t *len)
{
	if (!r->path || r->path_len == 0 || r->path_len > DOH_PATH_MAX)
		return WANT_ERROR;
	const uint8_t *q = memchr(r->path, '?', r->path_len);
	size_t base = q ? (size_t)(q - r->path) : r->path_len;
	const uint8_t *qs = q ? q + 1 : r->path + r->path_len, *v;
	size_t qs_len = r->path_len - (size_t)(qs - r->path), vl;
	bool get = is(r->method, r->method_len, "GET"), post = is(r->method, r->method_len, "POST");
	if (is(r->path, base, "/resolve"))
		return get ? WANT_JSON : WANT_ERROR;
	if (!is(r->path, base, cfg.doh_path))
		return WANT_ERROR;
	if (get) {
		if (!fz_qs_param(qs, qs_len, "dns", &v, &vl) || !fz_b64url_decode(v, vl, msg, len))
			return WANT_ERROR;
	} else if (post) {
		if (!r->has_ct || !is_dns_message(r->ct, r->ct_len) || r->body_len > DOH_BODY_MAX)
			return WANT_ERROR;
		if (r->body_len)
			memcpy(msg, r->body, r->body_len);
		*len = r->body_len;
	} else {
		return WANT_ERROR;
	}
	return *len >= MSG_HDR && !knot_wire_get_qr(msg) ? WANT_QUERY : WANT_ERROR;
}

/* Percent-decoding, '+' a space (application/x-www-form-urlencoded). */
static bool url_decode(const uint8_t *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = (char)s[i];
		if (c == '%') {
			char hex[3] = {0};
			if (n - i < 3 || !isxdigit(s[i + 1]) || !isxdigit(s[i + 2]))
				return false;
			memcpy(hex, s + i + 1, 2);
			c = (char)strtoul(hex, NULL, 16);
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (o + 1 >= cap)
			return false;
		out[o++] = c;
	}
	out[o] = '\0';
	return true;
}

/* /resolve?name=&type=: the query is for that name (lower case) and type,
 * RD set, with EDNS. */
static void check_json_query(const struct req_view *r, const struct rec *rec)
{
	const uint8_t *qs = memchr(r->path, '?', r->path_len), *v;
	CHECK(qs);
	qs++;
	size_t qs_len = r->path_len - (size_t)(qs - r->path), vl;
	char name[KNOT_DNAME_TXT_MAXLEN + 2], type[32] = "A";
	CHECK(fz_qs_param(qs, qs_len, "name", &v, &vl) && url_decode(v, vl, name, sizeof(name)));
	if (fz_qs_param(qs, qs_len, "type", &v, &vl))
		CHECK(url_decode(v, vl, type, sizeof(type)));
	uint8_t dn[KNOT_DNAME_MAXLEN];
	CHECK(knot_dname_from_str(dn, name, sizeof(dn)));
	knot_dname_to_lower(dn);
	struct msg_info mi;
	CHECK(msg_scan(rec->msg, rec->len, &mi) == 0 && mi.end == rec->len && mi.has_question && mi.opt_off);
	CHECK(knot_wire_get_qdcount(rec->msg) == 1 && knot_wire_get_rd(rec->msg) && !knot_wire_get_qr(rec->msg));
	CHECK(mi.qname_len == knot_dname_size(dn) && memcmp(rec->msg + MSG_HDR, dn, mi.qname_len) == 0);
	char *end;
	unsigned long num = strtoul(type, &end, 10);
	uint16_t qtype = (uint16_t)num;
	if (*end || end == type)
		CHECK(knot_rrtype_from_string(type, &qtype) == 0);
	CHECK(mi.qtype == qtype && mi.qclass == KNOT_CLASS_IN);
}

/* The answer to a recorded query: its question with an A record (a TTL to
 * become max-age) and an OPT when it had EDNS; a bare FORMERR header to a
 * message that is no query. */
static void make_answer(struct rec *r)
{
	struct msg_info mi;
	static const uint8_t rcodes[] = {KNOT_RCODE_NOERROR, KNOT_RCODE_NXDOMAIN, KNOT_RCODE_SERVFAIL};
	if (msg_parse_query(r->msg, r->len, &mi) != MSG_OK) {
		r->answer = fz_dup(r->msg, MSG_HDR, 0);
		r->answer_len = MSG_HDR;
		memset(r->answer + 4, 0, MSG_HDR - 4);
		knot_wire_set_qr(r->answer);
		knot_wire_set_rcode(r->answer, r->rcode = KNOT_RCODE_FORMERR);
		return;
	}
	size_t n = mi.question_end;
	r->answer = fz_dup(r->msg, n, 16 + (mi.opt_off ? 11 : 0));
	knot_wire_set_qr(r->answer);
	knot_wire_set_ra(r->answer);
	knot_wire_set_rcode(r->answer, r->rcode = rcodes[fz_rand(&conn.rng) % 3]);
	knot_wire_set_ancount(r->answer, 1);
	knot_wire_set_nscount(r->answer, 0);
	knot_wire_set_arcount(r->answer, 0);
	r->ttl = (uint32_t)(fz_rand(&conn.rng) % 172800);
	r->has_ttl = true;
	static const uint8_t rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 192, 0, 2, 1};
	memcpy(r->answer + n, rr, sizeof(rr));
	msg_put16(r->answer + n + 6, (uint16_t)(r->ttl >> 16));
	msg_put16(r->answer + n + 8, (uint16_t)r->ttl);
	n += sizeof(rr);
	if (mi.opt_off)
		n = msg_add_opt(r->answer, n, 1232);
	r->answer_len = n;
}

/* RFC 8467 4.1 as frontend/frontend.c does it: an answer whose OPT ends it,
 * without padding, padded to a multiple of 468 bytes. A heap copy. */
static size_t pad_answer(const uint8_t *msg, size_t len, uint8_t **out)
{
	struct msg_info mi;
	if (msg_scan(msg, len, &mi) < 0 || !mi.opt_off || mi.opt_off + mi.opt_len != len ||
	    msg_find_option(msg, mi.opt_off, mi.opt_len, MSG_OPT_PADDING)) {
		*out = fz_dup(msg, len, 0);
		return len;
	}
	uint16_t pad = msg_padding_for(len, PAD_BLOCK);
	*out = fz_dup(msg, len, 4 + pad);
	return msg_append_option(*out, len, mi.opt_off, MSG_OPT_PADDING, pad);
}

/* ---- the connection: what frontend/tcp.c and frontend.c give the layers ---- */

static void process(struct tcp_client *tc);

static struct rec *rec_of_query(const struct query *q)
{
	for (size_t i = 0; i < conn.n_recs; i++)
		if (conn.recs[i]->q == q)
			return conn.recs[i];
	return NULL;
}

static struct rec *rec_of_stream(uint32_t stream)
{
	for (size_t i = 0; i < conn.n_recs; i++)
		if (conn.recs[i]->stream == stream)
			return conn.recs[i];
	return NULL;
}

/* Answer r's query as core/query.c does: reply, then release. */
static void answer(struct rec *r)
{
	struct query *q = r->q;
	make_answer(r);
	r->is_answered_open = !conn.is_closing;
	uint8_t *copy = fz_dup(r->answer, r->answer_len, 0); /* a circuit's read buffer: valid during the call */
	q->client.ops->reply(q, copy, r->answer_len);
	free(copy);
	r->q = NULL;
	q->client.ops->release(q);
	free(q->wire);
	free(q);
}

/* A query dropped with its closed connection: released, no reply. */
static void release_unanswered(struct rec *r)
{
	struct query *q = r->q;
	r->q = NULL;
	q->client.ops->release(q);
	free(q->wire);
	free(q);
}

static struct rec *pending_pick(void)
{
	size_t n = 0;
	for (size_t i = 0; i < conn.n_recs; i++)
		n += conn.recs[i]->q != NULL;
	if (n == 0)
		return NULL;
	size_t k = fz_rand(&conn.rng) % n;
	for (size_t i = 0; i < conn.n_recs; i++)
		if (conn.recs[i]->q && k-- == 0)
			return conn.recs[i];
	return NULL;
}

int frontend_query(struct worker *w, const uint8_t *msg, size_t len, const struct client *from)
{
	struct tcp_client *tc = from->u.stream.conn;
	const struct client_ops *ops = from->ops;
	CHECK(tc == &conn && w == &worker && !tc->is_closing && !tc->is_draining && !tc->is_freed);
	CHECK(ops && ops->max_answer && ops->start && ops->reply && ops->release);
	CHECK(len >= MSG_HDR && len <= MSG_MAX && !knot_wire_get_qr(msg));
	if (tc->n_recs == tc->recs_cap) {
		tc->recs_cap = tc->recs_cap ? 2 * tc->recs_cap : 16;
		if (!(tc->recs = realloc(tc->recs, tc->recs_cap * sizeof(*tc->recs))))
			abort();
	}
	struct rec *r = calloc(1, sizeof(*r));
	if (!r)
		abort();
	tc->recs[tc->n_recs++] = r;
	r->stream = from->u.stream.stream;
	r->msg = fz_dup(msg, len, 0);
	r->len = len;
	if (fz_rand(&tc->rng) % 16 == 0) {
		r->is_refused = true; /* out of memory, or a drop: frontend.c starts nothing */
		return -1;
	}
	struct query *q = calloc(1, sizeof(*q));
	if (!q)
		abort();
	q->w = w;
	q->client = *from;
	q->wire = fz_dup(msg, len, 0);
	q->len = (uint16_t)len;
	r->q = q;
	struct msg_info mi = {0};
	CHECK(ops->max_answer(q, &mi) == UINT16_MAX); /* a body carries any message */
	ops->start(q);
	if (fz_rand(&tc->rng) % 4 == 0) {
		answer(r); /* at once, as an error reply or a cached answer is */
		return 0;
	}
	return 1;
}

const uint8_t *frontend_pad_answer(const uint8_t *msg, size_t *len, const struct msg_facts *facts)
{
	CHECK(conn.is_tls);
	if (facts) { /* the caller's one cheap walk found the OPT the full scan finds */
		struct msg_info mi;
		CHECK(msg_scan(msg, *len, &mi) == 0);
		CHECK(facts->opt_off == mi.opt_off && facts->opt_len == mi.opt_len);
	}
	free(last_padded);
	*len = pad_answer(msg, *len, &last_padded);
	return last_padded;
}

void frontend_conn_write(struct tcp_client *tc, const uint8_t *data, size_t len)
{
	CHECK(tc == &conn && !tc->is_freed && !tc->is_closing);
	CHECK(len > 0);
	fz_append(&tc->out, &tc->out_len, &tc->out_cap, data, len);
}

struct worker *frontend_conn_worker(const struct tcp_client *tc)
{
	CHECK(tc == &conn && !tc->is_freed);
	return tc->w;
}

const struct client *frontend_conn_client(const struct tcp_client *tc)
{
	CHECK(tc == &conn && !tc->is_freed);
	return &tc->as_client;
}

void *frontend_conn_http(const struct tcp_client *tc)
{
	CHECK(tc == &conn && !tc->is_freed);
	return tc->is_closing ? NULL : tc->http;
}

bool frontend_conn_is_tls(const struct tcp_client *tc)
{
	CHECK(tc == &conn && !tc->is_freed);
	return tc->is_tls;
}

void frontend_conn_no_more(struct tcp_client *tc)
{
	CHECK(tc == &conn && !tc->is_freed);
	tc->no_more = true;
	if (!tc->in_process)
		process(tc);
}

void frontend_conn_query_start(struct query *q)
{
	struct tcp_client *tc = q->client.u.stream.conn;
	CHECK(tc == &conn && rec_of_query(q));
	tc->inflight++;
}

void frontend_conn_query_release(struct query *q)
{
	struct tcp_client *tc = q->client.u.stream.conn;
	CHECK(tc == &conn && tc->inflight > 0 && !tc->is_freed);
	tc->inflight--;
	if (!tc->in_process)
		process(tc);
}

/* ---- driving the connection as frontend/tcp.c does ---- */

/* What the layer took of the client's bytes, to the independent reader. */
static void taken(struct tcp_client *tc, const uint8_t *p, size_t n, bool was_open)
{
	if (tc->proto == &http2_proto)
		h2w_feed(&tc->walk, p, n);
	else if (was_open)
		h1s_feed(&tc->shadow, p, n);
}

static void drain(struct tcp_client *tc)
{
	tc->is_draining = true;
	tc->proto->goaway(tc->http);
}

/* tcp.c's process() for an HTTP connection: hand over what was read; once
 * no more requests come and nothing is in flight, drain. */
static void process(struct tcp_client *tc)
{
	if (tc->is_closing || tc->is_draining)
		return;
	tc->in_process = true;
	size_t avail = tc->in_len - tc->in_start;
	if (avail) {
		bool was_open = !tc->no_more;
		int n = tc->proto->input(tc->http, tc->in + tc->in_start, avail);
		CHECK(n >= -1 && n <= (int)avail);
		taken(tc, tc->in + tc->in_start, n < 0 ? avail : (size_t)n, was_open);
		if (n < 0) {
			tc->has_failed = tc->no_more = true;
			tc->in_start = tc->in_len;
		} else {
			tc->in_start += (size_t)n;
		}
	}
	tc->in_process = false;
	bool has_message = tc->in_start < tc->in_len && !tc->no_more;
	if ((tc->saw_eof || tc->no_more) && tc->inflight == 0 && !has_message)
		drain(tc);
}

/* The end: graceful (every query answered, EOF, drain) or abrupt (closed
 * with queries in flight, which are answered into nothing or dropped). */
static void finish(bool abrupt)
{
	struct rec *r;
	conn.saw_eof = true;
	process(&conn);
	if (abrupt) {
		conn.is_closing = true;
		while ((r = pending_pick()))
			fz_rand(&conn.rng) % 2 ? answer(r) : release_unanswered(r);
	} else {
		while ((r = pending_pick()))
			answer(r); /* each release may let more requests in */
		CHECK(conn.is_draining); /* nothing left that would hold the connection */
		conn.is_closing = true;
	}
	conn.proto->free(conn.http);
	conn.http = NULL;
	conn.is_freed = true;
}

/* ---- the checks ---- */

/* The response to an answered query: its answer (padded over TLS), or the
 * answer's JSON form; max-age its TTL (RFC 8484 5.1). */
static void check_answer_resp(const struct rec *r, const struct fz_resp *v, bool may_json)
{
	char age[32];
	snprintf(age, sizeof(age), "max-age=%u", r->ttl);
	CHECK(r->has_ttl ? is(v->cc, v->cc_len, age) : !v->cc);
	CHECK(v->status == 200);
	if (is(v->ct, v->ct_len, "application/dns-json")) {
		CHECK(may_json);
		if (!v->is_whole)
			return;
		json_t *j = json_loadb((const char *)v->body, v->body_len, 0, NULL);
		CHECK(j && json_is_object(j));
		CHECK(json_integer_value(json_object_get(j, "Status")) == r->rcode);
		json_decref(j);
		return;
	}
	CHECK(is(v->ct, v->ct_len, "application/dns-message"));
	uint8_t *want;
	size_t n = conn.is_tls ? pad_answer(r->answer, r->answer_len, &want) : r->answer_len;
	if (!conn.is_tls)
		want = fz_dup(r->answer, n, 0);
	CHECK(v->body_len <= n && (!v->body_len || memcmp(v->body, want, v->body_len) == 0));
	CHECK(!v->is_whole || v->body_len == n);
	free(want);
}

/* A complete request that started no query: an error status. */
static void check_error_resp(const struct rec *r, enum want w, const struct fz_resp *v)
{
	if (r) {
		CHECK(r->is_refused && v->status == 503);
		return;
	}
	CHECK(w != WANT_QUERY && v->status >= 400 && v->status < 500);
}

static void check_rec(const struct rec *r, const struct req_view *req)
{
	static uint8_t msg[MSG_MAX];
	size_t len = 0;
	enum want w = expect(req, msg, &len);
	CHECK(w != WANT_ERROR);
	if (w == WANT_JSON)
		check_json_query(req, r);
	else
		CHECK(r->len == len && memcmp(r->msg, msg, len) == 0);
	for (size_t i = 0; i < conn.n_recs; i++)
		CHECK(conn.recs[i] == r || conn.recs[i]->stream != r->stream); /* one query per request */
}

static struct req_view h2_request(const struct h2w_stream *st)
{
	struct req_view v = {.body = st->body, .body_len = st->body_len};
	v.method = h2w_field(st, ":method", &v.method_len);
	v.path = h2w_field(st, ":path", &v.path_len);
	v.ct = h2w_field(st, "content-type", &v.ct_len);
	v.has_ct = v.ct != NULL;
	return v;
}

static struct fz_resp h2_response(const struct h2w_stream *st, bool is_head)
{
	struct fz_resp v = {.status = -1, .body = st->body, .body_len = st->body_kept, .is_whole = st->is_ended};
	size_t sl, cl;
	const uint8_t *s = h2w_field(st, ":status", &sl), *c = h2w_field(st, "content-length", &cl);
	size_t clen;
	if (s)
		v.status = fz_parse_status(s, sl);
	v.ct = h2w_field(st, "content-type", &v.ct_len);
	v.cc = h2w_field(st, "cache-control", &v.cc_len);
	CHECK(v.status >= 200 && v.status < 600 && c && fz_parse_len(c, cl, &clen));
	CHECK(st->body_len == st->body_kept && st->body_len <= clen);
	if (is_head)
		CHECK(st->body_len == 0); /* RFC 9110 9.3.2; content-length says what GET gets (RFC 9113 8.1.1) */
	else
		CHECK(!st->is_ended || st->body_len == clen);
	return v;
}

/* One stream the client ended: a response on it, as the rules say. */
static void check_h2_stream(const struct h2w_stream *ist, const struct h2w *out, bool is_broken)
{
	const struct h2w_stream *ost = h2w_find((struct h2w *)out, ist->id);
	if (!ist->is_ended || ist->is_reset || (ost && ost->is_reset) || is_broken)
		return; /* not whole; reset by either side (refused, a stream error); the connection failed */
	struct req_view req = h2_request(ist);
	struct rec *r = rec_of_stream((uint32_t)ist->id);
	if (r && !r->is_refused && !r->is_answered_open) {
		CHECK(!ost || !ost->header_blocks); /* answered after the connection closed */
		return;
	}
	CHECK(ost && ost->header_blocks == 1); /* not silence */
	struct fz_resp v = h2_response(ost, is(req.method, req.method_len, "HEAD"));
	static uint8_t msg[MSG_MAX];
	size_t len;
	if (r && !r->is_refused)
		check_answer_resp(r, &v, expect(&req, msg, &len) == WANT_JSON);
	else
		check_error_resp(r, expect(&req, msg, &len), &v);
}

/* DNSMUX_FUZZ_DEBUG=1: both directions as the walker read them. */
static void dump_h2(const char *who, const struct h2w *w)
{
	fprintf(stderr, "%s: %u frames, %s, goaway %d (code %u, last %d)\n", who, w->frames, w->why ? w->why : "well-formed",
		w->saw_goaway, w->goaway_code, w->goaway_last);
	for (size_t i = 0; i < w->n_streams; i++) {
		const struct h2w_stream *st = &w->streams[i];
		fprintf(stderr, "  stream %d: %u header blocks, body %zu, ended %d, reset %d (%u):", st->id, st->header_blocks,
			st->body_len, st->is_ended, st->is_reset, st->reset_code);
		for (size_t off = 0; off + 4 <= st->fields_len;) {
			size_t n = (size_t)st->fields[off] << 8 | st->fields[off + 1];
			size_t v = (size_t)st->fields[off + 2] << 8 | st->fields[off + 3];
			fprintf(stderr, " %.*s=%.*s", (int)n, st->fields + off + 4, (int)(v > 60 ? 60 : v), st->fields + off + 4 + n);
			off += 4 + n + v;
		}
		struct rec *r = rec_of_stream((uint32_t)st->id);
		fprintf(stderr, r ? " [query%s%s]\n" : "\n", r && r->is_refused ? " refused" : "",
			r && r->is_answered_open ? " answered" : "");
	}
}

static void check_h2(void)
{
	struct h2w out;
	h2w_init(&out, false);
	h2w_feed(&out, conn.out, conn.out_len);
	if (getenv("DNSMUX_FUZZ_DEBUG")) {
		fprintf(stderr, "input failed: %d\n", conn.has_failed);
		dump_h2("client", &conn.walk);
		dump_h2("server", &out);
	}
	if (out.why)
		fprintf(stderr, "HTTP/2 written: %s\n", out.why);
	CHECK(!out.why && out.frames > 0 && out.len == 0 && !out.cont_stream);
	const struct h2w *in = &conn.walk;
	bool in_ok = !in->why && !in->has_too_many;
	bool is_broken = conn.has_failed || (out.saw_goaway && out.goaway_code != NGHTTP2_NO_ERROR);
	for (size_t i = 0; i < out.n_streams; i++) {
		const struct h2w_stream *ost = &out.streams[i];
		CHECK(ost->id % 2 == 1 && ost->header_blocks <= 1); /* no push, one response, no trailers */
		/* a response only on a stream the client opened (a reset may come
		 * while its HEADERS is still arriving: nghttp2 decodes as it goes) */
		CHECK(!in_ok || !ost->header_blocks || h2w_find((struct h2w *)in, ost->id));
	}
	for (size_t i = 0; in_ok && i < conn.n_recs; i++) {
		const struct h2w_stream *ist = h2w_find((struct h2w *)in, (int32_t)conn.recs[i]->stream);
		CHECK(ist && ist->is_ended); /* a query only for a whole request */
		struct req_view req = h2_request(ist);
		check_rec(conn.recs[i], &req);
	}
	for (size_t i = 0; in_ok && i < in->n_streams; i++)
		check_h2_stream(&in->streams[i], &out, is_broken);
	h2w_deinit(&out);
}

static struct req_view h1_request(const struct h1_msg *m)
{
	const char *method = http_method_str(m->method);
	struct req_view v = {.method = (const uint8_t *)method, .method_len = strlen(method), .path = m->url,
			     .path_len = m->url_len, .ct = m->ct, .ct_len = m->ct_len, .has_ct = m->has_ct,
			     .body = m->body, .body_len = m->body_len};
	return v;
}

/* Response i is request i's, in order (RFC 9112 9.3.2). */
static void check_h1_resp(size_t i, const struct fz_resp *v, bool has_close)
{
	const struct h1_msg *m = &conn.shadow.msgs[i];
	struct req_view req = h1_request(m);
	struct rec *r = rec_of_stream((uint32_t)i);
	static uint8_t msg[MSG_MAX];
	size_t len;
	CHECK(has_close == !m->keep_alive);
	if (r && !r->is_refused) {
		CHECK(r->is_answered_open);
		check_answer_resp(r, v, expect(&req, msg, &len) == WANT_JSON);
	} else {
		check_error_resp(r, expect(&req, msg, &len), v);
	}
}

/* DNSMUX_FUZZ_DEBUG=1: the requests as the second parser read them, and
 * what was written. */
static void dump_h1(const struct h1_shadow *s)
{
	fprintf(stderr, "parser: %s\n", http_errno_name(HTTP_PARSER_ERRNO(&s->p)));
	for (size_t i = 0; i < s->n; i++) {
		const struct h1_msg *m = &s->msgs[i];
		struct rec *r = rec_of_stream((uint32_t)i);
		fprintf(stderr, "  request %zu: %s %.*s ct=%.*s body %zu, complete %d, keep-alive %d%s%s\n", i,
			http_method_str(m->method), (int)(m->url_len > 80 ? 80 : m->url_len), m->url, (int)m->ct_len,
			m->ct, m->body_len, m->is_complete, m->keep_alive, r ? " [query]" : "",
			r && r->is_refused ? " refused" : "");
	}
	fprintf(stderr, "written:\n%.*s\n", (int)conn.out_len, conn.out);
}

static void check_h1(bool abrupt)
{
	const struct h1_shadow *s = &conn.shadow;
	if (getenv("DNSMUX_FUZZ_DEBUG"))
		dump_h1(s);
	size_t complete = 0, closes_at = SIZE_MAX, off = 0, i;
	while (complete < s->n && s->msgs[complete].is_complete)
		complete++;
	for (i = 0; i < complete && closes_at == SIZE_MAX; i++)
		if (!s->msgs[i].keep_alive)
			closes_at = i;
	bool has_error = HTTP_PARSER_ERRNO(&s->p) != HPE_OK;
	for (i = 0; i < conn.n_recs; i++) {
		const struct rec *r = conn.recs[i];
		CHECK(r->stream < complete);                           /* a query only for a whole request */
		CHECK(closes_at == SIZE_MAX || r->stream <= closes_at); /* RFC 9112 9.6 */
		struct req_view req = h1_request(&s->msgs[r->stream]);
		check_rec(r, &req);
	}
	for (i = 0; off < conn.out_len; i++) {
		struct fz_resp v;
		bool has_close, is_error = i >= complete;
		const struct h1_msg *m = i < s->n ? &s->msgs[i] : NULL;
		CHECK(i <= complete && (closes_at == SIZE_MAX || i <= closes_at));
		CHECK(h1_response(conn.out, conn.out_len, &off, m && m->has_headers && m->method == HTTP_HEAD, &v, &has_close));
		if (is_error)
			CHECK(has_error && v.status == 400 && has_close); /* not HTTP: 400, then close */
		else
			check_h1_resp(i, &v, has_close);
		CHECK(!has_close || off == conn.out_len); /* nothing after the response that closes */
	}
	if (!abrupt) /* every request taken was answered */
		CHECK(i == (closes_at != SIZE_MAX ? closes_at + 1 : complete + has_error));
}

/* ---- the input ---- */

static void setup(uint8_t flags, uint32_t cap, uint64_t seed)
{
	memset(&conn, 0, sizeof(conn));
	if (!worker.cfg) {
		char err[64];
		config_defaults(&cfg);
		if (config_add_trusted_proxy(&cfg, "192.0.2.1", err, sizeof(err)) < 0)
			abort();
		worker.cfg = &cfg;
	}
	cfg.tcp_pipeline = cap;
	cfg.n_trusted_proxies = (flags & F_PROXY) ? 1 : 0;
	conn.w = &worker;
	conn.rng = seed;
	conn.is_tls = (flags & F_TLS) != 0;
	conn.as_client.peer.in.sin_family = AF_INET;
	conn.as_client.peer.in.sin_port = htons(40000);
	conn.as_client.peer.in.sin_addr.s_addr = htonl(0xc0000201);
	conn.as_client.u.stream.conn = &conn;
	bool h2 = (flags & F_H2) != 0;
	conn.proto = h2 ? &http2_proto : &http1_proto;
	if (h2) {
		h2w_init(&conn.walk, true);
	} else {
		h1s_init(&conn.shadow);
	}
	conn.http = h2 ? http2_new(&conn, cap) : http1_new(&conn, cap);
	CHECK(conn.http);
}

static void teardown(void)
{
	for (size_t i = 0; i < conn.n_recs; i++) {
		free(conn.recs[i]->msg);
		free(conn.recs[i]->answer);
		free(conn.recs[i]);
	}
	free(conn.recs);
	free(conn.in);
	free(conn.out);
	free(last_padded);
	last_padded = NULL;
	if (conn.proto == &http2_proto)
		h2w_deinit(&conn.walk);
	else
		h1s_free(&conn.shadow);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl c = {data, size < CTL_LEN ? size : CTL_LEN};
	uint8_t flags = ctl_u8(&c);
	uint32_t cap = 1 + ctl_u8(&c) % 16;
	uint64_t seed = 0;
	for (int i = 0; i < 8; i++)
		seed = seed << 8 | ctl_u8(&c);
	const uint8_t *in = size > CTL_LEN ? data + CTL_LEN : data;
	size_t len = size > CTL_LEN ? size - CTL_LEN : 0, pos = 0;
	setup(flags, cap, seed);
	if ((flags & F_H2) && !(flags & F_OWN_PREFACE))
		fz_append(&conn.in, &conn.in_len, &conn.in_cap, (const uint8_t *)H2W_PREFACE, H2W_PREFACE_LEN);
	while ((pos < len || conn.in_start < conn.in_len) && !conn.no_more && !conn.is_draining) {
		size_t n = fz_chunk(&seed);
		if (n > len - pos)
			n = len - pos;
		fz_append(&conn.in, &conn.in_len, &conn.in_cap, in + pos, n);
		pos += n;
		process(&conn);
		struct rec *r;
		while (fz_rand(&seed) % 3 == 0 && (r = pending_pick()))
			answer(r);
		if (n == 0)
			break; /* all read; what the layer left waits for answers (finish) */
	}
	finish((flags & F_ABORT) != 0);
	if (flags & F_H2)
		check_h2();
	else
		check_h1((flags & F_ABORT) != 0);
	teardown();
	return 0;
}
