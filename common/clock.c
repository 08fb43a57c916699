/* clock_gettime() in zhida's units. */
#include "common/clock.h"

#include <time.h>

static int64_t read_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t zd_mono_ns(void)
{
    return read_ns(CLOCK_MONOTONIC);
}

int64_t zd_mono_ms(void)
{
    return read_ns(CLOCK_MONOTONIC) / 1000000;
}

double zd_ms_since(int64_t t0_ns)
{
    return (double)(read_ns(CLOCK_MONOTONIC) - t0_ns) / 1e6;
}

int64_t zd_unix_ms(void)
{
    return read_ns(CLOCK_REALTIME) / 1000000;
}
