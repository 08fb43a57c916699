/* Audit records go to one capped stream; see docs/DESIGN.md for what each action carries. */
#include "zhidad/audit.h"

#include <errno.h>

#include "common/log.h"
#include "redis/keys.h"

#define AUDIT_MAXLEN 1000000

static void audit_done(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    const char *action = udata;
    /* The action only: a record's target may be a profile id, which stays out of logs. */
    if (status != 0 || zd_reply_is(reply, ZD_REPLY_ERROR))
        zd_warn("audit: could not append a %s record (%s)", action,
                zd_strerror(status ? status : -EIO));
}

void zd_audit(zd_redis *r, const char *action, const char *key_name, const char *role,
              const char *target)
{
    if (zd_redis_cmd(r, audit_done, (void *)action,
                     "XADD %s MAXLEN ~ %d * action %s key %s role %s target %s", ZD_KEY_AUDIT,
                     AUDIT_MAXLEN, action, key_name, role, target ? target : "") != 0)
        zd_warn("audit: could not queue a %s record", action);
}

void zd_audit_req(zd_redis *r, zd_req *req, const char *action, const char *target)
{
    const zd_apikey *k = zd_req_key(req);
    zd_audit(r, action, k ? k->name : "-", k ? zd_role_name(k->role) : "none", target);
}
