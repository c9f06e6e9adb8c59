/* clock.h -- a monotonic microsecond clock cheap enough to read several
 * times per query, for the latency histograms (obs/metrics.h). The loop's
 * own clock (uv_now) has milliseconds only, and a clock_gettime costs about
 * 40 instructions a call; where the kernel itself keeps time with the TSC
 * (clocksource "tsc": invariant and synchronised across CPUs, checked by the
 * kernel), one rdtsc and a multiply do. Elsewhere: CLOCK_MONOTONIC. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

/* set once by clock_init(), before any worker starts; read-only after */
extern uint64_t clock_tsc0;  /* TSC at calibration */
extern uint64_t clock_us0;   /* CLOCK_MONOTONIC at calibration, us */
extern uint64_t clock_mult;  /* us per tick << 32; 0: no TSC, clock_gettime */

/** Decide which source clock_us() reads, and calibrate the TSC against
 * CLOCK_MONOTONIC (about 5 ms). Call once, before other threads exist.
 * Without it clock_us() reads CLOCK_MONOTONIC. */
void clock_init(void);

/** CLOCK_MONOTONIC in microseconds. */
uint64_t clock_us_slow(void);

/** Monotonic microseconds (of one source: compare only values of this). */
static inline uint64_t clock_us(void)
{
#if defined(__x86_64__)
	if (__builtin_expect(clock_mult != 0, 1)) {
		__extension__ typedef unsigned __int128 u128;
		return clock_us0 + (uint64_t)(((u128)(__rdtsc() - clock_tsc0) * clock_mult) >> 32);
	}
#endif
	return clock_us_slow();
}

/** Microseconds from a to b; 0 when b is not later (a TSC read on another
 * CPU may be a few ticks behind). */
static inline uint64_t clock_since(uint64_t a, uint64_t b)
{
	return b > a ? b - a : 0;
}
