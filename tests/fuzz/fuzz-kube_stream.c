/* Fuzz the watch stream splitter: the same input fed whole and in pseudo-random chunk
 * sizes (seeded from the input's first bytes) must emit the same objects, end in the same
 * error with the same message, and leave the same number of bytes pending. Every emitted
 * object starts with '{' and fits the cap. Any violation aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/buf.h"
#include "cocoon/kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
	struct buf out; /* every object, each preceded by its length */
	size_t cap;
};

static int record(const char *json, size_t len, void *userdata)
{
	struct run *run = userdata;

	if (len == 0 || len > run->cap || json[0] != '{')
		abort();
	if (buf_append(&run->out, &len, sizeof(len)) < 0 || buf_append(&run->out, json, len) < 0)
		abort();
	return 0;
}

/* xorshift64: deterministic per input so crashes reproduce. */
static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static int feed(struct run *run, const uint8_t *p, size_t n, uint64_t seed, char *msg,
		size_t *pending)
{
	struct kube_splitter *s;
	int r = 0;

	if (kube_splitter_new(run->cap, record, run, &s) < 0)
		abort();
	for (size_t off = 0, chunk; off < n && r == 0; off += chunk) {
		chunk = seed ? 1 + next(&seed) % (next(&seed) % 4 == 0 ? 64 : 5) : n;
		chunk = chunk > n - off ? n - off : chunk;
		r = kube_splitter_feed(s, p + off, chunk);
	}
	strcpy(msg, kube_splitter_error(s) ? kube_splitter_error(s) : "");
	*pending = kube_splitter_pending(s);
	kube_splitter_free(s);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole, chunked;
	char msg1[256], msg2[256];
	size_t pend1, pend2;
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	int r1, r2;

	if (size < 2)
		return 0;
	/* Byte 0 picks the cap (small caps reach the E2BIG paths), byte 1 the chunking. */
	whole = (struct run){ .cap = 8 + data[0] * 4 };
	chunked = whole;
	seed ^= data[1] * 0x100000001b3ULL;
	data += 2;
	size -= 2;

	r1 = feed(&whole, data, size, 0, msg1, &pend1);
	r2 = feed(&chunked, data, size, seed, msg2, &pend2);
	if (r1 != r2 || strcmp(msg1, msg2) != 0 || whole.out.len != chunked.out.len ||
	    (whole.out.len && memcmp(whole.out.data, chunked.out.data, whole.out.len) != 0))
		abort();
	/* What is pending after an error depends on where the chunks ended; without one it
	 * is the unfinished object either way. */
	if (r1 == 0 && pend1 != pend2)
		abort();
	buf_free(&whole.out);
	buf_free(&chunked.out);
	return 0;
}
