/* test_scratch.c -- src/core/scratch.c: a slot's buffer is made on first
 * use, the same one every time after in that thread, another thread's is
 * its own, and a thread's buffers are freed when it ends (LeakSanitizer,
 * make test, would report them otherwise). */
#include <pthread.h>
#include "test.h"
#include "core/scratch.h"

static __thread void *slot_a, *slot_b;

static void *use_both(void *arg)
{
	uint8_t **out = arg;
	uint8_t *a = scratch(&slot_a, 70000), *b = scratch(&slot_b, 100);
	a[69999] = 1; /* the whole size is there (ASan) */
	b[99] = 2;
	out[0] = a;
	out[1] = b;
	out[2] = scratch(&slot_a, 70000); /* the same one again */
	return NULL;
}

static void per_thread_and_freed_at_exit(void **state)
{
	(void)state;
	uint8_t *t1[3], *t2[3];
	pthread_t a, b;
	assert_int_equal(pthread_create(&a, NULL, use_both, t1), 0);
	assert_int_equal(pthread_join(a, NULL), 0);
	assert_int_equal(pthread_create(&b, NULL, use_both, t2), 0);
	assert_int_equal(pthread_join(b, NULL), 0);
	assert_ptr_equal(t1[0], t1[2]);
	assert_ptr_equal(t2[0], t2[2]);
	assert_ptr_not_equal(t1[0], t1[1]);
	assert_null(slot_a); /* this thread has not asked */
	uint8_t *m = scratch(&slot_a, 70000);
	assert_non_null(m);
	assert_ptr_equal(scratch(&slot_a, 70000), m);
	assert_ptr_equal(slot_a, m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(per_thread_and_freed_at_exit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
