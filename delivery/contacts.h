/* Which recipients of a policy have no contact for a route (SPEC §4 "no_contact"), counted
 * from the private part of their stored profiles ("dense,version|indexed\nprivate",
 * profiles/store.h) read with HMGET in batches. Used by dry runs; never logs a contact. */
#ifndef ZD_CONTACTS_H
#define ZD_CONTACTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "delivery/policy.h"

typedef struct zd_redis zd_redis;

/* The routes to check: route r has n[r] gateways; contactless[r][g] marks a gateway that needs
 * no contact (the inbox): a route with one never lacks a contact. */
typedef struct zd_contact_plan {
    int nroutes;
    int n[ZD_POLICY_ROUTES_MAX];
    char gateways[ZD_POLICY_ROUTES_MAX][ZD_POLICY_CHAIN_MAX][40];
    bool contactless[ZD_POLICY_ROUTES_MAX][ZD_POLICY_CHAIN_MAX];
    char category[128]; /* the policy's: a profile that muted it is muted on every route */
} zd_contact_plan;

/* Profiles read per HMGET, and HMGETs in flight at once. */
#define ZD_CONTACTS_BATCH 1000
#define ZD_CONTACTS_INFLIGHT 4

/* status 0 with the number of profiles read and, per route, how many of them are muted (the
 * policy's category, or every gateway of the route they have a contact for... see
 * delivery/dispatch.c: a muted gateway is skipped, and none left after one was is muted) and
 * how many have a contact for none of its gateways (a profile erased meanwhile counts as
 * having none); or a negative code. The arrays are valid only during the callback. */
typedef void (*zd_contacts_cb)(int status, uint64_t read, const uint64_t *no_contact,
                               const uint64_t *muted, void *udata);

/* Reads profiles ids[0..n) of partitions parts[0..n) (takes ownership of both arrays and of
 * every id string; ids of one partition should be consecutive: a batch holds one partition's)
 * and counts them against plan (copied). Returns 0 (cb will be called exactly once) or a
 * negative code (it will not; the arrays are freed). */
int zd_contacts_count(zd_redis *r, char **ids, int *parts, size_t n, const zd_contact_plan *plan,
                      zd_contacts_cb cb, void *udata);

#endif
