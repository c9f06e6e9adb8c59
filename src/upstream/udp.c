/* udp.c -- UDP upstream (see udp.h). The socket is connect()ed, so the kernel
 * drops datagrams from any other source; the 16-bit random ID and the
 * question check do the rest. */
#include <stdlib.h>
#include <libknot/libknot.h>
#include "core/err.h"
#include "core/query.h"
#include "core/worker.h"
#include "obs/log.h"
#include "upstream/udp.h"
#include "upstream/upstream.h"

#define UDP_TABLE_CAP 16384

static void close_cb(uv_handle_t *h)
{
	free(h);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct upstream *u = h->data;
	(void)suggested;
	buf->base = (char *)u->w->udp_rbuf;
	buf->len = u->w->udp_rbuf_len;
}

static void on_answer(struct upstream *u, uint8_t *msg, size_t len)
{
	struct worker *w = u->w;
	if (len < MSG_HDR) {
		METRIC_INC(&w->m, mismatched);
		return;
	}
	uint16_t id = knot_wire_get_id(msg);
	struct query *q = inflight_get(&u->udp_table, id);
	if (!q) {
		if (inflight_take_gone(&u->udp_table, id))
			METRIC_INC(&w->m, late);
		else
			METRIC_INC(&w->m, mismatched);
		return;
	}
	if (!msg_answer_matches(msg, len, q->wire, &q->mi)) {
		METRIC_INC(&w->m, mismatched);
		return;
	}
	inflight_del(&u->udp_table, id);
	tq_remove(&q->link);
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
	struct upstream *u = h->data;
	(void)flags;
	if (nread < 0) {
		/* ICMP unreachable on a connected socket: the server is not there */
		log_warn_rl(UPSTREAM, "udp upstream %s: %s", u->name, uv_strerror((int)nread));
		health_fail(&u->health, &u->w->rnd, worker_now(u->w));
		return;
	}
	if (!addr)
		return; /* end of a recvmmsg batch, or nothing read */
	on_answer(u, (uint8_t *)buf->base, (size_t)nread);
}

static int open_socket(struct upstream *u)
{
	struct worker *w = u->w;
	uv_udp_t *h = malloc(sizeof(*h));
	if (!h)
		return -ENOMEM;
	int r = uv_udp_init_ex(&w->loop, h, u->conf->addr.ss_family | UV_UDP_RECVMMSG);
	if (r < 0) {
		free(h);
		return r;
	}
	h->data = u;
	r = inflight_init(&u->udp_table, UDP_TABLE_CAP);
	if (r == 0)
		r = uv_udp_connect(h, (const struct sockaddr *)&u->conf->addr);
	if (r == 0)
		r = uv_udp_recv_start(h, alloc_cb, recv_cb);
	if (r < 0) {
		log_warn_rl(UPSTREAM, "udp upstream %s: cannot open socket: %s", u->name, uv_strerror(r));
		inflight_deinit(&u->udp_table);
		uv_close((uv_handle_t *)h, close_cb);
		return r;
	}
	u->udp = h;
	return 0;
}

int upstream_udp_send(struct upstream *u, struct query *q)
{
	struct worker *w = u->w;
	if (!u->udp) {
		int r = open_socket(u);
		if (r < 0)
			return r;
	}
	uint16_t id;
	int r = inflight_add(&u->udp_table, &w->rnd, q, &id);
	if (r < 0)
		return r;
	knot_wire_set_id(q->wire, id);
	q->up_id = id;
	q->state = Q_UDP;
	q->was_sent = true;
	q->udp_tries++;
	uv_buf_t b = uv_buf_init((char *)q->wire, q->len);
	r = uv_udp_try_send(u->udp, &b, 1, NULL);
	if (r < 0)
		log_warn_rl(UPSTREAM, "udp upstream %s: send failed: %s (will retry)", u->name, uv_strerror(r));
	tq_add(&w->udp_retry, &q->link, worker_now(w));
	worker_arm(w, q->link.deadline_ms);
	return 0;
}

void upstream_udp_cancel(struct upstream *u, struct query *q)
{
	inflight_abandon(&u->udp_table, q->up_id);
	tq_remove(&q->link);
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
	METRIC_INC(&w->m, udp_retries);
	query_dispatch(q, u);
}

void upstream_udp_close(struct upstream *u)
{
	if (!u->udp)
		return;
	inflight_deinit(&u->udp_table);
	uv_close((uv_handle_t *)u->udp, close_cb);
	u->udp = NULL;
}
