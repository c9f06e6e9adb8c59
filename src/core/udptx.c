/* udptx.c -- batched UDP sends (see udptx.h). */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include "core/udptx.h"
#include "obs/metrics.h"

void udptx_add(struct udptx *tx, int fd, const struct sockaddr *to, const struct udp_src *src, const uint8_t *msg,
	       size_t len)
{
	if (tx->n == UDPTX_MAX || tx->used + len > UDPTX_ARENA)
		udptx_flush(tx);
	if (len > UDPTX_ARENA)
		return;
	unsigned i = tx->n++;
	tx->fd[i] = fd;
	tx->tolen[i] = 0;
	if (to) {
		tx->tolen[i] = to->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
		memcpy(&tx->to[i], to, tx->tolen[i]);
	}
	tx->src[i].family = 0;
	if (src)
		tx->src[i] = *src;
	memcpy(tx->arena + tx->used, msg, len);
	tx->iov[i].iov_base = tx->arena + tx->used;
	tx->iov[i].iov_len = len;
	tx->used += len;
}

#define SRC_CMSG_SPACE CMSG_SPACE(sizeof(struct in6_pktinfo))

/* The control message that sets a datagram's source address. */
static void set_source(struct msghdr *h, const struct udp_src *src, uint8_t *buf)
{
	memset(buf, 0, SRC_CMSG_SPACE);
	h->msg_control = buf;
	struct cmsghdr *cm = (struct cmsghdr *)(void *)buf;
	if (src->family == AF_INET) {
		struct in_pktinfo pi = {.ipi_spec_dst = src->addr.v4};
		h->msg_controllen = CMSG_SPACE(sizeof(pi));
		cm->cmsg_level = IPPROTO_IP;
		cm->cmsg_type = IP_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
	} else {
		struct in6_pktinfo pi = {.ipi6_addr = src->addr.v6, .ipi6_ifindex = src->ifindex};
		h->msg_controllen = CMSG_SPACE(sizeof(pi));
		cm->cmsg_level = IPPROTO_IPV6;
		cm->cmsg_type = IPV6_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
	}
}

void udptx_flush(struct udptx *tx)
{
	struct mmsghdr mm[UDPTX_MAX];
	_Alignas(struct cmsghdr) uint8_t ctl[UDPTX_MAX][SRC_CMSG_SPACE];
	unsigned i = 0;
	while (i < tx->n) {
		unsigned k = 0;
		int fd = tx->fd[i];
		for (unsigned j = i; j < tx->n && tx->fd[j] == fd; j++, k++) {
			memset(&mm[k], 0, sizeof(mm[k]));
			mm[k].msg_hdr.msg_iov = &tx->iov[j];
			mm[k].msg_hdr.msg_iovlen = 1;
			if (tx->tolen[j]) {
				mm[k].msg_hdr.msg_name = &tx->to[j];
				mm[k].msg_hdr.msg_namelen = tx->tolen[j];
			}
			if (tx->src[j].family)
				set_source(&mm[k].msg_hdr, &tx->src[j], ctl[k]);
		}
		unsigned done = 0;
		while (done < k) {
			int r = udp_sendmmsg(fd, mm + done, k - done, MSG_DONTWAIT);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				/* EAGAIN (buffer full) or an error for the first datagram:
				 * drop it, as a failed sendmsg would, and go on */
				if (tx->m)
					METRIC_INC(tx->m, send_errors);
				done++;
				continue;
			}
			done += (unsigned)r;
		}
		i += k;
	}
	tx->n = 0;
	tx->used = 0;
}
