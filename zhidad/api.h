/* The HTTP API's wiring: route registration per resource and helpers shared by handlers. */
#ifndef ZD_API_H
#define ZD_API_H

typedef struct zd_service zd_service;

/* zd_api_register(), zd_service_start() and zd_service_stop() are declared in service.h. */

int zd_api_profiles_register(zd_service *svc);
int zd_api_rules_register(zd_service *svc);

/* Records one audience evaluation's latency for /metrics. */
void zd_api_observe_match(zd_service *svc, double ms);
/* Counts an audience evaluation that failed (ENOMEM) and was answered with an error. */
void zd_api_count_audience_failure(zd_service *svc);

#endif
