/* What delivery/inbox.c (the API's reads and writes) and delivery/inbox_gw.c (the gateway
 * type) share: the store's struct and the script runner. Not for other modules. */
#ifndef ZD_DELIVERY_INBOX_PRIVATE_H
#define ZD_DELIVERY_INBOX_PRIVATE_H

#include <stddef.h>

#include "delivery/inbox.h"
#include "redis/redis.h"

struct zd_inbox {
    zd_redis *redis;
    int partitions;
    struct policy_cache *cache; /* inbox.c: policies' status and routes, kept briefly */
};

/* Sends EVAL script with the nkeys keys, then the nargs arguments (all borrowed; the
 * command copies them). cb as zd_redis_cmd's: exactly once, never from inside this call.
 * Returns 0 or a negative code (cb will not run). */
int zd_inbox_eval(zd_inbox *ib, const char *script, int nkeys, const char *const *keys, int nargs,
                  const char *const *args, zd_redis_cb cb, void *udata);

#endif
