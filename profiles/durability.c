/* The Redis durability check (see durability.h). */
#include "profiles/durability.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool zd_durability_policy_evicts(const char *policy)
{
    return strcmp(policy, "noeviction") != 0 && strncmp(policy, "volatile-", 9) != 0;
}

void zd_durability_judge(zd_durability *d)
{
    d->known = d->appendonly[0] && d->policy[0];
    bool aof = strcmp(d->appendonly, "yes") == 0;
    bool evicts = d->policy[0] && zd_durability_policy_evicts(d->policy);
    d->ok = d->known && aof && !evicts;
    d->problem[0] = d->fix[0] = '\0';
    if (d->ok || !d->known)
        return;
    size_t n = 0;
    if (!aof)
        n += (size_t)snprintf(d->problem, sizeof(d->problem),
                              "appendonly is %s (a restart loses what was written since the last "
                              "snapshot, or everything)",
                              d->appendonly);
    if (evicts && n < sizeof(d->problem))
        snprintf(d->problem + n, sizeof(d->problem) - n,
                 "%smaxmemory-policy is %s, which evicts keys when memory is full", n ? "; " : "",
                 d->policy);
    snprintf(d->fix, sizeof(d->fix), "%s%s%s", aof ? "" : "appendonly yes",
             !aof && evicts ? ", " : "", evicts ? "maxmemory-policy noeviction" : "");
}

typedef struct check {
    zd_durability_cb cb;
    void *udata;
    int pending;    /* replies still to come */
    int status;     /* the first failure among them */
    bool abandoned; /* zd_durability_check failed after a first command went out */
    zd_durability d;
    char info_aof[8], info_policy[32], info_error[96];
} check;

/* Copies an error reply's text, without line ends, for a message. */
static void copy_error(char *dst, size_t cap, const zd_reply *reply)
{
    const char *s = zd_reply_str(reply, NULL);
    snprintf(dst, cap, "%s", s ? s : "an unexpected reply");
    size_t n = strcspn(dst, "\r\n");
    while (n > 0 && dst[n - 1] == ' ')
        n--;
    dst[n] = '\0';
}

/* The value of "name:" in INFO text, up to the line end. */
static void info_field(const char *info, size_t len, const char *name, char *dst, size_t cap)
{
    size_t nlen = strlen(name);
    dst[0] = '\0';
    for (size_t i = 0; i + nlen < len; i++) {
        if ((i > 0 && info[i - 1] != '\n') || memcmp(info + i, name, nlen) != 0 ||
            info[i + nlen] != ':')
            continue;
        size_t j = i + nlen + 1, k = 0;
        while (j < len && info[j] != '\r' && info[j] != '\n' && k + 1 < cap)
            dst[k++] = info[j++];
        dst[k] = '\0';
        return;
    }
}

static void finish(check *c)
{
    if (c->abandoned) {
        free(c);
        return;
    }
    if (c->status != 0) {
        c->cb(c->status, NULL, c->udata);
        free(c);
        return;
    }
    zd_durability *d = &c->d;
    /* CONFIG GET is what the operator configured; INFO is the fallback where CONFIG is
     * renamed away or denied by an ACL. */
    if (!d->appendonly[0] && c->info_aof[0]) {
        snprintf(d->appendonly, sizeof(d->appendonly), "%s",
                 strcmp(c->info_aof, "1") == 0 ? "yes" : "no");
        d->from_info = true;
    }
    if (!d->policy[0] && c->info_policy[0]) {
        snprintf(d->policy, sizeof(d->policy), "%s", c->info_policy);
        d->from_info = true;
    }
    zd_durability_judge(d);
    if (!d->known)
        snprintf(d->problem, sizeof(d->problem),
                 "cannot tell whether it keeps zhida's data: CONFIG GET answered \"%s\" and INFO "
                 "answered \"%s\"",
                 d->config_error[0] ? d->config_error : "no appendonly or maxmemory-policy",
                 c->info_error[0] ? c->info_error : "no aof_enabled or maxmemory_policy");
    c->cb(0, d, c->udata);
    free(c);
}

static void config_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    check *c = udata;
    if (status != 0) {
        c->status = c->status ? c->status : status;
    } else if (zd_reply_is(reply, ZD_REPLY_ARRAY)) {
        /* name, value, name, value — in no particular order. */
        for (size_t i = 0; i + 1 < zd_reply_len(reply); i += 2) {
            const zd_reply *name = zd_reply_at(reply, i), *value = zd_reply_at(reply, i + 1);
            const char *v = zd_reply_str(value, NULL);
            if (!v)
                continue;
            if (zd_reply_eq(name, "appendonly"))
                snprintf(c->d.appendonly, sizeof(c->d.appendonly), "%s", v);
            else if (zd_reply_eq(name, "maxmemory-policy"))
                snprintf(c->d.policy, sizeof(c->d.policy), "%s", v);
        }
    } else {
        copy_error(c->d.config_error, sizeof(c->d.config_error), reply);
    }
    if (--c->pending == 0)
        finish(c);
}

static void info_reply(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    check *c = udata;
    size_t len = 0;
    const char *s = status == 0 ? zd_reply_str(reply, &len) : NULL;
    if (status != 0) {
        c->status = c->status ? c->status : status;
    } else if (zd_reply_is(reply, ZD_REPLY_STRING)) {
        info_field(s, len, "aof_enabled", c->info_aof, sizeof(c->info_aof));
        info_field(s, len, "maxmemory_policy", c->info_policy, sizeof(c->info_policy));
    } else {
        copy_error(c->info_error, sizeof(c->info_error), reply);
    }
    if (--c->pending == 0)
        finish(c);
}

int zd_durability_check(zd_redis *r, zd_durability_cb cb, void *udata)
{
    check *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->cb = cb;
    c->udata = udata;
    int rc = zd_redis_cmd(r, config_reply, c, "CONFIG GET appendonly maxmemory-policy");
    if (rc != 0) {
        free(c);
        return rc;
    }
    c->pending = 1;
    /* Several sections in one INFO: Redis >= 7.0, which zhida requires anyway. */
    rc = zd_redis_cmd(r, info_reply, c, "INFO persistence memory");
    if (rc != 0) {
        c->abandoned = true; /* the CONFIG reply frees c */
        return rc;
    }
    c->pending = 2;
    return 0;
}
