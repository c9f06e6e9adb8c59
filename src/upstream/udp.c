/* udp.c -- UDP upstream: rotating connected sockets (see udp.h).
 *
 * Each socket is polled (uv_poll) and read here with recvmmsg, as the
 * listeners are (frontend/udp.c), rather than by uv_udp: libuv reads until a
 * call comes back empty, a second system call for every answer when they
 * come one at a time. Here a lone answer in a loop turn is taken as all
 * there is (worker_read_on); if more was waiting, the (level-triggered)
 * poll reports it again at once, and the next batch is wider (struct
 * udp_width). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libknot/libknot.h>
#include "circuit/inflight.h"
#include "core/err.h"
#include "core/query.h"
#include "core/worker.h"
#include "obs/log.h"
#include "upstream/udp.h"
#include "upstream/upstream.h"

struct udp_sock {
	uv_poll_t h;
	int fd;
	struct upstream *u;     /* owner; NULL once the upstream closed */
	struct worker *w;
	struct inflight table;  /* queries in flight on this socket, by ID */
	struct udp_width width; /* recvmmsg batch width */
	uint32_t uses;          /* queries sent so far */
	bool is_retired;        /* no new queries: closes when table is empty */
	bool is_closing;
};

static void detach(struct query *q, bool gave_up);

static void sock_free(struct udp_sock *s)
{
	inflight_deinit(&s->table);
	free(s);
}

/* A socket's table is 24 KB: the last one closed is kept for the next, which
 * comes every UDP_SOCK_USES queries, rather than allocated and zeroed anew. */
static void close_cb(uv_handle_t *h)
{
	struct udp_sock *s = h->data;
	close(s->fd);
	if (!s->w->spare_usock && !s->w->is_closed) {
		inflight_clear(&s->table);
		s->w->spare_usock = s;
	} else {
		sock_free(s);
	}
}

void upstream_udp_free_spare(struct worker *w)
{
	if (w->spare_usock)
		sock_free(w->spare_usock);
	w->spare_usock = NULL;
}

static void sock_close(struct udp_sock *s)
{
	if (s->is_closing)
		return;
	s->is_closing = true;
	if (s->w->tx->n)
		udptx_flush(s->w->tx); /* its fd may be reused as soon as it is closed */
	uv_close((uv_handle_t *)&s->h, close_cb);
}

static void retire(struct udp_sock *s)
{
	s->is_retired = true;
	if (s->u && s->u->udp == s)
		s->u->udp = NULL;
	if (s->table.count == 0)
		sock_close(s);
}

static void on_answer(struct udp_sock *s, uint8_t *msg, size_t len)
{
	struct worker *w = s->w;
	struct query *q = query_for_answer_from(w, s->u ? s->u->stats : NULL, &s->table, msg, len);
	if (!q)
		return;
	struct upstream *u = q->up;
	w->turn_inputs++;
	detach(q, false);
	q->state = Q_IDLE;
	q->up = NULL;
	health_ok(&u->health);
	upstream_note_answer(u, q);
	if (knot_wire_get_tc(msg)) {
		upstream_retry_tcp(u, q);
		return;
	}
	query_upstream_answer(q, u, msg, len);
}

/* recvmmsg failed: an ICMP error on the connected socket (nobody listens there) */
static void read_failed(struct udp_sock *s, int err)
{
	if (!s->u)
		return;
	log_warn_rl(UPSTREAM, "udp upstream %s: %s", s->u->name, strerror(err));
	health_fail(&s->u->health, &s->w->rnd, worker_now(s->w));
	upstream_count_error(s->u, err == ECONNREFUSED ? UERR_REFUSED : UERR_RESET);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
	struct udp_sock *s = h->data;
	struct worker *w = s->w;
	(void)events;
	if (status < 0) {
		read_failed(s, -status);
		return;
	}
	struct mmsghdr mm[WORKER_UDP_CHUNKS];
	struct iovec iov[WORKER_UDP_CHUNKS];
	for (int k = 0; k < WORKER_UDP_READS && !s->is_closing; k++) {
		unsigned n = worker_udp_iov(w, &s->width, iov);
		for (unsigned i = 0; i < n; i++)
			mm[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1}; /* connected: no name */
		int r = udp_recvmmsg(s->fd, mm, n, MSG_DONTWAIT);
		if (r < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				read_failed(s, errno);
			return;
		}
		/* an answer may close s (the last one on a retired socket: its
		 * memory stays until close_cb); what else came on it is dropped,
		 * as no query waits there */
		if (r > 1 && w->cfg->cache_obj)
			for (int i = 0; i < r; i++) { /* (the memory their cache_put will write: all at once) */
				const struct query *q = mm[i].msg_len >= MSG_HDR ? inflight_get(&s->table, knot_wire_get_id(iov[i].iov_base)) : NULL;
				if (q)
					query_cache_prefetch(q);
			}
		for (int i = 0; i < r && !s->is_closing; i++) {
			s->width.got++;
			on_answer(s, iov[i].iov_base, mm[i].msg_len);
		}
		worker_batch_done(w);
		if ((unsigned)r < n || !worker_read_on(w, n))
			return; /* drained, or as good as (worker_read_on) */
	}
}

/* A table, from the spare socket or new. */
static struct udp_sock *sock_alloc(struct worker *w)
{
	struct udp_sock *s = w->spare_usock;
	if (s) {
		w->spare_usock = NULL;
		struct inflight table = s->table;
		*s = (struct udp_sock){.table = table};
		return s;
	}
	s = calloc(1, sizeof(*s));
	if (s && inflight_init(&s->table, UDP_SOCK_CAP) < 0) {
		free(s);
		s = NULL;
	}
	return s;
}

static struct udp_sock *open_sock(struct upstream *u)
{
	const struct sockaddr *to = (const struct sockaddr *)&u->conf->addr;
	socklen_t tolen = to->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	/* connect() binds a fresh ephemeral port chosen by the kernel */
	int fd = socket(to->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, to, tolen) < 0) {
		log_warn_rl(UPSTREAM, "udp upstream %s: cannot open a socket: %s", u->name, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	struct udp_sock *s = sock_alloc(u->w);
	if (!s) {
		close(fd);
		return NULL;
	}
	s->fd = fd;
	s->u = u;
	s->w = u->w;
	int r = uv_poll_init_socket(&u->w->loop, &s->h, fd);
	if (r < 0) {
		close(fd);
		sock_free(s);
		log_warn_rl(UPSTREAM, "udp upstream %s: cannot poll its socket: %s", u->name, uv_strerror(r));
		return NULL;
	}
	s->h.data = s;
	r = uv_poll_start(&s->h, UV_READABLE, poll_cb);
	if (r < 0) {
		log_warn_rl(UPSTREAM, "udp upstream %s: cannot poll its socket: %s", u->name, uv_strerror(r));
		s->u = NULL;
		sock_close(s);
		return NULL;
	}
	return s;
}

int upstream_udp_send(struct upstream *u, struct query *q)
{
	struct worker *w = u->w;
	struct udp_sock *s = u->udp;
	if (s && (s->uses >= UDP_SOCK_USES || inflight_full(&s->table)))
		retire(s); /* time for a new source port */
	if (!u->udp && !(u->udp = open_sock(u)))
		return -ENOMEM;
	s = u->udp;
	uint16_t id;
	int r = inflight_add(&s->table, &w->rnd, q, &id);
	if (r < 0)
		return r;
	s->uses++;
	knot_wire_set_id(q->wire, id);
	q->up_id = id;
	q->usock = s;
	q->state = Q_UDP;
	q->was_sent = true;
	q->udp_tries++;
	udptx_add(w->tx, s->fd, NULL, NULL, q->wire, q->len); /* a lost send is retried like a lost answer */
	tq_add(&w->udp_retry, &q->link, worker_now(w));
	worker_arm(w, q->link.deadline_ms);
	return 0;
}

/* Take q off its socket: answered (its ID is simply freed) or given up (the
 * ID is remembered, so a later answer counts as late, not as bogus). */
static void detach(struct query *q, bool gave_up)
{
	struct udp_sock *s = q->usock;
	tq_remove(&q->link);
	q->usock = NULL;
	if (!s)
		return;
	if (gave_up)
		inflight_abandon(&s->table, q->up_id);
	else
		inflight_del(&s->table, q->up_id);
	if (s->is_retired && s->table.count == 0)
		sock_close(s);
}

void upstream_udp_cancel(struct upstream *u, struct query *q)
{
	(void)u;
	detach(q, true);
}

/* Called by the worker timer: no answer within --udp-retry. Count it against
 * the upstream and send again, to another member when the pool has one. */
void upstream_udp_retry_expired(struct query *q)
{
	struct upstream *u = q->up;
	struct worker *w = q->w;
	upstream_udp_cancel(u, q);
	q->state = Q_IDLE;
	q->up = NULL;
	health_fail(&u->health, &w->rnd, worker_now(w));
	upstream_count_error(u, UERR_TIMEOUT);
	METRIC_INC(&w->m, udp_retries);
	query_dispatch(q, u);
}

void upstream_udp_close(struct upstream *u)
{
	struct udp_sock *s = u->udp;
	if (!s)
		return;
	s->u = NULL;
	u->udp = NULL;
	retire(s);
}

uint32_t upstream_udp_outstanding(const struct upstream *u)
{
	return u->udp ? u->udp->table.count : 0;
}
