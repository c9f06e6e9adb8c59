/* tls.c -- a GnuTLS session on memory buffers (see tls.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include "tls/creds.h"
#include "tls/tls.h"

/* TLS 1.3 preferred, 1.2 the minimum (RFC 8310 and RFC 7525). */
#define TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

struct tls_conn {
	gnutls_session_t s;
	struct frame_buf in;              /* ciphertext fed, not yet consumed */
	struct frame_buf out;             /* ciphertext produced, to be written */
	struct tls_client_ctx *client;    /* client sessions: verification, tickets */
	struct tls_server_creds *creds;   /* server sessions: held reference */
	bool hs_done;
	bool session_saved;
};

static ssize_t pull(gnutls_transport_ptr_t p, void *data, size_t len)
{
	struct tls_conn *t = p;
	size_t avail = t->in.len - t->in.start;
	if (avail == 0) {
		gnutls_transport_set_errno(t->s, EAGAIN);
		return -1;
	}
	if (len > avail)
		len = avail;
	memcpy(data, t->in.data + t->in.start, len);
	t->in.start += len;
	return (ssize_t)len;
}

/* GnuTLS asks whether input is waiting before it reads; its default would
 * select() on the transport pointer as if it were a file descriptor. */
static int pull_timeout(gnutls_transport_ptr_t p, unsigned ms)
{
	struct tls_conn *t = p;
	(void)ms;
	return t->in.len > t->in.start ? 1 : 0;
}

static ssize_t vec_push(gnutls_transport_ptr_t p, const giovec_t *iov, int iovcnt)
{
	struct tls_conn *t = p;
	size_t total = 0;
	for (int i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	if (frame_buf_reserve(&t->out, total) < 0) {
		gnutls_transport_set_errno(t->s, ENOMEM);
		return -1;
	}
	for (int i = 0; i < iovcnt; i++) {
		memcpy(t->out.data + t->out.len, iov[i].iov_base, iov[i].iov_len);
		t->out.len += iov[i].iov_len;
	}
	return (ssize_t)total;
}

static struct tls_conn *conn_new(unsigned flags)
{
	struct tls_conn *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	if (frame_buf_init(&t->in, 16384 + 512) < 0 || frame_buf_init(&t->out, 4096) < 0 ||
	    gnutls_init(&t->s, flags | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0) {
		frame_buf_deinit(&t->in);
		frame_buf_deinit(&t->out);
		free(t);
		return NULL;
	}
	gnutls_transport_set_ptr(t->s, t);
	gnutls_transport_set_pull_function(t->s, pull);
	gnutls_transport_set_pull_timeout_function(t->s, pull_timeout);
	gnutls_transport_set_vec_push_function(t->s, vec_push);
	if (gnutls_priority_set_direct(t->s, TLS_PRIORITY, NULL) < 0) {
		tls_conn_free(t);
		return NULL;
	}
	return t;
}

struct tls_conn *tls_conn_new_client(struct tls_client_ctx *ctx)
{
	struct tls_conn *t = conn_new(GNUTLS_CLIENT);
	if (!t)
		return NULL;
	t->client = ctx;
	if (gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, ctx->cred) < 0) {
		tls_conn_free(t);
		return NULL;
	}
	if (ctx->auth_name[0])
		gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, ctx->auth_name, strlen(ctx->auth_name));
	static const gnutls_datum_t h2 = {(unsigned char *)"h2", 2};
	if (ctx->alpn_h2 && gnutls_alpn_set_protocols(t->s, &h2, 1, 0) < 0) {
		tls_conn_free(t);
		return NULL;
	}
	/* resume with the ticket another connection (any worker's) received */
	pthread_mutex_lock(&ctx->lock);
	if (ctx->session.size)
		(void)gnutls_session_set_data(t->s, ctx->session.data, ctx->session.size);
	pthread_mutex_unlock(&ctx->lock);
	return t;
}

struct tls_conn *tls_conn_new_server(struct tls_server_ctx *ctx, bool http)
{
	struct tls_conn *t = conn_new(GNUTLS_SERVER);
	if (!t)
		return NULL;
	static const gnutls_datum_t alpn[] = {{(unsigned char *)"h2", 2}, {(unsigned char *)"http/1.1", 8}};
	/* a client offering no ALPN (nginx's proxy_pass) gets HTTP/1.x */
	if (http && gnutls_alpn_set_protocols(t->s, alpn, 2, GNUTLS_ALPN_SERVER_PRECEDENCE) < 0) {
		tls_conn_free(t);
		return NULL;
	}
	t->creds = tls_server_creds_get(ctx);
	if (gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, t->creds->cred) < 0 ||
	    gnutls_session_ticket_enable_server(t->s, &ctx->ticket_key) < 0) {
		tls_conn_free(t);
		return NULL;
	}
	gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_IGNORE);
	return t;
}

void tls_conn_free(struct tls_conn *t)
{
	if (!t)
		return;
	gnutls_deinit(t->s);
	frame_buf_deinit(&t->in);
	frame_buf_deinit(&t->out);
	tls_server_creds_put(t->creds);
	free(t);
}

int tls_conn_room(struct tls_conn *t, uint8_t **p, size_t *room)
{
	return frame_buf_room(&t->in, 4096, p, room);
}

void tls_conn_filled(struct tls_conn *t, size_t n)
{
	frame_buf_filled(&t->in, n);
}

int tls_conn_handshake(struct tls_conn *t)
{
	if (t->hs_done)
		return TLS_OK;
	int r = gnutls_handshake(t->s);
	if (r == GNUTLS_E_SUCCESS) {
		t->hs_done = true;
		return TLS_OK;
	}
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
		return TLS_AGAIN;
	if (!gnutls_error_is_fatal(r))
		return TLS_AGAIN; /* e.g. a warning alert: keep going */
	return r;
}

bool tls_conn_handshake_done(const struct tls_conn *t)
{
	return t->hs_done;
}

int tls_conn_read(struct tls_conn *t, struct frame_buf *pt)
{
	for (;;) {
		uint8_t *p;
		size_t room;
		if (frame_buf_room(pt, 4096, &p, &room) < 0)
			return -ENOMEM;
		size_t before = t->in.len - t->in.start;
		ssize_t n = gnutls_record_recv(t->s, p, room);
		if (n > 0) {
			frame_buf_filled(pt, (size_t)n);
			continue;
		}
		if (n == 0)
			return -ECONNRESET; /* close_notify */
		/* GnuTLS answers AGAIN after each post-handshake message (a TLS 1.3
		 * session ticket) too: go on while it still consumes input */
		if ((n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) && t->in.len - t->in.start < before &&
		    t->in.len > t->in.start)
			continue;
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			return TLS_OK;
		if (n == GNUTLS_E_REHANDSHAKE || !gnutls_error_is_fatal((int)n))
			continue; /* TLS 1.3 post-handshake messages (tickets, key update) */
		return (int)n;
	}
}

int tls_conn_write(struct tls_conn *t, const uint8_t *data, size_t len)
{
	while (len) {
		ssize_t n = gnutls_record_send(t->s, data, len);
		if (n < 0) {
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
				continue; /* our push never blocks; a retry resumes the record */
			return (int)n;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

int tls_conn_write2(struct tls_conn *t, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	gnutls_record_cork(t->s);
	int r = tls_conn_write(t, a, alen);
	if (r == 0)
		r = tls_conn_write(t, b, blen);
	int u;
	do
		u = gnutls_record_uncork(t->s, 0);
	while (u == GNUTLS_E_AGAIN || u == GNUTLS_E_INTERRUPTED);
	return r < 0 ? r : u < 0 ? u : 0;
}

int tls_conn_bye(struct tls_conn *t)
{
	int r;
	do /* our push never blocks: AGAIN only means "call again" */
		r = gnutls_bye(t->s, GNUTLS_SHUT_WR);
	while (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED);
	return r;
}

struct frame_buf *tls_conn_out(struct tls_conn *t)
{
	return &t->out;
}

bool tls_conn_alpn_is_h2(const struct tls_conn *t)
{
	gnutls_datum_t p = {NULL, 0};
	return gnutls_alpn_get_selected_protocol(t->s, &p) == 0 && p.size == 2 && memcmp(p.data, "h2", 2) == 0;
}

bool tls_conn_resumed(const struct tls_conn *t)
{
	return gnutls_session_is_resumed(t->s) != 0;
}

void tls_conn_save_session(struct tls_conn *t)
{
	if (!t->client || t->session_saved || !t->hs_done)
		return;
	/* TLS 1.3 tickets arrive after the handshake, with the first records */
	if (gnutls_protocol_get_version(t->s) == GNUTLS_TLS1_3 &&
	    !(gnutls_session_get_flags(t->s) & GNUTLS_SFLAGS_SESSION_TICKET))
		return;
	gnutls_datum_t d = {NULL, 0};
	if (gnutls_session_get_data2(t->s, &d) < 0)
		return;
	t->session_saved = true;
	pthread_mutex_lock(&t->client->lock);
	gnutls_free(t->client->session.data);
	t->client->session = d;
	pthread_mutex_unlock(&t->client->lock);
}

static const char *classify(unsigned status)
{
	if (status & GNUTLS_CERT_SIGNER_NOT_FOUND)
		return "unknown-ca";
	if (status & GNUTLS_CERT_EXPIRED)
		return "expired";
	if (status & GNUTLS_CERT_NOT_ACTIVATED)
		return "not-yet-valid";
	if (status & GNUTLS_CERT_UNEXPECTED_OWNER)
		return "wrong-name";
	if (status & GNUTLS_CERT_REVOKED)
		return "revoked";
	return "untrusted";
}

/* SHA-256 of the certificate's SubjectPublicKeyInfo, as in RFC 7469 and stubby's pinset. */
static int spki_sha256(const gnutls_datum_t *der, uint8_t out[32])
{
	gnutls_x509_crt_t crt;
	gnutls_pubkey_t key;
	gnutls_datum_t spki = {NULL, 0};
	int r = -1;
	if (gnutls_x509_crt_init(&crt) < 0)
		return -1;
	if (gnutls_pubkey_init(&key) < 0) {
		gnutls_x509_crt_deinit(crt);
		return -1;
	}
	if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) == 0 && gnutls_pubkey_import_x509(key, crt, 0) == 0 &&
	    gnutls_pubkey_export2(key, GNUTLS_X509_FMT_DER, &spki) == 0 &&
	    gnutls_hash_fast(GNUTLS_DIG_SHA256, spki.data, spki.size, out) == 0)
		r = 0;
	gnutls_free(spki.data);
	gnutls_pubkey_deinit(key);
	gnutls_x509_crt_deinit(crt);
	return r;
}

static int verify_pins(struct tls_conn *t, const char **reason, char *why, size_t why_len)
{
	unsigned n = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(t->s, &n);
	for (unsigned i = 0; certs && i < n; i++) {
		uint8_t h[32];
		if (spki_sha256(&certs[i], h) < 0)
			continue;
		for (unsigned k = 0; k < t->client->n_pins; k++)
			if (memcmp(h, t->client->pins[k], 32) == 0)
				return 0;
	}
	*reason = "pin-mismatch";
	snprintf(why, why_len, "none of the %u certificates presented matches a configured sha256 pin", n);
	return -1;
}

int tls_conn_verify(struct tls_conn *t, const char **reason, char *why, size_t why_len)
{
	struct tls_client_ctx *c = t->client;
	if (c->n_pins)
		return verify_pins(t, reason, why, why_len); /* a pin alone is enough (RFC 7858 4.2) */
	unsigned status = 0;
	const char *name = c->auth_name[0] ? c->auth_name : c->ip_text;
	int r = gnutls_certificate_verify_peers3(t->s, name, &status);
	if (r < 0) {
		*reason = "untrusted";
		snprintf(why, why_len, "%s", gnutls_strerror(r));
		return -1;
	}
	if (status == 0)
		return 0;
	*reason = classify(status);
	gnutls_datum_t out = {NULL, 0};
	if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) == 0) {
		snprintf(why, why_len, "%s", (const char *)out.data);
		gnutls_free(out.data);
	} else {
		snprintf(why, why_len, "status 0x%x", status);
	}
	return -1;
}

const char *tls_strerror(int err)
{
	return err == -ECONNRESET ? "closed by peer (close_notify)" : err == -ENOMEM ? "out of memory" : gnutls_strerror(err);
}
