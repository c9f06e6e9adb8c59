/* log.h -- leveled logging to stderr (one write(2) per line so lines from
 * several workers never interleave) or to syslog (log.target).
 * log_<level>(GROUP, fmt, ...); the level check is a compare before any
 * formatting. Query names are never logged at info or above: what each
 * query asked goes to the query log (obs/qlog.h), when one is configured. */
#pragma once
#include <stdbool.h>

enum log_level { LOG_ERR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* set at start and by a reload (while workers log): read and written
 * with relaxed atomics, a plain load on every CPU dnsmux runs on */
extern enum log_level log_threshold;
#define LOG_THRESHOLD() ((int)__atomic_load_n(&log_threshold, __ATOMIC_RELAXED))
static inline void log_set_threshold(enum log_level l)
{
	__atomic_store_n(&log_threshold, l, __ATOMIC_RELAXED);
}

/* log.target: stderr, or syslog(3) (also what journald reads) */
enum log_target { LOG_TARGET_STDERR = 0, LOG_TARGET_SYSLOG = 1 };
/** Switch the target (at start and on a reload; any thread may be logging). */
void log_set_target(enum log_target t);

void log_write(enum log_level lvl, const char *group, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/** True when a network-caused warning from this call site may be printed
 * now: at most 10 per second per site, so a flood cannot fill the log. */
bool log_ratelimit(unsigned long *window_s, unsigned *count);

#define LOG_AT(lvl, grp, ...)                                                                                          \
	do {                                                                                                           \
		if ((int)(lvl) <= LOG_THRESHOLD())                                                                            \
			log_write((lvl), #grp, __VA_ARGS__);                                                           \
	} while (0)
#define log_err(grp, ...) LOG_AT(LOG_ERR, grp, __VA_ARGS__)
#define log_warn(grp, ...) LOG_AT(LOG_WARN, grp, __VA_ARGS__)
#define log_info(grp, ...) LOG_AT(LOG_INFO, grp, __VA_ARGS__)
#define log_debug(grp, ...) LOG_AT(LOG_DEBUG, grp, __VA_ARGS__)
/* a warning caused by the network: rate-limited per call site */
#define log_warn_rl(grp, ...)                                                                                          \
	do {                                                                                                           \
		static __thread unsigned long rl_win_;                                                                 \
		static __thread unsigned rl_cnt_;                                                                      \
		if ((int)LOG_WARN <= LOG_THRESHOLD() && log_ratelimit(&rl_win_, &rl_cnt_))                                    \
			log_write(LOG_WARN, #grp, __VA_ARGS__);                                                        \
	} while (0)
