/* wire.h -- reassembly of 2-byte length-framed DNS messages from a byte
 * stream (RFC 1035 4.2.2, RFC 7766 8): reads may split a message or carry
 * several at once. Used by the TCP frontend and by circuits. No I/O. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#define FRAME_MAX (2 + 65535)

struct frame_buf {
	uint8_t *data; /* heap, cap bytes */
	size_t start;  /* first unconsumed byte */
	size_t len;    /* bytes held, from 0 (consumed ones included) */
	size_t cap;
};

int frame_buf_init(struct frame_buf *fb, size_t cap) __attribute__((warn_unused_result));
void frame_buf_deinit(struct frame_buf *fb);

/** Room to read into: at least min_room bytes after compacting or growing.
 * Returns 0 or -ENOMEM. */
int frame_buf_room(struct frame_buf *fb, size_t min_room, uint8_t **p, size_t *room)
	__attribute__((warn_unused_result));

/** n bytes were read into the room. */
static inline void frame_buf_filled(struct frame_buf *fb, size_t n)
{
	fb->len += n;
}

/** Next whole message: returns 1 and points msg and len into the buffer (valid
 * until the next frame_buf_room call), 0 when only a partial one is left. */
static inline int frame_next(struct frame_buf *fb, uint8_t **msg, size_t *len)
{
	size_t avail = fb->len - fb->start;
	if (avail < 2)
		return 0;
	size_t mlen = ((size_t)fb->data[fb->start] << 8) | fb->data[fb->start + 1];
	if (avail < 2 + mlen)
		return 0;
	*msg = fb->data + fb->start + 2;
	*len = mlen;
	fb->start += 2 + mlen;
	return 1;
}

/** Bytes held of a message not yet complete. */
static inline size_t frame_pending(const struct frame_buf *fb)
{
	return fb->len - fb->start;
}

/** Make room for n more bytes at the end; returns 0 or -ENOMEM. */
int frame_buf_reserve(struct frame_buf *fb, size_t n) __attribute__((warn_unused_result));

/** Append one framed message (length prefix and bytes) to an output buffer,
 * growing it; returns 0 or -ENOMEM. */
int frame_append(struct frame_buf *out, const uint8_t *msg, size_t len) __attribute__((warn_unused_result));
