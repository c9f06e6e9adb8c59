/* metrics_http.c -- the /metrics server (see metrics_http.h). Why not the
 * DoH listener's code (frontend/tcp.c, h1.c): those are a worker's, with
 * queries, TLS and pipelining; this runs on the daemon thread, which owns
 * no worker state, and needs one request and one response. http-parser
 * does the parsing, as in frontend/h1.c; libmicrohttpd would bring a
 * thread or a select loop of its own beside libuv's. The connections'
 * life (the list, the cap, the timer, the write, shutdown and close) is
 * core/oneshot.c's, shared with the control socket. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <http_parser.h>
#include "core/oneshot.h"
#include "obs/log.h"
#include "obs/metrics_http.h"

#define URL_MAX 256

struct metrics_http {
	struct oneshot os;       /* first: core/oneshot.h frees it */
	metrics_http_render_fn *render;
	void *arg;
};

struct mconn {
	struct oneshot_conn oc;  /* first */
	http_parser p;
	size_t request_len;      /* bytes read */
	char url[URL_MAX + 1];
	size_t url_len;
	bool url_too_long;
	char head[256];          /* status line and headers of the response */
	char rbuf[2048];
};

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
	const char *type = status == 200 ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8";
	int n = snprintf(c->head, sizeof(c->head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n", status,
			 status_text(status), type, len, status == 405 ? "Allow: GET, HEAD\r\n" : "");
	uv_buf_t b[2] = {uv_buf_init(c->head, (unsigned)n), uv_buf_init(body ? body : c->head, head_only ? 0 : (unsigned)len)};
	oneshot_reply(&c->oc, b, b[1].len ? 2 : 1, body);
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
	struct metrics_http *srv = (struct metrics_http *)c->oc.srv;
	bool head = p->method == HTTP_HEAD;
	if (p->method != HTTP_GET && !head) {
		respond_text(c, 405, "only GET and HEAD\n");
	} else if (!is_metrics_path(c)) {
		respond_text(c, 404, "not found: the metrics are at /metrics\n");
	} else {
		char *body = NULL;
		size_t len = 0;
		if (srv->render(srv->arg, &body, &len) < 0)
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

static void buffer(struct oneshot_conn *oc, uv_buf_t *buf)
{
	struct mconn *c = (struct mconn *)oc;
	*buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void input(struct oneshot_conn *oc, ssize_t nread, const uv_buf_t *buf)
{
	struct mconn *c = (struct mconn *)oc;
	if (nread < 0) {
		oneshot_conn_close(oc); /* (EOF before a whole request: nothing to answer) */
		return;
	}
	c->request_len += (size_t)nread;
	if (c->request_len > METRICS_HTTP_REQUEST_MAX) {
		respond_text(c, 431, "request too large\n");
		return;
	}
	size_t used = http_parser_execute(&c->p, &settings, buf->base, (size_t)nread);
	if (!c->oc.answered && (used != (size_t)nread || HTTP_PARSER_ERRNO(&c->p) != HPE_OK))
		respond_text(c, 400, "not an HTTP/1.x request\n");
}

static void start(struct oneshot_conn *oc)
{
	struct mconn *c = (struct mconn *)oc;
	http_parser_init(&c->p, HTTP_REQUEST);
	c->p.data = c;
}

static const struct oneshot_ops ops = {
	.conn_size = sizeof(struct mconn),
	.max_conns = METRICS_HTTP_MAX_CONNS,
	.timeout_ms = METRICS_HTTP_TIMEOUT_MS,
	.name = "metrics",
	.start = start,
	.buffer = buffer,
	.input = input,
};

int metrics_http_start(uv_loop_t *loop, const struct sockaddr *addr, metrics_http_render_fn *render, void *arg,
		       struct metrics_http **out)
{
	struct metrics_http *s = calloc(1, sizeof(*s));
	if (!s)
		return UV_ENOMEM;
	s->os.loop = loop;
	s->os.ops = &ops;
	s->render = render;
	s->arg = arg;
	int r = uv_tcp_init(loop, &s->os.listener.tcp);
	if (r < 0) {
		free(s);
		return r;
	}
	r = uv_tcp_bind(&s->os.listener.tcp, addr, 0);
	if (r == 0)
		r = oneshot_listen(&s->os, 64);
	if (r < 0) {
		oneshot_close(&s->os);
		return r;
	}
	*out = s;
	return 0;
}

void metrics_http_close(struct metrics_http *s)
{
	if (s)
		oneshot_close(&s->os);
}
