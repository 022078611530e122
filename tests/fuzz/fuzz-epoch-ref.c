/* Fuzz what users and registries hand libepoch as short strings: references (name[:tag],
 * name@digest, Epoch /dl/ and /v2/ URLs) and WWW-Authenticate headers. A reference that
 * parses must be usable as is (valid name, exactly one of a valid tag or digest); a refused
 * one must come with a message; a Bearer challenge always has a realm. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../epoch-client/epoch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct epoch_challenge ch = {};
	struct epoch_ref ref = {};
	char *s, *err = NULL;
	int r;

	s = strndup((const char *)data, size);
	if (!s)
		return 0;
	r = epoch_ref_parse(s, &ref, &err);
	if (r == 0) {
		if (!epoch_name_valid(ref.name) || !!ref.tag == !!ref.digest ||
		    (ref.tag && !epoch_tag_valid(ref.tag)) ||
		    (ref.digest && !epoch_digest_valid(ref.digest)) ||
		    (ref.legacy_name && !epoch_name_valid(ref.legacy_name)) || err)
			abort();
		epoch_ref_done(&ref);
	} else if (r == -EINVAL && !err) {
		abort();
	}
	free(err);
	err = NULL;
	r = epoch_challenge_parse(s, &ch, &err);
	if (r == 0) {
		if (!ch.realm || !*ch.realm || err)
			abort();
		epoch_challenge_done(&ch);
	} else if ((r == -EBADMSG || r == -ENOENT) && !err) {
		abort();
	}
	free(err);
	(void)epoch_layer_media_type(s);
	(void)epoch_media_type_is_disk(s);
	free(s);
	return 0;
}
