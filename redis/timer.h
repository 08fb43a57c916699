/* Event-loop timers for the modules built on the Redis adapter (the follower, stores), so that
 * they need no libevent header of their own. */
#ifndef ZD_TIMER_H
#define ZD_TIMER_H

struct event_base;
typedef struct zd_timer zd_timer;

/* A timer on base (borrowed) calling fn(udata) from the loop. NULL on ENOMEM. Caller frees
 * with zd_timer_free(). */
zd_timer *zd_timer_new(struct event_base *base, void (*fn)(void *udata), void *udata);
/* (Re)arms t to fire once after ms milliseconds, or every ms milliseconds when repeat != 0. */
void zd_timer_arm(zd_timer *t, long ms, int repeat);
/* Stops and frees t; zd_timer_free(NULL) is a no-op. */
void zd_timer_free(zd_timer *t);

#endif
