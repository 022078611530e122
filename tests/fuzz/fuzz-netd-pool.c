/* Fuzz the pool.json parser (netd/pool.c). Whatever parses must format to text that parses
 * back to an equal pool and formats to the same bytes again; a refusal always says why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../netd/netd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct netd_pool *p = NULL, *q = NULL;
	char *t1 = NULL, *t2 = NULL, *why = NULL;

	if (netd_pool_parse((const char *)data, size, &p, &why) < 0) {
		if (!why)
			abort();
		free(why);
		return 0;
	}
	if (netd_pool_format(p, &t1) < 0 || netd_pool_parse(t1, strlen(t1), &q, &why) < 0 ||
	    !netd_pool_equal(p, q) || !streq_ptr(p->updated_at, q->updated_at) ||
	    netd_pool_format(q, &t2) < 0 || !streq(t1, t2))
		abort();
	free(t1);
	free(t2);
	netd_pool_free(p);
	netd_pool_free(q);
	return 0;
}
