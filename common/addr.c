/* Address parsing for the config and the adapters (libc only). */
#include "common/addr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
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

int zd_addr_split(const char *s, char *host, size_t hostcap, int *port)
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
    unsigned char buf[sizeof(struct in6_addr)];
    if (strcmp(host, "localhost") == 0)
        return 0;
    if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1)
        return 0;
    return -EINVAL;
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
    char host[64];
    int port;
    /* An IP address, not a host name: hiredis resolves names synchronously in the event loop. */
    if (zd_addr_split(s, host, sizeof(host), &port) != 0 || port == 0)
        return seterr(err, errlen,
                      "\"%s\" must be IP:PORT or unix:/path, e.g. \"127.0.0.1:6379\" (an IP "
                      "address, not a host name)",
                      what);
    return 0;
}
