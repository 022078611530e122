/* libepoch references and vocabularies: name:tag split on the first ':', digests (docker's
 * name:tag@digest too), Epoch /dl/ (with the legacy multi-segment reading) and /v2/ URLs,
 * the errors a user sees for bad references, WWW-Authenticate Bearer challenges, and layer
 * media types by file name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "../../epoch-client/epoch.h"

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void check_ref(const char *in, const char *url, const char *name, const char *tag,
		      const char *digest)
{
	struct epoch_ref r = {};
	char *err = NULL;

	if (epoch_ref_parse(in, &r, &err) != 0)
		fail_msg("%s: %s", in, err);
	assert_null(err);
	if (url)
		assert_string_equal(r.url, url);
	else
		assert_null(r.url);
	assert_string_equal(r.name, name);
	if (tag) {
		assert_string_equal(r.tag, tag);
		assert_null(r.digest);
		assert_string_equal(epoch_ref_target(&r), tag);
	} else {
		assert_null(r.tag);
		assert_string_equal(r.digest, digest);
		assert_string_equal(epoch_ref_target(&r), digest);
	}
	epoch_ref_done(&r);
}

static void test_ref_names(void **state)
{
	check_ref("vm1", NULL, "vm1", "latest", NULL);
	check_ref("vm1:hibernate", NULL, "vm1", "hibernate", NULL);
	check_ref("simular/win11:22h2-20260510", NULL, "simular/win11", "22h2-20260510", NULL);
	check_ref("vk-ns-app-0:latest", NULL, "vk-ns-app-0", "latest", NULL);
	check_ref("Ubuntu_24.04", NULL, "Ubuntu_24.04", "latest", NULL);
	check_ref("vm1@sha256:" D64, NULL, "vm1", NULL, "sha256:" D64);
	check_ref("vm1:sha256:" D64, NULL, "vm1", NULL, "sha256:" D64);
	/* docker's NAME:TAG@DIGEST (what `docker inspect` prints): the digest pins it */
	check_ref("vm1:hibernate@sha256:" D64, NULL, "vm1", NULL, "sha256:" D64);
	check_ref("simular/win11:22h2@sha256:" D64, NULL, "simular/win11", NULL, "sha256:" D64);
}

static void test_ref_urls(void **state)
{
	check_ref("http://epoch:8080/dl/win11", "http://epoch:8080", "win11", "latest", NULL);
	check_ref("https://epoch.example.com/dl/win11/latest", "https://epoch.example.com", "win11",
		  "latest", NULL);
	check_ref("https://e.example/dl/simular/win11/22h2-20260510", "https://e.example",
		  "simular/win11", "22h2-20260510", NULL);
	check_ref("http://10.0.0.1:8080/epoch/dl/vm1", "http://10.0.0.1:8080/epoch", "vm1",
		  "latest", NULL);
	check_ref("http://h:8080/v2/vm1/manifests/hibernate", "http://h:8080", "vm1", "hibernate",
		  NULL);
	check_ref("http://h/v2/a/b/manifests/sha256:" D64, "http://h", "a/b", NULL, "sha256:" D64);
}

/* /dl/a/b is a:b to newer epoch, which falls back to the legacy reading a/b:latest. */
static void check_legacy(const char *in, const char *legacy_name)
{
	struct epoch_ref r = {};

	assert_int_equal(epoch_ref_parse(in, &r, NULL), 0);
	if (legacy_name)
		assert_string_equal(r.legacy_name, legacy_name);
	else
		assert_null(r.legacy_name);
	epoch_ref_done(&r);
}

static void test_ref_dl_legacy(void **state)
{
	check_legacy("http://e/dl/simular/win11", "simular/win11");
	check_legacy("http://e/dl/simular/win11/22h2", "simular/win11/22h2");
	check_legacy("http://e/dl/win11", NULL);
	check_legacy("http://e/dl/win11/sha256:" D64, NULL);
	check_legacy("http://e/v2/a/b/manifests/latest", NULL);
	check_legacy("a/b:c", NULL);
}

static void check_bad(const char *in, const char *want)
{
	struct epoch_ref r = {};
	char *err = NULL;

	assert_int_equal(epoch_ref_parse(in, &r, &err), -EINVAL);
	assert_non_null(err);
	if (!strstr(err, want))
		fail_msg("%s: expected \"%s\" in \"%s\"", in, want, err);
	assert_null(r.name);
	free(err);
}

static void test_ref_errors(void **state)
{
	check_bad("", "empty reference");
	check_bad("host:5000/vm1:latest", "a registry host belongs in EPOCH_URL");
	check_bad("vm1:", "invalid tag \"\"");
	check_bad("vm1:.hidden", "invalid tag");
	check_bad("-vm1", "invalid repository name \"-vm1\"");
	check_bad("a//b", "invalid repository name");
	check_bad("a/../b", "invalid repository name");
	check_bad("vm1@sha256:abc", "invalid digest \"sha256:abc\"");
	check_bad("vm1@sha256:" D64 "0", "invalid digest");
	check_bad("vm1:.x@sha256:" D64, "invalid tag \".x\"");
	check_bad("host:5000/vm1@sha256:" D64, "a registry host belongs in EPOCH_URL");
	check_bad("vm1:latest@abc", "invalid digest \"abc\" in \"vm1:latest@abc\"");
	check_bad("http://h/dl/", "invalid repository name");
	check_bad("http:///dl/vm1", "names no artifact");
	check_bad("http://h/v2/vm1/tags/list", "not a manifest URL");
	check_bad("http://h/dl/vm1?x=1", "no query");
	check_bad("http://h/other/vm1", "names no artifact");
	/* the parser never hands out a half-filled reference */
	check_bad("vm1:a/b", "a registry host belongs in EPOCH_URL");
}

static void test_name_tag_digest_rules(void **state)
{
	char long_tag[130];

	assert_true(epoch_name_valid("a"));
	assert_true(epoch_name_valid("a.b_c-d/e"));
	assert_false(epoch_name_valid(NULL));
	assert_false(epoch_name_valid("a/"));
	assert_false(epoch_name_valid("/a"));
	assert_false(epoch_name_valid("a b"));
	assert_false(epoch_name_valid("a."));
	memset(long_tag, 'x', sizeof long_tag);
	long_tag[128] = '\0';
	assert_true(epoch_tag_valid(long_tag));
	long_tag[128] = 'x';
	long_tag[129] = '\0';
	assert_false(epoch_tag_valid(long_tag));
	assert_true(epoch_tag_valid("_x"));
	assert_false(epoch_tag_valid("-x"));
	assert_true(epoch_digest_valid("sha256:" D64));
	assert_false(epoch_digest_valid("sha256:" D64 "a"));
	assert_false(epoch_digest_valid("sha512:" D64));
	assert_false(epoch_digest_valid(
	    "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"));
}

static void check_challenge(const char *h, const char *realm, const char *service,
			    const char *scope)
{
	struct epoch_challenge c = {};
	char *err = NULL;

	if (epoch_challenge_parse(h, &c, &err) != 0)
		fail_msg("%s: %s", h, err);
	assert_string_equal(c.realm, realm);
	if (service)
		assert_string_equal(c.service, service);
	else
		assert_null(c.service);
	if (scope)
		assert_string_equal(c.scope, scope);
	else
		assert_null(c.scope);
	epoch_challenge_done(&c);
}

static void test_challenges(void **state)
{
	struct epoch_challenge c = {};
	char *err = NULL;

	check_challenge("Bearer realm=\"http://epoch:8080/v2/token\",service=\"epoch\"",
			"http://epoch:8080/v2/token", "epoch", NULL);
	check_challenge(
	    "Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
	    "scope=\"repository:samalba/my-app:pull,push\"",
	    "https://auth.docker.io/token", "registry.docker.io",
	    "repository:samalba/my-app:pull,push");
	/* case-insensitive scheme and names, spaces, unquoted values, unknown params */
	check_challenge("bearer  Realm=https://h/token , SERVICE=reg, error=\"invalid_token\"",
			"https://h/token", "reg", NULL);
	/* quoted-pair escapes */
	check_challenge("Bearer realm=\"http://h/t\\\"x\",scope=\"a\\\\b\"", "http://h/t\"x", NULL,
			"a\\b");
	/* a Basic challenge first, then Bearer */
	check_challenge("Basic realm=\"registry\", Bearer realm=\"http://h/token\",service=\"s\"",
			"http://h/token", "s", NULL);
	check_challenge("Basic dXNlcg==, Bearer realm=\"http://h/token\"", "http://h/token", NULL,
			NULL);

	assert_int_equal(epoch_challenge_parse("Basic realm=\"registry\"", &c, &err), -ENOENT);
	assert_non_null(strstr(err, "no Bearer challenge"));
	free(err);
	assert_int_equal(epoch_challenge_parse(NULL, &c, NULL), -ENOENT);
	assert_int_equal(epoch_challenge_parse("Bearer service=\"x\"", &c, &err), -EBADMSG);
	assert_non_null(strstr(err, "without a realm"));
	free(err);
	assert_int_equal(epoch_challenge_parse("Bearer realm=\"unterminated", &c, &err), -EBADMSG);
	assert_non_null(strstr(err, "malformed"));
	free(err);
	assert_int_equal(epoch_challenge_parse("Bearer realm=x y=z", &c, NULL), -EBADMSG);
	assert_int_equal(epoch_challenge_parse("=x", &c, NULL), -EBADMSG);
}

static void test_media_types(void **state)
{
	static const struct {
		const char *file, *type;
	} table[] = {
		{ "config.json", "application/vnd.cocoonstack.vm.config+json" },
		{ "state.json", "application/vnd.cocoonstack.vm.state+json" },
		{ "memory-ranges", "application/vnd.cocoonstack.vm.memory" },
		{ "cidata.img", "application/vnd.cocoonstack.vm.cidata" },
		{ "overlay.qcow2", "application/vnd.cocoonstack.disk.qcow2" },
		{ "base.qcow2", "application/vnd.cocoonstack.disk.qcow2" },
		{ "cow.raw", "application/vnd.cocoonstack.disk.raw" },
		{ "data-logs.raw", "application/vnd.cocoonstack.disk.raw" },
		{ "cocoon.json", "application/octet-stream" },
		{ "snapshot.json", "application/octet-stream" },
		{ "raw", "application/octet-stream" },
		{ "memory-ranges.bak", "application/octet-stream" },
	};

	for (size_t i = 0; i < ELEMENTSOF(table); i++)
		assert_string_equal(epoch_layer_media_type(table[i].file), table[i].type);
	assert_true(epoch_media_type_is_disk("application/vnd.cocoonstack.disk.qcow2"));
	assert_true(epoch_media_type_is_disk("application/vnd.cocoonstack.disk.raw.part"));
	assert_true(
	    epoch_media_type_is_disk("application/vnd.cocoonstack.windows.disk.qcow2.part"));
	assert_false(epoch_media_type_is_disk("application/vnd.cocoonstack.vm.memory"));
	assert_false(epoch_media_type_is_disk(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ref_names),     cmocka_unit_test(test_ref_urls),
		cmocka_unit_test(test_ref_errors),    cmocka_unit_test(test_name_tag_digest_rules),
		cmocka_unit_test(test_challenges),    cmocka_unit_test(test_media_types),
		cmocka_unit_test(test_ref_dl_legacy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
