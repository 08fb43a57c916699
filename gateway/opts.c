/* Option checks shared by the built-in gateway types (gateway/opts.h). */
#include "gateway/opts.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/text.h"

int zd_gw_opt_known_keys(const cJSON *obj, const char *const *keys, const char *pfx, char *err,
                         size_t errlen)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, obj)
    {
        const char *best = NULL;
        bool known = false;
        for (int i = 0; keys[i] && !known; i++) {
            known = strcmp(keys[i], m->string) == 0;
            if (!known && zd_edit_distance(keys[i], m->string, 2) <= 2)
                best = keys[i];
        }
        if (known)
            continue;
        if (err && errlen) {
            if (best)
                snprintf(err, errlen, "unknown key \"%s%.64s\" (did you mean \"%s\"?)", pfx,
                         m->string, best);
            else
                snprintf(err, errlen, "unknown key \"%s%.64s\"", pfx, m->string);
        }
        return -EINVAL;
    }
    return 0;
}

int zd_gw_opt_number(const cJSON *obj, const char *pfx, const char *name, double lo, double hi,
                     bool integer, double *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v)
        return 0;
    double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
    if (!cJSON_IsNumber(v) || !(d >= lo && d <= hi) || (integer && d != (double)(long long)d)) {
        if (err && errlen)
            snprintf(err, errlen, "\"%s%s\" must be %s %g..%g", pfx, name,
                     integer ? "an integer" : "a number", lo, hi);
        return -EINVAL;
    }
    *out = d;
    return 0;
}
