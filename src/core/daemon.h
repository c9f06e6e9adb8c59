/* daemon.h -- process life: bind every listener once per worker (SO_REUSEPORT),
 * start the workers, handle signals (SIGINT/SIGTERM: graceful stop, SIGUSR1:
 * stats), join, and report. */
#pragma once
#include "config/config.h"

/** Run until stopped. Returns the process exit code: 0 after a clean stop,
 * 1 when a listener cannot be bound or a worker cannot start. */
int daemon_run(const struct config *cfg);
