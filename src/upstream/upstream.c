/* upstream.c -- per-worker upstream instances: creation, closing, and sending
 * over stream transports (tcp, unix), which means picking a circuit with room
 * or opening one more, up to --circuit-max. UDP lives in upstream/udp.c, mDNS
 * in upstream/mdns.c. */
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <libknot/libknot.h>
#include "circuit/circuit.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/query.h"
#include "core/worker.h"
#include "upstream/mdns.h"
#include "upstream/udp.h"
#include "upstream/upstream.h"

struct upstream *upstream_new(struct worker *w, const struct upstream_conf *conf)
{
	struct upstream *u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->conf = conf;
	u->w = w;
	health_init(&u->health);
	if (conf->kind == UPSTREAM_TLS || conf->kind == UPSTREAM_HTTPS) { /* without the pins: long, not secret, noise */
		char addr[80];
		config_addr_str(&conf->addr, addr, sizeof(addr));
		snprintf(u->name, sizeof(u->name), "%s://%s%s%s%s", conf->kind == UPSTREAM_TLS ? "tls" : "https", addr,
			 conf->path, conf->auth_name[0] ? "#" : "", conf->auth_name);
	} else {
		snprintf(u->name, sizeof(u->name), "%.*s", (int)sizeof(u->name) - 1, conf->text);
	}
	u->stats = ustats_table_get(&w->ustats, u->name);
	return u;
}

void upstream_close(struct upstream *u)
{
	if (!u)
		return;
	/* each close takes its circuit out of u->circuits */
	while (u->n_circuits)
		circuit_close(u->circuits[u->n_circuits - 1], false);
	upstream_udp_close(u);
	upstream_mdns_close(u);
	upstream_close(u->tcp_twin);
	free(u);
}

/* RFC 7766 6.2.1: reuse one connection for many queries; a second one only
 * when the first has no room, never more than --circuit-max. */
static int stream_send(struct upstream *u, struct query *q)
{
	for (unsigned i = 0; i < u->n_circuits; i++)
		if (circuit_has_room(u->circuits[i]))
			return circuit_send(u->circuits[i], q);
	if (u->n_circuits >= u->w->cfg->circuit_max)
		return ERR_FULL;
	struct circuit *c = circuit_new(u); /* in u->circuits from now on */
	if (!c)
		return -ENOMEM;
	return circuit_send(c, q);
}

int upstream_send(struct upstream *u, struct query *q)
{
	int r;
	/* taken now; a circuit writes it now or once connected (circuit.c) */
	q->taken_us = q->written_us = clock_us();
	switch (u->conf->kind) {
	case UPSTREAM_UDP: r = upstream_udp_send(u, q); break;
	case UPSTREAM_MDNS: r = upstream_mdns_send(u, q); break;
	default: r = stream_send(u, q); break;
	}
	if (r == 0) {
		q->up = u;
		STAT_INC(u->stats, queries);
	}
	return r;
}

uint32_t upstream_outstanding(const struct upstream *u)
{
	uint32_t n = u->conf->kind == UPSTREAM_UDP ? upstream_udp_outstanding(u) : upstream_mdns_outstanding(u);
	for (unsigned i = 0; i < u->n_circuits; i++)
		n += circuit_held(u->circuits[i]);
	return n;
}

void upstream_note_answer(struct upstream *u, struct query *q)
{
	struct upstream_stats *st = u->stats;
	uint64_t now = clock_us(), lat = clock_since(q->taken_us, now);
	hist_observe(&st->latency, lat);
	if (q->written_us == q->taken_us) {
		/* written as it was taken (UDP: its datagram leaves at the end of
		 * the turn): no queue time, the sum stays */
		STAT_INC(st, queue.bucket[0]);
		hist_observe(&st->wire, lat);
	} else {
		hist_observe(&st->queue, clock_since(q->taken_us, q->written_us));
		hist_observe(&st->wire, clock_since(q->written_us, now));
	}
	q->answered_by = st;
	if (!u->wants_rtt)
		return;
	uint64_t us = lat + 1; /* never 0 once measured */
	u->rtt_ewma_us = u->rtt_ewma_us ? (uint32_t)((7 * (uint64_t)u->rtt_ewma_us + us) / 8) : (uint32_t)us;
}

void upstream_cancel(struct upstream *u, struct query *q)
{
	if (q->state == Q_UDP)
		upstream_udp_cancel(u, q);
	else if (q->state == Q_MDNS)
		upstream_mdns_cancel(u, q);
	else if (q->circ)
		circuit_cancel(q->circ, q);
	q->state = Q_IDLE;
	q->up = NULL;
}

void upstream_retry_tcp(struct upstream *u, struct query *q)
{
	METRIC_INC(&u->w->m, tc_retries);
	if (!u->tcp_twin) {
		u->twin_conf = *u->conf;
		u->twin_conf.kind = UPSTREAM_TCP;
		u->tcp_twin = upstream_new(u->w, &u->twin_conf);
	}
	if (!u->tcp_twin || upstream_send(u->tcp_twin, q) < 0)
		query_fail(q, KNOT_RCODE_SERVFAIL);
}
