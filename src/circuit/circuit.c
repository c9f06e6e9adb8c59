/* circuit.c -- one persistent, pipelined stream connection to an upstream
 * (see circuit.h and circuit/README.md).
 *
 * Owns: the stream handle, a timer (backoff, connect timeout, stall and idle
 * checks), the in-flight table, the waiting list, and input/output buffers.
 * Leaves to others: choosing the upstream (route/), what happens to an
 * answer (core/query.c), and reconnect policy numbers (route/health.h). */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <libknot/libknot.h>
#include "circuit/circuit.h"
#include "circuit/h2.h"
#include "circuit/inflight.h"
#include "circuit/rewrite.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/query.h"
#include "core/scratch.h"
#include "core/wire.h"
#include "core/worker.h"
#include "obs/log.h"
#include "tls/tls.h"
#include "upstream/upstream.h"

#define CIRCUIT_RBUF 16384
#define CIRCUIT_CONNECTS_PER_S 20 /* new connections per upstream per worker and second */
#define CIRCUIT_ACK_NOW_MAX 2     /* answers still due up to which a read is ACKed at once */
#define CIRCUIT_ACK_DELAY_MS 1    /* else: how long a write of ours may take to carry the ACK */
#define CIRCUIT_CORK_INFLIGHT 64  /* queries outstanding from which new ones are coalesced... */
#define CIRCUIT_CORK_BATCH 64     /* ...until this many are waiting */
#define CIRCUIT_CORK_MS 1         /* ...or for this long (the loop clock's resolution) */

enum circuit_state { C_BACKOFF, C_CONNECTING, C_HANDSHAKE, C_READY, C_CLOSING };

struct circuit {
	struct upstream *up;        /* owner; NULL once closing */
	struct worker *w;
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} io;                       /* the connection (initialised from CONNECTING on) */
	uv_connect_t connect_req;
	uv_write_t write_req;
	uv_timer_t timer;           /* backoff / connect timeout / stall and idle checks */
	enum circuit_state state;
	struct inflight table;      /* queries written, by upstream-side ID */
	struct tq waiting;          /* queries given before READY (a plain list) */
	uint32_t n_waiting;
	struct tls_conn *tls;       /* tls://, https://: the session the stream carries */
	struct h2_framing *h2;      /* https://: HTTP/2 streams instead of DNS's 2-byte framing (circuit/h2.h) */
	bool is_going_away;         /* https://: the server sent GOAWAY, no new queries */
	struct frame_buf in;        /* bytes read (plaintext), reassembled into messages */
	struct frame_buf out;       /* framed queries (plaintext) to write this loop turn */
	struct frame_buf wr;        /* bytes owned by an uv_write in progress */
	uint64_t last_progress_ms;  /* last answer, or when it went from idle to busy */
	uint64_t last_active_ms;    /* last query written or answer read */
	uint64_t timer_at_ms;       /* when timer fires, 0 when stopped */
	uint32_t idle_ms;           /* close when idle this long (RFC 7828 may lower it) */
	uint32_t answers;           /* answers read on this connection */
	unsigned open_handles;      /* handles not yet closed: memory is freed at 0 */
	unsigned id;                /* short id for logs */
	bool io_init;               /* io handle initialised (must be closed) */
	bool is_writing;            /* write_req in progress, owning wr */
	bool is_dirty;              /* on the worker's flush list */
	bool ka_asked;              /* an RFC 7828 keepalive option went out */
	int connect_err;            /* CONNECTING: the connect failed at once (reported from the timer) */
	uint32_t write_seq;         /* queries written so far (each query keeps its number) */
	int tcp_fd;                 /* the TCP socket (quick ACKs), -1 for unix:// */
	bool ack_owed;              /* answers read, ACK not yet sent (see owe_ack) */
	uint64_t ack_read_ms;       /* when the last of those was read */
	unsigned out_count;         /* queries in out */
	bool corked;                /* out held back since cork_ms (see hold_back) */
	uint64_t cork_ms;
	uint64_t connect_us;        /* clock_us() when the connect started (handshake histogram) */
	struct circuit *next_dirty;
};

static unsigned next_circuit_id;

static void on_timer(uv_timer_t *t);
static void start_connect(struct circuit *c);

static void arm(struct circuit *c, uint64_t at_ms)
{
	uint64_t now = worker_now(c->w);
	if (c->timer_at_ms && c->timer_at_ms <= at_ms)
		return; /* fires earlier anyway, and re-checks then */
	c->timer_at_ms = at_ms;
	uv_timer_start(&c->timer, on_timer, at_ms > now ? at_ms - now : 0, 0);
}

/* At most CIRCUIT_CONNECTS_PER_S new connections per upstream per worker and
 * second, even when each one works: an upstream that closes every connection
 * at once (or a TLS server that drops sessions) must not turn into a
 * handshake storm. Returns when the next one may start (jittered). */
static uint64_t rate_limit(struct upstream *u, uint64_t at)
{
	if (at >= u->connects_window_ms + 1000) {
		u->connects_window_ms = at;
		u->connects_in_window = 0;
	}
	if (u->connects_in_window < CIRCUIT_CONNECTS_PER_S) {
		u->connects_in_window++;
		return at;
	}
	uint64_t next = u->connects_window_ms + 1000 + rnd_u16(&u->w->rnd) % 100;
	u->connects_window_ms = next;
	u->connects_in_window = 1;
	return next;
}

struct circuit *circuit_new(struct upstream *u)
{
	struct worker *w = u->w;
	struct circuit *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	if (inflight_init(&c->table, w->cfg->circuit_inflight) < 0 || frame_buf_init(&c->in, CIRCUIT_RBUF) < 0) {
		inflight_deinit(&c->table);
		free(c);
		return NULL;
	}
	c->up = u;
	c->w = w;
	c->tcp_fd = -1;
	c->id = __atomic_add_fetch(&next_circuit_id, 1, __ATOMIC_RELAXED);
	c->idle_ms = w->cfg->circuit_idle_ms;
	tq_init(&c->waiting, 0);
	uv_timer_init(&w->loop, &c->timer);
	c->timer.data = c;
	c->open_handles = 1;
	u->circuits[u->n_circuits++] = c; /* until detach_from_upstream(), whatever happens next */
	uint64_t now = worker_now(w);
	uint64_t at = u->health.retry_at_ms > now ? u->health.retry_at_ms : now;
	at = rate_limit(u, at);
	if (at > now) {
		c->state = C_BACKOFF;
		arm(c, at);
	} else {
		start_connect(c);
	}
	return c;
}

unsigned circuit_held(const struct circuit *c)
{
	return c->table.count + c->n_waiting;
}

bool circuit_has_room(const struct circuit *c)
{
	/* (HTTP/2: past the server's SETTINGS_MAX_CONCURRENT_STREAMS nghttp2
	 * holds the requests until a stream closes (RFC 9113 5.1.2): one
	 * connection carries them, a second opens only at --circuit-inflight) */
	return c->state != C_CLOSING && !c->is_going_away && c->table.count + c->n_waiting < c->table.cap;
}

struct circuit *circuit_next_dirty(struct circuit *c)
{
	return c->next_dirty;
}

static void mark_dirty(struct circuit *c)
{
	if (c->is_dirty)
		return;
	c->is_dirty = true;
	c->next_dirty = c->w->dirty;
	c->w->dirty = c;
}

/* DoH: the query, padded (RFC 8467 4.1; no keepalive, which is for DNS over
 * TCP), as the body of a request on a stream of its own. */
static int append_h2(struct circuit *c, struct query *q)
{
	static __thread void *frame_slot;
	uint8_t *frame = scratch(&frame_slot, 2 + MSG_MAX + REWRITE_GROWTH);
	struct rewrite_opts o = {.id = q->up_id, .pad_block = REWRITE_PAD_BLOCK};
	unsigned added;
	size_t n = rewrite_query(frame, q->wire, q->len, &q->mi, &o, &added);
	int32_t sid = h2f_submit(c->h2, frame + 2, n - 2, q->up_id);
	if (sid < 0)
		return -ENOMEM;
	q->added = (uint8_t)added;
	q->h2_stream = sid;
	c->out_count++;
	return 0;
}

/* Append q to the output as one frame with our changes (circuit/rewrite.h):
 * RFC 7828 3.2.1 -- a client asks for the server's idle timeout by sending
 * the keepalive option empty, over TCP only, once per connection; over TLS,
 * padding to a multiple of 128 bytes (RFC 8467 4.1). */
static int append_h2(struct circuit *c, struct query *q);

static int append_query(struct circuit *c, struct query *q)
{
	if (c->h2)
		return append_h2(c, q);
	if (frame_buf_reserve(&c->out, 2 + (size_t)q->len + REWRITE_GROWTH) < 0)
		return -ENOMEM;
	struct rewrite_opts o = {
		.id = q->up_id,
		.keepalive = !c->ka_asked,
		.pad_block = c->tls ? REWRITE_PAD_BLOCK : 0,
	};
	unsigned added;
	c->out.len += rewrite_query(c->out.data + c->out.len, q->wire, q->len, &q->mi, &o, &added);
	c->out_count++;
	q->added = (uint8_t)added;
	if (added & REWRITE_KEEPALIVE)
		c->ka_asked = true;
	return 0;
}

static int write_query(struct circuit *c, struct query *q)
{
	uint16_t id;
	int r = inflight_add(&c->table, &c->w->rnd, q, &id);
	if (r < 0)
		return r;
	knot_wire_set_id(q->wire, id);
	q->up_id = id;
	q->write_seq = c->write_seq++;
	if (append_query(c, q) < 0) {
		inflight_del(&c->table, id);
		return -ENOMEM;
	}
	uint64_t now = worker_now(c->w);
	if (c->table.count == 1) {
		/* idle -> busy: the stall clock starts; the timer also notices the
		 * circuit going idle again, so it fires by the shorter of the two */
		uint32_t stall = c->w->cfg->circuit_stall_ms;
		c->last_progress_ms = now;
		arm(c, now + (c->idle_ms < stall ? c->idle_ms : stall));
	}
	c->last_active_ms = now;
	q->state = Q_CIRCUIT;
	q->circ = c;
	q->was_sent = true;
	q->written_us = clock_us(); /* (its bytes leave in this loop turn, or within CIRCUIT_CORK_MS) */
	mark_dirty(c);
	return 0;
}

int circuit_send(struct circuit *c, struct query *q)
{
	if (!circuit_has_room(c))
		return ERR_FULL;
	if (c->state == C_READY)
		return write_query(c, q);
	tq_add(&c->waiting, &q->link, 0);
	c->n_waiting++;
	q->state = Q_WAITING;
	q->circ = c;
	return 0;
}

void circuit_cancel(struct circuit *c, struct query *q)
{
	if (q->state == Q_WAITING) {
		tq_remove(&q->link);
		c->n_waiting--;
	} else if (q->state == Q_CIRCUIT) {
		inflight_abandon(&c->table, q->up_id);
		if (c->h2) {
			h2f_cancel(c->h2, q->h2_stream); /* RST_STREAM: the server may stop working on it */
			mark_dirty(c);
		}
	}
	q->state = Q_IDLE;
	q->circ = NULL;
}

/* ---- closing ---- */

static void close_cb(uv_handle_t *h)
{
	struct circuit *c = h->data;
	if (--c->open_handles > 0)
		return;
	inflight_deinit(&c->table);
	h2f_free(c->h2);
	tls_conn_free(c->tls);
	frame_buf_deinit(&c->in);
	frame_buf_deinit(&c->out);
	frame_buf_deinit(&c->wr);
	free(c);
}

static void detach_from_upstream(struct circuit *c)
{
	struct upstream *u = c->up;
	if (!u)
		return;
	for (unsigned i = 0; i < u->n_circuits; i++) {
		if (u->circuits[i] == c) {
			u->circuits[i] = u->circuits[--u->n_circuits];
			break;
		}
	}
	c->up = NULL;
}

/* What becomes of the queries a closing circuit holds. */
enum handback { HAND_REQUEUE, HAND_FAIL, HAND_ELSEWHERE };

static void hand_back(struct query *q, enum handback how, const struct upstream *u)
{
	switch (how) {
	case HAND_REQUEUE: query_requeue(q); break;
	case HAND_FAIL: query_fail(q, KNOT_RCODE_SERVFAIL); break;
	case HAND_ELSEWHERE: query_dispatch_elsewhere(q, u); break;
	}
}

static int by_write_order(const void *a, const void *b)
{
	const struct query *x = *(struct query *const *)a, *y = *(struct query *const *)b;
	return (int32_t)(x->write_seq - y->write_seq) < 0 ? -1 : x->write_seq != y->write_seq;
}

/* The queries written to a dying circuit go back in the order they were
 * written. The first of them -- the oldest still unanswered -- is where a
 * server that reads in order stopped: it is what a server that closes on a
 * message it cannot parse closed on. It is marked; marked twice, it is
 * answered SERVFAIL and never sent again (query_requeue), so such a message
 * costs the other clients one reconnect, while queries that only happened to
 * be in flight behind it are resent as often as QUERY_MAX_CIRCUIT_DEATHS
 * allows (an upstream that drops connections hurts nobody's answer). */
static unsigned hand_back_written(struct circuit *c, enum handback how, const struct upstream *u)
{
	unsigned n = c->table.count;
	struct query **qs = n ? malloc(n * sizeof(*qs)) : NULL;
	struct query *q;
	unsigned k = 0;
	while ((q = inflight_pop_any(&c->table))) {
		q->state = Q_IDLE;
		q->circ = NULL;
		q->circuit_deaths++;
		if (qs) {
			qs[k++] = q;
			continue;
		}
		hand_back(q, how, u); /* (out of memory: in any order, nobody marked) */
	}
	if (!qs)
		return n;
	qsort(qs, k, sizeof(*qs), by_write_order);
	if (how == HAND_REQUEUE && k)
		qs[0]->suspicion++;
	for (unsigned i = 0; i < k; i++)
		hand_back(qs[i], how, u);
	free(qs);
	return n;
}

static void close_circuit(struct circuit *c, enum handback how);

void circuit_close(struct circuit *c, bool requeue)
{
	close_circuit(c, requeue ? HAND_REQUEUE : HAND_FAIL);
}

static void close_circuit(struct circuit *c, enum handback how)
{
	const struct upstream *u = c->up;
	if (c->state == C_CLOSING)
		return;
	c->state = C_CLOSING;
	detach_from_upstream(c);
	/* Hand every query back before anything else can pick this circuit:
	 * written ones count a resend (RFC 7766 6.2.1: a dropped connection's
	 * queries may be retried; DNS queries are idempotent). */
	struct query *q;
	unsigned n = hand_back_written(c, how, u);
	struct tq_entry *e;
	while ((e = tq_pop_expired(&c->waiting, UINT64_MAX))) {
		q = tq_container(e, struct query, link);
		c->n_waiting--;
		q->state = Q_IDLE;
		q->circ = NULL;
		n++;
		hand_back(q, how, u);
	}
	if (n && how != HAND_FAIL)
		METRIC_ADD(&c->w->m, requeued, n);
	uv_close((uv_handle_t *)&c->timer, close_cb);
	if (c->io_init)
		uv_close(&c->io.handle, close_cb);
}

static enum upstream_error connect_error_kind(int err)
{
	return err == UV_ECONNREFUSED ? UERR_REFUSED : err == UV_ETIMEDOUT ? UERR_TIMEOUT : UERR_RESET;
}

/* The connection failed or died: count it (as kind, enum upstream_error)
 * and against the upstream's health when it never answered (refused,
 * reset at once, silent), then close and requeue. */
static void fail(struct circuit *c, enum upstream_error kind, const char *why, int err)
{
	struct upstream *u = c->up;
	if (!u)
		return;
	unsigned held = c->table.count + c->n_waiting;
	METRIC_INC(&c->w->m, circuits_failed);
	upstream_count_error(u, kind);
	if (c->answers == 0 || c->state != C_READY || err == ERR_DEADLINE)
		health_fail(&u->health, &c->w->rnd, worker_now(c->w));
	log_warn_rl(CIRCUIT, "circuit %u to %s %s: %s, %u queries requeued", c->id, u->name, why,
		    err ? (err == ERR_DEADLINE ? "no answer" : uv_strerror(err)) : "closed by peer", held);
	circuit_close(c, true);
}

/* ---- reading ---- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct circuit *c = h->data;
	uint8_t *p;
	size_t room;
	(void)suggested;
	int r = c->tls ? tls_conn_room(c->tls, &p, &room) : frame_buf_room(&c->in, 4096, &p, &room);
	if (r < 0) {
		buf->base = NULL;
		buf->len = 0;
		return;
	}
	buf->base = (char *)p;
	buf->len = room;
}

/* Undo what append_query() added, on the answer. RFC 7828 3.3.2: the
 * server's idle timeout -- close before it would (keep 20 % and 200 ms of
 * margin), so no query meets a closing socket. */
static size_t clean_answer(struct circuit *c, struct query *q, uint8_t *msg, size_t len)
{
	uint32_t server_ms;
	len = rewrite_answer(msg, len, q->added, &server_ms);
	if (server_ms) {
		uint64_t ours = (uint64_t)server_ms * 8 / 10;
		ours = ours > 200 ? ours - 200 : 0;
		if (ours < c->idle_ms)
			c->idle_ms = (uint32_t)ours;
		log_debug(CIRCUIT, "circuit %u: upstream keepalive %u ms, idle close after %u ms", c->id, server_ms,
			  c->idle_ms);
	}
	return len;
}

static void on_answer(struct circuit *c, uint8_t *msg, size_t len)
{
	struct worker *w = c->w;
	struct query *q = query_for_answer_from(w, c->up->stats, &c->table, msg, len);
	if (!q)
		return;
	inflight_del(&c->table, q->up_id);
	w->turn_inputs++;
	uint64_t now = worker_now(w);
	c->last_progress_ms = c->last_active_ms = now;
	c->answers++;
	health_ok(&c->up->health);
	upstream_note_answer(c->up, q);
	q->state = Q_IDLE;
	q->circ = NULL;
	if (q->added || c->tls) {
		len = clean_answer(c, q, msg, len);
		if (c->tls)
			tls_conn_save_session(c->tls);
	}
	query_upstream_answer(q, c->up, msg, len);
}

static void become_ready(struct circuit *c);
static bool tls_progress(struct circuit *c);
static void flush(struct circuit *c);
static void read_h2(struct circuit *c);

static void send_ack(struct circuit *c)
{
	/* Linux: a non-zero value sends a pending delayed ACK now; an even one
	 * then keeps delaying ACKs (stays out of quick-ACK mode) */
	int now_only = 2;
	c->ack_owed = false;
	METRIC_INC(&c->w->m, circuit_acks);
	(void)setsockopt(c->tcp_fd, IPPROTO_TCP, TCP_QUICKACK, &now_only, sizeof(now_only));
}

/* Data was just read and answers are still due. Many servers (Unbound's DoT
 * and TCP listeners, for one) write without TCP_NODELAY: Nagle holds their
 * next answer until our ACK of the last one, and Linux delays that ACK up to
 * 40 ms unless a query of ours carries it. So: with one or two answers due,
 * ACK at once (an A + AAAA pair); with more, give our next write a
 * millisecond to carry it, then ACK alone. Under load a write always comes
 * first, and the server's Nagle keeps coalescing answers into few segments. */
static void owe_ack(struct circuit *c)
{
	if (c->tcp_fd < 0 || c->table.count == 0)
		return;
	if (c->table.count <= CIRCUIT_ACK_NOW_MAX) {
		send_ack(c);
		return;
	}
	c->ack_owed = true;
	c->ack_read_ms = worker_now(c->w);
	arm(c, c->ack_read_ms + CIRCUIT_ACK_DELAY_MS);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct circuit *c = s->data;
	(void)buf;
	if (nread == 0)
		return;
	if (nread < 0) {
		if (c->table.count == 0 && c->n_waiting == 0 && nread == UV_EOF) {
			log_debug(CIRCUIT, "circuit %u to %s closed by peer while idle", c->id, c->up ? c->up->name : "?");
			circuit_close(c, true);
			return;
		}
		fail(c, UERR_RESET, "lost", nread == UV_EOF ? 0 : (int)nread);
		return;
	}
	if (c->tls) {
		tls_conn_filled(c->tls, (size_t)nread);
		if (!tls_progress(c))
			return;
	} else {
		frame_buf_filled(&c->in, (size_t)nread);
	}
	uint8_t *msg;
	size_t len;
	if (c->h2 && c->state == C_READY) {
		read_h2(c);
	} else {
		while (c->state == C_READY && frame_next(&c->in, &msg, &len))
			on_answer(c, msg, len);
	}
	if (c->state == C_READY)
		owe_ack(c);
	worker_batch_done(c->w); /* the answers of this read */
}

/* DoH: the plaintext goes to nghttp2, which calls back with answers
 * (h2_answer) and failures; what it wants to send in return (SETTINGS and
 * PING ACKs, WINDOW_UPDATEs) goes with the next flush. */
static void read_h2(struct circuit *c)
{
	size_t avail = c->in.len - c->in.start;
	int r = h2f_input(c->h2, c->in.data + c->in.start, avail);
	c->in.start = c->in.len;
	if (c->state != C_READY)
		return;
	if (r < 0) {
		fail(c, UERR_RESET, "HTTP/2 protocol error", ERR_DEADLINE);
		return;
	}
	mark_dirty(c);
	if (c->is_going_away && c->table.count == 0)
		circuit_close(c, true);
}

static void h2_answer(void *arg, uint16_t up_id, uint8_t *msg, size_t len)
{
	struct circuit *c = arg;
	if (len < MSG_HDR || c->state != C_READY)
		return;
	/* the stream says which query it answers; its ID field must agree
	 * (checked as on any circuit) -- a server that zeroes it (RFC 8484 4.1
	 * asks clients for 0, some servers echo 0 back) still answers */
	if (knot_wire_get_id(msg) == 0)
		knot_wire_set_id(msg, up_id);
	on_answer(c, msg, len);
}

static void h2_failed(void *arg, uint16_t up_id, bool refused, const char *why)
{
	struct circuit *c = arg;
	struct query *q = inflight_del(&c->table, up_id);
	if (!q)
		return;
	q->state = Q_IDLE;
	q->circ = NULL;
	if (refused) {
		query_requeue(q); /* not processed: another stream, or another circuit */
		return;
	}
	METRIC_INC(&c->w->m, upstream_errors);
	if (c->up)
		upstream_count_error(c->up, UERR_RESET); /* the stream ended in an HTTP error or a reset */
	log_warn_rl(CIRCUIT, "circuit %u to %s: %s", c->id, c->up ? c->up->name : "?", why);
	query_dispatch_elsewhere(q, c->up);
}

static void h2_goaway(void *arg)
{
	struct circuit *c = arg;
	/* RFC 9113 6.8: streams up to its last one are still answered; new
	 * queries go to another circuit */
	c->is_going_away = true;
	log_debug(CIRCUIT, "circuit %u to %s: GOAWAY, %u queries still in flight", c->id, c->up ? c->up->name : "?",
		  c->table.count);
}

/* https://: the server must have agreed to HTTP/2 (ALPN h2, RFC 8484 5.2:
 * HTTP/2 is the minimum recommended); then the HTTP/2 session. */
static bool start_h2(struct circuit *c)
{
	if (!tls_conn_alpn_is_h2(c->tls)) {
		log_warn_rl(CIRCUIT, "circuit %u to %s: the server does not speak HTTP/2 (ALPN h2); no query sent", c->id,
			    c->up->name);
		fail(c, UERR_TLS, "no HTTP/2", ERR_DEADLINE);
		return false;
	}
	const struct upstream_conf *uc = c->up->conf;
	struct h2f_opts o = {.authority = uc->authority, .path = uc->path, .use_get = uc->use_get};
	struct h2f_events ev = {.arg = c, .answer = h2_answer, .failed = h2_failed, .goaway = h2_goaway};
	c->h2 = h2f_new(&o, &ev);
	if (!c->h2) {
		fail(c, UERR_RESET, "HTTP/2 setup failed", -ENOMEM);
		return false;
	}
	return true;
}

/* TLS: finish the handshake (then check the certificate before any query is
 * written: strict profile, RFC 8310 5), then decrypt what came. Returns true
 * when plaintext may be in c->in. */
static bool tls_progress(struct circuit *c)
{
	int r;
	if (c->state == C_HANDSHAKE) {
		r = tls_conn_handshake(c->tls);
		mark_dirty(c); /* handshake records to send */
		if (r == TLS_AGAIN)
			return false;
		if (r < 0) {
			log_warn_rl(TLS, "circuit %u to %s: TLS handshake failed: %s", c->id, c->up->name, tls_strerror(r));
			fail(c, UERR_TLS, "TLS handshake failed", ERR_DEADLINE);
			return false;
		}
		const char *reason = NULL;
		char why[512];
		if (tls_conn_verify(c->tls, &reason, why, sizeof(why)) < 0) {
			METRIC_INC(&c->w->m, tls_auth_failures);
			METRIC_INC(&c->w->m, circuits_failed);
			upstream_count_error(c->up, UERR_TLS);
			log_warn_rl(TLS, "circuit %u to %s: certificate verification failed (reason: %s): %s; no query sent",
				    c->id, c->up->name, reason, why);
			/* a certificate does not fix itself in a few ms: mark the upstream
			 * down for longer, and send its queries to another member or
			 * answer them SERVFAIL now rather than at their deadline */
			health_fail(&c->up->health, &c->w->rnd, worker_now(c->w));
			c->up->health.is_down = true;
			c->up->health.retry_at_ms = worker_now(c->w) + HEALTH_AUTH_BACKOFF_MS;
			close_circuit(c, HAND_ELSEWHERE);
			return false;
		}
		if (c->up->conf->kind == UPSTREAM_HTTPS && !start_h2(c))
			return false;
		METRIC_INC(&c->w->m, tls_handshakes);
		if (tls_conn_resumed(c->tls))
			METRIC_INC(&c->w->m, tls_resumed);
		STAT_INC(c->up->stats, handshakes[tls_conn_resumed(c->tls) ? 1 : 0]);
		log_debug(TLS, "circuit %u to %s: TLS up%s", c->id, c->up->name,
			  tls_conn_resumed(c->tls) ? ", session resumed" : "");
		become_ready(c);
	}
	r = tls_conn_read(c->tls, &c->in);
	if (r < 0) {
		if (r == -ECONNRESET && c->table.count == 0 && c->n_waiting == 0) {
			circuit_close(c, true);
			return false;
		}
		fail(c, r == -ECONNRESET ? UERR_RESET : UERR_TLS, "TLS error", r == -ECONNRESET ? 0 : ERR_DEADLINE);
		return false;
	}
	return true;
}

/* ---- writing ---- */

static void write_cb(uv_write_t *req, int status)
{
	struct circuit *c = req->data;
	c->is_writing = false;
	c->wr.len = 0;
	if (c->state == C_CLOSING)
		return;
	if (status < 0) {
		fail(c, UERR_RESET, "write failed", status);
		return;
	}
	/* whatever waits in any layer (queries not yet encrypted, or records
	 * TLS produced while this write was in progress) goes now */
	if (c->out.len || (c->tls && tls_conn_out(c->tls)->len))
		flush(c);
}

/* Bytes for the socket: the framed queries themselves, or over TLS the
 * records they were encrypted into. */
static struct frame_buf *wire_out(struct circuit *c)
{
	return c->tls ? tls_conn_out(c->tls) : &c->out;
}

/* Coalescing under load. With CIRCUIT_CORK_INFLIGHT queries already
 * outstanding the upstream is busy and a new query queues behind them
 * anyway: hold new ones back until CIRCUIT_CORK_BATCH are waiting or
 * CIRCUIT_CORK_MS has passed, and write them as one TLS record in one
 * write. That saves a syscall, a record and a wakeup at both ends per batch
 * (figures in circuit/README.md). Below the mark, every query goes out in
 * the loop turn that took it in. */
static bool hold_back(struct circuit *c)
{
	if (c->state != C_READY || c->out_count == 0 || c->out_count >= CIRCUIT_CORK_BATCH ||
	    c->table.count < c->out_count + CIRCUIT_CORK_INFLIGHT) {
		c->corked = false;
		return false;
	}
	uint64_t now = worker_now(c->w);
	if (!c->corked) {
		c->corked = true;
		c->cork_ms = now;
	}
	if (now >= c->cork_ms + CIRCUIT_CORK_MS) {
		c->corked = false;
		return false;
	}
	arm(c, c->cork_ms + CIRCUIT_CORK_MS);
	return true;
}

/* From the worker's list of dirty circuits only: everyone else calls flush(),
 * which leaves is_dirty alone (a circuit still linked in the list must not
 * be linked again). */
void circuit_flush(struct circuit *c)
{
	c->is_dirty = false;
	flush(c);
}

static void flush(struct circuit *c)
{
	if (c->state != C_READY && c->state != C_HANDSHAKE)
		return;
	if (hold_back(c))
		return;
	if (c->h2 && c->state == C_READY && h2f_output(c->h2, &c->out) < 0) {
		fail(c, UERR_RESET, "HTTP/2 error", ERR_DEADLINE);
		return;
	}
	if (c->tls && c->out.len) {
		int r = tls_conn_write(c->tls, c->out.data, c->out.len);
		c->out.len = 0;
		c->out_count = 0;
		if (r < 0) {
			fail(c, UERR_TLS, "TLS error", ERR_DEADLINE);
			return;
		}
	}
	struct frame_buf *o = wire_out(c);
	if (c->is_writing || o->len == 0)
		return;
	c->ack_owed = false; /* these bytes carry the ACK */
	METRIC_INC(&c->w->m, circuit_writes);
	if (!c->tls)
		c->out_count = 0; /* out itself goes now */
	uv_buf_t b = uv_buf_init((char *)o->data, (unsigned)o->len);
	int n = uv_try_write(&c->io.stream, &b, 1);
	if (n == (int)o->len) {
		o->len = 0;
		return;
	}
	if (n < 0 && n != UV_EAGAIN) {
		fail(c, UERR_RESET, "write failed", n);
		return;
	}
	if (n < 0)
		n = 0;
	/* the kernel took part: hand the rest to uv_write in the other buffer */
	struct frame_buf t = c->wr;
	c->wr = *o;
	*o = t;
	o->len = o->start = 0;
	memmove(c->wr.data, c->wr.data + n, c->wr.len - (size_t)n);
	c->wr.len -= (size_t)n;
	b = uv_buf_init((char *)c->wr.data, (unsigned)c->wr.len);
	c->write_req.data = c;
	int r = uv_write(&c->write_req, &c->io.stream, &b, 1, write_cb);
	if (r < 0) {
		fail(c, UERR_RESET, "write failed", r);
		return;
	}
	c->is_writing = true;
}

/* ---- connecting ---- */

static void become_ready(struct circuit *c)
{
	c->state = C_READY;
	hist_observe(&c->up->stats->handshake, clock_since(c->connect_us, clock_us()));
	c->last_active_ms = worker_now(c->w);
	log_debug(CIRCUIT, "circuit %u to %s ready, %u queries waiting", c->id, c->up->name, c->n_waiting);
	struct tq_entry *e;
	while ((e = tq_pop_expired(&c->waiting, UINT64_MAX))) {
		struct query *q = tq_container(e, struct query, link);
		c->n_waiting--;
		q->state = Q_IDLE;
		q->circ = NULL;
		if (write_query(c, q) < 0)
			query_requeue(q);
	}
	uint32_t stall = c->w->cfg->circuit_stall_ms;
	c->timer_at_ms = 0;
	uv_timer_stop(&c->timer);
	arm(c, c->last_active_ms + (c->idle_ms < stall ? c->idle_ms : stall));
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct circuit *c = req->data;
	if (c->state == C_CLOSING)
		return;
	if (status < 0) {
		fail(c, connect_error_kind(status), "connect failed", status);
		return;
	}
	c->tcp_fd = -1;
	if (c->io.handle.type == UV_TCP) {
		uv_os_fd_t fd;
		uv_tcp_nodelay(&c->io.tcp, 1);
		if (uv_fileno(&c->io.handle, &fd) == 0)
			c->tcp_fd = fd;
	}
	if (c->up->conf->kind == UPSTREAM_TLS || c->up->conf->kind == UPSTREAM_HTTPS) {
		c->tls = tls_conn_new_client(c->up->conf->tls);
		if (!c->tls) {
			fail(c, UERR_TLS, "TLS setup failed", -ENOMEM);
			return;
		}
	}
	int r = uv_read_start(&c->io.stream, alloc_cb, read_cb);
	if (r < 0) {
		fail(c, UERR_RESET, "read failed", r);
		return;
	}
	if (!c->tls) {
		become_ready(c);
		return;
	}
	/* the handshake runs under the connect timeout, which is still armed */
	c->state = C_HANDSHAKE;
	r = tls_conn_handshake(c->tls); /* ClientHello */
	mark_dirty(c);
	if (r < 0)
		fail(c, UERR_TLS, "TLS handshake failed", ERR_DEADLINE);
}

static void start_connect(struct circuit *c)
{
	struct worker *w = c->w;
	const struct upstream_conf *uc = c->up->conf;
	int r;
	c->state = C_CONNECTING;
	c->connect_req.data = c;
	if (uc->kind == UPSTREAM_UNIX) {
		r = uv_pipe_init(&w->loop, &c->io.pipe, 0);
		c->io_init = (r == 0);
		c->io.handle.data = c;
		if (r == 0)
			uv_pipe_connect(&c->connect_req, &c->io.pipe,
					((const struct sockaddr_un *)&uc->addr)->sun_path, connect_cb);
	} else {
		r = uv_tcp_init(&w->loop, &c->io.tcp);
		c->io_init = (r == 0);
		c->io.handle.data = c;
		if (r == 0)
			r = uv_tcp_connect(&c->connect_req, &c->io.tcp, (const struct sockaddr *)&uc->addr, connect_cb);
	}
	if (c->io_init)
		c->open_handles++;
	METRIC_INC(&w->m, circuits_opened);
	STAT_INC(c->up->stats, connects);
	c->connect_us = clock_us();
	if (r < 0) {
		/* failed at once (EMFILE, ENETUNREACH): report it from the timer,
		 * never from here -- circuit_send() may be on the stack, and a
		 * failure requeues queries, which could pick this very circuit */
		c->connect_err = r;
		arm(c, worker_now(w));
		return;
	}
	arm(c, worker_now(w) + w->cfg->circuit_stall_ms);
}

/* One timer does everything time-driven for a circuit; it re-checks on each
 * firing, so activity never has to re-arm it (only idle -> busy does). */
static void on_timer(uv_timer_t *t)
{
	struct circuit *c = t->data;
	struct worker *w = c->w;
	uint64_t now = worker_now(w);
	uint32_t stall = w->cfg->circuit_stall_ms;
	c->timer_at_ms = 0;
	switch (c->state) {
	case C_BACKOFF:
		start_connect(c);
		return;
	case C_CONNECTING:
		if (c->connect_err)
			fail(c, connect_error_kind(c->connect_err), "connect failed", c->connect_err);
		else
			fail(c, UERR_TIMEOUT, "connect timed out", ERR_DEADLINE);
		return;
	case C_HANDSHAKE:
		fail(c, UERR_TIMEOUT, "TLS handshake timed out", ERR_DEADLINE);
		return;
	case C_CLOSING:
		return;
	case C_READY:
		break;
	}
	if (c->corked) {
		flush(c); /* writes, or re-arms if not yet due */
		if (c->state != C_READY)
			return;
	}
	if (c->ack_owed && now >= c->ack_read_ms + CIRCUIT_ACK_DELAY_MS)
		send_ack(c); /* nothing read or written for CIRCUIT_ACK_DELAY_MS */
	else if (c->ack_owed)
		arm(c, c->ack_read_ms + CIRCUIT_ACK_DELAY_MS);
	if (c->table.count) {
		/* a circuit with queries in flight that answers nothing is dead:
		 * better to resend now than to let every query time out */
		if (now >= c->last_progress_ms + stall) {
			fail(c, UERR_TIMEOUT, "silent", ERR_DEADLINE);
			return;
		}
		arm(c, c->last_progress_ms + stall);
		return;
	}
	if (now >= c->last_active_ms + c->idle_ms) {
		log_debug(CIRCUIT, "circuit %u to %s idle for %llu ms: closing", c->id, c->up->name,
			  (unsigned long long)(now - c->last_active_ms));
		circuit_close(c, true);
		return;
	}
	arm(c, c->last_active_ms + c->idle_ms);
}
