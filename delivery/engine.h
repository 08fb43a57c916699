/* The delivery engine's private state, shared by its modules: delivery.c (the sweeper, the
 * policy cache, metrics), fanout.c (matching and fan-out), dispatch.c (the workers) and
 * scheduler.c (the lease). Not for use outside delivery/. docs/DESIGN.md "Delivery". */
#ifndef ZD_DELIVERY_ENGINE_H
#define ZD_DELIVERY_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/metrics.h"
#include "delivery/delivery.h"
#include "delivery/gateways.h"
#include "delivery/notice.h"
#include "profiles/profile.h"
#include "delivery/policy.h"
#include "redis/keys.h"
#include "redis/redis.h"
#include "redis/timer.h"

struct cJSON;
typedef struct dl_engine dl_engine;
typedef struct dl_settle_part dl_settle_part;
typedef struct dl_job dl_job;
typedef struct dl_batch dl_batch;
typedef struct dl_reverse dl_reverse;

/* One policy this instance knows of: seen in zd:{pol}:active, or still holding work here. */
typedef struct dl_policy {
    dl_engine *e;
    char id[ZD_POLICY_ID_MAX + 1];
    zd_policy *p; /* the stored document, NULL until read (and its templates compiled) */
    /* Its templates, compiled once (NULL: none; notices carry the title and summary), what
     * they read (ZD_TPL_USES_*), and when they use {{reasons}} the effective rule compiled
     * once with the segments of the moment (NULL when it no longer compiles: no reasons). */
    zd_notice_tpls *tpls;
    unsigned uses;
    struct zd_rule *rule;
    zd_policy *pending; /* read, waiting for the segments to compile its rule */
    /* Gateway index (zd_gateways_index) of every gateway of every route's chain; -1 when the
     * name is no longer configured. */
    int gw[ZD_POLICY_ROUTES_MAX][ZD_POLICY_CHAIN_MAX];
    int status; /* zd_policy_status, -1 until read */
    int64_t publish_at_ms, started_ms;
    long chunks, fanned;
    char job[128]; /* fan-out job holder */
    int64_t job_until;
    bool seen;             /* in the last read of the active set */
    bool meta_busy;        /* a meta read in flight */
    bool doc_busy;         /* a doc read in flight */
    bool fanning;          /* this instance runs its fan-out now */
    bool reading;          /* an XREADGROUP or XAUTOCLAIM in flight */
    bool mover_busy;       /* the retry mover in flight */
    bool maint_busy;       /* trim, queue stats or the done check in flight */
    bool own_done;         /* the start-up read of our own pending entries (from 0) is over */
    char own_after[48];    /* where that read goes on */
    char claim_cursor[48]; /* the XAUTOCLAIM cursor */
    int inflight;          /* entries of this policy in progress here */
    long pending_entries;  /* XPENDING summary, for metrics */
    int64_t oldest_pending_ms;
    int refs; /* async operations and jobs that point here */
    struct dl_policy *next;
} dl_policy;

/* Per configured gateway: the batches waiting for a slot, and the bound on those handed over. */
typedef struct dl_gwq {
    dl_batch *head, *tail;
    int outstanding, limit;
    bool needs_contact; /* false for the inbox: its notices go to the profile itself */
    long sent[4];       /* notices by outcome: delivered, transient, permanent, no contact */
} dl_gwq;

struct dl_engine {
    zd_delivery_opts o;
    char consumer[128];
    zd_redis *redis;
    zd_timer *tick_t, *claim_t, *lease_t;
    dl_policy *policies;
    dl_job *jobs;    /* entries in progress, for the heartbeat */
    dl_batch *paced; /* batches waiting for their policy's pace tokens (on a timer) */
    /* Results waiting to be settled together at the end of the loop turn (dispatch.c). */
    dl_settle_part *settle_head, *settle_tail;
    int settle_notices;
    zd_timer *settle_t;
    int ngw;
    dl_gwq *gwq;
    int inflight; /* entries in progress */
    long ticks;
    bool started, stopping, freeing, sweeping;
    /* the scheduler */
    bool leader, lease_busy;
    long long fence;
    /* metrics */
    long retries, dead, stale, deleted_entries, chunks_fanned, fanouts;
    long queue_pending;
    int64_t queue_oldest_ms;
    zd_hist latency;
    dl_reverse *reverse; /* reverse.c */
};

/* ---- delivery.c ---- */
void dl_policy_ref(dl_policy *pol);
void dl_policy_unref(dl_policy *pol);
/* Asks for a sweep soon (after a state change worth acting on). */
void dl_kick(dl_engine *e);
const char *dl_key(const dl_policy *pol, zd_policy_key k, char *buf);
/* Adds a delivery latency (from started_ms to at_ms, Unix ms) to the histogram. */
void dl_observe_latency(dl_engine *e, int64_t started_ms, int64_t at_ms);
/* Stream ids "ms-seq": negative, 0, positive like strcmp. */
int dl_id_cmp(const char *a, const char *b);

/* What a templated policy's notices read of the stored profile json[0..jl) ("indexed\nprivate"):
 * the private part alone (contacts, fields, prefs) unless a template reads attrs or reasons,
 * which need the whole profile. Fills *nd (borrowing from *priv / *prof, which the caller frees
 * with cJSON_Delete / zd_profile_free, and from reasons, capacity rcap) and returns the
 * document read (private part or whole: both hold "contacts" and "prefs"), NULL when it does
 * not parse. */
const struct cJSON *dl_personalize(dl_policy *pol, const char *id, const char *json, size_t jl,
                                   int32_t today, struct cJSON **priv, zd_profile **prof,
                                   char *reasons, size_t rcap, zd_notice_data *nd);

/* ---- fanout.c ---- */
/* Claims the policy's fan-out job when it is free and runs matching, the freeze and the
 * chunks from meta.fanned on. Idempotent: a second call while one runs does nothing. */
void dl_fanout_maybe(dl_engine *e, dl_policy *pol);

/* ---- dispatch.c ---- */
/* One sweep's worker steps for a dispatching (or active) policy: reads entries (own pending
 * from 0 first, then new ones) while slots are free, moves due retries, and every few
 * seconds trims the stream, refreshes the queue metrics and checks whether it is done. */
void dl_dispatch_policy(dl_engine *e, dl_policy *pol, bool slow_tick);
/* Heartbeat of our in-flight entries (XCLAIM JUSTID) and XAUTOCLAIM of idle ones. */
void dl_dispatch_claim_tick(dl_engine *e);
/* Drops batches not yet handed to a gateway (stop, or a withdrawn policy: NULL = all). */
void dl_dispatch_drop_queued(dl_engine *e, dl_policy *pol);

/* ---- reverse.c ---- */
/* Reverse matching: its own Redis connection (blocking group reads of the change streams)
 * and timer. 0 or -ENOMEM (then dl_reverse_free cleans up). */
int dl_reverse_start(dl_engine *e);
void dl_reverse_stop(dl_engine *e);
/* After the engine's connection was freed (its callbacks may still reach the matcher). */
void dl_reverse_free(dl_engine *e);
/* Changes tested and notices added by this instance. */
void dl_reverse_counts(const dl_engine *e, long *changes, long *notices);

/* ---- scheduler.c ---- */
void dl_scheduler_tick(void *udata);
/* Starts a due scheduled policy when this instance holds the lease. */
void dl_scheduler_maybe_start(dl_engine *e, dl_policy *pol);

#endif
