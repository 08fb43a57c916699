/* Console sign-in: POST /v1/sessions exchanges an API key for a session cookie and a CSRF
 * token; GET /v1/sessions/current tells the page who it is (and its token again after a
 * reload, since the page keeps nothing); DELETE /v1/sessions/current signs out. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "zhidad/api.h"
#include "zhidad/audit.h"
#include "zhidad/http.h"
#include "zhidad/service.h"

static void iso_utc(long long unix_ms, char *out, size_t cap)
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(unix_ms % 1000));
}

static cJSON *session_json(const zd_http_session_info *info, const zd_apikey *key)
{
    char exp[64];
    iso_utc(info->expires_unix_ms, exp, sizeof(exp));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "key_name", key->name);
    cJSON_AddStringToObject(o, "role", zd_role_name(key->role));
    cJSON_AddStringToObject(o, "scope", key->scope);
    cJSON_AddStringToObject(o, "csrf_token", info->csrf);
    cJSON_AddNumberToObject(o, "idle_timeout_s", info->idle_s);
    cJSON_AddStringToObject(o, "expires_at", exp);
    return o;
}

static void reply_field_error(zd_req *req, const char *code, const char *field, const char *msg)
{
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddStringToObject(extra, "field", field);
    zd_req_reply_error_extra(req, 400, code, msg, extra);
}

/* Creates the session of key and answers 201 with its cookie. */
static void create_session(zd_req *req, zd_service *svc, const zd_apikey *key)
{
    zd_http_session_info info;
    int rc = zd_http_session_create(svc->http, key, &info);
    if (rc != 0) {
        zd_req_reply_error(req, 500, "internal_error", "no session could be made (%s)",
                           zd_strerror(rc));
        return;
    }
    char cookie[256];
    snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d%s",
             "zd_session", info.id, svc->cfg->session_max_s,
             svc->cfg->cookie_secure ? "; Secure" : "");
    zd_req_set_header(req, "Set-Cookie", cookie);
    zd_audit(svc->redis, "session.create", key->name, zd_role_name(key->role), "");
    zd_req_reply_json(req, 201, session_json(&info, key));
    explicit_bzero(&info, sizeof(info));
    explicit_bzero(cookie, sizeof(cookie));
}

static void handle_create(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    /* The console sends the key the way every client does, as a Bearer token (and nowhere
     * else); a body {"key": ...} is accepted too, for clients that cannot set headers. */
    const char *auth = zd_req_header(req, "Authorization");
    if (auth) {
        size_t n = strlen(auth);
        const zd_apikey *key = n > 7 && strncasecmp(auth, "Bearer ", 7) == 0
                                   ? zd_http_find_key(svc->http, auth + 7, n - 7)
                                   : NULL;
        if (!key) {
            zd_req_set_header(req, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
            zd_req_reply_error(req, 401, "unauthorized", "the API key is not valid");
            return;
        }
        create_session(req, svc, key);
        return;
    }
    cJSON *body = zd_req_json(req);
    if (!body)
        return;
    const cJSON *k = NULL;
    for (const cJSON *m = body->child; m; m = m->next) {
        if (strcmp(m->string, "key") != 0) {
            reply_field_error(req, "unknown_field", m->string, "a sign-in body has only \"key\"");
            goto out;
        }
        k = m;
    }
    if (!k) {
        reply_field_error(req, "missing_field", "key", "\"key\" (an API key) is required");
        goto out;
    }
    if (!cJSON_IsString(k)) {
        reply_field_error(req, "invalid_type", "key", "\"key\" must be a string");
        goto out;
    }
    const zd_apikey *key = zd_http_find_key(svc->http, k->valuestring, strlen(k->valuestring));
    if (!key) {
        /* No WWW-Authenticate: the key came in the body, not as a Bearer token. */
        zd_req_reply_error(req, 401, "unauthorized", "the API key is not valid");
        goto out;
    }
    create_session(req, svc, key);
out:
    if (k && cJSON_IsString(k))
        explicit_bzero(k->valuestring, strlen(k->valuestring));
    cJSON_Delete(body);
}

static void no_session(zd_req *req)
{
    zd_req_reply_error(req, 404, "not_found",
                       "no session: this request was made with a Bearer key, not a session "
                       "cookie");
}

static void handle_current(zd_req *req, void *udata)
{
    zd_http_session_info info;
    if (zd_req_session(req, &info) != 0) {
        no_session(req);
        return;
    }
    zd_req_reply_json(req, 200, session_json(&info, zd_req_key(req)));
    explicit_bzero(&info, sizeof(info));
}

static void handle_end(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    if (zd_req_session_end(req) != 0) {
        no_session(req);
        return;
    }
    zd_req_set_header(req, "Set-Cookie",
                      "zd_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    zd_audit_req(svc->redis, req, "session.delete", "");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "deleted", true);
    zd_req_reply_json(req, 200, o);
}

int zd_api_sessions_register(zd_service *svc)
{
    int rc = zd_http_route(svc->http, "POST", "/v1/sessions", 0, handle_create, svc);
    rc |=
        zd_http_route(svc->http, "GET", "/v1/sessions/current", ZD_ROLES_ALL, handle_current, svc);
    rc |= zd_http_route(svc->http, "DELETE", "/v1/sessions/current", ZD_ROLES_ALL, handle_end, svc);
    return rc ? -EINVAL : 0;
}
