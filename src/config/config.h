/* config.h -- struct config: plain data, filled from the command line (and
 * later YAML), immutable once the workers start. All defaults live in
 * config.c; parsing of listen and upstream URLs too. */
#pragma once
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#define CONFIG_MAX_LISTENS 64
#define CONFIG_MAX_UPSTREAMS 256
#define CONFIG_MAX_POOLS 64
#define CONFIG_MAX_ROUTES 20000
#define CONFIG_MAX_QTYPES 16
#define CONFIG_MAX_ADDRS 32
#define CONFIG_MAX_THREADS 64
#define CONFIG_CIRCUIT_MAX_LIMIT 16

enum upstream_kind { UPSTREAM_UDP, UPSTREAM_TCP, UPSTREAM_UNIX, UPSTREAM_TLS, UPSTREAM_HTTPS, UPSTREAM_MDNS };

#define CONFIG_MAX_PINS 8
#define CONFIG_MAX_TRUSTED_PROXIES 16
#define CONFIG_DOH_PATH_MAX 256

struct tls_client_ctx;
struct tls_server_ctx;
struct route_table;
struct cache;

/* An address list (CONFIG.md "Address list"): the first element containing
 * the address decides; a '!' element says no; no match says no. Each
 * element is kept as the bits and mask it compares, in the byte order of
 * the address in a sockaddr, so that a match is a few AND and compare
 * instructions: a listener's acl is matched on every query. */
union addr_bits {
	uint64_t w[2];    /* IPv6: the 16 bytes */
	uint32_t v4;      /* IPv4: the first 4 */
};
struct addr_elem {
	union addr_bits net;  /* the prefix's bits, host bits zero */
	union addr_bits mask; /* the bits that must match */
	uint8_t family;   /* AF_INET, AF_INET6, or 0: "any" (every address of both families) */
	uint8_t prefix;   /* length in bits, as written */
	bool negate;      /* '!' */
};
struct addr_list {
	struct addr_elem e[CONFIG_MAX_ADDRS];
	unsigned n;
};

/* LISTEN_HTTP: DoH over the stream (with LISTEN_TLS: https://, alone: http://) */
enum listen_proto { LISTEN_UDP = 1, LISTEN_TCP = 2, LISTEN_TLS = 4, LISTEN_HTTP = 8 };

/* ratelimit: of a listener (policy/ratelimit.h): a token bucket per client
 * prefix; qps 0: no rate limit */
struct ratelimit_conf {
	uint32_t qps;         /* tokens added per second */
	uint32_t burst;       /* the bucket's size (qps when not given) */
	uint32_t slip;        /* UDP: every slip-th query over the rate gets an empty TC=1 answer; 0: none */
	uint32_t ipv4_prefix; /* clients grouped by this many bits (32) */
	uint32_t ipv6_prefix; /* and these (64) */
};

struct ratelimit;

struct listen_conf {
	int protos;                   /* LISTEN_UDP | LISTEN_TCP, LISTEN_TLS, LISTEN_HTTP [| LISTEN_TLS] */
	struct sockaddr_storage addr; /* where to bind */
	char text[80];                /* printable "ADDR:PORT" */
	int passed_fd[2];             /* socket activation (core/systemd.h): the socket systemd passed for the UDP [0]
	                               * and the stream [1] part; 0: none, bind one (passed fds start at 3) */
	bool has_acl;                 /* acl: or --acl given; else config_validate sets the default */
	struct addr_list acl;         /* who may query (DoH behind a trusted proxy: the client it names) */
	struct ratelimit_conf rl;     /* ratelimit: */
	struct ratelimit *rl_table;   /* the buckets (rl.qps > 0), made by config_snapshot; a snapshot's own, or
	                               * shared with the one before it (config/snapshot.h) */
};

struct upstream_conf {
	enum upstream_kind kind;
	struct sockaddr_storage addr; /* IP and port, or sockaddr_un for unix */
	char text[600];               /* the URL as given, for logs */
	char auth_name[256];          /* tls: name the certificate must carry (after '#') */
	uint8_t pins[CONFIG_MAX_PINS][32]; /* tls: SPKI SHA-256 pins (?pin=sha256/...) */
	unsigned n_pins;
	struct tls_client_ctx *tls;   /* tls, https: shared by the workers; made by main.c */
	char path[256];               /* https: the request path */
	char authority[300];          /* https: :authority (AUTH-NAME, else the IP literal, and the port if not 443) */
	bool use_get;                 /* https: ?method=get (else POST) */
	char mdns_if[16];             /* mdns: the interface (IF_NAMESIZE), "" for all */
	unsigned pool;                /* the pool it is a member of */
	uint32_t weight;              /* random policy: share of the picks (1) */
	uint32_t max_inflight;        /* queries in flight to it per worker, 0: no cap of its own */
};

enum pool_policy { POOL_ROUND_ROBIN, POOL_RANDOM, POOL_LEAST_OUTSTANDING, POOL_FASTEST, POOL_FAILOVER };
enum when_all_down { ALL_DOWN_SERVFAIL, ALL_DOWN_LEAST_BAD };

struct health_conf {
	char query_name[256];   /* text, e.g. "id.server." */
	uint16_t query_type, query_class;
	uint32_t interval_ms;   /* 0: no active probes */
	uint32_t timeout_ms;
	uint32_t fall, rise;
};

struct pool_conf {
	char name[64];
	enum pool_policy policy;
	uint32_t timeout_ms;    /* per member try; 0: only the query's deadline */
	uint32_t retries;       /* further members after a failure or timeout */
	struct health_conf health;
	enum when_all_down when_all_down;
	unsigned n_members;     /* members are the upstreams whose .pool is this one */
};

enum route_kind { ROUTE_SUFFIX, ROUTE_REGEX };

struct route_conf {
	enum route_kind kind;
	uint8_t suffix[256];    /* ROUTE_SUFFIX: lower-case wire form ("\0" for the root) */
	char *regex;            /* ROUTE_REGEX: the pattern (heap) */
	unsigned pool;
	uint16_t qtypes[CONFIG_MAX_QTYPES]; /* conditions: any of these types (none: any type) */
	unsigned n_qtypes;
	struct addr_list *clients; /* condition: the client is in it (NULL: any client); heap */
	bool no_cache;          /* cache: false */
	unsigned line;          /* where it was written (for messages) */
	char pool_name[64];     /* as written; resolved to pool after the whole file */
	unsigned pool_line, pool_col;
};

/* cache: (policy/cache.h); on when size is not 0 */
struct cache_conf {
	uint64_t size;           /* bytes; 0: no cache */
	uint32_t min_ttl_s;      /* TTLs below are raised to it */
	uint32_t max_ttl_s;      /* and above lowered to it */
	uint32_t neg_max_ttl_s;  /* negative answers at most this long */
	uint32_t stale_s;        /* serve-stale: this long past expiry; 0: off */
	bool prefetch;           /* refresh an entry asked for in the last tenth of its TTL */
};

#define CONFIG_CACHE_SIZE_DEFAULT (64ull * 1024 * 1024)

/* dns64: (policy/dns64.h), one entry of the list; the first whose clients
 * match applies. The entry's index + 1 is the query's cache_variant. */
#define CONFIG_MAX_DNS64 16
struct dns64_conf {
	uint8_t bits[16];       /* the prefix, then the suffix's bits after the IPv4 part (zero elsewhere) */
	uint8_t prefix_len;     /* 32, 40, 48, 56, 64 or 96 (RFC 6052 2.2) */
	bool has_clients;       /* else any client */
	bool has_mapped;        /* else any IPv4 address is mapped */
	bool has_exclude;       /* else ::ffff:0:0/96, as BIND */
	bool break_dnssec;      /* synthesise for DO=1 even when the A records are signed */
	struct addr_list clients, mapped, exclude;
	unsigned line;          /* where it was written */
};

struct etcd_conf {
	char endpoints[4][256];
	unsigned n_endpoints;
	char prefix[256];
	enum pool_policy policy;
	struct health_conf health;
};

struct config {
	struct listen_conf listens[CONFIG_MAX_LISTENS];
	size_t n_listens;
	struct upstream_conf upstreams[CONFIG_MAX_UPSTREAMS];
	size_t n_upstreams;
	unsigned threads;           /* workers */
	uint32_t timeout_ms;        /* per-query deadline */
	uint32_t udp_retry_ms;      /* UDP upstream retransmit interval */
	uint32_t max_inflight;      /* per worker */
	uint32_t circuit_inflight;  /* per circuit */
	uint32_t circuit_max;       /* circuits per upstream per worker */
	uint32_t circuit_idle_ms;   /* close a circuit idle this long */
	uint32_t circuit_stall_ms;  /* a circuit with queries that reads nothing this long is dead */
	uint32_t tcp_idle_ms;       /* client TCP idle timeout */
	uint32_t tcp_max_clients;   /* client TCP connections per worker */
	uint32_t tcp_pipeline;      /* queries in flight per client TCP connection */
	uint32_t tls_handshake_ms;  /* DoT clients must finish their handshake within this */
	const char *ca_file;        /* PEM CA bundle for tls:// upstreams; NULL: the system store */
	const char *tls_cert;       /* DoT listener certificate chain (PEM) */
	const char *tls_key;        /* and its key */
	const char *user;           /* user: / --user: drop to it once the listeners are bound (core/privdrop.h); NULL: stay */
	const char *chroot_dir;     /* chroot: / --chroot: and chroot here first; NULL: none */
	char **strings;             /* the file's strings these fields point to (heap, n_strings; config_free frees
	                             * them, and the command line may point a field elsewhere) */
	size_t n_strings;
	struct tls_server_ctx *tls_server; /* made by main.c when a tls:// listener exists */
	bool embedded_default;      /* no listener or upstream was given */
	char doh_path[CONFIG_DOH_PATH_MAX]; /* DoH listeners: the path of RFC 8484 queries */
	struct pool_conf pools[CONFIG_MAX_POOLS]; /* pools[0] is "default" unless the file names others */
	size_t n_pools;
	struct route_conf *routes;  /* heap, n_routes; none: every name to pool "default" */
	struct route_table *route_table; /* built from routes by main.c (NULL without routes) */
	size_t n_routes;
	bool has_etcd;
	struct etcd_conf etcd;
	char file[4096];            /* -c FILE, "" without one */
	bool doh_path_set;          /* a listener in the file gave a path */
	int log_level;              /* log.level: 1 + enum log_level; 0: not set */
	struct sockaddr_storage trusted_proxies[CONFIG_MAX_TRUSTED_PROXIES]; /* believed in X-Forwarded-For (port 0) */
	size_t n_trusted_proxies;
	unsigned long generation;   /* 1 at start, +1 per reload (config/snapshot.h) */
	bool has_mdns_flag;         /* --mdns: config_validate adds the pool "mdns" and its route */
	char mdns_flag_if[16];      /* its interface */
	struct cache_conf cache;    /* cache: */
	bool cache_given;           /* cache: or --cache said (else only the embedded default caches) */
	struct cache *cache_obj;    /* made by config_snapshot when cache.size; shared by snapshots of one size */
	struct dns64_conf *dns64;   /* dns64: (heap, n_dns64) */
	size_t n_dns64;
	/* metrics: / --metrics (obs/metrics_http.h); read at start only */
	bool has_metrics;
	struct sockaddr_storage metrics_addr;
	char metrics_text[80];      /* printable ADDR:PORT */
	/* control: / --control (control/server.h); read at start only */
	char control_path[108];     /* the unix socket's path (sun_path's size); "" when off */
	/* log: (obs/log.h, obs/qlog.h) */
	int log_target;             /* log.target: 1 + enum log_target; 0: not set (stderr) */
	char log_queries[1024];     /* log.queries: the query log's path; "" when off */
};

void config_defaults(struct config *c);

/** Read a YAML configuration file into c (over its defaults; the command
 * line is applied after, and wins). Errors go to err as
 * "FILE:LINE:COL: key: what was expected", one per line. Returns 0 or -EINVAL. */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen);

/** The index of the pool named name, or -1. */
int config_find_pool(const struct config *c, const char *name);
/** The index of the pool named name, made (with the defaults) if new; -ENOSPC. */
int config_add_pool(struct config *c, const char *name);

/** Free what config_load_file allocated (routes, the strings of the file). */
void config_free(struct config *c);

/** Parse one address-list element ("10.0.0.0/8", "!192.0.2.1", "any",
 * "localhost", "private" expands to several); appends to l. -EINVAL with a reason. */
int config_parse_addr(struct addr_list *l, const char *s, char *err, size_t errlen);

/** Parse "10.0.0.0/8,!10.1.0.0/16,localhost" (commas or spaces between
 * elements) into l, emptied first (--acl); -EINVAL with a reason. */
int config_parse_addr_csv(struct addr_list *l, const char *s, char *err, size_t errlen);

/** A rate limit's defaults but qps (0: off): burst qps (made so by
 * config_validate), slip 2, prefixes /32 and /64. */
void config_ratelimit_defaults(struct ratelimit_conf *rl);

/** The acl of a listener that has none given: any for DoT and https://
 * DoH (they are made to face the Internet), [localhost, private] for UDP,
 * TCP and cleartext http:// DoH (for a reverse proxy on the same host). */
void config_default_acl(struct listen_conf *l);

/** The mask of the first bits bits of a len-byte address (4 or 16), in the
 * address's byte order: its first len bytes, the rest zero. */
void config_prefix_mask(unsigned bits, size_t len, uint64_t mask[2]);

/** config_addr_match for an address of any family. */
bool config_addr_match_any(const struct addr_list *l, const struct sockaddr *a);

/** Does the address list allow a? (No address, AF_UNSPEC: only any.)
 * Inline for IPv4: a listener's acl is asked on every query, and most
 * match their first element (127.0.0.0/8 of the default). */
static inline bool config_addr_match(const struct addr_list *l, const struct sockaddr *a)
{
	if (a->sa_family != AF_INET)
		return config_addr_match_any(l, a);
	uint32_t v = ((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr;
	for (const struct addr_elem *e = l->e, *end = l->e + l->n; e < end; e++)
		if (!e->family || (e->family == AF_INET && (v & e->mask.v4) == e->net.v4))
			return !e->negate;
	return false;
}

/** Parse a size: "512", "64KiB", "64MiB", "1GiB" (also KB, MB, GB: the same powers of 2), into bytes. */
int config_parse_size(const char *s, uint64_t *bytes);

/** Parse "250ms", "2s", "5m", "1h", "1d" or a bare integer of ms. */
int config_parse_duration(const char *s, uint32_t *ms);

/** Fill listeners and upstreams of the embedded default where none were given. */
void config_apply_embedded(struct config *c);

/** Parse "ADDR:PORT", "[V6]:PORT", "udp://...", "tcp://..." into l.
 * On error returns -EINVAL and writes a reason to err. */
int config_parse_listen(const char *s, struct listen_conf *l, char *err, size_t errlen);

/** Parse "udp://IP[:PORT]", "tcp://IP[:PORT]", "unix:///path" (port 53 by default),
 * "tls://IP[:PORT][?pin=sha256/BASE64[&pin=...]][#AUTH-NAME]" (port 853 by default),
 * "mdns://[INTERFACE]" (multicast DNS on that interface, every one when empty). */
int config_parse_upstream(const char *s, struct upstream_conf *u, char *err, size_t errlen);

/** Check cross-field constraints, and make the pool "default" of the
 * upstreams when no pool was named; for --mdns, the pool "mdns" (member
 * mdns://IFACE) and the route "suffix: local." to it, first, plus "suffix: ."
 * to "default" when there were no routes. -EINVAL with a reason. */
int config_validate(struct config *c, char *err, size_t errlen);

/** metrics: / --metrics: "ADDR:PORT" (or "off"); -EINVAL with a reason. */
int config_set_metrics(struct config *c, const char *s, char *err, size_t errlen);

/** control: / --control: a unix socket path (or "off"); -EINVAL with a reason. */
int config_set_control(struct config *c, const char *s, char *err, size_t errlen);

/** Add "IP" to the trusted proxies; -EINVAL with a reason. */
int config_add_trusted_proxy(struct config *c, const char *s, char *err, size_t errlen);

/** Is a (a client's address) one of the trusted proxies? */
bool config_is_trusted_proxy(const struct config *c, const struct sockaddr *a);

/** 0.0.0.0 or [::]: a listener on every local address. */
bool config_addr_is_any(const struct sockaddr_storage *a);

/** "IP:PORT" / "[IP]:PORT" of a socket address. */
void config_addr_str(const struct sockaddr_storage *a, char *buf, size_t len);
