/* Rule endpoints (SPEC §3): preview (count, sample, breakdown), explain, and saved segments.
 * A publisher's rules are implicitly restricted to its region scope. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "common/clock.h"
#include "common/date.h"
#include "common/log.h"
#include "common/text.h"
#include "matcher/audience.h"
#include "matcher/rule.h"
#include "matcher/segment_store.h"
#include "profiles/follower.h"
#include "profiles/store.h"
#include "zhidad/api.h"
#include "zhidad/audit.h"
#include "zhidad/breakdown.h"
#include "zhidad/http.h"
#include "zhidad/service.h"
#include "zhida/limits.h"

#define SAMPLE_MAX ZD_PREVIEW_SAMPLE_MAX
/* Distinct breakdown dimensions per preview: each one walks every distinct value of its field
 * (for tags, possibly hundreds of thousands), so their number is what bounds the work. */
#define BREAKDOWN_DIMS_MAX ZD_PREVIEW_BREAKDOWN_MAX
#define SEGMENT_NAME_MAX 64

/* ---- shared: segments, compile errors, scope -------------------------------------------- */

typedef struct segset {
    int n;
    char **names, **texts;
    const char *override_name; /* PUT of a segment: its new text wins over the stored one */
    const char *override_text;
} segset;

static void segset_clear(segset *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->names[i]);
        free(s->texts[i]);
    }
    free(s->names);
    free(s->texts);
    memset(s, 0, sizeof(*s));
}

static const char *seg_lookup(const char *name, void *udata)
{
    const segset *s = udata;
    if (s->override_name && strcmp(name, s->override_name) == 0)
        return s->override_text;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return s->texts[i];
    return NULL;
}

/* One rule request: its parsed body, the segments it may use, the compiled rule. */
typedef struct rule_op {
    zd_service *svc;
    zd_req *req;
    cJSON *body;
    const char *rule_text;
    segset segs;
    zd_rule *rule;
    zd_rule *scope; /* publisher scope: region within "<scope>", or NULL */
    char scope_text[64];
    void (*next)(struct rule_op *op);
    struct timespec t0;
} rule_op;

static void rule_op_free(rule_op *op)
{
    cJSON_Delete(op->body);
    segset_clear(&op->segs);
    zd_rule_free(op->rule);
    zd_rule_free(op->scope);
    free(op);
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Answers a rule error; a rule_too_complex one also carries the rule's size and the limit. */
static void reply_rule_error(zd_req *req, const zd_rule_error *e, const zd_rule *r, long limit)
{
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddNumberToObject(extra, "position", e->position);
    cJSON_AddNumberToObject(extra, "line", e->line);
    cJSON_AddNumberToObject(extra, "column", e->column);
    if (e->segment[0])
        cJSON_AddStringToObject(extra, "segment", e->segment);
    if (r) {
        zd_rule_size sz = zd_rule_measure(r);
        cJSON_AddNumberToObject(extra, "comparisons", (double)sz.comparisons);
        cJSON_AddNumberToObject(extra, "cost", (double)sz.cost);
        cJSON_AddNumberToObject(extra, "limit", (double)limit);
    }
    zd_req_reply_error_extra(req, 400, e->code, e->message, extra);
}

/* Compiles op->rule_text (and the caller's scope); answers the error itself on failure. Every
 * rule the daemon runs or saves comes through here, so the cost limit is checked here, after
 * segment expansion. */
static bool compile(rule_op *op)
{
    zd_rule_error e;
    const zd_schema *s = op->svc->cfg->schema;
    if (zd_rule_compile(s, op->rule_text, strlen(op->rule_text), seg_lookup, &op->segs, &op->rule,
                        &e) != 0) {
        reply_rule_error(op->req, &e, NULL, 0);
        return false;
    }
    long max_cost = op->svc->cfg->rule_max_cost;
    if (zd_rule_check_cost(op->rule, max_cost, "limits.rule_max_cost", &e) != 0) {
        reply_rule_error(op->req, &e, op->rule, max_cost);
        return false;
    }
    const zd_apikey *k = zd_req_key(op->req);
    if (k && k->role == ZD_ROLE_PUBLISHER && k->scope[0]) {
        snprintf(op->scope_text, sizeof(op->scope_text), "region within \"%s\"", k->scope);
        if (zd_rule_compile(s, op->scope_text, strlen(op->scope_text), NULL, NULL, &op->scope,
                            &e) != 0) {
            zd_req_reply_error(op->req, 500, "bad_scope", "the API key's scope is invalid");
            return false;
        }
    }
    return true;
}

static bool mentions_segment(const char *text)
{
    for (const char *p = text; *p; p++)
        if (strncasecmp(p, "segment", 7) == 0)
            return true;
    return false;
}

static void segments_loaded(int status, const zd_segment *segs, int n, void *udata)
{
    rule_op *op = udata;
    if (status != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not read the saved segments");
        rule_op_free(op);
        return;
    }
    op->segs.names = calloc((size_t)n + 1, sizeof(char *));
    op->segs.texts = calloc((size_t)n + 1, sizeof(char *));
    for (int i = 0; i < n && op->segs.names && op->segs.texts; i++) {
        op->segs.names[i] = strdup(segs[i].name);
        op->segs.texts[i] = strdup(segs[i].rule);
        op->segs.n++;
    }
    op->next(op);
}

/* Runs op->next once the segments the rule may need are at hand. */
static void with_segments(rule_op *op, bool always)
{
    if (!always && !mentions_segment(op->rule_text)) {
        op->next(op);
        return;
    }
    if (zd_segments_all(op->svc->redis, segments_loaded, op) != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not read the segments");
        rule_op_free(op);
    }
}

/* Checks that body has only `allowed` keys and a string "rule"; answers errors itself. */
static bool check_body(zd_req *req, const cJSON *body, const char *const *allowed, int nallowed)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, body)
    {
        bool ok = false;
        for (int i = 0; i < nallowed && !ok; i++)
            ok = strcmp(it->string, allowed[i]) == 0;
        if (!ok) {
            zd_req_reply_error(req, 400, "unknown_field", "unknown field \"%.64s\"", it->string);
            return false;
        }
    }
    const cJSON *rule = cJSON_GetObjectItemCaseSensitive(body, "rule");
    if (!cJSON_IsString(rule)) {
        zd_req_reply_error(req, 400, "missing_field", "\"rule\" (a string) is required");
        return false;
    }
    if (strlen(rule->valuestring) > ZD_RULE_MAX_BYTES) {
        zd_req_reply_error(req, 400, "rule_too_large", "rule is longer than %d bytes",
                           ZD_RULE_MAX_BYTES);
        return false;
    }
    return true;
}

static rule_op *rule_op_new(zd_service *svc, zd_req *req, cJSON *body)
{
    rule_op *op = calloc(1, sizeof(*op));
    if (!op) {
        cJSON_Delete(body);
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        return NULL;
    }
    op->svc = svc;
    op->req = req;
    op->body = body;
    const cJSON *rule = cJSON_GetObjectItemCaseSensitive(body, "rule");
    op->rule_text = cJSON_IsString(rule) ? rule->valuestring : "";
    clock_gettime(CLOCK_MONOTONIC, &op->t0);
    return op;
}

static const zd_index *ready_index(zd_service *svc, zd_req *req)
{
    const zd_index *ix = svc->follower ? zd_follower_index(svc->follower) : NULL;
    if (ix)
        return ix;
    if (svc->follower && zd_follower_loaded(svc->follower))
        zd_req_reply_error(req, 503, "index_rebuilding",
                           "the index is being rebuilt from Redis (it could not be trusted: see "
                           "/metrics); retry shortly");
    else
        zd_req_reply_error(req, 503, "not_ready", "the index is still loading");
    return NULL;
}

/* ---- preview ---------------------------------------------------------------------------- */

/* The sample: the first `n` ids in index order, or a uniform random sample drawn with `seed`. */
static int add_sample(cJSON *out, const zd_index *ix, const roaring_bitmap_t *aud, int n,
                      bool random, uint64_t seed)
{
    cJSON *sample = cJSON_AddArrayToObject(out, "sample");
    if (!sample)
        return -ENOMEM;
    if (!random) {
        roaring_uint32_iterator_t it;
        roaring_init_iterator(aud, &it);
        for (int i = 0; i < n && it.has_value; roaring_advance_uint32_iterator(&it)) {
            const char *id = zd_index_id(ix, it.current_value);
            if (id) {
                cJSON_AddItemToArray(sample, cJSON_CreateString(id));
                i++;
            }
        }
        return 0;
    }
    /* As digits: cJSON would print a double above 2^31 in exponent form ("6.2e+15"), which
     * clients read as a float. */
    char digits[24];
    snprintf(digits, sizeof(digits), "%" PRIu64, seed);
    if (!cJSON_AddRawToObject(out, "seed", digits))
        return -ENOMEM;
    uint32_t gids[SAMPLE_MAX];
    int got = zd_audience_sample(aud, n, seed, gids);
    if (got < 0)
        return got;
    for (int i = 0; i < got; i++) {
        const char *id = zd_index_id(ix, gids[i]);
        if (id)
            cJSON_AddItemToArray(sample, cJSON_CreateString(id));
    }
    return 0;
}

/* "clauses" and "narrowing" of a preview with "clauses": true; the scope, when there is one,
 * is the last clause, counted whole, as explain shows it last. */
static int add_clauses(cJSON *out, const zd_rule_counts *c, const rule_op *op,
                       const roaring_bitmap_t *scope)
{
    cJSON *clauses = cJSON_AddArrayToObject(out, "clauses");
    cJSON *steps = cJSON_AddArrayToObject(out, "narrowing");
    if (!clauses || !steps)
        return -ENOMEM;
    for (int i = 0; i < c->nclauses; i++) {
        const zd_rule_clause *k = &c->clauses[i];
        cJSON *o = cJSON_CreateObject();
        if (!o)
            return -ENOMEM;
        cJSON_AddItemToArray(clauses, o);
        cJSON_AddStringToObject(o, "text", k->text);
        if (k->segment)
            cJSON_AddStringToObject(o, "segment", k->segment);
        cJSON_AddNumberToObject(o, "position", k->position);
        cJSON_AddNumberToObject(o, "count", (double)k->count);
        if (k->negated)
            cJSON_AddBoolToObject(o, "negated", 1);
    }
    if (scope) {
        cJSON *o = cJSON_CreateObject();
        if (!o)
            return -ENOMEM;
        cJSON_AddItemToArray(clauses, o);
        cJSON_AddStringToObject(o, "text", op->scope_text);
        cJSON_AddNumberToObject(o, "count", (double)roaring_bitmap_get_cardinality(scope));
        cJSON_AddBoolToObject(o, "scope", 1);
    }
    for (int j = 0; j < c->nsteps; j++) {
        const zd_rule_step *st = &c->steps[j];
        cJSON *o = cJSON_CreateObject();
        if (!o)
            return -ENOMEM;
        cJSON_AddItemToArray(steps, o);
        cJSON_AddStringToObject(o, "text", st->text);
        if (st->segment)
            cJSON_AddStringToObject(o, "segment", st->segment);
        cJSON_AddNumberToObject(o, "position", st->position);
        cJSON_AddNumberToObject(o, "count", (double)st->count);
    }
    return 0;
}

/* The seed of a random sample: the request's, else a fresh one, which the answer reports so
 * that the same sample can be asked for again. 53 bits: it travels as a JSON number. */
static uint64_t sample_seed(const cJSON *jseed)
{
    uint64_t seed = 0;
    if (jseed) {
        seed = (uint64_t)jseed->valuedouble;
    } else if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
        seed = (uint64_t)zd_unix_ms() * UINT64_C(1000000007) ^ (uint64_t)zd_mono_ns();
    }
    return seed & ((UINT64_C(1) << 53) - 1);
}

static void preview_run(rule_op *op)
{
    if (!compile(op)) {
        rule_op_free(op);
        return;
    }
    const zd_index *ix = ready_index(op->svc, op->req);
    if (!ix) {
        rule_op_free(op);
        return;
    }
    const zd_schema *s = op->svc->cfg->schema;
    const cJSON *body = op->body;
    int32_t today = zd_date_today(op->svc->cfg->timezone);
    bool want_clauses = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "clauses"));
    roaring_bitmap_t *aud = NULL, *sc = NULL;
    zd_rule_counts *counts = NULL;
    cJSON *out = NULL;
    /* The scope first: without its bitmap nothing may be answered, not even unscoped counts.
     * (CRoaring 0.2.66's roaring_bitmap_free(NULL) crashes, hence the checks.) */
    bool failed = op->scope && !(sc = zd_rule_audience(op->scope, ix, today));
    if (!failed && want_clauses) {
        /* The clause counts run the rule in source order and hand back its audience. */
        failed = zd_rule_count_clauses(op->rule, ix, today, sc, &counts, &aud) != 0;
    } else if (!failed) {
        aud = zd_rule_audience(op->rule, ix, today);
        if (aud && sc)
            roaring_bitmap_and_inplace(aud, sc);
        failed = !aud;
    }
    if (failed) {
        zd_api_count_audience_failure(op->svc);
        zd_req_reply_error(op->req, 500, "out_of_memory",
                           "out of memory while computing the audience%s; nothing was answered "
                           "from a partial result",
                           op->scope ? " or its scope" : "");
        goto done;
    }
    out = cJSON_CreateObject();
    if (!out)
        goto nomem;
    cJSON_AddNumberToObject(out, "count", (double)roaring_bitmap_get_cardinality(aud));

    /* handle_preview() checked every option. */
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(body, "sample");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(body, "sample_order");
    bool random = jo && strcmp(jo->valuestring, "random") == 0;
    uint64_t seed = random ? sample_seed(cJSON_GetObjectItemCaseSensitive(body, "seed")) : 0;
    if (add_sample(out, ix, aud, js ? js->valueint : 10, random, seed) != 0)
        goto nomem;

    /* At most BREAKDOWN_DIMS_MAX distinct entries. */
    const cJSON *jb = cJSON_GetObjectItemCaseSensitive(body, "breakdown");
    const cJSON *jl = cJSON_GetObjectItemCaseSensitive(body, "breakdown_limit");
    int cap = jl ? jl->valueint : op->svc->cfg->breakdown_max_groups;
    if (jb) {
        cJSON *bd = cJSON_AddObjectToObject(out, "breakdown"), *truncated = NULL;
        const cJSON *spec;
        cJSON_ArrayForEach(spec, jb)
        {
            if (!bd)
                goto nomem;
            int rc = zd_breakdown_add(op->req, s, ix, aud, today, spec->valuestring, cap, bd, out,
                                      &truncated);
            if (rc == -EINVAL)
                goto done;
            if (rc != 0)
                goto nomem;
        }
    }
    if (counts && add_clauses(out, counts, op, sc) != 0)
        goto nomem;
    double ms = ms_since(&op->t0);
    zd_api_observe_match(op->svc, ms);
    cJSON_AddNumberToObject(out, "took_ms", ms);
    zd_req_reply_json(op->req, 200, out);
    out = NULL;
    goto done;
nomem:
    zd_req_reply_error(op->req, 500, "out_of_memory", "out of memory");
done:
    cJSON_Delete(out);
    zd_rule_counts_free(counts);
    if (aud)
        roaring_bitmap_free(aud);
    if (sc)
        roaring_bitmap_free(sc);
    rule_op_free(op);
}

/* Checks "breakdown" and "breakdown_limit" of a preview body, each entry against the schema and
 * the bucket scans against the cost limit, and replaces "breakdown" by its distinct entries
 * (the same string twice counts once). Answers errors itself. */
static bool check_breakdown(zd_req *req, const zd_config *cfg, cJSON *body)
{
    zd_error err;
    const cJSON *jl = cJSON_GetObjectItemCaseSensitive(body, "breakdown_limit");
    if (jl && (!cJSON_IsNumber(jl) || jl->valuedouble < 0 ||
               jl->valuedouble > cfg->breakdown_max_groups || jl->valuedouble != jl->valueint)) {
        zd_error_set(&err, "invalid_value", "breakdown_limit",
                     "\"breakdown_limit\" must be an integer 0-%d (limits.breakdown_max_groups)",
                     cfg->breakdown_max_groups);
        goto fail;
    }
    const cJSON *jb = cJSON_GetObjectItemCaseSensitive(body, "breakdown");
    if (!jb)
        return true;
    if (!cJSON_IsArray(jb)) {
        zd_error_set(&err, "invalid_value", "breakdown",
                     "\"breakdown\" must be an array of field names");
        goto fail;
    }
    cJSON *dims = cJSON_CreateArray();
    if (!dims) {
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        return false;
    }
    int ndims = 0, scans = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, jb)
    {
        if (!cJSON_IsString(it)) {
            zd_error_set(&err, "invalid_value", "breakdown",
                         "\"breakdown\" must be an array of field names");
            cJSON_Delete(dims);
            goto fail;
        }
        bool seen = false;
        const cJSON *d;
        cJSON_ArrayForEach(d, dims) seen |= strcmp(d->valuestring, it->valuestring) == 0;
        if (seen)
            continue;
        if (ndims == BREAKDOWN_DIMS_MAX) {
            zd_error_set(&err, "invalid_value", "breakdown",
                         "\"breakdown\" names more than %d distinct fields; at most %d are "
                         "allowed per preview",
                         BREAKDOWN_DIMS_MAX, BREAKDOWN_DIMS_MAX);
            cJSON_Delete(dims);
            goto fail;
        }
        int n;
        if (zd_breakdown_check(req, cfg->schema, it->valuestring, &n) != 0) {
            cJSON_Delete(dims);
            return false;
        }
        scans += n;
        cJSON_AddItemToArray(dims, cJSON_CreateString(it->valuestring));
        ndims++;
    }
    /* Bucket boundaries are range scans like a rule's number comparisons: together they get
     * a budget of their own, the rule's limit, so that the one limit an operator reads bounds
     * both. */
    if ((long)scans * ZD_RULE_COST_SCAN > cfg->rule_max_cost) {
        zd_error_set(&err, "invalid_breakdown", "breakdown",
                     "the bucket breakdowns have %d boundaries, each a range scan costing %d: "
                     "%ld in all, over the limit of %ld (limits.rule_max_cost)",
                     scans, ZD_RULE_COST_SCAN, (long)scans * ZD_RULE_COST_SCAN,
                     (long)cfg->rule_max_cost);
        cJSON_Delete(dims);
        goto fail;
    }
    if (!cJSON_ReplaceItemInObjectCaseSensitive(body, "breakdown", dims)) {
        cJSON_Delete(dims);
        zd_req_reply_error(req, 500, "out_of_memory", "out of memory");
        return false;
    }
    return true;
fail:
    zd_req_reply_zderror(req, 400, &err);
    return false;
}

/* Checks "clauses", "sample_order" and "seed" of a preview body; answers errors itself. */
static bool check_preview_options(zd_req *req, const cJSON *body)
{
    zd_error err;
    const cJSON *jc = cJSON_GetObjectItemCaseSensitive(body, "clauses");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(body, "sample_order");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(body, "seed");
    bool random = cJSON_IsString(jo) && strcmp(jo->valuestring, "random") == 0;
    if (jc && !cJSON_IsBool(jc)) {
        zd_error_set(&err, "invalid_value", "clauses",
                     "\"clauses\" must be true or false (true: count each clause)");
    } else if (jo && !random && !(cJSON_IsString(jo) && strcmp(jo->valuestring, "index") == 0)) {
        zd_error_set(&err, "invalid_value", "sample_order",
                     "\"sample_order\" must be \"index\" (the default: the first ids in index "
                     "order) or \"random\"");
    } else if (js && !random) {
        zd_error_set(&err, "invalid_value", "seed",
                     "\"seed\" applies only to \"sample_order\": \"random\"");
    } else if (js && (!cJSON_IsNumber(js) || js->valuedouble < 0 ||
                      js->valuedouble >= 9007199254740992.0 ||
                      js->valuedouble != (double)(uint64_t)js->valuedouble)) {
        zd_error_set(&err, "invalid_value", "seed", "\"seed\" must be an integer 0-2^53-1");
    } else {
        return true;
    }
    zd_req_reply_zderror(req, 400, &err);
    return false;
}

static void handle_preview(zd_req *req, void *udata)
{
    static const char *const keys[] = {"rule",    "sample",       "breakdown", "breakdown_limit",
                                       "clauses", "sample_order", "seed"};
    zd_service *svc = udata;
    cJSON *body = zd_req_json(req);
    if (!body)
        return;
    if (!check_body(req, body, keys, 7) || !check_preview_options(req, body)) {
        cJSON_Delete(body);
        return;
    }
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(body, "sample");
    if (js && (!cJSON_IsNumber(js) || js->valuedouble < 0 || js->valuedouble > SAMPLE_MAX ||
               js->valuedouble != js->valueint)) {
        zd_req_reply_error(req, 400, "invalid_value", "\"sample\" must be an integer 0-%d",
                           SAMPLE_MAX);
        cJSON_Delete(body);
        return;
    }
    if (!check_breakdown(req, svc->cfg, body)) {
        cJSON_Delete(body);
        return;
    }
    rule_op *op = rule_op_new(svc, req, body);
    if (!op)
        return;
    op->next = preview_run;
    with_segments(op, false);
}

/* ---- explain ---------------------------------------------------------------------------- */

/* The one answer for "no such profile" and "a profile outside the caller's scope". */
static void reply_no_profile(zd_req *req)
{
    zd_req_reply_error(req, 404, "not_found", "no profile with this id");
}

static void explain_got(int status, const char *json, size_t len, uint32_t gid, uint64_t version,
                        void *udata)
{
    rule_op *op = udata;
    const char *pid = cJSON_GetObjectItemCaseSensitive(op->body, "profile")->valuestring;
    zd_profile *p = NULL;
    zd_error err;
    int32_t today = zd_date_today(op->svc->cfg->timezone);
    if (status != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not read the profile");
    } else if (!json) {
        reply_no_profile(op->req);
    } else if (zd_profile_parse(op->svc->cfg->schema, pid, json, len, &p, &err) != 0) {
        /* Written before validation was as strict as now, or under another schema. */
        zd_req_log(op->req, ZD_LOG_WARN,
                   "explain: stored profile %.128s does not validate (%s: %s)", pid, err.field,
                   err.code);
        zd_req_reply_zderror(op->req, 500, &err);
    } else if (op->scope && !zd_rule_match(op->scope, p, today)) {
        /* Outside the publisher's scope the profile does not exist for it: the same answer
         * as a missing id, so that neither its values nor its existence leak. */
        reply_no_profile(op->req);
    } else {
        cJSON *out = zd_rule_explain(op->rule, p, today);
        if (!out) {
            zd_req_reply_error(op->req, 500, "out_of_memory", "out of memory");
            goto done;
        }
        cJSON_AddStringToObject(out, "profile", pid);
        if (op->scope) {
            /* The publisher's scope is an implicit clause of every rule it runs; only profiles
             * inside it get here, so the clause is always true. */
            cJSON *clauses = cJSON_GetObjectItemCaseSensitive(out, "clauses");
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "text", op->scope_text);
            cJSON_AddBoolToObject(c, "result", 1);
            cJSON_AddBoolToObject(c, "scope", 1);
            cJSON_AddItemToArray(clauses, c);
        }
        zd_req_reply_json(op->req, 200, out);
    }
done:
    zd_profile_free(p);
    rule_op_free(op);
}

static void explain_run(rule_op *op)
{
    if (!compile(op)) {
        rule_op_free(op);
        return;
    }
    const char *pid = cJSON_GetObjectItemCaseSensitive(op->body, "profile")->valuestring;
    if (zd_store_get(op->svc->store, pid, explain_got, op) != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not read the profile");
        rule_op_free(op);
    }
}

static void handle_explain(zd_req *req, void *udata)
{
    static const char *const keys[] = {"rule", "profile"};
    cJSON *body = zd_req_json(req);
    if (!body)
        return;
    if (!check_body(req, body, keys, 2)) {
        cJSON_Delete(body);
        return;
    }
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(body, "profile");
    if (!cJSON_IsString(jp) || !zd_id_valid(jp->valuestring, strlen(jp->valuestring))) {
        zd_req_reply_error(req, 400, "invalid_id",
                           "\"profile\" must be a profile id (1-128 characters of "
                           "[A-Za-z0-9_.:-])");
        cJSON_Delete(body);
        return;
    }
    rule_op *op = rule_op_new(udata, req, body);
    if (!op)
        return;
    op->next = explain_run;
    with_segments(op, false);
}

/* ---- segments --------------------------------------------------------------------------- */

static bool segment_name_ok(zd_req *req, const char *name)
{
    size_t n = name ? strlen(name) : 0;
    bool ok = n >= 1 && n <= SEGMENT_NAME_MAX;
    for (size_t i = 0; i < n && ok; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '-' || c == '.';
    }
    if (!ok)
        zd_req_reply_error(req, 400, "invalid_name",
                           "segment name must be 1-%d characters of [A-Za-z0-9_.-]",
                           SEGMENT_NAME_MAX);
    return ok;
}

static void audit_from(rule_op *op, const char *action, const char *target)
{
    zd_audit_req(op->svc->redis, op->req, action, target);
}

/* The owner a write by this request's key records and must match: "*" for admins. */
static const char *owner_of(zd_req *req, bool *admin)
{
    const zd_apikey *k = zd_req_key(req);
    *admin = !k || k->role == ZD_ROLE_ADMIN;
    return *admin ? ZD_SEGMENT_OWNER_ADMIN : k->scope;
}

static void segment_written(int status, void *udata)
{
    rule_op *op = udata;
    const char *name = zd_req_param(op->req, "name");
    if (status == -EPERM) {
        zd_req_reply_error(op->req, 403, "forbidden",
                           "the segment belongs to another scope; only its owner or an admin "
                           "may change it");
    } else if (status != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not save the segment");
    } else {
        audit_from(op, "segment.put", name);
        cJSON *out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "name", name);
        cJSON_AddStringToObject(out, "rule", op->rule_text);
        zd_req_reply_json(op->req, 200, out);
    }
    rule_op_free(op);
}

static void segment_put_run(rule_op *op)
{
    /* Compiling with the new text in place catches unknown fields, missing segments and
     * cycles through this segment before anything is saved. */
    if (!compile(op)) {
        rule_op_free(op);
        return;
    }
    bool admin;
    const char *owner = owner_of(op->req, &admin);
    if (zd_segments_put(op->svc->redis, zd_req_param(op->req, "name"), op->rule_text, owner, admin,
                        segment_written, op) != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not save the segment");
        rule_op_free(op);
    }
}

static void handle_segment_put(zd_req *req, void *udata)
{
    static const char *const keys[] = {"rule"};
    const char *name = zd_req_param(req, "name");
    if (!segment_name_ok(req, name))
        return;
    cJSON *body = zd_req_json(req);
    if (!body)
        return;
    if (!check_body(req, body, keys, 1)) {
        cJSON_Delete(body);
        return;
    }
    rule_op *op = rule_op_new(udata, req, body);
    if (!op)
        return;
    op->segs.override_name = name;
    op->segs.override_text = op->rule_text;
    op->next = segment_put_run;
    with_segments(op, true);
}

static void segment_got(int status, const zd_segment *seg, void *udata)
{
    zd_req *req = udata;
    if (status != 0) {
        zd_req_reply_error(req, 503, "store_unavailable", "could not read the segment");
    } else if (!seg) {
        zd_req_reply_error(req, 404, "not_found", "no segment with this name");
    } else {
        cJSON *out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "name", seg->name);
        cJSON_AddStringToObject(out, "rule", seg->rule);
        cJSON_AddStringToObject(out, "owner", seg->owner);
        zd_req_reply_json(req, 200, out);
    }
}

static void handle_segment_get(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    const char *name = zd_req_param(req, "name");
    if (!segment_name_ok(req, name))
        return;
    if (zd_segments_get(svc->redis, name, segment_got, req) != 0)
        zd_req_reply_error(req, 503, "store_unavailable", "could not read the segment");
}

static void segments_page(int status, const zd_segment *segs, int n, const char *next_cursor,
                          void *udata)
{
    zd_req *req = udata;
    if (status != 0) {
        zd_req_reply_error(req, 503, "store_unavailable", "could not read the segments");
        return;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(out, "segments");
    for (int i = 0; i < n && list; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(list, o);
        cJSON_AddStringToObject(o, "name", segs[i].name);
        cJSON_AddStringToObject(o, "owner", segs[i].owner);
        cJSON_AddStringToObject(o, "rule", segs[i].rule);
    }
    if (next_cursor)
        cJSON_AddStringToObject(out, "next_cursor", next_cursor);
    else
        cJSON_AddNullToObject(out, "next_cursor");
    zd_req_reply_json(req, 200, out);
}

/* GET /v1/segments?cursor=&limit=: every segment, sorted by name, a page at a time. */
static void handle_segment_list(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    int limit;
    const char *cursor;
    if (!zd_api_list_query(req, &limit, &cursor))
        return;
    int rc = zd_segments_list(svc->redis, cursor, limit, segments_page, req);
    if (rc == -EINVAL)
        zd_api_reply_bad_cursor(req);
    else if (rc != 0)
        zd_req_reply_error(req, 503, "store_unavailable", "could not read the segments");
}

static void segment_deleted(int status, void *udata)
{
    rule_op *op = udata;
    const char *name = zd_req_param(op->req, "name");
    if (status == -EPERM) {
        zd_req_reply_error(op->req, 403, "forbidden",
                           "the segment belongs to another scope; only its owner or an admin "
                           "may delete it");
    } else if (status == -ENOENT) {
        zd_req_reply_error(op->req, 404, "not_found", "no segment with this name");
    } else if (status != 0) {
        zd_req_reply_error(op->req, 503, "store_unavailable", "could not delete the segment");
    } else {
        audit_from(op, "segment.delete", name);
        cJSON *out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "name", name);
        cJSON_AddBoolToObject(out, "deleted", 1);
        zd_req_reply_json(op->req, 200, out);
    }
    rule_op_free(op);
}

static void handle_segment_delete(zd_req *req, void *udata)
{
    zd_service *svc = udata;
    const char *name = zd_req_param(req, "name");
    if (!segment_name_ok(req, name))
        return;
    rule_op *op = rule_op_new(svc, req, NULL);
    if (!op)
        return;
    bool admin;
    const char *owner = owner_of(req, &admin);
    if (zd_segments_del(svc->redis, name, owner, admin, segment_deleted, op) != 0) {
        zd_req_reply_error(req, 503, "store_unavailable", "could not delete the segment");
        rule_op_free(op);
    }
}

int zd_api_rules_register(zd_service *svc)
{
    unsigned readers = ZD_ROLE_VIEWER | ZD_ROLE_PUBLISHER | ZD_ROLE_ADMIN;
    unsigned authors = ZD_ROLE_PUBLISHER | ZD_ROLE_ADMIN;
    int rc = 0;
    rc |= zd_http_route(svc->http, "POST", "/v1/rules:preview", readers, handle_preview, svc);
    rc |= zd_http_route(svc->http, "POST", "/v1/rules:explain", authors, handle_explain, svc);
    rc |= zd_http_route(svc->http, "PUT", "/v1/segments/{name}", authors, handle_segment_put, svc);
    rc |= zd_http_route(svc->http, "GET", "/v1/segments/{name}", readers | ZD_ROLE_APP,
                        handle_segment_get, svc);
    rc |= zd_http_route(svc->http, "GET", "/v1/segments", readers | ZD_ROLE_APP,
                        handle_segment_list, svc);
    rc |= zd_http_route(svc->http, "DELETE", "/v1/segments/{name}", authors, handle_segment_delete,
                        svc);
    return rc ? -EINVAL : 0;
}
