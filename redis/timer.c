/* zd_timer on libevent. */
#include "redis/timer.h"

#include <stdlib.h>

#include <event2/event.h>

struct zd_timer {
    struct event_base *base;
    struct event *ev;
    void (*fn)(void *udata);
    void *udata;
};

static void fire(evutil_socket_t fd, short what, void *arg)
{
    zd_timer *t = arg;
    t->fn(t->udata);
}

zd_timer *zd_timer_new(struct event_base *base, void (*fn)(void *udata), void *udata)
{
    zd_timer *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->base = base;
    t->fn = fn;
    t->udata = udata;
    return t;
}

void zd_timer_arm(zd_timer *t, long ms, int repeat)
{
    if (t->ev)
        event_free(t->ev);
    t->ev = event_new(t->base, -1, repeat ? EV_PERSIST : 0, fire, t);
    if (!t->ev)
        return;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(t->ev, &tv);
}

void zd_timer_free(zd_timer *t)
{
    if (!t)
        return;
    if (t->ev)
        event_free(t->ev);
    free(t);
}
