/* fuzz_h1.h -- an independent reading of an HTTP/1.x connection, for
 * fuzz_doh.c: a second http_parser on the request side that keeps each
 * request (method, URL, the last Content-Type, body, keep-alive), and a
 * parser of the responses written back (status line, the headers that
 * matter, a Content-Length body). Header-only, like fuzz.h. */
#pragma once
#include <http_parser.h>
#include "fuzz.h"

/* One request as the second http_parser read it. */
struct h1_msg {
	enum http_method method;
	uint8_t *url, *ct, *body; /* heap; ct is the last Content-Type */
	size_t url_len, url_cap, ct_len, ct_cap, body_len, body_cap;
	bool has_ct, has_headers, is_complete, keep_alive;
};

struct h1_shadow {
	http_parser p;
	struct h1_msg *msgs;
	size_t n, cap;
	uint8_t *field, *value; /* the header being read */
	size_t field_len, field_cap, value_len, value_cap;
	bool in_value;
};

static inline struct h1_msg *shadow_cur(http_parser *p)
{
	struct h1_shadow *s = p->data;
	return &s->msgs[s->n - 1];
}

static inline void shadow_end_field(struct h1_shadow *s)
{
	struct h1_msg *m = &s->msgs[s->n - 1];
	if (s->in_value && fz_is_nocase(s->field, s->field_len, "content-type")) {
		m->has_ct = true;
		m->ct_len = 0;
		fz_append(&m->ct, &m->ct_len, &m->ct_cap, s->value, s->value_len);
	}
	s->field_len = s->value_len = 0;
	s->in_value = false;
}

static inline int sh_begin(http_parser *p)
{
	struct h1_shadow *s = p->data;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 8;
		if (!(s->msgs = realloc(s->msgs, s->cap * sizeof(*s->msgs))))
			abort();
	}
	memset(&s->msgs[s->n++], 0, sizeof(struct h1_msg));
	s->field_len = s->value_len = 0;
	s->in_value = false;
	return 0;
}

static inline int sh_url(http_parser *p, const char *at, size_t n)
{
	struct h1_msg *m = shadow_cur(p);
	fz_append(&m->url, &m->url_len, &m->url_cap, (const uint8_t *)at, n);
	return 0;
}

static inline int sh_field(http_parser *p, const char *at, size_t n)
{
	struct h1_shadow *s = p->data;
	if (s->in_value)
		shadow_end_field(s);
	fz_append(&s->field, &s->field_len, &s->field_cap, (const uint8_t *)at, n);
	return 0;
}

static inline int sh_value(http_parser *p, const char *at, size_t n)
{
	struct h1_shadow *s = p->data;
	s->in_value = true;
	fz_append(&s->value, &s->value_len, &s->value_cap, (const uint8_t *)at, n);
	return 0;
}

static inline int sh_headers(http_parser *p)
{
	struct h1_shadow *s = p->data;
	shadow_end_field(s);
	struct h1_msg *m = shadow_cur(p);
	m->method = (enum http_method)p->method;
	m->has_headers = true;
	return 0;
}

static inline int sh_body(http_parser *p, const char *at, size_t n)
{
	struct h1_msg *m = shadow_cur(p);
	size_t keep = m->body_len >= 2 * DOH_BODY_MAX ? 0 : n; /* past that, its length is all that counts */
	fz_append(&m->body, &m->body_len, &m->body_cap, (const uint8_t *)at, keep);
	m->body_len += n - keep;
	return 0;
}

static inline int sh_complete(http_parser *p)
{
	struct h1_msg *m = shadow_cur(p);
	m->is_complete = true;
	m->keep_alive = http_should_keep_alive(p) != 0;
	return 0;
}

static const http_parser_settings shadow_settings = {
	.on_message_begin = sh_begin,
	.on_url = sh_url,
	.on_header_field = sh_field,
	.on_header_value = sh_value,
	.on_headers_complete = sh_headers,
	.on_body = sh_body,
	.on_message_complete = sh_complete,
};

static inline void h1s_feed(struct h1_shadow *s, const uint8_t *p, size_t n)
{
	while (n && HTTP_PARSER_ERRNO(&s->p) == HPE_OK) {
		size_t k = http_parser_execute(&s->p, &shadow_settings, (const char *)p, n);
		if (k == 0 && HTTP_PARSER_ERRNO(&s->p) == HPE_OK)
			break;
		p += k;
		n -= k;
	}
}

static inline void h1s_free(struct h1_shadow *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->msgs[i].url);
		free(s->msgs[i].ct);
		free(s->msgs[i].body);
	}
	free(s->msgs);
	free(s->field);
	free(s->value);
}

static inline void h1s_init(struct h1_shadow *s)
{
	memset(s, 0, sizeof(*s));
	http_parser_init(&s->p, HTTP_REQUEST);
	s->p.data = s;
}

/* A response as either reader saw it (fuzz_doh.c fills one from HTTP/2 too). */
struct fz_resp {
	int status;
	const uint8_t *ct, *cc, *body; /* content-type, cache-control, body */
	size_t ct_len, cc_len, body_len;
	bool is_whole;                 /* all of the body arrived */
};

/* One HTTP/1.1 response at buf + *off (len bytes in all): status line,
 * headers, a body of Content-Length bytes (none for HEAD); *off moves past
 * it. False when there is no such response there. */
static inline bool h1_response(const uint8_t *buf, size_t len, size_t *off, bool is_head, struct fz_resp *v,
			       bool *has_close)
{
	const uint8_t *p = buf + *off, *end = buf + len;
	const uint8_t *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
	size_t clen = SIZE_MAX;
	memset(v, 0, sizeof(*v));
	*has_close = false;
	if (!eol || eol - p < 13 || memcmp(p, "HTTP/1.1 ", 9) != 0 || p[12] != ' ')
		return false;
	v->status = fz_parse_status(p + 9, 3);
	for (p = eol + 2; (eol = memmem(p, (size_t)(end - p), "\r\n", 2)) && eol > p; p = eol + 2) {
		const uint8_t *colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || colon + 1 >= eol || colon[1] != ' ')
			return false;
		const uint8_t *val = colon + 2;
		size_t nl = (size_t)(colon - p), vl = (size_t)(eol - val);
		if (fz_is_nocase(p, nl, "content-length") && !fz_parse_len(val, vl, &clen))
			return false;
		if (fz_is_nocase(p, nl, "content-type"))
			v->ct = val, v->ct_len = vl;
		if (fz_is_nocase(p, nl, "cache-control"))
			v->cc = val, v->cc_len = vl;
		if (fz_is_nocase(p, nl, "connection"))
			*has_close = fz_is_nocase(val, vl, "close");
	}
	if (!eol || clen == SIZE_MAX)
		return false;
	p = eol + 2;
	size_t body = is_head ? 0 : clen;
	if ((size_t)(end - p) < body)
		return false;
	v->body = p;
	v->body_len = body;
	v->is_whole = true;
	*off = (size_t)(p + body - buf);
	return v->status >= 200 && v->status < 600;
}
