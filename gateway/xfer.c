/* The one-notice-per-transfer queue of gateway/xfer.h, on libcurl multi (curl_ev.c). */
#include "gateway/xfer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <curl/curl.h>

#include "gateway/curl_ev.h"
#include "gateway/rate.h"

/* The part of an answer kept: enough for a provider's JSON result and a test's report. */
#define ANSWER_MAX (64 * 1024)
#define TEST_ANSWER_MAX 1024

/* QUEUED -> SENDING -> FINISHED, or QUEUED/SENDING -> FINISHED when cancelled; a FINISHED
 * transfer is only called back and freed. */
typedef enum xf_state { XF_QUEUED, XF_SENDING, XF_FINISHED } xf_state;

typedef struct xfer {
    TAILQ_ENTRY(xfer) link;
    xf_state state;
    zd_xfer_q *q;
    void *job;
    zd_gw_done_fn done;
    zd_gw_test_fn test_done;
    void *udata;
    CURL *easy;
    char *answer;
    size_t answer_len, answer_cap;
    char retry_after[80];
    int status;
    zd_gw_result result;
} xfer;

TAILQ_HEAD(xfer_list, xfer);

struct zd_xfer_q {
    const zd_gw_host *host;
    const zd_xfer_ops *ops;
    void *owner;
    int concurrency;
    zd_curl_loop *loop;
    zd_ev_timer *pump_timer, *done_timer;
    struct xfer_list queued, sending, finished;
    zd_rate rate;
    zd_gw_stats st;
    int depth;
    bool dying;
};

static void set_state(xfer *x, xf_state to)
{
    zd_xfer_q *q = x->q;
    if (x->state == XF_QUEUED) {
        TAILQ_REMOVE(&q->queued, x, link);
        q->st.queued--;
    } else if (x->state == XF_SENDING) {
        TAILQ_REMOVE(&q->sending, x, link);
        q->st.inflight--;
    } else {
        abort(); /* FINISHED is final */
    }
    x->state = to;
    if (to == XF_SENDING) {
        TAILQ_INSERT_TAIL(&q->sending, x, link);
        q->st.inflight++;
    } else if (to == XF_FINISHED) {
        TAILQ_INSERT_TAIL(&q->finished, x, link);
        q->st.requests++;
        if (x->result.outcome == ZD_GW_DELIVERED)
            q->st.delivered++;
        else if (x->result.outcome == ZD_GW_PERMANENT)
            q->st.permanent++;
        else
            q->st.transient++;
    } else {
        abort();
    }
}

static void xfer_free(xfer *x)
{
    x->q->ops->job_free(x->job);
    free(x->answer);
    free(x);
}

static void finish_without(xfer *x, int status, const char *detail)
{
    memset(&x->result, 0, sizeof(x->result));
    x->result.outcome = ZD_GW_TRANSIENT;
    snprintf(x->result.detail, sizeof(x->result.detail), "%s", detail);
    x->status = status;
    set_state(x, XF_FINISHED);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *udata)
{
    xfer *x = udata;
    size_t n = size * nmemb, keep = n;
    /* Past the limit the rest is dropped, not refused: the start decides. */
    if (x->answer_len + keep > ANSWER_MAX)
        keep = ANSWER_MAX - x->answer_len;
    if (keep && x->answer_len + keep + 1 > x->answer_cap) {
        size_t cap = x->answer_cap ? x->answer_cap * 2 : 1024;
        while (cap < x->answer_len + keep + 1)
            cap *= 2;
        char *p = realloc(x->answer, cap);
        if (!p)
            return 0;
        x->answer = p;
        x->answer_cap = cap;
    }
    if (keep) {
        memcpy(x->answer + x->answer_len, data, keep);
        x->answer_len += keep;
        x->answer[x->answer_len] = '\0';
    }
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *udata)
{
    xfer *x = udata;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        x->retry_after[0] = '\0';
    } else if (n > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
        size_t len = n - (sizeof(name) - 1);
        if (len >= sizeof(x->retry_after))
            len = sizeof(x->retry_after) - 1;
        memcpy(x->retry_after, data + sizeof(name) - 1, len);
        x->retry_after[len] = '\0';
    }
    return n;
}

static void start(xfer *x)
{
    zd_xfer_q *q = x->q;
    CURL *e = curl_easy_init();
    if (!e) {
        finish_without(x, 0, "out of memory");
        return;
    }
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    const char *why = "cannot prepare the request";
    if (q->ops->prepare(q->owner, x->job, e, &why) != 0) {
        curl_easy_cleanup(e);
        finish_without(x, 0, why);
        return;
    }
    x->easy = e;
    set_state(x, XF_SENDING);
    if (zd_curl_loop_add(q->loop, e) != 0) {
        x->easy = NULL;
        curl_easy_cleanup(e);
        finish_without(x, 0, "libcurl refused the transfer");
    }
}

static void pump(zd_xfer_q *q)
{
    while (!q->dying && !TAILQ_EMPTY(&q->queued) && q->st.inflight < q->concurrency) {
        int64_t wait_us = zd_rate_take(&q->rate, q->host->monotonic_ms(q->host) * 1000);
        if (wait_us > 0) {
            if (!zd_ev_timer_pending(q->pump_timer))
                zd_ev_timer_arm(q->pump_timer, (long)((wait_us + 999) / 1000));
            break;
        }
        start(TAILQ_FIRST(&q->queued));
    }
    if (!TAILQ_EMPTY(&q->finished))
        zd_ev_timer_arm(q->done_timer, 0);
}

static void on_pump_timer(void *udata)
{
    pump(udata);
}

static void on_transfer_done(void *easy, int curl_rc, void *udata)
{
    zd_xfer_q *q = udata;
    xfer *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    long status = 0, connects = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects);
    q->st.connects += connects;
    zd_xfer_end end = {
        .curl_rc = curl_rc,
        .status = status,
        .answer = x->answer ? x->answer : "",
        .answer_len = x->answer_len,
        .retry_after = x->retry_after[0] ? x->retry_after : NULL,
    };
    q->ops->finish(q->owner, x->job, &end, &x->result);
    x->easy = NULL;
    curl_easy_cleanup(easy);
    set_state(x, XF_FINISHED);
    pump(q);
}

static void call_back(xfer *x)
{
    zd_xfer_q *q = x->q;
    q->depth++;
    if (x->done) {
        x->done(x->status, &x->result, 1, x->udata);
    } else {
        char answer[TEST_ANSWER_MAX + 1];
        size_t n = x->answer_len < TEST_ANSWER_MAX ? x->answer_len : TEST_ANSWER_MAX;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)x->answer[i];
            answer[i] = c < 0x20 && c != '\n' ? ' ' : (char)c;
        }
        answer[n] = '\0';
        x->test_done(x->status, &x->result, answer, x->udata);
    }
    q->depth--;
}

static void really_destroy(zd_xfer_q *q);

static void on_done_timer(void *udata)
{
    zd_xfer_q *q = udata;
    xfer *x;
    while (!q->dying && (x = TAILQ_FIRST(&q->finished))) {
        TAILQ_REMOVE(&q->finished, x, link);
        call_back(x);
        xfer_free(x);
    }
    if (q->dying && q->depth == 0)
        really_destroy(q);
}

zd_xfer_q *zd_xfer_q_new(const zd_gw_host *host, const zd_xfer_ops *ops, void *owner,
                         int concurrency, double rate)
{
    zd_xfer_q *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->host = host;
    q->ops = ops;
    q->owner = owner;
    q->concurrency = concurrency;
    TAILQ_INIT(&q->queued);
    TAILQ_INIT(&q->sending);
    TAILQ_INIT(&q->finished);
    if (!(q->loop = zd_curl_loop_new(host->event_base, on_transfer_done, q)) ||
        !(q->pump_timer = zd_ev_timer_new(host->event_base, on_pump_timer, q)) ||
        !(q->done_timer = zd_ev_timer_new(host->event_base, on_done_timer, q))) {
        zd_ev_timer_free(q->pump_timer);
        zd_ev_timer_free(q->done_timer);
        zd_curl_loop_free(q->loop);
        free(q);
        return NULL;
    }
    /* Keep a connection per slot alive between transfers. */
    curl_multi_setopt(zd_curl_loop_multi(q->loop), CURLMOPT_MAXCONNECTS, (long)concurrency + 1);
    zd_rate_init(&q->rate, rate, host->monotonic_ms(host) * 1000);
    return q;
}

static int submit(zd_xfer_q *q, void *job, zd_gw_done_fn done, zd_gw_test_fn test_done, void *udata,
                  const zd_gw_result *decided)
{
    if (q->dying) {
        q->ops->job_free(job);
        return -ECANCELED;
    }
    xfer *x = calloc(1, sizeof(*x));
    if (!x) {
        q->ops->job_free(job);
        return -ENOMEM;
    }
    x->q = q;
    x->job = job;
    x->done = done;
    x->test_done = test_done;
    x->udata = udata;
    x->state = XF_QUEUED;
    if (test_done)
        TAILQ_INSERT_HEAD(&q->queued, x, link);
    else
        TAILQ_INSERT_TAIL(&q->queued, x, link);
    q->st.queued++;
    if (decided) {
        x->result = *decided;
        set_state(x, XF_FINISHED);
    }
    pump(q);
    return 0;
}

int zd_xfer_q_submit(zd_xfer_q *q, void *job, zd_gw_done_fn done, void *udata)
{
    return submit(q, job, done, NULL, udata, NULL);
}

int zd_xfer_q_submit_test(zd_xfer_q *q, void *job, zd_gw_test_fn done, void *udata)
{
    return submit(q, job, NULL, done, udata, NULL);
}

int zd_xfer_q_submit_result(zd_xfer_q *q, void *job, const zd_gw_result *r, zd_gw_done_fn done,
                            zd_gw_test_fn test_done, void *udata)
{
    return submit(q, job, done, test_done, udata, r);
}

void *zd_xfer_q_multi(zd_xfer_q *q)
{
    return zd_curl_loop_multi(q->loop);
}

void zd_xfer_q_stats(const zd_xfer_q *q, zd_gw_stats *st)
{
    *st = q->st;
}

bool zd_xfer_q_dying(const zd_xfer_q *q)
{
    return q->dying;
}

static void really_destroy(zd_xfer_q *q)
{
    xfer *x;
    q->dying = true;
    q->depth++; /* a destroy() from the callbacks below is a no-op */
    while ((x = TAILQ_FIRST(&q->sending))) {
        zd_curl_loop_cancel(q->loop, x->easy);
        curl_easy_cleanup(x->easy);
        x->easy = NULL;
        finish_without(x, -ECANCELED, "cancelled: the gateway was stopped");
    }
    while ((x = TAILQ_FIRST(&q->queued)))
        finish_without(x, -ECANCELED, "cancelled: the gateway was stopped");
    while ((x = TAILQ_FIRST(&q->finished))) {
        TAILQ_REMOVE(&q->finished, x, link);
        call_back(x);
        xfer_free(x);
    }
    zd_ev_timer_free(q->pump_timer);
    zd_ev_timer_free(q->done_timer);
    zd_curl_loop_free(q->loop);
    q->ops->owner_free(q->owner);
    free(q);
}

void zd_xfer_q_destroy(zd_xfer_q *q)
{
    if (!q || q->dying)
        return;
    q->dying = true;
    if (q->depth == 0)
        really_destroy(q);
}
