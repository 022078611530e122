/* Sparse files in cocoon's tar dialect (net-epoch-runtime.md §2.6): a sparse file travels
 * as its data segments packed back to back, described by the PAX record
 * COCOON.sparse.map = [{"o":offset,"l":length},...] (compact JSON, as Go's encoding/json
 * writes it) and COCOON.sparse.size = the logical size. This file owns the map's JSON, the
 * SEEK_DATA/SEEK_HOLE scan that finds the segments, and the writer that puts a packed
 * stream back at the logical offsets so the holes stay holes. */
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cocoon/errmsg.h"
#include "tar.h"

uint64_t tar_sparse_packed_size(const struct tar_sparse_segment *map, size_t n)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += map[i].length;
	return sum;
}

int tar_sparse_map_check(const struct tar_sparse_segment *map, size_t n, uint64_t logical_size,
			 char **ret_error)
{
	uint64_t end = 0;

	if (n > TAR_SPARSE_SEGMENTS_MAX)
		return errmsg_set(ret_error, -EINVAL, "more than %d segments",
				    TAR_SPARSE_SEGMENTS_MAX);
	if (logical_size > INT64_MAX)
		return errmsg_set(ret_error, -EINVAL, "logical size %" PRIu64 " too large",
				    logical_size);
	for (size_t i = 0; i < n; i++) {
		if (map[i].length == 0)
			return errmsg_set(ret_error, -EINVAL, "segment %zu: length 0", i);
		if (i > 0 && map[i].offset < end)
			return errmsg_set(
			    ret_error, -EINVAL,
			    "segment %zu: offset %" PRIu64
			    " overlaps or precedes the previous segment (ends at %" PRIu64 ")",
			    i, map[i].offset, end);
		if (map[i].offset > logical_size || map[i].length > logical_size - map[i].offset)
			return errmsg_set(ret_error, -EINVAL,
					    "segment %zu: %" PRIu64 "+%" PRIu64
					    " goes beyond the logical size %" PRIu64,
					    i, map[i].offset, map[i].length, logical_size);
		end = map[i].offset + map[i].length;
	}
	return 0;
}

int tar_sparse_map_format(const struct tar_sparse_segment *map, size_t n, char **ret)
{
	_cleanup_(buf_free) struct buf b = BUF_INIT(0);
	int k = buf_append(&b, "[", 1);

	for (size_t i = 0; k >= 0 && i < n; i++)
		k = buf_printf(&b, "%s{\"o\":%" PRIu64 ",\"l\":%" PRIu64 "}", i ? "," : "",
			       map[i].offset, map[i].length);
	if (k >= 0)
		k = buf_append(&b, "]", 1);
	if (k < 0)
		return k;
	*ret = buf_steal(&b, NULL);
	return 0;
}

/* One {"o":N,"l":N} object; nothing else is allowed in it. */
static int segment_from_json(json_t *o, size_t i, struct tar_sparse_segment *seg, char **ret_error)
{
	json_t *off = json_object_get(o, "o"), *len = json_object_get(o, "l");

	if (!json_is_object(o))
		return errmsg_set(ret_error, -EBADMSG, "segment %zu: not an object", i);
	if (!json_is_integer(off) || json_integer_value(off) < 0)
		return errmsg_set(ret_error, -EBADMSG,
				    "segment %zu: \"o\" missing or not a non-negative integer", i);
	if (!json_is_integer(len) || json_integer_value(len) < 0)
		return errmsg_set(ret_error, -EBADMSG,
				    "segment %zu: \"l\" missing or not a non-negative integer", i);
	if (json_object_size(o) != 2)
		return errmsg_set(ret_error, -EBADMSG, "segment %zu: unexpected keys", i);
	seg->offset = (uint64_t)json_integer_value(off);
	seg->length = (uint64_t)json_integer_value(len);
	return 0;
}

int tar_sparse_map_parse(const char *json, size_t len, uint64_t logical_size,
			 struct tar_sparse_segment **ret_map, size_t *ret_n, char **ret_error)
{
	_cleanup_(freep) struct tar_sparse_segment *map = NULL;
	json_error_t jerr;
	json_t *a;
	size_t n;
	int k = 0;

	a = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!a)
		return errmsg_set(ret_error, -EBADMSG, "invalid JSON at column %d: %s",
				    jerr.column, jerr.text);
	if (!json_is_array(a)) {
		json_decref(a);
		return errmsg_set(ret_error, -EBADMSG, "not a JSON array");
	}
	n = json_array_size(a);
	if (n > TAR_SPARSE_SEGMENTS_MAX) {
		json_decref(a);
		return errmsg_set(ret_error, -E2BIG, "more than %d segments",
				    TAR_SPARSE_SEGMENTS_MAX);
	}
	if (n > 0 && !(map = calloc(n, sizeof(*map)))) {
		json_decref(a);
		return -ENOMEM;
	}
	for (size_t i = 0; k >= 0 && i < n; i++)
		k = segment_from_json(json_array_get(a, i), i, &map[i], ret_error);
	json_decref(a);
	if (k < 0)
		return k;
	k = tar_sparse_map_check(map, n, logical_size, ret_error);
	if (k < 0)
		return -EBADMSG;
	*ret_map = TAKE_PTR(map);
	*ret_n = n;
	return 0;
}

int tar_sparse_scan(int fd, struct tar_sparse_segment **ret_map, size_t *ret_n, uint64_t *ret_size)
{
	_cleanup_(freep) struct tar_sparse_segment *map = NULL;
	size_t n = 0, alloc = 0;
	struct stat st;
	off_t pos = 0;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	while (pos < st.st_size) {
		off_t data = lseek(fd, pos, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			break; /* only a hole up to the end */
		if (data < 0)
			return -errno;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		/* The file may grow while we scan; the size we report is the one we started from.
		 */
		hole = MIN(hole, st.st_size);
		if (hole <= data)
			break;
		if (n == TAR_SPARSE_SEGMENTS_MAX)
			return -E2BIG;
		if (n == alloc) {
			size_t na = alloc ? alloc * 2 : 16;
			struct tar_sparse_segment *nm = reallocarray(map, na, sizeof(*nm));

			if (!nm)
				return -ENOMEM;
			map = nm;
			alloc = na;
		}
		map[n++] = (struct tar_sparse_segment){ (uint64_t)data, (uint64_t)(hole - data) };
		pos = hole;
	}
	*ret_map = TAKE_PTR(map);
	*ret_n = n;
	*ret_size = (uint64_t)st.st_size;
	return 0;
}

void tar_sparse_out_init(struct tar_sparse_out *o, int fd, const struct tar_sparse_segment *map,
			 size_t n)
{
	*o = (struct tar_sparse_out){ .fd = fd, .map = map, .n = n };
}

int tar_sparse_out_write(struct tar_sparse_out *o, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		const struct tar_sparse_segment *s;
		size_t chunk;
		ssize_t w;

		if (o->seg >= o->n)
			return -EFBIG;
		s = &o->map[o->seg];
		chunk = (size_t)MIN((uint64_t)len, s->length - o->in_seg);
		w = pwrite(o->fd, p, chunk, (off_t)(s->offset + o->in_seg));
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
		o->in_seg += (uint64_t)w;
		if (o->in_seg == s->length) {
			o->seg++;
			o->in_seg = 0;
		}
	}
	return 0;
}

int tar_sparse_out_finish(struct tar_sparse_out *o, uint64_t logical_size)
{
	if (o->seg < o->n)
		return -ENODATA;
	if (logical_size > INT64_MAX)
		return -EFBIG;
	if (ftruncate(o->fd, (off_t)logical_size) < 0)
		return -errno;
	return 0;
}
