/* A CRoaring helper shared by the index modules (profiles/index*.c). */
#ifndef ZD_INDEX_BITMAP_H
#define ZD_INDEX_BITMAP_H

#include <roaring/roaring.h>

/* CRoaring 0.2.66's roaring_bitmap_free(NULL) dereferences its argument. */
static inline void zd_bm_free(roaring_bitmap_t *bm)
{
    if (bm)
        roaring_bitmap_free(bm);
}

#endif
