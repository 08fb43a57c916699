/* Unit tests for zhidad's config loader: defaults, every rejection with the key it names,
 * comments, the environment password and the constant-time key lookup. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "tests/unit/check.h"
#include "zhidad/config.h"

static char err[512];

static zd_config *load(const char *text)
{
    zd_config *c = NULL;
    err[0] = '\0';
    int rc = zd_config_from_text(text, strlen(text), &c, err, sizeof(err));
    if (rc != 0) {
        CHECK(c == NULL);
        return NULL;
    }
    return c;
}

/* The text must be rejected with a message containing `want`. */
static void expect_error(const char *text, const char *want, int line)
{
    zd_config *c = load(text);
    if (c) {
        fprintf(stderr, "test_config.c:%d: accepted: %s\n", line, text);
        zd_config_free(c);
        CHECK(!"config accepted");
        return;
    }
    if (!strstr(err, want) || strncmp(err, "config: ", 8) != 0) {
        fprintf(stderr, "test_config.c:%d: error \"%s\" lacks \"%s\"\n", line, err, want);
        CHECK(!"error message");
        return;
    }
    CHECK(1);
}
#define EXPECT_ERROR(text, want) expect_error(text, want, __LINE__)

static void test_defaults(void)
{
    zd_config *c = load("{}");
    CHECK(c != NULL);
    if (!c)
        return;
    CHECK_STR(c->listen, "127.0.0.1:8700");
    CHECK_STR(c->redis, "127.0.0.1:6379");
    CHECK(c->redis_password == NULL);
    CHECK_INT(c->nkeys, 0);
    CHECK_STR(c->timezone, "Asia/Shanghai");
    CHECK_INT(c->partitions, 16);
    CHECK_INT(c->change_stream_maxlen, 10000);
    CHECK_INT(c->body_max, 1 << 20);
    CHECK_INT(c->import_body_max, 64 << 20);
    CHECK_INT(c->header_max, 16 << 10);
    CHECK_INT(c->json_depth_max, 32);
    CHECK_INT(c->http_timeout_s, 30);
    CHECK_INT(c->request_timeout_s, 60);
    CHECK_INT(c->max_connections, 1024);
    CHECK_INT(c->rule_max_cost, 1000);
    CHECK_INT(c->breakdown_max_groups, 100);
    CHECK_INT(c->redis_deadline_ms, 5000);
    CHECK_INT(c->redis_max_inflight, 1024);
    CHECK_INT(c->redis_max_inflight_bytes, 4 << 20);
    CHECK_INT(c->redis_queue_max, 100000);
    CHECK_INT(c->redis_reconnect_min_ms, 100);
    CHECK_INT(c->redis_reconnect_max_ms, 5000);
    CHECK_STR(c->log_level, "info");
    CHECK(!c->metrics_key_names);
    CHECK_INT(c->redis_durability, ZD_DURABILITY_REQUIRE);
    /* Without "gateways" the inbox is the one channel, and the schema has the defaults. */
    CHECK(cJSON_IsObject(c->gateways));
    CHECK_INT(cJSON_GetArraySize(c->gateways), 1);
    const cJSON *inbox = cJSON_GetObjectItemCaseSensitive(c->gateways, "inbox");
    CHECK(inbox && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(inbox, "type")));
    CHECK(c->schema != NULL);
    if (c->schema) {
        CHECK(zd_schema_find(c->schema, "employees") != NULL);
        CHECK(zd_schema_has_gateway(c->schema, "inbox"));
        CHECK(!zd_schema_has_gateway(c->schema, "sms"));
    }
    zd_config_free(c);
}

static void test_full(void)
{
    const char *text =
        "// a comment line\n"
        "{\n"
        "  \"listen\": \"127.0.0.1:9000\", /* block */ \"redis\": \"unix:/run/redis.sock\",\n"
        "  \"redis_password\": \"s3cret // not a comment\",\n"
        "  \"api_keys\": [\n"
        "    {\"name\": \"ops\", \"role\": \"admin\", \"key\": \"aaaaaaaaaaaaaaaaaaaaaaa1\"},\n"
        "    {\"name\": \"hz\", \"role\": \"publisher\", \"scope\": \"3301\",\n"
        "     \"key\": \"bbbbbbbbbbbbbbbbbbbbbbb2\"},\n"
        "    {\"name\": \"app\", \"role\": \"app\", \"key\": \"ccccccccccccccccccccccc3\"},\n"
        "    {\"name\": \"v\", \"role\": \"viewer\", \"key\": \"ddddddddddddddddddddddd4\"}\n"
        "  ],\n"
        "  \"timezone\": \"UTC\",\n"
        "  \"gateways\": {\"zlb\": {\"type\": \"webhook\", \"url\": \"http://127.0.0.1:1/\",\n"
        "                        \"secret\": \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"},\n"
        "               \"sms\": {\"type\": \"sms_http\", \"url\": \"http://127.0.0.1:1/\",\n"
        "                       \"format\": \"form\", \"body\": \"to={{to}}\"}},\n"
        "  \"schema\": {\"employees\": {\"type\": \"number\"}},\n"
        "  \"partitions\": 64, \"change_stream_maxlen\": 5000,\n"
        "  \"limits\": {\"body_max\": 2048, \"import_body_max\": 4096, \"header_max\": 8192,\n"
        "             \"json_depth_max\": 8, \"http_timeout_s\": 5, \"max_connections\": 10,\n"
        "             \"rule_max_cost\": 50, \"breakdown_max_groups\": 7, \"request_timeout_s\": "
        "7},\n"
        "  \"redis_client\": {\"deadline_ms\": 250, \"max_inflight\": 2, \"queue_max\": 3,\n"
        "                   \"max_inflight_bytes\": 65536,\n"
        "                   \"reconnect_min_ms\": 50, \"reconnect_max_ms\": 60},\n"
        "  \"log_level\": \"debug\", \"metrics_key_names\": true, \"redis_durability\": "
        "\"warn\"\n"
        "}\n";
    unsetenv("ZHIDA_REDIS_PASSWORD");
    zd_config *c = load(text);
    CHECK(c != NULL);
    if (!c) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK_STR(c->listen, "127.0.0.1:9000");
    CHECK_STR(c->redis, "unix:/run/redis.sock");
    CHECK_STR(c->redis_password, "s3cret // not a comment");
    CHECK_INT(c->nkeys, 4);
    CHECK_STR(c->keys[0].name, "ops");
    CHECK_INT(c->keys[0].role, ZD_ROLE_ADMIN);
    CHECK_STR(c->keys[0].scope, "");
    CHECK_INT(c->keys[1].role, ZD_ROLE_PUBLISHER);
    CHECK_STR(c->keys[1].scope, "3301");
    CHECK_INT(c->keys[2].role, ZD_ROLE_APP);
    CHECK_INT(c->keys[3].role, ZD_ROLE_VIEWER);
    CHECK_INT(c->keys[3].keylen, 24);
    CHECK_STR(c->timezone, "UTC");
    CHECK_INT(cJSON_GetArraySize(c->gateways), 2);
    /* Gateway options are kept raw for the delivery code. */
    const cJSON *zlb = cJSON_GetObjectItemCaseSensitive(c->gateways, "zlb");
    CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(zlb, "url")));
    CHECK(zd_schema_has_gateway(c->schema, "zlb") && zd_schema_has_gateway(c->schema, "sms"));
    CHECK(!zd_schema_has_gateway(c->schema, "inbox"));
    CHECK(zd_schema_find(c->schema, "employees") != NULL);
    CHECK(zd_schema_find(c->schema, "industry") == NULL);
    CHECK_INT(c->partitions, 64);
    CHECK_INT(c->change_stream_maxlen, 5000);
    CHECK_INT(c->body_max, 2048);
    CHECK_INT(c->import_body_max, 4096);
    CHECK_INT(c->header_max, 8192);
    CHECK_INT(c->json_depth_max, 8);
    CHECK_INT(c->http_timeout_s, 5);
    CHECK_INT(c->request_timeout_s, 7);
    CHECK_INT(c->max_connections, 10);
    CHECK_INT(c->rule_max_cost, 50);
    CHECK_INT(c->breakdown_max_groups, 7);
    CHECK_INT(c->redis_deadline_ms, 250);
    CHECK_INT(c->redis_max_inflight, 2);
    CHECK_INT(c->redis_max_inflight_bytes, 65536);
    CHECK_INT(c->redis_queue_max, 3);
    CHECK_INT(c->redis_reconnect_min_ms, 50);
    CHECK_INT(c->redis_reconnect_max_ms, 60);
    CHECK_STR(c->log_level, "debug");
    CHECK(c->metrics_key_names);
    CHECK_INT(c->redis_durability, ZD_DURABILITY_WARN);

    /* Constant-time lookup still finds exactly the right key. */
    CHECK(zd_config_find_key(c, "ccccccccccccccccccccccc3", 24) == &c->keys[2]);
    CHECK(zd_config_find_key(c, "aaaaaaaaaaaaaaaaaaaaaaa1", 24) == &c->keys[0]);
    CHECK(zd_config_find_key(c, "ddddddddddddddddddddddd4", 24) == &c->keys[3]);
    CHECK(zd_config_find_key(c, "cccccccccccccccc", 16) == NULL);          /* a prefix */
    CHECK(zd_config_find_key(c, "ccccccccccccccccccccccc33", 25) == NULL); /* one more byte */
    CHECK(zd_config_find_key(c, "cccccccccccccccc4", 17) == NULL);         /* last byte differs */
    CHECK(zd_config_find_key(c, "Cccccccccccccccc3", 17) == NULL);         /* first byte differs */
    CHECK(zd_config_find_key(c, "", 0) == NULL);
    CHECK(zd_config_find_key(c, NULL, 0) == NULL);
    /* len, not the NUL, bounds the token. */
    CHECK(zd_config_find_key(c, "ccccccccccccccccccccccc3XYZ", 24) == &c->keys[2]);
    char longtok[ZD_APIKEY_MAX + 2];
    memset(longtok, 'c', sizeof(longtok));
    CHECK(zd_config_find_key(c, longtok, sizeof(longtok)) == NULL);
    zd_config_free(c);
}

static void test_env_password(void)
{
    setenv("ZHIDA_REDIS_PASSWORD", "from-env", 1);
    zd_config *c = load("{\"redis_password\": \"from-file\"}");
    CHECK(c && c->redis_password && strcmp(c->redis_password, "from-env") == 0);
    zd_config_free(c);
    c = load("{}");
    CHECK(c && c->redis_password && strcmp(c->redis_password, "from-env") == 0);
    zd_config_free(c);
    setenv("ZHIDA_REDIS_PASSWORD", "", 1);
    c = load("{\"redis_password\": \"from-file\"}");
    CHECK(c && c->redis_password && strcmp(c->redis_password, "from-file") == 0);
    zd_config_free(c);
    unsetenv("ZHIDA_REDIS_PASSWORD");
    c = load("{\"redis_password\": null}");
    CHECK(c && c->redis_password == NULL);
    zd_config_free(c);
}

static void test_errors(void)
{
    /* Syntax, with line and column. */
    EXPECT_ERROR("{\n  \"listen\": \"127.0.0.1:1\",\n  oops\n}", "line 3, column");
    EXPECT_ERROR("{} {}", "unexpected text after");
    EXPECT_ERROR("{ /* never closed }", "comment \"/*\" is never closed");
    EXPECT_ERROR("[]", "top level must be a JSON object");
    EXPECT_ERROR("{\"redis_durability\": \"maybe\"}",
                 "\"redis_durability\" must be one of require, warn, off");
    EXPECT_ERROR("{\"redis_durability\": true}", "\"redis_durability\" must be a string");
    EXPECT_ERROR("", "JSON syntax error");
    /* A comment must not glue two tokens into a valid number. */
    EXPECT_ERROR("{\"partitions\": 1/**/6}", "JSON syntax error");

    /* Unknown and duplicate keys name their path. */
    EXPECT_ERROR("{\"listn\": \"127.0.0.1:1\"}",
                 "unknown key \"listn\" (did you mean \"listen\"?)");
    EXPECT_ERROR("{\"frobnicate\": 1}", "unknown key \"frobnicate\"");
    EXPECT_ERROR("{\"limits\": {\"bodymax\": 1}}", "unknown key \"limits.bodymax\"");
    EXPECT_ERROR("{\"redis_client\": {\"deadline\": 1}}", "unknown key \"redis_client.deadline\"");
    EXPECT_ERROR("{\"api_keys\": [{\"name\": \"a\", \"role\": \"admin\", "
                 "\"key\": \"aaaaaaaaaaaaaaaaaaaaaaaa\", \"scpoe\": \"33\"}]}",
                 "unknown key \"api_keys[0].scpoe\"");
    EXPECT_ERROR("{\"partitions\": 2, \"partitions\": 3}", "duplicate key \"partitions\"");
    EXPECT_ERROR("{\"Listen\": \"127.0.0.1:1\"}", "unknown key \"Listen\"");

    /* Bad values. */
    EXPECT_ERROR("{\"partitions\": 0}", "\"partitions\" must be an integer 1..64");
    EXPECT_ERROR("{\"partitions\": 65}", "\"partitions\" must be an integer 1..64");
    EXPECT_ERROR("{\"partitions\": 2.5}", "\"partitions\" must be an integer");
    EXPECT_ERROR("{\"partitions\": \"16\"}", "\"partitions\" must be an integer");
    EXPECT_ERROR("{\"partitions\": 1e300}", "\"partitions\" must be an integer");
    EXPECT_ERROR("{\"change_stream_maxlen\": 10}", "\"change_stream_maxlen\" must be");
    EXPECT_ERROR("{\"listen\": \"8700\"}", "\"listen\" must be IP:PORT");
    EXPECT_ERROR("{\"listen\": \"127.0.0.1:99999\"}", "\"listen\" must be IP:PORT");
    EXPECT_ERROR("{\"listen\": 8700}", "\"listen\" must be a string");
    /* Host names are accepted (resolved asynchronously); malformed ones are not. */
    EXPECT_ERROR("{\"redis\": \"redis..example.com:6379\"}", "\"redis\" must be HOST:PORT");
    EXPECT_ERROR("{\"redis\": \"-redis:6379\"}", "\"redis\" must be HOST:PORT");
    EXPECT_ERROR("{\"redis\": \"redis_1:6379\"}", "\"redis\" must be HOST:PORT");
    EXPECT_ERROR("{\"redis\": \"127.0.0.1:0\"}", "\"redis\" must be HOST:PORT");
    EXPECT_ERROR("{\"redis\": \"unix:relative.sock\"}", "unix:/absolute/path");
    EXPECT_ERROR("{\"redis_password\": 5}", "\"redis_password\" must be null or a string");
    EXPECT_ERROR("{\"redis_password\": \"\"}", "\"redis_password\" must be null or a string");
    EXPECT_ERROR("{\"timezone\": \"Asia/Shangai\"}", "unknown time zone \"Asia/Shangai\"");
    EXPECT_ERROR("{\"timezone\": \"../etc/passwd\"}", "IANA zone name");
    EXPECT_ERROR("{\"log_level\": \"loud\"}", "\"log_level\" must be one of");
    EXPECT_ERROR("{\"metrics_key_names\": 1}", "\"metrics_key_names\" must be true or false");
    EXPECT_ERROR("{\"metrics_key_names\": \"yes\"}", "\"metrics_key_names\" must be true or false");
    EXPECT_ERROR("{\"limits\": []}", "\"limits\" must be an object");
    EXPECT_ERROR("{\"limits\": {\"json_depth_max\": 0}}", "\"limits.json_depth_max\" must be");
    EXPECT_ERROR("{\"limits\": {\"rule_max_cost\": 0}}", "\"limits.rule_max_cost\" must be");
    EXPECT_ERROR("{\"limits\": {\"breakdown_max_groups\": 10001}}",
                 "\"limits.breakdown_max_groups\" must be");
    EXPECT_ERROR("{\"limits\": {\"request_timeout_s\": 0}}",
                 "\"limits.request_timeout_s\" must be");
    EXPECT_ERROR("{\"limits\": {\"body_max\": 4096, \"import_body_max\": 2048}}",
                 "\"limits.import_body_max\" must be at least");
    EXPECT_ERROR("{\"redis_client\": {\"reconnect_min_ms\": 500, \"reconnect_max_ms\": 100}}",
                 "\"redis_client.reconnect_max_ms\" must be at least");
    EXPECT_ERROR("{\"redis_client\": {\"max_inflight\": 0}}", "\"redis_client.max_inflight\"");
    EXPECT_ERROR("{\"redis_client\": {\"max_inflight_bytes\": 100}}",
                 "\"redis_client.max_inflight_bytes\"");

    /* Gateways: an object of objects with a string "type". */
    EXPECT_ERROR("{\"gateways\": []}", "\"gateways\" must be an object");
    EXPECT_ERROR("{\"gateways\": {\"zlb\": \"webhook\"}}", "\"gateways.zlb\" must be an object");
    EXPECT_ERROR("{\"gateways\": {\"zlb\": {}}}", "\"gateways.zlb.type\" must be a non-empty");
    EXPECT_ERROR("{\"gateways\": {\"zlb\": {\"type\": 1}}}", "\"gateways.zlb.type\"");
    EXPECT_ERROR("{\"gateways\": {\"a:b\": {\"type\": \"inbox\"}}}", "gateway name \"a:b\"");
    EXPECT_ERROR("{\"gateways\": {\"x\": {\"type\": \"inbox\"}, \"x\": {\"type\": \"inbox\"}}}",
                 "duplicate key \"gateways.x\"");
    /* Each type's options are checked at start-up by the gateway host, naming the key. */
    EXPECT_ERROR("{\"gateways\": {\"zlb\": {\"type\": \"fax\"}}}",
                 "\"gateways.zlb.type\": unknown gateway type \"fax\"");
    EXPECT_ERROR("{\"gateways\": {\"zlb\": {\"type\": \"webhook\"}}}",
                 "\"gateways.zlb.url\" is required");
    EXPECT_ERROR("{\"gateways\": {\"zlb\": {\"type\": \"webhook\", \"url\": \"http://h/\", "
                 "\"secret\": \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\", \"batch\": 5000}}}",
                 "\"gateways.zlb.batch\" must be an integer 1..1000");
    EXPECT_ERROR("{\"gateways\": {\"inbox\": {\"type\": \"inbox\", \"url\": \"x\"}}}",
                 "unknown key \"gateways.inbox.url\"");

    /* The schema's own errors come through. */
    EXPECT_ERROR("{\"schema\": {\"employees\": {\"type\": \"integer\"}}}", "schema.employees.type");
    EXPECT_ERROR("{\"schema\": []}", "schema must be an object");
    /* A key given twice inside a schema attribute is an error naming both (it used to
     * overflow the heap when the key was "values"). */
    EXPECT_ERROR("{\"schema\": {\"grade\": {\"type\": \"keyword\", \"values\": [\"a\"], "
                 "\"values\": [\"b\", \"c\", \"d\"]}}}",
                 "duplicate key \"schema.grade.values\"");
    EXPECT_ERROR("{\"schema\": {\"region\": {\"type\": \"code\", \"levels\": [2], "
                 "\"levels\": [2, 4]}}}",
                 "duplicate key \"schema.region.levels\"");
    EXPECT_ERROR("{\"schema\": {\"region\": {\"type\": \"code\", \"levels\": [2]}, "
                 "\"region\": {\"type\": \"code\", \"levels\": [2, 4]}}}",
                 "duplicate key \"schema.region\"");

    /* API keys. */
    EXPECT_ERROR("{\"api_keys\": {}}", "\"api_keys\" must be an array");
    EXPECT_ERROR("{\"api_keys\": [\"k\"]}", "\"api_keys[0]\" must be an object");
    EXPECT_ERROR("{\"api_keys\": [{\"role\": \"admin\", \"key\": \"aaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
                 "\"api_keys[0].name\" must be");
    EXPECT_ERROR("{\"api_keys\": [{\"name\": \"a b\", \"role\": \"admin\", "
                 "\"key\": \"aaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
                 "\"api_keys[0].name\" must be");
    EXPECT_ERROR("{\"api_keys\": [{\"name\": \"a\", \"role\": \"root\", "
                 "\"key\": \"aaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
                 "\"api_keys[0].role\" must be one of admin, publisher, app, viewer");
    EXPECT_ERROR("{\"api_keys\": [{\"name\": \"a\", \"role\": \"Admin\", "
                 "\"key\": \"aaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
                 "\"api_keys[0].role\"");
    EXPECT_ERROR("{\"api_keys\": [{\"name\": \"a\", \"role\": \"admin\", \"key\": \"short\"}]}",
                 "\"api_keys[0].key\" (key \"a\") must be 24..256");
    /* 23 characters is one too few; the example config's placeholders are refused. */
    EXPECT_ERROR("{\"api_keys\": [{\"name\": \"a\", \"role\": \"admin\", "
                 "\"key\": \"aaaaaaaaaaaaaaaaaaaaaaa\"}]}",
                 "must be 24..256");
    EXPECT_ERROR("{\"api_keys\": [{\"name\": \"ops\", \"role\": \"admin\", "
                 "\"key\": \"CHANGE-ME-admin-0123456789abcdef\"}]}",
                 "\"api_keys[0].key\" (key \"ops\") is the example's placeholder");
    EXPECT_ERROR("{\"api_keys\": [{\"name\": \"a\", \"role\": \"admin\", "
                 "\"key\": \"aaaaaaaa aaaaaaaaaaaaaaa\"}]}",
                 "without spaces");
    EXPECT_ERROR("{\"api_keys\": [{\"name\": \"a\", \"role\": \"admin\"}]}",
                 "\"api_keys[0].key\" (key \"a\") must be a string");
    EXPECT_ERROR("{\"api_keys\": [{\"name\": \"a\", \"role\": \"admin\", \"key\": "
                 "\"aaaaaaaaaaaaaaaaaaaaaaaa\"},"
                 "{\"name\": \"a\", \"role\": \"app\", \"key\": \"bbbbbbbbbbbbbbbbbbbbbbbb\"}]}",
                 "\"api_keys[1].name\": \"a\" is used by api_keys[0] too");
    EXPECT_ERROR("{\"api_keys\": [{\"name\": \"a\", \"role\": \"admin\", \"key\": "
                 "\"aaaaaaaaaaaaaaaaaaaaaaaa\"},"
                 "{\"name\": \"b\", \"role\": \"app\", \"key\": \"aaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
                 "is the same secret as key \"a\"");
    /* Scope: publishers only, required for them, digits at a whole region level. */
    EXPECT_ERROR("{\"api_keys\": [{\"name\": \"a\", \"role\": \"app\", \"scope\": \"33\", "
                 "\"key\": \"aaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
                 "\"api_keys[0].scope\" is only allowed for a publisher key");
    EXPECT_ERROR("{\"api_keys\": [{\"name\": \"a\", \"role\": \"publisher\", "
                 "\"key\": \"aaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
                 "\"api_keys[0].scope\" is required for a publisher key");
    EXPECT_ERROR("{\"api_keys\": [{\"name\": \"a\", \"role\": \"publisher\", \"scope\": \"330\", "
                 "\"key\": \"aaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
                 "\"api_keys[0].scope\" must be a region code at a whole level");
    EXPECT_ERROR("{\"api_keys\": [{\"name\": \"a\", \"role\": \"publisher\", \"scope\": \"33ab\", "
                 "\"key\": \"aaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
                 "\"api_keys[0].scope\" must be");
    EXPECT_ERROR("{\"api_keys\": [{\"name\": \"a\", \"role\": \"publisher\", \"scope\": 33, "
                 "\"key\": \"aaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
                 "\"api_keys[0].scope\" must be");
    EXPECT_ERROR("{\"api_keys\": [{\"name\": \"a\", \"role\": \"publisher\", \"scope\": \"\", "
                 "\"key\": \"aaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
                 "\"api_keys[0].scope\" must be");

    /* No message ever quotes a secret. */
    zd_config *c = load("{\"api_keys\": [{\"name\": \"a\", \"role\": \"admin\", "
                        "\"key\": \"SECRETSECRETSECRETSECRE x\"}]}");
    CHECK(c == NULL);
    CHECK(strstr(err, "SECRET") == NULL);
    zd_config_free(c);
}

static void test_scope_levels(void)
{
    static const char *ok[] = {"33", "3301", "330106", "330106001", "330106001002"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text),
                 "{\"api_keys\": [{\"name\": \"p\", \"role\": \"publisher\", \"scope\": \"%s\", "
                 "\"key\": \"aaaaaaaaaaaaaaaaaaaaaaaa\"}]}",
                 ok[i]);
        zd_config *c = load(text);
        CHECK(c && strcmp(c->keys[0].scope, ok[i]) == 0);
        zd_config_free(c);
    }
    /* A re-levelled region schema moves the whole levels with it. */
    zd_config *c = load("{\"schema\": {\"region\": {\"type\": \"code\", \"levels\": [3, 5], "
                        "\"breakdown_level\": 3}},"
                        "\"api_keys\": [{\"name\": \"p\", \"role\": \"publisher\", "
                        "\"scope\": \"331\", \"key\": \"aaaaaaaaaaaaaaaaaaaaaaaa\"}]}");
    CHECK(c != NULL);
    zd_config_free(c);
    c = load("{\"schema\": {\"region\": {\"type\": \"code\", \"levels\": [3, 5], "
             "\"breakdown_level\": 3}},"
             "\"api_keys\": [{\"name\": \"p\", \"role\": \"publisher\", "
             "\"scope\": \"3301\", \"key\": \"aaaaaaaaaaaaaaaaaaaaaaaa\"}]}");
    CHECK(c == NULL && strstr(err, "\"api_keys[0].scope\" must be") != NULL);
    zd_config_free(c);
}

static void test_load_file(void)
{
    char path[] = "/tmp/zd_test_config_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    const char *text = "{ // the file\n \"partitions\": 8 }\n";
    CHECK_INT(write(fd, text, strlen(text)), (long long)strlen(text));
    close(fd);
    zd_config *c = NULL;
    CHECK_INT(zd_config_load(path, &c, err, sizeof(err)), 0);
    CHECK(c && c->partitions == 8);
    zd_config_free(c);
    unlink(path);
    c = NULL;
    CHECK_INT(zd_config_load("/nonexistent/zhida.json", &c, err, sizeof(err)), -ENOENT);
    CHECK(c == NULL);
    CHECK(strstr(err, "cannot open /nonexistent/zhida.json") != NULL);
}

/* Finds deploy/zhida.example.json: beside this source file as the compiler named it, or in
 * the working directory or one of its parents (meson runs tests from the build directory). */
static bool find_example(char *out, size_t cap)
{
    const char *tail = "tests/unit/test_config.c";
    const char *f = __FILE__;
    size_t n = strlen(f), t = strlen(tail);
    if (n >= t && strcmp(f + n - t, tail) == 0) {
        snprintf(out, cap, "%.*sdeploy/zhida.example.json", (int)(n - t), f);
        if (access(out, R_OK) == 0)
            return true;
    }
    char prefix[64] = "";
    for (int up = 0; up < 5; up++) {
        snprintf(out, cap, "%sdeploy/zhida.example.json", prefix);
        if (access(out, R_OK) == 0)
            return true;
        strcat(prefix, "../");
    }
    return false;
}

static void test_example_config(void)
{
    /* The shipped example is refused as it stands (its keys are placeholders) and, with real
     * keys put in, loads and holds what docs/CONFIG.md promises. */
    zd_config *c = NULL;
    char path[512];
    unsetenv("ZHIDA_REDIS_PASSWORD");
    CHECK(find_example(path, sizeof(path)));
    int rc = zd_config_load(path, &c, err, sizeof(err));
    CHECK(rc != 0 && strstr(err, "placeholder") != NULL);
    FILE *in = fopen(path, "r");
    char tmp[] = "/tmp/zd-example-XXXXXX";
    int fd = mkstemp(tmp);
    FILE *out = fd >= 0 ? fdopen(fd, "w") : NULL;
    CHECK(in && out);
    if (!in || !out)
        return;
    char line[1024];
    while (fgets(line, sizeof(line), in)) {
        char *p;
        while ((p = strstr(line, "CHANGE-ME")) != NULL)
            memcpy(p, "realsecret", 9); /* same length: "realsecre" */
        fputs(line, out);
    }
    fclose(in);
    fclose(out);
    rc = zd_config_load(tmp, &c, err, sizeof(err));
    unlink(tmp);
    CHECK_INT(rc, 0);
    if (rc) {
        fprintf(stderr, "  %s\n", err);
        return;
    }
    CHECK_INT(c->nkeys, 4);
    bool roles[16] = {false};
    for (int i = 0; i < c->nkeys; i++)
        roles[c->keys[i].role] = true;
    CHECK(roles[ZD_ROLE_ADMIN] && roles[ZD_ROLE_PUBLISHER] && roles[ZD_ROLE_APP] &&
          roles[ZD_ROLE_VIEWER]);
    CHECK(zd_schema_has_gateway(c->schema, "zlb") && zd_schema_has_gateway(c->schema, "inbox") &&
          zd_schema_has_gateway(c->schema, "sms") && zd_schema_has_gateway(c->schema, "email"));
    /* Its schema section spells out the defaults. */
    zd_schema *def = zd_schema_default();
    CHECK(def != NULL);
    CHECK_INT(c->schema->nattrs, def->nattrs);
    for (int i = 0; def && i < def->nattrs; i++) {
        const zd_attr *a = zd_schema_find(c->schema, def->attrs[i].name);
        CHECK(a && a->type == def->attrs[i].type && a->decimals == def->attrs[i].decimals &&
              a->nlevels == def->attrs[i].nlevels && a->style == def->attrs[i].style &&
              a->nallowed == def->attrs[i].nallowed);
    }
    zd_schema_free(def);
    zd_config_free(c);
}

/* "delivery": defaults, values, and claim_idle_ms above every gateway's timeout. */
static void test_delivery(void)
{
    zd_config *c = load("{}");
    CHECK(c != NULL);
    if (c) {
        CHECK_STR(c->delivery_consumer, "");
        CHECK_INT(c->delivery_chunk, 500);
        CHECK_INT(c->delivery_claim_idle_ms, 60000);
        CHECK_INT(c->delivery_inflight, 32);
        CHECK_INT(c->delivery_lease_ms, 5000);
        CHECK_INT(c->delivery_poll_ms, 100);
        CHECK(c->delivery_enabled);
        zd_config_free(c);
    }
    c = load("{\"delivery\": {\"consumer\": \"a-1\", \"chunk\": 7, \"enabled\": false,"
             " \"claim_idle_ms\": 20000, \"inflight\": 3, \"lease_ms\": 900, \"poll_ms\": 20}}");
    CHECK(c != NULL);
    if (c) {
        CHECK_STR(c->delivery_consumer, "a-1");
        CHECK_INT(c->delivery_chunk, 7);
        CHECK_INT(c->delivery_claim_idle_ms, 20000);
        CHECK_INT(c->delivery_inflight, 3);
        CHECK_INT(c->delivery_lease_ms, 900);
        CHECK_INT(c->delivery_poll_ms, 20);
        CHECK(!c->delivery_enabled);
        zd_config_free(c);
    }
    EXPECT_ERROR("{\"delivery\": {\"chunks\": 5}}", "unknown key \"delivery.chunks\"");
    EXPECT_ERROR("{\"delivery\": {\"chunk\": 0}}", "\"delivery.chunk\" must be an integer");
    EXPECT_ERROR("{\"delivery\": {\"consumer\": \"a b\"}}", "delivery.consumer");
    EXPECT_ERROR("{\"delivery\": {\"claim_idle_ms\": 5000}, \"gateways\": {\"zlb\": "
                 "{\"type\": \"webhook\", \"url\": \"http://127.0.0.1:9/\", \"secret\": "
                 "\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\", \"timeout_ms\": 8000}}}",
                 "must exceed the timeout of gateway \"zlb\" (8000 ms)");
}

int main(void)
{
    test_delivery();
    test_defaults();
    test_full();
    test_env_password();
    test_errors();
    test_scope_levels();
    test_load_file();
    test_example_config();
    return check_report("config");
}
