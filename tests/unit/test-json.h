/* JSON literals for the unit tests: parse or fail the test with the parser's message.
 * load_quoted() reads ' as " so that tables of JSON stay readable (for values without a
 * '). Include after <cmocka.h>. */
#pragma once

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* NULL stays NULL (an absent object in a table row). */
static inline json_t *load(const char *text)
{
	json_error_t e;
	json_t *j;

	if (!text)
		return NULL;
	j = json_loads(text, JSON_DECODE_ANY, &e);
	if (!j)
		fail_msg("bad test JSON: %s: %s", text, e.text);
	return j;
}

static inline json_t *load_quoted(const char *text)
{
	char *s = strdup(text);
	json_t *j;

	assert_non_null(s);
	for (char *p = s; *p; p++)
		if (*p == '\'')
			*p = '"';
	j = load(s);
	free(s);
	return j;
}
