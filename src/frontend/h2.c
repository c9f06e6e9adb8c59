/* h2.c -- HTTP/2 for DoH clients (RFC 8484 over RFC 9113), on nghttp2's
 * memory interface: tcp.c hands over the plaintext it read
 * (http2_proto.input), nghttp2 calls back with headers and data, and what it
 * wants to send goes back through frontend_conn_write (TLS or the socket).
 * Each request is a stream; each stream's query is answered on its own
 * stream as its answer arrives, in any order. The request semantics are
 * doh.c's. Caps: concurrent streams (--tcp-pipeline, announced in SETTINGS),
 * header bytes per stream, body bytes per stream. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <nghttp2/nghttp2.h>
#include "core/scratch.h"
#include "core/worker.h"
#include "frontend/doh.h"
#include "frontend/frontend.h"
#include "frontend/http.h"
#include "obs/log.h"

#define H2_HEADER_BYTES_MAX (DOH_PATH_MAX + 8192) /* per stream, names and values */
#define H2_RESP_INLINE 512 /* a response body up to this is kept in its stream (a padded answer is 468) */

struct h2_stream {
	struct h2_stream *prev, *next; /* h2_conn.streams; next: h2_conn.spare */
	nghttp2_rcbuf *path;       /* the :path value (req.path points into it), held until the request is taken */
	uint8_t *body;             /* POST body so far (heap, up to DOH_BODY_MAX + 1) */
	size_t header_bytes;
	enum doh_kind kind;
	bool has_query;            /* a query is in flight for it */
	bool has_resp;             /* a response is submitted */
	const uint8_t *resp;       /* its body: resp_inline or resp_heap */
	uint8_t *resp_heap;        /* a body past H2_RESP_INLINE (heap) */
	size_t resp_len, resp_off;
	char status[4], clen[8], age[20]; /* header values, sent without a copy: they live as long as the stream */
	struct doh_request req;
	uint8_t resp_inline[H2_RESP_INLINE]; /* last: not zeroed */
};

/* nghttp2's allocations for a connection (an HPACK buffer per header, the
 * stream, its outbound items, ...: ~10 per request) come from per-size
 * spare lists before malloc, as the stream structs do. Each block carries
 * its size class in a 16-byte prefix (alignment kept). */
#define H2_MEM_CLASSES 4     /* 64, 128, 256, 512 bytes with the prefix; larger ones go to malloc */
#define H2_MEM_SPARE_MAX 64  /* spare blocks kept per class */
#define H2_MEM_PREFIX 16

struct h2_mem {
	void *spare[H2_MEM_CLASSES]; /* singly linked through their first word */
	uint32_t n_spare[H2_MEM_CLASSES];
};

struct h2_conn {
	struct tcp_client *tc;
	struct h2_mem mem;         /* nghttp2's allocator state (lives as long as the session) */
	nghttp2_session *s;
	/* every stream with state of ours: nghttp2_session_del closes the
	 * streams still open without on_stream_close, so h2_free frees these */
	struct h2_stream *streams;
	struct h2_stream *spare;   /* freed streams, for the next ones (a malloc and free per stream saved) */
	uint32_t n_spare, max_spare;
	struct h2_stream *hdr_st;  /* the stream whose header block is being read (on_header without a lookup) */
	int32_t hdr_id;
	bool in_recv;              /* nghttp2_session_mem_recv is on the stack */
};

static size_t mem_class_size(unsigned c)
{
	return (size_t)64 << c;
}

static void *mem_malloc(size_t size, void *ud)
{
	struct h2_mem *m = ud;
	unsigned c = 0;
	while (c < H2_MEM_CLASSES && size + H2_MEM_PREFIX > mem_class_size(c))
		c++;
	uint8_t *b;
	if (c < H2_MEM_CLASSES && m->spare[c]) {
		b = m->spare[c];
		memcpy(&m->spare[c], b, sizeof(void *));
		m->n_spare[c]--;
	} else if (!(b = malloc(c < H2_MEM_CLASSES ? mem_class_size(c) : size + H2_MEM_PREFIX))) {
		return NULL;
	}
	b[0] = (uint8_t)c;
	return b + H2_MEM_PREFIX;
}

static void mem_free(void *ptr, void *ud)
{
	struct h2_mem *m = ud;
	if (!ptr)
		return;
	uint8_t *b = (uint8_t *)ptr - H2_MEM_PREFIX;
	unsigned c = b[0];
	if (c >= H2_MEM_CLASSES || m->n_spare[c] >= H2_MEM_SPARE_MAX) {
		free(b);
		return;
	}
	memcpy(b, &m->spare[c], sizeof(void *));
	m->spare[c] = b;
	m->n_spare[c]++;
}

static void *mem_calloc(size_t n, size_t size, void *ud)
{
	if (size && n > SIZE_MAX / 2 / size)
		return NULL;
	void *p = mem_malloc(n * size, ud);
	if (p)
		memset(p, 0, n * size);
	return p;
}

static void *mem_realloc(void *ptr, size_t size, void *ud)
{
	if (!ptr)
		return mem_malloc(size, ud);
	uint8_t *b = (uint8_t *)ptr - H2_MEM_PREFIX;
	unsigned c = b[0];
	if (c >= H2_MEM_CLASSES) {
		uint8_t *nb = realloc(b, size + H2_MEM_PREFIX); /* the class stays "large": it may shrink below 512 */
		return nb ? nb + H2_MEM_PREFIX : NULL;
	}
	size_t have = mem_class_size(c) - H2_MEM_PREFIX;
	if (size <= have)
		return ptr;
	void *p = mem_malloc(size, ud);
	if (!p)
		return NULL;
	memcpy(p, ptr, have);
	mem_free(ptr, ud);
	return p;
}

static void mem_deinit(struct h2_mem *m)
{
	for (unsigned c = 0; c < H2_MEM_CLASSES; c++)
		while (m->spare[c]) {
			void *b = m->spare[c];
			memcpy(&m->spare[c], b, sizeof(void *));
			free(b);
		}
}

static struct h2_stream *stream_of(struct h2_conn *h, int32_t id)
{
	return nghttp2_session_get_stream_user_data(h->s, id);
}

static void stream_drop_path(struct h2_stream *st)
{
	if (st->path)
		nghttp2_rcbuf_decref(st->path);
	st->path = NULL;
}

static void stream_free(struct h2_conn *h, struct h2_stream *st)
{
	if (st->prev)
		st->prev->next = st->next;
	else
		h->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	if (h->hdr_st == st)
		h->hdr_st = NULL;
	stream_drop_path(st);
	free(st->body);
	free(st->resp_heap);
	if (h->n_spare < h->max_spare) {
		st->next = h->spare;
		h->spare = st;
		h->n_spare++;
		return;
	}
	free(st);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
	struct h2_conn *h = user;
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct h2_stream *st = h->spare;
	if (st) {
		h->spare = st->next;
		h->n_spare--;
	} else if (!(st = malloc(sizeof(*st)))) {
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	memset(st, 0, offsetof(struct h2_stream, resp_inline));
	st->next = h->streams;
	if (h->streams)
		h->streams->prev = st;
	h->streams = st;
	h->hdr_st = st;
	h->hdr_id = f->hd.stream_id;
	nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st);
	return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, nghttp2_rcbuf *nbuf, nghttp2_rcbuf *vbuf,
		     uint8_t flags, void *user)
{
	struct h2_conn *h = user;
	(void)flags;
	nghttp2_vec nv = nghttp2_rcbuf_get_buf(nbuf), vv = nghttp2_rcbuf_get_buf(vbuf);
	const uint8_t *name = nv.base, *value = vv.base;
	size_t nlen = nv.len, vlen = vv.len;
	/* a header block is not interleaved with another stream's (RFC 9113 6.10) */
	struct h2_stream *st = h->hdr_st && h->hdr_id == f->hd.stream_id ? h->hdr_st : stream_of(h, f->hd.stream_id);
	if (!st)
		return 0;
	st->header_bytes += nlen + vlen + 32;
	if (st->header_bytes > H2_HEADER_BYTES_MAX) {
		/* RST_STREAM for this stream only; the others go on */
		nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_ENHANCE_YOUR_CALM);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	struct doh_request *r = &st->req;
	const char *n = (const char *)name, *v = (const char *)value;
	if (nlen == 7 && memcmp(n, ":method", 7) == 0) {
		r->method = vlen == 3 && memcmp(v, "GET", 3) == 0    ? DOH_GET
			    : vlen == 4 && memcmp(v, "POST", 4) == 0 ? DOH_POST
			    : vlen == 4 && memcmp(v, "HEAD", 4) == 0 ? DOH_HEAD
								     : DOH_OTHER;
	} else if (nlen == 5 && memcmp(n, ":path", 5) == 0) {
		stream_drop_path(st);
		if (vlen > DOH_PATH_MAX) {
			r->path_too_long = true;
			r->path = NULL;
			r->path_len = 0;
		} else {
			/* kept as nghttp2 decoded it, not copied: a reference to its buffer */
			nghttp2_rcbuf_incref(vbuf);
			st->path = vbuf;
			r->path = v;
			r->path_len = vlen;
		}
	} else if (nlen == 12 && memcmp(n, "content-type", 12) == 0) {
		r->has_ct = true;
		r->ct_dns_message = doh_is_dns_message(v, vlen);
	} else {
		doh_forwarded_header(r, n, nlen, v, vlen);
	}
	return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
	struct h2_conn *h = user;
	(void)s;
	(void)flags;
	struct h2_stream *st = stream_of(h, id);
	if (!st || st->req.body_too_long)
		return 0;
	if (st->req.body_len + len > DOH_BODY_MAX) {
		st->req.body_too_long = true; /* answered 413 at the end of the stream */
		return 0;
	}
	if (!st->body && !(st->body = malloc(DOH_BODY_MAX)))
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	memcpy(st->body + st->req.body_len, data, len);
	st->req.body_len += len;
	return 0;
}

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			 nghttp2_data_source *src, void *user)
{
	struct h2_stream *st = src->ptr;
	(void)s;
	(void)id;
	(void)user;
	size_t n = st->resp_len - st->resp_off;
	if (n > len)
		n = len;
	memcpy(buf, st->resp + st->resp_off, n);
	st->resp_off += n;
	if (st->resp_off == st->resp_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* v in decimal into out (no NUL); its length. */
static size_t put_uint(char *out, uint32_t v)
{
	char tmp[10];
	size_t n = 0;
	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

/* Send resp on stream id (a copy of its body is kept until it is sent). */
static void respond(struct h2_conn *h, int32_t id, struct h2_stream *st, const struct doh_response *resp)
{
	/* the values live in st until the HEADERS frame is out, so nghttp2
	 * need not copy them (names are lower case, as NO_COPY_NAME wants) */
	const uint8_t fl = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
	const char *ct = resp->content_type ? resp->content_type : "text/plain";
	nghttp2_nv nv[4];
	size_t n = 0;
#define NV(k, v, vl) (nghttp2_nv){(uint8_t *)(k), (uint8_t *)(v), sizeof(k) - 1, (vl), fl}
	nv[n++] = NV(":status", st->status, put_uint(st->status, (uint32_t)resp->status % 1000));
	nv[n++] = NV("content-type", ct, strlen(ct));
	nv[n++] = NV("content-length", st->clen, put_uint(st->clen, (uint32_t)resp->len));
	if (resp->has_max_age) {
		memcpy(st->age, "max-age=", 8);
		nv[n++] = NV("cache-control", st->age, 8 + put_uint(st->age + 8, resp->max_age));
	}
#undef NV
	free(st->resp_heap);
	st->resp_heap = NULL;
	if (resp->len > H2_RESP_INLINE) {
		if (!(st->resp_heap = malloc(resp->len))) {
			nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
			return;
		}
		st->resp = st->resp_heap;
	} else {
		st->resp = st->resp_inline;
	}
	if (resp->len)
		memcpy((uint8_t *)st->resp, resp->body, resp->len);
	st->resp_len = resp->len;
	st->resp_off = 0;
	st->has_resp = true;
	/* RFC 9110 9.3.2: no content in a response to HEAD (content-length
	 * still says what GET would get, RFC 9113 8.1.1) */
	bool is_head = st->req.method == DOH_HEAD;
	nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_body};
	if (nghttp2_submit_response(h->s, id, nv, n, is_head ? NULL : &prd) != 0)
		nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
}

static const struct client_ops doh2_client_ops;

/* The request is complete (END_STREAM): start its query, or answer it. */
static void request_done(struct h2_conn *h, int32_t id, struct h2_stream *st)
{
	struct doh_response err;
	st->req.body = st->body;
	st->has_query = true; /* before: the answer may come at once */
	bool started = doh_request_start(h->tc, &st->req, &doh2_client_ops, (uint32_t)id, &st->kind, &err);
	/* the request is taken: its path is not needed any more */
	stream_drop_path(st);
	st->req.path = NULL;
	if (started)
		return;
	st->has_query = false;
	METRIC_INC(&frontend_conn_worker(h->tc)->m, doh_bad_requests);
	respond(h, id, st, &err);
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
	struct h2_conn *h = user;
	(void)s;
	if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) || !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	struct h2_stream *st = stream_of(h, f->hd.stream_id);
	if (st && !st->has_query && !st->has_resp)
		request_done(h, f->hd.stream_id, st);
	return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *user)
{
	struct h2_conn *h = user;
	(void)code;
	struct h2_stream *st = stream_of(h, id);
	if (!st)
		return 0;
	nghttp2_session_set_stream_user_data(s, id, NULL);
	/* a query still in flight answers into nothing (reply finds no stream) */
	stream_free(h, st);
	return 0;
}

/* Everything nghttp2 has to send, to the connection. */
static void flush(struct h2_conn *h)
{
	const uint8_t *data;
	ssize_t n;
	while ((n = nghttp2_session_mem_send(h->s, &data)) > 0)
		frontend_conn_write(h->tc, data, (size_t)n);
}

static void reply(struct query *q, const uint8_t *msg, size_t len)
{
	struct tcp_client *tc = q->client.u.stream.conn;
	struct h2_conn *h = frontend_conn_http(tc);
	int32_t id = (int32_t)q->client.u.stream.stream;
	struct h2_stream *st = h ? stream_of(h, id) : NULL;
	if (!st || !st->has_query) {
		log_debug(FRONTEND, "DoH client: no stream %d for an answer (%s)", id, !h ? "connection gone" : !st ? "stream closed" : "answered already");
		METRIC_INC(&q->w->m, send_errors); /* the client reset the stream or closed */
		return;
	}
	static __thread void *buf_slot;
	uint8_t *buf = scratch(&buf_slot, DOH_JSON_MAX);
	struct doh_response resp;
	st->has_query = false;
	doh_response_for_answer(q, st->kind, msg, len, buf, DOH_JSON_MAX, &resp);
	respond(h, id, st, &resp);
	if (!h->in_recv)
		flush(h); /* (nghttp2's send may not run inside its receive: h2_input sends after) */
}

static uint16_t max_answer(const struct query *q, const struct msg_info *mi)
{
	(void)q;
	(void)mi;
	return UINT16_MAX; /* an HTTP body carries any DNS message */
}

static const struct client_ops doh2_client_ops = {
	.name = "doh",
	.kind = MF_DOH,
	.max_answer = max_answer,
	.start = frontend_conn_query_start,
	.reply = reply,
	.release = frontend_conn_query_release,
};

void *http2_new(struct tcp_client *tc, uint32_t max_streams)
{
	struct h2_conn *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->tc = tc;
	h->max_spare = max_streams;
	nghttp2_session_callbacks *cb;
	if (nghttp2_session_callbacks_new(&cb) != 0) {
		free(h);
		return NULL;
	}
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback2(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	nghttp2_option *opt;
	nghttp2_option_new(&opt);
	nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
	nghttp2_mem mem = {.mem_user_data = &h->mem, .malloc = mem_malloc, .free = mem_free, .calloc = mem_calloc,
			   .realloc = mem_realloc};
	int r = nghttp2_session_server_new3(&h->s, cb, h, opt, &mem);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	if (r != 0) {
		mem_deinit(&h->mem);
		free(h);
		return NULL;
	}
	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, max_streams},
		{NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, H2_HEADER_BYTES_MAX},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, DOH_BODY_MAX},
	};
	nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
	flush(h);
	return h;
}

static void h2_free(void *arg)
{
	struct h2_conn *h = arg;
	if (!h)
		return;
	nghttp2_session_del(h->s); /* (reports nothing: the streams still open are ours to free) */
	h->max_spare = 0;
	while (h->streams)
		stream_free(h, h->streams);
	while (h->spare) {
		struct h2_stream *st = h->spare;
		h->spare = st->next;
		free(st);
	}
	mem_deinit(&h->mem); /* last: a stream's :path reference went back to it */
	free(h);
}

static int h2_input(void *arg, const uint8_t *data, size_t len)
{
	struct h2_conn *h = arg;
	h->in_recv = true;
	ssize_t n = nghttp2_session_mem_recv(h->s, data, len);
	h->in_recv = false;
	if (n < 0) {
		log_debug(FRONTEND, "DoH client: HTTP/2 error: %s", nghttp2_strerror((int)n));
		flush(h); /* nghttp2 queues a GOAWAY for protocol errors */
		return -1;
	}
	flush(h);
	if (!nghttp2_session_want_read(h->s) && !nghttp2_session_want_write(h->s)) {
		log_debug(FRONTEND, "DoH client: HTTP/2 session over (GOAWAY)");
		return -1;
	}
	return (int)n;
}

static void h2_goaway(void *arg)
{
	struct h2_conn *h = arg;
	/* graceful: streams already open are still answered (RFC 9113 6.8) */
	nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->s), NGHTTP2_NO_ERROR,
			      NULL, 0);
	flush(h);
}

const struct http_proto http2_proto = {
	.name = "h2",
	.input = h2_input,
	.goaway = h2_goaway,
	.free = h2_free,
};
