/* What a preview tells about an audience besides its size: numbers and ages counted in buckets
 * with the index's range scans, and a uniform random sample drawn by rank. Plain C over the
 * index: no event loop, no Redis. */
#ifndef ZD_AUDIENCE_H
#define ZD_AUDIENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <roaring/roaring.h>
#include <zhida/error.h>
#include <zhida/limits.h>

#include "profiles/index.h"
#include "profiles/schema.h"

/* A bucket breakdown: `<number attribute>:buckets=b0,b1,...` or `age(<date
 * attribute>):buckets=b0,b1,...`. n strictly ascending boundaries make n + 1 buckets: below
 * b0, [b0, b1), ..., at or above b(n-1); profiles without the attribute are counted apart. */
typedef struct zd_buckets {
    const zd_attr *attr; /* borrowed from the schema */
    bool age;            /* the attribute is a date, bucketed by age in full years */
    int n;               /* 1..ZD_PREVIEW_BUCKETS_MAX */
    int64_t bounds[ZD_PREVIEW_BUCKETS_MAX]; /* scaled like the attribute's values, or years */
} zd_buckets;

/* True when a breakdown entry asks for buckets: it starts with "age(" or its option (after the
 * first ':') starts with "buckets". Other entries group by value (codes, keywords, tags). */
bool zd_buckets_is_spec(const char *spec);

/* Parses a bucket breakdown entry against schema s (borrowed; must outlive *out). Returns 0, or
 * -EINVAL with err (field "breakdown"; code "unknown_field" for an attribute the schema does
 * not declare, with a did-you-mean, else "invalid_breakdown") naming what is wrong: not a
 * number or date, a date without age(), no or too many boundaries, one that is not a decimal
 * number, has more decimals than the attribute, or is not above the one before it. */
int zd_buckets_parse(const zd_schema *s, const char *spec, zd_buckets *out, zd_error *err);

/* The key of bucket i (0..b->n) in the answer: "<b0", then "lo-hi" (both included, hi one unit
 * of the attribute's precision below the next boundary) or just "lo" when the bucket holds one
 * value, and ">=b(n-1)"; numbers in the attribute's units ("0-99.99"), ages in years. Writes at
 * most cap bytes into buf and returns buf. */
const char *zd_buckets_label(const zd_buckets *b, int i, char *buf, size_t cap);

/* Counts the members of aud (borrowed) per bucket into counts[0..b->n] and those lacking the
 * attribute into counts[b->n + 1], so that the counts add up to aud's cardinality. Ages are
 * full years on day `today`. One range scan per boundary, each restricted to the members not
 * yet counted. Returns 0 or -ENOMEM. */
int zd_buckets_count(const zd_buckets *b, const zd_index *ix, const roaring_bitmap_t *aud,
                     int32_t today, uint64_t *counts);

/* A uniform random sample of min(k, |aud|) distinct members of aud, in random order (every
 * prefix is a uniform sample too), determined by seed: the same seed and audience give the
 * same sample. Drawn by rank (a partial Fisher-Yates shuffle over ranks, then roaring select),
 * so nothing the size of the audience is built. Writes them into out (room for k) and returns
 * their number, or -ENOMEM. */
int zd_audience_sample(const roaring_bitmap_t *aud, int k, uint64_t seed, uint32_t *out);

#endif
