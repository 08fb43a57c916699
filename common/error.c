/* zd_strerror() and zd_error_set(): the error convention shared by every module. */
#include <zhida/error.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *zd_strerror(int err)
{
    if (err == 0)
        return "ok";
    return strerror(err < 0 ? -err : err);
}

int zd_error_set(zd_error *e, const char *code, const char *field, const char *fmt, ...)
{
    if (e == NULL)
        return -EINVAL;
    snprintf(e->code, sizeof(e->code), "%s", code ? code : "invalid");
    snprintf(e->field, sizeof(e->field), "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return -EINVAL;
}
