/* Time zones by name (see tz.h): the zone database is read through libc, one zone at a time,
 * and the offsets cached, because switching TZ makes glibc read the zone file again. */
#include "common/tz.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

bool zd_tz_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 64 || name[0] == '/' || strstr(name, ".."))
        return false;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_+-/", *p))
            return false;
    /* Only when the zone database is installed can we tell a typo from a real zone. */
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir)
        dir = "/usr/share/zoneinfo";
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return true;
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

#define TZ_CACHE 32
#define TZ_CACHE_S 60

static struct {
    char name[65];
    int64_t at; /* the t the offset was computed for */
    long off;
} cache[TZ_CACHE];
static unsigned cache_next;

static long offset_now(const char *name, int64_t t)
{
    char *saved = NULL;
    const char *cur = getenv("TZ");
    if (cur)
        saved = strdup(cur);
    setenv("TZ", name, 1);
    tzset();
    time_t tt = (time_t)t;
    struct tm tmv;
    long off = localtime_r(&tt, &tmv) ? tmv.tm_gmtoff : 0;
    /* Put the process's zone back: zd_date_today and logging expect the configured one. */
    if (saved) {
        setenv("TZ", saved, 1);
        free(saved);
    } else {
        unsetenv("TZ");
    }
    tzset();
    return off;
}

int zd_tz_offset(const char *name, int64_t t, long *off_s)
{
    for (int i = 0; i < TZ_CACHE; i++)
        if (cache[i].name[0] && strcmp(cache[i].name, name) == 0 && t >= cache[i].at &&
            t - cache[i].at < TZ_CACHE_S) {
            *off_s = cache[i].off;
            return 0;
        }
    if (!zd_tz_valid(name))
        return -EINVAL;
    long off = offset_now(name, t);
    int slot = -1;
    for (int i = 0; i < TZ_CACHE && slot < 0; i++)
        if (strcmp(cache[i].name, name) == 0)
            slot = i;
    if (slot < 0)
        slot = (int)(cache_next++ % TZ_CACHE);
    snprintf(cache[slot].name, sizeof(cache[slot].name), "%s", name);
    cache[slot].at = t;
    cache[slot].off = off;
    *off_s = off;
    return 0;
}
