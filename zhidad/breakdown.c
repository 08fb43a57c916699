/* Preview breakdowns: groups by value with a bounded min-heap of the largest (docs/DESIGN.md,
 * "Bounded previews"), and number or age buckets counted by matcher/audience. */
#include "zhidad/breakdown.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "matcher/audience.h"
#include "zhida/limits.h"

/* Longest value a breakdown group can have: a keyword, a tag or a code prefix. */
#define GROUP_VALUE_MAX ((ZD_KEYWORD_MAX > ZD_CODE_MAX ? ZD_KEYWORD_MAX : ZD_CODE_MAX) + 1)

typedef struct group {
    uint64_t n;
    char value[GROUP_VALUE_MAX];
} group;

/* One breakdown dimension: the `cap` largest groups in a min-heap (the least of them at the
 * root), and the number and total count of all groups, so that the folded rest is exact. The
 * work is one intersection count per distinct value of the field plus O(log cap) per group
 * that enters the heap; nothing is allocated per value. */
typedef struct breakdown_ctx {
    const roaring_bitmap_t *audience;
    group *heap;
    int len, cap;
    uint64_t groups, total;
} breakdown_ctx;

/* < 0 when group (an, av) ranks below (bn, bv): fewer members, or as many and a larger value,
 * so that the answer does not depend on the index's hash order. */
static int rank_cmp(uint64_t an, const char *av, uint64_t bn, const char *bv)
{
    if (an != bn)
        return an < bn ? -1 : 1;
    return -strcmp(av, bv);
}

static void heap_sift_down(group *h, int len, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < len && rank_cmp(h[l].n, h[l].value, h[m].n, h[m].value) < 0)
            m = l;
        if (r < len && rank_cmp(h[r].n, h[r].value, h[m].n, h[m].value) < 0)
            m = r;
        if (m == i)
            return;
        group t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static void heap_sift_up(group *h, int i)
{
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (rank_cmp(h[i].n, h[i].value, h[parent].n, h[parent].value) >= 0)
            return;
        group t = h[i];
        h[i] = h[parent];
        h[parent] = t;
        i = parent;
    }
}

static void breakdown_value(const char *value, const roaring_bitmap_t *bm, void *udata)
{
    breakdown_ctx *b = udata;
    uint64_t n = roaring_bitmap_and_cardinality(bm, b->audience);
    if (!n)
        return;
    b->groups++;
    b->total += n;
    if (b->len < b->cap) {
        group *g = &b->heap[b->len];
        g->n = n;
        snprintf(g->value, sizeof(g->value), "%s", value);
        heap_sift_up(b->heap, b->len++);
    } else if (b->cap > 0 && rank_cmp(b->heap[0].n, b->heap[0].value, n, value) < 0) {
        b->heap[0].n = n;
        snprintf(b->heap[0].value, sizeof(b->heap[0].value), "%s", value);
        heap_sift_down(b->heap, b->len, 0);
    }
}

static int group_desc(const void *a, const void *b)
{
    const group *x = a, *y = b;
    return rank_cmp(y->n, y->value, x->n, x->value);
}

/* Groups the audience by attribute a at `level` into bd[spec], largest groups first, at most
 * `cap` of them; when some were folded, records {"groups", "other_groups", "other"} in
 * *truncated[spec] (created on first use). Returns 0 or -ENOMEM. */
static int breakdown_one(const zd_index *ix, const roaring_bitmap_t *aud, const zd_attr *a,
                         int level, int cap, const char *spec, cJSON *bd, cJSON *out,
                         cJSON **truncated)
{
    breakdown_ctx b = {.audience = aud, .cap = cap};
    if (cap > 0 && !(b.heap = malloc(sizeof(*b.heap) * (size_t)cap)))
        return -ENOMEM;
    zd_index_foreach_value(ix, a->index, level, breakdown_value, &b);
    if (b.len > 1)
        qsort(b.heap, (size_t)b.len, sizeof(*b.heap), group_desc);
    cJSON *dim = cJSON_AddObjectToObject(bd, spec);
    uint64_t shown = 0;
    for (int i = 0; i < b.len && dim; i++) {
        cJSON_AddNumberToObject(dim, b.heap[i].value, (double)b.heap[i].n);
        shown += b.heap[i].n;
    }
    free(b.heap);
    if (!dim)
        return -ENOMEM;
    if (b.groups > (uint64_t)b.len) {
        if (!*truncated && !(*truncated = cJSON_AddObjectToObject(out, "breakdown_truncated")))
            return -ENOMEM;
        cJSON *t = cJSON_AddObjectToObject(*truncated, spec);
        if (!t)
            return -ENOMEM;
        cJSON_AddNumberToObject(t, "groups", (double)b.groups);
        cJSON_AddNumberToObject(t, "other_groups", (double)(b.groups - (uint64_t)b.len));
        cJSON_AddNumberToObject(t, "other", (double)(b.total - shown));
    }
    return 0;
}

/* Answers a 400 about the "breakdown" field with a printf-style message. */
static void reply_breakdown_error(zd_req *req, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_breakdown_error(zd_req *req, const char *code, const char *fmt, ...)
{
    zd_error err;
    char msg[sizeof(err.message)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    zd_error_set(&err, code, "breakdown", "%s", msg);
    zd_req_reply_zderror(req, 400, &err);
}

/* Resolves "field" or "field:level" to an attribute and level; answers errors itself. Bucket
 * entries ("employees:buckets=...", "age(...)...") are matcher/audience's. */
static bool breakdown_spec(zd_req *req, const zd_schema *s, const char *spec, const zd_attr **a,
                           int *level)
{
    char name[ZD_ATTR_NAME_MAX];
    const char *colon = strchr(spec, ':');
    size_t nlen = colon ? (size_t)(colon - spec) : strlen(spec);
    if (nlen == 0 || nlen >= sizeof(name)) {
        reply_breakdown_error(req, "invalid_breakdown", "breakdown \"%.64s\" names no field", spec);
        return false;
    }
    memcpy(name, spec, nlen);
    name[nlen] = '\0';
    *a = zd_schema_find(s, name);
    if (!*a) {
        const char *near = zd_schema_suggest(s, name);
        reply_breakdown_error(req, "unknown_field", "breakdown: unknown field \"%s\"%s%s%s", name,
                              near ? "; did you mean \"" : "", near ? near : "", near ? "\"?" : "");
        return false;
    }
    if ((*a)->type == ZD_T_NUMBER) {
        reply_breakdown_error(req, "invalid_breakdown",
                              "breakdown \"%.64s\": a number is broken down into buckets, e.g. "
                              "\"%s:buckets=0,10,50\"",
                              spec, name);
        return false;
    }
    if ((*a)->type == ZD_T_DATE) {
        reply_breakdown_error(req, "invalid_breakdown",
                              "breakdown \"%.64s\": a date is broken down by age into buckets, "
                              "e.g. \"age(%s):buckets=18,35,60\"",
                              spec, name);
        return false;
    }
    *level = 0;
    if ((*a)->type == ZD_T_CODE) {
        *level = (*a)->breakdown_level;
        if (colon) {
            /* Levels are at most ZD_CODE_MAX: one or two digits, nothing else (atoi would read
             * "6x" as 6 and overflow on a long digit string). */
            const char *d = colon + 1;
            size_t dl = strlen(d);
            *level = -1;
            if (dl >= 1 && dl <= 2 && d[0] >= '0' && d[0] <= '9' &&
                (dl == 1 || (d[1] >= '0' && d[1] <= '9')))
                *level = dl == 1 ? d[0] - '0' : (d[0] - '0') * 10 + (d[1] - '0');
        }
        if (!zd_attr_has_level(*a, *level)) {
            reply_breakdown_error(req, "invalid_breakdown",
                                  "breakdown \"%.64s\": the level after ':' must be one of %s's "
                                  "code lengths",
                                  spec, name);
            return false;
        }
    } else if (colon) {
        reply_breakdown_error(req, "invalid_breakdown",
                              "breakdown \"%.64s\": only codes have levels", spec);
        return false;
    }
    return true;
}

/* One bucket dimension into bd[spec]: {"<b0": n, ..., ">=bn": n, "missing": n}, adding up to
 * the audience. Returns 0, -EINVAL (answered: a bad spec) or -ENOMEM. */
static int buckets_one(zd_req *req, const zd_schema *s, const zd_index *ix,
                       const roaring_bitmap_t *aud, int32_t today, const char *spec, cJSON *bd)
{
    zd_buckets b;
    zd_error err;
    if (zd_buckets_parse(s, spec, &b, &err) != 0) {
        zd_req_reply_zderror(req, 400, &err);
        return -EINVAL;
    }
    uint64_t counts[ZD_PREVIEW_BUCKETS_MAX + 2];
    if (zd_buckets_count(&b, ix, aud, today, counts) != 0)
        return -ENOMEM;
    cJSON *dim = cJSON_AddObjectToObject(bd, spec);
    for (int i = 0; dim && i <= b.n; i++) {
        char label[80];
        cJSON_AddNumberToObject(dim, zd_buckets_label(&b, i, label, sizeof(label)),
                                (double)counts[i]);
    }
    if (!dim || !cJSON_AddNumberToObject(dim, "missing", (double)counts[b.n + 1]))
        return -ENOMEM;
    return 0;
}

int zd_breakdown_check(zd_req *req, const zd_schema *s, const char *spec, int *scans)
{
    *scans = 0;
    if (zd_buckets_is_spec(spec)) {
        zd_buckets b;
        zd_error err;
        if (zd_buckets_parse(s, spec, &b, &err) != 0) {
            zd_req_reply_zderror(req, 400, &err);
            return -EINVAL;
        }
        *scans = b.n;
        return 0;
    }
    const zd_attr *a;
    int level;
    return breakdown_spec(req, s, spec, &a, &level) ? 0 : -EINVAL;
}

int zd_breakdown_add(zd_req *req, const zd_schema *s, const zd_index *ix,
                     const roaring_bitmap_t *aud, int32_t today, const char *spec, int cap,
                     cJSON *bd, cJSON *out, cJSON **truncated)
{
    if (zd_buckets_is_spec(spec))
        return buckets_one(req, s, ix, aud, today, spec, bd);
    const zd_attr *a;
    int level;
    if (!breakdown_spec(req, s, spec, &a, &level))
        return -EINVAL;
    return breakdown_one(ix, aud, a, level, cap, spec, bd, out, truncated);
}
