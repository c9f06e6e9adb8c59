/* test_systemd.c -- src/core/systemd.c: which listener each socket systemd
 * passed serves (address, port and type must all match), the listeners made
 * of sockets no listener matches, and the same result when a reload asks
 * again. */
#include "test.h"
#include "config/config.h"
#include "core/systemd.h"

static struct systemd_fd passed(int fd, int type, const char *hostport, const char *name)
{
	struct systemd_fd d = {.fd = fd, .type = type};
	struct listen_conf l;
	char err[128];
	assert_int_equal(config_parse_listen(hostport, &l, err, sizeof(err)), 0);
	d.addr = l.addr;
	snprintf(d.text, sizeof(d.text), "%s", l.text);
	snprintf(d.name, sizeof(d.name), "%s", name);
	return d;
}

static void listen_on(struct config *c, const char *url)
{
	char err[128];
	assert_int_equal(config_parse_listen(url, &c->listens[c->n_listens++], err, sizeof(err)), 0);
}

static struct config *fresh(void)
{
	struct config *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	config_defaults(c);
	return c;
}

/* UDP and TCP on the listener's own address and port: its two parts. */
static void matches_both_parts(void **state)
{
	(void)state;
	struct config *c = fresh();
	char err[128];
	listen_on(c, "127.0.0.1:53");
	struct systemd_fd fds[] = {passed(3, SOCK_DGRAM, "127.0.0.1:53", "a"), passed(4, SOCK_STREAM, "127.0.0.1:53", "b")};
	assert_int_equal(systemd_adopt(c, fds, 2, false, err, sizeof(err)), 0);
	assert_int_equal(c->n_listens, 1);
	assert_int_equal(c->listens[0].passed_fd[0], 3);
	assert_int_equal(c->listens[0].passed_fd[1], 4);
	free(c);
}

/* Another port, another address, or the other type: no match, a listener
 * of the socket's own kind; what the config listens on itself is bound. */
static void unmatched_become_listeners(void **state)
{
	(void)state;
	struct config *c = fresh();
	char err[128];
	listen_on(c, "udp://127.0.0.1:53");
	listen_on(c, "tls://[::1]:853");
	struct systemd_fd fds[] = {
		passed(3, SOCK_STREAM, "127.0.0.1:53", ""),   /* the listener is UDP only */
		passed(4, SOCK_DGRAM, "127.0.0.2:53", ""),    /* another address */
		passed(5, SOCK_STREAM, "[::1]:853", ""),      /* the DoT listener's */
		passed(6, SOCK_STREAM, "[::1]:8443", "https"), /* named: that kind */
	};
	assert_int_equal(systemd_adopt(c, fds, 4, false, err, sizeof(err)), 0);
	assert_int_equal(c->n_listens, 5);
	assert_int_equal(c->listens[0].passed_fd[0], 0);
	assert_int_equal(c->listens[0].passed_fd[1], 0);
	assert_int_equal(c->listens[1].passed_fd[1], 5);
	assert_int_equal(c->listens[2].protos, LISTEN_TCP);
	assert_string_equal(c->listens[2].text, "127.0.0.1:53");
	assert_int_equal(c->listens[2].passed_fd[1], 3);
	assert_int_equal(c->listens[3].protos, LISTEN_UDP);
	assert_string_equal(c->listens[3].text, "127.0.0.2:53");
	assert_int_equal(c->listens[3].passed_fd[0], 4);
	assert_int_equal(c->listens[4].protos, LISTEN_HTTP | LISTEN_TLS);
	assert_string_equal(c->listens[4].text, "[::1]:8443");
	assert_int_equal(c->listens[4].passed_fd[1], 6);
	free(c);
}

/* Two UDP sockets on one address: the first serves the listener, the
 * second one of its own (never two sockets in one part). */
static void one_socket_per_part(void **state)
{
	(void)state;
	struct config *c = fresh();
	char err[128];
	listen_on(c, "udp://127.0.0.1:53");
	struct systemd_fd fds[] = {passed(3, SOCK_DGRAM, "127.0.0.1:53", ""), passed(4, SOCK_DGRAM, "127.0.0.1:53", "")};
	assert_int_equal(systemd_adopt(c, fds, 2, false, err, sizeof(err)), 0);
	assert_int_equal(c->n_listens, 2);
	assert_int_equal(c->listens[0].passed_fd[0], 3);
	assert_int_equal(c->listens[1].passed_fd[0], 4);
	free(c);
}

/* No listener at all (no --listen): every socket makes its own; a second
 * call on a fresh config (a reload's rebuild) gives the same listeners. */
static void same_on_reload(void **state)
{
	(void)state;
	char err[128];
	struct systemd_fd fds[] = {passed(3, SOCK_DGRAM, "127.0.0.1:5300", ""), passed(4, SOCK_STREAM, "127.0.0.1:5300", "")};
	struct config *a = fresh(), *b = fresh();
	assert_int_equal(systemd_adopt(a, fds, 2, false, err, sizeof(err)), 0);
	assert_int_equal(systemd_adopt(b, fds, 2, false, err, sizeof(err)), 0);
	assert_int_equal(a->n_listens, 2);
	assert_int_equal(b->n_listens, 2);
	assert_memory_equal(a->listens, b->listens, 2 * sizeof(a->listens[0]));
	free(a);
	free(b);
}

static void too_many_listeners(void **state)
{
	(void)state;
	struct config *c = fresh();
	char err[128];
	for (int i = 0; i < CONFIG_MAX_LISTENS; i++) {
		char url[64];
		snprintf(url, sizeof(url), "udp://127.0.0.1:%d", 1000 + i);
		listen_on(c, url);
	}
	struct systemd_fd fds[] = {passed(3, SOCK_DGRAM, "127.0.0.1:53", "")};
	assert_int_equal(systemd_adopt(c, fds, 1, false, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "at most"));
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(matches_both_parts),
		cmocka_unit_test(unmatched_become_listeners),
		cmocka_unit_test(one_socket_per_part),
		cmocka_unit_test(same_on_reload),
		cmocka_unit_test(too_many_listeners),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
