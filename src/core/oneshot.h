/* oneshot.h -- the small servers of the daemon thread (obs/metrics_http.c
 * over TCP, control/server.c over a unix socket): each connection reads
 * one request and writes one reply, then closes; bounded in connections
 * and time. This file owns what they share: the list of connections, each
 * a stream and a timer freed once both have closed; the cap; the reply's
 * write, the shutdown, and the wait for the client's EOF before closing
 * (closing with its bytes unread would reset the connection, and the reset
 * can cost the client the reply). The server says what a request is. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct oneshot;

/* The first member of a server's connection struct. */
struct oneshot_conn {
	union {
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} h;
	uv_timer_t timer;            /* the server's timeout_ms from accept */
	uv_write_t wr;
	uv_shutdown_t sd;
	struct oneshot *srv;
	struct oneshot_conn *next, **pprev;
	unsigned open_handles;       /* freed at 0 */
	bool is_closing;
	bool answered;               /* a reply is on its way: what comes now is dropped */
	bool is_shut;                /* the reply written and our side shut down */
	bool has_eof;                /* the client's side shut down, or failed */
	void *owned;                 /* freed with the connection (the reply's heap part) */
};

struct oneshot_ops {
	size_t conn_size;            /* of the server's connection struct */
	unsigned max_conns;          /* served at once */
	unsigned max_busy;           /* past those, handed to busy(); past these too, closed at once */
	unsigned timeout_ms;         /* from accept to the reply written and the client gone */
	const char *name;            /* for the log: "metrics", "control" */
	/** Accepted and within max_conns: set up the protocol's state. */
	void (*start)(struct oneshot_conn *c);
	/** Accepted past max_conns: reply (oneshot_reply) or close. */
	void (*busy)(struct oneshot_conn *c);
	/** Where the next read goes. */
	void (*buffer)(struct oneshot_conn *c, uv_buf_t *buf);
	/** nread bytes in buf (nread > 0), or UV_EOF; never once answered.
	 * On a read error the connection is closed without a call. */
	void (*input)(struct oneshot_conn *c, ssize_t nread, const uv_buf_t *buf);
	/** Before the connection is freed (may be NULL). */
	void (*finish)(struct oneshot_conn *c);
};

/* The first member of a server's struct (heap; freed by this file once its
 * listener and every connection have closed). */
struct oneshot {
	union {
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} listener;                  /* the server's to init, bind and open */
	uv_loop_t *loop;
	const struct oneshot_ops *ops;
	struct oneshot_conn *conns;  /* open connections (list) */
	unsigned n_conns;
	bool is_closing;
	bool listener_closed;
	bool is_pipe;                /* unix socket: connections are uv_pipe_t */
};

/** Start accepting on s->listener (initialised and bound by the server,
 * s->loop, s->ops and s->is_pipe set). A libuv code. */
int oneshot_listen(struct oneshot *s, int backlog) __attribute__((warn_unused_result));

/** Write n buffers (they must live until the connection closes; owned, if
 * not NULL, is freed with it), shut down, close once the client has gone. */
void oneshot_reply(struct oneshot_conn *c, const uv_buf_t *bufs, unsigned n, void *owned);

/** Close c now (no reply). Accepts one already closing. */
void oneshot_conn_close(struct oneshot_conn *c);

/** Stop listening and close every connection; s is freed once they have
 * closed (the loop must run on). Also for a listener that failed to start. */
void oneshot_close(struct oneshot *s);
