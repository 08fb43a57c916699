/* Preconditions of a profile write (RFC 9110 §13.1): If-Match and If-None-Match over entity
 * tags that are the profile's version as a strong ETag, "<version>". Plain C, unit-tested. */
#ifndef ZD_PRECOND_H
#define ZD_PRECOND_H

#include <stdbool.h>
#include <stdint.h>

#include <zhida/error.h>

#define ZD_PRECOND_TAGS_MAX 16 /* entity tags per header */
#define ZD_ETAG_MAX 24         /* "\"<20 digits>\"" and the NUL */

typedef struct zd_precond {
    bool match, match_any; /* If-Match was given; it is "*" */
    bool none, none_any;   /* If-None-Match was given; it is "*" */
    /* The versions the tags name. If-Match compares strongly: a weak tag (W/"3") never
     * matches and is left out; If-None-Match compares weakly, so it keeps them. A tag that is
     * no version ("abc") matches nothing and is left out too. */
    uint64_t match_v[ZD_PRECOND_TAGS_MAX], none_v[ZD_PRECOND_TAGS_MAX];
    int nmatch, nnone;
} zd_precond;

/* Reads the two header values (either may be NULL: absent). Returns 0, or -EINVAL with err
 * naming the header (code "bad_request", field "If-Match" or "If-None-Match") when a value is
 * not "*" or a comma-separated list of at most ZD_PRECOND_TAGS_MAX entity tags. */
int zd_precond_parse(const char *if_match, const char *if_none_match, zd_precond *out,
                     zd_error *err);

/* Whether the write may go ahead against the current state: exists, and version when it
 * does. With no header this is always true. */
bool zd_precond_holds(const zd_precond *p, bool exists, uint64_t version);

/* Whether the preconditions can be checked by the store's own compare-and-write in the same
 * script as the write (profiles/store.h `expect`): none at all (*expect = NULL), If-Match with
 * one version ("<version>", written into buf) or If-None-Match: * ("-"). Otherwise the caller
 * reads the profile first, checks zd_precond_holds() and writes expecting what it read. */
bool zd_precond_direct(const zd_precond *p, char buf[ZD_ETAG_MAX], const char **expect);

/* Whether any header was given. */
bool zd_precond_any(const zd_precond *p);

/* The ETag of a version: "\"<version>\"" into buf; returns buf. */
const char *zd_etag(uint64_t version, char buf[ZD_ETAG_MAX]);

#endif
