/* udptx.h -- datagrams to send, batched per loop turn.
 *
 * On loopback and at saturation the proxy's core spends most of its time in
 * the kernel, one sendmsg per datagram. Answers to UDP clients and queries to
 * UDP upstreams are instead copied here and sent with one sendmmsg(2) per
 * socket at the end of the loop turn (worker check callback), or sooner when
 * the batch is full. Per worker, no locking. */
#pragma once
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define UDPTX_MAX 64              /* datagrams per batch */
#define UDPTX_ARENA (256 * 1024)  /* bytes of copies per batch */

struct metrics;

/* recvmmsg(2) and sendmmsg(2) without glibc's cancellation-point wrappers,
 * which in a multi-threaded process switch asynchronous cancellation on and
 * off around each call (~30 instructions, a tenth of a cached answer's
 * user-space cost at two calls per datagram). dnsmux cancels no thread.
 * Same results and errno; udp_recvmmsg calls again when interrupted. */
static inline int udp_recvmmsg(int fd, struct mmsghdr *mm, unsigned n, int flags)
{
	int r;
	do
		r = (int)syscall(SYS_recvmmsg, fd, mm, n, flags, NULL);
	while (r < 0 && errno == EINTR);
	return r;
}

static inline int udp_sendmmsg(int fd, struct mmsghdr *mm, unsigned n, int flags)
{
	return (int)syscall(SYS_sendmmsg, fd, mm, n, flags);
}

/* The source of a datagram sent from a socket bound to 0.0.0.0 or [::]: the
 * address its query was sent to (IP_PKTINFO / IPV6_PKTINFO), so the client
 * sees the answer come from where it asked. family 0: the kernel chooses. */
struct udp_src {
	sa_family_t family;
	unsigned ifindex; /* IPv6: the interface the query came in on (link-local) */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} addr;
};

struct udptx {
	unsigned n;                          /* datagrams queued */
	size_t used;                         /* arena bytes used */
	int fd[UDPTX_MAX];                   /* socket of each */
	struct sockaddr_storage to[UDPTX_MAX]; /* destination (unused for connected sockets) */
	socklen_t tolen[UDPTX_MAX];          /* 0 for a connected socket */
	struct udp_src src[UDPTX_MAX];       /* family 0: no source given */
	struct iovec iov[UDPTX_MAX];         /* into arena */
	struct metrics *m;                   /* send_errors counted here */
	uint8_t arena[UDPTX_ARENA];
};

/** Queue a copy of msg for fd (to NULL: a connected socket), sent from src
 * (NULL: the socket's own address). */
void udptx_add(struct udptx *tx, int fd, const struct sockaddr *to, const struct udp_src *src, const uint8_t *msg,
	       size_t len);

/** Send everything queued (sendmmsg per run of the same socket). */
void udptx_flush(struct udptx *tx);
