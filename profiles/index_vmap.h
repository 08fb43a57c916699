/* The index's value -> bitmap map: one bitmap per keyword value, tag or code prefix, in an
 * open-addressing hash table without tombstones. Internal to the index (profiles/index*.c). */
#ifndef ZD_INDEX_VMAP_H
#define ZD_INDEX_VMAP_H

#include <stddef.h>
#include <stdint.h>

#include <roaring/roaring.h>

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

/* The bitmap of key[0..len), created empty if missing (owned by the map). NULL on ENOMEM. */
roaring_bitmap_t *zd_vmap_get_or_add(zd_vmap *m, const char *key, size_t len);
/* The bitmap of key[0..len) (borrowed, never empty), or NULL. */
const roaring_bitmap_t *zd_vmap_get(const zd_vmap *m, const char *key, size_t len);
/* Removes gid from key's bitmap, and the entry when its bitmap becomes empty. */
void zd_vmap_remove_gid(zd_vmap *m, const char *key, size_t len, uint32_t gid);
/* Frees slot i (which must be live) and its bitmap. The slot may then hold another entry of
 * the same probe run: a caller walking the slots stays on i. */
void zd_vmap_delete_slot(zd_vmap *m, uint32_t i);
/* Frees every entry; the map is empty and reusable. */
void zd_vmap_clear(zd_vmap *m);

#endif
