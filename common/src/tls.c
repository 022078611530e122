/* TLS helpers: PEM certificate, key and CA bundle loading with errors that name the file
 * and the problem, the server SSL_CTX every HTTPS listener uses, self-signed ECDSA
 * certificates (the kubelet API default when no certificate is configured) and SHA-256
 * fingerprints. OpenSSL 3 only; nothing here touches sockets (http_tls.c drives the SSL
 * objects on the event loop). */
#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "cocoon/log.h"
#include "cocoon/fsutil.h"
#include "cocoon/tls.h"

/* TLS 1.2 suites: ECDHE key exchange with AEAD ciphers only (the set Go's crypto/tls, and
 * so the apiserver, prefers). TLS 1.3 suites are all AEAD; OpenSSL's defaults stay. */
#define TLS12_CIPHERS                                                                              \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                               \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* RFC 5280 upper bound for a commonName. */
#define CN_MAX 64

static char last_error[512];

DEFINE_TRIVIAL_CLEANUP_FUNC(BIO *, BIO_free_all);
DEFINE_TRIVIAL_CLEANUP_FUNC(SSL_CTX *, SSL_CTX_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(BIGNUM *, BN_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(GENERAL_NAMES *, GENERAL_NAMES_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(GENERAL_NAME *, GENERAL_NAME_free);

static void x509_stack_free(STACK_OF(X509) * sk)
{
	sk_X509_pop_free(sk, X509_free);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(STACK_OF(X509) *, x509_stack_free);

const char *tls_last_error(void)
{
	return last_error;
}

static int tls_fail(int error, const char *fmt, ...) _printf_(2, 3);
static int tls_fail(int error, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof last_error, fmt, ap);
	va_end(ap);
	ERR_clear_error();
	log_debug("tls: %s", last_error);
	return -ABS(error);
}

/* The reason of the newest queued OpenSSL error, for messages. */
static const char *ossl_reason(void)
{
	const char *s = ERR_reason_error_string(ERR_peek_last_error());

	return s ? s : "unknown OpenSSL error";
}

static bool ossl_no_pem_start(void)
{
	unsigned long e = ERR_peek_last_error();

	return ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

const char *tls_verify_to_string(enum tls_verify v)
{
	switch (v) {
	case TLS_VERIFY_NONE:
		return "none";
	case TLS_VERIFY_OPTIONAL:
		return "optional";
	case TLS_VERIFY_REQUIRE:
		return "require";
	}
	return NULL;
}

int tls_verify_from_string(const char *s)
{
	for (int v = TLS_VERIFY_NONE; v <= TLS_VERIFY_REQUIRE; v++)
		if (streq_ptr(s, tls_verify_to_string(v)))
			return v;
	return -EINVAL;
}

/* Read a whole (small) file into a memory BIO; `what` names the file's role in errors. */
static int read_file_bio(const char *path, const char *what, BIO **ret)
{
	_cleanup_(BIO_free_allp) BIO *bio = NULL;
	_cleanup_(closep) int fd = -EBADF;
	size_t total = 0;
	char chunk[4096];

	if (isempty(path))
		return tls_fail(EINVAL, "no %s file given", what);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;

		if (e == ENOENT)
			return tls_fail(e, "%s: %s file does not exist", path, what);
		return tls_fail(e, "%s: cannot open %s file: %s", path, what, strerror(e));
	}
	bio = BIO_new(BIO_s_mem());
	if (!bio)
		return tls_fail(ENOMEM, "%s: out of memory", path);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof chunk);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			return tls_fail(e, "%s: cannot read %s file: %s", path, what, strerror(e));
		}
		if (n == 0)
			break;
		total += (size_t)n;
		if (total > TLS_FILE_MAX)
			return tls_fail(EFBIG, "%s: %s file is larger than %d bytes", path, what,
					TLS_FILE_MAX);
		if (BIO_write(bio, chunk, (int)n) != n)
			return tls_fail(ENOMEM, "%s: out of memory", path);
	}
	*ret = TAKE_PTR(bio);
	return 0;
}

/* Every CERTIFICATE block of a PEM file, in order; other block types are skipped. */
static int read_certs(const char *path, const char *what, STACK_OF(X509) * *ret)
{
	_cleanup_(x509_stack_freep) STACK_OF(X509) *sk = NULL;
	_cleanup_(BIO_free_allp) BIO *bio = NULL;
	int r;

	r = read_file_bio(path, what, &bio);
	if (r < 0)
		return r;
	sk = sk_X509_new_null();
	if (!sk)
		return tls_fail(ENOMEM, "%s: out of memory", path);
	for (;;) {
		X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);

		if (!x) {
			if (ossl_no_pem_start())
				break;
			return tls_fail(EBADMSG, "%s: PEM certificate %d is malformed: %s", path,
					sk_X509_num(sk) + 1, ossl_reason());
		}
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			return tls_fail(ENOMEM, "%s: out of memory", path);
		}
	}
	ERR_clear_error();
	if (sk_X509_num(sk) == 0)
		return tls_fail(EBADMSG,
				"%s: not a PEM %s file (no \"-----BEGIN CERTIFICATE-----\" block)",
				path, what);
	*ret = TAKE_PTR(sk);
	return 0;
}

static int no_password(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

static bool bio_contains(BIO *bio, const char *needle)
{
	char *data;
	long len = BIO_get_mem_data(bio, &data);

	return len > 0 && memmem(data, (size_t)len, needle, strlen(needle));
}

static int read_key(const char *path, EVP_PKEY **ret)
{
	_cleanup_(BIO_free_allp) BIO *bio = NULL;
	EVP_PKEY *key;
	int r;

	r = read_file_bio(path, "private key", &bio);
	if (r < 0)
		return r;
	/* OpenSSL's decoders report garbage as "unsupported"; look for the block ourselves so
	 * the message says what is actually wrong. */
	if (!bio_contains(bio, "-----BEGIN ") || !bio_contains(bio, "PRIVATE KEY-----"))
		return tls_fail(EBADMSG,
				"%s: not a PEM private key file (no \"-----BEGIN ... PRIVATE "
				"KEY-----\" block)",
				path);
	if (bio_contains(bio, "ENCRYPTED"))
		return tls_fail(EBADMSG, "%s: the private key is encrypted, which is not supported",
				path);
	key = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
	if (!key)
		return tls_fail(EBADMSG, "%s: cannot decode the private key: %s", path,
				ossl_reason());
	*ret = key;
	return 0;
}

void tls_keypair_free(struct tls_keypair *kp)
{
	if (!kp)
		return;
	X509_free(kp->cert);
	x509_stack_free(kp->chain);
	EVP_PKEY_free(kp->key);
	free(kp);
}

int tls_keypair_load(const char *cert_path, const char *key_path, struct tls_keypair **ret)
{
	_cleanup_(tls_keypair_freep) struct tls_keypair *kp = NULL;
	const EVP_PKEY *pub;
	int r;

	kp = calloc(1, sizeof *kp);
	if (!kp)
		return tls_fail(ENOMEM, "out of memory");
	r = read_certs(cert_path, "certificate", &kp->chain);
	if (r < 0)
		return r;
	kp->cert = sk_X509_shift(kp->chain);
	r = read_key(key_path, &kp->key);
	if (r < 0)
		return r;
	pub = X509_get0_pubkey(kp->cert);
	if (!pub || EVP_PKEY_eq(pub, kp->key) != 1)
		return tls_fail(EKEYREJECTED,
				"%s: private key does not match the certificate in %s", key_path,
				cert_path);
	*ret = TAKE_PTR(kp);
	return 0;
}

/* One extension from OpenSSL's config syntax; only used with constant values. */
static int cert_add_ext(X509 *x, int nid, const char *value)
{
	X509_EXTENSION *ext;
	X509V3_CTX ctx;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return tls_fail(EINVAL, "cannot build extension %s: %s", OBJ_nid2sn(nid),
				ossl_reason());
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : tls_fail(ENOMEM, "out of memory");
}

static bool dns_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253)
		return false;
	for (const char *p = s; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '.' || *p == '*'))
			return false;
	return true;
}

/* subjectAltName built from structures, so a name can never inject extra entries. */
static int cert_add_sans(X509 *x, char *const *sans)
{
	_cleanup_(GENERAL_NAMES_freep) GENERAL_NAMES *gens = NULL;

	if (!sans || !*sans)
		return 0;
	gens = sk_GENERAL_NAME_new_null();
	if (!gens)
		return tls_fail(ENOMEM, "out of memory");
	for (char *const *s = sans; *s; s++) {
		_cleanup_(GENERAL_NAME_freep) GENERAL_NAME *g = GENERAL_NAME_new();
		unsigned char ip[16];
		ASN1_STRING *v;
		int type, len;

		if (!g)
			return tls_fail(ENOMEM, "out of memory");
		if (inet_pton(AF_INET, *s, ip) == 1 || inet_pton(AF_INET6, *s, ip) == 1) {
			len = strchr(*s, ':') ? 16 : 4;
			type = GEN_IPADD;
			v = ASN1_OCTET_STRING_new();
		} else if (dns_name_valid(*s)) {
			len = (int)strlen(*s);
			type = GEN_DNS;
			v = ASN1_IA5STRING_new();
		} else {
			return tls_fail(EINVAL,
					"subject alternative name \"%s\" is neither an IP "
					"address nor a DNS name",
					*s);
		}
		if (!v)
			return tls_fail(ENOMEM, "out of memory");
		if (!ASN1_STRING_set(v, type == GEN_IPADD ? (const void *)ip : *s, len)) {
			ASN1_STRING_free(v);
			return tls_fail(ENOMEM, "out of memory");
		}
		GENERAL_NAME_set0_value(g, type, v);
		if (!sk_GENERAL_NAME_push(gens, g))
			return tls_fail(ENOMEM, "out of memory");
		g = NULL;
	}
	if (!X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT))
		return tls_fail(ENOMEM, "cannot add subjectAltName: %s", ossl_reason());
	return 0;
}

static int cert_set_serial(X509 *x)
{
	_cleanup_(BN_freep) BIGNUM *bn = BN_new();

	/* 127 random bits: unique in practice and positive, as RFC 5280 §4.1.2.2 wants. */
	if (!bn || !BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
	    !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		return tls_fail(ENOMEM, "cannot create a serial number: %s", ossl_reason());
	return 0;
}

int tls_keypair_new_self_signed(const char *common_name, char *const *sans, unsigned days,
				struct tls_keypair **ret)
{
	_cleanup_(tls_keypair_freep) struct tls_keypair *kp = NULL;
	X509_NAME *name;
	int r;

	if (isempty(common_name) || strlen(common_name) > CN_MAX)
		return tls_fail(EINVAL, "common name must be 1 to %d characters", CN_MAX);
	if (days == 0 || days > 36500)
		return tls_fail(EINVAL, "validity of %u days is out of range (1..36500)", days);
	kp = calloc(1, sizeof *kp);
	if (!kp || !(kp->chain = sk_X509_new_null()) || !(kp->cert = X509_new()))
		return tls_fail(ENOMEM, "out of memory");
	kp->key = EVP_EC_gen("P-256");
	if (!kp->key)
		return tls_fail(EIO, "cannot generate a P-256 key: %s", ossl_reason());
	if (!X509_set_version(kp->cert, X509_VERSION_3) || !X509_set_pubkey(kp->cert, kp->key) ||
	    !X509_gmtime_adj(X509_getm_notBefore(kp->cert), -3600) ||
	    !X509_time_adj_ex(X509_getm_notAfter(kp->cert), (int)days, 0, NULL))
		return tls_fail(ENOMEM, "cannot fill in the certificate: %s", ossl_reason());
	r = cert_set_serial(kp->cert);
	if (r < 0)
		return r;
	name = X509_get_subject_name(kp->cert);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					(const unsigned char *)common_name, -1, -1, 0) ||
	    !X509_set_issuer_name(kp->cert, name))
		return tls_fail(EINVAL, "common name \"%s\": %s", common_name, ossl_reason());
	/* CA:TRUE and keyCertSign make the certificate acceptable as its own trust anchor
	 * (a client pins it as its CA bundle), like `openssl req -x509` does. */
	if ((r = cert_add_ext(kp->cert, NID_basic_constraints, "critical,CA:TRUE")) < 0 ||
	    (r = cert_add_ext(kp->cert, NID_key_usage,
			      "critical,digitalSignature,keyEncipherment,keyCertSign")) < 0 ||
	    (r = cert_add_ext(kp->cert, NID_ext_key_usage, "serverAuth,clientAuth")) < 0 ||
	    (r = cert_add_ext(kp->cert, NID_subject_key_identifier, "hash")) < 0 ||
	    (r = cert_add_sans(kp->cert, sans)) < 0)
		return r;
	if (X509_sign(kp->cert, kp->key, EVP_sha256()) <= 0)
		return tls_fail(EIO, "cannot sign the certificate: %s", ossl_reason());
	*ret = TAKE_PTR(kp);
	return 0;
}

static int write_bio_atomic(const char *path, BIO *data, mode_t mode)
{
	char *p;
	long len = BIO_get_mem_data(data, &p);
	int r;

	r = fs_write_atomic(path, p, (size_t)len, mode);
	if (r < 0)
		return tls_fail(-r, "%s: cannot write: %s", path, strerror(-r));
	return 0;
}

int tls_keypair_write_pem(const struct tls_keypair *kp, const char *cert_path, const char *key_path)
{
	_cleanup_(BIO_free_allp) BIO *cert = BIO_new(BIO_s_mem());
	_cleanup_(BIO_free_allp) BIO *key = BIO_new(BIO_s_mem());
	int r;

	if (!kp || isempty(cert_path) || isempty(key_path))
		return tls_fail(EINVAL, "a keypair, a certificate path and a key path are needed");
	if (!cert || !key || !PEM_write_bio_X509(cert, kp->cert) ||
	    !PEM_write_bio_PrivateKey(key, kp->key, NULL, NULL, 0, NULL, NULL))
		return tls_fail(ENOMEM, "cannot encode PEM: %s", ossl_reason());
	for (int i = 0; i < sk_X509_num(kp->chain); i++)
		if (!PEM_write_bio_X509(cert, sk_X509_value(kp->chain, i)))
			return tls_fail(ENOMEM, "cannot encode PEM: %s", ossl_reason());
	r = write_bio_atomic(key_path, key, 0600);
	if (r < 0)
		return r;
	return write_bio_atomic(cert_path, cert, 0644);
}

int tls_load_ca_bundle(const char *path, STACK_OF(X509) * *ret)
{
	return read_certs(path, "CA bundle", ret);
}

static int ctx_set_client_ca(SSL_CTX *ctx, const char *ca_path, enum tls_verify verify)
{
	_cleanup_(x509_stack_freep) STACK_OF(X509) *cas = NULL;
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	int r;

	r = tls_load_ca_bundle(ca_path, &cas);
	if (r < 0)
		return r;
	for (int i = 0; i < sk_X509_num(cas); i++) {
		X509 *ca = sk_X509_value(cas, i);

		/* The names go into CertificateRequest so clients pick the right certificate. */
		if (!X509_STORE_add_cert(store, ca) || !SSL_CTX_add_client_CA(ctx, ca))
			return tls_fail(ENOMEM, "%s: cannot use CA certificate %d: %s", ca_path,
					i + 1, ossl_reason());
	}
	SSL_CTX_set_verify(ctx,
			   SSL_VERIFY_PEER |
			       (verify == TLS_VERIFY_REQUIRE ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
			   NULL);
	return 0;
}

int tls_server_ctx_new(const struct tls_keypair *kp, const char *ca_path, enum tls_verify verify,
		       SSL_CTX **ret)
{
	static const unsigned char sid_ctx[] = "cocoon";
	_cleanup_(SSL_CTX_freep) SSL_CTX *ctx = NULL;
	int r;

	if (!kp || !tls_verify_to_string(verify))
		return tls_fail(EINVAL, "a keypair and a valid verify mode are needed");
	if (verify != TLS_VERIFY_NONE && isempty(ca_path))
		return tls_fail(EINVAL, "client certificate verification \"%s\" needs a CA bundle",
				tls_verify_to_string(verify));
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		return tls_fail(ENOMEM, "cannot create a TLS context: %s", ossl_reason());
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS))
		return tls_fail(EINVAL, "cannot configure TLS versions: %s", ossl_reason());
	/* No renegotiation (a client-driven CPU sink), no compression (CRIME); a peer closing
	 * without close_notify is an ordinary EOF, since HTTP frames its own messages. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
				     SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* Partial writes from a buffer that moves (struct buf). Not SSL_MODE_RELEASE_BUFFERS:
	 * it frees and allocates both 17 KiB buffers around every request; the HTTP server
	 * releases them itself once a keep-alive connection idles (SSL_free_buffers()). */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (!SSL_CTX_use_certificate(ctx, kp->cert) || !SSL_CTX_use_PrivateKey(ctx, kp->key))
		return tls_fail(EINVAL, "cannot use the certificate: %s", ossl_reason());
	for (int i = 0; i < sk_X509_num(kp->chain); i++)
		if (!SSL_CTX_add1_chain_cert(ctx, sk_X509_value(kp->chain, i)))
			return tls_fail(EINVAL, "cannot use chain certificate %d: %s", i + 2,
					ossl_reason());
	if (!SSL_CTX_check_private_key(ctx))
		return tls_fail(EKEYREJECTED, "private key does not match the certificate");
	/* Required for session resumption once client certificates are verified. */
	if (!SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1))
		return tls_fail(EINVAL, "cannot set the session id context: %s", ossl_reason());
	if (verify != TLS_VERIFY_NONE) {
		r = ctx_set_client_ca(ctx, ca_path, verify);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(ctx);
	return 0;
}

int tls_cert_fingerprint(X509 *cert, char ret[static TLS_FINGERPRINT_SIZE])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;

	if (!cert || X509_digest(cert, EVP_sha256(), md, &n) != 1 || n != 32)
		return tls_fail(EINVAL, "cannot compute a SHA-256 fingerprint");
	for (unsigned i = 0; i < n; i++)
		snprintf(ret + 3 * i, 4, i + 1 < n ? "%02X:" : "%02X", md[i]);
	return 0;
}

int tls_file_fingerprint(const char *path, char ret[static TLS_FINGERPRINT_SIZE])
{
	_cleanup_(x509_stack_freep) STACK_OF(X509) *sk = NULL;
	int r;

	r = read_certs(path, "certificate", &sk);
	if (r < 0)
		return r;
	return tls_cert_fingerprint(sk_X509_value(sk, 0), ret);
}

int tls_cert_subject(X509 *cert, char **ret)
{
	_cleanup_(BIO_free_allp) BIO *bio = BIO_new(BIO_s_mem());
	char *p, *s;
	long len;

	if (!cert)
		return -EINVAL;
	if (!bio || X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) < 0)
		return tls_fail(ENOMEM, "cannot format the subject: %s", ossl_reason());
	len = BIO_get_mem_data(bio, &p);
	s = strndup(p, (size_t)len);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}
