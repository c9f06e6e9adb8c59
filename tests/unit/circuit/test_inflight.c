/* test_inflight.c -- src/circuit/inflight.c: ID choice (random, unique, retried
 * on collision, ERR_FULL/ERR_NOID), lookup, backward-shift deletion checked
 * against a reference model, abandoned IDs, draining. IDs are forced by
 * filling struct rnd's buffer (rnd_feed in test.h). */
#include "test.h"
#include "circuit/inflight.h"
#include "core/err.h"

/* Distinct non-NULL values; never dereferenced. */
static char pool[4096];
#define VAL(i) ((void *)&pool[(i) % sizeof(pool)])

static void init_rejects_bad_caps(void **state)
{
	(void)state;
	struct inflight t;
	assert_int_equal(inflight_init(&t, 0), -EINVAL);
	assert_int_equal(inflight_init(&t, 32769), -EINVAL);

	const uint32_t caps[] = {1, 2, 7, 8, 9, 1000, 32768};
	for (size_t k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
		assert_int_equal(inflight_init(&t, caps[k]), 0);
		uint32_t size = t.mask + 1;
		assert_int_equal(size & t.mask, 0);        /* a power of two */
		assert_true(size >= 2 * caps[k]);          /* probes stay short */
		assert_int_equal(t.cap, caps[k]);
		assert_int_equal(t.count, 0);
		assert_false(inflight_full(&t));
		inflight_deinit(&t);
		assert_null(t.slots);
	}
}

static void add_get_del_real_random(void **state)
{
	(void)state;
	struct inflight t;
	struct rnd r;
	rnd_init(&r);
	assert_int_equal(inflight_init(&t, 1000), 0);
	static bool used[65536];
	memset(used, 0, sizeof(used));
	uint16_t ids[1000];
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(inflight_add(&t, &r, VAL(i), &ids[i]), 0);
		assert_false(used[ids[i]]); /* unique on the channel */
		used[ids[i]] = true;
		assert_int_equal(t.count, (uint32_t)i + 1);
	}
	assert_true(inflight_full(&t));
	for (int i = 0; i < 1000; i++)
		assert_ptr_equal(inflight_get(&t, ids[i]), VAL(i));
	/* delete the even ones; the odd ones must stay findable */
	for (int i = 0; i < 1000; i += 2) {
		assert_ptr_equal(inflight_del(&t, ids[i]), VAL(i));
		assert_null(inflight_get(&t, ids[i]));
		assert_null(inflight_del(&t, ids[i])); /* twice: nothing */
	}
	assert_int_equal(t.count, 500);
	for (int i = 1; i < 1000; i += 2)
		assert_ptr_equal(inflight_get(&t, ids[i]), VAL(i));
	/* an ID never handed out is not there */
	for (uint32_t id = 0; id < 65536; id++)
		if (!used[id])
			assert_null(inflight_get(&t, (uint16_t)id));
	inflight_deinit(&t);
}

/* IDs drawn from the real generator are not a constant or a counter. */
static void ids_look_random(void **state)
{
	(void)state;
	struct inflight t;
	struct rnd r;
	rnd_init(&r);
	assert_int_equal(inflight_init(&t, 64), 0);
	uint16_t prev = 0, id = 0;
	int sequential = 0, high = 0;
	for (int i = 0; i < 64; i++) {
		assert_int_equal(inflight_add(&t, &r, VAL(i), &id), 0);
		if (i > 0 && id == (uint16_t)(prev + 1))
			sequential++;
		if (id & 0x8000)
			high++;
		prev = id;
	}
	assert_true(sequential < 4);
	assert_true(high > 8 && high < 56); /* both halves of the ID space are used */
	inflight_deinit(&t);
}

static void full_at_cap(void **state)
{
	(void)state;
	struct inflight t;
	struct rnd r;
	const uint16_t ids[] = {10, 20, 30, 40, 50, 60};
	rnd_feed(&r, ids, 6);
	assert_int_equal(inflight_init(&t, 4), 0);
	uint16_t id;
	for (int i = 0; i < 4; i++) {
		assert_int_equal(inflight_add(&t, &r, VAL(i), &id), 0);
		assert_int_equal(id, ids[i]);
	}
	assert_true(inflight_full(&t));
	id = 0xdead;
	assert_int_equal(inflight_add(&t, &r, VAL(9), &id), ERR_FULL);
	assert_int_equal(id, 0xdead);     /* untouched */
	assert_int_equal(t.count, 4);
	assert_int_equal(r.pos, 8);       /* no ID was drawn for nothing */
	assert_null(inflight_get(&t, 50));

	assert_ptr_equal(inflight_del(&t, 20), VAL(1));
	assert_false(inflight_full(&t));
	assert_int_equal(inflight_add(&t, &r, VAL(9), &id), 0);
	assert_int_equal(id, 50);
	assert_ptr_equal(inflight_get(&t, 50), VAL(9));
	inflight_deinit(&t);
}

/* Every draw collides with an ID in use: ERR_NOID after exactly
 * INFLIGHT_ID_TRIES draws, table unchanged; one fresh draw among them wins. */
static void noid_when_crowded(void **state)
{
	(void)state;
	struct inflight t;
	struct rnd r;
	uint16_t draws[1 + INFLIGHT_ID_TRIES + INFLIGHT_ID_TRIES];
	draws[0] = 0x1234;
	for (int i = 1; i <= INFLIGHT_ID_TRIES; i++)
		draws[i] = 0x1234;
	for (int i = 0; i < INFLIGHT_ID_TRIES - 1; i++)
		draws[1 + INFLIGHT_ID_TRIES + i] = 0x1234;
	draws[2 * INFLIGHT_ID_TRIES] = 0x4321; /* the last allowed draw is free */
	rnd_feed(&r, draws, sizeof(draws) / sizeof(draws[0]));

	assert_int_equal(inflight_init(&t, 2), 0);
	uint16_t id;
	assert_int_equal(inflight_add(&t, &r, VAL(1), &id), 0);
	assert_int_equal(id, 0x1234);

	id = 0xdead;
	assert_int_equal(inflight_add(&t, &r, VAL(2), &id), ERR_NOID);
	assert_int_equal(id, 0xdead);
	assert_int_equal(r.pos, 2 * (1 + INFLIGHT_ID_TRIES));
	assert_int_equal(t.count, 1);
	assert_ptr_equal(inflight_get(&t, 0x1234), VAL(1)); /* not overwritten */

	assert_int_equal(inflight_add(&t, &r, VAL(3), &id), 0);
	assert_int_equal(id, 0x4321);
	assert_int_equal(r.pos, 2 * (1 + 2 * INFLIGHT_ID_TRIES));
	assert_ptr_equal(inflight_get(&t, 0x4321), VAL(3));
	assert_ptr_equal(inflight_get(&t, 0x1234), VAL(1));
	inflight_deinit(&t);
}

/* With a tiny table, several crowded IDs: each draw that is in use is skipped. */
static void collision_skips_to_next_draw(void **state)
{
	(void)state;
	struct inflight t;
	struct rnd r;
	/* cap 3 -> 16 slots; 5, 21, 37 share home slot 5 */
	const uint16_t draws[] = {5, 21, 5, 21, 37};
	rnd_feed(&r, draws, 5);
	assert_int_equal(inflight_init(&t, 3), 0);
	uint16_t a, b, c;
	assert_int_equal(inflight_add(&t, &r, VAL(1), &a), 0);
	assert_int_equal(inflight_add(&t, &r, VAL(2), &b), 0);
	assert_int_equal(inflight_add(&t, &r, VAL(3), &c), 0);
	assert_int_equal(a, 5);
	assert_int_equal(b, 21);
	assert_int_equal(c, 37);
	assert_int_equal(r.pos, 10);
	assert_ptr_equal(inflight_get(&t, 5), VAL(1));
	assert_ptr_equal(inflight_get(&t, 21), VAL(2));
	assert_ptr_equal(inflight_get(&t, 37), VAL(3));
	assert_null(inflight_get(&t, 53)); /* same home, absent */
	inflight_deinit(&t);
}

/* Add ids in order (forced), return the table. */
static void add_forced(struct inflight *t, struct rnd *r, const uint16_t *ids, size_t n)
{
	rnd_feed(r, ids, n);
	for (size_t i = 0; i < n; i++) {
		uint16_t id;
		assert_int_equal(inflight_add(t, r, VAL(ids[i]), &id), 0);
		assert_int_equal(id, ids[i]);
	}
}

/* Probe runs that wrap around the end of the table, with entries of several
 * homes interleaved; deleting any one keeps every other findable. */
static void delete_keeps_wrapped_runs(void **state)
{
	(void)state;
	/* cap 8 -> 16 slots (mask 15). Homes: 14,14,15,15,0,14,1,0 -> the run
	 * covers slots 14,15,0,1,2,3,4,5 after wrapping. */
	const uint16_t ids[] = {14, 30, 15, 31, 16, 46, 17, 32};
	const size_t n = sizeof(ids) / sizeof(ids[0]);
	for (size_t victim = 0; victim < n; victim++) {
		struct inflight t;
		struct rnd r;
		assert_int_equal(inflight_init(&t, 8), 0);
		assert_int_equal(t.mask, 15);
		add_forced(&t, &r, ids, n);
		assert_ptr_equal(inflight_del(&t, ids[victim]), VAL(ids[victim]));
		for (size_t k = 0; k < n; k++) {
			if (k == victim)
				assert_null(inflight_get(&t, ids[k]));
			else
				assert_ptr_equal(inflight_get(&t, ids[k]), VAL(ids[k]));
		}
		/* then delete the rest in a rotated order, checking after each */
		for (size_t s = 1; s < n; s++) {
			size_t k = (victim + s) % n;
			assert_ptr_equal(inflight_del(&t, ids[k]), VAL(ids[k]));
			for (size_t m = s + 1; m < n; m++) {
				size_t o = (victim + m) % n;
				assert_ptr_equal(inflight_get(&t, ids[o]), VAL(ids[o]));
			}
		}
		assert_int_equal(t.count, 0);
		for (uint32_t i = 0; i <= t.mask; i++)
			assert_null(t.slots[i].val);
		inflight_deinit(&t);
	}
}

/* The reference model of the randomised test. */
struct model {
	void *val[65536];
	bool gone[65536];
	uint16_t live[32768]; /* IDs in use, unordered */
	uint32_t n_live;
};

static void model_remove(struct model *m, uint16_t id)
{
	for (uint32_t i = 0; i < m->n_live; i++) {
		if (m->live[i] == id) {
			m->live[i] = m->live[--m->n_live];
			m->val[id] = NULL;
			return;
		}
	}
	fail_msg("id %u not live in the model", id);
}

/* Thousands of random adds, deletes, abandons, take_gone and lookups on IDs
 * drawn from a narrow domain (id = offset + stride * k, k < range) so that
 * probe runs are long, wrap around and interleave, and draws collide. */
static void randomised(uint32_t cap, uint32_t range, uint32_t stride, uint32_t offset, int ops, uint64_t seed)
{
	static struct model m;
	memset(&m, 0, sizeof(m));
	struct inflight t;
	static struct rnd r;
	assert_int_equal(inflight_init(&t, cap), 0);
	uint64_t s = seed;
	uint32_t seq = 1;
	uint32_t n_full = 0, n_noid = 0, n_add = 0, n_del = 0;

	for (int op = 0; op < ops; op++) {
		uint32_t p = xr_below(&s, 100);
		if (p < 50) {
			uint16_t draws[INFLIGHT_ID_TRIES];
			for (int i = 0; i < INFLIGHT_ID_TRIES; i++)
				draws[i] = (uint16_t)(offset + stride * xr_below(&s, range));
			rnd_feed(&r, draws, INFLIGHT_ID_TRIES);
			int expect_at = -1;
			for (int i = 0; i < INFLIGHT_ID_TRIES && expect_at < 0; i++)
				if (!m.val[draws[i]])
					expect_at = i;
			void *v = (void *)(uintptr_t)(seq++ * 8);
			uint16_t id = 0;
			int rc = inflight_add(&t, &r, v, &id);
			if (m.n_live >= cap) {
				assert_int_equal(rc, ERR_FULL);
				n_full++;
			} else if (expect_at < 0) {
				assert_int_equal(rc, ERR_NOID);
				n_noid++;
			} else {
				assert_int_equal(rc, 0);
				assert_int_equal(id, draws[expect_at]);
				assert_int_equal(r.pos, 2 * (uint32_t)(expect_at + 1));
				m.val[id] = v;
				m.gone[id] = false;
				m.live[m.n_live++] = id;
				n_add++;
			}
		} else if (p < 85 && m.n_live > 0) {
			uint16_t id = m.live[xr_below(&s, m.n_live)];
			void *want = m.val[id];
			if (p < 70) {
				assert_ptr_equal(inflight_del(&t, id), want);
			} else {
				assert_ptr_equal(inflight_abandon(&t, id), want);
				m.gone[id] = true;
			}
			model_remove(&m, id);
			n_del++;
		} else {
			uint16_t id = (uint16_t)(offset + stride * xr_below(&s, range));
			if (!m.val[id]) {
				assert_null(inflight_del(&t, id));
				assert_null(inflight_abandon(&t, id)); /* no entry: no mark */
			}
			assert_int_equal(inflight_take_gone(&t, id), m.gone[id]);
			m.gone[id] = false;
		}
		assert_int_equal(t.count, m.n_live);
		assert_int_equal(inflight_full(&t), m.n_live >= cap);
		for (uint32_t i = 0; i < m.n_live; i++)
			assert_ptr_equal(inflight_get(&t, m.live[i]), m.val[m.live[i]]);
		if (op % 97 == 0) {
			for (uint32_t k = 0; k < range && k < 4096; k++) {
				uint16_t id = (uint16_t)(offset + stride * k);
				assert_ptr_equal(inflight_get(&t, id), m.val[id]);
			}
		}
	}
	/* the run exercised what it meant to */
	assert_true(n_add > (uint32_t)ops / 10);
	assert_true(n_del > (uint32_t)ops / 10);
	if (range <= 2 * cap)
		assert_true(n_full > 0);
	if (range == cap + 1)
		assert_true(n_noid > 0);

	/* drain: everything comes back exactly once */
	uint32_t left = m.n_live;
	for (uint32_t i = 0; i < left; i++) {
		void *v = inflight_pop_any(&t);
		assert_non_null(v);
		bool found = false;
		for (uint32_t k = 0; k < m.n_live; k++) {
			if (m.val[m.live[k]] == v) {
				model_remove(&m, m.live[k]);
				found = true;
				break;
			}
		}
		assert_true(found);
		for (uint32_t k = 0; k < m.n_live; k++)
			assert_ptr_equal(inflight_get(&t, m.live[k]), m.val[m.live[k]]);
	}
	assert_null(inflight_pop_any(&t));
	assert_int_equal(t.count, 0);
	inflight_deinit(&t);
}

static void randomised_one_slot(void **state)
{
	(void)state;
	randomised(1, 4, 1, 0, 5000, 1);
}

static void randomised_dense(void **state)
{
	(void)state;
	randomised(8, 40, 1, 0, 20000, 2);
}

static void randomised_one_home(void **state)
{
	(void)state;
	/* all IDs share home slot 13 of 16: one long run that wraps */
	randomised(8, 24, 16, 13, 20000, 3);
}

static void randomised_two_homes_wrapping(void **state)
{
	(void)state;
	/* cap 6 -> 16 slots; stride 8, offset 15: homes alternate 15 and 7 */
	randomised(6, 30, 8, 15, 20000, 4);
}

static void randomised_medium(void **state)
{
	(void)state;
	randomised(100, 600, 1, 0, 20000, 5);
}

static void randomised_wide(void **state)
{
	(void)state;
	randomised(3000, 65536, 1, 0, 20000, 6);
}

static void randomised_noid(void **state)
{
	(void)state;
	/* domain barely larger than the cap: ERR_NOID happens */
	randomised(12, 13, 1, 0, 20000, 7);
}

/* inflight_clear makes an emptied table as new for the next UDP socket:
 * the IDs given up on the old one are forgotten, every ID can be handed out
 * again, and a table that gave none up is left as it is. */
static void clear_for_reuse(void **state)
{
	(void)state;
	struct inflight t;
	struct rnd r;
	assert_int_equal(inflight_init(&t, 8), 0);
	const uint16_t ids[] = {7, 0xffff, 7};
	rnd_feed(&r, ids, 3);
	uint16_t a, b;
	assert_int_equal(inflight_add(&t, &r, VAL(1), &a), 0);
	assert_int_equal(inflight_add(&t, &r, VAL(2), &b), 0);
	assert_false(t.has_gone);
	assert_ptr_equal(inflight_del(&t, a), VAL(1));
	assert_false(t.has_gone); /* answered: nothing to forget */
	assert_ptr_equal(inflight_abandon(&t, b), VAL(2));
	assert_true(t.has_gone);
	assert_int_equal(t.count, 0);
	inflight_clear(&t);
	assert_false(t.has_gone);
	assert_false(inflight_take_gone(&t, 0xffff)); /* the old socket's late answer is bogus here */
	for (uint32_t id = 0; id < 65536; id++)
		assert_null(inflight_get(&t, (uint16_t)id));
	assert_int_equal(inflight_add(&t, &r, VAL(3), &a), 0); /* the same ID again */
	assert_int_equal(a, 7);
	assert_ptr_equal(inflight_get(&t, 7), VAL(3));
	assert_ptr_equal(inflight_pop_any(&t), VAL(3));
	inflight_deinit(&t);
}

/* Late answers (abandoned IDs) are told from bogus ones, once. */
static void abandon_and_take_gone(void **state)
{
	(void)state;
	struct inflight t;
	struct rnd r;
	const uint16_t ids[] = {100, 200, 300, 100};
	rnd_feed(&r, ids, 4);
	assert_int_equal(inflight_init(&t, 4), 0);
	uint16_t a, b, c;
	assert_int_equal(inflight_add(&t, &r, VAL(1), &a), 0);
	assert_int_equal(inflight_add(&t, &r, VAL(2), &b), 0);
	assert_int_equal(inflight_add(&t, &r, VAL(3), &c), 0);

	assert_false(inflight_take_gone(&t, a)); /* in flight, not gone */
	assert_ptr_equal(inflight_abandon(&t, a), VAL(1));
	assert_null(inflight_get(&t, a));
	assert_int_equal(t.count, 2);
	assert_true(inflight_take_gone(&t, a));  /* a late answer */
	assert_false(inflight_take_gone(&t, a)); /* a second one is bogus */

	assert_ptr_equal(inflight_del(&t, b), VAL(2)); /* answered normally */
	assert_false(inflight_take_gone(&t, b));
	assert_false(inflight_take_gone(&t, 4242)); /* never used */

	assert_null(inflight_abandon(&t, 4242)); /* nothing to abandon: no mark */
	assert_false(inflight_take_gone(&t, 4242));

	/* abandoned, then the ID is handed out again: the mark goes */
	assert_ptr_equal(inflight_abandon(&t, c), VAL(3));
	assert_ptr_equal(inflight_abandon(&t, 0), NULL);
	uint16_t d;
	const uint16_t again[] = {300};
	rnd_feed(&r, again, 1);
	assert_int_equal(inflight_add(&t, &r, VAL(4), &d), 0);
	assert_int_equal(d, 300);
	assert_false(inflight_take_gone(&t, 300));
	assert_ptr_equal(inflight_get(&t, 300), VAL(4));

	/* neighbouring bits of the bitmap are independent */
	const uint16_t nb[] = {0x0f00, 0x0f01, 0x0f07};
	add_forced(&t, &r, nb, 3);
	assert_non_null(inflight_abandon(&t, 0x0f01));
	assert_false(inflight_take_gone(&t, 0x0f00));
	assert_false(inflight_take_gone(&t, 0x0f02));
	assert_true(inflight_take_gone(&t, 0x0f01));
	assert_ptr_equal(inflight_get(&t, 0x0f00), VAL(0x0f00));
	assert_ptr_equal(inflight_get(&t, 0x0f07), VAL(0x0f07));
	inflight_deinit(&t);
}

static void pop_any_drains(void **state)
{
	(void)state;
	struct inflight t;
	struct rnd r;
	rnd_init(&r);
	assert_int_equal(inflight_init(&t, 300), 0);
	assert_null(inflight_pop_any(&t));
	static bool seen[300];
	memset(seen, 0, sizeof(seen));
	uint16_t id;
	for (int i = 0; i < 300; i++)
		assert_int_equal(inflight_add(&t, &r, &pool[i], &id), 0);
	for (int i = 0; i < 300; i++) {
		char *v = inflight_pop_any(&t);
		assert_non_null(v);
		ptrdiff_t k = v - pool;
		assert_true(k >= 0 && k < 300);
		assert_false(seen[k]);
		seen[k] = true;
		assert_int_equal(t.count, 299 - (uint32_t)i);
	}
	assert_null(inflight_pop_any(&t));
	for (uint32_t i = 0; i <= t.mask; i++)
		assert_null(t.slots[i].val);
	/* usable again after draining */
	assert_int_equal(inflight_add(&t, &r, VAL(7), &id), 0);
	assert_ptr_equal(inflight_get(&t, id), VAL(7));
	inflight_deinit(&t);
}

/* Entries added between pops (anywhere, also before where the last pop
 * was) still come out, each exactly once. */
static void pop_any_with_adds_between(void **state)
{
	(void)state;
	struct inflight t;
	struct rnd r;
	rnd_init(&r);
	assert_int_equal(inflight_init(&t, 300), 0);
	static bool seen[300];
	memset(seen, 0, sizeof(seen));
	uint16_t id;
	for (int i = 0; i < 200; i++)
		assert_int_equal(inflight_add(&t, &r, &pool[i], &id), 0);
	int popped = 0;
	for (; popped < 150; popped++) {
		char *v = inflight_pop_any(&t);
		assert_non_null(v);
		assert_false(seen[v - pool]);
		seen[v - pool] = true;
	}
	for (int i = 200; i < 300; i++)
		assert_int_equal(inflight_add(&t, &r, &pool[i], &id), 0);
	for (char *v; (v = inflight_pop_any(&t)); popped++) {
		assert_false(seen[v - pool]);
		seen[v - pool] = true;
	}
	assert_int_equal(popped, 300);
	assert_int_equal(t.count, 0);
	inflight_deinit(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(init_rejects_bad_caps),
		cmocka_unit_test(add_get_del_real_random),
		cmocka_unit_test(ids_look_random),
		cmocka_unit_test(full_at_cap),
		cmocka_unit_test(noid_when_crowded),
		cmocka_unit_test(collision_skips_to_next_draw),
		cmocka_unit_test(delete_keeps_wrapped_runs),
		cmocka_unit_test(randomised_one_slot),
		cmocka_unit_test(randomised_dense),
		cmocka_unit_test(randomised_one_home),
		cmocka_unit_test(randomised_two_homes_wrapping),
		cmocka_unit_test(randomised_medium),
		cmocka_unit_test(randomised_wide),
		cmocka_unit_test(randomised_noid),
		cmocka_unit_test(abandon_and_take_gone),
		cmocka_unit_test(clear_for_reuse),
		cmocka_unit_test(pop_any_drains),
		cmocka_unit_test(pop_any_with_adds_between),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
