/* operatord pods.c (operator-webhook.md §2.3 steps 4–5): which pods a CocoonSet owns, how
 * they are classified, and the facts a pass reads from one pod. */
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

static struct cs *demo(void)
{
	json_auto_t *obj = load_quoted("{'apiVersion':'cocoonset.cocoonstack.io/v1','kind':"
				       "'CocoonSet','metadata':{'name':'demo','namespace':'ns',"
				       "'uid':'u-1'},'spec':{'agent':{'image':'i'}}}");
	struct cs *cs = NULL;

	assert_int_equal(cs_parse(obj, &cs, NULL), 0);
	return cs;
}

/* A pod named name with role/slot labels (NULL: no label), owned as given. */
static json_t *pod(const char *name, const char *role, const char *slot, const char *owner_uid,
		   bool controller, bool terminating)
{
	json_t *p = json_pack("{s:{s:s, s:{}, s:[{s:s, s:s, s:b}]}}", "metadata", "name", name,
			      "labels", "ownerReferences", "kind", "CocoonSet", "uid", owner_uid,
			      "controller", controller);
	json_t *labels = json_object_get(json_object_get(p, "metadata"), "labels");

	if (role)
		json_object_set_new(labels, "cocoonset.cocoonstack.io/role", json_string(role));
	if (slot)
		json_object_set_new(labels, "cocoonset.cocoonstack.io/slot", json_string(slot));
	if (terminating)
		json_object_set_new(json_object_get(p, "metadata"), "deletionTimestamp",
				    json_string("2026-01-01T00:00:00Z"));
	return p;
}

static void test_classify(void **state)
{
	_cleanup_(cs_freep) struct cs *cs = demo();
	json_auto_t *pods = json_array();
	struct cs_pods p;
	static const char *const all[] = {
		"demo-0",   "demo-0b",    "demo-1",     "demo-10", "demo-2",    "demo-2b",
		"demo-bad", "demo-other", "demo-tools", "demo-x",  "demo-zero",
	};

	/* input order is not name order */
	json_array_append_new(pods, pod("demo-tools", "toolbox", "tools", "u-1", true, false));
	json_array_append_new(pods, pod("demo-2b", "sub-agent", "2", "u-1", true, false));
	json_array_append_new(pods, pod("demo-10", "sub-agent", "10", "u-1", true, false));
	json_array_append_new(pods, pod("demo-2", "sub-agent", "2", "u-1", true, false));
	json_array_append_new(pods, pod("demo-1", "sub-agent", "1", "u-1", true, false));
	json_array_append_new(pods, pod("demo-0b", "main", "0", "u-1", true, false));
	json_array_append_new(pods, pod("demo-0", "main", "0", "u-1", true, false));
	json_array_append_new(pods, pod("demo-bad", "sub-agent", "one", "u-1", true, false));
	json_array_append_new(pods, pod("demo-zero", "sub-agent", "0", "u-1", true, false));
	json_array_append_new(pods, pod("demo-x", "toolbox", "a-box", "u-1", true, false));
	json_array_append_new(pods, pod("demo-other", NULL, NULL, "u-1", true, false));
	/* not ours: another set's UID, or a non-controller reference */
	json_array_append_new(pods, pod("demo-3", "sub-agent", "3", "u-2", true, false));
	json_array_append_new(pods, pod("demo-4", "sub-agent", "4", "u-1", false, false));
	/* terminating: counted, never classified */
	json_array_append_new(pods, pod("demo-5", "sub-agent", "5", "u-1", true, true));
	json_array_append_new(pods, pod("demo-6", "toolbox", "t6", "u-1", true, true));
	json_array_append_new(pods, json_string("not a pod"));

	assert_int_equal(cs_pods_classify(cs, pods, &p), 0);
	assert_int_equal(p.n_all, ELEMENTSOF(all));
	for (size_t i = 0; i < p.n_all; i++)
		assert_string_equal(p.all[i].name, all[i]);
	assert_int_equal(p.n_deleting, 2);
	assert_non_null(p.main);
	assert_string_equal(p.main->name, "demo-0");
	assert_int_equal(p.main->role, CS_ROLE_MAIN);
	assert_int_equal(p.main->slot, 0);
	/* by slot; a duplicated slot keeps the first by name; 0 and unparsable are not subs */
	assert_int_equal(p.n_sub, 3);
	assert_string_equal(p.sub[0]->name, "demo-1");
	assert_string_equal(p.sub[1]->name, "demo-2");
	assert_string_equal(p.sub[2]->name, "demo-10");
	assert_int_equal(p.sub[2]->slot, 10);
	assert_int_equal(p.n_toolboxes, 2);
	assert_string_equal(p.toolboxes[0]->toolbox, "a-box");
	assert_string_equal(p.toolboxes[1]->toolbox, "tools");
	assert_int_equal(p.toolboxes[1]->slot, -1);
	assert_ptr_equal(cs_pods_sub(&p, 2), p.sub[1]);
	assert_null(cs_pods_sub(&p, 3));
	assert_null(cs_pods_sub(&p, 0));
	assert_ptr_equal(cs_pods_toolbox(&p, "tools"), p.toolboxes[1]);
	assert_null(cs_pods_toolbox(&p, "t6"));
	assert_string_equal(cs_pods_by_name(&p, "demo-bad")->name, "demo-bad");
	assert_int_equal(cs_pods_by_name(&p, "demo-bad")->slot, -1);
	assert_null(cs_pods_by_name(&p, "demo-3"));
	assert_null(cs_pods_by_name(&p, "demo-5"));
	cs_pods_done(&p);
	assert_null(p.all);
	cs_pods_done(&p);
}

static void test_classify_empty(void **state)
{
	_cleanup_(cs_freep) struct cs *cs = demo();
	json_auto_t *empty = json_array(), *object = json_object();
	struct cs_pods p = { .n_all = 99 };

	assert_int_equal(cs_pods_classify(cs, empty, &p), 0);
	assert_int_equal(p.n_all, 0);
	assert_null(p.main);
	assert_null(cs_pods_by_name(&p, "demo-0"));
	cs_pods_done(&p);
	assert_int_equal(cs_pods_classify(cs, NULL, &p), 0);
	cs_pods_done(&p);
	p.n_all = 99;
	assert_int_equal(cs_pods_classify(cs, object, &p), -EINVAL);
	assert_int_equal(p.n_all, 99);
}

/* clang-format off */
#define POD(annotations, status) \
	"{'metadata':{'name':'p','uid':'pu'," \
	"  'labels':{'cocoonset.cocoonstack.io/role':'sub-agent','cocoonset.cocoonstack.io/slot':'3'}," \
	"  'annotations':{" annotations "}}," \
	" 'spec':{'nodeName':'n1'},'status':" status "}"
#define RUNNING "{'containerStatuses':[{'state':{'waiting':{}}},{'state':{'running':{}}}]}"

static void test_pod_facts(void **state)
{
	json_auto_t *j = load_quoted(POD(
		"'vm.cocoonstack.io/name':'vk-ns-demo-3','vm.cocoonstack.io/id':'vm-9',"
		"'vm.cocoonstack.io/lifecycle-state':'hibernated',"
		"'vm.cocoonstack.io/lifecycle-state-message':'pushed',"
		"'cocoonset.cocoonstack.io/generation':'12',"
		"'vm.cocoonstack.io/lifecycle-observed-generation':'11',"
		"'vm.cocoonstack.io/hibernate':'true',"
		"'cocoonset.cocoonstack.io/managed':'true',"
		"'cocoonset.cocoonstack.io/dead-letter':'true',"
		"'vm.cocoonstack.io/restore-from-hibernate':'true'",
		"{'phase':'Running',"
		" 'conditions':[{'type':'PodScheduled','status':'True'},{'type':'Ready','status':'True'}],"
		" 'containerStatuses':[{'state':{'running':{'startedAt':'x'}}}]}"));
	/* clang-format on */
	struct cs_pod p;

	assert_int_equal(cs_pod_from_json(j, &p), 0);
	assert_ptr_equal(p.obj, j);
	assert_string_equal(p.name, "p");
	assert_string_equal(p.uid, "pu");
	assert_string_equal(p.node_name, "n1");
	assert_string_equal(p.phase, "Running");
	assert_int_equal(p.role, CS_ROLE_SUB);
	assert_int_equal(p.slot, 3);
	assert_null(p.toolbox);
	assert_string_equal(p.vm_name, "vk-ns-demo-3");
	assert_string_equal(p.vm_id, "vm-9");
	assert_string_equal(p.lifecycle_state, "hibernated");
	assert_string_equal(p.lifecycle_message, "pushed");
	assert_int_equal(p.generation_stamp, 12);
	assert_int_equal(p.lifecycle_observed_generation, 11);
	assert_true(p.ready);
	assert_false(p.terminal);
	assert_true(p.hibernate);
	assert_true(p.managed);
	assert_true(p.dead_letter);
	assert_true(p.restore_from_hibernate);
	assert_true(p.vm_live);
	assert_false(p.unschedulable);
	assert_null(p.unschedulable_message);
}

/* One fact per row, from a pod with the given annotations and status. */
enum fact_id {
	F_READY,
	F_TERMINAL,
	F_LIVE,
	F_UNSCHED,
	F_HIBERNATE,
	F_STAMP,
	F_OBSERVED,
	F_VM_NAME, /* 1: "vk-new", 2: "vk-old", 0: none */
	F_MANAGED,
};

static const struct {
	const char *pod;
	enum fact_id fact;
	int64_t want;
} fact_rows[] = {
	{ POD("", "{}"), F_READY, 0 },
	{ POD("", "{'conditions':[{'type':'Ready','status':'False'}]}"), F_READY, 0 },
	{ POD("", "{'conditions':[{'type':'Ready','status':'true'}]}"), F_READY, 0 },
	{ POD("", "{'conditions':[{'type':'Ready','status':'True'}]}"), F_READY, 1 },
	{ POD("", "{'phase':'Failed'}"), F_TERMINAL, 1 },
	{ POD("", "{'phase':'Succeeded'}"), F_TERMINAL, 0 },
	{ POD("'vm.cocoonstack.io/lifecycle-state':'failed'", "{'phase':'Running'}"), F_TERMINAL,
	  1 },
	{ POD("'vm.cocoonstack.io/lifecycle-state':'Failed'", "{}"), F_TERMINAL, 0 },
	{ POD("'vm.cocoonstack.io/id':'v'", RUNNING), F_LIVE, 1 },
	{ POD("'vm.cocoonstack.io/id':''", RUNNING), F_LIVE, 0 },
	{ POD("", RUNNING), F_LIVE, 0 },
	{ POD("'vm.cocoonstack.io/id':'v'",
	      "{'containerStatuses':[{'state':{'waiting':{'reason':'Hibernated'}}}]}"),
	  F_LIVE, 0 },
	{ POD("", "{'conditions':[{'type':'PodScheduled','status':'False',"
		  "'reason':'Unschedulable','message':'0/3 nodes'}]}"),
	  F_UNSCHED, 1 },
	{ POD("", "{'conditions':[{'type':'PodScheduled','status':'False',"
		  "'reason':'SchedulerError'}]}"),
	  F_UNSCHED, 0 },
	{ POD("'vm.cocoonstack.io/hibernate':'True'", "{}"), F_HIBERNATE, 0 },
	{ POD("'vm.cocoonstack.io/hibernate':'1'", "{}"), F_HIBERNATE, 0 },
	{ POD("", "{}"), F_STAMP, 0 },
	{ POD("'cocoonset.cocoonstack.io/generation':'x7'", "{}"), F_STAMP, 0 },
	{ POD("'cocoonset.cocoonstack.io/generation':'+7'", "{}"), F_STAMP, 7 },
	{ POD("'cocoonset.cocoonstack.io/generation':' 7'", "{}"), F_STAMP, 0 },
	{ POD("'cocoonset.cocoonstack.io/generation':'9223372036854775807'", "{}"), F_STAMP,
	  INT64_MAX },
	{ POD("'cocoonset.cocoonstack.io/generation':'9223372036854775808'", "{}"), F_STAMP, 0 },
	{ POD("'vm.cocoonstack.io/lifecycle-observed-generation':'5'", "{}"), F_OBSERVED, 5 },
	{ POD("'vm.cocoonstack.io/lifecycle-observed-generation':'5.0'", "{}"), F_OBSERVED, 0 },
	/* Legacy cocoon.cis/ aliases: read when the canonical key is absent or empty. */
	{ POD("'cocoon.cis/vm-name':'vk-old'", "{}"), F_VM_NAME, 2 },
	{ POD("'vm.cocoonstack.io/name':'','cocoon.cis/vm-name':'vk-old'", "{}"), F_VM_NAME, 2 },
	{ POD("'vm.cocoonstack.io/name':'vk-new','cocoon.cis/vm-name':'vk-old'", "{}"), F_VM_NAME,
	  1 },
	{ POD("'cocoon.cis/vm-name':''", "{}"), F_VM_NAME, 0 },
	{ POD("'cocoon.cis/vm-id':'v'", RUNNING), F_LIVE, 1 },
	{ POD("'cocoon.cis/hibernate':'true'", "{}"), F_HIBERNATE, 1 },
	{ POD("'vm.cocoonstack.io/hibernate':'false','cocoon.cis/hibernate':'true'", "{}"),
	  F_HIBERNATE, 0 },
	{ POD("'cocoon.cis/managed':'true'", "{}"), F_MANAGED, 1 },
	{ POD("'cocoonset.cocoonstack.io/managed':'false','cocoon.cis/managed':'true'", "{}"),
	  F_MANAGED, 0 },
};

static void test_pod_fact_rows(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(fact_rows); i++) {
		json_auto_t *j = load_quoted(fact_rows[i].pod);
		struct cs_pod p;
		int64_t have = -1;

		print_message("%s\n", fact_rows[i].pod);
		assert_int_equal(cs_pod_from_json(j, &p), 0);
		switch (fact_rows[i].fact) {
		case F_READY:
			have = p.ready;
			break;
		case F_TERMINAL:
			have = p.terminal;
			break;
		case F_LIVE:
			have = p.vm_live;
			break;
		case F_UNSCHED:
			have = p.unschedulable;
			if (p.unschedulable)
				assert_string_equal(p.unschedulable_message, "0/3 nodes");
			break;
		case F_HIBERNATE:
			have = p.hibernate;
			break;
		case F_STAMP:
			have = p.generation_stamp;
			break;
		case F_OBSERVED:
			have = p.lifecycle_observed_generation;
			break;
		case F_VM_NAME:
			have = !p.vm_name                   ? 0
			       : streq(p.vm_name, "vk-new") ? 1
			       : streq(p.vm_name, "vk-old") ? 2
							    : -2;
			break;
		case F_MANAGED:
			have = p.managed;
			break;
		}
		assert_int_equal(have, fact_rows[i].want);
	}
}

static void test_pod_minimal(void **state)
{
	json_auto_t *bare = load_quoted("{'metadata':{}}"), *arr = load_quoted("[]"),
		    *nomd = load_quoted("{}");
	json_auto_t *tb = load_quoted("{'metadata':{'name':'t','labels':{"
				      "'cocoonset.cocoonstack.io/role':'toolbox'}}}");
	struct cs_pod p;

	assert_int_equal(cs_pod_from_json(bare, &p), 0);
	assert_string_equal(p.name, "");
	assert_string_equal(p.phase, "");
	assert_null(p.node_name);
	assert_null(p.vm_name);
	assert_int_equal(p.role, CS_ROLE_NONE);
	assert_int_equal(p.slot, -1);
	assert_int_equal(cs_pod_from_json(tb, &p), 0);
	assert_int_equal(p.role, CS_ROLE_TOOLBOX);
	assert_string_equal(p.toolbox, "");
	assert_int_equal(cs_pod_from_json(arr, &p), -EINVAL);
	assert_int_equal(cs_pod_from_json(nomd, &p), -EINVAL);
	assert_int_equal(cs_pod_from_json(NULL, &p), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),    cmocka_unit_test(test_classify_empty),
		cmocka_unit_test(test_pod_facts),   cmocka_unit_test(test_pod_fact_rows),
		cmocka_unit_test(test_pod_minimal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
