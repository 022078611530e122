/* operatord podbuild.c: the whole pod of operator-webhook.md §2.4, compared as JSON, for the
 * main agent, a sub-agent, run and static toolboxes and a legacy set; storage as
 * ephemeral-storage in requests and limits; the three placement variants. */
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

/* clang-format off */
#define V1_HEAD     "'apiVersion':'cocoonset.cocoonstack.io/v1','kind':'CocoonSet'"
#define LEGACY_HEAD "'apiVersion':'cocoon.cis/v1alpha1','kind':'CocoonSet'"
#define METADATA    "'metadata':{'name':'demo','namespace':'team-a','uid':'u-1','generation':3}"

/* deploy/samples/cocoonset-v1.yaml plus the agent fields the sample leaves out. */
#define SAMPLE_SPEC \
	"{'snapshotPolicy':'main-only','nodePool':'default'," \
	" 'agent':{'image':'ubuntu-dev-base','mode':'clone','replicas':2,'storage':'20Gi'," \
	"  'resources':{'limits':{'cpu':'2','memory':'4Gi'}}," \
	"  'envFrom':[{'configMapRef':{'name':'env'}}],'serviceAccountName':'agent-sa'}," \
	" 'toolboxes':[" \
	"  {'name':'windows','os':'windows','mode':'static','staticIP':'10.88.0.50'," \
	"   'staticVMID':'win-toolbox-01','vncPort':5901}," \
	"  {'name':'tools','image':'tools-img','network':'n2','connType':'ssh','probePort':2222," \
	"   'forcePull':true,'noDirectIO':true,'backend':'firecracker'}]}"

#define TOLERATIONS \
	"'tolerations':[{'key':'virtual-kubelet.io/provider','operator':'Exists'}," \
	" {'key':'node.kubernetes.io/not-ready','operator':'Exists','effect':'NoExecute'}," \
	" {'key':'node.kubernetes.io/unreachable','operator':'Exists','effect':'NoExecute'}]"
#define OWNER_V1 \
	"'ownerReferences':[{'apiVersion':'cocoonset.cocoonstack.io/v1','kind':'CocoonSet'," \
	" 'name':'demo','uid':'u-1','controller':true,'blockOwnerDeletion':true}]"
#define LABELS(role, slot) \
	"'labels':{'cocoonset.cocoonstack.io/name':'demo'," \
	" 'cocoonset.cocoonstack.io/role':'" role "'," \
	" 'cocoonset.cocoonstack.io/slot':'" slot "','app.kubernetes.io/name':'demo'}"
#define AGENT_ANNOTATIONS(vm) \
	"'cocoonset.cocoonstack.io/generation':'3','vm.cocoonstack.io/name':'" vm "'," \
	"'cocoonset.cocoonstack.io/image':'ubuntu-dev-base'," \
	"'cocoonset.cocoonstack.io/mode':'clone','cocoonset.cocoonstack.io/os':'linux'," \
	"'cocoonset.cocoonstack.io/storage':'20Gi'," \
	"'cocoonset.cocoonstack.io/snapshot-policy':'main-only'," \
	"'cocoonset.cocoonstack.io/managed':'true'," \
	"'vm.cocoonstack.io/backend':'cloud-hypervisor'"
#define AGENT_CONTAINER \
	"'containers':[{'name':'agent','image':'ghcr.io/cocoonstack/placeholder:latest'," \
	" 'resources':{'limits':{'cpu':'2','memory':'4Gi','ephemeral-storage':'20Gi'}," \
	"  'requests':{'ephemeral-storage':'20Gi'}}," \
	" 'envFrom':[{'configMapRef':{'name':'env'}}]}]"
#define HOSTNAME_IN(node) \
	"{'matchExpressions':[{'key':'kubernetes.io/hostname','operator':'In','values':['" node "']}]}"
#define REQUIRED(node) \
	"'affinity':{'nodeAffinity':{'requiredDuringSchedulingIgnoredDuringExecution':" \
	" {'nodeSelectorTerms':[" HOSTNAME_IN(node) "]}}}"
#define PREFERRED(node) \
	"'affinity':{'nodeAffinity':{'preferredDuringSchedulingIgnoredDuringExecution':" \
	" [{'weight':100,'preference':" HOSTNAME_IN(node) "}]}}"
/* clang-format on */


static struct cs *parse(const char *head, const char *spec)
{
	_cleanup_(freep) char *text = NULL, *error = NULL;
	json_auto_t *obj = NULL;
	struct cs *cs = NULL;

	assert_true(asprintf(&text, "{%s,%s,'spec':%s}", head, METADATA, spec) > 0);
	obj = load_quoted(text);
	if (cs_parse(obj, &cs, &error) < 0)
		fail_msg("cs_parse: %s", error);
	return cs;
}

static void assert_json(const json_t *have, const char *want)
{
	json_auto_t *w = load_quoted(want);
	_cleanup_(freep) char *h = json_dumps(have, JSON_COMPACT | JSON_SORT_KEYS);
	_cleanup_(freep) char *ws = json_dumps(w, JSON_COMPACT | JSON_SORT_KEYS);

	if (!json_equal((json_t *)have, w))
		fail_msg("\nwant %s\nhave %s", ws, h);
}

static void expect_pod(const struct cs *cs, const struct pod_build_options *o, const char *want)
{
	json_auto_t *pod = NULL;

	assert_int_equal(pod_build(cs, o, &pod), 0);
	assert_json(pod, want);
}

/* The expected pods, whole. */
/* clang-format off */
static const char want_main[] =
	"{'apiVersion':'v1','kind':'Pod',"
	" 'metadata':{'name':'demo-0','namespace':'team-a'," LABELS("main", "0") ","
	"  'annotations':{" AGENT_ANNOTATIONS("vk-team-a-demo-0") "}," OWNER_V1 "},"
	" 'spec':{'terminationGracePeriodSeconds':1," TOLERATIONS ","
	"  'nodeSelector':{'cocoonstack.io/pool':'default'}," AGENT_CONTAINER ","
	"  'serviceAccountName':'agent-sa'}}";

static const char want_sub[] =
	"{'apiVersion':'v1','kind':'Pod',"
	" 'metadata':{'name':'demo-2','namespace':'team-a'," LABELS("sub-agent", "2") ","
	"  'annotations':{" AGENT_ANNOTATIONS("vk-team-a-demo-2") ","
	"   'vm.cocoonstack.io/fork-from':'vk-team-a-demo-0',"
	"   'vm.cocoonstack.io/restore-from-hibernate':'true'}," OWNER_V1 "},"
	" 'spec':{'terminationGracePeriodSeconds':1," TOLERATIONS ","
	"  'nodeSelector':{'cocoonstack.io/pool':'default'}," AGENT_CONTAINER ","
	"  'serviceAccountName':'agent-sa','nodeName':'node-1'}}";

static const char want_toolbox_run[] =
	"{'apiVersion':'v1','kind':'Pod',"
	" 'metadata':{'name':'demo-tools','namespace':'team-a'," LABELS("toolbox", "tools") ","
	"  'annotations':{'cocoonset.cocoonstack.io/generation':'3',"
	"   'vm.cocoonstack.io/name':'vk-team-a-demo-tools',"
	"   'cocoonset.cocoonstack.io/image':'tools-img',"
	"   'cocoonset.cocoonstack.io/mode':'run',"
	"   'cocoonset.cocoonstack.io/os':'linux',"
	"   'cocoonset.cocoonstack.io/network':'n2',"
	"   'cocoonset.cocoonstack.io/snapshot-policy':'main-only',"
	"   'cocoonset.cocoonstack.io/managed':'true',"
	"   'cocoonset.cocoonstack.io/force-pull':'true',"
	"   'vm.cocoonstack.io/backend':'firecracker',"
	"   'vm.cocoonstack.io/conn-type':'ssh',"
	"   'vm.cocoonstack.io/no-direct-io':'true',"
	"   'vm.cocoonstack.io/probe-port':'2222'}," OWNER_V1 "},"
	" 'spec':{'terminationGracePeriodSeconds':1," TOLERATIONS ","
	"  'nodeSelector':{'cocoonstack.io/pool':'default'},"
	"  'containers':[{'name':'agent','image':'ghcr.io/cocoonstack/placeholder:latest',"
	"   'resources':{}}]}}";

/* Static: unmanaged, and the operator writes the runtime keys vkd would otherwise write. */
static const char want_toolbox_static[] =
	"{'apiVersion':'v1','kind':'Pod',"
	" 'metadata':{'name':'demo-windows','namespace':'team-a'," LABELS("toolbox", "windows") ","
	"  'annotations':{'cocoonset.cocoonstack.io/generation':'3',"
	"   'vm.cocoonstack.io/name':'vk-team-a-demo-windows',"
	"   'cocoonset.cocoonstack.io/mode':'static',"
	"   'cocoonset.cocoonstack.io/os':'windows',"
	"   'cocoonset.cocoonstack.io/snapshot-policy':'main-only',"
	"   'vm.cocoonstack.io/backend':'cloud-hypervisor',"
	"   'vm.cocoonstack.io/id':'win-toolbox-01',"
	"   'vm.cocoonstack.io/ip':'10.88.0.50',"
	"   'vm.cocoonstack.io/vnc-port':'5901'}," OWNER_V1 "},"
	" 'spec':{'terminationGracePeriodSeconds':1," TOLERATIONS ","
	"  'nodeSelector':{'cocoonstack.io/pool':'default'},"
	"  'containers':[{'name':'agent','image':'ghcr.io/cocoonstack/placeholder:latest',"
	"   'resources':{}}]}}";

/* The seed's legacy quick start: the same engine, current keys only, the legacy owner, and
 * the default target node as a required affinity. */
static const char want_legacy[] =
	"{'apiVersion':'v1','kind':'Pod',"
	" 'metadata':{'name':'demo-0','namespace':'team-a'," LABELS("main", "0") ","
	"  'annotations':{'cocoonset.cocoonstack.io/generation':'3',"
	"   'vm.cocoonstack.io/name':'vk-team-a-demo-0',"
	"   'cocoonset.cocoonstack.io/image':'ubuntu-dev-base',"
	"   'cocoonset.cocoonstack.io/mode':'clone',"
	"   'cocoonset.cocoonstack.io/os':'linux',"
	"   'cocoonset.cocoonstack.io/snapshot-policy':'always',"
	"   'cocoonset.cocoonstack.io/managed':'true',"
	"   'vm.cocoonstack.io/backend':'cloud-hypervisor'},"
	"  'ownerReferences':[{'apiVersion':'cocoon.cis/v1alpha1','kind':'CocoonSet',"
	"   'name':'demo','uid':'u-1','controller':true,'blockOwnerDeletion':true}]},"
	" 'spec':{'terminationGracePeriodSeconds':1," TOLERATIONS ","
	"  'nodeSelector':{'cocoonstack.io/pool':'default'},"
	"  'containers':[{'name':'agent','image':'ghcr.io/cocoonstack/placeholder:latest',"
	"   'resources':{'limits':{'cpu':'2','memory':'4Gi'}}}],"
	"  " REQUIRED("cocoon-pool") "}}";
/* clang-format on */

static void test_main(void **state)
{
	_cleanup_(cs_freep) struct cs *cs = parse(V1_HEAD, SAMPLE_SPEC);

	expect_pod(cs, &(struct pod_build_options){ .slot = 0 }, want_main);
}

/* A sub-agent forks main and is hard-bound to main's node; main-only options are ignored. */
static void test_sub_agent(void **state)
{
	_cleanup_(cs_freep) struct cs *cs = parse(V1_HEAD, SAMPLE_SPEC);
	struct pod_build_options o = {
		.slot = 2,
		.fork_from = "vk-team-a-demo-0",
		.node_name = "node-1",
		.preferred_node = "node-9",
		.restore_from_hibernate = true,
	};

	expect_pod(cs, &o, want_sub);
}

/* Toolboxes ignore the agent-only options. */
static void test_toolbox_run(void **state)
{
	_cleanup_(cs_freep) struct cs *cs = parse(V1_HEAD, SAMPLE_SPEC);
	struct pod_build_options o = {
		.toolbox = &cs->toolboxes[1],
		.slot = 5,
		.fork_from = "vk-team-a-demo-0",
		.node_name = "node-1",
		.preferred_node = "node-9",
	};

	expect_pod(cs, &o, want_toolbox_run);
}

static void test_toolbox_static(void **state)
{
	_cleanup_(cs_freep) struct cs *cs = parse(V1_HEAD, SAMPLE_SPEC);

	expect_pod(cs, &(struct pod_build_options){ .toolbox = &cs->toolboxes[0] },
		   want_toolbox_static);
}

static void test_legacy(void **state)
{
	_cleanup_(cs_freep) struct cs *cs =
	    parse(LEGACY_HEAD, "{'agent':{'image':'ubuntu-dev-base','replicas':1,"
			       "'resources':{'cpu':'2','memory':'4Gi'}}}");

	expect_pod(cs, &(struct pod_build_options){ .slot = 0 }, want_legacy);
}

/* storage goes into both maps whatever the spec had; no storage, resources untouched. */
static void test_storage(void **state)
{
	static const struct {
		const char *agent, *resources;
	} rows[] = {
		{ "'storage':'10Gi'", "{'requests':{'ephemeral-storage':'10Gi'},"
				      "'limits':{'ephemeral-storage':'10Gi'}}" },
		{ "'storage':'10Gi','resources':{'requests':{'cpu':'1'}}",
		  "{'requests':{'cpu':'1','ephemeral-storage':'10Gi'},"
		  "'limits':{'ephemeral-storage':'10Gi'}}" },
		{ "'storage':'0','resources':{'limits':{'memory':'1Gi'}}",
		  "{'limits':{'memory':'1Gi'}}" },
		{ "'resources':{'limits':{'cpu':'500m'},'requests':{'cpu':'0.25'}}",
		  "{'limits':{'cpu':'500m'},'requests':{'cpu':'250m'}}" },
		{ "'storage':10737418240", "{'requests':{'ephemeral-storage':'10737418240'},"
					   "'limits':{'ephemeral-storage':'10737418240'}}" },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		_cleanup_(freep) char *spec = NULL;
		_cleanup_(cs_freep) struct cs *cs = NULL;
		json_auto_t *pod = NULL;
		const char *storage;

		assert_true(asprintf(&spec, "{'agent':{'image':'i',%s}}", rows[i].agent) > 0);
		print_message("%s\n", spec);
		cs = parse(V1_HEAD, spec);
		assert_int_equal(pod_build(cs, &(struct pod_build_options){ .slot = 1 }, &pod), 0);
		assert_json(json_object_get(
				json_array_get(
				    json_object_get(json_object_get(pod, "spec"), "containers"), 0),
				"resources"),
			    rows[i].resources);
		storage = json_string_value(json_object_get(
		    json_object_get(json_object_get(pod, "metadata"), "annotations"),
		    "cocoonset.cocoonstack.io/storage"));
		if (strstr(rows[i].resources, "ephemeral-storage"))
			assert_non_null(storage);
		else
			assert_null(storage);
	}
}

/* Main's placement: the spec's pin is required, a wake hint only preferred, pin wins. */
static void test_affinity(void **state)
{
	static const struct {
		const char *spec_node, *preferred, *affinity; /* affinity NULL: none */
	} rows[] = {
		{ NULL, NULL, NULL },
		{ "node-7", NULL, "{" REQUIRED("node-7") "}" },
		{ NULL, "node-9", "{" PREFERRED("node-9") "}" },
		{ NULL, "", NULL },
		{ "node-7", "node-9", "{" REQUIRED("node-7") "}" },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		_cleanup_(freep) char *spec = NULL;
		_cleanup_(cs_freep) struct cs *cs = NULL;
		json_auto_t *pod = NULL;
		const json_t *pod_spec;

		assert_true(asprintf(&spec, "{%s%s%s'agent':{'image':'i'}}",
				     rows[i].spec_node ? "'nodeName':'" : "",
				     rows[i].spec_node ?: "", rows[i].spec_node ? "'," : "") > 0);
		cs = parse(V1_HEAD, spec);
		assert_int_equal(pod_build(cs,
					   &(struct pod_build_options){
					       .slot = 0, .preferred_node = rows[i].preferred },
					   &pod),
				 0);
		pod_spec = json_object_get(pod, "spec");
		assert_null(json_object_get(pod_spec, "nodeName"));
		if (!rows[i].affinity) {
			assert_null(json_object_get(pod_spec, "affinity"));
			continue;
		}
		json_auto_t *want = load_quoted(rows[i].affinity);
		assert_true(json_equal(json_object_get(pod_spec, "affinity"),
				       json_object_get(want, "affinity")));

		/* sub-agents and toolboxes never get it */
		json_auto_t *sub = NULL;
		assert_int_equal(pod_build(cs,
					   &(struct pod_build_options){
					       .slot = 1, .preferred_node = rows[i].preferred },
					   &sub),
				 0);
		assert_null(json_object_get(json_object_get(sub, "spec"), "affinity"));
	}
}

static void test_selector_and_class(void **state)
{
	_cleanup_(cs_freep) struct cs *cs =
	    parse(V1_HEAD, "{'nodePool':'gpu','snapshotCompatibilityClass':'icelake',"
			   "'agent':{'image':'i'},'toolboxes':[{'name':'t'}]}");
	json_auto_t *pod = NULL, *tb = NULL;

	assert_int_equal(pod_build(cs, &(struct pod_build_options){ .slot = 0 }, &pod), 0);
	assert_json(json_object_get(json_object_get(pod, "spec"), "nodeSelector"),
		    "{'cocoonstack.io/pool':'gpu',"
		    "'cocoonstack.io/snapshot-cpu-class':'icelake'}");
	assert_int_equal(
	    pod_build(cs, &(struct pod_build_options){ .toolbox = &cs->toolboxes[0] }, &tb), 0);
	assert_json(json_object_get(json_object_get(tb, "spec"), "nodeSelector"),
		    "{'cocoonstack.io/pool':'gpu',"
		    "'cocoonstack.io/snapshot-cpu-class':'icelake'}");
}

static void test_vmspec_annotations(void **state)
{
	_cleanup_(cs_freep) struct cs *cs =
	    parse(V1_HEAD, "{'agent':{'image':'','mode':'run','probePort':0},"
			   "'toolboxes':[{'name':'s','mode':'static','vncPort':0},"
			   "{'name':'c','mode':'clone','vncPort':5900,'staticIP':'1.2.3.4'}]}");
	json_auto_t *agent = NULL, *st = NULL, *clone = NULL;

	/* empty values are never written; the VM name and fork-from exactly as given */
	assert_int_equal(pod_vmspec_annotations(cs, NULL, NULL, "vk-x-0", &agent), 0);
	assert_json(agent, "{'cocoonset.cocoonstack.io/mode':'run',"
			   "'cocoonset.cocoonstack.io/os':'linux',"
			   "'cocoonset.cocoonstack.io/snapshot-policy':'always',"
			   "'cocoonset.cocoonstack.io/managed':'true',"
			   "'vm.cocoonstack.io/backend':'cloud-hypervisor',"
			   "'vm.cocoonstack.io/fork-from':'vk-x-0'}");
	/* static without a VNC port or addresses: none of the runtime keys */
	assert_int_equal(pod_vmspec_annotations(cs, &cs->toolboxes[0], "vk-s", NULL, &st), 0);
	assert_json(st, "{'vm.cocoonstack.io/name':'vk-s',"
			"'cocoonset.cocoonstack.io/mode':'static',"
			"'cocoonset.cocoonstack.io/os':'linux',"
			"'cocoonset.cocoonstack.io/snapshot-policy':'always',"
			"'vm.cocoonstack.io/backend':'cloud-hypervisor'}");
	/* static fields are ignored unless the mode is static */
	assert_int_equal(pod_vmspec_annotations(cs, &cs->toolboxes[1], "vk-c", NULL, &clone), 0);
	assert_json(clone, "{'vm.cocoonstack.io/name':'vk-c',"
			   "'cocoonset.cocoonstack.io/mode':'clone',"
			   "'cocoonset.cocoonstack.io/os':'linux',"
			   "'cocoonset.cocoonstack.io/snapshot-policy':'always',"
			   "'cocoonset.cocoonstack.io/managed':'true',"
			   "'vm.cocoonstack.io/backend':'cloud-hypervisor'}");
}

/* Main never forks, whatever the caller passes. */
static void test_main_ignores_fork(void **state)
{
	_cleanup_(cs_freep) struct cs *cs = parse(V1_HEAD, "{'agent':{'image':'i'}}");
	json_auto_t *pod = NULL;

	assert_int_equal(pod_build(cs,
				   &(struct pod_build_options){
				       .slot = 0, .fork_from = "vk-x-0", .node_name = "n" },
				   &pod),
			 0);
	assert_null(
	    json_object_get(json_object_get(json_object_get(pod, "metadata"), "annotations"),
			    "vm.cocoonstack.io/fork-from"));
	assert_null(json_object_get(json_object_get(pod, "spec"), "nodeName"));
	assert_int_equal(pod_build(cs, &(struct pod_build_options){ .slot = -1 }, &pod), -EINVAL);
	assert_int_equal(pod_build(cs, NULL, &pod), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_main),
		cmocka_unit_test(test_sub_agent),
		cmocka_unit_test(test_toolbox_run),
		cmocka_unit_test(test_toolbox_static),
		cmocka_unit_test(test_legacy),
		cmocka_unit_test(test_storage),
		cmocka_unit_test(test_affinity),
		cmocka_unit_test(test_selector_and_class),
		cmocka_unit_test(test_vmspec_annotations),
		cmocka_unit_test(test_main_ignores_fork),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
