/* Day-number calendar arithmetic (Howard Hinnant's civil-from-days algorithm). */
#include "common/date.h"

#include <errno.h>
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
