/* Redis key names: the one module that spells them. */
#include "redis/keys.h"

#include <stdio.h>
#include <string.h>

const char *zd_key_profiles(int partition, char *buf)
{
    snprintf(buf, ZD_KEY_MAX, "zd:{p%d}:profiles", partition);
    return buf;
}

const char *zd_key_seq(int partition, char *buf)
{
    snprintf(buf, ZD_KEY_MAX, "zd:{p%d}:seq", partition);
    return buf;
}

const char *zd_key_changes(int partition, char *buf)
{
    snprintf(buf, ZD_KEY_MAX, "zd:{p%d}:changes", partition);
    return buf;
}

const char *zd_key_erase(int partition, char *buf)
{
    snprintf(buf, ZD_KEY_MAX, "zd:{p%d}:erase", partition);
    return buf;
}

const char *zd_key_meta(int partition, char *buf)
{
    snprintf(buf, ZD_KEY_MAX, "zd:{p%d}:meta", partition);
    return buf;
}

const char *zd_key_policy(zd_policy_key k, const char *policy_id, char *buf)
{
    static const char *const suffix[] = {
        [ZD_PK_META] = "meta", [ZD_PK_FUNNEL] = "funnel", [ZD_PK_AUD] = "aud",
        [ZD_PK_WORK] = "work", [ZD_PK_STATE] = "st",      [ZD_PK_RETRY] = "retry",
        [ZD_PK_DEAD] = "dead", [ZD_PK_PACE] = "pace",     [ZD_PK_OUTCOMES] = "out",
    };
    snprintf(buf, ZD_POLICY_KEY_MAX, "zd:{d:%.64s}:%s", policy_id, suffix[k]);
    return buf;
}

const char *zd_key_inbox(int partition, const char *profile_id, char *buf)
{
    snprintf(buf, ZD_INBOX_KEY_MAX, "zd:{p%d}:inbox:%.128s", partition, profile_id);
    return buf;
}

const char *zd_key_inbox_order(int partition, const char *profile_id, char *buf)
{
    snprintf(buf, ZD_INBOX_KEY_MAX, "zd:{p%d}:inboxz:%.128s", partition, profile_id);
    return buf;
}

const char *zd_key_cap(int partition, unsigned gid, char *buf)
{
    snprintf(buf, ZD_KEY_MAX, "zd:{p%d}:cap:%u", partition, gid);
    return buf;
}

const char *zd_key_cap_prefix(int partition, char *buf)
{
    snprintf(buf, ZD_KEY_MAX, "zd:{p%d}:cap:", partition);
    return buf;
}

int zd_key_changes_partition(const char *key, size_t len)
{
    static const char pre[] = "zd:{p", post[] = "}:changes";
    size_t pl = sizeof(pre) - 1, ql = sizeof(post) - 1;
    if (len <= pl + ql || memcmp(key, pre, pl) != 0 || memcmp(key + len - ql, post, ql) != 0)
        return -1;
    int p = 0;
    for (size_t i = pl; i < len - ql; i++) {
        if (key[i] < '0' || key[i] > '9' || p > 100000)
            return -1;
        p = p * 10 + (key[i] - '0');
    }
    return len - ql > pl ? p : -1;
}
