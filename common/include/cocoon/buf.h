/* A growable byte buffer with a hard cap. Every buffer a peer can grow (HTTP bodies,
 * child output, IPC frames) is one of these, so "at the cap: refuse" lives in one place.
 * The data is always NUL-terminated (not counted in len) so text can be used directly. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "cocoon/macro.h"

struct buf {
	char *data;
	size_t len;
	size_t alloc;
	size_t cap; /* 0 = unlimited (only for data we produce ourselves) */
};

#define BUF_INIT(c) ((struct buf){ .cap = (c) })

/* Append n bytes. -E2BIG when the result would exceed the cap (buffer unchanged),
 * -ENOMEM on allocation failure. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_append_str(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) _printf_(2, 3);
/* Drop the first n bytes (consumed input). */
void buf_consume(struct buf *b, size_t n);
void buf_reset(struct buf *b);
/* Free the storage; the cap is kept so the buffer can be reused. */
void buf_free(struct buf *b);
/* Hand out the data (caller frees) and reset the buffer. Never NULL on success. */
char *buf_steal(struct buf *b, size_t *ret_len);
