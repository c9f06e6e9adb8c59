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

size_t qlog_format(const struct qlog_entry *e, int64_t realtime_minus_mono_us, char *buf, size_t cap)
{
	int64_t real_us = (int64_t)e->done_us + realtime_minus_mono_us;
	time_t sec = (time_t)(real_us / 1000000);
	struct tm tm;
	char when[40], addr[INET6_ADDRSTRLEN] = "?", name[KNOT_DNAME_TXT_MAXLEN + 1] = ".", type[32] = "-";
	gmtime_r(&sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	inet_ntop(e->family == AF_INET6 ? AF_INET6 : AF_INET, e->addr, addr, sizeof(addr));
	if (e->qname_len) {
		/* (text form: libknot escapes spaces and other odd bytes as \DDD) */
		if (!knot_dname_to_str(name, e->qname, sizeof(name)))
			snprintf(name, sizeof(name), "?");
		if (knot_rrtype_to_string(e->qtype, type, sizeof(type)) < 0)
			snprintf(type, sizeof(type), "TYPE%u", e->qtype);
	}
	int n = snprintf(buf, cap, "%s.%03dZ %s#%u %s %s %s %s %s %u.%03u\n", when, (int)((real_us / 1000) % 1000), addr,
			 e->port, frontend_name[e->frontend < MF_KINDS ? e->frontend : 0], name, type, rcode_name[e->rcode & 15],
			 e->upstream ? e->upstream->name : "-", e->latency_us / 1000, e->latency_us % 1000);
	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
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
