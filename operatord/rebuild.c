/* The rebuild history of a CocoonSet's sub-agent slots (operator-webhook.md §2.6): the
 * cocoonset.cocoonstack.io/rebuild-history annotation, {"<slot>":{"count":N,"lastDeleted":
 * "<RFC3339Nano>"}}, and the backoff between rebuilds of a terminal sub-agent.
 *
 * The history only slows rebuilds down, so a damaged annotation must never stop a pass:
 * corrupt JSON, null or a non-object reads as empty, and an entry that does not decode is
 * skipped on its own (the original dropped the whole map for one bad entry; keeping the
 * good ones keeps their backoff and dead-letter counts). The next write drops what was
 * skipped. Entries are kept sorted by slot, which is also the order they are written in. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/kube.h"
#include "cocoon/macro.h"
#include "operatord.h"

/* A slot key: decimal digits, 1..INT_MAX (slot 0 is the main agent, never rebuilt). */
static bool slot_parse(const char *s, int *ret)
{
	long v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (*s - '0');
		if (v > INT_MAX)
			return false;
	}
	if (v < 1)
		return false;
	*ret = (int)v;
	return true;
}

/* One {"count":N,"lastDeleted":"…"}; false for anything else. A missing member is Go's
 * zero value; a time before 1970 (Go's zero time is year 1) reads as "long ago". */
static bool entry_parse(const json_t *v, unsigned *ret_count, uint64_t *ret_when)
{
	const json_t *count = json_object_get(v, "count");
	const json_t *last = json_object_get(v, "lastDeleted");
	uint64_t when = 0;
	int r;

	if (!json_is_object(v))
		return false;
	if (count && !json_is_null(count) &&
	    (!json_is_integer(count) || json_integer_value(count) < 0 ||
	     json_integer_value(count) > UINT_MAX))
		return false;
	if (last && !json_is_null(last)) {
		if (!json_is_string(last))
			return false;
		r = kube_time_parse(json_string_value(last), &when);
		if (r == -ERANGE)
			when = 0;
		else if (r < 0)
			return false;
	}
	*ret_count = (unsigned)json_integer_value(count);
	*ret_when = when;
	return true;
}

int rebuild_history_parse(const char *annotation, struct rebuild_history *ret)
{
	struct rebuild_history h = {};
	json_auto_t *root = NULL;
	const char *key;
	json_t *v;
	int r;

	if (!isempty(annotation))
		root = json_loads(annotation, JSON_DECODE_ANY, NULL);
	json_object_foreach (root, key, v) {
		unsigned count;
		uint64_t when;
		int slot;

		if (!slot_parse(key, &slot) || !entry_parse(v, &count, &when))
			continue;
		r = rebuild_history_set(&h, slot, count, when);
		if (r < 0) {
			rebuild_history_done(&h);
			return r;
		}
	}
	*ret = h;
	return 0;
}

void rebuild_history_done(struct rebuild_history *h)
{
	free(h->v);
	*h = (struct rebuild_history){};
}

/* The index of slot, or where it would go to keep the array sorted. */
static size_t slot_index(const struct rebuild_history *h, int slot)
{
	size_t i = 0;

	while (i < h->n && h->v[i].slot < slot)
		i++;
	return i;
}

const struct rebuild_entry *rebuild_history_get(const struct rebuild_history *h, int slot)
{
	size_t i = slot_index(h, slot);

	return i < h->n && h->v[i].slot == slot ? &h->v[i] : NULL;
}

int rebuild_history_set(struct rebuild_history *h, int slot, unsigned count, uint64_t when)
{
	struct rebuild_entry *v;
	size_t i;

	if (slot < 1)
		return -EINVAL;
	i = slot_index(h, slot);
	if (i == h->n || h->v[i].slot != slot) {
		v = reallocarray(h->v, h->n + 1, sizeof(*v));
		if (!v)
			return -ENOMEM;
		h->v = v;
		memmove(&h->v[i + 1], &h->v[i], (h->n - i) * sizeof(*v));
		h->n++;
	}
	h->v[i] = (struct rebuild_entry){ .slot = slot, .count = count, .last_deleted_usec = when };
	return 0;
}

void rebuild_history_drop(struct rebuild_history *h, int slot)
{
	size_t i = slot_index(h, slot);

	if (i == h->n || h->v[i].slot != slot)
		return;
	memmove(&h->v[i], &h->v[i + 1], (h->n - i - 1) * sizeof(h->v[0]));
	h->n--;
}

/* Go's time.RFC3339Nano in UTC: the fraction only when non-zero, trailing zeros trimmed
 * ("…:05Z", "…:05.5Z", "…:05.000123Z"). We keep microseconds, so at most six digits. */
static void format_rfc3339nano(uint64_t usec, char buf[static KUBE_TIME_MAX])
{
	unsigned frac = (unsigned)(usec % USEC_PER_SEC);
	size_t n;

	kube_time_format(usec - frac, false, buf);
	if (frac == 0)
		return;
	n = strlen(buf) - 1; /* the "Z" */
	n += (size_t)snprintf(buf + n, KUBE_TIME_MAX - n, ".%06u", frac);
	while (buf[n - 1] == '0')
		n--;
	snprintf(buf + n, KUBE_TIME_MAX - n, "Z");
}

int rebuild_history_format(const struct rebuild_history *h, int replicas, char **ret)
{
	json_auto_t *root = json_object();
	char *s;

	if (!root)
		return -ENOMEM;
	for (size_t i = 0; i < h->n; i++) {
		const struct rebuild_entry *e = &h->v[i];
		char key[16], when[KUBE_TIME_MAX];
		json_t *entry;

		/* Slots scaled away take their history with them (§2.6). */
		if (e->slot > replicas)
			continue;
		snprintf(key, sizeof key, "%d", e->slot);
		format_rfc3339nano(e->last_deleted_usec, when);
		entry = json_pack("{s:I,s:s}", "count", (json_int_t)e->count, "lastDeleted", when);
		if (!entry || json_object_set_new(root, key, entry) < 0)
			return -ENOMEM;
	}
	s = json_dumps(root, JSON_COMPACT);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

uint64_t rebuild_backoff_usec(unsigned prior_count)
{
	switch (prior_count) {
	case 0:
		return 0;
	case 1:
		return 1 * USEC_PER_SEC;
	case 2:
		return 5 * USEC_PER_SEC;
	default:
		return 30 * USEC_PER_SEC;
	}
}
