/* libepoch internals shared between its files (not for users of the library). */
#pragma once

#include <openssl/evp.h>

#include "cocoon/buf.h"
#include "cocoon/httpc.h"
#include "epoch.h"

/* "sha256:" + 64 hex + NUL */
#define DIGEST_STR_SIZE 72

/* ---- manifest.c ---- */

void digest_format(const unsigned char md[32], char out[static DIGEST_STR_SIZE]);
int digest_of(const void *p, size_t n, char out[static DIGEST_STR_SIZE]);
/* RFC 3339 UTC with seconds, "2026-04-24T10:00:00Z". */
void time_now_rfc3339(char out[static 32]);
/* printf into a newly allocated *ret_error (may be NULL); returns -EBADMSG. */
int fail_msg(char **ret_error, const char *fmt, ...) _printf_(2, 3);

/* ---- registry.c: calls and the HTTP engine ---- */

struct call_ops {
	const char *name;
	/* Releases op-specific state; the call itself is freed by the caller. */
	void (*release)(struct epoch_call *c);
};

struct epoch_call {
	struct epoch_registry *reg;
	struct epoch_call *prev, *next; /* reg->calls */
	const struct call_ops *ops;
	epoch_done_fn done;
	void *userdata;
	struct epoch_call *parent, *sub; /* an operation driving another one */
	bool finishing;
	struct epoch_reply reply;
	char *message;
	void *state; /* op-specific, released by ops->release */
};

int call_new(struct epoch_registry *r, const struct call_ops *ops, epoch_done_fn done,
	     void *userdata, struct epoch_call **ret);
/* Report c's reply (after setting it) and free c. */
void call_finish(struct epoch_call *c);
/* Set reply.error and a message; returns error. */
int call_fail(struct epoch_call *c, int error, const char *fmt, ...) _printf_(3, 4);
/* Mark sub as driven by parent (cancelled with it). */
void call_adopt(struct epoch_call *parent, struct epoch_call *sub);

/* One HTTP exchange with the registry, retried once through the token flow on a 401 Bearer
 * challenge. Everything in it is owned by the xfer and freed by xfer_reset(). */
struct xfer;
typedef void (*xfer_done_fn)(struct xfer *x, struct httpc_response *resp, void *userdata);
typedef void (*xfer_sent_fn)(uint64_t bytes, void *userdata);

struct xfer {
	struct epoch_registry *reg;
	enum httpc_method method;
	char *url;
	char *scope; /* token scope, e.g. "repository:vm1:pull,push" */
	char *headers[6];
	const void *body; /* borrowed, copied by httpc */
	size_t body_len;
	int body_fd; /* >= 0: the body is body_fd_len bytes of this fd from body_off */
	uint64_t body_off, body_fd_len, body_pos;
	/* Or body_fd_len bytes from this stream, read once: a request that would need them
	 * again (a Bearer challenge after body_pos > 0) ends with -ESPIPE instead. */
	epoch_read_fn body_read;
	void *body_read_userdata;
	const void *body_mem; /* or memory streamed the same way */
	bool follow_redirects;
	size_t max_body;
	httpc_data_fn on_data; /* its userdata is this struct xfer */
	xfer_sent_fn on_sent;
	xfer_done_fn done;
	void *userdata;
	struct httpc_request *req, *token_req;
	bool auth_retried;
};

void xfer_init(struct xfer *x, struct epoch_registry *r);
/* Cancel what is in flight and free everything; x can be set up again. */
void xfer_reset(struct xfer *x);
int xfer_add_header(struct xfer *x, const char *fmt, ...) _printf_(2, 3);
int xfer_start(struct xfer *x);
int xfer_resume(struct xfer *x);
/* "METHOD URL: 404 MANIFEST_UNKNOWN: manifest unknown" from a response. */
char *xfer_describe(const struct xfer *x, const struct httpc_response *resp);
/* "<base>/v2/<path>", formatted. */
int registry_url(struct epoch_registry *r, char **ret, const char *fmt, ...) _printf_(3, 4);
/* The absolute form of a Location header (absolute or path-absolute). */
int registry_resolve(struct epoch_registry *r, const char *location, char **ret);
int scope_for(const char *name, bool write, char **ret);

enum upload_mode {
	UPLOAD_UNKNOWN,
	UPLOAD_MONOLITHIC, /* epoch: PUT /v2/<name>/blobs/<digest> */
	UPLOAD_SESSION,    /* OCI: POST + PATCH/PUT ?digest= */
};
enum upload_mode registry_upload_mode(struct epoch_registry *r);
void registry_set_upload_mode(struct epoch_registry *r, enum upload_mode m);
/* Upload-session chunk size; UINT64_MAX: each blob in one request. */
uint64_t registry_chunk_size(struct epoch_registry *r);
/* A request carrying blob bytes got 413 Payload Too Large: when no chunk size was configured,
 * switch the handle to chunks of EPOCH_CHUNK_SIZE_DEFAULT and return true (send it again);
 * false when chunks were in use already (nothing left to try). */
bool registry_chunk_after_413(struct epoch_registry *r);

/* ---- stream.c: pull plans ---- */

struct pull_item {
	struct buf prefix;                   /* written before the blob (a tar header) */
	const struct epoch_descriptor *blob; /* NULL: the prefix is all (trusted bytes) */
	size_t pad;                          /* zero bytes after the blob */
};

struct pull_plan {
	struct pull_item *items;
	size_t n_items;
	struct buf trailer; /* after the last item (the tar end-of-archive marker) */
	char **argv;        /* the importer, when not writing to an fd */
	const char *verb;   /* "snapshot import", for messages */
	uint64_t total;     /* blob bytes */
};
void pull_plan_done(struct pull_plan *p);
int pull_plan_add(struct pull_plan *p, struct pull_item **ret);

/* snapshot.c */
int snapshot_pull_plan(const struct epoch_manifest *m, const struct epoch_snapshot_config *cfg,
		       const struct epoch_pull_options *o, const char *local_name,
		       struct pull_plan *plan, char **ret_error);
/* cloudimg.c */
int cloudimg_pull_plan(const struct epoch_manifest *m, const struct epoch_pull_options *o,
		       const char *local_name, struct pull_plan *plan, char **ret_error);
/* argv = cocoon prefix (default {"cocoon"}) + the given words + NULL. */
int cocoon_argv(const char *const *cocoon, char ***ret, ...);
