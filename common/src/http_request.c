/* HTTP requests: the http-parser callbacks that fill a request and enforce the limits
 * (header bytes → 431, body bytes → 413 by Content-Length or while reading chunks, HTTP
 * major version → 505, Expect → 100 Continue or 417, malformed → 400), the request object
 * and its accessors, routing (404, 405 with Allow), and the responses.
 *
 * http-parser is paused at the end of every message, so exactly one request is handled at a
 * time per connection and whatever follows it (a pipelined request, or the first bytes of
 * an upgraded protocol) stays buffered, untouched, until the answer is out. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cocoon/log.h"
#include "http-internal.h"

#define TEXT_PLAIN "text/plain; charset=utf-8"

enum head_part { PART_FIELD, PART_VALUE };

static void request_free(struct http_request *req)
{
	buf_free(&req->head);
	free(req->fields);
	free(req->path);
	free(req->query);
	for (size_t i = 0; i < req->n_params; i++) {
		free(req->params[i].name);
		free(req->params[i].value);
	}
	free(req->params);
	buf_free(&req->body);
	free(req->tls_subject);
	buf_free(&req->reply_headers);
	free(req);
}

struct http_request *http_request_ref(struct http_request *req)
{
	if (req)
		req->n_ref++;
	return req;
}

void http_request_unref(struct http_request *req)
{
	if (req && --req->n_ref == 0)
		request_free(req);
}

/* The connection is gone (or the server is being freed) before the answer. */
void http_request_disconnect(struct http_request *req)
{
	req->conn = NULL;
	if (!req->replied && !req->cancelled && req->cancel_cb) {
		req->cancelled = true;
		req->cancel_cb(req, req->cancel_userdata);
	}
	http_request_unref(req);
}

static struct http_request *request_new(struct http_conn *c)
{
	struct http_request *req = calloc(1, sizeof *req);

	if (!req)
		return NULL;
	req->n_ref = 1;
	req->head = BUF_INIT(c->server->cfg.max_header_bytes);
	req->body = BUF_INIT(c->server->cfg.max_body_bytes);
	req->reply_headers = BUF_INIT(0);
	memcpy(req->peer, c->peer, sizeof req->peer);
	req->tls = c->ssl != NULL;
	req->tls_verified = c->tls_verified;
	if (c->tls_subject && !(req->tls_subject = strdup(c->tls_subject))) {
		request_free(req);
		return NULL;
	}
	return req;
}

/* ---- parser callbacks ---- */

/* Refuse the request from inside a callback: remember the answer, stop the parser. */
static int refuse(struct http_conn *c, unsigned status, const char *fmt, ...) _printf_(3, 4);
static int refuse(struct http_conn *c, unsigned status, const char *fmt, ...)
{
	va_list ap;

	c->fail_status = status;
	va_start(ap, fmt);
	vsnprintf(c->fail_msg, sizeof c->fail_msg, fmt, ap);
	va_end(ap);
	return -1;
}

static int head_append(struct http_conn *c, const void *p, size_t n)
{
	int r = buf_append(&c->parsing->head, p, n);

	if (r == -E2BIG)
		return refuse(c, 431, "request line and headers exceed %zu bytes",
			      c->server->cfg.max_header_bytes);
	if (r < 0)
		return refuse(c, 500, "out of memory");
	return 0;
}

/* Trailing whitespace is not part of a field value (RFC 9110 §5.5). */
static void head_trim_value(struct http_request *req)
{
	size_t start = req->fields[req->n_fields - 1];

	while (req->head.len > start && (req->head.data[req->head.len - 1] == ' ' ||
					 req->head.data[req->head.len - 1] == '\t'))
		req->head.len--;
}

/* Close the current part (URL, name or value) with a NUL and start the next one. */
static int head_next_part(struct http_conn *c, enum head_part part)
{
	struct http_request *req = c->parsing;

	if (req->in_value)
		head_trim_value(req);
	if (head_append(c, "", 1) < 0)
		return -1;
	if (part == PART_FIELD && req->n_fields / 2 >= HTTP_MAX_HEADERS)
		return refuse(c, 431, "more than %d header fields", HTTP_MAX_HEADERS);
	if (req->n_fields == req->fields_alloc) {
		size_t n = req->fields_alloc ? req->fields_alloc * 2 : 32;
		size_t *f = reallocarray(req->fields, n, sizeof *f);

		if (!f)
			return refuse(c, 500, "out of memory");
		req->fields = f;
		req->fields_alloc = n;
	}
	req->fields[req->n_fields++] = req->head.len;
	req->in_value = part == PART_VALUE;
	return 0;
}

static int on_message_begin(http_parser *p)
{
	struct http_conn *c = p->data;

	c->parsing = request_new(c);
	if (!c->parsing)
		return refuse(c, 500, "out of memory");
	c->begun_at = http_conn_now(c);
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;

	c->parsing->url_len += len;
	return head_append(c, at, len);
}

/* Trailers (after a chunked body) are counted against the header cap and dropped. */
static int trailer_bytes(struct http_conn *c, size_t len)
{
	c->parsing->trailer_bytes += len;
	if (c->parsing->trailer_bytes > c->server->cfg.max_header_bytes)
		return refuse(c, 431, "trailer fields exceed %zu bytes",
			      c->server->cfg.max_header_bytes);
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;
	struct http_request *req = c->parsing;

	if (req->headers_done)
		return trailer_bytes(c, len);
	/* A name arrives in pieces when it straddles two reads: only a new one gets a slot. */
	if ((req->n_fields % 2 == 0 || req->in_value) && head_next_part(c, PART_FIELD) < 0)
		return -1;
	return head_append(c, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;
	struct http_request *req = c->parsing;

	if (req->headers_done)
		return trailer_bytes(c, len);
	if (!req->in_value && head_next_part(c, PART_VALUE) < 0)
		return -1;
	return head_append(c, at, len);
}

static int hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* application/x-www-form-urlencoded, as Go's url.ParseQuery reads it; %00 is refused
 * because the result is a C string. */
static int percent_decode(const char *s, size_t n, char **ret)
{
	char *d = malloc(n + 1), *o = d;

	if (!d)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int hi, lo;

		if (s[i] != '%') {
			*o++ = s[i] == '+' ? ' ' : s[i];
			continue;
		}
		if (n - i < 3 || (hi = hex_value(s[i + 1])) < 0 || (lo = hex_value(s[i + 2])) < 0 ||
		    (hi | lo) == 0) {
			free(d);
			return -EINVAL;
		}
		*o++ = (char)(hi << 4 | lo);
		i += 2;
	}
	*o = 0;
	*ret = d;
	return 0;
}

static int request_add_param(struct http_request *req, const char *s, size_t n)
{
	const char *eq = memchr(s, '=', n);
	struct http_query_param *params, param = {};

	if (percent_decode(s, eq ? (size_t)(eq - s) : n, &param.name) < 0 ||
	    percent_decode(eq ? eq + 1 : "", eq ? n - (size_t)(eq - s) - 1 : 0, &param.value) < 0) {
		free(param.name);
		return -EINVAL;
	}
	params = reallocarray(req->params, req->n_params + 1, sizeof *params);
	if (!params) {
		free(param.name);
		free(param.value);
		return -ENOMEM;
	}
	req->params = params;
	req->params[req->n_params++] = param;
	return 0;
}

/* Path and query from the request target; the query is decoded once, here. */
static int request_parse_target(struct http_conn *c, bool is_connect)
{
	struct http_request *req = c->parsing;
	const char *url = req->head.data;
	struct http_parser_url u;

	/* http_parser_url keeps 16-bit offsets. */
	if (req->url_len > UINT16_MAX)
		return refuse(c, 414, "request target longer than %u bytes", UINT16_MAX);
	http_parser_url_init(&u);
	if (http_parser_parse_url(url, req->url_len, is_connect, &u) != 0)
		return refuse(c, 400, "invalid request target");
	if (u.field_set & (1 << UF_PATH))
		req->path = strndup(url + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
	else
		req->path = strdup("");
	if (u.field_set & (1 << UF_QUERY))
		req->query = strndup(url + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len);
	else
		req->query = strdup("");
	if (!req->path || !req->query)
		return refuse(c, 500, "out of memory");
	for (const char *s = req->query; *s;) {
		size_t n = strcspn(s, "&");
		int r = n ? request_add_param(req, s, n) : 0;

		if (r == -ENOMEM)
			return refuse(c, 500, "out of memory");
		if (r < 0)
			return refuse(c, 400,
				      "invalid query string: bad percent-escape in \"%.*s\"",
				      (int)MIN(n, 64), s);
		s += n + (s[n] == '&');
	}
	return 0;
}

static bool body_expected(const http_parser *p)
{
	return (p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length > 0);
}

static int on_headers_complete(http_parser *p)
{
	struct http_conn *c = p->data;
	struct http_request *req = c->parsing;
	size_t max_body = c->server->cfg.max_body_bytes;
	const char *expect;

	if (req->in_value)
		head_trim_value(req);
	if (head_append(c, "", 1) < 0)
		return -1;
	req->headers_done = true;
	c->headers_at = http_conn_now(c);
	if (p->http_major != 1)
		return refuse(c, 505, "HTTP/%u.%u is not supported", p->http_major, p->http_minor);
	snprintf(req->method, sizeof req->method, "%s", http_method_str(p->method));
	if (request_parse_target(c, p->method == HTTP_CONNECT) < 0)
		return -1;
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > max_body)
		return refuse(c, 413, "request body of %llu bytes exceeds the limit of %zu bytes",
			      (unsigned long long)p->content_length, max_body);
	req->keep_alive = http_should_keep_alive(p);
	req->http10 = p->http_minor == 0;
	req->head_only = p->method == HTTP_HEAD;

	/* RFC 9110 §10.1.1: a client that sent "Expect: 100-continue" waits for this before
	 * sending the body; the body's size was acceptable, so tell it to go on. */
	expect = http_request_get_header(req, "Expect", 0);
	if (expect) {
		if (strcasecmp(expect, "100-continue") != 0)
			return refuse(c, 417, "unsupported expectation \"%.64s\"", expect);
		if (p->http_minor >= 1 && body_expected(p) &&
		    buf_append_str(&c->out, "HTTP/1.1 100 Continue\r\n\r\n") < 0)
			return refuse(c, 500, "out of memory");
	}
	return 0;
}

static int on_chunk_header(http_parser *p)
{
	struct http_conn *c = p->data;
	size_t max_body = c->server->cfg.max_body_bytes;

	/* Refuse an oversized chunk when it is announced, not after reading it. */
	if (p->content_length > max_body - MIN(max_body, c->parsing->body.len))
		return refuse(c, 413, "chunked request body exceeds the limit of %zu bytes",
			      max_body);
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = p->data;
	int r = buf_append(&c->parsing->body, at, len);

	if (r == -E2BIG)
		return refuse(c, 413, "request body exceeds the limit of %zu bytes",
			      c->server->cfg.max_body_bytes);
	if (r < 0)
		return refuse(c, 500, "out of memory");
	return 0;
}

static int on_message_complete(http_parser *p)
{
	/* One request at a time: stop here and hand this one to its handler. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings parser_settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
	.on_chunk_header = on_chunk_header,
};

void http_conn_parser_reset(struct http_conn *c)
{
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	c->fail_status = 0;
	c->fail_msg[0] = 0;
}

/* ---- responses ---- */

/* No CR, LF or other controls (but tab) in a field value: no response splitting. */
static bool header_value_valid(const char *v)
{
	for (; *v; v++)
		if ((unsigned char)*v < 0x20 && *v != '\t')
			return false;
	return true;
}

static bool token_char(char ch)
{
	return isalnum((unsigned char)ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 §5.6.7), formatted once a second. */
static const char *server_date(struct http_server *s)
{
	time_t t = time(NULL);
	struct tm tm;

	if (t != s->date_sec || !s->date[0]) {
		strftime(s->date, sizeof s->date, "%a, %d %b %Y %H:%M:%S GMT", gmtime_r(&t, &tm));
		s->date_sec = t;
	}
	return s->date;
}

/* v in decimal, in out (at least 21 bytes). */
static const char *format_uint(char *out, size_t size, uint64_t v)
{
	char *p = out + size;

	*--p = 0;
	do
		*--p = (char)('0' + v % 10);
	while ((v /= 10) > 0);
	return p;
}

/* Appends each string up to the NULL. */
static int append_strs(struct buf *b, ...) _sentinel_;
static int append_strs(struct buf *b, ...)
{
	const char *s;
	va_list ap;
	int r = 0;

	va_start(ap, b);
	while (r >= 0 && (s = va_arg(ap, const char *)))
		r = buf_append_str(b, s);
	va_end(ap);
	return r;
}

/* The status line and header fields, by plain appends: formatting them printf-style cost
 * more than everything else in a small reply. */
static int response_head(struct http_conn *c, const struct http_request *req, unsigned status,
			 const char *content_type, size_t len, bool keep_alive)
{
	const char *reason = http_status_str((enum http_status)status);
	char code[24], length[24];
	int r;

	if (reason[0] == '<')
		reason = "Unknown";
	r = append_strs(&c->out, "HTTP/1.1 ", format_uint(code, sizeof code, status), " ", reason,
			"\r\nDate: ", server_date(c->server), "\r\n", NULL);
	if (r >= 0 && content_type)
		r = append_strs(&c->out, "Content-Type: ", content_type, "\r\n", NULL);
	if (r >= 0 && status != 204 && status != 304)
		r = append_strs(&c->out,
				"Content-Length: ", format_uint(length, sizeof length, len), "\r\n",
				NULL);
	if (r >= 0 && !keep_alive)
		r = buf_append_str(&c->out, "Connection: close\r\n");
	else if (r >= 0 && req && req->http10)
		r = buf_append_str(&c->out, "Connection: keep-alive\r\n");
	if (r >= 0 && req && req->reply_headers.len)
		r = buf_append(&c->out, req->reply_headers.data, req->reply_headers.len);
	if (r >= 0)
		r = buf_append_str(&c->out, "\r\n");
	return r;
}

void http_conn_fail(struct http_conn *c, unsigned status, const char *fmt, ...)
{
	struct http_server *s = c->server;
	char msg[sizeof c->fail_msg + 2];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg - 1, fmt, ap);
	va_end(ap);
	log_debug("http: %s: %u %s", c->peer, status, msg);
	n = strlen(msg);
	msg[n++] = '\n';
	msg[n] = 0;
	http_request_unref(TAKE_PTR(c->parsing));
	if (status != 408 && status != 500)
		s->stats.bad_requests++;
	s->stats.responses[MIN(status / 100, 5u)]++;
	if (response_head(c, NULL, status, TEXT_PLAIN, n, false) >= 0)
		(void)buf_append(&c->out, msg, n);
	buf_reset(&c->in);
	c->state = CONN_DRAIN;
	c->write_at = http_conn_now(c);
}

/* The answer is queued: the connection moves on to the next request (or to closing). */
static void request_finish(struct http_conn *c, struct http_request *req, enum conn_state next)
{
	req->replied = true;
	req->conn = NULL;
	c->req = NULL;
	c->state = next;
	c->write_at = c->idle_since = http_conn_now(c);
	http_request_unref(req);
	http_conn_schedule(c);
}

int http_reply(struct http_request *req, unsigned status, const char *content_type,
	       const void *body, size_t len)
{
	struct http_conn *c;
	bool keep_alive;
	int r;

	if (!req || (!body && len))
		return -EINVAL;
	if (req->replied)
		return -EALREADY;
	if (status < 200 || status > 599 || (content_type && !header_value_valid(content_type)))
		return -EINVAL;
	c = req->conn;
	if (!c)
		return -ENOTCONN;
	keep_alive = req->keep_alive && !c->server->shutting_down;
	r = response_head(c, req, status, content_type, len, keep_alive);
	if (r >= 0 && !req->head_only && status != 204 && status != 304)
		r = buf_append(&c->out, body, len);
	if (r < 0) {
		/* Out of memory half-way: the stream is unusable, give up on it. */
		http_conn_close(c, r);
		return r;
	}
	c->server->stats.responses[status / 100]++;
	request_finish(c, req, keep_alive ? CONN_READ : CONN_DRAIN);
	return 0;
}

int http_reply_json(struct http_request *req, unsigned status, const json_t *json)
{
	_cleanup_(freep) char *s = NULL;

	if (!json)
		return -EINVAL;
	s = json_dumps(json, JSON_COMPACT);
	if (!s)
		return -ENOMEM;
	return http_reply(req, status, "application/json", s, strlen(s));
}

int http_reply_error(struct http_request *req, unsigned status, const char *message)
{
	_cleanup_(buf_free) struct buf b = BUF_INIT(0);
	int r;

	r = buf_printf(&b, "%s\n", message ? message : "");
	if (r < 0)
		return r;
	return http_reply(req, status, TEXT_PLAIN, b.data, b.len);
}

int http_reply_add_header(struct http_request *req, const char *name, const char *value)
{
	static const char *const reserved[] = { "Content-Length", "Transfer-Encoding",
						"Connection" };

	if (!req || isempty(name) || !value)
		return -EINVAL;
	if (req->replied)
		return -EALREADY;
	for (const char *p = name; *p; p++)
		if (!token_char(*p))
			return -EINVAL;
	if (!header_value_valid(value))
		return -EINVAL;
	for (size_t i = 0; i < ELEMENTSOF(reserved); i++)
		if (strcasecmp(name, reserved[i]) == 0)
			return -EPERM;
	return buf_printf(&req->reply_headers, "%s: %s\r\n", name, value);
}

/* ---- routing ---- */

static bool route_path_matches(const struct http_route *r, const char *path)
{
	if (r->flags & HTTP_ROUTE_PREFIX)
		return strncmp(path, r->path, strlen(r->path)) == 0;
	return streq(path, r->path);
}

static bool route_method_matches(const struct http_route *r, const char *method)
{
	return !r->method || streq(r->method, method) ||
	       (streq(method, "HEAD") && streq(r->method, "GET"));
}

static const struct http_route *route_find(const struct http_server *s, const char *method,
					   const char *path, bool *ret_path_known)
{
	const struct http_route *best = NULL;
	size_t best_score = 0;

	*ret_path_known = false;
	for (size_t i = 0; i < s->n_routes; i++) {
		const struct http_route *r = &s->routes[i];
		size_t score;

		if (!route_path_matches(r, path))
			continue;
		*ret_path_known = true;
		if (!route_method_matches(r, method))
			continue;
		/* Exact beats any prefix; a longer prefix beats a shorter one. */
		score = (r->flags & HTTP_ROUTE_PREFIX) ? strlen(r->path) + 1 : SIZE_MAX;
		if (!best || score > best_score) {
			best = r;
			best_score = score;
		}
	}
	return best;
}

static bool method_listed(const char *list, const char *method)
{
	size_t n = strlen(method);

	for (const char *p = list; p && *p;) {
		size_t len = strcspn(p, ",");

		if (len == n && strncmp(p, method, n) == 0)
			return true;
		p += len;
		p += strspn(p, ", ");
	}
	return false;
}

/* "GET, HEAD, POST": the methods some route for this path accepts (RFC 9110 §15.5.6). */
static int route_allow(const struct http_server *s, const char *path, struct buf *allow)
{
	int r = 0;

	for (size_t i = 0; i < s->n_routes && r >= 0; i++) {
		const struct http_route *rt = &s->routes[i];

		if (!rt->method || !route_path_matches(rt, path) ||
		    method_listed(allow->data, rt->method))
			continue;
		r = buf_printf(allow, "%s%s", allow->len ? ", " : "", rt->method);
		if (r >= 0 && streq(rt->method, "GET") && !method_listed(allow->data, "HEAD"))
			r = buf_append_str(allow, ", HEAD");
	}
	return r;
}

static void request_not_routed(struct http_server *s, struct http_request *req, bool path_known)
{
	_cleanup_(buf_free) struct buf allow = BUF_INIT(0);
	char msg[128];

	if (!path_known) {
		snprintf(msg, sizeof msg, "not found: %.100s", req->path);
		(void)http_reply_error(req, 404, msg);
		return;
	}
	if (route_allow(s, req->path, &allow) >= 0 && allow.len)
		(void)http_reply_add_header(req, "Allow", allow.data);
	snprintf(msg, sizeof msg, "method %s is not allowed for %.80s", req->method, req->path);
	(void)http_reply_error(req, 405, msg);
}

static void request_dispatch(struct http_conn *c)
{
	struct http_server *s = c->server;
	struct http_request *req = TAKE_PTR(c->parsing);
	const struct http_route *route;
	bool path_known;
	int r;

	http_conn_parser_reset(c);
	c->req = req; /* takes the parsing reference */
	req->conn = c;
	c->state = CONN_HANDLE;
	c->n_requests++;
	s->stats.requests++;
	route = route_find(s, req->method, req->path, &path_known);
	if (!route) {
		request_not_routed(s, req, path_known);
		return;
	}
	req->route_flags = route->flags;
	http_request_ref(req);
	r = route->handler(req, route->userdata);
	if (!req->replied && req->conn) {
		/* Two references: the connection's and ours. Nobody else will ever reply. */
		if (r < 0)
			(void)http_reply_error(req, 500, "internal error");
		else if (req->n_ref <= 2)
			(void)http_reply_error(req, 500,
					       "internal error: the handler did not reply");
		if (r < 0)
			log_debug_errno(r, "http: %s %s: handler failed: %m", req->method,
					req->path);
	}
	http_request_unref(req);
}

int http_conn_parse(struct http_conn *c)
{
	size_t n = http_parser_execute(&c->parser, &parser_settings, c->in.data, c->in.len);
	enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);

	if (e == HPE_PAUSED) {
		buf_consume(&c->in, n);
		request_dispatch(c);
		return 1;
	}
	if (c->fail_status) {
		http_conn_fail(c, c->fail_status, "%s", c->fail_msg);
		return 1;
	}
	if (e == HPE_HEADER_OVERFLOW) {
		http_conn_fail(c, 431, "request line and headers too large");
		return 1;
	}
	if (e != HPE_OK || n != c->in.len) {
		http_conn_fail(c, 400, "malformed request: %s (%s)", http_errno_description(e),
			       http_errno_name(e));
		return 1;
	}
	buf_consume(&c->in, n);
	return n > 0;
}

/* ---- route table and request accessors ---- */

int http_server_add_route(struct http_server *s, const char *method, const char *path,
			  unsigned flags, http_handler_t handler, void *userdata)
{
	struct http_route *routes, r = { .flags = flags, .handler = handler, .userdata = userdata };

	if (!s || !path || path[0] != '/' || !handler ||
	    (flags & ~(unsigned)(HTTP_ROUTE_PREFIX | HTTP_ROUTE_UPGRADE)))
		return -EINVAL;
	r.path = strdup(path);
	r.method = method ? strdup(method) : NULL;
	routes = reallocarray(s->routes, s->n_routes + 1, sizeof *routes);
	if (!r.path || (method && !r.method) || !routes) {
		free(r.path);
		free(r.method);
		if (routes)
			s->routes = routes;
		return -ENOMEM;
	}
	s->routes = routes;
	s->routes[s->n_routes++] = r;
	return 0;
}

const char *http_request_method(const struct http_request *req)
{
	return req->method;
}

const char *http_request_path(const struct http_request *req)
{
	return req->path ? req->path : "";
}

const char *http_request_query(const struct http_request *req)
{
	return req->query ? req->query : "";
}

const char *http_request_get_query(const struct http_request *req, const char *name, unsigned idx)
{
	for (size_t i = 0; i < req->n_params; i++)
		if (streq(req->params[i].name, name) && idx-- == 0)
			return req->params[i].value;
	return NULL;
}

const char *http_request_get_header(const struct http_request *req, const char *name, unsigned idx)
{
	for (size_t i = 0; i + 1 < req->n_fields; i += 2)
		if (strcasecmp(req->head.data + req->fields[i], name) == 0 && idx-- == 0)
			return req->head.data + req->fields[i + 1];
	return NULL;
}

const char *http_request_body(const struct http_request *req, size_t *ret_len)
{
	if (ret_len)
		*ret_len = req->body.len;
	return req->body.data ? req->body.data : "";
}

const char *http_request_peer(const struct http_request *req)
{
	return req->peer;
}

bool http_request_is_tls(const struct http_request *req)
{
	return req->tls;
}

const char *http_request_tls_subject(const struct http_request *req)
{
	return req->tls_subject;
}

bool http_request_tls_verified(const struct http_request *req)
{
	return req->tls_verified;
}

void http_request_set_cancel(struct http_request *req,
			     void (*cb)(struct http_request *req, void *userdata), void *userdata)
{
	req->cancel_cb = cb;
	req->cancel_userdata = userdata;
}
