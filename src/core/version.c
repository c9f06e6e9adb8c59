/* version.c -- see version.h. The runtime versions come from each
 * library's own call (uv_version_string, gnutls_check_version(NULL),
 * nghttp2_version, yaml_get_version_string, pcre2_config,
 * http_parser_version, jansson_version_str); libknot has none, so the file
 * the dynamic linker loaded it from (dladdr) stands in. */
#include <dlfcn.h>
#include <gnutls/gnutls.h>
#include <http_parser.h>
#include <jansson.h>
#include <libknot/libknot.h>
#include <libknot/version.h>
#include <nghttp2/nghttp2.h>
#include <uv.h>
#include <yaml.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include "core/version.h"

/* The file the symbol at p was loaded from, or "linked statically". */
static const char *loaded_from(const void *p)
{
	Dl_info info;
	if (dladdr(p, &info) && info.dli_fname && info.dli_fname[0])
		return info.dli_fname;
	return "linked statically";
}

static void line(FILE *f, const char *lib, const char *compiled, const char *running)
{
	fprintf(f, "  %-12s %-8s %s\n", lib, compiled, running);
}

void version_print(FILE *f)
{
	char built[32], run[64] = "?";
	unsigned long hp = http_parser_version();
	const nghttp2_info *ng = nghttp2_version(0);
	fprintf(f, "dnsmux %s\nlibraries: compiled with, running\n", DNSMUX_VERSION);
	snprintf(built, sizeof(built), "%d.%d.%d", UV_VERSION_MAJOR, UV_VERSION_MINOR, UV_VERSION_PATCH);
	line(f, "libuv", built, uv_version_string());
	snprintf(built, sizeof(built), "%d.%d.%d", KNOT_VERSION_MAJOR, KNOT_VERSION_MINOR, KNOT_VERSION_PATCH);
	snprintf(run, sizeof(run), "%s (it tells no version)", loaded_from((const void *)knot_pkt_new));
	line(f, "libknot", built, run);
	line(f, "GnuTLS", GNUTLS_VERSION, gnutls_check_version(NULL));
	line(f, "nghttp2", NGHTTP2_VERSION, ng ? ng->version_str : "?");
	snprintf(built, sizeof(built), "%d.%d.%d", HTTP_PARSER_VERSION_MAJOR, HTTP_PARSER_VERSION_MINOR,
		 HTTP_PARSER_VERSION_PATCH);
	snprintf(run, sizeof(run), "%lu.%lu.%lu", (hp >> 16) & 255, (hp >> 8) & 255, hp & 255);
	line(f, "http-parser", built, run);
	line(f, "libyaml", "-", yaml_get_version_string());
	snprintf(built, sizeof(built), "%d.%d", PCRE2_MAJOR, PCRE2_MINOR);
	if (pcre2_config(PCRE2_CONFIG_VERSION, run) < 0)
		snprintf(run, sizeof(run), "?");
	line(f, "PCRE2", built, run);
	line(f, "jansson", JANSSON_VERSION, jansson_version_str());
	line(f, "libcurl", "-", "loaded on demand, for etcd: only (libcurl-gnutls.so.4, else libcurl.so.4)");
}
