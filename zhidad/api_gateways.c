/* POST /v1/gateways/{name}:test (SPEC §5, issue #6): sends one signed test notice through a
 * configured gateway and reports the receiver's answer, so that an app backend can check its
 * endpoint before a policy goes out. GET /v1/gateways lists the configured gateways' names and
 * types, so that the console's policy form offers the names a route may use. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/clock.h"
#include "delivery/gateways.h"
#include "zhidad/api.h"
#include "zhidad/http.h"
#include "zhidad/service.h"

#define TO_MAX 256
#define TITLE_MAX 200
#define BODY_MAX 4000

static const char *const outcome_names[] = {"delivered", "transient", "permanent"};

typedef struct test_op {
    zd_req *req;
    char id[128];
    char name[40];
} test_op;

static void tested(int status, const zd_gw_result *res, const char *answer, void *udata)
{
    test_op *t = udata;
    if (status) {
        /* Only when the gateway was stopped under the test (zhidad shutting down). */
        zd_req_reply_error(t->req, 503, "shutting_down",
                           "the gateway was stopped before the test finished (%s)",
                           zd_strerror(status));
        free(t);
        return;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "gateway", t->name);
    cJSON_AddStringToObject(out, "id", t->id);
    int o = res->outcome >= 0 && res->outcome <= 2 ? res->outcome : ZD_GW_TRANSIENT;
    cJSON_AddStringToObject(out, "outcome", outcome_names[o]);
    cJSON_AddNumberToObject(out, "http_status", res->http_status);
    cJSON_AddStringToObject(out, "detail", res->detail);
    /* zd_gateway_test masked personal data in it already. */
    cJSON_AddStringToObject(out, "answer", answer ? answer : "");
    zd_req_reply_json(t->req, 200, out);
    free(t);
}

/* The optional string member name of body (NULL: absent) into *out; false after answering 400. */
static bool opt_string(zd_req *req, const cJSON *body, const char *name, size_t max,
                       const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    if (!v)
        return true;
    zd_error err;
    if (!cJSON_IsString(v)) {
        zd_error_set(&err, "invalid_type", name, "\"%s\" must be a string", name);
    } else if (strlen(v->valuestring) > max) {
        zd_error_set(&err, "out_of_range", name, "\"%s\" must be at most %zu bytes", name, max);
    } else {
        *out = v->valuestring;
        return true;
    }
    zd_req_reply_zderror(req, 400, &err);
    return false;
}

static void handle_test(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    const char *name = zd_req_param(req, "name");
    int gi = name ? zd_gateways_index(svc->gateways, name) : -1;
    if (gi < 0) {
        zd_req_reply_error(req, 404, "not_found", "no gateway with this name is configured");
        return;
    }
    zd_gateway *g = zd_gateways_at(svc->gateways, gi);
    if (!g) {
        zd_req_reply_error(req, 409, "gateway_unavailable",
                           "gateway \"%s\" is configured, but this zhidad has no instance of "
                           "it (delivery disabled or not started yet)",
                           name);
        return;
    }
    size_t len;
    zd_req_body(req, &len);
    cJSON *body = NULL;
    const char *to = "", *title = "zhida test notice",
               *text = "This is a test notice from zhida (POST /v1/gateways/{name}:test).";
    if (len > 0) {
        if (!(body = zd_req_json(req)))
            return;
        const cJSON *m;
        cJSON_ArrayForEach(m, body)
        {
            if (strcmp(m->string, "to") && strcmp(m->string, "title") &&
                strcmp(m->string, "body")) {
                zd_error err;
                zd_error_set(&err, "unknown_field", m->string,
                             "unknown member \"%.64s\" (a test takes \"to\", \"title\", \"body\")",
                             m->string);
                zd_req_reply_zderror(req, 400, &err);
                cJSON_Delete(body);
                return;
            }
        }
        if (!opt_string(req, body, "to", TO_MAX, &to) ||
            !opt_string(req, body, "title", TITLE_MAX, &title) ||
            !opt_string(req, body, "body", BODY_MAX, &text)) {
            cJSON_Delete(body);
            return;
        }
    }
    test_op *t = calloc(1, sizeof(*t));
    if (!t) {
        cJSON_Delete(body);
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        return;
    }
    unsigned char rnd[8];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        long long now = zd_mono_ms();
        memcpy(rnd, &now, sizeof(rnd));
    }
    char profile[24];
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(profile + 2 * i, 3, "%02x", rnd[i]);
    t->req = req;
    snprintf(t->name, sizeof(t->name), "%s", name);
    snprintf(t->id, sizeof(t->id), "test:%s:%s", profile, name);
    zd_notice n = {
        .id = t->id,
        .policy = "test",
        .profile = profile,
        .gateway = name,
        .to = to,
        .title = title,
        .body = text,
        .url = "",
        .category = "test",
        .urgent = 0,
        .attempt = 1,
    };
    int rc = zd_gateway_test(g, &n, tested, t);
    cJSON_Delete(body);
    if (rc) {
        free(t);
        zd_req_reply_error(req, rc == -ENOMEM ? 500 : 503,
                           rc == -ENOMEM ? "out_of_memory" : "gateway_unavailable",
                           "the gateway did not take the test notice (%s)", zd_strerror(rc));
    }
}

/* Names and types only, in the config's order: URLs, secrets and other options stay out of the
 * answer, since a viewer may call it and a gateway's URL can carry a token. */
static void handle_list(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    cJSON *out = cJSON_CreateObject();
    cJSON *list = out ? cJSON_AddArrayToObject(out, "gateways") : NULL;
    if (!list) {
        cJSON_Delete(out);
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        return;
    }
    const cJSON *all = svc->cfg ? svc->cfg->gateways : NULL;
    const cJSON *g;
    cJSON_ArrayForEach(g, all)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(g, "type");
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddStringToObject(o, "name", g->string);
        cJSON_AddStringToObject(o, "type", cJSON_IsString(type) ? type->valuestring : "");
        cJSON_AddItemToArray(list, o);
    }
    zd_req_reply_json(req, 200, out);
}

int zd_api_gateways_register(zd_service *svc)
{
    int rc = zd_http_route(svc->http, "GET", "/v1/gateways",
                           ZD_ROLE_ADMIN | ZD_ROLE_PUBLISHER | ZD_ROLE_VIEWER, handle_list, svc);
    if (rc == 0)
        rc = zd_http_route(svc->http, "POST", "/v1/gateways/{name}:test",
                           ZD_ROLE_ADMIN | ZD_ROLE_APP, handle_test, svc);
    return rc;
}
