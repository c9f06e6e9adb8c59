/* route.h -- name -> pool (CONFIG.md routes): suffix rules on label
 * boundaries, the longest whose conditions hold winning whatever the order
 * in the file; then regular expressions (PCRE2, JIT) in file order, matched
 * against the name in text form (lower case, with the final dot), as
 * miekg/dnsrouter matches them; then "suffix: ." rules, the default. No
 * match: no route (the query is answered SERVFAIL). Optional conditions on
 * any rule: qtype (any of a list) and client (an address list).
 *
 * Suffix rules live in a hash of lower-case wire-form names: a lookup costs
 * one probe per label count some rule has (up to the query name's), and
 * reads each byte of the name's longest probed suffix once, whatever the
 * number of rules. The
 * table is built once per configuration and shared read-only by the workers;
 * each worker has its own PCRE2 match data (route_scratch). No I/O. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "config/config.h"

struct route_table;
struct route_scratch;

/** Build the table of c's routes. NULL with a reason in err (ENOMEM, or a
 * regex PCRE2 will not compile). */
struct route_table *route_table_new(const struct config *c, char *err, size_t errlen);
void route_table_free(struct route_table *t);

/** Per-thread matching state (PCRE2 match data); NULL on ENOMEM. */
struct route_scratch *route_scratch_new(const struct route_table *t);
void route_scratch_free(struct route_scratch *s);

/** The pool for a query for qname (wire form, any case), qtype, from client
 * (may be NULL: client conditions then fail). Returns the pool's index, or -1
 * when no route matches. The matching route (in the configuration the table
 * was made from: its line, its cache flag) goes to *route when not NULL. */
int route_lookup(const struct route_table *t, struct route_scratch *s, const uint8_t *qname, uint16_t qtype,
		 const struct sockaddr *client, const struct route_conf **route);
