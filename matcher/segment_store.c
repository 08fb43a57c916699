/* Segment persistence: one hash, name -> "<owner>\n<rule>". Writes and deletes run as Lua
 * scripts so the owner check and the change are one step. */
#include "matcher/segment_store.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redis/keys.h"

/* KEYS: segments hash. ARGV: name, owner, admin ("1"/"0"), rule (put only).
 * A stored value without an owner line predates owners and belongs to the admins. */
#define OWNER_OF                                                                                   \
    "local function owner_of(v)\n"                                                                 \
    "  local o = string.match(v, '^([%*%d]*)\\n')\n"                                               \
    "  return o or '*'\n"                                                                          \
    "end\n"
static const char put_script[] =
    OWNER_OF "local cur = redis.call('HGET', KEYS[1], ARGV[1])\n"
             "local owner = ARGV[2]\n"
             "if cur then\n"
             "  local o = owner_of(cur)\n"
             "  if ARGV[3] ~= '1' and o ~= owner then return 'forbidden' end\n"
             "  owner = o\n"
             "end\n"
             "redis.call('HSET', KEYS[1], ARGV[1], owner .. '\\n' .. ARGV[4])\n"
             "return 'ok'\n";
static const char del_script[] =
    OWNER_OF "local cur = redis.call('HGET', KEYS[1], ARGV[1])\n"
             "if not cur then return 'missing' end\n"
             "if ARGV[3] ~= '1' and owner_of(cur) ~= ARGV[2] then return 'forbidden' end\n"
             "redis.call('HDEL', KEYS[1], ARGV[1])\n"
             "return 'ok'\n";

/* Splits a stored value into owner and rule (both pointing into a copy the caller frees). */
static char *split_value(const char *v, size_t len, const char **owner, const char **rule)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, v, len);
    copy[len] = '\0';
    size_t i = 0;
    while (i < len && (copy[i] == '*' || (copy[i] >= '0' && copy[i] <= '9')))
        i++;
    if (i < len && copy[i] == '\n') {
        copy[i] = '\0';
        *owner = i ? copy : ZD_SEGMENT_OWNER_ADMIN;
        *rule = copy + i + 1;
    } else {
        *owner = ZD_SEGMENT_OWNER_ADMIN;
        *rule = copy;
    }
    return copy;
}

typedef struct seg_call {
    void *cb;
    void *udata;
    char name[128];
} seg_call;

static seg_call *call_new(void *cb, void *udata, const char *name)
{
    seg_call *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->cb = cb;
    c->udata = udata;
    if (name)
        strncpy(c->name, name, sizeof(c->name) - 1);
    return c;
}

static int submitted(seg_call *c, int rc)
{
    if (rc != 0)
        free(c);
    return rc;
}

static void all_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    seg_call *c = udata;
    zd_segments_all_cb cb = (zd_segments_all_cb)c->cb;
    if (status == 0 && !zd_reply_is(reply, ZD_REPLY_ARRAY))
        status = -EIO;
    size_t n = status == 0 ? zd_reply_len(reply) / 2 : 0;
    zd_segment *segs = calloc(n + 1, sizeof(*segs));
    char **copies = calloc(n + 1, sizeof(char *));
    if (status == 0 && (!segs || !copies))
        status = -ENOMEM;
    int got = 0;
    for (size_t i = 0; status == 0 && i < n; i++) {
        size_t len;
        const char *name = zd_reply_str(zd_reply_at(reply, 2 * i), NULL);
        const char *v = zd_reply_str(zd_reply_at(reply, 2 * i + 1), &len);
        if (!name || !v)
            continue;
        copies[got] = split_value(v, len, &segs[got].owner, &segs[got].rule);
        if (!copies[got]) {
            status = -ENOMEM;
            break;
        }
        segs[got++].name = name;
    }
    cb(status, status == 0 ? segs : NULL, status == 0 ? got : 0, c->udata);
    for (int i = 0; i < got; i++)
        free(copies[i]);
    free(copies);
    free(segs);
    free(c);
}

int zd_segments_all(zd_redis *r, zd_segments_all_cb cb, void *udata)
{
    seg_call *c = call_new((void *)cb, udata, NULL);
    if (!c)
        return -ENOMEM;
    return submitted(c, zd_redis_cmd(r, all_reply, c, "HGETALL %s", ZD_KEY_SEGMENTS));
}

/* ---- sorted pages ------------------------------------------------------------------------
 * Segments are few (one hash, which every preview naming a segment reads whole), so a page is
 * HGETALL, a sort and a cut. HSCAN would not help: its cursor follows the hash table, not the
 * names, so an ordered page needs every entry anyway. The cursor is the last name of the
 * page in base64url, opaque to clients so that its form can change. */

#define NAME_MAX_BYTES 64

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Writes the base64url text (no padding) of s[0..len) into out (room for 4 * len / 3 + 4). */
static void cursor_encode(const char *s, size_t len, char *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)u[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)u[i + 1] << 8;
        if (i + 2 < len)
            v |= u[i + 2];
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        if (i + 1 < len)
            out[o++] = b64url[v >> 6 & 63];
        if (i + 2 < len)
            out[o++] = b64url[v & 63];
    }
    out[o] = '\0';
}

static int b64_value(char c)
{
    const char *p = c ? strchr(b64url, c) : NULL;
    return p ? (int)(p - b64url) : -1;
}

/* Decodes a cursor into the segment name it carries (out: NAME_MAX_BYTES + 1). -EINVAL when it
 * is not base64url of a possible segment name, in the canonical form cursor_encode() writes. */
static int cursor_decode(const char *c, char *out)
{
    size_t len = strlen(c), n = 0;
    if (len < 2 || len % 4 == 1 || len > (NAME_MAX_BYTES + 2) / 3 * 4)
        return -EINVAL;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(c[i]);
        if (v < 0)
            return -EINVAL;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (char)(acc >> bits & 0xff);
        }
    }
    /* Leftover bits must be zero, so that every name has exactly one cursor. */
    if (acc & ((1u << bits) - 1) || n < 1 || n > NAME_MAX_BYTES)
        return -EINVAL;
    out[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        char ch = out[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.'))
            return -EINVAL;
    }
    return 0;
}

typedef struct list_call {
    zd_segments_list_cb cb;
    void *udata;
    int limit;
    bool from_start;
    char after[NAME_MAX_BYTES + 1];
} list_call;

static int segment_by_name(const void *a, const void *b)
{
    return strcmp(((const zd_segment *)a)->name, ((const zd_segment *)b)->name);
}

static void list_page(int status, const zd_segment *segs, int n, void *udata)
{
    list_call *c = udata;
    if (status != 0) {
        c->cb(status, NULL, 0, NULL, c->udata);
        free(c);
        return;
    }
    zd_segment *sorted = malloc(sizeof(*sorted) * ((size_t)n + 1));
    if (!sorted) {
        c->cb(-ENOMEM, NULL, 0, NULL, c->udata);
        free(c);
        return;
    }
    int k = 0;
    for (int i = 0; i < n; i++)
        if (c->from_start || strcmp(segs[i].name, c->after) > 0)
            sorted[k++] = segs[i];
    qsort(sorted, (size_t)k, sizeof(*sorted), segment_by_name);
    int page = k < c->limit ? k : c->limit;
    char next[(NAME_MAX_BYTES + 2) / 3 * 4 + 1];
    const char *last = page > 0 ? sorted[page - 1].name : NULL;
    /* A name longer than any the API accepts (written to Redis by hand) cannot be a cursor:
     * the page then ends the list rather than hand out a cursor that would be refused. */
    bool more = k > page && last && strlen(last) <= NAME_MAX_BYTES;
    if (more)
        cursor_encode(last, strlen(last), next);
    c->cb(0, sorted, page, more ? next : NULL, c->udata);
    free(sorted);
    free(c);
}

int zd_segments_list(zd_redis *r, const char *cursor, int limit, zd_segments_list_cb cb,
                     void *udata)
{
    list_call *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->cb = cb;
    c->udata = udata;
    c->limit = limit < 1 ? 1 : limit;
    c->from_start = !cursor;
    if (cursor && cursor_decode(cursor, c->after) != 0) {
        free(c);
        return -EINVAL;
    }
    int rc = zd_segments_all(r, list_page, c);
    if (rc != 0)
        free(c);
    return rc;
}

static void get_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    seg_call *c = udata;
    zd_segments_get_cb cb = (zd_segments_get_cb)c->cb;
    size_t len;
    const char *v = status == 0 ? zd_reply_str(reply, &len) : NULL;
    if (status == 0 && zd_reply_is(reply, ZD_REPLY_ERROR))
        status = -EIO;
    if (status != 0 || !v || !zd_reply_is(reply, ZD_REPLY_STRING)) {
        cb(status, NULL, c->udata);
    } else {
        zd_segment seg = {.name = c->name};
        char *copy = split_value(v, len, &seg.owner, &seg.rule);
        cb(copy ? 0 : -ENOMEM, copy ? &seg : NULL, c->udata);
        free(copy);
    }
    free(c);
}

int zd_segments_get(zd_redis *r, const char *name, zd_segments_get_cb cb, void *udata)
{
    seg_call *c = call_new((void *)cb, udata, name);
    if (!c)
        return -ENOMEM;
    return submitted(c, zd_redis_cmd(r, get_reply, c, "HGET %s %s", ZD_KEY_SEGMENTS, name));
}

static void done_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    seg_call *c = udata;
    zd_segments_done_cb cb = (zd_segments_done_cb)c->cb;
    if (status == 0) {
        if (zd_reply_eq(reply, "forbidden"))
            status = -EPERM;
        else if (zd_reply_eq(reply, "missing"))
            status = -ENOENT;
        else if (!zd_reply_eq(reply, "ok"))
            status = -EIO;
    }
    cb(status, c->udata);
    free(c);
}

int zd_segments_put(zd_redis *r, const char *name, const char *rule, const char *owner, bool admin,
                    zd_segments_done_cb cb, void *udata)
{
    seg_call *c = call_new((void *)cb, udata, name);
    if (!c)
        return -ENOMEM;
    return submitted(c, zd_redis_cmd(r, done_reply, c, "EVAL %s 1 %s %s %s %s %s", put_script,
                                     ZD_KEY_SEGMENTS, name, owner, admin ? "1" : "0", rule));
}

int zd_segments_del(zd_redis *r, const char *name, const char *owner, bool admin,
                    zd_segments_done_cb cb, void *udata)
{
    seg_call *c = call_new((void *)cb, udata, name);
    if (!c)
        return -ENOMEM;
    return submitted(c, zd_redis_cmd(r, done_reply, c, "EVAL %s 1 %s %s %s %s", del_script,
                                     ZD_KEY_SEGMENTS, name, owner, admin ? "1" : "0"));
}
