/* Does the Redis server keep what zhida writes? Redis is zhida's only copy of the profiles, so
 * it needs the append-only file on (without it a restart comes back with the last snapshot at
 * best, or empty) and a maxmemory-policy that never evicts zhida's keys. Read with CONFIG GET
 * or, where the operator renamed or denied CONFIG, from INFO. The follower runs the check on
 * every connect and every few seconds; the daemon decides what a bad answer means. */
#ifndef ZD_DURABILITY_H
#define ZD_DURABILITY_H

#include <stdbool.h>

#include "redis/redis.h"

typedef struct zd_durability {
    bool known;            /* both settings were read */
    bool ok;               /* known, appendonly yes and a policy that does not evict our keys */
    bool from_info;        /* read (at least in part) from INFO: CONFIG GET was refused */
    char appendonly[8];    /* "yes" or "no"; "" when unknown */
    char policy[32];       /* maxmemory-policy; "" when unknown */
    char config_error[96]; /* what CONFIG GET answered when refused; "" otherwise */
    /* When !ok, what is wrong, for logs and /readyz: e.g. "appendonly is no (a restart loses
     * what was written since the last snapshot); maxmemory-policy is allkeys-lru, which
     * evicts keys when memory is full", or "cannot tell ...: CONFIG GET answered ..." */
    char problem[320];
    /* When !ok and known, the settings to change: "appendonly yes", "maxmemory-policy
     * noeviction" or both joined with ", ". */
    char fix[64];
} zd_durability;

/* True when a maxmemory-policy may evict zhida's keys: everything but "noeviction" and the
 * volatile-* policies (those evict only keys with a TTL, and zhida sets none). */
bool zd_durability_policy_evicts(const char *policy);

/* Fills d->known, ok, problem and fix from d->appendonly and d->policy ("" = unknown). */
void zd_durability_judge(zd_durability *d);

/* status 0: d holds the verdict (valid only during the call). Otherwise the commands failed
 * (-ECONNRESET, -ETIMEDOUT, -ECANCELED when the client is freed) and d is NULL. */
typedef void (*zd_durability_cb)(int status, const zd_durability *d, void *udata);

/* Sends CONFIG GET appendonly maxmemory-policy and INFO persistence memory on r (pipelined,
 * so the verdict arrives before any reply to a command sent after this call). Returns 0: cb
 * is called exactly once. Returns -ENOMEM or zd_redis_cmd's error: cb is not called. */
int zd_durability_check(zd_redis *r, zd_durability_cb cb, void *udata);

#endif
