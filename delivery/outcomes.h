/* Reported applications of a policy's recipients (POST /v1/policies/{id}/outcomes), counted
 * per group — treated (sent) or holdout (held out by the policy's holdout_percent) — so a
 * department can compare uptake (docs/DESIGN.md "Measuring uptake"). */
#ifndef ZD_DELIVERY_OUTCOMES_H
#define ZD_DELIVERY_OUTCOMES_H

#include <stdint.h>

#include "redis/redis.h"

#define ZD_OUTCOMES_MAX 1000 /* profiles per request */

/* Per profile: */
enum {
    ZD_OUTCOME_UNKNOWN = 0,  /* not (yet) a recipient: no notice state for it */
    ZD_OUTCOME_RECORDED = 1, /* counted now */
    ZD_OUTCOME_REPEAT = 2,   /* counted before (idempotent per profile) */
};

/* status 0 and codes[n] (valid only during the callback), or -ENOENT for no such policy, or a
 * negative Redis error. */
typedef void (*zd_outcomes_cb)(int status, const int *codes, int n, void *udata);

/* Records an application of each profile gid (borrowed, 0 <= n <= ZD_OUTCOMES_MAX) in policy_id's
 * slot: the group is read from the profile's notice state of route 0 (h = holdout, any other
 * state = treated); a profile without one is answered unknown and not counted. 0, or
 * -ENOMEM / a send error (cb not called). */
int zd_outcomes_record(zd_redis *r, const char *policy_id, const uint32_t *gids, int n,
                       zd_outcomes_cb cb, void *udata);

/* The same for profile ids (borrowed, n <= ZD_OUTCOMES_MAX, valid ids): their index ids are
 * read from their partitions' profile hashes first (a profile that does not exist is unknown).
 * codes follow the order of ids. */
int zd_outcomes_report(zd_redis *r, int partitions, const char *policy_id, const char *const *ids,
                       int n, zd_outcomes_cb cb, void *udata);

#endif
