/* main.c -- command line -> struct config -> daemon_run(). Exit codes: 0 after
 * a clean stop, 1 for runtime failures (a port that cannot be bound), 2 for
 * bad flags or values (one line naming the problem). Only this file exits. */
#include <errno.h>
#include <setjmp.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "config/config.h"
#include "config/snapshot.h"
#include "core/clock.h"
#include "core/daemon.h"
#include "core/privdrop.h"
#include "core/systemd.h"
#include "core/version.h"
#include "route/route.h"
#include "obs/log.h"

enum {
	OPT_BIND_UDP = 256,
	OPT_CONNECT_TCP,
	OPT_TIMEOUT,
	OPT_UDP_RETRY,
	OPT_MAX_INFLIGHT,
	OPT_CIRCUIT_INFLIGHT,
	OPT_CIRCUIT_MAX,
	OPT_CIRCUIT_IDLE,
	OPT_CIRCUIT_STALL,
	OPT_TCP_IDLE,
	OPT_TCP_MAX_CLIENTS,
	OPT_TCP_PIPELINE,
	OPT_CA_FILE,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_HANDSHAKE,
	OPT_DOH_PATH,
	OPT_TRUSTED_PROXY,
	OPT_CHECK_CONFIG,
	OPT_CACHE,
	OPT_MDNS,
	OPT_METRICS,
	OPT_USER,
	OPT_CHROOT,
	OPT_ACL,
	OPT_RATELIMIT,
	OPT_CONTROL,
};

static const struct option long_opts[] = {
	{"listen", required_argument, NULL, 'l'},
	{"upstream", required_argument, NULL, 'u'},
	{"bind-udp", required_argument, NULL, OPT_BIND_UDP},
	{"connect-tcp", required_argument, NULL, OPT_CONNECT_TCP},
	{"threads", required_argument, NULL, 't'},
	{"timeout", required_argument, NULL, OPT_TIMEOUT},
	{"udp-retry", required_argument, NULL, OPT_UDP_RETRY},
	{"max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT},
	{"circuit-inflight", required_argument, NULL, OPT_CIRCUIT_INFLIGHT},
	{"circuit-max", required_argument, NULL, OPT_CIRCUIT_MAX},
	{"circuit-idle", required_argument, NULL, OPT_CIRCUIT_IDLE},
	{"circuit-stall", required_argument, NULL, OPT_CIRCUIT_STALL},
	{"tcp-idle", required_argument, NULL, OPT_TCP_IDLE},
	{"tcp-max-clients", required_argument, NULL, OPT_TCP_MAX_CLIENTS},
	{"tcp-pipeline", required_argument, NULL, OPT_TCP_PIPELINE},
	{"ca-file", required_argument, NULL, OPT_CA_FILE},
	{"tls-cert", required_argument, NULL, OPT_TLS_CERT},
	{"tls-key", required_argument, NULL, OPT_TLS_KEY},
	{"tls-handshake-timeout", required_argument, NULL, OPT_TLS_HANDSHAKE},
	{"doh-path", required_argument, NULL, OPT_DOH_PATH},
	{"trusted-proxy", required_argument, NULL, OPT_TRUSTED_PROXY},
	{"config", required_argument, NULL, 'c'},
	{"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
	{"cache", required_argument, NULL, OPT_CACHE},
	{"mdns", required_argument, NULL, OPT_MDNS},
	{"metrics", required_argument, NULL, OPT_METRICS},
	{"user", required_argument, NULL, OPT_USER},
	{"chroot", required_argument, NULL, OPT_CHROOT},
	{"acl", required_argument, NULL, OPT_ACL},
	{"ratelimit", required_argument, NULL, OPT_RATELIMIT},
	{"control", required_argument, NULL, OPT_CONTROL},
	{"verbose", no_argument, NULL, 'v'},
	{"quiet", no_argument, NULL, 'q'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

static void usage(FILE *f)
{
	fputs("Usage: dnsmux [options]\n"
	      "Forward local DNS queries (UDP, TCP) over a few persistent, pipelined upstream connections.\n"
	      "\n"
	      "  -l, --listen URL          ADDR:PORT (UDP and TCP), udp://ADDR:PORT, tcp://ADDR:PORT,\n"
	      "                            tls://ADDR:PORT (DNS-over-TLS), https://ADDR:PORT (DNS-over-HTTPS,\n"
	      "                            HTTP/2 and HTTP/1.1) or http://ADDR:PORT (the same in cleartext,\n"
	      "                            for a reverse proxy in front); IPv6 as [::1]:53. Repeatable.\n"
	      "  -u, --upstream URL        udp://IP[:PORT], tcp://IP[:PORT], unix:///path or\n"
	      "                            tls://IP[:PORT][?pin=sha256/BASE64][#AUTH-NAME] (port 853),\n"
	      "                            https://IP[:PORT]/PATH[?pin=...&method=get][#AUTH-NAME] (443).\n"
	      "                            Repeatable: all form one pool (round-robin over healthy members).\n"
	      "      --ca-file PEM         CA bundle for tls:// upstreams (default: the system store)\n"
	      "      --tls-cert PEM        certificate chain of the tls:// listener (re-read on SIGHUP)\n"
	      "      --tls-key PEM         its private key\n"
	      "      --tls-handshake-timeout MS  DoT clients must finish the handshake in MS (5000)\n"
	      "      --doh-path PATH       path of RFC 8484 queries on DoH listeners (/dns-query);\n"
	      "                            the JSON API is at /resolve\n"
	      "      --trusted-proxy IP    believe X-Forwarded-For / Forwarded from IP (repeatable)\n"
	      "      --acl LIST            who may query every listener: addresses, prefixes, any, none,\n"
	      "                            localhost, private, each may start with '!', the first that\n"
	      "                            contains the client decides (\"!10.1.0.0/16,10.0.0.0/8\"). Default:\n"
	      "                            localhost,private for udp/tcp/http://, any for tls:// and https://.\n"
	      "                            Refused: dropped over UDP, REFUSED over TCP, DoT and DoH\n"
	      "      --ratelimit QPS[,BURST[,SLIP]]  per client /32 and /64 on every listener: over the rate,\n"
	      "                            UDP queries are dropped but every SLIP-th (2) gets an empty TC=1\n"
	      "                            answer; stream ones get REFUSED. BURST: QPS\n"
	      "      --bind-udp ADDR:PORT  same as --listen udp://ADDR:PORT\n"
	      "      --connect-tcp ADDR:PORT  same as --upstream tcp://ADDR:PORT\n"
	      "  -t, --threads N           worker threads, each with its own sockets and circuits (1)\n"
	      "      --timeout MS          answer SERVFAIL when no answer came within MS (2000)\n"
	      "      --udp-retry MS        resend over UDP after MS without an answer (500)\n"
	      "      --max-inflight N      queries in flight per worker; more get SERVFAIL (10000)\n"
	      "      --circuit-inflight N  queries in flight per circuit before another opens (1000)\n"
	      "      --circuit-max N       circuits per upstream per worker (4)\n"
	      "      --circuit-idle MS     close a circuit idle this long; an upstream's RFC 7828\n"
	      "                            keepalive can lower it (10000)\n"
	      "      --circuit-stall MS    a circuit with queries in flight that reads nothing for MS\n"
	      "                            is dead: its queries are resent on a new one (1000)\n"
	      "      --tcp-idle MS         close idle client TCP connections after MS (10000)\n"
	      "      --tcp-max-clients N   client TCP connections per worker (1024)\n"
	      "      --tcp-pipeline N      queries in flight per client TCP connection (128)\n"
	      "      --cache SIZE          cache answers in SIZE bytes (64MiB, 1GiB; 0: off). Off unless given\n"
	      "                            here or in the file, on (64MiB) in the embedded default\n"
	      "      --mdns IFACE          answer local. names by multicast DNS on IFACE (\"\" for every\n"
	      "                            interface): a pool \"mdns\" and a route local. to it\n"
	      "      --metrics ADDR:PORT   serve Prometheus metrics at http://ADDR:PORT/metrics\n"
	      "      --user NAME           once the listeners are bound, run as NAME: its uid and gid, no\n"
	      "                            supplementary groups, no capabilities, no_new_privs\n"
	      "      --chroot DIR          and chroot to DIR first (with --user); what a SIGHUP reads (-c FILE,\n"
	      "                            --tls-cert, --tls-key, --ca-file) must then be at its path inside DIR\n"
	      "      --control PATH        serve dnsmux-ctl on the unix socket PATH (status, stats, reload,\n"
	      "                            cache-flush)\n"
	      "  -c, --config FILE         YAML configuration (doc/config.md); the options here win\n"
	      "      --check-config        check the configuration (with -c FILE) and exit 0, or 2\n"
	      "  -v, --verbose             more logging (twice: debug)\n"
	      "  -q, --quiet               warnings and errors only\n"
	      "  -h, --help                this text\n"
	      "  -V, --version             version, and the libraries' versions\n"
	      "\n"
	      "Without --listen and --upstream: listen on 127.0.0.1:53, forward over DNS-over-TLS to\n"
	      "9.9.9.9 (dns.quad9.net) and 1.1.1.1 (cloudflare-dns.com).\n"
	      "SIGINT/SIGTERM stop gracefully; SIGUSR1 logs counters; SIGHUP re-reads --tls-cert/--tls-key\n"
	      "and the -c FILE (unchanged upstreams keep their connections; a bad file changes nothing).\n"
	      "Socket activation (LISTEN_FDS) and NOTIFY_SOCKET as systemd passes them: doc/service.md.\n"
	      "See doc/dnsmux.md.\n",
	      f);
}

/* A reload parses the same command line again over a new file: what fails
 * there must not exit but keep the running configuration (reload_jmp). */
static bool reloading;
static jmp_buf reload_jmp;
static char reload_why[512];

/* Exit 2 with one line: what is wrong with which option. */
static void __attribute__((noreturn, format(printf, 1, 2))) bad(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (reloading) {
		vsnprintf(reload_why, sizeof(reload_why), fmt, ap);
		va_end(ap);
		longjmp(reload_jmp, 1);
	}
	fputs("dnsmux: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see dnsmux --help)\n", stderr);
	exit(2);
}

static uint32_t number(const char *opt, const char *s, unsigned long min, unsigned long max)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || s[0] == '-' || v < min || v > max)
		bad("--%s: '%s' is not a number from %lu to %lu", opt, s, min, max);
	return (uint32_t)v;
}

static bool cli_listens, cli_upstreams; /* the first --listen / --upstream replaces the file's */

static void add_listen(struct config *c, const char *s)
{
	char err[256];
	if (!cli_listens) {
		cli_listens = true;
		c->n_listens = 0;
	}
	if (c->n_listens >= CONFIG_MAX_LISTENS)
		bad("--listen: at most %d listeners", CONFIG_MAX_LISTENS);
	if (config_parse_listen(s, &c->listens[c->n_listens], err, sizeof(err)) < 0)
		bad("--listen: %s", err);
	c->n_listens++;
}

/* --upstream: the members of the pool "default" (CONFIG.md: the flags form
 * that pool); the first one drops the file's members of it. */
static void add_upstream(struct config *c, const char *s)
{
	char err[256];
	int pool = config_add_pool(c, "default");
	if (pool < 0)
		bad("--upstream: at most %d pools", CONFIG_MAX_POOLS);
	if (!cli_upstreams) {
		cli_upstreams = true;
		size_t k = 0;
		for (size_t i = 0; i < c->n_upstreams; i++)
			if (c->upstreams[i].pool != (unsigned)pool)
				c->upstreams[k++] = c->upstreams[i];
		c->n_upstreams = k;
		c->pools[pool].n_members = 0;
	}
	if (c->n_upstreams >= CONFIG_MAX_UPSTREAMS)
		bad("--upstream: at most %d upstreams", CONFIG_MAX_UPSTREAMS);
	struct upstream_conf *u = &c->upstreams[c->n_upstreams];
	if (config_parse_upstream(s, u, err, sizeof(err)) < 0)
		bad("--upstream: %s", err);
	u->pool = (unsigned)pool;
	u->weight = 1;
	c->pools[pool].n_members++;
	c->n_upstreams++;
}

/* File descriptors a worker needs besides its client connections: its
 * listeners, circuits (each upstream's own and its TCP twin's), rotating UDP
 * sockets, and the loop's own (epoll, eventfd, timers); plus the process's. */
#define FDS_PER_UPSTREAM_UDP 4
#define FDS_PER_WORKER 16
#define FDS_PROCESS 32

/* A client connection must never take the descriptor a circuit needs: at the
 * usual `ulimit -n 1024`, 1,024 clients per worker would leave none, and every
 * connect would fail with EMFILE. Raise the soft limit to the hard one (as
 * nginx and systemd services do), then lower --tcp-max-clients to what fits,
 * with a warning (refusing to start would break `make run`). */
static void fit_fd_limit(struct config *c)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit raised = {rl.rlim_max, rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
			rl = raised;
	}
	uint64_t per_worker = FDS_PER_WORKER + 2 * c->n_listens +
			      c->n_upstreams * (2 * (uint64_t)c->circuit_max + FDS_PER_UPSTREAM_UDP);
	uint64_t need = FDS_PROCESS + c->threads * (per_worker + c->tcp_max_clients);
	if (rl.rlim_cur == RLIM_INFINITY || need <= rl.rlim_cur)
		return;
	uint64_t room = rl.rlim_cur > FDS_PROCESS ? (rl.rlim_cur - FDS_PROCESS) / c->threads : 0;
	uint32_t cap = room > per_worker ? (uint32_t)(room - per_worker) : 1;
	log_warn(DAEMON, "file descriptor limit %llu: --tcp-max-clients lowered from %u to %u per worker, so that "
			 "upstream connections always find a descriptor (raise it with ulimit -n or LimitNOFILE=)",
		 (unsigned long long)rl.rlim_cur, c->tcp_max_clients, cap);
	c->tcp_max_clients = cap;
}

static struct systemd_fd g_passed[SYSTEMD_MAX_FDS]; /* socket activation: what systemd passed */
static size_t g_n_passed;
/* --ratelimit QPS[,BURST[,SLIP]] */
static void parse_ratelimit(const char *s, struct ratelimit_conf *rl)
{
	char buf[64];
	char *save = NULL;
	if (strlen(s) >= sizeof(buf))
		bad("--ratelimit: '%s' is not QPS[,BURST[,SLIP]]", s);
	snprintf(buf, sizeof(buf), "%s", s);
	config_ratelimit_defaults(rl);
	char *qps = strtok_r(buf, ",", &save), *burst = strtok_r(NULL, ",", &save), *slip = strtok_r(NULL, ",", &save);
	if (!qps || strtok_r(NULL, ",", &save))
		bad("--ratelimit: '%s' is not QPS[,BURST[,SLIP]]", s);
	rl->qps = number("ratelimit", qps, 1, 1000000);
	rl->burst = burst ? number("ratelimit", burst, 1, 1000000) : rl->qps;
	if (slip)
		rl->slip = number("ratelimit", slip, 0, 100);
}

/* --acl and --ratelimit: every listener's (the command line's replace the
 * file's; without any, the file's listeners take them: the command line wins) */
static void apply_listener_flags(struct config *c, const struct addr_list *acl, const struct ratelimit_conf *rl)
{
	for (size_t i = 0; i < c->n_listens; i++) {
		if (acl) {
			c->listens[i].acl = *acl;
			c->listens[i].has_acl = true;
		}
		if (rl)
			c->listens[i].rl = *rl;
	}
}

static int g_argc;
static char **g_argv;
static const char *g_file; /* -c FILE */
static int g_verbosity;

/* The configuration: the file (when -c), then the command line over it;
 * validated (a template: config_snapshot makes what the workers run). NULL with the reason in err, or -- at
 * start only -- exit for a bad flag, --help or --version. */
static struct config *build(char *err, size_t errlen)
{
	char buf[300];
	int opt;
	bool circuit_inflight_set = false;
	struct addr_list acl;
	struct ratelimit_conf rl;
	bool has_acl = false, has_rl = false;
	struct config *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	config_defaults(c);
	cli_listens = cli_upstreams = false;
	if (g_file && config_load_file(c, g_file, err, errlen) < 0)
		goto fail;
	optind = 0; /* glibc: start over */
	opterr = 0;
	while ((opt = getopt_long(g_argc, g_argv, ":l:u:t:c:vqhV", long_opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
		case OPT_CHECK_CONFIG:
		case 'v':
		case 'q': break;
		case 'l': add_listen(c, optarg); break;
		case 'u': add_upstream(c, optarg); break;
		case OPT_BIND_UDP:
			snprintf(buf, sizeof(buf), "udp://%s", optarg);
			add_listen(c, buf);
			break;
		case OPT_CONNECT_TCP:
			snprintf(buf, sizeof(buf), "tcp://%s", optarg);
			add_upstream(c, buf);
			break;
		case 't': c->threads = number("threads", optarg, 1, CONFIG_MAX_THREADS); break;
		case OPT_TIMEOUT: c->timeout_ms = number("timeout", optarg, 10, 600000); break;
		case OPT_UDP_RETRY: c->udp_retry_ms = number("udp-retry", optarg, 10, 600000); break;
		case OPT_MAX_INFLIGHT: c->max_inflight = number("max-inflight", optarg, 1, 1000000); break;
		case OPT_CIRCUIT_INFLIGHT:
			c->circuit_inflight = number("circuit-inflight", optarg, 1, 32768);
			circuit_inflight_set = true;
			break;
		case OPT_CIRCUIT_MAX: c->circuit_max = number("circuit-max", optarg, 1, CONFIG_CIRCUIT_MAX_LIMIT); break;
		case OPT_CIRCUIT_IDLE: c->circuit_idle_ms = number("circuit-idle", optarg, 0, 3600000); break;
		case OPT_CIRCUIT_STALL: c->circuit_stall_ms = number("circuit-stall", optarg, 10, 600000); break;
		case OPT_TCP_IDLE: c->tcp_idle_ms = number("tcp-idle", optarg, 10, 3600000); break;
		case OPT_TCP_MAX_CLIENTS: c->tcp_max_clients = number("tcp-max-clients", optarg, 1, 1000000); break;
		case OPT_TCP_PIPELINE: c->tcp_pipeline = number("tcp-pipeline", optarg, 1, 65535); break;
		case OPT_CA_FILE: c->ca_file = optarg; break;
		case OPT_TLS_CERT: c->tls_cert = optarg; break;
		case OPT_TLS_KEY: c->tls_key = optarg; break;
		case OPT_TLS_HANDSHAKE: c->tls_handshake_ms = number("tls-handshake-timeout", optarg, 10, 600000); break;
		case OPT_DOH_PATH:
			if (optarg[0] != '/' || strlen(optarg) >= sizeof(c->doh_path) || strchr(optarg, '?'))
				bad("--doh-path: '%s' must start with / and be under %zu bytes, without '?'", optarg,
				    sizeof(c->doh_path));
			snprintf(c->doh_path, sizeof(c->doh_path), "%s", optarg);
			break;
		case OPT_CACHE: {
			uint64_t size;
			if (config_parse_size(optarg, &size) < 0 || size > (64ull << 30))
				bad("--cache: '%s' is not a size up to 64GiB (64MiB, 1GiB; 0 turns it off)", optarg);
			c->cache.size = size;
			c->cache_given = true;
			break;
		}
		case OPT_MDNS:
			if (strlen(optarg) >= sizeof(c->mdns_flag_if) || strpbrk(optarg, "/:?#% "))
				bad("--mdns: '%s' is not an interface name", optarg);
			snprintf(c->mdns_flag_if, sizeof(c->mdns_flag_if), "%s", optarg);
			c->has_mdns_flag = true;
			break;
		case OPT_METRICS:
			if (config_set_metrics(c, optarg, buf, sizeof(buf)) < 0)
				bad("--metrics: %s", buf);
			break;
		case OPT_USER: c->user = optarg; break;
		case OPT_CHROOT: c->chroot_dir = optarg; break;
		case OPT_ACL:
			if (config_parse_addr_csv(&acl, optarg, buf, sizeof(buf)) < 0)
				bad("--acl: %s", buf);
			has_acl = true;
			break;
		case OPT_RATELIMIT:
			parse_ratelimit(optarg, &rl);
			has_rl = true;
			break;
		case OPT_CONTROL:
			if (config_set_control(c, optarg, buf, sizeof(buf)) < 0)
				bad("--control: %s", buf);
			break;
		case OPT_TRUSTED_PROXY:
			if (config_add_trusted_proxy(c, optarg, buf, sizeof(buf)) < 0)
				bad("--trusted-proxy: %s", buf);
			break;
		case 'h': usage(stdout); exit(0);
		case 'V': version_print(stdout); exit(0);
		case ':': bad("option %s needs a value", g_argv[optind - 1]);
		default:
			if (optopt)
				bad("unknown option -%c", optopt);
			bad("unknown option %s", g_argv[optind - 1]);
		}
	}
	if (optind < g_argc)
		bad("unexpected argument '%s'", g_argv[optind]);
	/* a small --max-inflight alone lowers the per-circuit default with it */
	if (!circuit_inflight_set && c->circuit_inflight > c->max_inflight)
		c->circuit_inflight = c->max_inflight;
	bool bare = c->n_listens == 0 && c->n_upstreams == 0 && !g_file;
	if (g_n_passed && systemd_adopt(c, g_passed, g_n_passed, !reloading, buf, sizeof(buf)) < 0)
		bad("%s", buf);
	if (bare)
		config_apply_embedded(c); /* (on the passed sockets, when there are any) */
	apply_listener_flags(c, has_acl ? &acl : NULL, has_rl ? &rl : NULL);
	if (config_validate(c, buf, sizeof(buf)) < 0) {
		if (g_file)
			snprintf(err, errlen, "%s: %s", g_file, buf);
		else
			bad("%s", buf);
		goto fail;
	}
	return c;
fail:
	config_release(c, NULL);
	return NULL;
}

static void apply_log_level(const struct config *c)
{
	enum log_level l = g_verbosity < 0 ? LOG_WARN : g_verbosity == 0 ? LOG_INFO : LOG_DEBUG;
	if (c->log_level && !g_verbosity) /* the file's log.level (1 + enum log_level), unless -v/-q said otherwise */
		l = (enum log_level)(c->log_level - 1);
	log_set_threshold(l);
	log_set_target(c->log_target == 1 + LOG_TARGET_SYSLOG ? LOG_TARGET_SYSLOG : LOG_TARGET_STDERR);
}

/* user: and chroot: as the process started with them: a reload cannot
 * change what was dropped. */
static char g_user[64], g_chroot[4096];

static bool same_opt(const char *now, const char *at_start)
{
	return strcmp(now ? now : "", at_start) == 0;
}

/* SIGHUP (daemon.c): the file again, the same command line over it. */
static struct config *reload(char *err, size_t errlen)
{
	struct config *volatile next = NULL;
	reloading = true;
	if (setjmp(reload_jmp)) {
		reloading = false;
		snprintf(err, errlen, "%s", reload_why);
		config_release(next, NULL);
		return NULL;
	}
	next = build(err, errlen);
	reloading = false;
	if (next && (!same_opt(next->user, g_user) || !same_opt(next->chroot_dir, g_chroot)))
		log_warn(CONFIG, "SIGHUP: user: and chroot: take a restart; still user '%s'%s%s", g_user[0] ? g_user : "(none)",
			 g_chroot[0] ? ", chroot " : "", g_chroot);
	return next;
}

/* What a snapshot changes in the process itself. */
static void applied(struct config *c)
{
	apply_log_level(c);
	fit_fd_limit(c);
}

static const struct daemon_hooks hooks = {.load = reload, .applied = applied};

int main(int argc, char **argv)
{
	static char errs[16384];
	int opt;
	bool check_only = false;
	g_argc = argc;
	g_argv = argv;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":l:u:t:c:vqhV", long_opts, NULL)) != -1) {
		if (opt == 'c')
			g_file = optarg;
		else if (opt == OPT_CHECK_CONFIG)
			check_only = true;
		else if (opt == 'v')
			g_verbosity++;
		else if (opt == 'q')
			g_verbosity = -1;
	}
	g_n_passed = systemd_listen_fds(g_passed, SYSTEMD_MAX_FDS);
	struct config *base = build(errs, sizeof(errs));
	if (!base) {
		fprintf(stderr, "%s\n", errs);
		return 2;
	}
	struct privdrop who;
	if (base->user && privdrop_lookup(base->user, &who, errs, sizeof(errs)) < 0) {
		fprintf(stderr, "dnsmux: %s%s%s\n", g_file ? g_file : "", g_file ? ": " : "", errs);
		config_release(base, NULL);
		return 2;
	}
	snprintf(g_user, sizeof(g_user), "%s", base->user ? base->user : "");
	snprintf(g_chroot, sizeof(g_chroot), "%s", base->chroot_dir ? base->chroot_dir : "");
	apply_log_level(base);
	if (check_only && !g_file)
		bad("--check-config needs -c FILE");
	struct config *cfg = config_snapshot(base, NULL, NULL, errs, sizeof(errs));
	if (!cfg) {
		fprintf(stderr, "dnsmux: %s\n", errs);
		config_release(base, NULL);
		return 2;
	}
	if (check_only) {
		printf("%s: OK (%zu listeners, %zu pools, %zu upstreams, %zu routes)\n", g_file, cfg->n_listens,
		       cfg->n_pools, cfg->n_upstreams, cfg->n_routes);
		config_release(cfg, NULL);
		config_release(base, NULL);
		return 0;
	}
	fit_fd_limit(cfg);
	clock_init();
	return daemon_run(base, cfg, g_file ? &hooks : NULL);
}
