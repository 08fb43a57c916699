/* The in-memory inverted index of index.h: value -> bitmap maps for keywords, tags and code
 * prefixes, bit-sliced bitmaps for numbers and dates, threshold bitmaps for both, and the
 * lean gid -> id table. */
#include "profiles/index.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <roaring/containers/containers.h>

#include "common/date.h"
#include "common/fault.h"

/* CRoaring 0.2.66's roaring_bitmap_free(NULL) dereferences its argument. */
static void bm_free(roaring_bitmap_t *bm)
{
    if (bm)
        roaring_bitmap_free(bm);
}

/* ---- value -> bitmap map ---------------------------------------------------------------- */

/* An open-addressing (linear probing) map from a value string to the bitmap of the gids that
 * hold it. Entries whose bitmap becomes empty are deleted (backward-shift deletion, so no
 * tombstones), which keeps lookups of values nobody has at NULL and keeps memory bounded when
 * free-form keywords and tags churn. */
typedef struct zd_vent {
    char *key;            /* owned, NUL-terminated; NULL marks a free slot */
    roaring_bitmap_t *bm; /* owned, never empty while the entry is live */
    uint32_t hash;
    uint32_t klen;
} zd_vent;

typedef struct zd_vmap {
    zd_vent *slots;
    uint32_t cap; /* 0 or a power of two */
    uint32_t count;
} zd_vmap;

/* FNV-1a followed by the murmur3 finalizer: FNV alone leaves the low bits, which pick the
 * slot, poorly mixed for short keys that differ only in their last characters. */
static uint32_t vmap_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

/* The slot holding key, or -1. */
static long vmap_find(const zd_vmap *m, const char *key, size_t len, uint32_t h)
{
    if (m->cap == 0)
        return -1;
    uint32_t mask = m->cap - 1;
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        const zd_vent *e = &m->slots[i];
        if (!e->key)
            return -1;
        if (e->hash == h && e->klen == len && memcmp(e->key, key, len) == 0)
            return (long)i;
    }
}

static void vmap_place(zd_vent *slots, uint32_t cap, const zd_vent *e)
{
    uint32_t mask = cap - 1, i = e->hash & mask;
    while (slots[i].key)
        i = (i + 1) & mask;
    slots[i] = *e;
}

static int vmap_grow(zd_vmap *m)
{
    uint32_t ncap = m->cap ? m->cap * 2 : 16;
    if (ncap < m->cap)
        return -ENOMEM;
    zd_vent *ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return -ENOMEM;
    for (uint32_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            vmap_place(ns, ncap, &m->slots[i]);
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 0;
}

/* The bitmap of key, created empty if missing. NULL on ENOMEM. */
static roaring_bitmap_t *vmap_get_or_add(zd_vmap *m, const char *key, size_t len)
{
    uint32_t h = vmap_hash(key, len);
    long i = vmap_find(m, key, len, h);
    if (i >= 0)
        return m->slots[i].bm;
    /* Grow at 70% load: linear probing degrades quickly beyond that. */
    if ((uint64_t)(m->count + 1) * 10 > (uint64_t)m->cap * 7 && vmap_grow(m) < 0)
        return NULL;
    zd_vent e = {.hash = h, .klen = (uint32_t)len};
    e.key = malloc(len + 1);
    e.bm = roaring_bitmap_create();
    if (!e.key || !e.bm) {
        free(e.key);
        bm_free(e.bm);
        return NULL;
    }
    memcpy(e.key, key, len);
    e.key[len] = '\0';
    vmap_place(m->slots, m->cap, &e);
    m->count++;
    return e.bm;
}

static const roaring_bitmap_t *vmap_get(const zd_vmap *m, const char *key, size_t len)
{
    long i = vmap_find(m, key, len, vmap_hash(key, len));
    return i >= 0 ? m->slots[i].bm : NULL;
}

/* Frees slot i and shifts later members of its probe run back, so that every key stays
 * reachable from its home slot without tombstones. */
static void vmap_delete_slot(zd_vmap *m, uint32_t i)
{
    uint32_t mask = m->cap - 1;
    free(m->slots[i].key);
    bm_free(m->slots[i].bm);
    m->count--;
    uint32_t hole = i;
    for (uint32_t j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        uint32_t home = m->slots[j].hash & mask;
        /* The entry at j may fill the hole unless its home lies cyclically in (hole, j]. */
        bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole] = (zd_vent){0};
}

static void vmap_remove_gid(zd_vmap *m, const char *key, size_t len, uint32_t gid)
{
    long i = vmap_find(m, key, len, vmap_hash(key, len));
    if (i < 0)
        return;
    roaring_bitmap_remove(m->slots[i].bm, gid);
    if (roaring_bitmap_is_empty(m->slots[i].bm))
        vmap_delete_slot(m, (uint32_t)i);
}

static void vmap_clear(zd_vmap *m)
{
    for (uint32_t i = 0; i < m->cap; i++) {
        free(m->slots[i].key);
        bm_free(m->slots[i].bm);
    }
    free(m->slots);
    *m = (zd_vmap){0};
}

/* ---- bit-sliced index ------------------------------------------------------------------- */

#define ZD_BSI_BITS 64
#define ZD_SIGN_BIT ((uint64_t)1 << 63)

/* A number or date attribute as bit slices: gid g holding value x is in slices[i] when bit i of
 * the offset u = x - base is set, and in mags[bit_length(u)]. The base is kept "biased" (as
 * x ^ 2^63, an order-preserving map of int64 onto uint64), so offsets and comparisons are plain
 * unsigned arithmetic that cannot overflow for any int64. Depth grows as larger offsets appear;
 * a value below the base moves the base down (bsi_rebase), so every int64 is stored exactly.
 *
 * The magnitude classes (mags) hold each member once. They let a comparison with w settle every
 * member whose offset has a different bit length than w at once, leaving the slice-by-slice
 * work to the members of w's own class. Skewed attributes (employees, capital, revenue) have
 * sparse high slices whose values would otherwise all be visited by every query. */
typedef struct zd_bsi {
    uint64_t bbase;
    int depth; /* slices[0..depth) exist; every stored offset is < 2^depth */
    roaring_bitmap_t *slices[ZD_BSI_BITS];
    roaring_bitmap_t *mags[ZD_BSI_BITS + 1]; /* created when first needed */
} zd_bsi;

static uint64_t biased(int64_t v)
{
    return (uint64_t)v ^ ZD_SIGN_BIT;
}

static int bit_length(uint64_t u)
{
    return u ? 64 - __builtin_clzll(u) : 0;
}

static int bsi_grow(zd_bsi *b, int depth)
{
    while (b->depth < depth) {
        roaring_bitmap_t *s = roaring_bitmap_create();
        if (!s)
            return -ENOMEM;
        b->slices[b->depth++] = s;
    }
    return 0;
}

static void bsi_free_mags(zd_bsi *b)
{
    for (int l = 0; l <= ZD_BSI_BITS; l++) {
        bm_free(b->mags[l]);
        b->mags[l] = NULL;
    }
}

/* Recomputes the magnitude classes from the slices, top down: class l + 1 is slice l minus
 * everything seen in higher slices. */
static int bsi_rebuild_mags(zd_bsi *b, const roaring_bitmap_t *members)
{
    bsi_free_mags(b);
    roaring_bitmap_t *seen = roaring_bitmap_create();
    if (!seen)
        return -ENOMEM;
    for (int i = b->depth - 1; i >= 0; i--) {
        b->mags[i + 1] = roaring_bitmap_andnot(b->slices[i], seen);
        if (!b->mags[i + 1])
            goto fail;
        roaring_bitmap_or_inplace(seen, b->slices[i]);
    }
    b->mags[0] = roaring_bitmap_andnot(members, seen);
    if (!b->mags[0])
        goto fail;
    bm_free(seen);
    return 0;
fail:
    bm_free(seen);
    return -ENOMEM;
}

/* Adds the constant d to the offset of every gid in members, with a ripple-carry adder over the
 * slices (carry = the gids whose addition carries into the next bit). */
static int bsi_add_const(zd_bsi *b, const roaring_bitmap_t *members, uint64_t d)
{
    roaring_bitmap_t *carry = roaring_bitmap_create();
    if (!carry)
        return -ENOMEM;
    for (int i = 0; i < ZD_BSI_BITS && ((d >> i) != 0 || !roaring_bitmap_is_empty(carry)); i++) {
        if (bsi_grow(b, i + 1) < 0)
            goto fail;
        roaring_bitmap_t *s = b->slices[i];
        if ((d >> i) & 1) {
            /* sum bit = NOT (s XOR carry); carry out = s OR carry */
            roaring_bitmap_t *x = roaring_bitmap_xor(s, carry);
            roaring_bitmap_t *sum = x ? roaring_bitmap_andnot(members, x) : NULL;
            bm_free(x);
            if (!sum)
                goto fail;
            roaring_bitmap_or_inplace(carry, s);
            bm_free(s);
            b->slices[i] = sum;
        } else {
            /* sum bit = s XOR carry; carry out = s AND carry */
            roaring_bitmap_t *c = roaring_bitmap_and(s, carry);
            if (!c)
                goto fail;
            roaring_bitmap_xor_inplace(s, carry);
            bm_free(carry);
            carry = c;
        }
    }
    bm_free(carry);
    return bsi_rebuild_mags(b, members);
fail:
    bm_free(carry);
    return -ENOMEM;
}

/* Moves the base below bv, the biased value that does not fit. The new base leaves as much
 * room again below bv as bv was below the old base, so a run of ever smaller values rebases
 * O(log) times, not once per value. */
static int bsi_rebase(zd_bsi *b, const roaring_bitmap_t *members, uint64_t bv)
{
    uint64_t gap = b->bbase - bv;
    uint64_t nbase = bv >= gap ? bv - gap : 0;
    int rc = bsi_add_const(b, members, b->bbase - nbase);
    if (rc == 0)
        b->bbase = nbase;
    return rc;
}

/* Writes every slice, not only those that differ from the old value: the result is then
 * exactly `v` whatever the index held before, which makes a replayed change converge. The old
 * offset falls out of which slices held gid; when members (the attribute's exists) says gid had
 * a value, that value is stored in *old (the threshold bitmaps move gid from it). */
static int bsi_set(zd_bsi *b, const roaring_bitmap_t *members, uint32_t gid, int64_t v,
                   int64_t *old)
{
    uint64_t bv = biased(v);
    if (bv < b->bbase) {
        int rc = bsi_rebase(b, members, bv);
        if (rc < 0)
            return rc;
    }
    uint64_t u = bv - b->bbase;
    int len = bit_length(u), old_len = 0;
    if (bsi_grow(b, len) < 0)
        return -ENOMEM;
    if (!b->mags[len] && !(b->mags[len] = roaring_bitmap_create()))
        return -ENOMEM;
    uint64_t old_u = 0;
    for (int i = 0; i < b->depth; i++) {
        bool had = (u >> i) & 1 ? !roaring_bitmap_add_checked(b->slices[i], gid)
                                : roaring_bitmap_remove_checked(b->slices[i], gid);
        if (had) {
            old_len = i + 1;
            old_u |= (uint64_t)1 << i;
        }
    }
    if (roaring_bitmap_contains(members, gid)) {
        *old = (int64_t)((b->bbase + old_u) ^ ZD_SIGN_BIT);
        if (old_len != len && b->mags[old_len])
            roaring_bitmap_remove(b->mags[old_len], gid);
    }
    roaring_bitmap_add(b->mags[len], gid);
    return 0;
}

static void bsi_remove(zd_bsi *b, uint32_t gid)
{
    for (int i = 0; i < b->depth; i++)
        roaring_bitmap_remove(b->slices[i], gid);
    for (int l = 0; l <= ZD_BSI_BITS; l++)
        if (b->mags[l])
            roaring_bitmap_remove(b->mags[l], gid);
}

static void bsi_clear(zd_bsi *b, uint64_t bbase)
{
    for (int i = 0; i < b->depth; i++)
        bm_free(b->slices[i]);
    bsi_free_mags(b);
    b->depth = 0;
    b->bbase = bbase;
}

/* ---- threshold bitmaps ------------------------------------------------------------------ */

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

typedef struct zd_thrs {
    int nb;          /* canonical boundaries; 0 for attributes without thresholds */
    int cap;         /* allocated entries of bounds and t */
    int lo, hi;      /* active window */
    int home;        /* where the empty window starts */
    int64_t *bounds; /* nb scaled boundaries, ascending */
    zd_thr *t;       /* nb entries */
} zd_thrs;

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
static int thr_count_le(const zd_thrs *th, int64_t x)
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
static int thr_init(zd_thrs *th, const zd_attr *a)
{
    bool date = a->type == ZD_T_DATE;
    th->cap = date ? ZD_THR_DATE_MAX : ZD_THR_MAX;
    th->bounds = malloc((size_t)th->cap * sizeof(*th->bounds));
    th->t = calloc((size_t)th->cap, sizeof(*th->t));
    if (!th->bounds || !th->t)
        return -ENOMEM;
    th->nb = date ? thr_canonical_date(th->bounds) : thr_canonical_number(a->decimals, th->bounds);
    int k = date ? th->nb : thr_count_le(th, a->min);
    th->home = th->lo = th->hi = k > 0 ? k - 1 : 0;
    return 0;
}

static void thr_clear(zd_thrs *th)
{
    for (int j = th->lo; j < th->hi; j++) {
        bm_free(th->t[j].bm);
        th->t[j] = (zd_thr){0};
    }
    th->lo = th->hi = th->home;
}

static void thr_free(zd_thrs *th)
{
    thr_clear(th);
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
    bm_free(t->bm);
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

typedef struct zd_thrcut zd_thrcut;
static roaring_bitmap_t *bsi_range(const zd_bsi *b, const roaring_bitmap_t *exists, zd_cmp op,
                                   int64_t v, const roaring_bitmap_t *within, zd_thrcut *cut);

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
                bsi_range(b, exists, ZD_CMP_LT, th->bounds[th->lo - 1], below, NULL);
            bm_free(below);
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
        int k = thr_count_le(th, v) - 1;
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
            roaring_bitmap_t *ge = bsi_range(b, exists, ZD_CMP_GE, th->bounds[th->hi], above, NULL);
            bm_free(above);
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
static int thr_set(zd_thrs *th, const zd_bsi *b, const roaring_bitmap_t *exists, uint32_t gid,
                   bool had, int64_t old, int64_t v)
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
        int a = thr_count_le(th, mn), z = thr_count_le(th, mx);
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

static void thr_remove(zd_thrs *th, uint32_t gid)
{
    for (int j = th->lo; j < th->hi; j++)
        if (roaring_bitmap_remove_checked(th->t[j].bm, gid))
            th->t[j].n--;
}

/* ---- gid -> id table -------------------------------------------------------------------- */

/* Per partition, the ids live back to back in a char arena and offs[dense] is the offset of
 * gid's id (0 = no id: arena[0] is a reserved NUL). That is 4 bytes plus the id per profile.
 * (Partition and dense id are the top 6 and low 26 bits of the gid as zd_gid() lays it out;
 * any other layout stays correct, and is lean as long as those low bits are dense.)
 * An id that is deleted or replaced leaves its bytes behind as garbage; the arena is rewritten
 * once garbage exceeds half of it, so churn costs amortized O(1) and bounded memory. */
typedef struct zd_idpart {
    uint32_t *offs;
    uint32_t noffs; /* allocated entries of offs */
    char *arena;
    size_t alen, acap;
    size_t garbage; /* bytes of dead ids in the arena */
} zd_idpart;

#define ZD_ARENA_MAX ((size_t)UINT32_MAX)

static int idpart_reserve_offs(zd_idpart *p, uint32_t dense)
{
    if (dense < p->noffs)
        return 0;
    /* Grow by half, not double: dense ids are handed out in order, so the table grows in small
     * steps and the slack matters for the memory target. */
    uint64_t n = (uint64_t)p->noffs + p->noffs / 2 + 16;
    if (n < (uint64_t)dense + 1)
        n = (uint64_t)dense + 1;
    if (n > (uint64_t)ZD_DENSE_MAX + 1)
        n = (uint64_t)ZD_DENSE_MAX + 1;
    uint32_t *no = realloc(p->offs, n * sizeof(*no));
    if (!no)
        return -ENOMEM;
    memset(no + p->noffs, 0, (n - p->noffs) * sizeof(*no));
    p->offs = no;
    p->noffs = (uint32_t)n;
    return 0;
}

/* Rewrites the arena without garbage, with room for `need` more bytes. */
static int idpart_compact(zd_idpart *p, size_t need)
{
    size_t used = p->alen - p->garbage;
    size_t cap = used + need + used / 2 + 64;
    if (cap > ZD_ARENA_MAX)
        cap = ZD_ARENA_MAX;
    if (used + need > cap)
        return -ENOMEM;
    char *na = malloc(cap);
    if (!na)
        return -ENOMEM;
    size_t n = 1;
    na[0] = '\0';
    for (uint32_t d = 0; d < p->noffs; d++) {
        if (!p->offs[d])
            continue;
        size_t l = strlen(p->arena + p->offs[d]) + 1;
        memcpy(na + n, p->arena + p->offs[d], l);
        p->offs[d] = (uint32_t)n;
        n += l;
    }
    free(p->arena);
    p->arena = na;
    p->alen = n;
    p->acap = cap;
    p->garbage = 0;
    return 0;
}

static int idpart_append(zd_idpart *p, const char *id, size_t l, uint32_t *off)
{
    /* arena[0] is the reserved empty string that offset 0 points at. */
    size_t start = p->alen ? p->alen : 1;
    if (start + l > p->acap) {
        if (p->garbage > p->alen / 2) {
            if (idpart_compact(p, l) < 0)
                return -ENOMEM;
        } else {
            size_t cap = p->acap + p->acap / 2 + 256;
            if (cap < start + l)
                cap = start + l;
            if (cap > ZD_ARENA_MAX)
                cap = ZD_ARENA_MAX;
            if (start + l > cap)
                return -ENOMEM;
            char *na = realloc(p->arena, cap);
            if (!na)
                return -ENOMEM;
            p->arena = na;
            p->acap = cap;
        }
    }
    if (p->alen == 0) {
        p->arena[0] = '\0';
        p->alen = 1;
    }
    memcpy(p->arena + p->alen, id, l);
    *off = (uint32_t)p->alen;
    p->alen += l;
    return 0;
}

static int idpart_set(zd_idpart *p, uint32_t dense, const char *id)
{
    if (idpart_reserve_offs(p, dense) < 0)
        return -ENOMEM;
    uint32_t cur = p->offs[dense];
    if (cur && strcmp(p->arena + cur, id) == 0)
        return 0;
    size_t l = strlen(id) + 1, oldl = cur ? strlen(p->arena + cur) + 1 : 0;
    uint32_t off;
    /* Unlink the old id first, so that a compaction inside append drops it. Append fails only
     * before touching the arena, so the old id can be put back then. */
    p->offs[dense] = 0;
    p->garbage += oldl;
    if (idpart_append(p, id, l, &off) < 0) {
        p->offs[dense] = cur;
        p->garbage -= oldl;
        return -ENOMEM;
    }
    p->offs[dense] = off;
    return 0;
}

static void idpart_del(zd_idpart *p, uint32_t dense)
{
    if (dense >= p->noffs || !p->offs[dense])
        return;
    p->garbage += strlen(p->arena + p->offs[dense]) + 1;
    p->offs[dense] = 0;
}

static void idpart_free(zd_idpart *p)
{
    free(p->offs);
    free(p->arena);
    *p = (zd_idpart){0};
}

/* ---- the index -------------------------------------------------------------------------- */

#define ZD_CODE_LENS (ZD_CODE_MAX + 1)

typedef struct zd_ixattr {
    const zd_attr *attr;
    roaring_bitmap_t *exists;
    zd_vmap map;                          /* keyword values, tags, code prefixes */
    roaring_bitmap_t *lens[ZD_CODE_LENS]; /* ZD_T_CODE: by code length, created lazily */
    zd_bsi bsi;                           /* ZD_T_NUMBER, ZD_T_DATE */
    zd_thrs thr;                          /* ZD_T_NUMBER, ZD_T_DATE */
} zd_ixattr;

struct zd_index {
    const zd_schema *schema;
    roaring_bitmap_t *universe;
    int nattrs;
    zd_ixattr *attrs;
    zd_idpart parts[ZD_PARTITIONS_MAX];
};

/* Numbers start at the schema's minimum, which validation enforces. Dates start at 1800-01-01:
 * low enough for founding and birth dates, high enough that the top slices are not set for
 * every profile; an earlier date rebases exactly. */
static uint64_t initial_bbase(const zd_attr *a)
{
    if (a->type == ZD_T_NUMBER)
        return biased(a->min);
    return biased(zd_date_from_ymd(1800, 1, 1));
}

zd_index *zd_index_new(const zd_schema *s)
{
    zd_index *ix = calloc(1, sizeof(*ix));
    if (!ix)
        return NULL;
    ix->schema = s;
    ix->universe = roaring_bitmap_create();
    if (!ix->universe)
        goto fail;
    ix->nattrs = s->nattrs;
    ix->attrs = calloc(s->nattrs > 0 ? (size_t)s->nattrs : 1, sizeof(*ix->attrs));
    if (!ix->attrs)
        goto fail;
    for (int i = 0; i < s->nattrs; i++) {
        zd_ixattr *xa = &ix->attrs[i];
        xa->attr = &s->attrs[i];
        xa->bsi.bbase = initial_bbase(xa->attr);
        xa->exists = roaring_bitmap_create();
        if (!xa->exists)
            goto fail;
        bool ranged = xa->attr->type == ZD_T_NUMBER || xa->attr->type == ZD_T_DATE;
        if (ranged && thr_init(&xa->thr, xa->attr) < 0)
            goto fail;
    }
    return ix;
fail:
    zd_index_free(ix);
    return NULL;
}

static void ixattr_clear(zd_ixattr *xa)
{
    vmap_clear(&xa->map);
    for (int l = 0; l < ZD_CODE_LENS; l++) {
        bm_free(xa->lens[l]);
        xa->lens[l] = NULL;
    }
    bsi_clear(&xa->bsi, initial_bbase(xa->attr));
    thr_clear(&xa->thr);
}

void zd_index_free(zd_index *ix)
{
    if (!ix)
        return;
    if (ix->attrs) {
        for (int i = 0; i < ix->nattrs; i++) {
            ixattr_clear(&ix->attrs[i]);
            thr_free(&ix->attrs[i].thr);
            bm_free(ix->attrs[i].exists);
        }
        free(ix->attrs);
    }
    bm_free(ix->universe);
    for (int p = 0; p < ZD_PARTITIONS_MAX; p++)
        idpart_free(&ix->parts[p]);
    free(ix);
}

void zd_index_clear(zd_index *ix)
{
    roaring_bitmap_clear(ix->universe);
    for (int i = 0; i < ix->nattrs; i++) {
        ixattr_clear(&ix->attrs[i]);
        roaring_bitmap_clear(ix->attrs[i].exists);
    }
    for (int p = 0; p < ZD_PARTITIONS_MAX; p++)
        idpart_free(&ix->parts[p]);
}

/* The value of attribute a in p, or NULL when p is NULL or lacks it. */
static const zd_value *value_of(const zd_profile *p, const zd_attr *a)
{
    if (!p || a->index < 0 || a->index >= p->nvals || !p->vals[a->index].present)
        return NULL;
    return &p->vals[a->index];
}

/* The key lengths a code of length len is indexed under: every level no longer than the code,
 * plus the code's own length when it is not a level (only for codes validation would reject,
 * but then exact lookups still work). Returns how many were written to out. */
static int code_keys(const zd_attr *a, size_t len, size_t out[ZD_CODE_LEVELS_MAX + 1])
{
    int n = 0;
    bool own = false;
    for (int l = 0; l < a->nlevels && (size_t)a->levels[l] <= len; l++) {
        out[n++] = (size_t)a->levels[l];
        own = own || (size_t)a->levels[l] == len;
    }
    if (!own && len > 0)
        out[n++] = len;
    return n;
}

static bool code_has_key(const zd_attr *a, const char *code, size_t len, const char *key,
                         size_t klen)
{
    if (klen > len || memcmp(code, key, klen) != 0)
        return false;
    if (klen == len)
        return true;
    for (int l = 0; l < a->nlevels; l++)
        if ((size_t)a->levels[l] == klen)
            return true;
    return false;
}

static void code_len_remove(zd_ixattr *xa, size_t len, uint32_t gid)
{
    if (len < ZD_CODE_LENS && xa->lens[len])
        roaring_bitmap_remove(xa->lens[len], gid);
}

/* Removes gid from the value bitmaps of ov that nv (may be NULL) does not share. */
static void remove_values(zd_ixattr *xa, uint32_t gid, const zd_value *ov, const zd_value *nv)
{
    const zd_attr *a = xa->attr;
    switch (a->type) {
    case ZD_T_KEYWORD:
        if (ov->str && !(nv && nv->str && strcmp(ov->str, nv->str) == 0))
            vmap_remove_gid(&xa->map, ov->str, strlen(ov->str), gid);
        break;
    case ZD_T_TAGS:
        for (int t = 0; t < ov->ntags; t++) {
            bool kept = false;
            for (int u = 0; nv && u < nv->ntags && !kept; u++)
                kept = strcmp(ov->tags[t], nv->tags[u]) == 0;
            if (!kept)
                vmap_remove_gid(&xa->map, ov->tags[t], strlen(ov->tags[t]), gid);
        }
        break;
    case ZD_T_CODE: {
        if (!ov->str)
            break;
        size_t olen = strlen(ov->str), nlen = nv && nv->str ? strlen(nv->str) : 0;
        size_t keys[ZD_CODE_LEVELS_MAX + 1];
        int nk = code_keys(a, olen, keys);
        for (int k = 0; k < nk; k++)
            if (!(nv && nv->str && code_has_key(a, nv->str, nlen, ov->str, keys[k])))
                vmap_remove_gid(&xa->map, ov->str, keys[k], gid);
        if (!(nv && nv->str && nlen == olen))
            code_len_remove(xa, olen, gid);
        break;
    }
    case ZD_T_NUMBER:
    case ZD_T_DATE:
        if (!nv) {
            bsi_remove(&xa->bsi, gid);
            thr_remove(&xa->thr, gid);
        }
        break;
    }
    if (!nv)
        roaring_bitmap_remove(xa->exists, gid);
}

static int add_key(zd_vmap *m, const char *key, size_t len, uint32_t gid)
{
    roaring_bitmap_t *bm = vmap_get_or_add(m, key, len);
    if (!bm)
        return -ENOMEM;
    roaring_bitmap_add(bm, gid);
    return 0;
}

static int add_values(zd_ixattr *xa, uint32_t gid, const zd_value *nv)
{
    const zd_attr *a = xa->attr;
    switch (a->type) {
    case ZD_T_KEYWORD:
        if (nv->str && add_key(&xa->map, nv->str, strlen(nv->str), gid) < 0)
            return -ENOMEM;
        break;
    case ZD_T_TAGS:
        for (int t = 0; t < nv->ntags; t++)
            if (add_key(&xa->map, nv->tags[t], strlen(nv->tags[t]), gid) < 0)
                return -ENOMEM;
        break;
    case ZD_T_CODE: {
        if (!nv->str)
            break;
        size_t len = strlen(nv->str);
        size_t keys[ZD_CODE_LEVELS_MAX + 1];
        int nk = code_keys(a, len, keys);
        for (int k = 0; k < nk; k++)
            if (add_key(&xa->map, nv->str, keys[k], gid) < 0)
                return -ENOMEM;
        /* Longer codes than ZD_CODE_MAX never pass validation; they get no length bitmap. */
        if (len < ZD_CODE_LENS) {
            if (!xa->lens[len] && !(xa->lens[len] = roaring_bitmap_create()))
                return -ENOMEM;
            roaring_bitmap_add(xa->lens[len], gid);
        }
        break;
    }
    case ZD_T_NUMBER:
    case ZD_T_DATE: {
        int64_t old = 0;
        bool had = roaring_bitmap_contains(xa->exists, gid);
        if (bsi_set(&xa->bsi, xa->exists, gid, nv->num, &old) < 0)
            return -ENOMEM;
        roaring_bitmap_add(xa->exists, gid);
        return thr_set(&xa->thr, &xa->bsi, xa->exists, gid, had, old, nv->num);
    }
    }
    roaring_bitmap_add(xa->exists, gid);
    return 0;
}

/* Drops gid from every bitmap of the index: the fallback when its old profile is unknown, so
 * that a dense id handed out again never inherits stale memberships. Costs one removal per
 * bitmap. */
static void scrub_gid(zd_index *ix, uint32_t gid)
{
    for (int i = 0; i < ix->nattrs; i++) {
        zd_ixattr *xa = &ix->attrs[i];
        zd_vmap *m = &xa->map;
        /* After a deletion the slot holds the next entry of the run (or wraps an already
         * visited one to a later slot, which is harmless), so stay on it. */
        for (uint32_t s = 0; s < m->cap;) {
            zd_vent *e = &m->slots[s];
            if (e->key && roaring_bitmap_remove_checked(e->bm, gid) &&
                roaring_bitmap_is_empty(e->bm)) {
                vmap_delete_slot(m, s);
                continue;
            }
            s++;
        }
        for (int l = 0; l < ZD_CODE_LENS; l++)
            if (xa->lens[l])
                roaring_bitmap_remove(xa->lens[l], gid);
        bsi_remove(&xa->bsi, gid);
        thr_remove(&xa->thr, gid);
        roaring_bitmap_remove(xa->exists, gid);
    }
}

int zd_index_put(zd_index *ix, uint32_t gid, const zd_profile *old, const zd_profile *now)
{
    if (!now)
        return zd_index_del(ix, gid, old);
    /* A test-only injected failure strikes half-way, leaving the half-applied state a real
     * ENOMEM would. */
    int fail_at = zd_fault(ZD_FAULT_INDEX_PUT) ? ix->nattrs / 2 : -1;
    if (now->id && idpart_set(&ix->parts[gid >> ZD_DENSE_BITS], gid & ZD_DENSE_MAX, now->id) < 0)
        return -ENOMEM;
    /* On ENOMEM below the index holds part of the change; callers treat that as fatal and
     * rebuild, since CRoaring itself cannot report a failed allocation anyway. */
    for (int i = 0; i < ix->nattrs; i++) {
        zd_ixattr *xa = &ix->attrs[i];
        const zd_value *ov = value_of(old, xa->attr), *nv = value_of(now, xa->attr);
        if (i == fail_at)
            return -ENOMEM;
        if (ov)
            remove_values(xa, gid, ov, nv);
        if (nv && add_values(xa, gid, nv) < 0)
            return -ENOMEM;
    }
    roaring_bitmap_add(ix->universe, gid);
    return 0;
}

int zd_index_del(zd_index *ix, uint32_t gid, const zd_profile *old)
{
    if (zd_fault(ZD_FAULT_INDEX_DEL))
        return -ENOMEM;
    if (old) {
        for (int i = 0; i < ix->nattrs; i++) {
            zd_ixattr *xa = &ix->attrs[i];
            const zd_value *ov = value_of(old, xa->attr);
            if (ov)
                remove_values(xa, gid, ov, NULL);
        }
    } else {
        scrub_gid(ix, gid);
    }
    roaring_bitmap_remove(ix->universe, gid);
    idpart_del(&ix->parts[gid >> ZD_DENSE_BITS], gid & ZD_DENSE_MAX);
    return 0;
}

/* ---- reading ---------------------------------------------------------------------------- */

static const zd_ixattr *ixattr(const zd_index *ix, int attr)
{
    return attr >= 0 && attr < ix->nattrs ? &ix->attrs[attr] : NULL;
}

static const roaring_bitmap_t *nonempty(const roaring_bitmap_t *bm)
{
    return bm && !roaring_bitmap_is_empty(bm) ? bm : NULL;
}

const roaring_bitmap_t *zd_index_universe(const zd_index *ix)
{
    return ix->universe;
}

const roaring_bitmap_t *zd_index_exists(const zd_index *ix, int attr)
{
    const zd_ixattr *xa = ixattr(ix, attr);
    return xa ? xa->exists : NULL;
}

const roaring_bitmap_t *zd_index_keyword(const zd_index *ix, int attr, const char *value)
{
    const zd_ixattr *xa = ixattr(ix, attr);
    if (!xa || (xa->attr->type != ZD_T_KEYWORD && xa->attr->type != ZD_T_TAGS))
        return NULL;
    return vmap_get(&xa->map, value, strlen(value));
}

const roaring_bitmap_t *zd_index_code_prefix(const zd_index *ix, int attr, const char *prefix)
{
    const zd_ixattr *xa = ixattr(ix, attr);
    if (!xa || xa->attr->type != ZD_T_CODE)
        return NULL;
    return vmap_get(&xa->map, prefix, strlen(prefix));
}

const roaring_bitmap_t *zd_index_code_len(const zd_index *ix, int attr, int len)
{
    const zd_ixattr *xa = ixattr(ix, attr);
    if (!xa || xa->attr->type != ZD_T_CODE || len < 0 || len >= ZD_CODE_LENS)
        return NULL;
    return nonempty(xa->lens[len]);
}

/* ---- range evaluation -------------------------------------------------------------------
 *
 * For offset w, a member whose offset has a shorter bit length than w is less, a longer one is
 * greater; the members of w's own magnitude class are compared slice by slice from bit
 * T - 2 down (T = bit_length(w); bit T - 1 is set in both), O'Neil style: eq holds the members
 * equal to w on the bits seen so far; one leaves eq for "less" at a bit where w has 1 and it
 * has 0, for "greater" at the opposite.
 *
 * Done with whole-bitmap CRoaring operations this costs one pass over every container per
 * slice, and Debian's generic build of CRoaring 0.2.66 (no POPCNT, no AVX) is slow at exactly
 * these operations: about 1 ms for one range over 500k members. So the evaluation runs one
 * 65536-gid chunk at a time instead, on word arrays covering just the words that hold members
 * (they stay in L1): bitset containers are read in place, array containers value by value.
 * The result chunk is appended to the output as a container. This reads CRoaring's container
 * structs directly (public headers of 0.2.x, but internals): revisit when CRoaring is
 * upgraded. */

#define ZD_WORDS 1024 /* 64-bit words of one 65536-bit chunk */

typedef struct zd_chunk {
    const void *c; /* NULL: the bitmap has nothing in this chunk */
    uint8_t type;
} zd_chunk;

/* The container of key k in bm (may be NULL), or {NULL}. *cursor only moves forward, which
 * keeps the search linear over the ascending chunks of one evaluation. */
static zd_chunk chunk_at(const roaring_bitmap_t *bm, uint16_t k, int32_t *cursor)
{
    zd_chunk ch = {NULL, 0};
    if (!bm)
        return ch;
    const roaring_array_t *ra = &bm->high_low_container;
    int32_t i = *cursor;
    while (i < ra->size && ra->keys[i] < k)
        i++;
    *cursor = i;
    if (i < ra->size && ra->keys[i] == k) {
        ch.type = ra->typecodes[i];
        ch.c = container_unwrap_shared(ra->containers[i], &ch.type);
    }
    return ch;
}

/* The words [*lo, *hi) outside of which the chunk has no bits. */
static void chunk_span(zd_chunk ch, size_t *lo, size_t *hi)
{
    *lo = *hi = 0;
    if (ch.type == BITSET_CONTAINER_TYPE_CODE) {
        const uint64_t *w = ((const bitset_container_t *)ch.c)->array;
        size_t l = 0, h = ZD_WORDS;
        while (l < h && !w[l])
            l++;
        while (h > l && !w[h - 1])
            h--;
        *lo = l;
        *hi = h;
    } else if (ch.type == ARRAY_CONTAINER_TYPE_CODE) {
        const array_container_t *a = ch.c;
        if (a->cardinality > 0) {
            *lo = a->array[0] >> 6;
            *hi = ((size_t)a->array[a->cardinality - 1] >> 6) + 1;
        }
    } else if (ch.type == RUN_CONTAINER_TYPE_CODE) {
        const run_container_t *r = ch.c;
        if (r->n_runs > 0) {
            const rle16_t *last = &r->runs[r->n_runs - 1];
            *lo = r->runs[0].value >> 6;
            *hi = (((size_t)last->value + last->length) >> 6) + 1;
        }
    }
}

/* Roughly what visiting the chunk costs over words [lo, hi), in word operations. */
static size_t chunk_cost(zd_chunk ch, size_t lo, size_t hi)
{
    if (!ch.c)
        return 0;
    if (ch.type == ARRAY_CONTAINER_TYPE_CODE)
        return 2 * (size_t)((const array_container_t *)ch.c)->cardinality;
    if (ch.type == RUN_CONTAINER_TYPE_CODE)
        return (hi - lo) + 4 * (size_t)((const run_container_t *)ch.c)->n_runs;
    return hi - lo;
}

/* The values of array a that fall in words [lo, hi), as indexes [*i0, *i1): values outside a
 * chunk's span are skipped by two binary searches, never visited. */
static void array_span(const array_container_t *a, size_t lo, size_t hi, int32_t *i0, int32_t *i1)
{
    for (int side = 0; side < 2; side++) {
        uint32_t key = (uint32_t)(side ? hi : lo) * 64;
        int32_t l = 0, h = a->cardinality;
        while (l < h) {
            int32_t mid = l + (h - l) / 2;
            if (a->array[mid] < key)
                l = mid + 1;
            else
                h = mid;
        }
        *(side ? i1 : i0) = l;
    }
}

/* Applies the values of array s to words [lo, hi): out[w] = old[w] & m, & ~m or | m, where m
 * is the mask of s in word w; words of out that s does not touch are left alone. The values of
 * one word are gathered into a register mask and each value stores the mask so far: every
 * store overwrites, so no value waits on the previous one's store to the same word (old and
 * out must differ), and there is no data-dependent branch. */
enum { ARR_AND, ARR_ANDNOT, ARR_OR };

static void array_apply(const array_container_t *s, int mode, const uint64_t *restrict old,
                        uint64_t *restrict out, size_t lo, size_t hi)
{
    int32_t i0, i1;
    array_span(s, lo, hi, &i0, &i1);
    const uint16_t *a = s->array;
    uint64_t m = 0;
    unsigned cur = ~0u;
#define ZD_ARRAY_LOOP(expr)                                                                        \
    for (int32_t i = i0; i < i1; i++) {                                                            \
        unsigned w = a[i] >> 6;                                                                    \
        m = (w == cur ? m : 0) | (uint64_t)1 << (a[i] & 63);                                       \
        cur = w;                                                                                   \
        out[w] = (expr);                                                                           \
    }
    switch (mode) {
    case ARR_AND:
        ZD_ARRAY_LOOP(old[w] & m)
        break;
    case ARR_ANDNOT:
        ZD_ARRAY_LOOP(old[w] & ~m)
        break;
    case ARR_OR:
        ZD_ARRAY_LOOP(old[w] | m)
        break;
    }
#undef ZD_ARRAY_LOOP
}

/* Words [lo, hi) of the chunk: a bitset's own array, anything else expanded into scratch.
 * NULL when the chunk is empty. */
static const uint64_t *chunk_words(zd_chunk ch, uint64_t *scratch, size_t lo, size_t hi)
{
    if (!ch.c)
        return NULL;
    if (ch.type == BITSET_CONTAINER_TYPE_CODE)
        return ((const bitset_container_t *)ch.c)->array;
    memset(scratch + lo, 0, (hi - lo) * sizeof(uint64_t));
    if (ch.type == ARRAY_CONTAINER_TYPE_CODE) {
        const array_container_t *a = ch.c;
        int32_t i0, i1;
        array_span(a, lo, hi, &i0, &i1);
        for (int32_t i = i0; i < i1; i++)
            scratch[a->array[i] >> 6] |= (uint64_t)1 << (a->array[i] & 63);
    } else if (ch.type == RUN_CONTAINER_TYPE_CODE) {
        uint32_t from = (uint32_t)lo * 64, to = (uint32_t)hi * 64;
        const run_container_t *r = ch.c;
        for (int32_t i = 0; i < r->n_runs; i++) {
            uint32_t a = r->runs[i].value, z = a + r->runs[i].length + 1; /* [a, z) */
            a = a < from ? from : a;
            z = z > to ? to : z;
            while (a < z) {
                /* Whole words where possible: runs cover long stretches after optimize. */
                if ((a & 63) == 0 && z - a >= 64) {
                    scratch[a >> 6] = ~(uint64_t)0;
                    a += 64;
                } else {
                    scratch[a >> 6] |= (uint64_t)1 << (a & 63);
                    a++;
                }
            }
        }
    }
    return scratch;
}

/* dst[lo, hi) |= chunk (or &= ~chunk when clear); scratch may be overwritten. */
static void chunk_merge(zd_chunk ch, bool clear, uint64_t *dst, uint64_t *scratch, size_t lo,
                        size_t hi)
{
    if (!ch.c)
        return;
    if (ch.type == ARRAY_CONTAINER_TYPE_CODE) {
        memcpy(scratch + lo, dst + lo, (hi - lo) * sizeof(uint64_t));
        array_apply(ch.c, clear ? ARR_ANDNOT : ARR_OR, scratch, dst, lo, hi);
        return;
    }
    const uint64_t *w = chunk_words(ch, scratch, lo, hi);
    if (clear)
        for (size_t j = lo; j < hi; j++)
            dst[j] &= ~w[j];
    else
        for (size_t j = lo; j < hi; j++)
            dst[j] |= w[j];
}

/* One slice step over words [lo, hi). The words go two at a time through 128-bit vectors
 * (GNU C vector extension, SSE2 on any x86-64): gcc's -O2 does not vectorize these loops.
 * Returns the OR of the new eq words: 0 means eq is empty. */
enum { STEP_KEEP_ZERO, STEP_KEEP_ONE, STEP_LT, STEP_GT };

typedef uint64_t zd_v2 __attribute__((vector_size(16)));

static inline zd_v2 v2_load(const uint64_t *p)
{
    zd_v2 v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static inline void v2_store(uint64_t *p, zd_v2 v)
{
    memcpy(p, &v, sizeof(v));
}

static uint64_t slice_step(int step, uint64_t *restrict eq, uint64_t *restrict acc,
                           const uint64_t *restrict s, size_t lo, size_t hi)
{
    zd_v2 any = {0, 0};
    size_t j = lo;
    switch (step) {
    case STEP_KEEP_ZERO: /* w has 0 here, "greater" not wanted */
        for (; j + 2 <= hi; j += 2) {
            zd_v2 e = v2_load(eq + j) & ~v2_load(s + j);
            v2_store(eq + j, e);
            any |= e;
        }
        break;
    case STEP_KEEP_ONE: /* w has 1 here, "less" not wanted */
        for (; j + 2 <= hi; j += 2) {
            zd_v2 e = v2_load(eq + j) & v2_load(s + j);
            v2_store(eq + j, e);
            any |= e;
        }
        break;
    case STEP_LT: /* w has 1: members with 0 are less */
        for (; j + 2 <= hi; j += 2) {
            zd_v2 e = v2_load(eq + j), sv = v2_load(s + j);
            v2_store(acc + j, v2_load(acc + j) | (e & ~sv));
            e &= sv;
            v2_store(eq + j, e);
            any |= e;
        }
        break;
    case STEP_GT: /* w has 0: members with 1 are greater */
        for (; j + 2 <= hi; j += 2) {
            zd_v2 e = v2_load(eq + j), sv = v2_load(s + j);
            v2_store(acc + j, v2_load(acc + j) | (e & sv));
            e &= ~sv;
            v2_store(eq + j, e);
            any |= e;
        }
        break;
    }
    uint64_t rest = any[0] | any[1];
    if (j < hi) {
        /* The odd last word. */
        uint64_t e = eq[j], sv = s[j];
        bool one = step == STEP_KEEP_ONE || step == STEP_LT;
        if (step == STEP_LT)
            acc[j] |= e & ~sv;
        else if (step == STEP_GT)
            acc[j] |= e & sv;
        eq[j] = one ? e & sv : e & ~sv;
        rest |= eq[j];
    }
    return rest;
}

/* The step for a sparse slice (an array container): the new eq is built in *tmp, the buffers
 * are swapped, and what left eq goes to acc with one pass over the words. */
static void slice_step_sparse(int step, uint64_t **eq, uint64_t *acc, uint64_t **tmp,
                              const array_container_t *s, size_t lo, size_t hi)
{
    uint64_t *e = *eq, *t = *tmp;
    bool clear = step == STEP_KEEP_ZERO || step == STEP_GT;
    if (clear)
        memcpy(t + lo, e + lo, (hi - lo) * sizeof(uint64_t));
    else
        memset(t + lo, 0, (hi - lo) * sizeof(uint64_t));
    array_apply(s, clear ? ARR_ANDNOT : ARR_AND, e, t, lo, hi);
    if (step == STEP_LT || step == STEP_GT)
        for (size_t j = lo; j < hi; j++)
            acc[j] |= e[j] & ~t[j];
    *eq = t;
    *tmp = e;
}

static uint64_t popcount64(uint64_t x)
{
    x -= (x >> 1) & 0x5555555555555555ull;
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (x * 0x0101010101010101ull) >> 56;
}

/* Appends words [lo, hi) of res as the container of key k, as CRoaring would store it: an
 * array up to 4096 values, a bitset above. */
static int append_chunk(roaring_bitmap_t *out, uint16_t k, const uint64_t *res, size_t lo,
                        size_t hi)
{
    uint64_t card = 0;
    for (size_t j = lo; j < hi; j++)
        card += popcount64(res[j]);
    if (card == 0)
        return 0;
    if (card > DEFAULT_MAX_SIZE) {
        bitset_container_t *bc = bitset_container_create();
        if (!bc)
            return -ENOMEM;
        memcpy(bc->array + lo, res + lo, (hi - lo) * sizeof(uint64_t));
        bc->cardinality = (int32_t)card;
        ra_append(&out->high_low_container, k, bc, BITSET_CONTAINER_TYPE_CODE);
    } else {
        array_container_t *ac = array_container_create_given_capacity((int32_t)card);
        if (!ac)
            return -ENOMEM;
        int32_t n = 0;
        for (size_t j = lo; j < hi; j++)
            for (uint64_t x = res[j]; x; x &= x - 1)
                ac->array[n++] = (uint16_t)(j * 64 + (size_t)__builtin_ctzll(x));
        ac->cardinality = n;
        ra_append(&out->high_low_container, k, ac, ARRAY_CONTAINER_TYPE_CODE);
    }
    return 0;
}

/* Whether bit x of chunk ch is set. */
static bool chunk_has(zd_chunk ch, uint16_t x)
{
    if (!ch.c)
        return false;
    if (ch.type == BITSET_CONTAINER_TYPE_CODE)
        return (((const bitset_container_t *)ch.c)->array[x >> 6] >> (x & 63)) & 1;
    if (ch.type == ARRAY_CONTAINER_TYPE_CODE) {
        const array_container_t *a = ch.c;
        int32_t l = 0, h = a->cardinality;
        while (l < h) {
            int32_t mid = l + (h - l) / 2;
            if (a->array[mid] < x)
                l = mid + 1;
            else
                h = mid;
        }
        return l < a->cardinality && a->array[l] == x;
    }
    const run_container_t *rc = ch.c;
    for (int32_t i = 0; i < rc->n_runs; i++)
        if (x >= rc->runs[i].value && x - rc->runs[i].value <= rc->runs[i].length)
            return true;
    return false;
}

/* Per-call state of zd_index_range. */
typedef struct zd_range {
    const zd_bsi *b;
    zd_cmp op;
    uint64_t w;
    int t;          /* bit_length(w) */
    int lmin, lmax; /* the magnitude classes that can hold members of ex */
    int top;        /* the slices above hold w's bit for every member of ex: no step needed */
    bool want_lt, want_gt;
    int32_t wcur, scur[ZD_BSI_BITS], mcur[ZD_BSI_BITS + 1];
    /* Word buffers; only words inside the current chunk's span are ever written or read. */
    uint64_t *ex, *eq, *acc, *tmp, *alt, *set;
} zd_range;

/* A set given by a stored threshold bitmap: every member (bm NULL, !none), nobody (none), the
 * members in bm (keep) or those not in bm. */
typedef struct zd_thrset {
    const roaring_bitmap_t *bm;
    bool keep, none;
} zd_thrset;

/* With threshold bitmaps, a range is the `settled` members plus those of the bin that the bit
 * slices put on the wanted side. The bin is what `other` keeps of the rest (LT: settled T_lo,
 * other T_hi; GE: settled U_hi, other U_lo), and its values lie in [lo_v, hi_v]. */
struct zd_thrcut {
    zd_thrset settled, other;
    bool has_lo, has_hi;
    int64_t lo_v, hi_v;
    int32_t cur[2];
};

/* dst[lo, hi) &= the words of s's chunk k. */
static void thrset_apply(const zd_thrset *s, int32_t *cursor, uint16_t k, uint64_t *dst,
                         uint64_t *scratch, size_t lo, size_t hi)
{
    if (s->none) {
        memset(dst + lo, 0, (hi - lo) * sizeof(uint64_t));
        return;
    }
    if (!s->bm)
        return;
    zd_chunk ch = chunk_at(s->bm, k, cursor);
    if (!s->keep) {
        chunk_merge(ch, true, dst, scratch, lo, hi);
        return;
    }
    const uint64_t *w = chunk_words(ch, scratch, lo, hi);
    if (!w)
        memset(dst + lo, 0, (hi - lo) * sizeof(uint64_t));
    else
        for (size_t j = lo; j < hi; j++)
            dst[j] &= w[j];
}

/* The members of the side the operator wants (less for LT/LE, greater for GT/GE) among the
 * magnitude classes other than w's, into acc: either as the union of those classes, or as ex
 * minus the classes of the other side and w's own, whichever visits less. */
static void range_side(zd_range *r, uint16_t k, size_t lo, size_t hi, bool within)
{
    zd_chunk mags[ZD_BSI_BITS + 1];
    size_t cost_side = 0, cost_rest = 0;
    int from = r->lmin, top = r->lmax;
    for (int l = from; l <= top; l++) {
        mags[l] = chunk_at(r->b->mags[l], k, &r->mcur[l]);
        bool side = r->want_lt ? l < r->t : l > r->t;
        *(side ? &cost_side : &cost_rest) += chunk_cost(mags[l], lo, hi);
    }
    if (cost_side <= cost_rest) {
        memset(r->acc + lo, 0, (hi - lo) * sizeof(uint64_t));
        for (int l = from; l <= top; l++)
            if (r->want_lt ? l < r->t : l > r->t)
                chunk_merge(mags[l], false, r->acc, r->tmp, lo, hi);
        if (within)
            for (size_t j = lo; j < hi; j++)
                r->acc[j] &= r->ex[j];
    } else {
        memcpy(r->acc + lo, r->ex + lo, (hi - lo) * sizeof(uint64_t));
        for (int l = from; l <= top; l++)
            if (!(r->want_lt ? l < r->t : l > r->t))
                chunk_merge(mags[l], true, r->acc, r->tmp, lo, hi);
    }
}

/* A bin with few members in chunk k (r->ex): each member's offset is read back from the slices,
 * compared with w, and the wanted ones are added to r->set. Cheaper than slice-wide word
 * passes when the bin is a thin band of the values. */
static void bin_by_member(zd_range *r, uint16_t k, size_t lo, size_t hi)
{
    zd_chunk sl[ZD_BSI_BITS];
    int depth = r->top + 1 < r->b->depth ? r->top + 1 : r->b->depth;
    uint64_t w = depth < 64 ? r->w & (((uint64_t)1 << depth) - 1) : r->w;
    for (int i = 0; i < depth; i++)
        sl[i] = chunk_at(r->b->slices[i], k, &r->scur[i]);
    for (size_t j = lo; j < hi; j++)
        for (uint64_t x = r->ex[j]; x; x &= x - 1) {
            uint16_t low = (uint16_t)(j * 64 + (size_t)__builtin_ctzll(x));
            uint64_t u = 0;
            for (int i = 0; i < depth; i++)
                u |= (uint64_t)chunk_has(sl[i], low) << i;
            bool in = r->want_lt ? u < w : u >= w;
            if (in)
                r->set[j] |= (uint64_t)1 << (low & 63);
        }
}

/* Evaluates chunk k over words [lo, hi) of r->ex; returns the result words. */
static uint64_t *range_chunk(zd_range *r, uint16_t k, size_t lo, size_t hi, bool within)
{
    const zd_bsi *b = r->b;
    uint64_t *eq = r->eq, *alt = r->alt, *acc = r->acc;
    memcpy(eq + lo, r->ex + lo, (hi - lo) * sizeof(uint64_t));
    const uint64_t *own = chunk_words(chunk_at(b->mags[r->t], k, &r->mcur[r->t]), r->tmp, lo, hi);
    if (own)
        for (size_t j = lo; j < hi; j++)
            eq[j] &= own[j];
    else
        memset(eq + lo, 0, (hi - lo) * sizeof(uint64_t));
    if (r->want_lt || r->want_gt)
        range_side(r, k, lo, hi, within);
    for (int i = r->t - 2 < r->top ? r->t - 2 : r->top; i >= 0; i--) {
        bool one = (r->w >> i) & 1;
        int step =
            one ? (r->want_lt ? STEP_LT : STEP_KEEP_ONE) : (r->want_gt ? STEP_GT : STEP_KEEP_ZERO);
        zd_chunk sch = chunk_at(b->slices[i], k, &r->scur[i]);
        if (!sch.c) {
            /* Nobody in this chunk has the bit: a 0 in w changes nothing, a 1 makes every
             * remaining member less. */
            if (!one)
                continue;
            if (r->want_lt)
                for (size_t j = lo; j < hi; j++)
                    acc[j] |= eq[j];
            memset(eq + lo, 0, (hi - lo) * sizeof(uint64_t));
            break;
        }
        if (sch.type == ARRAY_CONTAINER_TYPE_CODE) {
            slice_step_sparse(step, &eq, acc, &alt, sch.c, lo, hi);
            continue;
        }
        if (!slice_step(step, eq, acc, chunk_words(sch, r->tmp, lo, hi), lo, hi))
            break;
    }
    if (!r->want_lt && !r->want_gt)
        return eq;
    if (r->op == ZD_CMP_LE || r->op == ZD_CMP_GE)
        for (size_t j = lo; j < hi; j++)
            acc[j] |= eq[j];
    return acc;
}

/* The members of exists with value `op` v, restricted to within. Without cut by the bit slices
 * alone; with one (op LT or GE), the settled members plus those of the bin the slices put on the
 * wanted side, one chunk at a time. */
static roaring_bitmap_t *bsi_range(const zd_bsi *b, const roaring_bitmap_t *exists, zd_cmp op,
                                   int64_t v, const roaring_bitmap_t *within, zd_thrcut *cut)
{
    bool want_lt = op == ZD_CMP_LT || op == ZD_CMP_LE;
    bool want_gt = op == ZD_CMP_GT || op == ZD_CMP_GE;

    /* Values outside what the slices can hold compare the same way with every member (so the
     * answer is the same with a cut or without). */
    uint64_t bv = biased(v);
    bool all_greater = bv < b->bbase;
    uint64_t w = bv - b->bbase;
    bool all_less = !all_greater && b->depth < ZD_BSI_BITS && (w >> b->depth) != 0;
    if (all_greater || all_less) {
        if (all_greater ? !want_gt : !want_lt)
            return roaring_bitmap_create();
        return within ? roaring_bitmap_and(exists, within) : roaring_bitmap_copy(exists);
    }

    /* 40 KiB of word buffers: too big for every caller's stack, and small enough that malloc
     * serves them from the heap without mapping fresh pages each time. */
    zd_range rs = {0}, *r = &rs;
    uint64_t *words = malloc(6 * ZD_WORDS * sizeof(uint64_t));
    roaring_bitmap_t *out = roaring_bitmap_create();
    if (!words || !out)
        goto fail;
    r->ex = words;
    r->eq = words + ZD_WORDS;
    r->acc = words + 2 * ZD_WORDS;
    r->tmp = words + 3 * ZD_WORDS;
    r->alt = words + 4 * ZD_WORDS;
    r->set = words + 5 * ZD_WORDS;
    r->b = b;
    r->op = op;
    r->w = w;
    r->t = bit_length(w);
    r->want_lt = want_lt;
    r->want_gt = want_gt;
    r->lmin = 0;
    r->lmax = b->depth; /* no offset is longer */
    r->top = ZD_BSI_BITS - 1;
    if (cut && cut->has_hi) {
        /* The bin's offsets, and w among them, share every bit above the highest one in which
         * its two ends differ; a narrow bin (a year of dates) leaves only its low slices. */
        uint64_t ulo =
            cut->has_lo && biased(cut->lo_v) > b->bbase ? biased(cut->lo_v) - b->bbase : 0;
        uint64_t uhi = biased(cut->hi_v) - b->bbase; /* w, in the bin, is not below the base */
        r->top = bit_length(ulo ^ uhi) - 1;
    }
    if (cut) {
        /* Classes wholly outside the bin hold none of its members: skip them. */
        if (cut->has_lo && biased(cut->lo_v) > b->bbase)
            r->lmin = bit_length(biased(cut->lo_v) - b->bbase);
        if (cut->has_hi) {
            int l = biased(cut->hi_v) > b->bbase ? bit_length(biased(cut->hi_v) - b->bbase) : 0;
            r->lmax = l < r->lmax ? l : r->lmax;
        }
        r->lmin = r->lmin < r->lmax ? r->lmin : r->lmax;
    }
    const roaring_array_t *ex = &exists->high_low_container;
    for (int32_t e = 0; e < ex->size; e++) {
        uint16_t k = ex->keys[e];
        zd_chunk ech = {NULL, ex->typecodes[e]};
        ech.c = container_unwrap_shared(ex->containers[e], &ech.type);
        size_t lo, hi;
        chunk_span(ech, &lo, &hi);
        zd_chunk wch = {NULL, 0};
        if (within) {
            wch = chunk_at(within, k, &r->wcur);
            if (!wch.c)
                continue;
            size_t wlo, whi;
            chunk_span(wch, &wlo, &whi);
            lo = wlo > lo ? wlo : lo;
            hi = whi < hi ? whi : hi;
        }
        if (lo >= hi)
            continue;
        const uint64_t *ew = chunk_words(ech, r->tmp, lo, hi);
        memcpy(r->ex + lo, ew + lo, (hi - lo) * sizeof(uint64_t));
        if (within) {
            const uint64_t *ww = chunk_words(wch, r->tmp, lo, hi);
            for (size_t j = lo; j < hi; j++)
                r->ex[j] &= ww[j];
        }
        const uint64_t *res;
        if (!cut) {
            res = range_chunk(r, k, lo, hi, within != NULL);
        } else {
            memcpy(r->set + lo, r->ex + lo, (hi - lo) * sizeof(uint64_t));
            thrset_apply(&cut->settled, &cut->cur[0], k, r->set, r->tmp, lo, hi);
            for (size_t j = lo; j < hi; j++)
                r->ex[j] &= ~r->set[j];
            thrset_apply(&cut->other, &cut->cur[1], k, r->ex, r->tmp, lo, hi);
            size_t busy = 0;
            for (size_t j = lo; j < hi; j++)
                busy += r->ex[j] != 0;
            res = r->set;
            if (busy > 0 && busy <= ZD_WORDS / 16) {
                bin_by_member(r, k, lo, hi);
            } else if (busy > 0) {
                /* range_chunk's result is one of its own buffers, never set. */
                uint64_t *bin = range_chunk(r, k, lo, hi, true);
                for (size_t j = lo; j < hi; j++)
                    bin[j] |= r->set[j];
                res = bin;
            }
        }
        if (append_chunk(out, k, res, lo, hi) < 0)
            goto fail;
    }
    free(words);
    return out;
fail:
    free(words);
    bm_free(out);
    return NULL;
}

/* exists restricted to within (NULL: all of it). */
static roaring_bitmap_t *exists_within(const zd_ixattr *xa, const roaring_bitmap_t *within)
{
    return within ? roaring_bitmap_and(xa->exists, within) : roaring_bitmap_copy(xa->exists);
}

/* T_j (upper false) or U_j (upper true) of boundary j, restricted to within. j below the active
 * window stands for "no boundary": T empty, U every member; j at or above its top for T every
 * member, U empty. */
static roaring_bitmap_t *thr_side(const zd_ixattr *xa, int j, bool upper,
                                  const roaring_bitmap_t *within)
{
    const zd_thrs *th = &xa->thr;
    if (j < th->lo || j >= th->hi) {
        if ((j < th->lo) == upper)
            return exists_within(xa, within);
        return roaring_bitmap_create();
    }
    const zd_thr *t = &th->t[j];
    if (t->upper == upper)
        return within ? roaring_bitmap_and(t->bm, within) : roaring_bitmap_copy(t->bm);
    if (!within)
        return roaring_bitmap_andnot(xa->exists, t->bm);
    roaring_bitmap_t *r = roaring_bitmap_and(xa->exists, within);
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
static roaring_bitmap_t *thr_range(const zd_ixattr *xa, bool upper, int64_t w,
                                   const roaring_bitmap_t *within)
{
    const zd_thrs *th = &xa->thr;
    int j = thr_count_le(th, w) - 1; /* the largest boundary <= w, maybe outside the window */
    if (j >= th->hi)
        j = th->hi - 1;
    if (j < th->lo)
        j = th->lo - 1;
    if (j >= th->lo && th->bounds[j] == w)
        return thr_side(xa, j, upper, within);
    int k = j + 1;
    /* Applying the two boundaries costs about their stored members; when w lies in the thick
     * of a number's values those are many, and the bit slices alone are cheaper (the magnitude
     * classes spare them most members of a skewed attribute). Not so for dates: nearly all
     * their offsets have the same bit length, so the slices alone cost a pass over every
     * member's words per slice (16 or so), while a boundary costs at most one. */
    uint64_t applied = (j >= th->lo ? th->t[j].n : 0) + (k < th->hi ? th->t[k].n : 0);
    if (xa->attr->type == ZD_T_NUMBER && applied > roaring_bitmap_get_cardinality(xa->exists) / 32)
        return bsi_range(&xa->bsi, xa->exists, upper ? ZD_CMP_GE : ZD_CMP_LT, w, within, NULL);
    zd_thrcut cut = {
        .settled = upper ? thr_set_of(th, k, true) : thr_set_of(th, j, false),
        .other = upper ? thr_set_of(th, j, true) : thr_set_of(th, k, false),
        .has_lo = j >= th->lo,
        .has_hi = k < th->hi,
        .lo_v = j >= th->lo ? th->bounds[j] : 0,
        .hi_v = k < th->hi ? th->bounds[k] - 1 : 0,
    };
    return bsi_range(&xa->bsi, xa->exists, upper ? ZD_CMP_GE : ZD_CMP_LT, w, within, &cut);
}

roaring_bitmap_t *zd_index_range(const zd_index *ix, int attr, zd_cmp op, int64_t v,
                                 const roaring_bitmap_t *within)
{
    const zd_ixattr *xa = ixattr(ix, attr);
    if (!xa || (xa->attr->type != ZD_T_NUMBER && xa->attr->type != ZD_T_DATE))
        return roaring_bitmap_create();
    if (op == ZD_CMP_EQ || xa->thr.hi == xa->thr.lo)
        return bsi_range(&xa->bsi, xa->exists, op, v, within, NULL);
    /* x <= v is x < v + 1 and x > v is x >= v + 1, so only LT and GE remain. */
    if (op == ZD_CMP_LE || op == ZD_CMP_GT) {
        if (v == INT64_MAX)
            return op == ZD_CMP_LE ? exists_within(xa, within) : roaring_bitmap_create();
        v++;
    }
    return thr_range(xa, op == ZD_CMP_GE || op == ZD_CMP_GT, v, within);
}

const char *zd_index_id(const zd_index *ix, uint32_t gid)
{
    const zd_idpart *p = &ix->parts[gid >> ZD_DENSE_BITS];
    uint32_t dense = gid & ZD_DENSE_MAX;
    if (dense >= p->noffs || !p->offs[dense])
        return NULL;
    return p->arena + p->offs[dense];
}

void zd_index_foreach_value(const zd_index *ix, int attr, int level, zd_index_value_fn fn,
                            void *udata)
{
    const zd_ixattr *xa = ixattr(ix, attr);
    if (!xa)
        return;
    zd_type t = xa->attr->type;
    if (t != ZD_T_KEYWORD && t != ZD_T_TAGS && t != ZD_T_CODE)
        return;
    const zd_vmap *m = &xa->map;
    for (uint32_t i = 0; i < m->cap; i++) {
        const zd_vent *e = &m->slots[i];
        if (e->key && (t != ZD_T_CODE || e->klen == (uint32_t)level))
            fn(e->key, e->bm, udata);
    }
}

/* ---- statistics and maintenance --------------------------------------------------------- */

/* What one malloc'd block costs beyond its payload with glibc (header and rounding). */
#define ZD_MALLOC_OVERHEAD 16

/* Heap bytes of one bitmap: the struct, the key/container/typecode arrays, and per container
 * its header struct and payload (CRoaring allocates each separately). */
static size_t bitmap_heap_bytes(const roaring_bitmap_t *bm)
{
    roaring_statistics_t st;
    roaring_bitmap_statistics(bm, &st);
    const roaring_array_t *ra = &bm->high_low_container;
    size_t n = sizeof(*bm) + ZD_MALLOC_OVERHEAD;
    if (ra->allocation_size > 0)
        n += (size_t)ra->allocation_size * (sizeof(void *) + sizeof(uint16_t) + sizeof(uint8_t)) +
             3 * ZD_MALLOC_OVERHEAD;
    n += (size_t)st.n_containers * (16 + 2 * ZD_MALLOC_OVERHEAD);
    n += (size_t)st.n_bytes_array_containers + st.n_bytes_run_containers +
         st.n_bytes_bitset_containers;
    return n;
}

typedef struct zd_stats_acc {
    uint64_t bitmaps, serialized, heap;
} zd_stats_acc;

static void stats_add(zd_stats_acc *a, const roaring_bitmap_t *bm)
{
    if (!bm)
        return;
    a->bitmaps++;
    a->serialized += roaring_bitmap_portable_size_in_bytes(bm);
    a->heap += bitmap_heap_bytes(bm);
}

void zd_index_get_stats(const zd_index *ix, zd_index_stats *st)
{
    zd_stats_acc a = {0};
    uint64_t tables = sizeof(*ix) + (uint64_t)ix->nattrs * sizeof(zd_ixattr);
    stats_add(&a, ix->universe);
    for (int i = 0; i < ix->nattrs; i++) {
        const zd_ixattr *xa = &ix->attrs[i];
        stats_add(&a, xa->exists);
        for (uint32_t s = 0; s < xa->map.cap; s++) {
            if (!xa->map.slots[s].key)
                continue;
            stats_add(&a, xa->map.slots[s].bm);
            tables += xa->map.slots[s].klen + 1 + ZD_MALLOC_OVERHEAD;
        }
        tables += (uint64_t)xa->map.cap * sizeof(zd_vent);
        for (int l = 0; l < ZD_CODE_LENS; l++)
            stats_add(&a, xa->lens[l]);
        for (int d = 0; d < xa->bsi.depth; d++)
            stats_add(&a, xa->bsi.slices[d]);
        for (int l = 0; l <= ZD_BSI_BITS; l++)
            stats_add(&a, xa->bsi.mags[l]);
        for (int j = xa->thr.lo; j < xa->thr.hi; j++)
            stats_add(&a, xa->thr.t[j].bm);
        if (xa->thr.nb > 0)
            tables +=
                (uint64_t)xa->thr.cap * (sizeof(int64_t) + sizeof(zd_thr)) + 2 * ZD_MALLOC_OVERHEAD;
    }
    uint64_t ids = 0;
    for (int p = 0; p < ZD_PARTITIONS_MAX; p++)
        ids += (uint64_t)ix->parts[p].noffs * sizeof(uint32_t) + ix->parts[p].acap;
    st->profiles = roaring_bitmap_get_cardinality(ix->universe);
    st->bitmaps = a.bitmaps;
    st->bitmap_bytes = a.serialized;
    st->id_bytes = ids;
    st->total_bytes = a.heap + tables + ids;
}

static void optimize_bitmap(roaring_bitmap_t *bm)
{
    if (!bm)
        return;
    roaring_bitmap_run_optimize(bm);
    roaring_bitmap_shrink_to_fit(bm);
}

void zd_index_optimize(zd_index *ix)
{
    optimize_bitmap(ix->universe);
    for (int i = 0; i < ix->nattrs; i++) {
        zd_ixattr *xa = &ix->attrs[i];
        optimize_bitmap(xa->exists);
        for (uint32_t s = 0; s < xa->map.cap; s++)
            if (xa->map.slots[s].key)
                optimize_bitmap(xa->map.slots[s].bm);
        for (int l = 0; l < ZD_CODE_LENS; l++)
            optimize_bitmap(xa->lens[l]);
        for (int d = 0; d < xa->bsi.depth; d++)
            optimize_bitmap(xa->bsi.slices[d]);
        for (int l = 0; l <= ZD_BSI_BITS; l++)
            optimize_bitmap(xa->bsi.mags[l]);
        /* After a bulk load, store exactly the smaller side of every boundary. */
        uint64_t members = roaring_bitmap_get_cardinality(xa->exists);
        for (int j = xa->thr.lo; j < xa->thr.hi; j++) {
            zd_thr *t = &xa->thr.t[j];
            if (2 * t->n > members) {
                roaring_bitmap_t *other = roaring_bitmap_andnot(xa->exists, t->bm);
                if (other) {
                    bm_free(t->bm);
                    t->bm = other;
                    t->n = roaring_bitmap_get_cardinality(other);
                    t->upper = !t->upper;
                }
            }
            optimize_bitmap(t->bm);
        }
    }
    /* Trim the id tables' growth slack too; after a bulk load most of it would stay unused. */
    for (int p = 0; p < ZD_PARTITIONS_MAX; p++) {
        zd_idpart *ip = &ix->parts[p];
        if (ip->garbage > 0 && ip->alen > 0)
            idpart_compact(ip, 0);
        if (ip->acap > ip->alen && ip->alen > 0) {
            char *na = realloc(ip->arena, ip->alen);
            if (na) {
                ip->arena = na;
                ip->acap = ip->alen;
            }
        }
        uint32_t used = ip->noffs;
        while (used > 0 && !ip->offs[used - 1])
            used--;
        if (used == 0) {
            free(ip->offs);
            ip->offs = NULL;
            ip->noffs = 0;
        } else if (used < ip->noffs) {
            uint32_t *no = realloc(ip->offs, used * sizeof(*no));
            if (no) {
                ip->offs = no;
                ip->noffs = used;
            }
        }
    }
}
