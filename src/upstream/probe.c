/* probe.c -- active health probes (see probe.h). */
#include <string.h>
#include <libknot/libknot.h>
#include "core/query.h"
#include "core/worker.h"
#include "obs/log.h"
#include "upstream/probe.h"
#include "upstream/upstream.h"

static uint16_t max_answer(const struct query *q, const struct msg_info *mi)
{
	(void)q;
	(void)mi;
	return UINT16_MAX;
}

/* The probe's answer (or query_fail's SERVFAIL when it timed out or its
 * circuit died). */
static void probe_reply(struct query *q, const uint8_t *msg, size_t len)
{
	struct upstream *u = q->client.u.stream.conn;
	const struct pool_conf *pc = &q->w->cfg->pools[q->pool];
	bool answered = len >= MSG_HDR && knot_wire_get_rcode(msg) != KNOT_RCODE_SERVFAIL;
	int t = health_probe(&u->health, answered, pc->health.fall, pc->health.rise);
	if (t < 0)
		log_warn(UPSTREAM, "upstream %s down: %u health probes in a row without an answer", u->name,
			 u->health.probe_fails);
	else if (t > 0)
		log_info(UPSTREAM, "upstream %s up: %u health probes in a row answered", u->name, u->health.probe_oks);
}

static const struct client_ops probe_client = {
	.name = "probe",
	.max_answer = max_answer,
	.reply = probe_reply,
};

static void send_probe(struct worker *w, unsigned pool, struct upstream *u)
{
	const struct health_conf *hc = &w->cfg->pools[pool].health;
	uint8_t wire[MSG_HDR + KNOT_DNAME_MAXLEN + 4];
	uint8_t *dn = knot_dname_from_str(wire + MSG_HDR, hc->query_name, KNOT_DNAME_MAXLEN);
	if (!dn)
		return;
	memset(wire, 0, MSG_HDR);
	knot_wire_set_qdcount(wire, 1);
	size_t n = MSG_HDR + knot_dname_size(wire + MSG_HDR);
	msg_put16(wire + n, hc->query_type);
	msg_put16(wire + n + 2, hc->query_class);
	n += 4;
	struct query *q = worker_query_new(w, n);
	if (!q)
		return;
	memcpy(q->wire, wire, n);
	q->len = (uint16_t)n;
	(void)msg_parse_query(q->wire, n, &q->mi);
	q->client.ops = &probe_client;
	q->client.u.stream.conn = u;
	q->max_answer = UINT16_MAX;
	q->pool = (uint16_t)pool;
	/* deadline 0: should its circuit die, it is not resent (to another member) */
	q->deadline.deadline_ms = 0;
	struct pool *p = &w->pools[pool];
	tq_add(&p->probes, &q->try_timer, worker_now(w));
	worker_arm(w, q->try_timer.deadline_ms);
	if (upstream_send(u, q) < 0)
		query_fail(q, KNOT_RCODE_SERVFAIL);
}

void probe_due(struct worker *w, uint64_t now_ms)
{
	if (w->is_stopping)
		return;
	for (unsigned i = 0; i < w->n_pools; i++) {
		struct pool *p = &w->pools[i];
		uint32_t every = p->conf->health.interval_ms;
		if (!every || now_ms < p->next_probe_ms)
			continue;
		p->next_probe_ms = now_ms + every;
		for (unsigned k = 0; k < p->n; k++)
			send_probe(w, i, p->members[k]);
		worker_arm(w, p->next_probe_ms);
	}
}

void probe_expired(struct query *q)
{
	query_fail(q, KNOT_RCODE_SERVFAIL); /* probe_reply counts it unanswered */
}
