/* tcp.c -- TCP and DNS-over-TLS listeners and their client connections (see
 * frontend.h). RFC 7766: several queries in flight per connection (6.2.1), answers
 * sent as they come, in any order (7), idle connections closed (6.2.3), and a
 * cap on connections so a flood of them cannot take all file descriptors.
 * RFC 7858: the same over TLS (tls/tls.h), with a handshake deadline and
 * answers padded to 468-byte blocks (RFC 8467 4.1). */
#include <stdlib.h>
#include <string.h>
#include "core/query.h"
#include "core/wire.h"
#include "core/worker.h"
#include "frontend/frontend.h"
#include "frontend/http.h"
#include "obs/log.h"
#include "tls/tls.h"

#define CLIENT_RBUF 4096
#define CLIENT_RBUF_KEEP (4 * CLIENT_RBUF) /* a buffer grown past this is given back once empty */
#define TCP_CLIENT_WQ_MAX (64 * 1024) /* answers queued for a client past which it is not read from... */
#define TCP_CLIENT_WQ_LOW (16 * 1024) /* ...until it has taken them down to this */
#define HTTP_OUT_CAP 16384 /* DoH: plaintext gathered per loop turn, at most one full TLS record (RFC 8446 5.1) */

struct frontend_tcp {
	uv_tcp_t h;
	struct worker *w;
	const struct listen_conf *conf;
	struct frontend_tcp *next; /* worker's list */
};

/* A client connection's life: open (reading queries) -> draining (no more
 * queries; answers flushed, then our FIN, then its input read away until its
 * FIN or the linger time) -> closing (uv_close) -> freed when refs reach 0. */
struct tcp_client {
	uv_tcp_t h;
	struct worker *w;
	struct frame_buf in;        /* bytes read, reassembled */
	struct tq_entry idle;       /* in w->tcp_idle while no query is in flight; in w->tcp_linger while draining */
	struct tq_entry hs;         /* in w->tls_hs until the TLS handshake is done */
	struct tls_conn *tls;       /* DoT: the session; NULL for plain TCP */
	uv_shutdown_t shutdown_req; /* draining: our FIN, after every queued answer */
	uint32_t refs;              /* 1 for the open handle + 1 per query + 1 per pending write or shutdown */
	uint32_t inflight;          /* queries from it not yet answered */
	bool is_closing;            /* uv_close called */
	bool is_draining;           /* no more queries: finishing (see above) */
	bool is_reading;
	bool in_process;            /* process() is on the stack: answers given inside it must not re-enter */
	bool saw_eof;               /* the client sent FIN (or close_notify): no more queries come */
	bool is_backlogged;         /* answers queued past TCP_CLIENT_WQ_MAX: not taking queries */
	bool fin_sent;              /* draining: the shutdown is done (every answer written, FIN sent) */
	bool close_after_fin;       /* draining an idle connection: close once our FIN is out */
	struct client as_client;    /* what its queries get as their client (ops, peer, this connection) */
	bool is_http;               /* an http:// or https:// listener's: DoH, not DNS framing */
	const struct http_proto *proto; /* DoH: the HTTP layer chosen (ALPN, or the first bytes) */
	void *http;                 /* its state */
	bool no_more;               /* the HTTP layer takes no more requests (Connection: close, errors) */
	uv_check_t out_check;       /* DoH: writes out at the end of the loop turn (active while hout_len > 0) */
	uint8_t *hout;              /* DoH: what the HTTP layer wrote this turn, not yet sent (heap, HTTP_OUT_CAP) */
	size_t hout_len;
	struct tcp_client *prev, *next; /* worker's list */
};

struct write_req {
	uv_write_t req;
	struct tcp_client *tc;
	uint8_t data[]; /* length prefix and message */
};

static void client_unref(struct tcp_client *tc)
{
	if (--tc->refs > 0)
		return;
	frame_buf_deinit(&tc->in);
	if (tc->proto)
		tc->proto->free(tc->http);
	tls_conn_free(tc->tls);
	free(tc->hout);
	free(tc);
}

static void client_close_cb(uv_handle_t *h)
{
	client_unref(h->data);
}

static void http_flush(struct tcp_client *tc);

/* Close now. Writes still queued are cancelled (write_cb counts them):
 * only for errors, and for a drain that ran out of time. */
static void client_close(struct tcp_client *tc)
{
	if (tc->is_closing)
		return;
	struct worker *w = tc->w;
	tc->is_closing = true;
	tq_remove(&tc->idle);
	tq_remove(&tc->hs);
	if (tc->prev)
		tc->prev->next = tc->next;
	else
		w->clients = tc->next;
	if (tc->next)
		tc->next->prev = tc->prev;
	w->n_clients--;
	if (tc->is_http) {
		tc->hout_len = 0; /* unsent: lost with the connection */
		uv_close((uv_handle_t *)&tc->out_check, client_close_cb);
	}
	uv_close((uv_handle_t *)&tc->h, client_close_cb);
}

static void process(struct tcp_client *tc, bool activity);
static void write_bytes(struct tcp_client *tc, uv_buf_t *b, unsigned nb);
static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void drain_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct tcp_client *tc = h->data;
	uint8_t *p;
	size_t room;
	(void)suggested;
	int r = tc->tls ? tls_conn_room(tc->tls, &p, &room) : frame_buf_room(&tc->in, 1024, &p, &room);
	if (r < 0) {
		buf->base = NULL;
		buf->len = 0;
		return;
	}
	buf->base = (char *)p;
	buf->len = room;
}

/* Draining: what the client still sends is read and thrown away, so that
 * closing finds no unread input (the kernel would answer that with a RST,
 * which discards the answers we have not yet delivered). */
static void drain_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static __thread char sink[4096];
	(void)h;
	(void)suggested;
	buf->base = sink;
	buf->len = sizeof(sink);
}

/* Send what TLS produced (handshake records, or encrypted answers). */
static void flush_tls(struct tcp_client *tc)
{
	struct frame_buf *o = tls_conn_out(tc->tls);
	if (o->len == 0)
		return;
	uv_buf_t b = uv_buf_init((char *)o->data, (unsigned)o->len);
	write_bytes(tc, &b, 1);
	o->len = 0;
}

static void set_reading(struct tcp_client *tc, bool on)
{
	if (on == tc->is_reading || tc->is_closing || tc->is_draining)
		return;
	tc->is_reading = on;
	if (on)
		uv_read_start((uv_stream_t *)&tc->h, alloc_cb, read_cb);
	else
		uv_read_stop((uv_stream_t *)&tc->h);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	struct tcp_client *tc = req->data;
	/* every answer is written and our FIN sent: close at once if the client
	 * has sent its FIN too (or on an error), else when it does or the linger
	 * time runs out (drain_read_cb, frontend_tcp_idle_expired) */
	tc->fin_sent = true;
	if (status < 0 || tc->saw_eof || tc->close_after_fin)
		client_close(tc);
	client_unref(tc);
}

/* Finish a connection without losing an answer (RFC 7766 6.2.4): no more
 * queries; answers already queued are written, then close_notify (DoT) and
 * our FIN; its input is read away until its FIN. Bounded by the linger
 * time, after which what is still queued is cancelled and counted. */
static void client_drain(struct tcp_client *tc)
{
	struct worker *w = tc->w;
	if (tc->is_closing || tc->is_draining)
		return;
	if (tc->is_reading)
		uv_read_stop((uv_stream_t *)&tc->h);
	tc->is_draining = true;
	tc->is_reading = false;
	tq_remove(&tc->hs);
	tq_add(&w->tcp_linger, &tc->idle, worker_now(w));
	worker_arm(w, tc->idle.deadline_ms);
	if (tc->proto)
		tc->proto->goaway(tc->http); /* HTTP/2: GOAWAY before the FIN */
	if (tc->is_http)
		http_flush(tc); /* every response before close_notify and the FIN */
	if (tc->tls && tls_conn_handshake_done(tc->tls) && tls_conn_bye(tc->tls) == 0)
		flush_tls(tc);
	if (tc->is_closing)
		return; /* the write of close_notify failed */
	tc->shutdown_req.data = tc;
	if (uv_shutdown(&tc->shutdown_req, (uv_stream_t *)&tc->h, shutdown_cb) < 0) {
		client_close(tc);
		return;
	}
	tc->refs++;
	if (!tc->saw_eof && uv_read_start((uv_stream_t *)&tc->h, drain_alloc_cb, drain_read_cb) < 0)
		client_close(tc);
}

static void drain_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct tcp_client *tc = s->data;
	(void)buf;
	if (nread < 0) {
		tc->saw_eof = true;
		uv_read_stop(s);
		/* its FIN (or an error): done once our shutdown is through */
		if (nread != UV_EOF || tc->fin_sent)
			client_close(tc);
	}
}

/* DoH: HTTP/2 or HTTP/1.x on this connection (ALPN over TLS; over
 * cleartext, HTTP/2 with prior knowledge starts with its preface, RFC 9113
 * 3.4). False when it could not be set up (the connection is closed). */
static bool choose_http(struct tcp_client *tc, bool h2)
{
	uint32_t max = tc->w->cfg->tcp_pipeline;
	tc->proto = h2 ? &http2_proto : &http1_proto;
	tc->http = h2 ? http2_new(tc, max) : http1_new(tc, max);
	if (!tc->http) {
		tc->proto = NULL;
		client_close(tc);
		return false;
	}
	if (h2)
		METRIC_INC(&tc->w->m, doh_h2_clients);
	else
		METRIC_INC(&tc->w->m, doh_h1_clients);
	return true;
}

/* DoT: finish the handshake, then decrypt into tc->in. False when there is
 * nothing more to do now (or the connection was closed). */
static bool tls_progress(struct tcp_client *tc)
{
	struct worker *w = tc->w;
	if (!tls_conn_handshake_done(tc->tls)) {
		int r = tls_conn_handshake(tc->tls);
		flush_tls(tc);
		if (r == TLS_AGAIN || tc->is_closing)
			return false;
		if (r < 0) {
			METRIC_INC(&w->m, tls_client_failures);
			log_debug(TLS, "DoT client handshake failed: %s", tls_strerror(r));
			client_close(tc);
			return false;
		}
		tq_remove(&tc->hs);
		METRIC_INC(&w->m, tls_clients);
		if (tc->is_http && !choose_http(tc, tls_conn_alpn_is_h2(tc->tls)))
			return false;
	}
	int r = tls_conn_read(tc->tls, &tc->in);
	if (r < 0) {
		/* close_notify is the client's EOF: every query decrypted before it
		 * is answered (process() takes them as the pipeline allows), then
		 * the connection drains */
		if (r == -ECONNRESET) {
			tc->saw_eof = true;
			set_reading(tc, false);
			process(tc, false);
		} else {
			client_close(tc);
		}
		return false;
	}
	return true;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct tcp_client *tc = s->data;
	(void)buf;
	if (nread == 0)
		return;
	if (nread < 0) {
		/* EOF: the client will send no more; answers to what it sent may
		 * still be written (RFC 7766 6.2.4), so drain only when none is due */
		uv_read_stop(s);
		tc->is_reading = false;
		tc->saw_eof = true;
		if (nread != UV_EOF || (tc->tls && !tls_conn_handshake_done(tc->tls)))
			client_close(tc);
		else
			process(tc, false); /* whole messages before the FIN still count */
		return;
	}
	if (tc->tls) {
		tls_conn_filled(tc->tls, (size_t)nread);
		if (!tls_progress(tc))
			return;
	} else {
		frame_buf_filled(&tc->in, (size_t)nread);
	}
	struct worker *w = tc->w;
	process(tc, false); /* may close tc */
	worker_batch_done(w);
}

/* Is a whole message (or, for HTTP, input not yet taken) waiting in the buffer? */
static bool has_message(const struct tcp_client *tc)
{
	const struct frame_buf *in = &tc->in;
	size_t avail = in->len - in->start;
	if (tc->is_http)
		return avail > 0 && !tc->no_more;
	return avail >= 2 && avail >= 2 + (((size_t)in->data[in->start] << 8) | in->data[in->start + 1]);
}

/* DoH: hand what was read to the HTTP layer (choosing it on cleartext by
 * the first bytes). The layer starts queries itself (doh.c); the pipeline
 * cap is its concurrent streams or pipelined requests. */
static void take_http(struct tcp_client *tc)
{
	size_t avail = tc->in.len - tc->in.start;
	if (tc->is_backlogged || avail == 0)
		return;
	if (!tc->proto) {
		if (avail < 2)
			return;
		if (!choose_http(tc, memcmp(tc->in.data + tc->in.start, "PR", 2) == 0)) /* "PRI * HTTP/2.0" */
			return;
	}
	int n = tc->proto->input(tc->http, tc->in.data + tc->in.start, avail);
	if (n < 0) {
		log_debug(FRONTEND, "DoH client: the %s layer takes no more requests", tc->proto->name);
		/* a protocol error (what the layer had to say is queued) */
		tc->in.start = tc->in.len;
		tc->no_more = true;
		return;
	}
	tc->in.start += (size_t)n;
}

static void arm_idle(struct tcp_client *tc)
{
	tq_add(&tc->w->tcp_idle, &tc->idle, worker_now(tc->w));
	worker_arm(tc->w, tc->idle.deadline_ms);
}

/* Turn every whole message in the buffer into a query, up to the pipeline
 * cap and while the client reads its answers; past either, stop reading
 * until answers go out (backpressure, not drops: RFC 7766 6.2.3). */
static void process(struct tcp_client *tc, bool activity)
{
	struct worker *w = tc->w;
	uint8_t *msg;
	size_t len;
	unsigned got = 0;
	if (tc->is_closing || tc->is_draining)
		return;
	tc->in_process = true;
	if (tc->is_http)
		take_http(tc);
	else
		while (!tc->is_closing && !tc->is_backlogged && tc->inflight < w->cfg->tcp_pipeline &&
		       frame_next(&tc->in, &msg, &len))
			got += frontend_query(w, msg, len, &tc->as_client) > 0; /* only real queries count as activity */
	tc->in_process = false;
	if (tc->is_closing)
		return;
	if (tc->in.start == tc->in.len && tc->in.cap > CLIENT_RBUF_KEEP) {
		/* a large message passed: give its buffer back */
		frame_buf_deinit(&tc->in);
		if (frame_buf_init(&tc->in, CLIENT_RBUF) < 0) {
			client_close(tc);
			return;
		}
	}
	if (tc->saw_eof || tc->no_more || w->is_stopping) {
		/* nothing more will be read: finish once every query taken (and
		 * every whole one still buffered) is answered */
		set_reading(tc, false);
		if (tc->inflight == 0 && !has_message(tc))
			client_drain(tc);
		else if (tc->inflight == 0 && (activity || got || !tq_entry_queued(&tc->idle)))
			arm_idle(tc); /* backlogged: a client that stops reading is closed after --tcp-idle */
		return;
	}
	set_reading(tc, tc->inflight < w->cfg->tcp_pipeline && !tc->is_backlogged);
	/* the idle clock restarts for queries and their answers only, not for
	 * bytes, empty frames or messages that are dropped: a client dribbling
	 * them cannot hold the connection */
	if (tc->inflight == 0 && (activity || got || !tq_entry_queued(&tc->idle)))
		arm_idle(tc);
}

static void query_start(struct query *q)
{
	struct tcp_client *tc = q->client.u.stream.conn;
	tc->refs++;
	tc->inflight++;
	/* the idle entry stays where it is: only a real query's answer moves it
	 * (query_release); one that expires while queries are in flight is
	 * ignored (frontend_tcp_idle_expired) */
}

static void query_release(struct query *q)
{
	struct tcp_client *tc = q->client.u.stream.conn;
	tc->inflight--;
	if (!tc->in_process)
		process(tc, q->is_activity); /* messages held back by the cap, reading, idle timer, draining */
	client_unref(tc);
}

static uint16_t stream_max_answer(const struct query *q, const struct msg_info *mi)
{
	(void)q;
	(void)mi;
	return UINT16_MAX; /* RFC 7766 8: a stream carries any message whole */
}

static void query_reply(struct query *q, const uint8_t *msg, size_t len);

static const struct client_ops tcp_client_ops = {
	.name = "tcp",
	.kind = MF_TCP,
	.max_answer = stream_max_answer,
	.start = query_start,
	.reply = query_reply,
	.release = query_release,
};

static const struct client_ops dot_client_ops = {
	.name = "dot",
	.kind = MF_DOT,
	.max_answer = stream_max_answer,
	.start = query_start,
	.reply = query_reply,
	.release = query_release,
};

/* Bytes of answers queued for the client and not yet taken by its socket. */
static size_t queued(const struct tcp_client *tc)
{
	return uv_stream_get_write_queue_size((const uv_stream_t *)&tc->h);
}

static void write_cb(uv_write_t *req, int status)
{
	struct write_req *wr = (struct write_req *)req;
	struct tcp_client *tc = wr->tc;
	free(wr);
	if (status == UV_ECANCELED) {
		METRIC_INC(&tc->w->m, tcp_writes_cancelled); /* closed with answers still queued */
	} else if (status < 0) {
		log_debug(FRONTEND, "tcp client: write failed: %s", uv_strerror(status));
		METRIC_INC(&tc->w->m, send_errors);
		client_close(tc);
	} else if (tc->is_backlogged && queued(tc) <= TCP_CLIENT_WQ_LOW) {
		tc->is_backlogged = false;
		process(tc, false); /* reading again */
	}
	client_unref(tc);
}

/* Write bufs, as much as the kernel takes now; the rest is copied and handed
 * to uv_write (answers are written in the order they are given). A client
 * that leaves more than TCP_CLIENT_WQ_MAX unread is not read from until it
 * catches up: what it can make us hold is bounded by that plus the answers
 * to the queries it has in flight. */
static void write_bytes(struct tcp_client *tc, uv_buf_t *b, unsigned nb)
{
	size_t total = 0;
	for (unsigned i = 0; i < nb; i++)
		total += b[i].len;
	size_t n = 0;
	if (queued(tc) == 0) {
		int r = uv_try_write((uv_stream_t *)&tc->h, b, nb);
		if (r == (int)total)
			return;
		if (r < 0 && r != UV_EAGAIN) {
			log_debug(FRONTEND, "tcp client: write failed: %s", uv_strerror(r));
			METRIC_INC(&tc->w->m, send_errors);
			client_close(tc);
			return;
		}
		n = r < 0 ? 0 : (size_t)r;
	}
	struct write_req *wr = malloc(sizeof(*wr) + total - n);
	if (!wr) {
		client_close(tc);
		return;
	}
	size_t off = 0, skip = n;
	for (unsigned i = 0; i < nb; i++) {
		size_t l = b[i].len;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		memcpy(wr->data + off, b[i].base + skip, l - skip);
		off += l - skip;
		skip = 0;
	}
	wr->tc = tc;
	uv_buf_t wb = uv_buf_init((char *)wr->data, (unsigned)off);
	if (uv_write(&wr->req, (uv_stream_t *)&tc->h, &wb, 1, write_cb) < 0) {
		free(wr);
		client_close(tc);
		return;
	}
	tc->refs++;
	if (!tc->is_backlogged && queued(tc) > TCP_CLIENT_WQ_MAX) {
		tc->is_backlogged = true;
		METRIC_INC(&tc->w->m, tcp_backlogged);
		set_reading(tc, false);
	}
}

static void query_reply(struct query *q, const uint8_t *msg, size_t len)
{
	struct tcp_client *tc = q->client.u.stream.conn;
	if (tc->is_closing || tc->is_draining) {
		METRIC_INC(&tc->w->m, send_errors);
		return;
	}
	if (tc->tls)
		msg = frontend_pad_answer(msg, &len, NULL);
	uint8_t pfx[2] = {(uint8_t)(len >> 8), (uint8_t)len};
	if (tc->tls) {
		if (tls_conn_write2(tc->tls, pfx, 2, msg, len) < 0) {
			METRIC_INC(&tc->w->m, send_errors);
			client_close(tc);
			return;
		}
		flush_tls(tc);
		return;
	}
	uv_buf_t b[2] = {uv_buf_init((char *)pfx, 2), uv_buf_init((char *)msg, (unsigned)len)};
	write_bytes(tc, b, 2);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct frontend_tcp *l = server->data;
	struct worker *w = l->w;
	if (status < 0) {
		log_warn_rl(FRONTEND, "tcp %s: accept failed: %s", l->conf->text, uv_strerror(status));
		return;
	}
	struct tcp_client *tc = calloc(1, sizeof(*tc));
	if (!tc || frame_buf_init(&tc->in, CLIENT_RBUF) < 0 || uv_tcp_init(&w->loop, &tc->h) < 0) {
		free(tc ? tc->in.data : NULL);
		free(tc);
		return;
	}
	tc->w = w;
	tc->h.data = tc;
	tc->refs = 1;
	if (uv_accept(server, (uv_stream_t *)&tc->h) < 0) {
		uv_close((uv_handle_t *)&tc->h, client_close_cb);
		return;
	}
	tc->as_client.ops = (l->conf->protos & LISTEN_TLS) ? &dot_client_ops : &tcp_client_ops;
	tc->is_http = (l->conf->protos & LISTEN_HTTP) != 0;
	tc->as_client.u.stream.conn = tc;
	tc->as_client.listener = (uint8_t)(l->conf - w->listens);
	if (tc->is_http) {
		uv_check_init(&w->loop, &tc->out_check); /* cannot fail: no syscall */
		tc->out_check.data = tc;
		tc->refs++; /* its close callback */
	}
	int namelen = sizeof(tc->as_client.peer);
	if (uv_tcp_getpeername(&tc->h, &tc->as_client.peer.sa, &namelen) < 0)
		tc->as_client.peer.sa.sa_family = AF_UNSPEC;
	tc->next = w->clients;
	if (w->clients)
		w->clients->prev = tc;
	w->clients = tc;
	w->n_clients++;
	if (w->n_clients > w->cfg->tcp_max_clients) {
		METRIC_INC(&w->m, tcp_rejected);
		client_close(tc);
		return;
	}
	METRIC_INC(&w->m, tcp_clients);
	uv_tcp_nodelay(&tc->h, 1);
	if (l->conf->protos & LISTEN_TLS) {
		tc->tls = tls_conn_new_server(w->cfg->tls_server, tc->is_http);
		if (!tc->tls) {
			client_close(tc);
			return;
		}
		tq_add(&w->tls_hs, &tc->hs, worker_now(w));
		worker_arm(w, tc->hs.deadline_ms);
	}
	set_reading(tc, true);
	tq_add(&w->tcp_idle, &tc->idle, worker_now(w));
	worker_arm(w, tc->idle.deadline_ms);
}

void frontend_tcp_idle_expired(struct worker *w, uint64_t now_ms)
{
	struct tq_entry *e;
	while ((e = tq_pop_expired(&w->tls_hs, now_ms))) {
		METRIC_INC(&w->m, tls_client_failures);
		client_close(tq_container(e, struct tcp_client, hs));
	}
	while ((e = tq_pop_expired(&w->tcp_idle, now_ms))) {
		struct tcp_client *tc = tq_container(e, struct tcp_client, idle);
		if (tc->inflight == 0) {
			/* idle this long: nothing of ours is unacknowledged, so a RST
			 * would lose nothing -- no need to wait for its FIN */
			tc->close_after_fin = true;
			client_drain(tc);
		}
	}
	while ((e = tq_pop_expired(&w->tcp_linger, now_ms))) {
		/* a drain that did not finish in time: the client reads nothing */
		struct tcp_client *tc = tq_container(e, struct tcp_client, idle);
		log_debug(FRONTEND, "tcp client: drain timed out with %zu bytes unwritten", queued(tc));
		client_close(tc);
	}
}

static void listener_close_cb(uv_handle_t *h)
{
	free(h->data);
}

int frontend_tcp_start(struct worker *w, const struct listen_conf *lc, int fd)
{
	struct frontend_tcp *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->w = w;
	l->conf = lc;
	int r = uv_tcp_init(&w->loop, &l->h);
	if (r < 0) {
		free(l);
		return r;
	}
	l->h.data = l;
	r = uv_tcp_open(&l->h, fd);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&l->h, 1024, on_connection);
	if (r < 0) {
		uv_close((uv_handle_t *)&l->h, listener_close_cb);
		return r;
	}
	l->next = w->tcps;
	w->tcps = l;
	return 0;
}

void frontend_tcp_stop(struct worker *w)
{
	struct frontend_tcp *l = w->tcps, *next;
	for (; l; l = next) {
		next = l->next;
		uv_close((uv_handle_t *)&l->h, listener_close_cb);
	}
	w->tcps = NULL;
}

void frontend_tcp_close_idle(struct worker *w)
{
	struct tcp_client *tc = w->clients, *next;
	for (; tc; tc = next) {
		next = tc->next;
		if (!tc->in_process)
			process(tc, false); /* drains it when nothing is due (w->is_stopping) */
	}
}

void frontend_tcp_abort_all(struct worker *w)
{
	while (w->clients)
		client_close(w->clients);
}

/* ---- what the HTTP layers (h1.c, h2.c, doh.c) use of a connection ---- */

/* Send what the HTTP layer wrote: in one TLS record (or one write) per loop
 * turn rather than one per frame -- a record costs ~3,000 instructions
 * whatever it holds, and HTTP/2 writes two frames per response. */
static void conn_send(struct tcp_client *tc, const uint8_t *data, size_t len)
{
	if (tc->is_closing)
		return;
	if (tc->tls) {
		int r = tls_conn_write(tc->tls, data, len);
		if (r < 0) {
			log_debug(FRONTEND, "DoH client: TLS write failed: %s", tls_strerror(r));
			METRIC_INC(&tc->w->m, send_errors);
			client_close(tc);
			return;
		}
		flush_tls(tc);
		return;
	}
	uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
	write_bytes(tc, &b, 1);
}

static void http_flush(struct tcp_client *tc)
{
	if (tc->hout_len == 0)
		return;
	size_t n = tc->hout_len;
	tc->hout_len = 0;
	uv_check_stop(&tc->out_check);
	conn_send(tc, tc->hout, n);
}

static void out_check_cb(uv_check_t *h)
{
	http_flush(h->data);
}

void frontend_conn_write(struct tcp_client *tc, const uint8_t *data, size_t len)
{
	if (tc->hout_len + len > HTTP_OUT_CAP)
		http_flush(tc);
	if (tc->is_closing)
		return;
	if (len > HTTP_OUT_CAP || (!tc->hout && !(tc->hout = malloc(HTTP_OUT_CAP)))) {
		conn_send(tc, data, len); /* a large body (or no buffer): as it is */
		return;
	}
	if (tc->hout_len == 0)
		uv_check_start(&tc->out_check, out_check_cb);
	memcpy(tc->hout + tc->hout_len, data, len);
	tc->hout_len += len;
}

struct worker *frontend_conn_worker(const struct tcp_client *tc)
{
	return tc->w;
}

const struct client *frontend_conn_client(const struct tcp_client *tc)
{
	return &tc->as_client;
}

void *frontend_conn_http(const struct tcp_client *tc)
{
	return tc->is_closing ? NULL : tc->http;
}

bool frontend_conn_is_tls(const struct tcp_client *tc)
{
	return tc->tls != NULL;
}

void frontend_conn_no_more(struct tcp_client *tc)
{
	tc->no_more = true;
	if (!tc->in_process)
		process(tc, false); /* drains once nothing is in flight */
}

void frontend_conn_query_start(struct query *q)
{
	query_start(q);
}

void frontend_conn_query_release(struct query *q)
{
	query_release(q);
}
