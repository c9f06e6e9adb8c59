/* udp_floor.c -- the least a UDP DNS server can cost: the kernel's floor.
 *
 * Answers every datagram on 127.0.0.1:PORT with itself, QR set (and, to a
 * query of one question and nothing else, an A record 127.0.0.1 appended,
 * the size of a cached answer), in batches
 * of up to 64 (recvmmsg with MSG_WAITFORONE blocking, then one sendmmsg):
 * no event loop, no parsing, no lookup. Its CPU per answer at saturation is
 * what receiving and sending one datagram costs in the kernel (with the
 * least user-space work), so it bounds from below the CPU per answer of any
 * server that answers over the socket API -- dnsmux's cache, dnsdist's
 * packet cache, Unbound's. bench/run --scenarios cache runs it as the proxy
 * "floor" beside them (bench/README.md). Not a DNS server: it never looks
 * at what it echoes.
 *
 * Usage: udp_floor PORT   (runs until killed) */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define DGRAM 4096

int main(int argc, char **argv)
{
	if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
		fprintf(stderr, "usage: udp_floor PORT\n");
		return 2;
	}
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("udp_floor: bind");
		return 1;
	}
	static uint8_t buf[BATCH][DGRAM];
	static struct sockaddr_in6 from[BATCH];
	static struct iovec iov[BATCH];
	static struct mmsghdr mm[BATCH];
	fprintf(stderr, "udp_floor: ready on 127.0.0.1:%s\n", argv[1]);
	int n = BATCH; /* entries to set up again: those the last call used */
	for (;;) {
		for (int i = 0; i < n; i++) {
			iov[i] = (struct iovec){.iov_base = buf[i], .iov_len = DGRAM};
			mm[i].msg_hdr = (struct msghdr){.msg_name = &from[i], .msg_namelen = sizeof(from[i]),
							.msg_iov = &iov[i], .msg_iovlen = 1};
		}
		n = recvmmsg(fd, mm, BATCH, MSG_WAITFORONE, NULL);
		if (n < 0) {
			n = 0;
			if (errno == EINTR)
				continue;
			perror("udp_floor: recvmmsg");
			return 1;
		}
		int k = 0;
		for (int i = 0; i < n; i++) {
			if (mm[i].msg_len < 12)
				continue;
			uint8_t *m = buf[i];
			size_t len = mm[i].msg_len;
			m[2] |= 0x80; /* QR */
			static const uint8_t rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 127, 0, 0, 1};
			if (m[4] == 0 && m[5] == 1 && !(m[6] | m[7] | m[8] | m[9] | m[10] | m[11]) &&
			    len + sizeof(rr) <= DGRAM) {
				memcpy(m + len, rr, sizeof(rr)); /* (the question is taken to end the message) */
				m[7] = 1;
				len += sizeof(rr);
			}
			iov[i].iov_len = len;
			mm[k++] = mm[i];
		}
		for (int done = 0; done < k;) {
			int r = sendmmsg(fd, mm + done, (unsigned)(k - done), 0);
			if (r < 0 && errno == EINTR)
				continue;
			done += r > 0 ? r : 1; /* a failed datagram is dropped */
		}
	}
}
