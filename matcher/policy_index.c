/* The index over the active policies' rules (reverse matching): necessary conditions in
 * inverted lists, candidates evaluated exactly. */
#include "matcher/policy_index.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "matcher/rule_internal.h"

/* One (attribute, value) key of a condition; val borrowed from the rule. */
typedef struct pkey {
    int attr;
    const char *val;
} pkey;

/* A condition: a profile that satisfies the rule hits at least one of keys. usable false: no
 * such set is known (the rule goes to the always-check list). */
typedef struct cond {
    bool usable;
    int n, cap;
    pkey *keys;
    long score; /* how many profiles the keys are expected to let through: lower is better */
} cond;

typedef struct entry {
    const zd_rule *rule;
    int slot;
} entry;

typedef struct bucket {
    int attr;
    char *val; /* owned; NULL: empty bucket */
    int n, cap;
    int *entries; /* entry numbers, ascending */
} bucket;

struct zd_policy_index {
    int nentries, capentries;
    entry *entries;
    int nalways, capalways;
    int *always;        /* entry numbers */
    int nbuckets, used; /* nbuckets a power of 2 */
    bucket *buckets;
    /* Scratch of zd_policy_index_match(): a stamp per entry dedups candidates. */
    uint32_t gen;
    uint32_t *stamp;
    int *cand;
    long candidates;
};

static uint64_t key_hash(int attr, const char *val)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)attr;
    for (const unsigned char *s = (const unsigned char *)val; *s; s++)
        h = (h ^ *s) * 1099511628211ULL;
    return h;
}

static int grow_ints(int **v, int *cap, int need)
{
    if (need <= *cap)
        return 0;
    int nc = *cap ? *cap * 2 : 4;
    while (nc < need)
        nc *= 2;
    int *nv = realloc(*v, sizeof(int) * (size_t)nc);
    if (!nv)
        return -ENOMEM;
    *v = nv;
    *cap = nc;
    return 0;
}

static bucket *find_bucket(zd_policy_index *x, int attr, const char *val)
{
    if (x->nbuckets == 0)
        return NULL;
    size_t mask = (size_t)x->nbuckets - 1;
    for (size_t i = key_hash(attr, val) & mask;; i = (i + 1) & mask) {
        bucket *b = &x->buckets[i];
        if (!b->val)
            return b;
        if (b->attr == attr && strcmp(b->val, val) == 0)
            return b;
    }
}

static int rehash(zd_policy_index *x)
{
    int nn = x->nbuckets ? x->nbuckets * 2 : 64;
    bucket *old = x->buckets;
    int oldn = x->nbuckets;
    x->buckets = calloc((size_t)nn, sizeof(bucket));
    if (!x->buckets) {
        x->buckets = old;
        return -ENOMEM;
    }
    x->nbuckets = nn;
    for (int i = 0; i < oldn; i++)
        if (old[i].val)
            *find_bucket(x, old[i].attr, old[i].val) = old[i];
    free(old);
    return 0;
}

static int add_posting(zd_policy_index *x, int attr, const char *val, int e)
{
    if ((x->used + 1) * 2 > x->nbuckets && rehash(x) != 0)
        return -ENOMEM;
    bucket *b = find_bucket(x, attr, val);
    if (!b->val) {
        b->val = strdup(val);
        if (!b->val)
            return -ENOMEM;
        b->attr = attr;
        x->used++;
    }
    /* A rule may name the same key twice (`a has "x" or a has "x"`): one posting. */
    if (b->n > 0 && b->entries[b->n - 1] == e)
        return 0;
    if (grow_ints(&b->entries, &b->cap, b->n + 1) != 0)
        return -ENOMEM;
    b->entries[b->n++] = e;
    return 0;
}

static int cond_push(cond *c, int attr, const char *val, long weight)
{
    if (c->n == c->cap) {
        int nc = c->cap ? c->cap * 2 : 4;
        pkey *nk = realloc(c->keys, sizeof(pkey) * (size_t)nc);
        if (!nk)
            return -ENOMEM;
        c->keys = nk;
        c->cap = nc;
    }
    c->keys[c->n++] = (pkey){attr, val};
    c->score += weight;
    return 0;
}

/* Expected share of profiles a key lets through, in arbitrary units: a kind lets through about
 * half, a province-level code more than a district-level one, a tag few. */
static long key_weight(const zd_attr *a, const char *val)
{
    if (a->index == ZD_ATTR_KIND)
        return 10000;
    if (a->type == ZD_T_TAGS)
        return 20;
    if (a->type == ZD_T_CODE) {
        long len = (long)strlen(val);
        return len > 0 ? 2000 / len : 2000;
    }
    return 500;
}

/* The necessary condition of node n (not under a `not`), into *out. -ENOMEM on failure. */
static int extract(const zd_rnode *n, cond *out)
{
    memset(out, 0, sizeof(*out));
    switch (n->kind) {
    case ZD_RN_LEAF:
        if (n->negate)
            return 0;
        switch (n->form) {
        case ZD_RL_HAS:
        case ZD_RL_STR_IN:
        case ZD_RL_CODE_IN:
        case ZD_RL_WITHIN:
            if (n->nvals == 0) /* impossible: any profile misses it; keep it checked */
                return 0;
            for (int i = 0; i < n->nvals; i++)
                if (cond_push(out, n->attr->index, n->strs[i], key_weight(n->attr, n->strs[i])) !=
                    0)
                    return -ENOMEM;
            out->usable = true;
            return 0;
        default:
            return 0;
        }
    case ZD_RN_NOT:
        return 0; /* a negation only excludes: it gives no key a match must hit */
    case ZD_RN_AND: {
        /* Any one conjunct's condition is necessary: take the most selective. */
        for (int i = 0; i < n->nkids; i++) {
            cond c;
            if (extract(n->kids[i], &c) != 0) {
                free(out->keys);
                return -ENOMEM;
            }
            if (c.usable && (!out->usable || c.score < out->score)) {
                free(out->keys);
                *out = c;
            } else {
                free(c.keys);
            }
        }
        return 0;
    }
    case ZD_RN_OR:
        /* A match satisfies one of the disjuncts: the union, if every disjunct has one. */
        for (int i = 0; i < n->nkids; i++) {
            cond c;
            if (extract(n->kids[i], &c) != 0 || !c.usable) {
                free(c.keys);
                free(out->keys);
                memset(out, 0, sizeof(*out));
                return c.usable ? -ENOMEM : 0;
            }
            for (int k = 0; k < c.n; k++)
                if (cond_push(out, c.keys[k].attr, c.keys[k].val, 0) != 0) {
                    free(c.keys);
                    return -ENOMEM;
                }
            out->score += c.score;
            free(c.keys);
        }
        out->usable = true;
        return 0;
    }
    return 0;
}

zd_policy_index *zd_policy_index_new(void)
{
    return calloc(1, sizeof(zd_policy_index));
}

void zd_policy_index_free(zd_policy_index *x)
{
    if (!x)
        return;
    for (int i = 0; i < x->nbuckets; i++) {
        free(x->buckets[i].val);
        free(x->buckets[i].entries);
    }
    free(x->buckets);
    free(x->entries);
    free(x->always);
    free(x->stamp);
    free(x->cand);
    free(x);
}

int zd_policy_index_add(zd_policy_index *x, const zd_rule *r, int slot)
{
    if (x->nentries == x->capentries) {
        int nc = x->capentries ? x->capentries * 2 : 64;
        entry *ne = realloc(x->entries, sizeof(entry) * (size_t)nc);
        uint32_t *ns = realloc(x->stamp, sizeof(uint32_t) * (size_t)nc);
        if (ne)
            x->entries = ne;
        if (ns)
            x->stamp = ns;
        if (!ne || !ns)
            return -ENOMEM;
        int *nca = realloc(x->cand, sizeof(int) * (size_t)nc);
        if (!nca)
            return -ENOMEM;
        x->cand = nca;
        x->capentries = nc;
    }
    int e = x->nentries;
    x->entries[e] = (entry){r, slot};
    x->stamp[e] = 0;
    cond c;
    if (extract(r->root, &c) != 0)
        return -ENOMEM;
    int rc = 0;
    if (!c.usable) {
        rc = grow_ints(&x->always, &x->capalways, x->nalways + 1);
        if (rc == 0)
            x->always[x->nalways++] = e;
    } else {
        for (int k = 0; k < c.n && rc == 0; k++)
            rc = add_posting(x, c.keys[k].attr, c.keys[k].val, e);
    }
    free(c.keys);
    if (rc == 0)
        x->nentries++;
    return rc;
}

static void take(zd_policy_index *x, int e, int *ncand)
{
    if (x->stamp[e] == x->gen)
        return;
    x->stamp[e] = x->gen;
    x->cand[(*ncand)++] = e;
}

static void take_key(zd_policy_index *x, int attr, const char *val, int *ncand)
{
    bucket *b = find_bucket(x, attr, val);
    if (!b || !b->val)
        return;
    for (int i = 0; i < b->n; i++)
        take(x, b->entries[i], ncand);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int zd_policy_index_match(zd_policy_index *x, const zd_profile *p, int32_t today, int *out, int cap)
{
    if (x->nentries == 0)
        return 0;
    if (++x->gen == 0) { /* wrapped: old stamps could collide */
        memset(x->stamp, 0, sizeof(uint32_t) * (size_t)x->nentries);
        x->gen = 1;
    }
    int ncand = 0;
    for (int i = 0; i < x->nalways; i++)
        take(x, x->always[i], &ncand);
    const zd_schema *s = x->entries[0].rule->schema;
    for (int a = 0; a < p->nvals && a < s->nattrs && x->used > 0; a++) {
        const zd_value *v = &p->vals[a];
        const zd_attr *at = &s->attrs[a];
        if (!v->present)
            continue;
        if (at->type == ZD_T_KEYWORD && v->str) {
            take_key(x, a, v->str, &ncand);
        } else if (at->type == ZD_T_TAGS) {
            for (int t = 0; t < v->ntags; t++)
                take_key(x, a, v->tags[t], &ncand);
        } else if (at->type == ZD_T_CODE && v->str) {
            /* `within` keys are whole-level prefixes, `=` keys whole codes: every level
             * prefix of the profile's code (the code itself included) finds both. */
            char buf[ZD_CODE_MAX + 1];
            size_t len = strlen(v->str);
            for (int l = 0; l < at->nlevels && (size_t)at->levels[l] <= len; l++) {
                if ((size_t)at->levels[l] > ZD_CODE_MAX)
                    break;
                memcpy(buf, v->str, (size_t)at->levels[l]);
                buf[at->levels[l]] = '\0';
                take_key(x, a, buf, &ncand);
            }
            if (len <= ZD_CODE_MAX &&
                (at->nlevels == 0 || (size_t)at->levels[at->nlevels - 1] < len))
                take_key(x, a, v->str, &ncand);
        }
    }
    x->candidates += ncand;
    qsort(x->cand, (size_t)ncand, sizeof(int), cmp_int);
    int n = 0;
    for (int i = 0; i < ncand; i++) {
        const entry *en = &x->entries[x->cand[i]];
        if (!zd_rule_match(en->rule, p, today))
            continue;
        if (n < cap)
            out[n] = en->slot;
        n++;
    }
    return n;
}

int zd_policy_index_match_all(const zd_policy_index *x, const zd_profile *p, int32_t today,
                              int *out, int cap)
{
    int n = 0;
    for (int i = 0; i < x->nentries; i++) {
        if (!zd_rule_match(x->entries[i].rule, p, today))
            continue;
        if (n < cap)
            out[n] = x->entries[i].slot;
        n++;
    }
    return n;
}

void zd_policy_index_get_stats(const zd_policy_index *x, zd_policy_index_stats *st)
{
    st->rules = x->nentries;
    st->always = x->nalways;
    st->keys = x->used;
    st->candidates = x->candidates;
}
