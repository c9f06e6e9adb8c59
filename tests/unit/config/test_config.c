/* test_config.c -- src/config/config.c: address lists (CONFIG.md "Address
 * list"), as listeners' acl, routes' client conditions and DNS64 use them:
 * the first element containing the address decides, '!' says no, no match
 * says no; prefixes at and off their boundaries, both families, the named
 * sets; the --acl form; each listener kind's default acl. No event loop. */
#include <arpa/inet.h>
#include "test.h"
#include "config/config.h"

static struct addr_list list_of(const char *const *elems)
{
	struct addr_list l;
	char why[200];
	memset(&l, 0, sizeof(l));
	for (; *elems; elems++)
		assert_int_equal(config_parse_addr(&l, *elems, why, sizeof(why)), 0);
	return l;
}

static bool allows(const struct addr_list *l, const char *ip)
{
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} a;
	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, ip, &a.in.sin_addr) == 1)
		a.in.sin_family = AF_INET;
	else {
		assert_int_equal(inet_pton(AF_INET6, ip, &a.in6.sin6_addr), 1);
		a.in6.sin6_family = AF_INET6;
	}
	a.in.sin_port = htons(5353); /* (the port plays no part) */
	return config_addr_match(l, &a.sa);
}

static void first_match_decides(void **state)
{
	(void)state;
	static const char *const elems[] = {"!10.1.0.0/16", "10.0.0.0/8", NULL};
	struct addr_list l = list_of(elems);
	assert_true(allows(&l, "10.0.0.1"));
	assert_true(allows(&l, "10.255.255.255"));
	assert_false(allows(&l, "10.1.2.3"));
	assert_true(allows(&l, "10.2.0.0"));
	assert_false(allows(&l, "11.0.0.1")); /* no match: no */
	assert_false(allows(&l, "::1"));      /* another family */
}

static void prefix_boundaries(void **state)
{
	(void)state;
	static const char *const elems[] = {"192.0.2.128/25", "2001:db8:0:80::/57", "198.51.100.7", "0.0.0.0/0", NULL};
	struct addr_list l = list_of(elems);
	static const char *const v4[] = {"192.0.2.128/25", NULL};
	struct addr_list l4 = list_of(v4);
	assert_true(allows(&l4, "192.0.2.128"));
	assert_true(allows(&l4, "192.0.2.255"));
	assert_false(allows(&l4, "192.0.2.127"));
	assert_false(allows(&l4, "192.0.3.128"));
	/* /0 contains every IPv4 address, and no IPv6 one */
	assert_true(allows(&l, "203.0.113.9"));
	assert_true(allows(&l, "2001:db8:0:80::1"));
	assert_true(allows(&l, "2001:db8:0:ff:ffff::1"));
	assert_false(allows(&l, "2001:db8:0:7f::1"));
	assert_false(allows(&l, "2001:db8:0:100::1"));
	/* host bits given in the prefix are not part of it */
	static const char *const host_bits[] = {"10.1.2.3/8", NULL};
	struct addr_list lh = list_of(host_bits);
	assert_true(allows(&lh, "10.200.0.1"));
}

static void named_sets(void **state)
{
	(void)state;
	static const char *const dflt[] = {"localhost", "private", NULL};
	struct addr_list l = list_of(dflt);
	assert_int_equal(l.n, 8);
	static const char *const yes[] = {"127.0.0.1", "127.255.0.9", "::1", "10.9.9.9", "172.16.0.1",
					  "172.31.255.255", "192.168.1.1", "100.64.0.1", "fd00::1", "fe80::1", NULL};
	static const char *const no[] = {"128.0.0.1", "172.32.0.1", "192.169.0.1", "100.128.0.1", "8.8.8.8",
					 "::2", "2001:db8::1", "ff02::1", NULL};
	for (const char *const *p = yes; *p; p++)
		assert_true(allows(&l, *p));
	for (const char *const *p = no; *p; p++)
		assert_false(allows(&l, *p));
	static const char *const not_private[] = {"!private", "any", NULL};
	struct addr_list np = list_of(not_private);
	assert_false(allows(&np, "10.0.0.1"));
	assert_true(allows(&np, "8.8.8.8"));
	static const char *const none[] = {"none", "any", NULL};
	struct addr_list n = list_of(none);
	assert_false(allows(&n, "127.0.0.1"));
	assert_false(allows(&n, "::1"));
}

static void bad_elements(void **state)
{
	(void)state;
	struct addr_list l;
	char why[200];
	memset(&l, 0, sizeof(l));
	assert_int_equal(config_parse_addr(&l, "10.0.0.0/33", why, sizeof(why)), -EINVAL);
	assert_int_equal(config_parse_addr(&l, "::/129", why, sizeof(why)), -EINVAL);
	assert_int_equal(config_parse_addr(&l, "10.0.0.0/", why, sizeof(why)), -EINVAL);
	assert_int_equal(config_parse_addr(&l, "example.com", why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "not an address"));
	assert_int_equal(l.n, 0);
	for (int i = 0; i < CONFIG_MAX_ADDRS; i++)
		assert_int_equal(config_parse_addr(&l, "192.0.2.1", why, sizeof(why)), 0);
	assert_int_equal(config_parse_addr(&l, "192.0.2.1", why, sizeof(why)), -EINVAL);
}

static void comma_form(void **state)
{
	(void)state;
	struct addr_list l;
	char why[200];
	assert_int_equal(config_parse_addr_csv(&l, "!127.0.0.2,localhost, 192.0.2.0/24", why, sizeof(why)), 0);
	assert_int_equal(l.n, 4);
	assert_false(allows(&l, "127.0.0.2"));
	assert_true(allows(&l, "127.0.0.1"));
	assert_true(allows(&l, "192.0.2.77"));
	assert_int_equal(config_parse_addr_csv(&l, "", why, sizeof(why)), -EINVAL);
	assert_int_equal(config_parse_addr_csv(&l, ",,", why, sizeof(why)), -EINVAL);
	assert_int_equal(config_parse_addr_csv(&l, "10.0.0.0/8,bogus", why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "bogus"));
}

static void default_acl_by_kind(void **state)
{
	(void)state;
	static const struct {
		const char *url;
		bool public_allowed;
	} rows[] = {
		{"127.0.0.1:53", false}, {"udp://127.0.0.1:53", false},  {"tcp://127.0.0.1:53", false},
		{"http://127.0.0.1:8053", false}, {"tls://127.0.0.1:853", true}, {"https://127.0.0.1:443", true},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct listen_conf lc;
		char why[200];
		assert_int_equal(config_parse_listen(rows[i].url, &lc, why, sizeof(why)), 0);
		config_default_acl(&lc);
		assert_true(allows(&lc.acl, "127.0.0.1"));
		assert_true(allows(&lc.acl, "192.168.0.10"));
		assert_int_equal(allows(&lc.acl, "203.0.113.1"), rows[i].public_allowed);
		assert_int_equal(allows(&lc.acl, "2001:db8::1"), rows[i].public_allowed);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(first_match_decides), cmocka_unit_test(prefix_boundaries),
		cmocka_unit_test(named_sets),          cmocka_unit_test(bad_elements),
		cmocka_unit_test(comma_form),          cmocka_unit_test(default_acl_by_kind),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
