/* snapshot.h -- a configuration as the running daemon holds it: a heap
 * struct config, immutable once handed to the workers, with the TLS contexts
 * and the route table made for it. A reload (SIGHUP, etcd) makes the next
 * snapshot from the previous one: what cannot change at run time is carried
 * over, the TLS contexts of upstreams present in both are shared, so that
 * the workers keep those upstreams' circuits and sessions. Snapshots are
 * freed oldest first, each once no worker uses it (core/daemon.c). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include "config/config.h"

/** A deep copy of base (a configuration as loaded: routes, the file's
 * strings), without its route table and TLS contexts; NULL on ENOMEM. */
struct config *config_dup(const struct config *base);

/** Build the route table of c (NULL when c has no routes); -EINVAL with a
 * reason (a regex PCRE2 will not compile) or -ENOMEM. */
int config_build_routes(struct config *c, char *err, size_t errlen);

/** Do a and b name the same server over the same transport, authenticated
 * the same way (the URL as written, and the CA file for tls/https)? Then a
 * worker keeps its instance of it, circuits and all, across a reload. */
bool config_upstream_same(const struct config *ca, const struct upstream_conf *a, const struct config *cb,
			  const struct upstream_conf *b);

/** What a reload cannot change (the listeners, which own bound sockets, and
 * the number of workers) taken over from prev into next, each difference
 * logged as a warning: it needs a restart. */
void config_carry_over(struct config *next, const struct config *prev);

/** The TLS contexts next needs: shared from prev (may be NULL) for the
 * upstreams config_upstream_same says are unchanged and for the listener,
 * made for the rest. 0, or -EINVAL with a reason naming the upstream or
 * file (then config_release(next, prev) frees what was made). */
int config_setup_tls(struct config *next, const struct config *prev, char *err, size_t errlen);

struct etcd_set;

/** The snapshot workers run: a copy of base (the file and the command
 * line, validated), with etcd's backends as pools and routes (set may be
 * NULL), what a reload cannot change taken from prev (NULL at start), its
 * route table, TLS contexts and cache. NULL with a reason in err. */
struct config *config_snapshot(const struct config *base, const struct etcd_set *set, const struct config *prev,
			       char *err, size_t errlen);

/** Free c (a heap snapshot) with its route table and the TLS contexts it
 * does not share with successor (the snapshot made after it, or NULL). */
void config_release(struct config *c, const struct config *successor);
