/* The profile model: validation of a profile document against the schema, its typed values
 * for the index and the matcher, and the normalized JSON that is stored in Redis. */
#ifndef ZD_PROFILE_H
#define ZD_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/text.h" /* ZD_ID_MAX */
#include "profiles/schema.h"

typedef struct zd_value {
    bool present;
    int64_t num; /* ZD_T_NUMBER: scaled by 10^decimals; ZD_T_DATE: day number */
    char *str;   /* ZD_T_KEYWORD, ZD_T_CODE: owned, NUL-terminated */
    int ntags;   /* ZD_T_TAGS: count */
    char **tags; /* ZD_T_TAGS: owned, sorted by strcmp, unique */
} zd_value;

typedef struct zd_profile {
    char *id;       /* owned */
    int nvals;      /* == schema->nattrs */
    zd_value *vals; /* owned, indexed by zd_attr.index */
    cJSON *doc;     /* owned: the normalized document (kind, region, attrs, tags, fields,
                     * contacts, prefs) exactly as stored; keys not in SPEC §2 never appear */
} zd_profile;

/* Validates body (a profile document as in SPEC §2; an "id" member must equal `id`) for
 * profile `id`, including zd_json_check_values() (no repeated keys, finite numbers), so that
 * a tree built in code, such as a merged PATCH, meets the same rules as text.
 * On success returns 0 and *out (caller frees with zd_profile_free()). On failure returns
 * -EINVAL with err naming the offending field ("attrs.employees", "contacts.fax", "id", ...);
 * err never quotes a contact value or a name. The body is borrowed. */
int zd_profile_from_json(const zd_schema *s, const char *id, const cJSON *body, zd_profile **out,
                         zd_error *err);

/* The one validator of profile text, shared by PUT and every line of an import: the bytes
 * text[0..len) (borrowed) must be one JSON object accepted by zd_json_parse() with at most
 * depth_max levels of nesting (no NULs, no text after it, no repeated keys, only finite
 * numbers), and a valid profile for zd_profile_from_json().
 * `id` is the profile id from the URL, or NULL when the document must carry it in an "id"
 * member (an import line). found_id (NULL, or ZD_ID_MAX + 1 bytes) receives the document's
 * id as soon as it is known to be valid, also when a later check fails, so that an import can
 * say whose line was refused; otherwise "". Same result contract as zd_profile_from_json. */
int zd_profile_from_text(const zd_schema *s, const char *id, const char *text, size_t len,
                         int depth_max, zd_profile **out, char *found_id, zd_error *err);

/* Parses a stored document (the text zd_profile_to_stored writes, or any one JSON document such
 * as zd_profile_to_json writes, or only the indexed part of a stored document) back into a
 * profile, through the same strict parser (profiles/json.h): a document that no longer
 * validates is an error, never a half-filled profile. Same contract as zd_profile_from_json. */
int zd_profile_parse(const zd_schema *s, const char *id, const char *json, size_t len,
                     zd_profile **out, zd_error *err);

/* The whole document (one JSON object) of a stored form, or of plain JSON text. Caller frees
 * with cJSON_Delete(); NULL when the text is not a stored profile or on ENOMEM. */
cJSON *zd_profile_stored_doc(const char *json, size_t len);

/* Compact JSON text of p->doc. Caller frees with free(). */
char *zd_profile_to_json(const zd_profile *p);

/* The stored form of p: its indexed part (kind, region, attrs, tags: all that the index and
 * the change streams need) as compact JSON, a newline, then its private part (fields,
 * contacts, prefs; "{}" when none). Change streams carry only the indexed part, so erasing a
 * profile's hash entry erases its names and contacts (SPEC §2). *indexed_len (may be NULL)
 * gets the indexed part's length. Caller frees with free(); NULL on ENOMEM. */
char *zd_profile_to_stored(const zd_profile *p, size_t *indexed_len);

/* A deep copy of base with patch merged in (RFC 7386 JSON Merge Patch: null deletes a key,
 * objects merge recursively, anything else replaces). Both borrowed; caller frees the result
 * with cJSON_Delete(). */
cJSON *zd_json_merge_patch(const cJSON *base, const cJSON *patch);

/* True when s[0..len) may be a "follows" topic: 1-ZD_KEYWORD_MAX bytes of valid UTF-8 without
 * control characters, quotes or backslashes. */
bool zd_follow_topic_valid(const char *s, size_t len);

/* zd_profile_free(NULL) is a no-op. */
void zd_profile_free(zd_profile *p);

/* The partition a profile id belongs to: FNV-1a of the id modulo npartitions. */
int zd_partition_of(const char *id, int npartitions);

/* Index ids: the partition in the top ZD_PARTITION_BITS bits, the partition's dense id below. */
#define ZD_PARTITION_BITS 6
#define ZD_PARTITIONS_MAX (1 << ZD_PARTITION_BITS)
#define ZD_DENSE_BITS (32 - ZD_PARTITION_BITS)
#define ZD_DENSE_MAX ((1u << ZD_DENSE_BITS) - 1)
static inline uint32_t zd_gid(int partition, uint32_t dense)
{
    return ((uint32_t)partition << ZD_DENSE_BITS) | dense;
}

#endif
