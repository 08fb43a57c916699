/* Shared by the index unit tests: a schema made by hand (so the tests do not depend on
 * schema.c), hand-made profiles, small bitmap helpers and a deterministic random source. */
#ifndef ZD_INDEX_FIXTURE_H
#define ZD_INDEX_FIXTURE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profiles/index.h"

/* A schema made by hand, so this test does not depend on schema.c. */
enum { A_KIND, A_REGION, A_TAGS, A_INDUSTRY, A_SCALE, A_EMPLOYEES, A_BIRTH, A_FOUNDED, A_N };

static inline zd_schema *make_schema(void)
{
    zd_schema *s = calloc(1, sizeof(*s));
    static const struct {
        const char *name;
        zd_type type;
    } defs[A_N] = {
        {"kind", ZD_T_KEYWORD},    {"region", ZD_T_CODE},   {"tags", ZD_T_TAGS},
        {"industry", ZD_T_CODE},   {"scale", ZD_T_KEYWORD}, {"employees", ZD_T_NUMBER},
        {"birth_date", ZD_T_DATE}, {"founded", ZD_T_DATE},
    };
    s->nattrs = A_N;
    for (int i = 0; i < A_N; i++) {
        zd_attr *a = &s->attrs[i];
        snprintf(a->name, sizeof(a->name), "%s", defs[i].name);
        a->type = defs[i].type;
        a->index = i;
        a->max = INT64_MAX;
    }
    zd_attr *r = &s->attrs[A_REGION];
    r->nlevels = 5;
    memcpy(r->levels, (int[]){2, 4, 6, 9, 12}, 5 * sizeof(int));
    zd_attr *ind = &s->attrs[A_INDUSTRY];
    ind->style = ZD_CODE_LETTER_DIGITS;
    ind->nlevels = 4;
    memcpy(ind->levels, (int[]){1, 3, 4, 5}, 4 * sizeof(int));
    s->attrs[A_EMPLOYEES].min = 0;
    return s;
}

/* Hand-made profiles: plain structs, freed by tp_free. */
static inline zd_profile *tp_new(const char *id)
{
    zd_profile *p = calloc(1, sizeof(*p));
    p->id = strdup(id);
    p->nvals = A_N;
    p->vals = calloc(A_N, sizeof(zd_value));
    return p;
}

static inline void tp_str(zd_profile *p, int a, const char *v)
{
    free(p->vals[a].str);
    p->vals[a].str = v ? strdup(v) : NULL;
    p->vals[a].present = v != NULL;
}

static inline void tp_num(zd_profile *p, int a, int64_t v)
{
    p->vals[a].num = v;
    p->vals[a].present = true;
}

/* Tags must be given sorted, as the profile model guarantees. */
static inline void tp_tags(zd_profile *p, int n, ...)
{
    zd_value *v = &p->vals[A_TAGS];
    for (int i = 0; i < v->ntags; i++)
        free(v->tags[i]);
    free(v->tags);
    v->tags = calloc(n > 0 ? (size_t)n : 1, sizeof(char *));
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        v->tags[i] = strdup(va_arg(ap, const char *));
    va_end(ap);
    v->ntags = n;
    v->present = n > 0;
}

static inline void tp_free(zd_profile *p)
{
    if (!p)
        return;
    for (int a = 0; a < p->nvals; a++) {
        free(p->vals[a].str);
        for (int i = 0; i < p->vals[a].ntags; i++)
            free(p->vals[a].tags[i]);
        free(p->vals[a].tags);
    }
    free(p->vals);
    free(p->id);
    free(p);
}

static inline zd_profile *tp_copy(const zd_profile *src)
{
    zd_profile *p = tp_new(src->id);
    for (int a = 0; a < A_N; a++) {
        const zd_value *v = &src->vals[a];
        if (!v->present)
            continue;
        if (a == A_TAGS) {
            zd_value *d = &p->vals[a];
            d->tags = calloc((size_t)v->ntags + 1, sizeof(char *));
            for (int i = 0; i < v->ntags; i++)
                d->tags[i] = strdup(v->tags[i]);
            d->ntags = v->ntags;
            d->present = true;
        } else if (v->str) {
            tp_str(p, a, v->str);
        } else {
            tp_num(p, a, v->num);
        }
    }
    return p;
}

static inline uint64_t card(const roaring_bitmap_t *bm)
{
    return bm ? roaring_bitmap_get_cardinality(bm) : 0;
}

static inline bool has(const roaring_bitmap_t *bm, uint32_t gid)
{
    return bm && roaring_bitmap_contains(bm, gid);
}

static inline uint64_t range_card(const zd_index *ix, int attr, zd_cmp op, int64_t v)
{
    roaring_bitmap_t *r = zd_index_range(ix, attr, op, v, NULL);
    uint64_t n = card(r);
    roaring_bitmap_free(r);
    return n;
}

static inline bool range_has(const zd_index *ix, int attr, zd_cmp op, int64_t v, uint32_t gid)
{
    roaring_bitmap_t *r = zd_index_range(ix, attr, op, v, NULL);
    bool b = has(r, gid);
    roaring_bitmap_free(r);
    return b;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static inline uint64_t rnd(void)
{
    /* splitmix64: deterministic, so a failure reproduces. */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rnd_below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

#endif
