/* config.c -- defaults, URL parsing and validation of struct config. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libknot/libknot.h>
#include "config/config.h"
#include "tls/creds.h"

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->threads = 1;
	c->timeout_ms = 2000;
	c->udp_retry_ms = 500;
	c->max_inflight = 10000;
	c->circuit_inflight = 1000;
	c->circuit_max = 4;
	c->circuit_idle_ms = 10000;
	c->circuit_stall_ms = 1000;
	c->tcp_idle_ms = 10000;
	c->tcp_max_clients = 1024;
	c->tcp_pipeline = 128;
	c->tls_handshake_ms = 5000;
	snprintf(c->doh_path, sizeof(c->doh_path), "/dns-query");
	c->cache.max_ttl_s = 86400;
	c->cache.neg_max_ttl_s = 3600;
	c->cache.prefetch = true;
}

/* The embedded default: a local stub listener forwarding over persistent
 * DNS-over-TLS circuits to two well-known public resolvers (Quad9,
 * Cloudflare), verified against the system CA store. */
void config_apply_embedded(struct config *c)
{
	static const char *const listens[] = {"127.0.0.1:53"};
	static const char *const upstreams[] = {"tls://9.9.9.9#dns.quad9.net", "tls://1.1.1.1#cloudflare-dns.com"};
	char err[128];
	c->embedded_default = true;
	if (!c->cache_given) /* DESIGN.md: the embedded default caches */
		c->cache.size = CONFIG_CACHE_SIZE_DEFAULT;
	bool has_listens = c->n_listens != 0; /* socket activation's, the passed sockets (core/systemd.h) */
	for (size_t i = 0; !has_listens && i < sizeof(listens) / sizeof(*listens); i++)
		if (config_parse_listen(listens[i], &c->listens[c->n_listens], err, sizeof(err)) == 0)
			c->n_listens++;
	for (size_t i = 0; i < sizeof(upstreams) / sizeof(*upstreams); i++)
		if (config_parse_upstream(upstreams[i], &c->upstreams[c->n_upstreams], err, sizeof(err)) == 0)
			c->n_upstreams++;
}

void config_addr_str(const struct sockaddr_storage *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)a;
		inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(s->sin_port));
	} else if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)a;
		inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(s->sin6_port));
	} else if (a->ss_family == AF_UNIX) {
		snprintf(buf, len, "%s", ((const struct sockaddr_un *)a)->sun_path);
	} else {
		snprintf(buf, len, "?");
	}
}

bool config_addr_is_any(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
	if (a->ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
	return false;
}

/* "IP", "IP:PORT", "[IP6]", "[IP6]:PORT" -> sockaddr; default_port when absent (0: required). */
static int parse_hostport(const char *s, int default_port, struct sockaddr_storage *out, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *port_s = NULL;
	memset(out, 0, sizeof(*out));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || (size_t)(close - s - 1) >= sizeof(host)) {
			snprintf(err, errlen, "'%s': unterminated or overlong [IPv6] address", s);
			return -EINVAL;
		}
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = '\0';
		if (close[1] == ':')
			port_s = close + 2;
		else if (close[1] != '\0') {
			snprintf(err, errlen, "'%s': junk after ']'", s);
			return -EINVAL;
		}
	} else {
		const char *colon = strrchr(s, ':');
		size_t hl = colon ? (size_t)(colon - s) : strlen(s);
		if (colon && strchr(s, ':') != colon) {
			snprintf(err, errlen, "'%s': write IPv6 addresses in brackets, as [::1]:53", s);
			return -EINVAL;
		}
		if (hl >= sizeof(host)) {
			snprintf(err, errlen, "'%s': address too long", s);
			return -EINVAL;
		}
		memcpy(host, s, hl);
		host[hl] = '\0';
		if (colon)
			port_s = colon + 1;
	}
	long port = default_port;
	if (port_s) {
		char *end;
		errno = 0;
		port = strtol(port_s, &end, 10);
		if (errno || *port_s == '\0' || *end != '\0' || port < 1 || port > 65535) {
			snprintf(err, errlen, "'%s': port must be 1-65535", s);
			return -EINVAL;
		}
	} else if (port <= 0) {
		snprintf(err, errlen, "'%s': a port is required (ADDR:PORT)", s);
		return -EINVAL;
	}
	struct sockaddr_in *v4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
	} else {
		snprintf(err, errlen, "'%s': '%s' is not an IP address", s, host);
		return -EINVAL;
	}
	return 0;
}

static const char *strip_prefix(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);
	return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

int config_parse_listen(const char *s, struct listen_conf *l, char *err, size_t errlen)
{
	const char *rest;
	memset(l, 0, sizeof(*l));
	if ((rest = strip_prefix(s, "udp://")))
		l->protos = LISTEN_UDP;
	else if ((rest = strip_prefix(s, "https://")))
		l->protos = LISTEN_HTTP | LISTEN_TLS;
	else if ((rest = strip_prefix(s, "http://")))
		l->protos = LISTEN_HTTP;
	else if ((rest = strip_prefix(s, "tls://")))
		l->protos = LISTEN_TLS;
	else if ((rest = strip_prefix(s, "tcp://")))
		l->protos = LISTEN_TCP;
	else if (strstr(s, "://")) {
		snprintf(err, errlen, "'%s': unknown listener scheme (udp://, tcp://, tls://, https://, http:// or ADDR:PORT)", s);
		return -EINVAL;
	} else {
		rest = s;
		l->protos = LISTEN_UDP | LISTEN_TCP;
	}
	int r = parse_hostport(rest, 0, &l->addr, err, errlen);
	if (r < 0)
		return r;
	config_addr_str(&l->addr, l->text, sizeof(l->text));
	return 0;
}

/* The pins (?pin=sha256/BASE64[&pin=...]) and, for https://, method=get|post. */
static int parse_params(const char *s, char *query, struct upstream_conf *u, char *err, size_t errlen)
{
	char *save = NULL;
	for (char *kv = strtok_r(query, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
		if (u->kind == UPSTREAM_HTTPS && (strcmp(kv, "method=get") == 0 || strcmp(kv, "method=post") == 0)) {
			u->use_get = strcmp(kv, "method=get") == 0;
			continue;
		}
		if (strncmp(kv, "pin=", 4) != 0) {
			snprintf(err, errlen, "'%s': unknown parameter '%s' (pin=sha256/BASE64%s)", s, kv,
				 u->kind == UPSTREAM_HTTPS ? ", method=get or method=post" : "");
			return -EINVAL;
		}
		if (u->n_pins >= CONFIG_MAX_PINS) {
			snprintf(err, errlen, "'%s': at most %d pins", s, CONFIG_MAX_PINS);
			return -EINVAL;
		}
		if (tls_parse_pin(kv + 4, u->pins[u->n_pins]) < 0) {
			snprintf(err, errlen, "'%s': '%s' is not sha256/ and the base64 of 32 bytes", s, kv + 4);
			return -EINVAL;
		}
		u->n_pins++;
	}
	return 0;
}

/* tls://IP[:PORT][?pin=sha256/BASE64[&pin=...]][#AUTH-NAME], as Unbound
 * writes the name and stubby the pins (DESIGN.md, Interfaces); and
 * https://IP[:PORT]/PATH[?pin=...&method=get][#AUTH-NAME] (port 443). */
static int parse_tls(const char *s, const char *rest, enum upstream_kind kind, struct upstream_conf *u, char *err,
		     size_t errlen)
{
	char hostport[128], query[512] = "";
	const char *hash = strchr(rest, '#');
	const char *q = strchr(rest, '?');
	if (q && hash && q > hash)
		q = NULL;
	const char *slash = kind == UPSTREAM_HTTPS ? strchr(rest, '/') : NULL;
	if (slash && ((q && slash > q) || (hash && slash > hash)))
		slash = NULL;
	const char *hp_end = slash ? slash : q ? q : hash ? hash : rest + strlen(rest);
	size_t hl = (size_t)(hp_end - rest);
	if (hl >= sizeof(hostport)) {
		snprintf(err, errlen, "'%s': address too long", s);
		return -EINVAL;
	}
	memcpy(hostport, rest, hl);
	hostport[hl] = '\0';
	u->kind = kind;
	if (parse_hostport(hostport, kind == UPSTREAM_HTTPS ? 443 : 853, &u->addr, err, errlen) < 0)
		return -EINVAL;
	if (kind == UPSTREAM_HTTPS) {
		const char *pend = q ? q : hash ? hash : rest + strlen(rest);
		size_t pl = slash ? (size_t)(pend - slash) : 0;
		if (pl == 0 || pl >= sizeof(u->path)) {
			snprintf(err, errlen, "'%s': an https:// upstream needs a path, as https://192.0.2.1/dns-query", s);
			return -EINVAL;
		}
		memcpy(u->path, slash, pl);
		u->path[pl] = '\0';
	}
	if (hash) {
		if (strlen(hash + 1) == 0 || strlen(hash + 1) >= sizeof(u->auth_name)) {
			snprintf(err, errlen, "'%s': the name after '#' must be 1-255 characters", s);
			return -EINVAL;
		}
		snprintf(u->auth_name, sizeof(u->auth_name), "%s", hash + 1);
	}
	if (kind == UPSTREAM_HTTPS) {
		/* :authority -- the name, else the address as written; the port if not 443 */
		uint16_t port = ntohs(u->addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&u->addr)->sin6_port
								    : ((struct sockaddr_in *)&u->addr)->sin_port);
		size_t host_len = hostport[0] == '[' ? (size_t)(strchr(hostport, ']') - hostport) + 1
			: strchr(hostport, ':') ? (size_t)(strchr(hostport, ':') - hostport) : strlen(hostport);
		int n = u->auth_name[0] ? snprintf(u->authority, sizeof(u->authority), "%s", u->auth_name)
					: snprintf(u->authority, sizeof(u->authority), "%.*s", (int)host_len, hostport);
		if (port != 443 && n > 0 && (size_t)n < sizeof(u->authority))
			snprintf(u->authority + n, sizeof(u->authority) - (size_t)n, ":%u", port);
	}
	if (!q)
		return 0;
	size_t ql = hash ? (size_t)(hash - q - 1) : strlen(q + 1);
	if (ql >= sizeof(query)) {
		snprintf(err, errlen, "'%s': too many parameters", s);
		return -EINVAL;
	}
	memcpy(query, q + 1, ql);
	query[ql] = '\0';
	return parse_params(s, query, u, err, errlen);
}

/* mdns://[INTERFACE] (CONFIG.md): the interface by name, looked up when
 * queries go out (it may come and go); "" for every interface. */
static int parse_mdns(const char *s, const char *rest, struct upstream_conf *u, char *err, size_t errlen)
{
	u->kind = UPSTREAM_MDNS;
	if (strlen(rest) >= sizeof(u->mdns_if) || strpbrk(rest, "/:?#% ")) {
		snprintf(err, errlen, "'%s': mdns:// takes an interface name (under %zu characters) or nothing", s,
			 sizeof(u->mdns_if));
		return -EINVAL;
	}
	snprintf(u->mdns_if, sizeof(u->mdns_if), "%s", rest);
	return 0;
}

int config_parse_upstream(const char *s, struct upstream_conf *u, char *err, size_t errlen)
{
	const char *rest;
	memset(u, 0, sizeof(*u));
	snprintf(u->text, sizeof(u->text), "%s", s);
	if ((rest = strip_prefix(s, "unix://"))) {
		struct sockaddr_un *un = (struct sockaddr_un *)&u->addr;
		if (rest[0] != '/' || strlen(rest) >= sizeof(un->sun_path)) {
			snprintf(err, errlen, "'%s': unix:// needs an absolute path under %zu bytes", s,
				 sizeof(un->sun_path));
			return -EINVAL;
		}
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, rest, strlen(rest) + 1);
		u->kind = UPSTREAM_UNIX;
		return 0;
	}
	if ((rest = strip_prefix(s, "mdns://")))
		return parse_mdns(s, rest, u, err, errlen);
	if ((rest = strip_prefix(s, "tls://")))
		return parse_tls(s, rest, UPSTREAM_TLS, u, err, errlen);
	if ((rest = strip_prefix(s, "https://")))
		return parse_tls(s, rest, UPSTREAM_HTTPS, u, err, errlen);
	if ((rest = strip_prefix(s, "udp://")))
		u->kind = UPSTREAM_UDP;
	else if ((rest = strip_prefix(s, "tcp://")))
		u->kind = UPSTREAM_TCP;
	else {
		snprintf(err, errlen, "'%s': upstream must be udp://, tcp://, tls://, https://, unix:// or mdns://", s);
		return -EINVAL;
	}
	return parse_hostport(rest, 53, &u->addr, err, errlen);
}

/* --mdns IFACE: a pool "mdns" with the member mdns://IFACE, and a route
 * "suffix: local." to it ahead of the others (the command line wins over a
 * file's own local. route); without routes, "suffix: ." to "default" too,
 * so every other name goes where it went before. */
static int add_mdns_bridge(struct config *c, char *err, size_t errlen)
{
	char url[32];
	int dflt = config_find_pool(c, "default");
	if (c->n_routes == 0 && dflt < 0) {
		snprintf(err, errlen, "--mdns: no pool \"default\" (--upstream) for the names outside local.");
		return -EINVAL;
	}
	if (config_find_pool(c, "mdns") >= 0) {
		snprintf(err, errlen, "--mdns: there is a pool named \"mdns\" already (write the bridge in the file)");
		return -EINVAL;
	}
	if (c->n_upstreams >= CONFIG_MAX_UPSTREAMS || c->n_routes + 2 > CONFIG_MAX_ROUTES) {
		snprintf(err, errlen, "--mdns: at most %d upstreams and %d routes", CONFIG_MAX_UPSTREAMS, CONFIG_MAX_ROUTES);
		return -EINVAL;
	}
	int pool = config_add_pool(c, "mdns");
	if (pool < 0) {
		snprintf(err, errlen, "--mdns: at most %d pools", CONFIG_MAX_POOLS);
		return -EINVAL;
	}
	struct upstream_conf *u = &c->upstreams[c->n_upstreams];
	snprintf(url, sizeof(url), "mdns://%s", c->mdns_flag_if);
	if (config_parse_upstream(url, u, err, errlen) < 0)
		return -EINVAL;
	u->pool = (unsigned)pool;
	u->weight = 1;
	c->n_upstreams++;
	c->pools[pool].n_members = 1;
	size_t add = c->n_routes ? 1 : 2;
	struct route_conf *r = realloc(c->routes, (c->n_routes + add) * sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* first (line 0: not from the file) */
	memmove(r + 1, r, c->n_routes * sizeof(*r));
	memset(r, 0, add * sizeof(*r));
	r[0].kind = ROUTE_SUFFIX;
	(void)knot_dname_from_str(r[0].suffix, "local.", sizeof(r[0].suffix)); /* lower-case wire form */
	r[0].pool = (unsigned)pool;
	snprintf(r[0].pool_name, sizeof(r[0].pool_name), "mdns");
	if (add == 2) {
		r[1].kind = ROUTE_SUFFIX; /* suffix[] all zero: the root */
		r[1].pool = (unsigned)dflt;
		snprintf(r[1].pool_name, sizeof(r[1].pool_name), "default");
	}
	c->routes = r;
	c->n_routes += add;
	return 0;
}

/* CONFIG.md: "mdns:// members are not health-probed": a probe's id.server.
 * CH TXT means nothing on the link, and silence there is NXDOMAIN. */
static int check_mdns_pools(const struct config *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < c->n_upstreams; i++) {
		const struct upstream_conf *u = &c->upstreams[i];
		if (u->kind == UPSTREAM_MDNS && u->pool < c->n_pools && c->pools[u->pool].health.interval_ms) {
			snprintf(err, errlen, "pool \"%s\": %s is not health-probed: drop health.interval",
				 c->pools[u->pool].name, u->text);
			return -EINVAL;
		}
	}
	return 0;
}

int config_validate(struct config *c, char *err, size_t errlen)
{
	/* the embedded default and --upstream alone: one pool, "default" */
	if (c->n_pools == 0 && c->n_upstreams) {
		config_add_pool(c, "default");
		for (size_t i = 0; i < c->n_upstreams; i++) {
			c->upstreams[i].pool = 0;
			if (!c->upstreams[i].weight)
				c->upstreams[i].weight = 1;
		}
		c->pools[0].n_members = (unsigned)c->n_upstreams;
	}
	for (size_t i = 0; i < c->n_pools; i++) {
		if (c->pools[i].n_members == 0) {
			snprintf(err, errlen, "pool \"%s\" has no members", c->pools[i].name);
			return -EINVAL;
		}
	}
	if (c->has_mdns_flag && add_mdns_bridge(c, err, errlen) < 0)
		return -EINVAL;
	if (check_mdns_pools(c, err, errlen) < 0)
		return -EINVAL;
	if (c->n_routes == 0 && config_find_pool(c, "default") < 0 && c->n_pools && !c->has_etcd) {
		snprintf(err, errlen, "no routes, and no pool named \"default\" for every name to go to");
		return -EINVAL;
	}
	if (c->n_listens == 0) {
		snprintf(err, errlen, "no --listen address");
		return -EINVAL;
	}
	if (c->n_upstreams == 0 && !c->has_etcd) { /* (etcd: the backends come from there) */
		snprintf(err, errlen, "no --upstream");
		return -EINVAL;
	}
	for (size_t i = 0; i < c->n_listens; i++) {
		struct listen_conf *l = &c->listens[i];
		if (!l->has_acl)
			config_default_acl(l);
		if (l->rl.qps && !l->rl.burst)
			l->rl.burst = l->rl.qps;
		if ((c->listens[i].protos & LISTEN_TLS) && (!c->tls_cert || !c->tls_key)) {
			snprintf(err, errlen, "--listen %s://%s needs --tls-cert and --tls-key",
				 (c->listens[i].protos & LISTEN_HTTP) ? "https" : "tls", c->listens[i].text);
			return -EINVAL;
		}
	}
	if (c->chroot_dir && (c->chroot_dir[0] != '/' || !c->user)) {
		snprintf(err, errlen, "chroot %s: %s", c->chroot_dir,
			 c->chroot_dir[0] != '/' ? "not an absolute path" : "needs a user to drop to (root can leave a chroot)");
		return -EINVAL;
	}
	if (c->circuit_inflight > c->max_inflight) {
		snprintf(err, errlen, "--circuit-inflight (%u) exceeds --max-inflight (%u)", c->circuit_inflight,
			 c->max_inflight);
		return -EINVAL;
	}
	return 0;
}

void config_ratelimit_defaults(struct ratelimit_conf *rl)
{
	memset(rl, 0, sizeof(*rl));
	rl->slip = 2;         /* as BIND's RRL: every other query over the rate gets a TC=1 answer */
	rl->ipv4_prefix = 32;
	rl->ipv6_prefix = 64; /* as dnsdist's MaxQPSIPRule: one bucket per /64 */
}

void config_default_acl(struct listen_conf *l)
{
	char err[128];
	/* (cannot fail: 8 elements of an empty list) */
	memset(&l->acl, 0, sizeof(l->acl));
	if (l->protos & LISTEN_TLS) {
		(void)config_parse_addr(&l->acl, "any", err, sizeof(err));
		return;
	}
	(void)config_parse_addr(&l->acl, "localhost", err, sizeof(err));
	(void)config_parse_addr(&l->acl, "private", err, sizeof(err));
}

int config_parse_addr_csv(struct addr_list *l, const char *s, char *err, size_t errlen)
{
	char elem[INET6_ADDRSTRLEN + 8];
	memset(l, 0, sizeof(*l));
	while (*s) {
		size_t n = strcspn(s, ", ");
		if (n >= sizeof(elem)) {
			snprintf(err, errlen, "'%.*s': too long for an address or prefix", (int)n, s);
			return -EINVAL;
		}
		memcpy(elem, s, n);
		elem[n] = '\0';
		if (n && config_parse_addr(l, elem, err, errlen) < 0)
			return -EINVAL;
		s += n + (s[n] != '\0');
	}
	if (l->n == 0) {
		snprintf(err, errlen, "an empty list (write none to refuse every client)");
		return -EINVAL;
	}
	return 0;
}

int config_set_metrics(struct config *c, const char *s, char *err, size_t errlen)
{
	struct listen_conf l;
	if (strcmp(s, "off") == 0) {
		c->has_metrics = false;
		return 0;
	}
	if (strstr(s, "://")) {
		snprintf(err, errlen, "'%s': expected ADDR:PORT (plain HTTP, no scheme) or off", s);
		return -EINVAL;
	}
	if (config_parse_listen(s, &l, err, errlen) < 0)
		return -EINVAL;
	c->metrics_addr = l.addr;
	snprintf(c->metrics_text, sizeof(c->metrics_text), "%s", l.text);
	c->has_metrics = true;
	return 0;
}

int config_set_control(struct config *c, const char *s, char *err, size_t errlen)
{
	if (strcmp(s, "off") == 0) {
		c->control_path[0] = '\0';
		return 0;
	}
	if (!s[0] || strlen(s) >= sizeof(c->control_path)) {
		snprintf(err, errlen, "'%s': expected a unix socket path (under %zu bytes) or off", s, sizeof(c->control_path));
		return -EINVAL;
	}
	snprintf(c->control_path, sizeof(c->control_path), "%s", s);
	return 0;
}

int config_add_trusted_proxy(struct config *c, const char *s, char *err, size_t errlen)
{
	if (c->n_trusted_proxies >= CONFIG_MAX_TRUSTED_PROXIES) {
		snprintf(err, errlen, "at most %d trusted proxies", CONFIG_MAX_TRUSTED_PROXIES);
		return -EINVAL;
	}
	struct sockaddr_storage *a = &c->trusted_proxies[c->n_trusted_proxies];
	memset(a, 0, sizeof(*a));
	struct sockaddr_in *v4 = (struct sockaddr_in *)a;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)a;
	if (inet_pton(AF_INET, s, &v4->sin_addr) == 1)
		v4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, s, &v6->sin6_addr) == 1)
		v6->sin6_family = AF_INET6;
	else {
		snprintf(err, errlen, "'%s' is not an IP address", s);
		return -EINVAL;
	}
	c->n_trusted_proxies++;
	return 0;
}

bool config_is_trusted_proxy(const struct config *c, const struct sockaddr *a)
{
	for (size_t i = 0; i < c->n_trusted_proxies; i++) {
		const struct sockaddr_storage *t = &c->trusted_proxies[i];
		if (t->ss_family != a->sa_family)
			continue;
		if (a->sa_family == AF_INET &&
		    ((const struct sockaddr_in *)t)->sin_addr.s_addr == ((const struct sockaddr_in *)a)->sin_addr.s_addr)
			return true;
		if (a->sa_family == AF_INET6 && memcmp(&((const struct sockaddr_in6 *)t)->sin6_addr,
						       &((const struct sockaddr_in6 *)a)->sin6_addr, 16) == 0)
			return true;
	}
	return false;
}

/* ---- address lists (CONFIG.md "Address list") ---- */

void config_prefix_mask(unsigned bits, size_t len, uint64_t mask[2])
{
	uint8_t m[16] = {0};
	for (size_t i = 0; i < len; i++)
		m[i] = bits >= 8 * (i + 1) ? 0xff : bits > 8 * i ? (uint8_t)(0xff << (8 - (bits - 8 * i))) : 0;
	mask[0] = mask[1] = 0;
	memcpy(mask, m, len);
}

static int add_elem(struct addr_list *l, const char *net, unsigned prefix, bool negate, char *err, size_t errlen)
{
	if (l->n >= CONFIG_MAX_ADDRS) {
		snprintf(err, errlen, "at most %d elements in an address list", CONFIG_MAX_ADDRS);
		return -EINVAL;
	}
	struct addr_elem *e = &l->e[l->n];
	memset(e, 0, sizeof(*e));
	e->negate = negate;
	if (strcmp(net, "any") == 0) {
		l->n++; /* family 0 */
		return 0;
	}
	uint8_t a[16] = {0};
	size_t len;
	if (inet_pton(AF_INET, net, a) == 1) {
		e->family = AF_INET;
		len = 4;
	} else if (inet_pton(AF_INET6, net, a) == 1) {
		e->family = AF_INET6;
		len = 16;
	} else {
		snprintf(err, errlen, "'%s' is not an address, a prefix, any, none, localhost or private", net);
		return -EINVAL;
	}
	if (prefix == 999)
		prefix = (unsigned)len * 8;
	if (prefix > len * 8) {
		snprintf(err, errlen, "'%s/%u': prefix too long", net, prefix);
		return -EINVAL;
	}
	e->prefix = (uint8_t)prefix;
	config_prefix_mask(prefix, len, e->mask.w);
	memcpy(e->net.w, a, len);
	e->net.w[0] &= e->mask.w[0];
	e->net.w[1] &= e->mask.w[1];
	l->n++;
	return 0;
}

int config_parse_addr(struct addr_list *l, const char *s, char *err, size_t errlen)
{
	bool negate = s[0] == '!';
	if (negate)
		s++;
	static const char *const localhost[] = {"127.0.0.0/8", "::1", NULL};
	static const char *const private[] = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
					      "fc00::/7", "fe80::/10", NULL};
	const char *const *set = strcmp(s, "localhost") == 0 ? localhost : strcmp(s, "private") == 0 ? private : NULL;
	if (strcmp(s, "none") == 0)
		return add_elem(l, "any", 0, !negate, err, errlen);
	if (set) {
		unsigned first = l->n;
		for (; *set; set++)
			if (config_parse_addr(l, *set, err, errlen) < 0)
				return -EINVAL;
		for (unsigned i = first; negate && i < l->n; i++) /* "!private": each of its prefixes says no */
			l->e[i].negate = true;
		return 0;
	}
	char net[INET6_ADDRSTRLEN + 8];
	snprintf(net, sizeof(net), "%s", s);
	unsigned prefix = 999;
	char *slash = strchr(net, '/');
	if (slash) {
		char *end;
		errno = 0;
		unsigned long v = strtoul(slash + 1, &end, 10);
		if (errno || *end || end == slash + 1 || v > 128) {
			snprintf(err, errlen, "'%s': bad prefix length", s);
			return -EINVAL;
		}
		prefix = (unsigned)v;
		*slash = '\0';
	}
	return add_elem(l, net, prefix, negate, err, errlen);
}

bool config_addr_match_any(const struct addr_list *l, const struct sockaddr *a)
{
	uint64_t k[2] = {0, 0};
	unsigned family = a->sa_family;
	if (family == AF_INET)
		memcpy(k, &((const struct sockaddr_in *)a)->sin_addr, 4);
	else if (family == AF_INET6)
		memcpy(k, &((const struct sockaddr_in6 *)a)->sin6_addr, 16);
	else
		family = 255; /* (no address: only "any" contains it) */
	for (unsigned i = 0; i < l->n; i++) {
		const struct addr_elem *e = &l->e[i];
		if (!e->family || (e->family == family && (k[0] & e->mask.w[0]) == e->net.w[0] &&
				   (k[1] & e->mask.w[1]) == e->net.w[1]))
			return !e->negate;
	}
	return false;
}
