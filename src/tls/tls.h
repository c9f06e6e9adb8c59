/* tls.h -- one TLS session over a byte stream that someone else moves.
 *
 * GnuTLS runs on memory buffers: ciphertext read from the socket is fed in
 * (tls_conn_room/tls_conn_filled), plaintext comes out (tls_conn_read), and
 * plaintext written (tls_conn_write) becomes ciphertext in tls_conn_out(),
 * which the owner writes to the socket. No I/O here, so the same code serves
 * upstream circuits (circuit/circuit.c) and the DoT listener (frontend/tcp.c),
 * the way curl's connection filters stack TLS on a socket. Credentials,
 * verification and session resumption are in tls/creds.h. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/wire.h"

struct tls_conn;
struct tls_client_ctx;
struct tls_server_ctx;

enum tls_status {
	TLS_OK = 0,      /* done (handshake complete, or read what there was) */
	TLS_AGAIN = 1,   /* needs more input */
};

/** Client session for an upstream (SNI and resumption from ctx). NULL on error. */
struct tls_conn *tls_conn_new_client(struct tls_client_ctx *ctx);
/** Server session with the listener's current certificate; with http, ALPN
 * offers h2 and http/1.1 (RFC 7301; DoH). NULL on error. */
struct tls_conn *tls_conn_new_server(struct tls_server_ctx *ctx, bool http);

/** Did the client choose HTTP/2 by ALPN (after the handshake)? */
bool tls_conn_alpn_is_h2(const struct tls_conn *t);
void tls_conn_free(struct tls_conn *t);

/** Room for ciphertext read from the socket. */
int tls_conn_room(struct tls_conn *t, uint8_t **p, size_t *room) __attribute__((warn_unused_result));
void tls_conn_filled(struct tls_conn *t, size_t n);

/** Advance the handshake. Returns TLS_OK when complete, TLS_AGAIN, or a
 * negative GnuTLS code (logged by the caller with tls_strerror). */
int tls_conn_handshake(struct tls_conn *t) __attribute__((warn_unused_result));
bool tls_conn_handshake_done(const struct tls_conn *t);

/** Decrypt every whole record fed so far into pt. Returns TLS_OK, or a
 * negative code (GNUTLS_E_* or -ECONNRESET for a close_notify). */
int tls_conn_read(struct tls_conn *t, struct frame_buf *pt) __attribute__((warn_unused_result));

/** Encrypt len bytes; the records are appended to tls_conn_out(). */
int tls_conn_write(struct tls_conn *t, const uint8_t *data, size_t len) __attribute__((warn_unused_result));

/** Encrypt two pieces as one (a length prefix and its message): corked, so
 * they go out in one record where they fit. */
int tls_conn_write2(struct tls_conn *t, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
	__attribute__((warn_unused_result));

/** Send close_notify (into tls_conn_out): we write no more. 0 or a GnuTLS code. */
int tls_conn_bye(struct tls_conn *t) __attribute__((warn_unused_result));

/** Ciphertext waiting to be written to the socket (owner empties it). */
struct frame_buf *tls_conn_out(struct tls_conn *t);

/** After the handshake, for a client: check the server's certificate (CA and
 * name, or SPKI pins). Returns 0, or -1 with a reason word (expired,
 * wrong-name, unknown-ca, pin-mismatch, not-yet-valid, untrusted) and
 * GnuTLS's text in why. */
int tls_conn_verify(struct tls_conn *t, const char **reason, char *why, size_t why_len);

/** Was the session resumed (no full handshake)? */
bool tls_conn_resumed(const struct tls_conn *t);

/** Client: keep the session's ticket for the next connection, once one came. */
void tls_conn_save_session(struct tls_conn *t);

const char *tls_strerror(int err);
