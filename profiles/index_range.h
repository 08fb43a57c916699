/* The index's range evaluation: a comparison over the bit slices, optionally cut down by two
 * threshold boundaries, evaluated one 65536-gid chunk at a time on plain words. Internal to the
 * index (profiles/index*.c). */
#ifndef ZD_INDEX_RANGE_H
#define ZD_INDEX_RANGE_H

#include <stdbool.h>
#include <stdint.h>

#include <roaring/roaring.h>

#include "profiles/index.h"
#include "profiles/index_bsi.h"

/* A set given by a stored threshold bitmap: every member (bm NULL, !none), nobody (none), the
 * members in bm (keep) or those not in bm. */
typedef struct zd_thrset {
    const roaring_bitmap_t *bm;
    bool keep, none;
} zd_thrset;

/* With threshold bitmaps, a range is the `settled` members plus those of the bin that the bit
 * slices put on the wanted side. The bin is what `other` keeps of the rest (LT: settled T_lo,
 * other T_hi; GE: settled U_hi, other U_lo), and its values lie in [lo_v, hi_v]. */
typedef struct zd_thrcut {
    zd_thrset settled, other;
    bool has_lo, has_hi;
    int64_t lo_v, hi_v;
    int32_t cur[2]; /* scratch of the evaluation: set to 0 before */
} zd_thrcut;

/* The members of exists (borrowed) with value `op` v, restricted to within (NULL: no
 * restriction). Without cut by the bit slices b alone; with one (op LT or GE), the settled
 * members plus those of the bin the slices put on the wanted side. Caller frees with
 * roaring_bitmap_free(); NULL only on ENOMEM. */
roaring_bitmap_t *zd_bsi_range(const zd_bsi *b, const roaring_bitmap_t *exists, zd_cmp op,
                               int64_t v, const roaring_bitmap_t *within, zd_thrcut *cut);

#endif
