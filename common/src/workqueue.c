/* Work queue for reconcilers (see workqueue.h; client-go's rate-limited workqueue rules).
 *
 * Every key the queue knows has one entry in a hash table, whatever its state: queued (in
 * the FIFO), active (handed to a worker), dirty (added again while active), waiting (in
 * the delay heap) or only remembering its failure count. An entry is freed as soon as it
 * holds none of these. max_keys caps the number of entries, so neither the FIFO, the heap
 * nor the failure counts can grow past it whatever a peer makes us add.
 *
 * Delays use one sd-event timer armed for the earliest due key (a binary min-heap orders
 * them), not one timer per key. Keys are handed out from a defer source, one per loop
 * iteration, so process() never runs re-entrantly from inside workqueue_add() and other
 * sources are not starved by a long queue. Keys come from API objects that users name, so
 * the table hashes with SipHash-2-4 under a per-queue random key (no collision flooding). */
#include <limits.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cocoon/log.h"
#include "cocoon/workqueue.h"

#define WQ_DEFAULT_BASE_USEC   (5ULL * 1000)
#define WQ_DEFAULT_MAX_USEC    (1000ULL * 1000 * 1000)
#define WQ_DEFAULT_MAX_KEYS    100000
#define WQ_INITIAL_BUCKETS     64
#define WQ_TIMER_ACCURACY_USEC 1000 /* sd-event's default of 250 ms would swamp short backoffs */
#define WQ_NOT_WAITING         SIZE_MAX

struct wq_entry {
	struct wq_entry *hnext;       /* hash chain */
	struct wq_entry *prev, *next; /* FIFO links while queued */
	uint64_t hash;
	uint64_t due;    /* CLOCK_MONOTONIC, while waiting */
	size_t heap_idx; /* WQ_NOT_WAITING or the index in q->heap */
	unsigned failures;
	bool queued, active, dirty;
	char key[];
};

struct workqueue {
	sd_event *event;
	sd_event_source *defer_src, *timer_src;
	workqueue_fn process;
	void *userdata;
	unsigned workers;
	uint64_t base_delay, max_delay;
	size_t max_keys;
	uint64_t sip_k0, sip_k1;

	struct wq_entry **buckets;
	size_t n_buckets, n_entries;
	struct wq_entry *head, *tail;
	size_t n_queued, n_active;
	struct wq_entry **heap;
	size_t n_heap, heap_alloc;
	bool shutdown;
};

static uint64_t rotl64(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

#define SIP_ROUND(v0, v1, v2, v3)                                                                  \
	do {                                                                                       \
		v0 += v1, v1 = rotl64(v1, 13), v1 ^= v0, v0 = rotl64(v0, 32);                      \
		v2 += v3, v3 = rotl64(v3, 16), v3 ^= v2;                                           \
		v0 += v3, v3 = rotl64(v3, 21), v3 ^= v0;                                           \
		v2 += v1, v1 = rotl64(v1, 17), v1 ^= v2, v2 = rotl64(v2, 32);                      \
	} while (0)

/* SipHash-2-4 (Aumasson and Bernstein, 2012): 8-byte little-endian words, two rounds per
 * word, the length in the top byte of the last word, four finalisation rounds. */
static uint64_t wq_siphash(const struct workqueue *q, const char *s, size_t len)
{
	uint64_t v0 = q->sip_k0 ^ 0x736f6d6570736575ULL, v1 = q->sip_k1 ^ 0x646f72616e646f6dULL;
	uint64_t v2 = q->sip_k0 ^ 0x6c7967656e657261ULL, v3 = q->sip_k1 ^ 0x7465646279746573ULL;
	const unsigned char *p = (const unsigned char *)s;
	size_t left = len;
	uint64_t m;

	for (; left >= 8; p += 8, left -= 8) {
		m = 0;
		for (int i = 7; i >= 0; i--)
			m = (m << 8) | p[i];
		v3 ^= m;
		SIP_ROUND(v0, v1, v2, v3);
		SIP_ROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	m = (uint64_t)(len & 0xff) << 56;
	for (size_t i = 0; i < left; i++)
		m |= (uint64_t)p[i] << (8 * i);
	v3 ^= m;
	SIP_ROUND(v0, v1, v2, v3);
	SIP_ROUND(v0, v1, v2, v3);
	v0 ^= m;
	v2 ^= 0xff;
	for (int i = 0; i < 4; i++)
		SIP_ROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

static void wq_seed(struct workqueue *q)
{
	uint64_t k[2];
	struct timespec ts;

	if (getrandom(k, sizeof k, GRND_NONBLOCK) == (ssize_t)sizeof k) {
		q->sip_k0 = k[0], q->sip_k1 = k[1];
		return;
	}
	/* Early boot without entropy: still differs per process and per queue. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	q->sip_k0 = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid();
	q->sip_k1 = (uint64_t)(uintptr_t)q ^ 0x9e3779b97f4a7c15ULL;
}

/* The current time, not sd_event_now(): that is the start of the loop iteration, and a
 * delay requested late in a slow iteration would otherwise come out short. */
static uint64_t wq_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static struct wq_entry *wq_find(const struct workqueue *q, const char *key)
{
	size_t len = strlen(key);
	uint64_t h = wq_siphash(q, key, len);

	for (struct wq_entry *e = q->buckets[h & (q->n_buckets - 1)]; e; e = e->hnext)
		if (e->hash == h && streq(e->key, key))
			return e;
	return NULL;
}

static int wq_grow(struct workqueue *q)
{
	size_t n = q->n_buckets * 2;
	struct wq_entry **b = calloc(n, sizeof *b);

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < q->n_buckets; i++)
		for (struct wq_entry *e = q->buckets[i], *next; e; e = next) {
			next = e->hnext;
			e->hnext = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	free(q->buckets);
	q->buckets = b;
	q->n_buckets = n;
	return 0;
}

/* The entry for key, created idle if absent; -ENOBUFS at the key cap. */
static int wq_get(struct workqueue *q, const char *key, struct wq_entry **ret)
{
	struct wq_entry *e;
	size_t len, slot;

	if (isempty(key))
		return -EINVAL;
	len = strnlen(key, WORKQUEUE_KEY_MAX + 1);
	if (len > WORKQUEUE_KEY_MAX)
		return log_debug_errno(ENAMETOOLONG, "Work queue key longer than %d bytes",
				       WORKQUEUE_KEY_MAX);
	e = wq_find(q, key);
	if (e) {
		*ret = e;
		return 0;
	}
	if (q->n_entries >= q->max_keys)
		return log_debug_errno(ENOBUFS, "Work queue full (%zu keys), refusing %s",
				       q->max_keys, key);
	if (q->n_entries >= q->n_buckets && wq_grow(q) < 0)
		return -ENOMEM;
	e = calloc(1, sizeof *e + len + 1);
	if (!e)
		return -ENOMEM;
	memcpy(e->key, key, len + 1);
	e->hash = wq_siphash(q, key, len);
	e->heap_idx = WQ_NOT_WAITING;
	slot = e->hash & (q->n_buckets - 1);
	e->hnext = q->buckets[slot];
	q->buckets[slot] = e;
	q->n_entries++;
	*ret = e;
	return 0;
}

/* Frees the entry once it holds no state (dirty implies active). */
static void wq_release(struct workqueue *q, struct wq_entry *e)
{
	struct wq_entry **p;

	if (e->queued || e->active || e->heap_idx != WQ_NOT_WAITING || e->failures > 0)
		return;
	for (p = &q->buckets[e->hash & (q->n_buckets - 1)]; *p != e; p = &(*p)->hnext)
		;
	*p = e->hnext;
	q->n_entries--;
	free(e);
}

/* Hands out keys while there is work and a free worker. */
static void wq_kick(struct workqueue *q)
{
	bool on = !q->shutdown && q->head && q->n_active < q->workers;
	int r = sd_event_source_set_enabled(q->defer_src, on ? SD_EVENT_ON : SD_EVENT_OFF);

	if (r < 0)
		log_debug_errno(r, "Cannot toggle the work queue dispatcher, ignoring: %m");
}

static void wq_enqueue(struct workqueue *q, struct wq_entry *e)
{
	e->queued = true;
	e->next = NULL;
	e->prev = q->tail;
	if (q->tail)
		q->tail->next = e;
	else
		q->head = e;
	q->tail = e;
	q->n_queued++;
	wq_kick(q);
}

static struct wq_entry *wq_dequeue(struct workqueue *q)
{
	struct wq_entry *e = q->head;

	q->head = e->next;
	if (q->head)
		q->head->prev = NULL;
	else
		q->tail = NULL;
	e->next = e->prev = NULL;
	e->queued = false;
	q->n_queued--;
	return e;
}

/* client-go's Add: queued → nothing; active → dirty (queued again by done). */
static void wq_add_entry(struct workqueue *q, struct wq_entry *e)
{
	if (e->queued)
		return;
	if (e->active) {
		e->dirty = true;
		return;
	}
	wq_enqueue(q, e);
}

/* ---- delay heap ---- */

static void wq_heap_set(struct workqueue *q, size_t i, struct wq_entry *e)
{
	q->heap[i] = e;
	e->heap_idx = i;
}

static void wq_heap_up(struct workqueue *q, size_t i)
{
	struct wq_entry *e = q->heap[i];

	while (i > 0 && q->heap[(i - 1) / 2]->due > e->due) {
		wq_heap_set(q, i, q->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	wq_heap_set(q, i, e);
}

static void wq_heap_down(struct workqueue *q, size_t i)
{
	struct wq_entry *e = q->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= q->n_heap)
			break;
		if (c + 1 < q->n_heap && q->heap[c + 1]->due < q->heap[c]->due)
			c++;
		if (q->heap[c]->due >= e->due)
			break;
		wq_heap_set(q, i, q->heap[c]);
		i = c;
	}
	wq_heap_set(q, i, e);
}

static void wq_heap_remove(struct workqueue *q, struct wq_entry *e)
{
	size_t i = e->heap_idx;
	struct wq_entry *last = q->heap[--q->n_heap];

	e->heap_idx = WQ_NOT_WAITING;
	if (last == e)
		return;
	wq_heap_set(q, i, last);
	wq_heap_up(q, i);
	wq_heap_down(q, last->heap_idx);
}

static void wq_arm_timer(struct workqueue *q)
{
	int r = 0;

	if (q->shutdown || q->n_heap == 0)
		r = sd_event_source_set_enabled(q->timer_src, SD_EVENT_OFF);
	else {
		r = sd_event_source_set_time(q->timer_src, q->heap[0]->due);
		if (r >= 0)
			r = sd_event_source_set_enabled(q->timer_src, SD_EVENT_ONESHOT);
	}
	if (r < 0)
		log_debug_errno(r, "Cannot arm the work queue delay timer, ignoring: %m");
}

/* Waits until now + delay; a key already waiting keeps the earlier of the two times. */
static int wq_wait(struct workqueue *q, struct wq_entry *e, uint64_t delay)
{
	uint64_t now = wq_now(), due;

	due = delay > UINT64_MAX - now ? UINT64_MAX : now + delay;
	if (e->heap_idx != WQ_NOT_WAITING) {
		if (e->due <= due)
			return 0;
		e->due = due;
		wq_heap_up(q, e->heap_idx);
	} else {
		if (q->n_heap == q->heap_alloc) {
			size_t n = q->heap_alloc ? q->heap_alloc * 2 : 16;
			struct wq_entry **h = reallocarray(q->heap, n, sizeof *h);

			if (!h)
				return -ENOMEM;
			q->heap = h;
			q->heap_alloc = n;
		}
		e->due = due;
		wq_heap_set(q, q->n_heap++, e);
		wq_heap_up(q, e->heap_idx);
	}
	if (q->heap[0] == e)
		wq_arm_timer(q);
	return 0;
}

static int wq_on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct workqueue *q = userdata;
	uint64_t now = wq_now();

	while (q->n_heap > 0 && q->heap[0]->due <= now) {
		struct wq_entry *e = q->heap[0];

		wq_heap_remove(q, e);
		wq_add_entry(q, e);
	}
	wq_arm_timer(q);
	return 0;
}

static int wq_on_defer(sd_event_source *s, void *userdata)
{
	struct workqueue *q = userdata;
	struct wq_entry *e;

	if (q->shutdown || !q->head || q->n_active >= q->workers) {
		wq_kick(q);
		return 0;
	}
	e = wq_dequeue(q);
	e->active = true;
	q->n_active++;
	wq_kick(q);
	/* Last use of q here: process() may call workqueue_done() or even free the queue. */
	q->process(q, e->key, q->userdata);
	return 0;
}

int workqueue_new(sd_event *e, const struct workqueue_options *o, workqueue_fn process,
		  void *userdata, struct workqueue **ret)
{
	_cleanup_(workqueue_freep) struct workqueue *q = NULL;
	int r;

	if (!e || !process || !ret)
		return -EINVAL;
	q = calloc(1, sizeof *q);
	if (!q)
		return -ENOMEM;
	q->event = sd_event_ref(e);
	q->process = process;
	q->userdata = userdata;
	q->workers = o && o->workers ? o->workers : 1;
	q->base_delay = o && o->base_delay_usec ? o->base_delay_usec : WQ_DEFAULT_BASE_USEC;
	q->max_delay = o && o->max_delay_usec ? o->max_delay_usec : WQ_DEFAULT_MAX_USEC;
	q->max_keys = o && o->max_keys ? o->max_keys : WQ_DEFAULT_MAX_KEYS;
	wq_seed(q);
	q->n_buckets = WQ_INITIAL_BUCKETS;
	q->buckets = calloc(q->n_buckets, sizeof *q->buckets);
	if (!q->buckets)
		return -ENOMEM;
	r = sd_event_add_defer(e, &q->defer_src, wq_on_defer, q);
	if (r >= 0)
		r = sd_event_source_set_enabled(q->defer_src, SD_EVENT_OFF);
	if (r >= 0)
		r = sd_event_add_time(e, &q->timer_src, CLOCK_MONOTONIC, 0, WQ_TIMER_ACCURACY_USEC,
				      wq_on_timer, q);
	if (r >= 0)
		r = sd_event_source_set_enabled(q->timer_src, SD_EVENT_OFF);
	if (r < 0)
		return log_debug_errno(r, "Cannot create the work queue's event sources: %m");
	*ret = TAKE_PTR(q);
	return 0;
}

void workqueue_free(struct workqueue *q)
{
	if (!q)
		return;
	sd_event_source_disable_unref(q->defer_src);
	sd_event_source_disable_unref(q->timer_src);
	for (size_t i = 0; q->buckets && i < q->n_buckets; i++)
		for (struct wq_entry *e = q->buckets[i], *next; e; e = next) {
			next = e->hnext;
			free(e);
		}
	free(q->buckets);
	free(q->heap);
	sd_event_unref(q->event);
	free(q);
}

int workqueue_add(struct workqueue *q, const char *key)
{
	struct wq_entry *e;
	int r;

	if (q->shutdown)
		return -ESHUTDOWN;
	r = wq_get(q, key, &e);
	if (r < 0)
		return r;
	wq_add_entry(q, e);
	return 0;
}

int workqueue_add_after(struct workqueue *q, const char *key, uint64_t delay_usec)
{
	struct wq_entry *e;
	int r;

	if (delay_usec == 0)
		return workqueue_add(q, key);
	if (q->shutdown)
		return -ESHUTDOWN;
	r = wq_get(q, key, &e);
	if (r < 0)
		return r;
	r = wq_wait(q, e, delay_usec);
	if (r < 0)
		wq_release(q, e);
	return r;
}

/* base · 2^failures, capped; computed without overflowing. */
static uint64_t wq_backoff(const struct workqueue *q, unsigned failures)
{
	if (failures >= 63 || q->base_delay > (q->max_delay >> failures))
		return q->max_delay;
	return q->base_delay << failures;
}

int64_t workqueue_retry(struct workqueue *q, const char *key)
{
	struct wq_entry *e;
	uint64_t delay;
	int r;

	if (q->shutdown)
		return -ESHUTDOWN;
	r = wq_get(q, key, &e);
	if (r < 0)
		return r;
	delay = wq_backoff(q, e->failures);
	r = wq_wait(q, e, delay);
	if (r < 0) {
		wq_release(q, e);
		return r;
	}
	if (e->failures < UINT_MAX)
		e->failures++;
	return (int64_t)MIN(delay, (uint64_t)INT64_MAX);
}

void workqueue_forget(struct workqueue *q, const char *key)
{
	struct wq_entry *e = isempty(key) ? NULL : wq_find(q, key);

	if (!e)
		return;
	e->failures = 0;
	wq_release(q, e);
}

unsigned workqueue_failures(const struct workqueue *q, const char *key)
{
	const struct wq_entry *e = isempty(key) ? NULL : wq_find(q, key);

	return e ? e->failures : 0;
}

void workqueue_done(struct workqueue *q, const char *key)
{
	struct wq_entry *e = isempty(key) ? NULL : wq_find(q, key);

	if (!e || !e->active) {
		log_debug("Work queue: done for %s, which is not in progress, ignoring",
			  key ? key : "(null)");
		return;
	}
	e->active = false;
	q->n_active--;
	if (e->dirty) {
		e->dirty = false;
		wq_enqueue(q, e);
	}
	wq_release(q, e);
	wq_kick(q);
}

size_t workqueue_len(const struct workqueue *q)
{
	return q->n_queued;
}

size_t workqueue_active(const struct workqueue *q)
{
	return q->n_active;
}

void workqueue_shutdown(struct workqueue *q)
{
	q->shutdown = true;
	wq_kick(q);
	wq_arm_timer(q);
}
