/* Kubernetes REST on httpc (spec/kube-api.md §1): paths, get/list/create/update/patch/delete,
 * streaming GETs for watches, Status errors decoded into struct kube_status and an errno
 * class, and the client-go behaviours daemons lean on:
 *   - a client-side token bucket (QPS/burst): calls wait on a timer, never block the loop;
 *   - at most KUBE_MAX_RUNNING requests in flight, the rest queued (capped) in order;
 *   - retries with exponential backoff and jitter on 429 (Retry-After honoured, every
 *     method: the server did not process it), on 5xx and lost connections for idempotent
 *     calls, and on connections that never reached the server for every call;
 *   - lists followed page by page (limit + continue), a full relist if a continue token
 *     expired (410), and one merged List handed back;
 *   - the bearer token re-read from token_file when the file changes (service-account
 *     token rotation), keeping the previous token if the file is briefly unreadable.
 *
 * A call is queued (CALL_WAITING) until the rate limiter and the slot cap let it run
 * (CALL_RUNNING); a failed attempt that may be retried waits in CALL_BACKOFF and queues
 * again. Completion never happens inside the kube_*() call that started it: an error found
 * while starting is reported from a zero-delay timer (CALL_FAILING). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "cocoon/buf.h"
#include "cocoon/fsutil.h"
#include "cocoon/httpc.h"
#include "cocoon/kube.h"
#include "cocoon/log.h"
#include "cocoon/loop.h"
#include "kube-client-internal.h"

#define DEFAULT_QPS          50.0
#define DEFAULT_BURST        100U
#define DEFAULT_MAX_RETRIES  5U
#define DEFAULT_TIMEOUT_USEC (30 * KUBE_USEC_PER_SEC)
#define DEFAULT_LIST_LIMIT   500U
#define TIMER_ACCURACY_USEC  1000U

struct list_spec {
	char *label_selector, *field_selector, *resource_version;
};

enum call_kind { CALL_REQUEST, CALL_LIST, CALL_STREAM };
enum call_state { CALL_NEW, CALL_WAITING, CALL_RUNNING, CALL_BACKOFF, CALL_FAILING, CALL_DONE };

struct kube_call {
	struct kube_client *client;
	struct kube_call *prev, *next;           /* every live call of the client */
	struct kube_call *wait_prev, *wait_next; /* the queue, while CALL_WAITING */
	enum call_kind kind;
	enum call_state state;
	enum httpc_method method;
	bool idempotent;          /* may be repeated after a lost response */
	const char *content_type; /* of body */
	char *path;               /* with the query; for a list, the current page's */
	char *body;
	size_t body_len;
	unsigned attempt;
	struct httpc_request *req;
	sd_event_source *timer; /* backoff, or the deferred failure; off otherwise */
	kube_done_fn done;
	kube_data_fn on_data;
	void *userdata;
	bool in_data;   /* on_data is on the stack */
	bool cancelled; /* cancelled from inside on_data: freed once it returns */
	/* CALL_FAILING */
	int fail_error;
	struct kube_status fail_status;
	/* CALL_LIST */
	char *list_base; /* the caller's path (may hold a query already) */
	struct list_spec list_spec;
	unsigned list_limit;
	unsigned list_pages;
	bool list_full; /* relisting without limit after an expired continue token */
	size_t list_bytes;
	json_t *list;
};

struct kube_client {
	sd_event *event;
	struct httpc *httpc;
	struct kube_config *cfg;
	unsigned max_retries;
	uint64_t timeout_usec;
	char *user_agent; /* the whole header line */
	struct kube_bucket bucket;
	sd_event_source *rate_timer;
	struct kube_call *calls;
	struct kube_call *wait_head, *wait_tail;
	unsigned n_waiting, n_running;
	uint64_t last_contact;
	/* token_file cache */
	char *token;
	struct stat token_stat;
	uint64_t token_read_usec;
};

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * KUBE_USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- pure helpers: paths, Status, errno classes, backoff, rate limit ---- */

/* A path segment we put into a URL: Kubernetes names never contain these, and letting
 * them through would change which resource is addressed. */
static bool segment_valid(const char *s)
{
	if (isempty(s) || streq(s, ".") || streq(s, ".."))
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f || strchr("/?#%", *s))
			return false;
	return true;
}

char *kube_path(const struct kube_resource *r, const char *ns, const char *name, const char *sub)
{
	char *p;
	int n;

	if (!r || !segment_valid(r->version) || !segment_valid(r->plural) ||
	    (!isempty(r->group) && !segment_valid(r->group)))
		return NULL;
	if ((ns && (!r->namespaced || !segment_valid(ns))) || (name && !segment_valid(name)) ||
	    (sub && (!name || !segment_valid(sub))))
		return NULL;
	/* a namespaced object is always addressed inside its namespace */
	if (r->namespaced && name && !ns)
		return NULL;
	n = asprintf(&p, "%s%s/%s%s%s/%s%s%s%s%s", isempty(r->group) ? "/api" : "/apis/",
		     isempty(r->group) ? "" : r->group, r->version, ns ? "/namespaces/" : "",
		     ns ? ns : "", r->plural, name ? "/" : "", name ? name : "", sub ? "/" : "",
		     sub ? sub : "");
	return n < 0 ? NULL : p;
}

static const struct {
	long code;
	const char *reason;
} code_reasons[] = {
	{ 400, "BadRequest" },
	{ 401, "Unauthorized" },
	{ 403, "Forbidden" },
	{ 404, "NotFound" },
	{ 405, "MethodNotAllowed" },
	{ 406, "NotAcceptable" },
	{ 409, "Conflict" },
	{ 410, "Gone" },
	{ 413, "RequestEntityTooLarge" },
	{ 415, "UnsupportedMediaType" },
	{ 422, "Invalid" },
	{ 429, "TooManyRequests" },
	{ 500, "InternalError" },
	{ 503, "ServiceUnavailable" },
	{ 504, "Timeout" },
};

static const struct {
	const char *reason;
	int error;
} reason_errnos[] = {
	{ "NotFound", -ENOENT },
	{ "AlreadyExists", -EEXIST },
	{ "Conflict", -ESTALE },
	{ "Invalid", -EINVAL },
	{ "BadRequest", -EINVAL },
	{ "Unauthorized", -EACCES },
	{ "Forbidden", -EACCES },
	{ "Expired", -ETIME },
	{ "Gone", -ETIME },
	{ "Timeout", -ETIMEDOUT },
	{ "ServerTimeout", -ETIMEDOUT },
	{ "TooManyRequests", -EAGAIN },
	{ "MethodNotAllowed", -EOPNOTSUPP },
	{ "NotAcceptable", -EOPNOTSUPP },
	{ "UnsupportedMediaType", -EOPNOTSUPP },
	{ "RequestEntityTooLarge", -E2BIG },
	{ "InternalError", -EIO },
	{ "ServiceUnavailable", -EIO },
};

int kube_status_errno(long code, const char *reason)
{
	if (code >= 200 && code < 300)
		return 0;
	for (size_t i = 0; reason && i < ELEMENTSOF(reason_errnos); i++)
		if (streq(reason, reason_errnos[i].reason))
			return reason_errnos[i].error;
	switch (code) {
	case 400:
	case 422:
		return -EINVAL;
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 405:
	case 406:
	case 415:
		return -EOPNOTSUPP;
	case 409:
		return -ESTALE;
	case 410:
		return -ETIME;
	case 413:
		return -E2BIG;
	case 429:
		return -EAGAIN;
	case 504:
		return -ETIMEDOUT;
	default:
		return code >= 500 ? -EIO : -EPROTO;
	}
}

static const char *reason_for_code(long code)
{
	for (size_t i = 0; i < ELEMENTSOF(code_reasons); i++)
		if (code_reasons[i].code == code)
			return code_reasons[i].reason;
	return NULL;
}

void kube_status_clear(struct kube_status *s)
{
	if (!s)
		return;
	free(s->reason);
	free(s->message);
	*s = (struct kube_status){ 0 };
}

static int strdup_or_null(const char *s, char **ret)
{
	*ret = NULL;
	if (!s)
		return 0;
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

int kube_status_from_json(const json_t *obj, long http_code, struct kube_status *ret)
{
	_cleanup_(kube_status_clear) struct kube_status s = { .code = http_code };
	const char *reason = NULL, *message = NULL;

	if (!ret)
		return -EINVAL;
	if (json_is_object(obj) &&
	    streq_ptr(json_string_value(json_object_get(obj, "kind")), "Status")) {
		json_int_t c = json_integer_value(json_object_get(obj, "code"));

		if (c >= 100 && c <= 999)
			s.code = (long)c;
		reason = json_string_value(json_object_get(obj, "reason"));
		message = json_string_value(json_object_get(obj, "message"));
	}
	if (isempty(reason))
		reason = reason_for_code(s.code);
	if (strdup_or_null(reason, &s.reason) < 0 ||
	    strdup_or_null(isempty(message) ? NULL : message, &s.message) < 0)
		return -ENOMEM;
	*ret = s;
	s = (struct kube_status){ 0 };
	return 0;
}

static uint64_t random_u64(void)
{
	static uint64_t fallback;
	uint64_t x;

	if (getrandom(&x, sizeof x, GRND_NONBLOCK) == (ssize_t)sizeof x)
		return x;
	/* no entropy yet (early boot): jitter only needs to differ between processes */
	fallback += now_usec() ^ ((uint64_t)getpid() << 32);
	return fallback * 6364136223846793005ULL + 1442695040888963407ULL;
}

uint64_t kube_backoff_usec(unsigned attempt, uint64_t base_usec, uint64_t max_usec)
{
	uint64_t d = base_usec;

	for (unsigned i = 0; i < attempt && d < max_usec; i++)
		d = d > UINT64_MAX / 2 ? UINT64_MAX : d * 2;
	d = MIN(d, max_usec);
	if (d < 2)
		return d;
	return d / 2 + random_u64() % (d - d / 2 + 1);
}

void kube_bucket_init(struct kube_bucket *b, double qps, unsigned burst, uint64_t now)
{
	*b = (struct kube_bucket){
		.qps = qps,
		.burst = burst,
		.tokens = burst,
		.last_usec = now,
	};
}

uint64_t kube_bucket_take(struct kube_bucket *b, uint64_t now)
{
	if (now > b->last_usec) {
		b->tokens += (double)(now - b->last_usec) * b->qps / (double)KUBE_USEC_PER_SEC;
		b->tokens = MIN(b->tokens, b->burst);
		b->last_usec = now;
	}
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return 0;
	}
	/* round up, so that the timer never fires a hair too early and spins */
	return (uint64_t)((1.0 - b->tokens) * (double)KUBE_USEC_PER_SEC / b->qps) + 1;
}

int kube_retry_after_parse(const char *value, uint64_t *ret_usec)
{
	unsigned long long s = 0;

	if (isempty(value))
		return -EINVAL;
	for (const char *p = value; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		if (s > 1000000) /* days: the caller caps it anyway */
			continue;
		s = s * 10 + (unsigned long long)(*p - '0');
	}
	*ret_usec = (uint64_t)s * KUBE_USEC_PER_SEC;
	return 0;
}

/* ---- calls ---- */

static void client_dispatch(struct kube_client *c);

static void wait_unlink(struct kube_call *call)
{
	struct kube_client *c = call->client;

	if (call->wait_prev)
		call->wait_prev->wait_next = call->wait_next;
	else
		c->wait_head = call->wait_next;
	if (call->wait_next)
		call->wait_next->wait_prev = call->wait_prev;
	else
		c->wait_tail = call->wait_prev;
	call->wait_prev = call->wait_next = NULL;
	c->n_waiting--;
}

static void wait_append(struct kube_call *call)
{
	struct kube_client *c = call->client;

	call->state = CALL_WAITING;
	call->wait_prev = c->wait_tail;
	call->wait_next = NULL;
	if (c->wait_tail)
		c->wait_tail->wait_next = call;
	else
		c->wait_head = call;
	c->wait_tail = call;
	c->n_waiting++;
}

/* Unlinks and frees; the caller has taken care of the httpc request. */
static void call_free(struct kube_call *call)
{
	struct kube_client *c = call->client;

	if (call->state == CALL_WAITING)
		wait_unlink(call);
	if (call->prev)
		call->prev->next = call->next;
	else
		c->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	sd_event_source_disable_unref(call->timer);
	kube_status_clear(&call->fail_status);
	json_decref(call->list);
	free(call->path);
	free(call->body);
	free(call->list_base);
	free(call->list_spec.label_selector);
	free(call->list_spec.field_selector);
	free(call->list_spec.resource_version);
	free(call);
}

static void call_complete(struct kube_call *call, int error, json_t *obj,
			  struct kube_status *status)
{
	call->state = CALL_DONE;
	call->done(call, error, error < 0 ? NULL : obj, status, call->userdata);
	call_free(call);
}

/* Report error from the loop, never from inside the kube_*() that started the call. The
 * call's timer exists from its creation on, so this cannot fail. */
_printf_(3, 4) static void call_fail_later(struct kube_call *call, int error, const char *fmt, ...)
{
	va_list ap;

	kube_status_clear(&call->fail_status);
	va_start(ap, fmt);
	if (vasprintf(&call->fail_status.message, fmt, ap) < 0)
		call->fail_status.message = NULL;
	va_end(ap);
	call->fail_error = error;
	call->state = CALL_FAILING;
	(void)loop_timer_arm(call->timer, 0);
}

static bool stat_same(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* The bearer token for the next request. A rotated service-account token replaces the
 * file atomically, so a changed inode, size or mtime means "read again"; a periodic
 * re-read covers filesystems with coarse timestamps (client-go re-reads every minute). */
static int client_token(struct kube_client *c, const char **ret)
{
	const char *path = c->cfg->token_file;
	_cleanup_(freep) char *data = NULL;
	uint64_t now = now_usec();
	struct stat st;
	size_t len;
	int r;

	*ret = c->cfg->token;
	if (!path)
		return 0;
	if (stat(path, &st) < 0) {
		r = -errno;
		goto fail;
	}
	if (c->token && stat_same(&st, &c->token_stat) &&
	    now - c->token_read_usec < KUBE_TOKEN_REREAD_USEC) {
		*ret = c->token;
		return 0;
	}
	r = fs_read_file(path, KUBE_TOKEN_MAX_BYTES, &data, &len);
	if (r < 0)
		goto fail;
	while (len > 0 && strchr(" \t\r\n", data[len - 1]))
		data[--len] = '\0';
	if (len == 0) {
		r = -ENODATA;
		goto fail;
	}
	free(c->token);
	c->token = TAKE_PTR(data);
	c->token_stat = st;
	c->token_read_usec = now;
	*ret = c->token;
	return 0;
fail:
	if (c->token) {
		log_debug_errno(r, "Cannot read token file %s, keeping the previous token: %m",
				path);
		*ret = c->token;
		return 0;
	}
	return r;
}

static void call_on_done(struct httpc_request *req, struct httpc_response *resp, void *userdata);

static int call_on_data(struct httpc_request *req, const struct httpc_response *resp, const void *p,
			size_t size, void *userdata)
{
	struct kube_call *call = userdata;
	int r;

	call->client->last_contact = now_usec();
	call->in_data = true;
	r = call->on_data(call, p, size, call->userdata);
	call->in_data = false;
	if (call->cancelled) {
		/* kube_call_cancel() already cancelled req: httpc calls nothing more */
		call_free(call);
		return -ECANCELED;
	}
	/* -EAGAIN would pause the transfer in httpc; for us every error aborts */
	return r == -EAGAIN ? -ECANCELED : MIN(r, 0);
}

static int call_start(struct kube_call *call)
{
	struct kube_client *c = call->client;
	const struct kube_config *cfg = c->cfg;
	_cleanup_(freep) char *url = NULL, *ctype = NULL;
	const char *headers[4], *token;
	size_t n = 0;
	int r;

	r = client_token(c, &token);
	if (r < 0) {
		call_fail_later(call, r, "token file %s: %s", cfg->token_file,
				r == -ENODATA ? "empty" : strerror(-r));
		return 0;
	}
	if (asprintf(&url, "%s%s", cfg->server, call->path) < 0)
		return -ENOMEM;
	headers[n++] = "Accept: application/json";
	headers[n++] = c->user_agent;
	if (call->content_type) {
		if (asprintf(&ctype, "Content-Type: %s", call->content_type) < 0)
			return -ENOMEM;
		headers[n++] = ctype;
	}
	headers[n] = NULL;

	struct httpc_params p = {
		.method = call->method,
		.url = url,
		.headers = headers,
		.bearer_token = token,
		.body = call->body,
		.body_size = call->body_len,
		.tls = {
			.ca_file = cfg->ca_file,
			.ca_pem = cfg->ca_data,
			.cert_file = cfg->cert_file,
			.cert_pem = cfg->cert_data,
			.key_file = cfg->key_file,
			.key_pem = cfg->key_data,
			.insecure_skip_verify = cfg->insecure,
		},
		.connect_timeout_usec = KUBE_CONNECT_TIMEOUT_USEC,
		.timeout_usec = call->kind == CALL_STREAM ? 0 : c->timeout_usec,
		.max_body = KUBE_MAX_BODY,
		.on_data = call->kind == CALL_STREAM ? call_on_data : NULL,
		.on_done = call_on_done,
		.userdata = call,
	};
	r = httpc_request_start(c->httpc, &p, &call->req);
	if (r < 0) {
		call_fail_later(call, r, "cannot start %s %s: %s",
				httpc_method_to_string(call->method), call->path, strerror(-r));
		return 0;
	}
	call->state = CALL_RUNNING;
	if (call->kind != CALL_STREAM)
		c->n_running++;
	return 0;
}

static int client_on_rate_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	client_dispatch(userdata);
	return 0;
}

/* Start queued calls in order while the slot cap and the token bucket allow; otherwise
 * wake up when the next token is due (a finishing request calls this again). */
static void client_dispatch(struct kube_client *c)
{
	struct kube_call *call;
	uint64_t wait;

	while ((call = c->wait_head)) {
		if (call->kind != CALL_STREAM && c->n_running >= KUBE_MAX_RUNNING)
			return;
		wait = kube_bucket_take(&c->bucket, now_usec());
		if (wait > 0) {
			if (loop_timer_arm(c->rate_timer, wait) >= 0)
				return;
			/* no timer: run it anyway rather than stall every call */
		}
		wait_unlink(call);
		if (call_start(call) < 0)
			call_fail_later(call, -ENOMEM, "out of memory");
	}
}

/* ---- retries ---- */

/* Connection failures where the request never reached the server: repeating it cannot do
 * anything twice, so even a POST is retried. */
static bool error_before_request(int error)
{
	switch (error) {
	case -ECONNREFUSED:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -EADDRNOTAVAIL:
		return true;
	default:
		return false;
	}
}

/* 0: the answer is final; else how long to wait before the next attempt. 429 means the
 * server did not process the request (priority and fairness), so every method retries; a
 * 5xx or a connection lost mid-request may have done the work, so only calls that can be
 * repeated safely do (client-go rest.Request does the same). */
static uint64_t call_retry_delay(const struct kube_call *call, const struct httpc_response *resp)
{
	const char *ra = NULL;
	uint64_t usec;

	if (call->kind == CALL_STREAM || call->attempt >= call->client->max_retries)
		return 0;
	if (resp->error < 0) {
		if (!error_before_request(resp->error) &&
		    !(call->idempotent && (resp->error == -ECONNRESET || resp->error == -EPIPE)))
			return 0;
	} else if (resp->status == 429 || (resp->status >= 500 && call->idempotent)) {
		ra = httpc_response_header(resp, "Retry-After", 0);
	} else {
		return 0;
	}
	if (ra && kube_retry_after_parse(ra, &usec) >= 0)
		return MAX(MIN(usec, KUBE_RETRY_AFTER_MAX_USEC), 1);
	return MAX(kube_backoff_usec(call->attempt, KUBE_RETRY_BASE_USEC, KUBE_RETRY_MAX_USEC), 1);
}

static void call_backoff(struct kube_call *call, uint64_t delay, const struct httpc_response *resp)
{
	log_debug("%s %s: %s, retrying in %" PRIu64 " ms (retry %u of %u)",
		  httpc_method_to_string(call->method), call->path,
		  resp->error < 0 ? resp->error_message : "server busy or failing", delay / 1000,
		  call->attempt + 1, call->client->max_retries);
	call->attempt++;
	call->state = CALL_BACKOFF;
	(void)loop_timer_arm(call->timer, delay);
}

static int call_on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct kube_call *call = userdata;
	struct kube_client *c = call->client;
	struct kube_status st;

	if (call->state == CALL_BACKOFF) {
		wait_append(call);
		client_dispatch(c);
		return 0;
	}
	st = call->fail_status;
	call->fail_status = (struct kube_status){ 0 };
	call_complete(call, call->fail_error, NULL, &st);
	kube_status_clear(&st);
	return 0;
}

/* ---- answers ---- */

/* Printable text of a body that is not a Status (a proxy's error page, plain text). */
static char *body_excerpt(const struct httpc_response *resp)
{
	size_t n = MIN(resp->body.len, (size_t)200);
	char *s = strndup(resp->body.data ? resp->body.data : "", n);

	if (!s)
		return NULL;
	for (char *p = s; *p; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f)
			*p = ' ';
	for (size_t l = strlen(s); l > 0 && s[l - 1] == ' '; l--)
		s[l - 1] = '\0';
	return s;
}

/* A non-2xx answer: the body's Status if it is one, else the code's generic reason. */
static int answer_failure(const struct httpc_response *resp, struct kube_status *st)
{
	_cleanup_(freep) char *text = NULL;
	json_auto_t *obj = NULL;
	int r;

	if (resp->body.len > 0)
		obj = json_loadb(resp->body.data, resp->body.len, 0, NULL);
	kube_status_clear(st);
	r = kube_status_from_json(obj, resp->status, st);
	if (r < 0)
		return r;
	if (!st->message) {
		text = obj ? NULL : body_excerpt(resp);
		if (asprintf(&st->message, "HTTP %ld%s%s", resp->status, isempty(text) ? "" : ": ",
			     isempty(text) ? "" : text) < 0) {
			st->message = NULL;
			return -ENOMEM;
		}
	}
	return kube_status_errno(st->code, st->reason);
}

static int answer_json(const struct kube_call *call, const struct httpc_response *resp,
		       json_t **ret, struct kube_status *st)
{
	json_error_t e;

	*ret = NULL;
	if (call->kind == CALL_STREAM || resp->body.len == 0)
		return 0;
	*ret = json_loadb(resp->body.data, resp->body.len, 0, &e);
	if (*ret)
		return 0;
	if (asprintf(&st->message, "%s %s: the %ld answer is not JSON: %s (byte %d)",
		     httpc_method_to_string(call->method), call->path, resp->status, e.text,
		     e.position) < 0)
		st->message = NULL;
	return -EBADMSG;
}

/* ---- lists ---- */

static int buf_append_escaped(struct buf *b, const char *s)
{
	int r = 0;

	for (; *s && r >= 0; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch))
			r = buf_append(b, s, 1);
		else
			r = buf_printf(b, "%%%02X", ch);
	}
	return r;
}

static int query_add(struct buf *b, const char *key, const char *value)
{
	int r = buf_printf(b, "%s%s=", memchr(b->data, '?', b->len) ? "&" : "?", key);

	return r < 0 ? r : buf_append_escaped(b, value);
}

/* The next page's path: the selectors every time; the first page also carries the
 * resourceVersion, later ones the continue token instead (the server refuses both). */
static int list_set_path(struct kube_call *call, const struct list_spec *spec, const char *cont)
{
	struct buf b = BUF_INIT(0);
	int r;

	r = buf_append_str(&b, call->list_base);
	if (r >= 0 && spec->label_selector)
		r = query_add(&b, "labelSelector", spec->label_selector);
	if (r >= 0 && spec->field_selector)
		r = query_add(&b, "fieldSelector", spec->field_selector);
	if (r >= 0 && !call->list_full)
		r = buf_printf(&b, "%slimit=%u", memchr(b.data, '?', b.len) ? "&" : "?",
			       call->list_limit);
	if (r >= 0 && cont)
		r = query_add(&b, "continue", cont);
	else if (r >= 0 && spec->resource_version)
		r = query_add(&b, "resourceVersion", spec->resource_version);
	if (r < 0) {
		buf_free(&b);
		return r;
	}
	free(call->path);
	call->path = buf_steal(&b, NULL);
	return 0;
}

_printf_(3, 4) static int list_fail(struct kube_status *st, int error, const char *fmt, ...)
{
	va_list ap;

	free(st->message);
	va_start(ap, fmt);
	if (vasprintf(&st->message, fmt, ap) < 0)
		st->message = NULL;
	va_end(ap);
	return error;
}

/* Queue the next page of a list call; 1 on success, so that the caller does not complete. */
static int list_queue(struct kube_call *call, const char *cont, int *error, struct kube_status *st)
{
	int r = list_set_path(call, &call->list_spec, cont);

	if (r < 0) {
		*error = list_fail(st, r, "out of memory");
		return 0;
	}
	call->attempt = 0;
	wait_append(call);
	return 1;
}

/* Fold one answered page into the call's List. Returns 1 when another page was queued;
 * 0 when the call completes with *error and *obj (the merged List on success). */
static int list_next(struct kube_call *call, int *error, json_t **obj, struct kube_status *st,
		     size_t bytes)
{
	json_t *page = *obj, *items, *meta;
	const char *cont;

	if (*error == -ETIME && call->list && !call->list_full) {
		/* The continue token expired (410): fetch everything in one request, as
		 * client-go's pager does (FullListIfExpired). */
		log_debug("%s: continue token expired, listing without pages", call->list_base);
		json_decref(call->list);
		call->list = NULL;
		call->list_bytes = 0;
		call->list_full = true;
		kube_status_clear(st);
		*error = 0;
		return list_queue(call, NULL, error, st);
	}
	if (*error < 0)
		return 0;
	items = json_object_get(page, "items");
	if (!json_is_object(page) || (items && !json_is_array(items) && !json_is_null(items))) {
		*error = list_fail(st, -EBADMSG, "GET %s: the answer is not a List", call->path);
		return 0;
	}
	call->list_bytes += bytes;
	if (++call->list_pages > KUBE_LIST_MAX_PAGES || call->list_bytes > KUBE_LIST_MAX_BYTES) {
		*error = list_fail(st, -E2BIG, "GET %s: list exceeds %u pages or %u bytes",
				   call->path, KUBE_LIST_MAX_PAGES, KUBE_LIST_MAX_BYTES);
		return 0;
	}
	if (!call->list) {
		call->list = json_incref(page);
		/* "items": null is legal from some servers; callers get an array (§6.22) */
		if (!json_is_array(items) &&
		    json_object_set_new(call->list, "items", json_array()) < 0)
			*error = list_fail(st, -ENOMEM, "out of memory");
	} else if (json_is_array(items) &&
		   json_array_extend(json_object_get(call->list, "items"), items) < 0) {
		*error = list_fail(st, -ENOMEM, "out of memory");
	}
	if (*error < 0)
		return 0;
	cont = json_string_value(json_object_get(json_object_get(page, "metadata"), "continue"));
	if (!isempty(cont))
		return list_queue(call, cont, error, st);
	meta = json_object_get(call->list, "metadata");
	json_object_del(meta, "continue");
	json_object_del(meta, "remainingItemCount");
	json_decref(*obj);
	*obj = TAKE_PTR(call->list);
	return 0;
}

/* ---- completion ---- */

static void call_finish(struct kube_call *call, const struct httpc_response *resp)
{
	_cleanup_(kube_status_clear) struct kube_status st = { .code = resp->status };
	json_auto_t *obj = NULL;
	int error;

	if (resp->error < 0) {
		st.code = 0;
		error = resp->error;
		st.message =
		    strdup(resp->error_message[0] ? resp->error_message : strerror(-resp->error));
	} else if (resp->status >= 200 && resp->status < 300) {
		error = answer_json(call, resp, &obj, &st);
	} else {
		error = answer_failure(resp, &st);
	}
	if (call->kind == CALL_LIST && list_next(call, &error, &obj, &st, resp->body.len) > 0)
		return;
	call_complete(call, error, obj, &st);
}

static void call_on_done(struct httpc_request *req, struct httpc_response *resp, void *userdata)
{
	struct kube_call *call = userdata;
	struct kube_client *c = call->client;
	uint64_t delay;

	call->req = NULL;
	if (call->kind != CALL_STREAM)
		c->n_running--;
	if (resp->status > 0)
		c->last_contact = now_usec();
	delay = call_retry_delay(call, resp);
	if (delay > 0)
		call_backoff(call, delay, resp);
	else
		call_finish(call, resp);
	client_dispatch(c);
}

/* ---- starting calls ---- */

static bool path_valid(const char *path)
{
	if (!path || path[0] != '/')
		return false;
	for (const char *p = path; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '#')
			return false;
	return true;
}

static void call_freep(struct kube_call **call)
{
	if (*call)
		call_free(*call);
}

static int call_new(struct kube_client *c, enum call_kind kind, enum httpc_method method,
		    const char *path, kube_done_fn done, void *userdata, struct kube_call **ret)
{
	_cleanup_(call_freep) struct kube_call *call = NULL;
	int r;

	if (!c || !done || !path_valid(path))
		return -EINVAL;
	if (c->n_waiting >= KUBE_MAX_WAITING)
		return log_debug_errno(ENOBUFS, "%u Kubernetes calls already queued, refusing %s",
				       c->n_waiting, path);
	call = calloc(1, sizeof *call);
	if (!call)
		return -ENOMEM;
	call->client = c;
	call->next = c->calls;
	if (c->calls)
		c->calls->prev = call;
	c->calls = call;
	call->kind = kind;
	call->method = method;
	call->idempotent = method != HTTPC_POST;
	call->done = done;
	call->userdata = userdata;
	call->path = strdup(path);
	if (!call->path)
		return -ENOMEM;
	r = sd_event_add_time_relative(c->event, &call->timer, CLOCK_MONOTONIC, 0,
				       TIMER_ACCURACY_USEC, call_on_timer, call);
	if (r < 0)
		return r;
	(void)sd_event_source_set_enabled(call->timer, SD_EVENT_OFF);
	(void)sd_event_source_set_description(call->timer, "kube-call");
	*ret = TAKE_PTR(call);
	return 0;
}

static int call_set_body(struct kube_call *call, const json_t *body, const char *content_type)
{
	if (!body)
		return -EINVAL;
	call->body = json_dumps(body, JSON_COMPACT);
	if (!call->body)
		return -EINVAL; /* not serializable (NaN, a non-object at the top, …) or no memory
				 */
	call->body_len = strlen(call->body);
	call->content_type = content_type;
	return 0;
}

static int call_submit(struct kube_call *call, struct kube_call **ret)
{
	wait_append(call);
	if (ret)
		*ret = call;
	client_dispatch(call->client);
	return 0;
}

int kube_get(struct kube_client *c, const char *path, kube_done_fn done, void *userdata,
	     struct kube_call **ret)
{
	struct kube_call *call;
	int r = call_new(c, CALL_REQUEST, HTTPC_GET, path, done, userdata, &call);

	return r < 0 ? r : call_submit(call, ret);
}

static int body_call(struct kube_client *c, enum httpc_method method, const char *path,
		     const json_t *body, const char *content_type, kube_done_fn done,
		     void *userdata, struct kube_call **ret)
{
	_cleanup_(call_freep) struct kube_call *call = NULL;
	int r;

	r = call_new(c, CALL_REQUEST, method, path, done, userdata, &call);
	if (r < 0)
		return r;
	if (body || method != HTTPC_DELETE) {
		r = call_set_body(call, body, content_type);
		if (r < 0)
			return r;
	}
	return call_submit(TAKE_PTR(call), ret);
}

int kube_create(struct kube_client *c, const char *path, json_t *obj, kube_done_fn done,
		void *userdata, struct kube_call **ret)
{
	return body_call(c, HTTPC_POST, path, obj, "application/json", done, userdata, ret);
}

int kube_update(struct kube_client *c, const char *path, json_t *obj, kube_done_fn done,
		void *userdata, struct kube_call **ret)
{
	return body_call(c, HTTPC_PUT, path, obj, "application/json", done, userdata, ret);
}

int kube_patch(struct kube_client *c, const char *path, enum kube_patch_type t, json_t *patch,
	       kube_done_fn done, void *userdata, struct kube_call **ret)
{
	static const char *const types[] = {
		[KUBE_PATCH_MERGE] = "application/merge-patch+json",
		[KUBE_PATCH_STRATEGIC] = "application/strategic-merge-patch+json",
		[KUBE_PATCH_JSON] = "application/json-patch+json",
	};
	struct kube_call *call;
	int r;

	if ((unsigned)t >= ELEMENTSOF(types))
		return -EINVAL;
	r = body_call(c, HTTPC_PATCH, path, patch, types[t], done, userdata, &call);
	if (r < 0)
		return r;
	/* Merge patches state the result and can be repeated; a JSON patch may append to
	 * a list ("path": "/x/-") and must not run twice. */
	call->idempotent = t != KUBE_PATCH_JSON;
	if (ret)
		*ret = call;
	return 0;
}

/* metav1.DeleteOptions (spec §1.4). */
static json_t *delete_options_json(const struct kube_delete_options *o)
{
	json_auto_t *j = json_pack("{s:s, s:s}", "kind", "DeleteOptions", "apiVersion", "v1");
	json_t *pre;

	if (!j)
		return NULL;
	if (o->grace_period_seconds >= 0 &&
	    json_object_set_new(j, "gracePeriodSeconds", json_integer(o->grace_period_seconds)) < 0)
		return NULL;
	if (o->precondition_uid || o->precondition_resource_version) {
		pre = json_object();
		if (json_object_set_new(j, "preconditions", pre) < 0)
			return NULL;
		if (o->precondition_uid &&
		    json_object_set_new(pre, "uid", json_string(o->precondition_uid)) < 0)
			return NULL;
		if (o->precondition_resource_version &&
		    json_object_set_new(pre, "resourceVersion",
					json_string(o->precondition_resource_version)) < 0)
			return NULL;
	}
	if (o->propagation &&
	    json_object_set_new(j, "propagationPolicy", json_string(o->propagation)) < 0)
		return NULL;
	return TAKE_PTR(j);
}

int kube_delete(struct kube_client *c, const char *path, const struct kube_delete_options *o,
		kube_done_fn done, void *userdata, struct kube_call **ret)
{
	json_auto_t *body = NULL;

	if (o) {
		body = delete_options_json(o);
		if (!body)
			return -EINVAL; /* strings that are not UTF-8, or no memory */
	}
	return body_call(c, HTTPC_DELETE, path, body, "application/json", done, userdata, ret);
}

int kube_list(struct kube_client *c, const char *path, const struct kube_list_options *o,
	      kube_done_fn done, void *userdata, struct kube_call **ret)
{
	_cleanup_(call_freep) struct kube_call *call = NULL;
	const struct kube_list_options none = { 0 };
	struct list_spec *spec;
	int r;

	r = call_new(c, CALL_LIST, HTTPC_GET, path, done, userdata, &call);
	if (r < 0)
		return r;
	o = o ? o : &none;
	spec = &call->list_spec;
	call->list_base = TAKE_PTR(call->path);
	call->list_limit = o->limit ? o->limit : DEFAULT_LIST_LIMIT;
	if (strdup_or_null(o->label_selector, &spec->label_selector) < 0 ||
	    strdup_or_null(o->field_selector, &spec->field_selector) < 0 ||
	    strdup_or_null(o->resource_version, &spec->resource_version) < 0)
		return -ENOMEM;
	r = list_set_path(call, spec, NULL);
	if (r < 0)
		return r;
	return call_submit(TAKE_PTR(call), ret);
}

int kube_stream(struct kube_client *c, const char *path, kube_data_fn on_data, kube_done_fn done,
		void *userdata, struct kube_call **ret)
{
	struct kube_call *call;
	int r;

	if (!on_data)
		return -EINVAL;
	r = call_new(c, CALL_STREAM, HTTPC_GET, path, done, userdata, &call);
	if (r < 0)
		return r;
	call->on_data = on_data;
	return call_submit(call, ret);
}

void kube_call_cancel(struct kube_call *call)
{
	struct kube_client *c;

	if (!call || call->state == CALL_DONE || call->cancelled)
		return;
	c = call->client;
	if (call->state == CALL_RUNNING) {
		httpc_request_cancel(call->req);
		call->req = NULL;
		if (call->kind != CALL_STREAM)
			c->n_running--;
		if (call->in_data) {
			call->cancelled = true; /* call_on_data() frees it */
			return;
		}
	}
	call_free(call);
	client_dispatch(c);
}

/* ---- the client ---- */

int kube_client_new(sd_event *e, const struct kube_config *cfg,
		    const struct kube_client_options *opts, struct kube_client **ret)
{
	_cleanup_(kube_client_freep) struct kube_client *c = NULL;
	struct kube_client_options o = opts ? *opts : (struct kube_client_options){ 0 };
	int r;

	if (!e || !cfg || isempty(cfg->server) || !ret || !(o.qps >= 0) ||
	    (o.user_agent && strpbrk(o.user_agent, "\r\n")))
		return -EINVAL;
	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->event = sd_event_ref(e);
	r = kube_config_copy(cfg, &c->cfg);
	if (r < 0)
		return r;
	r = httpc_new(e, &c->httpc);
	if (r < 0)
		return r;
	c->max_retries = o.max_retries == KUBE_NO_RETRY ? 0
			 : o.max_retries                ? o.max_retries
							: DEFAULT_MAX_RETRIES;
	c->timeout_usec = o.timeout_usec ? o.timeout_usec : DEFAULT_TIMEOUT_USEC;
	if (asprintf(&c->user_agent, "User-Agent: %s",
		     o.user_agent ? o.user_agent : "cocoon/" COCOON_VERSION) < 0) {
		c->user_agent = NULL;
		return -ENOMEM;
	}
	kube_bucket_init(&c->bucket, o.qps > 0 ? o.qps : DEFAULT_QPS,
			 o.burst ? o.burst : DEFAULT_BURST, now_usec());
	r = sd_event_add_time_relative(e, &c->rate_timer, CLOCK_MONOTONIC, 0, TIMER_ACCURACY_USEC,
				       client_on_rate_timer, c);
	if (r < 0)
		return r;
	(void)sd_event_source_set_enabled(c->rate_timer, SD_EVENT_OFF);
	(void)sd_event_source_set_description(c->rate_timer, "kube-rate-limit");
	*ret = TAKE_PTR(c);
	return 0;
}

void kube_client_free(struct kube_client *c)
{
	if (!c)
		return;
	while (c->calls) {
		httpc_request_cancel(c->calls->req);
		call_free(c->calls);
	}
	httpc_free(c->httpc);
	sd_event_source_disable_unref(c->rate_timer);
	kube_config_free(c->cfg);
	free(c->user_agent);
	free(c->token);
	sd_event_unref(c->event);
	free(c);
}

const char *kube_client_namespace(const struct kube_client *c)
{
	return c && c->cfg->namespace ? c->cfg->namespace : "default";
}

uint64_t kube_client_last_contact(const struct kube_client *c)
{
	return c ? c->last_contact : 0;
}

sd_event *kube_client_event(const struct kube_client *c)
{
	return c ? c->event : NULL;
}

/* ---- blocking calls ---- */

struct sync_result {
	bool done;
	int error;
	json_t *obj;
	struct kube_status status;
};

static void sync_on_done(struct kube_call *call, int error, json_t *obj,
			 const struct kube_status *status, void *userdata)
{
	struct sync_result *s = userdata;

	s->done = true;
	s->error = error;
	s->obj = json_incref(obj);
	s->status.code = status->code;
	if (strdup_or_null(status->reason, &s->status.reason) < 0 ||
	    strdup_or_null(status->message, &s->status.message) < 0)
		s->error = error < 0 ? error : -ENOMEM;
}

static int sync_start(struct kube_client *c, const char *method, const char *path, json_t *body,
		      struct sync_result *s)
{
	static const struct {
		const char *name;
		enum httpc_method method;
		const char *content_type;
	} methods[] = {
		{ "POST", HTTPC_POST, "application/json" },
		{ "PUT", HTTPC_PUT, "application/json" },
		{ "PATCH", HTTPC_PATCH, "application/merge-patch+json" },
		{ "DELETE", HTTPC_DELETE, "application/json" },
	};

	if (streq_ptr(method, "GET"))
		return kube_get(c, path, sync_on_done, s, NULL);
	for (size_t i = 0; i < ELEMENTSOF(methods); i++)
		if (streq_ptr(method, methods[i].name))
			return body_call(c, methods[i].method, path, body, methods[i].content_type,
					 sync_on_done, s, NULL);
	return -EINVAL;
}

int kube_request_sync(const struct kube_config *cfg, const char *method, const char *path,
		      json_t *body, json_t **ret_obj, struct kube_status *ret_status)
{
	_cleanup_(sd_event_unrefp) sd_event *e = NULL;
	_cleanup_(kube_client_freep) struct kube_client *c = NULL;
	struct sync_result s = { 0 };
	int r;

	r = sd_event_new(&e);
	if (r < 0)
		return r;
	r = kube_client_new(e, cfg, NULL, &c);
	if (r < 0)
		return r;
	r = sync_start(c, method, path, body, &s);
	if (r < 0)
		return r;
	while (!s.done) {
		r = sd_event_run(e, UINT64_MAX);
		if (r < 0)
			return r;
	}
	if (s.error < 0) {
		if (ret_status)
			*ret_status = s.status;
		else
			kube_status_clear(&s.status);
		return s.error;
	}
	kube_status_clear(&s.status);
	if (ret_obj)
		*ret_obj = s.obj;
	else
		json_decref(s.obj);
	return 0;
}
