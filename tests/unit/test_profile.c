/* Unit tests for the schema, profile validation and the common text/date helpers. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "common/date.h"
#include "common/log.h"
#include "common/text.h"
#include "profiles/json.h"
#include "profiles/profile.h"
#include "profiles/schema.h"

static zd_profile *parse(const zd_schema *s, const char *id, const char *json, zd_error *err)
{
    cJSON *j = cJSON_Parse(json);
    zd_profile *p = NULL;
    if (!j) {
        fprintf(stderr, "test JSON does not parse: %s\n", json);
        return NULL;
    }
    if (zd_profile_from_json(s, id, j, &p, err) != 0)
        p = NULL;
    cJSON_Delete(j);
    return p;
}

/* Asserts that json is rejected with error code `code` naming `field`. */
static void expect_error(const zd_schema *s, const char *json, const char *code, const char *field)
{
    zd_error err;
    memset(&err, 0, sizeof(err));
    zd_profile *p = parse(s, "x1", json, &err);
    CHECK(p == NULL);
    if (p) {
        fprintf(stderr, "  accepted: %s\n", json);
        zd_profile_free(p);
        return;
    }
    CHECK_STR(err.code, code);
    CHECK_STR(err.field, field);
}

static void test_text(void)
{
    CHECK(zd_utf8_valid("abc", 3));
    CHECK(zd_utf8_valid("\xe7\x8e\x8b", 3));      /* 王 */
    CHECK(!zd_utf8_valid("\xe7\x8e", 2));         /* truncated */
    CHECK(!zd_utf8_valid("\xc0\xaf", 2));         /* overlong */
    CHECK(!zd_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    CHECK(!zd_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    CHECK_INT(zd_utf8_chars("a\xe7\x8e\x8b", 4), 2);
    CHECK(zd_id_valid("e0000042", 8));
    CHECK(zd_id_valid("a.b:c-d_e", 9));
    CHECK(!zd_id_valid("", 0));
    CHECK(!zd_id_valid("a/b", 3));
    CHECK(!zd_id_valid("a b", 3));
    CHECK_INT(zd_edit_distance("employes", "employees", 2), 1);
    CHECK_INT(zd_edit_distance("abc", "xyz", 2), 3);

    int64_t v;
    int rem;
    CHECK_INT(zd_decimal_parse("300", 3, 0, &v, &rem), 0);
    CHECK_INT(v, 300);
    CHECK_INT(rem, 0);
    CHECK_INT(zd_decimal_parse("300.5", 5, 0, &v, &rem), 0);
    CHECK_INT(v, 300);
    CHECK_INT(rem, 1);
    CHECK_INT(zd_decimal_parse("-2.25", 5, 1, &v, &rem), 0);
    CHECK_INT(v, -22);
    CHECK_INT(rem, -1);
    CHECK_INT(zd_decimal_parse("1.5", 3, 2, &v, &rem), 0);
    CHECK_INT(v, 150);
    CHECK_INT(zd_decimal_parse("1e3", 3, 0, &v, &rem), -EINVAL);
    CHECK_INT(zd_decimal_parse("99999999999999999999", 20, 0, &v, &rem), -ERANGE);
    CHECK_INT(zd_double_to_scaled(12.34, 2, &v), 0);
    CHECK_INT(v, 1234);
    CHECK_INT(zd_double_to_scaled(12.345, 2, &v), -EINVAL);
}

static void test_mask(void)
{
    char out[256];
    zd_mask_pii("call +8613800001234 now", out, sizeof(out));
    CHECK(strstr(out, "13800001234") == NULL);
    CHECK(strstr(out, "+861********34") != NULL);
    zd_mask_pii("id 33010619620308123X here", out, sizeof(out));
    CHECK(strstr(out, "19620308") == NULL);
    zd_mask_pii("mail wang.xm@example.cn ok", out, sizeof(out));
    CHECK(strstr(out, "wang.xm") == NULL);
    CHECK(strstr(out, "w***@example.cn") != NULL);
    zd_mask_pii("partition 12 took 35 ms", out, sizeof(out));
    CHECK_STR(out, "partition 12 took 35 ms");
}

static void test_dates(void)
{
    int32_t d;
    CHECK_INT(zd_date_parse("1970-01-01", &d), 0);
    CHECK_INT(d, 0);
    CHECK_INT(zd_date_parse("2000-02-29", &d), 0);
    CHECK_INT(zd_date_parse("2001-02-29", &d), -EINVAL);
    CHECK_INT(zd_date_parse("2001-13-01", &d), -EINVAL);
    CHECK_INT(zd_date_parse("2001-1-01", &d), -EINVAL);
    char buf[11];
    zd_date_format(zd_date_from_ymd(1962, 3, 8), buf);
    CHECK_STR(buf, "1962-03-08");

    int32_t birth = zd_date_from_ymd(1962, 3, 8);
    CHECK_INT(zd_date_age(birth, zd_date_from_ymd(2022, 3, 7)), 59);
    CHECK_INT(zd_date_age(birth, zd_date_from_ymd(2022, 3, 8)), 60); /* turns 60 today */
    int32_t leap = zd_date_from_ymd(2000, 2, 29);
    CHECK_INT(zd_date_age(leap, zd_date_from_ymd(2018, 2, 28)), 17);
    CHECK_INT(zd_date_age(leap, zd_date_from_ymd(2018, 3, 1)), 18);
    CHECK_INT(zd_date_age(leap, zd_date_from_ymd(2020, 2, 29)), 20);

    /* The threshold agrees with zd_date_age over every birth date in a window. */
    int32_t days[] = {zd_date_from_ymd(2024, 2, 29), zd_date_from_ymd(2023, 3, 1),
                      zd_date_from_ymd(2021, 12, 31)};
    int bad = 0;
    for (int t = 0; t < 3; t++)
        for (int years = 0; years < 80; years += 7)
            for (int32_t b = days[t] - 366 * 81; b <= days[t]; b += 1) {
                bool by_age = zd_date_age(b, days[t]) >= years;
                bool by_thr = b <= zd_date_age_threshold(days[t], years);
                bad += by_age != by_thr;
            }
    CHECK_INT(bad, 0);

    setenv("ZHIDA_TODAY", "2021-06-01", 1);
    CHECK_INT(zd_date_today("Asia/Shanghai"), zd_date_from_ymd(2021, 6, 1));
    unsetenv("ZHIDA_TODAY");
}

static void test_schema(void)
{
    zd_schema *s = zd_schema_default();
    CHECK(s != NULL);
    CHECK_INT(zd_schema_find(s, "kind")->index, ZD_ATTR_KIND);
    CHECK_INT(zd_schema_find(s, "region")->index, ZD_ATTR_REGION);
    CHECK_INT(zd_schema_find(s, "tags")->index, ZD_ATTR_TAGS);
    CHECK(zd_schema_find(s, "employees")->type == ZD_T_NUMBER);
    CHECK(zd_schema_find(s, "founded")->type == ZD_T_DATE);
    CHECK_STR(zd_schema_suggest(s, "employes"), "employees");
    CHECK(zd_schema_suggest(s, "zzzzzzzz") == NULL);
    const zd_attr *ind = zd_schema_find(s, "industry");
    CHECK(zd_code_valid(ind, "C", 1));
    CHECK(zd_code_valid(ind, "C1311", 5));
    CHECK(!zd_code_valid(ind, "C13111", 6));
    CHECK(!zd_code_valid(ind, "13", 2));
    const zd_attr *reg = zd_schema_find(s, "region");
    CHECK(zd_code_valid(reg, "330106", 6));
    CHECK(zd_code_valid(reg, "330106001", 9));
    CHECK(!zd_code_valid(reg, "330", 3));
    CHECK(!zd_code_valid(reg, "33A106", 6));
    zd_schema_free(s);

    const char *gws[] = {"zlb"};
    zd_error err;
    cJSON *j = cJSON_Parse("{\"grade\": {\"type\": \"keyword\", \"values\": [\"a\", \"b\"]},"
                           " \"score\": {\"type\": \"number\", \"decimals\": 1, \"min\": -5}}");
    s = zd_schema_from_json(j, gws, 1, &err);
    cJSON_Delete(j);
    CHECK(s != NULL);
    if (s) {
        CHECK(zd_schema_find(s, "grade") != NULL);
        CHECK_INT(zd_schema_find(s, "score")->min, -50);
        CHECK(zd_schema_find(s, "employees") == NULL);
        CHECK(zd_schema_has_gateway(s, "zlb"));
        CHECK(!zd_schema_has_gateway(s, "sms"));
        zd_schema_free(s);
    }
    j = cJSON_Parse("{\"grade\": {\"type\": \"keyword\", \"colour\": 1}}");
    s = zd_schema_from_json(j, gws, 1, &err);
    cJSON_Delete(j);
    CHECK(s == NULL);
    CHECK_STR(err.field, "schema.grade.colour");
    /* A repeated key in an attribute is a config error naming the attribute and the key;
     * "values" twice used to write past the first array's allocation. */
    j = cJSON_Parse("{\"grade\": {\"type\": \"keyword\", \"values\": [\"a\"], \"values\": "
                    "[\"b\", \"c\", \"d\", \"e\"]}}");
    s = zd_schema_from_json(j, gws, 1, &err);
    cJSON_Delete(j);
    CHECK(s == NULL);
    zd_schema_free(s);
    CHECK_STR(err.field, "schema.grade.values");
    CHECK(strstr(err.message, "duplicate key \"schema.grade.values\"") != NULL);
    j = cJSON_Parse("{\"n\": {\"type\": \"number\", \"min\": 1, \"type\": \"date\"}}");
    s = zd_schema_from_json(j, gws, 1, &err);
    cJSON_Delete(j);
    CHECK(s == NULL);
    zd_schema_free(s);
    CHECK_STR(err.field, "schema.n.type");
    j = cJSON_Parse("{\"and\": {\"type\": \"keyword\"}}");
    s = zd_schema_from_json(j, gws, 1, &err);
    cJSON_Delete(j);
    CHECK(s == NULL);
    CHECK_STR(err.field, "and");
}

static void test_profiles(void)
{
    zd_schema *s = zd_schema_default();
    zd_error err;
    const char *good =
        "{\"kind\": \"enterprise\", \"region\": \"330106\", \"attrs\": {\"industry\": "
        "\"C1311\", \"employees\": 40, \"founded\": \"2019-05-01\", \"scale\": \"small\", "
        "\"registered_capital\": 500.25}, \"tags\": [\"srdi\", \"hightech\", \"srdi\"], "
        "\"fields\": {\"name\": \"\xe7\x8e\x8b\xe5\xb0\x8f\xe6\x98\x8e\"}, \"contacts\": "
        "{\"zlb\": \"user-8812\", \"sms\": \"+8613800000000\"}, \"prefs\": "
        "{\"mute_categories\": [\"tax\"], \"mute_gateways\": [\"sms\"], \"quiet_hours\": "
        "\"22:00-08:00\"}}";
    zd_profile *p = parse(s, "e0000042", good, &err);
    CHECK(p != NULL);
    if (p) {
        CHECK_STR(p->vals[ZD_ATTR_KIND].str, "enterprise");
        CHECK_STR(p->vals[ZD_ATTR_REGION].str, "330106");
        CHECK_INT(p->vals[ZD_ATTR_TAGS].ntags, 2);
        CHECK_STR(p->vals[ZD_ATTR_TAGS].tags[0], "hightech");
        CHECK_INT(p->vals[zd_schema_find(s, "employees")->index].num, 40);
        CHECK_INT(p->vals[zd_schema_find(s, "registered_capital")->index].num, 50025);
        CHECK(!p->vals[zd_schema_find(s, "birth_date")->index].present);
        int32_t d;
        zd_date_parse("2019-05-01", &d);
        CHECK_INT(p->vals[zd_schema_find(s, "founded")->index].num, d);

        /* The normalized document round-trips to an equal profile and equal text. */
        char *json = zd_profile_to_json(p);
        zd_profile *q = NULL;
        CHECK_INT(zd_profile_parse(s, "e0000042", json, strlen(json), &q, &err), 0);
        if (q) {
            char *json2 = zd_profile_to_json(q);
            CHECK_STR(json2, json);
            free(json2);
            zd_profile_free(q);
        }
        free(json);
        zd_profile_free(p);
    }

    expect_error(s, "{\"region\": \"330106\"}", "missing_field", "kind");
    expect_error(s, "{\"kind\": \"person\"}", "invalid_value", "kind");
    expect_error(s, "{\"kind\": \"citizen\", \"region\": \"330\"}", "invalid_value", "region");
    expect_error(s, "{\"kind\": \"citizen\", \"attrs\": {\"employees\": \"many\"}}", "invalid_type",
                 "attrs.employees");
    expect_error(s, "{\"kind\": \"citizen\", \"attrs\": {\"employees\": 1.5}}", "invalid_value",
                 "attrs.employees");
    expect_error(s, "{\"kind\": \"citizen\", \"attrs\": {\"employees\": -1}}", "out_of_range",
                 "attrs.employees");
    expect_error(s, "{\"kind\": \"citizen\", \"attrs\": {\"employes\": 3}}", "unknown_attribute",
                 "attrs.employes");
    expect_error(s, "{\"kind\": \"citizen\", \"attrs\": {\"birth_date\": \"1962-02-30\"}}",
                 "invalid_type", "attrs.birth_date");
    expect_error(s, "{\"kind\": \"citizen\", \"attrs\": {\"scale\": \"huge\"}}", "invalid_value",
                 "attrs.scale");
    expect_error(s, "{\"kind\": \"citizen\", \"attrs\": {\"region\": \"3301\"}}", "misplaced_field",
                 "attrs.region");
    expect_error(s, "{\"kind\": \"citizen\", \"employees\": 3}", "misplaced_field", "employees");
    expect_error(s, "{\"kind\": \"citizen\", \"colour\": 3}", "unknown_field", "colour");
    expect_error(s, "{\"kind\": \"citizen\", \"tags\": \"a\"}", "invalid_type", "tags");
    expect_error(s, "{\"kind\": \"citizen\", \"tags\": [\"\"]}", "invalid_value", "tags");
    expect_error(s, "{\"kind\": \"citizen\", \"tags\": [\"a\\u0001\"]}", "invalid_value", "tags");
    expect_error(s, "{\"kind\": \"citizen\", \"contacts\": {\"fax\": \"123\"}}", "unknown_gateway",
                 "contacts.fax");
    expect_error(s, "{\"kind\": \"citizen\", \"contacts\": {\"sms\": 13800000000}}",
                 "invalid_value", "contacts.sms");
    expect_error(s, "{\"kind\": \"citizen\", \"prefs\": {\"quiet_hours\": \"late\"}}",
                 "invalid_value", "prefs.quiet_hours");
    expect_error(s, "{\"kind\": \"citizen\", \"prefs\": {\"mute_gateways\": [\"fax\"]}}",
                 "unknown_gateway", "prefs.mute_gateways");
    expect_error(s, "{\"kind\": \"citizen\", \"prefs\": {\"volume\": 3}}", "unknown_field",
                 "prefs.volume");
    expect_error(s, "{\"kind\": \"citizen\", \"id\": \"other\"}", "id_mismatch", "id");

    /* An error about a contact never repeats the contact value. */
    zd_profile *bad =
        parse(s, "x1", "{\"kind\": \"citizen\", \"contacts\": {\"sms\": \"\"}}", &err);
    CHECK(bad == NULL);
    zd_profile_free(bad);

    /* Invalid UTF-8 inside a string value is rejected. */
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", "citizen");
    cJSON *f = cJSON_AddObjectToObject(j, "fields");
    cJSON_AddStringToObject(f, "name", "\xff\xfe");
    zd_profile *u = NULL;
    CHECK_INT(zd_profile_from_json(s, "x1", j, &u, &err), -EINVAL);
    CHECK_STR(err.field, "fields.name");
    cJSON_Delete(j);

    CHECK_INT(zd_profile_from_json(s, "bad id", cJSON_GetObjectItem(NULL, "x"), &u, &err), -EINVAL);
    CHECK_STR(err.code, "invalid_id");
    zd_schema_free(s);
}

/* Asserts that zd_json_parse refuses text with `code` naming `field`. */
static void expect_json_error(const char *text, size_t len, int depth, const char *code,
                              const char *field)
{
    cJSON *j = (cJSON *)1;
    zd_error err;
    memset(&err, 0, sizeof(err));
    CHECK_INT(zd_json_parse(text, len, depth, &j, &err), -EINVAL);
    CHECK(j == NULL);
    CHECK_STR(err.code, code);
    CHECK_STR(err.field, field);
    if (strcmp(err.code, code) != 0)
        fprintf(stderr, "  for: %.*s (%s)\n", (int)len, text, err.message);
}

#define JSON_ERR(lit, depth, code, field)                                                          \
    expect_json_error(lit, sizeof(lit) - 1, depth, code, field)

static void test_json(void)
{
    cJSON *j = NULL;
    zd_error err;
    CHECK_INT(zd_json_parse("{\"a\": [1, 2.5, \"x\"]} \r\n", 21, 4, &j, &err), 0);
    CHECK(cJSON_IsObject(j));
    cJSON_Delete(j);
    /* Depth counts arrays and objects outside strings only. */
    CHECK_INT(zd_json_parse("[[[[\"[[[[[\"]]]]", 15, 4, &j, &err), 0);
    cJSON_Delete(j);
    JSON_ERR("[[[[[1]]]]]", 4, "too_deep", "");
    JSON_ERR("", 32, "bad_json", "");
    JSON_ERR("   ", 32, "bad_json", "");
    JSON_ERR("{\"a\": 1} x", 32, "bad_json", "");
    JSON_ERR("{\"a\": 1}{\"a\": 2}", 32, "bad_json", "");
    JSON_ERR("{\"a\": 1},", 32, "bad_json", "");
    JSON_ERR("{\"a\": \"x\\u0000y\"}", 32, "bad_json", "");
    JSON_ERR("{\"a\\u0000b\": 1}", 32, "bad_json", "");
    JSON_ERR("{\"a\": 1}\0", 32, "bad_json", "");
    JSON_ERR("{\"a\": \"\\\0\"}", 32, "bad_json", "");
    JSON_ERR("{\"a\": \"\xc3\x28\"}", 32, "invalid_utf8", "");
    /* cJSON takes any control character for white space and copies it raw into strings. */
    JSON_ERR("\x18{}", 32, "bad_json", "");
    JSON_ERR("{\"a\":\x01 1}", 32, "bad_json", "");
    JSON_ERR("{\"a\": 1}\x0b", 32, "bad_json", "");
    JSON_ERR("{\"a\": \"x\ty\"}", 32, "bad_json", "");
    JSON_ERR("{\"a\": \"x\\\x01\"}", 32, "bad_json", "");
    JSON_ERR("\xef\xbb\xbf{}", 32, "bad_json", "");
    /* A text that ends inside a string, right after a backslash (found by the fuzzer: the
     * pre-scan stepped over the end). */
    char *tail = malloc(3);
    memcpy(tail, "\"\\", 2);
    expect_json_error(tail, 2, 32, "bad_json", "");
    free(tail);
    CHECK_INT(zd_json_parse("\t{\"a\":\r\n\"x\\ty\"}\n", 16, 4, &j, &err), 0);
    CHECK(j && strcmp(cJSON_GetObjectItem(j, "a")->valuestring, "x\ty") == 0);
    cJSON_Delete(j);
    /* An escaped backslash before "u0000" is not a NUL escape. */
    CHECK_INT(zd_json_parse("[\"\\\\u0000\"]", 11, 4, &j, &err), 0);
    CHECK(j && strcmp(j->child->valuestring, "\\u0000") == 0);
    cJSON_Delete(j);

    /* Numbers that overflow a double are refused with their path. */
    JSON_ERR("{\"fields\": {\"n\": 1e999}}", 32, "out_of_range", "fields.n");
    JSON_ERR("{\"fields\": {\"n\": -1e999}}", 32, "out_of_range", "fields.n");
    JSON_ERR("{\"a\": [0, {\"b\": [2, 1E400]}]}", 32, "out_of_range", "a[1].b[1]");
    JSON_ERR("1e999", 32, "out_of_range", "");
    CHECK_INT(zd_json_parse("[1e308, -1e308, 4.9e-324, 1e-999]", 33, 4, &j, &err), 0);
    cJSON_Delete(j);

    /* Repeated keys, in small objects and in large ones (which sort). */
    JSON_ERR("{\"kind\": \"a\", \"kind\": \"b\"}", 32, "bad_json", "kind");
    JSON_ERR("{\"f\": {\"x\": 1, \"y\": 2, \"x\": 3}}", 32, "bad_json", "f.x");
    char big[4096];
    size_t n = (size_t)snprintf(big, sizeof(big), "{\"o\": {");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "\"k%d\": %d, ", i, i);
    n += (size_t)snprintf(big + n, sizeof(big) - n, "\"k57\": 0}}");
    expect_json_error(big, n, 32, "bad_json", "o.k57");
    big[n - 9] = 'z'; /* "z57": all keys distinct again */
    CHECK_INT(zd_json_parse(big, n, 32, &j, &err), 0);
    cJSON_Delete(j);

    /* A long path is cut at a character boundary, never inside a UTF-8 sequence. */
    char longkey[512];
    n = (size_t)snprintf(longkey, sizeof(longkey), "{\"fields\": {\"");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(longkey + n, sizeof(longkey) - n, "\xe7\x8e\x8b");
    n += (size_t)snprintf(longkey + n, sizeof(longkey) - n, "\": 1e999}}");
    CHECK_INT(zd_json_parse(longkey, n, 32, &j, &err), -EINVAL);
    CHECK(strlen(err.field) <= ZD_JSON_PATH_MAX);
    CHECK(zd_utf8_valid(err.field, strlen(err.field)));
    CHECK(strncmp(err.field, "fields.\xe7\x8e\x8b", 10) == 0);
}

/* PUT bodies and import lines pass the same validator (zd_profile_from_text). */
static void test_profile_text(void)
{
    zd_schema *s = zd_schema_default();
    zd_profile *p = NULL;
    zd_error err;
    char id[ZD_ID_MAX + 1];
#define TEXT(lit, pid, depth)                                                                      \
    zd_profile_from_text(s, pid, lit, sizeof(lit) - 1, depth, &p, id, &err)
    CHECK_INT(TEXT("{\"id\": \"i-1\", \"kind\": \"citizen\"}", NULL, 32), 0);
    CHECK(p && strcmp(p->id, "i-1") == 0);
    CHECK_STR(id, "i-1");
    zd_profile_free(p);
    CHECK_INT(TEXT("{\"kind\": \"citizen\"}", "u-1", 32), 0);
    CHECK(p && strcmp(p->id, "u-1") == 0);
    zd_profile_free(p);

    /* \u0000 in the id used to cut it to "nul" and import that profile. */
    CHECK_INT(TEXT("{\"id\": \"nul\\u0000x\", \"kind\": \"citizen\"}", NULL, 32), -EINVAL);
    CHECK(p == NULL);
    CHECK_STR(err.code, "bad_json");
    CHECK_STR(id, "");
    CHECK_INT(TEXT("{\"id\": \"t-1\", \"kind\": \"citizen\"} trailing", NULL, 32), -EINVAL);
    CHECK_STR(err.code, "bad_json");
    CHECK_INT(TEXT("{\"id\": \"d-1\", \"kind\": \"citizen\", \"fields\": {\"a\": [[1]]}}", NULL, 3),
              -EINVAL);
    CHECK_STR(err.code, "too_deep");
    /* Errors found once the id is known report it. */
    CHECK_INT(
        TEXT("{\"id\": \"n-1\", \"kind\": \"citizen\", \"fields\": {\"n\": 1e999}}", NULL, 32),
        -EINVAL);
    CHECK_STR(err.code, "out_of_range");
    CHECK_STR(err.field, "fields.n");
    CHECK_STR(id, "n-1");
    CHECK_INT(TEXT("{\"id\": \"n-2\", \"kind\": \"enterprise\", \"attrs\": {\"employees\": "
                   "-1e999}}",
                   NULL, 32),
              -EINVAL);
    CHECK_STR(err.field, "attrs.employees");
    CHECK_INT(TEXT("{\"id\": \"r-1\", \"id\": \"r-2\", \"kind\": \"citizen\"}", NULL, 32), -EINVAL);
    CHECK_STR(err.code, "bad_json");
    CHECK_STR(err.field, "id");
    CHECK_INT(TEXT("{\"kind\": \"citizen\"}", NULL, 32), -EINVAL);
    CHECK_STR(err.code, "missing_field");
    CHECK_STR(err.field, "id");
    CHECK_INT(TEXT("{\"id\": \"a b\", \"kind\": \"citizen\"}", NULL, 32), -EINVAL);
    CHECK_STR(err.code, "invalid_id");
    CHECK_STR(id, "");
    CHECK_INT(TEXT("[{\"id\": \"a-1\", \"kind\": \"citizen\"}]", NULL, 32), -EINVAL);
    CHECK_STR(err.code, "bad_json");
    CHECK_INT(TEXT("{\"id\": \"other\", \"kind\": \"citizen\"}", "u-1", 32), -EINVAL);
    CHECK_STR(err.code, "id_mismatch");
#undef TEXT

    /* A tree built in code (a merged PATCH) meets the same value rules. */
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", "citizen");
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(j, "fields"), "n", 1.0 / 0.0);
    CHECK_INT(zd_profile_from_json(s, "m-1", j, &p, &err), -EINVAL);
    CHECK(p == NULL);
    CHECK_STR(err.code, "out_of_range");
    CHECK_STR(err.field, "fields.n");
    cJSON_Delete(j);

    /* A stored document that no longer validates (such as one holding the null that cJSON
     * printed for 1e999) is an error, never a half-filled profile. */
    const char *stored = "{\"kind\":\"citizen\",\"tags\":[\"t\"],\"fields\":{\"n\":null}}";
    p = (zd_profile *)1;
    CHECK_INT(zd_profile_parse(s, "s-1", stored, strlen(stored), &p, &err), -EINVAL);
    CHECK(p == NULL);
    CHECK_STR(err.field, "fields.n");
    zd_schema_free(s);
}

static void test_merge_patch(void)
{
    cJSON *base = cJSON_Parse("{\"a\": 1, \"b\": {\"c\": 2, \"d\": 3}, \"e\": [1]}");
    cJSON *patch = cJSON_Parse("{\"a\": null, \"b\": {\"c\": 5}, \"e\": [2], \"f\": \"x\"}");
    cJSON *m = zd_json_merge_patch(base, patch);
    char *s = cJSON_PrintUnformatted(m);
    CHECK_STR(s, "{\"b\":{\"c\":5,\"d\":3},\"e\":[2],\"f\":\"x\"}");
    free(s);
    cJSON_Delete(m);
    cJSON_Delete(base);
    cJSON_Delete(patch);
}

static void test_partition(void)
{
    int counts[16] = {0};
    char id[32];
    for (int i = 0; i < 16000; i++) {
        snprintf(id, sizeof(id), "c%07d", i);
        counts[zd_partition_of(id, 16)]++;
    }
    for (int p = 0; p < 16; p++)
        CHECK(counts[p] > 700 && counts[p] < 1300);
    CHECK_INT(zd_partition_of("e0000042", 16), zd_partition_of("e0000042", 16));
    CHECK_INT(zd_gid(3, 5) >> ZD_DENSE_BITS, 3);
}

int main(void)
{
    test_text();
    test_mask();
    test_dates();
    test_schema();
    test_profiles();
    test_json();
    test_profile_text();
    test_merge_patch();
    test_partition();
    return check_report("profile");
}
