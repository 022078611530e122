/* Fuzz the configuration value parsers (env values come from unit files and operators). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct conf_type *const types[] = { &conf_string,    &conf_bool,
							 &conf_int,       &conf_duration,
							 &conf_log_level, &conf_listen,
							 &conf_url };
	char *s = strndup((const char *)data, size);
	char *host = NULL;
	uint16_t port;
	uint64_t usec;
	union {
		const char *str;
		int64_t i;
		uint64_t u;
		int level;
		_Bool b;
	} out;

	if (!s)
		return 0;
	conf_parse_duration(s, &usec);
	if (conf_parse_listen(s, &host, &port) == 0) {
		/* round trip: the address rebuilt from what was accepted parses the same */
		char again[600], *host2 = NULL;
		uint16_t port2;

		snprintf(again, sizeof again, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
			 (unsigned)port);
		if (conf_parse_listen(again, &host2, &port2) != 0 || strcmp(host, host2) != 0 ||
		    port != port2)
			abort();
		free(host2);
		free(host);
	}
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
		types[i]->parse(s, &out, NULL);
	free(s);
	return 0;
}
