/* The HTTP API's wiring: route registration per resource and helpers shared by handlers. */
#ifndef ZD_API_H
#define ZD_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "redis/redis.h"

typedef struct zd_service zd_service;
typedef struct zd_req zd_req;

/* zd_api_register(), zd_service_start() and zd_service_stop() are declared in service.h. */

int zd_api_profiles_register(zd_service *svc);
/* GET /v1/profiles/{id}/policies, the policy calculator (api_calculator.c). */
int zd_api_calculator_register(zd_service *svc);
int zd_api_rules_register(zd_service *svc);
int zd_api_audit_register(zd_service *svc);
/* GET /v1/profiles/{id}/inbox and the item actions (api_inbox.c). */
int zd_api_inbox_register(zd_service *svc);
/* POST /v1/gateways/{name}:test (api_gateways.c). */
int zd_api_gateways_register(zd_service *svc);
/* POST /v1/sessions, GET/DELETE /v1/sessions/current (api_sessions.c). */
int zd_api_sessions_register(zd_service *svc);
/* GET /console/...: the operator console's files (console.c). */
int zd_api_console_register(zd_service *svc);

/* List endpoints (api_list.c): reads the `limit` (1..ZD_LIST_LIMIT_MAX, default
 * ZD_LIST_LIMIT_DEFAULT) and `cursor` (NULL when absent; borrowed from the request) query
 * parameters. On a bad value answers 400 itself (invalid_value / invalid_cursor, naming the
 * parameter) and returns false. */
bool zd_api_list_query(zd_req *req, int *limit, const char **cursor);
/* Answers 400 invalid_cursor: for a cursor that the store refuses. */
void zd_api_reply_bad_cursor(zd_req *req);

/* POST /v1/profiles:import (api_import.c): its route (registered by
 * zd_api_profiles_register()), and its pacing and bulk Redis connection, started by
 * zd_service_start() (0 or -ENOMEM) and stopped by zd_service_stop(), which answers imports
 * still running with 503 "shutting_down". */
int zd_api_import_register(zd_service *svc);
int zd_api_import_start(zd_service *svc);
void zd_api_import_stop(zd_service *svc);

/* The index and audit side of an erasure (api_profiles.c), shared by DELETE and import's
 * delete lines: applies it to this instance's index and records "profile.delete" by who/role
 * (borrowed). old_json and entry are the store's answer, valid during its callback. */
void zd_api_profile_erased(zd_service *svc, const char *who, const char *role, uint32_t gid,
                           const char *old_json, size_t old_len, const char *entry, uint64_t epoch);

/* For /metrics: imports being processed, their batches in flight, the bulk connection's
 * Redis client counters. */
typedef struct zd_import_stats {
    long active, batches_inflight;
    zd_redis_stats redis;
} zd_import_stats;
void zd_api_import_stats(const zd_service *svc, zd_import_stats *st);

/* Records one audience evaluation's latency for /metrics. */
void zd_api_observe_match(zd_service *svc, double ms);
/* Counts an audience evaluation that failed (ENOMEM) and was answered with an error. */
void zd_api_count_audience_failure(zd_service *svc);

#endif
