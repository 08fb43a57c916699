/* The HTTP server's side of console sessions: signing in with a key, the request's session,
 * signing out. The session table itself is zhidad/session.c. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "zhidad/http_private.h"

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
