/* Limits of zhidad's HTTP API that a client should know, so that it refuses input the server
 * would refuse before sending it (zhida's --sample, --breakdown). One definition for both. */
#ifndef ZHIDA_LIMITS_H
#define ZHIDA_LIMITS_H

/* POST /v1/rules:preview: "sample" is 0..ZD_PREVIEW_SAMPLE_MAX ids, "breakdown" names at most
 * ZD_PREVIEW_BREAKDOWN_MAX distinct fields (the same entry twice counts once). */
#define ZD_PREVIEW_SAMPLE_MAX 1000
#define ZD_PREVIEW_BREAKDOWN_MAX 4
/* A bucket breakdown ("employees:buckets=0,10,50") has 1..ZD_PREVIEW_BUCKETS_MAX boundaries,
 * each a range scan; all of a preview's together are also bounded by limits.rule_max_cost
 * (8 per boundary, docs/API.md). */
#define ZD_PREVIEW_BUCKETS_MAX 32

/* List endpoints (GET /v1/segments, GET /v1/audit): "limit" is 1..ZD_LIST_LIMIT_MAX items per
 * page, ZD_LIST_LIMIT_DEFAULT when absent. */
#define ZD_LIST_LIMIT_DEFAULT 50
#define ZD_LIST_LIMIT_MAX 500

/* POST /v1/profiles:import: the default of limits.import_body_max (docs/CONFIG.md); zhida
 * import never sends a larger chunk. */
#define ZD_IMPORT_BODY_DEFAULT_MAX (64u << 20)

#endif
