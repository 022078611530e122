/* Internals of kube_client.c and kube_config.c that their unit tests reach: the client-side
 * rate limiter (a token bucket, as client-go's flowcontrol), the Retry-After parser, the
 * limits, and the deep copy of a configuration that a client keeps. */
#pragma once

#include <stdint.h>

#include "cocoon/kube.h"

#define KUBE_USEC_PER_SEC         1000000ULL
#define KUBE_MAX_RUNNING          64U    /* requests in flight per client (not streams) */
#define KUBE_MAX_WAITING          10000U /* calls queued for the rate limit or a slot */
#define KUBE_RETRY_BASE_USEC      (250 * 1000ULL)
#define KUBE_RETRY_MAX_USEC       (16 * KUBE_USEC_PER_SEC)
#define KUBE_RETRY_AFTER_MAX_USEC (60 * KUBE_USEC_PER_SEC)
#define KUBE_CONNECT_TIMEOUT_USEC (10 * KUBE_USEC_PER_SEC)
#define KUBE_MAX_BODY             (64U * 1024 * 1024)  /* one response */
#define KUBE_LIST_MAX_BYTES       (256U * 1024 * 1024) /* every page of one list */
#define KUBE_LIST_MAX_PAGES       10000U
#define KUBE_TOKEN_MAX_BYTES      (64U * 1024)
#define KUBE_TOKEN_REREAD_USEC    (60 * KUBE_USEC_PER_SEC)
#define KUBE_CONFIG_MAX_BYTES     (4U * 1024 * 1024)

struct kube_bucket {
	double qps;
	double burst;
	double tokens;
	uint64_t last_usec;
};

/* A full bucket of burst tokens refilled at qps per second. */
void kube_bucket_init(struct kube_bucket *b, double qps, unsigned burst, uint64_t now_usec);
/* Take one token at now_usec: 0 when one was taken, else the microseconds until one will
 * be available (nothing is taken then). */
uint64_t kube_bucket_take(struct kube_bucket *b, uint64_t now_usec);

/* Retry-After (RFC 9110 §10.2.3) in delay-seconds form; 0 or -EINVAL (an HTTP-date, which
 * the apiserver never sends, or garbage: the caller falls back to its own backoff). */
int kube_retry_after_parse(const char *value, uint64_t *ret_usec);

int kube_config_copy(const struct kube_config *c, struct kube_config **ret);
