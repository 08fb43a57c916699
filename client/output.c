/* Rendering of zhidad's answers for people (tables with code names) and for scripts (JSON). */
#include "client/output.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LABEL_MAX 320
#define LINE_WIDTH 100

void zd_out_json(FILE *f, const cJSON *j)
{
    char *s = cJSON_Print(j);
    if (!s)
        zd_cli_oom();
    fprintf(f, "%s\n", s);
    free(s);
}

/* ---- text width ------------------------------------------------------------------------- */

/* Decodes one UTF-8 sequence at s (valid UTF-8 assumed; a stray byte counts as one char). */
static uint32_t next_cp(const unsigned char **s)
{
    const unsigned char *p = *s;
    uint32_t cp = p[0];
    int n = cp < 0x80 ? 0 : cp >= 0xF0 ? 3 : cp >= 0xE0 ? 2 : cp >= 0xC0 ? 1 : 0;
    if (n)
        cp &= 0x3Fu >> n;
    int i = 1;
    for (; i <= n && (p[i] & 0xC0) == 0x80; i++)
        cp = (cp << 6) | (p[i] & 0x3F);
    *s = p + i;
    return cp;
}

/* Wide and fullwidth ranges of Unicode's East Asian Width (the ones text here can contain). */
static bool cp_wide(uint32_t cp)
{
    return (cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0x303E) ||
           (cp >= 0x3041 && cp <= 0x33FF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0xA000 && cp <= 0xA4CF) ||
           (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
           (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
           (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x1F300 && cp <= 0x1F64F) ||
           (cp >= 0x1F900 && cp <= 0x1F9FF) || (cp >= 0x20000 && cp <= 0x3FFFD);
}

size_t zd_out_width(const char *s)
{
    size_t w = 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t cp = next_cp(&p);
        if (cp >= 0x300 && cp <= 0x36F)
            continue; /* combining marks take no column */
        w += cp_wide(cp) ? 2 : 1;
    }
    return w;
}

static void pad(FILE *f, size_t n)
{
    while (n--)
        fputc(' ', f);
}

/* s left-aligned in width columns. */
static void cell(FILE *f, const char *s, size_t width)
{
    size_t w = zd_out_width(s);
    fputs(s, f);
    pad(f, w < width ? width - w : 0);
}

/* s right-aligned in width columns. */
static void cell_right(FILE *f, const char *s, size_t width)
{
    size_t w = zd_out_width(s);
    pad(f, w < width ? width - w : 0);
    fputs(s, f);
}

/* ---- labels ----------------------------------------------------------------------------- */

const char *zd_out_label(const zd_names *table, const char *code, char *buf, size_t cap)
{
    const char *name = zd_names_get(table, code);
    size_t plen = 0;
    if (name) {
        snprintf(buf, cap, "%s %s", code, name);
    } else if ((name = zd_names_get_prefix(table, code, &plen))) {
        /* The code itself has no name (a street, an industry class): show where it lies. */
        snprintf(buf, cap, "%s (%s)", code, name);
    } else {
        snprintf(buf, cap, "%s", code);
    }
    return buf;
}

/* The name table for a field as the API spells it: "region", "region:6", "attrs.industry". */
static const zd_names *names_for(const zd_cli *c, const char *field, size_t len)
{
    const char *colon = memchr(field, ':', len);
    if (colon)
        len = (size_t)(colon - field);
    for (size_t i = len; i > 0; i--)
        if (field[i - 1] == '.') {
            field += i;
            len -= i;
            break;
        }
    if (len == 6 && memcmp(field, "region", 6) == 0)
        return c->regions;
    if (len == 8 && memcmp(field, "industry", 8) == 0)
        return c->industries;
    return NULL;
}

/* "12,345,678". */
static const char *fmt_count(uint64_t v, char *buf, size_t cap)
{
    char digits[24];
    int n = snprintf(digits, sizeof(digits), "%" PRIu64, v);
    size_t o = 0;
    for (int i = 0; i < n && o + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

/* A JSON value as table text: strings bare (with the name of a code of table), arrays of
 * strings joined by ", ", anything else compact JSON. Caller frees. */
static char *value_text(const cJSON *v, const zd_names *table)
{
    char label[LABEL_MAX];
    if (cJSON_IsString(v))
        return strdup(table ? zd_out_label(table, v->valuestring, label, sizeof(label))
                            : v->valuestring);
    if (cJSON_IsArray(v)) {
        bool strings = true;
        const cJSON *it;
        cJSON_ArrayForEach(it, v) strings = strings && cJSON_IsString(it);
        if (strings) {
            zd_buf b = {0};
            cJSON_ArrayForEach(it, v)
            {
                if (b.len)
                    zd_buf_append(&b, ", ", 2);
                const char *s = table ? zd_out_label(table, it->valuestring, label, sizeof(label))
                                      : it->valuestring;
                zd_buf_append(&b, s, strlen(s));
            }
            zd_buf_append(&b, "", 0);
            return b.data;
        }
    }
    return cJSON_PrintUnformatted(v);
}

/* ---- preview ---------------------------------------------------------------------------- */

typedef struct group {
    const char *key;
    double count;
} group;

static int cmp_group(const void *a, const void *b)
{
    const group *x = a, *y = b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return strcmp(x->key, y->key);
}

/* One breakdown table; truncated is the dimension's "breakdown_truncated" entry or NULL. */
static void preview_breakdown(const zd_cli *c, FILE *f, const cJSON *by, const cJSON *truncated,
                              double total)
{
    const zd_names *table = names_for(c, by->string, strlen(by->string));
    int n = cJSON_GetArraySize(by);
    group *g = calloc((size_t)n + 1, sizeof(*g));
    char(*labels)[LABEL_MAX] = calloc((size_t)n + 1, LABEL_MAX);
    if (!g || !labels)
        zd_cli_oom();
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, by) g[k++] = (group){it->string, it->valuedouble};
    qsort(g, (size_t)n, sizeof(*g), cmp_group);
    size_t lw = zd_out_width(by->string), cw = strlen("profiles");
    char num[32];
    for (int i = 0; i < n; i++) {
        zd_out_label(table, g[i].key, labels[i], LABEL_MAX);
        size_t w = zd_out_width(labels[i]);
        lw = w > lw ? w : lw;
        size_t nw = strlen(fmt_count((uint64_t)g[i].count, num, sizeof(num)));
        cw = nw > cw ? nw : cw;
    }
    fputc('\n', f);
    cell(f, by->string, lw);
    fputs("  ", f);
    cell_right(f, "profiles", cw);
    fputs("   share\n", f);
    for (int i = 0; i < n; i++) {
        cell(f, labels[i], lw);
        fputs("  ", f);
        cell_right(f, fmt_count((uint64_t)g[i].count, num, sizeof(num)), cw);
        fprintf(f, "  %5.1f%%\n", total > 0 ? 100.0 * g[i].count / total : 0.0);
    }
    if (n == 0)
        fputs("(no profiles)\n", f);
    const cJSON *og = cJSON_GetObjectItemCaseSensitive(truncated, "other_groups");
    const cJSON *other = cJSON_GetObjectItemCaseSensitive(truncated, "other");
    if (cJSON_IsNumber(og) && cJSON_IsNumber(other)) {
        char num2[32];
        fprintf(f, "... %s smaller groups left out, %s together\n",
                fmt_count((uint64_t)og->valuedouble, num, sizeof(num)),
                fmt_count((uint64_t)other->valuedouble, num2, sizeof(num2)));
    }
    free(labels);
    free(g);
}

void zd_out_preview(const zd_cli *c, FILE *f, const cJSON *ans)
{
    const cJSON *count = cJSON_GetObjectItemCaseSensitive(ans, "count");
    const cJSON *took = cJSON_GetObjectItemCaseSensitive(ans, "took_ms");
    double total = cJSON_IsNumber(count) ? count->valuedouble : 0;
    char num[32];
    fprintf(f, "count   %s", fmt_count((uint64_t)total, num, sizeof(num)));
    if (cJSON_IsNumber(took))
        fprintf(f, "   (%.2f ms)", took->valuedouble);
    fputc('\n', f);
    const cJSON *sample = cJSON_GetObjectItemCaseSensitive(ans, "sample");
    if (cJSON_GetArraySize(sample) > 0) {
        fputs("sample ", f);
        size_t col = 7;
        const cJSON *it;
        cJSON_ArrayForEach(it, sample)
        {
            if (!cJSON_IsString(it))
                continue;
            size_t w = strlen(it->valuestring) + 1;
            if (col > 8 && col + w > LINE_WIDTH) {
                fputs("\n       ", f);
                col = 7;
            }
            fprintf(f, " %s", it->valuestring);
            col += w;
        }
        fputc('\n', f);
    }
    const cJSON *by, *truncated = cJSON_GetObjectItemCaseSensitive(ans, "breakdown_truncated");
    cJSON_ArrayForEach(by, cJSON_GetObjectItemCaseSensitive(ans, "breakdown"))
    {
        if (cJSON_IsObject(by))
            preview_breakdown(c, f, by, cJSON_GetObjectItemCaseSensitive(truncated, by->string),
                              total);
    }
}

/* ---- explain ---------------------------------------------------------------------------- */

/* The field a clause's text compares ("region within ..." -> "region"). */
static const zd_names *clause_names(const zd_cli *c, const char *text)
{
    size_t n = strcspn(text, " (");
    if (n == 6 && strncmp(text, "exists", 6) == 0 && text[6] == ' ') {
        text += 7;
        n = strcspn(text, " (");
    }
    return names_for(c, text, n);
}

void zd_out_explain(const zd_cli *c, FILE *f, const cJSON *ans)
{
    const cJSON *match = cJSON_GetObjectItemCaseSensitive(ans, "match");
    const cJSON *prof = cJSON_GetObjectItemCaseSensitive(ans, "profile");
    fprintf(f, "profile %s: %s\n", cJSON_IsString(prof) ? prof->valuestring : "?",
            cJSON_IsTrue(match) ? "match" : "no match");
    const cJSON *clauses = cJSON_GetObjectItemCaseSensitive(ans, "clauses");
    int n = cJSON_GetArraySize(clauses);
    char **text = calloc((size_t)n + 1, sizeof(char *));
    char **value = calloc((size_t)n + 1, sizeof(char *));
    if (!text || !value)
        zd_cli_oom();
    size_t tw = strlen("clause");
    int i = 0;
    const cJSON *cl;
    cJSON_ArrayForEach(cl, clauses)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(cl, "text");
        const cJSON *seg = cJSON_GetObjectItemCaseSensitive(cl, "segment");
        const char *tt = cJSON_IsString(t) ? t->valuestring : "";
        zd_buf b = {0};
        zd_buf_append(&b, tt, strlen(tt));
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cl, "scope")))
            zd_buf_append(&b, "  (key scope)", 13);
        if (cJSON_IsString(seg)) {
            zd_buf_append(&b, "  [segment ", 11);
            zd_buf_append(&b, seg->valuestring, strlen(seg->valuestring));
            zd_buf_append(&b, "]", 1);
        }
        text[i] = b.data;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cl, "value");
        value[i] = !v                ? strdup("")
                   : cJSON_IsNull(v) ? strdup("(absent)")
                                     : value_text(v, clause_names(c, tt));
        if (!value[i])
            zd_cli_oom();
        size_t w = zd_out_width(text[i]);
        tw = w > tw ? w : tw;
        i++;
    }
    fputs("result  ", f);
    cell(f, "clause", tw);
    fputs("  value\n", f);
    i = 0;
    cJSON_ArrayForEach(cl, clauses)
    {
        fputs(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cl, "result")) ? "yes     "
                                                                           : "no      ",
              f);
        if (value[i][0]) {
            cell(f, text[i], tw);
            fprintf(f, "  %s\n", value[i]);
        } else {
            fprintf(f, "%s\n", text[i]);
        }
        free(text[i]);
        free(value[i]);
        i++;
    }
    free(text);
    free(value);
}

/* ---- generic objects -------------------------------------------------------------------- */

typedef struct kv {
    char **key, **val;
    size_t n, cap;
} kv;

static void kv_add(kv *t, char *key, char *val)
{
    if (!key || !val)
        zd_cli_oom();
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->key = realloc(t->key, t->cap * sizeof(char *));
        t->val = realloc(t->val, t->cap * sizeof(char *));
        if (!t->key || !t->val)
            zd_cli_oom();
    }
    t->key[t->n] = key;
    t->val[t->n++] = val;
}

static void flatten(const zd_cli *c, kv *t, const char *prefix, const cJSON *o)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        size_t n = strlen(prefix) + strlen(it->string) + 2;
        char *key = malloc(n);
        if (!key)
            zd_cli_oom();
        snprintf(key, n, "%s%s%s", prefix, *prefix ? "." : "", it->string);
        if (cJSON_IsObject(it) && it->child) {
            flatten(c, t, key, it);
            free(key);
        } else if (cJSON_IsArray(it) && !it->child) {
            kv_add(t, key, strdup("(none)"));
        } else {
            kv_add(t, key, value_text(it, names_for(c, key, strlen(key))));
        }
    }
}

void zd_out_object(const zd_cli *c, FILE *f, const cJSON *ans)
{
    if (!cJSON_IsObject(ans)) {
        zd_out_json(f, ans);
        return;
    }
    kv t = {0};
    flatten(c, &t, "", ans);
    size_t kw = 0;
    for (size_t i = 0; i < t.n; i++) {
        size_t w = zd_out_width(t.key[i]);
        kw = w > kw ? w : kw;
    }
    for (size_t i = 0; i < t.n; i++) {
        cell(f, t.key[i], kw);
        fprintf(f, "  %s\n", t.val[i]);
        free(t.key[i]);
        free(t.val[i]);
    }
    free(t.key);
    free(t.val);
}

/* ---- demo population -------------------------------------------------------------------- */

/* Column widths: the widest region label is "331127 景宁畲族自治县", the widest industry
 * label "F5176 计算机、软件及辅助设备批发". Columns are separated by two spaces. */
enum { W_ID = 8, W_KIND = 10, W_REGION = 21, W_INDUSTRY = 36, W_EMP = 9, W_DATE = 12 };

static void col(FILE *f, const char *s, size_t width)
{
    cell(f, s, width);
    fputs("  ", f);
}

void zd_out_population_row(const zd_cli *c, FILE *f, const cJSON *doc)
{
    if (!doc) {
        col(f, "id", W_ID);
        col(f, "kind", W_KIND);
        col(f, "region", W_REGION);
        col(f, "industry", W_INDUSTRY);
        cell_right(f, "employees", W_EMP);
        fputs("  ", f);
        col(f, "born/founded", W_DATE);
        fputs("tags\n", f);
        return;
    }
    const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(doc, "attrs");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "id");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(doc, "kind");
    const cJSON *region = cJSON_GetObjectItemCaseSensitive(doc, "region");
    const cJSON *ind = cJSON_GetObjectItemCaseSensitive(attrs, "industry");
    const cJSON *emp = cJSON_GetObjectItemCaseSensitive(attrs, "employees");
    const cJSON *date = cJSON_GetObjectItemCaseSensitive(attrs, "founded");
    if (!date)
        date = cJSON_GetObjectItemCaseSensitive(attrs, "birth_date");
    char label[LABEL_MAX], num[32];
    col(f, cJSON_IsString(id) ? id->valuestring : "", W_ID);
    col(f, cJSON_IsString(kind) ? kind->valuestring : "", W_KIND);
    col(f,
        cJSON_IsString(region) ? zd_out_label(c->regions, region->valuestring, label, sizeof(label))
                               : "",
        W_REGION);
    col(f,
        cJSON_IsString(ind) ? zd_out_label(c->industries, ind->valuestring, label, sizeof(label))
                            : "-",
        W_INDUSTRY);
    cell_right(f,
               cJSON_IsNumber(emp) ? fmt_count((uint64_t)emp->valuedouble, num, sizeof(num)) : "-",
               W_EMP);
    fputs("  ", f);
    col(f, cJSON_IsString(date) ? date->valuestring : "", W_DATE);
    char *tags = value_text(cJSON_GetObjectItemCaseSensitive(doc, "tags"), NULL);
    fprintf(f, "%s\n", tags && strcmp(tags, "null") != 0 ? tags : "");
    free(tags);
}
