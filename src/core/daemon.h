/* daemon.h -- process life: bind every listener once per worker (SO_REUSEPORT),
 * start the workers, handle signals (SIGINT/SIGTERM: graceful stop, SIGUSR1:
 * stats, SIGHUP: reload), join, and report. */
#pragma once
#include <stddef.h>
#include "config/config.h"

struct daemon_hooks {
	/** For SIGHUP: the file again with the command line over it, validated
	 * (a template, as base), or NULL with the reason in err. */
	struct config *(*load)(char *err, size_t errlen);
	/** A new snapshot is in force: what it changes in the process (log level, limits). */
	void (*applied)(struct config *c);
};

/** Run until stopped. base is the template cfg was made from
 * (config_snapshot), cfg the first snapshot; both heap, and freed here with
 * every later one. hooks may be NULL (SIGHUP then only re-reads the
 * listener's certificate). Returns the process exit code: 0 after a clean
 * stop, 1 when a listener cannot be bound or a worker cannot start. */
int daemon_run(struct config *base, struct config *cfg, const struct daemon_hooks *hooks);
