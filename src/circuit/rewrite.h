/* rewrite.h -- what a circuit changes in a query on its way out, and undoes
 * in the answer on its way back: the upstream-side ID, the RFC 7828
 * keepalive question, RFC 8467 padding (and the OPT record that carries it).
 *
 * Pure functions: no I/O, no state. A circuit is shared by many clients, so
 * whatever a client sent, what it writes must be exactly one frame holding
 * one valid query: every change checks that the message stays within 65,535
 * bytes, and a query that cannot grow goes out without the change.
 * fuzz/fuzz_query.c holds rewrite_query to that for any input. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dns/msg.h"

#define REWRITE_PAD_BLOCK 128 /* RFC 8467 4.1: block-length padding of queries */
#define REWRITE_OPT_UDP 1232  /* UDP size of an OPT record added for padding */
/* most bytes rewrite_query adds: an OPT, a keepalive option, a padding option */
#define REWRITE_GROWTH (11 + 4 + 4 + REWRITE_PAD_BLOCK)

struct rewrite_opts {
	uint16_t id;        /* upstream-side message ID */
	bool keepalive;     /* ask the server's idle timeout (an empty RFC 7828 option), where an OPT goes out */
	uint16_t pad_block; /* pad to a multiple of this many bytes, adding an OPT if needed; 0: no padding */
};

/* What rewrite_query added, for rewrite_answer to take away again. */
enum rewrite_added {
	REWRITE_KEEPALIVE = 1, /* the keepalive option */
	REWRITE_OPT = 2,       /* an OPT record of our own (the query had none) */
	REWRITE_PADDING = 4,   /* a padding option */
};

/** Write the query q (len bytes, passed by msg_parse_query and put in shape by
 * msg_normalize_query, facts in mi) to out as one frame: a 2-byte length and
 * the message with o's changes. out has room for 2 + len + REWRITE_GROWTH.
 * Options go into the OPT only when it is the last record, and an OPT is
 * added only to a query with no record besides its question (a TSIG or
 * SIG(0) must stay last; a compressed name in a record may read ARCOUNT).
 * Returns the bytes written (2 + the message's length, which is
 * at most 65,535); *added gets enum rewrite_added flags. */
size_t rewrite_query(uint8_t *out, const uint8_t *q, size_t len, const struct msg_info *mi,
		     const struct rewrite_opts *o, unsigned *added);

/** Undo in an answer (in place) what rewrite_query added: the keepalive
 * option (the server's timeout, in ms, goes to *keepalive_ms; 0 when it gave
 * none), every padding option (padding is for the encrypted hop only), the
 * OPT record if it was ours. Only in an OPT that is the answer's last record
 * (one a TSIG follows stays as signed). Returns the new length. */
size_t rewrite_answer(uint8_t *msg, size_t len, unsigned added, uint32_t *keepalive_ms);
