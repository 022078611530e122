/* kube-leader: drives kube_leader and kube_recorder against a real server for integration
 * scenarios (tests/integration/022-kube-leader-events.sh). Test-only; not installed.
 *
 *   kube-leader NAMESPACE NAME IDENTITY [--lease-ms N] [--renew-ms N] [--retry-ms N]
 *       campaigns for the Lease NAMESPACE/NAME and prints one line per callback, each
 *       prefixed with the wall-clock time in seconds ("1732170000.123 LEADING"):
 *       "NEW LEADER id", "LEADING", "STOPPED". SIGTERM/SIGINT release the Lease (after
 *       "STOPPED" if it was leading), print "RELEASED" and exit 0.
 *   kube-leader event NS KIND NAME REASON MESSAGE [--times N] [--type Normal|Warning]
 *                     [--api-version V] [--uid U] [--component C] [--host H]
 *       records the Event N times (default 1), waits for the writes, prints
 *       "RECORDED n failures f" and exits 0 when f is 0.
 *
 * The server comes from $KUBECONFIG (kube_config_load). Exit codes: 0 ok, 1 failure,
 * 2 usage. $KUBE_LEADER_LOG_LEVEL sets the log level (e.g. debug). */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cocoon/conf.h"
#include "cocoon/kube.h"
#include "cocoon/log.h"
#include "cocoon/loop.h"

#define USAGE                                                                                      \
	"usage: kube-leader NAMESPACE NAME IDENTITY [--lease-ms N] [--renew-ms N] "                \
	"[--retry-ms N]\n"                                                                         \
	"       kube-leader event NS KIND NAME REASON MESSAGE [--times N] [--type T]\n"            \
	"                   [--api-version V] [--uid U] [--component C] [--host H]\n"              \
	"The server comes from $KUBECONFIG; $KUBE_LEADER_LOG_LEVEL sets the log level.\n"          \
	"Defaults: --lease-ms 15000 --renew-ms 10000 --retry-ms 2000 --times 1 --type Normal\n"    \
	"          --api-version v1 --component kube-leader --host $(hostname)\n"

static struct {
	uint64_t lease_ms, renew_ms, retry_ms;
	unsigned times;
	const char *type, *api_version, *uid, *component, *host;
} arg = { .times = 1, .type = "Normal", .api_version = "v1", .component = "kube-leader" };

struct tool {
	struct loop *loop;
	struct kube_client *client;
	struct kube_leader *leader;
	struct kube_recorder *recorder;
};

static void say(const char *fmt, ...) _printf_(1, 2);
static void say(const char *fmt, ...)
{
	struct timespec ts;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	printf("%lld.%03ld ", (long long)ts.tv_sec, ts.tv_nsec / 1000000);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void on_started(struct kube_leader *l, void *u)
{
	say("LEADING");
}

static void on_stopped(struct kube_leader *l, void *u)
{
	say("STOPPED");
}

static void on_new_leader(struct kube_leader *l, const char *id, void *u)
{
	say("NEW LEADER %s", id);
}

static void on_released(struct kube_leader *l, void *u)
{
	struct tool *t = u;

	say("RELEASED");
	loop_drain_done(t->loop);
}

static void on_drain(struct loop *loop, void *u)
{
	struct tool *t = u;
	int r = kube_leader_release(t->leader, on_released, t);

	if (r < 0) {
		log_error_errno(r, "cannot release the lease: %m");
		loop_drain_done(loop);
	}
}

static int setup(struct tool *t)
{
	_cleanup_(kube_config_freep) struct kube_config *cfg = NULL;
	_cleanup_(freep) char *err = NULL;
	int r;

	r = loop_new(&t->loop);
	if (r < 0)
		return log_error_errno(r, "cannot set up the event loop: %m");
	r = kube_config_load(NULL, &cfg, &err);
	if (r < 0)
		return log_error_errno(r, "%s", err ? err : "cannot load the kubeconfig");
	r = kube_client_new(loop_event(t->loop), cfg, NULL, &t->client);
	if (r < 0)
		return log_error_errno(r, "cannot create the client: %m");
	return 0;
}

static void tool_done(struct tool *t)
{
	kube_leader_free(t->leader);
	kube_recorder_free(t->recorder);
	kube_client_free(t->client);
	loop_free(t->loop);
}

static int run_campaign(char **pos)
{
	struct tool t = { 0 };
	struct kube_leader_options o = {
		.namespace = pos[0],
		.name = pos[1],
		.identity = pos[2],
		.lease_duration_usec = arg.lease_ms * 1000,
		.renew_deadline_usec = arg.renew_ms * 1000,
		.retry_period_usec = arg.retry_ms * 1000,
		.on_started_leading = on_started,
		.on_stopped_leading = on_stopped,
		.on_new_leader = on_new_leader,
	};
	int r;

	r = setup(&t);
	if (r >= 0) {
		r = kube_leader_new(t.client, &o, &t, &t.leader);
		if (r < 0)
			log_error_errno(r, "cannot start the election (durations must be lease > "
					   "renew > 1.2 × retry): %m");
	}
	if (r >= 0)
		r = loop_add_drain(t.loop, on_drain, &t);
	if (r >= 0)
		r = loop_run(t.loop);
	tool_done(&t);
	return r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

static void on_flushed(struct kube_recorder *r, void *u)
{
	struct tool *t = u;

	loop_exit(t->loop, 0);
}

static int run_event(char **pos)
{
	struct tool t = { 0 };
	char host[256] = "";
	json_t *involved = NULL;
	uint64_t failures = 0;
	int r;

	if (!arg.host && gethostname(host, sizeof host - 1) < 0)
		snprintf(host, sizeof host, "localhost");
	involved = json_pack("{s:s, s:s, s:{s:s, s:s}}", "kind", pos[1], "apiVersion",
			     arg.api_version, "metadata", "namespace", pos[0], "name", pos[2]);
	if (!involved)
		return log_oom_errno(), EXIT_FAILURE;
	if (arg.uid)
		json_object_set_new(json_object_get(involved, "metadata"), "uid",
				    json_string(arg.uid));
	r = setup(&t);
	if (r >= 0)
		r = kube_recorder_new(t.client, arg.component, arg.host ? arg.host : host,
				      &t.recorder);
	for (unsigned i = 0; r >= 0 && i < arg.times; i++) {
		r = kube_record(t.recorder, involved, arg.type, pos[3], "%s", pos[4]);
		if (r < 0)
			log_error_errno(r, "cannot record the event: %m");
	}
	if (r >= 0)
		r = kube_recorder_flush(t.recorder, on_flushed, &t);
	if (r >= 0)
		r = loop_run(t.loop);
	if (r >= 0) {
		failures = kube_recorder_failures(t.recorder);
		say("RECORDED %u failures %llu", arg.times, (unsigned long long)failures);
	}
	json_decref(involved);
	tool_done(&t);
	return r >= 0 && failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

static int parse_number(const char *s, const char *what, uint64_t *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v == 0 || v > 1000ULL * 1000 * 1000) {
		fprintf(stderr, "kube-leader: %s: \"%s\" is not a positive number\n", what, s);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

static int parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "lease-ms", required_argument, NULL, 'l' },
		{ "renew-ms", required_argument, NULL, 'r' },
		{ "retry-ms", required_argument, NULL, 'p' },
		{ "times", required_argument, NULL, 'n' },
		{ "type", required_argument, NULL, 't' },
		{ "api-version", required_argument, NULL, 'a' },
		{ "uid", required_argument, NULL, 'u' },
		{ "component", required_argument, NULL, 'c' },
		{ "host", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	uint64_t n;
	int c;

	/* GNU getopt permutes: options may follow the positional arguments. */
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
		switch (c) {
		case 'l':
			if (parse_number(optarg, "--lease-ms", &arg.lease_ms) < 0)
				return COCOON_EXIT_USAGE;
			break;
		case 'r':
			if (parse_number(optarg, "--renew-ms", &arg.renew_ms) < 0)
				return COCOON_EXIT_USAGE;
			break;
		case 'p':
			if (parse_number(optarg, "--retry-ms", &arg.retry_ms) < 0)
				return COCOON_EXIT_USAGE;
			break;
		case 'n':
			if (parse_number(optarg, "--times", &n) < 0)
				return COCOON_EXIT_USAGE;
			if (n > 100000) {
				fprintf(stderr, "kube-leader: --times: at most 100000\n");
				return COCOON_EXIT_USAGE;
			}
			arg.times = (unsigned)n;
			break;
		case 't':
			arg.type = optarg;
			break;
		case 'a':
			arg.api_version = optarg;
			break;
		case 'u':
			arg.uid = optarg;
			break;
		case 'c':
			arg.component = optarg;
			break;
		case 'H':
			arg.host = optarg;
			break;
		case 'h':
			fputs(USAGE, stdout);
			return -1;
		default:
			fputs(USAGE, stderr);
			return COCOON_EXIT_USAGE;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	int r;

	log_setup("KUBE_LEADER_LOG_LEVEL");
	r = parse_args(argc, argv);
	if (r != 0)
		return r < 0 ? EXIT_SUCCESS : r;
	if (argc - optind == 6 && streq(argv[optind], "event"))
		return run_event(argv + optind + 1);
	if (argc - optind == 3 && !streq(argv[optind], "event"))
		return run_campaign(argv + optind);
	fputs(USAGE, stderr);
	return COCOON_EXIT_USAGE;
}
