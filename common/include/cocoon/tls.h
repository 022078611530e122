/* TLS helpers on OpenSSL 3: certificate/key files, CA bundles, server contexts, self-signed
 * certificates (the kubelet API default) and SHA-256 fingerprints.
 *
 * File errors return -errno and leave a sentence naming the file and the problem in
 * tls_last_error() (like dlerror()), so a daemon can log exactly what is wrong:
 *   -ENOENT        the file does not exist
 *   -EACCES, …     it cannot be read (the open/read error)
 *   -EFBIG         it is larger than TLS_FILE_MAX
 *   -EBADMSG       it holds no usable PEM certificate / key, or a block is malformed
 *   -EKEYREJECTED  the private key does not belong to the certificate */
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "cocoon/macro.h"

/* Certificate, key and CA files are small; anything bigger is refused. */
#define TLS_FILE_MAX (1024 * 1024)

/* "AB:CD:…:EF": 32 bytes as two hex digits each, joined by colons, plus the NUL. */
#define TLS_FINGERPRINT_SIZE (32 * 3)

enum tls_verify {
	TLS_VERIFY_NONE,     /* no client certificate is requested */
	TLS_VERIFY_OPTIONAL, /* requested; one that is sent must verify against the CA */
	TLS_VERIFY_REQUIRE,  /* the handshake fails without a client certificate that verifies */
};

struct tls_keypair {
	X509 *cert;             /* the leaf */
	STACK_OF(X509) * chain; /* certificates after the leaf in the file (never NULL) */
	EVP_PKEY *key;
};

/* The message of the last failure in this module ("" if none). Valid until the next call. */
const char *tls_last_error(void);

/* "none", "optional", "require" (and back). from_string returns the enum or -EINVAL. */
const char *tls_verify_to_string(enum tls_verify v);
int tls_verify_from_string(const char *s);

/* Load a PEM certificate chain (leaf first) and its unencrypted PEM private key, and check
 * that they belong together. */
int tls_keypair_load(const char *cert_path, const char *key_path, struct tls_keypair **ret);
/* A fresh ECDSA P-256 key and a self-signed certificate for it: subject CN=common_name,
 * subjectAltName from sans (NULL-terminated; IPv4/IPv6 literals become IP entries, anything
 * else a DNS entry), valid from an hour ago (clock skew) for days days. Usable for both
 * server and client authentication, and as its own trust anchor. */
int tls_keypair_new_self_signed(const char *common_name, char *const *sans, unsigned days,
				struct tls_keypair **ret);
/* Write the chain to cert_path (0644) and the key to key_path (0600, PKCS#8), each
 * atomically (temporary file, fsync, rename, fsync of the directory). */
int tls_keypair_write_pem(const struct tls_keypair *kp, const char *cert_path,
			  const char *key_path);
void tls_keypair_free(struct tls_keypair *kp);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct tls_keypair *, tls_keypair_free);

/* Every certificate of a PEM bundle (at least one). */
int tls_load_ca_bundle(const char *path, STACK_OF(X509) * *ret);

/* A server context: TLS >= 1.2, forward-secret AEAD ciphers only, no renegotiation, the
 * keypair (and its chain), and client certificates verified against ca_path as verify says
 * (ca_path is required unless verify is TLS_VERIFY_NONE). */
int tls_server_ctx_new(const struct tls_keypair *kp, const char *ca_path, enum tls_verify verify,
		       SSL_CTX **ret);

/* SHA-256 over the DER encoding, as uppercase hex pairs joined by ':' (what
 * `openssl x509 -fingerprint -sha256` prints). */
int tls_cert_fingerprint(X509 *cert, char ret[static TLS_FINGERPRINT_SIZE]);
/* The fingerprint of the first certificate in a PEM file. */
int tls_file_fingerprint(const char *path, char ret[static TLS_FINGERPRINT_SIZE]);
/* The subject as an RFC 2253 string ("CN=kubelet,O=system:nodes"). */
int tls_cert_subject(X509 *cert, char **ret);
