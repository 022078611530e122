/* A fast reader of JSON text (RFC 8259) for admission bodies: into jansson values, or as a
 * cursor for a decoder that builds only the parts it keeps (the AdmissionReview envelope).
 *
 * json_loadb() reads through a per-byte callback and a growing string buffer, and builds
 * every value, which made it the largest single cost of an admission request. This reader
 * walks the bytes in place. It only accepts what it can decode exactly as
 * json_loadb(text, JSON_REJECT_DUPLICATES) would: every unusual case (a syntax error, a
 * duplicate key, \u0000, a number jansson would range-check, an escaped key where keys are
 * compared as written, nesting deeper than FASTJSON_MAX_DEPTH) is -EINVAL, and the caller
 * asks jansson, which then gives the value or its exact error message. So the fast path
 * never changes what a body decodes to, only how quickly a well-formed one does. */
#include <endian.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "webhookd.h"

/* Deeper documents go to jansson (its own limit is JSON_PARSER_MAX_DEPTH, 2048). */
#define FASTJSON_MAX_DEPTH 128
/* Longer numbers go to jansson, which range-checks them. 18 digits always fit json_int_t. */
#define FASTJSON_INT_DIGITS_MAX 18
#define FASTJSON_NUMBER_MAX     64

static json_t *read_value(struct fastjson_reader *r, unsigned depth);
static int skip_value(struct fastjson_reader *r, unsigned depth);

static void skip_space(struct fastjson_reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
		r->p++;
}

/* Skips whitespace and then c, if c is next. */
static bool take(struct fastjson_reader *r, char c)
{
	skip_space(r);
	if (r->p >= r->end || *r->p != c)
		return false;
	r->p++;
	return true;
}

/* Length of the UTF-8 sequence at p (jansson's rules: no overlong forms, no surrogates,
 * nothing past U+10FFFF), 0 when invalid or truncated. */
static size_t utf8_length(const unsigned char *p, const unsigned char *end)
{
	size_t n;
	uint32_t c;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, c = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, c = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, c = p[0] & 0x07;
	else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) || c > 0x10ffff ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return n;
}

static int hex4(const unsigned char *p, uint32_t *ret)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++) {
		unsigned char ch = p[i];

		v <<= 4;
		if (ch >= '0' && ch <= '9')
			v |= ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			v |= ch - 'a' + 10;
		else if (ch >= 'A' && ch <= 'F')
			v |= ch - 'A' + 10;
		else
			return -EINVAL;
	}
	*ret = v;
	return 0;
}

/* \uXXXX (and its low surrogate) at r->p, just past the 'u', appended as UTF-8. Lone
 * surrogates and U+0000 are jansson's to refuse. */
static int read_unicode_escape(struct fastjson_reader *r)
{
	unsigned char out[4];
	uint32_t c, lo;
	size_t n;

	if (r->end - r->p < 4 || hex4(r->p, &c) < 0 || c == 0)
		return -EINVAL;
	r->p += 4;
	if (c >= 0xdc00 && c <= 0xdfff)
		return -EINVAL;
	if (c >= 0xd800 && c <= 0xdbff) {
		if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' ||
		    hex4(r->p + 2, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
			return -EINVAL;
		r->p += 6;
		c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
	}
	if (c < 0x80) {
		out[0] = (unsigned char)c;
		n = 1;
	} else if (c < 0x800) {
		out[0] = (unsigned char)(0xc0 | c >> 6);
		out[1] = (unsigned char)(0x80 | (c & 0x3f));
		n = 2;
	} else if (c < 0x10000) {
		out[0] = (unsigned char)(0xe0 | c >> 12);
		out[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
		out[2] = (unsigned char)(0x80 | (c & 0x3f));
		n = 3;
	} else {
		out[0] = (unsigned char)(0xf0 | c >> 18);
		out[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3f));
		out[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
		out[3] = (unsigned char)(0x80 | (c & 0x3f));
		n = 4;
	}
	return buf_append(&r->scratch, out, n);
}

static int read_escape(struct fastjson_reader *r)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *e;

	if (r->p >= r->end)
		return -EINVAL;
	if (*r->p == 'u') {
		r->p++;
		return read_unicode_escape(r);
	}
	e = strchr(from, *r->p);
	if (!e || !*r->p)
		return -EINVAL;
	r->p++;
	return buf_append(&r->scratch, &to[e - from], 1);
}

/* How many of the 8 bytes at p are plain string bytes (not '"', '\\', a control character
 * or part of a multibyte sequence), up to the first one that is not. Strings are most of a
 * review's bytes, and looking at them a word at a time is what makes reading them cheap.
 * A byte below n sets its top bit in (x - n * ones) & ~x (n <= 0x80); a borrow can only
 * flag bytes above a byte that really is below n, so the lowest flag is exact. */
static size_t plain_prefix8(const unsigned char *p)
{
	const uint64_t ones = 0x0101010101010101ULL, high = ones << 7;
	uint64_t x, quote, bslash, m;

	memcpy(&x, p, sizeof x);
	x = le64toh(x); /* byte 0 in the low bits, so the lowest flag is the first byte */
	quote = x ^ (ones * '"');
	bslash = x ^ (ones * '\\');
	m = ((x - ones * 0x20) & ~x) | ((quote - ones) & ~quote) | ((bslash - ones) & ~bslash) | x;
	m &= high;
	return m ? (size_t)__builtin_ctzll(m) / 8 : 8;
}

/* The string at r->p (just past the opening quote). Without escapes it points into the
 * text; with them into r->scratch, valid until the next string. */
static int read_string(struct fastjson_reader *r, const char **ret, size_t *ret_len)
{
	const unsigned char *start = r->p;
	bool escaped = false;
	int k;

	buf_reset(&r->scratch);
	while (r->p < r->end) {
		unsigned char ch;
		size_t n;

		if (r->end - r->p >= 8) {
			n = plain_prefix8(r->p);
			r->p += n;
			if (n == 8)
				continue;
		}
		ch = *r->p;
		if (ch == '"') {
			if (escaped && buf_append(&r->scratch, start, (size_t)(r->p - start)) < 0)
				return -ENOMEM;
			*ret = escaped ? r->scratch.data : (const char *)start;
			*ret_len = escaped ? r->scratch.len : (size_t)(r->p - start);
			r->p++;
			return 0;
		}
		if (ch < 0x20)
			return -EINVAL;
		if (ch < 0x80 && ch != '\\') {
			r->p++;
			continue;
		}
		if (ch != '\\') {
			n = utf8_length(r->p, r->end);
			if (n == 0)
				return -EINVAL;
			r->p += n;
			continue;
		}
		/* Flush the plain run, then decode the escape. */
		if (buf_append(&r->scratch, start, (size_t)(r->p - start)) < 0)
			return -ENOMEM;
		r->p++;
		k = read_escape(r);
		if (k < 0)
			return k;
		escaped = true;
		start = r->p;
	}
	return -EINVAL;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, integers as json_int_t, the rest as
 * strtod() reads it (as jansson does). NULL for what jansson has to judge. */
static json_t *read_number(struct fastjson_reader *r)
{
	const unsigned char *start = r->p, *digits;
	char text[FASTJSON_NUMBER_MAX + 1];
	bool real = false;
	json_int_t v = 0;
	double d;
	char *end;

	if (r->p < r->end && *r->p == '-')
		r->p++;
	digits = r->p;
	while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
		r->p++;
	if (r->p == digits || (digits[0] == '0' && r->p - digits > 1))
		return NULL;
	if (r->p < r->end && *r->p == '.') {
		const unsigned char *frac = ++r->p;

		while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
			r->p++;
		if (r->p == frac)
			return NULL;
		real = true;
	}
	if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
		const unsigned char *exp;

		r->p++;
		if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
			r->p++;
		exp = r->p;
		while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
			r->p++;
		if (r->p == exp)
			return NULL;
		real = true;
	}
	if (!real) {
		if (r->p - digits > FASTJSON_INT_DIGITS_MAX)
			return NULL;
		for (const unsigned char *q = digits; q < r->p; q++)
			v = v * 10 + (*q - '0');
		return json_integer(*start == '-' ? -v : v);
	}
	if (r->p - start > FASTJSON_NUMBER_MAX)
		return NULL;
	memcpy(text, start, (size_t)(r->p - start));
	text[r->p - start] = 0;
	d = strtod(text, &end);
	/* jansson refuses overflow (and keeps underflow): leave that to it. */
	if (isinf(d) || (size_t)(end - text) != (size_t)(r->p - start))
		return NULL;
	return json_real(d);
}

static json_t *read_literal(struct fastjson_reader *r, const char *word, json_t *value)
{
	size_t n = strlen(word);

	if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
		return NULL;
	r->p += n;
	return value;
}

/* Members after '{'. Duplicate keys are jansson's to refuse, with its message. */
static int read_members(struct fastjson_reader *r, unsigned depth, json_t *obj)
{
	bool first = true;
	const char *key;
	size_t klen;
	int k;

	while ((k = fastjson_next_member(r, &first, &key, &klen)) > 0) {
		_cleanup_(freep) char *copy = NULL;
		size_t size = json_object_size(obj);
		json_t *v;

		/* An unescaped key points into the text; an escaped one into the scratch
		 * buffer, which the value's strings reuse. */
		if (key == r->scratch.data) {
			key = copy = strndup(key, klen);
			if (!copy)
				return -ENOMEM;
		}
		v = read_value(r, depth + 1);
		if (!v || json_object_setn_new_nocheck(obj, key, klen, v) < 0)
			return -EINVAL;
		/* A duplicate replaced the earlier value instead of adding one. */
		if (json_object_size(obj) == size)
			return -EINVAL;
	}
	return k;
}

static int read_elements(struct fastjson_reader *r, unsigned depth, json_t *arr)
{
	bool first = true;
	int k;

	while ((k = fastjson_next_element(r, &first)) > 0) {
		json_t *v = read_value(r, depth + 1);

		if (!v || json_array_append_new(arr, v) < 0)
			return -EINVAL;
	}
	return k;
}

/* NULL when the value is not one this reader decodes (or on allocation failure, which
 * jansson then meets too). */
static json_t *read_value(struct fastjson_reader *r, unsigned depth)
{
	_cleanup_(json_decrefp) json_t *v = NULL;
	const char *s;
	size_t n;

	skip_space(r);
	if (r->p >= r->end || depth > FASTJSON_MAX_DEPTH)
		return NULL;
	switch (*r->p) {
	case '{':
		v = json_object();
		if (!v || read_members(r, depth, v) < 0)
			return NULL;
		return TAKE_PTR(v);
	case '[':
		v = json_array();
		if (!v || read_elements(r, depth, v) < 0)
			return NULL;
		return TAKE_PTR(v);
	case '"':
		r->p++;
		if (read_string(r, &s, &n) < 0)
			return NULL;
		return json_stringn_nocheck(s, n);
	case 't':
		return read_literal(r, "true", json_true());
	case 'f':
		return read_literal(r, "false", json_false());
	case 'n':
		return read_literal(r, "null", json_null());
	default:
		return read_number(r);
	}
}

/* ---- checking without building ---- */

int fastjson_keys_add(struct fastjson_keys *keys, const struct fastjson_reader *r, const char *key,
		      size_t len)
{
	/* Keys are compared as written: an escaped one could equal another spelled
	 * differently, so that is jansson's to judge. */
	if (key == r->scratch.data || keys->n == ELEMENTSOF(keys->key))
		return -EINVAL;
	for (size_t i = 0; i < keys->n; i++)
		if (keys->len[i] == len && memcmp(keys->key[i], key, len) == 0)
			return -EINVAL;
	keys->key[keys->n] = key;
	keys->len[keys->n++] = len;
	return 0;
}

static int skip_members(struct fastjson_reader *r, unsigned depth)
{
	struct fastjson_keys keys = { 0 };
	bool first = true;
	const char *key;
	size_t klen;
	int k;

	while ((k = fastjson_next_member(r, &first, &key, &klen)) > 0)
		if (fastjson_keys_add(&keys, r, key, klen) < 0 || skip_value(r, depth + 1) < 0)
			return -EINVAL;
	return k;
}

static int skip_value(struct fastjson_reader *r, unsigned depth)
{
	bool first = true;
	const char *s;
	size_t n;
	json_t *v;
	int k;

	skip_space(r);
	if (r->p >= r->end || depth > FASTJSON_MAX_DEPTH)
		return -EINVAL;
	switch (*r->p) {
	case '{':
		return skip_members(r, depth);
	case '[':
		while ((k = fastjson_next_element(r, &first)) > 0)
			if (skip_value(r, depth + 1) < 0)
				return -EINVAL;
		return k;
	case '"':
		r->p++;
		return read_string(r, &s, &n);
	default:
		/* Literals are shared singletons; a number is checked by making it. */
		v = read_value(r, depth);
		if (!v)
			return -EINVAL;
		json_decref(v);
		return 0;
	}
}

/* ---- the reader ---- */

void fastjson_reader_init(struct fastjson_reader *r, const void *text, size_t len)
{
	*r = (struct fastjson_reader){ .p = text,
				       .end = (const unsigned char *)text + len,
				       .scratch = BUF_INIT(0) };
}

void fastjson_reader_done(struct fastjson_reader *r)
{
	buf_free(&r->scratch);
}

int fastjson_peek(struct fastjson_reader *r)
{
	skip_space(r);
	if (r->p >= r->end)
		return -EINVAL;
	switch (*r->p) {
	case '{':
		return JSON_OBJECT;
	case '[':
		return JSON_ARRAY;
	case '"':
		return JSON_STRING;
	case 't':
		return JSON_TRUE;
	case 'f':
		return JSON_FALSE;
	case 'n':
		return JSON_NULL;
	case '-':
	case '0' ... '9':
		return JSON_INTEGER;
	default:
		return -EINVAL;
	}
}

int fastjson_next_member(struct fastjson_reader *r, bool *first, const char **ret_key,
			 size_t *ret_len)
{
	if (*first) {
		if (!take(r, '{'))
			return -EINVAL;
		*first = false;
		if (take(r, '}'))
			return 0;
	} else if (take(r, '}')) {
		return 0;
	} else if (!take(r, ',')) {
		return -EINVAL;
	}
	if (!take(r, '"') || read_string(r, ret_key, ret_len) < 0 || !take(r, ':'))
		return -EINVAL;
	return 1;
}

int fastjson_next_element(struct fastjson_reader *r, bool *first)
{
	if (*first) {
		if (!take(r, '['))
			return -EINVAL;
		*first = false;
		return take(r, ']') ? 0 : 1;
	}
	if (take(r, ']'))
		return 0;
	return take(r, ',') ? 1 : -EINVAL;
}

int fastjson_read_string(struct fastjson_reader *r, const char **ret, size_t *ret_len)
{
	if (!take(r, '"'))
		return -EINVAL;
	return read_string(r, ret, ret_len);
}

json_t *fastjson_read_value(struct fastjson_reader *r)
{
	return read_value(r, 0);
}

int fastjson_skip_value(struct fastjson_reader *r)
{
	return skip_value(r, 0);
}

int fastjson_finish(struct fastjson_reader *r)
{
	skip_space(r);
	return r->p == r->end ? 0 : -EINVAL;
}

int fastjson_load(const void *text, size_t len, json_t **ret)
{
	struct fastjson_reader r;
	_cleanup_(json_decrefp) json_t *v = NULL;
	int t;

	fastjson_reader_init(&r, text, len);
	/* Like json_loadb() without JSON_DECODE_ANY: an object or an array, then nothing. */
	t = fastjson_peek(&r);
	if (t == JSON_OBJECT || t == JSON_ARRAY)
		v = read_value(&r, 0);
	if (v && fastjson_finish(&r) < 0)
		json_decref(TAKE_PTR(v));
	fastjson_reader_done(&r);
	if (!v)
		return -EINVAL;
	*ret = TAKE_PTR(v);
	return 0;
}
