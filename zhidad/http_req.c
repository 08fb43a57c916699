/* The HTTP server's request accessors: path captures, query, headers, body (as bytes and as
 * JSON), the key, the request id, and whether the client is still there. Split from http.c,
 * which routes, dispatches and replies. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "common/log.h"
#include "profiles/json.h"
#include "zhidad/http_private.h"

const char *zd_req_param(zd_req *r, const char *name)
{
    if (!r->rt)
        return NULL;
    int k = 0;
    for (int i = 0; i < r->rt->nsegs; i++) {
        if (!r->rt->segs[i].capture)
            continue;
        if (strcmp(r->rt->segs[i].capture, name) == 0)
            return r->params[k];
        k++;
    }
    return NULL;
}

const char *zd_req_query(zd_req *r, const char *name)
{
    return r->query_parsed ? evhttp_find_header(&r->query, name) : NULL;
}

const char *zd_req_header(zd_req *r, const char *name)
{
    if (!r->ev || r->detached)
        return NULL;
    return evhttp_find_header(evhttp_request_get_input_headers(r->ev), name);
}

const char *zd_req_path(zd_req *r)
{
    return r->path ? r->path : "/";
}

const char *zd_req_method(zd_req *r)
{
    return r->method;
}

const zd_apikey *zd_req_key(zd_req *r)
{
    return r->key;
}

const char *zd_req_id(const zd_req *r)
{
    return r->rid;
}

void zd_req_log(zd_req *r, enum zd_log_level level, const char *fmt, ...)
{
    char msg[1024], prev[ZD_REQUEST_ID_MAX + 1];
    const char *cur = zd_log_request_id();
    snprintf(prev, sizeof(prev), "%s", cur ? cur : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    zd_log_set_request_id(r->rid);
    zd_log(level, "%s", msg);
    zd_log_set_request_id(prev);
}

bool zd_req_content_type_is(zd_req *r, const char *type)
{
    const char *ct = zd_req_header(r, "Content-Type");
    if (!ct)
        return false;
    ct += strspn(ct, " \t");
    size_t n = strlen(type);
    if (strncasecmp(ct, type, n) != 0)
        return false;
    /* The media type ends there; parameters (charset=...) may follow. */
    ct += n;
    ct += strspn(ct, " \t");
    return *ct == '\0' || *ct == ';';
}

const char *zd_req_body(zd_req *r, size_t *len)
{
    if (!r->ev || r->detached) {
        *len = 0;
        return "";
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
    if (!r->body_ready) {
        /* One contiguous, NUL-terminated block inside the request's own buffer: a 64 MiB
         * import is not copied again. */
        r->body_len = evbuffer_get_length(in);
        if (evbuffer_add(in, "", 1) != 0) {
            *len = 0;
            return "";
        }
        r->body_ready = true;
    }
    const char *p = (const char *)evbuffer_pullup(in, -1);
    *len = p ? r->body_len : 0;
    return p ? p : "";
}

cJSON *zd_req_json(zd_req *r)
{
    size_t len;
    const char *body = zd_req_body(r, &len);
    const zd_config *cfg = r->h ? r->h->cfg : NULL;
    size_t limit =
        cfg ? (r->rt && (r->rt->flags & ZD_ROUTE_LARGE_BODY) ? cfg->import_body_max : cfg->body_max)
            : SIZE_MAX;
    int max_depth = cfg ? cfg->json_depth_max : ZD_JSON_DEPTH_DEFAULT;
    if (len > limit) {
        zd_req_reply_error(r, 413, "body_too_large", "the body is larger than %zu bytes", limit);
        return NULL;
    }
    /* The same strict parser as profile documents and import lines (profiles/json.h). */
    cJSON *j;
    zd_error e;
    int rc = zd_json_parse(body, len, max_depth, &j, &e);
    if (rc != 0) {
        zd_req_reply_zderror(r, rc == -ENOMEM ? 500 : 400, &e);
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        zd_req_reply_error(r, 400, "bad_json", "the body must be a JSON object");
        return NULL;
    }
    return j;
}

bool zd_req_alive(const zd_req *r)
{
    if (!r->alive || !r->ev || r->detached)
        return false;
    struct evhttp_connection *evcon = evhttp_request_get_connection(r->ev);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0)
        return false;
    /* evhttp stops reading while a request is being handled, so it would not notice an EOF
     * until it writes the reply: peek for it. */
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return false;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return false;
    return true;
}
