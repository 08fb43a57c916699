/* The API keys the HTTP server authenticates with, replaceable while it runs (SIGHUP). Internal
 * to zhidad/http*.c; plain C. A key set is reference-counted: the server holds its current set
 * and each request that authenticated holds the set its key came from, so the zd_apikey a
 * handler got from zd_req_key() stays valid until its reply even when a reload replaced the
 * set. Use counters live beside the keys and follow a key by its name into the next set. */
#ifndef ZD_HTTP_KEYS_H
#define ZD_HTTP_KEYS_H

#include <stddef.h>

#include "zhidad/http.h"

typedef struct zd_keyset {
    int refs;
    int n;       /* entries: the configured keys first, then retired ones */
    int nactive; /* the configured keys: only these authenticate */
    /* Own copies. Retired entries (keys a reload removed whose counters are not zero) keep
     * their name and role for /metrics and the next key.use record, and have no secret. */
    zd_apikey *keys;
    /* Parallel to keys: requests let through and refused with 403, in total (for /metrics)
     * and since the last zd_http_key_uses(..., reset = true) (for the audit stream). */
    zd_key_uses *total, *since;
} zd_keyset;

/* A set of copies of keys[0..n) (borrowed), holding one reference. prev (may be NULL) is the
 * set it replaces: counters are taken over by key name, and prev's keys that are gone become
 * retired entries. When summary is not NULL it receives (capacity cap) what changed from
 * prev, by name only: "1 added (a); 1 removed (b); 1 changed (c: scope)" or "unchanged".
 * NULL on ENOMEM. */
zd_keyset *zd_keyset_new(const zd_apikey *keys, int n, const zd_keyset *prev, char *summary,
                         size_t cap);
/* Takes one more reference; returns ks. */
zd_keyset *zd_keyset_ref(zd_keyset *ks);
/* Drops a reference; the last one wipes the secrets and frees the set. NULL is a no-op. */
void zd_keyset_unref(zd_keyset *ks);
/* The configured key whose secret is token[0..len), compared in constant time; or NULL. */
const zd_apikey *zd_keyset_find(const zd_keyset *ks, const char *token, size_t len);

/* The configured key named name; or NULL. */
const zd_apikey *zd_keyset_find_name(const zd_keyset *ks, const char *name);

#endif
