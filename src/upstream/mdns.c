/* mdns.c -- the mdns:// upstream (see mdns.h): the answer conversion first
 * (pure, unit-tested), then the instance: two sockets on ephemeral ports,
 * the queries waiting for a response in one FIFO (every one waits as long),
 * and one uv_timer_t armed at the FIFO's head. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <uv.h>
#include "core/err.h"
#include "core/query.h"
#include "core/worker.h"
#include "obs/log.h"
#include "upstream/mdns.h"
#include "upstream/upstream.h"

/* RFC 6762 10.2: the top bit of an mDNS record's class is the cache-flush bit */
#define MDNS_CLASS_MASK 0x7fff
#define MDNS_IFADDRS_REFRESH_MS 5000 /* interface addresses re-read at most this often */
#define MDNS_OPT_UDP_SIZE 1232

/* ---- the answer ---- */

static bool kept_type(uint16_t t)
{
	return t == KNOT_RRTYPE_A || t == KNOT_RRTYPE_AAAA || t == KNOT_RRTYPE_PTR || t == KNOT_RRTYPE_SRV ||
	       t == KNOT_RRTYPE_TXT || t == KNOT_RRTYPE_CNAME;
}

struct rr_list {
	knot_rrset_t rr[MDNS_RR_MAX]; /* copies: class without the cache-flush bit, TTL capped */
	unsigned n;
};

static bool same_rr(const knot_rrset_t *a, const knot_rrset_t *b)
{
	return a->type == b->type && knot_dname_is_case_equal(a->owner, b->owner) &&
	       knot_rdataset_eq(&a->rrs, &b->rrs);
}

static bool has_rr(const struct rr_list *l, const knot_rrset_t *rr)
{
	for (unsigned i = 0; i < l->n; i++)
		if (same_rr(&l->rr[i], rr))
			return true;
	return false;
}

static void add_rr(struct rr_list *l, const knot_rrset_t *rr)
{
	if (l->n >= MDNS_RR_MAX || has_rr(l, rr))
		return;
	knot_rrset_t *c = &l->rr[l->n++];
	*c = *rr;
	c->rclass &= MDNS_CLASS_MASK;
	if (c->ttl > MDNS_TTL_CAP_S)
		c->ttl = MDNS_TTL_CAP_S;
}

/* The records of resp worth passing on: answer and additional sections
 * (the authority section of mDNS holds a prober's proposed records, 8.2). */
static unsigned usable_records(const knot_pkt_t *resp, uint16_t qclass, const knot_rrset_t **out)
{
	unsigned n = 0;
	const knot_section_t secs[] = {KNOT_ANSWER, KNOT_ADDITIONAL};
	for (unsigned s = 0; s < 2; s++) {
		const knot_pktsection_t *sec = knot_pkt_section(resp, secs[s]);
		for (uint16_t i = 0; i < sec->count && n < MDNS_RR_MAX; i++) {
			const knot_rrset_t *rr = knot_pkt_rr(sec, i);
			/* TTL 0: a goodbye (10.1), the record is going away */
			if (rr->ttl == 0 || (rr->rclass & MDNS_CLASS_MASK) != qclass || !kept_type(rr->type))
				continue;
			out[n++] = rr;
		}
	}
	return n;
}

/* Fill ans with the records of name (and the CNAMEs leading there from
 * qname); true when records of qtype were found at the end of the chain. */
static bool follow(const knot_rrset_t **rrs, unsigned n, const knot_dname_t *qname, uint16_t qtype,
		   struct rr_list *ans)
{
	const knot_dname_t *name = qname;
	for (unsigned hop = 0; hop <= MDNS_CNAME_MAX; hop++) {
		bool found = false;
		const knot_rrset_t *cname = NULL;
		for (unsigned i = 0; i < n; i++) {
			if (!knot_dname_is_case_equal(rrs[i]->owner, name))
				continue;
			if (rrs[i]->type == qtype || qtype == KNOT_RRTYPE_ANY) {
				add_rr(ans, rrs[i]);
				found = true;
			} else if (rrs[i]->type == KNOT_RRTYPE_CNAME && !cname) {
				cname = rrs[i];
			}
		}
		if (found || !cname)
			return found;
		add_rr(ans, cname);
		name = knot_cname_name(cname->rrs.rdata);
	}
	return false; /* a chain longer than we follow */
}

static int put_all(knot_pkt_t *pkt, knot_section_t sec, const struct rr_list *l, bool must_fit)
{
	int r = knot_pkt_begin(pkt, sec);
	for (unsigned i = 0; r == KNOT_EOK && i < l->n; i++) {
		r = knot_pkt_put(pkt, KNOT_COMPR_HINT_NONE, &l->rr[i], 0);
		if (r == KNOT_ESPACE && !must_fit)
			return KNOT_EOK; /* additional records are a courtesy: what fits */
	}
	return r;
}

static enum mdns_verdict build(const struct rr_list *ans, const struct rr_list *extra, const uint8_t *q,
			       const struct msg_info *mi, uint8_t *out, size_t cap, size_t *out_len)
{
	size_t room = mi->opt_off ? cap - 11 : cap; /* an OPT goes back to a client that sent one */
	if (cap < MSG_HDR + (size_t)mi->qname_len + 4 + 11 || room > UINT16_MAX)
		return MDNS_BAD;
	memset(out, 0, MSG_HDR);
	knot_pkt_t *pkt = knot_pkt_new(out, (uint16_t)room, NULL);
	if (!pkt)
		return MDNS_BAD;
	knot_pkt_clear(pkt); /* to write: an empty header */
	int r = knot_pkt_put_question(pkt, q + MSG_HDR, mi->qclass, mi->qtype);
	if (r == KNOT_EOK)
		r = put_all(pkt, KNOT_ANSWER, ans, true);
	if (r == KNOT_EOK)
		r = put_all(pkt, KNOT_ADDITIONAL, extra, false);
	size_t len = pkt->size;
	knot_pkt_free(pkt);
	if (r != KNOT_EOK)
		return MDNS_BAD;
	memcpy(out, q, 2); /* the client's ID (query_answer sets its own again) */
	knot_wire_set_qr(out);
	knot_wire_set_ra(out);
	if (knot_wire_get_rd(q))
		knot_wire_set_rd(out);
	if (knot_wire_get_cd(q))
		knot_wire_set_cd(out);
	if (mi->opt_off)
		len = msg_add_opt(out, len, MDNS_OPT_UDP_SIZE);
	*out_len = len;
	return MDNS_ANSWER;
}

enum mdns_verdict mdns_answer(const knot_pkt_t *resp, const uint8_t *q, const struct msg_info *mi, uint8_t *out,
			      size_t cap, size_t *out_len)
{
	/* RFC 6762 18.2-18.3: a response has QR=1, opcode 0; 18.11: rcode 0 */
	if (resp->size < MSG_HDR || !knot_wire_get_qr(resp->wire) || knot_wire_get_opcode(resp->wire) != 0 ||
	    knot_wire_get_rcode(resp->wire) != KNOT_RCODE_NOERROR)
		return MDNS_BAD;
	const knot_rrset_t *rrs[MDNS_RR_MAX];
	unsigned n = usable_records(resp, mi->qclass, rrs);
	/* static: a few KB of copies; a worker converts one answer at a time */
	static __thread struct rr_list ans, extra;
	ans.n = extra.n = 0;
	if (!follow(rrs, n, q + MSG_HDR, mi->qtype, &ans))
		return MDNS_NOT_FOR_IT;
	for (unsigned i = 0; i < n; i++) /* e.g. an SRV target's A and AAAA */
		if (!has_rr(&ans, rrs[i]))
			add_rr(&extra, rrs[i]);
	return build(&ans, &extra, q, mi, out, cap, out_len);
}

enum mdns_verdict mdns_convert(const uint8_t *resp, size_t resp_len, const uint8_t *q, const struct msg_info *mi,
			       uint8_t *out, size_t cap, size_t *out_len)
{
	if (resp_len < MSG_HDR || resp_len > MSG_MAX)
		return MDNS_BAD;
	knot_pkt_t *pkt = knot_pkt_new((void *)resp, (uint16_t)resp_len, NULL);
	if (!pkt)
		return MDNS_BAD;
	int r = knot_pkt_parse(pkt, KNOT_PF_NOCANON);
	enum mdns_verdict v =
		r == KNOT_EOK || r == KNOT_ETRAIL ? mdns_answer(pkt, q, mi, out, cap, out_len) : MDNS_BAD;
	knot_pkt_free(pkt);
	return v;
}

size_t mdns_query(const uint8_t *q, const struct msg_info *mi, uint8_t *out, size_t cap)
{
	size_t len = (size_t)MSG_HDR + mi->qname_len + 4;
	if (cap < len || !mi->has_question)
		return 0;
	memset(out, 0, MSG_HDR);
	knot_wire_set_qdcount(out, 1);
	memcpy(out + MSG_HDR, q + MSG_HDR, (size_t)mi->qname_len + 4);
	/* 5.4: the top bit of qclass asks for a unicast response; a query from a
	 * port other than 5353 gets one anyway (6.7), so it stays clear */
	msg_put16(out + MSG_HDR + mi->qname_len + 2, mi->qclass & MDNS_CLASS_MASK);
	return len;
}

/* ---- the instance ---- */

struct mdns_sock {
	uv_udp_t h;
	struct mdns *m;
	bool is_open;
	uint8_t buf[MDNS_MSG_MAX];
};

struct mdns {
	struct upstream *u;          /* owner; NULL once it closed */
	struct worker *w;
	struct mdns_sock s4, s6;     /* IPv4 and IPv6, ephemeral ports */
	uv_timer_t timer;            /* armed at the head of waiting */
	struct tq waiting;           /* queries sent (q->link), in deadline order */
	uint32_t n_waiting;
	char ifname[IF_NAMESIZE];    /* "" for every interface */
	uv_interface_address_t *ifaddrs; /* the host's addresses (uv_interface_addresses), for sends and on-link checks */
	int n_ifaddrs;
	uint64_t ifaddrs_ms;         /* when read */
	unsigned refs;               /* handles not yet closed */
	uint8_t out[MSG_MAX];        /* the answer being built */
};

static void release(struct mdns *m)
{
	if (--m->refs)
		return;
	uv_free_interface_addresses(m->ifaddrs, m->n_ifaddrs);
	free(m);
}

static void timer_close_cb(uv_handle_t *h)
{
	release(h->data);
}

static void sock_close_cb(uv_handle_t *h)
{
	release(((struct mdns_sock *)h->data)->m);
}

static void timer_cb(uv_timer_t *t);

static void read_ifaddrs(struct mdns *m)
{
	uint64_t now = worker_now(m->w);
	if (m->ifaddrs && now - m->ifaddrs_ms < MDNS_IFADDRS_REFRESH_MS)
		return;
	uv_free_interface_addresses(m->ifaddrs, m->n_ifaddrs);
	m->ifaddrs = NULL;
	m->n_ifaddrs = 0;
	m->ifaddrs_ms = now;
	if (uv_interface_addresses(&m->ifaddrs, &m->n_ifaddrs) < 0) {
		m->ifaddrs = NULL;
		m->n_ifaddrs = 0;
	}
}

static bool our_iface(const struct mdns *m, const uv_interface_address_t *a)
{
	return !a->is_internal && (!m->ifname[0] || strcmp(a->name, m->ifname) == 0);
}

static bool prefix_eq(const uint8_t *a, const uint8_t *b, const uint8_t *mask, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((a[i] & mask[i]) != (b[i] & mask[i]))
			return false;
	return true;
}

/* RFC 6762 11: only responses from the local link are accepted -- a source
 * in a prefix of one of our interfaces' addresses, or IPv6 link-local. */
static bool on_link(const struct mdns *m, const struct sockaddr *src)
{
	if (src->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)src)->sin6_addr;
		if (IN6_IS_ADDR_LINKLOCAL(a6))
			return true;
	}
	for (int i = 0; i < m->n_ifaddrs; i++) {
		const uv_interface_address_t *a = &m->ifaddrs[i];
		if (!our_iface(m, a) || a->address.address4.sin_family != src->sa_family)
			continue;
		if (src->sa_family == AF_INET &&
		    prefix_eq((const uint8_t *)&((const struct sockaddr_in *)src)->sin_addr,
			      (const uint8_t *)&a->address.address4.sin_addr, (const uint8_t *)&a->netmask.netmask4.sin_addr, 4))
			return true;
		if (src->sa_family == AF_INET6 &&
		    prefix_eq(((const struct sockaddr_in6 *)src)->sin6_addr.s6_addr, a->address.address6.sin6_addr.s6_addr,
			      a->netmask.netmask6.sin6_addr.s6_addr, 16))
			return true;
	}
	return false;
}

static void arm(struct mdns *m)
{
	if (tq_empty(&m->waiting)) {
		uv_timer_stop(&m->timer);
		return;
	}
	uint64_t now = worker_now(m->w), at = tq_next_ms(&m->waiting);
	uv_timer_start(&m->timer, timer_cb, at > now ? at - now : 0, 0);
}

/* q leaves the waiting list: answered, given up, or cancelled */
static void take(struct mdns *m, struct query *q)
{
	tq_remove(&q->link);
	m->n_waiting--;
	q->state = Q_IDLE;
	q->up = NULL;
}

static void answer(struct mdns *m, struct query *q, uint8_t *msg, size_t len)
{
	struct upstream *u = m->u;
	take(m, q);
	health_ok(&u->health); /* mDNS silence is an answer (NXDOMAIN), never a failure */
	upstream_note_answer(u, q);
	query_upstream_answer(q, u, msg, len);
}

static void on_response(struct mdns *m, const uint8_t *msg, size_t len)
{
	knot_pkt_t *pkt = knot_pkt_new((void *)msg, (uint16_t)len, NULL);
	if (!pkt)
		return;
	int r = knot_pkt_parse(pkt, KNOT_PF_NOCANON);
	bool answered = false;
	for (struct tq_entry *e = m->waiting.head.next, *next; (r == KNOT_EOK || r == KNOT_ETRAIL) && e != &m->waiting.head;
	     e = next) {
		next = e->next;
		struct query *q = tq_container(e, struct query, link);
		size_t n;
		if (mdns_answer(pkt, q->wire, &q->mi, m->out, sizeof(m->out), &n) != MDNS_ANSWER)
			continue;
		answer(m, q, m->out, n); /* one response may answer several queries for the same name */
		answered = true;
		if (!m->u)
			break;
	}
	knot_pkt_free(pkt);
	if (!answered)
		METRIC_INC(&m->w->m, mismatched);
	if (m->u)
		arm(m);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct mdns_sock *s = h->data;
	(void)suggested;
	*buf = uv_buf_init((char *)s->buf, sizeof(s->buf));
}

static void recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
{
	struct mdns_sock *s = h->data;
	struct mdns *m = s->m;
	if (nread <= 0 || !addr || !m->u || (flags & UV_UDP_PARTIAL))
		return;
	uint16_t port = addr->sa_family == AF_INET ? ((const struct sockaddr_in *)addr)->sin_port
						  : ((const struct sockaddr_in6 *)addr)->sin6_port;
	/* RFC 6762 6: responses come from port 5353, others MUST be ignored */
	if (ntohs(port) != MDNS_PORT || (size_t)nread < MSG_HDR) {
		METRIC_INC(&m->w->m, mismatched);
		return;
	}
	read_ifaddrs(m);
	if (!on_link(m, addr)) {
		METRIC_INC(&m->w->m, mismatched);
		return;
	}
	m->w->turn_inputs++;
	on_response(m, (const uint8_t *)buf->base, (size_t)nread);
	worker_batch_done(m->w);
}

static void timer_cb(uv_timer_t *t)
{
	struct mdns *m = t->data;
	uint64_t now = worker_now(m->w);
	struct tq_entry *e;
	while (m->u && (e = tq_pop_expired(&m->waiting, now))) {
		struct query *q = tq_container(e, struct query, link);
		/* nobody on the link has the name: NXDOMAIN, with no SOA (there
		 * is no zone to take one from), so not cached negatively */
		size_t n = msg_error_reply(q->wire, q->len, &q->mi, KNOT_RCODE_NXDOMAIN, m->out, sizeof(m->out));
		if (!n) {
			m->n_waiting--;
			q->state = Q_IDLE;
			q->up = NULL;
			query_fail(q, KNOT_RCODE_SERVFAIL);
			continue;
		}
		knot_wire_set_qr(m->out);
		knot_wire_set_ra(m->out);
		knot_wire_clear_aa(m->out);
		answer(m, q, m->out, n);
	}
	if (m->u)
		arm(m);
}

static int open_sock(struct mdns *m, struct mdns_sock *s, int family)
{
	s->m = m;
	s->h.data = s;
	int r = uv_udp_init_ex(&m->w->loop, &s->h, (unsigned)family);
	if (r < 0)
		return r;
	s->is_open = true;
	m->refs++;
	struct sockaddr_storage any;
	if (family == AF_INET)
		r = uv_ip4_addr("0.0.0.0", 0, (struct sockaddr_in *)&any);
	else
		r = uv_ip6_addr("::", 0, (struct sockaddr_in6 *)&any);
	/* port 0: the kernel picks an ephemeral one, so answers come by unicast (6.7) */
	if (r == 0)
		r = uv_udp_bind(&s->h, (const struct sockaddr *)&any, family == AF_INET6 ? UV_UDP_IPV6ONLY : 0);
	if (r == 0)
		r = uv_udp_set_multicast_ttl(&s->h, 255); /* 11: link-local traffic goes with TTL/hop limit 255 */
	if (r == 0)
		r = uv_udp_recv_start(&s->h, alloc_cb, recv_cb);
	return r;
}

static void close_sock(struct mdns_sock *s)
{
	if (!s->is_open)
		return;
	s->is_open = false;
	uv_close((uv_handle_t *)&s->h, sock_close_cb);
}

static struct mdns *mdns_new(struct upstream *u)
{
	struct mdns *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->u = u;
	m->w = u->w;
	snprintf(m->ifname, sizeof(m->ifname), "%s", u->conf->mdns_if);
	tq_init(&m->waiting, MDNS_WAIT_MS);
	uv_timer_init(&m->w->loop, &m->timer);
	m->timer.data = m;
	m->refs = 1;
	int r4 = open_sock(m, &m->s4, AF_INET);
	int r6 = open_sock(m, &m->s6, AF_INET6);
	if (r4 < 0)
		log_warn_rl(UPSTREAM, "mdns upstream %s: no IPv4 socket: %s", u->name, uv_strerror(r4));
	if (r6 < 0)
		log_warn_rl(UPSTREAM, "mdns upstream %s: no IPv6 socket: %s", u->name, uv_strerror(r6));
	if (r4 < 0)
		close_sock(&m->s4);
	if (r6 < 0)
		close_sock(&m->s6);
	return m;
}

/* The wait: the pool's timeout (CONFIG.md: "no mDNS answer within it ->
 * NXDOMAIN"), else MDNS_WAIT_MS; in either case well inside the query's
 * own deadline, which would answer SERVFAIL. */
static uint64_t wait_ms(const struct upstream *u)
{
	const struct config *cfg = u->w->cfg;
	uint64_t ms = MDNS_WAIT_MS;
	if (u->conf->pool < cfg->n_pools && cfg->pools[u->conf->pool].timeout_ms)
		ms = cfg->pools[u->conf->pool].timeout_ms;
	if (ms >= cfg->timeout_ms)
		ms = cfg->timeout_ms * 3 / 4;
	return ms;
}

static void send_one(struct mdns *m, struct mdns_sock *s, unsigned ifindex, const uint8_t *msg, size_t len)
{
	uv_os_fd_t fd;
	if (!s->is_open || uv_fileno((const uv_handle_t *)&s->h, &fd) < 0)
		return;
	union {
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} to;
	union {
		char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
		struct cmsghdr align;
	} control;
	memset(&to, 0, sizeof(to));
	memset(&control, 0, sizeof(control));
	struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
	struct msghdr mh = {.msg_name = &to, .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf};
	struct cmsghdr *cm = (struct cmsghdr *)control.buf;
	/* the interface goes with each datagram (IP_PKTINFO / IPV6_PKTINFO), so
	 * one socket serves every interface of mdns:// */
	if (s == &m->s4) {
		to.in.sin_family = AF_INET;
		to.in.sin_port = htons(MDNS_PORT);
		to.in.sin_addr.s_addr = htonl(0xe00000fb); /* 224.0.0.251 */
		mh.msg_namelen = sizeof(to.in);
		struct in_pktinfo pi = {.ipi_ifindex = (int)ifindex};
		cm->cmsg_level = IPPROTO_IP;
		cm->cmsg_type = IP_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
		mh.msg_controllen = CMSG_SPACE(sizeof(pi));
	} else {
		to.in6.sin6_family = AF_INET6;
		to.in6.sin6_port = htons(MDNS_PORT);
		(void)inet_pton(AF_INET6, "ff02::fb", &to.in6.sin6_addr);
		to.in6.sin6_scope_id = ifindex;
		mh.msg_namelen = sizeof(to.in6);
		struct in6_pktinfo pi = {.ipi6_ifindex = ifindex};
		cm->cmsg_level = IPPROTO_IPV6;
		cm->cmsg_type = IPV6_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
		mh.msg_controllen = CMSG_SPACE(sizeof(pi));
	}
	/* non-blocking (libuv's socket); a datagram lost here is a response not heard: NXDOMAIN at the wait */
	if (sendmsg(fd, &mh, 0) < 0 && m->u)
		log_warn_rl(UPSTREAM, "mdns upstream %s: send on interface %u: %s", m->u->name, ifindex, strerror(errno));
}

/* One copy per interface and family: to the interfaces with an address of
 * that family (IPv6: a link-local one, the source of link-scope multicast). */
static unsigned send_all(struct mdns *m, const uint8_t *msg, size_t len)
{
	unsigned done4[16], done6[16], n4 = 0, n6 = 0;
	read_ifaddrs(m);
	for (int i = 0; i < m->n_ifaddrs; i++) {
		const uv_interface_address_t *a = &m->ifaddrs[i];
		if (!our_iface(m, a))
			continue;
		unsigned idx = if_nametoindex(a->name);
		bool v6 = a->address.address4.sin_family == AF_INET6;
		unsigned *done = v6 ? done6 : done4, *n = v6 ? &n6 : &n4;
		if (!idx || *n >= 16 || (v6 && !IN6_IS_ADDR_LINKLOCAL(&a->address.address6.sin6_addr)))
			continue;
		bool seen = false;
		for (unsigned k = 0; k < *n && !seen; k++)
			seen = done[k] == idx;
		if (seen)
			continue;
		done[(*n)++] = idx;
		send_one(m, v6 ? &m->s6 : &m->s4, idx, msg, len);
	}
	return n4 + n6;
}

int upstream_mdns_send(struct upstream *u, struct query *q)
{
	if (!u->mdns && !(u->mdns = mdns_new(u)))
		return -ENOMEM;
	struct mdns *m = u->mdns;
	if (m->n_waiting >= MDNS_INFLIGHT_MAX)
		return ERR_FULL;
	uint8_t msg[MSG_HDR + KNOT_DNAME_MAXLEN + 4];
	size_t len = mdns_query(q->wire, &q->mi, msg, sizeof(msg));
	if (!len)
		return ERR_MALFORMED;
	if (!send_all(m, msg, len)) {
		log_warn_rl(UPSTREAM, "mdns upstream %s: no interface with an address to ask on", u->name);
		return -ENODEV;
	}
	if (tq_empty(&m->waiting))
		m->waiting.delay_ms = wait_ms(u); /* a reload may change it; the FIFO stays sorted */
	tq_add(&m->waiting, &q->link, worker_now(u->w));
	m->n_waiting++;
	q->state = Q_MDNS;
	q->was_sent = true;
	arm(m);
	return 0;
}

void upstream_mdns_cancel(struct upstream *u, struct query *q)
{
	if (u->mdns && tq_entry_queued(&q->link))
		take(u->mdns, q);
}

uint32_t upstream_mdns_outstanding(const struct upstream *u)
{
	return u->mdns ? u->mdns->n_waiting : 0;
}

void upstream_mdns_close(struct upstream *u)
{
	struct mdns *m = u->mdns;
	if (!m)
		return;
	struct tq_entry *e;
	while ((e = tq_pop_expired(&m->waiting, UINT64_MAX))) {
		struct query *q = tq_container(e, struct query, link);
		m->n_waiting--;
		q->state = Q_IDLE;
		q->up = NULL;
		query_fail(q, KNOT_RCODE_SERVFAIL);
	}
	m->u = NULL;
	u->mdns = NULL;
	close_sock(&m->s4);
	close_sock(&m->s6);
	uv_close((uv_handle_t *)&m->timer, timer_close_cb);
}
