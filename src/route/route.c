/* route.c -- the route table (see route.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libknot/libknot.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "route/route.h"

struct rule {
	const struct route_conf *rc;
	pcre2_code *re;      /* regex rules */
	struct rule *next;   /* suffix rules: the next (in file order) for the same suffix */
};

struct bucket {
	const uint8_t *suffix; /* lower-case wire form (the rule's); NULL: empty */
	uint32_t hash;
	uint32_t len;          /* its length in bytes */
	struct rule *rules;    /* in file order */
};

struct route_table {
	struct bucket *buckets;  /* open addressing, mask + 1 of them */
	uint32_t mask;
	struct rule *suffix_rules;
	size_t n_suffix;
	struct rule *regex_rules; /* file order */
	size_t n_regex;
	struct rule *root_rules;  /* "suffix: .", file order */
	size_t n_root;
};

struct route_scratch {
	pcre2_match_data *md;
};

/* A hash of a lower-case wire-form name that is built from its last label
 * to its first, so that one pass over a query name gives the hash of every
 * suffix of it: h(label . rest) = mix(hash of label's bytes, h(rest)). */
static uint32_t hash_label(const uint8_t *l, uint32_t rest)
{
	uint32_t h = 2166136261u ^ rest;
	for (unsigned i = 0; i <= l[0]; i++)
		h = (h ^ l[i]) * 16777619u;
	return h;
}

static uint32_t hash_name(const uint8_t *n, size_t len)
{
	const uint8_t *labels[KNOT_DNAME_MAXLABELS];
	unsigned k = 0;
	(void)len;
	for (const uint8_t *p = n; *p; p += *p + 1)
		labels[k++] = p;
	uint32_t h = 0;
	while (k)
		h = hash_label(labels[--k], h);
	return h;
}

static struct bucket *find(const struct route_table *t, const uint8_t *n, size_t len, uint32_t h)
{
	for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
		struct bucket *b = &t->buckets[i];
		if (!b->suffix)
			return b;
		if (b->hash == h && b->len == len && memcmp(b->suffix, n, len) == 0)
			return b;
	}
}

static bool conditions_hold(const struct route_conf *rc, uint16_t qtype, const struct sockaddr *client)
{
	if (rc->n_qtypes) {
		bool any = false;
		for (unsigned i = 0; i < rc->n_qtypes && !any; i++)
			any = rc->qtypes[i] == qtype;
		if (!any)
			return false;
	}
	return !rc->clients || (client && config_addr_match(rc->clients, client));
}

static struct rule *first_that_holds(struct rule *r, uint16_t qtype, const struct sockaddr *client)
{
	for (; r; r = r->next)
		if (conditions_hold(r->rc, qtype, client))
			return r;
	return NULL;
}

struct route_table *route_table_new(const struct config *c, char *err, size_t errlen)
{
	struct route_table *t = calloc(1, sizeof(*t));
	if (!t)
		goto nomem;
	size_t n_s = 0, n_r = 0, n_root = 0;
	for (size_t i = 0; i < c->n_routes; i++) {
		const struct route_conf *rc = &c->routes[i];
		if (rc->kind == ROUTE_REGEX)
			n_r++;
		else if (rc->suffix[0] == 0)
			n_root++;
		else
			n_s++;
	}
	uint32_t size = 16;
	while (size < 2 * n_s + 2)
		size *= 2;
	t->mask = size - 1;
	t->buckets = calloc(size, sizeof(*t->buckets));
	t->suffix_rules = calloc(n_s + 1, sizeof(struct rule));
	t->regex_rules = calloc(n_r + 1, sizeof(struct rule));
	t->root_rules = calloc(n_root + 1, sizeof(struct rule));
	if (!t->buckets || !t->suffix_rules || !t->regex_rules || !t->root_rules)
		goto nomem;
	/* file order is kept within each kind; a suffix's rules chain in it */
	struct rule **tails = calloc(size, sizeof(*tails));
	if (!tails)
		goto nomem;
	for (size_t i = 0; i < c->n_routes; i++) {
		const struct route_conf *rc = &c->routes[i];
		if (rc->kind == ROUTE_REGEX) {
			struct rule *r = &t->regex_rules[t->n_regex++];
			int code;
			PCRE2_SIZE off;
			r->rc = rc;
			r->re = pcre2_compile((PCRE2_SPTR)rc->regex, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &code, &off, NULL);
			if (!r->re) {
				snprintf(err, errlen, "route at line %u: regex '%s' does not compile", rc->line, rc->regex);
				free(tails);
				route_table_free(t);
				return NULL;
			}
			(void)pcre2_jit_compile(r->re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
			continue;
		}
		if (rc->suffix[0] == 0) {
			struct rule *r = &t->root_rules[t->n_root];
			r->rc = rc;
			if (t->n_root)
				t->root_rules[t->n_root - 1].next = r;
			t->n_root++;
			continue;
		}
		struct rule *r = &t->suffix_rules[t->n_suffix++];
		r->rc = rc;
		size_t len = knot_dname_size(rc->suffix);
		uint32_t h = hash_name(rc->suffix, len);
		struct bucket *b = find(t, rc->suffix, len, h);
		if (!b->suffix) {
			b->suffix = rc->suffix;
			b->hash = h;
			b->len = (uint32_t)len;
			b->rules = r;
		} else {
			tails[b - t->buckets]->next = r;
		}
		tails[b - t->buckets] = r;
	}
	free(tails);
	return t;
nomem:
	snprintf(err, errlen, "out of memory building the route table");
	route_table_free(t);
	return NULL;
}

void route_table_free(struct route_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; t->regex_rules && i < t->n_regex; i++)
		pcre2_code_free(t->regex_rules[i].re);
	free(t->buckets);
	free(t->suffix_rules);
	free(t->regex_rules);
	free(t->root_rules);
	free(t);
}

struct route_scratch *route_scratch_new(const struct route_table *t)
{
	struct route_scratch *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (t && t->n_regex && !(s->md = pcre2_match_data_create(1, NULL))) {
		free(s);
		return NULL;
	}
	return s;
}

void route_scratch_free(struct route_scratch *s)
{
	if (!s)
		return;
	pcre2_match_data_free(s->md);
	free(s);
}

int route_lookup(const struct route_table *t, struct route_scratch *s, const uint8_t *qname, uint16_t qtype,
		 const struct sockaddr *client, int *route)
{
	const struct rule *hit = NULL;
	if (t->n_suffix) {
		/* one pass: the lower-case name, where each label starts, and
		 * (from the last label back) the hash of every suffix */
		uint8_t lower[KNOT_DNAME_MAXLEN];
		uint8_t off[KNOT_DNAME_MAXLABELS];
		uint32_t h[KNOT_DNAME_MAXLABELS + 1];
		unsigned k = 0;
		size_t len = knot_dname_size(qname);
		memcpy(lower, qname, len);
		knot_dname_to_lower(lower);
		for (size_t o = 0; lower[o]; o += (size_t)lower[o] + 1)
			off[k++] = (uint8_t)o;
		h[k] = 0;
		for (unsigned i = k; i-- > 0;)
			h[i] = hash_label(lower + off[i], h[i + 1]);
		/* longest first: the whole name, then each parent (not the root) */
		for (unsigned i = 0; i < k && !hit; i++) {
			struct bucket *b = find(t, lower + off[i], len - off[i], h[i]);
			if (b->suffix)
				hit = first_that_holds(b->rules, qtype, client);
		}
	}
	if (!hit && t->n_regex) {
		char text[KNOT_DNAME_TXT_MAXLEN + 1];
		if (knot_dname_to_str(text, qname, sizeof(text))) {
			for (char *p = text; *p; p++)
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p - 'A' + 'a');
			size_t tl = strlen(text);
			for (size_t i = 0; i < t->n_regex && !hit; i++) {
				const struct rule *r = &t->regex_rules[i];
				if (pcre2_match(r->re, (PCRE2_SPTR)text, tl, 0, 0, s->md, NULL) >= 0 &&
				    conditions_hold(r->rc, qtype, client))
					hit = r;
			}
		}
	}
	if (!hit && t->n_root)
		hit = first_that_holds(t->root_rules, qtype, client);
	if (!hit)
		return -1;
	if (route)
		*route = hit->rc->line ? (int)hit->rc->line : 0;
	return (int)hit->rc->pool;
}
