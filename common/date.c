/* Day-number calendar arithmetic (Howard Hinnant's civil-from-days algorithm). */
#include "common/date.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int32_t zd_date_from_ymd(int y, int m, int d)
{
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (unsigned)((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1);
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int32_t)(era * 146097 + (int)doe - 719468);
}

void zd_date_to_ymd(int32_t days, int *y, int *m, int *d)
{
    int z = days + 719468;
    const int era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)yoe + era * 400 + (*m <= 2);
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

int zd_date_parse(const char *s, int32_t *days)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return -EINVAL;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return -EINVAL;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0');
    int d = (s[8] - '0') * 10 + (s[9] - '0');
    if (y < 1000 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
        return -EINVAL;
    *days = zd_date_from_ymd(y, m, d);
    return 0;
}

void zd_date_format(int32_t days, char out[11])
{
    int y, m, d;
    zd_date_to_ymd(days, &y, &m, &d);
    unsigned uy = (unsigned)(y < 0 ? 0 : y % 10000);
    out[0] = (char)('0' + uy / 1000);
    out[1] = (char)('0' + uy / 100 % 10);
    out[2] = (char)('0' + uy / 10 % 10);
    out[3] = (char)('0' + uy % 10);
    out[4] = '-';
    out[5] = (char)('0' + m / 10);
    out[6] = (char)('0' + m % 10);
    out[7] = '-';
    out[8] = (char)('0' + d / 10);
    out[9] = (char)('0' + d % 10);
    out[10] = '\0';
}

int zd_date_age(int32_t birth, int32_t today)
{
    int by, bm, bd, ty, tm, td;
    zd_date_to_ymd(birth, &by, &bm, &bd);
    zd_date_to_ymd(today, &ty, &tm, &td);
    int age = ty - by;
    if (tm < bm || (tm == bm && td < bd))
        age--;
    return age;
}

int32_t zd_date_age_threshold(int32_t today, int years)
{
    int ty, tm, td;
    zd_date_to_ymd(today, &ty, &tm, &td);
    int y = ty - years;
    /* age >= years  <=>  (b.month, b.day) <= (tm, td) in year ty - years, or earlier years.
     * Clamp 29 February to the 28th when that year is not a leap year. */
    if (td > days_in_month(y, tm))
        td = days_in_month(y, tm);
    return zd_date_from_ymd(y, tm, td);
}

int32_t zd_date_today(const char *tz)
{
    const char *fake = getenv("ZHIDA_TODAY");
    int32_t days;
    if (fake && zd_date_parse(fake, &days) == 0)
        return days;
    /* Setting TZ is process-wide; zhidad uses a single configured zone, so this is stable. */
    if (tz && *tz) {
        const char *cur = getenv("TZ");
        if (!cur || strcmp(cur, tz) != 0) {
            setenv("TZ", tz, 1);
            tzset();
        }
    }
    time_t now = time(NULL);
    struct tm tmv;
    localtime_r(&now, &tmv);
    return zd_date_from_ymd(tmv.tm_year + 1900, tmv.tm_mon + 1, tmv.tm_mday);
}

/* ---- RFC 3339 times ---- */

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

int zd_rfc3339_parse(const char *s, int64_t *ms)
{
    /* YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM); the offset is required, so the instant never
     * depends on the server's time zone. */
    size_t len = strlen(s);
    int y, mo, d, h, mi, sec, oh = 0, om = 0;
    if (len < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec))
        return -EINVAL;
    char ymd[11];
    snprintf(ymd, sizeof(ymd), "%.10s", s);
    int32_t days;
    if (zd_date_parse(ymd, &days) != 0 || h > 23 || mi > 59 || sec > 60)
        return -EINVAL;
    if (sec == 60) /* a leap second: the next instant */
        sec = 59;
    const char *p = s + 19;
    int frac_ms = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        while (*p >= '0' && *p <= '9') {
            if (n < 3)
                frac_ms = frac_ms * 10 + (*p - '0');
            n++;
            p++;
        }
        if (n == 0 || n > 9)
            return -EINVAL;
        for (; n < 3; n++)
            frac_ms *= 10;
    }
    int sign = 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        sign = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && digits(p + 1, 2, &oh) && p[3] == ':' &&
               digits(p + 4, 2, &om) && oh <= 23 && om <= 59) {
        sign = *p == '+' ? 1 : -1;
    } else {
        return -EINVAL;
    }
    int64_t t = (int64_t)days * 86400 + h * 3600 + mi * 60 + sec;
    t -= sign * (oh * 3600 + om * 60);
    *ms = t * 1000 + frac_ms;
    return 0;
}

void zd_rfc3339_format(int64_t ms, char out[32])
{
    int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t rem = secs - days * 86400;
    int y, m, d;
    zd_date_to_ymd((int32_t)days, &y, &m, &d);
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d, (int)(rem / 3600),
             (int)(rem / 60 % 60), (int)(rem % 60), (int)(ms - secs * 1000));
}
