/* /validate (operator-webhook.md §3.4): the scale-down guard. A cocoon agent is a stateful
 * VM, so lowering the replicas of a cocoon Deployment or StatefulSet would destroy state;
 * users suspend single agents with a CocoonHibernation instead.
 *
 * Two ways to scale down reach us: an UPDATE of the workload itself, gated on the OLD
 * object's tolerations so that one patch cannot drop the toleration and scale down at once
 * (the original's G1 bypass), and an UPDATE of the scale subresource, whose autoscaling/v1
 * Scale objects say nothing about tolerations: there the parent workload decides, and when
 * it cannot be read the request is denied (fail closed). The parent is fetched by the
 * caller and passed in, so this file stays pure. */
#include <errno.h>
#include <stdint.h>

#include "cocoon/meta.h"
#include "webhookd.h"

/* spec.replicas as an int32; absent or null gives absent (the apps controllers default a
 * Deployment's nil replicas to 1; a Scale's omitted replicas is 0). */
static int decode_replicas(const json_t *obj, json_int_t absent, json_int_t *ret)
{
	const json_t *spec, *v;

	if (!json_is_object(obj))
		return -EINVAL;
	spec = json_object_get(obj, "spec");
	if (spec && !json_is_null(spec) && !json_is_object(spec))
		return -EINVAL;
	v = json_object_get(spec, "replicas");
	if (!v || json_is_null(v)) {
		*ret = absent;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
	    json_integer_value(v) > INT32_MAX)
		return -EINVAL;
	*ret = json_integer_value(v);
	return 0;
}

static bool object_or_absent(const json_t *v)
{
	return !v || json_is_null(v) || json_is_object(v);
}

/* Whether the pod template tolerates virtual-kubelet.io/provider; -EINVAL when
 * spec.template.spec.tolerations does not decode as a list of tolerations. */
static int decode_tolerates_cocoon(const json_t *obj, bool *ret)
{
	const json_t *spec = json_object_get(obj, "spec");
	const json_t *template = json_object_get(spec, "template");
	const json_t *tolerations, *t;
	size_t i;

	if (!json_is_object(obj) || !object_or_absent(spec) || !object_or_absent(template) ||
	    !object_or_absent(json_object_get(template, "spec")))
		return -EINVAL;
	tolerations = json_object_get(json_object_get(template, "spec"), "tolerations");
	if (tolerations && !json_is_null(tolerations) && !json_is_array(tolerations))
		return -EINVAL;
	json_array_foreach (tolerations, i, t) {
		const json_t *key = json_object_get(t, "key");

		if (!object_or_absent(t) || (key && !json_is_null(key) && !json_is_string(key)))
			return -EINVAL;
	}
	/* the template has the shape of a pod: .spec.tolerations */
	*ret = meta_pod_tolerates_cocoon(template);
	return 0;
}

static int check_scale_down(const struct admission_request *req, json_int_t old_replicas,
			    json_int_t new_replicas, struct admission_verdict *ret)
{
	if (new_replicas >= old_replicas)
		return admission_verdict_allow(ret, ADMISSION_RESULT_ALLOW, "");
	return admission_verdict_deny(
	    ret, ADMISSION_RESULT_DENY, "",
	    "cocoon-webhook: scale-down blocked for cocoon %s %s/%s (%" JSON_INTEGER_FORMAT
	    " -> %" JSON_INTEGER_FORMAT
	    "). Use a CocoonHibernation CR to suspend individual agents.",
	    req->kind, req->ns, req->name, old_replicas, new_replicas);
}

static int validate_scale(const struct admission_request *req, const struct workload_parent *parent,
			  struct admission_verdict *ret)
{
	json_int_t old_replicas, new_replicas;
	bool cocoon;

	if (decode_replicas(req->old_object, 0, &old_replicas) < 0 ||
	    decode_replicas(req->object, 0, &new_replicas) < 0)
		return admission_verdict_allow(ret, ADMISSION_RESULT_SKIPPED, "decode");
	if (!streq(req->resource, "deployments") && !streq(req->resource, "statefulsets"))
		return admission_verdict_allow(ret, ADMISSION_RESULT_SKIPPED, "no_parent");
	if (!parent)
		return ADMISSION_NEED_FETCH;
	switch (parent->status) {
	case WORKLOAD_PARENT_NOT_FOUND:
		return admission_verdict_allow(ret, ADMISSION_RESULT_SKIPPED, "no_parent");
	case WORKLOAD_PARENT_ERROR:
		return admission_verdict_deny(ret, ADMISSION_RESULT_ERROR, "parent_fetch",
					      "cocoon-webhook: cannot verify parent workload: %s",
					      parent->error ? parent->error : "unknown error");
	case WORKLOAD_PARENT_FOUND:
		break;
	}
	/* A parent we cannot read is no better than one we could not fetch. */
	if (decode_tolerates_cocoon(parent->object, &cocoon) < 0)
		return admission_verdict_deny(
		    ret, ADMISSION_RESULT_ERROR, "parent_fetch",
		    "cocoon-webhook: cannot verify parent workload: "
		    "%s %s/%s has no decodable spec.template.spec.tolerations",
		    req->resource, req->ns, req->name);
	if (!cocoon)
		return admission_verdict_allow(ret, ADMISSION_RESULT_SKIPPED, "not_cocoon");
	return check_scale_down(req, old_replicas, new_replicas, ret);
}

int workload_validate(const struct admission_request *req, const struct workload_parent *parent,
		      struct admission_verdict *ret)
{
	json_int_t old_replicas, new_replicas;
	bool old_cocoon, new_cocoon;

	if (req->operation != ADMISSION_UPDATE)
		return admission_verdict_allow(ret, ADMISSION_RESULT_SKIPPED, "operation");
	if (streq(req->sub_resource, "scale"))
		return validate_scale(req, parent, ret);
	if (!streq(req->kind, "Deployment") && !streq(req->kind, "StatefulSet"))
		return admission_verdict_allow(ret, ADMISSION_RESULT_SKIPPED, "kind");
	if (decode_replicas(req->old_object, 1, &old_replicas) < 0 ||
	    decode_replicas(req->object, 1, &new_replicas) < 0 ||
	    decode_tolerates_cocoon(req->old_object, &old_cocoon) < 0 ||
	    decode_tolerates_cocoon(req->object, &new_cocoon) < 0)
		return admission_verdict_allow(ret, ADMISSION_RESULT_SKIPPED, "decode");
	if (!old_cocoon)
		return admission_verdict_allow(ret, ADMISSION_RESULT_SKIPPED, "not_cocoon");
	return check_scale_down(req, old_replicas, new_replicas, ret);
}
