/* h2.c -- HTTP/2 framing of a DoH circuit (see h2.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <gnutls/gnutls.h>
#include <nghttp2/nghttp2.h>
#include "circuit/h2.h"

#define H2F_BODY_MAX 65535
#define H2F_WINDOW (1u << 20) /* connection and stream windows we grant the server */

/* One request in flight: its body to send, then the response to collect. */
struct h2f_stream {
	struct h2_framing *f;
	struct h2f_stream *prev, *next; /* f->streams: freed with f (nghttp2_session_del reports nothing) */
	uint16_t up_id;
	int32_t id;               /* its stream id (from h2f_submit) */
	bool is_cancelled;        /* its query is gone: ignore what comes */
	bool status_ok;           /* :status 200 */
	bool ct_ok;               /* content-type application/dns-message */
	int status;
	uint8_t *req;             /* POST body (len req_len), sent from req_off */
	size_t req_len, req_off;
	uint8_t *resp;            /* response body so far */
	size_t resp_len;
	bool resp_too_long;
	bool is_ended;            /* the response's END_STREAM came: its body is whole */
};

struct h2_framing {
	nghttp2_session *s;
	struct h2f_events ev;
	char authority[300];
	char path[300];
	bool use_get;
	struct h2f_stream *streams;
};

static void stream_free(struct h2f_stream *st)
{
	if (!st)
		return;
	if (st->prev)
		st->prev->next = st->next;
	else if (st->f && st->f->streams == st)
		st->f->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	free(st->req);
	free(st->resp);
	free(st);
}

static int on_header(nghttp2_session *s, const nghttp2_frame *fr, const uint8_t *name, size_t nlen,
		     const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
	(void)flags;
	(void)user;
	if (fr->hd.type != NGHTTP2_HEADERS)
		return 0;
	struct h2f_stream *st = nghttp2_session_get_stream_user_data(s, fr->hd.stream_id);
	if (!st)
		return 0;
	if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
		st->status = 0;
		for (size_t i = 0; i < vlen && i < 3; i++)
			st->status = st->status * 10 + (value[i] - '0');
		st->status_ok = vlen == 3 && memcmp(value, "200", 3) == 0;
	} else if (nlen == 12 && memcmp(name, "content-type", 12) == 0) {
		static const char want[] = "application/dns-message";
		st->ct_ok = vlen >= sizeof(want) - 1 && strncasecmp((const char *)value, want, sizeof(want) - 1) == 0;
	}
	return 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *user)
{
	(void)flags;
	(void)user;
	struct h2f_stream *st = nghttp2_session_get_stream_user_data(s, id);
	if (!st || st->resp_too_long)
		return 0;
	if (st->resp_len + len > H2F_BODY_MAX) {
		st->resp_too_long = true;
		return 0;
	}
	if (!st->resp && !(st->resp = malloc(H2F_BODY_MAX)))
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	memcpy(st->resp + st->resp_len, data, len);
	st->resp_len += len;
	return 0;
}

/* The stream ended: an answer, or a failure the circuit must hear of. */
static int on_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *user)
{
	struct h2_framing *f = user;
	struct h2f_stream *st = nghttp2_session_get_stream_user_data(s, id);
	if (!st)
		return 0;
	nghttp2_session_set_stream_user_data(s, id, NULL);
	if (!st->is_cancelled) {
		char why[64];
		if (code == NGHTTP2_REFUSED_STREAM) {
			f->ev.failed(f->ev.arg, st->up_id, true, "stream refused");
		} else if (code != NGHTTP2_NO_ERROR) {
			snprintf(why, sizeof(why), "stream reset: %s", nghttp2_http2_strerror(code));
			f->ev.failed(f->ev.arg, st->up_id, false, why);
		} else if (!st->is_ended) {
			/* RFC 9113 8.1: RST_STREAM NO_ERROR ends a complete response
			 * early only after its END_STREAM; before, the body is cut */
			f->ev.failed(f->ev.arg, st->up_id, false, "stream reset before the response ended");
		} else if (!st->status_ok || !st->ct_ok || st->resp_too_long || st->resp_len == 0) {
			snprintf(why, sizeof(why), "HTTP status %d%s", st->status,
				 st->status_ok ? ", not application/dns-message" : "");
			f->ev.failed(f->ev.arg, st->up_id, false, why);
		} else {
			f->ev.answer(f->ev.arg, st->up_id, st->resp, st->resp_len);
		}
	}
	stream_free(st);
	return 0;
}

/* After a GOAWAY nghttp2 closes (as refused) the streams it opened above
 * the last one; those it still holds back (the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS reached: no nghttp2 stream yet) it never
 * starts and never reports. They are refused here (RFC 9113 6.8), and
 * their HEADERS cancelled. */
static void refuse_held(struct h2_framing *f, int32_t last)
{
	for (struct h2f_stream *st = f->streams, *next; st; st = next) {
		next = st->next;
		if (st->is_cancelled || st->id <= last || nghttp2_session_get_stream_user_data(f->s, st->id))
			continue;
		st->is_cancelled = true;
		nghttp2_submit_rst_stream(f->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
		f->ev.failed(f->ev.arg, st->up_id, true, "stream refused (GOAWAY before it was sent)");
	}
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *fr, void *user)
{
	struct h2_framing *f = user;
	if ((fr->hd.type == NGHTTP2_HEADERS || fr->hd.type == NGHTTP2_DATA) && (fr->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
		struct h2f_stream *st = nghttp2_session_get_stream_user_data(s, fr->hd.stream_id);
		if (st)
			st->is_ended = true;
	}
	if (fr->hd.type == NGHTTP2_GOAWAY) {
		f->ev.goaway(f->ev.arg); /* streams above last_stream_id close as refused */
		refuse_held(f, fr->goaway.last_stream_id);
	}
	return 0;
}

static ssize_t read_req(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
			nghttp2_data_source *src, void *user)
{
	struct h2f_stream *st = src->ptr;
	(void)s;
	(void)id;
	(void)user;
	size_t n = st->req_len - st->req_off;
	if (n > len)
		n = len;
	memcpy(buf, st->req + st->req_off, n);
	st->req_off += n;
	if (st->req_off == st->req_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

struct h2_framing *h2f_new(const struct h2f_opts *o, const struct h2f_events *ev)
{
	struct h2_framing *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->ev = *ev;
	snprintf(f->authority, sizeof(f->authority), "%s", o->authority);
	snprintf(f->path, sizeof(f->path), "%s", o->path);
	f->use_get = o->use_get;
	nghttp2_session_callbacks *cb;
	if (nghttp2_session_callbacks_new(&cb) != 0) {
		free(f);
		return NULL;
	}
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	int r = nghttp2_session_client_new(&f->s, cb, f);
	nghttp2_session_callbacks_del(cb);
	if (r != 0) {
		free(f);
		return NULL;
	}
	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2F_WINDOW},
	};
	if (nghttp2_submit_settings(f->s, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0 ||
	    nghttp2_session_set_local_window_size(f->s, NGHTTP2_FLAG_NONE, 0, (int32_t)H2F_WINDOW) != 0) {
		h2f_free(f);
		return NULL;
	}
	return f;
}

void h2f_free(struct h2_framing *f)
{
	if (!f)
		return;
	/* nothing is reported while it is torn down: the circuit's queries are
	 * the circuit's to hand back */
	nghttp2_session_del(f->s);
	while (f->streams)
		stream_free(f->streams);
	free(f);
}

/* RFC 8484 4.1: base64url without padding, for GET. */
static size_t b64url(const uint8_t *msg, size_t len, char *out, size_t cap)
{
	gnutls_datum_t in = {(unsigned char *)(uintptr_t)msg, (unsigned)len}, res = {NULL, 0};
	if (gnutls_base64_encode2(&in, &res) < 0)
		return 0;
	size_t n = 0;
	for (unsigned i = 0; i < res.size && n + 1 < cap; i++) {
		char c = (char)res.data[i];
		if (c == '=' || c == '\n' || c == '\r')
			continue;
		out[n++] = c == '+' ? '-' : c == '/' ? '_' : c;
	}
	out[n] = '\0';
	gnutls_free(res.data);
	return n;
}

int32_t h2f_submit(struct h2_framing *f, const uint8_t *msg, size_t len, uint16_t up_id)
{
	struct h2f_stream *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->f = f;
	st->up_id = up_id;
	st->next = f->streams;
	if (f->streams)
		f->streams->prev = st;
	f->streams = st;
	char clen[16];
	char *get_path = NULL;
	snprintf(clen, sizeof(clen), "%zu", len);
#define NV(k, v) (nghttp2_nv){(uint8_t *)(k), (uint8_t *)(v), strlen(k), strlen(v), NGHTTP2_NV_FLAG_NONE}
	nghttp2_nv nv[8];
	size_t n = 0;
	nv[n++] = NV(":method", f->use_get ? "GET" : "POST");
	nv[n++] = NV(":scheme", "https");
	nv[n++] = NV(":authority", f->authority);
	if (f->use_get) {
		size_t cap = strlen(f->path) + 6 + len * 4 / 3 + 8;
		get_path = malloc(cap);
		if (!get_path) {
			stream_free(st);
			return -ENOMEM;
		}
		size_t pl = (size_t)snprintf(get_path, cap, "%s?dns=", f->path);
		b64url(msg, len, get_path + pl, cap - pl);
		nv[n++] = NV(":path", get_path);
	} else {
		nv[n++] = NV(":path", f->path);
		nv[n++] = NV("content-type", "application/dns-message");
		nv[n++] = NV("content-length", clen);
	}
	nv[n++] = NV("accept", "application/dns-message");
#undef NV
	int32_t id;
	if (f->use_get) {
		id = nghttp2_submit_request(f->s, NULL, nv, n, NULL, st);
	} else {
		st->req = malloc(len);
		if (!st->req) {
			stream_free(st);
			return -ENOMEM;
		}
		memcpy(st->req, msg, len);
		st->req_len = len;
		nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_req};
		id = nghttp2_submit_request(f->s, NULL, nv, n, &prd, st);
	}
	free(get_path); /* nghttp2 copied the header block */
	if (id < 0) {
		stream_free(st);
		return -ENOMEM;
	}
	st->id = id;
	return id;
}

int h2f_input(struct h2_framing *f, const uint8_t *data, size_t len)
{
	ssize_t n = nghttp2_session_mem_recv(f->s, data, len);
	return n < 0 ? -EPROTO : 0;
}

int h2f_output(struct h2_framing *f, struct frame_buf *out)
{
	const uint8_t *data;
	ssize_t n;
	while ((n = nghttp2_session_mem_send(f->s, &data)) > 0) {
		if (frame_buf_reserve(out, (size_t)n) < 0)
			return -ENOMEM;
		memcpy(out->data + out->len, data, (size_t)n);
		out->len += (size_t)n;
	}
	return n < 0 ? -EPROTO : 0;
}

uint32_t h2f_max_streams(const struct h2_framing *f)
{
	return nghttp2_session_get_remote_settings(f->s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

void h2f_cancel(struct h2_framing *f, int32_t stream_id)
{
	struct h2f_stream *st = nghttp2_session_get_stream_user_data(f->s, stream_id);
	/* a request nghttp2 still holds back (the server's
	 * SETTINGS_MAX_CONCURRENT_STREAMS) has no nghttp2 stream yet; the
	 * RST_STREAM below cancels its HEADERS, but what it reports is ours to
	 * silence */
	for (struct h2f_stream *o = f->streams; !st && o; o = o->next)
		if (o->id == stream_id)
			st = o;
	if (!st)
		return;
	st->is_cancelled = true;
	nghttp2_submit_rst_stream(f->s, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
}
