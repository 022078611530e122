/* Watch one file path for changes: TLS certificates that rotate (webhook), the dnsmasq
 * lease file (netd). The parent directory is watched, not the file, so every way a file
 * gets replaced is seen: in-place writes, atomic renames, delete and re-create, and the
 * Kubernetes secret/configmap volume swap (a file that is a symlink into `..data` changes
 * when `..data` is renamed to point at a new directory).
 *
 * Events are debounced: the first one starts a window (default 100 ms) and one callback at
 * its end reports whether the path now exists (following symlinks, so a dangling link is
 * "gone"). If the directory itself is removed the callback reports the file gone and the
 * watch falls silent. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "cocoon/macro.h"

#define WATCH_DEBOUNCE_DEFAULT_USEC (100ULL * 1000)

struct watch;

/* May call watch_free(w). */
typedef void (*watch_fn)(struct watch *w, bool exists, void *userdata);

/* The parent directory must exist (-ENOENT otherwise); the file need not. */
int watch_new(sd_event *e, const char *path, watch_fn cb, void *userdata, struct watch **ret);
void watch_free(struct watch *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct watch *, watch_free);

void watch_set_debounce(struct watch *w, uint64_t usec);
const char *watch_path(struct watch *w);
