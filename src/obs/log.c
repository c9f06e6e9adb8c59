/* log.c -- formatting and writing log lines (see log.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "obs/log.h"
#include "obs/log_syslog.h"

enum log_level log_threshold = LOG_INFO;
static int log_target; /* enum log_target, relaxed atomics */

void log_set_target(enum log_target t)
{
	if (t == LOG_TARGET_SYSLOG)
		log_syslog_open();
	__atomic_store_n(&log_target, (int)t, __ATOMIC_RELAXED);
}

static const char *const level_word[] = {"error", "warning", "info", "debug"};

void log_write(enum log_level lvl, const char *group, const char *fmt, ...)
{
	char line[1024];
	int n = snprintf(line, sizeof(line), "%s: [%s] ", level_word[lvl], group);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	if (__atomic_load_n(&log_target, __ATOMIC_RELAXED) == LOG_TARGET_SYSLOG) {
		line[len] = '\0';
		log_syslog_write((int)lvl, line + strlen(level_word[lvl]) + 2); /* "[GROUP] text": syslog has the level */
		return;
	}
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w; /* nowhere left to report a failed log write */
}

bool log_ratelimit(unsigned long *window_s, unsigned *count)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	if ((unsigned long)ts.tv_sec != *window_s) {
		*window_s = (unsigned long)ts.tv_sec;
		*count = 0;
	}
	return ++*count <= 10;
}
