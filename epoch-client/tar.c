/* The tar reader and writer behind snapshot push and pull (net-epoch-runtime.md §2.6).
 *
 * The reader is a state machine over 512-byte blocks that never holds more than one
 * header and one extended header in memory: entry data is handed to the caller straight
 * from the input chunk, so a multi-GiB disk streams through in constant memory. It reads
 * POSIX ustar (IEEE 1003.1-2008 "pax" interchange format, with 'x'/'g' extended headers)
 * and the GNU variant (magic "ustar  ", 'L'/'K' long names, base-256 numbers), which is
 * what GNU tar, Python's tarfile and Go's archive/tar (cocoon) write. Anything it cannot
 * interpret exactly is an error naming the entry and the field, never a guess: a
 * misread header would shift every later entry and corrupt a VM disk silently.
 *
 * The writer emits what cocoon's Go side emits: ustar headers, preceded by a PAX 'x'
 * header only when a value does not fit ustar or COCOON.sparse.* records are needed. */
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cocoon/errmsg.h"
#include "tar.h"

/* ustar header layout (POSIX.1-2008, pax "ustar Interchange Format"). */
#define H_NAME     0
#define H_MODE     100
#define H_UID      108
#define H_GID      116
#define H_SIZE     124
#define H_MTIME    136
#define H_CHKSUM   148
#define H_TYPE     156
#define H_LINKNAME 157
#define H_MAGIC    257
#define H_VERSION  263
#define H_UNAME    265
#define H_GNAME    297
#define H_DEVMAJOR 329
#define H_DEVMINOR 337
#define H_PREFIX   345

#define NAME_FIELD   100
#define PREFIX_FIELD 155
#define UNAME_FIELD  32
/* Largest value of an 11-digit octal size/mtime field: 8 GiB - 1. */
#define OCTAL11_MAX 077777777777ULL
#define OCTAL7_MAX  07777777ULL

static const uint8_t zero_block[TAR_BLOCK_SIZE];

_Static_assert(TAR_NAME_MAX == 4096, "name_problem() spells the limit out");

size_t tar_padding(uint64_t size)
{
	return (size_t)((TAR_BLOCK_SIZE - size % TAR_BLOCK_SIZE) % TAR_BLOCK_SIZE);
}

const char *tar_entry_pax_get(const struct tar_entry *e, const char *key)
{
	for (size_t i = 0; e && i < e->n_pax; i++)
		if (streq(e->pax[i].key, key))
			return e->pax[i].value;
	return NULL;
}

/* Why a member name is unsafe or unusable, or NULL. Names are relative paths inside the
 * archive; an absolute name or a ".." component would let an archive write outside the
 * directory it is extracted into. */
static const char *name_problem(const char *name, size_t len)
{
	if (len == 0)
		return "empty";
	if (len > TAR_NAME_MAX)
		return "longer than 4096 bytes";
	if (memchr(name, 0, len))
		return "contains a NUL byte";
	if (name[0] == '/')
		return "absolute path";
	for (size_t i = 0; i < len;) {
		size_t j = i;

		while (j < len && name[j] != '/')
			j++;
		if (j - i == 2 && name[i] == '.' && name[i + 1] == '.')
			return "contains a \"..\" component";
		i = j + 1;
	}
	return NULL;
}

static void pax_records_free(struct tar_pax_record *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].key);
		free(v[i].value);
	}
	free(v);
}

/* ---- reader ---- */

enum reader_state {
	READ_HEADER, /* collecting a header block */
	READ_META,   /* collecting the data of an 'x', 'g', 'L' or 'K' header */
	READ_DATA,   /* passing entry data through */
	READ_PAD,    /* skipping padding to the block boundary */
	READ_DONE,   /* end-of-archive seen */
	READ_FAILED,
};

struct pax_list {
	struct tar_pax_record *v;
	size_t n;
};

struct tar_reader {
	struct tar_reader_ops ops;
	void *userdata;
	enum reader_state state;
	uint8_t hdr[TAR_BLOCK_SIZE];
	size_t hdr_fill;
	unsigned zero_blocks;
	uint64_t offset;     /* archive bytes consumed */
	uint64_t hdr_offset; /* where the current header started */
	uint64_t entries;
	uint64_t remaining; /* data or meta bytes still to come */
	uint64_t data_off;
	uint64_t pad;
	char meta_type;
	struct buf meta;
	struct pax_list global, local;
	bool have_local;
	char *long_name, *long_link;
	struct tar_entry entry;
	char *ctx_name;     /* best known name of the current entry, for messages */
	uint64_t ctx_index; /* and its number (1-based) */
	char *error;
	int error_code;
};

static void entry_clear(struct tar_entry *e)
{
	free(e->name);
	free(e->linkname);
	free(e->uname);
	free(e->gname);
	free(e->sparse_map);
	pax_records_free(e->pax, e->n_pax);
	*e = (struct tar_entry){ 0 };
}

int tar_reader_new(const struct tar_reader_ops *ops, void *userdata, struct tar_reader **ret)
{
	struct tar_reader *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	if (ops)
		r->ops = *ops;
	r->userdata = userdata;
	r->meta = BUF_INIT(TAR_PAX_HEADER_MAX);
	*ret = r;
	return 0;
}

void tar_reader_free(struct tar_reader *r)
{
	if (!r)
		return;
	entry_clear(&r->entry);
	buf_free(&r->meta);
	pax_records_free(r->global.v, r->global.n);
	pax_records_free(r->local.v, r->local.n);
	free(r->long_name);
	free(r->long_link);
	free(r->ctx_name);
	free(r->error);
	free(r);
}

const char *tar_reader_error(const struct tar_reader *r)
{
	return r->error;
}

uint64_t tar_reader_entries(const struct tar_reader *r)
{
	return r->entries;
}

uint64_t tar_reader_offset(const struct tar_reader *r)
{
	return r->offset;
}

/* A name as it can appear in a message: printable ASCII only, at most 128 bytes. */
static char *name_for_message(const char *s, size_t len)
{
	size_t n = MIN(len, (size_t)128);
	char *out = malloc(n + 4);

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	strcpy(out + n, len > n ? "..." : "");
	return out;
}

static void reader_set_ctx_name(struct tar_reader *r, const char *s, size_t len)
{
	free(r->ctx_name);
	r->ctx_name = name_for_message(s, len);
}

static void reader_vset_error(struct tar_reader *r, const char *fmt, va_list ap) _printf_(2, 0);
static void reader_vset_error(struct tar_reader *r, const char *fmt, va_list ap)
{
	char *msg = NULL;

	if (r->error || vasprintf(&msg, fmt, ap) < 0)
		return;
	if (r->ctx_name
		? asprintf(&r->error, "entry %" PRIu64 " \"%s\" (header at offset %" PRIu64 "): %s",
			   r->ctx_index, r->ctx_name, r->hdr_offset, msg) < 0
		: asprintf(&r->error, "offset %" PRIu64 ": %s", r->offset, msg) < 0)
		r->error = NULL;
	free(msg);
}

void tar_reader_set_error(struct tar_reader *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reader_vset_error(r, fmt, ap);
	va_end(ap);
}

static int reader_fail(struct tar_reader *r, int code, const char *fmt, ...) _printf_(3, 4);
static int reader_fail(struct tar_reader *r, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reader_vset_error(r, fmt, ap);
	va_end(ap);
	r->state = READ_FAILED;
	r->error_code = code;
	return code;
}

/* A callback said no: keep its message if it gave one. */
static int reader_callback_failed(struct tar_reader *r, int code, const char *what)
{
	return reader_fail(r, code, "%s callback failed: %s", what, strerror(-code));
}

/* A numeric header field: octal digits (leading spaces allowed, then a space or NUL and
 * only spaces/NULs after them; an all-NUL field is 0) or GNU base-256 (first byte 0x80
 * for positive, 0xff for negative two's complement). NULL on success, else why not. */
static const char *parse_numeric(const uint8_t *f, size_t len, bool allow_negative, int64_t *ret)
{
	uint64_t v = 0;
	size_t i = 0;

	if (f[0] == 0x80 || f[0] == 0xff) {
		bool neg = f[0] == 0xff;

		if (neg && !allow_negative)
			return "negative base-256 number";
		for (i = 0; i + 8 < len; i++) {
			uint8_t want = neg ? 0xff : (i == 0 ? 0x80 : 0);

			if (f[i] != want)
				return "base-256 number out of range";
		}
		for (; i < len; i++)
			v = (v << 8) | (i == 0 && !neg ? (f[i] & 0x7f) : f[i]);
		if (neg ? (v >> 63) == 0 : v > INT64_MAX)
			return "base-256 number out of range";
		*ret = (int64_t)v;
		return NULL;
	}
	while (i < len && f[i] == ' ')
		i++;
	if (i < len && f[i] == 0) {
		for (size_t j = i; j < len; j++)
			if (f[j] != 0 && f[j] != ' ')
				return "invalid octal number";
		*ret = 0;
		return NULL;
	}
	size_t start = i;
	for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v > (uint64_t)INT64_MAX >> 3)
			return "octal number out of range";
		v = v << 3 | (uint64_t)(f[i] - '0');
	}
	if (i == start)
		return "invalid octal number";
	for (; i < len; i++)
		if (f[i] != ' ' && f[i] != 0)
			return "invalid octal number";
	*ret = (int64_t)v;
	return NULL;
}

/* POSIX: the checksum is the sum of the header bytes as unsigned chars with the checksum
 * field taken as spaces. Historic tars summed signed chars; accept both as GNU tar does. */
static bool checksum_ok(const uint8_t *h, int64_t stored, int64_t *ret_computed)
{
	int64_t u = 0, s = 0;

	for (size_t i = 0; i < TAR_BLOCK_SIZE; i++) {
		uint8_t c = (i >= H_CHKSUM && i < H_CHKSUM + 8) ? ' ' : h[i];

		u += c;
		s += (int8_t)c;
	}
	*ret_computed = u;
	return stored == u || stored == s;
}

static int pax_list_set(struct pax_list *l, const char *key, const char *value, size_t vlen)
{
	_cleanup_(freep) char *v = malloc(vlen + 1);

	if (!v)
		return -ENOMEM;
	memcpy(v, value, vlen);
	v[vlen] = 0;
	for (size_t i = 0; i < l->n; i++)
		if (streq(l->v[i].key, key)) {
			free(l->v[i].value);
			l->v[i].value = TAKE_PTR(v);
			l->v[i].value_len = vlen;
			return 0;
		}
	_cleanup_(freep) char *k = strdup(key);
	if (!k)
		return -ENOMEM;
	struct tar_pax_record *nv = reallocarray(l->v, l->n + 1, sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	l->v = nv;
	l->v[l->n++] = (struct tar_pax_record){ TAKE_PTR(k), TAKE_PTR(v), vlen };
	return 0;
}

static void pax_list_del(struct pax_list *l, const char *key)
{
	for (size_t i = 0; i < l->n; i++)
		if (streq(l->v[i].key, key)) {
			free(l->v[i].key);
			free(l->v[i].value);
			memmove(l->v + i, l->v + i + 1, (l->n - i - 1) * sizeof(*l->v));
			l->n--;
			return;
		}
}

/* "<length> <key>=<value>\n" records (pax "extended header" format). An empty value is
 * kept: it means "unset" and is applied when the headers are merged. */
static int reader_parse_pax(struct tar_reader *r, const char *d, size_t len, struct pax_list *out)
{
	size_t pos = 0, count = 0;

	while (pos < len) {
		size_t rec_len = 0, i = pos;
		int k;

		count++;
		if (count > TAR_PAX_RECORDS_MAX)
			return reader_fail(r, -E2BIG, "PAX header: more than %d records",
					   TAR_PAX_RECORDS_MAX);
		for (; i < len && d[i] >= '0' && d[i] <= '9' && i - pos < 8; i++)
			rec_len = rec_len * 10 + (size_t)(d[i] - '0');
		if (i == pos || i >= len || d[i] != ' ')
			return reader_fail(r, -EBADMSG, "PAX record %zu: invalid length", count);
		if (rec_len > len - pos || rec_len < i - pos + 4)
			return reader_fail(r, -EBADMSG,
					   "PAX record %zu: length %zu does not fit the header",
					   count, rec_len);
		const char *key = d + i + 1, *end = d + pos + rec_len - 1;
		if (*end != '\n')
			return reader_fail(r, -EBADMSG, "PAX record %zu: missing newline", count);
		const char *eq = memchr(key, '=', (size_t)(end - key));
		if (!eq || eq == key || memchr(key, 0, (size_t)(eq - key)))
			return reader_fail(r, -EBADMSG, "PAX record %zu: invalid key", count);
		_cleanup_(freep) char *kz = strndup(key, (size_t)(eq - key));
		if (!kz)
			return reader_fail(r, -ENOMEM, "out of memory");
		k = pax_list_set(out, kz, eq + 1, (size_t)(end - eq - 1));
		if (k < 0)
			return reader_fail(r, k, "out of memory");
		pos += rec_len;
	}
	return 0;
}

static int reader_end_meta(struct tar_reader *r)
{
	const char *d = r->meta.data ? r->meta.data : "";
	size_t len = r->meta.len;
	struct pax_list g = { 0 };
	int k;

	switch (r->meta_type) {
	case 'x':
		if (r->have_local)
			return reader_fail(r, -EBADMSG, "two PAX headers for one entry");
		r->have_local = true;
		return reader_parse_pax(r, d, len, &r->local);
	case 'g':
		k = reader_parse_pax(r, d, len, &g);
		for (size_t i = 0; k >= 0 && i < g.n; i++) {
			if (g.v[i].value_len == 0)
				pax_list_del(&r->global, g.v[i].key);
			else if (pax_list_set(&r->global, g.v[i].key, g.v[i].value,
					      g.v[i].value_len) < 0)
				k = reader_fail(r, -ENOMEM, "out of memory");
		}
		pax_records_free(g.v, g.n);
		return k;
	default: {
		/* GNU long name/link: the name, NUL-terminated, possibly padded with NULs. */
		char **dst = r->meta_type == 'L' ? &r->long_name : &r->long_link;
		size_t n = strnlen(d, len);

		if (*dst)
			return reader_fail(r, -EBADMSG, "two GNU long %s headers for one entry",
					   r->meta_type == 'L' ? "name" : "link");
		for (size_t i = n; i < len; i++)
			if (d[i] != 0)
				return reader_fail(r, -EBADMSG, "GNU long %s: contains a NUL byte",
						   r->meta_type == 'L' ? "name" : "link");
		*dst = strndup(d, n);
		return *dst ? 0 : reader_fail(r, -ENOMEM, "out of memory");
	}
	}
}

static const char *parse_decimal(const char *s, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;

	if (!*s)
		return "empty number";
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return "not a decimal number";
		if (v > (max - (uint64_t)(*s - '0')) / 10)
			return "number out of range";
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*ret = v;
	return NULL;
}

/* pax mtime: an optional '-', decimal seconds, an optional fraction (dropped). */
static const char *parse_pax_time(const char *s, int64_t *ret)
{
	bool neg = *s == '-';
	_cleanup_(freep) char *whole = strndup(s + neg, strcspn(s + neg, "."));
	const char *frac = strchr(s, '.');
	uint64_t v;
	const char *why;

	if (!whole)
		return "out of memory";
	why = parse_decimal(whole, INT64_MAX, &v);
	if (why)
		return why;
	if (frac && (!frac[1] || strspn(frac + 1, "0123456789") != strlen(frac + 1)))
		return "invalid fraction";
	*ret = neg ? -(int64_t)v : (int64_t)v;
	return NULL;
}

static int take_string(char **dst, const char *s)
{
	char *c = strdup(s);

	if (!c)
		return -ENOMEM;
	free(*dst);
	*dst = c;
	return 0;
}

/* The COCOON.sparse.* pair: both or neither, on a regular file, with the map's packed
 * size equal to the entry's data size. */
static int reader_apply_sparse(struct tar_reader *r, struct tar_entry *e)
{
	const char *map = tar_entry_pax_get(e, TAR_PAX_SPARSE_MAP);
	const char *size = tar_entry_pax_get(e, TAR_PAX_SPARSE_SIZE);
	_cleanup_(freep) char *why = NULL;
	const char *w;
	uint64_t packed;
	int k;

	if (!map && !size)
		return 0;
	if (!map || !size)
		return reader_fail(r, -EBADMSG, "%s without %s",
				   map ? TAR_PAX_SPARSE_MAP : TAR_PAX_SPARSE_SIZE,
				   map ? TAR_PAX_SPARSE_SIZE : TAR_PAX_SPARSE_MAP);
	if (e->type != TAR_TYPE_REGULAR)
		return reader_fail(r, -EBADMSG, "sparse records on a non-regular entry");
	w = parse_decimal(size, INT64_MAX, &e->sparse_size);
	if (w)
		return reader_fail(r, -EBADMSG, "%s: %s", TAR_PAX_SPARSE_SIZE, w);
	k = tar_sparse_map_parse(map, strlen(map), e->sparse_size, &e->sparse_map, &e->n_sparse,
				 &why);
	if (k < 0)
		return reader_fail(r, k, "%s: %s", TAR_PAX_SPARSE_MAP, why ? why : strerror(-k));
	packed = tar_sparse_packed_size(e->sparse_map, e->n_sparse);
	if (packed != e->size)
		return reader_fail(r, -EBADMSG,
				   "%s: segments hold %" PRIu64 " bytes but the entry has %" PRIu64,
				   TAR_PAX_SPARSE_MAP, packed, e->size);
	e->sparse = true;
	return 0;
}

/* Apply the merged PAX records to e; they override the ustar fields. */
static int reader_apply_pax(struct tar_reader *r, struct tar_entry *e)
{
	for (size_t i = 0; i < e->n_pax; i++) {
		const struct tar_pax_record *p = &e->pax[i];
		const char *why = NULL;
		uint64_t u;
		int k = 0;

		if (strncmp(p->key, "GNU.sparse.", 11) == 0)
			return reader_fail(r, -EBADMSG,
					   "PAX record \"%s\": GNU sparse archives "
					   "are not supported",
					   p->key);
		bool sparse_key =
		    streq(p->key, TAR_PAX_SPARSE_MAP) || streq(p->key, TAR_PAX_SPARSE_SIZE);

		if (!sparse_key && !streq(p->key, "path") && !streq(p->key, "linkpath") &&
		    !streq(p->key, "size") && !streq(p->key, "mtime") && !streq(p->key, "uid") &&
		    !streq(p->key, "gid") && !streq(p->key, "uname") && !streq(p->key, "gname"))
			continue;
		if (strlen(p->value) != p->value_len)
			why = "contains a NUL byte";
		else if (sparse_key)
			continue; /* reader_apply_sparse() takes the pair */
		else if (streq(p->key, "path"))
			k = take_string(&e->name, p->value);
		else if (streq(p->key, "linkpath"))
			k = take_string(&e->linkname, p->value);
		else if (streq(p->key, "uname"))
			k = take_string(&e->uname, p->value);
		else if (streq(p->key, "gname"))
			k = take_string(&e->gname, p->value);
		else if (streq(p->key, "size"))
			why = parse_decimal(p->value, INT64_MAX, &e->size);
		else if (streq(p->key, "mtime"))
			why = parse_pax_time(p->value, &e->mtime);
		else if (!(why = parse_decimal(p->value, INT64_MAX, &u)))
			*(streq(p->key, "uid") ? &e->uid : &e->gid) = u;
		if (k < 0)
			return reader_fail(r, k, "out of memory");
		if (why)
			return reader_fail(r, -EBADMSG, "PAX record \"%s\": %s", p->key, why);
	}
	return reader_apply_sparse(r, e);
}

/* 'g' records, then the 'x' ones on top ('x' with an empty value unsets). */
static int reader_merge_pax(struct tar_reader *r, struct tar_entry *e)
{
	struct pax_list m = { 0 };

	for (size_t i = 0; i < r->global.n; i++)
		if (pax_list_set(&m, r->global.v[i].key, r->global.v[i].value,
				 r->global.v[i].value_len) < 0)
			goto oom;
	for (size_t i = 0; i < r->local.n; i++) {
		if (r->local.v[i].value_len == 0)
			pax_list_del(&m, r->local.v[i].key);
		else if (pax_list_set(&m, r->local.v[i].key, r->local.v[i].value,
				      r->local.v[i].value_len) < 0)
			goto oom;
	}
	e->pax = m.v;
	e->n_pax = m.n;
	return 0;
oom:
	pax_records_free(m.v, m.n);
	return reader_fail(r, -ENOMEM, "out of memory");
}

static char *field_string(const uint8_t *f, size_t len)
{
	return strndup((const char *)f, strnlen((const char *)f, len));
}

/* The names and strings of a real entry's ustar header, GNU long names over them. */
static int reader_entry_strings(struct tar_reader *r, struct tar_entry *e, bool posix)
{
	const uint8_t *h = r->hdr;

	if (r->long_name)
		e->name = TAKE_PTR(r->long_name);
	else if (posix && h[H_PREFIX]) {
		_cleanup_(freep) char *p = field_string(h + H_PREFIX, PREFIX_FIELD);
		_cleanup_(freep) char *n = field_string(h + H_NAME, NAME_FIELD);

		if (!p || !n || asprintf(&e->name, "%s/%s", p, n) < 0)
			e->name = NULL;
	} else
		e->name = field_string(h + H_NAME, NAME_FIELD);
	if (r->long_link)
		e->linkname = TAKE_PTR(r->long_link);
	else if (h[H_LINKNAME])
		e->linkname = field_string(h + H_LINKNAME, NAME_FIELD);
	if (h[H_UNAME])
		e->uname = field_string(h + H_UNAME, UNAME_FIELD);
	if (h[H_GNAME])
		e->gname = field_string(h + H_GNAME, UNAME_FIELD);
	if (!e->name || (h[H_LINKNAME] && !e->linkname) || (h[H_UNAME] && !e->uname) ||
	    (h[H_GNAME] && !e->gname))
		return reader_fail(r, -ENOMEM, "out of memory");
	return 0;
}

static const char *type_name(enum tar_type t)
{
	static const char *const names[] = { "regular file",  "hard link",
					     "symbolic link", "character device",
					     "block device",  "directory",
					     "FIFO" };
	return names[t - TAR_TYPE_REGULAR];
}

static int reader_check_entry(struct tar_reader *r, struct tar_entry *e)
{
	const char *why;

	reader_set_ctx_name(r, e->name, strlen(e->name));
	why = name_problem(e->name, strlen(e->name));
	if (why)
		return reader_fail(r, -EBADMSG, "name: %s", why);
	if (e->type == TAR_TYPE_HARDLINK || e->type == TAR_TYPE_SYMLINK) {
		if (isempty(e->linkname))
			return reader_fail(r, -EBADMSG, "linkname: empty for a %s",
					   type_name(e->type));
		if (strlen(e->linkname) > TAR_NAME_MAX)
			return reader_fail(r, -EBADMSG, "linkname: longer than %d bytes",
					   TAR_NAME_MAX);
		/* A hard link names another member, so it obeys the member-name rules. */
		why = e->type == TAR_TYPE_HARDLINK ? name_problem(e->linkname, strlen(e->linkname))
						   : NULL;
		if (why)
			return reader_fail(r, -EBADMSG, "linkname: %s", why);
	}
	if (e->type != TAR_TYPE_REGULAR && e->size != 0)
		return reader_fail(r, -EBADMSG, "size: %" PRIu64 " but a %s has no data", e->size,
				   type_name(e->type));
	return 0;
}

/* A header block of a real entry: build it, tell the caller, set up its data. */
static int reader_begin_entry(struct tar_reader *r, enum tar_type type, bool posix, int64_t mode,
			      int64_t uid, int64_t gid, int64_t size, int64_t mtime)
{
	struct tar_entry *e = &r->entry;
	int k;

	*e = (struct tar_entry){ .type = type,
				 .mode = (uint32_t)mode & 07777,
				 .uid = (uint64_t)uid,
				 .gid = (uint64_t)gid,
				 .size = (uint64_t)size,
				 .mtime = mtime };
	r->entries++;
	k = reader_entry_strings(r, e, posix);
	if (k >= 0)
		k = reader_merge_pax(r, e);
	if (k >= 0) {
		const char *path = tar_entry_pax_get(e, "path");

		reader_set_ctx_name(r, path ? path : e->name, strlen(path ? path : e->name));
		k = reader_apply_pax(r, e);
	}
	if (k >= 0)
		k = reader_check_entry(r, e);
	if (k < 0)
		return k;
	pax_records_free(r->local.v, r->local.n);
	r->local = (struct pax_list){ 0 };
	r->have_local = false;
	if (r->ops.on_entry && (k = r->ops.on_entry(e, r->userdata)) < 0)
		return reader_callback_failed(r, k, "entry");
	r->remaining = e->size;
	r->data_off = 0;
	r->state = READ_DATA;
	return 0;
}

static int reader_end_entry(struct tar_reader *r)
{
	int k;

	if (r->ops.on_entry_end && (k = r->ops.on_entry_end(&r->entry, r->userdata)) < 0)
		return reader_callback_failed(r, k, "entry end");
	r->pad = tar_padding(r->entry.size);
	entry_clear(&r->entry);
	r->state = r->pad ? READ_PAD : READ_HEADER;
	return 0;
}

static bool block_is_zero(const uint8_t *b)
{
	return memcmp(b, zero_block, TAR_BLOCK_SIZE) == 0;
}

static int reader_zero_block(struct tar_reader *r)
{
	if (r->have_local || r->long_name || r->long_link)
		return reader_fail(r, -EBADMSG, "extended header not followed by an entry");
	if (++r->zero_blocks < 2)
		return 0;
	r->state = READ_DONE;
	return 1;
}

static int reader_numeric(struct tar_reader *r, size_t off, size_t len, bool neg, const char *field,
			  int64_t *ret)
{
	const char *why = parse_numeric(r->hdr + off, len, neg, ret);

	return why ? reader_fail(r, -EBADMSG, "%s: %s", field, why) : 0;
}

static int reader_on_header(struct tar_reader *r)
{
	const uint8_t *h = r->hdr;
	int64_t chk, computed, mode, uid, gid, size, mtime;
	bool posix, gnu;
	char t = (char)h[H_TYPE];
	int k;

	r->hdr_offset = r->offset - TAR_BLOCK_SIZE;
	if (block_is_zero(h))
		return reader_zero_block(r);
	if (r->zero_blocks)
		return reader_fail(r, -EBADMSG, "a lone zero block before a header");
	reader_set_ctx_name(r, (const char *)h, strnlen((const char *)h, NAME_FIELD));
	r->ctx_index = r->entries + 1;
	if (reader_numeric(r, H_CHKSUM, 8, false, "header checksum", &chk) < 0)
		return r->error_code;
	if (!checksum_ok(h, chk, &computed))
		return reader_fail(r, -EBADMSG,
				   "header checksum mismatch (stored %" PRIo64 ", computed %" PRIo64
				   ")",
				   chk, computed);
	posix = memcmp(h + H_MAGIC,
		       "ustar\0"
		       "00",
		       8) == 0;
	gnu = memcmp(h + H_MAGIC, "ustar  \0", 8) == 0;
	if (!posix && !gnu)
		return reader_fail(r, -EBADMSG, "magic: not a ustar header");
	if (reader_numeric(r, H_MODE, 8, false, "mode", &mode) < 0 ||
	    reader_numeric(r, H_UID, 8, false, "uid", &uid) < 0 ||
	    reader_numeric(r, H_GID, 8, false, "gid", &gid) < 0 ||
	    reader_numeric(r, H_SIZE, 12, false, "size", &size) < 0 ||
	    reader_numeric(r, H_MTIME, 12, true, "mtime", &mtime) < 0 ||
	    reader_numeric(r, H_DEVMAJOR, 8, false, "devmajor", &(int64_t){ 0 }) < 0 ||
	    reader_numeric(r, H_DEVMINOR, 8, false, "devminor", &(int64_t){ 0 }) < 0)
		return r->error_code;

	switch (t) {
	case 'x':
	case 'g':
	case 'L':
	case 'K': {
		uint64_t cap = (t == 'x' || t == 'g') ? TAR_PAX_HEADER_MAX : TAR_NAME_MAX + 1;

		if ((uint64_t)size > cap)
			return reader_fail(
			    r, -E2BIG, "%s header of %" PRId64 " bytes exceeds the cap of %" PRIu64,
			    t == 'x' || t == 'g' ? "PAX" : "GNU long name", size, cap);
		buf_reset(&r->meta);
		r->meta_type = t;
		r->remaining = (uint64_t)size;
		r->pad = tar_padding((uint64_t)size);
		r->state = READ_META;
		if (size == 0 && (k = reader_end_meta(r)) < 0)
			return k;
		if (size == 0)
			r->state = r->pad ? READ_PAD : READ_HEADER;
		return 0;
	}
	case '\0':
	case '7':
		t = TAR_TYPE_REGULAR;
		break;
	case 'S':
		return reader_fail(r, -EBADMSG, "type 'S': GNU sparse entries are not supported");
	default:
		if ((t < TAR_TYPE_REGULAR || t > TAR_TYPE_FIFO) && t > 0x20 && t < 0x7f)
			return reader_fail(r, -EBADMSG, "type '%c': not supported", t);
		if (t < TAR_TYPE_REGULAR || t > TAR_TYPE_FIFO)
			return reader_fail(r, -EBADMSG, "type 0x%02x: not supported",
					   (unsigned char)t);
	}
	return reader_begin_entry(r, (enum tar_type)t, posix, mode, uid, gid, size, mtime);
}

static int reader_step_data(struct tar_reader *r, const uint8_t *p, size_t n)
{
	int k;

	if (r->ops.on_data && (k = r->ops.on_data(&r->entry, r->data_off, p, n, r->userdata)) < 0)
		return reader_callback_failed(r, k, "data");
	r->data_off += n;
	r->remaining -= n;
	return 0;
}

/* One step of the state machine; returns the bytes used, or < 0. */
static ssize_t reader_step(struct tar_reader *r, const uint8_t *p, size_t len)
{
	size_t n;
	int k;

	switch (r->state) {
	case READ_HEADER:
		n = MIN(len, TAR_BLOCK_SIZE - r->hdr_fill);
		memcpy(r->hdr + r->hdr_fill, p, n);
		r->hdr_fill += n;
		r->offset += n;
		if (r->hdr_fill < TAR_BLOCK_SIZE)
			return (ssize_t)n;
		r->hdr_fill = 0;
		k = reader_on_header(r);
		if (k >= 0 && r->state == READ_DATA && r->remaining == 0)
			k = reader_end_entry(r);
		return k < 0 ? k : (ssize_t)n;
	case READ_META:
		n = (size_t)MIN((uint64_t)len, r->remaining);
		if ((k = buf_append(&r->meta, p, n)) < 0)
			return reader_fail(r, k, "out of memory");
		r->offset += n;
		r->remaining -= n;
		if (r->remaining == 0 && (k = reader_end_meta(r)) < 0)
			return k;
		if (r->remaining == 0)
			r->state = r->pad ? READ_PAD : READ_HEADER;
		return (ssize_t)n;
	case READ_DATA:
		n = (size_t)MIN((uint64_t)len, r->remaining);
		r->offset += n;
		if ((k = reader_step_data(r, p, n)) < 0)
			return k;
		if (r->remaining == 0 && (k = reader_end_entry(r)) < 0)
			return k;
		return (ssize_t)n;
	case READ_PAD:
		n = (size_t)MIN((uint64_t)len, r->pad);
		r->offset += n;
		r->pad -= n;
		if (r->pad == 0)
			r->state = READ_HEADER;
		return (ssize_t)n;
	default:
		return (ssize_t)len;
	}
}

int tar_reader_feed(struct tar_reader *r, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len > 0 && r->state != READ_FAILED && r->state != READ_DONE) {
		ssize_t n = reader_step(r, p, len);

		if (n < 0)
			return (int)n;
		p += n;
		len -= (size_t)n;
	}
	if (r->state == READ_FAILED)
		return r->error_code;
	return r->state == READ_DONE ? 1 : 0;
}

int tar_reader_finish(struct tar_reader *r)
{
	switch (r->state) {
	case READ_DONE:
		return 0;
	case READ_FAILED:
		return r->error_code;
	case READ_DATA:
		return reader_fail(r, -ENODATA,
				   "truncated: %" PRIu64 " of %" PRIu64 " data bytes missing",
				   r->remaining, r->entry.size);
	case READ_META:
		return reader_fail(r, -ENODATA, "truncated inside an extended header");
	case READ_PAD:
		return reader_fail(r, -ENODATA, "truncated inside the padding after the data");
	default:
		if (r->hdr_fill)
			return reader_fail(r, -ENODATA, "truncated header (%zu of 512 bytes)",
					   r->hdr_fill);
		free(r->ctx_name);
		r->ctx_name = NULL;
		return reader_fail(r, -ENODATA, "truncated: the end-of-archive marker is missing");
	}
}

/* ---- writer ---- */

struct tar_writer {
	tar_sink_fn sink;
	void *userdata;
	uint64_t offset;
	bool open;
	uint64_t remaining, size;
	int error; /* sticky: a failed sink leaves the archive unusable */
};

int tar_sink_fd(const void *data, size_t len, void *userdata)
{
	int fd = *(int *)userdata;
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (poll(&(struct pollfd){ .fd = fd, .events = POLLOUT }, 1, -1) < 0 &&
			    errno != EINTR)
				return -errno;
			continue;
		}
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int tar_sink_buf(const void *data, size_t len, void *userdata)
{
	return buf_append(userdata, data, len);
}

static void put_octal(uint8_t *f, size_t len, uint64_t v)
{
	char tmp[32];

	snprintf(tmp, sizeof(tmp), "%0*" PRIo64, (int)len - 1, v);
	memcpy(f, tmp, len);
}

static void put_string(uint8_t *f, size_t len, const char *s)
{
	if (s)
		memcpy(f, s, MIN(strlen(s), len));
}

static void put_checksum(uint8_t *h)
{
	uint64_t sum = 0;

	memset(h + H_CHKSUM, ' ', 8);
	for (size_t i = 0; i < TAR_BLOCK_SIZE; i++)
		sum += h[i];
	snprintf((char *)h + H_CHKSUM, 8, "%06" PRIo64, sum);
	h[H_CHKSUM + 7] = ' ';
}

static void header_init(uint8_t *h, char type, uint32_t mode, int64_t mtime)
{
	memset(h, 0, TAR_BLOCK_SIZE);
	put_octal(h + H_MODE, 8, mode & 07777);
	put_octal(h + H_UID, 8, 0);
	put_octal(h + H_GID, 8, 0);
	put_octal(h + H_MTIME, 12,
		  mtime >= 0 && (uint64_t)mtime <= OCTAL11_MAX ? (uint64_t)mtime : 0);
	h[H_TYPE] = (uint8_t)type;
	memcpy(h + H_MAGIC,
	       "ustar\0"
	       "00",
	       8);
	put_octal(h + H_DEVMAJOR, 8, 0);
	put_octal(h + H_DEVMINOR, 8, 0);
}

static int pax_append(struct buf *b, const char *key, const char *value, size_t vlen)
{
	/* The length counts its own digits: grow the guess until it is self-consistent. */
	size_t base = strlen(key) + vlen + 3, len = base + 1;
	char digits[24];
	int k;

	while ((size_t)snprintf(digits, sizeof(digits), "%zu", len) + base != len)
		len = strlen(digits) + base;
	k = buf_printf(b, "%zu %s=", len, key);
	if (k >= 0)
		k = buf_append(b, value, vlen);
	if (k >= 0)
		k = buf_append(b, "\n", 1);
	return k;
}

static int pax_append_u64(struct buf *b, const char *key, uint64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "%" PRIu64, v);
	return pax_append(b, key, s, strlen(s));
}

static bool key_is_derived(const char *k)
{
	static const char *const keys[] = { "path",
					    "linkpath",
					    "size",
					    "mtime",
					    "uid",
					    "gid",
					    "uname",
					    "gname",
					    TAR_PAX_SPARSE_MAP,
					    TAR_PAX_SPARSE_SIZE };

	for (size_t i = 0; i < ELEMENTSOF(keys); i++)
		if (streq(k, keys[i]))
			return true;
	return false;
}

static int entry_check(const struct tar_entry *e, char **ret_error)
{
	const char *why = e->name ? name_problem(e->name, strlen(e->name)) : "missing";

	if (why)
		return errmsg_set(ret_error, EINVAL, "name: %s", why);
	if (e->type < TAR_TYPE_REGULAR || e->type > TAR_TYPE_FIFO)
		return errmsg_set(ret_error, EINVAL, "%s: unknown type %d", e->name, e->type);
	if (e->type != TAR_TYPE_REGULAR && e->size)
		return errmsg_set(ret_error, EINVAL, "%s: a %s has no data", e->name, type_name(e->type));
	if ((e->type == TAR_TYPE_HARDLINK || e->type == TAR_TYPE_SYMLINK) &&
	    (isempty(e->linkname) || strlen(e->linkname) > TAR_NAME_MAX))
		return errmsg_set(ret_error, EINVAL, "%s: invalid link target", e->name);
	if (e->size > INT64_MAX)
		return errmsg_set(ret_error, EINVAL, "%s: size too large", e->name);
	for (size_t i = 0; i < e->n_pax; i++)
		if (isempty(e->pax[i].key) || strchr(e->pax[i].key, '=') ||
		    key_is_derived(e->pax[i].key))
			return errmsg_set(ret_error, EINVAL, "%s: PAX record key \"%s\" not allowed",
					 e->name, e->pax[i].key ? e->pax[i].key : "");
	if (!e->sparse)
		return 0;
	if (e->type != TAR_TYPE_REGULAR)
		return errmsg_set(ret_error, EINVAL, "%s: sparse but not a regular file", e->name);
	_cleanup_(freep) char *err = NULL;
	if (tar_sparse_map_check(e->sparse_map, e->n_sparse, e->sparse_size, &err) < 0)
		return errmsg_set(ret_error, EINVAL, "%s: sparse map: %s", e->name, err ? err : "invalid");
	if (tar_sparse_packed_size(e->sparse_map, e->n_sparse) != e->size)
		return errmsg_set(
		    ret_error, EINVAL, "%s: sparse map holds %" PRIu64 " bytes, size is %" PRIu64, e->name,
		    tar_sparse_packed_size(e->sparse_map, e->n_sparse), e->size);
	return 0;
}

/* The ustar name/prefix split, if the name fits: prefix ≤ 155 bytes, a '/', name ≤ 100. */
static bool split_name(const char *name, size_t len, size_t *ret_slash)
{
	if (len <= NAME_FIELD) {
		*ret_slash = SIZE_MAX;
		return true;
	}
	if (len > PREFIX_FIELD + 1 + NAME_FIELD)
		return false;
	for (size_t i = MIN(len - 1, (size_t)PREFIX_FIELD); i > 0; i--)
		if (name[i] == '/') {
			if (len - i - 1 == 0 || len - i - 1 > NAME_FIELD)
				return false;
			*ret_slash = i;
			return true;
		}
	return false;
}

/* The PAX records e needs, into recs. */
static int header_records(const struct tar_entry *e, bool name_fits, struct buf *recs)
{
	bool link = e->type == TAR_TYPE_HARDLINK || e->type == TAR_TYPE_SYMLINK;
	int k = 0;

	if (!name_fits)
		k = pax_append(recs, "path", e->name, strlen(e->name));
	if (k >= 0 && link && strlen(e->linkname) > NAME_FIELD)
		k = pax_append(recs, "linkpath", e->linkname, strlen(e->linkname));
	if (k >= 0 && e->size > OCTAL11_MAX)
		k = pax_append_u64(recs, "size", e->size);
	if (k >= 0 && (e->mtime < 0 || (uint64_t)e->mtime > OCTAL11_MAX)) {
		char s[24];

		snprintf(s, sizeof(s), "%" PRId64, e->mtime);
		k = pax_append(recs, "mtime", s, strlen(s));
	}
	if (k >= 0 && e->uid > OCTAL7_MAX)
		k = pax_append_u64(recs, "uid", e->uid);
	if (k >= 0 && e->gid > OCTAL7_MAX)
		k = pax_append_u64(recs, "gid", e->gid);
	if (k >= 0 && e->uname && strlen(e->uname) > UNAME_FIELD)
		k = pax_append(recs, "uname", e->uname, strlen(e->uname));
	if (k >= 0 && e->gname && strlen(e->gname) > UNAME_FIELD)
		k = pax_append(recs, "gname", e->gname, strlen(e->gname));
	if (k >= 0 && e->sparse) {
		_cleanup_(freep) char *map = NULL;

		k = tar_sparse_map_format(e->sparse_map, e->n_sparse, &map);
		if (k >= 0)
			k = pax_append(recs, TAR_PAX_SPARSE_MAP, map, strlen(map));
		if (k >= 0)
			k = pax_append_u64(recs, TAR_PAX_SPARSE_SIZE, e->sparse_size);
	}
	for (size_t i = 0; k >= 0 && i < e->n_pax; i++)
		k = pax_append(recs, e->pax[i].key, e->pax[i].value,
			       e->pax[i].value ? e->pax[i].value_len : 0);
	return k;
}

/* The 'x' header block announcing recs_len bytes of records for e. */
static void pax_header_block(uint8_t *h, const struct tar_entry *e, size_t recs_len)
{
	const char *base = strrchr(e->name, '/');
	char name[NAME_FIELD + 1];

	base = base && base[1] ? base + 1 : e->name;
	snprintf(name, sizeof(name), "PaxHeaders/%s", base);
	header_init(h, 'x', 0644, e->mtime);
	put_string(h + H_NAME, NAME_FIELD, name);
	put_octal(h + H_SIZE, 12, recs_len);
	put_checksum(h);
}

int tar_header_format(const struct tar_entry *e, struct buf *out, char **ret_error)
{
	_cleanup_(buf_free) struct buf recs = BUF_INIT(TAR_PAX_HEADER_MAX);
	uint8_t h[TAR_BLOCK_SIZE];
	size_t len, slash = SIZE_MAX;
	bool fits;
	int k;

	k = entry_check(e, ret_error);
	if (k < 0)
		return k;
	len = strlen(e->name);
	fits = split_name(e->name, len, &slash);
	k = header_records(e, fits, &recs);
	if (k == -E2BIG)
		errmsg_set(ret_error, EINVAL, "%s: PAX header larger than %d bytes", e->name,
			  TAR_PAX_HEADER_MAX);
	if (k < 0)
		return k;
	if (recs.len > 0) {
		pax_header_block(h, e, recs.len);
		if ((k = buf_append(out, h, sizeof(h))) < 0 ||
		    (k = buf_append(out, recs.data, recs.len)) < 0 ||
		    (k = buf_append(out, zero_block, tar_padding(recs.len))) < 0)
			return k;
	}
	header_init(h, (char)e->type, e->mode, e->mtime);
	if (fits && slash != SIZE_MAX) {
		memcpy(h + H_PREFIX, e->name, slash);
		memcpy(h + H_NAME, e->name + slash + 1, len - slash - 1);
	} else
		memcpy(h + H_NAME, e->name, MIN(len, (size_t)NAME_FIELD));
	if (e->type == TAR_TYPE_HARDLINK || e->type == TAR_TYPE_SYMLINK)
		put_string(h + H_LINKNAME, NAME_FIELD, e->linkname);
	put_octal(h + H_UID, 8, e->uid <= OCTAL7_MAX ? e->uid : 0);
	put_octal(h + H_GID, 8, e->gid <= OCTAL7_MAX ? e->gid : 0);
	put_octal(h + H_SIZE, 12, e->size <= OCTAL11_MAX ? e->size : 0);
	put_string(h + H_UNAME, UNAME_FIELD, e->uname);
	put_string(h + H_GNAME, UNAME_FIELD, e->gname);
	put_checksum(h);
	return buf_append(out, h, sizeof(h));
}

int tar_writer_new(tar_sink_fn sink, void *userdata, struct tar_writer **ret)
{
	struct tar_writer *w;

	if (!sink)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->sink = sink;
	w->userdata = userdata;
	*ret = w;
	return 0;
}

void tar_writer_free(struct tar_writer *w)
{
	free(w);
}

uint64_t tar_writer_offset(const struct tar_writer *w)
{
	return w->offset;
}

static int writer_emit(struct tar_writer *w, const void *data, size_t len)
{
	int k;

	if (w->error)
		return w->error;
	if (len == 0)
		return 0;
	k = w->sink(data, len, w->userdata);
	if (k < 0)
		return (w->error = k);
	w->offset += len;
	return 0;
}

int tar_writer_begin(struct tar_writer *w, const struct tar_entry *e)
{
	_cleanup_(buf_free) struct buf hdr = BUF_INIT(0);
	int k;

	if (w->open)
		return -EBUSY;
	k = tar_header_format(e, &hdr, NULL);
	if (k < 0)
		return k;
	k = writer_emit(w, hdr.data, hdr.len);
	if (k < 0)
		return k;
	w->open = true;
	w->size = w->remaining = e->size;
	return 0;
}

int tar_writer_write(struct tar_writer *w, const void *data, size_t len)
{
	int k;

	if (!w->open)
		return -EINVAL;
	if (len > w->remaining)
		return -EFBIG;
	k = writer_emit(w, data, len);
	if (k < 0)
		return k;
	w->remaining -= len;
	return 0;
}

int tar_writer_end(struct tar_writer *w)
{
	int k;

	if (!w->open)
		return -EINVAL;
	if (w->remaining)
		return -ENODATA;
	k = writer_emit(w, zero_block, tar_padding(w->size));
	if (k < 0)
		return k;
	w->open = false;
	return 0;
}

int tar_writer_add_data(struct tar_writer *w, const char *name, uint32_t mode, int64_t mtime,
			const void *data, size_t len)
{
	struct tar_entry e = { .name = (char *)name,
			       .type = TAR_TYPE_REGULAR,
			       .mode = mode,
			       .mtime = mtime,
			       .size = len };
	int k;

	k = tar_writer_begin(w, &e);
	if (k >= 0)
		k = tar_writer_write(w, data, len);
	if (k >= 0)
		k = tar_writer_end(w);
	return k;
}

/* Copy [offset, offset+len) of fd into the open entry. */
static int writer_copy_range(struct tar_writer *w, int fd, uint64_t offset, uint64_t len,
			     char *chunk, size_t chunk_size)
{
	while (len > 0) {
		ssize_t n = pread(fd, chunk, (size_t)MIN((uint64_t)chunk_size, len), (off_t)offset);
		int k;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA; /* the file shrank while we read it */
		k = tar_writer_write(w, chunk, (size_t)n);
		if (k < 0)
			return k;
		offset += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

int tar_writer_add_fd(struct tar_writer *w, const char *name, uint32_t mode, int64_t mtime, int fd,
		      bool sparse)
{
	const size_t chunk_size = 256 * 1024;
	_cleanup_(freep) struct tar_sparse_segment *map = NULL;
	_cleanup_(freep) char *chunk = NULL;
	struct tar_entry e = {
		.name = (char *)name, .type = TAR_TYPE_REGULAR, .mode = mode, .mtime = mtime
	};
	struct stat st;
	size_t n = 0;
	int k;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	e.size = (uint64_t)st.st_size;
	if (sparse && st.st_size > 0) {
		uint64_t logical;

		k = tar_sparse_scan(fd, &map, &n, &logical);
		if (k < 0)
			return k;
		/* One segment covering everything: nothing to gain from the records. */
		if (!(n == 1 && map[0].offset == 0 && map[0].length == logical)) {
			e.sparse = true;
			e.sparse_map = map;
			e.n_sparse = n;
			e.sparse_size = logical;
			e.size = tar_sparse_packed_size(map, n);
		}
	}
	chunk = malloc(chunk_size);
	if (!chunk)
		return -ENOMEM;
	k = tar_writer_begin(w, &e);
	if (k < 0)
		return k;
	if (e.sparse)
		for (size_t i = 0; k >= 0 && i < n; i++)
			k = writer_copy_range(w, fd, map[i].offset, map[i].length, chunk,
					      chunk_size);
	else
		k = writer_copy_range(w, fd, 0, e.size, chunk, chunk_size);
	if (k >= 0)
		k = tar_writer_end(w);
	return k;
}

int tar_writer_finish(struct tar_writer *w)
{
	int k;

	if (w->open)
		return -EBUSY;
	k = writer_emit(w, zero_block, TAR_BLOCK_SIZE);
	if (k >= 0)
		k = writer_emit(w, zero_block, TAR_BLOCK_SIZE);
	return k;
}
