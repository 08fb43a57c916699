/* Range evaluation of index_range.h, one 65536-gid chunk at a time on plain words.
 *
 * For offset w, a member whose offset has a shorter bit length than w is less, a longer one is
 * greater; the members of w's own magnitude class are compared slice by slice from bit
 * T - 2 down (T = zd_bit_length(w); bit T - 1 is set in both), O'Neil style: eq holds the members
 * equal to w on the bits seen so far; one leaves eq for "less" at a bit where w has 1 and it
 * has 0, for "greater" at the opposite.
 *
 * Done with whole-bitmap CRoaring operations this costs one pass over every container per
 * slice, and Debian's generic build of CRoaring 0.2.66 (no POPCNT, no AVX) is slow at exactly
 * these operations: about 1 ms for one range over 500k members. So the evaluation runs one
 * 65536-gid chunk at a time instead, on word arrays covering just the words that hold members
 * (they stay in L1): bitset containers are read in place, array containers value by value
 * (index_chunk.h). The result chunk is appended to the output as a container.
 *
 * A cut (index_thr.c) settles most members through threshold boundaries and month bins before
 * any slice is read: only the members of the bins the bounds fall in are compared, member by
 * member when they are few. */
#include "profiles/index_range.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "profiles/index_bitmap.h"
#include "profiles/index_chunk.h"

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
    zd_array_apply(s, clear ? ZD_ARR_ANDNOT : ZD_ARR_AND, e, t, lo, hi);
    if (step == STEP_LT || step == STEP_GT)
        for (size_t j = lo; j < hi; j++)
            acc[j] |= e[j] & ~t[j];
    *eq = t;
    *tmp = e;
}

/* The state of one comparison with w over the bit slices (a range, or one bound of a bin). */
typedef struct zd_range {
    const zd_bsi *b;
    zd_cmp op;
    uint64_t w;
    int t;          /* zd_bit_length(w) */
    int lmin, lmax; /* the magnitude classes that can hold members of ex */
    int top;        /* the slices above hold w's bit for every member of ex: no step needed */
    bool want_lt, want_gt;
    int32_t scur[ZD_BSI_BITS], mcur[ZD_BSI_BITS + 1];
    /* Word buffers, shared by the states of one evaluation; only words inside the current
     * chunk's span are ever written or read. ex is the input. */
    uint64_t *ex, *eq, *acc, *tmp, *alt;
} zd_range;

/* What range_init() found: compare member by member, or v lies outside what the slices can
 * hold and every member compares the same way. */
enum { RANGE_SLICES, RANGE_ALL, RANGE_NONE };

/* Sets r up to compare with v by op, for members whose values lie in [min, max] (each end open
 * without has_min / has_max; v inside). Word buffers and cursors are left to the caller. */
static int range_init(zd_range *r, const zd_bsi *b, zd_cmp op, int64_t v, bool has_min, int64_t min,
                      bool has_max, int64_t max)
{
    bool want_lt = op == ZD_CMP_LT || op == ZD_CMP_LE;
    bool want_gt = op == ZD_CMP_GT || op == ZD_CMP_GE;
    uint64_t bv = zd_biased(v);
    bool all_greater = bv < b->bbase;
    uint64_t w = bv - b->bbase;
    bool all_less = !all_greater && b->depth < ZD_BSI_BITS && (w >> b->depth) != 0;
    if (all_greater || all_less)
        return (all_greater ? want_gt : want_lt) ? RANGE_ALL : RANGE_NONE;
    r->b = b;
    r->op = op;
    r->w = w;
    r->t = zd_bit_length(w);
    r->want_lt = want_lt;
    r->want_gt = want_gt;
    r->lmin = 0;
    r->lmax = b->depth; /* no offset is longer */
    r->top = ZD_BSI_BITS - 1;
    uint64_t ulo = has_min && zd_biased(min) > b->bbase ? zd_biased(min) - b->bbase : 0;
    if (has_max) {
        /* The members' offsets, and w among them, share every bit above the highest one in
         * which the two ends differ; a narrow bin (a month of dates) leaves only its low
         * slices. max >= v is not below the base. */
        uint64_t uhi = zd_biased(max) - b->bbase;
        r->top = zd_bit_length(ulo ^ uhi) - 1;
        int l = zd_bit_length(uhi);
        r->lmax = l < r->lmax ? l : r->lmax;
    }
    /* Classes wholly outside [min, max] hold none of the members: skip them. */
    r->lmin = has_min ? zd_bit_length(ulo) : 0;
    r->lmin = r->lmin < r->lmax ? r->lmin : r->lmax;
    return RANGE_SLICES;
}

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
    zd_chunk ch = zd_chunk_at(s->bm, k, cursor);
    if (!s->keep) {
        zd_chunk_merge(ch, true, dst, scratch, lo, hi);
        return;
    }
    const uint64_t *w = zd_chunk_words(ch, scratch, lo, hi);
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
        mags[l] = zd_chunk_at(r->b->mags[l], k, &r->mcur[l]);
        bool side = r->want_lt ? l < r->t : l > r->t;
        *(side ? &cost_side : &cost_rest) += zd_chunk_cost(mags[l], lo, hi);
    }
    if (cost_side <= cost_rest) {
        memset(r->acc + lo, 0, (hi - lo) * sizeof(uint64_t));
        for (int l = from; l <= top; l++)
            if (r->want_lt ? l < r->t : l > r->t)
                zd_chunk_merge(mags[l], false, r->acc, r->tmp, lo, hi);
        if (within)
            for (size_t j = lo; j < hi; j++)
                r->acc[j] &= r->ex[j];
    } else {
        memcpy(r->acc + lo, r->ex + lo, (hi - lo) * sizeof(uint64_t));
        for (int l = from; l <= top; l++)
            if (!(r->want_lt ? l < r->t : l > r->t))
                zd_chunk_merge(mags[l], true, r->acc, r->tmp, lo, hi);
    }
}

/* Member by member: the slices of chunk k that bin_keeps() reads. */
typedef struct zd_memberwise {
    zd_chunk sl[ZD_BSI_BITS];
    const uint64_t *bits[ZD_BSI_BITS]; /* a bitset slice's words, read directly */
    int depth;
    uint64_t wge, wlt, weq;
    bool ge, lt, eq;
} zd_memberwise;

/* Prepares reading offsets back from the slices of chunk k, for the comparisons of a bin (ge:
 * value >= ge->w, lt: value < lt->w, eq: value == eq->w; each may be NULL, not all). The states
 * share the bin, so their top is the same. */
static void memberwise_init(zd_memberwise *mw, zd_range *ge, zd_range *lt, zd_range *eq, uint16_t k)
{
    zd_range *r = ge ? ge : lt ? lt : eq;
    mw->depth = r->top + 1 < r->b->depth ? r->top + 1 : r->b->depth;
    uint64_t mask = mw->depth < 64 ? ((uint64_t)1 << mw->depth) - 1 : ~(uint64_t)0;
    mw->ge = ge != NULL;
    mw->lt = lt != NULL;
    mw->eq = eq != NULL;
    mw->wge = ge ? ge->w & mask : 0;
    mw->wlt = lt ? lt->w & mask : 0;
    mw->weq = eq ? eq->w & mask : 0;
    for (int i = 0; i < mw->depth; i++) {
        mw->sl[i] = zd_chunk_at(r->b->slices[i], k, &r->scur[i]);
        mw->bits[i] = mw->sl[i].c && mw->sl[i].type == BITSET_CONTAINER_TYPE_CODE
                          ? ((const bitset_container_t *)mw->sl[i].c)->array
                          : NULL;
    }
}

/* Whether the member at low passes the comparisons: its offset is read back from the slices. */
static bool memberwise_keeps(const zd_memberwise *mw, uint16_t low)
{
    uint64_t u = 0;
    for (int i = 0; i < mw->depth; i++) {
        uint64_t bit = mw->bits[i] ? (mw->bits[i][low >> 6] >> (low & 63)) & 1
                                   : (uint64_t)zd_chunk_has(mw->sl[i], low);
        u |= bit << i;
    }
    return (!mw->ge || u >= mw->wge) && (!mw->lt || u < mw->wlt) && (!mw->eq || u == mw->weq);
}

/* A bin with few members in chunk k (words bin): the members it keeps are added to out. Cheaper
 * than slice-wide word passes when the bin is a thin band of the values. */
static void bin_by_member(zd_range *ge, zd_range *lt, zd_range *eq, uint16_t k, const uint64_t *bin,
                          uint64_t *out, size_t lo, size_t hi)
{
    zd_memberwise mw;
    memberwise_init(&mw, ge, lt, eq, k);
    for (size_t j = lo; j < hi; j++)
        for (uint64_t x = bin[j]; x; x &= x - 1) {
            uint16_t low = (uint16_t)(j * 64 + (size_t)__builtin_ctzll(x));
            out[j] |= (uint64_t)memberwise_keeps(&mw, low) << (low & 63);
        }
}

/* Evaluates chunk k over words [lo, hi) of r->ex; returns the result words. */
static uint64_t *range_chunk(zd_range *r, uint16_t k, size_t lo, size_t hi, bool within)
{
    const zd_bsi *b = r->b;
    uint64_t *eq = r->eq, *alt = r->alt, *acc = r->acc;
    memcpy(eq + lo, r->ex + lo, (hi - lo) * sizeof(uint64_t));
    const uint64_t *own =
        zd_chunk_words(zd_chunk_at(b->mags[r->t], k, &r->mcur[r->t]), r->tmp, lo, hi);
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
        zd_chunk sch = zd_chunk_at(b->slices[i], k, &r->scur[i]);
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
        if (!slice_step(step, eq, acc, zd_chunk_words(sch, r->tmp, lo, hi), lo, hi))
            break;
    }
    if (!r->want_lt && !r->want_gt)
        return eq;
    if (r->op == ZD_CMP_LE || r->op == ZD_CMP_GE)
        for (size_t j = lo; j < hi; j++)
            acc[j] |= eq[j];
    return acc;
}

/* Word buffers of one evaluation: 56 KiB, too big for every caller's stack; kept per thread
 * (zd_chunk_buffers). */
enum { BUF_BASE, BUF_EX, BUF_EQ, BUF_ACC, BUF_TMP, BUF_ALT, BUF_RES, BUF_N };

static void range_buffers(zd_range *r, uint64_t *words)
{
    r->ex = words + BUF_EX * ZD_WORDS;
    r->eq = words + BUF_EQ * ZD_WORDS;
    r->acc = words + BUF_ACC * ZD_WORDS;
    r->tmp = words + BUF_TMP * ZD_WORDS;
    r->alt = words + BUF_ALT * ZD_WORDS;
}

/* The span [*lo, *hi) of exists' chunk e restricted to within, and its words (exists AND
 * within) in base. False when the chunk has nothing to evaluate. */
static bool chunk_base(const roaring_array_t *ex, int32_t e, const roaring_bitmap_t *within,
                       int32_t *wcur, uint64_t *base, uint64_t *tmp, size_t *lo, size_t *hi)
{
    uint16_t k = ex->keys[e];
    zd_chunk ech = {NULL, ex->typecodes[e]};
    ech.c = container_unwrap_shared(ex->containers[e], &ech.type);
    zd_chunk_span(ech, lo, hi);
    zd_chunk wch = {NULL, 0};
    if (within) {
        wch = zd_chunk_at(within, k, wcur);
        if (!wch.c)
            return false;
        size_t wlo, whi;
        zd_chunk_span(wch, &wlo, &whi);
        *lo = wlo > *lo ? wlo : *lo;
        *hi = whi < *hi ? whi : *hi;
    }
    if (*lo >= *hi)
        return false;
    const uint64_t *ew = zd_chunk_words(ech, tmp, *lo, *hi);
    memcpy(base + *lo, ew + *lo, (*hi - *lo) * sizeof(uint64_t));
    if (within) {
        const uint64_t *ww = zd_chunk_words(wch, tmp, *lo, *hi);
        for (size_t j = *lo; j < *hi; j++)
            base[j] &= ww[j];
    }
    return true;
}

roaring_bitmap_t *zd_bsi_range(const zd_bsi *b, const roaring_bitmap_t *exists, zd_cmp op,
                               int64_t v, const roaring_bitmap_t *within)
{
    zd_range rs = {0}, *r = &rs;
    int kind = range_init(r, b, op, v, false, 0, false, 0);
    if (kind != RANGE_SLICES) {
        if (kind == RANGE_NONE)
            return roaring_bitmap_create();
        return within ? roaring_bitmap_and(exists, within) : roaring_bitmap_copy(exists);
    }
    uint64_t *words = zd_chunk_buffers(ZD_BUFFERS_RANGE, BUF_N * ZD_WORDS);
    roaring_bitmap_t *out = roaring_bitmap_create();
    if (!words || !out)
        goto fail;
    range_buffers(r, words);
    int32_t wcur = 0;
    const roaring_array_t *ex = &exists->high_low_container;
    for (int32_t e = 0; e < ex->size; e++) {
        size_t lo, hi;
        if (!chunk_base(ex, e, within, &wcur, r->ex, r->tmp, &lo, &hi))
            continue;
        const uint64_t *res = range_chunk(r, ex->keys[e], lo, hi, within != NULL);
        if (zd_chunk_append(out, ex->keys[e], res, lo, hi) < 0)
            goto fail;
    }
    return out;
fail:
    zd_bm_free(out);
    return NULL;
}

/* A bin of a cut, set up for one evaluation: its comparisons, or dead when they keep nobody. */
typedef struct zd_binstate {
    bool dead;
    zd_range *ge, *lt, *eq; /* NULL: no such comparison (or every member passes it) */
    zd_range st[2];
    int32_t cur[2];
} zd_binstate;

static void bin_setup(zd_binstate *bs, const zd_bsi *b, const zd_cutbin *bin, uint64_t *words)
{
    memset(bs, 0, sizeof(*bs));
    /* A bin of one value is one equality test, not two passes. */
    bool one = bin->has_ge && bin->has_lt && bin->ge < INT64_MAX && bin->lt == bin->ge + 1;
    struct {
        bool has;
        zd_cmp op;
        int64_t v;
        zd_range **slot;
    } checks[2] = {
        {bin->has_ge, one ? ZD_CMP_EQ : ZD_CMP_GE, bin->ge, one ? &bs->eq : &bs->ge},
        {bin->has_lt && !one, ZD_CMP_LT, bin->lt, &bs->lt},
    };
    for (int c = 0; c < 2; c++) {
        if (!checks[c].has)
            continue;
        zd_range *r = &bs->st[c];
        int kind = range_init(r, b, checks[c].op, checks[c].v, bin->has_min, bin->min, bin->has_max,
                              bin->max);
        if (kind == RANGE_NONE)
            bs->dead = true;
        if (kind != RANGE_SLICES)
            continue;
        range_buffers(r, words);
        *checks[c].slot = r;
    }
}

/* Adds to res the members of bin bs (words bx) that its comparisons keep. */
static void bin_chunk(zd_binstate *bs, uint16_t k, uint64_t *bx, uint64_t *res, size_t lo,
                      size_t hi)
{
    size_t busy = 0;
    for (size_t j = lo; j < hi; j++)
        busy += bx[j] != 0;
    if (busy == 0)
        return;
    if (!bs->ge && !bs->lt && !bs->eq) {
        for (size_t j = lo; j < hi; j++)
            res[j] |= bx[j];
        return;
    }
    /* Member by member reads up to top + 1 slices per member, each a binary search in an array
     * slice: only for a narrow bin, which a word pass would not make cheaper. */
    const zd_range *r = bs->ge ? bs->ge : bs->lt ? bs->lt : bs->eq;
    if (busy <= ZD_WORDS / 16 && r->top < 16) {
        bin_by_member(bs->ge, bs->lt, bs->eq, k, bx, res, lo, hi);
        return;
    }
    /* Word passes: each comparison reads ex (bx, then the previous result). */
    zd_range *passes[3] = {bs->eq, bs->ge, bs->lt};
    const uint64_t *w = bx;
    for (int p = 0; p < 3; p++) {
        if (!passes[p])
            continue;
        if (w != bx)
            memcpy(bx + lo, w + lo, (hi - lo) * sizeof(uint64_t));
        w = range_chunk(passes[p], k, lo, hi, true);
    }
    for (size_t j = lo; j < hi; j++)
        res[j] |= w[j];
}

/* Adds to res the members of the array bin a (a month's) that bs keeps, those in mask only
 * when mask is not NULL: value by value, without a pass over the chunk's words. */
static void bin_array(zd_binstate *bs, uint16_t k, const array_container_t *a, const uint64_t *mask,
                      uint64_t *res, size_t lo, size_t hi)
{
    int32_t i0, i1;
    zd_array_span(a, lo, hi, &i0, &i1);
    bool all = !bs->ge && !bs->lt && !bs->eq;
    zd_memberwise mw;
    if (!all)
        memberwise_init(&mw, bs->ge, bs->lt, bs->eq, k);
    for (int32_t i = i0; i < i1; i++) {
        uint16_t x = a->array[i];
        if (mask && !((mask[x >> 6] >> (x & 63)) & 1))
            continue;
        if (all || memberwise_keeps(&mw, x))
            res[x >> 6] |= (uint64_t)1 << (x & 63);
    }
}

/* The words of one chunk of a cut evaluation: ex (exists AND within) is made only when a set
 * needs it; the stored sides, months and month bins hold members only. */
typedef struct zd_cutchunk {
    const roaring_array_t *ra; /* exists */
    int32_t e;                 /* its container */
    const roaring_bitmap_t *within;
    int32_t *wcur;
    uint64_t *base, *tmp;
    bool have_base;
    size_t lo, hi;
} zd_cutchunk;

static const uint64_t *cc_base(zd_cutchunk *cc)
{
    if (!cc->have_base) {
        size_t lo, hi;
        chunk_base(cc->ra, cc->e, cc->within, cc->wcur, cc->base, cc->tmp, &lo, &hi);
        cc->have_base = true;
    }
    return cc->base;
}

/* res[lo, hi) = the members of the chunk in both core sets. Starting from a stored side that is
 * kept copies only that side; ex is needed when neither is, or to apply within. */
static void core_chunk(zd_cutchunk *cc, const zd_thrcut *cut, int32_t ccur[2], uint16_t k,
                       uint64_t *res)
{
    size_t lo = cc->lo, hi = cc->hi;
    int first = cut->core[0].bm && cut->core[0].keep   ? 0
                : cut->core[1].bm && cut->core[1].keep ? 1
                                                       : -1;
    if (first < 0) {
        memcpy(res + lo, cc_base(cc) + lo, (hi - lo) * sizeof(uint64_t));
    } else {
        const uint64_t *w =
            zd_chunk_words(zd_chunk_at(cut->core[first].bm, k, &ccur[first]), cc->tmp, lo, hi);
        if (w)
            memcpy(res + lo, w + lo, (hi - lo) * sizeof(uint64_t));
        else
            memset(res + lo, 0, (hi - lo) * sizeof(uint64_t));
        if (cc->within) {
            const uint64_t *b = cc_base(cc);
            for (size_t j = lo; j < hi; j++)
                res[j] &= b[j];
        }
    }
    for (int c = 0; c < 2; c++)
        if (c != first)
            thrset_apply(&cut->core[c], &ccur[c], k, res, cc->tmp, lo, hi);
}

roaring_bitmap_t *zd_cut_range(const zd_bsi *b, const roaring_bitmap_t *exists,
                               const roaring_bitmap_t *within, const zd_thrcut *cut)
{
    uint64_t *words = zd_chunk_buffers(ZD_BUFFERS_RANGE, BUF_N * ZD_WORDS);
    roaring_bitmap_t *out = roaring_bitmap_create();
    if (!words || !out)
        goto fail;
    uint64_t *bx = words + BUF_EX * ZD_WORDS, *res = words + BUF_RES * ZD_WORDS;
    zd_binstate bins[2];
    for (int i = 0; i < cut->nbins; i++)
        bin_setup(&bins[i], b, &cut->bins[i], words);
    bool core = !cut->core[0].none && !cut->core[1].none;
    int32_t wcur = 0, ccur[2] = {0, 0}, mcur[ZD_CUT_MONTHS] = {0};
    zd_cutchunk cc = {.ra = &exists->high_low_container,
                      .within = within,
                      .wcur = &wcur,
                      .base = words + BUF_BASE * ZD_WORDS,
                      .tmp = words + BUF_TMP * ZD_WORDS};
    for (cc.e = 0; cc.e < cc.ra->size; cc.e++) {
        uint16_t k = cc.ra->keys[cc.e];
        zd_chunk ech = {NULL, cc.ra->typecodes[cc.e]};
        ech.c = container_unwrap_shared(cc.ra->containers[cc.e], &ech.type);
        zd_chunk_span(ech, &cc.lo, &cc.hi);
        cc.have_base = false;
        if (within) {
            /* The span shrinks to within's, and ex is needed to apply it anyway. */
            if (!chunk_base(cc.ra, cc.e, within, &wcur, cc.base, cc.tmp, &cc.lo, &cc.hi))
                continue;
            cc.have_base = true;
        }
        size_t lo = cc.lo, hi = cc.hi;
        if (lo >= hi)
            continue;
        if (core)
            core_chunk(&cc, cut, ccur, k, res);
        else
            memset(res + lo, 0, (hi - lo) * sizeof(uint64_t));
        for (int m = 0; m < cut->nmonths; m++)
            zd_chunk_or_masked(zd_chunk_at(cut->months[m], k, &mcur[m]), within ? cc.base : NULL,
                               res, cc.tmp, lo, hi);
        for (int i = 0; i < cut->nbins; i++) {
            const zd_cutbin *cb = &cut->bins[i];
            if (bins[i].dead)
                continue;
            /* A month bin (a kept stored set alone) goes value by value while it is sparse. */
            if (cb->in[0].bm && cb->in[0].keep && !cb->in[1].bm && !cb->in[1].none) {
                zd_chunk ch = zd_chunk_at(cb->in[0].bm, k, &bins[i].cur[0]);
                if (!ch.c)
                    continue;
                if (ch.type == ARRAY_CONTAINER_TYPE_CODE) {
                    bin_array(&bins[i], k, ch.c, within ? cc.base : NULL, res, lo, hi);
                    continue;
                }
            }
            memcpy(bx + lo, cc_base(&cc) + lo, (hi - lo) * sizeof(uint64_t));
            for (int c = 0; c < 2; c++)
                thrset_apply(&cb->in[c], &bins[i].cur[c], k, bx, cc.tmp, lo, hi);
            bin_chunk(&bins[i], k, bx, res, lo, hi);
        }
        if (zd_chunk_append(out, k, res, lo, hi) < 0)
            goto fail;
    }
    return out;
fail:
    zd_bm_free(out);
    return NULL;
}
