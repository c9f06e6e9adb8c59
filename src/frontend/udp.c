/* udp.c -- UDP listener: recvmmsg batches into the worker's shared buffer,
 * each datagram a query at once; answers leave in batches (core/udptx.c),
 * truncated where needed by core/query.c.
 *
 * The socket is polled (uv_poll) and read here rather than by uv_udp, which
 * cannot pass control messages: on a listener bound to 0.0.0.0 or [::] each
 * datagram brings the address it was sent to (IP_PKTINFO / IPV6_PKTINFO,
 * asked for in core/daemon.c), and the answer is sent from that address. A
 * client that asked 192.0.2.1 and hears from 192.0.2.2 drops the answer. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/worker.h"
#include "frontend/frontend.h"
#include "obs/log.h"

struct frontend_udp {
	uv_poll_t h;
	int fd;
	bool any;                  /* bound to a wildcard address: track each datagram's destination */
	bool reading;
	uint8_t listener;          /* its index in w->listens (and cfg->listens) */
	struct udp_width width;    /* recvmmsg batch width */
	struct worker *w;
	const struct listen_conf *conf;
	struct frontend_udp *next; /* worker's list */
};

/* The destination address of a datagram, from its IP_PKTINFO / IPV6_PKTINFO. */
static void datagram_dest(struct msghdr *h, struct udp_src *src)
{
	src->family = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(h); cm; cm = CMSG_NXTHDR(h, cm)) {
		if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
			src->family = AF_INET;
			src->ifindex = 0;
			src->addr.v4 = pi.ipi_addr;
			return;
		}
		if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;
			memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
			src->family = AF_INET6;
			src->ifindex = pi.ipi6_ifindex;
			src->addr.v6 = pi.ipi6_addr;
			return;
		}
	}
}

#define DEST_CMSG_SPACE CMSG_SPACE(sizeof(struct in6_pktinfo))

/* the client of a datagram read */
static inline void set_client(struct frontend_udp *l, struct msghdr *h, struct client *from)
{
	from->ops = &frontend_udp_client;
	from->u.udp.fd = l->fd;
	from->u.udp.src.family = 0;
	from->listener = l->listener;
	from->via_proxy = false;
	if (l->any)
		datagram_dest(h, &from->u.udp.src);
	l->width.got++;
}

/* One recvmmsg: returns the datagrams taken (0: none waiting), or < 0. */
static int read_batch(struct frontend_udp *l)
{
	struct mmsghdr mm[WORKER_UDP_CHUNKS];
	struct iovec iov[WORKER_UDP_CHUNKS];
	struct client from[WORKER_UDP_CHUNKS];
	_Alignas(struct cmsghdr) uint8_t ctl[WORKER_UDP_CHUNKS][DEST_CMSG_SPACE];
	unsigned n = worker_udp_iov(l->w, &l->width, iov);
	for (unsigned i = 0; i < n; i++) {
		mm[i].msg_hdr = (struct msghdr){
			.msg_name = &from[i].peer,
			.msg_namelen = sizeof(from[i].peer),
			.msg_iov = &iov[i],
			.msg_iovlen = 1,
			.msg_control = l->any ? ctl[i] : NULL,
			.msg_controllen = l->any ? sizeof(ctl[i]) : 0,
		};
	}
	int r = udp_recvmmsg(l->fd, mm, n, MSG_DONTWAIT);
	if (r < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
	if (r == 1 || !l->w->cfg->cache_obj) {
		for (int i = 0; i < r; i++) {
			set_client(l, &mm[i].msg_hdr, &from[i]);
			frontend_query(l->w, iov[i].iov_base, mm[i].msg_len, &from[i]);
		}
	} else { /* in two steps (frontend_query_take): the cache's memory of all fetched at once */
		struct query *next[WORKER_UDP_CHUNKS], **at = next;
		for (int i = 0; i < r; i++) {
			set_client(l, &mm[i].msg_hdr, &from[i]);
			frontend_query_take(l->w, iov[i].iov_base, mm[i].msg_len, &from[i], at);
			at += *at != NULL;
		}
		for (struct query **q = next; q < at; q++)
			frontend_query_go(*q);
	}
	worker_batch_done(l->w);
	return r;
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
	struct frontend_udp *l = h->data;
	(void)events;
	if (status < 0) {
		log_warn_rl(FRONTEND, "udp %s: poll failed: %s", l->conf->text, uv_strerror(status));
		return;
	}
	for (int k = 0; k < WORKER_UDP_READS && l->reading; k++) {
		int r = read_batch(l);
		if (r < 0)
			log_warn_rl(FRONTEND, "udp %s: receive failed: %s", l->conf->text, strerror(-r));
		/* drained (or an error: the next event retries), or as good as
		 * (worker_read_on) */
		if (r <= 0 || (unsigned)r < l->width.chunks || !worker_read_on(l->w, l->width.chunks))
			return;
	}
}

static void close_cb(uv_handle_t *h)
{
	struct frontend_udp *l = h->data;
	close(l->fd);
	free(l);
}

int frontend_udp_start(struct worker *w, const struct listen_conf *lc, int fd)
{
	struct frontend_udp *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->w = w;
	l->conf = lc;
	l->listener = (uint8_t)(lc - w->listens);
	l->fd = fd;
	l->any = config_addr_is_any(&lc->addr);
	int r = uv_poll_init_socket(&w->loop, &l->h, fd);
	if (r < 0) {
		free(l);
		return r;
	}
	l->h.data = l;
	l->reading = true;
	r = uv_poll_start(&l->h, UV_READABLE, poll_cb);
	if (r < 0) {
		l->fd = -1; /* the caller still owns it */
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
	for (struct frontend_udp *l = w->udps; l; l = l->next) {
		l->reading = false;
		uv_poll_stop(&l->h);
	}
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
