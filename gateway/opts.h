/* Option checks every built-in gateway type shares (webhook, sms_http, smtp): unknown keys named
 * with a did-you-mean, and bounded numbers, each error naming the key as prefix + key. */
#ifndef ZD_GATEWAY_OPTS_H
#define ZD_GATEWAY_OPTS_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

/* Every member of obj must be one of keys (NULL-terminated). 0, or -EINVAL with a message in
 * err naming the first unknown key as pfx + key, with the nearest known one when it is close. */
int zd_gw_opt_known_keys(const struct cJSON *obj, const char *const *keys, const char *pfx,
                         char *err, size_t errlen);

/* Member name of obj, when present, must be a number in lo..hi (an integer when integer is
 * set); it is stored in *out. Absent: 0 and *out unchanged. Else -EINVAL with a message. */
int zd_gw_opt_number(const struct cJSON *obj, const char *pfx, const char *name, double lo,
                     double hi, bool integer, double *out, char *err, size_t errlen);

#endif
