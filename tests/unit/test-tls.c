/* tls: self-signed generation → PEM files → load round trip, key/certificate mismatch,
 * errors that name the file for missing, unreadable, non-PEM and malformed input, stable
 * fingerprints, and real handshakes (server context, client-certificate verification). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "cocoon/tls.h"

struct fixture {
	char dir[64];
	char cert[128], key[128], other[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	strcpy(f->dir, "/tmp/test-tls-XXXXXX");
	if (!f || !mkdtemp(f->dir))
		return -1;
	snprintf(f->cert, sizeof f->cert, "%s/cert.pem", f->dir);
	snprintf(f->key, sizeof f->key, "%s/key.pem", f->dir);
	snprintf(f->other, sizeof f->other, "%s/other.pem", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	unlink(f->cert);
	unlink(f->key);
	unlink(f->other);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void write_text(const char *path, const char *text)
{
	FILE *fp = fopen(path, "we");

	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

static struct tls_keypair *generate(const char *cn)
{
	char *sans[] = { "node-1.example", "localhost", "10.0.0.5", "::1", NULL };
	struct tls_keypair *kp = NULL;

	assert_int_equal(tls_keypair_new_self_signed(cn, sans, 30, &kp), 0);
	assert_non_null(kp);
	return kp;
}

/* The SHA-256 of the DER encoding, computed independently of tls.c. */
static void expected_fingerprint(X509 *cert, char out[TLS_FINGERPRINT_SIZE])
{
	unsigned char *der = NULL, md[32];
	int len = i2d_X509(cert, &der);
	unsigned mdlen = 0;

	assert_true(len > 0);
	assert_int_equal(EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL), 1);
	OPENSSL_free(der);
	for (unsigned i = 0; i < mdlen; i++)
		sprintf(out + 3 * i, i + 1 < mdlen ? "%02X:" : "%02X", md[i]);
}

static void test_generate_write_load(void **state)
{
	struct fixture *f = *state;
	_cleanup_(tls_keypair_freep) struct tls_keypair *kp = generate("node-1");
	_cleanup_(tls_keypair_freep) struct tls_keypair *loaded = NULL;
	char fp1[TLS_FINGERPRINT_SIZE], fp2[TLS_FINGERPRINT_SIZE];
	GENERAL_NAMES *sans;
	char *subject = NULL;
	struct stat st;
	int days, secs;

	assert_int_equal(tls_keypair_write_pem(kp, f->cert, f->key), 0);
	assert_int_equal(stat(f->key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(f->cert, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);

	assert_int_equal(tls_keypair_load(f->cert, f->key, &loaded), 0);
	assert_int_equal(sk_X509_num(loaded->chain), 0);
	assert_int_equal(X509_cmp(kp->cert, loaded->cert), 0);
	assert_int_equal(EVP_PKEY_eq(kp->key, loaded->key), 1);
	assert_int_equal(EVP_PKEY_get_base_id(loaded->key), EVP_PKEY_EC);

	assert_int_equal(tls_cert_subject(loaded->cert, &subject), 0);
	assert_string_equal(subject, "CN=node-1");
	free(subject);

	sans = X509_get_ext_d2i(loaded->cert, NID_subject_alt_name, NULL, NULL);
	assert_non_null(sans);
	assert_int_equal(sk_GENERAL_NAME_num(sans), 4);
	assert_int_equal(X509_check_host(loaded->cert, "node-1.example", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(loaded->cert, "10.0.0.5", 0), 1);
	assert_int_equal(X509_check_ip_asc(loaded->cert, "::1", 0), 1);
	assert_int_equal(X509_check_host(loaded->cert, "other.example", 0, 0, NULL), 0);
	GENERAL_NAMES_free(sans);

	/* Valid from (about) an hour ago for 30 days. */
	assert_int_equal(ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(loaded->cert)), 1);
	assert_true(days == 29 || days == 30);
	assert_true(X509_cmp_current_time(X509_get0_notBefore(loaded->cert)) < 0);

	assert_int_equal(tls_cert_fingerprint(kp->cert, fp1), 0);
	assert_int_equal(tls_file_fingerprint(f->cert, fp2), 0);
	assert_string_equal(fp1, fp2);
}

static void test_mismatched_key(void **state)
{
	struct fixture *f = *state;
	_cleanup_(tls_keypair_freep) struct tls_keypair *a = generate("a");
	_cleanup_(tls_keypair_freep) struct tls_keypair *b = generate("b");
	_cleanup_(tls_keypair_freep) struct tls_keypair *loaded = NULL;
	char expected[512];

	assert_int_equal(tls_keypair_write_pem(a, f->cert, f->other), 0);
	assert_int_equal(tls_keypair_write_pem(b, f->other, f->key), 0);
	/* cert.pem holds a's certificate, key.pem b's key. */
	assert_int_equal(tls_keypair_load(f->cert, f->key, &loaded), -EKEYREJECTED);
	assert_null(loaded);
	snprintf(expected, sizeof expected, "%s: private key does not match the certificate in %s",
		 f->key, f->cert);
	assert_string_equal(tls_last_error(), expected);
}

static void test_file_errors(void **state)
{
	struct fixture *f = *state;
	_cleanup_(tls_keypair_freep) struct tls_keypair *kp = generate("x");
	struct tls_keypair *loaded = NULL;
	STACK_OF(X509) *cas = NULL;
	char expected[512];
	BIO *bio;

	/* Missing. */
	assert_int_equal(tls_keypair_load(f->cert, f->key, &loaded), -ENOENT);
	snprintf(expected, sizeof expected, "%s: certificate file does not exist", f->cert);
	assert_string_equal(tls_last_error(), expected);

	/* Not PEM at all. */
	write_text(f->cert, "this is not a certificate\n");
	assert_int_equal(tls_keypair_load(f->cert, f->key, &loaded), -EBADMSG);
	snprintf(expected, sizeof expected,
		 "%s: not a PEM certificate file (no \"-----BEGIN CERTIFICATE-----\" block)",
		 f->cert);
	assert_string_equal(tls_last_error(), expected);

	/* A PEM block with broken contents. */
	write_text(f->cert, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n"
			    "-----END CERTIFICATE-----\n");
	assert_int_equal(tls_keypair_load(f->cert, f->key, &loaded), -EBADMSG);
	snprintf(expected, sizeof expected, "%s: PEM certificate 1 is malformed: ", f->cert);
	assert_memory_equal(tls_last_error(), expected, strlen(expected));

	/* Unreadable (a directory: open works, read fails, whatever our uid). */
	assert_int_equal(tls_keypair_load(f->dir, f->key, &loaded), -EISDIR);
	snprintf(expected, sizeof expected, "%s: cannot read certificate file: Is a directory",
		 f->dir);
	assert_string_equal(tls_last_error(), expected);

	/* A good certificate, then a key file that holds no key. */
	assert_int_equal(tls_keypair_write_pem(kp, f->cert, f->other), 0);
	write_text(f->key, "garbage\n");
	assert_int_equal(tls_keypair_load(f->cert, f->key, &loaded), -EBADMSG);
	snprintf(expected, sizeof expected,
		 "%s: not a PEM private key file (no \"-----BEGIN ... PRIVATE KEY-----\" block)",
		 f->key);
	assert_string_equal(tls_last_error(), expected);
	assert_null(loaded);

	/* An encrypted key: said so, not "bad decrypt". */
	bio = BIO_new_file(f->key, "w");
	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_PrivateKey(bio, kp->key, EVP_aes_128_cbc(),
						  (unsigned char *)"pw", 2, NULL, NULL),
			 1);
	BIO_free(bio);
	assert_int_equal(tls_keypair_load(f->cert, f->key, &loaded), -EBADMSG);
	snprintf(expected, sizeof expected,
		 "%s: the private key is encrypted, which is not supported", f->key);
	assert_string_equal(tls_last_error(), expected);

	/* A CA bundle without certificates. */
	assert_int_equal(tls_load_ca_bundle(f->key, &cas), -EBADMSG);
	assert_non_null(strstr(tls_last_error(), "not a PEM CA bundle file"));
	assert_null(cas);
}

static void test_chain_and_bundle(void **state)
{
	struct fixture *f = *state;
	_cleanup_(tls_keypair_freep) struct tls_keypair *leaf = generate("leaf");
	_cleanup_(tls_keypair_freep) struct tls_keypair *inter = generate("intermediate");
	_cleanup_(tls_keypair_freep) struct tls_keypair *loaded = NULL;
	STACK_OF(X509) *cas = NULL;

	/* cert.pem = leaf + "intermediate", key.pem = leaf's key. */
	assert_int_equal(sk_X509_push(leaf->chain, X509_dup(inter->cert)), 1);
	assert_int_equal(tls_keypair_write_pem(leaf, f->cert, f->key), 0);
	assert_int_equal(tls_keypair_load(f->cert, f->key, &loaded), 0);
	assert_int_equal(sk_X509_num(loaded->chain), 1);
	assert_int_equal(X509_cmp(sk_X509_value(loaded->chain, 0), inter->cert), 0);

	assert_int_equal(tls_load_ca_bundle(f->cert, &cas), 0);
	assert_int_equal(sk_X509_num(cas), 2);
	sk_X509_pop_free(cas, X509_free);
}

static void test_fingerprint_stable(void **state)
{
	struct fixture *f = *state;
	_cleanup_(tls_keypair_freep) struct tls_keypair *kp = generate("fp");
	_cleanup_(tls_keypair_freep) struct tls_keypair *other = generate("fp");
	char a[TLS_FINGERPRINT_SIZE], b[TLS_FINGERPRINT_SIZE], want[TLS_FINGERPRINT_SIZE];

	assert_int_equal(tls_keypair_write_pem(kp, f->cert, f->key), 0);
	assert_int_equal(tls_file_fingerprint(f->cert, a), 0);
	assert_int_equal(tls_file_fingerprint(f->cert, b), 0);
	assert_string_equal(a, b);
	expected_fingerprint(kp->cert, want);
	assert_string_equal(a, want);
	assert_int_equal(strlen(a), 95);
	for (int i = 0; i < 95; i++)
		assert_true(i % 3 == 2 ? a[i] == ':' : strchr("0123456789ABCDEF", a[i]) != NULL);
	/* Same subject, new key and serial: a different certificate. */
	assert_int_equal(tls_cert_fingerprint(other->cert, b), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(tls_file_fingerprint(f->key, b), -EBADMSG);
}

static void test_bad_parameters(void **state)
{
	char *bad_san[] = { "not a name!", NULL };
	char long_cn[80];
	struct tls_keypair *kp = NULL;
	SSL_CTX *ctx = NULL;

	assert_int_equal(tls_keypair_new_self_signed("x", bad_san, 1, &kp), -EINVAL);
	assert_string_equal(tls_last_error(), "subject alternative name \"not a name!\" is neither "
					      "an IP address nor a DNS name");
	memset(long_cn, 'a', sizeof long_cn - 1);
	long_cn[sizeof long_cn - 1] = 0;
	assert_int_equal(tls_keypair_new_self_signed(long_cn, NULL, 1, &kp), -EINVAL);
	assert_int_equal(tls_keypair_new_self_signed("x", NULL, 0, &kp), -EINVAL);
	assert_null(kp);

	kp = generate("ctx");
	assert_int_equal(tls_server_ctx_new(kp, NULL, TLS_VERIFY_REQUIRE, &ctx), -EINVAL);
	assert_string_equal(tls_last_error(),
			    "client certificate verification \"require\" needs a CA bundle");
	assert_null(ctx);
	tls_keypair_free(kp);

	assert_int_equal(tls_verify_from_string("optional"), TLS_VERIFY_OPTIONAL);
	assert_int_equal(tls_verify_from_string("require"), TLS_VERIFY_REQUIRE);
	assert_int_equal(tls_verify_from_string("none"), TLS_VERIFY_NONE);
	assert_int_equal(tls_verify_from_string("sometimes"), -EINVAL);
	assert_string_equal(tls_verify_to_string(TLS_VERIFY_OPTIONAL), "optional");
}

/* Drive a client and a server SSL over a memory BIO pair until both finish (or one fails). */
static int handshake(SSL *client, SSL *server)
{
	for (int i = 0; i < 100; i++) {
		int rc = SSL_do_handshake(client), rs = SSL_do_handshake(server);

		if (rc == 1 && rs == 1)
			return 0;
		if ((rc != 1 && SSL_get_error(client, rc) != SSL_ERROR_WANT_READ) ||
		    (rs != 1 && SSL_get_error(server, rs) != SSL_ERROR_WANT_READ))
			return -1;
	}
	return -1;
}

/* The client trusts the self-signed server certificate as its CA and checks the name; the
 * server requires a client certificate issued by (here: equal to) its CA bundle. */
static int try_handshake(const struct tls_keypair *server_kp, const char *ca_path,
			 enum tls_verify verify, const struct tls_keypair *client_kp,
			 const char *host)
{
	SSL_CTX *sctx = NULL, *cctx = SSL_CTX_new(TLS_client_method());
	SSL *s, *c;
	BIO *bs, *bc;
	int r;

	assert_int_equal(tls_server_ctx_new(server_kp, ca_path, verify, &sctx), 0);
	assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), server_kp->cert), 1);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
	if (client_kp) {
		assert_int_equal(SSL_CTX_use_certificate(cctx, client_kp->cert), 1);
		assert_int_equal(SSL_CTX_use_PrivateKey(cctx, client_kp->key), 1);
	}
	s = SSL_new(sctx);
	c = SSL_new(cctx);
	assert_int_equal(BIO_new_bio_pair(&bs, 0, &bc, 0), 1);
	SSL_set_bio(s, bs, bs);
	SSL_set_bio(c, bc, bc);
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	assert_int_equal(SSL_set1_host(c, host), 1);
	/* TLS 1.2 so the server's verdict on the client certificate ends the handshake. */
	SSL_set_max_proto_version(c, TLS1_2_VERSION);
	r = handshake(c, s);
	SSL_free(s);
	SSL_free(c);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	ERR_clear_error();
	return r;
}

static void test_handshakes(void **state)
{
	struct fixture *f = *state;
	_cleanup_(tls_keypair_freep) struct tls_keypair *server = generate("server");
	_cleanup_(tls_keypair_freep) struct tls_keypair *client = generate("client");
	_cleanup_(tls_keypair_freep) struct tls_keypair *stranger = generate("client");

	/* The client CA bundle is the client's own self-signed certificate. */
	assert_int_equal(tls_keypair_write_pem(client, f->cert, f->key), 0);

	assert_int_equal(try_handshake(server, NULL, TLS_VERIFY_NONE, NULL, "node-1.example"), 0);
	assert_int_equal(try_handshake(server, NULL, TLS_VERIFY_NONE, NULL, "wrong.example"), -1);
	assert_int_equal(try_handshake(server, f->cert, TLS_VERIFY_REQUIRE, client, "localhost"),
			 0);
	assert_int_equal(try_handshake(server, f->cert, TLS_VERIFY_REQUIRE, NULL, "localhost"), -1);
	assert_int_equal(try_handshake(server, f->cert, TLS_VERIFY_REQUIRE, stranger, "localhost"),
			 -1);
	assert_int_equal(try_handshake(server, f->cert, TLS_VERIFY_OPTIONAL, NULL, "localhost"), 0);
	assert_int_equal(try_handshake(server, f->cert, TLS_VERIFY_OPTIONAL, stranger, "localhost"),
			 -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_generate_write_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mismatched_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chain_and_bundle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fingerprint_stable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_parameters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handshakes, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
