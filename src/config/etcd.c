/* etcd.c -- backends from etcd v3 (see etcd.h): the value parser, the
 * in-memory set fed by etcd's JSON (pure functions, fuzzed by
 * fuzz/fuzz_etcd.c), the watcher thread (libcurl through a curl multi handle,
 * so etcd_stop can wake it whatever it waits on), and config_add_etcd.
 * etcd's JSON gateway (grpc-gateway) writes keys and values in base64 and
 * 64-bit integers as strings; a watch is one long POST whose body is a
 * stream of JSON objects. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dlfcn.h>
#define CURL_DISABLE_TYPECHECK /* (its macros would take the names the loader below gives) */
#include <curl/curl.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <libknot/libknot.h>
#include <uv.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "config/etcd.h"
#include "core/rand.h"
#include "obs/log.h"

#define STREAM_MAX (16u << 20) /* a watch response larger than this is not one */
#define RANGE_MAX (64u << 20)  /* nor a range answer larger than this */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/* ---- values ---- */

/* A printable copy of len bytes for a log line (keys and values are anyone's bytes). */
static const char *printable(const char *s, size_t len, char *out, size_t cap)
{
	size_t k = 0;
	for (size_t i = 0; i < len && k + 5 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[k++] = (char)c;
		else
			k += (size_t)snprintf(out + k, cap - k, "\\x%02x", c);
	}
	if (k + 5 >= cap && cap > 4)
		memcpy(out + cap - 4, "...", 4), k = cap - 1;
	out[k] = '\0';
	return out;
}

static int check_regex(const char *re, struct etcd_backend *out, char *err, size_t errlen)
{
	if (!re[0]) {
		snprintf(err, errlen, "an empty regex (it would match every name)");
		return -EINVAL;
	}
	if (strlen(re) >= sizeof(out->match)) {
		snprintf(err, errlen, "the regex is longer than %zu bytes", sizeof(out->match) - 1);
		return -EINVAL;
	}
	int code;
	PCRE2_SIZE off;
	pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &code, &off, NULL);
	if (!c) {
		PCRE2_UCHAR msg[160];
		char p[200];
		pcre2_get_error_message(code, msg, sizeof(msg));
		snprintf(err, errlen, "'%s' is not a regular expression: %s at offset %zu",
			 printable(re, strlen(re), p, sizeof(p)), (const char *)msg, (size_t)off);
		return -EINVAL;
	}
	pcre2_code_free(c);
	out->kind = ROUTE_REGEX;
	snprintf(out->match, sizeof(out->match), "%s", re);
	return 0;
}

/* The suffix in its canonical text form: lower case, with the final dot. */
static int check_suffix(const char *s, struct etcd_backend *out, char *err, size_t errlen)
{
	uint8_t dn[KNOT_DNAME_MAXLEN];
	char p[300];
	if (!s[0] || !knot_dname_from_str(dn, s, sizeof(dn))) {
		snprintf(err, errlen, "suffix '%s' is not a domain name", printable(s, strlen(s), p, sizeof(p)));
		return -EINVAL;
	}
	knot_dname_to_lower(dn);
	if (!knot_dname_to_str(out->match, dn, sizeof(out->match))) {
		snprintf(err, errlen, "suffix '%s' is not a domain name", printable(s, strlen(s), p, sizeof(p)));
		return -EINVAL;
	}
	out->kind = ROUTE_SUFFIX;
	return 0;
}

/* {"upstream": URL, "regex": RE} or {"upstream": URL, "suffix": NAME} */
static int parse_json_value(const char *val, size_t len, struct etcd_backend *out, char *err, size_t errlen)
{
	json_error_t je;
	json_t *o = json_loadb(val, len, JSON_REJECT_DUPLICATES, &je);
	int r = -EINVAL;
	if (!o) {
		snprintf(err, errlen, "not JSON: %s at offset %d", je.text, je.position);
		return -EINVAL;
	}
	const char *k, *up = NULL, *re = NULL, *sfx = NULL;
	json_t *v;
	if (!json_is_object(o)) {
		snprintf(err, errlen, "expected a JSON object {\"upstream\": ..., \"regex\" or \"suffix\": ...}");
		goto out;
	}
	json_object_foreach(o, k, v) {
		const char **slot = strcmp(k, "upstream") == 0 ? &up : strcmp(k, "regex") == 0 ? &re
				  : strcmp(k, "suffix") == 0 ? &sfx : NULL;
		char p[100];
		if (!slot) {
			snprintf(err, errlen, "unknown key \"%s\" (expected upstream, and regex or suffix)",
				 printable(k, strlen(k), p, sizeof(p)));
			goto out;
		}
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
			snprintf(err, errlen, "\"%s\" must be a string (without NUL)", k);
			goto out;
		}
		*slot = json_string_value(v);
	}
	if (!up) {
		snprintf(err, errlen, "no \"upstream\"");
		goto out;
	}
	if (!re == !sfx) {
		snprintf(err, errlen, "exactly one of \"regex\" and \"suffix\" is needed");
		goto out;
	}
	char why[400];
	if (config_parse_upstream(up, &out->up, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "upstream: %s", why);
		goto out;
	}
	if (out->up.kind == UPSTREAM_MDNS) { /* a backend is one server; .local belongs to the file */
		snprintf(err, errlen, "upstream: mdns:// is not a backend (udp, tcp, tls, https or unix)");
		goto out;
	}
	r = re ? check_regex(re, out, err, errlen) : check_suffix(sfx, out, err, errlen);
out:
	json_decref(o);
	return r;
}

/* miekg/dnsrouter's "IP:PORT,REGEXP": the address has no comma, so the first one ends it. */
static int parse_dnsrouter(const char *val, size_t len, struct etcd_backend *out, char *err, size_t errlen)
{
	const char *comma = memchr(val, ',', len);
	char url[128], why[400], p[200];
	if (!comma) {
		snprintf(err, errlen, "'%s' is neither IP:PORT,REGEXP nor a JSON object", printable(val, len, p, sizeof(p)));
		return -EINVAL;
	}
	size_t hl = (size_t)(comma - val);
	const char *close = memchr(val, ']', hl);
	bool has_port = hl && (val[0] == '[' ? close && close + 1 < comma && close[1] == ':' : memchr(val, ':', hl) != NULL);
	if (!has_port || hl + 7 >= sizeof(url)) {
		snprintf(err, errlen, "'%s' is not IP:PORT (or [IPv6]:PORT) before the comma",
			 printable(val, hl, p, sizeof(p)));
		return -EINVAL;
	}
	snprintf(url, sizeof(url), "udp://%.*s", (int)hl, val);
	if (config_parse_upstream(url, &out->up, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s", why);
		return -EINVAL;
	}
	char re[sizeof(out->match) + 1];
	size_t rl = len - hl - 1;
	if (rl >= sizeof(re)) {
		snprintf(err, errlen, "the regex is longer than %zu bytes", sizeof(out->match) - 1);
		return -EINVAL;
	}
	memcpy(re, comma + 1, rl);
	re[rl] = '\0';
	return check_regex(re, out, err, errlen);
}

int etcd_parse_value(const char *key, const char *val, size_t len, struct etcd_backend *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	size_t kl = strlen(key);
	if (kl >= sizeof(out->key)) {
		snprintf(err, errlen, "the key is longer than %zu bytes", sizeof(out->key) - 1);
		return -EINVAL;
	}
	memcpy(out->key, key, kl + 1);
	if (len == 0) {
		snprintf(err, errlen, "an empty value");
		return -EINVAL;
	}
	if (memchr(val, '\0', len)) {
		snprintf(err, errlen, "a NUL byte in the value");
		return -EINVAL;
	}
	size_t i = 0;
	while (i < len && (val[i] == ' ' || val[i] == '\t' || val[i] == '\n' || val[i] == '\r'))
		i++;
	int r = i < len && val[i] == '{' ? parse_json_value(val, len, out, err, errlen)
					  : parse_dnsrouter(val, len, out, err, errlen);
	if (r < 0) {
		memset(out, 0, sizeof(*out));
		memcpy(out->key, key, kl + 1);
	} else {
		out->up.weight = 1;
	}
	return r;
}

/* ---- sets ---- */

void etcd_set_free(struct etcd_set *s)
{
	if (!s)
		return;
	free(s->b);
	free(s);
}

static bool backend_equal(const struct etcd_backend *a, const struct etcd_backend *b)
{
	return strcmp(a->key, b->key) == 0 && a->kind == b->kind && strcmp(a->match, b->match) == 0 &&
	       strcmp(a->up.text, b->up.text) == 0;
}

bool etcd_set_equal(const struct etcd_set *a, const struct etcd_set *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!backend_equal(&a->b[i], &b->b[i]))
			return false;
	return true;
}

/* ---- the state ---- */

struct bad {
	char *key;          /* heap */
	uint64_t mod_rev;   /* the revision whose value was reported */
	bool seen;          /* in the range being applied */
};

struct etcd_state {
	char prefix[256];
	size_t prefix_len;
	struct etcd_backend *b; /* sorted by key, heap */
	size_t n, cap;
	struct bad *bad;        /* keys whose value was reported bad (once per revision) */
	size_t n_bad;
	uint64_t revision;
	bool watching;          /* the stream said "created" */
	size_t scan;            /* bytes of buf the object scanner has seen (it resumes there) */
	unsigned depth;         /* its nesting depth there (0: between objects) */
	bool in_str, esc;       /* inside a string, after a backslash in one */
	char *buf;              /* the stream's partial object */
	size_t len, buf_cap;
};

struct etcd_state *etcd_state_new(const char *prefix)
{
	struct etcd_state *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	snprintf(st->prefix, sizeof(st->prefix), "%s", prefix);
	st->prefix_len = strlen(st->prefix);
	return st;
}

static void stream_reset(struct etcd_state *st)
{
	st->len = st->scan = 0;
	st->depth = 0;
	st->in_str = st->esc = false;
}

static void drop_bad(struct etcd_state *st, size_t i)
{
	free(st->bad[i].key);
	st->bad[i] = st->bad[--st->n_bad];
}

void etcd_state_free(struct etcd_state *st)
{
	if (!st)
		return;
	while (st->n_bad)
		drop_bad(st, 0);
	free(st->bad);
	free(st->b);
	free(st->buf);
	free(st);
}

bool etcd_state_watching(const struct etcd_state *st)
{
	return st->watching;
}

uint64_t etcd_state_revision(const struct etcd_state *st)
{
	return st->revision;
}

struct etcd_set *etcd_state_set(const struct etcd_state *st)
{
	struct etcd_set *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->b = malloc((st->n ? st->n : 1) * sizeof(*s->b));
	if (!s->b) {
		free(s);
		return NULL;
	}
	if (st->n)
		memcpy(s->b, st->b, st->n * sizeof(*s->b));
	s->n = st->n;
	s->revision = st->revision;
	return s;
}

/* Where key is, or would go (*found says which). */
static size_t search(const struct etcd_state *st, const char *key, bool *found)
{
	size_t lo = 0, hi = st->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(st->b[mid].key, key);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static bool remove_key(struct etcd_state *st, const char *key)
{
	bool found;
	size_t i = search(st, key, &found);
	if (!found)
		return false;
	memmove(&st->b[i], &st->b[i + 1], (st->n - i - 1) * sizeof(*st->b));
	st->n--;
	return true;
}

/* 1 changed, 0 the same, -ENOMEM */
static int upsert(struct etcd_state *st, const struct etcd_backend *nb)
{
	bool found;
	size_t i = search(st, nb->key, &found);
	if (found) {
		if (backend_equal(&st->b[i], nb))
			return 0;
		st->b[i] = *nb;
		return 1;
	}
	if (st->n == st->cap) {
		size_t cap = st->cap ? 2 * st->cap : 16;
		struct etcd_backend *g = realloc(st->b, cap * sizeof(*g));
		if (!g)
			return -ENOMEM;
		st->b = g;
		st->cap = cap;
	}
	memmove(&st->b[i + 1], &st->b[i], (st->n - i) * sizeof(*st->b));
	st->b[i] = *nb;
	st->n++;
	return 1;
}

static struct bad *find_bad(struct etcd_state *st, const char *key)
{
	for (size_t i = 0; i < st->n_bad; i++)
		if (strcmp(st->bad[i].key, key) == 0)
			return &st->bad[i];
	return NULL;
}

static void forget_bad(struct etcd_state *st, const char *key)
{
	struct bad *b = find_bad(st, key);
	if (b)
		drop_bad(st, (size_t)(b - st->bad));
}

/* A bad value: logged once per key and revision (a re-read after a
 * reconnect finds the same value again, and says nothing). */
static void report_bad(struct etcd_state *st, const char *key, uint64_t mod_rev, const char *why)
{
	struct bad *b = find_bad(st, key);
	if (b) {
		b->seen = true;
		if (b->mod_rev == mod_rev)
			return;
		b->mod_rev = mod_rev;
	} else {
		struct bad *g = realloc(st->bad, (st->n_bad + 1) * sizeof(*g));
		char *k = g ? strdup(key) : NULL;
		if (g)
			st->bad = g;
		if (k)
			st->bad[st->n_bad++] = (struct bad){k, mod_rev, true};
	}
	char p[300];
	log_warn(ETCD, "key %s (revision %llu) skipped: %s", printable(key, strlen(key), p, sizeof(p)),
		 (unsigned long long)mod_rev, why);
}

/* ---- etcd's JSON ---- */

/* grpc-gateway writes int64 as a string; a number is taken too. */
static bool get_u64(json_t *o, const char *name, uint64_t *out)
{
	json_t *v = json_object_get(o, name);
	if (!v) {
		*out = 0; /* proto3 leaves out zero values */
		return true;
	}
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = (uint64_t)json_integer_value(v);
		return true;
	}
	if (!json_is_string(v))
		return false;
	const char *s = json_string_value(v);
	char *end;
	errno = 0;
	unsigned long long n = strtoull(s, &end, 10);
	if (errno || !*s || *end || s[0] == '-')
		return false;
	*out = n;
	return true;
}

/* base64 of a JSON string field into a NUL-terminated heap buffer (*len
 * bytes before the NUL); a field left out is empty. -EPROTO. */
static int get_b64(json_t *o, const char *name, char **out, size_t *len)
{
	json_t *v = json_object_get(o, name);
	*out = NULL;
	*len = 0;
	if (v && !json_is_string(v))
		return -EPROTO;
	size_t in = v ? json_string_length(v) : 0;
	if (in == 0) {
		*out = calloc(1, 1);
		return *out ? 0 : -ENOMEM;
	}
	gnutls_datum_t d = {(unsigned char *)(uintptr_t)json_string_value(v), (unsigned)in}, r = {NULL, 0};
	if (in > UINT32_MAX / 2 || gnutls_base64_decode2(&d, &r) < 0)
		return -EPROTO;
	*out = malloc((size_t)r.size + 1);
	if (*out) {
		memcpy(*out, r.data, r.size);
		(*out)[r.size] = '\0';
		*len = r.size;
	}
	gnutls_free(r.data);
	return *out ? 0 : -ENOMEM;
}

/* The key of kv, if it can name a backend: under the prefix, without NUL,
 * short enough. NULL otherwise (reported); *err -EPROTO/-ENOMEM on failure. */
static char *kv_key(struct etcd_state *st, json_t *kv, int *err)
{
	char *key;
	size_t kl;
	*err = json_is_object(kv) ? get_b64(kv, "key", &key, &kl) : -EPROTO;
	if (*err < 0)
		return NULL;
	const char *why = kl == 0 ? "an empty key"
		: memchr(key, '\0', kl) ? "a NUL byte in the key"
		: kl >= ETCD_KEY_MAX ? "the key is longer than 511 bytes"
		: kl < st->prefix_len || memcmp(key, st->prefix, st->prefix_len) != 0 ? "not under the prefix"
		: NULL;
	if (why) {
		char p[200];
		log_warn(ETCD, "key %s ignored: %s", printable(key, kl, p, sizeof(p)), why);
		free(key);
		return NULL;
	}
	return key;
}

/* A PUT (value != NULL) or DELETE of kv. 1 changed, 0 not, <0 error. */
static int apply_kv(struct etcd_state *st, json_t *kv, bool is_put)
{
	int err;
	char *key = kv_key(st, kv, &err), *val = NULL;
	size_t vl;
	uint64_t mod_rev;
	if (!key)
		return err;
	int r = -EPROTO;
	if (!get_u64(kv, "mod_revision", &mod_rev))
		goto out;
	if (!is_put) {
		forget_bad(st, key);
		r = remove_key(st, key);
		goto out;
	}
	if ((r = get_b64(kv, "value", &val, &vl)) < 0)
		goto out;
	struct etcd_backend nb;
	char why[600];
	if (etcd_parse_value(key, val, vl, &nb, why, sizeof(why)) < 0) {
		report_bad(st, key, mod_rev, why);
		r = remove_key(st, key); /* etcd no longer names a backend there */
		goto out;
	}
	forget_bad(st, key);
	r = upsert(st, &nb);
out:
	free(key);
	free(val);
	return r;
}

int etcd_apply_range(struct etcd_state *st, const char *json, size_t len)
{
	json_t *o = json_loadb(json, len, 0, NULL);
	json_t *h = json_object_get(o, "header"), *kvs = json_object_get(o, "kvs");
	uint64_t rev;
	int r = -EPROTO;
	if (!json_is_object(o) || !json_is_object(h) || !get_u64(h, "revision", &rev) || (kvs && !json_is_array(kvs)))
		goto out;
	size_t i;
	json_t *kv;
	json_array_foreach(kvs, i, kv) /* the shape first: a bad answer leaves the set */
		if (!json_is_object(kv) || !json_is_string(json_object_get(kv, "key")))
			goto out;
	st->n = 0;
	stream_reset(st);
	st->watching = false;
	for (size_t b = 0; b < st->n_bad; b++)
		st->bad[b].seen = false;
	json_array_foreach(kvs, i, kv) {
		int e = apply_kv(st, kv, true);
		if (e == -ENOMEM) {
			r = e;
			goto out;
		}
	}
	for (size_t b = st->n_bad; b-- > 0;)
		if (!st->bad[b].seen)
			drop_bad(st, b);
	st->revision = rev;
	r = 0;
out:
	json_decref(o);
	return r;
}

/* One watch response. 1/0 changed or not, <0 as etcd_apply_events. */
static int apply_response(struct etcd_state *st, json_t *o)
{
	json_t *res = json_object_get(o, "result"), *h = json_object_get(res, "header");
	json_t *events = json_object_get(res, "events");
	uint64_t rev = 0;
	if (!json_is_object(res)) {
		json_t *e = json_object_get(o, "error");
		const char *m = json_string_value(json_object_get(e, "message"));
		char p[200];
		log_warn(ETCD, "watch: etcd says %s", m ? printable(m, strlen(m), p, sizeof(p)) : "no result");
		return -EPROTO;
	}
	if ((h && !json_is_object(h)) || (h && !get_u64(h, "revision", &rev)) || (events && !json_is_array(events)))
		return -EPROTO;
	if (json_is_true(json_object_get(res, "canceled"))) {
		uint64_t compact = 0;
		(void)get_u64(res, "compact_revision", &compact);
		log_info(ETCD, "watch cancelled by etcd (compacted to revision %llu): reading again",
			 (unsigned long long)compact);
		return -ESTALE;
	}
	if (json_is_true(json_object_get(res, "created")))
		st->watching = true;
	int changed = 0;
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev) {
		json_t *t = json_object_get(ev, "type");
		const char *type = t ? json_string_value(t) : "PUT"; /* PUT is 0: left out */
		if (!json_is_object(ev) || !type || (strcmp(type, "PUT") != 0 && strcmp(type, "DELETE") != 0))
			return -EPROTO;
		int r = apply_kv(st, json_object_get(ev, "kv"), strcmp(type, "PUT") == 0);
		if (r == -EPROTO || r == -ENOMEM)
			return r;
		changed |= r > 0;
	}
	if (rev > st->revision)
		st->revision = rev;
	return changed;
}

/* The length of the first whole JSON object of buf (from its '{' after any
 * white space), 0 if it is not whole yet, -EPROTO if buf does not start with
 * one. Only the object's extent is found here, jansson reads it; the scan
 * resumes where the last call stopped, so a response arriving in many reads
 * is scanned once. */
static long object_end(struct etcd_state *st)
{
	for (size_t i = st->scan; i < st->len; i++) {
		char c = st->buf[i];
		st->scan = i + 1;
		if (st->depth == 0) {
			if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
				continue;
			if (c != '{')
				return -EPROTO;
		}
		if (st->in_str) {
			if (st->esc)
				st->esc = false;
			else if (c == '\\')
				st->esc = true;
			else if (c == '"')
				st->in_str = false;
		} else if (c == '"') {
			st->in_str = true;
		} else if (c == '{' || c == '[') {
			st->depth++;
		} else if ((c == '}' || c == ']') && --st->depth == 0) {
			return (long)(i + 1);
		}
	}
	return 0;
}

int etcd_apply_events(struct etcd_state *st, const char *json, size_t len)
{
	if (st->len + len > STREAM_MAX)
		return -EPROTO;
	if (st->len + len > st->buf_cap) {
		size_t cap = st->buf_cap ? st->buf_cap : 4096;
		while (cap < st->len + len)
			cap *= 2;
		char *g = realloc(st->buf, cap);
		if (!g)
			return -ENOMEM;
		st->buf = g;
		st->buf_cap = cap;
	}
	if (len == 0 && st->len == 0)
		return 0; /* (no buffer yet) */
	if (len)
		memcpy(st->buf + st->len, json, len);
	st->len += len;
	int changed = 0;
	for (;;) {
		long end = object_end(st);
		json_t *o = end > 0 ? json_loadb(st->buf, (size_t)end, JSON_REJECT_DUPLICATES, NULL) : NULL;
		int r = end < 0 ? (int)end : end == 0 ? 0 : o ? apply_response(st, o) : -EPROTO;
		json_decref(o);
		if (r < 0) {
			stream_reset(st); /* the stream is over: the caller reads the prefix again */
			return r;
		}
		if (end == 0)
			return changed;
		changed |= r;
		memmove(st->buf, st->buf + end, st->len - (size_t)end); /* (objects are small: one move each) */
		st->len -= (size_t)end;
		st->scan = 0;
	}
}

/* ---- the watcher ---- */

struct etcd {
	struct etcd_conf conf;
	void (*on_set)(void *arg, struct etcd_set *set);
	void *arg;
	uv_thread_t thread;
	atomic_bool stop;
	CURLM *multi;             /* made before the thread: etcd_stop wakes it */
	struct etcd_state *st;
	struct etcd_set *last;    /* a copy of the last set handed over (NULL: none yet) */
	char key_b64[400], end_b64[400];
	uint32_t backoff_ms;
	bool failing;             /* the last try failed (logged once per outage) */
	struct rnd rnd;
};

struct buf {
	char *p;
	size_t len, cap;
};

/* libcurl, loaded when the first watcher starts: linked, it and the
 * libraries it needs (LDAP, SSH, PSL, IDN, Kerberos, ...) cost every
 * dnsmux 3.5 MB of RSS and 18 libraries at start, etcd or not. Debian's
 * libcurl3-gnutls (what libcurl4-gnutls-dev builds against), else libcurl4. */
static struct {
	CURLcode (*global_init)(long flags);
	void (*global_cleanup)(void);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *c, CURLoption o, ...);
	CURLcode (*easy_getinfo)(CURL *c, CURLINFO i, ...);
	void (*easy_cleanup)(CURL *c);
	const char *(*easy_strerror)(CURLcode e);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_add_handle)(CURLM *m, CURL *c);
	CURLMcode (*multi_remove_handle)(CURLM *m, CURL *c);
	CURLMcode (*multi_perform)(CURLM *m, int *running);
	CURLMcode (*multi_poll)(CURLM *m, struct curl_waitfd *fds, unsigned n, int timeout_ms, int *numfds);
	CURLMcode (*multi_wakeup)(CURLM *m);
	CURLMsg *(*multi_info_read)(CURLM *m, int *left);
	CURLMcode (*multi_cleanup)(CURLM *m);
	struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
	void (*slist_free_all)(struct curl_slist *l);
} cu;

#define curl_global_init cu.global_init
#define curl_global_cleanup cu.global_cleanup
#define curl_easy_init cu.easy_init
#undef curl_easy_setopt /* (curl.h's own pass-through macros) */
#undef curl_easy_getinfo
#define curl_easy_setopt cu.easy_setopt
#define curl_easy_getinfo cu.easy_getinfo
#define curl_easy_cleanup cu.easy_cleanup
#define curl_easy_strerror cu.easy_strerror
#define curl_multi_init cu.multi_init
#define curl_multi_add_handle cu.multi_add_handle
#define curl_multi_remove_handle cu.multi_remove_handle
#define curl_multi_perform cu.multi_perform
#define curl_multi_poll cu.multi_poll
#define curl_multi_wakeup cu.multi_wakeup
#define curl_multi_info_read cu.multi_info_read
#define curl_multi_cleanup cu.multi_cleanup
#define curl_slist_append cu.slist_append
#define curl_slist_free_all cu.slist_free_all

static bool curl_load(void)
{
	static const char *const libs[] = {"libcurl-gnutls.so.4", "libcurl.so.4"};
	void *h = NULL;
	for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]) && !h; i++)
		h = dlopen(libs[i], RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		log_err(ETCD, "cannot load libcurl (libcurl3-gnutls): %s", dlerror());
		return false;
	}
	struct {
		const char *name;
		void **fn;
	} syms[] = {
#define SYM(f, field) {"curl_" f, (void **)&cu.field}
		SYM("global_init", global_init), SYM("global_cleanup", global_cleanup), SYM("easy_init", easy_init),
		SYM("easy_setopt", easy_setopt), SYM("easy_getinfo", easy_getinfo), SYM("easy_cleanup", easy_cleanup),
		SYM("easy_strerror", easy_strerror), SYM("multi_init", multi_init),
		SYM("multi_add_handle", multi_add_handle), SYM("multi_remove_handle", multi_remove_handle),
		SYM("multi_perform", multi_perform), SYM("multi_poll", multi_poll), SYM("multi_wakeup", multi_wakeup),
		SYM("multi_info_read", multi_info_read), SYM("multi_cleanup", multi_cleanup),
		SYM("slist_append", slist_append), SYM("slist_free_all", slist_free_all),
#undef SYM
	};
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		if (!(*syms[i].fn = dlsym(h, syms[i].name))) {
			log_err(ETCD, "libcurl has no %s (it needs to be 7.68 or later)", syms[i].name);
			memset(&cu, 0, sizeof(cu));
			return false; /* (h stays loaded: harmless) */
		}
	}
	return true;
}

static uv_once_t curl_once = UV_ONCE_INIT;
static uv_mutex_t curl_lock;
static unsigned curl_users;
static bool curl_loaded;

static void curl_lock_init(void)
{
	uv_mutex_init(&curl_lock);
}

/* curl_global_init once for every watcher (it is not thread-safe), its cleanup with the last. */
static bool curl_ref(bool take)
{
	bool ok = true;
	uv_once(&curl_once, curl_lock_init);
	uv_mutex_lock(&curl_lock);
	if (take && !curl_loaded)
		ok = curl_loaded = curl_load();
	if (ok && take && curl_users == 0)
		ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
	if (take && ok)
		curl_users++;
	if (!take && --curl_users == 0)
		curl_global_cleanup();
	uv_mutex_unlock(&curl_lock);
	return ok;
}

static void deliver(struct etcd *e)
{
	struct etcd_set *s = etcd_state_set(e->st), *copy = s ? etcd_state_set(e->st) : NULL;
	if (!s || !copy || (e->last && etcd_set_equal(s, e->last))) {
		etcd_set_free(s);
		etcd_set_free(copy);
		if (!s || !copy)
			log_err(ETCD, "out of memory for a set of %zu backends", e->st->n);
		return;
	}
	etcd_set_free(e->last);
	e->last = copy;
	log_info(ETCD, "%zu backends at revision %llu", s->n, (unsigned long long)s->revision);
	e->on_set(e->arg, s);
}

/* Drive one transfer to its end, or until etcd_stop. */
static CURLcode run(struct etcd *e, CURL *h)
{
	CURLcode res = CURLE_ABORTED_BY_CALLBACK;
	if (curl_multi_add_handle(e->multi, h) != CURLM_OK)
		return CURLE_FAILED_INIT;
	while (!atomic_load(&e->stop)) {
		int running = 0, left;
		curl_multi_perform(e->multi, &running);
		CURLMsg *m = curl_multi_info_read(e->multi, &left);
		if (m && m->msg == CURLMSG_DONE) {
			res = m->data.result;
			break;
		}
		curl_multi_poll(e->multi, NULL, 0, 1000, NULL);
	}
	curl_multi_remove_handle(e->multi, h);
	return res;
}

/* Sleep ms, or less if etcd_stop wakes the multi handle. */
static void pause_ms(struct etcd *e, uint32_t ms)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		long done = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (atomic_load(&e->stop) || done >= (long)ms)
			return;
		curl_multi_poll(e->multi, NULL, 0, (int)(ms - (uint32_t)done), NULL);
	}
}

static size_t collect_cb(char *data, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	size_t len = size * n;
	if (b->len + len + 1 > RANGE_MAX)
		return 0;
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + len + 1)
			cap *= 2;
		char *g = realloc(b->p, cap);
		if (!g)
			return 0;
		b->p = g;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	return len;
}

struct watch_ctx {
	struct etcd *e;
	CURL *h;
	bool checked;   /* the status was 200 */
	int err;        /* why the stream was cut */
};

static size_t watch_cb(char *data, size_t size, size_t n, void *arg)
{
	struct watch_ctx *w = arg;
	long status = 0;
	if (!w->checked) {
		curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &status);
		if (status != 200) {
			w->err = -EPROTO;
			return 0;
		}
		w->checked = true;
	}
	bool was_watching = etcd_state_watching(w->e->st);
	int r = etcd_apply_events(w->e->st, data, size * n);
	if (r < 0) {
		w->err = r;
		return 0;
	}
	if (!was_watching && etcd_state_watching(w->e->st))
		w->e->backoff_ms = BACKOFF_MIN_MS; /* up: the next outage starts from the shortest wait */
	if (r > 0)
		deliver(w->e);
	return size * n;
}

static CURL *easy(const char *base, const char *path, const char *body, struct curl_slist *hdr, bool is_watch)
{
	char url[300];
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	snprintf(url, sizeof(url), "%.*s%s", (int)bl, base, path);
	CURL *h = curl_easy_init();
	if (!h)
		return NULL;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L); /* a watch on a peer that vanished without a word */
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 10L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 5L);
	if (!is_watch)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	return h;
}

/* POST /v3/kv/range of the prefix: 0 and the state replaced, or <0 with why. */
static int do_range(struct etcd *e, const char *base, struct curl_slist *hdr, char *why, size_t whylen)
{
	char body[1000];
	snprintf(body, sizeof(body), "{\"key\":\"%s\",\"range_end\":\"%s\"}", e->key_b64, e->end_b64);
	CURL *h = easy(base, "/v3/kv/range", body, hdr, false);
	struct buf b = {0};
	if (!h)
		return -ENOMEM;
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	CURLcode res = run(e, h);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	int r = -ECONNREFUSED;
	if (res != CURLE_OK)
		snprintf(why, whylen, "%s", curl_easy_strerror(res));
	else if (status != 200)
		snprintf(why, whylen, "range: HTTP status %ld", status), r = -EPROTO;
	else if ((r = etcd_apply_range(e->st, b.p ? b.p : "", b.len)) < 0)
		snprintf(why, whylen, "range: not an etcd range answer");
	curl_easy_cleanup(h);
	free(b.p);
	return r;
}

/* POST /v3/watch from the revision after the range: until the stream ends. */
static int do_watch(struct etcd *e, const char *base, struct curl_slist *hdr, char *why, size_t whylen)
{
	char body[1100];
	snprintf(body, sizeof(body),
		 "{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\",\"start_revision\":\"%llu\"}}", e->key_b64,
		 e->end_b64, (unsigned long long)etcd_state_revision(e->st) + 1);
	CURL *h = easy(base, "/v3/watch", body, hdr, true);
	if (!h)
		return -ENOMEM;
	struct watch_ctx w = {e, h, false, 0};
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, watch_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &w);
	CURLcode res = run(e, h);
	curl_easy_cleanup(h);
	if (w.err == -ESTALE)
		snprintf(why, whylen, "watch cancelled (compacted)");
	else if (w.err)
		snprintf(why, whylen, "watch: ended by an error from etcd, or by what is not a watch response");
	else if (res != CURLE_OK)
		snprintf(why, whylen, "watch: %s", curl_easy_strerror(res));
	else
		snprintf(why, whylen, "watch: the stream ended");
	return w.err ? w.err : -ECONNRESET;
}

static void watcher(void *arg)
{
	struct etcd *e = arg;
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	unsigned ep = 0, tried = 0;
	while (!atomic_load(&e->stop)) {
		const char *base = e->conf.endpoints[ep];
		char why[300] = "";
		int r = do_range(e, base, hdr, why, sizeof(why));
		if (r == 0) {
			if (e->failing)
				log_info(ETCD, "%s answers again: revision %llu", base,
					 (unsigned long long)etcd_state_revision(e->st));
			e->failing = false;
			tried = 0;
			deliver(e); /* the first read always (even empty); later ones if the set changed */
			r = do_watch(e, base, hdr, why, sizeof(why));
		}
		if (atomic_load(&e->stop))
			break;
		if (!e->failing)
			log_warn(ETCD, "%s: %s; keeping the last set (%zu backends), retrying", base, why,
				 e->last ? e->last->n : 0);
		else
			log_debug(ETCD, "%s: %s", base, why);
		e->failing = true;
		ep = (ep + 1) % e->conf.n_endpoints;
		if (++tried < e->conf.n_endpoints)
			continue; /* the next endpoint at once; a pause once all failed */
		tried = 0;
		uint32_t d = e->backoff_ms / 2 + rnd_u32(&e->rnd) % (e->backoff_ms / 2 + 1);
		e->backoff_ms = e->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : e->backoff_ms * 2;
		pause_ms(e, d);
	}
	curl_slist_free_all(hdr);
}

/* etcd's rule for "every key with this prefix": range_end is the prefix
 * with its last byte that is not 0xff incremented and what follows dropped;
 * an empty prefix, or one of 0xff only, is key "\0" to range_end "\0". */
static void b64(const char *s, size_t len, char *out, size_t cap)
{
	gnutls_datum_t in = {(unsigned char *)(uintptr_t)s, (unsigned)len}, r = {NULL, 0};
	out[0] = '\0';
	if (len && gnutls_base64_encode2(&in, &r) >= 0)
		snprintf(out, cap, "%.*s", (int)r.size, (const char *)r.data);
	gnutls_free(r.data);
}

static void prefix_range(struct etcd *e)
{
	char end[256];
	size_t n = strlen(e->conf.prefix);
	memcpy(end, e->conf.prefix, n);
	while (n && (unsigned char)end[n - 1] == 0xff)
		n--;
	if (n == 0) {
		b64("", 1, e->key_b64, sizeof(e->key_b64)); /* "\0" */
		snprintf(e->end_b64, sizeof(e->end_b64), "%s", e->key_b64);
		return;
	}
	end[n - 1]++;
	b64(e->conf.prefix, strlen(e->conf.prefix), e->key_b64, sizeof(e->key_b64));
	b64(end, n, e->end_b64, sizeof(e->end_b64));
}

struct etcd *etcd_start(const struct etcd_conf *conf, void (*on_set)(void *arg, struct etcd_set *set), void *arg)
{
	if (conf->n_endpoints == 0 || !curl_ref(true))
		return NULL;
	struct etcd *e = calloc(1, sizeof(*e));
	if (!e)
		goto fail_ref;
	e->conf = *conf;
	e->on_set = on_set;
	e->arg = arg;
	e->backoff_ms = BACKOFF_MIN_MS;
	rnd_init(&e->rnd);
	atomic_init(&e->stop, false);
	prefix_range(e);
	e->st = etcd_state_new(conf->prefix[0] ? conf->prefix : "");
	e->multi = curl_multi_init();
	if (!e->st || !e->multi || uv_thread_create(&e->thread, watcher, e) != 0)
		goto fail;
	return e;
fail:
	if (e->multi)
		curl_multi_cleanup(e->multi);
	etcd_state_free(e->st);
	free(e);
fail_ref:
	curl_ref(false);
	return NULL;
}

void etcd_stop(struct etcd *e)
{
	if (!e)
		return;
	atomic_store(&e->stop, true);
	curl_multi_wakeup(e->multi);
	uv_thread_join(&e->thread);
	curl_multi_cleanup(e->multi);
	etcd_state_free(e->st);
	etcd_set_free(e->last);
	free(e);
	curl_ref(false);
}

/* ---- into a configuration ---- */

/* "etcd:" + match, or for a long one its start and a hash of it all
 * (a pool name has 63 bytes); the kind marks a regex whose text is a suffix's. */
static void pool_name(char out[64], const struct etcd_backend *b, bool mark_kind)
{
	uint32_t h = 2166136261u ^ (uint32_t)b->kind;
	for (const char *p = b->match; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	if (!mark_kind && strlen(b->match) + 5 < 64)
		snprintf(out, 64, "etcd:%.58s", b->match);
	else
		snprintf(out, 64, "etcd:%.40s~%s%08x", b->match, b->kind == ROUTE_REGEX ? "re" : "sfx", h);
}

struct group {
	const struct etcd_backend *first; /* its (kind, match) */
	char name[64];
	size_t n_members;
};

static bool same_group(const struct etcd_backend *a, const struct etcd_backend *b)
{
	return a->kind == b->kind && strcmp(a->match, b->match) == 0;
}

/* Is b's URL already a member of its group (an earlier backend of the set)? */
static bool duplicate(const struct etcd_set *set, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (same_group(&set->b[j], &set->b[i]) && strcmp(set->b[j].up.text, set->b[i].up.text) == 0)
			return true;
	return false;
}

/* The groups of set, in key order, each checked; -ENOSPC/-EINVAL with why. */
static int plan(const struct config *c, const struct etcd_set *set, struct group *g, size_t *n_groups,
		size_t *n_members, char *err, size_t errlen)
{
	*n_groups = *n_members = 0;
	for (size_t i = 0; i < set->n; i++) {
		const struct etcd_backend *b = &set->b[i];
		uint8_t dn[KNOT_DNAME_MAXLEN];
		if ((b->kind != ROUTE_REGEX && b->kind != ROUTE_SUFFIX) ||
		    (b->kind == ROUTE_SUFFIX && !knot_dname_from_str(dn, b->match, sizeof(dn)))) {
			snprintf(err, errlen, "etcd key %.200s: not a regex or a domain name", b->key);
			return -EINVAL;
		}
		size_t k = 0;
		while (k < *n_groups && !same_group(g[k].first, b))
			k++;
		if (k == *n_groups) {
			if (c->n_pools + *n_groups >= CONFIG_MAX_POOLS) {
				snprintf(err, errlen, "etcd: more distinct regexes and suffixes than the %zu pools left (at most %d pools)",
					 CONFIG_MAX_POOLS - c->n_pools, CONFIG_MAX_POOLS);
				return -ENOSPC;
			}
			g[k] = (struct group){.first = b};
			pool_name(g[k].name, b, false);
			bool taken = config_find_pool(c, g[k].name) >= 0;
			for (size_t j = 0; j < k && !taken; j++)
				taken = strcmp(g[j].name, g[k].name) == 0;
			if (taken)
				pool_name(g[k].name, b, true);
			(*n_groups)++;
		}
		if (duplicate(set, i))
			continue;
		g[k].n_members++;
		if (c->n_upstreams + ++*n_members > CONFIG_MAX_UPSTREAMS) {
			snprintf(err, errlen, "etcd: more backends than the %zu upstreams left (at most %d upstreams)",
				 CONFIG_MAX_UPSTREAMS - c->n_upstreams, CONFIG_MAX_UPSTREAMS);
			return -ENOSPC;
		}
	}
	return 0;
}

static int add_route(struct config *c, enum route_kind kind, const char *match, unsigned pool)
{
	struct route_conf *r = &c->routes[c->n_routes];
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	r->pool = pool;
	snprintf(r->pool_name, sizeof(r->pool_name), "%s", c->pools[pool].name);
	if (kind == ROUTE_REGEX) {
		if (!(r->regex = strdup(match)))
			return -ENOMEM;
	} else {
		if (!knot_dname_from_str(r->suffix, match, sizeof(r->suffix)))
			return -EINVAL;
		knot_dname_to_lower(r->suffix);
	}
	c->n_routes++;
	return 0;
}

int config_add_etcd(struct config *c, const struct etcd_set *set, char *err, size_t errlen)
{
	struct group g[CONFIG_MAX_POOLS];
	size_t n_groups, n_members;
	if (c->route_table) {
		snprintf(err, errlen, "etcd: the route table is built already (add etcd's routes before)");
		return -EINVAL;
	}
	int r = plan(c, set, g, &n_groups, &n_members, err, errlen);
	if (r < 0 || n_groups == 0)
		return r;
	int def = config_find_pool(c, "default");
	bool implicit = c->n_routes == 0 && def >= 0; /* "no routes: every name to default" stays true */
	size_t n_routes = c->n_routes + n_groups + implicit;
	if (n_routes > CONFIG_MAX_ROUTES) {
		snprintf(err, errlen, "etcd: %zu routes with the file's, at most %d", n_routes, CONFIG_MAX_ROUTES);
		return -ENOSPC;
	}
	struct route_conf *grown = realloc(c->routes, n_routes * sizeof(*grown));
	if (!grown)
		goto nomem;
	c->routes = grown;
	if (implicit && add_route(c, ROUTE_SUFFIX, ".", (unsigned)def) < 0)
		goto nomem;
	for (size_t k = 0; k < n_groups; k++) {
		int p = config_add_pool(c, g[k].name);
		if (p < 0)
			goto nomem; /* (plan counted the room) */
		struct pool_conf *pc = &c->pools[p];
		pc->policy = c->etcd.policy;
		if (c->etcd.health.query_name[0])
			pc->health = c->etcd.health;
		for (size_t i = 0; i < set->n; i++) {
			if (!same_group(&set->b[i], g[k].first) || duplicate(set, i))
				continue;
			struct upstream_conf *u = &c->upstreams[c->n_upstreams++];
			*u = set->b[i].up;
			u->pool = (unsigned)p;
			u->weight = 1;
			u->tls = NULL;
			pc->n_members++;
		}
		if ((r = add_route(c, g[k].first->kind, g[k].first->match, (unsigned)p)) < 0)
			goto nomem;
	}
	return 0;
nomem:
	snprintf(err, errlen, "etcd: out of memory adding %zu backends", set->n);
	return -ENOMEM;
}
