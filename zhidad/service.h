/* The daemon's wiring: one context, built by main.c and passed to the API handlers and the
 * service start/stop hooks, instead of globals. main.c owns and frees cfg, http and redis. */
#ifndef ZD_SERVICE_H
#define ZD_SERVICE_H

#include <stdbool.h>

#include "zhidad/config.h"
#include "zhidad/http.h"
#include "zhidad/names_tables.h"
#include "redis/redis.h"

#include <zhida/gateway.h>

struct event_base;
struct zd_index;
struct zd_store;
struct zd_follower;
struct zd_timer;
struct zd_gateways;
struct zd_delivery;
struct zd_inbox;
struct zd_calc;
typedef struct zd_importer zd_importer;

typedef struct zd_service {
    const zd_config *cfg;
    const char *version; /* zhidad's version (static), for /metrics */
    struct event_base *base;
    zd_http *http;
    zd_redis *redis; /* the API's connection; long-blocking readers open their own */
    /* Filled by zd_service_start() (api.c), freed by zd_service_stop(). */
    struct zd_index *index;
    struct zd_store *store;
    struct zd_follower *follower;
    zd_importer *importer;        /* NDJSON imports in progress and their Redis connection */
    struct zd_timer *key_audit_t; /* sums API key use into the audit stream */
    struct zd_timer *scrub_t;     /* removes erased profiles' change-stream entries */
    zd_gw_host gw_host;           /* what gateways get from zhidad (loop, log, clocks) */
    struct zd_gateways *gateways; /* every configured gateway, created once */
    /* The delivery engine (fan-out, workers, scheduler) on its own Redis connection; NULL with
     * "delivery": {"enabled": false}. API handlers call zd_delivery_kick() after a create. */
    struct zd_delivery *delivery;
    struct zd_inbox *inbox; /* profiles' inboxes: the inbox gateways and the inbox API */
    struct zd_calc *calc;   /* the policy calculator's live-policy cache (delivery/calculator.h) */
    zd_names_tables names;  /* region and industry names for reasons (zd_service_start) */
    /* Set by main.c: ends the event loop (the service cannot run; exit_status says why). */
    void (*stop_loop)(struct zd_service *svc);
    bool index_ready; /* /readyz answers 200 only when this is set and Redis is connected */
    bool stopping;    /* set when SIGTERM/SIGINT arrived */
    int exit_status;  /* non-zero: the service stopped the loop because it cannot run */
    /* The last verdict on Redis's durability (profiles/durability.h): 1 keeps our data, 0 does
     * not or cannot tell (durability_problem says why), -1 not checked yet or
     * "redis_durability": "off". With "require", /readyz answers 200 only at 1. */
    int redis_durable;
    char durability_problem[320];
} zd_service;

/* Whether the service is ready (/readyz 200): Redis connected, the index loaded and trusted,
 * not stopping (api.c). */
bool zd_service_ready(const zd_service *svc);

/* Registers the API's routes on svc->http (api.c). Called before listening. 0 or -errno. */
int zd_api_register(zd_service *svc);
/* Starts the service's own work (index loading, followers) once svc->redis exists and has
 * started connecting (api.c). 0 or -errno; an error stops start-up. */
int zd_service_start(zd_service *svc);
/* Stopping, step 2 (api.c): ends the service's periodic work (key-use summaries, change-stream
 * scrubbing) and queues its last records on svc->redis (the key.use summaries of the interval
 * so far). Called once the HTTP drain is over; the caller then keeps the loop running until
 * svc->redis has answered every command (each fails by its own deadline at the latest), so
 * that the records reach Redis before the client is freed. Idempotent. */
void zd_service_quiesce(zd_service *svc);
/* Stops and frees what zd_service_start() created (api.c), calling zd_service_quiesce() first
 * if that was not done. Called after the loop has stopped and before svc->redis and
 * svc->http are freed; also when start-up failed before or inside zd_service_start(). */
void zd_service_stop(zd_service *svc);

#endif
