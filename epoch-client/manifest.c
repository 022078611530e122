/* OCI manifests, indexes and the snapshot config blob (net-epoch-runtime.md §2.5–2.6).
 *
 * Parsing is strict where a mistake would reach the importer (digests, sizes, titles) and
 * tolerant of fields it does not know. Building is byte-exact: the manifest digest is the
 * sha256 of the bytes we send, so the layout (field order, 2-space indent, sorted
 * annotations) is fixed here and pinned by golden tests. Fetched manifests are never
 * re-serialised. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "epoch-internal.h"

#define LAYERS_MAX      10000
#define ANNOTATIONS_MAX 1000
/* JSON numbers above 2^53 do not survive a round trip through other parsers. */
#define SIZE_MAX_JSON (1ULL << 53)

int fail_msg(char **ret_error, const char *fmt, ...)
{
	va_list ap;

	if (ret_error) {
		va_start(ap, fmt);
		if (vasprintf(ret_error, fmt, ap) < 0)
			*ret_error = NULL;
		va_end(ap);
	}
	return -EBADMSG;
}

void digest_format(const unsigned char md[32], char out[static DIGEST_STR_SIZE])
{
	static const char hex[] = "0123456789abcdef";

	memcpy(out, "sha256:", 7);
	for (size_t i = 0; i < 32; i++) {
		out[7 + 2 * i] = hex[md[i] >> 4];
		out[8 + 2 * i] = hex[md[i] & 15];
	}
	out[7 + 64] = '\0';
}

int digest_of(const void *p, size_t n, char out[static DIGEST_STR_SIZE])
{
	unsigned char md[32];
	unsigned int len = 0;

	if (!EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) || len != 32)
		return -EIO;
	digest_format(md, out);
	return 0;
}

void time_now_rfc3339(char out[static 32])
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

const char *epoch_kind_to_string(enum epoch_kind k)
{
	switch (k) {
	case EPOCH_KIND_SNAPSHOT:
		return "snapshot";
	case EPOCH_KIND_CLOUD_IMAGE:
		return "cloud-image";
	case EPOCH_KIND_CONTAINER_IMAGE:
		return "container-image";
	case EPOCH_KIND_INDEX:
		return "image-index";
	default:
		return "unknown";
	}
}

static void descriptor_done(struct epoch_descriptor *d)
{
	free(d->media_type);
	free(d->digest);
	free(d->title);
	free(d->os);
	free(d->arch);
	free(d->variant);
	free(d->artifact_type);
}

struct epoch_manifest *epoch_manifest_free(struct epoch_manifest *m)
{
	if (!m)
		return NULL;
	free(m->media_type);
	free(m->artifact_type);
	descriptor_done(&m->config);
	for (size_t i = 0; i < m->n_layers; i++)
		descriptor_done(&m->layers[i]);
	free(m->layers);
	for (size_t i = 0; i < m->n_annotations; i++) {
		free(m->annotations[i].key);
		free(m->annotations[i].value);
	}
	free(m->annotations);
	free(m);
	return NULL;
}

const char *epoch_manifest_annotation(const struct epoch_manifest *m, const char *key)
{
	for (size_t i = 0; m && i < m->n_annotations; i++)
		if (streq(m->annotations[i].key, key))
			return m->annotations[i].value;
	return NULL;
}

/* An optional string member; -EBADMSG when present with another type. */
static int get_string(const json_t *o, const char *key, const char *where, bool required,
		      char **ret, char **ret_error)
{
	const json_t *v = json_object_get(o, key);

	if (!v || json_is_null(v)) {
		if (required)
			return fail_msg(ret_error, "%s%s: missing", where, key);
		return 0;
	}
	if (!json_is_string(v))
		return fail_msg(ret_error, "%s%s: expected a string", where, key);
	*ret = strdup(json_string_value(v));
	return *ret ? 0 : -ENOMEM;
}

static int parse_descriptor(const json_t *o, const char *where, bool index_entry,
			    struct epoch_descriptor *d, char **ret_error)
{
	const json_t *size = json_object_get(o, "size"), *ann, *platform;
	int r;

	if (!json_is_object(o))
		return fail_msg(ret_error, "%s: expected an object", where);
	r = get_string(o, "mediaType", where, true, &d->media_type, ret_error);
	if (r < 0)
		return r;
	r = get_string(o, "digest", where, true, &d->digest, ret_error);
	if (r < 0)
		return r;
	if (!epoch_digest_valid(d->digest))
		return fail_msg(ret_error,
				"%sdigest: expected sha256: and 64 hex digits, got \"%.80s\"",
				where, d->digest);
	if (!json_is_integer(size) || json_integer_value(size) < 0 ||
	    (uint64_t)json_integer_value(size) >= SIZE_MAX_JSON)
		return fail_msg(ret_error, "%ssize: expected an integer from 0 to 2^53", where);
	d->size = (uint64_t)json_integer_value(size);
	ann = json_object_get(o, "annotations");
	if (ann && !json_is_null(ann)) {
		if (!json_is_object(ann))
			return fail_msg(ret_error, "%sannotations: expected an object", where);
		r = get_string(ann, EPOCH_ANNOTATION_TITLE, where, false, &d->title, ret_error);
		if (r < 0)
			return r;
	}
	if (!index_entry)
		return 0;
	r = get_string(o, "artifactType", where, false, &d->artifact_type, ret_error);
	if (r < 0)
		return r;
	platform = json_object_get(o, "platform");
	if (!platform || json_is_null(platform))
		return 0;
	if (!json_is_object(platform))
		return fail_msg(ret_error, "%splatform: expected an object", where);
	r = get_string(platform, "os", where, false, &d->os, ret_error);
	if (r >= 0)
		r = get_string(platform, "architecture", where, false, &d->arch, ret_error);
	if (r >= 0)
		r = get_string(platform, "variant", where, false, &d->variant, ret_error);
	return r;
}

static int parse_descriptors(const json_t *a, const char *field, bool index_entries,
			     struct epoch_manifest *m, char **ret_error)
{
	size_t n;

	if (!a || json_is_null(a))
		return 0;
	if (!json_is_array(a))
		return fail_msg(ret_error, "%s: expected an array", field);
	n = json_array_size(a);
	if (n > LAYERS_MAX)
		return fail_msg(ret_error, "%s: %zu entries, at most %d allowed", field, n,
				LAYERS_MAX);
	m->layers = calloc(n ?: 1, sizeof *m->layers);
	if (!m->layers)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		char where[64];
		int r;

		snprintf(where, sizeof where, "%s[%zu].", field, i);
		m->n_layers = i + 1;
		r = parse_descriptor(json_array_get(a, i), where, index_entries, &m->layers[i],
				     ret_error);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_annotations(const json_t *o, struct epoch_manifest *m, char **ret_error)
{
	const char *key;
	json_t *v;

	if (!o || json_is_null(o))
		return 0;
	if (!json_is_object(o))
		return fail_msg(ret_error, "annotations: expected an object");
	if (json_object_size(o) > ANNOTATIONS_MAX)
		return fail_msg(ret_error, "annotations: more than %d", ANNOTATIONS_MAX);
	m->annotations = calloc(json_object_size(o) ?: 1, sizeof *m->annotations);
	if (!m->annotations)
		return -ENOMEM;
	json_object_foreach ((json_t *)o, key, v) {
		struct epoch_annotation *a = &m->annotations[m->n_annotations];

		if (!json_is_string(v))
			return fail_msg(ret_error, "annotations.%.80s: expected a string", key);
		a->key = strdup(key);
		a->value = strdup(json_string_value(v));
		m->n_annotations++;
		if (!a->key || !a->value)
			return -ENOMEM;
	}
	return 0;
}

static bool is_index_type(const char *mt)
{
	return mt && (streq(mt, EPOCH_MT_OCI_INDEX) || streq(mt, EPOCH_MT_DOCKER_LIST));
}

/* §2.5, with the structure checked first: a body listing "manifests" is an index whatever
 * its artifactType says. */
static enum epoch_kind classify(const struct epoch_manifest *m, bool has_manifests)
{
	const char *at = m->artifact_type, *cfg = m->config.media_type;

	if (has_manifests || is_index_type(m->media_type))
		return EPOCH_KIND_INDEX;
	if (at && (streq(at, EPOCH_AT_OS_IMAGE) || streq(at, EPOCH_AT_WINDOWS_IMAGE)))
		return EPOCH_KIND_CLOUD_IMAGE;
	if (at && streq(at, EPOCH_AT_SNAPSHOT))
		return EPOCH_KIND_SNAPSHOT;
	if (cfg && (streq(cfg, EPOCH_MT_OCI_CONFIG) || streq(cfg, EPOCH_MT_DOCKER_CONFIG)))
		return EPOCH_KIND_CONTAINER_IMAGE;
	return EPOCH_KIND_UNKNOWN;
}

static int manifest_from_json(const json_t *root, struct epoch_manifest *m, char **ret_error)
{
	const json_t *sv = json_object_get(root, "schemaVersion");
	const json_t *manifests = json_object_get(root, "manifests");
	bool index;
	int r;

	if (!json_is_object(root))
		return fail_msg(ret_error, "manifest: expected a JSON object");
	if (!json_is_integer(sv) || json_integer_value(sv) != 2)
		return fail_msg(ret_error, "schemaVersion: expected 2");
	r = get_string(root, "mediaType", "", false, &m->media_type, ret_error);
	if (r >= 0)
		r = get_string(root, "artifactType", "", false, &m->artifact_type, ret_error);
	if (r < 0)
		return r;
	index = (manifests && !json_is_null(manifests)) || is_index_type(m->media_type);
	if (index) {
		r = parse_descriptors(manifests, "manifests", true, m, ret_error);
	} else {
		const json_t *cfg = json_object_get(root, "config");

		if (!cfg)
			return fail_msg(ret_error, "config: missing");
		r = parse_descriptor(cfg, "config.", false, &m->config, ret_error);
		if (r >= 0)
			r = parse_descriptors(json_object_get(root, "layers"), "layers", false, m,
					      ret_error);
	}
	if (r >= 0)
		r = parse_annotations(json_object_get(root, "annotations"), m, ret_error);
	if (r < 0)
		return r;
	m->kind = classify(m, index);
	return 0;
}

int epoch_manifest_parse(const void *data, size_t len, struct epoch_manifest **ret,
			 char **ret_error)
{
	_cleanup_(epoch_manifest_freep) struct epoch_manifest *m = NULL;
	json_error_t jerr;
	json_t *root;
	int r;

	if (ret_error)
		*ret_error = NULL;
	if (len > EPOCH_MANIFEST_MAX)
		return fail_msg(ret_error, "manifest of %zu bytes exceeds the %u-byte cap", len,
				EPOCH_MANIFEST_MAX);
	/* Duplicate keys could make two parsers see two different manifests. */
	root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return fail_msg(ret_error, "manifest is not JSON: %s at line %d column %d",
				jerr.text, jerr.line, jerr.column);
	m = calloc(1, sizeof *m);
	if (!m) {
		json_decref(root);
		return -ENOMEM;
	}
	r = manifest_from_json(root, m, ret_error);
	json_decref(root);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(m);
	return 0;
}

const struct epoch_descriptor *epoch_index_select(const struct epoch_manifest *index,
						  const char *os, const char *arch)
{
	for (size_t i = 0; i < index->n_layers; i++)
		if (streq_ptr(index->layers[i].os, os) && streq_ptr(index->layers[i].arch, arch))
			return &index->layers[i];
	for (size_t i = 0; i < index->n_layers; i++)
		if (!streq_ptr(index->layers[i].arch, "unknown"))
			return &index->layers[i];
	return NULL;
}

/* ---- building ---- */

static json_t *descriptor_json(const struct epoch_descriptor *d)
{
	json_t *o = json_object();

	if (!o || json_object_set_new(o, "mediaType", json_string(d->media_type)) < 0 ||
	    json_object_set_new(o, "digest", json_string(d->digest)) < 0 ||
	    json_object_set_new(o, "size", json_integer((json_int_t)d->size)) < 0)
		goto fail;
	if (d->title) {
		json_t *ann = json_object();

		if (json_object_set_new(o, "annotations", ann) < 0 ||
		    json_object_set_new(ann, EPOCH_ANNOTATION_TITLE, json_string(d->title)) < 0)
			goto fail;
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

static int dump(json_t *root, size_t flags, bool newline, char **ret, size_t *ret_len)
{
	char *s = json_dumps(root, flags | JSON_PRESERVE_ORDER);
	size_t n;

	json_decref(root);
	if (!s)
		return -ENOMEM;
	n = strlen(s);
	if (newline) {
		char *t = realloc(s, n + 2);

		if (!t) {
			free(s);
			return -ENOMEM;
		}
		s = t;
		s[n++] = '\n';
		s[n] = '\0';
	}
	*ret = s;
	if (ret_len)
		*ret_len = n;
	return 0;
}

int epoch_manifest_build(const struct epoch_manifest_spec *s, char **ret, size_t *ret_len)
{
	const char *ann_keys[] = {
		/* sorted, as Go writes a map */
		EPOCH_ANNOTATION_BASE_IMAGE,
		EPOCH_ANNOTATION_CREATED,
		EPOCH_ANNOTATION_REVISION,
		EPOCH_ANNOTATION_SOURCE,
	};
	const char *ann_values[] = { s->base_image, s->created, s->revision, s->source };
	json_t *root = json_object(), *layers = json_array(), *ann = json_object();
	bool ok = root && layers && ann;

	ok = ok && json_object_set_new(root, "schemaVersion", json_integer(2)) == 0;
	ok = ok && json_object_set_new(root, "mediaType", json_string(EPOCH_MT_OCI_MANIFEST)) == 0;
	ok = ok && json_object_set_new(root, "artifactType", json_string(EPOCH_AT_SNAPSHOT)) == 0;
	ok = ok && json_object_set_new(root, "config", descriptor_json(s->config)) == 0;
	for (size_t i = 0; ok && i < s->n_layers; i++)
		ok = json_array_append_new(layers, descriptor_json(&s->layers[i])) == 0;
	ok = ok && json_object_set(root, "layers", layers) == 0;
	for (size_t i = 0; ok && i < ELEMENTSOF(ann_keys); i++)
		if (!isempty(ann_values[i]))
			ok = json_object_set_new(ann, ann_keys[i], json_string(ann_values[i])) == 0;
	ok = ok && json_object_set(root, "annotations", ann) == 0;
	json_decref(layers);
	json_decref(ann);
	if (!ok) {
		json_decref(root);
		return -ENOMEM;
	}
	return dump(root, JSON_INDENT(2), false, ret, ret_len);
}

/* ---- the config blob and snapshot.json ---- */

enum field_type { FIELD_STRING, FIELD_INT, FIELD_BOOL, FIELD_BLOB_IDS };

/* snapshot.json (cocoon, snake_case) ↔ config blob (epoch, camelCase), in epoch's order.
 * The last three are cocoon fields epoch drops; we carry them so a round trip keeps them. */
static const struct config_field {
	const char *snake, *camel;
	enum field_type type;
} config_fields[] = {
	{ "description", "description", FIELD_STRING },
	{ "image", "image", FIELD_STRING },
	{ "image_digest", "imageDigest", FIELD_STRING },
	{ "image_type", "imageType", FIELD_STRING },
	{ "image_blob_ids", "imageBlobIds", FIELD_BLOB_IDS },
	{ "hypervisor", "hypervisor", FIELD_STRING },
	{ "cpu", "cpu", FIELD_INT },
	{ "memory", "memory", FIELD_INT },
	{ "storage", "storage", FIELD_INT },
	{ "nics", "nics", FIELD_INT },
	{ "network", "network", FIELD_STRING },
	{ "windows", "windows", FIELD_BOOL },
	{ "queue_size", "queueSize", FIELD_INT },
	{ "disk_queue_size", "diskQueueSize", FIELD_INT },
	{ "no_direct_io", "noDirectIo", FIELD_BOOL },
};

/* Go's omitempty: absent, null, "", 0, false, {} and [] are all left out. */
static bool value_empty(const json_t *v)
{
	return !v || json_is_null(v) || (json_is_string(v) && !*json_string_value(v)) ||
	       (json_is_integer(v) && json_integer_value(v) == 0) || json_is_false(v) ||
	       (json_is_object(v) && json_object_size(v) == 0) ||
	       (json_is_array(v) && json_array_size(v) == 0);
}

static bool value_has_type(const json_t *v, enum field_type t)
{
	switch (t) {
	case FIELD_STRING:
		return json_is_string(v);
	case FIELD_INT:
		return json_is_integer(v);
	case FIELD_BOOL:
		return json_is_boolean(v);
	default:
		return json_is_object(v) || json_is_array(v);
	}
}

/* Copy the fields of the table from src (keys from_snake ? snake : camel) to dst (the
 * other naming). Returns -EBADMSG naming a field of the wrong type. */
static int copy_fields(const json_t *src, json_t *dst, bool from_snake, const char *where,
		       char **ret_error)
{
	for (size_t i = 0; i < ELEMENTSOF(config_fields); i++) {
		const struct config_field *f = &config_fields[i];
		const json_t *v = json_object_get(src, from_snake ? f->snake : f->camel);

		if (value_empty(v))
			continue;
		if (!value_has_type(v, f->type))
			return fail_msg(ret_error, "%s%s: expected %s", where,
					from_snake ? f->snake : f->camel,
					f->type == FIELD_STRING ? "a string"
					: f->type == FIELD_INT  ? "an integer"
					: f->type == FIELD_BOOL ? "true or false"
								: "an object or array");
		if (json_object_set_new(dst, from_snake ? f->camel : f->snake, json_deep_copy(v)) <
		    0)
			return -ENOMEM;
	}
	return 0;
}

static int file_cmp(const void *a, const void *b)
{
	const struct epoch_file_meta *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

static json_t *files_json(const struct epoch_file_meta *files, size_t n)
{
	_cleanup_(freep) const struct epoch_file_meta **sorted = calloc(n ?: 1, sizeof *sorted);
	json_t *o = json_object();

	if (!o || !sorted) {
		json_decref(o);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		sorted[i] = &files[i];
	qsort(sorted, n, sizeof *sorted, file_cmp);
	for (size_t i = 0; i < n; i++) {
		const struct epoch_file_meta *f = sorted[i];
		json_t *e = json_object();
		bool ok = e && json_object_set_new(e, "mode", json_integer(f->mode)) == 0;

		if (ok && f->sparse_map)
			ok = json_object_set_new(e, "sparseMap", json_string(f->sparse_map)) == 0 &&
			     json_object_set_new(e, "sparseSize",
						 json_integer((json_int_t)f->sparse_size)) == 0;
		if (!ok || json_object_set_new(o, f->name, e) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

int epoch_snapshot_config_build(const void *snapshot_json, size_t len,
				const struct epoch_file_meta *files, size_t n_files,
				const char *created, char **ret, size_t *ret_len, char **ret_error)
{
	json_t *env, *cfg, *id, *out;
	const char *snap_created;
	json_error_t jerr;
	int r;

	if (ret_error)
		*ret_error = NULL;
	env = json_loadb(snapshot_json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!env)
		return fail_msg(ret_error, "snapshot.json is not JSON: %s at line %d column %d",
				jerr.text, jerr.line, jerr.column);
	cfg = json_object_get(env, "config");
	if (!json_is_object(cfg)) {
		json_decref(env);
		return fail_msg(ret_error, "snapshot.json: config: expected an object");
	}
	id = json_object_get(cfg, "id");
	if (id && !json_is_null(id) && !json_is_string(id)) {
		json_decref(env);
		return fail_msg(ret_error, "snapshot.json: config.id: expected a string");
	}
	out = json_object();
	r = out ? 0 : -ENOMEM;
	if (r >= 0 &&
	    (json_object_set_new(out, "schemaVersion", json_string("v1")) < 0 ||
	     json_object_set_new(out, "snapshotId", json_string(json_string_value(id) ?: "")) < 0))
		r = -ENOMEM;
	if (r >= 0)
		r = copy_fields(cfg, out, true, "snapshot.json: config.", ret_error);
	/* The snapshot's own creation time, not the push time: the same snapshot then always
	 * yields the same config blob, and a second push uploads nothing at all. */
	snap_created = json_string_value(json_object_get(cfg, "created_at"));
	if (r >= 0 &&
	    (json_object_set_new(out, "files", files_json(files, n_files)) < 0 ||
	     json_object_set_new(out, "createdAt",
				 json_string(isempty(snap_created) ? created : snap_created)) < 0))
		r = -ENOMEM;
	json_decref(env);
	if (r < 0) {
		json_decref(out);
		return r;
	}
	return dump(out, JSON_COMPACT, false, ret, ret_len);
}

struct epoch_snapshot_config *epoch_snapshot_config_free(struct epoch_snapshot_config *c)
{
	if (!c)
		return NULL;
	for (size_t i = 0; i < c->n_files; i++) {
		free(c->files[i].name);
		free(c->files[i].sparse_map);
	}
	free(c->files);
	json_decref(c->json);
	free(c);
	return NULL;
}

const struct epoch_file_meta *epoch_snapshot_config_file(const struct epoch_snapshot_config *c,
							 const char *name)
{
	for (size_t i = 0; i < c->n_files; i++)
		if (streq(c->files[i].name, name))
			return &c->files[i];
	return NULL;
}

static int parse_file(const char *name, const json_t *v, struct epoch_file_meta *f,
		      char **ret_error)
{
	const json_t *mode = json_object_get(v, "mode"), *map = json_object_get(v, "sparseMap");
	const json_t *size = json_object_get(v, "sparseSize");

	if (!json_is_object(v))
		return fail_msg(ret_error, "config files.%.80s: expected an object", name);
	if (mode && (!json_is_integer(mode) || json_integer_value(mode) < 0 ||
		     json_integer_value(mode) > 07777))
		return fail_msg(ret_error, "config files.%.80s.mode: expected 0 to 07777", name);
	if (map && !json_is_null(map) && !json_is_string(map))
		return fail_msg(ret_error, "config files.%.80s.sparseMap: expected a string", name);
	if (size && !json_is_null(size) && (!json_is_integer(size) || json_integer_value(size) < 0))
		return fail_msg(ret_error, "config files.%.80s.sparseSize: expected a size", name);
	f->name = strdup(name);
	if (!f->name)
		return -ENOMEM;
	/* 0640 is what epoch's puller uses for a file whose mode the config does not give; its
	 * Go struct cannot tell a mode of 0 from none, so 0 means the default too. */
	f->mode = mode && json_integer_value(mode) != 0 ? (uint32_t)json_integer_value(mode) : 0640;
	if (json_is_string(map) && *json_string_value(map)) {
		f->sparse_map = strdup(json_string_value(map));
		if (!f->sparse_map)
			return -ENOMEM;
		f->sparse_size = json_is_integer(size) ? (uint64_t)json_integer_value(size) : 0;
	}
	return 0;
}

int epoch_snapshot_config_parse(const void *data, size_t len, struct epoch_snapshot_config **ret,
				char **ret_error)
{
	_cleanup_(epoch_snapshot_config_freep) struct epoch_snapshot_config *c = NULL;
	const json_t *files, *v;
	json_error_t jerr;
	const char *key;
	int r;

	if (ret_error)
		*ret_error = NULL;
	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->json = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!c->json)
		return fail_msg(ret_error, "config blob is not JSON: %s at line %d column %d",
				jerr.text, jerr.line, jerr.column);
	if (!json_is_object((json_t *)c->json))
		return fail_msg(ret_error, "config blob: expected a JSON object");
	/* Checks the types of every known field on the way. */
	{
		json_t *scratch = json_object();

		r = scratch ? copy_fields(c->json, scratch, false, "config ", ret_error) : -ENOMEM;
		json_decref(scratch);
		if (r < 0)
			return r;
	}
	c->snapshot_id = json_string_value(json_object_get(c->json, "snapshotId"));
	c->description = json_string_value(json_object_get(c->json, "description"));
	files = json_object_get(c->json, "files");
	if (files && !json_is_null(files) && !json_is_object(files))
		return fail_msg(ret_error, "config files: expected an object");
	c->files = calloc(json_object_size(files) ?: 1, sizeof *c->files);
	if (!c->files)
		return -ENOMEM;
	json_object_foreach ((json_t *)files, key, v) {
		r = parse_file(key, v, &c->files[c->n_files], ret_error);
		c->n_files++;
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(c);
	return 0;
}

/* imageBlobIds: epoch writes {"<hex>":{}}, a later version an array; cocoon reads the
 * object form. */
static json_t *blob_ids_object(const json_t *v)
{
	json_t *o;
	size_t i;
	json_t *e;

	if (!json_is_array(v))
		return json_deep_copy(v);
	o = json_object();
	json_array_foreach (v, i, e)
		if (o && json_is_string(e) &&
		    json_object_set_new(o, json_string_value(e), json_object()) < 0) {
			json_decref(o);
			return NULL;
		}
	return o;
}

int epoch_snapshot_json_build(const struct epoch_snapshot_config *c, const char *local_name,
			      const char *description, char **ret, size_t *ret_len)
{
	json_t *root = json_object(), *cfg = json_object();
	int r = root && cfg ? 0 : -ENOMEM;

	if (r >= 0 && (json_object_set_new(cfg, "id", json_string(c->snapshot_id ?: "")) < 0 ||
		       json_object_set_new(cfg, "name", json_string(local_name)) < 0))
		r = -ENOMEM;
	if (r >= 0)
		r = copy_fields(c->json, cfg, false, "config ", NULL);
	if (r >= 0 && json_object_get(cfg, "image_blob_ids") &&
	    json_object_set_new(cfg, "image_blob_ids",
				blob_ids_object(json_object_get(cfg, "image_blob_ids"))) < 0)
		r = -ENOMEM;
	if (r >= 0 && description &&
	    json_object_set_new(cfg, "description", json_string(description)) < 0)
		r = -ENOMEM;
	if (r >= 0 && (json_object_set(root, "config", cfg) < 0 ||
		       json_object_set_new(root, "version", json_integer(1)) < 0))
		r = -ENOMEM;
	json_decref(cfg);
	if (r < 0) {
		json_decref(root);
		return r;
	}
	return dump(root, JSON_INDENT(2), true, ret, ret_len);
}
