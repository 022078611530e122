/* epoch-client/tar: what the writer emits the reader gives back (names, modes, times, data,
 * PAX records, long names, sizes beyond 8 GiB, sparse maps), whatever the chunking of the
 * input; every class of malformed or truncated archive is refused with a message naming the
 * entry and the field; sparse files keep their holes through scan → archive → extract. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../../epoch-client/tar.h"

#define MAX_ENTRIES 16

static const char zeros[2048];

/* A PAX record with its self-counting length, written independently of the code under test. */
static void add_rec(struct buf *b, const char *key, const char *value, size_t vlen)
{
	size_t base = strlen(key) + vlen + 3, len = base + 1;

	while (snprintf(NULL, 0, "%zu", len) + base != len)
		len = (size_t)snprintf(NULL, 0, "%zu", len) + base;
	assert_int_equal(buf_printf(b, "%zu %s=", len, key), 0);
	assert_int_equal(buf_append(b, value, vlen), 0);
	assert_int_equal(buf_append(b, "\n", 1), 0);
}

struct seen {
	char *name, *linkname, *uname;
	enum tar_type type;
	uint32_t mode;
	int64_t mtime;
	uint64_t size, uid;
	bool sparse;
	uint64_t sparse_size;
	char *map;     /* the sparse map, re-formatted */
	char *comment; /* the "comment" PAX record, if any */
	struct buf data;
	bool ended;
};

struct collect {
	struct seen e[MAX_ENTRIES];
	size_t n;
	int fail_data; /* on_data returns this once when set */
	bool explain;  /* ... and sets a message */
	struct tar_reader *r;
};

static int on_entry(const struct tar_entry *e, void *u)
{
	struct collect *c = u;
	struct seen *s;

	assert_true(c->n < MAX_ENTRIES);
	s = &c->e[c->n++];
	*s = (struct seen){ .type = e->type,
			    .mode = e->mode,
			    .mtime = e->mtime,
			    .size = e->size,
			    .uid = e->uid,
			    .sparse = e->sparse,
			    .sparse_size = e->sparse_size,
			    .data = BUF_INIT(0) };
	s->name = strdup(e->name);
	s->linkname = e->linkname ? strdup(e->linkname) : NULL;
	s->uname = e->uname ? strdup(e->uname) : NULL;
	if (tar_entry_pax_get(e, "comment"))
		s->comment = strdup(tar_entry_pax_get(e, "comment"));
	if (e->sparse)
		assert_int_equal(tar_sparse_map_format(e->sparse_map, e->n_sparse, &s->map), 0);
	return 0;
}

static int on_data(const struct tar_entry *e, uint64_t offset, const void *data, size_t len,
		   void *u)
{
	struct collect *c = u;
	struct seen *s = &c->e[c->n - 1];

	assert_int_equal(offset, s->data.len);
	assert_true(len > 0);
	if (c->fail_data) {
		int k = c->fail_data;

		c->fail_data = 0;
		if (c->explain)
			tar_reader_set_error(c->r, "disk full while writing %s", e->name);
		return k;
	}
	assert_int_equal(buf_append(&s->data, data, len), 0);
	return 0;
}

static int on_entry_end(const struct tar_entry *e, void *u)
{
	struct collect *c = u;
	struct seen *s = &c->e[c->n - 1];

	assert_false(s->ended);
	assert_int_equal(s->data.len, e->size);
	s->ended = true;
	return 0;
}

static const struct tar_reader_ops collect_ops = { on_entry, on_data, on_entry_end };

static void collect_clear(struct collect *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->e[i].name);
		free(c->e[i].linkname);
		free(c->e[i].uname);
		free(c->e[i].map);
		free(c->e[i].comment);
		buf_free(&c->e[i].data);
	}
	*c = (struct collect){ 0 };
}

/* Feed data in pieces of `chunk` bytes (0: all at once), then finish. Returns the first
 * error, or 0; the reader's message goes to *ret_error (caller frees). */
static int read_archive(const void *data, size_t len, size_t chunk, struct collect *c,
			char **ret_error)
{
	struct tar_reader *r = NULL;
	const char *p = data;
	int k = 0;

	assert_int_equal(tar_reader_new(&collect_ops, c, &r), 0);
	c->r = r;
	if (!chunk)
		chunk = len ? len : 1;
	for (size_t off = 0; off < len && k == 0; off += chunk)
		k = tar_reader_feed(r, p + off, MIN(chunk, len - off));
	if (k >= 0)
		k = tar_reader_finish(r);
	if (ret_error)
		*ret_error = tar_reader_error(r) ? strdup(tar_reader_error(r)) : NULL;
	tar_reader_free(r);
	return k;
}

static void expect_error(const void *data, size_t len, int code, const char *substr)
{
	struct collect c = { 0 };
	char *err = NULL;
	int k = read_archive(data, len, 0, &c, &err);

	if (k != code || !err || !strstr(err, substr))
		fail_msg("expected %d containing \"%s\", got %d: %s", code, substr, k,
			 err ? err : "(no message)");
	free(err);
	collect_clear(&c);
}

static void add_entry(struct tar_writer *w, const struct tar_entry *e, const char *data)
{
	assert_int_equal(tar_writer_begin(w, e), 0);
	if (e->size)
		assert_int_equal(tar_writer_write(w, data, e->size), 0);
	assert_int_equal(tar_writer_end(w), 0);
}

/* ---- round trips ---- */

static void test_round_trip(void **state)
{
	struct buf a = BUF_INIT(0);
	struct tar_writer *w = NULL;
	struct collect c = { 0 };
	const char *json = "{\"config\":{},\"version\":1}\n";
	char big[3000];

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7);
	assert_int_equal(tar_writer_new(tar_sink_buf, &a, &w), 0);
	assert_int_equal(
	    tar_writer_add_data(w, "snapshot.json", 0644, 1700000000, json, strlen(json)), 0);
	struct tar_entry f = { .name = "cow.raw",
			       .type = TAR_TYPE_REGULAR,
			       .mode = 0600,
			       .mtime = 1700000001,
			       .size = sizeof(big),
			       .uid = 1000 };
	add_entry(w, &f, big);
	assert_int_equal(tar_writer_add_data(w, "empty", 0640, 5, "", 0), 0);
	struct tar_entry d = { .name = "dir/", .type = TAR_TYPE_DIRECTORY, .mode = 0755 };
	add_entry(w, &d, NULL);
	struct tar_entry l = {
		.name = "dir/link", .type = TAR_TYPE_SYMLINK, .mode = 0777, .linkname = "../cow.raw"
	};
	add_entry(w, &l, NULL);
	assert_int_equal(tar_writer_finish(w), 0);
	assert_int_equal(tar_writer_offset(w), a.len);
	tar_writer_free(w);

	/* 512-byte blocks only, and no PAX header was needed for any of these. */
	assert_int_equal(a.len % 512, 0);
	assert_int_equal(a.len, 512 * 2 + 512 * 7 + 512 + 512 + 512 + 1024);
	assert_int_equal(read_archive(a.data, a.len, 0, &c, NULL), 0);
	assert_int_equal(c.n, 5);
	assert_string_equal(c.e[0].name, "snapshot.json");
	assert_int_equal(c.e[0].mode, 0644);
	assert_int_equal(c.e[0].mtime, 1700000000);
	assert_int_equal(c.e[0].data.len, strlen(json));
	assert_memory_equal(c.e[0].data.data, json, strlen(json));
	assert_string_equal(c.e[1].name, "cow.raw");
	assert_int_equal(c.e[1].mode, 0600);
	assert_int_equal(c.e[1].uid, 1000);
	assert_int_equal(c.e[1].type, TAR_TYPE_REGULAR);
	assert_false(c.e[1].sparse);
	assert_memory_equal(c.e[1].data.data, big, sizeof(big));
	assert_int_equal(c.e[2].size, 0);
	assert_true(c.e[2].ended);
	assert_int_equal(c.e[3].type, TAR_TYPE_DIRECTORY);
	assert_string_equal(c.e[3].name, "dir/");
	assert_int_equal(c.e[4].type, TAR_TYPE_SYMLINK);
	assert_string_equal(c.e[4].linkname, "../cow.raw");
	for (size_t i = 0; i < c.n; i++)
		assert_true(c.e[i].ended);
	collect_clear(&c);
	buf_free(&a);
}

static void test_pax_records_and_long_names(void **state)
{
	char name150[151], name300[301], flat120[121], link200[201];
	struct buf a = BUF_INIT(0);
	struct tar_writer *w = NULL;
	struct collect c = { 0 };
	struct tar_pax_record extra = { "comment", "made by test", 12 };

	memset(name150, 'a', 150);
	name150[60] = '/';
	name150[150] = 0;
	memset(name300, 'b', 300);
	name300[100] = name300[200] = '/';
	name300[300] = 0;
	memset(flat120, 'c', 120);
	flat120[120] = 0;
	memset(link200, 'd', 200);
	link200[200] = 0;

	assert_int_equal(tar_writer_new(tar_sink_buf, &a, &w), 0);
	/* Fits ustar's prefix + name split: exactly one block, no PAX header. */
	assert_int_equal(tar_writer_add_data(w, name150, 0644, 0, "x", 1), 0);
	assert_int_equal(a.len, 1024);
	assert_int_equal(tar_writer_add_data(w, name300, 0644, 0, "y", 1), 0);
	assert_int_equal(tar_writer_add_data(w, flat120, 0644, 0, "z", 1), 0);
	struct tar_entry s = { .name = "s",
			       .type = TAR_TYPE_SYMLINK,
			       .linkname = link200,
			       .uname = "a-user-name-much-longer-than-32-bytes",
			       .pax = &extra,
			       .n_pax = 1,
			       .mtime = -86400 };
	add_entry(w, &s, NULL);
	assert_int_equal(tar_writer_finish(w), 0);
	tar_writer_free(w);
	assert_non_null(memmem(a.data, a.len, "comment=made by test\n", 21));

	assert_int_equal(read_archive(a.data, a.len, 0, &c, NULL), 0);
	assert_int_equal(c.n, 4);
	assert_string_equal(c.e[0].name, name150);
	assert_string_equal(c.e[1].name, name300);
	assert_memory_equal(c.e[1].data.data, "y", 1);
	assert_string_equal(c.e[2].name, flat120);
	assert_string_equal(c.e[3].linkname, link200);
	assert_string_equal(c.e[3].uname, "a-user-name-much-longer-than-32-bytes");
	assert_string_equal(c.e[3].comment, "made by test");
	assert_int_equal(c.e[3].mtime, -86400);
	assert_null(c.e[0].comment);
	collect_clear(&c);
	buf_free(&a);
}

/* A 9 GiB entry: the header says so through a PAX size record (ustar tops out at 8 GiB - 1);
 * the reader announces the size and, with the data cut short, reports exactly what is
 * missing. */
static void test_size_beyond_8gib(void **state)
{
	const uint64_t size = 9ULL << 30;
	struct tar_entry e = {
		.name = "data-1.raw", .type = TAR_TYPE_REGULAR, .mode = 0640, .size = size
	};
	struct buf h = BUF_INIT(0);
	struct collect c = { 0 };
	char *err = NULL;

	assert_int_equal(tar_header_format(&e, &h, NULL), 0);
	assert_int_equal(h.len, 3 * 512);
	assert_non_null(memmem(h.data, h.len, "size=9663676416\n", 16));
	assert_int_equal(read_archive(h.data, h.len, 0, &c, &err), -ENODATA);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.e[0].size, size);
	assert_non_null(strstr(err, "9663676416 of 9663676416 data bytes missing"));
	assert_non_null(strstr(err, "entry 1 \"data-1.raw\""));
	free(err);
	collect_clear(&c);
	buf_free(&h);
}

/* Sparse: 100 GiB logical, 5 KiB of data in three segments; the archive carries the packed
 * bytes and the COCOON.sparse.* records, and the reader hands back map and size. */
static void test_sparse_records_round_trip(void **state)
{
	struct tar_sparse_segment map[] = { { 0, 4096 },
					    { 1ULL << 30, 512 },
					    { (100ULL << 30) - 512, 512 } };
	struct tar_entry e = { .name = "cow.raw",
			       .type = TAR_TYPE_REGULAR,
			       .mode = 0600,
			       .size = 5120,
			       .sparse = true,
			       .sparse_map = map,
			       .n_sparse = 3,
			       .sparse_size = 100ULL << 30 };
	struct buf a = BUF_INIT(0);
	struct tar_writer *w = NULL;
	struct collect c = { 0 };
	char data[5120];

	memset(data, 'q', sizeof(data));
	assert_int_equal(tar_writer_new(tar_sink_buf, &a, &w), 0);
	add_entry(w, &e, data);
	assert_int_equal(tar_writer_finish(w), 0);
	tar_writer_free(w);
	const char *rec = "COCOON.sparse.map=[{\"o\":0,\"l\":4096},{\"o\":1073741824,\"l\":512},"
			  "{\"o\":107374181888,\"l\":512}]\n";
	assert_non_null(memmem(a.data, a.len, rec, strlen(rec)));
	assert_non_null(memmem(a.data, a.len, "COCOON.sparse.size=107374182400\n", 32));
	assert_int_equal(read_archive(a.data, a.len, 0, &c, NULL), 0);
	assert_int_equal(c.n, 1);
	assert_true(c.e[0].sparse);
	assert_int_equal(c.e[0].size, 5120);
	assert_int_equal(c.e[0].sparse_size, 100ULL << 30);
	assert_string_equal(c.e[0].map, "[{\"o\":0,\"l\":4096},{\"o\":1073741824,\"l\":512},"
					"{\"o\":107374181888,\"l\":512}]");
	collect_clear(&c);
	buf_free(&a);

	/* The writer refuses a map that does not describe the data. */
	char *err = NULL;
	e.size = 5000;
	assert_int_equal(tar_header_format(&e, &a, &err), -EINVAL);
	assert_non_null(strstr(err, "sparse map holds 5120 bytes, size is 5000"));
	free(err);
	err = NULL;
	e.size = 5120;
	map[1].offset = 1000;
	assert_int_equal(tar_header_format(&e, &a, &err), -EINVAL);
	assert_non_null(strstr(err, "segment 1: offset 1000 overlaps"));
	free(err);
	assert_int_equal(a.len, 0);
	buf_free(&a);
}

static void test_sparse_map_json(void **state)
{
	struct tar_sparse_segment *m = NULL;
	struct tar_sparse_segment seg[] = { { 0, 4096 }, { 1048576, 512 } };
	char *s = NULL, *err = NULL;
	size_t n = 0;

	assert_int_equal(tar_sparse_map_format(seg, 2, &s), 0);
	assert_string_equal(s, "[{\"o\":0,\"l\":4096},{\"o\":1048576,\"l\":512}]");
	assert_int_equal(tar_sparse_map_parse(s, strlen(s), 2 << 20, &m, &n, NULL), 0);
	assert_int_equal(n, 2);
	assert_int_equal(m[1].offset, 1048576);
	assert_int_equal(m[1].length, 512);
	assert_int_equal(tar_sparse_packed_size(m, n), 4608);
	free(m);
	free(s);
	assert_int_equal(tar_sparse_map_format(NULL, 0, &s), 0);
	assert_string_equal(s, "[]");
	assert_int_equal(tar_sparse_map_parse(s, 2, 10, &m, &n, NULL), 0);
	assert_int_equal(n, 0);
	assert_null(m);
	free(s);
	/* Whitespace is fine: any JSON encoder may have written it. */
	s = "[ {\"l\": 1, \"o\": 9} ]";
	assert_int_equal(tar_sparse_map_parse(s, strlen(s), 10, &m, &n, NULL), 0);
	assert_int_equal(m[0].offset, 9);
	free(m);

	static const struct {
		const char *json;
		const char *why;
	} bad[] = {
		{ "{}", "not a JSON array" },
		{ "[{\"o\":0,\"l\":1}", "invalid JSON" },
		{ "[1]", "segment 0: not an object" },
		{ "[{\"o\":-1,\"l\":1}]", "segment 0: \"o\" missing" },
		{ "[{\"o\":0}]", "segment 0: \"l\" missing" },
		{ "[{\"o\":0.5,\"l\":1}]", "\"o\" missing or not a non-negative integer" },
		{ "[{\"o\":0,\"l\":1,\"x\":2}]", "segment 0: unexpected keys" },
		{ "[{\"o\":0,\"l\":1,\"o\":2}]", "invalid JSON" },
		{ "[{\"o\":0,\"l\":0}]", "segment 0: length 0" },
		{ "[{\"o\":4,\"l\":2},{\"o\":5,\"l\":1}]", "segment 1: offset 5 overlaps" },
		{ "[{\"o\":4,\"l\":2},{\"o\":0,\"l\":1}]", "segment 1: offset 0 overlaps" },
		{ "[{\"o\":60,\"l\":41}]", "segment 0: 60+41 goes beyond the logical size 100" },
		{ "[{\"o\":99999999999999999999,\"l\":1}]", "invalid JSON" },
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		int k = tar_sparse_map_parse(bad[i].json, strlen(bad[i].json), 100, &m, &n, &err);

		if (k != -EBADMSG || !err || !strstr(err, bad[i].why))
			fail_msg("%s: got %d %s", bad[i].json, k, err ? err : "(null)");
		free(err);
		err = NULL;
	}

	/* The segment cap. */
	struct buf big = BUF_INIT(0);
	assert_int_equal(buf_append(&big, "[", 1), 0);
	for (unsigned i = 0; i <= TAR_SPARSE_SEGMENTS_MAX; i++)
		assert_int_equal(buf_printf(&big, "%s{\"o\":%u,\"l\":1}", i ? "," : "", i * 2), 0);
	assert_int_equal(buf_append(&big, "]", 1), 0);
	assert_int_equal(tar_sparse_map_parse(big.data, big.len, 1 << 20, &m, &n, &err), -E2BIG);
	assert_non_null(strstr(err, "more than 65536 segments"));
	free(err);
	buf_free(&big);
}

/* ---- chunking ---- */

static void build_mixed_archive(struct buf *a)
{
	struct tar_sparse_segment map[] = { { 100, 3 }, { 4000, 700 } };
	struct tar_pax_record extra = { "comment", "c", 1 };
	struct tar_entry sp = { .name = "disk.raw",
				.type = TAR_TYPE_REGULAR,
				.mode = 0600,
				.size = 703,
				.sparse = true,
				.sparse_map = map,
				.n_sparse = 2,
				.sparse_size = 8192,
				.pax = &extra,
				.n_pax = 1 };
	char long_name[200], data[703];
	struct tar_writer *w = NULL;

	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = 0;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)('a' + i % 26);
	assert_int_equal(tar_writer_new(tar_sink_buf, a, &w), 0);
	assert_int_equal(tar_writer_add_data(w, "snapshot.json", 0644, 1, "{}\n", 3), 0);
	add_entry(w, &sp, data);
	assert_int_equal(tar_writer_add_data(w, long_name, 0644, 2, data, 513), 0);
	assert_int_equal(tar_writer_add_data(w, "z", 0644, 3, "", 0), 0);
	assert_int_equal(tar_writer_finish(w), 0);
	tar_writer_free(w);
}

static void assert_same_result(struct collect *x, struct collect *y)
{
	assert_int_equal(x->n, y->n);
	for (size_t i = 0; i < x->n; i++) {
		assert_string_equal(x->e[i].name, y->e[i].name);
		assert_int_equal(x->e[i].size, y->e[i].size);
		assert_int_equal(x->e[i].mtime, y->e[i].mtime);
		assert_int_equal(x->e[i].sparse, y->e[i].sparse);
		assert_string_equal(x->e[i].map ? x->e[i].map : "", y->e[i].map ? y->e[i].map : "");
		assert_int_equal(x->e[i].data.len, y->e[i].data.len);
		assert_memory_equal(x->e[i].data.data ? x->e[i].data.data : "",
				    y->e[i].data.data ? y->e[i].data.data : "", x->e[i].data.len);
		assert_true(y->e[i].ended);
	}
}

static void test_every_split_point(void **state)
{
	struct buf a = BUF_INIT(0);
	struct collect whole = { 0 };

	build_mixed_archive(&a);
	assert_int_equal(read_archive(a.data, a.len, 0, &whole, NULL), 0);
	assert_int_equal(whole.n, 4);
	assert_int_equal(whole.e[1].sparse_size, 8192);
	assert_string_equal(whole.e[1].comment, "c");

	for (size_t split = 0; split <= a.len; split++) {
		struct tar_reader *r = NULL;
		struct collect c = { 0 };
		int k;

		assert_int_equal(tar_reader_new(&collect_ops, &c, &r), 0);
		k = tar_reader_feed(r, a.data, split);
		assert_int_equal(k, split == a.len ? 1 : 0);
		assert_int_equal(tar_reader_feed(r, a.data + split, a.len - split), 1);
		assert_int_equal(tar_reader_finish(r), 0);
		assert_int_equal(tar_reader_offset(r), a.len);
		assert_int_equal(tar_reader_entries(r), 4);
		tar_reader_free(r);
		assert_same_result(&whole, &c);
		collect_clear(&c);
	}
	for (size_t chunk = 1; chunk < 1100; chunk += 37) {
		struct collect c = { 0 };

		assert_int_equal(read_archive(a.data, a.len, chunk, &c, NULL), 0);
		assert_same_result(&whole, &c);
		collect_clear(&c);
	}
	collect_clear(&whole);
	buf_free(&a);
}

/* What follows the end-of-archive marker (a 10 KiB record's zero padding, or anything) is
 * not read; an archive cut anywhere before the marker is reported truncated. */
static void test_end_of_archive_and_truncation(void **state)
{
	struct buf a = BUF_INIT(0);
	struct collect c = { 0 };
	char *err = NULL;

	build_mixed_archive(&a);
	assert_int_equal(buf_append(&a, "trailing garbage", 16), 0);
	assert_int_equal(read_archive(a.data, a.len, 0, &c, NULL), 0);
	collect_clear(&c);
	a.len -= 16;
	for (size_t cut = 0; cut < a.len; cut += 97) {
		assert_int_equal(read_archive(a.data, cut, 0, &c, &err), -ENODATA);
		assert_non_null(strstr(err, "truncated"));
		free(err);
		collect_clear(&c);
	}
	/* Cut right after an entry's padding: only the missing marker tells. */
	expect_error(a.data, 512 + 512, -ENODATA, "end-of-archive marker is missing");
	expect_error(a.data, 512 + 100, -ENODATA,
		     "entry 1 \"snapshot.json\" (header at offset 0): "
		     "truncated inside the padding");
	expect_error(a.data, 2600, -ENODATA,
		     "entry 2 \"disk.raw\" (header at offset 2048): "
		     "truncated: 663 of 703 data bytes missing");
	expect_error(a.data, 100, -ENODATA, "truncated header (100 of 512 bytes)");
	expect_error(a.data, 1546, -ENODATA, "truncated inside an extended header");
	expect_error(a.data, a.len - 512, -ENODATA,
		     "offset 7168: truncated: the end-of-archive "
		     "marker is missing");
	buf_free(&a);
}

/* ---- malformed input ---- */

/* A valid one-entry archive to corrupt: header, 5 data bytes, padding, marker. */
static void simple_archive(struct buf *a, const char *name, enum tar_type type, uint64_t size)
{
	struct tar_entry e = {
		.name = (char *)name, .type = type, .mode = 0644, .size = size, .linkname = "target"
	};

	buf_reset(a);
	assert_int_equal(tar_header_format(&e, a, NULL), 0);
	for (uint64_t i = 0; i < size; i++)
		assert_int_equal(buf_append(a, "D", 1), 0);
	assert_int_equal(buf_append(a, zeros, tar_padding(size) + 1024), 0);
}

static void fix_checksum(char *h)
{
	unsigned sum = 0;

	memset(h + 148, ' ', 8);
	for (size_t i = 0; i < 512; i++)
		sum += (unsigned char)h[i];
	snprintf(h + 148, 8, "%06o", sum);
	h[155] = ' ';
}

/* Overwrite a header field (at block `blk`) and re-checksum, so only the field is wrong. */
static void poke(struct buf *a, size_t blk, size_t off, const void *v, size_t len)
{
	memcpy(a->data + blk * 512 + off, v, len);
	fix_checksum(a->data + blk * 512);
}

static void test_bad_header_fields(void **state)
{
	struct buf a = BUF_INIT(0);

	simple_archive(&a, "f", TAR_TYPE_REGULAR, 5);
	a.data[0] = 'g';
	expect_error(a.data, a.len, -EBADMSG,
		     "entry 1 \"g\" (header at offset 0): header "
		     "checksum mismatch");

	simple_archive(&a, "f", TAR_TYPE_REGULAR, 5);
	memcpy(a.data + 148, "12x4567", 7);
	expect_error(a.data, a.len, -EBADMSG, "header checksum: invalid octal number");

	simple_archive(&a, "f", TAR_TYPE_REGULAR, 5);
	poke(&a, 0, 124, "0000000009\0", 12);
	expect_error(a.data, a.len, -EBADMSG,
		     "entry 1 \"f\" (header at offset 0): size: invalid "
		     "octal number");

	simple_archive(&a, "f", TAR_TYPE_REGULAR, 5);
	poke(&a, 0, 124, "00000 00005\0", 12);
	expect_error(a.data, a.len, -EBADMSG, "size: invalid octal number");

	simple_archive(&a, "f", TAR_TYPE_REGULAR, 5);
	poke(&a, 0, 124, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xfb", 12);
	expect_error(a.data, a.len, -EBADMSG, "size: negative base-256 number");

	simple_archive(&a, "f", TAR_TYPE_REGULAR, 5);
	poke(&a, 0, 136, "\x80\0\0\x01\0\0\0\0\0\0\0\0", 12);
	expect_error(a.data, a.len, -EBADMSG, "mtime: base-256 number out of range");

	simple_archive(&a, "f", TAR_TYPE_REGULAR, 5);
	poke(&a, 0, 100, "0x44\0\0\0\0", 8);
	expect_error(a.data, a.len, -EBADMSG, "mode: invalid octal number");

	simple_archive(&a, "f", TAR_TYPE_REGULAR, 5);
	poke(&a, 0, 257,
	     "ustar\0"
	     "01",
	     8);
	expect_error(a.data, a.len, -EBADMSG, "magic: not a ustar header");

	simple_archive(&a, "f", TAR_TYPE_REGULAR, 5);
	poke(&a, 0, 0, "../etc/passwd", 14);
	expect_error(a.data, a.len, -EBADMSG,
		     "\"../etc/passwd\" (header at offset 0): name: "
		     "contains a \"..\" component");
	simple_archive(&a, "f", TAR_TYPE_REGULAR, 5);
	poke(&a, 0, 0, "a/../../b", 10);
	expect_error(a.data, a.len, -EBADMSG, "contains a \"..\" component");
	simple_archive(&a, "f", TAR_TYPE_REGULAR, 5);
	poke(&a, 0, 0, "/etc/shadow", 12);
	expect_error(a.data, a.len, -EBADMSG, "name: absolute path");
	simple_archive(&a, "f", TAR_TYPE_REGULAR, 5);
	poke(&a, 0, 0, "\0", 1);
	expect_error(a.data, a.len, -EBADMSG, "name: empty");

	simple_archive(&a, "f", TAR_TYPE_REGULAR, 5);
	poke(&a, 0, 156, "S", 1);
	expect_error(a.data, a.len, -EBADMSG, "type 'S': GNU sparse entries are not supported");
	simple_archive(&a, "f", TAR_TYPE_REGULAR, 5);
	poke(&a, 0, 156, "V", 1);
	expect_error(a.data, a.len, -EBADMSG, "type 'V': not supported");
	simple_archive(&a, "f", TAR_TYPE_REGULAR, 5);
	poke(&a, 0, 156, "\x01", 1);
	expect_error(a.data, a.len, -EBADMSG, "type 0x01: not supported");

	simple_archive(&a, "d/", TAR_TYPE_DIRECTORY, 0);
	poke(&a, 0, 124, "00000000005\0", 12);
	expect_error(a.data, a.len, -EBADMSG, "size: 5 but a directory has no data");
	simple_archive(&a, "l", TAR_TYPE_HARDLINK, 0);
	poke(&a, 0, 157, "/abs", 5);
	expect_error(a.data, a.len, -EBADMSG, "linkname: absolute path");
	simple_archive(&a, "l", TAR_TYPE_SYMLINK, 0);
	poke(&a, 0, 157, "\0", 1);
	expect_error(a.data, a.len, -EBADMSG, "linkname: empty for a symbolic link");

	/* The second entry is named in the message, with its header offset. */
	simple_archive(&a, "a", TAR_TYPE_REGULAR, 5);
	a.len -= 1024;
	size_t first = a.len;
	struct tar_entry e2 = { .name = "b.txt", .type = TAR_TYPE_REGULAR, .mode = 0644 };
	assert_int_equal(tar_header_format(&e2, &a, NULL), 0);
	assert_int_equal(buf_append(&a, zeros, 1024), 0);
	poke(&a, first / 512, 136, "zz", 2);
	expect_error(a.data, a.len, -EBADMSG,
		     "entry 2 \"b.txt\" (header at offset 1024): mtime: "
		     "invalid octal number");
	buf_free(&a);
}

/* An archive of one extended header (type xtype) holding `records`, then an entry "f" of
 * `size` bytes of 'D', then the end-of-archive marker. */
static void pax_archive(struct buf *a, char xtype, const char *records, size_t rl, uint64_t size)
{
	struct tar_entry e = { .name = "f", .type = TAR_TYPE_REGULAR, .mode = 0644, .size = size };

	simple_archive(a, "PaxHeaders/f", TAR_TYPE_REGULAR, 0);
	a->len = 512;
	a->data[156] = xtype;
	snprintf(a->data + 124, 12, "%011zo", rl);
	fix_checksum(a->data);
	assert_int_equal(buf_append(a, records, rl), 0);
	assert_int_equal(buf_append(a, zeros, tar_padding(rl)), 0);
	assert_int_equal(tar_header_format(&e, a, NULL), 0);
	for (uint64_t i = 0; i < size; i++)
		assert_int_equal(buf_append(a, "D", 1), 0);
	assert_int_equal(buf_append(a, zeros, tar_padding(size) + 1024), 0);
}

static void test_pax_overrides(void **state)
{
	struct buf a = BUF_INIT(0), recs = BUF_INIT(0);
	struct collect c = { 0 };

	add_rec(&recs, "path", "dir/renamed", 11);
	add_rec(&recs, "mtime", "1700000000.5", 12);
	add_rec(&recs, "uid", "77", 2);
	add_rec(&recs, "size", "3", 1);
	pax_archive(&a, 'x', recs.data, recs.len, 3);
	/* The ustar size field says 0: the PAX record is what counts. */
	memcpy(a.data + 1024 + 124, "00000000000", 11);
	fix_checksum(a.data + 1024);
	assert_int_equal(read_archive(a.data, a.len, 0, &c, NULL), 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.e[0].name, "dir/renamed");
	assert_int_equal(c.e[0].mtime, 1700000000);
	assert_int_equal(c.e[0].uid, 77);
	assert_int_equal(c.e[0].size, 3);
	assert_memory_equal(c.e[0].data.data, "DDD", 3);
	collect_clear(&c);
	buf_free(&recs);
	buf_free(&a);
}

static void test_bad_pax_syntax(void **state)
{
	static const struct {
		const char *records;
		const char *why;
	} bad[] = {
		{ "x path=a\n", "PAX record 1: invalid length" },
		{ "12path=abc\n", "PAX record 1: invalid length" },
		{ "99 path=a\n", "PAX record 1: length 99 does not fit the header" },
		{ "3 a\n", "PAX record 1: length 3 does not fit the header" },
		{ "11 path=ab\n11 path=abX", "PAX record 2: missing newline" },
		{ "9 pathab\n", "PAX record 1: invalid key" },
		{ "8 =abcd\n", "PAX record 1: invalid key" },
	};
	struct buf a = BUF_INIT(0);

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		pax_archive(&a, 'x', bad[i].records, strlen(bad[i].records), 3);
		expect_error(a.data, a.len, -EBADMSG, bad[i].why);
	}
	buf_free(&a);
}

static void test_bad_pax_values(void **state)
{
	static const struct {
		const char *key, *value;
		size_t vlen; /* 0: strlen */
		const char *key2, *value2;
		const char *why;
	} bad[] = {
		{ "size", "1x", 0, NULL, NULL, "PAX record \"size\": not a decimal number" },
		{ "size", "-1", 0, NULL, NULL, "PAX record \"size\": not a decimal number" },
		{ "size", "99999999999999999999", 0, NULL, NULL, "\"size\": number out of range" },
		{ "uid", "9223372036854775808", 0, NULL, NULL, "\"uid\": number out of range" },
		{ "mtime", "1.2x", 0, NULL, NULL, "PAX record \"mtime\": invalid fraction" },
		{ "mtime", "x", 0, NULL, NULL, "PAX record \"mtime\": not a decimal number" },
		{ "path", "a\0b", 3, NULL, NULL, "PAX record \"path\": contains a NUL byte" },
		{ "path", "../x", 0, NULL, NULL,
		  "entry 1 \"../x\" (header at offset 1024): name: contains a \"..\" component" },
		{ "GNU.sparse.major", "1", 0, NULL, NULL, "GNU sparse archives are not supported" },
		{ "COCOON.sparse.size", "10", 0, NULL, NULL,
		  "COCOON.sparse.size without COCOON.sparse.map" },
		{ "COCOON.sparse.map", "[{\"o\":0,\"l\":3}]", 0, NULL, NULL,
		  "COCOON.sparse.map without COCOON.sparse.size" },
		{ "COCOON.sparse.map", "[{\"o\":0,\"l\":2}]", 0, "COCOON.sparse.size", "10",
		  "entry 1 \"f\" (header at offset 1024): COCOON.sparse.map: segments hold 2 "
		  "bytes but the entry has 3" },
		{ "COCOON.sparse.map", "[{\"o\":9,\"l\":3}]", 0, "COCOON.sparse.size", "10",
		  "COCOON.sparse.map: segment 0: 9+3 goes beyond the logical size 10" },
		{ "COCOON.sparse.map", "[{]", 0, "COCOON.sparse.size", "10",
		  "COCOON.sparse.map: invalid JSON" },
		{ "COCOON.sparse.map", "[{\"o\":0,\"l\":3}]", 0, "COCOON.sparse.size", "1x",
		  "COCOON.sparse.size: not a decimal number" },
		{ "COCOON.sparse.map", "[]\0[{\"o\":0,\"l\":3}]", 18, "COCOON.sparse.size", "10",
		  "PAX record \"COCOON.sparse.map\": contains a NUL byte" },
	};
	struct buf a = BUF_INIT(0), recs = BUF_INIT(0);

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		buf_reset(&recs);
		add_rec(&recs, bad[i].key, bad[i].value,
			bad[i].vlen ? bad[i].vlen : strlen(bad[i].value));
		if (bad[i].key2)
			add_rec(&recs, bad[i].key2, bad[i].value2, strlen(bad[i].value2));
		pax_archive(&a, 'x', recs.data, recs.len, 3);
		expect_error(a.data, a.len, -EBADMSG, bad[i].why);
	}

	/* A sparse record pair on a directory. */
	struct tar_entry d = { .name = "d/", .type = TAR_TYPE_DIRECTORY, .mode = 0755 };
	buf_reset(&recs);
	add_rec(&recs, "COCOON.sparse.map", "[]", 2);
	add_rec(&recs, "COCOON.sparse.size", "10", 2);
	pax_archive(&a, 'x', recs.data, recs.len, 0);
	a.len = 1024;
	assert_int_equal(tar_header_format(&d, &a, NULL), 0);
	assert_int_equal(buf_append(&a, zeros, 1024), 0);
	expect_error(a.data, a.len, -EBADMSG, "sparse records on a non-regular entry");
	buf_free(&recs);
	buf_free(&a);
}

static void test_extended_header_placement(void **state)
{
	struct buf a = BUF_INIT(0), recs = BUF_INIT(0), twice = BUF_INIT(0);

	/* An 'x' header must be followed by an entry ... */
	pax_archive(&a, 'x', "", 0, 0);
	a.len = 512;
	assert_int_equal(buf_append(&a, zeros, 1024), 0);
	expect_error(a.data, a.len, -EBADMSG, "extended header not followed by an entry");
	/* ... and there is one per entry. */
	add_rec(&recs, "uid", "1", 1);
	pax_archive(&a, 'x', recs.data, recs.len, 0);
	assert_int_equal(buf_append(&twice, a.data, 1024), 0);
	assert_int_equal(buf_append(&twice, a.data, a.len), 0);
	expect_error(twice.data, twice.len, -EBADMSG, "two PAX headers for one entry");
	buf_free(&twice);
	buf_free(&recs);
	buf_free(&a);
}

static void test_pax_caps(void **state)
{
	struct buf a = BUF_INIT(0), recs = BUF_INIT(0);

	/* An extended header larger than the cap is refused before it is buffered. */
	simple_archive(&a, "PaxHeaders/f", TAR_TYPE_REGULAR, 0);
	a.data[156] = 'x';
	snprintf(a.data + 124, 12, "%011o", TAR_PAX_HEADER_MAX + 1);
	fix_checksum(a.data);
	expect_error(a.data, a.len, -E2BIG, "PAX header of 1048577 bytes exceeds the cap");
	/* So is a GNU long name beyond TAR_NAME_MAX. */
	a.data[156] = 'L';
	snprintf(a.data + 124, 12, "%011o", TAR_NAME_MAX + 2);
	fix_checksum(a.data);
	expect_error(a.data, a.len, -E2BIG, "GNU long name header of 4098 bytes exceeds the cap");

	for (int i = 0; i <= TAR_PAX_RECORDS_MAX; i++)
		add_rec(&recs, "a", "bcd", 3);
	pax_archive(&a, 'g', recs.data, recs.len, 0);
	expect_error(a.data, a.len, -E2BIG, "PAX header: more than 1024 records");
	/* The cap is inclusive. */
	buf_reset(&recs);
	for (int i = 0; i < TAR_PAX_RECORDS_MAX; i++)
		add_rec(&recs, "a", "bcd", 3);
	pax_archive(&a, 'g', recs.data, recs.len, 0);
	struct collect c = { 0 };
	assert_int_equal(read_archive(a.data, a.len, 0, &c, NULL), 0);
	collect_clear(&c);
	buf_free(&recs);
	buf_free(&a);
}

/* 'g' records apply to every later entry; an 'x' record with an empty value unsets one. */
static void test_global_pax(void **state)
{
	struct buf a = BUF_INIT(0), second = BUF_INIT(0), recs = BUF_INIT(0);
	struct collect c = { 0 };

	add_rec(&recs, "comment", "hello", 5);
	pax_archive(&a, 'g', recs.data, recs.len, 1);
	a.len -= 1024;
	buf_reset(&recs);
	add_rec(&recs, "comment", "", 0);
	pax_archive(&second, 'x', recs.data, recs.len, 0);
	second.data[1024] = 'h';
	fix_checksum(second.data + 1024);
	/* and a third entry, with no 'x' of its own: the global record again */
	assert_int_equal(buf_append(&a, second.data, second.len - 1024), 0);
	assert_int_equal(buf_append(&a, second.data + 1024, second.len - 1024), 0);
	assert_int_equal(read_archive(a.data, a.len, 0, &c, NULL), 0);
	assert_int_equal(c.n, 3);
	assert_string_equal(c.e[0].comment, "hello");
	assert_null(c.e[1].comment);
	assert_string_equal(c.e[2].comment, "hello");
	collect_clear(&c);
	buf_free(&recs);
	buf_free(&second);
	buf_free(&a);
}

/* GNU tar's own format: magic "ustar  ", 'L' long names, base-256 numbers. */
static void test_gnu_extensions(void **state)
{
	char name[300];
	struct buf a = BUF_INIT(0);
	struct collect c = { 0 };

	memset(name, 'g', sizeof(name) - 1);
	name[sizeof(name) - 1] = 0;
	simple_archive(&a, "././@LongLink", TAR_TYPE_REGULAR, 0);
	a.len = 512;
	a.data[156] = 'L';
	memcpy(a.data + 257, "ustar  \0", 8);
	snprintf(a.data + 124, 12, "%011zo", sizeof(name));
	fix_checksum(a.data);
	assert_int_equal(buf_append(&a, name, sizeof(name)), 0);
	assert_int_equal(buf_append(&a, zeros, tar_padding(sizeof(name))), 0);
	size_t hdr = a.len;
	struct tar_entry e = { .name = "short", .type = TAR_TYPE_REGULAR, .mode = 0644, .size = 2 };
	assert_int_equal(tar_header_format(&e, &a, NULL), 0);
	memcpy(a.data + hdr + 257, "ustar  \0", 8);
	/* size 2 in base-256, and the GNU prefix area holds atime/ctime, not a name part */
	memcpy(a.data + hdr + 124, "\x80\0\0\0\0\0\0\0\0\0\0\x02", 12);
	memcpy(a.data + hdr + 345, "12345670123", 11);
	fix_checksum(a.data + hdr);
	assert_int_equal(buf_append(&a, "hi", 2), 0);
	assert_int_equal(buf_append(&a, zeros, 510 + 1024), 0);
	assert_int_equal(read_archive(a.data, a.len, 7, &c, NULL), 0);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.e[0].name, name);
	assert_memory_equal(c.e[0].data.data, "hi", 2);
	collect_clear(&c);
	buf_free(&a);
}

static void test_zero_blocks(void **state)
{
	struct buf a = BUF_INIT(0), b = BUF_INIT(0);

	/* A lone zero block is not an end-of-archive marker. */
	simple_archive(&a, "f", TAR_TYPE_REGULAR, 5);
	a.len -= 1024;
	assert_int_equal(buf_append(&b, a.data, a.len), 0);
	assert_int_equal(buf_append(&b, zeros, 512), 0);
	assert_int_equal(buf_append(&b, a.data, a.len), 0);
	expect_error(b.data, b.len, -EBADMSG, "a lone zero block before a header");
	expect_error(b.data, a.len + 512, -ENODATA, "end-of-archive marker is missing");
	buf_free(&b);
	buf_free(&a);
}

/* ---- callbacks ---- */

static void test_callback_abort(void **state)
{
	struct buf a = BUF_INIT(0);
	struct collect c = { .fail_data = -ENOSPC, .explain = true };
	struct tar_reader *r = NULL;

	build_mixed_archive(&a);
	assert_int_equal(tar_reader_new(&collect_ops, &c, &r), 0);
	c.r = r;
	assert_int_equal(tar_reader_feed(r, a.data, a.len), -ENOSPC);
	assert_string_equal(tar_reader_error(r), "entry 1 \"snapshot.json\" (header at offset 0): "
						 "disk full while writing snapshot.json");
	/* It stays failed. */
	assert_int_equal(tar_reader_feed(r, a.data, a.len), -ENOSPC);
	assert_int_equal(tar_reader_finish(r), -ENOSPC);
	tar_reader_free(r);
	collect_clear(&c);

	c = (struct collect){ .fail_data = -EIO };
	char *err = NULL;
	assert_int_equal(read_archive(a.data, a.len, 0, &c, &err), -EIO);
	assert_non_null(strstr(err, "data callback failed"));
	free(err);
	collect_clear(&c);
	buf_free(&a);
}

/* ---- writer misuse ---- */

static int failing_sink(const void *data, size_t len, void *userdata)
{
	int *calls = userdata;

	return ++*calls > 1 ? -EPIPE : 0;
}

static void test_writer_errors(void **state)
{
	struct buf a = BUF_INIT(0);
	struct tar_writer *w = NULL;
	struct tar_entry e = { .name = "f", .type = TAR_TYPE_REGULAR, .mode = 0644, .size = 4 };
	char *err = NULL;
	int calls = 0;

	assert_int_equal(tar_writer_new(tar_sink_buf, &a, &w), 0);
	assert_int_equal(tar_writer_write(w, "x", 1), -EINVAL);
	assert_int_equal(tar_writer_begin(w, &e), 0);
	assert_int_equal(tar_writer_begin(w, &e), -EBUSY);
	assert_int_equal(tar_writer_finish(w), -EBUSY);
	assert_int_equal(tar_writer_write(w, "abcde", 5), -EFBIG);
	assert_int_equal(tar_writer_write(w, "abc", 3), 0);
	assert_int_equal(tar_writer_end(w), -ENODATA);
	assert_int_equal(tar_writer_write(w, "d", 1), 0);
	assert_int_equal(tar_writer_end(w), 0);
	tar_writer_free(w);

	static struct tar_pax_record path_rec = { "path", "x", 1 };
	const struct {
		struct tar_entry e;
		const char *why;
	} bad[] = {
		{ { .name = "" }, "name: empty" },
		{ { .name = NULL }, "name: missing" },
		{ { .name = "a/../b" }, "name: contains a \"..\" component" },
		{ { .name = "/abs" }, "name: absolute path" },
		{ { .name = "d", .type = TAR_TYPE_DIRECTORY, .size = 1 },
		  "d: a directory has no "
		  "data" },
		{ { .name = "l", .type = TAR_TYPE_SYMLINK }, "l: invalid link target" },
		{ { .name = "t", .type = 'Z' }, "t: unknown type" },
		{ { .name = "p", .pax = &path_rec, .n_pax = 1 },
		  "PAX record key \"path\" not allowed" },
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		struct tar_entry be = bad[i].e;

		if (!be.type)
			be.type = TAR_TYPE_REGULAR;
		buf_reset(&a);
		assert_int_equal(tar_header_format(&be, &a, &err), -EINVAL);
		if (!err || !strstr(err, bad[i].why))
			fail_msg("%zu: %s", i, err ? err : "(null)");
		assert_int_equal(a.len, 0);
		free(err);
		err = NULL;
	}

	/* A sink error sticks: nothing more is written after it. */
	assert_int_equal(tar_writer_new(failing_sink, &calls, &w), 0);
	assert_int_equal(tar_writer_add_data(w, "a", 0644, 0, "", 0), 0);
	assert_int_equal(tar_writer_add_data(w, "b", 0644, 0, "", 0), -EPIPE);
	assert_int_equal(tar_writer_finish(w), -EPIPE);
	assert_int_equal(calls, 2);
	assert_int_equal(tar_writer_offset(w), 512);
	tar_writer_free(w);
	buf_free(&a);
}

/* ---- sparse files on disk ---- */

static char tmpdir[] = "/tmp/test-epoch-tar-XXXXXX";

static int setup(void **state)
{
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static int open_tmp(const char *name, int flags)
{
	char path[256];
	int fd;

	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	fd = open(path, flags | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	return fd;
}

static void fill_at(int fd, uint64_t off, size_t len, char c)
{
	char *b = malloc(len);

	memset(b, c, len);
	assert_int_equal(pwrite(fd, b, len, (off_t)off), (ssize_t)len);
	free(b);
}

struct extract {
	int fd;
	struct tar_sparse_out out;
	uint64_t logical;
};

static int x_entry(const struct tar_entry *e, void *u)
{
	struct extract *x = u;

	assert_true(e->sparse);
	x->logical = e->sparse_size;
	/* The map outlives the entry in this test: copy it. */
	struct tar_sparse_segment *m = malloc(e->n_sparse * sizeof(*m) + 1);
	memcpy(m, e->sparse_map, e->n_sparse * sizeof(*m));
	tar_sparse_out_init(&x->out, x->fd, m, e->n_sparse);
	return 0;
}

static int x_data(const struct tar_entry *e, uint64_t off, const void *d, size_t len, void *u)
{
	struct extract *x = u;

	return tar_sparse_out_write(&x->out, d, len);
}

static void test_sparse_file_round_trip(void **state)
{
	const uint64_t logical = 16ULL << 20;
	struct tar_sparse_segment *map = NULL;
	struct buf a = BUF_INIT(0);
	struct tar_writer *w = NULL;
	struct tar_reader *r = NULL;
	uint64_t size = 0;
	size_t n = 0;
	struct stat st;
	int src = open_tmp("src.raw", O_RDWR | O_CREAT | O_TRUNC);

	assert_int_equal(ftruncate(src, (off_t)logical), 0);
	fill_at(src, 0, 4096, 'a');
	fill_at(src, 5 << 20, 8192, 'b');
	fill_at(src, 9 << 20, 100, 'c'); /* a partial block: the whole block becomes data */
	fill_at(src, logical - 4096, 4096, 'd');
	assert_int_equal(tar_sparse_scan(src, &map, &n, &size), 0);
	assert_int_equal(size, logical);
	assert_int_equal(n, 4);
	assert_int_equal(map[0].offset, 0);
	assert_int_equal(map[1].offset, 5 << 20);
	assert_int_equal(map[1].length, 8192);
	assert_int_equal(map[2].offset, 9 << 20);
	assert_int_equal(map[3].offset + map[3].length, logical);
	free(map);

	assert_int_equal(tar_writer_new(tar_sink_buf, &a, &w), 0);
	assert_int_equal(tar_writer_add_fd(w, "cow.raw", 0600, 0, src, true), 0);
	assert_int_equal(tar_writer_finish(w), 0);
	tar_writer_free(w);
	/* Only the data travels: the 16 MiB disk is a ~20 KiB archive. */
	assert_true(a.len < 64 * 1024);

	struct extract x = { .fd = open_tmp("dst.raw", O_RDWR | O_CREAT | O_TRUNC) };
	const struct tar_reader_ops ops = { .on_entry = x_entry, .on_data = x_data };
	assert_int_equal(tar_reader_new(&ops, &x, &r), 0);
	for (size_t off = 0; off < a.len; off += 1000)
		assert_true(tar_reader_feed(r, a.data + off, MIN((size_t)1000, a.len - off)) >= 0);
	assert_int_equal(tar_reader_finish(r), 0);
	tar_reader_free(r);
	assert_int_equal(tar_sparse_out_finish(&x.out, x.logical), 0);
	free((void *)x.out.map);

	assert_int_equal(fstat(x.fd, &st), 0);
	assert_int_equal(st.st_size, logical);
	assert_true(st.st_blocks * 512 < 1024 * 1024); /* holes preserved */
	char *p = malloc(logical), *q = malloc(logical);
	assert_int_equal(pread(src, p, logical, 0), (ssize_t)logical);
	assert_int_equal(pread(x.fd, q, logical, 0), (ssize_t)logical);
	assert_memory_equal(p, q, logical);
	free(p);
	free(q);

	/* Too much data for the map, and too little. */
	struct tar_sparse_segment one = { 4096, 10 };
	struct tar_sparse_out o;
	tar_sparse_out_init(&o, x.fd, &one, 1);
	assert_int_equal(tar_sparse_out_write(&o, "0123456789", 10), 0);
	assert_int_equal(tar_sparse_out_write(&o, "x", 1), -EFBIG);
	tar_sparse_out_init(&o, x.fd, &one, 1);
	assert_int_equal(tar_sparse_out_write(&o, "01234", 5), 0);
	assert_int_equal(tar_sparse_out_finish(&o, 8192), -ENODATA);
	close(x.fd);

	/* A file without holes travels as a plain entry; an all-hole one as an empty map. */
	int full = open_tmp("full", O_RDWR | O_CREAT | O_TRUNC);
	int holes = open_tmp("holes", O_RDWR | O_CREAT | O_TRUNC);
	struct collect c = { 0 };
	fill_at(full, 0, 10000, 'f');
	assert_int_equal(ftruncate(holes, 1 << 20), 0);
	buf_reset(&a);
	assert_int_equal(tar_writer_new(tar_sink_buf, &a, &w), 0);
	assert_int_equal(tar_writer_add_fd(w, "full", 0644, 0, full, true), 0);
	assert_int_equal(tar_writer_add_fd(w, "holes", 0644, 0, holes, true), 0);
	assert_int_equal(tar_writer_add_fd(w, "plain", 0644, 0, holes, false), 0);
	assert_int_equal(tar_writer_finish(w), 0);
	tar_writer_free(w);
	assert_int_equal(read_archive(a.data, a.len, 0, &c, NULL), 0);
	assert_int_equal(c.n, 3);
	assert_false(c.e[0].sparse);
	assert_int_equal(c.e[0].size, 10000);
	assert_true(c.e[1].sparse);
	assert_int_equal(c.e[1].size, 0);
	assert_int_equal(c.e[1].sparse_size, 1 << 20);
	assert_string_equal(c.e[1].map, "[]");
	assert_false(c.e[2].sparse);
	assert_int_equal(c.e[2].size, 1 << 20);
	collect_clear(&c);
	close(full);
	close(holes);
	close(src);
	buf_free(&a);
}

/* tar_sink_fd writes everything, even into a non-blocking pipe that fills up. */
static void test_sink_fd(void **state)
{
	struct tar_writer *w = NULL;
	int p[2];
	pid_t pid;
	char *data;

	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char b[4096];
		size_t total = 0;
		ssize_t k;

		close(p[1]);
		fcntl(p[0], F_SETFL, 0);
		usleep(50000);
		while ((k = read(p[0], b, sizeof b)) > 0)
			total += (size_t)k;
		_exit(total == 512 + 300000 + tar_padding(300000) + 1024 ? 0 : 1);
	}
	close(p[0]);
	data = calloc(1, 300000); /* after the fork: the child must not inherit it */
	assert_int_equal(tar_writer_new(tar_sink_fd, &p[1], &w), 0);
	assert_int_equal(tar_writer_add_data(w, "big", 0644, 0, data, 300000), 0);
	assert_int_equal(tar_writer_finish(w), 0);
	tar_writer_free(w);
	close(p[1]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_pax_records_and_long_names),
		cmocka_unit_test(test_size_beyond_8gib),
		cmocka_unit_test(test_sparse_records_round_trip),
		cmocka_unit_test(test_sparse_map_json),
		cmocka_unit_test(test_every_split_point),
		cmocka_unit_test(test_end_of_archive_and_truncation),
		cmocka_unit_test(test_bad_header_fields),
		cmocka_unit_test(test_pax_overrides),
		cmocka_unit_test(test_bad_pax_syntax),
		cmocka_unit_test(test_bad_pax_values),
		cmocka_unit_test(test_extended_header_placement),
		cmocka_unit_test(test_pax_caps),
		cmocka_unit_test(test_global_pax),
		cmocka_unit_test(test_gnu_extensions),
		cmocka_unit_test(test_zero_blocks),
		cmocka_unit_test(test_callback_abort),
		cmocka_unit_test(test_writer_errors),
		cmocka_unit_test(test_sparse_file_round_trip),
		cmocka_unit_test(test_sink_fd),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
