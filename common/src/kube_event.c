/* core/v1 Event recording (see kube.h), as client-go's record package writes them
 * (spec/kube-api.md §1.9 "Events"): POST /api/v1/namespaces/<ns>/events with the name
 * "<involved name>.<hex nanoseconds>", involvedObject, reason, message, type, source,
 * reportingComponent/Instance, first/lastTimestamp and count.
 *
 * Repeats of the same (source, involved object, type, reason, message) within 10 minutes of
 * the previous one are counted into the existing Event with a strategic merge PATCH of count
 * and lastTimestamp, as client-go's EventLogger does; a 404 on that patch (the Event expired
 * server-side) re-creates it under the same name with the full count. One request per Event
 * is in flight at a time: repeats arriving meanwhile are coalesced into the next patch, so
 * requests for one Event can never overtake each other.
 *
 * The dedup cache is an LRU list with a cap (it also bounds requests in flight, one per
 * entry). Events are best-effort: nothing here blocks or retries beyond the client's own
 * retries, failures are logged at debug level and counted (kube_recorder_failures()). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cocoon/buf.h"
#include "cocoon/kube.h"
#include "cocoon/log.h"

#define EVENT_DEDUP_WINDOW_USEC (10ULL * 60 * 1000 * 1000)
#define EVENT_CACHE_DEFAULT     4096
#define EVENT_MESSAGE_MAX       1024 /* events.k8s.io's note limit; kubectl shows one line */
#define EVENT_REASON_MAX        128
#define EVENT_NAME_MAX          253 /* DNS-1123 subdomain */
#define EVENT_KEY_SEP           "\x1f"

struct ev_entry {
	struct ev_entry *prev, *next; /* LRU list, most recently used first */
	struct kube_recorder *r;
	char *key;
	char *path;          /* the Event object's path */
	json_t *event;       /* the Event as first created, for a re-create after a 404 */
	unsigned count;      /* occurrences recorded */
	unsigned in_request; /* the count the request in flight carries */
	uint64_t last_mono;  /* last occurrence, for the dedup window */
	uint64_t last_wall;
	struct kube_call *call;
	bool created; /* the server has it: patch rather than create */
};

struct kube_recorder {
	struct kube_client *client;
	sd_event *event;
	char *component, *host;
	struct ev_entry *head, *tail;
	size_t n_entries, cache_max, in_flight;
	uint64_t failures;
	uint64_t last_name_ns;
	sd_event_source *flush_src;
	void (*flush_done)(struct kube_recorder *r, void *u);
	void *flush_userdata;
};

static uint64_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void ev_unlink(struct kube_recorder *r, struct ev_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		r->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		r->tail = e->prev;
	e->prev = e->next = NULL;
}

static void ev_push_front(struct kube_recorder *r, struct ev_entry *e)
{
	e->prev = NULL;
	e->next = r->head;
	if (r->head)
		r->head->prev = e;
	else
		r->tail = e;
	r->head = e;
}

static void ev_drop(struct kube_recorder *r, struct ev_entry *e)
{
	if (e->call)
		kube_call_cancel(e->call);
	ev_unlink(r, e);
	r->n_entries--;
	json_decref(e->event);
	free(e->key);
	free(e->path);
	free(e);
}

static struct ev_entry *ev_find(struct kube_recorder *r, const char *key)
{
	for (struct ev_entry *e = r->head; e; e = e->next)
		if (streq(e->key, key))
			return e;
	return NULL;
}

/* Room for one more entry: evicts the least recently used idle entries. */
static int ev_make_room(struct kube_recorder *r)
{
	struct ev_entry *e = r->tail;

	while (r->n_entries >= r->cache_max && e) {
		struct ev_entry *prev = e->prev;

		if (!e->call)
			ev_drop(r, e);
		e = prev;
	}
	return r->n_entries < r->cache_max ? 0 : -ENOBUFS;
}

static void ev_maybe_flushed(struct kube_recorder *r)
{
	if (r->in_flight == 0 && r->flush_done)
		sd_event_source_set_enabled(r->flush_src, SD_EVENT_ONESHOT);
}

static int ev_send(struct ev_entry *e);

static void ev_on_done(struct kube_call *call, int error, json_t *obj, const struct kube_status *st,
		       void *userdata)
{
	struct ev_entry *e = userdata;
	struct kube_recorder *r = e->r;

	e->call = NULL;
	r->in_flight--;
	if (error >= 0) {
		e->created = true;
		/* Repeats that came in meanwhile go out as one patch. */
		if (e->count > e->in_request && ev_send(e) < 0)
			r->failures++;
	} else if (error == -ENOENT && e->created) {
		log_debug("Event %s is gone, creating it again", e->path);
		e->created = false;
		if (ev_send(e) < 0)
			r->failures++;
	} else {
		r->failures++;
		log_debug_errno(error, "Cannot %s event %s (%ld %s: %s), dropping it: %m",
				e->created ? "update" : "create", e->path, st ? st->code : 0,
				st && st->reason ? st->reason : "-",
				st && st->message ? st->message : "-");
		/* Never created: forget it, the next occurrence starts over. Created: keep it,
		 * the next occurrence patches the full count. */
		if (!e->created)
			ev_drop(r, e);
	}
	ev_maybe_flushed(r);
}

static int ev_send(struct ev_entry *e)
{
	struct kube_recorder *r = e->r;
	char ts[KUBE_TIME_MAX];
	json_t *body;
	int q;

	kube_time_format(e->last_wall, false, ts);
	if (e->created) {
		body = json_pack("{s:I, s:s}", "count", (json_int_t)e->count, "lastTimestamp", ts);
		if (!body)
			return -ENOMEM;
		q = kube_patch(r->client, e->path, KUBE_PATCH_STRATEGIC, body, ev_on_done, e,
			       &e->call);
	} else {
		_cleanup_(freep) char *collection = strdup(e->path);
		char *slash = collection ? strrchr(collection, '/') : NULL;

		if (!slash)
			return -ENOMEM;
		*slash = 0;
		body = json_deep_copy(e->event);
		if (!body || json_object_set_new(body, "count", json_integer(e->count)) < 0 ||
		    json_object_set_new(body, "lastTimestamp", json_string(ts)) < 0) {
			json_decref(body);
			return -ENOMEM;
		}
		q = kube_create(r->client, collection, body, ev_on_done, e, &e->call);
	}
	json_decref(body);
	if (q < 0) {
		log_debug_errno(q, "Cannot send event %s: %m", e->path);
		return q;
	}
	e->in_request = e->count;
	r->in_flight++;
	return 0;
}

/* ---- building an Event ---- */

static const char *obj_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static const char *meta_str(const json_t *involved, const char *key)
{
	return obj_str(json_object_get(involved, "metadata"), key);
}

/* Cuts s to at most max bytes without splitting a UTF-8 sequence. */
static void utf8_truncate(char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return;
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	s[max] = 0;
}

/* "<involved name>.<hex nanoseconds>" (client-go's naming), unique per recorder even when
 * the clock does not move, and cut to stay a valid DNS subdomain. */
static char *ev_name(struct kube_recorder *r, const char *involved_name)
{
	uint64_t ns = kube_time_now() * 1000;
	char hex[17], *name;
	size_t keep;

	if (ns <= r->last_name_ns)
		ns = r->last_name_ns + 1;
	r->last_name_ns = ns;
	snprintf(hex, sizeof hex, "%" PRIx64, ns);
	keep = MIN(strlen(involved_name), EVENT_NAME_MAX - 1 - strlen(hex));
	while (keep > 0 && strchr("-.", involved_name[keep - 1]))
		keep--;
	if (asprintf(&name, "%.*s.%s", (int)keep, involved_name, hex) < 0)
		return NULL;
	return name;
}

static json_t *ev_involved(const json_t *involved)
{
	static const char *const meta_keys[] = { "namespace", "name", "uid", "resourceVersion" };
	json_t *ref = json_pack("{s:s}", "kind", obj_str(involved, "kind"));

	if (!ref)
		return NULL;
	for (size_t i = 0; i < ELEMENTSOF(meta_keys); i++) {
		const char *v = meta_str(involved, meta_keys[i]);

		if (!isempty(v) && json_object_set_new(ref, meta_keys[i], json_string(v)) < 0)
			goto fail;
	}
	if (!isempty(obj_str(involved, "apiVersion")) &&
	    json_object_set_new(ref, "apiVersion", json_string(obj_str(involved, "apiVersion"))) <
		0)
		goto fail;
	return ref;
fail:
	json_decref(ref);
	return NULL;
}

static json_t *ev_build(struct kube_recorder *r, const json_t *involved, const char *ns,
			const char *name, const char *type, const char *reason, const char *msg,
			uint64_t now)
{
	char ts[KUBE_TIME_MAX];
	json_t *ref = ev_involved(involved), *source, *ev;

	kube_time_format(now, false, ts);
	source = json_pack("{s:s}", "component", r->component);
	if (source && r->host && json_object_set_new(source, "host", json_string(r->host)) < 0)
		source = (json_decref(source), NULL);
	if (!ref || !source) {
		json_decref(ref);
		json_decref(source);
		return NULL;
	}
	ev = json_pack("{s:s, s:s, s:{s:s, s:s}, s:o, s:s, s:s, s:s, s:o, s:s, s:s, s:i, s:s}",
		       "apiVersion", "v1", "kind", "Event", "metadata", "name", name, "namespace",
		       ns, "involvedObject", ref, "reason", reason, "message", msg, "type", type,
		       "source", source, "firstTimestamp", ts, "lastTimestamp", ts, "count", 1,
		       "reportingComponent", r->component);
	if (ev && r->host && json_object_set_new(ev, "reportingInstance", json_string(r->host)) < 0)
		ev = (json_decref(ev), NULL);
	return ev;
}

static int ev_check(const json_t *involved, const char *type, const char *reason)
{
	if (!json_is_object(involved) || isempty(obj_str(involved, "kind")))
		return log_debug_errno(EINVAL, "Event: the involved object has no kind");
	if (isempty(meta_str(involved, "name")))
		return log_debug_errno(EINVAL, "Event: the involved %s has no metadata.name",
				       obj_str(involved, "kind"));
	if (!type || (!streq(type, "Normal") && !streq(type, "Warning")))
		return log_debug_errno(EINVAL, "Event: type \"%s\" is not Normal or Warning",
				       type ? type : "");
	if (isempty(reason) || strlen(reason) > EVENT_REASON_MAX)
		return log_debug_errno(EINVAL, "Event: reason must be 1-%d bytes",
				       EVENT_REASON_MAX);
	return 0;
}

static char *ev_key(struct kube_recorder *r, const json_t *involved, const char *type,
		    const char *reason, const char *msg)
{
	struct buf b = BUF_INIT(0);
	const char *parts[] = {
		r->component,
		r->host,
		obj_str(involved, "kind"),
		meta_str(involved, "namespace"),
		meta_str(involved, "name"),
		meta_str(involved, "uid"),
		obj_str(involved, "apiVersion"),
		type,
		reason,
		msg,
	};

	for (size_t i = 0; i < ELEMENTSOF(parts); i++)
		if (buf_append_str(&b, parts[i] ? parts[i] : "") < 0 ||
		    buf_append_str(&b, EVENT_KEY_SEP) < 0) {
			buf_free(&b);
			return NULL;
		}
	return buf_steal(&b, NULL);
}

/* A new cache entry and its Event; the caller sends it. */
static int ev_new_entry(struct kube_recorder *r, const json_t *involved, const char *type,
			const char *reason, const char *msg, char *key, struct ev_entry **ret)
{
	static const struct kube_resource events = { "", "v1", "events", true };
	const char *ns = meta_str(involved, "namespace");
	_cleanup_(freep) char *name = NULL;
	struct ev_entry *e;
	uint64_t now = kube_time_now();

	/* Events about cluster-scoped objects live in "default", as client-go puts them. */
	if (isempty(ns))
		ns = "default";
	name = ev_name(r, meta_str(involved, "name"));
	e = calloc(1, sizeof *e);
	if (!name || !e) {
		free(e);
		return -ENOMEM;
	}
	e->r = r;
	e->key = key;
	e->count = 1;
	e->last_mono = mono_now();
	e->last_wall = now;
	e->path = kube_path(&events, ns, name, NULL);
	e->event = ev_build(r, involved, ns, name, type, reason, msg, now);
	if (!e->path || !e->event) {
		json_decref(e->event);
		free(e->path);
		free(e);
		return -ENOMEM;
	}
	ev_push_front(r, e);
	r->n_entries++;
	*ret = e;
	return 0;
}

static int ev_record(struct kube_recorder *r, const json_t *involved, const char *type,
		     const char *reason, const char *msg)
{
	_cleanup_(freep) char *key = ev_key(r, involved, type, reason, msg);
	struct ev_entry *e;
	uint64_t now = mono_now();
	int q;

	if (!key)
		return -ENOMEM;
	e = ev_find(r, key);
	if (e && !e->call && now - e->last_mono > EVENT_DEDUP_WINDOW_USEC) {
		ev_drop(r, e);
		e = NULL;
	}
	if (e) {
		e->count++;
		e->last_mono = now;
		e->last_wall = kube_time_now();
		ev_unlink(r, e);
		ev_push_front(r, e);
		return e->call ? 0 : ev_send(e);
	}
	q = ev_make_room(r);
	if (q < 0)
		return log_debug_errno(q, "Event cache full (%zu events in flight), dropping %s",
				       r->cache_max, reason);
	q = ev_new_entry(r, involved, type, reason, msg, key, &e);
	if (q < 0)
		return q;
	TAKE_PTR(key);
	q = ev_send(e);
	if (q < 0)
		ev_drop(r, e);
	return q;
}

int kube_record(struct kube_recorder *r, const json_t *involved, const char *type,
		const char *reason, const char *fmt, ...)
{
	_cleanup_(freep) char *msg = NULL;
	va_list ap;
	int q;

	if (!r || !fmt)
		return -EINVAL;
	q = ev_check(involved, type, reason);
	if (q >= 0) {
		va_start(ap, fmt);
		q = vasprintf(&msg, fmt, ap) < 0 ? -ENOMEM : 0;
		va_end(ap);
	}
	if (q >= 0) {
		utf8_truncate(msg, EVENT_MESSAGE_MAX);
		q = ev_record(r, involved, type, reason, msg);
	}
	if (q < 0)
		r->failures++;
	return q;
}

static int ev_on_flush(sd_event_source *s, void *userdata)
{
	struct kube_recorder *r = userdata;
	void (*done)(struct kube_recorder *, void *) = r->flush_done;

	if (r->in_flight > 0 || !done)
		return 0;
	r->flush_done = NULL;
	done(r, r->flush_userdata); /* last: the caller may free r here */
	return 0;
}

int kube_recorder_flush(struct kube_recorder *r, void (*done)(struct kube_recorder *r, void *u),
			void *userdata)
{
	if (!r || !done)
		return -EINVAL;
	if (r->flush_done)
		return -EBUSY;
	r->flush_done = done;
	r->flush_userdata = userdata;
	ev_maybe_flushed(r);
	return 0;
}

uint64_t kube_recorder_failures(const struct kube_recorder *r)
{
	return r ? r->failures : 0;
}

void kube_recorder_set_cache_max(struct kube_recorder *r, size_t max)
{
	r->cache_max = max ? max : EVENT_CACHE_DEFAULT;
}

int kube_recorder_new(struct kube_client *c, const char *component, const char *host,
		      struct kube_recorder **ret)
{
	_cleanup_(kube_recorder_freep) struct kube_recorder *r = NULL;
	int q;

	if (!c || isempty(component) || !ret)
		return -EINVAL;
	r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	r->client = c;
	r->event = sd_event_ref(kube_client_event(c));
	r->cache_max = EVENT_CACHE_DEFAULT;
	r->component = strdup(component);
	r->host = isempty(host) ? NULL : strdup(host);
	if (!r->component || (!isempty(host) && !r->host))
		return -ENOMEM;
	q = sd_event_add_defer(r->event, &r->flush_src, ev_on_flush, r);
	if (q >= 0)
		q = sd_event_source_set_enabled(r->flush_src, SD_EVENT_OFF);
	if (q < 0)
		return q;
	*ret = TAKE_PTR(r);
	return 0;
}

void kube_recorder_free(struct kube_recorder *r)
{
	if (!r)
		return;
	while (r->head)
		ev_drop(r, r->head);
	sd_event_source_disable_unref(r->flush_src);
	sd_event_unref(r->event);
	free(r->component);
	free(r->host);
	free(r);
}
