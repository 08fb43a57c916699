/* Event-loop timers for the modules built on the Redis adapter (the follower, stores), so that
 * they need no libevent header of their own. */
#ifndef ZD_TIMER_H
#define ZD_TIMER_H

struct event_base;
typedef struct zd_timer zd_timer;

/* A timer on base (borrowed) calling fn(udata) from the loop. NULL on ENOMEM. Caller frees
 * with zd_timer_free(). */
zd_timer *zd_timer_new(struct event_base *base, void (*fn)(void *udata), void *udata);
/* The same for background work: when the timer is due, fn runs only in a loop turn in which no
 * other event (a request, a Redis reply) is ready, so that background work waits for
 * interactive work instead of the other way round. Takes effect when base has at least three
 * priorities (event_base_priority_init(base, 3) in main.c: other events keep the middle one);
 * otherwise it is an ordinary timer. A busy loop can starve it: pair it with an ordinary timer
 * when progress must be guaranteed. */
zd_timer *zd_timer_new_background(struct event_base *base, void (*fn)(void *udata), void *udata);
/* (Re)arms t to fire once after ms milliseconds, or every ms milliseconds when repeat != 0. */
void zd_timer_arm(zd_timer *t, long ms, int repeat);
/* Disarms t (it may be armed again); zd_timer_stop(NULL) is a no-op. */
void zd_timer_stop(zd_timer *t);
/* Stops and frees t; zd_timer_free(NULL) is a no-op. */
void zd_timer_free(zd_timer *t);

#endif
