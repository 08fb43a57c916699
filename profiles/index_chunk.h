/* CRoaring containers read and written as plain 64-bit words, one 65536-gid chunk at a time:
 * the substrate of the index's chunk-wise evaluations (ranges, unions). Internal to the index
 * (profiles/index*.c).
 *
 * This reads CRoaring's container structs directly (public headers of 0.2.x, but internals):
 * revisit when CRoaring is upgraded. Buffers of ZD_WORDS words are the callers'; only the words
 * inside the current chunk's span [lo, hi) are ever read or written. */
#ifndef ZD_INDEX_CHUNK_H
#define ZD_INDEX_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <roaring/containers/containers.h>
#include <roaring/roaring.h>

#define ZD_WORDS 1024 /* 64-bit words of one 65536-bit chunk */

typedef struct zd_chunk {
    const void *c; /* NULL: the bitmap has nothing in this chunk */
    uint8_t type;
} zd_chunk;

/* The container of key k in bm (may be NULL), or {NULL}. *cursor only moves forward, which
 * keeps the search linear over the ascending chunks of one evaluation. */
static inline zd_chunk zd_chunk_at(const roaring_bitmap_t *bm, uint16_t k, int32_t *cursor)
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

/* The values of array a that fall in words [lo, hi), as indexes [*i0, *i1): values outside a
 * chunk's span are skipped by two binary searches, never visited. */
static inline void zd_array_span(const array_container_t *a, size_t lo, size_t hi, int32_t *i0,
                                 int32_t *i1)
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

/* Whether bit x of chunk ch is set. */
static inline bool zd_chunk_has(zd_chunk ch, uint16_t x)
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

/* The words [*lo, *hi) outside of which the chunk has no bits. */
void zd_chunk_span(zd_chunk ch, size_t *lo, size_t *hi);
/* Roughly what visiting the chunk costs over words [lo, hi), in word operations. */
size_t zd_chunk_cost(zd_chunk ch, size_t lo, size_t hi);

enum { ZD_ARR_AND, ZD_ARR_ANDNOT, ZD_ARR_OR };
/* out[w] = old[w] & m, & ~m or | m over words [lo, hi), m the mask of array s in word w; words
 * s does not touch are left alone (old and out must differ). */
void zd_array_apply(const array_container_t *s, int mode, const uint64_t *restrict old,
                    uint64_t *restrict out, size_t lo, size_t hi);
/* Words [lo, hi) of the chunk: a bitset's own array (borrowed), anything else expanded into
 * scratch. NULL when the chunk is empty. */
const uint64_t *zd_chunk_words(zd_chunk ch, uint64_t *scratch, size_t lo, size_t hi);
/* dst[lo, hi) |= chunk (or &= ~chunk when clear); scratch may be overwritten. */
void zd_chunk_merge(zd_chunk ch, bool clear, uint64_t *dst, uint64_t *scratch, size_t lo,
                    size_t hi);
/* dst[lo, hi) |= the words of chunk ch, restricted to mask when mask is not NULL. */
void zd_chunk_or_masked(zd_chunk ch, const uint64_t *mask, uint64_t *dst, uint64_t *scratch,
                        size_t lo, size_t hi);
/* The number of set bits in w[0, n). */
uint64_t zd_popcount_words(const uint64_t *w, size_t n);
/* Appends words [lo, hi) of res as the container of key k (above every key out has), as
 * CRoaring would store it: nothing when empty, an array up to 4096 values, a bitset above.
 * Returns 0 or -ENOMEM. */
int zd_chunk_append(roaring_bitmap_t *out, uint16_t k, const uint64_t *res, size_t lo, size_t hi);

/* Word buffers of the evaluations, kept per thread from one call to the next: a fresh 56 KiB
 * on every range made glibc's malloc give the top of its heap back to the kernel and fault it
 * in again on the next call (a third of a small union's time, measured). Slot
 * ZD_BUFFERS_RANGE is the range evaluations', ZD_BUFFERS_UNION the union's (they never nest).
 * Returns a buffer of at least nwords words, valid until the next call for the same slot on
 * this thread, or NULL on ENOMEM. Never freed: one per slot and thread. */
enum { ZD_BUFFERS_RANGE, ZD_BUFFERS_UNION, ZD_BUFFER_SLOTS };
uint64_t *zd_chunk_buffers(int slot, size_t nwords);

/* The union of bms[0..n) (borrowed; NULL entries are empty), chunk by chunk. Caller frees
 * with roaring_bitmap_free(); NULL on ENOMEM. */
roaring_bitmap_t *zd_chunk_union(const roaring_bitmap_t *const *bms, int n);

#endif
