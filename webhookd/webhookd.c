/* webhookd: main() only — configuration, cluster, servers, loop (READY once the caches are
 * synced, server.c). See webhookd.h. */
#include <stdlib.h>

#include "cocoon/log.h"
#include "webhookd.h"

static int run(void)
{
	_cleanup_(loop_freep) struct loop *loop = NULL;
	_cleanup_(webhookd_freep) struct webhookd *w = NULL;
	int r;

	r = loop_new(&loop);
	if (r < 0)
		return log_error_errno(r, "cannot set up the event loop: %m"), EXIT_FAILURE;
	loop_set_drain_timeout(loop, WEBHOOKD_DRAIN_USEC);
	r = webhookd_new(loop, &webhookd_config, &w);
	if (r < 0)
		return EXIT_FAILURE;
	/* READY=1 follows once the caches are synced (server.c) */
	log_info("listening: %s; waiting for the pod and node caches", webhookd_describe(w));
	(void)loop_notify_status(loop, "waiting for the pod and node caches");
	return loop_run(loop);
}

int main(int argc, char **argv)
{
	char *err = NULL;
	int r;

	r = conf_handle_args(argc, argv, WEBHOOKD_SUMMARY, webhookd_conf_vars,
			     webhookd_conf_vars_len);
	if (r != 0)
		return r > 0 ? EXIT_SUCCESS : COCOON_EXIT_USAGE;
	if (conf_load(webhookd_conf_vars, webhookd_conf_vars_len, &err) < 0) {
		log_error("%s", err);
		free(err);
		return COCOON_EXIT_USAGE;
	}
	log_set_max_level(webhookd_config.log_level);
	if (webhookd_config.reaper_interval_usec == 0) {
		log_error("invalid REAPER_INTERVAL=0: the reaper needs a positive interval");
		return COCOON_EXIT_USAGE;
	}
	return run();
}
