/* Request ids: every request gets one, echoed as X-Request-Id, carried in error bodies and in
 * the log lines written while serving it. A client's own id (X-Request-Id, or the trace-id of a
 * W3C traceparent) is kept when it is safe to echo and to log; otherwise one is made up. Plain
 * C, no libevent, so that it can be unit-tested. */
#ifndef ZD_REQUEST_ID_H
#define ZD_REQUEST_ID_H

#include <stdbool.h>
#include <stddef.h>

#define ZD_REQUEST_ID_MAX 128 /* longest id taken from a client */

/* Whether s[0..len) may serve as a request id as it is: 1..ZD_REQUEST_ID_MAX bytes of visible
 * ASCII other than '"' and '\\' (so it needs no escaping in a header, a JSON string or a log
 * line), and nothing that could be personal data, which logs must not show unmasked: no '@'
 * (e-mail addresses) and no 7 or more digits in a row (phone and ID numbers). */
bool zd_request_id_valid(const char *s, size_t len);

/* The trace-id of a W3C traceparent header value ("00-<32 hex>-<16 hex>-<2 hex>"): copies the
 * 32 lower-case hex digits and a NUL into out and returns true, or false when tp is not a valid
 * traceparent (upper case, an all-zero id or version ff are invalid). A trace-id is random
 * hex: it is taken even when it holds long digit runs, to keep the trace's id. */
bool zd_request_id_from_traceparent(const char *tp, char out[33]);

/* A fresh id: 32 lower-case hex digits (128 random bits) and a NUL, valid as above. */
void zd_request_id_new(char out[33]);

/* The id of a request whose X-Request-Id and traceparent header values are xrid and tp (each
 * may be NULL): X-Request-Id if valid, else the traceparent's trace-id, else a fresh one.
 * out holds ZD_REQUEST_ID_MAX + 1 bytes. Returns true when the id came from the client. */
bool zd_request_id_pick(const char *xrid, const char *tp, char out[ZD_REQUEST_ID_MAX + 1]);

#endif
