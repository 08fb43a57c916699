/* The scheduler: one leader at a time across instances holds a lease in Redis (SET NX PX with
 * a fresh fencing token), renews it every lease_ms/3, and alone starts scheduled policies when
 * they are due, through a script that refuses a token lower than the policy's meta.fence. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"
#include "delivery/engine.h"
#include "redis/script.h"

/* KEYS lease fence; ARGV consumer lease_ms. A free lease is taken with the next token. */
static const char acquire_script[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "local f = redis.call('INCR', KEYS[2])\n"
    "redis.call('SET', KEYS[1], ARGV[1] .. '/' .. f, 'PX', ARGV[2])\n"
    "return f\n";

/* KEYS lease; ARGV "<consumer>/<fence>" lease_ms: renews only our own lease. */
static const char renew_script[] = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
                                   "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                                   "return 1\n";

/* KEYS meta; ARGV fence now. A deposed leader (a lower token than the one a successor already
 * used on this policy) cannot start it. */
static const char start_script[] =
    "local m = redis.call('HMGET', KEYS[1], 'status', 'fence', 'publish_at_ms')\n"
    "if m[1] ~= 'scheduled' then return 0 end\n"
    "if tonumber(m[2] or '0') > tonumber(ARGV[1]) then return -1 end\n"
    "if tonumber(m[3] or '0') > tonumber(ARGV[2]) then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'status', 'matching', 'fence', ARGV[1])\n"
    "return 1\n";

static void lease_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    dl_engine *e = udata;
    e->lease_busy = false;
    if (e->freeing)
        return;
    long long v = status == 0 && zd_reply_is(reply, ZD_REPLY_INTEGER) ? zd_reply_int(reply) : -1;
    if (e->leader) {
        /* A renewal: 0 = the lease is someone else's now (it expired: we were too slow).
         * A transport error keeps the role until the lease would have run out anyway, which
         * the next renewal finds out. */
        if (v == 0) {
            e->leader = false;
            zd_warn("delivery: scheduler lease lost (fence %lld)", e->fence);
        }
        return;
    }
    if (v > 0) {
        e->leader = true;
        e->fence = v;
        zd_info("delivery: this instance now runs the scheduler (fence %lld)", v);
        dl_kick(e);
    }
}

void dl_scheduler_tick(void *udata)
{
    dl_engine *e = udata;
    if (e->stopping || e->lease_busy || !zd_redis_ready(e->redis))
        return;
    char ms[24];
    snprintf(ms, sizeof(ms), "%d", e->o.lease_ms);
    int rc;
    if (e->leader) {
        char me[160];
        snprintf(me, sizeof(me), "%s/%lld", e->consumer, e->fence);
        const char *argv[] = {"EVAL", renew_script, "1", ZD_KEY_POLICY_LEASE, me, ms};
        rc = zd_redis_eval(e->redis, lease_reply, e, 6, argv, NULL);
    } else {
        const char *argv[] = {
            "EVAL", acquire_script, "2", ZD_KEY_POLICY_LEASE, ZD_KEY_POLICY_FENCE, e->consumer, ms};
        rc = zd_redis_eval(e->redis, lease_reply, e, 7, argv, NULL);
    }
    if (rc == 0)
        e->lease_busy = true;
}

static void started(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    dl_policy *pol = udata;
    dl_policy_unref(pol);
    long long v = status == 0 && zd_reply_is(reply, ZD_REPLY_INTEGER) ? zd_reply_int(reply) : 0;
    if (v == 1) {
        zd_info("delivery: scheduled policy %s started", pol->id);
        pol->status = ZD_POLICY_MATCHING;
        dl_kick(pol->e);
    } else if (v == -1) {
        zd_warn("delivery: policy %s was started by a newer scheduler leader; this one (fence "
                "%lld) steps down",
                pol->id, pol->e->fence);
        pol->e->leader = false;
    }
}

void dl_scheduler_maybe_start(dl_engine *e, dl_policy *pol)
{
    int64_t now = zd_unix_ms();
    if (!e->leader || pol->publish_at_ms > now)
        return;
    char meta[ZD_POLICY_KEY_MAX], fence[24], ns[24];
    snprintf(fence, sizeof(fence), "%lld", e->fence);
    snprintf(ns, sizeof(ns), "%lld", (long long)now);
    const char *argv[] = {"EVAL", start_script, "1", dl_key(pol, ZD_PK_META, meta), fence, ns};
    if (zd_redis_eval(e->redis, started, pol, 6, argv, NULL) == 0)
        dl_policy_ref(pol);
}
