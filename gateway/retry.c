/* Retry classes of SPEC §5, Retry-After parsing and back-off with jitter: plain functions
 * (libcurl is included for its error codes and their texts only). */
#include "gateway/retry.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "common/date.h"

static void set(zd_gw_result *r, int outcome, long status, long after_ms, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void set(zd_gw_result *r, int outcome, long status, long after_ms, const char *fmt, ...)
{
    r->outcome = outcome;
    r->http_status = (int)status;
    r->retry_after_ms = after_ms;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof(r->detail), fmt, ap);
    va_end(ap);
}

static void classify_transport(int code, long timeout_ms, zd_gw_result *r)
{
    switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
        set(r, ZD_GW_TRANSIENT, 0, 0, "no answer within timeout_ms (%ld ms)", timeout_ms);
        return;
    case CURLE_COULDNT_CONNECT:
        set(r, ZD_GW_TRANSIENT, 0, 0, "connection refused or unreachable");
        return;
    case CURLE_GOT_NOTHING:
        set(r, ZD_GW_TRANSIENT, 0, 0, "connection closed without an answer");
        return;
    case CURLE_WRITE_ERROR:
        /* Only the gateway's own write callback refuses data: the answer was too large. */
        set(r, ZD_GW_TRANSIENT, 0, 0, "answer body too large");
        return;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_NOT_BUILT_IN:
    case CURLE_BAD_FUNCTION_ARGUMENT:
        set(r, ZD_GW_PERMANENT, 0, 0, "cannot send: %s", curl_easy_strerror((CURLcode)code));
        return;
    default:
        set(r, ZD_GW_TRANSIENT, 0, 0, "%s", curl_easy_strerror((CURLcode)code));
        return;
    }
}

void zd_retry_classify(int transport_error, long http_status, const char *retry_after,
                       int64_t now_unix_s, long timeout_ms, zd_gw_result *r)
{
    memset(r, 0, sizeof(*r));
    if (transport_error != 0) {
        classify_transport(transport_error, timeout_ms, r);
        return;
    }
    if (http_status >= 200 && http_status <= 299) {
        set(r, ZD_GW_DELIVERED, http_status, 0, "HTTP %ld", http_status);
        return;
    }
    if (http_status == 408 || http_status == 429 || (http_status >= 500 && http_status <= 599)) {
        long after = retry_after ? zd_retry_after_parse(retry_after, now_unix_s) : -1;
        if (after >= 0)
            set(r, ZD_GW_TRANSIENT, http_status, after, "HTTP %ld, Retry-After %ld ms", http_status,
                after);
        else
            set(r, ZD_GW_TRANSIENT, http_status, 0, "HTTP %ld", http_status);
        return;
    }
    if (http_status >= 300 && http_status <= 399) {
        set(r, ZD_GW_PERMANENT, http_status, 0, "HTTP %ld: redirects are not followed",
            http_status);
        return;
    }
    if (http_status >= 400 && http_status <= 499) {
        set(r, ZD_GW_PERMANENT, http_status, 0, "HTTP %ld", http_status);
        return;
    }
    /* 1xx as a final answer, or no valid status line: a broken exchange, worth retrying. */
    set(r, ZD_GW_TRANSIENT, http_status, 0, "unexpected HTTP status %ld", http_status);
}

/* ---- Retry-After ------------------------------------------------------------------------ */

static int month_of(const char *s)
{
    static const char *const names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; i++) {
        if (strncmp(s, names[i], 3) == 0)
            return i + 1;
    }
    return 0;
}

/* Reads exactly n digits at *p into *out. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int lit(const char **p, const char *s)
{
    size_t n = strlen(s);
    if (strncmp(*p, s, n) != 0)
        return -1;
    *p += n;
    return 0;
}

/* "HH:MM:SS" */
static int clock_of(const char **p, int *h, int *m, int *s)
{
    if (digits(p, 2, h) || lit(p, ":") || digits(p, 2, m) || lit(p, ":") || digits(p, 2, s))
        return -1;
    return *h <= 23 && *m <= 59 && *s <= 60 ? 0 : -1;
}

/* Parses the three HTTP date forms into Unix seconds; -1 when v is none of them. */
static int64_t http_date(const char *v)
{
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
    const char *p = v;
    const char *comma = strchr(v, ',');
    if (comma && comma - v == 3) {
        /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
        p = comma + 1;
        if (lit(&p, " ") || digits(&p, 2, &d) || lit(&p, " ") || !(mo = month_of(p)))
            return -1;
        p += 3;
        if (lit(&p, " ") || digits(&p, 4, &y) || lit(&p, " ") || clock_of(&p, &h, &mi, &s) ||
            lit(&p, " GMT") || *p)
            return -1;
    } else if (comma) {
        /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"; two-digit years are 1970..2069. */
        p = comma + 1;
        if (lit(&p, " ") || digits(&p, 2, &d) || lit(&p, "-") || !(mo = month_of(p)))
            return -1;
        p += 3;
        if (lit(&p, "-") || digits(&p, 2, &y) || lit(&p, " ") || clock_of(&p, &h, &mi, &s) ||
            lit(&p, " GMT") || *p)
            return -1;
        y += y < 70 ? 2000 : 1900;
    } else {
        /* asctime: "Sun Nov  6 08:49:37 1994" */
        if (strlen(p) < 4 || p[3] != ' ')
            return -1;
        p += 4;
        if (!(mo = month_of(p)))
            return -1;
        p += 3;
        if (lit(&p, " "))
            return -1;
        if (*p == ' ') {
            p++;
            if (digits(&p, 1, &d))
                return -1;
        } else if (digits(&p, 2, &d)) {
            return -1;
        }
        if (lit(&p, " ") || clock_of(&p, &h, &mi, &s) || lit(&p, " ") || digits(&p, 4, &y) || *p)
            return -1;
    }
    if (d < 1 || d > 31 || y < 1970)
        return -1;
    int32_t days = zd_date_from_ymd(y, mo, d);
    return (int64_t)days * 86400 + h * 3600 + mi * 60 + s;
}

long zd_retry_after_parse(const char *v, int64_t now_unix_s)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n'))
        n--;
    if (n == 0 || n > 64)
        return -1;
    char buf[65];
    memcpy(buf, v, n);
    buf[n] = '\0';
    int64_t secs;
    if (isdigit((unsigned char)buf[0])) {
        secs = 0;
        for (size_t i = 0; i < n; i++) {
            if (!isdigit((unsigned char)buf[i]))
                return -1;
            if (secs < ZD_RETRY_AFTER_MAX_MS / 1000 + 1)
                secs = secs * 10 + (buf[i] - '0');
        }
    } else {
        int64_t at = http_date(buf);
        if (at < 0)
            return -1;
        secs = at - now_unix_s;
        if (secs < 0)
            secs = 0;
    }
    if (secs > ZD_RETRY_AFTER_MAX_MS / 1000)
        return ZD_RETRY_AFTER_MAX_MS;
    return (long)(secs * 1000);
}

/* ---- back-off --------------------------------------------------------------------------- */

long zd_retry_backoff_ms(int attempt, long base_ms, long max_ms, uint32_t rnd)
{
    if (attempt < 1)
        attempt = 1;
    if (base_ms < 1)
        base_ms = 1;
    if (max_ms < base_ms)
        max_ms = base_ms;
    long d = base_ms;
    for (int i = 1; i < attempt && d < max_ms; i++)
        d = d > max_ms / 2 ? max_ms : d * 2;
    if (d > max_ms)
        d = max_ms;
    long half = d / 2;
    return half + (long)(rnd % (uint32_t)(d - half + 1));
}

long zd_retry_delay_ms(const zd_gw_result *r, int attempt, long base_ms, long max_ms, uint32_t rnd)
{
    long d = zd_retry_backoff_ms(attempt, base_ms, max_ms, rnd);
    return r->retry_after_ms > d ? r->retry_after_ms : d;
}
