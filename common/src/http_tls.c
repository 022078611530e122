/* The TLS transport of the HTTP server: non-blocking handshakes, reads and writes on
 * OpenSSL 3 (WANT_READ / WANT_WRITE become the io events http.c waits for), the peer
 * certificate of each connection, HTTP/1.1 ALPN, and certificate reload that swaps the
 * SSL_CTX for new connections while open ones keep the context they started with (each
 * SSL holds a reference to its own).
 *
 * Reads use OpenSSL's read-ahead: one recv() takes whatever the socket holds (a whole
 * request, often several records) instead of a record header and then its body. Bytes read
 * ahead stay inside the SSL object, where epoll cannot see them, so http_tls_drained() tells
 * the pump whether the socket was emptied and nothing is left buffered. Buffers are kept
 * while a connection is busy and released once it idles (http_tls_release_buffers()). */
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>

#include "cocoon/log.h"
#include "http-internal.h"

/* Socket BIO that sends with MSG_NOSIGNAL: OpenSSL's own socket BIO uses write(), and a
 * client that reset the connection would raise SIGPIPE in a process not ignoring it. */
static int bio_sock_write(BIO *b, const char *data, int len)
{
	struct http_conn *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = send(c->fd, data, (size_t)len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		BIO_set_retry_write(b);
	return n < 0 ? -1 : (int)n;
}

static int bio_sock_read(BIO *b, char *data, int len)
{
	struct http_conn *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = recv(c->fd, data, (size_t)len, 0);
	while (n < 0 && errno == EINTR);
	c->recv_short = n < len;
	if (n < 0 && errno == EAGAIN)
		BIO_set_retry_read(b);
	if (n == 0)
		BIO_set_flags(b, BIO_FLAGS_IN_EOF);
	return n < 0 ? -1 : (int)n;
}

static long bio_sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_EOF:
		return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
	default:
		return 0;
	}
}

static int bio_sock_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static BIO_METHOD *bio_method_new(void)
{
	BIO_METHOD *m = BIO_meth_new(
	    BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "cocoon socket");

	if (!m)
		return NULL;
	if (!BIO_meth_set_write(m, bio_sock_write) || !BIO_meth_set_read(m, bio_sock_read) ||
	    !BIO_meth_set_ctrl(m, bio_sock_ctrl) || !BIO_meth_set_create(m, bio_sock_create)) {
		BIO_meth_free(m);
		return NULL;
	}
	return m;
}

/* Offer only HTTP/1.1, so a client that would prefer h2 settles on it explicitly. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char http11[] = "\x08http/1.1";
	unsigned char *sel;

	if (SSL_select_next_proto(&sel, outlen, http11, sizeof http11 - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

static int server_tls_ctx(const char *cert, const char *key, const char *ca, enum tls_verify verify,
			  SSL_CTX **ret)
{
	_cleanup_(tls_keypair_freep) struct tls_keypair *kp = NULL;
	SSL_CTX *ctx;
	int r;

	r = tls_keypair_load(cert, key, &kp);
	if (r < 0)
		return r;
	r = tls_server_ctx_new(kp, ca, verify, &ctx);
	if (r < 0)
		return r;
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	*ret = ctx;
	return 0;
}

int http_server_set_tls(struct http_server *s, const char *cert_path, const char *key_path,
			const char *ca_path, enum tls_verify verify)
{
	char *cert = NULL, *key = NULL, *ca = NULL;
	SSL_CTX *ctx = NULL;
	int r;

	if (!s)
		return -EINVAL;
	r = server_tls_ctx(cert_path, key_path, ca_path, verify, &ctx);
	if (r < 0)
		return r;
	if (!s->bio_method)
		s->bio_method = bio_method_new();
	cert = strdup(cert_path);
	key = strdup(key_path);
	ca = ca_path ? strdup(ca_path) : NULL;
	if (!s->bio_method || !cert || !key || (ca_path && !ca)) {
		SSL_CTX_free(ctx);
		free(cert);
		free(key);
		free(ca);
		return -ENOMEM;
	}
	SSL_CTX_free(s->tls_ctx);
	s->tls_ctx = ctx;
	free(s->tls_cert);
	free(s->tls_key);
	free(s->tls_ca);
	s->tls_cert = cert;
	s->tls_key = key;
	s->tls_ca = ca;
	s->tls_verify = verify;
	return 0;
}

int http_server_reload_tls(struct http_server *s)
{
	SSL_CTX *ctx;
	int r;

	if (!s)
		return -EINVAL;
	if (!s->tls_ctx)
		return -ENOKEY;
	r = server_tls_ctx(s->tls_cert, s->tls_key, s->tls_ca, s->tls_verify, &ctx);
	if (r < 0)
		return r;
	SSL_CTX_free(s->tls_ctx);
	s->tls_ctx = ctx;
	return 0;
}

void http_tls_server_done(struct http_server *s)
{
	SSL_CTX_free(s->tls_ctx);
	BIO_meth_free(s->bio_method);
	free(s->tls_cert);
	free(s->tls_key);
	free(s->tls_ca);
}

int http_tls_conn_init(struct http_conn *c)
{
	BIO *bio;

	c->ssl = SSL_new(c->server->tls_ctx);
	bio = BIO_new(c->server->bio_method);
	if (!c->ssl || !bio) {
		BIO_free(bio);
		return -ENOMEM;
	}
	BIO_set_data(bio, c);
	SSL_set_bio(c->ssl, bio, bio);
	SSL_set_read_ahead(c->ssl, 1);
	SSL_set_accept_state(c->ssl);
	c->handshake_done = false;
	return 0;
}

void http_tls_conn_done(struct http_conn *c, int error)
{
	/* A stream closed on purpose says so (close_notify), best effort; lingering
	 * connections sent theirs already. */
	if (c->ssl && error == 0 && c->handshake_done && c->state == CONN_STREAM)
		(void)SSL_shutdown(c->ssl);
	SSL_free(TAKE_PTR(c->ssl));
}

/* OpenSSL needs an empty error queue before a call to tell its errors apart. Failures are
 * cleared where they are handled (tls_result()), so this is usually a cheap look. */
static void tls_clear_errors(void)
{
	if (ERR_peek_error() != 0)
		ERR_clear_error();
}

/* Map a failed SSL call to -EAGAIN (with the direction it waits for), 0 for EOF, or an
 * error. */
static int tls_result(struct http_conn *c, int ret, int *want)
{
	int e = SSL_get_error(c->ssl, ret);

	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		*want = e;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		return errno > 0 ? -errno : -ECONNRESET;
	default: {
		const char *reason = ERR_reason_error_string(ERR_peek_last_error());

		log_debug("http: %s: TLS error: %s", c->peer, reason ? reason : "unknown");
		ERR_clear_error();
		return -EPROTO;
	}
	}
}

/* 1 when done, 0 when it waits for the peer, < 0 when it failed. */
int http_tls_handshake(struct http_conn *c)
{
	X509 *peer;
	int r;

	tls_clear_errors();
	r = SSL_do_handshake(c->ssl);
	if (r != 1) {
		r = tls_result(c, r, &c->tls_read_want);
		if (r == -EAGAIN)
			return 0;
		return r < 0 ? r : -ECONNRESET;
	}
	c->handshake_done = true;
	c->tls_read_want = 0;
	c->tls_buffers_held = true;
	peer = SSL_get1_peer_certificate(c->ssl);
	if (peer) {
		/* With verification on, a certificate that failed already failed the handshake;
		 * the result still says whether one was checked at all. */
		c->tls_verified = SSL_get_verify_result(c->ssl) == X509_V_OK;
		r = tls_cert_subject(peer, &c->tls_subject);
		X509_free(peer);
		if (r < 0)
			return r;
	}
	return 1;
}

ssize_t http_tls_recv(struct http_conn *c, void *p, size_t n)
{
	size_t got;

	tls_clear_errors();
	c->tls_buffers_held = true;
	if (SSL_read_ex(c->ssl, p, n, &got) == 1) {
		c->tls_read_want = 0;
		return (ssize_t)got;
	}
	return tls_result(c, 0, &c->tls_read_want);
}

ssize_t http_tls_send(struct http_conn *c, const void *p, size_t n)
{
	size_t done;
	int r;

	tls_clear_errors();
	c->tls_buffers_held = true;
	if (SSL_write_ex(c->ssl, p, n, &done) == 1) {
		c->tls_write_want = 0;
		return (ssize_t)done;
	}
	r = tls_result(c, 0, &c->tls_write_want);
	return r == 0 ? -EPIPE : r;
}

bool http_tls_drained(const struct http_conn *c)
{
	return c->recv_short && !SSL_has_pending(c->ssl);
}

/* Input OpenSSL holds (decrypted or still a record) that epoll will not report. */
bool http_tls_pending(const struct http_conn *c)
{
	return c->ssl && c->handshake_done && SSL_has_pending(c->ssl);
}

void http_tls_release_buffers(struct http_conn *c)
{
	/* It refuses while a buffer holds unread input; then they stay until the connection
	 * closes, and the flag is cleared all the same so the idle timer does not spin. */
	if (c->ssl)
		(void)SSL_free_buffers(c->ssl);
	c->tls_buffers_held = false;
}
