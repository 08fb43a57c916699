/* The HTTP API's wiring: registers every resource's routes, starts the profile store and the
 * change-stream follower, and serves /metrics and the audit stream. */
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/notify.h"
#include "profiles/follower.h"
#include "profiles/store.h"
#include "zhidad/api.h"
#include "zhidad/audit.h"
#include "zhidad/http.h"
#include "zhidad/service.h"

/* Audience latency histogram (seconds), Prometheus style: cumulative buckets. */
static const double match_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                       0.005,  0.01,    0.025,  0.05,  0.1};
#define NBUCKETS (sizeof(match_buckets) / sizeof(match_buckets[0]))
static unsigned long match_hist[NBUCKETS + 1];
static unsigned long match_count;
static double match_sum;
static unsigned long audience_failures;

void zd_api_observe_match(zd_service *svc, double ms)
{
    double s = ms / 1000.0;
    size_t i = 0;
    while (i < NBUCKETS && s > match_buckets[i])
        i++;
    match_hist[i]++;
    match_count++;
    match_sum += s;
}

void zd_api_count_audience_failure(zd_service *svc)
{
    audience_failures++;
}

/* API key use goes to the audit stream as one summary record per key and interval
 * ("key.use", key, role, "used=N denied=M") rather than one record per request. */
static void audit_key_use(const zd_apikey *key, const zd_key_uses *uses, void *udata)
{
    char counts[64];
    snprintf(counts, sizeof(counts), "used=%lu denied=%lu", uses->used, uses->denied);
    zd_service *svc = udata;
    zd_audit(svc->redis, "key.use", key->name, zd_role_name(key->role), counts);
}

static void key_audit_tick(evutil_socket_t fd, short what, void *arg)
{
    zd_service *svc = arg;
    zd_http_key_uses(svc->http, true, audit_key_use, svc);
}

/* ---- /metrics --------------------------------------------------------------------------- */

typedef struct metrics_buf {
    char *s;
    size_t len, cap;
} metrics_buf;

static void mprintf(metrics_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mprintf(metrics_buf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 8192) + (size_t)n;
        char *s = realloc(b->s, cap);
        if (!s)
            return;
        b->s = s;
        b->cap = cap;
    }
}

static void http_stat(const zd_http_stat *st, void *udata)
{
    metrics_buf *b = udata;
    mprintf(b,
            "zhida_http_requests_total{method=\"%s\",route=\"%s\",status=\"%d\"} %lu\n"
            "zhida_http_request_seconds_sum{method=\"%s\",route=\"%s\",status=\"%d\"} %.6f\n",
            st->method, st->pattern, st->status, st->count, st->method, st->pattern, st->status,
            st->seconds);
}

static void key_metric(const zd_apikey *key, const zd_key_uses *uses, void *udata)
{
    metrics_buf *b = udata;
    const char *role = zd_role_name(key->role);
    mprintf(b,
            "zhida_api_key_requests_total{key=\"%s\",role=\"%s\",outcome=\"used\"} %lu\n"
            "zhida_api_key_requests_total{key=\"%s\",role=\"%s\",outcome=\"denied\"} %lu\n",
            key->name, role, uses->used, key->name, role, uses->denied);
}

/* Per-role sums, indexed by the role's bit (ZD_ROLE_* are 1, 2, 4, 8). */
typedef struct role_uses {
    zd_key_uses by_role[ZD_ROLES_ALL + 1];
} role_uses;

static void key_metric_sum(const zd_apikey *key, const zd_key_uses *uses, void *udata)
{
    role_uses *ru = udata;
    ru->by_role[key->role].used += uses->used;
    ru->by_role[key->role].denied += uses->denied;
}

/* API key use. /metrics answers without a key, so by default it does not tell who holds which
 * key: the counters are summed per role (every role always present). With metrics_key_names
 * each key used so far has its own series, labeled with its name. */
static void key_metrics(zd_service *svc, metrics_buf *b)
{
    mprintf(b,
            "# HELP zhida_api_key_requests_total Requests per API key %s (403s as denied).\n"
            "# TYPE zhida_api_key_requests_total counter\n",
            svc->cfg->metrics_key_names ? "name and role" : "role");
    if (svc->cfg->metrics_key_names) {
        zd_http_key_uses(svc->http, false, key_metric, b);
        return;
    }
    role_uses ru;
    memset(&ru, 0, sizeof(ru));
    zd_http_key_uses(svc->http, false, key_metric_sum, &ru);
    static const enum zd_role roles[] = {ZD_ROLE_ADMIN, ZD_ROLE_PUBLISHER, ZD_ROLE_APP,
                                         ZD_ROLE_VIEWER};
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        const char *role = zd_role_name(roles[i]);
        const zd_key_uses *u = &ru.by_role[roles[i]];
        mprintf(b,
                "zhida_api_key_requests_total{role=\"%s\",outcome=\"used\"} %lu\n"
                "zhida_api_key_requests_total{role=\"%s\",outcome=\"denied\"} %lu\n",
                role, u->used, role, u->denied);
    }
}

static void handle_metrics(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    metrics_buf b = {0};
    key_metrics(svc, &b);
    mprintf(&b, "# HELP zhida_http_requests_total HTTP requests by route and status.\n"
                "# TYPE zhida_http_requests_total counter\n");
    zd_http_foreach_stat(svc->http, http_stat, &b);

    mprintf(&b, "# HELP zhida_match_seconds Audience evaluation latency (preview).\n"
                "# TYPE zhida_match_seconds histogram\n");
    unsigned long cum = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        cum += match_hist[i];
        mprintf(&b, "zhida_match_seconds_bucket{le=\"%g\"} %lu\n", match_buckets[i], cum);
    }
    mprintf(&b, "zhida_match_seconds_bucket{le=\"+Inf\"} %lu\n", match_count);
    mprintf(&b, "zhida_match_seconds_sum %.6f\nzhida_match_seconds_count %lu\n", match_sum,
            match_count);

    const zd_index *ix = svc->follower ? zd_follower_index(svc->follower) : NULL;
    zd_index_stats is = {0};
    if (ix)
        zd_index_get_stats(ix, &is);
    zd_follower_stats fs = {0};
    if (svc->follower)
        zd_follower_get_stats(svc->follower, &fs);
    mprintf(&b,
            "# TYPE zhida_index_profiles gauge\nzhida_index_profiles %llu\n"
            "# TYPE zhida_index_bitmaps gauge\nzhida_index_bitmaps %llu\n"
            "# TYPE zhida_index_bytes gauge\nzhida_index_bytes %llu\n"
            "# TYPE zhida_index_ready gauge\nzhida_index_ready %d\n"
            "# TYPE zhida_index_load_seconds gauge\nzhida_index_load_seconds %.3f\n"
            "# TYPE zhida_changes_read_total counter\nzhida_changes_read_total %llu\n"
            "# TYPE zhida_changes_skipped_total counter\nzhida_changes_skipped_total %llu\n"
            "# TYPE zhida_index_rebuilds_total counter\nzhida_index_rebuilds_total %llu\n"
            "# TYPE zhida_changes_bad_total counter\nzhida_changes_bad_total %llu\n",
            (unsigned long long)is.profiles, (unsigned long long)is.bitmaps,
            (unsigned long long)is.total_bytes, svc->index_ready ? 1 : 0, fs.load_ms / 1000.0,
            (unsigned long long)fs.entries, (unsigned long long)fs.skipped,
            (unsigned long long)fs.reloads, (unsigned long long)fs.bad);
    mprintf(&b,
            "# HELP zhida_index_stale 1 while the index is known wrong and previews answer 503.\n"
            "# TYPE zhida_index_stale gauge\nzhida_index_stale %d\n"
            "# HELP zhida_index_apply_failures_total Index updates that failed; each forces a "
            "rebuild.\n"
            "# TYPE zhida_index_apply_failures_total counter\n"
            "zhida_index_apply_failures_total %llu\n"
            "# HELP zhida_changes_gaps_total Rebuilds because change entries were trimmed or "
            "deleted unread.\n"
            "# TYPE zhida_changes_gaps_total counter\nzhida_changes_gaps_total %llu\n"
            "# HELP zhida_redis_dataset_changes_total Rebuilds because Redis lost data or holds "
            "another data set (epoch).\n"
            "# TYPE zhida_redis_dataset_changes_total counter\n"
            "zhida_redis_dataset_changes_total %llu\n"
            "# HELP zhida_redis_incompatible 1 while the Redis server is older than 7.0.\n"
            "# TYPE zhida_redis_incompatible gauge\nzhida_redis_incompatible %d\n"
            "# HELP zhida_audience_failures_total Audience evaluations that failed (out of "
            "memory) and answered 500.\n"
            "# TYPE zhida_audience_failures_total counter\nzhida_audience_failures_total %lu\n",
            fs.stale ? 1 : 0, (unsigned long long)fs.apply_failures, (unsigned long long)fs.gaps,
            (unsigned long long)fs.dataset_changes, fs.incompatible ? 1 : 0, audience_failures);

    zd_redis_stats rs = {0};
    zd_redis_get_stats(svc->redis, &rs);
    mprintf(&b,
            "# TYPE zhida_redis_inflight gauge\nzhida_redis_inflight %ld\n"
            "# TYPE zhida_redis_queued gauge\nzhida_redis_queued %ld\n"
            "# TYPE zhida_redis_reconnects_total counter\nzhida_redis_reconnects_total %ld\n"
            "# TYPE zhida_redis_timeouts_total counter\nzhida_redis_timeouts_total %ld\n"
            "# TYPE zhida_redis_errors_total counter\nzhida_redis_errors_total %ld\n",
            rs.inflight, rs.queued, rs.reconnects, rs.timeouts, rs.errors);
    zd_req_reply_text(req, 200, "text/plain; version=0.0.4", b.s ? b.s : "", b.len);
    free(b.s);
}

/* ---- wiring ----------------------------------------------------------------------------- */

int zd_api_register(zd_service *svc)
{
    int rc = zd_api_profiles_register(svc);
    if (rc == 0)
        rc = zd_api_rules_register(svc);
    if (rc == 0)
        rc = zd_http_route(svc->http, "GET", "/metrics", 0, handle_metrics, svc);
    return rc;
}

/* Erasure: every 5 s each partition's change stream loses the entries of profiles deleted more
 * than erase_grace_s ago (profiles/store.c). Every instance does it; the script is idempotent
 * and cheap when nothing is due. */
#define SCRUB_INTERVAL_S 5

static void scrub_done(int status, long long deleted, int partition, void *udata)
{
    if (status != 0)
        zd_warn("erase: could not scrub partition %d's change stream (%s)", partition,
                zd_strerror(status));
    else if (deleted > 0)
        zd_debug("erase: removed %lld change-stream entries of erased profiles from partition %d",
                 deleted, partition);
}

static void scrub_tick(evutil_socket_t fd, short what, void *arg)
{
    zd_service *svc = arg;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long cutoff =
        (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 - svc->cfg->erase_grace_s * 1000LL;
    for (int p = 0; p < svc->cfg->partitions; p++)
        if (zd_store_scrub(svc->store, p, cutoff, scrub_done, NULL) != 0)
            break; /* the client's queue is full: the next tick tries again */
}

static void index_ready(void *udata)
{
    zd_service *svc = udata;
    if (!svc->index_ready)
        zd_notify("READY=1\nSTATUS=index loaded, serving");
    svc->index_ready = true;
}

/* Redis < 7.0: at start-up zhidad cannot work at all, so it stops with an error; later (a
 * fail-over to an old server) the follower stops serving and /readyz answers 503. */
static void redis_incompatible(const char *version, void *udata)
{
    zd_service *svc = udata;
    if (svc->index_ready)
        return;
    zd_error_log("Redis %s at %s is older than 7.0, which zhida requires: stopping", version,
                 svc->cfg->redis);
    svc->exit_status = 1;
    event_base_loopbreak(svc->base);
}

int zd_service_start(zd_service *svc)
{
    svc->store = zd_store_new(svc->redis, svc->cfg->partitions, svc->cfg->change_stream_maxlen);
    if (!svc->store)
        return -ENOMEM;
    const zd_config *cfg = svc->cfg;
    zd_follower_opts fo = {
        .redis = zd_config_redis_opts(cfg, "follower"),
        .schema = cfg->schema,
        .partitions = cfg->partitions,
        .on_ready = index_ready,
        .on_incompatible = redis_incompatible,
        .udata = svc,
    };
    svc->follower = zd_follower_new(svc->base, &fo);
    if (!svc->follower)
        return -ENOMEM;
    svc->key_audit_ev = event_new(svc->base, -1, EV_PERSIST, key_audit_tick, svc);
    struct timeval every = {svc->cfg->key_audit_interval_s, 0};
    if (!svc->key_audit_ev || evtimer_add(svc->key_audit_ev, &every) != 0)
        return -ENOMEM;
    svc->scrub_ev = event_new(svc->base, -1, EV_PERSIST, scrub_tick, svc);
    struct timeval scrub_every = {SCRUB_INTERVAL_S, 0};
    if (!svc->scrub_ev || evtimer_add(svc->scrub_ev, &scrub_every) != 0)
        return -ENOMEM;
    return 0;
}

void zd_service_quiesce(zd_service *svc)
{
    /* No new maintenance commands: the stop waits for the API connection to fall idle. */
    if (svc->scrub_ev) {
        event_free(svc->scrub_ev);
        svc->scrub_ev = NULL;
    }
    if (svc->key_audit_ev) {
        /* The last interval's counts; main.c then runs the loop until Redis has answered. */
        event_free(svc->key_audit_ev);
        svc->key_audit_ev = NULL;
        key_audit_tick(-1, 0, svc);
    }
}

void zd_service_stop(zd_service *svc)
{
    /* Normally done already. When it was not (a second signal, a failed start), the records
     * are still queued, and freeing the Redis client then reports each as not appended. */
    zd_service_quiesce(svc);
    zd_follower_free(svc->follower);
    svc->follower = NULL;
    zd_store_free(svc->store);
    svc->store = NULL;
}
