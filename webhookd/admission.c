/* AdmissionReview v1 for every admission path (kube-api.md §4.3, operator-webhook.md §3.2):
 * the strict request decoder, the response envelopes and the verdict handlers return.
 *
 * The original decoded with Go's lenient encoding/json and answered any failure with a bare
 * "decode admission review". Here every field a handler reads is type-checked and the 400
 * body keeps the original's words first, then says where and what was wrong, so a
 * misconfigured caller sees its mistake. Duplicate keys and trailing bytes are refused: a
 * body the apiserver would never send is one we should not guess about. */
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

int admission_request_parse(const void *body, size_t len, struct admission_request **ret,
			    char **ret_error)
{
	_cleanup_(admission_request_freep) struct admission_request *a = NULL;
	char *error = NULL;
	const json_t *req = NULL;
	json_error_t jerr;
	int r;

	if (len > ADMISSION_BODY_MAX)
		r = bad(&error, DECODE_PREFIX, "body of %zu bytes exceeds the %u byte limit", len,
			ADMISSION_BODY_MAX);
	else {
		a = calloc(1, sizeof *a);
		if (!a)
			return -ENOMEM;
		a->review = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
		if (!a->review)
			r = bad(&error, DECODE_PREFIX, "line %d column %d: %s", jerr.line,
				jerr.column, jerr.text);
		else
			r = parse_envelope(a->review, &req, &error);
		if (r >= 0)
			r = parse_request(req, a, &error);
	}
	if (r < 0) {
		if (ret_error)
			*ret_error = error;
		else
			free(error);
		return r;
	}
	*ret = TAKE_PTR(a);
	return 0;
}

void admission_request_free(struct admission_request *req)
{
	if (!req)
		return;
	json_decref(req->review);
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

/* The envelope and its (still incomplete) response object. */
static int response_new(const char *uid, bool allowed, json_t **ret, json_t **ret_response)
{
	json_t *review, *response;

	if (!uid)
		return -EINVAL;
	review = json_pack("{s:s, s:s, s:{s:s, s:b}}", "apiVersion", ADMISSION_API_VERSION, "kind",
			   ADMISSION_REVIEW_KIND, "response", "uid", uid, "allowed", allowed);
	if (!review)
		return -EINVAL; /* not UTF-8; the pack allocations cannot be told apart */
	response = json_object_get(review, "response");
	*ret = review;
	if (ret_response)
		*ret_response = response;
	return 0;
}

int admission_response_allow(const char *uid, json_t **ret)
{
	return response_new(uid, true, ret, NULL);
}

int admission_response_deny(const char *uid, const char *message, json_t **ret)
{
	json_t *review, *response, *status;
	int r;

	if (!message)
		return -EINVAL;
	r = response_new(uid, false, &review, &response);
	if (r < 0)
		return r;
	status = json_pack("{s:s, s:s}", "message", message, "reason", "Forbidden");
	if (!status || json_object_set_new(response, "status", status) < 0) {
		json_decref(review);
		return -EINVAL;
	}
	*ret = review;
	return 0;
}

/* RFC 4648 base64 with padding, what Go's []byte JSON encoding produces. */
static char *base64_encode(const char *data, size_t len)
{
	size_t n = 4 * ((len + 2) / 3) + 1;
	char *out;

	if (len > INT32_MAX)
		return NULL;
	out = malloc(n);
	if (out)
		EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)data, (int)len);
	return out;
}

int admission_response_patch(const char *uid, const json_t *patch, json_t **ret)
{
	_cleanup_(freep) char *text = NULL, *encoded = NULL;
	json_t *review, *response;
	int r;

	if (!json_is_array(patch))
		return -EINVAL;
	text = json_dumps(patch, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	encoded = base64_encode(text, strlen(text));
	if (!encoded)
		return -ENOMEM;
	r = response_new(uid, true, &review, &response);
	if (r < 0)
		return r;
	if (json_object_set_new(response, "patchType", json_string("JSONPatch")) < 0 ||
	    json_object_set_new(response, "patch", json_string(encoded)) < 0) {
		json_decref(review);
		return -ENOMEM;
	}
	*ret = review;
	return 0;
}

int admission_response_verdict(const char *uid, const struct admission_verdict *v,
			       const json_t *patch, json_t **ret)
{
	if (!v->allowed)
		return admission_response_deny(uid, v->message ? v->message : "", ret);
	if (patch)
		return admission_response_patch(uid, patch, ret);
	return admission_response_allow(uid, ret);
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
