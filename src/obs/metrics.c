/* metrics.c -- summing and printing struct metrics (see metrics.h). */
#include <stdio.h>
#include "obs/metrics.h"

void metrics_format(const struct metrics *m, char *buf, size_t cap)
{
	size_t n = 0;
	buf[0] = '\0';
#define METRICS_FMT(name)                                                                                              \
	if (n < cap)                                                                                                   \
		n += (size_t)snprintf(buf + n, cap - n, "%s" #name "=%llu", n ? " " : "",                              \
				      (unsigned long long)__atomic_load_n(&m->name, __ATOMIC_RELAXED));
	METRICS_FIELDS(METRICS_FMT)
#undef METRICS_FMT
}

void metrics_sum(struct metrics *dst, const struct metrics *src)
{
#define METRICS_ADD(name) dst->name += __atomic_load_n(&src->name, __ATOMIC_RELAXED);
	METRICS_FIELDS(METRICS_ADD)
#undef METRICS_ADD
}
