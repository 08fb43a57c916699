/* delivery/policy.c: parsing and checking a POST /v1/policies body, the canonical digest, the
 * stored form's round trip; common/date.c's RFC 3339 times. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/date.h"
#include "delivery/policy.h"

static const char *const gws[] = {"inbox", "zlb", "sms", "email"};

static zd_policy_ctx ctx(const char *scope)
{
    zd_policy_ctx c = {gws, 4, "ops", scope, 1622509200000, NULL};
    return c;
}

static int parse(const char *body, const char *scope, zd_policy **p, zd_policy_error *e)
{
    zd_policy_ctx c = ctx(scope);
    memset(e, 0, sizeof(*e));
    return zd_policy_parse(body, strlen(body), &c, p, e);
}

/* The error of a body that must be refused: its code and field. */
static void refused(const char *body, const char *code, const char *field)
{
    zd_policy *p = NULL;
    zd_policy_error e;
    int rc = parse(body, NULL, &p, &e);
    CHECK_INT(rc, -EINVAL);
    CHECK(p == NULL);
    CHECK_STR(e.code, code);
    CHECK_STR(e.field, field);
    if (rc != -EINVAL || strcmp(e.code, code) != 0)
        fprintf(stderr, "  body: %s -> %s %s: %s\n", body, e.code, e.field, e.message);
    zd_policy_free(p);
}

#define BASE "\"title\":\"t\",\"rule\":\"kind = \\\"enterprise\\\"\",\"routes\":[\"inbox\"]"

static void test_full(void)
{
    const char *body =
        "{\"id\":\"hz-2021.wengang_1\",\"title\":\"杭州市小微企业稳岗补贴\",\"summary\":\"s\","
        "\"url\":\"https://example.cn/p?x=1\",\"issuer\":\"杭州市人力社保局\",\"category\":"
        "\"employment\",\"rule\":\"employees < 300\",\"routes\":[\"inbox\",[\"zlb\",\"sms\"]],"
        "\"templates\":{\"default\":{\"title\":\"{{policy.title}}\",\"body\":\"b\"},"
        "\"sms\":{\"body\":\"x\"}},\"publish_at\":\"2021-06-01T09:00:00+08:00\","
        "\"deadline\":\"2021-07-01\",\"urgent\":true,\"match_new_profiles\":true,"
        "\"dry_run\":false,\"pace\":600}";
    zd_policy *p = NULL;
    zd_policy_error e;
    CHECK_INT(parse(body, NULL, &p, &e), 0);
    if (!p) {
        fprintf(stderr, "%s %s %s\n", e.code, e.field, e.message);
        return;
    }
    CHECK_STR(p->id, "hz-2021.wengang_1");
    CHECK_STR(p->title, "杭州市小微企业稳岗补贴");
    CHECK_STR(p->url, "https://example.cn/p?x=1");
    CHECK_STR(p->effective_rule, "employees < 300");
    CHECK_INT(p->nroutes, 2);
    CHECK_INT(p->routes[0].n, 1);
    CHECK_STR(p->routes[0].gateways[0], "inbox");
    CHECK_INT(p->routes[1].n, 2);
    CHECK_STR(p->routes[1].gateways[1], "sms");
    CHECK(p->templates && cJSON_IsObject(p->templates));
    CHECK_INT(p->publish_at_ms, 1622509200000);
    CHECK_STR(p->deadline, "2021-07-01");
    CHECK(p->urgent && p->match_new_profiles && !p->dry_run);
    CHECK_INT(p->pace_per_min, 600);
    CHECK_STR(p->owner, "ops");
    CHECK_INT(strlen(p->digest), 64);

    /* Round trip through the stored form. */
    char *s = zd_policy_to_stored(p);
    CHECK(s != NULL);
    zd_policy *q = NULL;
    CHECK_INT(zd_policy_from_stored(s, strlen(s), &q), 0);
    if (q) {
        CHECK_STR(q->id, p->id);
        CHECK_STR(q->title, p->title);
        CHECK_STR(q->summary, p->summary);
        CHECK_STR(q->issuer, p->issuer);
        CHECK_STR(q->category, p->category);
        CHECK_STR(q->rule, p->rule);
        CHECK_STR(q->effective_rule, p->effective_rule);
        CHECK_INT(q->nroutes, 2);
        CHECK_INT(q->routes[1].n, 2);
        CHECK_STR(q->routes[1].gateways[0], "zlb");
        CHECK(cJSON_Compare(q->templates, p->templates, 1));
        CHECK_INT(q->publish_at_ms, p->publish_at_ms);
        CHECK_STR(q->deadline, p->deadline);
        CHECK(q->urgent && q->match_new_profiles);
        CHECK_INT(q->pace_per_min, 600);
        CHECK_STR(q->owner, "ops");
        CHECK_INT(q->created_ms, p->created_ms);
        CHECK_STR(q->digest, p->digest);
        char *s2 = zd_policy_to_stored(q);
        CHECK_STR(s2, s);
        free(s2);
    }
    zd_policy_free(q);
    free(s);
    zd_policy_free(p);
    CHECK_INT(zd_policy_from_stored("{}", 2, &q), -EINVAL);
    CHECK_INT(zd_policy_from_stored("nope", 4, &q), -EINVAL);
}

static void test_digest(void)
{
    zd_policy *a = NULL, *b = NULL, *c = NULL, *d = NULL, *s = NULL;
    zd_policy_error e;
    /* Key order, whitespace, a one-gateway chain and an equivalent time spelling: one digest. */
    parse("{\"id\":\"x\"," BASE ",\"publish_at\":\"2021-06-01T09:00:00+08:00\","
          "\"templates\":{\"zlb\":{\"title\":\"1\",\"body\":\"2\"}}}",
          NULL, &a, &e);
    parse("{ \"templates\":{\"zlb\":{\"body\":\"2\",\"title\":\"1\"}}, \"publish_at\":"
          "\"2021-06-01T01:00:00Z\", \"routes\":[[\"inbox\"]],\"rule\":\"kind = "
          "\\\"enterprise\\\"\",\"title\":\"t\",\"id\":\"x\",\"dry_run\":true}",
          NULL, &b, &e);
    parse("{\"id\":\"x\"," BASE ",\"urgent\":true}", NULL, &c, &e);
    parse("{\"id\":\"x\"," BASE "}", NULL, &d, &e);
    parse("{\"id\":\"x\"," BASE "}", "3301", &s, &e);
    CHECK(a && b && c && d && s);
    if (a && b && c && d && s) {
        CHECK_STR(a->digest, b->digest);
        CHECK(strcmp(c->digest, d->digest) != 0);
        CHECK(strcmp(a->digest, d->digest) != 0);
        CHECK(strcmp(s->digest, d->digest) != 0); /* another scope is another policy */
        CHECK_STR(s->effective_rule, "(kind = \"enterprise\") and region within \"3301\"");
        CHECK_STR(s->scope, "3301");
        CHECK(b->dry_run);
    }
    zd_policy_free(a);
    zd_policy_free(b);
    zd_policy_free(c);
    zd_policy_free(d);
    zd_policy_free(s);
}

static void test_generated_id(void)
{
    zd_policy *a = NULL, *b = NULL;
    zd_policy_error e;
    CHECK_INT(parse("{" BASE "}", NULL, &a, &e), 0);
    CHECK_INT(parse("{" BASE "}", NULL, &b, &e), 0);
    if (a && b) {
        CHECK(zd_policy_id_valid(a->id, strlen(a->id)));
        CHECK(strcmp(a->id, b->id) != 0);
        CHECK_STR(a->digest, b->digest);
        CHECK_STR(a->summary, "");
        CHECK_INT(a->publish_at_ms, 0);
        CHECK(a->templates == NULL);
    }
    zd_policy_free(a);
    zd_policy_free(b);
}

static void test_refusals(void)
{
    refused("[]", "invalid_json", "");
    refused("{", "invalid_json", "");
    refused("{" BASE ",\"colour\":1}", "unknown_field", "colour");
    refused("{" BASE ",\"id\":\"a b\"}", "invalid_id", "id");
    refused("{" BASE ",\"id\":\"\"}", "invalid_id", "id");
    refused("{" BASE ",\"id\":\"x{y}\"}", "invalid_id", "id");
    refused("{" BASE ",\"id\":"
            "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
            "invalid_id", "id");
    refused("{\"rule\":\"kind = \\\"x\\\"\",\"routes\":[\"inbox\"]}", "missing_field", "title");
    refused("{\"title\":\"\",\"rule\":\"kind = \\\"x\\\"\",\"routes\":[\"inbox\"]}",
            "invalid_value", "title");
    refused("{\"title\":5,\"rule\":\"kind = \\\"x\\\"\",\"routes\":[\"inbox\"]}", "invalid_value",
            "title");
    refused("{\"title\":\"t\",\"routes\":[\"inbox\"]}", "missing_field", "rule");
    refused("{\"title\":\"t\",\"rule\":[],\"routes\":[\"inbox\"]}", "invalid_value", "rule");
    refused("{\"title\":\"t\",\"rule\":\"x\"}", "missing_field", "routes");
    refused("{\"title\":\"t\",\"rule\":\"x\",\"routes\":[]}", "invalid_value", "routes");
    refused("{\"title\":\"t\",\"rule\":\"x\",\"routes\":\"inbox\"}", "invalid_value", "routes");
    refused("{\"title\":\"t\",\"rule\":\"x\",\"routes\":[1]}", "invalid_value", "routes");
    refused("{\"title\":\"t\",\"rule\":\"x\",\"routes\":[[]]}", "invalid_value", "routes");
    refused("{\"title\":\"t\",\"rule\":\"x\",\"routes\":[\"fax\"]}", "unknown_gateway", "routes");
    refused("{\"title\":\"t\",\"rule\":\"x\",\"routes\":[[\"zlb\",\"fax\"]]}", "unknown_gateway",
            "routes");
    refused("{\"title\":\"t\",\"rule\":\"x\",\"routes\":[\"zlb\",[\"sms\",\"zlb\"]]}",
            "invalid_value", "routes");
    refused("{\"title\":\"t\",\"rule\":\"x\",\"routes\":[[\"zlb\",\"sms\",\"inbox\",\"email\","
            "\"zlb\"]]}",
            "invalid_value", "routes");
    refused("{" BASE ",\"url\":\"ftp://x\"}", "invalid_value", "url");
    refused("{" BASE ",\"url\":\"javascript:alert(1)\"}", "invalid_value", "url");
    refused("{" BASE ",\"url\":\"https://a b\"}", "invalid_value", "url");
    refused("{" BASE ",\"summary\":3}", "invalid_value", "summary");
    refused("{" BASE ",\"issuer\":{}}", "invalid_value", "issuer");
    refused("{" BASE ",\"category\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            "aaaaaaaaaaa\"}",
            "invalid_value", "category");
    refused("{" BASE ",\"templates\":[]}", "invalid_value", "templates");
    refused("{" BASE ",\"templates\":{\"default\":\"x\"}}", "invalid_value", "templates.default");
    refused("{" BASE ",\"templates\":{\"default\":{\"body\":1}}}", "invalid_value",
            "templates.default.body");
    refused("{" BASE ",\"templates\":{\"fax\":{\"body\":\"x\"}}}", "unknown_gateway",
            "templates.fax");
    refused("{" BASE ",\"templates\":{\"sms\":{\"text\":\"x\"}}}", "unknown_field",
            "templates.sms.text");
    refused("{" BASE ",\"templates\":{\"follower\":{\"body\":\"{{policy.title\"}}}",
            "invalid_template", "templates.follower.body");
    refused("{" BASE ",\"reason_texts\":[]}", "invalid_value", "reason_texts");
    refused("{" BASE ",\"reason_texts\":{\"kind = \\\"enterprise\\\"\":\"\"}}", "invalid_value",
            "reason_texts");
    {
        /* An unknown path: named, with its byte position in that template. */
        zd_policy *p = NULL;
        zd_policy_error e;
        CHECK_INT(parse("{" BASE ",\"templates\":{\"default\":{\"title\":\"{{policy.title}}\","
                        "\"body\":\"您好{{fields.name}}，{{policy.titel}}\"}}}",
                        NULL, &p, &e),
                  -EINVAL);
        CHECK_STR(e.code, "invalid_template");
        CHECK_STR(e.field, "templates.default.body");
        CHECK_STR(e.path, "policy.titel");
        CHECK_INT(e.position, 26);
        CHECK(strstr(e.message, "policy.titel") != NULL);
        zd_policy_free(p);
        /* reason_texts are kept and stored. */
        CHECK_INT(parse("{" BASE ",\"reason_texts\":{\"kind = \\\"enterprise\\\"\":\"是企业\"}}",
                        NULL, &p, &e),
                  0);
        char *st = p ? zd_policy_to_stored(p) : NULL;
        zd_policy *q = NULL;
        CHECK(st && zd_policy_from_stored(st, strlen(st), &q) == 0 && q->reason_texts &&
              cJSON_Compare(q->reason_texts, p->reason_texts, 1));
        free(st);
        zd_policy_free(q);
        zd_policy_free(p);
    }
    refused("{" BASE ",\"publish_at\":\"2021-06-01T09:00:00\"}", "invalid_value", "publish_at");
    refused("{" BASE ",\"publish_at\":\"2021-06-01\"}", "invalid_value", "publish_at");
    refused("{" BASE ",\"publish_at\":\"2021-02-30T09:00:00Z\"}", "invalid_value", "publish_at");
    refused("{" BASE ",\"publish_at\":1622509200}", "invalid_value", "publish_at");
    refused("{" BASE ",\"deadline\":\"2021-7-1\"}", "invalid_value", "deadline");
    refused("{" BASE ",\"deadline\":\"2021-07-01T00:00:00Z\"}", "invalid_value", "deadline");
    refused("{" BASE ",\"urgent\":\"yes\"}", "invalid_value", "urgent");
    refused("{" BASE ",\"match_new_profiles\":1}", "invalid_value", "match_new_profiles");
    refused("{" BASE ",\"dry_run\":null}", "invalid_value", "dry_run");
    refused("{" BASE ",\"pace\":0}", "invalid_value", "pace");
    refused("{" BASE ",\"pace\":1.5}", "invalid_value", "pace");
    refused("{" BASE ",\"pace\":\"10\"}", "invalid_value", "pace");
}

static void test_rfc3339(void)
{
    int64_t ms = 0;
    CHECK_INT(zd_rfc3339_parse("1970-01-01T00:00:00Z", &ms), 0);
    CHECK_INT(ms, 0);
    CHECK_INT(zd_rfc3339_parse("2021-06-01T09:00:00.5+08:00", &ms), 0);
    CHECK_INT(ms, 1622509200500);
    CHECK_INT(zd_rfc3339_parse("2021-06-01T01:00:00.123456z", &ms), 0);
    CHECK_INT(ms, 1622509200123);
    CHECK_INT(zd_rfc3339_parse("2021-05-31T20:00:00-05:00", &ms), 0);
    CHECK_INT(ms, 1622509200000);
    CHECK_INT(zd_rfc3339_parse("2021-06-01T09:00:00+0800", &ms), -EINVAL);
    CHECK_INT(zd_rfc3339_parse("2021-06-01T24:00:00Z", &ms), -EINVAL);
    CHECK_INT(zd_rfc3339_parse("2021-06-01T09:00:00.Z", &ms), -EINVAL);
    CHECK_INT(zd_rfc3339_parse("2021-06-01T09:00:00Zjunk", &ms), -EINVAL);
    char out[32];
    zd_rfc3339_format(1622509200123, out);
    CHECK_STR(out, "2021-06-01T01:00:00.123Z");
    zd_rfc3339_format(0, out);
    CHECK_STR(out, "1970-01-01T00:00:00.000Z");
}

static void test_status_names(void)
{
    CHECK_STR(zd_policy_status_name(ZD_POLICY_WITHDRAWN), "withdrawn");
    CHECK_INT(zd_policy_status_parse("dispatching"), ZD_POLICY_DISPATCHING);
    CHECK_INT(zd_policy_status_parse("nope"), -1);
}

int main(void)
{
    test_full();
    test_digest();
    test_generated_id();
    test_refusals();
    test_rfc3339();
    test_status_names();
    return check_report("policy");
}
