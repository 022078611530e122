/* HTTP(S) client: libcurl's multi interface driven by sd-event, plus a blocking wrapper on
 * the easy interface for CLIs. See httpc.h.
 *
 * This file owns the mapping between libcurl and the loop: CURLMOPT_SOCKETFUNCTION asks for
 * the sockets to watch (one sd-event io source each, remembered as the socket's curl
 * "socketp"), CURLMOPT_TIMERFUNCTION for the single timeout (one sd-event time source), and
 * both feed curl_multi_socket_action(). libcurl forbids adding or removing easy handles from
 * inside its own callbacks, so starting or cancelling a request while curl is on the stack
 * (c->in_curl) only marks it; httpc_process() applies the marks once curl has returned. */
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>

#include "cocoon/httpc.h"
#include "cocoon/log.h"
#include "cocoon/loop.h"

enum request_state {
	REQUEST_QUEUED,     /* waiting for curl to be off the stack to be added */
	REQUEST_RUNNING,    /* in the multi handle (or in curl_easy_perform) */
	REQUEST_COMPLETING, /* its on_done is running */
	REQUEST_CANCELLED,  /* to be removed without callbacks */
};

struct httpc_socket {
	struct httpc *httpc;
	sd_event_source *source;
	struct httpc_socket *prev, *next;
};

struct httpc {
	sd_event *event;
	CURLM *multi;
	sd_event_source *timer;
	struct httpc_request *requests;
	struct httpc_socket *sockets;
	unsigned in_curl; /* > 0 while a curl_multi or curl_easy_pause call is on the stack */
	bool processing;  /* httpc_process() is on the stack (its callbacks may recurse) */
};

struct httpc_request {
	struct httpc *httpc; /* NULL for a blocking transfer */
	struct httpc_request *prev, *next;
	enum request_state state;
	CURL *easy;
	struct curl_slist *headers;
	struct httpc_response *response;
	int error; /* set by our callbacks; wins over curl's code, which only says "aborted" */
	size_t max_body;
	size_t header_bytes;
	httpc_read_fn read;
	httpc_data_fn on_data;
	httpc_done_fn on_done;
	void *userdata;
	char curl_error[CURL_ERROR_SIZE];
};

static const char *const method_names[_HTTPC_METHOD_MAX] = {
	[HTTPC_GET] = "GET",     [HTTPC_POST] = "POST",     [HTTPC_PUT] = "PUT",
	[HTTPC_PATCH] = "PATCH", [HTTPC_DELETE] = "DELETE", [HTTPC_HEAD] = "HEAD",
};

const char *httpc_method_to_string(enum httpc_method m)
{
	if ((unsigned)m >= _HTTPC_METHOD_MAX)
		return NULL;
	return method_names[m];
}

static bool curl_initialized;

/* curl_global_init() is process-wide and may not run concurrently with other curl calls;
 * we have no threads, so the first user initializes and the destructor tears down (which
 * keeps valgrind's leak report clean of OpenSSL's global state). */
static int curl_init_once(void)
{
	if (curl_initialized)
		return 0;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -ENOMEM;
	curl_initialized = true;
	return 0;
}

__attribute__((destructor)) static void curl_fini(void)
{
	if (curl_initialized)
		curl_global_cleanup();
}

struct httpc_response *httpc_response_free(struct httpc_response *r)
{
	if (!r)
		return NULL;
	for (size_t i = 0; i < r->n_headers; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	free(r->headers);
	free(r->url);
	buf_free(&r->body);
	free(r);
	return NULL;
}

const char *httpc_response_header(const struct httpc_response *r, const char *name, size_t n)
{
	if (!r || !name)
		return NULL;
	for (size_t i = 0; i < r->n_headers; i++)
		if (strcasecmp(r->headers[i].name, name) == 0 && n-- == 0)
			return r->headers[i].value;
	return NULL;
}

static void response_clear_headers(struct httpc_response *r)
{
	for (size_t i = 0; i < r->n_headers; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	r->n_headers = 0;
}

/* Record the first failure of a request; later ones are consequences of it. */
_printf_(3, 4) static void request_fail(struct httpc_request *req, int error, const char *fmt, ...)
{
	va_list ap;

	if (req->error < 0)
		return;
	req->error = -ABS(error);
	va_start(ap, fmt);
	vsnprintf(req->response->error_message, sizeof req->response->error_message, fmt, ap);
	va_end(ap);
}

static int curl_code_to_errno(CURLcode code, long os_errno)
{
	switch (code) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_CONNECT:
		return os_errno > 0 ? -(int)os_errno : -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_PEER_FAILED_VERIFICATION:
		return -EKEYREJECTED;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_BAD_CONTENT_ENCODING:
		return -EPROTO;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_BAD_FUNCTION_ARGUMENT:
		return -EINVAL;
	case CURLE_TOO_MANY_REDIRECTS:
		return -ELOOP;
	case CURLE_SEND_FAIL_REWIND:
		return -ESPIPE;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_GOT_NOTHING:
		return -ECONNRESET;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
		return os_errno > 0 ? -(int)os_errno : -ECONNRESET;
	case CURLE_PARTIAL_FILE:
		return -EPIPE;
	default:
		return -EIO;
	}
}

/* Fill in what the response still lacks once curl is done with the transfer. */
static void request_finish(struct httpc_request *req, CURLcode code)
{
	struct httpc_response *resp = req->response;
	const char *url = NULL;
	long status = 0, os_errno = 0;

	if (curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
		resp->status = status;
	if (curl_easy_getinfo(req->easy, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK && url)
		resp->url = strdup(url);
	if (req->state == REQUEST_CANCELLED)
		request_fail(req, ECANCELED, "request cancelled");
	if (req->error < 0) {
		resp->error = req->error;
		return;
	}
	if (code == CURLE_OK)
		return;
	(void)curl_easy_getinfo(req->easy, CURLINFO_OS_ERRNO, &os_errno);
	resp->error = curl_code_to_errno(code, os_errno);
	snprintf(resp->error_message, sizeof resp->error_message, "%s",
		 req->curl_error[0] ? req->curl_error : curl_easy_strerror(code));
}

/* "Name: value" of the final response. A status line starts a new response (after 1xx
 * interim replies and followed redirects), so the headers collected so far are dropped. */
static int request_add_header_line(struct httpc_request *req, const char *p, size_t n)
{
	struct httpc_response *resp = req->response;
	const char *colon, *v, *end = p + n;
	struct httpc_header *h;
	char *folded;

	while (end > p && strchr(" \t\r\n", end[-1]))
		end--;
	if (end == p)
		return 0;
	if (end - p >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		response_clear_headers(resp);
		return 0;
	}
	if (strchr(" \t", *p)) { /* obsolete line folding: continues the previous value */
		if (resp->n_headers == 0)
			return 0;
		h = &resp->headers[resp->n_headers - 1];
		while (p < end && strchr(" \t", *p))
			p++;
		if (asprintf(&folded, "%s %.*s", h->value, (int)(end - p), p) < 0)
			return -ENOMEM;
		free(h->value);
		h->value = folded;
		return 0;
	}
	colon = memchr(p, ':', end - p);
	if (!colon || colon == p)
		return 0; /* not a header line; curl already judged the response usable */
	if (resp->n_headers >= HTTPC_MAX_HEADERS)
		return -E2BIG;
	if (resp->n_headers % 16 == 0) {
		h = reallocarray(resp->headers, resp->n_headers + 16, sizeof *h);
		if (!h)
			return -ENOMEM;
		resp->headers = h;
	}
	for (v = colon + 1; v < end && strchr(" \t", *v); v++)
		;
	h = &resp->headers[resp->n_headers];
	h->name = strndup(p, colon - p);
	h->value = strndup(v, end - v);
	if (!h->name || !h->value) {
		free(h->name);
		free(h->value);
		return -ENOMEM;
	}
	resp->n_headers++;
	return 0;
}

static size_t request_on_header(char *p, size_t size, size_t nmemb, void *userdata)
{
	struct httpc_request *req = userdata;
	size_t n = size * nmemb;
	int r;

	if (req->state == REQUEST_CANCELLED)
		return CURL_WRITEFUNC_ERROR;
	req->header_bytes += n;
	if (req->header_bytes > HTTPC_MAX_HEADER_BYTES) {
		request_fail(req, E2BIG, "response headers exceed %u bytes",
			     HTTPC_MAX_HEADER_BYTES);
		return CURL_WRITEFUNC_ERROR;
	}
	r = request_add_header_line(req, p, n);
	if (r == -E2BIG) {
		request_fail(req, r, "response has more than %d headers", HTTPC_MAX_HEADERS);
		return CURL_WRITEFUNC_ERROR;
	}
	if (r < 0) {
		request_fail(req, r, "storing a response header: %s", strerror(-r));
		return CURL_WRITEFUNC_ERROR;
	}
	return n;
}

static size_t request_on_write(char *p, size_t size, size_t nmemb, void *userdata)
{
	struct httpc_request *req = userdata;
	struct httpc_response *resp = req->response;
	size_t n = size * nmemb;
	long status = 0;
	int r;

	if (req->state == REQUEST_CANCELLED)
		return CURL_WRITEFUNC_ERROR;
	if (curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
		resp->status = status;

	if (req->on_data && status >= 200 && status < 300) {
		r = req->on_data(req, resp, p, n, req->userdata);
		if (req->state == REQUEST_CANCELLED)
			return CURL_WRITEFUNC_ERROR;
		if (r == -EAGAIN && req->httpc)
			return CURL_WRITEFUNC_PAUSE;
		if (r == -EAGAIN) {
			request_fail(req, r, "data callback paused a blocking transfer");
			return CURL_WRITEFUNC_ERROR;
		}
		if (r < 0) {
			request_fail(req, r, "data callback failed: %s", strerror(-r));
			return CURL_WRITEFUNC_ERROR;
		}
		return n;
	}

	r = buf_append(&resp->body, p, n);
	if (r == -E2BIG) {
		request_fail(req, r, "response body exceeds the cap of %zu bytes", req->max_body);
		return CURL_WRITEFUNC_ERROR;
	}
	if (r < 0) {
		request_fail(req, r, "storing the response body: %s", strerror(-r));
		return CURL_WRITEFUNC_ERROR;
	}
	return n;
}

static size_t request_on_read(char *p, size_t size, size_t nmemb, void *userdata)
{
	struct httpc_request *req = userdata;
	size_t n = size * nmemb;
	ssize_t k;

	if (req->state == REQUEST_CANCELLED)
		return CURL_READFUNC_ABORT;
	k = req->read(req, p, n, req->userdata);
	if (req->state == REQUEST_CANCELLED)
		return CURL_READFUNC_ABORT;
	if (k == -EAGAIN && req->httpc)
		return CURL_READFUNC_PAUSE;
	if (k == -EAGAIN) {
		request_fail(req, EAGAIN, "read callback paused a blocking transfer");
		return CURL_READFUNC_ABORT;
	}
	if (k < 0) {
		request_fail(req, (int)k, "read callback failed: %s", strerror((int)-k));
		return CURL_READFUNC_ABORT;
	}
	if ((size_t)k > n) {
		request_fail(req, EINVAL, "read callback returned %zd bytes for a %zu-byte buffer",
			     k, n);
		return CURL_READFUNC_ABORT;
	}
	return (size_t)k;
}

/* A header line we pass to curl must be one line with a token before the colon
 * (RFC 9110 §5.1); anything else could smuggle a second header or request. */
static bool header_line_valid(const char *h)
{
	const char *colon = strchr(h, ':');

	if (!colon || colon == h)
		return false;
	for (const char *s = h; s < colon; s++)
		if (!strchr("!#$%&'*+-.^_`|~", *s) && !(*s >= '0' && *s <= '9') &&
		    !(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z'))
			return false;
	for (const char *s = colon; *s; s++)
		if ((unsigned char)*s < 0x20 && *s != '\t')
			return false;
	return true;
}

static bool header_has_name(const char *h, const char *name)
{
	size_t n = strlen(name);

	return strncasecmp(h, name, n) == 0 && h[n] == ':';
}

static int request_build_headers(struct httpc_request *req, const struct httpc_params *p,
				 bool has_body)
{
	bool content_type = false;
	struct curl_slist *l;

	for (size_t i = 0; p->headers && p->headers[i]; i++) {
		const char *h = p->headers[i];

		if (!header_line_valid(h))
			return log_debug_errno(EINVAL, "header %zu is not a \"Name: value\" line",
					       i);
		if (p->bearer_token && header_has_name(h, "Authorization"))
			return log_debug_errno(EINVAL,
					       "header %zu sets Authorization and so does "
					       "bearer_token",
					       i);
		content_type = content_type || header_has_name(h, "Content-Type");
		l = curl_slist_append(req->headers, h);
		if (!l)
			return -ENOMEM;
		req->headers = l;
	}
	if (p->bearer_token) {
		_cleanup_(freep) char *h = NULL;

		if (asprintf(&h, "Authorization: Bearer %s", p->bearer_token) < 0)
			return -ENOMEM;
		if (!header_line_valid(h))
			return log_debug_errno(EINVAL, "bearer token contains control characters");
		l = curl_slist_append(req->headers, h);
		if (!l)
			return -ENOMEM;
		req->headers = l;
	}
	if (has_body && !content_type) {
		l = curl_slist_append(req->headers, "Content-Type: application/octet-stream");
		if (!l)
			return -ENOMEM;
		req->headers = l;
	}
	return 0;
}

/* Setting a string option only fails for lack of memory (curl copies it). */
static int curl_ok(CURLcode cc)
{
	return cc == CURLE_OK ? 0 : -ENOMEM;
}

static int set_blob(CURL *easy, CURLoption opt, const char *pem)
{
	struct curl_blob blob = {
		.data = (void *)pem,
		.len = strlen(pem),
		.flags = CURL_BLOB_COPY,
	};

	return curl_ok(curl_easy_setopt(easy, opt, &blob));
}

static int request_setup_tls(struct httpc_request *req, const struct httpc_tls *t)
{
	CURL *e = req->easy;
	int r = 0;

	if ((t->ca_file && t->ca_pem) || (t->cert_file && t->cert_pem) ||
	    (t->key_file && t->key_pem))
		return log_debug_errno(EINVAL, "TLS option given both as a file and as PEM");
	if ((t->key_file || t->key_pem) && !t->cert_file && !t->cert_pem)
		return log_debug_errno(EINVAL, "TLS client key given without a certificate");

	(void)curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (t->ca_file || t->ca_pem) {
		/* Trust exactly the configured CA: drop the built-in bundle and directory,
		 * which would otherwise be consulted as well. */
		(void)curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
		(void)curl_easy_setopt(e, CURLOPT_CAINFO, t->ca_file);
		if (t->ca_pem)
			r = set_blob(e, CURLOPT_CAINFO_BLOB, t->ca_pem);
	}
	if (r >= 0 && t->insecure_skip_verify) {
		(void)curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		(void)curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (r >= 0 && (t->cert_file || t->cert_pem)) {
		(void)curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
		if (t->cert_file)
			r = curl_ok(curl_easy_setopt(e, CURLOPT_SSLCERT, t->cert_file));
		else
			r = set_blob(e, CURLOPT_SSLCERT_BLOB, t->cert_pem);
	}
	if (r >= 0 && (t->key_file || t->key_pem)) {
		(void)curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
		if (t->key_file)
			r = curl_ok(curl_easy_setopt(e, CURLOPT_SSLKEY, t->key_file));
		else
			r = set_blob(e, CURLOPT_SSLKEY_BLOB, t->key_pem);
	}
	return r;
}

/* Bodies always go out as a POST-style upload with the method name overridden: that is
 * the one curl path that sends a body, from memory or a read callback, for any method.
 * POST/PUT/PATCH without a body send an empty one (Content-Length: 0), which registries
 * expect when closing an upload. */
static int request_setup_method(struct httpc_request *req, const struct httpc_params *p)
{
	CURL *e = req->easy;
	bool body = p->body || p->body_size || p->read || p->method == HTTPC_POST ||
		    p->method == HTTPC_PUT || p->method == HTTPC_PATCH;
	CURLcode cc = CURLE_OK;

	if (!body) {
		if (p->method == HTTPC_HEAD)
			return curl_ok(curl_easy_setopt(e, CURLOPT_NOBODY, 1L));
		if (p->method == HTTPC_GET)
			return 0;
		return curl_ok(curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method_names[p->method]));
	}
	(void)curl_easy_setopt(e, CURLOPT_POST, 1L);
	if (p->method != HTTPC_POST)
		cc = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method_names[p->method]);
	if (cc == CURLE_OK && p->read) {
		(void)curl_easy_setopt(e, CURLOPT_READFUNCTION, request_on_read);
		(void)curl_easy_setopt(e, CURLOPT_READDATA, req);
		/* -1 makes curl send Transfer-Encoding: chunked */
		cc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
				      (curl_off_t)(p->read_size <= 0 ? -1 : p->read_size));
	} else if (cc == CURLE_OK) {
		(void)curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->body_size);
		cc = curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, p->body ? p->body : "");
	}
	return curl_ok(cc);
}

static long usec_to_msec(uint64_t usec)
{
	/* round up so that a tiny timeout never turns into 0, which means "none" */
	return (long)MIN((usec + 999) / 1000, (uint64_t)LONG_MAX);
}

static void request_setup_limits(struct httpc_request *req, const struct httpc_params *p)
{
	CURL *e = req->easy;

	if (p->connect_timeout_usec)
		(void)curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
				       usec_to_msec(p->connect_timeout_usec));
	if (p->timeout_usec)
		(void)curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, usec_to_msec(p->timeout_usec));
	if (p->low_speed_bytes && p->low_speed_sec) {
		(void)curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT,
				       (long)MIN(p->low_speed_bytes, (uint64_t)LONG_MAX));
		(void)curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
				       (long)MIN(p->low_speed_sec, (uint64_t)LONG_MAX));
	}
	if (p->follow_redirects) {
		long max = p->max_redirects ? (long)p->max_redirects : HTTPC_DEFAULT_MAX_REDIRECTS;

		(void)curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
		(void)curl_easy_setopt(e, CURLOPT_MAXREDIRS, max);
		(void)curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	}
	if (p->buffer_size) {
		long n = (long)MIN(p->buffer_size, (size_t)LONG_MAX);

		/* curl clamps both to its own limits */
		(void)curl_easy_setopt(e, CURLOPT_BUFFERSIZE, n);
		(void)curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, n);
	}
	/* Explicit although it is curl's default: credentials stay with the first host. */
	(void)curl_easy_setopt(e, CURLOPT_UNRESTRICTED_AUTH, 0L);
	(void)curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	/* No SIGALRM for DNS timeouts: a daemon's signals belong to sd-event. */
	(void)curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	/* Notice a dead peer on a quiet watch stream. */
	(void)curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	(void)curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
	(void)curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 15L);
}

static int params_validate(const struct httpc_params *p)
{
	if (isempty(p->url))
		return log_debug_errno(EINVAL, "HTTP request without a URL");
	if ((unsigned)p->method >= _HTTPC_METHOD_MAX)
		return log_debug_errno(EINVAL, "HTTP request with unknown method %d",
				       (int)p->method);
	if (p->read && (p->body || p->body_size))
		return log_debug_errno(EINVAL, "%s %s: both a body and a read callback",
				       method_names[p->method], p->url);
	if (!p->body && p->body_size)
		return log_debug_errno(EINVAL, "%s %s: body_size %zu without a body",
				       method_names[p->method], p->url, p->body_size);
	if (p->method == HTTPC_HEAD && (p->body || p->read))
		return log_debug_errno(EINVAL, "HEAD %s: HEAD cannot carry a body", p->url);
	return 0;
}

static struct httpc_request *request_free(struct httpc_request *req)
{
	if (!req)
		return NULL;
	if (req->easy)
		curl_easy_cleanup(req->easy);
	curl_slist_free_all(req->headers);
	httpc_response_free(req->response);
	free(req);
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct httpc_request *, request_free)

static int request_new(struct httpc *c, const struct httpc_params *p, struct httpc_request **ret)
{
	_cleanup_(request_freep) struct httpc_request *req = NULL;
	CURL *e;
	int r;

	r = params_validate(p);
	if (r < 0)
		return r;
	r = curl_init_once();
	if (r < 0)
		return r;
	req = calloc(1, sizeof *req);
	if (!req)
		return -ENOMEM;
	req->httpc = c;
	req->max_body = p->max_body ? p->max_body : HTTPC_DEFAULT_MAX_BODY;
	req->read = p->read;
	req->on_data = p->on_data;
	req->on_done = p->on_done;
	req->userdata = p->userdata;
	req->response = calloc(1, sizeof *req->response);
	if (!req->response)
		return -ENOMEM;
	req->response->body = BUF_INIT(req->max_body);
	req->easy = e = curl_easy_init();
	if (!e)
		return -ENOMEM;

	r = curl_ok(curl_easy_setopt(e, CURLOPT_URL, p->url));
	if (r < 0)
		return r;
	r = request_setup_method(req, p);
	if (r < 0)
		return r;
	r = request_build_headers(req, p, p->body || p->read);
	if (r < 0)
		return r;
	r = request_setup_tls(req, &p->tls);
	if (r < 0)
		return r;
	request_setup_limits(req, p);
	(void)curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers);
	(void)curl_easy_setopt(e, CURLOPT_PRIVATE, req);
	(void)curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->curl_error);
	(void)curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, request_on_header);
	(void)curl_easy_setopt(e, CURLOPT_HEADERDATA, req);
	(void)curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, request_on_write);
	(void)curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
	*ret = TAKE_PTR(req);
	return 0;
}

int httpc_perform_sync(const struct httpc_params *p, struct httpc_response **ret)
{
	_cleanup_(request_freep) struct httpc_request *req = NULL;
	CURLcode code;
	int r;

	r = request_new(NULL, p, &req);
	if (r < 0)
		return r;
	req->state = REQUEST_RUNNING;
	code = curl_easy_perform(req->easy);
	request_finish(req, code);
	*ret = TAKE_PTR(req->response);
	return 0;
}

static void httpc_unlink(struct httpc *c, struct httpc_request *req)
{
	if (req->prev)
		req->prev->next = req->next;
	else
		c->requests = req->next;
	if (req->next)
		req->next->prev = req->prev;
	req->prev = req->next = NULL;
}

/* Only while curl is not on the stack. */
static void request_discard(struct httpc_request *req)
{
	struct httpc *c = req->httpc;

	/* harmless for a queued request, which curl reports as already removed */
	(void)curl_multi_remove_handle(c->multi, req->easy);
	httpc_unlink(c, req);
	request_free(req);
}

static void request_complete(struct httpc_request *req, CURLcode code)
{
	struct httpc *c = req->httpc;

	(void)curl_multi_remove_handle(c->multi, req->easy);
	request_finish(req, code);
	httpc_unlink(c, req);
	if (req->state != REQUEST_CANCELLED) {
		req->state = REQUEST_COMPLETING;
		req->on_done(req, req->response, req->userdata);
	}
	request_free(req);
}

static struct httpc_request *httpc_find_pending(struct httpc *c)
{
	for (struct httpc_request *req = c->requests; req; req = req->next)
		if (req->state == REQUEST_CANCELLED || req->state == REQUEST_QUEUED)
			return req;
	return NULL;
}

/* Hand finished transfers to their callbacks, then apply the starts and cancels that were
 * requested while curl (or this function) was on the stack. Callbacks may start or cancel
 * any request, so the list is searched afresh after each step. */
static void httpc_process(struct httpc *c)
{
	struct httpc_request *req;
	CURLMsg *msg;
	int left;

	if (c->in_curl || c->processing)
		return;
	c->processing = true;
	while ((msg = curl_multi_info_read(c->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		req = NULL;
		(void)curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&req);
		if (req)
			request_complete(req, msg->data.result);
	}
	while ((req = httpc_find_pending(c))) {
		if (req->state == REQUEST_CANCELLED) {
			request_discard(req);
			continue;
		}
		if (curl_multi_add_handle(c->multi, req->easy) == CURLM_OK) {
			req->state = REQUEST_RUNNING;
			continue;
		}
		request_fail(req, ENOMEM, "cannot add the transfer to curl");
		request_complete(req, CURLE_OUT_OF_MEMORY);
	}
	c->processing = false;
}

static void httpc_drive(struct httpc *c, curl_socket_t fd, int action)
{
	int running;
	CURLMcode mc;

	c->in_curl++;
	mc = curl_multi_socket_action(c->multi, fd, action, &running);
	c->in_curl--;
	if (mc != CURLM_OK)
		log_debug("curl_multi_socket_action failed: %s", curl_multi_strerror(mc));
	httpc_process(c);
}

static int httpc_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct httpc *c = userdata;
	int action = 0;

	if (revents & EPOLLIN)
		action |= CURL_CSELECT_IN;
	if (revents & EPOLLOUT)
		action |= CURL_CSELECT_OUT;
	if (revents & (EPOLLERR | EPOLLHUP))
		action |= CURL_CSELECT_ERR;
	httpc_drive(c, fd, action);
	return 0;
}

static int httpc_on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	httpc_drive(userdata, CURL_SOCKET_TIMEOUT, 0);
	return 0;
}

static void socket_free(struct httpc_socket *s)
{
	struct httpc *c = s->httpc;

	if (s->prev)
		s->prev->next = s->next;
	else
		c->sockets = s->next;
	if (s->next)
		s->next->prev = s->prev;
	sd_event_source_disable_unref(s->source);
	free(s);
}

/* CURLMOPT_SOCKETFUNCTION: watch fd for what curl asks; -1 makes curl fail the transfers
 * (the loop cannot watch their socket). */
static int httpc_on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userdata,
				void *socketp)
{
	struct httpc *c = userdata;
	struct httpc_socket *s = socketp;
	uint32_t events = 0;

	if (what == CURL_POLL_REMOVE) {
		if (s)
			socket_free(s);
		return 0;
	}
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		events |= EPOLLIN;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		events |= EPOLLOUT;
	if (s) {
		if (sd_event_source_set_io_events(s->source, events) < 0 ||
		    sd_event_source_set_enabled(s->source, SD_EVENT_ON) < 0)
			return -1;
		return 0;
	}
	s = calloc(1, sizeof *s);
	if (!s)
		return -1;
	if (sd_event_add_io(c->event, &s->source, fd, events, httpc_on_io, c) < 0) {
		free(s);
		return -1;
	}
	(void)sd_event_source_set_description(s->source, "httpc-socket");
	s->httpc = c;
	s->next = c->sockets;
	if (c->sockets)
		c->sockets->prev = s;
	c->sockets = s;
	if (curl_multi_assign(c->multi, fd, s) != CURLM_OK) {
		socket_free(s);
		return -1;
	}
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: one non-repeating timer; -1 deletes it, 0 means "as soon as
 * possible" (never call curl from inside this callback, so it always goes via the loop). */
static int httpc_on_curl_timer(CURLM *multi, long timeout_ms, void *userdata)
{
	struct httpc *c = userdata;
	uint64_t usec;
	int r;

	if (timeout_ms < 0)
		return sd_event_source_set_enabled(c->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
	usec = (uint64_t)timeout_ms * 1000;
	r = loop_timer_arm(c->timer, usec);
	return r < 0 ? -1 : 0;
}

struct httpc *httpc_free(struct httpc *c)
{
	if (!c)
		return NULL;
	while (c->requests)
		request_discard(c->requests);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	while (c->sockets)
		socket_free(c->sockets);
	sd_event_source_disable_unref(c->timer);
	sd_event_unref(c->event);
	free(c);
	return NULL;
}

int httpc_new(sd_event *e, struct httpc **ret)
{
	_cleanup_(httpc_freep) struct httpc *c = NULL;
	int r;

	if (!e)
		return -EINVAL;
	r = curl_init_once();
	if (r < 0)
		return r;
	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->event = sd_event_ref(e);
	/* 1 ms accuracy: sd-event's default of 250 ms would stall every transfer step
	 * curl schedules "as soon as possible". */
	r = sd_event_add_time_relative(e, &c->timer, CLOCK_MONOTONIC, 0, 1000, httpc_on_timer, c);
	if (r < 0)
		return r;
	(void)sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
	(void)sd_event_source_set_description(c->timer, "httpc-timer");
	c->multi = curl_multi_init();
	if (!c->multi)
		return -ENOMEM;
	if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, httpc_on_curl_socket) ||
	    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) ||
	    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, httpc_on_curl_timer) ||
	    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c))
		return -EIO;
	*ret = TAKE_PTR(c);
	return 0;
}

int httpc_request_start(struct httpc *c, const struct httpc_params *p, struct httpc_request **ret)
{
	struct httpc_request *req = NULL;
	int r;

	if (!c || !p)
		return -EINVAL;
	if (!p->on_done)
		return log_debug_errno(EINVAL, "HTTP request without a completion callback");
	r = request_new(c, p, &req);
	if (r < 0)
		return r;
	req->state = REQUEST_QUEUED;
	if (!c->in_curl) {
		if (curl_multi_add_handle(c->multi, req->easy) != CURLM_OK) {
			request_free(req);
			return -ENOMEM;
		}
		req->state = REQUEST_RUNNING;
	}
	req->next = c->requests;
	if (c->requests)
		c->requests->prev = req;
	c->requests = req;
	if (ret)
		*ret = req;
	return 0;
}

void httpc_request_cancel(struct httpc_request *req)
{
	if (!req || req->state == REQUEST_COMPLETING || req->state == REQUEST_CANCELLED)
		return;
	req->state = REQUEST_CANCELLED;
	/* A blocking transfer aborts from its next callback; one on the loop is removed
	 * now unless curl or httpc_process() is on the stack, which then removes it. */
	if (req->httpc && !req->httpc->in_curl && !req->httpc->processing)
		request_discard(req);
}

int httpc_request_resume(struct httpc_request *req)
{
	struct httpc *c;
	CURLcode cc;

	if (!req || !req->httpc || req->state != REQUEST_RUNNING)
		return -EINVAL;
	c = req->httpc;
	/* Unpausing may deliver held-back data to the callbacks right away. */
	c->in_curl++;
	cc = curl_easy_pause(req->easy, CURLPAUSE_CONT);
	c->in_curl--;
	httpc_process(c);
	return cc == CURLE_OK ? 0 : -EIO;
}
