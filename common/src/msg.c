/* msg: the frame codec for the message table in msg.h.
 *
 * The table's field lists are expanded here into descriptors (name, kind, presence, offset,
 * cap); one encoder, one strict decoder, one free and one comparison walk them, so a new
 * message needs no code here. The decoder is the boundary every IPC frame crosses: it checks
 * the header, the declared length, that the body is exactly one JSON object, and every field
 * the table names, and says which one was wrong. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cocoon/msg.h"

enum msg_kind {
	MSG_KIND_STR,
	MSG_KIND_INT,
	MSG_KIND_U64,
	MSG_KIND_BOOL,
	MSG_KIND_ERRNO,
	MSG_KIND_OBJ,
	MSG_KIND_ARR,
};

struct msg_record;

struct msg_field {
	const char *name;
	enum msg_kind kind;
	bool required;
	size_t offset;
	size_t max;                    /* STR: cap in bytes */
	const struct msg_record *elem; /* ARR: record of the elements */
	size_t count_offset;           /* ARR: offset of n_<name> */
};

struct msg_record {
	size_t size;
	const struct msg_field *fields;
	size_t n_fields;
};

#define MSG_REQ true
#define MSG_OPT false
#define FIELD_COMMON_(R, K, N, P)                                                                  \
	.name = #N, .kind = MSG_KIND_##K, .required = MSG_##P, .offset = offsetof(struct msg_##R, N)
#define FIELD_EXTRA_STR_(R, N, A)   .max = (A)
#define FIELD_EXTRA_INT_(R, N, A)   .max = 0
#define FIELD_EXTRA_U64_(R, N, A)   .max = 0
#define FIELD_EXTRA_BOOL_(R, N, A)  .max = 0
#define FIELD_EXTRA_ERRNO_(R, N, A) .max = 0
#define FIELD_EXTRA_OBJ_(R, N, A)   .max = 0
#define FIELD_EXTRA_ARR_(R, N, A)                                                                  \
	.elem = &record_##A, .count_offset = offsetof(struct msg_##R, n_##N)
#define FIELD_(R, K, N, P, A) { FIELD_COMMON_(R, K, N, P), FIELD_EXTRA_##K##_(R, N, A) },

/* A record with no fields still gets a one-element array (C has no empty arrays); n_fields
 * counts only the real ones. */
#define RECORD_(name)                                                                              \
	static const struct msg_field fields_##name[] = { MSG_FIELDS_##name(FIELD_, name){ 0 } };  \
	static const struct msg_record record_##name = {                                           \
		.size = sizeof(struct msg_##name),                                                 \
		.fields = fields_##name,                                                           \
		.n_fields = ELEMENTSOF(fields_##name) - 1,                                         \
	};
#define TYPE_RECORD_(NAME, number, name) RECORD_(name)
MSG_RECORDS(RECORD_)
MSG_TYPES(TYPE_RECORD_)

/* The switch doubles as the compile-time check that no two types share a number. */
static const struct msg_record *record_of(int type)
{
	switch (type) {
#define CASE_(NAME, number, name)                                                                  \
	case number:                                                                               \
		return &record_##name;
		MSG_TYPES(CASE_)
#undef CASE_
	}
	return NULL;
}

const char *msg_type_name(int type)
{
	switch (type) {
#define CASE_(NAME, number, name)                                                                  \
	case number:                                                                               \
		return #NAME;
		MSG_TYPES(CASE_)
#undef CASE_
	}
	return NULL;
}

int msg_type_from_name(const char *s)
{
	static const int types[] = {
#define TYPE_(NAME, number, name) number,
		MSG_TYPES(TYPE_)
#undef TYPE_
	};

	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < ELEMENTSOF(types); i++)
		if (streq(msg_type_name(types[i]), s))
			return types[i];
	return -EINVAL;
}

static const struct msg_field *field_find(const struct msg_record *rec, const char *name)
{
	for (size_t i = 0; i < rec->n_fields; i++)
		if (streq(rec->fields[i].name, name))
			return &rec->fields[i];
	return NULL;
}

/* Error text for the caller: "<TYPE>: <what>", written once per failure. */
static int fail(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);
static int fail(char **ret_error, int r, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (!ret_error)
		return r;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	*ret_error = s;
	return r;
}

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = v & 0xff;
	p[1] = v >> 8;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (v >> (8 * i)) & 0xff;
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- encoding ---- */

static int encode_record(const struct msg_record *rec, const void *body, const uint64_t *seq,
			 json_t **ret);

/* 1 with *ret set, 0 for an OPT field left out, or a negative errno. */
static int encode_array(const struct msg_field *f, const char *p, json_t **ret)
{
	const char *elems = *(char *const *)(p + f->offset);
	size_t n = *(const size_t *)(p + f->count_offset);
	json_t *v;
	int r;

	if (!elems && n > 0)
		return -EINVAL;
	if (!elems && !f->required)
		return 0;
	v = json_array();
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_t *e;

		r = encode_record(f->elem, elems + i * f->elem->size, NULL, &e);
		if (r >= 0 && json_array_append_new(v, e) < 0)
			r = -ENOMEM;
		if (r < 0) {
			json_decref(v);
			return r;
		}
	}
	*ret = v;
	return 1;
}

/* 1 with *ret set, 0 for an OPT field left out, or a negative errno. seq, when set,
 * replaces the value of the field named "seq". */
static int encode_field(const struct msg_field *f, const char *p, const uint64_t *seq, json_t **ret)
{
	const char *s;
	uint64_t u;
	json_t *v = NULL;
	int r;

	switch (f->kind) {
	case MSG_KIND_STR:
		s = *(char *const *)(p + f->offset);
		if (!s)
			return f->required ? -EINVAL : 0;
		if (strlen(s) > f->max)
			return -E2BIG;
		v = json_string(s); /* NULL for invalid UTF-8 */
		if (!v)
			return -EINVAL;
		break;
	case MSG_KIND_INT:
		v = json_integer(*(const int64_t *)(p + f->offset));
		break;
	case MSG_KIND_U64:
		u = seq && streq(f->name, "seq") ? *seq : *(const uint64_t *)(p + f->offset);
		if (u > INT64_MAX)
			return -ERANGE;
		v = json_integer((json_int_t)u);
		break;
	case MSG_KIND_BOOL:
		v = json_boolean(*(const bool *)(p + f->offset));
		break;
	case MSG_KIND_ERRNO:
		r = *(const int *)(p + f->offset);
		if (r >= 0 || r < -4095)
			return -ERANGE;
		v = json_integer(r);
		break;
	case MSG_KIND_OBJ:
		v = *(json_t *const *)(p + f->offset);
		if (!v)
			return f->required ? -EINVAL : 0;
		if (!json_is_object(v))
			return -EINVAL;
		json_incref(v);
		break;
	case MSG_KIND_ARR:
		return encode_array(f, p, ret);
	}
	if (!v)
		return -ENOMEM;
	*ret = v;
	return 1;
}

static int encode_record(const struct msg_record *rec, const void *body, const uint64_t *seq,
			 json_t **ret)
{
	json_t *o = json_object();
	int r;

	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < rec->n_fields; i++) {
		json_t *v;

		r = encode_field(&rec->fields[i], body, seq, &v);
		if (r < 0) {
			json_decref(o);
			return r;
		}
		if (r > 0 && json_object_set_new(o, rec->fields[i].name, v) < 0) {
			json_decref(o);
			return -ENOMEM;
		}
	}
	*ret = o;
	return 0;
}

static int encode_frame(enum msg_type type, const void *body, uint32_t reqid, const uint64_t *seq,
			struct buf *out)
{
	const struct msg_record *rec = record_of(type);
	_cleanup_(freep) char *text = NULL;
	uint8_t hdr[MSG_HEADER_SIZE];
	size_t n, old_len = out->len;
	json_t *o;
	int r;

	if (!rec)
		return -ENOMSG;
	if (!body && rec->n_fields > 0)
		return -EINVAL;
	r = encode_record(rec, body, seq, &o);
	if (r < 0)
		return r;
	/* Insertion order is the table's order, so the bytes are stable (golden tests). */
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!text)
		return -ENOMEM;
	n = strlen(text);
	if (n > MSG_FRAME_MAX - MSG_HEADER_SIZE)
		return -EMSGSIZE;
	hdr[0] = MSG_MAGIC;
	hdr[1] = MSG_VERSION;
	put_le16(hdr + 2, type);
	put_le32(hdr + 4, n);
	put_le32(hdr + 8, reqid);
	r = buf_append(out, hdr, sizeof hdr);
	if (r >= 0)
		r = buf_append(out, text, n);
	if (r < 0) {
		out->len = old_len;
		if (out->data)
			out->data[old_len] = 0;
		return r;
	}
	return 0;
}

int msg_encode(enum msg_type type, const void *body, uint32_t reqid, struct buf *out)
{
	return encode_frame(type, body, reqid, NULL, out);
}

int msg_encode_event(enum msg_type type, const void *body, uint64_t seq, struct buf *out)
{
	const struct msg_record *rec = record_of(type);
	const struct msg_field *f;

	if (!rec)
		return -ENOMSG;
	f = field_find(rec, "seq");
	if (!f || f->kind != MSG_KIND_U64)
		return -EINVAL;
	return encode_frame(type, body, 0, &seq, out);
}

/* ---- decoding ---- */

static const char *json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
		return "integer";
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	case JSON_NULL:
		return "null";
	}
	return "?";
}

/* Where a field sits, for error texts: "key" or "pods[3].key". */
struct path {
	const char *type;   /* "PROBE_STATE_ALL" */
	const char *prefix; /* "" or "pods[3]." */
};

static int decode_record(const struct msg_record *rec, json_t *o, void *out, const struct path *at,
			 char **ret_error);

static int wrong_type(const struct path *at, const struct msg_field *f, const char *want,
		      const json_t *v, char **ret_error)
{
	return fail(ret_error, -EINVAL, "%s: field '%s%s' must be %s, got %s", at->type, at->prefix,
		    f->name, want, json_type_name(v));
}

static int decode_int(const struct msg_field *f, json_t *v, char *p, const struct path *at,
		      char **ret_error)
{
	json_int_t i;

	if (!json_is_integer(v))
		return wrong_type(at, f, "an integer", v, ret_error);
	i = json_integer_value(v);
	switch (f->kind) {
	case MSG_KIND_U64:
		if (i < 0)
			return fail(ret_error, -ERANGE, "%s: field '%s%s' must not be negative",
				    at->type, at->prefix, f->name);
		*(uint64_t *)(p + f->offset) = (uint64_t)i;
		break;
	case MSG_KIND_ERRNO:
		if (i >= 0 || i < -4095)
			return fail(ret_error, -ERANGE,
				    "%s: field '%s%s' must be a negative errno, got %lld", at->type,
				    at->prefix, f->name, (long long)i);
		*(int *)(p + f->offset) = (int)i;
		break;
	default:
		*(int64_t *)(p + f->offset) = i;
		break;
	}
	return 0;
}

static int decode_array(const struct msg_field *f, json_t *v, char *p, const struct path *at,
			char **ret_error)
{
	size_t n = json_array_size(v), esize = f->elem->size;
	char prefix[128];
	char *elems;
	int r;

	if (!json_is_array(v))
		return wrong_type(at, f, "an array", v, ret_error);
	if (n == 0)
		return 0;
	elems = calloc(n, esize);
	if (!elems)
		return -ENOMEM;
	/* Stored before the elements are filled, so msg_free() releases a partial array. */
	*(char **)(p + f->offset) = elems;
	*(size_t *)(p + f->count_offset) = n;
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(v, i);
		struct path sub = { .type = at->type, .prefix = prefix };

		snprintf(prefix, sizeof prefix, "%s%s[%zu].", at->prefix, f->name, i);
		if (!json_is_object(e))
			return fail(ret_error, -EINVAL,
				    "%s: element '%s%s[%zu]' must be an object, got %s", at->type,
				    at->prefix, f->name, i, json_type_name(e));
		r = decode_record(f->elem, e, elems + i * esize, &sub, ret_error);
		if (r < 0)
			return r;
	}
	return 0;
}

static int decode_field(const struct msg_field *f, json_t *v, char *p, const struct path *at,
			char **ret_error)
{
	size_t len;

	switch (f->kind) {
	case MSG_KIND_STR:
		if (!json_is_string(v))
			return wrong_type(at, f, "a string", v, ret_error);
		len = json_string_length(v);
		if (len > f->max)
			return fail(ret_error, -E2BIG, "%s: field '%s%s' is %zu bytes, cap %zu",
				    at->type, at->prefix, f->name, len, f->max);
		*(char **)(p + f->offset) = strdup(json_string_value(v));
		return *(char **)(p + f->offset) ? 0 : -ENOMEM;
	case MSG_KIND_INT:
	case MSG_KIND_U64:
	case MSG_KIND_ERRNO:
		return decode_int(f, v, p, at, ret_error);
	case MSG_KIND_BOOL:
		if (!json_is_boolean(v))
			return wrong_type(at, f, "a boolean", v, ret_error);
		*(bool *)(p + f->offset) = json_is_true(v);
		return 0;
	case MSG_KIND_OBJ:
		if (!json_is_object(v))
			return wrong_type(at, f, "an object", v, ret_error);
		*(json_t **)(p + f->offset) = json_incref(v);
		return 0;
	case MSG_KIND_ARR:
		return decode_array(f, v, p, at, ret_error);
	}
	return -EINVAL;
}

static int decode_record(const struct msg_record *rec, json_t *o, void *out, const struct path *at,
			 char **ret_error)
{
	for (size_t i = 0; i < rec->n_fields; i++) {
		const struct msg_field *f = &rec->fields[i];
		json_t *v = json_object_get(o, f->name);
		int r;

		if (!v || (json_is_null(v) && !f->required)) {
			if (f->required)
				return fail(ret_error, -ENODATA, "%s: field '%s%s' missing",
					    at->type, at->prefix, f->name);
			continue;
		}
		r = decode_field(f, v, out, at, ret_error);
		if (r < 0)
			return r;
	}
	return 0;
}

int msg_header_parse(const void *frame, size_t n, struct msg_header *ret)
{
	const uint8_t *p = frame;

	if (n < MSG_HEADER_SIZE)
		return -EBADMSG;
	if (p[0] != MSG_MAGIC)
		return -EPROTO;
	*ret = (struct msg_header){
		.version = p[1],
		.type = (uint16_t)(p[2] | p[3] << 8),
		.length = get_le32(p + 4),
		.reqid = get_le32(p + 8),
	};
	return 0;
}

static int check_header(const void *frame, size_t n, struct msg_header *h, char **ret_error)
{
	const char *name;
	int r;

	if (n > MSG_FRAME_MAX)
		return fail(ret_error, -EMSGSIZE, "frame of %zu bytes exceeds the %d-byte cap", n,
			    MSG_FRAME_MAX);
	r = msg_header_parse(frame, n, h);
	if (r == -EBADMSG)
		return fail(ret_error, r, "frame of %zu bytes is shorter than the %d-byte header",
			    n, MSG_HEADER_SIZE);
	if (r == -EPROTO)
		return fail(ret_error, r, "bad magic 0x%02x (expected 0x%02x): not a cocoon frame",
			    *(const uint8_t *)frame, MSG_MAGIC);
	if (h->version != MSG_VERSION)
		return fail(ret_error, -EPROTONOSUPPORT,
			    "frame version %u not supported (expected %d)", h->version,
			    MSG_VERSION);
	name = msg_type_name(h->type);
	if (!name)
		return fail(ret_error, -ENOMSG, "unknown message type %u", h->type);
	if (h->length > MSG_FRAME_MAX - MSG_HEADER_SIZE)
		return fail(ret_error, -EMSGSIZE, "%s: body of %u bytes exceeds the %d-byte cap",
			    name, h->length, MSG_FRAME_MAX - MSG_HEADER_SIZE);
	if (h->length != n - MSG_HEADER_SIZE)
		return fail(ret_error, -EBADMSG, "%s: header says %u body bytes, frame has %zu",
			    name, h->length, n - MSG_HEADER_SIZE);
	return 0;
}

int msg_decode(const void *frame, size_t n, struct msg **ret, char **ret_error)
{
	_cleanup_(msg_freep) struct msg *m = NULL;
	struct msg_header h;
	json_error_t jerr;
	struct path at;
	json_t *o;
	int r;

	r = check_header(frame, n, &h, ret_error);
	if (r < 0)
		return r;
	at = (struct path){ .type = msg_type_name(h.type), .prefix = "" };
	/* Strict: duplicate keys, NUL bytes and trailing data all refuse the body. Any JSON
	 * value is parsed so that "not an object" gets its own error text. */
	o = json_loadb((const char *)frame + MSG_HEADER_SIZE, h.length,
		       JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!o)
		return fail(ret_error, -EILSEQ, "%s: body is not valid JSON: %s (at byte %d)",
			    at.type, jerr.text, jerr.position);
	if (!json_is_object(o)) {
		r = fail(ret_error, -EILSEQ, "%s: body must be a JSON object, got %s", at.type,
			 json_type_name(o));
		json_decref(o);
		return r;
	}
	m = calloc(1, sizeof *m);
	if (!m) {
		json_decref(o);
		return -ENOMEM;
	}
	m->type = h.type;
	m->reqid = h.reqid;
	r = decode_record(record_of(h.type), o, &m->ok, &at, ret_error);
	json_decref(o);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(m);
	return 0;
}

/* ---- free, compare, seq ---- */

static void record_release(const struct msg_record *rec, void *body)
{
	char *p = body;

	for (size_t i = 0; i < rec->n_fields; i++) {
		const struct msg_field *f = &rec->fields[i];

		if (f->kind == MSG_KIND_STR) {
			free(*(char **)(p + f->offset));
		} else if (f->kind == MSG_KIND_OBJ) {
			json_decref(*(json_t **)(p + f->offset));
		} else if (f->kind == MSG_KIND_ARR) {
			char *elems = *(char **)(p + f->offset);
			size_t n = *(size_t *)(p + f->count_offset);

			for (size_t j = 0; elems && j < n; j++)
				record_release(f->elem, elems + j * f->elem->size);
			free(elems);
		}
	}
}

void msg_free(struct msg *m)
{
	if (!m)
		return;
	record_release(record_of(m->type), &m->ok);
	free(m);
}

static bool record_equal(const struct msg_record *rec, const char *a, const char *b)
{
	for (size_t i = 0; i < rec->n_fields; i++) {
		const struct msg_field *f = &rec->fields[i];
		const char *pa = a + f->offset, *pb = b + f->offset;
		bool eq = true;

		switch (f->kind) {
		case MSG_KIND_STR:
			eq = streq_ptr(*(char *const *)pa, *(char *const *)pb);
			break;
		case MSG_KIND_INT:
		case MSG_KIND_U64:
			eq = *(const uint64_t *)pa == *(const uint64_t *)pb;
			break;
		case MSG_KIND_BOOL:
			eq = *(const bool *)pa == *(const bool *)pb;
			break;
		case MSG_KIND_ERRNO:
			eq = *(const int *)pa == *(const int *)pb;
			break;
		case MSG_KIND_OBJ: {
			json_t *ja = *(json_t *const *)pa, *jb = *(json_t *const *)pb;

			eq = ja && jb ? json_equal(ja, jb) : ja == jb;
			break;
		}
		case MSG_KIND_ARR: {
			const char *ea = *(char *const *)pa, *eb = *(char *const *)pb;
			size_t n = *(const size_t *)(a + f->count_offset);

			eq = n == *(const size_t *)(b + f->count_offset);
			for (size_t j = 0; eq && j < n; j++)
				eq = record_equal(f->elem, ea + j * f->elem->size,
						  eb + j * f->elem->size);
			break;
		}
		}
		if (!eq)
			return false;
	}
	return true;
}

bool msg_body_equal(enum msg_type type, const void *a, const void *b)
{
	const struct msg_record *rec = record_of(type);

	if (!rec)
		return false;
	if (!a || !b)
		return a == b || rec->n_fields == 0;
	return record_equal(rec, a, b);
}

int msg_get_seq(const struct msg *m, uint64_t *ret)
{
	const struct msg_field *f = field_find(record_of(m->type), "seq");

	if (!f || f->kind != MSG_KIND_U64)
		return -EINVAL;
	*ret = *(const uint64_t *)((const char *)&m->ok + f->offset);
	return 0;
}
