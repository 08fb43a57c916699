/* gateway/retry.c and gateway/rate.c: the SPEC §5 retry classes, Retry-After in its every
 * form, back-off bounds with jitter, and the token bucket, all on pinned clocks. */
#include <string.h>

#include <curl/curl.h>

#include "check.h"
#include "gateway/rate.h"
#include "gateway/retry.h"

/* 2015-10-21 07:28:00 UTC */
#define NOW 1445412480

static zd_gw_result classify(int curl_rc, long status, const char *after)
{
    zd_gw_result r;
    zd_retry_classify(curl_rc, status, after, NOW, 5000, &r);
    return r;
}

static void test_http_classes(void)
{
    for (long s = 200; s <= 299; s++)
        CHECK_INT(classify(0, s, NULL).outcome, ZD_GW_DELIVERED);
    long transient[] = {408, 429, 500, 502, 503, 504, 599};
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++) {
        zd_gw_result r = classify(0, transient[i], NULL);
        CHECK_INT(r.outcome, ZD_GW_TRANSIENT);
        CHECK_INT(r.http_status, transient[i]);
        CHECK_INT(r.retry_after_ms, 0);
    }
    long permanent[] = {400, 401, 403, 404, 405, 409, 410, 413, 422, 499, 301, 302, 307};
    for (size_t i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++)
        CHECK_INT(classify(0, permanent[i], NULL).outcome, ZD_GW_PERMANENT);
    zd_gw_result r = classify(0, 302, NULL);
    CHECK(strstr(r.detail, "redirects are not followed") != NULL);
    CHECK_STR(classify(0, 503, NULL).detail, "HTTP 503");
    /* Retry-After counts on a transient answer only. */
    CHECK_INT(classify(0, 429, "7").retry_after_ms, 7000);
    CHECK_INT(classify(0, 503, "7").retry_after_ms, 7000);
    CHECK_INT(classify(0, 400, "7").retry_after_ms, 0);
    CHECK_INT(classify(0, 200, "7").retry_after_ms, 0);
    CHECK_INT(classify(0, 429, "soon").retry_after_ms, 0);
}

static void test_transport_classes(void)
{
    int transient[] = {CURLE_OPERATION_TIMEDOUT, CURLE_COULDNT_CONNECT,
                       CURLE_GOT_NOTHING,        CURLE_RECV_ERROR,
                       CURLE_SEND_ERROR,         CURLE_COULDNT_RESOLVE_HOST,
                       CURLE_SSL_CONNECT_ERROR,  CURLE_PEER_FAILED_VERIFICATION,
                       CURLE_WRITE_ERROR,        CURLE_HTTP2,
                       CURLE_PARTIAL_FILE};
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++) {
        zd_gw_result r = classify(transient[i], 0, NULL);
        CHECK_INT(r.outcome, ZD_GW_TRANSIENT);
        CHECK_INT(r.http_status, 0);
    }
    CHECK(strstr(classify(CURLE_OPERATION_TIMEDOUT, 0, NULL).detail, "5000 ms") != NULL);
    CHECK_STR(classify(CURLE_GOT_NOTHING, 0, NULL).detail, "connection closed without an answer");
    CHECK_INT(classify(CURLE_URL_MALFORMAT, 0, NULL).outcome, ZD_GW_PERMANENT);
    CHECK_INT(classify(CURLE_UNSUPPORTED_PROTOCOL, 0, NULL).outcome, ZD_GW_PERMANENT);
    /* A transport error wins over whatever status libcurl saw before it. */
    CHECK_INT(classify(CURLE_RECV_ERROR, 200, NULL).outcome, ZD_GW_TRANSIENT);
}

static void test_retry_after(void)
{
    CHECK_INT(zd_retry_after_parse("0", NOW), 0);
    CHECK_INT(zd_retry_after_parse("120", NOW), 120000);
    CHECK_INT(zd_retry_after_parse(" 3 ", NOW), 3000);
    CHECK_INT(zd_retry_after_parse("99999999999999999999", NOW), ZD_RETRY_AFTER_MAX_MS);
    CHECK_INT(zd_retry_after_parse("86401", NOW), ZD_RETRY_AFTER_MAX_MS);
    CHECK_INT(zd_retry_after_parse("-1", NOW), -1);
    CHECK_INT(zd_retry_after_parse("1.5", NOW), -1);
    CHECK_INT(zd_retry_after_parse("", NOW), -1);
    /* The three date forms of RFC 9110, 90 s after NOW. */
    CHECK_INT(zd_retry_after_parse("Wed, 21 Oct 2015 07:29:30 GMT", NOW), 90000);
    CHECK_INT(zd_retry_after_parse("Wednesday, 21-Oct-15 07:29:30 GMT", NOW), 90000);
    CHECK_INT(zd_retry_after_parse("Wed Oct 21 07:29:30 2015", NOW), 90000);
    CHECK_INT(zd_retry_after_parse("Thu Oct  1 07:28:00 2015", NOW), 0); /* in the past */
    CHECK_INT(zd_retry_after_parse("Thu, 22 Oct 2015 07:28:00 GMT", NOW), 86400000);
    CHECK_INT(zd_retry_after_parse("Sat, 22 Oct 2016 07:28:00 GMT", NOW), ZD_RETRY_AFTER_MAX_MS);
    CHECK_INT(zd_retry_after_parse("Wed, 21 Oct 2015 07:29:30 UTC", NOW), -1);
    CHECK_INT(zd_retry_after_parse("Wed, 21 Foo 2015 07:29:30 GMT", NOW), -1);
    CHECK_INT(zd_retry_after_parse("Wed, 21 Oct 2015 25:29:30 GMT", NOW), -1);
    CHECK_INT(zd_retry_after_parse("Wed, 21 Oct 2015 07:29:30 GMT trailing", NOW), -1);
}

static void test_backoff(void)
{
    /* Attempt k: d = min(max, base * 2^(k-1)); the jittered delay lies in [d/2, d]. */
    for (int attempt = 1; attempt <= 40; attempt++) {
        long d = 1000;
        for (int i = 1; i < attempt && d < 60000; i++)
            d = d * 2 > 60000 ? 60000 : d * 2;
        long lo = 1L << 30, hi = 0;
        for (uint32_t rnd = 0; rnd < 5000; rnd++) {
            long v = zd_retry_backoff_ms(attempt, 1000, 60000, rnd * 2654435761u);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        CHECK(lo >= d / 2 && hi <= d);
        /* The jitter spreads: both ends of the range are (nearly) reached. */
        CHECK(lo < d / 2 + d / 20 && hi > d - d / 20);
    }
    CHECK_INT(zd_retry_backoff_ms(1, 1000, 60000, 0), 500);
    CHECK_INT(zd_retry_backoff_ms(1, 1000, 60000, 500), 1000);
    CHECK_INT(zd_retry_backoff_ms(1000000, 1000, 60000, 0), 30000);
    /* Retry-After longer than the back-off wins; shorter does not shorten it. */
    zd_gw_result r = {.outcome = ZD_GW_TRANSIENT, .retry_after_ms = 120000};
    CHECK_INT(zd_retry_delay_ms(&r, 1, 1000, 60000, 0), 120000);
    r.retry_after_ms = 10;
    CHECK_INT(zd_retry_delay_ms(&r, 3, 1000, 60000, 0), 2000);
}

static void test_rate(void)
{
    zd_rate r;
    /* Unlimited: never waits. */
    zd_rate_init(&r, 0, 0);
    for (int i = 0; i < 1000; i++)
        CHECK_INT(zd_rate_take(&r, 0), 0);
    /* 100/s: a burst of 10, then one every 10 ms. */
    zd_rate_init(&r, 100, 0);
    for (int i = 0; i < 10; i++)
        CHECK_INT(zd_rate_take(&r, 0), 0);
    int64_t wait = zd_rate_take(&r, 0);
    CHECK(wait > 9000 && wait <= 10001);
    CHECK(zd_rate_take(&r, 5000) > 0);
    CHECK_INT(zd_rate_take(&r, 10001), 0);
    /* Over one simulated second starting with a full bucket, at most 100 + 10 pass. */
    zd_rate_init(&r, 100, 0);
    int passed = 0;
    for (int64_t t = 0; t < 1000000; t += 100)
        passed += zd_rate_take(&r, t) == 0;
    CHECK(passed >= 100 && passed <= 110);
    /* 0.5/s: one now, the next two seconds later. */
    zd_rate_init(&r, 0.5, 0);
    CHECK_INT(zd_rate_take(&r, 0), 0);
    wait = zd_rate_take(&r, 0);
    CHECK(wait >= 1999999 && wait <= 2000001);
}

int main(void)
{
    test_http_classes();
    test_transport_classes();
    test_retry_after();
    test_backoff();
    test_rate();
    return check_report("retry");
}
