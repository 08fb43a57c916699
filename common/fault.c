/* Test-only fault injection (common/fault.h): per point, a call counter and the range of calls
 * that fail. */
#include "common/fault.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef ZD_FAULT_INJECTION
static const char *const point_names[ZD_FAULT_POINTS] = {"index_put", "index_del", "audience"};

typedef struct fault_state {
    unsigned long calls, first, count; /* calls first .. first+count-1 fail; count 0: never */
} fault_state;

static fault_state faults[ZD_FAULT_POINTS];

bool zd_fault(zd_fault_point p)
{
    fault_state *f = &faults[p];
    f->calls++;
    return f->count && f->calls >= f->first && f->calls - f->first < f->count;
}
#endif

int zd_fault_init(const char *spec, char *err, size_t errlen)
{
#ifndef ZD_FAULT_INJECTION
    snprintf(err, errlen, "this build has no fault injection (meson -Dfault_injection=enabled)");
    return spec && *spec ? -ENOTSUP : 0;
#else
    memset(faults, 0, sizeof(faults));
    const char *s = spec ? spec : "";
    while (*s) {
        const char *colon = strchr(s, ':');
        int p = -1;
        for (int i = 0; colon && i < ZD_FAULT_POINTS; i++)
            if (strlen(point_names[i]) == (size_t)(colon - s) &&
                strncmp(s, point_names[i], (size_t)(colon - s)) == 0)
                p = i;
        if (p < 0) {
            snprintf(err, errlen,
                     "ZHIDA_FAULT: \"%.40s\" does not start with a fault point "
                     "(index_put, index_del, audience) and a colon",
                     s);
            return -EINVAL;
        }
        char *end;
        unsigned long first = strtoul(colon + 1, &end, 10), count = 1;
        if (*end == 'x')
            count = strtoul(end + 1, &end, 10);
        if (first == 0 || count == 0 || (*end != '\0' && *end != ',')) {
            snprintf(err, errlen, "ZHIDA_FAULT: \"%.40s\": expected %s:N or %s:NxK with N, K >= 1",
                     s, point_names[p], point_names[p]);
            return -EINVAL;
        }
        faults[p].first = first;
        faults[p].count = count;
        s = *end == ',' ? end + 1 : end;
    }
    return 0;
#endif
}
