/* A policy's state in Redis: create, read with the funnel, list, withdraw and the notice
 * states of one recipient (docs/DESIGN.md "Delivery"). Dead letters are in policy_dead.c. */
#include "delivery/policy_store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <roaring/roaring.h>

#include "profiles/profile.h"
#include "redis/keys.h"
#include "redis/redis.h"

static const char *const bucket_names[ZD_FB_COUNT] = {
    "muted",    "no_contact", "capped", "duplicate", "holdout", "queued", "deferred",
    "retrying", "delivered",  "dead",   "withdrawn", "read",    "useful", "not_useful"};

const char *zd_funnel_bucket_name(zd_funnel_bucket b)
{
    return (unsigned)b < ZD_FB_COUNT ? bucket_names[b] : "unknown";
}

int zd_funnel_bucket_parse(const char *name, size_t len)
{
    for (int i = 0; i < ZD_FB_COUNT; i++)
        if (strlen(bucket_names[i]) == len && memcmp(bucket_names[i], name, len) == 0)
            return i;
    return -1;
}

/* The funnel skeleton's and the withdraw's Lua list of bucket names. */
#define LUA_BUCKETS                                                                                \
    "local buckets = {'muted','no_contact','capped','duplicate','holdout','queued','deferred',"    \
    "'retrying','delivered','dead','withdrawn','read','useful','not_useful'}\n"

/* ---- create ----------------------------------------------------------------------------- */

/* KEYS: meta, funnel. ARGV: digest, doc, status, owner, scope, created_ms, publish_at_ms,
 * nroutes. */
static const char create_script[] = LUA_BUCKETS
    "local d = redis.call('HGET', KEYS[1], 'digest')\n"
    "if d then\n"
    "  local st = redis.call('HGET', KEYS[1], 'status') or ''\n"
    "  if d == ARGV[1] then return {'exists', st} end\n"
    "  return {'conflict', st}\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'digest', ARGV[1], 'status', ARGV[3],\n"
    "  'owner', ARGV[4], 'scope', ARGV[5], 'created_ms', ARGV[6], 'publish_at_ms',\n"
    "  ARGV[7], 'routes', ARGV[8])\n"
    "local f = {}\n"
    "for r = 0, tonumber(ARGV[8]) - 1 do\n"
    "  for _, b in ipairs(buckets) do f[#f+1] = r .. ':' .. b; f[#f+1] = 0 end\n"
    "end\n"
    "redis.call('HSET', KEYS[2], unpack(f))\n"
    "return {'created', ARGV[3]}\n";

/* KEYS: order, seq, active. ARGV: id, "1" to add to active. Enters a policy into the registry
 * once: a repeat finds it in order and changes nothing. */
static const char register_script[] =
    "if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end\n"
    "local s = redis.call('INCR', KEYS[2])\n"
    "redis.call('ZADD', KEYS[1], s, ARGV[1])\n"
    "if ARGV[2] == '1' then redis.call('SADD', KEYS[3], ARGV[1]) end\n"
    "return 1\n";

typedef struct create_call {
    zd_policy_create_cb cb;
    void *udata;
    zd_create_outcome outcome;
    zd_policy_status now;
    char id[ZD_POLICY_ID_MAX + 1];
} create_call;

static bool final_status(zd_policy_status s)
{
    return s == ZD_POLICY_DONE || s == ZD_POLICY_WITHDRAWN;
}

static void registered(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    create_call *c = udata;
    if (status == 0 && zd_reply_is(reply, ZD_REPLY_ERROR))
        status = -EIO;
    c->cb(status, c->outcome, c->now, c->udata);
    free(c);
}

static void created(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    create_call *c = udata;
    if (status == 0 && (!zd_reply_is(reply, ZD_REPLY_ARRAY) || zd_reply_len(reply) != 2))
        status = -EIO;
    if (status != 0)
        goto done;
    const zd_reply *what = zd_reply_at(reply, 0);
    int st = zd_policy_status_parse(zd_reply_str(zd_reply_at(reply, 1), NULL));
    c->now = st < 0 ? ZD_POLICY_MATCHING : (zd_policy_status)st;
    if (zd_reply_eq(what, "conflict")) {
        c->outcome = ZD_CREATE_CONFLICT;
        goto done;
    }
    c->outcome = zd_reply_eq(what, "exists") ? ZD_CREATE_EXISTS : ZD_CREATE_CREATED;
    /* The registry's slot is another one: a second script. A crash between the two leaves a
     * policy outside the listing and the sweepers' set until the client repeats the create,
     * which lands here again with EXISTS. */
    const char *argv[] = {"EVAL",
                          register_script,
                          "3",
                          ZD_KEY_POLICY_ORDER,
                          ZD_KEY_POLICY_SEQ,
                          ZD_KEY_POLICY_ACTIVE,
                          c->id,
                          final_status(c->now) ? "0" : "1"};
    if (zd_redis_cmdargv(r, registered, c, 8, argv, NULL) == 0)
        return;
    status = -EIO;
done:
    c->cb(status, c->outcome, c->now, c->udata);
    free(c);
}

int zd_policy_create(zd_redis *r, const zd_policy *p, int64_t now_ms, zd_policy_create_cb cb,
                     void *udata)
{
    create_call *c = calloc(1, sizeof(*c));
    char *doc = zd_policy_to_stored(p);
    if (!c || !doc) {
        free(c);
        free(doc);
        return -ENOMEM;
    }
    c->cb = cb;
    c->udata = udata;
    snprintf(c->id, sizeof(c->id), "%s", p->id);
    char meta[ZD_POLICY_KEY_MAX], funnel[ZD_POLICY_KEY_MAX], created_ms[24], publish_ms[24],
        nroutes[8];
    snprintf(created_ms, sizeof(created_ms), "%" PRId64, p->created_ms);
    snprintf(publish_ms, sizeof(publish_ms), "%" PRId64, p->publish_at_ms);
    snprintf(nroutes, sizeof(nroutes), "%d", p->nroutes);
    zd_policy_status st = p->publish_at_ms > now_ms ? ZD_POLICY_SCHEDULED : ZD_POLICY_MATCHING;
    const char *argv[] = {"EVAL",
                          create_script,
                          "2",
                          zd_key_policy(ZD_PK_META, p->id, meta),
                          zd_key_policy(ZD_PK_FUNNEL, p->id, funnel),
                          p->digest,
                          doc,
                          zd_policy_status_name(st),
                          p->owner,
                          p->scope,
                          created_ms,
                          publish_ms,
                          nroutes};
    int rc = zd_redis_cmdargv(r, created, c, 13, argv, NULL);
    free(doc);
    if (rc != 0)
        free(c);
    return rc;
}

/* ---- read ------------------------------------------------------------------------------- */

/* KEYS: meta, funnel. One script, so that the status and the counters are of one moment. */
static const char get_script[] =
    "return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2])}\n";

static int64_t reply_i64(const zd_reply *v)
{
    const char *s = zd_reply_str(v, NULL);
    return s ? strtoll(s, NULL, 10) : 0;
}

static void zd_policy_view_free(zd_policy_view *v)
{
    if (!v)
        return;
    zd_policy_free(v->doc);
    free(v);
}

/* Builds a view from the get script's reply: NULL with *rc = 0 when there is no policy. */
static zd_policy_view *view_from(const zd_reply *reply, int *rc)
{
    *rc = 0;
    if (!zd_reply_is(reply, ZD_REPLY_ARRAY) || zd_reply_len(reply) != 2) {
        *rc = -EIO;
        return NULL;
    }
    const zd_reply *meta = zd_reply_at(reply, 0), *funnel = zd_reply_at(reply, 1);
    size_t nm = zd_reply_len(meta);
    if (nm == 0)
        return NULL;
    zd_policy_view *v = calloc(1, sizeof(*v));
    if (!v) {
        *rc = -ENOMEM;
        return NULL;
    }
    v->status = ZD_POLICY_MATCHING;
    for (size_t i = 0; i + 1 < nm; i += 2) {
        const char *k = zd_reply_str(zd_reply_at(meta, i), NULL);
        const zd_reply *val = zd_reply_at(meta, i + 1);
        if (!k)
            continue;
        if (strcmp(k, "doc") == 0) {
            size_t len;
            const char *doc = zd_reply_str(val, &len);
            if (doc)
                *rc = zd_policy_from_stored(doc, len, &v->doc);
        } else if (strcmp(k, "status") == 0) {
            int s = zd_policy_status_parse(zd_reply_str(val, NULL));
            if (s >= 0)
                v->status = (zd_policy_status)s;
        } else if (strcmp(k, "matched") == 0) {
            v->frozen = true;
            v->matched = reply_i64(val);
        } else if (strcmp(k, "applied_treated") == 0) {
            v->applied_treated = reply_i64(val);
        } else if (strcmp(k, "applied_holdout") == 0) {
            v->applied_holdout = reply_i64(val);
        } else if (strcmp(k, "started_ms") == 0) {
            v->started_ms = reply_i64(val);
        } else if (strcmp(k, "first_ms") == 0) {
            v->first_ms = reply_i64(val);
        } else if (strcmp(k, "done_ms") == 0) {
            v->done_ms = reply_i64(val);
        } else if (strcmp(k, "withdrawn_ms") == 0) {
            v->withdrawn_ms = reply_i64(val);
        }
    }
    if (*rc != 0 || !v->doc) {
        /* A meta hash without a readable document: not a policy this code can show. */
        *rc = *rc ? *rc : -EIO;
        zd_policy_view_free(v);
        return NULL;
    }
    size_t nf = zd_reply_len(funnel);
    for (size_t i = 0; i + 1 < nf; i += 2) {
        size_t klen;
        const char *k = zd_reply_str(zd_reply_at(funnel, i), &klen);
        if (!k)
            continue;
        char *end;
        long r = strtol(k, &end, 10);
        if (end == k || *end != ':' || r < 0 || r >= v->doc->nroutes)
            continue;
        const char *name = end + 1;
        int64_t n = reply_i64(zd_reply_at(funnel, i + 1));
        if (strncmp(name, "by:", 3) == 0) {
            const zd_policy_route *route = &v->doc->routes[r];
            for (int g = 0; g < route->n; g++)
                if (strcmp(route->gateways[g], name + 3) == 0)
                    v->routes[r].by[g] = n;
            continue;
        }
        int b = zd_funnel_bucket_parse(name, klen - (size_t)(name - k));
        if (b >= 0)
            v->routes[r].n[b] = n;
    }
    return v;
}

void zd_policy_view_total(const zd_policy_view *v, zd_route_funnel *total)
{
    memset(total, 0, sizeof(*total));
    for (int r = 0; r < v->doc->nroutes; r++)
        for (int b = 0; b < ZD_FB_COUNT; b++)
            total->n[b] += v->routes[r].n[b];
}

typedef struct get_call {
    zd_policy_get_cb cb;
    void *udata;
} get_call;

static void got(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    get_call *c = udata;
    zd_policy_view *v = NULL;
    if (status == 0)
        v = view_from(reply, &status);
    c->cb(status, status == 0 ? v : NULL, c->udata);
    zd_policy_view_free(v);
    free(c);
}

static int send_get(zd_redis *r, const char *id, zd_redis_cb fn, void *c)
{
    char meta[ZD_POLICY_KEY_MAX], funnel[ZD_POLICY_KEY_MAX];
    const char *argv[] = {"EVAL", get_script, "2", zd_key_policy(ZD_PK_META, id, meta),
                          zd_key_policy(ZD_PK_FUNNEL, id, funnel)};
    return zd_redis_cmdargv(r, fn, c, 5, argv, NULL);
}

int zd_policy_get(zd_redis *r, const char *id, zd_policy_get_cb cb, void *udata)
{
    get_call *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->cb = cb;
    c->udata = udata;
    int rc = send_get(r, id, got, c);
    if (rc != 0)
        free(c);
    return rc;
}

/* ---- list ------------------------------------------------------------------------------- */

/* The cursor is the sequence number of the last policy examined, in decimal: opaque to
 * clients (docs/API.md), checked strictly here. The next page holds older policies. */
typedef struct list_call {
    zd_redis *r;
    zd_policy_list_cb cb;
    void *udata;
    int status_filter;
    bool any_scope;
    char scope[16];
    int limit;
    int64_t before; /* examine sequences below this; INT64_MAX at the start */
    int examined;
    int nviews;
    zd_policy_view **views; /* room for limit */
    /* The batch in flight: its ids in order and their replies. */
    int nbatch, answered;
    bool more; /* the order zset has policies beyond the batch */
    int batch_status;
    char (*ids)[ZD_POLICY_ID_MAX + 1];
    int64_t *seqs;
    zd_policy_view **got;
} list_call;

typedef struct list_item {
    list_call *c;
    int i;
} list_item;

static void list_finish(list_call *c, int status, bool more)
{
    char cursor[24];
    if (status == 0 && more)
        snprintf(cursor, sizeof(cursor), "%" PRId64, c->before);
    c->cb(status, status == 0 ? (const zd_policy_view *const *)c->views : NULL,
          status == 0 ? c->nviews : 0, status == 0 && more ? cursor : NULL, c->udata);
    for (int i = 0; i < c->nviews; i++)
        zd_policy_view_free(c->views[i]);
    free(c->views);
    free(c->ids);
    free(c->seqs);
    free(c->got);
    free(c);
}

static void list_next(list_call *c);

static void list_item_got(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    list_item *it = udata;
    list_call *c = it->c;
    if (status == 0)
        c->got[it->i] = view_from(reply, &status);
    if (status != 0 && c->batch_status == 0)
        c->batch_status = status;
    free(it);
    if (++c->answered < c->nbatch)
        return;
    /* The batch in order: keep the matching ones until the page is full; the cursor is the
     * last one looked at, so the next page starts right after it. */
    int status_all = c->batch_status;
    bool full = false;
    for (int i = 0; i < c->nbatch; i++) {
        zd_policy_view *v = c->got[i];
        c->got[i] = NULL;
        if (status_all != 0 || full) {
            zd_policy_view_free(v);
            continue;
        }
        c->examined++;
        c->before = c->seqs[i];
        if (v) {
            v->seq = c->seqs[i];
            bool keep = (c->status_filter < 0 || (int)v->status == c->status_filter) &&
                        (c->any_scope || strcmp(v->doc->scope, c->scope) == 0);
            if (keep)
                c->views[c->nviews++] = v;
            else
                zd_policy_view_free(v);
        }
        full = c->nviews == c->limit;
        if (full && i + 1 < c->nbatch)
            c->more = true;
    }
    if (status_all != 0) {
        list_finish(c, status_all, false);
        return;
    }
    if (full || !c->more || c->examined >= ZD_POLICY_LIST_SCAN_MAX) {
        list_finish(c, 0, c->more);
        return;
    }
    list_next(c);
}

static void list_ids(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    list_call *c = udata;
    if (status == 0 && !zd_reply_is(reply, ZD_REPLY_ARRAY))
        status = -EIO;
    if (status != 0) {
        list_finish(c, status, false);
        return;
    }
    int n = (int)zd_reply_len(reply) / 2;
    int want = c->limit - c->nviews;
    if (c->status_filter >= 0 || !c->any_scope)
        want = 100;
    c->more = n > want;
    if (n > want)
        n = want;
    if (n == 0) {
        list_finish(c, 0, false);
        return;
    }
    c->nbatch = n;
    c->answered = 0;
    c->batch_status = 0;
    for (int i = 0; i < n; i++) {
        snprintf(c->ids[i], sizeof(c->ids[i]), "%s", zd_reply_str(zd_reply_at(reply, 2 * i), NULL));
        c->seqs[i] = reply_i64(zd_reply_at(reply, 2 * i + 1));
    }
    /* Every document at once: they are on as many slots, one script each. */
    for (int i = 0; i < n; i++) {
        list_item *it = malloc(sizeof(*it));
        if (it) {
            it->c = c;
            it->i = i;
        }
        if (!it || send_get(c->r, c->ids[i], list_item_got, it) != 0) {
            /* Counted as answered with an error, so the batch still completes. */
            free(it);
            if (c->batch_status == 0)
                c->batch_status = -EIO;
            if (++c->answered == n) {
                list_finish(c, c->batch_status, false);
                return;
            }
        }
    }
}

static void list_next(list_call *c)
{
    char max[32], count[16];
    if (c->before == INT64_MAX)
        snprintf(max, sizeof(max), "+inf");
    else
        snprintf(max, sizeof(max), "(%" PRId64, c->before);
    int want = c->limit - c->nviews;
    if (c->status_filter >= 0 || !c->any_scope)
        want = 100;
    /* One more than needed tells whether there is a next page. */
    snprintf(count, sizeof(count), "%d", want + 1);
    const char *argv[] = {
        "ZREVRANGEBYSCORE", ZD_KEY_POLICY_ORDER, max, "-inf", "WITHSCORES", "LIMIT", "0", count};
    if (zd_redis_cmdargv(c->r, list_ids, c, 8, argv, NULL) != 0)
        list_finish(c, -EIO, false);
}

int zd_policy_list(zd_redis *r, const char *cursor, int status_filter, const char *scope, int limit,
                   zd_policy_list_cb cb, void *udata)
{
    int64_t before = INT64_MAX;
    if (cursor) {
        size_t len = strlen(cursor);
        if (len < 1 || len > 18 || cursor[0] == '0')
            return -EINVAL;
        for (size_t i = 0; i < len; i++)
            if (cursor[i] < '0' || cursor[i] > '9')
                return -EINVAL;
        before = strtoll(cursor, NULL, 10);
    }
    if (limit < 1)
        return -EINVAL;
    list_call *c = calloc(1, sizeof(*c));
    int cap = limit > 100 ? limit : 100;
    if (!c)
        return -ENOMEM;
    c->views = calloc((size_t)limit, sizeof(*c->views));
    c->ids = calloc((size_t)cap + 1, sizeof(*c->ids));
    c->seqs = calloc((size_t)cap + 1, sizeof(*c->seqs));
    c->got = calloc((size_t)cap + 1, sizeof(*c->got));
    if (!c->views || !c->ids || !c->seqs || !c->got) {
        free(c->views);
        free(c->ids);
        free(c->seqs);
        free(c->got);
        free(c);
        return -ENOMEM;
    }
    c->r = r;
    c->cb = cb;
    c->udata = udata;
    c->status_filter = status_filter;
    c->any_scope = scope == NULL;
    snprintf(c->scope, sizeof(c->scope), "%s", scope ? scope : "");
    c->limit = limit;
    c->before = before;
    list_next(c);
    return 0;
}

/* ---- withdraw --------------------------------------------------------------------------- */

/* KEYS: meta, funnel, retry. ARGV: now ms. */
static const char withdraw_script[] =
    "local st = redis.call('HGET', KEYS[1], 'status')\n"
    "if not st then return {'missing', ''} end\n"
    "if st == 'done' or st == 'withdrawn' then return {'final', st} end\n"
    "redis.call('HSET', KEYS[1], 'status', 'withdrawn', 'withdrawn_ms', ARGV[1])\n"
    "local n = tonumber(redis.call('HGET', KEYS[1], 'routes') or '0')\n"
    "for r = 0, n - 1 do\n"
    "  local p = 0\n"
    "  for _, b in ipairs({'queued', 'deferred', 'retrying'}) do\n"
    "    p = p + tonumber(redis.call('HGET', KEYS[2], r .. ':' .. b) or '0')\n"
    "    redis.call('HSET', KEYS[2], r .. ':' .. b, 0)\n"
    "  end\n"
    "  redis.call('HINCRBY', KEYS[2], r .. ':withdrawn', p)\n"
    "end\n"
    "redis.call('DEL', KEYS[3])\n"
    "return {'ok', st}\n";

typedef struct withdraw_call {
    zd_policy_withdraw_cb cb;
    void *udata;
    zd_policy_status was;
    char id[ZD_POLICY_ID_MAX + 1];
} withdraw_call;

static void withdraw_unlisted(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    withdraw_call *c = udata;
    /* The withdraw itself has happened; a failed SREM only leaves a withdrawn id in the
     * sweepers' set, which they drop when they read its status. */
    c->cb(0, ZD_WITHDRAW_DONE, c->was, c->udata);
    free(c);
}

static void withdrawn(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    withdraw_call *c = udata;
    if (status == 0 && (!zd_reply_is(reply, ZD_REPLY_ARRAY) || zd_reply_len(reply) != 2))
        status = -EIO;
    if (status != 0) {
        c->cb(status, ZD_WITHDRAW_MISSING, ZD_POLICY_MATCHING, c->udata);
        free(c);
        return;
    }
    const zd_reply *what = zd_reply_at(reply, 0);
    int st = zd_policy_status_parse(zd_reply_str(zd_reply_at(reply, 1), NULL));
    c->was = st < 0 ? ZD_POLICY_MATCHING : (zd_policy_status)st;
    if (!zd_reply_eq(what, "ok")) {
        c->cb(0, zd_reply_eq(what, "final") ? ZD_WITHDRAW_FINAL : ZD_WITHDRAW_MISSING, c->was,
              c->udata);
        free(c);
        return;
    }
    const char *argv[] = {"SREM", ZD_KEY_POLICY_ACTIVE, c->id};
    if (zd_redis_cmdargv(r, withdraw_unlisted, c, 3, argv, NULL) != 0)
        withdraw_unlisted(r, 0, NULL, c);
}

int zd_policy_withdraw(zd_redis *r, const char *id, int64_t now_ms, zd_policy_withdraw_cb cb,
                       void *udata)
{
    withdraw_call *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->cb = cb;
    c->udata = udata;
    snprintf(c->id, sizeof(c->id), "%s", id);
    char meta[ZD_POLICY_KEY_MAX], funnel[ZD_POLICY_KEY_MAX], retry[ZD_POLICY_KEY_MAX], now[24];
    snprintf(now, sizeof(now), "%" PRId64, now_ms);
    const char *argv[] = {"EVAL",
                          withdraw_script,
                          "3",
                          zd_key_policy(ZD_PK_META, id, meta),
                          zd_key_policy(ZD_PK_FUNNEL, id, funnel),
                          zd_key_policy(ZD_PK_RETRY, id, retry),
                          now};
    int rc = zd_redis_cmdargv(r, withdrawn, c, 7, argv, NULL);
    if (rc != 0)
        free(c);
    return rc;
}

/* ---- per recipient ---------------------------------------------------------------------- */

int zd_notice_state_parse(const char *s, size_t len, zd_notice_state *out)
{
    out->b = 'q';
    out->gwi = 0;
    out->attempt = 1;
    out->log = "";
    if (!s)
        return 0;
    /* "<b>|<gwi>|<attempt>|<log>" */
    if (len < 6 || s[1] != '|' || !strchr("qrdxwnmcuhf", s[0]))
        return -EINVAL;
    char *end;
    long gwi = strtol(s + 2, &end, 10);
    if (end == s + 2 || *end != '|' || gwi < 0 || gwi >= ZD_POLICY_CHAIN_MAX)
        return -EINVAL;
    const char *a = end + 1;
    long attempt = strtol(a, &end, 10);
    if (end == a || *end != '|' || attempt < 0)
        return -EINVAL;
    out->b = s[0];
    out->gwi = (int)gwi;
    out->attempt = (int)attempt;
    out->log = end + 1;
    return 0;
}

/* KEYS: aud, st. ARGV: partition, fields... Returns the partition's frozen audience (or nil)
 * and then the states. */
static const char states_script[] =
    "local out = {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('EXISTS', KEYS[1])}\n"
    "for i = 2, #ARGV do out[#out+1] = redis.call('HGET', KEYS[2], ARGV[i]) end\n"
    "return out\n";

typedef struct states_call {
    zd_policy_states_cb cb;
    void *udata;
    uint32_t gid;
    int nroutes;
} states_call;

static void states_got(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    states_call *c = udata;
    if (status == 0 &&
        (!zd_reply_is(reply, ZD_REPLY_ARRAY) || zd_reply_len(reply) != (size_t)c->nroutes + 2))
        status = -EIO;
    const char *states[ZD_POLICY_ROUTES_MAX] = {0};
    size_t lens[ZD_POLICY_ROUTES_MAX] = {0};
    bool frozen = false, reached = false;
    if (status == 0) {
        size_t blen;
        const char *bm = zd_reply_str(zd_reply_at(reply, 0), &blen);
        frozen = zd_reply_int(zd_reply_at(reply, 1)) == 1;
        if (bm) {
            roaring_bitmap_t *b = roaring_bitmap_portable_deserialize_safe(bm, blen);
            if (b) {
                reached = roaring_bitmap_contains(b, c->gid & ZD_DENSE_MAX);
                roaring_bitmap_free(b);
            } else {
                status = -EIO;
            }
        }
        for (int i = 0; i < c->nroutes; i++)
            states[i] = zd_reply_str(zd_reply_at(reply, (size_t)i + 2), &lens[i]);
    }
    c->cb(status, frozen, reached, states, lens, c->udata);
    free(c);
}

int zd_policy_states(zd_redis *r, const char *id, uint32_t gid, int nroutes, zd_policy_states_cb cb,
                     void *udata)
{
    if (nroutes < 1 || nroutes > ZD_POLICY_ROUTES_MAX)
        return -EINVAL;
    states_call *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->cb = cb;
    c->udata = udata;
    c->gid = gid;
    c->nroutes = nroutes;
    char aud[ZD_POLICY_KEY_MAX], st[ZD_POLICY_KEY_MAX], part[8];
    char fields[ZD_POLICY_ROUTES_MAX][24];
    const char *argv[5 + ZD_POLICY_ROUTES_MAX];
    int argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = states_script;
    argv[argc++] = "2";
    argv[argc++] = zd_key_policy(ZD_PK_AUD, id, aud);
    argv[argc++] = zd_key_policy(ZD_PK_STATE, id, st);
    snprintf(part, sizeof(part), "%u", gid >> ZD_DENSE_BITS);
    argv[argc++] = part;
    for (int i = 0; i < nroutes; i++) {
        snprintf(fields[i], sizeof(fields[i]), "%" PRIu32 ".%d", gid, i);
        argv[argc++] = fields[i];
    }
    int rc = zd_redis_cmdargv(r, states_got, c, argc, argv, NULL);
    if (rc != 0)
        free(c);
    return rc;
}
