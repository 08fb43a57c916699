/* The index's threshold bitmaps: range-encoded bitmaps at round numbers and at 1 January of
 * every second year, so that a range leaves only one bin to the bit slices. Internal to the
 * index (profiles/index*.c). */
#ifndef ZD_INDEX_THR_H
#define ZD_INDEX_THR_H

#include <stdbool.h>
#include <stdint.h>

#include <roaring/roaring.h>

#include "profiles/index_bsi.h"
#include "profiles/schema.h"

/* Range-encoded bitmaps at canonical boundaries, one list per type: for ZD_T_NUMBER round
 * numbers, 0 and +-{1,2,3,5} x 10^k in the attribute's unscaled units (policy thresholds are
 * nearly always such numbers); for ZD_T_DATE January 1 of every ZD_THR_DATE_STEP-th year (an
 * age rule compares with a date that lies in one such bin). Boundary b
 * stands for T_b = {members with value < b}; a range at a boundary is then one bitmap, and any
 * other range leaves only the members of one bin [b_lo, b_hi) to the bit slices.
 *
 * Each boundary stores the smaller side: T_b itself, or (upper) U_b = exists \ T_b, the members
 * >= b. Skewed attributes put nearly everyone below the high boundaries and above the low ones,
 * so both memory and the copy a query makes stay proportional to the minority side. A side that
 * grows past two thirds of the members flips, which leaves it at most a third: a flip costs one
 * whole-bitmap operation per Theta(members) updates.
 *
 * Active boundaries are a window [lo, hi) of the canonical list, from the largest boundary <=
 * the smallest value stored so far (for numbers, <= the schema's minimum) up to the first one
 * above every value stored so far; a value outside extends the window. Every stored value lies
 * in [bounds[lo], bounds[hi - 1]) unless the list ran out, so a new boundary's outer side is
 * (nearly always) empty when it is made. Values beyond the list are still exact: the bins below
 * the window and above it are open-ended, and the bit slices compare their members. */

#define ZD_THR_MAX 160 /* 0 and +-4 per decade over the int64 range fit in 153 */

/* Date boundaries: January 1 of the years FIRST, FIRST + STEP, ... up to LAST. Dates outside
 * lie in the open-ended outer bins. Every second year rather than every year: measured on the
 * benchmark's age rules, as fast (the bit slices of a bin's members cost about the same for
 * one year or two) for 6 instead of 12 bytes per profile. */
#define ZD_THR_DATE_FIRST 1800
#define ZD_THR_DATE_LAST 2400
#define ZD_THR_DATE_STEP 2
#define ZD_THR_DATE_MAX ((ZD_THR_DATE_LAST - ZD_THR_DATE_FIRST) / ZD_THR_DATE_STEP + 1)

typedef struct zd_thr {
    roaring_bitmap_t *bm; /* T_b, or U_b when upper; NULL outside the active window */
    uint64_t n;           /* cardinality of bm */
    bool upper;
} zd_thr;

/* Month bins, dates only: months[i] holds the members whose date lies in the i-th calendar
 * month from January of ZD_THR_DATE_FIRST (NULL when nobody's does). Unlike the boundaries they
 * are equality-encoded, each member in one month: about 2 bytes per member. A date range settles
 * the whole months between its bound and the boundaries around it by their union, which leaves
 * the bit slices only the members of the bound's own month. */
#define ZD_THR_MONTHS ((ZD_THR_DATE_LAST - ZD_THR_DATE_FIRST) * 12)

typedef struct zd_thrs {
    int nb;                    /* canonical boundaries; 0 for attributes without thresholds */
    int cap;                   /* allocated entries of bounds and t */
    int lo, hi;                /* active window */
    int home;                  /* where the empty window starts */
    int64_t *bounds;           /* nb scaled boundaries, ascending */
    zd_thr *t;                 /* nb entries */
    roaring_bitmap_t **months; /* ZD_T_DATE: ZD_THR_MONTHS entries; NULL for numbers */
    int64_t mfirst, mlast;     /* the days the month bins cover: [mfirst, mlast) */
} zd_thrs;

/* Sets up the boundaries of a ZD_T_NUMBER or ZD_T_DATE attribute a (borrowed for the call).
 * Returns 0 or -ENOMEM (then zd_thr_free() cleans up). */
int zd_thr_init(zd_thrs *th, const zd_attr *a);
/* Frees the boundary bitmaps; the window is empty again. */
void zd_thr_clear(zd_thrs *th);
/* Frees everything; zd_thr_free() of a zeroed zd_thrs is a no-op. */
void zd_thr_free(zd_thrs *th);
/* The number of boundaries <= x. */
int zd_thr_count_le(const zd_thrs *th, int64_t x);
/* Moves gid's memberships (boundaries and month bin) from old (when had) to v. exists must
 * already hold gid and the bit slices b must hold v. Returns 0 or -ENOMEM. */
int zd_thr_set(zd_thrs *th, const zd_bsi *b, const roaring_bitmap_t *exists, uint32_t gid, bool had,
               int64_t old, int64_t v);
/* Drops gid from every boundary and from the month bin of old, its value in the index (NULL
 * when it has none: a gid is in a month bin only while it has a value). */
void zd_thr_remove(zd_thrs *th, uint32_t gid, const int64_t *old);
/* After a bulk load: every boundary stores exactly its smaller side, run-optimized. */
void zd_thr_optimize(zd_thrs *th, const roaring_bitmap_t *exists);

/* The members of exists (the attribute's; b its slices) with value >= a (when has_a) and < z
 * (when has_z), restricted to within when not NULL: settled by the boundaries and month bins
 * around the bounds, with the bit slices comparing only the members of the bins the bounds lie
 * in. number: the attribute is a ZD_T_NUMBER (which may prefer the slices alone). Caller frees
 * with roaring_bitmap_free(); NULL only on ENOMEM. */
roaring_bitmap_t *zd_thr_between(const zd_thrs *th, const zd_bsi *b, const roaring_bitmap_t *exists,
                                 bool number, bool has_a, int64_t a, bool has_z, int64_t z,
                                 const roaring_bitmap_t *within);

/* Calls fn for every bitmap the thresholds hold (statistics, optimize). */
void zd_thr_foreach_bitmap(const zd_thrs *th, void (*fn)(const roaring_bitmap_t *bm, void *udata),
                           void *udata);

#endif
