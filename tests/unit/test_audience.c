/* Unit tests of matcher/audience: bucket specs (accepted forms, every refusal naming its
 * cause), bucket keys, bucket counts against brute force on random populations (numbers with
 * and without decimals, ages on several days), and random samples (members only, distinct,
 * reproducible from the seed, uniform in membership and order). ZD_SEED=n replays a run. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/date.h"
#include "matcher/audience.h"
#include "profiles/profile.h"

static zd_schema *schema;
static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * UINT64_C(2685821657736338717);
}

static int rn(int n)
{
    return (int)(rnd() % (uint64_t)n);
}

/* ---- specs and keys -------------------------------------------------------------------- */

static void expect_parse(int line, const char *spec, const char *code, const char *in_message)
{
    zd_buckets b;
    zd_error err;
    memset(&err, 0, sizeof(err));
    int rc = zd_buckets_parse(schema, spec, &b, &err);
    if (!code) {
        if (rc != 0) {
            check_failed++;
            fprintf(stderr, "test_audience.c:%d: [%s] refused: %s\n", line, spec, err.message);
        } else {
            check_passed++;
        }
        return;
    }
    if (rc != -EINVAL || strcmp(err.code, code) != 0 || strcmp(err.field, "breakdown") != 0 ||
        !strstr(err.message, in_message)) {
        check_failed++;
        fprintf(stderr, "test_audience.c:%d: [%s]: expected %s with \"%s\", got rc %d %s: %s\n",
                line, spec, code, in_message, rc, err.code, err.message);
    } else {
        check_passed++;
    }
}

#define ACCEPT(spec) expect_parse(__LINE__, spec, NULL, NULL)
#define REFUSE(spec, code, msg) expect_parse(__LINE__, spec, code, msg)

static void test_specs(void)
{
    CHECK(zd_buckets_is_spec("employees:buckets=1"));
    CHECK(zd_buckets_is_spec("age(birth_date)"));
    CHECK(zd_buckets_is_spec("region:buckets"));
    CHECK(!zd_buckets_is_spec("region:6"));
    CHECK(!zd_buckets_is_spec("employees"));
    CHECK(!zd_buckets_is_spec("tags"));

    ACCEPT("employees:buckets=0,10,50,300,1000");
    ACCEPT("employees:buckets=-5");
    ACCEPT("registered_capital:buckets=0,100.5,100.51");
    ACCEPT("age(birth_date):buckets=18,35,60");
    ACCEPT("age(founded):buckets=0,1000");
    ACCEPT("employees:buckets=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,"
           "25,26,27,28,29,30,31");

    REFUSE("employees:buckets=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,"
           "25,26,27,28,29,30,31,32",
           "invalid_breakdown", "more than 32 boundaries");
    REFUSE("employees:buckets=", "invalid_breakdown", "an empty boundary");
    REFUSE("employees:buckets=1,,2", "invalid_breakdown", "an empty boundary");
    REFUSE("employees:buckets=1,", "invalid_breakdown", "an empty boundary");
    REFUSE("employees:buckets=10,5", "invalid_breakdown", "strictly ascending: 5 after 10");
    REFUSE("employees:buckets=1,1", "invalid_breakdown", "strictly ascending: 1 after 1");
    REFUSE("registered_capital:buckets=2.5,2.50", "invalid_breakdown", "2.50 after 2.5");
    REFUSE("employees:buckets=a", "invalid_breakdown", "\"a\" is not a decimal number");
    REFUSE("employees:buckets=1e3", "invalid_breakdown", "not a decimal number");
    REFUSE("employees:buckets= 1", "invalid_breakdown", "not a decimal number");
    REFUSE("employees:buckets=1.5", "invalid_breakdown", "more decimals than employees has (0)");
    REFUSE("registered_capital:buckets=1.005", "invalid_breakdown", "has (2)");
    REFUSE("employees:buckets=99999999999999999999999", "invalid_breakdown", "out of range");
    REFUSE("employees:bucket=1", "invalid_breakdown", "expected \":buckets=\"");
    REFUSE("employees:bucketsx", "invalid_breakdown", "expected \":buckets=\"");
    REFUSE("region:buckets=1", "invalid_breakdown", "region is a code");
    REFUSE("tags:buckets=1", "invalid_breakdown", "tags is a tags");
    REFUSE("founded:buckets=1", "invalid_breakdown", "age(founded):buckets=");
    REFUSE("age(employees):buckets=1", "invalid_breakdown", "employees is a number");
    REFUSE("age(birth_date)", "invalid_breakdown", "after age(birth_date)");
    REFUSE("age(birth_date):6", "invalid_breakdown", "expected \":buckets=\"");
    REFUSE("age(birth_date:buckets=18", "invalid_breakdown", "expected age(<date attribute>)");
    REFUSE("age():buckets=18", "invalid_breakdown", "names no attribute");
    REFUSE("age(birth_date):buckets=1001", "invalid_breakdown", "outside 0-1000 years");
    REFUSE("age(birth_date):buckets=-1", "invalid_breakdown", "outside 0-1000 years");
    REFUSE("age(birth_date):buckets=18.5", "invalid_breakdown", "ages are whole years");
    REFUSE("emploees:buckets=1", "unknown_field", "did you mean \"employees\"");
    REFUSE("age(birthdate):buckets=1", "unknown_field", "did you mean \"birth_date\"");
    REFUSE(":buckets=1", "invalid_breakdown", "names no attribute");
}

static void expect_labels(int line, const char *spec, const char *const *want, int n)
{
    zd_buckets b;
    zd_error err;
    if (zd_buckets_parse(schema, spec, &b, &err) != 0 || b.n + 1 != n) {
        check_failed++;
        fprintf(stderr, "test_audience.c:%d: [%s] did not parse into %d buckets\n", line, spec, n);
        return;
    }
    for (int i = 0; i < n; i++) {
        char buf[80];
        zd_buckets_label(&b, i, buf, sizeof(buf));
        CHECK_STR(buf, want[i]);
    }
}

#define LABELS(spec, ...)                                                                          \
    do {                                                                                           \
        static const char *const want_[] = {__VA_ARGS__};                                          \
        expect_labels(__LINE__, spec, want_, (int)(sizeof(want_) / sizeof(want_[0])));             \
    } while (0)

static void test_labels(void)
{
    LABELS("employees:buckets=0,10,50,300,1000", "<0", "0-9", "10-49", "50-299", "300-999",
           ">=1000");
    LABELS("employees:buckets=9,10,11", "<9", "9", "10", ">=11");
    LABELS("employees:buckets=-10,-1,+2", "<-10", "-10--2", "-1-1", ">=2");
    LABELS("registered_capital:buckets=0,100.5,100.51,1000", "<0", "0-100.49", "100.5",
           "100.51-999.99", ">=1000");
    LABELS("registered_capital:buckets=0.10,0.2", "<0.1", "0.1-0.19", ">=0.2");
    LABELS("age(birth_date):buckets=18,35,60", "<18", "18-34", "35-59", ">=60");
    LABELS("age(birth_date):buckets=0", "<0", ">=0");
}

/* ---- counts against brute force -------------------------------------------------------- */

enum { NPROF = 4000 };

static zd_profile *random_profile(int i)
{
    char json[512], date[11];
    int n =
        snprintf(json, sizeof(json), "{\"kind\": \"%s\", \"region\": \"33%02d06\", \"attrs\": {",
                 i % 2 ? "citizen" : "enterprise", 1 + rn(3));
    const char *sep = "";
    if (rn(10) < 8) {
        /* Values on and next to the boundaries the tests use. */
        static const int near[] = {0, 1, 9, 10, 11, 49, 50, 51, 299, 300, 301, 999, 1000, 1001};
        int v = rn(3) ? near[rn(14)] : rn(3000);
        n += snprintf(json + n, sizeof(json) - (size_t)n, "%s\"employees\": %d", sep, v);
        sep = ", ";
    }
    if (rn(10) < 7) {
        n += snprintf(json + n, sizeof(json) - (size_t)n, "%s\"registered_capital\": %d.%02d", sep,
                      rn(3) ? 100 : rn(2000), rn(100));
        sep = ", ";
    }
    if (rn(10) < 8) {
        /* Birthdays spread over a century, many right at the birthdays the tests cross. */
        int32_t d = rn(3) ? zd_date_from_ymd(1930 + rn(95), 1, 1) + rn(366)
                          : zd_date_from_ymd(2024 - (rn(4) ? 18 : 60), 6, 14 + rn(3));
        if (rn(40) == 0)
            d = zd_date_from_ymd(1964, 2, 29);
        zd_date_format(d, date);
        n += snprintf(json + n, sizeof(json) - (size_t)n, "%s\"birth_date\": \"%s\"", sep, date);
    }
    snprintf(json + n, sizeof(json) - (size_t)n, "}}");
    char id[16];
    snprintf(id, sizeof(id), "q%05d", i);
    zd_profile *p = NULL;
    zd_error err;
    cJSON *o = cJSON_Parse(json);
    if (!o || zd_profile_from_json(schema, id, o, &p, &err) != 0) {
        fprintf(stderr, "bad test profile %s: %s\n", json, o ? err.message : "bad JSON");
        exit(2);
    }
    cJSON_Delete(o);
    return p;
}

static void check_buckets(const char *spec, const zd_index *ix, zd_profile **ps,
                          const uint32_t *gids, const roaring_bitmap_t *aud, int32_t today)
{
    zd_buckets b;
    zd_error err;
    if (zd_buckets_parse(schema, spec, &b, &err) != 0) {
        CHECK(!"spec parses");
        return;
    }
    uint64_t got[ZD_PREVIEW_BUCKETS_MAX + 2], want[ZD_PREVIEW_BUCKETS_MAX + 2] = {0};
    CHECK_INT(zd_buckets_count(&b, ix, aud, today, got), 0);
    for (int i = 0; i < NPROF; i++) {
        if (!ps[i] || !roaring_bitmap_contains(aud, gids[i]))
            continue;
        const zd_value *v = &ps[i]->vals[b.attr->index];
        if (!v->present) {
            want[b.n + 1]++;
            continue;
        }
        int64_t x = b.age ? zd_date_age((int32_t)v->num, today) : v->num;
        int k = 0;
        while (k < b.n && x >= b.bounds[k])
            k++;
        want[k]++;
    }
    uint64_t sum = 0;
    for (int i = 0; i <= b.n + 1; i++) {
        sum += got[i];
        if (got[i] != want[i]) {
            check_failed++;
            char d[11];
            zd_date_format(today, d);
            fprintf(stderr, "[%s] on %s bucket %d: counted %" PRIu64 ", brute force %" PRIu64 "\n",
                    spec, d, i, got[i], want[i]);
        } else {
            check_passed++;
        }
    }
    CHECK_INT(sum, roaring_bitmap_get_cardinality(aud));
}

static void test_counts(void)
{
    zd_index *ix = zd_index_new(schema);
    zd_profile **ps = calloc(NPROF, sizeof(*ps));
    uint32_t *gids = calloc(NPROF, sizeof(*gids));
    for (int i = 0; i < NPROF; i++) {
        gids[i] = zd_gid(i % 7, (uint32_t)(i / 7 + 1));
        ps[i] = random_profile(i);
        CHECK_INT(zd_index_put(ix, gids[i], NULL, ps[i]), 0);
    }
    /* Some deletes and replacements, so the index has history. */
    for (int i = 0; i < NPROF; i += 13) {
        CHECK_INT(zd_index_del(ix, gids[i], ps[i]), 0);
        zd_profile_free(ps[i]);
        ps[i] = NULL;
        if (i % 2) {
            ps[i] = random_profile(NPROF + i);
            CHECK_INT(zd_index_put(ix, gids[i], NULL, ps[i]), 0);
        }
    }
    static const char *const specs[] = {
        "employees:buckets=0,10,50,300,1000",
        "employees:buckets=9,10,11",
        "employees:buckets=-1,0,1,2999",
        "employees:buckets=100000",
        "registered_capital:buckets=0,100,100.5,100.51,1999.99",
        "age(birth_date):buckets=18,35,60",
        "age(birth_date):buckets=0,1,2,59,60,61,100",
        "age(founded):buckets=3",
    };
    static const int days[][3] = {{2024, 6, 15}, {2024, 2, 29}, {2025, 3, 1}, {2024, 6, 14}};
    for (int s = 0; s < 4; s++) {
        roaring_bitmap_t *aud = roaring_bitmap_create();
        for (int i = 0; i < NPROF; i++) {
            /* The whole population, half of it, a small random part, nothing. */
            bool in = s == 0 || (s == 1 && i % 2) || (s == 2 && rn(50) == 0);
            if (ps[i] && in)
                roaring_bitmap_add(aud, gids[i]);
        }
        for (size_t k = 0; k < sizeof(specs) / sizeof(specs[0]); k++)
            for (int d = 0; d < 4; d++)
                check_buckets(specs[k], ix, ps, gids, aud,
                              zd_date_from_ymd(days[d][0], days[d][1], days[d][2]));
        roaring_bitmap_free(aud);
    }
    for (int i = 0; i < NPROF; i++)
        zd_profile_free(ps[i]);
    free(ps);
    free(gids);
    zd_index_free(ix);
}

/* ---- random samples -------------------------------------------------------------------- */

static void test_sample(void)
{
    /* 64 members spread over partitions and containers. */
    roaring_bitmap_t *aud = roaring_bitmap_create();
    uint32_t members[64];
    for (int i = 0; i < 64; i++) {
        members[i] = zd_gid(i % 5, (uint32_t)(i * 70001 % 1000003));
        roaring_bitmap_add(aud, members[i]);
    }
    CHECK_INT(roaring_bitmap_get_cardinality(aud), 64);
    uint32_t a[100], b[100];
    CHECK_INT(zd_audience_sample(aud, 10, 42, a), 10);
    CHECK_INT(zd_audience_sample(aud, 10, 42, b), 10);
    CHECK(memcmp(a, b, sizeof(uint32_t) * 10) == 0);
    CHECK_INT(zd_audience_sample(aud, 10, 43, b), 10);
    CHECK(memcmp(a, b, sizeof(uint32_t) * 10) != 0);
    /* More than there are: all of them, each once. */
    CHECK_INT(zd_audience_sample(aud, 100, 7, a), 64);
    roaring_bitmap_t *seen = roaring_bitmap_create();
    for (int i = 0; i < 64; i++)
        roaring_bitmap_add(seen, a[i]);
    CHECK(roaring_bitmap_equals(seen, aud));
    roaring_bitmap_free(seen);
    CHECK_INT(zd_audience_sample(aud, 0, 7, a), 0);
    roaring_bitmap_t *empty = roaring_bitmap_create();
    CHECK_INT(zd_audience_sample(empty, 10, 7, a), 0);
    roaring_bitmap_free(empty);

    /* Uniform: 20,000 draws of 5 from 64 give each member 1562.5 hits on average (sd about
     * 38), and each position of the draw each member 312.5 times (sd about 17). Deterministic
     * seeds; the bounds are loose (about 6 sd) but catch any bias by rank or by order. */
    enum { DRAWS = 20000, K = 5 };
    static int hits[64], first[64], last[64];
    for (uint64_t seed = 0; seed < DRAWS; seed++) {
        int n = zd_audience_sample(aud, K, seed * 1000003 + 17, a);
        CHECK(n == K);
        for (int j = 0; j < n; j++) {
            int m = -1;
            for (int i = 0; i < 64; i++)
                if (members[i] == a[j])
                    m = i;
            if (m < 0) {
                CHECK(!"sampled a member");
                continue;
            }
            for (int q = 0; q < j; q++)
                CHECK(a[q] != a[j]);
            hits[m]++;
            first[m] += j == 0;
            last[m] += j == K - 1;
        }
    }
    int hmin = DRAWS, hmax = 0, fmin = DRAWS, fmax = 0, lmin = DRAWS, lmax = 0;
    for (int i = 0; i < 64; i++) {
        hmin = hits[i] < hmin ? hits[i] : hmin;
        hmax = hits[i] > hmax ? hits[i] : hmax;
        fmin = first[i] < fmin ? first[i] : fmin;
        fmax = first[i] > fmax ? first[i] : fmax;
        lmin = last[i] < lmin ? last[i] : lmin;
        lmax = last[i] > lmax ? last[i] : lmax;
    }
    printf("sample: hits per member %d..%d, first %d..%d, last %d..%d\n", hmin, hmax, fmin, fmax,
           lmin, lmax);
    CHECK(hmin > 1330 && hmax < 1800);
    CHECK(fmin > 210 && fmax < 420);
    CHECK(lmin > 210 && lmax < 420);

    /* A large audience: a sample of the maximum size is drawn by rank, members only. */
    roaring_bitmap_t *big = roaring_bitmap_create();
    roaring_bitmap_add_range(big, 5, 3000005);
    roaring_bitmap_add_range(big, zd_gid(9, 0), zd_gid(9, 0) + 100000);
    static uint32_t out[ZD_PREVIEW_SAMPLE_MAX];
    CHECK_INT(zd_audience_sample(big, ZD_PREVIEW_SAMPLE_MAX, 1, out), ZD_PREVIEW_SAMPLE_MAX);
    int outside = 0, in_tail = 0;
    for (int i = 0; i < ZD_PREVIEW_SAMPLE_MAX; i++) {
        outside += !roaring_bitmap_contains(big, out[i]);
        in_tail += out[i] >= zd_gid(9, 0);
    }
    CHECK_INT(outside, 0);
    /* 100,000 of 3,100,000 members: about 32 of 1000. */
    CHECK(in_tail > 10 && in_tail < 60);
    roaring_bitmap_free(big);
    roaring_bitmap_free(aud);
}

int main(void)
{
    uint64_t seed = 20260601;
    const char *env = getenv("ZD_SEED");
    if (env && *env)
        seed = strtoull(env, NULL, 10);
    printf("audience test seed: %" PRIu64 " (replay with ZD_SEED=%" PRIu64 ")\n", seed, seed);
    rng_state = seed * UINT64_C(0x9E3779B97F4A7C15) + 1;
    schema = zd_schema_default();
    test_specs();
    test_labels();
    test_counts();
    test_sample();
    zd_schema_free(schema);
    return check_report("audience");
}
