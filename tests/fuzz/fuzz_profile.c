/* libFuzzer target for profile validation: arbitrary bytes as a PUT body. Whatever is accepted
 * must serialize to a document that validates again to the very same text, and must go into
 * and out of an index without leaving anything behind; whatever is rejected must say which
 * field and why. The same bytes as an import line (with the id written into the object) must
 * get the same answer: both paths run zd_profile_from_text(), and this checks that nothing
 * around it (the id's source) makes them differ. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profiles/index.h"
#include "profiles/json.h"
#include "profiles/profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DEPTH 8 /* small, so that the fuzzer reaches the limit */

static zd_schema *schema;

/* True when text is one JSON object with a top-level "id" member: PUT then compares it with
 * the URL's id and the import line would repeat the key, so the two answers differ by design. */
static bool has_id_member(const char *text, size_t size)
{
    cJSON *j;
    zd_error err;
    if (zd_json_parse_syntax(text, size, DEPTH, &j, &err) != 0)
        return false;
    bool has = cJSON_IsObject(j) && cJSON_GetObjectItemCaseSensitive(j, "id") != NULL;
    cJSON_Delete(j);
    return has;
}

/* Runs text as the import would see it, as the line of profile "f1", and aborts unless the
 * answer equals the PUT's (rc, put, perr). */
static void check_import_agrees(const char *text, size_t size, int rc, const zd_profile *put,
                                const zd_error *perr)
{
    /* The import splits its body at newlines and skips blank lines; such inputs are not one
     * line. */
    if (memchr(text, '\n', size))
        return;
    size_t k = 0;
    while (k < size && (text[k] == ' ' || text[k] == '\t' || text[k] == '\r'))
        k++;
    if (k == size || has_id_member(text, size))
        return;
    /* Write "id":"f1" as the object's first member; the rest of the bytes stay as they are. */
    static const char idm[] = "\"id\":\"f1\"";
    char *line = malloc(size + sizeof(idm) + 1);
    if (!line)
        abort();
    size_t n = 0;
    if (text[k] == '{') {
        size_t after = k + 1;
        while (after < size && (text[after] == ' ' || text[after] == '\t' || text[after] == '\r'))
            after++;
        memcpy(line, text, k + 1);
        n = k + 1;
        memcpy(line + n, idm, sizeof(idm) - 1);
        n += sizeof(idm) - 1;
        if (after < size && text[after] != '}')
            line[n++] = ',';
        memcpy(line + n, text + k + 1, size - k - 1);
        n += size - k - 1;
    } else {
        memcpy(line, text, size);
        n = size;
    }
    zd_profile *imp = NULL;
    zd_error ierr;
    memset(&ierr, 0, sizeof(ierr));
    char id[ZD_ID_MAX + 1];
    int irc = zd_profile_from_text(schema, NULL, line, n, DEPTH, &imp, id, &ierr);
    free(line);
    if ((irc == 0) != (rc == 0))
        abort(); /* one path accepted what the other refused */
    if (rc != 0) {
        if (strcmp(ierr.code, perr->code) != 0 || strcmp(ierr.field, perr->field) != 0)
            abort(); /* refused for different reasons */
        return;
    }
    char *a = zd_profile_to_json(put), *b = zd_profile_to_json(imp);
    if (strcmp(a, b) != 0 || strcmp(imp->id, "f1") != 0 || strcmp(id, "f1") != 0)
        abort(); /* accepted as different profiles */
    free(a);
    free(b);
    zd_profile_free(imp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!schema)
        schema = zd_schema_default();
    const char *text = (const char *)data;
    zd_error err;
    memset(&err, 0, sizeof(err));
    zd_profile *p = NULL;
    int rc = zd_profile_from_text(schema, "f1", text, size, DEPTH, &p, NULL, &err);
    check_import_agrees(text, size, rc, p, &err);
    if (rc != 0) {
        if (err.code[0] == '\0' || err.message[0] == '\0' || p != NULL)
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
