/* gateway/sign.c: Standard Webhooks secrets and signatures against known answers, and the
 * base64 and SHA-256 helpers.
 *
 * How the expected values were made (at authoring time, with the OpenSSL command line, not
 * with the code under test):
 *   key=$(echo -n MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw | base64 -d | xxd -p -c 256)
 *   printf '%s' 'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}' |
 *     openssl dgst -sha256 -mac HMAC -macopt hexkey:$key -binary | base64
 *   -> g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=   (also the Standard Webhooks spec's own
 *      example: same secret, id, timestamp and payload)
 *   key2=$(printf 'zhida-test-secret-number-two-32b' | xxd -p -c 256)
 *   printf '%s' 'p1:c0000042:zlb.1700000000.{"notices":[]}' |
 *     openssl dgst -sha256 -mac HMAC -macopt hexkey:$key2 -binary | base64
 *   -> AsoBYPfXC7Qs4vpp5Xr5XmcOEcaQ7FN4C6pB3wXRqgM=
 *   printf 'p1:a\np1:b\n' | openssl dgst -sha256 -r | cut -c1-32
 *   -> 8655fd4667e462fb9b3910b174bcb35c  (the batch id of notices p1:a, p1:b) */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "gateway/sign.h"
#include "gateway/wire.h"

static void test_spec_vector(void)
{
    zd_sign_key k;
    char err[128];
    CHECK_INT(zd_sign_key_parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &k, err, sizeof(err)), 0);
    CHECK_INT(k.len, 24);
    const char *body = "{\"test\": 2432232314}";
    char sig[ZD_SIGN_SIG_LEN];
    CHECK_INT(zd_sign(&k, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body, strlen(body), sig),
              0);
    CHECK_STR(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    /* One byte more of body changes the signature. */
    CHECK_INT(
        zd_sign(&k, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body, strlen(body) - 1, sig), 0);
    CHECK(strcmp(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=") != 0);
    /* A signer gives the same answers, again and again (its HMAC is re-initialized). */
    zd_signer *s = zd_signer_new(&k);
    CHECK(s != NULL);
    for (int i = 0; s && i < 3; i++) {
        memset(sig, 0, sizeof(sig));
        CHECK_INT(zd_signer_sign(s, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body,
                                 strlen(body), sig),
                  0);
        CHECK_STR(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        CHECK_INT(zd_signer_sign(s, "other", "1614265330", body, strlen(body), sig), 0);
        CHECK(strcmp(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=") != 0);
    }
    zd_signer_free(s);
    zd_signer_free(NULL);
}

static void test_own_vector(void)
{
    zd_sign_key k;
    char err[128];
    CHECK_INT(zd_sign_key_parse("whsec_emhpZGEtdGVzdC1zZWNyZXQtbnVtYmVyLXR3by0zMmI=", &k, err,
                                sizeof(err)),
              0);
    CHECK_INT(k.len, 32);
    CHECK(memcmp(k.key, "zhida-test-secret-number-two-32b", 32) == 0);
    char sig[ZD_SIGN_SIG_LEN];
    const char *body = "{\"notices\":[]}";
    CHECK_INT(zd_sign(&k, "p1:c0000042:zlb", "1700000000", body, strlen(body), sig), 0);
    CHECK_STR(sig, "v1,AsoBYPfXC7Qs4vpp5Xr5XmcOEcaQ7FN4C6pB3wXRqgM=");
    /* Unpadded base64 is the same key. */
    zd_sign_key k2;
    CHECK_INT(zd_sign_key_parse("whsec_emhpZGEtdGVzdC1zZWNyZXQtbnVtYmVyLXR3by0zMmI", &k2, err,
                                sizeof(err)),
              0);
    CHECK(k2.len == 32 && memcmp(k.key, k2.key, 32) == 0);
}

static void test_bad_secrets(void)
{
    zd_sign_key k;
    char err[128];
    CHECK_INT(zd_sign_key_parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &k, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "whsec_") != NULL);
    CHECK_INT(zd_sign_key_parse("whsec_MfKQ9r8G KYqrTwjUPD8ILPZIo2LaLaSw", &k, err, sizeof(err)),
              -EINVAL);
    CHECK_INT(zd_sign_key_parse("whsec_MfKQ9r8G-YqrTwjUPD8ILPZIo2LaLaSw", &k, err, sizeof(err)),
              -EINVAL);
    /* 12 bytes: too short to be a key. */
    CHECK_INT(zd_sign_key_parse("whsec_MfKQ9r8GKYqrTwjU", &k, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "24..64 bytes") != NULL);
    /* The message never repeats the secret. */
    CHECK(strstr(err, "MfKQ") == NULL);
    CHECK_INT(zd_sign_key_parse("whsec_", &k, err, sizeof(err)), -EINVAL);
    CHECK_INT(zd_sign_key_parse("whsec_YQ===", &k, err, sizeof(err)), -EINVAL);
}

static void test_base64(void)
{
    char out[64];
    CHECK_INT(zd_base64_encode((const unsigned char *)"ab", 2, out), 4);
    CHECK_STR(out, "YWI=");
    CHECK_INT(zd_base64_encode((const unsigned char *)"", 0, out), 0);
    CHECK_STR(out, "");
    unsigned char bin[16];
    CHECK_INT(zd_base64_decode("YWI=", 4, bin, sizeof(bin)), 2);
    CHECK(memcmp(bin, "ab", 2) == 0);
    CHECK_INT(zd_base64_decode("YWJj", 4, bin, sizeof(bin)), 3);
    CHECK_INT(zd_base64_decode("YQ", 2, bin, sizeof(bin)), 1);
    CHECK_INT(zd_base64_decode("Y", 1, bin, sizeof(bin)), -EINVAL);
    CHECK_INT(zd_base64_decode("YW=I", 4, bin, sizeof(bin)), -EINVAL);
    CHECK_INT(zd_base64_decode("YWJjYWJj", 8, bin, 5), -ENOSPC);
}

static void test_batch_id(void)
{
    zd_notice n[2] = {{.id = "p1:a"}, {.id = "p1:b"}};
    char id[ZD_WIRE_BATCH_ID_LEN];
    CHECK_INT(zd_wire_batch_id(n, 2, id), 0);
    CHECK_STR(id, "batch_8655fd4667e462fb9b3910b174bcb35c");
    unsigned char md[32];
    CHECK_INT(zd_sha256("p1:a\np1:b\n", 10, md), 0);
    CHECK_INT(md[0], 0x86);
}

int main(void)
{
    test_spec_vector();
    test_own_vector();
    test_bad_secrets();
    test_base64();
    test_batch_id();
    return check_report("sign");
}
