/* scratch.c -- per-thread scratch buffers (see scratch.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include "core/scratch.h"

#define SCRATCH_SLOTS 16 /* buffers a thread may have (there are 9 call sites) */

struct scratch_list {
	void **slots[SCRATCH_SLOTS];
	unsigned n;
};

static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static __thread struct scratch_list list;

/* At the thread's end: free its buffers (and clear the slots, for a
 * destructor of another key that might still run after this one). */
static void release(void *arg)
{
	struct scratch_list *l = arg;
	for (unsigned i = 0; i < l->n; i++) {
		free(*l->slots[i]);
		*l->slots[i] = NULL;
	}
	l->n = 0;
}

static void make_key(void)
{
	if (pthread_key_create(&key, release) != 0) {
		fputs("dnsmux: cannot create the scratch buffers' thread key\n", stderr);
		abort();
	}
}

void *scratch_alloc(void **slot, size_t size)
{
	pthread_once(&once, make_key);
	void *p = malloc(size);
	if (!p || list.n == SCRATCH_SLOTS) {
		fprintf(stderr, "dnsmux: no memory for a %zu-byte scratch buffer\n", size);
		abort();
	}
	list.slots[list.n++] = slot;
	*slot = p;
	(void)pthread_setspecific(key, &list);
	return p;
}
