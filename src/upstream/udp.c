/* udp.c -- UDP upstream: rotating connected sockets (see udp.h). */
#include <stdlib.h>
#include <libknot/libknot.h>
#include "circuit/inflight.h"
#include "core/err.h"
#include "core/query.h"
#include "core/worker.h"
#include "obs/log.h"
#include "upstream/udp.h"
#include "upstream/upstream.h"

struct udp_sock {
	uv_udp_t h;
	struct upstream *u;     /* owner; NULL once the upstream closed */
	struct worker *w;
	struct inflight table;  /* queries in flight on this socket, by ID */
	struct udp_width width; /* recvmmsg batch width */
	uint32_t uses;          /* queries sent so far */
	bool is_retired;        /* no new queries: closes when table is empty */
	bool is_closing;
};

static void detach(struct query *q, bool gave_up);

static void close_cb(uv_handle_t *h)
{
	struct udp_sock *s = h->data;
	inflight_deinit(&s->table);
	free(s);
}

static void sock_close(struct udp_sock *s)
{
	if (s->is_closing)
		return;
	s->is_closing = true;
	if (s->w->tx->n)
		udptx_flush(s->w->tx); /* its fd may be reused as soon as it is closed */
	uv_close((uv_handle_t *)&s->h, close_cb);
}

static void retire(struct udp_sock *s)
{
	s->is_retired = true;
	if (s->u && s->u->udp == s)
		s->u->udp = NULL;
	if (s->table.count == 0)
		sock_close(s);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct udp_sock *s = h->data;
	(void)suggested;
	worker_udp_buf(s->w, &s->width, buf);
}

static void on_answer(struct udp_sock *s, uint8_t *msg, size_t len)
{
	struct worker *w = s->w;
	struct query *q = query_for_answer_from(w, s->u ? s->u->stats : NULL, &s->table, msg, len);
	if (!q)
		return;
	struct upstream *u = q->up;
	w->turn_inputs++;
	detach(q, false);
	q->state = Q_IDLE;
	q->up = NULL;
	health_ok(&u->health);
	upstream_note_answer(u, q);
	if (knot_wire_get_tc(msg)) {
		upstream_retry_tcp(u, q);
		return;
	}
	query_upstream_answer(q, u, msg, len);
}

static void recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
	struct udp_sock *s = h->data;
	if (s->is_closing)
		return;
	if (nread == 0 && !addr) {
		if (flags & UV_UDP_MMSG_FREE)
			worker_batch_done(s->w); /* end of a recvmmsg batch of answers */
		return;
	}
	if (nread < 0) {
		/* ICMP unreachable on a connected socket: nobody listens there */
		if (s->u) {
			log_warn_rl(UPSTREAM, "udp upstream %s: %s", s->u->name, uv_strerror((int)nread));
			health_fail(&s->u->health, &s->w->rnd, worker_now(s->w));
			upstream_count_error(s->u, nread == UV_ECONNREFUSED ? UERR_REFUSED : UERR_RESET);
		}
		return;
	}
	s->width.got++;
	on_answer(s, (uint8_t *)buf->base, (size_t)nread);
}

static struct udp_sock *open_sock(struct upstream *u)
{
	struct udp_sock *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (inflight_init(&s->table, UDP_SOCK_CAP) < 0) {
		free(s);
		return NULL;
	}
	int r = uv_udp_init_ex(&u->w->loop, &s->h, u->conf->addr.ss_family | UV_UDP_RECVMMSG);
	if (r < 0) {
		inflight_deinit(&s->table);
		free(s);
		log_warn_rl(UPSTREAM, "udp upstream %s: cannot open a socket: %s", u->name, uv_strerror(r));
		return NULL;
	}
	s->h.data = s;
	s->u = u;
	s->w = u->w;
	/* connect() binds a fresh ephemeral port chosen by the kernel */
	r = uv_udp_connect(&s->h, (const struct sockaddr *)&u->conf->addr);
	if (r == 0)
		r = uv_udp_recv_start(&s->h, alloc_cb, recv_cb);
	if (r < 0) {
		log_warn_rl(UPSTREAM, "udp upstream %s: cannot open a socket: %s", u->name, uv_strerror(r));
		s->u = NULL;
		sock_close(s);
		return NULL;
	}
	return s;
}

int upstream_udp_send(struct upstream *u, struct query *q)
{
	struct worker *w = u->w;
	struct udp_sock *s = u->udp;
	if (s && (s->uses >= UDP_SOCK_USES || inflight_full(&s->table)))
		retire(s); /* time for a new source port */
	if (!u->udp && !(u->udp = open_sock(u)))
		return -ENOMEM;
	s = u->udp;
	uint16_t id;
	int r = inflight_add(&s->table, &w->rnd, q, &id);
	if (r < 0)
		return r;
	s->uses++;
	knot_wire_set_id(q->wire, id);
	q->up_id = id;
	q->usock = s;
	q->state = Q_UDP;
	q->was_sent = true;
	q->udp_tries++;
	uv_os_fd_t fd;
	if (uv_fileno((const uv_handle_t *)&s->h, &fd) == 0)
		udptx_add(w->tx, fd, NULL, NULL, q->wire, q->len); /* a lost send is retried like a lost answer */
	tq_add(&w->udp_retry, &q->link, worker_now(w));
	worker_arm(w, q->link.deadline_ms);
	return 0;
}

/* Take q off its socket: answered (its ID is simply freed) or given up (the
 * ID is remembered, so a later answer counts as late, not as bogus). */
static void detach(struct query *q, bool gave_up)
{
	struct udp_sock *s = q->usock;
	tq_remove(&q->link);
	q->usock = NULL;
	if (!s)
		return;
	if (gave_up)
		inflight_abandon(&s->table, q->up_id);
	else
		inflight_del(&s->table, q->up_id);
	if (s->is_retired && s->table.count == 0)
		sock_close(s);
}

void upstream_udp_cancel(struct upstream *u, struct query *q)
{
	(void)u;
	detach(q, true);
}

/* Called by the worker timer: no answer within --udp-retry. Count it against
 * the upstream and send again, to another member when the pool has one. */
void upstream_udp_retry_expired(struct query *q)
{
	struct upstream *u = q->up;
	struct worker *w = q->w;
	upstream_udp_cancel(u, q);
	q->state = Q_IDLE;
	q->up = NULL;
	health_fail(&u->health, &w->rnd, worker_now(w));
	upstream_count_error(u, UERR_TIMEOUT);
	METRIC_INC(&w->m, udp_retries);
	query_dispatch(q, u);
}

void upstream_udp_close(struct upstream *u)
{
	struct udp_sock *s = u->udp;
	if (!s)
		return;
	s->u = NULL;
	u->udp = NULL;
	retire(s);
}

uint32_t upstream_udp_outstanding(const struct upstream *u)
{
	return u->udp ? u->udp->table.count : 0;
}
