/* The attribute schema: which attributes a profile may carry and of which type. Built from
 * the config's "schema" object or the SPEC §2 defaults. Read-only after construction, shared
 * by validation, the index and the rule checker. */
#ifndef ZD_SCHEMA_H
#define ZD_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zhida/error.h>

typedef struct cJSON cJSON;

typedef enum zd_type {
    ZD_T_KEYWORD, /* a string from an optional closed set ("kind", "scale") */
    ZD_T_CODE,    /* a hierarchical code with fixed level lengths ("region", "industry") */
    ZD_T_NUMBER,  /* a decimal with a fixed number of decimals, stored scaled as int64 */
    ZD_T_DATE,    /* "YYYY-MM-DD", stored as a day number (common/date.h) */
    ZD_T_TAGS,    /* a set of strings; only the built-in "tags" and "follows" attributes */
} zd_type;

/* How the characters of a code look: all digits (GB/T 2260 region), or a section letter
 * followed by digits (GB/T 4754 industry: "C", "C13", "C131", "C1311"). */
typedef enum zd_code_style { ZD_CODE_DIGITS, ZD_CODE_LETTER_DIGITS } zd_code_style;

#define ZD_ATTR_NAME_MAX 48
#define ZD_CODE_LEVELS_MAX 8
#define ZD_CODE_MAX 24    /* longest code string accepted */
#define ZD_KEYWORD_MAX 64 /* longest keyword / tag value in bytes */
#define ZD_TAGS_MAX 64    /* most tags on one profile */
#define ZD_SCHEMA_ATTRS_MAX 64

typedef struct zd_attr {
    char name[ZD_ATTR_NAME_MAX];
    zd_type type;
    int index; /* position in zd_schema.attrs and in zd_profile.vals */
    /* ZD_T_CODE: level lengths, strictly increasing, e.g. {2,4,6,9,12} */
    zd_code_style style;
    int nlevels;
    int levels[ZD_CODE_LEVELS_MAX];
    int breakdown_level; /* default level length for breakdowns (region: 4 = city) */
    /* ZD_T_NUMBER */
    int decimals; /* 0..6; values are stored as value * 10^decimals */
    int64_t min;  /* smallest accepted scaled value (default 0) */
    int64_t max;  /* largest accepted scaled value */
    /* ZD_T_KEYWORD: allowed values; nallowed == 0 means any keyword */
    int nallowed;
    char **allowed;
} zd_attr;

/* The built-in attributes always sit at these indexes. "follows" (SPEC §2: the topics a person
 * follows, 关注) is a set like "tags"; ZD_ATTR_BUILTINS is the first schema-declared one. */
enum { ZD_ATTR_KIND = 0, ZD_ATTR_REGION = 1, ZD_ATTR_TAGS = 2, ZD_ATTR_FOLLOWS = 3 };
#define ZD_ATTR_BUILTINS 4

typedef struct zd_schema {
    int nattrs;
    zd_attr attrs[ZD_SCHEMA_ATTRS_MAX];
    /* Gateway names from the config; the only keys allowed in a profile's "contacts" and
     * "prefs.mute_gateways". */
    int ngateways;
    char **gateways;
} zd_schema;

/* Returns the SPEC §2 default schema with gateways zlb, inbox, sms, email.
 * Caller frees with zd_schema_free(). */
zd_schema *zd_schema_default(void);

/* Builds a schema from the config's "schema" object (NULL: defaults) and the names of the
 * configured gateways (borrowed, copied). On a bad definition returns NULL and fills err,
 * naming the key. Caller frees with zd_schema_free(). */
zd_schema *zd_schema_from_json(const cJSON *schema, const char *const *gateways, int ngateways,
                               zd_error *err);
void zd_schema_free(zd_schema *s);

/* Looks an attribute up by exact name; NULL if the schema does not declare it. */
const zd_attr *zd_schema_find(const zd_schema *s, const char *name);

/* The declared name closest to `name` (edit distance <= 2), for did-you-mean; NULL if none. */
const char *zd_schema_suggest(const zd_schema *s, const char *name);

/* True when code is a whole-level value of attr: right length and character style. */
bool zd_code_valid(const zd_attr *a, const char *code, int len);
/* True when len is one of code attribute a's level lengths. */
bool zd_attr_has_level(const zd_attr *a, int len);
/* Writes a's level lengths as "2, 4, 6" into buf (capacity cap) and returns buf. */
const char *zd_attr_levels_text(const zd_attr *a, char *buf, size_t cap);

/* True when s[0..len) is a keyword of the rule language (case-insensitive, as the rule
 * language reads them): such names cannot be attributes. */
bool zd_schema_is_keyword(const char *s, size_t len);

/* True when keyword s is one of a's allowed values (any keyword when a lists none). */
bool zd_keyword_allowed(const zd_attr *a, const char *s);
/* Writes a's allowed values as `"a", "b", ...` into buf (capacity cap, truncated), for
 * messages. */
void zd_keyword_list(const zd_attr *a, char *buf, size_t cap);

/* True when the schema knows gateway `name`. */
bool zd_schema_has_gateway(const zd_schema *s, const char *name);

/* Type name for messages: "keyword", "code", "number", "date", "tags". */
const char *zd_type_name(zd_type t);

#endif
