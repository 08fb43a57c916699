/* The index's bit-sliced numbers and dates: one bitmap per bit of a value's offset from a base,
 * plus magnitude classes by bit length. Internal to the index (profiles/index*.c). */
#ifndef ZD_INDEX_BSI_H
#define ZD_INDEX_BSI_H

#include <stdbool.h>
#include <stdint.h>

#include <roaring/roaring.h>

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

/* int64 onto uint64, order-preserving. */
static inline uint64_t zd_biased(int64_t v)
{
    return (uint64_t)v ^ ZD_SIGN_BIT;
}

static inline int zd_bit_length(uint64_t u)
{
    return u ? 64 - __builtin_clzll(u) : 0;
}

/* Stores v as gid's value (members: the attribute's exists, borrowed, not yet updated for this
 * call). When members says gid had a value, it is stored in *old. Returns 0 or -ENOMEM. */
int zd_bsi_set(zd_bsi *b, const roaring_bitmap_t *members, uint32_t gid, int64_t v, int64_t *old);
/* Reads gid's value back from the slices into *v; false when members (the attribute's exists)
 * says gid has none. */
bool zd_bsi_get(const zd_bsi *b, const roaring_bitmap_t *members, uint32_t gid, int64_t *v);
/* Drops gid from every slice and class. */
void zd_bsi_remove(zd_bsi *b, uint32_t gid);
/* Frees every slice and class; the base becomes bbase (biased). */
void zd_bsi_clear(zd_bsi *b, uint64_t bbase);

#endif
