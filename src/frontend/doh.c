/* doh.c -- DoH request semantics and responses (see doh.h). The framing
 * (HTTP/2 streams, HTTP/1.x messages) is h2.c's and h1.c's; the connection
 * (TLS, idle, drain) is tcp.c's. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include <libknot/libknot.h>
#include "core/scratch.h"
#include "core/worker.h"
#include "frontend/doh.h"
#include "frontend/frontend.h"

#define DOH_TXT_MAX 65536 /* one record's text form in a JSON answer */

#define JSON_PATH "/resolve"
#define JSON_UDP_SIZE 1232 /* EDNS size of the queries the JSON API makes (do=1) */

const char *doh_status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

static void fail(struct doh_response *err, int status, const char *why)
{
	err->status = status;
	err->content_type = "text/plain";
	err->body = (const uint8_t *)why;
	err->len = strlen(why);
	err->has_max_age = false;
}

/* RFC 9110 8.3.1: type "/" subtype *( OWS ";" OWS parameter ), the type
 * case-insensitive; OWS around a field value is not part of it (5.5), but
 * http-parser leaves the trailing one in. */
bool doh_is_dns_message(const char *v, size_t len)
{
	static const char want[] = "application/dns-message";
	const char *semi = memchr(v, ';', len);
	size_t start = 0, end = semi ? (size_t)(semi - v) : len;
	while (start < end && (v[start] == ' ' || v[start] == '\t'))
		start++;
	while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
		end--;
	return end - start == sizeof(want) - 1 && strncasecmp(v + start, want, sizeof(want) - 1) == 0;
}

void doh_forwarded_header(struct doh_request *r, const char *name, size_t nlen, const char *v, size_t vlen)
{
	bool xff = nlen == 15 && strncasecmp(name, "x-forwarded-for", 15) == 0;
	bool fwd = nlen == 9 && strncasecmp(name, "forwarded", 9) == 0;
	if (!xff && !fwd)
		return;
	/* the last hop's entry: the address the proxy we trust saw (RFC 7239 4:
	 * later entries are added by later proxies) */
	const char *p = v, *end = v + vlen;
	const char *last = memrchr(v, ',', vlen);
	if (last)
		p = last + 1;
	if (fwd) {
		const char *f = NULL;
		for (const char *s = p; s + 4 <= end; s++)
			if (strncasecmp(s, "for=", 4) == 0) {
				f = s + 4;
				break;
			}
		if (!f)
			return;
		p = f;
		const char *semi = memchr(p, ';', (size_t)(end - p));
		if (semi)
			end = semi;
	}
	while (p < end && (*p == ' ' || *p == '"' || *p == '['))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '"'))
		end--;
	/* "[v6]:port", "v4:port": cut the port */
	const char *br = memchr(p, ']', (size_t)(end - p));
	if (br)
		end = br;
	else if (memchr(p, ':', (size_t)(end - p)) == memrchr(p, ':', (size_t)(end - p)) && memchr(p, ':', (size_t)(end - p)))
		end = memchr(p, ':', (size_t)(end - p));
	size_t n = (size_t)(end - p);
	if (n == 0 || n >= sizeof(r->forwarded_for))
		return;
	memcpy(r->forwarded_for, p, n);
	r->forwarded_for[n] = '\0';
}

/* The client a trusted reverse proxy speaks for (issue 8: believed only from
 * --trusted-proxy addresses). */
static void apply_forwarded(struct worker *w, const struct doh_request *r, struct client *c)
{
	if (!r->forwarded_for[0] || !config_is_trusted_proxy(w->cfg, &c->peer.sa))
		return;
	union sockaddr_any a;
	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, r->forwarded_for, &a.in.sin_addr) == 1)
		a.in.sin_family = AF_INET;
	else if (inet_pton(AF_INET6, r->forwarded_for, &a.in6.sin6_addr) == 1)
		a.in6.sin6_family = AF_INET6;
	else
		return;
	c->peer = a;
	c->via_proxy = true;
}

/* Value of parameter key in the query string qs (qs_len bytes; not
 * decoded), or NULL. */
static const char *param(const char *qs, size_t qs_len, const char *key, size_t *len)
{
	size_t kl = strlen(key);
	const char *p = qs, *end = qs + qs_len;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		size_t seg = amp ? (size_t)(amp - p) : (size_t)(end - p);
		if (seg > kl && memcmp(p, key, kl) == 0 && p[kl] == '=') {
			*len = seg - kl - 1;
			return p + kl + 1;
		}
		if (!amp)
			break;
		p = amp + 1;
	}
	return NULL;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decode (and '+' as space) into out (cap bytes, NUL-terminated). */
static bool url_decode(const char *s, size_t len, char *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '%') {
			if (i + 2 >= len)
				return false;
			int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
			if (h < 0 || l < 0)
				return false;
			c = (char)(h * 16 + l);
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (n + 1 >= cap)
			return false;
		out[n++] = c;
	}
	out[n] = '\0';
	return true;
}

/* RFC 8484 4.1: base64url without padding (RFC 4648 5). Padding is not
 * sent, but tolerated, also percent-encoded: from i to len only "=" and
 * "%3D". */
static bool only_padding(const char *s, size_t i, size_t len)
{
	while (i < len)
		if (s[i] == '=')
			i++;
		else if (len - i >= 3 && s[i] == '%' && s[i + 1] == '3' && (s[i + 2] == 'D' || s[i + 2] == 'd'))
			i += 3;
		else
			return false;
	return true;
}

/* Each base64url character's value + 1; 0 for every other byte. */
static const uint8_t b64url_val[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7, ['H'] = 8, ['I'] = 9,
	['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17,
	['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24, ['Y'] = 25,
	['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33,
	['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41,
	['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49,
	['x'] = 50, ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57,
	['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62, ['-'] = 63, ['_'] = 64,
};

#define B64(c) ((uint32_t)b64url_val[(uint8_t)(c)] - 1)

/* The same, shifted into place for each character of a group, so that a
 * group of four is four loads and three ORs; a character outside the
 * alphabet sets B64_BAD whatever the others are. Made from b64url_val
 * before main (read-only afterwards, shared by the workers). */
#define B64_BAD 0x01000000u
static uint32_t b64_shifted[4][256];

__attribute__((constructor)) static void b64_shifted_init(void)
{
	for (unsigned c = 0; c < 256; c++)
		for (unsigned k = 0; k < 4; k++)
			b64_shifted[k][c] = b64url_val[c] ? (uint32_t)(b64url_val[c] - 1) << (18 - 6 * k) : B64_BAD;
}

/* Decode into out (cap bytes); the bytes decoded, or -1. Strict: only the
 * alphabet, then nothing but padding; no 4k+1 characters (RFC 4648 4); the
 * unused bits of the last group zero (canonical, RFC 4648 3.5), as GnuTLS's
 * decoder checked them before -- which allocated twice per query. */
static int b64url_decode(const char *s, size_t len, uint8_t *out, size_t cap)
{
	size_t o = 0, i = 0;
	for (; i + 4 <= len; i += 4) { /* whole groups, in one pass with the check */
		uint32_t v = b64_shifted[0][(uint8_t)s[i]] | b64_shifted[1][(uint8_t)s[i + 1]] |
			     b64_shifted[2][(uint8_t)s[i + 2]] | b64_shifted[3][(uint8_t)s[i + 3]];
		if (v & B64_BAD)
			break;
		if (o + 3 > cap)
			return -1;
		out[o++] = (uint8_t)(v >> 16);
		out[o++] = (uint8_t)(v >> 8);
		out[o++] = (uint8_t)v;
	}
	size_t k = i;
	while (k < len && b64url_val[(uint8_t)s[k]])
		k++;
	size_t tail = k - i; /* 0-3 characters of a last group */
	if (k == 0 || tail == 1 || o + (tail ? tail - 1 : 0) > cap || !only_padding(s, k, len))
		return -1;
	if (tail == 2) {
		uint32_t v = B64(s[i]) << 6 | B64(s[i + 1]);
		if (v & 0xf)
			return -1;
		out[o++] = (uint8_t)(v >> 4);
	} else if (tail == 3) {
		uint32_t v = B64(s[i]) << 12 | B64(s[i + 1]) << 6 | B64(s[i + 2]);
		if (v & 0x3)
			return -1;
		out[o++] = (uint8_t)(v >> 10);
		out[o++] = (uint8_t)(v >> 2);
	}
	return (int)o;
}

#undef B64

static bool param_bool(const char *qs, size_t qs_len, const char *key)
{
	size_t l;
	const char *v = param(qs, qs_len, key, &l);
	return v && l > 0 && !(l == 1 && v[0] == '0') && !(l == 5 && strncasecmp(v, "false", 5) == 0);
}

/* The JSON API (GET /resolve?name=&type=&cd=&do=&ct=): a query built from
 * the parameters. Returns its length, or 0 with *err filled. */
static size_t json_query(const char *qs, size_t qs_len, uint8_t *out, size_t cap, enum doh_kind *kind, struct doh_response *err)
{
	char name[KNOT_DNAME_TXT_MAXLEN + 2], type[32] = "A", ct[64] = "";
	size_t l;
	const char *v = param(qs, qs_len, "name", &l);
	if (!v || !url_decode(v, l, name, sizeof(name)) || !name[0]) {
		fail(err, 400, "missing or bad 'name' parameter\n");
		return 0;
	}
	if ((v = param(qs, qs_len, "type", &l)) && (!url_decode(v, l, type, sizeof(type)) || !type[0])) {
		fail(err, 400, "bad 'type' parameter\n");
		return 0;
	}
	if ((v = param(qs, qs_len, "ct", &l)))
		(void)url_decode(v, l, ct, sizeof(ct));
	*kind = doh_is_dns_message(ct, strlen(ct)) ? DOH_KIND_WIRE : DOH_KIND_JSON;
	uint16_t qtype;
	char *endp;
	unsigned long num = strtoul(type, &endp, 10);
	if (*endp == '\0' && endp != type && num <= 65535)
		qtype = (uint16_t)num;
	else if (knot_rrtype_from_string(type, &qtype) != 0) {
		fail(err, 400, "unknown 'type'\n");
		return 0;
	}
	uint8_t dn[KNOT_DNAME_MAXLEN];
	if (!knot_dname_from_str(dn, name, sizeof(dn))) {
		fail(err, 400, "'name' is not a domain name\n");
		return 0;
	}
	knot_dname_to_lower(dn);
	size_t dl = knot_dname_size(dn);
	if (MSG_HDR + dl + 4 + 11 > cap) {
		fail(err, 400, "'name' too long\n");
		return 0;
	}
	bool do_bit = param_bool(qs, qs_len, "do");
	memset(out, 0, MSG_HDR);
	knot_wire_set_rd(out);
	if (param_bool(qs, qs_len, "cd"))
		knot_wire_set_cd(out);
	knot_wire_set_qdcount(out, 1);
	memcpy(out + MSG_HDR, dn, dl);
	size_t n = MSG_HDR + dl;
	msg_put16(out + n, qtype);
	msg_put16(out + n + 2, KNOT_CLASS_IN);
	n += 4;
	n = msg_add_opt(out, n, JSON_UDP_SIZE); /* EDNS always, as the public JSON APIs ask */
	if (do_bit)
		out[n - 11 + 7] = 0x80; /* the DO flag (RFC 3225) */
	return n;
}

bool doh_request_start(struct tcp_client *tc, const struct doh_request *r, const struct client_ops *ops,
		       uint32_t stream, enum doh_kind *kind, struct doh_response *err)
{
	struct worker *w = frontend_conn_worker(tc);
	static __thread void *msg_slot;
	uint8_t *msg = scratch(&msg_slot, DOH_BODY_MAX);
	const char *doh_path = w->cfg->doh_path;
	*kind = DOH_KIND_WIRE;
	if (r->path_too_long) {
		fail(err, 414, "request URI too long\n");
		return false;
	}
	if (!r->path || r->path_len == 0) {
		fail(err, 400, "no path\n");
		return false;
	}
	const char *qmark = memchr(r->path, '?', r->path_len);
	size_t plen = qmark ? (size_t)(qmark - r->path) : r->path_len;
	const char *qs = qmark ? qmark + 1 : r->path + r->path_len;
	size_t qs_len = (size_t)(r->path + r->path_len - qs);
	bool is_json = plen == strlen(JSON_PATH) && memcmp(r->path, JSON_PATH, plen) == 0;
	bool is_doh = plen == strlen(doh_path) && memcmp(r->path, doh_path, plen) == 0;
	if (!is_json && !is_doh) {
		fail(err, 404, "not found: DNS queries go to the DoH path or /resolve\n");
		return false;
	}
	size_t len = 0;
	if (is_json) {
		if (r->method != DOH_GET) {
			fail(err, 405, "/resolve takes GET\n");
			return false;
		}
		len = json_query(qs, qs_len, msg, DOH_BODY_MAX, kind, err);
		if (!len)
			return false;
	} else if (r->method == DOH_GET) {
		size_t l;
		const char *v = param(qs, qs_len, "dns", &l);
		int n;
		if (!v) {
			fail(err, 400, "missing 'dns' parameter\n");
			return false;
		}
		if ((n = b64url_decode(v, l, msg, DOH_BODY_MAX)) < 0) {
			fail(err, 400, "'dns' is not base64url\n");
			return false;
		}
		len = (size_t)n;
	} else if (r->method == DOH_POST) {
		if (!r->ct_dns_message) {
			fail(err, 415, "POST needs content-type: application/dns-message\n");
			return false;
		}
		if (r->body_too_long) {
			fail(err, 413, "a DNS message is at most 65535 bytes\n");
			return false;
		}
		len = r->body_len;
		if (len) /* an empty body has no buffer (NULL) */
			memcpy(msg, r->body, len);
	} else {
		fail(err, 405, "the DoH path takes GET and POST\n");
		return false;
	}
	/* RFC 8484 4.2.1: a body that is no DNS query is the client's error */
	if (len < MSG_HDR || knot_wire_get_qr(msg)) {
		fail(err, 400, len < MSG_HDR ? "not a DNS message\n" : "a DNS response, not a query\n");
		return false;
	}
	struct client c = *frontend_conn_client(tc);
	c.ops = ops;
	c.u.stream.stream = stream;
	apply_forwarded(w, r, &c);
	if (frontend_query(w, msg, len, &c) < 0) {
		fail(err, 503, "server busy\n");
		return false;
	}
	return true;
}

static json_t *json_section(const knot_pkt_t *pkt, knot_section_t sec, char *txt, size_t cap)
{
	const knot_pktsection_t *s = knot_pkt_section(pkt, sec);
	json_t *arr = json_array();
	for (uint16_t i = 0; s && i < s->count; i++) {
		const knot_rrset_t *rr = knot_pkt_rr(s, i);
		if (rr->type == KNOT_RRTYPE_OPT || rr->type == KNOT_RRTYPE_TSIG)
			continue;
		char owner[KNOT_DNAME_TXT_MAXLEN + 1];
		if (!knot_dname_to_str(owner, rr->owner, sizeof(owner)))
			continue;
		for (uint16_t k = 0; k < rr->rrs.count; k++) {
			if (knot_rrset_txt_dump_data(rr, k, txt, cap, &KNOT_DUMP_STYLE_DEFAULT) < 0)
				continue;
			json_array_append_new(arr, json_pack("{s:s, s:i, s:I, s:s}", "name", owner, "type", (int)rr->type,
							      "TTL", (json_int_t)rr->ttl, "data", txt));
		}
	}
	return arr;
}

/* The answer as Google's and Cloudflare's JSON APIs give it: flags as
 * booleans, each record's data in presentation format (libknot's dump). */
static size_t json_answer(const uint8_t *msg, size_t len, uint8_t *buf, size_t cap)
{
	uint8_t *copy = malloc(len);
	if (!copy)
		return 0;
	memcpy(copy, msg, len);
	knot_pkt_t *pkt = knot_pkt_new(copy, (uint16_t)len, NULL);
	size_t n = 0;
	if (pkt && knot_pkt_parse(pkt, 0) == KNOT_EOK) {
		static __thread void *txt_slot;
		char *txt = scratch(&txt_slot, DOH_TXT_MAX);
		json_t *j = json_object();
		json_object_set_new(j, "Status", json_integer(knot_pkt_ext_rcode(pkt)));
		json_object_set_new(j, "TC", json_boolean(knot_wire_get_tc(msg)));
		json_object_set_new(j, "RD", json_boolean(knot_wire_get_rd(msg)));
		json_object_set_new(j, "RA", json_boolean(knot_wire_get_ra(msg)));
		json_object_set_new(j, "AD", json_boolean(knot_wire_get_ad(msg)));
		json_object_set_new(j, "CD", json_boolean(knot_wire_get_cd(msg)));
		char qname[KNOT_DNAME_TXT_MAXLEN + 1];
		if (knot_pkt_qname(pkt) && knot_dname_to_str(qname, knot_pkt_qname(pkt), sizeof(qname)))
			json_object_set_new(j, "Question",
					    json_pack("[{s:s, s:i}]", "name", qname, "type", (int)knot_pkt_qtype(pkt)));
		static const struct {
			knot_section_t sec;
			const char *key;
		} secs[] = {{KNOT_ANSWER, "Answer"}, {KNOT_AUTHORITY, "Authority"}, {KNOT_ADDITIONAL, "Additional"}};
		for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
			json_t *arr = json_section(pkt, secs[i].sec, txt, DOH_TXT_MAX);
			if (json_array_size(arr))
				json_object_set_new(j, secs[i].key, arr);
			else
				json_decref(arr);
		}
		char *s = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		if (s && strlen(s) + 1 <= cap) {
			n = strlen(s);
			memcpy(buf, s, n);
			buf[n++] = '\n';
		}
		free(s);
	}
	knot_pkt_free(pkt);
	free(copy);
	return n;
}

void doh_response_for_answer(const struct query *q, enum doh_kind kind, const uint8_t *msg, size_t len,
			     uint8_t *buf, size_t cap, struct doh_response *out)
{
	/* RFC 8484 5.1: the freshness lifetime is at most the smallest TTL in
	 * the answer; for a negative answer, the SOA's (RFC 2308 5). Every
	 * answer that reaches a client was checked (or built here). */
	struct msg_facts f;
	msg_answer_facts(msg, len, &f);
	out->has_max_age = f.has_ttl;
	out->max_age = f.has_ttl ? f.min_ttl : 0;
	out->status = 200;
	if (kind == DOH_KIND_JSON) {
		out->content_type = "application/dns-json";
		out->body = buf;
		out->len = json_answer(msg, len, buf, cap);
		if (out->len == 0)
			fail(out, 502, "the answer did not parse\n");
		return;
	}
	out->content_type = "application/dns-message";
	if (f.opt_off && frontend_conn_is_tls(q->client.u.stream.conn))
		msg = frontend_pad_answer(msg, &len, &f); /* RFC 8467 4.1, as on the DoT listener */
	out->body = msg;
	out->len = len;
}
