/* etcd_watch.c -- config/etcd.c's watcher alone, for
 * tests/integration/test_etcd_watcher.py: watches PREFIX on the endpoints
 * and prints every set it is handed, flushed:
 *
 *     set N REVISION
 *     KEY UPSTREAM-URL regex|suffix MATCH      (N lines, in key order)
 *     end
 *
 * The log (etcd.c's warnings) goes to stderr. SIGTERM or SIGINT: etcd_stop,
 * then "stopped MS" (how long etcd_stop took) and exit 0.
 *
 *     etcd_watch http://127.0.0.1:2379[,http://...] /dnsrouter/ */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "config/etcd.h"
#include "obs/log.h"

static void on_set(void *arg, struct etcd_set *set)
{
	(void)arg;
	printf("set %zu %llu\n", set->n, (unsigned long long)set->revision);
	for (size_t i = 0; i < set->n; i++) {
		const struct etcd_backend *b = &set->b[i];
		printf("%s %s %s %s\n", b->key, b->up.text, b->kind == ROUTE_REGEX ? "regex" : "suffix", b->match);
	}
	printf("end\n");
	fflush(stdout);
	etcd_set_free(set);
}

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s ENDPOINT[,ENDPOINT...] PREFIX\n", argv[0]);
		return 2;
	}
	struct etcd_conf conf;
	memset(&conf, 0, sizeof(conf));
	char eps[1100];
	snprintf(eps, sizeof(eps), "%s", argv[1]);
	char *save = NULL;
	for (char *e = strtok_r(eps, ",", &save); e && conf.n_endpoints < 4; e = strtok_r(NULL, ",", &save))
		snprintf(conf.endpoints[conf.n_endpoints++], sizeof(conf.endpoints[0]), "%s", e);
	snprintf(conf.prefix, sizeof(conf.prefix), "%s", argv[2]);
	log_threshold = LOG_DEBUG;
	/* the watcher thread inherits the mask: the signals come to sigwait */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	struct etcd *e = etcd_start(&conf, on_set, NULL);
	if (!e) {
		fprintf(stderr, "etcd_start failed\n");
		return 1;
	}
	printf("started\n");
	fflush(stdout);
	int sig;
	sigwait(&set, &sig);
	double t0 = now_ms();
	etcd_stop(e);
	printf("stopped %.0f\n", now_ms() - t0);
	fflush(stdout);
	return 0;
}
