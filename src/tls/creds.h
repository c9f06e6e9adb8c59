/* creds.h -- what TLS sessions share: client contexts (one per tls://
 * upstream: CA store or pins, the name to check, a session ticket kept for
 * resumption and shared by all workers) and the server context of the DoT
 * listener (certificate and key, swapped whole on SIGHUP while established
 * sessions keep the ones they started with). */
#pragma once
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <gnutls/gnutls.h>

#define TLS_MAX_PINS 8

struct tls_client_ctx {
	gnutls_certificate_credentials_t cred; /* CA store (empty when pinned only) */
	char auth_name[256];                   /* name the certificate must carry, also SNI; "" = the IP */
	char ip_text[64];                      /* the IP, checked when there is no name */
	uint8_t pins[TLS_MAX_PINS][32];        /* SHA-256 of accepted SubjectPublicKeyInfo */
	unsigned n_pins;
	pthread_mutex_t lock;                  /* guards session */
	gnutls_datum_t session;                /* last session ticket, for resumption */
	bool alpn_h2;                          /* https:// upstreams: offer (and require) ALPN h2 */
};

/* Server credentials with a reference count: each session holds one. */
struct tls_server_creds {
	gnutls_certificate_credentials_t cred;
	unsigned refs; /* atomic */
};

struct tls_server_ctx {
	pthread_mutex_t lock;                  /* guards current */
	struct tls_server_creds *current;      /* what new sessions get */
	gnutls_datum_t ticket_key;             /* for session tickets, lives as long as the ctx */
	char cert_path[4096], key_path[4096];
};

/** Make a client context. ca_file NULL: the system store (unused when pins are given).
 * Returns 0 or -1 with a reason in err. */
int tls_client_ctx_init(struct tls_client_ctx *c, const char *ca_file, char *err, size_t err_len);
void tls_client_ctx_deinit(struct tls_client_ctx *c);

/** Load the listener's certificate chain and key. 0 or -1 with a reason. */
int tls_server_ctx_init(struct tls_server_ctx *s, const char *cert, const char *key, char *err, size_t err_len);
/** Re-read the files; on success new sessions use them. 0 or -1 with a reason. */
int tls_server_ctx_reload(struct tls_server_ctx *s, char *err, size_t err_len);
void tls_server_ctx_deinit(struct tls_server_ctx *s);

struct tls_server_creds *tls_server_creds_get(struct tls_server_ctx *s);
void tls_server_creds_put(struct tls_server_creds *c);

/** Parse "sha256/BASE64" into 32 bytes. */
int tls_parse_pin(const char *s, uint8_t out[32]);
