/* yaml.c -- the configuration file (shared/CONFIG.md is the contract):
 * libyaml loads the document, and each mapping is walked against a table
 * of the keys it may hold -- an unknown key is an error, and adding a key is
 * adding a table entry. Every error names file:line:column, the key's path
 * and what was expected; all errors are reported, not just the first. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>
#include <libknot/libknot.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "config/config.h"
#include "policy/dns64.h"

struct ctx {
	const char *file;
	yaml_document_t doc;
	struct config *c;
	char *err;        /* errors, one per line */
	size_t errlen, used;
	unsigned n_errors;
};

typedef void key_fn(struct ctx *x, yaml_node_t *n, const char *path, void *obj);

/* What a key holds. Most are a field of the object being filled (obj +
 * off) of a plain kind; the rest have a function. */
enum key_kind { K_FN, K_UINT, K_DURATION, K_PATH, K_LATER };

struct key {
	const char *name;
	enum key_kind kind;
	key_fn *fn;         /* K_FN */
	size_t off;         /* K_UINT, K_DURATION (uint32_t), K_PATH (const char *) */
	uint32_t min, max;  /* K_UINT, K_DURATION */
	const char *later;  /* K_LATER: not built yet; the error says which work brings it */
};

#define KEY_FN(n, f) {(n), K_FN, (f), 0, 0, 0, NULL}
#define KEY_UINT(n, type, field, lo, hi) {(n), K_UINT, NULL, offsetof(type, field), (lo), (hi), NULL}
#define KEY_DURATION(n, type, field, lo, hi) {(n), K_DURATION, NULL, offsetof(type, field), (lo), (hi), NULL}
#define KEY_PATH(n, type, field) {(n), K_PATH, NULL, offsetof(type, field), 0, 0, NULL}
#define KEY_LATER(n, why) {(n), K_LATER, NULL, 0, 0, 0, (why)}
#define KEY_END {NULL, K_FN, NULL, 0, 0, 0, NULL}

static bool as_uint(struct ctx *x, yaml_node_t *n, const char *path, unsigned long min, unsigned long max, uint32_t *out);
static bool as_duration(struct ctx *x, yaml_node_t *n, const char *path, uint32_t min, uint32_t max, uint32_t *out);
static const char *keep(struct ctx *x, yaml_node_t *n, const char *path);

static void apply(struct ctx *x, const struct key *e, yaml_node_t *v, const char *path, void *obj)
{
	char *field = (char *)obj + e->off;
	switch (e->kind) {
	case K_FN: e->fn(x, v, path, obj); break;
	case K_UINT: as_uint(x, v, path, e->min, e->max, (uint32_t *)(void *)field); break;
	case K_DURATION: as_duration(x, v, path, e->min, e->max, (uint32_t *)(void *)field); break;
	case K_PATH: *(const char **)(void *)field = keep(x, v, path); break;
	case K_LATER: break;
	}
}

/* Append src to line (length k, cap bytes) with control characters
 * escaped: a scalar or a key may hold a newline, and an error is one line. */
static size_t escape(char *line, size_t k, size_t cap, const char *src)
{
	for (; *src && k + 5 < cap; src++) {
		unsigned char c = (unsigned char)*src;
		if (c >= 0x20 && c != 0x7f)
			line[k++] = (char)c;
		else if (c == '\n')
			k += (size_t)snprintf(line + k, cap - k, "\\n");
		else
			k += (size_t)snprintf(line + k, cap - k, "\\x%02x", c);
	}
	line[k] = '\0';
	return k;
}

/* One error, one line: "FILE:LINE:COL: path: what". A line that does not
 * fit in what is left of err is left out (n_errors still counts it), but
 * the first, which is cut instead: the caller always gets a reason. */
static void __attribute__((format(printf, 4, 5))) error_at(struct ctx *x, const yaml_node_t *n, const char *path,
							   const char *fmt, ...)
{
	char what[2048], line[4096];
	x->n_errors++;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	int k0 = snprintf(line, sizeof(line), "%s:%zu:%zu: ", x->file, n ? n->start_mark.line + 1 : 0,
			  n ? n->start_mark.column + 1 : 0);
	size_t k = k0 < 0 ? 0 : (size_t)k0 < sizeof(line) ? (size_t)k0 : sizeof(line) - 1;
	k = escape(line, k, sizeof(line), path);
	k = escape(line, k, sizeof(line), ": ");
	k = escape(line, k, sizeof(line), what);
	size_t sep = x->used ? 1 : 0;
	if (x->used + sep + k >= x->errlen) {
		if (x->used || x->errlen == 0)
			return;
		k = x->errlen - 1;
	}
	if (sep)
		x->err[x->used++] = '\n';
	memcpy(x->err + x->used, line, k);
	x->used += k;
	x->err[x->used] = '\0';
}

static yaml_node_t *node(struct ctx *x, int id)
{
	return yaml_document_get_node(&x->doc, id);
}

static const char *scalar(struct ctx *x, yaml_node_t *n, const char *path, const char *what)
{
	if (n->type != YAML_SCALAR_NODE) {
		error_at(x, n, path, "expected %s", what);
		return NULL;
	}
	return (const char *)n->data.scalar.value;
}

static void sub(char *out, size_t cap, const char *path, const char *key)
{
	snprintf(out, cap, "%s%s%s", path, path[0] ? "." : "", key);
}

/* Walk a mapping against its table: each key once, each known. */
static void walk(struct ctx *x, yaml_node_t *n, const char *path, const struct key *keys, void *obj)
{
	if (n->type != YAML_MAPPING_NODE) {
		error_at(x, n, path[0] ? path : "(top)", "expected a mapping of keys");
		return;
	}
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node(x, p->key), *v = node(x, p->value);
		const char *name = k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "?";
		char kp[512];
		sub(kp, sizeof(kp), path, name);
		const struct key *e = keys;
		while (e->name && strcmp(e->name, name) != 0)
			e++;
		if (!e->name) {
			char known[600] = "";
			size_t u = 0;
			for (const struct key *q = keys; q->name && u < sizeof(known); q++)
				u += (size_t)snprintf(known + u, sizeof(known) - u, "%s%s", u ? ", " : "", q->name);
			error_at(x, k, kp, "unknown key (expected one of: %s)", known);
			continue;
		}
		for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++) {
			yaml_node_t *k2 = node(x, q->key);
			if (k2->type == YAML_SCALAR_NODE && strcmp((const char *)k2->data.scalar.value, name) == 0) {
				error_at(x, k, kp, "given twice");
				break; /* (once, however many came before) */
			}
		}
		if (e->kind == K_LATER) {
			error_at(x, k, kp, "not built yet (%s)", e->later);
			continue;
		}
		apply(x, e, v, kp, obj);
	}
}

/* ---- scalars ---- */

static bool as_uint(struct ctx *x, yaml_node_t *n, const char *path, unsigned long min, unsigned long max, uint32_t *out)
{
	const char *s = scalar(x, n, path, "a number");
	if (!s)
		return false;
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || !*s || *end || s[0] == '-' || v < min || v > max) {
		error_at(x, n, path, "'%s' is not a number from %lu to %lu", s, min, max);
		return false;
	}
	*out = (uint32_t)v;
	return true;
}

int config_parse_duration(const char *s, uint32_t *ms)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -EINVAL;
	unsigned long long mul = 0;
	if (!*end || strcmp(end, "ms") == 0)
		mul = 1;
	else if (strcmp(end, "s") == 0)
		mul = 1000;
	else if (strcmp(end, "m") == 0)
		mul = 60000;
	else if (strcmp(end, "h") == 0)
		mul = 3600000;
	else if (strcmp(end, "d") == 0)
		mul = 86400000;
	if (!mul || v > UINT32_MAX / mul)
		return -EINVAL;
	*ms = (uint32_t)(v * mul);
	return 0;
}

static bool as_duration(struct ctx *x, yaml_node_t *n, const char *path, uint32_t min, uint32_t max, uint32_t *out)
{
	const char *s = scalar(x, n, path, "a duration");
	uint32_t v;
	if (!s)
		return false;
	if (config_parse_duration(s, &v) < 0 || v < min || v > max) {
		error_at(x, n, path, "'%s' is not a duration from %ums to %ums (250ms, 2s, 5m, 1h, 1d, or ms)", s, min,
			 max);
		return false;
	}
	*out = v;
	return true;
}

int config_parse_size(const char *s, uint64_t *bytes)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -EINVAL;
	static const struct {
		const char *suffix;
		unsigned shift;
	} units[] = {{"", 0}, {"B", 0}, {"KiB", 10}, {"KB", 10}, {"K", 10}, {"MiB", 20}, {"MB", 20}, {"M", 20},
		     {"GiB", 30}, {"GB", 30}, {"G", 30}};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(end, units[i].suffix) == 0) {
			if (v > (UINT64_MAX >> 1) >> units[i].shift)
				return -EINVAL;
			*bytes = (uint64_t)v << units[i].shift;
			return 0;
		}
	}
	return -EINVAL;
}

static bool as_bool(struct ctx *x, yaml_node_t *n, const char *path, bool *out)
{
	const char *s = scalar(x, n, path, "true or false");
	if (!s)
		return false;
	static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
	for (int i = 0; i < 3; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	error_at(x, n, path, "'%s' is not true or false", s);
	return false;
}

/* A copy of a string of the file's for a field to point to: the config's
 * (c->strings, freed by config_free), however often the key is given. */
static const char *keep(struct ctx *x, yaml_node_t *n, const char *path)
{
	const char *s = scalar(x, n, path, "a string");
	if (!s)
		return NULL;
	char **grown = realloc(x->c->strings, (x->c->n_strings + 1) * sizeof(*grown));
	if (grown)
		x->c->strings = grown;
	char *copy = grown ? strdup(s) : NULL;
	if (!copy) {
		error_at(x, n, path, "out of memory");
		return NULL;
	}
	return x->c->strings[x->c->n_strings++] = copy;
}

/* An address list (CONFIG.md "Address list") into l, emptied first. */
static bool as_addr_list(struct ctx *x, yaml_node_t *n, const char *path, struct addr_list *l)
{
	if (n->type != YAML_SEQUENCE_NODE) {
		error_at(x, n, path, "expected an address list, as [localhost, private] or [\"!10.1.0.0/16\", 10.0.0.0/8]");
		return false;
	}
	memset(l, 0, sizeof(*l));
	bool ok = true;
	for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
		yaml_node_t *e = node(x, *i);
		const char *s = scalar(x, e, path, "an address, a prefix, any, none, localhost or private");
		char why[300];
		if (!s || config_parse_addr(l, s, why, sizeof(why)) < 0) {
			if (s)
				error_at(x, e, path, "%s", why);
			ok = false;
		}
	}
	return ok;
}

/* ---- top level ---- */

static void k_log_level(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	(void)o;
	const char *s = scalar(x, n, p, "a level");
	static const char *const names[] = {"error", "warning", "info", "debug"};
	for (int i = 0; s && i < 4; i++)
		if (strcmp(s, names[i]) == 0) {
			x->c->log_level = i + 1; /* 0: not set */
			return;
		}
	if (s)
		error_at(x, n, p, "unknown level \"%s\" (expected error, warning, info or debug)", s);
}

static void k_log_target(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	(void)o;
	const char *s = scalar(x, n, p, "a target");
	/* journald reads what syslog(3) writes to /dev/log: the same target */
	static const char *const names[] = {"stderr", "syslog", "journald"};
	for (int i = 0; s && i < 3; i++)
		if (strcmp(s, names[i]) == 0) {
			x->c->log_target = (i == 0 ? 0 : 1) + 1; /* 1 + enum log_target (0: not set) */
			return;
		}
	if (s)
		error_at(x, n, p, "unknown target \"%s\" (expected stderr, syslog or journald)", s);
}

static void k_log_queries(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	(void)o;
	const char *s = scalar(x, n, p, "a path, or off");
	if (!s)
		return;
	if (strcmp(s, "off") == 0 || strcmp(s, "false") == 0) {
		x->c->log_queries[0] = '\0';
		return;
	}
	if (!s[0] || strlen(s) >= sizeof(x->c->log_queries)) {
		error_at(x, n, p, "expected a path (under %zu bytes), or off", sizeof(x->c->log_queries));
		return;
	}
	snprintf(x->c->log_queries, sizeof(x->c->log_queries), "%s", s);
}

static void k_log(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	static const struct key keys[] = {
		KEY_FN("level", k_log_level),
		KEY_FN("target", k_log_target),
		KEY_FN("queries", k_log_queries),
		KEY_END,
	};
	walk(x, n, p, keys, o);
}

static void k_tls(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	static const struct key keys[] = {
		KEY_PATH("cert", struct config, tls_cert),
		KEY_PATH("key", struct config, tls_key),
		KEY_DURATION("handshake-timeout", struct config, tls_handshake_ms, 10, 600000),
		KEY_PATH("ca-file", struct config, ca_file),
		KEY_END,
	};
	walk(x, n, p, keys, o);
}

static void k_circuits(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	static const struct key keys[] = {
		KEY_UINT("inflight", struct config, circuit_inflight, 1, 32768),
		KEY_UINT("max", struct config, circuit_max, 1, CONFIG_CIRCUIT_MAX_LIMIT),
		KEY_DURATION("idle", struct config, circuit_idle_ms, 0, 3600000),
		KEY_DURATION("stall", struct config, circuit_stall_ms, 10, 600000),
		KEY_END,
	};
	walk(x, n, p, keys, o);
}

/* ---- listen ---- */

/* One listener's mapping: its url makes it, whatever the order of the
 * keys; what the others say is put in it after the walk. */
struct listen_ctx {
	bool has_url;
	struct listen_conf *l;     /* the listener its url made, else NULL */
	bool has_acl;
	struct addr_list acl;
	bool has_rl;
	struct ratelimit_conf rl;
};

static struct listen_conf *add_listen(struct ctx *x, yaml_node_t *n, const char *p, const char *url)
{
	char why[300];
	if (x->c->n_listens >= CONFIG_MAX_LISTENS) {
		error_at(x, n, p, "at most %d listeners", CONFIG_MAX_LISTENS);
		return NULL;
	}
	if (config_parse_listen(url, &x->c->listens[x->c->n_listens], why, sizeof(why)) < 0) {
		error_at(x, n, p, "%s", why);
		return NULL;
	}
	return &x->c->listens[x->c->n_listens++];
}

static void l_url(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	struct listen_ctx *lc = o;
	const char *s = scalar(x, n, p, "a listener URL");
	if (s)
		lc->l = add_listen(x, n, p, s);
	lc->has_url = true;
}

static void l_acl(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	struct listen_ctx *lc = o;
	if (!as_addr_list(x, n, p, &lc->acl))
		return;
	if (lc->acl.n == 0) {
		error_at(x, n, p, "an empty list refuses every client: write [none] if that is meant");
		return;
	}
	lc->has_acl = true;
}

/* ratelimit: {qps, burst, slip, ipv4-prefix, ipv6-prefix}, or off */
static void l_ratelimit(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	static const struct key keys[] = {
		KEY_UINT("qps", struct ratelimit_conf, qps, 1, 1000000),
		KEY_UINT("burst", struct ratelimit_conf, burst, 1, 1000000),
		KEY_UINT("slip", struct ratelimit_conf, slip, 0, 100),
		KEY_UINT("ipv4-prefix", struct ratelimit_conf, ipv4_prefix, 0, 32),
		KEY_UINT("ipv6-prefix", struct ratelimit_conf, ipv6_prefix, 0, 128),
		KEY_END,
	};
	struct listen_ctx *lc = o;
	lc->has_rl = true;
	memset(&lc->rl, 0, sizeof(lc->rl));
	if (n->type == YAML_SCALAR_NODE) { /* ratelimit: off */
		bool on = true;
		if (as_bool(x, n, p, &on) && on)
			error_at(x, n, p, "expected {qps: N, ...} or off");
		return;
	}
	config_ratelimit_defaults(&lc->rl);
	walk(x, n, p, keys, &lc->rl);
	if (n->type == YAML_MAPPING_NODE && !lc->rl.qps)
		error_at(x, n, p, "a rate limit needs qps (queries per second per client)");
}

static void l_path(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	(void)o;
	const char *s = scalar(x, n, p, "a path");
	if (!s)
		return;
	if (s[0] != '/' || strlen(s) >= sizeof(x->c->doh_path) || strchr(s, '?')) {
		error_at(x, n, p, "'%s' must start with / and be under %zu bytes, without '?'", s, sizeof(x->c->doh_path));
		return;
	}
	/* one DoH path for every listener, for now: a second, different one is an error */
	if (x->c->doh_path_set && strcmp(x->c->doh_path, s) != 0) {
		error_at(x, n, p, "'%s': every DoH listener has the same path (\"%s\" was given before)", s,
			 x->c->doh_path);
		return;
	}
	snprintf(x->c->doh_path, sizeof(x->c->doh_path), "%s", s);
	x->c->doh_path_set = true;
}

static void l_trusted(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	(void)o;
	if (n->type != YAML_SEQUENCE_NODE) {
		error_at(x, n, p, "expected a list of addresses");
		return;
	}
	for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
		yaml_node_t *e = node(x, *i);
		const char *s = scalar(x, e, p, "an address");
		char why[300];
		if (s && config_add_trusted_proxy(x->c, s, why, sizeof(why)) < 0)
			error_at(x, e, p, "%s", why);
	}
}

static void k_listen(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	(void)o;
	static const struct key keys[] = {
		KEY_FN("url", l_url),
		KEY_FN("path", l_path),
		KEY_FN("trusted-proxies", l_trusted),
		KEY_FN("acl", l_acl),
		KEY_FN("ratelimit", l_ratelimit),
		KEY_END,
	};
	if (n->type != YAML_SEQUENCE_NODE) {
		error_at(x, n, p, "expected a list of listeners");
		return;
	}
	for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
		yaml_node_t *e = node(x, *i);
		char ip[520];
		snprintf(ip, sizeof(ip), "%s[%ld]", p, (long)(i - n->data.sequence.items.start));
		if (e->type == YAML_SCALAR_NODE) {
			add_listen(x, e, ip, (const char *)e->data.scalar.value);
			continue;
		}
		struct listen_ctx lc = {.has_url = false};
		walk(x, e, ip, keys, &lc);
		if (!lc.has_url && e->type == YAML_MAPPING_NODE)
			error_at(x, e, ip, "a listener needs a url");
		if (!lc.l)
			continue;
		lc.l->has_acl = lc.has_acl;
		if (lc.has_acl)
			lc.l->acl = lc.acl;
		if (lc.has_rl)
			lc.l->rl = lc.rl;
	}
}

/* ---- pools ---- */

static struct upstream_conf *add_member(struct ctx *x, yaml_node_t *n, const char *p, unsigned pool, const char *url)
{
	char why[300];
	if (x->c->n_upstreams >= CONFIG_MAX_UPSTREAMS) {
		error_at(x, n, p, "at most %d upstreams in all", CONFIG_MAX_UPSTREAMS);
		return NULL;
	}
	struct upstream_conf *u = &x->c->upstreams[x->c->n_upstreams];
	if (config_parse_upstream(url, u, why, sizeof(why)) < 0) {
		error_at(x, n, p, "%s", why);
		return NULL;
	}
	u->pool = pool;
	u->weight = 1;
	x->c->n_upstreams++;
	x->c->pools[pool].n_members++;
	return u;
}

static void m_url_done(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	(void)x, (void)n, (void)p, (void)o; /* taken first, by p_members */
}

static void p_members(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	unsigned pool = (unsigned)((struct pool_conf *)o - x->c->pools);
	static const struct key keys[] = {
		KEY_FN("url", m_url_done),
		KEY_UINT("weight", struct upstream_conf, weight, 1, 1000000),
		KEY_UINT("max-inflight", struct upstream_conf, max_inflight, 1, 1000000),
		KEY_END,
	};
	if (n->type != YAML_SEQUENCE_NODE) {
		error_at(x, n, p, "expected a list of upstream URLs");
		return;
	}
	for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
		yaml_node_t *e = node(x, *i);
		char ip[520];
		snprintf(ip, sizeof(ip), "%s[%ld]", p, (long)(i - n->data.sequence.items.start));
		if (e->type == YAML_SCALAR_NODE) {
			add_member(x, e, ip, pool, (const char *)e->data.scalar.value);
			continue;
		}
		if (e->type != YAML_MAPPING_NODE) {
			error_at(x, e, ip, "expected an upstream URL or {url: ..., weight: ..., max-inflight: ...}");
			continue;
		}
		/* the url first, whatever the order the keys were written in */
		struct upstream_conf *u = NULL;
		bool has_url = false;
		for (yaml_node_pair_t *q = e->data.mapping.pairs.start; q < e->data.mapping.pairs.top; q++) {
			yaml_node_t *k = node(x, q->key), *v = node(x, q->value);
			if (k->type != YAML_SCALAR_NODE || strcmp((const char *)k->data.scalar.value, "url") != 0)
				continue;
			char kp[560];
			sub(kp, sizeof(kp), ip, "url");
			const char *url = scalar(x, v, kp, "an upstream URL");
			has_url = true;
			if (url && !u)
				u = add_member(x, v, kp, pool, url);
		}
		if (!has_url)
			error_at(x, e, ip, "a member needs a url");
		if (u)
			walk(x, e, ip, keys, u);
	}
}

static struct pool_conf *pool_of(struct ctx *x, void *o)
{
	(void)x;
	return o;
}

static void p_policy(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	const char *s = scalar(x, n, p, "a policy");
	static const char *const names[] = {"round-robin", "random", "least-outstanding", "fastest", "failover"};
	for (int i = 0; s && i < 5; i++)
		if (strcmp(s, names[i]) == 0) {
			pool_of(x, o)->policy = (enum pool_policy)i;
			return;
		}
	if (s)
		error_at(x, n, p, "unknown policy \"%s\" (expected round-robin, random, least-outstanding, fastest or failover)",
			 s);
}

static void h_query(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	struct health_conf *h = o;
	const char *s = scalar(x, n, p, "a query: NAME [CLASS] TYPE");
	if (!s)
		return;
	char name[256], a[16] = "", b[16] = "";
	int k = sscanf(s, "%255s %15s %15s", name, a, b);
	uint8_t dn[KNOT_DNAME_MAXLEN];
	uint16_t type = 0, cls = KNOT_CLASS_IN;
	const char *ts = k == 3 ? b : a;
	if (k >= 3 && knot_rrclass_from_string(a, &cls) != 0)
		k = -1;
	if (k < 2 || !knot_dname_from_str(dn, name, sizeof(dn)) || knot_rrtype_from_string(ts, &type) != 0) {
		error_at(x, n, p, "'%s' is not NAME [CLASS] TYPE, as \"id.server. CH TXT\"", s);
		return;
	}
	snprintf(h->query_name, sizeof(h->query_name), "%s", name);
	h->query_type = type;
	h->query_class = cls;
}

static void h_all_down(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	/* o is the health_conf inside a pool_conf */
	struct pool_conf *pc = (struct pool_conf *)((char *)o - offsetof(struct pool_conf, health));
	const char *s = scalar(x, n, p, "servfail or least-bad");
	if (s && strcmp(s, "servfail") == 0)
		pc->when_all_down = ALL_DOWN_SERVFAIL;
	else if (s && strcmp(s, "least-bad") == 0)
		pc->when_all_down = ALL_DOWN_LEAST_BAD;
	else if (s)
		error_at(x, n, p, "unknown value \"%s\" (expected servfail or least-bad)", s);
}

static const struct key health_keys[] = {
	KEY_FN("query", h_query),
	KEY_DURATION("interval", struct health_conf, interval_ms, 10, 3600000),
	KEY_DURATION("timeout", struct health_conf, timeout_ms, 10, 600000),
	KEY_UINT("fall", struct health_conf, fall, 1, 100),
	KEY_UINT("rise", struct health_conf, rise, 1, 100),
	KEY_FN("when-all-down", h_all_down),
	KEY_END,
};

static void p_health(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	walk(x, n, p, health_keys, &pool_of(x, o)->health);
}

static void pool_defaults(struct pool_conf *pc, const char *name)
{
	memset(pc, 0, sizeof(*pc));
	snprintf(pc->name, sizeof(pc->name), "%s", name);
	pc->policy = POOL_ROUND_ROBIN;
	pc->when_all_down = ALL_DOWN_LEAST_BAD;
	snprintf(pc->health.query_name, sizeof(pc->health.query_name), "id.server.");
	pc->health.query_type = KNOT_RRTYPE_TXT;
	pc->health.query_class = KNOT_CLASS_CH;
	pc->health.timeout_ms = 500;
	pc->health.fall = 3;
	pc->health.rise = 2;
}

int config_find_pool(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n_pools; i++)
		if (strcmp(c->pools[i].name, name) == 0)
			return (int)i;
	return -1;
}

int config_add_pool(struct config *c, const char *name)
{
	int i = config_find_pool(c, name);
	if (i >= 0)
		return i;
	if (c->n_pools >= CONFIG_MAX_POOLS)
		return -ENOSPC;
	pool_defaults(&c->pools[c->n_pools], name);
	return (int)c->n_pools++;
}

static void k_pools(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	(void)o;
	static const struct key keys[] = {
		KEY_FN("policy", p_policy),
		KEY_DURATION("timeout", struct pool_conf, timeout_ms, 10, 600000),
		KEY_UINT("retries", struct pool_conf, retries, 0, 16),
		KEY_FN("members", p_members),
		KEY_FN("health", p_health),
		KEY_END,
	};
	if (n->type != YAML_MAPPING_NODE) {
		error_at(x, n, p, "expected a mapping of pool names to pools");
		return;
	}
	for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < n->data.mapping.pairs.top; q++) {
		yaml_node_t *k = node(x, q->key), *v = node(x, q->value);
		const char *name = scalar(x, k, p, "a pool name");
		if (!name)
			continue;
		char kp[512];
		sub(kp, sizeof(kp), p, name);
		if (strlen(name) >= sizeof(x->c->pools[0].name) || config_find_pool(x->c, name) >= 0) {
			error_at(x, k, kp, "a pool name must be unique and under 64 characters");
			continue;
		}
		int idx = config_add_pool(x->c, name);
		if (idx < 0) {
			error_at(x, k, kp, "at most %d pools", CONFIG_MAX_POOLS);
			continue;
		}
		walk(x, v, kp, keys, &x->c->pools[idx]);
		if (x->c->pools[idx].n_members == 0)
			error_at(x, v, kp, "a pool needs members");
	}
}

/* ---- routes ---- */

struct route_ctx {
	struct route_conf *r;
	bool has_match;
	yaml_node_t *pool_node;
	char pool[64];
};

/* The route's one match (a suffix or a regex): its text, or NULL. */
static const char *match_text(struct ctx *x, yaml_node_t *n, const char *p, struct route_ctx *rc, enum route_kind kind)
{
	const char *s = scalar(x, n, p, kind == ROUTE_SUFFIX ? "a domain name" : "a regular expression");
	if (!s)
		return NULL;
	if (rc->has_match) {
		error_at(x, n, p, "a route has one suffix or one regex");
		return NULL;
	}
	rc->has_match = true;
	rc->r->kind = kind;
	return s;
}

static void r_suffix(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	struct route_ctx *rc = o;
	const char *s = match_text(x, n, p, rc, ROUTE_SUFFIX);
	if (!s)
		return;
	const char *t = strcmp(s, ".") == 0 ? "." : s;
	if (!knot_dname_from_str(rc->r->suffix, t, sizeof(rc->r->suffix))) {
		error_at(x, n, p, "'%s' is not a domain name", s);
		return;
	}
	knot_dname_to_lower(rc->r->suffix);
}

static void r_regex(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	struct route_ctx *rc = o;
	const char *s = match_text(x, n, p, rc, ROUTE_REGEX);
	if (!s)
		return;
	int code;
	PCRE2_SIZE off;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)s, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &code, &off, NULL);
	if (!re) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(code, msg, sizeof(msg));
		error_at(x, n, p, "'%s' is not a regular expression: %s at offset %zu", s, (const char *)msg, (size_t)off);
		return;
	}
	pcre2_code_free(re);
	rc->r->regex = strdup(s);
}

static void r_pool(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	struct route_ctx *rc = o;
	const char *s = scalar(x, n, p, "a pool name");
	if (s) {
		snprintf(rc->pool, sizeof(rc->pool), "%s", s);
		rc->pool_node = n;
	}
}

static void r_qtype(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	struct route_ctx *rc = o;
	yaml_node_item_t one = 0, *start = &one, *top = &one + 1;
	if (n->type == YAML_SEQUENCE_NODE) {
		start = n->data.sequence.items.start;
		top = n->data.sequence.items.top;
	}
	for (yaml_node_item_t *i = start; i < top; i++) {
		yaml_node_t *e = n->type == YAML_SEQUENCE_NODE ? node(x, *i) : n;
		const char *s = scalar(x, e, p, "a type or a list of types");
		uint16_t t;
		if (!s)
			continue;
		if (knot_rrtype_from_string(s, &t) != 0) {
			error_at(x, e, p, "unknown type \"%s\"", s);
			continue;
		}
		if (rc->r->n_qtypes >= CONFIG_MAX_QTYPES) {
			error_at(x, e, p, "at most %d types", CONFIG_MAX_QTYPES);
			return;
		}
		rc->r->qtypes[rc->r->n_qtypes++] = t;
	}
}

static void r_client(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	struct route_ctx *rc = o;
	free(rc->r->clients); /* client: given twice (walk said so): the last one */
	rc->r->clients = calloc(1, sizeof(*rc->r->clients));
	if (!rc->r->clients)
		return;
	(void)as_addr_list(x, n, p, rc->r->clients);
}

static void r_cache(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	struct route_ctx *rc = o;
	bool on;
	if (as_bool(x, n, p, &on))
		rc->r->no_cache = !on;
}

/* The zeroed array for a list of at most max items (n a sequence), or NULL
 * with the error said ("at most MAX WHAT", or no memory). */
static void *list_alloc(struct ctx *x, yaml_node_t *n, const char *p, size_t max, const char *what, size_t size)
{
	size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (count > max) {
		error_at(x, n, p, "at most %zu %s", max, what);
		return NULL;
	}
	void *a = calloc(count ? count : 1, size);
	if (!a)
		error_at(x, n, p, "out of memory");
	return a;
}

static void k_routes(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	(void)o;
	static const struct key keys[] = {
		KEY_FN("suffix", r_suffix), KEY_FN("regex", r_regex),   KEY_FN("pool", r_pool),
		KEY_FN("qtype", r_qtype),   KEY_FN("client", r_client), KEY_FN("cache", r_cache),
		KEY_END,
	};
	if (n->type != YAML_SEQUENCE_NODE) {
		error_at(x, n, p, "expected a list of routes");
		return;
	}
	if (x->c->routes)
		return; /* a second routes: key (walk said "given twice"); n_routes counts the first */
	if (!(x->c->routes = list_alloc(x, n, p, CONFIG_MAX_ROUTES, "routes", sizeof(*x->c->routes))))
		return;
	for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
		yaml_node_t *e = node(x, *i);
		char ip[520];
		snprintf(ip, sizeof(ip), "%s[%ld]", p, (long)(i - n->data.sequence.items.start));
		struct route_ctx rc = {.r = &x->c->routes[x->c->n_routes++]};
		rc.r->line = (unsigned)e->start_mark.line + 1;
		walk(x, e, ip, keys, &rc);
		if (e->type != YAML_MAPPING_NODE)
			continue;
		if (!rc.has_match)
			error_at(x, e, ip, "a route needs a suffix or a regex");
		if (!rc.pool_node)
			error_at(x, e, ip, "a route needs a pool");
		snprintf(rc.r->pool_name, sizeof(rc.r->pool_name), "%s", rc.pool);
		rc.r->pool_line = rc.pool_node ? (unsigned)rc.pool_node->start_mark.line + 1 : 0;
		rc.r->pool_col = rc.pool_node ? (unsigned)rc.pool_node->start_mark.column + 1 : 0;
	}
}

/* After the whole file: the pools routes name (pools may come after routes). */
static void resolve_pools(struct ctx *x)
{
	for (size_t i = 0; i < x->c->n_routes; i++) {
		struct route_conf *r = &x->c->routes[i];
		int p = r->pool_line ? config_find_pool(x->c, r->pool_name) : 0;
		if (p >= 0) {
			r->pool = (unsigned)p;
			continue;
		}
		yaml_node_t fake = {.start_mark = {.line = r->pool_line - 1, .column = r->pool_col - 1}};
		char path[64];
		snprintf(path, sizeof(path), "routes[%zu].pool", i);
		error_at(x, &fake, path, "no pool named \"%s\"", r->pool_name);
	}
}

/* ---- cache: ---- */

#define CACHE_SIZE_MAX (64ull << 30)

static void c_size(struct ctx *x, yaml_node_t *n, const char *path, void *o)
{
	const char *s = scalar(x, n, path, "a size");
	uint64_t v;
	if (!s)
		return;
	if (config_parse_size(s, &v) < 0 || v > CACHE_SIZE_MAX)
		error_at(x, n, path, "'%s' is not a size up to 64GiB (512, 64KiB, 64MiB, 1GiB; 0 turns the cache off)", s);
	else
		((struct cache_conf *)o)->size = v;
}

static void ttl_s(struct ctx *x, yaml_node_t *n, const char *path, uint32_t *out)
{
	uint32_t ms;
	if (as_duration(x, n, path, 0, 7u * 86400000u, &ms))
		*out = ms / 1000;
}

static void c_min_ttl(struct ctx *x, yaml_node_t *n, const char *path, void *o)
{
	ttl_s(x, n, path, &((struct cache_conf *)o)->min_ttl_s);
}

static void c_max_ttl(struct ctx *x, yaml_node_t *n, const char *path, void *o)
{
	ttl_s(x, n, path, &((struct cache_conf *)o)->max_ttl_s);
}

static void c_neg_max_ttl(struct ctx *x, yaml_node_t *n, const char *path, void *o)
{
	ttl_s(x, n, path, &((struct cache_conf *)o)->neg_max_ttl_s);
}

/* serve-stale: off, or how long past expiry (RFC 8767 suggests 1 to 3 days) */
static void c_stale(struct ctx *x, yaml_node_t *n, const char *path, void *o)
{
	bool on;
	if (n->type == YAML_SCALAR_NODE && (strcasecmp((const char *)n->data.scalar.value, "off") == 0 ||
					    strcasecmp((const char *)n->data.scalar.value, "false") == 0)) {
		(void)as_bool(x, n, path, &on);
		((struct cache_conf *)o)->stale_s = 0;
		return;
	}
	ttl_s(x, n, path, &((struct cache_conf *)o)->stale_s);
}

static void c_prefetch(struct ctx *x, yaml_node_t *n, const char *path, void *o)
{
	(void)as_bool(x, n, path, &((struct cache_conf *)o)->prefetch);
}

static void k_cache(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	static const struct key keys[] = {
		KEY_FN("size", c_size),
		KEY_FN("min-ttl", c_min_ttl),
		KEY_FN("max-ttl", c_max_ttl),
		KEY_FN("negative-max-ttl", c_neg_max_ttl),
		KEY_FN("serve-stale", c_stale),
		KEY_FN("prefetch", c_prefetch),
		KEY_END,
	};
	struct config *c = o;
	c->cache_given = true;
	if (n->type == YAML_SCALAR_NODE) { /* cache: off / on */
		bool on;
		if (as_bool(x, n, p, &on))
			c->cache.size = on ? CONFIG_CACHE_SIZE_DEFAULT : 0;
		return;
	}
	c->cache.size = CONFIG_CACHE_SIZE_DEFAULT;
	walk(x, n, p, keys, &c->cache);
	if (c->cache.min_ttl_s > c->cache.max_ttl_s)
		error_at(x, n, p, "min-ttl (%us) is above max-ttl (%us)", c->cache.min_ttl_s, c->cache.max_ttl_s);
}

/* ---- etcd (config/etcd.c) ---- */

static void e_endpoints(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	struct etcd_conf *e = o;
	if (n->type != YAML_SEQUENCE_NODE) {
		error_at(x, n, p, "expected a list of URLs (http://IP:PORT)");
		return;
	}
	e->n_endpoints = 0;
	for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
		yaml_node_t *v = node(x, *i);
		const char *s = scalar(x, v, p, "an etcd URL");
		if (!s)
			continue;
		if ((strncmp(s, "http://", 7) != 0 && strncmp(s, "https://", 8) != 0) || strlen(s) >= sizeof(e->endpoints[0]))
			error_at(x, v, p, "'%s' is not http://HOST:PORT or https://HOST:PORT under %zu bytes", s,
				 sizeof(e->endpoints[0]));
		else if (e->n_endpoints >= sizeof(e->endpoints) / sizeof(e->endpoints[0]))
			error_at(x, v, p, "at most %zu endpoints", sizeof(e->endpoints) / sizeof(e->endpoints[0]));
		else
			snprintf(e->endpoints[e->n_endpoints++], sizeof(e->endpoints[0]), "%s", s);
	}
}

static void e_prefix(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	struct etcd_conf *e = o;
	const char *s = scalar(x, n, p, "a key prefix");
	if (s && (!s[0] || strlen(s) >= sizeof(e->prefix)))
		error_at(x, n, p, "a prefix must be 1-%zu bytes", sizeof(e->prefix) - 1);
	else if (s)
		snprintf(e->prefix, sizeof(e->prefix), "%s", s);
}

static void e_policy(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	struct pool_conf pc;
	pc.policy = ((struct etcd_conf *)o)->policy;
	p_policy(x, n, p, &pc);
	((struct etcd_conf *)o)->policy = pc.policy;
}

static void e_health(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	static const struct key keys[] = { /* health_keys but when-all-down, which is a pool's */
		KEY_FN("query", h_query),
		KEY_DURATION("interval", struct health_conf, interval_ms, 10, 3600000),
		KEY_DURATION("timeout", struct health_conf, timeout_ms, 10, 600000),
		KEY_UINT("fall", struct health_conf, fall, 1, 100),
		KEY_UINT("rise", struct health_conf, rise, 1, 100),
		KEY_END,
	};
	walk(x, n, p, keys, &((struct etcd_conf *)o)->health);
}

/* Pools made from etcd keys are pools with the defaults, probed every second. */
static void k_etcd(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	static const struct key keys[] = {
		KEY_FN("endpoints", e_endpoints), KEY_FN("prefix", e_prefix),
		KEY_FN("policy", e_policy),       KEY_FN("health", e_health),
		KEY_END,
	};
	struct config *c = o;
	struct pool_conf d;
	pool_defaults(&d, "etcd");
	memset(&c->etcd, 0, sizeof(c->etcd));
	c->etcd.policy = d.policy;
	c->etcd.health = d.health;
	c->etcd.health.interval_ms = 1000;
	snprintf(c->etcd.prefix, sizeof(c->etcd.prefix), "/dnsrouter/");
	walk(x, n, p, keys, &c->etcd);
	if (c->etcd.n_endpoints == 0)
		snprintf(c->etcd.endpoints[c->etcd.n_endpoints++], sizeof(c->etcd.endpoints[0]), "http://127.0.0.1:2379");
	c->has_etcd = true;
}

/* ---- dns64: ---- */

struct dns64_ctx {
	struct dns64_conf *e;
	yaml_node_t *prefix_node, *suffix_node;
	uint8_t suffix[16];
};

/* "64:ff9b::/96": one of RFC 6052's lengths, no bits past it, the u-octet
 * (bits 64-71) zero */
static void d_prefix(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	struct dns64_ctx *dc = o;
	const char *s = scalar(x, n, p, "an IPv6 prefix");
	if (!s)
		return;
	char addr[INET6_ADDRSTRLEN + 8];
	snprintf(addr, sizeof(addr), "%s", s);
	char *slash = strchr(addr, '/'), *end = NULL;
	unsigned long len = slash ? strtoul(slash + 1, &end, 10) : 0;
	if (slash)
		*slash = '\0';
	uint8_t b[16];
	if (!slash || !end || *end || end == slash + 1 || inet_pton(AF_INET6, addr, b) != 1) {
		error_at(x, n, p, "'%s' is not an IPv6 prefix (as 64:ff9b::/96)", s);
		return;
	}
	if (!dns64_prefix_len_ok((unsigned)len)) {
		error_at(x, n, p, "'%s': the length must be one of RFC 6052's: 32, 40, 48, 56, 64 or 96", s);
		return;
	}
	for (unsigned i = (unsigned)len / 8; i < 16; i++)
		if (b[i]) {
			error_at(x, n, p, "'%s' has bits set past /%lu", s, len);
			return;
		}
	if (b[8]) {
		error_at(x, n, p, "'%s': bits 64-71 (the u-octet) must be zero (RFC 6052 2.2)", s);
		return;
	}
	memcpy(dc->e->bits, b, 16);
	dc->e->prefix_len = (uint8_t)len;
	dc->prefix_node = n;
}

static void d_suffix(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	struct dns64_ctx *dc = o;
	const char *s = scalar(x, n, p, "an IPv6 address");
	if (s && inet_pton(AF_INET6, s, dc->suffix) != 1)
		error_at(x, n, p, "'%s' is not an IPv6 address (as ::42)", s);
	else if (s)
		dc->suffix_node = n;
}

static void d_list(struct ctx *x, yaml_node_t *n, const char *p, struct addr_list *l, bool *has)
{
	*has = true;
	(void)as_addr_list(x, n, p, l);
}

static void d_clients(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	struct dns64_conf *e = ((struct dns64_ctx *)o)->e;
	d_list(x, n, p, &e->clients, &e->has_clients);
}

static void d_mapped(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	struct dns64_conf *e = ((struct dns64_ctx *)o)->e;
	d_list(x, n, p, &e->mapped, &e->has_mapped);
}

static void d_exclude(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	struct dns64_conf *e = ((struct dns64_ctx *)o)->e;
	d_list(x, n, p, &e->exclude, &e->has_exclude);
}

static void d_break(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	(void)as_bool(x, n, p, &((struct dns64_ctx *)o)->e->break_dnssec);
}

static void k_dns64(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	(void)o;
	static const struct key keys[] = {
		KEY_FN("prefix", d_prefix),   KEY_FN("clients", d_clients), KEY_FN("mapped", d_mapped),
		KEY_FN("exclude", d_exclude), KEY_FN("suffix", d_suffix),   KEY_FN("break-dnssec", d_break),
		KEY_END,
	};
	if (n->type != YAML_SEQUENCE_NODE) {
		error_at(x, n, p, "expected a list of dns64 entries (each with a prefix)");
		return;
	}
	if (x->c->dns64)
		return; /* a second dns64: key (walk said "given twice") */
	if (!(x->c->dns64 = list_alloc(x, n, p, CONFIG_MAX_DNS64, "entries", sizeof(*x->c->dns64))))
		return;
	for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top; i++) {
		yaml_node_t *e = node(x, *i);
		char ip[520];
		snprintf(ip, sizeof(ip), "%s[%ld]", p, (long)(i - n->data.sequence.items.start));
		struct dns64_ctx dc = {.e = &x->c->dns64[x->c->n_dns64++]};
		dc.e->line = (unsigned)e->start_mark.line + 1;
		walk(x, e, ip, keys, &dc);
		if (e->type != YAML_MAPPING_NODE)
			continue;
		if (!dc.prefix_node) {
			if (!dc.e->prefix_len)
				error_at(x, e, ip, "an entry needs a prefix");
			continue;
		}
		if (!dc.suffix_node)
			continue;
		/* BIND's rule: the suffix has no bits where the prefix, the IPv4
		 * address and the u-octet are */
		unsigned from = dns64_suffix_start(dc.e->prefix_len);
		for (unsigned k = 0; k < from; k++)
			if (dc.suffix[k]) {
				char sp[540];
				sub(sp, sizeof(sp), ip, "suffix");
				error_at(x, dc.suffix_node, sp,
					 "'%s' does not fit after a /%u prefix and the IPv4 address: only its last %u bits "
					 "may be set",
					 (const char *)dc.suffix_node->data.scalar.value, dc.e->prefix_len, (16 - from) * 8);
				break;
			}
		memcpy(dc.e->bits + from, dc.suffix + from, 16 - from);
	}
}

static void k_metrics(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	(void)o;
	char why[256];
	const char *s = scalar(x, n, p, "ADDR:PORT");
	if (s && config_set_metrics(x->c, s, why, sizeof(why)) < 0)
		error_at(x, n, p, "%s", why);
}

static void k_control(struct ctx *x, yaml_node_t *n, const char *p, void *o)
{
	(void)o;
	char why[300];
	const char *s = scalar(x, n, p, "a unix socket path");
	if (s && config_set_control(x->c, s, why, sizeof(why)) < 0)
		error_at(x, n, p, "%s", why);
}

static const struct key top_keys[] = {
	KEY_UINT("threads", struct config, threads, 1, CONFIG_MAX_THREADS),
	KEY_DURATION("timeout", struct config, timeout_ms, 10, 600000),
	KEY_UINT("max-inflight", struct config, max_inflight, 1, 1000000),
	KEY_DURATION("udp-retry", struct config, udp_retry_ms, 10, 600000),
	KEY_FN("log", k_log),
	KEY_FN("tls", k_tls),
	KEY_FN("circuits", k_circuits),
	KEY_FN("listen", k_listen),
	KEY_FN("pools", k_pools),
	KEY_FN("routes", k_routes),
	KEY_FN("etcd", k_etcd),
	KEY_PATH("user", struct config, user),
	KEY_PATH("chroot", struct config, chroot_dir),
	KEY_FN("cache", k_cache),
	KEY_FN("dns64", k_dns64),
	KEY_FN("metrics", k_metrics),
	KEY_FN("control", k_control),
	KEY_END,
};

/* One file, one configuration: what follows a "---" would be ignored
 * without a word (half a configuration lost to a stray line), so a second
 * document -- or bytes after the first that are not YAML -- is an error. */
static void second_document(struct ctx *x, yaml_parser_t *parser)
{
	yaml_document_t next;
	if (!yaml_parser_load(parser, &next)) {
		yaml_node_t at = {.start_mark = parser->problem_mark};
		error_at(x, &at, "(top)", "not YAML after the first document: %s", parser->problem ? parser->problem : "?");
		return;
	}
	yaml_node_t *root = yaml_document_get_root_node(&next);
	if (root)
		error_at(x, root, "(top)", "a second YAML document: a file holds one configuration");
	yaml_document_delete(&next);
}

int config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
	struct ctx x = {.file = path, .c = c, .err = err, .errlen = errlen};
	err[0] = '\0';
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -EINVAL;
	}
	yaml_parser_t parser;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, f);
	int ok = yaml_parser_load(&parser, &x.doc);
	if (!ok) {
		snprintf(err, errlen, "%s:%zu:%zu: not YAML: %s%s%s", path, parser.problem_mark.line + 1,
			 parser.problem_mark.column + 1, parser.problem ? parser.problem : "?", parser.context ? " " : "",
			 parser.context ? parser.context : "");
		yaml_parser_delete(&parser);
		fclose(f);
		return -EINVAL;
	}
	snprintf(c->file, sizeof(c->file), "%s", path);
	yaml_node_t *root = yaml_document_get_root_node(&x.doc);
	if (root) {
		walk(&x, root, "", top_keys, c); /* (sections of struct config pass it on) */
		resolve_pools(&x);
	}
	yaml_document_delete(&x.doc);
	if (root)
		second_document(&x, &parser);
	yaml_parser_delete(&parser);
	fclose(f);
	return x.n_errors ? -EINVAL : 0;
}

void config_free(struct config *c)
{
	free(c->dns64);
	c->dns64 = NULL;
	c->n_dns64 = 0;
	for (size_t i = 0; i < c->n_routes; i++) {
		free(c->routes[i].regex);
		free(c->routes[i].clients);
	}
	free(c->routes);
	c->routes = NULL;
	c->n_routes = 0;
	for (size_t i = 0; i < c->n_strings; i++)
		free(c->strings[i]); /* (the fields pointing to them go with the config) */
	free(c->strings);
	c->strings = NULL;
	c->n_strings = 0;
}
