/* The workers' core: one work entry in progress (a job) becomes notices — states read first,
 * profiles loaded by HMGET with ids from the local index, each notice routed to its chain's
 * current gateway — sent in bounded batches per gateway, and settled per batch by the settle
 * script. An entry is acknowledged only when every notice of it is settled. The stream side
 * (reads, claims, retries, trim, done) is dispatch_queue.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <cjson/cJSON.h>

#include "common/clock.h"
#include "common/date.h"
#include "common/log.h"
#include "delivery/dispatch.h"
#include "delivery/notice.h"
#include "delivery/prefs.h"
#include "gateway/retry.h"
#include "profiles/follower.h"
#include "profiles/profile.h"
#include "profiles/store.h"
#include "redis/script.h"

/* Per notice, ARGV: field route exp_gwi exp_attempt gwi outcome http delay max_attempts
 * chain_len gateway detail. KEYS meta funnel st retry dead. ARGV[1] = now.
 * Answers one code per notice: 0 stale (the state moved on), 1 delivered, 2 retrying, 3 queued
 * on the next gateway, 4 dead, 5 no contact, 6 stays withdrawn, 7 holdout, 8 muted, 9 capped,
 * 10 deferred (ZADD retry at now + delay, the position unchanged); 14 and 15 are 4 and 5 when
 * no other route of the profile was delivered or is still pending: its cap reservation is
 * released. Outcomes h m c f are decisions taken before sending (docs/DESIGN.md
 * "Preferences"); b 'f' is a deferred notice, live like q and r. Every notice moves from one
 * funnel bucket to another in this one script, so the sums hold at every moment. */
static const char settle_script[] =
    "local now = tonumber(ARGV[1])\n"
    "local withdrawn = redis.call('HGET', KEYS[1], 'status') == 'withdrawn'\n"
    "local nroutes = tonumber(redis.call('HGET', KEYS[1], 'routes') or '1')\n"
    "local pref = {h = {'holdout', 7}, m = {'muted', 8}, c = {'capped', 9}, f = {'deferred', 10}}\n"
    /* Whether another route of the profile was delivered or may still be: a profile whose
     * every route failed gives its cap reservation back. */
    "local function others_live(f, r)\n"
    "  local gid = string.match(f, '^(%d+)%.')\n"
    "  for rr = 0, nroutes - 1 do\n"
    "    if tostring(rr) ~= r then\n"
    "      local s = redis.call('HGET', KEYS[3], gid .. '.' .. rr)\n"
    "      local c = s and string.sub(s, 1, 1) or 'q'\n"
    "      if c == 'q' or c == 'r' or c == 'f' or c == 'd' then return true end\n"
    "    end\n"
    "  end\n"
    "  return false\n"
    "end\n"
    "local out, inc, first = {}, {}, false\n"
    "local function add(k, d) inc[k] = (inc[k] or 0) + d end\n"
    "local i = 2\n"
    "while i + 11 <= #ARGV do\n"
    "  local f, r = ARGV[i], ARGV[i+1]\n"
    "  local eg, ea, g = tonumber(ARGV[i+2]), tonumber(ARGV[i+3]), tonumber(ARGV[i+4])\n"
    "  local o, http, delay = ARGV[i+5], ARGV[i+6], tonumber(ARGV[i+7])\n"
    "  local maxa, clen, gw, det = tonumber(ARGV[i+8]), tonumber(ARGV[i+9]), ARGV[i+10],\n"
    "    ARGV[i+11]\n"
    "  i = i + 12\n"
    "  local cur = redis.call('HGET', KEYS[3], f)\n"
    "  local b, cg, ca, log = 'q', 0, 1, ''\n"
    "  if cur then\n"
    "    local xb, xg, xa, xl = string.match(cur, '^(%a)|(%d+)|(%d+)|(.*)$')\n"
    "    if xb then b, cg, ca, log = xb, tonumber(xg), tonumber(xa), xl else b = '?' end\n"
    "  end\n"
    "  if (b ~= 'q' and b ~= 'r' and b ~= 'f') or cg ~= eg or ca ~= ea then\n"
    "    out[#out+1] = 0\n"
    "  else\n"
    "    local a = ea\n"
    "    if g ~= eg then a = 1 end\n"
    "    local pre = pref[o]\n"
    "    if not pre then\n"
    "      local ents = {}\n"
    "      if log ~= '' then for e in string.gmatch(log, '[^;]+') do ents[#ents+1] = e end end\n"
    "      for s = eg, g - 1 do ents[#ents+1] = now .. ',' .. s .. ',n,0' end\n"
    "      ents[#ents+1] = now .. ',' .. g .. ',' .. o .. ',' .. http\n"
    "      while #ents > 20 do table.remove(ents, 1) end\n"
    "      log = table.concat(ents, ';')\n"
    "    end\n"
    "    local from = 'queued'\n"
    "    if b == 'r' then from = 'retrying' end\n"
    "    if b == 'f' then from = 'deferred' end\n"
    "    if withdrawn then from = 'withdrawn' end\n"
    "    local nb, ng, na, to, code = 'x', g, a, 'dead', 4\n"
    "    if withdrawn then\n"
    "      if o == 'd' then nb, to, code = 'd', 'delivered', 1 else nb, to, code = 'w', nil, 6 "
    "end\n"
    "    elseif pre then\n"
    /* Decided before sending (prefs, holdout, cap): not an attempt, so the position stays
     * where the entry expected it, and a deferred notice is routed afresh when it is due. */
    "      nb, ng, na, to, code = o, eg, ea, pre[1], pre[2]\n"
    "      if o == 'f' then redis.call('ZADD', KEYS[4], now + delay, f .. '.' .. eg .. '.' .. "
    "ea) end\n"
    "    elseif o == 'd' then\n"
    "      nb, to, code = 'd', 'delivered', 1\n"
    "    elseif o == 'n' then\n"
    "      nb, to, code = 'n', 'no_contact', 5\n"
    "    elseif o == 't' and a < maxa then\n"
    "      nb, na, to, code = 'r', a + 1, 'retrying', 2\n"
    "      redis.call('ZADD', KEYS[4], now + delay, f .. '.' .. g .. '.' .. na)\n"
    "    elseif g + 1 < clen then\n"
    "      nb, ng, na, to, code = 'q', g + 1, 1, 'queued', 3\n"
    "      redis.call('ZADD', KEYS[4], now, f .. '.' .. ng .. '.1')\n"
    "    end\n"
    "    if code == 1 then\n"
    "      add(r .. ':by:' .. gw, 1)\n"
    "      first = true\n"
    "    elseif code == 4 then\n"
    "      redis.call('XADD', KEYS[5], '*', 'n', f .. '.' .. g .. '.' .. a, 'g', gw, 'h', http,\n"
    "        'e', det, 't', now)\n"
    "    end\n"
    "    if to and to ~= from then\n"
    "      add(r .. ':' .. from, -1)\n"
    "      add(r .. ':' .. to, 1)\n"
    "    end\n"
    "    redis.call('HSET', KEYS[3], f, nb .. '|' .. ng .. '|' .. na .. '|' .. log)\n"
    "    if (code == 4 or code == 5) and not others_live(f, r) then code = code + 10 end\n"
    "    out[#out+1] = code\n"
    "  end\n"
    "end\n"
    "for k, d in pairs(inc) do if d ~= 0 then redis.call('HINCRBY', KEYS[2], k, d) end end\n"
    "if first then redis.call('HSETNX', KEYS[1], 'first_ms', now) end\n"
    "return out\n";

/* KEYS pace; ARGV now per_min n cap: a token bucket shared by the instances. 0 = take n now,
 * else the ms to wait before n tokens are there. */
static const char pace_script[] =
    "local now, rate, n, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),\n"
    "  tonumber(ARGV[4])\n"
    "local t = redis.call('HMGET', KEYS[1], 'tokens', 'ts')\n"
    "local tokens, ts = tonumber(t[1]), tonumber(t[2])\n"
    "if not tokens then tokens, ts = cap, now end\n"
    "tokens = math.min(cap, tokens + math.max(0, now - ts) * rate / 60000)\n"
    "local wait = 0\n"
    "if tokens >= n then tokens = tokens - n else wait = math.ceil((n - tokens) * 60000 / rate) "
    "end\n"
    "redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)\n"
    "return wait\n";

typedef struct dl_item {
    uint32_t gid;
    int route;
    int exp_gwi, exp_att; /* the state the entry expects */
    int gwi;              /* the chain position chosen */
    bool live;            /* to be routed (its state is the expected one) */
    bool send;            /* routed to gwi, waiting for its cap reservation */
    char imm;             /* the outcome of a notice settled without a gateway */
    int64_t until;        /* deferred: the end of the quiet hours (Unix ms) */
    char *profile;        /* owned */
    char *to;             /* owned; personal data */
    char *text;           /* owned: a templated policy's rendered "title\0body\0" for gwi */
} dl_item;

struct dl_job {
    dl_engine *e;
    dl_policy *pol;
    char id[48];
    int n;
    dl_item *items;
    int ops;      /* Redis commands and batches outstanding, plus 1 while routing */
    bool abandon; /* end without XACK: the entry stays pending and is reclaimed */
    bool acked;
    int64_t t0_ms;
    dl_job *next;
};

struct dl_batch {
    dl_job *job;
    int gi; /* gateway index, -1: settle only (no contact, gateway unavailable) */
    int n;
    int *idx;
    zd_notice *notices;
    char (*ids)[ZD_NOTICE_ID_MAX];
    char **texts; /* rendered "title\0body\0" per notice (owned), only for templated policies */
    zd_timer *pace_t;
    dl_batch *next;
};

static void job_done_op(dl_job *j);
static void gw_pump(dl_engine *e, int gi);
static void cap_release(dl_job *j, const struct dl_item *it);

/* ---- jobs --------------------------------------------------------------------------------- */

static void job_free(dl_job *j)
{
    dl_engine *e = j->e;
    for (dl_job **pp = &e->jobs; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    e->inflight--;
    j->pol->inflight--;
    dl_policy_unref(j->pol);
    for (int i = 0; i < j->n; i++) {
        free(j->items[i].profile);
        free(j->items[i].text);
        if (j->items[i].to) {
            explicit_bzero(j->items[i].to, strlen(j->items[i].to));
            free(j->items[i].to);
        }
    }
    free(j->items);
    free(j);
}

static void acked(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r, (void)reply;
    dl_job *j = udata;
    if (status != 0)
        j->abandon = true;
    job_done_op(j);
}

static void job_done_op(dl_job *j)
{
    if (--j->ops > 0)
        return;
    dl_engine *e = j->e;
    if (!j->abandon && !j->acked && !e->freeing) {
        j->acked = true;
        char work[ZD_POLICY_KEY_MAX];
        if (zd_redis_cmd(e->redis, acked, j, "XACK %s zd %s", dl_key(j->pol, ZD_PK_WORK, work),
                         j->id) == 0) {
            j->ops++;
            return;
        }
    }
    job_free(j);
    if (!e->stopping)
        dl_kick(e);
}

bool dl_job_inflight(const dl_engine *e, const dl_policy *pol, const char *id)
{
    for (const dl_job *j = e->jobs; j; j = j->next)
        if (j->pol == pol && strcmp(j->id, id) == 0)
            return true;
    return false;
}

void dl_jobs_foreach(dl_engine *e, void (*fn)(dl_policy *pol, const char *id, void *u), void *u)
{
    for (dl_job *j = e->jobs; j; j = j->next)
        fn(j->pol, j->id, u);
}

/* ---- batches and the gateway queues ------------------------------------------------------- */

static dl_batch *batch_new(dl_job *j, int gi, int cap)
{
    dl_batch *b = calloc(1, sizeof(*b));
    if (!b || !(b->idx = calloc((size_t)cap, sizeof(int))) ||
        (gi >= 0 && (!(b->notices = calloc((size_t)cap, sizeof(zd_notice))) ||
                     !(b->ids = calloc((size_t)cap, ZD_NOTICE_ID_MAX)) ||
                     (j->pol->tpls && !(b->texts = calloc((size_t)cap, sizeof(char *))))))) {
        if (b) {
            free(b->idx);
            free(b->notices);
            free(b->ids);
        }
        free(b);
        return NULL;
    }
    b->job = j;
    b->gi = gi;
    j->ops++;
    return b;
}

/* Ends a batch's part of its job: abandon = the entry must not be acknowledged. */
static void batch_end(dl_batch *b, bool abandon)
{
    dl_job *j = b->job;
    if (abandon)
        j->abandon = true;
    zd_timer_free(b->pace_t);
    if (b->texts)
        for (int i = 0; i < b->n; i++)
            free(b->texts[i]);
    free(b->texts);
    free(b->idx);
    free(b->notices);
    free(b->ids);
    free(b);
    job_done_op(j);
}

/* ---- settling ------------------------------------------------------------------------------
 * A batch's results become a "part": 12 arguments per notice for the settle script. Parts are
 * not sent one by one: those that arrive in the same loop turn are settled together, one
 * script call per policy (at most SETTLE_MAX notices each), so at batch 1 Redis runs one
 * script per loop turn instead of one per notice (the script's fixed cost was most of Redis's
 * work per notice). */
#define SETTLE_MAX 256

/* A settle whose outcome is unknown (timed out, connection lost) is sent again: the script is
 * idempotent (a notice whose state moved is left alone), and giving up would leave the entries
 * to be reclaimed and their notices sent again — a Redis stall of a few seconds re-sent 40 % of
 * a dispatch that way. Each try waits at most the client's deadline, queued while Redis is
 * away; after SETTLE_TRIES the entries are left to the reclaim. */
#define SETTLE_TRIES 4

struct dl_settle_part {
    dl_batch *b;
    int64_t at_ms; /* when the receiver accepted */
    bool sent;     /* went through a gateway (stale results count as duplicate sends) */
    int nargs;     /* 12 per notice */
    char **args;   /* owned until moved into a call */
    dl_settle_part *next;
};

typedef struct settle_call {
    dl_engine *e;
    dl_settle_part *parts; /* in argument order */
    int notices;
    int tries;
    int argc;
    char **argv; /* owned */
} settle_call;

static void settle_part_free(dl_settle_part *p)
{
    for (int k = 0; p->args && k < p->nargs; k++)
        free(p->args[k]);
    free(p->args);
    free(p);
}

static void settle_call_free(settle_call *c)
{
    for (int k = 0; k < c->argc; k++)
        free(c->argv[k]);
    free(c->argv);
    while (c->parts) {
        dl_settle_part *p = c->parts;
        c->parts = p->next;
        settle_part_free(p);
    }
    free(c);
}

/* The 12 arguments of each notice of batch b: res (n results of a gateway) or NULL for a
 * settle-only batch. Returns the part, or NULL on ENOMEM. */
static dl_settle_part *settle_part_new(dl_batch *b, const zd_gw_result *res)
{
    dl_job *j = b->job;
    dl_engine *e = j->e;
    dl_settle_part *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->b = b;
    p->at_ms = zd_unix_ms();
    p->sent = res != NULL;
    p->nargs = 12 * b->n;
    if (!(p->args = calloc((size_t)p->nargs, sizeof(char *)))) {
        free(p);
        return NULL;
    }
    int a = 0;
    for (int k = 0; k < b->n; k++) {
        dl_item *it = &j->items[b->idx[k]];
        const zd_policy_route *route = &j->pol->p->routes[it->route];
        int gi = j->pol->gw[it->route][it->gwi];
        const zd_gateway *g = zd_gateways_at(e->o.gateways, gi);
        char o = 'p';
        int http = 0;
        long delay = 0;
        const char *detail = "gateway unavailable";
        if (res) {
            o = res[k].outcome == ZD_GW_DELIVERED   ? 'd'
                : res[k].outcome == ZD_GW_TRANSIENT ? 't'
                                                    : 'p';
            http = res[k].http_status;
            detail = res[k].detail;
            if (o == 't' && g) {
                const zd_gateway_retry *ro = zd_gateway_retry_opts(g);
                uint32_t rnd = 0;
                if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
                    rnd = (uint32_t)zd_mono_ns();
                int att = it->gwi == it->exp_gwi ? it->exp_att : 1;
                delay = zd_retry_delay_ms(&res[k], att, ro->base_ms, ro->max_ms, rnd);
            }
        } else {
            o = it->imm ? it->imm : 'p';
            if (o == 'n')
                detail = "no contact";
            else if (o != 'p')
                detail = "decided before sending";
            if (o == 'f')
                delay = (long)(it->until > p->at_ms ? it->until - p->at_ms : 0);
        }
        int maxa = g ? zd_gateway_retry_opts(g)->max_attempts : 1;
        if (asprintf(&p->args[a++], "%u.%d", it->gid, it->route) < 0 ||
            asprintf(&p->args[a++], "%d", it->route) < 0 ||
            asprintf(&p->args[a++], "%d", it->exp_gwi) < 0 ||
            asprintf(&p->args[a++], "%d", it->exp_att) < 0 ||
            asprintf(&p->args[a++], "%d", it->gwi) < 0 || asprintf(&p->args[a++], "%c", o) < 0 ||
            asprintf(&p->args[a++], "%d", http) < 0 || asprintf(&p->args[a++], "%ld", delay) < 0 ||
            asprintf(&p->args[a++], "%d", maxa) < 0 ||
            asprintf(&p->args[a++], "%d", route->n) < 0 ||
            !(p->args[a++] = strdup(route->gateways[it->gwi])) ||
            !(p->args[a++] = strdup(detail))) {
            p->args[a - 1] = NULL;
            settle_part_free(p);
            return NULL;
        }
    }
    return p;
}

static void settled(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    settle_call *c = udata;
    dl_engine *e = c->e;
    bool ok = status == 0 && zd_reply_is(reply, ZD_REPLY_ARRAY) &&
              zd_reply_len(reply) == (size_t)c->notices;
    bool unknown = status == -ETIMEDOUT || status == -ECONNRESET || status == -EAGAIN;
    if (!ok && unknown && !e->freeing && !e->stopping && c->tries < SETTLE_TRIES) {
        c->tries++;
        if (zd_redis_eval(e->redis, settled, c, c->argc, (const char **)c->argv, NULL) == 0)
            return;
    }
    if (!ok && !e->freeing)
        zd_warn("delivery: policy %s: settling %d notices failed (%s); their entries are "
                "reclaimed later",
                c->parts->b->job->pol->id, c->notices,
                status                      ? zd_strerror(status)
                : zd_reply_str(reply, NULL) ? zd_reply_str(reply, NULL)
                                            : "bad answer");
    size_t at = 0;
    while (c->parts) {
        dl_settle_part *p = c->parts;
        c->parts = p->next;
        dl_batch *b = p->b;
        dl_job *j = b->job;
        for (int k = 0; ok && k < b->n; k++, at++) {
            long long code = zd_reply_int(zd_reply_at(reply, at));
            /* After a retried settle, "moved already" may be our own first try. */
            if (code == 0 && p->sent && c->tries == 0)
                e->stale++;
            else if (code == 1)
                dl_observe_latency(e, j->pol->started_ms, p->at_ms);
            else if (code == 2)
                e->retries++;
            else if (code == 4 || code == 14)
                e->dead++;
            if (code >= 14 && e->o.cap_count > 0)
                cap_release(j, &j->items[b->idx[k]]);
        }
        settle_part_free(p);
        batch_end(b, !ok);
    }
    settle_call_free(c);
}

/* Sends the parts of policy pol (taken out of e's list, at most SETTLE_MAX notices) in one
 * script call. */
static void settle_flush_one(dl_engine *e, dl_policy *pol)
{
    settle_call *c = calloc(1, sizeof(*c));
    dl_settle_part **tail = c ? &c->parts : NULL;
    int nargs = 0;
    for (dl_settle_part **pp = &e->settle_head; c && *pp;) {
        dl_settle_part *p = *pp;
        if (p->b->job->pol != pol || (c->notices > 0 && c->notices + p->b->n > SETTLE_MAX)) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        p->next = NULL;
        *tail = p;
        tail = &p->next;
        c->notices += p->b->n;
        nargs += p->nargs;
    }
    if (!c) {
        /* ENOMEM: every part of this policy ends unacknowledged (reclaimed later). */
        for (dl_settle_part **pp = &e->settle_head; *pp;) {
            dl_settle_part *p = *pp;
            if (p->b->job->pol != pol) {
                pp = &p->next;
                continue;
            }
            *pp = p->next;
            dl_batch *b = p->b;
            settle_part_free(p);
            batch_end(b, true);
        }
        return;
    }
    c->e = e;
    e->settle_notices -= c->notices;
    char meta[ZD_POLICY_KEY_MAX], funnel[ZD_POLICY_KEY_MAX], st[ZD_POLICY_KEY_MAX],
        retry[ZD_POLICY_KEY_MAX], dead[ZD_POLICY_KEY_MAX], now[24];
    snprintf(now, sizeof(now), "%lld", (long long)zd_unix_ms());
    const char *head[] = {"EVAL",
                          settle_script,
                          "5",
                          dl_key(pol, ZD_PK_META, meta),
                          dl_key(pol, ZD_PK_FUNNEL, funnel),
                          dl_key(pol, ZD_PK_STATE, st),
                          dl_key(pol, ZD_PK_RETRY, retry),
                          dl_key(pol, ZD_PK_DEAD, dead),
                          now};
    int rc = -ENOMEM;
    c->argv = calloc((size_t)(9 + nargs), sizeof(char *));
    if (c->argv) {
        bool nomem = false;
        for (int a = 0; a < 9; a++)
            nomem |= !(c->argv[c->argc++] = strdup(head[a]));
        for (dl_settle_part *p = c->parts; p; p = p->next) {
            /* Move the strings: the call owns them from here. */
            memcpy(c->argv + c->argc, p->args, (size_t)p->nargs * sizeof(char *));
            c->argc += p->nargs;
            free(p->args);
            p->args = NULL;
        }
        if (!nomem)
            rc = zd_redis_eval(e->redis, settled, c, c->argc, (const char **)c->argv, NULL);
    }
    if (rc != 0) {
        while (c->parts) {
            dl_settle_part *p = c->parts;
            c->parts = p->next;
            dl_batch *b = p->b;
            settle_part_free(p);
            batch_end(b, true);
        }
        settle_call_free(c);
    }
}

static void settle_flush(void *udata)
{
    dl_engine *e = udata;
    while (e->settle_head)
        settle_flush_one(e, e->settle_head->b->job->pol);
    e->settle_tail = NULL;
}

/* Settles a batch: res (n results of a gateway, valid during the call) or NULL for a
 * settle-only batch. The part waits for the end of this loop turn (or SETTLE_MAX notices). */
static void settle(dl_batch *b, const zd_gw_result *res)
{
    dl_engine *e = b->job->e;
    dl_settle_part *p = settle_part_new(b, res);
    if (!p || (!e->settle_t && !(e->settle_t = zd_timer_new(e->o.base, settle_flush, e)))) {
        if (p)
            settle_part_free(p);
        batch_end(b, true);
        return;
    }
    if (e->settle_tail)
        e->settle_tail->next = p;
    else
        e->settle_head = p;
    e->settle_tail = p;
    e->settle_notices += b->n;
    if (e->settle_notices >= SETTLE_MAX)
        settle_flush(e);
    else
        zd_timer_arm(e->settle_t, 0, 0);
}

static void batch_sent(int status, const zd_gw_result *results, size_t n, void *udata)
{
    dl_batch *b = udata;
    dl_engine *e = b->job->e;
    int gi = b->gi;
    e->gwq[gi].outstanding--;
    if (status != 0 || e->stopping || (size_t)b->n != n) {
        /* Cancelled (the gateways are being freed at stop): the receiver may or may not have
         * it; the entry stays pending and is sent again after the reclaim. */
        batch_end(b, true);
    } else {
        for (size_t k = 0; k < n; k++)
            if (results[k].outcome >= 0 && results[k].outcome <= 2)
                e->gwq[gi].sent[results[k].outcome]++;
        settle(b, results);
    }
    if (!e->stopping)
        gw_pump(e, gi);
}

static void gw_pump(dl_engine *e, int gi)
{
    dl_gwq *q = &e->gwq[gi];
    while (q->head && q->outstanding < q->limit) {
        dl_batch *b = q->head;
        q->head = b->next;
        if (!q->head)
            q->tail = NULL;
        b->next = NULL;
        if (e->stopping || b->job->pol->status == ZD_POLICY_WITHDRAWN) {
            /* Withdrawn: acknowledged without sending (the withdraw script counted these). */
            batch_end(b, e->stopping);
            continue;
        }
        zd_gateway *g = zd_gateways_at(e->o.gateways, gi);
        if (g && zd_gateway_send(g, b->notices, (size_t)b->n, batch_sent, b) == 0) {
            q->outstanding++;
            continue;
        }
        /* Refused at once: try again after the claim. */
        batch_end(b, true);
    }
}

static void gw_enqueue(dl_engine *e, dl_batch *b)
{
    dl_gwq *q = &e->gwq[b->gi];
    if (q->tail)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    gw_pump(e, b->gi);
}

static void pace_try(dl_batch *b);

static void paced_unlink(dl_engine *e, dl_batch *b)
{
    for (dl_batch **pp = &e->paced; *pp; pp = &(*pp)->next)
        if (*pp == b) {
            *pp = b->next;
            b->next = NULL;
            return;
        }
}

static void pace_due(void *udata)
{
    dl_batch *b = udata;
    paced_unlink(b->job->e, b);
    pace_try(b);
}

static void paced(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    dl_batch *b = udata;
    dl_engine *e = b->job->e;
    if (status != 0 || e->stopping || !zd_reply_is(reply, ZD_REPLY_INTEGER)) {
        batch_end(b, true);
        return;
    }
    long long wait = zd_reply_int(reply);
    if (wait <= 0) {
        gw_enqueue(e, b);
        return;
    }
    if (!b->pace_t && !(b->pace_t = zd_timer_new(e->o.base, pace_due, b))) {
        batch_end(b, true);
        return;
    }
    b->next = e->paced;
    e->paced = b;
    zd_timer_arm(b->pace_t, (long)wait, 0);
}

/* A paced policy's batch takes its notices from the shared token bucket first. */
static void pace_try(dl_batch *b)
{
    dl_job *j = b->job;
    dl_engine *e = j->e;
    if (e->stopping) {
        batch_end(b, true);
        return;
    }
    char key[ZD_POLICY_KEY_MAX], now[24], rate[24], n[16], cap[16];
    snprintf(now, sizeof(now), "%lld", (long long)zd_unix_ms());
    snprintf(rate, sizeof(rate), "%ld", j->pol->p->pace_per_min);
    snprintf(n, sizeof(n), "%d", b->n);
    snprintf(cap, sizeof(cap), "%d", b->n);
    const char *argv[] = {"EVAL", pace_script, "1", dl_key(j->pol, ZD_PK_PACE, key),
                          now,    rate,        n,   cap};
    if (zd_redis_eval(e->redis, paced, b, 8, argv, NULL) != 0)
        batch_end(b, true);
}

static void batch_submit(dl_batch *b)
{
    if (b->gi < 0)
        settle(b, NULL);
    else if (b->job->pol->p->pace_per_min > 0)
        pace_try(b);
    else
        gw_enqueue(b->job->e, b);
}

void dl_dispatch_drop_queued(dl_engine *e, dl_policy *pol)
{
    if (!pol && e->freeing) {
        /* Results not settled: their entries stay pending and are reclaimed. */
        while (e->settle_head) {
            dl_settle_part *p = e->settle_head;
            e->settle_head = p->next;
            dl_batch *b = p->b;
            settle_part_free(p);
            batch_end(b, true);
        }
        e->settle_tail = NULL;
        e->settle_notices = 0;
        zd_timer_free(e->settle_t);
        e->settle_t = NULL;
    } else if (!pol) {
        settle_flush(e); /* stopping: record what the receivers answered while Redis is there */
    }
    for (dl_batch **pp = &e->paced; *pp;) {
        dl_batch *b = *pp;
        if (!pol || b->job->pol == pol) {
            *pp = b->next;
            batch_end(b, !pol || e->stopping);
            continue;
        }
        pp = &b->next;
    }
    for (int gi = 0; gi < e->ngw; gi++) {
        dl_gwq *q = &e->gwq[gi];
        dl_batch **pp = &q->head;
        q->tail = NULL;
        while (*pp) {
            dl_batch *b = *pp;
            if (!pol || b->job->pol == pol) {
                *pp = b->next;
                batch_end(b, !pol || e->stopping);
                continue;
            }
            q->tail = b;
            pp = &b->next;
        }
    }
}

/* ---- routing: the decision step ---------------------------------------------------------- */

/* KEYS the cap records of some profiles of one partition; ARGV now window count policy. Per
 * profile: 1 reserved (or reserved before: idempotent per (policy, profile), so a reclaimed
 * entry finds its own reservation), 0 capped. The window slides: reservations older than it
 * are dropped first, and the key expires with the newest. */
static const char cap_script[] =
    "local now, win, cnt = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local out = {}\n"
    "for i, k in ipairs(KEYS) do\n"
    "  redis.call('ZREMRANGEBYSCORE', k, '-inf', now - win)\n"
    "  if redis.call('ZSCORE', k, ARGV[4]) then\n"
    "    out[i] = 1\n"
    "  elseif redis.call('ZCARD', k) >= cnt then\n"
    "    out[i] = 0\n"
    "  else\n"
    "    redis.call('ZADD', k, now, ARGV[4])\n"
    "    redis.call('PEXPIRE', k, win)\n"
    "    out[i] = 1\n"
    "  end\n"
    "end\n"
    "return out\n";

/* The contact of profile doc (the private part's "contacts") for gateway name, or NULL. */
static const char *contact_of(const cJSON *contacts, const char *name)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(contacts, name);
    return cJSON_IsString(c) && c->valuestring[0] ? c->valuestring : NULL;
}

/* Puts a live item into the job's settle-only batch (gi -1) with its outcome: n no contact,
 * p gateway unavailable, h holdout, m muted, c capped, f deferred (docs/DESIGN.md). */
static void imm_add(dl_job *j, dl_item *it, char outcome, dl_batch **imm)
{
    if (!*imm && !(*imm = batch_new(j, -1, j->n))) {
        j->abandon = true;
        return;
    }
    it->imm = outcome;
    (*imm)->idx[(*imm)->n++] = (int)(it - j->items);
}

/* Chooses a live item's gateway: from its expected chain position on, the first gateway the
 * profile did not mute and has a contact for (the inbox needs none); an unavailable gateway
 * fails permanently where it stands (the settle script moves the notice on). A muted gateway is
 * skipped like one without a contact — the chain goes on to the next, because the person asked
 * not to be reached *there*, not to miss the policy; with none left the notice is muted when a
 * muted gateway was skipped, else no contact. Sets it->gwi (and it->to when sending); returns
 * 0 to send, else the settle outcome. prefs NULL or gone: the profile is gone. */
static char choose_gateway(dl_job *j, dl_item *it, const cJSON *contacts, const zd_prefs *prefs,
                           bool gone)
{
    dl_engine *e = j->e;
    const zd_policy_route *route = &j->pol->p->routes[it->route];
    bool muted = false;
    for (int g = it->exp_gwi; !gone && g < route->n; g++) {
        int gi = j->pol->gw[it->route][g];
        if (prefs && zd_prefs_mutes_gateway(prefs, route->gateways[g])) {
            muted = true;
            continue;
        }
        if (gi < 0 || !zd_gateways_at(e->o.gateways, gi)) {
            it->gwi = g;
            return 'p';
        }
        const char *to = e->gwq[gi].needs_contact ? contact_of(contacts, route->gateways[g]) : "";
        if (to) {
            it->gwi = g;
            if (!(it->to = strdup(to)))
                j->abandon = true;
            return 0;
        }
        e->gwq[gi].sent[3]++;
    }
    it->gwi = route->n - 1;
    return muted ? 'm' : 'n';
}

/* Builds the notice of an item routed to it->gwi into the open batch of its gateway. */
static void place_send(dl_job *j, dl_item *it, dl_batch **open)
{
    dl_engine *e = j->e;
    const zd_policy_route *route = &j->pol->p->routes[it->route];
    int g = it->gwi;
    int gi = j->pol->gw[it->route][g];
    int maxb = zd_gateway_max_batch(zd_gateways_at(e->o.gateways, gi));
    if (j->pol->p->pace_per_min > 0) {
        long per_s = j->pol->p->pace_per_min / 60;
        if (per_s < maxb)
            maxb = per_s > 0 ? (int)per_s : 1;
    }
    dl_batch **slot = &open[gi];
    if (*slot && (*slot)->n >= maxb) {
        batch_submit(*slot);
        *slot = NULL;
    }
    if (!*slot && !(*slot = batch_new(j, gi, maxb))) {
        j->abandon = true;
        return;
    }
    dl_batch *b = *slot;
    int att = g == it->exp_gwi ? it->exp_att : 1;
    zd_notice *n = &b->notices[b->n];
    char *unused = NULL;
    if (zd_notice_build(j->pol->p, it->profile, NULL, route->gateways[g], it->to, att, n,
                        b->ids[b->n], &unused) != 0) {
        j->abandon = true;
        return;
    }
    if (it->text && b->texts) {
        /* Rendered when the profile was at hand (render_item); the batch owns it now. */
        n->title = it->text;
        n->body = it->text + strlen(it->text) + 1;
        b->texts[b->n] = it->text;
        it->text = NULL;
    }
    b->idx[b->n++] = (int)(it - j->items);
}

/* A templated policy's notice for item it, routed to it->gwi, rendered now while the profile
 * is at hand: the notice may be placed later, when its cap reservation answers. */
static void render_item(dl_job *j, dl_item *it, const zd_notice_data *nd)
{
    if (!nd)
        return;
    const zd_policy_route *route = &j->pol->p->routes[it->route];
    int gi = j->pol->gw[it->route][it->gwi];
    zd_notice_data d = *nd;
    d.escape = zd_escape_for_type(zd_gateways_type(j->e->o.gateways, gi));
    zd_notice n;
    char id[ZD_NOTICE_ID_MAX];
    free(it->text);
    it->text = NULL;
    if (zd_notice_build(j->pol->p, it->profile, &d, route->gateways[it->gwi], it->to, 1, &n, id,
                        &it->text) != 0)
        j->abandon = true;
}

/* Profiles of one partition waiting for their cap reservation. */
typedef struct cap_call {
    dl_job *j;
    int partition;
    int n;
    uint32_t *gids;
} cap_call;

/* The decision step for every live notice of one profile (docs/DESIGN.md "Preferences"), in
 * this order: held out (the policy's holdout share, every route) → muted category (every
 * route) → per route the gateway (skipping muted ones and ones without a contact) → quiet
 * hours (every route still to be sent is deferred to the window's end) → the frequency cap
 * (the profile joins cap, its notices are placed when the reservation answers). Urgent
 * policies skip the last two. priv: the profile's private JSON (or its whole document), NULL
 * when gone; nd: a templated policy's personalization (NULL without templates). */
static void decide_gid(dl_job *j, uint32_t gid, const cJSON *priv, const zd_notice_data *nd,
                       bool gone, dl_batch **imm, dl_batch **open, cap_call *cap)
{
    dl_engine *e = j->e;
    const zd_policy *p = j->pol->p;
    zd_prefs prefs;
    zd_prefs_read(cJSON_GetObjectItemCaseSensitive(priv, "prefs"), &prefs);
    const cJSON *contacts = cJSON_GetObjectItemCaseSensitive(priv, "contacts");
    const char *profile = NULL;
    for (int i = 0; i < j->n && !profile; i++)
        if (j->items[i].live && j->items[i].gid == gid)
            profile = j->items[i].profile;
    char whole = 0;
    if (!gone && profile && zd_holdout(p->holdout_percent, p->id, profile))
        whole = 'h';
    else if (!gone && zd_prefs_mutes_category(&prefs, p->category))
        whole = 'm';
    int nsend = 0;
    for (int i = 0; i < j->n && !j->abandon; i++) {
        dl_item *it = &j->items[i];
        if (!it->live || it->gid != gid)
            continue;
        if (whole) {
            it->gwi = it->exp_gwi;
            imm_add(j, it, whole, imm);
            continue;
        }
        char o = choose_gateway(j, it, contacts, gone ? NULL : &prefs, gone);
        if (o) {
            imm_add(j, it, o, imm);
        } else if (!j->abandon) {
            it->send = true, nsend++;
            render_item(j, it, nd);
        }
    }
    if (nsend == 0 || j->abandon)
        return;
    int64_t until = p->urgent ? 0 : zd_prefs_quiet_until(&prefs, e->o.timezone, zd_unix_ms());
    bool capped = !p->urgent && !until && e->o.cap_count > 0 && cap;
    for (int i = 0; i < j->n && !j->abandon; i++) {
        dl_item *it = &j->items[i];
        if (!it->send || it->gid != gid || capped)
            continue;
        it->send = false;
        if (until) {
            it->until = until;
            imm_add(j, it, 'f', imm);
        } else {
            place_send(j, it, open);
        }
    }
    if (capped)
        cap->gids[cap->n++] = gid;
}

static void flush_open(dl_job *j, dl_batch *imm, dl_batch **open)
{
    for (int gi = 0; gi < j->e->ngw; gi++)
        if (open[gi])
            batch_submit(open[gi]);
    if (imm)
        batch_submit(imm);
}

static void cap_reserved(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    cap_call *c = udata;
    dl_job *j = c->j;
    dl_engine *e = j->e;
    dl_batch **open = NULL;
    if (status != 0 || !zd_reply_is(reply, ZD_REPLY_ARRAY) || zd_reply_len(reply) != (size_t)c->n ||
        e->stopping || !(open = calloc((size_t)(e->ngw > 0 ? e->ngw : 1), sizeof(*open)))) {
        /* Not placed: the entry stays pending and is reclaimed; the reservations it may have
         * made are found again then (idempotent per policy). */
        j->abandon = true;
    } else {
        dl_batch *imm = NULL;
        for (int k = 0; k < c->n && !j->abandon; k++) {
            bool ok = zd_reply_int(zd_reply_at(reply, (size_t)k)) == 1;
            for (int i = 0; i < j->n && !j->abandon; i++) {
                dl_item *it = &j->items[i];
                if (!it->send || it->gid != c->gids[k])
                    continue;
                it->send = false;
                if (ok) {
                    place_send(j, it, open);
                } else {
                    it->gwi = it->exp_gwi;
                    imm_add(j, it, 'c', &imm);
                }
            }
        }
        flush_open(j, imm, open);
    }
    free(open);
    free(c->gids);
    free(c);
    job_done_op(j);
}

/* Sends the reservation of the profiles in c (takes ownership of c). */
static void cap_reserve(dl_job *j, cap_call *c)
{
    dl_engine *e = j->e;
    int argc = 3 + c->n + 4, a = 0;
    const char **argv = calloc((size_t)argc, sizeof(char *));
    char(*keys)[ZD_KEY_MAX] = calloc((size_t)c->n, ZD_KEY_MAX);
    char now[24], win[24], cnt[16], nk[16];
    int rc = -ENOMEM;
    if (argv && keys) {
        snprintf(now, sizeof(now), "%lld", (long long)zd_unix_ms());
        snprintf(win, sizeof(win), "%lld", (long long)e->o.cap_window_ms);
        snprintf(cnt, sizeof(cnt), "%d", e->o.cap_count);
        snprintf(nk, sizeof(nk), "%d", c->n);
        argv[a++] = "EVAL";
        argv[a++] = cap_script;
        argv[a++] = nk;
        for (int k = 0; k < c->n; k++)
            argv[a++] = zd_key_cap(c->partition, c->gids[k], keys[k]);
        argv[a++] = now;
        argv[a++] = win;
        argv[a++] = cnt;
        argv[a++] = j->pol->id;
        c->j = j;
        rc = zd_redis_eval(e->redis, cap_reserved, c, argc, argv, NULL);
    }
    free(argv);
    free(keys);
    if (rc == 0) {
        j->ops++;
        return;
    }
    j->abandon = true;
    free(c->gids);
    free(c);
}

static void ignore_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r, (void)status, (void)reply, (void)udata;
}

/* Gives back the cap reservation of the profile of item i: every route of it failed. A crash
 * before this runs keeps the reservation (one notice fewer in the window, never one more). */
static void cap_release(dl_job *j, const dl_item *it)
{
    char key[ZD_KEY_MAX];
    zd_redis_cmd(j->e->redis, ignore_reply, NULL, "ZREM %s %s",
                 zd_key_cap((int)(it->gid >> ZD_DENSE_BITS), it->gid, key), j->pol->id);
}

typedef struct prof_read {
    dl_job *j;
    int partition;
    int n;
    int *items; /* one item index per HMGET argument (the first item of each gid) */
} prof_read;

static void profiles_read(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    prof_read *pr = udata;
    dl_job *j = pr->j;
    dl_engine *e = j->e;
    if (status != 0 || !zd_reply_is(reply, ZD_REPLY_ARRAY) ||
        zd_reply_len(reply) != (size_t)pr->n || e->stopping) {
        j->abandon = true;
    } else {
        dl_batch *imm = NULL;
        dl_batch **open = calloc((size_t)(e->ngw > 0 ? e->ngw : 1), sizeof(*open));
        cap_call *cap = calloc(1, sizeof(*cap));
        int32_t today = -1; /* computed at the first templated notice */
        char reasons[1024];
        if (!open || !cap || !(cap->gids = calloc((size_t)pr->n + 1, sizeof(uint32_t))))
            j->abandon = true;
        if (cap)
            cap->partition = pr->partition;
        for (int k = 0; open && k < pr->n && !j->abandon; k++) {
            dl_item *first = &j->items[pr->items[k]];
            size_t len = 0;
            const char *v = zd_reply_str(zd_reply_at(reply, (size_t)k), &len);
            uint32_t dense = 0;
            uint64_t ver = 0;
            const char *json = NULL;
            size_t jl = 0;
            cJSON *priv = NULL;
            /* Another dense id under the same profile id: the profile was deleted and created
             * again; the audience's one is gone. */
            bool gone = !v || zd_store_split_value(v, len, &dense, &ver, &json, &jl) != 0 ||
                        zd_gid(pr->partition, dense) != first->gid;
            const cJSON *doc = NULL;
            zd_profile *prof = NULL;
            zd_notice_data nd;
            bool personal = !gone && j->pol->tpls;
            if (personal) {
                if (today < 0)
                    today = zd_date_today(e->o.timezone);
                doc = dl_personalize(j->pol, first->profile, json, jl, today, &priv, &prof, reasons,
                                     sizeof(reasons), &nd);
            } else if (!gone) {
                const char *nl = memchr(json, '\n', jl);
                if (nl)
                    doc = priv = cJSON_ParseWithLength(nl + 1, jl - (size_t)(nl + 1 - json));
            }
            decide_gid(j, first->gid, doc, personal ? &nd : NULL, gone, &imm, open, cap);
            cJSON_Delete(priv);
            zd_profile_free(prof);
        }
        if (open)
            flush_open(j, imm, open);
        free(open);
        if (cap && cap->n > 0 && !j->abandon) {
            cap_reserve(j, cap);
        } else if (cap) {
            free(cap->gids);
            free(cap);
        }
    }
    free(pr->items);
    free(pr);
    job_done_op(j);
}

/* Loads the live items' profiles: ids from the local index, documents by HMGET per
 * partition. A gid the index no longer knows is a profile gone: no contact. */
static void load_profiles(dl_job *j)
{
    dl_engine *e = j->e;
    const zd_index *ix = e->o.follower ? zd_follower_index(e->o.follower) : NULL;
    if (!ix) {
        j->abandon = true;
        return;
    }
    dl_batch *imm = NULL;
    dl_batch **open = calloc((size_t)(e->ngw > 0 ? e->ngw : 1), sizeof(*open));
    if (!open) {
        j->abandon = true;
        return;
    }
    for (int p = 0; p < e->o.partitions && !j->abandon; p++) {
        prof_read *pr = calloc(1, sizeof(*pr));
        const char **argv = calloc((size_t)j->n + 2, sizeof(char *));
        if (!pr || !argv || !(pr->items = calloc((size_t)j->n, sizeof(int)))) {
            free(pr ? pr->items : NULL);
            free(pr);
            free(argv);
            j->abandon = true;
            break;
        }
        char key[ZD_KEY_MAX];
        argv[0] = "HMGET";
        argv[1] = zd_key_profiles(p, key);
        for (int i = 0; i < j->n; i++) {
            dl_item *it = &j->items[i];
            if (!it->live || (int)(it->gid >> ZD_DENSE_BITS) != p)
                continue;
            bool seen = false;
            for (int k = 0; k < pr->n && !seen; k++)
                seen = j->items[pr->items[k]].gid == it->gid;
            if (seen)
                continue;
            const char *id = zd_index_id(ix, it->gid);
            if (!id) {
                decide_gid(j, it->gid, NULL, NULL, true, &imm, open, NULL);
                continue;
            }
            pr->items[pr->n] = i;
            argv[2 + pr->n++] = id;
        }
        /* Every item of a gid carries its profile id (copied: the index may change). */
        for (int k = 0; k < pr->n && !j->abandon; k++)
            for (int i = 0; i < j->n; i++)
                if (j->items[i].live && j->items[i].gid == j->items[pr->items[k]].gid &&
                    !(j->items[i].profile = strdup(argv[2 + k])))
                    j->abandon = true;
        int rc = -1;
        if (pr->n > 0 && !j->abandon) {
            pr->j = j;
            pr->partition = p;
            rc = zd_redis_cmdargv(e->redis, profiles_read, pr, 2 + pr->n, argv, NULL);
            if (rc == 0)
                j->ops++;
            else
                j->abandon = true;
        }
        free(argv);
        if (rc != 0) {
            free(pr->items);
            free(pr);
        }
    }
    flush_open(j, imm, open);
    free(open);
}

/* ---- states ------------------------------------------------------------------------------- */

static void states_read(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    dl_job *j = udata;
    if (status != 0 || !zd_reply_is(reply, ZD_REPLY_ARRAY) || zd_reply_len(reply) != (size_t)j->n ||
        j->e->stopping) {
        j->abandon = true;
        job_done_op(j);
        return;
    }
    for (int i = 0; i < j->n; i++) {
        dl_item *it = &j->items[i];
        const char *s = zd_reply_str(zd_reply_at(reply, (size_t)i), NULL);
        if (!s) {
            /* No state: queued on the chain's first gateway, attempt 1. */
            it->live = it->exp_gwi == 0 && it->exp_att == 1;
            continue;
        }
        char b = 0;
        int g = -1, a = -1;
        /* Only a notice still waiting (queued, retrying, deferred) at the position the entry
         * names is sent: anything
         * else was settled since (a duplicate entry after a reclaim, or a retry moved it). */
        it->live = sscanf(s, "%c|%d|%d|", &b, &g, &a) == 3 && (b == 'q' || b == 'r' || b == 'f') &&
                   g == it->exp_gwi && a == it->exp_att;
    }
    load_profiles(j);
    job_done_op(j);
}

/* ---- entries ------------------------------------------------------------------------------ */

static const char *field(const zd_reply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < zd_reply_len(fields); i += 2)
        if (zd_reply_eq(zd_reply_at(fields, i), name))
            return zd_reply_str(zd_reply_at(fields, i + 1), NULL);
    return NULL;
}

/* Fills j->items from the entry's fields: a fan-out chunk (every route of every profile) or a
 * list of "gid.route.gwi.attempt". */
static int parse_entry(dl_job *j, const zd_reply *fields)
{
    const char *k = field(fields, "k");
    int nroutes = j->pol->p->nroutes;
    if (k && strcmp(k, "f") == 0) {
        const char *ps = field(fields, "p"), *d = field(fields, "d");
        if (!ps || !d)
            return -EINVAL;
        int p = atoi(ps);
        size_t n = 1;
        for (const char *c = d; *c; c++)
            n += *c == ',';
        if (!(j->items = calloc(n * (size_t)nroutes, sizeof(dl_item))))
            return -ENOMEM;
        for (const char *c = d; *c;) {
            char *end;
            unsigned long dense = strtoul(c, &end, 10);
            if (end == c || dense > ZD_DENSE_MAX || p < 0 || p >= ZD_PARTITIONS_MAX)
                return -EINVAL;
            for (int r = 0; r < nroutes; r++)
                j->items[j->n++] =
                    (dl_item){.gid = zd_gid(p, (uint32_t)dense), .route = r, .exp_att = 1};
            c = *end == ',' ? end + 1 : end;
        }
        return 0;
    }
    const char *list = k && strcmp(k, "r") == 0 ? field(fields, "n") : NULL;
    if (!list)
        return -EINVAL;
    size_t n = 1;
    for (const char *c = list; *c; c++)
        n += *c == ',';
    if (!(j->items = calloc(n, sizeof(dl_item))))
        return -ENOMEM;
    for (const char *c = list; *c;) {
        unsigned gid;
        int r, g, a, used = 0;
        if (sscanf(c, "%u.%d.%d.%d%n", &gid, &r, &g, &a, &used) != 4 || r < 0 || r >= nroutes ||
            g < 0 || g >= j->pol->p->routes[r].n || a < 1)
            return -EINVAL;
        j->items[j->n++] = (dl_item){.gid = gid, .route = r, .exp_gwi = g, .exp_att = a};
        c += used;
        if (*c == ',')
            c++;
        else if (*c)
            return -EINVAL;
    }
    return 0;
}

static void ack_only(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r, (void)status, (void)reply, (void)udata;
}

void dl_job_start(dl_engine *e, dl_policy *pol, const char *id, const zd_reply *fields)
{
    char work[ZD_POLICY_KEY_MAX];
    dl_key(pol, ZD_PK_WORK, work);
    if (!fields || !zd_reply_is(fields, ZD_REPLY_ARRAY)) {
        /* Deleted while pending (trimmed past: must not happen, see the trim script). */
        e->deleted_entries++;
        zd_redis_cmd(e->redis, ack_only, NULL, "XACK %s zd %s", work, id);
        return;
    }
    if (pol->status == ZD_POLICY_WITHDRAWN) {
        zd_redis_cmd(e->redis, ack_only, NULL, "XACK %s zd %s", work, id);
        return;
    }
    if (dl_job_inflight(e, pol, id))
        return;
    dl_job *j = calloc(1, sizeof(*j));
    if (!j)
        return;
    j->e = e;
    j->pol = pol;
    snprintf(j->id, sizeof(j->id), "%s", id);
    j->t0_ms = zd_unix_ms();
    dl_policy_ref(pol);
    pol->inflight++;
    e->inflight++;
    j->next = e->jobs;
    e->jobs = j;
    j->ops = 1;
    int rc = parse_entry(j, fields);
    if (rc == -EINVAL) {
        /* Not an entry this version can read: acknowledged so that it does not block done
         * detection forever; logged, because its notices stay where they are. */
        zd_error_log("delivery: policy %s: work entry %s cannot be read; acknowledged", pol->id,
                     id);
        j->n = 0;
    } else if (rc != 0) {
        j->abandon = true;
    }
    if (!j->abandon && j->n > 0) {
        const char **argv = calloc((size_t)j->n + 2, sizeof(char *));
        char(*names)[24] = calloc((size_t)j->n, 24);
        char st[ZD_POLICY_KEY_MAX];
        if (argv && names) {
            argv[0] = "HMGET";
            argv[1] = dl_key(pol, ZD_PK_STATE, st);
            for (int i = 0; i < j->n; i++) {
                snprintf(names[i], 24, "%u.%d", j->items[i].gid, j->items[i].route);
                argv[2 + i] = names[i];
            }
            if (zd_redis_cmdargv(e->redis, states_read, j, 2 + j->n, argv, NULL) == 0)
                j->ops++;
            else
                j->abandon = true;
        } else {
            j->abandon = true;
        }
        free(argv);
        free(names);
    }
    job_done_op(j);
}
