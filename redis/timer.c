/* zd_timer on libevent. */
#include "redis/timer.h"

#include <stdbool.h>
#include <stdlib.h>

#include <event2/event.h>

struct zd_timer {
    struct event_base *base;
    struct event *ev;
    void (*fn)(void *udata);
    void *udata;
    bool background;
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

zd_timer *zd_timer_new_background(struct event_base *base, void (*fn)(void *udata), void *udata)
{
    zd_timer *t = zd_timer_new(base, fn, udata);
    if (t)
        t->background = true;
    return t;
}

void zd_timer_arm(zd_timer *t, long ms, int repeat)
{
    if (t->ev)
        event_free(t->ev);
    t->ev = event_new(t->base, -1, repeat ? EV_PERSIST : 0, fire, t);
    if (!t->ev)
        return;
    /* libevent runs only the most urgent priority that has ready events in each loop turn;
     * new events get the middle one (n / 2). */
    int n = event_base_get_npriorities(t->base);
    if (t->background && n >= 3)
        event_priority_set(t->ev, n - 1);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(t->ev, &tv);
}

void zd_timer_stop(zd_timer *t)
{
    if (t && t->ev)
        event_del(t->ev);
}

void zd_timer_free(zd_timer *t)
{
    if (!t)
        return;
    if (t->ev)
        event_free(t->ev);
    free(t);
}
