/* The audit stream (SPEC §6): an append-only record of publishes, withdraws, deletes, segment
 * writes and API key use, each with the acting key's name and role; and its reading, newest
 * first, for GET /v1/audit. */
#ifndef ZD_AUDIT_H
#define ZD_AUDIT_H

#include "redis/redis.h"
#include "zhidad/http.h"

/* Appends one record (action, key name, role, target). Best effort: a failure is logged (with
 * the action) and counted, never blocks or fails the request that caused it. action is
 * borrowed until the record is answered: pass a string literal. The other strings are copied.
 * At shutdown, main.c waits for the answers before closing Redis (zd_service_quiesce()). */
void zd_audit(zd_redis *r, const char *action, const char *key_name, const char *role,
              const char *target);

/* The same with the key and role of the request's API key. */
void zd_audit_req(zd_redis *r, zd_req *req, const char *action, const char *target);

/* ---- reading the stream (GET /v1/audit) ---- */

/* One record; every string is valid only during the callback ("" for a field the record lacks). */
typedef struct zd_audit_record {
    const char *id;   /* the stream entry id, "<ms>-<seq>" */
    const char *time; /* the entry's time, UTC: "2026-06-01T09:30:00.123Z" */
    const char *action, *key, *role, *target;
} zd_audit_record;

/* Most records one read examines when it filters by action; see zd_audit_read(). */
#define ZD_AUDIT_SCAN_MAX 10000

/* status 0 with n records newest first (valid only during the callback) and next_cursor, the
 * cursor of the following page (NULL when the stream has no older record), or a negative
 * code. */
typedef void (*zd_audit_read_cb)(int status, const zd_audit_record *recs, int n,
                                 const char *next_cursor, void *udata);

/* Reads up to `limit` (>= 1) records older than `cursor` (NULL: from the newest; else an
 * earlier next_cursor, borrowed), newest first, keeping only those whose action is `action`
 * when it is not NULL (borrowed, copied). Filtering happens here, not in Redis, so a read
 * examines at most ZD_AUDIT_SCAN_MAX records: a page may then hold fewer records than `limit`,
 * even none, with a next_cursor that continues where it stopped. Returns 0 (cb will be called
 * exactly once), -EINVAL when cursor is not a stream id, or another negative code (cb will
 * not be called). */
int zd_audit_read(zd_redis *r, const char *cursor, const char *action, int limit,
                  zd_audit_read_cb cb, void *udata);

#endif
