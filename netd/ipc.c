/* netd on the bus (DESIGN.md §3, msg.h group 0x02xx):
 *
 *   bus_endpoint("netd")         REP: LEASE_LOOKUP → LEASE_INFO, LEASE_RELEASE → OK,
 *                                LEASE_LIST → LEASE_ALL, NET_STATUS → NET_STATUS_REPLY,
 *                                NET_RELOAD → OK; anything else → ERROR -EOPNOTSUPP
 *   bus_endpoint("netd-events")  PUB: LEASE_GRANTED (granted or renewed), LEASE_EXPIRED
 *
 * Events are hints (PUB/SUB drops under load): LEASE_ALL carries the publisher's sequence
 * number, so a subscriber that sees a gap asks for the list and continues from there.
 * Refusals name the request and the value: "LEASE_LOOKUP: 'xx' is not a MAC address". */
#include <stdio.h>
#include <string.h>

#include "cocoon/bus.h"
#include "cocoon/log.h"
#include "daemon.h"

struct netd_ipc {
	struct netd *netd;
	struct bus_server *server;
	struct bus_pub *pub;
	char endpoint[256], events_endpoint[256];
};

static int reply_errorf(struct bus_server *s, uint64_t id, int error, const char *fmt, ...)
    _printf_(4, 5);
static int reply_errorf(struct bus_server *s, uint64_t id, int error, const char *fmt, ...)
{
	char text[MSG_TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	return bus_server_reply_error(s, id, -ABS(error), text);
}

static int ipc_lookup(struct netd_ipc *i, uint64_t id, const struct msg_lease_lookup *q)
{
	char mac[NETD_MAC_SIZE];
	const struct netd_lease *l;
	struct msg_lease_info info;

	if (netd_mac_normalize(q->mac, mac) < 0)
		return reply_errorf(
		    i->server, id, EINVAL,
		    "LEASE_LOOKUP: '%.64s' is not a MAC address (aa:bb:cc:dd:ee:ff)", q->mac);
	l = netd_lease_set_find(netd_daemon_leases(i->netd), mac);
	if (!l)
		return reply_errorf(i->server, id, ENOENT, "LEASE_LOOKUP: no lease for %s", mac);
	info = (struct msg_lease_info){ .mac = (char *)l->mac,
					.ip = (char *)l->ip,
					.expires_usec = l->expires_usec };
	return bus_server_reply(i->server, id, MSG_LEASE_INFO, &info);
}

static int ipc_release(struct netd_ipc *i, uint64_t id, const struct msg_lease_release *q)
{
	int r = netd_daemon_release(i->netd, q->mac);

	if (r == -EINVAL)
		return reply_errorf(
		    i->server, id, r,
		    "LEASE_RELEASE: '%.64s' is not a MAC address (aa:bb:cc:dd:ee:ff)", q->mac);
	if (r == -ENOENT)
		return reply_errorf(i->server, id, r, "LEASE_RELEASE: no lease for %.64s", q->mac);
	if (r < 0)
		return reply_errorf(i->server, id, r, "LEASE_RELEASE: %s", strerror(-r));
	return bus_server_reply(i->server, id, MSG_OK, NULL);
}

static int ipc_list(struct netd_ipc *i, uint64_t id)
{
	const struct netd_lease_set *s = netd_daemon_leases(i->netd);
	_cleanup_(freep) struct msg_lease *v = NULL;
	struct msg_lease_all all = { .seq = bus_pub_seq(i->pub), .n_leases = s->n };
	int r;

	if (s->n > 0) {
		v = calloc(s->n, sizeof *v);
		if (!v)
			return -ENOMEM;
	}
	for (size_t k = 0; k < s->n; k++)
		v[k] = (struct msg_lease){ .mac = (char *)s->leases[k].mac,
					   .ip = (char *)s->leases[k].ip,
					   .expires_usec = s->leases[k].expires_usec };
	all.leases = v;
	r = bus_server_reply(i->server, id, MSG_LEASE_ALL, &all);
	if (r == -EMSGSIZE)
		return reply_errorf(i->server, id, r,
				    "LEASE_LIST: %zu leases do not fit in one %d-byte frame; use "
				    "LEASE_LOOKUP per MAC",
				    s->n, MSG_FRAME_MAX);
	return r;
}

static int ipc_status(struct netd_ipc *i, uint64_t id)
{
	struct netd_daemon_status st;
	struct msg_net_status_reply rep;

	netd_daemon_get_status(i->netd, &st);
	rep = (struct msg_net_status_reply){
		.platform = (char *)st.platform,
		.node = (char *)st.node,
		.subnet = (char *)st.subnet,
		.gateway = (char *)st.gateway,
		.bridge = (char *)st.bridge,
		.pool_size = st.pool_size,
		.active_leases = st.active_leases,
	};
	return bus_server_reply(i->server, id, MSG_NET_STATUS_REPLY, &rep);
}

static int ipc_reload(struct netd_ipc *i, uint64_t id)
{
	_cleanup_(freep) char *error = NULL;
	int r = netd_daemon_reload(i->netd, &error);

	if (r < 0)
		return reply_errorf(i->server, id, r, "NET_RELOAD: %s",
				    error ? error : strerror(-r));
	return bus_server_reply(i->server, id, MSG_OK, NULL);
}

static int ipc_on_request(struct bus_server *s, uint64_t id, const struct msg *m, void *userdata)
{
	struct netd_ipc *i = userdata;

	switch (m->type) {
	case MSG_LEASE_LOOKUP:
		return ipc_lookup(i, id, &m->lease_lookup);
	case MSG_LEASE_RELEASE:
		return ipc_release(i, id, &m->lease_release);
	case MSG_LEASE_LIST:
		return ipc_list(i, id);
	case MSG_NET_STATUS:
		return ipc_status(i, id);
	case MSG_NET_RELOAD:
		return ipc_reload(i, id);
	default:
		return reply_errorf(s, id, EOPNOTSUPP, "netd does not serve %s requests",
				    msg_type_name(m->type));
	}
}

int netd_ipc_new(sd_event *e, struct netd *n, struct netd_ipc **ret)
{
	_cleanup_(netd_ipc_freep) struct netd_ipc *i = NULL;
	int r;

	i = calloc(1, sizeof *i);
	if (!i)
		return log_oom_errno();
	i->netd = n;
	r = bus_endpoint(NETD_BUS_NAME, i->endpoint, sizeof i->endpoint);
	if (r >= 0)
		r = bus_endpoint(NETD_EVENTS_BUS_NAME, i->events_endpoint,
				 sizeof i->events_endpoint);
	if (r < 0)
		return log_error_errno(r, "invalid bus endpoint (COCOON_NETD_BUS, "
					  "COCOON_NETD_EVENTS_BUS, COCOON_RUN_DIR): %m");
	r = bus_server_new(e, i->endpoint, ipc_on_request, i, &i->server);
	if (r < 0)
		return log_error_errno(r, "cannot serve requests on %s: %m", i->endpoint);
	r = bus_pub_new(e, i->events_endpoint, &i->pub);
	if (r < 0)
		return log_error_errno(r, "cannot publish events on %s: %m", i->events_endpoint);
	*ret = TAKE_PTR(i);
	return 0;
}

void netd_ipc_free(struct netd_ipc *i)
{
	if (!i)
		return;
	bus_server_free(i->server);
	bus_pub_free(i->pub);
	free(i);
}

int netd_ipc_publish(struct netd_ipc *i, const struct netd_lease_change *c)
{
	const struct netd_lease *l = &c->lease;

	if (c->kind == NETD_LEASE_EXPIRED) {
		struct msg_lease_expired ev = { .mac = (char *)l->mac, .ip = (char *)l->ip };

		return bus_pub_publish(i->pub, MSG_LEASE_EXPIRED, &ev);
	}
	struct msg_lease_granted ev = { .mac = (char *)l->mac,
					.ip = (char *)l->ip,
					.expires_usec = l->expires_usec };

	return bus_pub_publish(i->pub, MSG_LEASE_GRANTED, &ev);
}

const char *netd_ipc_endpoint(const struct netd_ipc *i)
{
	return i->endpoint;
}

const char *netd_ipc_events_endpoint(const struct netd_ipc *i)
{
	return i->events_endpoint;
}
