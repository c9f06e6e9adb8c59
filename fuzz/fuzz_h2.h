/* fuzz_h2.h -- an independent reading of one direction of an HTTP/2
 * connection, for the targets that speak it (fuzz_doh.c, fuzz_h2_upstream.c).
 * The walker checks each frame against RFC 9113 4 and 6 (lengths, stream
 * ids, flags, padding, CONTINUATION right after its HEADERS, SETTINGS
 * first, no DATA or HEADERS on a stream that ended), decodes each header
 * block (HPACK: nghttp2's inflater, on its own state) and keeps each
 * stream's header fields and body. `why` names the first rule broken; past
 * it nothing more is read. Header-only, like fuzz.h. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <nghttp2/nghttp2.h>

#define H2W_FRAME_MAX 16384        /* SETTINGS_MAX_FRAME_SIZE: neither side of ours raises it */
#define H2W_BODY_MAX (1u << 17)    /* body bytes kept per stream; more are only counted */
#define H2W_STREAMS_MAX 128
#define H2W_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2W_PREFACE_LEN 24

struct h2w_stream {
	int32_t id;
	unsigned header_blocks;  /* HEADERS blocks on it (the request's or response's, trailers) */
	bool is_ended;           /* END_STREAM seen */
	bool is_reset;           /* RST_STREAM seen */
	uint32_t reset_code;
	uint8_t *fields;         /* decoded fields: [u16 name len][u16 value len][name][value]... (heap) */
	size_t fields_len, fields_cap;
	uint8_t *body;           /* DATA payloads without padding: the first H2W_BODY_MAX bytes (heap) */
	size_t body_kept, body_cap;
	size_t body_len;         /* all of them, kept or not */
};

struct h2w {
	bool from_client;        /* client -> server: the preface first, new streams odd and increasing */
	size_t preface_seen;     /* bytes of the client preface matched so far */
	uint8_t *buf;            /* an unfinished frame (heap, len of cap bytes) */
	size_t len, cap;
	nghttp2_hd_inflater *inf;
	int32_t cont_stream;     /* a header block is open on it: only its CONTINUATION may follow */
	bool cont_end_stream;    /* that block's HEADERS had END_STREAM */
	uint8_t *block;          /* that block so far (heap) */
	size_t block_len, block_cap;
	struct h2w_stream streams[H2W_STREAMS_MAX];
	size_t n_streams;
	bool has_too_many;       /* streams past H2W_STREAMS_MAX were not kept */
	int32_t last_new;        /* highest stream opened by this direction */
	unsigned frames;
	bool saw_goaway;
	uint32_t goaway_code;
	int32_t goaway_last;
	uint32_t settings_frames; /* SETTINGS without ACK */
	uint32_t last_max_streams; /* the last SETTINGS_MAX_CONCURRENT_STREAMS given, UINT32_MAX if none */
	const char *why;         /* the first violation, NULL while there is none */
};

static inline uint32_t h2w_get24(const uint8_t *p)
{
	return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
}

static inline uint32_t h2w_get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void h2w_init(struct h2w *w, bool from_client)
{
	memset(w, 0, sizeof(*w));
	w->from_client = from_client;
	w->last_max_streams = UINT32_MAX;
	if (nghttp2_hd_inflate_new(&w->inf) != 0)
		abort();
}

static inline void h2w_deinit(struct h2w *w)
{
	for (size_t i = 0; i < w->n_streams; i++) {
		free(w->streams[i].fields);
		free(w->streams[i].body);
	}
	nghttp2_hd_inflate_del(w->inf);
	free(w->buf);
	free(w->block);
	memset(w, 0, sizeof(*w));
}

static inline struct h2w_stream *h2w_find(struct h2w *w, int32_t id)
{
	for (size_t i = 0; i < w->n_streams; i++)
		if (w->streams[i].id == id)
			return &w->streams[i];
	return NULL;
}

/* The last value of field name on st (NULL when absent). */
static inline const uint8_t *h2w_field(const struct h2w_stream *st, const char *name, size_t *vlen)
{
	const uint8_t *found = NULL;
	size_t nl = strlen(name);
	for (size_t off = 0; off + 4 <= st->fields_len;) {
		size_t n = (size_t)st->fields[off] << 8 | st->fields[off + 1];
		size_t v = (size_t)st->fields[off + 2] << 8 | st->fields[off + 3];
		if (n == nl && memcmp(st->fields + off + 4, name, nl) == 0) {
			found = st->fields + off + 4 + n;
			*vlen = v;
		}
		off += 4 + n + v;
	}
	return found;
}

static inline bool h2w_fail(struct h2w *w, const char *why)
{
	if (!w->why)
		w->why = why;
	return false;
}

/* The stream a frame names: kept, or opened by this one (HEADERS). */
static inline struct h2w_stream *h2w_stream_for(struct h2w *w, int32_t id, bool opens)
{
	struct h2w_stream *st = h2w_find(w, id);
	if (st || !opens)
		return st;
	if (w->from_client) {
		if (id % 2 == 0 || id <= w->last_new) {
			h2w_fail(w, "a client's new stream must be odd and above the last");
			return NULL;
		}
		w->last_new = id;
	}
	if (w->n_streams == H2W_STREAMS_MAX) {
		w->has_too_many = true;
		return NULL;
	}
	st = &w->streams[w->n_streams++];
	memset(st, 0, sizeof(*st));
	st->id = id;
	return st;
}

static inline void h2w_put_field(struct h2w_stream *st, const nghttp2_nv *nv)
{
	uint8_t hdr[4] = {(uint8_t)(nv->namelen >> 8), (uint8_t)nv->namelen, (uint8_t)(nv->valuelen >> 8),
			  (uint8_t)nv->valuelen};
	if (nv->namelen > 0xffff || nv->valuelen > 0xffff)
		return;
	fz_append(&st->fields, &st->fields_len, &st->fields_cap, hdr, 4);
	fz_append(&st->fields, &st->fields_len, &st->fields_cap, nv->name, nv->namelen);
	fz_append(&st->fields, &st->fields_len, &st->fields_cap, nv->value, nv->valuelen);
}

/* A whole header block (HEADERS and its CONTINUATIONs): decoded whatever
 * the stream, as the HPACK state is the connection's. */
static inline bool h2w_block_done(struct h2w *w)
{
	struct h2w_stream *st = h2w_stream_for(w, w->cont_stream, true);
	if (w->why)
		return false;
	const uint8_t *in = w->block_len ? w->block : (const uint8_t *)"";
	size_t left = w->block_len;
	for (;;) {
		nghttp2_nv nv;
		int flags = 0;
		ssize_t r = nghttp2_hd_inflate_hd2(w->inf, &nv, &flags, in, left, 1);
		if (r < 0)
			return h2w_fail(w, "a header block HPACK does not decode");
		in += r;
		left -= (size_t)r;
		if ((flags & NGHTTP2_HD_INFLATE_EMIT) && st)
			h2w_put_field(st, &nv);
		if (flags & NGHTTP2_HD_INFLATE_FINAL)
			break;
		if (r == 0 && left == 0)
			return h2w_fail(w, "a header block ends inside a field");
	}
	nghttp2_hd_inflate_end_headers(w->inf);
	if (st) {
		st->header_blocks++;
		st->is_ended = st->is_ended || w->cont_end_stream;
	}
	w->cont_stream = 0;
	w->block_len = 0;
	return true;
}

/* The payload of a padded frame, without its padding. */
static inline bool h2w_unpad(struct h2w *w, uint8_t flags, const uint8_t **p, size_t *n)
{
	if (!(flags & NGHTTP2_FLAG_PADDED))
		return true;
	if (*n < 1 || (size_t)(*p)[0] >= *n)
		return h2w_fail(w, "padding as long as the frame");
	size_t pad = (*p)[0];
	*p += 1;
	*n -= 1 + pad;
	return true;
}

static inline bool h2w_headers(struct h2w *w, int32_t sid, uint8_t flags, const uint8_t *p, size_t n)
{
	if (sid == 0)
		return h2w_fail(w, "HEADERS on stream 0");
	if (!h2w_unpad(w, flags, &p, &n))
		return false;
	if (flags & NGHTTP2_FLAG_PRIORITY) {
		if (n < 5)
			return h2w_fail(w, "HEADERS shorter than its priority");
		p += 5;
		n -= 5;
	}
	struct h2w_stream *st = h2w_find(w, sid);
	if (st && (st->is_ended || st->is_reset))
		return h2w_fail(w, "HEADERS on a stream that ended");
	w->cont_stream = sid;
	w->cont_end_stream = (flags & NGHTTP2_FLAG_END_STREAM) != 0;
	fz_append(&w->block, &w->block_len, &w->block_cap, p, n);
	return (flags & NGHTTP2_FLAG_END_HEADERS) ? h2w_block_done(w) : true;
}

static inline bool h2w_data(struct h2w *w, int32_t sid, uint8_t flags, const uint8_t *p, size_t n)
{
	if (sid == 0)
		return h2w_fail(w, "DATA on stream 0");
	if (!h2w_unpad(w, flags, &p, &n))
		return false;
	struct h2w_stream *st = h2w_find(w, sid);
	if (!st)
		return w->has_too_many ? true : h2w_fail(w, "DATA on a stream without HEADERS");
	if (st->is_ended || st->is_reset)
		return h2w_fail(w, "DATA on a stream that ended");
	size_t keep = H2W_BODY_MAX - st->body_kept;
	if (keep > n)
		keep = n;
	fz_append(&st->body, &st->body_kept, &st->body_cap, p, keep);
	st->body_len += n;
	if (flags & NGHTTP2_FLAG_END_STREAM)
		st->is_ended = true;
	return true;
}

static inline bool h2w_settings(struct h2w *w, int32_t sid, uint8_t flags, const uint8_t *p, size_t n)
{
	if (sid != 0)
		return h2w_fail(w, "SETTINGS on a stream");
	if (flags & NGHTTP2_FLAG_ACK)
		return n == 0 ? true : h2w_fail(w, "SETTINGS ACK with a payload");
	if (n % 6)
		return h2w_fail(w, "SETTINGS not a multiple of 6 bytes");
	for (size_t i = 0; i < n; i += 6) {
		uint16_t id = (uint16_t)(p[i] << 8 | p[i + 1]);
		uint32_t v = h2w_get32(p + i + 2);
		if ((id == NGHTTP2_SETTINGS_ENABLE_PUSH && v > 1) ||
		    (id == NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE && v > 0x7fffffff) ||
		    (id == NGHTTP2_SETTINGS_MAX_FRAME_SIZE && (v < 16384 || v > 0xffffff)))
			return h2w_fail(w, "a SETTINGS value out of range");
		if (id == NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS)
			w->last_max_streams = v;
	}
	w->settings_frames++;
	return true;
}

/* One whole frame (9-byte header at f). */
static inline bool h2w_frame(struct h2w *w, const uint8_t *f)
{
	size_t n = h2w_get24(f);
	uint8_t type = f[3], flags = f[4];
	int32_t sid = (int32_t)(h2w_get32(f + 5) & 0x7fffffff);
	const uint8_t *p = f + 9;
	struct h2w_stream *st;
	if (w->frames++ == 0 && (type != NGHTTP2_SETTINGS || (flags & NGHTTP2_FLAG_ACK)))
		return h2w_fail(w, "the first frame is not SETTINGS");
	if (w->cont_stream && (type != NGHTTP2_CONTINUATION || sid != w->cont_stream))
		return h2w_fail(w, "a header block interrupted");
	switch (type) {
	case NGHTTP2_DATA: return h2w_data(w, sid, flags, p, n);
	case NGHTTP2_HEADERS: return h2w_headers(w, sid, flags, p, n);
	case NGHTTP2_PRIORITY: return n == 5 && sid ? true : h2w_fail(w, "PRIORITY malformed");
	case NGHTTP2_RST_STREAM:
		if (n != 4 || !sid)
			return h2w_fail(w, "RST_STREAM malformed");
		/* (a server may reset a client's stream it never answered: kept too) */
		if ((st = h2w_find(w, sid)) || (!w->from_client && (st = h2w_stream_for(w, sid, true)))) {
			st->is_reset = true;
			st->reset_code = h2w_get32(p);
		}
		return true;
	case NGHTTP2_SETTINGS: return h2w_settings(w, sid, flags, p, n);
	case NGHTTP2_PUSH_PROMISE: return h2w_fail(w, "PUSH_PROMISE (push is never on)");
	case NGHTTP2_PING: return n == 8 && !sid ? true : h2w_fail(w, "PING malformed");
	case NGHTTP2_GOAWAY:
		if (n < 8 || sid)
			return h2w_fail(w, "GOAWAY malformed");
		w->saw_goaway = true;
		w->goaway_last = (int32_t)(h2w_get32(p) & 0x7fffffff);
		w->goaway_code = h2w_get32(p + 4);
		return true;
	case NGHTTP2_WINDOW_UPDATE:
		return n == 4 && (h2w_get32(p) & 0x7fffffff) ? true : h2w_fail(w, "WINDOW_UPDATE malformed");
	case NGHTTP2_CONTINUATION: {
		if (!w->cont_stream)
			return h2w_fail(w, "CONTINUATION without HEADERS");
		fz_append(&w->block, &w->block_len, &w->block_cap, p, n);
		return (flags & NGHTTP2_FLAG_END_HEADERS) ? h2w_block_done(w) : true;
	}
	default: return true; /* RFC 9113 5.5: unknown types are ignored */
	}
}

/* The next n bytes of this direction. */
static inline void h2w_feed(struct h2w *w, const uint8_t *p, size_t n)
{
	while (w->from_client && w->preface_seen < H2W_PREFACE_LEN && n && !w->why) {
		if (*p != (uint8_t)H2W_PREFACE[w->preface_seen])
			h2w_fail(w, "no client preface");
		w->preface_seen++;
		p++;
		n--;
	}
	if (w->why)
		return;
	fz_append(&w->buf, &w->len, &w->cap, p, n);
	size_t off = 0;
	while (!w->why && w->len - off >= 9) {
		size_t flen = h2w_get24(w->buf + off);
		if (flen > H2W_FRAME_MAX) {
			h2w_fail(w, "a frame longer than SETTINGS_MAX_FRAME_SIZE");
			break;
		}
		if (w->len - off < 9 + flen)
			break;
		h2w_frame(w, w->buf + off);
		off += 9 + flen;
	}
	if (off) {
		memmove(w->buf, w->buf + off, w->len - off);
		w->len -= off;
	}
}
