/* test_snapshot.c -- src/config/snapshot.c without a daemon: config_dup
 * copies everything a loaded file owns (routes with their regexes and
 * client lists, the file's strings and the fields pointing to them), so the
 * copy outlives the original; config_upstream_same is the URL (and the CA
 * file for TLS); config_carry_over keeps the listeners and threads; a
 * snapshot whose regex will not compile is refused. LeakSanitizer checks
 * that config_release frees all (make test). */
#include <errno.h>
#include <unistd.h>
#include "test.h"
#include "config/config.h"
#include "config/snapshot.h"
#include "route/route.h"

static struct config *load(const char *yaml)
{
	char path[] = "/tmp/dnsmux-test-snapshot-XXXXXX", err[2048];
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
	close(fd);
	struct config *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	config_defaults(c);
	int r = config_load_file(c, path, err, sizeof(err));
	unlink(path);
	if (r < 0)
		fail_msg("%s", err);
	assert_int_equal(config_validate(c, err, sizeof(err)), 0);
	return c;
}

static const char *FILE1 = "listen: [{url: \"127.0.0.1:5300\"}]\n"
			   "tls: {ca-file: /tmp/ca.pem}\n"
			   "pools:\n"
			   "  default: {members: [\"udp://127.0.0.1:5301\"]}\n"
			   "  shard: {members: [\"tcp://127.0.0.1:5302\"]}\n"
			   "routes:\n"
			   "  - regex: '^[ab]*\\.miek\\.nl\\.$'\n"
			   "    pool: shard\n"
			   "  - suffix: corp.\n"
			   "    client: [10.0.0.0/8]\n"
			   "    pool: shard\n"
			   "  - suffix: .\n"
			   "    pool: default\n";

static int lookup(struct config *c, const char *name, const struct sockaddr *client)
{
	uint8_t dn[KNOT_DNAME_MAXLEN];
	assert_non_null(knot_dname_from_str(dn, name, sizeof(dn)));
	struct route_scratch *s = route_scratch_new(c->route_table);
	assert_non_null(s);
	int p = route_lookup(c->route_table, s, dn, KNOT_RRTYPE_A, client, NULL);
	route_scratch_free(s);
	return p;
}

static void dup_outlives_the_original(void **state)
{
	(void)state;
	char err[512];
	struct config *base = load(FILE1);
	struct config *copy = config_dup(base);
	assert_non_null(copy);
	assert_ptr_not_equal(copy->routes, base->routes);
	assert_ptr_not_equal(copy->routes[0].regex, base->routes[0].regex);
	assert_ptr_not_equal(copy->routes[1].clients, base->routes[1].clients);
	assert_ptr_not_equal(copy->ca_file, base->ca_file);
	config_release(base, NULL); /* the copy owns all it points to */
	assert_string_equal(copy->ca_file, "/tmp/ca.pem");
	assert_int_equal(config_build_routes(copy, err, sizeof(err)), 0);
	struct sockaddr_in ten = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000001)};
	struct sockaddr_in lo = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	int shard = config_find_pool(copy, "shard"), def = config_find_pool(copy, "default");
	assert_int_equal(lookup(copy, "ab.miek.nl.", NULL), shard);
	assert_int_equal(lookup(copy, "www.corp.", (struct sockaddr *)&ten), shard);
	assert_int_equal(lookup(copy, "www.corp.", (struct sockaddr *)&lo), def);
	config_release(copy, NULL);
}

/* config_dup copies the used entries of listens, upstreams and pools and
 * every other field, and leaves the arrays' unused tails zero (they are
 * not copied, so that their pages are never touched). */
static void dup_copies_only_the_used_entries(void **state)
{
	(void)state;
	struct config *base = load(FILE1);
	size_t nu = base->n_upstreams, nl = base->n_listens, np = base->n_pools;
	assert_true(nu == 2 && nl == 1 && np == 2);
	memset(&base->upstreams[nu], 0x5a, sizeof(base->upstreams[0])); /* junk past the used ones */
	memset(&base->listens[nl], 0x5a, sizeof(base->listens[0]));
	memset(&base->pools[np], 0x5a, sizeof(base->pools[0]));
	struct config *copy = config_dup(base);
	assert_non_null(copy);
	assert_int_equal(copy->n_upstreams, nu);
	for (size_t i = 0; i < nu; i++) {
		assert_string_equal(copy->upstreams[i].text, base->upstreams[i].text);
		assert_memory_equal(&copy->upstreams[i].addr, &base->upstreams[i].addr, sizeof(base->upstreams[i].addr));
	}
	assert_memory_equal(&copy->listens[0].addr, &base->listens[0].addr, sizeof(base->listens[0].addr));
	assert_string_equal(copy->pools[1].name, base->pools[1].name);
	assert_int_equal(copy->pools[1].n_members, base->pools[1].n_members);
	assert_int_equal(copy->threads, base->threads); /* fields between and after the arrays */
	assert_int_equal(copy->timeout_ms, base->timeout_ms);
	assert_string_equal(copy->doh_path, base->doh_path);
	const uint8_t *u = (const uint8_t *)&copy->upstreams[nu], *l = (const uint8_t *)&copy->listens[nl],
		      *p = (const uint8_t *)&copy->pools[np];
	for (size_t i = 0; i < sizeof(copy->upstreams[0]); i++)
		assert_int_equal(u[i], 0);
	for (size_t i = 0; i < sizeof(copy->listens[0]); i++)
		assert_int_equal(l[i], 0);
	for (size_t i = 0; i < sizeof(copy->pools[0]); i++)
		assert_int_equal(p[i], 0);
	memset(&base->upstreams[nu], 0, sizeof(base->upstreams[0]));
	memset(&base->listens[nl], 0, sizeof(base->listens[0]));
	memset(&base->pools[np], 0, sizeof(base->pools[0]));
	config_release(base, NULL);
	config_release(copy, NULL);
}

/* dns64: entries, their address lists and suffix, copied whole */
static void dup_copies_dns64(void **state)
{
	(void)state;
	struct config *base = load("listen: [{url: \"127.0.0.1:5300\"}]\n"
				   "pools:\n"
				   "  default: {members: [\"udp://127.0.0.1:5301\"]}\n"
				   "dns64:\n"
				   "  - prefix: 64:ff9b::/96\n"
				   "    clients: [10.0.0.0/8]\n"
				   "    mapped: [\"!10.0.0.0/8\", any]\n"
				   "  - prefix: 2001:db8:122:300::/56\n"
				   "    suffix: \"::42\"\n"
				   "    break-dnssec: true\n");
	assert_int_equal(base->n_dns64, 2);
	struct config *copy = config_dup(base);
	assert_non_null(copy);
	assert_ptr_not_equal(copy->dns64, base->dns64);
	config_release(base, NULL);
	assert_int_equal(copy->n_dns64, 2);
	assert_int_equal(copy->dns64[0].prefix_len, 96);
	assert_true(copy->dns64[0].has_clients);
	assert_int_equal(copy->dns64[0].clients.n, 1);
	assert_int_equal(copy->dns64[0].mapped.n, 2);
	assert_false(copy->dns64[0].has_exclude);
	assert_int_equal(copy->dns64[1].prefix_len, 56);
	assert_int_equal(copy->dns64[1].bits[15], 0x42);
	assert_true(copy->dns64[1].break_dnssec);
	config_release(copy, NULL);
}

static void same_upstream_is_the_url(void **state)
{
	(void)state;
	struct config *a = load(FILE1), *b = load(FILE1);
	assert_true(config_upstream_same(a, &a->upstreams[0], b, &b->upstreams[0]));
	assert_false(config_upstream_same(a, &a->upstreams[0], b, &b->upstreams[1]));
	struct upstream_conf t1, t2;
	char err[256];
	assert_int_equal(config_parse_upstream("tls://127.0.0.1:853#dns.test", &t1, err, sizeof(err)), 0);
	assert_int_equal(config_parse_upstream("tls://127.0.0.1:853#other.test", &t2, err, sizeof(err)), 0);
	assert_true(config_upstream_same(a, &t1, b, &t1));
	assert_false(config_upstream_same(a, &t1, b, &t2)); /* another name to check */
	b->ca_file = "/tmp/other-ca.pem";
	assert_false(config_upstream_same(a, &t1, b, &t1)); /* another CA */
	config_release(a, NULL);
	config_release(b, NULL);
}

static void carry_over_keeps_listeners_and_threads(void **state)
{
	(void)state;
	struct config *prev = load(FILE1), *next = load(FILE1);
	char err[256];
	assert_int_equal(config_parse_listen("127.0.0.1:5400", &next->listens[0], err, sizeof(err)), 0);
	next->threads = 4;
	config_carry_over(next, prev);
	assert_string_equal(next->listens[0].text, prev->listens[0].text);
	assert_int_equal(next->threads, prev->threads);
	config_release(prev, NULL);
	config_release(next, NULL);
}

static void a_bad_regex_is_no_snapshot(void **state)
{
	(void)state;
	char err[512] = "";
	struct config *base = load(FILE1);
	free(base->routes[0].regex);
	base->routes[0].regex = strdup("^(unclosed");
	assert_null(config_snapshot(base, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "unclosed") ? err : strstr(err, "regex"));
	config_release(base, NULL);
}

/* A listener's buckets live with the snapshots: the next one shares them
 * while the rate limit is the same (the clients' state carries over), gets
 * new ones when it changes, and each table is freed once, by the release
 * of the last snapshot that has it (LeakSanitizer and ASan check both). */
static void ratelimit_tables_follow_the_snapshots(void **state)
{
	(void)state;
	char err[512];
	static const char *same = "listen: [{url: \"127.0.0.1:5300\", ratelimit: {qps: 10}}, \"127.0.0.1:5301\"]\n"
				  "pools: {default: {members: [\"udp://127.0.0.1:5302\"]}}\n";
	static const char *changed = "listen: [{url: \"127.0.0.1:5300\", ratelimit: {qps: 20}}, \"127.0.0.1:5301\"]\n"
				     "pools: {default: {members: [\"udp://127.0.0.1:5302\"]}}\n";
	struct config *b1 = load(same), *b2 = load(changed);
	assert_int_equal(b1->listens[0].rl.burst, 10); /* config_validate: burst is qps */
	assert_false(b1->listens[1].has_acl);
	assert_int_equal(b1->listens[1].acl.n, 8); /* the default: localhost, private */
	struct config *s1 = config_snapshot(b1, NULL, NULL, err, sizeof(err));
	struct config *s2 = config_snapshot(b1, NULL, s1, err, sizeof(err));
	struct config *s3 = config_snapshot(b2, NULL, s2, err, sizeof(err));
	assert_non_null(s1);
	assert_non_null(s2);
	assert_non_null(s3);
	assert_non_null(s1->listens[0].rl_table);
	assert_null(s1->listens[1].rl_table);
	assert_null(b1->listens[0].rl_table); /* (the base never has one) */
	assert_ptr_equal(s2->listens[0].rl_table, s1->listens[0].rl_table);
	assert_ptr_not_equal(s3->listens[0].rl_table, s2->listens[0].rl_table);
	config_release(s1, s2); /* shared with s2: kept */
	config_release(s2, s3); /* not with s3: freed */
	config_release(s3, NULL);
	config_release(b1, NULL);
	config_release(b2, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(dup_outlives_the_original),
		cmocka_unit_test(dup_copies_dns64),
		cmocka_unit_test(dup_copies_only_the_used_entries),
		cmocka_unit_test(same_upstream_is_the_url),
		cmocka_unit_test(carry_over_keeps_listeners_and_threads),
		cmocka_unit_test(a_bad_regex_is_no_snapshot),
		cmocka_unit_test(ratelimit_tables_follow_the_snapshots),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
