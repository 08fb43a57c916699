/* Clocks in the units zhida uses (libc only): one place instead of a helper per file. */
#ifndef ZD_CLOCK_H
#define ZD_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds and milliseconds: for durations and deadlines. */
int64_t zd_mono_ns(void);
int64_t zd_mono_ms(void);
/* Milliseconds (with fractions) elapsed since t0_ns, a zd_mono_ns() reading. */
double zd_ms_since(int64_t t0_ns);
/* CLOCK_REALTIME in Unix milliseconds: for timestamps others read. */
int64_t zd_unix_ms(void);

#endif
