/* rand.h -- unpredictable numbers for message IDs and jitter.
 *
 * Bytes come from getrandom(2) (the kernel's CSPRNG), fetched in blocks so a
 * query costs two bytes of a buffer, not a system call. One struct per worker:
 * no locking. */
#pragma once
#include <stdint.h>

#define RAND_BLOCK 4096

struct rnd {
	uint32_t pos;              /* next unused byte of buf */
	uint8_t buf[RAND_BLOCK];   /* kernel randomness, consumed front to back */
};

void rnd_init(struct rnd *r);
void rnd_refill(struct rnd *r);

static inline uint16_t rnd_u16(struct rnd *r)
{
	if (r->pos + 2 > RAND_BLOCK)
		rnd_refill(r);
	uint16_t v = (uint16_t)(r->buf[r->pos] | (r->buf[r->pos + 1] << 8));
	r->pos += 2;
	return v;
}

static inline uint32_t rnd_u32(struct rnd *r)
{
	return ((uint32_t)rnd_u16(r) << 16) | rnd_u16(r);
}
