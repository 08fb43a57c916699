/* libFuzzer target for profile validation: arbitrary bytes as a profile document. Whatever is
 * accepted must serialize to a document that validates again to the very same text, and must
 * go into and out of an index without leaving anything behind; whatever is rejected must say
 * which field and why. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profiles/index.h"
#include "profiles/profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static zd_schema *schema;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!schema)
        schema = zd_schema_default();
    cJSON *doc = cJSON_ParseWithLength((const char *)data, size);
    if (!doc)
        return 0;
    zd_error err;
    memset(&err, 0, sizeof(err));
    zd_profile *p = NULL;
    int rc = zd_profile_from_json(schema, "f1", doc, &p, &err);
    cJSON_Delete(doc);
    if (rc != 0) {
        if (err.code[0] == '\0' || err.message[0] == '\0')
            abort();
        return 0;
    }
    char *json = zd_profile_to_json(p);
    zd_profile *q = NULL;
    if (zd_profile_parse(schema, "f1", json, strlen(json), &q, &err) != 0)
        abort(); /* a normalized document must validate again */
    char *json2 = zd_profile_to_json(q);
    if (strcmp(json, json2) != 0)
        abort(); /* and normalization is a fixed point */

    zd_index *ix = zd_index_new(schema);
    zd_index_put(ix, zd_gid(1, 7), NULL, p);
    zd_index_put(ix, zd_gid(1, 7), p, q);
    if (roaring_bitmap_get_cardinality(zd_index_universe(ix)) != 1)
        abort();
    zd_index_del(ix, zd_gid(1, 7), q);
    zd_index_stats st;
    zd_index_get_stats(ix, &st);
    if (st.profiles != 0 || !roaring_bitmap_is_empty(zd_index_universe(ix)))
        abort();
    for (int a = 0; a < schema->nattrs; a++) {
        const roaring_bitmap_t *ex = zd_index_exists(ix, a);
        if (ex && !roaring_bitmap_is_empty(ex))
            abort(); /* deleting must remove every membership */
    }
    zd_index_free(ix);
    free(json);
    free(json2);
    zd_profile_free(p);
    zd_profile_free(q);
    return 0;
}
