/* The change-stream follower: builds this instance's index from Redis at start-up (zhidad is
 * not ready until it has), then keeps it current by reading every partition's change stream,
 * and rebuilds it when entries it never saw were trimmed away. It is the index's one owner. */
#ifndef ZD_FOLLOWER_H
#define ZD_FOLLOWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "profiles/index.h"
#include "redis/redis.h"

struct event_base;
typedef struct zd_follower zd_follower;

typedef struct zd_follower_opts {
    zd_redis_opts redis;           /* its own connection's address, password, deadlines; the name
                                      and queue sizes are the follower's */
    const zd_schema *schema;       /* borrowed; must outlive the follower */
    int partitions;                /* 1..ZD_PARTITIONS_MAX */
    void (*on_ready)(void *udata); /* called once, when the first load completes */
    void *udata;
} zd_follower_opts;

/* Creates a follower with its own Redis connection (the XREAD BLOCK must not stall API
 * commands). o is copied (its strings and schema are borrowed). Returns NULL on bad options or
 * ENOMEM. Caller frees with zd_follower_free(). */
zd_follower *zd_follower_new(struct event_base *base, const zd_follower_opts *o);
void zd_follower_free(zd_follower *fl);

/* The current index (borrowed; replaced after a rebuild, so do not keep it across callbacks). */
const zd_index *zd_follower_index(const zd_follower *fl);

/* Applies a write this instance just made, so that a client reads its own writes. entry is
 * the write's change-stream entry id: if the follower has already read that far, the write (and
 * possibly later ones to the same profile) is in the index and nothing is done — applying it
 * again could resurrect a profile another instance deleted since. Otherwise the entry will be
 * read again later, which converges (docs/DESIGN.md). old_json is the replaced document
 * (NULL: none); now is the new profile (NULL: deleted). All borrowed. */
void zd_follower_apply(zd_follower *fl, uint32_t gid, const char *entry, const char *old_json,
                       size_t old_len, const zd_profile *now);

typedef struct zd_follower_stats {
    uint64_t entries; /* change-stream entries read */
    uint64_t skipped; /* of which already applied locally (see zd_follower_apply) */
    uint64_t reloads; /* full rebuilds after the first load */
    uint64_t bad;     /* entries that could not be parsed (logged) */
    double load_ms;   /* duration of the last full load */
} zd_follower_stats;
void zd_follower_get_stats(const zd_follower *fl, zd_follower_stats *st);

#endif
