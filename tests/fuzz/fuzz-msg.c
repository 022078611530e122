/* Fuzz msg_decode: every input is refused with an error text or decodes; what decodes must
 * encode again, and that frame must decode to an equal message and re-encode to the same
 * bytes. The one allowed refusal on re-encoding is -EMSGSIZE: an OBJ field keeps numbers as
 * jansson prints them ("0.1" becomes "0.10000000000000001"), which can push a frame near the
 * cap over it. Any violation aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf b1 = BUF_INIT(0), b2 = BUF_INIT(0);
	struct msg *m1 = NULL, *m2 = NULL;
	char *error = NULL;
	int r;

	r = msg_decode(data, size, &m1, &error);
	if (r < 0) {
		/* every refusal says why, and leaves nothing behind */
		if (m1 || !error || !*error)
			abort();
		free(error);
		return 0;
	}
	if (error)
		abort();
	r = msg_encode(m1->type, msg_body(m1), m1->reqid, &b1);
	if (r == -EMSGSIZE)
		goto out;
	if (r < 0)
		abort();
	if (msg_decode(b1.data, b1.len, &m2, NULL) < 0)
		abort();
	if (m2->type != m1->type || m2->reqid != m1->reqid ||
	    !msg_body_equal(m1->type, msg_body(m1), msg_body(m2)))
		abort();
	if (msg_encode(m2->type, msg_body(m2), m2->reqid, &b2) < 0 || b1.len != b2.len ||
	    memcmp(b1.data, b2.data, b1.len) != 0)
		abort();
out:
	msg_free(m1);
	msg_free(m2);
	buf_free(&b1);
	buf_free(&b2);
	return 0;
}
