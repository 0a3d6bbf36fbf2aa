#ifndef REENCRYPTD_COPENSSL_SHIM_H
#define REENCRYPTD_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <openssl/md5.h>
#include <openssl/crypto.h>

// One-shot digests through the EVP interface (the low-level MD5()/SHA256() calls are deprecated in OpenSSL 3).
static inline int reencryptd_sha256(const void *data, size_t len, unsigned char out[32]) {
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}
static inline int reencryptd_md5(const void *data, size_t len, unsigned char out[16]) {
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, EVP_md5(), NULL);
}
// HMAC-SHA256 in one call; returns NULL on failure.
static inline unsigned char *reencryptd_hmac_sha256(const void *key, int keylen, const void *data, size_t len,
                                                     unsigned char out[32]) {
    unsigned int n = 0;
    return HMAC(EVP_sha256(), key, keylen, (const unsigned char *)data, len, out, &n);
}
// Streaming MD5 (manifest files are checked against their MD5checksum without holding them in memory).
static inline EVP_MD_CTX *reencryptd_md5_begin(void) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1) { EVP_MD_CTX_free(ctx); return NULL; }
    return ctx;
}
static inline EVP_MD_CTX *reencryptd_sha256_begin(void) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) { EVP_MD_CTX_free(ctx); return NULL; }
    return ctx;
}
static inline int reencryptd_digest_update(EVP_MD_CTX *ctx, const void *data, size_t len) {
    return EVP_DigestUpdate(ctx, data, len);
}
static inline int reencryptd_digest_final(EVP_MD_CTX *ctx, unsigned char *out) {
    unsigned int n = 0;
    int rc = EVP_DigestFinal_ex(ctx, out, &n);
    EVP_MD_CTX_free(ctx);
    return rc;
}
static inline void reencryptd_digest_free(EVP_MD_CTX *ctx) { EVP_MD_CTX_free(ctx); }
#endif
