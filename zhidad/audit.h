/* The audit stream (SPEC §6): an append-only record of publishes, withdraws, deletes, segment
 * writes and API key use, each with the acting key's name and role. */
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

#endif
