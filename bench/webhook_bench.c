/* zd_webhook_bench: how many notices a second the webhook gateway delivers to a local
 * receiver, through the gateway host on one libevent loop — the figure of SPEC §8 ("batch 1
 * >= 20,000 notices/s; 1M notices at batch 100 <= 30 s"). bench/webhook.sh runs it next to
 * wrk against the same nginx. Prints one "result ..." line.
 *
 *   zd_webhook_bench --url URL [--n 100000] [--batch 1] [--concurrency 64] [--window 0]
 *
 * --window bounds the batches handed to the gateway and not yet finished (default 4 x
 * concurrency), as the delivery pipeline bounds what it has outstanding. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/resource.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "gateway/gateway.h"

static struct event_base *base;
static zd_gateway *gw;
static long total, batch, window, sent_batches, done_batches, outstanding, delivered, failed;
static zd_notice *buf;
static char (*ids)[64];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long batches_total(void)
{
    return (total + batch - 1) / batch;
}

static void send_more(void);

static void on_done(int status, const zd_gw_result *results, size_t n, void *udata)
{
    for (size_t i = 0; i < n; i++) {
        if (results[i].outcome == ZD_GW_DELIVERED)
            delivered++;
        else
            failed++;
    }
    if (failed == 1 && results[0].outcome != ZD_GW_DELIVERED)
        fprintf(stderr, "first failure: %s\n", results[0].detail);
    outstanding--;
    if (++done_batches == batches_total())
        event_base_loopbreak(base);
    else
        send_more();
}

static void send_more(void)
{
    while (outstanding < window && sent_batches < batches_total()) {
        long first = sent_batches * batch;
        long n = total - first < batch ? total - first : batch;
        for (long i = 0; i < n; i++) {
            snprintf(ids[i], sizeof(ids[i]), "bench-2021-wengang:p%08ld:zlb", first + i);
            buf[i].id = ids[i];
        }
        int rc = zd_gateway_send(gw, buf, (size_t)n, on_done, NULL);
        if (rc) {
            fprintf(stderr, "send: %s\n", strerror(-rc));
            exit(1);
        }
        sent_batches++;
        outstanding++;
    }
}

int main(int argc, char **argv)
{
    const char *url = NULL;
    long concurrency = 64;
    total = 100000;
    batch = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--url") == 0)
            url = argv[i + 1];
        else if (strcmp(argv[i], "--n") == 0)
            total = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--batch") == 0)
            batch = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--concurrency") == 0)
            concurrency = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--window") == 0)
            window = atol(argv[i + 1]);
    }
    if (!url || total < 1 || batch < 1 || batch > 1000 || concurrency < 1) {
        fprintf(stderr, "usage: zd_webhook_bench --url URL [--n N] [--batch B] "
                        "[--concurrency C] [--window W]\n");
        return 64;
    }
    if (window < 1)
        window = 4 * concurrency;
    base = event_base_new();
    zd_gw_host host;
    zd_gateway_host_init(&host, base);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "webhook");
    cJSON_AddStringToObject(o, "url", url);
    cJSON_AddStringToObject(o, "secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    cJSON_AddNumberToObject(o, "batch", (double)batch);
    cJSON_AddNumberToObject(o, "concurrency", (double)concurrency);
    cJSON_AddNumberToObject(o, "timeout_ms", 30000);
    char err[256];
    if (zd_gateway_new(&host, "zlb", o, &gw, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    cJSON_Delete(o);
    buf = calloc((size_t)batch, sizeof(*buf));
    ids = calloc((size_t)batch, sizeof(*ids));
    for (long i = 0; i < batch; i++)
        buf[i] = (zd_notice){.policy = "bench-2021-wengang",
                             .profile = "p00000000",
                             .gateway = "zlb",
                             .to = "user-8812",
                             .title = "杭州市小微企业稳岗补贴",
                             .body = "杭州某某科技有限公司：您可能符合杭州市小微企业稳岗补贴申领"
                                     "条件（员工人数少于300人），请于2021-07-01前申请。",
                             .url = "https://example.gov.cn/policies/hz-2021-wengang",
                             .category = "employment",
                             .attempt = 1};
    double t0 = now_s();
    send_more();
    event_base_dispatch(base);
    double secs = now_s() - t0;
    /* CPU time says what the gateway costs whatever else the machine runs. */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    zd_gw_stats st;
    zd_gateway_stats(gw, &st);
    printf("result webhook batch=%ld n=%ld concurrency=%ld seconds=%.3f notices_per_s=%.0f "
           "requests_per_s=%.0f delivered=%ld failed=%ld connects=%ld cpu_s=%.3f "
           "cpu_us_per_request=%.1f\n",
           batch, total, concurrency, secs, (double)total / secs, (double)st.requests / secs,
           delivered, failed, st.connects, cpu, cpu * 1e6 / (double)st.requests);
    zd_gateway_free(gw);
    free(buf);
    free(ids);
    event_base_free(base);
    return failed ? 1 : 0;
}
