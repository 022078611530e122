/* libepoch — the Epoch / OCI registry client (net-epoch-runtime.md §2, CONTRACT.md §6).
 *
 * Table of contents:
 *   ref.c       references (name[:tag], name@digest, Epoch /dl/ and /v2/ URLs), name/tag/
 *               digest rules, WWW-Authenticate challenges, layer media types by file name
 *   manifest.c  OCI manifests and indexes: strict parsing, classification, platform choice;
 *               the snapshot manifest, config blob and snapshot.json, byte for byte
 *   registry.c  the registry handle and its HTTP engine: base URL, static bearer token,
 *               extra CA, the Docker/OCI token flow on a 401 challenge, readable errors;
 *               manifests GET/HEAD/PUT/DELETE, tags, catalog; results and the sync runner
 *   blob.c      blobs: HEAD, streamed GET with size and digest verification, upload by
 *               epoch's monolithic PUT or the OCI upload session (chunked PATCH), learning
 *               per registry which one works
 *   stream.c    pulls: the importer child (`cocoon … import` fed through a FIFO), output
 *               with back-pressure, the hold-back gate that keeps unverified bytes from the
 *               importer, and the plan runner shared by snapshots and cloud images
 *   snapshot.c  snapshot push (`cocoon snapshot export -o -` read twice at most: hashed, then
 *               missing layers streamed into their uploads; config blob, manifest) and the
 *               snapshot pull plan (→ `cocoon snapshot import`)
 *   cloudimg.c  cloud images: disk layers in title order → `cocoon image import` or an fd
 *   tar.c, tar_sparse.c   tar/PAX reader and writer (tar.h)
 *   epoch.c     the `epoch` CLI (not in the library)
 *
 * Everything runs on sd-event: one struct epoch_registry per registry and loop; each
 * operation is started with a completion callback and can be cancelled (no callback then).
 * CLIs use the same operations and run the loop until the result is in (epoch_result_*).
 * Errors are -errno plus a sentence naming the request and what the registry said. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "cocoon/macro.h"

#define EPOCH_DEFAULT_URL "http://127.0.0.1:8080"
#define EPOCH_DEFAULT_TAG "latest"

/* Manifests above this are refused (the OCI distribution spec's 4 MiB guidance). */
#define EPOCH_MANIFEST_MAX (4U * 1024 * 1024)
/* snapshot.json, tag lists and catalogs above this are refused. */
#define EPOCH_CONFIG_MAX (1024U * 1024)
/* Snapshot config blobs above this are refused. They carry every file's sparse map, and a
 * fragmented disk plus memory file take them past the 1 MiB epoch's Go puller reads (§2.6):
 * refusing those would make such snapshots unpullable here too, so pull reads up to this
 * bound and push refuses to write a config above it. */
#define EPOCH_SNAPSHOT_CONFIG_MAX (64U * 1024 * 1024)
#define EPOCH_LIST_MAX            100000
/* The upload-session chunk once a registry (or a proxy before it) refused a whole blob with
 * 413: below the 100 MB request limit of common proxies. */
#define EPOCH_CHUNK_SIZE_DEFAULT (64ULL * 1024 * 1024)

/* Manifest media types accepted (and sent as Accept), config and artifact types. */
#define EPOCH_MT_OCI_MANIFEST    "application/vnd.oci.image.manifest.v1+json"
#define EPOCH_MT_OCI_INDEX       "application/vnd.oci.image.index.v1+json"
#define EPOCH_MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define EPOCH_MT_DOCKER_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"
#define EPOCH_MT_OCI_CONFIG      "application/vnd.oci.image.config.v1+json"
#define EPOCH_MT_DOCKER_CONFIG   "application/vnd.docker.container.image.v1+json"
#define EPOCH_MT_OCTET_STREAM    "application/octet-stream"
#define EPOCH_AT_SNAPSHOT        "application/vnd.cocoonstack.snapshot.v1+json"
#define EPOCH_AT_OS_IMAGE        "application/vnd.cocoonstack.os-image.v1+json"
#define EPOCH_AT_WINDOWS_IMAGE   "application/vnd.cocoonstack.windows-image.v1+json"
#define EPOCH_MT_SNAPSHOT_CONFIG "application/vnd.cocoonstack.snapshot.config.v1+json"

#define EPOCH_ANNOTATION_TITLE      "org.opencontainers.image.title"
#define EPOCH_ANNOTATION_CREATED    "org.opencontainers.image.created"
#define EPOCH_ANNOTATION_SOURCE     "org.opencontainers.image.source"
#define EPOCH_ANNOTATION_REVISION   "org.opencontainers.image.revision"
#define EPOCH_ANNOTATION_BASE_IMAGE "cocoonstack.snapshot.baseimage"

/* ---- ref.c ---- */

/* A parsed reference. Exactly one of tag and digest is set. */
struct epoch_ref {
	char *url; /* registry base URL taken from a URL reference, else NULL */
	char *name;
	char *tag;
	char *digest; /* "sha256:<64 lowercase hex>" */
	/* "…/dl/a/b": name a, tag b as newer epoch reads it first; and "a/b" here, the
	 * repository of the legacy reading a/b:latest that epoch falls back to (§2.10). NULL
	 * for every other reference. */
	char *legacy_name;
};

/* Accepts "name", "name:tag" (split on the first ':'), "name@sha256:…" (also docker's
 * "name:tag@sha256:…", where the digest wins), and Epoch URLs
 * "http(s)://host[:port][/prefix]/dl/name" (tag latest), "…/dl/name/<tag|digest>" (the
 * last segment is the reference when there are several; see legacy_name) and
 * "…/v2/name/manifests/<ref>".
 * A /dl/ URL is read through the same server's /v2/ API, which carries digests. -EINVAL
 * with *ret_error (may be NULL) naming the part that is wrong. */
int epoch_ref_parse(const char *s, struct epoch_ref *ret, char **ret_error);
void epoch_ref_done(struct epoch_ref *r);
/* The tag or the digest: what goes after /manifests/. */
const char *epoch_ref_target(const struct epoch_ref *r);

/* Repository names: '/'-separated components of [A-Za-z0-9._-] that start and end with a
 * letter or digit, at most 255 bytes (Epoch repositories are VM names, so upper case is
 * allowed; registries that disagree say so). Tags: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}.
 * Digests: sha256 only, the only algorithm Epoch uses. */
bool epoch_name_valid(const char *name);
bool epoch_tag_valid(const char *tag);
bool epoch_digest_valid(const char *digest);

/* One challenge of a WWW-Authenticate header (RFC 9110 §11.6.1). */
struct epoch_challenge {
	char *scheme; /* as sent ("Bearer", "Basic") */
	char *realm, *service, *scope, *error;
};
/* The Bearer challenge of a header that may hold several challenges: -ENOENT when there is
 * none (e.g. only Basic), -EBADMSG when the header is malformed or the Bearer challenge has
 * no realm; *ret_error (may be NULL) says which. */
int epoch_challenge_parse(const char *header, struct epoch_challenge *ret, char **ret_error);
void epoch_challenge_done(struct epoch_challenge *c);

/* The layer media type of a snapshot file (§2.5): config.json, state.json, memory-ranges,
 * cidata.img, *.qcow2, *.raw, else application/octet-stream. Never NULL. */
const char *epoch_layer_media_type(const char *file_name);
/* A cloud-image disk layer type (…disk.qcow2/raw[.part], legacy …windows.disk.*). */
bool epoch_media_type_is_disk(const char *media_type);

/* ---- manifest.c ---- */

enum epoch_kind {
	EPOCH_KIND_UNKNOWN,
	EPOCH_KIND_SNAPSHOT,
	EPOCH_KIND_CLOUD_IMAGE,
	EPOCH_KIND_CONTAINER_IMAGE,
	EPOCH_KIND_INDEX,
};

struct epoch_descriptor {
	char *media_type;
	char *digest;
	uint64_t size;
	char *title;               /* org.opencontainers.image.title, or NULL */
	char *os, *arch, *variant; /* index entries: platform, or NULL */
	char *artifact_type;       /* index entries, or NULL */
};

struct epoch_annotation {
	char *key, *value;
};

struct epoch_manifest {
	enum epoch_kind kind;
	char *media_type;                /* the body's mediaType, or NULL */
	char *artifact_type;             /* or NULL */
	struct epoch_descriptor config;  /* manifests only (media_type NULL for an index) */
	struct epoch_descriptor *layers; /* manifests: layers; indexes: the child manifests */
	size_t n_layers;
	struct epoch_annotation *annotations;
	size_t n_annotations;
};

/* Strict parse: schemaVersion 2, well-formed descriptors (sha256 digests, sizes below
 * 2^53), caps on counts. -EBADMSG with *ret_error naming the field ("layers[2].digest:
 * …"). Unknown fields are ignored. */
int epoch_manifest_parse(const void *data, size_t len, struct epoch_manifest **ret,
			 char **ret_error);
struct epoch_manifest *epoch_manifest_free(struct epoch_manifest *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct epoch_manifest *, epoch_manifest_free);
const char *epoch_manifest_annotation(const struct epoch_manifest *m, const char *key);
const char *epoch_kind_to_string(enum epoch_kind k);

/* The child of an index for os/arch; failing that, the first child whose architecture is
 * not "unknown" (what epoch's puller does). NULL when the index has no usable child. */
const struct epoch_descriptor *epoch_index_select(const struct epoch_manifest *index,
						  const char *os, const char *arch);

/* The snapshot manifest (§2.5): 2-space indented JSON, no trailing newline, fields in the
 * order epoch writes them, annotations sorted by key. Layers need media_type, digest, size
 * and title. created is RFC 3339 UTC; base_image, source and revision may be NULL. */
struct epoch_manifest_spec {
	const struct epoch_descriptor *config;
	const struct epoch_descriptor *layers;
	size_t n_layers;
	const char *created;
	const char *base_image, *source, *revision;
};
int epoch_manifest_build(const struct epoch_manifest_spec *s, char **ret, size_t *ret_len);

/* Per-file metadata carried in the config blob's "files". sparse_map is the raw JSON of the
 * COCOON.sparse.map record, NULL for a dense file. */
struct epoch_file_meta {
	char *name;
	uint32_t mode;
	char *sparse_map;
	uint64_t sparse_size;
};

/* The config blob (compact JSON, camelCase) from cocoon's snapshot.json envelope
 * {"config":{…},"version":1} and the files pushed. Besides epoch's fields it keeps
 * queueSize, diskQueueSize and noDirectIo, which epoch drops. createdAt is the snapshot's
 * own created_at when snapshot.json has one (so pushing the same snapshot again uploads
 * nothing), else `created`. -EBADMSG with *ret_error for a snapshot.json that is not such
 * an envelope. */
int epoch_snapshot_config_build(const void *snapshot_json, size_t len,
				const struct epoch_file_meta *files, size_t n_files,
				const char *created, char **ret, size_t *ret_len, char **ret_error);

struct epoch_snapshot_config {
	void *json; /* the parsed blob (json_t *), for snapshot.json */
	const char *snapshot_id, *description;
	struct epoch_file_meta *files;
	size_t n_files;
};
/* Parse a config blob; imageBlobIds may be an object or an array (issue #46). */
int epoch_snapshot_config_parse(const void *data, size_t len, struct epoch_snapshot_config **ret,
				char **ret_error);
struct epoch_snapshot_config *epoch_snapshot_config_free(struct epoch_snapshot_config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct epoch_snapshot_config *, epoch_snapshot_config_free);
const struct epoch_file_meta *epoch_snapshot_config_file(const struct epoch_snapshot_config *c,
							 const char *name);
/* snapshot.json for `cocoon snapshot import`: {"config":{…},"version":1}, 2-space indent
 * and a newline; name = local_name; description overrides the pushed one when not NULL. */
int epoch_snapshot_json_build(const struct epoch_snapshot_config *c, const char *local_name,
			      const char *description, char **ret, size_t *ret_len);

/* ---- registry.c ---- */

struct epoch_registry;
struct epoch_call;

struct epoch_registry_options {
	const char *url;   /* base URL; NULL or "": EPOCH_DEFAULT_URL; a trailing '/' is dropped */
	const char *token; /* bearer token, sent with every request to the registry's origin */
	/* token NULL: what a 401/403 answer adds, instead of "(set EPOCH_TOKEN to a registry
	 * token)" — e.g. why a token that is set was not sent */
	const char *no_token_hint;
	const char *ca_file; /* PEM CA trusted in addition to the system store */
	/* Upload sessions send blobs above this size as PATCH chunks of this size. 0: each
	 * blob in one request (as docker and containerd push layers: every chunk costs the
	 * registry a round of bookkeeping), until a 413 Payload Too Large, then chunks of
	 * EPOCH_CHUNK_SIZE_DEFAULT for the rest of the handle's life. */
	uint64_t chunk_size;
};

/* e NULL: a private loop, for blocking use (epoch_result_wait). -EINVAL with *ret_error for
 * an unusable URL or CA file. */
int epoch_registry_new(sd_event *e, const struct epoch_registry_options *o,
		       struct epoch_registry **ret, char **ret_error);
/* Cancels every operation still running (no callbacks). */
struct epoch_registry *epoch_registry_free(struct epoch_registry *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct epoch_registry *, epoch_registry_free);
sd_event *epoch_registry_event(struct epoch_registry *r);
const char *epoch_registry_url(const struct epoch_registry *r);

/* The outcome of an operation, valid during the callback only. */
struct epoch_reply {
	int error;              /* 0 or -errno */
	const char *message;    /* NULL on success; else what failed, with the request */
	long status;            /* last HTTP status, 0 if none */
	bool found;             /* HEAD, has, delete: false when the registry said 404 */
	const char *digest;     /* manifest GET/PUT, push: the manifest digest; blob HEAD */
	const char *media_type; /* manifest GET: the Content-Type */
	const char *body;       /* manifest GET, blob fetch: the exact bytes */
	size_t body_len;
	const struct epoch_manifest *manifest; /* epoch_fetch_manifest */
	uint64_t size;                         /* blob HEAD: size; push/pull: bytes of all blobs */
	uint64_t moved;     /* push/pull/upload: blob bytes actually sent or received */
	uint64_t n_layers;  /* push/pull */
	char *const *names; /* tags, catalog: NULL-terminated */
};
typedef void (*epoch_done_fn)(const struct epoch_reply *reply, void *userdata);

/* Progress of long transfers, for display. */
struct epoch_progress {
	const char *phase;  /* push: "reading" (hashing the export), then "uploading"; else NULL */
	const char *what;   /* the file or layer being moved */
	uint64_t done;      /* bytes of it so far */
	uint64_t total;     /* its size */
	uint64_t all_done;  /* bytes of every blob so far (in this phase) */
	uint64_t all_total; /* 0 while unknown (push's reading phase) */
};
typedef void (*epoch_progress_fn)(const struct epoch_progress *p, void *userdata);

/* Every operation returns 0 (done is called exactly once, later, unless cancelled) or
 * -errno (done is never called). ret may be NULL; the handle is valid until done returns. */
void epoch_call_cancel(struct epoch_call *c);

/* GET a manifest (Accept: the four manifest types): digest, media_type, body. */
int epoch_get_manifest(struct epoch_registry *r, const char *name, const char *ref,
		       epoch_done_fn done, void *userdata, struct epoch_call **ret);
/* GET a manifest and, for an index, its linux/amd64 child (epoch_index_select); checks
 * the digest of what was fetched by digest; parses it into reply->manifest. */
int epoch_fetch_manifest(struct epoch_registry *r, const char *name, const char *ref,
			 epoch_done_fn done, void *userdata, struct epoch_call **ret);
/* HEAD: found = 200, not found = 404, anything else is an error. */
int epoch_has_manifest(struct epoch_registry *r, const char *name, const char *ref,
		       epoch_done_fn done, void *userdata, struct epoch_call **ret);
/* PUT body as ref with media_type; digest = Docker-Content-Digest or sha256(body). */
int epoch_put_manifest(struct epoch_registry *r, const char *name, const char *ref,
		       const void *body, size_t len, const char *media_type, epoch_done_fn done,
		       void *userdata, struct epoch_call **ret);
/* DELETE: 2xx → found, 404 → success with found false. */
int epoch_delete_manifest(struct epoch_registry *r, const char *name, const char *ref,
			  epoch_done_fn done, void *userdata, struct epoch_call **ret);
/* Tags of a repository / the catalog, following Link: rel="next" pages. */
int epoch_list_tags(struct epoch_registry *r, const char *name, epoch_done_fn done, void *userdata,
		    struct epoch_call **ret);
int epoch_catalog(struct epoch_registry *r, epoch_done_fn done, void *userdata,
		  struct epoch_call **ret);

/* ---- blob.c ---- */

/* Streamed data of a verified download: return 0 when consumed, -EAGAIN to pause (the same
 * data comes again after epoch_call_resume()), another -errno to abort. */
typedef int (*epoch_data_fn)(const void *p, size_t n, void *userdata);

/* HEAD: found = 200 (after redirects, as for GET), not found = 404; reply->size from
 * Content-Length. */
int epoch_blob_head(struct epoch_registry *r, const char *name, const char *digest,
		    epoch_done_fn done, void *userdata, struct epoch_call **ret);
/* GET a blob of known size and digest, redirects followed (Authorization is never sent to
 * another host). Data goes to on_data; done reports success only when exactly size bytes
 * arrived and their sha256 is digest; -EBADMSG otherwise, without waiting for the end
 * when the body is too long. */
int epoch_blob_get(struct epoch_registry *r, const char *name, const char *digest, uint64_t size,
		   epoch_data_fn on_data, epoch_done_fn done, void *userdata,
		   struct epoch_call **ret);
/* The same into memory (size at most EPOCH_SNAPSHOT_CONFIG_MAX): reply->body. */
int epoch_blob_fetch(struct epoch_registry *r, const char *name, const char *digest, uint64_t size,
		     epoch_done_fn done, void *userdata, struct epoch_call **ret);
/* Continue a download or a streamed upload paused by its callback's -EAGAIN. */
int epoch_call_resume(struct epoch_call *c);

/* Upload size bytes, from fd at offset 0 (pread; fd borrowed) or from mem when fd < 0, as
 * digest. First epoch's monolithic PUT /v2/<name>/blobs/<digest>; when the registry
 * answers 404, 405 or 400 to it, the OCI upload session (POST, then one PUT ?digest= or
 * PATCH chunks of chunk_size and a closing PUT), and the registry is remembered as
 * session-only. A 413 to a request carrying the blob starts it again in chunks (see
 * chunk_size). */
int epoch_blob_put(struct epoch_registry *r, const char *name, const char *digest, int fd,
		   const void *mem, uint64_t size, epoch_progress_fn progress, void *progress_ud,
		   epoch_done_fn done, void *userdata, struct epoch_call **ret);

/* Streamed upload source: copy up to n bytes of the blob into p and return how many (never
 * 0 before the end), -EAGAIN to pause until epoch_call_resume(), another -errno to abort. */
typedef ssize_t (*epoch_read_fn)(void *p, size_t n, void *userdata);
/* The same as epoch_blob_put() with the bytes read once, in order, from read. When the
 * registry wants bytes it was already given (a 405 that switches to upload sessions, a 413
 * that switches to chunks, a token that expired) the handle adapts as usual but the upload
 * fails with -ESPIPE: start it again with a new stream. */
int epoch_blob_put_stream(struct epoch_registry *r, const char *name, const char *digest,
			  uint64_t size, epoch_read_fn read, void *read_userdata,
			  epoch_progress_fn progress, void *progress_ud, epoch_done_fn done,
			  void *userdata, struct epoch_call **ret);

/* ---- results for blocking use (CLIs) ---- */

/* An owned copy of a reply. */
struct epoch_result {
	bool done;
	int error;
	char *message;
	long status;
	bool found;
	char *digest, *media_type, *body;
	size_t body_len;
	struct epoch_manifest *manifest;
	uint64_t size, moved, n_layers;
	char **names;
};
/* An epoch_done_fn: userdata is a struct epoch_result *, filled with a copy of the reply. */
void epoch_result_fill(const struct epoch_reply *reply, void *userdata);
/* Runs the loop until res->done; returns res->error (or a loop failure). Never from a
 * callback or on a daemon's loop. */
int epoch_result_wait(sd_event *e, struct epoch_result *res);
void epoch_result_clear(struct epoch_result *res);

/* ---- snapshot.c, cloudimg.c, stream.c ---- */

struct epoch_push_options {
	const char *snapshot;                       /* local cocoon snapshot to export */
	const char *name;                           /* repository (NULL: snapshot) */
	const char *tag;                            /* NULL: latest */
	const char *base_image, *source, *revision; /* manifest annotations, may be NULL */
	const char *const *cocoon; /* argv prefix of the runtime CLI, e.g. {"cocoon", NULL} */
	const char *created;       /* RFC 3339 time for the manifest; NULL: now (tests pin it) */
	epoch_progress_fn progress;
	void *progress_userdata;
};
/* Snapshot push (§2.6) in two passes over `cocoon snapshot export`, nothing written to
 * disk: the first hashes every file and asks the registry for each digest, then the config
 * blob goes up; only when a file is missing does a second export run, its missing files
 * streamed straight into their uploads and hashed again (a file that changed between the
 * passes fails the push). Then the manifest. reply: digest (manifest), size (all blobs),
 * moved (bytes uploaded), n_layers. */
int epoch_snapshot_push(struct epoch_registry *r, const struct epoch_push_options *o,
			epoch_done_fn done, void *userdata, struct epoch_call **ret);

struct epoch_pull_options {
	const char *name, *ref; /* ref NULL: latest */
	const char *local_name; /* cocoon snapshot/image name; NULL: name, or name:tag */
	const char *description;
	const char *const *cocoon;
	/* >= 0: write the bytes here instead of starting an importer (a snapshot as the
	 * cocoon-import tar, a cloud image as its raw disk bytes); borrowed. */
	int out_fd;
	uint64_t importer_timeout_usec; /* 0: none */
	epoch_progress_fn progress;
	void *progress_userdata;
};
/* Pull a snapshot (→ cocoon snapshot import --name L [--description D]) or a cloud image
 * (→ cocoon image import L), by the manifest's kind. Every blob is checked for size and
 * digest; the last bytes of a blob reach the importer only after it verified, and on any
 * failure the importer is killed before its stdin closes, so it never completes an import
 * from bad data. */
int epoch_pull(struct epoch_registry *r, const struct epoch_pull_options *o, epoch_done_fn done,
	       void *userdata, struct epoch_call **ret);
