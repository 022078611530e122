/* The registry facts operatord needs (operator-webhook.md §2.16): HEAD and DELETE of
 * <repo>/<vm>:<tag>, on libepoch's async client. HEAD 200 is present, 404 absent, anything
 * else an error; DELETE 404 is success. Epoch's bearer-token flow and extra CA come with
 * libepoch.
 *
 * OCI_REGISTRY is "host[:port][/prefix]" (HTTPS, the repository of VM <name> is
 * "<prefix>/<name>"); EPOCH_URL is a base URL whose repositories are the VM names. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cocoon/log.h"
#include "../epoch-client/epoch.h"
#include "operatord.h"

struct registry {
	struct epoch_registry *epoch;
	char *prefix;  /* "" or "a/b" */
	char *display; /* "host[:port][/prefix]" */
};

struct registry_call {
	registry_done_fn done;
	void *userdata;
	bool delete;
};

static int registry_split(const struct operatord_config *cfg, char **ret_url, char **ret_prefix,
			  char **ret_display)
{
	_cleanup_(freep) char *url = NULL, *prefix = NULL, *display = NULL;
	const char *slash;

	if (cfg->epoch_url) {
		const char *host = strstr(cfg->epoch_url, "://");

		url = strdup(cfg->epoch_url);
		prefix = strdup("");
		display = strdup(host ? host + 3 : cfg->epoch_url);
		if (display && display[0] && display[strlen(display) - 1] == '/')
			display[strlen(display) - 1] = '\0';
	} else {
		slash = strchr(cfg->oci_registry, '/');
		if (slash) {
			if (asprintf(&url, "https://%.*s", (int)(slash - cfg->oci_registry),
				     cfg->oci_registry) < 0)
				url = NULL;
			prefix = strdup(slash + 1);
		} else {
			if (asprintf(&url, "https://%s", cfg->oci_registry) < 0)
				url = NULL;
			prefix = strdup("");
		}
		display = strdup(cfg->oci_registry);
		if (prefix && prefix[0] && prefix[strlen(prefix) - 1] == '/')
			prefix[strlen(prefix) - 1] = '\0';
	}
	if (!url || !prefix || !display)
		return -ENOMEM;
	*ret_url = TAKE_PTR(url);
	*ret_prefix = TAKE_PTR(prefix);
	*ret_display = TAKE_PTR(display);
	return 0;
}

int registry_new(sd_event *e, const struct operatord_config *cfg, struct registry **ret,
		 char **ret_error)
{
	_cleanup_(registry_freep) struct registry *r = NULL;
	_cleanup_(freep) char *url = NULL;
	struct epoch_registry_options o = {
		.token = cfg->epoch_token,
		.ca_file = cfg->epoch_ca_cert,
	};
	int k;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	k = registry_split(cfg, &url, &r->prefix, &r->display);
	if (k < 0)
		return k;
	o.url = url;
	k = epoch_registry_new(e, &o, &r->epoch, ret_error);
	if (k < 0)
		return k;
	*ret = TAKE_PTR(r);
	return 0;
}

struct registry *registry_free(struct registry *r)
{
	if (!r)
		return NULL;
	epoch_registry_free(r->epoch);
	free(r->prefix);
	free(r->display);
	free(r);
	return NULL;
}

const char *registry_display(const struct registry *r)
{
	return r->display;
}

static void registry_on_done(const struct epoch_reply *reply, void *userdata)
{
	struct registry_call *c = userdata;

	if (reply->error < 0)
		c->done(reply->error, false, reply->message ? reply->message : strerror(-reply->error),
			c->userdata);
	else
		c->done(0, reply->found, NULL, c->userdata);
	free(c);
}

static int registry_call(struct registry *r, const char *vm_name, const char *tag, bool delete,
			 registry_done_fn done, void *userdata)
{
	_cleanup_(freep) struct registry_call *c = calloc(1, sizeof(*c));
	_cleanup_(freep) char *repo = NULL;
	int k;

	if (!c)
		return -ENOMEM;
	if (asprintf(&repo, "%s%s%s", r->prefix, *r->prefix ? "/" : "", vm_name) < 0) {
		repo = NULL;
		return -ENOMEM;
	}
	*c = (struct registry_call){ .done = done, .userdata = userdata, .delete = delete };
	if (delete)
		k = epoch_delete_manifest(r->epoch, repo, tag, registry_on_done, c, NULL);
	else
		k = epoch_has_manifest(r->epoch, repo, tag, registry_on_done, c, NULL);
	if (k < 0)
		return k;
	TAKE_PTR(c);
	return 0;
}

int registry_has(struct registry *r, const char *vm_name, const char *tag, registry_done_fn done,
		 void *userdata)
{
	return registry_call(r, vm_name, tag, false, done, userdata);
}

int registry_delete(struct registry *r, const char *vm_name, const char *tag,
		    registry_done_fn done, void *userdata)
{
	return registry_call(r, vm_name, tag, true, done, userdata);
}
