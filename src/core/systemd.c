/* systemd.c -- see systemd.h. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>
#include "core/systemd.h"
#include "obs/log.h"

static int notify_fd = -1;

static bool env_number(const char *name, unsigned long *out)
{
	const char *s = getenv(name);
	char *end;
	if (!s || !*s)
		return false;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno == 0 && *end == '\0';
}

/* The fd-th name of "a:b:c" (FileDescriptorName= of each socket). */
static void nth_name(const char *names, unsigned idx, char *out, size_t len)
{
	out[0] = '\0';
	for (unsigned k = 0; names && k < idx; k++)
		if ((names = strchr(names, ':')))
			names++;
	if (names)
		snprintf(out, len, "%.*s", (int)strcspn(names, ":"), names);
}

/* One passed socket described, or false when it is none dnsmux can serve on. */
static bool describe(int fd, struct systemd_fd *d)
{
	socklen_t len = sizeof(d->type);
	d->fd = fd;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &d->type, &len) < 0 || (d->type != SOCK_DGRAM && d->type != SOCK_STREAM))
		return false;
	len = sizeof(d->addr);
	if (getsockname(fd, (struct sockaddr *)&d->addr, &len) < 0 ||
	    (d->addr.ss_family != AF_INET && d->addr.ss_family != AF_INET6))
		return false;
	config_addr_str(&d->addr, d->text, sizeof(d->text));
	return true;
}

size_t systemd_listen_fds(struct systemd_fd *out, size_t max)
{
	unsigned long pid, n;
	bool ours = env_number("LISTEN_PID", &pid) && pid == (unsigned long)getpid() && env_number("LISTEN_FDS", &n);
	char *names = getenv("LISTEN_FDNAMES");
	names = names ? strdup(names) : NULL; /* (unsetenv below frees it) */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	size_t k = 0;
	for (unsigned i = 0; ours && i < n; i++) {
		int fd = SYSTEMD_LISTEN_FDS_START + (int)i;
		struct systemd_fd d = {0};
		if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) /* (not open: nothing to serve on) */
			continue;
		nth_name(names, i, d.name, sizeof(d.name));
		if (!describe(fd, &d) || k == max) {
			log_warn(DAEMON, "socket activation: fd %d (%s): %s: closed", fd, d.name[0] ? d.name : "no name",
				 k == max ? "too many sockets" : "not an IPv4 or IPv6 UDP or TCP socket");
			close(fd);
			continue;
		}
		out[k++] = d;
	}
	free(names);
	return k;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
	return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

/* The listener d serves, or -1. */
static int match(const struct config *c, const struct systemd_fd *d)
{
	int part = d->type == SOCK_DGRAM ? LISTEN_UDP : LISTEN_TCP | LISTEN_TLS | LISTEN_HTTP;
	for (size_t i = 0; i < c->n_listens; i++) {
		const struct listen_conf *l = &c->listens[i];
		if ((l->protos & part) && same_addr(&l->addr, &d->addr) && !l->passed_fd[d->type == SOCK_STREAM])
			return (int)i;
	}
	return -1;
}

/* The kind of listener a socket no listener matches becomes: plain DNS of
 * its type, or what a stream's name says. */
static const char *own_scheme(const struct systemd_fd *d)
{
	static const char *const named[] = {"tls", "https", "http"};
	for (size_t i = 0; d->type == SOCK_STREAM && i < sizeof(named) / sizeof(*named); i++)
		if (strcmp(d->name, named[i]) == 0)
			return named[i];
	return d->type == SOCK_DGRAM ? "udp" : "tcp";
}

static int adopt_one(struct config *c, const struct systemd_fd *d, char *err, size_t errlen)
{
	char url[128], why[256];
	if (c->n_listens >= CONFIG_MAX_LISTENS) {
		snprintf(err, errlen, "socket activation: fd %d (%s): at most %d listeners", d->fd, d->text,
			 CONFIG_MAX_LISTENS);
		return -EINVAL;
	}
	snprintf(url, sizeof(url), "%s://%s", own_scheme(d), d->text);
	if (config_parse_listen(url, &c->listens[c->n_listens], why, sizeof(why)) < 0) {
		snprintf(err, errlen, "socket activation: fd %d: %s", d->fd, why);
		return -EINVAL;
	}
	return (int)c->n_listens++;
}

int systemd_adopt(struct config *c, const struct systemd_fd *fds, size_t n, bool say, char *err, size_t errlen)
{
	for (size_t k = 0; k < n; k++) {
		const struct systemd_fd *d = &fds[k];
		int i = match(c, d);
		bool own = i < 0;
		if (own && (i = adopt_one(c, d, err, errlen)) < 0)
			return -EINVAL;
		c->listens[i].passed_fd[d->type == SOCK_STREAM] = d->fd;
		if (!say)
			continue;
		if (own)
			log_info(DAEMON, "socket activation: fd %d (%s) %s %s: no listener configured there, serving %s://%s",
				 d->fd, d->name[0] ? d->name : "no name", d->type == SOCK_DGRAM ? "udp" : "tcp", d->text,
				 own_scheme(d), d->text);
		else
			log_info(DAEMON, "socket activation: fd %d (%s) %s %s: serves the listener %s", d->fd,
				 d->name[0] ? d->name : "no name", d->type == SOCK_DGRAM ? "udp" : "tcp", d->text,
				 c->listens[i].text);
	}
	return 0;
}

void systemd_notify_open(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (!path || (path[0] != '/' && path[0] != '@') || strlen(path) >= sizeof(sa.sun_path)) {
		unsetenv("NOTIFY_SOCKET");
		return;
	}
	size_t len = strlen(path);
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* an abstract socket */
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0) {
		log_warn(DAEMON, "NOTIFY_SOCKET %s: %s: systemd will not hear that dnsmux is ready", path, strerror(errno));
		close(fd);
		fd = -1;
	}
	notify_fd = fd;
	unsetenv("NOTIFY_SOCKET");
}

void systemd_notify(const char *state)
{
	if (notify_fd >= 0)
		(void)send(notify_fd, state, strlen(state), MSG_NOSIGNAL);
}
