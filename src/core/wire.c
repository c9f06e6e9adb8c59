/* wire.c -- growth and compaction of struct frame_buf (see wire.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "core/wire.h"

int frame_buf_init(struct frame_buf *fb, size_t cap)
{
	fb->data = malloc(cap);
	if (!fb->data)
		return -ENOMEM;
	fb->start = fb->len = 0;
	fb->cap = cap;
	return 0;
}

void frame_buf_deinit(struct frame_buf *fb)
{
	free(fb->data);
	fb->data = NULL;
	fb->start = fb->len = fb->cap = 0;
}

static int grow(struct frame_buf *fb, size_t need)
{
	size_t cap = fb->cap ? fb->cap : 512;
	while (cap < need)
		cap *= 2;
	uint8_t *d = realloc(fb->data, cap);
	if (!d)
		return -ENOMEM;
	fb->data = d;
	fb->cap = cap;
	return 0;
}

int frame_buf_room(struct frame_buf *fb, size_t min_room, uint8_t **p, size_t *room)
{
	if (fb->start > 0) { /* drop what was consumed */
		size_t rest = fb->len - fb->start;
		memmove(fb->data, fb->data + fb->start, rest);
		fb->len = rest;
		fb->start = 0;
	}
	if (fb->cap - fb->len < min_room && grow(fb, fb->len + min_room) < 0)
		return -ENOMEM;
	*p = fb->data + fb->len;
	*room = fb->cap - fb->len;
	return 0;
}

int frame_buf_reserve(struct frame_buf *fb, size_t n)
{
	if (fb->cap - fb->len >= n)
		return 0;
	return grow(fb, fb->len + n);
}

int frame_append(struct frame_buf *out, const uint8_t *msg, size_t len)
{
	if (frame_buf_reserve(out, len + 2) < 0)
		return -ENOMEM;
	out->data[out->len] = (uint8_t)(len >> 8);
	out->data[out->len + 1] = (uint8_t)len;
	memcpy(out->data + out->len + 2, msg, len);
	out->len += len + 2;
	return 0;
}
