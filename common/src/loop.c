/* The daemon's event loop: owns the default sd-event of the thread, the SIGTERM/SIGINT
 * sources and the bounded drain they start, and the sd_notify messages systemd reads
 * (READY=1, STATUS=, STOPPING=1; WATCHDOG=1 pings are sent by sd-event itself once
 * sd_event_set_watchdog() saw $WATCHDOG_USEC). See loop.h for the shutdown contract. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "cocoon/log.h"
#include "cocoon/loop.h"

struct loop_drain {
	loop_drain_fn cb;
	void *userdata;
};

struct loop {
	sd_event *event;
	sd_event_source *sigterm, *sigint, *drain_timer;
	struct loop_drain *drains;
	size_t n_drains;
	size_t pending; /* drains started but not yet done */
	bool draining;
	bool starting; /* inside the drain callbacks: a synchronous done must not exit yet */
	uint64_t drain_timeout;
};

static int loop_on_drain_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct loop *l = userdata;

	log_debug("%zu drain(s) still running after the drain timeout, exiting", l->pending);
	return sd_event_exit(l->event, EXIT_FAILURE);
}

static int loop_start_drain(struct loop *l)
{
	size_t n = l->n_drains;
	int r;

	l->draining = true;
	(void)sd_notify(0, "STOPPING=1");
	r = sd_event_add_time_relative(l->event, &l->drain_timer, CLOCK_MONOTONIC, l->drain_timeout,
				       1000, loop_on_drain_timeout, l);
	if (r < 0) {
		log_debug_errno(r, "Cannot arm the drain timer, exiting without draining: %m");
		return sd_event_exit(l->event, EXIT_FAILURE);
	}
	l->pending = n;
	l->starting = true;
	for (size_t i = 0; i < n; i++)
		l->drains[i].cb(l, l->drains[i].userdata);
	l->starting = false;
	if (l->pending == 0)
		return sd_event_exit(l->event, EXIT_SUCCESS);
	return 0;
}

static int loop_on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	struct loop *l = userdata;

	if (l->draining) {
		/* The operator asked twice: stop waiting for the drains. */
		log_debug("Received %s while draining, exiting now", strsignal((int)si->ssi_signo));
		return sd_event_exit(l->event, EXIT_FAILURE);
	}
	log_debug("Received %s, draining", strsignal((int)si->ssi_signo));
	return loop_start_drain(l);
}

int loop_new(struct loop **ret)
{
	struct sigaction ignore = { .sa_handler = SIG_IGN };
	_cleanup_(loop_freep) struct loop *l = NULL;
	sigset_t mask;
	int r;

	/* signalfd and pidfd only see signals that are blocked; a write to a closed peer
	 * must give EPIPE, not kill the daemon. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	if (sigaction(SIGPIPE, &ignore, NULL) < 0)
		return -errno;

	l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	l->drain_timeout = LOOP_DRAIN_TIMEOUT_DEFAULT_USEC;
	r = sd_event_default(&l->event);
	if (r < 0)
		return r;
	r = sd_event_add_signal(l->event, &l->sigterm, SIGTERM, loop_on_signal, l);
	if (r < 0)
		return log_debug_errno(r, "Cannot watch SIGTERM: %m");
	r = sd_event_add_signal(l->event, &l->sigint, SIGINT, loop_on_signal, l);
	if (r < 0)
		return log_debug_errno(r, "Cannot watch SIGINT: %m");
	r = sd_event_set_watchdog(l->event, true);
	if (r < 0)
		return log_debug_errno(r, "Cannot enable watchdog pings: %m");
	*ret = TAKE_PTR(l);
	return 0;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	sd_event_source_disable_unref(l->sigterm);
	sd_event_source_disable_unref(l->sigint);
	sd_event_source_disable_unref(l->drain_timer);
	sd_event_unref(l->event);
	free(l->drains);
	free(l);
}

sd_event *loop_event(struct loop *l)
{
	return l->event;
}

int loop_add_drain(struct loop *l, loop_drain_fn cb, void *userdata)
{
	struct loop_drain *d;

	if (!cb)
		return -EINVAL;
	/* New work must not start once shutdown has begun. */
	if (l->draining)
		return -ESHUTDOWN;
	d = reallocarray(l->drains, l->n_drains + 1, sizeof *d);
	if (!d)
		return -ENOMEM;
	l->drains = d;
	d[l->n_drains++] = (struct loop_drain){ .cb = cb, .userdata = userdata };
	return 0;
}

void loop_drain_done(struct loop *l)
{
	if (!l->draining || l->pending == 0)
		return;
	l->pending--;
	if (l->pending == 0 && !l->starting)
		(void)sd_event_exit(l->event, EXIT_SUCCESS);
}

void loop_set_drain_timeout(struct loop *l, uint64_t usec)
{
	l->drain_timeout = usec;
}

bool loop_is_draining(struct loop *l)
{
	return l->draining;
}

int loop_run(struct loop *l)
{
	return sd_event_loop(l->event);
}

int loop_exit(struct loop *l, int code)
{
	return sd_event_exit(l->event, code);
}

/* STATUS= is one line of the notify message; a newline in it would start a new field. */
_printf_(2, 0) static int loop_notify_with_status(const char *prefix, const char *fmt, va_list ap)
{
	_cleanup_(freep) char *status = NULL;

	if (vasprintf(&status, fmt, ap) < 0)
		return -ENOMEM;
	for (char *s = status; *s; s++)
		if (*s == '\n')
			*s = ' ';
	return sd_notifyf(0, "%sSTATUS=%s", prefix, status);
}

int loop_notify_ready(struct loop *l, const char *status_fmt, ...)
{
	va_list ap;
	int r;

	if (!status_fmt)
		return sd_notify(0, "READY=1");
	va_start(ap, status_fmt);
	r = loop_notify_with_status("READY=1\n", status_fmt, ap);
	va_end(ap);
	return r;
}

int loop_notify_status(struct loop *l, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = loop_notify_with_status("", fmt, ap);
	va_end(ap);
	return r;
}

int loop_timer_arm(sd_event_source *s, uint64_t usec)
{
	int r = sd_event_source_set_time_relative(s, usec);

	return r < 0 ? r : sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}
