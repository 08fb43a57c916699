/* Network addresses as zhida's config writes them: "IP:PORT", "[IPv6]:PORT", "localhost:PORT"
 * and "unix:/path". Parsing only (libc); nothing here resolves or connects. */
#ifndef ZD_ADDR_H
#define ZD_ADDR_H

#include <stdbool.h>
#include <stddef.h>

/* Splits "IP:PORT", "[IPv6]:PORT" or "localhost:PORT" into host (capacity hostcap, brackets
 * removed) and port (0..65535). Host names other than localhost are refused: resolving them
 * would block the event loop. Returns 0 or -EINVAL. */
int zd_addr_split(const char *s, char *host, size_t hostcap, int *port);

/* The same, also accepting a DNS host name ("redis.internal:6379"), for clients that resolve
 * names asynchronously. host needs room for 253 bytes. */
int zd_addr_split_named(const char *s, char *host, size_t hostcap, int *port);

/* True when host is an IPv4 or IPv6 literal. */
bool zd_addr_is_ip(const char *host);

/* Checks a Redis address: "unix:/absolute/path" or HOST:PORT with a non-zero port. `what` names
 * the option in the message. 0, or -EINVAL with a message in err. */
int zd_addr_check_redis(const char *s, const char *what, char *err, size_t errlen);

#endif
