/* err.h -- error codes: negative errno values plus a few of the project's own.
 * Every int-returning function returns 0 or one of these; err_str() prints any. */
#pragma once
#include <errno.h>

enum {
	ERR_BASE = 10000,
	ERR_MALFORMED = -(ERR_BASE + 1), /* DNS message does not parse */
	ERR_MISMATCH = -(ERR_BASE + 2),  /* answer does not match the query */
	ERR_NOID = -(ERR_BASE + 3),      /* no free upstream-side ID found */
	ERR_FULL = -(ERR_BASE + 4),      /* a cap on queries in flight is reached */
	ERR_DEADLINE = -(ERR_BASE + 5),  /* the query's deadline has passed */
};

const char *err_str(int err);
