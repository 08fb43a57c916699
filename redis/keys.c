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
