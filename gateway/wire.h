/* The webhook wire format of SPEC §5, as pure functions: the request body, the stable id of a
 * batch, and the per-notice "failed" list of a 2xx answer. */
#ifndef ZD_WIRE_H
#define ZD_WIRE_H

#include <stdbool.h>
#include <stddef.h>

#include <zhida/gateway.h>

/* Longest notice id: "policy:profile:gateway" with room to spare. */
#define ZD_WIRE_ID_MAX 512
/* "batch_" + 32 hex digits + NUL. */
#define ZD_WIRE_BATCH_ID_LEN 39

/* True when id is 1..ZD_WIRE_ID_MAX printable ASCII characters without spaces: safe as a
 * header value (webhook-id, Idempotency-Key). */
bool zd_wire_id_ok(const char *id);

/* Builds {"notices": [...]} for notices[0..n) into a malloc'd NUL-terminated buffer (*out,
 * caller frees with free()) of *len bytes. Returns 0, -EINVAL when a string is not valid
 * UTF-8 or an id fails zd_wire_id_ok (nothing allocated), or -ENOMEM. */
int zd_wire_body(const zd_notice *notices, size_t n, char **out, size_t *len);

/* The webhook-id of a batch of several notices: "batch_" + the first 16 bytes of SHA-256 over
 * the notice ids (each followed by '\n'), in hex. The same notices in the same order give the
 * same id on every attempt. 0 or -EIO. */
int zd_wire_batch_id(const zd_notice *notices, size_t n, char out[ZD_WIRE_BATCH_ID_LEN]);

/* Reads the optional {"failed": [{"id": "...", "permanent": true|false}]} of a 2xx answer
 * (answer[0..len), need not be NUL-terminated) and marks each listed notice of ids[0..n) in
 * results[] as PERMANENT or TRANSIENT ("permanent" absent or not true: transient), keeping
 * http_status and retry_after_ms. Anything else in the answer — not JSON, no "failed",
 * entries without a string id, ids not in the batch — is ignored: a 2xx delivers what it does
 * not list. Returns how many results were marked. */
size_t zd_wire_failed(const char *answer, size_t len, const char *const *ids, size_t n,
                      zd_gw_result *results);

#endif
