#ifndef REENCRYPTD_COPENSSL_SHIM_H
#define REENCRYPTD_COPENSSL_SHIM_H
// The SHA256_* calls are deprecated in OpenSSL 3 but skip the provider lookup that EVP_Digest and HMAC() make on
// every call, which costs more than hashing a short S3 request. https://www.openssl.org/docs/man3.0/man7/migration_guide.html
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/evp.h>
#include <string.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <openssl/md5.h>
#include <openssl/crypto.h>

// SHA-256 over SHA256_CTX on the stack. OpenSSL 3's one-shot SHA256() is EVP_Q_digest, which fetches the algorithm
// by name on every call: more than hashing a canonical request costs.
static inline int reencryptd_sha256(const void *data, size_t len, unsigned char out[32]) {
    SHA256_CTX ctx;
    return SHA256_Init(&ctx) && SHA256_Update(&ctx, data, len) && SHA256_Final(out, &ctx);
}
// MD5 through the EVP interface (PutObject's Content-MD5 only: not on the hot path).
static inline int reencryptd_md5(const void *data, size_t len, unsigned char out[16]) {
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, EVP_md5(), NULL);
}
// An HMAC-SHA256 (RFC 2104) key with its two padded blocks hashed once (section 4): SigV4 signs every request of a day
// with the same derived key, so each signature then costs two SHA-256 compressions fewer.
typedef struct { SHA256_CTX inner, outer; } reencryptd_hmac_key;
static inline void reencryptd_hmac_key_init(reencryptd_hmac_key *h, const void *key, int keylen) {
    unsigned char k[64], pad[64];
    memset(k, 0, sizeof k);
    if (keylen > 64) { reencryptd_sha256(key, (size_t)keylen, k); } else { memcpy(k, key, (size_t)keylen); }
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
    SHA256_Init(&h->inner); SHA256_Update(&h->inner, pad, 64);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5c;
    SHA256_Init(&h->outer); SHA256_Update(&h->outer, pad, 64);
}
static inline void reencryptd_hmac_sha256_with(const reencryptd_hmac_key *h, const void *data, size_t len,
                                               unsigned char out[32]) {
    unsigned char inner[32];
    SHA256_CTX ctx = h->inner;
    SHA256_Update(&ctx, data, len); SHA256_Final(inner, &ctx);
    ctx = h->outer;
    SHA256_Update(&ctx, inner, 32); SHA256_Final(out, &ctx);
}
// One-shot HMAC-SHA256 (the signing-key derivation): no allocation, no provider lookup, unlike OpenSSL 3's HMAC().
static inline unsigned char *reencryptd_hmac_sha256(const void *key, int keylen, const void *data, size_t len,
                                                     unsigned char out[32]) {
    reencryptd_hmac_key h;
    reencryptd_hmac_key_init(&h, key, keylen);
    reencryptd_hmac_sha256_with(&h, data, len, out);
    return out;
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
