/* Dead letters (docs/DESIGN.md "Delivery"): listing zd:{d:ID}:dead streams, one policy or all
 * of them in the registry's order, and replaying chosen entries with one script per batch on
 * the policy's slot. Entries: "n <gid.route.gwi.attempt> g <gateway> h <http> e <detail>
 * t <ms>". */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/policy_store.h"
#include "redis/keys.h"
#include "redis/redis.h"

#define DEAD_BATCH 500
#define POLICIES_SCAN_MAX 200 /* policies one list request looks into */

/* ---- listing ---------------------------------------------------------------------------- */

typedef struct dead_item {
    zd_dead_letter d;
    char policy[ZD_POLICY_ID_MAX + 1];
    char stream_id[48];
    char gateway[40];
    char detail[256];
} dead_item;

typedef struct dl_call {
    zd_redis *r;
    zd_dead_list_cb cb;
    void *udata;
    bool all;
    bool any_scope;
    char scope[16];
    char gateway[40]; /* "" = every gateway */
    int limit;
    dead_item *items;
    int n;
    int examined, policies;
    char policy[ZD_POLICY_ID_MAX + 1];
    int64_t seq;    /* the current policy's sequence (0 for one named policy) */
    char after[50]; /* XRANGE start: "-" or "(<id>" */
} dl_call;

static void dl_finish(dl_call *c, int status, const char *cursor)
{
    for (int i = 0; i < c->n; i++) {
        dead_item *it = &c->items[i];
        it->d.policy = it->policy;
        it->d.stream_id = it->stream_id;
        it->d.gateway = it->gateway;
        it->d.detail = it->detail;
    }
    zd_dead_letter *out = calloc((size_t)c->n + 1, sizeof(*out));
    for (int i = 0; out && i < c->n; i++)
        out[i] = c->items[i].d;
    if (status == 0 && !out)
        status = -ENOMEM;
    c->cb(status, status == 0 ? out : NULL, status == 0 ? c->n : 0, status == 0 ? cursor : NULL,
          c->udata);
    free(out);
    free(c->items);
    free(c);
}

static void dl_cursor_finish(dl_call *c, const char *stream_id)
{
    char cursor[80];
    snprintf(cursor, sizeof(cursor), "%" PRId64 ":%s", c->seq, stream_id);
    dl_finish(c, 0, cursor);
}

static void dl_next_policy(dl_call *c);
static void dl_read(dl_call *c);

/* Parses one XRANGE entry [id, [k, v, ...]] into it; false when it is not a dead letter. */
static bool parse_entry(const zd_reply *e, dead_item *it)
{
    const char *id = zd_reply_str(zd_reply_at(e, 0), NULL);
    const zd_reply *kv = zd_reply_at(e, 1);
    if (!id)
        return false;
    memset(it, 0, sizeof(*it));
    snprintf(it->stream_id, sizeof(it->stream_id), "%s", id);
    bool have_n = false;
    for (size_t j = 0; j + 1 < zd_reply_len(kv); j += 2) {
        const char *k = zd_reply_str(zd_reply_at(kv, j), NULL);
        const char *v = zd_reply_str(zd_reply_at(kv, j + 1), NULL);
        if (!k || !v)
            continue;
        if (strcmp(k, "n") == 0) {
            unsigned long gid;
            int route, gwi, attempt;
            if (sscanf(v, "%lu.%d.%d.%d", &gid, &route, &gwi, &attempt) == 4) {
                it->d.gid = (uint32_t)gid;
                it->d.route = route;
                it->d.gwi = gwi;
                it->d.attempt = attempt;
                have_n = true;
            }
        } else if (strcmp(k, "g") == 0) {
            snprintf(it->gateway, sizeof(it->gateway), "%s", v);
        } else if (strcmp(k, "h") == 0) {
            it->d.http_status = atoi(v);
        } else if (strcmp(k, "e") == 0) {
            snprintf(it->detail, sizeof(it->detail), "%s", v);
        } else if (strcmp(k, "t") == 0) {
            it->d.at_ms = strtoll(v, NULL, 10);
        }
    }
    return have_n;
}

static void dl_entries(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    dl_call *c = udata;
    if (status == 0 && !zd_reply_is(reply, ZD_REPLY_ARRAY))
        status = -EIO;
    if (status != 0) {
        dl_finish(c, status, NULL);
        return;
    }
    size_t n = zd_reply_len(reply);
    const char *last = NULL;
    for (size_t i = 0; i < n; i++) {
        const zd_reply *e = zd_reply_at(reply, i);
        dead_item it;
        c->examined++;
        last = zd_reply_str(zd_reply_at(e, 0), NULL);
        if (!parse_entry(e, &it) || (c->gateway[0] && strcmp(it.gateway, c->gateway) != 0))
            continue;
        snprintf(it.policy, sizeof(it.policy), "%s", c->policy);
        c->items[c->n++] = it;
        if (c->n == c->limit) {
            if (i + 1 == n && n < DEAD_BATCH && !c->all) {
                dl_finish(c, 0, NULL); /* that was the last entry of the one policy */
            } else {
                dl_cursor_finish(c, it.stream_id);
            }
            return;
        }
    }
    if (n == DEAD_BATCH && last) {
        snprintf(c->after, sizeof(c->after), "(%s", last);
        if (c->examined >= ZD_DEAD_SCAN_MAX) {
            dl_cursor_finish(c, last);
            return;
        }
        dl_read(c);
        return;
    }
    /* This policy's stream is exhausted. */
    if (!c->all) {
        dl_finish(c, 0, NULL);
    } else if (c->examined >= ZD_DEAD_SCAN_MAX || c->policies >= POLICIES_SCAN_MAX) {
        dl_cursor_finish(c, ""); /* "<seq>:": go on with the policy after seq */
    } else {
        dl_next_policy(c);
    }
}

static void dl_read(dl_call *c)
{
    char key[ZD_POLICY_KEY_MAX], count[16];
    snprintf(count, sizeof(count), "%d", DEAD_BATCH);
    const char *argv[] = {
        "XRANGE", zd_key_policy(ZD_PK_DEAD, c->policy, key), c->after, "+", "COUNT", count};
    if (zd_redis_cmdargv(c->r, dl_entries, c, 6, argv, NULL) != 0)
        dl_finish(c, -EIO, NULL);
}

static void dl_scope_got(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    dl_call *c = udata;
    if (status != 0) {
        dl_finish(c, status, NULL);
        return;
    }
    const char *scope = zd_reply_str(reply, NULL);
    if (scope && strcmp(scope, c->scope) == 0)
        dl_read(c);
    else
        dl_next_policy(c);
}

static void dl_policy_got(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    dl_call *c = udata;
    if (status == 0 && !zd_reply_is(reply, ZD_REPLY_ARRAY))
        status = -EIO;
    if (status != 0) {
        dl_finish(c, status, NULL);
        return;
    }
    if (zd_reply_len(reply) < 2) {
        dl_finish(c, 0, NULL); /* no older policy */
        return;
    }
    snprintf(c->policy, sizeof(c->policy), "%s", zd_reply_str(zd_reply_at(reply, 0), NULL));
    const char *score = zd_reply_str(zd_reply_at(reply, 1), NULL);
    c->seq = score ? strtoll(score, NULL, 10) : 0;
    c->policies++;
    if (c->any_scope) {
        dl_read(c);
        return;
    }
    char key[ZD_POLICY_KEY_MAX];
    const char *argv[] = {"HGET", zd_key_policy(ZD_PK_META, c->policy, key), "scope"};
    if (zd_redis_cmdargv(c->r, dl_scope_got, c, 3, argv, NULL) != 0)
        dl_finish(c, -EIO, NULL);
}

/* The policy with the highest sequence below c->seq (inclusive when `same`). */
static void dl_policy_at(dl_call *c, bool same)
{
    char max[32];
    if (c->seq <= 0)
        snprintf(max, sizeof(max), "+inf");
    else
        snprintf(max, sizeof(max), "%s%" PRId64, same ? "" : "(", c->seq);
    snprintf(c->after, sizeof(c->after), "-");
    const char *argv[] = {
        "ZREVRANGEBYSCORE", ZD_KEY_POLICY_ORDER, max, "-inf", "WITHSCORES", "LIMIT", "0", "1"};
    if (zd_redis_cmdargv(c->r, dl_policy_got, c, 8, argv, NULL) != 0)
        dl_finish(c, -EIO, NULL);
}

static void dl_next_policy(dl_call *c)
{
    dl_policy_at(c, false);
}

/* "<seq>:<stream id>" or "<seq>:" (that policy is done). */
static int cursor_parse(const char *s, int64_t *seq, char *after, size_t cap)
{
    const char *colon = strchr(s, ':');
    if (!colon || colon == s || colon - s > 18)
        return -EINVAL;
    for (const char *p = s; p < colon; p++)
        if (*p < '0' || *p > '9')
            return -EINVAL;
    *seq = strtoll(s, NULL, 10);
    const char *id = colon + 1;
    size_t n = strlen(id);
    if (n == 0) {
        after[0] = '\0';
        return 0;
    }
    int dashes = 0;
    for (size_t i = 0; i < n; i++) {
        if (id[i] == '-')
            dashes++;
        else if (id[i] < '0' || id[i] > '9')
            return -EINVAL;
    }
    if (dashes != 1 || id[0] == '-' || id[n - 1] == '-' || n > 41)
        return -EINVAL;
    snprintf(after, cap, "(%s", id);
    return 0;
}

int zd_dead_list(zd_redis *r, const char *policy, const char *scope, const char *gateway,
                 const char *cursor, int limit, zd_dead_list_cb cb, void *udata)
{
    int64_t seq = 0;
    char after[50] = "-";
    if (limit < 1)
        return -EINVAL;
    if (cursor && cursor_parse(cursor, &seq, after, sizeof(after)) != 0)
        return -EINVAL;
    if (cursor && policy && (seq != 0 || !after[0]))
        return -EINVAL;
    if (cursor && !policy && seq <= 0)
        return -EINVAL;
    dl_call *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->items = calloc((size_t)limit, sizeof(*c->items));
    if (!c->items) {
        free(c);
        return -ENOMEM;
    }
    c->r = r;
    c->cb = cb;
    c->udata = udata;
    c->all = policy == NULL;
    c->any_scope = scope == NULL;
    snprintf(c->scope, sizeof(c->scope), "%s", scope ? scope : "");
    snprintf(c->gateway, sizeof(c->gateway), "%s", gateway ? gateway : "");
    c->limit = limit;
    if (policy) {
        snprintf(c->policy, sizeof(c->policy), "%s", policy);
        snprintf(c->after, sizeof(c->after), "%s", after);
        dl_read(c);
    } else if (cursor && !after[0]) {
        c->seq = seq;
        dl_next_policy(c);
    } else if (cursor) {
        /* Resume inside the policy at seq: find it again, then read past the entry. */
        c->seq = seq;
        dl_policy_at(c, true);
        /* dl_policy_at reset after; the resume point is kept in a second step below. */
        snprintf(c->after, sizeof(c->after), "%s", after);
    } else {
        dl_next_policy(c);
    }
    return 0;
}

/* ---- replay ----------------------------------------------------------------------------- */

/* KEYS: meta, funnel, st, retry, dead. ARGV: now, gateway ("" any), start, count, scope ("*"
 * any), wants... ("<gid>.<route>:<gateway>"). Returns {replayed, reactivate, last id, entries
 * read, code}: code -1 no such policy, -2 another scope. */
static const char replay_script[] =
    "local st = redis.call('HGET', KEYS[1], 'status')\n"
    "if not st then return {0, 0, '', 0, -1} end\n"
    "if ARGV[5] ~= '*' and (redis.call('HGET', KEYS[1], 'scope') or '') ~= ARGV[5] then\n"
    "  return {0, 0, '', 0, -2}\n"
    "end\n"
    "if st == 'withdrawn' then return {0, 0, '', 0, 0} end\n"
    "local want, filter = {}, #ARGV >= 6\n"
    "for i = 6, #ARGV do want[ARGV[i]] = true end\n"
    "local entries = redis.call('XRANGE', KEYS[5], ARGV[3], '+', 'COUNT', ARGV[4])\n"
    "local n, last = 0, ''\n"
    "for _, e in ipairs(entries) do\n"
    "  last = e[1]\n"
    "  local f = {}\n"
    "  for j = 1, #e[2], 2 do f[e[2][j]] = e[2][j + 1] end\n"
    "  local gid, route, gwi = string.match(f['n'] or '', '^(%d+)%.(%d+)%.(%d+)%.')\n"
    "  local g = f['g'] or ''\n"
    "  if gid and (ARGV[2] == '' or g == ARGV[2]) and\n"
    "     (not filter or want[gid .. '.' .. route .. ':' .. g]) then\n"
    "    local field = gid .. '.' .. route\n"
    "    local cur = redis.call('HGET', KEYS[3], field)\n"
    "    if cur and string.sub(cur, 1, 1) == 'x' then\n"
    "      local log = string.match(cur, '^[^|]*|[^|]*|[^|]*|(.*)$') or ''\n"
    "      redis.call('HSET', KEYS[3], field, 'q|' .. gwi .. '|1|' .. log)\n"
    "      redis.call('HINCRBY', KEYS[2], route .. ':dead', -1)\n"
    "      redis.call('HINCRBY', KEYS[2], route .. ':queued', 1)\n"
    "      redis.call('ZADD', KEYS[4], ARGV[1], field .. '.' .. gwi .. '.1')\n"
    "      n = n + 1\n"
    "    end\n"
    "    redis.call('XDEL', KEYS[5], e[1])\n"
    "  end\n"
    "end\n"
    "local react = 0\n"
    "if n > 0 and st == 'done' then\n"
    "  redis.call('HSET', KEYS[1], 'status', 'dispatching')\n"
    "  redis.call('HDEL', KEYS[1], 'done_ms')\n"
    "  react = 1\n"
    "end\n"
    "return {n, react, last, #entries, 0}\n";

typedef struct rp_call {
    zd_redis *r;
    zd_replay_cb cb;
    void *udata;
    bool all;
    char scope[16]; /* "*" = any */
    char gateway[40];
    char **wants;
    int nwants;
    char now[24];
    long long replayed;
    char policy[ZD_POLICY_ID_MAX + 1];
    char start[50];
    long order_pos; /* all: index into the order zset of the next page */
    char (*page)[ZD_POLICY_ID_MAX + 1];
    int npage, page_i;
} rp_call;

#define RP_PAGE 100

static void rp_finish(rp_call *c, int status)
{
    c->cb(status, status == 0 ? c->replayed : 0, c->udata);
    for (int i = 0; i < c->nwants; i++)
        free(c->wants[i]);
    free(c->wants);
    free(c->page);
    free(c);
}

static void rp_batch(rp_call *c);
static void rp_next(rp_call *c);

static void rp_activated(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    rp_call *c = udata;
    rp_batch(c); /* the batch that reactivated continues where it stopped */
}

static void rp_got(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    rp_call *c = udata;
    if (status == 0 && (!zd_reply_is(reply, ZD_REPLY_ARRAY) || zd_reply_len(reply) != 5))
        status = -EIO;
    if (status != 0) {
        rp_finish(c, status);
        return;
    }
    long long n = zd_reply_int(zd_reply_at(reply, 0));
    long long react = zd_reply_int(zd_reply_at(reply, 1));
    const char *last = zd_reply_str(zd_reply_at(reply, 2), NULL);
    long long read = zd_reply_int(zd_reply_at(reply, 3));
    long long code = zd_reply_int(zd_reply_at(reply, 4));
    if (code != 0 && !c->all) {
        rp_finish(c, -ENOENT);
        return;
    }
    c->replayed += n;
    bool more = code == 0 && read == DEAD_BATCH && last && last[0];
    if (more)
        snprintf(c->start, sizeof(c->start), "(%s", last);
    else
        c->start[0] = '\0'; /* this policy is done */
    if (react) {
        const char *argv[] = {"SADD", ZD_KEY_POLICY_ACTIVE, c->policy};
        if (zd_redis_cmdargv(r, rp_activated, c, 3, argv, NULL) == 0)
            return;
    }
    rp_batch(c);
}

/* Replays the next batch of the current policy, or moves to the next policy. */
static void rp_batch(rp_call *c)
{
    if (!c->start[0]) {
        if (!c->all) {
            rp_finish(c, 0);
            return;
        }
        rp_next(c);
        return;
    }
    char meta[ZD_POLICY_KEY_MAX], funnel[ZD_POLICY_KEY_MAX], st[ZD_POLICY_KEY_MAX],
        retry[ZD_POLICY_KEY_MAX], dead[ZD_POLICY_KEY_MAX], count[16];
    snprintf(count, sizeof(count), "%d", DEAD_BATCH);
    int argc = 0;
    const char **argv = calloc((size_t)c->nwants + 16, sizeof(char *));
    if (!argv) {
        rp_finish(c, -ENOMEM);
        return;
    }
    argv[argc++] = "EVAL";
    argv[argc++] = replay_script;
    argv[argc++] = "5";
    argv[argc++] = zd_key_policy(ZD_PK_META, c->policy, meta);
    argv[argc++] = zd_key_policy(ZD_PK_FUNNEL, c->policy, funnel);
    argv[argc++] = zd_key_policy(ZD_PK_STATE, c->policy, st);
    argv[argc++] = zd_key_policy(ZD_PK_RETRY, c->policy, retry);
    argv[argc++] = zd_key_policy(ZD_PK_DEAD, c->policy, dead);
    argv[argc++] = c->now;
    argv[argc++] = c->gateway;
    argv[argc++] = c->start;
    argv[argc++] = count;
    argv[argc++] = c->scope;
    for (int i = 0; i < c->nwants; i++)
        argv[argc++] = c->wants[i];
    int rc = zd_redis_cmdargv(c->r, rp_got, c, argc, argv, NULL);
    free(argv);
    if (rc != 0)
        rp_finish(c, rc);
}

static void rp_page(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    rp_call *c = udata;
    if (status == 0 && !zd_reply_is(reply, ZD_REPLY_ARRAY))
        status = -EIO;
    if (status != 0) {
        rp_finish(c, status);
        return;
    }
    c->npage = 0;
    c->page_i = 0;
    for (size_t i = 0; i < zd_reply_len(reply) && c->npage < RP_PAGE; i++) {
        const char *id = zd_reply_str(zd_reply_at(reply, i), NULL);
        if (id)
            snprintf(c->page[c->npage++], ZD_POLICY_ID_MAX + 1, "%s", id);
    }
    c->order_pos += (long)zd_reply_len(reply);
    if (c->npage == 0) {
        rp_finish(c, 0);
        return;
    }
    rp_next(c);
}

/* Every policy: the next one of the page, or the next page of the order zset. */
static void rp_next(rp_call *c)
{
    if (c->page_i < c->npage) {
        snprintf(c->policy, sizeof(c->policy), "%s", c->page[c->page_i++]);
        snprintf(c->start, sizeof(c->start), "-");
        rp_batch(c);
        return;
    }
    if (c->npage > 0 && c->npage < RP_PAGE) {
        rp_finish(c, 0);
        return;
    }
    char a[24], b[24];
    snprintf(a, sizeof(a), "%ld", c->order_pos);
    snprintf(b, sizeof(b), "%ld", c->order_pos + RP_PAGE - 1);
    const char *argv[] = {"ZRANGE", ZD_KEY_POLICY_ORDER, a, b};
    if (zd_redis_cmdargv(c->r, rp_page, c, 4, argv, NULL) != 0)
        rp_finish(c, -EIO);
}

int zd_dead_replay(zd_redis *r, const char *policy, const char *scope, const char *gateway,
                   const char *const *wants, int nwants, int64_t now_ms, zd_replay_cb cb,
                   void *udata)
{
    rp_call *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->page = calloc(RP_PAGE, sizeof(*c->page));
    c->wants = calloc((size_t)nwants + 1, sizeof(char *));
    if (!c->page || !c->wants) {
        free(c->page);
        free(c->wants);
        free(c);
        return -ENOMEM;
    }
    for (int i = 0; i < nwants; i++) {
        if (!(c->wants[i] = strdup(wants[i]))) {
            c->nwants = i;
            c->cb = NULL;
            for (int k = 0; k < i; k++)
                free(c->wants[k]);
            free(c->wants);
            free(c->page);
            free(c);
            return -ENOMEM;
        }
    }
    c->nwants = nwants;
    c->r = r;
    c->cb = cb;
    c->udata = udata;
    c->all = policy == NULL;
    snprintf(c->scope, sizeof(c->scope), "%s", scope ? scope : "*");
    snprintf(c->gateway, sizeof(c->gateway), "%s", gateway ? gateway : "");
    snprintf(c->now, sizeof(c->now), "%" PRId64, now_ms);
    if (policy) {
        snprintf(c->policy, sizeof(c->policy), "%s", policy);
        snprintf(c->start, sizeof(c->start), "-");
        rp_batch(c);
    } else {
        rp_next(c);
    }
    return 0;
}
