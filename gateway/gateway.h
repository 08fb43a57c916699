/* The gateway host: the registry of gateway types (built in, and plugins registered by
 * gateway/plugin.h), the options every type shares (retries), start-up checks of the config's
 * "gateways" section, and zd_gateway, one configured gateway instance, through which the
 * delivery code sends batches. The ABI the types implement is include/zhida/gateway.h. */
#ifndef ZD_GATEWAY_H
#define ZD_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>

#include <zhida/gateway.h>

struct cJSON;

typedef struct zd_gateway zd_gateway;

/* The retry options every gateway type shares (SPEC §5). The delivery code retries a
 * TRANSIENT notice after zd_retry_delay_ms(result, attempt, base_ms, max_ms, rnd) until
 * max_attempts attempts were made; then it is dead. */
typedef struct zd_gateway_retry {
    int max_attempts; /* "max_attempts", 1..1000 [10] */
    long base_ms;     /* "retry_base_ms", 100..3600000 [1000]: the first back-off */
    long max_ms;      /* "retry_max_ms", at least base_ms, ..86400000 [3600000] */
} zd_gateway_retry;

/* The type registered under name (borrowed, static), or NULL. */
const zd_gateway_type *zd_gateway_type_find(const char *name);

/* Whether name is one of the built-in type names (webhook, inbox, sms_http, smtp), which no
 * plugin may take. */
bool zd_gateway_type_builtin(const char *name);

/* Adds a type (borrowed: it must outlive every use, as a plugin's static table does).
 * -EINVAL with a message in err for another ABI version, a missing callback or an empty
 * name; -EEXIST when the name is taken. For the plugin loader. */
int zd_gateway_type_register(const zd_gateway_type *t, char *err, size_t errlen);

/* Checks one entry of the config's "gateways" object: name, opts (borrowed) the value,
 * {"type": ..., options}. Unknown types, unknown keys and bad values are errors naming the
 * key ("gateways.zlb.batch"). Plugin types must be registered first (gateway/plugin.h).
 * 0, or -EINVAL with a message in err (never a secret). */
int zd_gateway_check(const char *name, const struct cJSON *opts, char *err, size_t errlen);

/* A host on event_base (a struct event_base *, borrowed) logging through common/log.h with
 * the system clocks. */
void zd_gateway_host_init(zd_gw_host *h, void *event_base);

/* Creates gateway `name` from its config entry opts (borrowed; checked as by
 * zd_gateway_check). host is borrowed and must outlive the gateway. Returns 0 and *out
 * (caller frees with zd_gateway_free()), -ENOTSUP for a built-in type the host cannot create
 * (provided by a layer above: see zd_gateway_adopt), or another
 * negative code; err says why. */
int zd_gateway_new(const zd_gw_host *host, const char *name, const struct cJSON *opts,
                   zd_gateway **out, char *err, size_t errlen);

/* Wraps an instance the caller created of built-in type t: for the types whose instances
 * need what gateway/ may not hold, so that a layer above creates them — the inbox, which
 * writes to Redis (delivery/inbox.h). opts (borrowed) is the gateway's config entry, checked
 * as by zd_gateway_check; its "type" must be a reserved built-in name equal to t->name. t is
 * borrowed (static); inst is taken over: on success g frees it with t->destroy, on failure it
 * is destroyed at once. Returns 0 and *out, or -EINVAL with err. */
int zd_gateway_adopt(const char *name, const struct cJSON *opts, const zd_gateway_type *t,
                     void *inst, zd_gateway **out, char *err, size_t errlen);

const char *zd_gateway_name(const zd_gateway *g);
const char *zd_gateway_type_name(const zd_gateway *g);
const zd_gateway_retry *zd_gateway_retry_opts(const zd_gateway *g);
int zd_gateway_max_batch(const zd_gateway *g);

/* The type's send() (zhida/gateway.h): 0 and done called exactly once later, or a negative
 * code and done never called. */
int zd_gateway_send(zd_gateway *g, const zd_notice *notices, size_t n, zd_gw_done_fn done,
                    void *udata);

/* Sends one notice as a test (POST /v1/gateways/{name}:test) and reports the result and the
 * start of the receiver's answer, with personal data masked (common/log.h zd_mask_pii). The
 * same contract as zd_gateway_send(). */
int zd_gateway_test(zd_gateway *g, const zd_notice *notice, zd_gw_test_fn done, void *udata);

void zd_gateway_stats(const zd_gateway *g, zd_gw_stats *st);

/* Cancels what is queued or in flight (callbacks run with -ECANCELED, inside this call, or
 * right after the current callback when called from one) and frees g. NULL: no-op. */
void zd_gateway_free(zd_gateway *g);

#endif
