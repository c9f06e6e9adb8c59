/* h1.c -- HTTP/1.0 and HTTP/1.1 for DoH clients, parsed by http-parser:
 * what nginx's proxy_pass speaks to a backend (HTTP/1.0 and "Connection:
 * close" unless told otherwise), and what curl --http1.1 sends. Requests
 * may be pipelined; their responses go out in request order (RFC 9112 9.3.2)
 * as each answer arrives. Keep-alive as the request asks (1.1: unless
 * "close"; 1.0: only with "keep-alive"). The request semantics are doh.c's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <http_parser.h>
#include "core/scratch.h"
#include "core/worker.h"
#include "frontend/doh.h"
#include "frontend/frontend.h"
#include "frontend/http.h"

#define H1_FIELD_MAX 64    /* header names we look at are shorter */
#define H1_VALUE_MAX 512

struct h1_req {
	uint8_t *body;           /* POST body (heap) */
	uint32_t seq;            /* the query's stream handle */
	enum doh_kind kind;
	bool has_query;          /* its query is in flight */
	bool done;               /* its response is ready (resp) */
	bool keep_alive;
	uint8_t *resp;           /* status line, headers and body (heap) */
	size_t resp_len;
	struct h1_req *next;
	struct doh_request req;
	char path[DOH_PATH_MAX]; /* the request target as read (req.path); last: 8 KiB, not zeroed */
};

static struct h1_req *req_new(void)
{
	struct h1_req *q = malloc(sizeof(*q));
	if (q) {
		memset(q, 0, offsetof(struct h1_req, path));
		q->req.path = q->path;
	}
	return q;
}

struct h1_conn {
	struct tcp_client *tc;
	http_parser p;
	struct h1_req *cur;            /* being parsed */
	struct h1_req *head, *tail;    /* waiting for or holding their responses, in order */
	unsigned n_pending;
	unsigned max_pending;
	uint32_t next_seq;
	bool is_dead;                  /* a parse error or "close" was read: no more requests */
	bool in_parser;                /* http_parser_execute is on the stack */
	char field[H1_FIELD_MAX + 1];
	size_t field_len;
	bool field_done;               /* the value of field is being read */
	char value[H1_VALUE_MAX + 1];
	size_t value_len;
};

static const struct client_ops doh1_client_ops;

static struct h1_conn *conn_of(http_parser *p)
{
	return p->data;
}

static void end_header(struct h1_conn *h)
{
	if (!h->field_done || !h->cur)
		return;
	struct doh_request *r = &h->cur->req;
	if (h->field_len == 12 && strncasecmp(h->field, "content-type", 12) == 0) {
		r->has_ct = true;
		r->ct_dns_message = doh_is_dns_message(h->value, h->value_len);
	} else {
		doh_forwarded_header(r, h->field, h->field_len, h->value, h->value_len);
	}
	h->field_len = h->value_len = 0;
	h->field_done = false;
}

static int on_message_begin(http_parser *p)
{
	struct h1_conn *h = conn_of(p);
	h->cur = req_new();
	h->field_len = h->value_len = 0;
	h->field_done = false;
	return h->cur ? 0 : -1;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct h1_req *q = conn_of(p)->cur;
	struct doh_request *r = &q->req;
	if (r->path_len + len > DOH_PATH_MAX) {
		r->path_too_long = true;
		return 0;
	}
	memcpy(q->path + r->path_len, at, len);
	r->path_len += len;
	return 0;
}

static void append(char *buf, size_t *len, size_t cap, const char *at, size_t n)
{
	if (*len + n > cap)
		n = *len < cap ? cap - *len : 0;
	memcpy(buf + *len, at, n);
	*len += n;
	buf[*len] = '\0';
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct h1_conn *h = conn_of(p);
	end_header(h);
	append(h->field, &h->field_len, H1_FIELD_MAX, at, len);
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct h1_conn *h = conn_of(p);
	h->field_done = true;
	append(h->value, &h->value_len, H1_VALUE_MAX, at, len);
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct h1_conn *h = conn_of(p);
	end_header(h);
	struct doh_request *r = &h->cur->req;
	r->method = p->method == HTTP_GET ? DOH_GET : p->method == HTTP_POST ? DOH_POST : p->method == HTTP_HEAD ? DOH_HEAD : DOH_OTHER;
	if (p->content_length != ULLONG_MAX && p->content_length > DOH_BODY_MAX)
		r->body_too_long = true;
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct h1_req *q = conn_of(p)->cur;
	struct doh_request *r = &q->req;
	if (r->body_too_long || r->body_len + len > DOH_BODY_MAX) {
		r->body_too_long = true;
		return 0;
	}
	if (!q->body && !(q->body = malloc(DOH_BODY_MAX)))
		return -1;
	memcpy(q->body + r->body_len, at, len);
	r->body_len += len;
	return 0;
}

/* Status line, headers and body of resp, into q->resp. */
static void make_response(struct h1_req *q, const struct doh_response *resp)
{
	char hdr[256];
	char age[40] = "";
	if (resp->has_max_age)
		snprintf(age, sizeof(age), "Cache-Control: max-age=%u\r\n", resp->max_age);
	int n = snprintf(hdr, sizeof(hdr), "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
			 resp->status, doh_status_text(resp->status), resp->content_type ? resp->content_type : "text/plain",
			 resp->len, age, q->keep_alive ? "" : "Connection: close\r\n");
	bool head = q->req.method == DOH_HEAD;
	size_t body = head ? 0 : resp->len;
	q->resp = malloc((size_t)n + body);
	q->done = true;
	if (!q->resp) {
		q->resp_len = 0;
		q->keep_alive = false;
		return;
	}
	memcpy(q->resp, hdr, (size_t)n);
	memcpy(q->resp + n, resp->body, body);
	q->resp_len = (size_t)n + body;
}

/* Write the responses that are ready, in request order. */
static void flush_ready(struct h1_conn *h)
{
	struct h1_req *q;
	while ((q = h->head) && q->done) {
		h->head = q->next;
		if (!h->head)
			h->tail = NULL;
		h->n_pending--;
		if (q->resp_len)
			frontend_conn_write(h->tc, q->resp, q->resp_len);
		if (!q->keep_alive) {
			h->is_dead = true;
			frontend_conn_no_more(h->tc); /* the connection drains after this response */
		}
		free(q->resp);
		free(q->body);
		free(q);
	}
}

/* The request being parsed joins the queue of those awaiting their
 * response, in order; it is returned. */
static struct h1_req *enqueue(struct h1_conn *h)
{
	struct h1_req *q = h->cur;
	h->cur = NULL;
	q->seq = h->next_seq++;
	if (h->tail)
		h->tail->next = q;
	else
		h->head = q;
	h->tail = q;
	h->n_pending++;
	return q;
}

static int on_message_complete(http_parser *p)
{
	struct h1_conn *h = conn_of(p);
	struct h1_req *q = enqueue(h);
	q->keep_alive = http_should_keep_alive(p) != 0;
	q->req.body = q->body;
	struct doh_response err;
	bool keep_alive = q->keep_alive;
	/* no more requests after one that closes (RFC 9112 9.6: not even those
	 * already sent; its response goes out in turn); none past the pipeline
	 * cap until a response goes out (http_parser_execute stops here) */
	if (!keep_alive)
		h->is_dead = true;
	if (!keep_alive || h->n_pending >= h->max_pending)
		http_parser_pause(p, 1);
	q->has_query = true;
	if (!doh_request_start(h->tc, &q->req, &doh1_client_ops, q->seq, &q->kind, &err)) {
		q->has_query = false;
		METRIC_INC(&frontend_conn_worker(h->tc)->m, doh_bad_requests);
		make_response(q, &err);
	}
	/* (q may be gone: an answer given at once is written by h1_input) */
	return 0;
}

static const http_parser_settings settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

static struct h1_req *find(struct h1_conn *h, uint32_t seq)
{
	for (struct h1_req *q = h->head; q; q = q->next)
		if (q->seq == seq)
			return q;
	return NULL;
}

static void reply(struct query *qu, const uint8_t *msg, size_t len)
{
	struct h1_conn *h = frontend_conn_http(qu->client.u.stream.conn);
	struct h1_req *q = h ? find(h, qu->client.u.stream.stream) : NULL;
	if (!q || !q->has_query) {
		METRIC_INC(&qu->w->m, send_errors);
		return;
	}
	static __thread void *buf_slot;
	uint8_t *buf = scratch(&buf_slot, DOH_JSON_MAX);
	struct doh_response resp;
	q->has_query = false;
	doh_response_for_answer(qu, q->kind, msg, len, buf, DOH_JSON_MAX, &resp);
	make_response(q, &resp);
	if (!h->in_parser)
		flush_ready(h); /* (inside http_parser_execute, h1_input does it after) */
}

static uint16_t max_answer(const struct query *q, const struct msg_info *mi)
{
	(void)q;
	(void)mi;
	return UINT16_MAX;
}

static const struct client_ops doh1_client_ops = {
	.name = "doh",
	.kind = MF_DOH,
	.max_answer = max_answer,
	.start = frontend_conn_query_start,
	.reply = reply,
	.release = frontend_conn_query_release,
};

void *http1_new(struct tcp_client *tc, uint32_t max)
{
	struct h1_conn *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->tc = tc;
	h->max_pending = max ? max : 1;
	http_parser_init(&h->p, HTTP_REQUEST);
	h->p.data = h;
	return h;
}

static void h1_free(void *arg)
{
	struct h1_conn *h = arg;
	if (!h)
		return;
	while (h->head) {
		struct h1_req *q = h->head;
		h->head = q->next;
		free(q->resp);
		free(q->body);
		free(q);
	}
	if (h->cur) {
		free(h->cur->body);
		free(h->cur);
	}
	free(h);
}

/* Not HTTP, or not the HTTP we take: 400, then close. Nothing more is
 * parsed, even before the 400 goes out behind answers still due
 * (http_parser_pause asserts on a parser in an error state). */
static int bad_request(struct h1_conn *h, enum http_errno e)
{
	h->is_dead = true;
	if (!h->cur && !(h->cur = req_new()))
		return -1;
	struct h1_req *q = enqueue(h);
	struct doh_response err = {.status = 400, .content_type = "text/plain"};
	char why[128];
	snprintf(why, sizeof(why), "bad HTTP request: %s\n", http_errno_description(e));
	err.body = (const uint8_t *)why;
	err.len = strlen(why);
	q->keep_alive = false;
	METRIC_INC(&frontend_conn_worker(h->tc)->m, doh_bad_requests);
	make_response(q, &err);
	return 0;
}

static int h1_input(void *arg, const uint8_t *data, size_t len)
{
	struct h1_conn *h = arg;
	size_t taken = 0;
	/* all the layer can use now (http.h): a request answered at once (an
	 * error) frees its place under the pipeline cap for the next one, and
	 * nothing else would come back for it until more bytes arrive */
	while (taken < len && !h->is_dead && h->n_pending < h->max_pending) {
		http_parser_pause(&h->p, 0);
		h->in_parser = true;
		size_t n = http_parser_execute(&h->p, &settings, (const char *)data + taken, len - taken);
		h->in_parser = false;
		taken += n;
		enum http_errno e = HTTP_PARSER_ERRNO(&h->p);
		if (e != HPE_OK && e != HPE_PAUSED && bad_request(h, e) < 0)
			return -1;
		flush_ready(h);
		if (n == 0)
			break;
	}
	return h->is_dead ? (int)len : (int)taken; /* after "close" or an error: what follows is ignored */
}

static void h1_goaway(void *arg)
{
	struct h1_conn *h = arg;
	h->is_dead = true; /* HTTP/1.x has no way to say it but closing */
}

const struct http_proto http1_proto = {
	.name = "http/1.1",
	.input = h1_input,
	.goaway = h1_goaway,
	.free = h1_free,
};
