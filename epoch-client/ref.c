/* References and small vocabularies of the registry protocol: what a user may write for an
 * artifact (name[:tag], name@digest, an Epoch /dl/ or /v2/ URL), the name/tag/digest rules,
 * WWW-Authenticate challenges (RFC 9110 §11.6.1, the Docker token flow's Bearer challenge)
 * and the layer media type of a snapshot file (net-epoch-runtime.md §2.5). Pure functions,
 * no I/O. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cocoon/buf.h"
#include "cocoon/errmsg.h"
#include "cocoon/log.h"
#include "epoch.h"

#define NAME_MAX_LEN 255
#define TAG_MAX_LEN  128
/* A header with more auth-params than this is not a registry talking to us. */
#define CHALLENGE_PARAMS_MAX 64

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool component_valid(const char *s, size_t n)
{
	if (n == 0 || !is_alnum(s[0]) || !is_alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum(s[i]) && !strchr("._-", s[i]))
			return false;
	return true;
}

bool epoch_name_valid(const char *name)
{
	size_t len;

	if (isempty(name) || (len = strlen(name)) > NAME_MAX_LEN)
		return false;
	for (const char *p = name;;) {
		size_t n = strcspn(p, "/");

		if (!component_valid(p, n))
			return false;
		if (!p[n])
			return true;
		p += n + 1;
	}
}

bool epoch_tag_valid(const char *tag)
{
	size_t n;

	if (isempty(tag) || (n = strlen(tag)) > TAG_MAX_LEN)
		return false;
	if (!is_alnum(tag[0]) && tag[0] != '_')
		return false;
	for (size_t i = 1; i < n; i++)
		if (!is_alnum(tag[i]) && !strchr("._-", tag[i]))
			return false;
	return true;
}

bool epoch_digest_valid(const char *digest)
{
	if (!digest || strncmp(digest, "sha256:", 7) != 0 || strlen(digest) != 7 + 64)
		return false;
	for (const char *p = digest + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

void epoch_ref_done(struct epoch_ref *r)
{
	if (!r)
		return;
	free(r->url);
	free(r->name);
	free(r->tag);
	free(r->digest);
	free(r->legacy_name);
	*r = (struct epoch_ref){};
}

const char *epoch_ref_target(const struct epoch_ref *r)
{
	return r->digest ?: r->tag;
}

/* name and target (a tag or a digest, or NULL for latest) into r, checked. */
static int ref_set(struct epoch_ref *r, const char *input, const char *name, size_t name_len,
		   const char *target, char **ret_error)
{
	r->name = strndup(name, name_len);
	if (!r->name)
		return -ENOMEM;
	if (!epoch_name_valid(r->name))
		return errmsg_set(ret_error, EINVAL,
				"invalid repository name \"%s\" in \"%s\": expected components of "
				"letters, digits, '.', '_' and '-' separated by '/'%s",
				r->name, input,
				strchr(r->name, ':') ? " (a registry host belongs in EPOCH_URL)"
						     : "");
	if (target && strncmp(target, "sha256:", 7) == 0) {
		if (!epoch_digest_valid(target))
			return errmsg_set(ret_error, EINVAL,
					"invalid digest \"%s\" in \"%s\": expected sha256: and 64 "
					"lowercase hex digits",
					target, input);
		r->digest = strdup(target);
		return r->digest ? 0 : -ENOMEM;
	}
	if (target && !epoch_tag_valid(target))
		return errmsg_set(ret_error, EINVAL,
				"invalid tag \"%s\" in \"%s\": expected up to 128 letters, digits, "
				"'.', '_' or '-', not starting with '.' or '-'%s",
				target, input,
				strchr(target, '/') ? " (a registry host belongs in EPOCH_URL)"
						    : "");
	r->tag = strdup(target ?: EPOCH_DEFAULT_TAG);
	return r->tag ? 0 : -ENOMEM;
}

/* "http(s)://host[:port][/prefix]/dl/name[/ref]" or "…/v2/name/manifests/ref". */
static int ref_parse_url(const char *s, struct epoch_ref *r, char **ret_error)
{
	const char *host = strstr(s, "://") + 3, *path, *dl, *v2, *name, *last;
	int k;

	if (s[strcspn(s, "?#% \t\r\n")])
		return errmsg_set(ret_error, EINVAL,
				"unsupported URL \"%s\": no query, fragment, escapes or spaces "
				"allowed",
				s);
	path = strchr(host, '/');
	if (!path || path == host)
		return errmsg_set(ret_error, EINVAL, "URL \"%s\" names no artifact: expected …/dl/NAME", s);
	dl = strstr(path, "/dl/");
	v2 = strstr(path, "/v2/");
	if (dl && (!v2 || dl < v2)) {
		name = dl + 4;
		last = strrchr(name, '/');
		r->url = strndup(s, dl - s);
		if (!r->url)
			return -ENOMEM;
		/* Newer epoch serves /dl/{name:.+}/{ref}: with several segments the last one
		 * is the tag or digest, and when that finds nothing epoch falls back to the
		 * legacy /dl/{name} (all of it, :latest); a single segment means :latest. */
		if (!last)
			return ref_set(r, s, name, strlen(name), NULL, ret_error);
		k = ref_set(r, s, name, last - name, last + 1, ret_error);
		if (k >= 0 && epoch_name_valid(name) && !(r->legacy_name = strdup(name)))
			k = -ENOMEM;
		return k;
	}
	if (v2) {
		const char *m = strstr(v2 + 4, "/manifests/");

		if (!m || !m[11] || strchr(m + 11, '/'))
			return errmsg_set(ret_error, EINVAL,
					"URL \"%s\" is not a manifest URL: expected "
					"…/v2/NAME/manifests/REFERENCE",
					s);
		r->url = strndup(s, v2 - s);
		if (!r->url)
			return -ENOMEM;
		return ref_set(r, s, v2 + 4, m - (v2 + 4), m + 11, ret_error);
	}
	return errmsg_set(ret_error, EINVAL,
			"URL \"%s\" names no artifact: expected …/dl/NAME[/TAG] or "
			"…/v2/NAME/manifests/REFERENCE",
			s);
}

/* "name@digest", or docker's "name:tag@digest" (as `docker inspect` prints RepoDigests),
 * where the digest pins the manifest and the tag only has to be well-formed. */
static int ref_parse_at(const char *s, const char *at, struct epoch_ref *r, char **ret_error)
{
	_cleanup_(freep) char *tag = NULL;
	const char *colon = memchr(s, ':', at - s);

	if (!colon)
		return ref_set(r, s, s, at - s, at + 1, ret_error);
	tag = strndup(colon + 1, at - colon - 1);
	if (!tag)
		return -ENOMEM;
	if (!epoch_tag_valid(tag))
		return errmsg_set(
		    ret_error, EINVAL,
		    "invalid tag \"%s\" in \"%s\": expected up to 128 letters, digits, "
		    "'.', '_' or '-', not starting with '.' or '-'%s",
		    tag, s, strchr(tag, '/') ? " (a registry host belongs in EPOCH_URL)" : "");
	if (!epoch_digest_valid(at + 1))
		return errmsg_set(ret_error, EINVAL,
				  "invalid digest \"%s\" in \"%s\": expected sha256: and 64 "
				  "lowercase hex digits",
				  at + 1, s);
	return ref_set(r, s, s, colon - s, at + 1, ret_error);
}

int epoch_ref_parse(const char *s, struct epoch_ref *ret, char **ret_error)
{
	struct epoch_ref r = {};
	const char *sep;
	int k;

	if (ret_error)
		*ret_error = NULL;
	if (isempty(s))
		return errmsg_set(ret_error, EINVAL, "empty reference: expected NAME[:TAG]");
	if (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0)
		k = ref_parse_url(s, &r, ret_error);
	else if ((sep = strchr(s, '@')))
		k = ref_parse_at(s, sep, &r, ret_error);
	else if ((sep = strchr(s, ':')))
		/* The first ':' splits, as epoch and vk-cocoon do. */
		k = ref_set(&r, s, s, sep - s, sep + 1, ret_error);
	else
		k = ref_set(&r, s, s, strlen(s), NULL, ret_error);
	if (k < 0) {
		epoch_ref_done(&r);
		return k;
	}
	*ret = r;
	return 0;
}

void epoch_challenge_done(struct epoch_challenge *c)
{
	if (!c)
		return;
	free(c->scheme);
	free(c->realm);
	free(c->service);
	free(c->scope);
	free(c->error);
	*c = (struct epoch_challenge){};
}

static bool is_tchar(char c)
{
	return is_alnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void skip_ows(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

/* A token or a quoted-string (backslash escapes) at *p, into *ret. */
static int parse_value(const char **p, char **ret)
{
	struct buf b = BUF_INIT(0);
	const char *s = *p;

	if (*s != '"') {
		const char *e = s;

		/* token68 may end in '=' padding, e.g. realm=abc== */
		while (is_tchar(*e) || *e == '/' || *e == '=' || *e == ':')
			e++;
		if (e == s)
			return -EBADMSG;
		*ret = strndup(s, e - s);
		*p = e;
		return *ret ? 0 : -ENOMEM;
	}
	for (s++; *s != '"'; s++) {
		if (!*s)
			return buf_free(&b), -EBADMSG;
		if (*s == '\\' && s[1])
			s++;
		if (buf_append(&b, s, 1) < 0)
			return buf_free(&b), -ENOMEM;
	}
	*p = s + 1;
	*ret = buf_steal(&b, NULL);
	return *ret ? 0 : -ENOMEM;
}

static char **challenge_slot(struct epoch_challenge *c, const char *key, size_t n)
{
	static const struct {
		const char *name;
		size_t offset;
	} slots[] = {
		{ "realm", offsetof(struct epoch_challenge, realm) },
		{ "service", offsetof(struct epoch_challenge, service) },
		{ "scope", offsetof(struct epoch_challenge, scope) },
		{ "error", offsetof(struct epoch_challenge, error) },
	};

	for (size_t i = 0; i < ELEMENTSOF(slots); i++)
		if (strlen(slots[i].name) == n && strncasecmp(slots[i].name, key, n) == 0)
			return (char **)((char *)c + slots[i].offset);
	return NULL;
}

/* The auth-params after a scheme, up to the next challenge. Returns 0, -EBADMSG, -ENOMEM;
 * *p is left at the start of the next challenge (or the end). */
static int parse_params(const char **p, struct epoch_challenge *c)
{
	for (unsigned n = 0; n < CHALLENGE_PARAMS_MAX; n++) {
		const char *key, *save;
		_cleanup_(freep) char *value = NULL;
		char **slot;
		size_t klen;
		int r;

		skip_ows(p);
		while (**p == ',') {
			(*p)++;
			skip_ows(p);
		}
		if (!**p)
			return 0;
		save = key = *p;
		while (is_tchar(**p))
			(*p)++;
		klen = *p - key;
		skip_ows(p);
		if (klen == 0)
			return -EBADMSG;
		if (**p != '=') {
			/* A bare token: the scheme of the next challenge. */
			*p = save;
			return 0;
		}
		(*p)++;
		skip_ows(p);
		r = parse_value(p, &value);
		if (r < 0)
			return r;
		skip_ows(p);
		if (**p && **p != ',')
			return -EBADMSG;
		slot = challenge_slot(c, key, klen);
		if (slot) {
			free(*slot);
			*slot = TAKE_PTR(value);
		}
	}
	return -EBADMSG;
}

int epoch_challenge_parse(const char *header, struct epoch_challenge *ret, char **ret_error)
{
	const char *p = header;

	if (ret_error)
		*ret_error = NULL;
	if (!header)
		return -ENOENT;
	while (*p) {
		struct epoch_challenge c = {};
		const char *scheme;
		int r;

		skip_ows(&p);
		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		scheme = p;
		while (is_tchar(*p))
			p++;
		if (p == scheme || (*p && *p != ' ' && *p != '\t' && *p != ',')) {
			errmsg_set(ret_error, EINVAL, "malformed WWW-Authenticate header \"%s\"", header);
			return -EBADMSG;
		}
		c.scheme = strndup(scheme, p - scheme);
		if (!c.scheme)
			return -ENOMEM;
		r = parse_params(&p, &c);
		if (r == -EBADMSG) {
			epoch_challenge_done(&c);
			errmsg_set(ret_error, EINVAL, "malformed WWW-Authenticate header \"%s\"", header);
			return r;
		}
		if (r < 0) {
			epoch_challenge_done(&c);
			return r;
		}
		if (strcasecmp(c.scheme, "Bearer") != 0) {
			epoch_challenge_done(&c);
			continue;
		}
		if (isempty(c.realm)) {
			epoch_challenge_done(&c);
			errmsg_set(ret_error, EINVAL, "Bearer challenge without a realm in \"%s\"", header);
			return -EBADMSG;
		}
		*ret = c;
		return 0;
	}
	errmsg_set(ret_error, EINVAL, "no Bearer challenge in WWW-Authenticate \"%s\"", header);
	return -ENOENT;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && streq(s + n - k, suffix);
}

const char *epoch_layer_media_type(const char *file_name)
{
	static const struct {
		const char *name;
		const char *type;
	} exact[] = {
		{ "config.json", "application/vnd.cocoonstack.vm.config+json" },
		{ "state.json", "application/vnd.cocoonstack.vm.state+json" },
		{ "memory-ranges", "application/vnd.cocoonstack.vm.memory" },
		{ "cidata.img", "application/vnd.cocoonstack.vm.cidata" },
	};

	if (!file_name)
		return EPOCH_MT_OCTET_STREAM;
	for (size_t i = 0; i < ELEMENTSOF(exact); i++)
		if (streq(file_name, exact[i].name))
			return exact[i].type;
	if (has_suffix(file_name, ".qcow2"))
		return "application/vnd.cocoonstack.disk.qcow2";
	if (has_suffix(file_name, ".raw"))
		return "application/vnd.cocoonstack.disk.raw";
	return EPOCH_MT_OCTET_STREAM;
}

bool epoch_media_type_is_disk(const char *media_type)
{
	static const char *const types[] = {
		"application/vnd.cocoonstack.disk.qcow2",
		"application/vnd.cocoonstack.disk.qcow2.part",
		"application/vnd.cocoonstack.disk.raw",
		"application/vnd.cocoonstack.disk.raw.part",
		"application/vnd.cocoonstack.windows.disk.qcow2",
		"application/vnd.cocoonstack.windows.disk.qcow2.part",
		"application/vnd.cocoonstack.windows.disk.raw",
		"application/vnd.cocoonstack.windows.disk.raw.part",
	};

	if (!media_type)
		return false;
	for (size_t i = 0; i < ELEMENTSOF(types); i++)
		if (streq(media_type, types[i]))
			return true;
	return false;
}
