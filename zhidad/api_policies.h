/* What the policy endpoints (api_policies.c, api_policies_dry.c, api_deadletters.c) share. */
#ifndef ZD_API_POLICIES_H
#define ZD_API_POLICIES_H

#include <stdbool.h>
#include <stdint.h>

#include "delivery/policy.h"
#include "delivery/policy_store.h"

typedef struct cJSON cJSON;
typedef struct zd_service zd_service;
typedef struct zd_req zd_req;
typedef struct zd_rule zd_rule;

int zd_api_policies_register(zd_service *svc);
int zd_api_deadletters_register(zd_service *svc);
/* POST /v1/policies/{id}/outcomes (api_policies_out.c). */
int zd_api_outcomes_register(zd_service *svc);

/* The caller's scope when it is a publisher (borrowed from its key), else NULL: admins and
 * viewers see every policy. */
const char *zd_api_caller_scope(zd_req *req);
/* Whether the caller may know policy p: a publisher only its own scope's. */
bool zd_api_policy_visible(zd_req *req, const zd_policy *p);
/* The one 404 for a missing policy and for one of another scope. */
void zd_api_reply_no_policy(zd_req *req);
/* Answers 400 for a policy body zd_policy_parse() refused: code, message, field, and for a
 * template error the unknown "path" and its byte "position" in that template. */
void zd_api_reply_policy_error(zd_req *req, const zd_policy_error *err);
/* Checks a policy id from the path; answers 400 invalid_id itself and returns false. */
bool zd_api_policy_id_ok(zd_req *req, const char *id);

/* The SPEC §4 answer {"id", "status", "matched", "notices", "funnel", "routes"} of p (borrowed)
 * with routes[0..p->nroutes) (borrowed), and the document under "policy" when with_doc.
 * Caller owns the result; NULL on ENOMEM. */
cJSON *zd_api_funnel_json(const zd_policy *p, const char *status, int64_t matched,
                          const zd_route_funnel *routes, bool with_doc);

/* POST /v1/policies with "dry_run": true (api_policies_dry.c): answers the funnel as it would
 * be, storing and sending nothing, and with an sms_http gateway in the routes the SMS of a
 * sample recipient ("sms_sample": characters and segments per SMS gateway). p is borrowed for
 * the call only (copied); takes ownership of eff (the compiled effective rule). Answers req
 * itself. */
void zd_api_policy_dry_run(zd_service *svc, zd_req *req, const zd_policy *p, zd_rule *eff);

/* POST /v1/policies:render once the body passed the publish checks (api_policies_render.c):
 * takes ownership of p and eff (the compiled effective rule), reads profile_id (copied) and
 * answers req itself. */
void zd_api_policy_render(zd_service *svc, zd_req *req, zd_policy *p, zd_rule *eff,
                          const char *profile_id);
struct zd_notice_tpls;
/* The notices profile_id (its document doc, borrowed) would get from p through every gateway
 * of its routes: [{"route", "gateway", "type", "title", "body", "sms"?}], "sms" ({"characters",
 * "encoding", "segments"}) for sms_http gateways. reasons may be NULL. Caller owns the result;
 * NULL on ENOMEM. */
cJSON *zd_api_render_notices(zd_service *svc, const zd_policy *p, const struct zd_notice_tpls *tpl,
                             const char *profile_id, const cJSON *doc, const char *reasons);
/* Adds "sms": {"characters", "encoding", "segments"} of text to o. */
void zd_api_add_sms_count(cJSON *o, const char *text);

#endif
