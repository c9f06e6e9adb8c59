/* server.c -- the control socket (see server.h). The shape of the /metrics
 * server (obs/metrics_http.c) on a unix socket: a list of connections, each
 * a pipe and a timer, freed when both have closed. What a command does is
 * the daemon's (core/daemon.c, the handle callback); parsing is
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
#include "obs/json.h"
#include "obs/log.h"

#define ERR_MAX 16384 /* a reload's errors: main.c's buffer */

struct control_server {
	uv_pipe_t listener;
	uv_loop_t *loop;
	control_handle_fn *handle;
	void *arg;
	struct cconn *conns;   /* open connections (list) */
	unsigned n_conns;
	bool is_closing;
	bool listener_closed;
	dev_t dev;             /* the socket file made at start, removed at close if still it */
	ino_t ino;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

struct cconn {
	uv_pipe_t pipe;
	uv_timer_t timer;          /* CONTROL_TIMEOUT_MS from accept */
	uv_write_t wr;
	uv_shutdown_t sd;
	struct control_server *srv;
	struct cconn *next, **pprev;
	unsigned open_handles;     /* freed at 0 */
	bool is_closing;
	bool answered;             /* the reply is on its way: no more input */
	struct control_peer peer;
	size_t len;                /* bytes of the request read */
	char rbuf[COMMAND_REQUEST_MAX];
	char *reply;               /* the JSON text written (heap) */
};

static void maybe_free_server(struct control_server *s)
{
	if (s->is_closing && s->listener_closed && s->n_conns == 0)
		free(s);
}

static void conn_close_cb(uv_handle_t *h)
{
	struct cconn *c = h->data;
	if (--c->open_handles > 0)
		return;
	struct control_server *s = c->srv;
	*c->pprev = c->next;
	if (c->next)
		c->next->pprev = c->pprev;
	s->n_conns--;
	free(c->reply);
	free(c);
	maybe_free_server(s);
}

static void conn_close(struct cconn *c)
{
	if (c->is_closing)
		return;
	c->is_closing = true;
	uv_close((uv_handle_t *)&c->timer, conn_close_cb);
	uv_close((uv_handle_t *)&c->pipe, conn_close_cb);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	(void)status;
	conn_close(req->data);
}

static void write_cb(uv_write_t *req, int status)
{
	struct cconn *c = req->data;
	if (status < 0 || c->is_closing || uv_shutdown(&c->sd, (uv_stream_t *)&c->pipe, shutdown_cb) < 0)
		conn_close(c);
}

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

/* {"ok": false, "error": why} */
static char *error_text(const char *why)
{
	return line_of(json_pack("{s:b, s:o}", "ok", 0, "error", json_text(why)));
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
	c->answered = true;
	uv_read_stop((uv_stream_t *)&c->pipe);
	c->reply = text;
	if (!text) {
		conn_close(c); /* (out of memory: the client sees no reply) */
		return;
	}
	uv_buf_t b = uv_buf_init(text, (unsigned)strlen(text));
	c->wr.data = c->sd.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->pipe, &b, 1, write_cb) < 0)
		conn_close(c);
}

/* One request line: parsed, carried out by the daemon, answered. */
static void run(struct cconn *c, size_t len)
{
	static char err[ERR_MAX];
	struct command cmd;
	if (command_parse(c->rbuf, len, &cmd, err, sizeof(err)) < 0) {
		log_debug(DAEMON, "control: pid %ld: bad request: %s", c->peer.pid, err);
		send_reply(c, error_text(err));
		return;
	}
	json_t *result = c->srv->handle(c->srv->arg, &cmd, &c->peer, err, sizeof(err));
	send_reply(c, result ? ok_text(result) : error_text(err[0] ? err : "failed"));
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct cconn *c = h->data;
	(void)suggested;
	buf->base = c->rbuf + c->len;
	buf->len = sizeof(c->rbuf) - c->len;
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct cconn *c = st->data;
	(void)buf;
	if (nread == 0 || c->answered)
		return;
	if (nread == UV_EOF) {
		run(c, c->len); /* a request without its newline ends at EOF */
		return;
	}
	if (nread < 0) {
		conn_close(c);
		return;
	}
	const char *nl = memchr(c->rbuf + c->len, '\n', (size_t)nread);
	c->len += (size_t)nread;
	if (nl)
		run(c, (size_t)(nl - c->rbuf)); /* (bytes after it are not read: one request per connection) */
	else if (c->len == sizeof(c->rbuf)) {
		char why[80];
		snprintf(why, sizeof(why), "request longer than %d bytes", COMMAND_REQUEST_MAX - 1);
		send_reply(c, error_text(why));
	}
}

static void timer_cb(uv_timer_t *t)
{
	struct cconn *c = t->data;
	log_debug(DAEMON, "control: pid %ld: no whole request within %d ms: closed", c->peer.pid, CONTROL_TIMEOUT_MS);
	conn_close(c);
}

static void peer_of(struct cconn *c)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);
	uv_os_fd_t fd;
	c->peer.pid = c->peer.uid = -1;
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0) {
		c->peer.pid = uc.pid;
		c->peer.uid = uc.uid;
	}
}

static void connection_cb(uv_stream_t *l, int status)
{
	struct control_server *s = l->data;
	if (status < 0 || s->is_closing)
		return;
	struct cconn *c = calloc(1, sizeof(*c));
	if (!c)
		return; /* (it waits in the backlog; tried again with the next one) */
	c->srv = s;
	uv_pipe_init(s->loop, &c->pipe, 0);
	uv_timer_init(s->loop, &c->timer);
	c->pipe.data = c->timer.data = c;
	c->open_handles = 2;
	c->next = s->conns;
	c->pprev = &s->conns;
	if (s->conns)
		s->conns->pprev = &c->next;
	s->conns = c;
	s->n_conns++;
	if (uv_accept(l, (uv_stream_t *)&c->pipe) < 0) {
		conn_close(c);
		return;
	}
	if (s->n_conns > CONTROL_MAX_CONNS) {
		char why[80];
		snprintf(why, sizeof(why), "busy: %d control connections open; try again", CONTROL_MAX_CONNS);
		char *busy = error_text(why);
		if (busy) {
			uv_buf_t b = uv_buf_init(busy, (unsigned)strlen(busy));
			(void)uv_try_write((uv_stream_t *)&c->pipe, &b, 1); /* (a fresh socket's buffer takes it) */
			free(busy);
		}
		log_warn_rl(DAEMON, "control: %u connections open, more closed at once", s->n_conns - 1);
		conn_close(c);
		return;
	}
	peer_of(c);
	uv_timer_start(&c->timer, timer_cb, CONTROL_TIMEOUT_MS, 0);
	if (uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb) < 0)
		conn_close(c);
}

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

static void listener_close_cb(uv_handle_t *h)
{
	struct control_server *s = h->data;
	s->listener_closed = true;
	maybe_free_server(s);
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
	s->loop = loop;
	s->handle = handle;
	s->arg = arg;
	memcpy(s->path, sun.sun_path, sizeof(s->path));
	int r = clear_stale(path, &sun, err, errlen);
	int fd = r < 0 ? r : bind_path(s, &sun, err, errlen);
	if (fd < 0) {
		free(s);
		return fd;
	}
	uv_pipe_init(loop, &s->listener, 0);
	s->listener.data = s;
	r = uv_pipe_open(&s->listener, fd);
	if (r < 0)
		close(fd); /* (not the handle's) */
	else
		r = uv_listen((uv_stream_t *)&s->listener, 16, connection_cb);
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", path, uv_strerror(r));
		unlink(path);
		s->is_closing = true;
		uv_close((uv_handle_t *)&s->listener, listener_close_cb);
		return r;
	}
	*out = s;
	return 0;
}

void control_server_close(struct control_server *s)
{
	struct stat st;
	if (!s || s->is_closing)
		return;
	s->is_closing = true;
	for (struct cconn *c = s->conns; c; c = c->next)
		conn_close(c);
	uv_close((uv_handle_t *)&s->listener, listener_close_cb);
	/* only our own file: one put there since (by hand) stays */
	if (stat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino && unlink(s->path) < 0)
		log_warn(DAEMON, "control: cannot remove %s: %s", s->path, strerror(errno));
}
