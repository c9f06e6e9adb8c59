/* frontend.c -- the part every frontend shares: checking a client message
 * (dns/msg.c) and turning it into a query, or answering an error at once;
 * and writing an answer back to the right kind of client. */
#include <string.h>
#include <libknot/libknot.h>
#include "core/query.h"
#include "core/worker.h"
#include "frontend/frontend.h"
#include "frontend/tcp.h"

void frontend_query(struct worker *w, const uint8_t *msg, size_t len, const struct udp_from *from,
		    struct tcp_client *tc)
{
	struct msg_info mi;
	METRIC_INC(&w->m, queries);
	w->turn_inputs++;
	enum msg_verdict v = msg_parse_query(msg, len, &mi);
	if (v == MSG_DROP_SHORT) {
		METRIC_INC(&w->m, malformed);
		return;
	}
	if (v == MSG_DROP_QR) {
		METRIC_INC(&w->m, dropped_qr);
		return;
	}
	struct query *q = worker_query_new(w);
	if (!q)
		return; /* out of memory: dropped (the client will retry) */
	/* keep the message up to its last record: trailing bytes are not forwarded */
	size_t keep = v == MSG_OK ? mi.end : (len < MSG_HDR + 260 ? len : MSG_HDR + 260);
	if (keep > QUERY_INLINE) {
		q->wire = malloc(keep);
		if (!q->wire) {
			q->wire = q->inline_buf;
			worker_query_release(q);
			return;
		}
	}
	memcpy(q->wire, msg, keep);
	q->len = (uint16_t)keep;
	q->mi = mi;
	q->client_id = knot_wire_get_id(msg);
	if (tc) {
		q->client_kind = CLIENT_TCP;
		q->client.tcp = tc;
		q->max_answer = UINT16_MAX;
		frontend_tcp_query_start(tc);
	} else {
		q->client_kind = CLIENT_UDP;
		q->client.udp.fd = from->fd;
		q->client.udp.peer = from->peer;
		q->client.udp.src = from->src;
		q->max_answer = msg_client_udp_max(&mi);
	}
	switch (v) {
	case MSG_FORMERR:
		METRIC_INC(&w->m, malformed);
		query_fail(q, KNOT_RCODE_FORMERR);
		return;
	case MSG_NOTIMP:
		query_fail(q, KNOT_RCODE_NOTIMPL);
		return;
	default:
		break;
	}
	if (w->inflight > w->cfg->max_inflight) {
		METRIC_INC(&w->m, overflow);
		query_fail(q, KNOT_RCODE_SERVFAIL);
		return;
	}
	tq_add(&w->deadlines, &q->deadline, worker_now(w));
	worker_arm(w, q->deadline.deadline_ms);
	query_dispatch(q, NULL);
}

void frontend_reply(struct query *q, const uint8_t *msg, size_t len)
{
	struct worker *w = q->w;
	if (q->client_kind == CLIENT_TCP) {
		frontend_tcp_send(q->client.tcp, msg, len);
		return;
	}
	/* sent at the end of this loop turn */
	udptx_add(w->tx, q->client.udp.fd, &q->client.udp.peer.sa, q->client.udp.src.family ? &q->client.udp.src : NULL,
		  msg, len);
}
