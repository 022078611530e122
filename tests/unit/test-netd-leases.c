/* netd leases: both lease file formats (dnsmasq lines and the cocoon-net JSON file), every
 * kind of bad line with the message that names it, whole-file refusals, and the diff that
 * turns a re-read file into GRANTED/RENEWED/EXPIRED changes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/buf.h"
#include "../../netd/daemon.h"

#define SEC 1000000ULL

/* Every bad-line message of the last parse, one per line. */
static struct buf bad = { .cap = 0 };
static unsigned n_bad;
static char *raw_seen;

static void collect_bad(const char *message, const char *raw, size_t raw_len, void *userdata)
{
	buf_printf(&bad, "%s\n", message);
	n_bad++;
	free(raw_seen);
	raw_seen = raw ? strndup(raw, raw_len) : NULL;
}

static int reset(void **state)
{
	buf_free(&bad);
	n_bad = 0;
	free(raw_seen);
	raw_seen = NULL;
	return 0;
}

static struct netd_lease_set *parse_ok(const char *text, unsigned flags)
{
	struct netd_lease_set *s = NULL;
	char *err = NULL;

	reset(NULL);
	assert_int_equal(netd_leases_parse(text, strlen(text), flags, collect_bad, NULL, &s, &err),
			 0);
	assert_null(err);
	assert_non_null(s);
	return s;
}

static const char *bad_text(void)
{
	return bad.data ? bad.data : "";
}

static void test_dnsmasq_lines(void **state)
{
	_cleanup_(netd_lease_set_freep) struct netd_lease_set *s =
	    parse_ok("1795323618 EA:B8:E0:13:78:3F 10.99.0.18 guest-1 01:ea:b8:e0:13:78:3f\n"
		     "0 52:54:00:00:00:01 10.99.0.2 * *\n"
		     "1795323000 52:54:00:00:00:02 10.99.0.3 * ff:00:00:00:01:00:01\n",
		     0);

	assert_int_equal(s->format, NETD_LEASE_FORMAT_DNSMASQ);
	assert_int_equal(s->n, 3);
	assert_int_equal(n_bad, 0);
	/* Sorted by MAC, MACs in lower case, expiry in µs, 0 kept as "never". */
	assert_string_equal(s->leases[0].mac, "52:54:00:00:00:01");
	assert_string_equal(s->leases[0].ip, "10.99.0.2");
	assert_int_equal(s->leases[0].expires_usec, 0);
	assert_string_equal(s->leases[2].mac, "ea:b8:e0:13:78:3f");
	assert_int_equal(s->leases[2].expires_usec, 1795323618ULL * SEC);
	assert_int_equal(s->leases[2].addr, 0x0a630012);

	assert_ptr_equal(netd_lease_set_find(s, "EA:b8:e0:13:78:3F"), &s->leases[2]);
	assert_null(netd_lease_set_find(s, "ea:b8:e0:13:78:40"));
	assert_null(netd_lease_set_find(s, "not a mac"));
	assert_ptr_equal(netd_lease_set_find_ip(s, 0x0a630003), &s->leases[1]);
	assert_true(netd_lease_active(&s->leases[0], UINT64_MAX));
	assert_false(netd_lease_active(&s->leases[2], 1795323618ULL * SEC));
	assert_true(netd_lease_active(&s->leases[2], 1795323617ULL * SEC));
}

static void test_dnsmasq_bad_lines(void **state)
{
	char long_line[2100];
	struct buf text = BUF_INIT(0);
	_cleanup_(netd_lease_set_freep) struct netd_lease_set *s = NULL;

	memset(long_line, 'x', sizeof long_line - 2);
	long_line[0] = '1';
	long_line[sizeof long_line - 2] = '\n';
	long_line[sizeof long_line - 1] = 0;
	buf_append_str(&text, "1795323618 52:54:00:00:00:01 10.99.0.2 * *\n"       /* 1 ok */
			      "1795323618 52:54:00:00:00:02 10.99.0.3\n"           /* 2 */
			      "soon 52:54:00:00:00:03 10.99.0.4 * *\n"             /* 3 */
			      "1795323618 52:54:00:00:00 10.99.0.5 * *\n"          /* 4 */
			      "1795323618 52:54:00:00:00:06 10.99.0.300 * *\n"     /* 5 */
			      "1795323618 52:54:00:00:00:07 10.99.0.7 * 0g\n"      /* 6 */
			      "1795323618 52:54:00:00:00:08 10.99.0.8 * * x\n"     /* 7 */
			      "99999999999999 52:54:00:00:00:09 10.99.0.9 * *\n"   /* 8 */
			      "1795323618 52:54:00:00:00:0a 010.99.0.10 * *\n"     /* 9 */
			      "\n"                                                 /* 10 blank */
			      "1795323618 52:54:00:00:00:0b 10.99.0.11 * *\n");    /* 11 ok */
	buf_append_str(&text, long_line);                                          /* 12 */
	buf_append(&text, "1795323618 52:54:00:00:00:0c 10.99.0.12 a\0b *\n", 46); /* 13 */
	buf_append_str(&text, "1795323618 06-52:54:00:00:00:0d 10.99.0.13 * *\n"); /* 14 */

	reset(NULL);
	assert_int_equal(netd_leases_parse(text.data, text.len, 0, collect_bad, NULL, &s, NULL), 0);
	assert_int_equal(s->n, 2);
	assert_string_equal(s->leases[0].ip, "10.99.0.2");
	assert_string_equal(s->leases[1].ip, "10.99.0.11");
	assert_string_equal(
	    bad_text(),
	    "line 2: expected 5 fields \"<expiry> <mac> <ip> <hostname> <client-id>\", found 3\n"
	    "line 3: expiry 'soon' is not a number of seconds since 1970\n"
	    "line 4: hardware address '52:54:00:00:00' is not an Ethernet MAC "
	    "(aa:bb:cc:dd:ee:ff)\n"
	    "line 5: '10.99.0.300' is not an IPv4 address\n"
	    "line 6: client id '0g' is not '*' or colon-separated hex bytes\n"
	    "line 7: expected 5 fields \"<expiry> <mac> <ip> <hostname> <client-id>\", found "
	    "more than 5\n"
	    "line 8: expiry '99999999999999' is not a number of seconds since 1970\n"
	    "line 9: '010.99.0.10' is not an IPv4 address\n"
	    "line 12: longer than 2048 bytes\n"
	    "line 13: contains a NUL byte\n"
	    "line 14: hardware address '06-52:54:00:00:00:0d' is not an Ethernet MAC "
	    "(aa:bb:cc:dd:ee:ff)\n");
	/* The raw line comes with the report, without its newline. */
	assert_string_equal(raw_seen, "1795323618 06-52:54:00:00:00:0d 10.99.0.13 * *");
	buf_free(&text);
}

static void test_dnsmasq_v6_section_and_partial(void **state)
{
	_cleanup_(netd_lease_set_freep) struct netd_lease_set *a = NULL, *b = NULL;
	const char *text = "1795323618 52:54:00:00:00:01 10.99.0.2 * *\n"
			   "duid 00:01:00:01:2c:aa:bb:cc:52:54:00:00:00:99\n"
			   "1795323618 1234567 fd00::5 host6 00:02:00:00\n"
			   "1795323618 52:54:00:00:00:02 10.99.0.3 * *\n"
			   "1795323618 52:54:00:00:00:03 10.9";

	/* Everything after the DUID is DHCPv6, not routed and not an error. */
	a = parse_ok(text, NETD_LEASES_SKIP_PARTIAL);
	assert_int_equal(a->n, 1);
	assert_int_equal(n_bad, 0);

	/* Without the DUID line, the half-written tail is left for the next read... */
	text = "1795323618 52:54:00:00:00:01 10.99.0.2 * *\n"
	       "1795323618 52:54:00:00:00:03 10.9";
	netd_lease_set_free(a);
	a = parse_ok(text, NETD_LEASES_SKIP_PARTIAL);
	assert_int_equal(a->n, 1);
	assert_int_equal(n_bad, 0);
	/* ... and reported when read as final. */
	b = parse_ok(text, 0);
	assert_int_equal(b->n, 1);
	assert_string_equal(bad_text(), "line 2: expected 5 fields \"<expiry> <mac> <ip> "
					"<hostname> <client-id>\", found 3\n");
}

static void test_duplicates(void **state)
{
	_cleanup_(netd_lease_set_freep) struct netd_lease_set *s =
	    parse_ok("1795323618 52:54:00:00:00:01 10.99.0.2 * *\n"
		     "1795323618 52:54:00:00:00:02 10.99.0.2 * *\n"
		     "1795323000 52:54:00:00:00:03 10.99.0.5 * *\n"
		     "1795329999 52:54:00:00:00:03 10.99.0.6 * *\n",
		     0);

	assert_int_equal(s->n, 2);
	/* A second MAC on one IP is refused; a MAC listed twice keeps its later line. */
	assert_string_equal(bad_text(), "line 2: IP 10.99.0.2 is already leased to "
					"52:54:00:00:00:01 (line 1), skipping this one\n");
	assert_string_equal(s->leases[0].mac, "52:54:00:00:00:01");
	assert_string_equal(s->leases[1].ip, "10.99.0.6");
	assert_int_equal(s->leases[1].expires_usec, 1795329999ULL * SEC);
}

static void test_too_many_leases(void **state)
{
	struct buf text = BUF_INIT(0);
	_cleanup_(netd_lease_set_freep) struct netd_lease_set *s = NULL;

	for (unsigned i = 0; i <= NETD_LEASES_MAX; i++)
		buf_printf(&text, "0 52:54:00:%02x:%02x:%02x 10.%u.%u.%u * *\n", i >> 16,
			   (i >> 8) & 0xff, i & 0xff, 1 + (i >> 16), (i >> 8) & 0xff, i & 0xff);
	reset(NULL);
	assert_int_equal(netd_leases_parse(text.data, text.len, 0, collect_bad, NULL, &s, NULL), 0);
	assert_int_equal(s->n, NETD_LEASES_MAX);
	assert_int_equal(n_bad, 1);
	assert_string_equal(bad_text(), "line 65537: more than 65536 leases, ignoring the rest\n");
	buf_free(&text);
}

static void test_json_file(void **state)
{
	_cleanup_(netd_lease_set_freep) struct netd_lease_set *s =
	    parse_ok("[\n"
		     "  {\"mac\": \"52:54:00:AA:00:01\", \"ip\": \"172.20.100.7\", "
		     "\"expiry\": \"2026-11-22T05:00:00Z\"},\n"
		     "  {\"mac\": \"52:54:00:aa:00:02\", \"ip\": \"172.20.100.8\", "
		     "\"expiry\": \"2026-11-22T13:00:00.5+08:00\", \"future\": 1}\n"
		     "]\n",
		     0);
	_cleanup_(netd_lease_set_freep) struct netd_lease_set *empty = parse_ok(" null\n", 0);

	assert_int_equal(s->format, NETD_LEASE_FORMAT_JSON);
	assert_int_equal(s->n, 2);
	assert_string_equal(s->leases[0].mac, "52:54:00:aa:00:01");
	assert_int_equal(s->leases[0].expires_usec, 1795323600ULL * SEC);
	/* +08:00 is the same instant, plus half a second. */
	assert_int_equal(s->leases[1].expires_usec, 1795323600ULL * SEC + 500000);
	assert_int_equal(empty->format, NETD_LEASE_FORMAT_JSON);
	assert_int_equal(empty->n, 0);
}

static void test_json_bad_entries(void **state)
{
	_cleanup_(netd_lease_set_freep) struct netd_lease_set *s =
	    parse_ok("[{\"mac\": \"52:54:00:00:00:01\", \"ip\": \"10.0.0.1\", \"expiry\": "
		     "\"2026-11-22T05:00:00Z\"},\n"
		     " 42,\n"
		     " {\"ip\": \"10.0.0.2\", \"expiry\": \"2026-11-22T05:00:00Z\"},\n"
		     " {\"mac\": 7, \"ip\": \"10.0.0.3\", \"expiry\": \"2026-11-22T05:00:00Z\"},\n"
		     " {\"mac\": \"52:54:00:00:00:04\", \"ip\": \"::1\", \"expiry\": "
		     "\"2026-11-22T05:00:00Z\"},\n"
		     " {\"mac\": \"52:54:00:00:00:05\", \"ip\": \"10.0.0.5\", \"expiry\": "
		     "\"tomorrow\"},\n"
		     " {\"mac\": \"52-54-00-00-00-06\", \"ip\": \"10.0.0.6\", \"expiry\": "
		     "\"2026-11-22T05:00:00Z\"}]",
		     0);

	assert_int_equal(s->n, 1);
	assert_string_equal(bad_text(), "entry 2: is a number, expected an object\n"
					"entry 3: field 'mac' missing\n"
					"entry 4: field 'mac' is a number, expected a string\n"
					"entry 5: ip '::1' is not an IPv4 address\n"
					"entry 6: expiry 'tomorrow' is not an RFC 3339 time\n"
					"entry 7: mac '52-54-00-00-00-06' is not an Ethernet MAC "
					"(aa:bb:cc:dd:ee:ff)\n");
	assert_null(raw_seen);
}

static void test_whole_file_refused(void **state)
{
	static const struct {
		const char *text, *error;
	} cases[] = {
		{ "[{\"mac\": ", "not a JSON lease file: line 1, column 9: " },
		{ "{\"mac\": \"52:54:00:00:00:01\"}",
		  "the JSON lease file holds a object, expected an array of leases or null" },
		{ "garbage\n", "not a JSON lease file: line 1, column " },
		{ "[1] [2]", "not a JSON lease file: line 1, column " },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct netd_lease_set *s = NULL;
		char *err = NULL;

		assert_int_equal(netd_leases_parse(cases[i].text, strlen(cases[i].text), 0, NULL,
						   NULL, &s, &err),
				 -EBADMSG);
		assert_null(s);
		assert_non_null(err);
		if (strncmp(err, cases[i].error, strlen(cases[i].error)) != 0)
			fail_msg("case %zu: got '%s', want prefix '%s'", i, err, cases[i].error);
		free(err);
	}
}

static void test_empty_file(void **state)
{
	_cleanup_(netd_lease_set_freep) struct netd_lease_set *s = parse_ok("", 0);

	assert_int_equal(s->n, 0);
	assert_int_equal(s->format, NETD_LEASE_FORMAT_DNSMASQ);
}

static void test_rfc3339(void **state)
{
	static const struct {
		const char *s;
		int r;
		uint64_t usec;
	} cases[] = {
		{ "1970-01-01T00:00:00Z", 0, 0 },
		{ "2026-11-22T05:00:00Z", 0, 1795323600ULL * SEC },
		{ "2026-11-22t05:00:00.123456789z", 0, 1795323600ULL * SEC + 123456 },
		{ "2026-11-22T00:30:00-04:30", 0, 1795323600ULL * SEC },
		{ "2024-02-29T00:00:00Z", 0, 1709164800ULL * SEC },
		{ "0001-01-01T00:00:00Z", 0, 1 }, /* Go's zero time: expired, not "never" */
		{ "2023-02-29T00:00:00Z", -EINVAL },
		{ "2026-13-01T00:00:00Z", -EINVAL },
		{ "2026-11-22 05:00:00Z", -EINVAL },
		{ "2026-11-22T05:00:00", -EINVAL },
		{ "2026-11-22T05:00:00.Z", -EINVAL },
		{ "2026-11-22T05:00:00+0800", -EINVAL },
		{ "2026-11-22T24:00:00Z", -EINVAL },
		{ "2026-11-22T05:00:00Zjunk", -EINVAL },
		{ "", -EINVAL },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		uint64_t v = 42;
		int r = netd_parse_rfc3339(cases[i].s, &v);

		if (r != cases[i].r || (r == 0 && v != cases[i].usec))
			fail_msg("'%s': got %d/%llu", cases[i].s, r, (unsigned long long)v);
	}
}

static void test_mac_normalize(void **state)
{
	char mac[NETD_MAC_SIZE];

	assert_int_equal(netd_mac_normalize("52:54:00:AB:cd:EF", mac), 0);
	assert_string_equal(mac, "52:54:00:ab:cd:ef");
	assert_int_equal(netd_mac_normalize("52:54:00:ab:cd", mac), -EINVAL);
	assert_int_equal(netd_mac_normalize("52:54:00:ab:cd:ef:00", mac), -EINVAL);
	assert_int_equal(netd_mac_normalize("52-54-00-ab-cd-ef", mac), -EINVAL);
	assert_int_equal(netd_mac_normalize("52:54:00:ab:cd:eg", mac), -EINVAL);
	assert_int_equal(netd_mac_normalize(NULL, mac), -EINVAL);
}

/* ---- diffing ---- */

static struct netd_lease_set *set_of(const char *text)
{
	return parse_ok(text, 0);
}

static void update(struct netd_lease_set *known, const char *file_text, uint64_t now, bool removals,
		   const char *want)
{
	_cleanup_(netd_lease_set_freep) struct netd_lease_set *file = set_of(file_text);
	struct netd_lease_change *ch = NULL;
	struct buf got = BUF_INIT(0);
	size_t n = 0;

	assert_int_equal(netd_leases_update(known, file, now, removals, &ch, &n), 0);
	for (size_t i = 0; i < n; i++)
		buf_printf(&got, "%s %s %s\n", netd_lease_event_to_string(ch[i].kind),
			   ch[i].lease.mac, ch[i].lease.ip);
	assert_string_equal(got.data ? got.data : "", want);
	buf_free(&got);
	free(ch);
}

static void test_diff(void **state)
{
	_cleanup_(netd_lease_set_freep) struct netd_lease_set *known = NULL;
	uint64_t now = 1000 * SEC;

	assert_int_equal(netd_lease_set_new(&known), 0);
	/* Two grants; an already expired line in the file is no lease at all. */
	update(known,
	       "2000 52:54:00:00:00:01 10.0.0.1 * *\n"
	       "0 52:54:00:00:00:02 10.0.0.2 * *\n"
	       "999 52:54:00:00:00:09 10.0.0.9 * *\n",
	       now, true,
	       "granted 52:54:00:00:00:01 10.0.0.1\n"
	       "granted 52:54:00:00:00:02 10.0.0.2\n");
	assert_int_equal(known->n, 2);
	/* The same file again: nothing. */
	update(known,
	       "2000 52:54:00:00:00:01 10.0.0.1 * *\n"
	       "0 52:54:00:00:00:02 10.0.0.2 * *\n",
	       now, true, "");
	/* A renewal, and a MAC that moved to another IP. */
	update(known,
	       "3000 52:54:00:00:00:01 10.0.0.1 * *\n"
	       "0 52:54:00:00:00:02 10.0.0.5 * *\n",
	       now, true,
	       "renewed 52:54:00:00:00:01 10.0.0.1\n"
	       "expired 52:54:00:00:00:02 10.0.0.2\n"
	       "granted 52:54:00:00:00:02 10.0.0.5\n");
	assert_int_equal(netd_lease_set_find(known, "52:54:00:00:00:01")->expires_usec, 3000 * SEC);
	/* Without removals, a lease the file dropped is kept ... */
	update(known, "3000 52:54:00:00:00:01 10.0.0.1 * *\n", now, false, "");
	assert_int_equal(known->n, 2);
	/* ... unless its IP went to someone else ... */
	update(known,
	       "3000 52:54:00:00:00:01 10.0.0.1 * *\n"
	       "0 52:54:00:00:00:03 10.0.0.5 * *\n",
	       now, false,
	       "expired 52:54:00:00:00:02 10.0.0.5\n"
	       "granted 52:54:00:00:00:03 10.0.0.5\n");
	/* ... or it expired meanwhile. */
	update(known, "0 52:54:00:00:00:03 10.0.0.5 * *\n", 3000 * SEC, false,
	       "expired 52:54:00:00:00:01 10.0.0.1\n");
	/* With removals, gone is gone. */
	update(known, "", now, true, "expired 52:54:00:00:00:03 10.0.0.5\n");
	assert_int_equal(known->n, 0);
}

static void test_expire(void **state)
{
	_cleanup_(netd_lease_set_freep) struct netd_lease_set *known = NULL;
	struct netd_lease_change *ch = NULL;
	size_t n = 0;

	assert_int_equal(netd_lease_set_new(&known), 0);
	update(known,
	       "2000 52:54:00:00:00:01 10.0.0.1 * *\n"
	       "0 52:54:00:00:00:02 10.0.0.2 * *\n"
	       "1500 52:54:00:00:00:03 10.0.0.3 * *\n",
	       1000 * SEC, true,
	       "granted 52:54:00:00:00:01 10.0.0.1\n"
	       "granted 52:54:00:00:00:02 10.0.0.2\n"
	       "granted 52:54:00:00:00:03 10.0.0.3\n");
	assert_int_equal(netd_leases_next_expiry(known), 1500 * SEC);
	assert_int_equal(netd_leases_expire(known, 1499 * SEC, &ch, &n), 0);
	assert_int_equal(n, 0);
	free(ch);
	assert_int_equal(netd_leases_expire(known, 1500 * SEC, &ch, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ch[0].kind, NETD_LEASE_EXPIRED);
	assert_string_equal(ch[0].lease.ip, "10.0.0.3");
	free(ch);
	assert_int_equal(netd_leases_next_expiry(known), 2000 * SEC);
	assert_int_equal(known->n, 2);

	/* Release by MAC (any case). */
	struct netd_lease gone;
	assert_int_equal(netd_lease_set_remove(known, "52:54:00:00:00:01", &gone), 0);
	assert_string_equal(gone.ip, "10.0.0.1");
	assert_int_equal(netd_lease_set_remove(known, "52:54:00:00:00:01", NULL), -ENOENT);
	/* Only the infinite lease is left: nothing to time. */
	assert_int_equal(netd_leases_next_expiry(known), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_dnsmasq_lines, reset),
		cmocka_unit_test_teardown(test_dnsmasq_bad_lines, reset),
		cmocka_unit_test_teardown(test_dnsmasq_v6_section_and_partial, reset),
		cmocka_unit_test_teardown(test_duplicates, reset),
		cmocka_unit_test_teardown(test_too_many_leases, reset),
		cmocka_unit_test_teardown(test_json_file, reset),
		cmocka_unit_test_teardown(test_json_bad_entries, reset),
		cmocka_unit_test_teardown(test_whole_file_refused, reset),
		cmocka_unit_test_teardown(test_empty_file, reset),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_mac_normalize),
		cmocka_unit_test_teardown(test_diff, reset),
		cmocka_unit_test_teardown(test_expire, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
