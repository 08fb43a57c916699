/* The policy document (SPEC §4): a POST /v1/policies body checked field by field, its canonical
 * digest, and the stored JSON form the engine reads back (docs/DESIGN.md "Delivery"). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/clock.h"
#include "common/date.h"
#include "common/text.h"
#include "delivery/policy.h"
#include "delivery/template.h"

/* Lengths in bytes of the document's strings: a notice carries them to every recipient (an SMS
 * gateway cuts further), so they are bounded here rather than by the 1 MiB body limit. */
#define TITLE_MAX 512
#define SUMMARY_MAX 8192
#define URL_MAX 2048
#define ISSUER_MAX 256
#define CATEGORY_MAX 64
#define RULE_MAX (16 * 1024) /* ZD_RULE_MAX_BYTES (matcher/rule.h) */
#define TEMPLATE_MAX (16 * 1024)
#define PACE_MAX 10000000L

static const char *const status_names[] = {"scheduled", "matching", "dispatching",
                                           "done",      "active",   "withdrawn"};

const char *zd_policy_status_name(zd_policy_status s)
{
    if ((unsigned)s >= sizeof(status_names) / sizeof(status_names[0]))
        return "unknown";
    return status_names[s];
}

int zd_policy_status_parse(const char *name)
{
    for (size_t i = 0; name && i < sizeof(status_names) / sizeof(status_names[0]); i++)
        if (strcmp(name, status_names[i]) == 0)
            return (int)i;
    return -1;
}

static int fail(zd_policy_error *err, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(zd_policy_error *err, const char *code, const char *field, const char *fmt, ...)
{
    if (err) {
        snprintf(err->code, sizeof(err->code), "%s", code);
        snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
        err->path[0] = '\0';
        err->position = -1;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

void zd_policy_free(zd_policy *p)
{
    if (!p)
        return;
    free(p->title);
    free(p->summary);
    free(p->url);
    free(p->issuer);
    free(p->category);
    free(p->rule);
    free(p->effective_rule);
    for (int i = 0; i < p->nroutes; i++)
        for (int j = 0; j < p->routes[i].n; j++)
            free(p->routes[i].gateways[j]);
    cJSON_Delete(p->templates);
    cJSON_Delete(p->reason_texts);
    free(p);
}

bool zd_policy_id_valid(const char *s, size_t len)
{
    if (len < 1 || len > ZD_POLICY_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* ---- parsing ---------------------------------------------------------------------------- */

static const char *const known_keys[] = {"id",
                                         "title",
                                         "summary",
                                         "url",
                                         "issuer",
                                         "category",
                                         "rule",
                                         "routes",
                                         "templates",
                                         "publish_at",
                                         "deadline",
                                         "urgent",
                                         "match_new_profiles",
                                         "dry_run",
                                         "pace",
                                         "holdout_percent",
                                         "reason_texts"};

/* A string member: *out is a malloc'd copy ("" when absent and not required). */
static int get_string(const cJSON *body, const char *name, bool required, size_t max, char **out,
                      zd_policy_error *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(body, name);
    if (!j) {
        if (required)
            return fail(err, "missing_field", name, "\"%s\" (a string) is required", name);
        *out = strdup("");
        return *out ? 0 : -ENOMEM;
    }
    if (!cJSON_IsString(j))
        return fail(err, "invalid_value", name, "\"%s\" must be a string", name);
    size_t len = strlen(j->valuestring);
    if (required && len == 0)
        return fail(err, "invalid_value", name, "\"%s\" must not be empty", name);
    if (len > max)
        return fail(err, "invalid_value", name, "\"%s\" is longer than %zu bytes", name, max);
    if (!zd_utf8_valid(j->valuestring, len))
        return fail(err, "invalid_value", name, "\"%s\" is not valid UTF-8", name);
    *out = strdup(j->valuestring);
    return *out ? 0 : -ENOMEM;
}

static int get_bool(const cJSON *body, const char *name, bool *out, zd_policy_error *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(body, name);
    if (!j)
        return 0;
    if (!cJSON_IsBool(j))
        return fail(err, "invalid_value", name, "\"%s\" must be true or false", name);
    *out = cJSON_IsTrue(j);
    return 0;
}

static int gateway_known(const zd_policy_ctx *ctx, const char *name)
{
    for (int i = 0; i < ctx->ngateways; i++)
        if (strcmp(ctx->gateways[i], name) == 0)
            return 1;
    return 0;
}

static int parse_routes(const cJSON *body, const zd_policy_ctx *ctx, zd_policy *p,
                        zd_policy_error *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(body, "routes");
    if (!j)
        return fail(err, "missing_field", "routes",
                    "\"routes\" is required: an array of gateway names or fallback chains "
                    "(arrays of gateway names)");
    int n = cJSON_GetArraySize(j);
    if (!cJSON_IsArray(j) || n < 1 || n > ZD_POLICY_ROUTES_MAX)
        return fail(err, "invalid_value", "routes",
                    "\"routes\" must be an array of 1-%d routes, each a gateway name or an array "
                    "(a fallback chain) of gateway names",
                    ZD_POLICY_ROUTES_MAX);
    const cJSON *r;
    cJSON_ArrayForEach(r, j)
    {
        zd_policy_route *route = &p->routes[p->nroutes++];
        const cJSON *one = r, *chain = NULL;
        int len = 1;
        if (cJSON_IsArray(r)) {
            chain = r;
            len = cJSON_GetArraySize(r);
            if (len < 1 || len > ZD_POLICY_CHAIN_MAX)
                return fail(err, "invalid_value", "routes",
                            "route %d: a fallback chain has 1-%d gateways", p->nroutes,
                            ZD_POLICY_CHAIN_MAX);
        } else if (!cJSON_IsString(r)) {
            return fail(err, "invalid_value", "routes",
                        "route %d must be a gateway name or an array of gateway names", p->nroutes);
        }
        for (int k = 0; k < len; k++) {
            if (chain)
                one = cJSON_GetArrayItem(chain, k);
            if (!cJSON_IsString(one))
                return fail(err, "invalid_value", "routes",
                            "route %d: a fallback chain holds gateway names (strings)", p->nroutes);
            const char *name = one->valuestring;
            if (!gateway_known(ctx, name))
                return fail(err, "unknown_gateway", "routes",
                            "route %d: no gateway named \"%.64s\" is configured", p->nroutes, name);
            /* One notice per (profile, route) and per gateway: a gateway twice would send the
             * same notice id twice, which receivers would drop as a duplicate. */
            for (int a = 0; a < p->nroutes; a++)
                for (int b = 0; b < p->routes[a].n; b++)
                    if (strcmp(p->routes[a].gateways[b], name) == 0)
                        return fail(err, "invalid_value", "routes",
                                    "gateway \"%.64s\" appears twice in \"routes\"; a policy "
                                    "uses each gateway at most once",
                                    name);
            route->gateways[route->n] = strdup(name);
            if (!route->gateways[route->n])
                return -ENOMEM;
            route->n++;
        }
    }
    return 0;
}

/* A templates key: "default", "follower" (the following feature's notice) or a configured
 * gateway name. */
static bool template_key_ok(const char *k, const zd_policy_ctx *ctx)
{
    if (strcmp(k, "default") == 0 || strcmp(k, "follower") == 0)
        return true;
    for (int i = 0; i < ctx->ngateways; i++)
        if (strcmp(ctx->gateways[i], k) == 0)
            return true;
    return false;
}

static int parse_templates(const cJSON *body, const zd_policy_ctx *ctx, zd_policy *p,
                           zd_policy_error *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(body, "templates");
    if (!j || cJSON_IsNull(j))
        return 0;
    if (!cJSON_IsObject(j))
        return fail(err, "invalid_value", "templates",
                    "\"templates\" must be an object: \"default\", \"follower\" or a gateway "
                    "name -> {\"title\": \"...\", \"body\": \"...\"}");
    const cJSON *t, *part;
    cJSON_ArrayForEach(t, j)
    {
        char field[64];
        snprintf(field, sizeof(field), "templates.%.40s", t->string);
        if (!template_key_ok(t->string, ctx))
            return fail(err, "unknown_gateway", field,
                        "templates.%.64s: a template is for \"default\", \"follower\" or a "
                        "configured gateway, and no gateway is called \"%.64s\"",
                        t->string, t->string);
        if (!cJSON_IsObject(t))
            return fail(err, "invalid_value", field, "templates.%.64s must be an object of strings",
                        t->string);
        cJSON_ArrayForEach(part, t)
        {
            snprintf(field, sizeof(field), "templates.%.32s.%.20s", t->string, part->string);
            if (strcmp(part->string, "title") != 0 && strcmp(part->string, "body") != 0)
                return fail(err, "unknown_field", field,
                            "templates.%.64s.%.64s: a template has a \"title\" and a \"body\"",
                            t->string, part->string);
            if (!cJSON_IsString(part))
                return fail(err, "invalid_value", field, "templates.%.64s.%.64s must be a string",
                            t->string, part->string);
            size_t len = strlen(part->valuestring);
            if (len > TEMPLATE_MAX)
                return fail(err, "invalid_value", field,
                            "templates.%.64s.%.64s is longer than %d bytes", t->string,
                            part->string, TEMPLATE_MAX);
            if (!zd_utf8_valid(part->valuestring, len))
                return fail(err, "invalid_value", field, "templates.%.64s.%.64s is not valid UTF-8",
                            t->string, part->string);
            zd_template *tpl = NULL;
            zd_template_error te;
            int rc = zd_template_compile(part->valuestring, len, ctx->schema, &tpl, &te);
            zd_template_free(tpl);
            if (rc == -ENOMEM)
                return rc;
            if (rc != 0) {
                fail(err, "invalid_template", field, "templates.%.32s.%.20s: %s", t->string,
                     part->string, te.message);
                snprintf(err->path, sizeof(err->path), "%s", te.path);
                err->position = te.position;
                return rc;
            }
        }
    }
    p->templates = cJSON_Duplicate(j, 1);
    return p->templates ? 0 : -ENOMEM;
}

/* reason_texts: an object of strings; that its keys are clauses of the rule is checked where
 * the rule is compiled (the API). */
static int parse_reason_texts(const cJSON *body, zd_policy *p, zd_policy_error *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(body, "reason_texts");
    if (!j || cJSON_IsNull(j))
        return 0;
    if (!cJSON_IsObject(j))
        return fail(err, "invalid_value", "reason_texts",
                    "\"reason_texts\" must be an object: a clause of the rule as written -> the "
                    "wording of that reason");
    const cJSON *t;
    cJSON_ArrayForEach(t, j)
    {
        if (!cJSON_IsString(t) || !t->valuestring[0] || strlen(t->valuestring) > 512)
            return fail(err, "invalid_value", "reason_texts",
                        "reason_texts values are non-empty strings of at most 512 bytes");
    }
    p->reason_texts = cJSON_Duplicate(j, 1);
    return p->reason_texts ? 0 : -ENOMEM;
}

static int parse_times(const cJSON *body, zd_policy *p, zd_policy_error *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(body, "publish_at");
    if (j && !cJSON_IsNull(j)) {
        if (!cJSON_IsString(j) || zd_rfc3339_parse(j->valuestring, &p->publish_at_ms) != 0 ||
            p->publish_at_ms < 0)
            return fail(err, "invalid_value", "publish_at",
                        "\"publish_at\" must be an RFC 3339 time with an offset, e.g. "
                        "\"2021-06-01T09:00:00+08:00\"");
    }
    j = cJSON_GetObjectItemCaseSensitive(body, "deadline");
    if (j && !cJSON_IsNull(j)) {
        int32_t days;
        if (!cJSON_IsString(j) || zd_date_parse(j->valuestring, &days) != 0)
            return fail(err, "invalid_value", "deadline",
                        "\"deadline\" must be a date \"YYYY-MM-DD\"");
        zd_date_format(days, p->deadline);
    }
    j = cJSON_GetObjectItemCaseSensitive(body, "pace");
    if (j && !cJSON_IsNull(j)) {
        if (!cJSON_IsNumber(j) || j->valuedouble < 1 || j->valuedouble > PACE_MAX ||
            j->valuedouble != (double)(long)j->valuedouble)
            return fail(err, "invalid_value", "pace",
                        "\"pace\" must be an integer 1-%ld (notices per minute)", PACE_MAX);
        p->pace_per_min = (long)j->valuedouble;
    }
    j = cJSON_GetObjectItemCaseSensitive(body, "holdout_percent");
    if (j && !cJSON_IsNull(j)) {
        if (!cJSON_IsNumber(j) || !(j->valuedouble >= 0 && j->valuedouble <= 50))
            return fail(err, "invalid_value", "holdout_percent",
                        "\"holdout_percent\" must be a number 0-50 (a share of the audience "
                        "held out)");
        p->holdout_percent = j->valuedouble;
    }
    return 0;
}

static bool url_ok(const char *u)
{
    const char *rest = NULL;
    if (strncmp(u, "https://", 8) == 0)
        rest = u + 8;
    else if (strncmp(u, "http://", 7) == 0)
        rest = u + 7;
    if (!rest || !*rest || *rest == '/')
        return false;
    for (const char *c = u; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return false;
    return true;
}

/* An id nobody chose: time-ordered, then random, so two instances never collide. */
static void generate_id(char *out, size_t cap, int64_t now_ms)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
        r = (uint32_t)zd_mono_ns() ^ (uint32_t)(now_ms * 2654435761u);
    snprintf(out, cap, "p-%" PRId64 "-%08" PRIx32, now_ms, r);
}

static int set_effective(zd_policy *p)
{
    if (!p->scope[0]) {
        p->effective_rule = strdup(p->rule);
        return p->effective_rule ? 0 : -ENOMEM;
    }
    size_t cap = strlen(p->rule) + strlen(p->scope) + 64;
    p->effective_rule = malloc(cap);
    if (!p->effective_rule)
        return -ENOMEM;
    snprintf(p->effective_rule, cap, "(%s) and region within \"%s\"", p->rule, p->scope);
    return 0;
}

/* ---- canonical digest ------------------------------------------------------------------- */

static cJSON *sorted_copy(const cJSON *j)
{
    if (!cJSON_IsObject(j))
        return cJSON_Duplicate(j, 1);
    cJSON *out = cJSON_CreateObject();
    if (!out)
        return NULL;
    /* Insertion sort of the member names: templates are small. */
    int n = cJSON_GetArraySize(j);
    const cJSON **m = calloc((size_t)n + 1, sizeof(*m));
    if (!m) {
        cJSON_Delete(out);
        return NULL;
    }
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        int i = k++;
        while (i > 0 && strcmp(m[i - 1]->string, it->string) > 0) {
            m[i] = m[i - 1];
            i--;
        }
        m[i] = it;
    }
    for (int i = 0; i < k; i++) {
        cJSON *c = sorted_copy(m[i]);
        if (!c) {
            cJSON_Delete(out);
            out = NULL;
            break;
        }
        cJSON_AddItemToObject(out, m[i]->string, c);
    }
    free(m);
    return out;
}

static cJSON *routes_json(const zd_policy *p)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < p->nroutes; i++) {
        const zd_policy_route *r = &p->routes[i];
        cJSON *e;
        if (r->n == 1) {
            e = cJSON_CreateString(r->gateways[0]);
        } else {
            e = cJSON_CreateArray();
            for (int k = 0; e && k < r->n; k++)
                cJSON_AddItemToArray(e, cJSON_CreateString(r->gateways[k]));
        }
        if (!e) {
            cJSON_Delete(a);
            return NULL;
        }
        cJSON_AddItemToArray(a, e);
    }
    return a;
}

static void add_int(cJSON *o, const char *name, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    cJSON_AddRawToObject(o, name, buf);
}

/* The canonical form: the document's values after parsing, in a fixed order, with the
 * templates' keys sorted, a one-gateway chain written as the gateway, the time as Unix ms and
 * the scope (so that another scope's same body is another policy). Key order, whitespace and
 * equivalent spellings of a value do not change it. */
static int compute_digest(zd_policy *p)
{
    cJSON *c = cJSON_CreateObject();
    if (!c)
        return -ENOMEM;
    cJSON_AddStringToObject(c, "title", p->title);
    cJSON_AddStringToObject(c, "summary", p->summary);
    cJSON_AddStringToObject(c, "url", p->url);
    cJSON_AddStringToObject(c, "issuer", p->issuer);
    cJSON_AddStringToObject(c, "category", p->category);
    cJSON_AddStringToObject(c, "rule", p->rule);
    cJSON_AddItemToObject(c, "routes", routes_json(p));
    cJSON_AddItemToObject(c, "templates",
                          p->templates ? sorted_copy(p->templates) : cJSON_CreateNull());
    /* Only when given: the digests of policies stored before it existed stay the same. */
    if (p->reason_texts)
        cJSON_AddItemToObject(c, "reason_texts", sorted_copy(p->reason_texts));
    add_int(c, "publish_at_ms", p->publish_at_ms);
    cJSON_AddStringToObject(c, "deadline", p->deadline);
    cJSON_AddBoolToObject(c, "urgent", p->urgent);
    cJSON_AddBoolToObject(c, "match_new_profiles", p->match_new_profiles);
    add_int(c, "pace", p->pace_per_min);
    /* Only when set: the digests of policies published before it existed stay the same. */
    if (p->holdout_percent > 0)
        cJSON_AddNumberToObject(c, "holdout_percent", p->holdout_percent);
    cJSON_AddStringToObject(c, "scope", p->scope);
    char *text = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    if (!text)
        return -ENOMEM;
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)text, strlen(text), md);
    free(text);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(p->digest + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int zd_policy_parse(const char *body, size_t len, const zd_policy_ctx *ctx, zd_policy **out,
                    zd_policy_error *err)
{
    *out = NULL;
    cJSON *j = cJSON_ParseWithLength(body, len);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return fail(err, "invalid_json", "", "the body must be a JSON object");
    }
    zd_policy *p = calloc(1, sizeof(*p));
    int rc = -ENOMEM;
    if (!p)
        goto fail;
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof(known_keys) / sizeof(known_keys[0]) && !known; i++)
            known = strcmp(it->string, known_keys[i]) == 0;
        if (!known) {
            rc = fail(err, "unknown_field", it->string, "unknown field \"%.64s\"", it->string);
            goto fail;
        }
    }
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(j, "id");
    if (jid && !cJSON_IsNull(jid)) {
        if (!cJSON_IsString(jid) ||
            !zd_policy_id_valid(jid->valuestring, strlen(jid->valuestring))) {
            rc = fail(err, "invalid_id", "id", "\"id\" must be 1-%d characters of [A-Za-z0-9._-]",
                      ZD_POLICY_ID_MAX);
            goto fail;
        }
        snprintf(p->id, sizeof(p->id), "%s", jid->valuestring);
    } else {
        generate_id(p->id, sizeof(p->id), ctx->now_ms);
    }
    if ((rc = get_string(j, "title", true, TITLE_MAX, &p->title, err)) != 0 ||
        (rc = get_string(j, "summary", false, SUMMARY_MAX, &p->summary, err)) != 0 ||
        (rc = get_string(j, "url", false, URL_MAX, &p->url, err)) != 0 ||
        (rc = get_string(j, "issuer", false, ISSUER_MAX, &p->issuer, err)) != 0 ||
        (rc = get_string(j, "category", false, CATEGORY_MAX, &p->category, err)) != 0 ||
        (rc = get_string(j, "rule", true, RULE_MAX, &p->rule, err)) != 0)
        goto fail;
    if (p->url[0] && !url_ok(p->url)) {
        rc = fail(err, "invalid_value", "url",
                  "\"url\" must be an http:// or https:// URL without spaces");
        goto fail;
    }
    if ((rc = parse_routes(j, ctx, p, err)) != 0 || (rc = parse_templates(j, ctx, p, err)) != 0 ||
        (rc = parse_reason_texts(j, p, err)) != 0 || (rc = parse_times(j, p, err)) != 0 ||
        (rc = get_bool(j, "urgent", &p->urgent, err)) != 0 ||
        (rc = get_bool(j, "match_new_profiles", &p->match_new_profiles, err)) != 0 ||
        (rc = get_bool(j, "dry_run", &p->dry_run, err)) != 0)
        goto fail;
    snprintf(p->owner, sizeof(p->owner), "%s", ctx->owner ? ctx->owner : "");
    snprintf(p->scope, sizeof(p->scope), "%s", ctx->scope ? ctx->scope : "");
    p->created_ms = ctx->now_ms;
    if ((rc = set_effective(p)) != 0 || (rc = compute_digest(p)) != 0)
        goto fail;
    cJSON_Delete(j);
    *out = p;
    return 0;
fail:
    cJSON_Delete(j);
    zd_policy_free(p);
    return rc;
}

/* ---- stored form ------------------------------------------------------------------------ */

char *zd_policy_to_stored(const zd_policy *p)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "id", p->id);
    cJSON_AddStringToObject(o, "title", p->title);
    cJSON_AddStringToObject(o, "summary", p->summary);
    cJSON_AddStringToObject(o, "url", p->url);
    cJSON_AddStringToObject(o, "issuer", p->issuer);
    cJSON_AddStringToObject(o, "category", p->category);
    cJSON_AddStringToObject(o, "rule", p->rule);
    cJSON_AddStringToObject(o, "effective_rule", p->effective_rule);
    cJSON_AddItemToObject(o, "routes", routes_json(p));
    if (p->templates)
        cJSON_AddItemToObject(o, "templates", cJSON_Duplicate(p->templates, 1));
    if (p->reason_texts)
        cJSON_AddItemToObject(o, "reason_texts", cJSON_Duplicate(p->reason_texts, 1));
    add_int(o, "publish_at_ms", p->publish_at_ms);
    cJSON_AddStringToObject(o, "deadline", p->deadline);
    cJSON_AddBoolToObject(o, "urgent", p->urgent);
    cJSON_AddBoolToObject(o, "match_new_profiles", p->match_new_profiles);
    add_int(o, "pace", p->pace_per_min);
    if (p->holdout_percent > 0)
        cJSON_AddNumberToObject(o, "holdout_percent", p->holdout_percent);
    cJSON_AddStringToObject(o, "owner", p->owner);
    cJSON_AddStringToObject(o, "scope", p->scope);
    add_int(o, "created_ms", p->created_ms);
    cJSON_AddStringToObject(o, "digest", p->digest);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int stored_string(const cJSON *o, const char *name, char **out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
    *out = strdup(cJSON_IsString(j) ? j->valuestring : "");
    return *out ? 0 : -ENOMEM;
}

static int stored_fixed(const cJSON *o, const char *name, char *out, size_t cap)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
    if (j && !cJSON_IsString(j))
        return -EINVAL;
    if (j && strlen(j->valuestring) >= cap)
        return -EINVAL;
    snprintf(out, cap, "%s", j ? j->valuestring : "");
    return 0;
}

static int64_t stored_int(const cJSON *o, const char *name)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(j) ? (int64_t)j->valuedouble : 0;
}

int zd_policy_from_stored(const char *json, size_t len, zd_policy **out)
{
    *out = NULL;
    cJSON *o = cJSON_ParseWithLength(json, len);
    zd_policy *p = calloc(1, sizeof(*p));
    int rc = -ENOMEM;
    if (!p)
        goto fail;
    rc = -EINVAL;
    if (!cJSON_IsObject(o))
        goto fail;
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (!cJSON_IsString(jid) || !zd_policy_id_valid(jid->valuestring, strlen(jid->valuestring)))
        goto fail;
    snprintf(p->id, sizeof(p->id), "%s", jid->valuestring);
    const cJSON *routes = cJSON_GetObjectItemCaseSensitive(o, "routes"), *r;
    int nr = cJSON_GetArraySize(routes);
    if (!cJSON_IsArray(routes) || nr < 1 || nr > ZD_POLICY_ROUTES_MAX)
        goto fail;
    cJSON_ArrayForEach(r, routes)
    {
        zd_policy_route *route = &p->routes[p->nroutes++];
        int n = cJSON_IsArray(r) ? cJSON_GetArraySize(r) : 1;
        if (n < 1 || n > ZD_POLICY_CHAIN_MAX)
            goto fail;
        for (int k = 0; k < n; k++) {
            const cJSON *g = cJSON_IsArray(r) ? cJSON_GetArrayItem(r, k) : r;
            if (!cJSON_IsString(g))
                goto fail;
            if (!(route->gateways[route->n] = strdup(g->valuestring))) {
                rc = -ENOMEM;
                goto fail;
            }
            route->n++;
        }
    }
    rc = -ENOMEM;
    if (stored_string(o, "title", &p->title) || stored_string(o, "summary", &p->summary) ||
        stored_string(o, "url", &p->url) || stored_string(o, "issuer", &p->issuer) ||
        stored_string(o, "category", &p->category) || stored_string(o, "rule", &p->rule) ||
        stored_string(o, "effective_rule", &p->effective_rule))
        goto fail;
    rc = -EINVAL;
    if (stored_fixed(o, "deadline", p->deadline, sizeof(p->deadline)) ||
        stored_fixed(o, "owner", p->owner, sizeof(p->owner)) ||
        stored_fixed(o, "scope", p->scope, sizeof(p->scope)) ||
        stored_fixed(o, "digest", p->digest, sizeof(p->digest)))
        goto fail;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "templates");
    if (cJSON_IsObject(t) && !(p->templates = cJSON_Duplicate(t, 1))) {
        rc = -ENOMEM;
        goto fail;
    }
    t = cJSON_GetObjectItemCaseSensitive(o, "reason_texts");
    if (cJSON_IsObject(t) && !(p->reason_texts = cJSON_Duplicate(t, 1))) {
        rc = -ENOMEM;
        goto fail;
    }
    p->publish_at_ms = stored_int(o, "publish_at_ms");
    p->pace_per_min = (long)stored_int(o, "pace");
    const cJSON *ho = cJSON_GetObjectItemCaseSensitive(o, "holdout_percent");
    p->holdout_percent = cJSON_IsNumber(ho) ? ho->valuedouble : 0;
    p->created_ms = stored_int(o, "created_ms");
    p->urgent = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "urgent"));
    p->match_new_profiles = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "match_new_profiles"));
    cJSON_Delete(o);
    *out = p;
    return 0;
fail:
    cJSON_Delete(o);
    zd_policy_free(p);
    return rc;
}
