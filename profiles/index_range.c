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
 * (they stay in L1): bitset containers are read in place, array containers value by value.
 * The result chunk is appended to the output as a container. This reads CRoaring's container
 * structs directly (public headers of 0.2.x, but internals): revisit when CRoaring is
 * upgraded. */
#include "profiles/index_range.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <roaring/containers/containers.h>

#include "profiles/index_bitmap.h"

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
    int t;          /* zd_bit_length(w) */
    int lmin, lmax; /* the magnitude classes that can hold members of ex */
    int top;        /* the slices above hold w's bit for every member of ex: no step needed */
    bool want_lt, want_gt;
    int32_t wcur, scur[ZD_BSI_BITS], mcur[ZD_BSI_BITS + 1];
    /* Word buffers; only words inside the current chunk's span are ever written or read. */
    uint64_t *ex, *eq, *acc, *tmp, *alt, *set;
} zd_range;

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
roaring_bitmap_t *zd_bsi_range(const zd_bsi *b, const roaring_bitmap_t *exists, zd_cmp op,
                               int64_t v, const roaring_bitmap_t *within, zd_thrcut *cut)
{
    bool want_lt = op == ZD_CMP_LT || op == ZD_CMP_LE;
    bool want_gt = op == ZD_CMP_GT || op == ZD_CMP_GE;

    /* Values outside what the slices can hold compare the same way with every member (so the
     * answer is the same with a cut or without). */
    uint64_t bv = zd_biased(v);
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
    r->t = zd_bit_length(w);
    r->want_lt = want_lt;
    r->want_gt = want_gt;
    r->lmin = 0;
    r->lmax = b->depth; /* no offset is longer */
    r->top = ZD_BSI_BITS - 1;
    if (cut && cut->has_hi) {
        /* The bin's offsets, and w among them, share every bit above the highest one in which
         * its two ends differ; a narrow bin (a year of dates) leaves only its low slices. */
        uint64_t ulo =
            cut->has_lo && zd_biased(cut->lo_v) > b->bbase ? zd_biased(cut->lo_v) - b->bbase : 0;
        uint64_t uhi = zd_biased(cut->hi_v) - b->bbase; /* w, in the bin, is not below the base */
        r->top = zd_bit_length(ulo ^ uhi) - 1;
    }
    if (cut) {
        /* Classes wholly outside the bin hold none of its members: skip them. */
        if (cut->has_lo && zd_biased(cut->lo_v) > b->bbase)
            r->lmin = zd_bit_length(zd_biased(cut->lo_v) - b->bbase);
        if (cut->has_hi) {
            int l = zd_biased(cut->hi_v) > b->bbase ? zd_bit_length(zd_biased(cut->hi_v) - b->bbase)
                                                    : 0;
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
    zd_bm_free(out);
    return NULL;
}
