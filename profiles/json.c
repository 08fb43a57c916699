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

/* Byte classes for prescan(): which bytes end a run of ordinary ones inside a string (control
 * characters, the quote, the backslash) and outside (also brackets, braces; but not the four
 * white-space characters). */
enum { IN_STR = 1, OUTSIDE = 2, BOTH = IN_STR | OUTSIDE };
/* One row per 16 bytes reads better than clang-format's one line per byte. */
// clang-format off
static const unsigned char byte_class[256] = {
    BOTH, BOTH, BOTH, BOTH, BOTH, BOTH, BOTH, BOTH, BOTH, IN_STR, IN_STR, BOTH, BOTH, IN_STR, BOTH, BOTH,
    BOTH, BOTH, BOTH, BOTH, BOTH, BOTH, BOTH, BOTH, BOTH, BOTH,   BOTH,   BOTH, BOTH, BOTH,   BOTH, BOTH,
    ['"'] = BOTH, ['\\'] = IN_STR, ['['] = OUTSIDE, ['{'] = OUTSIDE, [']'] = OUTSIDE, ['}'] = OUTSIDE,
};
// clang-format on

/* One pass before cJSON sees the text, for what cJSON lets through: NULs (raw, or the escape
 * \u0000, which cJSON decodes into a NUL that ends the C string), other control characters
 * (cJSON takes every byte below 0x21 for white space, and copies them raw into strings), a
 * byte order mark (skipped by cJSON), and the nesting depth of [ and { outside strings. It
 * runs on every line of a bulk import, hence the byte-class table. */
static int prescan(const char *str, size_t n, int depth_max, zd_error *err)
{
    const unsigned char *s = (const unsigned char *)str;
    if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        return zd_error_set(err, "bad_json", NULL,
                            "invalid JSON at byte 0: a byte order mark is not allowed");
    int depth = 0;
    size_t i = 0;
    for (;;) {
        /* Outside strings. */
        while (i < n && !(byte_class[s[i]] & OUTSIDE))
            i++;
        if (i == n)
            return 0;
        unsigned char c = s[i];
        if (c == '[' || c == '{') {
            if (++depth > depth_max)
                return zd_error_set(err, "too_deep", NULL,
                                    "JSON nesting is deeper than %d levels (at byte %zu)",
                                    depth_max, i);
            i++;
            continue;
        }
        if (c == ']' || c == '}') {
            depth--;
            i++;
            continue;
        }
        if (c != '"')
            return zd_error_set(err, "bad_json", NULL, "invalid JSON at byte %zu: %s", i,
                                c ? "control character outside a string"
                                  : "NUL characters are not allowed");
        /* Inside a string, from the byte after its opening quote. */
        for (i++;; i++) {
            while (i < n && !(byte_class[s[i]] & IN_STR))
                i++;
            if (i >= n)
                return 0; /* unterminated: cJSON reports it */
            c = s[i];
            if (c == '"')
                break;
            if (c != '\\')
                return zd_error_set(err, "bad_json", NULL, "invalid JSON at byte %zu: %s", i,
                                    c ? "control characters in strings must be escaped"
                                      : "NUL characters are not allowed");
            if (n - i > 5 && memcmp(s + i + 1, "u0000", 5) == 0)
                return zd_error_set(err, "bad_json", NULL,
                                    "invalid JSON at byte %zu: NUL characters (\\u0000) are not "
                                    "allowed",
                                    i);
            /* The escaped byte is checked here: the loop steps over it (past the end when the
             * text ends in a backslash, which the test above catches). */
            if (i + 1 < n && s[i + 1] < 0x20)
                return zd_error_set(err, "bad_json", NULL, "invalid JSON at byte %zu: %s", i + 1,
                                    s[i + 1] ? "invalid escape" : "NUL characters are not allowed");
            i++;
        }
        i++; /* the closing quote */
    }
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

/* Appends ".key" (or "key" at the top) or "[index]". */
static void path_push(json_path *p, const char *key, int index)
{
    if (key) {
        if (p->len > 0)
            path_append(p, ".");
        path_append(p, key);
    } else {
        char num[16];
        snprintf(num, sizeof(num), "[%d]", index);
        path_append(p, num);
    }
}

/* The nodes from the root down to the one being checked. The path is spelled out only for an
 * error (the walk runs on every import line); levels past TRAIL_MAX could not fit in
 * ZD_JSON_PATH_MAX characters anyway. */
#define TRAIL_MAX 64
typedef struct trail {
    const cJSON *node[TRAIL_MAX]; /* node[0]: the root */
} trail;

static void path_of(const trail *t, int depth, json_path *p)
{
    for (int d = 1; d <= depth && d < TRAIL_MAX; d++) {
        const cJSON *parent = t->node[d - 1], *node = t->node[d];
        if (cJSON_IsObject(parent)) {
            path_push(p, node->string, 0);
        } else {
            int i = 0;
            for (const cJSON *c = parent->child; c && c != node; c = c->next)
                i++;
            path_push(p, NULL, i);
        }
    }
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
                if (q->string[0] == m->string[0] && strcmp(q->string, m->string) == 0)
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

static int check_value(trail *t, const cJSON *j, int depth, zd_error *err)
{
    if (depth < TRAIL_MAX)
        t->node[depth] = j;
    json_path p;
    p.s[0] = '\0';
    p.len = 0;
    if (cJSON_IsNumber(j)) {
        if (isfinite(j->valuedouble))
            return 0;
        path_of(t, depth, &p);
        return zd_error_set(err, "out_of_range", p.s,
                            "%s is out of range: numbers must be finite (within about "
                            "+-1.8e308)",
                            p.len ? p.s : "the JSON value");
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
            path_of(t, depth, &p);
            path_push(&p, dup->string, 0);
            return zd_error_set(err, "bad_json", p.s, "duplicate key \"%s\"", p.s);
        }
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, j)
    {
        int rc = check_value(t, c, depth + 1, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int zd_json_check_values(const cJSON *j, zd_error *err)
{
    trail t;
    int rc = check_value(&t, j, 0, err);
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
