/* Informers: a list+watch cache of one collection, like client-go's shared informer
 * (spec kube-api.md §1.6, §1.7). The first list fills the cache and marks it synced; a
 * watch from the list's resourceVersion keeps it current; when the watch expires (410) the
 * collection is listed again and the new list is diffed against the cache, emitting
 * add/update/delete for the differences as client-go's Replace does, so handlers never miss
 * a change that happened while the watch was gone.
 *
 * Objects are kept as the decoded JSON with metadata.managedFields dropped (the largest
 * part of most objects, and nothing a daemon reads), keyed "ns/name" or "name"; or, for a
 * compact informer, as that JSON's compact text, decoded again whenever it is read: a
 * decoded object costs about ten times its text (a jansson node per value, a hash table per
 * object), which for a daemon caching thousands of objects is most of its memory, while a
 * read is a few microseconds of parsing. Indexes map
 * value → set of keys and are updated with every change of the cache, before handlers run,
 * so a handler sees a consistent cache. Update handlers are skipped when the
 * resourceVersion did not change (a relist returns every object again).
 *
 * Handlers may call kube_informer_free(): every loop that calls handlers stops when the
 * informer died, and the outermost callback releases it. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cocoon/kube.h"
#include "cocoon/log.h"
#include "cocoon/loop.h"

#define INFORMER_RETRY_INITIAL_USEC (1000ULL * 1000)
#define INFORMER_RETRY_MAX_USEC     (30ULL * 1000 * 1000)
#define INFORMER_MAX_INDEXES        64U

struct informer_index {
	char *name;
	kube_index_fn fn;
	void *userdata;
	json_t *values; /* value → { key: true } */
};

struct kube_informer {
	struct kube_client *client;
	sd_event_source *timer; /* list retry */
	struct kube_call *list_call;
	struct kube_watch *watch;
	char *path, *label_selector, *field_selector, *first_rv;
	unsigned limit;
	struct kube_informer_handlers h;
	void *userdata;
	kube_transform_fn transform;
	void *transform_userdata;
	json_t *cache; /* key → trimmed object, or its compact text (a json string) */
	struct informer_index indexes[INFORMER_MAX_INDEXES];
	size_t n_indexes;
	bool started, synced, compact;
	unsigned list_failures;
	unsigned dispatching;
	bool dead;
};

static void informer_release(struct kube_informer *inf)
{
	if (inf->list_call)
		kube_call_cancel(inf->list_call);
	kube_watch_free(inf->watch);
	sd_event_source_disable_unref(inf->timer);
	for (size_t i = 0; i < inf->n_indexes; i++) {
		free(inf->indexes[i].name);
		json_decref(inf->indexes[i].values);
	}
	json_decref(inf->cache);
	free(inf->path);
	free(inf->label_selector);
	free(inf->field_selector);
	free(inf->first_rv);
	free(inf);
}

/* Enter and leave a callback that may run handlers; leave returns false (and releases the
 * informer when outermost) if a handler freed it. */
static void informer_enter(struct kube_informer *inf)
{
	inf->dispatching++;
}

static bool informer_leave(struct kube_informer *inf)
{
	inf->dispatching--;
	if (!inf->dead)
		return true;
	if (!inf->dispatching)
		informer_release(inf);
	return false;
}

/* ---- built-in index functions ---- */

static char **strv_one(const char *s)
{
	char **v;

	if (isempty(s))
		return NULL;
	v = calloc(2, sizeof(char *));
	if (v && !(v[0] = strdup(s))) {
		free(v);
		return NULL;
	}
	return v;
}

static char **index_namespace(const json_t *obj, void *userdata)
{
	return strv_one(
	    json_string_value(json_object_get(json_object_get(obj, "metadata"), "namespace")));
}

static char **index_node_name(const json_t *obj, void *userdata)
{
	return strv_one(
	    json_string_value(json_object_get(json_object_get(obj, "spec"), "nodeName")));
}

static char **index_label(const json_t *obj, void *userdata)
{
	const char *key = userdata;
	json_t *labels = json_object_get(json_object_get(obj, "metadata"), "labels");

	return strv_one(json_string_value(json_object_get(labels, key)));
}

static char **index_owner(const json_t *obj, void *userdata)
{
	json_t *refs = json_object_get(json_object_get(obj, "metadata"), "ownerReferences");
	size_t n = json_array_size(refs), k = 0, i;
	json_t *ref;
	char **v;

	if (n == 0)
		return NULL;
	v = calloc(n + 1, sizeof(char *));
	if (!v)
		return NULL;
	json_array_foreach (refs, i, ref) {
		const char *uid = json_string_value(json_object_get(ref, "uid"));

		if (!isempty(uid) && !(v[k++] = strdup(uid))) {
			strv_free(v);
			return NULL;
		}
	}
	return v;
}

static kube_index_fn builtin_index(const char *name)
{
	if (streq(name, "namespace"))
		return index_namespace;
	if (streq(name, "nodeName"))
		return index_node_name;
	if (streq(name, "owner"))
		return index_owner;
	return NULL;
}

/* ---- the cache and its indexes ---- */

static const char *object_rv(const json_t *obj)
{
	return json_string_value(
	    json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
}

/* "ns/name" or "name" into key; false when the object has no name. */
static bool object_key(const json_t *obj, char *key, size_t size)
{
	json_t *meta = json_object_get(obj, "metadata");
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	const char *name = json_string_value(json_object_get(meta, "name"));
	int n;

	if (isempty(name))
		return false;
	n = isempty(ns) ? snprintf(key, size, "%s", name) : snprintf(key, size, "%s/%s", ns, name);
	return n > 0 && (size_t)n < size;
}

/* Namespaces and names are DNS labels/subdomains (≤ 253 bytes each). */
#define KEY_MAX 512

static void object_trim(struct kube_informer *inf, json_t *obj)
{
	json_object_del(json_object_get(obj, "metadata"), "managedFields");
	if (inf->transform)
		inf->transform(obj, inf->transform_userdata);
}

static void index_file(struct informer_index *idx, const char *key, const json_t *obj, bool add)
{
	_cleanup_(strv_freep) char **values = obj ? idx->fn(obj, idx->userdata) : NULL;

	for (char **v = values; v && *v; v++) {
		json_t *set = json_object_get(idx->values, *v);

		if (add) {
			if (!set) {
				set = json_object();
				if (!set || json_object_set_new(idx->values, *v, set) < 0)
					continue;
			}
			json_object_set_new(set, key, json_true());
		} else if (set) {
			json_object_del(set, key);
			if (json_object_size(set) == 0)
				json_object_del(idx->values, *v);
		}
	}
}

static void indexes_update(struct kube_informer *inf, const char *key, const json_t *old,
			   const json_t *obj)
{
	for (size_t i = 0; i < inf->n_indexes; i++) {
		index_file(&inf->indexes[i], key, old, false);
		index_file(&inf->indexes[i], key, obj, true);
	}
}

/* What the cache holds for an object: the object itself, or its compact text. New
 * reference; NULL without memory. */
static json_t *cache_form(const struct kube_informer *inf, json_t *obj)
{
	_cleanup_(freep) char *text = NULL;

	if (!inf->compact)
		return json_incref(obj);
	text = json_dumps(obj, JSON_COMPACT);
	return text ? json_string_nocheck(text) : NULL;
}

/* The object under key as a new reference (decoded again for a compact informer); NULL
 * when absent. */
static json_t *cache_load(const struct kube_informer *inf, const char *key)
{
	json_t *stored = json_object_get(inf->cache, key);

	if (!inf->compact || !stored)
		return json_incref(stored);
	return json_loadb(json_string_value(stored), json_string_length(stored), 0, NULL);
}

/* Takes obj. Files it under key and calls on_add or on_update (not when the
 * resourceVersion is unchanged). Returns false if a handler freed the informer. */
static bool cache_upsert(struct kube_informer *inf, const char *key, json_t *obj)
{
	json_t *old = cache_load(inf, key);
	bool same = old && streq_ptr(object_rv(old), object_rv(obj));

	if (same || json_object_set_new(inf->cache, key, cache_form(inf, obj)) < 0) {
		json_decref(old);
		json_decref(obj);
		return true;
	}
	indexes_update(inf, key, old, obj);
	if (old && inf->h.on_update)
		inf->h.on_update(inf, old, obj, inf->userdata);
	else if (!old && inf->h.on_add)
		inf->h.on_add(inf, obj, inf->userdata);
	json_decref(old);
	json_decref(obj);
	return !inf->dead;
}

/* last is what on_delete gets: the watch's final state, or the cached object. */
static bool cache_delete(struct kube_informer *inf, const char *key, const json_t *last)
{
	json_t *old = cache_load(inf, key);

	if (!old)
		return true;
	indexes_update(inf, key, old, NULL);
	json_object_del(inf->cache, key);
	if (inf->h.on_delete)
		inf->h.on_delete(inf, last ?: old, inf->userdata);
	json_decref(old);
	return !inf->dead;
}

/* ---- list, relist and watch ---- */

static int informer_list(struct kube_informer *inf);

/* what: the failure, NULL for error's text; watch: it was starting the watch that failed. */
static void informer_retry(struct kube_informer *inf, int error, bool watch, const char *what)
{
	uint64_t delay;
	int r;

	inf->list_failures++;
	delay = kube_backoff_usec(inf->list_failures - 1, INFORMER_RETRY_INITIAL_USEC,
				  INFORMER_RETRY_MAX_USEC);
	/* A warning every time: the backoff bounds the rate (2 a minute at most), and a cache
	 * that cannot fill is why a daemon stays unready — the log must say so. */
	log_warning_errno(error, "cannot %s %s: %s; listing again in %.1f s",
			  watch ? "watch" : "list", inf->path, what ? what : strerror(-error),
			  (double)delay / 1e6);
	r = loop_timer_arm(inf->timer, delay);
	if (r < 0)
		log_debug_errno(r, "informer %s: cannot arm the list retry: %m", inf->path);
}

static int informer_on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct kube_informer *inf = userdata;
	int r;

	r = informer_list(inf);
	if (r < 0)
		informer_retry(inf, r, false, NULL);
	return 0;
}

/* Replace (client-go's DeltaFIFO.Replace): objects gone from the list are deleted, the
 * rest added or updated. items is borrowed; its elements are trimmed in place. */
static bool informer_replace(struct kube_informer *inf, json_t *items)
{
	_cleanup_(json_decrefp) json_t *fresh = json_object();
	const char *key;
	json_t *item, *obj, *tmp;
	char k[KEY_MAX];
	size_t i;

	if (!fresh)
		return true;
	json_array_foreach (items, i, item) {
		if (!object_key(item, k, sizeof(k))) {
			log_debug("informer %s: list item %zu has no metadata.name, ignoring",
				  inf->path, i);
			continue;
		}
		object_trim(inf, item);
		json_object_set(fresh, k, item);
	}
	json_object_foreach_safe(inf->cache, tmp, key, obj)
	{
		if (!json_object_get(fresh, key) && !cache_delete(inf, key, NULL))
			return false;
	}
	json_object_foreach (fresh, key, obj) {
		if (!cache_upsert(inf, key, json_incref(obj)))
			return false;
	}
	return true;
}

static void informer_on_event(struct kube_watch *w, enum kube_event_type t, json_t *obj,
			      void *userdata)
{
	struct kube_informer *inf = userdata;
	char key[KEY_MAX];

	if (t == KUBE_BOOKMARK)
		return;
	if (!object_key(obj, key, sizeof(key))) {
		log_debug("informer %s: watch event without metadata.name, ignoring", inf->path);
		return;
	}
	object_trim(inf, obj);
	informer_enter(inf);
	if (t == KUBE_DELETED)
		cache_delete(inf, key, obj);
	else
		cache_upsert(inf, key, json_incref(obj));
	informer_leave(inf);
}

static void informer_on_expired(struct kube_watch *w, void *userdata)
{
	struct kube_informer *inf = userdata;
	int r;

	log_debug("informer %s: watch expired, listing again", inf->path);
	r = informer_list(inf);
	if (r < 0)
		informer_retry(inf, r, false, NULL);
}

static void informer_on_watch_error(struct kube_watch *w, int error, const char *message,
				    void *userdata)
{
	struct kube_informer *inf = userdata;

	log_warning_errno(error, "watch of %s: %s; resuming after a backoff", inf->path, message);
}

static int informer_watch(struct kube_informer *inf, const char *rv)
{
	const struct kube_watch_options o = {
		.label_selector = inf->label_selector,
		.field_selector = inf->field_selector,
		.resource_version = rv,
		.bookmarks = true,
	};
	const struct kube_watch_handlers h = {
		.on_event = informer_on_event,
		.on_expired = informer_on_expired,
		.on_error = informer_on_watch_error,
	};

	if (inf->watch)
		return kube_watch_restart(inf->watch, rv);
	return kube_watch_new(inf->client, inf->path, &o, &h, inf, &inf->watch);
}

static void informer_on_list(struct kube_call *call, int error, json_t *obj,
			     const struct kube_status *status, void *userdata)
{
	struct kube_informer *inf = userdata;
	json_t *items = json_object_get(obj, "items");
	const char *rv =
	    json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
	int r;

	inf->list_call = NULL;
	if (error < 0) {
		informer_retry(inf, error, false,
			       status && status->message ? status->message : NULL);
		return;
	}
	/* Real servers send "items": [] but a null or missing list means the same (§6 #22). */
	if ((items && !json_is_array(items) && !json_is_null(items)) || isempty(rv)) {
		informer_retry(inf, -EBADMSG, false,
			       "list answer without an items array or metadata.resourceVersion");
		return;
	}
	if (inf->list_failures > 0)
		log_info("listed %s after %u failed attempt%s", inf->path, inf->list_failures,
			 inf->list_failures == 1 ? "" : "s");
	inf->list_failures = 0;
	informer_enter(inf);
	if (!informer_replace(inf, items)) {
		informer_leave(inf);
		return;
	}
	if (!inf->synced) {
		inf->synced = true;
		log_debug("informer %s: synced, %zu objects at resourceVersion %s", inf->path,
			  json_object_size(inf->cache), rv);
		if (inf->h.on_synced)
			inf->h.on_synced(inf, inf->userdata);
	}
	if (!informer_leave(inf))
		return;
	r = informer_watch(inf, rv);
	if (r < 0)
		informer_retry(inf, r, true, NULL);
}

static int informer_list(struct kube_informer *inf)
{
	const struct kube_list_options o = {
		.label_selector = inf->label_selector,
		.field_selector = inf->field_selector,
		.limit = inf->limit,
		/* Only the first list may be served from a cache ("0"); a relist after 410 must
		 * be at least as new as what the watch saw, so it is a consistent read. */
		.resource_version = inf->synced ? NULL : inf->first_rv,
	};

	if (inf->list_call)
		kube_call_cancel(inf->list_call);
	inf->list_call = NULL;
	return kube_list(inf->client, inf->path, &o, informer_on_list, inf, &inf->list_call);
}

/* ---- public API ---- */

static int dup_opt(const char *s, char **ret)
{
	*ret = NULL;
	return s && !(*ret = strdup(s)) ? -ENOMEM : 0;
}

int kube_informer_new(struct kube_client *c, const char *path,
		      const struct kube_list_options *selectors,
		      const struct kube_informer_handlers *h, void *userdata,
		      struct kube_informer **ret)
{
	const struct kube_list_options none = { 0 };
	struct kube_informer *inf;
	int r;

	if (!c || isempty(path) || path[0] != '/' || strchr(path, '?') || !ret)
		return -EINVAL;
	if (!selectors)
		selectors = &none;
	inf = calloc(1, sizeof(*inf));
	if (!inf)
		return -ENOMEM;
	inf->client = c;
	inf->limit = selectors->limit;
	if (h)
		inf->h = *h;
	inf->userdata = userdata;
	inf->cache = json_object();
	r = inf->cache ? dup_opt(path, &inf->path) : -ENOMEM;
	if (r >= 0)
		r = dup_opt(selectors->label_selector, &inf->label_selector);
	if (r >= 0)
		r = dup_opt(selectors->field_selector, &inf->field_selector);
	if (r >= 0)
		r = dup_opt(selectors->resource_version, &inf->first_rv);
	if (r >= 0)
		r = sd_event_add_time(kube_client_event(c), &inf->timer, CLOCK_MONOTONIC,
				      UINT64_MAX, 0, informer_on_timer, inf);
	if (r >= 0)
		r = sd_event_source_set_enabled(inf->timer, SD_EVENT_OFF);
	if (r < 0) {
		informer_release(inf);
		return r;
	}
	*ret = inf;
	return 0;
}

int kube_informer_set_transform(struct kube_informer *inf, kube_transform_fn fn, void *userdata)
{
	if (!inf)
		return -EINVAL;
	if (inf->started)
		return -EBUSY;
	inf->transform = fn;
	inf->transform_userdata = userdata;
	return 0;
}

int kube_informer_set_compact(struct kube_informer *inf, bool compact)
{
	if (!inf)
		return -EINVAL;
	if (inf->started)
		return -EBUSY;
	inf->compact = compact;
	return 0;
}

int kube_informer_add_index(struct kube_informer *inf, const char *name, kube_index_fn fn,
			    void *userdata)
{
	struct informer_index *idx;

	if (!inf || isempty(name))
		return -EINVAL;
	if (inf->started)
		return -EBUSY;
	for (size_t i = 0; i < inf->n_indexes; i++)
		if (streq(inf->indexes[i].name, name))
			return -EEXIST;
	if (inf->n_indexes >= INFORMER_MAX_INDEXES)
		return -E2BIG;
	idx = &inf->indexes[inf->n_indexes];
	*idx = (struct informer_index){ .fn = fn, .userdata = userdata };
	idx->name = strdup(name);
	idx->values = json_object();
	if (!idx->name || !idx->values) {
		free(idx->name);
		json_decref(idx->values);
		return -ENOMEM;
	}
	if (!fn && strncmp(name, "label:", 6) == 0 && name[6]) {
		idx->fn = index_label;
		idx->userdata = idx->name + 6; /* the label key */
	} else if (!fn) {
		idx->fn = builtin_index(name);
	}
	if (!idx->fn) {
		free(idx->name);
		json_decref(idx->values);
		return -EINVAL;
	}
	inf->n_indexes++;
	return 0;
}

int kube_informer_start(struct kube_informer *inf)
{
	int r;

	if (!inf)
		return -EINVAL;
	if (inf->started)
		return -EALREADY;
	r = informer_list(inf);
	if (r < 0)
		return r;
	inf->started = true;
	return 0;
}

bool kube_informer_synced(const struct kube_informer *inf)
{
	return inf && inf->synced;
}

json_t *kube_informer_get(const struct kube_informer *inf, const char *key)
{
	return inf && key ? cache_load(inf, key) : NULL;
}

/* Appends the object under key to out; false without memory. */
static bool append_cached(const struct kube_informer *inf, json_t *out, const char *key)
{
	json_t *obj = cache_load(inf, key);

	return obj && json_array_append_new(out, obj) == 0;
}

json_t *kube_informer_by_index(const struct kube_informer *inf, const char *index,
			       const char *value)
{
	const char *key;
	json_t *out, *v;

	if (!inf || !index || !value)
		return NULL;
	for (size_t i = 0; i < inf->n_indexes; i++) {
		if (!streq(inf->indexes[i].name, index))
			continue;
		out = json_array();
		json_object_foreach (json_object_get(inf->indexes[i].values, value), key, v) {
			if (out && !append_cached(inf, out, key)) {
				json_decref(out);
				return NULL;
			}
		}
		return out;
	}
	return NULL;
}

size_t kube_informer_size(const struct kube_informer *inf)
{
	return inf ? json_object_size(inf->cache) : 0;
}

json_t *kube_informer_list(const struct kube_informer *inf)
{
	const char *key;
	json_t *out, *obj;

	if (!inf)
		return NULL;
	out = json_array();
	json_object_foreach (inf->cache, key, obj) {
		if (out && !append_cached(inf, out, key)) {
			json_decref(out);
			return NULL;
		}
	}
	return out;
}

void kube_informer_free(struct kube_informer *inf)
{
	if (!inf || inf->dead)
		return;
	if (inf->dispatching) {
		/* Inside a handler: stop everything now, release on the way out. */
		inf->dead = true;
		inf->h = (struct kube_informer_handlers){ 0 };
		if (inf->list_call)
			kube_call_cancel(inf->list_call);
		inf->list_call = NULL;
		kube_watch_free(inf->watch);
		inf->watch = NULL;
		sd_event_source_set_enabled(inf->timer, SD_EVENT_OFF);
		return;
	}
	informer_release(inf);
}
