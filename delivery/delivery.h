/* The delivery engine (docs/DESIGN.md "Delivery"): matching and fan-out of policies into work
 * streams, the workers that send notices through the configured gateways and settle their
 * outcomes in the funnel, retries, dead letters, done detection, and the scheduler that starts
 * scheduled policies. zhidad creates one per instance; several instances share the work through
 * Redis. Runs on the caller's event loop. */
#ifndef ZD_DELIVERY_H
#define ZD_DELIVERY_H

#include <stdbool.h>
#include <stdint.h>

#include "common/metrics.h"
#include "redis/redis.h"

struct event_base;
struct cJSON;
struct zd_follower;
struct zd_gateways;
struct zd_schema;
struct zd_reason_names;

typedef struct zd_delivery zd_delivery;

typedef struct zd_delivery_opts {
    struct event_base *base;          /* borrowed */
    zd_redis_opts redis;              /* the engine's own connection (strings copied) */
    const struct zd_schema *schema;   /* borrowed: compiles policies' rules */
    struct zd_follower *follower;     /* borrowed: the index (audiences, gid -> profile id) */
    struct zd_gateways *gateways;     /* borrowed; must outlive the engine's stop */
    const struct cJSON *gateways_cfg; /* borrowed: the config's "gateways" (types, concurrency) */
    const char *timezone;             /* borrowed: "today" for rules with ages */
    const struct zd_reason_names *names; /* borrowed, may be NULL: region and industry names
                                            for the reasons of notices */
    const char *consumer;                /* stable consumer name (copied) */
    int partitions;
    int chunk;             /* profiles per fan-out chunk */
    int claim_idle_ms;     /* an entry idle this long is reclaimed by any instance */
    int inflight;          /* entries in progress per instance */
    int lease_ms;          /* the scheduler lease */
    int poll_ms;           /* the sweep interval */
    int cap_count;         /* per-profile frequency cap: notices per window, 0 = none */
    int64_t cap_window_ms; /* the cap's sliding window */
} zd_delivery_opts;

/* Creates the engine (no I/O yet). Returns 0 and *out (caller frees with zd_delivery_free()),
 * -EINVAL for bad options, or -ENOMEM. */
int zd_delivery_new(const zd_delivery_opts *o, zd_delivery **out);
/* Opens its Redis connection and starts the sweeper, the claim heartbeat and the scheduler.
 * 0 or -ENOMEM. */
int zd_delivery_start(zd_delivery *d);
/* Stops taking new work: timers off, batches not yet handed to a gateway dropped. Entries in
 * progress stay pending in Redis and are reclaimed after a restart (or by another instance):
 * never lost. Idempotent. Call before freeing the gateways. */
void zd_delivery_stop(zd_delivery *d);
/* Frees the engine (stopping it first). Outstanding gateway batches must have been cancelled
 * (zd_gateways_free) before. NULL: no-op. */
void zd_delivery_free(zd_delivery *d);
/* Asks for a sweep soon: the API calls it after creating a policy. policy_id is only a hint. */
void zd_delivery_kick(zd_delivery *d, const char *policy_id);

/* Writes the engine's families (zhida_delivery_*) into m; d may be NULL (an API-only
 * instance: families without samples). */
void zd_delivery_metrics(const zd_delivery *d, zd_metrics *m);
/* The engine's Redis connection's counters (zeros when d is NULL). */
void zd_delivery_redis_stats(const zd_delivery *d, zd_redis_stats *st);

#endif
