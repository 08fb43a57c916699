/* Unit tests for the bitmap index: lookups, updates and deletes, the id table, and the
 * bit-sliced ranges checked against brute force on random data; ends with a timing print. */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/date.h"
#include "profiles/index.h"
#include "tests/unit/check.h"
#include "tests/unit/index_fixture.h"

/* ---- equality of two indexes through the public API ---------------------------------- */

typedef struct eq_ctx {
    const zd_index *other;
    int attr, level, type;
    int values, mismatches;
} eq_ctx;

static void eq_value(const char *value, const roaring_bitmap_t *bm, void *udata)
{
    eq_ctx *c = udata;
    const roaring_bitmap_t *o = c->type == ZD_T_CODE
                                    ? zd_index_code_prefix(c->other, c->attr, value)
                                    : zd_index_keyword(c->other, c->attr, value);
    c->values++;
    if (!o || !roaring_bitmap_equals(o, bm))
        c->mismatches++;
}

static bool bm_equal(const roaring_bitmap_t *a, const roaring_bitmap_t *b)
{
    if (!a || !b)
        return card(a) == card(b);
    return roaring_bitmap_equals(a, b);
}

/* True when a and b answer the same for every lookup (numbers probed at the given values). */
static bool index_equal(const zd_index *a, const zd_index *b, const zd_schema *s,
                        const int64_t *probes, int nprobes)
{
    bool ok = roaring_bitmap_equals(zd_index_universe(a), zd_index_universe(b));
    for (int i = 0; i < s->nattrs; i++) {
        const zd_attr *at = &s->attrs[i];
        ok = ok && bm_equal(zd_index_exists(a, i), zd_index_exists(b, i));
        if (at->type == ZD_T_NUMBER || at->type == ZD_T_DATE) {
            for (int k = 0; k < nprobes; k++)
                for (int op = ZD_CMP_LT; op <= ZD_CMP_EQ; op++) {
                    roaring_bitmap_t *ra = zd_index_range(a, i, (zd_cmp)op, probes[k], NULL);
                    roaring_bitmap_t *rb = zd_index_range(b, i, (zd_cmp)op, probes[k], NULL);
                    ok = ok && roaring_bitmap_equals(ra, rb);
                    roaring_bitmap_free(ra);
                    roaring_bitmap_free(rb);
                }
            continue;
        }
        int nlev = at->type == ZD_T_CODE ? at->nlevels : 1;
        for (int l = 0; l < nlev; l++) {
            int level = at->type == ZD_T_CODE ? at->levels[l] : 0;
            eq_ctx ca = {b, i, level, (int)at->type, 0, 0}, cb = {a, i, level, (int)at->type, 0, 0};
            zd_index_foreach_value(a, i, level, eq_value, &ca);
            zd_index_foreach_value(b, i, level, eq_value, &cb);
            ok = ok && ca.mismatches == 0 && cb.mismatches == 0 && ca.values == cb.values;
        }
        if (at->type == ZD_T_CODE)
            for (int len = 0; len <= ZD_CODE_MAX; len++)
                ok = ok && bm_equal(zd_index_code_len(a, i, len), zd_index_code_len(b, i, len));
    }
    return ok;
}

/* ---- lookups, updates, deletes -------------------------------------------------------- */

typedef struct collect {
    int n;
    char keys[16][32];
    uint64_t cards[16];
} collect;

static void collect_fn(const char *value, const roaring_bitmap_t *bm, void *udata)
{
    collect *c = udata;
    if (c->n < 16) {
        snprintf(c->keys[c->n], sizeof(c->keys[0]), "%s", value);
        c->cards[c->n] = roaring_bitmap_get_cardinality(bm);
    }
    c->n++;
}

static uint64_t collect_card(const collect *c, const char *key)
{
    for (int i = 0; i < c->n && i < 16; i++)
        if (strcmp(c->keys[i], key) == 0)
            return c->cards[i];
    return 0;
}

static void test_lookups(const zd_schema *s)
{
    zd_index *ix = zd_index_new(s);
    CHECK(ix != NULL);
    uint32_t g1 = zd_gid(0, 1), g2 = zd_gid(5, 7), g3 = zd_gid(63, 70000);

    zd_profile *e1 = tp_new("e0000001");
    tp_str(e1, A_KIND, "enterprise");
    tp_str(e1, A_REGION, "330106001");
    tp_str(e1, A_INDUSTRY, "C1311");
    tp_str(e1, A_SCALE, "small");
    tp_num(e1, A_EMPLOYEES, 40);
    tp_num(e1, A_FOUNDED, zd_date_from_ymd(2019, 5, 1));
    tp_tags(e1, 2, "hightech", "srdi");

    zd_profile *e2 = tp_new("e0000002");
    tp_str(e2, A_KIND, "enterprise");
    tp_str(e2, A_REGION, "330108");
    tp_str(e2, A_INDUSTRY, "I65");
    tp_num(e2, A_EMPLOYEES, 300);
    tp_tags(e2, 1, "hightech");

    zd_profile *c1 = tp_new("c0000001");
    tp_str(c1, A_KIND, "citizen");
    tp_str(c1, A_REGION, "330201");
    tp_num(c1, A_BIRTH, zd_date_from_ymd(1962, 3, 8));

    CHECK_INT(zd_index_put(ix, g1, NULL, e1), 0);
    CHECK_INT(zd_index_put(ix, g2, NULL, e2), 0);
    CHECK_INT(zd_index_put(ix, g3, NULL, c1), 0);

    CHECK_INT(card(zd_index_universe(ix)), 3);
    CHECK_INT(card(zd_index_keyword(ix, A_KIND, "enterprise")), 2);
    CHECK(has(zd_index_keyword(ix, A_KIND, "citizen"), g3));
    CHECK(zd_index_keyword(ix, A_KIND, "nobody") == NULL);
    CHECK(zd_index_keyword(ix, A_REGION, "330106001") == NULL); /* not a keyword attribute */
    CHECK_INT(card(zd_index_keyword(ix, A_TAGS, "hightech")), 2);
    CHECK_INT(card(zd_index_keyword(ix, A_TAGS, "srdi")), 1);
    CHECK(has(zd_index_keyword(ix, A_TAGS, "srdi"), g1));
    CHECK_INT(card(zd_index_exists(ix, A_SCALE)), 1);
    CHECK_INT(card(zd_index_exists(ix, A_EMPLOYEES)), 2);
    CHECK_INT(card(zd_index_exists(ix, A_BIRTH)), 1);
    CHECK(has(zd_index_exists(ix, A_BIRTH), g3));
    CHECK(zd_index_exists(ix, A_N) == NULL);

    /* Code prefixes at every level up to the code itself, and code lengths. */
    CHECK_INT(card(zd_index_code_prefix(ix, A_REGION, "33")), 3);
    CHECK_INT(card(zd_index_code_prefix(ix, A_REGION, "3301")), 2);
    CHECK_INT(card(zd_index_code_prefix(ix, A_REGION, "330106")), 1);
    CHECK(has(zd_index_code_prefix(ix, A_REGION, "330106001"), g1));
    CHECK(zd_index_code_prefix(ix, A_REGION, "330") == NULL);
    CHECK(zd_index_code_prefix(ix, A_REGION, "3301060") == NULL);
    CHECK(zd_index_code_prefix(ix, A_REGION, "330106001000") == NULL);
    CHECK_INT(card(zd_index_code_len(ix, A_REGION, 9)), 1);
    CHECK_INT(card(zd_index_code_len(ix, A_REGION, 6)), 2);
    CHECK(zd_index_code_len(ix, A_REGION, 12) == NULL);
    CHECK(zd_index_code_len(ix, A_REGION, 99) == NULL);
    CHECK(has(zd_index_code_prefix(ix, A_INDUSTRY, "C"), g1));
    CHECK(has(zd_index_code_prefix(ix, A_INDUSTRY, "C13"), g1));
    CHECK(has(zd_index_code_prefix(ix, A_INDUSTRY, "C131"), g1));
    CHECK(has(zd_index_code_prefix(ix, A_INDUSTRY, "C1311"), g1));
    CHECK(has(zd_index_code_prefix(ix, A_INDUSTRY, "I65"), g2));
    CHECK(zd_index_code_prefix(ix, A_INDUSTRY, "I6") == NULL);
    CHECK(has(zd_index_code_len(ix, A_INDUSTRY, 3), g2));

    /* Numbers and dates. */
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_LT, 300), 1);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_LE, 300), 2);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_EQ, 40), 1);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_GT, 40), 1);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_GE, -5), 2);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_LT, INT64_MAX), 2);
    CHECK(range_has(ix, A_BIRTH, ZD_CMP_LE, zd_date_from_ymd(1965, 1, 1), g3));
    CHECK_INT(range_card(ix, A_BIRTH, ZD_CMP_GT, zd_date_from_ymd(1962, 3, 8)), 0);
    CHECK_INT(range_card(ix, A_KIND, ZD_CMP_EQ, 0), 0); /* not a numeric attribute */

    /* Ids. */
    CHECK_STR(zd_index_id(ix, g1), "e0000001");
    CHECK_STR(zd_index_id(ix, g3), "c0000001");
    CHECK(zd_index_id(ix, zd_gid(0, 2)) == NULL);
    CHECK(zd_index_id(ix, zd_gid(40, 123456)) == NULL);

    /* foreach_value: keywords, tags, and code prefixes of exactly one level. */
    collect c = {0};
    zd_index_foreach_value(ix, A_KIND, 0, collect_fn, &c);
    CHECK_INT(c.n, 2);
    CHECK_INT(collect_card(&c, "enterprise"), 2);
    CHECK_INT(collect_card(&c, "citizen"), 1);
    memset(&c, 0, sizeof(c));
    zd_index_foreach_value(ix, A_REGION, 4, collect_fn, &c);
    CHECK_INT(c.n, 2);
    CHECK_INT(collect_card(&c, "3301"), 2);
    CHECK_INT(collect_card(&c, "3302"), 1);
    memset(&c, 0, sizeof(c));
    zd_index_foreach_value(ix, A_REGION, 2, collect_fn, &c);
    CHECK_INT(c.n, 1);
    CHECK_INT(collect_card(&c, "33"), 3);
    memset(&c, 0, sizeof(c));
    zd_index_foreach_value(ix, A_REGION, 9, collect_fn, &c);
    CHECK_INT(c.n, 1);
    memset(&c, 0, sizeof(c));
    zd_index_foreach_value(ix, A_INDUSTRY, 1, collect_fn, &c);
    CHECK_INT(c.n, 2);
    CHECK_INT(collect_card(&c, "C"), 1);
    CHECK_INT(collect_card(&c, "I"), 1);
    memset(&c, 0, sizeof(c));
    zd_index_foreach_value(ix, A_TAGS, 0, collect_fn, &c);
    CHECK_INT(c.n, 2);
    memset(&c, 0, sizeof(c));
    zd_index_foreach_value(ix, A_EMPLOYEES, 0, collect_fn, &c);
    CHECK_INT(c.n, 0);

    /* An update moves memberships: region, tags, keyword, number, a value dropped. */
    zd_profile *e1b = tp_copy(e1);
    tp_str(e1b, A_REGION, "330108");
    tp_tags(e1b, 2, "li", "srdi");
    tp_str(e1b, A_SCALE, NULL);
    tp_num(e1b, A_EMPLOYEES, 301);
    for (int round = 0; round < 2; round++) {
        /* The second round replays the same change: nothing may move. */
        CHECK_INT(zd_index_put(ix, g1, e1, e1b), 0);
        CHECK_INT(card(zd_index_universe(ix)), 3);
        CHECK_INT(card(zd_index_code_prefix(ix, A_REGION, "3301")), 2);
        CHECK(zd_index_code_prefix(ix, A_REGION, "330106") == NULL);
        CHECK(zd_index_code_prefix(ix, A_REGION, "330106001") == NULL);
        CHECK_INT(card(zd_index_code_prefix(ix, A_REGION, "330108")), 2);
        CHECK(zd_index_code_len(ix, A_REGION, 9) == NULL);
        CHECK_INT(card(zd_index_code_len(ix, A_REGION, 6)), 3);
        CHECK_INT(card(zd_index_keyword(ix, A_TAGS, "hightech")), 1);
        CHECK(!has(zd_index_keyword(ix, A_TAGS, "hightech"), g1));
        CHECK(has(zd_index_keyword(ix, A_TAGS, "srdi"), g1));
        CHECK(has(zd_index_keyword(ix, A_TAGS, "li"), g1));
        CHECK(zd_index_keyword(ix, A_SCALE, "small") == NULL);
        CHECK_INT(card(zd_index_exists(ix, A_SCALE)), 0);
        CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_EQ, 40), 0);
        CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_EQ, 301), 1);
        CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_GE, 300), 2);
        CHECK(has(zd_index_code_prefix(ix, A_INDUSTRY, "C1311"), g1));
    }

    /* Delete with the old profile: every membership goes. */
    CHECK_INT(zd_index_del(ix, g1, e1b), 0);
    CHECK_INT(card(zd_index_universe(ix)), 2);
    CHECK(zd_index_id(ix, g1) == NULL);
    CHECK(zd_index_keyword(ix, A_TAGS, "srdi") == NULL);
    CHECK(zd_index_keyword(ix, A_TAGS, "li") == NULL);
    CHECK(zd_index_code_prefix(ix, A_INDUSTRY, "C") == NULL);
    CHECK_INT(card(zd_index_code_prefix(ix, A_REGION, "330108")), 1);
    CHECK(!has(zd_index_exists(ix, A_EMPLOYEES), g1));
    CHECK(!has(zd_index_exists(ix, A_FOUNDED), g1));
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_GE, 0), 1);
    CHECK_INT(range_card(ix, A_FOUNDED, ZD_CMP_GE, INT64_MIN), 0);

    /* Re-put, then delete without the old profile: the gid is scrubbed from everything. */
    CHECK_INT(zd_index_put(ix, g1, NULL, e1), 0);
    CHECK_STR(zd_index_id(ix, g1), "e0000001");
    CHECK(has(zd_index_keyword(ix, A_TAGS, "srdi"), g1));
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_EQ, 40), 1);
    CHECK_INT(zd_index_del(ix, g1, NULL), 0);
    CHECK(zd_index_id(ix, g1) == NULL);
    CHECK(!has(zd_index_universe(ix), g1));
    CHECK(zd_index_keyword(ix, A_TAGS, "srdi") == NULL);
    CHECK(zd_index_keyword(ix, A_SCALE, "small") == NULL);
    CHECK(zd_index_code_prefix(ix, A_REGION, "330106") == NULL);
    CHECK(zd_index_code_len(ix, A_REGION, 9) == NULL);
    CHECK(!has(zd_index_code_prefix(ix, A_REGION, "33"), g1));
    CHECK_INT(card(zd_index_code_prefix(ix, A_REGION, "33")), 2);
    CHECK_INT(card(zd_index_keyword(ix, A_TAGS, "hightech")), 1);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_EQ, 40), 0);
    CHECK_INT(card(zd_index_exists(ix, A_FOUNDED)), 0);

    /* put(old, NULL) deletes. */
    CHECK_INT(zd_index_put(ix, g2, e2, NULL), 0);
    CHECK(zd_index_id(ix, g2) == NULL);
    CHECK_INT(card(zd_index_universe(ix)), 1);

    /* Stats and optimize. */
    zd_index_stats st;
    zd_index_get_stats(ix, &st);
    CHECK_INT(st.profiles, 1);
    CHECK(st.bitmaps > 0);
    CHECK(st.total_bytes >= st.bitmap_bytes + st.id_bytes);
    zd_index_optimize(ix);
    CHECK_STR(zd_index_id(ix, g3), "c0000001");
    CHECK(has(zd_index_keyword(ix, A_KIND, "citizen"), g3));

    /* Clear empties everything, and the index is usable afterwards. */
    zd_index_clear(ix);
    CHECK_INT(card(zd_index_universe(ix)), 0);
    CHECK(zd_index_keyword(ix, A_KIND, "citizen") == NULL);
    CHECK(zd_index_code_prefix(ix, A_REGION, "33") == NULL);
    CHECK(zd_index_id(ix, g3) == NULL);
    CHECK_INT(card(zd_index_exists(ix, A_BIRTH)), 0);
    CHECK_INT(range_card(ix, A_BIRTH, ZD_CMP_GE, INT64_MIN), 0);
    CHECK_INT(zd_index_put(ix, g3, NULL, c1), 0);
    CHECK(has(zd_index_keyword(ix, A_KIND, "citizen"), g3));
    CHECK(range_has(ix, A_BIRTH, ZD_CMP_EQ, zd_date_from_ymd(1962, 3, 8), g3));
    zd_index_get_stats(ix, &st);
    CHECK_INT(st.profiles, 1);

    tp_free(e1);
    tp_free(e1b);
    tp_free(e2);
    tp_free(c1);
    zd_index_free(ix);
    zd_index_free(NULL);
}

/* Replaying changes out of order converges to the same index as applying the last state. */
static void test_replay(const zd_schema *s)
{
    uint32_t g = zd_gid(9, 4242);
    zd_profile *x = tp_new("p1"), *y, *z;
    tp_str(x, A_KIND, "enterprise");
    tp_str(x, A_REGION, "330106001");
    tp_tags(x, 2, "a", "b");
    tp_num(x, A_EMPLOYEES, 5);
    y = tp_copy(x);
    tp_str(y, A_REGION, "330106002");
    tp_tags(y, 2, "b", "c");
    tp_num(y, A_EMPLOYEES, 1000);
    tp_str(y, A_SCALE, "micro");
    z = tp_copy(y);
    tp_str(z, A_REGION, "3302");
    tp_tags(z, 1, "a");
    tp_num(z, A_EMPLOYEES, 7);
    tp_str(z, A_KIND, "citizen");

    zd_index *ix = zd_index_new(s), *want = zd_index_new(s);
    /* Neighbours that share values, so that wrong removals would show. */
    zd_profile *n = tp_copy(y);
    free(n->id);
    n->id = strdup("p2");
    zd_index_put(ix, g + 1, NULL, n);
    zd_index_put(want, g + 1, NULL, n);

    zd_index_put(ix, g, NULL, x);
    zd_index_put(ix, g, x, y); /* applied locally */
    zd_index_put(ix, g, y, z);
    zd_index_put(ix, g, x, y); /* the stream replays both */
    zd_index_put(ix, g, y, z);
    zd_index_put(ix, g, y, z);
    zd_index_put(want, g, NULL, z);
    int64_t probes[] = {INT64_MIN, -1, 0, 4, 5, 6, 7, 8, 999, 1000, 1001, INT64_MAX};
    CHECK(index_equal(ix, want, s, probes, (int)(sizeof(probes) / sizeof(probes[0]))));
    CHECK_STR(zd_index_id(ix, g), "p1");
    zd_index *empty = zd_index_new(s);
    CHECK(!index_equal(ix, empty, s, probes, 1));
    zd_index_free(empty);

    zd_index_free(ix);
    zd_index_free(want);
    tp_free(n);
    tp_free(x);
    tp_free(y);
    tp_free(z);
}

/* ---- the id table ---------------------------------------------------------------------- */

static void test_ids(const zd_schema *s)
{
    enum { N = 6000 };
    zd_index *ix = zd_index_new(s);
    static char want[N][40];
    zd_profile *p = tp_new("x");
    int bad = 0;
    /* Many rounds of replace and delete force arena compactions. */
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < N; i++) {
            uint32_t gid = zd_gid(i % 3, (uint32_t)(i / 3) * 7);
            if (rnd_below(4) == 0) {
                zd_index_del(ix, gid, NULL);
                want[i][0] = '\0';
            } else if (round == 0 || rnd_below(3) == 0) {
                snprintf(want[i], sizeof(want[i]), "id-%d-%d-%llu", round, i,
                         (unsigned long long)rnd_below(1000000));
                free(p->id);
                p->id = strdup(want[i]);
                CHECK_INT(zd_index_put(ix, gid, NULL, p), 0);
            }
        }
        for (int i = 0; i < N; i++) {
            const char *got = zd_index_id(ix, zd_gid(i % 3, (uint32_t)(i / 3) * 7));
            if (want[i][0] ? !got || strcmp(got, want[i]) != 0 : got != NULL)
                bad++;
        }
        if (round == 10)
            zd_index_optimize(ix);
    }
    CHECK_INT(bad, 0);
    zd_index_stats st;
    zd_index_get_stats(ix, &st);
    /* Compaction keeps the arenas near the live bytes: 4 bytes of offset per slot + the id. */
    CHECK(st.id_bytes < (uint64_t)N * 7 * 4 + (uint64_t)N * 40 * 2);
    tp_free(p);
    zd_index_free(ix);
}

/* Many distinct keywords and tags, added and removed in random order, exercise the value map's
 * growth and its backward-shift deletion; every lookup must still find exactly its gids. */
static void test_value_map(const zd_schema *s)
{
    enum { N = 3000, V = 700 };
    static int val[N];
    zd_index *ix = zd_index_new(s);
    zd_profile *p = tp_new("v");
    char kw[32], tag[32];
    for (int i = 0; i < N; i++)
        val[i] = -1;
    for (int step = 0; step < 4 * N; step++) {
        int i = (int)rnd_below(N);
        zd_profile *old = NULL;
        if (val[i] >= 0) {
            old = tp_new("v");
            snprintf(kw, sizeof(kw), "k%d", val[i]);
            snprintf(tag, sizeof(tag), "t%d", val[i] % 50);
            tp_str(old, A_SCALE, kw);
            tp_tags(old, 1, tag);
        }
        if (rnd_below(3) == 0) {
            zd_index_del(ix, zd_gid(4, (uint32_t)i), rnd_below(4) ? old : NULL);
            val[i] = -1;
        } else {
            val[i] = (int)rnd_below(V);
            snprintf(kw, sizeof(kw), "k%d", val[i]);
            snprintf(tag, sizeof(tag), "t%d", val[i] % 50);
            tp_str(p, A_SCALE, kw);
            tp_tags(p, 1, tag);
            zd_index_put(ix, zd_gid(4, (uint32_t)i), old, p);
        }
        tp_free(old);
    }
    int bad = 0, values = 0;
    for (int v = 0; v < V; v++) {
        snprintf(kw, sizeof(kw), "k%d", v);
        roaring_bitmap_t *want = roaring_bitmap_create();
        for (int i = 0; i < N; i++)
            if (val[i] == v)
                roaring_bitmap_add(want, zd_gid(4, (uint32_t)i));
        const roaring_bitmap_t *got = zd_index_keyword(ix, A_SCALE, kw);
        values += got != NULL;
        if (!bm_equal(got, want) || (got && roaring_bitmap_is_empty(got)))
            bad++;
        roaring_bitmap_free(want);
    }
    CHECK_INT(bad, 0);
    collect c = {0};
    zd_index_foreach_value(ix, A_SCALE, 0, collect_fn, &c);
    CHECK_INT(c.n, values);
    CHECK(values > V / 2);
    memset(&c, 0, sizeof(c));
    zd_index_foreach_value(ix, A_TAGS, 0, collect_fn, &c);
    CHECK_INT(c.n, 50);
    tp_free(p);
    zd_index_free(ix);
}

/* A code whose length is not a level (validation would reject it) is still found exactly. */
static void test_odd_code(const zd_schema *s)
{
    zd_index *ix = zd_index_new(s);
    zd_profile *p = tp_new("o");
    tp_str(p, A_REGION, "3301061");
    uint32_t g = zd_gid(2, 9);
    CHECK_INT(zd_index_put(ix, g, NULL, p), 0);
    CHECK(has(zd_index_code_prefix(ix, A_REGION, "330106"), g));
    CHECK(has(zd_index_code_prefix(ix, A_REGION, "3301061"), g));
    CHECK(has(zd_index_code_len(ix, A_REGION, 7), g));
    zd_profile *q = tp_copy(p);
    tp_str(q, A_REGION, "3301062");
    CHECK_INT(zd_index_put(ix, g, p, q), 0);
    CHECK(zd_index_code_prefix(ix, A_REGION, "3301061") == NULL);
    CHECK(has(zd_index_code_prefix(ix, A_REGION, "3301062"), g));
    CHECK(has(zd_index_code_len(ix, A_REGION, 7), g));
    CHECK(has(zd_index_code_prefix(ix, A_REGION, "330106"), g));
    tp_free(p);
    tp_free(q);
    zd_index_free(ix);
}

/* ---- ranges against brute force ------------------------------------------------------ */

#define RN_MAX 12000

typedef struct model {
    int n;
    uint32_t gid[RN_MAX];
    bool live[RN_MAX];
    int64_t val[RN_MAX];
} model;

static int64_t base_of(const zd_schema *s, int attr)
{
    return s->attrs[attr].type == ZD_T_NUMBER ? s->attrs[attr].min : zd_date_from_ymd(1800, 1, 1);
}

/* A value from one of several shapes: near the base (including just below it), small, full
 * 64-bit, the extremes, or growing with the round so that depth grows between queries. */
static int64_t random_value(int64_t base, int mode, int round)
{
    static const int64_t extremes[] = {INT64_MIN, INT64_MIN + 1, -1,       0,
                                       1,         INT64_MAX - 1, INT64_MAX};
    switch (mode) {
    case 0:
        return base + (int64_t)rnd_below(120) - 10;
    case 1:
        return (int64_t)rnd();
    case 2:
        return rnd_below(3) ? extremes[rnd_below(7)] : (int64_t)rnd_below(50) - 25;
    case 3:
        return base + (int64_t)rnd_below((uint64_t)1 << (round % 40 + 1));
    default:
        return (int64_t)(rnd() >> rnd_below(64)) * (rnd_below(2) ? 1 : -1);
    }
}

static bool cmp_ok(int64_t x, zd_cmp op, int64_t v)
{
    switch (op) {
    case ZD_CMP_LT:
        return x < v;
    case ZD_CMP_LE:
        return x <= v;
    case ZD_CMP_GT:
        return x > v;
    case ZD_CMP_GE:
        return x >= v;
    case ZD_CMP_EQ:
        return x == v;
    }
    return false;
}

/* Random puts, updates and deletes, each round followed by random queries checked against
 * brute force. Two layouts: gids scattered over all partitions (every container an array) and
 * gids packed into two chunks (bitset containers, and run containers after optimize). */
static void range_trial(const zd_schema *s, int attr, int mode, bool dense, int *cases, int *wrong)
{
    static model m;
    int64_t base = base_of(s, attr);
    zd_index *ix = zd_index_new(s);
    zd_profile *p = tp_new("r");
    memset(&m, 0, sizeof(m));
    m.n = dense ? RN_MAX : 1500;
    for (int i = 0; i < m.n; i++)
        m.gid[i] = dense ? zd_gid(i < RN_MAX / 3, (uint32_t)i)
                         : zd_gid((int)rnd_below(ZD_PARTITIONS_MAX),
                                  (uint32_t)i * 37 + (uint32_t)rnd_below(37));
    int rounds = dense ? 10 : 40;
    for (int round = 0; round < rounds; round++) {
        /* The first round of the dense layout fills it, so its containers are bitsets. */
        int changes = dense && round == 0 ? m.n : m.n / 10;
        for (int k = 0; k < changes; k++) {
            int i = changes == m.n ? k : (int)rnd_below((uint64_t)m.n);
            zd_profile *old = NULL;
            if (m.live[i]) {
                old = tp_new("r");
                tp_num(old, attr, m.val[i]);
            }
            uint64_t what = round == 0 ? 9 : rnd_below(10);
            if (what == 0) {
                zd_index_del(ix, m.gid[i], rnd_below(2) ? old : NULL);
                m.live[i] = false;
            } else if (what == 1) {
                zd_profile *bare = tp_new("r"); /* lacks the attribute */
                zd_index_put(ix, m.gid[i], old, bare);
                tp_free(bare);
                m.live[i] = false;
            } else {
                m.val[i] = random_value(base, mode, round);
                tp_num(p, attr, m.val[i]);
                CHECK_INT(zd_index_put(ix, m.gid[i], old, p), 0);
                m.live[i] = true;
            }
            tp_free(old);
        }
        if (round == rounds / 2)
            zd_index_optimize(ix);
        for (int q = 0; q < 25; q++) {
            zd_cmp op = (zd_cmp)rnd_below(5);
            int64_t v;
            uint64_t how = rnd_below(4);
            if (how == 0) {
                v = random_value(base, mode, round);
            } else if (how == 1) {
                v = random_value(base, (int)rnd_below(5), round);
            } else {
                int64_t d = (int64_t)rnd_below(3) - 1;
                v = m.val[rnd_below((uint64_t)m.n)];
                if ((d > 0 && v < INT64_MAX) || (d < 0 && v > INT64_MIN))
                    v += d;
            }
            roaring_bitmap_t *within = NULL;
            if (rnd_below(4) == 0) {
                /* A stretch of gids: run containers. */
                uint32_t from = m.gid[rnd_below((uint64_t)m.n)];
                within = roaring_bitmap_from_range(from, from + (uint32_t)rnd_below(9000) + 1, 1);
                roaring_bitmap_run_optimize(within);
            } else if (rnd_below(2)) {
                /* Dense or sparse hints, with gids that are not members. */
                uint64_t keep = rnd_below(2) ? 2 : 16;
                within = roaring_bitmap_create();
                for (int j = 0; j < m.n; j++)
                    if (rnd_below(keep) == 0)
                        roaring_bitmap_add(within, m.gid[j]);
                roaring_bitmap_add(within, zd_gid(1, 299999));
                roaring_bitmap_add(within, zd_gid(63, 5));
                if (rnd_below(2))
                    roaring_bitmap_run_optimize(within);
            }
            roaring_bitmap_t *got = zd_index_range(ix, attr, op, v, within);
            roaring_bitmap_t *exp = roaring_bitmap_create();
            for (int j = 0; j < m.n; j++)
                if (m.live[j] && cmp_ok(m.val[j], op, v) &&
                    (!within || roaring_bitmap_contains(within, m.gid[j])))
                    roaring_bitmap_add(exp, m.gid[j]);
            (*cases)++;
            if (!got || !roaring_bitmap_equals(got, exp)) {
                if ((*wrong)++ < 5)
                    fprintf(stderr,
                            "range mismatch: attr %d mode %d dense %d op %d v %lld: %llu vs "
                            "%llu\n",
                            attr, mode, dense, (int)op, (long long)v, (unsigned long long)card(got),
                            (unsigned long long)card(exp));
            } else if (q % 5 == 0) {
                /* The result is built container by container: CRoaring must be able to keep
                 * working on it. */
                roaring_bitmap_t *u = roaring_bitmap_or(got, exp);
                roaring_bitmap_run_optimize(got);
                roaring_bitmap_add(got, zd_gid(63, 1));
                roaring_bitmap_andnot_inplace(got, exp);
                if (!roaring_bitmap_equals(u, exp) || card(got) != 1 ||
                    roaring_bitmap_and_cardinality(u, exp) != card(exp))
                    (*wrong)++;
                roaring_bitmap_free(u);
            }
            if (got)
                roaring_bitmap_free(got);
            roaring_bitmap_free(exp);
            if (within)
                roaring_bitmap_free(within);
        }
    }
    tp_free(p);
    zd_index_free(ix);
}

static void test_ranges(const zd_schema *s)
{
    int cases = 0, wrong = 0;
    for (int dense = 0; dense < 2; dense++)
        for (int attr_i = 0; attr_i < 2; attr_i++)
            for (int mode = 0; mode < 5; mode++)
                range_trial(s, attr_i ? A_BIRTH : A_EMPLOYEES, mode, dense, &cases, &wrong);
    CHECK(cases >= 5000);
    CHECK_INT(wrong, 0);
}

/* ---- threshold bitmaps against brute force ------------------------------------------- */

/* Round boundaries as the index places them: 0 and +-{1,2,3,5} x 10^k, scaled. */
static int round_bounds(int decimals, int64_t *out, int max)
{
    static const int64_t ms[] = {1, 2, 3, 5};
    int64_t scale = 1;
    for (int d = 0; d < decimals; d++)
        scale *= 10;
    int n = 0;
    out[n++] = 0;
    for (int64_t p = scale; n + 8 <= max; p *= 10) {
        for (int i = 0; i < 4; i++)
            if (p <= INT64_MAX / ms[i]) {
                out[n++] = p * ms[i];
                out[n++] = -p * ms[i];
            }
        if (p > INT64_MAX / 10)
            break;
    }
    return n;
}

/* A value near a round boundary (b - 1, b, b + 1), log-skewed, negative, or extreme; `top`
 * caps the magnitude of the boundaries used so that larger values arrive round by round. */
static int64_t thr_value(const int64_t *bounds, int nb, int64_t top)
{
    int64_t b;
    do
        b = bounds[rnd_below((uint64_t)nb)];
    while (b > top || b < -top);
    switch (rnd_below(6)) {
    case 0:
    case 1:
    case 2:
        return b + (int64_t)rnd_below(3) - 1;
    case 3:
        return (int64_t)(rnd() % (uint64_t)(top > 0 ? top : 1));
    case 4:
        return -(int64_t)rnd_below(1000);
    default:
        return rnd_below(20) ? b + (int64_t)rnd_below(7) - 3
                             : (rnd_below(2) ? INT64_MAX - (int64_t)rnd_below(2)
                                             : INT64_MIN + (int64_t)rnd_below(2));
    }
}

/* One trial: puts, updates across bins, deletes and drops; after every round, queries at
 * b - 1, b, b + 1 of many boundaries (and random values), with and without a hint. Values grow
 * round by round so that top boundaries are added lazily; `shift` moves everyone up and back
 * down in the middle so that the stored sides flip during updates, not only in optimize. */
static void thr_trial(const zd_schema *base_schema, int decimals, int64_t min, bool dense,
                      int *cases, int *wrong)
{
    static model m;
    zd_schema *s = malloc(sizeof(*s));
    memcpy(s, base_schema, sizeof(*s));
    s->attrs[A_EMPLOYEES].decimals = decimals;
    s->attrs[A_EMPLOYEES].min = min;
    int64_t bounds[200];
    int nb = round_bounds(decimals, bounds, 200);
    zd_index *ix = zd_index_new(s);
    zd_profile *p = tp_new("t");
    memset(&m, 0, sizeof(m));
    m.n = dense ? 6000 : 1500;
    for (int i = 0; i < m.n; i++)
        m.gid[i] = dense ? zd_gid(i % 2, (uint32_t)(i / 2))
                         : zd_gid((int)rnd_below(ZD_PARTITIONS_MAX),
                                  (uint32_t)i * 37 + (uint32_t)rnd_below(37));
    int64_t scale = 1;
    for (int d = 0; d < decimals; d++)
        scale *= 10;
    int rounds = 14;
    for (int round = 0; round < rounds; round++) {
        /* Magnitudes grow by a decade a round (then jump to everything). */
        int64_t top = round < 10 ? scale * 10 : INT64_MAX;
        for (int r = 0; r < round && round < 10; r++)
            top = top <= INT64_MAX / 10 ? top * 10 : INT64_MAX;
        int changes = round == 0 ? m.n : m.n / 4;
        for (int k = 0; k < changes; k++) {
            int i = round == 0 ? k : (int)rnd_below((uint64_t)m.n);
            zd_profile *old = NULL;
            if (m.live[i]) {
                old = tp_new("t");
                tp_num(old, A_EMPLOYEES, m.val[i]);
            }
            uint64_t what = round == 0 ? 9 : rnd_below(12);
            if (what == 0) {
                zd_index_del(ix, m.gid[i], rnd_below(2) ? old : NULL);
                m.live[i] = false;
            } else if (what == 1) {
                zd_profile *bare = tp_new("t");
                zd_index_put(ix, m.gid[i], old, bare);
                tp_free(bare);
                m.live[i] = false;
            } else {
                if (round == 6 && rnd_below(2))
                    m.val[i] = bounds[rnd_below((uint64_t)nb)] / 2 + 3 * scale; /* shift */
                else if (round == 7 && m.live[i] && rnd_below(2))
                    m.val[i] = min + (int64_t)rnd_below(3); /* and back down */
                else
                    m.val[i] = thr_value(bounds, nb, top);
                tp_num(p, A_EMPLOYEES, m.val[i]);
                CHECK_INT(zd_index_put(ix, m.gid[i], old, p), 0);
                if (rnd_below(20) == 0) /* a replayed change converges */
                    CHECK_INT(zd_index_put(ix, m.gid[i], old, p), 0);
                m.live[i] = true;
            }
            tp_free(old);
        }
        if (round == 4 || round == 11)
            zd_index_optimize(ix);
        for (int q = 0; q < 60; q++) {
            zd_cmp op = (zd_cmp)rnd_below(5);
            int64_t v;
            uint64_t how = rnd_below(8);
            if (how < 5) {
                int64_t b = bounds[rnd_below((uint64_t)nb)], d = (int64_t)rnd_below(3) - 1;
                v = (d > 0 && b == INT64_MAX) || (d < 0 && b == INT64_MIN) ? b : b + d;
            } else if (how == 5) {
                v = m.val[rnd_below((uint64_t)m.n)];
            } else if (how == 6) {
                v = min + (int64_t)rnd_below(5) - 2;
            } else {
                v = thr_value(bounds, nb, INT64_MAX);
            }
            roaring_bitmap_t *within = NULL;
            if (rnd_below(3) == 0) {
                within = roaring_bitmap_create();
                uint64_t keep = rnd_below(2) ? 2 : 9;
                for (int j = 0; j < m.n; j++)
                    if (rnd_below(keep) == 0)
                        roaring_bitmap_add(within, m.gid[j]);
                roaring_bitmap_add(within, zd_gid(7, 123457)); /* not a member */
                if (rnd_below(2))
                    roaring_bitmap_run_optimize(within);
            }
            roaring_bitmap_t *got = zd_index_range(ix, A_EMPLOYEES, op, v, within);
            roaring_bitmap_t *exp = roaring_bitmap_create();
            for (int j = 0; j < m.n; j++)
                if (m.live[j] && cmp_ok(m.val[j], op, v) &&
                    (!within || roaring_bitmap_contains(within, m.gid[j])))
                    roaring_bitmap_add(exp, m.gid[j]);
            (*cases)++;
            if (!got || !roaring_bitmap_equals(got, exp)) {
                if ((*wrong)++ < 5)
                    fprintf(stderr,
                            "threshold mismatch: decimals %d min %lld dense %d round %d op %d v "
                            "%lld within %d: %llu vs %llu\n",
                            decimals, (long long)min, dense, round, (int)op, (long long)v,
                            within != NULL, (unsigned long long)card(got),
                            (unsigned long long)card(exp));
            }
            if (got)
                roaring_bitmap_free(got);
            roaring_bitmap_free(exp);
            if (within)
                roaring_bitmap_free(within);
        }
    }
    /* Deleting everyone leaves nothing behind in any range. */
    for (int i = 0; i < m.n; i++)
        if (m.live[i])
            zd_index_del(ix, m.gid[i], NULL);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_GE, INT64_MIN), 0);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_LT, 0), 0);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_GE, 0), 0);
    tp_free(p);
    zd_index_free(ix);
    free(s);
}

static void test_thresholds(const zd_schema *s)
{
    int cases = 0, wrong = 0;
    static const int64_t mins[] = {0, -1, -250000, 7};
    for (int dense = 0; dense < 2; dense++)
        for (int d = 0; d <= 2; d += 2)
            for (int mi = 0; mi < 4; mi++)
                thr_trial(s, d, mins[mi] * (d ? 100 : 1), dense, &cases, &wrong);
    CHECK(cases >= 5000);
    CHECK_INT(wrong, 0);

    /* Exact boundaries settle by the threshold bitmaps alone: spot checks by hand. */
    zd_index *ix = zd_index_new(s);
    zd_profile *p = tp_new("h");
    int64_t vals[] = {0, 1, 49, 50, 51, 299, 300, 301, 20000};
    for (int i = 0; i < 9; i++) {
        tp_num(p, A_EMPLOYEES, vals[i]);
        CHECK_INT(zd_index_put(ix, zd_gid(3, (uint32_t)i), NULL, p), 0);
    }
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_LT, 50), 3);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_GE, 50), 6);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_LE, 50), 4);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_GT, 299), 3);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_LT, 300), 6);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_GE, 20001), 0);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_GE, 20000), 1);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_LT, 0), 0);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_LE, INT64_MAX), 9);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_GT, INT64_MAX), 0);
    /* A value far above every boundary so far, then moved back down. */
    tp_num(p, A_EMPLOYEES, 7000000000000LL);
    zd_profile *q = tp_new("h");
    tp_num(q, A_EMPLOYEES, 20000);
    CHECK_INT(zd_index_put(ix, zd_gid(3, 8), q, p), 0);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_GE, 5000000000000LL), 1);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_LT, 5000000000000LL), 8);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_GE, 20000), 1);
    CHECK_INT(zd_index_put(ix, zd_gid(3, 8), p, q), 0);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_GE, 5000000000000LL), 0);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_GE, 20000), 1);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_GT, 20000), 0);
    tp_free(p);
    tp_free(q);
    zd_index_free(ix);
}

/* A date near a January 1 (the day before, the day, the day after) in [y0, y1], a leap day
 * or its neighbours, any day of such a year, or rarely a day far outside the calendar. */
static int64_t date_value(int y0, int y1)
{
    int y = y0 + (int)rnd_below((uint64_t)(y1 - y0 + 1));
    switch (rnd_below(8)) {
    case 0:
    case 1:
    case 2:
        return zd_date_from_ymd(y, 1, 1) + (int64_t)rnd_below(3) - 1;
    case 3: {
        int ly = y - (y % 4 + 4) % 4; /* a leap year unless a century not divisible by 400 */
        return zd_date_from_ymd(ly, 2, 28) + (int64_t)rnd_below(3);
    }
    case 4:
    case 5:
    case 6:
        return zd_date_from_ymd(y, 1, 1) + (int64_t)rnd_below(366);
    default:
        return rnd_below(30) ? zd_date_from_ymd(y, 12, 31)
                             : (rnd_below(2) ? INT64_MAX - (int64_t)rnd_below(2)
                                             : INT64_MIN + (int64_t)rnd_below(2));
    }
}

/* Like thr_trial for a date attribute: the years seen widen round by round in both directions
 * (from around 2000 down past 1800, the first boundary, and up past 2400, the last), so that
 * boundaries are added lazily at both ends; in the middle everyone moves to a few recent years
 * and back, so that the stored sides flip. Queries at January 1 +-1 and leap days. */
static void date_trial(const zd_schema *s, int attr, bool dense, int *cases, int *wrong)
{
    static model m;
    zd_index *ix = zd_index_new(s);
    zd_profile *p = tp_new("d");
    memset(&m, 0, sizeof(m));
    m.n = dense ? 6000 : 1500;
    for (int i = 0; i < m.n; i++)
        m.gid[i] = dense ? zd_gid(i % 3, (uint32_t)(i / 3))
                         : zd_gid((int)rnd_below(ZD_PARTITIONS_MAX),
                                  (uint32_t)i * 41 + (uint32_t)rnd_below(41));
    for (int round = 0; round < 14; round++) {
        int y0 = 2000 - 25 * round * round / 4, y1 = 2001 + 5 * round * round / 2;
        int changes = round == 0 ? m.n / 3 : m.n / 4;
        for (int k = 0; k < changes; k++) {
            int i = round == 0 ? k : (int)rnd_below((uint64_t)m.n);
            zd_profile *old = NULL;
            if (m.live[i]) {
                old = tp_new("d");
                tp_num(old, attr, m.val[i]);
            }
            uint64_t what = round == 0 ? 9 : rnd_below(12);
            if (what == 0) {
                zd_index_del(ix, m.gid[i], rnd_below(2) ? old : NULL);
                m.live[i] = false;
            } else if (what == 1) {
                zd_profile *bare = tp_new("d");
                zd_index_put(ix, m.gid[i], old, bare);
                tp_free(bare);
                m.live[i] = false;
            } else {
                if (round == 6 && rnd_below(4))
                    m.val[i] = date_value(2020, 2023); /* everyone recent */
                else if (round == 7 && m.live[i] && rnd_below(2))
                    m.val[i] = date_value(1940, 1960); /* and old again */
                else
                    m.val[i] = date_value(y0, y1);
                tp_num(p, attr, m.val[i]);
                CHECK_INT(zd_index_put(ix, m.gid[i], old, p), 0);
                if (rnd_below(20) == 0)
                    CHECK_INT(zd_index_put(ix, m.gid[i], old, p), 0);
                m.live[i] = true;
            }
            tp_free(old);
        }
        if (round == 4 || round == 11)
            zd_index_optimize(ix);
        for (int q = 0; q < 60; q++) {
            zd_cmp op = (zd_cmp)rnd_below(5);
            int64_t v;
            uint64_t how = rnd_below(8);
            if (how < 4)
                v = zd_date_from_ymd(1700 + (int)rnd_below(800), 1, 1) + (int64_t)rnd_below(3) - 1;
            else if (how == 4)
                v = m.val[rnd_below((uint64_t)m.n)];
            else if (how == 5)
                v = zd_date_from_ymd(1896 + 4 * (int)rnd_below(40), 2, 28) + (int64_t)rnd_below(3);
            else if (how == 6)
                v = (int64_t)rnd_below(40000) - 20000; /* around 1970 */
            else
                v = date_value(1500, 2600);
            roaring_bitmap_t *within = NULL;
            if (rnd_below(3) == 0) {
                within = roaring_bitmap_create();
                uint64_t keep = rnd_below(2) ? 2 : 9;
                for (int j = 0; j < m.n; j++)
                    if (rnd_below(keep) == 0)
                        roaring_bitmap_add(within, m.gid[j]);
                roaring_bitmap_add(within, zd_gid(9, 654321)); /* not a member */
                if (rnd_below(2))
                    roaring_bitmap_run_optimize(within);
            }
            roaring_bitmap_t *got = zd_index_range(ix, attr, op, v, within);
            roaring_bitmap_t *exp = roaring_bitmap_create();
            for (int j = 0; j < m.n; j++)
                if (m.live[j] && cmp_ok(m.val[j], op, v) &&
                    (!within || roaring_bitmap_contains(within, m.gid[j])))
                    roaring_bitmap_add(exp, m.gid[j]);
            (*cases)++;
            if (!got || !roaring_bitmap_equals(got, exp)) {
                if ((*wrong)++ < 5)
                    fprintf(stderr,
                            "date threshold mismatch: dense %d round %d op %d v %lld within %d: "
                            "%llu vs %llu\n",
                            dense, round, (int)op, (long long)v, within != NULL,
                            (unsigned long long)card(got), (unsigned long long)card(exp));
            }
            if (got)
                roaring_bitmap_free(got);
            roaring_bitmap_free(exp);
            if (within)
                roaring_bitmap_free(within);
        }
    }
    for (int i = 0; i < m.n; i++)
        if (m.live[i])
            zd_index_del(ix, m.gid[i], NULL);
    CHECK_INT(range_card(ix, attr, ZD_CMP_GE, INT64_MIN), 0);
    CHECK_INT(range_card(ix, attr, ZD_CMP_LT, zd_date_from_ymd(2000, 1, 1)), 0);
    /* Cleared, the index starts over with a window at the new values. */
    tp_num(p, attr, zd_date_from_ymd(1955, 7, 1));
    CHECK_INT(zd_index_put(ix, m.gid[0], NULL, p), 0);
    CHECK_INT(range_card(ix, attr, ZD_CMP_GE, zd_date_from_ymd(1955, 1, 1)), 1);
    CHECK_INT(range_card(ix, attr, ZD_CMP_LT, zd_date_from_ymd(1956, 1, 1)), 1);
    CHECK_INT(range_card(ix, attr, ZD_CMP_GT, zd_date_from_ymd(1955, 7, 1)), 0);
    tp_free(p);
    zd_index_free(ix);
}

static void test_date_thresholds(const zd_schema *s)
{
    int cases = 0, wrong = 0;
    for (int dense = 0; dense < 2; dense++) {
        date_trial(s, A_BIRTH, dense, &cases, &wrong);
        date_trial(s, A_FOUNDED, dense, &cases, &wrong);
    }
    CHECK(cases >= 3000);
    CHECK_INT(wrong, 0);

    /* By hand: January 1 and its neighbours, a leap day, dates before 1970. */
    zd_index *ix = zd_index_new(s);
    zd_profile *p = tp_new("h");
    int64_t vals[] = {
        zd_date_from_ymd(1959, 12, 31), zd_date_from_ymd(1960, 1, 1),
        zd_date_from_ymd(1960, 1, 2),   zd_date_from_ymd(1960, 2, 29),
        zd_date_from_ymd(1960, 3, 1),   zd_date_from_ymd(1969, 12, 31),
        zd_date_from_ymd(1970, 1, 1),   zd_date_from_ymd(2024, 2, 29),
    };
    int n = (int)(sizeof(vals) / sizeof(vals[0]));
    for (int i = 0; i < n; i++) {
        tp_num(p, A_BIRTH, vals[i]);
        CHECK_INT(zd_index_put(ix, zd_gid(4, (uint32_t)i), NULL, p), 0);
    }
    CHECK_INT(vals[5], -1);
    CHECK_INT(range_card(ix, A_BIRTH, ZD_CMP_LT, zd_date_from_ymd(1960, 1, 1)), 1);
    CHECK_INT(range_card(ix, A_BIRTH, ZD_CMP_LE, zd_date_from_ymd(1960, 1, 1)), 2);
    CHECK_INT(range_card(ix, A_BIRTH, ZD_CMP_GE, zd_date_from_ymd(1960, 1, 2)), 6);
    CHECK_INT(range_card(ix, A_BIRTH, ZD_CMP_LE, zd_date_from_ymd(1960, 2, 29)), 4);
    CHECK_INT(range_card(ix, A_BIRTH, ZD_CMP_GT, zd_date_from_ymd(1960, 2, 29)), 4);
    CHECK_INT(range_card(ix, A_BIRTH, ZD_CMP_LT, 0), 6);
    CHECK_INT(range_card(ix, A_BIRTH, ZD_CMP_GE, 0), 2);
    CHECK_INT(range_card(ix, A_BIRTH, ZD_CMP_GE, zd_date_from_ymd(2024, 1, 1)), 1);
    CHECK_INT(range_card(ix, A_BIRTH, ZD_CMP_EQ, zd_date_from_ymd(2024, 2, 29)), 1);
    /* Moved before the first boundary (1800) and back, and deleted. */
    zd_profile *q = tp_new("h");
    tp_num(q, A_BIRTH, zd_date_from_ymd(1650, 6, 1));
    tp_num(p, A_BIRTH, vals[1]);
    CHECK_INT(zd_index_put(ix, zd_gid(4, 1), p, q), 0);
    CHECK_INT(range_card(ix, A_BIRTH, ZD_CMP_LT, zd_date_from_ymd(1800, 1, 1)), 1);
    CHECK_INT(range_card(ix, A_BIRTH, ZD_CMP_LT, zd_date_from_ymd(1960, 1, 1)), 2);
    CHECK_INT(range_card(ix, A_BIRTH, ZD_CMP_GE, zd_date_from_ymd(1650, 6, 2)), 7);
    CHECK_INT(zd_index_put(ix, zd_gid(4, 1), q, p), 0);
    CHECK_INT(range_card(ix, A_BIRTH, ZD_CMP_LT, zd_date_from_ymd(1800, 1, 1)), 0);
    CHECK_INT(range_card(ix, A_BIRTH, ZD_CMP_LE, zd_date_from_ymd(1960, 1, 1)), 2);
    CHECK_INT(zd_index_del(ix, zd_gid(4, 0), NULL), 0);
    CHECK_INT(range_card(ix, A_BIRTH, ZD_CMP_LT, zd_date_from_ymd(1960, 1, 1)), 0);
    CHECK_INT(range_card(ix, A_BIRTH, ZD_CMP_LT, zd_date_from_ymd(1960, 1, 2)), 1);
    tp_free(p);
    tp_free(q);
    zd_index_free(ix);
}

/* Values stored below the base move the base (a bit-sliced addition): exact afterwards. */
static void test_rebase(const zd_schema *s)
{
    zd_index *ix = zd_index_new(s);
    zd_profile *p = tp_new("b");
    int64_t vals[] = {0, 5, 1000, -1, -1000000, 7, INT64_MIN, INT64_MAX, 3};
    int n = (int)(sizeof(vals) / sizeof(vals[0]));
    for (int i = 0; i < n; i++) {
        tp_num(p, A_EMPLOYEES, vals[i]);
        CHECK_INT(zd_index_put(ix, zd_gid(2, (uint32_t)i), NULL, p), 0);
        for (int j = 0; j <= i; j++) {
            CHECK(range_has(ix, A_EMPLOYEES, ZD_CMP_EQ, vals[j], zd_gid(2, (uint32_t)j)));
            CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_LE, vals[j]) +
                          range_card(ix, A_EMPLOYEES, ZD_CMP_GT, vals[j]),
                      i + 1);
        }
    }
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_LT, 0), 3);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_GE, INT64_MIN), n);
    CHECK_INT(range_card(ix, A_EMPLOYEES, ZD_CMP_GT, INT64_MAX), 0);
    tp_free(p);
    zd_index_free(ix);
}

/* ---- timing (printed, not asserted) ---------------------------------------------------- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Times a range 101 times; prints the median and the minimum (the machine may be shared, and
 * the minimum is the best estimate of the uncontended cost). */
static void time_range(const char *what, const zd_index *ix, int attr, zd_cmp op, int64_t v,
                       const roaring_bitmap_t *within)
{
    double t[101];
    uint64_t n = 0;
    for (int r = 0; r < 101; r++) {
        double t0 = now_ms();
        roaring_bitmap_t *bm = zd_index_range(ix, attr, op, v, within);
        t[r] = now_ms() - t0;
        n = card(bm);
        roaring_bitmap_free(bm);
    }
    qsort(t, 101, sizeof(t[0]), cmp_double);
    printf("bench: %s: median %.3f ms, min %.3f ms -> %llu\n", what, t[50], t[0],
           (unsigned long long)n);
}

/* Resident memory in bytes from /proc (Linux), 0 where unavailable. */
static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * 4096;
}

static void bench(const zd_schema *s)
{
    /* ZD_INDEX_BENCH=N sets the population (default 1M: half enterprises, half citizens). */
    const char *env = getenv("ZD_INDEX_BENCH");
    long total = env ? atol(env) : 1000000;
    if (total <= 0)
        return;
    zd_index *ix = zd_index_new(s);
    zd_profile *e = tp_new("e"), *c = tp_new("c");
    tp_str(e, A_KIND, "enterprise");
    tp_str(c, A_KIND, "citizen");
    static const char *scales[] = {"micro", "small", "medium", "large"};
    static const char *tags[] = {"hightech", "srdi", "export", "dishonest", "li", "startup"};
    char id[48], region[48];
    long rss0 = rss_bytes();
    double t0 = now_ms();
    for (long i = 0; i < total; i++) {
        int part = (int)(i % ZD_PARTITIONS_MAX);
        uint32_t gid = zd_gid(part, (uint32_t)(i / ZD_PARTITIONS_MAX));
        zd_profile *p = i % 2 ? c : e;
        snprintf(id, sizeof(id), "%c%07ld", i % 2 ? 'c' : 'e', i);
        free(p->id);
        p->id = strdup(id);
        snprintf(region, sizeof(region), "33%02d%02d%03d", (int)rnd_below(11) + 1,
                 (int)rnd_below(12) + 1, (int)rnd_below(30) + 1);
        tp_str(p, A_REGION, region);
        if (p == e) {
            double r = (double)rnd_below(1000000) / 1e6;
            tp_num(e, A_EMPLOYEES, (int64_t)(2.0 * pow(10.0, 5.0 * r * r)));
            tp_num(e, A_FOUNDED,
                   zd_date_from_ymd(1980 + (int)rnd_below(45), 1, 1) + (int64_t)rnd_below(365));
            tp_str(e, A_SCALE, scales[rnd_below(4)]);
            char ind[48];
            /* About 2500 distinct classes, like GB/T 4754's four-digit level. */
            snprintf(ind, sizeof(ind), "%c%02d%d%d", 'A' + (int)rnd_below(20),
                     (int)rnd_below(5) * 7 + 10, (int)rnd_below(5), (int)rnd_below(5));
            tp_str(e, A_INDUSTRY, ind);
            int a = (int)rnd_below(6), b = (int)rnd_below(6);
            if (a == b)
                tp_tags(e, 1, tags[a]);
            else
                tp_tags(e, 2, strcmp(tags[a], tags[b]) < 0 ? tags[a] : tags[b],
                        strcmp(tags[a], tags[b]) < 0 ? tags[b] : tags[a]);
        } else {
            tp_num(c, A_BIRTH,
                   zd_date_from_ymd(1930 + (int)rnd_below(90), 1, 1) + (int64_t)rnd_below(365));
        }
        zd_index_put(ix, gid, NULL, p);
    }
    double load = now_ms() - t0;
    t0 = now_ms();
    zd_index_optimize(ix);
    double opt = now_ms() - t0;
    zd_index_stats st;
    zd_index_get_stats(ix, &st);
    printf("bench: %ld profiles loaded in %.0f ms (%.0f/s), optimize %.0f ms\n", total, load,
           (double)total / load * 1e3, opt);
    printf("bench: %llu bitmaps, %.1f bytes/profile total (bitmaps serialized %.1f, ids %.1f; "
           "RSS grew %.1f)\n",
           (unsigned long long)st.bitmaps, (double)st.total_bytes / (double)total,
           (double)st.bitmap_bytes / (double)total, (double)st.id_bytes / (double)total,
           (double)(rss_bytes() - rss0) / (double)total);
    char what[128];
    snprintf(what, sizeof(what), "employees < 300 (%llu members)",
             (unsigned long long)card(zd_index_exists(ix, A_EMPLOYEES)));
    time_range(what, ix, A_EMPLOYEES, ZD_CMP_LT, 300, NULL);
    time_range("employees >= 1000", ix, A_EMPLOYEES, ZD_CMP_GE, 1000, NULL);
    time_range("employees = 40", ix, A_EMPLOYEES, ZD_CMP_EQ, 40, NULL);
    snprintf(what, sizeof(what), "birth_date <= 1965-06-01 (%llu members)",
             (unsigned long long)card(zd_index_exists(ix, A_BIRTH)));
    time_range(what, ix, A_BIRTH, ZD_CMP_LE, zd_date_from_ymd(1965, 6, 1), NULL);
    time_range("birth_date <= 1965-12-31 (a date threshold)", ix, A_BIRTH, ZD_CMP_LE,
               zd_date_from_ymd(1965, 12, 31), NULL);
    snprintf(what, sizeof(what), "founded > 2022-03-15 (%llu members)",
             (unsigned long long)card(zd_index_exists(ix, A_FOUNDED)));
    time_range(what, ix, A_FOUNDED, ZD_CMP_GT, zd_date_from_ymd(2022, 3, 15), NULL);
    const roaring_bitmap_t *w = zd_index_keyword(ix, A_TAGS, "hightech");
    snprintf(what, sizeof(what), "employees < 300 within tags has \"hightech\" (%llu)",
             (unsigned long long)card(w));
    time_range(what, ix, A_EMPLOYEES, ZD_CMP_LT, 300, w);
    /* The benchmark's num_range rule as the matcher runs it: the second clause within the
     * first; then the same off the threshold boundaries (a bin for the bit slices). */
    roaring_bitmap_t *ge = zd_index_range(ix, A_EMPLOYEES, ZD_CMP_GE, 50, NULL);
    time_range("employees >= 50", ix, A_EMPLOYEES, ZD_CMP_GE, 50, NULL);
    time_range("employees < 300 within employees >= 50", ix, A_EMPLOYEES, ZD_CMP_LT, 300, ge);
    roaring_bitmap_free(ge);
    ge = zd_index_range(ix, A_EMPLOYEES, ZD_CMP_GE, 45, NULL);
    time_range("employees >= 45", ix, A_EMPLOYEES, ZD_CMP_GE, 45, NULL);
    time_range("employees < 280 within employees >= 45", ix, A_EMPLOYEES, ZD_CMP_LT, 280, ge);
    roaring_bitmap_free(ge);
    tp_free(e);
    tp_free(c);
    zd_index_free(ix);
}

int main(void)
{
    zd_schema *s = make_schema();
    test_lookups(s);
    test_replay(s);
    test_ids(s);
    test_value_map(s);
    test_odd_code(s);
    test_rebase(s);
    test_ranges(s);
    test_thresholds(s);
    test_date_thresholds(s);
    int rc = check_report("index");
    bench(s);
    free(s);
    return rc;
}
