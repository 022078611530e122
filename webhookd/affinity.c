/* /mutate's sticky reservations: which VM name and which node a cocoon pod gets, so that a
 * replacement pod finds its VM's name (the restart-recovery key) and its node again
 * (operator-webhook.md §3.9, the G2 design CONTRACT.md §4 asks for, with its bugs fixed).
 *
 * The table is ConfigMap cocoon-affinity-<pool> in cocoon-system: one data entry per
 * reserved slot, key "<ns>.<workload>.<slot>" or "<ns>._pod.<pod>", value a Reservation
 *   {"pool","namespace","deployment","slot","vmName","pod","generateName","owner","node",
 *    "updatedAt"}
 * (the G2 fields, plus generateName and owner when known). Everything here is a pure
 * function over JSON the caller fetched; the caller writes the ConfigMap with its
 * resourceVersion as precondition and starts over on a conflict, so webhook replicas that
 * race for one slot cannot both win.
 *
 * Who holds a slot. A StatefulSet pod has its name at admission and keeps it, so it is
 * matched by name. A Deployment's pods are created with generateName only: the apiserver
 * expands the name after mutating admission (kube-api.md §4.2), so at admission they are
 * indistinguishable and the original gave every one of them the same identity — and so
 * the same slot. Here an unnamed pod is identified by its VM name once it exists: a slot
 * is held while a live pod in its namespace carries that VM name (the annotation this
 * patch sets), or while its reservation is younger than AFFINITY_PENDING_SEC (the pod is
 * still being created). A new unnamed pod takes the smallest slot of its workload whose
 * unnamed holder is gone — a replacement inherits the VM name and node of the pod it
 * replaces — and otherwise the smallest free slot. Named and unnamed holders never take
 * each other's slots, nor do unnamed holders of different kinds of owner (a Job "web" and
 * a Deployment "web" share slot numbers, never a VM). Unnamed pods of other owners (Jobs,
 * bare ReplicaSets, pods with only a generateName) form a workload named after their
 * generateName ("job-x-" → "job-x"). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cocoon/meta.h"
#include "cocoon/errmsg.h"
#include "webhookd.h"

#define BARE_POD_MARK   "_pod"
#define LABEL_VALUE_MAX 63
#define TIME_MAX        32

static const json_t *list_items(const json_t *list)
{
	return json_is_object(list) ? json_object_get(list, "items") : list;
}

static const char *str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : "";
}

/* vm.cocoonstack.io/name, else the legacy cocoon.cis/vm-name; "" counts as absent. */
static const char *pod_vm_name(const json_t *pod)
{
	const json_t *ann = json_object_get(json_object_get(pod, "metadata"), "annotations");
	const char *s = str(ann, META_ANN_VM_NAME);

	return *s ? s : str(ann, META_LEGACY_ANN_VM_NAME);
}

const char *affinity_pod_skip_reason(const json_t *pod)
{
	const json_t *refs = json_object_get(json_object_get(pod, "metadata"), "ownerReferences");
	const json_t *ref;
	size_t i;

	if (!meta_pod_tolerates_cocoon(pod))
		return "not_cocoon";
	json_array_foreach (refs, i, ref) {
		if (streq(str(ref, "kind"), META_KIND_COCOONSET))
			return "cocoonset";
		/* one pod per node, pinned there by required node affinity: a sticky node
		 * elsewhere would make the kubelet reject it and the controller recreate it,
		 * forever (agents that tolerate the virtual-kubelet taint) */
		if (streq(str(ref, "kind"), "DaemonSet"))
			return "daemonset";
	}
	if (*str(json_object_get(pod, "spec"), "nodeName"))
		return "node_name";
	if (*pod_vm_name(pod))
		return "vm_name";
	return NULL;
}

/* The controller owner reference, else the first one. */
static const json_t *pod_owner(const json_t *pod)
{
	const json_t *refs = json_object_get(json_object_get(pod, "metadata"), "ownerReferences");
	const json_t *ref;
	size_t i;

	json_array_foreach (refs, i, ref)
		if (json_is_true(json_object_get(ref, "controller")))
			return ref;
	return json_array_get(refs, 0);
}

static int strdup_or_null(const char *s, char **ret)
{
	*ret = NULL;
	if (isempty(s))
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

/* The slot space of a pod: its Deployment, its StatefulSet, or (unnamed, other owners)
 * its generateName without the trailing separators. NULL for a named bare pod. */
static int pod_group(const json_t *pod, const struct affinity_pod *p, char **ret, char **ret_error)
{
	const json_t *owner = pod_owner(pod);
	size_t n;
	int r;

	r = meta_pod_owner_deployment(pod, ret);
	if (r != -ENOENT)
		return r;
	if (streq(str(owner, "kind"), "StatefulSet") && *str(owner, "name"))
		return strdup_or_null(str(owner, "name"), ret);
	if (p->pod) {
		*ret = NULL;
		return 0;
	}
	n = p->generate_name ? strlen(p->generate_name) : 0;
	while (n > 0 && (p->generate_name[n - 1] == '-' || p->generate_name[n - 1] == '.'))
		n--;
	if (n == 0)
		return errmsg_set(ret_error, -EINVAL,
				 "pod in namespace %s has no metadata.name and no usable "
				 "metadata.generateName",
				 p->ns);
	*ret = strndup(p->generate_name, n);
	return *ret ? 0 : -ENOMEM;
}

int affinity_pod_identify(const json_t *pod, const char *req_ns, const char *req_name,
			  struct affinity_pod *ret, char **ret_error)
{
	const json_t *md = json_object_get(pod, "metadata"), *owner = pod_owner(pod);
	const char *name = str(md, "name");
	struct affinity_pod p = { 0 };
	int r;

	if (!json_is_object(pod))
		return errmsg_set(ret_error, -EINVAL, "the request has no pod object");
	r = strdup_or_null(!isempty(req_ns) ? req_ns : str(md, "namespace"), &p.ns);
	if (r >= 0 && !p.ns)
		r = errmsg_set(ret_error, -EINVAL,
			      "pod has no namespace (neither request.namespace nor "
			      "metadata.namespace)");
	if (r >= 0)
		r = strdup_or_null(meta_pod_pool(pod), &p.pool);
	if (r >= 0)
		r = strdup_or_null(*name ? name : req_name, &p.pod);
	if (r >= 0)
		r = strdup_or_null(str(md, "generateName"), &p.generate_name);
	if (r >= 0 && owner && *str(owner, "kind") && *str(owner, "name") &&
	    asprintf(&p.owner, "%s/%s", str(owner, "kind"), str(owner, "name")) < 0)
		r = -ENOMEM;
	if (r >= 0)
		r = pod_group(pod, &p, &p.group, ret_error);
	if (r < 0) {
		affinity_pod_done(&p);
		return r;
	}
	*ret = p;
	return 0;
}

void affinity_pod_done(struct affinity_pod *p)
{
	if (!p)
		return;
	free(p->ns);
	free(p->pool);
	free(p->group);
	free(p->pod);
	free(p->generate_name);
	free(p->owner);
	*p = (struct affinity_pod){ 0 };
}

int affinity_configmap_name(const char *pool, char **ret, char **ret_error)
{
	/* The pool is both a label value and part of an object name, so it must be a
	 * lowercase RFC 1123 label. */
	if (!pool || strlen(pool) > LABEL_VALUE_MAX ||
	    !admission_is_dns1123_label_format(pool, strlen(pool))) {
		_cleanup_(freep) char *q = admission_quote(pool ? pool : "");

		return errmsg_set(ret_error, -EINVAL,
				 "pool %s cannot name ConfigMap " AFFINITY_CONFIGMAP_PREFIX
				 "<pool>: it must be a lowercase RFC 1123 label (at most 63 of "
				 "a-z, 0-9 and '-', starting and ending with a letter or digit)",
				 q ? q : "");
	}
	if (asprintf(ret, AFFINITY_CONFIGMAP_PREFIX "%s", pool) < 0)
		return -ENOMEM;
	return 0;
}

static int format_time(time_t t, char buf[static TIME_MAX])
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, TIME_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return -EINVAL;
	return 0;
}

static bool take_digits(const char **p, int n, int *ret)
{
	int v = 0;

	for (int i = 0; i < n; i++, (*p)++) {
		if (**p < '0' || **p > '9')
			return false;
		v = v * 10 + (**p - '0');
	}
	*ret = v;
	return true;
}

static bool take_char(const char **p, char c)
{
	if (**p != c)
		return false;
	(*p)++;
	return true;
}

/* RFC 3339 as Go's time.Time marshals it: seconds, optional fraction, Z or ±hh:mm. */
static int parse_time(const char *s, time_t *ret)
{
	struct tm tm = { 0 };
	int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0;
	const char *p = s;
	time_t t;

	if (!take_digits(&p, 4, &y) || !take_char(&p, '-') || !take_digits(&p, 2, &mo) ||
	    !take_char(&p, '-') || !take_digits(&p, 2, &d) || !take_char(&p, 'T') ||
	    !take_digits(&p, 2, &h) || !take_char(&p, ':') || !take_digits(&p, 2, &mi) ||
	    !take_char(&p, ':') || !take_digits(&p, 2, &se))
		return -EINVAL;
	if (take_char(&p, '.')) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (take_char(&p, '+'))
		sign = -1;
	else if (take_char(&p, '-'))
		sign = 1;
	else if (!take_char(&p, 'Z'))
		return -EINVAL;
	if (sign && (!take_digits(&p, 2, &oh) || !take_char(&p, ':') || !take_digits(&p, 2, &om)))
		return -EINVAL;
	if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return -EINVAL;
	tm = (struct tm){ .tm_year = y - 1900,
			  .tm_mon = mo - 1,
			  .tm_mday = d,
			  .tm_hour = h,
			  .tm_min = mi,
			  .tm_sec = se };
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	*ret = t + sign * (oh * 3600 + om * 60);
	return 0;
}

/* A data value that we can reason about: an object naming its namespace and VM, with a
 * slot and an updatedAt we can read. Anything else holds its key but is never matched. */
static bool reservation_is_valid(const json_t *r)
{
	time_t t;

	return json_is_object(r) && *str(r, "namespace") && *str(r, "vmName") &&
	       json_is_integer(json_object_get(r, "slot")) &&
	       json_integer_value(json_object_get(r, "slot")) >= 0 &&
	       (!json_object_get(r, "pod") || json_is_string(json_object_get(r, "pod"))) &&
	       (!json_object_get(r, "node") || json_is_string(json_object_get(r, "node"))) &&
	       parse_time(str(r, "updatedAt"), &t) >= 0;
}

int affinity_reservations_parse(const json_t *configmap, json_t **ret, char **ret_error)
{
	_cleanup_(json_decrefp) json_t *out = json_object();
	const json_t *data;
	const char *key;
	json_t *value;

	if (!out)
		return -ENOMEM;
	if (configmap && !json_is_object(configmap))
		return errmsg_set(ret_error, -EINVAL, "ConfigMap: expected an object");
	data = json_object_get(configmap, "data");
	if (data && !json_is_null(data) && !json_is_object(data))
		return errmsg_set(ret_error, -EINVAL, "ConfigMap %s: data: expected an object",
				 str(json_object_get(configmap, "metadata"), "name"));
	json_object_foreach ((json_t *)data, key, value) {
		json_t *parsed;

		if (!json_is_string(value))
			return errmsg_set(ret_error, -EINVAL,
					 "ConfigMap %s: data[\"%s\"]: expected a string",
					 str(json_object_get(configmap, "metadata"), "name"), key);
		parsed = json_loadb(json_string_value(value), json_string_length(value), 0, NULL);
		if (!reservation_is_valid(parsed)) {
			json_decref(parsed);
			parsed = json_null();
		}
		if (json_object_set_new(out, key, parsed) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(out);
	return 0;
}

int affinity_live_index(const json_t *pods, json_t **ret)
{
	_cleanup_(json_decrefp) json_t *index = NULL;
	json_t *by_pod, *by_vm, *by_node;
	const json_t *pod;
	size_t i;

	index = json_pack("{s:{}, s:{}, s:{}}", "pods", "vms", "nodes");
	if (!index)
		return -ENOMEM;
	by_pod = json_object_get(index, "pods");
	by_vm = json_object_get(index, "vms");
	by_node = json_object_get(index, "nodes");
	json_array_foreach (list_items(pods), i, pod) {
		const json_t *md = json_object_get(pod, "metadata");
		const char *phase = str(json_object_get(pod, "status"), "phase");
		const char *node = str(json_object_get(pod, "spec"), "nodeName");
		const char *vm = pod_vm_name(pod);
		_cleanup_(freep) char *key = NULL;

		/* a finished pod runs no VM: its slot and node capacity are free */
		if (!*str(md, "namespace") || !*str(md, "name") || streq(phase, "Succeeded") ||
		    streq(phase, "Failed"))
			continue;
		if (meta_pod_key(str(md, "namespace"), str(md, "name"), &key) < 0 ||
		    json_object_set_new(by_pod, key, json_string(vm)) < 0 ||
		    (*vm && json_object_set_new(by_vm, vm, json_string(key)) < 0))
			return -ENOMEM;
		if (*node &&
		    json_object_set_new(
			by_node, node,
			json_integer(json_integer_value(json_object_get(by_node, node)) + 1)) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(index);
	return 0;
}

/* Drops every member of obj not named in keep (obj may be NULL or not an object). */
static void keep_only(json_t *obj, const char *const *keep)
{
	const char *key;
	json_t *v;
	void *tmp;

	json_object_foreach_safe(obj, tmp, key, v)
	{
		bool wanted = false;

		for (const char *const *k = keep; *k && !wanted; k++)
			wanted = streq(key, *k);
		if (!wanted)
			json_object_del(obj, key);
	}
}

void affinity_pod_trim(json_t *pod)
{
	static const char *const top[] = { "metadata", "spec", "status", NULL };
	static const char *const meta[] = {
		"name", "namespace", "uid", "resourceVersion", "annotations", NULL,
	};
	static const char *const ann[] = { META_ANN_VM_NAME, META_LEGACY_ANN_VM_NAME, NULL };
	static const char *const spec[] = { "nodeName", NULL };
	static const char *const status[] = { "phase", NULL };
	json_t *md = json_object_get(pod, "metadata");

	keep_only(pod, top);
	keep_only(md, meta);
	keep_only(json_object_get(md, "annotations"), ann);
	keep_only(json_object_get(pod, "spec"), spec);
	keep_only(json_object_get(pod, "status"), status);
}

void affinity_node_trim(json_t *node)
{
	static const char *const top[] = { "metadata", "spec", "status", NULL };
	static const char *const meta[] = { "name", "uid", "resourceVersion", "labels", NULL };
	static const char *const labels[] = { META_LABEL_POOL, NULL };
	static const char *const spec[] = { "unschedulable", NULL };
	static const char *const status[] = { "conditions", NULL };
	static const char *const condition[] = { "type", "status", NULL };
	json_t *md = json_object_get(node, "metadata"), *c;
	size_t i;

	keep_only(node, top);
	keep_only(md, meta);
	keep_only(json_object_get(md, "labels"), labels);
	keep_only(json_object_get(node, "spec"), spec);
	keep_only(json_object_get(node, "status"), status);
	json_array_foreach (json_object_get(json_object_get(node, "status"), "conditions"), i, c)
		keep_only(c, condition);
}

/* "<ns>/<pod>" starts with "<ns>/". */
static bool key_in_namespace(const char *pod_key, const char *ns)
{
	size_t n = strlen(ns);

	return pod_key && strncmp(pod_key, ns, n) == 0 && pod_key[n] == '/';
}

/* A live pod holds the reservation: by name, or by carrying its VM name in its namespace. */
static bool reservation_held(const json_t *live, const json_t *res)
{
	const char *ns = str(res, "namespace"), *pod = str(res, "pod");
	const char *holder =
	    json_string_value(json_object_get(json_object_get(live, "vms"), str(res, "vmName")));

	if (*pod) {
		_cleanup_(freep) char *key = NULL;

		if (meta_pod_key(ns, pod, &key) >= 0 &&
		    json_object_get(json_object_get(live, "pods"), key))
			return true;
	}
	return key_in_namespace(holder, ns);
}

static bool reservation_pending(const json_t *res, time_t now)
{
	time_t t;

	return parse_time(str(res, "updatedAt"), &t) >= 0 && now - t < AFFINITY_PENDING_SEC;
}

static bool node_is_ready(const json_t *node)
{
	const json_t *conds = json_object_get(json_object_get(node, "status"), "conditions");
	const json_t *c;
	size_t i;

	json_array_foreach (conds, i, c)
		if (streq(str(c, "type"), "Ready"))
			return streq(str(c, "status"), "True");
	return false;
}

static bool node_in_pool(const json_t *node, const char *pool)
{
	return streq(
	    str(json_object_get(json_object_get(node, "metadata"), "labels"), META_LABEL_POOL),
	    pool);
}

int affinity_pick_node(const struct affinity_view *v, const char **ret)
{
	_cleanup_(json_decrefp) json_t *outstanding = json_object();
	const json_t *pod_counts = json_object_get(v->live, "nodes"), *node, *res;
	const char *best = NULL, *key;
	json_int_t best_score = 0;
	size_t i;

	if (!outstanding)
		return -ENOMEM;
	/* a reservation whose pod is not live (still being created, or gone and not yet
	 * reaped) is a promise of capacity, so a burst of new replicas spreads */
	json_object_foreach ((json_t *)v->reservations, key, res) {
		const char *n = str(res, "node");

		if (!json_is_object(res) || !*n || reservation_held(v->live, res))
			continue;
		if (json_object_set_new(
			outstanding, n,
			json_integer(json_integer_value(json_object_get(outstanding, n)) + 1)) < 0)
			return -ENOMEM;
	}
	json_array_foreach (list_items(v->nodes), i, node) {
		const char *name = str(json_object_get(node, "metadata"), "name");
		json_int_t score;

		if (!*name || !node_in_pool(node, v->pool) || !node_is_ready(node) ||
		    json_is_true(json_object_get(json_object_get(node, "spec"), "unschedulable")))
			continue;
		score = json_integer_value(json_object_get(pod_counts, name)) +
			json_integer_value(json_object_get(outstanding, name));
		if (!best || score < best_score ||
		    (score == best_score && strcmp(name, best) < 0)) {
			best = name;
			best_score = score;
		}
	}
	if (!best)
		return -ENOENT;
	*ret = best;
	return 0;
}

/* The slot of key when it is "<prefix><decimal>", else -1. */
static int64_t key_slot(const char *key, const char *prefix)
{
	size_t n = strlen(prefix);
	int64_t slot = 0;
	const char *p;

	if (strncmp(key, prefix, n) != 0 || !key[n] || (key[n] == '0' && key[n + 1]))
		return -1;
	for (p = key + n; *p; p++)
		if (*p < '0' || *p > '9' || __builtin_mul_overflow(slot, 10, &slot) ||
		    __builtin_add_overflow(slot, *p - '0', &slot) || slot > INT32_MAX)
			return -1;
	return slot;
}

/* The chosen entry: key, VM name, slot, and the reservation it replaces (or NULL). */
struct choice {
	char *key;
	char *vm_name;
	int64_t slot;
	const json_t *existing;
};

static void choice_done(struct choice *c)
{
	free(c->key);
	free(c->vm_name);
}

/* A VM name no live pod carries and no other entry reserves. */
static bool vm_name_is_free(const struct affinity_view *v, const char *vm)
{
	const char *key;
	const json_t *res;

	if (json_object_get(json_object_get(v->live, "vms"), vm))
		return false;
	json_object_foreach ((json_t *)v->reservations, key, res)
		if (streq(str(res, "vmName"), vm))
			return false;
	return true;
}

static int choose_bare(const struct affinity_view *v, const struct affinity_pod *pod,
		       struct choice *c, char **ret_error)
{
	_cleanup_(freep) char *self = NULL;
	const char *holder, *key;
	const json_t *res;

	if (asprintf(&c->key, "%s." BARE_POD_MARK ".%s", pod->ns, pod->pod) < 0 ||
	    meta_vm_name_for_pod(pod->ns, pod->pod, &c->vm_name) < 0 ||
	    meta_pod_key(pod->ns, pod->pod, &self) < 0)
		return -ENOMEM;
	c->slot = 0;
	c->existing = json_object_get(v->reservations, c->key);
	/* "vk-<ns>-<pod>" can also be a workload's "vk-<ns>-<workload>-<slot>" */
	holder = json_string_value(json_object_get(json_object_get(v->live, "vms"), c->vm_name));
	if (holder && !streq(holder, self))
		return errmsg_set(ret_error, -EEXIST,
				 "VM name %s of pod %s is already used by pod %s", c->vm_name, self,
				 holder);
	json_object_foreach ((json_t *)v->reservations, key, res)
		if (!streq(key, c->key) && streq(str(res, "vmName"), c->vm_name))
			return errmsg_set(ret_error, -EEXIST,
					 "VM name %s of pod %s is already reserved as %s in %s%s",
					 c->vm_name, self, key, AFFINITY_CONFIGMAP_PREFIX, v->pool);
	return 0;
}

/* An unnamed slot passes only between pods of the same kind of owner: a Job or a bare pod
 * whose generateName matches a Deployment's name shares its slot numbers and VM names, but
 * must not boot a gone replica's VM. The owner kind of a Deployment's pods is ReplicaSet;
 * G2's reservations carry neither owner nor generateName and were only made for
 * Deployments. */
static bool same_owner_kind(const json_t *res, const struct affinity_pod *pod)
{
	const char *theirs = str(res, "owner"), *mine = pod->owner ? pod->owner : "";
	size_t n;

	if (!*theirs && !json_object_get(res, "generateName"))
		theirs = "ReplicaSet/";
	n = strcspn(theirs, "/");
	return n == strcspn(mine, "/") && strncmp(theirs, mine, n) == 0;
}

/* This pod's slot (named), else the smallest slot whose unnamed holder is gone (unnamed),
 * else -1; -ENOMEM. Also collects the slots in use. */
static int64_t slot_to_reuse(const struct affinity_view *v, const struct affinity_pod *pod,
			     const char *prefix, json_t *used)
{
	int64_t best = -1;
	const char *key;
	const json_t *res;

	json_object_foreach ((json_t *)v->reservations, key, res) {
		int64_t s = key_slot(key, prefix);
		bool match;

		if (s < 0)
			continue;
		if (json_array_append_new(used, json_integer(s)) < 0)
			return -ENOMEM;
		if (!json_is_object(res))
			continue;
		if (pod->pod)
			match = streq(str(res, "pod"), pod->pod);
		else
			match =
			    !*str(res, "pod") && same_owner_kind(res, pod) &&
			    !reservation_held(v->live, res) && !reservation_pending(res, v->now) &&
			    !json_object_get(json_object_get(v->live, "vms"), str(res, "vmName"));
		if (match && (best < 0 || s < best))
			best = s;
	}
	return best;
}

static int cmp_slot(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static int choose_slot(const struct affinity_view *v, const struct affinity_pod *pod,
		       struct choice *c)
{
	_cleanup_(json_decrefp) json_t *used = json_array();
	_cleanup_(freep) char *prefix = NULL;
	_cleanup_(freep) int64_t *slots = NULL;
	const json_t *s;
	size_t n, i;

	if (!used || asprintf(&prefix, "%s.%s.", pod->ns, pod->group) < 0)
		return -ENOMEM;
	c->slot = slot_to_reuse(v, pod, prefix, used);
	if (c->slot < -1)
		return (int)c->slot;
	if (c->slot < 0) {
		/* the smallest slot with no entry whose VM name nobody uses */
		n = json_array_size(used);
		slots = calloc(n + 1, sizeof *slots);
		if (!slots)
			return -ENOMEM;
		json_array_foreach (used, i, s)
			slots[i] = json_integer_value(s);
		qsort(slots, n, sizeof *slots, cmp_slot);
		for (int64_t cand = 0, j = 0;; cand++) {
			_cleanup_(freep) char *vm = NULL;

			while ((size_t)j < n && slots[j] < cand)
				j++;
			if ((size_t)j < n && slots[j] == cand)
				continue;
			if (meta_vm_name_for_deployment(pod->ns, pod->group, cand, &vm) < 0)
				return -ENOMEM;
			if (vm_name_is_free(v, vm)) {
				c->slot = cand;
				break;
			}
		}
	}
	if (asprintf(&c->key, "%s%" PRId64, prefix, c->slot) < 0 ||
	    meta_vm_name_for_deployment(pod->ns, pod->group, c->slot, &c->vm_name) < 0)
		return -ENOMEM;
	c->existing = json_object_get(v->reservations, c->key);
	return 0;
}

/* The slot's pinned node while it is still in the pool, else the least-used one. */
static const char *choose_node(const struct affinity_view *v, const json_t *existing)
{
	const char *pinned = str(existing, "node"), *picked;
	const json_t *node;
	size_t i;

	if (*pinned) {
		if (!v->nodes)
			return pinned;
		json_array_foreach (list_items(v->nodes), i, node)
			if (streq(str(json_object_get(node, "metadata"), "name"), pinned) &&
			    node_in_pool(node, v->pool))
				return pinned;
	}
	return affinity_pick_node(v, &picked) >= 0 ? picked : "";
}

static int reservation_new(const struct affinity_view *v, const struct affinity_pod *pod,
			   const struct choice *c, json_t **ret)
{
	char now[TIME_MAX];
	json_t *res;

	if (format_time(v->now, now) < 0)
		return -EINVAL;
	res = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "pool", v->pool, "namespace", pod->ns,
			"deployment", pod->group ? pod->group : "", "slot", (json_int_t)c->slot,
			"vmName", c->vm_name, "pod", pod->pod ? pod->pod : "");
	if (!res)
		return -ENOMEM;
	if ((pod->generate_name &&
	     json_object_set_new(res, "generateName", json_string(pod->generate_name)) < 0) ||
	    (pod->owner && json_object_set_new(res, "owner", json_string(pod->owner)) < 0) ||
	    json_object_set_new(res, "node", json_string(choose_node(v, c->existing))) < 0 ||
	    json_object_set_new(res, "updatedAt", json_string(now)) < 0) {
		json_decref(res);
		return -ENOMEM;
	}
	*ret = res;
	return 0;
}

int affinity_reserve(const struct affinity_view *v, const struct affinity_pod *pod, char **ret_key,
		     json_t **ret_reservation, char **ret_error)
{
	struct choice c = { 0 };
	json_t *res;
	int r;

	if (!pod->group && !pod->pod)
		return errmsg_set(ret_error, -EINVAL, "pod in namespace %s has no identity",
				 pod->ns);
	r = pod->group ? choose_slot(v, pod, &c) : choose_bare(v, pod, &c, ret_error);
	if (r >= 0 && !meta_vm_name_is_valid(c.vm_name))
		r = errmsg_set(ret_error, -ENAMETOOLONG,
			      "VM name %s for %s/%s is not a valid cocoon VM name (at most %d "
			      "characters of a-z, A-Z, 0-9, '.', '_' and '-'); use a shorter "
			      "namespace or workload name",
			      c.vm_name, pod->ns, pod->pod ? pod->pod : pod->group,
			      META_VM_NAME_MAX);
	if (r >= 0)
		r = reservation_new(v, pod, &c, &res);
	if (r < 0) {
		choice_done(&c);
		return r;
	}
	*ret_key = TAKE_PTR(c.key);
	*ret_reservation = res;
	choice_done(&c);
	return 0;
}

static json_t *data_copy(const json_t *configmap)
{
	const json_t *data = json_object_get(configmap, "data");

	return json_is_object(data) ? json_deep_copy(data) : json_object();
}

int affinity_data_put(const json_t *configmap, const char *key, const json_t *reservation,
		      json_t **ret_data, char **ret_error)
{
	_cleanup_(json_decrefp) json_t *data = data_copy(configmap);
	_cleanup_(freep) char *value = NULL;
	const char *k;
	json_t *val;
	size_t size = 0;

	if (!data)
		return -ENOMEM;
	value = json_dumps(reservation, JSON_COMPACT);
	if (!value || json_object_set_new(data, key, json_string(value)) < 0)
		return -ENOMEM;
	json_object_foreach (data, k, val)
		size += strlen(k) + json_string_length(val);
	if (size > AFFINITY_DATA_MAX)
		return errmsg_set(ret_error, -E2BIG,
				 "ConfigMap " AFFINITY_CONFIGMAP_PREFIX
				 "%s would hold %zu bytes of reservations, more than the %u a "
				 "ConfigMap can take; reservation %s refused",
				 str(reservation, "pool"), size, AFFINITY_DATA_MAX, key);
	*ret_data = TAKE_PTR(data);
	return 0;
}

int affinity_data_release(const json_t *configmap, const json_t *keys, json_t **ret_data)
{
	json_t *data = data_copy(configmap);
	const json_t *k;
	size_t i;

	if (!data)
		return -ENOMEM;
	json_array_foreach (keys, i, k)
		if (json_is_string(k))
			json_object_del(data, json_string_value(k));
	*ret_data = data;
	return 0;
}

int affinity_configmap_build(const json_t *configmap, const char *pool, const json_t *data,
			     json_t **ret)
{
	_cleanup_(json_decrefp) json_t *cm = NULL;
	_cleanup_(freep) char *name = NULL;
	json_t *md, *labels;

	if (affinity_configmap_name(pool, &name, NULL) < 0 || !json_is_object(data))
		return -EINVAL;
	cm = configmap
		 ? json_deep_copy(configmap)
		 : json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind", "ConfigMap",
			     "metadata", "name", name, "namespace", AFFINITY_NAMESPACE);
	if (!cm)
		return -ENOMEM;
	md = json_object_get(cm, "metadata");
	if (!json_is_object(md))
		return -EINVAL;
	labels = json_object_get(md, "labels");
	if (!json_is_object(labels)) {
		labels = json_object();
		if (json_object_set_new(md, "labels", labels) < 0)
			return -ENOMEM;
	}
	/* the reaper finds the tables by these labels */
	if (json_object_set_new(labels, META_LABEL_MANAGED_BY, json_string(AFFINITY_MANAGED_BY)) <
		0 ||
	    json_object_set_new(labels, META_LABEL_POOL, json_string(pool)) < 0 ||
	    json_object_set_new(cm, "data", json_deep_copy(data)) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(cm);
	return 0;
}

/* RFC 6901: '~' → "~0", '/' → "~1". */
static int pointer_escape(struct buf *b, const char *s)
{
	int r = 0;

	for (; r >= 0 && *s; s++)
		r = *s == '~'   ? buf_append_str(b, "~0")
		    : *s == '/' ? buf_append_str(b, "~1")
				: buf_append(b, s, 1);
	return r;
}

static int patch_add(json_t *patch, const char *path, json_t *value)
{
	if (!value)
		return -ENOMEM;
	return json_array_append_new(patch, json_pack("{s:s, s:s, s:o}", "op", "add", "path", path,
						      "value", value)) < 0
		   ? -ENOMEM
		   : 0;
}

int affinity_pod_patch(const json_t *pod, const json_t *reservation, json_t **ret)
{
	_cleanup_(json_decrefp) json_t *patch = json_array();
	const json_t *md = json_object_get(pod, "metadata");
	const char *vm = str(reservation, "vmName"), *node = str(reservation, "node");
	struct buf path = BUF_INIT(0);
	int r = 0;

	if (!patch)
		return -ENOMEM;
	if (!*vm)
		return -EINVAL;
	/* "add" into a map that does not exist fails, so create it first */
	if (!json_is_object(md))
		r = patch_add(patch, "/metadata", json_object());
	if (r >= 0 && !json_is_object(json_object_get(md, "annotations")))
		r = patch_add(patch, "/metadata/annotations", json_object());
	if (r >= 0)
		r = buf_append_str(&path, "/metadata/annotations/");
	if (r >= 0)
		r = pointer_escape(&path, META_ANN_VM_NAME);
	if (r >= 0)
		r = patch_add(patch, path.data, json_string(vm));
	buf_free(&path);
	if (r >= 0 && *node)
		r = patch_add(patch, "/spec/nodeName", json_string(node));
	if (r < 0)
		return r;
	*ret = TAKE_PTR(patch);
	return 0;
}

int affinity_reap(const json_t *reservations, const json_t *live, const json_t *gone_since,
		  time_t now, time_t grace, json_t **ret_release, json_t **ret_gone_since)
{
	_cleanup_(json_decrefp) json_t *release = json_array(), *next = json_object();
	const char *key;
	const json_t *res;

	if (!release || !next)
		return -ENOMEM;
	json_object_foreach ((json_t *)reservations, key, res) {
		const json_t *seen = json_object_get(gone_since, key);
		time_t since = json_is_integer(seen) ? (time_t)json_integer_value(seen) : now;
		time_t start = since, updated;

		if (json_is_object(res) && reservation_held(live, res))
			continue;
		/* a reservation refreshed by a new pod restarts the clock */
		if (json_is_object(res) && parse_time(str(res, "updatedAt"), &updated) >= 0 &&
		    updated > start)
			start = updated;
		if (now - start >= grace && json_array_append_new(release, json_string(key)) < 0)
			return -ENOMEM;
		/* released keys too: when the release is not written, the next sweep must
		 * not start their grace over */
		if (json_object_set_new(next, key, json_integer(since)) < 0)
			return -ENOMEM;
	}
	*ret_release = TAKE_PTR(release);
	*ret_gone_since = TAKE_PTR(next);
	return 0;
}
