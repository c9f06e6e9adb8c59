/* scratch.h -- per-thread scratch buffers (a cached answer copied out, a
 * DNS64 synthesis, a padded answer, a DoH body, a frame being built).
 *
 * They were static __thread arrays, ~680 KB in all. glibc zeroes the whole
 * static TLS block of every thread when it starts, so each thread had all
 * of it resident whether it ever used a buffer or not -- 2 MB of a
 * one-worker dnsmux's 9 MB. Now each is malloc'ed by the thread on first
 * use (past glibc's mmap threshold: only the pages written become
 * resident) and freed when the thread ends.
 *
 * Use: `static __thread void *slot;` and `uint8_t *b = scratch(&slot, N);`,
 * N the same at every call for that slot. Out of memory aborts, as the
 * thread could not have started with the old static block either. */
#pragma once
#include <stddef.h>

void *scratch_alloc(void **slot, size_t size);

static inline void *scratch(void **slot, size_t size)
{
	void *p = *slot;
	return __builtin_expect(p != NULL, 1) ? p : scratch_alloc(slot, size);
}
