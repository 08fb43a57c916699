/* Calendar dates as day numbers (days since 1970-01-01, proleptic Gregorian), full-year ages,
 * and "today" in a configured time zone. Plain arithmetic, no locale. */
#ifndef ZD_DATE_H
#define ZD_DATE_H

#include <stdint.h>

/* Parses exactly "YYYY-MM-DD" (year 1000-9999) into a day number. 0 or -EINVAL. */
int zd_date_parse(const char *s, int32_t *days);
/* Writes "YYYY-MM-DD" into out (11 bytes). */
void zd_date_format(int32_t days, char out[11]);
int32_t zd_date_from_ymd(int y, int m, int d);
void zd_date_to_ymd(int32_t days, int *y, int *m, int *d);

/* Full years from birth to today (negative if birth is after today). A person born on
 * 29 February has a birthday on 1 March in non-leap years. */
int zd_date_age(int32_t birth, int32_t today);

/* The latest birth date whose age on `today` is >= years: age(b, today) >= years  <=>
 * b <= zd_date_age_threshold(today, years). */
int32_t zd_date_age_threshold(int32_t today, int years);

/* Today's day number in the IANA time zone tz (e.g. "Asia/Shanghai"). The environment variable
 * ZHIDA_TODAY=YYYY-MM-DD overrides it (tests and reproducible demos). */
int32_t zd_date_today(const char *tz);

/* An RFC 3339 time with its offset required ("2021-06-01T09:00:00+08:00", "...Z", fractions of
 * a second to ms) into Unix milliseconds: 0 or -EINVAL. */
int zd_rfc3339_parse(const char *s, int64_t *ms);
/* Unix milliseconds as "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (32 bytes). */
void zd_rfc3339_format(int64_t ms, char out[32]);

#endif
