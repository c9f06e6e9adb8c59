/* etcd.h -- backends and routes from etcd v3 (CONFIG.md "etcd:", doc/config.md):
 * each key under the prefix names one backend, by miekg/dnsrouter's
 * "IP:PORT,REGEXP" or a JSON object with an upstream URL and a regex or a
 * suffix. A watcher thread reads the prefix through etcd's JSON gateway
 * (libcurl), then watches it, and hands every new set of backends to its
 * caller; config_add_etcd turns a set into pools and routes of a snapshot.
 * The JSON handling (etcd_state_*, etcd_apply_*) is pure, for tests and fuzz/. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config/config.h"

#define ETCD_KEY_MAX 512

/* One etcd key: the upstream it names and its route. */
struct etcd_backend {
	char key[ETCD_KEY_MAX];   /* the whole etcd key, prefix included */
	struct upstream_conf up;  /* parsed by config_parse_upstream (tls: no TLS context yet) */
	enum route_kind kind;     /* ROUTE_REGEX or ROUTE_SUFFIX */
	char match[512];          /* REGEX: the pattern as given; SUFFIX: the name in text form, lower case, final dot */
};

/* A set of backends, sorted by key (etcd's order), each key once. */
struct etcd_set {
	struct etcd_backend *b;   /* heap, n of them */
	size_t n;
	uint64_t revision;        /* etcd's revision the set is of */
};

/** Free a set from etcd_start's callback or etcd_state_set; NULL is fine. */
void etcd_set_free(struct etcd_set *s);

/** Do a and b hold the same backends (revisions aside)? */
bool etcd_set_equal(const struct etcd_set *a, const struct etcd_set *b);

/** Parse the value val (len bytes, not NUL-terminated) of key into *out:
 * "IP:PORT,REGEXP" (IPv6 as "[::1]:53,REGEXP"; the upstream is udp://IP:PORT,
 * which retries over TCP on TC=1), or {"upstream": URL, "regex": RE} or
 * {"upstream": URL, "suffix": NAME} (exactly one of regex and suffix; any
 * other key is an error). The regex must compile (PCRE2, caseless, as
 * route.c compiles it). 0, or -EINVAL with a reason in err. */
int etcd_parse_value(const char *key, const char *val, size_t len, struct etcd_backend *out, char *err,
		     size_t errlen) __attribute__((warn_unused_result));

/* ---- the in-memory set and etcd's JSON (no I/O) ---- */

struct etcd_state;

/** A state for keys under prefix, empty; NULL on ENOMEM. */
struct etcd_state *etcd_state_new(const char *prefix);
void etcd_state_free(struct etcd_state *st);

/** Replace the whole set by the body of a POST /v3/kv/range answer
 * ({"header":{"revision":..},"kvs":[{"key":B64,"value":B64,...}]}) and take
 * its revision; the watch stream's buffer is emptied. Bad values are
 * skipped and logged (once per key and revision). 0, or -EPROTO when the
 * body is not such an answer (the set is then left as it was). */
int etcd_apply_range(struct etcd_state *st, const char *json, size_t len);

/** Feed len bytes of a POST /v3/watch stream (JSON objects one after the
 * other, split anywhere): every complete object's PUT and DELETE events are
 * applied, a partial one is kept for the next call. 1 when the set changed,
 * 0 when not, -ESTALE when etcd cancelled the watch (compacted revision),
 * -EPROTO on anything else than a watch response (an error object, not
 * JSON, a buffer past 16 MiB): then the caller reads the prefix again. */
int etcd_apply_events(struct etcd_state *st, const char *json, size_t len);

/** Has the stream said the watch is created (since the last range)? */
bool etcd_state_watching(const struct etcd_state *st);

/** The revision of the last range or watch response applied. */
uint64_t etcd_state_revision(const struct etcd_state *st);

/** A copy of the current set (the caller owns it); NULL on ENOMEM. */
struct etcd_set *etcd_state_set(const struct etcd_state *st);

/* ---- the watcher ---- */

struct etcd;

/** Start the watcher thread on conf (copied): it reads conf->prefix from the
 * first endpoint that answers, then watches it. on_set(arg, set) is called
 * **on the watcher thread** with the first set read (even empty) and then
 * after each change (all events of one chunk of the stream together);
 * ownership of set passes to on_set (etcd_set_free). A failure (etcd
 * unreachable, the stream ending) never makes a set: the last one stands
 * while it retries each endpoint in turn, with backoff (100 ms doubling to
 * 5 s, jittered); on reconnect it reads the prefix again and calls on_set
 * only if the set differs. NULL on ENOMEM or if curl cannot start. */
struct etcd *etcd_start(const struct etcd_conf *conf, void (*on_set)(void *arg, struct etcd_set *set), void *arg);

/** Stop the watcher (within ~200 ms, a blocked watch included), join its
 * thread and free everything. No on_set call runs after it returns. NULL is fine. */
void etcd_stop(struct etcd *e);

/* ---- into a configuration ---- */

/** Add set to c (loaded and validated, its route table not built yet): one
 * pool per distinct (kind, match), named "etcd:" + match (a hash for a long
 * one), with c->etcd's policy and health, the backends with that match as
 * members (weight 1; the same URL twice is one member); one route per pool,
 * after the file's (regexes in key order after the file's regexes; the
 * file's "suffix: ." still last). A file without routes gets its implicit
 * "every name to the pool default" as a route first. -ENOSPC (a
 * CONFIG_MAX_* limit) or -EINVAL with a reason, c unchanged; -ENOMEM (c
 * then fit only for config_free). config_free frees what it adds. */
int config_add_etcd(struct config *c, const struct etcd_set *set, char *err, size_t errlen)
	__attribute__((warn_unused_result));
