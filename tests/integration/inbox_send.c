/* zd_inbox_send: drives the inbox gateway, created the way zhidad creates it (the configured
 * set, delivery/gateways.c, with an inbox store on a real Redis), on a real libevent loop, for
 * tests/integration/test_inbox.py. Reads a JSON scenario on stdin:
 *   {"redis": "127.0.0.1:6379", "partitions": 4,
 *    "gateways": {"inbox": {"type": "inbox"}, ...},   // the config's "gateways" section
 *    "name": "inbox",                                  // the gateway to drive
 *    "batches": [[{notice}, ...], ...],   // each batch is one send() call
 *    "test": false,                       // true: each (one-notice) batch via zd_gateway_test
 *    "cancel_after_ms": 0,                // > 0: free the gateway after that long
 *    "free_in_callback": false}           // true: free it from the first batch's callback
 * and prints one JSON line per finished batch, in the order they finish:
 *   {"batch": i, "status": 0, "results": [{"id", "outcome", "http", "retry_after_ms",
 *    "detail"}], "answer": "..." (test only)}
 * then {"stats": {...}}. Missing notice fields are "". Exit status 0, or 2 when the scenario
 * or the options are refused (the error on stderr). The cancel and free options work as in
 * zd_webhook_send. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "delivery/gateways.h"
#include "delivery/inbox.h"
#include "gateway/gateway.h"
#include "redis/redis.h"

static struct event_base *base;
static zd_gateway *gw;
static zd_gateways *gs; /* owns gw */
static int pending;
static bool free_in_callback;
static const char *outcome_names[] = {"delivered", "transient", "permanent"};

typedef struct batch {
    int index;
    size_t n;
    zd_notice *notices;
} batch;

static cJSON *result_json(const zd_notice *n, const zd_gw_result *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", n->id);
    cJSON_AddStringToObject(o, "outcome", outcome_names[r->outcome]);
    cJSON_AddNumberToObject(o, "http", r->http_status);
    cJSON_AddNumberToObject(o, "retry_after_ms", (double)r->retry_after_ms);
    cJSON_AddStringToObject(o, "detail", r->detail);
    return o;
}

static void finished(void)
{
    if (--pending == 0)
        event_base_loopbreak(base);
}

static void print_line(cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    printf("%s\n", s);
    fflush(stdout);
    free(s);
    cJSON_Delete(o);
}

static void on_done(int status, const zd_gw_result *results, size_t n, void *udata)
{
    batch *b = udata;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "batch", b->index);
    cJSON_AddNumberToObject(o, "status", status);
    cJSON *arr = cJSON_AddArrayToObject(o, "results");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, result_json(&b->notices[i], &results[i]));
    print_line(o);
    if (free_in_callback && gw) {
        /* The gateway defers its own free until this callback returns; the batches still
         * queued or in flight get -ECANCELED then. */
        zd_gateways_free(gs);
        gs = NULL;
        gw = NULL;
    }
    finished();
}

static void on_test(int status, const zd_gw_result *result, const char *answer, void *udata)
{
    batch *b = udata;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "batch", b->index);
    cJSON_AddNumberToObject(o, "status", status);
    cJSON *arr = cJSON_AddArrayToObject(o, "results");
    cJSON_AddItemToArray(arr, result_json(&b->notices[0], result));
    cJSON_AddStringToObject(o, "answer", answer);
    print_line(o);
    finished();
}

static void on_cancel(evutil_socket_t fd, short what, void *arg)
{
    zd_gateways_free(gs);
    gs = NULL;
    gw = NULL;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static char *read_all(FILE *f)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) {
            char *p = realloc(buf, cap *= 2);
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p;
        }
    }
    if (buf)
        buf[len] = '\0';
    return buf;
}

int main(void)
{
    char *text = read_all(stdin);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!root) {
        fprintf(stderr, "zd_inbox_send: stdin is not a JSON scenario\n");
        return 2;
    }
    base = event_base_new();
    zd_gw_host host;
    zd_gateway_host_init(&host, base);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    const cJSON *addr = cJSON_GetObjectItemCaseSensitive(root, "redis");
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(root, "partitions");
    zd_redis_opts ro = {.addr = cJSON_IsString(addr) ? addr->valuestring : NULL, .name = "inbox"};
    zd_redis *redis = zd_redis_new(base, &ro);
    zd_inbox *inbox = zd_inbox_new(redis, cJSON_IsNumber(parts) ? parts->valueint : 4);
    char err[512];
    int rc = zd_gateways_new(&host, cJSON_GetObjectItemCaseSensitive(root, "gateways"), inbox, &gs,
                             err, sizeof(err));
    gw = rc ? NULL : zd_gateways_find(gs, cJSON_IsString(name) ? name->valuestring : "inbox");
    if (!gw) {
        fprintf(stderr, "zd_inbox_send: %s\n", rc ? err : "no such gateway, or unavailable");
        zd_gateways_free(gs);
        zd_inbox_free(inbox);
        zd_redis_free(redis);
        cJSON_Delete(root);
        event_base_free(base);
        return 2;
    }
    bool test = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "test"));
    free_in_callback = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "free_in_callback"));
    const cJSON *batches = cJSON_GetObjectItemCaseSensitive(root, "batches");
    int nb = cJSON_GetArraySize(batches);
    batch *bs = calloc((size_t)nb + 1, sizeof(*bs));
    int i = 0;
    const cJSON *bj;
    cJSON_ArrayForEach(bj, batches)
    {
        batch *b = &bs[i];
        b->index = i++;
        b->n = (size_t)cJSON_GetArraySize(bj);
        b->notices = calloc(b->n + 1, sizeof(zd_notice));
        size_t k = 0;
        const cJSON *nj;
        cJSON_ArrayForEach(nj, bj)
        {
            const cJSON *att = cJSON_GetObjectItemCaseSensitive(nj, "attempt");
            b->notices[k++] = (zd_notice){
                .id = str(nj, "id"),
                .policy = str(nj, "policy"),
                .profile = str(nj, "profile"),
                .gateway = str(nj, "gateway"),
                .to = str(nj, "to"),
                .title = str(nj, "title"),
                .body = str(nj, "body"),
                .url = str(nj, "url"),
                .category = str(nj, "category"),
                .urgent = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(nj, "urgent")),
                .attempt = cJSON_IsNumber(att) ? att->valueint : 1,
            };
        }
        rc = test ? zd_gateway_test(gw, b->notices, on_test, b)
                  : zd_gateway_send(gw, b->notices, b->n, on_done, b);
        if (rc == 0) {
            pending++;
        } else {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "batch", b->index);
            cJSON_AddNumberToObject(o, "refused", rc);
            print_line(o);
        }
    }
    const cJSON *cancel = cJSON_GetObjectItemCaseSensitive(root, "cancel_after_ms");
    struct event *cancel_ev = NULL;
    if (cJSON_IsNumber(cancel) && cancel->valueint > 0) {
        cancel_ev = evtimer_new(base, on_cancel, NULL);
        struct timeval tv = {cancel->valueint / 1000, (cancel->valueint % 1000) * 1000};
        evtimer_add(cancel_ev, &tv);
    }
    if (pending > 0)
        event_base_dispatch(base);
    zd_gw_stats st = {0};
    if (gw)
        zd_gateway_stats(gw, &st);
    cJSON *o = cJSON_CreateObject();
    cJSON *s = cJSON_AddObjectToObject(o, "stats");
    cJSON_AddNumberToObject(s, "queued", st.queued);
    cJSON_AddNumberToObject(s, "inflight", st.inflight);
    cJSON_AddNumberToObject(s, "requests", st.requests);
    cJSON_AddNumberToObject(s, "delivered", st.delivered);
    cJSON_AddNumberToObject(s, "transient", st.transient);
    cJSON_AddNumberToObject(s, "permanent", st.permanent);
    cJSON_AddNumberToObject(s, "connects", st.connects);
    cJSON_AddNumberToObject(o, "unfinished", pending);
    print_line(o);
    zd_gateways_free(gs);
    zd_inbox_free(inbox);
    zd_redis_free(redis);
    if (cancel_ev)
        event_free(cancel_ev);
    for (int j = 0; j < nb; j++)
        free(bs[j].notices);
    free(bs);
    cJSON_Delete(root);
    event_base_free(base);
    return 0;
}
