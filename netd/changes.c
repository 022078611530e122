/* The change set: the one answer to "what would change". Node setup, the cloud providers
 * and teardown only plan — they read kernel, file and cloud state and append an item per
 * difference — and the command then prints the set (--dry-run) or applies it in order.
 * A converged node plans nothing, which is how a second run knows to say "no changes".
 *
 * Also here: the plan helpers for the common item kinds (files, sysctls, commands) and
 * netd_run(), the synchronous command runner (iptables, gcloud, ve) with the original's
 * error format. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cocoon/child.h"
#include "cocoon/fsutil.h"
#include "cocoon/log.h"
#include "netd.h"

/* Files cocoon-net plans are small configs; anything larger is not one of ours. */
#define PLAN_FILE_READ_MAX (4 * 1024 * 1024)
/* Cloud CLIs can take minutes on a slow API; iptables takes milliseconds. */
#define RUN_TIMEOUT_USEC (300ULL * 1000000)
#define RUN_OUTPUT_CAP   (4 * 1024 * 1024)

static const char *const kind_names[_NETD_CHANGE_KIND_MAX] = {
	[NETD_CHANGE_FILE] = "file",       [NETD_CHANGE_LINK] = "link",
	[NETD_CHANGE_ADDRESS] = "address", [NETD_CHANGE_ROUTE] = "route",
	[NETD_CHANGE_RULE] = "rule",       [NETD_CHANGE_SYSCTL] = "sysctl",
	[NETD_CHANGE_CLOUD] = "cloud",
};

const char *netd_change_kind_to_string(enum netd_change_kind k)
{
	return k < _NETD_CHANGE_KIND_MAX ? kind_names[k] : NULL;
}

static void change_done(struct netd_change *c)
{
	free(c->summary);
	free(c->detail);
	free(c->target);
	free(c->data);
	strv_free(c->argv);
}

void netd_changes_clear(struct netd_changes *ch)
{
	for (size_t i = 0; i < ch->n; i++)
		change_done(&ch->items[i]);
	free(ch->items);
	*ch = (struct netd_changes){};
}

struct netd_change *netd_changes_add(struct netd_changes *ch, enum netd_change_kind kind,
				     netd_change_apply_fn apply, const char *fmt, ...)
{
	struct netd_change *c;
	va_list ap;
	int r;

	if (ch->n == ch->alloc) {
		size_t na = ch->alloc ? ch->alloc * 2 : 16;
		struct netd_change *ni = reallocarray(ch->items, na, sizeof(*ni));

		if (!ni)
			return NULL;
		ch->items = ni;
		ch->alloc = na;
	}
	c = &ch->items[ch->n];
	*c = (struct netd_change){ .kind = kind, .apply = apply };
	va_start(ap, fmt);
	r = vasprintf(&c->summary, fmt, ap);
	va_end(ap);
	if (r < 0)
		return NULL;
	ch->n++;
	return c;
}

void netd_changes_print(const struct netd_changes *ch, FILE *f, bool details)
{
	if (ch->n == 0) {
		fputs("  no changes\n", f);
		return;
	}
	for (size_t i = 0; i < ch->n; i++) {
		const struct netd_change *c = &ch->items[i];
		const char *p = c->detail;

		fprintf(f, "  %-8s %s\n", netd_change_kind_to_string(c->kind), c->summary);
		while (details && p && *p) {
			const char *nl = strchr(p, '\n');
			int len = nl ? (int)(nl - p) : (int)strlen(p);

			fprintf(f, "      | %.*s\n", len, p);
			p = nl ? nl + 1 : p + len;
		}
	}
}

int netd_changes_apply(const struct netd_changes *ch, FILE *progress, size_t *ret_applied)
{
	size_t applied = 0;
	int r = 0;

	for (size_t i = 0; i < ch->n; i++) {
		const struct netd_change *c = &ch->items[i];
		_cleanup_(freep) char *why = NULL;

		r = c->apply(c, &why);
		if (r < 0) {
			if (why)
				log_error("%s: %s: %s", netd_change_kind_to_string(c->kind),
					  c->summary, why);
			else
				log_error_errno(r, "%s: %s: %m",
						netd_change_kind_to_string(c->kind), c->summary);
			break;
		}
		applied++;
		if (progress)
			fprintf(progress, "  %-8s %s\n", netd_change_kind_to_string(c->kind),
				c->summary);
	}
	if (ret_applied)
		*ret_applied = applied;
	return r < 0 ? r : 0;
}

json_t *netd_changes_to_json(const struct netd_changes *ch)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < ch->n; i++) {
		const struct netd_change *c = &ch->items[i];

		if (json_array_append_new(a,
					  json_pack("{s:s, s:s, s:s?}", "kind",
						    netd_change_kind_to_string(c->kind), "summary",
						    c->summary, "detail", c->detail)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* ---- files ---- */

static int apply_file_write(const struct netd_change *c, char **ret_error)
{
	_cleanup_(freep) char *dir = strdup(c->target);
	char *slash;
	int r;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		r = fs_mkdir_p(dir, 0750);
		if (r < 0)
			return asprintf(ret_error, "cannot create %s: %s", dir, strerror(-r)) < 0
				   ? -ENOMEM
				   : r;
	}
	r = fs_write_atomic(c->target, c->data, c->data_len, c->mode);
	if (r < 0)
		return asprintf(ret_error, "cannot write %s: %s", c->target, strerror(-r)) < 0
			   ? -ENOMEM
			   : r;
	return 0;
}

static int apply_file_remove(const struct netd_change *c, char **ret_error)
{
	if (unlink(c->target) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static size_t count_lines(const char *s, size_t len)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += s[i] == '\n';
	return n + (len > 0 && s[len - 1] != '\n');
}

int netd_plan_file(struct netd_changes *ch, const char *path, const char *data, size_t len,
		   mode_t mode, const char *what, const char *detail)
{
	_cleanup_(freep) char *old = NULL;
	struct netd_change *c;
	struct stat st;
	size_t old_len;
	int r;

	r = fs_read_file(path, PLAN_FILE_READ_MAX, &old, &old_len);
	if (r < 0 && r != -ENOENT && r != -EFBIG)
		return r;
	/* Same bytes and mode: nothing to do (the original's "unchanged" check, §1.5). */
	if (r >= 0 && old_len == len && memcmp(old, data, len) == 0 && stat(path, &st) == 0 &&
	    (st.st_mode & 07777) == mode)
		return 0;
	c = netd_changes_add(ch, NETD_CHANGE_FILE, apply_file_write, "%s %s %s (%zu lines, %04o)",
			     r == -ENOENT ? "create" : "update", what, path, count_lines(data, len),
			     (unsigned)mode);
	if (!c || !(c->target = strdup(path)) || !(c->data = malloc(len + 1)) ||
	    !(c->detail = strdup(detail ? detail : data)))
		return -ENOMEM;
	memcpy(c->data, data, len);
	c->data[len] = '\0';
	c->data_len = len;
	c->mode = mode;
	return 0;
}

int netd_plan_remove(struct netd_changes *ch, const char *path, const char *what)
{
	struct netd_change *c;

	if (access(path, F_OK) < 0)
		return errno == ENOENT ? 0 : -errno;
	c = netd_changes_add(ch, NETD_CHANGE_FILE, apply_file_remove, "remove %s %s", what, path);
	if (!c || !(c->target = strdup(path)))
		return -ENOMEM;
	return 0;
}

/* ---- sysctls ---- */

static int apply_sysctl(const struct netd_change *c, char **ret_error)
{
	_cleanup_(closep) int fd = open(c->target, O_WRONLY | O_TRUNC | O_CLOEXEC);
	size_t len = strlen(c->data);

	if (fd < 0)
		return -errno;
	if (write(fd, c->data, len) != (ssize_t)len)
		return errno ? -errno : -EIO;
	return 0;
}

int netd_plan_sysctl(struct netd_changes *ch, const char *sysctl_dir, const char *key,
		     const char *value, bool optional)
{
	_cleanup_(freep) char *path = NULL, *cur = NULL;
	struct netd_change *c;
	size_t len;
	int r;

	if (asprintf(&path, "%s/%s", sysctl_dir ? sysctl_dir : "/proc/sys", key) < 0)
		return -ENOMEM;
	for (char *p = path + strlen(path) - strlen(key); *p; p++)
		if (*p == '.')
			*p = '/';
	r = fs_read_file(path, 4096, &cur, &len);
	if (r == -ENOENT && optional) {
		log_warning("%s: no such key (the interface does not exist), skipping", key);
		return 0;
	}
	if (r < 0 && r != -ENOENT)
		return log_debug_errno(r, "cannot read %s: %m", path);
	while (r >= 0 && len > 0 && (cur[len - 1] == '\n' || cur[len - 1] == ' '))
		cur[--len] = '\0';
	if (r >= 0 && streq(cur, value))
		return 0;
	c = netd_changes_add(ch, NETD_CHANGE_SYSCTL, apply_sysctl, "%s = %s (%s%s)", key, value,
			     r >= 0 ? "now " : "", r >= 0 ? cur : "not present yet");
	if (!c || !(c->data = strdup(value)))
		return -ENOMEM;
	c->target = TAKE_PTR(path);
	return 0;
}

/* ---- commands ---- */

static bool shell_safe(const char *s)
{
	if (streq(s, "!"))
		return true; /* iptables' negation reads better bare, as `iptables -S` prints it */
	if (!*s)
		return false;
	for (; *s; s++)
		if (!strchr(
			"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=,@%+-",
			*s))
			return false;
	return true;
}

int netd_argv_to_string(char *const *argv, char **ret)
{
	struct buf b = BUF_INIT(0);

	for (size_t i = 0; argv[i]; i++) {
		int r = i > 0 ? buf_append_str(&b, " ") : 0;

		if (r >= 0 && shell_safe(argv[i]))
			r = buf_append_str(&b, argv[i]);
		else if (r >= 0) {
			r = buf_append_str(&b, "'");
			for (const char *p = argv[i]; r >= 0 && *p; p++)
				r = *p == '\'' ? buf_append_str(&b, "'\\''") : buf_append(&b, p, 1);
			if (r >= 0)
				r = buf_append_str(&b, "'");
		}
		if (r < 0) {
			buf_free(&b);
			return r;
		}
	}
	*ret = buf_steal(&b, NULL);
	return *ret ? 0 : -ENOMEM;
}

static int apply_command(const struct netd_change *c, char **ret_error)
{
	return netd_run(c->argv, NULL, NULL, ret_error);
}

struct netd_change *netd_plan_command(struct netd_changes *ch, enum netd_change_kind kind,
				      char *const *argv, const char *summary)
{
	struct netd_change *c = netd_changes_add(ch, kind, apply_command, "%s", summary);

	if (!c || strv_copy(argv, &c->argv) < 0 || netd_argv_to_string(argv, &c->detail) < 0)
		return NULL;
	return c;
}

static void trim(struct buf *b)
{
	while (b->len > 0 && strchr(" \t\r\n", b->data[b->len - 1]))
		b->data[--b->len] = '\0';
}

int netd_run(char *const *argv, char *const *env, char **ret_out, char **ret_error)
{
	struct child_options o = {
		.env = (const char *const *)env,
		.timeout_usec = RUN_TIMEOUT_USEC,
		.output_cap = RUN_OUTPUT_CAP,
	};
	_cleanup_(freep) char *status = NULL;
	struct child_result res = {};
	int r;

	r = child_run_sync((const char *const *)argv, &o, &res);
	if (r < 0)
		return asprintf(ret_error, "%s: %s", argv[0],
				r == -ENOENT ? "not found in $PATH" : strerror(-r)) < 0
			   ? -ENOMEM
			   : r;
	log_debug("ran %s: exit %d", argv[0], res.exit_code);
	if (res.exit_code == 0 && !res.timed_out && res.error == 0) {
		if (ret_out)
			*ret_out = buf_steal(&res.out, NULL);
		child_result_clear(&res);
		return ret_out && !*ret_out ? -ENOMEM : 0;
	}
	trim(&res.out);
	trim(&res.err);
	if (res.timed_out)
		r = asprintf(&status, "timed out");
	else if (res.signal)
		r = asprintf(&status, "killed by signal %d", res.signal);
	else
		r = asprintf(&status, "exit status %d", res.exit_code);
	/* The original's format: "<cli> <first 3 args>: <err>: <combined output>". */
	if (r >= 0)
		r = asprintf(ret_error, "%s%s%s%s%s%s%s: %s: %s%s%s", argv[0], argv[1] ? " " : "",
			     argv[1] ? argv[1] : "", argv[1] && argv[2] ? " " : "",
			     argv[1] && argv[2] ? argv[2] : "",
			     argv[1] && argv[2] && argv[3] ? " " : "",
			     argv[1] && argv[2] && argv[3] ? argv[3] : "", status,
			     res.err.data ? res.err.data : "",
			     res.err.len > 0 && res.out.len > 0 ? "\n" : "",
			     res.out.data ? res.out.data : "");
	child_result_clear(&res);
	return r < 0 ? -ENOMEM : -EIO;
}
