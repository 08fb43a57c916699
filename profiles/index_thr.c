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

/* The first day of month bin m. */
static int64_t month_start(int m)
{
    return zd_date_from_ymd(ZD_THR_DATE_FIRST + m / 12, m % 12 + 1, 1);
}

/* The month bin of day d, or -1 when the bins do not cover it. */
static int month_of(const zd_thrs *th, int64_t d)
{
    if (!th->months || d < th->mfirst || d >= th->mlast)
        return -1;
    int y, m, day;
    zd_date_to_ymd((int32_t)d, &y, &m, &day);
    return (y - ZD_THR_DATE_FIRST) * 12 + m - 1;
}

static int month_add(zd_thrs *th, int64_t v, uint32_t gid)
{
    int m = month_of(th, v);
    if (m < 0)
        return 0;
    if (!th->months[m] && !(th->months[m] = roaring_bitmap_create()))
        return -ENOMEM;
    roaring_bitmap_add(th->months[m], gid);
    return 0;
}

/* Empty bins are freed, so that memory follows the months actually held. */
static void month_remove(zd_thrs *th, int m, uint32_t gid)
{
    if (m < 0 || !th->months[m])
        return;
    roaring_bitmap_remove(th->months[m], gid);
    if (roaring_bitmap_is_empty(th->months[m])) {
        roaring_bitmap_free(th->months[m]);
        th->months[m] = NULL;
    }
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
    if (date) {
        th->months = calloc(ZD_THR_MONTHS, sizeof(*th->months));
        if (!th->months)
            return -ENOMEM;
        th->mfirst = month_start(0);
        th->mlast = month_start(ZD_THR_MONTHS);
    }
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
    for (int m = 0; th->months && m < ZD_THR_MONTHS; m++) {
        zd_bm_free(th->months[m]);
        th->months[m] = NULL;
    }
}

void zd_thr_free(zd_thrs *th)
{
    zd_thr_clear(th);
    free(th->bounds);
    free(th->t);
    free(th->months);
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
                zd_bsi_range(b, exists, ZD_CMP_LT, th->bounds[th->lo - 1], below);
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
            roaring_bitmap_t *ge = zd_bsi_range(b, exists, ZD_CMP_GE, th->bounds[th->hi], above);
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
        if (month_of(th, old) != month_of(th, v))
            month_remove(th, month_of(th, old), gid);
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
    return month_add(th, v, gid);
}

void zd_thr_remove(zd_thrs *th, uint32_t gid, const int64_t *old)
{
    for (int j = th->lo; j < th->hi; j++)
        if (roaring_bitmap_remove_checked(th->t[j].bm, gid))
            th->t[j].n--;
    if (old)
        month_remove(th, month_of(th, *old), gid);
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
    for (int m = 0; th->months && m < ZD_THR_MONTHS; m++)
        if (th->months[m]) {
            roaring_bitmap_run_optimize(th->months[m]);
            roaring_bitmap_shrink_to_fit(th->months[m]);
        }
}

void zd_thr_foreach_bitmap(const zd_thrs *th, void (*fn)(const roaring_bitmap_t *bm, void *udata),
                           void *udata)
{
    for (int j = th->lo; j < th->hi; j++)
        fn(th->t[j].bm, udata);
    for (int m = 0; th->months && m < ZD_THR_MONTHS; m++)
        if (th->months[m])
            fn(th->months[m], udata);
}

/* exists restricted to within (NULL: all of it). */
static roaring_bitmap_t *exists_within(const roaring_bitmap_t *exists,
                                       const roaring_bitmap_t *within)
{
    return within ? roaring_bitmap_and(exists, within) : roaring_bitmap_copy(exists);
}

/* Side `upper` of boundary j as a zd_thrset: U_j (upper) or T_j. Outside the active window j
 * stands for "no boundary" below it (T empty, U every member) and "above every value" at or
 * above its top (T every member, U empty); both are exact by the window's invariant. */
static zd_thrset thr_set_of(const zd_thrs *th, int j, bool upper)
{
    if (j < th->lo || j >= th->hi)
        return (zd_thrset){.none = (j < th->lo) != upper};
    return (zd_thrset){.bm = th->t[j].bm, .keep = th->t[j].upper == upper};
}

/* The members in both sets, restricted to within, by whole-bitmap operations: a range whose
 * bounds are both boundaries (or open) is one AND or ANDNOT of stored bitmaps. */
static roaring_bitmap_t *core_only(const roaring_bitmap_t *exists, const zd_thrset s[2],
                                   const roaring_bitmap_t *within)
{
    if (s[0].none || s[1].none)
        return roaring_bitmap_create();
    const roaring_bitmap_t *keep[2], *drop[2];
    int nk = 0, nd = 0;
    for (int i = 0; i < 2; i++)
        if (s[i].bm)
            *(s[i].keep ? &keep[nk++] : &drop[nd++]) = s[i].bm;
    roaring_bitmap_t *r;
    if (within) {
        /* A hint is usually the smaller set: intersect with it first. Stored sides hold only
         * members, so a kept one stands in for exists. */
        r = roaring_bitmap_and(nk > 0 ? keep[0] : exists, within);
        if (r && nk == 2)
            roaring_bitmap_and_inplace(r, keep[1]);
    } else if (nk == 0) {
        r = roaring_bitmap_copy(exists);
    } else if (nk == 2) {
        r = roaring_bitmap_and(keep[0], keep[1]);
    } else if (nd > 0) {
        r = roaring_bitmap_andnot(keep[0], drop[--nd]);
    } else {
        r = roaring_bitmap_copy(keep[0]);
    }
    if (!r)
        return NULL;
    while (nd > 0)
        roaring_bitmap_andnot_inplace(r, drop[--nd]);
    return r;
}

/* Adds a bin to cut: the members in both sets, kept when >= ge (has_ge) and < lt (has_lt),
 * their values in [min, max] (open ends: no has_min / has_max). */
static void cut_bin(zd_thrcut *cut, zd_thrset s0, zd_thrset s1, bool has_ge, int64_t ge,
                    bool has_lt, int64_t lt, bool has_min, int64_t min, bool has_max, int64_t max)
{
    cut->bins[cut->nbins++] = (zd_cutbin){
        .in = {s0, s1},
        .has_ge = has_ge,
        .ge = ge,
        .has_lt = has_lt,
        .lt = lt,
        .has_min = has_min,
        .min = min,
        .has_max = has_max,
        .max = max,
    };
}

static const zd_thrset every = {NULL, false, false};

/* A bound settles at most the other 23 months of its two-year bin. */
_Static_assert(2 * (ZD_THR_DATE_STEP * 12 - 1) <= ZD_CUT_MONTHS, "ZD_CUT_MONTHS too small");

/* The month bin m as a bin of cut, kept when >= ge and < lt as given. */
static void cut_month(zd_thrcut *cut, const zd_thrs *th, int m, bool has_ge, int64_t ge,
                      bool has_lt, int64_t lt)
{
    if (!th->months[m])
        return;
    zd_thrset s = {.bm = th->months[m], .keep = true};
    cut_bin(cut, s, every, has_ge, ge, has_lt, lt, true, month_start(m), true,
            month_start(m + 1) - 1);
}

/* Settles the whole months [from, to) of cut (their bins, where anybody has one). */
static void cut_months(zd_thrcut *cut, const zd_thrs *th, int from, int to)
{
    for (int m = from; m < to; m++)
        if (th->months[m] && cut->nmonths < ZD_CUT_MONTHS)
            cut->months[cut->nmonths++] = th->months[m];
}

roaring_bitmap_t *zd_thr_between(const zd_thrs *th, const zd_bsi *b, const roaring_bitmap_t *exists,
                                 bool number, bool has_a, int64_t a, bool has_z, int64_t z,
                                 const roaring_bitmap_t *within)
{
    if ((has_a && has_z && a >= z) || (has_z && z == INT64_MIN))
        return roaring_bitmap_create();
    if (!has_a && !has_z)
        return exists_within(exists, within);
    zd_thrcut cut = {.core = {{.none = true}, every}};
    if (th->hi == th->lo) {
        /* No boundaries yet (an attribute nobody has had): the slices alone. */
        cut_bin(&cut, every, every, has_a, a, has_z, z, false, 0, false, 0);
        return zd_cut_range(b, exists, within, &cut);
    }

    /* The lower bound lies in bin A = [bounds[ja], bounds[ja + 1]) (open-ended outside the
     * window); a is exact when it is a boundary, or absent. Members >= bounds[L] are above it. */
    int ja = th->lo - 1;
    bool a_exact = true;
    if (has_a) {
        ja = zd_thr_count_le(th, a) - 1;
        ja = ja < th->lo - 1 ? th->lo - 1 : ja >= th->hi ? th->hi - 1 : ja;
        a_exact = ja >= th->lo && th->bounds[ja] == a;
    }
    int L = a_exact ? ja : ja + 1;
    /* The upper bound: bin Z = [bounds[kz - 1], bounds[kz]); members < bounds[R] are below it. */
    int kz = th->hi;
    bool z_exact = true;
    if (has_z) {
        int c = zd_thr_count_le(th, z - 1); /* the boundaries below z */
        if (c < th->lo)
            return roaring_bitmap_create(); /* everybody is >= bounds[lo] >= z */
        if (c < th->hi) {
            kz = c;
            z_exact = th->bounds[kz] == z;
        } else {
            /* Above the window every member is below z, unless the list ran out: then the
             * members above its last boundary are compared. */
            z_exact = th->hi < th->nb;
        }
    }
    int R = z_exact ? kz : kz - 1;
    bool same = !a_exact && !z_exact && ja == kz - 1;

    if (a_exact && z_exact)
        return core_only(exists, (zd_thrset[2]){thr_set_of(th, L, true), thr_set_of(th, R, false)},
                         within);

    /* Applying the boundaries costs about their stored members; when a bound lies in the thick
     * of a number's values those are many, and the bit slices alone are cheaper (the magnitude
     * classes spare them most members of a skewed attribute). Not so for dates: nearly all
     * their offsets have the same bit length, so the slices alone cost a pass over every
     * member's words per slice (16 or so), while a boundary costs at most one. */
    if (number) {
        uint64_t applied = 0;
        int used[4] = {L, R, a_exact ? -1 : ja, z_exact ? -1 : kz - 1};
        for (int i = 0; i < 4; i++)
            if (used[i] >= th->lo && used[i] < th->hi)
                applied += th->t[used[i]].n;
        if (applied > roaring_bitmap_get_cardinality(exists) / 32) {
            cut_bin(&cut, every, every, has_a, a, has_z, z, false, 0, false, 0);
            return zd_cut_range(b, exists, within, &cut);
        }
    }

    if (L < R) {
        cut.core[0] = thr_set_of(th, L, true);
        cut.core[1] = thr_set_of(th, R, false);
    }
    /* Month bins split a finite bin of dates: whole months settle, the bound's month is left
     * to the slices. Elsewhere the whole bin is. */
    int ma = !a_exact && ja >= th->lo && ja + 1 < th->hi ? month_of(th, a) : -1;
    int mz = !z_exact && kz - 1 >= th->lo && kz < th->hi ? month_of(th, z) : -1;
    bool a_split = ma >= 0 && month_of(th, th->bounds[ja + 1] - 1) >= 0;
    bool z_split = mz >= 0 && month_of(th, th->bounds[kz - 1]) >= 0;
    if (same && !(a_split && z_split))
        a_split = z_split = false;
    if (!a_exact && !a_split)
        cut_bin(&cut, thr_set_of(th, ja, true), thr_set_of(th, ja + 1, false), true, a, same, z,
                ja >= th->lo, th->bounds[ja >= 0 ? ja : 0], ja + 1 < th->hi,
                th->bounds[ja + 1 < th->nb ? ja + 1 : 0] - 1);
    if (!z_exact && !z_split && !same)
        cut_bin(&cut, thr_set_of(th, kz - 1, true), thr_set_of(th, kz, false), false, 0, true, z,
                kz - 1 >= th->lo, th->bounds[kz - 1 >= 0 ? kz - 1 : 0], kz < th->hi,
                th->bounds[kz < th->nb ? kz : 0] - 1);
    if (a_split) {
        bool a_whole = month_start(ma) == a; /* a's own month is whole */
        int to = same ? mz : month_of(th, th->bounds[ja + 1] - 1) + 1;
        cut_months(&cut, th, a_whole ? ma : ma + 1, to);
        if (!a_whole) {
            /* Within the same month as z: one bin with both bounds. */
            bool both = same && mz == ma;
            cut_month(&cut, th, ma, true, a, both, z);
            if (both)
                mz = -1;
        }
    }
    if (z_split && mz >= 0) {
        if (!same)
            cut_months(&cut, th, month_of(th, th->bounds[kz - 1]), mz);
        if (month_start(mz) != z)
            cut_month(&cut, th, mz, false, 0, true, z);
    }
    return zd_cut_range(b, exists, within, &cut);
}
