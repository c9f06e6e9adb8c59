/* log_syslog.h -- syslog(3) for obs/log.c (see log_syslog.c). */
#pragma once

/** openlog("dnsmux", LOG_PID | LOG_NDELAY, LOG_DAEMON); again is harmless. */
void log_syslog_open(void);
/** One line at level (enum log_level: 0 error .. 3 debug). */
void log_syslog_write(int level, const char *line);
