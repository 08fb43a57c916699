/* A policy document (SPEC §4): parsed and checked from a POST /v1/policies body, and kept in
 * Redis in its stored form (the "doc" field of zd:{d:<id>}:meta, docs/DESIGN.md "Delivery").
 * Pure: no Redis, no event loop. The API (zhidad/api_policies.c) parses; the engine
 * (delivery/fanout.c, dispatch.c) reads the stored form back. */
#ifndef ZD_POLICY_H
#define ZD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;
struct zd_schema;

#define ZD_POLICY_ID_MAX 64 /* [A-Za-z0-9._-]{1,64}: safe in a hash tag and a notice id */
#define ZD_POLICY_ROUTES_MAX 8
#define ZD_POLICY_CHAIN_MAX 4 /* gateways in one fallback chain */

typedef enum zd_policy_status {
    ZD_POLICY_SCHEDULED,   /* publish_at in the future */
    ZD_POLICY_MATCHING,    /* its audience is being computed */
    ZD_POLICY_DISPATCHING, /* audience frozen, notices on their way */
    ZD_POLICY_DONE,        /* every notice in a final bucket */
    ZD_POLICY_ACTIVE,      /* done dispatching, match_new_profiles until its deadline */
    ZD_POLICY_WITHDRAWN,
} zd_policy_status;

/* "scheduled", "matching", ...; the status of name, or -1. */
const char *zd_policy_status_name(zd_policy_status s);
int zd_policy_status_parse(const char *name);

/* A route: one gateway, or a fallback chain tried in order. */
typedef struct zd_policy_route {
    int n;                               /* 1..ZD_POLICY_CHAIN_MAX */
    char *gateways[ZD_POLICY_CHAIN_MAX]; /* configured gateway names */
} zd_policy_route;

typedef struct zd_policy {
    char id[ZD_POLICY_ID_MAX + 1];
    char *title, *summary, *url, *issuer, *category; /* never NULL ("" when absent) */
    char *rule;                                      /* as the publisher wrote it */
    char *effective_rule; /* what the audience is computed from: the rule, and for a publisher
                             "(<rule>) and region within \"<scope>\"" */
    int nroutes;          /* 1..ZD_POLICY_ROUTES_MAX */
    zd_policy_route routes[ZD_POLICY_ROUTES_MAX];
    struct cJSON *templates;    /* NULL, or the "templates" object as given (owned): "default",
                                   "follower" or a gateway name -> {"title", "body"}, every text
                                   a template that compiles (delivery/template.h) */
    struct cJSON *reason_texts; /* NULL, or {"<clause as written>": "<wording>"} (owned);
                                   checked against the compiled rule by the API */
    int64_t publish_at_ms;      /* 0: at once */
    char deadline[11];          /* "" or "YYYY-MM-DD" */
    bool urgent, match_new_profiles, dry_run;
    long pace_per_min;      /* "pace": notices per minute, 0 = only the gateways' own limits */
    double holdout_percent; /* 0-50: the share of the audience held out (delivery/prefs.h) */
    /* Server side, not from the body: */
    char owner[64];     /* the API key's name */
    char scope[16];     /* the publisher's region scope, "" for admins */
    int64_t created_ms; /* Unix ms */
    char digest[65];    /* hex SHA-256 of the canonical body: same id + other digest = 409 */
} zd_policy;

/* What parsing needs from the service: the configured gateway names (borrowed) and the
 * caller. Checking the rule compiles is the caller's (it has the schema and segments). */
typedef struct zd_policy_ctx {
    const char *const *gateways; /* configured gateway names */
    int ngateways;
    const char *owner; /* API key name */
    const char *scope; /* publisher scope, "" or NULL for none */
    int64_t now_ms;
    const struct zd_schema *schema; /* NULL: templates' attrs.<name> are not checked */
} zd_policy_ctx;

/* Why a body was refused: an API error code ("invalid_json", "missing_field",
 * "invalid_value", "unknown_field", "unknown_gateway"...) and a message naming the field. */
typedef struct zd_policy_error {
    char code[40];
    char field[64];
    char message[256];
    /* A template error ("invalid_template"): the path and its byte position in the template
     * named by field ("templates.default.body"); position -1 otherwise. */
    char path[64];
    int position;
} zd_policy_error;

/* Parses and checks a POST /v1/policies body. Returns 0 and *out (caller frees with
 * zd_policy_free()), -EINVAL with *err, or -ENOMEM. Without an "id" one is generated. */
int zd_policy_parse(const char *body, size_t len, const zd_policy_ctx *ctx, zd_policy **out,
                    zd_policy_error *err);

/* The stored form (a JSON object, malloc'd, NUL-terminated), and back. zd_policy_from_stored
 * returns 0 and *out, -EINVAL for a document it cannot read, or -ENOMEM. */
char *zd_policy_to_stored(const zd_policy *p);
int zd_policy_from_stored(const char *json, size_t len, zd_policy **out);

void zd_policy_free(zd_policy *p);

/* Whether s[0..len) is a policy id: 1-ZD_POLICY_ID_MAX characters of [A-Za-z0-9._-]. */
bool zd_policy_id_valid(const char *s, size_t len);

#endif
