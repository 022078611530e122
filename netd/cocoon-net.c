/* cocoon-net: main() only — the subcommand table and the flag table, which also generate
 * the usage text, flag parsing into struct netd_cli, and the exit codes (0 ok, 1 failure,
 * 2 usage). What each command does is in commands.c; see netd.h. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/conf.h"
#include "cocoon/log.h"
#include "netd.h"

#define STRINGIFY_(x) #x
#define STRINGIFY(x)  STRINGIFY_(x)

enum {
	CMD_INIT = 1 << 0,
	CMD_ADOPT = 1 << 1,
	CMD_TEARDOWN = 1 << 2,
	CMD_STATUS = 1 << 3,
	CMD_ALL = CMD_INIT | CMD_ADOPT | CMD_TEARDOWN | CMD_STATUS,
};

enum {
	F_PLATFORM = 0x100,
	F_NODE_NAME,
	F_SUBNET,
	F_POOL_SIZE,
	F_GATEWAY,
	F_PRIMARY_NIC,
	F_DNS,
	F_DROP_INTERNAL,
	F_DROP_CIDR,
	F_MANAGE_IPTABLES,
	F_STATE_DIR,
	F_ROOT,
	F_DRY_RUN,
	F_OUTPUT = 'o',
	F_HELP = 'h',
};

struct flag {
	const char *name;
	int id;
	const char *arg; /* NULL: a switch */
	unsigned cmds;   /* commands that take it */
	unsigned required;
	const char *def;
	const char *help;
};

static const struct flag flags[] = {
	{ "platform", F_PLATFORM, "NAME", CMD_INIT | CMD_ADOPT, 0, "auto-detect",
	  "gke or volcengine; empty: probe both metadata services" },
	{ "node-name", F_NODE_NAME, "NAME", CMD_INIT | CMD_ADOPT, CMD_INIT | CMD_ADOPT, NULL,
	  "virtual node name (e.g. cocoon-pool)" },
	{ "subnet", F_SUBNET, "CIDR", CMD_INIT | CMD_ADOPT, CMD_INIT | CMD_ADOPT, NULL,
	  "VM subnet (e.g. 172.20.100.0/24)" },
	{ "pool-size", F_POOL_SIZE, "N", CMD_INIT | CMD_ADOPT, 0, NULL,
	  "number of IPs in the pool (Volcengine: always 7 ENIs x 20)" },
	{ "gateway", F_GATEWAY, "IP", CMD_INIT | CMD_ADOPT, 0, "first host IP of --subnet",
	  "gateway address on " NETD_BRIDGE },
	{ "primary-nic", F_PRIMARY_NIC, "NAME", CMD_INIT | CMD_ADOPT, 0,
	  "ens4 (gke) / eth0 (volcengine)", "the host's primary NIC" },
	{ "dns", F_DNS, "LIST", CMD_INIT | CMD_ADOPT, 0, NETD_DNS_DEFAULT,
	  "comma-separated DNS servers handed out by DHCP" },
	{ "drop-internal-access", F_DROP_INTERNAL, NULL, CMD_INIT | CMD_ADOPT, 0, NULL,
	  "drop VM traffic to --subnet (FORWARD DROP)" },
	{ "drop-cidr", F_DROP_CIDR, "CIDR", CMD_INIT | CMD_ADOPT, 0, NULL,
	  "drop VM traffic to this IPv4 CIDR (repeatable)" },
	{ "manage-iptables", F_MANAGE_IPTABLES, NULL, CMD_ADOPT, 0, NULL,
	  "let adopt write the FORWARD and NAT rules (otherwise existing rules are kept)" },
	{ "state-dir", F_STATE_DIR, "DIR", CMD_ALL, 0, NETD_STATE_DIR_DEFAULT,
	  "where pool.json lives" },
	{ "root", F_ROOT, "DIR", CMD_ALL, 0, "$" NETD_ENV_ROOT " or /",
	  "prefix for every file cocoon-net reads or writes (not /proc/sys)" },
	{ "dry-run", F_DRY_RUN, NULL, CMD_INIT | CMD_ADOPT | CMD_TEARDOWN, 0, NULL,
	  "print the change set and change nothing" },
	{ "output", F_OUTPUT, "FORMAT", CMD_STATUS, 0, "text", "text or json" },
	{ "help", F_HELP, NULL, CMD_ALL, 0, NULL, "show this help" },
};

struct command {
	const char *name;
	unsigned bit;
	int (*run)(const struct netd_cli *cli);
	const char *summary;
};

static const struct command commands[] = {
	{ "init", CMD_INIT, netd_cmd_init,
	  "Provision cloud networking (GKE alias IPs or Volcengine ENIs), then configure the "
	  "node" },
	{ "adopt", CMD_ADOPT, netd_cmd_adopt,
	  "Configure the node for an already provisioned subnet; no cloud calls" },
	{ "teardown", CMD_TEARDOWN, netd_cmd_teardown,
	  "Remove the cloud resources (unless adopted), then the host rules, bridge and state" },
	{ "status", CMD_STATUS, netd_cmd_status,
	  "Show the pool, netd's live lease count and the cloud state" },
};

static const char *const environment[][2] = {
	{ NETD_ENV_ROOT, "default for --root" },
	{ NETD_ENV_LOG_LEVEL, "debug, info, warning or error (default info)" },
	{ NETD_ENV_GKE_METADATA_URL, "GKE metadata base (default " NETD_GKE_METADATA_URL ")" },
	{ NETD_ENV_VOLC_METADATA_URL,
	  "Volcengine metadata base (default " NETD_VOLC_METADATA_URL ")" },
	{ "COCOON_NET_VOLC_CREATE_WAIT", "wait after creating an ENI (default 2s)" },
	{ "COCOON_NET_VOLC_ATTACH_WAIT", "wait after attaching or detaching an ENI (default 4s)" },
	{ "VOLCENGINE_ACCESS_KEY_ID", "with _SECRET_ACCESS_KEY and _REGION: credentials for ve "
				      "(else ~/.volcengine/config.json)" },
	{ "COCOON_NETD_BUS", "netd's bus endpoint (default ipc://$COCOON_RUN_DIR/netd.sock, "
			     "COCOON_RUN_DIR=/run/cocoon)" },
	{ "PATH", "where gcloud, ve and iptables are found" },
};

static void usage_command(FILE *f, const struct command *c)
{
	fprintf(f, "Usage: cocoon-net %s", c->name);
	for (size_t i = 0; i < ELEMENTSOF(flags); i++)
		if (flags[i].required & c->bit)
			fprintf(f, " --%s %s", flags[i].name, flags[i].arg);
	fprintf(f, " [flags]\n\n%s.\n\nFlags:\n", c->summary);
	for (size_t i = 0; i < ELEMENTSOF(flags); i++) {
		const struct flag *fl = &flags[i];
		const char *def = fl->def;
		char left[48];

		if (!(fl->cmds & c->bit))
			continue;
		if (fl->id == F_POOL_SIZE)
			def = c->bit == CMD_INIT ? STRINGIFY(NETD_POOL_SIZE_INIT)
						 : STRINGIFY(NETD_POOL_SIZE_ADOPT);
		snprintf(left, sizeof left, "%s--%s%s%s",
			 fl->id == F_OUTPUT ? "-o, "
			 : fl->id == F_HELP ? "-h, "
					    : "",
			 fl->name, fl->arg ? " " : "", fl->arg ? fl->arg : "");
		fprintf(f, "  %-28s %s%s%s%s%s\n", left, fl->help,
			fl->required & c->bit ? " (required)" : "", def ? " (default: " : "",
			def ? def : "", def ? ")" : "");
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cocoon-net <command> [flags]\n"
		"       cocoon-net help <command> | --help | --version\n\n"
		"Host networking for cocoon VM nodes: cni0 bridge, dnsmasq DHCP config, iptables,\n"
		"sysctls, CNI conflist and the pool state; cloud IPs on GKE and Volcengine.\n"
		"netd (the daemon) keeps the node converged and tracks DHCP leases.\n\n"
		"Commands:\n");
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nEnvironment:\n");
	for (size_t i = 0; i < ELEMENTSOF(environment); i++)
		fprintf(f, "  %-28s %s\n", environment[i][0], environment[i][1]);
	fprintf(f, "\nExit status: 0 success, 1 failure, 2 usage error.\n");
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (streq(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static int usage_error(const struct command *c, const char *fmt, ...) _printf_(2, 3);
static int usage_error(const struct command *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "cocoon-net %s: ", c->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n\n");
	usage_command(stderr, c);
	return -EINVAL;
}

static int set_flag(const struct command *c, int id, const char *arg, struct netd_cli *cli)
{
	char *end;

	switch (id) {
	case F_PLATFORM:
		cli->platform = arg;
		break;
	case F_NODE_NAME:
		cli->node_name = arg;
		break;
	case F_SUBNET:
		cli->subnet = arg;
		break;
	case F_GATEWAY:
		cli->gateway = arg;
		break;
	case F_PRIMARY_NIC:
		cli->primary_nic = arg;
		break;
	case F_DNS:
		cli->dns = arg;
		break;
	case F_STATE_DIR:
		cli->state_dir = arg;
		break;
	case F_ROOT:
		cli->root = arg;
		break;
	case F_DROP_INTERNAL:
		cli->drop_internal_access = true;
		break;
	case F_MANAGE_IPTABLES:
		cli->manage_iptables = true;
		break;
	case F_DRY_RUN:
		cli->dry_run = true;
		break;
	case F_POOL_SIZE:
		errno = 0;
		cli->pool_size = strtoll(arg, &end, 10);
		if (errno || end == arg || *end || cli->pool_size == NETD_POOL_SIZE_UNSET)
			return usage_error(c, "--pool-size %s: not an integer", arg);
		break;
	case F_DROP_CIDR:
		if (strv_push(&cli->drop_cidrs, arg) < 0)
			return log_oom_errno();
		break;
	case F_OUTPUT:
		if (!streq(arg, "json") && !streq(arg, "text"))
			return usage_error(c, "-o %s: must be text or json", arg);
		cli->json = streq(arg, "json");
		break;
	}
	return 0;
}

/* 1: --help was printed; 0: parsed; -EINVAL: usage error (printed). */
static int parse_flags(const struct command *c, int argc, char **argv, struct netd_cli *cli)
{
	struct option opts[ELEMENTSOF(flags) + 1] = {};
	char shortopts[] = ":ho:";
	size_t n = 0;
	unsigned seen = 0;
	int id, r;

	for (size_t i = 0; i < ELEMENTSOF(flags); i++)
		if (flags[i].cmds & c->bit)
			opts[n++] = (struct option){ flags[i].name,
						     flags[i].arg ? required_argument : no_argument,
						     NULL, flags[i].id };
	if (!(c->bit & CMD_STATUS))
		shortopts[2] = '\0'; /* -o is status's only */
	opterr = 0;
	optind = 1;
	while ((id = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
		if (id == '?')
			return usage_error(c, "unknown flag %s", argv[optind - 1]);
		if (id == ':')
			return usage_error(c, "flag %s needs a value", argv[optind - 1]);
		if (id == F_HELP) {
			usage_command(stdout, c);
			return 1;
		}
		for (size_t i = 0; i < ELEMENTSOF(flags); i++)
			if (flags[i].id == id)
				seen |= (unsigned)1 << i;
		r = set_flag(c, id, optarg, cli);
		if (r < 0)
			return r;
	}
	if (optind < argc)
		return usage_error(c, "unexpected argument \"%s\"", argv[optind]);
	for (size_t i = 0; i < ELEMENTSOF(flags); i++)
		if ((flags[i].required & c->bit) && !(seen & (1u << i)))
			return usage_error(c, "missing required flag --%s", flags[i].name);
	return 0;
}

int main(int argc, char **argv)
{
	struct netd_cli cli = { .pool_size = NETD_POOL_SIZE_UNSET };
	const struct command *c;
	int r;

	log_set_program("cocoon-net");
	if (log_setup(NETD_ENV_LOG_LEVEL) < 0) {
		fprintf(stderr,
			"cocoon-net: invalid %s=\"%s\": expected debug, info, warning or "
			"error\n",
			NETD_ENV_LOG_LEVEL, getenv(NETD_ENV_LOG_LEVEL));
		return COCOON_EXIT_USAGE;
	}
	if (argc < 2) {
		usage(stderr);
		return COCOON_EXIT_USAGE;
	}
	if (streq(argv[1], "--help") || streq(argv[1], "-h") ||
	    (streq(argv[1], "help") && argc == 2)) {
		usage(stdout);
		return EXIT_SUCCESS;
	}
	if (streq(argv[1], "--version")) {
		printf("cocoon-net %s\n", COCOON_VERSION);
		return EXIT_SUCCESS;
	}
	if (streq(argv[1], "help")) {
		c = find_command(argv[2]);
		if (!c) {
			fprintf(stderr, "cocoon-net: unknown command \"%s\"\n\n", argv[2]);
			usage(stderr);
			return COCOON_EXIT_USAGE;
		}
		usage_command(stdout, c);
		return EXIT_SUCCESS;
	}
	c = find_command(argv[1]);
	if (!c) {
		fprintf(stderr, "cocoon-net: unknown command \"%s\"\n\n", argv[1]);
		usage(stderr);
		return COCOON_EXIT_USAGE;
	}
	cli.root = getenv(NETD_ENV_ROOT);
	r = parse_flags(c, argc - 1, argv + 1, &cli);
	if (r == 0)
		r = c->run(&cli) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
	else
		r = r > 0 ? EXIT_SUCCESS : COCOON_EXIT_USAGE;
	strv_free(cli.drop_cidrs);
	return r;
}
