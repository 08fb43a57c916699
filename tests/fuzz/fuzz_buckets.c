/* libFuzzer target for bucket breakdown entries ("employees:buckets=0,10,50",
 * "age(birth_date):buckets=18,60"): arbitrary bytes are parsed as an entry; a refusal must name
 * its cause, and an accepted entry must have 1..ZD_PREVIEW_BUCKETS_MAX strictly ascending
 * boundaries, keys that are distinct and non-empty, and counts over a tiny index that add up to
 * the audience, or the target aborts. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/date.h"
#include "matcher/audience.h"
#include "profiles/profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const docs[] = {
    ("{\"kind\": \"enterprise\", \"attrs\": {\"employees\": 40, \"registered_capital\": 100.5, "
     "\"founded\": \"2022-06-16\"}}"),
    "{\"kind\": \"citizen\", \"attrs\": {\"birth_date\": \"1964-06-15\"}}",
    "{\"kind\": \"citizen\", \"attrs\": {\"birth_date\": \"1964-02-29\"}}",
    "{\"kind\": \"enterprise\", \"attrs\": {\"employees\": 0, \"revenue\": 12.25}}",
    "{\"kind\": \"enterprise\", \"attrs\": {\"employees\": 1000000}}",
};
#define NPROFILES ((int)(sizeof(docs) / sizeof(docs[0])))

static zd_schema *schema;
static zd_index *ix;
static roaring_bitmap_t *all;
static int32_t today;

static void setup(void)
{
    schema = zd_schema_default();
    ix = zd_index_new(schema);
    all = roaring_bitmap_create();
    today = zd_date_from_ymd(2024, 6, 15);
    for (int i = 0; i < NPROFILES; i++) {
        char id[16];
        snprintf(id, sizeof(id), "p%d", i);
        cJSON *body = cJSON_Parse(docs[i]);
        zd_profile *p = NULL;
        zd_error err;
        if (!body || zd_profile_from_json(schema, id, body, &p, &err) != 0 ||
            zd_index_put(ix, zd_gid(i % 2, (uint32_t)i), NULL, p) != 0)
            abort();
        roaring_bitmap_add(all, zd_gid(i % 2, (uint32_t)i));
        zd_profile_free(p);
        cJSON_Delete(body);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!schema)
        setup();
    if (size > 4096)
        return 0;
    /* Entries arrive as JSON strings: NUL-terminated, so a NUL ends them here too. */
    char *spec = malloc(size + 1);
    if (!spec)
        abort();
    memcpy(spec, data, size);
    spec[size] = '\0';
    zd_buckets b;
    zd_error err;
    memset(&err, 0, sizeof(err));
    if (zd_buckets_parse(schema, spec, &b, &err) != 0) {
        if (!err.code[0] || !err.message[0] || strcmp(err.field, "breakdown") != 0)
            abort();
        free(spec);
        return 0;
    }
    if (!zd_buckets_is_spec(spec) || b.n < 1 || b.n > ZD_PREVIEW_BUCKETS_MAX)
        abort();
    char labels[ZD_PREVIEW_BUCKETS_MAX + 1][80];
    for (int i = 0; i <= b.n; i++) {
        if (i > 0 && i < b.n && b.bounds[i] <= b.bounds[i - 1])
            abort();
        zd_buckets_label(&b, i, labels[i], sizeof(labels[i]));
        if (!labels[i][0] || strcmp(labels[i], "missing") == 0)
            abort();
        for (int j = 0; j < i; j++)
            if (strcmp(labels[i], labels[j]) == 0)
                abort();
    }
    uint64_t counts[ZD_PREVIEW_BUCKETS_MAX + 2], sum = 0;
    if (zd_buckets_count(&b, ix, all, today, counts) != 0)
        abort();
    for (int i = 0; i <= b.n + 1; i++)
        sum += counts[i];
    if (sum != (uint64_t)NPROFILES)
        abort();
    free(spec);
    return 0;
}
