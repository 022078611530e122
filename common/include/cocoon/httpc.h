/* HTTP(S) client on libcurl (OpenSSL build).
 *
 * Daemons drive it from their sd-event loop (httpc_new(): libcurl's multi interface, its
 * sockets and timer mapped onto sd-event sources); CLIs may use the blocking
 * httpc_perform_sync() with the same request and response structs. Users: the Kubernetes
 * client (REST and long-running watch streams), the Epoch/OCI registry client (streamed
 * blob upload/download of GiBs) and cloud metadata probes.
 *
 * A request is described by struct httpc_params (everything borrowed; httpc copies what it
 * keeps, so the params may live on the caller's stack). The outcome is a struct
 * httpc_response: the transport error (0 or -errno plus a readable message), the HTTP
 * status, the response headers and the body. An HTTP error status (404, 500, …) is not a
 * transport error: error is 0 and status says what happened.
 *
 * Transport errors (response->error):
 *   -ECONNREFUSED (or the socket's errno)  could not connect
 *   -EHOSTUNREACH  host name did not resolve
 *   -ETIMEDOUT     connect, total or low-speed timeout
 *   -EKEYREJECTED  the server's certificate did not verify
 *   -EPROTO        TLS handshake or HTTP protocol failure
 *   -EINVAL        unusable URL, CA, client certificate or key
 *   -E2BIG         response body above max_body, or headers above HTTPC_MAX_HEADER_BYTES
 *                  or HTTPC_MAX_HEADERS
 *   -ELOOP         more redirects than max_redirects
 *   -ESPIPE        a redirect needed the streamed body again
 *   -ECONNRESET, -EPIPE  connection lost before or during the response
 *   -ECANCELED     a blocking transfer cancelled from its own callback (a cancelled
 *                  request on the loop gets no callback at all)
 *   any -errno returned by the caller's read or data callback
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "cocoon/buf.h"
#include "cocoon/macro.h"

#define HTTPC_DEFAULT_MAX_BODY      (16U * 1024 * 1024)
#define HTTPC_MAX_HEADER_BYTES      (256U * 1024)
#define HTTPC_MAX_HEADERS           1024
#define HTTPC_DEFAULT_MAX_REDIRECTS 5

struct httpc;
struct httpc_request;

enum httpc_method {
	HTTPC_GET,
	HTTPC_POST,
	HTTPC_PUT,
	HTTPC_PATCH,
	HTTPC_DELETE,
	HTTPC_HEAD,
	_HTTPC_METHOD_MAX,
};

struct httpc_header {
	char *name;
	char *value;
};

struct httpc_response {
	int error;                    /* 0, or -errno: the transfer failed (table above) */
	char error_message[256];      /* "" when error is 0; curl's message or ours otherwise */
	long status;                  /* final HTTP status; 0 when no response arrived */
	char *url;                    /* the last URL fetched (after redirects), or NULL */
	struct httpc_header *headers; /* of the final response, in arrival order */
	size_t n_headers;
	struct buf body; /* the body, unless a data callback consumed it (see on_data) */
};

/* Streamed upload: copy up to size bytes of the request body into p. Return the number of
 * bytes written, 0 at the end of the body, -EAGAIN to pause the upload until
 * httpc_request_resume(), or another -errno to abort the request with that error. */
typedef ssize_t (*httpc_read_fn)(struct httpc_request *req, void *p, size_t size, void *userdata);

/* Streamed download: called with each chunk of a 2xx response body as it arrives (the
 * body is then not buffered). resp holds the status and headers. Return 0 when the chunk
 * was consumed, -EAGAIN to pause (the same chunk is offered again after
 * httpc_request_resume()), or another -errno to abort with that error. A non-2xx body
 * (e.g. a Kubernetes Status object) is buffered into resp->body instead, capped by
 * max_body, so the completion callback can decode it. */
typedef int (*httpc_data_fn)(struct httpc_request *req, const struct httpc_response *resp,
			     const void *p, size_t size, void *userdata);

/* Completion: called exactly once per request that was not cancelled. The response and
 * the request handle are freed when it returns; take the body with buf_steal(&resp->body)
 * to keep it. */
typedef void (*httpc_done_fn)(struct httpc_request *req, struct httpc_response *resp,
			      void *userdata);

struct httpc_tls {
	const char *ca_file;       /* trust only this CA bundle (PEM file)… */
	const char *ca_pem;        /* …or this one (PEM in memory); neither: the system store */
	const char *cert_file;     /* client certificate (PEM file)… */
	const char *cert_pem;      /* …or in memory */
	const char *key_file;      /* its private key (PEM file)… */
	const char *key_pem;       /* …or in memory */
	bool insecure_skip_verify; /* no peer or host name check: tests and probes only */
};

struct httpc_params {
	enum httpc_method method;
	const char *url; /* http:// or https:// only */
	/* NULL-terminated "Name: value" lines. "Name:" with no value removes a header curl
	 * would add (e.g. "Expect:"). A body without Content-Type is sent as
	 * application/octet-stream (curl would otherwise claim form data). */
	const char *const *headers;
	const char *bearer_token; /* → "Authorization: Bearer <token>" */

	/* Request body: from memory (copied) or streamed from read; at most one. */
	const void *body;
	size_t body_size;
	httpc_read_fn read;
	int64_t read_size; /* bytes read will produce; <= 0: unknown (sent chunked) */

	struct httpc_tls tls;

	uint64_t connect_timeout_usec; /* 0: curl's default (300 s) */
	uint64_t timeout_usec;         /* whole transfer; 0: none (watch streams) */
	/* Abort when fewer than low_speed_bytes per second arrive for low_speed_sec
	 * seconds: catches a dead watch stream without capping its length. */
	uint64_t low_speed_bytes;
	uint64_t low_speed_sec;

	size_t max_body; /* buffered body cap; 0: HTTPC_DEFAULT_MAX_BODY */

	/* Bulk transfers (GiB blobs): curl's receive and upload buffer sizes in bytes
	 * (CURLOPT_BUFFERSIZE, CURLOPT_UPLOAD_BUFFERSIZE; curl caps them at 10 MiB and 2 MiB),
	 * so the socket is read and written in larger pieces and the read callback fills more
	 * at a time (on_data still gets at most 16 KiB per call, curl's own limit). 0: curl's
	 * defaults (16 KiB and 64 KiB), right for small requests and many streams. */
	size_t buffer_size;

	/* Follow 3xx redirects (http and https only). The Authorization header is never
	 * forwarded to another host, port or scheme (curl's rule while
	 * CURLOPT_UNRESTRICTED_AUTH is off, which httpc never turns on). */
	bool follow_redirects;
	unsigned max_redirects; /* 0: HTTPC_DEFAULT_MAX_REDIRECTS */

	httpc_data_fn on_data; /* optional: stream the 2xx body instead of buffering it */
	httpc_done_fn on_done; /* required for httpc_request_start(), unused by sync */
	void *userdata;
};

int httpc_new(sd_event *e, struct httpc **ret);
/* Cancels every request still running (their callbacks are not called). Not from inside
 * an httpc callback. */
struct httpc *httpc_free(struct httpc *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct httpc *, httpc_free)

/* Start a request on the loop. -EINVAL when the params are unusable (the reason is
 * logged at debug). ret (may be NULL) receives a handle that stays valid until on_done
 * returns or the request is cancelled; httpc owns it. */
int httpc_request_start(struct httpc *c, const struct httpc_params *p, struct httpc_request **ret);
/* Stop a request: no further callbacks, the handle is gone. Safe from any httpc callback,
 * including this request's own; a no-op inside its on_done. */
void httpc_request_cancel(struct httpc_request *req);
/* Continue a transfer paused by a read or data callback returning -EAGAIN. */
int httpc_request_resume(struct httpc_request *req);

/* Blocking transfer (CLIs only, never on an event loop). Returns -EINVAL for unusable
 * params and -ENOMEM; otherwise 0 with *ret set, and (*ret)->error tells whether the
 * transfer worked. Read and data callbacks work as above, except that -EAGAIN aborts. */
int httpc_perform_sync(const struct httpc_params *p, struct httpc_response **ret);

/* The n-th (0-based) value of a response header, case-insensitive name, or NULL. */
const char *httpc_response_header(const struct httpc_response *r, const char *name, size_t n);
struct httpc_response *httpc_response_free(struct httpc_response *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct httpc_response *, httpc_response_free)

const char *httpc_method_to_string(enum httpc_method m);
