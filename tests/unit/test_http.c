/* Unit tests for zhidad's HTTP server (zhidad/http.c): a forked child serves test routes on a
 * loopback port and the parent drives it over plain sockets — routing, auth, limits, JSON
 * errors, async replies, clients that leave, the connection limit and the graceful stop. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "common/log.h"
#include "tests/unit/check.h"
#include "zhidad/config.h"
#include "zhidad/http.h"
#include "zhidad/http_keys.h"
#include "zhidad/precond.h"
#include "zhidad/request_id.h"

#define WATCHDOG_S 60

#define ADMIN "admin-key-0123456789abcd"
#define APP "app-key-0123456789abcdef"
#define VIEW "viewer-key-0123456789abc"
#define APP2 "app2-key-0123456789abcdef"

/* http_timeout_s 1 keeps the idle-timeout check short; async handlers stay below it.
 * request_timeout_s 2 bounds each request from its first byte to the end of its body. */
static const char config_text[] =
    "{\"api_keys\": ["
    " {\"name\": \"ops\", \"role\": \"admin\", \"key\": \"" ADMIN "\"},"
    " {\"name\": \"app1\", \"role\": \"app\", \"key\": \"" APP "\"},"
    " {\"name\": \"view\", \"role\": \"viewer\", \"key\": \"" VIEW "\"}],"
    " \"limits\": {\"body_max\": 1024, \"import_body_max\": 4096, \"json_depth_max\": 4,"
    "  \"max_connections\": 4, \"http_timeout_s\": 1, \"request_timeout_s\": 2,"
    "  \"header_max\": 2048}}";

/* The keys after a reload (t_rekey): app1 gone, app2 new, view now an app key. */
static const char rekey_text[] =
    "{\"api_keys\": ["
    " {\"name\": \"ops\", \"role\": \"admin\", \"key\": \"" ADMIN "\"},"
    " {\"name\": \"view\", \"role\": \"app\", \"key\": \"" VIEW "\"},"
    " {\"name\": \"app2\", \"role\": \"app\", \"key\": \"" APP2 "\"}]}";

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ==== the server (child process) ============================================================ */

static struct event_base *base;
static zd_http *h;
static int gone; /* async requests whose client had left by reply time */

typedef struct pend {
    zd_req *req;
    struct event *ev;
    struct pend *next;
} pend;
static pend *pends;

static void echo_h(zd_req *r, void *u)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "route", u);
    const char *id = zd_req_param(r, "id"), *notice = zd_req_param(r, "notice");
    if (id)
        cJSON_AddStringToObject(j, "id", id);
    if (notice)
        cJSON_AddStringToObject(j, "notice", notice);
    CHECK(zd_req_param(r, "nosuch") == NULL);
    cJSON_AddStringToObject(j, "method", zd_req_method(r));
    cJSON_AddStringToObject(j, "path", zd_req_path(r));
    const zd_apikey *k = zd_req_key(r);
    cJSON_AddStringToObject(j, "key", k ? k->name : "");
    zd_req_reply_json(r, 200, j);
}

static void json_h(zd_req *r, void *u)
{
    cJSON *j = zd_req_json(r);
    if (!j)
        return;
    zd_req_reply_json(r, 200, j);
}

static void len_h(zd_req *r, void *u)
{
    size_t len;
    const char *b = zd_req_body(r, &len);
    bool all_x = true;
    for (size_t i = 0; i < len; i++)
        all_x = all_x && b[i] == 'x';
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "len", (double)len);
    cJSON_AddBoolToObject(j, "nul", b[len] == '\0');
    cJSON_AddBoolToObject(j, "all_x", all_x);
    zd_req_reply_json(r, 200, j);
}

static void async_fire(evutil_socket_t fd, short w, void *a)
{
    pend *p = a;
    for (pend **pp = &pends; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    bool alive = zd_req_alive(p->req);
    if (!alive)
        gone++;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddBoolToObject(j, "alive", alive);
    /* Read at reply time: a reload in between must not have freed the key (t_rekey). */
    const zd_apikey *k = zd_req_key(p->req);
    if (k) {
        cJSON_AddStringToObject(j, "key", k->name);
        cJSON_AddStringToObject(j, "role", zd_role_name(k->role));
    }
    zd_req_reply_json(p->req, 200, j);
    event_free(p->ev);
    free(p);
}

/* Replies after {ms} milliseconds, the way a handler waiting for Redis does. */
static void async_h(zd_req *r, void *u)
{
    int ms = atoi(zd_req_param(r, "ms"));
    pend *p = calloc(1, sizeof(*p));
    if (!p) {
        zd_req_reply_error(r, 500, "internal", "out of memory");
        return;
    }
    p->req = r;
    p->ev = evtimer_new(base, async_fire, p);
    p->next = pends;
    pends = p;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(p->ev, &tv);
}

static void state_h(zd_req *r, void *u)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "pending", zd_http_pending(h));
    cJSON_AddNumberToObject(j, "connections", zd_http_connections(h));
    cJSON_AddNumberToObject(j, "gone", gone);
    zd_req_reply_json(r, 200, j);
}

static void query_h(zd_req *r, void *u)
{
    cJSON *j = cJSON_CreateObject();
    const char *a = zd_req_query(r, "a"), *b = zd_req_query(r, "b");
    if (a)
        cJSON_AddStringToObject(j, "a", a);
    if (b)
        cJSON_AddStringToObject(j, "b", b);
    zd_req_reply_json(r, 200, j);
}

static void hdr_h(zd_req *r, void *u)
{
    const char *x = zd_req_header(r, "X-Test");
    zd_req_set_header(r, "X-Reply", "yes");
    zd_req_reply_text(r, 200, "text/plain", x ? x : "-", strlen(x ? x : "-"));
}

static void err_h(zd_req *r, void *u)
{
    if (zd_req_query(r, "extra")) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "position", 7);
        cJSON_AddStringToObject(x, "message", "replaced");
        zd_req_reply_error_extra(r, 400, "bad_rule", "original", x);
        return;
    }
    if (zd_req_query(r, "fmt")) {
        zd_req_reply_error(r, 422, "bad_value", "value %d of %s", 42, "n");
        return;
    }
    zd_error e;
    zd_error_set(&e, "invalid_type", "employees", "employees must be a number");
    zd_req_reply_zderror(r, 400, &e);
}

static void stat_fn(const zd_http_stat *st, void *u)
{
    char k[256];
    snprintf(k, sizeof(k), "%s %s %d", st->method, st->pattern, st->status);
    cJSON_AddNumberToObject(u, k, (double)st->count);
}

static void stats_h(zd_req *r, void *u)
{
    cJSON *j = cJSON_CreateObject();
    zd_http_foreach_stat(h, stat_fn, j);
    zd_req_reply_json(r, 200, j);
}

static const zd_config *cfgs[2]; /* the start-up keys and those of rekey_text */

/* Swaps the server's keys to cfgs[n]'s, answering the change summary. */
static void rekey_h(zd_req *r, void *u)
{
    char summary[512];
    int n = atoi(zd_req_param(r, "n"));
    int rc = zd_http_set_keys(h, cfgs[n]->keys, cfgs[n]->nkeys, summary, sizeof(summary));
    CHECK_INT(rc, 0);
    zd_req_reply_text(r, 200, NULL, summary, strlen(summary));
}

static void use_fn(const zd_apikey *key, const zd_key_uses *uses, void *u)
{
    char k[128];
    snprintf(k, sizeof(k), "%s %s", key->name, zd_role_name(key->role));
    cJSON_AddNumberToObject(u, k, (double)uses->used);
}

static void uses_h(zd_req *r, void *u)
{
    cJSON *j = cJSON_CreateObject();
    zd_http_key_uses(h, false, use_fn, j);
    zd_req_reply_json(r, 200, j);
}

static void del_h(zd_req *r, void *u)
{
    zd_req_reply_text(r, 204, NULL, "", 0);
}

/* Graceful stop as zhidad does it: stop accepting, wait (bounded) for pending replies. */
static struct event *drain_ev;
static int64_t drain_until;

static void drain_cb(evutil_socket_t fd, short w, void *a)
{
    if (zd_http_pending(h) == 0 || now_ms() >= drain_until) {
        event_base_loopbreak(base);
        return;
    }
    struct timeval tv = {0, 20000};
    evtimer_add(drain_ev, &tv);
}

static void on_term(evutil_socket_t fd, short w, void *a)
{
    zd_http_stop_accepting(h);
    CHECK_INT(zd_http_port(h), 0);
    drain_until = now_ms() + 1000;
    drain_cb(-1, 0, NULL);
}

static int add_routes(void)
{
    unsigned all = ZD_ROLES_ALL;
    int rc = 0;
    rc |= zd_http_route(h, "GET", "/t/p/{id}", all, echo_h, "get");
    rc |= zd_http_route(h, "DELETE", "/t/p/{id}", ZD_ROLE_ADMIN, del_h, "del");
    rc |= zd_http_route(h, "GET", "/t/p/{id}:read", all, echo_h, "read");
    rc |= zd_http_route(h, "POST", "/t/p/{id}/inbox/{notice}:read", ZD_ROLE_APP | ZD_ROLE_ADMIN,
                        echo_h, "inbox");
    /* The literal route is registered after the capture that also matches it. */
    rc |= zd_http_route(h, "GET", "/t/lit/{id}", 0, echo_h, "lit-capture");
    rc |= zd_http_route(h, "GET", "/t/lit/me", 0, echo_h, "lit-me");
    rc |= zd_http_route(h, "POST", "/t/json", all, json_h, NULL);
    rc |= zd_http_route(h, "POST", "/t/small", all, len_h, NULL);
    rc |= zd_http_route_flags(h, "POST", "/t/large", all, ZD_ROUTE_LARGE_BODY, len_h, NULL);
    rc |= zd_http_route(h, "GET", "/t/async/{ms}", 0, async_h, NULL);
    rc |= zd_http_route(h, "GET", "/t/state", 0, state_h, NULL);
    rc |= zd_http_route(h, "GET", "/t/query", 0, query_h, NULL);
    rc |= zd_http_route(h, "GET", "/t/hdr", 0, hdr_h, NULL);
    rc |= zd_http_route(h, "GET", "/t/err", 0, err_h, NULL);
    rc |= zd_http_route(h, "GET", "/t/stats", 0, stats_h, NULL);
    rc |= zd_http_route(h, "GET", "/t/rekey/{n}", 0, rekey_h, NULL);
    rc |= zd_http_route(h, "GET", "/t/uses", 0, uses_h, NULL);
    rc |= zd_http_route(h, "GET", "/t/akey/{ms}", all, async_h, "key");
    CHECK_INT(rc, 0);

    /* Bad registrations are refused. */
    CHECK_INT(zd_http_route(h, "GET", "/t/p/{id}", all, echo_h, NULL), -EEXIST);
    CHECK_INT(zd_http_route(h, "GETT", "/x", all, echo_h, NULL), -EINVAL);
    CHECK_INT(zd_http_route(h, "HEAD", "/x", all, echo_h, NULL), -EINVAL);
    CHECK_INT(zd_http_route(h, "GET", "x", all, echo_h, NULL), -EINVAL);
    CHECK_INT(zd_http_route(h, "GET", "/a//b", all, echo_h, NULL), -EINVAL);
    /* Only the last segment may be empty ("/console/", a folder); never the only one. */
    CHECK_INT(zd_http_route(h, "GET", "/", all, echo_h, NULL), -EINVAL);
    CHECK_INT(zd_http_route(h, "GET", "//a", all, echo_h, NULL), -EINVAL);
    CHECK_INT(zd_http_route(h, "GET", "/a/{}", all, echo_h, NULL), -EINVAL);
    CHECK_INT(zd_http_route(h, "GET", "/a/{x}{y}", all, echo_h, NULL), -EINVAL);
    CHECK_INT(zd_http_route(h, "GET", "/a/{x}/b/{x}", all, echo_h, NULL), -EINVAL);
    CHECK_INT(zd_http_route(h, "GET", "/a/{x", all, echo_h, NULL), -EINVAL);
    CHECK_INT(zd_http_route(h, "GET", "/a/x}", all, echo_h, NULL), -EINVAL);
    CHECK_INT(zd_http_route(h, "GET", "/a", 1u << 8, echo_h, NULL), -EINVAL);
    CHECK_INT(zd_http_route(h, "GET", "/a", all, NULL, NULL), -EINVAL);
    return rc;
}

/* Runs the server until SIGTERM and its drain; returns the child's exit status. */
static int server_main(int port_fd)
{
    char err[512];
    zd_config *cfg = NULL, *cfg2 = NULL;
    int port = -1;
    signal(SIGPIPE, SIG_IGN);
    if (zd_config_from_text(config_text, strlen(config_text), &cfg, err, sizeof(err)) != 0 ||
        zd_config_from_text(rekey_text, strlen(rekey_text), &cfg2, err, sizeof(err)) != 0) {
        fprintf(stderr, "test_http server: %s\n", err);
        CHECK(!"config");
        goto out;
    }
    cfgs[0] = cfg;
    cfgs[1] = cfg2;
    base = event_base_new();
    h = base ? zd_http_new(base, cfg) : NULL;
    CHECK(h != NULL);
    if (!h)
        goto out;
    CHECK_INT(zd_http_port(h), 0);
    if (add_routes() != 0)
        goto out;
    CHECK_INT(zd_http_listen(h, "127.0.0.1"), -EINVAL);
    CHECK_INT(zd_http_listen(h, "example.com:80"), -EINVAL);
    int rc = zd_http_listen(h, "127.0.0.1:0");
    CHECK_INT(rc, 0);
    if (rc != 0)
        goto out;
    port = zd_http_port(h);
    CHECK(port > 0);
    char again[64];
    snprintf(again, sizeof(again), "127.0.0.1:%d", port);
    CHECK_INT(zd_http_listen(h, again), -EADDRINUSE);
    CHECK_INT(zd_http_port(h), port);

    drain_ev = evtimer_new(base, drain_cb, NULL);
    struct event *term = evsignal_new(base, SIGTERM, on_term, NULL);
    event_add(term, NULL);
    if (write(port_fd, &port, sizeof(port)) != (ssize_t)sizeof(port))
        CHECK(!"port written");
    close(port_fd);
    port_fd = -1;
    event_base_dispatch(base);

    /* The drain gave up on the one request that outlives it (GET /t/async/3000). */
    CHECK_INT(zd_http_pending(h), 1);
    zd_http_free(h);
    h = NULL;
    /* Pending requests are answered after the server is gone: that only frees them. */
    int orphans = 0;
    while (pends) {
        orphans++;
        async_fire(-1, 0, pends);
    }
    CHECK_INT(orphans, 1);
    event_free(term);
    event_free(drain_ev);
out:
    if (port_fd >= 0) {
        port = -1;
        if (write(port_fd, &port, sizeof(port)) < 0)
            perror("write");
        close(port_fd);
    }
    zd_http_free(h);
    zd_http_free(NULL);
    if (base)
        event_base_free(base);
    zd_config_free(cfg);
    zd_config_free(cfg2);
    return check_report("test_http server");
}

/* ==== the client (parent process) ============================================================ */

static int port;
static pid_t server_pid;

typedef struct resp {
    int status; /* 0: no (complete) response */
    char head[4096];
    char body[16384];
    size_t len;
    cJSON *json;  /* the body parsed, when it is JSON */
    bool eof;     /* the server closed the connection after the response */
    bool no_body; /* set before reading: the answer to a HEAD request */
} resp;

static void resp_clear(resp *r)
{
    cJSON_Delete(r->json);
    memset(r, 0, sizeof(*r));
}

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* recv with a deadline: >0 bytes, 0 on EOF, -1 on timeout or error. */
static ssize_t recv_until(int fd, char *buf, size_t cap, int64_t deadline)
{
    while (1) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = {fd, POLLIN, 0};
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        ssize_t got = recv(fd, buf, cap, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return errno == ECONNRESET ? 0 : -1;
        return got;
    }
}

/* Waits (at most ms) for the server to close fd. */
static bool wait_eof(int fd, int ms)
{
    char buf[512];
    int64_t deadline = now_ms() + ms;
    while (1) {
        ssize_t n = recv_until(fd, buf, sizeof(buf), deadline);
        if (n == 0)
            return true;
        if (n < 0)
            return false;
    }
}

/* The value of header name in r (case-insensitive), or NULL. Valid until the 4th next call. */
static const char *hdr(const resp *r, const char *name)
{
    static char vals[4][512];
    static int k;
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1, *end = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            size_t n = end ? (size_t)(end - v) : strlen(v);
            char *out = vals[k++ % 4];
            snprintf(out, 512, "%.*s", (int)n, v);
            return out;
        }
    }
    return NULL;
}

/* Reads one response from fd (at most ms). */
static void read_resp(int fd, resp *r, int ms)
{
    char buf[sizeof(r->head) + sizeof(r->body)];
    size_t have = 0;
    int64_t deadline = now_ms() + ms;
    char *end = NULL;
    while (!end) {
        if (have == sizeof(buf) - 1)
            return;
        /* One byte at a time up to the end of the head: pipelined answers may arrive in one
         * segment, and bytes of the next answer must stay in the socket for the next call. */
        ssize_t n = recv_until(fd, buf + have, 1, deadline);
        if (n <= 0) {
            r->eof = n == 0;
            return;
        }
        have += (size_t)n;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    size_t hlen = (size_t)(end - buf) + 2;
    if (hlen >= sizeof(r->head))
        return;
    memcpy(r->head, buf, hlen);
    r->head[hlen] = '\0';
    int status = 0;
    if (sscanf(r->head, "HTTP/1.%*d %d", &status) != 1)
        return;
    const char *cl = hdr(r, "Content-Length");
    size_t want = cl && !r->no_body ? (size_t)strtoul(cl, NULL, 10) : 0;
    bool to_eof = !cl && !r->no_body && status != 204 && status != 304;
    size_t got = have - (hlen + 2);
    if (got > sizeof(r->body))
        return;
    memcpy(r->body, end + 4, got);
    while (to_eof || got < want) {
        if (got >= sizeof(r->body))
            return;
        size_t room = sizeof(r->body) - got;
        if (!to_eof && want - got < room)
            room = want - got; /* never read into the next pipelined answer */
        ssize_t n = recv_until(fd, r->body + got, room, deadline);
        if (n < 0)
            return;
        if (n == 0) {
            r->eof = true;
            if (to_eof)
                break;
            return;
        }
        got += (size_t)n;
    }
    r->len = got;
    r->status = status;
    const char *ct = hdr(r, "Content-Type");
    if (ct && strncmp(ct, "application/json", 16) == 0)
        r->json = cJSON_ParseWithLength(r->body, r->len);
}

/* Sends a request on fd. key: bearer key or NULL; extra: more header lines ("X: y\r\n"). */
static bool send_req(int fd, const char *method, const char *path, const char *key,
                     const char *extra, const char *body, size_t blen, bool close_conn)
{
    char head[8192];
    int n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%s%s", method,
                     path, key ? "Authorization: Bearer " : "", key ? key : "", key ? "\r\n" : "",
                     extra ? extra : "");
    if (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Length: %zu\r\n", blen);
    n += snprintf(head + n, sizeof(head) - (size_t)n, "%s\r\n",
                  close_conn ? "Connection: close\r\n" : "");
    if (n >= (int)sizeof(head))
        return false;
    return send_all(fd, head, (size_t)n) && (!blen || send_all(fd, body, blen));
}

/* One request on a connection of its own. The server is asked to close it after replying, and
 * we wait until it has, so that connection counts are exact. */
static void req_full(resp *r, const char *method, const char *path, const char *key,
                     const char *extra, const char *body, size_t blen)
{
    resp_clear(r);
    r->no_body = strcmp(method, "HEAD") == 0;
    int fd = dial();
    if (fd < 0)
        return;
    if (send_req(fd, method, path, key, extra, body, blen, true)) {
        read_resp(fd, r, 5000);
        if (r->status && !r->eof)
            r->eof = wait_eof(fd, 2000);
    }
    close(fd);
}

static void req(resp *r, const char *method, const char *path, const char *key)
{
    req_full(r, method, path, key, NULL, NULL, 0);
}

/* On an open keep-alive connection. */
static void req_on(int fd, resp *r, const char *method, const char *path)
{
    resp_clear(r);
    if (send_req(fd, method, path, NULL, NULL, NULL, 0, false))
        read_resp(fd, r, 5000);
}

/* A JSON member by dotted path ("error.code"), or NULL. */
static const cJSON *jget(const resp *r, const char *path)
{
    const cJSON *j = r->json;
    char part[64];
    while (j && *path) {
        size_t n = strcspn(path, ".");
        snprintf(part, sizeof(part), "%.*s", (int)n, path);
        j = cJSON_GetObjectItemCaseSensitive(j, part);
        path += n + (path[n] == '.');
    }
    return j;
}

static const char *jstr(const resp *r, const char *path)
{
    const cJSON *j = jget(r, path);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

static double jnum(const resp *r, const char *path)
{
    const cJSON *j = jget(r, path);
    return cJSON_IsNumber(j) ? j->valuedouble : -1;
}

static int jbool(const resp *r, const char *path)
{
    const cJSON *j = jget(r, path);
    return cJSON_IsBool(j) ? cJSON_IsTrue(j) : -1;
}

/* The body equals the JSON text want (compared after parsing both). */
static bool json_is(const resp *r, const char *want)
{
    cJSON *w = cJSON_Parse(want);
    bool eq = w && r->json && cJSON_Compare(r->json, w, true);
    cJSON_Delete(w);
    return eq;
}

static int state(const char *what)
{
    resp r = {0};
    req(&r, "GET", "/t/state", NULL);
    int v = (int)jnum(&r, what);
    resp_clear(&r);
    return v;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void t_routing(void)
{
    resp r = {0};
    req(&r, "GET", "/t/p/a%20b", VIEW);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(&r, "route"), "get");
    CHECK_STR(jstr(&r, "id"), "a b");
    CHECK_STR(jstr(&r, "key"), "view");
    CHECK_STR(jstr(&r, "method"), "GET");
    CHECK_STR(jstr(&r, "path"), "/t/p/a%20b");
    CHECK_STR(hdr(&r, "Content-Type"), "application/json; charset=utf-8");
    CHECK_STR(hdr(&r, "Cache-Control"), "no-store");
    CHECK_STR(hdr(&r, "X-Content-Type-Options"), "nosniff");
    CHECK(r.eof);

    /* The pattern with more literal characters wins, whichever was registered first. */
    req(&r, "GET", "/t/p/x:read", VIEW);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(&r, "route"), "read");
    CHECK_STR(jstr(&r, "id"), "x");
    req(&r, "GET", "/t/p/x%3Aread", VIEW);
    CHECK_STR(jstr(&r, "route"), "read");
    req(&r, "GET", "/t/p/:read", VIEW); /* empty capture: not "read", but {id} = ":read" */
    CHECK_STR(jstr(&r, "route"), "get");
    CHECK_STR(jstr(&r, "id"), ":read");
    req(&r, "GET", "/t/lit/me", NULL);
    CHECK_STR(jstr(&r, "route"), "lit-me");
    req(&r, "GET", "/t/lit/you", NULL);
    CHECK_STR(jstr(&r, "route"), "lit-capture");
    CHECK_STR(jstr(&r, "id"), "you");
    CHECK_STR(jstr(&r, "key"), ""); /* no auth on this route */

    req(&r, "POST", "/t/p/u1/inbox/p1:u1:inbox:read", APP);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(&r, "route"), "inbox");
    CHECK_STR(jstr(&r, "id"), "u1");
    CHECK_STR(jstr(&r, "notice"), "p1:u1:inbox");
    CHECK_STR(jstr(&r, "key"), "app1");

    const char *not_found[] = {"/t/p/", "/t/p/a/b", "/nope", "/", "/t/p", "/t/p/x/", "//t/p/x"};
    for (size_t i = 0; i < sizeof(not_found) / sizeof(not_found[0]); i++) {
        req(&r, "GET", not_found[i], VIEW);
        CHECK_INT(r.status, 404);
        CHECK_STR(jstr(&r, "error.code"), "not_found");
        CHECK(jstr(&r, "error.message") != NULL);
    }

    req(&r, "PUT", "/t/p/x", ADMIN);
    CHECK_INT(r.status, 405);
    CHECK_STR(hdr(&r, "Allow"), "GET, HEAD, DELETE, OPTIONS");
    CHECK_STR(jstr(&r, "error.code"), "method_not_allowed");
    req(&r, "GET", "/t/p/a%00b", VIEW);
    CHECK_INT(r.status, 400);
    CHECK_STR(jstr(&r, "error.code"), "bad_request");
    req(&r, "DELETE", "/t/p/x", ADMIN);
    CHECK_INT(r.status, 204);
    CHECK_INT(r.len, 0);
    resp_clear(&r);
}

/* HEAD is the GET route without a body; OPTIONS lists a path's methods; other methods evhttp
 * knows get a JSON 405. */
static void t_head_options(void)
{
    resp r = {0}, g = {0};
    req(&g, "GET", "/t/query?a=1", NULL);
    req(&r, "HEAD", "/t/query?a=1", NULL);
    CHECK_INT(r.status, 200);
    CHECK_INT(r.len, 0);
    CHECK_STR(hdr(&r, "Content-Type"), "application/json; charset=utf-8");
    CHECK_INT((int)strtol(hdr(&r, "Content-Length") ? hdr(&r, "Content-Length") : "-1", NULL, 10),
              (int)g.len);
    CHECK(r.eof); /* no stray body before the close */
    req(&r, "HEAD", "/t/p/x", NULL);
    CHECK_INT(r.status, 401);
    CHECK_INT(r.len, 0);
    req(&r, "HEAD", "/t/json", APP);
    CHECK_INT(r.status, 405);
    CHECK_STR(hdr(&r, "Allow"), "POST, OPTIONS");
    /* On one keep-alive connection: nothing follows a HEAD answer but the next answer. */
    int fd = dial();
    CHECK(fd >= 0);
    resp_clear(&r);
    r.no_body = true;
    CHECK(send_req(fd, "HEAD", "/t/state", NULL, NULL, NULL, 0, false));
    read_resp(fd, &r, 5000);
    CHECK_INT(r.status, 200);
    req_on(fd, &r, "GET", "/t/state");
    CHECK_INT(r.status, 200);
    CHECK(jnum(&r, "pending") >= 1);
    close(fd);

    req(&r, "OPTIONS", "/t/p/x", NULL);
    CHECK_INT(r.status, 204);
    CHECK_INT(r.len, 0);
    CHECK_STR(hdr(&r, "Allow"), "GET, HEAD, DELETE, OPTIONS");
    CHECK(hdr(&r, "Content-Type") == NULL);
    req(&r, "OPTIONS", "/t/p/u1/inbox/n:read", NULL);
    CHECK_INT(r.status, 204);
    CHECK_STR(hdr(&r, "Allow"), "POST, OPTIONS");
    req_full(&r, "OPTIONS", "/t/large", NULL, NULL, "{}", 2); /* a body is read and ignored */
    CHECK_INT(r.status, 204);
    CHECK_STR(hdr(&r, "Allow"), "POST, OPTIONS");
    req(&r, "OPTIONS", "/nope", NULL);
    CHECK_INT(r.status, 404);
    CHECK_STR(jstr(&r, "error.code"), "not_found");
    req(&r, "TRACE", "/t/p/x", ADMIN);
    CHECK_INT(r.status, 405);
    CHECK_STR(jstr(&r, "error.code"), "method_not_allowed");
    /* evhttp reads no body after HEAD: one is refused from the head. */
    req_full(&r, "HEAD", "/t/p/x", VIEW, NULL, "abc", 3);
    CHECK_INT(r.status, 400);
    resp_clear(&r);
    resp_clear(&g);
}

/* Request ids as plain functions: which client ids are kept, traceparents, fresh ids. */
static void t_request_id_fns(void)
{
    char out[ZD_REQUEST_ID_MAX + 1];
    CHECK(zd_request_id_valid("abc-123_x.y:z/=+", 16));
    CHECK(!zd_request_id_valid("", 0));
    CHECK(!zd_request_id_valid("a b", 3));
    CHECK(!zd_request_id_valid("a\"b", 3));
    CHECK(!zd_request_id_valid("a\\b", 3));
    CHECK(!zd_request_id_valid("a\x7f", 2));
    CHECK(!zd_request_id_valid("caf\xc3\xa9", 5));
    CHECK(!zd_request_id_valid("13812345678", 11)); /* masked in logs: replaced */
    CHECK(!zd_request_id_valid("id-1234567", 10));
    CHECK(!zd_request_id_valid("x@example.cn", 12));
    CHECK(!zd_request_id_valid("abc1234567", 10)); /* inside a word too */
    CHECK(zd_request_id_valid("abc123456-789012", 16));
    char longid[ZD_REQUEST_ID_MAX + 2];
    memset(longid, 'a', sizeof(longid));
    CHECK(zd_request_id_valid(longid, ZD_REQUEST_ID_MAX));
    CHECK(!zd_request_id_valid(longid, ZD_REQUEST_ID_MAX + 1));

    CHECK(zd_request_id_from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                         out));
    CHECK_STR(out, "4bf92f3577b34da6a3ce929d0e0e4736");
    /* A later version may append fields; version 00 may not. */
    CHECK(zd_request_id_from_traceparent(
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz", out));
    CHECK(!zd_request_id_from_traceparent(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz", out));
    CHECK(!zd_request_id_from_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                                          out));
    CHECK(!zd_request_id_from_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                                          out));
    CHECK(!zd_request_id_from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                                          out));
    CHECK(!zd_request_id_from_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                                          out));
    CHECK(!zd_request_id_from_traceparent("00-4bf92f35", out));
    CHECK(!zd_request_id_from_traceparent(NULL, out));

    char a[33], b[33];
    for (int i = 0; i < 1000; i++) {
        zd_request_id_new(a);
        CHECK_INT((int)strlen(a), 32);
        CHECK(zd_request_id_valid(a, 32));
    }
    zd_request_id_new(b);
    CHECK(strcmp(a, b) != 0);

    CHECK(
        zd_request_id_pick("mine", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", out));
    CHECK_STR(out, "mine");
    CHECK(zd_request_id_pick("no good", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                             out));
    CHECK_STR(out, "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(!zd_request_id_pick(NULL, NULL, out));
    CHECK_INT((int)strlen(out), 32);
}

/* If-Match / If-None-Match over versions (zhidad/precond.h). */
static void t_precond(void)
{
    zd_precond p;
    zd_error e;
    char buf[ZD_ETAG_MAX];
    const char *ex;
    CHECK_INT(zd_precond_parse(NULL, NULL, &p, &e), 0);
    CHECK(!zd_precond_any(&p) && zd_precond_holds(&p, false, 0) && zd_precond_holds(&p, true, 3));
    CHECK(zd_precond_direct(&p, buf, &ex) && ex == NULL);

    CHECK_INT(zd_precond_parse("\"3\"", NULL, &p, &e), 0);
    CHECK(zd_precond_holds(&p, true, 3) && !zd_precond_holds(&p, true, 4));
    CHECK(!zd_precond_holds(&p, false, 0));
    CHECK(zd_precond_direct(&p, buf, &ex) && ex && strcmp(ex, "3") == 0);

    CHECK_INT(zd_precond_parse(" \"1\" ,W/\"3\", \"x\",\"5\"", NULL, &p, &e), 0);
    CHECK_INT(p.nmatch, 2); /* weak and non-version tags never match If-Match */
    CHECK(zd_precond_holds(&p, true, 5) && !zd_precond_holds(&p, true, 3));
    CHECK(!zd_precond_direct(&p, buf, &ex));

    CHECK_INT(zd_precond_parse("*", NULL, &p, &e), 0);
    CHECK(zd_precond_holds(&p, true, 9) && !zd_precond_holds(&p, false, 0));
    CHECK(!zd_precond_direct(&p, buf, &ex));

    CHECK_INT(zd_precond_parse(NULL, "*", &p, &e), 0);
    CHECK(!zd_precond_holds(&p, true, 1) && zd_precond_holds(&p, false, 0));
    CHECK(zd_precond_direct(&p, buf, &ex) && ex && strcmp(ex, "-") == 0);
    CHECK_INT(zd_precond_parse(NULL, "W/\"2\"", &p, &e), 0); /* weak comparison */
    CHECK(!zd_precond_holds(&p, true, 2) && zd_precond_holds(&p, true, 3));

    const char *bad[] = {"3", "\"3", "*, \"3\"", "\"3\" \"4\"", "W/3", "\"a b\"", "", ","};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_INT(zd_precond_parse(bad[i], NULL, &p, &e), -EINVAL);
        CHECK_STR(e.code, "bad_request");
        CHECK_STR(e.field, "If-Match");
    }
    CHECK_INT(zd_precond_parse(NULL, "nope", &p, &e), -EINVAL);
    CHECK_STR(e.field, "If-None-Match");
    char many[512] = "";
    for (int i = 0; i <= ZD_PRECOND_TAGS_MAX; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s\"%d\"", i ? "," : "", i);
    CHECK_INT(zd_precond_parse(many, NULL, &p, &e), -EINVAL);
    CHECK_STR(zd_etag(42, buf), "\"42\"");
}

/* Key sets: counters follow names, removed keys retire with their counts, the summary names
 * what changed and never a secret. */
static void t_keysets(void)
{
    char err[256], sum[512];
    zd_config *c1 = NULL, *c2 = NULL;
    CHECK_INT(zd_config_from_text(config_text, strlen(config_text), &c1, err, sizeof(err)), 0);
    CHECK_INT(zd_config_from_text(rekey_text, strlen(rekey_text), &c2, err, sizeof(err)), 0);
    if (!c1 || !c2)
        goto out;
    zd_keyset *a = zd_keyset_new(c1->keys, c1->nkeys, NULL, sum, sizeof(sum));
    CHECK_STR(sum, "3 added (ops, app1, view)");
    CHECK(zd_keyset_find(a, APP, strlen(APP)) == &a->keys[1]);
    a->total[1].used = 5; /* app1 */
    a->since[1].used = 2;
    a->total[2].denied = 1; /* view */
    zd_keyset *b = zd_keyset_new(c2->keys, c2->nkeys, a, sum, sizeof(sum));
    CHECK_STR(sum, "1 added (app2); 1 removed (app1); 1 changed (view: role)");
    CHECK(!strstr(sum, VIEW) && !strstr(sum, APP));
    CHECK_INT(b->nactive, 3);
    CHECK_INT(b->n, 4); /* app1 retired with its counts */
    CHECK_STR(b->keys[3].name, "app1");
    CHECK(b->keys[3].key == NULL);
    CHECK_INT((int)b->total[3].used, 5);
    CHECK_INT((int)b->since[3].used, 2);
    CHECK_INT((int)b->total[1].denied, 1); /* view, by name */
    CHECK(zd_keyset_find(b, APP, strlen(APP)) == NULL);
    CHECK(zd_keyset_find(b, APP2, strlen(APP2)) == &b->keys[2]);
    /* The old set still answers for requests that hold it. */
    CHECK(zd_keyset_find(a, APP, strlen(APP)) == &a->keys[1]);
    zd_keyset_unref(a);
    /* Back: app1 takes its counts up again; a retired key without counts is dropped. */
    zd_keyset *c = zd_keyset_new(c1->keys, c1->nkeys, b, sum, sizeof(sum));
    CHECK_STR(sum, "1 added (app1); 1 removed (app2); 1 changed (view: role)");
    CHECK_INT(c->n, 3);
    CHECK_INT((int)c->total[1].used, 5);
    zd_keyset *d = zd_keyset_new(c1->keys, c1->nkeys, zd_keyset_ref(c), sum, sizeof(sum));
    CHECK_STR(sum, "unchanged");
    zd_keyset_unref(c);
    zd_keyset_unref(c);
    zd_keyset_unref(b);
    zd_keyset_unref(d);
    zd_keyset_unref(NULL);
out:
    zd_config_free(c1);
    zd_config_free(c2);
}

/* Keys swapped while the server runs (SIGHUP in zhidad): a request in flight keeps its key. */
static void t_rekey(void)
{
    resp r = {0};
    int fd = dial();
    CHECK(fd >= 0);
    CHECK(send_req(fd, "GET", "/t/akey/400", APP, NULL, NULL, 0, true));
    sleep_ms(100);
    req(&r, "GET", "/t/rekey/1", NULL);
    CHECK_INT(r.status, 200);
    CHECK(strcmp(r.body, "1 added (app2); 1 removed (app1); 1 changed (view: role)") == 0);
    resp_clear(&r);
    read_resp(fd, &r, 5000);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(&r, "key"), "app1"); /* authenticated before the swap */
    close(fd);
    req(&r, "GET", "/t/p/x", APP);
    CHECK_INT(r.status, 401);
    req(&r, "GET", "/t/p/x", APP2);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(&r, "key"), "app2");
    req(&r, "DELETE", "/t/p/x", VIEW); /* admin only: view is an app key now */
    CHECK_INT(r.status, 403);
    CHECK(jstr(&r, "error.message") && strstr(jstr(&r, "error.message"), "app key \"view\""));
    req(&r, "GET", "/t/uses", NULL);
    CHECK(jnum(&r, "app1 app") >= 1); /* retired, its count kept */
    CHECK_INT((int)jnum(&r, "app2 app"), 1);
    req(&r, "GET", "/t/rekey/0", NULL);
    CHECK(strcmp(r.body, "1 added (app1); 1 removed (app2); 1 changed (view: role)") == 0);
    req(&r, "GET", "/t/p/x", APP);
    CHECK_INT(r.status, 200);
    resp_clear(&r);
}

/* Every answer carries X-Request-Id: the client's when usable, else a fresh one; error bodies
 * carry it as error.request_id. */
static void t_request_id(void)
{
    resp r = {0};
    req_full(&r, "GET", "/t/p/x", VIEW, "X-Request-Id: abc-123\r\n", NULL, 0);
    CHECK_STR(hdr(&r, "X-Request-Id"), "abc-123");
    req_full(&r, "GET", "/t/p/x", VIEW,
             "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n", NULL, 0);
    CHECK_STR(hdr(&r, "X-Request-Id"), "4bf92f3577b34da6a3ce929d0e0e4736");
    char first[64];
    req(&r, "GET", "/t/p/x", VIEW);
    snprintf(first, sizeof(first), "%s", hdr(&r, "X-Request-Id") ? hdr(&r, "X-Request-Id") : "");
    CHECK_INT((int)strlen(first), 32);
    req_full(&r, "GET", "/t/p/x", VIEW, "X-Request-Id: has space\r\n", NULL, 0);
    CHECK_INT((int)strlen(hdr(&r, "X-Request-Id")), 32);
    CHECK(strcmp(hdr(&r, "X-Request-Id"), first) != 0);
    /* From a handler, from dispatch and from a refusal before the body. */
    req_full(&r, "GET", "/t/err", NULL, "X-Request-Id: rid-e1\r\n", NULL, 0);
    CHECK_STR(jstr(&r, "error.request_id"), "rid-e1");
    req_full(&r, "GET", "/t/p/x", NULL, "X-Request-Id: rid-e2\r\n", NULL, 0);
    CHECK_INT(r.status, 401);
    CHECK_STR(jstr(&r, "error.request_id"), "rid-e2");
    static char big[5000];
    memset(big, 'x', sizeof(big));
    req_full(&r, "POST", "/t/small", APP, "X-Request-Id: rid-e3\r\n", big, sizeof(big));
    CHECK_INT(r.status, 413);
    CHECK_STR(hdr(&r, "X-Request-Id"), "rid-e3");
    CHECK_STR(jstr(&r, "error.request_id"), "rid-e3");
    resp_clear(&r);
}

static void t_auth(void)
{
    resp r = {0};
    req(&r, "GET", "/t/p/x", NULL);
    CHECK_INT(r.status, 401);
    CHECK_STR(jstr(&r, "error.code"), "unauthorized");
    CHECK_STR(hdr(&r, "WWW-Authenticate"), "Bearer realm=\"zhida\"");
    req(&r, "GET", "/t/p/x", "wrong-key-0123456789");
    CHECK_INT(r.status, 401);
    CHECK_STR(hdr(&r, "WWW-Authenticate"), "Bearer realm=\"zhida\", error=\"invalid_token\"");
    CHECK(!strstr(r.body, "wrong-key"));
    req_full(&r, "GET", "/t/p/x", NULL, "Authorization: Basic " ADMIN "\r\n", NULL, 0);
    CHECK_INT(r.status, 401);
    req_full(&r, "GET", "/t/p/x", NULL, "Authorization: Bearer\r\n", NULL, 0);
    CHECK_INT(r.status, 401);
    /* A key prefix or a longer string is not the key. */
    req(&r, "GET", "/t/p/x", "admin-key-012345678");
    CHECK_INT(r.status, 401);
    req(&r, "GET", "/t/p/x", ADMIN "0");
    CHECK_INT(r.status, 401);
    /* The scheme is case-insensitive; spaces around the key do not count. */
    req_full(&r, "GET", "/t/p/x", NULL, "Authorization: bearer  " VIEW " \r\n", NULL, 0);
    CHECK_INT(r.status, 200);
    CHECK_STR(jstr(&r, "key"), "view");

    req(&r, "POST", "/t/p/u1/inbox/n:read", VIEW);
    CHECK_INT(r.status, 403);
    CHECK_STR(jstr(&r, "error.code"), "forbidden");
    CHECK(!strstr(r.body, VIEW));
    req(&r, "DELETE", "/t/p/x", APP);
    CHECK_INT(r.status, 403);
    CHECK(!strstr(r.body, APP));
    req(&r, "POST", "/t/p/u1/inbox/n:read", ADMIN);
    CHECK_INT(r.status, 200);
    resp_clear(&r);
}

static void t_bodies(void)
{
    static char xs[5000];
    memset(xs, 'x', sizeof(xs));
    resp r = {0};
    req_full(&r, "POST", "/t/small", APP, NULL, xs, 1024);
    CHECK_INT(r.status, 200);
    CHECK_INT((int)jnum(&r, "len"), 1024);
    CHECK_INT(jbool(&r, "nul"), 1);
    CHECK_INT(jbool(&r, "all_x"), 1);
    req_full(&r, "POST", "/t/small", APP, NULL, xs, 1025);
    CHECK_INT(r.status, 413);
    CHECK_STR(jstr(&r, "error.code"), "body_too_large");
    req_full(&r, "POST", "/t/small", APP, NULL, "", 0);
    CHECK_INT(r.status, 200);
    CHECK_INT((int)jnum(&r, "len"), 0);
    CHECK_INT(jbool(&r, "nul"), 1);
    req_full(&r, "POST", "/t/large", APP, NULL, xs, 4000);
    CHECK_INT(r.status, 200);
    CHECK_INT((int)jnum(&r, "len"), 4000);
    CHECK_INT(jbool(&r, "all_x"), 1);
    /* Over import_body_max, refused from the Content-Length header. */
    req_full(&r, "POST", "/t/large", APP, NULL, xs, 5000);
    CHECK_INT(r.status, 413);
    CHECK_STR(jstr(&r, "error.code"), "body_too_large");
    /* Below evhttp's own limit (import_body_max) the key is checked before the route's size. */
    req_full(&r, "POST", "/t/small", NULL, NULL, xs, 2000);
    CHECK_INT(r.status, 401);
    /* A chunked body over the limit fails too, and the server lives on. */
    {
        int fd = dial();
        CHECK(fd >= 0);
        if (fd >= 0) {
            static const char head[] =
                "POST /t/large HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " APP
                "\r\nTransfer-Encoding: chunked\r\n\r\n";
            bool ok = send_all(fd, head, sizeof(head) - 1);
            for (int i = 0; ok && i < 3; i++) {
                char chunk[2100];
                int n = snprintf(chunk, sizeof(chunk), "7d0\r\n");
                memset(chunk + n, 'x', 2000);
                memcpy(chunk + n + 2000, "\r\n", 2);
                ok = send_all(fd, chunk, (size_t)n + 2002);
            }
            if (ok)
                ok = send_all(fd, "0\r\n\r\n", 5);
            resp_clear(&r);
            read_resp(fd, &r, 3000);
            CHECK_INT(r.status, 413);
            CHECK_STR(jstr(&r, "error.code"), "body_too_large");
            close(fd);
        }
    }
    CHECK_INT(state("pending"), 1);
    resp_clear(&r);
}

static void t_json(void)
{
    resp r = {0};
    static const char ok[] = "{\"a\": [1, {\"b\": \"\xe7\x9b\xb4\"}]}";
    req_full(&r, "POST", "/t/json", APP, NULL, ok, sizeof(ok) - 1);
    CHECK_INT(r.status, 200);
    CHECK(json_is(&r, "{\"a\": [1, {\"b\": \"\xe7\x9b\xb4\"}]}"));
    static const struct {
        const char *body, *code;
    } bad[] = {
        {"{\"a\": }", "bad_json"},
        {"{\"a\": \"\xff\"}", "invalid_utf8"},
        {"{\"a\":[[[[1]]]]}", "too_deep"},
        {"[1]", "bad_json"},
        {"", "bad_json"},
        {"{} x", "bad_json"},
        {"\"s\"", "bad_json"},
        {"{\"a\": \"\xed\xa0\x80\"}", "invalid_utf8"},
        {"{\"a\": 1", "bad_json"},
        {"null", "bad_json"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        req_full(&r, "POST", "/t/json", APP, NULL, bad[i].body, strlen(bad[i].body));
        CHECK_INT(r.status, 400);
        CHECK_STR(jstr(&r, "error.code"), bad[i].code);
        if (!jstr(&r, "error.code") || strcmp(jstr(&r, "error.code"), bad[i].code) != 0)
            fprintf(stderr, "  (body %zu)\n", i);
    }
    /* A NUL byte is never valid JSON text (raw or inside a string); cJSON alone would stop at
     * it and hand back a truncated string. */
    static const struct {
        const char *body;
        size_t len;
    } nul[] = {
        {"{}\0", 3}, {"{\"a\":\"x\0y\"}", 11}, {"{\"a\":1}\0 ", 9}, {"{\"a\":\"x\\u0000y\"}", 16}};
    for (size_t i = 0; i < sizeof(nul) / sizeof(nul[0]); i++) {
        req_full(&r, "POST", "/t/json", APP, NULL, nul[i].body, nul[i].len);
        CHECK_INT(r.status, 400);
        CHECK_STR(jstr(&r, "error.code"), "bad_json");
        if (r.status != 400)
            fprintf(stderr, "  (NUL body %zu: %.*s)\n", i, (int)r.len, r.body);
    }
    /* An escaped backslash before "u0000" is just text. */
    static const char bs[] = "{\"a\":\"x\\\\u0000y\"}";
    req_full(&r, "POST", "/t/json", APP, NULL, bs, sizeof(bs) - 1);
    CHECK_INT(r.status, 200);
    CHECK(json_is(&r, "{\"a\": \"x\\\\u0000y\"}"));
    /* Brackets inside strings do not count towards the depth; depth 4 itself is fine. */
    static const char deep_ok[] = "{\"a\":[[[\"[[[[[[\\\"{{\"]]]}";
    req_full(&r, "POST", "/t/json", APP, NULL, deep_ok, sizeof(deep_ok) - 1);
    CHECK_INT(r.status, 200);
    /* Trailing white space is allowed. */
    req_full(&r, "POST", "/t/json", APP, NULL, "{\"k\":1} \r\n", 10);
    CHECK_INT(r.status, 200);
    CHECK(json_is(&r, "{\"k\":1}"));
    resp_clear(&r);
}

static void t_misc(void)
{
    resp r = {0};
    req(&r, "GET", "/t/query?a=1&b=x%20y", NULL);
    CHECK_INT(r.status, 200);
    CHECK(json_is(&r, "{\"a\": \"1\", \"b\": \"x y\"}"));
    req(&r, "GET", "/t/query", NULL);
    CHECK(json_is(&r, "{}"));
    req(&r, "GET", "/t/query?a", NULL);
    CHECK_INT(r.status, 400);
    CHECK_STR(jstr(&r, "error.code"), "bad_request");
    req_full(&r, "GET", "/t/hdr", NULL, "X-Test: hello\r\n", NULL, 0);
    CHECK_INT(r.status, 200);
    CHECK_INT(r.len, 5);
    CHECK(memcmp(r.body, "hello", 5) == 0);
    CHECK_STR(hdr(&r, "X-Reply"), "yes");
    CHECK_STR(hdr(&r, "Content-Type"), "text/plain");
    const char *rid = "X-Request-Id: t-misc\r\n";
    req_full(&r, "GET", "/t/err", NULL, rid, NULL, 0);
    CHECK_INT(r.status, 400);
    CHECK(json_is(&r, "{\"error\": {\"code\": \"invalid_type\", \"message\": \"employees must be "
                      "a number\", \"request_id\": \"t-misc\", \"field\": \"employees\"}}"));
    req_full(&r, "GET", "/t/err?extra=1", NULL, rid, NULL, 0);
    CHECK(json_is(&r, "{\"error\": {\"code\": \"bad_rule\", \"message\": \"replaced\", "
                      "\"request_id\": \"t-misc\", \"position\": 7}}"));
    req_full(&r, "GET", "/t/err?fmt=1", NULL, rid, NULL, 0);
    CHECK_INT(r.status, 422);
    CHECK(json_is(&r, "{\"error\": {\"code\": \"bad_value\", \"message\": \"value 42 of n\", "
                      "\"request_id\": \"t-misc\"}}"));
    resp_clear(&r);
}

static void t_async(void)
{
    resp r = {0};
    int64_t t0 = now_ms();
    req(&r, "GET", "/t/async/300", NULL);
    int64_t took = now_ms() - t0;
    CHECK_INT(r.status, 200);
    CHECK_INT(jbool(&r, "alive"), 1);
    CHECK(took >= 290 && took < 2000);

    /* http_timeout_s (1 s) limits reading and writing, not how long a handler may take. */
    req(&r, "GET", "/t/async/1300", NULL);
    CHECK_INT(r.status, 200);
    CHECK_INT(jbool(&r, "alive"), 1);

    /* Other requests are served while one waits. */
    int fd = dial();
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK(send_req(fd, "GET", "/t/async/400", NULL, NULL, NULL, 0, false));
        sleep_ms(50);
        CHECK_INT(state("pending"), 2);
        resp_clear(&r);
        read_resp(fd, &r, 3000);
        CHECK_INT(r.status, 200);
        CHECK_INT(jbool(&r, "alive"), 1);
        close(fd);
    }

    /* Pipelined requests behind an async one are answered in order, each once. */
    fd = dial();
    CHECK(fd >= 0);
    if (fd >= 0) {
        static const char two[] = "GET /t/async/200 HTTP/1.1\r\nHost: x\r\n\r\n"
                                  "GET /t/lit/me HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        CHECK(send_all(fd, two, sizeof(two) - 1));
        char all[8192];
        size_t have = 0;
        int64_t deadline = now_ms() + 3000;
        ssize_t n;
        while (have < sizeof(all) - 1 &&
               (n = recv_until(fd, all + have, sizeof(all) - 1 - have, deadline)) > 0)
            have += (size_t)n;
        all[have] = '\0';
        const char *first = strstr(all, "HTTP/1.1 200");
        const char *second = first ? strstr(first + 1, "HTTP/1.1 200") : NULL;
        CHECK(first == all);
        CHECK(second != NULL);
        CHECK(second && !strstr(second + 1, "HTTP/1."));
        const char *alive = strstr(all, "\"alive\":true"), *me = strstr(all, "lit-me");
        CHECK(alive && me && alive < second && me > second);
        close(fd);
    }

    /* Clients that leave before the reply: a close, then a reset. The handler learns it from
     * zd_req_alive() and its reply only frees the request. */
    int g0 = state("gone");
    for (int i = 0; i < 2; i++) {
        fd = dial();
        CHECK(fd >= 0);
        if (fd < 0)
            continue;
        CHECK(send_req(fd, "GET", "/t/async/300", NULL, NULL, NULL, 0, false));
        sleep_ms(100);
        if (i == 1) {
            struct linger lg = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        close(fd);
    }
    sleep_ms(400);
    CHECK_INT(state("gone"), g0 + 2);
    CHECK_INT(state("pending"), 1); /* the state request itself */
    CHECK_INT(state("connections"), 1);
    resp_clear(&r);
}

static void t_connections(void)
{
    resp r = {0};
    int fds[4];
    /* Several requests on each keep-alive connection, up to the limit of 4. */
    for (int i = 0; i < 4; i++) {
        fds[i] = dial();
        CHECK(fds[i] >= 0);
        req_on(fds[i], &r, "GET", "/t/state");
        CHECK_INT(r.status, 200);
        req_on(fds[i], &r, "GET", "/t/state");
        CHECK_INT(r.status, 200);
        CHECK_INT((int)jnum(&r, "connections"), i + 1);
        CHECK(!r.eof);
    }
    req(&r, "GET", "/t/state", NULL);
    CHECK_INT(r.status, 503);
    CHECK_STR(jstr(&r, "error.code"), "too_many_connections");
    CHECK(r.eof);
    /* The open ones still work. */
    req_on(fds[0], &r, "GET", "/t/state");
    CHECK_INT(r.status, 200);
    close(fds[3]);
    sleep_ms(100);
    req(&r, "GET", "/t/state", NULL);
    CHECK_INT(r.status, 200);
    CHECK_INT((int)jnum(&r, "connections"), 4);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    sleep_ms(100);
    CHECK_INT(state("connections"), 1);

    /* An idle keep-alive connection is closed after http_timeout_s (1 s). */
    int fd = dial();
    CHECK(fd >= 0);
    if (fd >= 0) {
        req_on(fd, &r, "GET", "/t/state");
        CHECK_INT(r.status, 200);
        int64_t t0 = now_ms();
        CHECK(wait_eof(fd, 4000));
        int64_t idle = now_ms() - t0;
        CHECK(idle >= 700 && idle < 3000);
        close(fd);
    }

    /* A client that sends half a request and stalls is cut off after the timeout as well. */
    fd = dial();
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK(send_all(fd, "GET /t/state HTTP/1.1\r\nHo", 25));
        int64_t t0 = now_ms();
        resp_clear(&r);
        read_resp(fd, &r, 4000);
        int64_t idle = now_ms() - t0;
        CHECK_INT(r.status, 0); /* no answer, just closed */
        CHECK(r.eof);
        CHECK(idle >= 700 && idle < 3500);
        close(fd);
    }

    /* Headers over header_max (2048 bytes). */
    char big[3100];
    snprintf(big, sizeof(big), "X-Big: %03000d\r\n", 0);
    req_full(&r, "GET", "/t/state", NULL, big, NULL, 0);
    CHECK_INT(r.status, 431);
    CHECK_STR(jstr(&r, "error.code"), "headers_too_large");
    CHECK(r.eof);
    /* Garbage instead of a request line. */
    fd = dial();
    if (fd >= 0) {
        CHECK(send_all(fd, "NONSENSE\r\n\r\n", 12));
        resp_clear(&r);
        read_resp(fd, &r, 3000);
        CHECK_INT(r.status, 400);
        CHECK_STR(jstr(&r, "error.code"), "bad_request");
        close(fd);
    }
    sleep_ms(50);
    CHECK_INT(state("connections"), 1);
    resp_clear(&r);
}

static void stat_check(const resp *r, const char *key, int want)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(r->json, key);
    int got = cJSON_IsNumber(j) ? (int)j->valuedouble : 0;
    if (got != want)
        fprintf(stderr, "stat \"%s\": %d, expected %d\n", key, got, want);
    CHECK_INT(got, want);
}

static void t_stats(void)
{
    resp r = {0};
    req(&r, "GET", "/t/stats", NULL);
    CHECK_INT(r.status, 200);
    stat_check(&r, "GET /t/p/{id} 200", 3);
    stat_check(&r, "GET /t/p/{id} 401", 6);
    stat_check(&r, "GET /t/p/{id}:read 200", 2);
    stat_check(&r, "DELETE /t/p/{id} 204", 1);
    stat_check(&r, "DELETE /t/p/{id} 403", 1);
    stat_check(&r, "POST /t/p/{id}/inbox/{notice}:read 403", 1);
    stat_check(&r, "POST /t/small 413", 1);
    stat_check(&r, "* (unmatched) 404", 7);
    stat_check(&r, "* (unmatched) 405", 1);
    stat_check(&r, "* (unmatched) 503", 1);
    stat_check(&r, "GET /t/async/{ms} 200", 6);
    resp_clear(&r);
}

/* Sends data on a connection of its own and reads one response, without sending more. */
static void raw(resp *r, const char *data, size_t len)
{
    resp_clear(r);
    int fd = dial();
    if (fd < 0)
        return;
    if (send_all(fd, data, len)) {
        read_resp(fd, r, 3000);
        if (r->status && !r->eof)
            r->eof = wait_eof(fd, 2000);
    }
    close(fd);
}

static int stat_of(const char *key)
{
    resp r = {0};
    req(&r, "GET", "/t/stats", NULL);
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(r.json, key);
    int v = cJSON_IsNumber(j) ? (int)j->valuedouble : 0;
    resp_clear(&r);
    return v;
}

/* Requests refused from their head alone, before any body byte is sent: the answer arrives,
 * JSON, and the server closes the connection. */
static void t_early_refusal(void)
{
#define HEAD(line, hdrs) line " HTTP/1.1\r\nHost: 127.0.0.1\r\n" hdrs "\r\n"
#define BEARER(k) "Authorization: Bearer " k "\r\n"
    static char chunks[1200];
    snprintf(chunks, sizeof(chunks), "%s200\r\n%0512d\r\n200\r\n%0512d\r\n1\r\n",
             HEAD("POST /t/small", BEARER(APP) "Transfer-Encoding: chunked\r\n"), 0, 0);
    const struct {
        const char *req;
        int status;
        const char *code;
    } cases[] = {
        {HEAD("POST /nope", "Content-Length: 1000000000\r\n"), 404, "not_found"},
        {HEAD("POST /t/small", "Content-Length: 1000000000\r\n"), 401, "unauthorized"},
        {HEAD("POST /t/small", BEARER("wrong-key-0123456789") "Content-Length: 10\r\n"), 401,
         "unauthorized"},
        {HEAD("POST /t/small", "Transfer-Encoding: chunked\r\n"), 401, "unauthorized"},
        {HEAD("POST /t/p/u1/inbox/n:read", BEARER(VIEW) "Content-Length: 1000000000\r\n"), 403,
         "forbidden"},
        {HEAD("POST /t/small", BEARER(APP) "Content-Length: 1025\r\n"), 413, "body_too_large"},
        {HEAD("POST /t/large", BEARER(APP) "Content-Length: 4097\r\n"), 413, "body_too_large"},
        {HEAD("POST /t/small", BEARER(APP) "Transfer-Encoding: chunked\r\n") "401\r\n", 413,
         "body_too_large"},
        {chunks, 413, "body_too_large"},
        {HEAD("PUT /t/small", BEARER(APP) "Content-Length: 5\r\n"), 405, "method_not_allowed"},
        {HEAD("POST /t/small", BEARER(APP) "Content-Length: 5x\r\n"), 400, "bad_request"},
        {HEAD("POST /t/small", BEARER(APP) "Content-Length: 5\r\nContent-Length: 6\r\n"), 400,
         "bad_request"},
        {HEAD("POST /t/small", BEARER(APP) "Transfer-Encoding: gzip\r\n"), 400, "bad_request"},
        {HEAD("POST /t/small", BEARER(APP) "X-A: 1\r\n  folded\r\nContent-Length: 5\r\n"), 400,
         "bad_request"},
        {HEAD("POST /t/small", BEARER(APP) "Transfer-Encoding: chunked\r\n") "1;x=y\r\n", 400,
         "bad_request"},
    };
#undef HEAD
#undef BEARER
    int small401 = stat_of("POST /t/small 401"), small413 = stat_of("POST /t/small 413");
    int inbox403 = stat_of("POST /t/p/{id}/inbox/{notice}:read 403");
    resp r = {0};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        raw(&r, cases[i].req, strlen(cases[i].req));
        CHECK_INT(r.status, cases[i].status);
        CHECK_STR(jstr(&r, "error.code"), cases[i].code);
        CHECK_STR(hdr(&r, "Connection"), "close");
        CHECK(r.eof);
        if (r.status != cases[i].status)
            fprintf(stderr, "  (case %zu)\n", i);
        if (r.status == 401)
            CHECK(hdr(&r, "WWW-Authenticate") != NULL);
        if (r.status == 405)
            CHECK_STR(hdr(&r, "Allow"), "POST, OPTIONS");
        CHECK(hdr(&r, "X-Request-Id") != NULL);
    }
    CHECK_INT(stat_of("POST /t/small 401"), small401 + 3);
    CHECK_INT(stat_of("POST /t/small 413"), small413 + 3);
    CHECK_INT(stat_of("POST /t/p/{id}/inbox/{notice}:read 403"), inbox403 + 1);
    CHECK_INT(state("pending"), 1);
    resp_clear(&r);
}

/* Requests with bodies, pipelined: each is framed right, and one refused from its head ends
 * the connection after the answers before it. */
static void t_pipelined_bodies(void)
{
    static const char three[] =
        "POST /t/small HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " APP
        "\r\nContent-Length: 3\r\n\r\nxxx"
        "POST /t/small HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " APP
        "\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxx\r\n3\r\nxxx\r\n0\r\n\r\n"
        "GET /t/lit/me HTTP/1.1\r\nHost: x\r\n\r\n"
        "POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n";
    int fd = dial();
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    CHECK(send_all(fd, three, sizeof(three) - 1));
    static const struct {
        int status;
        const char *key, *want;
    } want[] = {{200, "len", "3"}, {200, "len", "5"}, {200, "route", "lit-me"}, {404, NULL, NULL}};
    resp r = {0};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        resp_clear(&r);
        read_resp(fd, &r, 3000);
        CHECK_INT(r.status, want[i].status);
        if (want[i].key && cJSON_IsNumber(jget(&r, want[i].key)))
            CHECK_INT((int)jnum(&r, want[i].key), atoi(want[i].want));
        else if (want[i].key)
            CHECK_STR(jstr(&r, want[i].key), want[i].want);
    }
    CHECK_STR(jstr(&r, "error.code"), "not_found");
    CHECK(r.eof || wait_eof(fd, 2000));
    close(fd);
    resp_clear(&r);
}

/* request_timeout_s (2 s) bounds a request from its first byte to the end of its body, however
 * steadily the bytes trickle in; the time between requests and in handlers does not count. */
static void t_deadline(void)
{
    static const char slow_head[] = "GET /t/state HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
                                    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    static const char slow_body[] = "POST /t/small HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                    "Authorization: Bearer " APP "\r\nContent-Length: 100\r\n\r\n";
    for (int k = 0; k < 2; k++) {
        int fd = dial();
        CHECK(fd >= 0);
        if (fd < 0)
            return;
        const char *data = slow_head;
        size_t len = sizeof(slow_head) - 1;
        static char body[100];
        if (k == 1) {
            CHECK(send_all(fd, slow_body, sizeof(slow_body) - 1));
            memset(body, 'x', sizeof(body));
            data = body;
            len = sizeof(body);
        }
        /* One byte per 200 ms: never silent for http_timeout_s (1 s). */
        size_t sent = 0;
        for (; sent < len; sent++) {
            struct pollfd p = {fd, POLLIN, 0};
            if (poll(&p, 1, 200) != 0 || !send_all(fd, data + sent, 1))
                break;
        }
        resp r = {0};
        read_resp(fd, &r, 3000);
        CHECK_INT(r.status, 408);
        CHECK_STR(jstr(&r, "error.code"), "request_timeout");
        CHECK(sent < len);
        CHECK(r.eof || wait_eof(fd, 2000));
        close(fd);
        resp_clear(&r);
    }
    /* Four requests on one connection over 2.4 s, each quick: all served. */
    int fd = dial();
    CHECK(fd >= 0);
    resp r = {0};
    for (int i = 0; fd >= 0 && i < 4; i++) {
        req_on(fd, &r, "GET", "/t/state");
        CHECK_INT(r.status, 200);
        CHECK(!r.eof);
        sleep_ms(600);
    }
    if (fd >= 0)
        close(fd);
    resp_clear(&r);
}

/* Connections count from accept: idle ones that never sent a byte hold their slot. */
static void t_accept_count(void)
{
    int idle[4];
    for (int i = 0; i < 4; i++)
        idle[i] = dial();
    sleep_ms(100);
    resp r = {0};
    req(&r, "GET", "/t/state", NULL); /* the fifth connection */
    CHECK_INT(r.status, 503);
    CHECK_STR(jstr(&r, "error.code"), "too_many_connections");
    CHECK(r.eof);
    close(idle[3]);
    sleep_ms(100);
    CHECK_INT(state("connections"), 4);
    for (int i = 0; i < 3; i++)
        close(idle[i]);
    sleep_ms(100);
    CHECK_INT(state("connections"), 1);
    resp_clear(&r);
}

/* SIGTERM: the listener closes, an open keep-alive connection gets 503, a request in flight is
 * still answered, one that outlives the drain is dropped, and the server exits cleanly. */
static void t_graceful_stop(void)
{
    resp r = {0};
    int keep = dial(), quick = dial(), slow = dial();
    CHECK(keep >= 0 && quick >= 0 && slow >= 0);
    if (keep < 0 || quick < 0 || slow < 0)
        return;
    req_on(keep, &r, "GET", "/t/state");
    CHECK_INT(r.status, 200);
    CHECK(send_req(quick, "GET", "/t/async/500", NULL, NULL, NULL, 0, false));
    CHECK(send_req(slow, "GET", "/t/async/3000", NULL, NULL, NULL, 0, false));
    sleep_ms(100);
    CHECK_INT(kill(server_pid, SIGTERM), 0);
    sleep_ms(100);

    int fd = dial();
    CHECK(fd < 0); /* refused: the listener is closed */
    if (fd >= 0)
        close(fd);
    req_on(keep, &r, "GET", "/t/state");
    CHECK_INT(r.status, 503);
    CHECK_STR(jstr(&r, "error.code"), "shutting_down");
    CHECK_STR(hdr(&r, "Connection"), "close");
    CHECK(r.eof || wait_eof(keep, 2000));

    resp_clear(&r);
    read_resp(quick, &r, 2000);
    CHECK_INT(r.status, 200);
    CHECK_INT(jbool(&r, "alive"), 1);
    CHECK_STR(hdr(&r, "Connection"), "close");

    /* The server exits 0 (its own checks passed, nothing leaked) within the 1 s drain. */
    int st = -1;
    int64_t until = now_ms() + 5000;
    while (now_ms() < until && waitpid(server_pid, &st, WNOHANG) == 0)
        sleep_ms(10);
    if (waitpid(server_pid, NULL, WNOHANG) == 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
        CHECK(!"server exited");
    } else {
        CHECK(WIFEXITED(st));
        CHECK_INT(WEXITSTATUS(st), 0);
    }
    server_pid = 0;
    resp_clear(&r);
    read_resp(slow, &r, 1000);
    CHECK_INT(r.status, 0);
    CHECK(r.eof);
    close(keep);
    close(quick);
    close(slow);
}

static void on_alarm(int sig)
{
    static const char msg[] = "test_http: watchdog expired\n";
    ssize_t w = write(2, msg, sizeof(msg) - 1);
    (void)w;
    _exit(2); /* the server child dies with us (PR_SET_PDEATHSIG) */
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm(WATCHDOG_S);
    zd_log_set_level(getenv("ZD_TEST_VERBOSE") ? ZD_LOG_DEBUG : ZD_LOG_WARN);
    int pfd[2];
    if (pipe(pfd) != 0) {
        perror("pipe");
        return 1;
    }
    pid_t parent = getpid();
    fflush(NULL);
    server_pid = fork();
    if (server_pid < 0) {
        perror("fork");
        return 1;
    }
    if (server_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        alarm(WATCHDOG_S);
        close(pfd[0]);
        exit(server_main(pfd[1]));
    }
    close(pfd[1]);
    struct pollfd p = {pfd[0], POLLIN, 0};
    if (poll(&p, 1, 5000) != 1 || read(pfd[0], &port, sizeof(port)) != (ssize_t)sizeof(port) ||
        port <= 0) {
        fprintf(stderr, "test_http: the server did not start\n");
        CHECK(!"server started");
        port = 0;
    }
    close(pfd[0]);
    t_request_id_fns();
    t_precond();
    t_keysets();
    if (port) {
        t_routing();
        t_auth();
        t_bodies();
        t_json();
        t_misc();
        t_async();
        t_connections();
        t_stats();
        t_head_options();
        t_request_id();
        t_rekey();
        t_early_refusal();
        t_pipelined_bodies();
        t_deadline();
        t_accept_count();
        t_graceful_stop();
    }
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
    }
    return check_report("http");
}
