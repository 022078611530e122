/* Where the Kubernetes client connects and how it authenticates (DESIGN.md §5), found the way
 * client-go's loading rules find it:
 *   1. $KUBECONFIG, a colon-separated list of kubeconfig files: missing files are skipped,
 *      clusters/users/contexts are merged by name with the first file that defines a name
 *      winning, and current-context comes from the first file that sets it;
 *   2. else ~/.kube/config;
 *   3. else the in-cluster service account (KUBERNETES_SERVICE_HOST/PORT, and token, ca.crt
 *      and namespace under $KUBE_SA_DIR or /var/run/secrets/kubernetes.io/serviceaccount).
 * Relative file paths in a kubeconfig are relative to that file's directory (client-go's
 * ResolvePaths). Kubeconfigs are YAML (libyaml's document API; anchors and aliases work
 * because the schema is walked to a fixed depth). Exec plugins, auth providers and basic
 * auth are refused with an error naming the user. Every error names the file and the field
 * path, e.g. "/root/.kube/config: users[0].user.client-key-data: not valid base64". */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "cocoon/buf.h"
#include "cocoon/fsutil.h"
#include "cocoon/kube.h"
#include "kube-client-internal.h"

#define SA_DIR_DEFAULT "/var/run/secrets/kubernetes.io/serviceaccount"

enum kc_kind { KC_CLUSTERS, KC_USERS, KC_CONTEXTS, _KC_KIND_MAX };

enum kc_type {
	KC_STRING,
	KC_PATH,    /* a file name: relative ones are resolved against the kubeconfig's dir */
	KC_BOOL,    /* stored as "true" or NULL */
	KC_PRESENT, /* any non-null value (a section we refuse): stored as "" */
};

struct kc_field {
	const char *key;
	enum kc_type type;
};

enum { CL_SERVER, CL_CA, CL_CA_DATA, CL_INSECURE, _CL_MAX };
enum {
	US_TOKEN,
	US_TOKEN_FILE,
	US_CERT,
	US_CERT_DATA,
	US_KEY,
	US_KEY_DATA,
	US_USERNAME,
	US_EXEC,
	US_AUTH_PROVIDER,
	_US_MAX
};
enum { CX_CLUSTER, CX_USER, CX_NAMESPACE, _CX_MAX };
#define KC_MAX_FIELDS  10
#define KC_MAX_ENTRIES 10000 /* per list and file */

static const struct kc_field cluster_fields[_CL_MAX] = {
	[CL_SERVER] = { "server", KC_STRING },
	[CL_CA] = { "certificate-authority", KC_PATH },
	[CL_CA_DATA] = { "certificate-authority-data", KC_STRING },
	[CL_INSECURE] = { "insecure-skip-tls-verify", KC_BOOL },
};
static const struct kc_field user_fields[_US_MAX] = {
	[US_TOKEN] = { "token", KC_STRING },
	[US_TOKEN_FILE] = { "tokenFile", KC_PATH },
	[US_CERT] = { "client-certificate", KC_PATH },
	[US_CERT_DATA] = { "client-certificate-data", KC_STRING },
	[US_KEY] = { "client-key", KC_PATH },
	[US_KEY_DATA] = { "client-key-data", KC_STRING },
	[US_USERNAME] = { "username", KC_STRING },
	[US_EXEC] = { "exec", KC_PRESENT },
	[US_AUTH_PROVIDER] = { "auth-provider", KC_PRESENT },
};
static const struct kc_field context_fields[_CX_MAX] = {
	[CX_CLUSTER] = { "cluster", KC_STRING },
	[CX_USER] = { "user", KC_STRING },
	[CX_NAMESPACE] = { "namespace", KC_STRING },
};

static const struct {
	const char *list, *item;
	const struct kc_field *fields;
	size_t n_fields;
} kinds[_KC_KIND_MAX] = {
	[KC_CLUSTERS] = { "clusters", "cluster", cluster_fields, _CL_MAX },
	[KC_USERS] = { "users", "user", user_fields, _US_MAX },
	[KC_CONTEXTS] = { "contexts", "context", context_fields, _CX_MAX },
};

/* One named cluster, user or context, as one file defined it. */
struct kc_entry {
	char *name;
	const char *origin; /* the file (owned by the kc_set) */
	size_t index;       /* position in that file's list, for error messages */
	char *v[KC_MAX_FIELDS];
};

/* Every file read so far, in reading order: a lookup by name takes the first match, which
 * is client-go's "first file wins" merge. */
struct kc_set {
	struct kc_entry *entries[_KC_KIND_MAX];
	size_t n[_KC_KIND_MAX];
	char *current_context;
	const char *current_origin;
	char **origins;
	size_t n_origins;
};

struct kc_parse {
	struct kc_set *set;
	yaml_document_t *doc;
	const char *origin;
	char *dir; /* for relative paths, or NULL */
	char **ret_error;
};

static void kc_entry_clear(struct kc_entry *e)
{
	free(e->name);
	for (size_t i = 0; i < KC_MAX_FIELDS; i++)
		free(e->v[i]);
	*e = (struct kc_entry){ 0 };
}

static void kc_set_clear(struct kc_set *set)
{
	for (size_t k = 0; k < _KC_KIND_MAX; k++) {
		for (size_t i = 0; i < set->n[k]; i++)
			kc_entry_clear(&set->entries[k][i]);
		free(set->entries[k]);
	}
	free(set->current_context);
	for (size_t i = 0; i < set->n_origins; i++)
		free(set->origins[i]);
	free(set->origins);
	*set = (struct kc_set){ 0 };
}

/* Sets *ret_error (the public functions' own, initially NULL) and returns -EINVAL, or
 * -ENOMEM if the message cannot be built. */
_printf_(2, 3) static int kc_error(char **ret_error, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	free(*ret_error);
	*ret_error = s;
	return -EINVAL;
}

/* ---- YAML nodes ---- */

static bool scalar_is(const yaml_node_t *n, const char *s)
{
	size_t len = strlen(s);

	return n && n->type == YAML_SCALAR_NODE && n->data.scalar.length == len &&
	       memcmp(n->data.scalar.value, s, len) == 0;
}

/* YAML 1.1 null: absent, "", "~" or "null" unquoted. */
static bool node_is_null(const yaml_node_t *n)
{
	if (!n)
		return true;
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	return n->data.scalar.length == 0 || scalar_is(n, "~") || scalar_is(n, "null") ||
	       scalar_is(n, "Null") || scalar_is(n, "NULL");
}

static const char *node_kind(const yaml_node_t *n)
{
	return n->type == YAML_MAPPING_NODE    ? "a mapping"
	       : n->type == YAML_SEQUENCE_NODE ? "a list"
					       : "a scalar";
}

/* The value of key in a mapping (NULL when absent). A key given twice is an error: which
 * one counts would be a guess. */
static int map_get(struct kc_parse *p, yaml_node_t *map, const char *key, const char *where,
		   yaml_node_t **ret)
{
	yaml_node_t *found = NULL;

	for (yaml_node_pair_t *pair = map->data.mapping.pairs.start;
	     pair < map->data.mapping.pairs.top; pair++) {
		if (!scalar_is(yaml_document_get_node(p->doc, pair->key), key))
			continue;
		if (found)
			return kc_error(p->ret_error, "%s: %s%s%s: key given twice", p->origin,
					where, *where ? "." : "", key);
		found = yaml_document_get_node(p->doc, pair->value);
	}
	*ret = found;
	return 0;
}

/* A string value: NULL for null; a mapping or list is an error. */
static int node_string(struct kc_parse *p, yaml_node_t *n, const char *path, char **ret)
{
	*ret = NULL;
	if (node_is_null(n))
		return 0;
	if (n->type != YAML_SCALAR_NODE)
		return kc_error(p->ret_error, "%s: %s: expected a string, got %s", p->origin, path,
				node_kind(n));
	if (memchr(n->data.scalar.value, '\0', n->data.scalar.length))
		return kc_error(p->ret_error, "%s: %s: contains a NUL byte", p->origin, path);
	*ret = strndup((const char *)n->data.scalar.value, n->data.scalar.length);
	return *ret ? 0 : -ENOMEM;
}

static int node_bool(struct kc_parse *p, yaml_node_t *n, const char *path, char **ret)
{
	static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes",
					   "YES",  "on",   "On",   "ON" };
	static const char *const no[] = { "false", "False", "FALSE", "no", "No",
					  "NO",    "off",   "Off",   "OFF" };

	*ret = NULL;
	if (node_is_null(n))
		return 0;
	/* a quoted "true" is a string, as in YAML 1.1 and for client-go */
	for (size_t i = 0; n->type == YAML_SCALAR_NODE &&
			   n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && i < ELEMENTSOF(yes);
	     i++) {
		if (scalar_is(n, yes[i])) {
			*ret = strdup("true");
			return *ret ? 0 : -ENOMEM;
		}
		if (scalar_is(n, no[i]))
			return 0;
	}
	return kc_error(p->ret_error, "%s: %s: expected true or false", p->origin, path);
}

static int node_field(struct kc_parse *p, yaml_node_t *n, const struct kc_field *f,
		      const char *path, char **ret)
{
	_cleanup_(freep) char *s = NULL;
	int r;

	switch (f->type) {
	case KC_BOOL:
		return node_bool(p, n, path, ret);
	case KC_PRESENT:
		*ret = node_is_null(n) ? NULL : strdup("");
		return node_is_null(n) || *ret ? 0 : -ENOMEM;
	case KC_PATH:
		r = node_string(p, n, path, &s);
		if (r < 0)
			return r;
		if (!isempty(s) && s[0] != '/' && p->dir) {
			char *abs;

			if (asprintf(&abs, "%s/%s", p->dir, s) < 0)
				return -ENOMEM;
			free(s);
			s = abs;
		}
		*ret = TAKE_PTR(s);
		return 0;
	default:
		return node_string(p, n, path, ret);
	}
}

/* ---- one file ---- */

static int kc_append(struct kc_set *set, enum kc_kind k, struct kc_entry *e)
{
	struct kc_entry *a = reallocarray(set->entries[k], set->n[k] + 1, sizeof *a);

	if (!a)
		return -ENOMEM;
	set->entries[k] = a;
	a[set->n[k]++] = *e;
	*e = (struct kc_entry){ 0 };
	return 0;
}

static int kc_parse_entry(struct kc_parse *p, enum kc_kind k, yaml_node_t *n, size_t index)
{
	_cleanup_(kc_entry_clear) struct kc_entry e = { .origin = p->origin, .index = index };
	char where[64], path[128];
	yaml_node_t *body, *v;
	int r;

	snprintf(where, sizeof where, "%s[%zu]", kinds[k].list, index);
	if (!n || n->type != YAML_MAPPING_NODE)
		return kc_error(p->ret_error, "%s: %s: expected a mapping, got %s", p->origin,
				where, n ? node_kind(n) : "nothing");
	snprintf(path, sizeof path, "%s.name", where);
	r = map_get(p, n, "name", where, &v);
	if (r >= 0)
		r = node_string(p, v, path, &e.name);
	if (r < 0)
		return r;
	if (isempty(e.name))
		return kc_error(p->ret_error, "%s: %s: missing", p->origin, path);
	for (size_t i = 0; i < p->set->n[k]; i++) {
		const struct kc_entry *o = &p->set->entries[k][i];

		if (o->origin == p->origin && streq(o->name, e.name))
			return kc_error(p->ret_error, "%s: %s: \"%s\" is also %s[%zu]", p->origin,
					path, e.name, kinds[k].list, o->index);
	}
	snprintf(path, sizeof path, "%s.%s", where, kinds[k].item);
	r = map_get(p, n, kinds[k].item, where, &body);
	if (r < 0)
		return r;
	if (!node_is_null(body) && body->type != YAML_MAPPING_NODE)
		return kc_error(p->ret_error, "%s: %s: expected a mapping, got %s", p->origin, path,
				node_kind(body));
	for (size_t f = 0; f < kinds[k].n_fields && !node_is_null(body); f++) {
		char fpath[192];

		snprintf(fpath, sizeof fpath, "%s.%s", path, kinds[k].fields[f].key);
		r = map_get(p, body, kinds[k].fields[f].key, path, &v);
		if (r >= 0)
			r = node_field(p, v, &kinds[k].fields[f], fpath, &e.v[f]);
		if (r < 0)
			return r;
	}
	return kc_append(p->set, k, &e);
}

static int kc_parse_list(struct kc_parse *p, yaml_node_t *root, enum kc_kind k)
{
	yaml_node_t *list;
	size_t index = 0;
	int r;

	r = map_get(p, root, kinds[k].list, "", &list);
	if (r < 0 || node_is_null(list))
		return r;
	if (list->type != YAML_SEQUENCE_NODE)
		return kc_error(p->ret_error, "%s: %s: expected a list, got %s", p->origin,
				kinds[k].list, node_kind(list));
	/* names are checked for duplicates pairwise: keep that quadratic work bounded */
	if (list->data.sequence.items.top - list->data.sequence.items.start > KC_MAX_ENTRIES)
		return kc_error(p->ret_error, "%s: %s: more than %d entries", p->origin,
				kinds[k].list, KC_MAX_ENTRIES);
	for (yaml_node_item_t *i = list->data.sequence.items.start;
	     i < list->data.sequence.items.top; i++, index++) {
		r = kc_parse_entry(p, k, yaml_document_get_node(p->doc, *i), index);
		if (r < 0)
			return r;
	}
	return 0;
}

static int kc_parse_root(struct kc_parse *p)
{
	yaml_node_t *root = yaml_document_get_root_node(p->doc), *cur;
	_cleanup_(freep) char *current = NULL;
	int r;

	if (node_is_null(root)) /* an empty file is an empty configuration, as in client-go */
		return 0;
	if (root->type != YAML_MAPPING_NODE)
		return kc_error(p->ret_error, "%s: expected a mapping at the top, got %s",
				p->origin, node_kind(root));
	r = map_get(p, root, "current-context", "", &cur);
	if (r >= 0)
		r = node_string(p, cur, "current-context", &current);
	if (r < 0)
		return r;
	for (enum kc_kind k = 0; k < _KC_KIND_MAX; k++) {
		r = kc_parse_list(p, root, k);
		if (r < 0)
			return r;
	}
	if (!isempty(current) && !p->set->current_context) {
		p->set->current_context = TAKE_PTR(current);
		p->set->current_origin = p->origin;
	}
	return 0;
}

static int yaml_error(const yaml_parser_t *parser, const char *origin, char **ret_error)
{
	if (parser->error == YAML_MEMORY_ERROR)
		return -ENOMEM;
	return kc_error(ret_error, "%s: line %zu column %zu: %s%s%s", origin,
			parser->problem_mark.line + 1, parser->problem_mark.column + 1,
			parser->problem ? parser->problem : "malformed YAML",
			parser->context ? " " : "", parser->context ? parser->context : "");
}

static int kc_add_origin(struct kc_set *set, const char *origin, const char **ret)
{
	char **a = reallocarray(set->origins, set->n_origins + 1, sizeof *a);

	if (!a)
		return -ENOMEM;
	set->origins = a;
	a[set->n_origins] = strdup(origin);
	if (!a[set->n_origins])
		return -ENOMEM;
	*ret = a[set->n_origins++];
	return 0;
}

/* Adds one kubeconfig's entries to set. origin NULL: "kubeconfig", paths left as given. */
static int kc_set_parse(struct kc_set *set, const char *yaml, size_t len, const char *origin,
			char **ret_error)
{
	struct kc_parse p = { .set = set, .ret_error = ret_error };
	const char *slash = origin ? strrchr(origin, '/') : NULL;
	yaml_parser_t parser;
	yaml_document_t doc;
	int r;

	r = kc_add_origin(set, origin ? origin : "kubeconfig", &p.origin);
	if (r < 0)
		return r;
	if (len > KUBE_CONFIG_MAX_BYTES)
		return kc_error(ret_error, "%s: larger than %u bytes", p.origin,
				KUBE_CONFIG_MAX_BYTES);
	if (slash) {
		p.dir = slash == origin ? strdup("/") : strndup(origin, (size_t)(slash - origin));
		if (!p.dir)
			return -ENOMEM;
	}
	if (!yaml_parser_initialize(&parser)) {
		free(p.dir);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&parser, &doc)) {
		r = yaml_error(&parser, p.origin, ret_error);
	} else {
		p.doc = &doc;
		r = kc_parse_root(&p);
		yaml_document_delete(&doc);
	}
	yaml_parser_delete(&parser);
	free(p.dir);
	return r;
}

/* ---- from the merged entries to a kube_config ---- */

static const struct kc_entry *kc_find(const struct kc_set *set, enum kc_kind k, const char *name)
{
	for (size_t i = 0; i < set->n[k]; i++)
		if (streq(set->entries[k][i].name, name))
			return &set->entries[k][i];
	return NULL;
}

static void field_path(char *buf, size_t n, enum kc_kind k, const struct kc_entry *e, int f)
{
	snprintf(buf, n, "%s[%zu].%s%s%s", kinds[k].list, e->index, kinds[k].item, f < 0 ? "" : ".",
		 f < 0 ? "" : kinds[k].fields[f].key);
}

static int b64_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* Standard base64; line breaks and blanks (folded YAML) are skipped, padding is optional
 * but nothing may follow it. -EINVAL for anything else. */
static int base64_decode(const char *s, char **ret, size_t *ret_len)
{
	_cleanup_(freep) char *out = malloc(strlen(s) / 4 * 3 + 4);
	unsigned bits = 0, nbits = 0, pad = 0;
	size_t n = 0, sextets = 0;

	if (!out)
		return -ENOMEM;
	for (; *s; s++) {
		int v;

		if (strchr(" \t\r\n", *s))
			continue;
		if (*s == '=') {
			pad++;
			continue;
		}
		v = b64_value(*s);
		if (v < 0 || pad > 0)
			return -EINVAL;
		bits = (bits << 6) | (unsigned)v;
		nbits += 6;
		sextets++;
		if (nbits >= 8) {
			nbits -= 8;
			out[n++] = (char)((bits >> nbits) & 0xff);
		}
	}
	if (sextets % 4 == 1 || pad > 2 || (pad && (sextets + pad) % 4 != 0))
		return -EINVAL;
	out[n] = '\0';
	*ret = TAKE_PTR(out);
	*ret_len = n;
	return 0;
}

/* Decode a *-data field into the PEM text httpc and OpenSSL take. */
static int kc_decode_pem(enum kc_kind k, const struct kc_entry *e, int f, char **ret,
			 char **ret_error)
{
	_cleanup_(freep) char *pem = NULL;
	char path[128];
	size_t len;
	int r;

	*ret = NULL;
	if (!e->v[f])
		return 0;
	field_path(path, sizeof path, k, e, f);
	r = base64_decode(e->v[f], &pem, &len);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return kc_error(ret_error, "%s: %s: not valid base64", e->origin, path);
	if (memchr(pem, '\0', len) || !strstr(pem, "-----BEGIN "))
		return kc_error(ret_error, "%s: %s: not PEM data (no \"-----BEGIN\" line)",
				e->origin, path);
	*ret = TAKE_PTR(pem);
	return 0;
}

/* client-go accepts "host:port" and assumes https; other schemes are refused. */
static int kc_server(const char *v, char **ret)
{
	_cleanup_(freep) char *s = NULL;
	const char *host;
	size_t len;

	for (const char *p = v; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return -EINVAL;
	if (!strstr(v, "://")) {
		if (asprintf(&s, "https://%s", v) < 0)
			return -ENOMEM;
	} else if (strncmp(v, "https://", 8) == 0 || strncmp(v, "http://", 7) == 0) {
		s = strdup(v);
		if (!s)
			return -ENOMEM;
	} else {
		return -EINVAL;
	}
	host = strstr(s, "://") + 3;
	if (!*host || strchr("/?#", *host))
		return -EINVAL;
	len = strlen(s);
	while (s[len - 1] == '/') /* stops at the host, which is not a '/' */
		s[--len] = '\0';
	*ret = TAKE_PTR(s);
	return 0;
}

static int kc_resolve_cluster(const struct kc_entry *cl, struct kube_config *c, char **ret_error)
{
	char path[128];
	int r;

	field_path(path, sizeof path, KC_CLUSTERS, cl, CL_SERVER);
	if (isempty(cl->v[CL_SERVER]))
		return kc_error(ret_error, "%s: %s: missing", cl->origin, path);
	r = kc_server(cl->v[CL_SERVER], &c->server);
	if (r == -EINVAL)
		return kc_error(ret_error, "%s: %s: \"%s\" is not an https:// or http:// URL",
				cl->origin, path, cl->v[CL_SERVER]);
	if (r < 0)
		return r;
	field_path(path, sizeof path, KC_CLUSTERS, cl, -1);
	if (cl->v[CL_CA] && cl->v[CL_CA_DATA])
		return kc_error(ret_error,
				"%s: %s: certificate-authority and certificate-authority-data "
				"are both set",
				cl->origin, path);
	/* client-go's validation refuses this combination too: it is always a mistake */
	if (cl->v[CL_INSECURE] && (cl->v[CL_CA] || cl->v[CL_CA_DATA]))
		return kc_error(ret_error,
				"%s: %s: insecure-skip-tls-verify together with a "
				"certificate authority is not allowed",
				cl->origin, path);
	c->insecure = cl->v[CL_INSECURE] != NULL;
	if (cl->v[CL_CA] && !(c->ca_file = strdup(cl->v[CL_CA])))
		return -ENOMEM;
	return kc_decode_pem(KC_CLUSTERS, cl, CL_CA_DATA, &c->ca_data, ret_error);
}

static int kc_refuse_auth(const struct kc_entry *u, char **ret_error)
{
	static const struct {
		int field;
		const char *what;
	} refused[] = {
		{ US_EXEC, "exec credential plugins are not supported" },
		{ US_AUTH_PROVIDER, "auth-provider plugins are not supported" },
		{ US_USERNAME, "basic authentication (username/password) is not supported" },
	};
	char path[128];

	for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
		if (!u->v[refused[i].field])
			continue;
		field_path(path, sizeof path, KC_USERS, u, refused[i].field);
		return kc_error(ret_error,
				"%s: %s: %s (user \"%s\"); use a token, a token file "
				"or a client certificate",
				u->origin, path, refused[i].what, u->name);
	}
	return 0;
}

static int kc_resolve_user(const struct kc_entry *u, struct kube_config *c, char **ret_error)
{
	char path[128];
	int r;

	r = kc_refuse_auth(u, ret_error);
	if (r < 0)
		return r;
	field_path(path, sizeof path, KC_USERS, u, -1);
	if (u->v[US_CERT] && u->v[US_CERT_DATA])
		return kc_error(ret_error,
				"%s: %s: client-certificate and client-certificate-data are "
				"both set",
				u->origin, path);
	if (u->v[US_KEY] && u->v[US_KEY_DATA])
		return kc_error(ret_error, "%s: %s: client-key and client-key-data are both set",
				u->origin, path);
	if (!(u->v[US_CERT] || u->v[US_CERT_DATA]) != !(u->v[US_KEY] || u->v[US_KEY_DATA]))
		return kc_error(ret_error,
				"%s: %s: a client certificate needs its key and a key "
				"its certificate",
				u->origin, path);
	r = kc_decode_pem(KC_USERS, u, US_CERT_DATA, &c->cert_data, ret_error);
	if (r >= 0)
		r = kc_decode_pem(KC_USERS, u, US_KEY_DATA, &c->key_data, ret_error);
	if (r < 0)
		return r;
	if ((u->v[US_CERT] && !(c->cert_file = strdup(u->v[US_CERT]))) ||
	    (u->v[US_KEY] && !(c->key_file = strdup(u->v[US_KEY]))) ||
	    (u->v[US_TOKEN] && !(c->token = strdup(u->v[US_TOKEN]))) ||
	    (u->v[US_TOKEN_FILE] && !(c->token_file = strdup(u->v[US_TOKEN_FILE]))))
		return -ENOMEM;
	return 0;
}

/* Files the configuration names must be readable now: the error then names the kubeconfig
 * field instead of surfacing later as a TLS failure of some request. */
static int kc_check_files(const struct kc_entry *cl, const struct kc_entry *u, char **ret_error)
{
	const struct {
		enum kc_kind kind;
		const struct kc_entry *e;
		int field;
	} files[] = {
		{ KC_CLUSTERS, cl, CL_CA },
		{ KC_USERS, u, US_CERT },
		{ KC_USERS, u, US_KEY },
		{ KC_USERS, u, US_TOKEN_FILE },
	};
	char path[128];

	for (size_t i = 0; i < ELEMENTSOF(files); i++) {
		const struct kc_entry *e = files[i].e;

		if (!e || !e->v[files[i].field] || access(e->v[files[i].field], R_OK) >= 0)
			continue;
		field_path(path, sizeof path, files[i].kind, e, files[i].field);
		return kc_error(ret_error, "%s: %s: %s: %s", e->origin, path, e->v[files[i].field],
				strerror(errno));
	}
	return 0;
}

static int kc_resolve(const struct kc_set *set, const char *context, const char *origins,
		      bool check_files, struct kube_config **ret, char **ret_error)
{
	_cleanup_(kube_config_freep) struct kube_config *c = NULL;
	const struct kc_entry *cx, *cl, *u = NULL;
	const char *name = context ? context : set->current_context;
	char path[128];
	int r;

	if (isempty(name))
		return kc_error(ret_error,
				"%s: current-context: not set, and no context was "
				"requested",
				origins);
	cx = kc_find(set, KC_CONTEXTS, name);
	if (!cx)
		return kc_error(ret_error, "%s: contexts: context \"%s\" not found", origins, name);
	field_path(path, sizeof path, KC_CONTEXTS, cx, CX_CLUSTER);
	if (isempty(cx->v[CX_CLUSTER]))
		return kc_error(ret_error, "%s: %s: missing", cx->origin, path);
	cl = kc_find(set, KC_CLUSTERS, cx->v[CX_CLUSTER]);
	if (!cl)
		return kc_error(ret_error,
				"%s: clusters: cluster \"%s\" (of context \"%s\") not "
				"found",
				origins, cx->v[CX_CLUSTER], name);
	if (!isempty(cx->v[CX_USER])) {
		u = kc_find(set, KC_USERS, cx->v[CX_USER]);
		if (!u)
			return kc_error(ret_error,
					"%s: users: user \"%s\" (of context \"%s\") "
					"not found",
					origins, cx->v[CX_USER], name);
	}
	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	r = kc_resolve_cluster(cl, c, ret_error);
	if (r >= 0 && u)
		r = kc_resolve_user(u, c, ret_error);
	if (r >= 0 && check_files)
		r = kc_check_files(cl, u, ret_error);
	if (r < 0)
		return r;
	if ((!isempty(cx->v[CX_NAMESPACE]) && !(c->namespace = strdup(cx->v[CX_NAMESPACE]))) ||
	    !(c->source = strdup(cx->origin)))
		return -ENOMEM;
	*ret = TAKE_PTR(c);
	return 0;
}

static char *kc_origins(const struct kc_set *set)
{
	struct buf b = BUF_INIT(0);

	for (size_t i = 0; i < set->n_origins; i++)
		if (buf_printf(&b, "%s%s", i ? ":" : "", set->origins[i]) < 0) {
			buf_free(&b);
			return NULL;
		}
	return buf_steal(&b, NULL);
}

/* ---- public ---- */

static int config_parse(const char *yaml, size_t len, const char *origin, const char *context,
			struct kube_config **ret, char **ret_error)
{
	_cleanup_(kc_set_clear) struct kc_set set = { 0 };
	int r;

	if (!yaml || !ret)
		return -EINVAL;
	r = kc_set_parse(&set, yaml, len, origin, ret_error);
	if (r < 0)
		return r;
	return kc_resolve(&set, context, set.origins[0], false, ret, ret_error);
}

/* Reads path into set; -ENOENT is returned without a message (callers decide whether a
 * missing file matters). */
static int kc_set_read(struct kc_set *set, const char *path, char **ret_error)
{
	_cleanup_(freep) char *data = NULL;
	size_t len;
	int r;

	r = fs_read_file(path, KUBE_CONFIG_MAX_BYTES, &data, &len);
	if (r == -ENOENT)
		return r;
	if (r == -EFBIG)
		return kc_error(ret_error, "%s: larger than %u bytes", path, KUBE_CONFIG_MAX_BYTES);
	if (r < 0) {
		int q = kc_error(ret_error, "%s: cannot read: %s", path, strerror(-r));

		return q == -ENOMEM ? q : r;
	}
	return kc_set_parse(set, data, len, path, ret_error);
}

static int config_load_file(const char *path, const char *context, struct kube_config **ret,
			    char **ret_error)
{
	_cleanup_(kc_set_clear) struct kc_set set = { 0 };
	int r;

	if (isempty(path) || !ret)
		return -EINVAL;
	r = kc_set_read(&set, path, ret_error);
	if (r == -ENOENT)
		kc_error(ret_error, "%s: %s", path, strerror(ENOENT));
	if (r < 0)
		return r;
	return kc_resolve(&set, context, path, true, ret, ret_error);
}

static bool host_valid(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr(".-:", *s)))
			return false;
	return true;
}

static bool port_valid(const char *s)
{
	unsigned long v = 0;

	if (isempty(s) || strlen(s) > 5)
		return false;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	return v >= 1 && v <= 65535;
}

/* The namespace of the pod we run in: $POD_NAMESPACE (client-go honours it first, for
 * the downward API), else the service account's namespace file. */
static int kc_in_cluster_namespace(const char *dir, char **ret)
{
	_cleanup_(freep) char *path = NULL, *data = NULL;
	const char *env = getenv("POD_NAMESPACE");
	size_t len;

	*ret = NULL;
	if (!isempty(env)) {
		*ret = strdup(env);
		return *ret ? 0 : -ENOMEM;
	}
	if (asprintf(&path, "%s/namespace", dir) < 0)
		return -ENOMEM;
	if (fs_read_file(path, 256, &data, &len) < 0)
		return 0; /* no file: "default" */
	while (len > 0 && strchr(" \t\r\n", data[len - 1]))
		data[--len] = '\0';
	if (len > 0)
		*ret = TAKE_PTR(data);
	return 0;
}

static int kc_in_cluster(const char *context, const char *why, struct kube_config **ret,
			 char **ret_error)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST"),
		   *port = getenv("KUBERNETES_SERVICE_PORT");
	const char *dir = getenv("KUBE_SA_DIR");
	_cleanup_(kube_config_freep) struct kube_config *c = NULL;
	_cleanup_(freep) char *ca = NULL;
	int r;

	if (isempty(host) || isempty(port))
		return kc_error(ret_error,
				"no Kubernetes configuration: %s, and this is not a pod "
				"(KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset)",
				why);
	if (context)
		return kc_error(ret_error,
				"context \"%s\" requested, but %s (the in-cluster configuration "
				"has no contexts)",
				context, why);
	if (!host_valid(host))
		return kc_error(ret_error,
				"in-cluster: KUBERNETES_SERVICE_HOST=\"%s\" is not a "
				"host name or address",
				host);
	if (!port_valid(port))
		return kc_error(ret_error,
				"in-cluster: KUBERNETES_SERVICE_PORT=\"%s\" is not a port number",
				port);
	dir = isempty(dir) ? SA_DIR_DEFAULT : dir;
	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	if (asprintf(&c->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
		     port) < 0 ||
	    asprintf(&c->token_file, "%s/token", dir) < 0 || asprintf(&ca, "%s/ca.crt", dir) < 0)
		return -ENOMEM;
	if (access(c->token_file, R_OK) < 0)
		return kc_error(ret_error, "in-cluster: service account token %s: %s",
				c->token_file, strerror(errno));
	/* Without ca.crt the system trust store is used, as client-go does. */
	if (access(ca, R_OK) >= 0)
		c->ca_file = TAKE_PTR(ca);
	r = kc_in_cluster_namespace(dir, &c->namespace);
	if (r < 0)
		return r;
	c->source = strdup("in-cluster");
	if (!c->source)
		return -ENOMEM;
	*ret = TAKE_PTR(c);
	return 0;
}

/* Every existing file of a $KUBECONFIG list, in order; missing ones are skipped as
 * client-go does, any other read or parse error stops. */
static int kc_read_list(struct kc_set *set, const char *list, char **ret_error)
{
	_cleanup_(freep) char *copy = strdup(list);
	char *save = NULL;
	int r;

	if (!copy)
		return -ENOMEM;
	for (char *f = strtok_r(copy, ":", &save); f; f = strtok_r(NULL, ":", &save)) {
		r = kc_set_read(set, f, ret_error);
		if (r < 0 && r != -ENOENT)
			return r;
	}
	return 0;
}

static int config_load(const char *context, struct kube_config **ret, char **ret_error)
{
	_cleanup_(kc_set_clear) struct kc_set set = { 0 };
	_cleanup_(freep) char *why = NULL, *path = NULL, *origins = NULL;
	const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");
	int r;

	if (!ret)
		return -EINVAL;
	if (!isempty(env)) {
		r = kc_read_list(&set, env, ret_error);
		if (r < 0)
			return r;
		if (set.n_origins > 0) {
			origins = kc_origins(&set);
			if (!origins)
				return -ENOMEM;
			return kc_resolve(&set, context, origins, true, ret, ret_error);
		}
		r = asprintf(&why, "none of the files in KUBECONFIG=%s exist", env);
	} else if (!isempty(home)) {
		if (asprintf(&path, "%s/.kube/config", home) < 0)
			return -ENOMEM;
		r = kc_set_read(&set, path, ret_error);
		if (r != -ENOENT)
			return r < 0 ? r : kc_resolve(&set, context, path, true, ret, ret_error);
		r = asprintf(&why, "KUBECONFIG is unset and %s does not exist", path);
	} else {
		r = asprintf(&why, "KUBECONFIG and HOME are unset");
	}
	if (r < 0) {
		why = NULL;
		return -ENOMEM;
	}
	return kc_in_cluster(context, why, ret, ret_error);
}

/* The message goes to the caller only on failure, so *ret_error need not be initialized. */
static int error_out(int r, char **err, char **ret_error)
{
	if (r < 0 && ret_error)
		*ret_error = TAKE_PTR(*err);
	return r;
}

int kube_config_parse(const char *yaml, size_t len, const char *origin, const char *context,
		      struct kube_config **ret, char **ret_error)
{
	_cleanup_(freep) char *err = NULL;

	return error_out(config_parse(yaml, len, origin, context, ret, &err), &err, ret_error);
}

int kube_config_load_file(const char *path, const char *context, struct kube_config **ret,
			  char **ret_error)
{
	_cleanup_(freep) char *err = NULL;

	return error_out(config_load_file(path, context, ret, &err), &err, ret_error);
}

int kube_config_load(const char *context, struct kube_config **ret, char **ret_error)
{
	_cleanup_(freep) char *err = NULL;

	return error_out(config_load(context, ret, &err), &err, ret_error);
}

void kube_config_free(struct kube_config *c)
{
	if (!c)
		return;
	free(c->server);
	free(c->ca_file);
	free(c->ca_data);
	free(c->cert_file);
	free(c->key_file);
	free(c->cert_data);
	free(c->key_data);
	free(c->token);
	free(c->token_file);
	free(c->namespace);
	free(c->source);
	free(c);
}

static int dup_field(const char *s, char **ret)
{
	*ret = s ? strdup(s) : NULL;
	return !s || *ret ? 0 : -ENOMEM;
}

int kube_config_copy(const struct kube_config *c, struct kube_config **ret)
{
	_cleanup_(kube_config_freep) struct kube_config *n = NULL;

	if (!c || !ret)
		return -EINVAL;
	n = calloc(1, sizeof *n);
	if (!n)
		return -ENOMEM;
	n->insecure = c->insecure;
	if (dup_field(c->server, &n->server) < 0 || dup_field(c->ca_file, &n->ca_file) < 0 ||
	    dup_field(c->ca_data, &n->ca_data) < 0 || dup_field(c->cert_file, &n->cert_file) < 0 ||
	    dup_field(c->key_file, &n->key_file) < 0 ||
	    dup_field(c->cert_data, &n->cert_data) < 0 ||
	    dup_field(c->key_data, &n->key_data) < 0 || dup_field(c->token, &n->token) < 0 ||
	    dup_field(c->token_file, &n->token_file) < 0 ||
	    dup_field(c->namespace, &n->namespace) < 0 || dup_field(c->source, &n->source) < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(n);
	return 0;
}
