/* gateway/wire.c: the webhook request body (read back with cJSON), notice id checks, and the
 * "failed" list of a 2xx answer. */
#include <stdlib.h>
#include <errno.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "gateway/wire.h"

static zd_notice notice(const char *id)
{
    return (zd_notice){.id = id,
                       .policy = "hz-2021-wengang",
                       .profile = "e0000042",
                       .gateway = "zlb",
                       .to = "user-8812",
                       .title = "杭州市小微企业稳岗补贴",
                       .body = "贵单位：\"引号\" \\ 换行\n制表\t\x01",
                       .url = "https://example.gov.cn/p?a=1&b=2",
                       .category = "employment",
                       .urgent = 1,
                       .attempt = 3};
}

static void test_body(void)
{
    zd_notice n[2] = {notice("hz-2021-wengang:e0000042:zlb"), notice("hz-2021-wengang:e2:zlb")};
    n[1].urgent = 0;
    n[1].url = "";
    char *body;
    size_t len;
    CHECK_INT(zd_wire_body(n, 2, &body, &len), 0);
    CHECK_INT(strlen(body), len);
    cJSON *root = cJSON_Parse(body);
    CHECK(root != NULL);
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "notices");
    CHECK_INT(cJSON_GetArraySize(arr), 2);
    const cJSON *a = cJSON_GetArrayItem(arr, 0);
    const char *fields[] = {"id",    "policy", "profile", "gateway", "to",
                            "title", "body",   "url",     "category"};
    const char *want[] = {n[0].id,    n[0].policy, n[0].profile, n[0].gateway, n[0].to,
                          n[0].title, n[0].body,   n[0].url,     n[0].category};
    for (int i = 0; i < 9; i++)
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, fields[i])), want[i]);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "urgent")));
    CHECK_INT(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(a, "attempt")), 3);
    const cJSON *b = cJSON_GetArrayItem(arr, 1);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(b, "urgent")));
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(b, "url")), "");
    /* Exactly these keys, no more. */
    CHECK_INT(cJSON_GetArraySize(a), 11);
    /* UTF-8 goes through as it is, control characters escaped. */
    CHECK(strstr(body, "稳岗补贴") != NULL);
    CHECK(strstr(body, "\\u0001") != NULL && strstr(body, "\\n") != NULL);
    cJSON_Delete(root);
    free(body);
}

static void test_body_refusals(void)
{
    char *body = (char *)1;
    size_t len = 1;
    zd_notice n = notice("p:q:zlb");
    n.title = "bad \xff utf-8";
    CHECK_INT(zd_wire_body(&n, 1, &body, &len), -EINVAL);
    CHECK(body == NULL && len == 0);
    const char *bad_ids[] = {"", "has space", "new\nline", "caf\xc3\xa9"};
    for (int i = 0; i < 4; i++) {
        n = notice(bad_ids[i]);
        CHECK_INT(zd_wire_body(&n, 1, &body, &len), -EINVAL);
        CHECK(!zd_wire_id_ok(bad_ids[i]));
    }
    char longid[ZD_WIRE_ID_MAX + 2];
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    CHECK(!zd_wire_id_ok(longid));
    longid[ZD_WIRE_ID_MAX] = '\0';
    CHECK(zd_wire_id_ok(longid));
}

static void set_delivered(zd_gw_result *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        r[i] = (zd_gw_result){.outcome = ZD_GW_DELIVERED, .http_status = 200};
}

static void test_failed(void)
{
    const char *ids[] = {"p:a:zlb", "p:b:zlb", "p:c:zlb", "p:d:zlb"};
    zd_gw_result r[4];
    set_delivered(r, 4);
    const char *answer = "{\"failed\": [{\"id\": \"p:b:zlb\", \"permanent\": true},"
                         " {\"id\": \"p:d:zlb\", \"permanent\": false},"
                         " {\"id\": \"p:zzz:zlb\", \"permanent\": true},"
                         " {\"permanent\": true}, 7]}";
    CHECK_INT(zd_wire_failed(answer, strlen(answer), ids, 4, r), 2);
    CHECK_INT(r[0].outcome, ZD_GW_DELIVERED);
    CHECK_INT(r[1].outcome, ZD_GW_PERMANENT);
    CHECK_INT(r[2].outcome, ZD_GW_DELIVERED);
    CHECK_INT(r[3].outcome, ZD_GW_TRANSIENT);
    CHECK_INT(r[3].http_status, 200);
    CHECK(strstr(r[1].detail, "permanent") != NULL);
    /* "permanent" absent or not true: transient. */
    set_delivered(r, 4);
    answer = "{\"failed\": [{\"id\": \"p:a:zlb\"}, {\"id\": \"p:c:zlb\", \"permanent\": 1}]}";
    CHECK_INT(zd_wire_failed(answer, strlen(answer), ids, 4, r), 2);
    CHECK(r[0].outcome == ZD_GW_TRANSIENT && r[2].outcome == ZD_GW_TRANSIENT);
    /* Anything else delivers the whole batch. */
    const char *others[] = {
        "OK", "", "{}", "{\"failed\": {}}", "[1,2]", "{\"failed\": [", "{\"failed\": []}"};
    for (int i = 0; i < 7; i++) {
        set_delivered(r, 4);
        CHECK_INT(zd_wire_failed(others[i], strlen(others[i]), ids, 4, r), 0);
        for (int j = 0; j < 4; j++)
            CHECK_INT(r[j].outcome, ZD_GW_DELIVERED);
    }
    /* The answer need not be NUL-terminated. */
    char buf[64];
    const char *a2 = "{\"failed\":[{\"id\":\"p:a:zlb\",\"permanent\":true}]}";
    memcpy(buf, a2, strlen(a2));
    buf[strlen(a2)] = 'x';
    set_delivered(r, 4);
    CHECK_INT(zd_wire_failed(buf, strlen(a2), ids, 4, r), 1);
    /* A large batch: every other of 1000 notices listed. */
    enum { N = 1000 };
    char *big_ids[N];
    zd_gw_result *big = calloc(N, sizeof(*big));
    char *list = malloc(N * 64);
    size_t at = (size_t)sprintf(list, "{\"failed\":[");
    for (int i = 0; i < N; i++) {
        big_ids[i] = malloc(32);
        sprintf(big_ids[i], "pol:prof%04d:zlb", N - 1 - i);
        if (i % 2 == 0)
            at += (size_t)sprintf(list + at, "%s{\"id\":\"%s\",\"permanent\":true}", i ? "," : "",
                                  big_ids[i]);
    }
    sprintf(list + at, "]}");
    set_delivered(big, N);
    CHECK_INT(zd_wire_failed(list, strlen(list), (const char *const *)big_ids, N, big), N / 2);
    int perm = 0;
    for (int i = 0; i < N; i++) {
        perm += big[i].outcome == ZD_GW_PERMANENT;
        CHECK_INT(big[i].outcome, i % 2 == 0 ? ZD_GW_PERMANENT : ZD_GW_DELIVERED);
        free(big_ids[i]);
    }
    CHECK_INT(perm, N / 2);
    free(big);
    free(list);
}

int main(void)
{
    test_body();
    test_body_refusals();
    test_failed();
    return check_report("wire");
}
