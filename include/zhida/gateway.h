/* The channel gateway ABI: how zhidad hands batches of notices to a gateway type (built in,
 * or a plugin .so) and learns each notice's fate, asynchronously on zhidad's one event loop.
 * docs/GATEWAYS.md explains how to write a gateway against it.
 *
 * Plain C only: no libevent, libcurl or cJSON type appears here, so a plugin can be built
 * against this one header. Everything runs on the loop's thread; no function here may be
 * called from another thread. */
#ifndef ZHIDA_GATEWAY_H
#define ZHIDA_GATEWAY_H

#include <stddef.h>
#include <stdint.h>

/* Bumped on every change to a struct or a function signature below. The host accepts a type
 * only when its abi_version equals the host's ZD_GATEWAY_ABI_VERSION. */
#define ZD_GATEWAY_ABI_VERSION 2

/* A plugin .so exports one function of type zd_gateway_plugin_fn under this name; it returns
 * the types the plugin implements (a NULL-terminated array, static storage) or NULL when it
 * cannot work with the host's ABI version. */
#define ZD_GATEWAY_PLUGIN_SYMBOL "zd_gateway_plugin_types"

/* One personalized notice (SPEC §5). Every string is NUL-terminated UTF-8 and never NULL
 * ("" when absent). The id is "policy:profile:gateway": 1..512 printable ASCII characters
 * without spaces, stable across attempts, so receivers can drop duplicates. */
typedef struct zd_notice {
    const char *id;
    const char *policy;
    const char *profile;
    const char *gateway; /* the configured gateway name, e.g. "zlb" */
    const char *to;      /* the profile's contact for this gateway: personal data, never log it */
    const char *title;
    const char *body;
    const char *url;
    const char *category;
    int urgent;  /* 0 or 1 */
    int attempt; /* 1 for the first try */
} zd_notice;

/* A notice's outcome. TRANSIENT: send it again later (408, 429, 5xx, timeouts, connection
 * errors, or listed as not permanent in a 2xx answer); PERMANENT: never (other 4xx, or
 * listed as permanent) — a fallback chain tries its next gateway, else it is dead. */
typedef enum zd_gw_outcome {
    ZD_GW_DELIVERED = 0,
    ZD_GW_TRANSIENT = 1,
    ZD_GW_PERMANENT = 2,
} zd_gw_outcome;

/* The result for one notice of a batch. */
typedef struct zd_gw_result {
    int outcome;         /* a zd_gw_outcome */
    int http_status;     /* the receiver's HTTP status, 0 when there was no answer */
    long retry_after_ms; /* TRANSIENT only: the receiver asked not to be retried sooner
                          * (Retry-After); 0 = no wish, the host's back-off decides */
    char detail[120];    /* short, for the delivery log: "HTTP 503", "timeout after 5000 ms";
                          * never personal data */
} zd_gw_result;

/* Called exactly once per accepted batch, on the loop, never from inside the send() call
 * that submitted it. status is 0, or -ECANCELED when the gateway was destroyed first (every
 * result is then TRANSIENT: the receiver may or may not have seen the batch). results[i]
 * belongs to notices[i] of the send() call; results is valid only during the callback. */
typedef void (*zd_gw_done_fn)(int status, const zd_gw_result *results, size_t n, void *udata);

/* The answer to a test send: result as above; answer holds the first bytes (at most 1 KiB,
 * NUL-terminated, "" when none) of the receiver's answer body, valid only during the
 * callback. The host masks personal data in it before passing it on. */
typedef void (*zd_gw_test_fn)(int status, const zd_gw_result *result, const char *answer,
                              void *udata);

typedef enum zd_gw_log_level {
    ZD_GW_LOG_DEBUG = 0,
    ZD_GW_LOG_INFO = 1,
    ZD_GW_LOG_WARN = 2,
    ZD_GW_LOG_ERROR = 3,
} zd_gw_log_level;

/* What the host gives a gateway; the struct and everything it points to outlive every
 * gateway created with it. */
typedef struct zd_gw_host {
    unsigned abi_version; /* ZD_GATEWAY_ABI_VERSION of the host */
    /* zhidad's libevent loop (a struct event_base *), for gateways that do their own I/O on
     * it. Borrowed. */
    void *event_base;
    /* Writes one log line (msg borrowed; the host masks personal data again anyway). */
    void (*log)(const struct zd_gw_host *host, int level, const char *msg);
    /* Milliseconds of a monotonic clock, for timeouts and rate limits. */
    int64_t (*monotonic_ms)(const struct zd_gw_host *host);
    /* Milliseconds since the Unix epoch, for timestamps sent to receivers. */
    int64_t (*unix_ms)(const struct zd_gw_host *host);
    void *ctx; /* the host's own */
} zd_gw_host;

/* Counters of one gateway instance; the first two are current, the rest count since
 * create(). */
typedef struct zd_gw_stats {
    long queued;    /* batches accepted and not yet sent (waiting for a slot or a rate token) */
    long inflight;  /* batches being sent */
    long requests;  /* batches finished with any outcome */
    long delivered; /* notices, by outcome */
    long transient;
    long permanent;
    long connects; /* connections opened (keep-alive reuse keeps this far below requests) */
    long segments; /* SMS segments (billed messages) of the delivered notices: sms_http and any
                    * SMS plugin; 0 for other types (added in ABI version 2) */
} zd_gw_stats;

/* A gateway type: a versioned table of callbacks. An instance is an opaque void * made by
 * create(). Every function runs on the loop's thread. */
typedef struct zd_gateway_type {
    unsigned abi_version; /* ZD_GATEWAY_ABI_VERSION the type was built against */
    const char *name;     /* the "type" of the config, e.g. "webhook" */

    /* Checks the type's own options without creating anything: options_json is the
     * gateway's config object (text, borrowed) without the keys the host handles ("type",
     * "max_attempts", "retry_base_ms", "retry_max_ms"). Unknown keys and bad values are
     * errors. Returns 0, or a negative errno-style code with a message in err (capacity
     * errlen) naming the key as key_prefix + key, e.g. "gateways.zlb.url". */
    int (*check)(const char *options_json, const char *key_prefix, char *err, size_t errlen);

    /* Creates an instance: the same options (checked again the same way), the gateway's
     * configured name (borrowed, copy it), host (borrowed, outlives the instance). Starts no
     * I/O. Returns 0 and *out, or a negative code with a message in err. */
    int (*create)(const zd_gw_host *host, const char *name, const char *options_json,
                  const char *key_prefix, void **out, char *err, size_t errlen);

    /* The most notices send() accepts at once (>= 1). */
    int (*max_batch)(void *gw);

    /* Accepts a batch of n notices (1..max_batch). notices and everything they point to are
     * borrowed only during the call: the gateway copies what it keeps. Returns 0: done(...,
     * udata) will be called exactly once. Returns -EINVAL (n out of range, a notice id not
     * as described above), -ENOMEM, or -ECANCELED (being destroyed): done is not called.
     * A gateway may queue accepted batches without bound; callers bound what they have
     * outstanding (stats() tells queued and inflight). */
    int (*send)(void *gw, const zd_notice *notices, size_t n, zd_gw_done_fn done, void *udata);

    /* Sends one notice at once as a test (POST /v1/gateways/{name}:test) and reports the
     * result and the start of the receiver's answer. The same contract as send() with n = 1.
     * May be NULL: the host then uses send() and reports no answer text. */
    int (*test)(void *gw, const zd_notice *notice, zd_gw_test_fn done, void *udata);

    /* Fills *st (may be NULL: then the host reports zeros). */
    void (*stats)(void *gw, zd_gw_stats *st);

    /* Fails every queued and in-flight batch with -ECANCELED (their callbacks run inside this
     * call) and frees the instance. Called from inside one of the instance's own callbacks,
     * the cancelling and freeing happen right after that callback returns. */
    void (*destroy)(void *gw);
} zd_gateway_type;

/* The exported plugin entry point (see ZD_GATEWAY_PLUGIN_SYMBOL). */
typedef const zd_gateway_type *const *(*zd_gateway_plugin_fn)(unsigned host_abi_version);

#endif
