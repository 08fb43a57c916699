/* The benchmark's rule list (bench/rules.txt): each rule as zhida text, SQL and Redis
 * commands, shared by bench_audience (zhida side) and bench_baseline (PostgreSQL, Redis, HTTP). */
#ifndef ZD_BENCH_RULES_FILE_H
#define ZD_BENCH_RULES_FILE_H

#include <stdint.h>

typedef struct zd_bench_rule {
    char *name;
    char *shape;
    char *zhida; /* rule text, unexpanded */
    char *sql;   /* WHERE clause, placeholders expanded */
    int nredis;
    char **redis; /* commands, placeholders expanded */
} zd_bench_rule;

typedef struct zd_bench_rules {
    int n;
    zd_bench_rule *rules;
    int nsegments;
    char **segment_names;
    char **segment_texts;
} zd_bench_rules;

/* Reads path, expanding {AGE_GE:N} and {AGE_GE_DAY:N} against `today` (a day number).
 * Returns 0 and *out (caller frees with zd_bench_rules_free()), or -errno after printing
 * the file, line and problem to stderr. */
int zd_bench_rules_load(const char *path, int32_t today, zd_bench_rules **out);
void zd_bench_rules_free(zd_bench_rules *r);

/* The segment text for name, or NULL. Borrowed. */
const char *zd_bench_rules_segment(const zd_bench_rules *r, const char *name);

/* Milliseconds between two CLOCK_MONOTONIC readings, and the q-quantile (0..1) of n samples
 * (sorts xs in place; nearest-rank). */
double zd_bench_now_ms(void);
double zd_bench_quantile(double *xs, int n, double q);

/* The benchmark day: ZHIDA_TODAY if set, else 2026-07-01, so repeated runs compare. */
int32_t zd_bench_today(void);

#endif
