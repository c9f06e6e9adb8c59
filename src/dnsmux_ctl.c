/* dnsmux_ctl.c -- dnsmux-ctl: one command to a running dnsmux over its
 * control socket (doc/control.md), the reply printed as JSON. The request
 * is checked with the daemon's own parser (control/command.c) before it is
 * sent. Exit codes: 0 done; 1 dnsmux answered with an error (on stderr);
 * 2 a usage error, or no reply (no socket, timed out, not a reply). */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include "control/command.h"
#include "core/version.h"

#define DEFAULT_SOCKET "/run/dnsmux/control.sock"
#define DEFAULT_TIMEOUT_S 30
#define REPLY_MAX (64u << 20) /* bytes: far above what stats of 256 upstreams take */

static void usage(FILE *f)
{
	fputs("Usage: dnsmux-ctl [-s PATH] [-t SECONDS] COMMAND [ARGS]\n"
	      "Send one command to a running dnsmux (its control: socket) and print the reply as JSON.\n"
	      "\n"
	      "Commands:\n"
	      "  status                     upstreams (URL, up, in flight, circuits), cache entries and\n"
	      "                             bytes, configuration generation, uptime, version\n"
	      "  stats                      every counter, summed over the workers (as /metrics)\n"
	      "  reload                     re-read the configuration file, as SIGHUP does; when the file\n"
	      "                             is bad, its errors (FILE:LINE:COL) and exit 1\n"
	      "  cache-flush                drop every cached answer\n"
	      "  cache-flush NAME           drop NAME and every name below it (all types)\n"
	      "  cache-flush --exact NAME   drop NAME only (all types)\n"
	      "\n"
	      "Options:\n"
	      "  -s, --socket PATH          the control socket (" DEFAULT_SOCKET ")\n"
	      "  -t, --timeout SECONDS      give up on a reply after SECONDS (30)\n"
	      "  -h, --help                 this text\n"
	      "  -V, --version              version\n"
	      "\n"
	      "Exit: 0 done, 1 dnsmux answered with an error (printed on stderr), 2 usage error or no reply.\n"
	      "See doc/control.md.\n",
	      f);
}

static void __attribute__((noreturn, format(printf, 2, 3))) die(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("dnsmux-ctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/* The words after the options as one request line (with its newline),
 * checked as dnsmux will check it. */
static void request_line(int argc, char **argv, char *line, size_t cap)
{
	char err[512];
	struct command cmd;
	size_t n = 0;
	for (int i = 0; i < argc; i++) {
		size_t len = strlen(argv[i]);
		for (size_t k = 0; k < len; k++)
			if ((unsigned char)argv[i][k] <= ' ' || (unsigned char)argv[i][k] >= 0x7f)
				die(2, "argument %d: only printable ASCII without spaces", i + 1);
		if (len == 0 || n + len + 2 > cap)
			die(2, "%s", len ? "request too long" : "an empty argument");
		if (n)
			line[n++] = ' ';
		memcpy(line + n, argv[i], len);
		n += len;
	}
	if (command_parse(line, n, &cmd, err, sizeof(err)) < 0)
		die(2, "%s (see dnsmux-ctl --help)", err);
	memcpy(line + n, "\n", 2);
}

static int connect_to(const char *path, int timeout_s)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sun.sun_path))
		die(2, "%s: too long for a unix socket path", path);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die(2, "socket: %s", strerror(errno));
	struct timeval tv = {.tv_sec = timeout_s};
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)); /* (bounds connect and write) */
	if (connect(fd, (const struct sockaddr *)&sun, sizeof(sun)) < 0)
		die(2, "cannot connect to %s: %s (is dnsmux running with control: %s?)", path, strerror(errno), path);
	return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL); /* (a closed socket: an error, not SIGPIPE) */
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die(2, "sending the request: %s", w < 0 ? strerror(errno) : "nothing written");
		p += w;
		n -= (size_t)w;
	}
}

/* Everything until EOF, within timeout_s in all. */
static char *read_reply(int fd, int timeout_s, size_t *len)
{
	struct timespec t0, t;
	size_t cap = 65536;
	char *buf = malloc(cap);
	*len = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		long left_ms = timeout_s * 1000L - ((t.tv_sec - t0.tv_sec) * 1000L + (t.tv_nsec - t0.tv_nsec) / 1000000);
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		if (!buf)
			die(2, "out of memory");
		if (left_ms <= 0 || poll(&pfd, 1, (int)left_ms) == 0)
			die(2, "no reply within %d s", timeout_s);
		if (*len == cap) {
			if (cap >= REPLY_MAX)
				die(2, "a reply larger than %u bytes", REPLY_MAX);
			char *b = realloc(buf, cap * 2);
			if (!b)
				die(2, "out of memory");
			buf = b;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + *len, cap - *len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die(2, "reading the reply: %s", strerror(errno));
		if (r == 0)
			return buf;
		*len += (size_t)r;
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"socket", required_argument, NULL, 's'}, {"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *path = DEFAULT_SOCKET;
	int timeout_s = DEFAULT_TIMEOUT_S, opt;
	char line[COMMAND_REQUEST_MAX + 1], *end;
	opterr = 0;
	/* '+': options end at the command (cache-flush --exact is the command's) */
	while ((opt = getopt_long(argc, argv, "+:s:t:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 's': path = optarg; break;
		case 't':
			errno = 0;
			timeout_s = (int)strtol(optarg, &end, 10);
			if (errno || *end || timeout_s < 1 || timeout_s > 3600)
				die(2, "--timeout: '%s' is not a number of seconds from 1 to 3600", optarg);
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("dnsmux-ctl %s\n", DNSMUX_VERSION); return 0;
		case ':': die(2, "option %s needs a value", argv[optind - 1]);
		default: die(2, "unknown option %s (see dnsmux-ctl --help)", argv[optind - 1]);
		}
	}
	if (optind == argc) {
		usage(stderr);
		return 2;
	}
	request_line(argc - optind, argv + optind, line, sizeof(line));
	int fd = connect_to(path, timeout_s);
	send_all(fd, line, strlen(line));
	(void)shutdown(fd, SHUT_WR); /* the request is whole */
	size_t len;
	char *text = read_reply(fd, timeout_s, &len);
	close(fd);
	json_error_t je;
	json_t *reply = json_loadb(text, len, 0, &je);
	free(text);
	json_t *ok = json_object_get(reply, "ok");
	if (!json_is_boolean(ok))
		die(2, "%s: not a reply from dnsmux (%s)", path, len ? je.text : "the connection closed without one");
	if (!json_is_true(ok)) {
		const char *why = json_string_value(json_object_get(reply, "error"));
		fprintf(stderr, "dnsmux-ctl: %s: %s\n", argv[optind], why ? why : "failed");
		json_decref(reply);
		return 1;
	}
	json_object_del(reply, "ok");
	if (json_dumpf(reply, stdout, JSON_INDENT(2)) < 0 || fputc('\n', stdout) == EOF || fflush(stdout) == EOF)
		die(2, "writing the reply: %s", strerror(errno));
	json_decref(reply);
	return 0;
}
