/* oneshot.c -- see oneshot.h. */
#include <stdlib.h>
#include "core/oneshot.h"
#include "obs/log.h"

static void maybe_free_server(struct oneshot *s)
{
	if (s->is_closing && s->listener_closed && s->n_conns == 0)
		free(s);
}

static void conn_close_cb(uv_handle_t *h)
{
	struct oneshot_conn *c = h->data;
	if (--c->open_handles > 0)
		return;
	struct oneshot *s = c->srv;
	*c->pprev = c->next;
	if (c->next)
		c->next->pprev = c->pprev;
	s->n_conns--;
	if (s->ops->finish)
		s->ops->finish(c);
	free(c->owned);
	free(c);
	maybe_free_server(s);
}

void oneshot_conn_close(struct oneshot_conn *c)
{
	if (c->is_closing)
		return;
	c->is_closing = true;
	uv_close((uv_handle_t *)&c->timer, conn_close_cb);
	uv_close((uv_handle_t *)&c->h.stream, conn_close_cb);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	struct oneshot_conn *c = req->data;
	c->is_shut = true;
	if (status < 0 || c->has_eof)
		oneshot_conn_close(c);
}

static void write_cb(uv_write_t *req, int status)
{
	struct oneshot_conn *c = req->data;
	if (status < 0 || c->is_closing || uv_shutdown(&c->sd, &c->h.stream, shutdown_cb) < 0)
		oneshot_conn_close(c);
}

void oneshot_reply(struct oneshot_conn *c, const uv_buf_t *bufs, unsigned n, void *owned)
{
	c->answered = true;
	c->owned = owned;
	c->wr.data = c->sd.data = c;
	if (uv_write(&c->wr, &c->h.stream, bufs, n, write_cb) < 0)
		oneshot_conn_close(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct oneshot_conn *c = h->data;
	static char drop[1024]; /* (what comes after the request: read to be dropped) */
	(void)suggested;
	if (c->answered)
		*buf = uv_buf_init(drop, sizeof(drop));
	else
		c->srv->ops->buffer(c, buf);
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct oneshot_conn *c = st->data;
	if (nread == 0 || c->is_closing)
		return;
	if (nread < 0)
		c->has_eof = true;
	if (c->answered) {
		if (nread < 0 && c->is_shut)
			oneshot_conn_close(c);
		return;
	}
	if (nread < 0 && nread != UV_EOF)
		oneshot_conn_close(c);
	else
		c->srv->ops->input(c, nread, buf);
}

static void timer_cb(uv_timer_t *t)
{
	struct oneshot_conn *c = t->data;
	log_debug(DAEMON, "%s: a connection %s within %u ms: closed", c->srv->ops->name,
		  c->answered ? "did not go after its reply" : "sent no whole request", c->srv->ops->timeout_ms);
	oneshot_conn_close(c);
}

static void connection_cb(uv_stream_t *l, int status)
{
	struct oneshot *s = l->data;
	const struct oneshot_ops *ops = s->ops;
	if (status < 0 || s->is_closing)
		return;
	struct oneshot_conn *c = calloc(1, ops->conn_size);
	if (!c)
		return; /* (it waits in the backlog; tried again with the next one) */
	c->srv = s;
	if (s->is_pipe)
		uv_pipe_init(s->loop, &c->h.pipe, 0);
	else
		uv_tcp_init(s->loop, &c->h.tcp);
	uv_timer_init(s->loop, &c->timer);
	c->h.stream.data = c->timer.data = c;
	c->open_handles = 2;
	c->next = s->conns;
	c->pprev = &s->conns;
	if (s->conns)
		s->conns->pprev = &c->next;
	s->conns = c;
	s->n_conns++;
	if (uv_accept(l, &c->h.stream) < 0 || s->n_conns > ops->max_conns + ops->max_busy) {
		log_warn_rl(DAEMON, "%s: %u connections open, more closed at once", ops->name, s->n_conns - 1);
		oneshot_conn_close(c);
		return;
	}
	uv_timer_start(&c->timer, timer_cb, ops->timeout_ms, 0);
	if (uv_read_start(&c->h.stream, alloc_cb, read_cb) < 0) {
		oneshot_conn_close(c);
		return;
	}
	if (s->n_conns <= ops->max_conns) {
		ops->start(c);
		return;
	}
	log_warn_rl(DAEMON, "%s: %u connections open: told busy", ops->name, s->n_conns - 1);
	ops->busy(c);
}

int oneshot_listen(struct oneshot *s, int backlog)
{
	s->listener.stream.data = s;
	return uv_listen(&s->listener.stream, backlog, connection_cb);
}

static void listener_close_cb(uv_handle_t *h)
{
	struct oneshot *s = h->data;
	s->listener_closed = true;
	maybe_free_server(s);
}

void oneshot_close(struct oneshot *s)
{
	if (!s || s->is_closing)
		return;
	s->is_closing = true;
	for (struct oneshot_conn *c = s->conns; c; c = c->next)
		oneshot_conn_close(c);
	s->listener.stream.data = s;
	uv_close((uv_handle_t *)&s->listener.stream, listener_close_cb);
}
