/* metrics_http.c -- the /metrics server (see metrics_http.h). Why not the
 * DoH listener's code (frontend/tcp.c, h1.c): those are a worker's, with
 * queries, TLS and pipelining; this runs on the daemon thread, which owns
 * no worker state, and needs one request and one response. http-parser
 * does the parsing, as in frontend/h1.c; libmicrohttpd would bring a
 * thread or a select loop of its own beside libuv's. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <http_parser.h>
#include "obs/log.h"
#include "obs/metrics_http.h"

#define URL_MAX 256

struct metrics_http {
	uv_tcp_t listener;
	uv_loop_t *loop;
	metrics_http_render_fn *render;
	void *arg;
	struct mconn *conns;  /* open connections (list) */
	unsigned n_conns;
	bool is_closing;
	bool listener_closed;
};

struct mconn {
	uv_tcp_t tcp;
	uv_timer_t timer;        /* METRICS_HTTP_TIMEOUT_MS from accept */
	uv_write_t wr;
	uv_shutdown_t sd;
	http_parser p;
	struct metrics_http *srv;
	struct mconn *next, **pprev;
	unsigned open_handles;   /* freed at 0 */
	bool is_closing;
	bool answered;           /* a response is on its way: no more input */
	size_t request_len;      /* bytes read */
	char url[URL_MAX + 1];
	size_t url_len;
	bool url_too_long;
	char head[256];          /* status line and headers of the response */
	char *body;              /* the response body (heap), or NULL */
	char rbuf[2048];
};

static void maybe_free_server(struct metrics_http *s)
{
	if (s->is_closing && s->listener_closed && s->n_conns == 0)
		free(s);
}

static void conn_close_cb(uv_handle_t *h)
{
	struct mconn *c = h->data;
	if (--c->open_handles > 0)
		return;
	struct metrics_http *s = c->srv;
	*c->pprev = c->next;
	if (c->next)
		c->next->pprev = c->pprev;
	s->n_conns--;
	free(c->body);
	free(c);
	maybe_free_server(s);
}

static void conn_close(struct mconn *c)
{
	if (c->is_closing)
		return;
	c->is_closing = true;
	uv_close((uv_handle_t *)&c->timer, conn_close_cb);
	uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	(void)status;
	conn_close(req->data);
}

static void write_cb(uv_write_t *req, int status)
{
	struct mconn *c = req->data;
	if (status < 0 || c->is_closing || uv_shutdown(&c->sd, (uv_stream_t *)&c->tcp, shutdown_cb) < 0)
		conn_close(c);
}

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 431: return "Request Header Fields Too Large";
	default: return "Internal Server Error";
	}
}

/* Send status with body (owned: freed with c), then close. */
static void respond(struct mconn *c, int status, char *body, size_t len, bool head_only)
{
	c->answered = true;
	uv_read_stop((uv_stream_t *)&c->tcp);
	c->body = body;
	const char *type = status == 200 ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8";
	int n = snprintf(c->head, sizeof(c->head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n", status,
			 status_text(status), type, len, status == 405 ? "Allow: GET, HEAD\r\n" : "");
	uv_buf_t b[2] = {uv_buf_init(c->head, (unsigned)n), uv_buf_init(body ? body : c->head, head_only ? 0 : (unsigned)len)};
	c->wr.data = c;
	c->sd.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, b, b[1].len ? 2 : 1, write_cb) < 0)
		conn_close(c);
}

static void respond_text(struct mconn *c, int status, const char *text)
{
	char *body = strdup(text);
	respond(c, status, body, body ? strlen(body) : 0, false);
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct mconn *c = p->data;
	if (c->url_len + len > URL_MAX) {
		c->url_too_long = true;
		return 0;
	}
	memcpy(c->url + c->url_len, at, len);
	c->url_len += len;
	c->url[c->url_len] = '\0';
	return 0;
}

/* The request target's path is /metrics (a query string is allowed). */
static bool is_metrics_path(struct mconn *c)
{
	struct http_parser_url u;
	http_parser_url_init(&u);
	if (c->url_too_long || http_parser_parse_url(c->url, c->url_len, 0, &u) != 0 || !(u.field_set & (1 << UF_PATH)))
		return false;
	return u.field_data[UF_PATH].len == 8 && memcmp(c->url + u.field_data[UF_PATH].off, "/metrics", 8) == 0;
}

static int on_message_complete(http_parser *p)
{
	struct mconn *c = p->data;
	bool head = p->method == HTTP_HEAD;
	if (p->method != HTTP_GET && !head) {
		respond_text(c, 405, "only GET and HEAD\n");
	} else if (!is_metrics_path(c)) {
		respond_text(c, 404, "not found: the metrics are at /metrics\n");
	} else {
		char *body = NULL;
		size_t len = 0;
		if (c->srv->render(c->srv->arg, &body, &len) < 0)
			respond_text(c, 500, "out of memory\n");
		else
			respond(c, 200, body, len, head);
	}
	return 1; /* one request per connection: stop here */
}

static const http_parser_settings settings = {
	.on_url = on_url,
	.on_message_complete = on_message_complete,
};

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct mconn *c = h->data;
	(void)suggested;
	buf->base = c->rbuf;
	buf->len = sizeof(c->rbuf);
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct mconn *c = st->data;
	if (nread == 0 || c->answered)
		return;
	if (nread < 0) {
		conn_close(c); /* (EOF before a whole request: nothing to answer) */
		return;
	}
	c->request_len += (size_t)nread;
	if (c->request_len > METRICS_HTTP_REQUEST_MAX) {
		respond_text(c, 431, "request too large\n");
		return;
	}
	size_t used = http_parser_execute(&c->p, &settings, buf->base, (size_t)nread);
	if (!c->answered && (used != (size_t)nread || HTTP_PARSER_ERRNO(&c->p) != HPE_OK))
		respond_text(c, 400, "not an HTTP/1.x request\n");
}

static void timer_cb(uv_timer_t *t)
{
	conn_close(t->data); /* too slow: its request, or reading our response */
}

static void connection_cb(uv_stream_t *l, int status)
{
	struct metrics_http *s = l->data;
	if (status < 0 || s->is_closing)
		return;
	struct mconn *c = calloc(1, sizeof(*c));
	if (!c)
		return; /* (the kernel keeps it in the backlog; tried again on the next one) */
	c->srv = s;
	uv_tcp_init(s->loop, &c->tcp);
	uv_timer_init(s->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->open_handles = 2;
	c->next = s->conns;
	c->pprev = &s->conns;
	if (s->conns)
		s->conns->pprev = &c->next;
	s->conns = c;
	s->n_conns++;
	if (uv_accept(l, (uv_stream_t *)&c->tcp) < 0 || s->n_conns > METRICS_HTTP_MAX_CONNS) {
		log_warn_rl(DAEMON, "metrics: %u connections open, more closed at once", s->n_conns - 1);
		conn_close(c);
		return;
	}
	http_parser_init(&c->p, HTTP_REQUEST);
	c->p.data = c;
	uv_timer_start(&c->timer, timer_cb, METRICS_HTTP_TIMEOUT_MS, 0);
	if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) < 0)
		conn_close(c);
}

static void listener_close_cb(uv_handle_t *h)
{
	struct metrics_http *s = h->data;
	s->listener_closed = true;
	maybe_free_server(s);
}

int metrics_http_start(uv_loop_t *loop, const struct sockaddr *addr, metrics_http_render_fn *render, void *arg,
		       struct metrics_http **out)
{
	struct metrics_http *s = calloc(1, sizeof(*s));
	if (!s)
		return UV_ENOMEM;
	s->loop = loop;
	s->render = render;
	s->arg = arg;
	int r = uv_tcp_init(loop, &s->listener);
	if (r < 0) {
		free(s);
		return r;
	}
	s->listener.data = s;
	r = uv_tcp_bind(&s->listener, addr, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&s->listener, 64, connection_cb);
	if (r < 0) {
		s->is_closing = true;
		uv_close((uv_handle_t *)&s->listener, listener_close_cb);
		return r;
	}
	*out = s;
	return 0;
}

void metrics_http_close(struct metrics_http *s)
{
	if (!s || s->is_closing)
		return;
	s->is_closing = true;
	for (struct mconn *c = s->conns; c; c = c->next)
		conn_close(c);
	uv_close((uv_handle_t *)&s->listener, listener_close_cb);
}
