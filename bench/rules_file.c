/* Parser of bench/rules.txt and the small timing helpers both benchmark programs share. */
#include "bench/rules_file.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/date.h"

#define DEFAULT_TODAY "2026-07-01"

double zd_bench_now_ms(void)
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

double zd_bench_quantile(double *xs, int n, double q)
{
    if (n <= 0)
        return 0;
    qsort(xs, (size_t)n, sizeof(*xs), cmp_double);
    int k = (int)(q * n + 0.999999) - 1; /* nearest rank */
    if (k < 0)
        k = 0;
    if (k >= n)
        k = n - 1;
    /* For the median of an even count, average the two middle samples. */
    if (q == 0.5 && n % 2 == 0)
        return (xs[n / 2 - 1] + xs[n / 2]) / 2;
    return xs[k];
}

int32_t zd_bench_today(void)
{
    const char *s = getenv("ZHIDA_TODAY");
    int32_t d;
    if (s && zd_date_parse(s, &d) == 0)
        return d;
    zd_date_parse(DEFAULT_TODAY, &d);
    return d;
}

/* Copies s with placeholders expanded. Returns NULL (after a message) on a bad placeholder. */
static char *expand(const char *s, int32_t today, const char *path, int lineno)
{
    size_t cap = strlen(s) * 2 + 64, len = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    while (*s) {
        if (*s == '{') {
            int years;
            int used = 0;
            int32_t t;
            char date[11];
            if (sscanf(s, "{AGE_GE:%d}%n", &years, &used) == 1 && used > 0) {
                t = zd_date_age_threshold(today, years);
                zd_date_format(t, date);
                len += (size_t)snprintf(out + len, cap - len, "%s", date);
                s += used;
                continue;
            }
            if (sscanf(s, "{AGE_GE_DAY:%d}%n", &years, &used) == 1 && used > 0) {
                t = zd_date_age_threshold(today, years);
                len += (size_t)snprintf(out + len, cap - len, "%d", (int)t);
                s += used;
                continue;
            }
            fprintf(stderr, "%s:%d: unknown placeholder near \"%.20s\"\n", path, lineno, s);
            free(out);
            return NULL;
        }
        if (len + 2 >= cap) {
            cap *= 2;
            char *p = realloc(out, cap);
            if (!p) {
                free(out);
                return NULL;
            }
            out = p;
        }
        out[len++] = *s++;
    }
    out[len] = '\0';
    return out;
}

const char *zd_bench_rules_segment(const zd_bench_rules *r, const char *name)
{
    for (int i = 0; i < r->nsegments; i++)
        if (strcmp(r->segment_names[i], name) == 0)
            return r->segment_texts[i];
    return NULL;
}

void zd_bench_rules_free(zd_bench_rules *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++) {
        zd_bench_rule *x = &r->rules[i];
        free(x->name);
        free(x->shape);
        free(x->zhida);
        free(x->sql);
        for (int k = 0; k < x->nredis; k++)
            free(x->redis[k]);
        free(x->redis);
    }
    free(r->rules);
    for (int i = 0; i < r->nsegments; i++) {
        free(r->segment_names[i]);
        free(r->segment_texts[i]);
    }
    free(r->segment_names);
    free(r->segment_texts);
    free(r);
}

static int grow(void **p, int n, size_t size)
{
    void *q = realloc(*p, (size_t)(n + 1) * size);
    if (!q)
        return -ENOMEM;
    *p = q;
    return 0;
}

int zd_bench_rules_load(const char *path, int32_t today, zd_bench_rules **out)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        fprintf(stderr, "%s: %s\n", path, strerror(e));
        return -e;
    }
    zd_bench_rules *r = calloc(1, sizeof(*r));
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = -ENOMEM;
    if (!r)
        goto fail;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (n && isspace((unsigned char)line[n - 1]))
            line[--n] = '\0';
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (!*p || *p == '#')
            continue;
        char *word = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (*p)
            *p++ = '\0';
        while (isspace((unsigned char)*p))
            p++;
        zd_bench_rule *cur = r->n ? &r->rules[r->n - 1] : NULL;
        rc = -EINVAL;
        if (strcmp(word, "segment") == 0) {
            char *name = p;
            while (*p && !isspace((unsigned char)*p))
                p++;
            if (*p)
                *p++ = '\0';
            while (isspace((unsigned char)*p))
                p++;
            if (!*name || !*p) {
                fprintf(stderr, "%s:%d: segment needs a name and a rule\n", path, lineno);
                goto fail;
            }
            if (grow((void **)&r->segment_names, r->nsegments, sizeof(char *)) ||
                grow((void **)&r->segment_texts, r->nsegments, sizeof(char *)))
                goto oom;
            r->segment_names[r->nsegments] = strdup(name);
            r->segment_texts[r->nsegments] = strdup(p);
            r->nsegments++;
        } else if (strcmp(word, "rule") == 0) {
            if (!*p) {
                fprintf(stderr, "%s:%d: rule needs a name\n", path, lineno);
                goto fail;
            }
            if (grow((void **)&r->rules, r->n, sizeof(zd_bench_rule)))
                goto oom;
            memset(&r->rules[r->n], 0, sizeof(zd_bench_rule));
            r->rules[r->n].name = strdup(p);
            r->n++;
        } else if (!cur) {
            fprintf(stderr, "%s:%d: \"%s\" outside a rule\n", path, lineno, word);
            goto fail;
        } else if (strcmp(word, "shape") == 0) {
            free(cur->shape);
            cur->shape = strdup(p);
        } else if (strcmp(word, "zhida") == 0) {
            free(cur->zhida);
            cur->zhida = strdup(p);
        } else if (strcmp(word, "sql") == 0) {
            free(cur->sql);
            if (!(cur->sql = expand(p, today, path, lineno)))
                goto fail;
        } else if (strcmp(word, "redis") == 0) {
            if (grow((void **)&cur->redis, cur->nredis, sizeof(char *)))
                goto oom;
            if (!(cur->redis[cur->nredis] = expand(p, today, path, lineno)))
                goto fail;
            cur->nredis++;
        } else {
            fprintf(stderr, "%s:%d: unknown directive \"%s\"\n", path, lineno, word);
            goto fail;
        }
    }
    for (int i = 0; i < r->n; i++) {
        zd_bench_rule *x = &r->rules[i];
        if (!x->zhida || !x->sql || !x->nredis) {
            fprintf(stderr, "%s: rule %s needs zhida, sql and redis lines\n", path, x->name);
            rc = -EINVAL;
            goto fail;
        }
        if (!x->shape)
            x->shape = strdup("");
    }
    free(line);
    fclose(f);
    *out = r;
    return 0;
oom:
    rc = -ENOMEM;
    fprintf(stderr, "%s: out of memory\n", path);
fail:
    free(line);
    fclose(f);
    zd_bench_rules_free(r);
    return rc;
}
