/* udptx.h -- datagrams to send, batched per loop turn.
 *
 * On loopback and at saturation the proxy's core spends most of its time in
 * the kernel, one sendmsg per datagram. Answers to UDP clients and queries to
 * UDP upstreams are instead copied here and sent with one sendmmsg(2) per
 * socket at the end of the loop turn (worker check callback), or sooner when
 * the batch is full. Per worker, no locking. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define UDPTX_MAX 64              /* datagrams per batch */
#define UDPTX_ARENA (256 * 1024)  /* bytes of copies per batch */

struct metrics;

struct udptx {
	unsigned n;                          /* datagrams queued */
	size_t used;                         /* arena bytes used */
	int fd[UDPTX_MAX];                   /* socket of each */
	struct sockaddr_storage to[UDPTX_MAX]; /* destination (unused for connected sockets) */
	socklen_t tolen[UDPTX_MAX];          /* 0 for a connected socket */
	struct iovec iov[UDPTX_MAX];         /* into arena */
	struct metrics *m;                   /* send_errors counted here */
	uint8_t arena[UDPTX_ARENA];
};

/** Queue a copy of msg for fd (to NULL: a connected socket). */
void udptx_add(struct udptx *tx, int fd, const struct sockaddr *to, const uint8_t *msg, size_t len);

/** Send everything queued (sendmmsg per run of the same socket). */
void udptx_flush(struct udptx *tx);
