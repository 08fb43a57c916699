/* The policy calculator (GET /v1/profiles/{id}/policies, issue #7): which of the policies that
 * are live now (status "active" or "dispatching", deadline not passed) one profile is eligible
 * for. The live set's documents and compiled effective rules are cached across requests (a
 * policy's document never changes after publish) and matched through the reverse matcher's
 * index over rules (matcher/policy_index.h), so a request costs one SMEMBERS, the index lookup
 * and one status read per candidate, not a compile of every rule. */
#ifndef ZD_CALCULATOR_H
#define ZD_CALCULATOR_H

#include <stdint.h>

#include "delivery/policy.h"
#include "matcher/rule.h"
#include "profiles/schema.h"
#include "redis/redis.h"

typedef struct zd_calc zd_calc;

/* r and schema are borrowed and must outlive the calculator. NULL on ENOMEM. */
zd_calc *zd_calc_new(zd_redis *r, const zd_schema *schema);
/* zd_calc_free(NULL) is a no-op. Requests in flight keep what they use alive. */
void zd_calc_free(zd_calc *c);

/* One eligible policy: its stored document and compiled effective rule (both valid only
 * during the callback). */
typedef struct zd_calc_hit {
    const zd_policy *doc;
    const zd_rule *eff;
    zd_policy_status status;
} zd_calc_hit;

/* status 0 and the eligible policies (in no particular order), or a negative code. */
typedef void (*zd_calc_cb)(int status, const zd_calc_hit *hits, int n, void *udata);

/* The live policies p (borrowed: must stay valid until cb) satisfies on day `today`; scope:
 * NULL for every policy, else only those published with exactly that scope. Returns 0 (cb
 * called later, exactly once) or a negative code (cb not called). */
int zd_calc_match(zd_calc *c, const zd_profile *p, int32_t today, const char *scope, zd_calc_cb cb,
                  void *udata);

#endif
