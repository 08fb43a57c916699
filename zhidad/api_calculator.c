/* GET /v1/profiles/{id}/policies: the policy calculator (issue #7) — the live policies (status
 * "active" or "dispatching", deadline not passed) the stored profile is eligible for now, each
 * with the reasons a citizen reads (matcher/reasons.h, the publisher's reason_texts honoured).
 * The matching is delivery/calculator.c's (the reverse matcher's rule index over a cached live
 * set). A publisher sees only its scope's policies, and a profile outside its scope does not
 * exist for it (404, as a missing one). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common/date.h"
#include "common/text.h"
#include "delivery/calculator.h"
#include "matcher/reasons.h"
#include "profiles/store.h"
#include "zhidad/api.h"
#include "zhidad/api_policies.h"
#include "zhidad/http.h"
#include "zhidad/service.h"

typedef struct calc_op {
    zd_service *svc;
    zd_req *req;
    char *profile_id; /* owned */
    zd_profile *prof; /* owned, once read */
    int32_t today;
} calc_op;

static void calc_op_free(calc_op *op)
{
    zd_profile_free(op->prof);
    free(op->profile_id);
    free(op);
}

static void reply_no_profile(zd_req *req)
{
    zd_req_reply_error(req, 404, "not_found", "no profile with this id");
}

/* Soonest deadline first (none last), then id: what a reader should act on first. */
static int cmp_hit(const void *a, const void *b)
{
    const zd_calc_hit *x = a, *y = b;
    const char *dx = x->doc->deadline[0] ? x->doc->deadline : "9999-99-99";
    const char *dy = y->doc->deadline[0] ? y->doc->deadline : "9999-99-99";
    int c = strcmp(dx, dy);
    return c ? c : strcmp(x->doc->id, y->doc->id);
}

static void matched(int status, const zd_calc_hit *hits, int n, void *udata)
{
    calc_op *op = udata;
    zd_service *svc = op->svc;
    if (status != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not read the policies");
        calc_op_free(op);
        return;
    }
    zd_calc_hit *sorted = malloc(sizeof(*sorted) * (size_t)(n ? n : 1));
    cJSON *out = cJSON_CreateObject();
    cJSON *arr = out ? cJSON_AddArrayToObject(out, "policies") : NULL;
    if (!sorted || !arr) {
        free(sorted);
        cJSON_Delete(out);
        zd_req_reply_error(op->req, 500, "out_of_memory", "out of memory");
        calc_op_free(op);
        return;
    }
    memcpy(sorted, hits, sizeof(*sorted) * (size_t)n);
    qsort(sorted, (size_t)n, sizeof(*sorted), cmp_hit);
    cJSON_AddStringToObject(out, "profile_id", op->profile_id);
    for (int i = 0; i < n; i++) {
        const zd_policy *d = sorted[i].doc;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "id", d->id);
        cJSON_AddStringToObject(o, "title", d->title);
        cJSON_AddStringToObject(o, "summary", d->summary);
        cJSON_AddStringToObject(o, "url", d->url);
        cJSON_AddStringToObject(o, "issuer", d->issuer);
        cJSON_AddStringToObject(o, "category", d->category);
        if (d->deadline[0])
            cJSON_AddStringToObject(o, "deadline", d->deadline);
        else
            cJSON_AddNullToObject(o, "deadline");
        cJSON_AddStringToObject(o, "status", zd_policy_status_name(sorted[i].status));
        cJSON_AddBoolToObject(o, "urgent", d->urgent);
        cJSON *rs = zd_rule_reasons_json(sorted[i].eff, op->prof, op->today, &svc->names.names,
                                         d->reason_texts);
        cJSON_AddItemToObject(o, "reasons", rs ? rs : cJSON_CreateArray());
    }
    cJSON_AddNumberToObject(out, "count", n);
    free(sorted);
    zd_req_reply_json(op->req, 200, out);
    calc_op_free(op);
}

static void profile_got(int status, const char *json, size_t len, uint32_t gid, uint64_t version,
                        void *udata)
{
    (void)gid;
    (void)version;
    calc_op *op = udata;
    zd_service *svc = op->svc;
    zd_error err;
    const char *scope = zd_api_caller_scope(op->req);
    if (status != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not read the profile");
    } else if (!json) {
        reply_no_profile(op->req);
    } else if (zd_profile_parse(svc->cfg->schema, op->profile_id, json, len, &op->prof, &err) !=
               0) {
        zd_req_reply_zderror(op->req, 500, &err);
    } else if (scope && scope[0] &&
               (!op->prof->vals[ZD_ATTR_REGION].present || !op->prof->vals[ZD_ATTR_REGION].str ||
                strncmp(op->prof->vals[ZD_ATTR_REGION].str, scope, strlen(scope)) != 0)) {
        reply_no_profile(op->req);
    } else {
        int rc = zd_calc_match(svc->calc, op->prof, op->today, scope, matched, op);
        if (rc == 0)
            return;
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not read the policies");
    }
    calc_op_free(op);
}

static void handle_calc(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    const char *id = zd_req_param(req, "id");
    if (!id || !zd_id_valid(id, strlen(id))) {
        zd_req_reply_error(req, 400, "invalid_id",
                           "profile id must be 1-128 characters of [A-Za-z0-9_.:-]");
        return;
    }
    if (!svc->calc) {
        zd_req_reply_error(req, 503, "store_unavailable", "the service is starting");
        return;
    }
    calc_op *op = calloc(1, sizeof(*op));
    if (!op || !(op->profile_id = strdup(id))) {
        free(op);
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        return;
    }
    op->svc = svc;
    op->req = req;
    op->today = zd_date_today(svc->cfg->timezone);
    if (zd_store_get(svc->store, id, profile_got, op) != 0) {
        zd_req_reply_error(req, 503, "store_unavailable", "could not read the profile");
        calc_op_free(op);
    }
}

int zd_api_calculator_register(zd_service *svc)
{
    unsigned readers = ZD_ROLE_APP | ZD_ROLE_ADMIN | ZD_ROLE_VIEWER | ZD_ROLE_PUBLISHER;
    return zd_http_route(svc->http, "GET", "/v1/profiles/{id}/policies", readers, handle_calc, svc);
}
