/* Strict JSON text input (see json.h): what cJSON would accept quietly but zhida must not —
 * NULs that cut strings, text after the value, hostile nesting, repeated keys, and numbers
 * that overflow to infinity — is refused here, once, for every caller. */
#include "profiles/json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"

/* One pass before cJSON sees the text, for what cJSON lets through: NULs (raw, or the escape
 * \u0000, which cJSON decodes into a NUL that ends the C string), other control characters
 * (cJSON takes every byte below 0x21 for white space, and copies them raw into strings), a
 * byte order mark (skipped by cJSON), and the nesting depth of [ and { outside strings. */
static int prescan(const char *s, size_t n, int depth_max, zd_error *err)
{
    if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        return zd_error_set(err, "bad_json", NULL,
                            "invalid JSON at byte 0: a byte order mark is not allowed");
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\0')
            return zd_error_set(err, "bad_json", NULL,
                                "invalid JSON at byte %zu: NUL characters are not allowed", i);
        if (in_str) {
            if (c < 0x20)
                return zd_error_set(err, "bad_json", NULL,
                                    "invalid JSON at byte %zu: control characters in strings must "
                                    "be escaped",
                                    i);
            if (c == '\\') {
                if (n - i > 5 && memcmp(s + i + 1, "u0000", 5) == 0)
                    return zd_error_set(err, "bad_json", NULL,
                                        "invalid JSON at byte %zu: NUL characters (\\u0000) are "
                                        "not allowed",
                                        i);
                /* The escaped byte is checked here: the loop steps over it. */
                if (i + 1 < n && (unsigned char)s[i + 1] < 0x20)
                    return zd_error_set(err, "bad_json", NULL,
                                        "invalid JSON at byte %zu: invalid escape", i + 1);
                i++;
            } else if (c == '"') {
                in_str = false;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
            return zd_error_set(err, "bad_json", NULL,
                                "invalid JSON at byte %zu: control character outside a string", i);
        } else if (c == '[' || c == '{') {
            if (++depth > depth_max)
                return zd_error_set(err, "too_deep", NULL,
                                    "JSON nesting is deeper than %d levels (at byte %zu)",
                                    depth_max, i);
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return 0;
}

/* A JSON path for errors, cut at a character boundary when it grows too long. */
typedef struct json_path {
    char s[ZD_JSON_PATH_MAX + 1];
    size_t len;
} json_path;

static void path_append(json_path *p, const char *s)
{
    size_t n = strlen(s), room = ZD_JSON_PATH_MAX - p->len;
    if (n > room) {
        n = room;
        /* Never end inside a UTF-8 sequence: the path goes into JSON error replies. */
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(p->s + p->len, s, n);
    p->len += n;
    p->s[p->len] = '\0';
}

/* Appends ".key" (or "key" at the top) or "[index]"; returns the length to pop back to. */
static size_t path_push(json_path *p, const char *key, int index)
{
    size_t old = p->len;
    if (key) {
        if (old > 0)
            path_append(p, ".");
        path_append(p, key);
    } else {
        char num[16];
        snprintf(num, sizeof(num), "[%d]", index);
        path_append(p, num);
    }
    return old;
}

static void path_pop(json_path *p, size_t old)
{
    p->len = old;
    p->s[old] = '\0';
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

/* A member of obj whose key an other member repeats, or NULL; *nomem on ENOMEM. Small objects
 * (every profile) compare pairwise in document order; large ones sort, so a 1 MiB body of
 * distinct keys costs n log n, not n². */
static const cJSON *repeated_key(const cJSON *obj, bool *nomem)
{
    int n = cJSON_GetArraySize(obj);
    const cJSON *m;
    if (n <= 32) {
        cJSON_ArrayForEach(m, obj)
        {
            for (const cJSON *q = obj->child; q != m; q = q->next)
                if (strcmp(q->string, m->string) == 0)
                    return m;
        }
        return NULL;
    }
    const cJSON **v = malloc(sizeof(*v) * (size_t)n);
    if (!v) {
        *nomem = true;
        return NULL;
    }
    int i = 0;
    cJSON_ArrayForEach(m, obj) v[i++] = m;
    qsort(v, (size_t)n, sizeof(*v), cmp_key);
    const cJSON *dup = NULL;
    for (i = 1; i < n && !dup; i++)
        if (strcmp(v[i - 1]->string, v[i]->string) == 0)
            dup = v[i];
    free(v);
    return dup;
}

static int check_value(const cJSON *j, json_path *p, zd_error *err)
{
    if (cJSON_IsNumber(j)) {
        if (isfinite(j->valuedouble))
            return 0;
        return zd_error_set(err, "out_of_range", p->s,
                            "%s is out of range: numbers must be finite (within about "
                            "+-1.8e308)",
                            p->len ? p->s : "the JSON value");
    }
    bool object = cJSON_IsObject(j);
    if (!object && !cJSON_IsArray(j))
        return 0;
    if (object) {
        bool nomem = false;
        const cJSON *dup = repeated_key(j, &nomem);
        if (nomem)
            return -ENOMEM;
        if (dup) {
            size_t old = path_push(p, dup->string, 0);
            zd_error_set(err, "bad_json", p->s, "duplicate key \"%s\"", p->s);
            path_pop(p, old);
            return -EINVAL;
        }
    }
    int index = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, j)
    {
        size_t old = path_push(p, object ? c->string : NULL, index++);
        int rc = check_value(c, p, err);
        path_pop(p, old);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int zd_json_check_values(const cJSON *j, zd_error *err)
{
    json_path p = {{0}, 0};
    int rc = check_value(j, &p, err);
    if (rc == -ENOMEM)
        zd_error_set(err, "out_of_memory", NULL, "out of memory");
    return rc;
}

int zd_json_parse_syntax(const char *text, size_t len, int depth_max, cJSON **out, zd_error *err)
{
    *out = NULL;
    if (len == 0)
        return zd_error_set(err, "bad_json", NULL, "no JSON value: the text is empty");
    if (!zd_utf8_valid(text, len))
        return zd_error_set(err, "invalid_utf8", NULL, "the JSON text is not valid UTF-8");
    int rc = prescan(text, len, depth_max, err);
    if (rc != 0)
        return rc;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    size_t off = end ? (size_t)(end - text) : 0;
    if (!j)
        return zd_error_set(err, "bad_json", NULL, "invalid JSON at byte %zu", off);
    while (off < len && strchr(" \t\r\n", text[off]))
        off++;
    if (off < len) {
        cJSON_Delete(j);
        return zd_error_set(err, "bad_json", NULL,
                            "invalid JSON at byte %zu: text after the JSON value", off);
    }
    *out = j;
    return 0;
}

int zd_json_parse(const char *text, size_t len, int depth_max, cJSON **out, zd_error *err)
{
    int rc = zd_json_parse_syntax(text, len, depth_max, out, err);
    if (rc == 0 && (rc = zd_json_check_values(*out, err)) != 0) {
        cJSON_Delete(*out);
        *out = NULL;
    }
    return rc;
}
