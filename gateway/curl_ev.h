/* libcurl's multi interface driven by libevent: the one file of gateway/ that knows both.
 * One zd_curl_loop per gateway instance (its own connection cache), all on zhidad's loop, no
 * threads per request. Also the one-shot timers gateway/ needs. libcurl and libevent types
 * stay out of this header (void *) so that only curl_ev.c includes both. */
#ifndef ZD_CURL_EV_H
#define ZD_CURL_EV_H

typedef struct zd_curl_loop zd_curl_loop;

/* Called once per finished transfer with its easy handle (a CURL *) and CURLcode, after the
 * handle was removed from the multi handle and outside every libcurl callback: the callee may
 * add new transfers, and clean up or reuse the easy handle. Never frees the loop. */
typedef void (*zd_curl_done_fn)(void *easy, int result, void *udata);

/* A multi handle on event_base (a struct event_base *, borrowed). NULL on ENOMEM. Caller
 * frees with zd_curl_loop_free(). */
zd_curl_loop *zd_curl_loop_new(void *event_base, zd_curl_done_fn done, void *udata);

/* The CURLM * (borrowed), for multi options such as CURLMOPT_MAXCONNECTS. */
void *zd_curl_loop_multi(zd_curl_loop *l);

/* Starts a transfer of easy (borrowed until done is called or zd_curl_loop_cancel). 0 or
 * -EIO. */
int zd_curl_loop_add(zd_curl_loop *l, void *easy);

/* Stops a transfer without calling done. Must not be called from a libcurl callback. */
void zd_curl_loop_cancel(zd_curl_loop *l, void *easy);

/* Frees the loop and closes its connections. Every transfer must have finished or been
 * cancelled. NULL: no-op. */
void zd_curl_loop_free(zd_curl_loop *l);

/* A one-shot timer calling fn(udata) from the loop. NULL on ENOMEM; caller frees with
 * zd_ev_timer_free() (which also stops it). */
typedef struct zd_ev_timer zd_ev_timer;
zd_ev_timer *zd_ev_timer_new(void *event_base, void (*fn)(void *udata), void *udata);
/* (Re)arms t to fire once after ms milliseconds (0: on the next loop iteration). */
void zd_ev_timer_arm(zd_ev_timer *t, long ms);
void zd_ev_timer_stop(zd_ev_timer *t);
int zd_ev_timer_pending(const zd_ev_timer *t);
void zd_ev_timer_free(zd_ev_timer *t);

#endif
