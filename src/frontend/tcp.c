/* tcp.c -- TCP listener and client connections (see tcp.h). RFC 7766: several
 * queries in flight per connection (6.2.1), answers sent as they come, in any
 * order (7), idle connections closed (6.2.3), and a cap on connections so a
 * flood of them cannot take all file descriptors. */
#include <stdlib.h>
#include <string.h>
#include "core/query.h"
#include "core/wire.h"
#include "core/worker.h"
#include "frontend/frontend.h"
#include "frontend/tcp.h"
#include "obs/log.h"

#define CLIENT_RBUF 4096

struct frontend_tcp {
	uv_tcp_t h;
	struct worker *w;
	const struct listen_conf *conf;
	struct frontend_tcp *next; /* worker's list */
};

struct tcp_client {
	uv_tcp_t h;
	struct worker *w;
	struct frame_buf in;        /* bytes read, reassembled */
	struct tq_entry idle;       /* in w->tcp_idle while no query is in flight */
	uint32_t refs;              /* 1 for the open handle + 1 per query + 1 per pending write */
	uint32_t inflight;          /* queries from it not yet answered */
	bool is_closing;
	bool is_reading;
	bool in_process;            /* process() is on the stack: answers given inside it must not re-enter */
	bool saw_eof;               /* the client sent FIN: close once answered */
	struct tcp_client *prev, *next; /* worker's list */
};

struct write_req {
	uv_write_t req;
	struct tcp_client *tc;
	uint8_t data[]; /* length prefix and message */
};

static void client_unref(struct tcp_client *tc)
{
	if (--tc->refs > 0)
		return;
	frame_buf_deinit(&tc->in);
	free(tc);
}

static void client_close_cb(uv_handle_t *h)
{
	client_unref(h->data);
}

static void client_close(struct tcp_client *tc)
{
	if (tc->is_closing)
		return;
	struct worker *w = tc->w;
	tc->is_closing = true;
	tq_remove(&tc->idle);
	if (tc->prev)
		tc->prev->next = tc->next;
	else
		w->clients = tc->next;
	if (tc->next)
		tc->next->prev = tc->prev;
	w->n_clients--;
	uv_close((uv_handle_t *)&tc->h, client_close_cb);
}

static void process(struct tcp_client *tc);

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct tcp_client *tc = h->data;
	uint8_t *p;
	size_t room;
	(void)suggested;
	if (frame_buf_room(&tc->in, 1024, &p, &room) < 0) {
		buf->base = NULL;
		buf->len = 0;
		return;
	}
	buf->base = (char *)p;
	buf->len = room;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct tcp_client *tc = s->data;
	(void)buf;
	if (nread == 0)
		return;
	if (nread < 0) {
		/* EOF: the client will send no more; answers to what it sent may
		 * still be written (RFC 7766 6.2.4), so close only when none is due */
		uv_read_stop(s);
		tc->is_reading = false;
		tc->saw_eof = true;
		if (nread != UV_EOF)
			client_close(tc);
		else
			process(tc); /* whole messages before the FIN still count */
		return;
	}
	frame_buf_filled(&tc->in, (size_t)nread);
	process(tc);
}

static void set_reading(struct tcp_client *tc, bool on)
{
	if (on == tc->is_reading || tc->is_closing)
		return;
	tc->is_reading = on;
	if (on)
		uv_read_start((uv_stream_t *)&tc->h, alloc_cb, read_cb);
	else
		uv_read_stop((uv_stream_t *)&tc->h);
}

/* Turn every whole message in the buffer into a query, up to the pipeline
 * cap; past it, stop reading until answers go out (backpressure, not drops). */
static void process(struct tcp_client *tc)
{
	struct worker *w = tc->w;
	uint8_t *msg;
	size_t len;
	tc->in_process = true;
	while (!tc->is_closing && tc->inflight < w->cfg->tcp_pipeline && frame_next(&tc->in, &msg, &len))
		frontend_query(w, msg, len, NULL, NULL, tc);
	tc->in_process = false;
	if (tc->is_closing)
		return;
	if (tc->saw_eof || w->is_stopping) {
		if (tc->inflight == 0)
			client_close(tc);
		return;
	}
	set_reading(tc, tc->inflight < w->cfg->tcp_pipeline);
	if (tc->inflight == 0) {
		tq_add(&w->tcp_idle, &tc->idle, worker_now(w));
		worker_arm(w, tc->idle.deadline_ms);
	}
}

void frontend_tcp_query_start(struct tcp_client *tc)
{
	tc->refs++;
	tc->inflight++;
	tq_remove(&tc->idle);
}

void frontend_tcp_query_done(struct tcp_client *tc)
{
	tc->inflight--;
	if (!tc->is_closing && !tc->in_process) {
		if (tc->w->is_stopping || tc->saw_eof) {
			if (tc->inflight == 0)
				client_close(tc);
		} else {
			process(tc); /* messages held back by the cap, reading, idle timer */
		}
	}
	client_unref(tc);
}

static void write_cb(uv_write_t *req, int status)
{
	struct write_req *wr = (struct write_req *)req;
	struct tcp_client *tc = wr->tc;
	free(wr);
	if (status < 0 && status != UV_ECANCELED)
		client_close(tc);
	client_unref(tc);
}

void frontend_tcp_send(struct tcp_client *tc, const uint8_t *msg, size_t len)
{
	if (tc->is_closing) {
		METRIC_INC(&tc->w->m, send_errors);
		return;
	}
	uint8_t pfx[2] = {(uint8_t)(len >> 8), (uint8_t)len};
	uv_buf_t b[2] = {uv_buf_init((char *)pfx, 2), uv_buf_init((char *)msg, (unsigned)len)};
	int n = 0;
	if (uv_stream_get_write_queue_size((uv_stream_t *)&tc->h) == 0) {
		n = uv_try_write((uv_stream_t *)&tc->h, b, 2);
		if (n == (int)len + 2)
			return;
		if (n < 0 && n != UV_EAGAIN) {
			METRIC_INC(&tc->w->m, send_errors);
			client_close(tc);
			return;
		}
		if (n < 0)
			n = 0;
	}
	/* the rest goes through uv_write, which needs its own copy */
	size_t rest = len + 2 - (size_t)n;
	struct write_req *wr = malloc(sizeof(*wr) + rest);
	if (!wr) {
		client_close(tc);
		return;
	}
	uint8_t *p = wr->data;
	if (n < 2) {
		memcpy(p, pfx + n, 2 - (size_t)n);
		memcpy(p + 2 - n, msg, len);
	} else {
		memcpy(p, msg + (n - 2), rest);
	}
	wr->tc = tc;
	uv_buf_t wb = uv_buf_init((char *)wr->data, (unsigned)rest);
	if (uv_write(&wr->req, (uv_stream_t *)&tc->h, &wb, 1, write_cb) < 0) {
		free(wr);
		client_close(tc);
		return;
	}
	tc->refs++;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct frontend_tcp *l = server->data;
	struct worker *w = l->w;
	if (status < 0) {
		log_warn_rl(FRONTEND, "tcp %s: accept failed: %s", l->conf->text, uv_strerror(status));
		return;
	}
	struct tcp_client *tc = calloc(1, sizeof(*tc));
	if (!tc || frame_buf_init(&tc->in, CLIENT_RBUF) < 0 || uv_tcp_init(&w->loop, &tc->h) < 0) {
		free(tc ? tc->in.data : NULL);
		free(tc);
		return;
	}
	tc->w = w;
	tc->h.data = tc;
	tc->refs = 1;
	if (uv_accept(server, (uv_stream_t *)&tc->h) < 0) {
		uv_close((uv_handle_t *)&tc->h, client_close_cb);
		return;
	}
	tc->next = w->clients;
	if (w->clients)
		w->clients->prev = tc;
	w->clients = tc;
	w->n_clients++;
	if (w->n_clients > w->cfg->tcp_max_clients) {
		METRIC_INC(&w->m, tcp_rejected);
		client_close(tc);
		return;
	}
	METRIC_INC(&w->m, tcp_clients);
	uv_tcp_nodelay(&tc->h, 1);
	set_reading(tc, true);
	tq_add(&w->tcp_idle, &tc->idle, worker_now(w));
	worker_arm(w, tc->idle.deadline_ms);
}

void frontend_tcp_idle_expired(struct worker *w, uint64_t now_ms)
{
	struct tq_entry *e;
	while ((e = tq_pop_expired(&w->tcp_idle, now_ms))) {
		struct tcp_client *tc = tq_container(e, struct tcp_client, idle);
		if (tc->inflight == 0)
			client_close(tc);
	}
}

static void listener_close_cb(uv_handle_t *h)
{
	free(h->data);
}

int frontend_tcp_start(struct worker *w, const struct listen_conf *lc, int fd)
{
	struct frontend_tcp *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->w = w;
	l->conf = lc;
	int r = uv_tcp_init(&w->loop, &l->h);
	if (r < 0) {
		free(l);
		return r;
	}
	l->h.data = l;
	r = uv_tcp_open(&l->h, fd);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&l->h, 1024, on_connection);
	if (r < 0) {
		uv_close((uv_handle_t *)&l->h, listener_close_cb);
		return r;
	}
	l->next = w->tcps;
	w->tcps = l;
	return 0;
}

void frontend_tcp_stop(struct worker *w)
{
	struct frontend_tcp *l = w->tcps, *next;
	for (; l; l = next) {
		next = l->next;
		uv_close((uv_handle_t *)&l->h, listener_close_cb);
	}
	w->tcps = NULL;
}

void frontend_tcp_close_idle(struct worker *w)
{
	struct tcp_client *tc = w->clients, *next;
	for (; tc; tc = next) {
		next = tc->next;
		if (tc->inflight == 0)
			client_close(tc);
		else
			set_reading(tc, false);
	}
}
