/* zhidad's HTTP server: routing, bearer-key auth, input limits (checked from the headers,
 * before a body is read), request deadlines and JSON replies on libevent 2.1 evhttp. A request
 * handle (zd_req) survives until its one reply, which may come later from a Redis callback,
 * and copes with the client going away first. */
#ifndef ZD_HTTP_H
#define ZD_HTTP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <zhida/error.h>

#include "common/log.h"
#include "common/metrics.h"
#include "zhidad/config.h"

struct event_base;
typedef struct cJSON cJSON;
typedef struct zd_http zd_http;
typedef struct zd_req zd_req;
typedef void (*zd_handler_fn)(zd_req *req, void *udata);

/* Creates a server on base with cfg's limits (both borrowed; they must outlive it).
 * NULL on ENOMEM. Caller frees with zd_http_free(). */
zd_http *zd_http_new(struct event_base *base, const zd_config *cfg);

/* Listens on "IP:PORT" ("[::1]:PORT", "localhost:PORT"; port 0 picks a free one, see
 * zd_http_port()). May be called more than once. Returns 0 or -errno (-EADDRINUSE...). */
int zd_http_listen(zd_http *h, const char *addr);

/* The port of the first listening socket, 0 if none. */
int zd_http_port(const zd_http *h);

/* Route flags. A route's body limit and roles are checked from a request's headers, before
 * its body is read (413, 401, 403). */
#define ZD_ROUTE_LARGE_BODY 1u /* body limit is limits.import_body_max, not limits.body_max */
/* While the service is not ready (zd_http_set_ready), requests are refused whole with 503
 * not_ready and Retry-After, from their headers when they have a body: nothing of them is
 * applied. */
#define ZD_ROUTE_NEEDS_READY 2u

/* Adds a route. method: "GET", "POST", "PUT", "PATCH" or "DELETE". pattern: "/"-separated
 * segments, each literal or with one {name} capture that may have a literal prefix and suffix:
 * "/v1/profiles/{id}", "/v1/profiles/{id}/inbox/{notice}:read", "/v1/rules:preview". When
 * several patterns match a path, the one with the most literal characters wins. roles is a
 * mask of ZD_ROLE_*; 0 = no auth (healthz, readyz, metrics). Returns 0, or -EINVAL for a bad
 * pattern or method, -EEXIST for a duplicate, -ENOMEM. Register before zd_http_listen(). */
int zd_http_route(zd_http *h, const char *method, const char *pattern, unsigned roles,
                  zd_handler_fn fn, void *udata);
int zd_http_route_flags(zd_http *h, const char *method, const char *pattern, unsigned roles,
                        unsigned flags, zd_handler_fn fn, void *udata);

/* Calls fn once per registered route, in registration order: its method, pattern and roles
 * (a mask of ZD_ROLE_*; 0 = no auth). The strings are valid only during the call. For
 * `zhidad --print-routes`, which tests compare with docs/openapi.json. */
typedef void (*zd_route_fn)(const char *method, const char *pattern, unsigned roles, void *udata);
void zd_http_routes(const zd_http *h, zd_route_fn fn, void *udata);

/* The readiness ZD_ROUTE_NEEDS_READY routes wait for: ready(udata) (both borrowed) is asked
 * for each of their requests. Without it they are always served. */
void zd_http_set_ready(zd_http *h, bool (*ready)(void *udata), void *udata);

/* Graceful stop, step 1: closes the listening sockets; requests that still arrive on open
 * keep-alive connections get 503 "shutting_down" and the connection is closed. */
void zd_http_stop_accepting(zd_http *h);
/* Requests accepted and not yet replied to. */
int zd_http_pending(const zd_http *h);

/* Closes every connection and frees h. A handler still holding a zd_req may reply to it
 * later: that reply only frees it. zd_http_free(NULL) is a no-op. */
void zd_http_free(zd_http *h);

/* Per route and status counters for /metrics. method "*" and pattern "(unmatched)" collect
 * requests that matched no route (404, 405, and 503 while stopping). */
typedef struct zd_http_stat {
    const char *method, *pattern; /* valid only during the callback */
    int status;
    unsigned long count;
    double seconds; /* sum of the time from request to reply */
} zd_http_stat;
void zd_http_foreach_stat(const zd_http *h, void (*fn)(const zd_http_stat *st, void *udata),
                          void *udata);
/* Request latency (seconds from the request's arrival to its reply) per route and status
 * class, as histograms with the bucket bounds zd_http_latency_bounds. Classes without a
 * request are skipped. A status class, not the status, keeps the series per route few. */
typedef struct zd_http_latency {
    const char *method, *pattern; /* valid only during the callback */
    const char *status_class;     /* "1xx" .. "5xx" */
    const zd_hist *hist;          /* valid only during the callback */
} zd_http_latency;
extern const zd_hist_bounds zd_http_latency_bounds;
void zd_http_foreach_latency(const zd_http *h, void (*fn)(const zd_http_latency *l, void *udata),
                             void *udata);
/* Requests per API key: let through (`used`) and refused with 403 (`denied`). */
typedef struct zd_key_uses {
    unsigned long used, denied;
} zd_key_uses;
typedef void (*zd_key_uses_fn)(const zd_apikey *key, const zd_key_uses *uses, void *udata);
/* Calls fn for every key with requests: the totals since start (reset = false), or the counts
 * since the previous call with reset = true, which then starts them again from zero. Both
 * pointers are valid only during the call. */
void zd_http_key_uses(zd_http *h, bool reset, zd_key_uses_fn fn, void *udata);

/* Replaces the API keys requests are authenticated with by copies of keys[0..n) (borrowed),
 * e.g. on SIGHUP. Requests in flight keep the key they were authenticated with, valid until
 * their reply. Use counters follow each key by its name; a removed key keeps its counts (in
 * zd_http_key_uses, for /metrics and the next key.use records) but authenticates nothing.
 * summary (may be NULL; capacity cap) receives what changed, by key name and never a secret,
 * e.g. "1 added (app2); 1 removed (watch); 1 changed (hz: scope)", or "unchanged". Returns 0,
 * or -ENOMEM with the old keys still in place. */
int zd_http_set_keys(zd_http *h, const zd_apikey *keys, int n, char *summary, size_t cap);

/* ---- console sessions (zhidad/session.h; http_session.c) ---- */

typedef struct zd_http_session_info {
    char id[65];   /* the cookie's value: a secret, never logged */
    char csrf[65]; /* the CSRF token writes must carry in X-CSRF-Token */
    char key_name[64];
    long long expires_unix_ms; /* the absolute end, if it keeps being used */
    int idle_s;                /* unused this long, it ends */
} zd_http_session_info;

/* The configured key whose secret is token[0..len), compared in constant time; or NULL.
 * Borrowed: valid only while the calling handler runs (before it returns to the loop). */
const zd_apikey *zd_http_find_key(zd_http *h, const char *token, size_t len);
/* Makes a session standing for key (from zd_http_find_key) and fills *info. Counts the
 * sign-in as a use of the key. 0, or -EIO when no random bytes could be had. */
int zd_http_session_create(zd_http *h, const zd_apikey *key, zd_http_session_info *info);
/* The session a request was authenticated with: 0 and *info, or -ENOENT when it came with a
 * Bearer key (or its session just ended). */
int zd_req_session(zd_req *r, zd_http_session_info *info);
/* Ends the request's session at once. 0, or -ENOENT as above. */
int zd_req_session_end(zd_req *r);
/* Live sessions, for /metrics. */
int zd_http_sessions(const zd_http *h);

/* Client connections open and served, counted from accept (idle ones included; not those
 * being closed after a refusal). At most limits.max_connections. */
int zd_http_connections(const zd_http *h);

/* ---- requests: every accessor's result is valid until the reply ---- */

const char *zd_req_param(zd_req *r, const char *name);  /* path capture, url-decoded; NULL */
const char *zd_req_query(zd_req *r, const char *name);  /* query parameter (decoded) or NULL */
const char *zd_req_header(zd_req *r, const char *name); /* request header or NULL */
const char *zd_req_path(zd_req *r);                     /* the path as sent, without query */
const char *zd_req_method(zd_req *r);                   /* "GET", "POST", ... */
const zd_apikey *zd_req_key(zd_req *r);                 /* authenticated key; NULL without auth */
/* The request's id: the client's X-Request-Id (or its traceparent's trace-id) when usable, else
 * a generated one (zhidad/request_id.h). Echoed as X-Request-Id and in error bodies. */
const char *zd_req_id(const zd_req *r);
/* Logs like zd_log(), with the request's id on the line (common/log.h). Lines logged while the
 * handler runs from dispatch carry it anyway; later ones (from a Redis callback) use this. */
void zd_req_log(zd_req *r, enum zd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Whether the request's Content-Type is the media type `type` (case-insensitive; parameters
 * such as charset are ignored). False without a Content-Type. */
bool zd_req_content_type_is(zd_req *r, const char *type);
/* The whole body, NUL-terminated (*len excludes the NUL). Never NULL. Its size was already
 * checked against the route's limit. */
const char *zd_req_body(zd_req *r, size_t *len);
/* Parses the body as a JSON object: checks valid UTF-8 and depth <= limits.json_depth_max.
 * On failure replies 400 itself (code "bad_json", "invalid_utf8" or "too_deep") and returns
 * NULL: the handler then just returns. Caller frees the result with cJSON_Delete(). */
cJSON *zd_req_json(zd_req *r);
/* False once the client is known to have closed its connection (checked now, without
 * blocking). The handler must still reply: that then only frees the request. */
bool zd_req_alive(const zd_req *r);

/* Adds a header to the reply (e.g. "Retry-After", "Location"). Both strings are copied. */
void zd_req_set_header(zd_req *r, const char *name, const char *value);

/* Replies: exactly once per request; afterwards the zd_req is gone. All JSON replies carry
 * Content-Type: application/json; charset=utf-8. Every reply carries X-Request-Id, and every
 * 503 a Retry-After (1 s unless the handler set one). A HEAD request gets the headers of its
 * GET answer and no body. */
void zd_req_reply_json(zd_req *r, int status, cJSON *body); /* takes ownership of body */
void zd_req_reply_text(zd_req *r, int status, const char *content_type, const char *text,
                       size_t len);
/* A reply without a body or Content-Type (304, 308). */
void zd_req_reply_empty(zd_req *r, int status);
/* {"error": {"code": code, "message": <printf>, "request_id": <the request's id>}} */
void zd_req_reply_error(zd_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* {"error": {"code": e->code, "message": e->message, "field": e->field if non-empty}} */
void zd_req_reply_zderror(zd_req *r, int status, const zd_error *e);
/* The same with extra's members merged into "error" (takes ownership of extra; may be NULL). */
void zd_req_reply_error_extra(zd_req *r, int status, const char *code, const char *message,
                              cJSON *extra);

#endif
