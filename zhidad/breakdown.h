/* Preview breakdowns (POST /v1/rules:preview "breakdown"): an audience grouped by the values of
 * a code, keyword or tag field (the largest groups, bounded), or a number or age counted in
 * buckets. Rendered as JSON for the preview's answer. */
#ifndef ZD_BREAKDOWN_H
#define ZD_BREAKDOWN_H

#include <stdint.h>

#include <roaring/roaring.h>

#include "profiles/index.h"
#include "profiles/schema.h"
#include "zhidad/http.h"

/* Checks breakdown entry `spec` against schema s (borrowed) before anything is evaluated.
 * Returns 0 with *scans, the range scans the entry will make (its bucket boundaries; 0 for a
 * grouping by value), or -EINVAL having answered req with 400 naming the problem (field
 * "breakdown"). */
int zd_breakdown_check(zd_req *req, const zd_schema *s, const char *spec, int *scans);

/* Adds the breakdown of aud (borrowed) by entry `spec` as bd[spec]: for a code, keyword or tag
 * field its `cap` largest groups (the rest summed into *truncated, an object of out created on
 * first use), for a bucket entry ("employees:buckets=...", "age(birth_date):buckets=...")
 * every bucket and "missing". ix and s are borrowed; today is the day ages are counted on.
 * Returns 0, -EINVAL when spec is not a breakdown of the schema (then it has answered req with
 * 400 naming the problem, field "breakdown"), or -ENOMEM (nothing answered). */
int zd_breakdown_add(zd_req *req, const zd_schema *s, const zd_index *ix,
                     const roaring_bitmap_t *aud, int32_t today, const char *spec, int cap,
                     cJSON *bd, cJSON *out, cJSON **truncated);

#endif
