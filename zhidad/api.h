/* The HTTP API's wiring: route registration per resource and helpers shared by handlers. */
#ifndef ZD_API_H
#define ZD_API_H

#include <stdbool.h>

typedef struct zd_service zd_service;
typedef struct zd_req zd_req;

/* zd_api_register(), zd_service_start() and zd_service_stop() are declared in service.h. */

int zd_api_profiles_register(zd_service *svc);
int zd_api_rules_register(zd_service *svc);
int zd_api_audit_register(zd_service *svc);

/* List endpoints (api_list.c): reads the `limit` (1..ZD_LIST_LIMIT_MAX, default
 * ZD_LIST_LIMIT_DEFAULT) and `cursor` (NULL when absent; borrowed from the request) query
 * parameters. On a bad value answers 400 itself (invalid_value / invalid_cursor, naming the
 * parameter) and returns false. */
bool zd_api_list_query(zd_req *req, int *limit, const char **cursor);
/* Answers 400 invalid_cursor: for a cursor that the store refuses. */
void zd_api_reply_bad_cursor(zd_req *req);

/* Records one audience evaluation's latency for /metrics. */
void zd_api_observe_match(zd_service *svc, double ms);
/* Counts an audience evaluation that failed (ENOMEM) and was answered with an error. */
void zd_api_count_audience_failure(zd_service *svc);

#endif
