/* Pulls: from a manifest to bytes in an importer (`cocoon snapshot import`, `cocoon image
 * import`) or an fd, verified on the way (net-epoch-runtime.md §2.6 "Pull/stream").
 *
 * snapshot.c and cloudimg.c turn a manifest into a plan — items of (trusted prefix bytes,
 * a blob, zero padding) and a trailer — and this file runs it: one blob download at a time,
 * each chunk counted, hashed and queued for the output.
 *
 * The importer never completes an import from bad data:
 *   - the hold-back gate: the last HOLD_BACK bytes written since the last verified blob
 *     (which include the end of that blob, or the whole of a small entry with its header)
 *     stay queued until the blob's size and digest check out;
 *   - on any failure the importer is killed (SIGKILL) before its stdin is closed, so it
 *     never even sees the end of its input;
 *   - until the end-of-archive marker is queued, its input never ends where an entry ends,
 *     so if this process dies abruptly the importer's tar reader fails instead of taking
 *     the entries so far for a complete archive.
 *
 * The importer's stdin is a pipe whose write end common/child hands us (stdin_stream). A
 * write that fails with EPIPE means the importer is gone: we stop writing and let its exit
 * (status and stderr) say why, which is what a user needs to read.
 *
 * Back-pressure: when more than SINK_HIGH bytes wait for the output, the download is paused
 * (its data callback returns -EAGAIN) and resumed once the queue drains below SINK_LOW. */
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#include "cocoon/child.h"
#include "cocoon/log.h"
#include "epoch-internal.h"
#include "tar.h"

#define HOLD_BACK   4096
#define SINK_HIGH   (1024 * 1024)
#define SINK_LOW    (256 * 1024)
#define FLUSH_BATCH (128 * 1024)
#define SINK_CAP    (8 * 1024 * 1024)
#define PIPE_SIZE   (1024 * 1024)
#define OUTPUT_CAP  (64 * 1024)
#define STDERR_TAIL 600

struct pull {
	struct epoch_pull_options o;
	char *name, *ref, *local, *description;
	char **cocoon;
	char *digest; /* of the manifest pulled */
	struct epoch_manifest *manifest;
	struct epoch_snapshot_config *config;
	struct pull_plan plan;
	size_t item;
	uint64_t all_done, moved, item_done;
	/* output */
	int fd;
	bool own_fd;
	sd_event_source *out_src;
	struct buf q;
	size_t q_off;       /* bytes of q already written */
	size_t uncommitted; /* bytes at the end of q not yet verified */
	bool download_paused, trailer_queued;
	sd_event_source *resume_src;
	/* importer */
	struct child *importer;
	bool importer_exited;
};

void pull_plan_done(struct pull_plan *p)
{
	for (size_t i = 0; i < p->n_items; i++)
		buf_free(&p->items[i].prefix);
	free(p->items);
	buf_free(&p->trailer);
	strv_free(p->argv);
	*p = (struct pull_plan){};
}

int pull_plan_add(struct pull_plan *p, struct pull_item **ret)
{
	struct pull_item *items = reallocarray(p->items, p->n_items + 1, sizeof *items);

	if (!items)
		return -ENOMEM;
	p->items = items;
	*ret = &items[p->n_items++];
	**ret = (struct pull_item){ .prefix = BUF_INIT(0) };
	return 0;
}

int cocoon_argv(const char *const *cocoon, char ***ret, ...)
{
	static const char *const fallback[] = { "cocoon", NULL };
	size_t n = 0, k = 0;
	const char *w;
	va_list ap;
	char **v;

	if (!cocoon || !cocoon[0])
		cocoon = fallback;
	while (cocoon[n])
		n++;
	va_start(ap, ret);
	while (va_arg(ap, const char *))
		k++;
	va_end(ap);
	v = calloc(n + k + 1, sizeof *v);
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!(v[i] = strdup(cocoon[i])))
			goto fail;
	va_start(ap, ret);
	for (size_t i = 0; (w = va_arg(ap, const char *)); i++)
		if (!(v[n + i] = strdup(w))) {
			va_end(ap);
			goto fail;
		}
	va_end(ap);
	*ret = v;
	return 0;
fail:
	strv_free(v);
	return -ENOMEM;
}

static void pull_stop_output(struct pull *p)
{
	/* Kill first: a closed stdin would tell the importer its input is complete. */
	child_free(p->importer);
	p->importer = NULL;
	p->out_src = sd_event_source_disable_unref(p->out_src);
	p->resume_src = sd_event_source_disable_unref(p->resume_src);
	if (p->own_fd)
		closep(&p->fd);
	p->fd = -EBADF;
}

static void pull_release(struct epoch_call *c)
{
	struct pull *p = c->state;

	if (!p)
		return;
	pull_stop_output(p);
	free(p->name);
	free(p->ref);
	free(p->local);
	free(p->description);
	strv_free(p->cocoon);
	free(p->digest);
	epoch_manifest_free(p->manifest);
	epoch_snapshot_config_free(p->config);
	pull_plan_done(&p->plan);
	buf_free(&p->q);
	free(p);
}

static const struct call_ops pull_ops = { "pull", pull_release };

/* Ends the pull with an error. Never from inside a callback of c->sub other than its done
 * callback (which runs after the sub-call was detached). */
_printf_(3, 4) static void pull_fail(struct epoch_call *c, int error, const char *fmt, ...)
{
	struct pull *p = c->state;
	va_list ap;

	/* The message first: it may quote the importer's stderr, which goes with it. */
	c->reply.error = -ABS(error);
	free(c->message);
	va_start(ap, fmt);
	if (vasprintf(&c->message, fmt, ap) < 0)
		c->message = NULL;
	va_end(ap);
	pull_stop_output(p);
	call_finish(c);
}

static void pull_succeed(struct epoch_call *c)
{
	struct pull *p = c->state;

	c->reply.digest = p->digest;
	c->reply.size = p->plan.total;
	c->reply.moved = p->moved;
	for (size_t i = 0; i < p->plan.n_items; i++)
		c->reply.n_layers += p->plan.items[i].blob ? 1 : 0;
	call_finish(c);
}

/* ---- the output queue and the hold-back gate ---- */

static size_t q_writable(const struct pull *p)
{
	size_t pending = p->q.len - p->q_off;
	size_t held = MIN(p->uncommitted, (size_t)HOLD_BACK);

	/* When all the unverified bytes are held, what goes out would end where the last
	 * verified entry ends, and Go's tar reader takes an input ending there for a complete
	 * archive: if we died then (SIGKILL, OOM: nobody left to kill the importer), it would
	 * import a snapshot without its remaining files. Its last byte waits too. */
	if (held == p->uncommitted && !p->trailer_queued)
		held++;
	return pending > held ? pending - held : 0;
}

/* Unverified bytes count towards the held-back tail until q_commit(). */
static int q_append(struct pull *p, const void *data, size_t n, bool verified)
{
	if (p->q_off > 0 && p->q_off == p->q.len) {
		buf_reset(&p->q);
		p->q_off = 0;
	} else if (p->q_off >= SINK_HIGH) {
		buf_consume(&p->q, p->q_off);
		p->q_off = 0;
	}
	if (n > 0 && buf_append(&p->q, data, n) < 0)
		return -ENOMEM;
	if (!verified)
		p->uncommitted += n;
	return 0;
}

static void q_commit(struct pull *p)
{
	p->uncommitted = 0;
}

static int pull_on_resume(sd_event_source *s, void *userdata)
{
	struct epoch_call *c = userdata;
	struct pull *p = c->state;

	p->resume_src = sd_event_source_disable_unref(p->resume_src);
	if (c->sub)
		(void)epoch_call_resume(c->sub);
	return 0;
}

/* Write what the gate lets through. Returns 0 or -errno; never ends the call (it may run
 * inside the download's data callback). A paused download is resumed from a deferred
 * event, not from here, because resuming can complete it on the spot. */
static int pull_flush(struct epoch_call *c)
{
	struct pull *p = c->state;
	size_t n;

	while ((n = q_writable(p)) > 0) {
		ssize_t k = write(p->fd, p->q.data + p->q_off, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN && p->out_src)
			return sd_event_source_set_enabled(p->out_src, SD_EVENT_ON);
		if (k < 0 && errno == EPIPE && p->importer) {
			/* the importer is gone: its exit handler reports why */
			if (p->out_src)
				(void)sd_event_source_set_enabled(p->out_src, SD_EVENT_OFF);
			return 0;
		}
		if (k < 0)
			return -errno;
		p->q_off += (size_t)k;
	}
	if (p->out_src)
		(void)sd_event_source_set_enabled(p->out_src, SD_EVENT_OFF);
	if (p->download_paused && !p->resume_src && q_writable(p) < SINK_LOW) {
		p->download_paused = false;
		return sd_event_add_defer(epoch_registry_event(c->reg), &p->resume_src,
					  pull_on_resume, c);
	}
	return 0;
}

/* Everything written: close the importer's stdin, then wait for its verdict. */
static void pull_maybe_done(struct epoch_call *c)
{
	struct pull *p = c->state;

	if (!p->trailer_queued || p->q_off < p->q.len)
		return;
	p->out_src = sd_event_source_disable_unref(p->out_src);
	if (p->own_fd)
		closep(&p->fd);
	p->fd = -EBADF;
	if (!p->importer)
		pull_succeed(c);
}

static int pull_on_writable(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct epoch_call *c = userdata;
	int k;

	k = pull_flush(c);
	if (k < 0)
		pull_fail(c, k, "writing to the importer: %s", strerror(-k));
	else
		pull_maybe_done(c);
	return 0;
}

/* The end of a child's stderr, for messages: its last STDERR_TAIL bytes, without the
 * trailing newline. Trims the buffer in place. */
static const char *tail(struct buf *b)
{
	while (b->len > 0 && strchr(" \t\r\n", b->data[b->len - 1]))
		b->data[--b->len] = '\0';
	if (!b->data)
		return "";
	return b->len > STDERR_TAIL ? b->data + b->len - STDERR_TAIL : b->data;
}

static void pull_on_importer_exit(struct child *ch, struct child_result *r, void *userdata)
{
	struct epoch_call *c = userdata;
	struct pull *p = c->state;
	const char *cmd = p->plan.argv[0], *verb = p->plan.verb, *err = tail(&r->err);
	const char *sep = *err ? ": " : "";

	if (r->timed_out)
		return pull_fail(c, ETIMEDOUT, "%s %s timed out%s%s", cmd, verb, sep, err);
	if (r->exit_code != 0)
		return pull_fail(c, EIO, "%s %s failed (%s %d)%s%s", cmd, verb,
				 r->signal ? "signal" : "exit", r->signal ?: r->exit_code, sep,
				 err);
	if (!p->trailer_queued || p->q_off < p->q.len)
		return pull_fail(c, EPIPE, "%s %s exited before reading all its input%s%s", cmd,
				 verb, sep, err);
	log_debug("Import finished: %s", err);
	child_free(p->importer);
	p->importer = NULL;
	if (p->fd < 0)
		pull_succeed(c);
}

static int pull_start_importer(struct epoch_call *c)
{
	struct pull *p = c->state;
	int k;

	k = child_new(epoch_registry_event(c->reg), (const char *const *)p->plan.argv,
		      &(struct child_options){
			  .stdin_stream = true,
			  .pipe_size = PIPE_SIZE,
			  .output_cap = OUTPUT_CAP,
			  .timeout_usec = p->o.importer_timeout_usec,
			  .on_exit = pull_on_importer_exit,
			  .userdata = c,
		      },
		      &p->importer);
	if (k < 0)
		return k;
	p->fd = child_take_stdin(p->importer);
	if (p->fd < 0)
		return p->fd;
	p->own_fd = true;
	return sd_event_add_io(epoch_registry_event(c->reg), &p->out_src, p->fd, EPOLLOUT,
			       pull_on_writable, c);
}

static int pull_start_output(struct epoch_call *c)
{
	struct pull *p = c->state;
	int flags, k;

	p->q = BUF_INIT(SINK_CAP);
	if (p->o.out_fd < 0)
		return pull_start_importer(c);
	p->fd = p->o.out_fd;
	flags = fcntl(p->fd, F_GETFL);
	if (flags < 0)
		return -errno;
	/* A blocking fd or a regular file (which epoll refuses) is written directly. */
	if (!(flags & O_NONBLOCK))
		return 0;
	k = sd_event_add_io(epoch_registry_event(c->reg), &p->out_src, p->fd, EPOLLOUT,
			    pull_on_writable, c);
	return k == -EPERM ? 0 : k;
}

/* ---- running the plan ---- */

static int pull_on_data(const void *data, size_t n, void *userdata)
{
	struct epoch_call *c = userdata;
	struct pull *p = c->state;
	const struct pull_item *it = &p->plan.items[p->item];
	struct epoch_progress pr;
	int k;

	if (q_writable(p) >= SINK_HIGH) {
		p->download_paused = true;
		return -EAGAIN;
	}
	k = q_append(p, data, n, false);
	if (k < 0)
		return k;
	p->item_done += n;
	p->all_done += n;
	p->moved += n;
	if (p->o.progress) {
		pr = (struct epoch_progress){
			.what = it->blob->title ?: it->blob->digest,
			.done = p->item_done,
			.total = it->blob->size,
			.all_done = p->all_done,
			.all_total = p->plan.total,
		};
		p->o.progress(&pr, p->o.progress_userdata);
	}
	/* Curl hands over 16 KiB at a time: write in batches, not one syscall per chunk. */
	return q_writable(p) >= FLUSH_BATCH ? pull_flush(c) : 0;
}

static void pull_run_next(struct epoch_call *c);

static void pull_on_blob_done(const struct epoch_reply *reply, void *userdata)
{
	struct epoch_call *c = userdata;
	struct pull *p = c->state;
	static const char zeros[TAR_BLOCK_SIZE];
	const struct pull_item *it = &p->plan.items[p->item];

	if (reply->error < 0)
		return pull_fail(c, reply->error, "%s", reply->message);
	if (q_append(p, zeros, it->pad, true) < 0)
		return pull_fail(c, ENOMEM, "out of memory");
	q_commit(p);
	p->item++;
	pull_run_next(c);
}

static void pull_run_next(struct epoch_call *c)
{
	struct pull *p = c->state;
	struct epoch_call *sub;
	int k;

	for (; p->item < p->plan.n_items; p->item++) {
		const struct pull_item *it = &p->plan.items[p->item];

		if (q_append(p, it->prefix.data, it->prefix.len, !it->blob) < 0)
			return pull_fail(c, ENOMEM, "out of memory");
		if (!it->blob)
			continue;
		p->item_done = 0;
		k = epoch_blob_get(c->reg, p->name, it->blob->digest, it->blob->size, pull_on_data,
				   pull_on_blob_done, c, &sub);
		if (k < 0)
			return pull_fail(c, k, "cannot request blob %s: %s", it->blob->digest,
					 strerror(-k));
		call_adopt(c, sub);
		k = pull_flush(c);
		if (k < 0)
			return pull_fail(c, k, "writing the pulled data: %s", strerror(-k));
		return;
	}
	if (q_append(p, p->plan.trailer.data, p->plan.trailer.len, true) < 0)
		return pull_fail(c, ENOMEM, "out of memory");
	q_commit(p);
	p->trailer_queued = true;
	k = pull_flush(c);
	if (k < 0)
		return pull_fail(c, k, "writing the pulled data: %s", strerror(-k));
	pull_maybe_done(c);
}

/* ---- from the reference to a plan ---- */

static void pull_with_plan(struct epoch_call *c)
{
	struct pull *p = c->state;
	_cleanup_(freep) char *err = NULL;
	int k;

	if (p->manifest->kind == EPOCH_KIND_SNAPSHOT)
		k = snapshot_pull_plan(p->manifest, p->config, &p->o, p->local, &p->plan, &err);
	else
		k = cloudimg_pull_plan(p->manifest, &p->o, p->local, &p->plan, &err);
	if (k < 0)
		return pull_fail(c, k, "%s:%s: %s", p->name, p->ref, err ?: strerror(-k));
	k = pull_start_output(c);
	if (k < 0)
		return pull_fail(c, k, "cannot run %s: %s",
				 p->plan.argv ? p->plan.argv[0] : "the output", strerror(-k));
	pull_run_next(c);
}

static void pull_on_config(const struct epoch_reply *reply, void *userdata)
{
	struct epoch_call *c = userdata;
	struct pull *p = c->state;
	_cleanup_(freep) char *err = NULL;
	int k;

	if (reply->error < 0)
		return pull_fail(c, reply->error, "%s", reply->message);
	k = epoch_snapshot_config_parse(reply->body, reply->body_len, &p->config, &err);
	if (k < 0)
		return pull_fail(c, k, "%s:%s: %s", p->name, p->ref, err ?: strerror(-k));
	pull_with_plan(c);
}

static void pull_on_manifest(const struct epoch_reply *reply, void *userdata)
{
	struct epoch_call *c = userdata;
	struct pull *p = c->state;
	const struct epoch_descriptor *cfg;
	_cleanup_(freep) char *err = NULL;
	struct epoch_call *sub;
	int k;

	if (reply->error < 0)
		return pull_fail(c, reply->error, "%s", reply->message);
	/* The reply's manifest belongs to the fetch; parse our own copy of the same bytes. */
	k = epoch_manifest_parse(reply->body, reply->body_len, &p->manifest, &err);
	if (k < 0)
		return pull_fail(c, k, "%s:%s: %s", p->name, p->ref, err ?: strerror(-k));
	p->digest = strdup(reply->digest);
	if (!p->digest)
		return pull_fail(c, ENOMEM, "out of memory");
	if (p->manifest->kind == EPOCH_KIND_CLOUD_IMAGE)
		return pull_with_plan(c);
	if (p->manifest->kind != EPOCH_KIND_SNAPSHOT)
		return pull_fail(c, EMEDIUMTYPE, "%s:%s is a %s, not a snapshot or a cloud image",
				 p->name, p->ref, epoch_kind_to_string(p->manifest->kind));
	cfg = &p->manifest->config;
	if (!streq(cfg->media_type, EPOCH_MT_SNAPSHOT_CONFIG))
		return pull_fail(c, EMEDIUMTYPE, "%s:%s: config media type is %s, expected %s",
				 p->name, p->ref, cfg->media_type, EPOCH_MT_SNAPSHOT_CONFIG);
	if (cfg->size > EPOCH_SNAPSHOT_CONFIG_MAX)
		return pull_fail(c, E2BIG,
				 "%s:%s: the config blob has %" PRIu64
				 " bytes, more than the %u allowed",
				 p->name, p->ref, cfg->size, EPOCH_SNAPSHOT_CONFIG_MAX);
	k = epoch_blob_fetch(c->reg, p->name, cfg->digest, cfg->size, pull_on_config, c, &sub);
	if (k < 0)
		return pull_fail(c, k, "cannot request the config blob: %s", strerror(-k));
	call_adopt(c, sub);
}

static int strdup_opt(const char *s, char **ret)
{
	if (!s)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

static int pull_copy_options(struct pull *p, const struct epoch_pull_options *o)
{
	const char *ref = o->ref ?: EPOCH_DEFAULT_TAG;
	size_t n = 0;

	p->o = *o;
	if (strdup_opt(o->name, &p->name) < 0 || strdup_opt(ref, &p->ref) < 0 ||
	    strdup_opt(o->description, &p->description) < 0)
		return -ENOMEM;
	/* vk-cocoon's local name: the repository for :latest (and digests), else name:tag */
	if (o->local_name)
		p->local = strdup(o->local_name);
	else if (streq(ref, EPOCH_DEFAULT_TAG) || epoch_digest_valid(ref))
		p->local = strdup(o->name);
	else if (asprintf(&p->local, "%s:%s", o->name, ref) < 0)
		p->local = NULL;
	if (!p->local)
		return -ENOMEM;
	while (o->cocoon && o->cocoon[n])
		n++;
	p->cocoon = calloc(n + 1, sizeof *p->cocoon);
	if (!p->cocoon)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!(p->cocoon[i] = strdup(o->cocoon[i])))
			return -ENOMEM;
	p->o.name = p->name;
	p->o.ref = p->ref;
	p->o.local_name = p->local;
	p->o.description = p->description;
	p->o.cocoon = n ? (const char *const *)p->cocoon : NULL;
	return 0;
}

int epoch_pull(struct epoch_registry *r, const struct epoch_pull_options *o, epoch_done_fn done,
	       void *userdata, struct epoch_call **ret)
{
	struct epoch_call *c, *sub;
	struct pull *p;
	int k;

	if (!r || !o || !epoch_name_valid(o->name) ||
	    (o->ref && !epoch_tag_valid(o->ref) && !epoch_digest_valid(o->ref)))
		return -EINVAL;
	k = call_new(r, &pull_ops, done, userdata, &c);
	if (k < 0)
		return k;
	c->state = p = calloc(1, sizeof *p);
	if (!p) {
		epoch_call_cancel(c);
		return -ENOMEM;
	}
	p->fd = -EBADF;
	k = pull_copy_options(p, o);
	if (k >= 0)
		k = epoch_fetch_manifest(r, p->name, p->ref, pull_on_manifest, c, &sub);
	if (k < 0) {
		epoch_call_cancel(c);
		return k;
	}
	call_adopt(c, sub);
	if (ret)
		*ret = c;
	return 0;
}
