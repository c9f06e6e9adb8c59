/* fuzz_etcd.c -- config/etcd.c without curl (fuzz/README.md): etcd's values
 * and its JSON. Input: 1 control byte (mode = byte % 3), 8 seed bytes for
 * read sizes, then
 *   mode 0: a value for etcd_parse_value;
 *   mode 1: a watch stream (etcd_apply_events);
 *   mode 2: a range answer, a NUL, a watch stream; then config_add_etcd of
 *           the set into a small configuration, route_table_new, lookups.
 * Invariants: a value parses to 0 with a backend whose regex PCRE2 compiles
 * or whose suffix is a canonical name (lower case, final dot, the same when
 * parsed again), or to -EINVAL with a reason; a stream fed in reads of
 * seeded sizes gives what it gives read whole (the same result, set and
 * revision); a set is sorted by key, each key once, under the prefix, each
 * backend valid; config_add_etcd gives 0 with one pool per match and the
 * members counted, or an error with a reason and the config as it was; a
 * lookup gives -1 or a pool; nothing leaks (LeakSanitizer). */
#include <errno.h>
#include <arpa/inet.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "config/etcd.h"
#include "fuzz.h"
#include "obs/log.h"
#include "route/route.h"

#define PREFIX "/dnsrouter/"

static struct config cfg;

static void check_backend(const struct etcd_backend *b)
{
	CHECK(memchr(b->key, '\0', sizeof(b->key)) && memchr(b->match, '\0', sizeof(b->match)));
	CHECK(b->match[0] && b->up.text[0] && b->up.weight == 1);
	if (b->kind == ROUTE_REGEX) {
		int code;
		PCRE2_SIZE off;
		pcre2_code *re = pcre2_compile((PCRE2_SPTR)b->match, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &code, &off, NULL);
		CHECK(re);
		pcre2_code_free(re);
		return;
	}
	CHECK(b->kind == ROUTE_SUFFIX);
	uint8_t dn[KNOT_DNAME_MAXLEN];
	char again[sizeof(b->match)];
	size_t ml = strlen(b->match);
	CHECK(knot_dname_from_str(dn, b->match, sizeof(dn)));
	knot_dname_to_lower(dn);
	CHECK(knot_dname_to_str(again, dn, sizeof(again)) && strcmp(again, b->match) == 0);
	CHECK(b->match[ml - 1] == '.');
}

static void check_set(const struct etcd_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		CHECK(strncmp(s->b[i].key, PREFIX, strlen(PREFIX)) == 0);
		CHECK(i == 0 || strcmp(s->b[i - 1].key, s->b[i].key) < 0);
		check_backend(&s->b[i]);
	}
}

static void value(const uint8_t *d, size_t n)
{
	struct etcd_backend b;
	char err[600];
	char *v = (char *)fz_dup(d, n, 0); /* exactly n bytes: ASan sees a read past them */
	int r = etcd_parse_value(PREFIX "k", v, n, &b, err, sizeof(err));
	CHECK(r == 0 || r == -EINVAL);
	CHECK(strcmp(b.key, PREFIX "k") == 0);
	if (r == 0)
		check_backend(&b);
	else
		CHECK(err[0] && b.match[0] == '\0');
	free(v);
}

/* The stream in reads of seeded sizes, and whole: the same outcome. */
static int stream(struct etcd_state *st, const uint8_t *d, size_t n, uint64_t seed)
{
	struct etcd_state *whole = etcd_state_new(PREFIX);
	CHECK(whole);
	struct etcd_set *before = etcd_state_set(st);
	uint64_t rev0 = etcd_state_revision(st);
	/* the whole one starts from the same set: fed the same range is not
	 * possible here, so compare what changed on top of an empty state only */
	bool comparable = before->n == 0 && rev0 == 0;
	char *w = (char *)fz_dup(d, n, 0);
	int rw = etcd_apply_events(whole, w, n);
	int rp = 0, changed = 0;
	for (size_t off = 0; off < n && rp >= 0;) {
		size_t k = 1 + fz_rand(&seed) % 64;
		if (k > n - off)
			k = n - off;
		char *piece = (char *)fz_dup(d + off, k, 0);
		rp = etcd_apply_events(st, piece, k);
		free(piece);
		CHECK(rp == 0 || rp == 1 || rp == -ESTALE || rp == -EPROTO);
		changed |= rp > 0;
		off += k;
	}
	CHECK(rw == 0 || rw == 1 || rw == -ESTALE || rw == -EPROTO);
	if (comparable) {
		CHECK((rw < 0) == (rp < 0));
		if (rw < 0)
			CHECK(rw == rp);
		struct etcd_set *a = etcd_state_set(st), *b = etcd_state_set(whole);
		CHECK(etcd_set_equal(a, b) && a->revision == b->revision);
		if (rw >= 0)
			CHECK(changed == rw);
		etcd_set_free(a);
		etcd_set_free(b);
	}
	free(w);
	etcd_set_free(before);
	etcd_state_free(whole);
	return rp;
}

/* The configuration etcd's set goes into, made once (struct config is
 * half a megabyte: config_defaults for every input would be most of the
 * work); after each input what config_add_etcd added is freed and the
 * counts put back. */
static size_t base_pools, base_upstreams;

static void base_config(void)
{
	static bool made;
	char err[300];
	if (made) {
		config_free(&cfg); /* the routes added, with their regexes */
		cfg.n_pools = base_pools;
		cfg.n_upstreams = base_upstreams;
		return;
	}
	made = true;
	config_defaults(&cfg);
	CHECK(config_parse_listen("127.0.0.1:53", &cfg.listens[cfg.n_listens++], err, sizeof(err)) == 0);
	CHECK(config_add_pool(&cfg, "default") == 0);
	CHECK(config_parse_upstream("udp://192.0.2.1", &cfg.upstreams[cfg.n_upstreams], err, sizeof(err)) == 0);
	cfg.upstreams[cfg.n_upstreams++].weight = 1;
	cfg.pools[0].n_members = 1;
	cfg.etcd.policy = POOL_ROUND_ROBIN;
	CHECK(config_validate(&cfg, err, sizeof(err)) == 0);
	base_pools = cfg.n_pools;
	base_upstreams = cfg.n_upstreams;
}

static void into_config(const struct etcd_set *s)
{
	static const char *const names[] = {"a.miek.nl.", "b.shard.example.", "x.", ".", "aaaa.bbbb.cccc."};
	char err[600];
	base_config();
	size_t pools0 = cfg.n_pools, ups0 = cfg.n_upstreams;
	int r = config_add_etcd(&cfg, s, err, sizeof(err));
	CHECK(r == 0 || r == -ENOSPC || r == -EINVAL);
	if (r < 0) {
		CHECK(err[0] && cfg.n_pools == pools0 && cfg.n_upstreams == ups0 && cfg.n_routes == 0);
		return;
	}
	unsigned members[CONFIG_MAX_POOLS] = {0};
	for (size_t i = 0; i < cfg.n_upstreams; i++) {
		CHECK(cfg.upstreams[i].pool < cfg.n_pools);
		members[cfg.upstreams[i].pool]++;
	}
	for (size_t i = 0; i < cfg.n_pools; i++) {
		CHECK(members[i] == cfg.pools[i].n_members && members[i] > 0);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(cfg.pools[i].name, cfg.pools[j].name) != 0);
	}
	CHECK(cfg.n_routes == (s->n ? cfg.n_pools - pools0 + 1 : 0)); /* + the implicit default */
	CHECK(config_validate(&cfg, err, sizeof(err)) == 0);
	if (!cfg.n_routes)
		return;
	struct route_table *t = route_table_new(&cfg, err, sizeof(err));
	CHECK(t); /* every regex compiled when parsed */
	struct route_scratch *sc = route_scratch_new(t);
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		uint8_t dn[KNOT_DNAME_MAXLEN];
		CHECK(knot_dname_from_str(dn, names[i], sizeof(dn)));
		int p = route_lookup(t, sc, dn, KNOT_RRTYPE_A, NULL, NULL);
		CHECK(p >= 0 && (size_t)p < cfg.n_pools); /* the implicit default catches the rest */
	}
	route_scratch_free(sc);
	route_table_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	log_threshold = LOG_ERR; /* the skipped keys' warnings */
	struct ctl c = {data, size};
	uint8_t mode = ctl_u8(&c) % 3;
	uint64_t seed = 0;
	for (int i = 0; i < 8; i++)
		seed = seed << 8 | ctl_u8(&c);
	if (mode == 0) {
		value(c.p, c.n);
		return 0;
	}
	struct etcd_state *st = etcd_state_new(PREFIX);
	CHECK(st);
	const uint8_t *ev = c.p;
	size_t ev_n = c.n;
	if (mode == 2) {
		const uint8_t *nul = memchr(c.p, '\0', c.n);
		size_t rl = nul ? (size_t)(nul - c.p) : c.n;
		char *r = (char *)fz_dup(c.p, rl, 0);
		struct etcd_set *before = etcd_state_set(st);
		int rr = etcd_apply_range(st, r, rl);
		CHECK(rr == 0 || rr == -EPROTO);
		if (rr < 0) { /* the set as it was */
			struct etcd_set *after = etcd_state_set(st);
			CHECK(etcd_set_equal(before, after));
			etcd_set_free(after);
		}
		etcd_set_free(before);
		free(r);
		ev = nul ? nul + 1 : c.p + c.n;
		ev_n = nul ? c.n - rl - 1 : 0;
	}
	stream(st, ev, ev_n, seed);
	struct etcd_set *s = etcd_state_set(st);
	check_set(s);
	if (mode == 2)
		into_config(s);
	etcd_set_free(s);
	etcd_state_free(st);
	config_free(&cfg); /* (the routes; the rest of cfg is plain data, reused) */
	return 0;
}
