/* Profile persistence in Redis (SPEC §2, §7): every write is one Lua script over the keys of one
 * partition's hash slot — the profile hash, the dense-id counter, the change stream and the meta
 * hash (epoch, change count) — so a write, its dense id and its numbered change-stream entry
 * land together or not at all. It talks to
 * Redis through the adapter in redis/; the key layout is documented in docs/DESIGN.md. */
#ifndef ZD_STORE_H
#define ZD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "profiles/profile.h"

typedef struct zd_redis zd_redis;
typedef struct zd_store zd_store;

/* Creates a store on Redis client r (borrowed, must outlive the store) for `partitions`
 * partitions; change streams are trimmed to about maxlen entries each. Loads its scripts on
 * every (re)connect of r. Caller frees with zd_store_free(). */
zd_store *zd_store_new(zd_redis *r, int partitions, long maxlen);
void zd_store_free(zd_store *st);

/* Splits a stored hash value "dense,version|json" into its parts (json borrowed from v).
 * Returns 0 or -EINVAL. */
int zd_store_split_value(const char *v, size_t len, uint32_t *dense, uint64_t *version,
                         const char **json, size_t *json_len);

typedef enum zd_put_outcome {
    ZD_PUT_CREATED,
    ZD_PUT_UPDATED,
    ZD_PUT_UNCHANGED, /* the stored document was identical: nothing written, no stream entry */
    ZD_PUT_CONFLICT,  /* the expected version did not match (PATCH retries) */
    ZD_PUT_FULL,      /* the partition's dense-id space is exhausted */
} zd_put_outcome;

typedef struct zd_put_result {
    zd_put_outcome outcome;
    uint32_t gid;         /* zd_gid(partition, dense) */
    uint64_t version;     /* the version now stored */
    const char *old_json; /* ZD_PUT_UPDATED: the replaced indexed document (no fields or
                             contacts); valid only during the cb */
    size_t old_len;
    const char *entry; /* CREATED/UPDATED: the change-stream entry id; valid during the cb */
    uint64_t epoch;    /* the epoch of the partition's data set the write was made in */
} zd_put_result;

/* Called once per batch: status 0 with n results (valid only during the callback), or a
 * negative code (-ETIMEDOUT, -ECONNRESET, -EIO...) when the batch's outcome is unknown or it
 * failed as a whole; then results is NULL. */
typedef void (*zd_store_put_cb)(int status, const zd_put_result *results, int n, void *udata);

/* Writes n profiles (borrowed; all of partition `partition`) in one atomic script.
 * expect[i] (may be NULL as a whole or per item) makes item i conditional: "-" = only if
 * absent, a decimal version = only if that version is stored. Returns 0 (cb will be called) or
 * a negative code (cb will not be called). */
int zd_store_put_batch(zd_store *st, int partition, zd_profile *const *profiles, int n,
                       const char *const *expect, zd_store_put_cb cb, void *udata);

/* Reads profile id: status 0 and its stored form (NULL if there is none; zd_profile_parse
 * reads it), valid only during the cb. */
typedef void (*zd_store_get_cb)(int status, const char *json, size_t len, uint32_t gid,
                                uint64_t version, void *udata);
int zd_store_get(zd_store *st, const char *id, zd_store_get_cb cb, void *udata);

typedef enum zd_del_outcome {
    ZD_DEL_ABSENT,   /* there was no such profile */
    ZD_DEL_DELETED,  /* erased */
    ZD_DEL_CONFLICT, /* another version than the expected one is stored: nothing happened */
} zd_del_outcome;

/* Deletes profile id; expect (may be NULL) makes it conditional: a decimal version = only if
 * that version is stored. The cb gets status 0 and the outcome; on ZD_DEL_DELETED also the
 * gid, the erased indexed document and the change-stream entry id (both valid only during
 * the cb); on ZD_DEL_CONFLICT the version stored (in gid's place: 0). epoch is the partition's
 * data-set epoch the delete ran in (0 when status != 0). */
typedef void (*zd_store_del_cb)(int status, zd_del_outcome outcome, uint32_t gid,
                                const char *old_json, size_t old_len, const char *entry,
                                uint64_t epoch, void *udata);
int zd_store_del(zd_store *st, const char *id, const char *expect, zd_store_del_cb cb, void *udata);

/* Erasure (SPEC §2): removes from partition's change stream every entry of the profiles
 * deleted before cutoff_ms (Unix milliseconds), so no Redis key keeps an erased profile's
 * id or attributes. Entries younger than the cutoff stay, for followers still reading them.
 * cb (may be NULL) gets status 0 and the number of entries deleted, or a negative code. */
typedef void (*zd_store_scrub_cb)(int status, long long deleted, int partition, void *udata);
int zd_store_scrub(zd_store *st, int partition, long long cutoff_ms, zd_store_scrub_cb cb,
                   void *udata);

/* Data-set epochs. Each partition's meta hash (redis/keys.h) holds an epoch, written once by
 * the first script that finds it missing — so a Redis that lost its data gets a new one — and
 * returned by every write; the change-stream entries carry it too. An index built under one
 * epoch must never take writes of another (docs/DESIGN.md). Never 0; 0 means "unknown". */
#define ZD_EPOCH_TEXT 17 /* 16 hex digits and the NUL */
/* A fresh candidate for a missing epoch: distinct from every earlier one. */
uint64_t zd_store_new_epoch(void);
void zd_store_format_epoch(uint64_t epoch, char buf[ZD_EPOCH_TEXT]);
/* The epoch written as text s (len bytes), or 0 when s is not one. */
uint64_t zd_store_parse_epoch(const char *s, size_t len);

#endif
