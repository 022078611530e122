/* Configuration from environment variables: one table per daemon.
 *
 * Each row names the variable (and an older alias accepted for compatibility), its default,
 * its type and where to store the parsed value. `--help` prints the table; conf_load()
 * parses every row and stops at the first malformed value with a message naming the
 * variable, the value and what was expected. An empty variable counts as unset.
 *
 * Values are stored without allocation: strings point into the environment or at the
 * default, so the table needs no free function. */
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "cocoon/macro.h"

struct conf_type {
	const char *name;     /* shown in --help: "duration", "bool", … */
	const char *expected; /* completes "expected …" in errors */
	int (*parse)(const char *value, void *ret, const void *arg);
};

struct conf_var {
	const char *name;
	const char *alias;
	const char *def; /* NULL: unset unless given */
	const struct conf_type *type;
	void *ret;
	const void *arg; /* type-specific: struct conf_range *, const char *const * (enum) */
	const char *help;
	const char *flag; /* NULL, or a command-line flag (without "--") that sets it, winning
			   * over the environment: "metrics-bind-address" */
};

struct conf_range {
	int64_t min, max;
};

/* ret: const char ** (any non-empty string) */
extern const struct conf_type conf_string;
/* ret: bool * — true/false/yes/no/on/off/1/0 */
extern const struct conf_type conf_bool;
/* ret: int64_t *; arg: const struct conf_range * (NULL: any int64) */
extern const struct conf_type conf_int;
/* ret: uint64_t * microseconds — Go durations: 300ms, 1.5h, 2h45m, 10s; bare 0 */
extern const struct conf_type conf_duration;
/* ret: int * — a log level name or 0-7 */
extern const struct conf_type conf_log_level;
/* ret: const char ** — "host:port", ":port" or "[v6]:port", port 0-65535 (0: any) */
extern const struct conf_type conf_listen;
/* ret: const char ** — an http:// or https:// URL with a host */
extern const struct conf_type conf_url;
/* ret: const char ** — one of the strings in arg (const char *const *, NULL-terminated) */
extern const struct conf_type conf_enum;

/* Parses every variable. On error returns -EINVAL and, when ret_error is not NULL, an
 * allocated message like: invalid REAPER_GRACE="30 minutes": expected a duration such as
 * 30s, 5m or 1h30m. */
int conf_load(const struct conf_var *vars, size_t n, char **ret_error);

/* Prints usage, the summary and every variable with its default and help. */
void conf_print_help(FILE *f, const char *prog, const char *summary, const struct conf_var *vars,
		     size_t n);

/* Handles the arguments every daemon accepts: --help/-h, --version, and the flags of the
 * variables that have one (--flag=value or --flag value; a boolean flag alone means true),
 * which are exported to the environment for conf_load(). Returns 1 when the
 * program should exit 0 (help or version printed), 0 to continue, -EINVAL for a usage error
 * (message printed to stderr; exit 2). */
int conf_handle_args(int argc, char **argv, const char *summary, const struct conf_var *vars,
		     size_t n);

/* Exposed for tests and for daemons' own flags. */
int conf_parse_duration(const char *s, uint64_t *ret_usec);
int conf_parse_listen(const char *s, char **ret_host, uint16_t *ret_port);

#define COCOON_EXIT_USAGE 2
