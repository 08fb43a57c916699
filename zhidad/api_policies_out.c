/* POST /v1/policies/{id}/outcomes: applications reported by an app backend, counted per group
 * (treated or held out) so a department can compare uptake (docs/API.md, delivery/outcomes.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/text.h"
#include "delivery/outcomes.h"
#include "zhidad/api_policies.h"
#include "zhidad/config.h"
#include "zhidad/http.h"
#include "zhidad/service.h"

static void outcomes_done(int status, const int *codes, int n, void *udata)
{
    zd_req *req = udata;
    if (status == -ENOENT) {
        zd_api_reply_no_policy(req);
        return;
    }
    if (status != 0) {
        zd_req_reply_error(req, 503, "store_unavailable", "could not record the outcomes");
        return;
    }
    int count[3] = {0, 0, 0};
    for (int k = 0; k < n; k++)
        if (codes[k] >= 0 && codes[k] <= 2)
            count[codes[k]]++;
    cJSON *out = cJSON_CreateObject();
    if (!out) {
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        return;
    }
    cJSON_AddNumberToObject(out, "recorded", count[ZD_OUTCOME_RECORDED]);
    cJSON_AddNumberToObject(out, "repeated", count[ZD_OUTCOME_REPEAT]);
    cJSON_AddNumberToObject(out, "unknown", count[ZD_OUTCOME_UNKNOWN]);
    zd_req_reply_json(req, 200, out);
}

static void handle_outcomes(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    const char *id = zd_req_param(req, "id");
    if (!zd_api_policy_id_ok(req, id))
        return;
    cJSON *j = zd_req_json(req);
    if (!j)
        return;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "profiles");
    const cJSON *v;
    int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : -1;
    const char **ids = NULL;
    if (!cJSON_IsObject(j) || n < 0) {
        zd_req_reply_error(req, 400, "missing_field",
                           "\"profiles\" (an array of profile ids) is required");
        goto done;
    }
    cJSON_ArrayForEach(v, j)
    {
        if (strcmp(v->string, "profiles") != 0) {
            zd_req_reply_error(req, 400, "unknown_field",
                               "unknown field \"%.64s\" (known: profiles)", v->string);
            goto done;
        }
    }
    if (n < 1 || n > ZD_OUTCOMES_MAX) {
        zd_req_reply_error(req, 400, "invalid_value", "\"profiles\" must hold 1-%d profile ids",
                           ZD_OUTCOMES_MAX);
        goto done;
    }
    if (!(ids = calloc((size_t)n, sizeof(char *)))) {
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        goto done;
    }
    int k = 0;
    cJSON_ArrayForEach(v, list)
    {
        if (!cJSON_IsString(v) || !zd_id_valid(v->valuestring, strlen(v->valuestring))) {
            zd_req_reply_error(req, 400, "invalid_value",
                               "profiles[%d] must be a profile id: 1-128 characters of "
                               "[A-Za-z0-9_.:-]",
                               k);
            goto done;
        }
        ids[k++] = v->valuestring;
    }
    if (zd_outcomes_report(svc->redis, svc->cfg->partitions, id, ids, n, outcomes_done, req) != 0)
        zd_req_reply_error(req, 503, "store_unavailable", "could not record the outcomes");
done:
    free(ids);
    cJSON_Delete(j);
}

int zd_api_outcomes_register(zd_service *svc)
{
    return zd_http_route(svc->http, "POST", "/v1/policies/{id}/outcomes",
                         ZD_ROLE_APP | ZD_ROLE_ADMIN, handle_outcomes, svc);
}
