/* NULL-terminated string lists (command lines, DNS servers, selectors…), freed with
 * strv_free() of macro.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "cocoon/macro.h"

size_t strv_length(char *const *l);
int strv_push(char ***l, const char *s);
int strv_copy(char *const *l, char ***ret);
bool strv_equal(char *const *a, char *const *b);
bool strv_contains(char *const *l, const char *s);
/* Split on sep, trim blanks, drop empty items (the --dns rule). "" gives an empty list. */
int strv_split(const char *s, char sep, char ***ret);
/* Items joined with sep; "" for an empty or NULL list. */
int strv_join(char *const *l, const char *sep, char **ret);
/* A list of the NULL-terminated arguments (a command line); NULL when out of memory. */
char **strv_new(const char *first, ...);
