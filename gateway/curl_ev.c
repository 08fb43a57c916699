/* The libcurl multi "socket action" API on libevent (the shape of libcurl's hiperfifo.c,
 * with the known pitfalls handled): libcurl tells us which sockets to watch and when to call
 * it back (socket and timer callbacks); libevent tells libcurl when a socket is ready or the
 * timer is due; finished transfers are collected with curl_multi_info_read(). */
#include "gateway/curl_ev.h"

#include <errno.h>
#include <stdlib.h>

#include <curl/curl.h>
#include <event2/event.h>

/* One per socket libcurl asked us to watch, attached to it with curl_multi_assign(), and
 * listed so that none is lost if libcurl closes a socket without telling (at cleanup). */
typedef struct sock_watch {
    struct sock_watch *prev, *next;
    curl_socket_t fd;
    struct event *ev;
} sock_watch;

struct zd_curl_loop {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    zd_curl_done_fn done;
    void *udata;
    sock_watch *watches;
};

static void watch_free(zd_curl_loop *l, sock_watch *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        l->watches = w->next;
    if (w->next)
        w->next->prev = w->prev;
    if (w->ev)
        event_free(w->ev);
    free(w);
}

/* Runs after libcurl did some work: hands every finished transfer to done. Called from our
 * own event callbacks only, after curl_multi_socket_action() returned, so removing handles
 * here is allowed (it is not from inside a libcurl callback). */
static void collect_done(zd_curl_loop *l)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(l->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        CURL *easy = msg->easy_handle;
        CURLcode rc = msg->data.result;
        /* msg is invalid after the remove. */
        curl_multi_remove_handle(l->multi, easy);
        l->done(easy, (int)rc, l->udata);
    }
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    zd_curl_loop *l = arg;
    int flags = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running = 0;
    curl_multi_socket_action(l->multi, fd, flags, &running);
    collect_done(l);
}

static void on_timer_event(evutil_socket_t fd, short what, void *arg)
{
    zd_curl_loop *l = arg;
    int running = 0;
    curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect_done(l);
}

/* CURLMOPT_TIMERFUNCTION: only (re)arms or deletes our timer; calling libcurl from here is
 * not allowed. -1 means delete the timer (libcurl's old examples got this wrong). */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    zd_curl_loop *l = userp;
    if (timeout_ms < 0) {
        evtimer_del(l->timer);
        return 0;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(l->timer, &tv);
    return 0;
}

/* CURLMOPT_SOCKETFUNCTION. On CURL_POLL_REMOVE the fd may already be closed (curl#3597): the
 * event is deleted and freed without touching the fd. event_del() also drops an activation
 * already queued for this socket in the current loop iteration. */
static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    zd_curl_loop *l = userp;
    sock_watch *w = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (w) {
            watch_free(l, w);
            curl_multi_assign(l->multi, fd, NULL);
        }
        return 0;
    }
    short kind =
        EV_PERSIST | (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    if (!w) {
        w = calloc(1, sizeof(*w));
        if (!w)
            return -1;
        w->fd = fd;
        w->next = l->watches;
        if (l->watches)
            l->watches->prev = w;
        l->watches = w;
        curl_multi_assign(l->multi, fd, w);
        w->ev = event_new(l->base, fd, kind, on_socket_event, l);
        if (!w->ev)
            return -1;
    } else {
        /* A change of direction (a request sent, its answer awaited) reuses the event. */
        event_del(w->ev);
        event_assign(w->ev, l->base, fd, kind, on_socket_event, l);
    }
    if (event_add(w->ev, NULL) != 0)
        return -1;
    return 0;
}

zd_curl_loop *zd_curl_loop_new(void *event_base, zd_curl_done_fn done, void *udata)
{
    zd_curl_loop *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->base = event_base;
    l->done = done;
    l->udata = udata;
    l->multi = curl_multi_init();
    l->timer = evtimer_new(l->base, on_timer_event, l);
    if (!l->multi || !l->timer)
        goto fail;
    curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
    curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
    return l;
fail:
    zd_curl_loop_free(l);
    return NULL;
}

void *zd_curl_loop_multi(zd_curl_loop *l)
{
    return l->multi;
}

int zd_curl_loop_add(zd_curl_loop *l, void *easy)
{
    return curl_multi_add_handle(l->multi, easy) == CURLM_OK ? 0 : -EIO;
}

void zd_curl_loop_cancel(zd_curl_loop *l, void *easy)
{
    curl_multi_remove_handle(l->multi, easy);
}

void zd_curl_loop_free(zd_curl_loop *l)
{
    if (!l)
        return;
    /* curl_multi_cleanup() closes the cached connections; watches it did not remove through
     * socket_cb go here. */
    if (l->multi)
        curl_multi_cleanup(l->multi);
    while (l->watches)
        watch_free(l, l->watches);
    if (l->timer)
        event_free(l->timer);
    free(l);
}

struct zd_ev_timer {
    struct event *ev;
    void (*fn)(void *udata);
    void *udata;
};

static void on_fire(evutil_socket_t fd, short what, void *arg)
{
    zd_ev_timer *t = arg;
    t->fn(t->udata);
}

zd_ev_timer *zd_ev_timer_new(void *event_base, void (*fn)(void *udata), void *udata)
{
    zd_ev_timer *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->fn = fn;
    t->udata = udata;
    t->ev = evtimer_new((struct event_base *)event_base, on_fire, t);
    if (!t->ev) {
        free(t);
        return NULL;
    }
    return t;
}

void zd_ev_timer_arm(zd_ev_timer *t, long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(t->ev, &tv);
}

void zd_ev_timer_stop(zd_ev_timer *t)
{
    evtimer_del(t->ev);
}

int zd_ev_timer_pending(const zd_ev_timer *t)
{
    return evtimer_pending(t->ev, NULL) ? 1 : 0;
}

void zd_ev_timer_free(zd_ev_timer *t)
{
    if (!t)
        return;
    event_free(t->ev);
    free(t);
}
