/* Reverse matching benchmark (issue #7): one profile change (its old and new documents) tested
 * against N active policies' rules, with the rule index (matcher/policy_index.h) and by
 * evaluating every rule in turn, in the same run; both answers are compared for every change
 * (a mismatch exits 1, so the small run is also a unit test).
 *
 *   zd_bench_reverse [--policies 10000] [--changes 20000] [--seed 1]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/date.h"
#include "matcher/policy_index.h"
#include "matcher/rule.h"
#include "profiles/profile.h"
#include "profiles/schema.h"

static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static int rn(int n)
{
    return (int)(rnd() % (uint64_t)n);
}

static const char *const sections = "ABCDEFGHIJKLMNOPQRST";
static const char *const scales[] = {"micro", "small", "medium", "large"};

static void city(char *buf)
{
    sprintf(buf, "33%02d", 1 + rn(11));
}
static void district(char *buf)
{
    sprintf(buf, "33%02d%02d", 1 + rn(11), 1 + rn(12));
}

/* One rule of a mix like the ones provinces publish: mostly a place and a kind of business or
 * person, some by tag or followed topic, a few with no key at all. */
static void gen_rule(char *buf, size_t cap)
{
    char r[16], r2[16];
    int t = rn(100);
    if (t < 35) {
        city(r);
        snprintf(buf, cap,
                 "kind = \"enterprise\" and region within \"%s\" and industry within \"%c\" and "
                 "employees < %d",
                 r, sections[rn(20)], 50 + rn(500));
    } else if (t < 55) {
        district(r);
        snprintf(buf, cap, "kind = \"citizen\" and region within \"%s\" and age(birth_date) >= %d",
                 r, 18 + rn(50));
    } else if (t < 70) {
        city(r);
        snprintf(buf, cap,
                 "tags has \"t%d\" and region within \"%s\" and not tags has \"dishonest\"",
                 rn(200), r);
    } else if (t < 80) {
        snprintf(buf, cap, "follows has \"topic%d\" or tags has \"t%d\"", rn(300), rn(200));
    } else if (t < 90) {
        city(r);
        district(r2);
        snprintf(buf, cap,
                 "(region within \"%s\" or region within \"%s\") and industry within [\"%c%02d\", "
                 "\"%c\"] and age(founded) < %d",
                 r, r2, sections[rn(20)], 10 + rn(80), sections[rn(20)], 1 + rn(10));
    } else if (t < 98) {
        snprintf(buf, cap,
                 "kind = \"enterprise\" and scale in [\"micro\", \"small\"] and revenue < %d",
                 1000000 + rn(10000000));
    } else {
        snprintf(buf, cap, "employees < %d and age(founded) < %d", 10 + rn(100), 1 + rn(5));
    }
}

static zd_profile *gen_profile(const zd_schema *s, int i)
{
    char json[1024], r[16], id[32];
    district(r);
    snprintf(id, sizeof(id), "p%d", i);
    int n;
    if (rn(2)) {
        n = snprintf(
            json, sizeof(json),
            "{\"kind\":\"enterprise\",\"region\":\"%s\",\"attrs\":{\"industry\":\"%c%02d\","
            "\"employees\":%d,\"founded\":\"20%02d-0%d-01\",\"scale\":\"%s\","
            "\"revenue\":%d},\"tags\":[\"t%d\",\"t%d\"],\"follows\":[\"topic%d\"]}",
            r, sections[rn(20)], 10 + rn(80), rn(1000), 10 + rn(16), 1 + rn(9), scales[rn(4)],
            rn(20000000), rn(200), rn(200), rn(300));
    } else {
        n = snprintf(json, sizeof(json),
                     "{\"kind\":\"citizen\",\"region\":\"%s\",\"attrs\":{\"birth_date\":"
                     "\"19%02d-03-08\"},\"tags\":[\"t%d\"],\"follows\":[\"topic%d\",\"topic%d\"]}",
                     r, 40 + rn(60), rn(200), rn(300), rn(300));
    }
    zd_profile *p = NULL;
    zd_error err;
    if (zd_profile_parse(s, id, json, (size_t)n, &p, &err) != 0) {
        fprintf(stderr, "profile: %s\n", err.message);
        exit(2);
    }
    return p;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The policies newly matched by a change old -> new (old may be NULL), into out. */
static int newly(int *mn, int nn, const int *mo, int no, int *out)
{
    int k = 0, j = 0;
    for (int i = 0; i < nn; i++) {
        while (j < no && mo[j] < mn[i])
            j++;
        if (j < no && mo[j] == mn[i])
            continue;
        out[k++] = mn[i];
    }
    return k;
}

int main(int argc, char **argv)
{
    int npol = 10000, nchg = 20000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--policies") == 0)
            npol = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--changes") == 0)
            nchg = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seed") == 0)
            rng_state ^= (uint64_t)strtoull(argv[i + 1], NULL, 10) * 0x9E3779B97F4A7C15ULL;
    }
    zd_schema *s = zd_schema_default();
    int32_t today;
    zd_date_parse("2026-07-01", &today);
    zd_rule **rules = calloc((size_t)npol, sizeof(*rules));
    zd_policy_index *x = zd_policy_index_new();
    double t0 = now_s();
    for (int i = 0; i < npol; i++) {
        char text[512];
        gen_rule(text, sizeof(text));
        zd_rule_error err;
        if (zd_rule_compile(s, text, strlen(text), NULL, NULL, &rules[i], &err) != 0) {
            fprintf(stderr, "rule %s: %s\n", text, err.message);
            return 2;
        }
    }
    double t1 = now_s();
    for (int i = 0; i < npol; i++)
        if (zd_policy_index_add(x, rules[i], i) != 0)
            return 2;
    double t2 = now_s();
    int nprof = 2000;
    zd_profile **prof = calloc((size_t)nprof, sizeof(*prof));
    for (int i = 0; i < nprof; i++)
        prof[i] = gen_profile(s, i);
    int *a = malloc(sizeof(int) * (size_t)npol), *b = malloc(sizeof(int) * (size_t)npol);
    int *c = malloc(sizeof(int) * (size_t)npol), *d = malloc(sizeof(int) * (size_t)npol);
    int *o1 = malloc(sizeof(int) * (size_t)npol), *o2 = malloc(sizeof(int) * (size_t)npol);
    /* A change: profile i's document replaced by profile j's (another place, other tags). */
    double ti = 0, tb = 0;
    long matched = 0, newly_total = 0, mismatches = 0;
    for (int k = 0; k < nchg; k++) {
        const zd_profile *old = k % 10 == 0 ? NULL : prof[(k * 7) % nprof];
        const zd_profile *nw = prof[(k * 13 + 1) % nprof];
        double s0 = now_s();
        int na = zd_policy_index_match(x, nw, today, a, npol);
        int nb = old ? zd_policy_index_match(x, old, today, b, npol) : 0;
        int n1 = newly(a, na, b, nb, o1);
        double s1 = now_s();
        int nc = zd_policy_index_match_all(x, nw, today, c, npol);
        int nd = old ? zd_policy_index_match_all(x, old, today, d, npol) : 0;
        int n2 = newly(c, nc, d, nd, o2);
        double s2 = now_s();
        ti += s1 - s0;
        tb += s2 - s1;
        matched += na;
        newly_total += n1;
        if (n1 != n2 || memcmp(o1, o2, sizeof(int) * (size_t)n1) != 0)
            mismatches++;
    }
    zd_policy_index_stats st;
    zd_policy_index_get_stats(x, &st);
    printf("policies %d (always-check %d, keys %d), changes %d\n", npol, st.always, st.keys, nchg);
    printf("compile %.1f ms, index build %.1f ms\n", (t1 - t0) * 1e3, (t2 - t1) * 1e3);
    printf("matched per document %.1f, newly matched per change %.2f, candidates per document "
           "%.1f\n",
           (double)matched / nchg, (double)newly_total / nchg,
           (double)st.candidates / (nchg * 1.9));
    printf("index:       %.1f us per change\n", ti / nchg * 1e6);
    printf("brute force: %.1f us per change (%.1fx)\n", tb / nchg * 1e6, tb / (ti > 0 ? ti : 1));
    printf("mismatches: %ld\n", mismatches);
    for (int i = 0; i < nprof; i++)
        zd_profile_free(prof[i]);
    zd_policy_index_free(x);
    for (int i = 0; i < npol; i++)
        zd_rule_free(rules[i]);
    free(rules);
    free(prof);
    free(a);
    free(b);
    free(c);
    free(d);
    free(o1);
    free(o2);
    zd_schema_free(s);
    return mismatches ? 1 : 0;
}
