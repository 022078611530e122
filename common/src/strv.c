/* NULL-terminated string lists. See strv.h. */
#include <stdarg.h>
#include <string.h>

#include "cocoon/strv.h"

size_t strv_length(char *const *l)
{
	size_t n = 0;

	if (l)
		while (l[n])
			n++;
	return n;
}

static int strv_push_take(char ***l, char *s)
{
	size_t n = strv_length(*l);
	char **nl = realloc(*l, (n + 2) * sizeof(char *));

	if (!nl) {
		free(s);
		return -ENOMEM;
	}
	nl[n] = s;
	nl[n + 1] = NULL;
	*l = nl;
	return 0;
}

int strv_push(char ***l, const char *s)
{
	char *c = strdup(s);

	if (!c)
		return -ENOMEM;
	return strv_push_take(l, c);
}

int strv_copy(char *const *l, char ***ret)
{
	_cleanup_(strv_freep) char **c = calloc(1, sizeof(char *));

	if (!c)
		return -ENOMEM;
	for (size_t i = 0; l && l[i]; i++)
		if (strv_push(&c, l[i]) < 0)
			return -ENOMEM;
	*ret = TAKE_PTR(c);
	return 0;
}

bool strv_equal(char *const *a, char *const *b)
{
	size_t n = strv_length(a);

	if (n != strv_length(b))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!streq(a[i], b[i]))
			return false;
	return true;
}

bool strv_contains(char *const *l, const char *s)
{
	for (size_t i = 0; l && l[i]; i++)
		if (streq(l[i], s))
			return true;
	return false;
}

int strv_split(const char *s, char sep, char ***ret)
{
	_cleanup_(strv_freep) char **l = calloc(1, sizeof(char *));

	if (!l)
		return -ENOMEM;
	while (s && *s) {
		const char *end = strchr(s, sep);
		size_t len = end ? (size_t)(end - s) : strlen(s);
		const char *b = s, *e = s + len;

		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e > b) {
			char *item = strndup(b, (size_t)(e - b));

			if (!item || strv_push_take(&l, item) < 0)
				return -ENOMEM;
		}
		if (!end)
			break;
		s = end + 1;
	}
	*ret = TAKE_PTR(l);
	return 0;
}

int strv_join(char *const *l, const char *sep, char **ret)
{
	size_t len = 1, seplen = strlen(sep);
	char *s, *p;

	for (size_t i = 0; l && l[i]; i++)
		len += strlen(l[i]) + (i > 0 ? seplen : 0);
	p = s = malloc(len);
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; l && l[i]; i++) {
		if (i > 0)
			p = stpcpy(p, sep);
		p = stpcpy(p, l[i]);
	}
	*p = '\0';
	*ret = s;
	return 0;
}

char **strv_new(const char *first, ...)
{
	char **l = calloc(1, sizeof(char *));
	const char *s = first;
	va_list ap;

	va_start(ap, first);
	for (; l && s; s = va_arg(ap, const char *))
		if (strv_push(&l, s) < 0) {
			strv_free(l);
			l = NULL;
		}
	va_end(ap);
	return l;
}
