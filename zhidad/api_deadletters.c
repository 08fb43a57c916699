/* Dead letters (SPEC §4, issue #6): GET /v1/deadletters lists the notices that used up their
 * attempts, POST /v1/deadletters:replay sends chosen ones again. A publisher sees and replays
 * only its own scope's policies' letters. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/date.h"
#include "common/text.h"
#include "delivery/delivery.h"
#include "delivery/policy_store.h"
#include "profiles/follower.h"
#include "profiles/index.h"
#include "profiles/store.h"
#include "zhidad/api.h"
#include "zhidad/api_policies.h"
#include "zhidad/audit.h"
#include "zhidad/http.h"
#include "zhidad/service.h"

#define REPLAY_IDS_MAX 1000

static bool gateway_known(const zd_service *svc, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(svc->cfg->gateways, name) != NULL;
}

static void reply_unknown_gateway(zd_req *req, const char *field, const char *name)
{
    zd_error err;
    zd_error_set(&err, "unknown_gateway", field, "no gateway named \"%.64s\" is configured", name);
    zd_req_reply_zderror(req, 400, &err);
}

/* ---- list ------------------------------------------------------------------------------- */

typedef struct list_op {
    zd_service *svc;
    zd_req *req;
    char policy[ZD_POLICY_ID_MAX + 1];
    const char *gateway, *cursor; /* borrowed from the request */
    int limit;
} list_op;

static void dead_page(int status, const zd_dead_letter *items, int n, const char *next_cursor,
                      void *udata)
{
    list_op *op = udata;
    if (status != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not read the dead letters");
        free(op);
        return;
    }
    const zd_index *ix = op->svc->follower ? zd_follower_index(op->svc->follower) : NULL;
    cJSON *out = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(out, "deadletters");
    for (int i = 0; i < n && list; i++) {
        const zd_dead_letter *d = &items[i];
        /* An erased profile leaves only its index number: then no id is shown. */
        const char *pid = ix ? zd_index_id(ix, d->gid) : NULL;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(list, o);
        if (pid) {
            char nid[ZD_POLICY_ID_MAX + ZD_ID_MAX + 48];
            snprintf(nid, sizeof(nid), "%s:%s:%s", d->policy, pid, d->gateway);
            cJSON_AddStringToObject(o, "id", nid);
            cJSON_AddStringToObject(o, "profile", pid);
        } else {
            cJSON_AddNullToObject(o, "id");
            cJSON_AddNullToObject(o, "profile");
        }
        cJSON_AddStringToObject(o, "policy", d->policy);
        cJSON_AddStringToObject(o, "gateway", d->gateway);
        cJSON_AddNumberToObject(o, "route", d->route);
        cJSON_AddNumberToObject(o, "attempts", d->attempt);
        if (d->http_status > 0)
            cJSON_AddNumberToObject(o, "http_status", d->http_status);
        else
            cJSON_AddNullToObject(o, "http_status");
        cJSON_AddStringToObject(o, "detail", d->detail);
        char t[32];
        zd_rfc3339_format(d->at_ms, t);
        cJSON_AddStringToObject(o, "at", t);
    }
    if (next_cursor)
        cJSON_AddStringToObject(out, "next_cursor", next_cursor);
    else
        cJSON_AddNullToObject(out, "next_cursor");
    zd_req_reply_json(op->req, 200, out);
    free(op);
}

static void list_start(list_op *op, const char *policy)
{
    int rc = zd_dead_list(op->svc->redis, policy, zd_api_caller_scope(op->req), op->gateway,
                          op->cursor, op->limit, dead_page, op);
    if (rc == 0)
        return;
    if (rc == -EINVAL)
        zd_api_reply_bad_cursor(op->req);
    else
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not read the dead letters");
    free(op);
}

static void list_policy_got(int status, const zd_policy_view *v, void *udata)
{
    list_op *op = udata;
    if (status != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not read the policy");
    } else if (!v || !zd_api_policy_visible(op->req, v->doc)) {
        zd_api_reply_no_policy(op->req);
    } else {
        list_start(op, op->policy);
        return;
    }
    free(op);
}

static void handle_list(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    int limit;
    const char *cursor;
    if (!zd_api_list_query(req, &limit, &cursor))
        return;
    const char *policy = zd_req_query(req, "policy");
    const char *gateway = zd_req_query(req, "gateway");
    if (policy && !zd_api_policy_id_ok(req, policy))
        return;
    if (gateway && !gateway_known(svc, gateway)) {
        reply_unknown_gateway(req, "gateway", gateway);
        return;
    }
    list_op *op = calloc(1, sizeof(*op));
    if (!op) {
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        return;
    }
    op->svc = svc;
    op->req = req;
    op->gateway = gateway;
    op->cursor = cursor;
    op->limit = limit;
    if (!policy) {
        list_start(op, NULL);
        return;
    }
    snprintf(op->policy, sizeof(op->policy), "%s", policy);
    if (zd_policy_get(svc->redis, policy, list_policy_got, op) != 0) {
        zd_req_reply_error(req, 503, "store_unavailable", "could not read the policy");
        free(op);
    }
}

/* ---- replay ----------------------------------------------------------------------------- */

typedef struct replay_op {
    zd_service *svc;
    zd_req *req;
    cJSON *body;
    char target[128]; /* for the audit record */
    /* By ids: one notice id after the other (policy, then profile, then the replay). */
    const cJSON *ids;
    int next;
    long long replayed;
    char policy[ZD_POLICY_ID_MAX + 1], profile[ZD_ID_MAX + 1], gateway[40];
    int route;
} replay_op;

static void replay_op_free(replay_op *op)
{
    cJSON_Delete(op->body);
    free(op);
}

static void replay_answer(replay_op *op)
{
    zd_audit_req(op->svc->redis, op->req, "deadletter.replay", op->target);
    zd_delivery_kick(op->svc->delivery, NULL);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddNumberToObject(out, "replayed", (double)op->replayed);
    zd_req_reply_json(op->req, 200, out);
    replay_op_free(op);
}

static void replayed(int status, long long n, void *udata)
{
    replay_op *op = udata;
    if (status == -ENOENT) {
        zd_api_reply_no_policy(op->req);
        replay_op_free(op);
        return;
    }
    if (status != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable",
                           "could not replay the dead letters; %lld were replayed before the "
                           "failure, and repeating the request is safe",
                           op->replayed);
        replay_op_free(op);
        return;
    }
    op->replayed += n;
    replay_answer(op);
}

static void replay_policy_got(int status, const zd_policy_view *v, void *udata)
{
    replay_op *op = udata;
    if (status != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not read the policy");
    } else if (!v || !zd_api_policy_visible(op->req, v->doc)) {
        zd_api_reply_no_policy(op->req);
    } else if (zd_dead_replay(op->svc->redis, op->policy, NULL, NULL, NULL, 0, zd_unix_ms(),
                              replayed, op) == 0) {
        return;
    } else {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not replay");
    }
    replay_op_free(op);
}

static void ids_next(replay_op *op);

static void id_replayed(int status, long long n, void *udata)
{
    replay_op *op = udata;
    if (status != 0 && status != -ENOENT) {
        replayed(status, 0, op);
        return;
    }
    op->replayed += status == 0 ? n : 0;
    ids_next(op);
}

static void id_profile_got(int status, const char *json, size_t len, uint32_t gid, uint64_t version,
                           void *udata)
{
    replay_op *op = udata;
    if (status != 0) {
        replayed(status, 0, op);
        return;
    }
    if (!json) {
        ids_next(op); /* an unknown (or erased) profile has nothing to replay */
        return;
    }
    char want[64];
    snprintf(want, sizeof(want), "%" PRIu32 ".%d:%s", gid, op->route, op->gateway);
    const char *wants[] = {want};
    if (zd_dead_replay(op->svc->redis, op->policy, NULL, op->gateway, wants, 1, zd_unix_ms(),
                       id_replayed, op) != 0)
        replayed(-EIO, 0, op);
}

static void id_policy_got(int status, const zd_policy_view *v, void *udata)
{
    replay_op *op = udata;
    if (status != 0) {
        replayed(status, 0, op);
        return;
    }
    /* Ids of policies the caller cannot see replay nothing, like ids that name nothing. */
    op->route = -1;
    for (int r = 0; v && zd_api_policy_visible(op->req, v->doc) && r < v->doc->nroutes; r++)
        for (int g = 0; g < v->doc->routes[r].n; g++)
            if (strcmp(v->doc->routes[r].gateways[g], op->gateway) == 0)
                op->route = r;
    if (op->route < 0) {
        ids_next(op);
        return;
    }
    if (zd_store_get(op->svc->store, op->profile, id_profile_got, op) != 0)
        replayed(-EIO, 0, op);
}

/* Splits "policy:profile:gateway" (the profile id may itself hold ':'). */
static bool split_notice_id(const char *s, replay_op *op)
{
    const char *a = strchr(s, ':'), *b = strrchr(s, ':');
    if (!a || a == b)
        return false;
    size_t np = (size_t)(a - s), nprof = (size_t)(b - a - 1), ng = strlen(b + 1);
    if (!zd_policy_id_valid(s, np) || !zd_id_valid(a + 1, nprof) || ng < 1 ||
        ng >= sizeof(op->gateway))
        return false;
    memcpy(op->policy, s, np);
    op->policy[np] = '\0';
    memcpy(op->profile, a + 1, nprof);
    op->profile[nprof] = '\0';
    memcpy(op->gateway, b + 1, ng + 1);
    return true;
}

static void ids_next(replay_op *op)
{
    if (op->next >= cJSON_GetArraySize(op->ids)) {
        replay_answer(op);
        return;
    }
    const cJSON *id = cJSON_GetArrayItem(op->ids, op->next++);
    split_notice_id(id->valuestring, op); /* checked before the first */
    if (zd_policy_get(op->svc->redis, op->policy, id_policy_got, op) != 0)
        replayed(-EIO, 0, op);
}

static void handle_replay(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    cJSON *body = zd_req_json(req);
    if (!body)
        return;
    zd_error err;
    const cJSON *it;
    int given = 0;
    cJSON_ArrayForEach(it, body)
    {
        if (strcmp(it->string, "policy") && strcmp(it->string, "gateway") &&
            strcmp(it->string, "ids")) {
            zd_error_set(&err, "unknown_field", it->string, "unknown field \"%.64s\"", it->string);
            goto bad;
        }
        given++;
    }
    if (given != 1) {
        zd_error_set(&err, "invalid_value", NULL,
                     "give exactly one of \"policy\", \"gateway\" or \"ids\"");
        goto bad;
    }
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(body, "policy");
    const cJSON *jg = cJSON_GetObjectItemCaseSensitive(body, "gateway");
    const cJSON *ji = cJSON_GetObjectItemCaseSensitive(body, "ids");
    if (jp &&
        (!cJSON_IsString(jp) || !zd_policy_id_valid(jp->valuestring, strlen(jp->valuestring)))) {
        zd_error_set(&err, "invalid_id", "policy",
                     "\"policy\" must be a policy id (1-%d characters of [A-Za-z0-9._-])",
                     ZD_POLICY_ID_MAX);
        goto bad;
    }
    if (jg && !cJSON_IsString(jg)) {
        zd_error_set(&err, "invalid_value", "gateway", "\"gateway\" must be a gateway name");
        goto bad;
    }
    if (jg && !gateway_known(svc, jg->valuestring)) {
        reply_unknown_gateway(req, "gateway", jg->valuestring);
        cJSON_Delete(body);
        return;
    }
    replay_op probe;
    if (ji) {
        int n = cJSON_GetArraySize(ji);
        if (!cJSON_IsArray(ji) || n < 1 || n > REPLAY_IDS_MAX) {
            zd_error_set(&err, "invalid_value", "ids",
                         "\"ids\" must be an array of 1-%d notice ids", REPLAY_IDS_MAX);
            goto bad;
        }
        cJSON_ArrayForEach(it, ji)
        {
            if (!cJSON_IsString(it) || !split_notice_id(it->valuestring, &probe)) {
                zd_error_set(&err, "invalid_value", "ids",
                             "\"ids\" holds notice ids \"<policy>:<profile>:<gateway>\"");
                goto bad;
            }
        }
    }
    replay_op *op = calloc(1, sizeof(*op));
    if (!op) {
        cJSON_Delete(body);
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        return;
    }
    op->svc = svc;
    op->req = req;
    op->body = body;
    if (jp) {
        snprintf(op->policy, sizeof(op->policy), "%s", jp->valuestring);
        snprintf(op->target, sizeof(op->target), "policy:%s", jp->valuestring);
        if (zd_policy_get(svc->redis, op->policy, replay_policy_got, op) != 0)
            replayed(-EIO, 0, op);
    } else if (jg) {
        snprintf(op->target, sizeof(op->target), "gateway:%s", jg->valuestring);
        if (zd_dead_replay(svc->redis, NULL, zd_api_caller_scope(req), jg->valuestring, NULL, 0,
                           zd_unix_ms(), replayed, op) != 0)
            replayed(-EIO, 0, op);
    } else {
        snprintf(op->target, sizeof(op->target), "ids:%d", cJSON_GetArraySize(ji));
        op->ids = ji;
        ids_next(op);
    }
    return;
bad:
    cJSON_Delete(body);
    zd_req_reply_zderror(req, 400, &err);
}

int zd_api_deadletters_register(zd_service *svc)
{
    unsigned readers = ZD_ROLE_VIEWER | ZD_ROLE_PUBLISHER | ZD_ROLE_ADMIN;
    unsigned authors = ZD_ROLE_PUBLISHER | ZD_ROLE_ADMIN;
    int rc = 0;
    rc |= zd_http_route(svc->http, "GET", "/v1/deadletters", readers, handle_list, svc);
    rc |= zd_http_route(svc->http, "POST", "/v1/deadletters:replay", authors, handle_replay, svc);
    return rc ? -EINVAL : 0;
}
