/* metrics_http.h -- the /metrics endpoint: a small HTTP/1.1 server on the
 * daemon thread's loop (core/daemon.c), requests parsed by http-parser.
 * GET (or HEAD) /metrics answers what the render callback makes, as
 * Prometheus text; other paths 404, other methods 405. One request per
 * connection (Connection: close); bounded in connections, request size and
 * time, so a scraper that stalls or floods costs a fixed amount. */
#pragma once
#include <stddef.h>
#include <sys/socket.h>
#include <uv.h>

#define METRICS_HTTP_MAX_CONNS 16       /* at once; more are closed on accept */
#define METRICS_HTTP_REQUEST_MAX 8192   /* bytes of request line and headers (and body) */
#define METRICS_HTTP_TIMEOUT_MS 5000    /* from accept to the response written */

struct metrics_http;

/** Make the body of a 200 response: a malloc'd buffer the server frees.
 * 0, or a negative code (answered 500). Runs on the server's loop. */
typedef int metrics_http_render_fn(void *arg, char **body, size_t *len);

/** Listen on addr (SO_REUSEADDR) and serve on loop. 0 and *out, or a
 * negative libuv code (the address in use, ...); nothing is left open then. */
int metrics_http_start(uv_loop_t *loop, const struct sockaddr *addr, metrics_http_render_fn *render, void *arg,
		       struct metrics_http **out) __attribute__((warn_unused_result));

/** Stop listening and close every connection; memory goes once the
 * handles have closed (the loop must run on). Accepts NULL. */
void metrics_http_close(struct metrics_http *s);
