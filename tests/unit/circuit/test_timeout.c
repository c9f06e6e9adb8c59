/* test_timeout.c -- src/circuit/timeout.h: fixed-delay FIFO deadline queues
 * driven by a fake clock (a plain uint64_t "now" passed in). */
#include "test.h"
#include "circuit/timeout.h"

struct item {
	int n;
	struct tq_entry te;
};

static int pop_n(struct tq *q, uint64_t now)
{
	struct tq_entry *e = tq_pop_expired(q, now);
	if (!e)
		return -1;
	assert_false(tq_entry_queued(e));
	return tq_container(e, struct item, te)->n;
}

static void empty_queue(void **state)
{
	(void)state;
	struct tq q;
	tq_init(&q, 1000);
	assert_true(tq_empty(&q));
	assert_int_equal(tq_next_ms(&q), UINT64_MAX);
	assert_null(tq_pop_expired(&q, 0));
	assert_null(tq_pop_expired(&q, UINT64_MAX)); /* the sentinel never expires */
	assert_true(tq_empty(&q));
}

static void fifo_order_and_exact_boundary(void **state)
{
	(void)state;
	struct tq q;
	struct item a = {.n = 1}, b = {.n = 2}, c = {.n = 3};
	uint64_t now = 5000; /* the fake clock */
	tq_init(&q, 1000);
	assert_false(tq_entry_queued(&a.te));

	tq_add(&q, &a.te, now);
	now += 10;
	tq_add(&q, &b.te, now);
	now += 10;
	tq_add(&q, &c.te, now);
	assert_true(tq_entry_queued(&a.te));
	assert_false(tq_empty(&q));
	assert_int_equal(a.te.deadline_ms, 6000);
	assert_int_equal(b.te.deadline_ms, 6010);
	assert_int_equal(c.te.deadline_ms, 6020);
	assert_int_equal(tq_next_ms(&q), 6000);

	assert_int_equal(pop_n(&q, 5999), -1);  /* one ms early */
	assert_int_equal(tq_next_ms(&q), 6000); /* nothing changed */
	assert_int_equal(pop_n(&q, 6000), 1);   /* due exactly now */
	assert_int_equal(pop_n(&q, 6000), -1);
	assert_int_equal(tq_next_ms(&q), 6010);
	assert_int_equal(pop_n(&q, 6009), -1);
	assert_int_equal(pop_n(&q, 6010), 2);
	assert_int_equal(tq_next_ms(&q), 6020);
	/* late: everything overdue comes out, oldest first */
	assert_int_equal(pop_n(&q, 1000000), 3);
	assert_int_equal(pop_n(&q, 1000000), -1);
	assert_true(tq_empty(&q));
	assert_int_equal(tq_next_ms(&q), UINT64_MAX);
}

static void same_deadline_keeps_insertion_order(void **state)
{
	(void)state;
	struct tq q;
	struct item it[8];
	tq_init(&q, 50);
	for (int i = 0; i < 8; i++) {
		memset(&it[i], 0, sizeof(it[i]));
		it[i].n = i;
		tq_add(&q, &it[i].te, 100);
	}
	assert_int_equal(tq_next_ms(&q), 150);
	for (int i = 0; i < 8; i++)
		assert_int_equal(pop_n(&q, 150), i);
	assert_true(tq_empty(&q));
}

static void remove_from_middle_head_tail(void **state)
{
	(void)state;
	struct tq q;
	struct item it[5];
	tq_init(&q, 100);
	for (int i = 0; i < 5; i++) {
		memset(&it[i], 0, sizeof(it[i]));
		it[i].n = i;
		tq_add(&q, &it[i].te, (uint64_t)i); /* deadlines 100..104 */
	}
	tq_remove(&it[2].te); /* middle */
	assert_false(tq_entry_queued(&it[2].te));
	tq_remove(&it[2].te); /* twice: harmless */
	assert_int_equal(tq_next_ms(&q), 100);

	tq_remove(&it[0].te); /* head: next deadline moves on */
	assert_int_equal(tq_next_ms(&q), 101);

	tq_remove(&it[4].te); /* tail, then append after it */
	struct item late = {.n = 9};
	tq_add(&q, &late.te, 10);

	assert_int_equal(pop_n(&q, 200), 1);
	assert_int_equal(pop_n(&q, 200), 3);
	assert_int_equal(pop_n(&q, 200), 9);
	assert_int_equal(pop_n(&q, 200), -1);
	assert_true(tq_empty(&q));

	/* removing the only entry empties the queue */
	tq_add(&q, &it[0].te, 0);
	tq_remove(&it[0].te);
	assert_true(tq_empty(&q));
	assert_int_equal(tq_next_ms(&q), UINT64_MAX);

	/* an entry that was never queued */
	struct item never = {.n = 7};
	tq_remove(&never.te);
	assert_false(tq_entry_queued(&never.te));
}

static void readd_moves_to_tail(void **state)
{
	(void)state;
	struct tq q;
	struct item a = {.n = 1}, b = {.n = 2}, c = {.n = 3};
	tq_init(&q, 30);
	tq_add(&q, &a.te, 0);
	tq_add(&q, &b.te, 0);
	tq_add(&q, &c.te, 0);
	tq_add(&q, &a.te, 5); /* activity on a: its deadline is pushed back */
	assert_int_equal(a.te.deadline_ms, 35);
	assert_int_equal(tq_next_ms(&q), 30);

	/* the list holds each entry once, in order b c a, both ways round */
	assert_ptr_equal(q.head.next, &b.te);
	assert_ptr_equal(b.te.next, &c.te);
	assert_ptr_equal(c.te.next, &a.te);
	assert_ptr_equal(a.te.next, &q.head);
	assert_ptr_equal(q.head.prev, &a.te);
	assert_ptr_equal(a.te.prev, &c.te);
	assert_ptr_equal(c.te.prev, &b.te);
	assert_ptr_equal(b.te.prev, &q.head);

	assert_int_equal(pop_n(&q, 34), 2);
	assert_int_equal(pop_n(&q, 34), 3);
	assert_int_equal(pop_n(&q, 34), -1); /* a is not due until 35 */
	assert_int_equal(pop_n(&q, 35), 1);
	assert_true(tq_empty(&q));

	/* re-adding the only entry keeps it alone */
	tq_add(&q, &a.te, 100);
	tq_add(&q, &a.te, 200);
	assert_int_equal(tq_next_ms(&q), 230);
	assert_int_equal(pop_n(&q, 230), 1);
	assert_true(tq_empty(&q));
}

static void moving_between_queues(void **state)
{
	(void)state;
	struct tq slow, fast;
	struct item a = {.n = 1}, b = {.n = 2};
	tq_init(&slow, 5000);
	tq_init(&fast, 200);
	tq_add(&slow, &a.te, 0);
	tq_add(&slow, &b.te, 0);
	tq_add(&fast, &a.te, 10); /* from slow to fast */
	assert_int_equal(tq_next_ms(&fast), 210);
	assert_int_equal(tq_next_ms(&slow), 5000);
	assert_int_equal(pop_n(&slow, 10000), 2);
	assert_true(tq_empty(&slow)); /* a left slow entirely */
	assert_int_equal(pop_n(&fast, 210), 1);
	assert_true(tq_empty(&fast));
}

static void zero_delay(void **state)
{
	(void)state;
	struct tq q;
	struct item a = {.n = 1};
	tq_init(&q, 0);
	tq_add(&q, &a.te, 77);
	assert_int_equal(tq_next_ms(&q), 77);
	assert_int_equal(pop_n(&q, 76), -1);
	assert_int_equal(pop_n(&q, 77), 1);
}

/* Random adds, re-adds, removes and expiry on an advancing fake clock against
 * a reference (deadline, order of insertion). */
static void randomised_against_model(void **state)
{
	(void)state;
	enum { N = 64 };
	struct tq q;
	struct item it[N];
	uint64_t ref_deadline[N], ref_seq[N];
	bool ref_queued[N];
	uint64_t seq = 0, now = 1000, s = 42;
	tq_init(&q, 250);
	memset(it, 0, sizeof(it));
	for (int i = 0; i < N; i++) {
		it[i].n = i;
		ref_queued[i] = false;
	}
	for (int op = 0; op < 20000; op++) {
		uint32_t p = xr_below(&s, 100);
		int i = (int)xr_below(&s, N);
		if (p < 45) {
			tq_add(&q, &it[i].te, now);
			ref_queued[i] = true;
			ref_deadline[i] = now + 250;
			ref_seq[i] = seq++;
		} else if (p < 60) {
			tq_remove(&it[i].te);
			ref_queued[i] = false;
		} else if (p < 80) {
			now += xr_below(&s, 40);
		} else {
			/* expected: the queued entry with the smallest seq, if due */
			int want = -1;
			for (int k = 0; k < N; k++)
				if (ref_queued[k] && (want < 0 || ref_seq[k] < ref_seq[want]))
					want = k;
			int got = pop_n(&q, now);
			if (want >= 0 && ref_deadline[want] <= now) {
				assert_int_equal(got, want);
				ref_queued[want] = false;
			} else {
				assert_int_equal(got, -1);
			}
		}
		int first = -1;
		for (int k = 0; k < N; k++) {
			assert_int_equal(tq_entry_queued(&it[k].te), ref_queued[k]);
			if (ref_queued[k] && (first < 0 || ref_seq[k] < ref_seq[first]))
				first = k;
		}
		assert_int_equal(tq_next_ms(&q), first < 0 ? UINT64_MAX : ref_deadline[first]);
		assert_int_equal(tq_empty(&q), first < 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(empty_queue),
		cmocka_unit_test(fifo_order_and_exact_boundary),
		cmocka_unit_test(same_deadline_keeps_insertion_order),
		cmocka_unit_test(remove_from_middle_head_tail),
		cmocka_unit_test(readd_moves_to_tail),
		cmocka_unit_test(moving_between_queues),
		cmocka_unit_test(zero_delay),
		cmocka_unit_test(randomised_against_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
