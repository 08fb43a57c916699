/* The threshold bitmaps of index_thr.h: the canonical boundaries, keeping each boundary's
 * smaller side current as values change, and a range through the boundaries and the slices. */
#include "profiles/index_thr.h"

#include <errno.h>
#include <stdlib.h>

#include "common/date.h"
#include "profiles/index_bitmap.h"
#include "profiles/index_range.h"

/* Fills bounds with the canonical number boundaries for the scale 10^decimals that fit in an
 * int64; returns how many (at most ZD_THR_MAX). */
static int thr_canonical_number(int decimals, int64_t *bounds)
{
    static const int64_t ms[] = {1, 2, 3, 5};
    int64_t pos[ZD_THR_MAX / 2];
    int np = 0;
    int64_t scale = 1;
    for (int d = 0; d < decimals && scale <= INT64_MAX / 10; d++)
        scale *= 10;
    for (int64_t p = scale; np < ZD_THR_MAX / 2 - 4;) {
        for (int i = 0; i < 4; i++)
            if (p <= INT64_MAX / ms[i])
                pos[np++] = p * ms[i];
        if (p > INT64_MAX / 10)
            break;
        p *= 10;
    }
    int n = 0;
    for (int i = np - 1; i >= 0; i--)
        bounds[n++] = -pos[i];
    bounds[n++] = 0;
    for (int i = 0; i < np; i++)
        bounds[n++] = pos[i];
    return n;
}

/* The number of boundaries <= x. */
int zd_thr_count_le(const zd_thrs *th, int64_t x)
{
    int l = 0, h = th->nb;
    while (l < h) {
        int mid = l + (h - l) / 2;
        if (th->bounds[mid] <= x)
            l = mid + 1;
        else
            h = mid;
    }
    return l;
}

/* Fills bounds with the canonical date boundaries; returns how many (ZD_THR_DATE_MAX). */
static int thr_canonical_date(int64_t *bounds)
{
    int n = 0;
    for (int y = ZD_THR_DATE_FIRST; y <= ZD_THR_DATE_LAST; y += ZD_THR_DATE_STEP)
        bounds[n++] = zd_date_from_ymd(y, 1, 1);
    return n;
}

/* Sets up the boundaries of a ZD_T_NUMBER or ZD_T_DATE attribute. The window starts empty:
 * for numbers at the schema's minimum, for dates at the top of the list, from where the first
 * value moves it down to its own bin (thr_extend). */
int zd_thr_init(zd_thrs *th, const zd_attr *a)
{
    bool date = a->type == ZD_T_DATE;
    th->cap = date ? ZD_THR_DATE_MAX : ZD_THR_MAX;
    th->bounds = malloc((size_t)th->cap * sizeof(*th->bounds));
    th->t = calloc((size_t)th->cap, sizeof(*th->t));
    if (!th->bounds || !th->t)
        return -ENOMEM;
    th->nb = date ? thr_canonical_date(th->bounds) : thr_canonical_number(a->decimals, th->bounds);
    int k = date ? th->nb : zd_thr_count_le(th, a->min);
    th->home = th->lo = th->hi = k > 0 ? k - 1 : 0;
    return 0;
}

void zd_thr_clear(zd_thrs *th)
{
    for (int j = th->lo; j < th->hi; j++) {
        zd_bm_free(th->t[j].bm);
        th->t[j] = (zd_thr){0};
    }
    th->lo = th->hi = th->home;
}

void zd_thr_free(zd_thrs *th)
{
    zd_thr_clear(th);
    free(th->bounds);
    free(th->t);
    *th = (zd_thrs){0};
}

/* Keeps the stored side the smaller one, with slack so that a boundary near the median does
 * not flip back and forth. */
static int thr_balance(zd_thr *t, const roaring_bitmap_t *exists, uint64_t members)
{
    if (3 * t->n <= 2 * members + 192)
        return 0;
    roaring_bitmap_t *other = roaring_bitmap_andnot(exists, t->bm);
    if (!other)
        return -ENOMEM;
    zd_bm_free(t->bm);
    t->bm = other;
    t->n = roaring_bitmap_get_cardinality(other);
    t->upper = !t->upper;
    return 0;
}

/* Puts gid on the side of boundary j that value v belongs to. */
static int thr_place(zd_thrs *th, int j, uint32_t gid, int64_t v, const roaring_bitmap_t *exists,
                     uint64_t members)
{
    zd_thr *t = &th->t[j];
    bool stored = (v < th->bounds[j]) != t->upper;
    if (!stored) {
        if (roaring_bitmap_remove_checked(t->bm, gid))
            t->n--;
        return 0;
    }
    if (!roaring_bitmap_add_checked(t->bm, gid))
        return 0;
    t->n++;
    return thr_balance(t, exists, members);
}

/* Prepends boundaries until the bottom one is <= v. The new boundary's T side is the members
 * below it, found among those below the previous bottom (normally nobody). */
static int thr_extend_down(zd_thrs *th, const zd_bsi *b, const roaring_bitmap_t *exists, int64_t v)
{
    while (th->lo > 0 && th->bounds[th->lo] > v) {
        zd_thr *t = &th->t[th->lo - 1], *next = &th->t[th->lo];
        roaring_bitmap_t *below = NULL;
        if (!next->upper)
            below = next->n ? roaring_bitmap_copy(next->bm) : roaring_bitmap_create();
        else
            below = roaring_bitmap_andnot(exists, next->bm);
        if (!below)
            return -ENOMEM;
        if (!roaring_bitmap_is_empty(below)) {
            roaring_bitmap_t *lt =
                zd_bsi_range(b, exists, ZD_CMP_LT, th->bounds[th->lo - 1], below, NULL);
            zd_bm_free(below);
            if (!(below = lt))
                return -ENOMEM;
        }
        t->bm = below;
        t->n = roaring_bitmap_get_cardinality(below);
        t->upper = false;
        th->lo--;
    }
    return 0;
}

/* Extends the window to cover v: an empty window first moves down to v's bin (numbers start at
 * their minimum, so only dates move), then boundaries are appended until one lies above v and
 * prepended until one lies at or below it. An appended boundary's U side is the members >= it,
 * found among those above the previous top (normally nobody, so this is cheap). */
static int thr_extend(zd_thrs *th, const zd_bsi *b, const roaring_bitmap_t *exists, int64_t v)
{
    if (th->hi == th->lo) {
        int k = zd_thr_count_le(th, v) - 1;
        k = k > 0 ? k : 0;
        if (k < th->lo)
            th->lo = th->hi = k;
    }
    while (th->hi < th->nb && (th->hi == th->lo || th->bounds[th->hi - 1] <= v)) {
        zd_thr *t = &th->t[th->hi], *prev = th->hi > th->lo ? &th->t[th->hi - 1] : NULL;
        roaring_bitmap_t *above = NULL;
        if (!prev)
            above = roaring_bitmap_copy(exists);
        else if (prev->upper)
            above = prev->n ? roaring_bitmap_copy(prev->bm) : roaring_bitmap_create();
        else
            above = roaring_bitmap_andnot(exists, prev->bm);
        if (!above)
            return -ENOMEM;
        if (!roaring_bitmap_is_empty(above)) {
            roaring_bitmap_t *ge =
                zd_bsi_range(b, exists, ZD_CMP_GE, th->bounds[th->hi], above, NULL);
            zd_bm_free(above);
            if (!(above = ge))
                return -ENOMEM;
        }
        t->bm = above;
        t->n = roaring_bitmap_get_cardinality(above);
        t->upper = true;
        th->hi++;
    }
    return thr_extend_down(th, b, exists, v);
}

/* Moves gid's memberships from old (when had) to v. Only the boundaries between the two values
 * change side; a gid new to the attribute is in no bitmap yet, so it is only added. exists must
 * already hold gid and the bit slices must hold v. */
int zd_thr_set(zd_thrs *th, const zd_bsi *b, const roaring_bitmap_t *exists, uint32_t gid, bool had,
               int64_t old, int64_t v)
{
    if (th->nb == 0)
        return 0;
    if (thr_extend(th, b, exists, v) < 0)
        return -ENOMEM;
    uint64_t members = roaring_bitmap_get_cardinality(exists);
    int from = th->lo, to = th->hi;
    if (had) {
        if (old == v)
            return 0;
        /* Boundaries b with min < b <= max. */
        int64_t mn = old < v ? old : v, mx = old < v ? v : old;
        int a = zd_thr_count_le(th, mn), z = zd_thr_count_le(th, mx);
        from = a > from ? a : from;
        to = z < to ? z : to;
    }
    for (int j = from; j < to; j++) {
        if (!had && (v < th->bounds[j]) == th->t[j].upper)
            continue; /* not on the stored side, and not in the bitmap */
        if (thr_place(th, j, gid, v, exists, members) < 0)
            return -ENOMEM;
    }
    return 0;
}

void zd_thr_remove(zd_thrs *th, uint32_t gid)
{
    for (int j = th->lo; j < th->hi; j++)
        if (roaring_bitmap_remove_checked(th->t[j].bm, gid))
            th->t[j].n--;
}

void zd_thr_optimize(zd_thrs *th, const roaring_bitmap_t *exists)
{
    uint64_t members = roaring_bitmap_get_cardinality(exists);
    for (int j = th->lo; j < th->hi; j++) {
        zd_thr *t = &th->t[j];
        if (2 * t->n > members) {
            roaring_bitmap_t *other = roaring_bitmap_andnot(exists, t->bm);
            if (other) {
                zd_bm_free(t->bm);
                t->bm = other;
                t->n = roaring_bitmap_get_cardinality(other);
                t->upper = !t->upper;
            }
        }
        roaring_bitmap_run_optimize(t->bm);
        roaring_bitmap_shrink_to_fit(t->bm);
    }
}

/* exists restricted to within (NULL: all of it). */
static roaring_bitmap_t *exists_within(const roaring_bitmap_t *exists,
                                       const roaring_bitmap_t *within)
{
    return within ? roaring_bitmap_and(exists, within) : roaring_bitmap_copy(exists);
}

/* T_j (upper false) or U_j (upper true) of boundary j, restricted to within. j below the active
 * window stands for "no boundary": T empty, U every member; j at or above its top for T every
 * member, U empty. */
static roaring_bitmap_t *thr_side(const zd_thrs *th, const roaring_bitmap_t *exists, int j,
                                  bool upper, const roaring_bitmap_t *within)
{
    if (j < th->lo || j >= th->hi) {
        if ((j < th->lo) == upper)
            return exists_within(exists, within);
        return roaring_bitmap_create();
    }
    const zd_thr *t = &th->t[j];
    if (t->upper == upper)
        return within ? roaring_bitmap_and(t->bm, within) : roaring_bitmap_copy(t->bm);
    if (!within)
        return roaring_bitmap_andnot(exists, t->bm);
    roaring_bitmap_t *r = roaring_bitmap_and(exists, within);
    if (r)
        roaring_bitmap_andnot_inplace(r, t->bm);
    return r;
}

/* Side `upper` of boundary j (outside the window as in thr_side) as a zd_thrset. */
static zd_thrset thr_set_of(const zd_thrs *th, int j, bool upper)
{
    if (j < th->lo || j >= th->hi)
        return (zd_thrset){.none = (j < th->lo) != upper};
    return (zd_thrset){.bm = th->t[j].bm, .keep = th->t[j].upper == upper};
}

/* LT w (upper false) or GE w (upper true) with the threshold bitmaps. At a boundary that is one
 * bitmap. Otherwise w lies in the bin [bounds[j], bounds[j + 1]): T_j (LT) or U_{j+1} (GE) is
 * settled, and the bit slices compare only the bin's members, in the same chunk-wise pass. */
roaring_bitmap_t *zd_thr_range(const zd_thrs *th, const zd_bsi *b, const roaring_bitmap_t *exists,
                               bool number, bool upper, int64_t w, const roaring_bitmap_t *within)
{
    int j = zd_thr_count_le(th, w) - 1; /* the largest boundary <= w, maybe outside the window */
    if (j >= th->hi)
        j = th->hi - 1;
    if (j < th->lo)
        j = th->lo - 1;
    if (j >= th->lo && th->bounds[j] == w)
        return thr_side(th, exists, j, upper, within);
    int k = j + 1;
    /* Applying the two boundaries costs about their stored members; when w lies in the thick
     * of a number's values those are many, and the bit slices alone are cheaper (the magnitude
     * classes spare them most members of a skewed attribute). Not so for dates: nearly all
     * their offsets have the same bit length, so the slices alone cost a pass over every
     * member's words per slice (16 or so), while a boundary costs at most one. */
    uint64_t applied = (j >= th->lo ? th->t[j].n : 0) + (k < th->hi ? th->t[k].n : 0);
    if (number && applied > roaring_bitmap_get_cardinality(exists) / 32)
        return zd_bsi_range(b, exists, upper ? ZD_CMP_GE : ZD_CMP_LT, w, within, NULL);
    zd_thrcut cut = {
        .settled = upper ? thr_set_of(th, k, true) : thr_set_of(th, j, false),
        .other = upper ? thr_set_of(th, j, true) : thr_set_of(th, k, false),
        .has_lo = j >= th->lo,
        .has_hi = k < th->hi,
        .lo_v = j >= th->lo ? th->bounds[j] : 0,
        .hi_v = k < th->hi ? th->bounds[k] - 1 : 0,
    };
    return zd_bsi_range(b, exists, upper ? ZD_CMP_GE : ZD_CMP_LT, w, within, &cut);
}
