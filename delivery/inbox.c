/* The inbox API's reads and writes (list, read, read-all, feedback): one script over the
 * profile's slot, then the policies' status and routes (their meta hashes, kept briefly), then
 * the funnel counters of first reads and feedback, then the answer. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/text.h"
#include "delivery/inbox_private.h"
#include "profiles/profile.h"
#include "redis/keys.h"
#include "redis/script.h"

/* How long a policy's status and routes are trusted: a withdraw shows in inboxes within this. */
#define POLICY_TTL_MS 2000
#define POLICY_CACHE 64
#define POLICY_ID_MAX 64

/* ---- scripts (KEYS[1] the profile hash, KEYS[2] the inbox hash, KEYS[3] the order zset) --- */

/* ARGV: profile id, limit, cursor score ('' = first page), cursor notice id. Newest first;
 * ties in arrival ms are ordered by notice id descending, as ZREVRANGE orders them, and the
 * cursor (score, id) continues right after the last item handed out (items are only ever
 * removed all at once, with the profile, so the cursor's item is still there). Returns {'absent'}
 * or
 * {'ok', unread, more (0/1), ids, scores, items}. */
static const char list_script[] =
    "if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {'absent'} end\n"
    "local limit = tonumber(ARGV[2])\n"
    "local ids, scores = {}, {}\n"
    "local function take(r)\n"
    "  for i = 1, #r, 2 do ids[#ids + 1] = r[i]; scores[#scores + 1] = r[i + 1] end\n"
    "end\n"
    "if ARGV[3] == '' then\n"
    "  take(redis.call('ZREVRANGE', KEYS[3], 0, limit, 'WITHSCORES'))\n"
    "else\n"
    "  local s, m = ARGV[3], ARGV[4]\n"
    "  -- The tie group comes in Redis's byte order; Lua's < would compare by the server's\n"
    "  -- locale (Redis sets LC_COLLATE), so the cursor's place is found by equality.\n"
    "  local tie = redis.call('ZREVRANGEBYSCORE', KEYS[3], s, s)\n"
    "  local from = #tie + 1\n"
    "  for i, id in ipairs(tie) do if id == m then from = i + 1; break end end\n"
    "  for i = from, #tie do\n"
    "    if #ids <= limit then ids[#ids + 1] = tie[i]; scores[#scores + 1] = s end\n"
    "  end\n"
    "  if #ids <= limit then\n"
    "    take(redis.call('ZREVRANGEBYSCORE', KEYS[3], '(' .. s, '-inf', 'WITHSCORES', 'LIMIT', 0,\n"
    "                    limit + 1 - #ids))\n"
    "  end\n"
    "end\n"
    "local more = 0\n"
    "if #ids > limit then more = 1; ids[#ids] = nil; scores[#scores] = nil end\n"
    "local items = {}\n"
    "if #ids > 0 then items = redis.call('HMGET', KEYS[2], unpack(ids)) end\n"
    "for i = 1, #ids do if not items[i] then items[i] = '' end end\n"
    "local unread = redis.call('HGET', KEYS[2], '#unread') or '0'\n"
    "return {'ok', unread, more, ids, scores, items}\n";

/* ARGV: profile id, notice id, now ms, 'read' or 'fb', useful ('1'/'0'), reason. Marks the
 * item read (the first time: unread - 1) and for 'fb' replaces its feedback. Returns
 * {'absent'}, {'nonotice'} or {'ok', first read (0/1), previous feedback ('', 'useful',
 * 'not_useful'), item JSON, unread}. */
static const char mark_script[] =
    "if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {'absent'} end\n"
    "local raw = redis.call('HGET', KEYS[2], ARGV[2])\n"
    "if not raw then return {'nonotice'} end\n"
    "local it = cjson.decode(raw)\n"
    "local first = 0\n"
    "if it.read_at == nil or it.read_at == cjson.null then\n"
    "  it.read_at = tonumber(ARGV[3])\n"
    "  first = 1\n"
    "  if tonumber(redis.call('HINCRBY', KEYS[2], '#unread', -1)) < 0 then\n"
    "    redis.call('HSET', KEYS[2], '#unread', 0)\n"
    "  end\n"
    "end\n"
    "local prev = ''\n"
    "if type(it.feedback) == 'table' then\n"
    "  if it.feedback.useful then prev = 'useful' else prev = 'not_useful' end\n"
    "end\n"
    "if ARGV[4] == 'fb' then\n"
    "  it.feedback = {useful = ARGV[5] == '1', reason = ARGV[6], at = tonumber(ARGV[3])}\n"
    "end\n"
    "local out = cjson.encode(it)\n"
    "if first == 1 or ARGV[4] == 'fb' then redis.call('HSET', KEYS[2], ARGV[2], out) end\n"
    "return {'ok', first, prev, out, redis.call('HGET', KEYS[2], '#unread') or '0'}\n";

/* ARGV: profile id, now ms. Marks every unread item read. Returns {'absent'} or {'ok', ids of
 * the items newly marked}. */
static const char read_all_script[] =
    "if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {'absent'} end\n"
    "local all = redis.call('HGETALL', KEYS[2])\n"
    "local newly = {}\n"
    "for i = 1, #all, 2 do\n"
    "  if all[i] ~= '#unread' then\n"
    "    local it = cjson.decode(all[i + 1])\n"
    "    if it.read_at == nil or it.read_at == cjson.null then\n"
    "      it.read_at = tonumber(ARGV[2])\n"
    "      redis.call('HSET', KEYS[2], all[i], cjson.encode(it))\n"
    "      newly[#newly + 1] = all[i]\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if #all > 0 then redis.call('HSET', KEYS[2], '#unread', 0) end\n"
    "return {'ok', newly}\n";

/* KEYS: the policy's meta and funnel hashes. ARGV: field, delta pairs. Counts only for a
 * policy that exists, so a stray item never creates a funnel. */
static const char funnel_script[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
    "for i = 1, #ARGV, 2 do redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1]) end\n"
    "return 1\n";

int zd_inbox_eval(zd_inbox *ib, const char *script, int nkeys, const char *const *keys, int nargs,
                  const char *const *args, zd_redis_cb cb, void *udata)
{
    int argc = 3 + nkeys + nargs;
    const char **argv = calloc((size_t)argc, sizeof(*argv));
    if (!argv)
        return -ENOMEM;
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[0] = "EVAL";
    argv[1] = script;
    argv[2] = nk;
    for (int i = 0; i < nkeys; i++)
        argv[3 + i] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[3 + nkeys + i] = args[i];
    int rc = zd_redis_eval(ib->redis, cb, udata, argc, argv, NULL);
    free(argv);
    return rc;
}

/* ---- policies: status and routes, cached briefly ----------------------------------------- */

typedef struct pol {
    char id[POLICY_ID_MAX + 1];
    bool known;  /* looked up (cache or Redis) */
    bool exists; /* its meta hash exists */
    bool withdrawn;
    cJSON *routes; /* the stored doc's "routes" (owned), or NULL */
} pol;

struct policy_cache {
    pol e[POLICY_CACHE];
    long long until[POLICY_CACHE];
    int next;
};

static bool policy_id_ok(const char *s, size_t n)
{
    if (n < 1 || n > POLICY_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool gateway_ok(const char *s, size_t n)
{
    if (n < 1 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

bool zd_inbox_notice_id_valid(const char *s)
{
    const char *a = strchr(s, ':'), *b = strrchr(s, ':');
    if (!a || a == b)
        return false;
    return policy_id_ok(s, (size_t)(a - s)) && zd_id_valid(a + 1, (size_t)(b - a - 1)) &&
           gateway_ok(b + 1, strlen(b + 1));
}

/* The policy and gateway parts of a notice id "policy:profile:gateway" (into pbuf, gbuf);
 * false when it is not one. */
static bool notice_parts(const char *nid, char pbuf[POLICY_ID_MAX + 1], char gbuf[33])
{
    if (!zd_inbox_notice_id_valid(nid))
        return false;
    const char *a = strchr(nid, ':'), *b = strrchr(nid, ':');
    snprintf(pbuf, POLICY_ID_MAX + 1, "%.*s", (int)(a - nid), nid);
    snprintf(gbuf, 33, "%s", b + 1);
    return true;
}

static void pol_clear(pol *p)
{
    cJSON_Delete(p->routes);
    memset(p, 0, sizeof(*p));
}

static void pol_copy(pol *dst, const pol *src)
{
    *dst = *src;
    dst->routes = src->routes ? cJSON_Duplicate(src->routes, 1) : NULL;
}

static bool cache_get(zd_inbox *ib, pol *p)
{
    struct policy_cache *c = ib->cache;
    long long now = zd_mono_ms();
    for (int i = 0; i < POLICY_CACHE; i++) {
        if (c->e[i].known && c->until[i] > now && strcmp(c->e[i].id, p->id) == 0) {
            pol_copy(p, &c->e[i]);
            return true;
        }
    }
    return false;
}

static void cache_put(zd_inbox *ib, const pol *p)
{
    struct policy_cache *c = ib->cache;
    int at = -1;
    for (int i = 0; i < POLICY_CACHE && at < 0; i++) {
        if (c->e[i].known && strcmp(c->e[i].id, p->id) == 0)
            at = i;
    }
    if (at < 0) {
        at = c->next;
        c->next = (c->next + 1) % POLICY_CACHE;
    }
    pol_clear(&c->e[at]);
    pol_copy(&c->e[at], p);
    c->until[at] = zd_mono_ms() + POLICY_TTL_MS;
}

/* The index of the first route of p that holds gateway gw, or -1. A route is a gateway name
 * or a fallback chain (an array of names). */
static int route_of(const pol *p, const char *gw)
{
    int r = 0;
    const cJSON *route;
    cJSON_ArrayForEach(route, p->routes)
    {
        if (cJSON_IsString(route) && strcmp(route->valuestring, gw) == 0)
            return r;
        const cJSON *g, *chain = cJSON_IsArray(route) ? route : NULL;
        cJSON_ArrayForEach(g, chain)
        {
            if (cJSON_IsString(g) && strcmp(g->valuestring, gw) == 0)
                return r;
        }
        r++;
    }
    return -1;
}

zd_inbox *zd_inbox_new(zd_redis *r, int partitions)
{
    zd_inbox *ib = calloc(1, sizeof(*ib));
    if (!ib || !(ib->cache = calloc(1, sizeof(*ib->cache)))) {
        free(ib);
        return NULL;
    }
    ib->redis = r;
    ib->partitions = partitions;
    return ib;
}

void zd_inbox_free(zd_inbox *ib)
{
    if (!ib)
        return;
    for (int i = 0; i < POLICY_CACHE; i++)
        pol_clear(&ib->cache->e[i]);
    free(ib->cache);
    free(ib);
}

/* ---- operations ---------------------------------------------------------------------------- */

typedef enum op_kind { OP_LIST, OP_READ, OP_READ_ALL, OP_FEEDBACK } op_kind;

typedef struct item {
    char *notice;
    char score[24];
    cJSON *doc; /* the stored item, NULL when unreadable */
    int pol;    /* index in op->pols, -1 without a valid policy id */
    char gw[33];
} item;

typedef struct op {
    zd_inbox *ib;
    op_kind kind;
    char *profile;
    char *notice; /* read, feedback */
    zd_inbox_answer_cb cb;
    void *udata;
    int pending; /* Redis commands outstanding in the current phase */
    int status;
    zd_inbox_found found;
    item *items;
    int nitems;
    pol *pols;
    int npols;
    long long unread;
    bool more;
    bool first;    /* read / feedback: the first read of the item */
    char prev[16]; /* feedback before: "", "useful", "not_useful" */
    bool useful;   /* feedback given */
} op;

static void op_free(op *o)
{
    for (int i = 0; i < o->nitems; i++) {
        free(o->items[i].notice);
        cJSON_Delete(o->items[i].doc);
    }
    free(o->items);
    for (int i = 0; i < o->npols; i++)
        pol_clear(&o->pols[i]);
    free(o->pols);
    free(o->profile);
    free(o->notice);
    free(o);
}

static void op_finish(op *o, cJSON *answer)
{
    if (o->status || o->found != ZD_INBOX_FOUND) {
        cJSON_Delete(answer);
        answer = NULL;
    }
    o->cb(o->status, o->status ? ZD_INBOX_FOUND : o->found, answer, o->udata);
    op_free(o);
}

static op *op_new(zd_inbox *ib, op_kind kind, const char *profile, zd_inbox_answer_cb cb,
                  void *udata)
{
    op *o = calloc(1, sizeof(*o));
    if (!o || !(o->profile = strdup(profile))) {
        free(o);
        return NULL;
    }
    o->ib = ib;
    o->kind = kind;
    o->cb = cb;
    o->udata = udata;
    return o;
}

/* Adds item i of o (notice id nid, copied; doc taken) and its policy. -ENOMEM on failure. */
static int op_add_item(op *o, const char *nid, const char *score, cJSON *doc)
{
    item *it = &o->items[o->nitems];
    memset(it, 0, sizeof(*it));
    it->pol = -1;
    it->doc = doc;
    if (!(it->notice = strdup(nid))) {
        cJSON_Delete(doc);
        return -ENOMEM;
    }
    o->nitems++;
    snprintf(it->score, sizeof(it->score), "%s", score ? score : "");
    char pid[POLICY_ID_MAX + 1];
    if (!notice_parts(nid, pid, it->gw))
        return 0;
    for (int i = 0; i < o->npols; i++) {
        if (strcmp(o->pols[i].id, pid) == 0) {
            it->pol = i;
            return 0;
        }
    }
    it->pol = o->npols;
    memset(&o->pols[o->npols], 0, sizeof(pol));
    snprintf(o->pols[o->npols].id, sizeof(o->pols[0].id), "%s", pid);
    o->npols++;
    return 0;
}

static int op_alloc_items(op *o, size_t n)
{
    o->items = calloc(n ? n : 1, sizeof(item));
    o->pols = calloc(n ? n : 1, sizeof(pol));
    return o->items && o->pols ? 0 : -ENOMEM;
}

/* ---- rendering ---- */

static void add_time(cJSON *o, const char *name, const cJSON *ms)
{
    if (!cJSON_IsNumber(ms)) {
        cJSON_AddNullToObject(o, name);
        return;
    }
    long long v = (long long)ms->valuedouble;
    time_t secs = (time_t)(v / 1000);
    struct tm tm;
    char buf[40], when[32];
    if (!gmtime_r(&secs, &tm) || !strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm)) {
        cJSON_AddNullToObject(o, name);
        return;
    }
    snprintf(buf, sizeof(buf), "%s.%03lldZ", when, v % 1000);
    cJSON_AddStringToObject(o, name, buf);
}

static void copy_str(cJSON *out, const cJSON *doc, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, name);
    cJSON_AddStringToObject(out, name, cJSON_IsString(v) ? v->valuestring : "");
}

static cJSON *render_item(const op *o, const item *it)
{
    cJSON *out = cJSON_CreateObject();
    const cJSON *doc = it->doc;
    cJSON_AddStringToObject(out, "id", it->notice);
    copy_str(out, doc, "policy");
    copy_str(out, doc, "title");
    copy_str(out, doc, "body");
    copy_str(out, doc, "url");
    copy_str(out, doc, "category");
    cJSON_AddBoolToObject(out, "urgent",
                          cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(doc, "urgent")));
    add_time(out, "created_at", cJSON_GetObjectItemCaseSensitive(doc, "created_at"));
    const cJSON *read_at = cJSON_GetObjectItemCaseSensitive(doc, "read_at");
    cJSON_AddBoolToObject(out, "read", cJSON_IsNumber(read_at));
    add_time(out, "read_at", read_at);
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(doc, "feedback");
    if (cJSON_IsObject(fb)) {
        cJSON *f = cJSON_AddObjectToObject(out, "feedback");
        cJSON_AddBoolToObject(f, "useful",
                              cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(fb, "useful")));
        const cJSON *reason = cJSON_GetObjectItemCaseSensitive(fb, "reason");
        if (cJSON_IsString(reason) && reason->valuestring[0])
            cJSON_AddStringToObject(f, "reason", reason->valuestring);
        else
            cJSON_AddNullToObject(f, "reason");
        add_time(f, "at", cJSON_GetObjectItemCaseSensitive(fb, "at"));
    } else {
        cJSON_AddNullToObject(out, "feedback");
    }
    bool withdrawn = it->pol >= 0 && o->pols[it->pol].withdrawn;
    cJSON_AddStringToObject(out, "status", withdrawn ? "withdrawn" : "current");
    return out;
}

static void op_answer(op *o)
{
    cJSON *a = NULL;
    if (o->status == 0 && o->found == ZD_INBOX_FOUND) {
        if (o->kind == OP_LIST) {
            a = cJSON_CreateObject();
            cJSON_AddStringToObject(a, "profile", o->profile);
            cJSON_AddNumberToObject(a, "unread", (double)o->unread);
            cJSON *arr = cJSON_AddArrayToObject(a, "items");
            for (int i = 0; i < o->nitems; i++) {
                if (o->items[i].doc)
                    cJSON_AddItemToArray(arr, render_item(o, &o->items[i]));
            }
            if (o->more && o->nitems > 0) {
                const item *last = &o->items[o->nitems - 1];
                char *cur = malloc(strlen(last->score) + strlen(last->notice) + 2);
                if (cur) {
                    sprintf(cur, "%s:%s", last->score, last->notice);
                    cJSON_AddStringToObject(a, "next_cursor", cur);
                    free(cur);
                }
            } else {
                cJSON_AddNullToObject(a, "next_cursor");
            }
        } else if (o->kind == OP_READ_ALL) {
            a = cJSON_CreateObject();
            cJSON_AddStringToObject(a, "profile", o->profile);
            cJSON_AddNumberToObject(a, "read", o->nitems);
            cJSON_AddNumberToObject(a, "unread", 0);
        } else if (o->nitems == 1 && o->items[0].doc) {
            a = render_item(o, &o->items[0]);
            cJSON_AddNumberToObject(a, "unread", (double)o->unread);
        } else {
            o->status = -EIO;
        }
    }
    op_finish(o, a);
}

/* ---- phase 3: funnel counts ---- */

static void funnel_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    op *o = udata;
    if (status || zd_reply_is(reply, ZD_REPLY_ERROR))
        /* The item is marked already: its count is lost, never doubled. */
        zd_warn("inbox: a funnel count was not recorded (%s)",
                status ? zd_strerror(status) : zd_reply_str(reply, NULL));
    if (--o->pending == 0)
        op_answer(o);
}

/* Field "<route>:<what>" with delta into args (pairs), for item it. */
static void count(const op *o, const item *it, const char *what, int delta, char (*fields)[48],
                  char (*deltas)[8], int *n)
{
    if (it->pol < 0)
        return;
    int r = route_of(&o->pols[it->pol], it->gw);
    if (r < 0)
        return;
    snprintf(fields[*n], 48, "%d:%s", r, what);
    snprintf(deltas[*n], 8, "%d", delta);
    (*n)++;
}

static void op_count(op *o)
{
    o->pending = 1;
    for (int p = 0; p < o->npols; p++) {
        if (!o->pols[p].exists)
            continue;
        /* At most 3 fields per item. */
        int cap = 3 * o->nitems, n = 0;
        char(*fields)[48] = calloc((size_t)cap, sizeof(*fields));
        char(*deltas)[8] = calloc((size_t)cap, sizeof(*deltas));
        const char **args = calloc((size_t)cap * 2, sizeof(*args));
        if (!fields || !deltas || !args) {
            free(fields);
            free(deltas);
            free(args);
            continue;
        }
        for (int i = 0; i < o->nitems; i++) {
            const item *it = &o->items[i];
            if (it->pol != p)
                continue;
            if (o->first)
                count(o, it, "read", 1, fields, deltas, &n);
            if (o->kind == OP_FEEDBACK) {
                const char *now = o->useful ? "useful" : "not_useful";
                if (strcmp(o->prev, now) != 0) {
                    count(o, it, now, 1, fields, deltas, &n);
                    if (o->prev[0])
                        count(o, it, o->prev, -1, fields, deltas, &n);
                }
            }
        }
        for (int i = 0; i < n; i++) {
            args[2 * i] = fields[i];
            args[2 * i + 1] = deltas[i];
        }
        char meta[ZD_POLICY_KEY_MAX], funnel[ZD_POLICY_KEY_MAX];
        const char *keys[2] = {zd_key_policy(ZD_PK_META, o->pols[p].id, meta),
                               zd_key_policy(ZD_PK_FUNNEL, o->pols[p].id, funnel)};
        if (n > 0 &&
            zd_inbox_eval(o->ib, funnel_script, 2, keys, 2 * n, args, funnel_reply, o) == 0)
            o->pending++;
        free(fields);
        free(deltas);
        free(args);
    }
    if (--o->pending == 0)
        op_answer(o);
}

/* ---- phase 2: the policies' status and routes ---- */

typedef struct pol_q {
    op *o;
    int p;
} pol_q;

static void pols_done(op *o)
{
    bool counts = o->status == 0 && o->found == ZD_INBOX_FOUND &&
                  (o->first || o->kind == OP_FEEDBACK || o->kind == OP_READ_ALL);
    if (o->kind == OP_READ_ALL)
        o->first = true; /* every item listed was read just now */
    if (counts)
        op_count(o);
    else
        op_answer(o);
}

static void pol_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    pol_q *q = udata;
    op *o = q->o;
    pol *p = &o->pols[q->p];
    free(q);
    if (status == 0 && zd_reply_is(reply, ZD_REPLY_ARRAY) && zd_reply_len(reply) == 2) {
        const char *st = zd_reply_str(zd_reply_at(reply, 0), NULL);
        size_t len = 0;
        const char *doc = zd_reply_str(zd_reply_at(reply, 1), &len);
        p->known = true;
        p->exists = st != NULL;
        p->withdrawn = st && strcmp(st, "withdrawn") == 0;
        cJSON *d = doc ? cJSON_ParseWithLength(doc, len) : NULL;
        cJSON *routes = cJSON_DetachItemFromObjectCaseSensitive(d, "routes");
        p->routes = cJSON_IsArray(routes) ? routes : NULL;
        if (!p->routes)
            cJSON_Delete(routes);
        cJSON_Delete(d);
        cache_put(o->ib, p);
    } else if (o->status == 0) {
        o->status = status ? status : -EIO;
    }
    if (--o->pending == 0)
        pols_done(o);
}

static void op_policies(op *o)
{
    o->pending = 1;
    for (int i = 0; i < o->npols; i++) {
        pol *p = &o->pols[i];
        if (cache_get(o->ib, p))
            continue;
        pol_q *q = malloc(sizeof(*q));
        char meta[ZD_POLICY_KEY_MAX];
        zd_key_policy(ZD_PK_META, p->id, meta);
        if (q) {
            q->o = o;
            q->p = i;
        }
        if (!q || zd_redis_cmd(o->ib->redis, pol_reply, q, "HMGET %s status doc", meta) != 0) {
            free(q);
            if (o->status == 0)
                o->status = -ENOMEM;
            continue;
        }
        o->pending++;
    }
    if (--o->pending == 0)
        pols_done(o);
}

/* ---- phase 1: the profile's inbox ---- */

static bool reply_ok(op *o, int status, const zd_reply *reply)
{
    if (status) {
        o->status = status;
        return false;
    }
    const char *tag = zd_reply_str(zd_reply_at(reply, 0), NULL);
    if (!zd_reply_is(reply, ZD_REPLY_ARRAY) || !tag) {
        zd_warn("inbox: script failed: %.200s",
                zd_reply_is(reply, ZD_REPLY_ERROR) ? zd_reply_str(reply, NULL) : "bad answer");
        o->status = -EIO;
        return false;
    }
    if (strcmp(tag, "absent") == 0)
        o->found = ZD_INBOX_NO_PROFILE;
    else if (strcmp(tag, "nonotice") == 0)
        o->found = ZD_INBOX_NO_NOTICE;
    return o->found == ZD_INBOX_FOUND;
}

static long long reply_ll(const zd_reply *r)
{
    if (zd_reply_is(r, ZD_REPLY_INTEGER))
        return zd_reply_int(r);
    const char *s = zd_reply_str(r, NULL);
    return s ? strtoll(s, NULL, 10) : 0;
}

static cJSON *parse_item(const zd_reply *r)
{
    size_t len = 0;
    const char *s = zd_reply_str(r, &len);
    return s && len ? cJSON_ParseWithLength(s, len) : NULL;
}

static void script_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    op *o = udata;
    if (!reply_ok(o, status, reply)) {
        op_answer(o);
        return;
    }
    int rc = 0;
    if (o->kind == OP_LIST) {
        o->unread = reply_ll(zd_reply_at(reply, 1));
        o->more = reply_ll(zd_reply_at(reply, 2)) != 0;
        const zd_reply *ids = zd_reply_at(reply, 3), *scores = zd_reply_at(reply, 4),
                       *items = zd_reply_at(reply, 5);
        size_t n = zd_reply_len(ids);
        rc = op_alloc_items(o, n);
        for (size_t i = 0; i < n && rc == 0; i++) {
            const char *nid = zd_reply_str(zd_reply_at(ids, i), NULL);
            if (nid)
                rc = op_add_item(o, nid, zd_reply_str(zd_reply_at(scores, i), NULL),
                                 parse_item(zd_reply_at(items, i)));
        }
    } else if (o->kind == OP_READ_ALL) {
        const zd_reply *ids = zd_reply_at(reply, 1);
        size_t n = zd_reply_len(ids);
        rc = op_alloc_items(o, n);
        for (size_t i = 0; i < n && rc == 0; i++) {
            const char *nid = zd_reply_str(zd_reply_at(ids, i), NULL);
            if (nid)
                rc = op_add_item(o, nid, NULL, NULL);
        }
    } else {
        o->first = reply_ll(zd_reply_at(reply, 1)) != 0;
        const char *prev = zd_reply_str(zd_reply_at(reply, 2), NULL);
        snprintf(o->prev, sizeof(o->prev), "%s", prev ? prev : "");
        o->unread = reply_ll(zd_reply_at(reply, 4));
        rc = op_alloc_items(o, 1);
        if (rc == 0)
            rc = op_add_item(o, o->notice, NULL, parse_item(zd_reply_at(reply, 3)));
    }
    if (rc) {
        o->status = rc;
        op_answer(o);
        return;
    }
    op_policies(o);
}

/* Runs script over the profile's three keys with args after the profile id. */
static int op_start(op *o, const char *script, int nargs, const char *const *args)
{
    int part = zd_partition_of(o->profile, o->ib->partitions);
    char k0[ZD_KEY_MAX], k1[ZD_INBOX_KEY_MAX], k2[ZD_INBOX_KEY_MAX];
    const char *keys[3] = {zd_key_profiles(part, k0), zd_key_inbox(part, o->profile, k1),
                           zd_key_inbox_order(part, o->profile, k2)};
    const char *argv[8];
    argv[0] = o->profile;
    for (int i = 0; i < nargs; i++)
        argv[1 + i] = args[i];
    int rc = zd_inbox_eval(o->ib, script, 3, keys, 1 + nargs, argv, script_reply, o);
    if (rc)
        op_free(o);
    return rc;
}

int zd_inbox_list(zd_inbox *ib, const char *profile, const char *cursor, int limit,
                  zd_inbox_answer_cb cb, void *udata)
{
    char score[24] = "", lim[16];
    const char *nid = "";
    if (cursor) {
        /* "<arrival ms>:<notice id>", as op_answer hands it out. */
        size_t i = 0;
        while (cursor[i] >= '0' && cursor[i] <= '9' && i < 16)
            i++;
        if (i == 0 || cursor[i] != ':' || !zd_inbox_notice_id_valid(cursor + i + 1))
            return -EINVAL;
        memcpy(score, cursor, i);
        score[i] = '\0';
        nid = cursor + i + 1;
    }
    if (limit < 1 || limit > 500)
        return -EINVAL;
    snprintf(lim, sizeof(lim), "%d", limit);
    op *o = op_new(ib, OP_LIST, profile, cb, udata);
    if (!o)
        return -ENOMEM;
    const char *args[3] = {lim, score, nid};
    return op_start(o, list_script, 3, args);
}

static int mark(zd_inbox *ib, op_kind kind, const char *profile, const char *notice, bool useful,
                const char *reason, zd_inbox_answer_cb cb, void *udata)
{
    op *o = op_new(ib, kind, profile, cb, udata);
    if (!o)
        return -ENOMEM;
    o->useful = useful;
    if (!(o->notice = strdup(notice))) {
        op_free(o);
        return -ENOMEM;
    }
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)zd_unix_ms());
    const char *args[5] = {notice, now, kind == OP_FEEDBACK ? "fb" : "read", useful ? "1" : "0",
                           reason ? reason : ""};
    return op_start(o, mark_script, 5, args);
}

int zd_inbox_read(zd_inbox *ib, const char *profile, const char *notice, zd_inbox_answer_cb cb,
                  void *udata)
{
    return mark(ib, OP_READ, profile, notice, false, "", cb, udata);
}

int zd_inbox_feedback(zd_inbox *ib, const char *profile, const char *notice, bool useful,
                      const char *reason, zd_inbox_answer_cb cb, void *udata)
{
    return mark(ib, OP_FEEDBACK, profile, notice, useful, reason, cb, udata);
}

int zd_inbox_read_all(zd_inbox *ib, const char *profile, zd_inbox_answer_cb cb, void *udata)
{
    op *o = op_new(ib, OP_READ_ALL, profile, cb, udata);
    if (!o)
        return -ENOMEM;
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)zd_unix_ms());
    const char *args[1] = {now};
    return op_start(o, read_all_script, 1, args);
}
