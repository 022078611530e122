/* Error-message helper shared by parsers and validators. See errmsg.h. */
#include <stdarg.h>
#include <stdio.h>

#include "cocoon/errmsg.h"

int errmsg_set(char **ret_error, int error, const char *fmt, ...)
{
	va_list ap;

	if (ret_error) {
		va_start(ap, fmt);
		if (vasprintf(ret_error, fmt, ap) < 0)
			*ret_error = NULL;
		va_end(ap);
	}
	return -ABS(error);
}
