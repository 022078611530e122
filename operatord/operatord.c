/* operatord: main() only — configuration, controller, READY, loop. See operatord.h. */
#include <stdlib.h>

#include "cocoon/log.h"
#include "operatord.h"

/* How long SIGTERM waits for passes in flight and the lease release. */
#define OPERATORD_DRAIN_USEC (15 * USEC_PER_SEC)

static int run(void)
{
	_cleanup_(loop_freep) struct loop *loop = NULL;
	_cleanup_(controller_freep) struct controller *c = NULL;
	int r;

	r = loop_new(&loop);
	if (r < 0)
		return log_error_errno(r, "cannot set up the event loop: %m"), EXIT_FAILURE;
	loop_set_drain_timeout(loop, OPERATORD_DRAIN_USEC);
	r = controller_new(loop, &operatord_config, &c);
	if (r < 0)
		return EXIT_FAILURE;
	/* READY=1 comes from the controller once its caches are synced. */
	log_info("started: %s", controller_describe(c));
	return loop_run(loop);
}

int main(int argc, char **argv)
{
	_cleanup_(freep) char *err = NULL;
	int r;

	r = conf_handle_args(argc, argv, OPERATORD_SUMMARY, operatord_conf_vars,
			     operatord_conf_vars_len);
	if (r != 0)
		return r > 0 ? EXIT_SUCCESS : COCOON_EXIT_USAGE;
	if (conf_load(operatord_conf_vars, operatord_conf_vars_len, &err) < 0 ||
	    operatord_config_check(&operatord_config, &err) < 0) {
		log_error("%s", err);
		return COCOON_EXIT_USAGE;
	}
	log_set_max_level(operatord_config.log_level);
	return run();
}
