/* delivery/prefs.c and common/tz.c: quiet-hour windows (across midnight, in two zones), mutes
 * and the holdout hash's share and stability, on pinned clocks. */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "common/tz.h"
#include "delivery/prefs.h"

/* 2021-06-01 00:00:00 UTC */
#define T0 1622505600000LL
#define MIN 60000LL

static void test_windows(void)
{
    int s, e;
    CHECK_INT(zd_prefs_quiet_parse("22:00-08:00", &s, &e), 0);
    CHECK_INT(s, 22 * 60);
    CHECK_INT(e, 8 * 60);
    CHECK(zd_prefs_quiet_parse("24:00-08:00", &s, &e) != 0);
    CHECK(zd_prefs_quiet_parse("2200-0800", &s, &e) != 0);
    /* UTC+8: 00:00 UTC is 08:00 local. Across midnight 22:00-08:00: 07:59 local is inside. */
    long sh = 8 * 3600;
    CHECK(zd_quiet_until(22 * 60, 8 * 60, sh, T0 - MIN) == T0);
    CHECK(zd_quiet_until(22 * 60, 8 * 60, sh, T0) == 0);
    /* 23:00 local (15:00 UTC the day before): until 08:00 local, 9 hours later. */
    CHECK(zd_quiet_until(22 * 60, 8 * 60, sh, T0 - 9 * 60 * MIN) == T0);
    CHECK(zd_quiet_until(22 * 60, 8 * 60, sh, T0 - 10 * 60 * MIN) == T0);
    CHECK(zd_quiet_until(22 * 60, 8 * 60, sh, T0 - 11 * 60 * MIN) == 0);
    /* A window within a day, and the empty one. */
    CHECK(zd_quiet_until(7 * 60, 9 * 60, sh, T0) == T0 + 60 * MIN);
    CHECK(zd_quiet_until(8 * 60, 8 * 60, sh, T0) == 0);
    /* UTC-4 (New York in June): 00:00 UTC is 20:00 local. */
    CHECK(zd_quiet_until(19 * 60, 21 * 60, -4 * 3600, T0) == T0 + 60 * MIN);
}

static void test_zones(void)
{
    long off = 0;
    CHECK_INT(zd_tz_offset("Asia/Shanghai", T0 / 1000, &off), 0);
    CHECK_INT(off, 8 * 3600);
    CHECK_INT(zd_tz_offset("America/New_York", T0 / 1000, &off), 0);
    CHECK_INT(off, -4 * 3600);
    /* January: standard time (a fresh computation, past the cache's minute). */
    CHECK_INT(zd_tz_offset("America/New_York", 1609459200, &off), 0);
    CHECK_INT(off, -5 * 3600);
    CHECK(zd_tz_offset("Mars/Olympus", T0 / 1000, &off) != 0);
    CHECK(zd_tz_offset("../etc/passwd", T0 / 1000, &off) != 0);
    CHECK(!zd_tz_valid("/etc/localtime"));
    CHECK(zd_tz_valid("UTC"));
    /* Through a profile's prefs: its own zone, else the default. */
    cJSON *p = cJSON_Parse("{\"quiet_hours\": \"19:00-21:00\", \"timezone\": \"America/New_York\","
                           "\"mute_categories\": [\"tax\"], \"mute_gateways\": [\"sms\"]}");
    zd_prefs pr;
    zd_prefs_read(p, &pr);
    CHECK(zd_prefs_quiet_until(&pr, "Asia/Shanghai", T0) == T0 + 60 * MIN);
    CHECK(zd_prefs_mutes_category(&pr, "tax") && !zd_prefs_mutes_category(&pr, "employment"));
    CHECK(zd_prefs_mutes_gateway(&pr, "sms") && !zd_prefs_mutes_gateway(&pr, "zlb"));
    cJSON_DeleteItemFromObject(p, "timezone");
    zd_prefs_read(p, &pr);
    CHECK(zd_prefs_quiet_until(&pr, "Asia/Shanghai", T0) == 0);
    cJSON_Delete(p);
}

static void test_holdout(void)
{
    char id[32];
    int held = 0;
    for (int i = 0; i < 100000; i++) {
        snprintf(id, sizeof(id), "e%07d", i);
        bool h = zd_holdout(12.5, "hz-2021-wengang", id);
        CHECK(h == zd_holdout(12.5, "hz-2021-wengang", id));
        held += h;
    }
    CHECK(held > 12000 && held < 13000);
    CHECK(!zd_holdout(0, "p", "x"));
    double a = zd_holdout_point("p1", "x"), b = zd_holdout_point("p2", "x");
    CHECK(a >= 0 && a < 100 && b >= 0 && b < 100 && a != b);
}

int main(void)
{
    test_windows();
    test_zones();
    test_holdout();
    return check_report("prefs");
}
