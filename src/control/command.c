/* command.c -- see command.h. The words are split first and checked as
 * bytes (printable ASCII only), so no later step meets a control
 * character; names go to libknot's text parser. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "control/command.h"

struct word {
	const char *p;
	size_t len;
};

static const char *const names[] = {
	[COMMAND_STATUS] = "status",
	[COMMAND_STATS] = "stats",
	[COMMAND_RELOAD] = "reload",
	[COMMAND_CACHE_FLUSH] = "cache-flush",
};

const char *command_name(enum command_kind kind)
{
	return (unsigned)kind < sizeof(names) / sizeof(names[0]) ? names[kind] : "?";
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_word_byte(char c)
{
	return c > ' ' && c < 0x7f;
}

/* A word as it may appear in a message: at most 64 bytes of it, quoted. */
static void quote(char *out, size_t cap, const struct word *w)
{
	int n = w->len > 64 ? 64 : (int)w->len;
	snprintf(out, cap, "\"%.*s%s\"", n, w->p, w->len > 64 ? "..." : "");
}

/* Split buf into words; -EINVAL for a byte no word may hold, or too many. */
static int split(const char *buf, size_t len, struct word *w, unsigned *n, char *err, size_t errlen)
{
	*n = 0;
	for (size_t i = 0; i < len;) {
		if (is_space(buf[i])) {
			i++;
			continue;
		}
		if (!is_word_byte(buf[i])) {
			snprintf(err, errlen, "byte \\x%02x at offset %zu: a request is printable ASCII words", (uint8_t)buf[i],
				 i);
			return -EINVAL;
		}
		if (*n == COMMAND_MAX_WORDS) {
			snprintf(err, errlen, "more than %d words", COMMAND_MAX_WORDS);
			return -EINVAL;
		}
		w[*n].p = buf + i;
		while (i < len && is_word_byte(buf[i]))
			i++;
		w[*n].len = (size_t)(buf + i - w[*n].p);
		(*n)++;
	}
	return 0;
}

static bool is(const struct word *w, const char *s)
{
	return w->len == strlen(s) && memcmp(w->p, s, w->len) == 0;
}

/* The command a word names, or -1. */
static int lookup(const struct word *w)
{
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		if (is(w, names[k]))
			return (int)k;
	return -1;
}

/* cache-flush [--exact] [NAME] */
static int parse_flush(const struct word *w, unsigned n, struct command *cmd, char *err, size_t errlen)
{
	char q[80];
	unsigned i = 1;
	if (i < n && is(&w[i], "--exact")) {
		cmd->exact = true;
		i++;
	}
	if (i == n) {
		if (cmd->exact) {
			snprintf(err, errlen, "cache-flush --exact needs a NAME");
			return -EINVAL;
		}
		return 0;
	}
	if (w[i].p[0] == '-' || n - i > 1) {
		quote(q, sizeof(q), &w[w[i].p[0] == '-' ? i : i + 1]);
		snprintf(err, errlen, "cache-flush: unexpected %s (usage: cache-flush [--exact] [NAME])", q);
		return -EINVAL;
	}
	char text[COMMAND_REQUEST_MAX + 1];
	memcpy(text, w[i].p, w[i].len);
	text[w[i].len] = '\0';
	if (!knot_dname_from_str(cmd->name, text, sizeof(cmd->name)) ||
	    !knot_dname_to_str(cmd->name_text, cmd->name, sizeof(cmd->name_text))) {
		quote(q, sizeof(q), &w[i]);
		snprintf(err, errlen, "cache-flush: %s is not a domain name", q);
		return -EINVAL;
	}
	cmd->has_name = true;
	return 0;
}

int command_parse(const char *buf, size_t len, struct command *cmd, char *err, size_t errlen)
{
	struct word w[COMMAND_MAX_WORDS];
	unsigned n;
	char q[80];
	memset(cmd, 0, sizeof(*cmd));
	err[0] = '\0';
	if (len && buf[len - 1] == '\r')
		len--;
	if (len >= COMMAND_REQUEST_MAX) {
		snprintf(err, errlen, "request longer than %d bytes", COMMAND_REQUEST_MAX - 1);
		return -EINVAL;
	}
	if (split(buf, len, w, &n, err, errlen) < 0)
		return -EINVAL;
	if (n == 0) {
		snprintf(err, errlen, "empty request (expected status, stats, reload or cache-flush)");
		return -EINVAL;
	}
	int k = lookup(&w[0]);
	if (k < 0) {
		quote(q, sizeof(q), &w[0]);
		snprintf(err, errlen, "unknown command %s (expected status, stats, reload or cache-flush)", q);
		return -EINVAL;
	}
	cmd->kind = (enum command_kind)k;
	if (cmd->kind == COMMAND_CACHE_FLUSH)
		return parse_flush(w, n, cmd, err, errlen);
	if (n > 1) {
		quote(q, sizeof(q), &w[1]);
		snprintf(err, errlen, "%s takes no argument (got %s)", names[cmd->kind], q);
		return -EINVAL;
	}
	return 0;
}
