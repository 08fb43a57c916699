/* A recipient's preferences as delivery applies them (SPEC §4; docs/DESIGN.md "Preferences"):
 * muted categories and gateways, quiet hours in the profile's time zone, and the policy's
 * holdout share. Pure: no Redis, no event loop (the zone offset comes from common/tz.h). */
#ifndef ZD_DELIVERY_PREFS_H
#define ZD_DELIVERY_PREFS_H

#include <stdbool.h>
#include <stdint.h>

struct cJSON;

/* A profile's "prefs" object read for delivery; every pointer borrows the profile's JSON. */
typedef struct zd_prefs {
    const struct cJSON *mute_categories, *mute_gateways; /* arrays of strings, or NULL */
    int quiet_start, quiet_end; /* minutes of the day; -1: no quiet hours */
    const char *timezone;       /* the profile's zone, NULL: the configured one */
} zd_prefs;

/* Reads prefs (the "prefs" object of a stored profile, or NULL) into *out. */
void zd_prefs_read(const struct cJSON *prefs, zd_prefs *out);

/* Whether the profile muted the category / the gateway name. */
bool zd_prefs_mutes_category(const zd_prefs *p, const char *category);
bool zd_prefs_mutes_gateway(const zd_prefs *p, const char *gateway);

/* "HH:MM-HH:MM" into minutes of the day: 0, or -EINVAL. */
int zd_prefs_quiet_parse(const char *s, int *start, int *end);

/* When a window [start, end) of local minutes (across midnight when start > end; empty when
 * start == end) that holds now ends, in Unix ms; 0 when now (Unix ms) is outside it. off_s is
 * the local zone's offset from UTC. The window's end is computed with the offset of now: a
 * daylight-saving change inside the window moves the end by the change. */
int64_t zd_quiet_until(int start, int end, long off_s, int64_t now_ms);

/* The end of the profile's quiet hours in Unix ms when now is inside them, else 0. The zone is
 * the profile's, else default_tz; an unknown zone means no quiet hours (validated on write). */
int64_t zd_prefs_quiet_until(const zd_prefs *p, const char *default_tz, int64_t now_ms);

/* The point in [0, 100) of (policy, profile) that holdout compares with its percent: a hash of
 * both ids, stable across restarts, instances and republishing the same id. */
double zd_holdout_point(const char *policy_id, const char *profile_id);

/* Whether the profile is held out of the policy's audience (percent 0-50). */
bool zd_holdout(double percent, const char *policy_id, const char *profile_id);

#endif
