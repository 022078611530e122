/* quantity: canonical strings as the apiserver prints them (rows taken from apimachinery's
 * quantity_test.go: TestQuantityParse, TestQuantityString alternates, TestQuantityParseEmit),
 * rejected inputs, the 2^63-1 bound, comparison across formats, Value/MilliValue rounding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "cocoon/macro.h"
#include "cocoon/quantity.h"

struct canon_row {
	const char *in;
	const char *canonical;
	enum quantity_format format;
};

#define DSI QUANTITY_DECIMAL_SI
#define BSI QUANTITY_BINARY_SI
#define DEX QUANTITY_DECIMAL_EXPONENT

static const struct canon_row canon_rows[] = {
	/* the brief's and the operator's everyday values */
	{ "1500m", "1500m", DSI },
	{ "1.5", "1500m", DSI },
	{ "0.5", "500m", DSI },
	{ "1000m", "1", DSI },
	{ "4Gi", "4Gi", BSI },
	{ "1024Mi", "1Gi", BSI },
	{ "10G", "10G", DSI },
	{ "100G", "100G", DSI },
	{ "15G", "15G", DSI },
	{ "20Gi", "20Gi", BSI },
	{ "1e3", "1e3", DEX },
	{ "100M", "100M", DSI },
	{ "1k", "1k", DSI },
	{ "0", "0", DSI },
	{ "-1", "-1", DSI },
	{ "1.5Gi", "1536Mi", BSI },
	{ "0.5Gi", "512Mi", BSI },
	{ "1.1Gi", "1181116006400m", BSI },
	/* TestQuantityParseEmit */
	{ "1Ki", "1Ki", BSI },
	{ "1Mi", "1Mi", BSI },
	{ "1Gi", "1Gi", BSI },
	{ "1000M", "1G", DSI },
	{ ".001Ki", "1024m", BSI },
	{ ".000001Ki", "1024u", DSI },
	{ ".000000001Ki", "1024n", DSI },
	{ ".000000000001Ki", "2n", DSI },
	{ "-.001Ki", "-1024m", BSI },
	/* TestQuantityString: alternate spelling → canonical */
	{ "307200Ki", "300Mi", BSI },
	{ "1025024Mi", "1001Gi", BSI },
	{ "1024Gi", "1Ti", BSI },
	{ "5000m", "5", DSI },
	{ "0.001T", "1G", DSI },
	{ "1000u", "1m", DSI },
	{ "1.08", "1080m", DSI },
	{ "1080000000n", "1080m", DSI },
	{ ".001e12", "1e9", DEX },
	{ "0.001e0", "1e-3", DEX },
	{ "1000e-12", "1e-9", DEX },
	{ "00", "0", DSI },
	{ "6Ki", "6Ki", BSI },
	{ "1234567M", "1234567M", DSI },
	{ "1025", "1025", DSI },
	{ "80e-3", "80e-3", DEX },
	{ "300e6", "300e6", DEX },
	{ "1080n", "1080n", DSI },
	{ "80u", "80u", DSI },
	/* TestQuantityParse values, printed */
	{ "0Ki", "0", BSI },
	{ "0n", "0", DSI },
	{ "50k", "50k", DSI },
	{ "300T", "300T", DSI },
	{ "1E", "1E", DSI },
	{ "1E-3", "1e-3", DEX },
	{ "1E6", "1e6", DEX },
	{ "1e14", "100e12", DEX },
	{ "100.035k", "100035", DSI },
	{ "0.0005k", "500m", DSI },
	{ "0.00050k", "500m", DSI },
	{ "0.5e-1", "50e-3", DEX },
	{ "10.035M", "10035k", DSI },
	{ "1.2e3", "1200", DEX },
	{ "1.3E+6", "1300e3", DEX },
	{ "1.40e9", "1400e6", DEX },
	{ "1.53E12", "1530e9", DEX },
	{ "1.7E18", "1700e15", DEX },
	{ "9.01", "9010m", DSI },
	{ "8.1k", "8100", DSI },
	{ "6.987654321G", "6987654321", DSI },
	{ "40.1T", "40100G", DSI },
	{ "2.5P", "2500T", DSI },
	{ "1.01E", "1010P", DSI },
	{ "3.001n", "4n", DSI },
	{ "1.1E-9", "2e-9", DEX },
	{ "0.0000000005", "1n", DSI },
	{ "0.5e-9", "1e-9", DEX },
	{ "0.9n", "1n", DSI },
	{ "0.00000012345", "124n", DSI },
	{ "100.035Ki", "102435840m", BSI },
	{ "0.5Mi", "512Ki", BSI },
	{ "0.05Gi", "53687091200m", BSI },
	{ "0.025Ti", "27487790694400m", BSI },
	{ "0.000000000001Ki", "2n", DSI },
	{ ".0001k", "100m", DSI },
	{ "1.", "1", DSI },
	{ "1.G", "1G", DSI },
	{ "3Ei", "3Ei", BSI },
	/* sign, leading zeros, exponent spellings, binary fallbacks */
	{ "+1", "1", DSI },
	{ "01", "1", DSI },
	{ "-0", "0", DSI },
	{ "-1Ki", "-1Ki", BSI },
	{ "-1.5Ki", "-1536", BSI },
	{ "1.5Ki", "1536", BSI },
	{ "0.5Ki", "512", BSI },
	{ "1023Ki", "1023Ki", BSI },
	{ "1048576", "1048576", DSI },
	{ "2000", "2k", DSI },
	{ "1e0", "1", DEX },
	{ "1E+03", "1e3", DEX },
	{ "10e2", "1e3", DEX },
	{ "1e-1000000", "1e-9", DEX },
	{ "0e2147483647", "0", DEX },
	{ "0.000000000000000000000000000000000000000000000001", "1n", DSI },
	{ "1000000000000000000000000000000000000000000e-40", "100", DEX },
	{ "9223372036854775807", "9223372036854775807", DSI },
	{ "7Ei", "7Ei", BSI },
	{ "-9223372036854775807", "-9223372036854775807", DSI },
	{ "9223372036854775806.999999999", "9223372036854775806999999999n", DSI },
};

static void test_canonical_table(void **state)
{
	char buf[QUANTITY_STRING_MAX], again[QUANTITY_STRING_MAX];

	assert_true(ELEMENTSOF(canon_rows) >= 40);
	for (size_t i = 0; i < ELEMENTSOF(canon_rows); i++) {
		const struct canon_row *row = &canon_rows[i];
		struct quantity q, q2;
		int n;

		if (quantity_parse(row->in, &q) != 0)
			fail_msg("\"%s\" did not parse", row->in);
		n = quantity_format(&q, buf, sizeof buf);
		if (n < 0 || !streq(buf, row->canonical))
			fail_msg("\"%s\" printed \"%s\", want \"%s\"", row->in, n < 0 ? "?" : buf,
				 row->canonical);
		assert_int_equal((size_t)n, strlen(row->canonical));
		if (q.format != row->format)
			fail_msg("\"%s\" has format %d, want %d", row->in, q.format, row->format);
		/* the canonical string is canonical, and is the same value */
		assert_true(quantity_is_canonical(row->canonical));
		assert_int_equal(quantity_parse(row->canonical, &q2), 0);
		assert_int_equal(quantity_cmp(&q, &q2), 0);
		quantity_format(&q2, again, sizeof again);
		assert_string_equal(again, row->canonical);
	}
}

static void test_negated_table(void **state)
{
	/* Every row negated prints as "-" + canonical (or "0"), like TestQuantityParseEmit. */
	for (size_t i = 0; i < ELEMENTSOF(canon_rows); i++) {
		const struct canon_row *row = &canon_rows[i];
		char in[128], want[QUANTITY_STRING_MAX + 1], buf[QUANTITY_STRING_MAX];
		struct quantity q;

		if (row->in[0] == '-' || row->in[0] == '+')
			continue;
		snprintf(in, sizeof in, "-%s", row->in);
		snprintf(want, sizeof want, "%s%s", streq(row->canonical, "0") ? "" : "-",
			 row->canonical);
		assert_int_equal(quantity_parse(in, &q), 0);
		quantity_format(&q, buf, sizeof buf);
		if (!streq(buf, want))
			fail_msg("\"%s\" printed \"%s\", want \"%s\"", in, buf, want);
	}
}

static void test_binary_not_fixed_point(void **state)
{
	/* Go's canonical form of a whole binary value that 1024 does not divide has no suffix,
	 * so it reads back as decimal and canonicalises again: "2000" → "2k". Same value. */
	char a[QUANTITY_STRING_MAX], b[QUANTITY_STRING_MAX];
	struct quantity q, q2;

	assert_int_equal(quantity_parse("1.953125Ki", &q), 0);
	quantity_format(&q, a, sizeof a);
	assert_string_equal(a, "2000");
	assert_int_equal(quantity_parse(a, &q2), 0);
	quantity_format(&q2, b, sizeof b);
	assert_string_equal(b, "2k");
	assert_int_equal(quantity_cmp(&q, &q2), 0);
	assert_false(quantity_is_canonical("2000"));
}

static void test_invalid(void **state)
{
	static const char *const invalid[] = {
		"",
		" 1",
		"1 ",
		"1.2.3",
		"1.1.M",
		"1+1.0M",
		"5Gb",
		"1ki",
		"1K",
		"0.1mi",
		"0.1am",
		"aoeu",
		".5i",
		"1i",
		"-3.01i",
		"-3.01e-",
		"1e",
		"1E+",
		"1e+-3",
		"1e3.5",
		"e3",
		".",
		"-",
		"+",
		"-.",
		"Gi",
		"m",
		"1Gi1",
		"1mi",
		"1\n",
		"1,5",
		"0x10",
		"1e2147483648",
		"1e-2147483649",
		"1e99999999999999999999",
		"--1",
		"+-1",
		"1.5 Gi",
		"١",
	};
	struct quantity q = { .nano = 42 };

	for (size_t i = 0; i < ELEMENTSOF(invalid); i++)
		if (quantity_parse(invalid[i], &q) != -EINVAL)
			fail_msg("\"%s\" was not rejected with -EINVAL", invalid[i]);
	assert_int_equal(quantity_parse(NULL, &q), -EINVAL);
	assert_true(q.nano == 42); /* no partial result */
	/* the int32 exponent bounds themselves are fine */
	assert_int_equal(quantity_parse("1e-2147483648", &q), 0);
	assert_int_equal(quantity_parse("0e2147483647", &q), 0);
}

static void test_out_of_range(void **state)
{
	static const char *const too_big[] = {
		"9223372036854775808",
		"-9223372036854775808",
		"9223372036854775807.5",
		"8Ei",
		"9Ei",
		"9223372036854775807Ki",
		"10E",
		"12E",
		"1e19",
		"1e2147483647",
		"99999999999999999999999999999999999999999999999999",
	};
	struct quantity q = { .nano = 42 };
	char buf[QUANTITY_STRING_MAX];

	for (size_t i = 0; i < ELEMENTSOF(too_big); i++)
		if (quantity_parse(too_big[i], &q) != -ERANGE)
			fail_msg("\"%s\" was not rejected with -ERANGE", too_big[i]);
	assert_true(q.nano == 42);
	/* a hand-built struct out of range is refused rather than printed */
	q.nano = (__int128)1 << 100;
	assert_int_equal(quantity_format(&q, buf, sizeof buf), -ERANGE);
}

static void test_format_buffer(void **state)
{
	struct quantity q;
	char small[5];

	assert_int_equal(quantity_parse("1500m", &q), 0);
	assert_int_equal(quantity_format(&q, small, sizeof small), -ENOBUFS);
	assert_int_equal(quantity_parse("150m", &q), 0);
	assert_int_equal(quantity_format(&q, small, sizeof small), 4);
	assert_string_equal(small, "150m");
}

static void test_cmp_across_formats(void **state)
{
	static const struct {
		const char *a, *b;
		int cmp;
	} rows[] = {
		{ "1Gi", "1073741824", 0 }, { "1000m", "1", 0 },   { "1k", "1e3", 0 },
		{ "1Ki", "1024", 0 },       { "0", "0Gi", 0 },     { "-0", "0", 0 },
		{ "100m", "50m", 1 },       { "50m", "100m", -1 }, { "10000T", "100Gi", 1 },
		{ "1G", "1Gi", -1 },        { "1n", "0", 1 },      { "-1n", "0", -1 },
		{ "1.5Gi", "1536Mi", 0 },   { "2", "1999m", 1 },
	};

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		struct quantity a, b;

		assert_int_equal(quantity_parse(rows[i].a, &a), 0);
		assert_int_equal(quantity_parse(rows[i].b, &b), 0);
		if (quantity_cmp(&a, &b) != rows[i].cmp || quantity_cmp(&b, &a) != -rows[i].cmp)
			fail_msg("cmp(%s, %s) != %d", rows[i].a, rows[i].b, rows[i].cmp);
		assert_int_equal(quantity_equal_str(rows[i].a, rows[i].b), rows[i].cmp == 0);
	}
	assert_int_equal(quantity_equal_str("1Gi", "1GB"), -EINVAL);
	assert_int_equal(quantity_equal_str("1x", "1"), -EINVAL);
	assert_int_equal(quantity_equal_str("1", "1e40"), -ERANGE);
}

static void test_value_rounding(void **state)
{
	static const struct {
		const char *in;
		int64_t value, milli;
	} rows[] = {
		{ "1500m", 2, 1500 },
		{ "-1500m", -2, -1500 },
		{ "1", 1, 1000 },
		{ "1n", 1, 1 },
		{ "-1n", -1, -1 },
		{ "0.5", 1, 500 },
		{ "-0.4", -1, -400 },
		{ "1.0001m", 1, 2 },
		{ "0", 0, 0 },
		{ "1Gi", 1073741824, 1073741824000 },
		{ "4Gi", 4294967296, 4294967296000 },
		{ "20Gi", 21474836480, 21474836480000 },
		{ "10G", 10000000000, 10000000000000 },
		{ "2", 2, 2000 },
		{ "250m", 1, 250 },
		{ "9223372036854775m", 9223372036855, 9223372036854775 },
	};
	struct quantity q;
	int64_t m;

	for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
		assert_int_equal(quantity_parse(rows[i].in, &q), 0);
		if (quantity_value(&q) != rows[i].value)
			fail_msg("Value(%s) = %lld", rows[i].in, (long long)quantity_value(&q));
		assert_int_equal(quantity_milli_value(&q, &m), 0);
		if (m != rows[i].milli)
			fail_msg("MilliValue(%s) = %lld", rows[i].in, (long long)m);
	}
	assert_int_equal(quantity_parse("9223372036854775807", &q), 0);
	assert_true(quantity_value(&q) == INT64_MAX);
	m = 7;
	assert_int_equal(quantity_milli_value(&q, &m), -ERANGE);
	assert_true(m == 7);
	assert_int_equal(quantity_parse("-9223372036854775807", &q), 0);
	assert_true(quantity_value(&q) == -INT64_MAX);
}

static void test_is_canonical(void **state)
{
	static const char *const yes[] = { "1500m",  "1Gi",  "100G",          "0", "-1", "1e3",
					   "1536Mi", "500m", "1181116006400m" };
	static const char *const no[] = { "1.5", "1024Mi", "+1",     "01", "1E3", "1000m",
					  "0Gi", "-0",     "1.500k", "",   "abc", "1e40" };

	for (size_t i = 0; i < ELEMENTSOF(yes); i++)
		if (!quantity_is_canonical(yes[i]))
			fail_msg("\"%s\" should be canonical", yes[i]);
	for (size_t i = 0; i < ELEMENTSOF(no); i++)
		if (quantity_is_canonical(no[i]))
			fail_msg("\"%s\" should not be canonical", no[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canonical_table),
		cmocka_unit_test(test_negated_table),
		cmocka_unit_test(test_binary_not_fixed_point),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_format_buffer),
		cmocka_unit_test(test_cmp_across_formats),
		cmocka_unit_test(test_value_rounding),
		cmocka_unit_test(test_is_canonical),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
