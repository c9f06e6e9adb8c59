/* log_syslog.c -- log.target: syslog (or journald, which reads the same
 * /dev/log socket syslog(3) writes to). Apart from log.c because
 * <syslog.h> defines LOG_ERR, LOG_INFO and LOG_DEBUG, the names of log.h's
 * levels. */
#include <syslog.h>
#include "obs/log_syslog.h"

void log_syslog_open(void)
{
	openlog("dnsmux", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_syslog_write(int level, const char *line)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	syslog(prio[level >= 0 && level < 4 ? level : 2], "%s", line);
}
