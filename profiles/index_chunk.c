/* Chunk access of index_chunk.h: CRoaring containers as plain words and back. */
#include "profiles/index_chunk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <roaring/array_util.h>

/* Most inputs of a union merged pairwise (more go through the bits). */
#define ZD_UNION_MAX 16

/* The words [*lo, *hi) outside of which the chunk has no bits. */
void zd_chunk_span(zd_chunk ch, size_t *lo, size_t *hi)
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
size_t zd_chunk_cost(zd_chunk ch, size_t lo, size_t hi)
{
    if (!ch.c)
        return 0;
    if (ch.type == ARRAY_CONTAINER_TYPE_CODE)
        return 2 * (size_t)((const array_container_t *)ch.c)->cardinality;
    if (ch.type == RUN_CONTAINER_TYPE_CODE)
        return (hi - lo) + 4 * (size_t)((const run_container_t *)ch.c)->n_runs;
    return hi - lo;
}

/* Applies the values of array s to words [lo, hi): out[w] = old[w] & m, & ~m or | m, where m
 * is the mask of s in word w; words of out that s does not touch are left alone. The values of
 * one word are gathered into a register mask and each value stores the mask so far: every
 * store overwrites, so no value waits on the previous one's store to the same word (old and
 * out must differ), and there is no data-dependent branch. */

void zd_array_apply(const array_container_t *s, int mode, const uint64_t *restrict old,
                    uint64_t *restrict out, size_t lo, size_t hi)
{
    int32_t i0, i1;
    zd_array_span(s, lo, hi, &i0, &i1);
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
    case ZD_ARR_AND:
        ZD_ARRAY_LOOP(old[w] & m)
        break;
    case ZD_ARR_ANDNOT:
        ZD_ARRAY_LOOP(old[w] & ~m)
        break;
    case ZD_ARR_OR:
        ZD_ARRAY_LOOP(old[w] | m)
        break;
    }
#undef ZD_ARRAY_LOOP
}

/* Words [lo, hi) of the chunk: a bitset's own array, anything else expanded into scratch.
 * NULL when the chunk is empty. */
const uint64_t *zd_chunk_words(zd_chunk ch, uint64_t *scratch, size_t lo, size_t hi)
{
    if (!ch.c)
        return NULL;
    if (ch.type == BITSET_CONTAINER_TYPE_CODE)
        return ((const bitset_container_t *)ch.c)->array;
    memset(scratch + lo, 0, (hi - lo) * sizeof(uint64_t));
    if (ch.type == ARRAY_CONTAINER_TYPE_CODE) {
        const array_container_t *a = ch.c;
        int32_t i0, i1;
        zd_array_span(a, lo, hi, &i0, &i1);
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
void zd_chunk_merge(zd_chunk ch, bool clear, uint64_t *dst, uint64_t *scratch, size_t lo, size_t hi)
{
    if (!ch.c)
        return;
    if (ch.type == ARRAY_CONTAINER_TYPE_CODE) {
        /* Value by value, in place: measured faster than gathering a word's mask in a register
         * or applying the values to a copy, sparse or dense (the CPU forwards the store of a
         * word to the next value's load of it). */
        const array_container_t *a = ch.c;
        int32_t i0, i1;
        zd_array_span(a, lo, hi, &i0, &i1);
        if (clear)
            for (int32_t i = i0; i < i1; i++)
                dst[a->array[i] >> 6] &= ~((uint64_t)1 << (a->array[i] & 63));
        else
            for (int32_t i = i0; i < i1; i++)
                dst[a->array[i] >> 6] |= (uint64_t)1 << (a->array[i] & 63);
        return;
    }
    const uint64_t *w = zd_chunk_words(ch, scratch, lo, hi);
    if (clear)
        for (size_t j = lo; j < hi; j++)
            dst[j] &= ~w[j];
    else
        for (size_t j = lo; j < hi; j++)
            dst[j] |= w[j];
}

static uint64_t popcount_sw(const uint64_t *w, size_t n)
{
    uint64_t c = 0;
    for (size_t j = 0; j < n; j++) {
        uint64_t x = w[j];
        x -= (x >> 1) & 0x5555555555555555ull;
        x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
        x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
        c += (x * 0x0101010101010101ull) >> 56;
    }
    return c;
}

__attribute__((target("popcnt"))) static uint64_t popcount_hw(const uint64_t *w, size_t n)
{
    uint64_t c = 0;
    for (size_t j = 0; j < n; j++)
        c += (uint64_t)__builtin_popcountll(w[j]);
    return c;
}

/* The number of set bits in w[0, n). Debian builds for baseline x86-64 (no POPCNT), where
 * __builtin_popcountll is a library call; the instruction is used when the CPU has it. */
uint64_t zd_popcount_words(const uint64_t *w, size_t n)
{
    static int hw = -1;
    if (hw < 0)
        hw = __builtin_cpu_supports("popcnt") ? 1 : 0;
    return hw ? popcount_hw(w, n) : popcount_sw(w, n);
}

/* Appends words [lo, hi) of res as the container of key k, as CRoaring would store it: an
 * array up to 4096 values, a bitset above. */
/* Extracts the set bits of words [lo, hi) into vals, one word at a time, until more than
 * DEFAULT_MAX_SIZE are found. Returns how many (more than DEFAULT_MAX_SIZE: not all). */
static inline __attribute__((always_inline)) int32_t extract_body(const uint64_t *res, size_t lo,
                                                                  size_t hi, uint16_t *vals)
{
    int32_t n = 0;
    for (size_t j = lo; j < hi && n <= DEFAULT_MAX_SIZE; j++)
        for (uint64_t x = res[j]; x; x &= x - 1)
            vals[n++] = (uint16_t)(j * 64 + (size_t)__builtin_ctzll(x));
    return n;
}

static int32_t extract_base(const uint64_t *res, size_t lo, size_t hi, uint16_t *vals)
{
    return extract_body(res, lo, hi, vals);
}

/* The same loop with TZCNT and BLSR: about a third faster, measured. */
__attribute__((target("popcnt,bmi"))) static int32_t extract_bmi(const uint64_t *res, size_t lo,
                                                                 size_t hi, uint16_t *vals)
{
    return extract_body(res, lo, hi, vals);
}

static int32_t extract_bits(const uint64_t *res, size_t lo, size_t hi, uint16_t *vals)
{
    static int bmi = -1;
    if (bmi < 0)
        bmi = __builtin_cpu_supports("bmi") ? 1 : 0;
    return bmi ? extract_bmi(res, lo, hi, vals) : extract_base(res, lo, hi, vals);
}

static int append_array(roaring_bitmap_t *out, uint16_t k, const uint16_t *vals, int32_t n)
{
    array_container_t *ac = array_container_create_given_capacity(n);
    if (!ac)
        return -ENOMEM;
    memcpy(ac->array, vals, (size_t)n * sizeof(uint16_t));
    ac->cardinality = n;
    ra_append(&out->high_low_container, k, ac, ARRAY_CONTAINER_TYPE_CODE);
    return 0;
}

int zd_chunk_append(roaring_bitmap_t *out, uint16_t k, const uint64_t *res, size_t lo, size_t hi)
{
    /* While the chunk may be an array one pass both counts and extracts; a chunk that is
     * clearly a bitset (every 16th word tells) is only counted. The index is used from one
     * thread at a time, but a thread-local buffer costs nothing and keeps that a non-issue. */
    static _Thread_local uint16_t vals[DEFAULT_MAX_SIZE + 64];
    uint64_t sample = 0;
    for (size_t j = lo; j < hi; j += 16)
        sample += (uint64_t)__builtin_popcountll(res[j]);
    if (sample * 16 <= DEFAULT_MAX_SIZE + DEFAULT_MAX_SIZE / 8) {
        int32_t n = extract_bits(res, lo, hi, vals);
        if (n == 0)
            return 0;
        if (n <= DEFAULT_MAX_SIZE)
            return append_array(out, k, vals, n);
    }
    uint64_t card = zd_popcount_words(res + lo, hi - lo);
    if (card == 0)
        return 0;
    if (card <= DEFAULT_MAX_SIZE)
        return append_array(out, k, vals, extract_bits(res, lo, hi, vals));
    bitset_container_t *bc = bitset_container_create();
    if (!bc)
        return -ENOMEM;
    memcpy(bc->array + lo, res + lo, (hi - lo) * sizeof(uint64_t));
    bc->cardinality = (int32_t)card;
    ra_append(&out->high_low_container, k, bc, BITSET_CONTAINER_TYPE_CODE);
    return 0;
}

/* dst[lo, hi) |= the words of chunk ch, restricted to mask when mask is not NULL. */
void zd_chunk_or_masked(zd_chunk ch, const uint64_t *mask, uint64_t *dst, uint64_t *scratch,
                        size_t lo, size_t hi)
{
    if (!ch.c)
        return;
    if (!mask) {
        zd_chunk_merge(ch, false, dst, scratch, lo, hi);
        return;
    }
    if (ch.type == ARRAY_CONTAINER_TYPE_CODE) {
        const array_container_t *a = ch.c;
        int32_t i0, i1;
        zd_array_span(a, lo, hi, &i0, &i1);
        for (int32_t i = i0; i < i1; i++) {
            uint16_t x = a->array[i];
            dst[x >> 6] |= mask[x >> 6] & (uint64_t)1 << (x & 63);
        }
        return;
    }
    const uint64_t *w = zd_chunk_words(ch, scratch, lo, hi);
    for (size_t j = lo; j < hi; j++)
        dst[j] |= w[j] & mask[j];
}

uint64_t *zd_chunk_buffers(int slot, size_t nwords)
{
    static _Thread_local uint64_t *bufs[ZD_BUFFER_SLOTS];
    static _Thread_local size_t sizes[ZD_BUFFER_SLOTS];
    if (sizes[slot] < nwords) {
        uint64_t *b = realloc(bufs[slot], nwords * sizeof(uint64_t));
        if (!b)
            return NULL;
        bufs[slot] = b;
        sizes[slot] = nwords;
    }
    return bufs[slot];
}

/* The union of m array containers by pairwise merges, when that beats setting their values
 * as bits and extracting them again: a merge level costs about 0.9 ns per value, the bits
 * about 1.4 ns per value plus a pass over the chunk's 1024 words (measured). Appends the
 * result and returns 1, or returns 0 (not worth it, or not all arrays) or -ENOMEM. buf holds
 * 2 x 4096 values. */
static int merge_arrays(roaring_bitmap_t *out, uint16_t k, const zd_chunk *chs, int m,
                        uint64_t *buf)
{
    size_t total = 0;
    int levels = 0;
    for (int i = 0; i < m; i++) {
        if (m > ZD_UNION_MAX || chs[i].type != ARRAY_CONTAINER_TYPE_CODE)
            return 0;
        total += (size_t)((const array_container_t *)chs[i].c)->cardinality;
    }
    for (int w = 1; w < m; w *= 2)
        levels++;
    if (total > DEFAULT_MAX_SIZE || 9 * total * (size_t)levels > 12000 + 14 * total)
        return 0;
    /* Each level merges neighbours into the other half of buf; an odd one out is copied. */
    const uint16_t *src[ZD_UNION_MAX];
    size_t len[ZD_UNION_MAX];
    for (int i = 0; i < m; i++) {
        src[i] = ((const array_container_t *)chs[i].c)->array;
        len[i] = (size_t)((const array_container_t *)chs[i].c)->cardinality;
    }
    uint16_t *half[2] = {(uint16_t *)buf, (uint16_t *)buf + DEFAULT_MAX_SIZE};
    for (int h = 0; m > 1; h ^= 1) {
        uint16_t *dst = half[h];
        int n = 0;
        for (int i = 0; i < m; i += 2) {
            size_t l = i + 1 < m ? union_uint16(src[i], len[i], src[i + 1], len[i + 1], dst)
                                 : (memcpy(dst, src[i], len[i] * sizeof(uint16_t)), len[i]);
            src[n] = dst;
            len[n++] = l;
            dst += l;
        }
        m = n;
    }
    array_container_t *ac = array_container_create_given_capacity((int32_t)len[0]);
    if (!ac)
        return -ENOMEM;
    memcpy(ac->array, src[0], len[0] * sizeof(uint16_t));
    ac->cardinality = (int32_t)len[0];
    ra_append(&out->high_low_container, k, ac, ARRAY_CONTAINER_TYPE_CODE);
    return 1;
}

/* Union, one key at a time: a container only one input has is cloned; otherwise the inputs are
 * ORed into words over their joint span and appended as CRoaring would store the result.
 * Debian's CRoaring (no POPCNT) pays a software popcount over a whole bitset for every lazy
 * union it repairs, even when the result is a small array. */
roaring_bitmap_t *zd_chunk_union(const roaring_bitmap_t *const *bms, int n)
{
    roaring_bitmap_t *out = roaring_bitmap_create();
    int32_t *cur = calloc(n > 0 ? (size_t)n : 1, sizeof(*cur));
    zd_chunk *chs = calloc(n > 0 ? (size_t)n : 1, sizeof(*chs));
    uint64_t *words = zd_chunk_buffers(ZD_BUFFERS_UNION, 2 * ZD_WORDS);
    if (!out || !cur || !chs || !words)
        goto fail;
    uint64_t *scratch = words + ZD_WORDS;
    for (;;) {
        /* The smallest key any input has left. */
        int32_t k = -1;
        for (int i = 0; i < n; i++) {
            const roaring_array_t *ra = bms[i] ? &bms[i]->high_low_container : NULL;
            if (ra && cur[i] < ra->size && (k < 0 || ra->keys[cur[i]] < k))
                k = ra->keys[cur[i]];
        }
        if (k < 0)
            break;
        int m = 0;
        size_t lo = ZD_WORDS, hi = 0;
        for (int i = 0; i < n; i++) {
            zd_chunk ch = zd_chunk_at(bms[i], (uint16_t)k, &cur[i]);
            if (!ch.c)
                continue;
            cur[i]++;
            size_t l, h;
            zd_chunk_span(ch, &l, &h);
            lo = l < lo ? l : lo;
            hi = h > hi ? h : hi;
            chs[m++] = ch;
        }
        if (m == 1) {
            void *c = container_clone(chs[0].c, chs[0].type);
            if (!c)
                goto fail;
            ra_append(&out->high_low_container, (uint16_t)k, c, chs[0].type);
            continue;
        }
        if (lo >= hi)
            continue;
        int rc = merge_arrays(out, (uint16_t)k, chs, m, words);
        if (rc < 0)
            goto fail;
        if (rc > 0)
            continue;
        memset(words + lo, 0, (hi - lo) * sizeof(uint64_t));
        for (int i = 0; i < m; i++)
            zd_chunk_merge(chs[i], false, words, scratch, lo, hi);
        if (zd_chunk_append(out, (uint16_t)k, words, lo, hi) < 0)
            goto fail;
    }
    free(cur);
    free(chs);
    return out;
fail:
    free(cur);
    free(chs);
    if (out)
        roaring_bitmap_free(out);
    return NULL;
}
