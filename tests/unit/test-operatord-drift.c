/* operatord drift.c (operator-webhook.md §2.5): a pod pod_build made never drifts, not even
 * after the apiserver has defaulted it; then one row per field (a user's edit of the set,
 * or a change to the pod) with the exact reason, and one per exception: the "default"
 * ServiceAccount, requests from limits, numeric quantities, affinity and nodeName ignored,
 * snapshot class adoption only while not terminal, fork-from taken from the pod, static
 * toolboxes' runtime keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "test-json.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../operatord/operatord.h"
#include "cocoon/jsonmerge.h"

/* clang-format off */
#define TOOLBOXES(tools_extra) \
	"'toolboxes':[" \
	" {'name':'tools','image':'t'," \
	"  'resources':{'requests':{'cpu':'500m'},'limits':{'cpu':'1'}}" tools_extra "}," \
	" {'name':'win','mode':'static','staticIP':'10.0.0.5','staticVMID':'vm-5','vncPort':5901}]"

#define BASE_SPEC \
	"{'nodePool':'gpu','snapshotCompatibilityClass':'icelake','nodeName':'node-a'," \
	" 'agent':{'image':'img-a','replicas':2,'storage':'20Gi','network':'n1'," \
	"  'connType':'ssh','probePort':22," \
	"  'resources':{'limits':{'cpu':'2','memory':'4Gi'}}," \
	"  'envFrom':[{'configMapRef':{'name':'env'}}]}," \
	" " TOOLBOXES("") "}"
/* clang-format on */

enum who { MAIN, SUB, TOOLS, WIN };
enum target { POD, CONTAINER };

struct row {
	enum who who;
	const char *spec_patch; /* merge patch on BASE_SPEC: the user's edit */
	enum target target;
	const char *pod_patch; /* merge patch on the pod or its container, after defaulting */
	const char *reason;    /* NULL: no drift */
};


static struct cs *parse_spec(const char *spec_patch)
{
	json_auto_t *obj = load_quoted("{'apiVersion':'cocoonset.cocoonstack.io/v1','kind':"
				"'CocoonSet','metadata':{'name':'demo','namespace':"
				"'team-a','uid':'u-1','generation':4},'spec':" BASE_SPEC "}");
	_cleanup_(freep) char *error = NULL;
	struct cs *cs = NULL;

	if (spec_patch) {
		json_auto_t *patch = load_quoted(spec_patch);
		assert_int_equal(json_merge_apply(json_object_get(obj, "spec"), patch), 0);
	}
	if (cs_parse(obj, &cs, &error) < 0)
		fail_msg("cs_parse: %s", error);
	return cs;
}

static json_t *container(json_t *pod)
{
	return json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0);
}

/* What the apiserver and the scheduler do to a pod we created: requests defaulted from
 * limits per resource, the default ServiceAccount, the usual defaulted fields, a node, a
 * status. None of it may read as drift. */
static void apiserver_defaults(json_t *pod)
{
	json_t *res = json_object_get(container(pod), "resources");
	json_t *limits = json_object_get(res, "limits"), *requests, *v;
	json_auto_t *extra = load_quoted("{'metadata':{'uid':'p-1','resourceVersion':'77',"
				  "'creationTimestamp':'2026-01-01T00:00:00Z'},"
				  "'spec':{'restartPolicy':'Always','dnsPolicy':'ClusterFirst',"
				  "'schedulerName':'default-scheduler','enableServiceLinks':true,"
				  "'priority':0,'preemptionPolicy':'PreemptLowerPriority',"
				  "'nodeName':'node-somewhere'},"
				  "'status':{'phase':'Running','conditions':[{'type':'Ready',"
				  "'status':'True'}]}}");
	const char *key;

	if (limits) {
		requests = json_object_get(res, "requests");
		if (!requests) {
			requests = json_object();
			json_object_set_new(res, "requests", requests);
		}
		json_object_foreach (limits, key, v)
			if (!json_object_get(requests, key))
				json_object_set(requests, key, v);
	}
	if (!json_object_get(json_object_get(pod, "spec"), "serviceAccountName")) {
		json_object_set_new(json_object_get(pod, "spec"), "serviceAccountName",
				    json_string("default"));
		json_object_set_new(json_object_get(pod, "spec"), "serviceAccount",
				    json_string("default"));
	}
	json_object_set_new(container(pod), "imagePullPolicy", json_string("Always"));
	json_object_set_new(container(pod), "terminationMessagePath",
			    json_string("/dev/termination-log"));
	assert_int_equal(json_merge_apply(pod, extra), 0);
}

static json_t *build(const struct cs *cs, enum who who)
{
	struct pod_build_options o = {};
	json_t *pod = NULL;

	switch (who) {
	case MAIN:
		o.slot = 0;
		o.preferred_node = "node-hint";
		break;
	case SUB:
		o.slot = 1;
		o.fork_from = "vk-team-a-demo-0";
		o.node_name = "node-a";
		break;
	case TOOLS:
		o.toolbox = cs_toolbox_find(cs, "tools");
		break;
	case WIN:
		o.toolbox = cs_toolbox_find(cs, "win");
		break;
	}
	assert_int_equal(pod_build(cs, &o, &pod), 0);
	apiserver_defaults(pod);
	return pod;
}

static void check(const struct row *r)
{
	_cleanup_(cs_freep) struct cs *base = parse_spec(NULL), *cs = parse_spec(r->spec_patch);
	json_auto_t *pod = build(base, r->who);
	_cleanup_(freep) char *reason = NULL;
	struct cs_pod p;
	bool drifted = false;

	print_message("who %d spec %s pod %s\n", r->who, r->spec_patch ?: "-", r->pod_patch ?: "-");
	if (r->pod_patch) {
		json_auto_t *patch = load_quoted(r->pod_patch);
		assert_int_equal(json_merge_apply(r->target == POD ? pod : container(pod), patch),
				 0);
	}
	assert_int_equal(cs_pod_from_json(pod, &p), 0);
	assert_int_equal(pod_drifted(cs, &p,
				     r->who == TOOLS ? cs_toolbox_find(cs, "tools")
				     : r->who == WIN ? cs_toolbox_find(cs, "win")
						     : NULL,
				     &drifted, &reason),
			 0);
	if (!r->reason) {
		if (drifted)
			fail_msg("unexpected drift: %s", reason);
		assert_null(reason);
		return;
	}
	assert_true(drifted);
	assert_string_equal(reason, r->reason);
}

/* Built, defaulted by the apiserver, scheduled: still the spec. */
static const struct row no_drift[] = {
	{ MAIN },
	{ SUB },
	{ TOOLS },
	{ WIN },
	/* quantities compare by value, in the spec and in the pod */
	{ MAIN, "{'agent':{'resources':{'limits':{'cpu':'2000m','memory':'4096Mi'}}}}" },
	{ MAIN, NULL, CONTAINER,
	  "{'resources':{'limits':{'cpu':'2000m','memory':'4294967296'},"
	  "'requests':{'cpu':'2.0'}}}" },
	{ MAIN, "{'agent':{'storage':'20480Mi'}}" },
	/* requests left out of the spec are defaulted per resource from the limits */
	{ MAIN, "{'agent':{'resources':{'requests':{'cpu':'1'}}}}", CONTAINER,
	  "{'resources':{'requests':{'cpu':'1'}}}" },
	/* a pod the apiserver has not defaulted yet (our own, just built) */
	{ MAIN, NULL, CONTAINER, "{'resources':{'requests':null}}" },
	/* missing on both sides */
	{ MAIN, "{'agent':{'resources':{'limits':{'memory':null}}}}", CONTAINER,
	  "{'resources':{'limits':{'memory':null},'requests':{'memory':null}}}" },
	/* ephemeral-storage and other resources are not compared */
	{ MAIN, NULL, CONTAINER,
	  "{'resources':{'limits':{'ephemeral-storage':'99Gi','nvidia.com/"
	  "gpu':'1'}}}" },
	/* ServiceAccount: unset and "default" are the same */
	{ MAIN, "{'agent':{'serviceAccountName':'default'}}" },
	{ MAIN, "{'agent':{'serviceAccountName':'default'}}", POD,
	  "{'spec':{'serviceAccountName':null,'serviceAccount':null}}" },
	{ MAIN, NULL, POD, "{'spec':{'serviceAccountName':''}}" },
	/* envFrom: absent equals empty */
	{ MAIN, "{'agent':{'envFrom':[]}}", CONTAINER, "{'envFrom':null}" },
	{ MAIN, "{'agent':{'envFrom':null}}", CONTAINER, "{'envFrom':[]}" },
	/* placement is not spec: affinity, nodeName, the pin */
	{ MAIN, "{'nodeName':'node-z'}" },
	{ MAIN, "{'nodeName':null}", POD, "{'spec':{'affinity':null,'nodeName':'n9'}}" },
	{ SUB, NULL, POD, "{'spec':{'nodeName':'elsewhere'}}" },
	/* the VM name and a sub-agent's fork-from are the pod's own */
	{ SUB, NULL, POD,
	  "{'metadata':{'annotations':{'vm.cocoonstack.io/fork-from':'vk-old-0'}}}" },
	{ MAIN, NULL, POD, "{'metadata':{'annotations':{'vm.cocoonstack.io/name':'vk-x'}}}" },
	/* a pod from before the class was set is adopted while it is not terminal */
	{ MAIN, NULL, POD, "{'spec':{'nodeSelector':{'cocoonstack.io/snapshot-cpu-class':null}}}" },
	/* the pool falls back to the label when the selector lacks it */
	{ MAIN, NULL, POD,
	  "{'spec':{'nodeSelector':{'cocoonstack.io/pool':null}},"
	  "'metadata':{'labels':{'cocoonstack.io/pool':'gpu'}}}" },
	/* runtime keys vkd writes, and what the operator patches later */
	{ TOOLS, NULL, POD,
	  "{'metadata':{'annotations':{'vm.cocoonstack.io/id':'i-1',"
	  "'vm.cocoonstack.io/ip':'10.1.1.1','vm.cocoonstack.io/hibernate':'true',"
	  "'cocoonset.cocoonstack.io/generation':'1'}}}" },
	/* toolboxes have no ServiceAccount or envFrom of their own */
	{ TOOLS, "{'agent':{'serviceAccountName':'sa','envFrom':[{'prefix':'X'}]}}" },
	/* booleans and empty strings: "" is absent */
	{ MAIN, NULL, POD,
	  "{'metadata':{'annotations':{'cocoonset.cocoonstack.io/force-pull':''}}}" },
};

static void test_no_drift(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(no_drift); i++)
		check(&no_drift[i]);
}

#define ANN(k) "annotation " k ": "

static const struct row drift[] = {
	{ MAIN, "{'agent':{'image':'img-b'}}", POD, NULL,
	  ANN("cocoonset.cocoonstack.io/image") "want \"img-b\", have \"img-a\"" },
	{ MAIN, "{'agent':{'mode':'run'}}", POD, NULL,
	  ANN("cocoonset.cocoonstack.io/mode") "want \"run\", have \"clone\"" },
	{ MAIN, "{'agent':{'os':'windows'}}", POD, NULL,
	  ANN("cocoonset.cocoonstack.io/os") "want \"windows\", have \"linux\"" },
	{ MAIN, "{'agent':{'storage':'30Gi'}}", POD, NULL,
	  ANN("cocoonset.cocoonstack.io/storage") "want \"30Gi\", have \"20Gi\"" },
	{ MAIN, "{'agent':{'storage':'0'}}", POD, NULL,
	  ANN("cocoonset.cocoonstack.io/storage") "want (unset), have \"20Gi\"" },
	{ MAIN, "{'agent':{'network':null}}", POD, NULL,
	  ANN("cocoonset.cocoonstack.io/network") "want (unset), have \"n1\"" },
	{ MAIN, "{'snapshotPolicy':'never'}", POD, NULL,
	  ANN("cocoonset.cocoonstack.io/snapshot-policy") "want \"never\", have \"always\"" },
	{ MAIN, NULL, POD, "{'metadata':{'annotations':{'vm.cocoonstack.io/fork-from':'vk-x-0'}}}",
	  ANN("vm.cocoonstack.io/fork-from") "want (unset), have \"vk-x-0\"" },
	{ MAIN, NULL, POD, "{'metadata':{'annotations':{'cocoonset.cocoonstack.io/managed':null}}}",
	  ANN("cocoonset.cocoonstack.io/managed") "want \"true\", have (unset)" },
	{ SUB, "{'agent':{'forcePull':true}}", POD, NULL,
	  ANN("cocoonset.cocoonstack.io/force-pull") "want \"true\", have (unset)" },
	{ MAIN, "{'agent':{'noDirectIO':true}}", POD, NULL,
	  ANN("vm.cocoonstack.io/no-direct-io") "want \"true\", have (unset)" },
	{ MAIN, "{'agent':{'connType':'rdp'}}", POD, NULL,
	  ANN("vm.cocoonstack.io/conn-type") "want \"rdp\", have \"ssh\"" },
	{ MAIN, "{'agent':{'backend':'firecracker'}}", POD, NULL,
	  ANN("vm.cocoonstack.io/backend") "want \"firecracker\", have \"cloud-hypervisor\"" },
	{ MAIN, "{'agent':{'probePort':2222}}", POD, NULL,
	  ANN("vm.cocoonstack.io/probe-port") "want \"2222\", have \"22\"" },
	{ MAIN, "{'agent':{'resources':{'limits':{'cpu':'3'}}}}", POD, NULL,
	  "resources.limits.cpu: want \"3\", have \"2\"" },
	{ MAIN, "{'agent':{'resources':{'limits':{'memory':null}}}}", POD, NULL,
	  "resources.limits.memory: want (unset), have \"4Gi\"" },
	{ MAIN, "{'agent':{'resources':{'requests':{'memory':'2Gi'}}}}", POD, NULL,
	  "resources.requests.memory: want \"2Gi\", have \"4Gi\"" },
	{ MAIN, NULL, CONTAINER, "{'resources':{'requests':{'cpu':'1'}}}",
	  "resources.requests.cpu: want \"2\", have \"1\"" },
	{ MAIN, NULL, CONTAINER,
	  "{'resources':{'limits':{'memory':null},'requests':{'memory':null}}}",
	  "resources.limits.memory: want \"4Gi\", have (unset)" },
	{ MAIN, NULL, CONTAINER, "{'resources':{'limits':{'cpu':'two'}}}",
	  "resources.limits.cpu: want \"2\", have \"two\"" },
	{ MAIN, "{'agent':{'serviceAccountName':'other'}}", POD, NULL,
	  "serviceAccountName: want \"other\", have \"default\"" },
	{ MAIN, NULL, POD, "{'spec':{'serviceAccountName':'builder'}}",
	  "serviceAccountName: want \"default\", have \"builder\"" },
	{ MAIN, "{'agent':{'envFrom':[{'secretRef':{'name':'s'}}]}}", POD, NULL,
	  "envFrom: want [{\"secretRef\":{\"name\":\"s\"}}], have "
	  "[{\"configMapRef\":{\"name\":\"env\"}}]" },
	{ MAIN, "{'agent':{'envFrom':null}}", POD, NULL,
	  "envFrom: want [], have [{\"configMapRef\":{\"name\":\"env\"}}]" },
	{ MAIN, "{'nodePool':'cpu'}", POD, NULL,
	  "nodeSelector cocoonstack.io/pool: want \"cpu\", have \"gpu\"" },
	{ MAIN, NULL, POD, "{'spec':{'nodeSelector':{'cocoonstack.io/pool':null}}}",
	  "nodeSelector cocoonstack.io/pool: want \"gpu\", have \"default\"" },
	{ MAIN, "{'snapshotCompatibilityClass':'sapphire'}", POD, NULL,
	  "nodeSelector cocoonstack.io/snapshot-cpu-class: want \"sapphire\", have \"icelake\"" },
	{ MAIN, "{'snapshotCompatibilityClass':null}", POD, NULL,
	  "nodeSelector cocoonstack.io/snapshot-cpu-class: want (unset), have \"icelake\"" },
	/* no adoption for a terminal pod: it is rebuilt anyway, so with the class */
	{ SUB, NULL, POD,
	  "{'spec':{'nodeSelector':{'cocoonstack.io/snapshot-cpu-class':null}},"
	  "'status':{'phase':'Failed'}}",
	  "nodeSelector cocoonstack.io/snapshot-cpu-class: want \"icelake\", have (unset)" },
	{ MAIN, NULL, POD,
	  "{'spec':{'nodeSelector':{'cocoonstack.io/snapshot-cpu-class':null}},"
	  "'metadata':{'annotations':{'vm.cocoonstack.io/lifecycle-state':'failed'}}}",
	  "nodeSelector cocoonstack.io/snapshot-cpu-class: want \"icelake\", have (unset)" },
	/* toolboxes */
	{ TOOLS, "{" TOOLBOXES(",'image':'t2'") "}", POD, NULL,
	  ANN("cocoonset.cocoonstack.io/image") "want \"t2\", have \"t\"" },
	{ TOOLS, "{" TOOLBOXES(",'mode':'clone'") "}", POD, NULL,
	  ANN("cocoonset.cocoonstack.io/mode") "want \"clone\", have \"run\"" },
	{ TOOLS, NULL, CONTAINER, "{'resources':{'requests':{'cpu':'1'}}}",
	  "resources.requests.cpu: want \"500m\", have \"1\"" },
	{ TOOLS, "{'nodePool':'cpu'}", POD, NULL,
	  "nodeSelector cocoonstack.io/pool: want \"cpu\", have \"gpu\"" },
	{ WIN, NULL, POD, "{'metadata':{'annotations':{'vm.cocoonstack.io/id':'vm-6'}}}",
	  ANN("vm.cocoonstack.io/id") "want \"vm-5\", have \"vm-6\"" },
	{ WIN, NULL, POD, "{'metadata':{'annotations':{'vm.cocoonstack.io/ip':null}}}",
	  ANN("vm.cocoonstack.io/ip") "want \"10.0.0.5\", have (unset)" },
	{ WIN, NULL, POD, "{'metadata':{'annotations':{'vm.cocoonstack.io/vnc-port':'5902'}}}",
	  ANN("vm.cocoonstack.io/vnc-port") "want \"5901\", have \"5902\"" },
	{ WIN, NULL, POD,
	  "{'metadata':{'annotations':{'cocoonset.cocoonstack.io/managed':'true'}}}",
	  ANN("cocoonset.cocoonstack.io/managed") "want (unset), have \"true\"" },
	/* one line, whatever the value holds */
	{ MAIN, "{'agent':{'image':'a\\\"b\\nc'}}", POD, NULL,
	  ANN("cocoonset.cocoonstack.io/image") "want \"a\\\"b\\nc\", have \"img-a\"" },
};

static void test_drift(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(drift); i++)
		check(&drift[i]);
}

/* The reason is optional; the verdict is the same without it. */
static void test_reason_optional(void **state)
{
	_cleanup_(cs_freep) struct cs *base = parse_spec(NULL),
				      *cs = parse_spec("{'agent':{'image':'img-b'}}");
	json_auto_t *pod = build(base, MAIN);
	struct cs_pod p;
	bool drifted = false;

	assert_int_equal(cs_pod_from_json(pod, &p), 0);
	assert_int_equal(pod_drifted(cs, &p, NULL, &drifted, NULL), 0);
	assert_true(drifted);
	assert_int_equal(pod_drifted(base, &p, NULL, &drifted, NULL), 0);
	assert_false(drifted);
}

static void test_pod_pool(void **state)
{
	static const struct {
		const char *pod, *pool;
	} rows[] = {
		{ "{'spec':{'nodeSelector':{'cocoonstack.io/pool':'a'}},'metadata':{"
		  "'labels':{'cocoonstack.io/pool':'b'},'annotations':{'cocoonstack.io/"
		  "pool':'c'}}}",
		  "a" },
		{ "{'metadata':{'labels':{'cocoonstack.io/pool':'b'},"
		  "'annotations':{'cocoonstack.io/pool':'c'}}}",
		  "b" },
		{ "{'metadata':{'annotations':{'cocoonstack.io/pool':'c'}}}", "c" },
		{ "{'spec':{'nodeSelector':{'cocoonstack.io/pool':''}}}", "default" },
		{ "{}", "default" },
		{ "[]", "default" },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		json_auto_t *pod = load_quoted(rows[i].pod);

		assert_string_equal(pod_pool(pod), rows[i].pool);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_drift),
		cmocka_unit_test(test_drift),
		cmocka_unit_test(test_reason_optional),
		cmocka_unit_test(test_pod_pool),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
