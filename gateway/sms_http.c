/* The "sms_http" gateway type (gateway/sms_http.h): each notice one request to the provider on
 * the shared one-notice-per-transfer queue (gateway/xfer.c); characters and segments of each
 * text counted (common/text.h zd_sms_count) and the segments of delivered ones summed. */
#include "gateway/sms_http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/text.h"
#include "gateway/wire.h"
#include "gateway/xfer.h"

typedef struct sms {
    const zd_gw_host *host;
    zd_sms_http_opts o;
    zd_xfer_q *q;
    long segments; /* of delivered notices */
} sms;

/* One notice's request. */
typedef struct sms_job {
    sms *s;
    char *body;
    size_t body_len;
    int segments;
    struct curl_slist *hdrs;
} sms_job;

static void job_free(void *p)
{
    sms_job *j = p;
    if (!j)
        return;
    free(j->body);
    curl_slist_free_all(j->hdrs);
    free(j);
}

static void owner_free(void *p)
{
    sms *s = p;
    zd_sms_http_opts_free(&s->o);
    free(s);
}

static int prepare(void *owner, void *job, void *easy, const char **why)
{
    sms *s = owner;
    sms_job *j = job;
    CURL *e = easy;
    curl_easy_setopt(e, CURLOPT_URL, s->o.url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "zhida-sms/1");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, s->o.timeout_ms);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
    if (s->o.put)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->hdrs);
    return 0;
}

static void finish(void *owner, void *job, const zd_xfer_end *end, zd_gw_result *r)
{
    sms *s = owner;
    sms_job *j = job;
    zd_sms_http_classify(&s->o, end->curl_rc, end->status, end->retry_after, end->answer,
                         end->answer_len, s->host->unix_ms(s->host) / 1000, r);
    if (r->outcome == ZD_GW_DELIVERED)
        s->segments += j->segments;
}

static const zd_xfer_ops sms_ops = {
    .prepare = prepare, .finish = finish, .job_free = job_free, .owner_free = owner_free};

static int sms_check(const char *options_json, const char *key_prefix, char *err, size_t errlen)
{
    zd_sms_http_opts o;
    int rc = zd_sms_http_opts_parse(options_json, key_prefix, &o, err, errlen);
    if (rc == 0)
        zd_sms_http_opts_free(&o);
    return rc;
}

static int sms_create(const zd_gw_host *host, const char *name, const char *options_json,
                      const char *key_prefix, void **out, char *err, size_t errlen)
{
    *out = NULL;
    sms *s = calloc(1, sizeof(*s));
    if (!s)
        goto oom;
    s->host = host;
    int rc = zd_sms_http_opts_parse(options_json, key_prefix, &s->o, err, errlen);
    if (rc) {
        free(s);
        return rc;
    }
    if (!(s->q = zd_xfer_q_new(host, &sms_ops, s, s->o.concurrency, s->o.rate))) {
        owner_free(s);
        goto oom;
    }
    *out = s;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

static int sms_max_batch(void *gw)
{
    return 1;
}

static int make_job(sms *s, const zd_notice *n, sms_job **out)
{
    if (!zd_wire_id_ok(n->id))
        return -EINVAL;
    sms_job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->s = s;
    struct zd_sms_count c = {0};
    j->segments = zd_sms_count(n->body, strlen(n->body), &c) == 0 ? c.segments : 1;
    char line[ZD_WIRE_ID_MAX + 32];
    struct curl_slist *h = NULL, *t;
    if (!(j->body = zd_sms_http_render(&s->o, n, &j->body_len)))
        goto oom;
#define ADD(str)                                                                                   \
    do {                                                                                           \
        if (!(t = curl_slist_append(h, (str))))                                                    \
            goto oom;                                                                              \
        h = t;                                                                                     \
    } while (0)
    ADD(s->o.format == ZD_SMS_JSON ? "Content-Type: application/json; charset=utf-8"
                                   : "Content-Type: application/x-www-form-urlencoded");
    ADD("Expect:");
    /* A provider that honors it drops the copy of a retried request. */
    snprintf(line, sizeof(line), "Idempotency-Key: %s", n->id);
    ADD(line);
    if (s->o.auth_header)
        ADD(s->o.auth_header);
#undef ADD
    j->hdrs = h;
    *out = j;
    return 0;
oom:
    curl_slist_free_all(h);
    job_free(j);
    return -ENOMEM;
}

static int sms_send(void *gw, const zd_notice *notices, size_t n, zd_gw_done_fn done, void *udata)
{
    sms *s = gw;
    if (zd_xfer_q_dying(s->q))
        return -ECANCELED;
    if (n != 1)
        return -EINVAL;
    sms_job *j;
    int rc = make_job(s, &notices[0], &j);
    return rc ? rc : zd_xfer_q_submit(s->q, j, done, udata);
}

static int sms_test(void *gw, const zd_notice *notice, zd_gw_test_fn done, void *udata)
{
    sms *s = gw;
    if (zd_xfer_q_dying(s->q))
        return -ECANCELED;
    sms_job *j;
    int rc = make_job(s, notice, &j);
    return rc ? rc : zd_xfer_q_submit_test(s->q, j, done, udata);
}

static void sms_stats(void *gw, zd_gw_stats *st)
{
    sms *s = gw;
    zd_xfer_q_stats(s->q, st);
    st->segments = s->segments;
}

static void sms_destroy(void *gw)
{
    sms *s = gw;
    if (s)
        zd_xfer_q_destroy(s->q);
}

const zd_gateway_type zd_sms_http_type = {
    .abi_version = ZD_GATEWAY_ABI_VERSION,
    .name = "sms_http",
    .check = sms_check,
    .create = sms_create,
    .max_batch = sms_max_batch,
    .send = sms_send,
    .test = sms_test,
    .stats = sms_stats,
    .destroy = sms_destroy,
};
