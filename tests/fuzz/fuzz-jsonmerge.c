/* Fuzz the merge-patch diff (RFC 7386) on two JSON documents read back to back from the
 * input: old, then new. Whatever they hold, the diff is NULL exactly when they are equal,
 * and applying it to old gives new, up to the null object members a merge patch cannot
 * express (jsonmerge.h); a non-object new is the patch itself. Anything else aborts. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "cocoon/jsonmerge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* v without null object members, at any depth outside arrays (arrays are replaced whole). */
static void strip_null_members(json_t *v)
{
	const char *key;
	json_t *member, *tmp;

	json_object_foreach_safe (v, tmp, key, member) {
		if (json_is_null(member))
			json_object_del(v, key);
		else
			strip_null_members(member);
	}
}

static void check(const json_t *old, const json_t *new)
{
	json_t *patch = NULL, *target, *want;

	if (json_merge_diff(old, new, &patch) < 0)
		abort(); /* only -ENOMEM is possible, and libFuzzer's limit is far above these */
	if ((patch == NULL) != (json_equal(old, new) != 0))
		abort();
	if (!patch)
		return;
	if (!json_is_object(new)) {
		if (!json_equal(patch, new))
			abort();
		json_decref(patch);
		return;
	}
	target = json_is_object(old) ? json_deep_copy(old) : json_object();
	want = json_deep_copy(new);
	if (!target || !want || json_merge_apply(target, patch) < 0)
		abort();
	strip_null_members(target);
	strip_null_members(want);
	if (!json_equal(target, want))
		abort();
	json_decref(want);
	json_decref(target);
	json_decref(patch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t e;
	json_t *old, *new;
	size_t used;

	old = json_loadb((const char *)data, size, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &e);
	if (!old)
		return 0;
	used = (size_t)e.position;
	new = used <= size ? json_loadb((const char *)data + used, size - used, JSON_DECODE_ANY, NULL)
			   : NULL;
	if (new) {
		check(old, new);
		check(new, old);
		json_decref(new);
	}
	json_decref(old);
	return 0;
}
