/* AdmissionReview v1 for every admission path (kube-api.md §4.3, operator-webhook.md §3.2):
 * the strict request decoder, the response envelopes and the verdict handlers return.
 *
 * The original decoded with Go's lenient encoding/json and answered any failure with a bare
 * "decode admission review". Here every field a handler reads is type-checked and the 400
 * body keeps the original's words first, then says where and what was wrong, so a
 * misconfigured caller sees its mistake. Duplicate keys and trailing bytes are refused: a
 * body the apiserver would never send is one we should not guess about.
 *
 * Every pod CREATE and workload UPDATE passes through here ("partial decoding must stay
 * cheap", operator-webhook.md §7.9), so a well-formed body takes a fast path that reads the
 * envelope in place and builds json_t only for request.object and request.oldObject; any
 * body it cannot take whole goes through the strict decoder over jansson's document, which
 * words the errors.
 * The responses are written as text directly, not built as json_t and dumped. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "cocoon/buf.h"
#include "webhookd.h"

#define ADMISSION_API_VERSION "admission.k8s.io/v1"
#define ADMISSION_REVIEW_KIND "AdmissionReview"
#define DECODE_PREFIX         "decode admission review: "
#define MISSING_PREFIX        "admission review missing request"

static const char *const operation_names[] = {
	[ADMISSION_CREATE] = "CREATE",
	[ADMISSION_UPDATE] = "UPDATE",
	[ADMISSION_DELETE] = "DELETE",
	[ADMISSION_CONNECT] = "CONNECT",
};

static const char *const result_names[] = {
	[ADMISSION_RESULT_ALLOW] = "allow",
	[ADMISSION_RESULT_DENY] = "deny",
	[ADMISSION_RESULT_ERROR] = "error",
	[ADMISSION_RESULT_SKIPPED] = "skipped",
};

const char *admission_operation_to_string(enum admission_operation op)
{
	return (size_t)op < ELEMENTSOF(operation_names) ? operation_names[op] : NULL;
}

const char *admission_result_to_string(enum admission_result r)
{
	return (size_t)r < ELEMENTSOF(result_names) ? result_names[r] : NULL;
}

static const char *type_word(json_type t)
{
	switch (t) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	default:
		return "null";
	}
}

static const char *json_type_name(const json_t *v)
{
	return type_word(json_typeof(v));
}

/* Writes prefix + formatted detail to *ret_error. Always returns -EBADMSG (or -ENOMEM). */
static int bad(char **ret_error, const char *prefix, const char *fmt, ...) _printf_(3, 4);
static int bad(char **ret_error, const char *prefix, const char *fmt, ...)
{
	struct buf b = BUF_INIT(0);
	va_list ap;
	char *detail = NULL;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&detail, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	r = buf_printf(&b, "%s%s", prefix, detail);
	free(detail);
	if (r < 0)
		return r;
	*ret_error = buf_steal(&b, NULL);
	return -EBADMSG;
}

/* obj.key when present and not null, else NULL; a value of another type than want (JSON_TRUE
 * stands for either boolean) is an error naming path.key. Go's decoder treats null like an
 * absent field; so do we. */
static int member(const json_t *obj, const char *path, const char *key, json_type want,
		  const json_t **ret, char **ret_error)
{
	const json_t *v = json_object_get(obj, key);
	bool ok;

	if (!v || json_is_null(v)) {
		*ret = NULL;
		return 0;
	}
	if (want == JSON_TRUE)
		ok = json_is_boolean(v);
	else
		ok = json_typeof(v) == want;
	if (!ok)
		return bad(ret_error, DECODE_PREFIX, "%s.%s: expected %s, got %s", path, key,
			   type_word(want), json_type_name(v));
	*ret = v;
	return 0;
}

/* A string member: "" when absent; required ones must be non-empty. */
static int string_member(const json_t *obj, const char *path, const char *key, bool required,
			 const char **ret, char **ret_error)
{
	const json_t *v = NULL;
	int r;

	r = member(obj, path, key, JSON_STRING, &v, ret_error);
	if (r < 0)
		return r;
	if (required && (!v || json_string_length(v) == 0))
		return bad(ret_error, DECODE_PREFIX, "%s.%s: missing", path, key);
	*ret = v ? json_string_value(v) : "";
	return 0;
}

/* {group, version, <name>} as in request.kind and request.resource. Returns <name>. */
static int group_version_member(const json_t *req, const char *key, const char *name_key,
				bool required, const char **ret, char **ret_error)
{
	static const char *const parts[] = { "group", "version" };
	const json_t *gv = NULL;
	const char *s;
	char path[64];
	int r;

	r = member(req, "request", key, JSON_OBJECT, &gv, ret_error);
	if (r < 0)
		return r;
	if (!gv) {
		if (required)
			return bad(ret_error, DECODE_PREFIX, "request.%s: missing", key);
		*ret = "";
		return 0;
	}
	snprintf(path, sizeof path, "request.%s", key);
	for (size_t i = 0; i < ELEMENTSOF(parts); i++) {
		r = string_member(gv, path, parts[i], false, &s, ret_error);
		if (r < 0)
			return r;
	}
	return string_member(gv, path, name_key, required, ret, ret_error);
}

static int parse_operation(const json_t *req, enum admission_operation *ret, char **ret_error)
{
	const char *op;
	int r;

	r = string_member(req, "request", "operation", true, &op, ret_error);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ELEMENTSOF(operation_names); i++)
		if (streq(op, operation_names[i])) {
			*ret = (enum admission_operation)i;
			return 0;
		}
	_cleanup_(freep) char *q = admission_quote(op);
	if (!q)
		return -ENOMEM;
	return bad(ret_error, DECODE_PREFIX,
		   "request.operation: %s is not CREATE, UPDATE, DELETE or CONNECT", q);
}

/* userInfo: {username, uid, groups: [string], extra: {key: [string]}}. */
static int parse_user_info(const json_t *req, const char **ret_username, char **ret_error)
{
	const json_t *ui = NULL, *groups = NULL, *extra = NULL, *v, *values;
	const char *s, *key;
	size_t i;
	int r;

	*ret_username = "";
	r = member(req, "request", "userInfo", JSON_OBJECT, &ui, ret_error);
	if (r < 0 || !ui)
		return r;
	r = string_member(ui, "request.userInfo", "uid", false, &s, ret_error);
	if (r >= 0)
		r = member(ui, "request.userInfo", "groups", JSON_ARRAY, &groups, ret_error);
	if (r >= 0)
		r = member(ui, "request.userInfo", "extra", JSON_OBJECT, &extra, ret_error);
	if (r < 0)
		return r;
	json_array_foreach (groups, i, v)
		if (!json_is_string(v))
			return bad(ret_error, DECODE_PREFIX,
				   "request.userInfo.groups[%zu]: expected a string, got %s", i,
				   json_type_name(v));
	json_object_foreach ((json_t *)extra, key, values) {
		size_t j;

		if (json_is_null(values))
			continue;
		if (!json_is_array(values))
			return bad(ret_error, DECODE_PREFIX,
				   "request.userInfo.extra[\"%s\"]: expected an array, got %s", key,
				   json_type_name(values));
		json_array_foreach (values, j, v)
			if (!json_is_string(v))
				return bad(
				    ret_error, DECODE_PREFIX,
				    "request.userInfo.extra[\"%s\"][%zu]: expected a string, "
				    "got %s",
				    key, j, json_type_name(v));
	}
	return string_member(ui, "request.userInfo", "username", false, ret_username, ret_error);
}

static int parse_envelope(const json_t *review, const json_t **ret_req, char **ret_error)
{
	const char *api_version, *kind;
	const json_t *req;
	int r;

	if (!json_is_object(review))
		return bad(ret_error, DECODE_PREFIX, "expected a JSON object, got %s",
			   json_type_name(review));
	r = string_member(review, "AdmissionReview", "apiVersion", true, &api_version, ret_error);
	if (r >= 0)
		r = string_member(review, "AdmissionReview", "kind", true, &kind, ret_error);
	if (r < 0)
		return r;
	if (!streq(api_version, ADMISSION_API_VERSION) || !streq(kind, ADMISSION_REVIEW_KIND)) {
		_cleanup_(freep) char *qa = admission_quote(api_version);
		_cleanup_(freep) char *qk = admission_quote(kind);

		if (!qa || !qk)
			return -ENOMEM;
		return bad(ret_error, DECODE_PREFIX,
			   "got apiVersion %s kind %s, expected " ADMISSION_API_VERSION
			   " " ADMISSION_REVIEW_KIND " (admissionReviewVersions must be [v1])",
			   qa, qk);
	}
	req = json_object_get(review, "request");
	if (!req)
		return bad(ret_error, MISSING_PREFIX, ": the AdmissionReview has no \"request\"");
	if (json_is_null(req))
		return bad(ret_error, MISSING_PREFIX, ": \"request\" is null");
	if (!json_is_object(req))
		return bad(ret_error, DECODE_PREFIX, "request: expected an object, got %s",
			   json_type_name(req));
	*ret_req = req;
	return 0;
}

static int parse_request(const json_t *req, struct admission_request *a, char **ret_error)
{
	const json_t *v = NULL;
	const char *s;
	int r;

	r = string_member(req, "request", "uid", true, &a->uid, ret_error);
	if (r >= 0)
		r = group_version_member(req, "kind", "kind", true, &a->kind, ret_error);
	if (r >= 0)
		r = group_version_member(req, "resource", "resource", true, &a->resource,
					 ret_error);
	if (r >= 0)
		r = group_version_member(req, "requestKind", "kind", false, &s, ret_error);
	if (r >= 0)
		r = group_version_member(req, "requestResource", "resource", false, &s, ret_error);
	if (r >= 0)
		r = string_member(req, "request", "subResource", false, &a->sub_resource,
				  ret_error);
	if (r >= 0)
		r = string_member(req, "request", "requestSubResource", false, &s, ret_error);
	if (r >= 0)
		r = string_member(req, "request", "namespace", false, &a->ns, ret_error);
	if (r >= 0)
		r = string_member(req, "request", "name", false, &a->name, ret_error);
	if (r >= 0)
		r = parse_operation(req, &a->operation, ret_error);
	if (r >= 0)
		r = parse_user_info(req, &a->username, ret_error);
	if (r >= 0)
		r = member(req, "request", "object", JSON_OBJECT, &a->object, ret_error);
	if (r >= 0)
		r = member(req, "request", "oldObject", JSON_OBJECT, &a->old_object, ret_error);
	if (r >= 0)
		r = member(req, "request", "options", JSON_OBJECT, &v, ret_error);
	if (r >= 0)
		r = member(req, "request", "dryRun", JSON_TRUE, &v, ret_error);
	if (r < 0)
		return r;
	a->dry_run = json_is_true(v);
	return 0;
}

/* ---- the fast path: the envelope read in place ----
 *
 * The decoder above needs a json_t for every value of the envelope, though it only keeps a
 * few strings from it and request.object / request.oldObject. This walks the body once,
 * checks the envelope with the same rules and builds only those two objects. It only
 * handles bodies the rules accept: anything else (a type they refuse, a missing field, a
 * duplicate, anything the fast reader leaves to jansson) is -EINVAL, and the body goes the
 * slow way, where the error gets its words. */

/* The strings a request keeps, by where they go. */
enum {
	S_UID,
	S_KIND,
	S_RESOURCE,
	S_SUB_RESOURCE,
	S_NAMESPACE,
	S_NAME,
	S_USERNAME,
	_S_MAX,
};

struct scan {
	struct fastjson_reader r;
	struct buf strings; /* the kept strings, each NUL-terminated */
	ssize_t at[_S_MAX]; /* offsets into strings, -1: absent */
	enum admission_operation operation;
	bool have_operation, dry_run;
	json_t *object, *old_object;
};

static bool key_is(const char *key, size_t len, const char *name)
{
	/* Most names of a table differ from the key in the first byte: compare that before
	 * strlen() walks the name (key_index() runs for every member of a review). */
	return (len == 0 || key[0] == name[0]) && strlen(name) == len &&
	       memcmp(key, name, len) == 0;
}

/* Index of key in names (NULL-terminated), or -1. */
static int key_index(const char *key, size_t len, const char *const *names)
{
	for (int i = 0; names[i]; i++)
		if (key_is(key, len, names[i]))
			return i;
	return -1;
}

/* A member not in names: skipped, but duplicates still count. */
static int scan_unknown(struct scan *s, struct fastjson_keys *keys, const char *key, size_t len)
{
	int r = fastjson_keys_add(keys, &s->r, key, len);

	return r < 0 ? r : fastjson_skip_value(&s->r);
}

/* Marks known member i seen: -EINVAL when it already was (a duplicate key). */
static int scan_seen(unsigned *seen, int i)
{
	if (*seen & (1u << i))
		return -EINVAL;
	*seen |= 1u << i;
	return 0;
}

/* null, or a string: kept as slot (when >= 0), non-empty when required. */
static int scan_string(struct scan *s, int slot, bool required)
{
	const char *v;
	size_t n;
	int r;

	if (fastjson_peek(&s->r) == JSON_NULL)
		return !required && fastjson_read_value(&s->r) ? 0 : -EINVAL;
	r = fastjson_read_string(&s->r, &v, &n);
	if (r < 0 || (required && n == 0))
		return -EINVAL;
	if (slot < 0)
		return 0;
	s->at[slot] = (ssize_t)s->strings.len;
	r = buf_append(&s->strings, v, n);
	return r < 0 ? r : buf_append(&s->strings, "", 1);
}

/* null, or an object (kept when keep is set). */
static int scan_object(struct scan *s, json_t **keep)
{
	int t = fastjson_peek(&s->r);

	if (t == JSON_NULL)
		return fastjson_read_value(&s->r) ? 0 : -EINVAL;
	if (t != JSON_OBJECT)
		return -EINVAL;
	if (!keep)
		return fastjson_skip_value(&s->r);
	*keep = fastjson_read_value(&s->r);
	return *keep ? 0 : -EINVAL;
}

/* null, or an array of strings. */
static int scan_strings(struct scan *s)
{
	bool first = true;
	int r;

	if (fastjson_peek(&s->r) == JSON_NULL)
		return fastjson_read_value(&s->r) ? 0 : -EINVAL;
	while ((r = fastjson_next_element(&s->r, &first)) > 0)
		if (fastjson_peek(&s->r) != JSON_STRING || scan_string(s, -1, false) < 0)
			return -EINVAL;
	return r;
}

/* {group, version, <name>} of request.kind, .resource, .requestKind, .requestResource. */
static int scan_group_version(struct scan *s, const char *name, int slot, bool required)
{
	enum { G_GROUP, G_VERSION, G_NAME };
	const char *const names[] = {
		[G_GROUP] = "group", [G_VERSION] = "version", [G_NAME] = name, NULL
	};
	struct fastjson_keys keys = { 0 };
	unsigned seen = 0;
	bool first = true;
	const char *key;
	size_t len;
	int r, i;

	if (fastjson_peek(&s->r) == JSON_NULL)
		return !required && fastjson_read_value(&s->r) ? 0 : -EINVAL;
	while ((r = fastjson_next_member(&s->r, &first, &key, &len)) > 0) {
		i = key_index(key, len, names);
		if (i < 0)
			r = scan_unknown(s, &keys, key, len);
		else if (scan_seen(&seen, i) < 0)
			r = -EINVAL;
		else if (i == G_NAME)
			r = scan_string(s, slot, required);
		else
			r = scan_string(s, -1, false);
		if (r < 0)
			return r;
	}
	return r < 0 || (required && s->at[slot] < 0) ? -EINVAL : 0;
}

/* null, or {key: null or [string]}. */
static int scan_extra(struct scan *s)
{
	struct fastjson_keys keys = { 0 };
	bool first = true;
	const char *key;
	size_t len;
	int r;

	if (fastjson_peek(&s->r) == JSON_NULL)
		return fastjson_read_value(&s->r) ? 0 : -EINVAL;
	while ((r = fastjson_next_member(&s->r, &first, &key, &len)) > 0)
		if (fastjson_keys_add(&keys, &s->r, key, len) < 0 || scan_strings(s) < 0)
			return -EINVAL;
	return r;
}

static int scan_user_info(struct scan *s)
{
	enum { U_UID, U_GROUPS, U_EXTRA, U_USERNAME };
	static const char *const names[] = {
		[U_UID] = "uid",
		[U_GROUPS] = "groups",
		[U_EXTRA] = "extra",
		[U_USERNAME] = "username",
		NULL,
	};
	struct fastjson_keys keys = { 0 };
	unsigned seen = 0;
	bool first = true;
	const char *key;
	size_t len;
	int r, i;

	if (fastjson_peek(&s->r) == JSON_NULL)
		return fastjson_read_value(&s->r) ? 0 : -EINVAL;
	while ((r = fastjson_next_member(&s->r, &first, &key, &len)) > 0) {
		i = key_index(key, len, names);
		if (i < 0)
			r = scan_unknown(s, &keys, key, len);
		else if (scan_seen(&seen, i) < 0)
			r = -EINVAL;
		else if (i == U_UID)
			r = scan_string(s, -1, false);
		else if (i == U_GROUPS)
			r = scan_strings(s);
		else if (i == U_EXTRA)
			r = scan_extra(s);
		else
			r = scan_string(s, S_USERNAME, false);
		if (r < 0)
			return r;
	}
	return r;
}

static int scan_operation(struct scan *s)
{
	const char *v;
	size_t n;

	if (fastjson_read_string(&s->r, &v, &n) < 0)
		return -EINVAL;
	for (size_t i = 0; i < ELEMENTSOF(operation_names); i++)
		if (key_is(v, n, operation_names[i])) {
			s->operation = (enum admission_operation)i;
			s->have_operation = true;
			return 0;
		}
	return -EINVAL;
}

static int scan_dry_run(struct scan *s)
{
	int t = fastjson_peek(&s->r);
	json_t *v;

	if (t != JSON_NULL && t != JSON_TRUE && t != JSON_FALSE)
		return -EINVAL;
	/* Literals are jansson's shared singletons: nothing to release. */
	v = fastjson_read_value(&s->r);
	if (!v)
		return -EINVAL;
	s->dry_run = json_is_true(v);
	return 0;
}

/* The members of request the decoder reads. */
enum {
	R_UID,
	R_KIND,
	R_RESOURCE,
	R_REQUEST_KIND,
	R_REQUEST_RESOURCE,
	R_SUB_RESOURCE,
	R_REQUEST_SUB_RESOURCE,
	R_NAMESPACE,
	R_NAME,
	R_OPERATION,
	R_USER_INFO,
	R_OBJECT,
	R_OLD_OBJECT,
	R_OPTIONS,
	R_DRY_RUN,
	_R_MAX,
};

static const char *const request_names[_R_MAX + 1] = {
	[R_UID] = "uid",
	[R_KIND] = "kind",
	[R_RESOURCE] = "resource",
	[R_REQUEST_KIND] = "requestKind",
	[R_REQUEST_RESOURCE] = "requestResource",
	[R_SUB_RESOURCE] = "subResource",
	[R_REQUEST_SUB_RESOURCE] = "requestSubResource",
	[R_NAMESPACE] = "namespace",
	[R_NAME] = "name",
	[R_OPERATION] = "operation",
	[R_USER_INFO] = "userInfo",
	[R_OBJECT] = "object",
	[R_OLD_OBJECT] = "oldObject",
	[R_OPTIONS] = "options",
	[R_DRY_RUN] = "dryRun",
};

static int scan_request_member(struct scan *s, int member)
{
	switch (member) {
	case R_UID:
		return scan_string(s, S_UID, true);
	case R_KIND:
		return scan_group_version(s, "kind", S_KIND, true);
	case R_RESOURCE:
		return scan_group_version(s, "resource", S_RESOURCE, true);
	case R_REQUEST_KIND:
		return scan_group_version(s, "kind", -1, false);
	case R_REQUEST_RESOURCE:
		return scan_group_version(s, "resource", -1, false);
	case R_SUB_RESOURCE:
		return scan_string(s, S_SUB_RESOURCE, false);
	case R_REQUEST_SUB_RESOURCE:
		return scan_string(s, -1, false);
	case R_NAMESPACE:
		return scan_string(s, S_NAMESPACE, false);
	case R_NAME:
		return scan_string(s, S_NAME, false);
	case R_OPERATION:
		return scan_operation(s);
	case R_USER_INFO:
		return scan_user_info(s);
	case R_OBJECT:
		return scan_object(s, &s->object);
	case R_OLD_OBJECT:
		return scan_object(s, &s->old_object);
	case R_OPTIONS:
		return scan_object(s, NULL);
	default:
		return scan_dry_run(s);
	}
}

static int scan_request(struct scan *s)
{
	struct fastjson_keys keys = { 0 };
	unsigned seen = 0;
	bool first = true;
	const char *key;
	size_t len;
	int r, i;

	if (fastjson_peek(&s->r) != JSON_OBJECT)
		return -EINVAL;
	while ((r = fastjson_next_member(&s->r, &first, &key, &len)) > 0) {
		i = key_index(key, len, request_names);
		if (i < 0)
			r = scan_unknown(s, &keys, key, len);
		else
			r = scan_seen(&seen, i) < 0 ? -EINVAL : scan_request_member(s, i);
		if (r < 0)
			return r;
	}
	if (r < 0 || s->at[S_UID] < 0 || s->at[S_KIND] < 0 || s->at[S_RESOURCE] < 0 ||
	    !s->have_operation)
		return -EINVAL;
	return 0;
}

/* A string member that must be exactly want. */
static int scan_constant(struct scan *s, const char *want)
{
	const char *v;
	size_t n;

	return fastjson_read_string(&s->r, &v, &n) < 0 || !key_is(v, n, want) ? -EINVAL : 0;
}

static int scan_review(struct scan *s)
{
	enum { V_API_VERSION, V_KIND, V_REQUEST };
	static const char *const names[] = {
		[V_API_VERSION] = "apiVersion",
		[V_KIND] = "kind",
		[V_REQUEST] = "request",
		NULL,
	};
	struct fastjson_keys keys = { 0 };
	unsigned seen = 0;
	bool first = true;
	const char *key;
	size_t len;
	int r, i;

	while ((r = fastjson_next_member(&s->r, &first, &key, &len)) > 0) {
		i = key_index(key, len, names);
		if (i < 0)
			r = scan_unknown(s, &keys, key, len);
		else if (scan_seen(&seen, i) < 0)
			r = -EINVAL;
		else if (i == V_API_VERSION)
			r = scan_constant(s, ADMISSION_API_VERSION);
		else if (i == V_KIND)
			r = scan_constant(s, ADMISSION_REVIEW_KIND);
		else
			r = scan_request(s);
		if (r < 0)
			return r;
	}
	/* All three are required. */
	if (r < 0 || seen != (1u << V_API_VERSION | 1u << V_KIND | 1u << V_REQUEST) ||
	    fastjson_finish(&s->r) < 0)
		return -EINVAL;
	return 0;
}

/* The fast path's result as a request, or -EINVAL for the slow path. */
static int review_scan(const void *body, size_t len, struct admission_request *a)
{
	struct scan s = { .strings = BUF_INIT(0) };
	char **fields[_S_MAX] = {
		[S_UID] = (char **)&a->uid,           [S_KIND] = (char **)&a->kind,
		[S_RESOURCE] = (char **)&a->resource, [S_SUB_RESOURCE] = (char **)&a->sub_resource,
		[S_NAMESPACE] = (char **)&a->ns,      [S_NAME] = (char **)&a->name,
		[S_USERNAME] = (char **)&a->username,
	};
	int r;

	for (size_t i = 0; i < _S_MAX; i++)
		s.at[i] = -1;
	fastjson_reader_init(&s.r, body, len);
	r = scan_review(&s);
	fastjson_reader_done(&s.r);
	if (r >= 0 && !s.strings.data)
		r = -EINVAL;
	if (r < 0) {
		json_decref(s.object);
		json_decref(s.old_object);
		buf_free(&s.strings);
		return r;
	}
	a->strings = buf_steal(&s.strings, NULL);
	for (size_t i = 0; i < _S_MAX; i++)
		*fields[i] = s.at[i] < 0 ? (char *)"" : a->strings + s.at[i];
	a->operation = s.operation;
	a->dry_run = s.dry_run;
	a->object = s.object;
	a->old_object = s.old_object;
	return 0;
}

/* ---- decoding ---- */

int admission_request_decode(json_t *review, struct admission_request **ret, char **ret_error)
{
	_cleanup_(admission_request_freep) struct admission_request *a = NULL;
	const json_t *req = NULL;
	char *error = NULL;
	int r;

	a = calloc(1, sizeof *a);
	if (!a)
		return -ENOMEM;
	a->review = json_incref(review);
	r = parse_envelope(review, &req, &error);
	if (r >= 0)
		r = parse_request(req, a, &error);
	if (r < 0) {
		if (ret_error)
			*ret_error = error;
		else
			free(error);
		return r;
	}
	/* The request holds its objects either way (see review_scan()). */
	json_incref((json_t *)a->object);
	json_incref((json_t *)a->old_object);
	*ret = TAKE_PTR(a);
	return 0;
}

int admission_request_parse(const void *body, size_t len, struct admission_request **ret,
			    char **ret_error)
{
	_cleanup_(admission_request_freep) struct admission_request *a = NULL;
	_cleanup_(json_decrefp) json_t *review = NULL;
	char *error = NULL;
	json_error_t jerr;
	int r;

	if (len > ADMISSION_BODY_MAX) {
		r = bad(&error, DECODE_PREFIX, "body of %zu bytes exceeds the %u byte limit", len,
			ADMISSION_BODY_MAX);
		goto fail;
	}
	a = calloc(1, sizeof *a);
	if (!a)
		return -ENOMEM;
	if (review_scan(body, len, a) >= 0) {
		*ret = TAKE_PTR(a);
		return 0;
	}
	/* The slow way: the whole body as json_t (the fast reader for well-formed JSON,
	 * jansson for its exact verdict on the rest), then the strict decoder's words. */
	if (fastjson_load(body, len, &review) < 0)
		review = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (review)
		return admission_request_decode(review, ret, ret_error);
	r = bad(&error, DECODE_PREFIX, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
fail:
	if (ret_error)
		*ret_error = error;
	else
		free(error);
	return r;
}

void admission_request_free(struct admission_request *req)
{
	if (!req)
		return;
	json_decref((json_t *)req->object);
	json_decref((json_t *)req->old_object);
	json_decref(req->review);
	free(req->strings);
	free(req);
}

int admission_verdict_allow(struct admission_verdict *ret, enum admission_result result,
			    const char *reason)
{
	*ret = (struct admission_verdict){ .allowed = true, .result = result, .reason = reason };
	return 0;
}

int admission_verdict_deny(struct admission_verdict *ret, enum admission_result result,
			   const char *reason, const char *fmt, ...)
{
	char *message;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&message, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	*ret = (struct admission_verdict){
		.allowed = false, .result = result, .reason = reason, .message = message
	};
	return 0;
}

void admission_verdict_done(struct admission_verdict *v)
{
	if (!v)
		return;
	free(v->message);
	*v = (struct admission_verdict){ 0 };
}

static bool isalnum_lower(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Length of the UTF-8 sequence at s and its code point; 0 when s is not valid UTF-8
 * (overlong forms, surrogates and values past U+10FFFF included). */
static size_t utf8_decode(const unsigned char *s, uint32_t *ret)
{
	uint32_t c;
	size_t n;

	if (s[0] < 0x80) {
		*ret = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, c = s[0] & 0x07;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) || c > 0x10ffff ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*ret = c;
	return n;
}

/* Appends s as a JSON string, escaped as jansson's encoder does it (", \\, \b \f \n \r \t,
 * other controls as \u00XX, everything else as is), so the reply keeps the bytes the
 * json_t version of these envelopes had. -EINVAL (nothing appended) when s is not UTF-8. */
static int append_json_string(struct buf *b, const char *s)
{
	static const char esc[] = "\"\\\b\f\n\r\t", letters[] = "\"\\bfnrt";
	const unsigned char *p = (const unsigned char *)s, *run;
	size_t start = b->len;
	uint32_t c;
	int r;

	for (const unsigned char *q = p; *q;) {
		size_t n = utf8_decode(q, &c);

		if (n == 0)
			return -EINVAL;
		q += n;
	}
	r = buf_append(b, "\"", 1);
	for (run = p; r >= 0 && *p; p++) {
		const char *e;
		char seq[8];

		if (*p >= 0x20 && *p != '"' && *p != '\\')
			continue;
		r = buf_append(b, run, (size_t)(p - run));
		e = strchr(esc, *p);
		if (r >= 0 && e)
			r = buf_append(b, (const char[]){ '\\', letters[e - esc] }, 2);
		else if (r >= 0) {
			snprintf(seq, sizeof seq, "\\u%04X", (unsigned)*p);
			r = buf_append(b, seq, 6);
		}
		run = p + 1;
	}
	if (r >= 0)
		r = buf_append(b, run, (size_t)(p - run));
	if (r >= 0)
		r = buf_append(b, "\"", 1);
	if (r < 0) {
		b->len = start;
		if (b->data)
			b->data[start] = 0;
	}
	return r;
}

/* RFC 4648 base64 with padding, what Go's []byte JSON encoding produces. */
static int append_base64(struct buf *b, const char *data, size_t len)
{
	size_t n = 4 * ((len + 2) / 3) + 1;
	_cleanup_(freep) char *out = NULL;

	if (len > INT32_MAX)
		return -E2BIG;
	out = malloc(n);
	if (!out)
		return -ENOMEM;
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)data, (int)len);
	return buf_append(b, out, n - 1);
}

/* The envelope around the response's members after uid and allowed (tail, JSON text). */
static int append_envelope(struct buf *b, const char *uid, bool allowed, const char *message,
			   const char *patch_text)
{
	int r;

	r = buf_append_str(b, "{\"apiVersion\":\"" ADMISSION_API_VERSION
			      "\",\"kind\":\"" ADMISSION_REVIEW_KIND "\",\"response\":{\"uid\":");
	if (r >= 0)
		r = append_json_string(b, uid);
	if (r >= 0)
		r = buf_append_str(b, allowed ? ",\"allowed\":true" : ",\"allowed\":false");
	if (r >= 0 && message) {
		r = buf_append_str(b, ",\"status\":{\"message\":");
		if (r >= 0)
			r = append_json_string(b, message);
		if (r >= 0)
			r = buf_append_str(b, ",\"reason\":\"Forbidden\"}");
	}
	if (r >= 0 && patch_text) {
		r = buf_append_str(b, ",\"patchType\":\"JSONPatch\",\"patch\":\"");
		if (r >= 0)
			r = append_base64(b, patch_text, strlen(patch_text));
		if (r >= 0)
			r = buf_append(b, "\"", 1);
	}
	if (r >= 0)
		r = buf_append_str(b, "}}");
	return r;
}

/* Appends the envelope, or nothing on failure. */
static int response_write(struct buf *out, const char *uid, bool allowed, const char *message,
			  const json_t *patch)
{
	_cleanup_(freep) char *text = NULL;
	size_t start = out->len;
	int r;

	if (!uid || (patch && !json_is_array(patch)))
		return -EINVAL;
	if (patch) {
		text = json_dumps(patch, JSON_COMPACT);
		if (!text)
			return -ENOMEM;
	}
	r = append_envelope(out, uid, allowed, message, text);
	if (r < 0) {
		out->len = start;
		if (out->data)
			out->data[start] = 0;
	}
	return r;
}

int admission_response_allow(const char *uid, struct buf *out)
{
	return response_write(out, uid, true, NULL, NULL);
}

int admission_response_deny(const char *uid, const char *message, struct buf *out)
{
	if (!message)
		return -EINVAL;
	return response_write(out, uid, false, message, NULL);
}

int admission_response_patch(const char *uid, const json_t *patch, struct buf *out)
{
	if (!json_is_array(patch))
		return -EINVAL;
	return response_write(out, uid, true, NULL, patch);
}

int admission_response_verdict(const char *uid, const struct admission_verdict *v,
			       const json_t *patch, struct buf *out)
{
	if (!v->allowed)
		return admission_response_deny(uid, v->message ? v->message : "", out);
	return response_write(out, uid, true, NULL, patch);
}

/* Go's strconv.IsPrint is false for controls, spaces other than U+0020, line and
 * paragraph separators and format characters; these are the ones a name or image can
 * plausibly carry. */
static bool rune_is_print(uint32_t c)
{
	if (c < 0x20 || (c >= 0x7f && c <= 0xa0) || c == 0xad)
		return false;
	if (c == 0x1680 || (c >= 0x2000 && c <= 0x200f) || (c >= 0x2028 && c <= 0x202f) ||
	    (c >= 0x205f && c <= 0x2064) || c == 0x3000 || c == 0xfeff || c == 0xfffe ||
	    c == 0xffff)
		return false;
	return true;
}

int admission_append_quoted(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	int r = buf_append(b, "\"", 1);

	while (r >= 0 && *p) {
		static const char esc[] = "\a\b\f\n\r\t\v";
		static const char letters[] = "abfnrtv";
		const char *e = strchr(esc, *p);
		uint32_t c;
		size_t n;

		if (*p == '"' || *p == '\\') {
			r = buf_printf(b, "\\%c", *p);
			n = 1;
		} else if (e) {
			r = buf_printf(b, "\\%c", letters[e - esc]);
			n = 1;
		} else if ((n = utf8_decode(p, &c)) == 0) {
			r = buf_printf(b, "\\x%02x", *p);
			n = 1;
		} else if (rune_is_print(c)) {
			r = buf_append(b, p, n);
		} else if (c < 0x80) {
			r = buf_printf(b, "\\x%02x", c);
		} else if (c < 0x10000) {
			r = buf_printf(b, "\\u%04x", c);
		} else {
			r = buf_printf(b, "\\U%08x", c);
		}
		p += n;
	}
	return r < 0 ? r : buf_append(b, "\"", 1);
}

bool admission_is_dns1123_label_format(const char *s, size_t n)
{
	if (n == 0 || !isalnum_lower(s[0]) || !isalnum_lower(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum_lower(s[i]) && s[i] != '-')
			return false;
	return true;
}

char *admission_quote(const char *s)
{
	struct buf b = BUF_INIT(0);

	if (admission_append_quoted(&b, s) < 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b, NULL);
}
