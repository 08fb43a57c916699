/* The attribute schema: SPEC §2 defaults, construction from the config, lookups. */
#include "profiles/schema.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/text.h"

const char *zd_type_name(zd_type t)
{
    switch (t) {
    case ZD_T_KEYWORD:
        return "keyword";
    case ZD_T_CODE:
        return "code";
    case ZD_T_NUMBER:
        return "number";
    case ZD_T_DATE:
        return "date";
    case ZD_T_TAGS:
        return "tags";
    }
    return "?";
}

static zd_attr *add_attr(zd_schema *s, const char *name, zd_type type)
{
    if (s->nattrs >= ZD_SCHEMA_ATTRS_MAX)
        return NULL;
    zd_attr *a = &s->attrs[s->nattrs];
    memset(a, 0, sizeof(*a));
    snprintf(a->name, sizeof(a->name), "%s", name);
    a->type = type;
    a->index = s->nattrs++;
    a->max = INT64_C(1000000000000000); /* 1e15: keeps scaled values far from overflow */
    return a;
}

static int set_allowed(zd_attr *a, const char *const *values, int n)
{
    a->allowed = calloc((size_t)n, sizeof(char *));
    if (!a->allowed)
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        a->allowed[i] = strdup(values[i]);
        if (!a->allowed[i])
            return -ENOMEM;
        a->nallowed++;
    }
    return 0;
}

static void set_levels(zd_attr *a, zd_code_style style, const int *levels, int n, int breakdown)
{
    a->style = style;
    a->nlevels = n;
    memcpy(a->levels, levels, sizeof(int) * (size_t)n);
    a->breakdown_level = breakdown;
}

/* The built-ins every schema starts with, at the indexes the header promises. */
static int add_builtins(zd_schema *s)
{
    static const char *const kinds[] = {"citizen", "enterprise"};
    static const int region_levels[] = {2, 4, 6, 9, 12};
    zd_attr *a = add_attr(s, "kind", ZD_T_KEYWORD);
    if (set_allowed(a, kinds, 2) != 0)
        return -ENOMEM;
    a = add_attr(s, "region", ZD_T_CODE);
    set_levels(a, ZD_CODE_DIGITS, region_levels, 5, 4);
    add_attr(s, "tags", ZD_T_TAGS);
    add_attr(s, "follows", ZD_T_TAGS);
    return 0;
}

static int add_default_attrs(zd_schema *s)
{
    static const char *const scales[] = {"micro", "small", "medium", "large"};
    static const int industry_levels[] = {1, 3, 4, 5};
    zd_attr *a = add_attr(s, "industry", ZD_T_CODE);
    set_levels(a, ZD_CODE_LETTER_DIGITS, industry_levels, 4, 1);
    a = add_attr(s, "scale", ZD_T_KEYWORD);
    if (set_allowed(a, scales, 4) != 0)
        return -ENOMEM;
    add_attr(s, "employees", ZD_T_NUMBER);
    a = add_attr(s, "registered_capital", ZD_T_NUMBER);
    a->decimals = 2;
    a = add_attr(s, "revenue", ZD_T_NUMBER);
    a->decimals = 2;
    add_attr(s, "birth_date", ZD_T_DATE);
    add_attr(s, "founded", ZD_T_DATE);
    return 0;
}

static int set_gateways(zd_schema *s, const char *const *gateways, int n)
{
    s->gateways = calloc((size_t)(n > 0 ? n : 1), sizeof(char *));
    if (!s->gateways)
        return -ENOMEM;
    for (int i = 0; i < n; i++) {
        s->gateways[i] = strdup(gateways[i]);
        if (!s->gateways[i])
            return -ENOMEM;
        s->ngateways++;
    }
    return 0;
}

zd_schema *zd_schema_default(void)
{
    static const char *const gws[] = {"zlb", "inbox", "sms", "email"};
    zd_schema *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (add_builtins(s) != 0 || add_default_attrs(s) != 0 || set_gateways(s, gws, 4) != 0) {
        zd_schema_free(s);
        return NULL;
    }
    return s;
}

static bool valid_attr_name(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len >= ZD_ATTR_NAME_MAX || !((n[0] >= 'a' && n[0] <= 'z') || n[0] == '_'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    /* Keywords of the rule language would make rules ambiguous; "id" is the profile's. */
    return !zd_schema_is_keyword(n, len) && strcmp(n, "id") != 0;
}

/* The first member of obj whose name an earlier member already used, or NULL. cJSON keeps
 * both; lookups would see the first and loops both, so a repeated key is always a mistake in
 * the config and was once a heap overflow ("values" allocated for the second array, filled
 * past it). Quadratic, but only over the operator's config. */
static const cJSON *duplicate_key(const cJSON *obj)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, obj)
    {
        for (const cJSON *p = obj->child; p != m; p = p->next)
            if (m->string && p->string && strcmp(p->string, m->string) == 0)
                return m;
    }
    return NULL;
}

/* Parses one attribute definition {"type": ..., ...}; `a` was added with a provisional type. */
static int parse_attr_def(zd_attr *a, const cJSON *def, zd_error *err)
{
    char key[ZD_ATTR_NAME_MAX + 32];
    if (!cJSON_IsObject(def))
        return zd_error_set(err, "invalid_config", a->name, "schema.%s must be an object", a->name);
    const cJSON *dup = duplicate_key(def);
    if (dup) {
        snprintf(key, sizeof(key), "schema.%s.%.24s", a->name, dup->string);
        return zd_error_set(err, "invalid_config", key, "duplicate key \"%s\"", key);
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(def, "type");
    if (!cJSON_IsString(type))
        return zd_error_set(err, "invalid_config", a->name, "schema.%s.type must be a string",
                            a->name);
    const char *t = type->valuestring;
    if (strcmp(t, "keyword") == 0)
        a->type = ZD_T_KEYWORD;
    else if (strcmp(t, "code") == 0)
        a->type = ZD_T_CODE;
    else if (strcmp(t, "number") == 0)
        a->type = ZD_T_NUMBER;
    else if (strcmp(t, "date") == 0)
        a->type = ZD_T_DATE;
    else
        return zd_error_set(err, "invalid_config", a->name,
                            "schema.%s.type must be keyword, code, number or date", a->name);

    const cJSON *it;
    cJSON_ArrayForEach(it, def)
    {
        const char *k = it->string;
        snprintf(key, sizeof(key), "schema.%s.%s", a->name, k);
        if (strcmp(k, "type") == 0)
            continue;
        if (a->type == ZD_T_KEYWORD && strcmp(k, "values") == 0) {
            if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) == 0)
                return zd_error_set(err, "invalid_config", key,
                                    "%s must be a non-empty array of strings", key);
            int n = cJSON_GetArraySize(it);
            a->allowed = calloc((size_t)n, sizeof(char *));
            if (!a->allowed)
                return -ENOMEM;
            const cJSON *v;
            cJSON_ArrayForEach(v, it)
            {
                if (!cJSON_IsString(v) || strlen(v->valuestring) == 0 ||
                    strlen(v->valuestring) > ZD_KEYWORD_MAX)
                    return zd_error_set(err, "invalid_config", key,
                                        "%s must hold strings of 1-%d bytes", key, ZD_KEYWORD_MAX);
                a->allowed[a->nallowed] = strdup(v->valuestring);
                if (!a->allowed[a->nallowed])
                    return -ENOMEM;
                a->nallowed++;
            }
        } else if (a->type == ZD_T_CODE && strcmp(k, "levels") == 0) {
            int n = cJSON_GetArraySize(it);
            if (!cJSON_IsArray(it) || n == 0 || n > ZD_CODE_LEVELS_MAX)
                return zd_error_set(err, "invalid_config", key,
                                    "%s must be an array of 1-%d level lengths", key,
                                    ZD_CODE_LEVELS_MAX);
            a->nlevels = 0;
            const cJSON *v;
            cJSON_ArrayForEach(v, it)
            {
                int len = cJSON_IsNumber(v) ? v->valueint : -1;
                int prev = a->nlevels ? a->levels[a->nlevels - 1] : 0;
                if (len <= prev || len > ZD_CODE_MAX)
                    return zd_error_set(err, "invalid_config", key,
                                        "%s must be strictly increasing lengths of 1-%d", key,
                                        ZD_CODE_MAX);
                a->levels[a->nlevels++] = len;
            }
        } else if (a->type == ZD_T_CODE && strcmp(k, "style") == 0) {
            if (cJSON_IsString(it) && strcmp(it->valuestring, "digits") == 0)
                a->style = ZD_CODE_DIGITS;
            else if (cJSON_IsString(it) && strcmp(it->valuestring, "letter-digits") == 0)
                a->style = ZD_CODE_LETTER_DIGITS;
            else
                return zd_error_set(err, "invalid_config", key,
                                    "%s must be \"digits\" or \"letter-digits\"", key);
        } else if (a->type == ZD_T_CODE && strcmp(k, "breakdown_level") == 0) {
            if (!cJSON_IsNumber(it))
                return zd_error_set(err, "invalid_config", key, "%s must be a number", key);
            a->breakdown_level = it->valueint;
        } else if (a->type == ZD_T_NUMBER && strcmp(k, "decimals") == 0) {
            if (!cJSON_IsNumber(it) || it->valueint < 0 || it->valueint > 6 ||
                it->valuedouble != it->valueint)
                return zd_error_set(err, "invalid_config", key, "%s must be an integer 0-6", key);
            a->decimals = it->valueint;
        } else if (a->type == ZD_T_NUMBER && (strcmp(k, "min") == 0 || strcmp(k, "max") == 0)) {
            if (!cJSON_IsNumber(it) || it->valuedouble < -1e15 || it->valuedouble > 1e15)
                return zd_error_set(err, "invalid_config", key, "%s must be a number within +-1e15",
                                    key);
        } else {
            return zd_error_set(err, "unknown_key", key, "unknown key \"%s\"", key);
        }
    }
    if (a->type == ZD_T_CODE) {
        if (a->nlevels == 0)
            return zd_error_set(err, "invalid_config", a->name, "schema.%s.levels is required",
                                a->name);
        if (a->breakdown_level == 0)
            a->breakdown_level = a->levels[0];
        bool ok = false;
        for (int i = 0; i < a->nlevels; i++)
            ok |= a->levels[i] == a->breakdown_level;
        if (!ok)
            return zd_error_set(err, "invalid_config", a->name,
                                "schema.%s.breakdown_level must be one of its levels", a->name);
    }
    if (a->type == ZD_T_NUMBER) {
        /* min/max are given unscaled; store them scaled by the attribute's decimals. */
        const cJSON *mn = cJSON_GetObjectItemCaseSensitive(def, "min");
        const cJSON *mx = cJSON_GetObjectItemCaseSensitive(def, "max");
        if (mn && zd_double_to_scaled(mn->valuedouble, a->decimals, &a->min) != 0)
            return zd_error_set(err, "invalid_config", a->name,
                                "schema.%s.min has more decimals than the attribute", a->name);
        if (mx && zd_double_to_scaled(mx->valuedouble, a->decimals, &a->max) != 0)
            return zd_error_set(err, "invalid_config", a->name,
                                "schema.%s.max has more decimals than the attribute", a->name);
        if (a->min > a->max)
            return zd_error_set(err, "invalid_config", a->name, "schema.%s: min > max", a->name);
    }
    return 0;
}

zd_schema *zd_schema_from_json(const cJSON *schema, const char *const *gateways, int ngateways,
                               zd_error *err)
{
    zd_schema *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (add_builtins(s) != 0 || set_gateways(s, gateways, ngateways) != 0)
        goto fail_nomem;
    if (schema == NULL) {
        if (add_default_attrs(s) != 0)
            goto fail_nomem;
        return s;
    }
    if (!cJSON_IsObject(schema)) {
        zd_error_set(err, "invalid_config", "schema", "schema must be an object");
        goto fail;
    }
    const cJSON *def = duplicate_key(schema);
    if (def) {
        char key[ZD_ATTR_NAME_MAX + 8];
        snprintf(key, sizeof(key), "schema.%.*s", ZD_ATTR_NAME_MAX - 1, def->string);
        zd_error_set(err, "invalid_config", key, "duplicate key \"%s\"", key);
        goto fail;
    }
    cJSON_ArrayForEach(def, schema)
    {
        const char *name = def->string;
        if (strcmp(name, "region") == 0) {
            /* region may be re-levelled but stays a code. */
            zd_attr *r = &s->attrs[ZD_ATTR_REGION];
            if (parse_attr_def(r, def, err) != 0)
                goto fail;
            if (r->type != ZD_T_CODE) {
                zd_error_set(err, "invalid_config", "schema.region",
                             "schema.region must keep type \"code\"");
                goto fail;
            }
            continue;
        }
        if (strcmp(name, "kind") == 0 || strcmp(name, "tags") == 0 ||
            strcmp(name, "follows") == 0) {
            zd_error_set(err, "invalid_config", name,
                         "schema.%s is built in and cannot be redefined", name);
            goto fail;
        }
        if (!valid_attr_name(name)) {
            zd_error_set(err, "invalid_config", name,
                         "schema key \"%.48s\" is not a valid attribute name "
                         "([a-z_][A-Za-z0-9_]*, not a rule keyword)",
                         name);
            goto fail;
        }
        if (zd_schema_find(s, name)) {
            zd_error_set(err, "invalid_config", name, "schema.%s is defined twice", name);
            goto fail;
        }
        zd_attr *a = add_attr(s, name, ZD_T_KEYWORD);
        if (!a) {
            zd_error_set(err, "invalid_config", "schema", "schema has more than %d attributes",
                         ZD_SCHEMA_ATTRS_MAX - ZD_ATTR_BUILTINS);
            goto fail;
        }
        if (parse_attr_def(a, def, err) != 0)
            goto fail;
    }
    return s;
fail_nomem:
    zd_error_set(err, "out_of_memory", NULL, "out of memory");
fail:
    zd_schema_free(s);
    return NULL;
}

void zd_schema_free(zd_schema *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nattrs; i++) {
        for (int j = 0; j < s->attrs[i].nallowed; j++)
            free(s->attrs[i].allowed[j]);
        free(s->attrs[i].allowed);
    }
    for (int i = 0; i < s->ngateways; i++)
        free(s->gateways[i]);
    free(s->gateways);
    free(s);
}

const zd_attr *zd_schema_find(const zd_schema *s, const char *name)
{
    for (int i = 0; i < s->nattrs; i++)
        if (strcmp(s->attrs[i].name, name) == 0)
            return &s->attrs[i];
    return NULL;
}

const char *zd_schema_suggest(const zd_schema *s, const char *name)
{
    const char *best = NULL;
    int best_d = 3;
    for (int i = 0; i < s->nattrs; i++) {
        int d = zd_edit_distance(name, s->attrs[i].name, 2);
        if (d < best_d) {
            best_d = d;
            best = s->attrs[i].name;
        }
    }
    return best;
}

bool zd_attr_has_level(const zd_attr *a, int len)
{
    for (int i = 0; i < a->nlevels; i++)
        if (a->levels[i] == len)
            return true;
    return false;
}

const char *zd_attr_levels_text(const zd_attr *a, char *buf, size_t cap)
{
    size_t l = 0;
    if (cap)
        buf[0] = '\0';
    for (int i = 0; i < a->nlevels && l < cap; i++) {
        int n = snprintf(buf + l, cap - l, "%s%d", i ? ", " : "", a->levels[i]);
        if (n < 0)
            break;
        l += (size_t)n;
    }
    return buf;
}

static const char *const rule_keywords[] = {"and", "or",     "not",     "in", "within",
                                            "has", "exists", "segment", "age"};

bool zd_schema_is_keyword(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof(rule_keywords) / sizeof(rule_keywords[0]); i++)
        if (strlen(rule_keywords[i]) == len && strncasecmp(s, rule_keywords[i], len) == 0)
            return true;
    return false;
}

bool zd_code_valid(const zd_attr *a, const char *code, int len)
{
    if (a->type != ZD_T_CODE || !zd_attr_has_level(a, len))
        return false;
    for (int i = 0; i < len; i++) {
        char c = code[i];
        bool letter = a->style == ZD_CODE_LETTER_DIGITS && i == 0;
        if (letter ? !(c >= 'A' && c <= 'Z') : !(c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

bool zd_keyword_allowed(const zd_attr *a, const char *s)
{
    if (a->nallowed == 0)
        return true;
    for (int i = 0; i < a->nallowed; i++)
        if (strcmp(a->allowed[i], s) == 0)
            return true;
    return false;
}

void zd_keyword_list(const zd_attr *a, char *buf, size_t cap)
{
    if (cap == 0)
        return;
    buf[0] = '\0';
    for (int i = 0; i < a->nallowed; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, cap - l, "%s\"%s\"", i ? ", " : "", a->allowed[i]);
    }
}

bool zd_schema_has_gateway(const zd_schema *s, const char *name)
{
    for (int i = 0; i < s->ngateways; i++)
        if (strcmp(s->gateways[i], name) == 0)
            return true;
    return false;
}
