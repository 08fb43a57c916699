/* Unit tests of the synthetic population (client/population.c): determinism, the SPEC §2
 * shape of every line, acceptance by the default schema, and the consistency rules between
 * attributes and tags (students are young, scale follows head count, ...). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "client/population.h"
#include "common/date.h"
#include "profiles/profile.h"
#include "profiles/schema.h"
#include "tests/unit/check.h"

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return s[n] == '\0';
}

static const char *str_at(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool has_tag(const cJSON *doc, const char *tag)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(doc, "tags"))
    {
        if (cJSON_IsString(t) && strcmp(t->valuestring, tag) == 0)
            return true;
    }
    return false;
}

/* Region: a Zhejiang county (33 + city 01..11 + 2 digits) or a street under it (+3 digits). */
static bool region_ok(const char *r)
{
    size_t n = r ? strlen(r) : 0;
    if ((n != 6 && n != 9) || !all_digits(r, n) || strncmp(r, "33", 2) != 0)
        return false;
    int city = (r[2] - '0') * 10 + (r[3] - '0');
    return city >= 1 && city <= 11;
}

static bool mobile_ok(const char *s)
{
    return s && strlen(s) == 14 && strncmp(s, "+861", 4) == 0 && all_digits(s + 1, 13);
}

static void check_common(const cJSON *doc, const char *kind, char prefix, uint64_t n,
                         const zd_schema *schema)
{
    char want[32];
    snprintf(want, sizeof(want), "%c%07llu", prefix, (unsigned long long)n);
    CHECK_STR(str_at(doc, "id"), want);
    CHECK_STR(str_at(doc, "kind"), kind);
    CHECK(region_ok(str_at(doc, "region")));
    CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(doc, "tags")));
    const cJSON *contacts = cJSON_GetObjectItemCaseSensitive(doc, "contacts");
    CHECK(mobile_ok(str_at(contacts, "sms")));
    CHECK(str_at(contacts, "zlb") != NULL);

    /* Every top-level key is one of SPEC §2's; every attr one the default schema declares. */
    static const char *const top[] = {"id",     "kind",     "region", "attrs", "tags",
                                      "fields", "contacts", "prefs",  NULL};
    const cJSON *it;
    cJSON_ArrayForEach(it, doc)
    {
        CHECK(in_list(it->string, top));
    }
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(doc, "attrs"))
    {
        CHECK(zd_schema_find(schema, it->string) != NULL);
    }

    /* And the server's own validation accepts it. */
    cJSON *body = cJSON_Duplicate(doc, 1);
    cJSON_DeleteItemFromObjectCaseSensitive(body, "id");
    zd_profile *p = NULL;
    zd_error err;
    memset(&err, 0, sizeof(err));
    int rc = zd_profile_from_json(schema, want, body, &p, &err);
    if (rc != 0)
        fprintf(stderr, "%s rejected: %s [%s] %s\n", want, err.code, err.field, err.message);
    CHECK_INT(rc, 0);
    zd_profile_free(p);
    cJSON_Delete(body);
}

static void test_citizens(const zd_popgen *g, const zd_schema *schema, int32_t as_of)
{
    static const char *const tags[] = {"retired",
                                       "veteran",
                                       "disabled",
                                       "low_income",
                                       "student",
                                       "new_resident",
                                       "farmer",
                                       "flexible_employment",
                                       "elderly_living_alone",
                                       NULL};
    char buf[ZD_POPGEN_LINE_MAX];
    int retired = 0, students = 0, email = 0, prefs = 0, street = 0;
    const int n = 5000;
    for (int i = 1; i <= n; i++) {
        size_t len = zd_popgen_citizen(g, (uint64_t)i, buf);
        CHECK(len > 0 && len < ZD_POPGEN_LINE_MAX && strlen(buf) == len);
        cJSON *doc = cJSON_Parse(buf);
        CHECK(doc != NULL);
        if (!doc)
            continue;
        check_common(doc, "citizen", 'c', (uint64_t)i, schema);
        const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(doc, "attrs");
        CHECK_INT(cJSON_GetArraySize(attrs), 1);
        int32_t birth = 0;
        CHECK_INT(
            zd_date_parse(str_at(attrs, "birth_date") ? str_at(attrs, "birth_date") : "", &birth),
            0);
        int age = zd_date_age(birth, as_of);
        CHECK(age >= 0 && age <= 100);
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(doc, "tags"))
        {
            CHECK(cJSON_IsString(t) && in_list(t->valuestring, tags));
        }
        if (has_tag(doc, "student")) {
            students++;
            CHECK(age >= 6 && age <= 24);
        }
        if (has_tag(doc, "retired")) {
            retired++;
            CHECK(age >= 55);
        }
        if (has_tag(doc, "elderly_living_alone"))
            CHECK(age >= 65);
        const char *name = str_at(cJSON_GetObjectItemCaseSensitive(doc, "fields"), "name");
        CHECK(name && strlen(name) >= 6 && strlen(name) <= 12); /* 2..4 CJK characters */
        email += str_at(cJSON_GetObjectItemCaseSensitive(doc, "contacts"), "email") != NULL;
        prefs += cJSON_GetObjectItemCaseSensitive(doc, "prefs") != NULL;
        street += strlen(str_at(doc, "region")) == 9;
        cJSON_Delete(doc);
    }
    /* Frequencies as documented, with generous bounds for 5,000 samples. */
    CHECK(email > n * 35 / 100 && email < n * 45 / 100);
    CHECK(prefs > n * 7 / 100 && prefs < n * 13 / 100);
    CHECK(street > n * 26 / 100 && street < n * 34 / 100);
    CHECK(retired > n * 10 / 100 && retired < n * 25 / 100);
    CHECK(students > n * 10 / 100 && students < n * 25 / 100);
}

static void test_enterprises(const zd_popgen *g, const zd_schema *schema, int32_t as_of)
{
    static const char *const tags[] = {"hightech",  "srdi",     "little_giant", "export", "startup",
                                       "dishonest", "tech_sme", "green",        "listed", NULL};
    char buf[ZD_POPGEN_LINE_MAX];
    int32_t oldest = zd_date_from_ymd(1980, 1, 1);
    int manufacturing = 0, hangzhou = 0, micro = 0, dishonest = 0;
    const int n = 5000;
    for (int i = 1; i <= n; i++) {
        zd_popgen_enterprise(g, (uint64_t)i, buf);
        cJSON *doc = cJSON_Parse(buf);
        CHECK(doc != NULL);
        if (!doc)
            continue;
        check_common(doc, "enterprise", 'e', (uint64_t)i, schema);
        const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(doc, "attrs");
        const char *ind = str_at(attrs, "industry");
        CHECK(ind && strlen(ind) == 5 && ind[0] >= 'A' && ind[0] <= 'T' && all_digits(ind + 1, 4));
        const cJSON *emp = cJSON_GetObjectItemCaseSensitive(attrs, "employees");
        CHECK(cJSON_IsNumber(emp));
        double e = cJSON_IsNumber(emp) ? emp->valuedouble : 0;
        CHECK(e >= 1 && e <= 20000 && e == (double)(long)e);
        const char *scale = str_at(attrs, "scale");
        const char *want = e < 10 ? "micro" : e < 100 ? "small" : e < 1000 ? "medium" : "large";
        CHECK_STR(scale, want);
        CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(attrs, "registered_capital")));
        CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(attrs, "revenue")));
        int32_t founded = 0;
        CHECK_INT(zd_date_parse(str_at(attrs, "founded") ? str_at(attrs, "founded") : "", &founded),
                  0);
        CHECK(founded >= oldest && founded <= as_of);
        const cJSON *t;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(doc, "tags"))
        {
            CHECK(cJSON_IsString(t) && in_list(t->valuestring, tags));
        }
        if (has_tag(doc, "little_giant"))
            CHECK(has_tag(doc, "srdi"));
        if (has_tag(doc, "startup"))
            CHECK(zd_date_age(founded, as_of) < 3);
        const char *company = str_at(cJSON_GetObjectItemCaseSensitive(doc, "fields"), "company");
        CHECK(company && strstr(company, "有限公司") != NULL);
        manufacturing += ind && ind[0] == 'C';
        hangzhou += strncmp(str_at(doc, "region"), "3301", 4) == 0;
        micro += scale && strcmp(scale, "micro") == 0;
        dishonest += has_tag(doc, "dishonest");
        cJSON_Delete(doc);
    }
    CHECK(manufacturing > n * 30 / 100 && manufacturing < n * 50 / 100);
    CHECK(hangzhou > n * 14 / 100 && hangzhou < n * 24 / 100); /* the biggest city */
    CHECK(micro > n * 35 / 100 && micro < n * 65 / 100);
    CHECK(dishonest > 20 && dishonest < 90); /* ~1% */
}

static void test_determinism(void)
{
    zd_popgen *a = zd_popgen_new(7), *b = zd_popgen_new(7), *c = zd_popgen_new(8);
    char x[ZD_POPGEN_LINE_MAX], y[ZD_POPGEN_LINE_MAX], z[ZD_POPGEN_LINE_MAX];
    /* Profile n depends on (seed, kind, n) only, not on what was generated before. */
    zd_popgen_enterprise(b, 99, y);
    zd_popgen_citizen(b, 5, y);
    zd_popgen_citizen(a, 5, x);
    CHECK_STR(x, y);
    zd_popgen_citizen(c, 5, z);
    CHECK(strcmp(x, z) != 0);
    zd_popgen_citizen(a, 6, y);
    CHECK(strcmp(x, y) != 0);
    zd_popgen_free(a);
    zd_popgen_free(b);
    zd_popgen_free(c);
    zd_popgen_free(NULL);
}

static void test_write(void)
{
    zd_popgen *g = zd_popgen_new(1);
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (!f || !g) {
        zd_popgen_free(g);
        return;
    }
    CHECK_INT(zd_popgen_write(g, 700, 300, f), 0);
    rewind(f);
    char *line = NULL;
    size_t cap = 0;
    int lines = 0, citizens = 0, enterprises = 0, max_run = 0, run = 0;
    char first_c[ZD_POPGEN_LINE_MAX] = "", direct[ZD_POPGEN_LINE_MAX];
    char nth[ZD_POPGEN_LINE_MAX];
    int nth_same = 0;
    while (getline(&line, &cap, f) > 0) {
        size_t len = zd_popgen_line(g, 700, 300, (uint64_t)lines, nth);
        nth_same += len == strcspn(line, "\n") && memcmp(line, nth, len) == 0;
        lines++;
        if (strncmp(line, "{\"id\":\"c", 8) == 0) {
            if (!citizens)
                snprintf(first_c, sizeof(first_c), "%.*s", (int)strcspn(line, "\n"), line);
            citizens++;
            run++;
            if (run > max_run)
                max_run = run;
        } else {
            enterprises++;
            run = 0;
        }
    }
    CHECK_INT(lines, 1000);
    CHECK_INT(nth_same, 1000); /* zd_popgen_line() gives line i of the file */
    CHECK_INT(citizens, 700);
    CHECK_INT(enterprises, 300);
    CHECK(max_run <= 3); /* the two kinds are interleaved evenly */
    zd_popgen_citizen(g, 1, direct);
    CHECK_STR(first_c, direct);
    free(line);
    fclose(f);

    /* Only enterprises / nothing at all are fine too. */
    f = tmpfile();
    CHECK_INT(zd_popgen_write(g, 0, 3, f), 0);
    CHECK_INT(ftell(f) > 0, 1);
    fclose(f);
    f = tmpfile();
    CHECK_INT(zd_popgen_write(g, 0, 0, f), 0);
    CHECK_INT(ftell(f), 0);
    fclose(f);
    zd_popgen_free(g);
}

int main(void)
{
    zd_schema *schema = zd_schema_default();
    zd_popgen *g = zd_popgen_new(1);
    int32_t as_of = 0;
    CHECK_INT(zd_date_parse(ZD_POPGEN_AS_OF, &as_of), 0);
    CHECK(schema != NULL && g != NULL);
    if (schema && g) {
        test_citizens(g, schema, as_of);
        test_enterprises(g, schema, as_of);
    }
    test_determinism();
    test_write();
    zd_popgen_free(g);
    zd_schema_free(schema);
    return check_report("population");
}
