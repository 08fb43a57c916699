/* gateway/gateway.c and the webhook's options: the start-up checks of a "gateways" entry
 * (every error names its key), the type registry, and create/free of a webhook on a loop
 * without sending anything. Sending is tested against real receivers in
 * tests/integration/test_webhook.py. */
#include <stdlib.h>
#include <errno.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "check.h"
#include "gateway/gateway.h"

#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

static int check_text(const char *json, char *err, size_t errlen)
{
    cJSON *o = cJSON_Parse(json);
    if (!o) {
        snprintf(err, errlen, "test: bad JSON");
        return -999;
    }
    int rc = zd_gateway_check("zlb", o, err, errlen);
    cJSON_Delete(o);
    return rc;
}

#define EXPECT_OK(json)                                                                            \
    do {                                                                                           \
        char err_[512] = "";                                                                       \
        int rc_ = check_text(json, err_, sizeof(err_));                                            \
        if (rc_ != 0)                                                                              \
            fprintf(stderr, "unexpected error: %s\n", err_);                                       \
        CHECK_INT(rc_, 0);                                                                         \
    } while (0)

#define EXPECT_ERROR(json, part)                                                                   \
    do {                                                                                           \
        char err_[512] = "";                                                                       \
        CHECK_INT(check_text(json, err_, sizeof(err_)), -EINVAL);                                  \
        if (!strstr(err_, part))                                                                   \
            fprintf(stderr, "error \"%s\" lacks \"%s\"\n", err_, part);                            \
        CHECK(strstr(err_, part) != NULL);                                                         \
        CHECK(strstr(err_, "MfKQ9r8G") == NULL);                                                   \
    } while (0)

static void test_checks(void)
{
    EXPECT_OK("{\"type\": \"webhook\", \"url\": \"http://127.0.0.1:9/x\", \"secret\": \"" SECRET
              "\"}");
    EXPECT_OK("{\"type\": \"webhook\", \"url\": \"https://zlb.example.gov.cn/n\", \"secret\": "
              "[\"" SECRET "\", \"whsec_emhpZGEtdGVzdC1zZWNyZXQtbnVtYmVyLXR3by0zMmI=\"], "
              "\"batch\": 1, \"timeout_ms\": 2500, \"concurrency\": 64, \"rate\": 0.5, "
              "\"max_attempts\": 3, \"retry_base_ms\": 200, \"retry_max_ms\": 60000, "
              "\"headers\": {\"Authorization\": \"Bearer abc\", \"X-Env\": \"prod\"}}");
    EXPECT_OK("{\"type\": \"inbox\", \"max_attempts\": 2}");
    EXPECT_OK("{\"type\": \"sms_http\", \"url\": \"http://127.0.0.1:9/sms\", \"body\": "
              "\"{\\\"to\\\": \\\"{{to}}\\\"}\"}");
    EXPECT_ERROR("{\"type\": \"sms_http\", \"url\": \"anything\"}", "\"gateways.zlb.url\"");
    EXPECT_ERROR(
        "{\"type\": \"sms_http\", \"url\": \"http://x/\", \"body\": \"{{to}}\", \"bdy\": 1}",
        "unknown key \"gateways.zlb.bdy\" (did you mean \"body\"?)");
    EXPECT_ERROR("{\"type\": \"smtp\", \"url\": \"http://x/\", \"from\": \"a@b.cn\"}",
                 "\"gateways.zlb.url\" must be an smtp:// or smtps:// URL");

    EXPECT_ERROR("{\"type\": \"fax\"}", "\"gateways.zlb.type\": unknown gateway type \"fax\"");
    EXPECT_ERROR("{\"type\": \"fax\"}", "webhook, inbox, sms_http, smtp");
    EXPECT_ERROR("{\"type\": 3}", "\"gateways.zlb.type\" must be a non-empty string");
    EXPECT_ERROR("[]", "\"gateways.zlb\" must be an object");
    EXPECT_ERROR("{\"type\": \"inbox\", \"url\": \"http://x/\"}",
                 "unknown key \"gateways.zlb.url\"");
    EXPECT_ERROR("{\"type\": \"inbox\", \"max_attempts\": 0}", "\"gateways.zlb.max_attempts\"");
    EXPECT_ERROR("{\"type\": \"inbox\", \"retry_base_ms\": 5000, \"retry_max_ms\": 1000}",
                 "\"gateways.zlb.retry_max_ms\" must be at least");
    EXPECT_ERROR("{\"type\": \"webhook\", \"secret\": \"" SECRET "\"}",
                 "\"gateways.zlb.url\" is required");
    EXPECT_ERROR("{\"type\": \"webhook\", \"url\": \"ftp://h/x\", \"secret\": \"" SECRET "\"}",
                 "\"gateways.zlb.url\" must be an http:// or https:// URL");
    EXPECT_ERROR("{\"type\": \"webhook\", \"url\": \"http://\", \"secret\": \"" SECRET "\"}",
                 "\"gateways.zlb.url\" is not a valid");
    EXPECT_ERROR("{\"type\": \"webhook\", \"url\": \"http://h/\"}",
                 "\"gateways.zlb.secret\" is required");
    EXPECT_ERROR("{\"type\": \"webhook\", \"url\": \"http://h/\", \"secret\": \"abc\"}",
                 "\"gateways.zlb.secret\" must start with \"whsec_\"");
    EXPECT_ERROR("{\"type\": \"webhook\", \"url\": \"http://h/\", \"secret\": [\"" SECRET
                 "\", \"whsec_c2hvcnQ=\"]}",
                 "\"gateways.zlb.secret[1]\" must decode to 24..64 bytes");
    EXPECT_ERROR("{\"type\": \"webhook\", \"url\": \"http://h/\", \"secret\": "
                 "\"whsec_CHANGE-ME-0123456789\"}",
                 "placeholder");
    EXPECT_ERROR("{\"type\": \"webhook\", \"url\": \"http://h/\", \"secret\": []}",
                 "\"gateways.zlb.secret\" must be a string or a list of 1..8");
    const char *base = "{\"type\": \"webhook\", \"url\": \"http://h/\", \"secret\": \"" SECRET "\"";
    char buf[512];
#define WITH(extra, part)                                                                          \
    do {                                                                                           \
        snprintf(buf, sizeof(buf), "%s, %s}", base, extra);                                        \
        EXPECT_ERROR(buf, part);                                                                   \
    } while (0)
    WITH("\"batch\": 0", "\"gateways.zlb.batch\" must be an integer 1..1000");
    WITH("\"batch\": 1001", "\"gateways.zlb.batch\"");
    WITH("\"batch\": 2.5", "\"gateways.zlb.batch\"");
    WITH("\"timeout_ms\": \"5s\"", "\"gateways.zlb.timeout_ms\"");
    WITH("\"concurrency\": 0", "\"gateways.zlb.concurrency\"");
    WITH("\"rate\": -1", "\"gateways.zlb.rate\"");
    WITH("\"bacth\": 10", "unknown key \"gateways.zlb.bacth\" (did you mean \"batch\"?)");
    WITH("\"headers\": {\"Content-Type\": \"text/plain\"}",
         "\"gateways.zlb.headers.Content-Type\": zhida sets this header itself");
    WITH("\"headers\": {\"webhook-signature\": \"x\"}", "zhida sets this header itself");
    WITH("\"headers\": {\"Bad Name\": \"x\"}", "is not a valid header name");
    WITH("\"headers\": {\"X-A\": \"a\\r\\nX-Injected: 1\"}", "without control characters");
    WITH("\"headers\": {\"X-A\": 1}", "\"gateways.zlb.headers.X-A\" must be a string");
    WITH("\"headers\": []", "\"gateways.zlb.headers\" must be an object");
    WITH("\"ca_file\": \"relative.pem\"", "\"gateways.zlb.ca_file\" must be an absolute path");
    WITH("\"ca_file\": \"/nonexistent/ca.pem\"", "\"gateways.zlb.ca_file\": cannot read");
    WITH("\"max_attempts\": 1001", "\"gateways.zlb.max_attempts\"");
    EXPECT_ERROR("{\"type\": \"webhook\", \"type\": \"inbox\"}",
                 "duplicate key \"gateways.zlb.type\"");
}

static int dummy_check(const char *o, const char *p, char *e, size_t n)
{
    return 0;
}

static void test_registry(void)
{
    CHECK(zd_gateway_type_find("webhook") != NULL);
    CHECK_STR(zd_gateway_type_find("webhook")->name, "webhook");
    CHECK(zd_gateway_type_find("inbox") == NULL); /* reserved: made by delivery/ */
    CHECK(zd_gateway_type_find("fax") == NULL);
    char err[256];
    zd_gateway_type t = *zd_gateway_type_find("webhook");
    CHECK_INT(zd_gateway_type_register(&t, err, sizeof(err)), -EEXIST);
    t.name = "fax";
    t.abi_version = ZD_GATEWAY_ABI_VERSION + 1;
    CHECK_INT(zd_gateway_type_register(&t, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "ABI version") != NULL);
    t.abi_version = ZD_GATEWAY_ABI_VERSION;
    t.send = NULL;
    CHECK_INT(zd_gateway_type_register(&t, err, sizeof(err)), -EINVAL);
    static zd_gateway_type fax;
    fax = *zd_gateway_type_find("webhook");
    fax.name = "fax";
    fax.check = dummy_check;
    CHECK_INT(zd_gateway_type_register(&fax, err, sizeof(err)), 0);
    CHECK(zd_gateway_type_find("fax") == &fax);
    /* A registered type is known to the config check. */
    EXPECT_OK("{\"type\": \"fax\", \"anything\": 1}");
}

static void test_instance(void)
{
    struct event_base *base = event_base_new();
    zd_gw_host host;
    zd_gateway_host_init(&host, base);
    char err[256];
    cJSON *o = cJSON_Parse("{\"type\": \"webhook\", \"url\": \"http://127.0.0.1:9/x\", "
                           "\"secret\": \"" SECRET "\", \"batch\": 7, \"max_attempts\": 4}");
    zd_gateway *g = NULL;
    CHECK_INT(zd_gateway_new(&host, "zlb", o, &g, err, sizeof(err)), 0);
    CHECK(g != NULL);
    if (g) {
        CHECK_STR(zd_gateway_name(g), "zlb");
        CHECK_STR(zd_gateway_type_name(g), "webhook");
        CHECK_INT(zd_gateway_max_batch(g), 7);
        CHECK_INT(zd_gateway_retry_opts(g)->max_attempts, 4);
        CHECK_INT(zd_gateway_retry_opts(g)->base_ms, 1000);
        zd_notice n[8] = {{0}};
        CHECK_INT(zd_gateway_send(g, n, 0, NULL, NULL), -EINVAL);
        CHECK_INT(zd_gateway_send(g, n, 8, NULL, NULL), -EINVAL);
        n[0] = (zd_notice){.id = "bad id",
                           .policy = "",
                           .profile = "",
                           .gateway = "",
                           .to = "",
                           .title = "",
                           .body = "",
                           .url = "",
                           .category = ""};
        CHECK_INT(zd_gateway_send(g, n, 1, NULL, NULL), -EINVAL);
        zd_gw_stats st;
        zd_gateway_stats(g, &st);
        CHECK_INT(st.queued + st.inflight + st.requests, 0);
    }
    zd_gateway_free(g);
    zd_gateway_free(NULL);
    cJSON_Delete(o);
    o = cJSON_Parse("{\"type\": \"inbox\"}");
    g = (zd_gateway *)1;
    CHECK_INT(zd_gateway_new(&host, "inbox", o, &g, err, sizeof(err)), -ENOTSUP);
    CHECK(g == NULL);
    CHECK(strstr(err, "created by delivery/") != NULL);
    cJSON_Delete(o);
    o = cJSON_Parse("{\"type\": \"smtp\", \"url\": \"smtp://127.0.0.1:9\", \"from\": "
                    "\"noreply@example.gov.cn\"}");
    CHECK_INT(zd_gateway_new(&host, "email", o, &g, err, sizeof(err)), 0);
    zd_gateway_free(g);
    cJSON_Delete(o);
    event_base_free(base);
}

/* zd_gateway_adopt: a layer above hands over an instance of a reserved built-in type. */
static int destroyed;
static void count_destroy(void *inst)
{
    destroyed++;
}

static void test_adopt(void)
{
    static zd_gateway_type inbox;
    inbox = *zd_gateway_type_find("webhook");
    inbox.name = "inbox";
    inbox.destroy = count_destroy;
    char err[256];
    zd_gateway *g = NULL;
    cJSON *o = cJSON_Parse("{\"type\": \"inbox\", \"max_attempts\": 3}");
    CHECK_INT(zd_gateway_adopt("box", o, &inbox, (void *)&inbox, &g, err, sizeof(err)), 0);
    CHECK(g != NULL);
    if (g) {
        CHECK_STR(zd_gateway_name(g), "box");
        CHECK_STR(zd_gateway_type_name(g), "inbox");
        CHECK_INT(zd_gateway_retry_opts(g)->max_attempts, 3);
    }
    zd_gateway_free(g);
    CHECK_INT(destroyed, 1);
    cJSON_Delete(o);
    /* Only for the reserved name of the type, and the instance is destroyed on refusal. */
    o = cJSON_Parse("{\"type\": \"sms_http\"}");
    CHECK_INT(zd_gateway_adopt("box", o, &inbox, (void *)&inbox, &g, err, sizeof(err)), -EINVAL);
    CHECK(g == NULL);
    CHECK_INT(destroyed, 2);
    cJSON_Delete(o);
    o = cJSON_Parse("{\"type\": \"inbox\", \"url\": \"http://x\"}");
    CHECK_INT(zd_gateway_adopt("box", o, &inbox, (void *)&inbox, &g, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "gateways.box.url") != NULL);
    CHECK_INT(destroyed, 3);
    cJSON_Delete(o);
}

int main(void)
{
    test_checks();
    test_registry();
    test_instance();
    test_adopt();
    return check_report("gateway");
}
