/* Reported applications per group (see outcomes.h): one script on the policy's slot. */
#include "delivery/outcomes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profiles/profile.h"
#include "redis/keys.h"
#include "redis/script.h"

/* KEYS meta st out; ARGV gids. -1: no such policy. Per gid 0 unknown, 1 recorded, 2 repeat. */
static const char outcomes_script[] =
    "if redis.call('HEXISTS', KEYS[1], 'doc') == 0 then return -1 end\n"
    "local res = {}\n"
    "for i = 1, #ARGV do\n"
    "  local s = redis.call('HGET', KEYS[2], ARGV[i] .. '.0')\n"
    "  if not s then\n"
    "    res[i] = 0\n"
    "  else\n"
    "    local grp = 't'\n"
    "    if string.sub(s, 1, 1) == 'h' then grp = 'h' end\n"
    "    if redis.call('HSETNX', KEYS[3], ARGV[i], grp) == 1 then\n"
    "      local f = 'applied_treated'\n"
    "      if grp == 'h' then f = 'applied_holdout' end\n"
    "      redis.call('HINCRBY', KEYS[1], f, 1)\n"
    "      res[i] = 1\n"
    "    else\n"
    "      res[i] = 2\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return res\n";

typedef struct out_call {
    zd_outcomes_cb cb;
    void *udata;
    int n;
} out_call;

static void recorded(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    out_call *c = udata;
    int *codes = NULL;
    if (status == 0 && zd_reply_is(reply, ZD_REPLY_INTEGER) && zd_reply_int(reply) == -1)
        status = -ENOENT;
    else if (status == 0 &&
             (!zd_reply_is(reply, ZD_REPLY_ARRAY) || zd_reply_len(reply) != (size_t)c->n))
        status = -EIO;
    if (status == 0 && !(codes = calloc((size_t)c->n + 1, sizeof(int))))
        status = -ENOMEM;
    for (int k = 0; codes && k < c->n; k++)
        codes[k] = (int)zd_reply_int(zd_reply_at(reply, (size_t)k));
    c->cb(status, codes, status == 0 ? c->n : 0, c->udata);
    free(codes);
    free(c);
}

int zd_outcomes_record(zd_redis *r, const char *policy_id, const uint32_t *gids, int n,
                       zd_outcomes_cb cb, void *udata)
{
    if (n < 0 || n > ZD_OUTCOMES_MAX)
        return -EINVAL;
    out_call *c = calloc(1, sizeof(*c));
    const char **argv = calloc((size_t)n + 6, sizeof(char *));
    char(*nums)[12] = calloc((size_t)n, 12);
    char meta[ZD_POLICY_KEY_MAX], st[ZD_POLICY_KEY_MAX], out[ZD_POLICY_KEY_MAX];
    int rc = -ENOMEM;
    if (c && argv && nums) {
        c->cb = cb;
        c->udata = udata;
        c->n = n;
        argv[0] = "EVAL";
        argv[1] = outcomes_script;
        argv[2] = "3";
        argv[3] = zd_key_policy(ZD_PK_META, policy_id, meta);
        argv[4] = zd_key_policy(ZD_PK_STATE, policy_id, st);
        argv[5] = zd_key_policy(ZD_PK_OUTCOMES, policy_id, out);
        for (int k = 0; k < n; k++) {
            snprintf(nums[k], 12, "%u", gids[k]);
            argv[6 + k] = nums[k];
        }
        rc = zd_redis_eval(r, recorded, c, 6 + n, argv, NULL);
    }
    free(argv);
    free(nums);
    if (rc != 0)
        free(c);
    return rc;
}

/* KEYS profiles; ARGV ids: the dense id of each, or -1. */
static const char dense_script[] = "local out = {}\n"
                                   "for i = 1, #ARGV do\n"
                                   "  local v = redis.call('HGET', KEYS[1], ARGV[i])\n"
                                   "  out[i] = v and tonumber(string.match(v, '^(%d+),')) or -1\n"
                                   "end\n"
                                   "return out\n";

typedef struct report {
    zd_redis *r;
    zd_outcomes_cb cb;
    void *udata;
    char policy[ZD_POLICY_KEY_MAX];
    int n, waiting, status;
    int *part;    /* partition of each id */
    int64_t *gid; /* -1 unknown */
    int *known;   /* indexes of the ids with a gid, in the record call's order */
    int nknown;
} report;

static void report_free(report *rp)
{
    free(rp->part);
    free(rp->gid);
    free(rp->known);
    free(rp);
}

static void report_recorded(int status, const int *codes, int n, void *udata)
{
    report *rp = udata;
    int *all = calloc((size_t)rp->n + 1, sizeof(int));
    if (status == 0 && !all)
        status = -ENOMEM;
    for (int k = 0; status == 0 && k < n && k < rp->nknown; k++)
        all[rp->known[k]] = codes[k];
    rp->cb(status, status == 0 ? all : NULL, status == 0 ? rp->n : 0, rp->udata);
    free(all);
    report_free(rp);
}

static void report_resolved(report *rp)
{
    uint32_t *gids = calloc((size_t)rp->n + 1, sizeof(uint32_t));
    if (rp->status == 0 && !gids)
        rp->status = -ENOMEM;
    for (int i = 0; rp->status == 0 && i < rp->n; i++)
        if (rp->gid[i] >= 0) {
            rp->known[rp->nknown] = i;
            gids[rp->nknown++] = (uint32_t)rp->gid[i];
        }
    int rc = rp->status;
    /* Even with no known profile: the script still answers whether the policy exists. */
    if (rc == 0)
        rc = zd_outcomes_record(rp->r, rp->policy, gids, rp->nknown, report_recorded, rp);
    free(gids);
    if (rc != 0) {
        rp->cb(rc, NULL, 0, rp->udata);
        report_free(rp);
    }
}

typedef struct dense_call {
    report *rp;
    int partition;
} dense_call;

static void dense_read(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    (void)r;
    dense_call *dc = udata;
    report *rp = dc->rp;
    size_t k = 0;
    if (status == 0 && !zd_reply_is(reply, ZD_REPLY_ARRAY))
        status = -EIO;
    for (int i = 0; status == 0 && i < rp->n; i++) {
        if (rp->part[i] != dc->partition)
            continue;
        long long d = zd_reply_int(zd_reply_at(reply, k++));
        rp->gid[i] = d >= 0 ? (int64_t)zd_gid(dc->partition, (uint32_t)d) : -1;
    }
    if (status != 0 && rp->status == 0)
        rp->status = status;
    free(dc);
    if (--rp->waiting == 0)
        report_resolved(rp);
}

int zd_outcomes_report(zd_redis *r, int partitions, const char *policy_id, const char *const *ids,
                       int n, zd_outcomes_cb cb, void *udata)
{
    if (n < 1 || n > ZD_OUTCOMES_MAX || partitions < 1)
        return -EINVAL;
    report *rp = calloc(1, sizeof(*rp));
    if (!rp || !(rp->part = calloc((size_t)n, sizeof(int))) ||
        !(rp->gid = calloc((size_t)n, sizeof(int64_t))) ||
        !(rp->known = calloc((size_t)n, sizeof(int)))) {
        if (rp)
            report_free(rp);
        return -ENOMEM;
    }
    rp->r = r;
    rp->cb = cb;
    rp->udata = udata;
    rp->n = n;
    snprintf(rp->policy, sizeof(rp->policy), "%s", policy_id);
    for (int i = 0; i < n; i++) {
        rp->part[i] = zd_partition_of(ids[i], partitions);
        rp->gid[i] = -1;
    }
    /* One script per partition that holds any of the ids; the last answer records. */
    rp->waiting = 1;
    const char **argv = calloc((size_t)n + 4, sizeof(char *));
    int rc = argv ? 0 : -ENOMEM;
    for (int p = 0; rc == 0 && p < partitions; p++) {
        char key[ZD_KEY_MAX];
        int a = 0;
        argv[a++] = "EVAL";
        argv[a++] = dense_script;
        argv[a++] = "1";
        argv[a++] = zd_key_profiles(p, key);
        for (int i = 0; i < n; i++)
            if (rp->part[i] == p)
                argv[a++] = ids[i];
        if (a == 4)
            continue;
        dense_call *dc = calloc(1, sizeof(*dc));
        if (!dc) {
            rc = -ENOMEM;
            break;
        }
        dc->rp = rp;
        dc->partition = p;
        rp->waiting++;
        if ((rc = zd_redis_cmdargv(r, dense_read, dc, a, argv, NULL)) != 0) {
            rp->waiting--;
            free(dc);
        }
    }
    free(argv);
    if (rc != 0 && rp->status == 0)
        rp->status = rc;
    /* The calls in flight answer later; the first error is reported once they have. */
    if (--rp->waiting == 0)
        report_resolved(rp);
    return 0;
}
