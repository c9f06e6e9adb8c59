/* err.c -- printable names for err.h codes and negative errno values. */
#include <string.h>
#include "core/err.h"

const char *err_str(int err)
{
	switch (err) {
	case 0: return "ok";
	case ERR_MALFORMED: return "malformed DNS message";
	case ERR_MISMATCH: return "answer does not match the query";
	case ERR_NOID: return "no free message ID";
	case ERR_FULL: return "too many queries in flight";
	case ERR_DEADLINE: return "deadline passed";
	default: return strerror(-err);
	}
}
