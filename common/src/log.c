/* Logging: level filter, journald "<N>" prefixes or plain console lines. See log.h. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cocoon/log.h"

static int max_level = LOG_INFO;
static enum log_target target = LOG_TARGET_AUTO;
static enum log_target resolved = LOG_TARGET_AUTO;
static const char *program;
static FILE *stream;

static const char *const level_names[] = {
	[LOG_EMERG] = "emerg", [LOG_ALERT] = "alert",     [LOG_CRIT] = "crit",
	[LOG_ERR] = "error",   [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
	[LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
};

int log_get_max_level(void)
{
	return max_level;
}

void log_set_max_level(int level)
{
	if (level >= LOG_EMERG && level <= LOG_DEBUG)
		max_level = level;
}

int log_level_from_string(const char *s)
{
	if (isempty(s))
		return -EINVAL;
	if (s[0] >= '0' && s[0] <= '7' && s[1] == 0)
		return s[0] - '0';
	for (int i = 0; i < (int)ELEMENTSOF(level_names); i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return i;
	if (strcasecmp(s, "warn") == 0)
		return LOG_WARNING;
	if (strcasecmp(s, "err") == 0)
		return LOG_ERR;
	return -EINVAL;
}

const char *log_level_to_string(int level)
{
	if (level < LOG_EMERG || level > LOG_DEBUG)
		return NULL;
	return level_names[level];
}

void log_set_target(enum log_target t)
{
	target = t;
	resolved = LOG_TARGET_AUTO;
}

void log_set_program(const char *name)
{
	program = name;
}

void log_set_stream(FILE *f)
{
	stream = f;
}

/* systemd sets $JOURNAL_STREAM=<dev>:<ino> of the stream it connected to stderr. Only
 * trust it when fd 2 is still that stream (a child may have redirected stderr). */
static bool stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (isempty(e) || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return st.st_dev == dev && st.st_ino == ino;
}

enum log_target log_get_target(void)
{
	if (target != LOG_TARGET_AUTO)
		return target;
	if (resolved == LOG_TARGET_AUTO)
		resolved = stderr_is_journal() ? LOG_TARGET_JOURNAL : LOG_TARGET_CONSOLE;
	return resolved;
}

int log_setup(const char *env_var)
{
	const char *v;
	int l;

	resolved = LOG_TARGET_AUTO;
	if (!env_var || isempty(v = getenv(env_var)))
		return 0;
	l = log_level_from_string(v);
	if (l < 0)
		return l;
	max_level = l;
	return 0;
}

int log_internalv(int level, int error, const char *func, const char *fmt, va_list ap)
{
	FILE *f = stream ? stream : stderr;
	int saved = errno;

	error = ABS(error);
	if (level > max_level)
		return -error;
	/* %m in fmt means "this error", not whatever errno happens to hold. */
	errno = error;

	if (log_get_target() == LOG_TARGET_JOURNAL) {
		fprintf(f, "<%d>", level);
	} else {
		struct timespec ts;
		struct tm tm;
		char tbuf[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(f, "%s.%03ldZ %-7s %s: ", tbuf, ts.tv_nsec / 1000000, level_names[level],
			program ? program : program_invocation_short_name);
	}
	vfprintf(f, fmt, ap);
	fputc('\n', f);
	fflush(f);
	errno = saved;
	return -error;
}

int log_internal(int level, int error, const char *func, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = log_internalv(level, error, func, fmt, ap);
	va_end(ap);
	return r;
}
