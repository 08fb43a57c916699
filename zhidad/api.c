/* The HTTP API's wiring: registers every resource's routes, starts the profile store and the
 * change-stream follower, and serves /metrics and the audit stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/notify.h"
#include "delivery/calculator.h"
#include "delivery/delivery.h"
#include "delivery/gateways.h"
#include "delivery/inbox.h"
#include "profiles/follower.h"
#include "profiles/store.h"
#include "redis/timer.h"
#include "zhidad/api.h"
#include "zhidad/api_policies.h"
#include "zhidad/audit.h"
#include "zhidad/http.h"
#include "zhidad/service.h"

/* Audience latency (seconds) for /metrics. */
static const double match_le[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                  0.005,  0.01,    0.025,  0.05,  0.1};
static const zd_hist_bounds match_bounds = {match_le, sizeof(match_le) / sizeof(match_le[0])};
static zd_hist match_hist;
static unsigned long audience_failures;

void zd_api_observe_match(zd_service *svc, double ms)
{
    zd_hist_observe(&match_hist, &match_bounds, ms / 1000.0);
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

static void key_audit_tick(void *arg)
{
    zd_service *svc = arg;
    zd_http_key_uses(svc->http, true, audit_key_use, svc);
}

/* ---- /metrics --------------------------------------------------------------------------- */

/* Every family is written whole (HELP, TYPE, its samples) before the next one starts
 * (common/metrics.h); tests/integration/test_metrics_format.py runs promtool on the result. */

static void http_count(const zd_http_stat *st, void *udata)
{
    char status[16];
    snprintf(status, sizeof(status), "%d", st->status);
    zd_metrics_int(
        udata, (const char *[]){"method", st->method, "route", st->pattern, "status", status, NULL},
        (long long)st->count);
}

static void http_latency(const zd_http_latency *l, void *udata)
{
    zd_metrics_hist(udata,
                    (const char *[]){"method", l->method, "route", l->pattern, "status_class",
                                     l->status_class, NULL},
                    l->hist, &zd_http_latency_bounds);
}

static void key_metric(const zd_apikey *key, const zd_key_uses *uses, void *udata)
{
    const char *role = zd_role_name(key->role);
    zd_metrics_int(udata, (const char *[]){"key", key->name, "role", role, "outcome", "used", NULL},
                   (long long)uses->used);
    zd_metrics_int(udata,
                   (const char *[]){"key", key->name, "role", role, "outcome", "denied", NULL},
                   (long long)uses->denied);
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
static void key_metrics(zd_service *svc, zd_metrics *m)
{
    zd_metrics_family(m, "zhida_api_key_requests_total", "counter",
                      svc->cfg->metrics_key_names
                          ? "Requests per API key name and role (403s as denied)."
                          : "Requests per API key role (403s as denied).");
    if (svc->cfg->metrics_key_names) {
        zd_http_key_uses(svc->http, false, key_metric, m);
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
        zd_metrics_int(m, (const char *[]){"role", role, "outcome", "used", NULL},
                       (long long)u->used);
        zd_metrics_int(m, (const char *[]){"role", role, "outcome", "denied", NULL},
                       (long long)u->denied);
    }
}

/* A family with one unlabeled sample. */
static void one(zd_metrics *m, const char *name, const char *type, const char *help, long long v)
{
    zd_metrics_family(m, name, type, help);
    zd_metrics_int(m, NULL, v);
}

static void handle_metrics(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    zd_metrics m = {0};
    zd_metrics_family(&m, "zhida_build_info", "gauge",
                      "Always 1; the labels tell which zhidad answers.");
    zd_metrics_int(&m, (const char *[]){"version", svc->version ? svc->version : "dev", NULL}, 1);
    key_metrics(svc, &m);
    zd_metrics_family(&m, "zhida_http_requests_total", "counter",
                      "HTTP requests by method, route pattern and status.");
    zd_http_foreach_stat(svc->http, http_count, &m);
    zd_metrics_family(&m, "zhida_http_request_duration_seconds", "histogram",
                      "HTTP request latency, from the request's arrival to its reply, by "
                      "method, route pattern and status class.");
    zd_http_foreach_latency(svc->http, http_latency, &m);
    zd_metrics_family(&m, "zhida_match_seconds", "histogram",
                      "Audience evaluation latency (preview).");
    zd_metrics_hist(&m, NULL, &match_hist, &match_bounds);

    const zd_index *ix = svc->follower ? zd_follower_index(svc->follower) : NULL;
    zd_index_stats is = {0};
    if (ix)
        zd_index_get_stats(ix, &is);
    zd_follower_stats fs = {0};
    if (svc->follower)
        zd_follower_get_stats(svc->follower, &fs);
    one(&m, "zhida_index_profiles", "gauge", "Profiles in the index.", (long long)is.profiles);
    one(&m, "zhida_index_bitmaps", "gauge", "Bitmaps in the index.", (long long)is.bitmaps);
    one(&m, "zhida_index_bytes", "gauge", "Estimated heap bytes held by the index.",
        (long long)is.total_bytes);
    one(&m, "zhida_index_ready", "gauge", "1 once the index has been loaded from Redis.",
        svc->index_ready ? 1 : 0);
    zd_metrics_family(&m, "zhida_index_load_seconds", "gauge",
                      "Duration of the last full index load from Redis.");
    zd_metrics_value(&m, NULL, fs.load_ms / 1000.0);
    one(&m, "zhida_changes_read_total", "counter", "Change-stream entries read.",
        (long long)fs.entries);
    one(&m, "zhida_changes_skipped_total", "counter",
        "Change-stream entries read that this instance had already applied (its own writes).",
        (long long)fs.skipped);
    one(&m, "zhida_index_rebuilds_total", "counter",
        "Full index rebuilds completed after the first load.", (long long)fs.reloads);
    one(&m, "zhida_changes_bad_total", "counter",
        "Change entries or stored documents that could not be parsed.", (long long)fs.bad);
    one(&m, "zhida_index_stale", "gauge",
        "1 while the index is known wrong and previews answer 503.", fs.stale ? 1 : 0);
    one(&m, "zhida_index_apply_failures_total", "counter",
        "Index updates that failed; each forces a rebuild.", (long long)fs.apply_failures);
    one(&m, "zhida_changes_gaps_total", "counter",
        "Rebuilds because change entries were trimmed or deleted unread.", (long long)fs.gaps);
    one(&m, "zhida_redis_dataset_changes_total", "counter",
        "Rebuilds because Redis lost data or holds another data set (epoch).",
        (long long)fs.dataset_changes);
    one(&m, "zhida_redis_incompatible", "gauge", "1 while the Redis server is older than 7.0.",
        fs.incompatible ? 1 : 0);
    if (svc->cfg->redis_durability != ZD_DURABILITY_OFF)
        one(&m, "zhida_redis_durable", "gauge",
            "1 while Redis keeps zhida's data (appendonly yes, a maxmemory-policy that does not "
            "evict); 0 when it does not or cannot tell (see the log, /readyz).",
            svc->redis_durable == 1 ? 1 : 0);
    one(&m, "zhida_audience_failures_total", "counter",
        "Audience evaluations that failed (out of memory) and answered 500.",
        (long long)audience_failures);

    /* The API's connection and the bulk-import connection, by a conn label. */
    zd_import_stats imp;
    zd_api_import_stats(svc, &imp);
    zd_redis_stats rs[3] = {{0}, imp.redis, {0}};
    zd_redis_get_stats(svc->redis, &rs[0]);
    zd_delivery_redis_stats(svc->delivery, &rs[2]);
    static const char *const conn[3] = {"api", "import", "delivery"};
    static const struct {
        const char *name, *type, *help;
    } redis_families[6] = {
        {"zhida_redis_inflight", "gauge", "Commands sent on a Redis connection, not yet answered."},
        {"zhida_redis_inflight_bytes", "gauge",
         "Bytes of the commands sent on a Redis connection, not yet answered."},
        {"zhida_redis_queued", "gauge",
         "Commands waiting for a Redis connection (busy, over its budget, or reconnecting)."},
        {"zhida_redis_reconnects_total", "counter",
         "Successful reconnects of a Redis connection after its first connect."},
        {"zhida_redis_timeouts_total", "counter",
         "Redis commands failed by their deadline (redis_client.deadline_ms)."},
        {"zhida_redis_errors_total", "counter",
         "Redis error replies, plus commands failed by a lost connection or a full queue."},
    };
    for (int f = 0; f < 6; f++) {
        zd_metrics_family(&m, redis_families[f].name, redis_families[f].type,
                          redis_families[f].help);
        for (int c = 0; c < 3; c++) {
            long v[6] = {rs[c].inflight,   rs[c].inflight_bytes, rs[c].queued,
                         rs[c].reconnects, rs[c].timeouts,       rs[c].errors};
            zd_metrics_int(&m, (const char *[]){"conn", conn[c], NULL}, v[f]);
        }
    }
    one(&m, "zhida_console_sessions", "gauge",
        "Console sign-in sessions held by this instance (expired ones until swept).",
        zd_http_sessions(svc->http));
    one(&m, "zhida_imports_active", "gauge", "NDJSON imports being validated or written.",
        imp.active);
    one(&m, "zhida_import_batches_inflight", "gauge",
        "Import batches sent to Redis and not yet answered, over all imports.",
        imp.batches_inflight);
    zd_delivery_metrics(svc->delivery, &m);
    zd_metrics_process(&m);
    if (m.failed)
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory building /metrics");
    else
        zd_req_reply_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", m.s ? m.s : "",
                          m.len);
    zd_metrics_free(&m);
}

/* ---- wiring ----------------------------------------------------------------------------- */

bool zd_service_ready(const zd_service *svc)
{
    /* The index must be loaded and trusted: a rebuild after a failure, or a Redis older than
     * 7.0, makes the instance unready; with "redis_durability": "require", so does a Redis not
     * known to keep our data. */
    bool durable = svc->cfg->redis_durability != ZD_DURABILITY_REQUIRE || svc->redis_durable == 1;
    return zd_redis_ready(svc->redis) && svc->index_ready && svc->follower &&
           zd_follower_ready(svc->follower) && durable && !svc->stopping;
}

static bool ready_check(void *udata)
{
    return zd_service_ready(udata);
}

int zd_api_register(zd_service *svc)
{
    zd_http_set_ready(svc->http, ready_check, svc);
    int rc = zd_api_profiles_register(svc);
    if (rc == 0)
        rc = zd_api_calculator_register(svc);
    if (rc == 0)
        rc = zd_api_rules_register(svc);
    if (rc == 0)
        rc = zd_api_audit_register(svc);
    if (rc == 0)
        rc = zd_api_policies_register(svc);
    if (rc == 0)
        rc = zd_api_deadletters_register(svc);
    if (rc == 0)
        rc = zd_api_inbox_register(svc);
    if (rc == 0)
        rc = zd_api_gateways_register(svc);
    if (rc == 0)
        rc = zd_api_sessions_register(svc);
    if (rc == 0)
        rc = zd_api_console_register(svc);
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

static void scrub_tick(void *arg)
{
    zd_service *svc = arg;
    long long cutoff = zd_unix_ms() - svc->cfg->erase_grace_s * 1000LL;
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
    svc->stop_loop(svc);
}

/* Redis must keep what zhida writes (profiles/durability.h). "require": at start-up zhidad
 * refuses to run on a Redis that does not (or will not tell), later it turns unready until
 * Redis does again; "warn": a warning. Both say so once per connection and when a re-check
 * finds a change, not every few seconds. */
static void redis_durability(const zd_durability *d, bool first_on_connection, void *udata)
{
    zd_service *svc = udata;
    const zd_config *cfg = svc->cfg;
    bool require = cfg->redis_durability == ZD_DURABILITY_REQUIRE;
    int was = svc->redis_durable;
    bool changed = was != (d->ok ? 1 : 0) || strcmp(d->problem, svc->durability_problem) != 0;
    svc->redis_durable = d->ok ? 1 : 0;
    snprintf(svc->durability_problem, sizeof(svc->durability_problem), "%s", d->problem);
    if (first_on_connection && d->from_info)
        zd_info("Redis at %s: CONFIG GET is not available (%s): appendonly and maxmemory-policy "
                "read from INFO",
                cfg->redis, d->config_error[0] ? d->config_error : "no answer");
    if (d->ok) {
        if (was == 0)
            zd_info("Redis at %s keeps zhida's data again (appendonly %s, maxmemory-policy %s)",
                    cfg->redis, d->appendonly, d->policy);
        return;
    }
    if (!first_on_connection && !changed)
        return;
    char what[640], fix[128];
    if (d->known) {
        snprintf(what, sizeof(what), "Redis at %s does not keep zhida's data: %s", cfg->redis,
                 d->problem);
        snprintf(fix, sizeof(fix), "set %s in its redis.conf (as deploy/redis.conf does)", d->fix);
    } else {
        snprintf(what, sizeof(what), "Redis at %s: %s", cfg->redis, d->problem);
        snprintf(fix, sizeof(fix), "let zhidad's Redis user run CONFIG GET or INFO");
    }
    if (require && !svc->index_ready) {
        zd_error_log("%s. Either %s, or set \"redis_durability\": \"warn\" in the config to run "
                     "anyway: stopping",
                     what, fix);
        svc->exit_status = 1;
        svc->stop_loop(svc);
    } else if (require) {
        zd_error_log("%s; not ready until it does (%s, or \"redis_durability\": \"warn\")", what,
                     fix);
    } else {
        zd_warn("%s. To fix it, %s; running anyway because of \"redis_durability\": \"warn\"", what,
                fix);
    }
}

/* The delivery engine on a connection of its own, named by delivery.consumer (default
 * "<hostname>-<listen port>": stable across restarts, so that a restarted instance finds its
 * own pending work entries). */
static int delivery_start(zd_service *svc)
{
    const zd_config *cfg = svc->cfg;
    char consumer[192];
    if (cfg->delivery_consumer[0]) {
        snprintf(consumer, sizeof(consumer), "%s", cfg->delivery_consumer);
    } else {
        char host[64] = "zhidad";
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "zhidad");
        host[sizeof(host) - 1] = '\0';
        const char *port = strrchr(cfg->listen, ':');
        snprintf(consumer, sizeof(consumer), "%s-%s", host, port ? port + 1 : "0");
    }
    zd_delivery_opts o = {
        .base = svc->base,
        .redis = zd_config_redis_opts(cfg, "delivery"),
        .schema = cfg->schema,
        .follower = svc->follower,
        .gateways = svc->gateways,
        .gateways_cfg = cfg->gateways,
        .timezone = cfg->timezone,
        .names = &svc->names.names,
        .consumer = consumer,
        .partitions = cfg->partitions,
        .chunk = cfg->delivery_chunk,
        .claim_idle_ms = cfg->delivery_claim_idle_ms,
        .inflight = cfg->delivery_inflight,
        .lease_ms = cfg->delivery_lease_ms,
        .poll_ms = cfg->delivery_poll_ms,
        .cap_count = cfg->delivery_cap_count,
        .cap_window_ms = (int64_t)cfg->delivery_cap_days * 86400000,
    };
    int rc = zd_delivery_new(&o, &svc->delivery);
    if (rc == 0)
        rc = zd_delivery_start(svc->delivery);
    if (rc != 0)
        zd_log(ZD_LOG_ERROR, "delivery: cannot start (%s)", zd_strerror(rc));
    return rc;
}

int zd_service_start(zd_service *svc)
{
    svc->redis_durable = -1;
    if (zd_names_tables_load(&svc->names) != 0)
        return -ENOMEM;
    svc->store = zd_store_new(svc->redis, svc->cfg->partitions, svc->cfg->change_stream_maxlen);
    svc->calc = zd_calc_new(svc->redis, svc->cfg->schema);
    if (!svc->store || !svc->calc)
        return -ENOMEM;
    const zd_config *cfg = svc->cfg;
    zd_follower_opts fo = {
        .redis = zd_config_redis_opts(cfg, "follower"),
        .schema = cfg->schema,
        .partitions = cfg->partitions,
        .on_ready = index_ready,
        .on_incompatible = redis_incompatible,
        .on_durability = svc->cfg->redis_durability == ZD_DURABILITY_OFF ? NULL : redis_durability,
        .udata = svc,
    };
    svc->follower = zd_follower_new(svc->base, &fo);
    if (!svc->follower)
        return -ENOMEM;
    int rc = zd_api_import_start(svc);
    if (rc != 0)
        return rc;
    char err[320];
    zd_gateway_host_init(&svc->gw_host, svc->base);
    svc->inbox = zd_inbox_new(svc->redis, cfg->partitions);
    if (!svc->inbox)
        return -ENOMEM;
    rc =
        zd_gateways_new(&svc->gw_host, cfg->gateways, svc->inbox, &svc->gateways, err, sizeof(err));
    if (rc != 0) {
        zd_log(ZD_LOG_ERROR, "gateways: %s", err);
        return rc;
    }
    if (cfg->delivery_enabled && (rc = delivery_start(svc)) != 0)
        return rc;
    svc->key_audit_t = zd_timer_new(svc->base, key_audit_tick, svc);
    svc->scrub_t = zd_timer_new(svc->base, scrub_tick, svc);
    if (!svc->key_audit_t || !svc->scrub_t)
        return -ENOMEM;
    zd_timer_arm(svc->key_audit_t, svc->cfg->key_audit_interval_s * 1000L, 1);
    zd_timer_arm(svc->scrub_t, SCRUB_INTERVAL_S * 1000L, 1);
    return 0;
}

void zd_service_quiesce(zd_service *svc)
{
    /* No new work entries; those in progress stay pending in Redis for the restart. */
    zd_delivery_stop(svc->delivery);
    /* No new maintenance commands: the stop waits for the API connection to fall idle. */
    zd_timer_free(svc->scrub_t);
    svc->scrub_t = NULL;
    if (svc->key_audit_t) {
        /* The last interval's counts; main.c then runs the loop until Redis has answered. */
        zd_timer_free(svc->key_audit_t);
        svc->key_audit_t = NULL;
        key_audit_tick(svc);
    }
}

void zd_service_stop(zd_service *svc)
{
    /* Normally done already. When it was not (a second signal, a failed start), the records
     * are still queued, and freeing the Redis client then reports each as not appended. */
    zd_service_quiesce(svc);
    /* Imports apply their answered batches to the follower's index: stop them first. */
    zd_api_import_stop(svc);
    /* The gateways first: their batches' callbacks (cancelled) still reach the engine. */
    zd_delivery_stop(svc->delivery);
    zd_gateways_free(svc->gateways);
    svc->gateways = NULL;
    zd_delivery_free(svc->delivery);
    svc->delivery = NULL;
    zd_inbox_free(svc->inbox);
    svc->inbox = NULL;
    zd_follower_free(svc->follower);
    svc->follower = NULL;
    zd_calc_free(svc->calc);
    svc->calc = NULL;
    zd_store_free(svc->store);
    svc->store = NULL;
    zd_names_tables_free(&svc->names);
}
