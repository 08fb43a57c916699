/* One notice, one libcurl transfer: the queue the sms_http and smtp gateways share. Accepted
 * notices wait in a FIFO; at most `concurrency` transfers run at once on the instance's own
 * multi handle (gateway/curl_ev.c) and at most `rate` start per second; results are handed
 * back from a zero-delay timer, so a caller's callback never runs inside send() or libcurl.
 * Cancelling, re-entrant destroy and the exactly-once callbacks are handled here; the type
 * only prepares each transfer and classifies its end (zd_xfer_ops). */
#ifndef ZD_XFER_H
#define ZD_XFER_H

#include <stdbool.h>
#include <stddef.h>

#include <zhida/gateway.h>

typedef struct zd_xfer_q zd_xfer_q;

/* A finished transfer as the type sees it (valid only during finish()). */
typedef struct zd_xfer_end {
    int curl_rc;
    long status;        /* CURLINFO_RESPONSE_CODE: HTTP status or last SMTP reply code */
    const char *answer; /* the first bytes of the answer body, NUL-terminated */
    size_t answer_len;
    const char *retry_after; /* NULL when the answer had none */
} zd_xfer_end;

typedef struct zd_xfer_ops {
    /* Sets the per-transfer options of easy (a CURL *, fresh from curl_easy_init) for job.
     * 0, or a negative code: the notice then fails TRANSIENT with `why` (static text). */
    int (*prepare)(void *owner, void *job, void *easy, const char **why);
    /* Classifies the end of job's transfer into r (every field). */
    void (*finish)(void *owner, void *job, const zd_xfer_end *end, zd_gw_result *r);
    /* Frees a job (also one never sent). */
    void (*job_free)(void *job);
    /* Frees the owner, once the queue is gone (from zd_xfer_q_destroy). */
    void (*owner_free)(void *owner);
} zd_xfer_ops;

/* A queue on host's loop (host borrowed, outlives it). ops is borrowed (static). NULL on
 * ENOMEM. */
zd_xfer_q *zd_xfer_q_new(const zd_gw_host *host, const zd_xfer_ops *ops, void *owner,
                         int concurrency, double rate);

/* Queues job (taken over: freed with ops->job_free in every case) for one notice; done(...,
 * n = 1, udata) runs exactly once later. test: ahead of the queue, reported through test_done
 * with the first bytes of the answer. -ECANCELED when the queue is being destroyed (job
 * freed, no callback). */
int zd_xfer_q_submit(zd_xfer_q *q, void *job, zd_gw_done_fn done, void *udata);
int zd_xfer_q_submit_test(zd_xfer_q *q, void *job, zd_gw_test_fn done, void *udata);

/* A result the type decided without a transfer (e.g. a malformed address): reported like one,
 * from the timer. job is taken over. */
int zd_xfer_q_submit_result(zd_xfer_q *q, void *job, const zd_gw_result *r, zd_gw_done_fn done,
                            zd_gw_test_fn test_done, void *udata);

/* The multi handle (a CURLM *, borrowed), for options such as CURLMOPT_MAXCONNECTS. */
void *zd_xfer_q_multi(zd_xfer_q *q);

void zd_xfer_q_stats(const zd_xfer_q *q, zd_gw_stats *st);
bool zd_xfer_q_dying(const zd_xfer_q *q);

/* The type's destroy(): cancels everything (callbacks with -ECANCELED inside this call, or
 * right after the current callback when called from one), then frees the queue and calls
 * ops->owner_free(owner). */
void zd_xfer_q_destroy(zd_xfer_q *q);

#endif
