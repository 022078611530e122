/* Fuzz the admission decoder's fast JSON reader against jansson: whatever the bytes, when
 * fastjson_load() takes them it must give exactly what json_loadb(JSON_REJECT_DUPLICATES)
 * gives (the same values, members in the same order, reals to the last bit), and when it
 * declines, jansson decides. A difference is a body that would decode differently
 * depending on the path it took. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../webhookd/webhookd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *fast = NULL, *slow;
	char *a, *b;

	if (fastjson_load(data, size, &fast) < 0)
		return 0;
	slow = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!slow || !json_equal(fast, slow))
		abort();
	a = json_dumps(fast, JSON_COMPACT | JSON_ENCODE_ANY);
	b = json_dumps(slow, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!a || !b || strcmp(a, b) != 0)
		abort();
	free(a);
	free(b);
	json_decref(fast);
	json_decref(slow);
	return 0;
}
