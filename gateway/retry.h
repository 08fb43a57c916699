/* The SPEC §5 retry classes as pure functions: an HTTP status or transport error becomes
 * delivered / transient / permanent with the delay the receiver asked for (Retry-After), and
 * the host's exponential back-off with jitter for the next attempt. No I/O, no clock of its
 * own: the caller passes "now" and the random number, so tests can pin them. */
#ifndef ZD_RETRY_H
#define ZD_RETRY_H

#include <stdint.h>

#include <zhida/gateway.h>

/* The longest Retry-After honored: a larger (or later) one is clamped to this. */
#define ZD_RETRY_AFTER_MAX_MS (24L * 3600 * 1000)

/* Classifies one HTTP exchange into r (every field set):
 * - transport_error != 0 (a CURLcode): no answer. Timeouts, refused or reset connections,
 *   TLS and DNS failures are TRANSIENT (timeout_ms names the limit in the detail); only
 *   errors that can never succeed with this configuration (a malformed URL, an unsupported
 *   protocol) are PERMANENT.
 * - else http_status: 2xx DELIVERED; 408, 429 and 5xx TRANSIENT, with retry_after_ms from
 *   the Retry-After header value retry_after (NULL when absent; seconds or an HTTP date,
 *   compared with now_unix_s); 3xx (redirects are not followed) and other 4xx PERMANENT. */
void zd_retry_classify(int transport_error, long http_status, const char *retry_after,
                       int64_t now_unix_s, long timeout_ms, zd_gw_result *r);

/* Parses a Retry-After value: delta-seconds, or an HTTP date in any of the three forms of
 * RFC 9110 §5.6.7 (IMF-fixdate, RFC 850, asctime). Returns the wait in ms from now_unix_s
 * (0 for a date in the past, at most ZD_RETRY_AFTER_MAX_MS), or -1 when v is not one. */
long zd_retry_after_parse(const char *v, int64_t now_unix_s);

/* The back-off before attempt number `attempt` + 1 after `attempt` failed (attempt >= 1):
 * d = min(max_ms, base_ms * 2^(attempt-1)), then "equal jitter": a value in [d/2, d] chosen
 * by rnd, so retries of many notices spread out instead of arriving together. */
long zd_retry_backoff_ms(int attempt, long base_ms, long max_ms, uint32_t rnd);

/* The delay before the next attempt of a TRANSIENT result: the back-off, or the receiver's
 * Retry-After when that is longer. */
long zd_retry_delay_ms(const zd_gw_result *r, int attempt, long base_ms, long max_ms, uint32_t rnd);

#endif
