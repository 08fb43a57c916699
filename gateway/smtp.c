/* The "smtp" gateway type (gateway/smtp.h): each notice one message, sent with libcurl's SMTP
 * on the shared one-notice-per-transfer queue (gateway/xfer.c). Reply codes: 4xx TRANSIENT,
 * 5xx PERMANENT, no reply (connection, TLS, timeout) TRANSIENT. */
#include "gateway/smtp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "gateway/retry.h"
#include "gateway/wire.h"
#include "gateway/xfer.h"

typedef struct smtp {
    const zd_gw_host *host;
    zd_smtp_opts o;
    char *mail_from; /* "<from>" */
    zd_xfer_q *q;
} smtp;

typedef struct smtp_job {
    char *msg;
    size_t len, off;
    struct curl_slist *rcpt;
} smtp_job;

static void job_free(void *p)
{
    smtp_job *j = p;
    if (!j)
        return;
    free(j->msg);
    curl_slist_free_all(j->rcpt);
    free(j);
}

static void owner_free(void *p)
{
    smtp *s = p;
    zd_smtp_opts_free(&s->o);
    free(s->mail_from);
    free(s);
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *udata)
{
    smtp_job *j = udata;
    size_t n = size * nmemb;
    if (n > j->len - j->off)
        n = j->len - j->off;
    memcpy(buf, j->msg + j->off, n);
    j->off += n;
    return n;
}

static int prepare(void *owner, void *job, void *easy, const char **why)
{
    smtp *s = owner;
    smtp_job *j = job;
    CURL *e = easy;
    /* A retry reads the message from the start again. */
    j->off = 0;
    curl_easy_setopt(e, CURLOPT_URL, s->o.url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, s->o.timeout_ms);
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, s->mail_from);
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, j->rcpt);
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(e, CURLOPT_READDATA, j);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)j->len);
    if (strncmp(s->o.url, "smtp:", 5) == 0)
        curl_easy_setopt(e, CURLOPT_USE_SSL,
                         s->o.starttls == ZD_SMTP_TLS_REQUIRE ? (long)CURLUSESSL_ALL
                         : s->o.starttls == ZD_SMTP_TLS_TRY   ? (long)CURLUSESSL_TRY
                                                              : (long)CURLUSESSL_NONE);
    if (s->o.username) {
        curl_easy_setopt(e, CURLOPT_USERNAME, s->o.username);
        curl_easy_setopt(e, CURLOPT_PASSWORD, s->o.password);
    }
    return 0;
}

static void finish(void *owner, void *job, const zd_xfer_end *end, zd_gw_result *r)
{
    smtp *s = owner;
    memset(r, 0, sizeof(*r));
    long code = end->status;
    if (end->curl_rc == CURLE_OK) {
        r->outcome = ZD_GW_DELIVERED;
        snprintf(r->detail, sizeof(r->detail), "SMTP %ld: accepted", code ? code : 250);
    } else if (code >= 400 && code <= 499) {
        r->outcome = ZD_GW_TRANSIENT;
        snprintf(r->detail, sizeof(r->detail), "SMTP %ld: try again later", code);
    } else if (code >= 500 && code <= 599) {
        r->outcome = ZD_GW_PERMANENT;
        snprintf(r->detail, sizeof(r->detail), "SMTP %ld: refused", code);
    } else {
        /* No reply to go by: the transport's class (connection, TLS, timeout: transient). */
        zd_retry_classify(end->curl_rc, 0, NULL, 0, s->o.timeout_ms, r);
    }
}

static const zd_xfer_ops smtp_ops = {
    .prepare = prepare, .finish = finish, .job_free = job_free, .owner_free = owner_free};

static int smtp_check(const char *options_json, const char *key_prefix, char *err, size_t errlen)
{
    zd_smtp_opts o;
    int rc = zd_smtp_opts_parse(options_json, key_prefix, &o, err, errlen);
    if (rc == 0)
        zd_smtp_opts_free(&o);
    return rc;
}

static int smtp_create(const zd_gw_host *host, const char *name, const char *options_json,
                       const char *key_prefix, void **out, char *err, size_t errlen)
{
    *out = NULL;
    smtp *s = calloc(1, sizeof(*s));
    if (!s)
        goto oom;
    s->host = host;
    int rc = zd_smtp_opts_parse(options_json, key_prefix, &s->o, err, errlen);
    if (rc) {
        free(s);
        return rc;
    }
    size_t n = strlen(s->o.from) + 3;
    if (!(s->mail_from = malloc(n))) {
        owner_free(s);
        goto oom;
    }
    snprintf(s->mail_from, n, "<%s>", s->o.from);
    if (!(s->q = zd_xfer_q_new(host, &smtp_ops, s, s->o.concurrency, s->o.rate))) {
        owner_free(s);
        goto oom;
    }
    *out = s;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

static int smtp_max_batch(void *gw)
{
    return 1;
}

/* Queues one notice: a malformed address fails PERMANENT without a connection. */
static int submit(smtp *s, const zd_notice *n, zd_gw_done_fn done, zd_gw_test_fn test_done,
                  void *udata)
{
    if (zd_xfer_q_dying(s->q))
        return -ECANCELED;
    if (!zd_wire_id_ok(n->id))
        return -EINVAL;
    smtp_job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    if (!zd_smtp_address_ok(n->to)) {
        /* The address itself is personal data: the detail does not quote it. */
        zd_gw_result r = {.outcome = ZD_GW_PERMANENT};
        snprintf(r.detail, sizeof(r.detail), "the contact is not an e-mail address");
        return zd_xfer_q_submit_result(s->q, j, &r, done, test_done, udata);
    }
    char rcpt[260];
    snprintf(rcpt, sizeof(rcpt), "<%s>", n->to);
    if (!(j->msg = zd_smtp_message(&s->o, n, s->host->unix_ms(s->host), &j->len)) ||
        !(j->rcpt = curl_slist_append(NULL, rcpt))) {
        job_free(j);
        return -ENOMEM;
    }
    return test_done ? zd_xfer_q_submit_test(s->q, j, test_done, udata)
                     : zd_xfer_q_submit(s->q, j, done, udata);
}

static int smtp_send(void *gw, const zd_notice *notices, size_t n, zd_gw_done_fn done, void *udata)
{
    if (n != 1)
        return -EINVAL;
    return submit(gw, &notices[0], done, NULL, udata);
}

static int smtp_test(void *gw, const zd_notice *notice, zd_gw_test_fn done, void *udata)
{
    return submit(gw, notice, NULL, done, udata);
}

static void smtp_stats(void *gw, zd_gw_stats *st)
{
    zd_xfer_q_stats(((smtp *)gw)->q, st);
}

static void smtp_destroy(void *gw)
{
    smtp *s = gw;
    if (s)
        zd_xfer_q_destroy(s->q);
}

const zd_gateway_type zd_smtp_type = {
    .abi_version = ZD_GATEWAY_ABI_VERSION,
    .name = "smtp",
    .check = smtp_check,
    .create = smtp_create,
    .max_batch = smtp_max_batch,
    .send = smtp_send,
    .test = smtp_test,
    .stats = smtp_stats,
    .destroy = smtp_destroy,
};
