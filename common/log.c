/* Levelled stderr logging with personal-data masking. */
#include "common/log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <ctype.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static enum zd_log_level min_level = ZD_LOG_INFO;
static enum zd_log_format format = ZD_LOG_TEXT;
static char request_id[129]; /* "" when none */

void zd_log_set_request_id(const char *id)
{
    snprintf(request_id, sizeof(request_id), "%s", id ? id : "");
}

const char *zd_log_request_id(void)
{
    return request_id[0] ? request_id : NULL;
}

void zd_log_set_level(enum zd_log_level level)
{
    min_level = level;
}

void zd_log_set_format(enum zd_log_format f)
{
    format = f;
}

/* systemd sets JOURNAL_STREAM to "<dev>:<inode>" of the journal socket it connected to
 * stderr; it is only ours if stderr still is that socket (not redirected by a wrapper). */
static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) != 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int zd_log_format_parse(const char *s, enum zd_log_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = ZD_LOG_TEXT;
    else if (strcmp(s, "journal") == 0)
        *out = ZD_LOG_JOURNAL;
    else if (strcmp(s, "json") == 0)
        *out = ZD_LOG_JSON;
    else if (strcmp(s, "auto") == 0)
        *out = stderr_is_journal() ? ZD_LOG_JOURNAL : ZD_LOG_TEXT;
    else
        return -EINVAL;
    return 0;
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

/* Writes s as the inside of a JSON string into out (room for 6 bytes per byte of s). */
static void json_escape(const char *s, char *out)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            out[o++] = '\\';
            out[o++] = (char)*p;
        } else if (*p < 0x20) {
            o += (size_t)snprintf(out + o, 7, "\\u%04x", *p);
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o] = '\0';
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

    /* The request id comes after masking: it is checked to be no personal data when taken. */
    const char *rid_sep = request_id[0] ? " request_id=" : "";
    if (format == ZD_LOG_JOURNAL) {
        /* sd-daemon(3) priorities: debug 7, info 6, warning 4, err 3. */
        static const int prio[] = {7, 6, 4, 3};
        fprintf(stderr, "<%d>%s%s%s\n", prio[level], masked, rid_sep, request_id);
        return;
    }
    struct timespec ts;
    struct tm tm;
    char when[64];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    if (format == ZD_LOG_TEXT) {
        fprintf(stderr, "%s %-5s %s%s%s\n", when, tags[level], masked, rid_sep, request_id);
        return;
    }
    /* JSON: escape the message by hand (common/ is libc only). */
    static const char *names[] = {"debug", "info", "warn", "error"};
    char esc[sizeof(masked) * 6 + 1], rid[sizeof(request_id) * 6 + 1];
    json_escape(masked, esc);
    json_escape(request_id, rid);
    if (request_id[0])
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\",\"request_id\":\"%s\"}\n",
                when, names[level], esc, rid);
    else
        fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", when, names[level],
                esc);
}
