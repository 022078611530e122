/* Kubernetes timestamps (see kube.h): metav1.Time is RFC 3339 in UTC with second precision
 * ("2006-01-02T15:04:05Z"), metav1.MicroTime the same with exactly six fractional digits
 * (Lease renewTime/acquireTime, Event eventTime; spec/kube-api.md §1.9). We write those two
 * forms and read any RFC 3339 date-time (§5.6: any fraction length, "Z" or a numeric
 * offset), because other writers (kubectl, client-go, kubesim) are free to use them.
 * Times are CLOCK_REALTIME microseconds since the epoch; dates before 1970 are refused. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cocoon/kube.h"

uint64_t kube_time_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

char *kube_time_format(uint64_t usec, bool micro, char buf[static KUBE_TIME_MAX])
{
	time_t sec = (time_t)(usec / 1000000);
	struct tm tm;
	size_t n;

	if (!gmtime_r(&sec, &tm) || tm.tm_year + 1900 > 9999) {
		/* Beyond RFC 3339's four-digit years: clamp rather than write a bad date. */
		snprintf(buf, KUBE_TIME_MAX, "%s",
			 micro ? "9999-12-31T23:59:59.999999Z" : "9999-12-31T23:59:59Z");
		return buf;
	}
	n = strftime(buf, KUBE_TIME_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
	if (micro)
		snprintf(buf + n, KUBE_TIME_MAX - n, ".%06uZ", (unsigned)(usec % 1000000));
	else
		snprintf(buf + n, KUBE_TIME_MAX - n, "Z");
	return buf;
}

/* Reads exactly n decimal digits. */
static bool parse_digits(const char **p, unsigned n, unsigned *ret)
{
	unsigned v = 0;

	for (unsigned i = 0; i < n; i++) {
		char c = (*p)[i];

		if (c < '0' || c > '9')
			return false;
		v = v * 10 + (unsigned)(c - '0');
	}
	*p += n;
	*ret = v;
	return true;
}

static bool expect(const char **p, const char *chars)
{
	if (**p == 0 || !strchr(chars, **p))
		return false;
	(*p)++;
	return true;
}

static bool is_leap(unsigned y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
	static const unsigned char days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), for y >= 1970. */
static uint64_t days_since_epoch(unsigned y, unsigned m, unsigned d)
{
	uint64_t days = 0;

	for (unsigned yy = 1970; yy < y; yy++)
		days += is_leap(yy) ? 366 : 365;
	for (unsigned mm = 1; mm < m; mm++)
		days += days_in_month(y, mm);
	return days + d - 1;
}

/* The fraction: one or more digits, of which the first six count (no rounding, like Go's
 * truncation to the type's precision). */
static bool parse_fraction(const char **p, unsigned *ret_usec)
{
	unsigned usec = 0, n = 0;

	while (**p >= '0' && **p <= '9') {
		if (n < 6)
			usec = usec * 10 + (unsigned)(**p - '0');
		n++;
		(*p)++;
	}
	if (n == 0)
		return false;
	for (; n < 6; n++)
		usec *= 10;
	*ret_usec = usec;
	return true;
}

/* "Z" or "±hh:mm"; the offset is returned in seconds east of UTC. */
static bool parse_offset(const char **p, int64_t *ret)
{
	unsigned oh, om;
	int sign;

	if (expect(p, "Zz")) {
		*ret = 0;
		return true;
	}
	if (**p != '+' && **p != '-')
		return false;
	sign = **p == '-' ? -1 : 1;
	(*p)++;
	if (!parse_digits(p, 2, &oh) || !expect(p, ":") || !parse_digits(p, 2, &om) || oh > 23 ||
	    om > 59)
		return false;
	*ret = sign * (int64_t)(oh * 3600 + om * 60);
	return true;
}

int kube_time_parse(const char *s, uint64_t *ret_usec)
{
	unsigned y, mo, d, h, mi, sec, usec = 0;
	const char *p = s;
	int64_t offset, total;

	if (!s || !ret_usec)
		return -EINVAL;
	if (!parse_digits(&p, 4, &y) || !expect(&p, "-") || !parse_digits(&p, 2, &mo) ||
	    !expect(&p, "-") || !parse_digits(&p, 2, &d) || !expect(&p, "Tt") ||
	    !parse_digits(&p, 2, &h) || !expect(&p, ":") || !parse_digits(&p, 2, &mi) ||
	    !expect(&p, ":") || !parse_digits(&p, 2, &sec))
		return -EINVAL;
	if (*p == '.' && (p++, !parse_fraction(&p, &usec)))
		return -EINVAL;
	if (!parse_offset(&p, &offset) || *p != 0)
		return -EINVAL;
	/* Go's time.Parse refuses leap seconds (60) as well. */
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
		return -EINVAL;
	if (y < 1970)
		return -ERANGE;
	total = (int64_t)days_since_epoch(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset;
	if (total < 0)
		return -ERANGE;
	*ret_usec = (uint64_t)total * 1000000 + usec;
	return 0;
}
