/* snapshot.c -- see snapshot.h. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config/etcd.h"
#include "config/snapshot.h"
#include "obs/log.h"
#include "policy/cache.h"
#include "policy/ratelimit.h"
#include "route/route.h"
#include "tls/creds.h"

static const char *remap(const char *p, const struct config *from, const struct config *to)
{
	for (size_t i = 0; p && i < from->n_strings; i++)
		if (p == from->strings[i])
			return to->strings[i];
	return p; /* the command line's, or NULL */
}

/* Copy base into the zeroed c but for the unused tails of its three big
 * arrays (upstreams alone take 475 KB): from calloc (mmap, past glibc's
 * threshold) a snapshot's untouched pages stay unmapped, and a one-worker
 * dnsmux holds two snapshots, so a whole memcpy cost 1.2 MB of resident
 * memory for nothing. */
#define USED(n, arr) ((n) < sizeof(arr) / sizeof((arr)[0]) ? (n) * sizeof((arr)[0]) : sizeof(arr))

static void copy_used(struct config *c, const struct config *base)
{
	const size_t cut[3][2] = {
		{offsetof(struct config, listens) + USED(base->n_listens, base->listens),
		 offsetof(struct config, listens) + sizeof(base->listens)},
		{offsetof(struct config, upstreams) + USED(base->n_upstreams, base->upstreams),
		 offsetof(struct config, upstreams) + sizeof(base->upstreams)},
		{offsetof(struct config, pools) + USED(base->n_pools, base->pools),
		 offsetof(struct config, pools) + sizeof(base->pools)},
	};
	_Static_assert(offsetof(struct config, listens) < offsetof(struct config, upstreams) &&
			       offsetof(struct config, upstreams) < offsetof(struct config, pools),
		       "copy_used takes the arrays in this order");
	size_t from = 0;
	for (int i = 0; i < 3; i++) {
		memcpy((char *)c + from, (const char *)base + from, cut[i][0] - from);
		from = cut[i][1];
	}
	memcpy((char *)c + from, (const char *)base + from, sizeof(*c) - from);
}

struct config *config_dup(const struct config *base)
{
	struct config *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	copy_used(c, base);
	c->routes = NULL;
	c->n_routes = 0;
	c->strings = NULL;
	c->n_strings = 0;
	c->route_table = NULL;
	c->tls_server = NULL;
	c->cache_obj = NULL;
	c->dns64 = NULL;
	c->n_dns64 = 0;
	for (size_t i = 0; i < c->n_upstreams; i++)
		c->upstreams[i].tls = NULL;
	for (size_t i = 0; i < c->n_listens; i++)
		c->listens[i].rl_table = NULL;
	if (base->n_strings && !(c->strings = calloc(base->n_strings, sizeof(*c->strings))))
		goto fail;
	for (; c->n_strings < base->n_strings; c->n_strings++)
		if (!(c->strings[c->n_strings] = strdup(base->strings[c->n_strings])))
			goto fail;
	c->ca_file = remap(base->ca_file, base, c);
	c->tls_cert = remap(base->tls_cert, base, c);
	c->tls_key = remap(base->tls_key, base, c);
	c->user = remap(base->user, base, c);
	c->chroot_dir = remap(base->chroot_dir, base, c);
	if (base->n_dns64) {
		if (!(c->dns64 = malloc(base->n_dns64 * sizeof(*c->dns64))))
			goto fail;
		memcpy(c->dns64, base->dns64, base->n_dns64 * sizeof(*c->dns64)); /* plain data, lists and all */
		c->n_dns64 = base->n_dns64;
	}
	if (base->n_routes && !(c->routes = calloc(base->n_routes, sizeof(*c->routes))))
		goto fail;
	for (; c->n_routes < base->n_routes; c->n_routes++) {
		const struct route_conf *from = &base->routes[c->n_routes];
		struct route_conf *r = &c->routes[c->n_routes];
		*r = *from;
		r->regex = NULL;
		r->clients = NULL;
		if (from->regex && !(r->regex = strdup(from->regex)))
			goto fail;
		if (from->clients) {
			if (!(r->clients = malloc(sizeof(*r->clients)))) {
				c->n_routes++; /* so that config_free frees its regex */
				goto fail;
			}
			*r->clients = *from->clients;
		}
	}
	return c;
fail:
	config_release(c, NULL);
	return NULL;
}

int config_build_routes(struct config *c, char *err, size_t errlen)
{
	if (!c->n_routes)
		return 0;
	c->route_table = route_table_new(c, err, errlen);
	return c->route_table ? 0 : -EINVAL;
}

static bool same_str(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool is_tls(const struct upstream_conf *u)
{
	return u->kind == UPSTREAM_TLS || u->kind == UPSTREAM_HTTPS;
}

bool config_upstream_same(const struct config *ca, const struct upstream_conf *a, const struct config *cb,
			  const struct upstream_conf *b)
{
	/* the text is the whole URL: address, port, path, pins, method, name */
	if (a->kind != b->kind || strcmp(a->text, b->text) != 0)
		return false;
	return !is_tls(a) || same_str(ca->ca_file, cb->ca_file);
}

static bool same_listens(const struct config *a, const struct config *b)
{
	if (a->n_listens != b->n_listens)
		return false;
	for (size_t i = 0; i < a->n_listens; i++)
		if (a->listens[i].protos != b->listens[i].protos || strcmp(a->listens[i].text, b->listens[i].text) != 0)
			return false;
	return true;
}

static bool same_ratelimit(const struct ratelimit_conf *a, const struct ratelimit_conf *b)
{
	return a->qps == b->qps && a->burst == b->burst && a->slip == b->slip && a->ipv4_prefix == b->ipv4_prefix &&
	       a->ipv6_prefix == b->ipv6_prefix;
}

static bool same_acl(const struct listen_conf *a, const struct listen_conf *b)
{
	return a->has_acl == b->has_acl && a->acl.n == b->acl.n &&
	       memcmp(a->acl.e, b->acl.e, a->acl.n * sizeof(a->acl.e[0])) == 0;
}

void config_carry_over(struct config *next, const struct config *prev)
{
	if (!same_listens(next, prev)) {
		log_warn(CONFIG, "reload: the listeners changed; they stay as they are until a restart (with their "
				 "acl and ratelimit)");
		memcpy(next->listens, prev->listens, sizeof(next->listens));
		next->n_listens = prev->n_listens;
	}
	/* a listener's acl and rate limit are read per query from the snapshot
	 * (frontend/frontend.c): they change with it */
	for (size_t i = 0; i < next->n_listens; i++) {
		const struct listen_conf *a = &prev->listens[i], *b = &next->listens[i];
		if (!same_acl(a, b))
			log_info(CONFIG, "reload: listener %s: new acl (%u elements)", b->text, b->acl.n);
		if (!same_ratelimit(&a->rl, &b->rl))
			log_info(CONFIG, "reload: listener %s: rate limit %u qps burst %u -> %u qps burst %u%s", b->text,
				 a->rl.qps, a->rl.burst, b->rl.qps, b->rl.burst, b->rl.qps ? " (new buckets)" : "");
	}
	if (next->threads != prev->threads) {
		log_warn(CONFIG, "reload: threads %u -> %u needs a restart; staying at %u", prev->threads, next->threads,
			 prev->threads);
		next->threads = prev->threads;
	}
	if (!same_str(next->tls_cert, prev->tls_cert) || !same_str(next->tls_key, prev->tls_key))
		log_warn(CONFIG, "reload: a new certificate or key path needs a restart; the files at the old paths are "
				 "re-read on SIGHUP");
}

static const struct tls_client_ctx *shared_client_ctx(const struct config *next, const struct upstream_conf *u,
						      const struct config *prev)
{
	if (!prev)
		return NULL;
	for (size_t i = 0; i < prev->n_upstreams; i++)
		if (prev->upstreams[i].tls && config_upstream_same(prev, &prev->upstreams[i], next, u))
			return prev->upstreams[i].tls;
	return NULL;
}

static int make_client_ctx(struct config *c, struct upstream_conf *u, char *err, size_t errlen)
{
	char why[512];
	struct tls_client_ctx *t = calloc(1, sizeof(*t));
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(t->auth_name, sizeof(t->auth_name), "%s", u->auth_name);
	config_addr_str(&u->addr, t->ip_text, sizeof(t->ip_text));
	char *colon = t->ip_text[0] == '[' ? strstr(t->ip_text, "]:") : strrchr(t->ip_text, ':');
	if (colon) /* the name checked without #AUTH-NAME is the bare IP */
		*colon = '\0';
	if (t->ip_text[0] == '[')
		memmove(t->ip_text, t->ip_text + 1, strlen(t->ip_text));
	memcpy(t->pins, u->pins, sizeof(t->pins));
	t->n_pins = u->n_pins;
	t->alpn_h2 = u->kind == UPSTREAM_HTTPS;
	if (tls_client_ctx_init(t, c->ca_file, why, sizeof(why)) < 0) {
		free(t);
		snprintf(err, errlen, "--upstream %s: %s", u->text, why);
		return -EINVAL;
	}
	u->tls = t;
	return 0;
}

int config_setup_tls(struct config *next, const struct config *prev, char *err, size_t errlen)
{
	for (size_t i = 0; i < next->n_upstreams; i++) {
		struct upstream_conf *u = &next->upstreams[i];
		if (!is_tls(u) || u->tls)
			continue;
		const struct tls_client_ctx *t = shared_client_ctx(next, u, prev);
		if (t)
			u->tls = (struct tls_client_ctx *)t; /* the session ticket carries over too */
		else if (make_client_ctx(next, u, err, errlen) < 0)
			return -EINVAL;
	}
	bool has_tls_listener = false;
	for (size_t i = 0; i < next->n_listens; i++)
		has_tls_listener |= (next->listens[i].protos & LISTEN_TLS) != 0;
	if (!has_tls_listener || next->tls_server)
		return 0;
	if (prev && prev->tls_server) { /* the listeners are prev's (config_carry_over) */
		next->tls_server = prev->tls_server;
		return 0;
	}
	next->tls_server = calloc(1, sizeof(*next->tls_server));
	if (!next->tls_server) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (tls_server_ctx_init(next->tls_server, next->tls_cert, next->tls_key, err, errlen) < 0) {
		free(next->tls_server);
		next->tls_server = NULL;
		return -EINVAL;
	}
	return 0;
}

/* Each listener's buckets: prev's when its rate limit is the same (the
 * clients' state carries over), else new ones. */
static int setup_ratelimits(struct config *next, const struct config *prev, char *err, size_t errlen)
{
	for (size_t i = 0; i < next->n_listens; i++) {
		struct listen_conf *l = &next->listens[i];
		if (!l->rl.qps || l->rl_table)
			continue;
		const struct listen_conf *p = prev && i < prev->n_listens ? &prev->listens[i] : NULL;
		if (p && p->rl_table && same_ratelimit(&p->rl, &l->rl)) {
			l->rl_table = p->rl_table;
			continue;
		}
		if (!(l->rl_table = ratelimit_new(&l->rl, RATELIMIT_ENTRIES))) {
			snprintf(err, errlen, "out of memory for the rate limit of %s", l->text);
			return -ENOMEM;
		}
	}
	return 0;
}

static bool successor_has_table(const struct config *s, const struct ratelimit *t)
{
	for (size_t i = 0; s && i < s->n_listens; i++)
		if (s->listens[i].rl_table == t)
			return true;
	return false;
}

static bool successor_has(const struct config *s, const struct tls_client_ctx *t)
{
	for (size_t i = 0; s && i < s->n_upstreams; i++)
		if (s->upstreams[i].tls == t)
			return true;
	return false;
}

void config_release(struct config *c, const struct config *successor)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_upstreams; i++) {
		struct tls_client_ctx *t = c->upstreams[i].tls;
		bool earlier = false; /* two upstreams of c never share one, but be sure it is freed once */
		for (size_t k = 0; k < i && !earlier; k++)
			earlier = c->upstreams[k].tls == t;
		if (t && !earlier && !successor_has(successor, t)) {
			tls_client_ctx_deinit(t);
			free(t);
		}
	}
	if (c->tls_server && !(successor && successor->tls_server == c->tls_server)) {
		tls_server_ctx_deinit(c->tls_server);
		free(c->tls_server);
	}
	if (c->cache_obj && !(successor && successor->cache_obj == c->cache_obj))
		cache_free(c->cache_obj);
	for (size_t i = 0; i < c->n_listens; i++)
		if (!successor_has_table(successor, c->listens[i].rl_table))
			ratelimit_free(c->listens[i].rl_table);
	route_table_free(c->route_table);
	config_free(c);
	free(c);
}

struct config *config_snapshot(const struct config *base, const struct etcd_set *set, const struct config *prev,
			       char *err, size_t errlen)
{
	struct config *c = config_dup(base);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	char why[512];
	if (set && c->has_etcd && config_add_etcd(c, set, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "etcd: %s", why);
		config_release(c, NULL);
		return NULL;
	}
	if (config_build_routes(c, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: %s", base->file[0] ? base->file : "dnsmux", why);
		config_release(c, NULL);
		return NULL;
	}
	if (prev)
		config_carry_over(c, prev);
	if (config_setup_tls(c, prev, err, errlen) < 0 || setup_ratelimits(c, prev, err, errlen) < 0) {
		config_release(c, prev);
		return NULL;
	}
	/* the cache outlives a reload that keeps its size */
	if (c->cache.size && prev && prev->cache_obj && prev->cache.size == c->cache.size) {
		c->cache_obj = prev->cache_obj;
	} else if (c->cache.size && !(c->cache_obj = cache_new(c->cache.size))) {
		snprintf(err, errlen, "out of memory for the cache");
		config_release(c, prev);
		return NULL;
	}
	return c;
}
