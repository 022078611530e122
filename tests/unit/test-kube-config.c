/* kube_config: a table of good kubeconfigs (fields, relative paths, contexts, anchors, flow
 * style), a table of bad ones with the exact error (file and field path), KUBECONFIG merge
 * rules, ~/.kube/config, and the in-cluster service account under a temp KUBE_SA_DIR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cocoon/fsutil.h"
#include "cocoon/kube.h"

/* base64 of "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n" */
#define CERT_B64                                                                                   \
	"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJmYWtlCi0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K"
#define CERT_PEM "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
/* base64 of "-----BEGIN PRIVATE KEY-----\nMIIEkey\n-----END PRIVATE KEY-----\n" */
#define KEY_B64                                                                                    \
	"LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCk1JSUVrZXkKLS0tLS1FTkQgUFJJVkFURSBLRVktLS0tLQo="
#define KEY_PEM "-----BEGIN PRIVATE KEY-----\nMIIEkey\n-----END PRIVATE KEY-----\n"

static char tmpdir[] = "/tmp/test-kube-config-XXXXXX";

static const char *const env_vars[] = {
	"KUBECONFIG",  "HOME",          "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT",
	"KUBE_SA_DIR", "POD_NAMESPACE",
};

static int setup(void **state)
{
	assert_non_null(mkdtemp(tmpdir));
	for (size_t i = 0; i < ELEMENTSOF(env_vars); i++)
		unsetenv(env_vars[i]);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	memcpy(tmpdir + strlen(tmpdir) - 6, "XXXXXX", 6);
	for (size_t i = 0; i < ELEMENTSOF(env_vars); i++)
		unsetenv(env_vars[i]);
	return 0;
}

static const char *at(const char *name)
{
	static char buf[4][256];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
	return buf[i];
}

static void write_file(const char *path, const char *text)
{
	assert_int_equal(fs_write_atomic(path, text, strlen(text), 0600), 0);
}

static void assert_str(const char *got, const char *want)
{
	if (!want)
		assert_null(got);
	else {
		assert_non_null(got);
		assert_string_equal(got, want);
	}
}

/* ---- good ---- */

struct good {
	const char *name, *yaml, *context;
	struct kube_config want;
};

static const struct good good[] = {
	{
	    .name = "token user, CA data, namespace",
	    .yaml = "apiVersion: v1\n"
		    "kind: Config\n"
		    "current-context: dev\n"
		    "clusters:\n"
		    "- name: c1\n"
		    "  cluster:\n"
		    "    server: https://10.0.0.1:6443/\n"
		    "    certificate-authority-data: " CERT_B64 "\n"
		    "users:\n"
		    "- name: u1\n"
		    "  user:\n"
		    "    token: abc.def\n"
		    "contexts:\n"
		    "- name: dev\n"
		    "  context: {cluster: c1, user: u1, namespace: team-a}\n"
		    "preferences: {}\n",
	    .want = { .server = "https://10.0.0.1:6443",
		      .ca_data = CERT_PEM,
		      .token = "abc.def",
		      .namespace = "team-a",
		      .source = "/etc/kube/config" },
	},
	{
	    .name = "client certificate data, base64 folded over lines, other context chosen",
	    .yaml = "current-context: a\n"
		    "clusters:\n"
		    "- {name: c1, cluster: {server: 'https://a:1'}}\n"
		    "- name: c2\n"
		    "  cluster:\n"
		    "    server: https://b:2\n"
		    "    insecure-skip-tls-verify: true\n"
		    "users:\n"
		    "- name: u2\n"
		    "  user:\n"
		    "    client-certificate-data: >-\n"
		    "      LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJmYWtl\n"
		    "      Ci0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K\n"
		    "    client-key-data: " KEY_B64 "\n"
		    "contexts:\n"
		    "- {name: a, context: {cluster: c1}}\n"
		    "- {name: b, context: {cluster: c2, user: u2}}\n",
	    .context = "b",
	    .want = { .server = "https://b:2",
		      .insecure = true,
		      .cert_data = CERT_PEM,
		      .key_data = KEY_PEM,
		      .source = "/etc/kube/config" },
	},
	{
	    .name = "relative paths against the kubeconfig's directory",
	    .yaml = "current-context: x\n"
		    "clusters:\n"
		    "- name: c\n"
		    "  cluster: {server: 'https://h', certificate-authority: ca.crt}\n"
		    "users:\n"
		    "- name: u\n"
		    "  user:\n"
		    "    client-certificate: ../pki/u.crt\n"
		    "    client-key: /abs/u.key\n"
		    "    tokenFile: tok\n"
		    "contexts:\n"
		    "- {name: x, context: {cluster: c, user: u}}\n",
	    .want = { .server = "https://h",
		      .ca_file = "/etc/kube/ca.crt",
		      .cert_file = "/etc/kube/../pki/u.crt",
		      .key_file = "/abs/u.key",
		      .token_file = "/etc/kube/tok",
		      .source = "/etc/kube/config" },
	},
	{
	    .name = "host:port without a scheme means https; anchors and aliases",
	    .yaml = "current-context: x\n"
		    "clusters:\n"
		    "- name: c\n"
		    "  cluster: &cl {server: 'api.example:6443', insecure-skip-tls-verify: yes}\n"
		    "- {name: d, cluster: *cl}\n"
		    "users: null\n"
		    "contexts:\n"
		    "- {name: x, context: {cluster: d, user: '', namespace: ~}}\n",
	    .want = { .server = "https://api.example:6443",
		      .insecure = true,
		      .source = "/etc/kube/config" },
	},
	{
	    .name = "JSON is YAML; unknown keys ignored; insecure false",
	    .yaml = "{\"current-context\":\"j\",\"clusters\":[{\"name\":\"c\",\"cluster\":"
		    "{\"server\":\"http://127.0.0.1:8080\",\"insecure-skip-tls-verify\":false,"
		    "\"extensions\":[{\"name\":\"e\"}]}}],\"contexts\":[{\"name\":\"j\","
		    "\"context\":{\"cluster\":\"c\"}}]}",
	    .want = { .server = "http://127.0.0.1:8080", .source = "/etc/kube/config" },
	},
};

static void test_good(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(good); i++) {
		const struct good *g = &good[i];
		struct kube_config *c = NULL;
		char *err = NULL;
		int r;

		r = kube_config_parse(g->yaml, strlen(g->yaml), "/etc/kube/config", g->context, &c,
				      &err);
		if (r < 0)
			fail_msg("%s: %s", g->name, err);
		assert_null(err);
		assert_str(c->server, g->want.server);
		assert_str(c->ca_file, g->want.ca_file);
		assert_str(c->ca_data, g->want.ca_data);
		assert_str(c->cert_file, g->want.cert_file);
		assert_str(c->key_file, g->want.key_file);
		assert_str(c->cert_data, g->want.cert_data);
		assert_str(c->key_data, g->want.key_data);
		assert_str(c->token, g->want.token);
		assert_str(c->token_file, g->want.token_file);
		assert_str(c->namespace, g->want.namespace);
		assert_str(c->source, g->want.source);
		assert_int_equal(c->insecure, g->want.insecure);
		kube_config_free(c);
	}
}

/* ---- bad ---- */

#define HEAD       "current-context: x\ncontexts:\n- {name: x, context: {cluster: c, user: u}}\n"
#define CLUSTER    "clusters:\n- {name: c, cluster: {server: 'https://h'}}\n"
#define USER(body) "users:\n- name: u\n  user: {" body "}\n"

struct bad {
	const char *yaml, *context, *want;
};

static const struct bad bad[] = {
	{ "clusters: [\n  - a\n", NULL,
	  "/k/config: line 2 column 3: did not find expected node content while parsing a "
	  "flow node" },
	{ "- a\n- b\n", NULL, "/k/config: expected a mapping at the top, got a list" },
	{ "clusters: 5\n", NULL, "/k/config: clusters: expected a list, got a scalar" },
	{ "clusters: [5]\n", NULL, "/k/config: clusters[0]: expected a mapping, got a scalar" },
	{ "clusters:\n- cluster: {server: x}\n", NULL, "/k/config: clusters[0].name: missing" },
	{ "clusters:\n- {name: [a], cluster: {}}\n", NULL,
	  "/k/config: clusters[0].name: expected a string, got a list" },
	{ "clusters:\n- {name: a}\n- {name: b}\n- {name: a}\n", NULL,
	  "/k/config: clusters[2].name: \"a\" is also clusters[0]" },
	{ "clusters:\n- {name: a, cluster: [1]}\n", NULL,
	  "/k/config: clusters[0].cluster: expected a mapping, got a list" },
	{ "clusters:\n- {name: a, cluster: {server: {x: 1}}}\n", NULL,
	  "/k/config: clusters[0].cluster.server: expected a string, got a mapping" },
	{ "clusters:\n- {name: a, cluster: {server: h, server: i}}\n", NULL,
	  "/k/config: clusters[0].cluster.server: key given twice" },
	{ "clusters:\n- {name: a, cluster: {insecure-skip-tls-verify: maybe}}\n", NULL,
	  "/k/config: clusters[0].cluster.insecure-skip-tls-verify: expected true or false" },
	{ "clusters:\n- {name: a, cluster: {insecure-skip-tls-verify: 'true'}}\n", NULL,
	  "/k/config: clusters[0].cluster.insecure-skip-tls-verify: expected true or false" },
	{ "clusters:\n- {name: a, cluster: {server: \"h\\0x\"}}\n", NULL,
	  "/k/config: clusters[0].cluster.server: contains a NUL byte" },
	{ "current-context: [x]\n", NULL,
	  "/k/config: current-context: expected a string, got a list" },
	{ "", NULL, "/k/config: current-context: not set, and no context was requested" },
	{ CLUSTER, NULL, "/k/config: current-context: not set, and no context was requested" },
	{ HEAD CLUSTER USER("token: t"), "y", "/k/config: contexts: context \"y\" not found" },
	{ "current-context: x\ncontexts:\n- {name: x, context: {user: u}}\n", NULL,
	  "/k/config: contexts[0].context.cluster: missing" },
	{ HEAD USER("token: t"), NULL,
	  "/k/config: clusters: cluster \"c\" (of context \"x\") not found" },
	{ HEAD CLUSTER, NULL, "/k/config: users: user \"u\" (of context \"x\") not found" },
	{ HEAD "clusters:\n- {name: other, cluster: {server: 'https://o'}}\n- name: c\n"
	       "  cluster: {certificate-authority: ca}\n" USER(""),
	  NULL, "/k/config: clusters[1].cluster.server: missing" },
	{ HEAD "clusters:\n- {name: c, cluster: {server: 'ftp://h'}}\n" USER(""), NULL,
	  "/k/config: clusters[0].cluster.server: \"ftp://h\" is not an https:// or http:// URL" },
	{ HEAD "clusters:\n- {name: c, cluster: {server: 'https://'}}\n" USER(""), NULL,
	  "/k/config: clusters[0].cluster.server: \"https://\" is not an https:// or http:// URL" },
	{ HEAD "clusters:\n- {name: c, cluster: {server: 'https://h', certificate-authority-data: "
	       "'bm90IHBlbSBhdCBhbGw='}}\n" USER(""),
	  NULL,
	  "/k/config: clusters[0].cluster.certificate-authority-data: not PEM data (no "
	  "\"-----BEGIN\" line)" },
	{ HEAD "clusters:\n- {name: c, cluster: {server: 'https://h', certificate-authority: /a, "
	       "certificate-authority-data: " CERT_B64 "}}\n" USER(""),
	  NULL,
	  "/k/config: clusters[0].cluster: certificate-authority and "
	  "certificate-authority-data are both set" },
	{ HEAD "clusters:\n- {name: c, cluster: {server: 'https://h', certificate-authority: /a, "
	       "insecure-skip-tls-verify: true}}\n" USER(""),
	  NULL,
	  "/k/config: clusters[0].cluster: insecure-skip-tls-verify together with a "
	  "certificate authority is not allowed" },
	{ HEAD CLUSTER USER("client-certificate-data: " CERT_B64 ", client-key-data: 'A*B='"), NULL,
	  "/k/config: users[0].user.client-key-data: not valid base64" },
	{ HEAD CLUSTER USER("client-certificate-data: " CERT_B64 ", client-key-data: 'QUJD=x'"),
	  NULL, "/k/config: users[0].user.client-key-data: not valid base64" },
	{ HEAD CLUSTER USER("client-certificate-data: " CERT_B64 ", client-key-data: 'QUJDR'"),
	  NULL, "/k/config: users[0].user.client-key-data: not valid base64" },
	{ HEAD CLUSTER USER("client-certificate: /c.crt"), NULL,
	  "/k/config: users[0].user: a client certificate needs its key and a key its "
	  "certificate" },
	{ HEAD CLUSTER USER("client-key: /k, client-key-data: " KEY_B64), NULL,
	  "/k/config: users[0].user: client-key and client-key-data are both set" },
	{ HEAD CLUSTER USER("client-certificate: /c, client-certificate-data: " CERT_B64), NULL,
	  "/k/config: users[0].user: client-certificate and client-certificate-data are both "
	  "set" },
	{ HEAD CLUSTER USER("exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}"),
	  NULL,
	  "/k/config: users[0].user.exec: exec credential plugins are not supported (user "
	  "\"u\"); use a token, a token file or a client certificate" },
	{ HEAD CLUSTER "users:\n- {name: v, user: {}}\n- {name: u, user: {auth-provider: {name: "
		       "gcp}}}\n",
	  NULL,
	  "/k/config: users[1].user.auth-provider: auth-provider plugins are not supported "
	  "(user \"u\"); use a token, a token file or a client certificate" },
	{ HEAD CLUSTER USER("username: admin, password: secret"), NULL,
	  "/k/config: users[0].user.username: basic authentication (username/password) is not "
	  "supported (user \"u\"); use a token, a token file or a client certificate" },
};

static void test_bad(void **state)
{
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		struct kube_config *c = NULL;
		char *err = NULL;
		int r;

		r = kube_config_parse(bad[i].yaml, strlen(bad[i].yaml), "/k/config", bad[i].context,
				      &c, &err);
		if (r != -EINVAL || !err || strcmp(err, bad[i].want) != 0)
			fail_msg("case %zu: r=%d\n  want: %s\n  got:  %s", i, r, bad[i].want,
				 err ? err : "(none)");
		assert_null(c);
		free(err);
	}
}

static void test_parse_misc(void **state)
{
	struct kube_config *c = NULL;
	char *err = NULL, *big;
	const char *y = HEAD CLUSTER USER("token: t");

	/* no origin: errors say "kubeconfig", relative paths stay as given */
	assert_int_equal(kube_config_parse("x: [", 4, NULL, NULL, &c, &err), -EINVAL);
	assert_string_equal(err, "kubeconfig: line 2 column 1: did not find expected node content "
				 "while parsing a flow node");
	free(err);
	err = NULL;
	assert_int_equal(kube_config_parse(y, strlen(y), NULL, NULL, &c, NULL), 0);
	assert_string_equal(c->source, "kubeconfig");
	kube_config_free(c);

	/* no error output wanted is fine */
	assert_int_equal(kube_config_parse("- a", 3, "/k", NULL, &c, NULL), -EINVAL);

	/* list lengths are capped (names are compared pairwise); the cap itself is fine */
	big = calloc(1, 20 * 10002 + 64);
	strcpy(big, "current-context: x\nclusters:\n");
	for (int i = 0; i < 10000; i++)
		sprintf(big + strlen(big), "- {name: c%d}\n", i);
	assert_int_equal(kube_config_parse(big, strlen(big), "/many", NULL, &c, &err), -EINVAL);
	assert_string_equal(err, "/many: contexts: context \"x\" not found");
	free(err);
	strcat(big, "- {name: one-too-many}\n");
	assert_int_equal(kube_config_parse(big, strlen(big), "/many", NULL, &c, &err), -EINVAL);
	assert_string_equal(err, "/many: clusters: more than 10000 entries");
	free(err);
	free(big);

	big = calloc(1, 5 * 1024 * 1024);
	memset(big, ' ', 5 * 1024 * 1024 - 1);
	assert_int_equal(kube_config_parse(big, strlen(big), "/big", NULL, &c, &err), -EINVAL);
	assert_string_equal(err, "/big: larger than 4194304 bytes");
	free(err);
	free(big);
	kube_config_free(NULL);
}

/* ---- files and the environment ---- */

static void test_load_file(void **state)
{
	struct kube_config *c = NULL;
	char *err = NULL, want[512], yaml[512];

	assert_int_equal(kube_config_load_file(at("nope"), NULL, &c, &err), -ENOENT);
	snprintf(want, sizeof want, "%s: No such file or directory", at("nope"));
	assert_string_equal(err, want);
	free(err);
	err = NULL;

	/* files the configuration names must exist, and the error names the field */
	write_file(at("config"), HEAD "clusters:\n- {name: c, cluster: {server: 'https://h', "
				      "certificate-authority: ca.crt}}\n" USER("tokenFile: tok"));
	assert_int_equal(kube_config_load_file(at("config"), NULL, &c, &err), -EINVAL);
	snprintf(want, sizeof want,
		 "%s: clusters[0].cluster.certificate-authority: %s: No such file or directory",
		 at("config"), at("ca.crt"));
	assert_string_equal(err, want);
	free(err);
	err = NULL;
	write_file(at("ca.crt"), CERT_PEM);
	assert_int_equal(kube_config_load_file(at("config"), NULL, &c, &err), -EINVAL);
	snprintf(want, sizeof want, "%s: users[0].user.tokenFile: %s: No such file or directory",
		 at("config"), at("tok"));
	assert_string_equal(err, want);
	free(err);
	err = NULL;
	write_file(at("tok"), "t0k\n");
	assert_int_equal(kube_config_load_file(at("config"), NULL, &c, &err), 0);
	assert_string_equal(c->ca_file, at("ca.crt"));
	assert_string_equal(c->token_file, at("tok"));
	assert_string_equal(c->source, at("config"));
	kube_config_free(c);

	/* a broken file: the message names it */
	write_file(at("broken"), "clusters:\n  - name: c\n   cluster: {}\n");
	assert_int_equal(kube_config_load_file(at("broken"), NULL, &c, &err), -EINVAL);
	snprintf(yaml, sizeof yaml, "%s: line 3 column 4: ", at("broken"));
	assert_true(strncmp(err, yaml, strlen(yaml)) == 0);
	free(err);
}

static void test_merge(void **state)
{
	struct kube_config *c = NULL;
	char *err = NULL, list[1024], want[1024];

	/* a: defines the context and cluster c1 (wins over b's c1), sets no current-context
	 * b: sets current-context (the first file to set it), redefines c1, adds c2
	 * c: sets another current-context (ignored: b was first) */
	write_file(at("a"), "clusters:\n- {name: c1, cluster: {server: 'https://a'}}\n"
			    "contexts:\n- {name: ctx, context: {cluster: c1, namespace: from-a}}\n"
			    "- {name: other, context: {cluster: c2}}\n");
	write_file(at("b"),
		   "current-context: ctx\n"
		   "clusters:\n- {name: c1, cluster: {server: 'https://b'}}\n"
		   "- {name: c2, cluster: {server: 'https://b2'}}\n"
		   "contexts:\n- {name: ctx, context: {cluster: c2, namespace: from-b}}\n");
	write_file(at("c"), "current-context: other\n");
	snprintf(list, sizeof list, "%s::%s:%s:%s", at("missing"), at("a"), at("b"), at("c"));
	setenv("KUBECONFIG", list, 1);
	assert_int_equal(kube_config_load(NULL, &c, &err), 0);
	assert_string_equal(c->server, "https://a");
	assert_string_equal(c->namespace, "from-a");
	assert_string_equal(c->source, at("a"));
	kube_config_free(c);

	/* an explicit context; its cluster comes from the only file that has it */
	assert_int_equal(kube_config_load("other", &c, &err), 0);
	assert_string_equal(c->server, "https://b2");
	assert_null(c->namespace);
	kube_config_free(c);

	/* not-found errors name every file that was read */
	assert_int_equal(kube_config_load("nope", &c, &err), -EINVAL);
	snprintf(want, sizeof want, "%s:%s:%s: contexts: context \"nope\" not found", at("a"),
		 at("b"), at("c"));
	assert_string_equal(err, want);
	free(err);
	err = NULL;

	/* an error in any listed file stops the load and names that file */
	write_file(at("c"), "contexts: {}\n");
	assert_int_equal(kube_config_load(NULL, &c, &err), -EINVAL);
	snprintf(want, sizeof want, "%s: contexts: expected a list, got a mapping", at("c"));
	assert_string_equal(err, want);
	free(err);
}

static void test_home(void **state)
{
	struct kube_config *c = NULL;
	char *err = NULL, want[512];

	assert_int_equal(mkdir(at(".kube"), 0700), 0);
	setenv("HOME", tmpdir, 1);
	write_file(at(".kube/config"), HEAD CLUSTER USER("token: home"));
	assert_int_equal(kube_config_load(NULL, &c, &err), 0);
	assert_string_equal(c->token, "home");
	assert_string_equal(c->source, at(".kube/config"));
	kube_config_free(c);

	/* KUBECONFIG, when set, is used instead; when none of its files exist and this is
	 * not a pod, the error says all of that */
	setenv("KUBECONFIG", at("nope"), 1);
	assert_int_equal(kube_config_load(NULL, &c, &err), -EINVAL);
	snprintf(want, sizeof want,
		 "no Kubernetes configuration: none of the files in KUBECONFIG=%s exist, and this "
		 "is not a pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset)",
		 at("nope"));
	assert_string_equal(err, want);
	free(err);
}

static void test_in_cluster(void **state)
{
	struct kube_config *c = NULL;
	char *err = NULL, want[512];

	setenv("HOME", tmpdir, 1); /* no .kube/config there */
	assert_int_equal(kube_config_load(NULL, &c, &err), -EINVAL);
	snprintf(
	    want, sizeof want,
	    "no Kubernetes configuration: KUBECONFIG is unset and %s does not exist, and "
	    "this is not a pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset)",
	    at(".kube/config"));
	assert_string_equal(err, want);
	free(err);
	err = NULL;

	assert_int_equal(mkdir(at("sa"), 0700), 0);
	setenv("KUBE_SA_DIR", at("sa"), 1);
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	assert_int_equal(kube_config_load(NULL, &c, &err), -EINVAL);
	snprintf(want, sizeof want,
		 "in-cluster: service account token %s: No such file or directory", at("sa/token"));
	assert_string_equal(err, want);
	free(err);
	err = NULL;

	write_file(at("sa/token"), "sa-token\n");
	assert_int_equal(kube_config_load(NULL, &c, &err), 0);
	assert_string_equal(c->server, "https://10.96.0.1:443");
	assert_string_equal(c->token_file, at("sa/token"));
	assert_null(c->token);
	assert_null(c->ca_file); /* no ca.crt: the system store */
	assert_null(c->namespace);
	assert_string_equal(c->source, "in-cluster");
	kube_config_free(c);

	write_file(at("sa/ca.crt"), CERT_PEM);
	write_file(at("sa/namespace"), "prod\n");
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	assert_int_equal(kube_config_load(NULL, &c, &err), 0);
	assert_string_equal(c->server, "https://[fd00::1]:443");
	assert_string_equal(c->ca_file, at("sa/ca.crt"));
	assert_string_equal(c->namespace, "prod");
	kube_config_free(c);

	setenv("POD_NAMESPACE", "downward", 1);
	assert_int_equal(kube_config_load(NULL, &c, &err), 0);
	assert_string_equal(c->namespace, "downward");
	kube_config_free(c);

	/* contexts do not exist in-cluster */
	assert_int_equal(kube_config_load("dev", &c, &err), -EINVAL);
	assert_non_null(strstr(err, "context \"dev\" requested, but KUBECONFIG is unset"));
	free(err);
	err = NULL;

	setenv("KUBERNETES_SERVICE_PORT", "https", 1);
	assert_int_equal(kube_config_load(NULL, &c, &err), -EINVAL);
	assert_string_equal(err,
			    "in-cluster: KUBERNETES_SERVICE_PORT=\"https\" is not a port number");
	free(err);
	err = NULL;
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	setenv("KUBERNETES_SERVICE_HOST", "a/b", 1);
	assert_int_equal(kube_config_load(NULL, &c, &err), -EINVAL);
	assert_string_equal(
	    err, "in-cluster: KUBERNETES_SERVICE_HOST=\"a/b\" is not a host name or address");
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_parse_misc),
		cmocka_unit_test_setup_teardown(test_load_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_merge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_home, setup, teardown),
		cmocka_unit_test_setup_teardown(test_in_cluster, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
