/* test_ratelimit.c -- policy/ratelimit.c on a clock of our own: the bucket
 * (burst, then qps; a refill never above burst), slip (every slip-th over
 * the rate; 0 never, 1 always; never on a stream), clients grouped by
 * prefix, the stream bucket apart from the datagram one, a bounded table
 * whose least recently used entry of a set gives way, and two threads
 * sharing one client's bucket without losing a take. */
#include <arpa/inet.h>
#include <pthread.h>
#include "test.h"
#include "policy/ratelimit.h"

union addr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

static union addr ip(const char *s)
{
	union addr a;
	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, s, &a.in.sin_addr) == 1) {
		a.in.sin_family = AF_INET;
	} else {
		assert_int_equal(inet_pton(AF_INET6, s, &a.in6.sin6_addr), 1);
		a.in6.sin6_family = AF_INET6;
	}
	return a;
}

static struct ratelimit_conf conf(uint32_t qps, uint32_t burst, uint32_t slip)
{
	struct ratelimit_conf c = {.qps = qps, .burst = burst, .slip = slip, .ipv4_prefix = 32, .ipv6_prefix = 64};
	return c;
}

/* takes at one instant: how many passed */
static unsigned passes(struct ratelimit *rl, const char *client, unsigned n, uint64_t now)
{
	union addr a = ip(client);
	unsigned k = 0;
	for (unsigned i = 0; i < n; i++)
		k += ratelimit_take(rl, &a.sa, false, now) == RATELIMIT_PASS;
	return k;
}

static void burst_then_rate(void **state)
{
	(void)state;
	struct ratelimit_conf c = conf(10, 20, 0);
	struct ratelimit *rl = ratelimit_new(&c, 64);
	assert_non_null(rl);
	assert_int_equal(passes(rl, "192.0.2.1", 50, 1000), 20); /* the burst */
	assert_int_equal(passes(rl, "192.0.2.1", 5, 1099), 0);   /* 0.99 tokens after 99 ms */
	assert_int_equal(passes(rl, "192.0.2.1", 5, 1100), 1);   /* 1 after 100 ms at 10 qps */
	assert_int_equal(passes(rl, "192.0.2.1", 50, 2100), 10); /* a second: 10 */
	assert_int_equal(passes(rl, "192.0.2.1", 50, 3600000), 20); /* an hour: still only the burst */
	/* a time before the last (another worker's loop behind): no refill, no harm */
	assert_int_equal(passes(rl, "192.0.2.1", 5, 3599000), 0);
	/* another client has its own bucket */
	assert_int_equal(passes(rl, "192.0.2.2", 50, 3600000), 20);
	ratelimit_free(rl);
}

static void slip_every_nth(void **state)
{
	(void)state;
	for (uint32_t slip = 0; slip <= 3; slip++) {
		struct ratelimit_conf c = conf(1, 1, slip);
		struct ratelimit *rl = ratelimit_new(&c, 64);
		union addr a = ip("198.51.100.1");
		assert_int_equal(ratelimit_take(rl, &a.sa, false, 5), RATELIMIT_PASS);
		unsigned slipped = 0, dropped = 0;
		for (int i = 0; i < 12; i++) {
			enum ratelimit_verdict v = ratelimit_take(rl, &a.sa, false, 5);
			slipped += v == RATELIMIT_SLIP;
			dropped += v == RATELIMIT_DROP;
			if (slip)
				assert_int_equal(v == RATELIMIT_SLIP, (i + 1) % slip == 0);
		}
		assert_int_equal(slipped, slip ? 12 / slip : 0);
		assert_int_equal(slipped + dropped, 12);
		/* a stream never slips: REFUSED is the frontend's answer */
		assert_int_equal(ratelimit_take(rl, &a.sa, true, 5), RATELIMIT_PASS); /* its own bucket */
		for (int i = 0; i < 4; i++)
			assert_int_equal(ratelimit_take(rl, &a.sa, true, 5), RATELIMIT_DROP);
		ratelimit_free(rl);
	}
}

static void grouped_by_prefix(void **state)
{
	(void)state;
	struct ratelimit_conf c = conf(1, 3, 0);
	c.ipv4_prefix = 24;
	struct ratelimit *rl = ratelimit_new(&c, 64);
	assert_int_equal(passes(rl, "203.0.113.1", 2, 10), 2);
	assert_int_equal(passes(rl, "203.0.113.200", 5, 10), 1); /* the same /24 */
	assert_int_equal(passes(rl, "203.0.114.1", 5, 10), 3);
	/* IPv6: /64 by default */
	assert_int_equal(passes(rl, "2001:db8:1:2::1", 2, 10), 2);
	assert_int_equal(passes(rl, "2001:db8:1:2:ffff::9", 5, 10), 1);
	assert_int_equal(passes(rl, "2001:db8:1:3::1", 5, 10), 3);
	/* no IP address: nothing to count it by */
	struct sockaddr none = {.sa_family = AF_UNSPEC};
	for (int i = 0; i < 10; i++)
		assert_int_equal(ratelimit_take(rl, &none, false, 10), RATELIMIT_PASS);
	ratelimit_free(rl);
	/* /0: every client one bucket */
	c.ipv4_prefix = 0;
	rl = ratelimit_new(&c, 64);
	assert_int_equal(passes(rl, "10.0.0.1", 2, 10), 2);
	assert_int_equal(passes(rl, "192.0.2.1", 5, 10), 1);
	ratelimit_free(rl);
}

static void bounded_lru_per_set(void **state)
{
	(void)state;
	struct ratelimit_conf c = conf(1, 2, 0);
	struct ratelimit *rl = ratelimit_new(&c, RATELIMIT_WAYS); /* one set */
	char name[32];
	/* RATELIMIT_WAYS clients fill it, each at its own time; the first empties its bucket */
	assert_int_equal(passes(rl, "10.0.0.0", 5, 100), 2);
	for (unsigned i = 1; i < RATELIMIT_WAYS; i++) {
		snprintf(name, sizeof(name), "10.0.0.%u", i);
		assert_int_equal(passes(rl, name, 1, 100 + i), 1);
	}
	assert_int_equal(ratelimit_count(rl), RATELIMIT_WAYS);
	/* the first comes back (still over its rate): now the most recent */
	assert_int_equal(passes(rl, "10.0.0.0", 1, 200), 0);
	/* a new one takes the place of the least recently used: 10.0.0.1 */
	assert_int_equal(passes(rl, "10.0.0.99", 1, 201), 1);
	assert_int_equal(ratelimit_count(rl), RATELIMIT_WAYS);
	assert_int_equal(passes(rl, "10.0.0.0", 1, 201), 0);    /* remembered: still empty */
	assert_int_equal(passes(rl, "10.0.0.1", 3, 202), 2);    /* forgotten: a fresh bucket */
	/* a flood of new sources: the table stays its size */
	for (unsigned i = 0; i < 10000; i++) {
		snprintf(name, sizeof(name), "172.16.%u.%u", i / 256, i % 256);
		(void)passes(rl, name, 1, 300);
	}
	assert_int_equal(ratelimit_count(rl), RATELIMIT_WAYS);
	ratelimit_free(rl);
	/* the full size: sets of RATELIMIT_WAYS, never more entries */
	rl = ratelimit_new(&c, RATELIMIT_ENTRIES);
	for (unsigned i = 0; i < 3 * RATELIMIT_ENTRIES; i++) {
		union addr a = ip("2001:db8::");
		a.in6.sin6_addr.s6_addr[4] = (uint8_t)(i >> 16);
		a.in6.sin6_addr.s6_addr[5] = (uint8_t)(i >> 8);
		a.in6.sin6_addr.s6_addr[6] = (uint8_t)i;
		(void)ratelimit_take(rl, &a.sa, false, 1000 + i / 100);
	}
	unsigned n = ratelimit_count(rl);
	assert_true(n <= RATELIMIT_ENTRIES);
	assert_true(n > RATELIMIT_ENTRIES * 9 / 10); /* and the sets are well spread */
	ratelimit_free(rl);
}

struct racer {
	struct ratelimit *rl;
	unsigned passed;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	union addr a = ip("192.0.2.50");
	for (unsigned i = 0; i < 200000; i++)
		r->passed += ratelimit_take(r->rl, &a.sa, false, 1 + i / 1000) == RATELIMIT_PASS;
	return NULL;
}

/* two workers, one client: the bucket is one, so the takes add up to
 * burst + qps x elapsed, not twice that, and none is lost to a race */
static void shared_between_threads(void **state)
{
	(void)state;
	struct ratelimit_conf c = conf(1000, 500, 0);
	struct racer r[2] = {{.rl = ratelimit_new(&c, 1024)}, {.rl = NULL}};
	r[1].rl = r[0].rl;
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	/* the clocks run 1 .. 200 ms: at most the burst and 199 ms at 1,000 qps */
	unsigned total = r[0].passed + r[1].passed;
	assert_true(total <= 500 + 199);
	assert_true(total >= 500 + 100); /* (however the two clocks interleave, the later one refills) */
	ratelimit_free(r[0].rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(burst_then_rate),     cmocka_unit_test(slip_every_nth),
		cmocka_unit_test(grouped_by_prefix),   cmocka_unit_test(bounded_lru_per_set),
		cmocka_unit_test(shared_between_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
