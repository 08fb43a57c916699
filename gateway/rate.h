/* A token bucket for a gateway's `rate` (requests per second): plain arithmetic on a clock
 * the caller passes, so it is tested without waiting. */
#ifndef ZD_RATE_H
#define ZD_RATE_H

#include <stdint.h>

typedef struct zd_rate {
    double per_s;    /* tokens added per second; 0 = unlimited */
    double burst;    /* the bucket's size in tokens */
    double tokens;   /* tokens now */
    int64_t last_us; /* when tokens was last brought up to date */
} zd_rate;

/* A bucket of per_s tokens a second (0 = unlimited) holding at most a tenth of a second's
 * worth (at least 1): short bursts pass, and any one-second window sees at most
 * per_s + per_s / 10 requests. It starts full. */
void zd_rate_init(zd_rate *r, double per_s, int64_t now_us);

/* Takes one token and returns 0, or takes none and returns the microseconds until one will
 * be there (> 0). */
int64_t zd_rate_take(zd_rate *r, int64_t now_us);

#endif
