/* Fuzz quantity_parse: whatever parses must print a canonical string that parses back to
 * the same value, and printing is stable after one round. The only allowed change in that
 * round is Go's own: a whole binary value that 1024 does not divide prints without a
 * suffix ("2000") and reads back as decimal ("2k"). Any violation aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/macro.h"
#include "cocoon/quantity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void print(const struct quantity *q, char *buf)
{
	if (quantity_format(q, buf, QUANTITY_STRING_MAX) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char c1[QUANTITY_STRING_MAX], c2[QUANTITY_STRING_MAX], c3[QUANTITY_STRING_MAX];
	struct quantity q, q1, q2;
	int64_t milli;
	char *s;

	s = strndup((const char *)data, size);
	if (!s)
		return 0;
	if (quantity_parse(s, &q) < 0) {
		free(s);
		return 0;
	}
	print(&q, c1);
	if (quantity_parse(c1, &q1) < 0 || quantity_cmp(&q, &q1) != 0)
		abort();
	print(&q1, c2);
	if (!streq(c1, c2) && !(q.format == QUANTITY_BINARY_SI && !strchr(c1, 'i')))
		abort();
	if (quantity_parse(c2, &q2) < 0 || quantity_cmp(&q, &q2) != 0)
		abort();
	print(&q2, c3);
	if (!streq(c2, c3) || !quantity_is_canonical(c3))
		abort();
	if (quantity_equal_str(s, c3) != 1)
		abort();
	/* Value() is the ceiling away from zero: never closer to zero than the value. */
	if (quantity_value(&q) != quantity_value(&q2) ||
	    (q.nano > 0 && (__int128)quantity_value(&q) * 1000000000 < q.nano) ||
	    (q.nano < 0 && (__int128)quantity_value(&q) * 1000000000 > q.nano))
		abort();
	if (quantity_milli_value(&q, &milli) == 0 && q.nano > 0 &&
	    (__int128)milli * 1000000 < q.nano)
		abort();
	free(s);
	return 0;
}
