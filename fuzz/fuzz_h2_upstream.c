/* fuzz_h2_upstream.c -- an HTTP/2 server's frames into a DoH circuit's
 * framing, circuit/h2.c (fuzz/README.md). A few queries are submitted (IDs
 * and messages from the input, more later, some cancelled as a deadline
 * would), then the server's byte stream comes in reads of input-chosen
 * sizes: either the input's bytes themselves (raw), or what a real nghttp2
 * server session sends when the input tells it how to answer each request
 * (scripted: 200 with the answer, another status or content type, an empty
 * or oversized body, RST_STREAM, GOAWAY, SETTINGS, PING, and raw bytes
 * spliced in). The invariants:
 *   - answer() and failed() come only for a query submitted and neither
 *     answered, failed nor cancelled, at most once each; an answer has a
 *     body (1..65,535 bytes); nothing while the framing is freed;
 *   - what h2f_output writes is a client's HTTP/2 (fuzz_h2.h's walker: the
 *     preface, SETTINGS, frames well formed), each request the query it
 *     carries -- POST with the message as body and its content-length, or
 *     GET ?dns= its base64url -- and, scripted, a real server takes it all;
 *   - scripted: each query gets what the server said -- its body exactly as
 *     sent, refused for REFUSED_STREAM or above a GOAWAY's last stream,
 *     failed for the rest -- and none is left without an answer once the
 *     server has said it will not process it; raw: an answer's body is the
 *     DATA the server sent on that stream.
 *
 * Input: [0] flags: bit 0 GET (else POST), bit 1 scripted (else raw), bit 2
 * raw: a server SETTINGS frame first, bit 3 a refused query is submitted
 * again from inside failed() (as query_requeue may); [1] queries - 1 (mod
 * 8); [2..9] seed of read sizes, submissions and cancels; per query: its
 * up_id (2 bytes), a length and that many bytes of message; then the
 * server's bytes (raw) or its script (scripted, see script_step). */
#include <nghttp2/nghttp2.h>
#include "circuit/h2.h"
#include "fuzz.h"
#include "fuzz_h2.h"

#define CTL_LEN 10
#define F_GET 1
#define F_SCRIPTED 2
#define F_SETTINGS 4
#define F_RESUBMIT 8
#define MAX_SUBS 64
#define AUTHORITY "dns.example:8443"
#define PATH "/dns-query"

enum sub_state { S_WAITING, S_OPEN, S_ANSWERED, S_FAILED, S_CANCELLED };
enum expect { E_NONE, E_ANSWER, E_FAILED, E_REFUSED };

/* One query as the circuit would submit it. */
struct sub {
	uint16_t up_id;
	int32_t stream;          /* h2f_submit's stream id */
	uint8_t *msg;            /* heap, len bytes */
	size_t len;
	enum sub_state state;
	bool is_refused;         /* failed(refused = true) */
	uint8_t *got;            /* the answer's body (heap) */
	size_t got_len;
	enum expect expect;      /* scripted: what the server's response means */
	uint8_t *want;           /* E_ANSWER: the body the server sent (heap) */
	size_t want_len;
};

/* A request as the scripted server received it. */
struct srv_req {
	int32_t stream;
	uint8_t *body;           /* POST body, or the response's body while it is sent (heap) */
	size_t body_len, body_cap, resp_off;
	bool is_complete, is_answered, is_closed;
	enum expect expect;      /* what its response means, once its last frame is sent */
};

static struct {
	struct h2_framing *f;
	uint64_t rng;
	uint8_t flags;
	struct sub subs[MAX_SUBS];
	size_t n_subs, n_submitted;
	uint8_t *out;            /* all the client wrote (heap) */
	size_t out_len, out_cap;
	struct frame_buf fb;     /* h2f_output's target */
	bool has_failed;         /* h2f_input said the connection is broken */
	bool in_free, in_output;
	unsigned goaways;        /* goaway() events */
	/* scripted */
	nghttp2_session *srv;
	struct srv_req reqs[MAX_SUBS];
	size_t n_reqs;
	uint8_t *to_client;      /* what the server wrote and the client has not read (heap) */
	size_t tc_len, tc_cap;
	bool is_tainted;         /* raw bytes were spliced in: the server's view is not the client's */
	bool sent_goaway;
	int32_t goaway_last;
	uint32_t max_streams;    /* the last SETTINGS_MAX_CONCURRENT_STREAMS sent */
} up;

/* ---- the framing's side: submissions and events ---- */

static struct sub *live_sub(uint16_t up_id)
{
	for (size_t i = 0; i < up.n_subs; i++)
		if (up.subs[i].up_id == up_id && up.subs[i].state == S_OPEN)
			return &up.subs[i];
	return NULL;
}

static struct sub *sub_of_stream(int32_t stream)
{
	for (size_t i = 0; i < up.n_subs; i++)
		if (up.subs[i].stream == stream && up.subs[i].state != S_WAITING)
			return &up.subs[i];
	return NULL;
}

static void submit(struct sub *s)
{
	int32_t id = h2f_submit(up.f, s->msg, s->len, s->up_id);
	if (getenv("DNSMUX_FUZZ_DEBUG"))
		fprintf(stderr, "submit %04x: stream %d%s\n", s->up_id, id, up.in_output ? " inside h2f_output" : "");
	CHECK(id > 0 && id % 2 == 1);
	CHECK(!sub_of_stream(id)); /* a stream of its own */
	s->stream = id;
	s->state = S_OPEN;
}

/* The next query not yet submitted, if any -- not after a GOAWAY
 * (circuit.c's circuit_has_room). */
static void submit_next(void)
{
	if (up.goaways)
		return;
	if (up.n_submitted < up.n_subs && up.subs[up.n_submitted].state == S_WAITING)
		submit(&up.subs[up.n_submitted]);
	up.n_submitted += up.n_submitted < up.n_subs;
}

/* Its query was given up on (a deadline): nothing more is reported. */
static void cancel_one(void)
{
	size_t open = 0, k;
	for (size_t i = 0; i < up.n_subs; i++)
		open += up.subs[i].state == S_OPEN;
	if (!open)
		return;
	k = fz_rand(&up.rng) % open;
	for (size_t i = 0; i < up.n_subs; i++)
		if (up.subs[i].state == S_OPEN && k-- == 0) {
			h2f_cancel(up.f, up.subs[i].stream);
			up.subs[i].state = S_CANCELLED;
			return;
		}
}

/* DNSMUX_FUZZ_DEBUG=1: each event, and where the queries stand. */
static void debug_event(const char *what, uint16_t up_id, const char *why)
{
	fprintf(stderr, "%s %04x (%s)%s:", what, up_id, why, up.in_output ? " inside h2f_output" : "");
	for (size_t i = 0; i < up.n_subs; i++)
		fprintf(stderr, " %04x/%d:%d%s", up.subs[i].up_id, up.subs[i].stream, up.subs[i].state,
			up.subs[i].is_refused ? "r" : "");
	fprintf(stderr, " goaway events %u, last %d", up.goaways, up.goaway_last);
	fprintf(stderr, "\n");
}

static void ev_answer(void *arg, uint16_t up_id, uint8_t *msg, size_t len)
{
	CHECK(arg == &up && !up.in_free);
	struct sub *s = live_sub(up_id);
	if (getenv("DNSMUX_FUZZ_DEBUG"))
		debug_event("answer", up_id, "");
	CHECK(s); /* submitted, and neither answered, failed nor cancelled */
	CHECK(msg && len > 0 && len <= MSG_MAX);
	s->state = S_ANSWERED;
	s->got = fz_dup(msg, len, 0);
	s->got_len = len;
	msg[0] ^= 0xff; /* writable, as circuit.c's h2_answer writes the ID */
	if (fz_rand(&up.rng) % 8 == 0)
		cancel_one(); /* the circuit may give up on another from here */
}

static void ev_failed(void *arg, uint16_t up_id, bool refused, const char *why)
{
	CHECK(arg == &up && !up.in_free);
	struct sub *s = live_sub(up_id);
	if (getenv("DNSMUX_FUZZ_DEBUG"))
		debug_event("failed", up_id, why);
	CHECK(s && why && why[0]);
	s->state = S_FAILED;
	s->is_refused = refused;
	size_t open = 0;
	for (size_t i = 0; i < up.n_subs; i++)
		open += up.subs[i].state == S_OPEN;
	/* circuit.c holds no more than the server's SETTINGS_MAX_CONCURRENT_STREAMS */
	if (refused && (up.flags & F_RESUBMIT) && up.n_subs < MAX_SUBS && open < h2f_max_streams(up.f) && !up.goaways) {
		struct sub *again = &up.subs[up.n_subs++]; /* query_requeue onto this circuit again */
		*again = (struct sub){.up_id = up_id, .msg = fz_dup(s->msg, s->len, 0), .len = s->len};
		submit(again);
	}
}

static void ev_goaway(void *arg)
{
	CHECK(arg == &up && !up.in_free);
	up.goaways++;
}

/* ---- the server's side (scripted): a real nghttp2 server session ---- */

static struct srv_req *req_of(int32_t stream)
{
	for (size_t i = 0; i < up.n_reqs; i++)
		if (up.reqs[i].stream == stream)
			return &up.reqs[i];
	return NULL;
}

static int srv_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
	(void)s;
	(void)user;
	if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST && up.n_reqs < MAX_SUBS)
		up.reqs[up.n_reqs++] = (struct srv_req){.stream = f->hd.stream_id};
	return 0;
}

static int srv_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
	(void)s;
	(void)flags;
	(void)user;
	struct srv_req *r = req_of(id);
	if (r)
		fz_append(&r->body, &r->body_len, &r->body_cap, data, len);
	return 0;
}

static int srv_frame(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
	(void)s;
	(void)user;
	struct srv_req *r = req_of(f->hd.stream_id);
	if (r && (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		r->is_complete = true;
	return 0;
}

static int srv_close(nghttp2_session *s, int32_t id, uint32_t code, void *user)
{
	(void)s;
	(void)code;
	(void)user;
	struct srv_req *r = req_of(id);
	if (r)
		r->is_closed = true;
	return 0;
}

static ssize_t srv_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			nghttp2_data_source *src, void *user)
{
	(void)s;
	(void)id;
	(void)user;
	struct srv_req *r = src->ptr;
	size_t n = r->body_len - r->resp_off;
	if (n > len)
		n = len;
	if (n)
		memcpy(buf, r->body + r->resp_off, n);
	r->resp_off += n;
	if (r->resp_off == r->body_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* What was sent (not only submitted: a closing session sends nothing
 * more) is what the client will see. */
static void expect(struct srv_req *r, enum expect e);

static int srv_sent(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
	(void)s;
	(void)user;
	struct srv_req *r = req_of(f->hd.stream_id);
	if (getenv("DNSMUX_FUZZ_DEBUG"))
		fprintf(stderr, "server sent type %u flags %u stream %d\n", f->hd.type, f->hd.flags, f->hd.stream_id);
	if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
		for (size_t i = 0; i < f->settings.niv; i++)
			if (f->settings.iv[i].settings_id == NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)
				up.max_streams = f->settings.iv[i].value;
	} else if (f->hd.type == NGHTTP2_GOAWAY) {
		up.sent_goaway = true;
		up.goaway_last = f->goaway.last_stream_id;
	} else if (r && f->hd.type == NGHTTP2_RST_STREAM) {
		expect(r, f->rst_stream.error_code == NGHTTP2_REFUSED_STREAM ? E_REFUSED : E_FAILED);
	} else if (r && (f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
		   (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
		expect(r, r->expect);
	}
	return 0;
}

static void server_new(void)
{
	nghttp2_session_callbacks *cb;
	if (nghttp2_session_callbacks_new(&cb) != 0)
		abort();
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, srv_begin_headers);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, srv_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, srv_frame);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, srv_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cb, srv_sent);
	if (nghttp2_session_server_new(&up.srv, cb, NULL) != 0)
		abort();
	nghttp2_session_callbacks_del(cb);
	if (nghttp2_submit_settings(up.srv, NGHTTP2_FLAG_NONE, NULL, 0) != 0)
		abort();
}

/* The oldest request the server has whole and has not answered. */
static struct srv_req *next_request(void)
{
	for (size_t i = 0; i < up.n_reqs; i++)
		if (up.reqs[i].is_complete && !up.reqs[i].is_answered && !up.reqs[i].is_closed)
			return &up.reqs[i];
	return NULL;
}

/* What the server's response to r, now sent, means for its query (unless
 * the client cancelled it first): the answer is the body it sent. */
static void expect(struct srv_req *r, enum expect e)
{
	struct sub *s = sub_of_stream(r->stream);
	if (!s || s->expect != E_NONE || up.is_tainted)
		return;
	s->expect = e;
	if (e == E_ANSWER)
		s->want = fz_dup(r->body, r->body_len, 0), s->want_len = r->body_len;
}

/* The DNS message the request carried: the POST body, or ?dns= decoded. */
static size_t request_message(struct srv_req *r, uint8_t *out)
{
	const uint8_t *m = r->body;
	size_t n = r->body_len;
	struct sub *s = sub_of_stream(r->stream);
	if (up.flags & F_GET) { /* (check_requests holds the :path to the query) */
		m = s ? s->msg : NULL;
		n = s ? s->len : 0;
	}
	if (n)
		memcpy(out, m, n);
	return n;
}

static void respond(struct srv_req *r, const char *status, const char *ct, size_t body_len, enum expect e)
{
	static uint8_t msg[MSG_MAX + 1 + 256];
	size_t n = request_message(r, msg);
	if (body_len == SIZE_MAX) { /* the answer: the query with QR set */
		body_len = n;
		if (n > 2)
			msg[2] |= 0x80;
		if (n == 0 && e == E_ANSWER)
			e = E_FAILED; /* an empty body answers nothing */
	} else {
		memset(msg, 0xab, body_len);
	}
	free(r->body);
	r->body = fz_dup(msg, body_len, 0);
	r->body_len = r->body_cap = body_len;
	r->resp_off = 0;
	char clen[16];
	snprintf(clen, sizeof(clen), "%zu", body_len);
	nghttp2_nv nv[] = {
		{(uint8_t *)":status", (uint8_t *)status, 7, strlen(status), NGHTTP2_NV_FLAG_NONE},
		{(uint8_t *)"content-type", (uint8_t *)ct, 12, strlen(ct), NGHTTP2_NV_FLAG_NONE},
		{(uint8_t *)"content-length", (uint8_t *)clen, 14, strlen(clen), NGHTTP2_NV_FLAG_NONE},
	};
	nghttp2_data_provider prd = {.source.ptr = r, .read_callback = srv_read};
	r->is_answered = true;
	r->expect = e;
	nghttp2_submit_response(up.srv, r->stream, nv, 3, &prd);
}

static void reset(struct srv_req *r, uint32_t code)
{
	r->is_answered = true;
	nghttp2_submit_rst_stream(up.srv, NGHTTP2_FLAG_NONE, r->stream, code);
}

/* GOAWAY with a last stream at or below the last one given: the queries
 * above it are refused (RFC 9113 6.8). */
static void goaway(uint8_t b)
{
	int32_t last = up.n_reqs ? up.reqs[b % up.n_reqs].stream : 0;
	if (up.sent_goaway && last > up.goaway_last)
		last = up.goaway_last;
	if (b & 0x80)
		last = 0;
	if (nghttp2_submit_goaway(up.srv, NGHTTP2_FLAG_NONE, last, NGHTTP2_NO_ERROR, NULL, 0) != 0)
		return;
	for (size_t i = 0; i < up.n_reqs; i++)
		if (up.reqs[i].stream > last && !up.reqs[i].is_answered)
			up.reqs[i].is_answered = true; /* not processed: no response of the server's comes */
}

/* ---- moving the bytes ---- */

static void to_server(const uint8_t *p, size_t n)
{
	if (!up.srv || !n)
		return;
	ssize_t r = nghttp2_session_mem_recv(up.srv, p, n);
	CHECK(up.is_tainted || r == (ssize_t)n); /* a real server takes what the client writes */
}

/* Whatever the framing has to send: collected, checked at the end. */
static void flush_client(void)
{
	if (up.has_failed)
		return;
	up.fb.start = up.fb.len = 0;
	up.in_output = true;
	CHECK(h2f_output(up.f, &up.fb) == 0);
	up.in_output = false;
	fz_append(&up.out, &up.out_len, &up.out_cap, up.fb.data, up.fb.len);
	if (getenv("DNSMUX_FUZZ_DEBUG") && up.fb.len)
		fprintf(stderr, "client wrote %zu bytes\n", up.fb.len);
	to_server(up.fb.data, up.fb.len);
}

/* The server's bytes, read by the framing in chunks. */
static void to_client(const uint8_t *p, size_t n)
{
	while (n && !up.has_failed) {
		size_t k = fz_chunk(&up.rng);
		if (k > n)
			k = n;
		if (h2f_input(up.f, p, k) < 0)
			up.has_failed = true;
		p += k;
		n -= k;
		flush_client();
		if (fz_rand(&up.rng) % 8 == 0)
			submit_next();
		if (fz_rand(&up.rng) % 16 == 0)
			cancel_one();
	}
}

static void flush_server(void)
{
	const uint8_t *data;
	ssize_t n;
	if (!up.srv)
		return;
	while ((n = nghttp2_session_mem_send(up.srv, &data)) > 0)
		fz_append(&up.to_client, &up.tc_len, &up.tc_cap, data, (size_t)n);
	CHECK(up.is_tainted || n == 0);
}

/* Both ways until neither side has anything more to say. */
static void exchange(void)
{
	for (int i = 0; i < 64; i++) {
		flush_client();
		flush_server();
		if (!up.tc_len)
			return;
		size_t n = up.tc_len;
		uint8_t *p = fz_dup(up.to_client, n, 0);
		up.tc_len = 0;
		to_client(p, n);
		free(p);
	}
}

/* One step of the server's script: op byte, argument byte. */
static void script_step(struct ctl *c)
{
	uint8_t op = ctl_u8(c), arg = ctl_u8(c);
	struct srv_req *r = next_request();
	static const char *const statuses[] = {"404", "500", "503", "400", "301", "204"};
	switch (op % 14) {
	case 0: case 1: case 2:
		if (r)
			respond(r, "200", "application/dns-message", SIZE_MAX, E_ANSWER);
		break;
	case 3: if (r) respond(r, "200", "text/plain", SIZE_MAX, E_FAILED); break;
	case 4: if (r) respond(r, statuses[arg % 6], "application/dns-message", SIZE_MAX, E_FAILED); break;
	case 5: if (r) respond(r, "200", "application/dns-message", 0, E_FAILED); break;
	case 6: if (r) respond(r, "200", "application/dns-message", MSG_MAX + 1 + arg, E_FAILED); break;
	case 7: if (r) reset(r, NGHTTP2_REFUSED_STREAM); break;
	case 8: if (r) reset(r, arg % 2 ? NGHTTP2_CANCEL : NGHTTP2_INTERNAL_ERROR); break;
	case 9: goaway(arg); break;
	case 10: {
		nghttp2_settings_entry iv = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, arg % 5};
		nghttp2_submit_settings(up.srv, NGHTTP2_FLAG_NONE, &iv, 1);
		break;
	}
	case 11: nghttp2_submit_ping(up.srv, NGHTTP2_FLAG_NONE, NULL); break;
	case 12: { /* raw bytes spliced into the server's stream */
		size_t n = arg % 32 < c->n ? arg % 32 : c->n;
		flush_server();
		fz_append(&up.to_client, &up.tc_len, &up.tc_cap, c->p, n);
		c->p += n;
		c->n -= n;
		up.is_tainted = n > 0 || up.is_tainted;
		break;
	}
	default: arg % 2 ? submit_next() : cancel_one(); break;
	}
	exchange();
}

/* ---- the checks ---- */

/* Every request the client wrote is one of the queries, as submitted. */
static void check_requests(const struct h2w *w)
{
	static uint8_t msg[MSG_MAX];
	for (size_t i = 0; i < w->n_streams; i++) {
		const struct h2w_stream *st = &w->streams[i];
		struct sub *s = sub_of_stream(st->id);
		size_t ml, pl, cl, al, len;
		CHECK(s && st->header_blocks == 1);
		const uint8_t *m = h2w_field(st, ":method", &ml), *p = h2w_field(st, ":path", &pl);
		const uint8_t *a = h2w_field(st, ":authority", &al), *ct = h2w_field(st, "content-type", &cl);
		CHECK(a && al == strlen(AUTHORITY) && memcmp(a, AUTHORITY, al) == 0);
		CHECK(m && p && pl >= strlen(PATH) && memcmp(p, PATH, strlen(PATH)) == 0);
		if (up.flags & F_GET) {
			CHECK(ml == 3 && memcmp(m, "GET", 3) == 0 && st->is_ended && st->body_len == 0);
			CHECK(pl >= strlen(PATH) + 5 && memcmp(p + strlen(PATH), "?dns=", 5) == 0);
			const uint8_t *v = p + strlen(PATH) + 5;
			CHECK(fz_b64url_decode(v, pl - (size_t)(v - p), msg, &len) || s->len == 0);
			CHECK(s->len == 0 || (len == s->len && memcmp(msg, s->msg, len) == 0));
			continue;
		}
		CHECK(ml == 4 && memcmp(m, "POST", 4) == 0 && pl == strlen(PATH));
		CHECK(ct && cl == 23 && memcmp(ct, "application/dns-message", 23) == 0);
		const uint8_t *clen = h2w_field(st, "content-length", &cl);
		char want[16];
		snprintf(want, sizeof(want), "%zu", s->len);
		CHECK(clen && cl == strlen(want) && memcmp(clen, want, cl) == 0);
		CHECK(st->body_len <= s->len && (!st->body_len || memcmp(st->body, s->msg, st->body_len) == 0));
		CHECK(!st->is_ended || st->body_len == s->len);
	}
}

/* Scripted: each query got what the server said. */
static void check_expected(void)
{
	if (getenv("DNSMUX_FUZZ_DEBUG"))
		debug_event("end", 0, up.sent_goaway ? "server sent GOAWAY" : "");
	for (size_t i = 0; i < up.n_subs; i++) {
		const struct sub *s = &up.subs[i];
		if (s->state == S_CANCELLED)
			continue;
		switch (s->expect) {
		case E_ANSWER:
			CHECK(s->state == S_ANSWERED && s->got_len == s->want_len && memcmp(s->got, s->want, s->got_len) == 0);
			break;
		case E_FAILED: CHECK(s->state == S_FAILED && !s->is_refused); break;
		case E_REFUSED: CHECK(s->state == S_FAILED && s->is_refused); break;
		case E_NONE: /* no response: refused when above the GOAWAY's last stream, never left waiting */
			if (up.goaways && s->state != S_WAITING && s->stream > up.goaway_last)
				CHECK(s->state == S_FAILED && s->is_refused);
			break;
		}
	}
	CHECK(!up.has_failed); /* what a real server sends is taken */
	if (up.sent_goaway)
		CHECK(up.goaways > 0);
	if (getenv("DNSMUX_FUZZ_DEBUG"))
		fprintf(stderr, "max streams: framing %u, server sent %u; to client left %zu\n", h2f_max_streams(up.f),
			up.max_streams, up.tc_len);
	if (up.max_streams != UINT32_MAX && !up.goaways) /* (after a GOAWAY, nghttp2 applies no more SETTINGS) */
		CHECK(h2f_max_streams(up.f) == up.max_streams);
}

/* Raw: an answer's body is the DATA the server sent on its stream. */
static void check_raw(const uint8_t *p, size_t n)
{
	struct h2w w;
	h2w_init(&w, false);
	h2w_feed(&w, p, n);
	for (size_t i = 0; !w.why && !w.has_too_many && i < up.n_subs; i++) {
		const struct sub *s = &up.subs[i];
		const struct h2w_stream *st = s->state == S_ANSWERED ? h2w_find(&w, s->stream) : NULL;
		CHECK(s->state != S_ANSWERED || (st && st->is_ended));
		CHECK(!st || (st->body_len == s->got_len && memcmp(st->body, s->got, s->got_len) == 0));
	}
	h2w_deinit(&w);
}

/* Raw: the rest of the input is the server's byte stream (after a SETTINGS
 * frame of ours when the flags say). */
static void run_raw(const struct ctl *c)
{
	static const uint8_t settings[9] = {0, 0, 0, NGHTTP2_SETTINGS, 0, 0, 0, 0, 0};
	size_t pre = (up.flags & F_SETTINGS) ? sizeof(settings) : 0;
	uint8_t *bytes = fz_dup(settings, pre, c->n);
	if (c->n)
		memcpy(bytes + pre, c->p, c->n);
	flush_client();
	to_client(bytes, pre + c->n);
	check_raw(bytes, pre + c->n);
	free(bytes);
}

/* ---- the input ---- */

static bool id_taken(uint16_t id, const struct sub *before)
{
	for (const struct sub *o = up.subs; o < before; o++)
		if (o->up_id == id)
			return true;
	return false;
}

static void read_queries(struct ctl *c, size_t n)
{
	for (size_t i = 0; i < n && up.n_subs < MAX_SUBS; i++) {
		struct sub *s = &up.subs[up.n_subs++];
		s->up_id = ctl_u16(c);
		while (id_taken(s->up_id, s))
			s->up_id++; /* an ID is in flight once per circuit (circuit/inflight.c) */
		s->len = ctl_u8(c);
		if (s->len > c->n)
			s->len = c->n;
		s->msg = fz_dup(c->p, s->len, 0);
		c->p += s->len;
		c->n -= s->len;
	}
}

static void teardown(void)
{
	for (size_t i = 0; i < up.n_subs; i++) {
		free(up.subs[i].msg);
		free(up.subs[i].got);
		free(up.subs[i].want);
	}
	for (size_t i = 0; i < up.n_reqs; i++)
		free(up.reqs[i].body);
	if (up.srv)
		nghttp2_session_del(up.srv);
	frame_buf_deinit(&up.fb);
	free(up.out);
	free(up.to_client);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl c = {data, size};
	memset(&up, 0, sizeof(up));
	up.flags = ctl_u8(&c);
	size_t nq = 1 + ctl_u8(&c) % 8;
	for (int i = 0; i < 8; i++)
		up.rng = up.rng << 8 | ctl_u8(&c);
	up.max_streams = UINT32_MAX;
	read_queries(&c, nq);
	if (frame_buf_init(&up.fb, 4096) < 0)
		abort();
	struct h2f_opts o = {.authority = AUTHORITY, .path = PATH, .use_get = (up.flags & F_GET) != 0};
	struct h2f_events ev = {.arg = &up, .answer = ev_answer, .failed = ev_failed, .goaway = ev_goaway};
	up.f = h2f_new(&o, &ev);
	CHECK(up.f);
	for (size_t i = 0, first = 1 + fz_rand(&up.rng) % nq; i < first; i++)
		submit_next();
	if (up.flags & F_SCRIPTED) {
		server_new();
		exchange();
		while (c.n && !up.has_failed)
			script_step(&c);
	} else {
		run_raw(&c);
	}
	struct h2w w;
	h2w_init(&w, true);
	h2w_feed(&w, up.out, up.out_len);
	if (w.why)
		fprintf(stderr, "HTTP/2 written: %s\n", w.why);
	CHECK(!w.why && w.settings_frames > 0 && !w.cont_stream && w.len == 0);
	check_requests(&w);
	h2w_deinit(&w);
	if ((up.flags & F_SCRIPTED) && !up.is_tainted)
		check_expected();
	up.in_free = true;
	h2f_free(up.f);
	teardown();
	return 0;
}
