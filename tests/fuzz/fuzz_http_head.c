/* libFuzzer target for the request-head and chunked-body parsers (zhidad/http_head.c), which
 * read untrusted bytes as they arrive: the input, split at points taken from its first bytes,
 * must parse the same as the whole input fed at once (status, bytes used, fields), and the
 * body after the head must frame the same way too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zhidad/http_head.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "fuzz_http_head: %s\n", #x);                                           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const char *same(const char *s)
{
    return s ? s : "(null)";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t step = (size_t)data[0] % 17 + 1; /* piece size for the split feeding */
    uint64_t max_body = (uint64_t)data[1] * 16;
    const char *p = (const char *)data + 2;
    size_t n = size - 2;

    zd_head a, b;
    zd_head_init(&a, 512);
    zd_head_init(&b, 512);
    size_t used_a = 0, used_b = 0, u;
    zd_head_status sa = zd_head_feed(&a, p, n, &used_a);
    zd_head_status sb = ZD_HEAD_MORE;
    while (used_b < n && sb == ZD_HEAD_MORE) {
        size_t k = n - used_b < step ? n - used_b : step;
        sb = zd_head_feed(&b, p + used_b, k, &u);
        CHECK(u <= k);
        used_b += u;
        if (u < k)
            break;
    }
    CHECK(sa == sb);
    if (sa == ZD_HEAD_DONE || sa == ZD_HEAD_MORE)
        CHECK(used_a == used_b);
    if (sa == ZD_HEAD_DONE) {
        CHECK(strcmp(a.method, b.method) == 0 && strcmp(a.target, b.target) == 0);
        CHECK(strcmp(same(a.authorization), same(b.authorization)) == 0);
        CHECK(a.content_length == b.content_length && a.chunked == b.chunked);
        if (a.chunked) {
            zd_chunked ca, cb;
            zd_chunked_init(&ca, max_body, 128);
            zd_chunked_init(&cb, max_body, 128);
            size_t ua = 0, ub = 0;
            zd_chunked_status ta = zd_chunked_feed(&ca, p + used_a, n - used_a, &ua);
            zd_chunked_status tb = ZD_CHUNKED_MORE;
            while (used_a + ub < n && tb == ZD_CHUNKED_MORE) {
                size_t left = n - used_a - ub, k = left < step ? left : step;
                tb = zd_chunked_feed(&cb, p + used_a + ub, k, &u);
                CHECK(u <= k);
                ub += u;
                if (u < k)
                    break;
            }
            CHECK(ta == tb);
            if (ta == ZD_CHUNKED_DONE || ta == ZD_CHUNKED_MORE)
                CHECK(ua == ub && ca.total == cb.total);
            CHECK(ca.total <= max_body);
        }
    }
    zd_head_free(&a);
    zd_head_free(&b);
    return 0;
}
