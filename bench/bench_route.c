/* bench_route.c -- instructions per route lookup (run under callgrind:
 * bench/README.md, "Routes"). Builds a table of N suffix rules and R regex
 * rules from a generated YAML file -- suffix rules zN.bench.test., regexes
 * '^[ab]*\.shardN\.example\.$' (dnsrouter's form), then "suffix: ." --
 * and looks up LOOKUPS names of one kind:
 *   suffix   qI.zN.bench.test.: under one of the suffix rules
 *   default  qI.bench.test.: only "suffix: ." matches; no regex can (their
 *            tails, ".shardN.example.", are not the name's end)
 *   load     PI.bench.test., P 8 hex digits: the same, with the names
 *            bench/run's load sends (a first label of 9-13 bytes)
 *   near     qI.bench.example.: only "suffix: ." matches, but the name ends
 *            as the regexes' tails do ("example."): the tail index is read
 *   regex    ab.shardN.example.: regex N matches
 * (bench/run's routes scenario sends "load" names: <prefix>I.bench.test.)
 * Usage: bench_route SUFFIX_RULES REGEX_RULES KIND LOOKUPS */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libknot/libknot.h>
#include "config/config.h"
#include "route/route.h"

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s SUFFIX_RULES REGEX_RULES suffix|default|load|near|regex LOOKUPS\n", argv[0]);
		return 2;
	}
	int n_suffix = atoi(argv[1]), n_regex = atoi(argv[2]), lookups = atoi(argv[4]);
	const char *kind = argv[3];
	char path[] = "/tmp/bench-route-XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");
	fprintf(f, "pools:\n  default: {members: [tcp://127.0.0.1:1]}\n  other: {members: [tcp://127.0.0.1:2]}\nroutes:\n");
	for (int i = 0; i < n_suffix; i++)
		fprintf(f, "  - {suffix: z%d.bench.test., pool: other}\n", i);
	for (int i = 0; i < n_regex; i++)
		fprintf(f, "  - {regex: '^[ab]*\\.shard%d\\.example\\.$', pool: other}\n", i);
	fprintf(f, "  - {suffix: ., pool: default}\n");
	fclose(f);
	static struct config cfg;
	char err[1024];
	config_defaults(&cfg);
	if (config_load_file(&cfg, path, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	unlink(path);
	struct route_table *t = route_table_new(&cfg, err, sizeof(err));
	struct route_scratch *s = route_scratch_new(t);
	if (!t || !s) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	struct sockaddr_in client = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	uint8_t dn[KNOT_DNAME_MAXLEN];
	long hits = 0;
	for (int i = 0; i < lookups; i++) {
		char name[64];
		if (strcmp(kind, "default") == 0)
			snprintf(name, sizeof(name), "q%d.bench.test.", i);
		else if (strcmp(kind, "load") == 0)
			snprintf(name, sizeof(name), "5f3a9c01%d.bench.test.", i);
		else if (strcmp(kind, "near") == 0)
			snprintf(name, sizeof(name), "q%d.bench.example.", i);
		else if (strcmp(kind, "regex") == 0)
			snprintf(name, sizeof(name), "ab.shard%d.example.", n_regex ? i % n_regex : 0);
		else
			snprintf(name, sizeof(name), "q%d.z%d.bench.test.", i, n_suffix ? i % n_suffix : 0);
		knot_dname_from_str(dn, name, sizeof(dn));
		hits += route_lookup(t, s, dn, KNOT_RRTYPE_A, (struct sockaddr *)&client, NULL) == 1;
	}
	printf("%d lookups, %ld to the rule's pool\n", lookups, hits);
	route_scratch_free(s);
	route_table_free(t);
	config_free(&cfg);
	return 0;
}
