/* IANA time zones by name: validation against the installed zone database, and a zone's UTC
 * offset at a moment. libc only (tzset/localtime_r with TZ set), so callers share one
 * process-wide TZ: zhidad is single-threaded, and every user here sets the zone it needs
 * before asking (zd_date_today too). */
#ifndef ZD_TZ_H
#define ZD_TZ_H

#include <stdbool.h>
#include <stdint.h>

/* Whether name is an IANA zone name ("Asia/Shanghai"): [A-Za-z0-9_+-/], no "..", not absolute,
 * and a file of the zone database (TZDIR or /usr/share/zoneinfo) when that database is
 * installed. */
bool zd_tz_valid(const char *name);

/* The offset of zone name from UTC at Unix time t, in seconds (east positive): 0 and *off_s,
 * or -EINVAL for a name zd_tz_valid refuses. Answers are cached per zone for 60 s of t (a
 * daylight-saving change is seen up to a minute late); TZ is restored afterwards. */
int zd_tz_offset(const char *name, int64_t t, long *off_s);

#endif
