/* A hibernation request decoded: the v1 CocoonHibernation (operator-webhook.md §1.2:
 * spec.podRef.name, spec.desire Hibernate|Wake, status with a Ready condition) and the
 * legacy cocoon.cis/v1alpha1 Hibernation (§1.3: spec.podName, spec.action hibernate|wake
 * defaulting to hibernate, a flat status with message and lastTransitionTime). Both are
 * served by one engine (hibplan.c), so both land in the same struct hib.
 *
 * The apiserver's schema already refused most bad objects; what remains (a status written
 * by hand, an object from a future version) is refused here with the field named, never
 * guessed at. Strings borrow from the object, which the struct holds a reference to. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/errmsg.h"
#include "cocoon/kube.h"
#include "cocoon/meta.h"
#include "operatord.h"

#define KIND_LEGACY_HIBERNATION "Hibernation"

struct hib *hib_free(struct hib *h)
{
	if (!h)
		return NULL;
	json_decref(h->obj);
	free(h);
	return NULL;
}

/* parent.key as a string: NULL when parent or the member is absent or null. */
static int get_string(const json_t *parent, const char *key, const char *field, const char **ret,
		      char **ret_error)
{
	const json_t *v = json_object_get(parent, key);

	*ret = NULL; /* also on error: callers' locals are never read uninitialised */
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return errmsg_set(ret_error, EINVAL, "%s: expected a string", field);
	*ret = json_string_value(v);
	return 0;
}

static int get_object(const json_t *parent, const char *key, const char *field, const json_t **ret,
		      char **ret_error)
{
	const json_t *v = json_object_get(parent, key);

	*ret = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return errmsg_set(ret_error, EINVAL, "%s: expected an object", field);
	*ret = v;
	return 0;
}

static int get_int(const json_t *parent, const char *key, const char *field, int64_t *ret,
		   char **ret_error)
{
	const json_t *v = json_object_get(parent, key);

	if (!v || json_is_null(v)) {
		*ret = 0;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return errmsg_set(ret_error, EINVAL, "%s: expected an integer >= 0", field);
	*ret = json_integer_value(v);
	return 0;
}

static int get_time(const json_t *parent, const char *key, const char *field, uint64_t *ret,
		    char **ret_error)
{
	const char *s;
	int r;

	r = get_string(parent, key, field, &s, ret_error);
	if (r < 0)
		return r;
	if (isempty(s)) {
		*ret = 0;
		return 0;
	}
	if (kube_time_parse(s, ret) < 0)
		return errmsg_set(ret_error, EINVAL, "%s: expected an RFC 3339 time, got \"%s\"",
				  field, s);
	return 0;
}

/* apiVersion decides; list items and watch events carry it for custom resources, so the
 * kind is only a fallback for hand-made objects. */
static int hib_detect_api(const json_t *obj, enum cs_api *ret, char **ret_error)
{
	const char *api_version, *kind;
	int r;

	r = get_string(obj, "apiVersion", "apiVersion", &api_version, ret_error);
	if (r < 0)
		return r;
	r = get_string(obj, "kind", "kind", &kind, ret_error);
	if (r < 0)
		return r;
	if (!api_version)
		*ret = streq_ptr(kind, KIND_LEGACY_HIBERNATION) ? CS_API_LEGACY : CS_API_V1;
	else if (streq(api_version, META_API_VERSION))
		*ret = CS_API_V1;
	else if (streq(api_version, META_LEGACY_API_VERSION))
		*ret = CS_API_LEGACY;
	else
		return errmsg_set(ret_error, EINVAL, "apiVersion: expected %s or %s, got \"%s\"",
				  META_API_VERSION, META_LEGACY_API_VERSION, api_version);
	return 0;
}

static int hib_parse_finalizers(struct hib *h, const json_t *meta, char **ret_error)
{
	const json_t *list = json_object_get(meta, "finalizers"), *v;
	size_t i;

	if (!list || json_is_null(list))
		return 0;
	if (!json_is_array(list))
		return errmsg_set(ret_error, EINVAL, "metadata.finalizers: expected an array");
	json_array_foreach (list, i, v) {
		if (!json_is_string(v))
			return errmsg_set(ret_error, EINVAL,
					  "metadata.finalizers[%zu]: expected a string", i);
		if (streq(json_string_value(v), OPERATORD_HIB_FINALIZER))
			h->has_finalizer = true;
	}
	return 0;
}

static int hib_parse_metadata(struct hib *h, char **ret_error)
{
	const json_t *meta;
	const char *deletion;
	int r;

	r = get_object(h->obj, "metadata", "metadata", &meta, ret_error);
	if (r < 0)
		return r;
	if ((r = get_string(meta, "name", "metadata.name", &h->name, ret_error)) < 0 ||
	    (r = get_string(meta, "namespace", "metadata.namespace", &h->ns, ret_error)) < 0 ||
	    (r = get_string(meta, "uid", "metadata.uid", &h->uid, ret_error)) < 0 ||
	    (r = get_int(meta, "generation", "metadata.generation", &h->generation, ret_error)) <
		0 ||
	    (r = get_string(meta, "deletionTimestamp", "metadata.deletionTimestamp", &deletion,
			    ret_error)) < 0)
		return r;
	h->name = h->name ?: "";
	h->ns = h->ns ?: "";
	h->uid = h->uid ?: "";
	h->deleting = !isempty(deletion);
	return hib_parse_finalizers(h, meta, ret_error);
}

static int hib_parse_v1_spec(struct hib *h, const json_t *spec, char **ret_error)
{
	const json_t *pod_ref;
	int r;

	r = get_object(spec, "podRef", "spec.podRef", &pod_ref, ret_error);
	if (r < 0)
		return r;
	r = get_string(pod_ref, "name", "spec.podRef.name", &h->pod_name, ret_error);
	if (r < 0)
		return r;
	r = get_string(spec, "desire", "spec.desire", &h->desire_raw, ret_error);
	if (r < 0)
		return r;
	h->desire_raw = h->desire_raw ?: "";
	if (streq(h->desire_raw, "Hibernate"))
		h->desire = HIB_DESIRE_HIBERNATE;
	else if (streq(h->desire_raw, "Wake"))
		h->desire = HIB_DESIRE_WAKE;
	return 0;
}

/* The Ready condition carries the deadline clock (its lastTransitionTime) and, for
 * Failed, the failure message; the other conditions are only type-checked. */
static int hib_parse_v1_status(struct hib *h, const json_t *status, char **ret_error)
{
	const json_t *conditions, *c;
	const char *type;
	size_t i;
	int r;

	if ((r = get_string(status, "phase", "status.phase", &h->phase, ret_error)) < 0 ||
	    (r = get_string(status, "vmName", "status.vmName", &h->vm_name, ret_error)) < 0 ||
	    (r = get_int(status, "observedGeneration", "status.observedGeneration",
			 &h->observed_generation, ret_error)) < 0)
		return r;
	conditions = json_object_get(status, "conditions");
	if (!conditions || json_is_null(conditions))
		return 0;
	if (!json_is_array(conditions))
		return errmsg_set(ret_error, EINVAL, "status.conditions: expected an array");
	json_array_foreach (conditions, i, c) {
		if (!json_is_object(c))
			return errmsg_set(ret_error, EINVAL,
					  "status.conditions[%zu]: expected an object", i);
		r = get_string(c, "type", "status.conditions[].type", &type, ret_error);
		if (r < 0)
			return r;
		if (!streq_ptr(type, "Ready"))
			continue;
		if ((r = get_string(c, "message", "status.conditions[Ready].message", &h->message,
				    ret_error)) < 0 ||
		    (r = get_time(c, "lastTransitionTime",
				  "status.conditions[Ready].lastTransitionTime", &h->ready_ltt_usec,
				  ret_error)) < 0)
			return r;
	}
	return 0;
}

static int hib_parse_legacy_spec(struct hib *h, const json_t *spec, char **ret_error)
{
	int r;

	r = get_string(spec, "podName", "spec.podName", &h->pod_name, ret_error);
	if (r < 0)
		return r;
	r = get_string(spec, "action", "spec.action", &h->desire_raw, ret_error);
	if (r < 0)
		return r;
	h->desire_raw = h->desire_raw ?: "";
	/* The legacy CRD defaults action to hibernate; an object stored before the default
	 * existed may still lack it. */
	if (isempty(h->desire_raw) || streq(h->desire_raw, "hibernate"))
		h->desire = HIB_DESIRE_HIBERNATE;
	else if (streq(h->desire_raw, "wake"))
		h->desire = HIB_DESIRE_WAKE;
	return 0;
}

static int hib_parse_legacy_status(struct hib *h, const json_t *status, char **ret_error)
{
	const char *snapshot_ref;
	int r;

	if ((r = get_string(status, "phase", "status.phase", &h->phase, ret_error)) < 0 ||
	    (r = get_string(status, "vmName", "status.vmName", &h->vm_name, ret_error)) < 0 ||
	    (r = get_string(status, "message", "status.message", &h->message, ret_error)) < 0 ||
	    (r = get_string(status, "snapshotRef", "status.snapshotRef", &snapshot_ref,
			    ret_error)) < 0)
		return r;
	return get_time(status, "lastTransitionTime", "status.lastTransitionTime",
			&h->ready_ltt_usec, ret_error);
}

int hib_parse(const json_t *obj, struct hib **ret, char **ret_error)
{
	_cleanup_(hib_freep) struct hib *h = NULL;
	const json_t *spec, *status;
	int r;

	if (!json_is_object(obj))
		return errmsg_set(ret_error, EINVAL, "hibernation: expected an object");
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->obj = json_incref((json_t *)obj);
	r = hib_detect_api(obj, &h->api, ret_error);
	if (r < 0)
		return r;
	r = hib_parse_metadata(h, ret_error);
	if (r < 0)
		return r;
	if ((r = get_object(obj, "spec", "spec", &spec, ret_error)) < 0 ||
	    (r = get_object(obj, "status", "status", &status, ret_error)) < 0)
		return r;
	r = h->api == CS_API_V1 ? hib_parse_v1_spec(h, spec, ret_error) :
				   hib_parse_legacy_spec(h, spec, ret_error);
	if (r < 0)
		return r;
	/* The status is ours to rewrite: a malformed one (an older writer's timestamp, a hand
	 * edit) reads as empty rather than blocking the object — its deletion included. */
	r = h->api == CS_API_V1 ? hib_parse_v1_status(h, status, NULL) :
				   hib_parse_legacy_status(h, status, NULL);
	if (r < 0) {
		h->phase = h->vm_name = h->message = NULL;
		h->observed_generation = 0;
		h->ready_ltt_usec = 0;
	}
	h->pod_name = h->pod_name ?: "";
	h->phase = h->phase ?: "";
	if (isempty(h->vm_name))
		h->vm_name = NULL;
	*ret = TAKE_PTR(h);
	return 0;
}
