/* server.h -- the control socket (control: PATH, --control PATH;
 * doc/control.md): a unix stream socket served on the daemon thread's loop
 * (core/daemon.c), never the workers'. One request per connection: a line
 * (control/command.h), answered with one JSON object and a newline, then
 * closed. Bounded as the /metrics server is (obs/metrics_http.h): so many
 * connections, so many bytes, so much time, so a client that stalls or
 * floods costs a fixed amount and never holds up another. */
#pragma once
#include <stddef.h>
#include <sys/types.h>
#include <jansson.h>
#include <uv.h>
#include "control/command.h"

#define CONTROL_MAX_CONNS 16     /* served at once; more are answered "busy" */
#define CONTROL_MAX_BUSY 16      /* and past those, closed at once */
#define CONTROL_TIMEOUT_MS 5000  /* from accept to the reply written */
#define CONTROL_SOCKET_MODE 0660 /* owner and group (doc/control.md: who may use it) */

struct control_server;

/** Who sent a request (SO_PEERCRED), for the log; -1 when unknown. */
struct control_peer {
	long pid, uid;
};

/** Carry out cmd: a JSON object of its results (the reply gets "ok": true
 * first, then its members; the server frees it), or NULL with the reason in
 * err (the reply is "ok": false and "error"). Runs on the server's loop. */
typedef json_t *control_handle_fn(void *arg, const struct command *cmd, const struct control_peer *peer, char *err,
				  size_t errlen);

/** Listen on path (a unix socket made with CONTROL_SOCKET_MODE, never
 * wider: the umask is narrowed around bind) and serve on loop. A file
 * already at path is replaced only if it is a socket no one accepts on; a
 * regular file, or a live socket (another dnsmux), is an error. 0 and *out,
 * or a negative code with the reason in err; nothing is left open then. */
int control_server_start(uv_loop_t *loop, const char *path, control_handle_fn *handle, void *arg,
			 struct control_server **out, char *err, size_t errlen) __attribute__((warn_unused_result));

/** Stop listening, close every connection, and remove the socket file if
 * it is still the one made at start. Memory goes once the handles have
 * closed (the loop must run on). Accepts NULL. */
void control_server_close(struct control_server *s);
