/* Policy endpoints (SPEC §4): publish (and its dry run), read with the funnel, list, withdraw,
 * one recipient's deliveries. The document and its state live in delivery/policy*.c; this
 * file parses HTTP, checks roles and scopes, compiles the rule and answers. A publisher sees
 * only the policies of its own scope: any other is answered exactly like a missing one. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "common/date.h"
#include "delivery/delivery.h"
#include "delivery/policy.h"
#include "delivery/policy_store.h"
#include "matcher/reasons.h"
#include "matcher/rule.h"
#include "matcher/segment_store.h"
#include "profiles/follower.h"
#include "profiles/store.h"
#include "zhidad/api.h"
#include "zhidad/api_policies.h"
#include "zhidad/audit.h"
#include "zhidad/http.h"
#include "zhidad/service.h"

/* ---- shared ----------------------------------------------------------------------------- */

const char *zd_api_caller_scope(zd_req *req)
{
    const zd_apikey *k = zd_req_key(req);
    return k && k->role == ZD_ROLE_PUBLISHER ? k->scope : NULL;
}

bool zd_api_policy_visible(zd_req *req, const zd_policy *p)
{
    const char *scope = zd_api_caller_scope(req);
    return !scope || strcmp(scope, p->scope) == 0;
}

void zd_api_reply_no_policy(zd_req *req)
{
    zd_req_reply_error(req, 404, "not_found", "no policy with this id");
}

bool zd_api_policy_id_ok(zd_req *req, const char *id)
{
    if (id && zd_policy_id_valid(id, strlen(id)))
        return true;
    zd_req_reply_error(req, 400, "invalid_id", "a policy id is 1-%d characters of [A-Za-z0-9._-]",
                       ZD_POLICY_ID_MAX);
    return false;
}

static void add_ms_time(cJSON *o, const char *name, int64_t ms)
{
    if (ms <= 0) {
        cJSON_AddNullToObject(o, name);
        return;
    }
    char t[32];
    zd_rfc3339_format(ms, t);
    cJSON_AddStringToObject(o, name, t);
}

static cJSON *route_json(const zd_policy_route *r)
{
    if (r->n == 1)
        return cJSON_CreateString(r->gateways[0]);
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < r->n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(r->gateways[i]));
    return a;
}

/* The SPEC §4 buckets of f into o. */
static void add_buckets(cJSON *o, const zd_route_funnel *f)
{
    cJSON *s = cJSON_AddObjectToObject(o, "suppressed");
    for (int b = ZD_FB_MUTED; s && b <= ZD_FB_HOLDOUT; b++)
        cJSON_AddNumberToObject(s, zd_funnel_bucket_name(b), (double)f->n[b]);
    cJSON *p = cJSON_AddObjectToObject(o, "pending");
    for (int b = ZD_FB_QUEUED; p && b <= ZD_FB_RETRYING; b++)
        cJSON_AddNumberToObject(p, zd_funnel_bucket_name(b), (double)f->n[b]);
    cJSON_AddNumberToObject(o, "delivered", (double)f->n[ZD_FB_DELIVERED]);
    cJSON_AddNumberToObject(o, "dead", (double)f->n[ZD_FB_DEAD]);
    cJSON_AddNumberToObject(o, "withdrawn", (double)f->n[ZD_FB_WITHDRAWN]);
    cJSON_AddNumberToObject(o, "read", (double)f->n[ZD_FB_READ]);
    cJSON *fb = cJSON_AddObjectToObject(o, "feedback");
    if (fb) {
        cJSON_AddNumberToObject(fb, "useful", (double)f->n[ZD_FB_USEFUL]);
        cJSON_AddNumberToObject(fb, "not_useful", (double)f->n[ZD_FB_NOT_USEFUL]);
    }
}

/* The document's fields as the publisher sent them (and what the server added). */
static cJSON *doc_json(const zd_policy *p)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "title", p->title);
    cJSON_AddStringToObject(o, "summary", p->summary);
    cJSON_AddStringToObject(o, "url", p->url);
    cJSON_AddStringToObject(o, "issuer", p->issuer);
    cJSON_AddStringToObject(o, "category", p->category);
    cJSON_AddStringToObject(o, "rule", p->rule);
    cJSON_AddStringToObject(o, "effective_rule", p->effective_rule);
    cJSON *routes = cJSON_AddArrayToObject(o, "routes");
    for (int i = 0; routes && i < p->nroutes; i++)
        cJSON_AddItemToArray(routes, route_json(&p->routes[i]));
    if (p->templates)
        cJSON_AddItemToObject(o, "templates", cJSON_Duplicate(p->templates, 1));
    if (p->reason_texts)
        cJSON_AddItemToObject(o, "reason_texts", cJSON_Duplicate(p->reason_texts, 1));
    add_ms_time(o, "publish_at", p->publish_at_ms);
    if (p->deadline[0])
        cJSON_AddStringToObject(o, "deadline", p->deadline);
    else
        cJSON_AddNullToObject(o, "deadline");
    cJSON_AddBoolToObject(o, "urgent", p->urgent);
    cJSON_AddBoolToObject(o, "match_new_profiles", p->match_new_profiles);
    if (p->pace_per_min)
        cJSON_AddNumberToObject(o, "pace", (double)p->pace_per_min);
    else
        cJSON_AddNullToObject(o, "pace");
    cJSON_AddNumberToObject(o, "holdout_percent", p->holdout_percent);
    cJSON_AddStringToObject(o, "owner", p->owner);
    if (p->scope[0])
        cJSON_AddStringToObject(o, "scope", p->scope);
    else
        cJSON_AddNullToObject(o, "scope");
    add_ms_time(o, "created_at", p->created_ms);
    cJSON_AddStringToObject(o, "digest", p->digest);
    return o;
}

cJSON *zd_api_funnel_json(const zd_policy *p, const char *status, int64_t matched,
                          const zd_route_funnel *routes, bool with_doc)
{
    cJSON *out = cJSON_CreateObject();
    if (!out)
        return NULL;
    cJSON_AddStringToObject(out, "id", p->id);
    cJSON_AddStringToObject(out, "status", status);
    cJSON_AddNumberToObject(out, "matched", (double)matched);
    cJSON_AddNumberToObject(out, "notices", (double)(matched * p->nroutes));
    zd_route_funnel total;
    memset(&total, 0, sizeof(total));
    for (int r = 0; r < p->nroutes; r++)
        for (int b = 0; b < ZD_FB_COUNT; b++)
            total.n[b] += routes[r].n[b];
    cJSON *f = cJSON_AddObjectToObject(out, "funnel");
    if (f)
        add_buckets(f, &total);
    cJSON *ra = cJSON_AddArrayToObject(out, "routes");
    for (int r = 0; ra && r < p->nroutes; r++) {
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddItemToArray(ra, o);
        cJSON_AddItemToObject(o, "route", route_json(&p->routes[r]));
        add_buckets(o, &routes[r]);
        cJSON *by = cJSON_AddObjectToObject(o, "delivered_by");
        for (int g = 0; by && g < p->routes[r].n; g++)
            cJSON_AddNumberToObject(by, p->routes[r].gateways[g], (double)routes[r].by[g]);
    }
    if (with_doc)
        cJSON_AddItemToObject(out, "policy", doc_json(p));
    return out;
}

static cJSON *view_json(const zd_policy_view *v)
{
    cJSON *out =
        zd_api_funnel_json(v->doc, zd_policy_status_name(v->status), v->matched, v->routes, true);
    if (!out)
        return NULL;
    cJSON *times = cJSON_AddObjectToObject(out, "times");
    if (times) {
        add_ms_time(times, "created", v->doc->created_ms);
        add_ms_time(times, "started", v->started_ms);
        add_ms_time(times, "first_delivery", v->first_ms);
        add_ms_time(times, "done", v->done_ms);
        add_ms_time(times, "withdrawn", v->withdrawn_ms);
    }
    /* Held out is decided per profile for every route, so route 0's holdout count is the
     * number of held-out recipients; everyone else matched is treated. */
    cJSON *oc = cJSON_AddObjectToObject(out, "outcomes");
    cJSON *t = oc ? cJSON_AddObjectToObject(oc, "treated") : NULL;
    cJSON *h = oc ? cJSON_AddObjectToObject(oc, "holdout") : NULL;
    int64_t held = v->doc->nroutes > 0 ? v->routes[0].n[ZD_FB_HOLDOUT] : 0;
    if (t) {
        cJSON_AddNumberToObject(t, "recipients", (double)(v->matched - held));
        cJSON_AddNumberToObject(t, "applied", (double)v->applied_treated);
    }
    if (h) {
        cJSON_AddNumberToObject(h, "recipients", (double)held);
        cJSON_AddNumberToObject(h, "applied", (double)v->applied_holdout);
    }
    return out;
}

/* ---- publish ---------------------------------------------------------------------------- */

typedef struct pub_op {
    zd_service *svc;
    zd_req *req;
    zd_policy *p;
    int nsegs;
    char **seg_names, **seg_texts;
    zd_rule *rule;        /* the publisher's rule as written: its errors point into that text */
    zd_rule *eff;         /* the effective rule (scope ANDed), for a dry run */
    char *render_profile; /* POST /v1/policies:render: the profile to render for */
} pub_op;

static void pub_op_free(pub_op *op)
{
    if (!op)
        return;
    zd_policy_free(op->p);
    for (int i = 0; i < op->nsegs; i++) {
        free(op->seg_names[i]);
        free(op->seg_texts[i]);
    }
    free(op->seg_names);
    free(op->seg_texts);
    zd_rule_free(op->rule);
    zd_rule_free(op->eff);
    free(op->render_profile);
    free(op);
}

static const char *seg_lookup(const char *name, void *udata)
{
    const pub_op *op = udata;
    for (int i = 0; i < op->nsegs; i++)
        if (strcmp(op->seg_names[i], name) == 0)
            return op->seg_texts[i];
    return NULL;
}

/* A rule error as POST /v1/rules:preview answers it (docs/API.md): position, line, column,
 * and for rule_too_complex the rule's size and the limit. */
static void reply_rule_error(zd_req *req, const zd_rule_error *e, const zd_rule *r, long limit)
{
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddStringToObject(extra, "field", "rule");
    cJSON_AddNumberToObject(extra, "position", e->position);
    cJSON_AddNumberToObject(extra, "line", e->line);
    cJSON_AddNumberToObject(extra, "column", e->column);
    if (e->segment[0])
        cJSON_AddStringToObject(extra, "segment", e->segment);
    if (r) {
        zd_rule_size sz = zd_rule_measure(r);
        cJSON_AddNumberToObject(extra, "comparisons", (double)sz.comparisons);
        cJSON_AddNumberToObject(extra, "cost", (double)sz.cost);
        cJSON_AddNumberToObject(extra, "limit", (double)limit);
    }
    zd_req_reply_error_extra(req, 400, e->code, e->message, extra);
}

static bool pub_compile(pub_op *op)
{
    const zd_schema *s = op->svc->cfg->schema;
    zd_rule_error e;
    const char *text = op->p->rule;
    if (zd_rule_compile(s, text, strlen(text), seg_lookup, op, &op->rule, &e) != 0) {
        reply_rule_error(op->req, &e, NULL, 0);
        return false;
    }
    long max_cost = op->svc->cfg->rule_max_cost;
    if (zd_rule_check_cost(op->rule, max_cost, "limits.rule_max_cost", &e) != 0) {
        reply_rule_error(op->req, &e, op->rule, max_cost);
        return false;
    }
    if (op->p->reason_texts) {
        char bad[64], msg[320];
        if (zd_rule_check_reason_texts(op->rule, op->p->reason_texts, bad, sizeof(bad), msg,
                                       sizeof(msg)) != 0) {
            cJSON *extra = cJSON_CreateObject();
            cJSON_AddStringToObject(extra, "field", "reason_texts");
            cJSON_AddStringToObject(extra, "key", bad);
            zd_req_reply_error_extra(op->req, 400, "invalid_value", msg, extra);
            return false;
        }
    }
    const char *eff = op->p->effective_rule;
    if (zd_rule_compile(s, eff, strlen(eff), seg_lookup, op, &op->eff, &e) != 0) {
        zd_req_reply_error(op->req, 500, "bad_scope",
                           "the rule with the API key's scope does not compile");
        return false;
    }
    return true;
}

static void pub_created(int status, zd_create_outcome outcome, zd_policy_status now, void *udata)
{
    pub_op *op = udata;
    if (status != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable",
                           "could not store the policy; repeating the same request is safe");
    } else if (outcome == ZD_CREATE_CONFLICT) {
        cJSON *extra = cJSON_CreateObject();
        cJSON_AddStringToObject(extra, "field", "id");
        zd_req_reply_error_extra(op->req, 409, "conflict",
                                 "a policy with this id and another body exists; choose another "
                                 "id (or leave it out to have one generated)",
                                 extra);
    } else {
        if (outcome == ZD_CREATE_CREATED)
            zd_audit_req(op->svc->redis, op->req, "policy.publish", op->p->id);
        /* The engine's next sweep would find it too; this saves up to a poll interval. */
        zd_delivery_kick(op->svc->delivery, op->p->id);
        cJSON *out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "id", op->p->id);
        cJSON_AddStringToObject(out, "status", zd_policy_status_name(now));
        if (outcome == ZD_CREATE_EXISTS)
            cJSON_AddBoolToObject(out, "existing", 1);
        /* 202: accepted, delivery goes on in the background; 200 for a repeat of a publish that
         * was already accepted (docs/API.md). */
        zd_req_reply_json(op->req, outcome == ZD_CREATE_CREATED ? 202 : 200, out);
    }
    pub_op_free(op);
}

static void pub_run(pub_op *op)
{
    if (!pub_compile(op)) {
        pub_op_free(op);
        return;
    }
    if (op->render_profile) {
        /* Hands the policy and its rule over. */
        zd_api_policy_render(op->svc, op->req, op->p, op->eff, op->render_profile);
        op->p = NULL;
        op->eff = NULL;
        pub_op_free(op);
        return;
    }
    if (op->p->dry_run) {
        zd_api_policy_dry_run(op->svc, op->req, op->p, op->eff);
        op->eff = NULL;
        pub_op_free(op);
        return;
    }
    if (zd_policy_create(op->svc->redis, op->p, zd_unix_ms(), pub_created, op) != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not store the policy");
        pub_op_free(op);
    }
}

static void pub_segments(int status, const zd_segment *segs, int n, void *udata)
{
    pub_op *op = udata;
    if (status != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not read the segments");
        pub_op_free(op);
        return;
    }
    op->seg_names = calloc((size_t)n + 1, sizeof(char *));
    op->seg_texts = calloc((size_t)n + 1, sizeof(char *));
    for (int i = 0; i < n && op->seg_names && op->seg_texts; i++) {
        op->seg_names[i] = strdup(segs[i].name);
        op->seg_texts[i] = strdup(segs[i].rule);
        op->nsegs++;
    }
    pub_run(op);
}

static bool mentions_segment(const char *text)
{
    for (const char *p = text; *p; p++)
        if (strncasecmp(p, "segment", 7) == 0)
            return true;
    return false;
}

void zd_api_reply_policy_error(zd_req *req, const zd_policy_error *err)
{
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddStringToObject(extra, "field", err->field);
    if (err->position >= 0) {
        cJSON_AddStringToObject(extra, "path", err->path);
        cJSON_AddNumberToObject(extra, "position", err->position);
    }
    zd_req_reply_error_extra(req, 400, err->code, err->message, extra);
}

/* Parses a policy body and runs it through the publish checks (rule, segments, cost,
 * reason_texts); then publishes it, answers a dry run, or with render_profile (copied) renders
 * it for that profile. */
static void start_publish(zd_service *svc, zd_req *req, const char *body, size_t len,
                          const char *render_profile)
{
    const zd_apikey *k = zd_req_key(req);
    int ngw = cJSON_GetArraySize(svc->cfg->gateways);
    const char **names = calloc((size_t)ngw + 1, sizeof(char *));
    pub_op *op = calloc(1, sizeof(*op));
    if (!names || !op || (render_profile && !(op->render_profile = strdup(render_profile)))) {
        free(names);
        if (op)
            free(op->render_profile);
        free(op);
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        return;
    }
    int i = 0;
    const cJSON *g;
    cJSON_ArrayForEach(g, svc->cfg->gateways) names[i++] = g->string;
    zd_policy_ctx ctx = {
        names, ngw, k ? k->name : "", zd_api_caller_scope(req), zd_unix_ms(), svc->cfg->schema};
    zd_policy_error err;
    int rc = zd_policy_parse(body, len, &ctx, &op->p, &err);
    free(names);
    if (rc != 0) {
        if (rc == -EINVAL) {
            zd_api_reply_policy_error(req, &err);
        } else {
            zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        }
        free(op->render_profile);
        free(op);
        return;
    }
    op->svc = svc;
    op->req = req;
    if (!mentions_segment(op->p->rule)) {
        pub_run(op);
        return;
    }
    if (zd_segments_all(svc->redis, pub_segments, op) != 0) {
        zd_req_reply_error(req, 503, "store_unavailable", "could not read the segments");
        pub_op_free(op);
    }
}

static void handle_publish(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    /* zd_req_json checks UTF-8 and depth; the document's own checks follow. */
    cJSON *j = zd_req_json(req);
    if (!j)
        return;
    cJSON_Delete(j);
    size_t len;
    const char *body = zd_req_body(req, &len);
    start_publish(svc, req, body, len, NULL);
}

static void handle_render(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    cJSON *j = zd_req_json(req);
    if (!j)
        return;
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        if (strcmp(it->string, "policy") != 0 && strcmp(it->string, "profile_id") != 0) {
            cJSON *extra = cJSON_CreateObject();
            cJSON_AddStringToObject(extra, "field", it->string);
            zd_req_reply_error_extra(req, 400, "unknown_field",
                                     "a render request has \"policy\" and \"profile_id\"", extra);
            cJSON_Delete(j);
            return;
        }
    }
    const cJSON *pol = cJSON_GetObjectItemCaseSensitive(j, "policy");
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(j, "profile_id");
    if (!cJSON_IsObject(pol) || !cJSON_IsString(pid) ||
        !zd_id_valid(pid->valuestring, strlen(pid->valuestring))) {
        cJSON *extra = cJSON_CreateObject();
        cJSON_AddStringToObject(extra, "field", !cJSON_IsObject(pol) ? "policy" : "profile_id");
        zd_req_reply_error_extra(req, 400, !pol || !pid ? "missing_field" : "invalid_value",
                                 "\"policy\" (a policy body as POST /v1/policies takes it) and "
                                 "\"profile_id\" (a profile id) are required",
                                 extra);
        cJSON_Delete(j);
        return;
    }
    char *text = cJSON_PrintUnformatted(pol);
    if (!text)
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
    else
        start_publish(svc, req, text, strlen(text), pid->valuestring);
    free(text);
    cJSON_Delete(j);
}

/* ---- read ------------------------------------------------------------------------------- */

static void policy_got(int status, const zd_policy_view *v, void *udata)
{
    zd_req *req = udata;
    if (status != 0) {
        zd_req_reply_error(req, 503, "store_unavailable", "could not read the policy");
    } else if (!v || !zd_api_policy_visible(req, v->doc)) {
        zd_api_reply_no_policy(req);
    } else {
        cJSON *out = view_json(v);
        if (out)
            zd_req_reply_json(req, 200, out);
        else
            zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
    }
}

static void handle_get(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    const char *id = zd_req_param(req, "id");
    if (!zd_api_policy_id_ok(req, id))
        return;
    if (zd_policy_get(svc->redis, id, policy_got, req) != 0)
        zd_req_reply_error(req, 503, "store_unavailable", "could not read the policy");
}

static void policies_page(int status, const zd_policy_view *const *views, int n,
                          const char *next_cursor, void *udata)
{
    zd_req *req = udata;
    if (status != 0) {
        zd_req_reply_error(req, 503, "store_unavailable", "could not read the policies");
        return;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(out, "policies");
    for (int i = 0; i < n && list; i++) {
        cJSON *o = view_json(views[i]);
        if (o)
            cJSON_AddItemToArray(list, o);
    }
    if (next_cursor)
        cJSON_AddStringToObject(out, "next_cursor", next_cursor);
    else
        cJSON_AddNullToObject(out, "next_cursor");
    zd_req_reply_json(req, 200, out);
}

static void handle_list(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    int limit;
    const char *cursor;
    if (!zd_api_list_query(req, &limit, &cursor))
        return;
    const char *st = zd_req_query(req, "status");
    int status_filter = -1;
    if (st && (status_filter = zd_policy_status_parse(st)) < 0) {
        zd_error err;
        zd_error_set(&err, "invalid_value", "status",
                     "\"status\" must be one of scheduled, matching, dispatching, done, active, "
                     "withdrawn");
        zd_req_reply_zderror(req, 400, &err);
        return;
    }
    int rc = zd_policy_list(svc->redis, cursor, status_filter, zd_api_caller_scope(req), limit,
                            policies_page, req);
    if (rc == -EINVAL)
        zd_api_reply_bad_cursor(req);
    else if (rc != 0)
        zd_req_reply_error(req, 503, "store_unavailable", "could not read the policies");
}

/* ---- withdraw --------------------------------------------------------------------------- */

typedef struct wd_op {
    zd_service *svc;
    zd_req *req;
    char id[ZD_POLICY_ID_MAX + 1];
} wd_op;

static void wd_done(int status, zd_withdraw_outcome outcome, zd_policy_status was, void *udata)
{
    wd_op *op = udata;
    if (status != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable",
                           "could not withdraw the policy; repeating the request is safe");
    } else if (outcome == ZD_WITHDRAW_MISSING) {
        zd_api_reply_no_policy(op->req);
    } else if (outcome == ZD_WITHDRAW_FINAL) {
        cJSON *extra = cJSON_CreateObject();
        cJSON_AddStringToObject(extra, "status", zd_policy_status_name(was));
        zd_req_reply_error_extra(op->req, 409, "policy_finished",
                                 was == ZD_POLICY_WITHDRAWN
                                     ? "the policy was already withdrawn"
                                     : "the policy is done: every notice reached a final state",
                                 extra);
    } else {
        zd_audit_req(op->svc->redis, op->req, "policy.withdraw", op->id);
        /* So that batches queued here for it are dropped at once, not after a poll. */
        zd_delivery_kick(op->svc->delivery, op->id);
        cJSON *out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "id", op->id);
        cJSON_AddStringToObject(out, "status", "withdrawn");
        cJSON_AddStringToObject(out, "was", zd_policy_status_name(was));
        zd_req_reply_json(op->req, 200, out);
    }
    free(op);
}

static void wd_got(int status, const zd_policy_view *v, void *udata)
{
    wd_op *op = udata;
    if (status != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not read the policy");
    } else if (!v || !zd_api_policy_visible(op->req, v->doc)) {
        zd_api_reply_no_policy(op->req);
    } else if (zd_policy_withdraw(op->svc->redis, op->id, zd_unix_ms(), wd_done, op) == 0) {
        return;
    } else {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not withdraw the policy");
    }
    free(op);
}

static void handle_withdraw(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    const char *id = zd_req_param(req, "id");
    if (!zd_api_policy_id_ok(req, id))
        return;
    wd_op *op = calloc(1, sizeof(*op));
    if (!op) {
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        return;
    }
    op->svc = svc;
    op->req = req;
    snprintf(op->id, sizeof(op->id), "%s", id);
    /* Read first: the scope decides whether the caller may know the policy at all. */
    if (zd_policy_get(svc->redis, id, wd_got, op) != 0) {
        zd_req_reply_error(req, 503, "store_unavailable", "could not read the policy");
        free(op);
    }
}

/* ---- one recipient's deliveries --------------------------------------------------------- */

typedef struct dl_op {
    zd_service *svc;
    zd_req *req;
    zd_policy_view v; /* its doc owned here */
    char profile[ZD_ID_MAX + 1];
    uint32_t gid;
} dl_op;

static void dl_op_free(dl_op *op)
{
    zd_policy_free(op->v.doc);
    free(op);
}

static const char *state_name(char b, bool withdrawn)
{
    switch (b) {
    case 'q':
        return withdrawn ? "withdrawn" : "queued";
    case 'r':
        return withdrawn ? "withdrawn" : "retrying";
    case 'd':
        return "delivered";
    case 'x':
        return "dead";
    case 'w':
        return "withdrawn";
    case 'n':
        return "no_contact";
    case 'm':
        return "muted";
    case 'c':
        return "capped";
    case 'u':
        return "duplicate";
    case 'h':
        return "holdout";
    case 'f':
        return withdrawn ? "withdrawn" : "deferred";
    }
    return "unknown";
}

static const char *outcome_name(char o)
{
    switch (o) {
    case 'd':
        return "delivered";
    case 't':
        return "transient";
    case 'p':
        return "permanent";
    case 'n':
        return "no_contact";
    }
    return "unknown";
}

/* The attempts of a state's log "t_ms,gwi,o,http;..." (oldest first) into arr. */
static void add_attempts(cJSON *arr, const zd_policy_route *route, const char *log)
{
    const char *p = log;
    while (*p) {
        const char *end = strchr(p, ';');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char item[64];
        if (n < sizeof(item)) {
            memcpy(item, p, n);
            item[n] = '\0';
            long long t;
            int gwi, http;
            char o;
            if (sscanf(item, "%lld,%d,%c,%d", &t, &gwi, &o, &http) == 4) {
                cJSON *a = cJSON_CreateObject();
                add_ms_time(a, "at", t);
                if (gwi >= 0 && gwi < route->n)
                    cJSON_AddStringToObject(a, "gateway", route->gateways[gwi]);
                else
                    cJSON_AddNullToObject(a, "gateway");
                cJSON_AddStringToObject(a, "outcome", outcome_name(o));
                if (http > 0)
                    cJSON_AddNumberToObject(a, "http_status", http);
                else
                    cJSON_AddNullToObject(a, "http_status");
                cJSON_AddItemToArray(arr, a);
            }
        }
        if (!end)
            break;
        p = end + 1;
    }
}

static void dl_states(int status, bool frozen, bool reached, const char *const *states,
                      const size_t *lens, void *udata)
{
    dl_op *op = udata;
    const zd_policy *p = op->v.doc;
    if (status != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not read the deliveries");
    } else if (!frozen) {
        zd_req_reply_error(op->req, 404, "not_matched_yet",
                           "the policy has not computed its audience yet (status %s)",
                           zd_policy_status_name(op->v.status));
    } else if (!reached) {
        zd_req_reply_error(op->req, 404, "not_reached",
                           "the profile is not in the policy's audience");
    } else {
        bool withdrawn = op->v.status == ZD_POLICY_WITHDRAWN;
        cJSON *out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "policy", p->id);
        cJSON_AddStringToObject(out, "profile", op->profile);
        cJSON *routes = cJSON_AddArrayToObject(out, "routes");
        for (int r = 0; r < p->nroutes; r++) {
            zd_notice_state s;
            if (zd_notice_state_parse(states[r], lens[r], &s) != 0)
                zd_notice_state_parse(NULL, 0, &s);
            const zd_policy_route *route = &p->routes[r];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddItemToArray(routes, o);
            cJSON_AddItemToObject(o, "route", route_json(route));
            cJSON_AddStringToObject(o, "status", state_name(s.b, withdrawn));
            if (s.gwi < route->n)
                cJSON_AddStringToObject(o, "gateway", route->gateways[s.gwi]);
            else
                cJSON_AddNullToObject(o, "gateway");
            char nid[ZD_POLICY_ID_MAX + ZD_ID_MAX + 40];
            snprintf(nid, sizeof(nid), "%s:%s:%s", p->id, op->profile,
                     s.gwi < route->n ? route->gateways[s.gwi] : "");
            cJSON_AddStringToObject(o, "notice", nid);
            add_attempts(cJSON_AddArrayToObject(o, "attempts"), route, s.log);
        }
        zd_req_reply_json(op->req, 200, out);
    }
    dl_op_free(op);
}

static void dl_profile(int status, const char *json, size_t len, uint32_t gid, uint64_t version,
                       void *udata)
{
    dl_op *op = udata;
    if (status != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not read the profile");
        goto fail;
    }
    bool in_scope = json != NULL;
    if (json && op->v.doc->scope[0]) {
        /* A scoped policy reaches nobody outside its scope; and a publisher must not learn
         * whether a profile outside it exists: both answer like a missing profile. */
        zd_profile *pr = NULL;
        zd_error err;
        in_scope = zd_profile_parse(op->svc->cfg->schema, op->profile, json, len, &pr, &err) == 0;
        const cJSON *region = pr ? cJSON_GetObjectItemCaseSensitive(pr->doc, "region") : NULL;
        in_scope = in_scope && cJSON_IsString(region) &&
                   strncmp(region->valuestring, op->v.doc->scope, strlen(op->v.doc->scope)) == 0;
        zd_profile_free(pr);
    }
    if (!in_scope) {
        zd_req_reply_error(op->req, 404, "profile_not_found", "no profile with this id");
        goto fail;
    }
    op->gid = gid;
    if (zd_policy_states(op->svc->redis, op->v.doc->id, gid, op->v.doc->nroutes, dl_states, op) ==
        0)
        return;
    zd_req_reply_error(op->req, 503, "store_unavailable", "could not read the deliveries");
fail:
    dl_op_free(op);
}

static void dl_policy(int status, const zd_policy_view *v, void *udata)
{
    dl_op *op = udata;
    if (status != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not read the policy");
    } else if (!v || !zd_api_policy_visible(op->req, v->doc)) {
        zd_api_reply_no_policy(op->req);
    } else {
        op->v = *v;
        /* Keep the document: the view is the callback's. */
        char *s = zd_policy_to_stored(v->doc);
        op->v.doc = NULL;
        if (s && zd_policy_from_stored(s, strlen(s), &op->v.doc) == 0 &&
            zd_store_get(op->svc->store, op->profile, dl_profile, op) == 0) {
            free(s);
            return;
        }
        free(s);
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not read the profile");
    }
    dl_op_free(op);
}

static void handle_deliveries(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    const char *id = zd_req_param(req, "id");
    const char *pid = zd_req_param(req, "profile_id");
    if (!zd_api_policy_id_ok(req, id))
        return;
    if (!pid || !zd_id_valid(pid, strlen(pid))) {
        zd_req_reply_error(req, 400, "invalid_id",
                           "a profile id is 1-128 characters of [A-Za-z0-9_.:-]");
        return;
    }
    dl_op *op = calloc(1, sizeof(*op));
    if (!op) {
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        return;
    }
    op->svc = svc;
    op->req = req;
    snprintf(op->profile, sizeof(op->profile), "%s", pid);
    if (zd_policy_get(svc->redis, id, dl_policy, op) != 0) {
        zd_req_reply_error(req, 503, "store_unavailable", "could not read the policy");
        dl_op_free(op);
    }
}

int zd_api_policies_register(zd_service *svc)
{
    unsigned readers = ZD_ROLE_VIEWER | ZD_ROLE_PUBLISHER | ZD_ROLE_ADMIN;
    unsigned authors = ZD_ROLE_PUBLISHER | ZD_ROLE_ADMIN;
    int rc = 0;
    rc |= zd_http_route(svc->http, "POST", "/v1/policies", authors, handle_publish, svc);
    rc |= zd_http_route(svc->http, "POST", "/v1/policies:render", authors, handle_render, svc);
    rc |= zd_http_route(svc->http, "GET", "/v1/policies", readers, handle_list, svc);
    rc |= zd_http_route(svc->http, "GET", "/v1/policies/{id}", readers, handle_get, svc);
    rc |= zd_http_route(svc->http, "POST", "/v1/policies/{id}:withdraw", authors, handle_withdraw,
                        svc);
    rc |= zd_http_route(svc->http, "GET", "/v1/policies/{id}/deliveries/{profile_id}", readers,
                        handle_deliveries, svc);
    rc |= zd_api_outcomes_register(svc);
    return rc ? -EINVAL : 0;
}
