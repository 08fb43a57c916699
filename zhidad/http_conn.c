/* The HTTP server's connections, from accept to close: each is counted against max_connections
 * when it is accepted; each request's head is read alongside evhttp and checked (route, key,
 * body size) before evhttp reads any body; each request must be complete within
 * limits.request_timeout_s; refused connections are answered with JSON and closed gracefully;
 * and accept() failures (out of descriptors) pause the listeners instead of spinning.
 *
 * libevent 2.1 has no hook for a server request before its body (evhttp_set_newreqcb came in
 * 2.2), so this module creates each connection's bufferevent itself (evhttp_set_bevcb) and
 * watches the bytes entering its input buffer, before evhttp parses them. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "common/clock.h"
#include "common/log.h"
#include "zhidad/http_private.h"

typedef zd_conn conn;

/* How long a refused connection is drained after our answer, so that a client still sending
 * its body reads the answer instead of a reset (a close with unread input sends RST). */
#define LINGER_MS 5000
#define ACCEPT_BACKOFF_MIN_MS 100
#define ACCEPT_BACKOFF_MAX_MS 1000
#define ACCEPT_LOG_INTERVAL_NS (10 * 1000000000LL)

/* evconnlistener error callbacks receive evhttp's pointer, not ours: the servers of this
 * process, to find the one a listener belongs to. The event loop is single-threaded. */
static zd_http *servers;

static void conn_event_cb(evutil_socket_t fd, short what, void *arg);

static void conn_set_state(conn *c, zd_conn_state s)
{
#define BIT(x) (1u << ZD_CONN_##x)
    /* HEAD/IDLE -> HANDLING: evhttp handed over a request whose end we did not see. That is
     * not expected, but harmless: the request is complete either way. */
    static const unsigned allowed[] = {
        [ZD_CONN_NEW] = BIT(IDLE),
        [ZD_CONN_IDLE] = BIT(HEAD) | BIT(HANDLING) | BIT(REFUSING),
        [ZD_CONN_HEAD] = BIT(BODY) | BIT(HANDLING) | BIT(REFUSING),
        [ZD_CONN_BODY] = BIT(HANDLING) | BIT(REFUSING),
        [ZD_CONN_HANDLING] = BIT(IDLE),
        [ZD_CONN_REFUSING] = BIT(LINGER),
        [ZD_CONN_LINGER] = 0,
    };
#undef BIT
    assert(allowed[c->state] & (1u << s));
    c->state = s;
}

/* ---- the table of set-up connections, by evhttp connection -------------------------------- */

static size_t conn_slot(const zd_http *h, const struct evhttp_connection *evcon)
{
    uint64_t x = (uint64_t)(uintptr_t)evcon;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)(x & (h->nbuckets - 1));
}

zd_conn *zd_http_conn_find(const zd_http *h, const struct evhttp_connection *evcon)
{
    if (!evcon)
        return NULL;
    for (conn *c = h->buckets[conn_slot(h, evcon)]; c; c = c->hnext) {
        if (c->evcon == evcon)
            return c;
    }
    return NULL;
}

/* evhttp lets go of the connection (it closes it, or we take it over): forget its side. */
static void conn_detach(conn *c)
{
    zd_http *h = c->h;
    if (c->evcon) {
        conn **pp = &h->buckets[conn_slot(h, c->evcon)];
        while (*pp && *pp != c)
            pp = &(*pp)->hnext;
        if (*pp)
            *pp = c->hnext;
    }
    if (c->bev) {
        if (c->input_cb)
            evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->input_cb);
        h->nconns--;
    }
    c->input_cb = NULL;
    c->evcon = NULL;
    c->bev = NULL;
}

static void conn_destroy(conn *c)
{
    zd_http *h = c->h;
    assert(!c->bev);
    if (c->fd >= 0)
        close(c->fd);
    if (c->state == ZD_CONN_LINGER)
        h->nlinger--;
    if (c->ev)
        event_free(c->ev);
    zd_head_free(&c->head);
    free(c->out);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c);
}

static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    conn *c = arg;
    zd_req *r = c->cur;
    if (r) {
        /* The client left (or the server is being freed) while a handler holds the request.
         * On client EOF, evhttp 2.1 detaches the unanswered request and leaves it to us;
         * otherwise it frees it together with the connection right after this callback. */
        r->alive = false;
        r->c = NULL;
        if (r->ev && evhttp_request_get_connection(r->ev) == NULL)
            r->detached = true;
        else
            r->ev = NULL;
        c->cur = NULL;
    }
    conn_detach(c);
    if (!c->closing)
        conn_destroy(c);
}

/* ---- refusing ----------------------------------------------------------------------------- */

/* The whole answer to a refused request, kept in c->out: JSON error, then the connection
 * closes. hname/hvalue: one more header, or NULL. rid: the request's id. */
static void build_answer(conn *c, int status, const char *code, const char *hname,
                         const char *hvalue, const char *msg, const char *rid)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "request_id", rid);
    char *body = e ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    if (!body)
        return; /* out of memory: the connection just closes */
    size_t blen = strlen(body);
    size_t cap = blen + 640 + (hvalue ? strlen(hvalue) : 0) + strlen(rid);
    c->out = malloc(cap);
    if (c->out) {
        int n = snprintf(c->out, cap,
                         "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                         "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                         "X-Request-Id: %s\r\n%s"
                         "Connection: close\r\n%s%s%s%s\r\n%s",
                         status, zd_http_reason(status), ZD_HTTP_JSON_CTYPE, blen, rid,
                         status == 503 && !(hname && strcmp(hname, "Retry-After") == 0)
                             ? "Retry-After: " ZD_HTTP_RETRY_AFTER_S "\r\n"
                             : "",
                         hname ? hname : "", hname ? ": " : "", hname ? hvalue : "",
                         hname ? "\r\n" : "", body);
        c->out_len = n > 0 && (size_t)n < cap ? (size_t)n : 0;
    }
    cJSON_free(body);
}

static void refuse(conn *c, const zd_route *rt, int status, const char *code, const char *hname,
                   const char *hvalue, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

/* Answers the request now, without reading (more of) its body, and closes the connection.
 * Called from evhttp's input path: the hand-over happens on the next loop turn, meanwhile
 * evhttp is kept from seeing any more of the request. */
static void refuse(conn *c, const zd_route *rt, int status, const char *code, const char *hname,
                   const char *hvalue, const char *fmt, ...)
{
    zd_http *h = c->h;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* A head that was read whole may name the request's id; else (malformed, too large, or no
     * request yet) one is made up. */
    bool done = c->head.status == ZD_HEAD_DONE;
    char rid[ZD_REQUEST_ID_MAX + 1];
    zd_request_id_pick(done ? c->head.request_id : NULL, done ? c->head.traceparent : NULL, rid);
    build_answer(c, status, code, hname, hvalue, msg, rid);
    zd_http_stats_add(rt ? &h->routes[rt - h->routes].stats : &h->unmatched, status, 0);
    zd_log_set_request_id(rid);
    zd_debug("http: %s %s %d %s (refused from the request head)",
             done && c->head.method ? c->head.method : "-", rt ? rt->pattern : "-", status, code);
    zd_log_set_request_id(NULL);
    conn_set_state(c, ZD_CONN_REFUSING);
    /* Draining re-enters on_input, which ignores a refusing connection's removals. */
    struct evbuffer *in = bufferevent_get_input(c->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    bufferevent_disable(c->bev, EV_READ);
    event_del(c->ev);
    event_active(c->ev, EV_TIMEOUT, 0);
}

static void linger_arm(conn *c)
{
    int64_t left_ns = c->linger_until_ns - zd_mono_ns();
    if (left_ns < 0)
        left_ns = 0;
    struct timeval tv = {(time_t)(left_ns / 1000000000), (suseconds_t)(left_ns / 1000 % 1000000)};
    short what = EV_READ | (c->out_off < c->out_len ? EV_WRITE : 0);
    if (c->ev)
        event_free(c->ev);
    c->ev = event_new(c->h->base, c->fd, what, conn_event_cb, c);
    if (!c->ev || event_add(c->ev, &tv) != 0)
        conn_destroy(c);
}

/* Takes the socket over from evhttp: writes our answer, has evhttp free its side, and keeps a
 * duplicate of the socket to finish writing and drain the input for up to LINGER_MS. */
static void conn_take_over(conn *c)
{
    zd_http *h = c->h;
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    /* evhttp may be writing an answer of its own (a 400 for a request line it refused). */
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0)
        c->out_len = 0;
    size_t sent = 0;
    if (fd >= 0 && c->out_len) {
        ssize_t n;
        do
            n = send(fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n > 0)
            sent = (size_t)n;
    }
    /* Lingering connections hold a descriptor each: at most max_connections of them, and none
     * when descriptors have run out (dup fails). */
    int lfd = -1;
    if (fd >= 0 && c->out_len && h->nlinger < h->cfg->max_connections)
        lfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    c->closing = true;
    evhttp_connection_free(c->evcon); /* runs on_conn_close, which detaches c */
    c->closing = false;
    if (c->bev)
        conn_detach(c); /* should evhttp not have called back */
    if (lfd < 0) {
        conn_destroy(c);
        return;
    }
    c->fd = lfd;
    c->out_off = sent;
    conn_set_state(c, ZD_CONN_LINGER);
    h->nlinger++;
    c->linger_until_ns = zd_mono_ns() + LINGER_MS * 1000000LL;
    if (c->out_off == c->out_len)
        shutdown(lfd, SHUT_WR);
    linger_arm(c);
}

static void linger_io(conn *c, short what)
{
    if ((what & EV_WRITE) && c->out_off < c->out_len) {
        ssize_t n =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0)
            c->out_off += (size_t)n;
        else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            goto done;
        if (c->out_off == c->out_len)
            shutdown(c->fd, SHUT_WR);
    }
    if (what & EV_READ) {
        char buf[16384];
        for (int i = 0; i < 16; i++) {
            ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (n > 0)
                continue;
            if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                goto done; /* the client closed (or reset): nothing left to protect */
            break;
        }
    }
    if (zd_mono_ns() >= c->linger_until_ns)
        goto done;
    linger_arm(c);
    return;
done:
    conn_destroy(c);
}

/* ---- reading requests --------------------------------------------------------------------- */

static void start_request(conn *c)
{
    conn_set_state(c, ZD_CONN_HEAD);
    zd_head_reset(&c->head);
    c->chunked_body = false;
    c->rt = NULL;
    struct timeval tv = {c->h->cfg->request_timeout_s, 0};
    evtimer_add(c->ev, &tv);
}

/* The head is complete: decides the request from it. Requests without a body go on to evhttp
 * and dispatch() as they are; a body is read only for a known route, with a valid key of an
 * allowed role, and up to the route's own limit. */
static void check_head(conn *c)
{
    zd_http *h = c->h;
    const zd_head *hd = &c->head;
    size_t limit = h->cfg->body_max;
    if (hd->chunked || hd->content_length > 0) {
        if (h->draining) {
            refuse(c, NULL, 503, "shutting_down", NULL, NULL, "the server is shutting down");
            return;
        }
        /* evhttp reads no body after these: the bytes would be taken for the next request. */
        if (strcmp(hd->method, "HEAD") == 0 || strcmp(hd->method, "TRACE") == 0) {
            refuse(c, NULL, 400, "bad_request", NULL, NULL, "a %s request has no body", hd->method);
            return;
        }
        /* The path as evhttp will see it (it parses the target with the same function). */
        struct evhttp_uri *u = evhttp_uri_parse_with_flags(hd->target, EVHTTP_URI_NONCONFORMANT);
        if (!u) {
            refuse(c, NULL, 400, "bad_request", NULL, NULL, "the request target is malformed");
            return;
        }
        const char *path = evhttp_uri_get_path(u);
        char allow[96];
        int status;
        const zd_route *rt = zd_http_find_route(h, hd->method, path && *path ? path : "/", allow,
                                                sizeof(allow), NULL, &status);
        evhttp_uri_free(u);
        bool options = strcmp(hd->method, "OPTIONS") == 0;
        if (!rt && status == 405 && options) {
            /* OPTIONS of a known path: answered without a key, its body read up to body_max
             * and ignored. */
        } else if (!rt) {
            if (status == 405)
                refuse(c, NULL, 405, "method_not_allowed", "Allow", allow,
                       "%s is not allowed here; allowed: %s", hd->method, allow);
            else if (status == 400)
                refuse(c, NULL, 400, "bad_request", NULL, NULL, "the path is malformed");
            else
                refuse(c, NULL, 404, "not_found", NULL, NULL, "no such endpoint");
            return;
        }
        if (rt && rt->roles) {
            zd_http_auth auth;
            int st = zd_http_authenticate(h, hd->authorization, hd->cookie, hd->csrf, hd->method,
                                          false, &auth);
            if (st == 401) {
                refuse(c, rt, 401, "unauthorized", "WWW-Authenticate",
                       zd_http_auth_challenge(&auth), "%s", zd_http_auth_message(&auth));
                return;
            }
            if (st == 403) {
                zd_http_count_key_use(h, auth.key, false);
                refuse(c, rt, 403, "csrf_failed", NULL, NULL, "%s", zd_http_auth_message(&auth));
                return;
            }
            const zd_apikey *key = auth.key;
            if (!(key->role & rt->roles)) {
                zd_http_count_key_use(h, key, false);
                refuse(c, rt, 403, "forbidden", NULL, NULL, "the %s key \"%s\" may not %s %s",
                       zd_role_name(key->role), key->name, rt->method, rt->pattern);
                return;
            }
            /* Let through: dispatch() checks the key again and counts the use. */
        }
        c->rt = rt;
        limit = zd_http_route_body_max(h, rt);
        if (!hd->chunked && (unsigned long long)hd->content_length > limit) {
            refuse(c, rt, 413, "body_too_large", NULL, NULL, "the body is larger than %zu bytes",
                   limit);
            return;
        }
        if (rt && !zd_http_route_ready(h, rt)) {
            /* Refused before its body is read: a large import is not read to be dropped. */
            refuse(c, rt, 503, "not_ready", "Retry-After", ZD_HTTP_RETRY_AFTER_NOT_READY_S, "%s",
                   "zhidad is not ready (Redis or the index): nothing was applied; retry later");
            return;
        }
    }
    /* evhttp's own check stays as a backstop: the same limit for a body of any framing. */
    evhttp_connection_set_max_body_size(c->evcon, (ev_ssize_t)limit);
    c->chunked_body = hd->chunked;
    if (hd->chunked)
        zd_chunked_init(&c->chunks, limit, h->cfg->header_max);
    conn_set_state(c, ZD_CONN_BODY);
}

/* Follows the request through the next n bytes. Stops once the request is decided. */
static void feed(conn *c, const char *p, size_t n)
{
    while (n) {
        size_t used = 0;
        if (c->state == ZD_CONN_IDLE) {
            start_request(c);
        } else if (c->state == ZD_CONN_HEAD) {
            zd_head_status st = zd_head_feed(&c->head, p, n, &used);
            p += used;
            n -= used;
            if (st == ZD_HEAD_MORE)
                return;
            if (st == ZD_HEAD_BAD) {
                refuse(c, NULL, 400, "bad_request", NULL, NULL, "%s", c->head.error);
                return;
            }
            if (st == ZD_HEAD_TOO_LARGE) {
                refuse(c, NULL, 431, "headers_too_large", NULL, NULL,
                       "the request line and headers are larger than %zu bytes", c->head.max);
                return;
            }
            check_head(c);
        } else if (c->state == ZD_CONN_BODY && c->chunked_body) {
            zd_chunked_status st = zd_chunked_feed(&c->chunks, p, n, &used);
            p += used;
            n -= used;
            if (st == ZD_CHUNKED_TOO_LARGE) {
                refuse(c, c->rt, 413, "body_too_large", NULL, NULL,
                       "the body is larger than %llu bytes",
                       (unsigned long long)c->chunks.max_body);
                return;
            }
            if (st == ZD_CHUNKED_BAD) {
                refuse(c, c->rt, 400, "bad_request", NULL, NULL, "the chunked body is malformed");
                return;
            }
            if (st == ZD_CHUNKED_DONE)
                c->chunked_body = false; /* what follows is the next request */
        } else {
            /* A body evhttp reads by its length, or bytes of the next request that wait
             * until this one is answered (request_done). */
            return;
        }
    }
}

static bool feeding(const conn *c)
{
    return c->state == ZD_CONN_IDLE || c->state == ZD_CONN_HEAD ||
           (c->state == ZD_CONN_BODY && c->chunked_body);
}

/* Feeds the bytes of buf from offset off on, without copying them. */
static void feed_buffer(conn *c, struct evbuffer *buf, size_t off)
{
    size_t total = evbuffer_get_length(buf);
    while (off < total && feeding(c)) {
        struct evbuffer_ptr pos;
        struct evbuffer_iovec v[8];
        if (evbuffer_ptr_set(buf, &pos, off, EVBUFFER_PTR_SET) != 0)
            return;
        int nv = evbuffer_peek(buf, (ev_ssize_t)(total - off), &pos, v, 8);
        if (nv <= 0)
            return;
        for (int i = 0; i < nv && i < 8 && off < total; i++) {
            size_t n = v[i].iov_len < total - off ? v[i].iov_len : total - off;
            /* feed() may refuse, which drains buf: v[] is then stale, so stop at once. */
            feed(c, v[i].iov_base, n);
            off += n;
            if (!feeding(c))
                return;
        }
    }
}

/* Runs for every change of the connection's input buffer, before evhttp's read callback sees
 * the bytes just read: they are the last n_added of the buffer. */
static void on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    conn *c = arg;
    if (info->n_added == 0)
        return;
    if (c->state == ZD_CONN_REFUSING) {
        evbuffer_drain(buf, evbuffer_get_length(buf));
        return;
    }
    size_t len = evbuffer_get_length(buf);
    if (feeding(c) && info->n_added <= len)
        feed_buffer(c, buf, len - info->n_added);
}

/* The reply to the request went out: what is already in the input buffer is the next one. */
static void request_done(struct evhttp_request *ev, void *arg)
{
    zd_http *h = arg;
    conn *c = zd_http_conn_find(h, evhttp_request_get_connection(ev));
    if (!c || c->state != ZD_CONN_HANDLING)
        return;
    conn_set_state(c, ZD_CONN_IDLE);
    struct evbuffer *in = bufferevent_get_input(c->bev);
    if (evbuffer_get_length(in))
        feed_buffer(c, in, 0);
}

void zd_http_conn_request(zd_conn *c, struct evhttp_request *ev)
{
    if (c->state == ZD_CONN_REFUSING)
        return; /* cannot happen: evhttp saw none of a refused request */
    event_del(c->ev);
    c->chunked_body = false;
    conn_set_state(c, ZD_CONN_HANDLING);
    evhttp_request_set_on_complete_cb(ev, request_done, c->h);
}

/* ---- accepting ---------------------------------------------------------------------------- */

/* evhttp's side of a connection it just accepted is ready (run right after accept). */
static void conn_setup(conn *c)
{
    zd_http *h = c->h;
    bufferevent_data_cb rcb = NULL, wcb = NULL;
    bufferevent_event_cb ecb = NULL;
    void *arg = NULL;
    bufferevent_getcb(c->bev, &rcb, &wcb, &ecb, &arg);
    struct evhttp_connection *evcon = arg;
    /* Freeing a bufferevent clears its callbacks; ours is still referenced from bevcb. */
    if (!rcb || !evcon || evhttp_connection_get_bufferevent(evcon) != c->bev) {
        /* evhttp dropped the connection at once (out of memory) and closed its socket. */
        struct bufferevent *bev = c->bev;
        bufferevent_setfd(bev, -1);
        conn_detach(c);
        bufferevent_decref(bev);
        conn_destroy(c);
        return;
    }
    bufferevent_decref(c->bev);
    c->evcon = evcon;
    size_t slot = conn_slot(h, evcon);
    c->hnext = h->buckets[slot];
    h->buckets[slot] = c;
    evhttp_connection_set_closecb(evcon, on_conn_close, c);
    c->input_cb = evbuffer_add_cb(bufferevent_get_input(c->bev), on_input, c);
    conn_set_state(c, ZD_CONN_IDLE);
    if (!c->input_cb)
        refuse(c, NULL, 503, "out_of_memory", NULL, NULL, "out of memory");
    else if (h->nconns > h->cfg->max_connections)
        refuse(c, NULL, 503, "too_many_connections", NULL, NULL, "too many open connections");
}

static void conn_event_cb(evutil_socket_t fd, short what, void *arg)
{
    conn *c = arg;
    switch (c->state) {
    case ZD_CONN_NEW:
        conn_setup(c);
        break;
    case ZD_CONN_HEAD:
    case ZD_CONN_BODY:
        refuse(c, c->rt, 408, "request_timeout", NULL, NULL,
               "the request was not complete within %d s", c->h->cfg->request_timeout_s);
        break;
    case ZD_CONN_REFUSING:
        conn_take_over(c);
        break;
    case ZD_CONN_LINGER:
        linger_io(c, what);
        break;
    default:
        break;
    }
}

/* One message per ACCEPT_LOG_INTERVAL_NS at most; failures in between are counted into the
 * next one. */
static bool accept_log_now(zd_http *h)
{
    int64_t now = zd_mono_ns();
    if (h->accept_logged_ns && now - h->accept_logged_ns < ACCEPT_LOG_INTERVAL_NS)
        return false;
    h->accept_logged_ns = now;
    return true;
}

/* evhttp's accept callback is about to set up a new connection: make its bufferevent, and
 * count the connection from now on. */
static struct bufferevent *bevcb(struct event_base *base, void *arg)
{
    zd_http *h = arg;
    if (h->accept_failing) {
        h->accept_failing = false;
        h->accept_backoff_ms = ACCEPT_BACKOFF_MIN_MS;
        if (accept_log_now(h)) {
            zd_info("http: accepting connections again (%lu failed accept() calls not logged)",
                    h->accept_suppressed);
            h->accept_suppressed = 0;
        }
    }
    struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    conn *c = bev ? calloc(1, sizeof(*c)) : NULL;
    struct event *ev = c ? event_new(base, -1, 0, conn_event_cb, c) : NULL;
    if (!ev) {
        /* Untracked: gencb answers its first request 503 and closes it. */
        free(c);
        return bev;
    }
    c->h = h;
    c->bev = bev;
    c->ev = ev;
    c->fd = -1;
    c->state = ZD_CONN_NEW;
    zd_head_init(&c->head, h->cfg->header_max);
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    /* evhttp sets the connection up once we return; conn_setup() runs right after, in this
     * loop turn, before any byte is read. The reference keeps the bufferevent valid even if
     * evhttp drops the connection in between. */
    bufferevent_incref(bev);
    event_active(ev, EV_TIMEOUT, 0);
    return bev;
}

static zd_http *server_of(struct evconnlistener *lev)
{
    for (zd_http *h = servers; h; h = h->next_server) {
        for (int i = 0; i < h->nbound; i++) {
            if (evhttp_bound_socket_get_listener(h->bound[i]) == lev)
                return h;
        }
    }
    return NULL;
}

static void listeners_enable(zd_http *h, bool on)
{
    for (int i = 0; i < h->nbound; i++) {
        struct evconnlistener *lev = evhttp_bound_socket_get_listener(h->bound[i]);
        if (on)
            evconnlistener_enable(lev);
        else
            evconnlistener_disable(lev);
    }
}

/* accept() failed with more than a transient error: out of descriptors (EMFILE, ENFILE) or
 * memory. The pending connection keeps the socket readable, so without a pause the loop
 * would spin on it: the listeners rest for a back-off interval, 100 ms doubling to 1 s. */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    zd_http *h = server_of(lev);
    if (!h) {
        evconnlistener_disable(lev);
        return;
    }
    listeners_enable(h, false);
    h->accept_failing = true;
    int ms = h->accept_backoff_ms;
    if (accept_log_now(h)) {
        zd_warn("http: accept() failed: %s; new connections wait %d ms (%lu more failures not "
                "logged)",
                strerror(err), ms, h->accept_suppressed);
        h->accept_suppressed = 0;
    } else {
        h->accept_suppressed++;
    }
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(h->accept_ev, &tv);
    h->accept_backoff_ms = ms * 2 < ACCEPT_BACKOFF_MAX_MS ? ms * 2 : ACCEPT_BACKOFF_MAX_MS;
}

static void accept_resume(evutil_socket_t fd, short what, void *arg)
{
    zd_http *h = arg;
    if (!h->draining)
        listeners_enable(h, true);
}

/* ---- life cycle --------------------------------------------------------------------------- */

int zd_http_conn_init(zd_http *h)
{
    h->accept_backoff_ms = ACCEPT_BACKOFF_MIN_MS;
    h->accept_ev = evtimer_new(h->base, accept_resume, h);
    if (!h->accept_ev)
        return -ENOMEM;
    evhttp_set_bevcb(h->http, bevcb, h);
    h->next_server = servers;
    servers = h;
    return 0;
}

void zd_http_conn_listener(zd_http *h, struct evhttp_bound_socket *b)
{
    evconnlistener_set_error_cb(evhttp_bound_socket_get_listener(b), on_accept_error);
}

void zd_http_conn_stop(zd_http *h)
{
    if (h->accept_ev)
        event_del(h->accept_ev);
}

void zd_http_conn_free_all(zd_http *h)
{
    /* evhttp_free() closed every set-up connection (on_conn_close freed those); left are the
     * lingering ones and any not yet set up, whose bufferevent we still hold a reference on. */
    while (h->conns) {
        conn *c = h->conns;
        if (c->bev) {
            struct bufferevent *bev = c->bev;
            bool held = c->state == ZD_CONN_NEW;
            conn_detach(c);
            if (held)
                bufferevent_decref(bev);
        }
        conn_destroy(c);
    }
    if (h->accept_ev)
        event_free(h->accept_ev);
    h->accept_ev = NULL;
    for (zd_http **pp = &servers; *pp; pp = &(*pp)->next_server) {
        if (*pp == h) {
            *pp = h->next_server;
            break;
        }
    }
}
