/* The workers' stream side: reads from the consumer group (own pending from 0 at start, then
 * new entries), heartbeats entries in progress (XCLAIM JUSTID), reclaims idle ones
 * (XAUTOCLAIM), moves due retries into the stream, trims it without dropping unacknowledged
 * entries, refreshes the queue metrics and detects when a policy is done. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/date.h"
#include "common/log.h"
#include "delivery/dispatch.h"
#include "profiles/follower.h"
#include "redis/script.h"

/* KEYS retry work; ARGV now limit: due retries become one entry, atomically (a crash between
 * a ZREM and an XADD done apart would lose them). */
static const char mover_script[] =
    "local m = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])\n"
    "if #m == 0 then return 0 end\n"
    "redis.call('ZREM', KEYS[1], unpack(m))\n"
    "redis.call('XADD', KEYS[2], '*', 'k', 'r', 'n', table.concat(m, ','))\n"
    "return #m\n";

/* Stream ids compared as numbers (Lua), shared by the two scripts below. */
#define LUA_ID_LT                                                                                  \
    "local function idlt(a, b)\n"                                                                  \
    "  local am, as = string.match(a, '^(%d+)-(%d+)$')\n"                                          \
    "  local bm, bs = string.match(b, '^(%d+)-(%d+)$')\n"                                          \
    "  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)\n"                  \
    "  return am < bm or (am == bm and as < bs)\n"                                                 \
    "end\n"                                                                                        \
    "local function group_last(key)\n"                                                             \
    "  local g = redis.pcall('XINFO', 'GROUPS', key)\n"                                            \
    "  if type(g) ~= 'table' or g.err then return nil end\n"                                       \
    "  for _, grp in ipairs(g) do\n"                                                               \
    "    local name, last\n"                                                                       \
    "    for j = 1, #grp, 2 do\n"                                                                  \
    "      if grp[j] == 'name' then name = grp[j+1] end\n"                                         \
    "      if grp[j] == 'last-delivered-id' then last = grp[j+1] end\n"                            \
    "    end\n"                                                                                    \
    "    if name == 'zd' then return last end\n"                                                   \
    "  end\n"                                                                                      \
    "  return nil\n"                                                                               \
    "end\n"

/* KEYS work. Redis 7.0 trims pending entries too (no ACKED mode before 8.2), so MINID is the
 * smallest of the oldest pending id and the id after the group's last-delivered-id: only
 * entries acknowledged by the group go. */
static const char trim_script[] =
    LUA_ID_LT "local last = group_last(KEYS[1])\n"
              "if not last then return 0 end\n"
              "local ms, seq = string.match(last, '^(%d+)-(%d+)$')\n"
              "local minid = ms .. '-' .. (tonumber(seq) + 1)\n"
              "local p = redis.call('XPENDING', KEYS[1], 'zd')\n"
              "if tonumber(p[1]) > 0 and idlt(p[2], minid) then minid = p[2] end\n"
              "return redis.call('XTRIM', KEYS[1], 'MINID', minid)\n";

/* KEYS meta funnel retry work; ARGV nroutes now final expected-status. Done when every chunk
 * is written, no notice is pending in the funnel, no retry is scheduled and the stream holds
 * no entry that is pending or not yet read. */
static const char done_script[] = LUA_ID_LT
    "local st = redis.call('HGET', KEYS[1], 'status')\n"
    "if st ~= ARGV[4] or st == ARGV[3] then return 0 end\n"
    "local m = redis.call('HMGET', KEYS[1], 'chunks', 'fanned')\n"
    "if tonumber(m[1] or '-1') ~= tonumber(m[2] or '0') then return 0 end\n"
    "for r = 0, tonumber(ARGV[1]) - 1 do\n"
    "  for _, b in ipairs({'queued', 'retrying', 'deferred'}) do\n"
    "    if tonumber(redis.call('HGET', KEYS[2], r .. ':' .. b) or '0') ~= 0 then return 0 end\n"
    "  end\n"
    "end\n"
    "if redis.call('ZCARD', KEYS[3]) > 0 then return 0 end\n"
    "if redis.call('XLEN', KEYS[4]) > 0 then\n"
    "  local p = redis.pcall('XPENDING', KEYS[4], 'zd')\n"
    "  if type(p) == 'table' and not p.err and tonumber(p[1]) > 0 then return 0 end\n"
    "  local last = group_last(KEYS[4])\n"
    "  local top = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)\n"
    "  if top[1] and (not last or idlt(last, top[1][1])) then return 0 end\n"
    "end\n"
    "redis.call('XTRIM', KEYS[4], 'MAXLEN', 0)\n"
    "redis.call('HSET', KEYS[1], 'status', ARGV[3], 'done_ms', ARGV[2])\n"
    "return 1\n";

static int free_slots(const dl_engine *e)
{
    return e->o.inflight - e->inflight;
}

static bool can_work(const dl_engine *e)
{
    return !e->stopping && e->o.follower && zd_follower_ready(e->o.follower);
}

static void ignore(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r, (void)status, (void)reply, (void)udata;
}

static void create_group(dl_engine *e, dl_policy *pol)
{
    char work[ZD_POLICY_KEY_MAX];
    zd_redis_cmd(e->redis, ignore, NULL, "XGROUP CREATE %s zd 0 MKSTREAM",
                 dl_key(pol, ZD_PK_WORK, work));
}

/* Hands every entry of an array of [id, fields] to the jobs; returns the last id. */
static const char *take_entries(dl_engine *e, dl_policy *pol, const zd_reply *entries)
{
    const char *last = NULL;
    for (size_t i = 0; i < zd_reply_len(entries); i++) {
        const zd_reply *en = zd_reply_at(entries, i);
        const char *id = zd_reply_str(zd_reply_at(en, 0), NULL);
        if (!id)
            continue;
        last = id;
        dl_job_start(e, pol, id, zd_reply_at(en, 1));
    }
    return last;
}

static void read_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    dl_policy *pol = udata;
    dl_engine *e = pol->e;
    pol->reading = false;
    dl_policy_unref(pol);
    if (status != 0 || e->freeing)
        return;
    if (zd_reply_is(reply, ZD_REPLY_ERROR)) {
        const char *s = zd_reply_str(reply, NULL);
        if (s && strncmp(s, "NOGROUP", 7) == 0)
            create_group(e, pol);
        return;
    }
    const zd_reply *entries = zd_reply_at(zd_reply_at(reply, 0), 1);
    size_t n = zd_reply_len(entries);
    if (!pol->own_done) {
        /* The start-up read of our own pending entries: until it comes back empty. */
        const char *last = take_entries(e, pol, entries);
        if (n == 0 || !last)
            pol->own_done = true;
        else
            snprintf(pol->own_after, sizeof(pol->own_after), "%s", last);
        dl_kick(e);
        return;
    }
    take_entries(e, pol, entries);
    if (n > 0)
        dl_kick(e);
}

static void read_more(dl_engine *e, dl_policy *pol)
{
    int free = free_slots(e);
    if (pol->reading || free <= 0 || !can_work(e))
        return;
    char work[ZD_POLICY_KEY_MAX], count[16];
    snprintf(count, sizeof(count), "%d", free > 64 ? 64 : free);
    const char *argv[] = {"XREADGROUP",
                          "GROUP",
                          "zd",
                          e->consumer,
                          "COUNT",
                          count,
                          "STREAMS",
                          dl_key(pol, ZD_PK_WORK, work),
                          pol->own_done ? ">" : pol->own_after};
    if (zd_redis_cmdargv(e->redis, read_reply, pol, 9, argv, NULL) == 0) {
        pol->reading = true;
        dl_policy_ref(pol);
    }
}

static void moved(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    dl_policy *pol = udata;
    pol->mover_busy = false;
    dl_policy_unref(pol);
    if (status == 0 && zd_reply_is(reply, ZD_REPLY_INTEGER) && zd_reply_int(reply) > 0)
        dl_kick(pol->e);
}

static void move_retries(dl_engine *e, dl_policy *pol)
{
    if (pol->mover_busy)
        return;
    char retry[ZD_POLICY_KEY_MAX], work[ZD_POLICY_KEY_MAX], now[24];
    snprintf(now, sizeof(now), "%lld", (long long)zd_unix_ms());
    const char *argv[] = {
        "EVAL", mover_script, "2", dl_key(pol, ZD_PK_RETRY, retry), dl_key(pol, ZD_PK_WORK, work),
        now,    "500"};
    if (zd_redis_eval(e->redis, moved, pol, 7, argv, NULL) == 0) {
        pol->mover_busy = true;
        dl_policy_ref(pol);
    }
}

/* ---- trim, queue metrics, done ------------------------------------------------------------ */

static void queue_totals(dl_engine *e)
{
    long pending = 0;
    int64_t oldest = 0;
    for (dl_policy *p = e->policies; p; p = p->next) {
        if (!p->seen)
            continue;
        pending += p->pending_entries;
        if (p->pending_entries > 0 && (oldest == 0 || p->oldest_pending_ms < oldest))
            oldest = p->oldest_pending_ms;
    }
    e->queue_pending = pending;
    e->queue_oldest_ms = oldest;
}

static void pending_read(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    dl_policy *pol = udata;
    dl_policy_unref(pol);
    if (status != 0 || !zd_reply_is(reply, ZD_REPLY_ARRAY))
        return;
    pol->pending_entries = (long)zd_reply_int(zd_reply_at(reply, 0));
    const char *oldest = zd_reply_str(zd_reply_at(reply, 1), NULL);
    pol->oldest_pending_ms = oldest ? strtoll(oldest, NULL, 10) : 0;
    queue_totals(pol->e);
}

/* The status a finished policy takes: active while it matches new profiles and its deadline
 * has not passed (the deadline day itself still counts), else done. */
static const char *final_status(const dl_engine *e, const dl_policy *pol)
{
    if (!pol->p->match_new_profiles)
        return "done";
    int32_t d;
    if (!pol->p->deadline[0] || zd_date_parse(pol->p->deadline, &d) != 0)
        return "active";
    return d < zd_date_today(e->o.timezone) ? "done" : "active";
}

static void done_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    dl_policy *pol = udata;
    dl_engine *e = pol->e;
    pol->maint_busy = false;
    dl_policy_unref(pol);
    if (status != 0 || !zd_reply_is(reply, ZD_REPLY_INTEGER) || zd_reply_int(reply) != 1 ||
        e->freeing)
        return;
    bool stays = strcmp(final_status(e, pol), "active") == 0;
    pol->status = stays ? ZD_POLICY_ACTIVE : ZD_POLICY_DONE;
    zd_info("delivery: policy %s %s", pol->id, stays ? "dispatched; stays active" : "done");
    if (!stays)
        zd_redis_cmd(r, ignore, NULL, "SREM %s %s", ZD_KEY_POLICY_ACTIVE, pol->id);
}

static void maintain(dl_engine *e, dl_policy *pol)
{
    if (pol->maint_busy)
        return;
    char work[ZD_POLICY_KEY_MAX], meta[ZD_POLICY_KEY_MAX], funnel[ZD_POLICY_KEY_MAX],
        retry[ZD_POLICY_KEY_MAX], nr[12], now[24];
    dl_key(pol, ZD_PK_WORK, work);
    const char *targv[] = {"EVAL", trim_script, "1", work};
    zd_redis_eval(e->redis, ignore, NULL, 4, targv, NULL);
    if (zd_redis_cmd(e->redis, pending_read, pol, "XPENDING %s zd", work) == 0)
        dl_policy_ref(pol);
    const char *final = final_status(e, pol);
    const char *expect = pol->status == ZD_POLICY_ACTIVE ? "active" : "dispatching";
    if (strcmp(final, expect) == 0)
        return; /* active until its deadline */
    snprintf(nr, sizeof(nr), "%d", pol->p->nroutes);
    snprintf(now, sizeof(now), "%lld", (long long)zd_unix_ms());
    const char *argv[] = {"EVAL",
                          done_script,
                          "4",
                          dl_key(pol, ZD_PK_META, meta),
                          dl_key(pol, ZD_PK_FUNNEL, funnel),
                          dl_key(pol, ZD_PK_RETRY, retry),
                          work,
                          nr,
                          now,
                          final,
                          expect};
    if (zd_redis_eval(e->redis, done_reply, pol, 11, argv, NULL) == 0) {
        pol->maint_busy = true;
        dl_policy_ref(pol);
    }
}

void dl_dispatch_policy(dl_engine *e, dl_policy *pol, bool slow_tick)
{
    if (e->stopping || !pol->p)
        return;
    read_more(e, pol);
    move_retries(e, pol);
    if (slow_tick)
        maintain(e, pol);
}

/* ---- heartbeat and reclaim ---------------------------------------------------------------- */

static void heartbeat_one(dl_policy *pol, const char *id, void *u)
{
    dl_engine *e = u;
    char work[ZD_POLICY_KEY_MAX];
    const char *argv[] = {"XCLAIM", dl_key(pol, ZD_PK_WORK, work), "zd", e->consumer, "0", id,
                          "JUSTID"};
    zd_redis_cmdargv(e->redis, ignore, NULL, 7, argv, NULL);
}

static void autoclaim(dl_engine *e, dl_policy *pol);

static void claimed(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    dl_policy *pol = udata;
    dl_engine *e = pol->e;
    pol->reading = false;
    dl_policy_unref(pol);
    if (status != 0 || e->freeing || !zd_reply_is(reply, ZD_REPLY_ARRAY))
        return;
    const char *next = zd_reply_str(zd_reply_at(reply, 0), NULL);
    const zd_reply *entries = zd_reply_at(reply, 1);
    /* Redis 7.0: entries deleted while pending come back as ids in a third element and leave
     * the PEL; the trim script never deletes one, so any here means someone else did. */
    size_t ndel = zd_reply_len(zd_reply_at(reply, 2));
    if (ndel > 0) {
        e->deleted_entries += (long)ndel;
        zd_warn("delivery: policy %s: %zu pending work entries were deleted from the stream",
                pol->id, ndel);
    }
    if (zd_reply_len(entries) > 0)
        zd_info("delivery: policy %s: reclaimed %zu idle work entries", pol->id,
                zd_reply_len(entries));
    take_entries(e, pol, entries);
    snprintf(pol->claim_cursor, sizeof(pol->claim_cursor), "%s", next ? next : "0-0");
    /* Loop the cursor to 0-0 (each call scans at most 10 x COUNT entries) while slots last. */
    if (strcmp(pol->claim_cursor, "0-0") != 0)
        autoclaim(e, pol);
}

static void autoclaim(dl_engine *e, dl_policy *pol)
{
    int free = free_slots(e);
    if (pol->reading || free <= 0 || !can_work(e))
        return;
    char work[ZD_POLICY_KEY_MAX], idle[16], count[16];
    snprintf(idle, sizeof(idle), "%d", e->o.claim_idle_ms);
    snprintf(count, sizeof(count), "%d", free > 64 ? 64 : free);
    const char *argv[] = {"XAUTOCLAIM", dl_key(pol, ZD_PK_WORK, work),
                          "zd",         e->consumer,
                          idle,         pol->claim_cursor,
                          "COUNT",      count};
    if (zd_redis_cmdargv(e->redis, claimed, pol, 8, argv, NULL) == 0) {
        pol->reading = true;
        dl_policy_ref(pol);
    }
}

void dl_dispatch_claim_tick(dl_engine *e)
{
    dl_jobs_foreach(e, heartbeat_one, e);
    for (dl_policy *pol = e->policies; pol; pol = pol->next)
        if (pol->seen && pol->p &&
            (pol->status == ZD_POLICY_DISPATCHING || pol->status == ZD_POLICY_ACTIVE))
            autoclaim(e, pol);
}
