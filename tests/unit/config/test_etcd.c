/* test_etcd.c -- src/config/etcd.c without etcd: the two forms of a value
 * (miekg/dnsrouter's IP:PORT,REGEXP and the JSON object) and each way a
 * value is refused; the in-memory set fed by range answers and watch streams
 * cut anywhere; config_add_etcd's pools and routes, looked up through
 * route_table_new/route_lookup, and its limits. No event loop, no network. */
#include <errno.h>
#include <unistd.h>
#include <arpa/inet.h>
#include "test.h"
#include "config/config.h"
#include "config/etcd.h"
#include "obs/log.h"
#include "route/route.h"

static struct etcd_backend be;
static char err[600];

static int parse(const char *val)
{
	return etcd_parse_value("/dnsrouter/k", val, strlen(val), &be, err, sizeof(err));
}

static void dnsrouter_form(void **state)
{
	(void)state;
	assert_int_equal(parse("10.1.1.15:5300,^[ab]*\\.miek\\.nl\\.$"), 0);
	assert_string_equal(be.key, "/dnsrouter/k");
	assert_int_equal(be.up.kind, UPSTREAM_UDP);
	assert_string_equal(be.up.text, "udp://10.1.1.15:5300");
	assert_int_equal(ntohs(((struct sockaddr_in *)&be.up.addr)->sin_port), 5300);
	assert_int_equal(be.kind, ROUTE_REGEX);
	assert_string_equal(be.match, "^[ab]*\\.miek\\.nl\\.$");
	/* IPv6 in brackets; a comma inside the regex belongs to it */
	assert_int_equal(parse("[::1]:53,^a{1,3}\\.$"), 0);
	assert_int_equal(be.up.addr.ss_family, AF_INET6);
	assert_string_equal(be.up.text, "udp://[::1]:53");
	assert_string_equal(be.match, "^a{1,3}\\.$");
}

static void json_form(void **state)
{
	(void)state;
	assert_int_equal(parse("{\"upstream\": \"tls://192.0.2.1#dns.example\", \"regex\": \"^x[0-9]+\\\\.lab\\\\.$\"}"), 0);
	assert_int_equal(be.up.kind, UPSTREAM_TLS);
	assert_string_equal(be.up.auth_name, "dns.example");
	assert_int_equal(be.kind, ROUTE_REGEX);
	assert_string_equal(be.match, "^x[0-9]+\\.lab\\.$");
	/* a suffix in its canonical form: lower case, final dot */
	assert_int_equal(parse(" {\"suffix\": \"Shard1.Example.COM\", \"upstream\": \"tcp://192.0.2.2:5353\"}"), 0);
	assert_int_equal(be.up.kind, UPSTREAM_TCP);
	assert_int_equal(be.kind, ROUTE_SUFFIX);
	assert_string_equal(be.match, "shard1.example.com.");
	assert_int_equal(parse("{\"upstream\": \"udp://127.0.0.1\", \"suffix\": \".\"}"), 0);
	assert_string_equal(be.match, ".");
}

/* Each refusal: -EINVAL, and a reason saying what. */
static void refused(const char *val, size_t len, const char *why)
{
	memset(&be, 0x5a, sizeof(be));
	int r = etcd_parse_value("/dnsrouter/k", val, len, &be, err, sizeof(err));
	if (r != -EINVAL || !strstr(err, why))
		fail_msg("value '%.*s': got %d '%s', wanted -EINVAL '%s'", (int)len, val, r, err, why);
	assert_string_equal(be.key, "/dnsrouter/k"); /* the rest cleared, the key for the log */
	assert_int_equal(be.match[0], 0);
}

#define REFUSED(val, why) refused((val), strlen(val), (why))

static void every_error(void **state)
{
	(void)state;
	refused("", 0, "empty value");
	refused("1.2.3.4:53,^a\0b$", 15, "NUL");
	REFUSED("1.2.3.4:53", "neither IP:PORT,REGEXP nor a JSON object");
	REFUSED("1.2.3.4,^a$", "not IP:PORT");
	REFUSED("[::1],^a$", "not IP:PORT");
	REFUSED(",^a$", "not IP:PORT");
	REFUSED("::1:53,^a$", "brackets");
	REFUSED("example.com:53,^a$", "not an IP address");
	REFUSED("1.2.3.4:0,^a$", "port must be 1-65535");
	REFUSED("1.2.3.4:65536,^a$", "port must be 1-65535");
	REFUSED("1.2.3.4:53,", "empty regex");
	REFUSED("1.2.3.4:53,(", "not a regular expression");
	REFUSED("1.2.3.4:53,[a-", "not a regular expression");
	REFUSED("{", "not JSON");
	REFUSED("{\"upstream\": \"udp://1.2.3.4\", \"regex\": \"^a$\"} x", "not JSON");
	REFUSED("{\"upstream\": \"udp://1.2.3.4\", \"regex\": \"^a$\", \"weight\": 2}", "unknown key \"weight\"");
	REFUSED("{\"upstream\": \"udp://1.2.3.4\", \"regex\": \"^a$\", \"suffix\": \"a.\"}", "exactly one");
	REFUSED("{\"upstream\": \"udp://1.2.3.4\"}", "exactly one");
	REFUSED("{\"regex\": \"^a$\"}", "no \"upstream\"");
	REFUSED("{\"upstream\": 53, \"regex\": \"^a$\"}", "must be a string");
	REFUSED("{\"upstream\": \"udp://1.2.3.4\", \"regex\": [\"^a$\"]}", "must be a string");
	REFUSED("{\"upstream\": \"udp://1.2.3.4\\u0000x\", \"regex\": \"^a$\"}", "not allowed"); /* jansson says no */
	REFUSED("{\"upstream\": \"udp://1.2.3.4\", \"regex\": \"^a$\", \"regex\": \"^b$\"}", "not JSON");
	REFUSED("{\"upstream\": \"http://1.2.3.4\", \"regex\": \"^a$\"}", "upstream: ");
	REFUSED("{\"upstream\": \"udp://1.2.3.4\", \"regex\": \"(\"}", "not a regular expression");
	REFUSED("{\"upstream\": \"mdns://\", \"suffix\": \"local.\"}", "mdns:// is not a backend");
	REFUSED("{\"upstream\": \"udp://1.2.3.4\", \"suffix\": \"a..b\"}", "not a domain name");
	REFUSED("{\"upstream\": \"udp://1.2.3.4\", \"suffix\": \"\"}", "not a domain name");
	char big[700];
	memset(big, 'a', sizeof(big));
	memcpy(big, "1.2.3.4:53,", 11);
	refused(big, sizeof(big), "longer than");
	char key[600];
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	assert_int_equal(etcd_parse_value(key, "1.2.3.4:53,^a$", 14, &be, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "key is longer"));
}

/* ---- the state, from etcd's JSON ---- */

static void b64(const char *s, char *out)
{
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(s), k = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)(unsigned char)s[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)(unsigned char)s[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)s[i + 2];
		out[k++] = t[v >> 18];
		out[k++] = t[(v >> 12) & 63];
		out[k++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
		out[k++] = i + 2 < n ? t[v & 63] : '=';
	}
	out[k] = '\0';
}

#define KV_MAX 4096 /* what kv() may write: base64 of a 749-byte key and a 1,499-byte value, and the JSON */

/* {"key":B64,"value":B64,"mod_revision":"R"} into out (KV_MAX bytes) */
static char *kv(char *out, const char *key, const char *val, int rev)
{
	char k[1000], v[2000];
	b64(key, k);
	if (!val) {
		snprintf(out, KV_MAX, "{\"key\":\"%s\",\"mod_revision\":\"%d\"}", k, rev);
		return out;
	}
	b64(val, v);
	snprintf(out, KV_MAX, "{\"key\":\"%s\",\"value\":\"%s\",\"mod_revision\":\"%d\"}", k, v, rev);
	return out;
}

static void range_then_events(void **state)
{
	(void)state;
	struct etcd_state *st = etcd_state_new("/dnsrouter/");
	char a[KV_MAX], b[KV_MAX], c[KV_MAX], d[KV_MAX], body[4 * KV_MAX + 100];
	sprintf(body, "{\"header\":{\"revision\":\"7\"},\"kvs\":[%s,%s,%s,%s],\"count\":\"4\"}",
		kv(a, "/dnsrouter/a", "10.0.0.1:53,^a\\.$", 3), kv(b, "/dnsrouter/b", "garbage", 4),
		kv(c, "/dnsrouter/c", "{\"upstream\":\"udp://10.0.0.3\",\"suffix\":\"c.example.\"}", 5),
		kv(d, "/elsewhere/d", "10.0.0.4:53,^d$", 6));
	assert_int_equal(etcd_apply_range(st, body, strlen(body)), 0);
	assert_int_equal(etcd_state_revision(st), 7);
	struct etcd_set *s = etcd_state_set(st);
	assert_int_equal(s->n, 2); /* the bad value and the key outside the prefix skipped */
	assert_string_equal(s->b[0].key, "/dnsrouter/a");
	assert_string_equal(s->b[1].key, "/dnsrouter/c");
	assert_int_equal(s->revision, 7);
	/* a range that is not one leaves the set */
	assert_int_equal(etcd_apply_range(st, "{\"kvs\":[]}", 10), -EPROTO);
	assert_int_equal(etcd_apply_range(st, "nonsense", 8), -EPROTO);
	struct etcd_set *same = etcd_state_set(st);
	assert_true(etcd_set_equal(s, same));
	etcd_set_free(same);

	/* a watch stream, fed one byte at a time: created, PUT (type left out), DELETE */
	char stream[20000];
	int n = sprintf(stream, "{\"result\":{\"header\":{\"revision\":\"7\"},\"created\":true}}\n"
				"{\"result\":{\"header\":{\"revision\":\"9\"},\"events\":[{\"kv\":%s},"
				"{\"type\":\"DELETE\",\"kv\":%s}]}}\n",
			kv(a, "/dnsrouter/b", "[::1]:5300,^b\\.$", 8), kv(b, "/dnsrouter/a", NULL, 9));
	int changed = 0;
	assert_false(etcd_state_watching(st));
	for (int i = 0; i < n; i++) {
		int r = etcd_apply_events(st, stream + i, 1);
		assert_true(r == 0 || r == 1);
		changed += r;
	}
	assert_true(etcd_state_watching(st));
	assert_int_equal(changed, 1); /* both events in the same object: one change */
	assert_int_equal(etcd_state_revision(st), 9);
	etcd_set_free(s);
	s = etcd_state_set(st);
	assert_int_equal(s->n, 2);
	assert_string_equal(s->b[0].key, "/dnsrouter/b");
	assert_string_equal(s->b[0].up.text, "udp://[::1]:5300");
	assert_string_equal(s->b[1].key, "/dnsrouter/c");
	/* the same value again: no change; a bad value for a good key: it goes */
	n = sprintf(stream, "{\"result\":{\"header\":{\"revision\":\"10\"},\"events\":[{\"type\":\"PUT\",\"kv\":%s}]}}",
		    kv(a, "/dnsrouter/b", "[::1]:5300,^b\\.$", 10));
	assert_int_equal(etcd_apply_events(st, stream, (size_t)n), 0);
	n = sprintf(stream, "{\"result\":{\"events\":[{\"kv\":%s}]}}", kv(a, "/dnsrouter/c", "1.2.3.4:53,(", 11));
	assert_int_equal(etcd_apply_events(st, stream, (size_t)n), 1);
	etcd_set_free(s);
	s = etcd_state_set(st);
	assert_int_equal(s->n, 1);
	etcd_set_free(s);
	/* cancelled (compacted), an error object, not JSON, a wrong event type */
	const char *cancel = "{\"result\":{\"header\":{},\"canceled\":true,\"compact_revision\":\"12\"}}";
	assert_int_equal(etcd_apply_events(st, cancel, strlen(cancel)), -ESTALE);
	etcd_state_free(st);
	st = etcd_state_new("/dnsrouter/");
	const char *e = "{\"error\":{\"grpc_code\":3,\"http_code\":400,\"message\":\"bad\"}}";
	assert_int_equal(etcd_apply_events(st, e, strlen(e)), -EPROTO);
	etcd_state_free(st);
	st = etcd_state_new("/dnsrouter/");
	assert_int_equal(etcd_apply_events(st, "[1]", 3), -EPROTO);
	etcd_state_free(st);
	st = etcd_state_new("/dnsrouter/");
	const char *t = "{\"result\":{\"events\":[{\"type\":\"PATCH\",\"kv\":{}}]}}";
	assert_int_equal(etcd_apply_events(st, t, strlen(t)), -EPROTO);
	etcd_state_free(st);
}

/* ---- config_add_etcd ---- */

static struct config cfg;

static void file_config(bool with_routes)
{
	char why[300];
	config_free(&cfg);
	config_defaults(&cfg);
	assert_int_equal(config_parse_listen("127.0.0.1:5353", &cfg.listens[cfg.n_listens++], why, sizeof(why)), 0);
	const char *pools[] = {"default", "lab"};
	for (unsigned p = 0; p < 2; p++) {
		assert_int_equal(config_add_pool(&cfg, pools[p]), (int)p);
		struct upstream_conf *u = &cfg.upstreams[cfg.n_upstreams++];
		assert_int_equal(config_parse_upstream(p ? "udp://192.0.2.9" : "udp://192.0.2.8", u, why, sizeof(why)), 0);
		u->pool = p;
		u->weight = 1;
		cfg.pools[p].n_members = 1;
	}
	cfg.etcd.policy = POOL_FASTEST;
	snprintf(cfg.etcd.health.query_name, sizeof(cfg.etcd.health.query_name), "id.server.");
	cfg.etcd.health.query_type = KNOT_RRTYPE_TXT;
	cfg.etcd.health.query_class = KNOT_CLASS_CH;
	cfg.etcd.health.interval_ms = 1000;
	if (with_routes) {
		cfg.routes = calloc(2, sizeof(*cfg.routes));
		cfg.n_routes = 2;
		cfg.routes[0].kind = ROUTE_SUFFIX; /* written first, consulted last */
		cfg.routes[0].pool = 0;
		cfg.routes[0].line = 10;
		cfg.routes[1].kind = ROUTE_REGEX;
		cfg.routes[1].regex = strdup("^lab[0-9]*\\.");
		cfg.routes[1].pool = 1;
		cfg.routes[1].line = 12;
	}
	assert_int_equal(config_validate(&cfg, why, sizeof(why)), 0);
}

static struct etcd_set *make_set(const char *const *kvs, size_t n)
{
	struct etcd_set *s = calloc(1, sizeof(*s));
	s->b = calloc(n, sizeof(*s->b));
	for (size_t i = 0; i < n; i++) {
		char why[300];
		assert_int_equal(etcd_parse_value(kvs[2 * i], kvs[2 * i + 1], strlen(kvs[2 * i + 1]), &s->b[i], why,
						  sizeof(why)), 0);
	}
	s->n = n;
	return s;
}

static int lookup(const struct route_table *t, const char *name)
{
	uint8_t dn[KNOT_DNAME_MAXLEN];
	assert_non_null(knot_dname_from_str(dn, name, sizeof(dn)));
	struct route_scratch *s = route_scratch_new(t);
	int p = route_lookup(t, s, dn, KNOT_RRTYPE_A, NULL, NULL);
	route_scratch_free(s);
	return p;
}

static void add_pools_and_routes(void **state)
{
	(void)state;
	file_config(true);
	static const char *const kvs[] = {
		"/dnsrouter/1", "10.1.1.15:5300,^[ab]*\\.miek\\.nl\\.$",
		"/dnsrouter/2", "{\"upstream\":\"tcp://10.1.1.20:53\",\"suffix\":\"Shard.Example.\"}",
		"/dnsrouter/3", "10.1.1.16:5300,^[ab]*\\.miek\\.nl\\.$",
		"/dnsrouter/4", "10.1.1.16:5300,^[ab]*\\.miek\\.nl\\.$", /* registered twice: one member */
		"/dnsrouter/5", "10.1.1.17:53,^lab1\\.", /* after the file's regex: never reached first */
	};
	struct etcd_set *set = make_set(kvs, 5);
	char why[300];
	assert_int_equal(config_add_etcd(&cfg, set, why, sizeof(why)), 0);
	assert_int_equal(cfg.n_pools, 5);
	assert_int_equal(cfg.n_upstreams, 2 + 4);
	assert_int_equal(cfg.n_routes, 2 + 3);
	int miek = config_find_pool(&cfg, "etcd:^[ab]*\\.miek\\.nl\\.$");
	int shard = config_find_pool(&cfg, "etcd:shard.example.");
	int lab1 = config_find_pool(&cfg, "etcd:^lab1\\.");
	assert_true(miek >= 2 && shard >= 2 && lab1 >= 2);
	assert_int_equal(cfg.pools[miek].n_members, 2);
	assert_int_equal(cfg.pools[shard].n_members, 1);
	assert_int_equal(cfg.pools[miek].policy, POOL_FASTEST);
	assert_int_equal(cfg.pools[miek].health.interval_ms, 1000);
	assert_string_equal(cfg.pools[miek].health.query_name, "id.server.");
	assert_int_equal(cfg.pools[miek].health.query_class, KNOT_CLASS_CH);
	for (size_t i = 2; i < cfg.n_upstreams; i++)
		assert_int_equal(cfg.upstreams[i].weight, 1);
	assert_int_equal(config_validate(&cfg, why, sizeof(why)), 0);
	struct route_table *t = route_table_new(&cfg, why, sizeof(why));
	assert_non_null(t);
	assert_int_equal(lookup(t, "ab.miek.nl."), miek);
	assert_int_equal(lookup(t, "AB.Miek.NL."), miek);
	assert_int_equal(lookup(t, "www.shard.example."), shard);
	assert_int_equal(lookup(t, "shard.example."), shard);
	assert_int_equal(lookup(t, "lab1.x."), 1); /* the file's regex first */
	assert_int_equal(lookup(t, "c.miek.nl."), 0); /* the file's default, last */
	assert_int_equal(lookup(t, "xshard.example."), 0);
	route_table_free(t);
	etcd_set_free(set);
	config_free(&cfg); /* LeakSanitizer: the regexes added are freed */
}

static void no_file_routes_keeps_the_default(void **state)
{
	(void)state;
	file_config(false);
	static const char *const kvs[] = {"/dnsrouter/1", "10.1.1.15:5300,^[ab]*\\.miek\\.nl\\.$"};
	struct etcd_set *set = make_set(kvs, 1);
	char why[300];
	assert_int_equal(config_add_etcd(&cfg, set, why, sizeof(why)), 0);
	assert_int_equal(cfg.n_routes, 2);
	struct route_table *t = route_table_new(&cfg, why, sizeof(why));
	assert_non_null(t);
	assert_int_equal(lookup(t, "a.miek.nl."), 2);
	assert_int_equal(lookup(t, "example.org."), 0);
	route_table_free(t);
	/* an empty set adds nothing */
	struct etcd_set empty = {0};
	file_config(false);
	assert_int_equal(config_add_etcd(&cfg, &empty, why, sizeof(why)), 0);
	assert_int_equal(cfg.n_routes, 0);
	assert_int_equal(cfg.n_pools, 2);
	etcd_set_free(set);
	config_free(&cfg);
}

static void limits(void **state)
{
	(void)state;
	file_config(true);
	size_t n = CONFIG_MAX_POOLS; /* 2 pools in the file: 2 too many */
	struct etcd_set *set = calloc(1, sizeof(*set));
	set->b = calloc(n, sizeof(*set->b));
	for (size_t i = 0; i < n; i++) {
		char key[32], val[64], why[300];
		snprintf(key, sizeof(key), "/dnsrouter/%03zu", i);
		snprintf(val, sizeof(val), "10.2.0.%zu:53,^s%zu\\.", i % 250 + 1, i);
		assert_int_equal(etcd_parse_value(key, val, strlen(val), &set->b[i], why, sizeof(why)), 0);
	}
	set->n = n;
	char why[300];
	assert_int_equal(config_add_etcd(&cfg, set, why, sizeof(why)), -ENOSPC);
	assert_non_null(strstr(why, "pools"));
	assert_int_equal(cfg.n_pools, 2); /* unchanged */
	assert_int_equal(cfg.n_routes, 2);
	assert_int_equal(cfg.n_upstreams, 2);
	set->n = CONFIG_MAX_POOLS - 2;
	assert_int_equal(config_add_etcd(&cfg, set, why, sizeof(why)), 0);
	assert_int_equal(cfg.n_pools, CONFIG_MAX_POOLS);
	etcd_set_free(set);

	/* upstreams: 300 backends of one regex */
	file_config(true);
	set = calloc(1, sizeof(*set));
	set->b = calloc(300, sizeof(*set->b));
	for (size_t i = 0; i < 300; i++) {
		char key[32], val[64];
		snprintf(key, sizeof(key), "/dnsrouter/%03zu", i);
		snprintf(val, sizeof(val), "10.3.%zu.%zu:53,^big\\.", i / 200, i % 200 + 1);
		assert_int_equal(etcd_parse_value(key, val, strlen(val), &set->b[i], why, sizeof(why)), 0);
	}
	set->n = 300;
	assert_int_equal(config_add_etcd(&cfg, set, why, sizeof(why)), -ENOSPC);
	assert_non_null(strstr(why, "upstreams"));
	assert_int_equal(cfg.n_upstreams, 2);
	etcd_set_free(set);

	/* a long pattern: a pool name that fits, and two that begin alike differ */
	file_config(true);
	char v1[400], v2[400];
	snprintf(v1, sizeof(v1), "10.4.0.1:53,^%0200d1$", 0);
	snprintf(v2, sizeof(v2), "10.4.0.2:53,^%0200d2$", 0);
	const char *kvs[] = {"/dnsrouter/a", v1, "/dnsrouter/b", v2, "/dnsrouter/c",
			     "{\"upstream\":\"udp://10.4.0.3\",\"suffix\":\"x.\"}", "/dnsrouter/d",
			     "{\"upstream\":\"udp://10.4.0.4\",\"regex\":\"x.\"}"};
	set = make_set(kvs, 4);
	assert_int_equal(config_add_etcd(&cfg, set, why, sizeof(why)), 0);
	assert_int_equal(cfg.n_pools, 6);
	for (size_t i = 2; i < cfg.n_pools; i++)
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(cfg.pools[i].name, cfg.pools[j].name);
	etcd_set_free(set);
	config_free(&cfg);
}

/* ---- the etcd: key (config/yaml.c) ---- */

static int load_yaml(const char *yaml, char *e, size_t elen)
{
	char path[] = "/tmp/dnsmux-test-etcd-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
	close(fd);
	config_free(&cfg);
	config_defaults(&cfg);
	int r = config_load_file(&cfg, path, e, elen);
	unlink(path);
	return r;
}

static void yaml_etcd_key(void **state)
{
	(void)state;
	char e[2048];
	assert_int_equal(load_yaml("etcd: {}\n", e, sizeof(e)), 0);
	assert_true(cfg.has_etcd);
	assert_int_equal(cfg.etcd.n_endpoints, 1);
	assert_string_equal(cfg.etcd.endpoints[0], "http://127.0.0.1:2379");
	assert_string_equal(cfg.etcd.prefix, "/dnsrouter/");
	assert_int_equal(cfg.etcd.policy, POOL_ROUND_ROBIN);
	assert_string_equal(cfg.etcd.health.query_name, "id.server.");
	assert_int_equal(cfg.etcd.health.interval_ms, 1000);
	assert_int_equal(load_yaml("etcd:\n  endpoints: [http://10.0.0.1:2379, https://10.0.0.2:2379]\n  prefix: /dns/\n"
				   "  policy: fastest\n  health: {interval: 5s, fall: 2, rise: 4, query: x. A}\n",
				   e, sizeof(e)),
			 0);
	assert_int_equal(cfg.etcd.n_endpoints, 2);
	assert_string_equal(cfg.etcd.endpoints[1], "https://10.0.0.2:2379");
	assert_string_equal(cfg.etcd.prefix, "/dns/");
	assert_int_equal(cfg.etcd.policy, POOL_FASTEST);
	assert_int_equal(cfg.etcd.health.interval_ms, 5000);
	assert_int_equal(cfg.etcd.health.fall, 2);
	assert_string_equal(cfg.etcd.health.query_name, "x.");
	assert_int_equal(cfg.etcd.health.query_type, KNOT_RRTYPE_A);
	/* errors, each with its line and column */
	assert_int_equal(load_yaml("etcd:\n  endpoints: [10.0.0.1:2379]\n  prefix: \"\"\n  policy: fastes\n"
				   "  health: {when-all-down: servfail}\n  watch: yes\n",
				   e, sizeof(e)),
			 -EINVAL);
	assert_non_null(strstr(e, ":2:15: etcd.endpoints: '10.0.0.1:2379' is not http://"));
	assert_non_null(strstr(e, ":3:11: etcd.prefix: a prefix must be"));
	assert_non_null(strstr(e, ":4:11: etcd.policy: unknown policy \"fastes\""));
	assert_non_null(strstr(e, "etcd.health.when-all-down: unknown key"));
	assert_non_null(strstr(e, "etcd.watch: unknown key"));
	assert_int_equal(load_yaml("etcd:\n  endpoints: [http://a:1, http://b:1, http://c:1, http://d:1, http://e:1]\n", e,
				   sizeof(e)),
			 -EINVAL);
	assert_non_null(strstr(e, "at most 4 endpoints"));
	config_free(&cfg);
}

static int teardown(void **state)
{
	(void)state;
	config_free(&cfg);
	return 0;
}

int main(void)
{
	log_threshold = LOG_ERR; /* the skipped keys' warnings */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(dnsrouter_form),
		cmocka_unit_test(json_form),
		cmocka_unit_test(every_error),
		cmocka_unit_test(range_then_events),
		cmocka_unit_test(add_pools_and_routes),
		cmocka_unit_test(no_file_routes_keeps_the_default),
		cmocka_unit_test(limits),
		cmocka_unit_test(yaml_etcd_key),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
