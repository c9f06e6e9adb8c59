/* udp.c -- UDP upstream: one connected socket per transmission (see udp.h). */
#include <stdlib.h>
#include <libknot/libknot.h>
#include "core/err.h"
#include "core/query.h"
#include "core/worker.h"
#include "obs/log.h"
#include "upstream/udp.h"
#include "upstream/upstream.h"

struct udp_sock {
	uv_udp_t h;
	struct upstream *u; /* NULL once the query is done with it */
	struct query *q;    /* NULL once answered or given up: later datagrams are late */
};

static void close_cb(uv_handle_t *h)
{
	free(h->data);
}

static void sock_close(struct udp_sock *s)
{
	s->q = NULL;
	if (s->u) {
		s->u->udp_inflight--;
		s->u = NULL;
	}
	uv_close((uv_handle_t *)&s->h, close_cb);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct udp_sock *s = h->data;
	struct worker *w = s->q ? s->q->w : NULL;
	(void)suggested;
	if (!w) {
		buf->base = NULL;
		buf->len = 0;
		return;
	}
	buf->base = (char *)w->udp_rbuf;
	buf->len = w->udp_rbuf_len;
}

static void on_answer(struct udp_sock *s, uint8_t *msg, size_t len)
{
	struct query *q = s->q;
	struct upstream *u = s->u;
	struct worker *w = q->w;
	if (len < MSG_HDR || knot_wire_get_id(msg) != q->up_id || !msg_answer_matches(msg, len, q->wire, &q->mi)) {
		METRIC_INC(&w->m, mismatched); /* keep waiting for the right one */
		return;
	}
	tq_remove(&q->link);
	sock_close(s);
	q->usock = NULL;
	q->state = Q_IDLE;
	q->up = NULL;
	health_ok(&u->health);
	if (knot_wire_get_tc(msg)) {
		upstream_retry_tcp(u, q);
		return;
	}
	query_answer(q, msg, len);
}

static void recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
	struct udp_sock *s = h->data;
	(void)flags;
	if (!s->q || (nread == 0 && !addr))
		return;
	if (nread < 0) {
		/* ICMP unreachable on a connected socket: nobody listens there */
		log_warn_rl(UPSTREAM, "udp upstream %s: %s", s->u->name, uv_strerror((int)nread));
		health_fail(&s->u->health, &s->q->w->rnd, worker_now(s->q->w));
		return;
	}
	on_answer(s, (uint8_t *)buf->base, (size_t)nread);
}

static int open_sock(struct upstream *u, struct query *q, struct udp_sock **out)
{
	struct udp_sock *s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	int r = uv_udp_init_ex(&u->w->loop, &s->h, u->conf->addr.ss_family);
	if (r < 0) {
		free(s);
		return r;
	}
	s->h.data = s;
	s->u = u;
	s->q = q;
	u->udp_inflight++;
	/* connect() binds a fresh ephemeral port chosen by the kernel */
	r = uv_udp_connect(&s->h, (const struct sockaddr *)&u->conf->addr);
	if (r == 0)
		r = uv_udp_recv_start(&s->h, alloc_cb, recv_cb);
	if (r < 0) {
		log_warn_rl(UPSTREAM, "udp upstream %s: cannot open a socket: %s", u->name, uv_strerror(r));
		sock_close(s);
		return r;
	}
	*out = s;
	return 0;
}

int upstream_udp_send(struct upstream *u, struct query *q)
{
	struct worker *w = u->w;
	struct udp_sock *s;
	int r = open_sock(u, q, &s);
	if (r < 0)
		return r;
	q->up_id = rnd_u16(&w->rnd);
	knot_wire_set_id(q->wire, q->up_id);
	q->usock = s;
	q->state = Q_UDP;
	q->was_sent = true;
	q->udp_tries++;
	uv_buf_t b = uv_buf_init((char *)q->wire, q->len);
	r = uv_udp_try_send(&s->h, &b, 1, NULL);
	if (r < 0)
		log_warn_rl(UPSTREAM, "udp upstream %s: send failed: %s (will retry)", u->name, uv_strerror(r));
	tq_add(&w->udp_retry, &q->link, worker_now(w));
	worker_arm(w, q->link.deadline_ms);
	return 0;
}

void upstream_udp_cancel(struct upstream *u, struct query *q)
{
	(void)u;
	if (q->usock)
		sock_close(q->usock);
	q->usock = NULL;
	tq_remove(&q->link);
}

/* Called by the worker timer: no answer within --udp-retry. Count it against
 * the upstream and send again from a new socket, to another member when the
 * pool has one. */
void upstream_udp_retry_expired(struct query *q)
{
	struct upstream *u = q->up;
	struct worker *w = q->w;
	upstream_udp_cancel(u, q);
	q->state = Q_IDLE;
	q->up = NULL;
	health_fail(&u->health, &w->rnd, worker_now(w));
	METRIC_INC(&w->m, udp_retries);
	query_dispatch(q, u);
}
