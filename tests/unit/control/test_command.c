/* test_command.c -- control/command.c: the control socket's request parser. */
#include "test.h"
#include "control/command.h"

static char err[512];

static int parse(const char *s, struct command *c)
{
	return command_parse(s, strlen(s), c, err, sizeof(err));
}

static void the_four_commands(void **state)
{
	(void)state;
	struct command c;
	assert_int_equal(parse("status", &c), 0);
	assert_int_equal(c.kind, COMMAND_STATUS);
	assert_int_equal(parse("stats", &c), 0);
	assert_int_equal(c.kind, COMMAND_STATS);
	assert_int_equal(parse("  reload\t", &c), 0); /* spaces and tabs around words */
	assert_int_equal(c.kind, COMMAND_RELOAD);
	assert_int_equal(parse("cache-flush", &c), 0);
	assert_int_equal(c.kind, COMMAND_CACHE_FLUSH);
	assert_false(c.has_name);
	assert_string_equal(command_name(COMMAND_CACHE_FLUSH), "cache-flush");
}

static void a_final_cr_is_allowed(void **state)
{
	(void)state;
	struct command c;
	assert_int_equal(parse("status\r", &c), 0); /* socat CRLF, telnet */
	assert_int_equal(parse("status\r\r", &c), -EINVAL);
}

static void flush_a_name(void **state)
{
	(void)state;
	struct command c;
	uint8_t want[KNOT_DNAME_MAXLEN];
	assert_non_null(knot_dname_from_str(want, "Example.COM.", sizeof(want)));
	assert_int_equal(parse("cache-flush Example.COM", &c), 0); /* the final dot is optional */
	assert_true(c.has_name);
	assert_false(c.exact);
	assert_memory_equal(c.name, want, knot_dname_size(want));
	assert_string_equal(c.name_text, "Example.COM.");
	assert_int_equal(parse("cache-flush --exact www.example.", &c), 0);
	assert_true(c.has_name && c.exact);
	assert_string_equal(c.name_text, "www.example.");
	assert_int_equal(parse("cache-flush .", &c), 0);
	assert_true(c.has_name);
	assert_int_equal(c.name[0], 0);
}

static void bad_flush_arguments(void **state)
{
	(void)state;
	struct command c;
	assert_int_equal(parse("cache-flush --exact", &c), -EINVAL);
	assert_non_null(strstr(err, "needs a NAME"));
	assert_int_equal(parse("cache-flush a.example. b.example.", &c), -EINVAL);
	assert_non_null(strstr(err, "\"b.example.\""));
	assert_int_equal(parse("cache-flush --below a.example.", &c), -EINVAL);
	assert_non_null(strstr(err, "--below"));
	char label64[100];
	memset(label64, 'a', 64);
	memcpy(label64 + 64, ".example", 9);
	char line[200];
	snprintf(line, sizeof(line), "cache-flush %s", label64);
	assert_int_equal(parse(line, &c), -EINVAL); /* a label of 64 */
	assert_non_null(strstr(err, "not a domain name"));
	assert_int_equal(parse("cache-flush a..b", &c), -EINVAL);
}

static void unknown_and_extra_words(void **state)
{
	(void)state;
	struct command c;
	assert_int_equal(parse("STATUS", &c), -EINVAL); /* case matters */
	assert_non_null(strstr(err, "unknown command \"STATUS\""));
	assert_int_equal(parse("status now", &c), -EINVAL);
	assert_non_null(strstr(err, "status takes no argument"));
	assert_int_equal(parse("", &c), -EINVAL);
	assert_non_null(strstr(err, "empty request"));
	assert_int_equal(parse(" \t ", &c), -EINVAL);
	assert_int_equal(parse("a b c d e f g h i", &c), -EINVAL);
	assert_non_null(strstr(err, "more than 8 words"));
}

static void bytes_that_are_no_words(void **state)
{
	(void)state;
	struct command c;
	assert_int_equal(command_parse("sta\0tus", 7, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "\\x00 at offset 3"));
	assert_int_equal(parse("status\n", &c), -EINVAL); /* the newline is not the parser's */
	assert_int_equal(parse("st\xc3\xa4tus", &c), -EINVAL);
	assert_non_null(strstr(err, "\\xc3"));
	/* the message is printable ASCII whatever came */
	for (const char *p = err; *p; p++)
		assert_true(*p >= ' ' && *p < 0x7f);
}

static void a_long_word_is_quoted_short(void **state)
{
	(void)state;
	struct command c;
	char line[900];
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	assert_int_equal(parse(line, &c), -EINVAL);
	assert_true(strlen(err) < 200);
	assert_non_null(strstr(err, "...\""));
}

static void the_length_cap(void **state)
{
	(void)state;
	struct command c;
	char line[COMMAND_REQUEST_MAX + 8];
	memset(line, ' ', sizeof(line));
	memcpy(line, "status", 6);
	assert_int_equal(command_parse(line, COMMAND_REQUEST_MAX - 1, &c, err, sizeof(err)), 0);
	assert_int_equal(command_parse(line, COMMAND_REQUEST_MAX, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "longer than 1023 bytes"));
}

static void a_small_error_buffer(void **state)
{
	(void)state;
	struct command c;
	char small[8];
	assert_int_equal(command_parse("nope", 4, &c, small, sizeof(small)), -EINVAL);
	assert_int_equal(strlen(small), sizeof(small) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_four_commands),
		cmocka_unit_test(a_final_cr_is_allowed),
		cmocka_unit_test(flush_a_name),
		cmocka_unit_test(bad_flush_arguments),
		cmocka_unit_test(unknown_and_extra_words),
		cmocka_unit_test(bytes_that_are_no_words),
		cmocka_unit_test(a_long_word_is_quoted_short),
		cmocka_unit_test(the_length_cap),
		cmocka_unit_test(a_small_error_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
