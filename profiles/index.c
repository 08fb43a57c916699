/* The in-memory inverted index of index.h: per attribute, the value maps (index_vmap), bit
 * slices (index_bsi) and threshold bitmaps (index_thr), plus the gid -> id table (index_ids). */
#include "profiles/index.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/date.h"
#include "common/fault.h"
#include "profiles/index_bitmap.h"
#include "profiles/index_bsi.h"
#include "profiles/index_chunk.h"
#include "profiles/index_ids.h"
#include "profiles/index_range.h"
#include "profiles/index_thr.h"
#include "profiles/index_vmap.h"

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
        return zd_biased(a->min);
    return zd_biased(zd_date_from_ymd(1800, 1, 1));
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
        if (ranged && zd_thr_init(&xa->thr, xa->attr) < 0)
            goto fail;
    }
    return ix;
fail:
    zd_index_free(ix);
    return NULL;
}

static void ixattr_clear(zd_ixattr *xa)
{
    zd_vmap_clear(&xa->map);
    for (int l = 0; l < ZD_CODE_LENS; l++) {
        zd_bm_free(xa->lens[l]);
        xa->lens[l] = NULL;
    }
    zd_bsi_clear(&xa->bsi, initial_bbase(xa->attr));
    zd_thr_clear(&xa->thr);
}

void zd_index_free(zd_index *ix)
{
    if (!ix)
        return;
    if (ix->attrs) {
        for (int i = 0; i < ix->nattrs; i++) {
            ixattr_clear(&ix->attrs[i]);
            zd_thr_free(&ix->attrs[i].thr);
            zd_bm_free(ix->attrs[i].exists);
        }
        free(ix->attrs);
    }
    zd_bm_free(ix->universe);
    for (int p = 0; p < ZD_PARTITIONS_MAX; p++)
        zd_idpart_free(&ix->parts[p]);
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
        zd_idpart_free(&ix->parts[p]);
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
            zd_vmap_remove_gid(&xa->map, ov->str, strlen(ov->str), gid);
        break;
    case ZD_T_TAGS:
        for (int t = 0; t < ov->ntags; t++) {
            bool kept = false;
            for (int u = 0; nv && u < nv->ntags && !kept; u++)
                kept = strcmp(ov->tags[t], nv->tags[u]) == 0;
            if (!kept)
                zd_vmap_remove_gid(&xa->map, ov->tags[t], strlen(ov->tags[t]), gid);
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
                zd_vmap_remove_gid(&xa->map, ov->str, keys[k], gid);
        if (!(nv && nv->str && nlen == olen))
            code_len_remove(xa, olen, gid);
        break;
    }
    case ZD_T_NUMBER:
    case ZD_T_DATE:
        if (!nv) {
            /* The month bin to leave is that of the value the index holds, which a replayed
             * change may not know. */
            int64_t held;
            bool had = zd_bsi_get(&xa->bsi, xa->exists, gid, &held);
            zd_bsi_remove(&xa->bsi, gid);
            zd_thr_remove(&xa->thr, gid, had ? &held : NULL);
        }
        break;
    }
    if (!nv)
        roaring_bitmap_remove(xa->exists, gid);
}

static int add_key(zd_vmap *m, const char *key, size_t len, uint32_t gid)
{
    roaring_bitmap_t *bm = zd_vmap_get_or_add(m, key, len);
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
        if (zd_bsi_set(&xa->bsi, xa->exists, gid, nv->num, &old) < 0)
            return -ENOMEM;
        roaring_bitmap_add(xa->exists, gid);
        return zd_thr_set(&xa->thr, &xa->bsi, xa->exists, gid, had, old, nv->num);
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
                zd_vmap_delete_slot(m, s);
                continue;
            }
            s++;
        }
        for (int l = 0; l < ZD_CODE_LENS; l++)
            if (xa->lens[l])
                roaring_bitmap_remove(xa->lens[l], gid);
        int64_t held;
        bool had = zd_bsi_get(&xa->bsi, xa->exists, gid, &held);
        zd_bsi_remove(&xa->bsi, gid);
        zd_thr_remove(&xa->thr, gid, had ? &held : NULL);
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
    if (now->id && zd_idpart_set(&ix->parts[gid >> ZD_DENSE_BITS], gid & ZD_DENSE_MAX, now->id) < 0)
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
    zd_idpart_del(&ix->parts[gid >> ZD_DENSE_BITS], gid & ZD_DENSE_MAX);
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
    return zd_vmap_get(&xa->map, value, strlen(value));
}

const roaring_bitmap_t *zd_index_code_prefix(const zd_index *ix, int attr, const char *prefix)
{
    const zd_ixattr *xa = ixattr(ix, attr);
    if (!xa || xa->attr->type != ZD_T_CODE)
        return NULL;
    return zd_vmap_get(&xa->map, prefix, strlen(prefix));
}

const roaring_bitmap_t *zd_index_code_len(const zd_index *ix, int attr, int len)
{
    const zd_ixattr *xa = ixattr(ix, attr);
    if (!xa || xa->attr->type != ZD_T_CODE || len < 0 || len >= ZD_CODE_LENS)
        return NULL;
    return nonempty(xa->lens[len]);
}

roaring_bitmap_t *zd_index_between(const zd_index *ix, int attr, int64_t lo, int64_t hi,
                                   const roaring_bitmap_t *within)
{
    const zd_ixattr *xa = ixattr(ix, attr);
    if (!xa || (xa->attr->type != ZD_T_NUMBER && xa->attr->type != ZD_T_DATE) || lo > hi)
        return roaring_bitmap_create();
    /* [lo, hi] is [lo, hi + 1), open at the ends of the int64 range. */
    return zd_thr_between(&xa->thr, &xa->bsi, xa->exists, xa->attr->type == ZD_T_NUMBER,
                          lo > INT64_MIN, lo, hi < INT64_MAX, hi + (hi < INT64_MAX), within);
}

roaring_bitmap_t *zd_index_range(const zd_index *ix, int attr, zd_cmp op, int64_t v,
                                 const roaring_bitmap_t *within)
{
    switch (op) {
    case ZD_CMP_LT:
        if (v == INT64_MIN)
            return roaring_bitmap_create();
        return zd_index_between(ix, attr, INT64_MIN, v - 1, within);
    case ZD_CMP_LE:
        return zd_index_between(ix, attr, INT64_MIN, v, within);
    case ZD_CMP_GT:
        if (v == INT64_MAX)
            return roaring_bitmap_create();
        return zd_index_between(ix, attr, v + 1, INT64_MAX, within);
    case ZD_CMP_GE:
        return zd_index_between(ix, attr, v, INT64_MAX, within);
    case ZD_CMP_EQ:
        return zd_index_between(ix, attr, v, v, within);
    }
    return roaring_bitmap_create();
}

roaring_bitmap_t *zd_index_union(const roaring_bitmap_t *const *bms, int n)
{
    return zd_chunk_union(bms, n);
}

const char *zd_index_id(const zd_index *ix, uint32_t gid)
{
    return zd_idpart_get(&ix->parts[gid >> ZD_DENSE_BITS], gid & ZD_DENSE_MAX);
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

static void stats_add_fn(const roaring_bitmap_t *bm, void *udata)
{
    stats_add(udata, bm);
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
        zd_thr_foreach_bitmap(&xa->thr, stats_add_fn, &a);
        if (xa->thr.months)
            tables += ZD_THR_MONTHS * sizeof(roaring_bitmap_t *) + ZD_MALLOC_OVERHEAD;
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
        zd_thr_optimize(&xa->thr, xa->exists);
    }
    /* Trim the id tables' growth slack too; after a bulk load most of it would stay unused. */
    for (int p = 0; p < ZD_PARTITIONS_MAX; p++)
        zd_idpart_trim(&ix->parts[p]);
}
