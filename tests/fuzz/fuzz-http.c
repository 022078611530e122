/* libFuzzer harness for the HTTP request path: arbitrary bytes are one connection's input,
 * run through the server's own parser, limits, routing, handlers, responses and upgrade
 * hand-off (http_server_process_buffer()), with tiny limits so the caps are reached often.
 * Routes exercise every request accessor, async handlers whose client vanishes, and an
 * echo stream after an upgrade. Must never crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cocoon/http.h"

static sd_event *event;
static struct http_server *server;
static struct http_request *held;

static int on_hello(struct http_request *req, void *u)
{
	return http_reply(req, 200, "text/plain", "hello", 5);
}

static int on_echo(struct http_request *req, void *u)
{
	size_t len;
	const char *body = http_request_body(req, &len);

	return http_reply(req, 200, http_request_get_header(req, "content-type", 0), body, len);
}

static int on_info(struct http_request *req, void *u)
{
	json_t *j = json_pack(
	    "{s:s, s:s, s:s, s:s*, s:s*, s:s*, s:s*, s:s}", "m", http_request_method(req), "p",
	    http_request_path(req), "q", http_request_query(req), "x",
	    http_request_get_query(req, "x", 0), "p1", http_request_get_query(req, "p", 1), "h0",
	    http_request_get_header(req, "x-proto", 0), "h1",
	    http_request_get_header(req, "x-proto", 1), "peer", http_request_peer(req));
	int r;

	(void)http_reply_add_header(req, "X-Info", http_request_path(req));
	r = j ? http_reply_json(req, 200, j) : -ENOMEM;
	json_decref(j);
	return r;
}

static int on_fail(struct http_request *req, void *u)
{
	return -EIO;
}

static void on_cancel(struct http_request *req, void *u)
{
}

static int on_async(struct http_request *req, void *u)
{
	/* One request at a time per connection: nothing else can be held yet. */
	held = http_request_ref(req);
	http_request_set_cancel(req, on_cancel, NULL);
	return 0;
}

static int echo_read(struct http_stream *st, const void *data, size_t len, void *u)
{
	if (len == 0) {
		http_stream_close(st);
		return 0;
	}
	/* A full queue is a normal outcome here, not a reason to abort. */
	(void)http_stream_write(st, data, len);
	return 0;
}

static void echo_close(struct http_stream *st, int error, void *u)
{
}

static const struct http_stream_ops echo_ops = {
	.on_read = echo_read,
	.on_close = echo_close,
};

static int on_upgrade(struct http_request *req, void *u)
{
	struct http_stream *st;

	(void)http_reply_add_header(req, "Upgrade", "echo");
	return http_request_upgrade(req, &echo_ops, NULL, &st);
}

static void setup(void)
{
	const struct http_server_config cfg = {
		.max_header_bytes = 512,
		.max_body_bytes = 256,
		.stream_queue_bytes = 128,
	};

	if (sd_event_new(&event) < 0 || http_server_new(event, &cfg, &server) < 0)
		abort();
	http_server_add_route(server, "GET", "/hello", 0, on_hello, NULL);
	http_server_add_route(server, "POST", "/echo", 0, on_echo, NULL);
	http_server_add_route(server, NULL, "/info/", HTTP_ROUTE_PREFIX, on_info, NULL);
	http_server_add_route(server, "GET", "/fail", 0, on_fail, NULL);
	http_server_add_route(server, NULL, "/async", 0, on_async, NULL);
	http_server_add_route(server, "GET", "/up", HTTP_ROUTE_UPGRADE, on_upgrade, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf out = BUF_INIT(64 * 1024);

	if (!server)
		setup();
	(void)http_server_process_buffer(server, data, size, &out);
	if (held) {
		/* The client is gone by now: a late answer must fail cleanly. */
		if (http_reply(held, 200, NULL, NULL, 0) != -ENOTCONN)
			abort();
		http_request_unref(held);
		held = NULL;
	}
	buf_free(&out);
	return 0;
}
