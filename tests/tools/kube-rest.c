/* kube-rest: one REST call through libcocoon's Kubernetes client, for integration scenarios.
 * It runs the daemon code path (kube_client on an sd-event loop, with the client's rate
 * limit and retries), or kube_request_sync() with --sync, and prints the JSON answer on
 * stdout, or on failure "error: <errno name> <code> <reason>: <message>" on stderr.
 * Exit 0 ok, 1 failure (also a bad kubeconfig: "error: <message>"), 2 usage. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/conf.h"
#include "cocoon/kube.h"
#include "cocoon/log.h"

enum verb { GET, LIST, CREATE, UPDATE, PATCH_MERGE, PATCH_STRATEGIC, PATCH_JSON, DELETE };

static const struct {
	const char *name;
	bool body;
	const char *sync_method; /* NULL: not available with --sync */
	const char *help;
} verbs[] = {
	[GET] = { "get", false, "GET", "GET PATH" },
	[LIST] = { "list", false, NULL, "GET PATH page by page (limit + continue), one List" },
	[CREATE] = { "create", true, "POST", "POST JSON to PATH" },
	[UPDATE] = { "update", true, "PUT", "PUT JSON to PATH" },
	[PATCH_MERGE] = { "patch-merge", true, "PATCH",
			  "PATCH PATH, application/merge-patch+json" },
	[PATCH_STRATEGIC] = { "patch-strategic", true, NULL,
			      "PATCH PATH, application/strategic-merge-patch+json" },
	[PATCH_JSON] = { "patch-json", true, NULL, "PATCH PATH, application/json-patch+json" },
	[DELETE] = { "delete", false, "DELETE", "DELETE PATH (with --grace, --uid)" },
};

struct args {
	enum verb verb;
	const char *path, *body, *kubeconfig, *context, *label_selector, *uid;
	unsigned limit, retries;
	long grace;
	bool sync;
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: kube-rest [OPTIONS] VERB PATH [JSON]\n\n"
		   "One Kubernetes API call through libcocoon's client; the answer's JSON on "
		   "stdout.\n\nVerbs:\n");
	for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
		fprintf(f, "  %-16s %s\n", verbs[i].name, verbs[i].help);
	fprintf(f,
		"\nOptions:\n"
		"  --kubeconfig FILE       use FILE (default: $KUBECONFIG, ~/.kube/config, "
		"in-cluster)\n"
		"  --context NAME          kubeconfig context (default: current-context)\n"
		"  --label-selector SEL    list: labelSelector\n"
		"  --limit N               list: page size (default 500)\n"
		"  --grace N               delete: gracePeriodSeconds\n"
		"  --uid UID               delete: preconditions.uid\n"
		"  --retries N             retries on 429/5xx/connection failures (default 5, 0: "
		"none)\n"
		"  --sync                  use kube_request_sync() (get, create, update, "
		"patch-merge, delete)\n"
		"  -h, --help              this text\n\n"
		"Environment:\n"
		"  KUBECONFIG              colon-separated kubeconfig files\n"
		"  KUBE_SA_DIR             service account directory for the in-cluster "
		"fallback\n"
		"  KUBE_REST_LOG_LEVEL     log level (default: warning; debug shows retries)\n\n"
		"Errors: \"error: <errno name> <code> <reason>: <message>\" on stderr, exit 1.\n");
}

static int parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* VERB PATH [JSON], after the options. */
static int parse_positional(int n, char **args, struct args *a)
{
	size_t i;

	if (n < 2) {
		fprintf(stderr, "kube-rest: expected VERB PATH [JSON]\n");
		return -EINVAL;
	}
	for (i = 0; i < ELEMENTSOF(verbs) && !streq(verbs[i].name, args[0]); i++)
		;
	if (i == ELEMENTSOF(verbs)) {
		fprintf(stderr, "kube-rest: unknown verb \"%s\"\n", args[0]);
		return -EINVAL;
	}
	a->verb = (enum verb)i;
	a->path = args[1];
	a->body = n > 2 ? args[2] : NULL;
	if (verbs[i].body != !!a->body || n > 3) {
		fprintf(stderr, "kube-rest: %s takes %s\n", verbs[i].name,
			verbs[i].body ? "PATH JSON" : "PATH only");
		return -EINVAL;
	}
	if (a->sync && !verbs[i].sync_method) {
		fprintf(stderr, "kube-rest: %s is not available with --sync\n", verbs[i].name);
		return -EINVAL;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
		{ "kubeconfig", required_argument, NULL, 'k' },
		{ "context", required_argument, NULL, 'c' },
		{ "label-selector", required_argument, NULL, 'l' },
		{ "limit", required_argument, NULL, 'n' },
		{ "grace", required_argument, NULL, 'g' },
		{ "uid", required_argument, NULL, 'u' },
		{ "retries", required_argument, NULL, 'r' },
		{ "sync", no_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	unsigned long v;
	int o;

	*a = (struct args){ .grace = -1 };
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (o) {
		case 'k':
			a->kubeconfig = optarg;
			break;
		case 'c':
			a->context = optarg;
			break;
		case 'l':
			a->label_selector = optarg;
			break;
		case 'u':
			a->uid = optarg;
			break;
		case 's':
			a->sync = true;
			break;
		case 'n':
		case 'g':
		case 'r':
			if (parse_uint(optarg, 1000000, &v) < 0) {
				fprintf(stderr, "kube-rest: --%s: \"%s\" is not a number\n",
					o == 'n'   ? "limit"
					: o == 'g' ? "grace"
						   : "retries",
					optarg);
				return -EINVAL;
			}
			if (o == 'n')
				a->limit = (unsigned)v;
			else if (o == 'g')
				a->grace = (long)v;
			else
				a->retries = v ? (unsigned)v : KUBE_NO_RETRY;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			return -EINVAL;
		}
	}
	return parse_positional(argc - optind, argv + optind, a);
}

static void print_error(int error, const struct kube_status *st)
{
	const char *name = strerrorname_np(-error);

	fprintf(stderr, "error: %s %ld %s: %s\n", name ? name : "E?", st->code,
		st->reason ? st->reason : "-", st->message ? st->message : strerror(-error));
}

static int print_json(const json_t *obj)
{
	char *s;

	if (!obj)
		return 0; /* an empty answer (204) */
	s = json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!s)
		return -ENOMEM;
	printf("%s\n", s);
	free(s);
	return 0;
}

struct outcome {
	bool done;
	int error;
};

static void on_done(struct kube_call *call, int error, json_t *obj,
		    const struct kube_status *status, void *userdata)
{
	struct outcome *o = userdata;

	o->done = true;
	o->error = error;
	if (error < 0)
		print_error(error, status);
	else
		o->error = print_json(obj);
}

static int start(struct kube_client *c, const struct args *a, json_t *body, struct outcome *o)
{
	const struct kube_list_options lo = { .label_selector = a->label_selector,
					      .limit = a->limit };
	const struct kube_delete_options del = { .grace_period_seconds = a->grace,
						 .precondition_uid = a->uid };

	switch (a->verb) {
	case GET:
		return kube_get(c, a->path, on_done, o, NULL);
	case LIST:
		return kube_list(c, a->path, &lo, on_done, o, NULL);
	case CREATE:
		return kube_create(c, a->path, body, on_done, o, NULL);
	case UPDATE:
		return kube_update(c, a->path, body, on_done, o, NULL);
	case PATCH_MERGE:
		return kube_patch(c, a->path, KUBE_PATCH_MERGE, body, on_done, o, NULL);
	case PATCH_STRATEGIC:
		return kube_patch(c, a->path, KUBE_PATCH_STRATEGIC, body, on_done, o, NULL);
	case PATCH_JSON:
		return kube_patch(c, a->path, KUBE_PATCH_JSON, body, on_done, o, NULL);
	default:
		return kube_delete(c, a->path, a->grace >= 0 || a->uid ? &del : NULL, on_done, o,
				   NULL);
	}
}

static int run_async(const struct kube_config *cfg, const struct args *a, json_t *body)
{
	_cleanup_(sd_event_unrefp) sd_event *e = NULL;
	_cleanup_(kube_client_freep) struct kube_client *c = NULL;
	const struct kube_client_options opts = { .max_retries = a->retries };
	struct outcome o = { 0 };
	int r;

	r = sd_event_new(&e);
	if (r >= 0)
		r = kube_client_new(e, cfg, &opts, &c);
	if (r >= 0)
		r = start(c, a, body, &o);
	if (r < 0)
		return log_error_errno(r, "kube-rest: cannot start the call: %m");
	while (!o.done) {
		r = sd_event_run(e, UINT64_MAX);
		if (r < 0)
			return log_error_errno(r, "kube-rest: event loop failed: %m");
	}
	return o.error;
}

static int run_sync(const struct kube_config *cfg, const struct args *a, json_t *body)
{
	_cleanup_(kube_status_clear) struct kube_status st = { 0 };
	json_auto_t *obj = NULL, *del = NULL;
	int r;

	if (a->verb == DELETE && (a->grace >= 0 || a->uid)) {
		del = json_pack("{s:s, s:s}", "kind", "DeleteOptions", "apiVersion", "v1");
		if (!del ||
		    (a->grace >= 0 &&
		     json_object_set_new(del, "gracePeriodSeconds", json_integer(a->grace)) < 0) ||
		    (a->uid && json_object_set_new(del, "preconditions",
						   json_pack("{s:s}", "uid", a->uid)) < 0))
			return log_oom_errno();
		body = del;
	}
	r = kube_request_sync(cfg, verbs[a->verb].sync_method, a->path, body, &obj, &st);
	if (r < 0) {
		print_error(r, &st);
		return r;
	}
	return print_json(obj);
}

static int load_config(const struct args *a, struct kube_config **ret)
{
	_cleanup_(freep) char *err = NULL;
	int r;

	r = a->kubeconfig ? kube_config_load_file(a->kubeconfig, a->context, ret, &err)
			  : kube_config_load(a->context, ret, &err);
	if (r < 0)
		fprintf(stderr, "error: %s\n", err ? err : strerror(-r));
	return r;
}

int main(int argc, char **argv)
{
	_cleanup_(kube_config_freep) struct kube_config *cfg = NULL;
	json_auto_t *body = NULL;
	struct args a;
	json_error_t je;
	int r;

	log_set_max_level(LOG_WARNING);
	if (log_setup("KUBE_REST_LOG_LEVEL") < 0) {
		fprintf(stderr, "kube-rest: KUBE_REST_LOG_LEVEL is not a log level\n");
		return COCOON_EXIT_USAGE;
	}
	r = parse_args(argc, argv, &a);
	if (r != 0)
		return r > 0 ? 0 : COCOON_EXIT_USAGE;
	if (a.body) {
		body = json_loads(a.body, JSON_DECODE_ANY, &je);
		if (!body) {
			fprintf(stderr, "kube-rest: JSON argument: %s at byte %d\n", je.text,
				je.position);
			return COCOON_EXIT_USAGE;
		}
	}
	if (load_config(&a, &cfg) < 0)
		return 1;
	r = a.sync ? run_sync(cfg, &a, body) : run_async(cfg, &a, body);
	return r < 0 ? 1 : 0;
}
