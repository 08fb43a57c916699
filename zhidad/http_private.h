/* Internals shared by the HTTP server's two halves: http.c (routes, dispatch, replies) and
 * http_conn.c (connections from accept to close: counting, early refusal from the headers,
 * request deadlines, lingering close, accept back-off). Not for other modules. */
#ifndef ZD_HTTP_PRIVATE_H
#define ZD_HTTP_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "common/metrics.h"
#include "zhidad/http.h"
#include "zhidad/http_head.h"
#include "zhidad/http_keys.h"
#include "zhidad/request_id.h"
#include "zhidad/session.h"

#define ZD_HTTP_MAX_SEGMENTS 32
#define ZD_HTTP_MAX_CAPTURES 8
#define ZD_HTTP_MAX_BOUND 8
#define ZD_HTTP_JSON_CTYPE "application/json; charset=utf-8"
/* Retry-After of a 503 whose handler named no other delay. */
#define ZD_HTTP_RETRY_AFTER_S "1"
/* ... and of 503 not_ready: an index load or a Redis reconnect takes seconds, and the refused
 * request may be a large import the client would send again. */
#define ZD_HTTP_RETRY_AFTER_NOT_READY_S "5"

typedef struct zd_http_seg {
    char *prefix;  /* literal (the whole segment when there is no capture) */
    char *capture; /* capture name, NULL for a literal segment */
    char *suffix;
    size_t prefix_len, suffix_len;
} zd_http_seg;

typedef struct zd_http_status_count {
    int status;
    unsigned long count;
    double seconds;
} zd_http_status_count;

typedef struct zd_http_route_stats {
    zd_http_status_count *v;
    int n, cap;
    zd_hist latency[5]; /* by status class 1xx..5xx; bounds zd_http_latency_bounds */
} zd_http_route_stats;

typedef struct zd_route {
    char method[8];
    enum evhttp_cmd_type cmd;
    char *pattern;
    zd_http_seg segs[ZD_HTTP_MAX_SEGMENTS];
    int nsegs, ncaptures;
    int literal_len; /* specificity: more literal characters win */
    unsigned roles, flags;
    zd_handler_fn fn;
    void *udata;
    zd_http_route_stats stats;
} zd_route;

/* A client connection's states. Changed only through conn_set_state() (http_conn.c), which
 * asserts the transition. */
typedef enum zd_conn_state {
    ZD_CONN_NEW,      /* accepted; evhttp has not set up its side yet */
    ZD_CONN_IDLE,     /* between requests: only http_timeout_s limits the silence */
    ZD_CONN_HEAD,     /* reading a request's head; its deadline runs */
    ZD_CONN_BODY,     /* head accepted, evhttp reads the body; the deadline still runs */
    ZD_CONN_HANDLING, /* complete: a handler holds the request until its reply is sent */
    ZD_CONN_REFUSING, /* refused: evhttp lets go of it on the next loop turn */
    ZD_CONN_LINGER,   /* evhttp let go: our answer is written, the input drained till EOF */
} zd_conn_state;

/* One accepted connection, from accept to close. */
typedef struct zd_conn {
    zd_http *h;
    zd_conn_state state;
    struct bufferevent *bev;            /* evhttp's; NULL once it let go */
    struct evhttp_connection *evcon;    /* NULL before setup and once evhttp let go */
    struct zd_conn *hnext;              /* chain in h->buckets, keyed by evcon */
    struct zd_conn *prev, *next;        /* in h->conns */
    zd_req *cur;                        /* the request a handler holds, or NULL */
    const zd_route *rt;                 /* the route of the request being read, if known */
    struct evbuffer_cb_entry *input_cb; /* watches the input buffer (on_input) */
    struct event *ev;                   /* setup, deadline, refusal hand-over, lingering */
    zd_head head;                       /* the head being read */
    zd_chunked chunks;                  /* a chunked body being read */
    bool chunked_body;
    bool closing; /* we are freeing evhttp's side ourselves */
    int fd;       /* ours while lingering, else -1 */
    char *out;    /* our answer while refusing and lingering */
    size_t out_len, out_off;
    int64_t linger_until_ns;
} zd_conn;

struct zd_req {
    zd_http *h;                /* NULL once the server was freed under a handler */
    struct evhttp_request *ev; /* NULL once libevent freed it */
    bool detached;             /* the client left; libevent gave ev up to us to free */
    bool alive;
    zd_conn *c;
    const zd_route *rt;
    const char *method; /* static string */
    bool head_only;     /* HEAD: answered by the GET route, without the body */
    const zd_apikey *key;
    zd_keyset *ks; /* holds key's set (a reference) while key is set */
    /* The session the key came from ("" with a Bearer key): its id, looked up again by whoever
     * needs it, since the table may move its entries. */
    char session_id[ZD_SESSION_ID_LEN + 1];
    char rid[ZD_REQUEST_ID_MAX + 1];
    char *path;
    char *params[ZD_HTTP_MAX_CAPTURES];
    struct evkeyvalq query;
    bool query_parsed;
    bool body_ready;
    size_t body_len;
    int64_t t0_ns;
    zd_req *prev, *next; /* in h->reqs */
};

struct zd_http {
    struct event_base *base;
    const zd_config *cfg;
    struct evhttp *http;
    zd_route *routes;
    int nroutes, cap;
    zd_http_route_stats unmatched;
    zd_conn **buckets; /* set-up connections by evcon */
    size_t nbuckets;
    zd_conn *conns; /* every connection, lingering ones included */
    int nconns;     /* accepted and served by evhttp (max_connections counts these) */
    int nlinger;    /* refused and lingering */
    zd_req *reqs;
    int npending;
    bool draining;
    struct evhttp_bound_socket *bound[ZD_HTTP_MAX_BOUND];
    int nbound;
    /* The API keys and their use counters (http_keys.h); replaced by zd_http_set_keys(). */
    zd_keyset *keys;
    zd_sessions *sessions;      /* console sign-in sessions (zhidad/session.h) */
    bool (*ready)(void *udata); /* zd_http_set_ready() */
    void *ready_udata;
    /* accept() failures (EMFILE...): the listeners pause for accept_backoff_ms. */
    struct event *accept_ev;
    int accept_backoff_ms;
    bool accept_failing;
    unsigned long accept_suppressed; /* failures not logged since accept_logged_ns */
    int64_t accept_logged_ns;
    zd_http *next_server; /* in the list that maps a listener back to its server */
};

/* ---- http.c, for http_conn.c ---- */
const char *zd_http_reason(int status);
void zd_http_stats_add(zd_http_route_stats *s, int status, double seconds);
/* The route for method and (raw, undecoded) path. Without one, NULL with *status 400 (the path
 * is malformed), 404 or 405 (allow then lists the path's methods). params (may be NULL)
 * receives the url-decoded captures, malloc'd; on -ENOMEM *status is 500. */
const zd_route *zd_http_find_route(zd_http *h, const char *method, const char *path, char *allow,
                                   size_t allowcap, char *params[ZD_HTTP_MAX_CAPTURES],
                                   int *status);
/* Who a request is: a Bearer key, or else a console session's key (from the Cookie). */
typedef struct zd_http_auth {
    const zd_apikey *key; /* NULL: not authenticated */
    bool had_token;       /* a Bearer token or a session cookie was sent */
    bool by_session;      /* key came from a session cookie */
    bool csrf_failed;     /* a session's write without its X-CSRF-Token (403) */
    char session_id[ZD_SESSION_ID_LEN + 1];
} zd_http_auth;
/* Authenticates from the header values (each NULL when absent). An Authorization header
 * decides alone, exactly as before sessions existed; without one, a live session cookie stands
 * for its key, and a method other than GET, HEAD and OPTIONS must then carry the session's
 * CSRF token in X-CSRF-Token. touch marks the session used (moves its idle deadline). Returns
 * 0 (a->key set), 401 or 403 (csrf_failed). */
int zd_http_authenticate(zd_http *h, const char *authorization, const char *cookie,
                         const char *csrf, const char *method, bool touch, zd_http_auth *a);
/* The reply texts of a failed authentication. */
const char *zd_http_auth_challenge(const zd_http_auth *a);
const char *zd_http_auth_message(const zd_http_auth *a);
/* Counts a key's request as let through or refused (403). */
void zd_http_count_key_use(zd_http *h, const zd_apikey *key, bool allowed);
/* The body limit of requests to rt. */
size_t zd_http_route_body_max(const zd_http *h, const zd_route *rt);
/* False when rt waits for readiness (ZD_ROUTE_NEEDS_READY) and the service is not ready. */
bool zd_http_route_ready(const zd_http *h, const zd_route *rt);

/* ---- http_conn.c, for http.c ---- */
/* Hooks the connection machinery into h->http (on creation). Returns 0 or -ENOMEM. */
int zd_http_conn_init(zd_http *h);
/* After binding a listening socket: watches its accept() errors. */
void zd_http_conn_listener(zd_http *h, struct evhttp_bound_socket *b);
zd_conn *zd_http_conn_find(const zd_http *h, const struct evhttp_connection *evcon);
/* evhttp hands a complete request to a handler: ends its deadline, watches for its reply. */
void zd_http_conn_request(zd_conn *c, struct evhttp_request *ev);
/* The server stops accepting (its listeners are gone). */
void zd_http_conn_stop(zd_http *h);
/* After evhttp_free(): frees what is left (lingering connections, timers). */
void zd_http_conn_free_all(zd_http *h);

#endif
