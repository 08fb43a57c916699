/* The configured gateway instances: every entry of the config's "gateways" section created once
 * at service start (webhook, inbox, sms_http, smtp, plugin types), looked up by name by the workers
 * and by POST /v1/gateways/{name}:test. The index of a gateway (zd_gateways_index) is stable for
 * the life of the set. */
#ifndef ZD_DELIVERY_GATEWAYS_H
#define ZD_DELIVERY_GATEWAYS_H

#include <stddef.h>

#include <zhida/gateway.h>

#include "gateway/gateway.h"

struct cJSON;
typedef struct zd_inbox zd_inbox;
typedef struct zd_gateways zd_gateways;

/* Creates an instance of every gateway of config (the "gateways" object, borrowed; NULL or
 * empty: none). host is borrowed and outlives the set; inbox (borrowed, outlives the set; may
 * be NULL in unit tests, then "inbox" gateways are configured but unavailable) is what the
 * built-in inbox type writes to (delivery/inbox.h). Returns 0 and *out, or a negative code
 * with a message in err naming the gateway. */
int zd_gateways_new(const zd_gw_host *host, const struct cJSON *config, zd_inbox *inbox,
                    zd_gateways **out, char *err, size_t errlen);

/* Number of configured gateways; the gateway with index i (0 <= i < count), or by name: NULL
 * when there is none. */
int zd_gateways_count(const zd_gateways *gs);
zd_gateway *zd_gateways_at(const zd_gateways *gs, int i);
const char *zd_gateways_name(const zd_gateways *gs, int i);
/* The configured "type" of gateway i ("webhook", "inbox", "sms_http", "smtp", a plugin's), also
 * for a type that has not landed; NULL when there is no gateway i. */
const char *zd_gateways_type(const zd_gateways *gs, int i);
zd_gateway *zd_gateways_find(const zd_gateways *gs, const char *name);
/* The index of gateway `name`, or -1. */
int zd_gateways_index(const zd_gateways *gs, const char *name);

/* Frees every instance (their queued and in-flight batches fail with -ECANCELED). NULL: no-op. */
void zd_gateways_free(zd_gateways *gs);

#endif
