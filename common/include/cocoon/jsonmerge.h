/* JSON merge patch (RFC 7386): the body of PATCH application/merge-patch+json, which is how
 * the suite writes annotations and /status (operator-webhook.md §2.8, kube-api.md).
 *
 * A merge patch cannot set an object member to null (null means "remove"), so a document
 * whose objects hold null members round-trips without those members; nulls inside arrays
 * are kept, since arrays are replaced whole. */
#pragma once

#include <jansson.h>

/* The merge patch that turns old into new: changed and added members, removed members as
 * null, nested objects recursed, arrays and scalars replaced whole (so is the whole document
 * when either side is not an object). Equality is jansson's: object member order does not
 * matter, an integer never equals a real. *ret is NULL when old and new are equal (nothing
 * to write), else a new reference. -EINVAL for a NULL argument, -ENOMEM. */
int json_merge_diff(const json_t *old, const json_t *new, json_t **ret);

/* Applies an object patch to an object in place (RFC 7386 §2). A non-object patch replaces
 * the whole document, which cannot happen in place: -EINVAL, as for a non-object target.
 * -ENOMEM may leave target partly patched. */
int json_merge_apply(json_t *target, const json_t *patch);
