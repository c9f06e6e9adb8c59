/* qlog.c -- the query log's rings, lines and writer (see qlog.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <libknot/libknot.h>
#include "core/clock.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "obs/qlog.h"

struct qlog_ring *qlog_ring_new(uint32_t entries)
{
	if (!entries || (entries & (entries - 1)))
		return NULL;
	struct qlog_ring *r = aligned_alloc(64, sizeof(*r) + (size_t)entries * sizeof(r->e[0]));
	if (!r)
		return NULL;
	r->mask = entries - 1;
	r->head = r->tail = 0;
	return r;
}

void qlog_ring_free(struct qlog_ring *r)
{
	free(r);
}

bool qlog_ring_pop(struct qlog_ring *r, struct qlog_entry *out)
{
	uint64_t t = r->tail;
	if (t == __atomic_load_n(&r->head, __ATOMIC_ACQUIRE))
		return false;
	*out = r->e[t & r->mask];
	__atomic_store_n(&r->tail, t + 1, __ATOMIC_RELEASE);
	return true;
}

static const char *const rcode_name[16] = {
	"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
	"NXRRSET", "NOTAUTH", "NOTZONE", "RCODE11", "RCODE12", "RCODE13", "RCODE14", "RCODE15",
};
static const char *const frontend_name[MF_KINDS] = {"internal", "udp", "tcp", "dot", "doh"};

/* ---- one line, without stdio: the writer formats every answered query.
 * The line is made in a scratch buffer longer than any line can be (no
 * check per field), then copied out if it fits. */

#define UPSTREAM_NAME_MAX sizeof(((struct upstream_stats *)0)->name)
#define LINE_MAX_LEN (32 + INET6_ADDRSTRLEN + 8 + 12 + KNOT_DNAME_TXT_MAXLEN + 24 + 12 + UPSTREAM_NAME_MAX + 32)

static char *put(char *p, const char *s, size_t n)
{
	if (n <= 16) { /* most fields: no call */
		for (size_t i = 0; i < n; i++)
			p[i] = s[i];
		return p + n;
	}
	memcpy(p, s, n);
	return p + n;
}

static const char digit_pairs[201] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
				      "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
				      "8081828384858687888990919293949596979899";

/* v in decimal, at least width digits (zero-padded; width <= 10) */
static char *put_uint(char *p, uint32_t v, unsigned width)
{
	char d[12];
	char *q = d + sizeof(d);
	while (v >= 100) { /* two digits a step */
		q -= 2;
		memcpy(q, digit_pairs + 2 * (v % 100), 2);
		v /= 100;
	}
	if (v >= 10) {
		q -= 2;
		memcpy(q, digit_pairs + 2 * v, 2);
	} else {
		*--q = (char)('0' + v);
	}
	while ((unsigned)(d + sizeof(d) - q) < width)
		*--q = '0';
	return put(p, q, (size_t)(d + sizeof(d) - q));
}

static char *put_ipv4(char *p, const uint8_t *a)
{
	for (int i = 0; i < 4; i++) {
		if (i)
			*p++ = '.';
		p = put_uint(p, a[i], 1);
	}
	return p;
}

/* The bytes a name's text form has as they are: letters, digits, '-', '_'. */
static const uint8_t plain[256] = {
	['-'] = 1, ['_'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1,
	['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1,
	['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1,
	['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1,
	['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
};

/* A name in text form. Names of plain bytes (nearly all) are spelt here;
 * any other byte sends the whole name to libknot, whose text form escapes
 * it (a space as \032), so that a line keeps its fields. */
static char *put_name(char *p, const uint8_t *n, size_t len)
{
	char *start = p;
	size_t i = 0;
	while (i < len && n[i]) {
		size_t l = n[i++];
		if (l > 63 || i + l > len)
			goto by_libknot;
		uint8_t all = 1;
		for (size_t j = 0; j < l; j++) {
			uint8_t c = n[i + j];
			all &= plain[c];
			p[j] = (char)c;
		}
		if (!all)
			goto by_libknot;
		p += l;
		*p++ = '.';
		i += l;
	}
	if (p == start)
		*p++ = '.'; /* the root */
	return p;
by_libknot:
	if (!knot_dname_to_str(start, n, KNOT_DNAME_TXT_MAXLEN + 1))
		return put(start, "?", 1);
	return start + strlen(start);
}

static char *put_type(char *p, uint16_t type)
{
	const knot_rdata_descriptor_t *d = knot_get_rdata_descriptor(type);
	if (d && d->type_name)
		return put(p, d->type_name, strlen(d->type_name));
	return put_uint(put(p, "TYPE", 4), type, 1);
}

/* "YYYY-MM-DDTHH:MM:SS" of sec: computed once a second (lines come in
 * thousands a second; gmtime and strftime cost more than the rest of a line) */
static const char *second_text(time_t sec)
{
	static __thread time_t cached = -1;
	static __thread char text[32];
	if (sec != cached) {
		struct tm tm;
		gmtime_r(&sec, &tm);
		strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &tm);
		cached = sec;
	}
	return text;
}

size_t qlog_format(const struct qlog_entry *e, int64_t realtime_minus_mono_us, char *buf, size_t cap)
{
	static __thread char line[LINE_MAX_LEN];
	int64_t real_us = (int64_t)e->done_us + realtime_minus_mono_us;
	const char *when = second_text((time_t)(real_us / 1000000));
	char *p = put(line, when, strlen(when));
	*p++ = '.';
	p = put_uint(p, (uint32_t)((real_us / 1000) % 1000), 3);
	p = put(p, "Z ", 2);
	if (e->family == AF_INET6) {
		if (!inet_ntop(AF_INET6, e->addr, p, INET6_ADDRSTRLEN))
			strcpy(p, "?");
		p += strlen(p);
	} else {
		p = put_ipv4(p, e->addr);
	}
	*p++ = '#';
	p = put_uint(p, e->port, 1);
	*p++ = ' ';
	const char *fe = frontend_name[e->frontend < MF_KINDS ? e->frontend : 0];
	p = put(p, fe, strlen(fe));
	*p++ = ' ';
	if (e->qname_len) {
		p = put_name(p, e->qname, e->qname_len);
		*p++ = ' ';
		p = put_type(p, e->qtype);
	} else {
		p = put(p, ". -", 3);
	}
	*p++ = ' ';
	const char *rc = rcode_name[e->rcode & 15];
	p = put(p, rc, strlen(rc));
	*p++ = ' ';
	const char *up = e->upstream ? e->upstream->name : "-";
	p = put(p, up, strnlen(up, UPSTREAM_NAME_MAX));
	*p++ = ' ';
	p = put_uint(p, e->latency_us / 1000, 1);
	*p++ = '.';
	p = put_uint(p, e->latency_us % 1000, 3);
	*p++ = '\n';
	size_t n = (size_t)(p - line);
	if (n >= cap)
		return 0;
	memcpy(buf, line, n);
	buf[n] = '\0'; /* (a C string too; not counted) */
	return n;
}

/* ---- the writer ---- */

struct qlog_writer {
	uv_timer_t timer;
	struct qlog_ring **rings;
	unsigned n;
	char path[1024];
	int fd;                  /* -1: not open (tried again at each drain) */
	int last_errno;          /* the open or write error last logged, so each is logged once */
	uint64_t dropped;
	bool is_blocked;         /* the last write said EAGAIN: no more tries in this drain */
	size_t len;              /* bytes in buf not yet written */
	char buf[QLOG_BUF];
};

static void try_open(struct qlog_writer *q)
{
	/* O_NONBLOCK: a FIFO without a reader fails (ENXIO) rather than
	 * blocking the open, and one whose reader stalls returns EAGAIN */
	q->fd = open(q->path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0640);
	if (q->fd < 0 && errno != q->last_errno) {
		q->last_errno = errno;
		log_warn(DAEMON, "query log %s: cannot open: %s; lines are dropped (and counted) until it opens", q->path,
			 strerror(errno));
	} else if (q->fd >= 0 && q->last_errno) {
		log_info(DAEMON, "query log %s: open", q->path);
		q->last_errno = 0;
	}
}

static uint64_t lines_in(const char *p, size_t len)
{
	uint64_t k = 0;
	for (size_t i = 0; i < len; i++)
		k += p[i] == '\n';
	return k;
}

/* Write what buf holds, as far as the file takes it. */
static void write_out(struct qlog_writer *q)
{
	if (q->fd < 0)
		try_open(q);
	if (q->fd < 0) {
		q->dropped += lines_in(q->buf, q->len);
		q->len = 0;
		return;
	}
	while (q->len) {
		ssize_t w = write(q->fd, q->buf, q->len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			q->is_blocked = true;
			return; /* kept; new lines wait behind them, or drop once buf is full */
		}
		if (w <= 0) {
			if (errno != q->last_errno)
				log_warn(DAEMON, "query log %s: write failed: %s; reopening", q->path, strerror(errno));
			q->last_errno = errno;
			q->dropped += lines_in(q->buf, q->len);
			q->len = 0;
			close(q->fd);
			q->fd = -1;
			return;
		}
		memmove(q->buf, q->buf + w, q->len - (size_t)w); /* (a line cut by a short write is finished next time) */
		q->len -= (size_t)w;
	}
}

static void drain(struct qlog_writer *q)
{
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	int64_t offset = ((int64_t)rt.tv_sec * 1000000 + rt.tv_nsec / 1000) - (int64_t)clock_us();
	struct qlog_entry e;
	q->is_blocked = false;
	for (unsigned i = 0; i < q->n; i++) {
		while (qlog_ring_pop(q->rings[i], &e)) {
			size_t k = qlog_format(&e, offset, q->buf + q->len, sizeof(q->buf) - q->len);
			if (!k && !q->is_blocked) {
				write_out(q); /* room, if the file takes it */
				k = qlog_format(&e, offset, q->buf + q->len, sizeof(q->buf) - q->len);
			}
			if (k)
				q->len += k;
			else
				q->dropped++;
		}
	}
	write_out(q);
}

static void timer_cb(uv_timer_t *t)
{
	drain(t->data);
}

struct qlog_writer *qlog_writer_new(uv_loop_t *loop, const char *path, struct qlog_ring **rings, unsigned n)
{
	struct qlog_writer *q = malloc(sizeof(*q));
	if (!q)
		return NULL;
	q->rings = rings;
	q->n = n;
	q->fd = -1;
	q->last_errno = 0;
	q->dropped = 0;
	q->is_blocked = false;
	q->len = 0;
	snprintf(q->path, sizeof(q->path), "%s", path);
	try_open(q);
	uv_timer_init(loop, &q->timer);
	q->timer.data = q;
	uv_timer_start(&q->timer, timer_cb, QLOG_DRAIN_MS, QLOG_DRAIN_MS);
	uv_unref((uv_handle_t *)&q->timer); /* the daemon's loop ends without waiting for it */
	return q;
}

void qlog_writer_reopen(struct qlog_writer *q, const char *path)
{
	if (!q)
		return;
	drain(q);
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
	q->last_errno = 0;
	snprintf(q->path, sizeof(q->path), "%s", path);
	try_open(q);
}

uint64_t qlog_writer_dropped(const struct qlog_writer *q)
{
	return q ? q->dropped : 0;
}

static void close_cb(uv_handle_t *h)
{
	free(h->data);
}

void qlog_writer_close(struct qlog_writer *q)
{
	if (!q)
		return;
	drain(q);
	q->dropped += lines_in(q->buf, q->len); /* (what the file did not take by now) */
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
	uv_close((uv_handle_t *)&q->timer, close_cb);
}
