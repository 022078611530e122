/* Error messages for callers: the parsers and validators of every module report what was
 * wrong and where through a `char **ret_error` (allocated text) next to a negative errno. */
#pragma once

#include "cocoon/macro.h"

/* Formats the message into *ret_error (when ret_error is not NULL) and returns -|error|.
 * When the message cannot be allocated, *ret_error is NULL and the error is still returned:
 * the class of the failure matters more than its text. */
int errmsg_set(char **ret_error, int error, const char *fmt, ...) _printf_(3, 4);
