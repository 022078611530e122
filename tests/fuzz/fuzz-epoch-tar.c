/* Fuzz the epoch tar reader: whatever the bytes and however they are split into chunks, it
 * must not crash or leak, must deliver each entry's data contiguously and completely, must
 * only hand out safe names and consistent sparse maps, and must explain every failure.
 * Every entry it accepts must survive a trip through the writer unchanged (the writer can
 * express whatever the reader accepts, and the reader reads it back identically).
 *
 * Input: the first byte picks the chunk size (0: everything at once), the rest is the
 * archive. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../epoch-client/tar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct state {
	uint64_t delivered;
	bool open;
};

static int reparsed_entry(const struct tar_entry *e, void *userdata)
{
	const struct tar_entry *o = userdata;
	bool link = o->type == TAR_TYPE_HARDLINK || o->type == TAR_TYPE_SYMLINK;

	if (!streq(e->name, o->name) || e->type != o->type || e->mode != o->mode ||
	    e->mtime != o->mtime || e->size != o->size || e->uid != o->uid || e->gid != o->gid ||
	    !streq_ptr(e->uname, o->uname) || !streq_ptr(e->gname, o->gname) ||
	    (link && !streq_ptr(e->linkname, o->linkname)) || e->sparse != o->sparse ||
	    e->sparse_size != o->sparse_size || e->n_sparse != o->n_sparse ||
	    (o->n_sparse &&
	     memcmp(e->sparse_map, o->sparse_map, o->n_sparse * sizeof(*o->sparse_map)) != 0))
		abort();
	return -ECANCELED; /* seen it; no need to read on */
}

/* Write e's header with the writer and read it back. */
static void check_round_trip(const struct tar_entry *e)
{
	struct tar_entry copy = *e;
	const struct tar_reader_ops ops = { .on_entry = reparsed_entry };
	struct buf out = BUF_INIT(0);
	struct tar_reader *r = NULL;
	char *err = NULL;
	int k;

	copy.pax = NULL; /* the standard records are re-derived from the fields */
	copy.n_pax = 0;
	k = tar_header_format(&copy, &out, &err);
	free(err);
	/* A near-cap sparse map plus a long path may no longer fit one PAX header. */
	if (k == -E2BIG) {
		buf_free(&out);
		return;
	}
	if (k < 0 || tar_reader_new(&ops, (void *)e, &r) < 0)
		abort();
	if (tar_reader_feed(r, out.data, out.len) != -ECANCELED)
		abort();
	tar_reader_free(r);
	buf_free(&out);
}

static int on_entry(const struct tar_entry *e, void *userdata)
{
	struct state *s = userdata;

	if (s->open || !e->name || !*e->name || e->name[0] == '/' || strstr(e->name, "/../") ||
	    strncmp(e->name, "../", 3) == 0 || streq(e->name, ".."))
		abort();
	if (e->sparse && tar_sparse_packed_size(e->sparse_map, e->n_sparse) != e->size)
		abort();
	s->open = true;
	s->delivered = 0;
	check_round_trip(e);
	return 0;
}

static int on_data(const struct tar_entry *e, uint64_t offset, const void *data, size_t len,
		   void *userdata)
{
	struct state *s = userdata;

	if (!s->open || offset != s->delivered || len == 0 || offset + len > e->size)
		abort();
	s->delivered += len;
	return 0;
}

static int on_entry_end(const struct tar_entry *e, void *userdata)
{
	struct state *s = userdata;

	if (!s->open || s->delivered != e->size)
		abort();
	s->open = false;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct tar_reader_ops ops = { on_entry, on_data, on_entry_end };
	struct state s = { 0 };
	struct tar_reader *r = NULL;
	size_t chunk;
	int k = 0;

	if (size < 1)
		return 0;
	chunk = data[0] ? data[0] : SIZE_MAX;
	data++, size--;
	if (tar_reader_new(&ops, &s, &r) < 0)
		abort();
	for (size_t off = 0; off < size && k == 0; off += chunk)
		k = tar_reader_feed(r, data + off, MIN(chunk, size - off));
	if (k >= 0)
		k = tar_reader_finish(r);
	if (k < 0 && !tar_reader_error(r))
		abort();
	if (k == 0 && s.open)
		abort();
	tar_reader_free(r);
	return 0;
}
