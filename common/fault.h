/* Test-only fault injection: makes chosen failure paths that are hard to reach for real
 * (out-of-memory in the index and the rule evaluator) fail on demand, so the integration tests
 * can show they fail closed. Compiled in only when ZD_FAULT_INJECTION is defined (meson option
 * fault_injection, on by default in debug builds); elsewhere zd_fault() is a constant false and
 * the checks vanish. Armed only by the ZHIDA_FAULT environment variable, read once at start-up
 * (docs/DESIGN.md). Not thread-safe: zhidad is single-threaded. */
#ifndef ZD_FAULT_H
#define ZD_FAULT_H

#include <stdbool.h>
#include <stddef.h>

typedef enum zd_fault_point {
    ZD_FAULT_INDEX_PUT, /* zd_index_put fails with -ENOMEM, half-way through the profile */
    ZD_FAULT_INDEX_DEL, /* zd_index_del fails with -ENOMEM before changing anything */
    ZD_FAULT_AUDIENCE,  /* zd_rule_audience returns NULL (ENOMEM) */
    ZD_FAULT_POINTS
} zd_fault_point;

/* Arms faults from spec: comma-separated "point:N" (the Nth call of point fails) or
 * "point:NxK" (calls N .. N+K-1 fail), points named index_put, index_del, audience.
 * Returns 0, -EINVAL (err names what is wrong), or -ENOTSUP when this build has no fault
 * injection. An empty spec disarms everything. */
int zd_fault_init(const char *spec, char *err, size_t errlen);

#ifdef ZD_FAULT_INJECTION
/* Counts one call of point p; true when this call must fail. */
bool zd_fault(zd_fault_point p);
#else
static inline bool zd_fault(zd_fault_point p)
{
    (void)p;
    return false;
}
#endif

#endif
