/* libepoch manifests: the snapshot manifest byte for byte (golden, 2-space indent, field
 * order, sorted annotations), the config blob built from cocoon's snapshot.json (camelCase,
 * omitempty, files sorted, createdAt), its parse (imageBlobIds as object or array), the
 * snapshot.json handed to `cocoon snapshot import`, strict parsing with errors that name
 * the field, classification, and the index platform choice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../epoch-client/epoch.h"

#define DA "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DB "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define DC "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static const char golden_manifest[] =
    "{\n"
    "  \"schemaVersion\": 2,\n"
    "  \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\",\n"
    "  \"artifactType\": \"application/vnd.cocoonstack.snapshot.v1+json\",\n"
    "  \"config\": {\n"
    "    \"mediaType\": \"application/vnd.cocoonstack.snapshot.config.v1+json\",\n"
    "    \"digest\": \"" DA "\",\n"
    "    \"size\": 321\n"
    "  },\n"
    "  \"layers\": [\n"
    "    {\n"
    "      \"mediaType\": \"application/vnd.cocoonstack.vm.config+json\",\n"
    "      \"digest\": \"" DB "\",\n"
    "      \"size\": 60,\n"
    "      \"annotations\": {\n"
    "        \"org.opencontainers.image.title\": \"config.json\"\n"
    "      }\n"
    "    },\n"
    "    {\n"
    "      \"mediaType\": \"application/vnd.cocoonstack.disk.raw\",\n"
    "      \"digest\": \"" DC "\",\n"
    "      \"size\": 8388608,\n"
    "      \"annotations\": {\n"
    "        \"org.opencontainers.image.title\": \"cow.raw\"\n"
    "      }\n"
    "    }\n"
    "  ],\n"
    "  \"annotations\": {\n"
    "    \"cocoonstack.snapshot.baseimage\": \"ghcr.io/cocoonstack/ubuntu:24.04\",\n"
    "    \"org.opencontainers.image.created\": \"2026-04-24T10:00:00Z\",\n"
    "    \"org.opencontainers.image.revision\": \"fcafc2d\",\n"
    "    \"org.opencontainers.image.source\": \"https://github.com/cocoonstack/epoch\"\n"
    "  }\n"
    "}";

static void test_manifest_golden(void **state)
{
	struct epoch_descriptor config = { .media_type = (char *)EPOCH_MT_SNAPSHOT_CONFIG,
					   .digest = (char *)DA,
					   .size = 321 };
	struct epoch_descriptor layers[] = {
		{ .media_type = (char *)epoch_layer_media_type("config.json"),
		  .digest = (char *)DB,
		  .size = 60,
		  .title = (char *)"config.json" },
		{ .media_type = (char *)epoch_layer_media_type("cow.raw"),
		  .digest = (char *)DC,
		  .size = 8388608,
		  .title = (char *)"cow.raw" },
	};
	struct epoch_manifest_spec spec = {
		.config = &config,
		.layers = layers,
		.n_layers = 2,
		.created = "2026-04-24T10:00:00Z",
		.base_image = "ghcr.io/cocoonstack/ubuntu:24.04",
		.source = "https://github.com/cocoonstack/epoch",
		.revision = "fcafc2d",
	};
	struct epoch_manifest *m = NULL;
	char *json = NULL, *err = NULL;
	size_t len;

	assert_int_equal(epoch_manifest_build(&spec, &json, &len), 0);
	assert_string_equal(json, golden_manifest);
	assert_int_equal(len, strlen(golden_manifest));

	/* and it reads back as a snapshot with its titles */
	assert_int_equal(epoch_manifest_parse(json, len, &m, &err), 0);
	assert_int_equal(m->kind, EPOCH_KIND_SNAPSHOT);
	assert_int_equal(m->n_layers, 2);
	assert_string_equal(m->layers[1].title, "cow.raw");
	assert_int_equal(m->layers[1].size, 8388608);
	assert_string_equal(epoch_manifest_annotation(m, EPOCH_ANNOTATION_BASE_IMAGE),
			    "ghcr.io/cocoonstack/ubuntu:24.04");
	epoch_manifest_free(m);
	free(json);

	/* no optional annotations: only created */
	spec.base_image = spec.source = spec.revision = NULL;
	spec.n_layers = 0;
	assert_int_equal(epoch_manifest_build(&spec, &json, &len), 0);
	assert_non_null(
	    strstr(json, "  \"layers\": [],\n  \"annotations\": {\n"
			 "    \"org.opencontainers.image.created\": \"2026-04-24T10:00:00Z\"\n"
			 "  }\n}"));
	free(json);
}

static const char snapshot_json[] =
    "{\"config\":{\"id\":\"B3SJZYIP7OBHVKCBDVHHPTLULX\",\"name\":\"vm1\",\"description\":\"\","
    "\"cpu\":2,\"memory\":1073741824,\"storage\":3221225472,\"image\":\"ubuntu-24.04\","
    "\"image_type\":\"cloudimg\",\"image_blob_ids\":{\"abc\":{}},\"hypervisor\":"
    "\"cloud-hypervisor\",\"nics\":1,\"windows\":false,\"queue_size\":1024,"
    "\"no_direct_io\":true,\"created_at\":\"2026-11-21T05:18:36.9176Z\"},\"version\":1}";

static void test_config_build(void **state)
{
	struct epoch_file_meta files[] = {
		{ .name = (char *)"state.json", .mode = 0640 },
		{ .name = (char *)"cow.raw",
		  .mode = 0644,
		  .sparse_map = (char *)"[{\"o\":0,\"l\":4096}]",
		  .sparse_size = 3221225472 },
	};
	static const char bad_cpu[] = "{\"config\":{\"cpu\":\"2\"}}";
	char *out = NULL, *err = NULL;
	size_t len;

	assert_int_equal(epoch_snapshot_config_build(snapshot_json, strlen(snapshot_json), files, 2,
						     "2030-01-01T00:00:00Z", &out, &len, &err),
			 0);
	assert_string_equal(
	    out,
	    "{\"schemaVersion\":\"v1\",\"snapshotId\":\"B3SJZYIP7OBHVKCBDVHHPTLULX\","
	    "\"image\":\"ubuntu-24.04\",\"imageType\":\"cloudimg\",\"imageBlobIds\":{\"abc\":{}},"
	    "\"hypervisor\":\"cloud-hypervisor\",\"cpu\":2,\"memory\":1073741824,"
	    "\"storage\":3221225472,\"nics\":1,\"queueSize\":1024,\"noDirectIo\":true,"
	    "\"files\":{\"cow.raw\":{\"mode\":420,\"sparseMap\":\"[{\\\"o\\\":0,\\\"l\\\":4096}]\","
	    "\"sparseSize\":3221225472},\"state.json\":{\"mode\":416}},"
	    "\"createdAt\":\"2026-11-21T05:18:36.9176Z\"}");
	assert_int_equal(len, strlen(out));
	free(out);

	/* without the snapshot's own time, the given one */
	assert_int_equal(epoch_snapshot_config_build("{\"config\":{}}", 13, NULL, 0,
						     "2030-01-01T00:00:00Z", &out, &len, &err),
			 0);
	assert_string_equal(out, "{\"schemaVersion\":\"v1\",\"snapshotId\":\"\",\"files\":{},"
				 "\"createdAt\":\"2030-01-01T00:00:00Z\"}");
	free(out);

	assert_int_equal(epoch_snapshot_config_build("[1]", 3, NULL, 0, "x", &out, &len, &err),
			 -EBADMSG);
	assert_string_equal(err, "snapshot.json: config: expected an object");
	free(err);
	assert_int_equal(
	    epoch_snapshot_config_build(bad_cpu, strlen(bad_cpu), NULL, 0, "x", &out, &len, &err),
	    -EBADMSG);
	assert_string_equal(err, "snapshot.json: config.cpu: expected an integer");
	free(err);
	assert_int_equal(epoch_snapshot_config_build("{", 1, NULL, 0, "x", &out, &len, &err),
			 -EBADMSG);
	assert_non_null(strstr(err, "snapshot.json is not JSON"));
	free(err);
}

static void test_config_parse_and_snapshot_json(void **state)
{
	static const char blob[] =
	    "{\"schemaVersion\":\"v1\",\"snapshotId\":\"SID\",\"description\":\"d\","
	    "\"image\":\"img\",\"imageBlobIds\":[\"h1\",\"h2\"],\"cpu\":4,\"windows\":true,"
	    "\"diskQueueSize\":256,\"files\":{\"cow.raw\":{\"mode\":420,\"sparseMap\":"
	    "\"[{\\\"o\\\":0,\\\"l\\\":1}]\",\"sparseSize\":10},\"x\":{},\"y\":{\"mode\":0}},"
	    "\"createdAt\":\"t\",\"future\":\"ignored\"}";
	struct epoch_snapshot_config *c = NULL;
	const struct epoch_file_meta *f;
	char *json = NULL, *err = NULL;
	size_t len;

	assert_int_equal(epoch_snapshot_config_parse(blob, strlen(blob), &c, &err), 0);
	assert_string_equal(c->snapshot_id, "SID");
	assert_string_equal(c->description, "d");
	f = epoch_snapshot_config_file(c, "cow.raw");
	assert_non_null(f);
	assert_int_equal(f->mode, 0644);
	assert_string_equal(f->sparse_map, "[{\"o\":0,\"l\":1}]");
	assert_int_equal(f->sparse_size, 10);
	f = epoch_snapshot_config_file(c, "x");
	assert_int_equal(f->mode, 0640); /* epoch's default for a file without a mode */
	assert_null(f->sparse_map);
	f = epoch_snapshot_config_file(c, "y");
	assert_int_equal(f->mode, 0640); /* and for mode 0, which Go cannot tell from none */
	assert_null(epoch_snapshot_config_file(c, "nope"));

	assert_int_equal(epoch_snapshot_json_build(c, "local", NULL, &json, &len), 0);
	assert_string_equal(json, "{\n"
				  "  \"config\": {\n"
				  "    \"id\": \"SID\",\n"
				  "    \"name\": \"local\",\n"
				  "    \"description\": \"d\",\n"
				  "    \"image\": \"img\",\n"
				  "    \"image_blob_ids\": {\n"
				  "      \"h1\": {},\n"
				  "      \"h2\": {}\n"
				  "    },\n"
				  "    \"cpu\": 4,\n"
				  "    \"windows\": true,\n"
				  "    \"disk_queue_size\": 256\n"
				  "  },\n"
				  "  \"version\": 1\n"
				  "}\n");
	assert_int_equal(len, strlen(json));
	free(json);
	assert_int_equal(epoch_snapshot_json_build(c, "l2", "new words", &json, &len), 0);
	assert_non_null(strstr(json, "\"description\": \"new words\""));
	free(json);
	epoch_snapshot_config_free(c);

	assert_int_equal(
	    epoch_snapshot_config_parse("{\"files\":{\"a\":{\"mode\":99999}}}", 30, &c, &err),
	    -EBADMSG);
	assert_string_equal(err, "config files.a.mode: expected 0 to 07777");
	free(err);
	assert_int_equal(epoch_snapshot_config_parse("{\"cpu\":true}", 12, &c, &err), -EBADMSG);
	assert_string_equal(err, "config cpu: expected an integer");
	free(err);
}

static void check_parse_error(const char *json, const char *want)
{
	struct epoch_manifest *m = NULL;
	char *err = NULL;

	assert_int_equal(epoch_manifest_parse(json, strlen(json), &m, &err), -EBADMSG);
	assert_null(m);
	if (!err || !strstr(err, want))
		fail_msg("%s: expected \"%s\" in \"%s\"", json, want, err);
	free(err);
}

#define CFG "\"config\":{\"mediaType\":\"x\",\"digest\":\"" DA "\",\"size\":2}"

static void test_manifest_parse_errors(void **state)
{
	check_parse_error("", "manifest is not JSON");
	check_parse_error("[]", "manifest: expected a JSON object");
	check_parse_error("{\"schemaVersion\":1}", "schemaVersion: expected 2");
	check_parse_error("{\"schemaVersion\":2}", "config: missing");
	check_parse_error("{\"schemaVersion\":2,\"schemaVersion\":2}", "duplicate");
	check_parse_error("{\"schemaVersion\":2," CFG ",\"layers\":{}}",
			  "layers: expected an array");
	check_parse_error("{\"schemaVersion\":2," CFG ",\"layers\":[{\"mediaType\":\"m\","
			  "\"digest\":\"sha256:00\",\"size\":1}]}",
			  "layers[0].digest: expected sha256:");
	check_parse_error("{\"schemaVersion\":2," CFG ",\"layers\":[{\"mediaType\":\"m\","
			  "\"digest\":\"" DB "\",\"size\":-1}]}",
			  "layers[0].size: expected an integer from 0 to 2^53");
	check_parse_error("{\"schemaVersion\":2," CFG ",\"layers\":[{\"mediaType\":\"m\","
			  "\"digest\":\"" DB "\",\"size\":9007199254740992}]}",
			  "layers[0].size");
	check_parse_error("{\"schemaVersion\":2," CFG ",\"layers\":[{\"digest\":\"" DB
			  "\",\"size\":1}]}",
			  "layers[0].mediaType: missing");
	check_parse_error("{\"schemaVersion\":2," CFG ",\"layers\":[{\"mediaType\":\"m\","
			  "\"digest\":\"" DB "\",\"size\":1,\"annotations\":{"
			  "\"org.opencontainers.image.title\":5}}]}",
			  "layers[0].org.opencontainers.image.title: expected a string");
	check_parse_error("{\"schemaVersion\":2," CFG ",\"annotations\":{\"a\":1}}",
			  "annotations.a: expected a string");
	check_parse_error("{\"schemaVersion\":2,\"mediaType\":\"" EPOCH_MT_OCI_INDEX
			  "\",\"manifests\":[{\"mediaType\":\"m\",\"digest\":\"" DA
			  "\",\"size\":1,\"platform\":[]}]}",
			  "manifests[0].platform: expected an object");
}

static enum epoch_kind kind_of(const char *json)
{
	struct epoch_manifest *m = NULL;
	enum epoch_kind k;
	char *err = NULL;

	if (epoch_manifest_parse(json, strlen(json), &m, &err) < 0)
		fail_msg("%s: %s", json, err);
	k = m->kind;
	epoch_manifest_free(m);
	return k;
}

static void test_classify(void **state)
{
	assert_int_equal(
	    kind_of("{\"schemaVersion\":2,\"artifactType\":\"" EPOCH_AT_SNAPSHOT "\"," CFG "}"),
	    EPOCH_KIND_SNAPSHOT);
	assert_int_equal(
	    kind_of("{\"schemaVersion\":2,\"artifactType\":\"" EPOCH_AT_OS_IMAGE "\"," CFG "}"),
	    EPOCH_KIND_CLOUD_IMAGE);
	assert_int_equal(kind_of("{\"schemaVersion\":2,\"artifactType\":\"" EPOCH_AT_WINDOWS_IMAGE
				 "\"," CFG "}"),
			 EPOCH_KIND_CLOUD_IMAGE);
	assert_int_equal(
	    kind_of("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" EPOCH_MT_OCI_CONFIG
		    "\",\"digest\":\"" DA "\",\"size\":2},\"layers\":[]}"),
	    EPOCH_KIND_CONTAINER_IMAGE);
	assert_int_equal(kind_of("{\"schemaVersion\":2,\"mediaType\":\"" EPOCH_MT_DOCKER_LIST
				 "\",\"manifests\":[]}"),
			 EPOCH_KIND_INDEX);
	assert_int_equal(kind_of("{\"schemaVersion\":2," CFG "}"), EPOCH_KIND_UNKNOWN);
	assert_string_equal(epoch_kind_to_string(EPOCH_KIND_CLOUD_IMAGE), "cloud-image");
}

static const char *pick(const char *manifests)
{
	static char digest[80];
	struct epoch_manifest *m = NULL;
	const struct epoch_descriptor *d;
	char *json = NULL, *err = NULL;

	assert_true(asprintf(&json,
			     "{\"schemaVersion\":2,\"mediaType\":\"" EPOCH_MT_OCI_INDEX
			     "\",\"manifests\":[%s]}",
			     manifests) > 0);
	if (epoch_manifest_parse(json, strlen(json), &m, &err) < 0)
		fail_msg("%s: %s", json, err);
	free(json);
	assert_int_equal(m->kind, EPOCH_KIND_INDEX);
	d = epoch_index_select(m, "linux", "amd64");
	snprintf(digest, sizeof digest, "%s", d ? d->digest : "none");
	epoch_manifest_free(m);
	return digest;
}

#define ENTRY(d, os, arch)                                                                         \
	"{\"mediaType\":\"" EPOCH_MT_OCI_MANIFEST "\",\"digest\":\"" d "\",\"size\":10,"           \
	"\"platform\":{\"os\":\"" os "\",\"architecture\":\"" arch "\"}}"

static void test_index_select(void **state)
{
	assert_string_equal(pick(ENTRY(DA, "linux", "arm64") "," ENTRY(DB, "linux", "amd64")), DB);
	/* no linux/amd64: the first whose architecture is not "unknown" (attestations are) */
	assert_string_equal(pick(ENTRY(DA, "unknown", "unknown") "," ENTRY(
				DB, "linux", "arm64") "," ENTRY(DC, "windows", "amd64")),
			    DB);
	assert_string_equal(pick(ENTRY(DA, "unknown", "unknown")), "none");
	assert_string_equal(pick(""), "none");
	/* a child without a platform is usable */
	assert_string_equal(pick("{\"mediaType\":\"m\",\"digest\":\"" DC "\",\"size\":1}"), DC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_manifest_golden),
		cmocka_unit_test(test_config_build),
		cmocka_unit_test(test_config_parse_and_snapshot_json),
		cmocka_unit_test(test_manifest_parse_errors),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_index_select),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
