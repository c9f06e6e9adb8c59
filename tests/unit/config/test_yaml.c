/* test_yaml.c -- src/config/yaml.c, what fuzz/fuzz_yaml.c found: the
 * strings of the file (tls paths) are the config's and config_free frees
 * them, a key given twice is an error that leaves the config sound (routes:
 * twice wrote past its array), and every error is one line that starts
 * with FILE:LINE:COL -- a newline in a scalar or a key is escaped, and a
 * full buffer ends with whole lines; a second document ("---") is an error,
 * not ignored. LeakSanitizer (make test) checks the frees. No event loop. */
#include <unistd.h>
#include "test.h"
#include "config/config.h"

static struct config cfg;
static char path[] = "/tmp/dnsmux-test-yaml-XXXXXX";

static int load(const char *yaml, char *err, size_t errlen)
{
	strcpy(path, "/tmp/dnsmux-test-yaml-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
	close(fd);
	config_free(&cfg);
	config_defaults(&cfg);
	int r = config_load_file(&cfg, path, err, errlen);
	unlink(path);
	return r;
}

/* Every line of err is "FILE:LINE:COL: " and a reason. */
static void assert_lines(const char *err)
{
	size_t pl = strlen(path);
	assert_true(err[0]);
	for (const char *line = err; line;) {
		unsigned l, c;
		int n = 0;
		assert_int_equal(strncmp(line, path, pl), 0);
		assert_int_equal(sscanf(line + pl, ":%u:%u: %n", &l, &c, &n), 2);
		assert_true(n > 0 && line[pl + (size_t)n] && line[pl + (size_t)n] != '\n');
		const char *nl = strchr(line, '\n');
		line = nl ? nl + 1 : NULL;
	}
}

static void tls_paths_are_the_configs(void **state)
{
	(void)state;
	char err[1024];
	/* given twice: an error, and the first copy freed too */
	assert_int_equal(load("tls: {cert: /etc/a.pem, key: /etc/a.key, ca-file: /etc/ca.pem}\n"
			      "tls: {cert: /etc/b.pem}\n",
			      err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "tls: given twice"));
	assert_int_equal(load("tls: {cert: /etc/a.pem, key: /etc/a.key, ca-file: /etc/ca.pem}\n", err, sizeof(err)), 0);
	assert_string_equal(cfg.tls_cert, "/etc/a.pem");
	assert_string_equal(cfg.tls_key, "/etc/a.key");
	assert_string_equal(cfg.ca_file, "/etc/ca.pem");
	config_free(&cfg); /* (LeakSanitizer: nothing of them left) */
	assert_int_equal(cfg.n_strings, 0);
}

/* user: and chroot: are strings of the file; a chroot is absolute and
 * comes with a user (config_validate). */
static void user_and_chroot(void **state)
{
	(void)state;
	char err[1024];
	assert_int_equal(load("user: nobody\nchroot: /var/empty\nlisten: [127.0.0.1:53]\n"
			      "pools: {default: {members: [udp://127.0.0.1:5300]}}\n",
			      err, sizeof(err)),
			 0);
	assert_string_equal(cfg.user, "nobody");
	assert_string_equal(cfg.chroot_dir, "/var/empty");
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), 0);
	assert_int_equal(load("chroot: var/empty\nuser: nobody\nlisten: [127.0.0.1:53]\n"
			      "pools: {default: {members: [udp://127.0.0.1:5300]}}\n",
			      err, sizeof(err)),
			 0);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "not an absolute path"));
	assert_int_equal(load("chroot: /var/empty\nlisten: [127.0.0.1:53]\npools: {default: {members: [udp://127.0.0.1:5300]}}\n",
			      err, sizeof(err)),
			 0);
	assert_int_equal(config_validate(&cfg, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "needs a user"));
	assert_int_equal(load("user: [nobody]\n", err, sizeof(err)), -EINVAL);
	assert_lines(err);
}

static void routes_twice_is_an_error(void **state)
{
	(void)state;
	char err[2048];
	/* the second list, shorter than the first, was written from where
	 * the first ended: past its own array */
	int r = load("pools:\n  a: {members: [tcp://127.0.0.1:1]}\n"
		     "routes:\n  - {suffix: a., pool: a}\n  - {suffix: b., pool: a}\n  - {suffix: c., pool: a}\n"
		     "routes:\n  - {suffix: d., pool: a, client: [10.0.0.0/8], client: [any]}\n",
		     err, sizeof(err));
	assert_int_equal(r, -EINVAL);
	assert_non_null(strstr(err, "routes: given twice"));
	assert_int_equal(cfg.n_routes, 3);
	assert_lines(err);
	/* a route's client given twice: an error, the first list freed */
	r = load("pools:\n  a: {members: [tcp://127.0.0.1:1]}\n"
		 "routes:\n  - {suffix: d., pool: a, client: [10.0.0.0/8], client: [any]}\n",
		 err, sizeof(err));
	assert_int_equal(r, -EINVAL);
	assert_non_null(strstr(err, "routes[0].client: given twice"));
}

static void a_key_given_twice_is_one_error(void **state)
{
	(void)state;
	char err[1024];
	assert_int_equal(load("threads: 1\nthreads: 2\nthreads: 3\n", err, sizeof(err)), -EINVAL);
	assert_lines(err);
	/* the second and the third, once each */
	const char *p = err;
	int n = 0;
	while ((p = strstr(p, "given twice")))
		n++, p++;
	assert_int_equal(n, 2);
}

static void newlines_are_escaped(void **state)
{
	(void)state;
	char err[1024];
	assert_int_equal(load("threads: \"1\\n2\"\n\"a\\nb\": 1\nlisten:\n  - \"5\n    x\"\n", err, sizeof(err)), -EINVAL);
	assert_lines(err);
	assert_non_null(strstr(err, "'1\\n2' is not a number"));
	assert_non_null(strstr(err, "a\\nb: unknown key"));
}

static void a_full_buffer_ends_with_whole_lines(void **state)
{
	(void)state;
	char yaml[4096] = "", err[4096];
	for (int i = 0; i < 40; i++)
		snprintf(yaml + strlen(yaml), sizeof(yaml) - strlen(yaml), "key%d: 1\n", i);
	assert_int_equal(load(yaml, err, sizeof(err)), -EINVAL);
	size_t first = (size_t)(strchr(err, '\n') - err);
	/* room for the first line and 10 bytes of the second: those were
	 * written, a line of part of a file name */
	assert_int_equal(load(yaml, err, first + 1 + 10 + 1), -EINVAL);
	assert_lines(err);
	assert_int_equal(strlen(err), first);
	/* the first is cut rather than lost when not even it fits */
	assert_int_equal(load(yaml, err, 16), -EINVAL);
	assert_int_equal(strlen(err), 15);
	assert_int_equal(strncmp(err, path, 15), 0);
}

static void a_second_document_is_an_error(void **state)
{
	(void)state;
	char err[1024];
	/* what followed "---" was ignored, bad YAML included */
	assert_int_equal(load("threads: 2\n---\nthreads: nonsense\n", err, sizeof(err)), -EINVAL);
	assert_lines(err);
	assert_non_null(strstr(err, ":3:1: (top): a second YAML document"));
	assert_int_equal(load("threads: 2\n---\n[unclosed\n", err, sizeof(err)), -EINVAL);
	assert_lines(err);
	assert_non_null(strstr(err, "not YAML after the first document"));
	assert_int_equal(load("threads: 2\n...\n", err, sizeof(err)), 0); /* an end marker alone is fine */
}

static int teardown(void **state)
{
	(void)state;
	config_free(&cfg);
	return 0;
}

/* acl: and ratelimit: belong to their listener whatever the order of the
 * keys; a listener without acl: gets its kind's default from
 * config_validate (has_acl false); bad values name the line and column. */
static void listener_acl_and_ratelimit(void **state)
{
	(void)state;
	char err[2048];
	assert_int_equal(load("listen:\n"
			      "  - 127.0.0.1:5300\n"
			      "  - acl: [\"!10.1.0.0/16\", 10.0.0.0/8]\n"
			      "    ratelimit: {qps: 20, slip: 3, ipv6-prefix: 56}\n"
			      "    url: udp://127.0.0.1:5301\n"
			      "  - url: tls://127.0.0.1:8530\n"
			      "    ratelimit: {qps: 5, burst: 9, slip: 0, ipv4-prefix: 24}\n",
			      err, sizeof(err)),
			 0);
	assert_int_equal(cfg.n_listens, 3);
	assert_false(cfg.listens[0].has_acl);
	assert_int_equal(cfg.listens[0].rl.qps, 0);
	assert_true(cfg.listens[1].has_acl);
	assert_int_equal(cfg.listens[1].acl.n, 2);
	assert_true(cfg.listens[1].acl.e[0].negate);
	assert_int_equal(cfg.listens[1].rl.qps, 20);
	assert_int_equal(cfg.listens[1].rl.burst, 0); /* (config_validate makes it qps) */
	assert_int_equal(cfg.listens[1].rl.slip, 3);
	assert_int_equal(cfg.listens[1].rl.ipv4_prefix, 32);
	assert_int_equal(cfg.listens[1].rl.ipv6_prefix, 56);
	assert_int_equal(cfg.listens[2].rl.burst, 9);
	assert_int_equal(cfg.listens[2].rl.slip, 0);
	assert_int_equal(cfg.listens[2].rl.ipv4_prefix, 24);
	assert_int_equal(cfg.listens[2].rl.ipv6_prefix, 64);

	assert_int_equal(load("listen:\n"
			      "  - url: 127.0.0.1:5300\n"
			      "    acl: [10.0.0.0/33, localhost]\n"
			      "  - url: 127.0.0.1:5301\n"
			      "    acl: []\n"
			      "  - url: 127.0.0.1:5302\n"
			      "    acl: any\n"
			      "  - url: 127.0.0.1:5303\n"
			      "    ratelimit: {burst: 5}\n"
			      "  - url: 127.0.0.1:5304\n"
			      "    ratelimit: {qps: 0, sleep: 1}\n"
			      "  - url: 127.0.0.1:5305\n"
			      "    ratelimit: {qps: 5, ipv4-prefix: 33}\n",
			      err, sizeof(err)),
			 -EINVAL);
	assert_lines(err);
	assert_non_null(strstr(err, ":3:11: listen[0].acl: '10.0.0.0/33': prefix too long"));
	assert_non_null(strstr(err, ":5:10: listen[1].acl: an empty list refuses every client"));
	assert_non_null(strstr(err, ":7:10: listen[2].acl: expected an address list"));
	assert_non_null(strstr(err, ":9:16: listen[3].ratelimit: a rate limit needs qps"));
	assert_non_null(strstr(err, ":11:22: listen[4].ratelimit.qps: '0' is not a number from 1 to 1000000"));
	assert_non_null(strstr(err, ":11:25: listen[4].ratelimit.sleep: unknown key"));
	assert_non_null(strstr(err, ":13:38: listen[5].ratelimit.ipv4-prefix: '33' is not a number from 0 to 32"));
	assert_int_equal(load("listen:\n  - url: 127.0.0.1:5300\n    ratelimit: off\n", err, sizeof(err)), 0);
	assert_int_equal(cfg.listens[0].rl.qps, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tls_paths_are_the_configs),
		cmocka_unit_test(user_and_chroot),
		cmocka_unit_test(routes_twice_is_an_error),
		cmocka_unit_test(a_key_given_twice_is_one_error),
		cmocka_unit_test(newlines_are_escaped),
		cmocka_unit_test(a_full_buffer_ends_with_whole_lines),
		cmocka_unit_test(a_second_document_is_an_error),
		cmocka_unit_test(listener_acl_and_ratelimit),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
