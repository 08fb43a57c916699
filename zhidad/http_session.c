/* Who a request is: a Bearer key, or a console session's key with its CSRF token; and the
 * HTTP server's side of sessions (signing in with a key, the request's session, signing out).
 * The session table itself is zhidad/session.c. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/clock.h"
#include "zhidad/http_private.h"

static bool safe_method(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
           strcmp(method, "OPTIONS") == 0;
}

int zd_http_authenticate(zd_http *h, const char *a, const char *cookie, const char *csrf,
                         const char *method, bool touch, zd_http_auth *out)
{
    memset(out, 0, sizeof(*out));
    if (a) {
        /* A Bearer key decides alone: API clients never see sessions. */
        if (strncasecmp(a, "Bearer ", 7) != 0)
            return 401;
        a += 7;
        while (*a == ' ')
            a++;
        size_t n = strlen(a);
        while (n && (a[n - 1] == ' ' || a[n - 1] == '\t'))
            n--;
        out->had_token = n > 0;
        out->key = zd_keyset_find(h->keys, a, n);
        return out->key ? 0 : 401;
    }
    size_t len = 0;
    const char *id = cookie ? zd_cookie_value(cookie, ZD_SESSION_COOKIE, &len) : NULL;
    if (!id)
        return 401;
    out->had_token = true;
    const zd_session *sess = zd_sessions_find(h->sessions, id, len, zd_mono_ns(), touch);
    if (!sess)
        return 401;
    /* The session names its key: a reload that removed it leaves the session without one. */
    out->key = zd_keyset_find_name(h->keys, sess->key_name);
    if (!out->key)
        return 401;
    out->by_session = true;
    snprintf(out->session_id, sizeof(out->session_id), "%s", sess->id);
    /* The cookie goes with every request the browser makes to us, also those another site's
     * page causes; only our own page knows the token (SameSite=Strict is the second guard). */
    if (!safe_method(method) && !zd_session_token_eq(csrf, sess->csrf)) {
        out->csrf_failed = true;
        return 403;
    }
    return 0;
}

const char *zd_http_auth_challenge(const zd_http_auth *a)
{
    return a->had_token ? "Bearer realm=\"zhida\", error=\"invalid_token\""
                        : "Bearer realm=\"zhida\"";
}

const char *zd_http_auth_message(const zd_http_auth *a)
{
    if (a->csrf_failed)
        return "a request made with a session cookie must carry the session's X-CSRF-Token";
    return a->had_token ? "the API key or session is not valid (sessions end after "
                          "console.session_idle_s unused, or on sign-out)"
                        : "an API key is required: Authorization: Bearer <key>";
}

const zd_apikey *zd_http_find_key(zd_http *h, const char *token, size_t len)
{
    return zd_keyset_find(h->keys, token, len);
}

static void fill_info(const zd_http *h, const zd_session *s, zd_http_session_info *info)
{
    memset(info, 0, sizeof(*info));
    snprintf(info->id, sizeof(info->id), "%s", s->id);
    snprintf(info->csrf, sizeof(info->csrf), "%s", s->csrf);
    snprintf(info->key_name, sizeof(info->key_name), "%s", s->key_name);
    info->expires_unix_ms = zd_session_expires_unix_ms(h->sessions, s);
    info->idle_s = zd_sessions_idle_s(h->sessions);
}

int zd_http_session_create(zd_http *h, const zd_apikey *key, zd_http_session_info *info)
{
    int err = 0;
    const zd_session *s =
        zd_sessions_create(h->sessions, key->name, zd_mono_ns(), zd_unix_ms(), &err);
    if (!s)
        return err;
    zd_http_count_key_use(h, key, true);
    fill_info(h, s, info);
    return 0;
}

int zd_req_session(zd_req *r, zd_http_session_info *info)
{
    if (!r->h || !r->session_id[0])
        return -ENOENT;
    const zd_session *s =
        zd_sessions_find(r->h->sessions, r->session_id, strlen(r->session_id), zd_mono_ns(), false);
    if (!s)
        return -ENOENT;
    fill_info(r->h, s, info);
    return 0;
}

int zd_req_session_end(zd_req *r)
{
    if (!r->h || !r->session_id[0])
        return -ENOENT;
    bool ended = zd_sessions_end(r->h->sessions, r->session_id);
    r->session_id[0] = '\0';
    return ended ? 0 : -ENOENT;
}

int zd_http_sessions(const zd_http *h)
{
    return zd_sessions_count(h->sessions);
}
