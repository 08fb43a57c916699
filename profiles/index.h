/* The in-memory inverted index: compressed bitmaps (CRoaring) over index ids (zd_gid).
 * One bitmap per keyword value, per tag, per code prefix at every level; bit-sliced bitmaps
 * for numbers and dates, plus cumulative bitmaps at round thresholds (numbers: 50, 300,
 * 2000...; dates: 1 January of every second year) and, for dates, one bitmap per calendar
 * month, so that a range settles nearly all members at once and compares only the members of
 * the bins around its bounds slice by slice.
 * Plain C: no event loop, no Redis. Not thread-safe; zhidad uses it from its one event-loop
 * thread. */
#ifndef ZD_INDEX_H
#define ZD_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include <roaring/roaring.h>

#include "profiles/profile.h"

typedef struct zd_index zd_index;

/* Comparison operators for zd_index_range(). */
typedef enum zd_cmp { ZD_CMP_LT, ZD_CMP_LE, ZD_CMP_GT, ZD_CMP_GE, ZD_CMP_EQ } zd_cmp;

/* Creates an empty index for schema s (borrowed; must outlive the index). NULL on ENOMEM. */
zd_index *zd_index_new(const zd_schema *s);
/* zd_index_free(NULL) is a no-op. */
void zd_index_free(zd_index *ix);

/* Records that gid now holds profile `now` (borrowed). `old` is the value gid held before
 * according to the change stream (NULL for a new profile): its memberships are removed first.
 * Applying the same (old, now) twice is harmless, so a write applied locally and then again
 * from the change stream converges. Also records gid -> now->id for samples.
 * Returns 0 or -ENOMEM. */
int zd_index_put(zd_index *ix, uint32_t gid, const zd_profile *old, const zd_profile *now);

/* Removes gid and the memberships of `old` (borrowed, may be NULL when unknown: then gid is
 * dropped from every bitmap, one removal per bitmap, so a reused gid inherits nothing).
 * Returns 0, or -ENOMEM (only from test-only fault injection today; callers treat it like a
 * failed put: the index is no longer trusted and is rebuilt). */
int zd_index_del(zd_index *ix, uint32_t gid, const zd_profile *old);

/* Removes everything (before a full reload). */
void zd_index_clear(zd_index *ix);

/* The read side. Returned bitmaps are borrowed: valid until the next put/del/clear.
 * A lookup of a value nobody has returns NULL (an empty set). */
const roaring_bitmap_t *zd_index_universe(const zd_index *ix);         /* every live profile */
const roaring_bitmap_t *zd_index_exists(const zd_index *ix, int attr); /* has a value */
/* ZD_T_KEYWORD value, or ZD_T_TAGS tag. */
const roaring_bitmap_t *zd_index_keyword(const zd_index *ix, int attr, const char *value);
/* ZD_T_CODE: profiles whose code starts with `prefix` (a whole level, includes the code itself). */
const roaring_bitmap_t *zd_index_code_prefix(const zd_index *ix, int attr, const char *prefix);
/* ZD_T_CODE: profiles whose code has exactly `len` characters. */
const roaring_bitmap_t *zd_index_code_len(const zd_index *ix, int attr, int len);

/* ZD_T_NUMBER (scaled) or ZD_T_DATE (day number): a new bitmap of profiles having attr with
 * value `op` v, restricted to `within` when it is not NULL (a hint that makes it cheaper;
 * the result is the same as intersecting afterwards). Caller frees with roaring_bitmap_free().
 * NULL only on ENOMEM. */
roaring_bitmap_t *zd_index_range(const zd_index *ix, int attr, zd_cmp op, int64_t v,
                                 const roaring_bitmap_t *within);

/* ZD_T_NUMBER or ZD_T_DATE: a new bitmap of profiles having attr with lo <= value <= hi,
 * restricted to within as for zd_index_range(). One evaluation for both bounds: cheaper than
 * two ranges intersected (an age equality is a one-year date range). Caller frees with
 * roaring_bitmap_free(). NULL only on ENOMEM. */
roaring_bitmap_t *zd_index_between(const zd_index *ix, int attr, int64_t lo, int64_t hi,
                                   const roaring_bitmap_t *within);

/* The union of bms[0..n) (borrowed; NULL entries are empty sets), evaluated one chunk at a
 * time on plain words: the OR-lists of rules over index bitmaps. Caller frees with
 * roaring_bitmap_free(); NULL only on ENOMEM. */
roaring_bitmap_t *zd_index_union(const roaring_bitmap_t *const *bms, int n);

/* The profile id string of gid, or NULL if gid is not live. Borrowed. */
const char *zd_index_id(const zd_index *ix, uint32_t gid);

/* Calls fn for every distinct value of attr with a non-empty bitmap: for ZD_T_KEYWORD and
 * ZD_T_TAGS each value; for ZD_T_CODE each prefix of exactly `level` characters (level must be
 * one of the attribute's level lengths). The bitmap is borrowed for the call. */
typedef void (*zd_index_value_fn)(const char *value, const roaring_bitmap_t *bm, void *udata);
void zd_index_foreach_value(const zd_index *ix, int attr, int level, zd_index_value_fn fn,
                            void *udata);

/* Statistics for /metrics and the benchmarks. */
typedef struct zd_index_stats {
    uint64_t profiles;     /* live profiles */
    uint64_t bitmaps;      /* number of bitmaps */
    uint64_t bitmap_bytes; /* serialized size of all bitmaps */
    uint64_t id_bytes;     /* gid -> id table */
    uint64_t total_bytes;  /* best estimate of heap bytes held by the index */
} zd_index_stats;
void zd_index_get_stats(const zd_index *ix, zd_index_stats *st);

/* Compacts bitmaps (run containers) after a bulk load. */
void zd_index_optimize(zd_index *ix);

#endif
