/* Watches (spec kube-api.md §1.7): one streaming GET at a time with ?watch=1, split into
 * events by kube_stream.c, decoded as {"type","object"}, resumed from the last
 * resourceVersion seen (BOOKMARKs included) whenever a stream ends.
 *
 * What ends a stream and what follows:
 *   clean end (timeoutSeconds)      re-watch at once from the last RV, like client-go's
 *                                   reflector; a stream that ended within a second with no
 *                                   event counts as a failure so a broken server is not
 *                                   hammered
 *   ERROR event 410/Expired, or an  on_expired; nothing more until kube_watch_restart(): the
 *   HTTP 410 answer                 caller must relist (a real server answers 200 + ERROR,
 *                                   some doubles a plain 410; both mean the same)
 *   anything else                   on_error, then a retry from the last RV after a jittered
 *                                   exponential backoff (1 s doubling to 30 s), reset by the
 *                                   first event of a later stream
 * A stream that outlives its timeoutSeconds by 30 s (or by the timeout, when shorter) is
 * presumed dead (a silent peer) and treated as a failure.
 *
 * Handlers may call kube_watch_restart() or kube_watch_free() on their own watch: the
 * watch notices on return (generation counter, dead flag) and unwinds before touching
 * anything. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cocoon/buf.h"
#include "cocoon/kube.h"
#include "cocoon/log.h"

/* One event: an object (etcd allows 1.5 MiB) plus its JSON wrapping, with room to spare. */
#define WATCH_MAX_EVENT_BYTES      (16U * 1024 * 1024)
#define WATCH_BACKOFF_INITIAL_USEC (1000ULL * 1000)
#define WATCH_BACKOFF_MAX_USEC     (30ULL * 1000 * 1000)
#define WATCH_DEADLINE_GRACE_SEC   30U
#define WATCH_SHORT_STREAM_USEC    (1000ULL * 1000)
/* client-go's reflector picks timeoutSeconds in [5 min, 10 min) per watch so that many
 * clients do not reconnect together (kube-api.md §1.7, kubectl observed 376). */
#define WATCH_TIMEOUT_MIN_SEC 300U

struct kube_watch {
	struct kube_client *client;
	sd_event_source *timer; /* next start when idle; the stream's deadline while running */
	struct kube_call *call;
	struct kube_splitter *splitter;
	char *path, *label_selector, *field_selector;
	char *rv; /* last resourceVersion seen, or the one to start after; NULL: now */
	bool bookmarks;
	unsigned timeout_seconds;
	struct kube_watch_handlers h;
	void *userdata;

	uint64_t backoff_initial_usec, backoff_max_usec;
	unsigned failures; /* consecutive, for the backoff */
	uint64_t stream_started_usec;
	uint64_t stream_events;
	uint64_t generation; /* bumped whenever a stream starts or stops */
	unsigned dispatching;
	bool dead; /* freed from a handler; released when the outermost callback returns */
};

static void watch_release(struct kube_watch *w)
{
	sd_event_source_disable_unref(w->timer);
	kube_splitter_free(w->splitter);
	free(w->path);
	free(w->label_selector);
	free(w->field_selector);
	free(w->rv);
	free(w);
}

static uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void watch_stop_stream(struct kube_watch *w)
{
	if (w->call)
		kube_call_cancel(w->call);
	w->call = NULL;
	w->generation++;
	sd_event_source_set_enabled(w->timer, SD_EVENT_OFF);
}

static int watch_arm(struct kube_watch *w, uint64_t delay_usec)
{
	int r;

	r = sd_event_source_set_time(w->timer, now_usec() + delay_usec);
	if (r < 0)
		return r;
	return sd_event_source_set_enabled(w->timer, SD_EVENT_ONESHOT);
}

/* A failure the watch recovers from by itself: tell the caller, retry after the backoff.
 * Returns -ECANCELED so it can end a splitter callback. */
static int watch_fail(struct kube_watch *w, int error, const char *fmt, ...) _printf_(3, 4);
static int watch_fail(struct kube_watch *w, int error, const char *fmt, ...)
{
	char msg[512];
	uint64_t delay;
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	watch_stop_stream(w);
	w->failures++;
	delay = kube_backoff_usec(w->failures - 1, w->backoff_initial_usec, w->backoff_max_usec);
	log_debug("watch %s: %s; retrying in %" PRIu64 " ms", w->path, msg, delay / 1000);
	r = watch_arm(w, delay);
	if (r < 0)
		log_debug_errno(r, "watch %s: cannot arm the retry timer: %m", w->path);
	if (w->h.on_error)
		w->h.on_error(w, error < 0 ? error : -EIO, msg, w->userdata);
	return -ECANCELED;
}

static int watch_expire(struct kube_watch *w, const char *why)
{
	watch_stop_stream(w);
	log_debug("watch %s: %s; the caller must relist", w->path, why);
	if (w->h.on_expired)
		w->h.on_expired(w, w->userdata);
	return -ECANCELED;
}

static int append_param(struct buf *b, const char *name, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	int r;

	r = buf_printf(b, "%c%s=", strchr(b->data, '?') ? '&' : '?', name);
	for (const unsigned char *p = (const unsigned char *)value; r >= 0 && *p; p++) {
		/* RFC 3986 unreserved characters pass; selectors' '=', ',', '!' and '(' do not. */
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~", *p))
			r = buf_append(b, p, 1);
		else
			r = buf_printf(b, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
	}
	return r;
}

static char *watch_url(struct kube_watch *w, unsigned *ret_timeout)
{
	struct buf b = BUF_INIT(0);
	char timeout[16];
	unsigned t = w->timeout_seconds;
	int r;

	if (t == 0)
		t = WATCH_TIMEOUT_MIN_SEC + arc4random_uniform(WATCH_TIMEOUT_MIN_SEC);
	*ret_timeout = t;
	snprintf(timeout, sizeof(timeout), "%u", t);
	r = buf_append_str(&b, w->path);
	if (r >= 0)
		r = append_param(&b, "watch", "1");
	if (r >= 0 && w->bookmarks)
		r = append_param(&b, "allowWatchBookmarks", "true");
	if (r >= 0 && !isempty(w->label_selector))
		r = append_param(&b, "labelSelector", w->label_selector);
	if (r >= 0 && !isempty(w->field_selector))
		r = append_param(&b, "fieldSelector", w->field_selector);
	if (r >= 0 && !isempty(w->rv))
		r = append_param(&b, "resourceVersion", w->rv);
	if (r >= 0)
		r = append_param(&b, "timeoutSeconds", timeout);
	if (r < 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b, NULL);
}

static int watch_on_data(struct kube_call *call, const void *data, size_t len, void *userdata);
static void watch_on_done(struct kube_call *call, int error, json_t *obj,
			  const struct kube_status *status, void *userdata);

static int watch_start_stream(struct kube_watch *w)
{
	unsigned timeout;
	_cleanup_(freep) char *url = watch_url(w, &timeout);
	int r;

	if (!url)
		return -ENOMEM;
	kube_splitter_reset(w->splitter);
	r = kube_stream(w->client, url, watch_on_data, watch_on_done, w, &w->call);
	if (r < 0)
		return r;
	w->generation++;
	w->stream_started_usec = now_usec();
	w->stream_events = 0;
	log_debug("watch %s: streaming %s", w->path, url);
	/* The server closes at timeoutSeconds; one that has not after the grace (30 s, or
	 * the timeout itself when shorter) is presumed gone without a FIN. */
	r = watch_arm(w, (timeout + MIN(timeout, WATCH_DEADLINE_GRACE_SEC)) * 1000000ULL);
	if (r < 0)
		log_debug_errno(r, "watch %s: cannot arm the stream deadline: %m", w->path);
	return 0;
}

static int watch_on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct kube_watch *w = userdata;
	int r;

	w->dispatching++;
	if (w->call) {
		watch_fail(w, -ETIMEDOUT, "watch stream still open well after its timeoutSeconds");
	} else {
		r = watch_start_stream(w);
		if (r < 0)
			watch_fail(w, r, "cannot start the watch stream: %s", strerror(-r));
	}
	w->dispatching--;
	if (w->dead && !w->dispatching)
		watch_release(w);
	return 0;
}

static int watch_on_error_event(struct kube_watch *w, json_t *status)
{
	json_int_t code = json_integer_value(json_object_get(status, "code"));
	const char *reason = json_string_value(json_object_get(status, "reason"));
	const char *message = json_string_value(json_object_get(status, "message"));
	char why[512];
	int r;

	snprintf(why, sizeof(why), "ERROR event: %" JSON_INTEGER_FORMAT " %s: %s", code,
		 reason ?: "(no reason)", message ?: "(no message)");
	if (code == 410 || streq_ptr(reason, "Expired") || streq_ptr(reason, "Gone"))
		return watch_expire(w, why);
	r = kube_status_errno(code, reason);
	return watch_fail(w, r < 0 ? r : -EIO, "%s", why);
}

static const char *const event_types[] = {
	[KUBE_ADDED] = "ADDED",
	[KUBE_MODIFIED] = "MODIFIED",
	[KUBE_DELETED] = "DELETED",
	[KUBE_BOOKMARK] = "BOOKMARK",
};

/* A well-formed JSON value that is not a usable event: report it and skip it, as
 * client-go does; the stream itself is fine. */
static int watch_skip_event(struct kube_watch *w, uint64_t n, const char *what)
{
	char msg[256];

	snprintf(msg, sizeof(msg), "watch event %" PRIu64 " of the stream: %s; skipped", n, what);
	log_debug("watch %s: %s", w->path, msg);
	if (w->h.on_error)
		w->h.on_error(w, -EBADMSG, msg, w->userdata);
	return 0;
}

static int watch_dispatch(struct kube_watch *w, json_t *ev)
{
	const char *type = json_string_value(json_object_get(ev, "type"));
	json_t *obj = json_object_get(ev, "object");
	const char *rv;
	char *copy;
	uint64_t n = ++w->stream_events;
	int t = -1;

	if (!type)
		return watch_skip_event(w, n, "no \"type\" string");
	if (!json_is_object(obj))
		return watch_skip_event(w, n, "no \"object\" object");
	if (streq(type, "ERROR"))
		return watch_on_error_event(w, obj);
	for (size_t i = 0; i < ELEMENTSOF(event_types); i++)
		if (streq(type, event_types[i]))
			t = (int)i;
	if (t < 0)
		return watch_skip_event(w, n, "unknown \"type\"");
	rv =
	    json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
	if (isempty(rv))
		return watch_skip_event(w, n, "no object.metadata.resourceVersion");
	copy = strdup(rv);
	if (!copy)
		return watch_fail(w, -ENOMEM, "out of memory");
	free(w->rv);
	w->rv = copy;
	w->failures = 0;
	if (w->h.on_event)
		w->h.on_event(w, (enum kube_event_type)t, obj, w->userdata);
	return 0;
}

static int watch_on_object(const char *json, size_t len, void *userdata)
{
	struct kube_watch *w = userdata;
	uint64_t gen = w->generation;
	json_error_t err;
	json_t *ev;
	int r;

	ev = json_loadb(json, len, 0, &err);
	if (!ev)
		return watch_fail(w, -EBADMSG,
				  "watch event %" PRIu64 ": invalid JSON: %s (column %d)",
				  w->stream_events + 1, err.text, err.column);
	r = watch_dispatch(w, ev);
	json_decref(ev);
	/* A handler that restarted or freed the watch ends this stream's delivery. */
	if (r >= 0 && (w->dead || gen != w->generation))
		r = -ECANCELED;
	return r;
}

static int watch_on_data(struct kube_call *call, const void *data, size_t len, void *userdata)
{
	struct kube_watch *w = userdata;
	uint64_t gen = w->generation;
	int r;

	w->dispatching++;
	r = kube_splitter_feed(w->splitter, data, len);
	if (r < 0 && r != -ECANCELED && !w->dead && gen == w->generation)
		watch_fail(w, r, "watch stream: %s", kube_splitter_error(w->splitter));
	w->dispatching--;
	if (w->dead) {
		if (!w->dispatching)
			watch_release(w);
		return -ECANCELED;
	}
	return gen == w->generation ? 0 : -ECANCELED;
}

static void watch_on_done(struct kube_call *call, int error, json_t *obj,
			  const struct kube_status *status, void *userdata)
{
	struct kube_watch *w = userdata;
	size_t pending = kube_splitter_pending(w->splitter);
	bool short_stream = now_usec() - w->stream_started_usec < WATCH_SHORT_STREAM_USEC;

	/* The call is gone once we return: forget it rather than cancel it. */
	w->call = NULL;
	w->generation++;
	sd_event_source_set_enabled(w->timer, SD_EVENT_OFF);
	w->dispatching++;
	if (error >= 0 && pending > 0)
		watch_fail(w, -EPIPE, "watch stream ended inside an event (%zu bytes)", pending);
	else if (error >= 0 && short_stream && w->stream_events == 0)
		watch_fail(w, -EPIPE, "watch stream closed within a second without events");
	else if (error >= 0) {
		w->failures = 0;
		watch_arm(w, 0);
	} else if ((status && status->code == 410) || error == -ETIME)
		watch_expire(w, "410 Gone/Expired answer");
	else if (status && status->code > 0)
		watch_fail(w, error, "%ld %s: %s", status->code, status->reason ?: "",
			   status->message ?: "");
	else
		watch_fail(w, error, "%s",
			   status && status->message ? status->message : strerror(-error));
	w->dispatching--;
	if (w->dead && !w->dispatching)
		watch_release(w);
}

static int watch_copy_options(struct kube_watch *w, const struct kube_watch_options *o)
{
	if (!o)
		return 0;
	w->bookmarks = o->bookmarks;
	w->timeout_seconds = o->timeout_seconds;
	if ((o->label_selector && !(w->label_selector = strdup(o->label_selector))) ||
	    (o->field_selector && !(w->field_selector = strdup(o->field_selector))) ||
	    (!isempty(o->resource_version) && !(w->rv = strdup(o->resource_version))))
		return -ENOMEM;
	return 0;
}

int kube_watch_new(struct kube_client *c, const char *path, const struct kube_watch_options *o,
		   const struct kube_watch_handlers *h, void *userdata, struct kube_watch **ret)
{
	struct kube_watch *w;
	int r;

	if (!c || isempty(path) || path[0] != '/' || strchr(path, '?') || !ret)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->client = c;
	w->backoff_initial_usec = WATCH_BACKOFF_INITIAL_USEC;
	w->backoff_max_usec = WATCH_BACKOFF_MAX_USEC;
	if (h)
		w->h = *h;
	w->userdata = userdata;
	w->path = strdup(path);
	r = w->path ? watch_copy_options(w, o) : -ENOMEM;
	if (r >= 0)
		r = kube_splitter_new(WATCH_MAX_EVENT_BYTES, watch_on_object, w, &w->splitter);
	if (r >= 0)
		r = sd_event_add_time(kube_client_event(c), &w->timer, CLOCK_MONOTONIC, UINT64_MAX,
				      0, watch_on_timer, w);
	if (r >= 0)
		r = watch_start_stream(w);
	if (r < 0) {
		watch_release(w);
		return r;
	}
	*ret = w;
	return 0;
}

int kube_watch_restart(struct kube_watch *w, const char *resource_version)
{
	char *rv = NULL;

	if (!w || w->dead)
		return -EINVAL;
	if (!isempty(resource_version) && !(rv = strdup(resource_version)))
		return -ENOMEM;
	watch_stop_stream(w);
	free(w->rv);
	w->rv = rv;
	w->failures = 0;
	return watch_arm(w, 0);
}

const char *kube_watch_resource_version(const struct kube_watch *w)
{
	return w ? w->rv : NULL;
}

void kube_watch_set_backoff(struct kube_watch *w, uint64_t initial_usec, uint64_t max_usec)
{
	if (!w)
		return;
	w->backoff_initial_usec = initial_usec ?: WATCH_BACKOFF_INITIAL_USEC;
	w->backoff_max_usec = MAX(max_usec ?: WATCH_BACKOFF_MAX_USEC, w->backoff_initial_usec);
}

void kube_watch_free(struct kube_watch *w)
{
	if (!w || w->dead)
		return;
	watch_stop_stream(w);
	if (w->dispatching) {
		/* Inside one of our callbacks: the outermost one releases it on return. */
		w->dead = true;
		w->h = (struct kube_watch_handlers){ 0 };
		return;
	}
	watch_release(w);
}
