/* The value -> bitmap map of index_vmap.h: keyword values, tags and code prefixes to the
 * bitmaps of the gids holding them. */
#include "profiles/index_vmap.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "profiles/index_bitmap.h"

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
roaring_bitmap_t *zd_vmap_get_or_add(zd_vmap *m, const char *key, size_t len)
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
        zd_bm_free(e.bm);
        return NULL;
    }
    memcpy(e.key, key, len);
    e.key[len] = '\0';
    vmap_place(m->slots, m->cap, &e);
    m->count++;
    return e.bm;
}

const roaring_bitmap_t *zd_vmap_get(const zd_vmap *m, const char *key, size_t len)
{
    long i = vmap_find(m, key, len, vmap_hash(key, len));
    return i >= 0 ? m->slots[i].bm : NULL;
}

/* Frees slot i and shifts later members of its probe run back, so that every key stays
 * reachable from its home slot without tombstones. */
void zd_vmap_delete_slot(zd_vmap *m, uint32_t i)
{
    uint32_t mask = m->cap - 1;
    free(m->slots[i].key);
    zd_bm_free(m->slots[i].bm);
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

void zd_vmap_remove_gid(zd_vmap *m, const char *key, size_t len, uint32_t gid)
{
    long i = vmap_find(m, key, len, vmap_hash(key, len));
    if (i < 0)
        return;
    roaring_bitmap_remove(m->slots[i].bm, gid);
    if (roaring_bitmap_is_empty(m->slots[i].bm))
        zd_vmap_delete_slot(m, (uint32_t)i);
}

void zd_vmap_clear(zd_vmap *m)
{
    for (uint32_t i = 0; i < m->cap; i++) {
        free(m->slots[i].key);
        zd_bm_free(m->slots[i].bm);
    }
    free(m->slots);
    *m = (zd_vmap){0};
}
