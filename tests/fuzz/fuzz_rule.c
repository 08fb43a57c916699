/* libFuzzer target for the rule compiler: arbitrary bytes compile as a rule (with a fixed set
 * of segments); whatever compiles is evaluated both ways, and the two evaluators must agree
 * on every profile of a tiny index (explain's "match" too), or the target aborts. Clause
 * counts must agree with explain's per-clause results, their steps must compile back as
 * written, and the last step must be the audience. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/date.h"
#include "matcher/reasons.h"
#include "matcher/rule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const segments[][2] = {
    {"a", "kind = \"citizen\""},
    {"b", "segment \"a\" or region within \"3301\""},
    {"c", "not segment \"c\""},
    {"d", "not segment \"b\" and employees < 10.5 or age(birth_date) >= 60"},
    {"e", "((tags has \"x\"))"},
};

static const char *const docs[] = {
    "{\"kind\": \"enterprise\", \"region\": \"330106\", \"attrs\": {\"industry\": \"C1311\", "
    "\"employees\": 40, \"registered_capital\": 100.5, \"founded\": \"2022-06-16\", "
    "\"scale\": \"small\"}, \"tags\": [\"srdi\", \"hightech\", \"x\"]}",
    "{\"kind\": \"citizen\", \"region\": \"330102001\", \"attrs\": {\"birth_date\": "
    "\"1964-06-15\"}}",
    "{\"kind\": \"citizen\", \"attrs\": {\"birth_date\": \"1964-02-29\"}, \"tags\": [\"a\"]}",
    "{\"kind\": \"enterprise\", \"region\": \"330212\", \"attrs\": {\"industry\": \"I65\", "
    "\"employees\": 10, \"revenue\": 12.25, \"founded\": \"2024-06-15\"}}",
};
#define NPROFILES ((int)(sizeof(docs) / sizeof(docs[0])))

static zd_schema *schema;
static zd_index *ix;
static zd_profile *profiles[NPROFILES];
static int32_t today;

static const char *lookup(const char *name, void *udata)
{
    (void)udata;
    for (size_t i = 0; i < sizeof(segments) / sizeof(segments[0]); i++)
        if (strcmp(segments[i][0], name) == 0)
            return segments[i][1];
    return NULL;
}

static void setup(void)
{
    schema = zd_schema_default();
    ix = zd_index_new(schema);
    today = zd_date_from_ymd(2024, 6, 15);
    for (int i = 0; i < NPROFILES; i++) {
        char id[16];
        snprintf(id, sizeof(id), "p%d", i);
        cJSON *body = cJSON_Parse(docs[i]);
        zd_error err;
        if (!body || zd_profile_from_json(schema, id, body, &profiles[i], &err) != 0 ||
            zd_index_put(ix, zd_gid(i % 2, (uint32_t)i), NULL, profiles[i]) != 0)
            abort();
        cJSON_Delete(body);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!schema)
        setup();
    zd_rule *r = NULL;
    zd_rule_error err;
    int rc = zd_rule_compile(schema, (const char *)data, size, lookup, NULL, &r, &err);
    if (rc != 0) {
        /* A rejected rule always says where and why, within the text it concerns. */
        if (r || err.code[0] == '\0' || err.message[0] == '\0' || err.line < 1 || err.column < 1 ||
            err.position < 0 || (!err.segment[0] && (size_t)err.position > size))
            abort();
        return 0;
    }
    /* Every rule has at least one comparison, and each costs at least 1. */
    zd_rule_size sz = zd_rule_measure(r);
    if (sz.comparisons < 1 || sz.cost < sz.comparisons)
        abort();
    roaring_bitmap_t *aud = zd_rule_audience(r, ix, today);
    zd_rule_counts *counts = NULL;
    if (!aud || zd_rule_count_clauses(r, ix, today, NULL, &counts, NULL) != 0)
        abort();
    if (counts->steps[counts->nsteps - 1].count != roaring_bitmap_get_cardinality(aud))
        abort();
    for (int j = 0; j < counts->nsteps; j++) {
        zd_rule *step = NULL;
        const char *t = counts->steps[j].text;
        if (zd_rule_compile(schema, t, strlen(t), lookup, NULL, &step, NULL) != 0)
            abort();
        zd_rule_free(step);
    }
    uint64_t *held = calloc((size_t)counts->nclauses, sizeof(*held));
    if (!held)
        abort();
    for (int i = 0; i < NPROFILES; i++) {
        bool m = zd_rule_match(r, profiles[i], today);
        if (m != roaring_bitmap_contains(aud, zd_gid(i % 2, (uint32_t)i)))
            abort();
        cJSON *x = zd_rule_explain(r, profiles[i], today);
        if (!x || cJSON_IsTrue(cJSON_GetObjectItem(x, "match")) != m)
            abort();
        const cJSON *clauses = cJSON_GetObjectItem(x, "clauses");
        if (cJSON_GetArraySize(clauses) != counts->nclauses)
            abort();
        int k = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, clauses) held[k++] += cJSON_IsTrue(cJSON_GetObjectItem(c, "result"));
        char *s = cJSON_PrintUnformatted(x);
        free(s);
        cJSON_Delete(x);
        cJSON_Delete(zd_rule_reasons_json(r, profiles[i], today, NULL, NULL));
        char text[256];
        zd_rule_reasons(r, profiles[i], today, NULL, NULL, "，", text, sizeof(text));
    }
    for (int k = 0; k < counts->nclauses; k++)
        if (held[k] != counts->clauses[k].count)
            abort();
    free(held);
    zd_rule_counts_free(counts);
    if (roaring_bitmap_get_cardinality(aud) > (uint64_t)NPROFILES)
        abort();
    roaring_bitmap_free(aud);
    zd_rule_free(r);
    return 0;
}
