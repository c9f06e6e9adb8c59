/* systemd.h -- systemd's two service protocols, written by hand (DESIGN.md
 * allows it: a page of environment parsing, no libsystemd): socket
 * activation as sd_listen_fds(3) describes it (LISTEN_PID, LISTEN_FDS,
 * LISTEN_FDNAMES; the sockets are fds 3, 4, ...) and readiness as
 * sd_notify(3) does it (one datagram per state to $NOTIFY_SOCKET).
 * main.c takes the sockets and matches them to listeners; core/daemon.c
 * hands them to the workers and notifies. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include "config/config.h"

#define SYSTEMD_LISTEN_FDS_START 3
#define SYSTEMD_MAX_FDS CONFIG_MAX_LISTENS

/* One socket systemd passed. */
struct systemd_fd {
	int fd;                       /* SYSTEMD_LISTEN_FDS_START + its index */
	int type;                     /* SOCK_DGRAM or SOCK_STREAM */
	struct sockaddr_storage addr; /* where it is bound (getsockname) */
	char text[80];                /* printable ADDR:PORT */
	char name[64];                /* its LISTEN_FDNAMES entry (FileDescriptorName=), "" without one */
};

/** The sockets passed to this process (LISTEN_PID is ours), close-on-exec
 * from now on, with LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES unset. A
 * passed descriptor that is not an IPv4 or IPv6 UDP or TCP socket is closed
 * with a warning. Returns how many are in out (at most max); 0 when not
 * socket-activated. Call once, first thing in main. */
size_t systemd_listen_fds(struct systemd_fd *out, size_t max);

/** Give c's listeners the passed sockets: a socket serves the listener on
 * the same address and port (IPv4 or IPv6) -- a SOCK_DGRAM one its UDP
 * part, a SOCK_STREAM one its TCP, DoT or DoH part (listen_conf.passed_fd).
 * A socket that matches no listener becomes one of its own: plain DNS
 * (udp://, tcp://), or for a stream named "tls", "https" or "http" that
 * kind. With say, each socket's use is logged. Pure: called again by every
 * reload's rebuild, it gives the same listeners. -EINVAL with a reason
 * (too many listeners). */
int systemd_adopt(struct config *c, const struct systemd_fd *fds, size_t n, bool say, char *err, size_t errlen);

/** Connect to $NOTIFY_SOCKET (before a chroot or the drop: the descriptor
 * stays usable) and unset it. Nothing without one. */
void systemd_notify_open(void);

/** Send one state line ("READY=1", "RELOADING=1", "STOPPING=1",
 * "STATUS=...") when systemd_notify_open found a socket; a failure is
 * ignored (systemd may be gone), as sd_notify's callers do. Main thread. */
void systemd_notify(const char *state);
