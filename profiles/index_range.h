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

/* Most months a cut settles: the whole months between a bound and the boundaries around it,
 * for both bounds of an interval. */
#define ZD_CUT_MONTHS 48

/* A bin of a cut: the members of ex in both sets, of which the bit slices keep those with
 * value >= ge (when has_ge) and < lt (when has_lt). Their values lie in [min, max] (each end
 * open without has_min / has_max): the slices above the highest bit in which the two ends
 * differ are then the same for all of them, and are skipped. */
typedef struct zd_cutbin {
    zd_thrset in[2];
    bool has_ge, has_lt, has_min, has_max;
    int64_t ge, lt, min, max;
} zd_cutbin;

/* A range through the threshold structures, evaluated one chunk at a time over ex (the
 * attribute's members, restricted to within): the members settled by two boundaries (those of
 * ex in both core sets), or by whole months (those in any of months), plus those each bin's
 * comparison keeps. Everything borrowed; a zd_thrcut describes, it owns nothing. */
typedef struct zd_thrcut {
    zd_thrset core[2];
    int nmonths;
    const roaring_bitmap_t *months[ZD_CUT_MONTHS];
    int nbins;
    zd_cutbin bins[2];
} zd_thrcut;

/* The members of exists (borrowed) with value `op` v, restricted to within (NULL: no
 * restriction), by the bit slices b alone. Caller frees with roaring_bitmap_free(); NULL only
 * on ENOMEM. */
roaring_bitmap_t *zd_bsi_range(const zd_bsi *b, const roaring_bitmap_t *exists, zd_cmp op,
                               int64_t v, const roaring_bitmap_t *within);

/* The members of exists selected by cut (see zd_thrcut), restricted to within. The core, month
 * and bin sets must be subsets of exists that tell apart members by their value as the cut
 * says. Caller frees with roaring_bitmap_free(); NULL only on ENOMEM. */
roaring_bitmap_t *zd_cut_range(const zd_bsi *b, const roaring_bitmap_t *exists,
                               const roaring_bitmap_t *within, const zd_thrcut *cut);

#endif
