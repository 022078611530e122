/* Fuzz netd's lease file parsers (dnsmasq lines and the cocoon-net JSON file, told apart by
 * the first byte, so one harness reaches both) and the diff built on them. Whatever the
 * bytes: no crash, no leak, a refused file comes with its message, and every set that is
 * returned keeps the invariants the daemon relies on (sorted by MAC, one lease per MAC and
 * per IP, canonical MACs); diffing a set against itself changes nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../netd/daemon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_bad(const char *message, const char *raw, size_t raw_len, void *userdata)
{
	/* Messages always name their line or entry. */
	if (strncmp(message, "line ", 5) != 0 && strncmp(message, "entry ", 6) != 0)
		abort();
}

static void check_set(const struct netd_lease_set *s)
{
	char mac[NETD_MAC_SIZE];

	for (size_t i = 0; i < s->n; i++) {
		if (netd_mac_normalize(s->leases[i].mac, mac) < 0 || !streq(mac, s->leases[i].mac))
			abort();
		if (i > 0 && strcmp(s->leases[i - 1].mac, s->leases[i].mac) >= 0)
			abort();
		if (netd_lease_set_find(s, s->leases[i].mac) != &s->leases[i] ||
		    netd_lease_set_find_ip(s, s->leases[i].addr) != &s->leases[i])
			abort();
	}
}

static void check_diff(const struct netd_lease_set *file, uint64_t now)
{
	_cleanup_(netd_lease_set_freep) struct netd_lease_set *known = NULL;
	struct netd_lease_change *ch = NULL;
	size_t n = 0;

	if (netd_lease_set_new(&known) < 0 ||
	    netd_leases_update(known, file, now, true, &ch, &n) < 0)
		return;
	free(ch);
	check_set(known);
	/* The same file again: nothing changes. */
	if (netd_leases_update(known, file, now, false, &ch, &n) < 0)
		return;
	if (n != 0)
		abort();
	free(ch);
	if (netd_leases_expire(known, netd_leases_next_expiry(known), &ch, &n) == 0)
		free(ch);
	check_set(known);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned flags[] = { 0, NETD_LEASES_SKIP_PARTIAL };
	char *text;
	uint64_t usec;

	for (size_t i = 0; i < ELEMENTSOF(flags); i++) {
		struct netd_lease_set *s = NULL;
		char *err = NULL;
		int r =
		    netd_leases_parse((const char *)data, size, flags[i], on_bad, NULL, &s, &err);

		if (r == -EBADMSG && !err)
			abort();
		if ((r < 0) != !s)
			abort();
		free(err);
		if (s) {
			check_set(s);
			check_diff(s, 1700000000ULL * 1000000);
		}
		netd_lease_set_free(s);
	}
	text = strndup((const char *)data, size);
	if (text) {
		(void)netd_parse_rfc3339(text, &usec);
		free(text);
	}
	return 0;
}
