/* fuzz.h -- what the libFuzzer targets in fuzz/ share: the invariant check
 * (abort, so libFuzzer keeps the input), a reader of control bytes, a
 * reproducible PRNG for chunk sizes, exact-size copies (so ASan sees any byte
 * read or written past a message), libknot's verdict on a message, and for
 * the DoH targets a strict base64url decoder and small HTTP readings.
 * Header-only, static inline: each target is one .c file (fuzz/README.md). */
#pragma once
#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <libknot/libknot.h>
#include "core/wire.h"
#include "dns/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the code under test: never compiled out (this is not
 * assert(), which NDEBUG removes). */
#define CHECK(cond)                                                                              \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                                 \
		}                                                                                \
	} while (0)

/* Control bytes at the front of an input; reads past its end give 0, so
 * every input, even an empty one, is a valid one. */
struct ctl {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t ctl_u8(struct ctl *c)
{
	if (c->n == 0)
		return 0;
	c->n--;
	return *c->p++;
}

static inline uint16_t ctl_u16(struct ctl *c)
{
	uint16_t hi = ctl_u8(c);
	return (uint16_t)((hi << 8) | ctl_u8(c));
}

/* splitmix64: a second sequence derived from the input (chunk sizes). */
static inline uint64_t fz_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A copy of n bytes in a heap block of exactly n + extra bytes (n + extra
 * may be 0: malloc(1) then, nothing readable). */
static inline uint8_t *fz_dup(const uint8_t *p, size_t n, size_t extra)
{
	uint8_t *d = malloc(n + extra ? n + extra : 1);
	if (!d)
		abort();
	if (n)
		memcpy(d, p, n);
	return d;
}

/* libknot's full parse of a message (a copy: knot_pkt_parse may edit its
 * wire, and KNOT_PF_KEEPWIRE keeps it from stripping a TSIG). Returns
 * KNOT_EOK, KNOT_ETRAIL for trailing bytes, or another error. When pkt_out
 * is given and the parse succeeded, the caller gets the packet (free it with
 * fz_knot_free). */
static inline int fz_knot_parse(const uint8_t *m, size_t len, knot_pkt_t **pkt_out)
{
	if (len > MSG_MAX)
		return KNOT_ESPACE;
	uint8_t *copy = fz_dup(m, len, 0);
	knot_pkt_t *pkt = knot_pkt_new(copy, (uint16_t)len, NULL);
	if (!pkt)
		abort();
	int r = knot_pkt_parse(pkt, KNOT_PF_KEEPWIRE);
	if (r == KNOT_EOK && pkt_out) {
		*pkt_out = pkt;
		return r;
	}
	knot_pkt_free(pkt);
	free(copy);
	return r;
}

static inline void fz_knot_free(knot_pkt_t *pkt)
{
	uint8_t *wire = pkt->wire;
	knot_pkt_free(pkt);
	free(wire);
}

/* Does the OPT record at opt_off (opt_len bytes) carry a whole option with
 * this code, before any that runs past its RDATA (an answer's OPT may be
 * broken: nothing after such an option is an option)? Walks the options
 * independently of msg_find_option. */
static inline bool fz_has_option(const uint8_t *m, size_t opt_off, size_t opt_len, uint16_t code)
{
	size_t p = opt_off + 11, end = opt_off + opt_len;
	while (p + 4 <= end) {
		size_t next = p + 4 + (size_t)msg_get16(m + p + 2);
		if (next > end)
			return false;
		if (msg_get16(m + p) == code)
			return true;
		p = next;
	}
	return false;
}

/* The question (name, type, class) of a and b are equal, the name compared
 * ASCII-case-insensitively label by label (RFC 4343); both names must be
 * uncompressed and valid within their message. An independent reading of
 * what msg_answer_matches() decides. */
static inline bool fz_same_question(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int na = knot_dname_wire_check(a + MSG_HDR, a + alen, NULL);
	int nb = knot_dname_wire_check(b + MSG_HDR, b + blen, NULL);
	if (na <= 0 || na != nb || (size_t)na + MSG_HDR + 4 > alen || (size_t)nb + MSG_HDR + 4 > blen)
		return false;
	for (int i = 0; i < na; i++) {
		uint8_t x = a[MSG_HDR + i], y = b[MSG_HDR + i];
		if (x >= 'A' && x <= 'Z')
			x = (uint8_t)(x + 32);
		if (y >= 'A' && y <= 'Z')
			y = (uint8_t)(y + 32);
		if (x != y) /* label length bytes (< 64) are never letters: compared exactly */
			return false;
	}
	return memcmp(a + MSG_HDR + na, b + MSG_HDR + nb, 4) == 0;
}

/* One read(2) into a frame_buf as a stream's read callback does it (room of
 * at least min_room, then at most that much taken): returns the bytes taken. */
static inline size_t fz_read(struct frame_buf *fb, size_t min_room, const uint8_t *p, size_t n)
{
	uint8_t *room;
	size_t cap;
	if (frame_buf_room(fb, min_room, &room, &cap) < 0)
		abort();
	size_t take = n < cap ? n : cap;
	if (take)
		memcpy(room, p, take);
	frame_buf_filled(fb, take);
	return take;
}

/* Size of the next read a peer's bytes arrive in: mostly small and odd
 * (1, 2, 3 bytes: a length prefix split), sometimes a segment or a window. */
static inline size_t fz_chunk(uint64_t *s)
{
	static const size_t scale[] = {1, 2, 3, 7, 64, 512, 1460, 4096, 16384, 65536};
	uint64_t r = fz_rand(s);
	size_t top = scale[r % (sizeof(scale) / sizeof(scale[0]))];
	return 1 + (size_t)((r >> 8) % top);
}

static inline int fz_b64v(uint8_t c)
{
	return c >= 'A' && c <= 'Z'   ? c - 'A'
	       : c >= 'a' && c <= 'z' ? c - 'a' + 26
	       : c >= '0' && c <= '9' ? c - '0' + 52
	       : c == '-'             ? 62
	       : c == '_'             ? 63
				      : -1;
}

/* RFC 4648 5 (base64url), canonical (unused bits zero, 3.5); padding --
 * '=' or its percent-encoding -- only at the end (RFC 8484 4.1 sends none).
 * out has room for n * 3 / 4 bytes. */
static inline bool fz_b64url_decode(const uint8_t *s, size_t n, uint8_t *out, size_t *len)
{
	size_t k = 0, i, o = 0;
	while (k < n && fz_b64v(s[k]) >= 0)
		k++;
	for (i = k; i < n;)
		if (s[i] == '=')
			i++;
		else if (n - i >= 3 && s[i] == '%' && s[i + 1] == '3' && (s[i + 2] | 0x20) == 'd')
			i += 3;
		else
			return false;
	if (k == 0 || k % 4 == 1)
		return false;
	uint32_t acc = 0;
	int bits = 0;
	for (i = 0; i < k; i++) {
		acc = (acc << 6) | (uint32_t)fz_b64v(s[i]);
		if ((bits += 6) >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	*len = o;
	return acc == 0;
}

/* The value of the first key=value of a query string (not decoded). */
static inline bool fz_qs_param(const uint8_t *qs, size_t n, const char *key, const uint8_t **v, size_t *vlen)
{
	size_t kl = strlen(key);
	for (size_t i = 0; i <= n;) {
		const uint8_t *amp = memchr(qs + i, '&', n - i);
		size_t seg = amp ? (size_t)(amp - qs) - i : n - i;
		if (seg > kl && memcmp(qs + i, key, kl) == 0 && qs[i + kl] == '=') {
			*v = qs + i + kl + 1;
			*vlen = seg - kl - 1;
			return true;
		}
		i += seg + 1;
	}
	return false;
}

/* Append n bytes to a growing heap buffer (*len of *cap bytes). */
static inline void fz_append(uint8_t **buf, size_t *len, size_t *cap, const uint8_t *p, size_t n)
{
	if (*len + n > *cap) {
		size_t c = *cap ? *cap : 256;
		while (c < *len + n)
			c *= 2;
		uint8_t *b = realloc(*buf, c);
		if (!b)
			abort();
		*buf = b;
		*cap = c;
	}
	if (n)
		memcpy(*buf + *len, p, n);
	*len += n;
}

/* HTTP's little readings: a token compared without case, a 3-digit
 * status, a decimal length (at most 1,000,000). */
static inline bool fz_is_nocase(const uint8_t *p, size_t n, const char *s)
{
	return p && n == strlen(s) && strncasecmp((const char *)p, s, n) == 0;
}

static inline int fz_parse_status(const uint8_t *p, size_t n)
{
	if (n != 3 || !isdigit(p[0]) || !isdigit(p[1]) || !isdigit(p[2]))
		return -1;
	return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
}

static inline bool fz_parse_len(const uint8_t *p, size_t n, size_t *out)
{
	*out = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit(p[i]) || *out > 1000000)
			return false;
		*out = *out * 10 + (size_t)(p[i] - '0');
	}
	return n > 0;
}
