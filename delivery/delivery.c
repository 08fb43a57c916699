/* The delivery engine's frame: its life cycle, the sweeper that reads zd:{pol}:active every
 * poll interval and hands each policy to the stage its status calls for, the policy cache,
 * and /metrics. The stages are fanout.c, dispatch.c and scheduler.c. */
#include "delivery/delivery.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/clock.h"
#include "common/log.h"
#include "delivery/engine.h"
#include "matcher/reasons.h"
#include "matcher/rule.h"
#include "matcher/segment_store.h"
#include "profiles/follower.h"

struct zd_delivery {
    dl_engine e;
};

static const double latency_le[] = {0.05, 0.1, 0.25, 0.5, 1,    2.5,   5,    10,
                                    30,   60,  300,  900, 3600, 14400, 86400};
static const zd_hist_bounds latency_bounds = {latency_le, 15};

const char *dl_key(const dl_policy *pol, zd_policy_key k, char *buf)
{
    return zd_key_policy(k, pol->id, buf);
}

int dl_id_cmp(const char *a, const char *b)
{
    unsigned long long ams = 0, aseq = 0, bms = 0, bseq = 0;
    sscanf(a, "%llu-%llu", &ams, &aseq);
    sscanf(b, "%llu-%llu", &bms, &bseq);
    if (ams != bms)
        return ams < bms ? -1 : 1;
    if (aseq != bseq)
        return aseq < bseq ? -1 : 1;
    return 0;
}

void dl_policy_ref(dl_policy *pol)
{
    pol->refs++;
}

void dl_policy_unref(dl_policy *pol)
{
    pol->refs--;
}

void dl_kick(dl_engine *e)
{
    if (e->tick_t && !e->stopping)
        zd_timer_arm(e->tick_t, 1, 0);
}

static bool policy_id_ok(const char *s, size_t n)
{
    if (n == 0 || n > ZD_POLICY_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static dl_policy *policy_find(dl_engine *e, const char *id, size_t n)
{
    for (dl_policy *p = e->policies; p; p = p->next)
        if (strlen(p->id) == n && memcmp(p->id, id, n) == 0)
            return p;
    return NULL;
}

static void policy_free(dl_policy *pol)
{
    zd_policy_free(pol->p);
    zd_policy_free(pol->pending);
    zd_notice_tpls_free(pol->tpls);
    zd_rule_free(pol->rule);
    free(pol);
}

static int status_of(const char *s)
{
    static const char *const names[] = {"scheduled", "matching", "dispatching",
                                        "done",      "active",   "withdrawn"};
    for (int i = 0; s && i < 6; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static void srem_done(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r, (void)status, (void)reply, (void)udata;
}

/* Runs the stage the policy's status calls for. */
static void act(dl_engine *e, dl_policy *pol)
{
    if (e->stopping || !pol->p)
        return;
    bool slow = e->ticks % (e->o.poll_ms >= 1000 ? 1 : 1000 / e->o.poll_ms) == 0;
    switch (pol->status) {
    case ZD_POLICY_SCHEDULED:
        dl_scheduler_maybe_start(e, pol);
        break;
    case ZD_POLICY_MATCHING:
        dl_fanout_maybe(e, pol);
        break;
    case ZD_POLICY_DISPATCHING:
        if (pol->fanned < pol->chunks)
            dl_fanout_maybe(e, pol);
        dl_dispatch_policy(e, pol, slow);
        break;
    case ZD_POLICY_ACTIVE:
        dl_dispatch_policy(e, pol, slow);
        break;
    case ZD_POLICY_WITHDRAWN:
    case ZD_POLICY_DONE:
        /* What is queued here for it is not sent (the withdraw script counted it). A policy
         * still in the active set after its last script (a crash between the two slots)
         * leaves it now. */
        dl_dispatch_drop_queued(e, pol);
        if (pol->seen)
            zd_redis_cmd(e->redis, srem_done, NULL, "SREM %s %s", ZD_KEY_POLICY_ACTIVE, pol->id);
        break;
    default:
        break;
    }
}

/* The document is ready for the workers: gateway indexes resolved, templates compiled. */
static void policy_ready(dl_engine *e, dl_policy *pol, zd_policy *p)
{
    for (int i = 0; i < ZD_POLICY_ROUTES_MAX; i++)
        for (int j = 0; j < ZD_POLICY_CHAIN_MAX; j++)
            pol->gw[i][j] = i < p->nroutes && j < p->routes[i].n
                                ? zd_gateways_index(e->o.gateways, p->routes[i].gateways[j])
                                : -1;
    pol->p = p;
    act(e, pol);
}

static const char *prep_seg_lookup(const char *name, void *udata)
{
    const struct {
        const zd_segment *segs;
        int n;
    } *s = udata;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->segs[i].name, name) == 0)
            return s->segs[i].rule;
    return NULL;
}

/* Templates with {{reasons}}: the effective rule compiled once for the policy, with the saved
 * segments it names. */
static void prep_segments(int status, const zd_segment *segs, int n, void *udata)
{
    dl_policy *pol = udata;
    dl_engine *e = pol->e;
    dl_policy_unref(pol);
    zd_policy *p = pol->pending;
    pol->pending = NULL;
    if (!p)
        return;
    if (status != 0 || e->stopping || pol->p) {
        /* Read again at the next sweep. */
        zd_notice_tpls_free(pol->tpls);
        pol->tpls = NULL;
        zd_policy_free(p);
        return;
    }
    struct {
        const zd_segment *segs;
        int n;
    } ss = {segs, n};
    const char *text = p->effective_rule[0] ? p->effective_rule : p->rule;
    zd_rule_error err;
    if (zd_rule_compile(e->o.schema, text, strlen(text), prep_seg_lookup, &ss, &pol->rule, &err) !=
        0)
        zd_warn("delivery: policy %s: its rule no longer compiles (%s): notices without reasons",
                pol->id, err.message);
    policy_ready(e, pol, p);
}

static void doc_read(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    dl_policy *pol = udata;
    dl_engine *e = pol->e;
    pol->doc_busy = false;
    dl_policy_unref(pol);
    size_t len = 0;
    const char *s =
        status == 0 && zd_reply_is(reply, ZD_REPLY_STRING) ? zd_reply_str(reply, &len) : NULL;
    if (!s || pol->p || pol->pending)
        return;
    zd_policy *p = NULL;
    if (zd_policy_from_stored(s, len, &p) != 0) {
        zd_warn("delivery: policy %s: cannot read its stored document", pol->id);
        return;
    }
    int rc = zd_notice_tpls_new(p, e->o.schema, &pol->tpls);
    if (rc != 0) {
        /* Publish compiled them; a schema changed since (an attribute removed) can refuse. */
        zd_warn("delivery: policy %s: its templates no longer compile (%s): title and summary "
                "are sent",
                pol->id, zd_strerror(rc));
        pol->tpls = NULL;
    }
    pol->uses = zd_notice_tpls_uses(pol->tpls, NULL);
    if (!(pol->uses & ZD_TPL_USES_REASONS)) {
        policy_ready(e, pol, p);
        return;
    }
    pol->pending = p;
    dl_policy_ref(pol);
    if (zd_segments_all(e->redis, prep_segments, pol) != 0) {
        dl_policy_unref(pol);
        pol->pending = NULL;
        zd_notice_tpls_free(pol->tpls);
        pol->tpls = NULL;
        zd_policy_free(p);
    }
}

/* Called by dispatch.c per profile of a templated policy (engine.h). */
const cJSON *dl_personalize(dl_policy *pol, const char *id, const char *json, size_t jl,
                            int32_t today, cJSON **priv, zd_profile **prof, char *reasons,
                            size_t rcap, zd_notice_data *nd)
{
    dl_engine *e = pol->e;
    const cJSON *doc = NULL;
    if (pol->uses & (ZD_TPL_USES_ATTRS | ZD_TPL_USES_REASONS)) {
        zd_error err;
        if (zd_profile_parse(e->o.schema, id, json, jl, prof, &err) == 0)
            doc = (*prof)->doc;
    } else {
        const char *nl = memchr(json, '\n', jl);
        if (nl)
            doc = *priv = cJSON_ParseWithLength(nl + 1, jl - (size_t)(nl + 1 - json));
    }
    *nd = (zd_notice_data){.tpls = pol->tpls,
                           .fields = cJSON_GetObjectItemCaseSensitive(doc, "fields"),
                           .profile = *prof ? doc : NULL};
    if ((pol->uses & ZD_TPL_USES_REASONS) && pol->rule && *prof &&
        zd_rule_reasons(pol->rule, *prof, today, e->o.names, pol->p->reason_texts, "，", reasons,
                        rcap) > 0)
        nd->reasons = reasons;
    return doc;
}

static long long field_int(const zd_reply *a, size_t i)
{
    const char *s = zd_reply_str(zd_reply_at(a, i), NULL);
    return s ? strtoll(s, NULL, 10) : 0;
}

static void meta_read(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    dl_policy *pol = udata;
    dl_engine *e = pol->e;
    pol->meta_busy = false;
    dl_policy_unref(pol);
    if (status != 0 || !zd_reply_is(reply, ZD_REPLY_ARRAY) || zd_reply_len(reply) < 7 ||
        e->stopping)
        return;
    /* status chunks fanned job job_until publish_at_ms started_ms */
    const char *st = zd_reply_str(zd_reply_at(reply, 0), NULL);
    if (!st)
        return; /* no meta (yet): the create script writes it before SADD active */
    pol->status = status_of(st);
    pol->chunks = (long)field_int(reply, 1);
    pol->fanned = (long)field_int(reply, 2);
    const char *job = zd_reply_str(zd_reply_at(reply, 3), NULL);
    snprintf(pol->job, sizeof(pol->job), "%s", job ? job : "");
    pol->job_until = field_int(reply, 4);
    pol->publish_at_ms = field_int(reply, 5);
    pol->started_ms = field_int(reply, 6);
    if (!pol->p) {
        if (!pol->doc_busy && !pol->pending) {
            char k[ZD_POLICY_KEY_MAX];
            if (zd_redis_cmd(r, doc_read, pol, "HGET %s doc", dl_key(pol, ZD_PK_META, k)) == 0) {
                pol->doc_busy = true;
                dl_policy_ref(pol);
            }
        }
        return;
    }
    act(e, pol);
}

static void refresh(dl_engine *e, dl_policy *pol)
{
    if (pol->meta_busy)
        return;
    char k[ZD_POLICY_KEY_MAX];
    if (zd_redis_cmd(e->redis, meta_read, pol,
                     "HMGET %s status chunks fanned job job_until publish_at_ms started_ms",
                     dl_key(pol, ZD_PK_META, k)) == 0) {
        pol->meta_busy = true;
        dl_policy_ref(pol);
    }
}

static void active_read(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    dl_engine *e = udata;
    e->sweeping = false;
    if (status != 0 || e->stopping || !zd_reply_is(reply, ZD_REPLY_ARRAY))
        return;
    for (dl_policy *p = e->policies; p; p = p->next)
        p->seen = false;
    for (size_t i = 0; i < zd_reply_len(reply); i++) {
        size_t n = 0;
        const char *id = zd_reply_str(zd_reply_at(reply, i), &n);
        if (!id || !policy_id_ok(id, n))
            continue;
        dl_policy *pol = policy_find(e, id, n);
        if (!pol) {
            if (!(pol = calloc(1, sizeof(*pol))))
                continue;
            pol->e = e;
            memcpy(pol->id, id, n);
            pol->status = -1;
            snprintf(pol->own_after, sizeof(pol->own_after), "0");
            snprintf(pol->claim_cursor, sizeof(pol->claim_cursor), "0-0");
            pol->next = e->policies;
            e->policies = pol;
        }
        pol->seen = true;
    }
    /* Forget policies that left the set and hold nothing here any more; refresh the rest
     * (those with entries in progress too, so that a withdraw stops their queued batches). */
    for (dl_policy **pp = &e->policies; *pp;) {
        dl_policy *pol = *pp;
        if (!pol->seen && pol->refs == 0 && pol->inflight == 0) {
            *pp = pol->next;
            policy_free(pol);
            continue;
        }
        refresh(e, pol);
        pp = &pol->next;
    }
}

static void tick(void *udata)
{
    dl_engine *e = udata;
    if (e->stopping)
        return;
    zd_timer_arm(e->tick_t, e->o.poll_ms, 0);
    e->ticks++;
    if (e->sweeping || !zd_redis_ready(e->redis))
        return;
    if (zd_redis_cmd(e->redis, active_read, e, "SMEMBERS %s", ZD_KEY_POLICY_ACTIVE) == 0)
        e->sweeping = true;
}

static void claim_tick(void *udata)
{
    dl_engine *e = udata;
    if (!e->stopping && zd_redis_ready(e->redis))
        dl_dispatch_claim_tick(e);
}

/* ---- life cycle --------------------------------------------------------------------------- */

/* The bound on batches handed to one gateway at once: 2 x its concurrency (the webhook's
 * "concurrency", 16 by default; 4 for types without one), so that one batch waits ready
 * behind every one being sent and the rest stays in Redis, not in memory. */
static void gateway_setup(dl_engine *e)
{
    for (int i = 0; i < e->ngw; i++) {
        const char *name = zd_gateways_name(e->o.gateways, i);
        const cJSON *c =
            e->o.gateways_cfg ? cJSON_GetObjectItemCaseSensitive(e->o.gateways_cfg, name) : NULL;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "type");
        const cJSON *conc = cJSON_GetObjectItemCaseSensitive(c, "concurrency");
        bool webhook = cJSON_IsString(t) && strcmp(t->valuestring, "webhook") == 0;
        int n = cJSON_IsNumber(conc) ? conc->valueint : webhook ? 16 : 4;
        e->gwq[i].limit = 2 * (n > 0 ? n : 1);
        e->gwq[i].needs_contact = !(cJSON_IsString(t) && strcmp(t->valuestring, "inbox") == 0);
    }
}

int zd_delivery_new(const zd_delivery_opts *o, zd_delivery **out)
{
    *out = NULL;
    if (!o->base || !o->consumer || !o->consumer[0] || strlen(o->consumer) >= 128 || o->chunk < 1 ||
        o->claim_idle_ms < 100 || o->inflight < 1 || o->lease_ms < 100 || o->poll_ms < 1 ||
        o->partitions < 1)
        return -EINVAL;
    zd_delivery *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    dl_engine *e = &d->e;
    e->o = *o;
    snprintf(e->consumer, sizeof(e->consumer), "%s", o->consumer);
    e->o.consumer = e->consumer;
    e->ngw = zd_gateways_count(o->gateways);
    if (e->ngw > 0 && !(e->gwq = calloc((size_t)e->ngw, sizeof(*e->gwq)))) {
        free(d);
        return -ENOMEM;
    }
    gateway_setup(e);
    *out = d;
    return 0;
}

int zd_delivery_start(zd_delivery *d)
{
    dl_engine *e = &d->e;
    if (e->started)
        return 0;
    e->redis = zd_redis_new(e->o.base, &e->o.redis);
    e->tick_t = zd_timer_new(e->o.base, tick, e);
    e->claim_t = zd_timer_new(e->o.base, claim_tick, e);
    e->lease_t = zd_timer_new(e->o.base, dl_scheduler_tick, e);
    if (!e->redis || !e->tick_t || !e->claim_t || !e->lease_t || dl_reverse_start(e) != 0)
        return -ENOMEM;
    e->started = true;
    zd_timer_arm(e->tick_t, e->o.poll_ms, 0);
    zd_timer_arm(e->claim_t, e->o.claim_idle_ms / 4, 1);
    zd_timer_arm(e->lease_t, e->o.lease_ms / 3 > 0 ? e->o.lease_ms / 3 : 1, 1);
    zd_info("delivery: consumer \"%s\", %d entries in flight at most, chunks of %d", e->consumer,
            e->o.inflight, e->o.chunk);
    return 0;
}

void zd_delivery_stop(zd_delivery *d)
{
    if (!d || d->e.stopping)
        return;
    dl_engine *e = &d->e;
    e->stopping = true;
    zd_timer_stop(e->tick_t);
    zd_timer_stop(e->claim_t);
    zd_timer_stop(e->lease_t);
    dl_reverse_stop(e);
    dl_dispatch_drop_queued(e, NULL);
    if (e->inflight > 0)
        zd_info("delivery: stopping with %d entries in progress; they stay pending in Redis and "
                "are reclaimed after a restart",
                e->inflight);
}

void zd_delivery_free(zd_delivery *d)
{
    if (!d)
        return;
    dl_engine *e = &d->e;
    zd_delivery_stop(d);
    e->freeing = true;
    zd_timer_free(e->tick_t);
    zd_timer_free(e->claim_t);
    zd_timer_free(e->lease_t);
    e->tick_t = e->claim_t = e->lease_t = NULL;
    /* Every command still out is answered -ECANCELED here: the callbacks release what they
     * hold (jobs end without XACK: their entries stay pending in Redis). */
    zd_redis_free(e->redis);
    e->redis = NULL;
    dl_reverse_free(e);
    dl_dispatch_drop_queued(e, NULL);
    while (e->policies) {
        dl_policy *p = e->policies;
        e->policies = p->next;
        policy_free(p);
    }
    free(e->gwq);
    free(d);
}

void zd_delivery_kick(zd_delivery *d, const char *policy_id)
{
    (void)policy_id;
    if (d && d->e.started)
        dl_kick(&d->e);
}

void zd_delivery_redis_stats(const zd_delivery *d, zd_redis_stats *st)
{
    memset(st, 0, sizeof(*st));
    if (d && d->e.redis)
        zd_redis_get_stats(d->e.redis, st);
}

void zd_delivery_metrics(const zd_delivery *d, zd_metrics *m)
{
    const dl_engine *e = d ? &d->e : NULL;
    static const char *const outcome[4] = {"delivered", "transient", "permanent", "no_contact"};
    long rv_changes = 0, rv_notices = 0;
    if (e)
        dl_reverse_counts(e, &rv_changes, &rv_notices);
    zd_metrics_family(m, "zhida_delivery_notices_total", "counter",
                      "Notice outcomes by gateway: delivered, transient and permanent answers of "
                      "the gateway, and no_contact (the profile has no contact for it).");
    for (int i = 0; e && i < e->ngw; i++)
        for (int o = 0; o < 4; o++)
            zd_metrics_int(m,
                           (const char *[]){"gateway", zd_gateways_name(e->o.gateways, i),
                                            "outcome", outcome[o], NULL},
                           e->gwq[i].sent[o]);
    struct {
        const char *name, *type, *help;
        long long v;
    } one[] = {
        {"zhida_delivery_retries_total", "counter",
         "Notices scheduled for another attempt after a transient failure.", e ? e->retries : 0},
        {"zhida_delivery_dead_letters_total", "counter",
         "Notices moved to a policy's dead-letter stream.", e ? e->dead : 0},
        {"zhida_delivery_stale_results_total", "counter",
         "Results of notices whose state had already moved on (a duplicate send after a "
         "reclaim or restart): ignored.",
         e ? e->stale : 0},
        {"zhida_delivery_deleted_entries_total", "counter",
         "Pending work entries found deleted from their stream (should stay 0).",
         e ? e->deleted_entries : 0},
        {"zhida_delivery_chunks_fanned_total", "counter",
         "Fan-out chunks written into work streams by this instance.", e ? e->chunks_fanned : 0},
        {"zhida_delivery_queue_pending", "gauge",
         "Work entries pending (read, not acknowledged) over the active policies, refreshed "
         "every few seconds.",
         e ? e->queue_pending : 0},
        {"zhida_delivery_chunks_inflight", "gauge", "Work entries this instance is processing now.",
         e ? e->inflight : 0},
        {"zhida_delivery_scheduler_leader", "gauge",
         "1 while this instance holds the scheduler lease.", e && e->leader ? 1 : 0},
        {"zhida_reverse_changes_total", "counter",
         "Profile changes this instance tested against the active policies (reverse matching).",
         rv_changes},
        {"zhida_reverse_notices_total", "counter",
         "Profiles that newly matched an active policy and got its notice (reverse matching).",
         rv_notices},
    };
    for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
        zd_metrics_family(m, one[i].name, one[i].type, one[i].help);
        if (e)
            zd_metrics_int(m, NULL, one[i].v);
    }
    zd_metrics_family(m, "zhida_delivery_queue_oldest_seconds", "gauge",
                      "Age of the oldest pending work entry over the active policies (0 when "
                      "none), refreshed every few seconds.");
    if (e)
        zd_metrics_value(m, NULL,
                         e->queue_oldest_ms > 0 ? (double)(zd_unix_ms() - e->queue_oldest_ms) / 1e3
                                                : 0.0);
    zd_metrics_family(m, "zhida_delivery_latency_seconds", "histogram",
                      "From a policy's start of dispatch (started_ms) to a receiver's acceptance "
                      "of its notice.");
    if (e)
        zd_metrics_hist(m, NULL, &e->latency, &latency_bounds);
}

void dl_observe_latency(dl_engine *e, int64_t started_ms, int64_t at_ms)
{
    if (started_ms > 0 && at_ms >= started_ms)
        zd_hist_observe(&e->latency, &latency_bounds, (double)(at_ms - started_ms) / 1e3);
}
