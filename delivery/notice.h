/* Notice text: what one profile receives from one policy through one gateway. Today the
 * policy's own title, summary and url; the template language of issue #7 replaces the body of
 * zd_notice_build without changing its callers. Pure: no Redis, no event loop. */
#ifndef ZD_NOTICE_H
#define ZD_NOTICE_H

#include <stddef.h>

#include <zhida/gateway.h>

#include "delivery/policy.h"

struct cJSON;

/* Room for a notice id "policy:profile:gateway" and its NUL. */
#define ZD_NOTICE_ID_MAX (ZD_POLICY_ID_MAX + 1 + 128 + 1 + 32 + 1)

/* Fills *out for policy p, profile profile_id (its document profile_doc, may be NULL: for the
 * templates to come), gateway name gateway and contact to ("" for the inbox), attempt number
 * attempt (1 for the first). The id "policy:profile:gateway" is written into idbuf (capacity
 * ZD_NOTICE_ID_MAX); every other string of *out is borrowed from p or the arguments and valid
 * as long as they are. Returns 0, or -EINVAL when the id does not fit. */
int zd_notice_build(const zd_policy *p, const char *profile_id, const struct cJSON *profile_doc,
                    const char *gateway, const char *to, int attempt, zd_notice *out, char *idbuf);

#endif
