/* zd_rate: a token bucket in floating point (fractional rates such as 0.5/s work). */
#include "gateway/rate.h"

void zd_rate_init(zd_rate *r, double per_s, int64_t now_us)
{
    r->per_s = per_s > 0 ? per_s : 0;
    r->burst = r->per_s / 10 > 1 ? r->per_s / 10 : 1;
    r->tokens = r->burst;
    r->last_us = now_us;
}

int64_t zd_rate_take(zd_rate *r, int64_t now_us)
{
    if (r->per_s <= 0)
        return 0;
    if (now_us > r->last_us) {
        r->tokens += (double)(now_us - r->last_us) * r->per_s / 1e6;
        if (r->tokens > r->burst)
            r->tokens = r->burst;
        r->last_us = now_us;
    }
    if (r->tokens >= 1) {
        r->tokens -= 1;
        return 0;
    }
    int64_t wait = (int64_t)((1 - r->tokens) * 1e6 / r->per_s) + 1;
    return wait > 0 ? wait : 1;
}
