/* daemon.c -- see daemon.h. The main thread binds sockets (so "address in
 * use" is reported before anything starts), then only waits for signals. */
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include "config/etcd.h"
#include "config/snapshot.h"
#include "control/server.h"
#include "core/daemon.h"
#include "core/privdrop.h"
#include "core/systemd.h"
#include "core/version.h"
#include "core/worker.h"
#include "obs/json.h"
#include "obs/log.h"
#include "obs/metrics_http.h"
#include "obs/qlog.h"
#include "policy/cache.h"
#include "tls/creds.h"

#define DAEMON_MAX_SNAPSHOTS 8 /* alive at once: the current one and those draining */
#define DAEMON_RELEASE_POLL_MS 100

struct daemon {
	const struct config *cfg;  /* the current snapshot (snaps[n_snaps - 1]) */
	struct config *snaps[DAEMON_MAX_SNAPSHOTS]; /* oldest first; older ones kept while a worker uses them */
	unsigned n_snaps;
	struct config *base;       /* the template of the current snapshot: the file and the command line */
	const struct daemon_hooks *hooks;
	struct worker *workers;
	unsigned started;
	uv_loop_t loop;
	uv_signal_t sig_int, sig_term, sig_usr1, sig_hup;
	uv_timer_t release_timer;  /* while snapshots drain: free those no worker uses */
	int stopping;
	/* etcd (config/etcd.h): the watcher's thread hands sets over through etcd_async */
	struct etcd *etcd;
	struct etcd_conf etcd_conf;  /* what the watcher was started with */
	struct etcd_set *etcd_set;   /* the set the current snapshot was made with */
	uv_async_t etcd_async;
	uv_mutex_t etcd_lock;        /* guards etcd_next */
	struct etcd_set *etcd_next;  /* the newest set from the watcher, not applied yet */
	bool etcd_due;               /* a set waits for room among the snapshots */
	struct metrics_http *metrics; /* the /metrics server (metrics:), NULL without one */
	struct control_server *control; /* the control socket (control:), NULL without one */
	char control_path[sizeof(((struct config *)0)->control_path)]; /* what it was started with */
	uint64_t start_ms;           /* uv_now at start, for the uptime */
	struct qlog_writer *qlog;    /* the query log's writer (log.queries), NULL without one */
	struct qlog_ring *qlog_rings[CONFIG_MAX_THREADS]; /* the workers' rings it drains */
	char qlog_path[1024];        /* the file it writes */
};

/* What a listener socket needs besides its address, bound here or passed
 * by systemd: a large receive buffer, and the destination address of each
 * datagram on a wildcard UDP listener. */
static int tune(int fd, const struct listen_conf *lc, int type)
{
	int one = 1;
	if (type != SOCK_DGRAM)
		return 0;
	int buf = 4 * 1024 * 1024;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf)); /* best effort, capped by rmem_max */
	/* on 0.0.0.0 / [::], an answer must leave from the address the query
	 * was sent to (frontend/udp.c): ask for it with every datagram */
	if (config_addr_is_any(&lc->addr) &&
	    (lc->addr.ss_family == AF_INET ? setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one))
					   : setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one))) < 0)
		return -errno;
	return 0;
}

static int bind_one(const struct listen_conf *lc, int type)
{
	const struct sockaddr *sa = (const struct sockaddr *)&lc->addr;
	socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	int fd = socket(sa->sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1, e = 0;
	/* one socket per worker on the same address; the kernel spreads clients */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    (type == SOCK_STREAM && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) ||
	    (sa->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0))
		e = -errno;
	if (!e)
		e = tune(fd, lc, type);
	if (!e && (bind(fd, sa, len) < 0 || (type == SOCK_STREAM && listen(fd, 1024) < 0)))
		e = -errno;
	if (e) {
		close(fd);
		return e;
	}
	return fd;
}

/* A socket systemd passed, for worker w: the first takes it, the others a
 * duplicate. One socket cannot be rebound per worker (SO_REUSEPORT needs the
 * same owner, and a socket unit's was made by root for a process that may
 * never be root), so the workers share it: each polls it, whichever reads
 * first gets the datagram or connection. */
static int passed_one(const struct listen_conf *lc, int type, unsigned w)
{
	int fd = lc->passed_fd[type == SOCK_STREAM];
	if (w > 0 && (fd = fcntl(fd, F_DUPFD_CLOEXEC, SYSTEMD_LISTEN_FDS_START)) < 0)
		return -errno;
	int r = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0 ? -errno : tune(fd, lc, type);
	if (r == 0 && type == SOCK_STREAM && w == 0 && listen(fd, 1024) < 0) /* (systemd listens already; again is harmless) */
		r = -errno;
	if (r < 0 && w > 0)
		close(fd);
	return r < 0 ? r : fd;
}

static const char *part_name(const struct listen_conf *lc, int p)
{
	if (!p)
		return "udp";
	if (lc->protos & LISTEN_HTTP)
		return lc->protos & LISTEN_TLS ? "https" : "http";
	return lc->protos & LISTEN_TLS ? "tls" : "tcp";
}

/* fds[w][2*i] (UDP) and fds[w][2*i+1] (TCP) for listener i of worker w; -1 when unused. */
static int bind_all(const struct config *cfg, int *fds)
{
	size_t per = 2 * cfg->n_listens;
	for (size_t k = 0; k < cfg->threads * per; k++)
		fds[k] = -1;
	for (unsigned w = 0; w < cfg->threads; w++) {
		for (size_t i = 0; i < cfg->n_listens; i++) {
			const struct listen_conf *lc = &cfg->listens[i];
			for (int p = 0; p < 2; p++) {
				if (!(lc->protos & (p ? LISTEN_TCP | LISTEN_TLS | LISTEN_HTTP : LISTEN_UDP)))
					continue;
				int type = p ? SOCK_STREAM : SOCK_DGRAM;
				int fd = lc->passed_fd[p] ? passed_one(lc, type, w) : bind_one(lc, type);
				if (fd < 0) {
					log_err(DAEMON, "cannot %s %s://%s: %s", lc->passed_fd[p] ? "use the passed socket for" : "bind",
						part_name(lc, p), lc->text, strerror(-fd));
					return fd;
				}
				fds[w * per + 2 * i + (size_t)p] = fd;
			}
		}
	}
	return 0;
}

static void print_stats(struct daemon *d)
{
	char line[1024];
	struct metrics total;
	memset(&total, 0, sizeof(total));
	for (unsigned i = 0; i < d->cfg->threads; i++) {
		struct metrics m;
		memset(&m, 0, sizeof(m));
		metrics_sum(&m, &d->workers[i].m);
		metrics_sum(&total, &d->workers[i].m);
		metrics_format(&m, line, sizeof(line));
		log_write(LOG_INFO, "DAEMON", "stats worker=%u %s", i, line);
	}
	metrics_format(&total, line, sizeof(line));
	uint64_t entries = 0, bytes = 0;
	if (d->cfg->cache_obj)
		cache_usage(d->cfg->cache_obj, &entries, &bytes);
	log_write(LOG_INFO, "DAEMON", "stats total %s cache_entries=%llu cache_bytes=%llu", line,
		  (unsigned long long)entries, (unsigned long long)bytes);
}

/* What /metrics and the control socket read: every worker's counters and
 * upstream blocks, read with relaxed loads (obs/metrics.h); the blocks live
 * until worker_deinit, after both servers are closed. Returns how many. */
static unsigned sources(struct daemon *d, struct metrics_source *src, struct metrics_extra *x)
{
	memset(x, 0, sizeof(*x));
	for (unsigned i = 0; i < d->started; i++) {
		src[i].m = &d->workers[i].m;
		src[i].t = &d->workers[i].ustats;
	}
	if (d->cfg->cache_obj) {
		x->has_cache = true;
		cache_usage(d->cfg->cache_obj, &x->cache_entries, &x->cache_bytes);
	}
	x->querylog_dropped = qlog_writer_dropped(d->qlog);
	return d->started;
}

static int render_metrics(void *arg, char **body, size_t *len)
{
	struct metrics_source src[CONFIG_MAX_THREADS];
	struct metrics_extra x;
	unsigned n = sources(arg, src, &x);
	return metrics_render(src, n, &x, body, len);
}

/* The query log's writer, once every worker has its ring. */
static void start_qlog(struct daemon *d)
{
	if (!d->cfg->log_queries[0])
		return;
	for (unsigned i = 0; i < d->started; i++)
		d->qlog_rings[i] = d->workers[i].qlog;
	snprintf(d->qlog_path, sizeof(d->qlog_path), "%s", d->cfg->log_queries);
	if (!(d->qlog = qlog_writer_new(&d->loop, d->qlog_path, d->qlog_rings, d->started)))
		log_err(DAEMON, "query log %s: out of memory: no query log", d->qlog_path);
}

/* SIGHUP (or the control socket: why): the query log opened again (log
 * rotation), at the new path if the file names one; on or off takes a
 * restart (the workers' rings are made at start). */
static void reopen_qlog(struct daemon *d, const char *why)
{
	const char *want = d->cfg->log_queries;
	if (!d->qlog) {
		if (want[0])
			log_warn(CONFIG, "%s: log.queries: turning the query log on takes a restart", why);
		return;
	}
	if (!want[0])
		log_warn(CONFIG, "%s: log.queries: turning the query log off takes a restart; still %s", why,
			 d->qlog_path);
	else
		snprintf(d->qlog_path, sizeof(d->qlog_path), "%s", want);
	qlog_writer_reopen(d->qlog, d->qlog_path);
}

static int start_metrics(struct daemon *d)
{
	const struct config *cfg = d->cfg;
	if (!cfg->has_metrics)
		return 0;
	int r = metrics_http_start(&d->loop, (const struct sockaddr *)&cfg->metrics_addr, render_metrics, d, &d->metrics);
	if (r < 0) {
		log_err(DAEMON, "cannot serve metrics on %s: %s", cfg->metrics_text, uv_strerror(r));
		return r;
	}
	log_info(DAEMON, "metrics at http://%s/metrics", cfg->metrics_text);
	return 0;
}

/* SIGHUP: re-read the DoT certificate and key (Let's Encrypt renews every 60
 * days); established sessions keep the credentials they started with.
 * What happened, for the control socket's reply ("" without a listener). */
static void reload_tls(struct daemon *d, const char *why, char *said, size_t saidlen)
{
	char err[512];
	said[0] = '\0';
	if (!d->cfg->tls_server) {
		log_info(DAEMON, "%s: nothing to reload (no tls:// listener)", why);
		return;
	}
	if (tls_server_ctx_reload(d->cfg->tls_server, err, sizeof(err)) < 0) {
		log_err(TLS, "%s: keeping the old certificate: %s", why, err);
		snprintf(said, saidlen, "kept the old one: %s", err);
		return;
	}
	log_info(TLS, "%s: certificate %s and key %s reloaded", why, d->cfg->tls_server->cert_path,
		 d->cfg->tls_server->key_path);
	snprintf(said, saidlen, "reloaded");
}

/* Free the oldest snapshots while every worker has moved past them. */
static void release_old(struct daemon *d)
{
	unsigned long min = d->cfg->generation;
	for (unsigned i = 0; i < d->started; i++) {
		unsigned long g = __atomic_load_n(&d->workers[i].min_gen, __ATOMIC_ACQUIRE);
		if (g < min)
			min = g;
	}
	while (d->n_snaps > 1 && d->snaps[0]->generation < min) {
		log_debug(DAEMON, "configuration %lu released", d->snaps[0]->generation);
		config_release(d->snaps[0], d->snaps[1]);
		memmove(d->snaps, d->snaps + 1, --d->n_snaps * sizeof(d->snaps[0]));
	}
	if (d->n_snaps == 1)
		uv_timer_stop(&d->release_timer);
}

static void apply_etcd(struct daemon *d);

static void release_cb(uv_timer_t *t)
{
	struct daemon *d = t->data;
	release_old(d);
	if (d->etcd_due)
		apply_etcd(d); /* it waited for room */
}

/* Hand next (a new snapshot) to the workers. */
static void publish(struct daemon *d, struct config *next, const char *why)
{
	d->hooks->applied(next);
	if (next->has_metrics != d->cfg->has_metrics ||
	    (next->has_metrics && strcmp(next->metrics_text, d->cfg->metrics_text) != 0))
		log_warn(CONFIG, "%s: metrics: a new address takes a restart; still %s", why,
			 d->metrics ? d->cfg->metrics_text : "off");
	if (d->metrics && next->has_metrics) /* (what the server was started with, for the next compare) */
		snprintf(next->metrics_text, sizeof(next->metrics_text), "%s", d->cfg->metrics_text);
	if (strcmp(next->control_path, d->control_path) != 0)
		log_warn(CONFIG, "%s: control: a new path takes a restart; still %s", why,
			 d->control ? d->control_path : "off");
	next->generation = d->cfg->generation + 1;
	d->snaps[d->n_snaps++] = next;
	d->cfg = next;
	for (unsigned i = 0; i < d->started; i++)
		worker_request_config(&d->workers[i], next);
	log_info(CONFIG, "%s: configuration %lu in force (%zu pools, %zu upstreams, %zu routes)", why, next->generation,
		 next->n_pools, next->n_upstreams, next->n_routes);
	uv_timer_start(&d->release_timer, release_cb, DAEMON_RELEASE_POLL_MS, DAEMON_RELEASE_POLL_MS);
}

static bool room_for_a_snapshot(struct daemon *d, const char *why, char *err, size_t errlen)
{
	release_old(d);
	if (d->n_snaps < DAEMON_MAX_SNAPSHOTS)
		return true;
	snprintf(err, errlen,
		 "%u configurations still draining (queries in flight to removed upstreams); "
		 "the change waits up to %u ms",
		 d->n_snaps - 1, d->cfg->timeout_ms);
	log_err(CONFIG, "%s: %s", why, err);
	return false;
}

/* The watcher's thread: the newest set replaces any not yet applied. */
static void etcd_on_set(void *arg, struct etcd_set *set)
{
	struct daemon *d = arg;
	uv_mutex_lock(&d->etcd_lock);
	etcd_set_free(d->etcd_next);
	d->etcd_next = set;
	uv_mutex_unlock(&d->etcd_lock);
	uv_async_send(&d->etcd_async);
}

/* A set from etcd: the current file and command line with it. A set
 * that cannot be made into a configuration (a limit, a regex) is logged
 * and the running one kept. */
static void apply_etcd(struct daemon *d)
{
	char err[1024];
	if (d->stopping || !d->etcd)
		return;
	uv_mutex_lock(&d->etcd_lock);
	struct etcd_set *set = d->etcd_next;
	d->etcd_next = NULL;
	uv_mutex_unlock(&d->etcd_lock);
	if (set) {
		etcd_set_free(d->etcd_set);
		d->etcd_set = set;
		d->etcd_due = true;
	}
	if (!d->etcd_due || !room_for_a_snapshot(d, "etcd", err, sizeof(err)))
		return;
	d->etcd_due = false;
	struct config *next = config_snapshot(d->base, d->etcd_set, d->cfg, err, sizeof(err));
	if (!next) {
		log_err(CONFIG, "etcd: revision %llu: keeping the running configuration: %s",
			(unsigned long long)d->etcd_set->revision, err);
		return;
	}
	char why[64];
	snprintf(why, sizeof(why), "etcd revision %llu, %zu backends", (unsigned long long)d->etcd_set->revision,
		 d->etcd_set->n);
	publish(d, next, why);
}

static void etcd_async_cb(uv_async_t *a)
{
	apply_etcd(a->data);
}

/* The watcher for the current base's etcd: (re)started when the etcd:
 * section changed; without one, stopped and its backends forgotten. */
static void follow_etcd(struct daemon *d)
{
	const struct config *b = d->base;
	if (d->etcd && b->has_etcd && memcmp(&d->etcd_conf, &b->etcd, sizeof(b->etcd)) == 0)
		return;
	if (d->etcd) {
		etcd_stop(d->etcd);
		d->etcd = NULL;
		etcd_set_free(d->etcd_set);
		d->etcd_set = NULL;
		uv_mutex_lock(&d->etcd_lock);
		etcd_set_free(d->etcd_next);
		d->etcd_next = NULL;
		uv_mutex_unlock(&d->etcd_lock);
	}
	if (!b->has_etcd || !d->hooks)
		return;
	d->etcd_conf = b->etcd;
	if (!(d->etcd = etcd_start(&d->etcd_conf, etcd_on_set, d)))
		log_err(CONFIG, "etcd: cannot start the watcher (out of memory, or libcurl)");
}

/* SIGHUP or the control socket (why): the file again, with the command
 * line over it (and etcd's last set), as a new snapshot the workers switch
 * to. 0, or -EINVAL (a bad file: it changes nothing) or -EBUSY (too many
 * snapshots draining) with the reason in err, logged. */
static int reload_config(struct daemon *d, const char *why, char *err, size_t errlen)
{
	if (!room_for_a_snapshot(d, why, err, errlen))
		return -EBUSY;
	struct config *base = d->hooks->load(err, errlen);
	bool same_etcd = base && base->has_etcd == d->base->has_etcd &&
			 memcmp(&base->etcd, &d->base->etcd, sizeof(base->etcd)) == 0;
	struct config *next = base ? config_snapshot(base, same_etcd ? d->etcd_set : NULL, d->cfg, err, errlen) : NULL;
	if (!next) {
		log_err(CONFIG, "%s: keeping the running configuration: %s", why, err);
		config_release(base, NULL);
		return -EINVAL;
	}
	config_release(d->base, NULL);
	d->base = base;
	publish(d, next, why);
	follow_etcd(d); /* a new etcd: section: its backends come with its first set */
	return 0;
}

/* After a reload, good or bad: serving again, with which configuration. */
static void notify_ready(struct daemon *d)
{
	char state[96];
	snprintf(state, sizeof(state), "READY=1\nSTATUS=configuration %lu in force", d->cfg->generation);
	systemd_notify(state);
}

/* SIGHUP's work (the certificate, the file, the query log), also the
 * control socket's reload: systemd hears of it
 * (RELOADING=1, then READY=1 with the generation in force) */
static int reload_all(struct daemon *d, const char *why, char *tls, size_t tlslen, char *err, size_t errlen)
{
	int r = 0;
	systemd_notify("RELOADING=1");
	reload_tls(d, why, tls, tlslen);
	if (d->hooks)
		r = reload_config(d, why, err, errlen);
	reopen_qlog(d, why);
	notify_ready(d);
	return r;
}

/* ---- the control socket (control/server.h, doc/control.md) ---- */

static json_t *status_json(struct daemon *d)
{
	struct metrics_source src[CONFIG_MAX_THREADS];
	struct metrics_extra x;
	unsigned n = sources(d, src, &x);
	json_t *cache = json_null();
	if (x.has_cache)
		cache = json_pack("{s:I, s:I, s:I}", "entries", (json_int_t)x.cache_entries, "bytes",
				  (json_int_t)x.cache_bytes, "size", (json_int_t)d->cfg->cache.size);
	return json_pack("{s:s, s:I, s:I, s:I, s:i, s:o?, s:o, s:o}", "version", DNSMUX_VERSION, "pid",
			 (json_int_t)getpid(), "uptime_seconds", (json_int_t)((uv_now(&d->loop) - d->start_ms) / 1000),
			 "generation", (json_int_t)d->cfg->generation, "threads", (int)d->cfg->threads, "file",
			 d->base->file[0] ? json_text(d->base->file) : NULL, "upstreams", metrics_upstreams_json(src, n),
			 "cache", cache);
}

static json_t *stats_json(struct daemon *d)
{
	struct metrics_source src[CONFIG_MAX_THREADS];
	struct metrics_extra x;
	unsigned n = sources(d, src, &x);
	return metrics_json(src, n, &x);
}

static json_t *control_reload(struct daemon *d, const struct control_peer *peer, char *err, size_t errlen)
{
	char tls[600];
	log_info(DAEMON, "control: reload asked by pid %ld uid %ld", peer->pid, peer->uid);
	if (reload_all(d, "control", tls, sizeof(tls), err, errlen) < 0)
		return NULL;
	return json_pack("{s:I, s:o?, s:s?}", "generation", (json_int_t)d->cfg->generation, "file",
			 d->base->file[0] ? json_text(d->base->file) : NULL, "certificate", tls[0] ? tls : NULL);
}

static json_t *control_flush(struct daemon *d, const struct command *cmd, const struct control_peer *peer, char *err,
			     size_t errlen)
{
	struct cache *c = d->cfg->cache_obj;
	bool below = cmd->has_name && !cmd->exact;
	if (!c) {
		snprintf(err, errlen, "the cache is off (cache: or --cache)");
		return NULL;
	}
	size_t n = cache_flush(c, cmd->has_name ? cmd->name : NULL, below);
	log_info(CACHE, "control: cache-flush %s%s by pid %ld uid %ld: %zu entries dropped",
		 cmd->has_name ? cmd->name_text : "(all)", below ? " and below" : "", peer->pid, peer->uid, n);
	return json_pack("{s:I, s:s?, s:b}", "flushed", (json_int_t)n, "name", cmd->has_name ? cmd->name_text : NULL,
			 "below", below);
}

/* One request (control_handle_fn): runs on this loop, between signals. */
static json_t *on_control(void *arg, const struct command *cmd, const struct control_peer *peer, char *err,
			  size_t errlen)
{
	struct daemon *d = arg;
	json_t *r = NULL;
	switch (cmd->kind) {
	case COMMAND_STATUS: r = status_json(d); break;
	case COMMAND_STATS: r = stats_json(d); break;
	case COMMAND_RELOAD: return control_reload(d, peer, err, errlen);
	case COMMAND_CACHE_FLUSH: return control_flush(d, cmd, peer, err, errlen);
	}
	if (!r)
		snprintf(err, errlen, "out of memory");
	return r;
}

static int start_control(struct daemon *d)
{
	char err[512];
	snprintf(d->control_path, sizeof(d->control_path), "%s", d->cfg->control_path);
	if (!d->control_path[0])
		return 0;
	int r = control_server_start(&d->loop, d->control_path, on_control, d, &d->control, err, sizeof(err));
	if (r < 0) {
		log_err(DAEMON, "cannot serve control: %s", err);
		d->control_path[0] = '\0';
		return r;
	}
	log_info(DAEMON, "control socket at %s", d->control_path);
	return 0;
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct daemon *d = s->data;
	if (signum == SIGUSR1) {
		print_stats(d);
		return;
	}
	if (signum == SIGHUP) {
		static char err[16384];
		char tls[600];
		if (!d->stopping)
			(void)reload_all(d, "SIGHUP", tls, sizeof(tls), err, sizeof(err));
		return;
	}
	if (d->stopping)
		return;
	d->stopping = 1;
	systemd_notify("STOPPING=1");
	log_info(DAEMON, "signal %d: stopping, letting queries in flight finish (up to %u ms)", signum,
		 d->cfg->timeout_ms);
	for (unsigned i = 0; i < d->cfg->threads; i++)
		worker_request_stop(&d->workers[i]);
	uv_close((uv_handle_t *)&d->sig_int, NULL);
	uv_close((uv_handle_t *)&d->sig_term, NULL);
	uv_close((uv_handle_t *)&d->sig_usr1, NULL);
	uv_close((uv_handle_t *)&d->sig_hup, NULL);
	uv_timer_stop(&d->release_timer);
	uv_close((uv_handle_t *)&d->release_timer, NULL);
	etcd_stop(d->etcd); /* (within ~200 ms; no set comes after it) */
	d->etcd = NULL;
	uv_close((uv_handle_t *)&d->etcd_async, NULL);
	metrics_http_close(d->metrics);
	d->metrics = NULL;
	control_server_close(d->control);
	d->control = NULL;
}

static void watch(struct daemon *d, uv_signal_t *s, int signum)
{
	uv_signal_init(&d->loop, s);
	s->data = d;
	uv_signal_start(s, on_signal, signum);
}

/* A file a SIGHUP reads again that the user cannot read: said now, not at
 * the first reload. */
static void warn_unreadable(const char *what, const char *path, const struct privdrop *p)
{
	char why[128];
	if (path && path[0] && !privdrop_can_read(path, why, sizeof(why)))
		log_warn(DAEMON, "%s %s is not readable by user '%s' (%s): a SIGHUP cannot reload it", what, path, p->user,
			 why);
}

/* --user / --chroot, once every socket that needs root is bound and before
 * any worker thread exists. */
static int drop_privileges(const struct config *cfg, struct privdrop *p, const char *control_path)
{
	char err[512];
	if (!cfg->user) {
		if (privdrop_shed_caps())
			log_info(DAEMON, "listeners bound: capabilities given up (uid %u)", (unsigned)geteuid());
		return 0;
	}
	if (privdrop_lookup(cfg->user, p, err, sizeof(err)) < 0) {
		log_err(DAEMON, "cannot drop privileges: %s", err);
		return -EPERM;
	}
	/* the control socket (bound as root) becomes the user's: dnsmux-ctl
	 * run as that user (or its group) still reaches it */
	if (control_path[0] && chown(control_path, p->uid, p->gid) < 0)
		log_warn(DAEMON, "control socket %s: cannot give it to user '%s': %s", control_path, p->user, strerror(errno));
	if (privdrop_apply(p, cfg->chroot_dir, err, sizeof(err)) < 0) {
		log_err(DAEMON, "cannot drop privileges: %s", err);
		return -EPERM;
	}
	log_info(DAEMON, "running as user '%s' (uid %u, gid %u), no supplementary groups, no capabilities%s%s",
		 p->user, (unsigned)p->uid, (unsigned)p->gid, cfg->chroot_dir ? ", chroot " : "",
		 cfg->chroot_dir ? cfg->chroot_dir : "");
	warn_unreadable("the configuration file", cfg->file, p);
	if (cfg->tls_server) {
		warn_unreadable("the certificate", cfg->tls_cert, p);
		warn_unreadable("the key", cfg->tls_key, p);
	}
	return 0;
}

/* Once the workers run: every thread has what the drop left. */
static int verify_drop(const struct config *cfg, struct privdrop *p)
{
	char err[512];
	if (!cfg->user)
		return 0;
	if (privdrop_verify_threads(p, err, sizeof(err)) < 0) {
		log_err(DAEMON, "privileges: %s", err);
		return -EPERM;
	}
	return 0;
}

int daemon_run(struct config *base, struct config *cfg, const struct daemon_hooks *hooks)
{
	struct daemon d = {.cfg = cfg, .snaps = {cfg}, .n_snaps = 1, .base = base, .hooks = hooks};
	cfg->generation = 1;
	uv_mutex_init(&d.etcd_lock);
	const unsigned threads = cfg->threads; /* cfg may be freed by a reload; the later ones keep these */
	size_t per = 2 * cfg->n_listens;
	int *fds = malloc(sizeof(int) * cfg->threads * per);
	d.workers = calloc(cfg->threads, sizeof(*d.workers));
	int code = 1;
	unsigned started = 0;
	struct privdrop priv = {.task_fd = -1};
	signal(SIGPIPE, SIG_IGN);
	if (!fds || !d.workers) {
		log_err(DAEMON, "out of memory");
		goto out;
	}
	if (bind_all(cfg, fds) < 0)
		goto out_fds;
	uv_loop_init(&d.loop);
	systemd_notify_open(); /* (before a chroot hides the socket) */
	d.start_ms = uv_now(&d.loop);
	if (start_metrics(&d) < 0 || start_control(&d) < 0 || drop_privileges(cfg, &priv, d.control_path) < 0) {
		metrics_http_close(d.metrics);
		control_server_close(d.control);
		d.control = NULL;
		uv_run(&d.loop, UV_RUN_DEFAULT); /* (their listeners' close) */
		uv_loop_close(&d.loop);
		goto out_fds;
	}
	watch(&d, &d.sig_int, SIGINT);
	watch(&d, &d.sig_term, SIGTERM);
	watch(&d, &d.sig_usr1, SIGUSR1);
	watch(&d, &d.sig_hup, SIGHUP);
	uv_timer_init(&d.loop, &d.release_timer);
	d.release_timer.data = &d;
	uv_async_init(&d.loop, &d.etcd_async, etcd_async_cb);
	d.etcd_async.data = &d;
	for (; started < cfg->threads; started++, d.started = started) {
		struct worker *w = &d.workers[started];
		int r = worker_init(w, started, cfg, fds + started * per);
		if (r == 0)
			r = uv_thread_create(&w->thread, worker_run, w);
		if (r < 0) {
			log_err(DAEMON, "cannot start worker %u: %s", started, uv_strerror(r));
			break;
		}
	}
	if (started == cfg->threads && verify_drop(cfg, &priv) == 0) {
		char up[512] = "";
		size_t n = 0;
		for (size_t i = 0; i < cfg->n_upstreams && n < sizeof(up); i++)
			n += (size_t)snprintf(up + n, sizeof(up) - n, "%s%s", i ? " " : "", cfg->upstreams[i].text);
		log_info(DAEMON, "ready: %u worker%s, %zu listener%s, upstreams %s", cfg->threads,
			 cfg->threads == 1 ? "" : "s", cfg->n_listens, cfg->n_listens == 1 ? "" : "s", up);
		notify_ready(&d);
		follow_etcd(&d);
		start_qlog(&d);
		uv_run(&d.loop, UV_RUN_DEFAULT);
		code = 0;
	} else {
		on_signal(&d.sig_term, SIGTERM);
		uv_run(&d.loop, UV_RUN_DEFAULT);
	}
	for (unsigned i = 0; i < started; i++)
		uv_thread_join(&d.workers[i].thread);
	qlog_writer_close(d.qlog); /* the last lines: no worker answers any more */
	uv_run(&d.loop, UV_RUN_DEFAULT);
	print_stats(&d);
	for (unsigned i = 0; i < started; i++)
		worker_deinit(&d.workers[i]);
	uv_loop_close(&d.loop);
out_fds:
	/* the workers' handles closed their sockets; close the ones never handed over */
	for (size_t k = started * per; k < threads * per; k++)
		if (fds[k] >= 0)
			close(fds[k]);
out:
	free(fds);
	free(d.workers);
	for (unsigned i = 0; i < d.n_snaps; i++)
		config_release(d.snaps[i], i + 1 < d.n_snaps ? d.snaps[i + 1] : NULL);
	config_release(d.base, NULL);
	etcd_set_free(d.etcd_set);
	etcd_set_free(d.etcd_next);
	uv_mutex_destroy(&d.etcd_lock);
	return code;
}
