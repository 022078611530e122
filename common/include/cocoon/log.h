/* Logging for daemons and CLIs.
 *
 * Levels are syslog priorities (LOG_ERR … LOG_DEBUG), set from an environment variable
 * (log_setup()). When stderr is connected to the journal ($JOURNAL_STREAM names our fd 2)
 * every line carries a `<N>` priority prefix that journald turns into PRIORITY=N; otherwise
 * lines are plain: "<time> <level> <program>: <message>".
 *
 * The *_errno variants format `%m` with the given error and return -abs(error), so a
 * caller can `return log_error_errno(r, "…: %m");`. Library code in common/ logs at
 * debug at most; the daemon decides what is worth telling the operator. */
#pragma once

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include "cocoon/macro.h"

enum log_target {
	LOG_TARGET_AUTO,    /* journal when $JOURNAL_STREAM matches stderr, else console */
	LOG_TARGET_CONSOLE, /* plain lines */
	LOG_TARGET_JOURNAL, /* "<N>" prefixed lines */
};

int log_get_max_level(void);
void log_set_max_level(int level);
/* "debug", "info", "notice", "warning"/"warn", "error"/"err", "crit", "alert", "emerg",
 * case-insensitive, or a digit 0-7. Returns the level or -EINVAL. */
int log_level_from_string(const char *s);
const char *log_level_to_string(int level);
void log_set_target(enum log_target t);
enum log_target log_get_target(void);
/* Program name used in console lines (default: program_invocation_short_name). */
void log_set_program(const char *name);
/* Reads the level from env_var (NULL: only detect the target). Returns -EINVAL when the
 * variable holds something that is not a level, leaving the level unchanged. */
int log_setup(const char *env_var);
/* Redirect output (tests). NULL restores stderr. */
void log_set_stream(FILE *f);

int log_internal(int level, int error, const char *func, const char *fmt, ...) _printf_(4, 5);
int log_internalv(int level, int error, const char *func, const char *fmt, va_list ap)
    _printf_(4, 0);

#define log_full_errno(level, error, ...)                                                          \
	({                                                                                         \
		int _lvl = (level), _err = (error);                                                \
		log_get_max_level() >= _lvl ? log_internal(_lvl, _err, __func__, __VA_ARGS__)      \
					    : -ABS(_err);                                          \
	})
#define log_full(level, ...) (void)log_full_errno(level, 0, __VA_ARGS__)

#define log_debug(...)   log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)    log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...)  log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...)   log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...)   log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...)    log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_notice_errno(e, ...)  log_full_errno(LOG_NOTICE, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_ERR, e, __VA_ARGS__)
#define log_oom_errno()           log_error_errno(ENOMEM, "out of memory")
