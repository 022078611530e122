/* The one event loop of a daemon (DESIGN.md §4): sd-event plus the process-wide parts every
 * daemon needs — SIGTERM/SIGINT start a bounded drain, SIGPIPE is ignored, the watchdog is
 * pinged when the unit has WatchdogSec=, and READY=1/STATUS=/STOPPING=1 go to systemd.
 *
 * Shutdown contract (s6 style): the first SIGTERM or SIGINT sends STOPPING=1 and calls every
 * drain callback; each stops taking new work, finishes what it has, and calls
 * loop_drain_done() exactly once (possibly from inside the callback). loop_run() then
 * returns 0. If the drains are not all done within the drain timeout, or a second signal
 * arrives, it returns 1 at once. loop_exit() ends the loop immediately with any code.
 *
 * sd_event_default() is per thread, so there is one struct loop per thread. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "cocoon/macro.h"

#define LOOP_DRAIN_TIMEOUT_DEFAULT_USEC (10ULL * 1000 * 1000)

struct loop;

typedef void (*loop_drain_fn)(struct loop *l, void *userdata);

/* Blocks SIGTERM, SIGINT and SIGCHLD in the calling thread (sd-event receives them through
 * signalfd/pidfd), ignores SIGPIPE, and enables watchdog pings. */
int loop_new(struct loop **ret);
void loop_free(struct loop *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct loop *, loop_free);

sd_event *loop_event(struct loop *l);
int loop_add_drain(struct loop *l, loop_drain_fn cb, void *userdata);
void loop_drain_done(struct loop *l);
void loop_set_drain_timeout(struct loop *l, uint64_t usec);
bool loop_is_draining(struct loop *l);

/* Runs until exit; returns the exit code (see above) or -errno if sd-event failed. */
int loop_run(struct loop *l);
int loop_exit(struct loop *l, int code);

/* sd_notify wrappers: > 0 sent, 0 when there is no $NOTIFY_SOCKET, -errno on failure.
 * status_fmt may be NULL for a bare READY=1. */
int loop_notify_ready(struct loop *l, const char *status_fmt, ...) _printf_(2, 3);
int loop_notify_status(struct loop *l, const char *fmt, ...) _printf_(2, 3);

/* Arms a one-shot timer source to fire usec from now. Moving a timer does not enable it
 * again once it has fired, so the two always go together (a timer re-armed from its own
 * callback with only the move fires once: operatord's resync, webhookd's ping did). */
int loop_timer_arm(sd_event_source *s, uint64_t usec);
