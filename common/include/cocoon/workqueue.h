/* Work queue for reconcilers (client-go's rate-limited workqueue semantics):
 * - a key is queued at most once (adding a queued key is a no-op);
 * - a key is never processed by two workers at once: adding a key that is in progress
 *   marks it dirty, and it is queued again when its worker calls workqueue_done();
 * - workqueue_retry() requeues with per-key exponential backoff (base · 2^failures, capped),
 *   workqueue_forget() resets a key's failure count, workqueue_add_after() delays;
 * - concurrency: at most `workers` keys in progress; the queue calls process() on the loop
 *   for each key it hands out. The process callback starts work and calls workqueue_done()
 *   when finished (now or later, from another callback).
 * - a hard cap on queued keys (beyond it add returns -ENOBUFS).
 * The cap counts every key the queue remembers (queued, in progress, delayed, or holding a
 * failure count); keys are 1..WORKQUEUE_KEY_MAX bytes (else -EINVAL / -ENAMETOOLONG); the
 * key passed to process() stays valid until workqueue_done() for it; after
 * workqueue_shutdown() add, add_after and retry return -ESHUTDOWN. */
#pragma once

#include <stdint.h>
#include <systemd/sd-event.h>

#include "cocoon/macro.h"

#define WORKQUEUE_KEY_MAX 1024

struct workqueue;
typedef void (*workqueue_fn)(struct workqueue *q, const char *key, void *userdata);

struct workqueue_options {
	unsigned workers;        /* 0: 1 */
	uint64_t base_delay_usec; /* 0: 5 ms */
	uint64_t max_delay_usec;  /* 0: 1000 s */
	size_t max_keys;          /* 0: 100000 */
};

int workqueue_new(sd_event *e, const struct workqueue_options *o, workqueue_fn process,
		  void *userdata, struct workqueue **ret);
void workqueue_free(struct workqueue *q);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct workqueue *, workqueue_free);
int workqueue_add(struct workqueue *q, const char *key);
int workqueue_add_after(struct workqueue *q, const char *key, uint64_t delay_usec);
/* Requeue after this key's backoff; returns the delay used. */
int64_t workqueue_retry(struct workqueue *q, const char *key);
void workqueue_forget(struct workqueue *q, const char *key);
unsigned workqueue_failures(const struct workqueue *q, const char *key);
void workqueue_done(struct workqueue *q, const char *key);
size_t workqueue_len(const struct workqueue *q);   /* queued, not in progress */
size_t workqueue_active(const struct workqueue *q); /* in progress */
/* Stop handing out keys (drain): in-progress keys may still finish. */
void workqueue_shutdown(struct workqueue *q);
