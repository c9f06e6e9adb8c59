/* rand.c -- block refill of struct rnd from getrandom(2). */
#include <sys/random.h>
#include <errno.h>
#include <stdlib.h>
#include "core/rand.h"

void rnd_refill(struct rnd *r)
{
	size_t got = 0;
	while (got < sizeof(r->buf)) {
		ssize_t n = getrandom(r->buf + got, sizeof(r->buf) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			abort(); /* Linux >= 3.17 always has it; without it IDs would be predictable */
		}
		got += (size_t)n;
	}
	r->pos = 0;
}

void rnd_init(struct rnd *r)
{
	rnd_refill(r);
}
