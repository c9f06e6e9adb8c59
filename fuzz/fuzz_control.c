/* fuzz_control.c -- the control socket's request parser, control/command.c,
 * and the JSON its replies are written with (fuzz/README.md). Input: 1
 * control byte, then the bytes.
 *   byte & 1 == 0: the bytes are a request line, as control/server.c hands
 *     it over (up to its newline). command_parse gives 0 exactly when an
 *     independent reading says the line is a command (printable ASCII words
 *     under 1,024 bytes: status, stats, reload alone, cache-flush [--exact]
 *     [NAME] with a NAME libknot reads), and then the same command and name
 *     (wire form, and a text form that reads back to it); otherwise -EINVAL
 *     with a reason that is printable ASCII, whatever the bytes were. The
 *     reason goes into an error reply's JSON and reads back unchanged.
 *   byte & 1 == 1: the bytes (to a NUL) are an upstream's URL in a worker's
 *     table of upstream blocks (obs/metrics.h): metrics_json and
 *     metrics_upstreams_json, as stats and status write them, are JSON that
 *     jansson reads back, with the URL as stored -- byte for byte when it is
 *     UTF-8, every byte above 0x7f made '?' when it is not (obs/json.h) --
 *     and never a member dropped. Nothing leaks (LeakSanitizer). */
#include <errno.h>
#include <jansson.h>
#include "control/command.h"
#include "fuzz.h"
#include "obs/json.h"
#include "obs/metrics.h"

static bool printable(const char *s)
{
	for (; *s; s++)
		if (*s < ' ' || *s >= 0x7f)
			return false;
	return true;
}

/* JSON of s written and read back is s. */
static void round_trip(const char *s)
{
	json_t *j = json_pack("{s:o}", "error", json_text(s));
	CHECK(j);
	char *text = json_dumps(j, JSON_COMPACT);
	CHECK(text);
	json_t *back = json_loads(text, 0, NULL);
	CHECK(back);
	CHECK(strcmp(json_string_value(json_object_get(back, "error")), s) == 0);
	json_decref(back);
	json_decref(j);
	free(text);
}

/* The target's own reading of a request line: is it a command? */
struct reading {
	unsigned n;
	const char *w[COMMAND_MAX_WORDS + 1];
	size_t wl[COMMAND_MAX_WORDS + 1];
};

static bool read_words(const uint8_t *p, size_t n, struct reading *r)
{
	if (n && p[n - 1] == '\r')
		n--;
	if (n > COMMAND_REQUEST_MAX - 1)
		return false;
	r->n = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == ' ' || p[i] == '\t')
			continue;
		if (p[i] < 0x21 || p[i] > 0x7e || r->n > COMMAND_MAX_WORDS - 1)
			return false;
		size_t s = i;
		while (i < n && p[i] > 0x20 && p[i] < 0x7f)
			i++;
		r->w[r->n] = (const char *)p + s;
		r->wl[r->n++] = i - s;
		if (i < n && p[i] != ' ' && p[i] != '\t')
			return false; /* a byte no word may hold, right after one */
	}
	return r->n > 0;
}

static bool word_is(const struct reading *r, unsigned k, const char *s)
{
	return k < r->n && r->wl[k] == strlen(s) && memcmp(r->w[k], s, r->wl[k]) == 0;
}

static void request(const uint8_t *p, size_t n)
{
	static char err[512];
	struct command cmd;
	struct reading r;
	char *copy = (char *)fz_dup(p, n, 0); /* exactly n bytes: ASan sees a read past them */
	int rc = command_parse(copy, n, &cmd, err, sizeof(err));
	CHECK(rc == 0 || rc == -EINVAL);
	CHECK(strlen(err) < sizeof(err) && printable(err));
	CHECK(rc == 0 ? err[0] == '\0' : err[0] != '\0');
	round_trip(err);
	/* the target's verdict */
	bool ok = read_words(p, n, &r);
	int kind = -1;
	uint8_t name[KNOT_DNAME_MAXLEN];
	bool has_name = false, exact = false;
	if (ok) {
		for (int k = COMMAND_STATUS; k <= COMMAND_CACHE_FLUSH; k++)
			if (word_is(&r, 0, command_name((enum command_kind)k)))
				kind = k;
		unsigned first = 1;
		if (kind == COMMAND_CACHE_FLUSH && word_is(&r, 1, "--exact"))
			exact = true, first = 2;
		has_name = kind == COMMAND_CACHE_FLUSH && r.n > first;
		ok = kind >= 0 && (kind == COMMAND_CACHE_FLUSH ? r.n <= first + 1 && (!exact || has_name) : r.n == 1);
		if (ok && has_name) {
			char text[COMMAND_REQUEST_MAX];
			memcpy(text, r.w[first], r.wl[first]);
			text[r.wl[first]] = '\0';
			ok = text[0] != '-' && knot_dname_from_str(name, text, sizeof(name)) != NULL;
		}
	}
	CHECK(ok == (rc == 0));
	if (rc == 0) {
		CHECK((int)cmd.kind == kind && cmd.has_name == has_name && cmd.exact == exact);
		if (has_name) {
			size_t nl = knot_dname_size(name);
			CHECK(knot_dname_size(cmd.name) == nl && memcmp(cmd.name, name, nl) == 0);
			uint8_t again[KNOT_DNAME_MAXLEN];
			CHECK(knot_dname_from_str(again, cmd.name_text, sizeof(again)));
			CHECK(knot_dname_size(again) == nl && memcmp(again, name, nl) == 0);
		}
	}
	free(copy);
}

/* The URL as a reply holds it: as stored, or '?' for each byte above 0x7f. */
static void check_url(json_t *u, const char *stored)
{
	const char *got = json_string_value(json_object_get(u, "url"));
	CHECK(got);
	json_t *as_is = json_string(stored); /* (jansson's verdict: UTF-8 or not) */
	if (as_is) {
		CHECK(strcmp(got, stored) == 0);
		json_decref(as_is);
		return;
	}
	CHECK(strlen(got) == strlen(stored));
	for (size_t i = 0; stored[i]; i++)
		CHECK(got[i] == ((unsigned char)stored[i] > 0x7f ? '?' : stored[i]));
}

static json_t *dump_and_read(json_t *j)
{
	CHECK(j);
	char *text = json_dumps(j, JSON_COMPACT);
	CHECK(text);
	json_decref(j);
	json_t *back = json_loads(text, 0, NULL);
	CHECK(back);
	free(text);
	return back;
}

static void upstream_url(const uint8_t *p, size_t n)
{
	char *url = (char *)fz_dup(p, n, 1);
	url[n] = '\0';
	struct ustats_table t;
	struct metrics m;
	memset(&m, 0, sizeof(m));
	CHECK(ustats_table_init(&t, 4) == 0);
	struct upstream_stats *st = ustats_table_get(&t, url);
	STAT_SET(st, instances, 1);
	STAT_SET(st, up, 1);
	STAT_INC(st, queries);
	hist_observe(&st->latency, n);
	struct metrics_source src = {.m = &m, .t = &t};
	struct metrics_extra x = {.has_cache = (n & 1) != 0, .cache_entries = n};
	json_t *stats = dump_and_read(metrics_json(&src, 1, &x));
	json_t *ups = json_object_get(stats, "upstreams");
	CHECK(json_array_size(ups) == 1);
	json_t *u = json_array_get(ups, 0);
	check_url(u, st->name);
	CHECK(json_integer_value(json_object_get(u, "queries")) == 1);
	CHECK(json_integer_value(json_object_get(json_object_get(u, "latency"), "count")) == 1);
	CHECK(json_is_object(json_object_get(stats, "counters")));
	CHECK(!x.has_cache || json_integer_value(json_object_get(json_object_get(stats, "cache"), "entries")) == (json_int_t)n);
	json_decref(stats);
	json_t *status = dump_and_read(metrics_upstreams_json(&src, 1));
	CHECK(json_array_size(status) == 1);
	check_url(json_array_get(status, 0), st->name);
	CHECK(json_is_true(json_object_get(json_array_get(status, 0), "up")));
	json_decref(status);
	ustats_table_deinit(&t);
	free(url);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl c = {data, size};
	uint8_t mode = ctl_u8(&c);
	if (mode & 1)
		upstream_url(c.p, strnlen((const char *)c.p, c.n));
	else
		request(c.p, c.n);
	return 0;
}
