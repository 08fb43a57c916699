/* Standard Webhooks signing (https://www.standardwebhooks.com): secrets "whsec_<base64>",
 * signatures "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>", and the SHA-256 and base64
 * helpers around them. All cryptography is OpenSSL's libcrypto. */
#ifndef ZD_SIGN_H
#define ZD_SIGN_H

#include <stddef.h>
#include <stdint.h>

/* Decoded secrets: 24..64 bytes, the Standard Webhooks spec's range. */
#define ZD_SIGN_KEY_MIN 24
#define ZD_SIGN_KEY_MAX 64
/* "v1," + base64 of 32 bytes (44 characters) + NUL. */
#define ZD_SIGN_SIG_LEN 48

typedef struct zd_sign_key {
    unsigned char key[ZD_SIGN_KEY_MAX];
    size_t len;
} zd_sign_key;

/* Parses a "whsec_<base64>" secret (standard alphabet, padding optional) into *k. Returns 0,
 * or -EINVAL with a message in err that never contains the secret. */
int zd_sign_key_parse(const char *secret, zd_sign_key *k, char *err, size_t errlen);

/* Writes "v1,<base64 signature>" of id "." timestamp "." body[0..body_len) under k into out
 * (ZD_SIGN_SIG_LEN bytes, NUL-terminated). Returns 0, or -ENOMEM/-EIO from libcrypto. */
int zd_sign(const zd_sign_key *k, const char *id, const char *timestamp, const char *body,
            size_t body_len, char out[ZD_SIGN_SIG_LEN]);

/* A key made ready for many signatures: setting up HMAC (fetching SHA-256, hashing the key)
 * costs more than signing a small request, so a gateway keeps one per secret. */
typedef struct zd_signer zd_signer;
/* NULL on ENOMEM or a libcrypto failure. k is copied. Caller frees with zd_signer_free(). */
zd_signer *zd_signer_new(const zd_sign_key *k);
/* The same as zd_sign() with the signer's key. */
int zd_signer_sign(zd_signer *s, const char *id, const char *timestamp, const char *body,
                   size_t body_len, char out[ZD_SIGN_SIG_LEN]);
/* Wipes and frees s; NULL is a no-op. */
void zd_signer_free(zd_signer *s);

/* Base64 (standard alphabet, padded, no newlines) of in[0..len) into out, which needs
 * 4 * ((len + 2) / 3) + 1 bytes. Returns the length written (without the NUL). */
size_t zd_base64_encode(const unsigned char *in, size_t len, char *out);

/* Decodes base64 text (standard alphabet, padding optional, nothing else allowed) into out
 * (capacity cap). Returns the decoded length, or -EINVAL (bad text) / -ENOSPC (too long). */
long zd_base64_decode(const char *in, size_t len, unsigned char *out, size_t cap);

/* SHA-256 of in[0..len) into out. 0 or -EIO. */
int zd_sha256(const void *in, size_t len, unsigned char out[32]);

#endif
