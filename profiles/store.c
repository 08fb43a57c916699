/* Profile persistence: Lua scripts that write the profile hash, allocate dense ids and append
 * to the partition's change stream atomically, over the Redis adapter (redis/). */
#include "profiles/store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "redis/keys.h"
#include "redis/redis.h"

/* Lua helpers shared by the scripts. A stored value is "<dense>,<version>|<stored form>" and
 * the stored form is "<indexed JSON>\n<private JSON>" (zd_profile_to_stored); change streams
 * carry only the indexed part. A value written before the split has no newline: all of it
 * is then taken as the indexed part. */
#define LUA_HELPERS                                                                                \
    "local function indexed(doc)\n"                                                                \
    "  local nl = string.find(doc, '\\n', 1, true)\n"                                              \
    "  if nl then return string.sub(doc, 1, nl - 1) end\n"                                         \
    "  return doc\n"                                                                               \
    "end\n"                                                                                        \
    "local function split(cur)\n"                                                                  \
    "  local c = string.find(cur, ',', 1, true)\n"                                                 \
    "  local b = string.find(cur, '|', c + 1, true)\n"                                             \
    "  return string.sub(cur, 1, c - 1), tonumber(string.sub(cur, c + 1, b - 1)),\n"               \
    "         string.sub(cur, b + 1)\n"                                                            \
    "end\n"

/* The write scripts also keep the partition's meta hash: the data set's epoch (created from
 * the caller's fresh random candidate when missing, i.e. on a Redis that never held this
 * partition or lost it) and n, the count of change entries written. Every entry carries its
 * ordinal n and the epoch e, so a follower can tell from the entries alone when it missed some
 * or when they come from another data set (docs/DESIGN.md). */
/* clang-format off */
#define META_PROLOGUE(metakey, candidate)                                                        \
    "local meta = redis.call('HMGET', " metakey ", 'epoch', 'n')\n"                              \
    "local epoch = meta[1]\n"                                                                     \
    "if not epoch then\n"                                                                         \
    "  epoch = " candidate "\n"                                                                   \
    "  redis.call('HSET', " metakey ", 'epoch', epoch)\n"                                         \
    "end\n"                                                                                       \
    "local cn0 = tonumber(meta[2] or '0')\n"                                                      \
    "local cn = cn0\n"

/* KEYS: profiles hash, dense-id counter, change stream, meta hash.
 * ARGV: maxlen, max dense id, epoch candidate, then (id, stored form, expect) triples. The
 * change-stream entry carries the replaced indexed document ("old") so that every index can
 * drop the old memberships without a read. Returns {epoch, {result per item}}. */
static const char put_script[] = LUA_HELPERS
    "local out = {}\n"
    "local maxdense = tonumber(ARGV[2])\n"
    "local n = (#ARGV - 3) / 3\n"
    "local ids = {}\n"
    "for i = 1, n do ids[i] = ARGV[i * 3 + 1] end\n"
    "-- One HMGET, one HSET and one counter update for the whole batch: redis.call is the\n"
    "-- dominant cost of a script, so only the change-stream entries are written one by one.\n"
    "local curs = redis.call('HMGET', KEYS[1], unpack(ids))\n"
    "local seq0 = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "local seq = seq0\n"
    META_PROLOGUE("KEYS[4]", "ARGV[3]")
    "local written = {}\n"
    "local hset = {}\n"
    "for i = 1, n do\n"
    "  local id, doc, expect = ARGV[i * 3 + 1], ARGV[i * 3 + 2], ARGV[i * 3 + 3]\n"
    "  local cur = written[id]\n"
    "  if cur == nil then cur = curs[i] end\n"
    "  local dense, ver, old\n"
    "  if cur then dense, ver, old = split(cur) end\n"
    "  if (expect == '-' and cur) or (expect ~= '' and expect ~= '-' and\n"
    "      (not cur or tostring(ver) ~= expect)) then\n"
    "    out[i] = {'conflict', '0', '0'}\n"
    "  elseif cur and old == doc then\n"
    "    out[i] = {'unchanged', dense, tostring(ver)}\n"
    "  elseif not cur and seq >= maxdense then\n"
    "    out[i] = {'full', '0', '0'}\n"
    "  else\n"
    "    if not cur then\n"
    "      seq = seq + 1\n"
    "      dense = tostring(seq)\n"
    "      ver = 0\n"
    "    end\n"
    "    ver = ver + 1\n"
    "    cn = cn + 1\n"
    "    local value = dense .. ',' .. ver .. '|' .. doc\n"
    "    written[id] = value\n"
    "    hset[#hset + 1] = id\n"
    "    hset[#hset + 1] = value\n"
    "    if cur then\n"
    "      local oldidx = indexed(old)\n"
    "      local sid = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', 'op', 'put',\n"
    "                             'id', id, 'd', dense, 'n', cn, 'e', epoch, 'old', oldidx,\n"
    "                             'new', indexed(doc))\n"
    "      out[i] = {'updated', dense, tostring(ver), oldidx, sid}\n"
    "    else\n"
    "      local sid = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], '*', 'op', 'put',\n"
    "                             'id', id, 'd', dense, 'n', cn, 'e', epoch,\n"
    "                             'new', indexed(doc))\n"
    "      out[i] = {'created', dense, tostring(ver), '', sid}\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if #hset > 0 then redis.call('HSET', KEYS[1], unpack(hset)) end\n"
    "if seq ~= seq0 then redis.call('SET', KEYS[2], seq) end\n"
    "if cn ~= cn0 then redis.call('HSET', KEYS[4], 'n', cn) end\n"
    "return {epoch, out}\n";

/* KEYS: profiles hash, change stream, erasure set, meta hash, the profile's inbox hash and
 * inbox order zset (delivery/inbox.c; same slot). ARGV: maxlen, id, epoch candidate, expected
 * version ('' = any). The inbox goes with the profile (SPEC §2, erasure). ARGV[5], ARGV[6]: the cap record's key prefix and the partition's first gid. Returns {epoch} when there is no such profile,
 * {epoch, 'conflict', version} when another version is stored, else {epoch, dense, old indexed
 * document, entry id}. The dense id goes into the erasure set with the time of the delete:
 * zd_store_scrub() later removes every change-stream entry of it, once the followers have read
 * them. */
static const char del_script[] = LUA_HELPERS
    META_PROLOGUE("KEYS[4]", "ARGV[3]")
    "local cur = redis.call('HGET', KEYS[1], ARGV[2])\n"
    "if not cur then return {epoch} end\n"
    "local dense, ver, old = split(cur)\n"
    "if ARGV[4] ~= '' and tostring(ver) ~= ARGV[4] then return {epoch, 'conflict', tostring(ver)} end\n"
    "local oldidx = indexed(old)\n"
    "cn = cn + 1\n"
    "redis.call('HDEL', KEYS[1], ARGV[2])\n"
    "redis.call('DEL', KEYS[5], KEYS[6])\n"
    /* The cap record is named by the gid, known only here; its name carries the partition's
     * tag, so it is in this slot (docs/DESIGN.md "Preferences"). */
    "redis.call('DEL', ARGV[5] .. (tonumber(ARGV[6]) + tonumber(dense)))\n"
    "local sid = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'op', 'del',\n"
    "                       'id', ARGV[2], 'd', dense, 'n', cn, 'e', epoch, 'old', oldidx)\n"
    "redis.call('HSET', KEYS[4], 'n', cn)\n"
    "local t = redis.call('TIME')\n"
    "redis.call('ZADD', KEYS[3], t[1] * 1000 + math.floor(t[2] / 1000), dense)\n"
    "return {epoch, dense, oldidx, sid}\n";
/* clang-format on */

/* KEYS: erasure set, change stream. ARGV: cutoff (ms), the most dense ids to take.
 * Deletes every change-stream entry of the profiles erased before the cutoff (at most one
 * pass over the stream, which MAXLEN bounds), then forgets them. Returns entries deleted. */
static const char scrub_script[] =
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])\n"
    "if #due == 0 then return 0 end\n"
    "local gone = {}\n"
    "for _, d in ipairs(due) do gone[d] = true end\n"
    "local deleted, start = 0, '-'\n"
    "while true do\n"
    "  local ents = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', 1000)\n"
    "  local del = {}\n"
    "  for _, e in ipairs(ents) do\n"
    "    local f = e[2]\n"
    "    for i = 1, #f, 2 do\n"
    "      if f[i] == 'd' then\n"
    "        if gone[f[i + 1]] then del[#del + 1] = e[1] end\n"
    "        break\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  if #del > 0 then deleted = deleted + redis.call('XDEL', KEYS[2], unpack(del)) end\n"
    "  if #ents < 1000 then break end\n"
    "  start = '(' .. ents[#ents][1]\n"
    "end\n"
    "redis.call('ZREM', KEYS[1], unpack(due))\n"
    "return deleted\n";

enum { SCRIPT_PUT, SCRIPT_DEL, SCRIPT_SCRUB, SCRIPT_COUNT };
static const char *const script_body[SCRIPT_COUNT] = {put_script, del_script, scrub_script};

struct zd_store {
    zd_redis *redis;
    int partitions;
    long maxlen;
    char sha[SCRIPT_COUNT][48]; /* "" until SCRIPT LOAD answered */
};

/* One script call in flight; keeps its arguments so a NOSCRIPT answer can be retried as EVAL. */
typedef struct script_call {
    zd_store *st;
    int script;
    int partition;
    int argc;
    char **argv;
    size_t *argvlen;
    bool retried;
    void (*done)(struct script_call *c, int status, const zd_reply *reply);
    void *cb;
    void *udata;
    int n; /* batch size, for put */
} script_call;

int zd_store_split_value(const char *v, size_t len, uint32_t *dense, uint64_t *version,
                         const char **json, size_t *json_len)
{
    uint64_t d = 0, ver = 0;
    size_t i = 0;
    while (i < len && v[i] >= '0' && v[i] <= '9')
        d = d * 10 + (uint64_t)(v[i++] - '0');
    if (i == 0 || i >= len || v[i] != ',' || d > ZD_DENSE_MAX)
        return -EINVAL;
    size_t start = ++i;
    while (i < len && v[i] >= '0' && v[i] <= '9')
        ver = ver * 10 + (uint64_t)(v[i++] - '0');
    if (i == start || i >= len || v[i] != '|')
        return -EINVAL;
    *dense = (uint32_t)d;
    *version = ver;
    *json = v + i + 1;
    *json_len = len - i - 1;
    return 0;
}

static void script_loaded(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    char *slot = udata;
    size_t len;
    const char *sha = status == 0 ? zd_reply_str(reply, &len) : NULL;
    if (sha && zd_reply_is(reply, ZD_REPLY_STRING) && len < 48)
        memcpy(slot, sha, len + 1);
    else
        zd_warn("store: SCRIPT LOAD failed (status %d); falling back to EVAL", status);
}

static void on_connect(zd_redis *r, void *udata)
{
    zd_store *st = udata;
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        st->sha[i][0] = '\0';
        zd_redis_cmd(r, script_loaded, st->sha[i], "SCRIPT LOAD %s", script_body[i]);
    }
}

zd_store *zd_store_new(zd_redis *r, int partitions, long maxlen)
{
    zd_store *st = calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->redis = r;
    st->partitions = partitions;
    st->maxlen = maxlen;
    zd_redis_on_connect(r, on_connect, st);
    if (zd_redis_ready(r))
        on_connect(r, st);
    return st;
}

void zd_store_free(zd_store *st)
{
    if (!st)
        return;
    zd_redis_on_connect(st->redis, NULL, NULL);
    free(st);
}

static void call_free(script_call *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->argc; i++)
        free(c->argv[i]);
    free(c->argv);
    free(c->argvlen);
    free(c);
}

static int call_send(script_call *c);

static void call_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    script_call *c = udata;
    if (status == 0 && zd_reply_is(reply, ZD_REPLY_ERROR) && !c->retried &&
        strncmp(zd_reply_str(reply, NULL), "NOSCRIPT", 8) == 0) {
        /* The script cache was flushed (Redis restarted without our reconnect noticing, or
         * SCRIPT FLUSH): resend this call as EVAL and reload the cache. */
        c->retried = true;
        c->st->sha[c->script][0] = '\0';
        zd_redis_cmd(r, script_loaded, c->st->sha[c->script], "SCRIPT LOAD %s",
                     script_body[c->script]);
        if (call_send(c) == 0)
            return;
        status = -EIO;
    }
    if (status == 0 && zd_reply_is(reply, ZD_REPLY_ERROR)) {
        zd_error_log("store: script failed: %.200s", zd_reply_str(reply, NULL));
        status = -EIO;
    }
    c->done(c, status, status == 0 ? reply : NULL);
    call_free(c);
}

static int call_send(script_call *c)
{
    /* argv[0] and argv[1] are reserved for the command and the script (sha or body). */
    zd_store *st = c->st;
    free(c->argv[0]);
    free(c->argv[1]);
    bool sha = st->sha[c->script][0] != '\0' && !c->retried;
    c->argv[0] = strdup(sha ? "EVALSHA" : "EVAL");
    c->argv[1] = strdup(sha ? st->sha[c->script] : script_body[c->script]);
    if (!c->argv[0] || !c->argv[1])
        return -ENOMEM;
    c->argvlen[0] = strlen(c->argv[0]);
    c->argvlen[1] = strlen(c->argv[1]);
    return zd_redis_cmdargv(st->redis, call_reply, c, c->argc, (const char **)c->argv, c->argvlen);
}

/* Sends c if building its arguments succeeded (rc == 0); otherwise, or if sending fails,
 * frees it. Returns 0 (the callback will run) or a negative code (it will not). */
static int call_finish(script_call *c, int rc)
{
    if (rc == 0)
        rc = call_send(c);
    if (rc != 0) {
        call_free(c);
        return rc < 0 ? rc : -ENOMEM;
    }
    return 0;
}

static script_call *call_new(zd_store *st, int script, int argc)
{
    script_call *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->st = st;
    c->script = script;
    c->argv = calloc((size_t)argc, sizeof(char *));
    c->argvlen = calloc((size_t)argc, sizeof(size_t));
    if (!c->argv || !c->argvlen) {
        call_free(c);
        return NULL;
    }
    c->argc = argc;
    return c;
}

static int call_arg(script_call *c, int i, const char *s, size_t len)
{
    c->argv[i] = malloc(len + 1);
    if (!c->argv[i])
        return -ENOMEM;
    memcpy(c->argv[i], s, len);
    c->argv[i][len] = '\0';
    c->argvlen[i] = len;
    return 0;
}

static int call_argll(script_call *c, int i, long long v)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%lld", v);
    return call_arg(c, i, buf, (size_t)n);
}

/* The partition keys a script names, in its KEYS order. */
typedef const char *(*key_fn)(int partition, char *buf);

/* A call to `script` with argc arguments: EVALSHA, the script, the key count, the nkeys keys
 * of `partition` that keys[] name, then from index 3 + nkeys on the caller's arguments.
 * NULL on ENOMEM. */
static script_call *call_begin(zd_store *st, int script, int argc, int partition,
                               const key_fn *keys, int nkeys, void *cb, void *udata)
{
    char key[ZD_KEY_MAX];
    script_call *c = call_new(st, script, argc);
    if (!c)
        return NULL;
    c->partition = partition;
    c->cb = cb;
    c->udata = udata;
    int rc = call_argll(c, 2, nkeys);
    for (int i = 0; i < nkeys; i++) {
        keys[i](partition, key);
        rc |= call_arg(c, 3 + i, key, strlen(key));
    }
    if (rc != 0) {
        call_free(c);
        return NULL;
    }
    return c;
}

/* Epoch candidates: 64-bit values from a splitmix64 sequence seeded once from getrandom(), so
 * that no two candidates of this process, and practically no two of any processes, are equal;
 * an epoch written after Redis lost its data then always differs from the one before. */
uint64_t zd_store_new_epoch(void)
{
    static uint64_t state;
    static bool seeded;
    if (!seeded) {
        if (getrandom(&state, sizeof(state), 0) != (ssize_t)sizeof(state)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            state = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)getpid();
        }
        seeded = true;
    }
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z ? z : 1;
}

void zd_store_format_epoch(uint64_t epoch, char buf[ZD_EPOCH_TEXT])
{
    snprintf(buf, ZD_EPOCH_TEXT, "%016" PRIx64, epoch);
}

uint64_t zd_store_parse_epoch(const char *s, size_t len)
{
    uint64_t v = 0;
    if (!s || len == 0 || len > 16)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0)
            return 0;
        v = v << 4 | (uint64_t)d;
    }
    return v;
}

static int call_arg_epoch(script_call *c, int i)
{
    char buf[ZD_EPOCH_TEXT];
    zd_store_format_epoch(zd_store_new_epoch(), buf);
    return call_arg(c, i, buf, strlen(buf));
}

static uint64_t reply_epoch(const zd_reply *r)
{
    size_t len;
    const char *s = zd_reply_str(r, &len);
    return zd_store_parse_epoch(s, s ? len : 0);
}

static uint64_t parse_u64(const zd_reply *r)
{
    if (zd_reply_is(r, ZD_REPLY_INTEGER))
        return (uint64_t)zd_reply_int(r);
    const char *s = zd_reply_str(r, NULL);
    return s ? strtoull(s, NULL, 10) : 0;
}

static void put_done(script_call *c, int status, const zd_reply *reply)
{
    zd_store_put_cb cb = (zd_store_put_cb)c->cb;
    if (status != 0) {
        cb(status, NULL, 0, c->udata);
        return;
    }
    const zd_reply *items = zd_reply_at(reply, 1);
    uint64_t epoch = reply_epoch(zd_reply_at(reply, 0));
    if (!zd_reply_is(items, ZD_REPLY_ARRAY) || (int)zd_reply_len(items) != c->n || !epoch) {
        zd_error_log("store: unexpected put reply shape");
        cb(-EIO, NULL, 0, c->udata);
        return;
    }
    zd_put_result *res = calloc((size_t)c->n, sizeof(*res));
    if (!res) {
        cb(-ENOMEM, NULL, 0, c->udata);
        return;
    }
    for (int i = 0; i < c->n; i++) {
        const zd_reply *e = zd_reply_at(items, (size_t)i);
        const char *o = zd_reply_str(zd_reply_at(e, 0), NULL);
        if (zd_reply_len(e) < 3 || !o) {
            free(res);
            cb(-EIO, NULL, 0, c->udata);
            return;
        }
        res[i].outcome = strcmp(o, "created") == 0     ? ZD_PUT_CREATED
                         : strcmp(o, "updated") == 0   ? ZD_PUT_UPDATED
                         : strcmp(o, "unchanged") == 0 ? ZD_PUT_UNCHANGED
                         : strcmp(o, "full") == 0      ? ZD_PUT_FULL
                                                       : ZD_PUT_CONFLICT;
        res[i].gid = zd_gid(c->partition, (uint32_t)parse_u64(zd_reply_at(e, 1)));
        res[i].version = parse_u64(zd_reply_at(e, 2));
        res[i].epoch = epoch;
        size_t old_len;
        const char *old = zd_reply_str(zd_reply_at(e, 3), &old_len);
        const char *entry = zd_reply_str(zd_reply_at(e, 4), NULL);
        if (old && entry) {
            if (old_len > 0) {
                res[i].old_json = old;
                res[i].old_len = old_len;
            }
            res[i].entry = entry;
        }
    }
    cb(0, res, c->n, c->udata);
    free(res);
}

int zd_store_put_batch(zd_store *st, int partition, zd_profile *const *profiles, int n,
                       const char *const *expect, zd_store_put_cb cb, void *udata)
{
    /* EVALSHA sha 4 profiles seq changes meta maxlen maxdense epoch (id stored expect)*n */
    static const key_fn keys[] = {zd_key_profiles, zd_key_seq, zd_key_changes, zd_key_meta};
    script_call *c = call_begin(st, SCRIPT_PUT, 10 + 3 * n, partition, keys, 4, (void *)cb, udata);
    if (!c)
        return -ENOMEM;
    c->n = n;
    c->done = put_done;
    int rc = call_argll(c, 7, st->maxlen);
    rc |= call_argll(c, 8, ZD_DENSE_MAX);
    rc |= call_arg_epoch(c, 9);
    for (int i = 0; i < n && rc == 0; i++) {
        char *doc = zd_profile_to_stored(profiles[i], NULL);
        if (!doc) {
            rc = -ENOMEM;
            break;
        }
        const char *ex = expect && expect[i] ? expect[i] : "";
        rc |= call_arg(c, 10 + 3 * i, profiles[i]->id, strlen(profiles[i]->id));
        rc |= call_arg(c, 11 + 3 * i, doc, strlen(doc));
        rc |= call_arg(c, 12 + 3 * i, ex, strlen(ex));
        free(doc);
    }
    return call_finish(c, rc);
}

static void del_done(script_call *c, int status, const zd_reply *reply)
{
    zd_store_del_cb cb = (zd_store_del_cb)c->cb;
    uint64_t epoch = status == 0 ? reply_epoch(zd_reply_at(reply, 0)) : 0;
    const char *what = status == 0 ? zd_reply_str(zd_reply_at(reply, 1), NULL) : NULL;
    if (status != 0) {
        cb(status, ZD_DEL_ABSENT, 0, NULL, 0, NULL, 0, c->udata);
    } else if (epoch && zd_reply_len(reply) == 1) {
        cb(0, ZD_DEL_ABSENT, 0, NULL, 0, NULL, epoch, c->udata);
    } else if (epoch && zd_reply_len(reply) == 3 && what && strcmp(what, "conflict") == 0) {
        cb(0, ZD_DEL_CONFLICT, 0, NULL, 0, NULL, epoch, c->udata);
    } else if (epoch && zd_reply_len(reply) == 4 && zd_reply_str(zd_reply_at(reply, 2), NULL) &&
               zd_reply_str(zd_reply_at(reply, 3), NULL)) {
        size_t old_len;
        const char *old = zd_reply_str(zd_reply_at(reply, 2), &old_len);
        uint32_t gid = zd_gid(c->partition, (uint32_t)parse_u64(zd_reply_at(reply, 1)));
        cb(0, ZD_DEL_DELETED, gid, old, old_len, zd_reply_str(zd_reply_at(reply, 3), NULL), epoch,
           c->udata);
    } else {
        cb(-EIO, ZD_DEL_ABSENT, 0, NULL, 0, NULL, 0, c->udata);
    }
}

int zd_store_del(zd_store *st, const char *id, const char *expect, zd_store_del_cb cb, void *udata)
{
    /* EVALSHA sha 6 profiles changes erase meta inbox inboxz maxlen id epoch expect cap-prefix
     * gid-base */
    static const key_fn keys[] = {zd_key_profiles, zd_key_changes, zd_key_erase, zd_key_meta};
    int partition = zd_partition_of(id, st->partitions);
    script_call *c = call_begin(st, SCRIPT_DEL, 15, partition, keys, 4, (void *)cb, udata);
    if (!c)
        return -ENOMEM;
    c->done = del_done;
    char key[ZD_INBOX_KEY_MAX];
    free(c->argv[2]);
    c->argv[2] = NULL;
    int rc = call_argll(c, 2, 6);
    zd_key_inbox(partition, id, key);
    rc |= call_arg(c, 7, key, strlen(key));
    zd_key_inbox_order(partition, id, key);
    rc |= call_arg(c, 8, key, strlen(key));
    rc |= call_argll(c, 9, st->maxlen);
    rc |= call_arg(c, 10, id, strlen(id));
    rc |= call_arg_epoch(c, 11);
    rc |= call_arg(c, 12, expect ? expect : "", expect ? strlen(expect) : 0);
    zd_key_cap_prefix(partition, key);
    rc |= call_arg(c, 13, key, strlen(key));
    rc |= call_argll(c, 14, (long long)zd_gid(partition, 0));
    return call_finish(c, rc);
}

static void scrub_done(script_call *c, int status, const zd_reply *reply)
{
    zd_store_scrub_cb cb = (zd_store_scrub_cb)c->cb;
    if (cb)
        cb(status, status == 0 ? zd_reply_int(reply) : 0, c->partition, c->udata);
}

int zd_store_scrub(zd_store *st, int partition, long long cutoff_ms, zd_store_scrub_cb cb,
                   void *udata)
{
    /* EVALSHA sha 2 erase changes cutoff limit */
    static const key_fn keys[] = {zd_key_erase, zd_key_changes};
    script_call *c = call_begin(st, SCRIPT_SCRUB, 7, partition, keys, 2, (void *)cb, udata);
    if (!c)
        return -ENOMEM;
    c->done = scrub_done;
    int rc = call_argll(c, 5, cutoff_ms);
    rc |= call_argll(c, 6, 1000);
    return call_finish(c, rc);
}

typedef struct get_call {
    zd_store_get_cb cb;
    void *udata;
    int partition;
} get_call;

static void get_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    get_call *g = udata;
    if (status != 0) {
        g->cb(status, NULL, 0, 0, 0, g->udata);
    } else if (zd_reply_is(reply, ZD_REPLY_NIL)) {
        g->cb(0, NULL, 0, 0, 0, g->udata);
    } else if (zd_reply_is(reply, ZD_REPLY_STRING)) {
        uint32_t dense;
        uint64_t ver;
        const char *json, *v;
        size_t len, vlen;
        v = zd_reply_str(reply, &vlen);
        if (zd_store_split_value(v, vlen, &dense, &ver, &json, &len) == 0)
            g->cb(0, json, len, zd_gid(g->partition, dense), ver, g->udata);
        else
            g->cb(-EIO, NULL, 0, 0, 0, g->udata);
    } else {
        g->cb(-EIO, NULL, 0, 0, 0, g->udata);
    }
    free(g);
}

int zd_store_get(zd_store *st, const char *id, zd_store_get_cb cb, void *udata)
{
    char key[ZD_KEY_MAX];
    get_call *g = malloc(sizeof(*g));
    if (!g)
        return -ENOMEM;
    g->cb = cb;
    g->udata = udata;
    g->partition = zd_partition_of(id, st->partitions);
    zd_key_profiles(g->partition, key);
    int rc = zd_redis_cmd(st->redis, get_reply, g, "HGET %s %s", key, id);
    if (rc != 0)
        free(g);
    return rc;
}
