/* json.h -- what the JSON of the control socket (obs/metrics.c,
 * core/daemon.c, control/server.c) needs on top of jansson, which does
 * the writing and the escaping: a string from bytes that may not be UTF-8
 * (a URL from the command line), which json_string() refuses with NULL --
 * and json_object_set_new() then drops the member without a word. */
#pragma once
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

/** s as a JSON string: itself when it is UTF-8, else a copy with every byte
 * above 0x7f made '?'. NULL only for lack of memory. */
static inline json_t *json_text(const char *s)
{
	json_t *j = json_string(s);
	if (j)
		return j;
	char *copy = strdup(s);
	if (!copy)
		return NULL;
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p > 0x7f)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}
