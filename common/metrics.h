/* Prometheus text exposition (format 0.0.4): a writer that prints each metric family as one
 * HELP line, one TYPE line and all its samples together (a sample always belongs to the family
 * opened last, so families cannot interleave), cumulative histograms, and the process_*
 * metrics Prometheus client libraries export, read from /proc/self. libc only. */
#ifndef ZD_METRICS_H
#define ZD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- histograms ---- */

#define ZD_HIST_MAX_BUCKETS 16

/* A histogram's upper bucket bounds ("le"), strictly ascending, at most ZD_HIST_MAX_BUCKETS
 * of them; +Inf is implied. Usually a static constant shared by many histograms. */
typedef struct zd_hist_bounds {
    const double *le;
    int n;
} zd_hist_bounds;

/* Observations: counts[i] holds those <= le[i] and > le[i-1] (not cumulative; the writer sums
 * them), counts[n] those above the largest bound. Zero-initialise to start. */
typedef struct zd_hist {
    uint64_t counts[ZD_HIST_MAX_BUCKETS + 1];
    uint64_t count;
    double sum;
} zd_hist;

/* Adds one observation v (e.g. seconds) to h, whose bounds are b. */
void zd_hist_observe(zd_hist *h, const zd_hist_bounds *b, double v);

/* ---- the writer ---- */

/* The exposition being built. Zero-initialise; free with zd_metrics_free(). Out of memory
 * leaves `failed` set and the text cut short (callers answer 500 then). */
typedef struct zd_metrics {
    char *s; /* NUL-terminated text, NULL while empty */
    size_t len, cap;
    bool failed;
    char family[128]; /* the family samples go to */
    char type[16];    /* its type: "counter", "gauge", "histogram" */
} zd_metrics;

/* Labels are given as a NULL-terminated array of name, value pairs, e.g.
 * (const char *[]){"method", "GET", "route", "/v1/x", NULL}, or NULL for none. Values are
 * escaped as the format requires (\\, \", \n). */

/* Opens family name (type "counter", "gauge" or "histogram") with its HELP text; every sample
 * until the next call belongs to it. A family name given twice is a caller's bug. */
void zd_metrics_family(zd_metrics *m, const char *name, const char *type, const char *help);
/* One sample of the open counter or gauge family: an integer or a floating value. */
void zd_metrics_int(zd_metrics *m, const char *const *labels, long long v);
void zd_metrics_value(zd_metrics *m, const char *const *labels, double v);
/* One series of the open histogram family: its _bucket lines (cumulative, le ascending, then
 * +Inf), _sum and _count, with labels (plus le on the buckets). */
void zd_metrics_hist(zd_metrics *m, const char *const *labels, const zd_hist *h,
                     const zd_hist_bounds *b);

/* The process_* families of Prometheus's client conventions: process_cpu_seconds_total,
 * process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds,
 * process_max_fds, process_start_time_seconds. A value that cannot be read (no /proc) leaves
 * its family without samples. */
void zd_metrics_process(zd_metrics *m);

/* Frees the text. zd_metrics_free(NULL) is a no-op; m may be reused afterwards. */
void zd_metrics_free(zd_metrics *m);

#endif
