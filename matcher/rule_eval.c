/* The two evaluators of a compiled rule: over the bitmap index (the audience) and against one
 * profile (match, explain, reasons). They must agree exactly; tests/unit/test_rule.c checks it
 * on random populations and rules. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/date.h"
#include "common/fault.h"
#include "matcher/rule.h"
#include "matcher/rule_internal.h"

/* ---- one profile ----------------------------------------------------------------------- */

const zd_value *zd_rleaf_value(const zd_rnode *n, const zd_profile *p)
{
    int i = n->attr->index;
    if (i >= p->nvals)
        return NULL;
    const zd_value *v = &p->vals[i];
    if (!v->present || (n->attr->type == ZD_T_TAGS && v->ntags == 0))
        return NULL;
    return v;
}

static bool cmp_int(int64_t x, zd_cmp op, int64_t c)
{
    switch (op) {
    case ZD_CMP_LT:
        return x < c;
    case ZD_CMP_LE:
        return x <= c;
    case ZD_CMP_GT:
        return x > c;
    case ZD_CMP_GE:
        return x >= c;
    case ZD_CMP_EQ:
        return x == c;
    }
    return false;
}

static bool has_tag(const zd_value *v, const char *tag)
{
    for (int i = 0; i < v->ntags; i++)
        if (strcmp(v->tags[i], tag) == 0)
            return true;
    return false;
}

bool zd_rleaf_true(const zd_rnode *n, const zd_profile *p, int32_t today)
{
    const zd_value *v = zd_rleaf_value(n, p);
    if (!v)
        return false;
    bool any = false;
    switch (n->form) {
    case ZD_RL_EXISTS:
        return true;
    case ZD_RL_HAS:
        return has_tag(v, n->strs[0]);
    case ZD_RL_STR_IN:
    case ZD_RL_CODE_IN:
        for (int i = 0; i < n->nvals && !any; i++)
            any = v->str && strcmp(v->str, n->strs[i]) == 0;
        return any != n->negate;
    case ZD_RL_WITHIN:
        for (int i = 0; i < n->nvals && !any; i++)
            any = v->str && strncmp(v->str, n->strs[i], strlen(n->strs[i])) == 0;
        return any;
    case ZD_RL_NUM_CMP:
        return cmp_int(v->num, n->op, n->v);
    case ZD_RL_NUM_IN:
        for (int i = 0; i < n->nvals && !any; i++)
            any = v->num == n->nums[i];
        return any != n->negate;
    case ZD_RL_AGE_CMP:
        return cmp_int(zd_date_age((int32_t)v->num, today), n->op, n->v);
    case ZD_RL_AGE_IN: {
        int age = zd_date_age((int32_t)v->num, today);
        for (int i = 0; i < n->nvals && !any; i++)
            any = age == n->nums[i];
        return any != n->negate;
    }
    }
    return false;
}

bool zd_rnode_true(const zd_rnode *n, const zd_profile *p, int32_t today)
{
    switch (n->kind) {
    case ZD_RN_AND:
        for (int i = 0; i < n->nkids; i++)
            if (!zd_rnode_true(n->kids[i], p, today))
                return false;
        return true;
    case ZD_RN_OR:
        for (int i = 0; i < n->nkids; i++)
            if (zd_rnode_true(n->kids[i], p, today))
                return true;
        return false;
    case ZD_RN_NOT:
        return !zd_rnode_true(n->kids[0], p, today);
    case ZD_RN_LEAF:
        return zd_rleaf_true(n, p, today);
    }
    return false;
}

bool zd_rule_match(const zd_rule *r, const zd_profile *p, int32_t today)
{
    return zd_rnode_true(r->root, p, today);
}

/* The profile's value of a leaf's field as JSON: numbers unscaled, dates as text, age() as the
 * computed age, tags as an array, null when absent. */
static cJSON *value_json(const zd_rnode *n, const zd_profile *p, int32_t today)
{
    const zd_value *v = zd_rleaf_value(n, p);
    if (!v)
        return cJSON_CreateNull();
    switch (n->attr->type) {
    case ZD_T_KEYWORD:
    case ZD_T_CODE:
        return v->str ? cJSON_CreateString(v->str) : cJSON_CreateNull();
    case ZD_T_NUMBER: {
        double scale = 1;
        for (int i = 0; i < n->attr->decimals; i++)
            scale *= 10;
        return cJSON_CreateNumber((double)v->num / scale);
    }
    case ZD_T_DATE: {
        if (n->age)
            return cJSON_CreateNumber(zd_date_age((int32_t)v->num, today));
        char d[11];
        zd_date_format((int32_t)v->num, d);
        return cJSON_CreateString(d);
    }
    case ZD_T_TAGS:
        return cJSON_CreateStringArray((const char *const *)v->tags, v->ntags);
    }
    return cJSON_CreateNull();
}

/* Walks the plan in source order, appending one clause per leaf to `clauses` (explain).
 * Returns the node's truth, or -1 on ENOMEM. Unlike zd_rnode_true() it never short-circuits: every
 * leaf is reported. */
static int walk(const zd_rule *r, const zd_rnode *n, const zd_profile *p, int32_t today,
                cJSON *clauses)
{
    if (n->kind == ZD_RN_LEAF) {
        bool res = zd_rleaf_true(n, p, today);
        if (clauses) {
            cJSON *c = cJSON_CreateObject();
            if (!c)
                return -1;
            cJSON_AddItemToArray(clauses, c);
            if (!cJSON_AddStringToObject(c, "text", n->text) ||
                !cJSON_AddBoolToObject(c, "result", res))
                return -1;
            cJSON *val = value_json(n, p, today);
            if (!val)
                return -1;
            cJSON_AddItemToObject(c, "value", val);
            if (n->segment >= 0 && !cJSON_AddStringToObject(c, "segment", r->segments[n->segment]))
                return -1;
        }
        return res;
    }
    bool res = n->kind == ZD_RN_AND;
    for (int i = 0; i < n->nkids; i++) {
        int k = walk(r, n->kids[i], p, today, clauses);
        if (k < 0)
            return -1;
        if (n->kind == ZD_RN_AND)
            res = res && k;
        else if (n->kind == ZD_RN_OR)
            res = res || k;
        else
            res = !k;
    }
    return res;
}

cJSON *zd_rule_explain(const zd_rule *r, const zd_profile *p, int32_t today)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *clauses = cJSON_CreateArray();
    if (!o || !clauses)
        goto fail;
    int m = walk(r, r->root, p, today, clauses);
    if (m < 0 || !cJSON_AddBoolToObject(o, "match", m))
        goto fail;
    cJSON_AddItemToObject(o, "clauses", clauses);
    return o;
fail:
    cJSON_Delete(clauses);
    cJSON_Delete(o);
    return NULL;
}

/* ---- the index ------------------------------------------------------------------------- */

/* A set computed over the index. bm NULL is the empty set. When own is set, bm == own and the
 * evaluator must free it; otherwise bm is borrowed from the index. Evaluated under a hint H,
 * a result R only promises R ∩ H == S ∩ H for the node's true set S; `sub` says R ⊆ H.
 * A borrowed result never has sub set, so it can never alias a hint its caller frees. */
typedef struct bres {
    const roaring_bitmap_t *bm;
    roaring_bitmap_t *own;
    bool sub;
} bres;

typedef struct ectx {
    const zd_index *ix;
    const zd_schema *schema;
    int32_t today;
    bool nomem;
} ectx;

static void bres_free(bres *b)
{
    if (b->own)
        roaring_bitmap_free(b->own);
    *b = (bres){0};
}

static bres owned(ectx *e, roaring_bitmap_t *bm, bool sub)
{
    if (!bm)
        e->nomem = true;
    return (bres){.bm = bm, .own = bm, .sub = sub && bm};
}

static bool is_empty(const roaring_bitmap_t *bm)
{
    return !bm || roaring_bitmap_is_empty(bm);
}

static uint64_t card(const roaring_bitmap_t *bm)
{
    return bm ? roaring_bitmap_get_cardinality(bm) : 0;
}

/* The union of n sets; takes ownership of the owned ones. */
static bres union_of(ectx *e, bres *sets, int n)
{
    size_t k = 0;
    bool sub = true;
    for (int i = 0; i < n; i++) {
        if (is_empty(sets[i].bm)) {
            bres_free(&sets[i]);
            continue;
        }
        sub = sub && sets[i].sub;
        sets[k++] = sets[i];
    }
    if (k == 0)
        return (bres){0};
    if (k == 1)
        return sets[0];
    /* A fresh union, chunk by chunk (the index's bitmaps must not be modified); the owned
     * members are freed after. */
    const roaring_bitmap_t **v = malloc(sizeof(*v) * k);
    if (!v) {
        for (size_t i = 0; i < k; i++)
            bres_free(&sets[i]);
        e->nomem = true;
        return (bres){0};
    }
    for (size_t i = 0; i < k; i++)
        v[i] = sets[i].bm;
    bres out = owned(e, zd_index_union(v, (int)k), sub);
    free(v);
    for (size_t i = 0; i < k; i++)
        bres_free(&sets[i]);
    return out;
}

/* from \ minus, where from is borrowed. */
static bres minus(ectx *e, const roaring_bitmap_t *from, const roaring_bitmap_t *minus_bm, bool sub)
{
    if (is_empty(from))
        return (bres){0};
    if (is_empty(minus_bm))
        return owned(e, roaring_bitmap_copy(from), sub);
    return owned(e, roaring_bitmap_andnot(from, minus_bm), sub);
}

static int32_t age_threshold(const ectx *e, int64_t years)
{
    return zd_date_age_threshold(e->today, (int)years);
}

/* A NUM_CMP or AGE_CMP leaf as the values [*lo, *hi] of its attribute it selects (empty when
 * *lo > *hi). An age bound is a date bound: age >= N <=> date <= threshold(N), and age < N <=>
 * date > threshold(N). False for any other node. */
static bool leaf_interval(const ectx *e, const zd_rnode *n, int64_t *lo, int64_t *hi)
{
    if (n->kind != ZD_RN_LEAF || (n->form != ZD_RL_NUM_CMP && n->form != ZD_RL_AGE_CMP))
        return false;
    *lo = INT64_MIN;
    *hi = INT64_MAX;
    int64_t v = n->v;
    if (n->form == ZD_RL_AGE_CMP) {
        /* Ages are clamped by the compiler, so years + 1 and the thresholds fit. */
        switch (n->op) {
        case ZD_CMP_GE:
            *hi = age_threshold(e, v);
            break;
        case ZD_CMP_GT:
            *hi = age_threshold(e, v + 1);
            break;
        case ZD_CMP_LT:
            *lo = (int64_t)age_threshold(e, v) + 1;
            break;
        case ZD_CMP_LE:
            *lo = (int64_t)age_threshold(e, v + 1) + 1;
            break;
        case ZD_CMP_EQ:
            *lo = (int64_t)age_threshold(e, v + 1) + 1;
            *hi = age_threshold(e, v);
            break;
        }
        return true;
    }
    /* Nothing is below INT64_MIN or above INT64_MAX: [1, 0] is empty. */
    switch (n->op) {
    case ZD_CMP_LT:
        if (v == INT64_MIN) {
            *lo = 1;
            *hi = 0;
        } else {
            *hi = v - 1;
        }
        break;
    case ZD_CMP_LE:
        *hi = v;
        break;
    case ZD_CMP_GT:
        if (v == INT64_MAX) {
            *lo = 1;
            *hi = 0;
        } else {
            *lo = v + 1;
        }
        break;
    case ZD_CMP_GE:
        *lo = v;
        break;
    case ZD_CMP_EQ:
        *lo = *hi = v;
        break;
    }
    return true;
}

/* Profiles with attribute `attr` whose age in full years is exactly `years`: a one-year range of
 * dates, evaluated as one interval rather than two ranges intersected. */
static bres age_equal(ectx *e, int attr, int64_t years, const roaring_bitmap_t *hint)
{
    zd_rnode eq = {.kind = ZD_RN_LEAF, .form = ZD_RL_AGE_CMP, .op = ZD_CMP_EQ, .v = years};
    int64_t lo, hi;
    leaf_interval(e, &eq, &lo, &hi);
    return owned(e, zd_index_between(e->ix, attr, lo, hi, hint), hint != NULL);
}

static bres leaf_set(ectx *e, const zd_rnode *n, const roaring_bitmap_t *hint)
{
    const zd_index *ix = e->ix;
    const int a = n->attr->index;
    bres one[1];
    bres *sets = n->nvals > 1 ? calloc((size_t)n->nvals, sizeof(*sets)) : one;
    if (!sets) {
        e->nomem = true;
        return (bres){0};
    }
    bres out = {0};
    switch (n->form) {
    case ZD_RL_EXISTS:
        out.bm = zd_index_exists(ix, a);
        break;
    case ZD_RL_HAS:
        out.bm = zd_index_keyword(ix, a, n->strs[0]);
        break;
    case ZD_RL_NUM_CMP:
    case ZD_RL_AGE_CMP: {
        int64_t lo, hi;
        leaf_interval(e, n, &lo, &hi);
        out = owned(e, zd_index_between(ix, a, lo, hi, hint), hint != NULL);
        break;
    }
    case ZD_RL_STR_IN:
    case ZD_RL_CODE_IN:
    case ZD_RL_WITHIN:
    case ZD_RL_NUM_IN:
    case ZD_RL_AGE_IN:
        for (int i = 0; i < n->nvals; i++) {
            bres *s = &sets[i];
            *s = (bres){0};
            if (n->form == ZD_RL_STR_IN) {
                s->bm = zd_index_keyword(ix, a, n->strs[i]);
            } else if (n->form == ZD_RL_WITHIN) {
                s->bm = zd_index_code_prefix(ix, a, n->strs[i]);
            } else if (n->form == ZD_RL_CODE_IN) {
                /* Exactly the code: every code under the prefix, of the code's own length.
                 * A code of the deepest level has nothing under it but itself, so its prefix
                 * bitmap is already exact and the (large) length bitmap is not needed. */
                const zd_attr *def = &e->schema->attrs[a];
                int clen = (int)strlen(n->strs[i]);
                const roaring_bitmap_t *pre = zd_index_code_prefix(ix, a, n->strs[i]);
                if (clen == def->levels[def->nlevels - 1]) {
                    s->bm = pre;
                } else {
                    const roaring_bitmap_t *len = zd_index_code_len(ix, a, clen);
                    if (!is_empty(pre) && !is_empty(len))
                        *s = owned(e, roaring_bitmap_and(pre, len), false);
                }
            } else if (n->form == ZD_RL_NUM_IN) {
                *s = owned(e, zd_index_between(ix, a, n->nums[i], n->nums[i], hint), hint != NULL);
            } else {
                *s = age_equal(e, a, n->nums[i], hint);
            }
        }
        out = union_of(e, sets, n->nvals);
        if (n->negate) {
            /* x != v means "has x and x is not v". */
            bres eq = out;
            out = minus(e, zd_index_exists(ix, a), eq.bm, false);
            bres_free(&eq);
        }
        break;
    }
    if (sets != one)
        free(sets);
    return out;
}

/* The estimated size of a node's set, to order the children of an AND. */
static uint64_t estimate(const ectx *e, const zd_rnode *n)
{
    const zd_index *ix = e->ix;
    switch (n->kind) {
    case ZD_RN_AND: {
        uint64_t m = UINT64_MAX;
        for (int i = 0; i < n->nkids; i++) {
            uint64_t k = estimate(e, n->kids[i]);
            m = k < m ? k : m;
        }
        return m;
    }
    case ZD_RN_OR: {
        uint64_t s = 0;
        for (int i = 0; i < n->nkids; i++)
            s += estimate(e, n->kids[i]);
        return s;
    }
    case ZD_RN_NOT: {
        uint64_t u = card(zd_index_universe(ix)), k = estimate(e, n->kids[0]);
        return k < u ? u - k : 0;
    }
    case ZD_RN_LEAF:
        break;
    }
    const int a = n->attr->index;
    uint64_t s = 0;
    switch (n->form) {
    case ZD_RL_HAS:
        return card(zd_index_keyword(ix, a, n->strs[0]));
    case ZD_RL_STR_IN:
        if (n->negate)
            break;
        for (int i = 0; i < n->nvals; i++)
            s += card(zd_index_keyword(ix, a, n->strs[i]));
        return s;
    case ZD_RL_WITHIN:
        for (int i = 0; i < n->nvals; i++)
            s += card(zd_index_code_prefix(ix, a, n->strs[i]));
        return s;
    case ZD_RL_CODE_IN:
        if (n->negate)
            break;
        for (int i = 0; i < n->nvals; i++)
            s += card(zd_index_code_prefix(ix, a, n->strs[i]));
        return s;
    case ZD_RL_NUM_IN:
    case ZD_RL_AGE_IN:
        if (n->nvals == 0 && !n->negate)
            return 0;
        break;
    case ZD_RL_EXISTS:
    case ZD_RL_NUM_CMP:
    case ZD_RL_AGE_CMP:
        break;
    }
    return card(zd_index_exists(ix, a));
}

static bres eval(ectx *e, const zd_rnode *n, const roaring_bitmap_t *hint);

typedef struct ranked {
    uint64_t est;
    int i;
} ranked;

static int ranked_cmp(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->est != y->est)
        return x->est < y->est ? -1 : 1;
    return x->i - y->i;
}

static void and_with(ectx *e, bres *run, bres r);

/* Narrows the running result *run (not empty) of an AND by child k, evaluated with *run as its
 * hint: a `not` child subtracts from it instead of being complemented over the universe. */
static void and_step(ectx *e, bres *run, const zd_rnode *k)
{
    if (k->kind == ZD_RN_NOT) {
        bres r = eval(e, k->kids[0], run->bm);
        if (!is_empty(r.bm)) {
            if (run->own)
                roaring_bitmap_andnot_inplace(run->own, r.bm);
            else
                *run = owned(e, roaring_bitmap_andnot(run->bm, r.bm), run->sub);
        }
        bres_free(&r);
        return;
    }
    and_with(e, run, eval(e, k, run->bm));
}

/* Narrows the running result *run by r, a positive child's result evaluated with *run as its
 * hint; takes r. */
static void and_with(ectx *e, bres *run, bres r)
{
    if (r.sub) {
        /* Already within the running result: it is the new running result. */
        r.sub = run->sub;
        bres_free(run);
        *run = r;
    } else if (is_empty(r.bm)) {
        /* r may be empty and still allocated (a `!=` subtracts from the attribute's holders). */
        bres_free(&r);
        bres_free(run);
    } else {
        if (run->own)
            roaring_bitmap_and_inplace(run->own, r.bm);
        else
            *run = owned(e, roaring_bitmap_and(run->bm, r.bm), run->sub);
        bres_free(&r);
    }
}

/* Comparisons of one number or date attribute under an AND (`employees >= 50 and employees <
 * 300`, `age(x) >= 18 and age(x) < 19`) are one interval of its values: evaluated once with both
 * bounds, they cost about one range instead of two ranges and an intersection. head[i] is the
 * first child of child i's group, or -1; lo, hi are the group's interval (at its head). */
typedef struct andgroups {
    int *head;
    int64_t *lo, *hi;
} andgroups;

static bool group_ranges(const ectx *e, const zd_rnode *n, andgroups *g)
{
    g->head = malloc(sizeof(*g->head) * (size_t)n->nkids);
    g->lo = malloc(sizeof(*g->lo) * (size_t)n->nkids);
    g->hi = malloc(sizeof(*g->hi) * (size_t)n->nkids);
    if (!g->head || !g->lo || !g->hi)
        return false;
    for (int i = 0; i < n->nkids; i++) {
        g->head[i] = -1;
        int64_t lo, hi;
        if (!leaf_interval(e, n->kids[i], &lo, &hi))
            continue;
        int h = i;
        for (int j = 0; j < i && h == i; j++)
            if (g->head[j] == j && n->kids[j]->attr == n->kids[i]->attr)
                h = j;
        g->head[i] = h;
        if (h == i) {
            g->lo[i] = lo;
            g->hi[i] = hi;
        } else {
            g->lo[h] = lo > g->lo[h] ? lo : g->lo[h];
            g->hi[h] = hi < g->hi[h] ? hi : g->hi[h];
        }
    }
    return true;
}

static void andgroups_free(andgroups *g)
{
    free(g->head);
    free(g->lo);
    free(g->hi);
}

/* Child i of an AND under hint: its group's interval when it heads one. */
static bres eval_kid(ectx *e, const zd_rnode *n, const andgroups *g, int i,
                     const roaring_bitmap_t *hint)
{
    if (g->head[i] != i)
        return eval(e, n->kids[i], hint);
    return owned(e, zd_index_between(e->ix, n->kids[i]->attr->index, g->lo[i], g->hi[i], hint),
                 hint != NULL);
}

/* Intersects the children smallest estimate first, each evaluated with the running result as
 * its hint, and stops as soon as the running result is empty. */
static bres eval_and(ectx *e, const zd_rnode *n, const roaring_bitmap_t *hint)
{
    ranked *order = malloc(sizeof(*order) * (size_t)n->nkids);
    andgroups g = {0};
    if (!order || !group_ranges(e, n, &g)) {
        free(order);
        andgroups_free(&g);
        e->nomem = true;
        return (bres){0};
    }
    int npos = 0, nneg = n->nkids;
    for (int i = 0; i < n->nkids; i++) {
        const zd_rnode *k = n->kids[i];
        /* Positive children first, ranked; the negations go last, in source order. The other
         * members of an interval's group are evaluated with its head. */
        if (g.head[i] >= 0 && g.head[i] != i)
            continue;
        if (k->kind == ZD_RN_NOT)
            order[--nneg] = (ranked){UINT64_MAX, i};
        else
            order[npos++] = (ranked){estimate(e, k), i};
    }
    qsort(order, (size_t)npos, sizeof(*order), ranked_cmp);
    /* Skipped group members leave a gap between the positives and the negations. */
    int nneg_n = n->nkids - nneg;
    memmove(order + npos, order + nneg, sizeof(*order) * (size_t)nneg_n);
    int nitems = npos + nneg_n;

    bres run = {0};
    bool started = false;
    for (int j = 0; j < nitems && !e->nomem; j++) {
        const zd_rnode *k = n->kids[order[j].i];
        if (!started) {
            started = true;
            if (k->kind != ZD_RN_NOT) {
                run = eval_kid(e, n, &g, order[j].i, hint);
                if (is_empty(run.bm))
                    break;
                continue;
            }
            /* Only negations: start from everything (within the hint, which is cheaper). */
            run = hint ? owned(e, roaring_bitmap_copy(hint), true)
                       : (bres){.bm = zd_index_universe(e->ix)};
            if (is_empty(run.bm))
                break;
        }
        if (k->kind == ZD_RN_NOT)
            and_step(e, &run, k);
        else
            and_with(e, &run, eval_kid(e, n, &g, order[j].i, run.bm));
        if (is_empty(run.bm))
            break;
    }
    free(order);
    andgroups_free(&g);
    if (e->nomem)
        bres_free(&run);
    return run;
}

static bres eval(ectx *e, const zd_rnode *n, const roaring_bitmap_t *hint)
{
    switch (n->kind) {
    case ZD_RN_AND:
        return eval_and(e, n, hint);
    case ZD_RN_OR: {
        bres *sets = calloc((size_t)n->nkids, sizeof(*sets));
        if (!sets) {
            e->nomem = true;
            return (bres){0};
        }
        for (int i = 0; i < n->nkids; i++)
            sets[i] = eval(e, n->kids[i], hint);
        bres out = union_of(e, sets, n->nkids);
        free(sets);
        return out;
    }
    case ZD_RN_NOT: {
        bres k = eval(e, n->kids[0], hint);
        bres out = minus(e, hint ? hint : zd_index_universe(e->ix), k.bm, hint != NULL);
        bres_free(&k);
        return out;
    }
    case ZD_RN_LEAF:
        return leaf_set(e, n, hint);
    }
    return (bres){0};
}

roaring_bitmap_t *zd_rule_audience(const zd_rule *r, const zd_index *ix, int32_t today)
{
    if (zd_fault(ZD_FAULT_AUDIENCE))
        return NULL;
    ectx e = {.ix = ix, .schema = r->schema, .today = today};
    bres b = eval(&e, r->root, NULL);
    if (e.nomem) {
        bres_free(&b);
        return NULL;
    }
    if (b.own)
        return b.own;
    return b.bm ? roaring_bitmap_copy(b.bm) : roaring_bitmap_create();
}

/* ---- clause counts --------------------------------------------------------------------- */

/* |b ∩ within| of a set evaluated under the hint `within`. */
static uint64_t count_within(const bres *b, const roaring_bitmap_t *within)
{
    if (is_empty(b->bm))
        return 0;
    if (!within || b->sub)
        return card(b->bm);
    return roaring_bitmap_and_cardinality(b->bm, within);
}

static int count_leaves(const zd_rnode *n)
{
    if (n->kind == ZD_RN_LEAF)
        return 1;
    int k = 0;
    for (int i = 0; i < n->nkids; i++)
        k += count_leaves(n->kids[i]);
    return k;
}

/* Fills out[*k...] with n's leaves in source order, each counted on its own within `within`. */
static void count_leaf_sets(ectx *e, const zd_rule *r, const zd_rnode *n, bool negated,
                            const roaring_bitmap_t *within, zd_rule_clause *out, int *k)
{
    if (e->nomem)
        return;
    if (n->kind != ZD_RN_LEAF) {
        for (int i = 0; i < n->nkids; i++)
            count_leaf_sets(e, r, n->kids[i], negated != (n->kind == ZD_RN_NOT), within, out, k);
        return;
    }
    bres b = leaf_set(e, n, within);
    out[*k] = (zd_rule_clause){
        .text = n->text,
        .segment = n->segment >= 0 ? r->segments[n->segment] : NULL,
        .position = n->position,
        .negated = negated,
        .count = count_within(&b, within),
    };
    (*k)++;
    bres_free(&b);
}

void zd_rule_counts_free(zd_rule_counts *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->nsteps; i++)
        free(c->steps[i].text);
    free(c->steps);
    free(c->clauses);
    free(c);
}

int zd_rule_count_clauses(const zd_rule *r, const zd_index *ix, int32_t today,
                          const roaring_bitmap_t *within, zd_rule_counts **out,
                          roaring_bitmap_t **audience)
{
    *out = NULL;
    if (audience)
        *audience = NULL;
    if (zd_fault(ZD_FAULT_AUDIENCE))
        return -ENOMEM;
    const zd_rnode *root = r->root;
    const zd_rnode *const *conj =
        root->kind == ZD_RN_AND ? (const zd_rnode *const *)root->kids : &root;
    int nconj = root->kind == ZD_RN_AND ? root->nkids : 1;
    ectx e = {.ix = ix, .schema = r->schema, .today = today};
    bres run = {0};
    zd_rule_counts *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->nclauses = count_leaves(root);
    c->clauses = calloc((size_t)c->nclauses, sizeof(*c->clauses));
    c->steps = calloc((size_t)nconj, sizeof(*c->steps));
    if (!c->clauses || !c->steps)
        goto fail;

    int k = 0;
    count_leaf_sets(&e, r, root, false, within, c->clauses, &k);

    /* The chain in source order, not smallest first as the audience runs it: each step's count
     * is what the conditions written so far keep. The running set starts as `within` (or
     * everything), which the first positive step replaces without intersecting. */
    bool everything = within == NULL;
    run.bm = within ? within : zd_index_universe(ix);
    for (int j = 0; j < nconj && !e.nomem; j++) {
        const zd_rnode *n = conj[j];
        if (!is_empty(run.bm)) {
            if (everything && n->kind != ZD_RN_NOT)
                run = eval(&e, n, NULL);
            else
                and_step(&e, &run, n);
            everything = false;
        }
        const char *src = n->segment >= 0 ? r->segment_sources[n->segment] : r->source;
        zd_rule_step *s = &c->steps[c->nsteps++];
        s->text = strndup(src + n->position, (size_t)(n->end - n->position));
        s->segment = n->segment >= 0 ? r->segments[n->segment] : NULL;
        s->position = n->position;
        s->first_clause = j ? c->steps[j - 1].first_clause + c->steps[j - 1].nclauses : 0;
        s->nclauses = count_leaves(n);
        s->count = card(run.bm);
        if (!s->text)
            goto fail;
    }
    if (e.nomem)
        goto fail;
    if (audience) {
        *audience = run.own  ? run.own
                    : run.bm ? roaring_bitmap_copy(run.bm)
                             : roaring_bitmap_create();
        run = (bres){0};
        if (!*audience)
            goto fail;
    }
    bres_free(&run);
    *out = c;
    return 0;
fail:
    bres_free(&run);
    zd_rule_counts_free(c);
    return -ENOMEM;
}

/* ---- cost ------------------------------------------------------------------------------ */

/* Adds node n's comparisons and cost to *sz. The weights follow what leaf_set() and eval() do
 * for each form: a keyword, tag or code value is one bitmap taken from the index (and OR-ed
 * into the leaf's union); a number or date value is a range scan over the bit slices; `age(x)
 * = n` is two scans; a complement (`not`, `!=`) subtracts from a set as large as the universe.
 * They were chosen so that rules of any one kind of leaf at the same cost take about the same
 * time (docs/DESIGN.md, "Bounded previews"). */
static void measure(const zd_rnode *n, zd_rule_size *sz)
{
    if (n->kind != ZD_RN_LEAF) {
        if (n->kind == ZD_RN_NOT)
            sz->cost += ZD_RULE_COST_NOT;
        for (int i = 0; i < n->nkids; i++)
            measure(n->kids[i], sz);
        return;
    }
    long values = n->nvals > 1 ? n->nvals : 1;
    long per = 1;
    switch (n->form) {
    case ZD_RL_NUM_CMP:
    case ZD_RL_AGE_CMP:
        values = 1;
        per = ZD_RULE_COST_SCAN;
        break;
    case ZD_RL_NUM_IN:
        /* An `=` whose constant no stored value can equal scans nothing. */
        per = n->nvals ? ZD_RULE_COST_SCAN : 1;
        break;
    case ZD_RL_AGE_IN:
        per = n->nvals ? 2 * ZD_RULE_COST_SCAN : 1;
        break;
    case ZD_RL_EXISTS:
    case ZD_RL_HAS:
        values = 1;
        break;
    case ZD_RL_STR_IN:
    case ZD_RL_CODE_IN:
    case ZD_RL_WITHIN:
        break;
    }
    sz->comparisons += values;
    sz->cost += values * per + (n->negate ? ZD_RULE_COST_NOT : 0);
}

zd_rule_size zd_rule_measure(const zd_rule *r)
{
    zd_rule_size sz = {0, 0};
    measure(r->root, &sz);
    return sz;
}

int zd_rule_check_cost(const zd_rule *r, long max_cost, const char *limit_name, zd_rule_error *err)
{
    zd_rule_size sz = zd_rule_measure(r);
    if (sz.cost <= max_cost)
        return 0;
    memset(err, 0, sizeof(*err));
    snprintf(err->code, sizeof(err->code), "rule_too_complex");
    snprintf(err->message, sizeof(err->message),
             "rule too complex: %s%ld comparisons at an estimated cost of %ld, over the limit "
             "of %ld (%s); a number or date comparison costs %d, `not` and `!=` add %d, other "
             "values 1 each",
             r->nsegments ? "with its segments expanded it makes " : "it makes ", sz.comparisons,
             sz.cost, max_cost, limit_name, ZD_RULE_COST_SCAN, ZD_RULE_COST_NOT);
    err->position = 0;
    err->line = 1;
    err->column = 1;
    return -EINVAL;
}
