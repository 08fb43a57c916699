/* Unit tests for the index's interval evaluation (zd_index_between: threshold boundaries, the
 * month bins of dates, the bit slices) and its chunk-wise union (zd_index_union), each against
 * brute force on random data with updates, deletes and replays. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <roaring/containers/containers.h>

#include "common/date.h"
#include "profiles/index.h"
#include "tests/unit/check.h"
#include "tests/unit/index_fixture.h"

#define NM 12000

typedef struct model {
    int n;
    uint32_t gid[NM];
    bool live[NM];
    int64_t val[NM];
} model;

static int64_t ymd(int y, int m, int d)
{
    return zd_date_from_ymd(y, m, d);
}

/* A date as the index meets them: mostly 1930-2025, often on the first of a month or next to
 * it, sometimes crowded into one month (so that a month bin becomes a bitset in the dense
 * layout), rarely before 1800 or after 2400 (outside the month bins) or at the int64 ends. */
static int64_t date_value(int crowd_y, int crowd_m)
{
    int y = 1930 + (int)rnd_below(96), mo = 1 + (int)rnd_below(12);
    switch (rnd_below(10)) {
    case 0:
    case 1:
        return ymd(y, mo, 1) + (int64_t)rnd_below(3) - 1;
    case 2:
        return ymd(crowd_y, crowd_m, 1) + (int64_t)rnd_below(31) % 28;
    case 3:
        return rnd_below(4) ? ymd(y, 1, 1) + (int64_t)rnd_below(3) - 1
                            : ymd(1700 + (int)rnd_below(800), mo, 1 + (int)rnd_below(28));
    case 4:
        return rnd_below(40) ? ymd(y, 2, 28) + (int64_t)rnd_below(2)
                             : (rnd_below(2) ? INT64_MAX - (int64_t)rnd_below(2)
                                             : INT64_MIN + (int64_t)rnd_below(2));
    default:
        return ymd(y, mo, 1 + (int)rnd_below(28)) + (int64_t)rnd_below(3);
    }
}

/* A number: near round boundaries, skewed small, or extreme. */
static int64_t num_value(void)
{
    static const int64_t round[] = {0, 1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 500, 1000, 2000};
    switch (rnd_below(6)) {
    case 0:
    case 1:
        return round[rnd_below(15)] + (int64_t)rnd_below(3) - 1;
    case 2:
        return (int64_t)rnd_below(700);
    case 3:
        return (int64_t)(rnd() >> (40 + rnd_below(24)));
    case 4:
        return rnd_below(30) ? (int64_t)rnd_below(60) : INT64_MAX - (int64_t)rnd_below(2);
    default:
        return (int64_t)rnd_below(5000);
    }
}

/* An interval end: a member's value +-1, a month start +-1, a January 1 +-1, an age threshold
 * of the evaluation day (so [lo, hi] is one year of birth dates), or anything. */
static int64_t bound(const model *m, bool date)
{
    int64_t v;
    switch (rnd_below(7)) {
    case 0:
    case 1:
        v = m->val[rnd_below((uint64_t)m->n)];
        break;
    case 2:
        v = date ? ymd(1930 + (int)rnd_below(96), 1 + (int)rnd_below(12), 1) : num_value();
        break;
    case 3:
        v = date ? ymd(1800 + 2 * (int)rnd_below(300), 1, 1) : num_value();
        break;
    case 4:
        v = date ? zd_date_age_threshold((int32_t)ymd(2026, 7, 1), (int)rnd_below(100))
                 : (int64_t)rnd_below(400);
        break;
    case 5:
        return rnd_below(2) ? INT64_MIN : INT64_MAX;
    default:
        v = date ? date_value(1990, 6) : num_value();
        break;
    }
    int64_t d = (int64_t)rnd_below(3) - 1;
    if ((d > 0 && v == INT64_MAX) || (d < 0 && v == INT64_MIN))
        return v;
    return v + d;
}

/* Random hints: none, a stretch of gids (run containers), or a random subset with non-members. */
static roaring_bitmap_t *random_within(const model *m)
{
    uint64_t how = rnd_below(4);
    if (how == 0)
        return NULL;
    if (how == 1) {
        uint32_t from = m->gid[rnd_below((uint64_t)m->n)];
        roaring_bitmap_t *w =
            roaring_bitmap_from_range(from, from + (uint32_t)rnd_below(9000) + 1, 1);
        roaring_bitmap_run_optimize(w);
        return w;
    }
    roaring_bitmap_t *w = roaring_bitmap_create();
    uint64_t keep = rnd_below(2) ? 2 : 11;
    for (int j = 0; j < m->n; j++)
        if (rnd_below(keep) == 0)
            roaring_bitmap_add(w, m->gid[j]);
    roaring_bitmap_add(w, zd_gid(9, 654321));
    if (rnd_below(2))
        roaring_bitmap_run_optimize(w);
    return w;
}

/* Puts, moves (across months, bins and boundaries), drops and deletes (with the old profile or
 * without), replays, optimize; after every round, random intervals checked against brute force.
 * Two layouts: gids scattered over all partitions (arrays) and packed into two chunks (bitsets,
 * runs after optimize). */
static void between_trial(const zd_schema *s, int attr, bool dense, int *cases, int *wrong)
{
    static model m;
    bool date = s->attrs[attr].type == ZD_T_DATE;
    zd_index *ix = zd_index_new(s);
    zd_profile *p = tp_new("b");
    memset(&m, 0, sizeof(m));
    m.n = dense ? NM : 1500;
    for (int i = 0; i < m.n; i++)
        m.gid[i] = dense ? zd_gid(i % 2, (uint32_t)(i / 2))
                         : zd_gid((int)rnd_below(ZD_PARTITIONS_MAX),
                                  (uint32_t)i * 37 + (uint32_t)rnd_below(37));
    for (int round = 0; round < 10; round++) {
        int crowd_y = 1960 + 7 * round, crowd_m = 1 + round;
        int changes = round == 0 ? m.n : m.n / 5;
        for (int k = 0; k < changes; k++) {
            int i = round == 0 ? k : (int)rnd_below((uint64_t)m.n);
            zd_profile *old = NULL;
            if (m.live[i]) {
                old = tp_new("b");
                tp_num(old, attr, m.val[i]);
            }
            uint64_t what = round == 0 ? 9 : rnd_below(12);
            if (what == 0) {
                zd_index_del(ix, m.gid[i], rnd_below(2) ? old : NULL);
                m.live[i] = false;
            } else if (what == 1) {
                zd_profile *bare = tp_new("b"); /* drops the attribute */
                zd_index_put(ix, m.gid[i], old, bare);
                tp_free(bare);
                m.live[i] = false;
            } else {
                m.val[i] = date ? date_value(crowd_y, crowd_m) : num_value();
                /* A dense round crowds one month so that its bin is a bitset container. */
                if (date && dense && round % 3 == 1 && rnd_below(3))
                    m.val[i] = ymd(crowd_y, crowd_m, 1 + (int)rnd_below(28));
                tp_num(p, attr, m.val[i]);
                CHECK_INT(zd_index_put(ix, m.gid[i], old, p), 0);
                if (rnd_below(20) == 0) /* a replayed change converges */
                    CHECK_INT(zd_index_put(ix, m.gid[i], old, p), 0);
                m.live[i] = true;
            }
            tp_free(old);
        }
        if (round == 3 || round == 8)
            zd_index_optimize(ix);
        for (int q = 0; q < 80; q++) {
            int64_t lo = bound(&m, date), hi = bound(&m, date);
            if (rnd_below(4) && lo > hi) {
                int64_t t = lo;
                lo = hi;
                hi = t;
            }
            if (date && rnd_below(4) == 0) {
                /* An age equality on some day: one year of dates. */
                int32_t day = (int32_t)ymd(2020 + (int)rnd_below(8), 1 + (int)rnd_below(12),
                                           1 + (int)rnd_below(28));
                int years = (int)rnd_below(100);
                lo = (int64_t)zd_date_age_threshold(day, years + 1) + 1;
                hi = zd_date_age_threshold(day, years);
            }
            roaring_bitmap_t *within = random_within(&m);
            roaring_bitmap_t *got = zd_index_between(ix, attr, lo, hi, within);
            roaring_bitmap_t *exp = roaring_bitmap_create();
            for (int j = 0; j < m.n; j++)
                if (m.live[j] && m.val[j] >= lo && m.val[j] <= hi &&
                    (!within || roaring_bitmap_contains(within, m.gid[j])))
                    roaring_bitmap_add(exp, m.gid[j]);
            (*cases)++;
            if (!got || !roaring_bitmap_equals(got, exp)) {
                if ((*wrong)++ < 5)
                    fprintf(stderr,
                            "between mismatch: attr %d dense %d round %d [%lld, %lld] within %d: "
                            "%llu vs %llu\n",
                            attr, dense, round, (long long)lo, (long long)hi, within != NULL,
                            (unsigned long long)card(got), (unsigned long long)card(exp));
            }
            if (got)
                roaring_bitmap_free(got);
            roaring_bitmap_free(exp);
            if (within)
                roaring_bitmap_free(within);
        }
    }
    /* Deleted without their old profiles, everyone leaves every month bin too. */
    for (int i = 0; i < m.n; i++)
        if (m.live[i])
            zd_index_del(ix, m.gid[i], NULL);
    roaring_bitmap_t *all = zd_index_between(ix, attr, INT64_MIN + 1, INT64_MAX - 1, NULL);
    CHECK_INT(card(all), 0);
    roaring_bitmap_free(all);
    tp_free(p);
    zd_index_free(ix);
}

static void test_between(const zd_schema *s)
{
    int cases = 0, wrong = 0;
    for (int dense = 0; dense < 2; dense++) {
        between_trial(s, A_BIRTH, dense, &cases, &wrong);
        between_trial(s, A_FOUNDED, dense, &cases, &wrong);
        between_trial(s, A_EMPLOYEES, dense, &cases, &wrong);
    }
    CHECK(cases >= 4000);
    CHECK_INT(wrong, 0);
}

/* By hand: month bins settle whole months, the bound's own month is compared day by day. */
static void test_between_months(const zd_schema *s)
{
    zd_index *ix = zd_index_new(s);
    zd_profile *p = tp_new("m");
    int64_t vals[] = {ymd(2007, 7, 1),   ymd(2007, 7, 2), ymd(2007, 12, 31), ymd(2008, 1, 1),
                      ymd(2008, 6, 30),  ymd(2008, 7, 1), ymd(2008, 7, 2),   ymd(2009, 3, 15),
                      ymd(1799, 12, 31), ymd(2400, 1, 1), ymd(2006, 1, 1),   ymd(2005, 12, 31)};
    int n = (int)(sizeof(vals) / sizeof(vals[0]));
    for (int i = 0; i < n; i++) {
        tp_num(p, A_BIRTH, vals[i]);
        CHECK_INT(zd_index_put(ix, zd_gid(5, (uint32_t)i), NULL, p), 0);
    }
    struct {
        int64_t lo, hi;
        uint64_t want;
    } cases[] = {
        {ymd(2007, 7, 2), ymd(2008, 7, 1), 5},   /* age 18 on 2026-07-01 */
        {ymd(2007, 7, 1), ymd(2008, 6, 30), 5},  /* whole months only */
        {ymd(2008, 1, 1), ymd(2008, 1, 1), 1},   /* a boundary, one day */
        {ymd(2007, 7, 2), ymd(2007, 7, 2), 1},   /* one day inside a month */
        {ymd(2007, 7, 3), ymd(2007, 12, 30), 0}, /* inside, nobody */
        {ymd(1700, 1, 1), ymd(1800, 1, 1), 1},   /* before the month bins */
        {ymd(2300, 1, 1), INT64_MAX, 1},         /* after them */
        {ymd(2005, 12, 31), ymd(2006, 1, 1), 2}, /* across a boundary */
        {INT64_MIN, ymd(2007, 7, 1), 4},         {ymd(2008, 7, 2), INT64_MAX, 3},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        roaring_bitmap_t *r = zd_index_between(ix, A_BIRTH, cases[c].lo, cases[c].hi, NULL);
        CHECK_INT(card(r), cases[c].want);
        roaring_bitmap_free(r);
    }
    /* Moving a date to another month, and replaying the move, leaves it in the new one only. */
    zd_profile *q = tp_new("m");
    tp_num(p, A_BIRTH, vals[1]);
    tp_num(q, A_BIRTH, ymd(2007, 9, 9));
    CHECK_INT(zd_index_put(ix, zd_gid(5, 1), p, q), 0);
    CHECK_INT(zd_index_put(ix, zd_gid(5, 1), p, q), 0);
    roaring_bitmap_t *r = zd_index_between(ix, A_BIRTH, ymd(2007, 7, 1), ymd(2007, 7, 31), NULL);
    CHECK_INT(card(r), 1);
    roaring_bitmap_free(r);
    r = zd_index_between(ix, A_BIRTH, ymd(2007, 9, 1), ymd(2007, 9, 30), NULL);
    CHECK_INT(card(r), 1);
    roaring_bitmap_free(r);
    /* Dropped without the old profile: the index knows which month to leave. */
    CHECK_INT(zd_index_del(ix, zd_gid(5, 1), NULL), 0);
    r = zd_index_between(ix, A_BIRTH, ymd(2007, 8, 1), ymd(2007, 10, 31), NULL);
    CHECK_INT(card(r), 0);
    roaring_bitmap_free(r);
    tp_free(p);
    tp_free(q);
    zd_index_free(ix);
}

/* ---- union -------------------------------------------------------------------------- */

/* A bitmap over the first chunks whose containers come out as arrays, bitsets or runs. */
static roaring_bitmap_t *random_bitmap(void)
{
    roaring_bitmap_t *b = roaring_bitmap_create();
    for (uint32_t k = 0; k < 6; k++) {
        uint32_t base = k << 16;
        switch (rnd_below(5)) {
        case 0:
            break;
        case 1: {
            int n = (int)rnd_below(300);
            for (int i = 0; i < n; i++)
                roaring_bitmap_add(b, base + (uint32_t)rnd_below(65536));
            break;
        }
        case 2: {
            int n = 2000 + (int)rnd_below(4000); /* around the array/bitset limit */
            for (int i = 0; i < n; i++)
                roaring_bitmap_add(b, base + (uint32_t)rnd_below(65536));
            break;
        }
        case 3: {
            uint32_t from = base + (uint32_t)rnd_below(60000);
            roaring_bitmap_add_range(b, from, from + (uint32_t)rnd_below(5000) + 1);
            break;
        }
        default:
            for (uint32_t x = base + (uint32_t)rnd_below(7); x < base + 65536; x += 7)
                roaring_bitmap_add(b, x);
            break;
        }
    }
    if (rnd_below(2))
        roaring_bitmap_run_optimize(b);
    return b;
}

/* Arrays hold at most 4096 values and bitsets more, as CRoaring itself would store them (runs
 * may come through from an input). */
static bool canonical(const roaring_bitmap_t *b)
{
    const roaring_array_t *ra = &b->high_low_container;
    for (int32_t i = 0; i < ra->size; i++) {
        uint8_t t = ra->typecodes[i];
        const void *c = container_unwrap_shared(ra->containers[i], &t);
        int card = container_get_cardinality(c, t);
        if (card == 0 || (t == ARRAY_CONTAINER_TYPE_CODE && card > DEFAULT_MAX_SIZE) ||
            (t == BITSET_CONTAINER_TYPE_CODE && card <= DEFAULT_MAX_SIZE))
            return false;
    }
    return true;
}

static void test_union(void)
{
    int wrong = 0;
    for (int trial = 0; trial < 400; trial++) {
        int n = (int)rnd_below(9);
        const roaring_bitmap_t *v[9];
        roaring_bitmap_t *own[9];
        for (int i = 0; i < n; i++) {
            own[i] = rnd_below(8) ? random_bitmap() : NULL;
            v[i] = own[i];
        }
        roaring_bitmap_t *got = zd_index_union(v, n);
        roaring_bitmap_t *exp = roaring_bitmap_create();
        for (int i = 0; i < n; i++)
            if (v[i])
                roaring_bitmap_or_inplace(exp, v[i]);
        if (!got || !roaring_bitmap_equals(got, exp) || !canonical(got)) {
            if (wrong++ < 5)
                fprintf(stderr, "union mismatch: %d inputs: %llu vs %llu\n", n,
                        (unsigned long long)card(got), (unsigned long long)card(exp));
        } else {
            /* CRoaring keeps working on the result. */
            roaring_bitmap_add(got, 7u << 16);
            roaring_bitmap_andnot_inplace(got, exp);
            if (card(got) > 1)
                wrong++;
        }
        if (got)
            roaring_bitmap_free(got);
        roaring_bitmap_free(exp);
        for (int i = 0; i < n; i++)
            if (own[i])
                roaring_bitmap_free(own[i]);
    }
    CHECK_INT(wrong, 0);
}

int main(void)
{
    zd_schema *s = make_schema();
    test_between_months(s);
    test_between(s);
    test_union();
    int rc = check_report("index_between");
    free(s);
    return rc;
}
