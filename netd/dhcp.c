/* DHCP for cni0: dnsmasq (the legacy design this project keeps, net-epoch-runtime.md §1.14;
 * CONTRACT.md §5), either run by netd as a supervised child ("managed") or left to a host
 * unit such as systemd/dnsmasq-cni.service ("external").
 *
 * Managed: dnsmasq runs in the foreground with the config node setup rendered
 * (/etc/dnsmasq-cni.d/cni0.conf), logs to our stderr (the journal), writes no pid file and
 * keeps root as its user (netd's unit grants only the capabilities DHCP needs, so it could
 * not switch users anyway). If it dies it is restarted after a backoff that doubles from 1 s
 * to 30 s and resets once it has run for a minute. A reload restarts it only when the
 * config bytes changed, since a restart drops nothing (leases are in the file) but costs a
 * moment without DHCP.
 *
 * Both modes: a release from vkd is passed on to dnsmasq as a DHCPRELEASE from the client
 * (RFC 2131 §4.4.6), so the address returns to the pool at once instead of after 24 h. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "cocoon/child.h"
#include "cocoon/fsutil.h"
#include "cocoon/log.h"
#include "cocoon/loop.h"
#include "daemon.h"

#define BACKOFF_MIN_USEC   (1000000ULL)
#define BACKOFF_MAX_USEC   (30 * 1000000ULL)
#define BACKOFF_RESET_USEC (60 * 1000000ULL)
#define DNSMASQ_CONF_MAX   (1024 * 1024)
#define DHCP_SERVER_PORT   67
#define BOOTP_HEADER_SIZE  236
#define DHCP_MAGIC         0x63825363
#define DHCP_OPT_MSG_TYPE  53
#define DHCP_OPT_SERVER_ID 54
#define DHCP_OPT_END       255
#define DHCPRELEASE        7

struct netd_dhcp {
	sd_event *event;
	bool managed;
	char *bin, *conf, *bridge;
	struct child *child;
	sd_event_source *restart_timer;
	uint64_t backoff_usec, started_usec, restarts;
	char *conf_running; /* the config bytes the running dnsmasq was started with */
	bool stopping, restart_now;
	netd_dhcp_stopped_fn on_stopped;
	void *stopped_userdata;
};

static int dhcp_spawn(struct netd_dhcp *d);

static uint64_t now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int dhcp_on_restart_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct netd_dhcp *d = userdata;
	int r = dhcp_spawn(d);

	if (r < 0) {
		log_error_errno(r, "cannot restart dnsmasq (%s): %m, retrying in %llu s", d->bin,
				(unsigned long long)(d->backoff_usec / 1000000));
		(void)loop_timer_arm(d->restart_timer, d->backoff_usec);
		d->backoff_usec = MIN(d->backoff_usec * 2, BACKOFF_MAX_USEC);
	}
	return 0;
}

static void dhcp_schedule_restart(struct netd_dhcp *d)
{
	if (now_mono() - d->started_usec >= BACKOFF_RESET_USEC)
		d->backoff_usec = BACKOFF_MIN_USEC;
	log_warning("dnsmasq will be restarted in %llu s",
		    (unsigned long long)(d->backoff_usec / 1000000));
	(void)loop_timer_arm(d->restart_timer, d->backoff_usec);
	d->backoff_usec = MIN(d->backoff_usec * 2, BACKOFF_MAX_USEC);
}

static void dhcp_on_exit(struct child *c, struct child_result *res, void *userdata)
{
	struct netd_dhcp *d = userdata;
	int sig = res->signal, code = res->exit_code, r;

	/* res belongs to the child: read above, before it goes. */
	child_free(d->child);
	d->child = NULL;
	if (d->stopping) {
		if (d->on_stopped)
			d->on_stopped(d->stopped_userdata);
		return;
	}
	d->restarts++;
	if (d->restart_now) {
		d->restart_now = false;
		r = dhcp_spawn(d);
		if (r >= 0)
			return;
		log_error_errno(r, "cannot restart dnsmasq (%s): %m", d->bin);
	} else if (sig)
		log_error("dnsmasq was killed by signal %d", sig);
	else
		log_error("dnsmasq exited with status %d", code);
	dhcp_schedule_restart(d);
}

static int dhcp_spawn(struct netd_dhcp *d)
{
	_cleanup_(freep) char *conf_arg = NULL, *conf = NULL;
	const char *argv[] = {
		d->bin,       "--keep-in-foreground", NULL,
		"--pid-file", "--log-facility=-",     geteuid() == 0 ? "--user=root" : NULL,
		NULL
	};
	struct child_options o = {
		.stdout_mode = CHILD_OUTPUT_INHERIT,
		.stderr_mode = CHILD_OUTPUT_INHERIT,
		.on_exit = dhcp_on_exit,
		.userdata = d,
	};
	int r;

	r = fs_read_file(d->conf, DNSMASQ_CONF_MAX, &conf, NULL);
	if (r < 0)
		return log_error_errno(r, "cannot read the dnsmasq config %s: %m", d->conf);
	if (asprintf(&conf_arg, "--conf-file=%s", d->conf) < 0)
		return log_oom_errno();
	argv[2] = conf_arg;
	r = child_new(d->event, argv, &o, &d->child);
	if (r < 0)
		return log_error_errno(r, "cannot start %s: %m", d->bin);
	free(d->conf_running);
	d->conf_running = TAKE_PTR(conf);
	d->started_usec = now_mono();
	log_info("dnsmasq started (pid %d, config %s)", (int)child_pid(d->child), d->conf);
	return 0;
}

int netd_dhcp_new(sd_event *e, const struct netd_dhcp_options *o, struct netd_dhcp **ret)
{
	_cleanup_(netd_dhcp_freep) struct netd_dhcp *d = NULL;
	int r;

	d = calloc(1, sizeof *d);
	if (!d)
		return -ENOMEM;
	d->event = sd_event_ref(e);
	d->managed = o->managed;
	d->backoff_usec = BACKOFF_MIN_USEC;
	d->bin = strdup(o->bin);
	d->conf = strdup(o->conf);
	d->bridge = strdup(o->bridge);
	if (!d->bin || !d->conf || !d->bridge)
		return -ENOMEM;
	r = sd_event_add_time_relative(e, &d->restart_timer, CLOCK_MONOTONIC, BACKOFF_MIN_USEC, 0,
				       dhcp_on_restart_timer, d);
	if (r >= 0)
		r = sd_event_source_set_enabled(d->restart_timer, SD_EVENT_OFF);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(d);
	return 0;
}

void netd_dhcp_free(struct netd_dhcp *d)
{
	if (!d)
		return;
	child_free(d->child);
	sd_event_source_disable_unref(d->restart_timer);
	sd_event_unref(d->event);
	free(d->conf_running);
	free(d->bin);
	free(d->conf);
	free(d->bridge);
	free(d);
}

int netd_dhcp_start(struct netd_dhcp *d)
{
	if (!d->managed || d->child)
		return 0;
	return dhcp_spawn(d);
}

int netd_dhcp_reload(struct netd_dhcp *d)
{
	_cleanup_(freep) char *conf = NULL;
	int r;

	if (!d->managed || d->stopping)
		return 0;
	r = fs_read_file(d->conf, DNSMASQ_CONF_MAX, &conf, NULL);
	if (r < 0)
		return log_error_errno(r, "cannot read the dnsmasq config %s: %m", d->conf);
	if (!d->child)
		return 0; /* waiting to restart: it will read the new config then */
	if (streq_ptr(conf, d->conf_running))
		return 0;
	log_info("dnsmasq config %s changed, restarting dnsmasq", d->conf);
	d->restart_now = true;
	r = child_stop(d->child);
	return r < 0 ? r : 1;
}

void netd_dhcp_stop(struct netd_dhcp *d, netd_dhcp_stopped_fn cb, void *userdata)
{
	d->stopping = true;
	d->on_stopped = cb;
	d->stopped_userdata = userdata;
	(void)sd_event_source_set_enabled(d->restart_timer, SD_EVENT_OFF);
	if (!d->child || child_stop(d->child) < 0) {
		child_free(d->child);
		d->child = NULL;
		if (cb)
			cb(userdata);
	}
}

bool netd_dhcp_running(const struct netd_dhcp *d)
{
	return !d->managed || d->child;
}

bool netd_dhcp_managed(const struct netd_dhcp *d)
{
	return d->managed;
}

uint64_t netd_dhcp_restarts(const struct netd_dhcp *d)
{
	return d->restarts;
}

/* A DHCPRELEASE as the client would send it (RFC 2131 table 5): ciaddr and chaddr name
 * the lease, option 54 names the server (dnsmasq ignores releases meant for another). */
static size_t build_release(const struct netd_lease *l, uint32_t server, uint8_t *p, size_t n)
{
	uint32_t xid, be;
	unsigned mac[6];
	size_t o = BOOTP_HEADER_SIZE;

	memset(p, 0, n);
	if (getrandom(&xid, sizeof xid, GRND_NONBLOCK) != sizeof xid)
		xid = (uint32_t)now_mono();
	p[0] = 1; /* BOOTREQUEST */
	p[1] = 1; /* Ethernet */
	p[2] = 6;
	memcpy(p + 4, &xid, sizeof xid);
	be = htonl(l->addr);
	memcpy(p + 12, &be, sizeof be); /* ciaddr */
	sscanf(l->mac, "%x:%x:%x:%x:%x:%x", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]);
	for (int i = 0; i < 6; i++)
		p[28 + i] = (uint8_t)mac[i];
	be = htonl(DHCP_MAGIC);
	memcpy(p + o, &be, sizeof be);
	o += sizeof be;
	p[o++] = DHCP_OPT_MSG_TYPE;
	p[o++] = 1;
	p[o++] = DHCPRELEASE;
	p[o++] = DHCP_OPT_SERVER_ID;
	p[o++] = 4;
	be = htonl(server);
	memcpy(p + o, &be, sizeof be);
	o += sizeof be;
	p[o++] = DHCP_OPT_END;
	return o;
}

int netd_dhcp_release(struct netd_dhcp *d, const struct netd_lease *l, const char *server)
{
	_cleanup_(closep) int fd = -EBADF;
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(DHCP_SERVER_PORT) };
	uint8_t pkt[300];
	size_t len;

	if (isempty(server) || inet_pton(AF_INET, server, &to.sin_addr) != 1)
		return -EINVAL;
	len = build_release(l, ntohl(to.sin_addr.s_addr), pkt, sizeof pkt);
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* Sent to our own address on the bridge: bound to the bridge, the packet is delivered
	 * locally with the bridge as its incoming interface, which is what dnsmasq (listening
	 * on cni0 only) needs to match it to its DHCP range. */
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, d->bridge, (socklen_t)strlen(d->bridge)) <
	    0)
		return -errno;
	if (sendto(fd, pkt, len, 0, (struct sockaddr *)&to, sizeof to) < 0)
		return -errno;
	return 0;
}
