/* Settling (docs/DESIGN.md "Delivery"): a gateway's per-notice results move each notice from
 * one funnel bucket to another in the settle script, the results of one loop turn together. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/clock.h"
#include "common/log.h"
#include "delivery/dispatch_private.h"
#include "gateway/retry.h"
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

/* A batch's results become a "part": 12 arguments per notice for the settle script. Parts are
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
                dl_cap_release(j, &j->items[b->idx[k]]);
        }
        settle_part_free(p);
        dl_batch_end(b, !ok);
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
            dl_batch_end(b, true);
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
            dl_batch_end(b, true);
        }
        settle_call_free(c);
    }
}

void dl_settle_flush(void *udata)
{
    dl_engine *e = udata;
    while (e->settle_head)
        settle_flush_one(e, e->settle_head->b->job->pol);
    e->settle_tail = NULL;
}

/* Settles a batch: res (n results of a gateway, valid during the call) or NULL for a
 * settle-only batch. The part waits for the end of this loop turn (or SETTLE_MAX notices). */
void dl_settle(dl_batch *b, const zd_gw_result *res)
{
    dl_engine *e = b->job->e;
    dl_settle_part *p = settle_part_new(b, res);
    if (!p || (!e->settle_t && !(e->settle_t = zd_timer_new(e->o.base, dl_settle_flush, e)))) {
        if (p)
            settle_part_free(p);
        dl_batch_end(b, true);
        return;
    }
    if (e->settle_tail)
        e->settle_tail->next = p;
    else
        e->settle_head = p;
    e->settle_tail = p;
    e->settle_notices += b->n;
    if (e->settle_notices >= SETTLE_MAX)
        dl_settle_flush(e);
    else
        zd_timer_arm(e->settle_t, 0, 0);
}

void dl_settle_drop(dl_engine *e)
{
    while (e->settle_head) {
        dl_settle_part *p = e->settle_head;
        e->settle_head = p->next;
        dl_batch *b = p->b;
        settle_part_free(p);
        dl_batch_end(b, true);
    }
    e->settle_tail = NULL;
    e->settle_notices = 0;
    zd_timer_free(e->settle_t);
    e->settle_t = NULL;
}
