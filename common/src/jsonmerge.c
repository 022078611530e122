/* JSON merge patch, RFC 7386 (see jsonmerge.h): the diff the operator sends to /status and
 * the apply that tests and the API double use to check it. Recursion follows the documents'
 * nesting, which jansson's parser caps at 2048 levels. */
#include <errno.h>

#include "cocoon/jsonmerge.h"
#include "cocoon/macro.h"

/* The patch between two objects, NULL when they hold the same members. */
static int object_diff(const json_t *old, const json_t *new, json_t **ret)
{
	json_auto_t *patch = json_object();
	const char *key;
	json_t *v;
	int r;

	if (!patch)
		return -ENOMEM;
	/* Members that went away: null removes them (RFC 7386 §2). */
	json_object_foreach ((json_t *)old, key, v) {
		if (!json_object_get(new, key) && json_object_set_new(patch, key, json_null()) < 0)
			return -ENOMEM;
	}
	json_object_foreach ((json_t *)new, key, v) {
		const json_t *was = json_object_get(old, key);
		json_t *sub = NULL;

		if (json_is_object(was) && json_is_object(v)) {
			r = object_diff(was, v, &sub);
			if (r < 0)
				return r;
		} else if (!was || !json_equal(was, v)) {
			sub = json_deep_copy(v);
			if (!sub)
				return -ENOMEM;
		}
		if (sub && json_object_set_new(patch, key, sub) < 0)
			return -ENOMEM;
	}
	*ret = json_object_size(patch) > 0 ? TAKE_PTR(patch) : NULL;
	return 0;
}

int json_merge_diff(const json_t *old, const json_t *new, json_t **ret)
{
	json_t *patch;

	if (!old || !new || !ret)
		return -EINVAL;
	if (json_is_object(old) && json_is_object(new))
		return object_diff(old, new, ret);
	if (json_equal(old, new)) {
		*ret = NULL;
		return 0;
	}
	patch = json_deep_copy(new);
	if (!patch)
		return -ENOMEM;
	*ret = patch;
	return 0;
}

static int object_apply(json_t *target, const json_t *patch)
{
	const char *key;
	json_t *v;
	int r;

	json_object_foreach ((json_t *)patch, key, v) {
		json_t *child;

		if (json_is_null(v)) {
			/* Removing a member that is not there is no error. */
			(void)json_object_del(target, key);
			continue;
		}
		if (!json_is_object(v)) {
			child = json_deep_copy(v);
			if (!child || json_object_set_new(target, key, child) < 0)
				return -ENOMEM;
			continue;
		}
		/* An object patch merges into what is there, or into {} when that is not an
		 * object, which also drops the patch's own null members. */
		child = json_object_get(target, key);
		if (!json_is_object(child)) {
			child = json_object();
			if (!child || json_object_set_new(target, key, child) < 0)
				return -ENOMEM;
		}
		r = object_apply(child, v);
		if (r < 0)
			return r;
	}
	return 0;
}

int json_merge_apply(json_t *target, const json_t *patch)
{
	if (!json_is_object(target) || !json_is_object(patch))
		return -EINVAL;
	return object_apply(target, patch);
}
