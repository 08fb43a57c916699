/* The "webhook" gateway: each batch becomes one signed POST on libcurl's multi interface
 * (gateway/curl_ev.c), at most `concurrency` in flight and `rate` started per second; the
 * rest wait in a FIFO. Results are classified by gateway/retry.c and handed back from a timer
 * of their own, so that a caller's callback never runs inside send() or inside libcurl. */
#include "gateway/webhook.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <curl/curl.h>

#include "gateway/curl_ev.h"
#include "gateway/rate.h"
#include "gateway/retry.h"
#include "gateway/wire.h"

/* The part of an answer read for its "failed" list: a full list of 1000 long ids fits. */
#define ANSWER_MAX (1024 * 1024)
/* The part of an answer a test send reports. */
#define TEST_ANSWER_MAX 1024

/* A request moves QUEUED -> SENDING -> FINISHED (results known) and is freed once its
 * callback ran; QUEUED or SENDING -> FINISHED with -ECANCELED when the gateway goes. */
typedef enum req_state { REQ_QUEUED, REQ_SENDING, REQ_FINISHED } req_state;

typedef struct webhook webhook;

typedef struct wh_req {
    TAILQ_ENTRY(wh_req) link;
    req_state state;
    webhook *w;
    size_t n;
    char **ids; /* the notices' ids, for the "failed" list (one allocation with the strings) */
    char *body;
    size_t body_len;
    char msg_id[ZD_WIRE_ID_MAX + 1]; /* webhook-id */
    zd_gw_done_fn done;
    zd_gw_test_fn test_done; /* a test send (done is NULL) */
    void *udata;
    CURL *easy;
    struct curl_slist *hdrs;
    char *answer;
    size_t answer_len, answer_cap;
    char retry_after[80];
    int status; /* 0, or -ECANCELED */
    zd_gw_result *results;
} wh_req;

TAILQ_HEAD(req_list, wh_req);

struct webhook {
    const zd_gw_host *host;
    char *name;
    zd_webhook_opts o;
    zd_signer *signers[ZD_WEBHOOK_SECRETS_MAX]; /* one per secret */
    zd_curl_loop *loop;
    zd_ev_timer *pump_timer; /* wakes the queue when a rate token is due */
    zd_ev_timer *done_timer; /* hands finished requests to their callbacks */
    struct req_list queued, sending, finished;
    zd_rate rate;
    CURL **pool; /* idle easy handles, reused: fewer allocations per request */
    int npool;
    zd_gw_stats st;
    int depth;  /* > 0 while a caller's callback runs */
    bool dying; /* destroy() was called */
};

static void wlog(webhook *w, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void wlog(webhook *w, int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    w->host->log(w->host, level, msg);
}

static void set_state(wh_req *r, req_state to)
{
    webhook *w = r->w;
    switch (r->state) {
    case REQ_QUEUED:
        TAILQ_REMOVE(&w->queued, r, link);
        w->st.queued--;
        break;
    case REQ_SENDING:
        TAILQ_REMOVE(&w->sending, r, link);
        w->st.inflight--;
        break;
    case REQ_FINISHED:
        /* Final: a finished request is only freed. */
        abort();
    }
    r->state = to;
    if (to == REQ_SENDING) {
        TAILQ_INSERT_TAIL(&w->sending, r, link);
        w->st.inflight++;
    } else if (to == REQ_FINISHED) {
        TAILQ_INSERT_TAIL(&w->finished, r, link);
    } else {
        abort(); /* nothing goes back to the queue */
    }
}

static void req_free(wh_req *r)
{
    if (!r)
        return;
    free(r->ids);
    free(r->body);
    free(r->answer);
    free(r->results);
    curl_slist_free_all(r->hdrs);
    free(r);
}

/* ---- answers ---------------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *udata)
{
    wh_req *r = udata;
    size_t n = size * nmemb;
    if (r->answer_len + n > ANSWER_MAX)
        return 0; /* CURLE_WRITE_ERROR: classified as "answer body too large" */
    if (r->answer_len + n + 1 > r->answer_cap) {
        size_t cap = r->answer_cap ? r->answer_cap * 2 : 1024;
        while (cap < r->answer_len + n + 1)
            cap *= 2;
        char *p = realloc(r->answer, cap);
        if (!p)
            return 0;
        r->answer = p;
        r->answer_cap = cap;
    }
    memcpy(r->answer + r->answer_len, data, n);
    r->answer_len += n;
    r->answer[r->answer_len] = '\0';
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *udata)
{
    wh_req *r = udata;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        /* A new response (after a 1xx): only the final one counts. */
        r->retry_after[0] = '\0';
    } else if (n > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
        size_t len = n - (sizeof(name) - 1);
        if (len >= sizeof(r->retry_after))
            len = sizeof(r->retry_after) - 1;
        memcpy(r->retry_after, data + sizeof(name) - 1, len);
        r->retry_after[len] = '\0';
    }
    return n;
}

/* Sets every result of r from one classification; for a 2xx, applies the "failed" list. */
static void classify(wh_req *r, int curl_rc, long http_status)
{
    webhook *w = r->w;
    zd_gw_result one;
    int64_t now_s = w->host->unix_ms(w->host) / 1000;
    zd_retry_classify(curl_rc, http_status, r->retry_after[0] ? r->retry_after : NULL, now_s,
                      w->o.timeout_ms, &one);
    for (size_t i = 0; i < r->n; i++)
        r->results[i] = one;
    if (one.outcome == ZD_GW_DELIVERED && r->answer_len > 0)
        zd_wire_failed(r->answer, r->answer_len, (const char *const *)r->ids, r->n, r->results);
}

static void count_results(webhook *w, const wh_req *r)
{
    w->st.requests++;
    for (size_t i = 0; i < r->n; i++) {
        if (r->results[i].outcome == ZD_GW_DELIVERED)
            w->st.delivered++;
        else if (r->results[i].outcome == ZD_GW_PERMANENT)
            w->st.permanent++;
        else
            w->st.transient++;
    }
}

/* Finishes r without an exchange (cancelled, or it could not be started). */
static void finish_without(wh_req *r, int status, const char *detail)
{
    for (size_t i = 0; i < r->n; i++) {
        memset(&r->results[i], 0, sizeof(r->results[i]));
        r->results[i].outcome = ZD_GW_TRANSIENT;
        snprintf(r->results[i].detail, sizeof(r->results[i].detail), "%s", detail);
    }
    r->status = status;
    count_results(r->w, r);
    set_state(r, REQ_FINISHED);
}

/* ---- sending ---------------------------------------------------------------------------- */

static void pump(webhook *w);

static int build_headers(wh_req *r)
{
    webhook *w = r->w;
    char ts[32], line[ZD_WIRE_ID_MAX + 64];
    snprintf(ts, sizeof(ts), "%" PRId64, w->host->unix_ms(w->host) / 1000);
    /* "webhook-signature: " + one "v1,<44>" per secret, space-separated. */
    char sigs[32 + ZD_WEBHOOK_SECRETS_MAX * ZD_SIGN_SIG_LEN];
    size_t at = (size_t)snprintf(sigs, sizeof(sigs), "webhook-signature: ");
    for (int i = 0; i < w->o.nsecrets; i++) {
        char one[ZD_SIGN_SIG_LEN];
        int rc = zd_signer_sign(w->signers[i], r->msg_id, ts, r->body, r->body_len, one);
        if (rc)
            return rc;
        at += (size_t)snprintf(sigs + at, sizeof(sigs) - at, "%s%s", i ? " " : "", one);
    }
    struct curl_slist *h = NULL, *t;
#define ADD(s)                                                                                     \
    do {                                                                                           \
        if (!(t = curl_slist_append(h, (s))))                                                      \
            goto oom;                                                                              \
        h = t;                                                                                     \
    } while (0)
    ADD("Content-Type: application/json");
    /* libcurl would ask large bodies to wait for "100 Continue": a round trip for nothing. */
    ADD("Expect:");
    snprintf(line, sizeof(line), "webhook-id: %s", r->msg_id);
    ADD(line);
    snprintf(line, sizeof(line), "webhook-timestamp: %s", ts);
    ADD(line);
    ADD(sigs);
    if (r->n == 1) {
        /* libcurl may itself send a request twice on a reused connection that died
         * (Curl_retry_request): the key lets the receiver drop the copy. */
        snprintf(line, sizeof(line), "Idempotency-Key: %s", r->ids[0]);
        ADD(line);
    }
    for (int i = 0; i < w->o.nheaders; i++)
        ADD(w->o.headers[i]);
#undef ADD
    r->hdrs = h;
    return 0;
oom:
    curl_slist_free_all(h);
    return -ENOMEM;
}

/* An easy handle with the options every request of this gateway shares. Handles are reused
 * (w->pool) without curl_easy_reset(): setting the URL and options again per request costs
 * more than the rest of a request's work in libcurl. */
static CURL *new_easy(webhook *w)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    curl_easy_setopt(e, CURLOPT_URL, w->o.url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "zhida-webhook/1");
    /* Signals are not ours to take, and the limit counts from this moment only: requests wait
     * for a slot in our own queue, not in libcurl's. */
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, w->o.timeout_ms);
    /* HTTP/2 where TLS offers it (ALPN), HTTP/1.1 on plain http. Over TLS, wait for a
     * connection that may multiplex rather than open another one: ALPN tells at connect time.
     * Never on plain http, which cannot multiplex: there libcurl learns the protocol only from
     * the first answer, and every other request would wait for it (behind a slow receiver,
     * one request at a time, their timeouts running). */
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    if (strncmp(w->o.url, "https:", 6) == 0)
        curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (w->o.ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, w->o.ca_file);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    return e;
}

static int start(wh_req *r)
{
    webhook *w = r->w;
    int rc = build_headers(r);
    if (rc)
        return rc;
    CURL *e = w->npool > 0 ? w->pool[--w->npool] : new_easy(w);
    if (!e)
        return -ENOMEM;
    /* Only what changes per request; the rest was set once in new_easy(). */
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    r->easy = e;
    set_state(r, REQ_SENDING);
    if (zd_curl_loop_add(w->loop, e) != 0) {
        r->easy = NULL;
        curl_easy_cleanup(e);
        finish_without(r, 0, "libcurl refused the transfer");
    }
    return 0;
}

static void release_easy(webhook *w, CURL *e)
{
    if (w->npool < w->o.concurrency)
        w->pool[w->npool++] = e;
    else
        curl_easy_cleanup(e);
}

/* Starts queued requests while a slot and a rate token are free. */
static void pump(webhook *w)
{
    while (!w->dying && !TAILQ_EMPTY(&w->queued) && w->st.inflight < w->o.concurrency) {
        int64_t wait_us = zd_rate_take(&w->rate, w->host->monotonic_ms(w->host) * 1000);
        if (wait_us > 0) {
            if (!zd_ev_timer_pending(w->pump_timer))
                zd_ev_timer_arm(w->pump_timer, (long)((wait_us + 999) / 1000));
            return;
        }
        wh_req *r = TAILQ_FIRST(&w->queued);
        int rc = start(r);
        if (rc)
            finish_without(r, 0, rc == -ENOMEM ? "out of memory" : "cannot sign the request");
    }
    if (!TAILQ_EMPTY(&w->finished))
        zd_ev_timer_arm(w->done_timer, 0);
}

static void on_pump_timer(void *udata)
{
    pump(udata);
}

static void on_transfer_done(void *easy, int curl_rc, void *udata)
{
    webhook *w = udata;
    wh_req *r = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
    long status = 0, connects = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects);
    w->st.connects += connects;
    r->easy = NULL;
    release_easy(w, easy);
    classify(r, curl_rc, status);
    count_results(w, r);
    set_state(r, REQ_FINISHED);
    if (r->results[0].outcome != ZD_GW_DELIVERED)
        wlog(w, ZD_GW_LOG_DEBUG, "gateway %s: %zu notice(s), %s", w->name, r->n,
             r->results[0].detail);
    pump(w);
}

/* ---- callbacks -------------------------------------------------------------------------- */

static void really_destroy(webhook *w);

static void call_back(wh_req *r)
{
    webhook *w = r->w;
    w->depth++;
    if (r->done) {
        r->done(r->status, r->results, r->n, r->udata);
    } else {
        char answer[TEST_ANSWER_MAX + 1];
        size_t n = r->answer_len < TEST_ANSWER_MAX ? r->answer_len : TEST_ANSWER_MAX;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)r->answer[i];
            answer[i] = c < 0x20 && c != '\n' ? ' ' : (char)c;
        }
        answer[n] = '\0';
        r->test_done(r->status, &r->results[0], answer, r->udata);
    }
    w->depth--;
}

static void on_done_timer(void *udata)
{
    webhook *w = udata;
    wh_req *r;
    while (!w->dying && (r = TAILQ_FIRST(&w->finished))) {
        TAILQ_REMOVE(&w->finished, r, link);
        call_back(r);
        req_free(r);
    }
    if (w->dying && w->depth == 0)
        really_destroy(w);
}

/* ---- the zd_gateway_type ---------------------------------------------------------------- */

static int wh_check(const char *options_json, const char *key_prefix, char *err, size_t errlen)
{
    zd_webhook_opts o;
    int rc = zd_webhook_opts_parse(options_json, key_prefix, &o, err, errlen);
    if (rc == 0)
        zd_webhook_opts_free(&o);
    return rc;
}

static int wh_create(const zd_gw_host *host, const char *name, const char *options_json,
                     const char *key_prefix, void **out, char *err, size_t errlen)
{
    *out = NULL;
    webhook *w = calloc(1, sizeof(*w));
    if (!w)
        goto oom;
    w->host = host;
    TAILQ_INIT(&w->queued);
    TAILQ_INIT(&w->sending);
    TAILQ_INIT(&w->finished);
    int rc = zd_webhook_opts_parse(options_json, key_prefix, &w->o, err, errlen);
    if (rc) {
        free(w);
        return rc;
    }
    if (!(w->name = strdup(name)) ||
        !(w->pool = calloc((size_t)w->o.concurrency, sizeof(*w->pool))) ||
        !(w->loop = zd_curl_loop_new(host->event_base, on_transfer_done, w)) ||
        !(w->pump_timer = zd_ev_timer_new(host->event_base, on_pump_timer, w)) ||
        !(w->done_timer = zd_ev_timer_new(host->event_base, on_done_timer, w)))
        goto oom;
    for (int i = 0; i < w->o.nsecrets; i++) {
        if (!(w->signers[i] = zd_signer_new(&w->o.secrets[i])))
            goto oom;
    }
    /* Keep a connection per slot alive between requests. */
    curl_multi_setopt(zd_curl_loop_multi(w->loop), CURLMOPT_MAXCONNECTS,
                      (long)w->o.concurrency + 1);
    zd_rate_init(&w->rate, w->o.rate, host->monotonic_ms(host) * 1000);
    *out = w;
    return 0;
oom:
    if (w) {
        w->depth = 0;
        really_destroy(w);
    }
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

static int wh_max_batch(void *gw)
{
    return ((webhook *)gw)->o.batch;
}

static int enqueue(webhook *w, const zd_notice *notices, size_t n, bool front, wh_req **out)
{
    if (w->dying)
        return -ECANCELED;
    if (n == 0 || n > (size_t)w->o.batch)
        return -EINVAL;
    wh_req *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    int rc = zd_wire_body(notices, n, &r->body, &r->body_len);
    if (rc) {
        free(r);
        return rc;
    }
    size_t bytes = n * sizeof(char *);
    for (size_t i = 0; i < n; i++)
        bytes += strlen(notices[i].id) + 1;
    rc = -ENOMEM;
    /* Results are allocated now so that finishing, even cancelling, needs no memory. */
    if (!(r->ids = malloc(bytes)) || !(r->results = calloc(n, sizeof(*r->results))))
        goto fail;
    char *s = (char *)(r->ids + n);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(notices[i].id) + 1;
        memcpy(s, notices[i].id, len);
        r->ids[i] = s;
        s += len;
    }
    r->n = n;
    if (n == 1)
        snprintf(r->msg_id, sizeof(r->msg_id), "%s", notices[0].id);
    else if ((rc = zd_wire_batch_id(notices, n, r->msg_id)))
        goto fail;
    r->w = w;
    r->state = REQ_QUEUED;
    if (front)
        TAILQ_INSERT_HEAD(&w->queued, r, link);
    else
        TAILQ_INSERT_TAIL(&w->queued, r, link);
    w->st.queued++;
    *out = r;
    return 0;
fail:
    req_free(r);
    return rc;
}

static int wh_send(void *gw, const zd_notice *notices, size_t n, zd_gw_done_fn done, void *udata)
{
    webhook *w = gw;
    wh_req *r;
    int rc = enqueue(w, notices, n, false, &r);
    if (rc)
        return rc;
    r->done = done;
    r->udata = udata;
    pump(w);
    return 0;
}

static int wh_test(void *gw, const zd_notice *notice, zd_gw_test_fn done, void *udata)
{
    webhook *w = gw;
    wh_req *r;
    /* Ahead of the queue, so that a backlog does not make the check time out; the slot and
     * rate limits still hold. */
    int rc = enqueue(w, notice, 1, true, &r);
    if (rc)
        return rc;
    r->test_done = done;
    r->udata = udata;
    pump(w);
    return 0;
}

static void wh_stats(void *gw, zd_gw_stats *st)
{
    *st = ((webhook *)gw)->st;
}

static void really_destroy(webhook *w)
{
    wh_req *r;
    w->dying = true;
    w->depth++; /* a destroy() from the callbacks below is a no-op */
    /* Cancel in order: what was being sent, then what waited. Finished requests keep their
     * results; every callback runs once. */
    while ((r = TAILQ_FIRST(&w->sending))) {
        zd_curl_loop_cancel(w->loop, r->easy);
        release_easy(w, r->easy);
        r->easy = NULL;
        finish_without(r, -ECANCELED, "cancelled: the gateway was stopped");
    }
    while ((r = TAILQ_FIRST(&w->queued)))
        finish_without(r, -ECANCELED, "cancelled: the gateway was stopped");
    while ((r = TAILQ_FIRST(&w->finished))) {
        TAILQ_REMOVE(&w->finished, r, link);
        call_back(r);
        req_free(r);
    }
    zd_ev_timer_free(w->pump_timer);
    zd_ev_timer_free(w->done_timer);
    for (int i = 0; i < w->npool; i++)
        curl_easy_cleanup(w->pool[i]);
    free(w->pool);
    zd_curl_loop_free(w->loop);
    for (int i = 0; i < ZD_WEBHOOK_SECRETS_MAX; i++)
        zd_signer_free(w->signers[i]);
    zd_webhook_opts_free(&w->o);
    free(w->name);
    free(w);
}

static void wh_destroy(void *gw)
{
    webhook *w = gw;
    if (!w || w->dying)
        return;
    w->dying = true;
    if (w->depth == 0)
        really_destroy(w);
}

const zd_gateway_type zd_webhook_type = {
    .abi_version = ZD_GATEWAY_ABI_VERSION,
    .name = "webhook",
    .check = wh_check,
    .create = wh_create,
    .max_batch = wh_max_batch,
    .send = wh_send,
    .test = wh_test,
    .stats = wh_stats,
    .destroy = wh_destroy,
};
