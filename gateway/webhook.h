/* The built-in "webhook" gateway: notices POSTed as {"notices": [...]} with Standard Webhooks
 * signatures, over libcurl's multi interface on zhidad's loop (SPEC §5, docs/GATEWAYS.md). */
#ifndef ZD_WEBHOOK_H
#define ZD_WEBHOOK_H

#include <stddef.h>

#include <zhida/gateway.h>

#include "gateway/sign.h"

extern const zd_gateway_type zd_webhook_type;

/* Most secrets at once: the current one plus those of a key rotation in progress. */
#define ZD_WEBHOOK_SECRETS_MAX 8
#define ZD_WEBHOOK_HEADERS_MAX 32

/* The webhook's options (docs/CONFIG.md, "webhook"). */
typedef struct zd_webhook_opts {
    char *url;
    int nsecrets;
    zd_sign_key secrets[ZD_WEBHOOK_SECRETS_MAX];
    int batch;       /* notices per request, 1..1000 [100] */
    long timeout_ms; /* per request, from the moment it is handed to libcurl [10000] */
    int concurrency; /* requests in flight at once [16] */
    double rate;     /* requests per second, 0 = unlimited [0] */
    char *ca_file;   /* NULL: the system's CA store */
    int nheaders;
    char *headers[ZD_WEBHOOK_HEADERS_MAX]; /* "Name: value" lines */
} zd_webhook_opts;

/* Parses and checks options_json (the gateway's object without the host's keys) into *o;
 * errors name the key as key_prefix + key. 0, or -EINVAL/-ENOMEM with a message in err. On
 * success the caller frees with zd_webhook_opts_free(). */
int zd_webhook_opts_parse(const char *options_json, const char *key_prefix, zd_webhook_opts *o,
                          char *err, size_t errlen);
/* Frees what *o owns and wipes the secrets; *o zeroed is a no-op. */
void zd_webhook_opts_free(zd_webhook_opts *o);

#endif
