/* The inbox endpoints (SPEC §5): GET /v1/profiles/{id}/inbox, POST .../inbox/{notice_id}:read,
 * .../inbox:read-all and .../inbox/{notice_id}:feedback. Checks the request and answers; the
 * reads, writes and funnel counts are delivery/inbox.c's. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"
#include "delivery/inbox.h"
#include "zhidad/api.h"
#include "zhidad/http.h"
#include "zhidad/service.h"

static bool check_ids(zd_req *req, bool notice)
{
    const char *id = zd_req_param(req, "id");
    if (!id || !zd_id_valid(id, strlen(id))) {
        zd_req_reply_error(req, 400, "invalid_id",
                           "profile id must be 1-128 characters of [A-Za-z0-9_.:-]");
        return false;
    }
    const char *nid = notice ? zd_req_param(req, "notice_id") : NULL;
    if (notice && (!nid || !zd_inbox_notice_id_valid(nid))) {
        zd_error err;
        zd_error_set(&err, "invalid_id", "notice_id",
                     "notice id must be \"policy:profile:gateway\" (a policy id of 1-64 "
                     "[A-Za-z0-9._-], a profile id, a gateway name)");
        zd_req_reply_zderror(req, 400, &err);
        return false;
    }
    return true;
}

static void answered(int status, zd_inbox_found found, cJSON *answer, void *udata)
{
    zd_req *req = udata;
    if (status)
        zd_req_reply_error(req, status == -ENOMEM ? 500 : 503,
                           status == -ENOMEM ? "out_of_memory" : "store_unavailable",
                           "the inbox store did not answer (%s); retrying is safe",
                           zd_strerror(status));
    else if (found == ZD_INBOX_NO_PROFILE)
        zd_req_reply_error(req, 404, "not_found", "no profile with this id");
    else if (found == ZD_INBOX_NO_NOTICE)
        zd_req_reply_error(req, 404, "not_found", "no such notice in this profile's inbox");
    else
        zd_req_reply_json(req, 200, answer);
}

static void started(zd_req *req, int rc)
{
    if (rc)
        answered(rc, ZD_INBOX_FOUND, NULL, req);
}

static void handle_list(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    if (!check_ids(req, false))
        return;
    int limit;
    const char *cursor;
    if (!zd_api_list_query(req, &limit, &cursor))
        return;
    int rc = zd_inbox_list(svc->inbox, zd_req_param(req, "id"), cursor, limit, answered, req);
    if (rc == -EINVAL)
        zd_api_reply_bad_cursor(req);
    else
        started(req, rc);
}

static void handle_read(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    if (check_ids(req, true))
        started(req, zd_inbox_read(svc->inbox, zd_req_param(req, "id"),
                                   zd_req_param(req, "notice_id"), answered, req));
}

static void handle_read_all(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    if (check_ids(req, false))
        started(req, zd_inbox_read_all(svc->inbox, zd_req_param(req, "id"), answered, req));
}

static void handle_feedback(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    if (!check_ids(req, true))
        return;
    cJSON *body = zd_req_json(req);
    if (!body)
        return;
    zd_error err;
    const cJSON *m, *useful = NULL, *reason = NULL;
    int bad = 0;
    cJSON_ArrayForEach(m, body)
    {
        if (strcmp(m->string, "useful") == 0)
            useful = m;
        else if (strcmp(m->string, "reason") == 0)
            reason = m;
        else if (!bad++)
            zd_error_set(&err, "unknown_field", m->string,
                         "unknown member \"%.64s\" (feedback has \"useful\" and \"reason\")",
                         m->string);
    }
    if (!bad && !useful)
        bad =
            zd_error_set(&err, "missing_field", "useful", "\"useful\" (true or false) is required");
    else if (!bad && !cJSON_IsBool(useful))
        bad = zd_error_set(&err, "invalid_type", "useful", "\"useful\" must be true or false");
    else if (!bad && reason && !cJSON_IsString(reason) && !cJSON_IsNull(reason))
        bad = zd_error_set(&err, "invalid_type", "reason", "\"reason\" must be a string");
    else if (!bad && cJSON_IsString(reason) && strlen(reason->valuestring) > ZD_INBOX_REASON_MAX)
        bad = zd_error_set(&err, "out_of_range", "reason", "\"reason\" must be at most %d bytes",
                           ZD_INBOX_REASON_MAX);
    if (bad) {
        zd_req_reply_zderror(req, 400, &err);
        cJSON_Delete(body);
        return;
    }
    const char *why = cJSON_IsString(reason) ? reason->valuestring : "";
    started(req,
            zd_inbox_feedback(svc->inbox, zd_req_param(req, "id"), zd_req_param(req, "notice_id"),
                              cJSON_IsTrue(useful), why, answered, req));
    cJSON_Delete(body);
}

int zd_api_inbox_register(zd_service *svc)
{
    /* Inbox items are personalized text (names, companies): the roles that may read a
     * profile, not the viewer, as for GET /v1/profiles/{id}. */
    unsigned roles = ZD_ROLE_APP | ZD_ROLE_ADMIN;
    int rc = 0;
    rc |= zd_http_route(svc->http, "GET", "/v1/profiles/{id}/inbox", roles, handle_list, svc);
    rc |= zd_http_route(svc->http, "POST", "/v1/profiles/{id}/inbox/{notice_id}:read", roles,
                        handle_read, svc);
    rc |= zd_http_route(svc->http, "POST", "/v1/profiles/{id}/inbox:read-all", roles,
                        handle_read_all, svc);
    rc |= zd_http_route(svc->http, "POST", "/v1/profiles/{id}/inbox/{notice_id}:feedback", roles,
                        handle_feedback, svc);
    return rc ? -EINVAL : 0;
}
