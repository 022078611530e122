/* File watches (see watch.h): one sd-event inotify source on the parent directory, filtered
 * by file name, plus a one-shot debounce timer. The directory is watched because a watch
 * on the file's inode would stay on the old inode after an atomic rename, and Kubernetes
 * secret volumes replace files by renaming the `..data` symlink (AtomicWriter), which
 * generates no event for the file name at all. */
#include <limits.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "cocoon/log.h"
#include "cocoon/loop.h"
#include "cocoon/watch.h"

/* The symlink Kubernetes' AtomicWriter swaps to publish a new version of a volume. */
#define WATCH_K8S_DATA_DIR "..data"

#define WATCH_DIR_MASK                                                                             \
	(IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |        \
	 IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

struct watch {
	sd_event *event;
	sd_event_source *inotify_src, *timer_src;
	char *path;
	const char *name; /* points into path */
	uint64_t debounce;
	watch_fn cb;
	void *userdata;
};

/* Is path a symlink into ..data/ (a Kubernetes projected file)? Checked at event time, so
 * a file that becomes such a link later is handled too. */
static bool watch_follows_data_dir(struct watch *w)
{
	char target[PATH_MAX];
	ssize_t n = readlink(w->path, target, sizeof target - 1);

	if (n < 0)
		return false;
	target[n] = 0;
	return strncmp(target, WATCH_K8S_DATA_DIR "/", strlen(WATCH_K8S_DATA_DIR "/")) == 0;
}

static bool watch_event_matters(struct watch *w, const struct inotify_event *ev)
{
	/* Lost events or the directory gone: the file may have changed either way. */
	if (ev->mask & (IN_Q_OVERFLOW | IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED | IN_UNMOUNT))
		return true;
	if (ev->len == 0)
		return false;
	if (streq(ev->name, w->name))
		return true;
	return streq(ev->name, WATCH_K8S_DATA_DIR) && watch_follows_data_dir(w);
}

static int watch_on_inotify(sd_event_source *s, const struct inotify_event *ev, void *userdata)
{
	struct watch *w = userdata;
	int enabled, r;

	if (!watch_event_matters(w, ev))
		return 0;
	r = sd_event_source_get_enabled(w->timer_src, &enabled);
	if (r < 0 || enabled != SD_EVENT_OFF)
		return 0; /* a window is already open: this event joins it */
	r = loop_timer_arm(w->timer_src, w->debounce);
	if (r < 0)
		log_debug_errno(r, "Cannot arm the debounce timer for %s, ignoring: %m", w->path);
	return 0;
}

static int watch_on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct watch *w = userdata;
	struct stat st;

	w->cb(w, stat(w->path, &st) >= 0, w->userdata);
	return 0;
}

int watch_new(sd_event *e, const char *path, watch_fn cb, void *userdata, struct watch **ret)
{
	_cleanup_(watch_freep) struct watch *w = NULL;
	_cleanup_(freep) char *dir = NULL;
	const char *slash;
	int r;

	if (!e || isempty(path) || !cb || !ret)
		return -EINVAL;
	slash = strrchr(path, '/');
	w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->event = sd_event_ref(e);
	w->cb = cb;
	w->userdata = userdata;
	w->debounce = WATCH_DEBOUNCE_DEFAULT_USEC;
	w->path = strdup(path);
	if (!slash)
		dir = strdup(".");
	else
		dir = strndup(path, slash == path ? 1 : (size_t)(slash - path));
	if (!w->path || !dir)
		return -ENOMEM;
	w->name = slash ? w->path + (slash - path) + 1 : w->path;
	if (isempty(w->name) || streq(w->name, ".") || streq(w->name, ".."))
		return log_debug_errno(EINVAL, "Cannot watch %s: not a file name", path);

	r = sd_event_add_inotify(e, &w->inotify_src, dir, WATCH_DIR_MASK, watch_on_inotify, w);
	if (r < 0)
		return log_debug_errno(r, "Cannot watch directory %s: %m", dir);
	r = sd_event_add_time_relative(e, &w->timer_src, CLOCK_MONOTONIC, w->debounce, 1000,
				       watch_on_timer, w);
	if (r < 0)
		return r;
	r = sd_event_source_set_enabled(w->timer_src, SD_EVENT_OFF);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(w);
	return 0;
}

void watch_free(struct watch *w)
{
	if (!w)
		return;
	sd_event_source_disable_unref(w->inotify_src);
	sd_event_source_disable_unref(w->timer_src);
	sd_event_unref(w->event);
	free(w->path);
	free(w);
}

void watch_set_debounce(struct watch *w, uint64_t usec)
{
	w->debounce = usec;
}

const char *watch_path(struct watch *w)
{
	return w->path;
}
