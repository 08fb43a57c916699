/* Reference-counted API key sets with use counters that follow a key by name across reloads. */
#include "zhidad/http_keys.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void keyset_free(zd_keyset *ks)
{
    if (!ks)
        return;
    for (int i = 0; ks->keys && i < ks->n; i++) {
        if (ks->keys[i].key) {
            explicit_bzero(ks->keys[i].key, ks->keys[i].keylen);
            free(ks->keys[i].key);
        }
    }
    free(ks->keys);
    free(ks->total);
    free(ks->since);
    free(ks);
}

zd_keyset *zd_keyset_ref(zd_keyset *ks)
{
    ks->refs++;
    return ks;
}

void zd_keyset_unref(zd_keyset *ks)
{
    if (ks && --ks->refs == 0)
        keyset_free(ks);
}

const zd_apikey *zd_keyset_find(const zd_keyset *ks, const char *token, size_t len)
{
    return zd_apikey_find(ks->keys, ks->nactive, token, len);
}

static int find_name(const zd_apikey *keys, int n, const char *name)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(keys[i].name, name) == 0)
            return i;
    }
    return -1;
}

const zd_apikey *zd_keyset_find_name(const zd_keyset *ks, const char *name)
{
    int i = find_name(ks->keys, ks->nactive, name);
    return i < 0 ? NULL : &ks->keys[i];
}

/* Appends to a "; "-separated summary part: "<count> <what> (name, name...)". */
typedef struct summary_part {
    char names[512];
    size_t len;
    int count;
} summary_part;

static void part_add(summary_part *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void part_add(summary_part *p, const char *fmt, ...)
{
    p->count++;
    if (p->len >= sizeof(p->names) - 1)
        return;
    if (p->count > 1)
        p->len += (size_t)snprintf(p->names + p->len, sizeof(p->names) - p->len, ", ");
    if (p->len >= sizeof(p->names) - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(p->names + p->len, sizeof(p->names) - p->len, fmt, ap);
    va_end(ap);
    if (w > 0)
        p->len += (size_t)w;
    if (p->len >= sizeof(p->names) - 1)
        memcpy(p->names + sizeof(p->names) - 4, "...", 4); /* cut, and said so */
}

static void summarize(const zd_apikey *keys, int n, const zd_keyset *prev, char *out, size_t cap)
{
    summary_part added = {0}, removed = {0}, changed = {0};
    for (int i = 0; i < n; i++) {
        int j = prev ? find_name(prev->keys, prev->nactive, keys[i].name) : -1;
        if (j < 0) {
            part_add(&added, "%s", keys[i].name);
            continue;
        }
        const zd_apikey *o = &prev->keys[j];
        bool role = o->role != keys[i].role, scope = strcmp(o->scope, keys[i].scope) != 0;
        /* Constant time, like every comparison of secrets. */
        bool secret = !zd_apikey_same_secret(o, &keys[i]);
        if (role || scope || secret)
            part_add(&changed, "%s:%s%s%s", keys[i].name, role ? " role" : "",
                     scope ? " scope" : "", secret ? " secret" : "");
    }
    for (int j = 0; prev && j < prev->nactive; j++) {
        if (find_name(keys, n, prev->keys[j].name) < 0)
            part_add(&removed, "%s", prev->keys[j].name);
    }
    size_t o = 0;
    out[0] = '\0';
    const summary_part *parts[] = {&added, &removed, &changed};
    static const char *const what[] = {"added", "removed", "changed"};
    for (int k = 0; k < 3; k++) {
        if (parts[k]->count == 0 || o >= cap)
            continue;
        int w = snprintf(out + o, cap - o, "%s%d %s (%s)", o ? "; " : "", parts[k]->count, what[k],
                         parts[k]->names);
        o += w > 0 ? (size_t)w : 0;
    }
    if (o == 0)
        snprintf(out, cap, "unchanged");
}

zd_keyset *zd_keyset_new(const zd_apikey *keys, int n, const zd_keyset *prev, char *summary,
                         size_t cap)
{
    int max = n + (prev ? prev->n : 0);
    zd_keyset *ks = calloc(1, sizeof(*ks));
    if (!ks)
        return NULL;
    ks->refs = 1;
    ks->keys = calloc((size_t)max + 1, sizeof(zd_apikey));
    ks->total = calloc((size_t)max + 1, sizeof(zd_key_uses));
    ks->since = calloc((size_t)max + 1, sizeof(zd_key_uses));
    if (!ks->keys || !ks->total || !ks->since)
        goto fail;
    for (int i = 0; i < n; i++) {
        zd_apikey *k = &ks->keys[ks->n];
        *k = keys[i];
        k->key = malloc(keys[i].keylen + 1);
        if (!k->key)
            goto fail;
        memcpy(k->key, keys[i].key, keys[i].keylen + 1);
        ks->n++;
        int j = prev ? find_name(prev->keys, prev->n, k->name) : -1;
        if (j >= 0) {
            ks->total[i] = prev->total[j];
            ks->since[i] = prev->since[j];
        }
    }
    ks->nactive = n;
    /* Keys no longer configured keep their counts while there are any: the per-role sums in
     * /metrics never go back, and the next key.use record still reports their last uses. */
    for (int j = 0; prev && j < prev->n; j++) {
        const zd_key_uses *t = &prev->total[j], *s = &prev->since[j];
        if (find_name(keys, n, prev->keys[j].name) >= 0 ||
            (t->used == 0 && t->denied == 0 && s->used == 0 && s->denied == 0))
            continue;
        zd_apikey *k = &ks->keys[ks->n];
        *k = prev->keys[j];
        k->key = NULL;
        k->keylen = 0;
        ks->total[ks->n] = *t;
        ks->since[ks->n] = *s;
        ks->n++;
    }
    if (summary && cap)
        summarize(keys, n, prev, summary, cap);
    return ks;
fail:
    keyset_free(ks);
    return NULL;
}
