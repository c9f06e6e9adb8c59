/* fuzz_yaml.c -- the configuration loader, config/yaml.c (fuzz/README.md):
 * the input is a configuration file. It is written to a file of this
 * process's own in /tmp and loaded into a config_defaults() struct as main.c
 * loads it (the same error buffer), then config_validate, then, with routes,
 * route_table_new and a few route_lookups; config_free at the end. The
 * invariants: no crash, leak or hang; 0 or -EINVAL; on error a message
 * whose every line is "FILE:LINE:COL: " (numbers) and a reason -- "not
 * YAML" included -- and on success none; what loaded refers only to what
 * exists (each route's and each upstream's pool, the pools' member counts);
 * validation answers 0 or -EINVAL with a reason; a lookup gives -1 or a
 * pool; config_free leaves nothing behind (LeakSanitizer). */
#include <errno.h>
#include <unistd.h>
#include <arpa/inet.h>
#include "config/config.h"
#include "fuzz.h"
#include "route/route.h"

#define ERR_LEN 16384 /* main.c's */

static char path[64];
static struct config cfg;
static char err[ERR_LEN];

static void remove_file(void)
{
	unlink(path);
}

static bool is_digits(const char **p)
{
	const char *s = *p;
	while (**p >= '0' && **p <= '9')
		(*p)++;
	return *p > s;
}

/* Every line "FILE:LINE:COL: reason", nothing else, no empty line. */
static void check_errors(const char *e)
{
	size_t pl = strlen(path);
	CHECK(e[0]);
	for (const char *line = e; line;) {
		const char *p = line + pl;
		CHECK(strncmp(line, path, pl) == 0 && *p++ == ':');
		CHECK(is_digits(&p) && *p++ == ':' && is_digits(&p) && *p++ == ':' && *p++ == ' ');
		const char *nl = strchr(p, '\n');
		CHECK(*p && *p != '\n'); /* a reason */
		line = nl ? nl + 1 : NULL;
	}
}

/* What loaded refers only to what exists. */
static void check_loaded(const struct config *c)
{
	unsigned members[CONFIG_MAX_POOLS] = {0};
	CHECK(c->n_pools <= CONFIG_MAX_POOLS && c->n_upstreams <= CONFIG_MAX_UPSTREAMS);
	CHECK(c->n_listens <= CONFIG_MAX_LISTENS && c->n_routes <= CONFIG_MAX_ROUTES);
	for (size_t i = 0; i < c->n_upstreams; i++) {
		CHECK(c->n_pools == 0 || c->upstreams[i].pool < c->n_pools);
		if (c->n_pools)
			members[c->upstreams[i].pool]++;
	}
	for (size_t i = 0; i < c->n_pools; i++)
		CHECK(c->pools[i].n_members == members[i]);
	for (size_t i = 0; i < c->n_routes; i++) {
		const struct route_conf *r = &c->routes[i];
		CHECK(r->pool < c->n_pools && (r->kind == ROUTE_SUFFIX || r->regex));
		CHECK(r->n_qtypes <= CONFIG_MAX_QTYPES && (!r->clients || r->clients->n <= CONFIG_MAX_ADDRS));
	}
}

static void lookups(const struct config *c)
{
	char why[512];
	struct route_table *t = route_table_new(c, why, sizeof(why));
	if (!t) {
		CHECK(why[0]); /* a regex PCRE2 will not compile, or no memory */
		return;
	}
	struct route_scratch *s = route_scratch_new(t);
	CHECK(s);
	static const char *const names[] = {"www.example.com.", ".", "A.B.C.D.E.F.G.", "corp.", "x.local.", "in-addr.arpa."};
	struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000001)};
	struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	const struct sockaddr *clients[] = {(struct sockaddr *)&v4, (struct sockaddr *)&v6, NULL};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		uint8_t dn[KNOT_DNAME_MAXLEN];
		CHECK(knot_dname_from_str(dn, names[i], sizeof(dn)));
		for (size_t k = 0; k < 3; k++) {
			const struct route_conf *rc = NULL;
			int p = route_lookup(t, s, dn, k == 1 ? KNOT_RRTYPE_AAAA : KNOT_RRTYPE_A, clients[k], &rc);
			CHECK(p == -1 || (p >= 0 && (size_t)p < c->n_pools));
			CHECK(p == -1 || (rc >= c->routes && rc < c->routes + c->n_routes && rc->pool == (unsigned)p));
		}
	}
	route_scratch_free(s);
	route_table_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!path[0]) {
		snprintf(path, sizeof(path), "/tmp/dnsmux-fuzz-yaml-%d.yaml", (int)getpid());
		atexit(remove_file);
	}
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	config_defaults(&cfg);
	int r = config_load_file(&cfg, path, err, sizeof(err));
	CHECK(r == 0 || r == -EINVAL);
	if (r < 0) {
		check_errors(err);
	} else {
		CHECK(err[0] == '\0');
		check_loaded(&cfg);
		char why[512] = "";
		int v = config_validate(&cfg, why, sizeof(why));
		CHECK(v == 0 || (v == -EINVAL && why[0]));
		if (v == 0) {
			check_loaded(&cfg);
			if (cfg.n_routes)
				lookups(&cfg);
		}
	}
	config_free(&cfg);
	CHECK(!cfg.routes && !cfg.n_routes);
	return 0;
}
