/* The watch stream splitter: turns arbitrary chunks of a stream of concatenated JSON
 * objects into exactly those objects. A watch response is a sequence of JSON documents,
 * each followed by "\n" by convention only; chunk boundaries are arbitrary (spec
 * kube-api.md §1.7 and §6 item 20), so an event may arrive in many pieces and one chunk may
 * hold several events. The splitter therefore tracks only what delimits an object — brace
 * and bracket depth outside strings, and string/escape state — and leaves validating the
 * object to the JSON decoder of its consumer (kube_watch.c).
 *
 * An object that completes inside one chunk is handed out straight from that chunk; only
 * an object split across chunks is copied into a buffer, capped at max_bytes. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cocoon/buf.h"
#include "cocoon/kube.h"

struct kube_splitter {
	kube_object_fn fn;
	void *userdata;
	size_t max_bytes;
	struct buf pending; /* the start of an object whose end has not arrived yet */
	size_t depth;       /* 0: between objects */
	bool in_string, escape;
	uint64_t offset;    /* stream bytes consumed before the current chunk */
	uint64_t obj_start; /* stream offset of the current object's '{' */
	int error;          /* sticky until reset */
	char message[160];
};

int kube_splitter_new(size_t max_bytes, kube_object_fn fn, void *userdata,
		      struct kube_splitter **ret)
{
	struct kube_splitter *s;

	if (max_bytes == 0 || !fn || !ret)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fn = fn;
	s->userdata = userdata;
	s->max_bytes = max_bytes;
	s->pending = BUF_INIT(max_bytes);
	*ret = s;
	return 0;
}

void kube_splitter_reset(struct kube_splitter *s)
{
	if (!s)
		return;
	buf_reset(&s->pending);
	s->depth = 0;
	s->in_string = s->escape = false;
	s->offset = s->obj_start = 0;
	s->error = 0;
	s->message[0] = 0;
}

void kube_splitter_free(struct kube_splitter *s)
{
	if (!s)
		return;
	buf_free(&s->pending);
	free(s);
}

const char *kube_splitter_error(const struct kube_splitter *s)
{
	return s && s->error ? s->message : NULL;
}

size_t kube_splitter_pending(const struct kube_splitter *s)
{
	return s ? s->pending.len : 0;
}

static int splitter_fail(struct kube_splitter *s, int error, const char *fmt, ...) _printf_(3, 4);
static int splitter_fail(struct kube_splitter *s, int error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->message, sizeof(s->message), fmt, ap);
	va_end(ap);
	s->error = error;
	buf_reset(&s->pending);
	return error;
}

static int splitter_garbage(struct kube_splitter *s, uint64_t where, unsigned char c)
{
	if (c >= 0x20 && c < 0x7f)
		return splitter_fail(
		    s, -EBADMSG,
		    "stream byte %" PRIu64 ": expected '{' to start an object, got '%c'", where, c);
	return splitter_fail(
	    s, -EBADMSG,
	    "stream byte %" PRIu64 ": expected '{' to start an object, got byte 0x%02x", where, c);
}

static int splitter_too_big(struct kube_splitter *s)
{
	return splitter_fail(s, -E2BIG,
			     "object starting at stream byte %" PRIu64 " is larger than %zu bytes",
			     s->obj_start, s->max_bytes);
}

/* Advances over the inside of an object from p[i]; returns the index just past its
 * closing brace, or len when the object continues in a later chunk. */
static size_t splitter_scan(struct kube_splitter *s, const char *p, size_t i, size_t len)
{
	for (; i < len; i++) {
		char c = p[i];

		if (s->in_string) {
			if (s->escape)
				s->escape = false; /* \" \\ and the 'u' of \uXXXX alike */
			else if (c == '\\')
				s->escape = true;
			else if (c == '"')
				s->in_string = false;
			continue;
		}
		switch (c) {
		case '"':
			s->in_string = true;
			break;
		case '{':
		case '[':
			s->depth++;
			break;
		case '}':
		case ']':
			if (--s->depth == 0)
				return i + 1;
			break;
		default:
			break;
		}
	}
	return len;
}

/* p[start..end) is the rest of the current object, which is now complete. */
static int splitter_emit(struct kube_splitter *s, const char *p, size_t start, size_t end)
{
	const char *obj = p + start;
	size_t n = end - start;
	int r;

	if (s->pending.len > 0) {
		r = buf_append(&s->pending, p + start, end - start);
		if (r == -E2BIG)
			return splitter_too_big(s);
		if (r < 0)
			return splitter_fail(s, r, "out of memory");
		obj = s->pending.data;
		n = s->pending.len;
	} else if (n > s->max_bytes) {
		return splitter_too_big(s);
	}
	r = s->fn(obj, n, s->userdata);
	buf_reset(&s->pending);
	if (r < 0)
		return splitter_fail(s, r,
				     "object at stream byte %" PRIu64 " refused by its consumer",
				     s->obj_start);
	return 0;
}

static bool is_json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int kube_splitter_feed(struct kube_splitter *s, const void *data, size_t len)
{
	const char *p = data;
	size_t i = 0, start = 0, end;
	int r;

	if (s->error)
		return s->error;
	while (i < len) {
		if (s->depth == 0) {
			if (is_json_space(p[i])) {
				i++;
				continue;
			}
			if (p[i] != '{')
				return splitter_garbage(s, s->offset + i, (unsigned char)p[i]);
			s->depth = 1;
			s->obj_start = s->offset + i;
			start = i++;
		}
		end = splitter_scan(s, p, i, len);
		if (s->depth > 0) {
			/* Continues in the next chunk: keep what we have, within the cap. */
			r = buf_append(&s->pending, p + start, len - start);
			if (r == -E2BIG)
				return splitter_too_big(s);
			if (r < 0)
				return splitter_fail(s, r, "out of memory");
			break;
		}
		r = splitter_emit(s, p, start, end);
		if (r < 0)
			return r;
		i = end;
	}
	s->offset += len;
	return 0;
}
