/* GET /v1/audit: the audit stream newest first, a page at a time, for admins. Records hold key
 * names, roles, actions and targets (segment names, partition/dense ids of deleted profiles),
 * never personal data; admin only all the same, since key names and who did what are an
 * operator's business. */
#include <cjson/cJSON.h>
#include <string.h>

#include "zhidad/api.h"
#include "zhidad/audit.h"
#include "zhidad/http.h"
#include "zhidad/service.h"

#define ACTION_MAX 64

/* Actions are dotted lower-case words ("segment.put", "key.use"). */
static bool action_ok(const char *a)
{
    size_t n = strlen(a);
    bool ok = n >= 1 && n <= ACTION_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = (a[i] >= 'a' && a[i] <= 'z') || (a[i] >= '0' && a[i] <= '9') || a[i] == '.' ||
             a[i] == '_' || a[i] == '-';
    return ok;
}

static void audit_page(int status, const zd_audit_record *recs, int n, const char *next_cursor,
                       void *udata)
{
    zd_req *req = udata;
    if (status != 0) {
        zd_req_reply_error(req, 503, "store_unavailable", "could not read the audit stream");
        return;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(out, "records");
    for (int i = 0; i < n && list; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddItemToArray(list, r);
        cJSON_AddStringToObject(r, "id", recs[i].id);
        cJSON_AddStringToObject(r, "time", recs[i].time);
        cJSON_AddStringToObject(r, "action", recs[i].action);
        cJSON_AddStringToObject(r, "key", recs[i].key);
        cJSON_AddStringToObject(r, "role", recs[i].role);
        cJSON_AddStringToObject(r, "target", recs[i].target);
    }
    if (next_cursor)
        cJSON_AddStringToObject(out, "next_cursor", next_cursor);
    else
        cJSON_AddNullToObject(out, "next_cursor");
    zd_req_reply_json(req, 200, out);
}

static void handle_audit(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    int limit;
    const char *cursor;
    if (!zd_api_list_query(req, &limit, &cursor))
        return;
    const char *action = zd_req_query(req, "action");
    if (action && !action_ok(action)) {
        zd_error err;
        zd_error_set(&err, "invalid_value", "action",
                     "\"action\" must be an action name such as segment.put (1-%d characters "
                     "of [a-z0-9._-])",
                     ACTION_MAX);
        zd_req_reply_zderror(req, 400, &err);
        return;
    }
    int rc = zd_audit_read(svc->redis, cursor, action, limit, audit_page, req);
    if (rc == -EINVAL)
        zd_api_reply_bad_cursor(req);
    else if (rc != 0)
        zd_req_reply_error(req, 503, "store_unavailable", "could not read the audit stream");
}

int zd_api_audit_register(zd_service *svc)
{
    return zd_http_route(svc->http, "GET", "/v1/audit", ZD_ROLE_ADMIN, handle_audit, svc);
}
