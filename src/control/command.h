/* command.h -- the control socket's requests (doc/control.md): one line of
 * words, "status", "stats", "reload", "cache-flush [--exact] [NAME]", parsed
 * into a struct command. Pure: no I/O, no allocation; the server
 * (control/server.c) and dnsmux-ctl (src/dnsmux_ctl.c) share it, and
 * fuzz/fuzz_control.c drives it. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libknot/libknot.h>

#define COMMAND_REQUEST_MAX 1024 /* bytes of a request line, its newline included */
#define COMMAND_MAX_WORDS 8      /* more is an error before any word is looked at */

enum command_kind {
	COMMAND_STATUS,      /* upstreams, cache, generation, uptime, version */
	COMMAND_STATS,       /* every counter, summed over the workers */
	COMMAND_RELOAD,      /* as SIGHUP, answered when done */
	COMMAND_CACHE_FLUSH, /* all entries, or a name (and, unless exact, every name below it) */
};

struct command {
	enum command_kind kind;
	bool has_name;                     /* cache-flush NAME */
	bool exact;                        /* cache-flush --exact NAME: that name only */
	uint8_t name[KNOT_DNAME_MAXLEN];   /* its wire form (as written: case kept) */
	char name_text[KNOT_DNAME_TXT_MAXLEN + 1]; /* and its text form, with the final dot */
};

/** Parse one request line of len bytes (without its '\n'; a final '\r' is
 * allowed): words of printable ASCII separated by spaces or tabs. 0 and
 * *cmd, or -EINVAL with a one-line reason in err (printable ASCII: bytes of
 * the request that are not are written as \xHH). Reads only buf[0..len). */
int command_parse(const char *buf, size_t len, struct command *cmd, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/** The command's name as a client writes it ("cache-flush"). */
const char *command_name(enum command_kind kind);
