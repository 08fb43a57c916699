/* Notice text from a policy (issue #7's templates slot in here). */
#include "delivery/notice.h"

#include <errno.h>
#include <stdio.h>

int zd_notice_build(const zd_policy *p, const char *profile_id, const struct cJSON *profile_doc,
                    const char *gateway, const char *to, int attempt, zd_notice *out, char *idbuf)
{
    (void)profile_doc; /* the templates' fields.*, attrs.* */
    int n = snprintf(idbuf, ZD_NOTICE_ID_MAX, "%s:%s:%s", p->id, profile_id, gateway);
    if (n < 0 || n >= ZD_NOTICE_ID_MAX)
        return -EINVAL;
    *out = (zd_notice){
        .id = idbuf,
        .policy = p->id,
        .profile = profile_id,
        .gateway = gateway,
        .to = to ? to : "",
        .title = p->title ? p->title : "",
        .body = p->summary ? p->summary : "",
        .url = p->url ? p->url : "",
        .category = p->category ? p->category : "",
        .urgent = p->urgent ? 1 : 0,
        .attempt = attempt,
    };
    return 0;
}
