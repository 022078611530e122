/* Kubernetes resource quantities: parsing, the apiserver's canonical form, comparison and
 * the rounding accessors. See quantity.h for the grammar and where we differ from Go.
 *
 * The value is kept as a signed count of nano-units in an __int128: 2^63-1 whole units is
 * about 9.2e27 nanos, far inside its range, so every operation here is exact. Parsing goes
 * through a decimal digit string because a mantissa may be arbitrarily long ("0.000…01",
 * "1000…0e-40") and binary suffixes multiply it by up to 2^60 before rounding. */
#include <limits.h>
#include <string.h>

#include "cocoon/macro.h"
#include "cocoon/quantity.h"

#define NANO     1000000000
#define MAX_NANO ((__int128)INT64_MAX * NANO)
/* Decimal digits of MAX_NANO; any longer integer overflows. */
#define MAX_NANO_DIGITS 28
/* 1024^6 = 2^60 adds at most 19 decimal digits to a mantissa. */
#define BINARY_GROWTH_DIGITS 19

struct suffix {
	const char *name;
	int base;     /* 10 or 2 */
	int exponent; /* of the base */
	enum quantity_format format;
};

static const struct suffix suffixes[] = {
	{ "", 10, 0, QUANTITY_DECIMAL_SI },   { "n", 10, -9, QUANTITY_DECIMAL_SI },
	{ "u", 10, -6, QUANTITY_DECIMAL_SI }, { "m", 10, -3, QUANTITY_DECIMAL_SI },
	{ "k", 10, 3, QUANTITY_DECIMAL_SI },  { "M", 10, 6, QUANTITY_DECIMAL_SI },
	{ "G", 10, 9, QUANTITY_DECIMAL_SI },  { "T", 10, 12, QUANTITY_DECIMAL_SI },
	{ "P", 10, 15, QUANTITY_DECIMAL_SI }, { "E", 10, 18, QUANTITY_DECIMAL_SI },
	{ "Ki", 2, 10, QUANTITY_BINARY_SI },  { "Mi", 2, 20, QUANTITY_BINARY_SI },
	{ "Gi", 2, 30, QUANTITY_BINARY_SI },  { "Ti", 2, 40, QUANTITY_BINARY_SI },
	{ "Pi", 2, 50, QUANTITY_BINARY_SI },  { "Ei", 2, 60, QUANTITY_BINARY_SI },
};

static const char *const binary_names[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* "e<int32>" / "E<int32>" with an optional sign, as Go's strconv.ParseInt(s, 10, 32). */
static int parse_exponent_suffix(const char *s, int64_t *ret)
{
	bool neg = false;
	int64_t v = 0;

	if (*s != 'e' && *s != 'E')
		return -EINVAL;
	s++;
	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (!is_digit(*s))
			return -EINVAL;
		v = v * 10 + (*s - '0');
		if (v > (int64_t)INT32_MAX + 1)
			return -EINVAL;
	}
	if (!neg && v > INT32_MAX)
		return -EINVAL;
	*ret = neg ? -v : v;
	return 0;
}

static int parse_suffix(const char *s, struct suffix *ret)
{
	int64_t e;

	for (size_t i = 0; i < ELEMENTSOF(suffixes); i++)
		if (streq(s, suffixes[i].name)) {
			*ret = suffixes[i];
			return 0;
		}
	/* A lone "E" is exa (matched above); "E3" and "e3" are exponents. */
	if (parse_exponent_suffix(s, &e) < 0)
		return -EINVAL;
	*ret = (struct suffix){
		.name = s, .base = 10, .exponent = (int)e, .format = QUANTITY_DECIMAL_EXPONENT
	};
	return 0;
}

/* Multiplies the right-aligned decimal digits buf[*start, end) by m in place, growing
 * leftwards; the caller reserved room for the growth. */
static void digits_multiply(char *buf, size_t *start, size_t end, unsigned m)
{
	unsigned carry = 0;

	for (size_t i = end; i > *start; i--) {
		unsigned v = (unsigned)buf[i - 1] * m + carry;
		buf[i - 1] = (char)(v % 10);
		carry = v / 10;
	}
	while (carry) {
		buf[--*start] = (char)(carry % 10);
		carry /= 10;
	}
}

static __int128 digits_value(const char *d, size_t n)
{
	__int128 v = 0;

	for (size_t i = 0; i < n; i++)
		v = v * 10 + d[i];
	return v;
}

/* The magnitude d[0..n) × 10^exp10 in nanos, rounded away from zero. d has no leading or
 * trailing zeros and n > 0. */
static int digits_to_nano(const char *d, size_t n, int64_t exp10, __int128 *ret)
{
	int64_t p = exp10 + 9; /* nanos = d × 10^p */
	__int128 v;

	if (p >= 0) {
		if (p > MAX_NANO_DIGITS || (int64_t)n > MAX_NANO_DIGITS - p)
			return -ERANGE;
		v = digits_value(d, n);
		while (p-- > 0)
			v *= 10;
	} else if ((uint64_t)-p >= n) {
		/* Below one nano but not zero: the apiserver rounds up to 1n ("0.9n" → "1n"). */
		v = 1;
	} else {
		size_t keep = n - (size_t)-p;

		if (keep > MAX_NANO_DIGITS)
			return -ERANGE;
		/* The dropped digits end in a non-zero digit, so there is always a remainder. */
		v = digits_value(d, keep) + 1;
	}
	if (v > MAX_NANO)
		return -ERANGE;
	*ret = v;
	return 0;
}

int quantity_parse(const char *s, struct quantity *ret)
{
	_cleanup_(freep) char *buf = NULL;
	const char *p = s, *int_start, *frac_start = NULL;
	size_t int_len, frac_len = 0, start, end, size;
	struct suffix suf;
	__int128 nano = 0;
	bool neg = false;
	int64_t exp10;
	int r;

	if (isempty(s))
		return -EINVAL;
	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	int_start = p;
	while (is_digit(*p))
		p++;
	int_len = (size_t)(p - int_start);
	if (*p == '.') {
		frac_start = ++p;
		while (is_digit(*p))
			p++;
		frac_len = (size_t)(p - frac_start);
	}
	if (int_len + frac_len == 0)
		return -EINVAL;
	if (parse_suffix(p, &suf) < 0)
		return -EINVAL;

	/* Integer and fraction digits as one right-aligned digit string, leading zeros
	 * dropped; exp10 places the decimal point. */
	size = int_len + frac_len + BINARY_GROWTH_DIGITS;
	buf = malloc(size);
	if (!buf)
		return -ENOMEM;
	start = end = size;
	start -= int_len + frac_len;
	for (size_t i = 0; i < int_len; i++)
		buf[start + i] = (char)(int_start[i] - '0');
	for (size_t i = 0; i < frac_len; i++)
		buf[start + int_len + i] = (char)(frac_start[i] - '0');
	while (start < end && buf[start] == 0)
		start++;
	exp10 = (suf.base == 10 ? suf.exponent : 0) - (int64_t)frac_len;
	if (suf.base == 2)
		for (int i = 0; i < suf.exponent / 10 && start < end; i++)
			digits_multiply(buf, &start, end, 1024);
	while (end > start && buf[end - 1] == 0) {
		end--;
		exp10++;
	}

	if (end > start) {
		r = digits_to_nano(buf + start, end - start, exp10, &nano);
		if (r < 0)
			return r;
	}
	/* Go switches a binary value strictly between -1 and 1 to decimal at parse time. */
	if (suf.format == QUANTITY_BINARY_SI && nano != 0 && nano < NANO)
		suf.format = QUANTITY_DECIMAL_SI;

	*ret = (struct quantity){ .nano = neg ? -nano : nano, .format = suf.format };
	return 0;
}

/* Appends the decimal digits of v (> 0) at *pos. */
static void put_u128(char *out, size_t *pos, unsigned __int128 v)
{
	char tmp[40];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + (int)(v % 10));
		v /= 10;
	} while (v);
	while (n)
		out[(*pos)++] = tmp[--n];
}

static const char *decimal_si_name(int exponent)
{
	for (size_t i = 0; i < ELEMENTSOF(suffixes); i++)
		if (suffixes[i].base == 10 && suffixes[i].exponent == exponent)
			return suffixes[i].name;
	return NULL;
}

/* The mantissa/exponent step of Quantity.CanonicalizeBytes for the decimal formats: drop
 * trailing zeros, then lower the exponent to a multiple of 3. */
static void format_decimal(char *out, size_t *pos, unsigned __int128 mag,
			   enum quantity_format format)
{
	const char *name = NULL;
	int exponent = -9;

	while (mag % 10 == 0) {
		mag /= 10;
		exponent++;
	}
	/* C's % keeps the sign, so a negative exponent steps down to -3, -6, -9 too. This
	 * multiplies back at most the zeros just removed, so it cannot overflow. */
	while (exponent % 3 != 0) {
		mag *= 10;
		exponent--;
	}
	put_u128(out, pos, mag);
	if (format == QUANTITY_DECIMAL_SI)
		name = decimal_si_name(exponent);
	if (name) {
		size_t len = strlen(name);

		memcpy(out + *pos, name, len);
		*pos += len;
	} else if (exponent != 0) {
		/* Decimal exponent, or an SI value past "E" (unreachable within 2^63-1, but
		 * this is what Go falls back to). */
		out[(*pos)++] = 'e';
		if (exponent < 0) {
			out[(*pos)++] = '-';
			exponent = -exponent;
		}
		put_u128(out, pos, (unsigned)exponent);
	}
}

int quantity_format(const struct quantity *q, char *buf, size_t n)
{
	char out[QUANTITY_STRING_MAX];
	enum quantity_format format = q->format;
	unsigned __int128 mag;
	size_t pos = 0;

	/* Only a hand-built struct can be out of range; refuse it rather than overflow out. */
	if (q->nano > MAX_NANO || q->nano < -MAX_NANO)
		return -ERANGE;
	if (q->nano == 0) {
		out[pos++] = '0';
	} else {
		mag = q->nano < 0 ? (unsigned __int128)-q->nano : (unsigned __int128)q->nano;
		if (q->nano < 0)
			out[pos++] = '-';
		/* Binary only when the value is whole and at least 1Ki, else precision
		 * would be lost or the suffix would be empty anyway. */
		if (format == QUANTITY_BINARY_SI &&
		    (mag < (unsigned __int128)1024 * NANO || mag % NANO != 0))
			format = QUANTITY_DECIMAL_SI;
		if (format == QUANTITY_BINARY_SI) {
			unsigned __int128 units = mag / NANO;
			size_t k = 0;

			while (units >= 1024 && units % 1024 == 0 &&
			       k + 1 < ELEMENTSOF(binary_names)) {
				units /= 1024;
				k++;
			}
			put_u128(out, &pos, units);
			memcpy(out + pos, binary_names[k], strlen(binary_names[k]));
			pos += strlen(binary_names[k]);
		} else {
			format_decimal(out, &pos, mag, format);
		}
	}
	if (pos + 1 > n)
		return -ENOBUFS;
	memcpy(buf, out, pos);
	buf[pos] = 0;
	return (int)pos;
}

int quantity_cmp(const struct quantity *a, const struct quantity *b)
{
	return (a->nano > b->nano) - (a->nano < b->nano);
}

/* The value divided by 10^9/per_unit, rounded away from zero like Go's ScaledValue. */
static __int128 scaled_away_from_zero(__int128 nano, int64_t divisor)
{
	__int128 mag = nano < 0 ? -nano : nano;
	__int128 v = mag / divisor + (mag % divisor != 0);

	return nano < 0 ? -v : v;
}

int64_t quantity_value(const struct quantity *q)
{
	/* |nano| <= (2^63-1)·10^9, so the rounded value is at most 2^63-1. */
	return (int64_t)scaled_away_from_zero(q->nano, NANO);
}

int quantity_milli_value(const struct quantity *q, int64_t *ret)
{
	__int128 v = scaled_away_from_zero(q->nano, NANO / 1000);

	if (v > INT64_MAX || v < INT64_MIN)
		return -ERANGE;
	*ret = (int64_t)v;
	return 0;
}

bool quantity_is_canonical(const char *s)
{
	char buf[QUANTITY_STRING_MAX];
	struct quantity q;

	if (quantity_parse(s, &q) < 0)
		return false;
	quantity_format(&q, buf, sizeof buf);
	return streq(buf, s);
}

int quantity_equal_str(const char *a, const char *b)
{
	struct quantity qa, qb;
	int r;

	r = quantity_parse(a, &qa);
	if (r < 0)
		return r;
	r = quantity_parse(b, &qb);
	if (r < 0)
		return r;
	return quantity_cmp(&qa, &qb) == 0;
}
