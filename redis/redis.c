/* zhidad's Redis client on hiredis 0.14 async + libevent. hiredis 0.14 has no timeouts and an
 * unbounded output buffer, so commands wait in our own FIFO, at most max_inflight commands and
 * max_inflight_bytes bytes are handed to hiredis, and a 100 ms tick enforces every command's
 * deadline; a missed deadline on an in-flight command means the connection stalled, so it is
 * closed and reopened. */
#include "redis/redis.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netdb.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "common/addr.h"
#include "common/log.h"

#define TICK_MS 100

/* A command's life: queued in our FIFO, in flight in hiredis, then done (callback called).
 * A done command may still be known to hiredis (it timed out, or its connection was dropped):
 * hiredis calls back once more, with a late reply or NULL, and only then is it freed. */
enum cmd_state { CMD_QUEUED, CMD_INFLIGHT, CMD_DONE };

typedef struct zd_rcmd {
    struct zd_rcmd *prev, *next; /* in r->queue or r->inflight; next only in r->done */
    zd_redis *r;
    zd_redis_cb cb;
    void *udata;
    char *buf; /* the formatted command until it is handed to hiredis */
    size_t len;
    int timeout_ms;   /* the command's deadline_ms */
    int64_t deadline; /* monotonic ms: from submission while queued, from sending once sent */
    int status;       /* for a command rejected at submission (-EAGAIN) */
    enum cmd_state state;
    bool in_hiredis;
} zd_rcmd;

typedef struct cmd_list {
    zd_rcmd *head, *tail;
    long n;
} cmd_list;

/* The connection: IDLE (no context; a reconnect may be scheduled) -> CONNECTING -> HANDSHAKE
 * (AUTH, CLIENT SETNAME, PING sent) -> READY; any of them -> CLOSING (context unusable, being
 * torn down by hiredis or by close_ev) -> IDLE. SHUTDOWN is final (zd_redis_free). */
enum conn_state {
    CONN_IDLE,
    CONN_CONNECTING,
    CONN_HANDSHAKE,
    CONN_READY,
    CONN_CLOSING,
    CONN_SHUTDOWN
};

struct zd_redis {
    struct event_base *base;
    char *addr, *password, *name;
    char host[256]; /* as configured: an IP literal or a DNS name */
    char ip[256];   /* what connects use: host itself, or its last resolved address */
    int port;
    bool is_unix, named;
    struct evdns_base *dns;                    /* only for a named host */
    struct evdns_getaddrinfo_request *dns_req; /* a lookup in progress */
    int deadline_ms, max_inflight, queue_max, reconnect_min_ms, reconnect_max_ms;
    size_t max_inflight_bytes;
    size_t inflight_bytes; /* sum of len over r->inflight */

    redisAsyncContext *ac;
    enum conn_state state;
    int64_t state_since;
    int attempts; /* failed connects since the last READY */
    bool ever_ready;
    uint64_t rng;

    cmd_list queue, inflight;
    zd_rcmd *done_head, *done_tail; /* rejected at submission, called back from done_ev */

    struct event *tick_ev, *reconnect_ev, *close_ev, *done_ev, *free_ev;
    int cb_depth;        /* > 0 while a user callback runs */
    bool free_requested; /* zd_redis_free() called from inside a callback */

    void (*on_connect)(zd_redis *r, void *udata);
    void *on_connect_udata;

    zd_redis_stats stats;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *state_name(enum conn_state s)
{
    static const char *const names[] = {"idle",  "connecting", "handshake",
                                        "ready", "closing",    "shutdown"};
    return names[s];
}

/* The one place the connection state changes; it asserts the transition is one we planned. */
static void set_state(zd_redis *r, enum conn_state to)
{
    enum conn_state from = r->state;
    bool ok;
    switch (to) {
    case CONN_CONNECTING:
        ok = from == CONN_IDLE;
        break;
    case CONN_HANDSHAKE:
        ok = from == CONN_CONNECTING;
        break;
    case CONN_READY:
        ok = from == CONN_HANDSHAKE;
        break;
    case CONN_CLOSING:
        ok = from == CONN_CONNECTING || from == CONN_HANDSHAKE || from == CONN_READY;
        break;
    case CONN_IDLE:
        ok = from != CONN_SHUTDOWN;
        break;
    case CONN_SHUTDOWN:
    default:
        ok = true;
        break;
    }
    if (!ok)
        zd_error_log("redis[%s]: bad state change %s -> %s", r->name, state_name(from),
                     state_name(to));
    assert(ok);
    r->state = to;
    r->state_since = now_ms();
}

/* ---- command lists ------------------------------------------------------------------------ */

static void list_push(cmd_list *l, zd_rcmd *c)
{
    c->next = NULL;
    c->prev = l->tail;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
    l->n++;
}

static void list_push_front(cmd_list *l, zd_rcmd *c)
{
    c->prev = NULL;
    c->next = l->head;
    if (l->head)
        l->head->prev = c;
    else
        l->tail = c;
    l->head = c;
    l->n++;
}

static void list_unlink(cmd_list *l, zd_rcmd *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
    l->n--;
}

/* Takes the whole list, leaving l empty, so that callbacks run while walking it can add to l. */
static zd_rcmd *list_take(cmd_list *l)
{
    zd_rcmd *h = l->head;
    l->head = l->tail = NULL;
    l->n = 0;
    return h;
}

static void cmd_free(zd_rcmd *c)
{
    if (c->buf)
        redisFreeCommand(c->buf);
    free(c);
}

/* Calls the user's callback (exactly once per command) and frees the command unless hiredis
 * still holds it. */
static void complete(zd_rcmd *c, int status, redisReply *reply)
{
    zd_redis *r = c->r;
    assert(c->state != CMD_DONE);
    c->state = CMD_DONE;
    if (status == -ETIMEDOUT)
        r->stats.timeouts++;
    else if (status == -ECONNRESET || status == -EAGAIN)
        r->stats.errors++;
    else if (status == 0 && reply && reply->type == REDIS_REPLY_ERROR)
        r->stats.errors++;
    r->cb_depth++;
    c->cb(r, status, status == 0 ? (const zd_reply *)reply : NULL, c->udata);
    r->cb_depth--;
    if (!c->in_hiredis)
        cmd_free(c);
}

/* Completes a detached chain of commands (linked by next). */
static void complete_chain(zd_rcmd *c, int status)
{
    while (c) {
        zd_rcmd *next = c->next;
        c->prev = c->next = NULL;
        complete(c, status, NULL);
        c = next;
    }
}

/* ---- connection --------------------------------------------------------------------------- */

static void schedule_reconnect(zd_redis *r);
static void flush(zd_redis *r);

static bool log_this_failure(const zd_redis *r)
{
    /* One line when an outage starts, then one per ten attempts. */
    return r->attempts <= 1 || r->attempts % 10 == 0;
}

static void reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    zd_rcmd *c = privdata;
    zd_redis *r = c->r;
    c->in_hiredis = false;
    if (c->state == CMD_DONE) {
        /* A late reply (or the teardown's NULL) for a command already failed: drop it. */
        cmd_free(c);
        return;
    }
    list_unlink(&r->inflight, c);
    r->inflight_bytes -= c->len;
    if (!reply) {
        /* hiredis is tearing the connection down: nothing more may be sent on it. */
        if (r->state == CONN_READY || r->state == CONN_HANDSHAKE)
            set_state(r, CONN_CLOSING);
        complete(c, -ECONNRESET, NULL);
        return;
    }
    complete(c, 0, reply);
    flush(r);
}

/* Sends one command now; 0, or -EIO when hiredis refused it (the context is going away). */
static int send_now(zd_redis *r, zd_rcmd *c)
{
    if (redisAsyncFormattedCommand(r->ac, reply_cb, c, c->buf, c->len) != REDIS_OK)
        return -EIO;
    redisFreeCommand(c->buf); /* hiredis copied it into its output buffer */
    c->buf = NULL;
    c->in_hiredis = true;
    c->state = CMD_INFLIGHT;
    /* The deadline restarts now: time spent queued behind other commands (a bulk import) is
     * not a sign that this connection stalled, and must not get it closed. */
    c->deadline = now_ms() + c->timeout_ms;
    list_push(&r->inflight, c);
    r->inflight_bytes += c->len;
    return 0;
}

/* Whether c may be handed to hiredis now. The byte budget keeps what Redis has yet to answer
 * (and hiredis's output buffer) small, so that a command sent behind large ones is answered
 * soon; a command larger than the whole budget goes alone. */
static bool may_send(const zd_redis *r, const zd_rcmd *c)
{
    if (r->inflight.n == 0)
        return true;
    return r->inflight.n < r->max_inflight && r->inflight_bytes + c->len <= r->max_inflight_bytes;
}

static void flush(zd_redis *r)
{
    while (r->state == CONN_READY && !r->free_requested && r->queue.head &&
           may_send(r, r->queue.head)) {
        zd_rcmd *c = r->queue.head;
        list_unlink(&r->queue, c);
        if (send_now(r, c) != 0) {
            list_push_front(&r->queue, c);
            break;
        }
    }
}

/* Marks the current context unusable and frees it from the event loop: redisAsyncFree must not
 * run inside a hiredis callback (hiredis 0.14 crashes freeing from onConnect). In-flight
 * commands fail now: -ETIMEDOUT if their deadline passed, else -ECONNRESET. */
static void close_conn(zd_redis *r, const char *why, bool log)
{
    if (r->state == CONN_CLOSING || r->state == CONN_IDLE || r->state == CONN_SHUTDOWN)
        return;
    if (log)
        zd_warn("redis[%s]: closing the connection to %s: %s", r->name, r->addr, why);
    set_state(r, CONN_CLOSING);
    event_active(r->close_ev, EV_TIMEOUT, 0);
    int64_t now = now_ms();
    zd_rcmd *c = list_take(&r->inflight);
    r->inflight_bytes = 0;
    while (c) {
        zd_rcmd *next = c->next;
        c->prev = c->next = NULL;
        complete(c, c->deadline <= now ? -ETIMEDOUT : -ECONNRESET, NULL);
        c = next;
    }
}

static void close_cb(evutil_socket_t fd, short what, void *arg)
{
    zd_redis *r = arg;
    if (r->state != CONN_CLOSING || !r->ac)
        return;
    redisAsyncContext *ac = r->ac;
    r->ac = NULL; /* from now on every callback from ac is recognised as stale */
    redisAsyncFree(ac);
    set_state(r, CONN_IDLE);
    schedule_reconnect(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    zd_redis *r = ac->data;
    if (!r || ac != r->ac)
        return; /* a context we closed ourselves */
    if (status == REDIS_OK)
        zd_warn("redis[%s]: %s closed the connection", r->name, r->addr);
    else
        zd_warn("redis[%s]: connection to %s lost: %s", r->name, r->addr,
                ac->errstr ? ac->errstr : "error");
    /* A connection that never got READY counts as a failed attempt, so that a server that
     * accepts and then drops us (maxclients) is retried with growing back-off. */
    if (r->state != CONN_READY)
        r->attempts++;
    /* hiredis frees ac when this returns; pending commands were already called back (NULL). */
    r->ac = NULL;
    set_state(r, CONN_IDLE);
    schedule_reconnect(r);
}

static void become_ready(zd_redis *r)
{
    set_state(r, CONN_READY);
    if (r->ever_ready)
        r->stats.reconnects++;
    zd_info("redis[%s]: %s %s", r->name, r->ever_ready ? "reconnected to" : "connected to",
            r->addr);
    r->ever_ready = true;
    r->attempts = 0;
    if (r->on_connect) {
        r->cb_depth++;
        r->on_connect(r, r->on_connect_udata);
        r->cb_depth--;
    }
    flush(r);
}

static void auth_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    zd_redis *r = privdata;
    redisReply *rep = reply;
    if (ac != r->ac || r->state != CONN_HANDSHAKE || !rep)
        return;
    /* The PING pipelined behind AUTH fails with NOAUTH and closes the connection; say why. */
    if (rep->type == REDIS_REPLY_ERROR && log_this_failure(r))
        zd_error_log("redis[%s]: AUTH failed: %.200s", r->name, rep->str);
}

static void ignore_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
}

static void ping_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    zd_redis *r = privdata;
    redisReply *rep = reply;
    if (ac != r->ac || r->state != CONN_HANDSHAKE || !rep)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        /* NOAUTH, WRONGPASS, or LOADING while Redis reads its data set: try again later. */
        r->attempts++;
        char why[256];
        snprintf(why, sizeof(why), "not ready: %.200s", rep->str);
        close_conn(r, why, log_this_failure(r));
        return;
    }
    become_ready(r);
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    zd_redis *r = cac->data;
    if (!r || cac != r->ac)
        return;
    redisAsyncContext *ac = r->ac;
    if (r->state != CONN_CONNECTING) {
        /* The connect timed out and close_ev is pending, but the connect finished in the
         * same loop turn. On failure hiredis frees ac itself, so close_ev must not. */
        if (status != REDIS_OK) {
            r->ac = NULL;
            set_state(r, CONN_IDLE);
            schedule_reconnect(r);
        }
        return;
    }
    if (status != REDIS_OK) {
        r->attempts++;
        if (log_this_failure(r))
            zd_warn("redis[%s]: cannot connect to %s: %s (attempt %d)", r->name, r->addr,
                    ac->errstr ? ac->errstr : "error", r->attempts);
        /* hiredis frees ac after this returns. */
        r->ac = NULL;
        set_state(r, CONN_IDLE);
        schedule_reconnect(r);
        return;
    }
    set_state(r, CONN_HANDSHAKE);
    if (!r->is_unix)
        redisEnableKeepAlive(&ac->c);
    /* Pipelined; READY only once PING answers, so queued commands never meet NOAUTH or
     * LOADING. */
    if (r->password)
        redisAsyncCommand(ac, auth_cb, r, "AUTH %s", r->password);
    redisAsyncCommand(ac, ignore_cb, r, "CLIENT SETNAME zhidad-%s", r->name);
    redisAsyncCommand(ac, ping_cb, r, "PING");
}

static void connect_now(zd_redis *r)
{
    redisAsyncContext *ac =
        r->is_unix ? redisAsyncConnectUnix(r->addr + 5) : redisAsyncConnect(r->ip, r->port);
    if (!ac || ac->err) {
        r->attempts++;
        if (log_this_failure(r))
            zd_warn("redis[%s]: cannot connect to %s: %s (attempt %d)", r->name, r->addr,
                    ac ? ac->errstr : "out of memory", r->attempts);
        if (ac)
            redisAsyncFree(ac);
        schedule_reconnect(r);
        return;
    }
    ac->data = r;
    if (redisLibeventAttach(ac, r->base) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule_reconnect(r);
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    r->ac = ac;
    set_state(r, CONN_CONNECTING);
}

/* A named host is looked up again before every connect (so a moved Redis is followed), with
 * libevent's asynchronous resolver: hiredis would call getaddrinfo() inside the loop. */
static void resolved(int err, struct evutil_addrinfo *res, void *arg)
{
    zd_redis *r = arg;
    if (err == EVUTIL_EAI_CANCEL)
        return; /* zd_redis_free() cancelled it; r is going away */
    r->dns_req = NULL;
    const char *ip = NULL;
    /* IPv4 first when the name has both (Redis is usually bound to IPv4 too). */
    const struct evutil_addrinfo *pick = NULL;
    for (const struct evutil_addrinfo *a = err == 0 ? res : NULL; a; a = a->ai_next)
        if (!pick || (a->ai_family == AF_INET && pick->ai_family != AF_INET))
            pick = a;
    if (pick) {
        const void *a = pick->ai_family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)pick->ai_addr)->sin_addr;
        ip = evutil_inet_ntop(pick->ai_family, a, r->ip, sizeof(r->ip));
    }
    if (res)
        evutil_freeaddrinfo(res);
    if (r->state != CONN_IDLE)
        return;
    if (!ip) {
        r->attempts++;
        if (log_this_failure(r))
            zd_warn("redis[%s]: cannot resolve %s: %s (attempt %d)", r->name, r->host,
                    err ? evutil_gai_strerror(err) : "no address", r->attempts);
        schedule_reconnect(r);
        return;
    }
    connect_now(r);
}

static void start_connect(zd_redis *r)
{
    if (!r->named) {
        connect_now(r);
        return;
    }
    if (r->dns_req)
        return;
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    char port[8];
    snprintf(port, sizeof(port), "%d", r->port);
    /* The callback may run inside this call (an answer from the hosts file); then it returns
     * NULL and no request is pending. */
    r->dns_req = evdns_getaddrinfo(r->dns, r->host, port, &hints, resolved, r);
}

static void reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
    zd_redis *r = arg;
    if (r->state == CONN_IDLE)
        start_connect(r);
}

static uint64_t next_random(zd_redis *r)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return r->rng;
}

static void schedule_reconnect(zd_redis *r)
{
    if (r->state == CONN_SHUTDOWN || evtimer_pending(r->reconnect_ev, NULL))
        return;
    /* min * 2^attempts, capped, then a random point in its upper half so that several
     * instances do not reconnect in lockstep after a Redis restart. */
    int64_t d = r->reconnect_min_ms;
    for (int i = 1; i < r->attempts && d < r->reconnect_max_ms; i++)
        d *= 2;
    if (d > r->reconnect_max_ms)
        d = r->reconnect_max_ms;
    d = d / 2 + (int64_t)(next_random(r) % (uint64_t)(d / 2 + 1));
    struct timeval tv = {(time_t)(d / 1000), (suseconds_t)((d % 1000) * 1000)};
    evtimer_add(r->reconnect_ev, &tv);
}

/* ---- deadlines ---------------------------------------------------------------------------- */

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    zd_redis *r = arg;
    int64_t now = now_ms();
    if ((r->state == CONN_CONNECTING || r->state == CONN_HANDSHAKE) &&
        now - r->state_since > r->deadline_ms) {
        r->attempts++;
        close_conn(r,
                   r->state == CONN_CONNECTING ? "connect timed out" : "no answer to the handshake",
                   log_this_failure(r));
    }
    for (zd_rcmd *c = r->inflight.head; c; c = c->next) {
        if (c->deadline <= now) {
            close_conn(r, "a command got no reply before its deadline", true);
            break;
        }
    }
    /* Expired queued commands are unlinked first, then called back, since callbacks may
     * submit more commands. */
    zd_rcmd *expired = NULL, **tail = &expired;
    for (zd_rcmd *c = r->queue.head, *next; c; c = next) {
        next = c->next;
        if (c->deadline <= now) {
            list_unlink(&r->queue, c);
            *tail = c;
            tail = &c->next;
        }
    }
    *tail = NULL;
    complete_chain(expired, -ETIMEDOUT);
}

/* ---- submission --------------------------------------------------------------------------- */

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    zd_redis *r = arg;
    zd_rcmd *c = r->done_head;
    r->done_head = r->done_tail = NULL;
    while (c) {
        zd_rcmd *next = c->next;
        c->next = NULL;
        complete(c, c->status, NULL);
        c = next;
    }
}

/* Takes ownership of buf (a formatted command). */
static int submit(zd_redis *r, int deadline_ms, zd_redis_cb cb, void *udata, char *buf, size_t len)
{
    if (r->state == CONN_SHUTDOWN || r->free_requested) {
        redisFreeCommand(buf);
        return -ECANCELED;
    }
    zd_rcmd *c = calloc(1, sizeof(*c));
    if (!c) {
        redisFreeCommand(buf);
        return -ENOMEM;
    }
    c->r = r;
    c->cb = cb;
    c->udata = udata;
    c->buf = buf;
    c->len = len;
    c->timeout_ms = deadline_ms > 0 ? deadline_ms : r->deadline_ms;
    c->deadline = now_ms() + c->timeout_ms;
    c->state = CMD_QUEUED;
    if (!r->queue.head && r->state == CONN_READY && may_send(r, c) && send_now(r, c) == 0)
        return 0;
    if (r->queue.n >= r->queue_max) {
        /* Called back from the loop, not from here: the caller may not be ready for it. */
        c->status = -EAGAIN;
        if (r->done_tail)
            r->done_tail->next = c;
        else
            r->done_head = c;
        r->done_tail = c;
        event_active(r->done_ev, EV_TIMEOUT, 0);
        return 0;
    }
    list_push(&r->queue, c);
    return 0;
}

int zd_redis_cmd(zd_redis *r, zd_redis_cb cb, void *udata, const char *fmt, ...)
{
    char *buf = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&buf, fmt, ap);
    va_end(ap);
    if (len < 0)
        return len == -2 ? -EINVAL : -ENOMEM;
    if (strncmp(buf, "*0\r\n", 4) == 0) {
        /* An empty format yields a command without arguments. */
        redisFreeCommand(buf);
        return -EINVAL;
    }
    return submit(r, 0, cb, udata, buf, (size_t)len);
}

int zd_redis_cmdargv_deadline(zd_redis *r, int deadline_ms, zd_redis_cb cb, void *udata, int argc,
                              const char **argv, const size_t *argvlen)
{
    char *buf = NULL;
    if (argc <= 0)
        return -EINVAL;
    int len = redisFormatCommandArgv(&buf, argc, argv, argvlen);
    if (len < 0)
        return -ENOMEM;
    return submit(r, deadline_ms, cb, udata, buf, (size_t)len);
}

int zd_redis_cmdargv(zd_redis *r, zd_redis_cb cb, void *udata, int argc, const char **argv,
                     const size_t *argvlen)
{
    return zd_redis_cmdargv_deadline(r, 0, cb, udata, argc, argv, argvlen);
}

/* ---- life cycle --------------------------------------------------------------------------- */

static void real_free(zd_redis *r);

static void free_cb(evutil_socket_t fd, short what, void *arg)
{
    real_free(arg);
}

zd_redis *zd_redis_new(struct event_base *base, const zd_redis_opts *o)
{
    zd_redis *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->base = base;
    r->state = CONN_IDLE;
    r->addr = strdup(o->addr ? o->addr : "127.0.0.1:6379");
    r->name = strdup(o->name ? o->name : "main");
    if (!r->addr || !r->name)
        goto fail;
    if (o->password && !(r->password = strdup(o->password)))
        goto fail;
    r->deadline_ms = o->deadline_ms > 0 ? o->deadline_ms : 5000;
    r->max_inflight = o->max_inflight > 0 ? o->max_inflight : 1024;
    r->max_inflight_bytes = o->max_inflight_bytes > 0 ? o->max_inflight_bytes : 4u << 20;
    r->queue_max = o->queue_max > 0 ? o->queue_max : 100000;
    r->reconnect_min_ms = o->reconnect_min_ms > 0 ? o->reconnect_min_ms : 100;
    r->reconnect_max_ms = o->reconnect_max_ms > 0 ? o->reconnect_max_ms : 5000;
    if (r->reconnect_max_ms < r->reconnect_min_ms)
        r->reconnect_max_ms = r->reconnect_min_ms;
    r->rng = ((uint64_t)now_ms() << 16) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)r;
    if (!r->rng)
        r->rng = 88172645463325252ULL;

    char err[256];
    if (zd_addr_check_redis(r->addr, "redis", err, sizeof(err)) != 0) {
        zd_error_log("redis[%s]: bad address \"%s\"", r->name, r->addr);
        goto fail;
    }
    r->is_unix = strncmp(r->addr, "unix:", 5) == 0;
    if (!r->is_unix)
        zd_addr_split_named(r->addr, r->host, sizeof(r->host), &r->port);
    r->named = !r->is_unix && !zd_addr_is_ip(r->host);
    if (!r->named) {
        snprintf(r->ip, sizeof(r->ip), "%s", r->host);
    } else {
        /* Name servers and the hosts file as the system has them. */
        r->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                          EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (!r->dns) {
            zd_error_log("redis[%s]: cannot set up the resolver for %s", r->name, r->host);
            goto fail;
        }
    }

    r->tick_ev = event_new(base, -1, EV_PERSIST, tick_cb, r);
    r->reconnect_ev = evtimer_new(base, reconnect_cb, r);
    r->close_ev = event_new(base, -1, 0, close_cb, r);
    r->done_ev = event_new(base, -1, 0, done_cb, r);
    r->free_ev = event_new(base, -1, 0, free_cb, r);
    if (!r->tick_ev || !r->reconnect_ev || !r->close_ev || !r->done_ev || !r->free_ev)
        goto fail;
    struct timeval tick = {0, TICK_MS * 1000};
    event_add(r->tick_ev, &tick);
    start_connect(r);
    return r;
fail:
    real_free(r);
    return NULL;
}

void zd_redis_on_connect(zd_redis *r, void (*fn)(zd_redis *r, void *udata), void *udata)
{
    r->on_connect = fn;
    r->on_connect_udata = udata;
}

bool zd_redis_ready(const zd_redis *r)
{
    return r && r->state == CONN_READY && !r->free_requested;
}

void zd_redis_get_stats(const zd_redis *r, zd_redis_stats *st)
{
    *st = r->stats;
    st->inflight = r->inflight.n;
    st->inflight_bytes = (long)r->inflight_bytes;
    st->queued = r->queue.n;
}

static void real_free(zd_redis *r)
{
    if (r->state != CONN_SHUTDOWN)
        set_state(r, CONN_SHUTDOWN);
    if (r->tick_ev)
        event_del(r->tick_ev);
    if (r->reconnect_ev)
        event_del(r->reconnect_ev);
    if (r->close_ev)
        event_del(r->close_ev);
    if (r->free_ev)
        event_del(r->free_ev);
    if (r->done_ev)
        event_del(r->done_ev);

    /* Every outstanding command hears -ECANCELED (rejected ones their own status); the
     * callbacks may not submit more (submit() refuses once SHUTDOWN). */
    complete_chain(list_take(&r->queue), -ECANCELED);
    complete_chain(list_take(&r->inflight), -ECANCELED);
    done_cb(-1, 0, r);
    if (r->dns_req) {
        struct evdns_getaddrinfo_request *req = r->dns_req;
        r->dns_req = NULL;
        evdns_getaddrinfo_cancel(req);
    }
    if (r->dns)
        evdns_base_free(r->dns, 0);
    if (r->ac) {
        /* Calls back every command hiredis still holds (all CMD_DONE now) and frees ac. */
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac);
    }
    if (r->tick_ev)
        event_free(r->tick_ev);
    if (r->reconnect_ev)
        event_free(r->reconnect_ev);
    if (r->close_ev)
        event_free(r->close_ev);
    if (r->done_ev)
        event_free(r->done_ev);
    if (r->free_ev)
        event_free(r->free_ev);
    if (r->password) {
        explicit_bzero(r->password, strlen(r->password));
        free(r->password);
    }
    free(r->addr);
    free(r->name);
    free(r);
}

void zd_redis_free(zd_redis *r)
{
    if (!r || r->free_requested)
        return;
    if (r->cb_depth > 0) {
        /* Inside one of our callbacks, possibly inside hiredis: finish from the loop. */
        r->free_requested = true;
        event_active(r->free_ev, EV_TIMEOUT, 0);
        return;
    }
    r->free_requested = true;
    real_free(r);
}

/* ---- replies ------------------------------------------------------------------------------ */

/* zd_reply is redisReply under another name: the accessors are the only code that looks in. */
static const redisReply *rr(const zd_reply *r)
{
    return (const redisReply *)r;
}

zd_reply_type zd_reply_kind(const zd_reply *r)
{
    switch (rr(r)->type) {
    case REDIS_REPLY_STRING:
        return ZD_REPLY_STRING;
    case REDIS_REPLY_ARRAY:
        return ZD_REPLY_ARRAY;
    case REDIS_REPLY_INTEGER:
        return ZD_REPLY_INTEGER;
    case REDIS_REPLY_STATUS:
        return ZD_REPLY_STATUS;
    case REDIS_REPLY_ERROR:
        return ZD_REPLY_ERROR;
    default:
        return ZD_REPLY_NIL;
    }
}

bool zd_reply_is(const zd_reply *r, zd_reply_type t)
{
    return r && zd_reply_kind(r) == t;
}

const char *zd_reply_str(const zd_reply *r, size_t *len)
{
    int t = r ? rr(r)->type : REDIS_REPLY_NIL;
    if (t != REDIS_REPLY_STRING && t != REDIS_REPLY_STATUS && t != REDIS_REPLY_ERROR) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = rr(r)->len;
    return rr(r)->str;
}

long long zd_reply_int(const zd_reply *r)
{
    return r && rr(r)->type == REDIS_REPLY_INTEGER ? rr(r)->integer : 0;
}

size_t zd_reply_len(const zd_reply *r)
{
    return r && rr(r)->type == REDIS_REPLY_ARRAY ? rr(r)->elements : 0;
}

const zd_reply *zd_reply_at(const zd_reply *r, size_t i)
{
    if (!r || rr(r)->type != REDIS_REPLY_ARRAY || i >= rr(r)->elements)
        return NULL;
    return (const zd_reply *)rr(r)->element[i];
}

bool zd_reply_eq(const zd_reply *r, const char *s)
{
    size_t len;
    const char *v = zd_reply_str(r, &len);
    return v && len == strlen(s) && memcmp(v, s, len) == 0;
}

int zd_redis_info_version(const char *info, size_t len, int *major, int *minor, int *patch)
{
    static const char key[] = "redis_version:";
    const size_t klen = sizeof(key) - 1;
    for (size_t i = 0; info && i + klen <= len; i++) {
        if ((i > 0 && info[i - 1] != '\n') || memcmp(info + i, key, klen) != 0)
            continue;
        int v[3] = {0, 0, 0}, k = 0;
        size_t j = i + klen;
        bool digits = false;
        for (; j < len && k < 3; j++) {
            char c = info[j];
            if (c >= '0' && c <= '9' && v[k] < 100000) {
                v[k] = v[k] * 10 + (c - '0');
                digits = true;
            } else if (c == '.' && digits) {
                k++;
                digits = false;
            } else {
                break;
            }
        }
        if (k == 0 && !digits)
            return -EINVAL;
        *major = v[0];
        *minor = v[1];
        *patch = v[2];
        return 0;
    }
    return -EINVAL;
}
