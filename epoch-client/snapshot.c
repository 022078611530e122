/* Snapshots through Epoch (net-epoch-runtime.md §2.6).
 *
 * Push: `cocoon snapshot export <snap> -o -` runs as a child (common/child, stdout streamed
 * with back-pressure) and its tar goes through the tar reader. snapshot.json is kept in
 * memory; every other file is spooled to an unlinked temp file (its size allocated at once)
 * while it is hashed, because the digest must be known before the upload (it names the blob,
 * and lets us skip blobs the registry already has). Spooling the next file overlaps with
 * uploading the previous one; the export is paused while a finished file waits for the
 * upload slot, so temp space is about the two largest files. Then the config blob and the
 * manifest (§2.5) are PUT.
 *
 * Pull plan: snapshot.json rebuilt from the config blob (name = the local name), then one
 * tar entry per layer in manifest order with the mode and COCOON.sparse.* records the
 * config recorded — for stream.c to fill with verified blob bytes. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cocoon/child.h"
#include "cocoon/log.h"
#include "epoch-internal.h"
#include "tar.h"

#define EXPORT_STDERR_CAP (64 * 1024)
#define STDERR_TAIL       600
/* The export's pipe: 1 MiB instead of 64 KiB means fewer wakeups of the exporter and of us
 * (a 2 GiB file spooled ~20% faster). */
#define EXPORT_PIPE_SIZE (1024 * 1024)

struct layer {
	char *title;
	char digest[DIGEST_STR_SIZE];
	uint64_t size;
	uint32_t mode;
	char *sparse_map;
	uint64_t sparse_size;
	int fd; /* the spool, closed once uploaded */
};

enum push_stage { STAGE_EXPORT, STAGE_CONFIG, STAGE_MANIFEST };

struct push {
	char *snapshot, *name, *tag, *base_image, *source, *revision, *tmp_dir, *created;
	char **argv;
	epoch_progress_fn progress;
	void *progress_userdata;
	enum push_stage stage;
	struct child *exporter;
	bool exported; /* the child exited 0 and the archive was complete */
	bool paused;
	struct tar_reader *tar;
	char *note;   /* why a step inside the exporter's callback failed, for the exit handler */
	char *digest; /* of the manifest, once PUT */
	struct buf snapshot_json;
	bool have_snapshot_json, in_snapshot_json;
	struct layer *layers;
	size_t n_layers;
	struct layer *spooling; /* the entry being read, not yet in layers */
	EVP_MD_CTX *md;
	size_t next_upload;
	bool uploading; /* a HEAD/PUT for layers[next_upload] is in flight */
	uint64_t moved, total;
	char *config;
	size_t config_len;
	char config_digest[DIGEST_STR_SIZE];
	char *manifest;
	size_t manifest_len;
};

static void layer_close(struct layer *l)
{
	closep(&l->fd);
	l->fd = -EBADF;
}

static void layer_done(struct layer *l)
{
	free(l->title);
	free(l->sparse_map);
	closep(&l->fd);
	l->fd = -EBADF;
}

static void push_release(struct epoch_call *c)
{
	struct push *p = c->state;

	if (!p)
		return;
	child_free(p->exporter);
	tar_reader_free(p->tar);
	for (size_t i = 0; i < p->n_layers; i++)
		layer_done(&p->layers[i]);
	free(p->layers);
	if (p->spooling)
		layer_done(p->spooling);
	free(p->spooling);
	EVP_MD_CTX_free(p->md);
	buf_free(&p->snapshot_json);
	free(p->note);
	free(p->digest);
	free(p->config);
	free(p->manifest);
	free(p->snapshot);
	free(p->name);
	free(p->tag);
	free(p->base_image);
	free(p->source);
	free(p->revision);
	free(p->tmp_dir);
	free(p->created);
	strv_free(p->argv);
	free(p);
}

static const struct call_ops push_ops = { "push", push_release };

_printf_(3, 4) static void push_fail(struct epoch_call *c, int error, const char *fmt, ...)
{
	va_list ap;

	c->reply.error = -ABS(error);
	free(c->message);
	va_start(ap, fmt);
	if (vasprintf(&c->message, fmt, ap) < 0)
		c->message = NULL;
	va_end(ap);
	call_finish(c);
}

/* Inside the exporter's stdout callback nothing may end the call: record why, return the
 * error, and the exit handler reports it once the child is gone. */
_printf_(3, 4) static int push_note(struct push *p, int error, const char *fmt, ...)
{
	va_list ap;

	if (!p->note) {
		va_start(ap, fmt);
		if (vasprintf(&p->note, fmt, ap) < 0)
			p->note = NULL;
		va_end(ap);
	}
	return -ABS(error);
}

static void push_report(struct push *p, const char *what, uint64_t done, uint64_t total,
			uint64_t in_flight)
{
	struct epoch_progress pr = {
		.what = what,
		.done = done,
		.total = total,
		.all_done = p->moved + in_flight,
	};

	if (p->progress)
		p->progress(&pr, p->progress_userdata);
}

/* ---- uploads: one at a time, in file order ----
 * push_kick() may run inside the exporter's stdout callback (via the tar reader), where the
 * call must not end; so it returns errors with a note and its callers decide. */

static int push_config(struct epoch_call *c);
static void push_on_head(const struct epoch_reply *reply, void *userdata);

static int push_kick(struct epoch_call *c)
{
	struct push *p = c->state;
	struct epoch_call *sub;
	int k;

	if (p->uploading)
		return 0;
	if (p->next_upload < p->n_layers) {
		const struct layer *l = &p->layers[p->next_upload];

		k = epoch_blob_head(c->reg, p->name, l->digest, push_on_head, c, &sub);
		if (k < 0)
			return push_note(p, k, "cannot check %s: %s", l->title, strerror(-k));
		p->uploading = true;
		call_adopt(c, sub);
		return 0;
	}
	if (p->paused && p->exporter) {
		p->paused = false;
		child_resume_stdout(p->exporter);
	}
	return p->exported ? push_config(c) : 0;
}

static void push_kick_or_fail(struct epoch_call *c)
{
	struct push *p = c->state;
	int k = push_kick(c);

	if (k < 0)
		push_fail(c, k, "%s", p->note ?: strerror(-k));
}

/* The current layer is in the registry (uploaded or found there). */
static void push_layer_up(struct epoch_call *c)
{
	struct push *p = c->state;

	layer_close(&p->layers[p->next_upload]);
	p->uploading = false;
	p->next_upload++;
	push_kick_or_fail(c);
}

static void push_on_put(const struct epoch_reply *reply, void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;

	if (reply->error < 0)
		return push_fail(c, reply->error, "uploading %s: %s",
				 p->layers[p->next_upload].title, reply->message);
	p->moved += reply->moved;
	push_layer_up(c);
}

static void push_on_upload_progress(const struct epoch_progress *pr, void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;

	push_report(p, p->layers[p->next_upload].title, pr->done, pr->total, pr->done);
}

static void push_on_head(const struct epoch_reply *reply, void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;
	struct layer *l = &p->layers[p->next_upload];
	struct epoch_call *sub;
	int k;

	if (reply->error < 0)
		return push_fail(c, reply->error, "checking %s: %s", l->title, reply->message);
	if (reply->found) {
		log_debug("%s: the registry has %s already", l->title, l->digest);
		return push_layer_up(c);
	}
	k = epoch_blob_put(c->reg, p->name, l->digest, l->fd, NULL, l->size,
			   push_on_upload_progress, c, push_on_put, c, &sub);
	if (k < 0)
		return push_fail(c, k, "cannot upload %s: %s", l->title, strerror(-k));
	call_adopt(c, sub);
}

/* ---- reading the export ---- */

static bool name_is_flat(const char *s)
{
	if (!*s || streq(s, ".") || streq(s, "..") || strlen(s) > 255)
		return false;
	for (; *s; s++)
		if (*s == '/' || (unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static int spool_open(const char *dir)
{
	_cleanup_(freep) char *path = NULL;
	int fd;

	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd >= 0 ? fd : -errno;
	/* no O_TMPFILE on this file system: a named file, unlinked at once */
	if (asprintf(&path, "%s/epoch-snapshot-XXXXXX", dir) < 0)
		return -ENOMEM;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	(void)unlink(path);
	return fd;
}

static int push_on_entry(const struct tar_entry *e, void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;
	struct layer *l;
	int fd;

	if (e->type == TAR_TYPE_DIRECTORY)
		return 0;
	if (e->type != TAR_TYPE_REGULAR || !name_is_flat(e->name))
		return push_note(p, EBADMSG,
				 "the export of %s holds \"%.200s\", which is not a plain file at "
				 "the top level",
				 p->snapshot, e->name);
	if (streq(e->name, "snapshot.json")) {
		if (p->have_snapshot_json || e->size > EPOCH_CONFIG_MAX)
			return push_note(p, EBADMSG, "snapshot.json: duplicate or above %u bytes",
					 EPOCH_CONFIG_MAX);
		p->in_snapshot_json = true;
		return 0;
	}
	for (size_t i = 0; i < p->n_layers; i++)
		if (streq(p->layers[i].title, e->name))
			return push_note(p, EBADMSG, "the export holds \"%s\" twice", e->name);
	fd = spool_open(p->tmp_dir);
	if (fd < 0)
		return push_note(p, fd, "cannot create a temp file in %s: %s", p->tmp_dir,
				 strerror(-fd));
	/* The whole file's room up front: a full disk shows now, not GiBs later, and the file
	 * system allocates one extent instead of block by block. Best effort otherwise. */
	if (e->size > 0 && fallocate(fd, 0, 0, (off_t)e->size) < 0 && errno == ENOSPC) {
		close(fd);
		return push_note(p, ENOSPC,
				 "cannot spool %s: %s has no room for its %" PRIu64 " bytes",
				 e->name, p->tmp_dir, e->size);
	}
	l = p->spooling = calloc(1, sizeof *l);
	if (!l) {
		close(fd);
		return -ENOMEM;
	}
	l->fd = fd;
	l->mode = e->mode & 07777;
	l->title = strdup(e->name);
	if (e->sparse) {
		const char *map = tar_entry_pax_get(e, TAR_PAX_SPARSE_MAP);

		l->sparse_map = strdup(map ?: "[]");
		l->sparse_size = e->sparse_size;
	}
	if (!l->title || (e->sparse && !l->sparse_map) ||
	    !EVP_DigestInit_ex(p->md, EVP_sha256(), NULL))
		return -ENOMEM;
	return 0;
}

static int write_full(int fd, const void *data, size_t n)
{
	const char *s = data;

	while (n > 0) {
		ssize_t k = write(fd, s, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		s += k;
		n -= (size_t)k;
	}
	return 0;
}

static int push_on_data(const struct tar_entry *e, uint64_t offset, const void *data, size_t len,
			void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;
	int k;

	if (p->in_snapshot_json)
		return buf_append(&p->snapshot_json, data, len);
	if (!p->spooling)
		return 0;
	k = write_full(p->spooling->fd, data, len);
	if (k < 0)
		return push_note(p, k, "spooling %s to %s: %s", e->name, p->tmp_dir, strerror(-k));
	if (!EVP_DigestUpdate(p->md, data, len))
		return -EIO;
	push_report(p, e->name, offset + len, e->size, 0);
	return 0;
}

static int push_on_entry_end(const struct tar_entry *e, void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;
	unsigned char md[32];
	unsigned int len = 0;
	struct layer *layers;

	if (p->in_snapshot_json) {
		p->in_snapshot_json = false;
		p->have_snapshot_json = true;
		return 0;
	}
	if (!p->spooling)
		return 0;
	if (!EVP_DigestFinal_ex(p->md, md, &len))
		return -EIO;
	layers = reallocarray(p->layers, p->n_layers + 1, sizeof *layers);
	if (!layers)
		return -ENOMEM;
	p->layers = layers;
	p->spooling->size = e->size;
	digest_format(md, p->spooling->digest);
	layers[p->n_layers++] = *p->spooling;
	free(p->spooling);
	p->spooling = NULL;
	p->total += e->size;
	/* A second finished file waits: stop reading until the upload slot frees up. */
	if (p->uploading && p->next_upload + 1 < p->n_layers && !p->paused) {
		p->paused = true;
		child_pause_stdout(p->exporter);
	}
	return push_kick(c);
}

static int push_on_stdout(struct child *ch, const void *data, size_t len, void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;
	int k = tar_reader_feed(p->tar, data, len);

	if (k < 0)
		return push_note(p, k, "the export of %s is not a valid archive: %s", p->snapshot,
				 tar_reader_error(p->tar) ?: strerror(-k));
	return 0;
}

static void push_on_exit(struct child *ch, struct child_result *r, void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;
	const char *err;
	int k;

	while (r->err.len > 0 && strchr(" \t\r\n", r->err.data[r->err.len - 1]))
		r->err.data[--r->err.len] = '\0';
	err = r->err.data ?: "";
	if (r->err.len > STDERR_TAIL)
		err += r->err.len - STDERR_TAIL;
	if (p->note || r->error < 0)
		return push_fail(c, r->error ?: -EBADMSG, "%s",
				 p->note ?: "reading the snapshot export failed");
	if (r->exit_code != 0)
		return push_fail(c, EIO, "%s snapshot export %s failed (%s %d)%s%s", p->argv[0],
				 p->snapshot, r->signal ? "signal" : "exit",
				 r->signal ?: r->exit_code, *err ? ": " : "", err);
	k = tar_reader_finish(p->tar);
	if (k < 0)
		return push_fail(c, k, "the export of %s ended early: %s", p->snapshot,
				 tar_reader_error(p->tar) ?: strerror(-k));
	if (!p->have_snapshot_json)
		return push_fail(c, EBADMSG, "the export of %s has no snapshot.json", p->snapshot);
	child_free(p->exporter);
	p->exporter = NULL;
	p->exported = true;
	push_kick_or_fail(c);
}

/* ---- config blob and manifest ---- */

static void push_on_manifest(const struct epoch_reply *reply, void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;

	if (reply->error < 0)
		return push_fail(c, reply->error, "%s", reply->message);
	p->digest = strdup(reply->digest ?: "");
	c->reply.digest = p->digest;
	c->reply.size = p->total;
	c->reply.moved = p->moved;
	c->reply.n_layers = p->n_layers;
	call_finish(c);
}

static int push_build_manifest(struct push *p)
{
	_cleanup_(freep) struct epoch_descriptor *layers = NULL;
	struct epoch_descriptor config = {
		.media_type = (char *)EPOCH_MT_SNAPSHOT_CONFIG,
		.digest = p->config_digest,
		.size = p->config_len,
	};
	struct epoch_manifest_spec spec = {
		.config = &config,
		.n_layers = p->n_layers,
		.created = p->created,
		.base_image = p->base_image,
		.source = p->source,
		.revision = p->revision,
	};

	layers = calloc(p->n_layers ?: 1, sizeof *layers);
	if (!layers)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_layers; i++)
		layers[i] = (struct epoch_descriptor){
			.media_type = (char *)epoch_layer_media_type(p->layers[i].title),
			.digest = p->layers[i].digest,
			.size = p->layers[i].size,
			.title = p->layers[i].title,
		};
	spec.layers = layers;
	return epoch_manifest_build(&spec, &p->manifest, &p->manifest_len);
}

static void push_on_config(const struct epoch_reply *reply, void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;
	struct epoch_call *sub;
	int k;

	if (reply->error < 0)
		return push_fail(c, reply->error, "uploading the config blob: %s", reply->message);
	if (p->stage == STAGE_CONFIG && !reply->found) {
		/* HEAD said absent: upload it */
		p->stage = STAGE_MANIFEST;
		k = epoch_blob_put(c->reg, p->name, p->config_digest, -EBADF, p->config,
				   p->config_len, NULL, NULL, push_on_config, c, &sub);
		if (k < 0)
			return push_fail(c, k, "cannot upload the config blob: %s", strerror(-k));
		call_adopt(c, sub);
		return;
	}
	p->moved += reply->moved;
	p->total += p->config_len;
	k = push_build_manifest(p);
	if (k >= 0)
		k = epoch_put_manifest(c->reg, p->name, p->tag, p->manifest, p->manifest_len,
				       EPOCH_MT_OCI_MANIFEST, push_on_manifest, c, &sub);
	if (k < 0)
		return push_fail(c, k, "cannot put the manifest: %s", strerror(-k));
	call_adopt(c, sub);
}

static int push_config(struct epoch_call *c)
{
	struct push *p = c->state;
	_cleanup_(freep) struct epoch_file_meta *files = NULL;
	_cleanup_(freep) char *err = NULL;
	struct epoch_call *sub;
	int k;

	p->stage = STAGE_CONFIG;
	files = calloc(p->n_layers ?: 1, sizeof *files);
	if (!files)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_layers; i++)
		files[i] = (struct epoch_file_meta){
			.name = p->layers[i].title,
			.mode = p->layers[i].mode,
			.sparse_map = p->layers[i].sparse_map,
			.sparse_size = p->layers[i].sparse_size,
		};
	k = epoch_snapshot_config_build(p->snapshot_json.data ?: "", p->snapshot_json.len, files,
					p->n_layers, p->created, &p->config, &p->config_len, &err);
	if (k < 0)
		return push_note(p, k, "the export of %s: %s", p->snapshot, err ?: strerror(-k));
	k = digest_of(p->config, p->config_len, p->config_digest);
	if (k >= 0)
		k = epoch_blob_head(c->reg, p->name, p->config_digest, push_on_config, c, &sub);
	if (k < 0)
		return push_note(p, k, "cannot check the config blob: %s", strerror(-k));
	call_adopt(c, sub);
	return 0;
}

/* ---- start ---- */

static int push_copy_options(struct push *p, const struct epoch_push_options *o)
{
	const char *tmp = o->tmp_dir ?: getenv("TMPDIR"), *created;
	char now[32];
	int k;

	time_now_rfc3339(now);
	created = o->created ?: now;
#define DUP(dst, src)                                                                              \
	if ((src) && !((dst) = strdup(src)))                                                       \
	return -ENOMEM
	DUP(p->snapshot, o->snapshot);
	DUP(p->name, o->name ?: o->snapshot);
	DUP(p->tag, o->tag ?: EPOCH_DEFAULT_TAG);
	DUP(p->base_image, o->base_image);
	DUP(p->source, o->source);
	DUP(p->revision, o->revision);
	if (isempty(tmp))
		tmp = "/var/tmp";
	DUP(p->tmp_dir, tmp);
	DUP(p->created, created);
#undef DUP
	p->progress = o->progress;
	p->progress_userdata = o->progress_userdata;
	k = cocoon_argv(o->cocoon, &p->argv, "snapshot", "export", p->snapshot, "-o", "-", NULL);
	return k;
}

int epoch_snapshot_push(struct epoch_registry *r, const struct epoch_push_options *o,
			epoch_done_fn done, void *userdata, struct epoch_call **ret)
{
	static const struct tar_reader_ops ops = {
		.on_entry = push_on_entry,
		.on_data = push_on_data,
		.on_entry_end = push_on_entry_end,
	};
	struct epoch_call *c;
	struct push *p;
	int k;

	if (!r || !o || isempty(o->snapshot) || !epoch_name_valid(o->name ?: o->snapshot) ||
	    (o->tag && !epoch_tag_valid(o->tag)))
		return -EINVAL;
	k = call_new(r, &push_ops, done, userdata, &c);
	if (k < 0)
		return k;
	c->state = p = calloc(1, sizeof *p);
	if (!p) {
		epoch_call_cancel(c);
		return -ENOMEM;
	}
	p->snapshot_json = BUF_INIT(EPOCH_CONFIG_MAX);
	k = push_copy_options(p, o);
	if (k >= 0)
		k = (p->md = EVP_MD_CTX_new()) ? 0 : -ENOMEM;
	if (k >= 0)
		k = tar_reader_new(&ops, c, &p->tar);
	if (k >= 0)
		k = child_new(epoch_registry_event(r), (const char *const *)p->argv,
			      &(struct child_options){
				  .output_cap = EXPORT_STDERR_CAP,
				  .pipe_size = EXPORT_PIPE_SIZE,
				  .on_stdout = push_on_stdout,
				  .on_exit = push_on_exit,
				  .userdata = c,
			      },
			      &p->exporter);
	if (k < 0) {
		epoch_call_cancel(c);
		return k;
	}
	if (ret)
		*ret = c;
	return 0;
}

/* ---- the pull plan ---- */

static int plan_snapshot_json(const struct epoch_snapshot_config *cfg,
			      const struct epoch_pull_options *o, const char *local_name,
			      struct pull_plan *plan)
{
	_cleanup_(freep) char *json = NULL;
	struct pull_item *it;
	struct tar_entry e = {
		.name = (char *)"snapshot.json",
		.type = TAR_TYPE_REGULAR,
		.mode = 0644,
		.mtime = time(NULL),
	};
	size_t len;
	int k;

	k = epoch_snapshot_json_build(cfg, local_name, o->description, &json, &len);
	if (k < 0)
		return k;
	e.size = len;
	k = pull_plan_add(plan, &it);
	if (k >= 0)
		k = tar_header_format(&e, &it->prefix, NULL);
	if (k >= 0)
		k = buf_append(&it->prefix, json, len);
	if (k >= 0)
		k = buf_append(&it->prefix, (char[TAR_BLOCK_SIZE]){}, tar_padding(len));
	return k;
}

static int plan_layer(const struct epoch_descriptor *d, const struct epoch_snapshot_config *cfg,
		      struct pull_plan *plan, char **ret_error)
{
	const struct epoch_file_meta *f = epoch_snapshot_config_file(cfg, d->title);
	_cleanup_(freep) struct tar_sparse_segment *map = NULL;
	_cleanup_(freep) char *err = NULL;
	struct pull_item *it;
	struct tar_entry e = {
		.name = d->title,
		.type = TAR_TYPE_REGULAR,
		.mode = f ? f->mode : 0640,
		.mtime = time(NULL),
		.size = d->size,
	};
	int k;

	if (f && f->sparse_map) {
		k = tar_sparse_map_parse(f->sparse_map, strlen(f->sparse_map), f->sparse_size, &map,
					 &e.n_sparse, &err);
		if (k < 0)
			return fail_msg(ret_error, "layer %s: sparseMap: %s", d->title,
					err ?: strerror(-k));
		if (tar_sparse_packed_size(map, e.n_sparse) != d->size)
			return fail_msg(ret_error,
					"layer %s: the sparse map holds %" PRIu64
					" bytes of data but the blob has %" PRIu64,
					d->title, tar_sparse_packed_size(map, e.n_sparse), d->size);
		e.sparse = true;
		e.sparse_map = map;
		e.sparse_size = f->sparse_size;
	}
	k = pull_plan_add(plan, &it);
	if (k < 0)
		return k;
	it->blob = d;
	it->pad = tar_padding(d->size);
	plan->total += d->size;
	k = tar_header_format(&e, &it->prefix, &err);
	if (k == -EINVAL)
		return fail_msg(ret_error, "layer %s: %s", d->title, err ?: "cannot be written");
	return k;
}

int snapshot_pull_plan(const struct epoch_manifest *m, const struct epoch_snapshot_config *cfg,
		       const struct epoch_pull_options *o, const char *local_name,
		       struct pull_plan *plan, char **ret_error)
{
	int k;

	for (size_t i = 0; i < m->n_layers; i++) {
		const char *t = m->layers[i].title;

		if (!t)
			return fail_msg(ret_error, "layers[%zu] has no %s annotation", i,
					EPOCH_ANNOTATION_TITLE);
		if (!name_is_flat(t) || streq(t, "snapshot.json"))
			return fail_msg(ret_error, "layers[%zu] has the unusable title \"%.200s\"",
					i, t);
		for (size_t j = 0; j < i; j++)
			if (streq(m->layers[j].title, t))
				return fail_msg(ret_error, "two layers are titled \"%s\"", t);
	}
	k = plan_snapshot_json(cfg, o, local_name, plan);
	for (size_t i = 0; k >= 0 && i < m->n_layers; i++)
		k = plan_layer(&m->layers[i], cfg, plan, ret_error);
	if (k >= 0)
		k = buf_append(&plan->trailer, (char[2 * TAR_BLOCK_SIZE]){}, 2 * TAR_BLOCK_SIZE);
	plan->verb = "snapshot import";
	if (k >= 0 && o->out_fd < 0)
		k = o->description
			? cocoon_argv(o->cocoon, &plan->argv, "snapshot", "import", "--name",
				      local_name, "--description", o->description, NULL)
			: cocoon_argv(o->cocoon, &plan->argv, "snapshot", "import", "--name",
				      local_name, NULL);
	return k;
}
