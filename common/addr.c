/* Address parsing for the config and the adapters (libc only). */
#include "common/addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

bool zd_addr_is_ip(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* A DNS name: labels of letters, digits and '-', separated by dots, at most 253 bytes. */
static bool is_dns_name(const char *h)
{
    size_t n = strlen(h), label = 0;
    if (n == 0 || n > 253 || h[0] == '.' || h[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (isalnum((unsigned char)c) || (c == '-' && label > 0)) {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return true;
}

static int split(const char *s, char *host, size_t hostcap, int *port, bool names)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return -EINVAL;
    const char *h = s;
    size_t hl = (size_t)(colon - s);
    if (h[0] == '[') {
        if (hl < 3 || h[hl - 1] != ']')
            return -EINVAL;
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= hostcap)
        return -EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || p < 0 || p > 65535 ||
        !isdigit((unsigned char)colon[1]))
        return -EINVAL;
    *port = (int)p;
    if (strcmp(host, "localhost") == 0 || zd_addr_is_ip(host))
        return 0;
    return names && h[0] != '[' && is_dns_name(host) ? 0 : -EINVAL;
}

int zd_addr_split(const char *s, char *host, size_t hostcap, int *port)
{
    return split(s, host, hostcap, port, false);
}

int zd_addr_split_named(const char *s, char *host, size_t hostcap, int *port)
{
    return split(s, host, hostcap, port, true);
}

int zd_addr_check_redis(const char *s, const char *what, char *err, size_t errlen)
{
    if (strncmp(s, "unix:", 5) == 0) {
        /* sun_path holds 108 bytes on Linux. */
        if (s[5] != '/' || strlen(s + 5) >= 108)
            return seterr(err, errlen, "\"%s\": a unix socket must be \"unix:/absolute/path\"",
                          what);
        return 0;
    }
    char host[256];
    int port;
    /* Host names are resolved asynchronously by the Redis adapter (evdns), never by hiredis,
     * which would block the event loop. */
    if (zd_addr_split_named(s, host, sizeof(host), &port) != 0 || port == 0)
        return seterr(err, errlen,
                      "\"%s\" must be HOST:PORT or unix:/path, e.g. \"127.0.0.1:6379\" or "
                      "\"redis.internal:6379\"",
                      what);
    return 0;
}
