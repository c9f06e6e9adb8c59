/* creds.c -- TLS client and server contexts (see creds.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <gnutls/gnutls.h>
#include "tls/creds.h"

int tls_client_ctx_init(struct tls_client_ctx *c, const char *ca_file, char *err, size_t err_len)
{
	pthread_mutex_init(&c->lock, NULL);
	c->session.data = NULL;
	c->session.size = 0;
	int r = gnutls_certificate_allocate_credentials(&c->cred);
	if (r < 0) {
		snprintf(err, err_len, "%s", gnutls_strerror(r));
		return -1;
	}
	if (c->n_pins && !ca_file)
		return 0; /* pinned: the CA store is not consulted */
	r = ca_file ? gnutls_certificate_set_x509_trust_file(c->cred, ca_file, GNUTLS_X509_FMT_PEM)
		    : gnutls_certificate_set_x509_system_trust(c->cred);
	if (r <= 0 && !c->n_pins) {
		if (ca_file)
			snprintf(err, err_len, "--ca-file %s: %s", ca_file,
				 r == 0 ? "no certificate in it" : gnutls_strerror(r));
		else
			snprintf(err, err_len, "the system CA store: %s", r == 0 ? "empty" : gnutls_strerror(r));
		gnutls_certificate_free_credentials(c->cred);
		c->cred = NULL;
		return -1;
	}
	return 0;
}

void tls_client_ctx_deinit(struct tls_client_ctx *c)
{
	if (c->cred)
		gnutls_certificate_free_credentials(c->cred);
	c->cred = NULL;
	gnutls_free(c->session.data);
	c->session.data = NULL;
	pthread_mutex_destroy(&c->lock);
}

/* GnuTLS says only "Error while reading file" when a file cannot be
 * opened: after --user drops root, a key readable by root alone is the
 * usual reason, and the message must say so. */
static bool unreadable(const char *what, const char *path, char *err, size_t err_len)
{
	if (access(path, R_OK) == 0)
		return false;
	snprintf(err, err_len, "%s %s: cannot read it as uid %u: %s", what, path, (unsigned)geteuid(), strerror(errno));
	return true;
}

static struct tls_server_creds *load(const char *cert, const char *key, char *err, size_t err_len)
{
	if (unreadable("--tls-cert", cert, err, err_len) || unreadable("--tls-key", key, err, err_len))
		return NULL;
	struct tls_server_creds *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	int r = gnutls_certificate_allocate_credentials(&c->cred);
	if (r == 0)
		r = gnutls_certificate_set_x509_key_file2(c->cred, cert, key, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (r < 0) {
		snprintf(err, err_len, "--tls-cert %s / --tls-key %s: %s", cert, key, gnutls_strerror(r));
		if (c->cred)
			gnutls_certificate_free_credentials(c->cred);
		free(c);
		return NULL;
	}
	c->refs = 1;
	return c;
}

int tls_server_ctx_init(struct tls_server_ctx *s, const char *cert, const char *key, char *err, size_t err_len)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	snprintf(s->cert_path, sizeof(s->cert_path), "%s", cert);
	snprintf(s->key_path, sizeof(s->key_path), "%s", key);
	s->current = load(cert, key, err, err_len);
	if (!s->current)
		return -1;
	if (gnutls_session_ticket_key_generate(&s->ticket_key) < 0) {
		snprintf(err, err_len, "cannot make a session ticket key");
		return -1;
	}
	return 0;
}

int tls_server_ctx_reload(struct tls_server_ctx *s, char *err, size_t err_len)
{
	struct tls_server_creds *c = load(s->cert_path, s->key_path, err, err_len);
	if (!c)
		return -1;
	pthread_mutex_lock(&s->lock);
	struct tls_server_creds *old = s->current;
	s->current = c;
	pthread_mutex_unlock(&s->lock);
	tls_server_creds_put(old); /* freed when the last session using it ends */
	return 0;
}

void tls_server_ctx_deinit(struct tls_server_ctx *s)
{
	tls_server_creds_put(s->current);
	s->current = NULL;
	gnutls_memset(s->ticket_key.data, 0, s->ticket_key.size);
	gnutls_free(s->ticket_key.data);
	s->ticket_key.data = NULL;
	pthread_mutex_destroy(&s->lock);
}

struct tls_server_creds *tls_server_creds_get(struct tls_server_ctx *s)
{
	pthread_mutex_lock(&s->lock);
	struct tls_server_creds *c = s->current;
	__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&s->lock);
	return c;
}

void tls_server_creds_put(struct tls_server_creds *c)
{
	if (!c || __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	gnutls_certificate_free_credentials(c->cred);
	free(c);
}

int tls_parse_pin(const char *s, uint8_t out[32])
{
	if (strncmp(s, "sha256/", 7) != 0)
		return -1;
	gnutls_datum_t in = {(unsigned char *)(s + 7), (unsigned)strlen(s + 7)};
	gnutls_datum_t raw = {NULL, 0};
	if (gnutls_base64_decode2(&in, &raw) < 0)
		return -1;
	int r = raw.size == 32 ? 0 : -1;
	if (r == 0)
		memcpy(out, raw.data, 32);
	gnutls_free(raw.data);
	return r;
}
