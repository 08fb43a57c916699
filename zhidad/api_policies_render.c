/* POST /v1/policies:render {"policy": {...}, "profile_id": "..."}: the notice one profile would
 * receive from a policy body, for every gateway of its routes: the rendered title and body
 * (as the gateway receives them), and for SMS gateways the characters and segments.
 * The policy is checked exactly as a publish checks it; nothing is stored or sent. A profile
 * outside a publisher's scope does not exist for it (404, as a missing one). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common/date.h"
#include "common/text.h"
#include "delivery/gateways.h"
#include "delivery/notice.h"
#include "matcher/reasons.h"
#include "matcher/rule.h"
#include "profiles/store.h"
#include "zhidad/api.h"
#include "zhidad/api_policies.h"
#include "zhidad/http.h"
#include "zhidad/service.h"

typedef struct render_op {
    zd_service *svc;
    zd_req *req;
    zd_policy *p;        /* owned */
    zd_rule *eff;        /* owned: the effective rule */
    zd_notice_tpls *tpl; /* owned */
    char *profile_id;    /* owned */
} render_op;

static void render_op_free(render_op *op)
{
    zd_policy_free(op->p);
    zd_rule_free(op->eff);
    zd_notice_tpls_free(op->tpl);
    free(op->profile_id);
    free(op);
}

void zd_api_add_sms_count(cJSON *o, const char *text)
{
    struct zd_sms_count c;
    if (zd_sms_count(text, strlen(text), &c) != 0)
        return;
    cJSON *s = cJSON_AddObjectToObject(o, "sms");
    cJSON_AddNumberToObject(s, "characters", (double)c.chars);
    cJSON_AddStringToObject(s, "encoding", c.ucs2 ? "ucs2" : "gsm7");
    cJSON_AddNumberToObject(s, "segments", c.segments);
}

cJSON *zd_api_render_notices(zd_service *svc, const zd_policy *p, const zd_notice_tpls *tpl,
                             const char *profile_id, const cJSON *doc, const char *reasons)
{
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return NULL;
    zd_notice_data nd = {.tpls = tpl,
                         .fields = cJSON_GetObjectItemCaseSensitive(doc, "fields"),
                         .profile = doc,
                         .reasons = reasons};
    for (int r = 0; r < p->nroutes; r++) {
        for (int g = 0; g < p->routes[r].n; g++) {
            const char *name = p->routes[r].gateways[g];
            int gi = zd_gateways_index(svc->gateways, name);
            const char *type = zd_gateways_type(svc->gateways, gi);
            nd.escape = zd_escape_for_type(type);
            zd_notice n;
            char id[ZD_NOTICE_ID_MAX];
            char *text = NULL;
            if (zd_notice_build(p, profile_id, &nd, name, "", 1, &n, id, &text) != 0) {
                cJSON_Delete(arr);
                return NULL;
            }
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToArray(arr, o);
            cJSON_AddNumberToObject(o, "route", r);
            cJSON_AddStringToObject(o, "gateway", name);
            cJSON_AddStringToObject(o, "type", type ? type : "");
            cJSON_AddStringToObject(o, "title", n.title);
            cJSON_AddStringToObject(o, "body", n.body);
            if (type && strcmp(type, "sms_http") == 0)
                zd_api_add_sms_count(o, n.body);
            free(text);
        }
    }
    return arr;
}

static void reply_no_profile(zd_req *req)
{
    zd_req_reply_error(req, 404, "not_found", "no profile with this id");
}

static void render_got(int status, const char *json, size_t len, uint32_t gid, uint64_t version,
                       void *udata)
{
    (void)gid;
    (void)version;
    render_op *op = udata;
    zd_service *svc = op->svc;
    zd_profile *prof = NULL;
    zd_error err;
    int32_t today = zd_date_today(svc->cfg->timezone);
    const char *scope = zd_api_caller_scope(op->req);
    if (status != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not read the profile");
    } else if (!json) {
        reply_no_profile(op->req);
    } else if (zd_profile_parse(svc->cfg->schema, op->profile_id, json, len, &prof, &err) != 0) {
        zd_req_reply_zderror(op->req, 500, &err);
    } else if (scope && scope[0] &&
               (!prof->vals[ZD_ATTR_REGION].present || !prof->vals[ZD_ATTR_REGION].str ||
                strncmp(prof->vals[ZD_ATTR_REGION].str, scope, strlen(scope)) != 0)) {
        /* Outside the publisher's scope the profile does not exist for it. */
        reply_no_profile(op->req);
    } else {
        char reasons[2048];
        zd_rule_reasons(op->eff, prof, today, &svc->names.names, op->p->reason_texts, "，", reasons,
                        sizeof(reasons));
        cJSON *out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "profile_id", op->profile_id);
        cJSON_AddBoolToObject(out, "match", zd_rule_match(op->eff, prof, today));
        cJSON_AddItemToObject(
            out, "reasons",
            zd_rule_reasons_json(op->eff, prof, today, &svc->names.names, op->p->reason_texts));
        cJSON *ns = zd_api_render_notices(svc, op->p, op->tpl, op->profile_id, prof->doc,
                                          reasons[0] ? reasons : NULL);
        if (!ns) {
            cJSON_Delete(out);
            zd_req_reply_error(op->req, 500, "out_of_memory", "out of memory");
        } else {
            cJSON_AddItemToObject(out, "notices", ns);
            zd_req_reply_json(op->req, 200, out);
        }
    }
    zd_profile_free(prof);
    render_op_free(op);
}

void zd_api_policy_render(zd_service *svc, zd_req *req, zd_policy *p, zd_rule *eff,
                          const char *profile_id)
{
    render_op *op = calloc(1, sizeof(*op));
    if (!op || !(op->profile_id = strdup(profile_id))) {
        free(op);
        zd_policy_free(p);
        zd_rule_free(eff);
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        return;
    }
    op->svc = svc;
    op->req = req;
    op->p = p;
    op->eff = eff;
    if (zd_notice_tpls_new(p, svc->cfg->schema, &op->tpl) != 0) {
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        render_op_free(op);
        return;
    }
    if (zd_store_get(svc->store, profile_id, render_got, op) != 0) {
        zd_req_reply_error(req, 503, "store_unavailable", "could not read the profile");
        render_op_free(op);
    }
}
