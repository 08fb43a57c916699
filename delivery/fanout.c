/* Matching and fan-out: claims a policy's job, evaluates its effective rule on the index,
 * freezes the audience in zd:{d:ID}:aud and cuts it into work chunks, appended by number so
 * that a crashed fan-out resumes from meta.fanned on any instance with the same chunks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <roaring/roaring.h>

#include "common/clock.h"
#include "common/date.h"
#include "common/log.h"
#include "delivery/engine.h"
#include "matcher/rule.h"
#include "matcher/segment_store.h"
#include "profiles/follower.h"
#include "profiles/profile.h"
#include "redis/script.h"

/* The job is ours when it is free, expired, or already ours (a restart with the same name). */
static const char claim_script[] =
    "local m = redis.call('HMGET', KEYS[1], 'status', 'job', 'job_until', 'chunks', 'fanned')\n"
    "if m[1] ~= 'matching' and not (m[1] == 'dispatching' and\n"
    "    tonumber(m[4] or '0') > tonumber(m[5] or '0')) then return 0 end\n"
    "if m[2] and m[2] ~= '' and m[2] ~= ARGV[1] and tonumber(m[3] or '0') >= tonumber(ARGV[2])\n"
    "  then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'job', ARGV[1], 'job_until', ARGV[3])\n"
    "return 1\n";

/* KEYS meta funnel aud work; ARGV consumer now matched chunks nroutes nparts. The audience is
 * in aud (written by the commands before this one on the same connection) when the counts and
 * the status change: the check of HLEN refuses a freeze whose aud writes failed. */
static const char freeze_script[] =
    "local m = redis.call('HMGET', KEYS[1], 'status', 'job')\n"
    "if m[1] ~= 'matching' or m[2] ~= ARGV[1] then return 0 end\n"
    "if redis.call('HLEN', KEYS[3]) ~= tonumber(ARGV[6]) then return -1 end\n"
    "redis.call('HSET', KEYS[1], 'matched', ARGV[3], 'chunks', ARGV[4], 'fanned', 0,\n"
    "  'status', 'dispatching', 'started_ms', ARGV[2], 'routes', ARGV[5])\n"
    "for r = 0, tonumber(ARGV[5]) - 1 do\n"
    "  redis.call('HSET', KEYS[2], r .. ':queued', ARGV[3])\n"
    "end\n"
    "redis.pcall('XGROUP', 'CREATE', KEYS[4], 'zd', '0', 'MKSTREAM')\n"
    "return 1\n";

/* KEYS meta work; ARGV consumer k until partition dense-csv. Chunk k is appended only when
 * fanned == k; the answer is the new fanned (k + 1), another fanned (nothing written), -1 (the
 * job is no longer ours) or -2 (the policy is no longer dispatching: withdrawn). */
static const char fan_script[] =
    "local m = redis.call('HMGET', KEYS[1], 'fanned', 'job', 'status')\n"
    "if m[3] ~= 'dispatching' then return -2 end\n"
    "if m[2] ~= ARGV[1] then return -1 end\n"
    "local f = tonumber(m[1] or '0')\n"
    "local k = tonumber(ARGV[2])\n"
    "if f ~= k then return f end\n"
    "redis.call('XADD', KEYS[2], '*', 'k', 'f', 'p', ARGV[4], 'd', ARGV[5])\n"
    "redis.call('HSET', KEYS[1], 'fanned', k + 1, 'job_until', ARGV[3])\n"
    "return k + 1\n";

#define FAN_WINDOW 8 /* fan scripts in flight at once */

typedef struct fan_job {
    dl_engine *e;
    dl_policy *pol;
    roaring_bitmap_t *parts[ZD_PARTITIONS_MAX]; /* dense ids per partition */
    long chunks, next, done;
    int outstanding;
    bool failed;
} fan_job;

static void fan_free(fan_job *f)
{
    for (int i = 0; i < ZD_PARTITIONS_MAX; i++)
        if (f->parts[i])
            roaring_bitmap_free(f->parts[i]);
    f->pol->fanning = false;
    dl_policy_unref(f->pol);
    free(f);
}

static long part_chunks(const fan_job *f, int p)
{
    uint64_t c = f->parts[p] ? roaring_bitmap_get_cardinality(f->parts[p]) : 0;
    return (long)((c + (uint64_t)f->e->o.chunk - 1) / (uint64_t)f->e->o.chunk);
}

static long count_chunks(const fan_job *f)
{
    long n = 0;
    for (int p = 0; p < ZD_PARTITIONS_MAX; p++)
        n += part_chunks(f, p);
    return n;
}

static void fan_pump(fan_job *f);

static void fan_written(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    fan_job *f = udata;
    f->outstanding--;
    long long v = status == 0 && zd_reply_is(reply, ZD_REPLY_INTEGER) ? zd_reply_int(reply) : -3;
    if (v < 0) {
        if (!f->failed && v != -2 && !f->e->freeing)
            zd_warn("delivery: policy %s: fan-out stopped (%s); it resumes from the chunks "
                    "written",
                    f->pol->id, v == -1 ? "the job went to another instance" : "Redis failed");
        f->failed = true;
    } else {
        f->done++;
        f->e->chunks_fanned++;
    }
    fan_pump(f);
}

/* Writes chunk k: the k-th of the chunks cut from the partitions in ascending order, each
 * partition's dense ids ascending. */
static int fan_chunk(fan_job *f, long k)
{
    dl_engine *e = f->e;
    int p = 0;
    long base = 0;
    for (; p < ZD_PARTITIONS_MAX; p++) {
        long n = part_chunks(f, p);
        if (k < base + n)
            break;
        base += n;
    }
    if (p == ZD_PARTITIONS_MAX)
        return -EINVAL;
    uint32_t first;
    if (!roaring_bitmap_select(f->parts[p], (uint32_t)((k - base) * e->o.chunk), &first))
        return -EINVAL;
    roaring_uint32_iterator_t *it = roaring_create_iterator(f->parts[p]);
    uint32_t *ids = malloc(sizeof(uint32_t) * (size_t)e->o.chunk);
    char *csv = malloc((size_t)e->o.chunk * 11 + 1);
    int rc = -ENOMEM;
    if (!it || !ids || !csv)
        goto out;
    roaring_move_uint32_iterator_equalorlarger(it, first);
    uint32_t n = roaring_read_uint32_iterator(it, ids, (uint32_t)e->o.chunk);
    size_t len = 0;
    for (uint32_t i = 0; i < n; i++)
        len += (size_t)sprintf(csv + len, i ? ",%u" : "%u", ids[i]);
    char meta[ZD_POLICY_KEY_MAX], work[ZD_POLICY_KEY_MAX], ks[24], until[24], ps[8];
    snprintf(ks, sizeof(ks), "%ld", k);
    snprintf(until, sizeof(until), "%lld", (long long)(zd_unix_ms() + e->o.claim_idle_ms));
    snprintf(ps, sizeof(ps), "%d", p);
    const char *argv[] = {"EVAL",
                          fan_script,
                          "2",
                          dl_key(f->pol, ZD_PK_META, meta),
                          dl_key(f->pol, ZD_PK_WORK, work),
                          e->consumer,
                          ks,
                          until,
                          ps,
                          csv};
    rc = zd_redis_eval(e->redis, fan_written, f, 10, argv, NULL);
out:
    if (it)
        roaring_free_uint32_iterator(it);
    free(ids);
    free(csv);
    return rc;
}

static void fan_pump(fan_job *f)
{
    while (!f->failed && !f->e->stopping && f->outstanding < FAN_WINDOW && f->next < f->chunks) {
        if (fan_chunk(f, f->next) != 0) {
            f->failed = true;
            break;
        }
        f->next++;
        f->outstanding++;
    }
    if (f->outstanding > 0)
        return;
    if (!f->failed && f->done == f->chunks - f->pol->fanned)
        zd_info("delivery: policy %s: fan-out complete, %ld chunks", f->pol->id, f->chunks);
    dl_kick(f->e);
    fan_free(f);
}

static void fan_start(fan_job *f, long from)
{
    f->chunks = count_chunks(f);
    f->next = from;
    f->pol->fanned = from;
    fan_pump(f);
}

static void frozen(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    fan_job *f = udata;
    long long v = status == 0 && zd_reply_is(reply, ZD_REPLY_INTEGER) ? zd_reply_int(reply) : -3;
    if (v != 1) {
        if (v != 0 && !f->e->freeing)
            zd_warn("delivery: policy %s: could not freeze its audience (%s); retried", f->pol->id,
                    v == -1 ? "audience writes failed" : "Redis failed");
        fan_free(f);
        return;
    }
    f->pol->status = ZD_POLICY_DISPATCHING;
    f->e->fanouts++;
    fan_start(f, 0);
}

static void ignore_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r, (void)status, (void)reply, (void)udata;
}

/* Writes the audience (DEL, one HSET of every non-empty partition) and the freeze script, in
 * this order on one connection. */
static void freeze(fan_job *f, uint64_t matched)
{
    dl_engine *e = f->e;
    char meta[ZD_POLICY_KEY_MAX], funnel[ZD_POLICY_KEY_MAX], aud[ZD_POLICY_KEY_MAX],
        work[ZD_POLICY_KEY_MAX];
    dl_key(f->pol, ZD_PK_META, meta);
    dl_key(f->pol, ZD_PK_FUNNEL, funnel);
    dl_key(f->pol, ZD_PK_AUD, aud);
    dl_key(f->pol, ZD_PK_WORK, work);
    int nparts = 0;
    const char *argv[2 + 2 * ZD_PARTITIONS_MAX];
    size_t argl[2 + 2 * ZD_PARTITIONS_MAX];
    char *blobs[ZD_PARTITIONS_MAX] = {0};
    char pnames[ZD_PARTITIONS_MAX][12];
    argv[0] = "HSET";
    argv[1] = aud;
    argl[0] = 4;
    argl[1] = strlen(aud);
    bool nomem = false;
    for (int p = 0; p < ZD_PARTITIONS_MAX; p++) {
        if (!f->parts[p] || roaring_bitmap_is_empty(f->parts[p]))
            continue;
        roaring_bitmap_run_optimize(f->parts[p]);
        size_t n = roaring_bitmap_portable_size_in_bytes(f->parts[p]);
        if (!(blobs[p] = malloc(n))) {
            nomem = true;
            break;
        }
        roaring_bitmap_portable_serialize(f->parts[p], blobs[p]);
        snprintf(pnames[p], sizeof(pnames[p]), "%d", p);
        argv[2 + 2 * nparts] = pnames[p];
        argl[2 + 2 * nparts] = strlen(pnames[p]);
        argv[3 + 2 * nparts] = blobs[p];
        argl[3 + 2 * nparts] = n;
        nparts++;
    }
    int rc = nomem ? -ENOMEM : zd_redis_cmd(e->redis, ignore_reply, NULL, "DEL %s", aud);
    if (rc == 0 && nparts > 0)
        rc = zd_redis_cmdargv(e->redis, ignore_reply, NULL, 2 + 2 * nparts, argv, argl);
    for (int p = 0; p < ZD_PARTITIONS_MAX; p++)
        free(blobs[p]);
    if (rc == 0) {
        char now[24], m[24], chunks[24], nroutes[12], np[12];
        snprintf(now, sizeof(now), "%lld", (long long)zd_unix_ms());
        snprintf(m, sizeof(m), "%llu", (unsigned long long)matched);
        snprintf(chunks, sizeof(chunks), "%ld", count_chunks(f));
        snprintf(nroutes, sizeof(nroutes), "%d", f->pol->p->nroutes);
        snprintf(np, sizeof(np), "%d", nparts);
        const char *fargv[] = {"EVAL",      freeze_script, "4", meta,   funnel,  aud, work,
                               e->consumer, now,           m,   chunks, nroutes, np};
        rc = zd_redis_eval(e->redis, frozen, f, 13, fargv, NULL);
    }
    if (rc != 0) {
        zd_warn("delivery: policy %s: could not write its audience (%s)", f->pol->id,
                zd_strerror(rc));
        fan_free(f);
    }
}

static const char *seg_lookup(const char *name, void *udata)
{
    const struct {
        const zd_segment *segs;
        int n;
    } *s = udata;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->segs[i].name, name) == 0)
            return s->segs[i].rule;
    return NULL;
}

/* Evaluates the effective rule with the saved segments at hand and splits the audience (index
 * ids) into dense ids per partition. */
static void segments_loaded(int status, const zd_segment *segs, int n, void *udata)
{
    fan_job *f = udata;
    dl_engine *e = f->e;
    const zd_index *ix = e->o.follower ? zd_follower_index(e->o.follower) : NULL;
    if (status != 0 || !ix || e->stopping) {
        fan_free(f);
        return;
    }
    struct {
        const zd_segment *segs;
        int n;
    } ss = {segs, n};
    const char *text = f->pol->p->effective_rule ? f->pol->p->effective_rule : f->pol->p->rule;
    zd_rule *rule = NULL;
    zd_rule_error err;
    if (zd_rule_compile(e->o.schema, text, strlen(text), seg_lookup, &ss, &rule, &err) != 0) {
        /* The API compiled it at create; a segment changed or was deleted since. */
        zd_warn("delivery: policy %s: its rule no longer compiles (%s): matches nobody", f->pol->id,
                err.message);
    }
    roaring_bitmap_t *aud =
        rule ? zd_rule_audience(rule, ix, zd_date_today(e->o.timezone)) : roaring_bitmap_create();
    zd_rule_free(rule);
    if (!aud) {
        zd_warn("delivery: policy %s: out of memory computing its audience", f->pol->id);
        fan_free(f);
        return;
    }
    uint64_t matched = roaring_bitmap_get_cardinality(aud);
    roaring_uint32_iterator_t *it = roaring_create_iterator(aud);
    uint32_t buf[1024];
    bool nomem = !it;
    while (!nomem) {
        uint32_t got = roaring_read_uint32_iterator(it, buf, 1024);
        if (got == 0)
            break;
        for (uint32_t i = 0; i < got; i++) {
            int p = (int)(buf[i] >> ZD_DENSE_BITS);
            if (!f->parts[p] && !(f->parts[p] = roaring_bitmap_create())) {
                nomem = true;
                break;
            }
            roaring_bitmap_add(f->parts[p], buf[i] & ZD_DENSE_MAX);
        }
    }
    if (it)
        roaring_free_uint32_iterator(it);
    roaring_bitmap_free(aud);
    if (nomem) {
        fan_free(f);
        return;
    }
    zd_info("delivery: policy %s: %llu profiles matched", f->pol->id, (unsigned long long)matched);
    freeze(f, matched);
}

/* A resumed fan-out: the frozen audience back from aud. */
static void aud_read(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    fan_job *f = udata;
    if (status != 0 || !zd_reply_is(reply, ZD_REPLY_ARRAY) || f->e->stopping) {
        fan_free(f);
        return;
    }
    for (size_t i = 0; i + 1 < zd_reply_len(reply); i += 2) {
        const char *ps = zd_reply_str(zd_reply_at(reply, i), NULL);
        size_t len = 0;
        const char *blob = zd_reply_str(zd_reply_at(reply, i + 1), &len);
        int p = ps ? atoi(ps) : -1;
        if (p < 0 || p >= ZD_PARTITIONS_MAX || !blob ||
            !(f->parts[p] = roaring_bitmap_portable_deserialize_safe(blob, len))) {
            zd_warn("delivery: policy %s: its frozen audience cannot be read", f->pol->id);
            fan_free(f);
            return;
        }
    }
    if (count_chunks(f) != f->pol->chunks) {
        zd_warn("delivery: policy %s: its frozen audience does not give its %ld chunks", f->pol->id,
                f->pol->chunks);
        fan_free(f);
        return;
    }
    zd_info("delivery: policy %s: resuming fan-out at chunk %ld of %ld", f->pol->id, f->pol->fanned,
            f->pol->chunks);
    fan_start(f, f->pol->fanned);
}

static void claimed(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    fan_job *f = udata;
    dl_engine *e = f->e;
    if (status != 0 || !zd_reply_is(reply, ZD_REPLY_INTEGER) || zd_reply_int(reply) != 1 ||
        e->stopping) {
        fan_free(f);
        return;
    }
    int rc;
    if (f->pol->status == ZD_POLICY_MATCHING) {
        rc = zd_segments_all(r, segments_loaded, f);
    } else {
        char aud[ZD_POLICY_KEY_MAX];
        rc = zd_redis_cmd(r, aud_read, f, "HGETALL %s", dl_key(f->pol, ZD_PK_AUD, aud));
    }
    if (rc != 0)
        fan_free(f);
}

void dl_fanout_maybe(dl_engine *e, dl_policy *pol)
{
    if (pol->fanning || e->stopping || !e->o.follower || !zd_follower_ready(e->o.follower))
        return;
    int64_t now = zd_unix_ms();
    if (pol->job[0] && strcmp(pol->job, e->consumer) != 0 && pol->job_until >= now)
        return; /* another instance runs it */
    fan_job *f = calloc(1, sizeof(*f));
    if (!f)
        return;
    f->e = e;
    f->pol = pol;
    pol->fanning = true;
    dl_policy_ref(pol);
    char meta[ZD_POLICY_KEY_MAX], ns[24], until[24];
    snprintf(ns, sizeof(ns), "%lld", (long long)now);
    snprintf(until, sizeof(until), "%lld", (long long)(now + e->o.claim_idle_ms));
    const char *argv[] = {"EVAL",      claim_script, "1",  dl_key(pol, ZD_PK_META, meta),
                          e->consumer, ns,           until};
    if (zd_redis_eval(e->redis, claimed, f, 7, argv, NULL) != 0)
        fan_free(f);
}
