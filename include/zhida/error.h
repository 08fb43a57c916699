/* zhida's one error convention: 0 on success, a negative errno-style code on failure,
 * plus a zd_error detail record for errors that reach a user. */
#ifndef ZHIDA_ERROR_H
#define ZHIDA_ERROR_H

#include <errno.h>
#include <stddef.h>

/* Codes are negated errno values so they print with zd_strerror() and compose with libc. */
#define ZD_OK 0

/* A user-facing error: a stable machine code, a message that names what was wrong, and the
 * field (attribute, key, parameter) it concerns. Never holds personal data. Plain value type:
 * embed it, nothing to free. */
typedef struct zd_error {
    char code[40];     /* e.g. "invalid_type", "unknown_attribute", "bad_request" */
    char field[64];    /* the attribute / key / parameter concerned, "" if none */
    char message[320]; /* human-readable, names the thing that was wrong */
} zd_error;

/* Returns a static description of a negative errno-style code. */
const char *zd_strerror(int err);

/* Fills e (which may be NULL) and returns -EINVAL, so callers can `return zd_error_set(...)`.
 * field may be NULL. */
int zd_error_set(zd_error *e, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
