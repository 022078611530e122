/* Fuzz the rebuild-history annotation (operator-webhook.md §2.6) on arbitrary bytes: reading
 * never fails (a damaged annotation is empty or loses only its bad entries), the table is
 * sorted with unique slots >= 1, and what we write reads back to the same table and the
 * same bytes, with the slots above replicas gone. The first byte picks replicas. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../operatord/operatord.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_sorted(const struct rebuild_history *h)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->v[i].slot < 1 || (i > 0 && h->v[i - 1].slot >= h->v[i].slot) ||
		    rebuild_history_get(h, h->v[i].slot) != &h->v[i])
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rebuild_history h = {}, back = {};
	char *text, *written = NULL, *again = NULL;
	size_t kept = 0;
	int replicas;

	if (size < 1)
		return 0;
	replicas = data[0] % 16;
	text = strndup((const char *)data + 1, size - 1);
	if (!text || rebuild_history_parse(text, &h) < 0)
		abort();
	check_sorted(&h);
	for (size_t i = 0; i < h.n; i++)
		kept += h.v[i].slot <= replicas;
	if (rebuild_history_format(&h, replicas, &written) < 0 ||
	    rebuild_history_parse(written, &back) < 0 || back.n != kept)
		abort();
	check_sorted(&back);
	for (size_t i = 0; i < back.n; i++) {
		const struct rebuild_entry *e = rebuild_history_get(&h, back.v[i].slot);

		/* Times before 1970 read as 0, and 0 is written as 1970: both sides agree. */
		if (!e || e->count != back.v[i].count ||
		    e->last_deleted_usec != back.v[i].last_deleted_usec)
			abort();
	}
	if (rebuild_history_format(&back, replicas, &again) < 0 || strcmp(written, again) != 0)
		abort();
	if (h.n > 0) {
		rebuild_history_drop(&h, h.v[0].slot);
		check_sorted(&h);
	}
	(void)rebuild_backoff_usec(h.n > 0 ? h.v[0].count : 0);
	rebuild_history_done(&h);
	rebuild_history_done(&back);
	free(again);
	free(written);
	free(text);
	return 0;
}
