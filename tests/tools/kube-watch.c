/* kube-watch: drives kube_watch and kube_informer against a real server for integration
 * scenarios (tests/integration/021-kube-watch-informer.sh). Test-only; not installed.
 *
 *   kube-watch watch PATH [--rv N] [--bookmarks] [--timeout S] [--label-selector S]
 *                         [--field-selector S]
 *       one line per event: "ADDED ns/name rv", "MODIFIED …", "DELETED …", "BOOKMARK rv";
 *       "ERROR message" for a failure (the watch retries by itself); "EXPIRED" and exit 0
 *       when the watch cannot resume (410)
 *   kube-watch informer PATH [--index NAME]… [--label-selector S] [--field-selector S]
 *       "SYNCED n" after the first list, then one line per handler call: "ADD key rv",
 *       "UPDATE key oldrv rv", "DELETE key rv". On SIGUSR1 or the stdin line "dump": every
 *       cached "key rv", sorted, then "END". The stdin line "index NAME VALUE": the keys
 *       under that index value, sorted, then "END" (or "ERROR no index NAME").
 *
 * The server comes from $KUBECONFIG (kube_config_load). SIGTERM/SIGINT exit 0. Exit codes:
 * 0 ok, 1 failure, 2 usage. $KUBE_WATCH_LOG_LEVEL sets the log level (e.g. debug). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/buf.h"
#include "cocoon/kube.h"
#include "cocoon/log.h"
#include "cocoon/loop.h"

#define MAX_INDEXES 8

static struct {
	const char *rv, *label_selector, *field_selector;
	const char *indexes[MAX_INDEXES];
	size_t n_indexes;
	bool bookmarks;
	unsigned timeout;
} arg;

struct tool {
	struct loop *loop;
	struct kube_client *client;
	struct kube_watch *watch;
	struct kube_informer *informer;
	sd_event_source *usr1, *input;
	struct buf line;
};

static const char *const type_names[] = { "ADDED", "MODIFIED", "DELETED", "BOOKMARK" };

/* "ns/name" or "name", as the informer keys its cache. */
static void object_key(const json_t *obj, char *key, size_t size)
{
	json_t *meta = json_object_get(obj, "metadata");
	const char *ns = json_string_value(json_object_get(meta, "namespace"));
	const char *name = json_string_value(json_object_get(meta, "name"));

	if (isempty(ns))
		snprintf(key, size, "%s", name ?: "-");
	else
		snprintf(key, size, "%s/%s", ns, name ?: "-");
}

static const char *object_rv(const json_t *obj)
{
	const char *rv =
	    json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));

	return rv ?: "-";
}

/* ---- watch ---- */

static void watch_on_event(struct kube_watch *w, enum kube_event_type t, json_t *obj, void *u)
{
	char key[512];

	if (t == KUBE_BOOKMARK) {
		printf("BOOKMARK %s\n", object_rv(obj));
		return;
	}
	object_key(obj, key, sizeof(key));
	printf("%s %s %s\n", type_names[t], key, object_rv(obj));
}

static void watch_on_expired(struct kube_watch *w, void *u)
{
	struct tool *t = u;

	printf("EXPIRED\n");
	loop_exit(t->loop, EXIT_SUCCESS);
}

static void watch_on_error(struct kube_watch *w, int error, const char *message, void *u)
{
	printf("ERROR %s\n", message);
}

static int cmd_watch(struct tool *t, const char *path)
{
	const struct kube_watch_options o = {
		.label_selector = arg.label_selector,
		.field_selector = arg.field_selector,
		.resource_version = arg.rv,
		.bookmarks = arg.bookmarks,
		.timeout_seconds = arg.timeout,
	};
	const struct kube_watch_handlers h = { watch_on_event, watch_on_expired, watch_on_error };
	int r;

	r = kube_watch_new(t->client, path, &o, &h, t, &t->watch);
	if (r < 0)
		return log_error_errno(r, "cannot watch %s: %m", path);
	return 0;
}

/* ---- informer ---- */

static void inf_on_add(struct kube_informer *inf, const json_t *obj, void *u)
{
	char key[512];

	object_key(obj, key, sizeof(key));
	printf("ADD %s %s\n", key, object_rv(obj));
}

static void inf_on_update(struct kube_informer *inf, const json_t *old, const json_t *obj, void *u)
{
	char key[512];

	object_key(obj, key, sizeof(key));
	printf("UPDATE %s %s %s\n", key, object_rv(old), object_rv(obj));
}

static void inf_on_delete(struct kube_informer *inf, const json_t *obj, void *u)
{
	char key[512];

	object_key(obj, key, sizeof(key));
	printf("DELETE %s %s\n", key, object_rv(obj));
}

static void inf_on_synced(struct kube_informer *inf, void *u)
{
	printf("SYNCED %zu\n", kube_informer_size(inf));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Print one line per object of the array (with its RV or not), sorted, then END. */
static void print_sorted(json_t *objs, bool with_rv)
{
	size_t n = json_array_size(objs), i;
	char **lines = calloc(n ? n : 1, sizeof(char *));
	char key[512];
	json_t *obj;

	json_array_foreach (objs, i, obj) {
		object_key(obj, key, sizeof(key));
		if (!lines || asprintf(&lines[i], "%s%s%s", key, with_rv ? " " : "",
				       with_rv ? object_rv(obj) : "") < 0) {
			printf("ERROR out of memory\n");
			n = lines ? i : 0;
			break;
		}
	}
	if (lines)
		qsort(lines, n, sizeof(char *), cmp_str);
	for (i = 0; i < n; i++) {
		printf("%s\n", lines[i]);
		free(lines[i]);
	}
	free(lines);
	printf("END\n");
}

static void informer_dump(struct tool *t)
{
	json_t *all = kube_informer_list(t->informer);

	print_sorted(all, true);
	json_decref(all);
}

static void informer_command(struct tool *t, char *line)
{
	char *cmd = strtok(line, " \t"), *name = strtok(NULL, " \t"), *value = strtok(NULL, " \t");
	json_t *objs;

	if (!cmd)
		return;
	if (streq(cmd, "dump")) {
		informer_dump(t);
	} else if (streq(cmd, "index") && name && value) {
		objs = kube_informer_by_index(t->informer, name, value);
		if (objs)
			print_sorted(objs, false);
		else
			printf("ERROR no index %s\nEND\n", name);
		json_decref(objs);
	} else {
		printf("ERROR unknown command %s (dump, index NAME VALUE)\nEND\n", cmd);
	}
}

static int on_input(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct tool *t = userdata;
	char tmp[1024], *nl;
	ssize_t n;

	n = read(fd, tmp, sizeof(tmp));
	if (n <= 0) {
		/* End of input (or an error): stop reading, keep running. */
		sd_event_source_set_enabled(s, SD_EVENT_OFF);
		return 0;
	}
	if (buf_append(&t->line, tmp, (size_t)n) < 0) {
		printf("ERROR command line too long\nEND\n");
		buf_reset(&t->line);
		return 0;
	}
	while ((nl = memchr(t->line.data, '\n', t->line.len))) {
		*nl = '\0';
		informer_command(t, t->line.data);
		buf_consume(&t->line, (size_t)(nl - t->line.data) + 1);
	}
	return 0;
}

static int on_usr1(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	informer_dump(userdata);
	return 0;
}

static int cmd_informer(struct tool *t, const char *path)
{
	const struct kube_list_options sel = {
		.label_selector = arg.label_selector,
		.field_selector = arg.field_selector,
	};
	const struct kube_informer_handlers h = { inf_on_add, inf_on_update, inf_on_delete,
						  inf_on_synced };
	sd_event *e = loop_event(t->loop);
	sigset_t ss;
	int r;

	r = kube_informer_new(t->client, path, &sel, &h, t, &t->informer);
	if (r < 0)
		return log_error_errno(r, "cannot create an informer for %s: %m", path);
	for (size_t i = 0; i < arg.n_indexes; i++) {
		r = kube_informer_add_index(t->informer, arg.indexes[i], NULL, NULL);
		if (r < 0)
			return log_error_errno(r,
					       "--index %s: %m (namespace, nodeName, owner or "
					       "label:KEY)",
					       arg.indexes[i]);
	}
	sigemptyset(&ss);
	sigaddset(&ss, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &ss, NULL) < 0)
		return log_error_errno(errno, "cannot block SIGUSR1: %m");
	r = sd_event_add_signal(e, &t->usr1, SIGUSR1, on_usr1, t);
	if (r < 0)
		return log_error_errno(r, "cannot watch SIGUSR1: %m");
	/* A pipe or terminal on stdin takes commands; /dev/null or a file (EPERM) does not. */
	r = sd_event_add_io(e, &t->input, STDIN_FILENO, EPOLLIN, on_input, t);
	if (r < 0 && r != -EPERM)
		return log_error_errno(r, "cannot read stdin: %m");
	r = kube_informer_start(t->informer);
	if (r < 0)
		return log_error_errno(r, "cannot start the informer for %s: %m", path);
	return 0;
}

/* ---- main ---- */

static const struct {
	const char *name, *args, *help;
	int (*run)(struct tool *t, const char *path);
} commands[] = {
	{ "watch",
	  "PATH [--rv N] [--bookmarks] [--timeout S] [--label-selector S] [--field-selector S]",
	  "print one line per event", cmd_watch },
	{ "informer", "PATH [--index NAME]... [--label-selector S] [--field-selector S]",
	  "print handler calls; SIGUSR1 or stdin \"dump\" prints the cache", cmd_informer },
};

static void usage(FILE *f)
{
	fprintf(f, "Usage:\n");
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		fprintf(f, "  kube-watch %s %s\n      %s\n", commands[i].name, commands[i].args,
			commands[i].help);
	fprintf(f, "Environment: KUBECONFIG (the server), KUBE_WATCH_LOG_LEVEL (default: info)\n");
}

static void on_drain(struct loop *l, void *userdata)
{
	loop_drain_done(l);
}

static void tool_done(struct tool *t)
{
	sd_event_source_disable_unref(t->usr1);
	sd_event_source_disable_unref(t->input);
	kube_watch_free(t->watch);
	kube_informer_free(t->informer);
	kube_client_free(t->client);
	loop_free(t->loop);
	buf_free(&t->line);
}

static int parse_args(int argc, char **argv)
{
	static const struct option opts[] = { { "rv", required_argument, NULL, 'r' },
					      { "bookmarks", no_argument, NULL, 'b' },
					      { "timeout", required_argument, NULL, 't' },
					      { "label-selector", required_argument, NULL, 'l' },
					      { "field-selector", required_argument, NULL, 'f' },
					      { "index", required_argument, NULL, 'i' },
					      { "help", no_argument, NULL, 'h' },
					      {} };
	char *end;
	int c;

	while ((c = getopt_long(argc, argv, "hl:", opts, NULL)) >= 0) {
		switch (c) {
		case 'r':
			arg.rv = optarg;
			break;
		case 'b':
			arg.bookmarks = true;
			break;
		case 't':
			arg.timeout = (unsigned)strtoul(optarg, &end, 10);
			if (*end || !*optarg) {
				fprintf(stderr, "--timeout: not a number of seconds: %s\n", optarg);
				return -EINVAL;
			}
			break;
		case 'l':
			arg.label_selector = optarg;
			break;
		case 'f':
			arg.field_selector = optarg;
			break;
		case 'i':
			if (arg.n_indexes >= MAX_INDEXES) {
				fprintf(stderr, "--index: at most %d\n", MAX_INDEXES);
				return -EINVAL;
			}
			arg.indexes[arg.n_indexes++] = optarg;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			return -EINVAL;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	_cleanup_(kube_config_freep) struct kube_config *cfg = NULL;
	_cleanup_(freep) char *err = NULL;
	struct tool t = { .line = BUF_INIT(4096) };
	const char *cmd, *path;
	int r, rc = EXIT_FAILURE;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (log_setup("KUBE_WATCH_LOG_LEVEL") < 0)
		fprintf(stderr, "KUBE_WATCH_LOG_LEVEL: not a log level, ignoring\n");
	r = parse_args(argc, argv);
	if (r != 0)
		return r > 0 ? EXIT_SUCCESS : (usage(stderr), 2);
	if (argc - optind != 2) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind];
	path = argv[optind + 1];
	for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
		if (!streq(cmd, commands[i].name))
			continue;
		r = kube_config_load(NULL, &cfg, &err);
		if (r < 0) {
			log_error("%s", err ? err : strerror(-r));
			return EXIT_FAILURE;
		}
		r = loop_new(&t.loop);
		if (r >= 0)
			r = loop_add_drain(t.loop, on_drain, &t);
		if (r >= 0)
			r = kube_client_new(loop_event(t.loop), cfg, NULL, &t.client);
		if (r < 0)
			log_error_errno(r, "cannot set up the client: %m");
		else if (commands[i].run(&t, path) >= 0)
			rc = (r = loop_run(t.loop)) < 0 ? EXIT_FAILURE : r;
		tool_done(&t);
		return rc;
	}
	fprintf(stderr, "unknown command: %s\n", cmd);
	usage(stderr);
	return 2;
}
