/* libepoch's HTTP engine against a scripted registry forked by the test: the Docker token
 * flow (challenge, Basic credentials to a same-origin realm, the token cached and reused),
 * Link pagination of tag lists, the fallback from a refused monolithic PUT to an upload
 * session whose Location is another origin (no Authorization sent there), a whole-blob
 * request refused with 413 and sent again in chunks, streamed uploads (paused and resumed;
 * -ESPIPE when a refusal needs bytes the stream gave), blobs that are corrupt or too long,
 * DELETE 404 as success, a blob HEAD redirected to storage, a storage 403 not blamed on
 * EPOCH_TOKEN, a plain-text error quoted without its line end, a config blob above 1 MiB, a
 * stalled pull whose output never ends at an entry boundary, and cancellation without
 * callbacks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cocoon/buf.h"
#include "../../epoch-client/epoch.h"

/* sha256("hello") */
#define HELLO "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
#define MANIFEST                                                                                   \
	"{\"schemaVersion\":2,\"config\":{\"mediaType\":\"x\",\"digest\":\"" HELLO "\",\"size\":"  \
										   "5}}"

/* sha256 of BIG_CONFIG_SIZE bytes 'a': a config blob above 1 MiB */
#define BIG_CONFIG      "sha256:5256ec18f11624025905d057d6befb03d77b243511ac5f77ed5e0221ce6d84b5"
#define BIG_CONFIG_SIZE (2U * 1024 * 1024)

/* "snap": a snapshot of a.txt ("one") and b.txt ("two"), whose second blob never comes */
#define SNAP_CONFIG     "{\"schemaVersion\":\"v1\",\"snapshotId\":\"S\",\"createdAt\":\"t\"}"
#define SNAP_CONFIG_SHA "sha256:bf90bb1c1393da27ad64a820eb91b01193f53e0c539928d18d0cb451f78ce163"
#define ONE_SHA         "sha256:7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed"
#define TWO_SHA         "sha256:3fc4ccfe745870e2c0d99f71f30ff0656c8dedd41cc1d7d3d376b0dbe685e2f3"
#define SNAP_LAYER(d, t)                                                                           \
	"{\"mediaType\":\"application/octet-stream\",\"digest\":\"" d "\",\"size\":3,"             \
	"\"annotations\":{\"org.opencontainers.image.title\":\"" t "\"}}"
#define SNAP_MANIFEST                                                                              \
	"{\"schemaVersion\":2,\"mediaType\":\"" EPOCH_MT_OCI_MANIFEST                              \
	"\",\"artifactType\":\"" EPOCH_AT_SNAPSHOT                                                 \
	"\",\"config\":{\"mediaType\":\"" EPOCH_MT_SNAPSHOT_CONFIG                                 \
	"\",\"digest\":\"" SNAP_CONFIG_SHA "\",\"size\":55},\"layers\":[" SNAP_LAYER(              \
	    ONE_SHA, "a.txt") "," SNAP_LAYER(TWO_SHA, "b.txt") "]}"

static int port;
static pid_t server;
static char logpath[] = "/tmp/test-epoch-registry-XXXXXX";

/* ---- the scripted registry (forked child) ---- */

struct req {
	char method[16], path[1024], auth[256];
	size_t body;
};

static int read_request(int fd, struct req *r)
{
	char buf[16384];
	size_t n = 0, clen = 0;
	char *end, *h;

	while (!(end = memmem(buf, n, "\r\n\r\n", 4))) {
		ssize_t k = read(fd, buf + n, sizeof buf - n - 1);

		if (k <= 0)
			return -1;
		n += (size_t)k;
	}
	buf[n] = '\0';
	*r = (struct req){};
	sscanf(buf, "%15s %1023s", r->method, r->path);
	if ((h = strcasestr(buf, "\r\nAuthorization: ")))
		sscanf(h + 17, "%255[^\r]", r->auth);
	if ((h = strcasestr(buf, "\r\nContent-Length: ")))
		clen = strtoul(h + 18, NULL, 10);
	if (strcasestr(buf, "\r\nExpect: 100-continue"))
		(void)!write(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
	r->body = n - (size_t)(end + 4 - buf);
	while (r->body < clen) {
		ssize_t k = read(fd, buf, sizeof buf);

		if (k <= 0)
			return -1;
		r->body += (size_t)k;
	}
	return 0;
}

_printf_(3, 4) static void respond(int fd, const char *body, const char *fmt, ...)
{
	char head[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(head, sizeof head, fmt, ap);
	va_end(ap);
	n += snprintf(head + n, sizeof head - n, "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		      strlen(body));
	(void)!write(fd, head, (size_t)n);
	(void)!write(fd, body, strlen(body));
}

static void respond_big(int fd, char c, size_t size)
{
	char *body = malloc(size + 1);

	if (!body)
		return;
	memset(body, c, size);
	body[size] = '\0';
	respond(fd, body, "HTTP/1.1 200 OK\r\n");
	free(body);
}

/* The answer to a HEAD: the size of a body that is not sent. */
static void head_ok(int fd, size_t size)
{
	char head[128];
	int n =
	    snprintf(head, sizeof head,
		     "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", size);

	(void)!write(fd, head, (size_t)n);
}

static void route(int fd, const struct req *r)
{
	static unsigned loop_pages;
	char realm[128];

	snprintf(realm, sizeof realm, "http://127.0.0.1:%d/token", port);
	if (strcmp(r->path, "/v2/r/tags/list?n=1000") == 0)
		respond(
		    fd, "{\"name\":\"r\",\"tags\":[\"b\",\"a\"]}",
		    "HTTP/1.1 200 OK\r\nLink: </v2/r/tags/list?last=b&n=1000>; rel=\"next\"\r\n");
	else if (strcmp(r->path, "/v2/r/tags/list?last=b&n=1000") == 0)
		respond(fd, "{\"name\":\"r\",\"tags\":[\"c\"]}", "HTTP/1.1 200 OK\r\n");
	/* a broken registry: an empty page that links to itself (five times, then the list
	 * ends, so a client without the guard finishes with no tags instead of hanging) */
	else if (strncmp(r->path, "/v2/loop/tags/list?", 19) == 0 && loop_pages++ < 5)
		respond(fd, "{\"name\":\"loop\",\"tags\":[]}",
			"HTTP/1.1 200 OK\r\nLink: </v2/loop/tags/list?last=&n=1000>; rel=\"next\"\r\n");
	else if (strncmp(r->path, "/v2/loop/tags/list?", 19) == 0)
		respond(fd, "{\"name\":\"loop\",\"tags\":[]}", "HTTP/1.1 200 OK\r\n");
	else if (strcmp(r->path, "/v2/auth/manifests/x") == 0 && strcmp(r->auth, "Bearer issued"))
		respond(fd, "{\"errors\":[{\"code\":\"UNAUTHORIZED\",\"message\":\"no\"}]}",
			"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"%s\","
			"service=\"svc\"\r\n",
			realm);
	else if (strcmp(r->path, "/v2/auth/manifests/x") == 0)
		respond(fd, MANIFEST, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n",
			EPOCH_MT_OCI_MANIFEST);
	else if (strncmp(r->path, "/token?", 7) == 0 &&
		 /* base64("_token:static") */
		 strcmp(r->auth, "Basic X3Rva2VuOnN0YXRpYw==") == 0)
		respond(fd, "{\"token\":\"issued\",\"expires_in\":300}", "HTTP/1.1 200 OK\r\n");
	else if (strcmp(r->method, "PUT") == 0 && strcmp(r->path, "/v2/up/blobs/" HELLO) == 0)
		respond(fd, "Method not allowed\n", "HTTP/1.1 405 Method Not Allowed\r\n");
	else if (strcmp(r->path, "/v2/up/blobs/uploads/") == 0)
		respond(fd, "",
			"HTTP/1.1 202 Accepted\r\nLocation: http://localhost:%d/up/1?s=1\r\n",
			port);
	else if (strncmp(r->path, "/up/1?s=1&digest=sha256%3A", 26) == 0 && r->body == 5)
		respond(fd, "", "HTTP/1.1 201 Created\r\nDocker-Content-Digest: %s\r\n", HELLO);
	/* "big": a session-only registry behind a proxy that takes at most 64 MiB a request */
	else if (strcmp(r->method, "PUT") == 0 && strcmp(r->path, "/v2/big/blobs/" HELLO) == 0)
		respond(fd, "Method not allowed\n", "HTTP/1.1 405 Method Not Allowed\r\n");
	else if (r->body > EPOCH_CHUNK_SIZE_DEFAULT)
		respond(fd, "<html>413 Request Entity Too Large</html>",
			"HTTP/1.1 413 Request Entity Too Large\r\n");
	else if (strcmp(r->path, "/v2/big/blobs/uploads/") == 0)
		respond(fd, "", "HTTP/1.1 202 Accepted\r\nLocation: /big/1?s=1\r\n");
	else if (strcmp(r->method, "PATCH") == 0 && strcmp(r->path, "/big/1?s=1") == 0)
		respond(fd, "", "HTTP/1.1 202 Accepted\r\nLocation: /big/1?s=2\r\n");
	else if (strncmp(r->path, "/big/1?s=2&digest=sha256%3A", 27) == 0)
		respond(fd, "", "HTTP/1.1 201 Created\r\n");
	/* "moved": blobs live in storage elsewhere, HEADs redirected like GETs (S3) */
	else if (strcmp(r->path, "/v2/moved/blobs/" HELLO) == 0)
		respond(fd, "",
			"HTTP/1.1 307 Temporary Redirect\r\nLocation: "
			"http://localhost:%d/storage/hello\r\n",
			port);
	else if (strcmp(r->method, "HEAD") == 0 && strcmp(r->path, "/storage/hello") == 0)
		head_ok(fd, 5);
	/* "expired": the storage a blob GET is sent to refuses the presigned URL */
	else if (strcmp(r->path, "/v2/expired/blobs/" HELLO) == 0)
		respond(fd, "",
			"HTTP/1.1 307 Temporary Redirect\r\nLocation: "
			"http://localhost:%d/storage/hello?X-Amz-Signature=s3cr3t\r\n",
			port);
	else if (strncmp(r->path, "/storage/hello?", 15) == 0)
		respond(fd,
			"<Error><Code>AccessDenied</Code><Message>Request has expired</Message>"
			"</Error>",
			"HTTP/1.1 403 Forbidden\r\n");
	else if (strcmp(r->path, "/v2/cfg/blobs/" BIG_CONFIG) == 0)
		respond_big(fd, 'a', BIG_CONFIG_SIZE);
	else if (strcmp(r->path, "/v2/b/blobs/" HELLO) == 0)
		respond(fd, "hellp", "HTTP/1.1 200 OK\r\n");
	else if (strcmp(r->path, "/v2/long/blobs/" HELLO) == 0)
		respond(fd, "hello, world", "HTTP/1.1 200 OK\r\n");
	else if (strcmp(r->path, "/v2/plain/manifests/x") == 0)
		respond(fd, "upstream timed out\r\n", "HTTP/1.1 504 Gateway Timeout\r\n");
	else if (strcmp(r->path, "/v2/snap/manifests/latest") == 0)
		respond(fd, SNAP_MANIFEST, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n",
			EPOCH_MT_OCI_MANIFEST);
	else if (strcmp(r->path, "/v2/snap/blobs/" SNAP_CONFIG_SHA) == 0)
		respond(fd, SNAP_CONFIG, "HTTP/1.1 200 OK\r\n");
	else if (strcmp(r->path, "/v2/snap/blobs/" ONE_SHA) == 0)
		respond(fd, "one", "HTTP/1.1 200 OK\r\n");
	else if (strcmp(r->path, "/v2/slow/manifests/x") == 0 ||
		 strcmp(r->path, "/v2/snap/blobs/" TWO_SHA) == 0)
		sleep(5);
	else
		respond(fd, "{\"errors\":[{\"code\":\"NAME_UNKNOWN\",\"message\":\"unknown\"}]}",
			"HTTP/1.1 404 Not Found\r\n");
}

static void serve(int lfd)
{
	FILE *log = fopen(logpath, "a");

	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		struct req r;

		if (fd < 0)
			continue;
		if (read_request(fd, &r) == 0) {
			fprintf(log, "%s %s auth=%s body=%zu\n", r.method, r.path,
				r.auth[0] ? r.auth : "-", r.body);
			fflush(log);
			route(fd, &r);
		}
		close(fd);
	}
}

static int setup(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(lfd, 16), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(mkstemp(logpath));
	server = fork();
	assert_true(server >= 0);
	if (server == 0)
		serve(lfd);
	close(lfd);
	return 0;
}

static int teardown(void **state)
{
	kill(server, SIGKILL);
	waitpid(server, NULL, 0);
	unlink(logpath);
	return 0;
}

/* ---- helpers ---- */

static struct epoch_registry *open_reg(const char *token)
{
	struct epoch_registry *r = NULL;
	char url[64], *err = NULL;

	snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
	assert_int_equal(
	    epoch_registry_new(NULL, &(struct epoch_registry_options){ .url = url, .token = token },
			       &r, &err),
	    0);
	assert_null(err);
	return r;
}

static char *server_log(void)
{
	FILE *f = fopen(logpath, "r");
	struct buf b = BUF_INIT(0);
	char line[2048];

	while (f && fgets(line, sizeof line, f))
		assert_int_equal(buf_append_str(&b, line), 0);
	if (f)
		fclose(f);
	truncate(logpath, 0);
	return buf_steal(&b, NULL) ?: strdup("");
}

static void assert_log_has(const char *log, const char *want)
{
	if (!strstr(log, want))
		fail_msg("expected \"%s\" in the server log:\n%s", want, log);
}

/* ---- tests ---- */

static void test_token_flow(void **state)
{
	struct epoch_registry *r = open_reg("static");
	struct epoch_result res = {};
	char *log;

	assert_int_equal(epoch_get_manifest(r, "auth", "x", epoch_result_fill, &res, NULL), 0);
	assert_int_equal(epoch_result_wait(epoch_registry_event(r), &res), 0);
	assert_string_equal(res.media_type, EPOCH_MT_OCI_MANIFEST);
	assert_memory_equal(res.body, MANIFEST, strlen(MANIFEST));
	epoch_result_clear(&res);
	log = server_log();
	/* static token first, challenge, token fetched with it as the password, retry */
	assert_log_has(log, "GET /v2/auth/manifests/x auth=Bearer static");
	assert_log_has(log, "GET /token?service=svc&scope=repository%3Aauth%3Apull auth=Basic "
			    "X3Rva2VuOnN0YXRpYw==");
	assert_log_has(log, "GET /v2/auth/manifests/x auth=Bearer issued");
	free(log);

	/* the token is cached for its scope: no second challenge */
	assert_int_equal(epoch_has_manifest(r, "auth", "x", epoch_result_fill, &res, NULL), 0);
	assert_int_equal(epoch_result_wait(epoch_registry_event(r), &res), 0);
	assert_true(res.found);
	epoch_result_clear(&res);
	log = server_log();
	assert_string_equal(log, "HEAD /v2/auth/manifests/x auth=Bearer issued body=0\n");
	free(log);
	epoch_registry_free(r);

	/* without a static token the flow runs anonymously and the 401 is reported */
	r = open_reg(NULL);
	assert_int_equal(epoch_get_manifest(r, "auth", "x", epoch_result_fill, &res, NULL), 0);
	assert_int_equal(epoch_result_wait(epoch_registry_event(r), &res), -EIO);
	assert_int_equal(res.status, 401);
	assert_non_null(strstr(res.message, "401 UNAUTHORIZED: no (set EPOCH_TOKEN"));
	epoch_result_clear(&res);
	free(server_log());
	epoch_registry_free(r);
}

static void test_tags_pages_sorted(void **state)
{
	struct epoch_registry *r = open_reg(NULL);
	struct epoch_result res = {};

	assert_int_equal(epoch_list_tags(r, "r", epoch_result_fill, &res, NULL), 0);
	assert_int_equal(epoch_result_wait(epoch_registry_event(r), &res), 0);
	assert_string_equal(res.names[0], "a");
	assert_string_equal(res.names[1], "b");
	assert_string_equal(res.names[2], "c");
	assert_null(res.names[3]);
	epoch_result_clear(&res);

	assert_int_equal(epoch_list_tags(r, "missing", epoch_result_fill, &res, NULL), 0);
	assert_int_equal(epoch_result_wait(epoch_registry_event(r), &res), -ENOENT);
	assert_non_null(strstr(res.message, "/v2/missing/tags/list?n=1000: 404 NAME_UNKNOWN"));
	epoch_result_clear(&res);

	/* an empty page that links on ends the listing with an error instead of looping */
	assert_int_equal(epoch_list_tags(r, "loop", epoch_result_fill, &res, NULL), 0);
	assert_int_equal(epoch_result_wait(epoch_registry_event(r), &res), -EBADMSG);
	assert_non_null(strstr(res.message, "/v2/loop/tags/list?n=1000: an empty page links to "
					    "another (Link: </v2/loop/tags/list?last=&n=1000>"));
	epoch_result_clear(&res);
	free(server_log());
	epoch_registry_free(r);
}

static void test_upload_session_other_origin(void **state)
{
	struct epoch_registry *r = open_reg("static");
	struct epoch_result res = {};
	char *log;

	assert_int_equal(epoch_blob_put(r, "up", HELLO, -1, "hello", 5, NULL, NULL,
					epoch_result_fill, &res, NULL),
			 0);
	assert_int_equal(epoch_result_wait(epoch_registry_event(r), &res), 0);
	assert_int_equal(res.moved, 5);
	epoch_result_clear(&res);
	log = server_log();
	assert_log_has(log, "PUT /v2/up/blobs/" HELLO " auth=Bearer static");
	assert_log_has(log, "POST /v2/up/blobs/uploads/ auth=Bearer static body=0");
	/* the Location is another origin: no credentials go there */
	assert_log_has(log,
		       "PUT /up/1?s=1&digest=sha256%3A2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1"
		       "fa7425e73043362938b9824 auth=- body=5");
	free(log);

	/* remembered: the next upload goes straight to a session */
	assert_int_equal(epoch_blob_put(r, "up", HELLO, -1, "hello", 5, NULL, NULL,
					epoch_result_fill, &res, NULL),
			 0);
	assert_int_equal(epoch_result_wait(epoch_registry_event(r), &res), 0);
	epoch_result_clear(&res);
	log = server_log();
	assert_null(strstr(log, "PUT /v2/up/blobs/sha256"));
	free(log);
	epoch_registry_free(r);
}

/* Without EPOCH_CHUNK_SIZE a blob goes whole; a 413 to that turns on 64 MiB chunks for good. */
static void test_whole_blob_then_chunks_after_413(void **state)
{
	struct epoch_registry *r = open_reg(NULL);
	struct epoch_result res = {};
	char path[] = "/tmp/test-epoch-blob-XXXXXX";
	int fd = mkstemp(path);
	char *log;

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(ftruncate(fd, EPOCH_CHUNK_SIZE_DEFAULT + 5), 0);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(epoch_blob_put(r, "big", HELLO, fd, NULL,
						EPOCH_CHUNK_SIZE_DEFAULT + 5, NULL, NULL,
						epoch_result_fill, &res, NULL),
				 0);
		assert_int_equal(epoch_result_wait(epoch_registry_event(r), &res), 0);
		assert_int_equal(res.moved, EPOCH_CHUNK_SIZE_DEFAULT + 5);
		epoch_result_clear(&res);
		log = server_log();
		if (round == 0) {
			/* the whole blob: epoch's PUT (405), then a session's PUT (413) */
			assert_log_has(log, "PUT /v2/big/blobs/" HELLO " auth=- body=67108869\n"
					    "POST /v2/big/blobs/uploads/ auth=- body=0\n"
					    "PUT /big/1?s=1&digest=sha256%3A2cf24dba5fb0a30e26e83b2"
					    "ac5b9e29e1b161e5c1fa7425e73043362938b9824 auth=- "
					    "body=67108869\n");
		} else {
			/* remembered: chunks from the start */
			assert_null(strstr(log, "body=67108869"));
		}
		assert_log_has(log,
			       "POST /v2/big/blobs/uploads/ auth=- body=0\n"
			       "PATCH /big/1?s=1 auth=- body=67108864\n"
			       "PUT /big/1?s=2&digest=sha256%3A2cf24dba5fb0a30e26e83b2ac5b9e29e1b"
			       "161e5c1fa7425e73043362938b9824 auth=- body=5\n");
		free(log);
	}
	close(fd);
	epoch_registry_free(r);
}

/* A streamed upload's source: "hello" in two reads, the first one paused once. Its result
 * comes first, so epoch_result_fill can take the same userdata. */
struct source {
	struct epoch_result res;
	struct epoch_call *call;
	size_t given;
	int pauses;
	sd_event_source *resume;
};

static int source_on_resume(sd_event_source *s, void *userdata)
{
	struct source *src = userdata;

	assert_int_equal(epoch_call_resume(src->call), 0);
	return 0;
}

static ssize_t source_read(void *p, size_t n, void *userdata)
{
	struct source *src = userdata;
	size_t k = MIN(n, src->given == 0 ? (size_t)2 : 5 - src->given);

	if (src->pauses++ == 0) {
		assert_int_equal(sd_event_source_set_enabled(src->resume, SD_EVENT_ONESHOT), 0);
		return -EAGAIN;
	}
	memcpy(p, "hello" + src->given, k);
	src->given += k;
	return (ssize_t)k;
}

static int put_stream(struct epoch_registry *r, struct source *src)
{
	*src = (struct source){};
	assert_int_equal(
	    sd_event_add_defer(epoch_registry_event(r), &src->resume, source_on_resume, src), 0);
	assert_int_equal(sd_event_source_set_enabled(src->resume, SD_EVENT_OFF), 0);
	assert_int_equal(epoch_blob_put_stream(r, "up", HELLO, 5, source_read, src, NULL, NULL,
					       epoch_result_fill, src, &src->call),
			 0);
	return epoch_result_wait(epoch_registry_event(r), &src->res);
}

static void test_stream_upload(void **state)
{
	struct epoch_registry *r = open_reg(NULL);
	struct source src;
	char *log;

	/* epoch's PUT took the stream and said 405: the handle learns, the bytes are gone */
	assert_int_equal(put_stream(r, &src), -ESPIPE);
	assert_non_null(strstr(src.res.message, "405 after 5 streamed bytes"));
	assert_int_equal(src.given, 5);
	sd_event_source_unref(src.resume);
	epoch_result_clear(&src.res);
	free(server_log());
	/* started again: a session from the start, the body read through the pause */
	assert_int_equal(put_stream(r, &src), 0);
	assert_int_equal(src.res.moved, 5);
	assert_int_equal(src.pauses, 3);
	sd_event_source_unref(src.resume);
	epoch_result_clear(&src.res);
	log = server_log();
	assert_null(strstr(log, "PUT /v2/up/blobs/sha256"));
	assert_log_has(log, "POST /v2/up/blobs/uploads/ auth=- body=0\n"
			    "PUT /up/1?s=1&digest=sha256%3A2cf24dba5fb0a30e26e83b2ac5b9e29e1b161"
			    "e5c1fa7425e73043362938b9824 auth=- body=5\n");
	free(log);
	epoch_registry_free(r);
}

/* One userdata for both callbacks: the result first, so epoch_result_fill can take it. */
struct download {
	struct epoch_result res;
	struct buf got;
};

static int sink(const void *p, size_t n, void *userdata)
{
	struct download *d = userdata;

	return buf_append(&d->got, p, n);
}

static void test_blob_verification(void **state)
{
	struct epoch_registry *r = open_reg(NULL);
	struct download d = { .got = BUF_INIT(0) };
	struct epoch_result res = {};

	assert_int_equal(epoch_blob_get(r, "b", HELLO, 5, sink, epoch_result_fill, &d, NULL), 0);
	assert_int_equal(epoch_result_wait(epoch_registry_event(r), &d.res), -EBADMSG);
	assert_non_null(
	    strstr(d.res.message, "blob " HELLO " is corrupt: its bytes hash to sha256:"));
	assert_int_equal(d.got.len, 5);
	epoch_result_clear(&d.res);

	/* cut off as soon as the body runs past the size, before the extra bytes reach us */
	buf_reset(&d.got);
	assert_int_equal(epoch_blob_get(r, "long", HELLO, 5, sink, epoch_result_fill, &d, NULL), 0);
	assert_int_equal(epoch_result_wait(epoch_registry_event(r), &d.res), -EBADMSG);
	assert_non_null(
	    strstr(d.res.message, "sends 12 bytes for blob " HELLO ", the manifest says 5"));
	assert_int_equal(d.got.len, 0);
	epoch_result_clear(&d.res);
	buf_free(&d.got);

	/* DELETE answered 404: done, nothing was there */
	assert_int_equal(epoch_delete_manifest(r, "d", "t", epoch_result_fill, &res, NULL), 0);
	assert_int_equal(epoch_result_wait(epoch_registry_event(r), &res), 0);
	assert_false(res.found);
	epoch_result_clear(&res);
	free(server_log());
	epoch_registry_free(r);
}

/* A registry that redirects blob HEADs to its storage, as docker-registry on S3 does: the
 * blob is found there (a push must not fail its HEAD on the 307), no token follows. */
static void test_blob_head_redirected(void **state)
{
	struct epoch_registry *r = open_reg("static");
	struct epoch_result res = {};
	char *log;

	assert_int_equal(epoch_blob_head(r, "moved", HELLO, epoch_result_fill, &res, NULL), 0);
	assert_int_equal(epoch_result_wait(epoch_registry_event(r), &res), 0);
	assert_true(res.found);
	assert_int_equal(res.size, 5);
	epoch_result_clear(&res);
	log = server_log();
	assert_log_has(log, "HEAD /v2/moved/blobs/" HELLO " auth=Bearer static body=0\n"
			    "HEAD /storage/hello auth=- body=0\n");
	free(log);
	epoch_registry_free(r);
}

/* A 403 from the storage a blob GET was redirected to is not about EPOCH_TOKEN (which never
 * went there): the error names where the answer came from, without the URL's signature. */
static void test_blob_get_storage_refused(void **state)
{
	struct epoch_registry *r = open_reg("static");
	struct download d = { .got = BUF_INIT(0) };
	char want[256];

	assert_int_equal(epoch_blob_get(r, "expired", HELLO, 5, sink, epoch_result_fill, &d, NULL),
			 0);
	assert_int_equal(epoch_result_wait(epoch_registry_event(r), &d.res), -EIO);
	snprintf(want, sizeof want,
		 "/v2/expired/blobs/" HELLO " (redirected to http://localhost:%d)"
		 ": 403 <Error><Code>AccessDenied</Code>",
		 port);
	if (!strstr(d.res.message, want))
		fail_msg("expected \"%s\" in \"%s\"", want, d.res.message);
	assert_null(strstr(d.res.message, "EPOCH_TOKEN"));
	assert_null(strstr(d.res.message, "s3cr3t"));
	epoch_result_clear(&d.res);
	buf_free(&d.got);
	free(server_log());
	epoch_registry_free(r);
}

/* Config blobs carry every file's sparse map: a fragmented disk and memory file make one
 * above 1 MiB, which a push writes and a pull must therefore read (epoch's puller allows
 * 64 MiB). Above the cap a fetch is refused before any request. */
static void test_config_blob_above_1mib(void **state)
{
	struct epoch_registry *r = open_reg(NULL);
	struct epoch_result res = {};

	assert_int_equal(
	    epoch_blob_fetch(r, "cfg", BIG_CONFIG, BIG_CONFIG_SIZE, epoch_result_fill, &res, NULL),
	    0);
	assert_int_equal(epoch_result_wait(epoch_registry_event(r), &res), 0);
	assert_int_equal(res.body_len, BIG_CONFIG_SIZE);
	assert_int_equal(res.body[BIG_CONFIG_SIZE - 1], 'a');
	epoch_result_clear(&res);
	assert_int_equal(epoch_blob_fetch(r, "cfg", BIG_CONFIG, EPOCH_SNAPSHOT_CONFIG_MAX + 1,
					  epoch_result_fill, &res, NULL),
			 -E2BIG);
	free(server_log());
	epoch_registry_free(r);
}

/* A proxy's plain-text error is quoted as the proxy wrote it, without its line end. */
static void test_error_plain_text(void **state)
{
	struct epoch_registry *r = open_reg(NULL);
	struct epoch_result res = {};
	char want[128];

	assert_int_equal(epoch_get_manifest(r, "plain", "x", epoch_result_fill, &res, NULL), 0);
	assert_int_equal(epoch_result_wait(epoch_registry_event(r), &res), -EIO);
	snprintf(want, sizeof want,
		 "GET http://127.0.0.1:%d/v2/plain/manifests/x: 504 upstream timed out", port);
	assert_string_equal(res.message, want);
	epoch_result_clear(&res);
	free(server_log());
	epoch_registry_free(r);
}

/* The octal size field of the tar header at p. */
static size_t tar_size(const char *p)
{
	return (size_t)strtoull(p + 124, NULL, 8);
}

/* While a blob is still on its way, the importer's input must not end where an entry ends:
 * Go's tar reader takes such an end for the end of the archive, so a pull that died there
 * (SIGKILL, OOM, a crash: nobody left to kill the importer) would import a snapshot
 * without its remaining files. It ends inside an entry instead, which fails the import. */
static void test_pull_never_pauses_at_entry_boundary(void **state)
{
	struct epoch_registry *r = open_reg(NULL);
	struct epoch_result res = {};
	struct epoch_call *c = NULL;
	char out[16384];
	size_t n = 0, at = 0, boundaries = 0;
	int fds[2];
	ssize_t k;

	assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
	assert_int_equal(epoch_pull(r,
				    &(struct epoch_pull_options){
					.name = "snap", .local_name = "x", .out_fd = fds[1] },
				    epoch_result_fill, &res, &c),
			 0);
	/* the manifest, the config and a.txt arrive; b.txt's GET hangs */
	for (int i = 0; i < 10; i++)
		assert_true(sd_event_run(epoch_registry_event(r), 100 * 1000) >= 0);
	assert_false(res.done);
	while ((k = read(fds[0], out + n, sizeof out - n)) > 0)
		n += (size_t)k;
	epoch_call_cancel(c);
	/* the entries that went out: snapshot.json, then a.txt */
	while (at + 512 <= n) {
		at += 512 + (tar_size(out + at) + 511) / 512 * 512;
		if (at == n)
			fail_msg("the output ends at the end of entry %zu (offset %zu)",
				 boundaries + 1, at);
		boundaries++;
	}
	assert_true(boundaries >= 2);
	assert_string_equal(out + 512 + (tar_size(out) + 511) / 512 * 512, "a.txt");
	close(fds[0]);
	close(fds[1]);
	free(server_log());
	epoch_registry_free(r);
}

static void never(const struct epoch_reply *reply, void *userdata)
{
	fail_msg("a cancelled call completed");
}

static void test_cancel(void **state)
{
	struct epoch_registry *r = open_reg(NULL);
	struct epoch_call *c = NULL;

	assert_int_equal(epoch_get_manifest(r, "slow", "x", never, NULL, &c), 0);
	assert_int_equal(sd_event_run(epoch_registry_event(r), 100000), 1);
	epoch_call_cancel(c);
	/* and a call still running when the registry goes */
	assert_int_equal(epoch_get_manifest(r, "slow", "x", never, NULL, NULL), 0);
	assert_int_equal(epoch_catalog(r, never, NULL, NULL), 0);
	epoch_registry_free(r);
	free(server_log());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_flow),
		cmocka_unit_test(test_tags_pages_sorted),
		cmocka_unit_test(test_upload_session_other_origin),
		cmocka_unit_test(test_whole_blob_then_chunks_after_413),
		cmocka_unit_test(test_stream_upload),
		cmocka_unit_test(test_blob_verification),
		cmocka_unit_test(test_blob_head_redirected),
		cmocka_unit_test(test_config_blob_above_1mib),
		cmocka_unit_test(test_blob_get_storage_refused),
		cmocka_unit_test(test_error_plain_text),
		cmocka_unit_test(test_pull_never_pauses_at_entry_boundary),
		cmocka_unit_test(test_cancel),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
