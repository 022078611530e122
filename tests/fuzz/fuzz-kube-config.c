/* Fuzz the kubeconfig parser on arbitrary bytes: whatever the YAML, kube_config_parse()
 * must neither crash nor leak; a failure comes with a message that names the origin, and
 * a success yields a usable server URL and consistent TLS material. Both the current
 * context and an explicitly named one are tried. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/kube.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *yaml, size_t size, const char *context)
{
	struct kube_config *c = NULL;
	char *error = NULL;
	int r;

	r = kube_config_parse(yaml, size, "/fuzz/config", context, &c, &error);
	if (r == -EINVAL && (!error || strncmp(error, "/fuzz/config: ", 14) != 0))
		abort();
	if (r == 0) {
		if (!c || error || !c->server || !c->source)
			abort();
		if (strncmp(c->server, "https://", 8) != 0 && strncmp(c->server, "http://", 7) != 0)
			abort();
		/* both forms of one item, or a key without its certificate, are refused */
		if ((c->ca_file && c->ca_data) || (c->cert_file && c->cert_data) ||
		    (c->key_file && c->key_data) ||
		    (!c->cert_file && !c->cert_data) != (!c->key_file && !c->key_data))
			abort();
		if (c->ca_data && !strstr(c->ca_data, "-----BEGIN "))
			abort();
	} else if (c) {
		abort();
	}
	kube_config_free(c);
	free(error);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check((const char *)data, size, NULL);
	check((const char *)data, size, "dev");
	return 0;
}
