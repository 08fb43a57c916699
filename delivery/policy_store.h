/* A policy's state in Redis (docs/DESIGN.md "Delivery"): create (idempotent / conflict), read
 * with its funnel, list, withdraw, per-recipient notice states, dead letters and their replay.
 * Every script touches the keys of one slot: the policy's {d:<id>} keys, or the registry's
 * {pol} keys, never both. The fan-out and the workers (fanout.c, dispatch.c) write the same
 * keys with the encodings documented here and in DESIGN. */
#ifndef ZD_POLICY_STORE_H
#define ZD_POLICY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "delivery/policy.h"

typedef struct zd_redis zd_redis;

/* Funnel buckets, in the order of SPEC §4; the funnel hash field of route r (0-based, the
 * position in the policy's "routes") and bucket b is "<r>:<name of b>", and "<r>:by:<gateway>"
 * counts the deliveries of route r by each gateway of its chain. */
typedef enum zd_funnel_bucket {
    ZD_FB_MUTED,
    ZD_FB_NO_CONTACT,
    ZD_FB_CAPPED,
    ZD_FB_DUPLICATE,
    ZD_FB_HOLDOUT, /* suppressed: the five above (holdout: delivery/prefs.h) */
    ZD_FB_QUEUED,
    ZD_FB_DEFERRED,
    ZD_FB_RETRYING, /* pending: the three above */
    ZD_FB_DELIVERED,
    ZD_FB_DEAD,
    ZD_FB_WITHDRAWN,
    ZD_FB_READ, /* among delivered: not part of the sum */
    ZD_FB_USEFUL,
    ZD_FB_NOT_USEFUL,
    ZD_FB_COUNT
} zd_funnel_bucket;

/* "muted", "no_contact", ...; the bucket of a name, or -1. */
const char *zd_funnel_bucket_name(zd_funnel_bucket b);
int zd_funnel_bucket_parse(const char *name, size_t len);

typedef struct zd_route_funnel {
    int64_t n[ZD_FB_COUNT];
    int64_t by[ZD_POLICY_CHAIN_MAX]; /* deliveries per gateway of the chain, in chain order */
} zd_route_funnel;

/* What GET /v1/policies/{id} shows: the document, its status and the funnel. */
typedef struct zd_policy_view {
    zd_policy *doc; /* the stored document */
    zd_policy_status status;
    bool frozen;     /* the audience is frozen: matched is known */
    int64_t matched; /* 0 before */
    int64_t started_ms, first_ms, done_ms, withdrawn_ms; /* 0: not yet */
    int64_t seq;                                         /* listing order (0 when unknown) */
    int64_t applied_treated, applied_holdout;     /* reported applications (delivery/outcomes.h) */
    zd_route_funnel routes[ZD_POLICY_ROUTES_MAX]; /* doc->nroutes of them */
} zd_policy_view;

/* ---- create ---- */

typedef enum zd_create_outcome {
    ZD_CREATE_CREATED,  /* stored now */
    ZD_CREATE_EXISTS,   /* the same id with the same digest was there: an idempotent repeat */
    ZD_CREATE_CONFLICT, /* the id holds another document */
} zd_create_outcome;
/* status 0 with the outcome and the policy's status now, or a negative code (-ETIMEDOUT,
 * -ECONNRESET, -EIO...: whether it was stored is unknown; a repeat is safe). */
typedef void (*zd_policy_create_cb)(int status, zd_create_outcome outcome, zd_policy_status now,
                                    void *udata);
/* Stores p (borrowed; copied into the commands) as a new policy: meta (doc, digest, status
 * "scheduled" when publish_at_ms > now_ms else "matching", owner, scope, created_ms,
 * publish_at_ms, routes) and a funnel of zeros, then in the registry ZADD order (a fresh
 * sequence) and SADD active. No job is claimed: the fan-out's sweeper on any instance does
 * that. An EXISTS repeat also completes a registry step a crash left undone. */
int zd_policy_create(zd_redis *r, const zd_policy *p, int64_t now_ms, zd_policy_create_cb cb,
                     void *udata);

/* ---- read ---- */

/* status 0 and the view (NULL when there is no such policy; valid only during the callback),
 * or a negative code. */
typedef void (*zd_policy_get_cb)(int status, const zd_policy_view *v, void *udata);
int zd_policy_get(zd_redis *r, const char *id, zd_policy_get_cb cb, void *udata);

/* Sums of a view: totals over routes into *total (by[] is not summed). */
void zd_policy_view_total(const zd_policy_view *v, zd_route_funnel *total);

/* A page of policies, newest first: status 0 and n views (valid only during the callback) and
 * next_cursor (NULL after the last page), or a negative code. */
typedef void (*zd_policy_list_cb)(int status, const zd_policy_view *const *views, int n,
                                  const char *next_cursor, void *udata);
/* Most policies one list request examines when it filters (by status or scope): the page may
 * then hold fewer than limit, with a cursor where it stopped. */
#define ZD_POLICY_LIST_SCAN_MAX 1000
/* cursor: NULL or an earlier next_cursor (opaque; -EINVAL, cb not called, when it is not
 * one); status_filter: -1 or a zd_policy_status; scope: NULL for every scope, else only the
 * policies of exactly that scope ("" = admins'). limit >= 1. */
int zd_policy_list(zd_redis *r, const char *cursor, int status_filter, const char *scope, int limit,
                   zd_policy_list_cb cb, void *udata);

/* ---- withdraw ---- */

typedef enum zd_withdraw_outcome {
    ZD_WITHDRAW_DONE,    /* withdrawn now */
    ZD_WITHDRAW_MISSING, /* no such policy */
    ZD_WITHDRAW_FINAL,   /* already done or withdrawn: `was` says which */
} zd_withdraw_outcome;
typedef void (*zd_policy_withdraw_cb)(int status, zd_withdraw_outcome outcome, zd_policy_status was,
                                      void *udata);
/* The withdraw script: status withdrawn, withdrawn_ms; per route withdrawn += queued +
 * deferred + retrying, those zeroed; DEL retry; then SREM active in the registry. Notice
 * states are not rewritten: a queued or retrying state of a withdrawn policy means withdrawn. */
int zd_policy_withdraw(zd_redis *r, const char *id, int64_t now_ms, zd_policy_withdraw_cb cb,
                       void *udata);

/* ---- per recipient ---- */

/* A notice state "<b>|<gwi>|<attempt>|<log>" (DESIGN) parsed. An absent state is
 * {'q', 0, 1, ""}. */
typedef struct zd_notice_state {
    char b; /* q r d x w n m c u */
    int gwi, attempt;
    const char *log; /* "t_ms,gwi,o,http;..." borrowed from the text parsed */
} zd_notice_state;
int zd_notice_state_parse(const char *s, size_t len, zd_notice_state *out);

/* status 0 with reached (the profile is in the policy's frozen audience), frozen (there is
 * one), and the states of gid's notices per route (NULL: absent; valid only during the
 * callback), or a negative code. */
typedef void (*zd_policy_states_cb)(int status, bool frozen, bool reached,
                                    const char *const *states, const size_t *lens, void *udata);
int zd_policy_states(zd_redis *r, const char *id, uint32_t gid, int nroutes, zd_policy_states_cb cb,
                     void *udata);

/* ---- dead letters ---- */

/* One dead-letter entry "n <gid.route.gwi.attempt> g <gateway> h <http> e <detail> t <ms>". */
typedef struct zd_dead_letter {
    const char *policy;    /* valid only during the callback */
    const char *stream_id; /* the entry's id in zd:{d:ID}:dead */
    uint32_t gid;
    int route, gwi, attempt;
    const char *gateway, *detail;
    int http_status;
    int64_t at_ms;
} zd_dead_letter;
/* A page of dead letters, policies newest first and within one policy oldest first: status 0
 * and n entries, next_cursor (NULL at the end), or a negative code. */
typedef void (*zd_dead_list_cb)(int status, const zd_dead_letter *items, int n,
                                const char *next_cursor, void *udata);
/* policy: NULL for every policy (iterating the registry's order) — then scope (NULL: every
 * scope) keeps only policies of that scope; gateway: NULL or only entries of that gateway.
 * A request examines a bounded number of entries (ZD_DEAD_SCAN_MAX) and policies; -EINVAL
 * (cb not called) for a cursor this module did not make. */
#define ZD_DEAD_SCAN_MAX 5000
int zd_dead_list(zd_redis *r, const char *policy, const char *scope, const char *gateway,
                 const char *cursor, int limit, zd_dead_list_cb cb, void *udata);

/* Replays dead letters: those of `policy`, or (policy NULL) of every policy of `scope` (NULL:
 * every scope), keeping only gateway's when gateway is not NULL, and only the notices named in
 * wants[0..nwants) ("<gid>.<route>:<gateway>", borrowed) when nwants > 0. Per entry, in one
 * script on the policy's slot: state x -> q on the same gwi, attempt 1 (log kept), funnel dead
 * -> queued, ZADD retry now, XDEL from dead; status done -> dispatching (then SADD active). A
 * withdrawn policy replays nothing. cb gets status 0 and how many were replayed (-ENOENT: the
 * named policy does not exist or is not of scope). */
typedef void (*zd_replay_cb)(int status, long long replayed, void *udata);
int zd_dead_replay(zd_redis *r, const char *policy, const char *scope, const char *gateway,
                   const char *const *wants, int nwants, int64_t now_ms, zd_replay_cb cb,
                   void *udata);

/* All entry points return 0 (cb will be called exactly once) or a negative code (it will not). */

#endif
