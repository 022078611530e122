/* Snapshots through Epoch (net-epoch-runtime.md §2.6).
 *
 * Push reads `cocoon snapshot export <snap> -o -` (a child, stdout streamed with
 * back-pressure) through the tar reader, at most twice, and writes nothing to disk:
 *  1. reading: every file is hashed (the digest names its blob and tells whether the
 *     registry has it) and HEADed as soon as it ends. snapshot.json, the modes and the
 *     sparse maps make the config blob, which goes up next, from memory: that also settles
 *     the registry's upload mode and write token before any stream starts.
 *  2. uploading, only when some file is missing: the export runs again and each missing
 *     file's data flows through a bounded queue into its upload (the exporter is paused
 *     while the queue is full), hashed again on the way; present files are skipped. A file
 *     whose size, sparse map or digest differs from the first pass ends the push before its
 *     last byte reaches the registry, so the manifest only ever names data we hashed.
 * Then the manifest (§2.5). The original client spools to temp disk (room for the largest
 * file); reading twice costs one more export but no disk, and hashing is cheaper than the
 * page-cache copy a spool needs (docs/ARCHITECTURE.md, "Throughput limits").
 *
 * Pull plan: snapshot.json rebuilt from the config blob (name = the local name), then one
 * tar entry per layer in manifest order with the mode and COCOON.sparse.* records the
 * config recorded — for stream.c to fill with verified blob bytes. */
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
/* The export's pipe: 1 MiB instead of 64 KiB means fewer wakeups of the exporter and of us. */
#define EXPORT_PIPE_SIZE (1024 * 1024)
/* Pass 2's queue between the export and the upload. The exporter is paused once less than
 * QUEUE_HEADROOM is free (one stdout chunk, 64 KiB, must always fit) and resumed below half. */
#define QUEUE_SIZE     (4U * 1024 * 1024)
#define QUEUE_HEADROOM (1024U * 1024)
/* Pass 2 starts over when an upload needs its stream again (see epoch_blob_put_stream());
 * each time the registry handle has learnt something (upload mode, chunks, a token). */
#define RESTARTS_MAX 3
#define NONE         SIZE_MAX

struct layer {
	char *title;
	char digest[DIGEST_STR_SIZE];
	uint64_t size;
	uint32_t mode;
	char *sparse_map;
	uint64_t sparse_size;
	bool present; /* in the registry: found by HEAD, or uploaded */
	bool seen;    /* met by the current pass 2 */
};

enum push_stage { STAGE_READ, STAGE_CONFIG, STAGE_UPLOAD, STAGE_MANIFEST };

struct push {
	char *snapshot, *name, *tag, *base_image, *source, *revision, *created;
	char **argv;
	epoch_progress_fn progress;
	void *progress_userdata;
	enum push_stage stage;
	struct child *exporter;
	bool exported; /* the current export exited 0 and its archive was complete */
	bool paused;
	struct tar_reader *tar;
	char *note;   /* why a step inside the exporter's callback failed, for the exit handler */
	char *digest; /* of the manifest, once PUT */
	struct buf snapshot_json;
	bool have_snapshot_json, in_snapshot_json;
	struct layer *layers;
	size_t n_layers;
	size_t cur; /* the layer whose data the tar reader delivers, or NONE */
	EVP_MD_CTX *md;
	uint64_t read;    /* pass 1: file bytes hashed */
	size_t next_head; /* pass 1: HEADs go one at a time, in file order */
	bool heading;
	/* pass 2 */
	unsigned restarts;
	char *queue; /* ring of QUEUE_SIZE: data of missing layers, in archive order */
	size_t q_start, q_len;
	size_t *order;              /* the missing layers in the order this export delivers them */
	size_t n_order, next_up;    /* order[next_up]: uploading, or next to */
	bool uploading, up_waiting; /* an upload is in flight; its read said -EAGAIN */
	uint64_t up_given;          /* bytes of order[next_up] handed to the upload */
	sd_event_source *defer;     /* starts and resumes uploads outside the child's callbacks */
	uint64_t up_total, up_done;
	uint64_t moved, total;
	char *config;
	size_t config_len;
	char config_digest[DIGEST_STR_SIZE];
	char *manifest;
	size_t manifest_len;
};

static void push_release(struct epoch_call *c)
{
	struct push *p = c->state;

	if (!p)
		return;
	child_free(p->exporter);
	tar_reader_free(p->tar);
	sd_event_source_disable_unref(p->defer);
	for (size_t i = 0; i < p->n_layers; i++) {
		free(p->layers[i].title);
		free(p->layers[i].sparse_map);
	}
	free(p->layers);
	free(p->queue);
	free(p->order);
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

static void push_report(struct push *p, const char *what, uint64_t done, uint64_t total)
{
	bool reading = p->stage == STAGE_READ;
	struct epoch_progress pr = {
		.phase = reading ? "reading" : "uploading",
		.what = what,
		.done = done,
		.total = total,
		.all_done = reading ? p->read : p->up_done + done,
		.all_total = reading ? 0 : p->up_total,
	};

	if (p->progress)
		p->progress(&pr, p->progress_userdata);
}

static bool name_is_flat(const char *s)
{
	if (!*s || streq(s, ".") || streq(s, "..") || strlen(s) > 255)
		return false;
	for (; *s; s++)
		if (*s == '/' || (unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static struct layer *push_find(struct push *p, const char *title)
{
	for (size_t i = 0; i < p->n_layers; i++)
		if (streq(p->layers[i].title, title))
			return &p->layers[i];
	return NULL;
}

/* What both passes require of an entry: a plain file at the top level. 1: snapshot.json. */
static int push_check_entry(struct push *p, const struct tar_entry *e)
{
	if (e->type != TAR_TYPE_REGULAR || !name_is_flat(e->name))
		return push_note(p, EBADMSG,
				 "the export of %s holds \"%.200s\", which is not a plain file at "
				 "the top level",
				 p->snapshot, e->name);
	return streq(e->name, "snapshot.json");
}

static int push_digest_end(struct push *p, char out[static DIGEST_STR_SIZE])
{
	unsigned char md[32];
	unsigned int len = 0;

	if (!EVP_DigestFinal_ex(p->md, md, &len) || len != 32)
		return -EIO;
	digest_format(md, out);
	return 0;
}

/* ---- pass 1: hash every file, HEAD each digest ---- */

static void push_on_head(const struct epoch_reply *reply, void *userdata);
static int push_config(struct epoch_call *c);

/* Ask the registry about the next finished layer; after the last one (and the export's
 * end) go on to the config. Errors come back with a note: this may run inside the
 * exporter's stdout callback. */
static int push_head_kick(struct epoch_call *c)
{
	struct push *p = c->state;
	struct epoch_call *sub;
	size_t done = p->n_layers - (p->cur != NONE);
	int k;

	if (p->heading)
		return 0;
	if (p->next_head < done) {
		const struct layer *l = &p->layers[p->next_head];

		k = epoch_blob_head(c->reg, p->name, l->digest, push_on_head, c, &sub);
		if (k < 0)
			return push_note(p, k, "cannot check %s: %s", l->title, strerror(-k));
		p->heading = true;
		call_adopt(c, sub);
		return 0;
	}
	return p->exported ? push_config(c) : 0;
}

static void push_kick_or_fail(struct epoch_call *c, int (*kick)(struct epoch_call *c))
{
	struct push *p = c->state;
	int k = kick(c);

	if (k < 0)
		push_fail(c, k, "%s", p->note ?: strerror(-k));
}

static void push_on_head(const struct epoch_reply *reply, void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;
	struct layer *l = &p->layers[p->next_head];

	if (reply->error < 0)
		return push_fail(c, reply->error, "checking %s: %s", l->title, reply->message);
	if (reply->found) {
		log_debug("%s: the registry has %s already", l->title, l->digest);
		l->present = true;
	} else {
		p->up_total += l->size;
	}
	p->heading = false;
	p->next_head++;
	push_kick_or_fail(c, push_head_kick);
}

static int read_on_entry(const struct tar_entry *e, void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;
	struct layer *layers, *l;
	int k;

	if (e->type == TAR_TYPE_DIRECTORY)
		return 0;
	k = push_check_entry(p, e);
	if (k < 0)
		return k;
	if (k > 0) {
		if (p->have_snapshot_json || e->size > EPOCH_CONFIG_MAX)
			return push_note(p, EBADMSG, "snapshot.json: duplicate or above %u bytes",
					 EPOCH_CONFIG_MAX);
		p->in_snapshot_json = true;
		return 0;
	}
	if (push_find(p, e->name))
		return push_note(p, EBADMSG, "the export holds \"%s\" twice", e->name);
	layers = reallocarray(p->layers, p->n_layers + 1, sizeof *layers);
	if (!layers)
		return -ENOMEM;
	p->layers = layers;
	l = &layers[p->n_layers];
	*l = (struct layer){ .mode = e->mode & 07777, .size = e->size };
	p->cur = p->n_layers++;
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

static int read_on_data(const struct tar_entry *e, uint64_t offset, const void *data, size_t len,
			void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;

	if (p->in_snapshot_json)
		return buf_append(&p->snapshot_json, data, len);
	if (p->cur == NONE)
		return 0;
	if (!EVP_DigestUpdate(p->md, data, len))
		return -EIO;
	p->read += len;
	push_report(p, e->name, offset + len, e->size);
	return 0;
}

static int read_on_entry_end(const struct tar_entry *e, void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;
	int k;

	if (p->in_snapshot_json) {
		p->in_snapshot_json = false;
		p->have_snapshot_json = true;
		return 0;
	}
	if (p->cur == NONE)
		return 0;
	k = push_digest_end(p, p->layers[p->cur].digest);
	if (k < 0)
		return k;
	p->total += e->size;
	p->cur = NONE;
	return push_head_kick(c);
}

/* ---- pass 2: stream each missing file into its upload ---- */

static int push_manifest(struct epoch_call *c);

static ssize_t push_on_read(void *buf, size_t n, void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;
	const struct layer *l = &p->layers[p->order[p->next_up]];
	size_t k = MIN(MIN(n, p->q_len), l->size - p->up_given), first;

	/* The export failed or changed: not one more byte goes out. The upload waits (its
	 * error would hide why) until the exporter is gone and its exit handler reports. */
	if (p->note)
		return -EAGAIN;
	if (k == 0) {
		p->up_waiting = true;
		return -EAGAIN;
	}
	first = MIN(k, QUEUE_SIZE - p->q_start);
	memcpy(buf, p->queue + p->q_start, first);
	memcpy((char *)buf + first, p->queue, k - first);
	p->q_start = (p->q_start + k) % QUEUE_SIZE;
	p->q_len -= k;
	p->up_given += k;
	if (p->paused && p->exporter && p->q_len < QUEUE_SIZE / 2) {
		p->paused = false;
		child_resume_stdout(p->exporter);
	}
	return (ssize_t)k;
}

static void push_on_upload_progress(const struct epoch_progress *pr, void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;

	push_report(p, p->layers[p->order[p->next_up]].title, pr->done, pr->total);
}

static int push_upload_start(struct epoch_call *c);
static void push_on_put(const struct epoch_reply *reply, void *userdata);

/* Start or resume the upload the queue feeds; after the last one (and the export's end),
 * the manifest. Runs from push_on_defer, an httpc callback or the exit handler, never from
 * the exporter's stdout callback: resuming a request may call push_on_read at once, which
 * must not see a file's last bytes before upload_on_entry_end has checked them. */
static int push_upload_kick(struct epoch_call *c)
{
	struct push *p = c->state;
	struct epoch_call *sub;
	const struct layer *l;
	int k;

	if (p->uploading) {
		if (!p->up_waiting || p->q_len == 0)
			return 0;
		p->up_waiting = false;
		k = epoch_call_resume(c->sub);
		return k < 0 ? push_note(p, k, "cannot resume the upload: %s", strerror(-k)) : 0;
	}
	if (p->next_up < p->n_order) {
		l = &p->layers[p->order[p->next_up]];
		p->up_given = 0;
		k = epoch_blob_put_stream(c->reg, p->name, l->digest, l->size, push_on_read, c,
					  push_on_upload_progress, c, push_on_put, c, &sub);
		if (k < 0)
			return push_note(p, k, "cannot upload %s: %s", l->title, strerror(-k));
		p->uploading = true;
		call_adopt(c, sub);
		return 0;
	}
	if (!p->exported)
		return 0;
	for (size_t i = 0; i < p->n_layers; i++)
		if (!p->layers[i].present)
			return push_note(p, ESTALE,
					 "snapshot %s changed while it was pushed: %s is gone",
					 p->snapshot, p->layers[i].title);
	return push_manifest(c);
}

static void push_on_put(const struct epoch_reply *reply, void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;
	struct layer *l = &p->layers[p->order[p->next_up]];
	int k;

	p->uploading = p->up_waiting = false;
	if (reply->error < 0 && p->note)
		return push_fail(c, reply->error, "%s", p->note);
	if (reply->error == -ESPIPE && p->restarts < RESTARTS_MAX) {
		/* The registry wants bytes the stream gave already; the handle has adapted, so
		 * the export runs again for what is still missing. */
		log_debug("uploading %s: %s; exporting again", l->title, reply->message);
		p->restarts++;
		k = push_upload_start(c);
		if (k < 0)
			push_fail(c, k, "%s", p->note ?: strerror(-k));
		return;
	}
	if (reply->error < 0)
		return push_fail(c, reply->error, "uploading %s: %s", l->title, reply->message);
	l->present = true;
	p->moved += reply->moved;
	p->up_done += l->size;
	p->next_up++;
	push_kick_or_fail(c, push_upload_kick);
}

static int push_on_defer(sd_event_source *s, void *userdata)
{
	push_kick_or_fail(userdata, push_upload_kick);
	return 0;
}

static int push_schedule(struct epoch_call *c)
{
	struct push *p = c->state;

	if (!p->defer)
		return sd_event_add_defer(epoch_registry_event(c->reg), &p->defer, push_on_defer,
					  c);
	return sd_event_source_set_enabled(p->defer, SD_EVENT_ONESHOT);
}

#define CHANGED "snapshot %s changed while it was pushed: "

static int upload_on_entry(const struct tar_entry *e, void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;
	const char *map = e->sparse ? tar_entry_pax_get(e, TAR_PAX_SPARSE_MAP) ?: "[]" : NULL;
	struct layer *l;
	int k;

	if (e->type == TAR_TYPE_DIRECTORY)
		return 0;
	k = push_check_entry(p, e);
	if (k != 0)
		return MIN(k, 0); /* snapshot.json: the config has the first pass's */
	l = push_find(p, e->name);
	if (!l)
		return push_note(p, ESTALE, CHANGED "%s is new", p->snapshot, e->name);
	if (l->seen)
		return push_note(p, EBADMSG, "the export holds \"%s\" twice", e->name);
	l->seen = true;
	if (l->present)
		return 0;
	if (e->size != l->size)
		return push_note(p, ESTALE,
				 CHANGED "%s now has %" PRIu64 " bytes (first read: %" PRIu64 ")",
				 p->snapshot, e->name, e->size, l->size);
	if (!streq_ptr(map, l->sparse_map) || (map && e->sparse_size != l->sparse_size))
		return push_note(p, ESTALE, CHANGED "the holes of %s moved", p->snapshot, e->name);
	p->cur = (size_t)(l - p->layers);
	p->order[p->n_order++] = p->cur;
	return EVP_DigestInit_ex(p->md, EVP_sha256(), NULL) ? 0 : -ENOMEM;
}

static int upload_on_data(const struct tar_entry *e, uint64_t offset, const void *data, size_t len,
			  void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;
	size_t tail = (p->q_start + p->q_len) % QUEUE_SIZE, first;

	if (p->cur == NONE)
		return 0;
	if (!EVP_DigestUpdate(p->md, data, len))
		return -EIO;
	/* cannot happen while the exporter is paused with QUEUE_HEADROOM free */
	if (len > QUEUE_SIZE - p->q_len)
		return push_note(p, ENOBUFS, "%s: the upload queue is full", e->name);
	first = MIN(len, QUEUE_SIZE - tail);
	memcpy(p->queue + tail, data, first);
	memcpy(p->queue, (const char *)data + first, len - first);
	p->q_len += len;
	return 0;
}

static int upload_on_entry_end(const struct tar_entry *e, void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;
	const struct layer *l;
	char got[DIGEST_STR_SIZE];
	int k;

	if (p->cur == NONE)
		return 0;
	l = &p->layers[p->cur];
	p->cur = NONE;
	k = push_digest_end(p, got);
	if (k < 0)
		return k;
	/* Runs before the loop lets the upload read this file's last bytes from the queue. */
	if (!streq(got, l->digest))
		return push_note(p, ESTALE, CHANGED "%s now has %s (first read: %s)", p->snapshot,
				 e->name, got, l->digest);
	return 0;
}

/* ---- the exporter, both passes ---- */

static int push_on_stdout(struct child *ch, const void *data, size_t len, void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;
	int k = tar_reader_feed(p->tar, data, len);

	if (k < 0)
		return push_note(p, k, "the export of %s is not a valid archive: %s", p->snapshot,
				 tar_reader_error(p->tar) ?: strerror(-k));
	if (p->stage != STAGE_UPLOAD)
		return 0;
	if (!p->paused && p->q_len > QUEUE_SIZE - QUEUE_HEADROOM) {
		p->paused = true;
		child_pause_stdout(ch);
	}
	if ((p->uploading && p->up_waiting && p->q_len > 0) ||
	    (!p->uploading && p->next_up < p->n_order))
		return push_schedule(c);
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
	push_kick_or_fail(c, p->stage == STAGE_UPLOAD ? push_upload_kick : push_head_kick);
}

static int push_export_start(struct epoch_call *c, const struct tar_reader_ops *ops)
{
	struct push *p = c->state;
	int k;

	child_free(p->exporter);
	p->exporter = NULL;
	tar_reader_free(p->tar);
	p->tar = NULL;
	p->exported = p->paused = false;
	p->cur = NONE;
	k = tar_reader_new(ops, c, &p->tar);
	if (k < 0)
		return k;
	return child_new(epoch_registry_event(c->reg), (const char *const *)p->argv,
			 &(struct child_options){
			     .output_cap = EXPORT_STDERR_CAP,
			     .pipe_size = EXPORT_PIPE_SIZE,
			     .on_stdout = push_on_stdout,
			     .on_exit = push_on_exit,
			     .userdata = c,
			 },
			 &p->exporter);
}

/* Pass 2, from the start: what is still missing, from a new export. */
static int push_upload_start(struct epoch_call *c)
{
	static const struct tar_reader_ops ops = {
		.on_entry = upload_on_entry,
		.on_data = upload_on_data,
		.on_entry_end = upload_on_entry_end,
	};
	struct push *p = c->state;
	int k;

	p->stage = STAGE_UPLOAD;
	if (!p->queue && !(p->queue = malloc(QUEUE_SIZE)))
		return -ENOMEM;
	if (!p->order && !(p->order = calloc(p->n_layers ?: 1, sizeof *p->order)))
		return -ENOMEM;
	p->q_start = p->q_len = p->n_order = p->next_up = 0;
	p->uploading = p->up_waiting = false;
	for (size_t i = 0; i < p->n_layers; i++)
		p->layers[i].seen = false;
	k = push_export_start(c, &ops);
	if (k < 0)
		return push_note(p, k, "cannot run %s snapshot export %s again: %s", p->argv[0],
				 p->snapshot, strerror(-k));
	return 0;
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

static int push_manifest(struct epoch_call *c)
{
	struct push *p = c->state;
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
	struct epoch_call *sub;
	int k;

	p->stage = STAGE_MANIFEST;
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
	k = epoch_manifest_build(&spec, &p->manifest, &p->manifest_len);
	if (k >= 0)
		k = epoch_put_manifest(c->reg, p->name, p->tag, p->manifest, p->manifest_len,
				       EPOCH_MT_OCI_MANIFEST, push_on_manifest, c, &sub);
	if (k < 0)
		return push_note(p, k, "cannot put the manifest: %s", strerror(-k));
	call_adopt(c, sub);
	return 0;
}

/* After the config's HEAD or its upload. It goes up before any layer, and even when the
 * registry has it if a layer is missing: from memory it can be sent again, so the handle
 * learns the upload mode (a 405 to the monolithic PUT) and gets its write token (a 401)
 * before a stream starts, instead of a second pass starting over for each. */
static void push_on_config(const struct epoch_reply *reply, void *userdata)
{
	struct epoch_call *c = userdata;
	struct push *p = c->state;
	struct epoch_call *sub;
	bool missing = false;
	int k;

	if (reply->error < 0)
		return push_fail(c, reply->error, "uploading the config blob: %s", reply->message);
	for (size_t i = 0; i < p->n_layers; i++)
		missing = missing || !p->layers[i].present;
	if (p->stage == STAGE_READ && (!reply->found || missing)) {
		p->stage = STAGE_CONFIG;
		k = epoch_blob_put(c->reg, p->name, p->config_digest, -EBADF, p->config,
				   p->config_len, NULL, NULL, push_on_config, c, &sub);
		if (k < 0)
			return push_fail(c, k, "cannot upload the config blob: %s", strerror(-k));
		call_adopt(c, sub);
		return;
	}
	p->moved += reply->moved;
	p->total += p->config_len;
	push_kick_or_fail(c, missing ? push_upload_start : push_manifest);
}

static int push_config(struct epoch_call *c)
{
	struct push *p = c->state;
	_cleanup_(freep) struct epoch_file_meta *files = NULL;
	_cleanup_(freep) char *err = NULL;
	struct epoch_call *sub;
	int k;

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
	if (p->config_len > EPOCH_SNAPSHOT_CONFIG_MAX)
		return push_note(p, E2BIG,
				 "the config blob of %s would have %zu bytes (its files' sparse "
				 "maps), more than the %u a pull accepts",
				 p->snapshot, p->config_len, EPOCH_SNAPSHOT_CONFIG_MAX);
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
	const char *created;
	char now[32];

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
	DUP(p->created, created);
#undef DUP
	p->progress = o->progress;
	p->progress_userdata = o->progress_userdata;
	return cocoon_argv(o->cocoon, &p->argv, "snapshot", "export", p->snapshot, "-o", "-", NULL);
}

int epoch_snapshot_push(struct epoch_registry *r, const struct epoch_push_options *o,
			epoch_done_fn done, void *userdata, struct epoch_call **ret)
{
	static const struct tar_reader_ops ops = {
		.on_entry = read_on_entry,
		.on_data = read_on_data,
		.on_entry_end = read_on_entry_end,
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
	p->cur = NONE;
	k = push_copy_options(p, o);
	if (k >= 0)
		k = (p->md = EVP_MD_CTX_new()) ? 0 : -ENOMEM;
	if (k >= 0)
		k = push_export_start(c, &ops);
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
