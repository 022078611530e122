/* bus: msg.h frames over nanomsg, on sd-event. See bus.h for the contract.
 *
 * Client and server use raw (AF_SP_RAW) REQ/REP sockets: the cooked ones allow a single
 * request in flight per socket, raw ones let a client keep many and a server answer them
 * later, in any order. Replies are matched by the frame's request id. On the wire this is
 * still standard SP REQ/REP (a 4-byte request id with the top bit set, a backtrace the REP
 * side hands back), so a plain nanomsg REQ socket can talk to a bus_server.
 *
 * Each role wraps a struct bus_core: the nanomsg socket, its NN_RCVFD/NN_SNDFD as sd-event
 * io sources, the capped queue of frames nanomsg refused with EAGAIN (no peer connected
 * yet, or its pipe full), and the stats. Every nn_ call is NN_DONTWAIT. nanomsg runs its own
 * worker threads; none of our code runs on them. */
#include <inttypes.h>
#include <limits.h>
#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>
#include <nanomsg/reqrep.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "cocoon/bus.h"
#include "cocoon/log.h"

/* A REP socket's backtrace: the pipe id plus one word per device hop. Direct connections
 * use 8 bytes; more than this is refused. */
#define BUS_SPHDR_MAX 32

struct bus_frame {
	struct bus_frame *next;
	uint32_t reqid; /* client: the call it carries, so a timeout can take it back */
	size_t sphdr_len;
	uint8_t sphdr[BUS_SPHDR_MAX];
	size_t len;
	char data[];
};

struct bus_core;
typedef void (*bus_frame_handler_t)(struct bus_core *c, const void *frame, size_t n,
				    const uint8_t *sphdr, size_t sphdr_len);

struct bus_core {
	sd_event *event;
	char *endpoint;
	int sock; /* nanomsg socket, -1 when none */
	sd_event_source *recv_source, *send_source;
	struct bus_frame *queue, **queue_tail;
	size_t n_queue, queue_max;
	struct bus_stats stats;
	bus_frame_handler_t on_frame;
	void (*destroy)(struct bus_core *c);
	/* A callback freeing its own object only marks it dead; the dispatcher that called it
	 * destroys it on the way out. */
	bool busy, dead;
};

/* ---- the core: socket, io sources, send queue ---- */

/* mkdir -p of the directory holding path (a socket file). */
static int mkdir_parents(const char *path)
{
	_cleanup_(freep) char *dir = strdup(path);
	char *end, *p;

	if (!dir)
		return -ENOMEM;
	end = strrchr(dir, '/');
	if (!end || end == dir)
		return 0;
	*end = 0;
	for (p = strchr(dir + 1, '/');; p = strchr(p + 1, '/')) {
		if (p)
			*p = 0;
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return -errno;
		if (!p)
			return 0;
		*p = '/';
	}
}

/* -EADDRINUSE when something listens on the Unix socket at path. nanomsg reports that too,
 * but leaks its endpoint when an ipc bind fails (nanomsg issue #932), so the common case,
 * a second instance of a daemon, is caught here first. A stale file from a crashed
 * process refuses the connection; nanomsg replaces it. */
static int ipc_check_unused(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_(closep) int fd = -EBADF;

	if (strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 || errno == EAGAIN)
		return -EADDRINUSE;
	return 0;
}

static void core_queue_pop(struct bus_core *c)
{
	struct bus_frame *f = c->queue;

	c->queue = f->next;
	if (!c->queue)
		c->queue_tail = &c->queue;
	c->n_queue--;
	free(f);
}

/* One frame to nanomsg. A raw socket's SP header travels as the SP_HDR control message. */
static int core_send_now(struct bus_core *c, const void *data, size_t len, const uint8_t *sphdr,
			 size_t sphdr_len)
{
	union {
		struct nn_cmsghdr align;
		char buf[NN_CMSG_SPACE(sizeof(size_t) + BUS_SPHDR_MAX)];
	} ctrl;
	struct nn_iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct nn_msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (sphdr_len > 0) {
		struct nn_cmsghdr *cm = &ctrl.align;

		memset(&ctrl, 0, sizeof ctrl);
		cm->cmsg_len = NN_CMSG_SPACE(sizeof(size_t) + sphdr_len);
		cm->cmsg_level = PROTO_SP;
		cm->cmsg_type = SP_HDR;
		memcpy(NN_CMSG_DATA(cm), &sphdr_len, sizeof sphdr_len);
		memcpy(NN_CMSG_DATA(cm) + sizeof(size_t), sphdr, sphdr_len);
		mh.msg_control = &ctrl;
		mh.msg_controllen = cm->cmsg_len;
	}
	if (nn_sendmsg(c->sock, &mh, NN_DONTWAIT) < 0)
		return -nn_errno();
	c->stats.sent++;
	return 0;
}

static int core_on_writable(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct bus_core *c = userdata;

	while (c->queue) {
		struct bus_frame *f = c->queue;
		int r = core_send_now(c, f->data, f->len, f->sphdr, f->sphdr_len);

		if (r == -EAGAIN)
			return 0;
		if (r < 0)
			log_debug_errno(r, "bus %s: sending a queued frame failed: %m, dropping it",
					c->endpoint);
		core_queue_pop(c);
	}
	return sd_event_source_set_enabled(c->send_source, SD_EVENT_OFF);
}

/* Send now, or queue when nanomsg cannot take it yet; frames leave in order. */
static int core_send(struct bus_core *c, const void *data, size_t len, const uint8_t *sphdr,
		     size_t sphdr_len, uint32_t reqid)
{
	struct bus_frame *f;
	int r;

	if (!c->queue) {
		r = core_send_now(c, data, len, sphdr, sphdr_len);
		if (r != -EAGAIN)
			return r;
	}
	if (c->n_queue >= c->queue_max) {
		c->stats.dropped_queue_full++;
		return -ENOBUFS;
	}
	f = malloc(sizeof *f + len);
	if (!f)
		return -ENOMEM;
	*f = (struct bus_frame){ .reqid = reqid, .sphdr_len = sphdr_len, .len = len };
	memcpy(f->sphdr, sphdr, sphdr_len);
	memcpy(f->data, data, len);
	*c->queue_tail = f;
	c->queue_tail = &f->next;
	c->n_queue++;
	r = sd_event_source_set_enabled(c->send_source, SD_EVENT_ON);
	return r < 0 ? r : 0;
}

/* Take back a queued request that timed out before it ever left. */
static void core_unqueue(struct bus_core *c, uint32_t reqid)
{
	for (struct bus_frame **p = &c->queue; *p; p = &(*p)->next) {
		struct bus_frame *f = *p;

		if (f->reqid != reqid)
			continue;
		*p = f->next;
		if (c->queue_tail == &f->next)
			c->queue_tail = p;
		c->n_queue--;
		free(f);
		return;
	}
}

static void core_enter(struct bus_core *c)
{
	c->busy = true;
}

static void core_leave(struct bus_core *c)
{
	c->busy = false;
	if (c->dead)
		c->destroy(c);
}

/* The role's free: destroy now, or after the running callback returns. */
static void core_free(struct bus_core *c)
{
	if (c->busy)
		c->dead = true;
	else
		c->destroy(c);
}

/* One frame per dispatch: the fd is level-triggered, so sd-event calls again while more
 * wait, and other sources get their turn in between. */
static int core_on_readable(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct bus_core *c = userdata;
	void *body = NULL, *control = NULL;
	struct nn_iovec iov = { .iov_base = &body, .iov_len = NN_MSG };
	struct nn_msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = &control,
		.msg_controllen = NN_MSG,
	};
	const uint8_t *sphdr = NULL;
	size_t sphdr_len = 0;
	int n;

	n = nn_recvmsg(c->sock, &mh, NN_DONTWAIT);
	if (n < 0) {
		if (nn_errno() != EAGAIN && nn_errno() != EINTR)
			log_debug("bus %s: receive failed: %s, ignoring", c->endpoint,
				  nn_strerror(nn_errno()));
		return 0;
	}
	c->stats.received++;
	for (struct nn_cmsghdr *cm = NN_CMSG_FIRSTHDR(&mh); cm; cm = NN_CMSG_NXTHDR(&mh, cm)) {
		size_t len;

		if (cm->cmsg_level != PROTO_SP || cm->cmsg_type != SP_HDR)
			continue;
		memcpy(&len, NN_CMSG_DATA(cm), sizeof len);
		if (len <= cm->cmsg_len - NN_CMSG_SPACE(sizeof(size_t))) {
			sphdr = NN_CMSG_DATA(cm) + sizeof(size_t);
			sphdr_len = len;
		}
		break;
	}
	core_enter(c);
	c->on_frame(c, body, (size_t)n, sphdr, sphdr_len);
	core_leave(c); /* c may be gone now */
	nn_freemsg(body);
	if (control)
		nn_freemsg(control);
	return 0;
}

static int core_add_fd(struct bus_core *c, int option, sd_event_source **ret_source,
		       sd_event_io_handler_t handler, int enabled)
{
	size_t sz;
	int fd, r;

	sz = sizeof fd;
	if (nn_getsockopt(c->sock, NN_SOL_SOCKET, option, &fd, &sz) < 0)
		return -nn_errno();
	r = sd_event_add_io(c->event, ret_source, fd, EPOLLIN, handler, c);
	if (r < 0)
		return r;
	return sd_event_source_set_enabled(*ret_source, enabled);
}

static void core_done(struct bus_core *c)
{
	c->recv_source = sd_event_source_disable_unref(c->recv_source);
	c->send_source = sd_event_source_disable_unref(c->send_source);
	while (c->queue)
		core_queue_pop(c);
	if (c->sock >= 0)
		nn_close(c->sock);
	c->sock = -1;
	c->event = sd_event_unref(c->event);
	free(c->endpoint);
	c->endpoint = NULL;
}

/* Open the socket and hook it to the loop. On failure the caller runs core_done(). */
static int core_open(struct bus_core *c, sd_event *e, const char *endpoint, int domain,
		     int protocol, bool bind, bool receives, bool sends)
{
	/* The SP header rides inside the nanomsg message and counts against the limit. */
	int maxsize = MSG_FRAME_MAX + BUS_SPHDR_MAX;
	int r;

	c->sock = -1;
	c->queue_tail = &c->queue;
	c->queue_max = BUS_QUEUE_MAX_DEFAULT;
	c->event = sd_event_ref(e);
	c->endpoint = strdup(endpoint);
	if (!c->endpoint)
		return -ENOMEM;
	c->sock = nn_socket(domain, protocol);
	if (c->sock < 0)
		return -nn_errno();
	if (receives &&
	    nn_setsockopt(c->sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, &maxsize, sizeof maxsize) < 0)
		return -nn_errno();
	if (bind && strncmp(endpoint, "ipc://", 6) == 0) {
		r = mkdir_parents(endpoint + 6);
		if (r < 0)
			return log_debug_errno(r, "bus %s: creating its directory failed: %m",
					       endpoint);
		r = ipc_check_unused(endpoint + 6);
		if (r < 0)
			return log_debug_errno(r, "bus %s: cannot bind: %m", endpoint);
	}
	if ((bind ? nn_bind(c->sock, endpoint) : nn_connect(c->sock, endpoint)) < 0)
		return log_debug_errno(nn_errno(), "bus %s: %s failed: %s", endpoint,
				       bind ? "bind" : "connect", nn_strerror(nn_errno()));
	if (receives) {
		r = core_add_fd(c, NN_RCVFD, &c->recv_source, core_on_readable, SD_EVENT_ON);
		if (r < 0)
			return r;
	}
	if (sends) {
		/* Enabled only while frames wait: the fd stays readable whenever sending is
		 * possible, so an always-on source would spin. */
		r = core_add_fd(c, NN_SNDFD, &c->send_source, core_on_writable, SD_EVENT_OFF);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- endpoints ---- */

int bus_endpoint(const char *daemon, char *buf, size_t n)
{
	char var[96] = "COCOON_";
	const char *v, *dir;
	size_t len = strlen("COCOON_");
	int k;

	if (isempty(daemon) || strlen(daemon) > 64)
		return -EINVAL;
	for (const char *p = daemon; *p; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			return -EINVAL;
		var[len++] = *p == '-' ? '_' : (char)(*p - ('a' <= *p && *p <= 'z' ? 32 : 0));
	}
	strcpy(var + len, "_BUS");
	v = getenv(var);
	if (!isempty(v)) {
		k = snprintf(buf, n, "%s", v);
	} else {
		dir = getenv("COCOON_RUN_DIR");
		k = snprintf(buf, n, "ipc://%s/%s.sock", isempty(dir) ? "/run/cocoon" : dir,
			     daemon);
	}
	if (k < 0 || (size_t)k >= n)
		return -ENAMETOOLONG;
	if (strncmp(buf, "ipc://", 6) == 0 &&
	    strlen(buf + 6) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

/* ---- server ---- */

struct bus_request {
	struct bus_request *next;
	uint64_t id;
	uint32_t reqid;
	uint64_t since; /* CLOCK_MONOTONIC */
	size_t sphdr_len;
	uint8_t sphdr[BUS_SPHDR_MAX];
};

struct bus_server {
	struct bus_core core; /* first: the core's callbacks cast back */
	bus_request_handler_t handler;
	void *userdata;
	struct bus_request *requests;
	size_t n_requests, pending_max;
	uint64_t pending_usec;
	uint64_t next_id;
};

static struct bus_request **server_find(struct bus_server *s, uint64_t id)
{
	struct bus_request **p = &s->requests;

	while (*p && (*p)->id != id)
		p = &(*p)->next;
	return p;
}

static void server_drop(struct bus_server *s, struct bus_request **p)
{
	struct bus_request *q = *p;

	*p = q->next;
	s->n_requests--;
	free(q);
}

/* ERROR straight back to a request that never reached the handler. */
static void server_refuse(struct bus_server *s, uint32_t reqid, const uint8_t *sphdr,
			  size_t sphdr_len, int error, const char *message)
{
	char text[MSG_TEXT_MAX + 1];
	struct msg_error e = { .code = error, .message = text };
	struct buf b = BUF_INIT(MSG_FRAME_MAX);
	int r;

	/* The decoder's text may quote the peer's bytes: keep it short and plain ASCII. */
	snprintf(text, sizeof text, "%s", message);
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	r = msg_encode(MSG_ERROR, &e, reqid, &b);
	if (r >= 0)
		r = core_send(&s->core, b.data, b.len, sphdr, sphdr_len, 0);
	if (r < 0)
		log_debug_errno(r, "bus %s: refusing request %" PRIu32 " failed: %m, ignoring",
				s->core.endpoint, reqid);
	buf_free(&b);
}

/* Room for one more pending request: forget those older than any client waits. */
static bool server_make_room(struct bus_server *s)
{
	uint64_t now = 0;

	if (s->n_requests < s->pending_max)
		return true;
	(void)sd_event_now(s->core.event, CLOCK_MONOTONIC, &now);
	for (struct bus_request **p = &s->requests; *p;) {
		if (now - (*p)->since >= s->pending_usec) {
			log_debug("bus %s: request %" PRIu32
				  " unanswered for too long, forgetting it",
				  s->core.endpoint, (*p)->reqid);
			server_drop(s, p);
		} else {
			p = &(*p)->next;
		}
	}
	return s->n_requests < s->pending_max;
}

static void server_on_frame(struct bus_core *c, const void *frame, size_t n, const uint8_t *sphdr,
			    size_t sphdr_len)
{
	struct bus_server *s = (struct bus_server *)c;
	_cleanup_(msg_freep) struct msg *m = NULL;
	_cleanup_(freep) char *error = NULL;
	struct msg_header h;
	struct bus_request *q;
	uint64_t id;
	int r;

	if (sphdr_len == 0 || sphdr_len > BUS_SPHDR_MAX) {
		c->stats.dropped_malformed++;
		log_debug("bus %s: request without a usable SP header, ignoring", c->endpoint);
		return;
	}
	r = msg_decode(frame, n, &m, &error);
	if (r < 0) {
		c->stats.dropped_malformed++;
		log_debug_errno(r, "bus %s: bad request: %s, ignoring", c->endpoint,
				error ? error : "out of memory");
		if (msg_header_parse(frame, n, &h) >= 0)
			server_refuse(s, h.reqid, sphdr, sphdr_len, r, error ? error : "bad frame");
		return;
	}
	if (!server_make_room(s)) {
		c->stats.dropped_queue_full++;
		server_refuse(s, m->reqid, sphdr, sphdr_len, -EBUSY,
			      "server busy: too many requests pending");
		return;
	}
	q = calloc(1, sizeof *q);
	if (!q) {
		server_refuse(s, m->reqid, sphdr, sphdr_len, -ENOMEM, "server out of memory");
		return;
	}
	id = q->id = ++s->next_id;
	q->reqid = m->reqid;
	(void)sd_event_now(c->event, CLOCK_MONOTONIC, &q->since);
	q->sphdr_len = sphdr_len;
	memcpy(q->sphdr, sphdr, sphdr_len);
	q->next = s->requests;
	s->requests = q;
	s->n_requests++;

	r = s->handler(s, id, m, s->userdata);
	if (r < 0 && !c->dead && *server_find(s, id)) {
		char text[MSG_TEXT_MAX + 1];

		snprintf(text, sizeof text, "%s: %s", msg_type_name(m->type), strerror(-r));
		(void)bus_server_reply_error(s, id, r, text);
	}
}

static void server_destroy(struct bus_core *c)
{
	struct bus_server *s = (struct bus_server *)c;

	while (s->requests)
		server_drop(s, &s->requests);
	core_done(c);
	free(s);
}

int bus_server_new(sd_event *e, const char *endpoint, bus_request_handler_t handler, void *userdata,
		   struct bus_server **ret)
{
	struct bus_server *s;
	int r;

	if (!e || !endpoint || !handler || !ret)
		return -EINVAL;
	s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->core.on_frame = server_on_frame;
	s->core.destroy = server_destroy;
	s->handler = handler;
	s->userdata = userdata;
	s->pending_max = BUS_PENDING_MAX_DEFAULT;
	s->pending_usec = BUS_SERVER_PENDING_USEC_DEFAULT;
	r = core_open(&s->core, e, endpoint, AF_SP_RAW, NN_REP, true, true, true);
	if (r < 0) {
		server_destroy(&s->core);
		return r;
	}
	*ret = s;
	return 0;
}

void bus_server_free(struct bus_server *s)
{
	if (s)
		core_free(&s->core);
}

int bus_server_reply(struct bus_server *s, uint64_t id, enum msg_type type, const void *body)
{
	struct buf b = BUF_INIT(MSG_FRAME_MAX);
	struct bus_request **p;
	int r;

	if (!s)
		return -EINVAL;
	p = server_find(s, id);
	if (!*p)
		return -ENOENT;
	r = msg_encode(type, body, (*p)->reqid, &b);
	if (r >= 0)
		r = core_send(&s->core, b.data, b.len, (*p)->sphdr, (*p)->sphdr_len, 0);
	buf_free(&b);
	if (r < 0)
		return r;
	server_drop(s, p);
	return 0;
}

int bus_server_reply_error(struct bus_server *s, uint64_t id, int error, const char *message)
{
	struct msg_error e = { .code = -ABS(error), .message = (char *)(message ? message : "") };

	return bus_server_reply(s, id, MSG_ERROR, &e);
}

void bus_server_set_limits(struct bus_server *s, size_t queue_max, size_t pending_max,
			   uint64_t pending_usec)
{
	if (queue_max)
		s->core.queue_max = queue_max;
	if (pending_max)
		s->pending_max = pending_max;
	if (pending_usec)
		s->pending_usec = pending_usec;
}

const struct bus_stats *bus_server_stats(const struct bus_server *s)
{
	return &s->core.stats;
}

/* ---- client ---- */

struct bus_call {
	struct bus_call *next;
	struct bus_client *client;
	uint32_t reqid;
	sd_event_source *timer;
	bus_reply_handler_t callback;
	void *userdata;
};

struct bus_client {
	struct bus_core core; /* first: the core's callbacks cast back */
	struct bus_call *calls;
	size_t n_calls, pending_max;
	uint32_t last_reqid;
};

static struct bus_call *client_take(struct bus_client *c, uint32_t reqid)
{
	for (struct bus_call **p = &c->calls; *p; p = &(*p)->next) {
		struct bus_call *call = *p;

		if (call->reqid != reqid)
			continue;
		*p = call->next;
		c->n_calls--;
		return call;
	}
	return NULL;
}

static void call_free(struct bus_call *call)
{
	sd_event_source_disable_unref(call->timer);
	free(call);
}

/* Run a taken call's callback; the caller returns right after (the client may be gone). */
static void call_finish(struct bus_call *call, int error, const struct msg *reply)
{
	struct bus_client *c = call->client;
	bus_reply_handler_t callback = call->callback;
	void *userdata = call->userdata;

	call_free(call);
	callback(c, error, reply, userdata);
}

static int client_on_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct bus_call *call = userdata;
	struct bus_client *c = call->client;

	client_take(c, call->reqid);
	core_unqueue(&c->core, call->reqid);
	core_enter(&c->core);
	call_finish(call, -ETIMEDOUT, NULL);
	core_leave(&c->core);
	return 0;
}

static void client_on_frame(struct bus_core *core, const void *frame, size_t n,
			    const uint8_t *sphdr, size_t sphdr_len)
{
	struct bus_client *c = (struct bus_client *)core;
	_cleanup_(msg_freep) struct msg *m = NULL;
	_cleanup_(freep) char *error = NULL;
	struct msg_header h;
	struct bus_call *call;
	int r;

	r = msg_decode(frame, n, &m, &error);
	if (r < 0) {
		core->stats.dropped_malformed++;
		/* A reply we can attribute fails its call now instead of at the timeout. */
		call = msg_header_parse(frame, n, &h) >= 0 ? client_take(c, h.reqid) : NULL;
		log_debug_errno(r, "bus %s: bad reply: %s%s", core->endpoint,
				error ? error : "out of memory",
				call ? ", failing its call" : ", ignoring");
		if (call)
			call_finish(call, r, NULL);
		return;
	}
	call = client_take(c, m->reqid);
	if (!call) {
		core->stats.dropped_unmatched++;
		log_debug("bus %s: %s reply to unknown request %" PRIu32 ", ignoring",
			  core->endpoint, msg_type_name(m->type), m->reqid);
		return;
	}
	call_finish(call, m->type == MSG_ERROR ? m->error.code : 0, m);
}

static void client_destroy(struct bus_core *core)
{
	struct bus_client *c = (struct bus_client *)core;

	while (c->calls) {
		struct bus_call *call = c->calls;

		c->calls = call->next;
		call_free(call);
	}
	core_done(core);
	free(c);
}

int bus_client_new(sd_event *e, const char *endpoint, struct bus_client **ret)
{
	struct bus_client *c;
	int r;

	if (!e || !endpoint || !ret)
		return -EINVAL;
	c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->core.on_frame = client_on_frame;
	c->core.destroy = client_destroy;
	c->pending_max = BUS_PENDING_MAX_DEFAULT;
	r = core_open(&c->core, e, endpoint, AF_SP_RAW, NN_REQ, false, true, true);
	if (r < 0) {
		client_destroy(&c->core);
		return r;
	}
	*ret = c;
	return 0;
}

void bus_client_free(struct bus_client *c)
{
	if (c)
		core_free(&c->core);
}

/* Request ids are 31 bits: the SP request id carries the same number with the top bit set.
 * Skips ids still pending after a wrap. */
static uint32_t client_next_reqid(struct bus_client *c)
{
	for (;;) {
		bool used = false;

		c->last_reqid = c->last_reqid >= INT32_MAX ? 1 : c->last_reqid + 1;
		for (struct bus_call *call = c->calls; call && !used; call = call->next)
			used = call->reqid == c->last_reqid;
		if (!used)
			return c->last_reqid;
	}
}

int bus_client_call(struct bus_client *c, enum msg_type type, const void *body,
		    uint64_t timeout_usec, bus_reply_handler_t callback, void *userdata)
{
	struct buf b = BUF_INIT(MSG_FRAME_MAX);
	struct bus_call *call;
	uint8_t sphdr[4];
	uint32_t reqid;
	int r;

	if (!c || !callback)
		return -EINVAL;
	if (c->n_calls >= c->pending_max) {
		c->core.stats.dropped_queue_full++;
		return -ENOBUFS;
	}
	reqid = client_next_reqid(c);
	r = msg_encode(type, body, reqid, &b);
	if (r < 0)
		goto out;
	call = calloc(1, sizeof *call);
	if (!call) {
		r = -ENOMEM;
		goto out;
	}
	*call = (struct bus_call){
		.client = c, .reqid = reqid, .callback = callback, .userdata = userdata
	};
	r = sd_event_add_time_relative(c->core.event, &call->timer, CLOCK_MONOTONIC,
				       timeout_usec ? timeout_usec : BUS_TIMEOUT_DEFAULT_USEC, 1000,
				       client_on_timeout, call);
	if (r < 0) {
		call_free(call);
		goto out;
	}
	sphdr[0] = 0x80 | (reqid >> 24);
	sphdr[1] = (reqid >> 16) & 0xff;
	sphdr[2] = (reqid >> 8) & 0xff;
	sphdr[3] = reqid & 0xff;
	r = core_send(&c->core, b.data, b.len, sphdr, sizeof sphdr, reqid);
	if (r < 0) {
		call_free(call);
		goto out;
	}
	call->next = c->calls;
	c->calls = call;
	c->n_calls++;
	r = (int)reqid;
out:
	buf_free(&b);
	return r;
}

void bus_client_set_limits(struct bus_client *c, size_t queue_max, size_t pending_max)
{
	if (queue_max)
		c->core.queue_max = queue_max;
	if (pending_max)
		c->pending_max = pending_max;
}

const struct bus_stats *bus_client_stats(const struct bus_client *c)
{
	return &c->core.stats;
}

/* ---- publisher ---- */

struct bus_pub {
	struct bus_core core; /* first: the core's callbacks cast back */
	uint64_t seq;
};

static void pub_destroy(struct bus_core *core)
{
	core_done(core);
	free(core);
}

int bus_pub_new(sd_event *e, const char *endpoint, struct bus_pub **ret)
{
	struct bus_pub *p;
	struct timespec ts;
	int r;

	if (!e || !endpoint || !ret)
		return -EINVAL;
	p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->core.destroy = pub_destroy;
	/* Continue above any earlier instance of this publisher (see bus.h). */
	clock_gettime(CLOCK_REALTIME, &ts);
	p->seq = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	r = core_open(&p->core, e, endpoint, AF_SP, NN_PUB, true, false, true);
	if (r < 0) {
		pub_destroy(&p->core);
		return r;
	}
	*ret = p;
	return 0;
}

void bus_pub_free(struct bus_pub *p)
{
	if (p)
		core_free(&p->core);
}

int bus_pub_publish(struct bus_pub *p, enum msg_type type, const void *body)
{
	struct buf b = BUF_INIT(MSG_FRAME_MAX);
	int r;

	if (!p)
		return -EINVAL;
	r = msg_encode_event(type, body, p->seq + 1, &b);
	if (r >= 0) {
		/* Used even if the send is refused: the loss must show as a gap. */
		p->seq++;
		r = core_send(&p->core, b.data, b.len, NULL, 0, 0);
	}
	buf_free(&b);
	return r;
}

uint64_t bus_pub_seq(const struct bus_pub *p)
{
	return p->seq;
}

void bus_pub_set_queue_max(struct bus_pub *p, size_t queue_max)
{
	if (queue_max)
		p->core.queue_max = queue_max;
}

const struct bus_stats *bus_pub_stats(const struct bus_pub *p)
{
	return &p->core.stats;
}

/* ---- subscriber ---- */

struct bus_sub {
	struct bus_core core; /* first: the core's callbacks cast back */
	bus_event_handler_t on_event;
	bus_gap_handler_t on_gap;
	void *userdata;
	bool have_seq;
	uint64_t seq;
};

static void sub_on_frame(struct bus_core *core, const void *frame, size_t n, const uint8_t *sphdr,
			 size_t sphdr_len)
{
	struct bus_sub *s = (struct bus_sub *)core;
	_cleanup_(msg_freep) struct msg *m = NULL;
	_cleanup_(freep) char *error = NULL;
	uint64_t seq, expected;
	int r;

	r = msg_decode(frame, n, &m, &error);
	if (r >= 0 && msg_get_seq(m, &seq) < 0) {
		r = -EBADMSG;
		free(error);
		error = strdup("event type without a sequence number");
	}
	if (r < 0) {
		core->stats.dropped_malformed++;
		log_debug_errno(r, "bus %s: bad event: %s, ignoring", core->endpoint,
				error ? error : "out of memory");
		return;
	}
	if (s->have_seq && seq <= s->seq && s->seq - seq < BUS_SEQ_STALE_WINDOW) {
		core->stats.dropped_stale++;
		return;
	}
	if (!s->have_seq || seq != s->seq + 1) {
		expected = s->have_seq ? s->seq + 1 : 0;
		s->have_seq = true;
		s->seq = seq;
		core->stats.gaps++;
		log_debug("bus %s: expected event %" PRIu64 ", got %" PRIu64, core->endpoint,
			  expected, seq);
		if (s->on_gap)
			s->on_gap(s, expected, seq, s->userdata);
		if (core->dead)
			return;
	} else {
		s->seq = seq;
	}
	s->on_event(s, m, s->userdata);
}

static void sub_destroy(struct bus_core *core)
{
	core_done(core);
	free(core);
}

int bus_sub_new(sd_event *e, const char *endpoint, bus_event_handler_t on_event,
		bus_gap_handler_t on_gap, void *userdata, struct bus_sub **ret)
{
	struct bus_sub *s;
	int r;

	if (!e || !endpoint || !on_event || !ret)
		return -EINVAL;
	s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	s->core.on_frame = sub_on_frame;
	s->core.destroy = sub_destroy;
	s->on_event = on_event;
	s->on_gap = on_gap;
	s->userdata = userdata;
	r = core_open(&s->core, e, endpoint, AF_SP, NN_SUB, false, true, false);
	if (r >= 0 && nn_setsockopt(s->core.sock, NN_SUB, NN_SUB_SUBSCRIBE, "", 0) < 0)
		r = -nn_errno();
	if (r < 0) {
		sub_destroy(&s->core);
		return r;
	}
	*ret = s;
	return 0;
}

void bus_sub_free(struct bus_sub *s)
{
	if (s)
		core_free(&s->core);
}

void bus_sub_set_seq(struct bus_sub *s, uint64_t seq)
{
	s->have_seq = true;
	s->seq = seq;
}

const struct bus_stats *bus_sub_stats(const struct bus_sub *s)
{
	return &s->core.stats;
}
