/* Segment persistence: one hash, name -> "<owner>\n<rule>". Writes and deletes run as Lua
 * scripts so the owner check and the change are one step. */
#include "matcher/segment_store.h"

#include <errno.h>
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
