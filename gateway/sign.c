/* Standard Webhooks signatures with OpenSSL's libcrypto: HMAC-SHA256 through EVP_MAC, base64
 * through EVP_Encode/DecodeBlock. Nothing cryptographic is written here by hand. */
#include "gateway/sign.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>

size_t zd_base64_encode(const unsigned char *in, size_t len, char *out)
{
    /* EVP_EncodeBlock writes no newlines and NUL-terminates. */
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

static int b64_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

long zd_base64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    /* EVP_DecodeBlock skips whitespace and insists on padding; check the text strictly here
     * and pad it, so that "YWI" and "YWI=" both decode and "Y WI" does not. */
    size_t data = len;
    while (data > 0 && in[data - 1] == '=')
        data--;
    if (len - data > 2 || data % 4 == 1 || len > 4096)
        return -EINVAL;
    for (size_t i = 0; i < data; i++) {
        if (!b64_char((unsigned char)in[i]))
            return -EINVAL;
    }
    char padded[4100];
    memcpy(padded, in, data);
    size_t plen = data;
    while (plen % 4)
        padded[plen++] = '=';
    size_t need = plen / 4 * 3;
    unsigned char tmp[3076];
    int n = EVP_DecodeBlock(tmp, (const unsigned char *)padded, (int)plen);
    if (n < 0)
        return -EINVAL;
    /* EVP_DecodeBlock counts the bytes the padding stands for as zeros. */
    size_t got = need - (plen - data);
    if ((size_t)n != need)
        return -EINVAL;
    if (got > cap)
        return -ENOSPC;
    memcpy(out, tmp, got);
    return (long)got;
}

int zd_sign_key_parse(const char *secret, zd_sign_key *k, char *err, size_t errlen)
{
    static const char prefix[] = "whsec_";
    memset(k, 0, sizeof(*k));
    if (strncmp(secret, prefix, sizeof(prefix) - 1) != 0) {
        snprintf(err, errlen, "must start with \"whsec_\" followed by base64");
        return -EINVAL;
    }
    const char *b64 = secret + sizeof(prefix) - 1;
    unsigned char buf[3076];
    long n = zd_base64_decode(b64, strlen(b64), buf, sizeof(buf));
    if (n < 0) {
        snprintf(err, errlen, "is not \"whsec_\" followed by standard base64");
        return -EINVAL;
    }
    if (n < ZD_SIGN_KEY_MIN || n > ZD_SIGN_KEY_MAX) {
        snprintf(err, errlen, "must decode to %d..%d bytes (it has %ld)", ZD_SIGN_KEY_MIN,
                 ZD_SIGN_KEY_MAX, n);
        return -EINVAL;
    }
    memcpy(k->key, buf, (size_t)n);
    k->len = (size_t)n;
    return 0;
}

/* The HMAC implementation, fetched once: a fetch takes a lock and a lookup in OpenSSL's
 * method store, too much to pay per request at tens of thousands of requests a second. */
static EVP_MAC *hmac_impl(void)
{
    static EVP_MAC *mac;
    if (!mac)
        mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    return mac;
}

struct zd_signer {
    EVP_MAC_CTX *ctx; /* holds the key; re-initialized per signature */
};

zd_signer *zd_signer_new(const zd_sign_key *k)
{
    EVP_MAC *mac = hmac_impl();
    zd_signer *s = calloc(1, sizeof(*s));
    if (!mac || !s)
        goto fail;
    char digest_name[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
        OSSL_PARAM_construct_end(),
    };
    if (!(s->ctx = EVP_MAC_CTX_new(mac)) || EVP_MAC_init(s->ctx, k->key, k->len, params) != 1)
        goto fail;
    return s;
fail:
    zd_signer_free(s);
    return NULL;
}

void zd_signer_free(zd_signer *s)
{
    if (!s)
        return;
    EVP_MAC_CTX_free(s->ctx); /* clears the key material */
    free(s);
}

int zd_signer_sign(zd_signer *s, const char *id, const char *timestamp, const char *body,
                   size_t body_len, char out[ZD_SIGN_SIG_LEN])
{
    unsigned char md[32];
    size_t mdlen = 0;
    /* A NULL key re-initializes HMAC with the key already set (OpenSSL 3 HMAC provider). */
    if (EVP_MAC_init(s->ctx, NULL, 0, NULL) != 1 ||
        EVP_MAC_update(s->ctx, (const unsigned char *)id, strlen(id)) != 1 ||
        EVP_MAC_update(s->ctx, (const unsigned char *)".", 1) != 1 ||
        EVP_MAC_update(s->ctx, (const unsigned char *)timestamp, strlen(timestamp)) != 1 ||
        EVP_MAC_update(s->ctx, (const unsigned char *)".", 1) != 1 ||
        EVP_MAC_update(s->ctx, (const unsigned char *)body, body_len) != 1 ||
        EVP_MAC_final(s->ctx, md, &mdlen, sizeof(md)) != 1 || mdlen != sizeof(md))
        return -EIO;
    memcpy(out, "v1,", 3);
    zd_base64_encode(md, sizeof(md), out + 3);
    return 0;
}

int zd_sign(const zd_sign_key *k, const char *id, const char *timestamp, const char *body,
            size_t body_len, char out[ZD_SIGN_SIG_LEN])
{
    zd_signer *s = zd_signer_new(k);
    if (!s)
        return -ENOMEM;
    int rc = zd_signer_sign(s, id, timestamp, body, body_len, out);
    zd_signer_free(s);
    return rc;
}

int zd_sha256(const void *in, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    if (EVP_Digest(in, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
        return -EIO;
    return 0;
}
