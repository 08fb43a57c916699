/* The built-in "sms_http" gateway: one notice per HTTP request to an SMS provider, the body
 * made from a template, the provider's answer mapped to delivered / transient / permanent,
 * over the same libcurl multi glue as the webhook (gateway/curl_ev.c). The template and the
 * answer mapping are pure functions here, tested without a loop (tests/unit/test_sms_http.c).
 * Options: docs/CONFIG.md, "sms_http". */
#ifndef ZD_SMS_HTTP_H
#define ZD_SMS_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <zhida/gateway.h>

extern const zd_gateway_type zd_sms_http_type;

#define ZD_SMS_VALUES_MAX 16

typedef enum zd_sms_format { ZD_SMS_JSON, ZD_SMS_FORM } zd_sms_format;

/* One piece of a compiled body template: literal text, or a placeholder. */
typedef enum zd_sms_field {
    ZD_SMS_LITERAL,
    ZD_SMS_TO,
    ZD_SMS_BODY,
    ZD_SMS_ID,
    ZD_SMS_TITLE,
    ZD_SMS_POLICY,
    ZD_SMS_URL,
} zd_sms_field;

typedef struct zd_sms_piece {
    zd_sms_field field;
    const char *text; /* LITERAL: points into the options' template copy */
    size_t len;
} zd_sms_piece;

typedef struct zd_sms_http_opts {
    char *url;
    bool put;          /* "method": "PUT"; default POST */
    char *auth_header; /* "Name: value" or NULL; a secret: never logged */
    zd_sms_format format;
    char *body; /* the template text */
    int npieces;
    zd_sms_piece *pieces;
    /* "answer": {"field": "a.b", "delivered": [...], "permanent": [...]}; field NULL: the HTTP
     * status alone decides (SPEC §5). */
    char *answer_field;
    int ndelivered, npermanent;
    char *delivered[ZD_SMS_VALUES_MAX];
    char *permanent[ZD_SMS_VALUES_MAX];
    long timeout_ms; /* [10000] */
    int concurrency; /* [16] */
    double rate;     /* requests per second, 0 = unlimited [0] */
} zd_sms_http_opts;

/* Parses and checks options_json (the gateway's object without the host's keys) into *o;
 * errors name the key as key_prefix + key, never quote the auth header's value. 0, or
 * -EINVAL/-ENOMEM with a message in err. On success the caller frees with
 * zd_sms_http_opts_free(). */
int zd_sms_http_opts_parse(const char *options_json, const char *key_prefix, zd_sms_http_opts *o,
                           char *err, size_t errlen);
void zd_sms_http_opts_free(zd_sms_http_opts *o);

/* Renders the body for notice n (borrowed): placeholders JSON-escaped (ZD_SMS_JSON, the
 * template puts the quotes) or URL-encoded (ZD_SMS_FORM). Returns a malloc'd NUL-terminated
 * string (caller frees) of *len bytes, or NULL on ENOMEM. */
char *zd_sms_http_render(const zd_sms_http_opts *o, const zd_notice *n, size_t *len);

/* Classifies the provider's answer into r: transport errors and the HTTP status as SPEC §5
 * (gateway/retry.h); a 2xx is then, with an "answer" field configured, DELIVERED when the
 * field's value (a string, or a number or boolean as its JSON text) is one of "delivered",
 * PERMANENT when one of "permanent", and TRANSIENT otherwise (another value, no such field,
 * not JSON). answer[0..len) need not be NUL-terminated. */
void zd_sms_http_classify(const zd_sms_http_opts *o, int curl_rc, long http_status,
                          const char *retry_after, const char *answer, size_t len,
                          long long now_unix_s, zd_gw_result *r);

#endif
