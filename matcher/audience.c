/* Bucket breakdowns and random samples of an audience (docs/API.md, "Preview"). Buckets are
 * counted with the same range scans as `employees < N` and `age(x) < N` rules, so they agree
 * with those rules exactly. */
#include "matcher/audience.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/date.h"
#include "common/text.h"

/* Ages are whole years; boundaries beyond any real age are refused rather than clamped. */
#define AGE_BOUND_MAX 1000
#define BUCKETS_OPT "buckets="

bool zd_buckets_is_spec(const char *spec)
{
    if (strncmp(spec, "age(", 4) == 0)
        return true;
    const char *colon = strchr(spec, ':');
    return colon && strncmp(colon + 1, "buckets", 7) == 0;
}

/* v (scaled by 10^decimals) in the attribute's units: "12", "-3.5", "99.99". */
static void format_scaled(int64_t v, int decimals, char *buf, size_t cap)
{
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, scale = 1;
    for (int i = 0; i < decimals; i++)
        scale *= 10;
    uint64_t whole = mag / scale, frac = mag % scale;
    int n = snprintf(buf, cap, "%s%" PRIu64, v < 0 ? "-" : "", whole);
    if (frac == 0 || n < 0 || (size_t)n >= cap)
        return;
    int digits = decimals;
    while (frac % 10 == 0) {
        frac /= 10;
        digits--;
    }
    snprintf(buf + n, cap - (size_t)n, ".%0*" PRIu64, digits, frac);
}

static int bad(zd_error *err, const char *spec, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets err to invalid_breakdown for spec with the printf-style detail and returns -EINVAL. */
static int bad(zd_error *err, const char *spec, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return zd_error_set(err, "invalid_breakdown", "breakdown", "breakdown \"%.64s\": %s", spec,
                        what);
}

/* Parses the boundary text s[0..len) of b's attribute into *v; answers errors itself. */
static int parse_bound(const zd_buckets *b, const char *spec, const char *s, size_t len, int64_t *v,
                       zd_error *err)
{
    char item[48];
    snprintf(item, sizeof(item), "%.*s", (int)(len < 40 ? len : 40), s);
    int decimals = b->age ? 0 : b->attr->decimals;
    int rem = 0;
    int rc = len ? zd_decimal_parse(s, len, decimals, v, &rem) : -EINVAL;
    if (rc == -ERANGE || (rc == 0 && b->age && (*v < 0 || *v > AGE_BOUND_MAX))) {
        if (b->age)
            return bad(err, spec, "age boundary %s is outside 0-%d years", item, AGE_BOUND_MAX);
        return bad(err, spec, "boundary %s is out of range", item);
    }
    if (rc != 0 && len == 0)
        return bad(err, spec, "an empty boundary: write the boundaries as buckets=0,10,50");
    if (rc != 0)
        return bad(err, spec, "boundary \"%s\" is not a decimal number (write 10 or 2.5)", item);
    if (rem != 0 && b->age)
        return bad(err, spec, "boundary %s has decimals: ages are whole years", item);
    if (rem != 0)
        return bad(err, spec, "boundary %s has more decimals than %s has (%d)", item, b->attr->name,
                   decimals);
    return 0;
}

int zd_buckets_parse(const zd_schema *s, const char *spec, zd_buckets *out, zd_error *err)
{
    memset(out, 0, sizeof(*out));
    char name[ZD_ATTR_NAME_MAX];
    const char *nstart = spec, *nend, *rest;
    if (strncmp(spec, "age(", 4) == 0) {
        out->age = true;
        nstart = spec + 4;
        nend = strchr(nstart, ')');
        const char *colon = strchr(nstart, ':');
        if (!nend || (colon && colon < nend))
            return bad(err, spec, "expected age(<date attribute>)");
        rest = nend + 1;
    } else {
        nend = strchr(spec, ':');
        rest = nend;
    }
    size_t nlen = (size_t)(nend - nstart);
    if (nlen == 0 || nlen >= sizeof(name))
        return bad(err, spec, "names no attribute");
    memcpy(name, nstart, nlen);
    name[nlen] = '\0';
    out->attr = zd_schema_find(s, name);
    if (!out->attr) {
        const char *near = zd_schema_suggest(s, name);
        return zd_error_set(err, "unknown_field", "breakdown",
                            "breakdown \"%.64s\": unknown field \"%s\"%s%s%s", spec, name,
                            near ? "; did you mean \"" : "", near ? near : "", near ? "\"?" : "");
    }
    const char *tname = zd_type_name(out->attr->type);
    if (out->age && out->attr->type != ZD_T_DATE)
        return bad(err, spec, "age() takes a date attribute; %s is a %s", name, tname);
    if (!out->age && out->attr->type == ZD_T_DATE)
        return bad(err, spec, "%s is a date: bucket it by age, as age(%s):buckets=18,35,60", name,
                   name);
    if (!out->age && out->attr->type != ZD_T_NUMBER)
        return bad(err, spec, "buckets are for numbers and age(date); %s is a %s", name, tname);
    if (rest[0] != ':' || strncmp(rest + 1, BUCKETS_OPT, strlen(BUCKETS_OPT)) != 0)
        return bad(err, spec, "expected \":buckets=\" and the boundaries after %s%s%s",
                   out->age ? "age(" : "", name, out->age ? ")" : "");

    const char *p = rest + 1 + strlen(BUCKETS_OPT);
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (out->n == ZD_PREVIEW_BUCKETS_MAX)
            return bad(err, spec, "more than %d boundaries", ZD_PREVIEW_BUCKETS_MAX);
        int64_t v;
        if (parse_bound(out, spec, p, len, &v, err) != 0)
            return -EINVAL;
        if (out->n > 0 && v <= out->bounds[out->n - 1]) {
            char prev[32];
            format_scaled(out->bounds[out->n - 1], out->age ? 0 : out->attr->decimals, prev,
                          sizeof(prev));
            return bad(err, spec, "boundaries must be strictly ascending: %.*s after %s",
                       (int)(len < 40 ? len : 40), p, prev);
        }
        out->bounds[out->n++] = v;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

const char *zd_buckets_label(const zd_buckets *b, int i, char *buf, size_t cap)
{
    int decimals = b->age ? 0 : b->attr->decimals;
    char lo[32], hi[32];
    if (i == 0) {
        format_scaled(b->bounds[0], decimals, lo, sizeof(lo));
        snprintf(buf, cap, "<%s", lo);
    } else if (i == b->n) {
        format_scaled(b->bounds[b->n - 1], decimals, lo, sizeof(lo));
        snprintf(buf, cap, ">=%s", lo);
    } else {
        /* Ascending boundaries: the bucket holds at least one value, so hi >= lo. */
        int64_t l = b->bounds[i - 1], h = b->bounds[i] - 1;
        format_scaled(l, decimals, lo, sizeof(lo));
        format_scaled(h, decimals, hi, sizeof(hi));
        if (l == h)
            snprintf(buf, cap, "%s", lo);
        else
            snprintf(buf, cap, "%s-%s", lo, hi);
    }
    return buf;
}

int zd_buckets_count(const zd_buckets *b, const zd_index *ix, const roaring_bitmap_t *aud,
                     int32_t today, uint64_t *counts)
{
    const int a = b->attr->index;
    const roaring_bitmap_t *has = zd_index_exists(ix, a);
    uint64_t total = roaring_bitmap_get_cardinality(aud);
    /* rest: the members with a value not yet in a bucket. Each scan is restricted to it, so
     * the scans get cheaper as the buckets fill, and each member is counted exactly once. */
    roaring_bitmap_t *rest = has ? roaring_bitmap_and(aud, has) : roaring_bitmap_create();
    if (!rest)
        return -ENOMEM;
    counts[b->n + 1] = total - roaring_bitmap_get_cardinality(rest);
    for (int i = 0; i < b->n; i++) {
        if (roaring_bitmap_is_empty(rest)) {
            counts[i] = 0;
            continue;
        }
        /* x < bound; for an age, age < N <=> born after the latest birth date of age N. */
        roaring_bitmap_t *below =
            b->age ? zd_index_range(ix, a, ZD_CMP_GT,
                                    zd_date_age_threshold(today, (int)b->bounds[i]), rest)
                   : zd_index_range(ix, a, ZD_CMP_LT, b->bounds[i], rest);
        if (!below) {
            roaring_bitmap_free(rest);
            return -ENOMEM;
        }
        counts[i] = roaring_bitmap_get_cardinality(below);
        roaring_bitmap_andnot_inplace(rest, below);
        roaring_bitmap_free(below);
    }
    counts[b->n] = roaring_bitmap_get_cardinality(rest);
    roaring_bitmap_free(rest);
    return 0;
}

/* ---- random samples ------------------------------------------------------------------- */

/* splitmix64: a small generator whose whole state is the seed, so a sample is reproducible
 * from the seed alone. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in [0, n), n > 0: rejects the values below 2^64 mod n, which would make the low
 * residues more likely. */
static uint64_t random_below(uint64_t *state, uint64_t n)
{
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = next_random(state);
        if (x >= threshold)
            return x % n;
    }
}

/* The positions a partial Fisher-Yates shuffle of 0..n-1 has moved, as an open-addressing map
 * position -> value; a position not in it holds itself. */
typedef struct rank_map {
    uint64_t *keys, *vals;
    size_t mask;
} rank_map;

static size_t rank_slot(const rank_map *m, uint64_t key)
{
    size_t i = (size_t)(key * UINT64_C(0x9E3779B97F4A7C15) >> 20) & m->mask;
    while (m->keys[i] != UINT64_MAX && m->keys[i] != key)
        i = (i + 1) & m->mask;
    return i;
}

static uint64_t rank_get(const rank_map *m, uint64_t key)
{
    size_t i = rank_slot(m, key);
    return m->keys[i] == key ? m->vals[i] : key;
}

static void rank_put(rank_map *m, uint64_t key, uint64_t val)
{
    size_t i = rank_slot(m, key);
    m->keys[i] = key;
    m->vals[i] = val;
}

int zd_audience_sample(const roaring_bitmap_t *aud, int k, uint64_t seed, uint32_t *out)
{
    uint64_t n = roaring_bitmap_get_cardinality(aud);
    size_t m = k < 0 ? 0 : (uint64_t)k < n ? (size_t)k : (size_t)n;
    if (m == 0)
        return 0;
    /* Each draw writes at most one position: a table of 4m slots stays at most 1/4 full. */
    size_t cap = 16;
    while (cap < 4 * m)
        cap *= 2;
    rank_map map = {malloc(cap * sizeof(uint64_t)), malloc(cap * sizeof(uint64_t)), cap - 1};
    if (!map.keys || !map.vals) {
        free(map.keys);
        free(map.vals);
        return -ENOMEM;
    }
    memset(map.keys, 0xff, cap * sizeof(uint64_t));
    uint64_t state = seed;
    int got = 0;
    for (size_t i = 0; i < m; i++) {
        /* Swap position i with a random position j >= i; position i is never read again, so
         * only j needs to remember what it now holds. */
        uint64_t j = i + random_below(&state, n - i);
        uint64_t rank = rank_get(&map, j);
        rank_put(&map, j, rank_get(&map, i));
        if (roaring_bitmap_select(aud, (uint32_t)rank, &out[got]))
            got++;
    }
    free(map.keys);
    free(map.vals);
    return got;
}
