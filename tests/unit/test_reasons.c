/* Unit tests of matcher/reasons.c: the wording of every clause form, publishers' wording, and
 * the property that a profile's reasons are exactly the satisfied clauses explain reports that
 * the match needed: each is reported by explain as satisfied the way it is used, together they
 * decide the rule (three-valued evaluation with every other clause unknown is true), and none
 * can be left out. Random profiles x random rules, as tests/unit/test_rule.c. ZD_SEED=n
 * replays a run. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "common/date.h"
#include "common/names.h"
#include "common/text.h"
#include "matcher/reasons.h"
#include "matcher/rule.h"
#include "matcher/rule_internal.h"

#ifndef ZD_SOURCE_DATA_DIR
#error "ZD_SOURCE_DATA_DIR must name the source tree's data/ folder"
#endif

static zd_schema *schema;
static int32_t today; /* 2024-06-15 */
static zd_reason_names names;

#include "rule_gen.h"

static const char *seg_lookup(const char *name, void *udata)
{
    (void)udata;
    static const char *const segs[][2] = {
        {"hz", "region within \"3301\""},
        {"smallbiz",
         "kind = \"enterprise\" and (scale in [\"micro\", \"small\"] or employees < 50)"},
        {"senior", "kind = \"citizen\"\n  and age(birth_date) >= 60"},
        {"nested", "segment \"hz\" and not segment \"senior\""},
        {"clean", "not tags has \"dishonest\""},
    };
    for (size_t i = 0; i < sizeof(segs) / sizeof(segs[0]); i++)
        if (strcmp(segs[i][0], name) == 0)
            return segs[i][1];
    return NULL;
}

static zd_rule *compile(const char *text)
{
    zd_rule *r = NULL;
    zd_rule_error err;
    if (zd_rule_compile(schema, text, strlen(text), seg_lookup, NULL, &r, &err) != 0)
        fprintf(stderr, "unexpected compile error for [%s]: %s\n", text, err.message);
    return r;
}

static zd_profile *profile_from(const char *id, const char *json)
{
    cJSON *body = cJSON_Parse(json);
    zd_profile *p = NULL;
    zd_error err;
    if (!body || zd_profile_from_json(schema, id, body, &p, &err) != 0) {
        fprintf(stderr, "bad test profile %s\n", id);
        exit(2);
    }
    cJSON_Delete(body);
    return p;
}

/* The reasons text of rule for p, with overrides (JSON text or NULL). */
static const char *reasons_of(const char *rule, const zd_profile *p, const char *overrides)
{
    static char buf[1024];
    buf[0] = '\0';
    zd_rule *r = compile(rule);
    cJSON *o = overrides ? cJSON_Parse(overrides) : NULL;
    if (r)
        zd_rule_reasons(r, p, today, &names, o, "，", buf, sizeof(buf));
    cJSON_Delete(o);
    zd_rule_free(r);
    return buf;
}

static void test_wording(void)
{
    zd_profile *e = profile_from(
        "e1", "{\"kind\": \"enterprise\", \"region\": \"330106\", \"attrs\": {\"industry\": "
              "\"C1311\", \"employees\": 40, \"registered_capital\": 100.5, \"founded\": "
              "\"2022-06-16\", \"scale\": \"small\"}, \"tags\": [\"srdi\", \"hightech\"]}");
    zd_profile *c = profile_from(
        "c1", "{\"kind\": \"citizen\", \"region\": \"330102001\", \"attrs\": {\"birth_date\": "
              "\"1964-06-15\"}, \"tags\": []}");

    CHECK_STR(reasons_of("region within \"3301\"", e, NULL), "注册地在杭州市");
    CHECK_STR(reasons_of("region within \"3301\"", c, NULL), "居住在杭州市");
    CHECK_STR(reasons_of("region = \"330106\"", e, NULL), "注册地在杭州市西湖区");
    CHECK_STR(reasons_of("region within [\"3302\", \"3301\"]", e, NULL), "注册地在宁波市或杭州市");
    CHECK_STR(reasons_of("not region within \"3302\"", e, NULL), "注册地不在宁波市");
    CHECK_STR(reasons_of("region != \"3302\"", e, NULL), "注册地不在宁波市");
    CHECK_STR(reasons_of("region within \"3399\"", e, NULL), "");
    CHECK_STR(reasons_of("age(founded) < 3", e, NULL), "成立不满3年");
    CHECK_STR(reasons_of("age(founded) <= 2", e, NULL), "成立不满3年");
    CHECK_STR(reasons_of("not age(founded) >= 3", e, NULL), "成立不满3年");
    CHECK_STR(reasons_of("age(founded) >= 1", e, NULL), "成立满1年");
    CHECK_STR(reasons_of("employees < 300", e, NULL), "员工少于300人");
    CHECK_STR(reasons_of("employees >= 10", e, NULL), "员工不少于10人");
    CHECK_STR(reasons_of("employees in [40, 41]", e, NULL), "员工为40或41人");
    CHECK_STR(reasons_of("age(birth_date) >= 60", c, NULL), "年满60周岁");
    CHECK_STR(reasons_of("age(birth_date) > 59", c, NULL), "年满60周岁");
    CHECK_STR(reasons_of("age(birth_date) < 61", c, NULL), "未满61周岁");
    CHECK_STR(reasons_of("age(birth_date) = 60", c, NULL), "年龄为60周岁");
    CHECK_STR(reasons_of("industry within \"C13\"", e, NULL), "所属行业为农副食品加工业");
    CHECK_STR(reasons_of("industry within [\"I65\", \"C\"]", e, NULL),
              "所属行业为软件和信息技术服务业或制造业");
    CHECK_STR(reasons_of("scale in [\"micro\", \"small\"]", e, NULL), "企业规模为微型或小型");
    CHECK_STR(reasons_of("kind = \"enterprise\"", e, NULL), "是企业");
    CHECK_STR(reasons_of("kind != \"enterprise\"", c, NULL), "不是企业");
    CHECK_STR(reasons_of("registered_capital >= 100.5", e, NULL), "注册资本不低于100.5");
    CHECK_STR(reasons_of("registered_capital < 200", e, NULL), "注册资本低于200");
    CHECK_STR(reasons_of("founded < \"2023-01-01\"", e, NULL), "于2023年1月1日之前成立");
    CHECK_STR(reasons_of("birth_date >= \"1960-01-01\"", c, NULL), "于1960年1月1日或之后出生");
    CHECK_STR(reasons_of("not tags has \"dishonest\"", e, NULL), "无失信记录");
    CHECK_STR(reasons_of("tags has \"srdi\"", e, NULL), "是专精特新企业");
    CHECK_STR(reasons_of("not tags has \"export\"", e, NULL), "没有「export」标签");
    CHECK_STR(reasons_of("exists industry", e, NULL), "已登记所属行业");
    /* Absent attributes: the comparison is false because there is no value, and that is said. */
    CHECK_STR(reasons_of("not employees >= 300", c, NULL), "未登记员工人数");
    CHECK_STR(reasons_of("not exists industry", c, NULL), "未登记所属行业");
    /* `or`: the first satisfied branch only; `and`: every conjunct, in source order. */
    CHECK_STR(reasons_of("tags has \"hightech\" or tags has \"srdi\"", e, NULL), "是高新技术企业");
    CHECK_STR(reasons_of("kind = \"enterprise\" and region within \"3301\" and employees < 300 "
                         "and age(founded) < 3 and not tags has \"dishonest\"",
                         e, NULL),
              "是企业，注册地在杭州市，员工少于300人，成立不满3年，无失信记录");
    /* `not` over an `or`: every branch failed, each is a reason. */
    CHECK_STR(reasons_of("not (region within \"3302\" or tags has \"dishonest\")", e, NULL),
              "注册地不在宁波市，无失信记录");
    /* `not` over an `and`: its first failing conjunct. */
    CHECK_STR(reasons_of("not (kind = \"enterprise\" and employees > 100)", e, NULL),
              "员工不超过100人");
    /* Segments contribute their clauses. */
    CHECK_STR(reasons_of("segment \"smallbiz\"", e, NULL), "是企业，企业规模为微型或小型");
    /* Publishers' wording, by clause text (and "not " + text for a clause used negated). */
    CHECK_STR(reasons_of("employees < 300 and not tags has \"dishonest\"", e,
                         "{\"employees < 300\": \"属于中小企业\", "
                         "\"not tags has \\\"dishonest\\\"\": \"信用良好\"}"),
              "属于中小企业，信用良好");
    CHECK_STR(
        reasons_of("not tags has \"dishonest\"", e, "{\"tags has \\\"dishonest\\\"\": \"x\"}"),
        "无失信记录");

    /* Without name tables codes stay codes. */
    zd_rule *r = compile("region within \"3301\" and industry within \"C13\"");
    char buf[256];
    zd_rule_reasons(r, e, today, NULL, NULL, "；", buf, sizeof(buf));
    CHECK_STR(buf, "注册地在行政区划3301；所属行业为代码C13");
    /* A small buffer cuts on a character boundary. */
    for (size_t cap = 1; cap < 40; cap++) {
        size_t n = zd_rule_reasons(r, e, today, &names, NULL, "，", buf, cap);
        CHECK(n < cap && strlen(buf) == n && zd_utf8_valid(buf, n));
    }
    cJSON *arr = zd_rule_reasons_json(r, e, today, &names, NULL);
    char *s = cJSON_PrintUnformatted(arr);
    CHECK_STR(s, "[\"注册地在杭州市\",\"所属行业为农副食品加工业\"]");
    free(s);
    cJSON_Delete(arr);

    /* reason_texts keys must be clauses of the rule. */
    char bad[128], msg[512];
    cJSON *t = cJSON_Parse("{\"region within \\\"3301\\\"\": \"在杭州\", "
                           "\"not industry within \\\"C13\\\"\": \"不是农副食品加工\"}");
    CHECK_INT(zd_rule_check_reason_texts(r, t, bad, sizeof(bad), msg, sizeof(msg)), 0);
    cJSON_Delete(t);
    t = cJSON_Parse("{\"region within \\\"3301\\\"\": \"ok\", \"employees < 3\": \"x\"}");
    CHECK_INT(zd_rule_check_reason_texts(r, t, bad, sizeof(bad), msg, sizeof(msg)), -EINVAL);
    CHECK_STR(bad, "employees < 3");
    cJSON_Delete(t);
    t = cJSON_Parse("{\"region within \\\"3301\\\"\": \"\"}");
    CHECK_INT(zd_rule_check_reason_texts(r, t, bad, sizeof(bad), msg, sizeof(msg)), -EINVAL);
    cJSON_Delete(t);
    t = cJSON_Parse("[]");
    CHECK_INT(zd_rule_check_reason_texts(r, t, bad, sizeof(bad), msg, sizeof(msg)), -EINVAL);
    cJSON_Delete(t);
    zd_rule_free(r);
    zd_profile_free(e);
    zd_profile_free(c);
}

/* ---- the property test ----------------------------------------------------------------- */

enum { K_FALSE, K_TRUE, K_UNKNOWN };

/* Three-valued (Kleene) evaluation where leaf i has value known[i]. */
static int kleene(const zd_rnode *n, const unsigned char *known, int *leaf)
{
    if (n->kind == ZD_RN_LEAF)
        return known[(*leaf)++];
    if (n->kind == ZD_RN_NOT) {
        int k = kleene(n->kids[0], known, leaf);
        return k == K_UNKNOWN ? K_UNKNOWN : k == K_TRUE ? K_FALSE : K_TRUE;
    }
    bool and = n->kind == ZD_RN_AND;
    int res = and? K_TRUE : K_FALSE;
    for (int i = 0; i < n->nkids; i++) {
        int k = kleene(n->kids[i], known, leaf);
        if (k == (and? K_FALSE : K_TRUE))
            res = k;
        else if (k == K_UNKNOWN && res != (and? K_FALSE : K_TRUE))
            res = K_UNKNOWN;
    }
    return res;
}

static int decided(const zd_rule *r, const zd_reason *rs, int n, int skip, int nclauses)
{
    unsigned char *known = malloc((size_t)nclauses + 1);
    memset(known, K_UNKNOWN, (size_t)nclauses + 1);
    for (int i = 0; i < n; i++)
        if (i != skip)
            known[rs[i].clause] = rs[i].negated ? K_FALSE : K_TRUE;
    int leaf = 0;
    int v = kleene(r->root, known, &leaf);
    free(known);
    return v;
}

static void test_property(void)
{
    uint64_t seed = 20240615;
    const char *env = getenv("ZD_SEED");
    if (env && *env)
        seed = strtoull(env, NULL, 10);
    printf("reasons property test seed: %" PRIu64 "\n", seed);
    rng_state = seed * UINT64_C(0x9E3779B97F4A7C15) + 1;
    enum { PROFILES = 200, RULES = 600, MAXR = 256 };
    zd_profile *ps[PROFILES];
    char id[32];
    for (int i = 0; i < PROFILES; i++) {
        snprintf(id, sizeof(id), "p%d", i);
        ps[i] = rand_profile(id);
    }
    sbuf b = {0};
    zd_reason rs[MAXR];
    long matched = 0, reasons = 0, failures = 0;
    for (int k = 0; k < RULES && failures < 5; k++) {
        b.len = 0;
        sb_add(&b, "%s", "");
        rand_expr(&b, 1 + rn(4));
        zd_rule *r = compile(b.s);
        CHECK(r != NULL);
        if (!r)
            continue;
        for (int i = 0; i < PROFILES; i++) {
            cJSON *x = zd_rule_explain(r, ps[i], today);
            cJSON *clauses = cJSON_GetObjectItem(x, "clauses");
            int nclauses = cJSON_GetArraySize(clauses);
            bool match = cJSON_IsTrue(cJSON_GetObjectItem(x, "match"));
            int n = zd_rule_reason_clauses(r, ps[i], today, rs, MAXR);
            bool bad = n > MAXR || (n > 0) != match;
            for (int j = 0; j < n && j < MAXR && !bad; j++) {
                cJSON *c = cJSON_GetArrayItem(clauses, rs[j].clause);
                bad = !c || strcmp(cJSON_GetObjectItem(c, "text")->valuestring, rs[j].text) != 0 ||
                      cJSON_IsTrue(cJSON_GetObjectItem(c, "result")) == rs[j].negated ||
                      (j > 0 && rs[j].clause <= rs[j - 1].clause);
                char w[512];
                size_t len = zd_reason_word(&rs[j], ps[i], today, &names, w, sizeof(w));
                bad = bad || len == 0 || !zd_utf8_valid(w, len);
            }
            if (!bad && match) {
                /* Together they decide the rule; without any one of them it is undecided. */
                bad = decided(r, rs, n, -1, nclauses) != K_TRUE;
                for (int j = 0; j < n && !bad; j++)
                    bad = decided(r, rs, n, j, nclauses) == K_TRUE;
            }
            if (bad) {
                failures++;
                fprintf(stderr, "reasons of [%s] for %s disagree with explain (%d reasons)\n", b.s,
                        ps[i]->id, n);
            }
            CHECK(!bad);
            matched += match;
            reasons += n;
            cJSON_Delete(x);
        }
        zd_rule_free(r);
    }
    printf("reasons property test: %ld matches, %ld reasons\n", matched, reasons);
    CHECK(matched > 1000);
    free(b.s);
    for (int i = 0; i < PROFILES; i++)
        zd_profile_free(ps[i]);
}

/* The cost of {{reasons}} per notice: a five-clause rule, worded with the name tables
 * (ZD_REASONS_BENCH=0 skips it). */
static void bench(void)
{
    const char *env = getenv("ZD_REASONS_BENCH");
    if (env && strcmp(env, "0") == 0)
        return;
    zd_profile *e = profile_from(
        "e1", "{\"kind\": \"enterprise\", \"region\": \"330106\", \"attrs\": {\"industry\": "
              "\"C1311\", \"employees\": 40, \"founded\": \"2022-06-16\"}, \"tags\": [\"srdi\"]}");
    zd_rule *r = compile("kind = \"enterprise\" and (region within \"3302\" or region within "
                         "\"3301\") and employees < 300 and age(founded) < 3 and not tags has "
                         "\"dishonest\"");
    char buf[1024];
    enum { N = 200000 };
    struct timespec a, b;
    size_t total = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < N; i++)
        total += zd_rule_reasons(r, e, today, &names, NULL, "，", buf, sizeof(buf));
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / N;
    printf("reasons bench: %.0f ns per profile (5 reasons, %zu bytes)\n", ns, total / N);
    zd_rule_free(r);
    zd_profile_free(e);
}

int main(void)
{
    schema = zd_schema_default();
    today = zd_date_from_ymd(2024, 6, 15);
    zd_names *regions = zd_names_new(), *industries = zd_names_new();
    CHECK_INT(zd_names_load(regions, ZD_SOURCE_DATA_DIR "/regions-zj.tsv", NULL), 0);
    CHECK_INT(zd_names_load(industries, ZD_SOURCE_DATA_DIR "/industries.tsv", NULL), 0);
    names.regions = regions;
    names.industries = industries;
    test_wording();
    test_property();
    bench();
    zd_names_free(regions);
    zd_names_free(industries);
    zd_schema_free(schema);
    return check_report("reasons");
}
