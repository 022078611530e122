/* epoch: the command-line client of the Epoch / OCI registry (net-epoch-runtime.md §2.1).
 *
 * Each verb starts one libepoch operation on a private sd-event loop and runs the loop
 * until it completes (SIGINT/SIGTERM cancel it cleanly: the exporter or importer child is
 * killed, temp files go). Read verbs print text or, with -o json, one JSON document; long
 * transfers show bytes, rate and ETA on stderr when it is a terminal or with --progress.
 * Exit status: 0 ok, 1 failure, 2 usage or configuration error. */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cocoon/conf.h"
#include "cocoon/log.h"
#include "epoch.h"

#define EXIT_USAGE COCOON_EXIT_USAGE

static struct {
	int log_level;
	const char *url, *token, *ca_cert, *cocoon;
	int64_t chunk_size;
} config;

static const struct conf_range chunk_range = { 4096, INT64_C(1) << 34 };

static const struct conf_var conf_vars[] = {
	{ "EPOCH_URL", "EPOCH_SERVER", EPOCH_DEFAULT_URL, &conf_url, &config.url, NULL,
	  "Registry base URL (Epoch or any OCI registry)." },
	{ "EPOCH_TOKEN", "EPOCH_REGISTRY_TOKEN", NULL, &conf_string, &config.token, NULL,
	  "Bearer token: sent with every request to EPOCH_URL; needed for push, tag and rm." },
	{ "EPOCH_CA_CERT", NULL, NULL, &conf_string, &config.ca_cert, NULL,
	  "PEM CA certificate trusted in addition to the system store." },
	{ "EPOCH_COCOON_BINARY", "VK_COCOON_BIN", "cocoon", &conf_string, &config.cocoon, NULL,
	  "The cocoon CLI that exports and imports snapshots and images (looked up in PATH)." },
	{ "EPOCH_CHUNK_SIZE", NULL, NULL, &conf_int, &config.chunk_size, &chunk_range,
	  "Upload-session chunk in bytes, for registries without epoch's monolithic PUT; unset: "
	  "each blob in one request, 64 MiB chunks after a 413 (a proxy's size limit)." },
	{ "EPOCH_LOG_LEVEL", NULL, "warning", &conf_log_level, &config.log_level, NULL,
	  "Log level (debug shows every HTTP request)." },
};

enum verb_flags {
	V_JSON = 1 << 0,     /* -o json */
	V_DRY_RUN = 1 << 1,  /* --dry-run */
	V_PROGRESS = 1 << 2, /* --progress */
	V_TAG = 1 << 3,      /* -t/--tag */
	V_BASE = 1 << 4,     /* --base-image */
	V_NAME = 1 << 5,     /* --name */
	V_DESC = 1 << 6,     /* --description */
};

/* The options behind the flags, in bit order, for "--name is not accepted by push". */
static const char *const flag_names[] = {
	"-o/--output",  "--dry-run", "--progress",    "-t/--tag",
	"--base-image", "--name",    "--description",
};

struct args {
	char **pos;
	int n_pos;
	bool json, dry_run, progress;
	const char *tag, *base_image, *name, *description;
};

struct verb {
	const char *name, *alias, *usage, *help;
	unsigned flags;
	int min_args, max_args;
	int (*run)(const struct args *a);
};

static const struct verb verbs[];

/* ---- shared plumbing ---- */

static sd_event *event;
static struct epoch_call *running;
static struct epoch_result *running_result;

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	if (running) {
		epoch_call_cancel(running);
		running = NULL;
		running_result->done = true;
		running_result->error = -ECANCELED;
		free(running_result->message);
		running_result->message = strdup("interrupted");
	}
	return 0;
}

/* The registry for a reference: its own URL for a URL reference (the token only goes to
 * EPOCH_URL's server), else EPOCH_URL. Returns 0 or the exit status. */
static int open_registry(const struct epoch_ref *ref, struct epoch_registry **ret)
{
	_cleanup_(freep) char *err = NULL, *base = NULL, *hint = NULL;
	struct epoch_registry_options o = {
		.url = config.url,
		.token = config.token,
		.ca_file = config.ca_cert,
		.chunk_size = (uint64_t)config.chunk_size,
	};
	int k;

	if (ref && ref->url) {
		base = strdup(config.url);
		if (!base)
			return log_oom_errno(), EXIT_FAILURE;
		while (*base && base[strlen(base) - 1] == '/')
			base[strlen(base) - 1] = '\0';
		if (!streq(base, ref->url) && !isempty(o.token)) {
			o.token = NULL;
			if (asprintf(&hint, "EPOCH_TOKEN is sent only to EPOCH_URL, %s, not to %s",
				     base, ref->url) < 0)
				return log_oom_errno(), EXIT_FAILURE;
			o.no_token_hint = hint;
		}
		o.url = ref->url;
	}
	k = epoch_registry_new(event, &o, ret, &err);
	if (k < 0) {
		log_error_errno(k, "%s", err ?: "cannot set up the registry client: %m");
		/* a bad URL or CA file is a configuration error */
		return k == -EINVAL ? EXIT_USAGE : EXIT_FAILURE;
	}
	return 0;
}

/* Run an operation started with epoch_result_fill to completion. */
static int wait_result(int started, struct epoch_call *call, struct epoch_result *res)
{
	int k;

	if (started < 0)
		return log_error_errno(started, "cannot start the request: %m");
	running = call;
	running_result = res;
	k = epoch_result_wait(event, res);
	running = NULL;
	if (k < 0)
		log_error("%s", res->message ?: strerror(-k));
	return k;
}

/* "…/dl/a/b" names a:b for newer epoch, which falls back to the legacy a/b:latest when a:b
 * is not there (§2.10): the same here, by asking the registry about a:b first. Returns 0
 * (ref now names what exists, or is left as it was) or an exit status. */
static int resolve_dl_legacy(struct epoch_registry *reg, struct epoch_ref *ref)
{
	_cleanup_(epoch_result_clear) struct epoch_result res = {};
	struct epoch_call *call = NULL;
	char *tag;
	int k;

	if (!ref->legacy_name)
		return 0;
	k = epoch_has_manifest(reg, ref->name, epoch_ref_target(ref), epoch_result_fill, &res,
			       &call);
	if (wait_result(k, call, &res) < 0)
		return EXIT_FAILURE;
	if (res.found)
		return 0;
	epoch_result_clear(&res);
	k = epoch_has_manifest(reg, ref->legacy_name, EPOCH_DEFAULT_TAG, epoch_result_fill, &res,
			       &call);
	if (wait_result(k, call, &res) < 0)
		return EXIT_FAILURE;
	if (!res.found)
		return 0;
	tag = strdup(EPOCH_DEFAULT_TAG);
	if (!tag)
		return log_oom_errno(), EXIT_FAILURE;
	log_debug("%s:%s does not exist; reading the URL as %s:latest", ref->name,
		  epoch_ref_target(ref), ref->legacy_name);
	free(ref->name);
	free(ref->tag);
	free(ref->digest);
	ref->name = TAKE_PTR(ref->legacy_name);
	ref->tag = tag;
	ref->digest = NULL;
	return 0;
}

static int parse_ref(const char *s, struct epoch_ref *ret)
{
	_cleanup_(freep) char *err = NULL;
	int k = epoch_ref_parse(s, ret, &err);

	if (k < 0)
		log_error("%s", err ?: "invalid reference");
	return k;
}

static void format_size(uint64_t n, char out[static 32])
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	size_t u = 0;

	while (v >= 1024 && u + 1 < ELEMENTSOF(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, 32, "%" PRIu64 " B", n);
	else
		snprintf(out, 32, "%.1f %s", v, units[u]);
}

/* ---- progress on stderr ---- */

struct progress {
	bool tty;
	uint64_t start, last;
	bool shown;
	const char *phase; /* the rate and ETA count from the start of each phase */
};

static uint64_t mono_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void progress_show(const struct epoch_progress *p, void *userdata)
{
	struct progress *pr = userdata;
	uint64_t now = mono_usec(), elapsed;
	char done[32], total[32], rate[32], eta[32] = "";
	double bps;

	if (!streq_ptr(p->phase, pr->phase)) {
		pr->phase = p->phase;
		pr->start = now;
	}
	if (now - pr->last < (pr->tty ? 100000 : 2000000))
		return;
	pr->last = now;
	elapsed = MAX(now - pr->start, (uint64_t)1);
	bps = (double)p->all_done * 1e6 / (double)elapsed;
	format_size(p->done, done);
	format_size(p->total, total);
	format_size((uint64_t)bps, rate);
	if (bps > 0 && p->all_total > p->all_done)
		snprintf(eta, sizeof eta, "  ETA %.0fs",
			 (double)(p->all_total - p->all_done) / bps);
	else if (bps > 0 && p->total > p->done)
		snprintf(eta, sizeof eta, "  ETA %.0fs", (double)(p->total - p->done) / bps);
	fprintf(stderr, "%s%s%s%-24.24s %10s / %-10s %10s/s%s%s", pr->tty ? "\r" : "",
		p->phase ?: "", p->phase ? " " : "", p->what, done, total, rate, eta,
		pr->tty ? "\033[K" : "\n");
	pr->shown = true;
}

static void progress_end(struct progress *pr)
{
	if (pr->shown && pr->tty)
		fputs("\r\033[K", stderr);
}

static bool progress_wanted(const struct args *a)
{
	return a->progress || isatty(STDERR_FILENO);
}

/* ---- verbs ---- */

static const char *const *cocoon_argv(void)
{
	static const char *argv[2];

	argv[0] = config.cocoon;
	return argv;
}

static int verb_push(const struct args *a)
{
	_cleanup_(epoch_registry_freep) struct epoch_registry *reg = NULL;
	_cleanup_(epoch_result_clear) struct epoch_result res = {};
	struct progress pr = { .tty = isatty(STDERR_FILENO), .start = mono_usec() };
	const char *snap = a->pos[0], *tag = a->tag ?: EPOCH_DEFAULT_TAG;
	struct epoch_push_options o = {
		.snapshot = snap,
		.tag = tag,
		.base_image = a->base_image,
		.cocoon = cocoon_argv(),
		.progress = progress_wanted(a) ? progress_show : NULL,
		.progress_userdata = &pr,
	};
	char size[32], moved[32];
	struct epoch_call *call = NULL;
	int k;

	if (!epoch_name_valid(snap) || !epoch_tag_valid(tag)) {
		log_error("push: \"%s:%s\" is not a valid repository:tag", snap, tag);
		return EXIT_USAGE;
	}
	k = open_registry(NULL, &reg);
	if (k != 0)
		return k;
	if (a->dry_run) {
		k = wait_result(epoch_has_manifest(reg, snap, tag, epoch_result_fill, &res, &call),
				call, &res);
		if (k < 0)
			return EXIT_FAILURE;
		printf("would export snapshot %s with %s and push it to %s as %s:%s%s%s\n", snap,
		       config.cocoon, epoch_registry_url(reg), snap, tag,
		       res.found ? ", replacing " : " (a new tag)",
		       res.found ? res.digest ?: "it" : "");
		return EXIT_SUCCESS;
	}
	k = epoch_snapshot_push(reg, &o, epoch_result_fill, &res, &call);
	if (k == -ENOENT || k == -EACCES) {
		log_error_errno(k, "cannot run %s: %m", config.cocoon);
		return EXIT_FAILURE;
	}
	k = wait_result(k, call, &res);
	progress_end(&pr);
	if (k < 0)
		return EXIT_FAILURE;
	format_size(res.size, size);
	format_size(res.moved, moved);
	fprintf(stderr, "pushed %s:%s %s (%" PRIu64 " files, %s; %s uploaded%s)\n", snap, tag,
		res.digest, res.n_layers, size, moved,
		res.moved == 0         ? ": the registry had every blob"
		: res.moved < res.size ? ", the rest was already there"
				       : "");
	printf("%s\n", res.digest);
	return EXIT_SUCCESS;
}

/* pull and get: into the importer, or (out_fd >= 0) to stdout. */
static int pull_to(const struct args *a, int out_fd)
{
	_cleanup_(epoch_ref_done) struct epoch_ref ref = {};
	_cleanup_(epoch_registry_freep) struct epoch_registry *reg = NULL;
	_cleanup_(epoch_result_clear) struct epoch_result res = {};
	struct progress pr = { .tty = isatty(STDERR_FILENO), .start = mono_usec() };
	struct epoch_call *call = NULL;
	char size[32];
	int k;

	if (parse_ref(a->pos[0], &ref) < 0)
		return EXIT_USAGE;
	/* an unset shell variable, most likely: the importer would only fail at the end */
	if (a->name && isempty(a->name)) {
		log_error("--name: empty; expected the local snapshot or image name");
		return EXIT_USAGE;
	}
	k = open_registry(&ref, &reg);
	if (k == 0)
		k = resolve_dl_legacy(reg, &ref);
	if (k != 0)
		return k;
	if (a->dry_run) {
		k = wait_result(epoch_fetch_manifest(reg, ref.name, epoch_ref_target(&ref),
						     epoch_result_fill, &res, &call),
				call, &res);
		if (k < 0)
			return EXIT_FAILURE;
		printf("would import %s %s:%s (%s, %zu layers) with %s\n",
		       epoch_kind_to_string(res.manifest->kind), ref.name, epoch_ref_target(&ref),
		       res.digest, res.manifest->n_layers, config.cocoon);
		return EXIT_SUCCESS;
	}
	k = wait_result(epoch_pull(reg,
				   &(struct epoch_pull_options){
				       .name = ref.name,
				       .ref = epoch_ref_target(&ref),
				       .local_name = a->name,
				       .description = a->description,
				       .cocoon = cocoon_argv(),
				       .out_fd = out_fd,
				       .progress = progress_wanted(a) ? progress_show : NULL,
				       .progress_userdata = &pr,
				   },
				   epoch_result_fill, &res, &call),
			call, &res);
	progress_end(&pr);
	if (k < 0)
		return EXIT_FAILURE;
	format_size(res.size, size);
	fprintf(stderr, "%s %s:%s %s (%" PRIu64 " blobs, %s, verified)\n",
		out_fd >= 0 ? "wrote" : "pulled", ref.name, epoch_ref_target(&ref), res.digest,
		res.n_layers, size);
	return EXIT_SUCCESS;
}

static int verb_pull(const struct args *a)
{
	return pull_to(a, -1);
}

static int verb_get(const struct args *a)
{
	if (isatty(STDOUT_FILENO)) {
		log_error("get: stdout is a terminal; redirect it to a file or a pipe");
		return EXIT_USAGE;
	}
	/* A reader that goes away is an error we report, not a SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	return pull_to(a, STDOUT_FILENO);
}

static int print_json(json_t *j)
{
	int k = j ? json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : -1;

	json_decref(j);
	if (k < 0)
		return log_oom_errno(), EXIT_FAILURE;
	putchar('\n');
	return EXIT_SUCCESS;
}

static int verb_ls(const struct args *a)
{
	_cleanup_(epoch_ref_done) struct epoch_ref ref = {};
	_cleanup_(epoch_registry_freep) struct epoch_registry *reg = NULL;
	_cleanup_(epoch_result_clear) struct epoch_result res = {};
	struct epoch_call *call = NULL;
	json_t *j, *names;
	int k;

	if (a->n_pos > 0 && parse_ref(a->pos[0], &ref) < 0)
		return EXIT_USAGE;
	k = open_registry(a->n_pos > 0 ? &ref : NULL, &reg);
	if (k != 0)
		return k;
	if (a->n_pos > 0)
		k = epoch_list_tags(reg, ref.name, epoch_result_fill, &res, &call);
	else
		k = epoch_catalog(reg, epoch_result_fill, &res, &call);
	if (wait_result(k, call, &res) < 0)
		return EXIT_FAILURE;
	if (!a->json) {
		for (char **n = res.names; n && *n; n++)
			printf("%s\n", *n);
		return EXIT_SUCCESS;
	}
	names = json_array();
	for (char **n = res.names; names && n && *n; n++)
		json_array_append_new(names, json_string(*n));
	if (a->n_pos > 0)
		j = json_pack("{s:s, s:o}", "name", ref.name, "tags", names);
	else
		j = json_pack("{s:o}", "repositories", names);
	return print_json(j);
}

static json_t *descriptor_to_json(const struct epoch_descriptor *d)
{
	json_t *o = json_pack("{s:s, s:s, s:I}", "mediaType", d->media_type, "digest", d->digest,
			      "size", (json_int_t)d->size);

	if (o && d->title)
		json_object_set_new(o, "title", json_string(d->title));
	if (o && (d->os || d->arch))
		json_object_set_new(
		    o, "platform",
		    json_pack("{s:s, s:s}", "os", d->os ?: "", "architecture", d->arch ?: ""));
	return o;
}

static int inspect_json(const struct epoch_ref *ref, const struct epoch_result *res)
{
	const struct epoch_manifest *m = res->manifest;
	json_t *j, *layers = json_array(), *ann = json_object();
	uint64_t total = m->config.size;

	for (size_t i = 0; i < m->n_layers; i++) {
		json_array_append_new(layers, descriptor_to_json(&m->layers[i]));
		total += m->layers[i].size;
	}
	for (size_t i = 0; i < m->n_annotations; i++)
		json_object_set_new(ann, m->annotations[i].key,
				    json_string(m->annotations[i].value));
	j = json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s, s:I}", "name", ref->name, "reference",
		      epoch_ref_target(ref), "digest", res->digest, "mediaType", m->media_type,
		      "artifactType", m->artifact_type, "kind", epoch_kind_to_string(m->kind),
		      "size", (json_int_t)total);
	if (j && m->config.media_type)
		json_object_set_new(j, "config", descriptor_to_json(&m->config));
	if (j)
		json_object_set_new(j, m->kind == EPOCH_KIND_INDEX ? "manifests" : "layers",
				    json_incref(layers));
	if (j)
		json_object_set_new(j, "annotations", json_incref(ann));
	json_decref(layers);
	json_decref(ann);
	return print_json(j);
}

static int verb_inspect(const struct args *a)
{
	_cleanup_(epoch_ref_done) struct epoch_ref ref = {};
	_cleanup_(epoch_registry_freep) struct epoch_registry *reg = NULL;
	_cleanup_(epoch_result_clear) struct epoch_result res = {};
	_cleanup_(epoch_manifest_freep) struct epoch_manifest *m = NULL;
	_cleanup_(freep) char *err = NULL;
	struct epoch_call *call = NULL;
	uint64_t total;
	char size[32];
	int k;

	if (parse_ref(a->pos[0], &ref) < 0)
		return EXIT_USAGE;
	k = open_registry(&ref, &reg);
	if (k == 0)
		k = resolve_dl_legacy(reg, &ref);
	if (k != 0)
		return k;
	k = epoch_get_manifest(reg, ref.name, epoch_ref_target(&ref), epoch_result_fill, &res,
			       &call);
	if (wait_result(k, call, &res) < 0)
		return EXIT_FAILURE;
	k = epoch_manifest_parse(res.body, res.body_len, &m, &err);
	if (k < 0) {
		log_error("%s:%s: %s", ref.name, epoch_ref_target(&ref), err ?: strerror(-k));
		return EXIT_FAILURE;
	}
	res.manifest = TAKE_PTR(m);
	if (a->json)
		return inspect_json(&ref, &res);
	total = res.manifest->config.size;
	for (size_t i = 0; i < res.manifest->n_layers; i++)
		total += res.manifest->layers[i].size;
	format_size(total, size);
	printf("name:       %s:%s\ndigest:     %s\nkind:       %s\nmedia type: %s\n", ref.name,
	       epoch_ref_target(&ref), res.digest, epoch_kind_to_string(res.manifest->kind),
	       res.media_type ?: res.manifest->media_type ?: "-");
	if (res.manifest->artifact_type)
		printf("artifact:   %s\n", res.manifest->artifact_type);
	printf("size:       %s\n", size);
	for (size_t i = 0; i < res.manifest->n_annotations; i++)
		printf("annotation: %s=%s\n", res.manifest->annotations[i].key,
		       res.manifest->annotations[i].value);
	printf("%s:\n", res.manifest->kind == EPOCH_KIND_INDEX ? "manifests" : "layers");
	for (size_t i = 0; i < res.manifest->n_layers; i++) {
		const struct epoch_descriptor *d = &res.manifest->layers[i];
		char s[32];

		format_size(d->size, s);
		if (res.manifest->kind == EPOCH_KIND_INDEX)
			printf("  %s/%-8s %10s  %s\n", d->os ?: "?", d->arch ?: "?", s, d->digest);
		else
			printf("  %-20s %10s  %s  %s\n", d->title ?: "-", s, d->media_type,
			       d->digest);
	}
	return EXIT_SUCCESS;
}

static int verb_tag(const struct args *a)
{
	_cleanup_(epoch_ref_done) struct epoch_ref from = {}, to = {};
	_cleanup_(epoch_registry_freep) struct epoch_registry *reg = NULL;
	_cleanup_(epoch_result_clear) struct epoch_result res = {}, put = {};
	struct epoch_call *call = NULL;
	int k;

	if (parse_ref(a->pos[0], &from) < 0 || parse_ref(a->pos[1], &to) < 0)
		return EXIT_USAGE;
	if (!streq(from.name, to.name) || !streq_ptr(from.url, to.url) || !to.tag) {
		log_error("tag: both references must name the same repository, the second with a "
			  "tag (%s, %s)",
			  a->pos[0], a->pos[1]);
		return EXIT_USAGE;
	}
	k = open_registry(&from, &reg);
	if (k != 0)
		return k;
	k = epoch_get_manifest(reg, from.name, epoch_ref_target(&from), epoch_result_fill, &res,
			       &call);
	if (wait_result(k, call, &res) < 0)
		return EXIT_FAILURE;
	if (a->dry_run) {
		printf("would tag %s (%s) as %s:%s\n", a->pos[0], res.digest, to.name, to.tag);
		return EXIT_SUCCESS;
	}
	/* The same bytes under the new tag: the digest stays the same. */
	k = epoch_put_manifest(reg, to.name, to.tag, res.body, res.body_len,
			       res.media_type ?: EPOCH_MT_OCI_MANIFEST, epoch_result_fill, &put,
			       &call);
	if (wait_result(k, call, &put) < 0)
		return EXIT_FAILURE;
	fprintf(stderr, "tagged %s:%s as %s:%s (%s)\n", from.name, epoch_ref_target(&from), to.name,
		to.tag, res.digest);
	return EXIT_SUCCESS;
}

static int verb_rm(const struct args *a)
{
	_cleanup_(epoch_ref_done) struct epoch_ref ref = {};
	_cleanup_(epoch_registry_freep) struct epoch_registry *reg = NULL;
	_cleanup_(epoch_result_clear) struct epoch_result res = {};
	struct epoch_call *call = NULL;
	int k;

	if (parse_ref(a->pos[0], &ref) < 0)
		return EXIT_USAGE;
	k = open_registry(&ref, &reg);
	if (k != 0)
		return k;
	if (a->dry_run) {
		k = epoch_has_manifest(reg, ref.name, epoch_ref_target(&ref), epoch_result_fill,
				       &res, &call);
		if (wait_result(k, call, &res) < 0)
			return EXIT_FAILURE;
		if (res.found)
			printf("would delete %s:%s (%s)\n", ref.name, epoch_ref_target(&ref),
			       res.digest ?: "digest not reported");
		else
			printf("%s:%s does not exist; nothing to delete\n", ref.name,
			       epoch_ref_target(&ref));
		return EXIT_SUCCESS;
	}
	k = epoch_delete_manifest(reg, ref.name, epoch_ref_target(&ref), epoch_result_fill, &res,
				  &call);
	if (wait_result(k, call, &res) < 0)
		return EXIT_FAILURE;
	fprintf(stderr, "%s %s:%s\n", res.found ? "deleted" : "already absent:", ref.name,
		epoch_ref_target(&ref));
	return EXIT_SUCCESS;
}

static const struct verb verbs[] = {
	{ "push", NULL, "SNAPSHOT [-t TAG] [--base-image REF] [--dry-run] [--progress]",
	  "export a cocoon snapshot and push it as repository SNAPSHOT, tag TAG (latest)",
	  V_TAG | V_BASE | V_DRY_RUN | V_PROGRESS, 1, 1, verb_push },
	{ "pull", NULL, "REF [--name LOCAL] [--description D] [--dry-run] [--progress]",
	  "pull a snapshot (cocoon snapshot import) or cloud image (cocoon image import)",
	  V_NAME | V_DESC | V_DRY_RUN | V_PROGRESS, 1, 1, verb_pull },
	{ "get", NULL, "REF [--progress] >FILE",
	  "write a cloud image's disk (or a snapshot's import tar) to stdout, verified", V_PROGRESS,
	  1, 1, verb_get },
	{ "ls", "list", "[NAME] [-o json]", "list repositories, or the tags of NAME", V_JSON, 0, 1,
	  verb_ls },
	{ "inspect", NULL, "REF [-o json]", "show a manifest: kind, digest, size, layers", V_JSON,
	  1, 1, verb_inspect },
	{ "tag", NULL, "NAME:OLD NAME:NEW [--dry-run]", "tag a manifest again (same repository)",
	  V_DRY_RUN, 2, 2, verb_tag },
	{ "rm", NULL, "NAME:TAG [--dry-run]", "delete a tag (absent already counts as done)",
	  V_DRY_RUN, 1, 1, verb_rm },
	{},
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: epoch COMMAND [ARGS] [OPTIONS]\n\n"
		   "The Epoch / OCI registry client: snapshots and cloud images for cocoon.\n\n"
		   "Commands:\n");
	for (const struct verb *v = verbs; v->name; v++)
		fprintf(f, "  %s%s%s %s\n      %s\n", v->name, v->alias ? "|" : "", v->alias ?: "",
			v->usage, v->help);
	fprintf(f, "\nREF is NAME[:TAG] (split at the first ':', TAG defaults to latest), "
		   "NAME[:TAG]@sha256:DIGEST,\nor an Epoch URL: http(s)://HOST/dl/NAME[/TAG] or "
		   "http(s)://HOST/v2/NAME/manifests/REF.\n\n"
		   "Options:\n"
		   "  -t, --tag TAG          push: the tag (default latest)\n"
		   "      --base-image REF   push: recorded as cocoonstack.snapshot.baseimage\n"
		   "      --name LOCAL       pull: local name (default NAME, or NAME:TAG)\n"
		   "      --description D    pull: snapshot description\n"
		   "  -o, --output json      ls, inspect: JSON output\n"
		   "      --dry-run          push, pull, tag, rm: check and say what would happen\n"
		   "      --progress         show progress even when stderr is not a terminal\n"
		   "  -h, --help             this text\n"
		   "      --version          the version\n\n"
		   "Environment variables:\n");
	for (size_t i = 0; i < ELEMENTSOF(conf_vars); i++) {
		const struct conf_var *c = &conf_vars[i];

		fprintf(f, "  %s%s%s (default: %s)\n      %s\n", c->name,
			c->alias ? ", alias " : "", c->alias ?: "", c->def ?: "unset", c->help);
	}
	fprintf(f, "\nExit status: 0 success, 1 failure, 2 usage or configuration error.\n");
}

static const struct verb *find_verb(const char *name)
{
	for (const struct verb *v = verbs; v->name; v++)
		if (streq(name, v->name) || streq_ptr(name, v->alias))
			return v;
	return NULL;
}

static int parse_args(int argc, char **argv, const struct verb **ret_verb, struct args *a)
{
	static const struct option opts[] = {
		{ "tag", required_argument, NULL, 't' },
		{ "base-image", required_argument, NULL, 'b' },
		{ "name", required_argument, NULL, 'n' },
		{ "description", required_argument, NULL, 'd' },
		{ "output", required_argument, NULL, 'o' },
		{ "dry-run", no_argument, NULL, 'D' },
		{ "progress", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{},
	};
	unsigned used = 0;
	const struct verb *v = NULL;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "t:o:h", opts, NULL)) >= 0) {
		switch (c) {
		case 't':
			a->tag = optarg, used |= V_TAG;
			break;
		case 'b':
			a->base_image = optarg, used |= V_BASE;
			break;
		case 'n':
			a->name = optarg, used |= V_NAME;
			break;
		case 'd':
			a->description = optarg, used |= V_DESC;
			break;
		case 'o':
			if (!streq(optarg, "json") && !streq(optarg, "text")) {
				log_error("-o: expected json or text, got \"%s\"", optarg);
				return -EINVAL;
			}
			a->json = streq(optarg, "json"), used |= V_JSON;
			break;
		case 'D':
			a->dry_run = true, used |= V_DRY_RUN;
			break;
		case 'P':
			a->progress = true, used |= V_PROGRESS;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case 'V':
			printf("epoch %s\n", COCOON_VERSION);
			return 1;
		default:
			log_error("unknown option or missing value: %s (see --help)",
				  argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (optind >= argc) {
		log_error("missing command: push, pull, get, ls, inspect, tag or rm (see --help)");
		return -EINVAL;
	}
	v = find_verb(argv[optind]);
	if (!v) {
		log_error("unknown command \"%s\" (see --help)", argv[optind]);
		return -EINVAL;
	}
	a->pos = argv + optind + 1;
	a->n_pos = argc - optind - 1;
	if (used & ~v->flags) {
		log_error("%s is not accepted by %s (see --help)",
			  flag_names[__builtin_ctz(used & ~v->flags)], v->name);
		return -EINVAL;
	}
	if (a->n_pos < v->min_args || a->n_pos > v->max_args) {
		log_error("usage: epoch %s %s", v->name, v->usage);
		return -EINVAL;
	}
	*ret_verb = v;
	return 0;
}

int main(int argc, char **argv)
{
	_cleanup_(freep) char *err = NULL;
	const struct verb *v = NULL;
	struct args a = {};
	sigset_t mask;
	int k;

	log_set_program("epoch");
	k = parse_args(argc, argv, &v, &a);
	if (k != 0)
		return k > 0 ? EXIT_SUCCESS : EXIT_USAGE;
	if (conf_load(conf_vars, ELEMENTSOF(conf_vars), &err) < 0) {
		log_error("%s", err);
		return EXIT_USAGE;
	}
	log_set_max_level(config.log_level);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	if (sd_event_new(&event) < 0 || sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
	    sd_event_add_signal(event, NULL, SIGINT, on_signal, NULL) < 0 ||
	    sd_event_add_signal(event, NULL, SIGTERM, on_signal, NULL) < 0) {
		log_error("cannot set up the event loop");
		return EXIT_FAILURE;
	}
	k = v->run(&a);
	event = sd_event_unref(event);
	return k;
}
