/* rewrite.c -- a query's changes on a circuit and their undoing (see rewrite.h). */
#include <string.h>
#include <libknot/libknot.h>
#include "circuit/rewrite.h"

size_t rewrite_query(uint8_t *out, const uint8_t *q, size_t len, const struct msg_info *mi,
		     const struct rewrite_opts *o, unsigned *added)
{
	uint8_t *m = out + 2;
	memcpy(m, q, len);
	knot_wire_set_id(m, o->id);
	*added = 0;
	size_t opt = mi->opt_off;
	bool opt_last = opt && opt + mi->opt_len == len;
	/* padding needs an OPT: add one to a query that has no record besides
	 * its question, when the padding fits too. Not behind a TSIG or SIG(0),
	 * which must stay last; and not where a record may read ARCOUNT, which
	 * the OPT changes: a compression pointer may name any earlier offset
	 * (RFC 1035 4.1.4), the header too, and the name would change. */
	if (!opt && o->pad_block && knot_wire_get_ancount(m) == 0 && knot_wire_get_nscount(m) == 0 &&
	    knot_wire_get_arcount(m) == 0 &&
	    len + 11 + 4 + (o->pad_block - 1) <= MSG_MAX) {
		opt = len;
		len = msg_add_opt(m, len, REWRITE_OPT_UDP);
		opt_last = true;
		*added |= REWRITE_OPT;
	}
	if (opt_last && o->keepalive && len + 4 <= MSG_MAX) {
		len = msg_append_option(m, len, opt, MSG_OPT_TCP_KEEPALIVE, 0);
		*added |= REWRITE_KEEPALIVE;
	}
	if (opt_last && o->pad_block) {
		uint16_t pad = msg_padding_for(len, o->pad_block);
		if (len + 4 + pad <= MSG_MAX) {
			len = msg_append_option(m, len, opt, MSG_OPT_PADDING, pad);
			*added |= REWRITE_PADDING;
		}
	}
	msg_put16(out, (uint16_t)len); /* len <= MSG_MAX: every step above checked it */
	return 2 + len;
}

/* Take the option at `at` out of the OPT described by mi; returns the new length. */
static size_t drop_option(uint8_t *msg, size_t len, struct msg_info *mi, size_t at)
{
	uint16_t olen = (uint16_t)(4 + msg_get16(msg + at + 2));
	len = msg_remove_option(msg, len, mi->opt_off, at);
	mi->opt_len = (uint16_t)(mi->opt_len - olen);
	mi->end = (uint16_t)(mi->end - olen);
	return len;
}

size_t rewrite_answer(uint8_t *msg, size_t len, unsigned added, uint32_t *keepalive_ms)
{
	struct msg_info mi;
	*keepalive_ms = 0;
	/* only an OPT that ends the message, as rewrite_query: a TSIG that
	 * follows one covers it, and its signature is for the client to check */
	if (msg_scan(msg, len, &mi) < 0 || !mi.opt_off || (size_t)mi.opt_off + mi.opt_len != mi.end)
		return len;
	size_t at;
	while ((added & REWRITE_KEEPALIVE) && (at = msg_find_option(msg, mi.opt_off, mi.opt_len, MSG_OPT_TCP_KEEPALIVE))) {
		if (msg_get16(msg + at + 2) == 2 && !*keepalive_ms) /* RFC 7828 3.3.2: in units of 100 ms */
			*keepalive_ms = (uint32_t)msg_get16(msg + at + 4) * 100;
		len = drop_option(msg, len, &mi, at);
	}
	if (added & REWRITE_OPT) {
		knot_wire_set_arcount(msg, (uint16_t)(knot_wire_get_arcount(msg) - 1));
		return mi.opt_off; /* the OPT record was the last thing in it */
	}
	/* every padding option (RFC 7830 allows one; an upstream may not care) */
	while ((at = msg_find_option(msg, mi.opt_off, mi.opt_len, MSG_OPT_PADDING)))
		len = drop_option(msg, len, &mi, at);
	return len;
}
