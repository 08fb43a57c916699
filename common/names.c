/* Code-to-name tables from TSV files: a sorted array of (code, name), looked up by binary
 * search. Tables are small (hundreds to tens of thousands of lines) and read once. */
#include "common/names.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "common/text.h"

typedef struct entry {
    char *code; /* "code\0name\0" in one allocation; name points into it */
    const char *name;
    long line; /* line in the file being loaded; 0 once that load is done */
} entry;

struct zd_names {
    entry *e;
    size_t n, cap;
};

zd_names *zd_names_new(void)
{
    return calloc(1, sizeof(zd_names));
}

void zd_names_free(zd_names *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++)
        free(n->e[i].code);
    free(n->e);
    free(n);
}

static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    int c = strcmp(x->code, y->code);
    /* Equal codes: the one from an earlier load (line 0) first, then by line. */
    if (c == 0)
        c = (x->line > y->line) - (x->line < y->line);
    return c;
}

static bool code_ok(const char *s, size_t len)
{
    if (len == 0 || len > ZD_NAMES_CODE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return false;
    }
    return true;
}

static int add(zd_names *n, const char *code, size_t clen, const char *name, size_t nlen, long line)
{
    if (n->n == n->cap) {
        size_t cap = n->cap ? n->cap * 2 : 256;
        entry *p = realloc(n->e, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        n->e = p;
        n->cap = cap;
    }
    char *s = malloc(clen + nlen + 2);
    if (!s)
        return -ENOMEM;
    memcpy(s, code, clen);
    s[clen] = '\0';
    memcpy(s + clen + 1, name, nlen);
    s[clen + 1 + nlen] = '\0';
    n->e[n->n++] = (entry){s, s + clen + 1, line};
    return 0;
}

/* Sorts the table and folds duplicates: the same code with the same name is kept once, the
 * same code with another name is an error naming the newer line. */
static int settle(zd_names *n, const char *path, zd_error *err)
{
    if (n->n == 0)
        return 0;
    qsort(n->e, n->n, sizeof(entry), cmp_entry);
    int rc = 0;
    size_t out = 0;
    for (size_t i = 0; i < n->n; i++) {
        entry *e = &n->e[i];
        if (out > 0 && strcmp(n->e[out - 1].code, e->code) == 0) {
            if (rc == 0 && strcmp(n->e[out - 1].name, e->name) != 0)
                rc = zd_error_set(err, "duplicate_code", e->code,
                                  "%s:%ld: code %s is already named \"%s\"", path, e->line, e->code,
                                  n->e[out - 1].name);
            free(e->code);
            continue;
        }
        e->line = 0;
        n->e[out++] = *e;
    }
    n->n = out;
    return rc;
}

int zd_names_load(zd_names *n, const char *path, zd_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int rc = -errno;
        zd_error_set(err, "unreadable", path, "cannot read %s: %s", path, zd_strerror(rc));
        return rc;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long no = 0;
    int rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        no++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (len == 0 || line[0] == '#')
            continue;
        const char *tab = memchr(line, '\t', (size_t)len);
        size_t clen = tab ? (size_t)(tab - line) : 0;
        const char *name = tab ? tab + 1 : NULL;
        size_t nlen = tab ? (size_t)len - clen - 1 : 0;
        if (!tab || !code_ok(line, clen)) {
            rc = zd_error_set(err, "bad_line", path,
                              "%s:%ld: expected code<TAB>name, the code "
                              "1-%d letters or digits",
                              path, no, ZD_NAMES_CODE_MAX);
            break;
        }
        if (nlen == 0 || nlen > ZD_NAMES_NAME_MAX || memchr(name, '\t', nlen) ||
            !zd_utf8_valid(name, nlen)) {
            rc = zd_error_set(err, "bad_line", path,
                              "%s:%ld: the name must be 1-%d bytes of UTF-8 without tabs", path, no,
                              ZD_NAMES_NAME_MAX);
            break;
        }
        if ((rc = add(n, line, clen, name, nlen, no)) < 0)
            break;
    }
    if (rc == 0 && ferror(f)) {
        zd_error_set(err, "unreadable", path, "cannot read %s", path);
        rc = -EIO;
    }
    free(line);
    fclose(f);
    int src = settle(n, path, err);
    return rc ? rc : src;
}

const char *zd_names_get(const zd_names *n, const char *code)
{
    if (!n || !code)
        return NULL;
    size_t lo = 0, hi = n->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(code, n->e[mid].code);
        if (c == 0)
            return n->e[mid].name;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *zd_names_get_prefix(const zd_names *n, const char *code, size_t *prefix_len)
{
    if (!n || !code)
        return NULL;
    char buf[ZD_NAMES_CODE_MAX + 1];
    size_t len = strlen(code);
    if (len > ZD_NAMES_CODE_MAX)
        len = ZD_NAMES_CODE_MAX;
    memcpy(buf, code, len);
    for (; len > 0; len--) {
        buf[len] = '\0';
        const char *name = zd_names_get(n, buf);
        if (name) {
            if (prefix_len)
                *prefix_len = len;
            return name;
        }
    }
    return NULL;
}

size_t zd_names_count(const zd_names *n)
{
    return n ? n->n : 0;
}
