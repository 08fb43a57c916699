/* The change-stream follower: builds this instance's index from Redis at start-up (zhidad is
 * not ready until it has), then keeps it current by reading every partition's change stream,
 * and rebuilds it whenever it cannot prove the index equals Redis: entries it never read were
 * trimmed or deleted, Redis lost data or holds another data set (epoch), or applying a change
 * failed. It is the index's one owner. It refuses servers older than Redis 7.0. */
#ifndef ZD_FOLLOWER_H
#define ZD_FOLLOWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "profiles/durability.h"
#include "profiles/index.h"
#include "redis/redis.h"

struct event_base;
typedef struct zd_follower zd_follower;

/* The oldest Redis the follower works with: its gap checks read XINFO STREAM fields that
 * came with 7.0 (max-deleted-entry-id; the stream's first entry in a script). */
#define ZD_REDIS_MIN_MAJOR 7
#define ZD_REDIS_MIN_MINOR 0

/* True when a server of version major.minor is new enough. */
bool zd_follower_version_ok(int major, int minor);

typedef struct zd_follower_opts {
    zd_redis_opts redis;           /* its own connection's address, password, deadlines; the name
                                      and queue sizes are the follower's */
    const zd_schema *schema;       /* borrowed; must outlive the follower */
    int partitions;                /* 1..ZD_PARTITIONS_MAX */
    void (*on_ready)(void *udata); /* called once, when the first load completes */
    /* Called on every connect to a server older than ZD_REDIS_MIN_*; version is its
     * "redis_version" (valid during the call). The follower then neither loads nor reads
     * until a connect finds a newer server. NULL: only logged. */
    void (*on_incompatible)(const char *version, void *udata);
    /* Called with the durability verdict (profiles/durability.h) of every connect to a server
     * new enough (first_on_connection set) and of a re-check every few seconds on the same
     * connection (d valid during the call). The follower itself goes on either way. NULL: the
     * check is not made. */
    void (*on_durability)(const zd_durability *d, bool first_on_connection, void *udata);
    void *udata;
} zd_follower_opts;

/* Creates a follower with its own Redis connection (the XREAD BLOCK must not stall API
 * commands). o is copied (its strings and schema are borrowed). Returns NULL on bad options or
 * ENOMEM. Caller frees with zd_follower_free(). */
zd_follower *zd_follower_new(struct event_base *base, const zd_follower_opts *o);
void zd_follower_free(zd_follower *fl);

/* The index to answer from (borrowed; replaced after a rebuild, so do not keep it across
 * callbacks), or NULL when there is none to trust: before the first load, while it is being
 * rebuilt because it is known to be wrong (a failed apply, another data set in Redis, Redis
 * lost changes it holds), or while the server is too old. Callers then answer 503. A rebuild
 * after a mere gap (entries trimmed before this instance read them) keeps answering from the
 * old index, which is consistent, only behind, as any follower is. */
const zd_index *zd_follower_index(const zd_follower *fl);
/* zd_follower_index() != NULL. */
bool zd_follower_ready(const zd_follower *fl);
/* True once the first load has completed (a later NULL index means "rebuilding"). */
bool zd_follower_loaded(const zd_follower *fl);

/* Applies a write this instance just made, so that a client reads its own writes. entry is
 * the write's change-stream entry id and epoch its partition's data-set epoch, as the store
 * returned them. If the follower has already read that far, the write (and possibly later ones
 * to the same profile) is in the index and nothing is done — applying it again could resurrect
 * a profile another instance deleted since. Otherwise the entry will be read again later, which
 * converges (docs/DESIGN.md). A write of another epoch than the index's is never applied (its
 * dense id may name another profile in this index): it starts a rebuild instead. So does a
 * failed apply. old_json is the replaced document (NULL: none); now is the new profile (NULL:
 * deleted). All borrowed. */
void zd_follower_apply(zd_follower *fl, uint32_t gid, const char *entry, uint64_t epoch,
                       const char *old_json, size_t old_len, const zd_profile *now);

typedef struct zd_follower_stats {
    uint64_t entries;         /* change-stream entries read */
    uint64_t skipped;         /* of which already applied locally (see zd_follower_apply) */
    uint64_t reloads;         /* full rebuilds completed after the first load */
    uint64_t bad;             /* entries or documents that could not be parsed (logged) */
    uint64_t apply_failures;  /* index updates that failed (ENOMEM): each forces a rebuild */
    uint64_t gaps;            /* rebuilds started because entries were trimmed or deleted unread */
    uint64_t dataset_changes; /* rebuilds started because Redis lost data or changed epoch */
    bool stale;               /* the index is known wrong and not served until rebuilt */
    bool incompatible;        /* the server is older than Redis 7.0 */
    double load_ms;           /* duration of the last full load */
} zd_follower_stats;
void zd_follower_get_stats(const zd_follower *fl, zd_follower_stats *st);

#endif
