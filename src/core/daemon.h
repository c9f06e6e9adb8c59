/* daemon.h -- process life: bind every listener once per worker (SO_REUSEPORT),
 * start the workers, handle signals (SIGINT/SIGTERM: graceful stop, SIGUSR1:
 * stats, SIGHUP: reload), join, and report. */
#pragma once
#include <stddef.h>
#include "config/config.h"

/** A new snapshot for SIGHUP (config/snapshot.h: made from cur, TLS set
 * up), or NULL with the reason in err (then cur stays in force). */
typedef struct config *(*daemon_reload_fn)(const struct config *cur, char *err, size_t errlen);

/** Run until stopped, then free cfg and every later snapshot
 * (config_release). cfg is a heap snapshot of generation 1; reload may be
 * NULL (SIGHUP then only re-reads the listener's certificate). Returns the
 * process exit code: 0 after a clean stop, 1 when a listener cannot be
 * bound or a worker cannot start. */
int daemon_run(struct config *cfg, daemon_reload_fn reload);
