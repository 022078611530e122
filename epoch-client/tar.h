/* Tar streams as cocoon speaks them (net-epoch-runtime.md §2.6): `cocoon snapshot export -o -`
 * produces one, `cocoon snapshot import` consumes one.
 *
 * - The READER is push-driven: feed it chunks of any size (a child's stdout, a file, a
 *   network body) and it calls back once per entry with the parsed header, then with the
 *   entry's data in pieces, then at the entry's end. It understands ustar, POSIX PAX ('x'
 *   and 'g' extended headers: path, linkpath, size, mtime, uid, gid, uname, gname, and the
 *   cocoon records COCOON.sparse.map / COCOON.sparse.size) and GNU long names ('L', 'K').
 *   It is strict: header checksum, numeric fields (octal or base-256), sizes, names (no
 *   absolute paths, no ".." component), PAX record syntax, and caps on PAX header size,
 *   record count and name length. An error carries a message naming the entry and the
 *   field (tar_reader_error()).
 * - The WRITER emits headers (a PAX 'x' header only when needed: long names, sizes or
 *   times that ustar cannot hold, sparse records, extra records), data, padding and the
 *   end-of-archive marker into a sink callback.
 * - Sparse helpers: a sparse file travels as its data segments packed back to back, plus
 *   the map [{"o":offset,"l":length}, ...] and the logical size in PAX records.
 *   tar_sparse_scan() finds the segments of a file (SEEK_DATA/SEEK_HOLE), tar_sparse_out_*
 *   writes a packed stream back at the logical offsets, leaving holes.
 *
 * Errors: -EBADMSG malformed input, -E2BIG a cap was hit, -ENODATA input ended early
 * (truncated archive), -EINVAL bad arguments, or whatever a callback/sink returned. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cocoon/buf.h"
#include "cocoon/macro.h"

#define TAR_BLOCK_SIZE 512
/* Longest entry name or link target accepted (PAX path, GNU 'L'). */
#define TAR_NAME_MAX 4096
/* Data of one PAX extended header (all its records together), and records per header. */
#define TAR_PAX_HEADER_MAX  (1024 * 1024)
#define TAR_PAX_RECORDS_MAX 1024
/* Segments in one sparse map; the map JSON must also fit TAR_PAX_HEADER_MAX. */
#define TAR_SPARSE_SEGMENTS_MAX 65536

#define TAR_PAX_SPARSE_MAP  "COCOON.sparse.map"
#define TAR_PAX_SPARSE_SIZE "COCOON.sparse.size"

/* ustar typeflags delivered to callers ('x', 'g', 'L', 'K' are consumed by the reader). A
 * '\0' typeflag and '7' (contiguous) are reported as TAR_TYPE_REGULAR. */
enum tar_type {
	TAR_TYPE_REGULAR = '0',
	TAR_TYPE_HARDLINK = '1',
	TAR_TYPE_SYMLINK = '2',
	TAR_TYPE_CHAR = '3',
	TAR_TYPE_BLOCK = '4',
	TAR_TYPE_DIRECTORY = '5',
	TAR_TYPE_FIFO = '6',
};

struct tar_sparse_segment {
	uint64_t offset; /* in the logical file */
	uint64_t length; /* > 0 */
};

struct tar_pax_record {
	char *key;
	char *value; /* NUL-terminated; value_len excludes the NUL */
	size_t value_len;
};

struct tar_entry {
	char *name;
	char *linkname; /* hard/symbolic links, else NULL (reader) / ignored (writer) */
	enum tar_type type;
	uint32_t mode; /* permission bits (07777) */
	int64_t mtime; /* seconds since the epoch (PAX fractions are dropped) */
	uint64_t uid, gid;
	char *uname, *gname; /* NULL when empty */
	/* Bytes of data that follow the header in the archive. For a sparse entry this is the
	 * packed size (the sum of the segment lengths), not the logical size. */
	uint64_t size;
	/* COCOON.sparse.* present: segments sorted by offset, non-overlapping, within
	 * sparse_size, lengths summing to size. */
	bool sparse;
	struct tar_sparse_segment *sparse_map;
	size_t n_sparse;
	uint64_t sparse_size; /* logical size of the file */
	/* Reader: every PAX record in effect for this entry ('g' then 'x', later ones
	 * override, the standard keys included), in archive order. Writer: extra records to
	 * emit (keys other than those derived from the fields above). */
	struct tar_pax_record *pax;
	size_t n_pax;
};

/* The value of a PAX record of e, or NULL. */
const char *tar_entry_pax_get(const struct tar_entry *e, const char *key);

/* ---- reader ---- */

struct tar_reader;

struct tar_reader_ops {
	/* A header was parsed; e stays valid until on_entry_end returns. */
	int (*on_entry)(const struct tar_entry *e, void *userdata);
	/* The next len bytes of e's data, at offset (bytes of e's data before this piece). */
	int (*on_data)(const struct tar_entry *e, uint64_t offset, const void *data, size_t len,
		       void *userdata);
	/* All e->size bytes were delivered. */
	int (*on_entry_end)(const struct tar_entry *e, void *userdata);
};
/* Every callback may be NULL. A callback returning < 0 stops the reader: the value is
 * returned by tar_reader_feed() and the reader refuses further input. */

int tar_reader_new(const struct tar_reader_ops *ops, void *userdata, struct tar_reader **ret);
void tar_reader_free(struct tar_reader *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct tar_reader *, tar_reader_free);

/* Consume len bytes. Returns 0 (more input wanted), 1 once the end-of-archive marker (two
 * zero blocks) was seen (later input, e.g. the zero padding to a 10 KiB record, is
 * ignored), or < 0 on an error (also on every later call). */
int tar_reader_feed(struct tar_reader *r, const void *data, size_t len);
/* The input ended: 0 when the end-of-archive marker was seen, else -ENODATA ("truncated
 * ...", naming the entry being read). */
int tar_reader_finish(struct tar_reader *r);
/* The message of the first error ("entry 2 \"cow.raw\": size: invalid octal number"), or
 * NULL. Callback errors get a generic message unless tar_reader_set_error() was used. */
const char *tar_reader_error(const struct tar_reader *r);
/* Lets a callback explain why it failed; the reader prefixes the entry. */
void tar_reader_set_error(struct tar_reader *r, const char *fmt, ...) _printf_(2, 3);
/* Entries whose header has been parsed so far (the index of the current one + 1). */
uint64_t tar_reader_entries(const struct tar_reader *r);
/* Archive bytes consumed so far. */
uint64_t tar_reader_offset(const struct tar_reader *r);

/* ---- writer ---- */

/* Receives every byte of the archive in order; returns 0 or -errno. */
typedef int (*tar_sink_fn)(const void *data, size_t len, void *userdata);
/* Ready-made sinks: userdata is an int* (write(2) in full, retrying EINTR/EAGAIN with
 * poll) or a struct buf* (appended, so its cap applies). */
int tar_sink_fd(const void *data, size_t len, void *userdata);
int tar_sink_buf(const void *data, size_t len, void *userdata);

/* The header blocks for e (PAX 'x' header when needed, then the ustar header), appended
 * to out. For callers that write the data themselves: follow with e->size bytes and
 * tar_padding(e->size) zero bytes. -EINVAL with *ret_error (may be NULL) set for an entry
 * that cannot be written (empty or ".." name, inconsistent sparse map, ...). */
int tar_header_format(const struct tar_entry *e, struct buf *out, char **ret_error);
/* Zero bytes after size bytes of data up to the next block boundary. */
size_t tar_padding(uint64_t size);

struct tar_writer;

int tar_writer_new(tar_sink_fn sink, void *userdata, struct tar_writer **ret);
void tar_writer_free(struct tar_writer *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct tar_writer *, tar_writer_free);

/* Start an entry (e is not kept). Exactly e->size bytes of data must follow. */
int tar_writer_begin(struct tar_writer *w, const struct tar_entry *e);
/* -EFBIG when more than the declared size is written (nothing of it is written). */
int tar_writer_write(struct tar_writer *w, const void *data, size_t len);
/* Pad the entry; -ENODATA if fewer than the declared bytes were written. */
int tar_writer_end(struct tar_writer *w);
/* Whole entry from memory (e.g. snapshot.json): a regular file of len bytes. */
int tar_writer_add_data(struct tar_writer *w, const char *name, uint32_t mode, int64_t mtime,
			const void *data, size_t len);
/* Whole entry from a regular file: name, mode and mtime as given, size from fstat. With
 * sparse, holes are detected (tar_sparse_scan) and, if there are any, the entry carries
 * the packed segments and the COCOON.sparse.* records. fd is read with pread. */
int tar_writer_add_fd(struct tar_writer *w, const char *name, uint32_t mode, int64_t mtime, int fd,
		      bool sparse);
/* The end-of-archive marker (two zero blocks). No entry may be open. */
int tar_writer_finish(struct tar_writer *w);
/* Bytes handed to the sink so far. */
uint64_t tar_writer_offset(const struct tar_writer *w);

/* ---- sparse files ---- */

/* The segments holding data in fd (SEEK_DATA/SEEK_HOLE; a file system without hole
 * support yields one segment for the whole file) and its size. ret_map is NULL when
 * *ret_n is 0. -E2BIG beyond TAR_SPARSE_SEGMENTS_MAX. */
int tar_sparse_scan(int fd, struct tar_sparse_segment **ret_map, size_t *ret_n, uint64_t *ret_size);
/* The compact JSON of the COCOON.sparse.map record: [{"o":0,"l":4096},...] ("[]" for none). */
int tar_sparse_map_format(const struct tar_sparse_segment *map, size_t n, char **ret);
/* Parse and check that JSON against the logical size: sorted, non-overlapping, lengths
 * > 0, within size, at most TAR_SPARSE_SEGMENTS_MAX. -EBADMSG with *ret_error (may be
 * NULL) naming the segment and the problem. */
int tar_sparse_map_parse(const char *json, size_t len, uint64_t logical_size,
			 struct tar_sparse_segment **ret_map, size_t *ret_n, char **ret_error);
/* The checks of tar_sparse_map_parse() on a map already in memory (the writer uses it).
 * -EINVAL with *ret_error (may be NULL). */
int tar_sparse_map_check(const struct tar_sparse_segment *map, size_t n, uint64_t logical_size,
			 char **ret_error);
/* Sum of the lengths: the packed size. */
uint64_t tar_sparse_packed_size(const struct tar_sparse_segment *map, size_t n);

/* Writes a packed stream, fed sequentially in chunks of any size, to fd at the logical
 * offsets of the map (pwrite), so the gaps stay holes. map is borrowed. */
struct tar_sparse_out {
	int fd;
	const struct tar_sparse_segment *map;
	size_t n;
	size_t seg;      /* current segment */
	uint64_t in_seg; /* bytes of it written */
};
void tar_sparse_out_init(struct tar_sparse_out *o, int fd, const struct tar_sparse_segment *map,
			 size_t n);
/* -EFBIG when more data arrives than the map holds. */
int tar_sparse_out_write(struct tar_sparse_out *o, const void *data, size_t len);
/* Every segment complete (else -ENODATA), then ftruncate to the logical size so trailing
 * holes exist. */
int tar_sparse_out_finish(struct tar_sparse_out *o, uint64_t logical_size);
