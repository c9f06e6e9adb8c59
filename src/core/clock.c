/* clock.c -- calibration of the TSC clock (see clock.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "core/clock.h"

uint64_t clock_tsc0, clock_us0, clock_mult;

#define CALIBRATE_NS 5000000ull

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t clock_us_slow(void)
{
	return mono_ns() / 1000;
}

/* The kernel says whether it trusts the TSC: it picks it as clocksource
 * only when it is invariant and in step on every CPU. */
static bool kernel_uses_tsc(void)
{
	char src[32] = "";
	FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
	if (!f)
		return false;
	bool ok = fgets(src, sizeof(src), f) && strncmp(src, "tsc", 3) == 0 && (src[3] == '\n' || src[3] == '\0');
	fclose(f);
	return ok;
}

void clock_init(void)
{
#if defined(__x86_64__)
	if (!kernel_uses_tsc())
		return;
	uint64_t n0 = mono_ns(), t0 = __rdtsc(), n1, t1;
	do {
		n1 = mono_ns();
		t1 = __rdtsc();
	} while (n1 - n0 < CALIBRATE_NS);
	if (t1 <= t0)
		return;
	/* ticks per us = (t1 - t0) / ((n1 - n0) / 1000); mult = 2^32 / that */
	__extension__ typedef unsigned __int128 u128;
	uint64_t mult = (uint64_t)((((u128)(n1 - n0)) << 32) / ((u128)(t1 - t0) * 1000));
	if (!mult)
		return;
	clock_tsc0 = t0;
	clock_us0 = n0 / 1000;
	clock_mult = mult;
#endif
}
