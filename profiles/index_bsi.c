/* The bit-sliced index of index_bsi.h: setting and removing a value, and moving the base
 * below a value that does not fit (a ripple-carry add over the slices). */
#include "profiles/index_bsi.h"

#include <errno.h>
#include <stdbool.h>

#include "profiles/index_bitmap.h"

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
        zd_bm_free(b->mags[l]);
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
    zd_bm_free(seen);
    return 0;
fail:
    zd_bm_free(seen);
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
            zd_bm_free(x);
            if (!sum)
                goto fail;
            roaring_bitmap_or_inplace(carry, s);
            zd_bm_free(s);
            b->slices[i] = sum;
        } else {
            /* sum bit = s XOR carry; carry out = s AND carry */
            roaring_bitmap_t *c = roaring_bitmap_and(s, carry);
            if (!c)
                goto fail;
            roaring_bitmap_xor_inplace(s, carry);
            zd_bm_free(carry);
            carry = c;
        }
    }
    zd_bm_free(carry);
    return bsi_rebuild_mags(b, members);
fail:
    zd_bm_free(carry);
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
int zd_bsi_set(zd_bsi *b, const roaring_bitmap_t *members, uint32_t gid, int64_t v, int64_t *old)
{
    uint64_t bv = zd_biased(v);
    if (bv < b->bbase) {
        int rc = bsi_rebase(b, members, bv);
        if (rc < 0)
            return rc;
    }
    uint64_t u = bv - b->bbase;
    int len = zd_bit_length(u), old_len = 0;
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

bool zd_bsi_get(const zd_bsi *b, const roaring_bitmap_t *members, uint32_t gid, int64_t *v)
{
    if (!roaring_bitmap_contains(members, gid))
        return false;
    uint64_t u = 0;
    for (int i = 0; i < b->depth; i++)
        if (roaring_bitmap_contains(b->slices[i], gid))
            u |= (uint64_t)1 << i;
    *v = (int64_t)((b->bbase + u) ^ ZD_SIGN_BIT);
    return true;
}

void zd_bsi_remove(zd_bsi *b, uint32_t gid)
{
    for (int i = 0; i < b->depth; i++)
        roaring_bitmap_remove(b->slices[i], gid);
    for (int l = 0; l <= ZD_BSI_BITS; l++)
        if (b->mags[l])
            roaring_bitmap_remove(b->mags[l], gid);
}

void zd_bsi_clear(zd_bsi *b, uint64_t bbase)
{
    for (int i = 0; i < b->depth; i++)
        zd_bm_free(b->slices[i]);
    bsi_free_mags(b);
    b->depth = 0;
    b->bbase = bbase;
}
