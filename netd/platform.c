/* Which cloud this node runs on, and reading its metadata service (net-epoch-runtime.md
 * §1.3, §1.10, §1.11). Detection probes GKE and Volcengine at once on a private sd-event
 * loop (httpc's multi interface), 2 s each, so an off-cloud host answers in at most 2 s
 * instead of 4. The base URLs can be pointed at a local double with
 * COCOON_NET_GKE_METADATA_URL / COCOON_NET_VOLC_METADATA_URL. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cocoon/httpc.h"
#include "cocoon/log.h"
#include "netd.h"

#define PROBE_TIMEOUT_USEC  (2 * 1000000ULL)
#define GKE_METADATA_USEC   (5 * 1000000ULL)
#define VOLC_METADATA_USEC  (2 * 1000000ULL)
#define METADATA_BODY_MAX   (64 * 1024)
#define GKE_METADATA_HEADER "Metadata-Flavor: Google"

bool netd_platform_valid(const char *name)
{
	return streq_ptr(name, NETD_PLATFORM_GKE) || streq_ptr(name, NETD_PLATFORM_VOLC);
}

const char *netd_platform_default_nic(const char *platform)
{
	if (streq_ptr(platform, NETD_PLATFORM_GKE))
		return "ens4";
	if (streq_ptr(platform, NETD_PLATFORM_VOLC))
		return "eth0";
	return NULL;
}

static const char *metadata_base(const char *platform)
{
	bool gke = streq(platform, NETD_PLATFORM_GKE);
	const char *env = getenv(gke ? NETD_ENV_GKE_METADATA_URL : NETD_ENV_VOLC_METADATA_URL);

	if (!isempty(env))
		return env;
	return gke ? NETD_GKE_METADATA_URL : NETD_VOLC_METADATA_URL;
}

struct probe {
	const char *platform;
	char *url;
	bool done, ok;
	int *pending;
};

static void probe_done(struct httpc_request *req, struct httpc_response *resp, void *userdata)
{
	struct probe *p = userdata;

	p->done = true;
	p->ok = resp->error == 0 && resp->status == 200;
	log_debug("probe %s: %s", p->url,
		  resp->error ? resp->error_message
		  : p->ok     ? "200"
			      : "not 200");
	(*p->pending)--;
}

static int probe_start(struct httpc *h, struct probe *p, const char *path)
{
	static const char *const gke_headers[] = { GKE_METADATA_HEADER, NULL };
	struct httpc_params params = {
		.method = HTTPC_GET,
		.headers = streq(p->platform, NETD_PLATFORM_GKE) ? gke_headers : NULL,
		.connect_timeout_usec = PROBE_TIMEOUT_USEC,
		.timeout_usec = PROBE_TIMEOUT_USEC,
		.max_body = METADATA_BODY_MAX,
		.on_done = probe_done,
		.userdata = p,
	};
	int r;

	if (asprintf(&p->url, "%s%s", metadata_base(p->platform), path) < 0)
		return -ENOMEM;
	params.url = p->url;
	r = httpc_request_start(h, &params, NULL);
	if (r < 0) {
		/* An unusable URL (a bad override): this platform simply does not answer. */
		log_debug_errno(r, "probe %s: %m", p->url);
		p->done = true;
		return 0;
	}
	(*p->pending)++;
	return 0;
}

int netd_platform_detect(const char **ret, char **ret_error)
{
	_cleanup_(sd_event_unrefp) sd_event *e = NULL;
	_cleanup_(httpc_freep) struct httpc *h = NULL;
	int pending = 0, r;
	struct probe probes[] = {
		{ .platform = NETD_PLATFORM_GKE, .pending = &pending },
		{ .platform = NETD_PLATFORM_VOLC, .pending = &pending },
	};

	r = sd_event_new(&e);
	if (r >= 0)
		r = httpc_new(e, &h);
	if (r >= 0)
		r = probe_start(h, &probes[0], "/instance/zone");
	if (r >= 0)
		r = probe_start(h, &probes[1], "/instance-id");
	while (r >= 0 && pending > 0)
		r = sd_event_run(e, UINT64_MAX);
	free(probes[0].url);
	free(probes[1].url);
	if (r < 0)
		return r;
	if (probes[0].ok && probes[1].ok)
		return asprintf(ret_error,
				"platform auto-detection ambiguous: [gke volcengine] both "
				"responded; pass --platform to disambiguate") < 0
			   ? -ENOMEM
			   : -ENOTUNIQ;
	if (!probes[0].ok && !probes[1].ok)
		return asprintf(ret_error, "platform auto-detection failed: no metadata endpoint "
					   "responded; pass --platform gke|volcengine") < 0
			   ? -ENOMEM
			   : -ENXIO;
	*ret = probes[0].ok ? NETD_PLATFORM_GKE : NETD_PLATFORM_VOLC;
	return 0;
}

int netd_metadata_get(const char *platform, const char *path, char **ret, char **ret_error)
{
	static const char *const gke_headers[] = { GKE_METADATA_HEADER, NULL };
	bool gke = streq(platform, NETD_PLATFORM_GKE);
	_cleanup_(httpc_response_freep) struct httpc_response *resp = NULL;
	_cleanup_(freep) char *url = NULL;
	struct httpc_params params = {
		.method = HTTPC_GET,
		.headers = gke ? gke_headers : NULL,
		.connect_timeout_usec = gke ? GKE_METADATA_USEC : VOLC_METADATA_USEC,
		.timeout_usec = gke ? GKE_METADATA_USEC : VOLC_METADATA_USEC,
		.max_body = METADATA_BODY_MAX,
	};
	char *body;
	size_t len;
	int r;

	if (asprintf(&url, "%s%s", metadata_base(platform), path) < 0)
		return -ENOMEM;
	params.url = url;
	r = httpc_perform_sync(&params, &resp);
	if (r < 0)
		return asprintf(ret_error, "metadata %s: %s", url, strerror(-r)) < 0 ? -ENOMEM : r;
	if (resp->error < 0)
		return asprintf(ret_error, "metadata %s: %s", url, resp->error_message) < 0
			   ? -ENOMEM
			   : resp->error;
	if (resp->status != 200)
		return asprintf(ret_error, "metadata %s: HTTP %ld", url, resp->status) < 0 ? -ENOMEM
											   : -EIO;
	body = buf_steal(&resp->body, &len);
	if (!body)
		return -ENOMEM;
	while (len > 0 && strchr(" \t\r\n", body[len - 1]))
		body[--len] = '\0';
	if (len == 0) {
		free(body);
		return asprintf(ret_error, "metadata %s: empty answer", url) < 0 ? -ENOMEM
										 : -ENODATA;
	}
	*ret = body;
	return 0;
}

int netd_cloud_run_json(char *const *argv, char *const *env, json_t **ret, char **ret_error)
{
	_cleanup_(freep) char *out = NULL;
	json_error_t jerr;
	json_t *o;
	int r;

	r = netd_run(argv, env, &out, ret_error);
	if (r < 0)
		return r;
	o = json_loads(out, 0, &jerr);
	if (!o || !json_is_object(o)) {
		json_decref(o);
		return asprintf(ret_error, "%s %s %s: output is not a JSON object: %s", argv[0],
				argv[1] ? argv[1] : "", argv[1] && argv[2] ? argv[2] : "",
				o ? "another JSON type" : jerr.text) < 0
			   ? -ENOMEM
			   : -EBADMSG;
	}
	*ret = o;
	return 0;
}

const char *netd_json_string(json_t *o, ...)
{
	const char *key;
	va_list ap;

	va_start(ap, o);
	while (o && (key = va_arg(ap, const char *)))
		o = json_object_get(o, key);
	va_end(ap);
	return json_string_value(o);
}

const struct netd_cloud *netd_cloud_get(const char *platform)
{
	if (streq_ptr(platform, NETD_PLATFORM_GKE))
		return &netd_cloud_gke;
	if (streq_ptr(platform, NETD_PLATFORM_VOLC))
		return &netd_cloud_volc;
	return NULL;
}

void netd_cloud_ctx_done(const struct netd_cloud *cloud, struct netd_cloud_ctx *ctx)
{
	if (cloud && ctx->state)
		cloud->state_free(ctx->state);
	ctx->state = NULL;
}
