/* webhookd — the cocoon admission webhook.
 *
 * Table of contents:
 *   webhookd.c   main(): configuration → servers → READY → loop
 *   config.c     the environment table (--help prints it)
 *   server.c     the HTTPS admission listener (socket activation or LISTEN_ADDR), TLS key
 *                pair rotation, /healthz and /readyz, the plain-HTTP /metrics listener,
 *                and the bounded drain on SIGTERM
 *
 * This build is the skeleton of the daemon: it serves health, readiness and metrics over
 * the same TLS and systemd plumbing the admission handlers will use. It has no admission
 * handlers yet, so /readyz answers 503 and says so. */
#pragma once

#include <stdint.h>

#include "cocoon/conf.h"
#include "cocoon/loop.h"

#define WEBHOOKD_SUMMARY                                                                           \
	"webhookd: the cocoon admission webhook (HTTPS). This build serves /healthz, /readyz\n"    \
	"and /metrics; the admission handlers (/mutate, /validate, …) are not implemented yet."

/* How long SIGTERM waits for requests in flight (the original's 15 s shutdown timeout). */
#define WEBHOOKD_DRAIN_USEC (15 * 1000000ULL)

struct webhookd_config {
	int log_level;
	const char *tls_cert;
	const char *tls_key;
	const char *listen_addr;
	const char *metrics_addr;
};

/* config.c */
extern struct webhookd_config webhookd_config;
extern const struct conf_var webhookd_conf_vars[];
extern const size_t webhookd_conf_vars_len;

/* server.c */
struct webhookd;
int webhookd_new(struct loop *loop, const struct webhookd_config *cfg, struct webhookd **ret);
void webhookd_free(struct webhookd *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct webhookd *, webhookd_free);
/* "admission on …, metrics on …" for the READY status line. */
const char *webhookd_describe(const struct webhookd *w);
