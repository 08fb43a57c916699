/* The zhida side of the audience benchmark: builds the bitmap index from an NDJSON population
 * exactly as zhidad would (validate, partition, dense ids), then times every rule's audience.
 * Prints machine-readable "info" and "result" lines that bench/report.py turns into a table. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <roaring/roaring.h>

#include "bench/rules_file.h"
#include "common/date.h"
#include "matcher/rule.h"
#include "profiles/index.h"
#include "profiles/profile.h"
#include "profiles/schema.h"

/* zhidad's partition count for the benchmark (SPEC §7: fixed number of partitions). */
#define PARTITIONS 16
#define ERRORS_SHOWN 5

static void usage(void)
{
    fputs("usage: zd_bench_audience [--rules FILE] [--runs N] [--only NAME] FILE|-\n"
          "  Reads NDJSON profiles (zhida demo-population), builds the index and times the\n"
          "  audience of each rule of bench/rules.txt (day: $ZHIDA_TODAY or 2026-07-01).\n",
          stderr);
}

/* Resident set size in bytes from /proc/self/status, 0 if unknown. */
static long long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    long long kb = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %lld kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

static const char *lookup_segment(const char *name, void *udata)
{
    return zd_bench_rules_segment(udata, name);
}

/* Loads every line of in into ix. Returns the number of profiles indexed or -errno. */
static long long build(FILE *in, const zd_schema *s, zd_index *ix, long long *failed)
{
    uint32_t dense[PARTITIONS] = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long long ok = 0, lineno = 0;
    *failed = 0;
    while ((n = getline(&line, &cap, in)) >= 0) {
        lineno++;
        if (n <= 1)
            continue;
        cJSON *doc = cJSON_ParseWithLength(line, (size_t)n);
        const cJSON *idj = cJSON_GetObjectItemCaseSensitive(doc, "id");
        if (!cJSON_IsString(idj)) {
            if ((*failed)++ < ERRORS_SHOWN)
                fprintf(stderr, "line %lld: not a JSON object with a string \"id\"\n", lineno);
            cJSON_Delete(doc);
            continue;
        }
        char *id = strdup(idj->valuestring);
        /* zd_profile_from_json takes the document without its id, as PUT /v1/profiles/{id}. */
        cJSON_DeleteItemFromObjectCaseSensitive(doc, "id");
        zd_profile *p = NULL;
        zd_error err;
        memset(&err, 0, sizeof(err));
        int rc = id ? zd_profile_from_json(s, id, doc, &p, &err) : -ENOMEM;
        if (rc < 0) {
            if ((*failed)++ < ERRORS_SHOWN)
                fprintf(stderr, "line %lld: %s [%s] %s\n", lineno, err.code, err.field,
                        err.message);
        } else {
            int part = zd_partition_of(id, PARTITIONS);
            uint32_t gid = zd_gid(part, dense[part]++);
            if (zd_index_put(ix, gid, NULL, p) < 0) {
                fprintf(stderr, "zd_index_put failed at line %lld\n", lineno);
                zd_profile_free(p);
                free(id);
                cJSON_Delete(doc);
                free(line);
                return -ENOMEM;
            }
            ok++;
        }
        zd_profile_free(p);
        free(id);
        cJSON_Delete(doc);
    }
    free(line);
    return ok;
}

int main(int argc, char **argv)
{
    const char *rules_path = "bench/rules.txt", *input = NULL, *only = NULL;
    int runs = 200;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rules") == 0 && i + 1 < argc) {
            rules_path = argv[++i];
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (!input && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0)) {
            input = argv[i];
        } else {
            usage();
            return 2;
        }
    }
    if (!input || runs < 1) {
        usage();
        return 2;
    }

    int32_t today = zd_bench_today();
    zd_bench_rules *rules = NULL;
    if (zd_bench_rules_load(rules_path, today, &rules) < 0)
        return 2;
    FILE *in = strcmp(input, "-") == 0 ? stdin : fopen(input, "r");
    if (!in) {
        fprintf(stderr, "%s: %s\n", input, strerror(errno));
        zd_bench_rules_free(rules);
        return 2;
    }
    zd_schema *s = zd_schema_default();
    zd_index *ix = s ? zd_index_new(s) : NULL;
    if (!ix) {
        fputs("out of memory\n", stderr);
        return 2;
    }

    long long rss0 = rss_bytes();
    double t0 = zd_bench_now_ms();
    long long failed = 0;
    long long nprof = build(in, s, ix, &failed);
    double t1 = zd_bench_now_ms();
    zd_index_optimize(ix);
    double t2 = zd_bench_now_ms();
    if (in != stdin)
        fclose(in);
    if (nprof < 0)
        return 2;
    long long rss1 = rss_bytes();
    zd_index_stats st = {0};
    zd_index_get_stats(ix, &st);
    double per = nprof ? (double)st.total_bytes / (double)nprof : 0;
    printf("info engine=zhida profiles=%lld failed=%lld build_s=%.3f optimize_s=%.3f "
           "build_rate=%.0f bitmaps=%llu bitmap_bytes=%llu id_bytes=%llu index_bytes=%llu "
           "bytes_per_profile=%.1f rss_delta_bytes=%lld rss_per_profile=%.1f\n",
           nprof, failed, (t1 - t0) / 1e3, (t2 - t1) / 1e3,
           (t1 - t0) > 0 ? (double)nprof / ((t1 - t0) / 1e3) : 0.0, (unsigned long long)st.bitmaps,
           (unsigned long long)st.bitmap_bytes, (unsigned long long)st.id_bytes,
           (unsigned long long)st.total_bytes, per, rss1 - rss0,
           nprof ? (double)(rss1 - rss0) / (double)nprof : 0.0);
    fflush(stdout);

    double *eval = malloc(sizeof(double) * (size_t)runs);
    double *comp = malloc(sizeof(double) * (size_t)runs);
    int status = 0;
    for (int i = 0; i < rules->n && eval && comp; i++) {
        const zd_bench_rule *br = &rules->rules[i];
        if (only && strcmp(only, br->name) != 0)
            continue;
        uint64_t count = 0;
        bool bad = false;
        /* A few unmeasured runs first, so caches and the allocator are warm for every rule. */
        for (int k = -3; k < runs && !bad; k++) {
            double a = zd_bench_now_ms();
            zd_rule *r = NULL;
            zd_rule_error err;
            memset(&err, 0, sizeof(err));
            if (zd_rule_compile(s, br->zhida, strlen(br->zhida), lookup_segment, rules, &r, &err) <
                0) {
                fprintf(stderr, "rule %s: %s at %d:%d: %s\n", br->name, err.code, err.line,
                        err.column, err.message);
                bad = true;
                break;
            }
            double b = zd_bench_now_ms();
            roaring_bitmap_t *bm = zd_rule_audience(r, ix, today);
            count = bm ? roaring_bitmap_get_cardinality(bm) : 0;
            double c = zd_bench_now_ms();
            roaring_bitmap_free(bm);
            zd_rule_free(r);
            if (k >= 0) {
                eval[k] = c - a;
                comp[k] = b - a;
            }
        }
        if (bad) {
            printf("result engine=zhida rule=%s error=compile\n", br->name);
            status = 1;
            continue;
        }
        double med = zd_bench_quantile(eval, runs, 0.5);
        double p95 = zd_bench_quantile(eval, runs, 0.95);
        double cmed = zd_bench_quantile(comp, runs, 0.5);
        printf("result engine=zhida rule=%s count=%llu median_ms=%.4f p95_ms=%.4f "
               "compile_ms=%.4f runs=%d\n",
               br->name, (unsigned long long)count, med, p95, cmed, runs);
        fflush(stdout);
    }
    free(eval);
    free(comp);
    zd_index_free(ix);
    zd_schema_free(s);
    zd_bench_rules_free(rules);
    return status;
}
