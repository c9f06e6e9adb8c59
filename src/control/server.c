/* server.c -- the control socket (see server.h): its file (a stale one
 * replaced, ours removed at close) and its requests. The connections'
 * life is core/oneshot.c's, as the /metrics server's; what a command does
 * is the daemon's (core/daemon.c, the handle callback); parsing is
 * control/command.c's. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "control/server.h"
#include "core/oneshot.h"
#include "obs/json.h"
#include "obs/log.h"

#define ERR_MAX 16384 /* a reload's errors: main.c's buffer */

struct control_server {
	struct oneshot os;     /* first: core/oneshot.h frees it */
	control_handle_fn *handle;
	void *arg;
	dev_t dev;             /* the socket file made at start, removed at close if still it */
	ino_t ino;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

struct cconn {
	struct oneshot_conn oc;    /* first */
	struct control_peer peer;
	size_t len;                /* bytes of the request read */
	char rbuf[COMMAND_REQUEST_MAX];
};

/* o as one line of text with its newline (heap), or NULL; takes o. */
static char *line_of(json_t *o)
{
	char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!t)
		return NULL;
	size_t n = strlen(t);
	char *line = realloc(t, n + 2);
	if (!line) {
		free(t);
		return NULL;
	}
	memcpy(line + n, "\n", 2);
	return line;
}

/* {"ok": false, "error": why}, why without a final newline (a reload's
 * errors come a line each) */
static char *error_text(const char *why)
{
	size_t n = strlen(why);
	while (n && why[n - 1] == '\n')
		n--;
	char *t = strndup(why, n);
	json_t *o = t ? json_pack("{s:b, s:o}", "ok", 0, "error", json_text(t)) : NULL;
	free(t);
	return line_of(o);
}

/* {"ok": true, then result's members}; takes result. */
static char *ok_text(json_t *result)
{
	json_t *o = json_pack("{s:b}", "ok", 1);
	if (!o || json_object_update(o, result) < 0) {
		json_decref(o);
		o = NULL;
	}
	json_decref(result);
	return line_of(o);
}

static void send_reply(struct cconn *c, char *text)
{
	if (!text) {
		oneshot_conn_close(&c->oc); /* (out of memory: the client sees no reply) */
		return;
	}
	uv_buf_t b = uv_buf_init(text, (unsigned)strlen(text));
	oneshot_reply(&c->oc, &b, 1, text);
}

/* One request line: parsed, carried out by the daemon, answered. */
static void run(struct cconn *c, size_t len)
{
	static char err[ERR_MAX];
	struct control_server *s = (struct control_server *)c->oc.srv;
	struct command cmd;
	if (command_parse(c->rbuf, len, &cmd, err, sizeof(err)) < 0) {
		log_debug(DAEMON, "control: pid %ld: bad request: %s", c->peer.pid, err);
		send_reply(c, error_text(err));
		return;
	}
	json_t *result = s->handle(s->arg, &cmd, &c->peer, err, sizeof(err));
	send_reply(c, result ? ok_text(result) : error_text(err[0] ? err : "failed"));
}

static void buffer(struct oneshot_conn *oc, uv_buf_t *buf)
{
	struct cconn *c = (struct cconn *)oc;
	*buf = uv_buf_init(c->rbuf + c->len, (unsigned)(sizeof(c->rbuf) - c->len));
}

static void input(struct oneshot_conn *oc, ssize_t nread, const uv_buf_t *buf)
{
	struct cconn *c = (struct cconn *)oc;
	(void)buf;
	if (nread < 0) {
		run(c, c->len); /* (UV_EOF) a request without its newline ends there */
		return;
	}
	const char *nl = memchr(c->rbuf + c->len, '\n', (size_t)nread);
	c->len += (size_t)nread;
	if (nl) {
		run(c, (size_t)(nl - c->rbuf)); /* (bytes after it are dropped: one request per connection) */
	} else if (c->len == sizeof(c->rbuf)) {
		char why[80];
		snprintf(why, sizeof(why), "request longer than %d bytes", COMMAND_REQUEST_MAX - 1);
		send_reply(c, error_text(why));
	}
}

static void start(struct oneshot_conn *oc)
{
	struct cconn *c = (struct cconn *)oc;
	struct ucred uc;
	socklen_t len = sizeof(uc);
	uv_os_fd_t fd;
	c->peer.pid = c->peer.uid = -1;
	if (uv_fileno((uv_handle_t *)&oc->h.pipe, &fd) == 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0) {
		c->peer.pid = uc.pid;
		c->peer.uid = uc.uid;
	}
}

static void busy(struct oneshot_conn *oc)
{
	char why[80];
	snprintf(why, sizeof(why), "busy: %d control connections open; try again", CONTROL_MAX_CONNS);
	send_reply((struct cconn *)oc, error_text(why));
}

static const struct oneshot_ops ops = {
	.conn_size = sizeof(struct cconn),
	.max_conns = CONTROL_MAX_CONNS,
	.max_busy = CONTROL_MAX_BUSY,
	.timeout_ms = CONTROL_TIMEOUT_MS,
	.name = "control",
	.start = start,
	.busy = busy,
	.buffer = buffer,
	.input = input,
};

/* A file at path: replaced only when it is a socket no one accepts on (a
 * dnsmux that did not exit cleanly), never a live one or another file. */
static int clear_stale(const char *path, const struct sockaddr_un *sun, char *err, size_t errlen)
{
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket: not replaced", path);
		return -EEXIST;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -errno;
	}
	int r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	int e = r < 0 ? errno : 0;
	close(fd);
	if (r == 0 || e == EAGAIN) { /* accepted, or a backlog full: someone listens */
		snprintf(err, errlen, "%s: another process (a running dnsmux?) is listening on it", path);
		return -EADDRINUSE;
	}
	if (e != ECONNREFUSED) {
		snprintf(err, errlen, "%s: cannot tell whether it is in use: %s", path, strerror(e));
		return -e;
	}
	if (unlink(path) < 0) {
		snprintf(err, errlen, "%s: cannot remove the stale socket: %s", path, strerror(errno));
		return -errno;
	}
	log_info(DAEMON, "control: %s: removed a stale socket (no one listened on it)", path);
	return 0;
}

/* The listening socket at path, mode CONTROL_SOCKET_MODE from the start. */
static int bind_path(struct control_server *s, const struct sockaddr_un *sun, char *err, size_t errlen)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -errno;
	}
	/* bind makes the file 0777 less the umask: narrow it for that call (the
	 * workers and the query log's writer have not started yet) */
	mode_t old = umask(0777 & ~CONTROL_SOCKET_MODE);
	int r = bind(fd, (const struct sockaddr *)sun, sizeof(*sun));
	int e = errno;
	umask(old);
	struct stat st;
	if (r < 0 || stat(s->path, &st) < 0) {
		e = r < 0 ? e : errno;
		snprintf(err, errlen, "%s: %s", s->path, strerror(e));
		close(fd);
		return -e;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	return fd;
}

int control_server_start(uv_loop_t *loop, const char *path, control_handle_fn *handle, void *arg,
			 struct control_server **out, char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "%s: longer than a unix socket path may be (%zu bytes)", path, sizeof(sun.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	struct control_server *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->os.loop = loop;
	s->os.ops = &ops;
	s->os.is_pipe = true;
	s->handle = handle;
	s->arg = arg;
	memcpy(s->path, sun.sun_path, sizeof(s->path));
	int r = clear_stale(path, &sun, err, errlen);
	int fd = r < 0 ? r : bind_path(s, &sun, err, errlen);
	if (fd < 0) {
		free(s);
		return fd;
	}
	uv_pipe_init(loop, &s->os.listener.pipe, 0);
	r = uv_pipe_open(&s->os.listener.pipe, fd);
	if (r < 0)
		close(fd); /* (not the handle's) */
	else
		r = oneshot_listen(&s->os, 16);
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", path, uv_strerror(r));
		unlink(path);
		oneshot_close(&s->os);
		return r;
	}
	*out = s;
	return 0;
}

void control_server_close(struct control_server *s)
{
	struct stat st;
	if (!s || s->os.is_closing)
		return;
	/* only our own file: one put there since (by hand) stays */
	if (stat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino && unlink(s->path) < 0)
		log_warn(DAEMON, "control: cannot remove %s: %s", s->path, strerror(errno));
	oneshot_close(&s->os);
}
