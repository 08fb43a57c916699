/* The workers' core: one work entry in progress (a job) becomes notices — states read first,
 * profiles loaded by HMGET with ids from the local index, each notice routed to its chain's
 * current gateway — sent in bounded batches per gateway, and settled by the settle script
 * (dispatch_settle.c). An entry is acknowledged only when every notice of it is settled. The
 * stream side (reads, claims, retries, trim, done) is dispatch_queue.c. */
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
#include "delivery/dispatch_private.h"
#include "delivery/notice.h"
#include "delivery/prefs.h"
#include "gateway/retry.h"
#include "profiles/follower.h"
#include "profiles/profile.h"
#include "profiles/store.h"
#include "redis/script.h"

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

static void job_done_op(dl_job *j);
static void gw_pump(dl_engine *e, int gi);

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
void dl_batch_end(dl_batch *b, bool abandon)
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

static void batch_sent(int status, const zd_gw_result *results, size_t n, void *udata)
{
    dl_batch *b = udata;
    dl_engine *e = b->job->e;
    int gi = b->gi;
    e->gwq[gi].outstanding--;
    if (status != 0 || e->stopping || (size_t)b->n != n) {
        /* Cancelled (the gateways are being freed at stop): the receiver may or may not have
         * it; the entry stays pending and is sent again after the reclaim. */
        dl_batch_end(b, true);
    } else {
        for (size_t k = 0; k < n; k++)
            if (results[k].outcome >= 0 && results[k].outcome <= 2)
                e->gwq[gi].sent[results[k].outcome]++;
        dl_settle(b, results);
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
            dl_batch_end(b, e->stopping);
            continue;
        }
        zd_gateway *g = zd_gateways_at(e->o.gateways, gi);
        if (g && zd_gateway_send(g, b->notices, (size_t)b->n, batch_sent, b) == 0) {
            q->outstanding++;
            continue;
        }
        /* Refused at once: try again after the claim. */
        dl_batch_end(b, true);
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
        dl_batch_end(b, true);
        return;
    }
    long long wait = zd_reply_int(reply);
    if (wait <= 0) {
        gw_enqueue(e, b);
        return;
    }
    if (!b->pace_t && !(b->pace_t = zd_timer_new(e->o.base, pace_due, b))) {
        dl_batch_end(b, true);
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
        dl_batch_end(b, true);
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
        dl_batch_end(b, true);
}

static void batch_submit(dl_batch *b)
{
    if (b->gi < 0)
        dl_settle(b, NULL);
    else if (b->job->pol->p->pace_per_min > 0)
        pace_try(b);
    else
        gw_enqueue(b->job->e, b);
}

void dl_dispatch_drop_queued(dl_engine *e, dl_policy *pol)
{
    if (!pol && e->freeing)
        dl_settle_drop(e); /* not settled: their entries stay pending and are reclaimed */
    else if (!pol)
        dl_settle_flush(e); /* stopping: record what the receivers answered while Redis is there */
    for (dl_batch **pp = &e->paced; *pp;) {
        dl_batch *b = *pp;
        if (!pol || b->job->pol == pol) {
            *pp = b->next;
            dl_batch_end(b, !pol || e->stopping);
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
                dl_batch_end(b, !pol || e->stopping);
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
void dl_cap_release(dl_job *j, const dl_item *it)
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
