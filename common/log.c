/* Levelled stderr logging with personal-data masking. */
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <ctype.h>

static enum zd_log_level min_level = ZD_LOG_INFO;

void zd_log_set_level(enum zd_log_level level)
{
    min_level = level;
}

int zd_log_level_parse(const char *s, enum zd_log_level *out)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = (enum zd_log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

static int is_email_char(int c)
{
    return isalnum(c) || c == '.' || c == '_' || c == '-' || c == '+' || c == '%';
}

size_t zd_mask_pii(const char *in, char *out, size_t cap)
{
    size_t n = strlen(in), o = 0;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i < n && o + 1 < cap;) {
        unsigned char c = (unsigned char)in[i];
        /* A digit run of 7+ (optionally ending in X, as Chinese ID numbers may). */
        if (isdigit(c) && (i == 0 || !isalnum((unsigned char)in[i - 1]))) {
            size_t j = i;
            while (j < n && isdigit((unsigned char)in[j]))
                j++;
            if (j < n && (in[j] == 'X' || in[j] == 'x'))
                j++;
            if (j - i >= 7) {
                for (size_t k = i; k < j && o + 1 < cap; k++)
                    out[o++] = (k - i < 3 || j - k <= 2) ? in[k] : '*';
                i = j;
                continue;
            }
        }
        if (c == '@' && i > 0 && is_email_char((unsigned char)in[i - 1])) {
            /* Rewind over the local part already copied and mask all but its first char. */
            size_t s = i;
            while (s > 0 && is_email_char((unsigned char)in[s - 1]))
                s--;
            size_t local_len = i - s;
            if (o >= local_len) {
                o -= local_len;
                out[o++] = in[s];
                for (int k = 0; k < 3 && o + 1 < cap; k++)
                    out[o++] = '*';
            }
        }
        out[o++] = (char)c;
        i++;
    }
    out[o] = '\0';
    return o;
}

void zd_log(enum zd_log_level level, const char *fmt, ...)
{
    static const char *tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if (level < min_level)
        return;
    char raw[2048], masked[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    zd_mask_pii(raw, masked, sizeof(masked));

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s\n", tm.tm_year + 1900,
            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
            tags[level], masked);
}
