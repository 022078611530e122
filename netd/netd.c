/* netd: main() only — configuration, the daemon, READY, loop. See daemon.h. */
#include <stdlib.h>

#include "cocoon/log.h"
#include "netd.h"

static int run(void)
{
	_cleanup_(loop_freep) struct loop *loop = NULL;
	_cleanup_(netd_daemon_freep) struct netd *n = NULL;
	int r;

	r = loop_new(&loop);
	if (r < 0)
		return log_error_errno(r, "cannot set up the event loop: %m"), EXIT_FAILURE;
	loop_set_drain_timeout(loop, NETD_DRAIN_USEC);
	r = netd_daemon_new(loop, &netd_daemon_config, &n);
	if (r < 0)
		return EXIT_FAILURE;
	log_info("serving: %s", netd_daemon_describe(n));
	loop_notify_ready(loop, "%s", netd_daemon_describe(n));
	return loop_run(loop);
}

int main(int argc, char **argv)
{
	char *err = NULL;
	int r;

	r = conf_handle_args(argc, argv, NETD_SUMMARY, netd_daemon_conf_vars,
			     netd_daemon_conf_vars_len);
	if (r != 0)
		return r > 0 ? EXIT_SUCCESS : COCOON_EXIT_USAGE;
	if (conf_load(netd_daemon_conf_vars, netd_daemon_conf_vars_len, &err) < 0) {
		log_error("%s", err);
		free(err);
		return COCOON_EXIT_USAGE;
	}
	netd_daemon_config_finish(&netd_daemon_config);
	log_set_max_level(netd_daemon_config.log_level);
	return run();
}
