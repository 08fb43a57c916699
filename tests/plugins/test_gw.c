/* A gateway plugin for the tests (tests/integration/test_plugins.py): type "testgw" reports
 * every notice's outcome asynchronously, from a zero-delay timer on the host's loop, chosen by
 * the notice's `to`: "permanent..." PERMANENT, "transient..." TRANSIENT, anything else
 * DELIVERED. Built three more times with a wrong ABI (TEST_ABI_DELTA), an entry point that
 * refuses the host (TEST_REFUSE) and another type name (TEST_TYPE_NAME). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <zhida/gateway.h>

#ifndef TEST_ABI_DELTA
#define TEST_ABI_DELTA 0
#endif
#ifndef TEST_TYPE_NAME
#define TEST_TYPE_NAME "testgw"
#endif

typedef struct tgw tgw;

/* One accepted batch, waiting for its timer. */
typedef struct batch {
    struct batch *prev, *next;
    tgw *g;
    struct event *ev;
    zd_gw_done_fn done;
    void *udata;
    size_t n;
    zd_gw_result results[];
} batch;

struct tgw {
    const zd_gw_host *host;
    batch *pending;
    zd_gw_stats st;
    int depth; /* > 0 while a callback runs */
    int dying; /* destroy() was called from a callback */
};

static void unlink_batch(tgw *g, batch *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        g->pending = b->next;
    if (b->next)
        b->next->prev = b->prev;
    g->st.queued--;
}

static void really_destroy(tgw *g);

static void finish(batch *b, int status)
{
    tgw *g = b->g;
    unlink_batch(g, b);
    g->st.requests++;
    for (size_t i = 0; i < b->n; i++) {
        if (status) {
            b->results[i].outcome = ZD_GW_TRANSIENT;
            snprintf(b->results[i].detail, sizeof(b->results[i].detail), "cancelled");
        }
        if (b->results[i].outcome == ZD_GW_DELIVERED)
            g->st.delivered++;
        else if (b->results[i].outcome == ZD_GW_PERMANENT)
            g->st.permanent++;
        else
            g->st.transient++;
    }
    g->depth++;
    b->done(status, b->results, b->n, b->udata);
    g->depth--;
    event_free(b->ev);
    free(b);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    batch *b = arg;
    tgw *g = b->g;
    finish(b, 0);
    if (g->dying && g->depth == 0)
        really_destroy(g);
}

static int tgw_check(const char *options_json, const char *key_prefix, char *err, size_t errlen)
{
    if (strcmp(options_json, "{}") != 0) {
        snprintf(err, errlen, "\"%.64s...\": a %s gateway takes no options of its own", key_prefix,
                 TEST_TYPE_NAME);
        return -EINVAL;
    }
    return 0;
}

static int tgw_create(const zd_gw_host *host, const char *name, const char *options_json,
                      const char *key_prefix, void **out, char *err, size_t errlen)
{
    int rc = tgw_check(options_json, key_prefix, err, errlen);
    if (rc)
        return rc;
    tgw *g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    g->host = host;
    *out = g;
    return 0;
}

static int tgw_max_batch(void *gw)
{
    return 10;
}

static int tgw_send(void *gw, const zd_notice *notices, size_t n, zd_gw_done_fn done, void *udata)
{
    tgw *g = gw;
    if (g->dying)
        return -ECANCELED;
    if (n < 1 || n > 10)
        return -EINVAL;
    batch *b = calloc(1, sizeof(*b) + n * sizeof(zd_gw_result));
    if (!b)
        return -ENOMEM;
    b->ev = evtimer_new((struct event_base *)g->host->event_base, on_timer, b);
    if (!b->ev) {
        free(b);
        return -ENOMEM;
    }
    b->g = g;
    b->done = done;
    b->udata = udata;
    b->n = n;
    for (size_t i = 0; i < n; i++) {
        zd_gw_result *r = &b->results[i];
        /* Decided now: the notice is borrowed only during this call. */
        if (strncmp(notices[i].to, "permanent", 9) == 0) {
            r->outcome = ZD_GW_PERMANENT;
            snprintf(r->detail, sizeof(r->detail), "testgw: refused for good");
        } else if (strncmp(notices[i].to, "transient", 9) == 0) {
            r->outcome = ZD_GW_TRANSIENT;
            snprintf(r->detail, sizeof(r->detail), "testgw: try again");
        } else {
            r->outcome = ZD_GW_DELIVERED;
            snprintf(r->detail, sizeof(r->detail), "testgw: delivered");
        }
    }
    b->next = g->pending;
    if (g->pending)
        g->pending->prev = b;
    g->pending = b;
    g->st.queued++;
    /* Zero delay: the next loop iteration, never inside send(). */
    struct timeval zero = {0, 0};
    evtimer_add(b->ev, &zero);
    return 0;
}

static void tgw_stats(void *gw, zd_gw_stats *st)
{
    *st = ((tgw *)gw)->st;
}

static void really_destroy(tgw *g)
{
    g->dying = 1;
    g->depth++;
    while (g->pending)
        finish(g->pending, -ECANCELED);
    free(g);
}

static void tgw_destroy(void *gw)
{
    tgw *g = gw;
    if (!g || g->dying)
        return;
    g->dying = 1;
    if (g->depth == 0)
        really_destroy(g);
}

static const zd_gateway_type tgw_type = {
    .abi_version = ZD_GATEWAY_ABI_VERSION + TEST_ABI_DELTA,
    .name = TEST_TYPE_NAME,
    .check = tgw_check,
    .create = tgw_create,
    .max_batch = tgw_max_batch,
    .send = tgw_send,
    .test = NULL,
    .stats = tgw_stats,
    .destroy = tgw_destroy,
};

/* The prototype keeps -Wmissing-prototypes quiet: the function is exported, not declared in
 * a header of ours. */
const zd_gateway_type *const *zd_gateway_plugin_types(unsigned host_abi_version);

const zd_gateway_type *const *zd_gateway_plugin_types(unsigned host_abi_version)
{
    static const zd_gateway_type *const types[] = {&tgw_type, NULL};
#ifdef TEST_REFUSE
    return host_abi_version == 0 ? types : NULL;
#else
    /* A real plugin returns NULL for a host version it was not built for; the wrong-ABI test
     * build returns its table anyway, so that the host's own check is what refuses it. */
    return TEST_ABI_DELTA || host_abi_version == ZD_GATEWAY_ABI_VERSION ? types : NULL;
#endif
}
