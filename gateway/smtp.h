/* The built-in "smtp" gateway: each notice one e-mail through libcurl's SMTP on the shared
 * one-notice-per-transfer queue (gateway/xfer.c), on zhidad's loop. The message (RFC 5322 +
 * MIME: an RFC 2047 UTF-8 subject, multipart/alternative with text/plain and text/html parts
 * in base64) and the address check are pure functions here, unit-tested without a server.
 * Options: docs/CONFIG.md, "smtp". */
#ifndef ZD_SMTP_H
#define ZD_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zhida/gateway.h>

extern const zd_gateway_type zd_smtp_type;

typedef enum zd_smtp_tls { ZD_SMTP_TLS_TRY, ZD_SMTP_TLS_REQUIRE, ZD_SMTP_TLS_OFF } zd_smtp_tls;

typedef struct zd_smtp_opts {
    char *url;            /* smtp://host[:port] or smtps://host[:port] */
    char *from;           /* the envelope and From: address */
    char *from_name;      /* the From: display name (UTF-8) or NULL */
    char *username;       /* NULL: no AUTH */
    char *password;       /* a secret: never logged */
    zd_smtp_tls starttls; /* smtp:// only: "try" [default], "require", "off" */
    long timeout_ms;      /* [10000] */
    int concurrency;      /* [4] */
    double rate;          /* messages per second, 0 = unlimited [0] */
} zd_smtp_opts;

/* Parses and checks options_json into *o; errors name the key as key_prefix + key and never
 * quote the password. 0, or -EINVAL/-ENOMEM with a message in err; on success the caller frees
 * with zd_smtp_opts_free(). */
int zd_smtp_opts_parse(const char *options_json, const char *key_prefix, zd_smtp_opts *o, char *err,
                       size_t errlen);
void zd_smtp_opts_free(zd_smtp_opts *o);

/* Whether s has the shape of a plain ASCII e-mail address local@domain (1..64 bytes of
 * dot-atom before the '@', a domain of two or more DNS labels after it, at most 254 bytes):
 * what may go into an SMTP RCPT TO without quoting. */
bool zd_smtp_address_ok(const char *s);

/* The whole message for notice n (borrowed) from o->from to n->to, dated unix_ms, with CRLF
 * line ends: a malloc'd NUL-terminated string of *len bytes (caller frees), or NULL on ENOMEM.
 * n->to must have passed zd_smtp_address_ok(). */
char *zd_smtp_message(const zd_smtp_opts *o, const zd_notice *n, int64_t unix_ms, size_t *len);

#endif
