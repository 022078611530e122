/* Fuzz the registry-side parsers of libepoch on arbitrary bytes: OCI manifests and indexes
 * (with the platform choice), snapshot config blobs and the snapshot.json built from them,
 * and cocoon's snapshot.json turned into a config blob. Beyond "no crash, no leak": a
 * failed parse must say why, and a snapshot manifest that parses must survive being built
 * again from its parts with the same layers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../epoch-client/epoch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip(const struct epoch_manifest *m)
{
	struct epoch_manifest_spec spec = {
		.config = &m->config,
		.layers = m->layers,
		.n_layers = m->n_layers,
		.created = "2026-04-24T10:00:00Z",
	};
	struct epoch_manifest *again = NULL;
	char *json = NULL, *err = NULL;
	size_t len;

	for (size_t i = 0; i < m->n_layers; i++)
		if (!m->layers[i].title)
			return;
	if (epoch_manifest_build(&spec, &json, &len) < 0)
		return; /* out of memory, or strings jansson refuses (invalid UTF-8) */
	if (epoch_manifest_parse(json, len, &again, &err) < 0 || again->n_layers != m->n_layers ||
	    again->kind != EPOCH_KIND_SNAPSHOT)
		abort();
	for (size_t i = 0; i < m->n_layers; i++)
		if (strcmp(again->layers[i].digest, m->layers[i].digest) != 0 ||
		    again->layers[i].size != m->layers[i].size ||
		    strcmp(again->layers[i].title, m->layers[i].title) != 0)
			abort();
	epoch_manifest_free(again);
	free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct epoch_manifest *m = NULL;
	struct epoch_snapshot_config *c = NULL;
	char *err = NULL, *out = NULL;
	size_t len;
	int r;

	r = epoch_manifest_parse(data, size, &m, &err);
	if (r == -EBADMSG && !err)
		abort();
	free(err);
	err = NULL;
	if (r == 0) {
		(void)epoch_index_select(m, "linux", "amd64");
		(void)epoch_manifest_annotation(m, EPOCH_ANNOTATION_CREATED);
		if (m->kind == EPOCH_KIND_SNAPSHOT)
			roundtrip(m);
		epoch_manifest_free(m);
	}

	r = epoch_snapshot_config_parse(data, size, &c, &err);
	if (r == -EBADMSG && !err)
		abort();
	free(err);
	err = NULL;
	if (r == 0) {
		for (size_t i = 0; i < c->n_files; i++)
			if (epoch_snapshot_config_file(c, c->files[i].name) == NULL)
				abort();
		if (epoch_snapshot_json_build(c, "local", NULL, &out, &len) == 0)
			free(out);
		epoch_snapshot_config_free(c);
	}

	r = epoch_snapshot_config_build(data, size, NULL, 0, "2026-04-24T10:00:00Z", &out, &len,
					&err);
	if (r == -EBADMSG && !err)
		abort();
	if (r == 0) {
		/* what we build, we can read */
		if (epoch_snapshot_config_parse(out, len, &c, NULL) < 0)
			abort();
		epoch_snapshot_config_free(c);
		free(out);
	}
	free(err);
	return 0;
}
