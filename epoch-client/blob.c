/* Blobs (net-epoch-runtime.md §2.2, OCI distribution spec "pulling/pushing blobs").
 *
 * Downloads stream: every byte is counted and hashed on its way to the caller, a body that
 * runs past the descriptor's size is cut off at once, and success is reported only for
 * exactly `size` bytes whose sha256 is the digest. Redirects (epoch's presigned S3 URLs)
 * are followed, for HEADs too; httpc never sends Authorization to another host.
 *
 * Uploads: epoch's monolithic `PUT /v2/<name>/blobs/<digest>` first. A registry that
 * answers it with 404, 405 or 400 (docker-registry says 405) is switched, for the rest of
 * the handle's life, to the OCI upload session: POST /blobs/uploads/ → Location; then one
 * PUT <location>?digest= carrying the blob, or for blobs above the chunk size PATCH chunks
 * with Content-Range (each answer's Location is the next URL) and an empty closing PUT.
 * Without a configured chunk size a blob goes in one request; a 413 to it (a request size
 * limit, usually a proxy's) restarts it in a new session in chunks, for good. A blob read
 * from a stream (push's second pass) cannot be restarted once bytes went out: those
 * switches then end the upload with -ESPIPE and the caller starts it over. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cocoon/log.h"
#include "epoch-internal.h"

enum blob_op { BLOB_HEAD, BLOB_GET, BLOB_PUT };

enum put_step {
	PUT_MONOLITHIC, /* PUT /blobs/<digest> */
	PUT_POST,       /* POST /blobs/uploads/ */
	PUT_PATCH,      /* PATCH <location>, one chunk */
	PUT_CLOSE,      /* PUT <location>?digest= (with the blob when it fits one request) */
};

struct blob_state {
	enum blob_op op;
	struct xfer x;
	char *name;
	char digest[DIGEST_STR_SIZE];
	uint64_t size;
	/* GET */
	EVP_MD_CTX *md;
	uint64_t received;
	epoch_data_fn on_data;
	bool fetch; /* into mem */
	struct buf mem;
	/* PUT */
	int fd;
	const void *body;
	epoch_read_fn read;
	void *read_userdata;
	enum put_step step;
	uint64_t offset; /* bytes the session already holds */
	char *location;
	epoch_progress_fn progress;
	void *progress_userdata;
};

static void blob_release(struct epoch_call *c)
{
	struct blob_state *s = c->state;

	if (!s)
		return;
	xfer_reset(&s->x);
	free(s->name);
	EVP_MD_CTX_free(s->md);
	buf_free(&s->mem);
	free(s->location);
	free(s);
}

static const struct call_ops blob_ops[] = {
	[BLOB_HEAD] = { "blob HEAD", blob_release },
	[BLOB_GET] = { "blob GET", blob_release },
	[BLOB_PUT] = { "blob upload", blob_release },
};

static void blob_on_done(struct xfer *x, struct httpc_response *resp, void *userdata);

static int blob_new(struct epoch_registry *r, enum blob_op op, const char *name, const char *digest,
		    epoch_done_fn done, void *userdata, struct epoch_call **ret)
{
	struct blob_state *s;
	struct epoch_call *c;
	int k;

	if (!r || !epoch_name_valid(name) || !epoch_digest_valid(digest))
		return -EINVAL;
	k = call_new(r, &blob_ops[op], done, userdata, &c);
	if (k < 0)
		return k;
	c->state = s = calloc(1, sizeof *s);
	if (!s || !(s->name = strdup(name))) {
		epoch_call_cancel(c);
		return -ENOMEM;
	}
	s->op = op;
	s->fd = -EBADF;
	strcpy(s->digest, digest);
	xfer_init(&s->x, r);
	*ret = c;
	return 0;
}

/* Aim the xfer at url (taken) and send it. */
static int blob_request(struct epoch_call *c, enum httpc_method m, char *url, bool write)
{
	struct blob_state *s = c->state;
	int k;

	xfer_reset(&s->x);
	s->x.url = url;
	s->x.method = m;
	s->x.done = blob_on_done;
	s->x.userdata = c;
	k = scope_for(s->name, write, &s->x.scope);
	return k < 0 ? k : 0;
}

static int blob_start_call(struct epoch_call *c, int k, struct epoch_call **ret)
{
	struct blob_state *s = c->state;

	if (k >= 0)
		k = xfer_start(&s->x);
	if (k < 0) {
		epoch_call_cancel(c);
		return k;
	}
	if (ret)
		*ret = c;
	return 0;
}

int epoch_blob_head(struct epoch_registry *r, const char *name, const char *digest,
		    epoch_done_fn done, void *userdata, struct epoch_call **ret)
{
	struct blob_state *s;
	struct epoch_call *c;
	char *url = NULL;
	int k;

	k = blob_new(r, BLOB_HEAD, name, digest, done, userdata, &c);
	if (k < 0)
		return k;
	s = c->state;
	k = registry_url(r, &url, "%s/blobs/%s", name, digest);
	if (k >= 0)
		k = blob_request(c, HTTPC_HEAD, url, false);
	/* Registries that redirect blob GETs to their storage (docker-registry on S3, epoch's
	 * presigned URLs) may redirect HEADs too: the answer is at the end of the chain. */
	s->x.follow_redirects = true;
	return blob_start_call(c, k, ret);
}

/* ---- download ---- */

static int blob_on_data(struct httpc_request *req, const struct httpc_response *resp, const void *p,
			size_t n, void *userdata)
{
	struct xfer *x = userdata; /* httpc hands the xfer to every callback */
	struct epoch_call *c = x->userdata;
	struct blob_state *s = c->state;
	const char *cl = httpc_response_header(resp, "Content-Length", 0);
	int k;

	if (s->received == 0 && cl && strtoull(cl, NULL, 10) != s->size)
		return call_fail(c, EBADMSG,
				 "%s: the registry sends %s bytes for blob %s, the manifest says "
				 "%" PRIu64,
				 s->x.url, cl, s->digest, s->size);
	if (n > s->size - s->received)
		return call_fail(c, EBADMSG,
				 "%s: blob %s is longer than the %" PRIu64
				 " bytes the manifest says",
				 s->x.url, s->digest, s->size);
	if (s->fetch)
		k = buf_append(&s->mem, p, n);
	else
		k = s->on_data(p, n, c->userdata);
	if (k == -EAGAIN)
		return k;
	if (k < 0)
		return call_fail(c, k, "%s: blob %s: the consumer failed: %s", s->x.url, s->digest,
				 strerror(-k));
	if (!EVP_DigestUpdate(s->md, p, n))
		return call_fail(c, EIO, "sha256 failed");
	s->received += n;
	return 0;
}

/* After a 2xx GET: exactly size bytes with the right sha256? */
static int blob_verify(struct epoch_call *c)
{
	struct blob_state *s = c->state;
	unsigned char md[32];
	unsigned int len = 0;
	char got[DIGEST_STR_SIZE];

	if (s->received != s->size)
		return call_fail(c, EBADMSG,
				 "%s: blob %s is truncated: %" PRIu64 " of %" PRIu64
				 " bytes arrived",
				 s->x.url, s->digest, s->received, s->size);
	if (!EVP_DigestFinal_ex(s->md, md, &len) || len != 32)
		return call_fail(c, EIO, "sha256 failed");
	digest_format(md, got);
	if (!streq(got, s->digest))
		return call_fail(c, EBADMSG, "%s: blob %s is corrupt: its bytes hash to %s",
				 s->x.url, s->digest, got);
	c->reply.size = c->reply.moved = s->size;
	if (s->fetch) {
		c->reply.body = s->mem.data ?: "";
		c->reply.body_len = s->mem.len;
	}
	return 0;
}

static int blob_get_start(struct epoch_registry *r, const char *name, const char *digest,
			  uint64_t size, epoch_data_fn on_data, bool fetch, epoch_done_fn done,
			  void *userdata, struct epoch_call **ret)
{
	struct blob_state *s;
	struct epoch_call *c;
	char *url = NULL;
	int k;

	k = blob_new(r, BLOB_GET, name, digest, done, userdata, &c);
	if (k < 0)
		return k;
	s = c->state;
	s->size = size;
	s->on_data = on_data;
	s->fetch = fetch;
	s->mem = BUF_INIT(EPOCH_SNAPSHOT_CONFIG_MAX);
	s->md = EVP_MD_CTX_new();
	k = s->md && EVP_DigestInit_ex(s->md, EVP_sha256(), NULL) ? 0 : -ENOMEM;
	if (k >= 0)
		k = registry_url(r, &url, "%s/blobs/%s", name, digest);
	if (k >= 0)
		k = blob_request(c, HTTPC_GET, url, false);
	s->x.follow_redirects = true;
	s->x.on_data = blob_on_data;
	return blob_start_call(c, k, ret);
}

int epoch_blob_get(struct epoch_registry *r, const char *name, const char *digest, uint64_t size,
		   epoch_data_fn on_data, epoch_done_fn done, void *userdata,
		   struct epoch_call **ret)
{
	if (!on_data)
		return -EINVAL;
	return blob_get_start(r, name, digest, size, on_data, false, done, userdata, ret);
}

int epoch_blob_fetch(struct epoch_registry *r, const char *name, const char *digest, uint64_t size,
		     epoch_done_fn done, void *userdata, struct epoch_call **ret)
{
	if (size > EPOCH_SNAPSHOT_CONFIG_MAX)
		return -E2BIG;
	return blob_get_start(r, name, digest, size, NULL, true, done, userdata, ret);
}

int epoch_call_resume(struct epoch_call *c)
{
	struct blob_state *s;

	if (!c || (c->ops != &blob_ops[BLOB_GET] && c->ops != &blob_ops[BLOB_PUT]))
		return -EINVAL;
	s = c->state;
	return xfer_resume(&s->x);
}

/* ---- upload ---- */

static void blob_on_sent(uint64_t bytes, void *userdata)
{
	struct epoch_call *c = userdata;
	struct blob_state *s = c->state;
	struct epoch_progress p = {
		.what = s->digest,
		.done = s->offset + s->x.body_pos,
		.total = s->size,
	};

	if (s->progress)
		s->progress(&p, s->progress_userdata);
}

/* Attach bytes [from, from + len) of the blob as the request body. */
static void blob_attach(struct blob_state *s, uint64_t from, uint64_t len)
{
	s->x.on_sent = blob_on_sent;
	if (s->read) {
		s->x.body_read = s->read;
		s->x.body_read_userdata = s->read_userdata;
		s->x.body_fd_len = len;
	} else if (s->fd >= 0) {
		s->x.body_fd = s->fd;
		s->x.body_off = from;
		s->x.body_fd_len = len;
	} else {
		s->x.body = (const char *)s->body + from;
		s->x.body_len = len;
		/* httpc needs a non-NULL body pointer even for zero bytes */
		if (!s->body)
			s->x.body = "";
	}
}

static int blob_put_step(struct epoch_call *c)
{
	struct blob_state *s = c->state;
	uint64_t chunk = registry_chunk_size(c->reg);
	char *url = NULL;
	int k;

	switch (s->step) {
	case PUT_MONOLITHIC:
		k = registry_url(c->reg, &url, "%s/blobs/%s", s->name, s->digest);
		if (k >= 0)
			k = blob_request(c, HTTPC_PUT, url, true);
		if (k >= 0)
			blob_attach(s, 0, s->size);
		break;
	case PUT_POST:
		k = registry_url(c->reg, &url, "%s/blobs/uploads/", s->name);
		if (k >= 0)
			k = blob_request(c, HTTPC_POST, url, true);
		break;
	case PUT_PATCH: {
		uint64_t n = MIN(chunk, s->size - s->offset);

		k = blob_request(c, HTTPC_PATCH, strdup(s->location), true);
		if (k >= 0 && !s->x.url)
			k = -ENOMEM;
		if (k >= 0)
			k = xfer_add_header(&s->x, "Content-Range: %" PRIu64 "-%" PRIu64, s->offset,
					    s->offset + n - 1);
		if (k >= 0)
			blob_attach(s, s->offset, n);
		break;
	}
	case PUT_CLOSE:
		/* sha256%3A: the ':' escaped as Go's url.Values does */
		if (asprintf(&url, "%s%cdigest=sha256%%3A%s", s->location,
			     strchr(s->location, '?') ? '&' : '?', s->digest + 7) < 0)
			return -ENOMEM;
		k = blob_request(c, HTTPC_PUT, url, true);
		if (k >= 0)
			blob_attach(s, s->offset, s->size - s->offset);
		break;
	default:
		return -EINVAL;
	}
	if (k >= 0 && s->step != PUT_POST)
		k = xfer_add_header(&s->x, "Content-Type: " EPOCH_MT_OCTET_STREAM);
	return k < 0 ? k : xfer_start(&s->x);
}

/* The registry wants the blob again, from a stream that gave part of it already. */
static int blob_fail_streamed(struct epoch_call *c, const struct httpc_response *resp)
{
	struct blob_state *s = c->state;

	return call_fail(c, ESPIPE,
			 "%s: %ld after %" PRIu64 " streamed bytes; the blob must be sent again",
			 s->x.url, resp->status, s->offset + s->x.body_pos);
}

/* The answer to one upload request; returns 1 when the next request is under way. */
static int blob_put_continue(struct epoch_call *c, struct httpc_response *resp)
{
	struct blob_state *s = c->state;
	const char *loc = httpc_response_header(resp, "Location", 0);
	const char *dcd = httpc_response_header(resp, "Docker-Content-Digest", 0);
	bool ok = resp->error == 0 && resp->status >= 200 && resp->status < 300;
	uint64_t carried = s->x.body_fd >= 0 || s->read ? s->x.body_fd_len : s->x.body_len;
	/* stream bytes handed out so far: a new request cannot have them again */
	uint64_t streamed = s->read ? s->offset + s->x.body_pos : 0;
	_cleanup_(freep) char *what = xfer_describe(&s->x, resp);
	int k;

	if (!ok && resp->error == 0 && resp->status == 413 && carried > 0 &&
	    registry_chunk_after_413(c->reg)) {
		/* a request size limit (a proxy's, often): the blob again, in a new session */
		log_debug("%s: 413, uploading in chunks of %" PRIu64 " bytes from now on", s->x.url,
			  registry_chunk_size(c->reg));
		registry_set_upload_mode(c->reg, UPLOAD_SESSION);
		if (streamed > 0)
			return blob_fail_streamed(c, resp);
		s->offset = 0;
		s->step = PUT_POST;
	} else if (s->step == PUT_MONOLITHIC && !ok && resp->error == 0 &&
		   registry_upload_mode(c->reg) == UPLOAD_UNKNOWN &&
		   (resp->status == 404 || resp->status == 405 || resp->status == 400)) {
		log_debug("%s: no monolithic blob PUT here, using upload sessions", s->x.url);
		registry_set_upload_mode(c->reg, UPLOAD_SESSION);
		if (streamed > 0)
			return blob_fail_streamed(c, resp);
		s->step = PUT_POST;
	} else if (!ok) {
		return call_fail(c, resp->error ?: -EIO, "%s", what);
	} else if (s->step == PUT_MONOLITHIC || s->step == PUT_CLOSE) {
		if (dcd && epoch_digest_valid(dcd) && !streq(dcd, s->digest))
			return call_fail(c, EBADMSG, "%s: the registry stored the blob as %s",
					 s->x.url, dcd);
		if (s->step == PUT_MONOLITHIC)
			registry_set_upload_mode(c->reg, UPLOAD_MONOLITHIC);
		c->reply.size = c->reply.moved = s->size;
		c->reply.digest = s->digest;
		return 0;
	} else {
		/* POST and PATCH answer with the URL of the next request. */
		if (!loc)
			return call_fail(c, EBADMSG, "%s: %ld without a Location header", s->x.url,
					 resp->status);
		free(s->location);
		s->location = NULL;
		k = registry_resolve(c->reg, loc, &s->location);
		if (k < 0)
			return call_fail(c, k, "%s: unusable Location \"%.200s\"", s->x.url, loc);
		if (s->step == PUT_PATCH)
			s->offset += carried;
		s->step = s->size - s->offset > registry_chunk_size(c->reg) ? PUT_PATCH : PUT_CLOSE;
	}
	k = blob_put_step(c);
	if (k < 0)
		return call_fail(c, k, "cannot continue uploading %s: %s", s->digest, strerror(-k));
	return 1;
}

static void blob_on_done(struct xfer *x, struct httpc_response *resp, void *userdata)
{
	struct epoch_call *c = userdata;
	struct blob_state *s = c->state;
	bool ok = resp->error == 0 && resp->status >= 200 && resp->status < 300;

	c->reply.status = resp->status;
	if (s->op == BLOB_PUT) {
		if (blob_put_continue(c, resp) > 0)
			return;
	} else if (c->reply.error < 0) {
		/* a data callback already said what went wrong */
	} else if (s->op == BLOB_HEAD && resp->error == 0 && resp->status == 404) {
		c->reply.found = false;
	} else if (!ok) {
		_cleanup_(freep) char *what = xfer_describe(x, resp);

		call_fail(c, resp->error ?: (resp->status == 404 ? -ENOENT : -EIO), "%s", what);
	} else if (s->op == BLOB_HEAD) {
		const char *cl = httpc_response_header(resp, "Content-Length", 0);

		c->reply.found = true;
		c->reply.size = cl ? strtoull(cl, NULL, 10) : 0;
		c->reply.digest = s->digest;
	} else {
		blob_verify(c);
	}
	call_finish(c);
}

static int blob_put_start(struct epoch_call *c, struct epoch_call **ret)
{
	struct blob_state *s = c->state;
	int k;

	s->step = registry_upload_mode(c->reg) == UPLOAD_SESSION ? PUT_POST : PUT_MONOLITHIC;
	k = blob_put_step(c);
	if (k < 0) {
		epoch_call_cancel(c);
		return k;
	}
	if (ret)
		*ret = c;
	return 0;
}

/* An upload handle for size bytes; the caller sets the source, then blob_put_start(). */
static int blob_put_new(struct epoch_registry *r, const char *name, const char *digest,
			uint64_t size, epoch_progress_fn progress, void *progress_ud,
			epoch_done_fn done, void *userdata, struct epoch_call **ret)
{
	struct blob_state *s;
	int k;

	k = blob_new(r, BLOB_PUT, name, digest, done, userdata, ret);
	if (k < 0)
		return k;
	s = (*ret)->state;
	s->size = size;
	s->progress = progress;
	s->progress_userdata = progress_ud;
	return 0;
}

int epoch_blob_put(struct epoch_registry *r, const char *name, const char *digest, int fd,
		   const void *mem, uint64_t size, epoch_progress_fn progress, void *progress_ud,
		   epoch_done_fn done, void *userdata, struct epoch_call **ret)
{
	struct blob_state *s;
	struct epoch_call *c;
	int k;

	if (fd < 0 && !mem && size > 0)
		return -EINVAL;
	k = blob_put_new(r, name, digest, size, progress, progress_ud, done, userdata, &c);
	if (k < 0)
		return k;
	s = c->state;
	s->fd = fd;
	s->body = mem;
	return blob_put_start(c, ret);
}

int epoch_blob_put_stream(struct epoch_registry *r, const char *name, const char *digest,
			  uint64_t size, epoch_read_fn read, void *read_userdata,
			  epoch_progress_fn progress, void *progress_ud, epoch_done_fn done,
			  void *userdata, struct epoch_call **ret)
{
	struct blob_state *s;
	struct epoch_call *c;
	int k;

	if (!read)
		return -EINVAL;
	k = blob_put_new(r, name, digest, size, progress, progress_ud, done, userdata, &c);
	if (k < 0)
		return k;
	s = c->state;
	s->read = read;
	s->read_userdata = read_userdata;
	return blob_put_start(c, ret);
}
