/* Preferences and holdout as delivery applies them (see prefs.h). */
#include "delivery/prefs.h"

#include <errno.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/tz.h"

#define DAY_MS 86400000LL

static bool list_has(const cJSON *list, const char *s)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, list)
    {
        if (cJSON_IsString(v) && strcmp(v->valuestring, s) == 0)
            return true;
    }
    return false;
}

int zd_prefs_quiet_parse(const char *s, int *start, int *end)
{
    int v[4];
    if (!s || strlen(s) != 11 || s[2] != ':' || s[5] != '-' || s[8] != ':')
        return -EINVAL;
    const int at[4] = {0, 3, 6, 9};
    for (int i = 0; i < 4; i++) {
        char a = s[at[i]], b = s[at[i] + 1];
        if (a < '0' || a > '9' || b < '0' || b > '9')
            return -EINVAL;
        v[i] = (a - '0') * 10 + (b - '0');
    }
    if (v[0] > 23 || v[2] > 23 || v[1] > 59 || v[3] > 59)
        return -EINVAL;
    *start = v[0] * 60 + v[1];
    *end = v[2] * 60 + v[3];
    return 0;
}

void zd_prefs_read(const cJSON *prefs, zd_prefs *out)
{
    memset(out, 0, sizeof(*out));
    out->quiet_start = out->quiet_end = -1;
    if (!cJSON_IsObject(prefs))
        return;
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(prefs, "mute_categories");
    out->mute_categories = cJSON_IsArray(j) ? j : NULL;
    j = cJSON_GetObjectItemCaseSensitive(prefs, "mute_gateways");
    out->mute_gateways = cJSON_IsArray(j) ? j : NULL;
    j = cJSON_GetObjectItemCaseSensitive(prefs, "quiet_hours");
    if (cJSON_IsString(j) &&
        zd_prefs_quiet_parse(j->valuestring, &out->quiet_start, &out->quiet_end) != 0)
        out->quiet_start = out->quiet_end = -1;
    j = cJSON_GetObjectItemCaseSensitive(prefs, "timezone");
    out->timezone = cJSON_IsString(j) && j->valuestring[0] ? j->valuestring : NULL;
}

bool zd_prefs_mutes_category(const zd_prefs *p, const char *category)
{
    return p->mute_categories && category && category[0] && list_has(p->mute_categories, category);
}

bool zd_prefs_mutes_gateway(const zd_prefs *p, const char *gateway)
{
    return p->mute_gateways && list_has(p->mute_gateways, gateway);
}

int64_t zd_quiet_until(int start, int end, long off_s, int64_t now_ms)
{
    if (start < 0 || end < 0 || start == end)
        return 0;
    int64_t local = now_ms + (int64_t)off_s * 1000;
    int64_t m = ((local % DAY_MS) + DAY_MS) % DAY_MS; /* ms since local midnight */
    int64_t s = (int64_t)start * 60000, e = (int64_t)end * 60000;
    if (start < end)
        return m >= s && m < e ? now_ms + (e - m) : 0;
    /* Across midnight: from start to the day's end, and from midnight to end. */
    if (m >= s)
        return now_ms + (DAY_MS - m) + e;
    if (m < e)
        return now_ms + (e - m);
    return 0;
}

int64_t zd_prefs_quiet_until(const zd_prefs *p, const char *default_tz, int64_t now_ms)
{
    if (p->quiet_start < 0)
        return 0;
    const char *tz = p->timezone ? p->timezone : default_tz;
    long off = 0;
    if (!tz || zd_tz_offset(tz, now_ms / 1000, &off) != 0)
        return 0;
    return zd_quiet_until(p->quiet_start, p->quiet_end, off, now_ms);
}

static uint64_t fnv1a(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

double zd_holdout_point(const char *policy_id, const char *profile_id)
{
    uint64_t h = 14695981039346656037ULL;
    h = fnv1a(h, policy_id, strlen(policy_id) + 1); /* the NUL separates the two ids */
    h = fnv1a(h, profile_id, strlen(profile_id));
    /* FNV's low bits are weak for short, similar ids: the splitmix64 finalizer spreads them. */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return (double)(h >> 11) * (1.0 / 9007199254740992.0) * 100.0;
}

bool zd_holdout(double percent, const char *policy_id, const char *profile_id)
{
    return percent > 0 && zd_holdout_point(policy_id, profile_id) < percent;
}
