/* udp.c -- UDP listener: recvmmsg batches (libuv UV_UDP_RECVMMSG) into the
 * worker's shared buffer; each datagram becomes a query at once, and answers
 * are sent with one sendmsg each (truncation happens in core/query.c). */
#include <stdlib.h>
#include "core/worker.h"
#include "frontend/frontend.h"
#include "obs/log.h"

struct frontend_udp {
	uv_udp_t h;
	struct udp_width width;    /* recvmmsg batch width */
	struct worker *w;
	const struct listen_conf *conf;
	struct frontend_udp *next; /* worker's list */
};

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct frontend_udp *l = h->data;
	(void)suggested;
	worker_udp_buf(l->w, &l->width, buf);
}

static void recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
	struct frontend_udp *l = h->data;
	if (nread < 0) {
		log_warn_rl(FRONTEND, "udp %s: receive failed: %s", l->conf->text, uv_strerror((int)nread));
		return;
	}
	if (!addr) {
		if (flags & UV_UDP_MMSG_FREE)
			worker_batch_done(l->w); /* end of a recvmmsg batch */
		return;
	}
	l->width.got++;
	frontend_query(l->w, (const uint8_t *)buf->base, (size_t)nread, h, addr, NULL);
}

static void close_cb(uv_handle_t *h)
{
	free(h->data);
}

int frontend_udp_start(struct worker *w, const struct listen_conf *lc, int fd)
{
	struct frontend_udp *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->w = w;
	l->conf = lc;
	/* AF_UNSPEC: the daemon made the socket; uv_udp_open() adopts it */
	int r = uv_udp_init_ex(&w->loop, &l->h, AF_UNSPEC | UV_UDP_RECVMMSG);
	if (r < 0) {
		free(l);
		return r;
	}
	l->h.data = l;
	r = uv_udp_open(&l->h, fd);
	if (r == 0)
		r = uv_udp_recv_start(&l->h, alloc_cb, recv_cb);
	if (r < 0) {
		uv_close((uv_handle_t *)&l->h, close_cb);
		return r;
	}
	l->next = w->udps;
	w->udps = l;
	return 0;
}

/* Stop reading but keep the socket: queries still in flight answer through it. */
void frontend_udp_stop(struct worker *w)
{
	for (struct frontend_udp *l = w->udps; l; l = l->next)
		uv_udp_recv_stop(&l->h);
}

void frontend_udp_close(struct worker *w)
{
	struct frontend_udp *l = w->udps, *next;
	for (; l; l = next) {
		next = l->next;
		uv_close((uv_handle_t *)&l->h, close_cb);
	}
	w->udps = NULL;
}
