/* reserve.c against a scripted apiserver (the cluster's client and informers talk to it
 * through a kubeconfig): a reservation is decided only over synced pod and node caches —
 * before that it fails at once with -EAGAIN and neither reads nor writes the ConfigMap —
 * and, once synced, a first pod creates cocoon-affinity-<pool> with its slot; a write the
 * apiserver refuses is the cluster's error, never one that reads as the pod's; a reservation
 * that has not finished RESERVE_DEADLINE_USEC after it was queued (slow apiserver, waiting
 * behind its pool's writer) ends with -ETIMEDOUT, inside the webhook's timeoutSeconds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cocoon/kube.h"
#include "fake-apiserver.h"
#include "../../webhookd/webhookd.h"

#define CM_PATH "/api/v1/namespaces/cocoon-system/configmaps"
/* timeoutSeconds of deploy/webhook/configuration.yaml: the apiserver gives up after it */
#define WEBHOOK_TIMEOUT_USEC (5 * USEC_PER_SEC)

static struct fake_server srv;
static sd_event *event;
static char kubeconfig[64];
static struct {
	bool lists_answer;    /* pods and nodes LISTs succeed (else 503: caches stay unsynced) */
	bool configmap_hangs; /* the ConfigMap GET is never answered */
	const char *create_refusal; /* the POST's Status (422), else it succeeds */
} script;
struct record {
	bool done;
	int error;
	char message[512];
	uint64_t usec; /* when done ran */
};
static struct record rec;

static void respond(struct fake_server *s, struct fake_conn *c, size_t i, const char *target)
{
	bool watch = query_value(target, "watch") != NULL;

	if (strncmp(target, "/api/v1/pods", 12) == 0 || strncmp(target, "/api/v1/nodes", 13) == 0) {
		if (!script.lists_answer)
			fake_reply(c, 503, "{\"kind\":\"Status\",\"code\":503}");
		else if (watch)
			fake_stream_begin(c); /* a quiet watch */
		else
			fake_reply(c, 200,
				   "{\"kind\":\"List\",\"metadata\":{\"resourceVersion\":"
				   "\"1\"},\"items\":[]}");
	} else if (strncmp(target, CM_PATH "/", strlen(CM_PATH) + 1) == 0) {
		if (!script.configmap_hangs)
			fake_reply(c, 404,
				   "{\"kind\":\"Status\",\"code\":404,\"reason\":\"NotFound\"}");
	} else if (strcmp(target, CM_PATH) == 0 && strncmp(c->in.data, "POST ", 5) == 0) {
		if (script.create_refusal)
			fake_reply(c, 422, script.create_refusal);
		else
			fake_reply(
			    c, 201,
			    "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"cocoon-affinity-"
			    "default\",\"resourceVersion\":\"2\"}}");
	} else {
		fake_reply(c, 404, "{\"kind\":\"Status\",\"code\":404,\"reason\":\"NotFound\"}");
	}
}

/* The cluster (informers over the scripted apiserver) and its reserver: made by
 * fixture_start(), freed by teardown(). */
static struct cluster *cluster;
static struct reserver *rs;

static void fixture_start(bool synced)
{
	uint64_t deadline = fake_now_usec() + 3000000ULL;

	assert_int_equal(cluster_new(event, NULL, NULL, &cluster), 0);
	assert_int_equal(reserver_new(cluster, &rs), 0);
	while (synced && !cluster_caches_synced(cluster)) {
		assert_true(fake_now_usec() < deadline);
		assert_true(sd_event_run(event, 10000) >= 0);
	}
}

static int setup(void **state)
{
	FILE *f;
	int fd;

	memset(&rec, 0, sizeof(rec));
	memset(&script, 0, sizeof(script));
	assert_int_equal(sd_event_new(&event), 0);
	srv = (struct fake_server){ .respond = respond };
	fake_server_start(&srv, event);
	snprintf(kubeconfig, sizeof(kubeconfig), "/tmp/test-webhookd-reserve-XXXXXX");
	fd = mkstemp(kubeconfig);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fprintf(f,
		"{\"current-context\":\"t\",\"clusters\":[{\"name\":\"c\",\"cluster\":"
		"{\"server\":\"%s\"}}],\"contexts\":[{\"name\":\"t\",\"context\":{\"cluster\":"
		"\"c\"}}]}\n",
		srv.url);
	fclose(f);
	assert_int_equal(setenv("KUBECONFIG", kubeconfig, 1), 0);
	return 0;
}

static int teardown(void **state)
{
	reserver_free(rs);
	rs = NULL;
	cluster_free(cluster);
	cluster = NULL;
	fake_server_stop(&srv);
	sd_event_unref(event);
	unlink(kubeconfig);
	return 0;
}

static void on_done(struct reserve *r, int error, const char *message, void *userdata)
{
	struct record *out = userdata;

	out->done = true;
	out->error = error;
	out->usec = fake_now_usec();
	snprintf(out->message, sizeof(out->message), "%s", message ? message : "");
}

/* A Deployment replica: generateName only, owned by ReplicaSet web-5d8f. */
static json_t *replica(void)
{
	json_t *pod =
	    json_loads("{\"metadata\":{\"namespace\":\"default\",\"generateName\":\"web-5d8f-\","
		       "\"ownerReferences\":[{\"kind\":\"ReplicaSet\",\"name\":\"web-5d8f\","
		       "\"controller\":true}]},\"spec\":{\"tolerations\":[{\"key\":"
		       "\"virtual-kubelet.io/provider\",\"operator\":\"Exists\"}]}}",
		       0, NULL);

	assert_non_null(pod);
	return pod;
}

static bool requested(const char *prefix)
{
	for (size_t i = 0; i < srv.n_requests; i++)
		if (strncmp(srv.requests[i], prefix, strlen(prefix)) == 0)
			return true;
	return false;
}

static void test_unsynced_caches_refuse(void **state)
{
	struct reserve *r = NULL;
	json_t *pod = replica();
	char *err = NULL;

	fixture_start(false);
	/* the informers' first LISTs have been refused: nothing is synced */
	assert_true(fake_run_until(&srv, NULL, 2, 2000));
	assert_false(cluster_caches_synced(cluster));
	assert_int_equal(reserve_new(rs, pod, "default", "", false, on_done, &rec, &r, &err), 0);
	assert_true(fake_run_until(&srv, &rec.done, 0, 2000));
	assert_int_equal(rec.error, -EAGAIN);
	assert_string_equal(rec.message, "the pod and node caches are not synced yet, so the "
					 "live VM names and node loads are unknown");
	/* decided over nothing: the ConfigMap was neither read nor written */
	assert_false(requested(CM_PATH));
	reserve_free(r);
	json_decref(pod);
}

static void test_synced_caches_reserve(void **state)
{
	struct reserve *r = NULL;
	json_t *pod = replica();
	const json_t *res;
	const char *key;
	char *err = NULL;

	script.lists_answer = true;
	fixture_start(true);
	assert_int_equal(reserve_new(rs, pod, "default", "", false, on_done, &rec, &r, &err), 0);
	assert_true(fake_run_until(&srv, &rec.done, 0, 2000));
	assert_int_equal(rec.error, 0);
	res = reserve_result(r, &key);
	assert_string_equal(key, "default.web.0");
	assert_string_equal(json_string_value(json_object_get(res, "vmName")), "vk-default-web-0");
	assert_true(requested(CM_PATH "/cocoon-affinity-default"));
	reserve_free(r);
	json_decref(pod);
}

/* The apiserver refuses the write as Invalid (422, as for a ConfigMap past 1 MiB or a policy
 * webhook's 400): that is the cluster's failure, not the pod's, so the error is not one the
 * handler denies the pod for, and the message carries the apiserver's words. */
static void test_write_refused(void **state)
{
	struct reserve *r = NULL;
	json_t *pod = replica();
	char *err = NULL;

	script.lists_answer = true;
	script.create_refusal = "{\"kind\":\"Status\",\"code\":422,\"reason\":\"Invalid\","
				"\"message\":\"ConfigMap \\\"cocoon-affinity-default\\\" is "
				"invalid: []: Too long: must have at most 1048576 bytes\"}";
	fixture_start(true);
	assert_int_equal(reserve_new(rs, pod, "default", "", false, on_done, &rec, &r, &err), 0);
	assert_true(fake_run_until(&srv, &rec.done, 0, 2000));
	assert_int_equal(rec.error, -EIO);
	assert_string_equal(rec.message,
			    "cannot write ConfigMap cocoon-system/cocoon-affinity-default: "
			    "ConfigMap \"cocoon-affinity-default\" is invalid: []: Too long: must "
			    "have at most 1048576 bytes");
	reserve_free(r);
	json_decref(pod);
}

/* The apiserver never answers the ConfigMap GET; three pods of one pool. The first call
 * times out (3 s); the second pod, queued behind it, runs until its deadline; the third
 * waited its whole time. All must be answered inside the webhook's 5 s. */
static void test_deadline(void **state)
{
	struct reserve *r[3] = { NULL };
	struct record out[3] = { 0 };
	json_t *pod = replica();
	char *err = NULL;
	uint64_t start;

	script.lists_answer = true;
	script.configmap_hangs = true;
	fixture_start(true);
	start = fake_now_usec();
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(
		    reserve_new(rs, pod, "default", "", false, on_done, &out[i], &r[i], &err), 0);
	for (size_t i = 0; i < 3; i++) {
		assert_true(fake_run_until(&srv, &out[i].done, 0, 4500));
		assert_true(out[i].error < 0);
		if (i == 0)
			continue;
		assert_int_equal(out[i].error, -ETIMEDOUT);
		assert_true(out[i].usec - start < WEBHOOK_TIMEOUT_USEC);
	}
	assert_string_equal(out[1].message, "ConfigMap cocoon-system/cocoon-affinity-default: no "
					    "reservation within 4 s of the request (1 attempt(s) "
					    "to read and write it)");
	for (size_t i = 0; i < 3; i++)
		reserve_free(r[i]);
	json_decref(pod);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unsynced_caches_refuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_synced_caches_reserve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
