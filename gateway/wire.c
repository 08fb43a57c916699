/* Webhook request bodies (a small JSON writer: the notices' strings are copied once, escaped),
 * batch ids, and the parser of a 2xx answer's "failed" list (cJSON). */
#include "gateway/wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/text.h"
#include "gateway/sign.h"

bool zd_wire_id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > ZD_WIRE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)id[i] <= 0x20 || (unsigned char)id[i] >= 0x7f)
            return false;
    }
    return true;
}

typedef struct wbuf {
    char *p;
    size_t len, cap;
} wbuf;

static int reserve(wbuf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 512;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int put(wbuf *b, const char *s, size_t n)
{
    if (reserve(b, n))
        return -ENOMEM;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int puts_(wbuf *b, const char *s)
{
    return put(b, s, strlen(s));
}

/* A JSON string: '"' and '\\' escaped, control characters as \u00XX, UTF-8 as it is. */
static int put_str(wbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (!zd_utf8_valid(s, n))
        return -EINVAL;
    /* Worst case every byte becomes \u00XX. */
    if (reserve(b, n * 6 + 2))
        return -ENOMEM;
    char *o = b->p + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            static const char hex[] = "0123456789abcdef";
            switch (c) {
            case '\n':
                *o++ = '\\', *o++ = 'n';
                break;
            case '\r':
                *o++ = '\\', *o++ = 'r';
                break;
            case '\t':
                *o++ = '\\', *o++ = 't';
                break;
            default:
                memcpy(o, "\\u00", 4);
                o += 4;
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15];
            }
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
    b->p[b->len] = '\0';
    return 0;
}

static int put_field(wbuf *b, const char *name, const char *value)
{
    if (puts_(b, name))
        return -ENOMEM;
    return put_str(b, value ? value : "");
}

int zd_wire_body(const zd_notice *notices, size_t n, char **out, size_t *len)
{
    wbuf b = {0};
    int rc = -ENOMEM;
    *out = NULL;
    *len = 0;
    if (puts_(&b, "{\"notices\":["))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const zd_notice *x = &notices[i];
        char tail[64];
        rc = -EINVAL;
        if (!x->id || !zd_wire_id_ok(x->id))
            goto fail;
        if ((rc = put_field(&b, i ? ",{\"id\":" : "{\"id\":", x->id)) ||
            (rc = put_field(&b, ",\"policy\":", x->policy)) ||
            (rc = put_field(&b, ",\"profile\":", x->profile)) ||
            (rc = put_field(&b, ",\"gateway\":", x->gateway)) ||
            (rc = put_field(&b, ",\"to\":", x->to)) ||
            (rc = put_field(&b, ",\"title\":", x->title)) ||
            (rc = put_field(&b, ",\"body\":", x->body)) ||
            (rc = put_field(&b, ",\"url\":", x->url)) ||
            (rc = put_field(&b, ",\"category\":", x->category)))
            goto fail;
        snprintf(tail, sizeof(tail), ",\"urgent\":%s,\"attempt\":%d}", x->urgent ? "true" : "false",
                 x->attempt);
        rc = -ENOMEM;
        if (puts_(&b, tail))
            goto fail;
    }
    if (puts_(&b, "]}"))
        goto fail;
    *out = b.p;
    *len = b.len;
    return 0;
fail:
    free(b.p);
    return rc;
}

int zd_wire_batch_id(const zd_notice *notices, size_t n, char out[ZD_WIRE_BATCH_ID_LEN])
{
    wbuf b = {0};
    for (size_t i = 0; i < n; i++) {
        if (puts_(&b, notices[i].id) || put(&b, "\n", 1)) {
            free(b.p);
            return -ENOMEM;
        }
    }
    unsigned char md[32];
    int rc = zd_sha256(b.p ? b.p : "", b.len, md);
    free(b.p);
    if (rc)
        return rc;
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "batch_", 6);
    for (int i = 0; i < 16; i++) {
        out[6 + 2 * i] = hex[md[i] >> 4];
        out[7 + 2 * i] = hex[md[i] & 15];
    }
    out[38] = '\0';
    return 0;
}

typedef struct idx_entry {
    const char *id;
    size_t at;
} idx_entry;

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const idx_entry *)a)->id, ((const idx_entry *)b)->id);
}

size_t zd_wire_failed(const char *answer, size_t len, const char *const *ids, size_t n,
                      zd_gw_result *results)
{
    if (len == 0 || n == 0)
        return 0;
    cJSON *root = cJSON_ParseWithLength(answer, len);
    const cJSON *failed = cJSON_GetObjectItemCaseSensitive(root, "failed");
    size_t marked = 0;
    idx_entry *idx = NULL;
    if (!cJSON_IsArray(failed) || cJSON_GetArraySize(failed) == 0)
        goto done;
    /* A batch holds up to 1000 notices and the list as many: look ids up in a sorted index
     * rather than compare every pair. */
    idx = malloc(n * sizeof(*idx));
    if (!idx)
        goto done;
    for (size_t i = 0; i < n; i++)
        idx[i] = (idx_entry){ids[i], i};
    qsort(idx, n, sizeof(*idx), cmp_entry);
    const cJSON *e;
    cJSON_ArrayForEach(e, failed)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (!cJSON_IsString(id))
            continue;
        bool permanent = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "permanent"));
        idx_entry key = {id->valuestring, 0};
        idx_entry *hit = bsearch(&key, idx, n, sizeof(*idx), cmp_entry);
        if (!hit)
            continue;
        /* The same id twice in a batch: mark every copy. */
        while (hit > idx && strcmp(hit[-1].id, key.id) == 0)
            hit--;
        for (; hit < idx + n && strcmp(hit->id, key.id) == 0; hit++) {
            zd_gw_result *r = &results[hit->at];
            if (r->outcome == ZD_GW_DELIVERED)
                marked++;
            r->outcome = permanent ? ZD_GW_PERMANENT : ZD_GW_TRANSIENT;
            snprintf(r->detail, sizeof(r->detail), "HTTP %d, listed as failed (%s)", r->http_status,
                     permanent ? "permanent" : "transient");
        }
    }
done:
    free(idx);
    cJSON_Delete(root);
    return marked;
}
