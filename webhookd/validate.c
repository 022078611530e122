/* /validate-cocoonset and /validate-cocoonhibernation (operator-webhook.md §3.5–3.6): the
 * cross-field rules the CRD schema cannot express, with the original's messages byte for
 * byte and in its order, so users and scripts see the same text from either webhook.
 *
 * A CocoonSet spec is decoded against a table of its fields (§1.1), which both type-checks
 * it (a mismatch is the "decode CocoonSet: …" denial) and yields a normal form: known fields
 * only, zero values dropped, quantities as exact values. Two specs are semantically equal
 * (apimachinery's equality.Semantic: absent equals zero, "1Gi" equals "1073741824") exactly
 * when their normal forms are equal, and the rules read the normal form.
 *
 * CocoonHibernation uniqueness needs the namespace's CocoonHibernations; the caller lists
 * them and passes the result (or the LIST error) in, so this file stays pure. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cocoon/buf.h"
#include "cocoon/quantity.h"
#include "webhookd.h"

/* RFC 1123 label, as apimachinery's IsDNS1123Label reports it. */
#define DNS1123_LABEL_MAX 63
#define DNS1123_LABEL_MSG                                                                          \
	"a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "   \
	"and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "   \
	"regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
#define OCI_TAG_MAX 128

enum field_type {
	FIELD_STRING,
	FIELD_BOOL,
	FIELD_INT32,
	FIELD_QUANTITY,
	FIELD_QUANTITY_MAP, /* {name: quantity}, e.g. resources.limits */
	FIELD_OBJECT,
	FIELD_OBJECT_ARRAY,
	FIELD_INLINE, /* the members of another table, as Go's `json:",inline"` */
};

struct field {
	const char *name;
	enum field_type type;
	const struct field *members; /* FIELD_OBJECT, FIELD_OBJECT_ARRAY elements, FIELD_INLINE */
};

static const struct field local_object_reference[] = {
	{ "name", FIELD_STRING },
	{ "optional", FIELD_BOOL },
	{ NULL },
};
static const struct field env_from_source[] = {
	{ "prefix", FIELD_STRING },
	{ "configMapRef", FIELD_OBJECT, local_object_reference },
	{ "secretRef", FIELD_OBJECT, local_object_reference },
	{ NULL },
};
static const struct field resource_claim[] = {
	{ "name", FIELD_STRING },
	{ "request", FIELD_STRING },
	{ NULL },
};
static const struct field resource_requirements[] = {
	{ "limits", FIELD_QUANTITY_MAP },
	{ "requests", FIELD_QUANTITY_MAP },
	{ "claims", FIELD_OBJECT_ARRAY, resource_claim },
	{ NULL },
};

/* VMOptions, inlined into AgentSpec and ToolboxSpec. */
static const struct field vm_options[] = {
	{ "os", FIELD_STRING },
	{ "backend", FIELD_STRING },
	{ "connType", FIELD_STRING },
	{ "network", FIELD_STRING },
	{ "forcePull", FIELD_BOOL },
	{ "noDirectIO", FIELD_BOOL },
	{ "probePort", FIELD_INT32 },
	{ "storage", FIELD_QUANTITY },
	{ "resources", FIELD_OBJECT, resource_requirements },
	{ NULL },
};

static const struct field agent_spec[] = {
	{ "", FIELD_INLINE, vm_options },
	{ "replicas", FIELD_INT32 },
	{ "image", FIELD_STRING },
	{ "mode", FIELD_STRING },
	{ "envFrom", FIELD_OBJECT_ARRAY, env_from_source },
	{ "serviceAccountName", FIELD_STRING },
	{ NULL },
};
static const struct field toolbox_spec[] = {
	{ "", FIELD_INLINE, vm_options }, { "name", FIELD_STRING },
	{ "image", FIELD_STRING },        { "mode", FIELD_STRING },
	{ "staticIP", FIELD_STRING },     { "staticVMID", FIELD_STRING },
	{ "vncPort", FIELD_INT32 },       { NULL },
};
static const struct field cocoonset_spec[] = {
	{ "suspend", FIELD_BOOL },
	{ "snapshotPolicy", FIELD_STRING },
	{ "hibernatePolicy", FIELD_STRING },
	{ "nodePool", FIELD_STRING },
	{ "snapshotCompatibilityClass", FIELD_STRING },
	{ "nodeName", FIELD_STRING },
	{ "agent", FIELD_OBJECT, agent_spec },
	{ "toolboxes", FIELD_OBJECT_ARRAY, toolbox_spec },
	{ NULL },
};
static const struct field cocoonset_object[] = {
	{ "spec", FIELD_OBJECT, cocoonset_spec },
	{ NULL },
};

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	default:
		return "null";
	}
}

/* The decoder's state: the path of the value being decoded ("spec.agent.replicas") and
 * the first error. */
struct decoder {
	struct buf path;
	char *error;
};

static int decode_error(struct decoder *d, const char *fmt, ...) _printf_(2, 3);
static int decode_error(struct decoder *d, const char *fmt, ...)
{
	char *detail;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&detail, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	if (d->path.len > 0)
		r = asprintf(&d->error, "%s: %s", d->path.data, detail);
	else
		r = asprintf(&d->error, "%s", detail);
	free(detail);
	return r < 0 ? -ENOMEM : -EINVAL;
}

/* Appends before, name and after to the path ("." "agent" "", "[\"" "cpu" "\"]"); returns
 * the length to restore. Plain appends: every decoded field passes here. */
static int path_push(struct decoder *d, const char *before, const char *name, const char *after)
{
	size_t saved = d->path.len;
	int r;

	r = buf_append_str(&d->path, before);
	if (r >= 0)
		r = buf_append_str(&d->path, name);
	if (r >= 0)
		r = buf_append_str(&d->path, after);
	return r < 0 ? r : (int)saved;
}

static void path_pop(struct decoder *d, int saved)
{
	d->path.len = (size_t)saved;
	d->path.data[saved] = '\0';
}

/* A quantity as its exact value in nano-units ("q:1500000000000"): equal values compare
 * equal whatever their spelling. Go's Quantity accepts a JSON string or number, trimmed. */
static int decode_quantity(struct decoder *d, const json_t *v, json_t **ret)
{
	char text[64], digits[48], *p = digits + sizeof digits;
	const char *s = text;
	struct quantity q;
	unsigned __int128 mag;
	size_t n;

	if (json_is_string(v))
		s = json_string_value(v);
	else if (json_is_integer(v))
		snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		snprintf(text, sizeof text, "%.17g", json_real_value(v));
	else
		return decode_error(d, "expected a quantity, got %s", type_name(v));
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	n = strlen(s);
	while (n > 0 &&
	       (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	_cleanup_(freep) char *trimmed = strndup(s, n);
	if (!trimmed)
		return -ENOMEM;
	if (quantity_parse(trimmed, &q) < 0) {
		_cleanup_(freep) char *quoted = admission_quote(trimmed);

		return quoted ? decode_error(d, "invalid quantity %s", quoted) : -ENOMEM;
	}
	*--p = '\0';
	mag = q.nano < 0 ? (unsigned __int128)-q.nano : (unsigned __int128)q.nano;
	do {
		*--p = (char)('0' + (int)(mag % 10));
		mag /= 10;
	} while (mag);
	if (q.nano < 0)
		*--p = '-';
	if (q.nano == 0) {
		*ret = NULL;
		return 0;
	}
	*ret = json_sprintf("q:%s", p);
	return *ret ? 0 : -ENOMEM;
}

static int decode_value(struct decoder *d, const json_t *v, const struct field *f, json_t **ret);

/* The most fields a table has once its inline tables are expanded (ToolboxSpec: 15). */
#define FIELDS_MAX 32

/* Appends the entries of a table to out[n..], inline tables expanded in place. */
static size_t fields_flatten(const struct field *members, const struct field **out, size_t n)
{
	for (const struct field *m = members; m->name; m++) {
		if (m->type == FIELD_INLINE) {
			n = fields_flatten(m->members, out, n);
			continue;
		}
		assert(n < FIELDS_MAX);
		out[n++] = m;
	}
	return n;
}

/* The known members of v into out, in table order (so the error reported is the first
 * field's in the table): unknown ones are dropped, as Go's decoder drops them. Each member
 * of v is matched against the table once, cheaper than a lookup per field of the table,
 * since objects carry few of the fields they could. */
static int decode_members(struct decoder *d, const json_t *v, const struct field *members,
			  json_t *out)
{
	const struct field *fields[FIELDS_MAX];
	const json_t *values[FIELDS_MAX] = { 0 };
	size_t n = fields_flatten(members, fields, 0);
	const char *key;
	json_t *mv;
	int r;

	json_object_foreach ((json_t *)v, key, mv)
		for (size_t i = 0; i < n; i++)
			if (streq(fields[i]->name, key))
				values[i] = mv;
	for (size_t i = 0; i < n; i++) {
		json_t *nv = NULL;
		int saved;

		if (!values[i] || json_is_null(values[i]))
			continue;
		saved = path_push(d, d->path.len ? "." : "", fields[i]->name, "");
		if (saved < 0)
			return saved;
		r = decode_value(d, values[i], fields[i], &nv);
		if (r < 0)
			return r;
		path_pop(d, saved);
		if (nv && json_object_set_new(out, fields[i]->name, nv) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int decode_object(struct decoder *d, const json_t *v, const struct field *members,
			 json_t **ret)
{
	_cleanup_(json_decrefp) json_t *out = NULL;
	int r;

	if (!json_is_object(v))
		return decode_error(d, "expected an object, got %s", type_name(v));
	out = json_object();
	if (!out)
		return -ENOMEM;
	r = decode_members(d, v, members, out);
	if (r < 0)
		return r;
	*ret = json_object_size(out) ? TAKE_PTR(out) : NULL;
	return 0;
}

static int decode_array(struct decoder *d, const json_t *v, const struct field *f, json_t **ret)
{
	_cleanup_(json_decrefp) json_t *out = NULL;
	const json_t *e;
	size_t i;
	int r;

	if (!json_is_array(v))
		return decode_error(d, "expected an array, got %s", type_name(v));
	out = json_array();
	if (!out)
		return -ENOMEM;
	json_array_foreach (v, i, e) {
		json_t *ne = NULL;
		char index[24];
		int saved;

		snprintf(index, sizeof index, "%zu", i);
		saved = path_push(d, "[", index, "]");
		if (saved < 0)
			return saved;
		/* Elements keep their position even when empty: a null element decodes to
		 * the zero value, as in Go. */
		r = json_is_null(e) ? 0 : decode_object(d, e, f->members, &ne);
		if (r < 0)
			return r;
		path_pop(d, saved);
		if (json_array_append_new(out, ne ? ne : json_object()) < 0)
			return -ENOMEM;
	}
	*ret = json_array_size(out) ? TAKE_PTR(out) : NULL;
	return 0;
}

static int decode_quantity_map(struct decoder *d, const json_t *v, json_t **ret)
{
	_cleanup_(json_decrefp) json_t *out = NULL;
	const char *key;
	json_t *e;
	int r;

	if (!json_is_object(v))
		return decode_error(d, "expected an object, got %s", type_name(v));
	out = json_object();
	if (!out)
		return -ENOMEM;
	json_object_foreach ((json_t *)v, key, e) {
		json_t *q = NULL;
		int saved = path_push(d, "[\"", key, "\"]");

		if (saved < 0)
			return saved;
		r = json_is_null(e) ? 0 : decode_quantity(d, e, &q);
		if (r < 0)
			return r;
		path_pop(d, saved);
		/* A map keeps zero entries: {cpu: 0} differs from {} for Go's DeepEqual. */
		if (json_object_set_new(out, key, q ? q : json_string("q:0")) < 0)
			return -ENOMEM;
	}
	*ret = json_object_size(out) ? TAKE_PTR(out) : NULL;
	return 0;
}

static int decode_value(struct decoder *d, const json_t *v, const struct field *f, json_t **ret)
{
	json_int_t i;

	switch (f->type) {
	case FIELD_STRING:
		if (!json_is_string(v))
			return decode_error(d, "expected a string, got %s", type_name(v));
		/* Shared, not copied: neither tree is ever modified. */
		*ret = json_string_length(v) ? json_incref((json_t *)v) : NULL;
		break;
	case FIELD_BOOL:
		if (!json_is_boolean(v))
			return decode_error(d, "expected a boolean, got %s", type_name(v));
		*ret = json_is_true(v) ? json_true() : NULL;
		break;
	case FIELD_INT32:
		if (!json_is_integer(v))
			return decode_error(d, "expected an integer, got %s", type_name(v));
		i = json_integer_value(v);
		if (i < INT32_MIN || i > INT32_MAX)
			return decode_error(d, "%" JSON_INTEGER_FORMAT " overflows int32", i);
		*ret = i ? json_integer(i) : NULL;
		break;
	case FIELD_QUANTITY:
		return decode_quantity(d, v, ret);
	case FIELD_QUANTITY_MAP:
		return decode_quantity_map(d, v, ret);
	case FIELD_OBJECT:
		return decode_object(d, v, f->members, ret);
	case FIELD_OBJECT_ARRAY:
		return decode_array(d, v, f, ret);
	case FIELD_INLINE:
		break; /* handled by decode_members() */
	}
	return 0;
}

/* The normal form of a CocoonSet's spec, {} when it has none. */
static int cocoonset_decode(const json_t *obj, json_t **ret, char **ret_error)
{
	struct decoder d = { .path = BUF_INIT(0) };
	json_t *out = NULL, *spec;
	int r;

	if (!obj) {
		*ret_error = strdup("no object in the request");
		return *ret_error ? -EINVAL : -ENOMEM;
	}
	r = decode_object(&d, obj, cocoonset_object, &out);
	buf_free(&d.path);
	if (r < 0) {
		*ret_error = d.error;
		return r;
	}
	spec = json_incref(json_object_get(out, "spec"));
	json_decref(out);
	*ret = spec ? spec : json_object();
	return *ret ? 0 : -ENOMEM;
}

static const char *str(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : "";
}

static bool one_of(const char *s, const char *const *values)
{
	for (; *values; values++)
		if (streq(s, *values))
			return true;
	return false;
}

static const char *const agent_modes[] = { "clone", "run", NULL };
static const char *const toolbox_modes[] = { "run", "clone", "static", NULL };
static const char *const os_values[] = { "linux", "windows", "android", "macos", NULL };
static const char *const conn_types[] = { "ssh", "rdp", "vnc", "adb", NULL };
static const char *const backends[] = { "cloud-hypervisor", "firecracker", NULL };
static const char *const snapshot_policies[] = { "always", "main-only", "never", NULL };
static const char *const hibernate_policies[] = { "retain", "release", NULL };

static const char *defaulted(const char *s, const char *def)
{
	return *s ? s : def;
}

/* The collected rule violations, joined by "; ". A failed append sticks in r. */
struct violations {
	struct buf text;
	int r;
};

/* Appends one message. fmt knows only %s (a string as is), %q (a string quoted like Go's
 * %q) and %d (an int64_t), which is all the original's messages use. */
static void violation(struct violations *v, const char *fmt, ...)
{
	va_list ap;
	int r = v->r;

	if (r >= 0 && v->text.len > 0)
		r = buf_append_str(&v->text, "; ");
	va_start(ap, fmt);
	for (const char *p = fmt; r >= 0 && *p; p++) {
		if (*p != '%' || !p[1]) {
			r = buf_append(&v->text, p, 1);
			continue;
		}
		switch (*++p) {
		case 's':
			r = buf_append_str(&v->text, va_arg(ap, const char *));
			break;
		case 'q':
			r = admission_append_quoted(&v->text, va_arg(ap, const char *));
			break;
		case 'd':
			r = buf_printf(&v->text, "%" PRId64, va_arg(ap, int64_t));
			break;
		default:
			r = buf_append(&v->text, p - 1, 2);
		}
	}
	va_end(ap);
	v->r = r;
}

/* ociutil.IsRelativeRef: "repo[:tag]" split at the first ':' (tag "latest" when there
 * is none), repo matching
 *   ^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$
 * and tag ^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$. So registry ports and digests fail. */
static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool repo_is_valid(const char *s, size_t n)
{
	size_t i = 0;

	for (;;) {
		/* one path component: alnum+ (separator alnum+)* */
		if (i >= n || !is_lower_alnum(s[i]))
			return false;
		while (i < n && is_lower_alnum(s[i]))
			i++;
		if (i == n)
			return true;
		if (s[i] == '/') {
			i++;
			continue;
		}
		if (s[i] == '.')
			i++;
		else if (s[i] == '_')
			i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
		else if (s[i] == '-')
			while (i < n && s[i] == '-')
				i++;
		else
			return false;
		if (i >= n || !is_lower_alnum(s[i]))
			return false;
	}
}

static bool tag_is_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > OCI_TAG_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_lower_alnum(s[i]) && !(s[i] >= 'A' && s[i] <= 'Z') && s[i] != '_' &&
		    s[i] != '.' && s[i] != '-')
			return false;
	return true;
}

static bool image_is_relative_ref(const char *image)
{
	const char *colon = strchr(image, ':');

	if (colon && colon > image)
		return repo_is_valid(image, (size_t)(colon - image)) && tag_is_valid(colon + 1);
	return repo_is_valid(image, strlen(image)) && tag_is_valid("latest");
}

/* strconv.Atoi succeeds: an optional sign and decimal digits that fit an int64. */
static bool go_atoi_ok(const char *s)
{
	int64_t v = 0;

	if (*s == '+' || *s == '-')
		s++;
	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || __builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, *s - '0', &v))
			return false;
	}
	return true;
}

/* labels joined by '.' */
static bool is_dns1123_subdomain_format(const char *s)
{
	for (;;) {
		const char *dot = strchr(s, '.');
		size_t n = dot ? (size_t)(dot - s) : strlen(s);

		if (!admission_is_dns1123_label_format(s, n))
			return false;
		if (!dot)
			return true;
		s = dot + 1;
	}
}

/* IsDNS1123Label's messages, joined by "; " as the original joins them; none when valid.
 * A valid subdomain that is not a label can only be one with dots. */
static int dns1123_label_errors(const char *s, struct buf *out)
{
	int r = 0;

	if (strlen(s) > DNS1123_LABEL_MAX)
		r = buf_printf(out, "must be no more than %d characters", DNS1123_LABEL_MAX);
	if (r < 0 || admission_is_dns1123_label_format(s, strlen(s)))
		return r;
	if (out->len > 0)
		r = buf_append_str(out, "; ");
	if (r >= 0)
		r = buf_append_str(out, is_dns1123_subdomain_format(s) ? "must not contain dots"
								       : DNS1123_LABEL_MSG);
	return r;
}

static void check_conn_type(struct violations *v, const char *path, const json_t *o)
{
	const char *ct = str(o, "connType");

	if (*ct && !one_of(ct, conn_types))
		violation(v, "%s.connType must be ssh, rdp, vnc, or adb, got %q", path, ct);
}

/* validateVMOptions: os, connType, backend, and what firecracker cannot boot (it direct-
 * boots kernels from OCI layers: no Windows, no cloudimg URLs). */
static void check_vm_options(struct violations *v, const char *path, const json_t *o)
{
	const char *os = str(o, "os"), *backend = str(o, "backend"), *image = str(o, "image");

	/* The message omits macos, which is valid: the original's wording. */
	if (*os && !one_of(os, os_values))
		violation(v, "%s.os must be linux, windows, or android, got %q", path, os);
	check_conn_type(v, path, o);
	if (*backend && !one_of(backend, backends))
		violation(v, "%s.backend must be cloud-hypervisor or firecracker, got %q", path,
			  backend);
	if (!streq(defaulted(backend, "cloud-hypervisor"), "firecracker"))
		return;
	if (streq(defaulted(os, "linux"), "windows"))
		violation(v, "%s: firecracker does not support Windows guests", path);
	if (strncmp(image, "http://", 7) == 0 || strncmp(image, "https://", 8) == 0)
		violation(v,
			  "%s: firecracker requires an OCI image, cloudimg URLs are not supported "
			  "(got %q)",
			  path, image);
}

/* A firecracker clone restores the guest's frozen MAC and IP, so only run mode works. */
static void check_firecracker_mode(struct violations *v, const char *path, const json_t *o,
				   const char *mode)
{
	if (streq(defaulted(str(o, "backend"), "cloud-hypervisor"), "firecracker") &&
	    !streq(mode, "run"))
		violation(v, "%s: firecracker does not support %s mode, use mode=run instead", path,
			  mode);
}

/* Clone pulls repo[:tag] under a fixed registry base, so nothing else can be cloned. */
static void check_clone_image(struct violations *v, const char *path, const json_t *o,
			      const char *mode)
{
	const char *image = str(o, "image");

	if (streq(mode, "clone") && *image && !image_is_relative_ref(image))
		violation(v,
			  "%s.image %q must be repo[:tag] when mode is clone (no registry port or "
			  "digest)",
			  path, image);
}

/* The name rules; false when the toolbox has no name and nothing else is checked. */
static bool check_toolbox_name(struct violations *v, const char *path, const char *name,
			       json_t *seen)
{
	struct buf errs = BUF_INIT(0);
	int r;

	if (!*name) {
		violation(v, "%s.name is required", path);
		return false;
	}
	r = dns1123_label_errors(name, &errs);
	if (r < 0)
		v->r = r;
	else if (errs.len > 0)
		violation(v, "%s.name %q must match RFC 1123 label: %s", path, name, errs.data);
	buf_free(&errs);
	if (go_atoi_ok(name))
		violation(
		    v, "%s.name %q must not be purely numeric (conflicts with agent slot naming)",
		    path, name);
	if (json_object_get(seen, name))
		violation(v, "%s.name %q duplicates an earlier toolbox", path, name);
	else if (json_object_set_new(seen, name, json_true()) < 0)
		v->r = -ENOMEM;
	return true;
}

static void check_toolbox(struct violations *v, size_t i, const json_t *tb,
			  const char *agent_backend, json_t *seen)
{
	const char *mode = str(tb, "mode"), *backend;
	char path[64];

	snprintf(path, sizeof path, "spec.toolboxes[%zu]", i);
	if (!check_toolbox_name(v, path, str(tb, "name"), seen))
		return;
	if (*mode && !one_of(mode, toolbox_modes))
		violation(v, "%s.mode must be run, clone, or static, got %q", path, mode);
	if (streq(mode, "static")) {
		/* A static VM runs elsewhere: no image or backend, but clients still connect. */
		if (!*str(tb, "staticIP"))
			violation(v, "%s.staticIP is required when mode=static", path);
		if (!*str(tb, "staticVMID"))
			violation(v, "%s.staticVMID is required when mode=static", path);
		check_conn_type(v, path, tb);
		return;
	}
	if (!*str(tb, "image"))
		violation(v, "%s.image is required when mode is run or clone", path);
	check_vm_options(v, path, tb);
	backend = defaulted(str(tb, "backend"), "cloud-hypervisor");
	if (!streq(backend, agent_backend))
		violation(v, "%s.backend %q must match spec.agent.backend %q", path, backend,
			  agent_backend);
	check_firecracker_mode(v, path, tb, defaulted(mode, "run"));
	check_clone_image(v, path, tb, defaulted(mode, "run"));
}

/* §3.5 rules 1–9 over a normal-form spec; the messages joined by "; ", "" when valid. */
static int cocoonset_violations(const json_t *spec, char **ret)
{
	struct violations v = { .text = BUF_INIT(0) };
	const json_t *agent = json_object_get(spec, "agent"), *tb;
	const char *mode = str(agent, "mode"), *s;
	_cleanup_(json_decrefp) json_t *seen = json_object();
	json_int_t replicas = json_integer_value(json_object_get(agent, "replicas"));
	size_t i;

	if (!seen)
		return -ENOMEM;
	if (!*str(agent, "image"))
		violation(&v, "spec.agent.image is required");
	if (replicas < 0)
		violation(&v, "spec.agent.replicas must be >= 0, got %d", (int64_t)replicas);
	if (*mode && !one_of(mode, agent_modes))
		violation(&v, "spec.agent.mode must be clone or run, got %q", mode);
	check_vm_options(&v, "spec.agent", agent);
	check_firecracker_mode(&v, "spec.agent", agent, defaulted(mode, "clone"));
	check_clone_image(&v, "spec.agent", agent, defaulted(mode, "clone"));
	json_array_foreach (json_object_get(spec, "toolboxes"), i, tb)
		check_toolbox(&v, i, tb, defaulted(str(agent, "backend"), "cloud-hypervisor"),
			      seen);
	s = str(spec, "snapshotPolicy");
	if (*s && !one_of(s, snapshot_policies))
		violation(&v, "spec.snapshotPolicy must be always, main-only, or never, got %q", s);
	s = str(spec, "hibernatePolicy");
	if (*s && !one_of(s, hibernate_policies))
		violation(&v, "spec.hibernatePolicy must be retain or release, got %q", s);
	if (v.r < 0) {
		buf_free(&v.text);
		return v.r;
	}
	*ret = v.text.len ? buf_steal(&v.text, NULL) : strdup("");
	return *ret ? 0 : -ENOMEM;
}

/* The collected violations as the deny verdict (or the error that stopped collecting). */
static int violations_deny(struct violations *v, struct admission_verdict *ret)
{
	if (v->r < 0) {
		buf_free(&v->text);
		return v->r;
	}
	*ret = (struct admission_verdict){ .result = ADMISSION_RESULT_DENY,
					   .reason = "",
					   .message = buf_steal(&v->text, NULL) };
	return 0;
}

int validate_cocoonset(const struct admission_request *req, struct admission_verdict *ret)
{
	_cleanup_(json_decrefp) json_t *spec = NULL, *old_spec = NULL;
	_cleanup_(freep) char *error = NULL, *old_error = NULL, *violations = NULL;
	int r;

	if (req->operation != ADMISSION_CREATE && req->operation != ADMISSION_UPDATE)
		return admission_verdict_allow(ret, ADMISSION_RESULT_SKIPPED, "operation");
	r = cocoonset_decode(req->object, &spec, &error);
	if (r == -EINVAL)
		return admission_verdict_deny(ret, ADMISSION_RESULT_ERROR, "decode",
					      "decode CocoonSet: %s", error);
	if (r < 0)
		return r;
	/* An unchanged spec passes, so finalizer and metadata patches keep working on CRs
	 * that predate a stricter rule (they must stay deletable). */
	if (req->operation == ADMISSION_UPDATE && req->old_object) {
		r = cocoonset_decode(req->old_object, &old_spec, &old_error);
		if (r == -ENOMEM)
			return r;
		if (r >= 0 && json_equal(spec, old_spec))
			return admission_verdict_allow(ret, ADMISSION_RESULT_SKIPPED, "no_change");
	}
	r = cocoonset_violations(spec, &violations);
	if (r < 0)
		return r;
	if (*violations)
		return admission_verdict_deny(ret, ADMISSION_RESULT_DENY, "",
					      "cocoon-webhook: invalid CocoonSet spec: %s",
					      violations);
	return admission_verdict_allow(ret, ADMISSION_RESULT_ALLOW, "");
}

/* The string at a path of members: "" when absent or null; an intermediate that is not an
 * object, or a leaf that is not a string, is an error naming the path. */
static int string_at(const json_t *obj, const char *const *keys, const char **ret, char **ret_error)
{
	struct buf path = BUF_INIT(0);
	const json_t *v = obj;
	int r = 0;

	*ret = "";
	for (size_t i = 0; keys[i]; i++) {
		bool leaf = !keys[i + 1];

		r = buf_printf(&path, "%s%s", i ? "." : "", keys[i]);
		if (r < 0)
			break;
		v = json_object_get(v, keys[i]);
		if (!v || json_is_null(v))
			break;
		if (leaf ? !json_is_string(v) : !json_is_object(v)) {
			r = asprintf(ret_error, "%s: expected %s, got %s", path.data,
				     leaf ? "a string" : "an object", type_name(v)) < 0
				? -ENOMEM
				: -EINVAL;
			break;
		}
		if (leaf)
			*ret = json_string_value(v);
	}
	buf_free(&path);
	return r < 0 ? r : 0;
}

/* The fields of a CocoonHibernation the rules read, type-checked like a decode. */
static int hibernation_decode(const json_t *obj, const char **ret_name, const char **ret_pod,
			      char **ret_error)
{
	static const char *const name[] = { "metadata", "name", NULL };
	static const char *const pod[] = { "spec", "podRef", "name", NULL };
	static const char *const desire[] = { "spec", "desire", NULL };
	const char *unused;
	int r;

	if (!json_is_object(obj)) {
		*ret_error = strdup("no object in the request");
		return *ret_error ? -EINVAL : -ENOMEM;
	}
	r = string_at(obj, name, ret_name, ret_error);
	if (r >= 0)
		r = string_at(obj, pod, ret_pod, ret_error);
	if (r >= 0)
		r = string_at(obj, desire, &unused, ret_error);
	return r;
}

static const json_t *list_items(const json_t *list)
{
	return json_is_object(list) ? json_object_get(list, "items") : list;
}

int validate_cocoonhibernation(const struct admission_request *req,
			       const struct validate_hibernation_list *existing,
			       struct admission_verdict *ret)
{
	_cleanup_(freep) char *error = NULL;
	const char *name, *pod;
	const json_t *other;
	size_t i;
	int r;

	if (req->operation != ADMISSION_CREATE)
		return admission_verdict_allow(ret, ADMISSION_RESULT_SKIPPED, "operation");
	r = hibernation_decode(req->object, &name, &pod, &error);
	if (r == -EINVAL)
		return admission_verdict_deny(ret, ADMISSION_RESULT_ERROR, "decode",
					      "decode CocoonHibernation: %s", error);
	if (r < 0)
		return r;
	/* Named after its pod, racing duplicate CREATEs become an apiserver name conflict. */
	if (!streq(name, pod)) {
		struct violations v = { .text = BUF_INIT(0) };

		violation(&v,
			  "cocoon-webhook: metadata.name %q must equal spec.podRef.name %q (one "
			  "CocoonHibernation per pod, named after it)",
			  name, pod);
		return violations_deny(&v, ret);
	}
	if (!existing)
		return ADMISSION_NEED_FETCH;
	/* Fail closed: a possible duplicate would flip-flop without converging. */
	if (existing->error)
		return admission_verdict_deny(ret, ADMISSION_RESULT_ERROR, "list",
					      "cocoon-webhook: cannot verify podRef uniqueness: %s",
					      existing->error);
	json_array_foreach (list_items(existing->items), i, other) {
		const json_t *md = json_object_get(other, "metadata");
		const json_t *dt = json_object_get(md, "deletionTimestamp");
		const char *other_pod = json_string_value(json_object_get(
		    json_object_get(json_object_get(other, "spec"), "podRef"), "name"));
		struct violations v = { .text = BUF_INIT(0) };
		const char *other_name = str(md, "name");

		if (!other_pod || !streq(other_pod, pod))
			continue;
		if (dt && !json_is_null(dt))
			violation(&v,
				  "cocoon-webhook: pod %q's CocoonHibernation %q is still "
				  "terminating; retry after its cleanup finishes",
				  pod, other_name);
		else
			violation(&v,
				  "cocoon-webhook: pod %q already has a live CocoonHibernation %q; "
				  "flip its spec.desire instead of creating a second CR",
				  pod, other_name);
		return violations_deny(&v, ret);
	}
	return admission_verdict_allow(ret, ADMISSION_RESULT_ALLOW, "");
}
