/* Profile validation and normalization (SPEC §2): a document in, typed values and the
 * normalized JSON that is stored out. Errors name the field, never quote personal data. */
#include "profiles/profile.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/date.h"
#include "common/text.h"
#include "common/tz.h"
#include "profiles/json.h"

#define FIELDS_MAX 32
#define FIELD_VALUE_MAX 1024
#define CONTACT_MAX 256
#define PREF_LIST_MAX 64

/* A string is acceptable when it is valid UTF-8 without control characters. */
static bool clean_string(const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len > max || !zd_utf8_valid(s, len))
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static int set_str(zd_value *v, const char *s)
{
    v->str = strdup(s);
    if (!v->str)
        return -ENOMEM;
    v->present = true;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Validates one attribute value against its definition, fills v, and adds its normalized
 * form to out (an object) under the attribute's name. `path` is the field name for errors. */
static int parse_attr_value(const zd_attr *a, const cJSON *j, const char *path, zd_value *v,
                            cJSON *out, zd_error *err)
{
    switch (a->type) {
    case ZD_T_KEYWORD: {
        if (!cJSON_IsString(j))
            return zd_error_set(err, "invalid_type", path, "%s must be a string (keyword)", path);
        const char *s = j->valuestring;
        if (*s == '\0' || !clean_string(s, ZD_KEYWORD_MAX))
            return zd_error_set(err, "invalid_value", path,
                                "%s must be a keyword of 1-%d bytes of valid UTF-8", path,
                                ZD_KEYWORD_MAX);
        if (!zd_keyword_allowed(a, s)) {
            char list[200];
            zd_keyword_list(a, list, sizeof(list));
            return zd_error_set(err, "invalid_value", path, "%s must be one of %s", path, list);
        }
        if (set_str(v, s) != 0)
            return -ENOMEM;
        cJSON_AddStringToObject(out, a->name, s);
        return 0;
    }
    case ZD_T_CODE: {
        if (!cJSON_IsString(j))
            return zd_error_set(err, "invalid_type", path, "%s must be a string (code)", path);
        const char *s = j->valuestring;
        if (!zd_code_valid(a, s, (int)strlen(s))) {
            char lv[64];
            zd_attr_levels_text(a, lv, sizeof(lv));
            return zd_error_set(err, "invalid_value", path, "%s must be a %s code of %s characters",
                                path, a->style == ZD_CODE_DIGITS ? "digit" : "letter-and-digit",
                                lv);
        }
        if (set_str(v, s) != 0)
            return -ENOMEM;
        cJSON_AddStringToObject(out, a->name, s);
        return 0;
    }
    case ZD_T_NUMBER: {
        if (!cJSON_IsNumber(j))
            return zd_error_set(err, "invalid_type", path, "%s must be a number", path);
        if (!isfinite(j->valuedouble))
            return zd_error_set(err, "out_of_range", path, "%s must be a finite number", path);
        int64_t x;
        int rc = zd_double_to_scaled(j->valuedouble, a->decimals, &x);
        if (rc == -EINVAL)
            return zd_error_set(err, "invalid_value", path,
                                "%s must be a number with at most %d decimals", path, a->decimals);
        if (rc != 0 || x < a->min || x > a->max)
            return zd_error_set(err, "out_of_range", path, "%s is out of range", path);
        v->num = x;
        v->present = true;
        cJSON_AddNumberToObject(out, a->name, j->valuedouble);
        return 0;
    }
    case ZD_T_DATE: {
        int32_t d;
        if (!cJSON_IsString(j) || zd_date_parse(j->valuestring, &d) != 0)
            return zd_error_set(err, "invalid_type", path,
                                "%s must be a date string \"YYYY-MM-DD\"", path);
        v->num = d;
        v->present = true;
        cJSON_AddStringToObject(out, a->name, j->valuestring);
        return 0;
    }
    case ZD_T_TAGS:
        break;
    }
    return zd_error_set(err, "invalid_type", path, "%s cannot be set here", path);
}

/* A follows topic (SPEC §2) is a tag that is also safe in a URL path segment's decoded form and
 * in the change streams' compact JSON as written: no quote or backslash, which JSON would
 * escape. */
bool zd_follow_topic_valid(const char *s, size_t len)
{
    if (len == 0 || len > ZD_KEYWORD_MAX || !zd_utf8_valid(s, len))
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f || s[i] == '"' || s[i] == '\\')
            return false;
    return true;
}

/* "tags" and "follows": sets of 1-ZD_KEYWORD_MAX byte strings, at most ZD_TAGS_MAX, stored
 * sorted and unique. */
static int parse_tags(const char *name, const cJSON *j, zd_value *v, cJSON *doc, zd_error *err)
{
    const bool follows = strcmp(name, "follows") == 0;
    if (!cJSON_IsArray(j))
        return zd_error_set(err, "invalid_type", name, "%s must be an array of strings", name);
    int n = cJSON_GetArraySize(j);
    if (n > ZD_TAGS_MAX)
        return zd_error_set(err, "too_many", name, "%s holds more than %d values", name,
                            ZD_TAGS_MAX);
    v->tags = calloc((size_t)(n ? n : 1), sizeof(char *));
    if (!v->tags)
        return -ENOMEM;
    v->present = true;
    const cJSON *t;
    cJSON_ArrayForEach(t, j)
    {
        if (!cJSON_IsString(t) || t->valuestring[0] == '\0' ||
            !clean_string(t->valuestring, ZD_KEYWORD_MAX) ||
            (follows && !zd_follow_topic_valid(t->valuestring, strlen(t->valuestring))))
            return zd_error_set(err, "invalid_value", name,
                                "%s must be strings of 1-%d bytes of valid UTF-8%s", name,
                                ZD_KEYWORD_MAX, follows ? " without quotes or backslashes" : "");
        v->tags[v->ntags] = strdup(t->valuestring);
        if (!v->tags[v->ntags])
            return -ENOMEM;
        v->ntags++;
    }
    qsort(v->tags, (size_t)v->ntags, sizeof(char *), cmp_str);
    int w = 0;
    for (int i = 0; i < v->ntags; i++) {
        if (w > 0 && strcmp(v->tags[w - 1], v->tags[i]) == 0) {
            free(v->tags[i]);
            continue;
        }
        v->tags[w++] = v->tags[i];
    }
    v->ntags = w;
    if (w == 0)
        v->present = false;
    cJSON *arr = cJSON_AddArrayToObject(doc, name);
    for (int i = 0; i < w; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(v->tags[i]));
    return 0;
}

static int parse_fields(const cJSON *j, cJSON *doc, zd_error *err)
{
    if (!cJSON_IsObject(j))
        return zd_error_set(err, "invalid_type", "fields", "fields must be an object");
    if (cJSON_GetArraySize(j) > FIELDS_MAX)
        return zd_error_set(err, "too_many", "fields", "fields holds more than %d keys",
                            FIELDS_MAX);
    cJSON *out = cJSON_AddObjectToObject(doc, "fields");
    const cJSON *f;
    cJSON_ArrayForEach(f, j)
    {
        char path[96];
        snprintf(path, sizeof(path), "fields.%.64s", f->string);
        if (!clean_string(f->string, 64) || f->string[0] == '\0')
            return zd_error_set(err, "invalid_value", "fields",
                                "fields keys must be 1-64 bytes of valid UTF-8");
        if (cJSON_IsString(f)) {
            if (!clean_string(f->valuestring, FIELD_VALUE_MAX))
                return zd_error_set(err, "invalid_value", path,
                                    "%s must be valid UTF-8 of at most %d bytes", path,
                                    FIELD_VALUE_MAX);
            cJSON_AddStringToObject(out, f->string, f->valuestring);
        } else if (cJSON_IsNumber(f)) {
            /* cJSON prints inf as null, which would not validate when read back. */
            if (!isfinite(f->valuedouble))
                return zd_error_set(err, "out_of_range", path, "%s must be a finite number", path);
            cJSON_AddNumberToObject(out, f->string, f->valuedouble);
        } else {
            return zd_error_set(err, "invalid_type", path, "%s must be a string or a number", path);
        }
    }
    return 0;
}

static int parse_contacts(const zd_schema *s, const cJSON *j, cJSON *doc, zd_error *err)
{
    if (!cJSON_IsObject(j))
        return zd_error_set(err, "invalid_type", "contacts", "contacts must be an object");
    cJSON *out = cJSON_AddObjectToObject(doc, "contacts");
    const cJSON *c;
    cJSON_ArrayForEach(c, j)
    {
        char path[96];
        snprintf(path, sizeof(path), "contacts.%.64s", c->string);
        if (!clean_string(c->string, 64) || !zd_schema_has_gateway(s, c->string))
            return zd_error_set(err, "unknown_gateway", path,
                                "%s: contacts keys must be configured gateway names", path);
        if (!cJSON_IsString(c) || c->valuestring[0] == '\0' ||
            !clean_string(c->valuestring, CONTACT_MAX))
            return zd_error_set(err, "invalid_value", path,
                                "%s must be a non-empty string of at most %d bytes", path,
                                CONTACT_MAX);
        cJSON_AddStringToObject(out, c->string, c->valuestring);
    }
    return 0;
}

static bool valid_hhmm(const char *s)
{
    return s[0] >= '0' && s[0] <= '2' && s[1] >= '0' && s[1] <= '9' && s[2] == ':' && s[3] >= '0' &&
           s[3] <= '5' && s[4] >= '0' && s[4] <= '9' && (s[0] - '0') * 10 + (s[1] - '0') < 24;
}

static int parse_string_list(const cJSON *j, const char *path, const zd_schema *gw_check,
                             cJSON *out, zd_error *err)
{
    if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) > PREF_LIST_MAX)
        return zd_error_set(err, "invalid_type", path, "%s must be an array of at most %d strings",
                            path, PREF_LIST_MAX);
    cJSON *arr = cJSON_AddArrayToObject(out, strchr(path, '.') + 1);
    const cJSON *v;
    cJSON_ArrayForEach(v, j)
    {
        if (!cJSON_IsString(v) || v->valuestring[0] == '\0' || !clean_string(v->valuestring, 64))
            return zd_error_set(err, "invalid_value", path, "%s must hold strings of 1-64 bytes",
                                path);
        if (gw_check && !zd_schema_has_gateway(gw_check, v->valuestring))
            return zd_error_set(err, "unknown_gateway", path,
                                "%s names gateway \"%.64s\" that is not configured", path,
                                v->valuestring);
        cJSON_AddItemToArray(arr, cJSON_CreateString(v->valuestring));
    }
    return 0;
}

static int parse_prefs(const zd_schema *s, const cJSON *j, cJSON *doc, zd_error *err)
{
    if (!cJSON_IsObject(j))
        return zd_error_set(err, "invalid_type", "prefs", "prefs must be an object");
    cJSON *out = cJSON_AddObjectToObject(doc, "prefs");
    const cJSON *p;
    cJSON_ArrayForEach(p, j)
    {
        int rc;
        if (strcmp(p->string, "mute_categories") == 0) {
            rc = parse_string_list(p, "prefs.mute_categories", NULL, out, err);
        } else if (strcmp(p->string, "mute_gateways") == 0) {
            rc = parse_string_list(p, "prefs.mute_gateways", s, out, err);
        } else if (strcmp(p->string, "quiet_hours") == 0) {
            const char *q = cJSON_IsString(p) ? p->valuestring : "";
            if (strlen(q) != 11 || q[5] != '-' || !valid_hhmm(q) || !valid_hhmm(q + 6))
                return zd_error_set(err, "invalid_value", "prefs.quiet_hours",
                                    "prefs.quiet_hours must look like \"22:00-08:00\"");
            cJSON_AddStringToObject(out, "quiet_hours", q);
            rc = 0;
        } else if (strcmp(p->string, "timezone") == 0) {
            /* Quiet hours are read in this zone (delivery/prefs.c), else the config's. */
            if (!cJSON_IsString(p) || !zd_tz_valid(p->valuestring))
                return zd_error_set(err, "invalid_value", "prefs.timezone",
                                    "prefs.timezone must be an IANA time zone name like "
                                    "\"Asia/Shanghai\"");
            cJSON_AddStringToObject(out, "timezone", p->valuestring);
            rc = 0;
        } else {
            char path[96];
            snprintf(path, sizeof(path), "prefs.%.64s", p->string);
            return zd_error_set(err, "unknown_field", path,
                                "unknown preference \"%s\" (known: mute_categories, "
                                "mute_gateways, quiet_hours, timezone)",
                                path);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int parse_attrs(const zd_schema *s, const cJSON *j, zd_profile *p, cJSON *doc, zd_error *err)
{
    if (!cJSON_IsObject(j))
        return zd_error_set(err, "invalid_type", "attrs", "attrs must be an object");
    cJSON *out = cJSON_AddObjectToObject(doc, "attrs");
    /* First check every given key is declared, then emit in schema order so that equal
     * profiles always serialize identically. */
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        const zd_attr *a = zd_schema_find(s, it->string);
        char path[96];
        snprintf(path, sizeof(path), "attrs.%.64s", it->string);
        if (!a || a->index < ZD_ATTR_BUILTINS) {
            if (a)
                return zd_error_set(err, "misplaced_field", path,
                                    "%s belongs at the top level of the profile, not in attrs",
                                    path);
            const char *near = zd_schema_suggest(s, it->string);
            if (near)
                return zd_error_set(err, "unknown_attribute", path,
                                    "unknown attribute \"%.64s\"; did you mean \"%s\"?", it->string,
                                    near);
            return zd_error_set(err, "unknown_attribute", path,
                                "unknown attribute \"%.64s\" (not declared in the schema)",
                                it->string);
        }
    }
    for (int i = ZD_ATTR_BUILTINS; i < s->nattrs; i++) {
        const zd_attr *a = &s->attrs[i];
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, a->name);
        if (!v || cJSON_IsNull(v))
            continue;
        char path[96];
        snprintf(path, sizeof(path), "attrs.%s", a->name);
        int rc = parse_attr_value(a, v, path, &p->vals[i], out, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int id_error(zd_error *err)
{
    return zd_error_set(err, "invalid_id", "id", "id must be 1-%d characters of [A-Za-z0-9_.:-]",
                        ZD_ID_MAX);
}

/* zd_profile_from_json() once the values are known to pass zd_json_check_values(). */
static int from_checked_json(const zd_schema *s, const char *id, const cJSON *body,
                             zd_profile **out, zd_error *err)
{
    int rc = -ENOMEM;
    *out = NULL;
    if (!id || !zd_id_valid(id, strlen(id)))
        return id_error(err);
    if (!cJSON_IsObject(body))
        return zd_error_set(err, "bad_json", NULL, "a profile must be a JSON object");

    zd_profile *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->nvals = s->nattrs;
    p->vals = calloc((size_t)s->nattrs, sizeof(zd_value));
    p->id = strdup(id);
    p->doc = cJSON_CreateObject();
    if (!p->vals || !p->id || !p->doc)
        goto fail;

    const cJSON *it;
    cJSON_ArrayForEach(it, body)
    {
        static const char *const known[] = {"id",      "kind",   "region",   "attrs", "tags",
                                            "follows", "fields", "contacts", "prefs"};
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]) && !ok; i++)
            ok = strcmp(it->string, known[i]) == 0;
        if (!ok) {
            const zd_attr *a = zd_schema_find(s, it->string);
            if (a && a->index >= ZD_ATTR_BUILTINS)
                rc = zd_error_set(err, "misplaced_field", it->string,
                                  "\"%s\" is an attribute: put it inside \"attrs\"", it->string);
            else
                rc = zd_error_set(err, "unknown_field", it->string,
                                  "unknown field \"%.64s\" (known: kind, region, attrs, tags, "
                                  "follows, fields, contacts, prefs)",
                                  it->string);
            goto fail;
        }
    }
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(body, "id");
    if (jid && !(cJSON_IsString(jid) && strcmp(jid->valuestring, id) == 0)) {
        rc = zd_error_set(err, "id_mismatch", "id", "the body's id differs from the profile id");
        goto fail;
    }

    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(body, "kind");
    if (!kind) {
        rc = zd_error_set(err, "missing_field", "kind",
                          "kind is required (\"citizen\" or \"enterprise\")");
        goto fail;
    }
    if ((rc = parse_attr_value(&s->attrs[ZD_ATTR_KIND], kind, "kind", &p->vals[ZD_ATTR_KIND],
                               p->doc, err)) != 0)
        goto fail;
    const cJSON *region = cJSON_GetObjectItemCaseSensitive(body, "region");
    if (region && !cJSON_IsNull(region) &&
        (rc = parse_attr_value(&s->attrs[ZD_ATTR_REGION], region, "region",
                               &p->vals[ZD_ATTR_REGION], p->doc, err)) != 0)
        goto fail;
    const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(body, "attrs");
    if (attrs && !cJSON_IsNull(attrs) && (rc = parse_attrs(s, attrs, p, p->doc, err)) != 0)
        goto fail;
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(body, "tags");
    if (tags && !cJSON_IsNull(tags) &&
        (rc = parse_tags("tags", tags, &p->vals[ZD_ATTR_TAGS], p->doc, err)) != 0)
        goto fail;
    /* After tags, before the private parts: the indexed part ends with "follows". */
    const cJSON *follows = cJSON_GetObjectItemCaseSensitive(body, "follows");
    if (follows && !cJSON_IsNull(follows) &&
        (rc = parse_tags("follows", follows, &p->vals[ZD_ATTR_FOLLOWS], p->doc, err)) != 0)
        goto fail;
    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(body, "fields");
    if (fields && !cJSON_IsNull(fields) && (rc = parse_fields(fields, p->doc, err)) != 0)
        goto fail;
    const cJSON *contacts = cJSON_GetObjectItemCaseSensitive(body, "contacts");
    if (contacts && !cJSON_IsNull(contacts) && (rc = parse_contacts(s, contacts, p->doc, err)) != 0)
        goto fail;
    const cJSON *prefs = cJSON_GetObjectItemCaseSensitive(body, "prefs");
    if (prefs && !cJSON_IsNull(prefs) && (rc = parse_prefs(s, prefs, p->doc, err)) != 0)
        goto fail;
    *out = p;
    return 0;
fail:
    if (rc == -ENOMEM)
        zd_error_set(err, "out_of_memory", NULL, "out of memory");
    zd_profile_free(p);
    return rc;
}

/* The document keys that are never indexed and never written to a change stream. */
static const char *const private_keys[] = {"fields", "contacts", "prefs"};
#define NPRIVATE (sizeof(private_keys) / sizeof(private_keys[0]))

static bool is_private(const char *key)
{
    for (size_t i = 0; i < NPRIVATE; i++)
        if (strcmp(key, private_keys[i]) == 0)
            return true;
    return false;
}

cJSON *zd_profile_stored_doc(const char *json, size_t len)
{
    /* Compact JSON never holds a raw newline, so one separates the stored form's two parts. */
    const char *nl = memchr(json, '\n', len);
    cJSON *doc = NULL, *priv = NULL;
    zd_error err;
    /* The strict parser, as for every text from outside: a part with text after it or a NUL
     * is not a profile. Values (finite numbers, no repeated keys, also across the two parts)
     * are checked on the whole document by zd_profile_from_json(). */
    zd_json_parse_syntax(json, nl ? (size_t)(nl - json) : len, ZD_JSON_DEPTH_DEFAULT, &doc, &err);
    if (nl)
        zd_json_parse_syntax(nl + 1, len - (size_t)(nl + 1 - json), ZD_JSON_DEPTH_DEFAULT, &priv,
                             &err);
    if (!cJSON_IsObject(doc) || (nl && !cJSON_IsObject(priv))) {
        cJSON_Delete(doc);
        cJSON_Delete(priv);
        return NULL;
    }
    while (priv && priv->child) {
        cJSON *item = cJSON_DetachItemViaPointer(priv, priv->child);
        cJSON_AddItemToObject(doc, item->string, item);
    }
    cJSON_Delete(priv);
    return doc;
}

int zd_profile_from_json(const zd_schema *s, const char *id, const cJSON *body, zd_profile **out,
                         zd_error *err)
{
    *out = NULL;
    if (!id || !zd_id_valid(id, strlen(id)))
        return id_error(err);
    int rc = zd_json_check_values(body, err);
    return rc != 0 ? rc : from_checked_json(s, id, body, out, err);
}

int zd_profile_from_text(const zd_schema *s, const char *id, const char *text, size_t len,
                         int depth_max, zd_profile **out, char *found_id, zd_error *err)
{
    *out = NULL;
    if (found_id)
        found_id[0] = '\0';
    if (id && !zd_id_valid(id, strlen(id)))
        return id_error(err);
    cJSON *doc;
    int rc = zd_json_parse_syntax(text, len, depth_max, &doc, err);
    if (rc != 0)
        return rc;
    if (!cJSON_IsObject(doc)) {
        rc = zd_error_set(err, "bad_json", NULL, "a profile must be a JSON object");
        goto done;
    }
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(doc, "id");
    if (!id) {
        if (!cJSON_IsString(jid)) {
            rc = zd_error_set(err, "missing_field", "id",
                              "the profile must carry its id: a string \"id\"");
            goto done;
        }
        id = jid->valuestring;
        if (!zd_id_valid(id, strlen(id))) {
            rc = id_error(err);
            goto done;
        }
    }
    if (found_id)
        memcpy(found_id, id, strlen(id) + 1); /* valid: at most ZD_ID_MAX */
    if ((rc = zd_json_check_values(doc, err)) == 0)
        rc = from_checked_json(s, id, doc, out, err);
done:
    cJSON_Delete(doc);
    return rc;
}

int zd_profile_parse(const zd_schema *s, const char *id, const char *json, size_t len,
                     zd_profile **out, zd_error *err)
{
    *out = NULL;
    cJSON *doc = zd_profile_stored_doc(json, len);
    if (!doc)
        return zd_error_set(err, "bad_json", NULL, "stored profile is not valid JSON");
    int rc = zd_profile_from_json(s, id, doc, out, err);
    cJSON_Delete(doc);
    return rc;
}

char *zd_profile_to_json(const zd_profile *p)
{
    return cJSON_PrintUnformatted(p->doc);
}

char *zd_profile_to_stored(const zd_profile *p, size_t *indexed_len)
{
    cJSON *pub = cJSON_CreateObject(), *priv = cJSON_CreateObject();
    char *a = NULL, *b = NULL, *out = NULL;
    if (!pub || !priv)
        goto done;
    const cJSON *it;
    cJSON_ArrayForEach(it, p->doc)
    {
        cJSON *copy = cJSON_Duplicate(it, 1);
        if (!copy)
            goto done;
        cJSON_AddItemToObject(is_private(it->string) ? priv : pub, it->string, copy);
    }
    a = cJSON_PrintUnformatted(pub);
    b = cJSON_PrintUnformatted(priv);
    if (!a || !b)
        goto done;
    size_t al = strlen(a), bl = strlen(b);
    out = malloc(al + 1 + bl + 1);
    if (!out)
        goto done;
    memcpy(out, a, al);
    out[al] = '\n';
    memcpy(out + al + 1, b, bl + 1);
    if (indexed_len)
        *indexed_len = al;
done:
    cJSON_Delete(pub);
    cJSON_Delete(priv);
    free(a);
    free(b);
    return out;
}

cJSON *zd_json_merge_patch(const cJSON *base, const cJSON *patch)
{
    if (!cJSON_IsObject(patch))
        return cJSON_Duplicate(patch, 1);
    cJSON *out = cJSON_IsObject(base) ? cJSON_Duplicate(base, 1) : cJSON_CreateObject();
    if (!out)
        return NULL;
    const cJSON *it;
    cJSON_ArrayForEach(it, patch)
    {
        if (cJSON_IsNull(it)) {
            cJSON_DeleteItemFromObjectCaseSensitive(out, it->string);
            continue;
        }
        const cJSON *cur = cJSON_GetObjectItemCaseSensitive(out, it->string);
        cJSON *merged = zd_json_merge_patch(cur, it);
        if (!merged) {
            cJSON_Delete(out);
            return NULL;
        }
        if (cur)
            cJSON_ReplaceItemInObjectCaseSensitive(out, it->string, merged);
        else
            cJSON_AddItemToObject(out, it->string, merged);
    }
    return out;
}

void zd_profile_free(zd_profile *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->nvals && p->vals; i++) {
        free(p->vals[i].str);
        for (int j = 0; j < p->vals[i].ntags; j++)
            free(p->vals[i].tags[j]);
        free(p->vals[i].tags);
    }
    free(p->vals);
    free(p->id);
    cJSON_Delete(p->doc);
    free(p);
}

int zd_partition_of(const char *id, int npartitions)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *c = (const unsigned char *)id; *c; c++) {
        h ^= *c;
        h *= 16777619u;
    }
    return (int)(h % (uint32_t)npartitions);
}
