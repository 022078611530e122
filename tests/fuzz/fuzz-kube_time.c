/* Fuzz kube_time_parse (Lease renewTime/acquireTime and Event timestamps come from the API
 * server and other writers): arbitrary bytes never crash it, a refusal leaves the output
 * alone, and whatever parses prints as MicroTime that parses back to the same instant and
 * as Time that parses back to the same second. Any violation aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 10000-01-01T00:00:00Z: an offset can carry a 9999-12-31 time past it, and RFC 3339 has
 * no way to print that (the formatter clamps). */
#define YEAR_10000_USEC (253402300800ULL * 1000000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[KUBE_TIME_MAX];
	uint64_t t = 42, t2 = 0;
	char *s;

	s = strndup((const char *)data, size);
	if (!s)
		return 0;
	if (kube_time_parse(s, &t) < 0) {
		if (t != 42)
			abort();
		free(s);
		return 0;
	}
	if (t < YEAR_10000_USEC) {
		if (kube_time_parse(kube_time_format(t, true, buf), &t2) < 0 || t2 != t)
			abort();
		if (strlen(buf) != 27 || buf[19] != '.' || buf[26] != 'Z')
			abort();
		if (kube_time_parse(kube_time_format(t, false, buf), &t2) < 0 ||
		    t2 != t / 1000000 * 1000000 || strlen(buf) != 20)
			abort();
	}
	free(s);
	return 0;
}
