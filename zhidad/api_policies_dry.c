/* POST /v1/policies with "dry_run": true: the funnel the policy would have, nothing stored or
 * sent. matched is its effective rule's audience on the index now (the count a preview of the
 * same rule by the same key gives); each route's no_contact is counted from the recipients'
 * stored contacts, on a uniform random sample above delivery.dry_run_read_max recipients
 * ("estimated": true); the rest of each route is queued. Held-out recipients (holdout_percent)
 * are counted without reading them; muted ones from their stored prefs (category and gateways).
 * Not simulated: quiet hours (deferred depends on when it is sent), the frequency cap (capped
 * depends on the other policies sent by then) and duplicates. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/clock.h"
#include "common/date.h"
#include "delivery/contacts.h"
#include "delivery/prefs.h"
#include "delivery/notice.h"
#include "matcher/reasons.h"
#include "profiles/store.h"
#include "matcher/audience.h"
#include "matcher/rule.h"
#include "profiles/follower.h"
#include "zhidad/api.h"
#include "zhidad/api_policies.h"
#include "zhidad/http.h"
#include "zhidad/service.h"

typedef struct dry_op {
    zd_service *svc;
    zd_req *req;
    zd_policy *p; /* a copy */
    zd_rule *eff; /* owned: the effective rule */
    uint64_t matched, sampled;
    uint64_t held; /* of the sampled, held out (not read) */
    bool estimated;
    char *sample; /* the recipient whose SMS is measured (owned), NULL without SMS routes */
    cJSON *out;   /* the answer, while the sample is read */
} dry_op;

static void dry_op_free(dry_op *op)
{
    zd_policy_free(op->p);
    zd_rule_free(op->eff);
    free(op->sample);
    cJSON_Delete(op->out);
    free(op);
}

/* The SMS a sample recipient would get through each sms_http gateway of the routes:
 * "sms_sample": {"profile_id", "notices": [{"route", "gateway", "body", "sms"}]}. */
static void dry_sample_got(int status, const char *json, size_t len, uint32_t gid, uint64_t version,
                           void *udata)
{
    (void)gid;
    (void)version;
    dry_op *op = udata;
    zd_service *svc = op->svc;
    zd_profile *prof = NULL;
    zd_error err;
    zd_notice_tpls *tpl = NULL;
    cJSON *ns = NULL;
    if (status == 0 && json &&
        zd_profile_parse(svc->cfg->schema, op->sample, json, len, &prof, &err) == 0 &&
        zd_notice_tpls_new(op->p, svc->cfg->schema, &tpl) == 0) {
        char reasons[2048];
        zd_rule_reasons(op->eff, prof, zd_date_today(svc->cfg->timezone), &svc->names.names,
                        op->p->reason_texts, "，", reasons, sizeof(reasons));
        ns = zd_api_render_notices(svc, op->p, tpl, op->sample, prof->doc,
                                   reasons[0] ? reasons : NULL);
    }
    cJSON *sample = cJSON_AddObjectToObject(op->out, "sms_sample");
    cJSON_AddStringToObject(sample, "profile_id", op->sample);
    cJSON *arr = cJSON_AddArrayToObject(sample, "notices");
    for (cJSON *n = ns ? ns->child : NULL; n; n = n->next) {
        const cJSON *sms = cJSON_GetObjectItemCaseSensitive(n, "sms");
        if (!sms)
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, o);
        cJSON_AddItemToObject(o, "route",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(n, "route"), 1));
        cJSON_AddItemToObject(o, "gateway",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(n, "gateway"), 1));
        cJSON_AddItemToObject(o, "body",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(n, "body"), 1));
        cJSON_AddItemToObject(o, "sms", cJSON_Duplicate(sms, 1));
    }
    cJSON_Delete(ns);
    zd_notice_tpls_free(tpl);
    zd_profile_free(prof);
    zd_req_reply_json(op->req, 200, op->out);
    op->out = NULL;
    dry_op_free(op);
}

static uint64_t scaled(const dry_op *op, uint64_t n, uint64_t base)
{
    if (op->estimated && base > 0)
        n = (uint64_t)llround((double)n * (double)op->matched / (double)base);
    return n > op->matched ? op->matched : n;
}

static void dry_counted(int status, uint64_t read, const uint64_t *no_contact,
                        const uint64_t *muted, void *udata)
{
    dry_op *op = udata;
    if (status != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable",
                           "could not read the recipients' contacts");
        dry_op_free(op);
        return;
    }
    zd_route_funnel routes[ZD_POLICY_ROUTES_MAX];
    memset(routes, 0, sizeof(routes));
    uint64_t base = read + op->held;
    uint64_t held = scaled(op, op->held, base);
    for (int r = 0; r < op->p->nroutes; r++) {
        uint64_t nc = scaled(op, no_contact[r], base), mu = scaled(op, muted[r], base);
        uint64_t room = op->matched - held;
        if (mu > room)
            mu = room;
        if (nc > room - mu)
            nc = room - mu;
        routes[r].n[ZD_FB_HOLDOUT] = (int64_t)held;
        routes[r].n[ZD_FB_MUTED] = (int64_t)mu;
        routes[r].n[ZD_FB_NO_CONTACT] = (int64_t)nc;
        routes[r].n[ZD_FB_QUEUED] = (int64_t)(op->matched - held - mu - nc);
    }
    cJSON *out = zd_api_funnel_json(op->p, "dry_run", (int64_t)op->matched, routes, true);
    if (!out) {
        zd_req_reply_error(op->req, 500, "out_of_memory", "out of memory");
        dry_op_free(op);
        return;
    }
    cJSON_AddBoolToObject(out, "dry_run", 1);
    cJSON_AddBoolToObject(out, "estimated", op->estimated);
    cJSON_AddNumberToObject(out, "contacts_read", (double)read);
    if (op->sample) {
        op->out = out;
        if (zd_store_get(op->svc->store, op->sample, dry_sample_got, op) == 0)
            return;
        op->out = NULL;
    }
    zd_req_reply_json(op->req, 200, out);
    dry_op_free(op);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Whether gateway `name` is of a type that needs no contact (the inbox). */
static bool contactless(const zd_config *cfg, const char *name)
{
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(cfg->gateways, name);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(g, "type");
    return cJSON_IsString(t) && strcmp(t->valuestring, "inbox") == 0;
}

/* Whether a route of p goes through an sms_http gateway. */
static bool has_sms(const zd_config *cfg, const zd_policy *p)
{
    for (int r = 0; r < p->nroutes; r++)
        for (int g = 0; g < p->routes[r].n; g++) {
            const cJSON *gw =
                cJSON_GetObjectItemCaseSensitive(cfg->gateways, p->routes[r].gateways[g]);
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(gw, "type");
            if (cJSON_IsString(t) && strcmp(t->valuestring, "sms_http") == 0)
                return true;
        }
    return false;
}

void zd_api_policy_dry_run(zd_service *svc, zd_req *req, const zd_policy *p, zd_rule *eff)
{
    const zd_index *ix = svc->follower ? zd_follower_index(svc->follower) : NULL;
    if (!ix) {
        zd_rule_free(eff);
        zd_req_reply_error(req, 503, "not_ready", "the index is not ready");
        return;
    }
    dry_op *op = calloc(1, sizeof(*op));
    if (!op) {
        zd_rule_free(eff);
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        return;
    }
    op->eff = eff;
    char *doc = zd_policy_to_stored(p);
    roaring_bitmap_t *aud = NULL;
    char **ids = NULL;
    int *parts = NULL;
    uint32_t *gids = NULL;
    if (!op || !doc || zd_policy_from_stored(doc, strlen(doc), &op->p) != 0)
        goto nomem;
    op->svc = svc;
    op->req = req;
    /* The effective rule holds the publisher's scope: the same set a scoped preview counts. */
    aud = zd_rule_audience(eff, ix, zd_date_today(svc->cfg->timezone));
    if (!aud)
        goto nomem;
    op->matched = roaring_bitmap_get_cardinality(aud);
    uint64_t k = op->matched;
    long max = svc->cfg->dry_run_read_max;
    gids = malloc((size_t)(k < (uint64_t)max ? k : (uint64_t)max) * sizeof(uint32_t) + 4);
    if (!gids)
        goto nomem;
    if (k > (uint64_t)max) {
        uint64_t seed = 0;
        if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
            seed = (uint64_t)zd_mono_ns();
        int got = zd_audience_sample(aud, (int)max, seed, gids);
        if (got < 0)
            goto nomem;
        k = (uint64_t)got;
        op->estimated = true;
        /* The sample comes in random order; batches go by partition. */
        qsort(gids, k, sizeof(uint32_t), cmp_u32);
    } else {
        roaring_bitmap_to_uint32_array(aud, gids);
    }
    op->sampled = k;
    ids = calloc(k + 1, sizeof(char *));
    parts = calloc(k + 1, sizeof(int));
    if (!ids || !parts)
        goto nomem;
    size_t n = 0;
    for (uint64_t i = 0; i < k; i++) {
        const char *id = zd_index_id(ix, gids[i]);
        if (!id)
            continue;
        if (zd_holdout(p->holdout_percent, p->id, id)) {
            op->held++;
            continue;
        }
        if (!(ids[n] = strdup(id)))
            goto nomem;
        parts[n++] = (int)(gids[i] >> ZD_DENSE_BITS);
    }
    /* The first recipient (by index order) is the sample whose SMS is measured. */
    if (n > 0 && has_sms(svc->cfg, p) && !(op->sample = strdup(ids[0])))
        goto nomem;
    zd_contact_plan plan;
    memset(&plan, 0, sizeof(plan));
    plan.nroutes = p->nroutes;
    snprintf(plan.category, sizeof(plan.category), "%s", p->category);
    for (int r = 0; r < p->nroutes; r++) {
        plan.n[r] = p->routes[r].n;
        for (int g = 0; g < p->routes[r].n; g++) {
            snprintf(plan.gateways[r][g], sizeof(plan.gateways[r][g]), "%s",
                     p->routes[r].gateways[g]);
            plan.contactless[r][g] = contactless(svc->cfg, p->routes[r].gateways[g]);
        }
    }
    free(doc);
    free(gids);
    roaring_bitmap_free(aud);
    int rc = zd_contacts_count(svc->redis, ids, parts, n, &plan, dry_counted, op);
    if (rc != 0) {
        zd_req_reply_error(req, 503, "store_unavailable",
                           "could not read the recipients' contacts");
        dry_op_free(op);
    }
    return;
nomem:
    if (ids)
        for (uint64_t i = 0; i < op->sampled && ids[i]; i++)
            free(ids[i]);
    free(ids);
    free(parts);
    free(gids);
    free(doc);
    if (aud)
        roaring_bitmap_free(aud);
    if (op)
        dry_op_free(op);
    zd_api_count_audience_failure(svc);
    zd_req_reply_error(req, 500, "out_of_memory", "out of memory while computing the audience");
}
