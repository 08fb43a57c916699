/* zhidad's HTTP server on evhttp: one generic callback routes every request, checks its key
 * and limits, and hands a zd_req to the handler; the zd_req lives until the handler replies. */
#include "zhidad/http.h"
#include "zhidad/http_private.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <netinet/in.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "common/clock.h"
#include "common/addr.h"
#include "common/log.h"
#include "zhidad/request_id.h"

#define MAX_SEGMENTS ZD_HTTP_MAX_SEGMENTS
#define MAX_CAPTURES ZD_HTTP_MAX_CAPTURES
#define JSON_CTYPE ZD_HTTP_JSON_CTYPE

typedef zd_http_seg seg;
typedef zd_http_status_count status_count;
typedef zd_http_route_stats route_stats;
typedef zd_route route;
typedef zd_conn conn;

/* The methods routes may have, in the order an Allow header lists them. HEAD is answered by
 * a path's GET route and OPTIONS by the server itself, for every path that has a route. */
static const struct {
    const char *name;
    enum evhttp_cmd_type cmd;
} methods[] = {
    {"GET", EVHTTP_REQ_GET},     {"POST", EVHTTP_REQ_POST},     {"PUT", EVHTTP_REQ_PUT},
    {"PATCH", EVHTTP_REQ_PATCH}, {"DELETE", EVHTTP_REQ_DELETE},
};
#define NMETHODS (sizeof(methods) / sizeof(methods[0]))

static const char *method_name(enum evhttp_cmd_type cmd)
{
    for (size_t i = 0; i < NMETHODS; i++) {
        if (methods[i].cmd == cmd)
            return methods[i].name;
    }
    switch (cmd) {
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    default:
        return "OTHER";
    }
}

const char *zd_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 304:
        return "Not Modified";
    case 308:
        return "Permanent Redirect";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 412:
        return "Precondition Failed";
    case 415:
        return "Unsupported Media Type";
    case 413:
        return "Payload Too Large";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

/* ---- statistics --------------------------------------------------------------------------- */

/* Up to 30 s: an import of a 64 MiB body takes seconds; previews and lookups take less than
 * a millisecond to tens of milliseconds. */
static const double latency_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                    0.25,   0.5,   1,      2.5,   5,    10,    30};
const zd_hist_bounds zd_http_latency_bounds = {latency_le,
                                               sizeof(latency_le) / sizeof(latency_le[0])};

void zd_http_stats_add(route_stats *s, int status, double seconds)
{
    int cls = status / 100;
    zd_hist_observe(&s->latency[cls >= 1 && cls <= 5 ? cls - 1 : 4], &zd_http_latency_bounds,
                    seconds);
    for (int i = 0; i < s->n; i++) {
        if (s->v[i].status == status) {
            s->v[i].count++;
            s->v[i].seconds += seconds;
            return;
        }
    }
    if (s->n == s->cap) {
        int ncap = s->cap ? s->cap * 2 : 4;
        status_count *nv = realloc(s->v, (size_t)ncap * sizeof(*nv));
        if (!nv)
            return; /* a lost sample is better than a failed reply */
        s->v = nv;
        s->cap = ncap;
    }
    s->v[s->n++] = (status_count){status, 1, seconds};
}

void zd_http_key_uses(zd_http *h, bool reset, zd_key_uses_fn fn, void *udata)
{
    zd_keyset *ks = h->keys;
    zd_key_uses *src = reset ? ks->since : ks->total;
    for (int i = 0; i < ks->n; i++) {
        if (src[i].used == 0 && src[i].denied == 0)
            continue;
        fn(&ks->keys[i], &src[i], udata);
        if (reset)
            src[i] = (zd_key_uses){0, 0};
    }
}

int zd_http_set_keys(zd_http *h, const zd_apikey *keys, int n, char *summary, size_t cap)
{
    zd_keyset *ks = zd_keyset_new(keys, n, h->keys, summary, cap);
    if (!ks)
        return -ENOMEM;
    /* A session stands for its key as it was at sign-in: one removed, or given another
     * secret, role or scope, ends its sessions. */
    for (int i = 0; i < h->keys->nactive; i++) {
        const zd_apikey *old = &h->keys->keys[i];
        const zd_apikey *now = zd_keyset_find_name(ks, old->name);
        if (!now || !zd_apikey_same_secret(old, now) || now->role != old->role ||
            strcmp(now->scope, old->scope) != 0)
            zd_sessions_end_key(h->sessions, old->name);
    }
    /* Requests in flight keep a reference to the set their key came from. */
    zd_keyset_unref(h->keys);
    h->keys = ks;
    return 0;
}

void zd_http_foreach_stat(const zd_http *h, void (*fn)(const zd_http_stat *st, void *udata),
                          void *udata)
{
    for (int i = 0; i <= h->nroutes; i++) {
        const route_stats *s = i < h->nroutes ? &h->routes[i].stats : &h->unmatched;
        const char *m = i < h->nroutes ? h->routes[i].method : "*";
        const char *p = i < h->nroutes ? h->routes[i].pattern : "(unmatched)";
        for (int j = 0; j < s->n; j++) {
            zd_http_stat st = {m, p, s->v[j].status, s->v[j].count, s->v[j].seconds};
            fn(&st, udata);
        }
    }
}

void zd_http_foreach_latency(const zd_http *h, void (*fn)(const zd_http_latency *l, void *udata),
                             void *udata)
{
    static const char *const classes[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int i = 0; i <= h->nroutes; i++) {
        const route_stats *s = i < h->nroutes ? &h->routes[i].stats : &h->unmatched;
        for (int c = 0; c < 5; c++) {
            if (s->latency[c].count == 0)
                continue;
            zd_http_latency l = {i < h->nroutes ? h->routes[i].method : "*",
                                 i < h->nroutes ? h->routes[i].pattern : "(unmatched)", classes[c],
                                 &s->latency[c]};
            fn(&l, udata);
        }
    }
}

int zd_http_connections(const zd_http *h)
{
    return h->nconns;
}

int zd_http_pending(const zd_http *h)
{
    return h->npending;
}

/* ---- routes ------------------------------------------------------------------------------- */

static void route_clear(route *rt)
{
    for (int i = 0; i < rt->nsegs; i++) {
        free(rt->segs[i].prefix);
        free(rt->segs[i].capture);
        free(rt->segs[i].suffix);
    }
    free(rt->pattern);
    free(rt->stats.v);
    memset(rt, 0, sizeof(*rt));
}

static char *dup_range(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static int parse_pattern(route *rt, const char *pattern)
{
    if (pattern[0] != '/')
        return -EINVAL;
    const char *p = pattern + 1;
    while (1) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        /* Only the last segment may be empty: "/console/" is the folder itself. */
        if (rt->nsegs == MAX_SEGMENTS || (n == 0 && (end || rt->nsegs == 0)))
            return -EINVAL;
        seg *s = &rt->segs[rt->nsegs++];
        const char *open = memchr(p, '{', n);
        if (!open) {
            if (memchr(p, '}', n))
                return -EINVAL;
            if (!(s->prefix = dup_range(p, n)))
                return -ENOMEM;
            s->prefix_len = n;
            rt->literal_len += (int)n;
        } else {
            const char *close = memchr(open, '}', n - (size_t)(open - p));
            if (!close || close == open + 1 || rt->ncaptures == MAX_CAPTURES)
                return -EINVAL;
            size_t after = n - (size_t)(close + 1 - p);
            if (memchr(open + 1, '{', (size_t)(close - open - 1)) ||
                memchr(close + 1, '{', after) || memchr(close + 1, '}', after))
                return -EINVAL;
            s->prefix_len = (size_t)(open - p);
            s->suffix_len = after;
            s->prefix = dup_range(p, s->prefix_len);
            s->capture = dup_range(open + 1, (size_t)(close - open - 1));
            s->suffix = dup_range(close + 1, after);
            if (!s->prefix || !s->capture || !s->suffix)
                return -ENOMEM;
            for (int i = 0; i < rt->nsegs - 1; i++) {
                if (rt->segs[i].capture && strcmp(rt->segs[i].capture, s->capture) == 0)
                    return -EINVAL;
            }
            rt->ncaptures++;
            rt->literal_len += (int)(s->prefix_len + s->suffix_len);
        }
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

int zd_http_route_flags(zd_http *h, const char *method, const char *pattern, unsigned roles,
                        unsigned flags, zd_handler_fn fn, void *udata)
{
    route rt;
    memset(&rt, 0, sizeof(rt));
    size_t m;
    for (m = 0; m < NMETHODS; m++) {
        if (strcmp(methods[m].name, method) == 0)
            break;
    }
    if (m == NMETHODS || !fn || (roles & ~(unsigned)ZD_ROLES_ALL))
        return -EINVAL;
    for (int i = 0; i < h->nroutes; i++) {
        if (strcmp(h->routes[i].method, method) == 0 && strcmp(h->routes[i].pattern, pattern) == 0)
            return -EEXIST;
    }
    snprintf(rt.method, sizeof(rt.method), "%s", method);
    rt.cmd = methods[m].cmd;
    rt.roles = roles;
    rt.flags = flags;
    rt.fn = fn;
    rt.udata = udata;
    int rc = -ENOMEM;
    if (!(rt.pattern = strdup(pattern)))
        goto fail;
    if ((rc = parse_pattern(&rt, pattern)) != 0)
        goto fail;
    if (h->nroutes == h->cap) {
        int ncap = h->cap ? h->cap * 2 : 16;
        route *nr = realloc(h->routes, (size_t)ncap * sizeof(route));
        rc = -ENOMEM;
        if (!nr)
            goto fail;
        h->routes = nr;
        h->cap = ncap;
    }
    h->routes[h->nroutes++] = rt;
    return 0;
fail:
    route_clear(&rt);
    return rc;
}

int zd_http_route(zd_http *h, const char *method, const char *pattern, unsigned roles,
                  zd_handler_fn fn, void *udata)
{
    return zd_http_route_flags(h, method, pattern, roles, 0, fn, udata);
}

void zd_http_routes(const zd_http *h, zd_route_fn fn, void *udata)
{
    for (int i = 0; i < h->nroutes; i++)
        fn(h->routes[i].method, h->routes[i].pattern, h->routes[i].roles, udata);
}

/* Matches decoded path segments against rt; on success fills caps (borrowed from segs). */
static bool route_match(const route *rt, char **segs, int nsegs, const char **caps, size_t *caplens)
{
    if (rt->nsegs != nsegs)
        return false;
    int k = 0;
    for (int i = 0; i < nsegs; i++) {
        const seg *s = &rt->segs[i];
        size_t n = strlen(segs[i]);
        if (!s->capture) {
            if (n != s->prefix_len || memcmp(segs[i], s->prefix, n) != 0)
                return false;
            continue;
        }
        /* A capture is never empty. */
        if (n <= s->prefix_len + s->suffix_len || memcmp(segs[i], s->prefix, s->prefix_len) != 0 ||
            memcmp(segs[i] + n - s->suffix_len, s->suffix, s->suffix_len) != 0)
            return false;
        caps[k] = segs[i] + s->prefix_len;
        caplens[k] = n - s->prefix_len - s->suffix_len;
        k++;
    }
    return true;
}

/* ---- replies ------------------------------------------------------------------------------ */

static void req_free(zd_req *r)
{
    zd_keyset_unref(r->ks);
    for (int i = 0; i < MAX_CAPTURES; i++)
        free(r->params[i]);
    if (r->query_parsed)
        evhttp_clear_headers(&r->query);
    free(r->path);
    free(r);
}

static void unlink_req(zd_http *h, zd_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        h->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    h->npending--;
}

static void cleanup_cjson(const void *data, size_t len, void *arg)
{
    cJSON_free((void *)data);
}

/* Sends (if the client is still there) and frees r. body is added by reference when free_body
 * is set (a cJSON_Print result), copied otherwise. ctype NULL: no body at all (204). */
static void finish(zd_req *r, int status, const char *ctype, const char *body, size_t len,
                   bool free_body)
{
    zd_http *h = r->h;
    if (r->ev && !r->detached) {
        struct evkeyvalq *oh = evhttp_request_get_output_headers(r->ev);
        if (ctype)
            evhttp_add_header(oh, "Content-Type", ctype);
        /* Replies may carry personal data: keep them out of caches (the console's static
         * files set their own). */
        if (!evhttp_find_header(oh, "Cache-Control"))
            evhttp_add_header(oh, "Cache-Control", "no-store");
        evhttp_add_header(oh, "X-Content-Type-Options", "nosniff");
        evhttp_add_header(oh, "X-Request-Id", r->rid);
        /* Every 503 is temporary: say when to come back, unless the handler did. */
        if (status == 503 && !evhttp_find_header(oh, "Retry-After"))
            evhttp_add_header(oh, "Retry-After", ZD_HTTP_RETRY_AFTER_S);
        if (h && h->draining)
            evhttp_add_header(oh, "Connection", "close");
        struct evbuffer *out = evhttp_request_get_output_buffer(r->ev);
        if (r->head_only) {
            /* HEAD: the headers GET would send, its length included, and no body. */
            char n[24];
            snprintf(n, sizeof(n), "%zu", len);
            if (ctype)
                evhttp_add_header(oh, "Content-Length", n);
        } else if (free_body) {
            if (evbuffer_add_reference(out, body, len, cleanup_cjson, NULL) != 0)
                cJSON_free((void *)body);
            free_body = false;
        } else if (len) {
            evbuffer_add(out, body, len);
        }
        evhttp_send_reply(r->ev, status, zd_http_reason(status), NULL);
    } else if (r->ev) {
        /* Detached: nobody to answer; the request is ours to free. */
        evhttp_request_free(r->ev);
    }
    if (free_body)
        cJSON_free((void *)body);
    if (h) {
        double secs = (double)(zd_mono_ns() - r->t0_ns) / 1e9;
        zd_http_stats_add(r->rt ? &h->routes[r->rt - h->routes].stats : &h->unmatched, status,
                          secs);
        /* Paths hold ids, not personal data; bodies and query strings are never logged. */
        bool scoped = !zd_log_request_id();
        if (scoped)
            zd_log_set_request_id(r->rid);
        zd_debug("http: %s %s %d %.2f ms%s", r->method, r->path ? r->path : "-", status, secs * 1e3,
                 r->alive ? "" : " (client gone)");
        if (scoped)
            zd_log_set_request_id(NULL);
        if (r->c)
            r->c->cur = NULL;
        unlink_req(h, r);
    }
    req_free(r);
}

void zd_req_reply_empty(zd_req *r, int status)
{
    finish(r, status, NULL, "", 0, false);
}

void zd_req_reply_text(zd_req *r, int status, const char *content_type, const char *text,
                       size_t len)
{
    finish(r, status, content_type ? content_type : "text/plain; charset=utf-8", text, len, false);
}

void zd_req_reply_json(zd_req *r, int status, cJSON *body)
{
    char *s = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    if (!s) {
        static const char oom[] =
            "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}";
        finish(r, 500, JSON_CTYPE, oom, sizeof(oom) - 1, false);
        return;
    }
    finish(r, status, JSON_CTYPE, s, strlen(s), true);
}

void zd_req_reply_error_extra(zd_req *r, int status, const char *code, const char *message,
                              cJSON *extra)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    if (e) {
        cJSON_AddStringToObject(e, "code", code);
        cJSON_AddStringToObject(e, "message", message);
        cJSON_AddStringToObject(e, "request_id", r->rid);
        if (extra) {
            cJSON *m = extra->child;
            while (m) {
                cJSON *next = m->next;
                cJSON *item = cJSON_DetachItemViaPointer(extra, m);
                /* Not cJSON_ReplaceItemInObject: it frees item->string before copying it. */
                cJSON_DeleteItemFromObjectCaseSensitive(e, item->string);
                cJSON_AddItemToObject(e, item->string, item);
                m = next;
            }
        }
    }
    cJSON_Delete(extra);
    zd_req_reply_json(r, status, root);
}

static void vreply_error(zd_req *r, int status, const char *code, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void vreply_error(zd_req *r, int status, const char *code, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    zd_req_reply_error_extra(r, status, code, msg, NULL);
}

void zd_req_reply_error(zd_req *r, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreply_error(r, status, code, fmt, ap);
    va_end(ap);
}

void zd_req_reply_zderror(zd_req *r, int status, const zd_error *e)
{
    cJSON *extra = NULL;
    if (e->field[0]) {
        extra = cJSON_CreateObject();
        cJSON_AddStringToObject(extra, "field", e->field);
    }
    zd_req_reply_error_extra(r, status, e->code[0] ? e->code : "bad_request", e->message, extra);
}

void zd_req_set_header(zd_req *r, const char *name, const char *value)
{
    if (r->ev && !r->detached)
        evhttp_add_header(evhttp_request_get_output_headers(r->ev), name, value);
}

/* ---- dispatch ----------------------------------------------------------------------------- */

/* The id of a request evhttp parsed (zhidad/request_id.h). */
static void request_id_of(struct evhttp_request *ev, char rid[ZD_REQUEST_ID_MAX + 1])
{
    struct evkeyvalq *ih = evhttp_request_get_input_headers(ev);
    zd_request_id_pick(evhttp_find_header(ih, "X-Request-Id"),
                       evhttp_find_header(ih, "traceparent"), rid);
}

/* Replies to a request for which no zd_req could be set up (code and msg: literals that need
 * no JSON escaping). */
static void early_reply(zd_http *h, struct evhttp_request *ev, int status, const char *code,
                        const char *msg, bool close)
{
    char rid[ZD_REQUEST_ID_MAX + 1];
    request_id_of(ev, rid);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(ev);
    evhttp_add_header(oh, "Content-Type", JSON_CTYPE);
    evhttp_add_header(oh, "X-Request-Id", rid);
    if (status == 503)
        evhttp_add_header(oh, "Retry-After", ZD_HTTP_RETRY_AFTER_S);
    if (close)
        evhttp_add_header(oh, "Connection", "close");
    struct evbuffer *out = evhttp_request_get_output_buffer(ev);
    /* The id needs no escaping either: request ids hold neither quotes nor backslashes. */
    evbuffer_add_printf(out,
                        "{\"error\":{\"code\":\"%s\",\"message\":\"%s\",\"request_id\":\"%s\"}}",
                        code, msg, rid);
    evhttp_send_reply(ev, status, zd_http_reason(status), NULL);
    zd_http_stats_add(&h->unmatched, status, 0);
}

/* Splits and url-decodes path into segs (each malloc'd). Returns the count, or -1. */
static int split_path(const char *path, char **segs)
{
    int n = 0;
    if (path[0] != '/')
        return -1;
    const char *p = path + 1;
    while (1) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (n == MAX_SEGMENTS)
            return -1;
        char *raw = dup_range(p, len);
        size_t dlen = 0;
        char *dec = raw ? evhttp_uridecode(raw, 0, &dlen) : NULL;
        free(raw);
        if (!dec)
            return -1;
        segs[n++] = dec;
        /* A %00 would cut the segment short for every C string function after this. */
        if (strlen(dec) != dlen)
            return -1;
        if (!end)
            break;
        p = end + 1;
    }
    return n;
}

void zd_http_count_key_use(zd_http *h, const zd_apikey *key, bool allowed)
{
    /* key comes from the current set: it was authenticated in this loop turn. */
    zd_keyset *ks = h->keys;
    size_t k = (size_t)(key - ks->keys);
    if (k < (size_t)ks->n) {
        *(allowed ? &ks->total[k].used : &ks->total[k].denied) += 1;
        *(allowed ? &ks->since[k].used : &ks->since[k].denied) += 1;
    }
}

bool zd_http_route_ready(const zd_http *h, const route *rt)
{
    return !(rt->flags & ZD_ROUTE_NEEDS_READY) || !h->ready || h->ready(h->ready_udata);
}

void zd_http_set_ready(zd_http *h, bool (*ready)(void *udata), void *udata)
{
    h->ready = ready;
    h->ready_udata = udata;
}

size_t zd_http_route_body_max(const zd_http *h, const route *rt)
{
    return rt && (rt->flags & ZD_ROUTE_LARGE_BODY) ? h->cfg->import_body_max : h->cfg->body_max;
}

/* "GET, HEAD, POST, ..., OPTIONS" for the methods in mask (bits of methods[]). */
static void format_allow(unsigned mask, char *allow, size_t cap)
{
    size_t o = 0;
    allow[0] = '\0';
    for (size_t m = 0; m < NMETHODS; m++) {
        if (!(mask & (1u << m)))
            continue;
        o += (size_t)snprintf(allow + o, o < cap ? cap - o : 0, "%s%s%s", o ? ", " : "",
                              methods[m].name, methods[m].cmd == EVHTTP_REQ_GET ? ", HEAD" : "");
    }
    if (mask)
        snprintf(allow + o, o < cap ? cap - o : 0, ", OPTIONS");
}

const route *zd_http_find_route(zd_http *h, const char *method, const char *path, char *allow,
                                size_t allowcap, char *params[MAX_CAPTURES], int *status)
{
    char *segs[MAX_SEGMENTS] = {0};
    int nsegs = split_path(path, segs);
    const route *best = NULL;
    const char *caps[MAX_CAPTURES];
    size_t caplens[MAX_CAPTURES];
    unsigned mask = 0; /* the path's methods */
    /* HEAD is GET without the body. */
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
    for (int i = 0; nsegs > 0 && i < h->nroutes; i++) {
        const route *rt = &h->routes[i];
        const char *c2[MAX_CAPTURES];
        size_t l2[MAX_CAPTURES];
        if (!route_match(rt, segs, nsegs, c2, l2))
            continue;
        for (size_t m = 0; m < NMETHODS; m++) {
            if (methods[m].cmd == rt->cmd)
                mask |= 1u << m;
        }
        if (strcmp(rt->method, want) != 0)
            continue;
        if (best && best->literal_len >= rt->literal_len)
            continue;
        best = rt;
        memcpy(caps, c2, sizeof(caps));
        memcpy(caplens, l2, sizeof(caplens));
    }
    format_allow(mask, allow, allowcap);
    *status = best ? 0 : nsegs < 0 ? 400 : mask ? 405 : 404;
    for (int k = 0; best && params && k < best->ncaptures; k++) {
        if (!(params[k] = dup_range(caps[k], caplens[k]))) {
            *status = 500;
            best = NULL;
        }
    }
    for (int i = 0; i < MAX_SEGMENTS; i++)
        free(segs[i]);
    return best;
}

static void dispatch(zd_http *h, zd_req *r)
{
    struct evhttp_request *ev = r->ev;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    if (!path || !*path)
        path = "/";
    r->path = strdup(path);
    if (!r->path) {
        zd_req_reply_error(r, 500, "out_of_memory", "out of memory");
        return;
    }

    char allow[96];
    int status;
    const route *best =
        zd_http_find_route(h, r->method, path, allow, sizeof(allow), r->params, &status);
    if (!best) {
        if (status == 500) {
            zd_req_reply_error(r, 500, "out_of_memory", "out of memory");
        } else if (status == 400) {
            zd_req_reply_error(r, 400, "bad_request", "the path is malformed");
        } else if (status == 405 && strcmp(r->method, "OPTIONS") == 0) {
            /* No key needed: the methods of a path are in the API's documentation anyway.
             * No CORS headers: browsers are not among zhida's clients. */
            zd_req_set_header(r, "Allow", allow);
            finish(r, 204, NULL, "", 0, false);
        } else if (status == 405) {
            zd_req_set_header(r, "Allow", allow);
            zd_req_reply_error(r, 405, "method_not_allowed", "%s is not allowed here; allowed: %s",
                               r->method, allow);
        } else {
            zd_req_reply_error(r, 404, "not_found", "no such endpoint");
        }
        return;
    }
    r->rt = best;

    TAILQ_INIT(&r->query);
    r->query_parsed = true;
    if (query && evhttp_parse_query_str(query, &r->query) != 0) {
        zd_req_reply_error(r, 400, "bad_request", "the query string is malformed");
        return;
    }

    if (best->roles) {
        zd_http_auth auth;
        int st =
            zd_http_authenticate(h, zd_req_header(r, "Authorization"), zd_req_header(r, "Cookie"),
                                 zd_req_header(r, "X-CSRF-Token"), r->method, true, &auth);
        r->key = auth.key;
        /* The key stays valid until the reply, even if a reload replaces the set. */
        if (r->key)
            r->ks = zd_keyset_ref(h->keys);
        if (st == 401) {
            zd_req_set_header(r, "WWW-Authenticate", zd_http_auth_challenge(&auth));
            zd_req_reply_error(r, 401, "unauthorized", "%s", zd_http_auth_message(&auth));
            return;
        }
        if (st == 403) {
            zd_http_count_key_use(h, r->key, false);
            zd_req_reply_error(r, 403, "csrf_failed", "%s", zd_http_auth_message(&auth));
            return;
        }
        if (auth.by_session)
            snprintf(r->session_id, sizeof(r->session_id), "%s", auth.session_id);
        bool allowed = (r->key->role & best->roles) != 0;
        zd_http_count_key_use(h, r->key, allowed);
        if (!allowed) {
            zd_req_reply_error(r, 403, "forbidden", "the %s key \"%s\" may not %s %s",
                               zd_role_name(r->key->role), r->key->name, best->method,
                               best->pattern);
            return;
        }
    }

    /* Also checked from the headers before the body was read (http_conn.c); this catches
     * what reached us another way. */
    size_t limit = zd_http_route_body_max(h, best);
    if (evbuffer_get_length(evhttp_request_get_input_buffer(ev)) > limit) {
        zd_req_reply_error(r, 413, "body_too_large", "the body is larger than %zu bytes", limit);
        return;
    }
    if (!zd_http_route_ready(h, best)) {
        zd_req_set_header(r, "Retry-After", ZD_HTTP_RETRY_AFTER_NOT_READY_S);
        zd_req_reply_error(r, 503, "not_ready",
                           "zhidad is not ready (Redis or the index): nothing was applied; "
                           "retry later");
        return;
    }
    /* Lines the handler logs before it returns name the request. */
    zd_log_set_request_id(r->rid);
    best->fn(r, best->udata);
    zd_log_set_request_id(NULL);
}

static void gencb(struct evhttp_request *ev, void *arg)
{
    zd_http *h = arg;
    conn *c = zd_http_conn_find(h, evhttp_request_get_connection(ev));
    if (c)
        zd_http_conn_request(c, ev);
    if (h->draining) {
        early_reply(h, ev, 503, "shutting_down", "the server is shutting down", true);
        return;
    }
    if (!c) {
        /* Only when the connection could not be tracked at accept (out of memory). */
        early_reply(h, ev, 503, "out_of_memory", "out of memory", true);
        return;
    }
    zd_req *r = calloc(1, sizeof(*r));
    if (!r) {
        early_reply(h, ev, 503, "out_of_memory", "out of memory", true);
        return;
    }
    r->h = h;
    r->ev = ev;
    r->alive = true;
    r->method = method_name(evhttp_request_get_command(ev));
    r->head_only = evhttp_request_get_command(ev) == EVHTTP_REQ_HEAD;
    request_id_of(ev, r->rid);
    r->c = c;
    r->t0_ns = zd_mono_ns();
    c->cur = r;
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
    h->npending++;
    dispatch(h, r);
}

/* ---- server ------------------------------------------------------------------------------- */

zd_http *zd_http_new(struct event_base *base, const zd_config *cfg)
{
    zd_http *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->base = base;
    h->cfg = cfg;
    h->nbuckets = 64;
    while (h->nbuckets < (size_t)cfg->max_connections * 2 && h->nbuckets < 65536)
        h->nbuckets *= 2;
    h->buckets = calloc(h->nbuckets, sizeof(conn *));
    h->http = evhttp_new(base);
    h->keys = zd_keyset_new(cfg->keys, cfg->nkeys, NULL, NULL, 0);
    h->sessions = zd_sessions_new(cfg->max_sessions, cfg->session_idle_s, cfg->session_max_s);
    if (!h->buckets || !h->http || !h->keys || !h->sessions || zd_http_conn_init(h) != 0)
        goto fail;
    /* Each request's own limit is set on its connection once its route is known from its
     * headers (http_conn.c); until then the smaller one holds. */
    evhttp_set_max_body_size(h->http, (ev_ssize_t)cfg->body_max);
    evhttp_set_max_headers_size(h->http, (ev_ssize_t)cfg->header_max);
    struct timeval tv = {cfg->http_timeout_s, 0};
    evhttp_set_timeout_tv(h->http, &tv);
    /* Without it a client sent evhttp's own 413 mid-upload sees a reset instead of the
     * answer. (Our own refusals linger in http_conn.c.) */
    evhttp_set_flags(h->http, EVHTTP_SERVER_LINGERING_CLOSE);
    /* Every method evhttp knows reaches dispatch(), so that each gets a JSON answer (405 with
     * Allow for those no route has) rather than evhttp's HTML 501. */
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                            EVHTTP_REQ_CONNECT);
    evhttp_set_gencb(h->http, gencb, h);
    return h;
fail:
    zd_http_free(h);
    return NULL;
}

int zd_http_listen(zd_http *h, const char *addr)
{
    char host[64];
    int port;
    if (zd_addr_split(addr, host, sizeof(host), &port) != 0)
        return -EINVAL;
    if (h->nbound == (int)(sizeof(h->bound) / sizeof(h->bound[0])))
        return -ENOSPC;
    errno = 0;
    struct evhttp_bound_socket *b =
        evhttp_bind_socket_with_handle(h->http, host, (ev_uint16_t)port);
    if (!b)
        return errno ? -errno : -EADDRNOTAVAIL;
    h->bound[h->nbound++] = b;
    zd_http_conn_listener(h, b);
    return 0;
}

int zd_http_port(const zd_http *h)
{
    if (h->nbound == 0)
        return 0;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    evutil_socket_t fd = evhttp_bound_socket_get_fd(h->bound[0]);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

void zd_http_stop_accepting(zd_http *h)
{
    h->draining = true;
    for (int i = 0; i < h->nbound; i++)
        evhttp_del_accept_socket(h->http, h->bound[i]);
    h->nbound = 0;
    zd_http_conn_stop(h);
}

void zd_http_free(zd_http *h)
{
    if (!h)
        return;
    /* Closing the connections runs the close callback (http_conn.c) for each, which lets go
     * of the requests libevent frees; what is left was detached and belongs to its handler. */
    if (h->http)
        evhttp_free(h->http);
    zd_http_conn_free_all(h);
    while (h->reqs) {
        zd_req *r = h->reqs;
        unlink_req(h, r);
        r->h = NULL;
        r->c = NULL;
        r->alive = false;
        if (!r->detached)
            r->ev = NULL; /* freed with its connection */
    }
    free(h->buckets);
    for (int i = 0; i < h->nroutes; i++)
        route_clear(&h->routes[i]);
    free(h->routes);
    free(h->unmatched.v);
    zd_keyset_unref(h->keys);
    zd_sessions_free(h->sessions);
    free(h);
}
