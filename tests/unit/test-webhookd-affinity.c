/* /mutate's sticky reservations: who a pod is, pool resolution, slot allocation (gaps, reuse
 * of a gone pod's slot, named StatefulSet pods, bare pods that never collide, many
 * replicas), least-used node choice, the ConfigMap data model, the pod's JSONPatch (golden)
 * and the reaper's decision. A small in-memory "cluster" admits pods the way the handler
 * will: parse the ConfigMap, index live pods, reserve, write the ConfigMap back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "test-json.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/meta.h"
#include "../../webhookd/webhookd.h"

#define NOW      ((time_t)1775822400) /* 2026-04-10T12:00:00Z */
#define NOW_TEXT "2026-04-10T12:00:00Z"
#define NS       "team-a"


static char *dump(const json_t *j)
{
	return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* A cocoon-tolerating pod; name or generateName may be NULL, owner "Kind/name" or NULL. */
static json_t *pod_new(const char *name, const char *generate_name, const char *owner)
{
	json_t *pod =
	    json_pack("{s:{s:s}, s:{s:[{s:s, s:s}]}}", "metadata", "namespace", NS, "spec",
		      "tolerations", "key", META_TOLERATION_KEY, "operator", "Exists");
	json_t *md = json_object_get(pod, "metadata");

	if (name)
		json_object_set_new(md, "name", json_string(name));
	if (generate_name)
		json_object_set_new(md, "generateName", json_string(generate_name));
	if (owner) {
		char kind[64];
		const char *slash = strchr(owner, '/');

		snprintf(kind, sizeof kind, "%.*s", (int)(slash - owner), owner);
		json_object_set_new(md, "ownerReferences",
				    json_pack("[{s:s, s:s, s:s, s:b}]", "apiVersion", "apps/v1",
					      "kind", kind, "name", slash + 1, "controller", 1));
	}
	return pod;
}

static json_t *node_new(const char *name, const char *pool, bool ready, bool unschedulable)
{
	return json_pack("{s:{s:s, s:{s:s}}, s:{s:b}, s:{s:[{s:s, s:s}]}}", "metadata", "name",
			 name, "labels", META_LABEL_POOL, pool, "spec", "unschedulable",
			 unschedulable, "status", "conditions", "type", "Ready", "status",
			 ready ? "True" : "False");
}

struct cluster {
	json_t *configmap; /* NULL until the first reservation */
	json_t *pods;      /* live pods */
	json_t *nodes;
	time_t now;
};

static void cluster_init(struct cluster *c, unsigned n_nodes)
{
	char name[16];

	*c = (struct cluster){ .pods = json_array(), .nodes = json_array(), .now = NOW };
	for (unsigned i = 0; i < n_nodes; i++) {
		snprintf(name, sizeof name, "node-%u", i);
		json_array_append_new(c->nodes, node_new(name, "default", true, false));
	}
}

static void cluster_done(struct cluster *c)
{
	json_decref(c->configmap);
	json_decref(c->pods);
	json_decref(c->nodes);
}

/* Reserves for pod (the handler's steps) and stores the ConfigMap; returns the
 * reservation and, when ret_key is not NULL, the data key. */
static json_t *admit(struct cluster *c, const json_t *pod, char **ret_key)
{
	struct affinity_pod p;
	json_t *reservations, *live, *res, *data, *cm;
	char *key = NULL, *error = NULL;

	assert_int_equal(affinity_pod_identify(pod, NS, "", &p, &error), 0);
	assert_int_equal(affinity_reservations_parse(c->configmap, &reservations, &error), 0);
	assert_int_equal(affinity_live_index(c->pods, &live), 0);
	struct affinity_view v = { p.pool, reservations, live, c->nodes, c->now };
	assert_int_equal(affinity_reserve(&v, &p, &key, &res, &error), 0);
	assert_null(error);
	assert_int_equal(affinity_data_put(c->configmap, key, res, &data, &error), 0);
	assert_int_equal(affinity_configmap_build(c->configmap, p.pool, data, &cm), 0);
	json_decref(c->configmap);
	c->configmap = cm;
	json_decref(data);
	json_decref(live);
	json_decref(reservations);
	affinity_pod_done(&p);
	if (ret_key)
		*ret_key = key;
	else
		free(key);
	return res;
}

/* Admits pod and checks only which reservation key it got. */
static void admit_expect(struct cluster *c, const json_t *pod, const char *want_key)
{
	char *key;
	json_t *r = admit(c, pod, &key);

	assert_string_equal(key, want_key);
	free(key);
	json_decref(r);
}

/* The pod as stored after admission: named, carrying the VM name, on its node. */
static void create(struct cluster *c, const json_t *pod, const char *name, const json_t *res)
{
	json_t *p = json_deep_copy(pod), *md = json_object_get(p, "metadata");
	const char *node = json_string_value(json_object_get(res, "node"));

	json_object_set_new(md, "name", json_string(name));
	json_object_set_new(md, "annotations",
			    json_pack("{s:O}", META_ANN_VM_NAME, json_object_get(res, "vmName")));
	if (node && *node)
		json_object_set_new(json_object_get(p, "spec"), "nodeName", json_string(node));
	json_object_set_new(p, "status", json_pack("{s:s}", "phase", "Running"));
	json_array_append_new(c->pods, p);
}

/* Removes the live pod called name. */
static void delete (struct cluster *c, const char *name)
{
	json_t *p;
	size_t i;

	json_array_foreach (c->pods, i, p)
		if (strcmp(
			json_string_value(json_object_get(json_object_get(p, "metadata"), "name")),
			name) == 0) {
			json_array_remove(c->pods, i);
			return;
		}
	fail_msg("no pod %s", name);
}

static const char *res_str(const json_t *res, const char *key)
{
	return json_string_value(json_object_get(res, key));
}

static json_int_t res_slot(const json_t *res)
{
	return json_integer_value(json_object_get(res, "slot"));
}

static void test_skip_reasons(void **state)
{
	json_t *plain = load("{\"metadata\":{\"name\":\"p\"},\"spec\":{}}");
	json_t *pod = pod_new("p", NULL, NULL);
	json_t *owned = pod_new("p", NULL, "CocoonSet/agents");
	json_t *daemon = pod_new(NULL, "log-agent-", "DaemonSet/log-agent");
	json_t *placed = pod_new("p", NULL, NULL);
	json_t *named = pod_new("p", NULL, NULL), *legacy = pod_new("p", NULL, NULL);

	json_object_set_new(json_object_get(placed, "spec"), "nodeName", json_string("n1"));
	json_object_set_new(json_object_get(named, "metadata"), "annotations",
			    json_pack("{s:s}", META_ANN_VM_NAME, "my-vm"));
	json_object_set_new(
	    json_object_get(legacy, "metadata"), "annotations",
	    json_pack("{s:s, s:s}", META_LEGACY_ANN_VM_NAME, "old-vm", META_ANN_VM_NAME, ""));
	assert_null(affinity_pod_skip_reason(pod));
	assert_string_equal(affinity_pod_skip_reason(plain), "not_cocoon");
	assert_string_equal(affinity_pod_skip_reason(owned), "cocoonset");
	assert_string_equal(affinity_pod_skip_reason(daemon), "daemonset");
	assert_string_equal(affinity_pod_skip_reason(placed), "node_name");
	assert_string_equal(affinity_pod_skip_reason(named), "vm_name");
	assert_string_equal(affinity_pod_skip_reason(legacy), "vm_name");
	json_decref(plain);
	json_decref(pod);
	json_decref(owned);
	json_decref(daemon);
	json_decref(placed);
	json_decref(named);
	json_decref(legacy);
}

static void test_identify(void **state)
{
	json_t *rs = pod_new(NULL, "web-7d9f8-", "ReplicaSet/web-7d9f8");
	json_t *sts = pod_new("db-0", NULL, "StatefulSet/db");
	json_t *bare = pod_new("solo", NULL, NULL);
	json_t *job = pod_new(NULL, "backup-28765-", "Job/backup-28765");
	json_t *anon = pod_new(NULL, NULL, NULL);
	json_t *bad_gen = pod_new(NULL, "--", NULL);
	struct affinity_pod p;
	char *error = NULL;

	assert_int_equal(affinity_pod_identify(rs, NS, "", &p, NULL), 0);
	assert_string_equal(p.ns, NS);
	assert_string_equal(p.group, "web");
	assert_null(p.pod);
	assert_string_equal(p.generate_name, "web-7d9f8-");
	assert_string_equal(p.owner, "ReplicaSet/web-7d9f8");
	assert_string_equal(p.pool, "default");
	affinity_pod_done(&p);

	assert_int_equal(affinity_pod_identify(sts, NS, "", &p, NULL), 0);
	assert_string_equal(p.group, "db");
	assert_string_equal(p.pod, "db-0");
	assert_string_equal(p.owner, "StatefulSet/db");
	affinity_pod_done(&p);

	assert_int_equal(affinity_pod_identify(bare, NS, "", &p, NULL), 0);
	assert_null(p.group);
	assert_string_equal(p.pod, "solo");
	assert_null(p.owner);
	affinity_pod_done(&p);

	/* unnamed pods of other owners form a workload named after their generateName */
	assert_int_equal(affinity_pod_identify(job, NS, "", &p, NULL), 0);
	assert_string_equal(p.group, "backup-28765");
	assert_null(p.pod);
	affinity_pod_done(&p);

	/* the request's name and namespace stand in for the object's */
	assert_int_equal(affinity_pod_identify(anon, "other-ns", "from-request", &p, NULL), 0);
	assert_string_equal(p.ns, "other-ns");
	assert_string_equal(p.pod, "from-request");
	assert_null(p.group);
	affinity_pod_done(&p);

	assert_int_equal(affinity_pod_identify(anon, NS, "", &p, &error), -EINVAL);
	assert_string_equal(error, "pod in namespace team-a has no metadata.name and no usable "
				   "metadata.generateName");
	free(error);
	assert_int_equal(affinity_pod_identify(bad_gen, NS, NULL, &p, &error), -EINVAL);
	free(error);
	json_object_del(json_object_get(bare, "metadata"), "namespace");
	assert_int_equal(affinity_pod_identify(bare, "", "", &p, &error), -EINVAL);
	assert_string_equal(error, "pod has no namespace (neither request.namespace nor "
				   "metadata.namespace)");
	free(error);
	json_decref(rs);
	json_decref(sts);
	json_decref(bare);
	json_decref(job);
	json_decref(anon);
	json_decref(bad_gen);
}

/* spec.nodeSelector, then the label, then the annotation, then "default". */
static void test_pool_resolution(void **state)
{
	static const char *const rows[][2] = {
		{ "{\"metadata\":{\"name\":\"p\",\"labels\":{\"cocoonstack.io/pool\":\"lbl\"},"
		  "\"annotations\":{\"cocoonstack.io/pool\":\"ann\"}},\"spec\":{\"nodeSelector\":{"
		  "\"cocoonstack.io/pool\":\"sel\"}}}",
		  "sel" },
		{ "{\"metadata\":{\"name\":\"p\",\"labels\":{\"cocoonstack.io/pool\":\"lbl\"},"
		  "\"annotations\":{\"cocoonstack.io/pool\":\"ann\"}},\"spec\":{}}",
		  "lbl" },
		{ "{\"metadata\":{\"name\":\"p\",\"labels\":{\"cocoonstack.io/pool\":\"\"},"
		  "\"annotations\":{\"cocoonstack.io/pool\":\"ann\"}},\"spec\":{}}",
		  "ann" },
		{ "{\"metadata\":{\"name\":\"p\"},\"spec\":{}}", "default" },
	};
	struct affinity_pod p;
	char *name = NULL, *error = NULL;

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		json_t *pod = load(rows[i][0]);

		assert_int_equal(affinity_pod_identify(pod, NS, "", &p, NULL), 0);
		assert_string_equal(p.pool, rows[i][1]);
		affinity_pod_done(&p);
		json_decref(pod);
	}
	assert_int_equal(affinity_configmap_name("gpu-a100", &name, NULL), 0);
	assert_string_equal(name, "cocoon-affinity-gpu-a100");
	free(name);
	assert_int_equal(affinity_configmap_name("GPU_A", &name, &error), -EINVAL);
	assert_string_equal(error,
			    "pool \"GPU_A\" cannot name ConfigMap cocoon-affinity-<pool>: it "
			    "must be a lowercase RFC 1123 label (at most 63 of a-z, 0-9 and "
			    "'-', starting and ending with a letter or digit)");
	free(error);
	assert_int_equal(
	    affinity_configmap_name("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				    "aaaaaaaaaaaaa",
				    &name, NULL),
	    -EINVAL);
}

/* A burst of unnamed replicas, none created yet: each gets its own slot. */
static void test_slots_for_a_burst(void **state)
{
	json_t *pod = pod_new(NULL, "web-7d9f8-", "ReplicaSet/web-7d9f8");
	struct cluster c;
	char want[64];

	cluster_init(&c, 2);
	for (int i = 0; i < 5; i++) {
		char *key;
		json_t *res = admit(&c, pod, &key);

		snprintf(want, sizeof want, NS ".web.%d", i);
		assert_string_equal(key, want);
		snprintf(want, sizeof want, "vk-" NS "-web-%d", i);
		assert_string_equal(res_str(res, "vmName"), want);
		assert_int_equal(res_slot(res), i);
		free(key);
		json_decref(res);
	}
	cluster_done(&c);
	json_decref(pod);
}

/* Slots freed by the reaper are filled smallest first. */
static void test_slot_gaps(void **state)
{
	json_t *pod = pod_new(NULL, "web-7d9f8-", "ReplicaSet/web-7d9f8");
	json_t *data, *res, *keys;
	struct cluster c;
	char *key;

	cluster_init(&c, 1);
	for (int i = 0; i < 4; i++) {
		char name[32];

		res = admit(&c, pod, NULL);
		snprintf(name, sizeof name, "web-7d9f8-%c", 'a' + i);
		create(&c, pod, name, res);
		json_decref(res);
	}
	/* slots 1 and 2 released, their pods gone */
	delete (&c, "web-7d9f8-b");
	delete (&c, "web-7d9f8-c");
	keys = json_pack("[s,s]", NS ".web.1", NS ".web.2");
	assert_int_equal(affinity_data_release(c.configmap, keys, &data), 0);
	json_decref(keys);
	json_object_set_new(c.configmap, "data", data);
	res = admit(&c, pod, &key);
	assert_string_equal(key, NS ".web.1");
	free(key);
	json_decref(res);
	res = admit(&c, pod, &key);
	assert_string_equal(key, NS ".web.2");
	free(key);
	json_decref(res);
	res = admit(&c, pod, &key);
	assert_string_equal(key, NS ".web.4");
	free(key);
	json_decref(res);
	cluster_done(&c);
	json_decref(pod);
}

/* n replicas of pod admitted and created as web-7d9f8-<i>; res[i] their reservations. */
static void replicas_up(struct cluster *c, json_t *pod, int n, json_t **res)
{
	for (int i = 0; i < n; i++) {
		char name[32];

		res[i] = admit(c, pod, NULL);
		snprintf(name, sizeof name, "web-7d9f8-%d", i);
		create(c, pod, name, res[i]);
	}
}

/* A replacement takes the slot (VM name and node) of the pod that is gone; a reservation
 * made moments ago whose pod is not visible yet is not "gone". */
static void test_slot_reuse_of_gone_pod(void **state)
{
	json_t *pod = pod_new(NULL, "web-7d9f8-", "ReplicaSet/web-7d9f8");
	json_t *next_rs = pod_new(NULL, "web-5c6b7-", "ReplicaSet/web-5c6b7");
	json_t *res[3], *r;
	struct cluster c;
	char *key;

	cluster_init(&c, 3);
	replicas_up(&c, pod, 3, res);
	c.now += 3600;
	delete (&c, "web-7d9f8-1");
	r = admit(&c, next_rs, &key); /* a pod of the Deployment's next ReplicaSet */
	assert_string_equal(key, NS ".web.1");
	assert_string_equal(res_str(r, "vmName"), "vk-" NS "-web-1");
	assert_string_equal(res_str(r, "node"), res_str(res[1], "node"));
	assert_string_equal(res_str(r, "generateName"), "web-5c6b7-");
	assert_string_equal(res_str(r, "owner"), "ReplicaSet/web-5c6b7");
	assert_string_equal(res_str(r, "updatedAt"), "2026-04-10T13:00:00Z");
	free(key);
	json_decref(r);
	/* slot 1 was just handed out and its pod is not created yet: the next one gets 3 */
	c.now += 10;
	admit_expect(&c, pod, NS ".web.3");
	/* past the pending window, an uncreated reservation is free again */
	c.now += AFFINITY_PENDING_SEC;
	admit_expect(&c, pod, NS ".web.1");
	for (int i = 0; i < 3; i++)
		json_decref(res[i]);
	cluster_done(&c);
	json_decref(pod);
	json_decref(next_rs);
}

/* A Job and a bare pod whose generateName is the Deployment's name share its slot space but
 * never inherit a gone replica's slot (its VM); the Deployment's next pod does, and so does
 * one whose reservation predates the owner field (G2). */
static void test_slot_reuse_needs_same_owner_kind(void **state)
{
	json_t *pod = pod_new(NULL, "web-7d9f8-", "ReplicaSet/web-7d9f8");
	json_t *job = pod_new(NULL, "web-", "Job/web");
	json_t *bare = pod_new(NULL, "web-", NULL);
	json_t *res[2], *r, *data;
	struct cluster c;
	char *key;

	cluster_init(&c, 2);
	replicas_up(&c, pod, 2, res);
	c.now += 3600;
	delete (&c, "web-7d9f8-1");
	r = admit(&c, job, &key);
	assert_string_equal(key, NS ".web.2");
	create(&c, job, "web-abcde", r);
	free(key);
	json_decref(r);
	r = admit(&c, bare, &key);
	assert_string_equal(key, NS ".web.3");
	create(&c, bare, "web-fghij", r);
	free(key);
	json_decref(r);
	r = admit(&c, pod, &key);
	assert_string_equal(key, NS ".web.1");
	assert_string_equal(res_str(r, "vmName"), "vk-" NS "-web-1");
	free(key);
	json_decref(r);
	/* a G2 entry (no owner, no generateName) for a gone replica goes to the Deployment */
	data = json_object_get(c.configmap, "data");
	json_object_set_new(data, NS ".web.7",
			    json_string("{\"pool\":\"default\",\"namespace\":\"" NS "\","
					"\"deployment\":\"web\",\"slot\":7,\"vmName\":\"vk-" NS
					"-web-7\",\"pod\":\"\",\"node\":\"node-0\","
					"\"updatedAt\":\"2026-04-10T10:00:00Z\"}"));
	admit_expect(&c, job, NS ".web.4");
	admit_expect(&c, pod, NS ".web.7");
	for (int i = 0; i < 2; i++)
		json_decref(res[i]);
	cluster_done(&c);
	json_decref(pod);
	json_decref(job);
	json_decref(bare);
}

/* StatefulSet pods keep their slot by name; unnamed pods never take a named pod's slot. */
static void test_named_pods_keep_their_slot(void **state)
{
	json_t *db0 = pod_new("db-0", NULL, "StatefulSet/db");
	json_t *db1 = pod_new("db-1", NULL, "StatefulSet/db");
	json_t *unnamed = pod_new(NULL, "db-", "Job/db");
	json_t *r0, *r1, *again, *other;
	struct cluster c;

	cluster_init(&c, 2);
	r0 = admit(&c, db0, NULL);
	create(&c, db0, "db-0", r0);
	r1 = admit(&c, db1, NULL);
	create(&c, db1, "db-1", r1);
	assert_int_equal(res_slot(r0), 0);
	assert_int_equal(res_slot(r1), 1);
	assert_string_not_equal(res_str(r0, "node"), res_str(r1, "node"));
	c.now += 7200;
	delete (&c, "db-0");
	other = admit(&c, unnamed, NULL);
	assert_int_equal(res_slot(other), 2);
	again = admit(&c, db0, NULL);
	assert_int_equal(res_slot(again), 0);
	assert_string_equal(res_str(again, "vmName"), "vk-" NS "-db-0");
	assert_string_equal(res_str(again, "node"), res_str(r0, "node"));
	assert_string_equal(res_str(again, "pod"), "db-0");
	json_decref(r0);
	json_decref(r1);
	json_decref(again);
	json_decref(other);
	cluster_done(&c);
	json_decref(db0);
	json_decref(db1);
	json_decref(unnamed);
}

/* 200 replicas: 200 distinct slots and VM names, spread evenly over the nodes. */
static void test_many_replicas(void **state)
{
	json_t *pod = pod_new(NULL, "big-6f5d4-", "ReplicaSet/big-6f5d4");
	json_t *reservations, *seen = json_object(), *per_node = json_object(), *res;
	const char *key;
	struct cluster c;
	char *error = NULL;

	cluster_init(&c, 3);
	for (int i = 0; i < 200; i++) {
		char name[32];

		res = admit(&c, pod, NULL);
		snprintf(name, sizeof name, "big-6f5d4-%03d", i);
		if (i % 2)
			create(&c, pod, name, res); /* half of them already running */
		json_decref(res);
	}
	assert_int_equal(affinity_reservations_parse(c.configmap, &reservations, &error), 0);
	assert_int_equal(json_object_size(reservations), 200);
	json_object_foreach (reservations, key, res) {
		const char *node = res_str(res, "node");

		assert_null(json_object_get(seen, res_str(res, "vmName")));
		json_object_set_new(seen, res_str(res, "vmName"), json_true());
		assert_true(res_slot(res) < 200);
		json_object_set_new(
		    per_node, node,
		    json_integer(json_integer_value(json_object_get(per_node, node)) + 1));
	}
	assert_int_equal(json_object_size(per_node), 3);
	json_object_foreach (per_node, key, res)
		assert_in_range(json_integer_value(res), 66, 67);
	json_decref(reservations);
	json_decref(seen);
	json_decref(per_node);
	cluster_done(&c);
	json_decref(pod);
}

/* Bare pods are keyed by name: two never share a key, and one comes back to its own. */
static void test_bare_pods(void **state)
{
	json_t *a = pod_new("a", NULL, NULL), *b = pod_new("b", NULL, NULL);
	json_t *ra, *rb, *again, *reservations, *live;
	json_t *web = pod_new(NULL, "web-1-", "ReplicaSet/web-1"); /* deployment "web" */
	struct cluster c;
	struct affinity_pod p;
	char *ka, *kb, *key = NULL, *error = NULL;

	cluster_init(&c, 2);
	ra = admit(&c, a, &ka);
	rb = admit(&c, b, &kb);
	assert_string_equal(ka, NS "._pod.a");
	assert_string_equal(kb, NS "._pod.b");
	assert_string_equal(res_str(ra, "vmName"), "vk-" NS "-a");
	assert_string_equal(res_str(rb, "vmName"), "vk-" NS "-b");
	assert_string_equal(res_str(ra, "deployment"), "");
	create(&c, a, "a", ra);
	again = admit(&c, a, &key);
	assert_string_equal(key, ka);
	assert_string_equal(res_str(again, "node"), res_str(ra, "node"));
	free(key);
	json_decref(again);

	/* a bare pod named "web-0" would get the VM name of slot 0 of Deployment "web" */
	json_decref(admit(&c, web, NULL));
	json_t *clash = pod_new("web-0", NULL, NULL);
	assert_int_equal(affinity_pod_identify(clash, NS, "", &p, NULL), 0);
	assert_int_equal(affinity_reservations_parse(c.configmap, &reservations, NULL), 0);
	assert_int_equal(affinity_live_index(c.pods, &live), 0);
	struct affinity_view v = { "default", reservations, live, c.nodes, c.now };
	assert_int_equal(affinity_reserve(&v, &p, &key, &again, &error), -EEXIST);
	assert_string_equal(error,
			    "VM name vk-team-a-web-0 of pod team-a/web-0 is already reserved "
			    "as team-a.web.0 in cocoon-affinity-default");
	free(error);
	affinity_pod_done(&p);
	json_decref(reservations);
	json_decref(live);
	json_decref(clash);
	free(ka);
	free(kb);
	json_decref(ra);
	json_decref(rb);
	cluster_done(&c);
	json_decref(a);
	json_decref(b);
	json_decref(web);
}

static void test_vm_name_too_long(void **state)
{
	json_t *pod =
	    pod_new(NULL, "x-", "ReplicaSet/a-very-long-deployment-name-for-testing-12-abcde");
	json_t *reservations = json_object(), *live, *res = NULL;
	struct affinity_pod p;
	char *key = NULL, *error = NULL;

	assert_int_equal(affinity_live_index(NULL, &live), 0);
	assert_int_equal(affinity_pod_identify(pod, "a-namespace-of-some-length", "", &p, NULL), 0);
	struct affinity_view v = { "default", reservations, live, NULL, NOW };
	assert_int_equal(affinity_reserve(&v, &p, &key, &res, &error), -ENAMETOOLONG);
	assert_null(key);
	assert_string_equal(
	    error, "VM name vk-a-namespace-of-some-length-a-very-long-deployment-name-for-"
		   "testing-12-0 for a-namespace-of-some-length/a-very-long-deployment-"
		   "name-for-testing-12 is not a valid cocoon VM name (at most 63 characters "
		   "of a-z, A-Z, 0-9, '.', '_' and '-'); use a shorter namespace or workload "
		   "name");
	free(error);
	affinity_pod_done(&p);
	json_decref(reservations);
	json_decref(live);
	json_decref(pod);
}

/* Fewest live pods plus outstanding reservations wins; ties go by name; NotReady,
 * cordoned and other pools' nodes are never picked. */
static void test_least_used(void **state)
{
	json_t *nodes = json_pack(
	    "[o,o,o,o,o,o,o]", node_new("n1", "default", true, false),
	    node_new("n2", "default", true, false), node_new("n3", "default", true, false),
	    node_new("n4", "default", false, false), node_new("n5", "default", true, true),
	    node_new("n6", "gpu", true, false), node_new("n0", "default", true, false));
	json_t *pods = load("[{\"metadata\":{\"namespace\":\"x\",\"name\":\"p1\"},\"spec\":{"
			    "\"nodeName\":\"n1\"}},{\"metadata\":{\"namespace\":\"x\",\"name\":"
			    "\"p2\"},\"spec\":{\"nodeName\":\"n1\"}},{\"metadata\":{\"namespace\":"
			    "\"x\",\"name\":\"p3\"},\"spec\":{\"nodeName\":\"n2\"}},{\"metadata\":{"
			    "\"namespace\":\"x\",\"name\":\"p4\"},\"spec\":{\"nodeName\":\"n3\"}},"
			    "{\"metadata\":{\"namespace\":\"x\",\"name\":\"p5\"},\"spec\":{"
			    "\"nodeName\":\"n0\"}},{\"metadata\":{\"namespace\":\"x\",\"name\":"
			    "\"done\"},\"spec\":{\"nodeName\":\"n0\"},\"status\":{\"phase\":"
			    "\"Succeeded\"}}]");
	/* n2 has one reservation whose pod does not exist yet; n0 has a held one */
	json_t *reservations = load("{\"x.web.0\":{\"namespace\":\"x\",\"vmName\":\"vk-x-web-0\","
				    "\"slot\":0,\"node\":\"n2\",\"updatedAt\":\"" NOW_TEXT "\"},"
				    "\"bad\":null}");
	json_t *live;
	const char *picked = NULL;

	assert_int_equal(affinity_live_index(pods, &live), 0);
	struct affinity_view v = { "default", reservations, live, nodes, NOW };
	/* n0: 1, n1: 2, n2: 1 + 1, n3: 1 → n0 and n3 tie, n0 first by name */
	assert_int_equal(affinity_pick_node(&v, &picked), 0);
	assert_string_equal(picked, "n0");
	json_array_remove(nodes, 6);
	assert_int_equal(affinity_pick_node(&v, &picked), 0);
	assert_string_equal(picked, "n3");
	v.pool = "gpu";
	assert_int_equal(affinity_pick_node(&v, &picked), 0);
	assert_string_equal(picked, "n6");
	v.pool = "empty";
	assert_int_equal(affinity_pick_node(&v, &picked), -ENOENT);
	v.nodes = NULL;
	v.pool = "default";
	assert_int_equal(affinity_pick_node(&v, &picked), -ENOENT);
	json_decref(live);
	json_decref(nodes);
	json_decref(pods);
	json_decref(reservations);
}

/* A pinned node stays while it is in the pool (even NotReady: the VM's disk is there);
 * a node that left the pool is replaced; no node at all leaves the choice to the
 * scheduler. */
static void test_pinned_node(void **state)
{
	json_t *pod = pod_new("db-0", NULL, "StatefulSet/db"), *res;
	struct cluster c;

	cluster_init(&c, 2);
	res = admit(&c, pod, NULL);
	assert_string_equal(res_str(res, "node"), "node-0");
	json_decref(res);
	json_array_set_new(c.nodes, 0, node_new("node-0", "default", false, false));
	res = admit(&c, pod, NULL);
	assert_string_equal(res_str(res, "node"), "node-0");
	json_decref(res);
	json_array_set_new(c.nodes, 0, node_new("node-0", "elsewhere", true, false));
	res = admit(&c, pod, NULL);
	assert_string_equal(res_str(res, "node"), "node-1");
	json_decref(res);
	json_array_clear(c.nodes);
	res = admit(&c, pod, NULL);
	assert_string_equal(res_str(res, "node"), "");
	json_decref(res);
	cluster_done(&c);
	json_decref(pod);
}

static void test_reservation_golden(void **state)
{
	json_t *pod = pod_new(NULL, "web-7d9f8-", "ReplicaSet/web-7d9f8"), *res;
	struct cluster c;
	char *key, *s;

	cluster_init(&c, 1);
	res = admit(&c, pod, &key);
	s = dump(res);
	assert_string_equal(key, "team-a.web.0");
	assert_string_equal(s,
			    "{\"pool\":\"default\",\"namespace\":\"team-a\",\"deployment\":\"web\","
			    "\"slot\":0,\"vmName\":\"vk-team-a-web-0\",\"pod\":\"\","
			    "\"generateName\":\"web-7d9f8-\",\"owner\":\"ReplicaSet/web-7d9f8\","
			    "\"node\":\"node-0\",\"updatedAt\":\"2026-04-10T12:00:00Z\"}");
	free(s);
	s = dump(c.configmap);
	assert_string_equal(
	    s, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
	       "\"cocoon-affinity-default\",\"namespace\":\"cocoon-system\",\"labels\":{"
	       "\"app.kubernetes.io/managed-by\":\"cocoon-webhook\",\"cocoonstack.io/pool\":"
	       "\"default\"}},\"data\":{\"team-a.web.0\":\"{\\\"pool\\\":\\\"default\\\","
	       "\\\"namespace\\\":\\\"team-a\\\",\\\"deployment\\\":\\\"web\\\",\\\"slot\\\":0,"
	       "\\\"vmName\\\":\\\"vk-team-a-web-0\\\",\\\"pod\\\":\\\"\\\",\\\"generateName\\\":"
	       "\\\"web-7d9f8-\\\",\\\"owner\\\":\\\"ReplicaSet/web-7d9f8\\\",\\\"node\\\":"
	       "\\\"node-0\\\",\\\"updatedAt\\\":\\\"2026-04-10T12:00:00Z\\\"}\"}}");
	free(s);
	free(key);
	json_decref(res);
	cluster_done(&c);
	json_decref(pod);
}

static void expect_patch(const char *pod_text, const char *res_text, const char *want)
{
	json_t *pod = load(pod_text), *res = load(res_text), *patch = NULL;
	char *s;

	assert_int_equal(affinity_pod_patch(pod, res, &patch), 0);
	s = dump(patch);
	assert_string_equal(s, want);
	free(s);
	json_decref(patch);
	json_decref(pod);
	json_decref(res);
}

static void test_patch_golden(void **state)
{
	json_t *pod = load("{}"), *res = load("{\"node\":\"n1\"}"), *patch = NULL;

	expect_patch("{\"metadata\":{\"generateName\":\"web-\",\"annotations\":{\"a\":\"b\"}},"
		     "\"spec\":{}}",
		     "{\"vmName\":\"vk-ns-web-0\",\"node\":\"n1\"}",
		     "[{\"op\":\"add\",\"path\":\"/metadata/annotations/vm.cocoonstack.io~1name\","
		     "\"value\":\"vk-ns-web-0\"},{\"op\":\"add\",\"path\":\"/spec/nodeName\","
		     "\"value\":\"n1\"}]");
	expect_patch("{\"metadata\":{\"generateName\":\"web-\"},\"spec\":{}}",
		     "{\"vmName\":\"vk-ns-web-0\",\"node\":\"n1\"}",
		     "[{\"op\":\"add\",\"path\":\"/metadata/annotations\",\"value\":{}},{\"op\":"
		     "\"add\",\"path\":\"/metadata/annotations/vm.cocoonstack.io~1name\","
		     "\"value\":\"vk-ns-web-0\"},{\"op\":\"add\",\"path\":\"/spec/nodeName\","
		     "\"value\":\"n1\"}]");
	expect_patch("{\"metadata\":{\"name\":\"p\",\"annotations\":null},\"spec\":{}}",
		     "{\"vmName\":\"vk-ns-p\",\"node\":\"\"}",
		     "[{\"op\":\"add\",\"path\":\"/metadata/annotations\",\"value\":{}},{\"op\":"
		     "\"add\",\"path\":\"/metadata/annotations/vm.cocoonstack.io~1name\","
		     "\"value\":\"vk-ns-p\"}]");
	expect_patch("{\"spec\":{}}", "{\"vmName\":\"vk-ns-p\"}",
		     "[{\"op\":\"add\",\"path\":\"/metadata\",\"value\":{}},{\"op\":\"add\","
		     "\"path\":\"/metadata/annotations\",\"value\":{}},{\"op\":\"add\",\"path\":"
		     "\"/metadata/annotations/vm.cocoonstack.io~1name\",\"value\":\"vk-ns-p\"}]");
	assert_int_equal(affinity_pod_patch(pod, res, &patch), -EINVAL);
	json_decref(pod);
	json_decref(res);
}

static void test_configmap_data(void **state)
{
	json_t *cm =
	    load("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
		 "\"cocoon-affinity-default\",\"namespace\":\"cocoon-system\","
		 "\"resourceVersion\":\"42\",\"labels\":{\"keep\":\"me\"}},\"data\":{"
		 "\"ns.old.0\":\"{ \\\"kept\\\" : \\\"verbatim\\\" }\",\"ns.web.0\":\"x\"}}");
	json_t *res = load("{\"pool\":\"default\",\"vmName\":\"vk-ns-web-1\"}");
	json_t *data = NULL, *out = NULL, *reservations = NULL, *keys;
	char *error = NULL, *big;

	assert_int_equal(affinity_data_put(cm, "ns.web.1", res, &data, &error), 0);
	assert_string_equal(json_string_value(json_object_get(data, "ns.old.0")),
			    "{ \"kept\" : \"verbatim\" }");
	assert_string_equal(json_string_value(json_object_get(data, "ns.web.1")),
			    "{\"pool\":\"default\",\"vmName\":\"vk-ns-web-1\"}");
	assert_int_equal(affinity_configmap_build(cm, "default", data, &out), 0);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(out, "metadata"), "resourceVersion")),
	    "42");
	assert_string_equal(
	    json_string_value(json_object_get(
		json_object_get(json_object_get(out, "metadata"), "labels"), "keep")),
	    "me");
	assert_int_equal(json_object_size(json_object_get(out, "data")), 3);
	json_decref(data);
	json_decref(out);

	/* values that are not Reservations hold their key but parse as null */
	assert_int_equal(affinity_reservations_parse(cm, &reservations, &error), 0);
	assert_true(json_is_null(json_object_get(reservations, "ns.web.0")));
	assert_true(json_is_null(json_object_get(reservations, "ns.old.0")));
	json_decref(reservations);

	keys = json_pack("[s,s]", "ns.web.0", "absent");
	assert_int_equal(affinity_data_release(cm, keys, &data), 0);
	assert_int_equal(json_object_size(data), 1);
	json_decref(data);
	json_decref(keys);

	/* the 1 MB cap */
	big = malloc(AFFINITY_DATA_MAX);
	memset(big, 'a', AFFINITY_DATA_MAX - 1);
	big[AFFINITY_DATA_MAX - 1] = '\0';
	json_object_set_new(json_object_get(cm, "data"), "huge", json_string(big));
	free(big);
	assert_int_equal(affinity_data_put(cm, "ns.web.1", res, &data, &error), -E2BIG);
	assert_non_null(strstr(error, "ConfigMap cocoon-affinity-default would hold "));
	assert_non_null(strstr(error, "reservation ns.web.1 refused"));
	free(error);

	json_object_set_new(cm, "data", json_string("x"));
	assert_int_equal(affinity_reservations_parse(cm, &reservations, &error), -EINVAL);
	assert_string_equal(error, "ConfigMap cocoon-affinity-default: data: expected an object");
	free(error);
	json_object_set_new(cm, "data", json_pack("{s:i}", "k", 1));
	assert_int_equal(affinity_reservations_parse(cm, &reservations, &error), -EINVAL);
	assert_string_equal(error,
			    "ConfigMap cocoon-affinity-default: data[\"k\"]: expected a string");
	free(error);
	assert_int_equal(affinity_reservations_parse(NULL, &reservations, NULL), 0);
	assert_int_equal(json_object_size(reservations), 0);
	json_decref(reservations);
	json_decref(cm);
	json_decref(res);
}

/* An entry whose value is garbage still occupies its slot. */
static void test_malformed_entry_holds_slot(void **state)
{
	json_t *pod = pod_new(NULL, "web-7d9f8-", "ReplicaSet/web-7d9f8"), *res;
	struct cluster c;
	char *key;

	cluster_init(&c, 1);
	c.configmap = load("{\"metadata\":{\"name\":\"cocoon-affinity-default\"},\"data\":{"
			   "\"team-a.web.0\":\"not json\"}}");
	res = admit(&c, pod, &key);
	assert_string_equal(key, "team-a.web.1");
	free(key);
	json_decref(res);
	cluster_done(&c);
	json_decref(pod);
}

static void test_live_index(void **state)
{
	json_t *pods = load("{\"kind\":\"PodList\",\"items\":[{\"metadata\":{\"namespace\":\"a\","
			    "\"name\":\"p\",\"annotations\":{\"cocoon.cis/vm-name\":\"vk-a-p\"}},"
			    "\"spec\":{\"nodeName\":\"n1\"},\"status\":{\"phase\":\"Running\"}},"
			    "{\"metadata\":{\"namespace\":\"a\",\"name\":\"q\"},\"spec\":{"
			    "\"nodeName\":\"n1\"}},{\"metadata\":{\"namespace\":\"a\",\"name\":"
			    "\"f\",\"annotations\":{\"vm.cocoonstack.io/name\":\"vk-a-f\"}},"
			    "\"spec\":{\"nodeName\":\"n2\"},\"status\":{\"phase\":\"Failed\"}},"
			    "{\"metadata\":{\"name\":\"no-namespace\"}}]}");
	json_t *live;
	char *s;

	assert_int_equal(affinity_live_index(pods, &live), 0);
	s = dump(live);
	assert_string_equal(s, "{\"pods\":{\"a/p\":\"vk-a-p\",\"a/q\":\"\"},\"vms\":{\"vk-a-p\":"
			       "\"a/p\"},\"nodes\":{\"n1\":2}}");
	free(s);
	json_decref(live);
	json_decref(pods);
}

/* The informers cache every pod of the cluster: only what the decisions read is kept, and
 * they decide the same over the trimmed objects. */
static void test_trim(void **state)
{
	json_t *pod = load(
	    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"namespace\":\"a\","
	    "\"name\":\"p\",\"uid\":\"u1\",\"resourceVersion\":\"7\",\"labels\":{\"app\":"
	    "\"web\"},\"annotations\":{\"vm.cocoonstack.io/name\":\"vk-a-p\",\"cocoon.cis/"
	    "vm-name\":\"old\",\"kubectl.kubernetes.io/last-applied-configuration\":\"{...}\"},"
	    "\"ownerReferences\":[{\"kind\":\"ReplicaSet\",\"name\":\"web-1\"}]},\"spec\":{"
	    "\"nodeName\":\"n1\",\"containers\":[{\"name\":\"c\",\"image\":\"busybox\"}],"
	    "\"tolerations\":[{\"key\":\"virtual-kubelet.io/provider\"}]},\"status\":{"
	    "\"phase\":\"Running\",\"conditions\":[{\"type\":\"Ready\",\"status\":"
	    "\"True\"}],\"podIP\":\"10.0.0.1\"}}");
	json_t *node =
	    load("{\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\",\"resourceVersion\":\"3\","
		 "\"labels\":{\"cocoonstack.io/pool\":\"default\",\"kubernetes.io/hostname\":"
		 "\"n1\"},\"annotations\":{\"x\":\"y\"}},\"spec\":{\"unschedulable\":false,"
		 "\"taints\":[{\"key\":\"k\"}]},\"status\":{\"conditions\":[{\"type\":\"Ready\","
		 "\"status\":\"True\",\"message\":\"kubelet is posting ready status\"}],"
		 "\"images\":[{\"names\":[\"busybox\"],\"sizeBytes\":1}]}}");
	json_t *before, *after, *pods = json_pack("[O]", pod), *nodes = json_pack("[O]", node);
	char *s, *t;

	assert_int_equal(affinity_live_index(pods, &before), 0);
	affinity_pod_trim(pod);
	affinity_node_trim(node);
	s = dump(pod);
	assert_string_equal(s, "{\"metadata\":{\"namespace\":\"a\",\"name\":\"p\",\"uid\":"
			       "\"u1\",\"resourceVersion\":\"7\",\"annotations\":{"
			       "\"vm.cocoonstack.io/name\":\"vk-a-p\",\"cocoon.cis/vm-name\":"
			       "\"old\"}},\"spec\":{\"nodeName\":\"n1\"},\"status\":{\"phase\":"
			       "\"Running\"}}");
	free(s);
	s = dump(node);
	assert_string_equal(s, "{\"metadata\":{\"name\":\"n1\",\"resourceVersion\":\"3\","
			       "\"labels\":{\"cocoonstack.io/pool\":\"default\"}},\"spec\":{"
			       "\"unschedulable\":false},\"status\":{\"conditions\":[{\"type\":"
			       "\"Ready\",\"status\":\"True\"}]}}");
	free(s);
	/* the same live index and the same node pick */
	assert_int_equal(affinity_live_index(pods, &after), 0);
	s = dump(before);
	t = dump(after);
	assert_string_equal(s, t);
	free(s);
	free(t);
	{
		struct affinity_view v = { .pool = "default",
					   .reservations = NULL,
					   .live = after,
					   .nodes = nodes,
					   .now = NOW };
		const char *picked = NULL;

		assert_int_equal(affinity_pick_node(&v, &picked), 0);
		assert_string_equal(picked, "n1");
	}
	json_decref(before);
	json_decref(after);
	json_decref(pods);
	json_decref(nodes);
	json_decref(pod);
	json_decref(node);
}

static void test_reaper(void **state)
{
	json_t *reservations = load(
	    "{\"a.web.0\":{\"namespace\":\"a\",\"vmName\":\"vk-a-web-0\",\"slot\":0,\"pod\":\"\","
	    "\"updatedAt\":\"2026-04-10T10:00:00Z\"},"
	    "\"a.web.1\":{\"namespace\":\"a\",\"vmName\":\"vk-a-web-1\",\"slot\":1,\"pod\":\"\","
	    "\"updatedAt\":\"2026-04-10T10:00:00Z\"},"
	    "\"a.db.0\":{\"namespace\":\"a\",\"vmName\":\"vk-a-db-0\",\"slot\":0,\"pod\":"
	    "\"db-0\",\"updatedAt\":\"2026-04-10T10:00:00Z\"},"
	    "\"a.web.2\":{\"namespace\":\"a\",\"vmName\":\"vk-a-web-2\",\"slot\":2,\"pod\":\"\","
	    "\"updatedAt\":\"2026-04-10T13:50:00.25+02:00\"},"
	    "\"a.web.3\":{\"namespace\":\"a\",\"vmName\":\"vk-a-web-3\",\"slot\":3,\"pod\":\"\","
	    "\"updatedAt\":\"2026-04-10T10:00:00Z\"},"
	    "\"junk\":null}");
	/* web-0 is carried by a live pod, db-0 is live by name (no VM annotation yet), and
	 * vk-a-web-3 is carried by a pod in another namespace, which does not count */
	json_t *pods =
	    load("[{\"metadata\":{\"namespace\":\"a\",\"name\":\"web-x\",\"annotations\":"
		 "{\"vm.cocoonstack.io/name\":\"vk-a-web-0\"}}},{\"metadata\":{"
		 "\"namespace\":\"a\",\"name\":\"db-0\"}},{\"metadata\":{\"namespace\":"
		 "\"b\",\"name\":\"imposter\",\"annotations\":{\"vm.cocoonstack.io/name\""
		 ":\"vk-a-web-3\"}}}]");
	json_t *gone = load("{\"a.web.1\":1775820600,\"a.web.2\":1775820600,\"a.web.0\":1}");
	json_t *live, *release, *next;
	char *s;

	assert_int_equal(affinity_live_index(pods, &live), 0);
	assert_int_equal(affinity_reap(reservations, live, gone, NOW, AFFINITY_REAPER_GRACE_SEC,
				       &release, &next),
			 0);
	json_decref(gone);
	/* web-1 gone since 11:30 (30 min): released. web-2 gone as long, but refreshed at
	 * 11:50: kept. web-3 and junk: first seen gone now. web-1 keeps its time in case the
	 * release is not written. */
	s = dump(release);
	assert_string_equal(s, "[\"a.web.1\"]");
	free(s);
	s = dump(next);
	assert_string_equal(s, "{\"a.web.1\":1775820600,\"a.web.2\":1775820600,"
			       "\"a.web.3\":1775822400,\"junk\":1775822400}");
	free(s);
	json_decref(release);

	/* The PUT of that release failed (409, 500, timeout): the next sweep, one interval
	 * later, releases web-1 again rather than starting a new 30-minute grace. */
	{
		json_t *again, *next2;

		assert_int_equal(affinity_reap(reservations, live, next, NOW + 300,
					       AFFINITY_REAPER_GRACE_SEC, &again, &next2),
				 0);
		s = dump(again);
		assert_string_equal(s, "[\"a.web.1\"]");
		free(s);
		json_decref(again);
		json_decref(next2);
	}

	/* 30 minutes later (web-1 deleted from the table meanwhile), everything still gone is
	 * released; web-0 and db-0 stay */
	json_object_del(reservations, "a.web.1");
	assert_int_equal(affinity_reap(reservations, live, next, NOW + 1800,
				       AFFINITY_REAPER_GRACE_SEC, &release, &gone),
			 0);
	json_decref(next);
	s = dump(release);
	assert_string_equal(s, "[\"a.web.2\",\"a.web.3\",\"junk\"]");
	free(s);
	/* web-1 left the table, so it left the map; web-0 and db-0 are held */
	s = dump(gone);
	assert_string_equal(s, "{\"a.web.2\":1775820600,\"a.web.3\":1775822400,"
			       "\"junk\":1775822400}");
	free(s);
	json_decref(release);
	json_decref(gone);
	json_decref(live);
	json_decref(pods);
	json_decref(reservations);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_skip_reasons),
		cmocka_unit_test(test_identify),
		cmocka_unit_test(test_pool_resolution),
		cmocka_unit_test(test_slots_for_a_burst),
		cmocka_unit_test(test_slot_gaps),
		cmocka_unit_test(test_slot_reuse_of_gone_pod),
		cmocka_unit_test(test_slot_reuse_needs_same_owner_kind),
		cmocka_unit_test(test_named_pods_keep_their_slot),
		cmocka_unit_test(test_many_replicas),
		cmocka_unit_test(test_bare_pods),
		cmocka_unit_test(test_vm_name_too_long),
		cmocka_unit_test(test_least_used),
		cmocka_unit_test(test_pinned_node),
		cmocka_unit_test(test_reservation_golden),
		cmocka_unit_test(test_patch_golden),
		cmocka_unit_test(test_configmap_data),
		cmocka_unit_test(test_malformed_entry_holds_slot),
		cmocka_unit_test(test_live_index),
		cmocka_unit_test(test_trim),
		cmocka_unit_test(test_reaper),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
