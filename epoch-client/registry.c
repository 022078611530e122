/* The registry handle and its HTTP engine (net-epoch-runtime.md §2.2–2.3, §2.7), plus the
 * manifest, tag and catalog operations.
 *
 * Requests go through common/httpc on the caller's sd-event loop. Authorization: the static
 * token (EPOCH_TOKEN) rides on every request to the registry's own origin, as epoch's Go
 * client does; a 401 carrying a `WWW-Authenticate: Bearer realm=…` challenge starts the
 * Docker token flow (GET realm?service=&scope= with the static token as the basic-auth
 * password, which epoch's /v2/token and docker login -u _token both accept), the token is
 * cached per scope and the request is retried once. No credential ever goes to another
 * origin: not on redirects (httpc), not to an upload Location elsewhere, and the static
 * token goes to a realm only over https or on the registry's own origin.
 *
 * Every operation is a struct epoch_call with exactly one completion callback; errors
 * carry the request and the registry's own words ("PUT http://…/manifests/latest: 401
 * UNAUTHORIZED: authentication required"). */
#include <inttypes.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cocoon/fsutil.h"
#include "cocoon/log.h"
#include "cocoon/tls.h"
#include "epoch-internal.h"

#define TOKENS_MAX         16
#define TOKEN_RESPONSE_MAX (64U * 1024)
#define ERROR_BODY_MAX     512
#define LIST_PAGE          1000
#define DELETE_TAGS_MAX    1000
#define SYSTEM_CA_FALLBACK "/etc/ssl/certs/ca-certificates.crt"
/* Give up on a peer that sends nothing for this long (no overall timeout: blobs are GiBs). */
#define LOW_SPEED_SEC   300
#define CONNECT_TIMEOUT (30ULL * 1000 * 1000)
/* curl's buffers for blob bodies: its defaults meant a recv per 16 KiB of a GiB download and
 * a pread and a send per 64 KiB of an upload (curl(1) itself receives 100 KiB at a time). */
#define BLOB_BUFFER (512U * 1024)

static const char manifest_accept[] = "Accept: " EPOCH_MT_OCI_MANIFEST ", " EPOCH_MT_OCI_INDEX
				      ", " EPOCH_MT_DOCKER_MANIFEST ", " EPOCH_MT_DOCKER_LIST;

struct token_entry {
	char *scope, *token;
	uint64_t expires; /* CLOCK_MONOTONIC usec */
};

struct epoch_registry {
	sd_event *event;
	struct httpc *httpc;
	char *base;   /* scheme://authority[/prefix], no trailing '/' */
	char *origin; /* scheme://authority */
	char *token;
	char *no_token_hint; /* said on a 401/403 when token is NULL; NULL: the default */
	char *ca_pem;        /* the system store plus the extra CA, or NULL */
	uint64_t chunk_size; /* UINT64_MAX: whole blobs */
	bool chunk_on_413;   /* no chunk size configured: chunk after a 413 */
	enum upload_mode upload_mode;
	struct token_entry tokens[TOKENS_MAX];
	unsigned token_next;
	struct epoch_call *calls;
};

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- the handle ---- */

/* scheme://authority of url into *ret; -EINVAL unless http(s) with a host. */
static int url_origin(const char *url, char **ret)
{
	const char *host, *end;

	if (strncasecmp(url, "http://", 7) == 0)
		host = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		host = url + 8;
	else
		return -EINVAL;
	end = host + strcspn(host, "/?#");
	if (end == host)
		return -EINVAL;
	*ret = strndup(url, end - url);
	return *ret ? 0 : -ENOMEM;
}

static bool same_origin(const struct epoch_registry *r, const char *url)
{
	_cleanup_(freep) char *o = NULL;

	return url_origin(url, &o) >= 0 && strcasecmp(o, r->origin) == 0;
}

/* The system CA bundle with the extra CA appended: httpc trusts exactly what it is given,
 * and EPOCH_CA_CERT adds to the system pool (epoch's Go client does the same). */
static int registry_load_ca(struct epoch_registry *r, const char *ca_file, char **ret_error)
{
	_cleanup_(freep) char *sys = NULL, *extra = NULL;
	STACK_OF(X509) *certs = NULL;
	const char *sys_path = getenv(X509_get_default_cert_file_env());
	size_t sys_len = 0, extra_len = 0;
	int k;

	k = tls_load_ca_bundle(ca_file, &certs);
	if (k < 0) {
		if (ret_error && asprintf(ret_error, "EPOCH_CA_CERT: %s", tls_last_error()) < 0)
			*ret_error = NULL;
		return -EINVAL;
	}
	sk_X509_pop_free(certs, X509_free);
	k = fs_read_file(ca_file, TLS_FILE_MAX, &extra, &extra_len);
	if (k < 0)
		return k;
	if (isempty(sys_path))
		sys_path = X509_get_default_cert_file();
	if (fs_read_file(sys_path, 16 * TLS_FILE_MAX, &sys, &sys_len) < 0 &&
	    fs_read_file(SYSTEM_CA_FALLBACK, 16 * TLS_FILE_MAX, &sys, &sys_len) < 0)
		log_debug("No system CA bundle found; trusting only %s", ca_file);
	if (asprintf(&r->ca_pem, "%s\n%s", sys ?: "", extra) < 0)
		return -ENOMEM;
	return 0;
}

int epoch_registry_new(sd_event *e, const struct epoch_registry_options *o,
		       struct epoch_registry **ret, char **ret_error)
{
	_cleanup_(epoch_registry_freep) struct epoch_registry *r = NULL;
	const char *url = o && !isempty(o->url) ? o->url : EPOCH_DEFAULT_URL;
	size_t n;
	int k;

	if (ret_error)
		*ret_error = NULL;
	r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	r->base = strdup(url);
	if (!r->base)
		return -ENOMEM;
	for (n = strlen(r->base); n > 0 && r->base[n - 1] == '/'; n--)
		r->base[n - 1] = '\0';
	k = url_origin(r->base, &r->origin);
	if (k == -EINVAL || (k >= 0 && r->base[strcspn(r->base, "?#")])) {
		if (ret_error &&
		    asprintf(ret_error,
			     "invalid registry URL \"%s\": expected http(s)://HOST[:PORT]",
			     url) < 0)
			*ret_error = NULL;
		return -EINVAL;
	}
	if (k < 0)
		return k;
	if (o && !isempty(o->token)) {
		r->token = strdup(o->token);
		if (!r->token)
			return -ENOMEM;
	}
	if (o && o->no_token_hint) {
		r->no_token_hint = strdup(o->no_token_hint);
		if (!r->no_token_hint)
			return -ENOMEM;
	}
	if (o && !isempty(o->ca_file)) {
		k = registry_load_ca(r, o->ca_file, ret_error);
		if (k < 0)
			return k;
	}
	r->chunk_on_413 = !(o && o->chunk_size);
	r->chunk_size = r->chunk_on_413 ? UINT64_MAX : o->chunk_size;
	r->event = e ? sd_event_ref(e) : NULL;
	if (!r->event) {
		k = sd_event_new(&r->event);
		if (k < 0)
			return k;
	}
	k = httpc_new(r->event, &r->httpc);
	if (k < 0)
		return k;
	*ret = TAKE_PTR(r);
	return 0;
}

struct epoch_registry *epoch_registry_free(struct epoch_registry *r)
{
	if (!r)
		return NULL;
	while (r->calls)
		epoch_call_cancel(r->calls);
	httpc_free(r->httpc);
	for (size_t i = 0; i < TOKENS_MAX; i++) {
		free(r->tokens[i].scope);
		free(r->tokens[i].token);
	}
	free(r->base);
	free(r->origin);
	free(r->token);
	free(r->no_token_hint);
	free(r->ca_pem);
	sd_event_unref(r->event);
	free(r);
	return NULL;
}

sd_event *epoch_registry_event(struct epoch_registry *r)
{
	return r->event;
}

const char *epoch_registry_url(const struct epoch_registry *r)
{
	return r->base;
}

enum upload_mode registry_upload_mode(struct epoch_registry *r)
{
	return r->upload_mode;
}

void registry_set_upload_mode(struct epoch_registry *r, enum upload_mode m)
{
	r->upload_mode = m;
}

uint64_t registry_chunk_size(struct epoch_registry *r)
{
	return r->chunk_size;
}

bool registry_chunk_after_413(struct epoch_registry *r)
{
	if (!r->chunk_on_413)
		return false;
	r->chunk_on_413 = false;
	r->chunk_size = EPOCH_CHUNK_SIZE_DEFAULT;
	return true;
}

int registry_url(struct epoch_registry *r, char **ret, const char *fmt, ...)
{
	_cleanup_(freep) char *path = NULL;
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vasprintf(&path, fmt, ap);
	va_end(ap);
	if (k < 0 || asprintf(ret, "%s/v2/%s", r->base, path) < 0)
		return -ENOMEM;
	return 0;
}

int registry_resolve(struct epoch_registry *r, const char *location, char **ret)
{
	if (strncasecmp(location, "http://", 7) == 0 || strncasecmp(location, "https://", 8) == 0)
		*ret = strdup(location);
	else if (location[0] == '/' && location[1] != '/')
		return asprintf(ret, "%s%s", r->origin, location) < 0 ? -ENOMEM : 0;
	else
		return -EBADMSG;
	return *ret ? 0 : -ENOMEM;
}

int scope_for(const char *name, bool write, char **ret)
{
	return asprintf(ret, "repository:%s:%s", name, write ? "pull,push" : "pull") < 0 ? -ENOMEM
											 : 0;
}

/* ---- calls ---- */

int call_new(struct epoch_registry *r, const struct call_ops *ops, epoch_done_fn done,
	     void *userdata, struct epoch_call **ret)
{
	struct epoch_call *c;

	if (!done)
		return -EINVAL;
	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->reg = r;
	c->ops = ops;
	c->done = done;
	c->userdata = userdata;
	c->next = r->calls;
	if (r->calls)
		r->calls->prev = c;
	r->calls = c;
	*ret = c;
	return 0;
}

static void call_unlink(struct epoch_call *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		c->reg->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	if (c->parent) {
		c->parent->sub = NULL;
		c->parent = NULL;
	}
}

static void call_free(struct epoch_call *c)
{
	if (c->sub)
		epoch_call_cancel(c->sub);
	if (c->ops->release)
		c->ops->release(c);
	free(c->message);
	free(c);
}

void call_adopt(struct epoch_call *parent, struct epoch_call *sub)
{
	parent->sub = sub;
	sub->parent = parent;
}

void call_finish(struct epoch_call *c)
{
	c->finishing = true;
	call_unlink(c);
	if (c->reply.error < 0 && !c->message)
		(void)asprintf(&c->message, "%s failed: %s", c->ops->name,
			       strerror(-c->reply.error));
	c->reply.message = c->reply.error < 0 ? c->message : NULL;
	c->done(&c->reply, c->userdata);
	call_free(c);
}

int call_fail(struct epoch_call *c, int error, const char *fmt, ...)
{
	va_list ap;

	c->reply.error = -ABS(error);
	free(c->message);
	c->message = NULL;
	va_start(ap, fmt);
	if (vasprintf(&c->message, fmt, ap) < 0)
		c->message = NULL;
	va_end(ap);
	return c->reply.error;
}

void epoch_call_cancel(struct epoch_call *c)
{
	if (!c || c->finishing)
		return;
	call_unlink(c);
	call_free(c);
}

/* ---- the HTTP engine ---- */

void xfer_init(struct xfer *x, struct epoch_registry *r)
{
	*x = (struct xfer){ .reg = r, .body_fd = -EBADF };
}

void xfer_reset(struct xfer *x)
{
	struct epoch_registry *r = x->reg;

	httpc_request_cancel(x->req);
	httpc_request_cancel(x->token_req);
	free(x->url);
	free(x->scope);
	for (size_t i = 0; i < ELEMENTSOF(x->headers); i++)
		free(x->headers[i]);
	xfer_init(x, r);
}

int xfer_add_header(struct xfer *x, const char *fmt, ...)
{
	va_list ap;
	int k;

	for (size_t i = 0; i < ELEMENTSOF(x->headers); i++) {
		if (x->headers[i])
			continue;
		va_start(ap, fmt);
		k = vasprintf(&x->headers[i], fmt, ap);
		va_end(ap);
		if (k < 0) {
			x->headers[i] = NULL;
			return -ENOMEM;
		}
		return 0;
	}
	return -E2BIG;
}

static const char *token_lookup(struct epoch_registry *r, const char *scope)
{
	uint64_t now = now_usec();

	for (size_t i = 0; scope && i < TOKENS_MAX; i++)
		if (r->tokens[i].scope && streq(r->tokens[i].scope, scope) &&
		    r->tokens[i].expires > now)
			return r->tokens[i].token;
	return NULL;
}

static int token_store(struct epoch_registry *r, const char *scope, const char *token,
		       int64_t expires_in)
{
	struct token_entry *t = NULL;

	for (size_t i = 0; i < TOKENS_MAX && !t; i++)
		if (r->tokens[i].scope && streq(r->tokens[i].scope, scope))
			t = &r->tokens[i];
	if (!t)
		t = &r->tokens[r->token_next++ % TOKENS_MAX];
	free(t->scope);
	free(t->token);
	t->scope = strdup(scope);
	t->token = strdup(token);
	/* The Docker token spec's default lifetime is 60 s; renew a little early. */
	if (expires_in <= 0)
		expires_in = 60;
	t->expires = now_usec() + (uint64_t)MAX(expires_in - 5, 1) * 1000000;
	return t->scope && t->token ? 0 : -ENOMEM;
}

static ssize_t xfer_on_read(struct httpc_request *req, void *p, size_t size, void *userdata)
{
	struct xfer *x = userdata;
	uint64_t left = x->body_fd_len - x->body_pos;
	ssize_t n;

	if (left == 0)
		return 0;
	if (x->body_read) {
		n = x->body_read(p, MIN(size, left), x->body_read_userdata);
		if (n < 0)
			return n;
	} else {
		n = pread(x->body_fd, p, MIN(size, left), (off_t)(x->body_off + x->body_pos));
		if (n < 0)
			return -errno;
	}
	if (n == 0)
		return -EIO; /* the file or stream is shorter than it was when we hashed it */
	x->body_pos += (uint64_t)n;
	if (x->on_sent)
		x->on_sent((uint64_t)n, x->userdata);
	return n;
}

static void xfer_on_done(struct httpc_request *req, struct httpc_response *resp, void *userdata);

static int xfer_send(struct xfer *x, const char *bearer)
{
	const char *headers[ELEMENTSOF(x->headers) + 1] = {};
	struct epoch_registry *r = x->reg;
	size_t n = 0;
	struct httpc_params p = {
		.method = x->method,
		.url = x->url,
		.headers = headers,
		.bearer_token = bearer,
		.body = x->body,
		.body_size = x->body_len,
		.tls.ca_pem = r->ca_pem,
		.connect_timeout_usec = CONNECT_TIMEOUT,
		.low_speed_bytes = 1,
		.low_speed_sec = LOW_SPEED_SEC,
		.max_body = x->max_body ?: 64 * 1024,
		.follow_redirects = x->follow_redirects,
		.buffer_size = x->on_data || x->body_fd >= 0 || x->body_read ? BLOB_BUFFER : 0,
		.on_data = x->on_data,
		.on_done = xfer_on_done,
		.userdata = x,
	};

	for (size_t i = 0; i < ELEMENTSOF(x->headers); i++)
		if (x->headers[i])
			headers[n++] = x->headers[i];
	if (x->body_fd >= 0 || x->body_read) {
		p.read = xfer_on_read;
		p.read_size = (int64_t)x->body_fd_len;
		x->body_pos = 0;
		/* An empty streamed body would go out chunked; send it from memory instead. */
		if (x->body_fd_len == 0) {
			p.read = NULL;
			p.body = "";
		}
	}
	log_debug("%s %s", httpc_method_to_string(x->method), x->url);
	return httpc_request_start(r->httpc, &p, &x->req);
}

int xfer_start(struct xfer *x)
{
	const char *bearer = NULL;

	x->auth_retried = false;
	if (same_origin(x->reg, x->url))
		bearer = token_lookup(x->reg, x->scope) ?: x->reg->token;
	return xfer_send(x, bearer);
}

int xfer_resume(struct xfer *x)
{
	return x->req ? httpc_request_resume(x->req) : -EINVAL;
}

/* The token endpoint answered: keep the token and send the request again with it. */
static void xfer_on_token(struct httpc_request *req, struct httpc_response *resp, void *userdata)
{
	struct xfer *x = userdata;
	const char *token = NULL;
	json_t *j = NULL, *v;
	int k;

	x->token_req = NULL;
	if (resp->error == 0 && resp->status == 200)
		j = json_loadb(resp->body.data ?: "", resp->body.len, 0, NULL);
	v = json_object_get(j, "token");
	if (!json_is_string(v) || !*json_string_value(v))
		v = json_object_get(j, "access_token");
	token = json_string_value(v);
	if (x->body_read && x->body_pos > 0) {
		/* The token is kept for the next attempt, but this body cannot be sent again. */
		if (token)
			(void)token_store(x->reg, x->scope ?: "", token,
					  json_integer_value(json_object_get(j, "expires_in")));
		k = -ESPIPE;
	} else if (token) {
		k = token_store(x->reg, x->scope ?: "", token,
				json_integer_value(json_object_get(j, "expires_in")));
		if (k >= 0)
			k = xfer_send(x, token);
	} else {
		log_debug("Token endpoint %s gave no token (status %ld, %s)", resp->url ?: "?",
			  resp->status, resp->error ? resp->error_message : "no token field");
		/* Retry with what we have: the registry's answer is the clearest error. */
		k = xfer_send(x, x->reg->token);
	}
	json_decref(j);
	if (k < 0) {
		struct httpc_response fake = { .error = k };

		if (k == -ESPIPE)
			snprintf(fake.error_message, sizeof fake.error_message,
				 "the registry asked for a token after %" PRIu64
				 " bytes of a streamed body, which cannot be sent again",
				 x->body_pos);
		else
			snprintf(fake.error_message, sizeof fake.error_message,
				 "cannot retry after the token flow: %s", strerror(-k));
		x->done(x, &fake, x->userdata);
	}
}

/* Percent-encoding of everything but RFC 3986's unreserved characters. */
static int url_escape(const char *s, char **ret)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(3 * strlen(s) + 1), *o = out;

	if (!out)
		return -ENOMEM;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch)) {
			*o++ = (char)ch;
		} else {
			*o++ = '%';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		}
	}
	*o = '\0';
	*ret = out;
	return 0;
}

static int xfer_basic_auth(const char *token, char **ret)
{
	_cleanup_(freep) char *plain = NULL;
	size_t n;
	char *out;

	if (asprintf(&plain, "_token:%s", token) < 0)
		return -ENOMEM;
	n = strlen(plain);
	out = malloc(4 * ((n + 2) / 3) + 32);
	if (!out)
		return -ENOMEM;
	strcpy(out, "Authorization: Basic ");
	EVP_EncodeBlock((unsigned char *)out + strlen(out), (const unsigned char *)plain, (int)n);
	*ret = out;
	return 0;
}

/* GET realm?service=…&scope=…, with the static token as the password when it is safe to
 * send it there. Returns 0 when the token request is under way. */
static int xfer_fetch_token(struct xfer *x, const struct epoch_challenge *ch)
{
	struct epoch_registry *r = x->reg;
	_cleanup_(freep) char *url = NULL, *auth = NULL, *svc = NULL, *scope = NULL;
	const char *want = ch->scope ?: x->scope;
	const char *headers[2] = {};
	struct httpc_params p = {
		.method = HTTPC_GET,
		.tls.ca_pem = r->ca_pem,
		.connect_timeout_usec = CONNECT_TIMEOUT,
		.timeout_usec = 60ULL * 1000 * 1000,
		.max_body = TOKEN_RESPONSE_MAX,
		.on_done = xfer_on_token,
		.userdata = x,
		.headers = headers,
	};

	if ((ch->service && url_escape(ch->service, &svc) < 0) ||
	    (want && url_escape(want, &scope) < 0))
		return -ENOMEM;
	if (strncasecmp(ch->realm, "http://", 7) != 0 && strncasecmp(ch->realm, "https://", 8) != 0)
		return -EINVAL;
	if (asprintf(&url, "%s%s%s%s%s%s", ch->realm, strchr(ch->realm, '?') ? "&" : "?",
		     svc ? "service=" : "", svc ?: "", scope ? (svc ? "&scope=" : "scope=") : "",
		     scope ?: "") < 0)
		return -ENOMEM;
	if (r->token && (strncasecmp(ch->realm, "https://", 8) == 0 || same_origin(r, ch->realm))) {
		if (xfer_basic_auth(r->token, &auth) < 0)
			return -ENOMEM;
		headers[0] = auth;
	}
	p.url = url;
	log_debug("Fetching a token for %s from %s", want ?: "(no scope)", ch->realm);
	return httpc_request_start(r->httpc, &p, &x->token_req);
}

static void xfer_on_done(struct httpc_request *req, struct httpc_response *resp, void *userdata)
{
	struct xfer *x = userdata;
	struct epoch_challenge ch = {};

	x->req = NULL;
	if (resp->error == 0 && resp->status == 401 && !x->auth_retried &&
	    same_origin(x->reg, x->url) &&
	    epoch_challenge_parse(httpc_response_header(resp, "WWW-Authenticate", 0), &ch, NULL) >=
		0) {
		int k;

		x->auth_retried = true;
		k = xfer_fetch_token(x, &ch);
		epoch_challenge_done(&ch);
		if (k >= 0)
			return;
		log_debug_errno(k, "Cannot follow the Bearer challenge of %s: %m", x->url);
	}
	x->done(x, resp, x->userdata);
}

static const char *status_text(long status)
{
	switch (status) {
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Payload Too Large";
	case 416:
		return "Range Not Satisfiable";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	default:
		return "";
	}
}

/* The OCI error shape {"errors":[{"code","message"}]} as "CODE: message; …". */
static void describe_oci_errors(const struct buf *body, struct buf *out)
{
	json_t *j = json_loadb(body->data ?: "", body->len, 0, NULL);
	json_t *errors = json_object_get(j, "errors"), *e;
	size_t i;

	json_array_foreach (errors, i, e) {
		const char *code = json_string_value(json_object_get(e, "code"));
		const char *msg = json_string_value(json_object_get(e, "message"));

		if (i >= 4)
			break;
		(void)buf_printf(out, "%s%s%s%s", i ? "; " : " ", code ?: "",
				 code && msg ? ": " : "", msg ?: "");
	}
	json_decref(j);
}

char *xfer_describe(const struct xfer *x, const struct httpc_response *resp)
{
	struct buf b = BUF_INIT(0);
	const char *method = httpc_method_to_string(x->method);
	_cleanup_(freep) char *asked = NULL, *elsewhere = NULL;
	size_t before, n = MIN(resp->body.len, (size_t)ERROR_BODY_MAX);

	/* Redirected to storage (a presigned URL): say where the answer came from, by origin
	 * only, since the rest of such a URL is a credential. */
	if (resp->url && url_origin(x->url, &asked) >= 0 &&
	    url_origin(resp->url, &elsewhere) >= 0 && strcasecmp(asked, elsewhere) == 0) {
		free(elsewhere);
		elsewhere = NULL;
	}
	if (resp->error < 0) {
		(void)buf_printf(&b, "%s %s%s%s%s: %s (%s)", method, x->url,
				 elsewhere ? " (redirected to " : "", elsewhere ?: "",
				 elsewhere ? ")" : "", strerror(-resp->error), resp->error_message);
		return buf_steal(&b, NULL);
	}
	(void)buf_printf(&b, "%s %s%s%s%s: %ld", method, x->url,
			 elsewhere ? " (redirected to " : "", elsewhere ?: "", elsewhere ? ")" : "",
			 resp->status);
	before = b.len;
	describe_oci_errors(&resp->body, &b);
	/* a plain-text body, quoted without its line end; other control bytes show as '?' */
	while (n > 0 && strchr(" \t\r\n", resp->body.data[n - 1]))
		n--;
	if (b.len == before && n > 0) {
		(void)buf_append_str(&b, " ");
		for (size_t i = 0; i < n; i++) {
			char c = resp->body.data[i];

			(void)buf_append(&b, c >= 0x20 && c < 0x7f ? &c : "?", 1);
		}
	} else if (b.len == before) {
		(void)buf_printf(&b, " %s", status_text(resp->status));
	}
	/* EPOCH_TOKEN never goes to another origin, so it cannot be what was refused there. */
	if ((resp->status == 401 || resp->status == 403) && !elsewhere)
		(void)buf_printf(&b, " (%s)",
				 x->reg->token           ? "the registry refused EPOCH_TOKEN"
				 : x->reg->no_token_hint ? x->reg->no_token_hint
							 : "set EPOCH_TOKEN to a registry token");
	return buf_steal(&b, NULL);
}

/* ---- manifests ---- */

enum manifest_op { OP_GET, OP_FETCH, OP_HAS, OP_PUT, OP_DELETE };

enum delete_step {
	DELETE_PLAIN,     /* DELETE …/manifests/<ref> */
	DELETE_RESOLVE,   /* GET the tag for its digest, then list the other tags */
	DELETE_CHECK,     /* GET each of them: do they share the digest? */
	DELETE_BY_DIGEST, /* DELETE …/manifests/<digest> */
};

struct manifest_state {
	enum manifest_op op;
	struct xfer x;
	char *name, *ref, *digest, *media_type;
	struct buf body;
	struct epoch_manifest *manifest;
	bool child; /* fetch: now getting the index's child */
	/* delete of a tag on a registry that only deletes by digest */
	enum delete_step step;
	char **tags;
	size_t tag_index;
	char *target; /* the digest the tag points at */
};

static void manifest_release(struct epoch_call *c)
{
	struct manifest_state *s = c->state;

	if (!s)
		return;
	xfer_reset(&s->x);
	free(s->name);
	free(s->ref);
	free(s->digest);
	free(s->media_type);
	buf_free(&s->body);
	epoch_manifest_free(s->manifest);
	strv_free(s->tags);
	free(s->target);
	free(s);
}

static const struct call_ops manifest_ops[] = {
	[OP_GET] = { "manifest GET", manifest_release },
	[OP_FETCH] = { "manifest fetch", manifest_release },
	[OP_HAS] = { "manifest HEAD", manifest_release },
	[OP_PUT] = { "manifest PUT", manifest_release },
	[OP_DELETE] = { "manifest DELETE", manifest_release },
};

static void manifest_on_done(struct xfer *x, struct httpc_response *resp, void *userdata);

/* (Re)aim the xfer at …/manifests/<ref> with method m and start it. */
static int manifest_request(struct epoch_call *c, enum httpc_method m, const char *ref)
{
	struct manifest_state *s = c->state;
	bool write = m == HTTPC_PUT || m == HTTPC_DELETE;
	int k;

	xfer_reset(&s->x);
	s->x.method = m;
	s->x.done = manifest_on_done;
	s->x.userdata = c;
	s->x.max_body = EPOCH_MANIFEST_MAX;
	k = registry_url(c->reg, &s->x.url, "%s/manifests/%s", s->name, ref);
	if (k >= 0)
		k = scope_for(s->name, write, &s->x.scope);
	/* Registries answer HEAD and DELETE of OCI manifests only for an Accept they like. */
	if (k >= 0 && m != HTTPC_PUT)
		k = xfer_add_header(&s->x, "%s", manifest_accept);
	if (k >= 0 && m == HTTPC_PUT) {
		s->x.body = s->body.data;
		s->x.body_len = s->body.len;
		k = xfer_add_header(&s->x, "Content-Type: %s", s->media_type);
	}
	return k < 0 ? k : xfer_start(&s->x);
}

static int manifest_start(struct epoch_registry *r, enum manifest_op op, const char *name,
			  const char *ref, epoch_done_fn done, void *userdata,
			  struct epoch_call **ret_call, struct manifest_state **ret_state)
{
	static const enum httpc_method methods[] = {
		[OP_GET] = HTTPC_GET, [OP_FETCH] = HTTPC_GET,     [OP_HAS] = HTTPC_HEAD,
		[OP_PUT] = HTTPC_PUT, [OP_DELETE] = HTTPC_DELETE,
	};
	struct manifest_state *s;
	struct epoch_call *c;
	int k;

	if (!r || !epoch_name_valid(name) || !ref ||
	    (!epoch_tag_valid(ref) && !epoch_digest_valid(ref)))
		return -EINVAL;
	k = call_new(r, &manifest_ops[op], done, userdata, &c);
	if (k < 0)
		return k;
	c->state = s = calloc(1, sizeof *s);
	if (!s) {
		epoch_call_cancel(c);
		return -ENOMEM;
	}
	xfer_init(&s->x, r);
	s->op = op;
	s->body = BUF_INIT(EPOCH_MANIFEST_MAX);
	s->name = strdup(name);
	s->ref = strdup(ref);
	k = s->name && s->ref ? 0 : -ENOMEM;
	if (k >= 0 && ret_state) {
		/* PUT: the caller fills the body and media type before we send. */
		*ret_state = s;
		*ret_call = c;
		return 0;
	}
	if (k >= 0)
		k = manifest_request(c, methods[op], ref);
	if (k < 0) {
		epoch_call_cancel(c);
		return k;
	}
	if (ret_call)
		*ret_call = c;
	return 0;
}

/* 200 to a GET: keep the exact bytes, their media type and digest, and check the digest
 * when the registry named one or we asked by digest. */
static int manifest_take_body(struct epoch_call *c, struct httpc_response *resp, const char *asked)
{
	struct manifest_state *s = c->state;
	const char *ct = httpc_response_header(resp, "Content-Type", 0);
	const char *dcd = httpc_response_header(resp, "Docker-Content-Digest", 0);
	char digest[DIGEST_STR_SIZE];
	int k;

	buf_free(&s->body);
	s->body = resp->body;
	resp->body = BUF_INIT(0);
	k = digest_of(s->body.data ?: "", s->body.len, digest);
	if (k < 0)
		return call_fail(c, k, "cannot hash the manifest");
	if (epoch_digest_valid(asked) && !streq(asked, digest))
		return call_fail(c, EBADMSG, "%s: the registry sent a manifest with digest %s",
				 s->x.url, digest);
	if (dcd && epoch_digest_valid(dcd) && !streq(dcd, digest))
		return call_fail(c, EBADMSG,
				 "%s: Docker-Content-Digest says %s but the manifest hashes to %s",
				 s->x.url, dcd, digest);
	free(s->digest);
	free(s->media_type);
	s->digest = strdup(digest);
	s->media_type = ct ? strndup(ct, strcspn(ct, "; ")) : NULL;
	if (!s->digest || (ct && !s->media_type))
		return call_fail(c, ENOMEM, "out of memory");
	c->reply.digest = s->digest;
	c->reply.media_type = s->media_type;
	c->reply.body = s->body.data ?: "";
	c->reply.body_len = s->body.len;
	return 0;
}

/* fetch: parse; an index leads to its child, fetched by digest. Returns 1 when a request
 * is under way, 0 when the reply is complete, < 0 on failure. */
static int manifest_fetch_step(struct epoch_call *c)
{
	struct manifest_state *s = c->state;
	_cleanup_(freep) char *err = NULL;
	const struct epoch_descriptor *d;
	int k;

	epoch_manifest_free(s->manifest);
	s->manifest = NULL;
	k = epoch_manifest_parse(s->body.data ?: "", s->body.len, &s->manifest, &err);
	if (k < 0)
		return call_fail(c, k, "%s: %s", s->x.url, err ?: strerror(-k));
	c->reply.manifest = s->manifest;
	if (s->manifest->kind != EPOCH_KIND_INDEX)
		return 0;
	if (s->child)
		return call_fail(c, EBADMSG, "%s: an index inside an index is not supported",
				 s->x.url);
	d = epoch_index_select(s->manifest, "linux", "amd64");
	if (!d)
		return call_fail(c, ENOENT, "%s: the index has no linux/amd64 (or usable) manifest",
				 s->x.url);
	s->child = true;
	free(s->ref);
	s->ref = strdup(d->digest);
	if (!s->ref)
		return call_fail(c, ENOMEM, "out of memory");
	k = manifest_request(c, HTTPC_GET, s->ref);
	return k < 0 ? call_fail(c, k, "cannot request the index child %s", s->ref) : 1;
}

static void delete_continue(struct epoch_call *c, struct httpc_response *resp, const char *what);

static void manifest_on_done(struct xfer *x, struct httpc_response *resp, void *userdata)
{
	struct epoch_call *c = userdata;
	struct manifest_state *s = c->state;
	_cleanup_(freep) char *what = xfer_describe(x, resp);
	const char *dcd = httpc_response_header(resp, "Docker-Content-Digest", 0);
	bool ok = resp->error == 0 && resp->status >= 200 && resp->status < 300;

	c->reply.status = resp->status;
	if (s->op == OP_DELETE && s->step != DELETE_PLAIN) {
		delete_continue(c, resp, what);
		return;
	}
	if (resp->error == 0 && resp->status == 404 && (s->op == OP_HAS || s->op == OP_DELETE)) {
		c->reply.found = false; /* DELETE 404 is success: it is gone either way */
	} else if (s->op == OP_DELETE && !ok && resp->error == 0 && epoch_tag_valid(s->ref) &&
		   (resp->status == 400 || resp->status == 405)) {
		/* Plain OCI registries delete manifests by digest only. */
		s->step = DELETE_RESOLVE;
		if (manifest_request(c, HTTPC_GET, s->ref) >= 0)
			return;
		call_fail(c, ENOMEM, "%s", what);
	} else if (!ok) {
		call_fail(c, resp->error ?: (resp->status == 404 ? -ENOENT : -EIO), "%s", what);
	} else if (s->op == OP_GET || s->op == OP_FETCH) {
		if (manifest_take_body(c, resp, s->ref) >= 0 && s->op == OP_FETCH &&
		    manifest_fetch_step(c) > 0)
			return;
	} else {
		c->reply.found = true;
		if (dcd && epoch_digest_valid(dcd)) {
			free(s->digest);
			s->digest = strdup(dcd);
			c->reply.digest = s->digest;
		}
	}
	call_finish(c);
}

int epoch_get_manifest(struct epoch_registry *r, const char *name, const char *ref,
		       epoch_done_fn done, void *userdata, struct epoch_call **ret)
{
	return manifest_start(r, OP_GET, name, ref, done, userdata, ret, NULL);
}

int epoch_fetch_manifest(struct epoch_registry *r, const char *name, const char *ref,
			 epoch_done_fn done, void *userdata, struct epoch_call **ret)
{
	return manifest_start(r, OP_FETCH, name, ref, done, userdata, ret, NULL);
}

int epoch_has_manifest(struct epoch_registry *r, const char *name, const char *ref,
		       epoch_done_fn done, void *userdata, struct epoch_call **ret)
{
	return manifest_start(r, OP_HAS, name, ref, done, userdata, ret, NULL);
}

int epoch_delete_manifest(struct epoch_registry *r, const char *name, const char *ref,
			  epoch_done_fn done, void *userdata, struct epoch_call **ret)
{
	return manifest_start(r, OP_DELETE, name, ref, done, userdata, ret, NULL);
}

int epoch_put_manifest(struct epoch_registry *r, const char *name, const char *ref,
		       const void *body, size_t len, const char *media_type, epoch_done_fn done,
		       void *userdata, struct epoch_call **ret)
{
	char digest[DIGEST_STR_SIZE];
	struct manifest_state *s;
	struct epoch_call *c;
	int k;

	if (!body || len == 0 || isempty(media_type))
		return -EINVAL;
	k = manifest_start(r, OP_PUT, name, ref, done, userdata, &c, &s);
	if (k < 0)
		return k;
	k = buf_append(&s->body, body, len);
	if (k >= 0)
		k = digest_of(body, len, digest);
	if (k >= 0) {
		s->media_type = strdup(media_type);
		s->digest = strdup(digest);
		k = s->media_type && s->digest ? 0 : -ENOMEM;
	}
	c->reply.digest = s->digest;
	if (k >= 0)
		k = manifest_request(c, HTTPC_PUT, ref);
	if (k < 0) {
		epoch_call_cancel(c);
		return k;
	}
	if (ret)
		*ret = c;
	return 0;
}

/* ---- deleting a tag where only digests can be deleted ----
 * Plain OCI registries answer DELETE of a tag with 400 or 405. Deleting the digest instead
 * removes every tag on it, so first make sure no other tag shares it; if one does, refuse
 * rather than delete more than was asked. */

static int strv_copy(char *const *v, char ***ret);

/* GET the next other tag to compare, or DELETE the digest when none is left. Returns 1 when
 * a request is under way, < 0 (reply set) on failure. */
static int delete_check_next(struct epoch_call *c)
{
	struct manifest_state *s = c->state;
	int k;

	while (s->tags && s->tags[s->tag_index] && streq(s->tags[s->tag_index], s->ref))
		s->tag_index++;
	if (s->tags && s->tags[s->tag_index]) {
		s->step = DELETE_CHECK;
		k = manifest_request(c, HTTPC_GET, s->tags[s->tag_index]);
	} else {
		s->step = DELETE_BY_DIGEST;
		k = manifest_request(c, HTTPC_DELETE, s->target);
	}
	return k < 0 ? call_fail(c, k, "cannot continue deleting %s:%s", s->name, s->ref) : 1;
}

static void delete_on_tags(const struct epoch_reply *reply, void *userdata)
{
	struct epoch_call *c = userdata;
	struct manifest_state *s = c->state;
	size_t n = 0;

	if (reply->error < 0) {
		call_fail(c, reply->error, "%s", reply->message);
	} else {
		while (reply->names[n])
			n++;
		if (n > DELETE_TAGS_MAX)
			call_fail(
			    c, E2BIG,
			    "cannot delete %s:%s: the registry deletes by digest only and the "
			    "repository has too many tags (%zu) to check which share it",
			    s->name, s->ref, n);
		else if (strv_copy(reply->names, &s->tags) < 0)
			call_fail(c, ENOMEM, "out of memory");
		else if (delete_check_next(c) > 0)
			return;
	}
	call_finish(c);
}

/* One step of the fallback has an answer. */
static void delete_continue(struct epoch_call *c, struct httpc_response *resp, const char *what)
{
	struct manifest_state *s = c->state;
	bool ok = resp->error == 0 && resp->status >= 200 && resp->status < 300;
	bool gone = resp->error == 0 && resp->status == 404;
	struct epoch_call *sub;
	int k;

	if (!ok && !gone) {
		call_fail(c, resp->error ?: -EIO, "%s", what);
	} else if (s->step == DELETE_RESOLVE && gone) {
		c->reply.found = false;
	} else if (s->step == DELETE_RESOLVE) {
		if (manifest_take_body(c, resp, NULL) >= 0) {
			c->reply.body = c->reply.media_type = NULL;
			c->reply.body_len = 0;
			s->target = strdup(s->digest);
			k = s->target ? epoch_list_tags(c->reg, s->name, delete_on_tags, c, &sub)
				      : -ENOMEM;
			if (k >= 0) {
				call_adopt(c, sub);
				return;
			}
			call_fail(c, k, "cannot list the tags of %s", s->name);
		}
	} else if (s->step == DELETE_CHECK) {
		char d[DIGEST_STR_SIZE];

		if (ok && digest_of(resp->body.data ?: "", resp->body.len, d) >= 0 &&
		    streq(d, s->target)) {
			call_fail(c, EBUSY,
				  "cannot delete %s:%s alone: the registry deletes manifests by "
				  "digest only, and tag %s points at the same manifest %s",
				  s->name, s->ref, s->tags[s->tag_index], s->target);
		} else {
			s->tag_index++;
			if (delete_check_next(c) > 0)
				return;
		}
	} else {
		c->reply.found = ok;
		c->reply.digest = s->target;
	}
	call_finish(c);
}

/* ---- tags and catalog ---- */

struct list_state {
	struct xfer x;
	const char *field; /* "tags" or "repositories" */
	char *name;
	char **names;
	size_t n;
};

static void list_release(struct epoch_call *c)
{
	struct list_state *s = c->state;

	if (!s)
		return;
	xfer_reset(&s->x);
	free(s->name);
	strv_free(s->names);
	free(s);
}

static const struct call_ops list_ops = { "listing", list_release };

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The next page from a Link header: `<url>; rel="next"`. */
static int link_next(struct epoch_registry *r, const char *link, char **ret)
{
	_cleanup_(freep) char *target = NULL;
	const char *lt, *gt;

	if (!link || !strstr(link, "rel=\"next\""))
		return 0;
	lt = strchr(link, '<');
	gt = lt ? strchr(lt, '>') : NULL;
	if (!gt)
		return -EBADMSG;
	target = strndup(lt + 1, gt - lt - 1);
	if (!target)
		return -ENOMEM;
	return registry_resolve(r, target, ret) < 0 ? -EBADMSG : 1;
}

static int list_take_page(struct epoch_call *c, struct httpc_response *resp)
{
	struct list_state *s = c->state;
	json_t *j = json_loadb(resp->body.data ?: "", resp->body.len, 0, NULL);
	json_t *a = json_object_get(j, s->field), *v;
	size_t i;
	char **nv;

	if (!json_is_object(j) || (a && !json_is_null(a) && !json_is_array(a))) {
		json_decref(j);
		return call_fail(c, EBADMSG, "%s: expected {\"%s\":[…]}", s->x.url, s->field);
	}
	if (s->n + json_array_size(a) > EPOCH_LIST_MAX) {
		json_decref(j);
		return call_fail(c, E2BIG, "%s: more than %d entries", s->x.url, EPOCH_LIST_MAX);
	}
	nv = reallocarray(s->names, s->n + json_array_size(a) + 1, sizeof *nv);
	if (!nv) {
		json_decref(j);
		return call_fail(c, ENOMEM, "out of memory");
	}
	s->names = nv;
	json_array_foreach (a, i, v) {
		if (!json_is_string(v))
			continue;
		s->names[s->n] = strdup(json_string_value(v));
		if (!s->names[s->n])
			break;
		s->n++;
	}
	s->names[s->n] = NULL;
	json_decref(j);
	return 0;
}

static void list_on_done(struct xfer *x, struct httpc_response *resp, void *userdata)
{
	struct epoch_call *c = userdata;
	struct list_state *s = c->state;
	_cleanup_(freep) char *next = NULL;
	size_t before;
	int k;

	c->reply.status = resp->status;
	if (resp->error < 0 || resp->status != 200) {
		_cleanup_(freep) char *what = xfer_describe(x, resp);

		call_fail(c, resp->error ?: (resp->status == 404 ? -ENOENT : -EIO), "%s", what);
		call_finish(c);
		return;
	}
	before = s->n;
	if (list_take_page(c, resp) < 0) {
		call_finish(c);
		return;
	}
	k = link_next(c->reg, httpc_response_header(resp, "Link", 0), &next);
	/* Pages that add entries stop at EPOCH_LIST_MAX; an empty one that links on could
	 * only repeat itself. */
	if (k > 0 && s->n == before) {
		call_fail(c, EBADMSG, "%s: an empty page links to another (Link: %s)", x->url,
			  httpc_response_header(resp, "Link", 0));
		call_finish(c);
		return;
	}
	if (k > 0) {
		free(x->url);
		x->url = TAKE_PTR(next);
		k = xfer_start(x);
		if (k >= 0)
			return;
	}
	if (k < 0)
		call_fail(c, k, "%s: cannot follow the next page (Link: %s)", x->url,
			  httpc_response_header(resp, "Link", 0));
	/* Epoch sorts, docker-registry does not always: callers get one order. */
	qsort(s->names, s->n, sizeof *s->names, name_cmp);
	c->reply.names = s->names;
	call_finish(c);
}

static int list_start(struct epoch_registry *r, const char *name, epoch_done_fn done,
		      void *userdata, struct epoch_call **ret)
{
	struct list_state *s;
	struct epoch_call *c;
	int k;

	if (!r || (name && !epoch_name_valid(name)))
		return -EINVAL;
	k = call_new(r, &list_ops, done, userdata, &c);
	if (k < 0)
		return k;
	c->state = s = calloc(1, sizeof *s);
	if (!s) {
		epoch_call_cancel(c);
		return -ENOMEM;
	}
	xfer_init(&s->x, r);
	s->x.method = HTTPC_GET;
	s->x.done = list_on_done;
	s->x.userdata = c;
	s->x.max_body = 16 * 1024 * 1024;
	s->names = calloc(1, sizeof *s->names);
	s->field = name ? "tags" : "repositories";
	k = s->names ? 0 : -ENOMEM;
	if (k >= 0 && name)
		k = registry_url(r, &s->x.url, "%s/tags/list?n=%d", name, LIST_PAGE);
	else if (k >= 0)
		k = registry_url(r, &s->x.url, "_catalog?n=%d", LIST_PAGE);
	if (k >= 0 && name)
		k = scope_for(name, false, &s->x.scope);
	else if (k >= 0)
		s->x.scope = strdup("registry:catalog:*");
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

int epoch_list_tags(struct epoch_registry *r, const char *name, epoch_done_fn done, void *userdata,
		    struct epoch_call **ret)
{
	if (!name)
		return -EINVAL;
	return list_start(r, name, done, userdata, ret);
}

int epoch_catalog(struct epoch_registry *r, epoch_done_fn done, void *userdata,
		  struct epoch_call **ret)
{
	return list_start(r, NULL, done, userdata, ret);
}

/* ---- results for blocking use ---- */

void epoch_result_clear(struct epoch_result *res)
{
	if (!res)
		return;
	free(res->message);
	free(res->digest);
	free(res->media_type);
	free(res->body);
	epoch_manifest_free(res->manifest);
	strv_free(res->names);
	*res = (struct epoch_result){};
}

static int strv_copy(char *const *v, char ***ret)
{
	size_t n = 0;
	char **c;

	while (v[n])
		n++;
	c = calloc(n + 1, sizeof *c);
	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (!(c[i] = strdup(v[i]))) {
			strv_free(c);
			return -ENOMEM;
		}
	*ret = c;
	return 0;
}

static int manifest_copy(const struct epoch_reply *reply, struct epoch_manifest **ret)
{
	char *err = NULL;
	int k;

	/* The reply's manifest is the parse of its body; parse our copy again. */
	k = epoch_manifest_parse(reply->body, reply->body_len, ret, &err);
	free(err);
	return k;
}

void epoch_result_fill(const struct epoch_reply *reply, void *userdata)
{
	struct epoch_result *res = userdata;
	bool oom = false;

	epoch_result_clear(res);
	res->done = true;
	res->error = reply->error;
	res->status = reply->status;
	res->found = reply->found;
	res->size = reply->size;
	res->moved = reply->moved;
	res->n_layers = reply->n_layers;
#define COPY(f)                                                                                    \
	if (reply->f && !(res->f = strdup(reply->f)))                                              \
	oom = true
	COPY(message);
	COPY(digest);
	COPY(media_type);
#undef COPY
	if (reply->body) {
		res->body = malloc(reply->body_len + 1);
		if (res->body) {
			memcpy(res->body, reply->body, reply->body_len);
			res->body[reply->body_len] = '\0';
			res->body_len = reply->body_len;
		} else {
			oom = true;
		}
	}
	if (reply->manifest && manifest_copy(reply, &res->manifest) < 0)
		oom = true;
	if (reply->names && strv_copy(reply->names, &res->names) < 0)
		oom = true;
	if (oom && res->error == 0) {
		res->error = -ENOMEM;
		free(res->message);
		res->message = strdup("out of memory");
	}
}

int epoch_result_wait(sd_event *e, struct epoch_result *res)
{
	while (!res->done) {
		int k = sd_event_run(e, UINT64_MAX);

		if (k < 0)
			return k;
	}
	return res->error;
}
