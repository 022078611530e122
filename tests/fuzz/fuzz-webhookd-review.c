/* Fuzz the AdmissionReview decoder and every decision behind it. Whatever the bytes: a body
 * either decodes or gets a 400 text that starts with one of the original's two messages,
 * and the decoder's fast path (the envelope read in place) agrees with the strict decoder
 * over jansson's whole document: same verdict, same fields, same message;
 * a decoded request runs through /validate-cocoonset, /validate-cocoonhibernation and
 * /validate with each kind of cluster input, and through the /mutate reservation path
 * (request.oldObject doubles as the affinity ConfigMap, request.object as the pod and
 * its list of live pods), and every verdict becomes a response. No crash, no leak, and a
 * denial always says why. The informers' trims of pods and nodes change no decision. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../webhookd/webhookd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The response text is JSON that gives back the uid and the message it was made of. */
static void respond(const struct admission_request *req, struct admission_verdict *v, int r)
{
	struct buf out = BUF_INIT(0);
	json_t *response, *status;

	if (r != 0)
		return;
	if (v->allowed != !v->message)
		abort();
	if (admission_response_verdict(req->uid, v, NULL, &out) == 0) {
		response = json_loadb(out.data, out.len, JSON_REJECT_DUPLICATES, NULL);
		status = json_object_get(json_object_get(response, "response"), "status");
		if (!response ||
		    !streq_ptr(json_string_value(
				   json_object_get(json_object_get(response, "response"), "uid")),
			       req->uid) ||
		    (v->message &&
		     !streq_ptr(json_string_value(json_object_get(status, "message")), v->message)))
			abort();
		json_decref(response);
	}
	buf_free(&out);
	admission_verdict_done(v);
}

static void validate_all(const struct admission_request *req)
{
	const struct validate_hibernation_list lists[] = {
		{ .items = req->object },
		{ .items = req->old_object },
		{ .error = "list failed" },
	};
	const struct workload_parent parents[] = {
		{ WORKLOAD_PARENT_FOUND, req->old_object, NULL },
		{ WORKLOAD_PARENT_NOT_FOUND, NULL, NULL },
		{ WORKLOAD_PARENT_ERROR, NULL, "get failed" },
	};
	struct admission_verdict v;

	respond(req, &v, validate_cocoonset(req, &v));
	respond(req, &v, validate_cocoonhibernation(req, NULL, &v));
	respond(req, &v, workload_validate(req, NULL, &v));
	for (size_t i = 0; i < ELEMENTSOF(lists); i++)
		respond(req, &v, validate_cocoonhibernation(req, &lists[i], &v));
	for (size_t i = 0; i < ELEMENTSOF(parents); i++) {
		if (parents[i].status == WORKLOAD_PARENT_FOUND && !parents[i].object)
			continue;
		respond(req, &v, workload_validate(req, &parents[i], &v));
	}
}

/* The informers' trims keep everything the decisions read: the live index of the trimmed
 * pods and the node picked among the trimmed nodes are the same. */
static void check_node_trim(const struct affinity_view *v)
{
	json_t *nodes = json_deep_copy(v->nodes), *e;
	struct affinity_view t = *v;
	const char *a = NULL, *b = NULL;
	size_t i;
	int ra, rb;

	if (v->nodes && !nodes)
		return;
	/* a NodeList object is read through its items, an array as is */
	json_array_foreach (json_is_object(nodes) ? json_object_get(nodes, "items") : nodes, i, e)
		affinity_node_trim(e);
	t.nodes = nodes;
	ra = affinity_pick_node(v, &a);
	rb = affinity_pick_node(&t, &b);
	if (ra != rb || (ra == 0 && !streq(a, b)))
		abort();
	json_decref(nodes);
}

static void check_pod_trim(const json_t *pods, const json_t *live)
{
	json_t *copy = json_deep_copy(pods), *trimmed = NULL, *e;
	size_t i;

	if (pods && !copy)
		return;
	json_array_foreach (json_is_object(copy) ? json_object_get(copy, "items") : copy, i, e)
		affinity_pod_trim(e);
	if (affinity_live_index(copy, &trimmed) == 0 && !json_equal(trimmed, live))
		abort();
	json_decref(trimmed);
	json_decref(copy);
}

static void reserve(const struct admission_request *req, const struct affinity_pod *p)
{
	json_t *reservations = NULL, *live = NULL, *res = NULL, *data = NULL, *cm = NULL;
	json_t *patch = NULL, *release = NULL, *gone = NULL, *released = NULL;
	struct buf response = BUF_INIT(0);
	const json_t *old_cm =
	    json_is_object(json_object_get(req->old_object, "metadata")) ? req->old_object : NULL;
	char *key = NULL, *error = NULL;
	int r;

	if (affinity_reservations_parse(req->old_object, &reservations, &error) < 0 ||
	    affinity_live_index(json_object_get(req->object, "items"), &live) < 0)
		goto out;
	struct affinity_view v = { p->pool, reservations, live,
				   json_object_get(req->object, "nodes"), 1775822400 };
	check_pod_trim(json_object_get(req->object, "items"), live);
	check_node_trim(&v);
	r = affinity_reserve(&v, p, &key, &res, &error);
	if ((r == -EINVAL || r == -EEXIST || r == -ENAMETOOLONG) && !error)
		abort();
	if (r < 0)
		goto out;
	if (affinity_pod_patch(req->object, res, &patch) == 0)
		(void)admission_response_patch(req->uid, patch, &response);
	if (affinity_data_put(req->old_object, key, res, &data, &error) == 0)
		(void)affinity_configmap_build(old_cm, p->pool, data, &cm);
	if (affinity_reap(reservations, live, json_object_get(req->object, "gone"), 1775822400,
			  AFFINITY_REAPER_GRACE_SEC, &release, &gone) == 0)
		(void)affinity_data_release(req->old_object, release, &released);
out:
	free(key);
	free(error);
	json_decref(reservations);
	json_decref(live);
	json_decref(res);
	json_decref(data);
	json_decref(cm);
	json_decref(patch);
	json_decref(release);
	json_decref(gone);
	json_decref(released);
	buf_free(&response);
}

static bool same_json(const json_t *a, const json_t *b)
{
	return a ? b && json_equal(a, b) : !b;
}

/* The fast path against the strict decoder over jansson's document. */
static void compare_paths(const uint8_t *data, size_t size, int r,
			  const struct admission_request *req, const char *error)
{
	json_t *review = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	struct admission_request *slow = NULL;
	char *slow_error = NULL;
	int rs;

	if (!review) {
		if (r == 0)
			abort();
		return;
	}
	rs = admission_request_decode(review, &slow, &slow_error);
	json_decref(review);
	if ((r == 0) != (rs == 0) || (r < 0 && !streq_ptr(error, slow_error)))
		abort();
	if (r == 0 && (!streq(req->uid, slow->uid) || !streq(req->kind, slow->kind) ||
		       !streq(req->resource, slow->resource) ||
		       !streq(req->sub_resource, slow->sub_resource) ||
		       req->operation != slow->operation || !streq(req->ns, slow->ns) ||
		       !streq(req->name, slow->name) || !streq(req->username, slow->username) ||
		       req->dry_run != slow->dry_run || !same_json(req->object, slow->object) ||
		       !same_json(req->old_object, slow->old_object)))
		abort();
	free(slow_error);
	admission_request_free(slow);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct admission_request *req = NULL;
	struct affinity_pod p;
	char *error = NULL, *name = NULL;
	int r;

	r = admission_request_parse(data, size, &req, &error);
	if (size <= ADMISSION_BODY_MAX)
		compare_paths(data, size, r, req, error);
	if (r < 0) {
		if (r == -EBADMSG &&
		    (!error || (strncmp(error, "decode admission review: ", 25) != 0 &&
				strncmp(error, "admission review missing request", 32) != 0)))
			abort();
		free(error);
		return 0;
	}
	validate_all(req);
	(void)affinity_pod_skip_reason(req->object);
	if (affinity_pod_identify(req->object, req->ns, req->name, &p, &error) == 0) {
		if (affinity_configmap_name(p.pool, &name, &error) == 0)
			reserve(req, &p);
		affinity_pod_done(&p);
	}
	free(name);
	free(error);
	admission_request_free(req);
	return 0;
}
