/* Notice text: what one profile receives from one policy through one gateway. A policy without
 * templates sends its own title and summary; with templates, the gateway's (or the default)
 * template rendered for the profile (delivery/template.h). Pure: no Redis, no event loop. */
#ifndef ZD_NOTICE_H
#define ZD_NOTICE_H

#include <stddef.h>

#include <zhida/gateway.h>

#include "delivery/policy.h"
#include "delivery/template.h"

struct cJSON;

/* Room for a notice id "policy:profile:gateway" and its NUL. */
#define ZD_NOTICE_ID_MAX (ZD_POLICY_ID_MAX + 1 + 128 + 1 + 32 + 1)

/* A policy's templates compiled once: per key of its "templates" object ("default", a gateway
 * name, "follower"), a title and a body, either may be absent. */
typedef struct zd_notice_tpls zd_notice_tpls;

/* Compiles p->templates (borrowed; read only now) with schema (borrowed, may be NULL).
 * *out is NULL when p has no templates. Returns 0, -EINVAL (a template that does not compile:
 * publish refuses those, so only a document from elsewhere), or -ENOMEM. Caller frees with
 * zd_notice_tpls_free(). */
int zd_notice_tpls_new(const zd_policy *p, const zd_schema *schema, zd_notice_tpls **out);
/* zd_notice_tpls_free(NULL) is a no-op. */
void zd_notice_tpls_free(zd_notice_tpls *t);
/* What the templates a notice through gateway would render read (ZD_TPL_USES_* flags);
 * gateway NULL: any gateway's. 0 for t NULL. */
unsigned zd_notice_tpls_uses(const zd_notice_tpls *t, const char *gateway);

/* The title and body templates for gateway: its own, else the default's; NULL when neither
 * has one (the policy's title / summary is sent). Borrowed from t. */
const zd_template *zd_notice_tpl_title(const zd_notice_tpls *t, const char *gateway);
const zd_template *zd_notice_tpl_body(const zd_notice_tpls *t, const char *gateway);

/* What personalizes one notice; everything borrowed, anything may be NULL / 0. */
typedef struct zd_notice_data {
    const zd_notice_tpls *tpls;  /* NULL: the policy's own title and summary */
    zd_escape escape;            /* of the gateway's type (zd_escape_for_type) */
    const struct cJSON *fields;  /* the profile's "fields" */
    const struct cJSON *profile; /* the profile document (attrs, kind, region, tags) */
    const char *reasons;         /* the reasons text (matcher/reasons.h) */
} zd_notice_data;

/* Fills *out for policy p, profile profile_id, gateway name gateway and contact to ("" for the
 * inbox), attempt number attempt (1 for the first), personalized by d (may be NULL). The id
 * "policy:profile:gateway" is written into idbuf (capacity ZD_NOTICE_ID_MAX). When a template
 * was rendered, *text receives one malloc'd buffer that out->title and out->body point into
 * (caller frees it once the notice is done with), else NULL; every other string of *out is
 * borrowed from p or the arguments and valid as long as they are. Returns 0, -EINVAL when the
 * id does not fit, or -ENOMEM. */
int zd_notice_build(const zd_policy *p, const char *profile_id, const zd_notice_data *d,
                    const char *gateway, const char *to, int attempt, zd_notice *out, char *idbuf,
                    char **text);

#endif
