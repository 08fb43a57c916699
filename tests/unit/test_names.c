/* Unit tests of the code-to-name tables (common/names.c) and of the shipped data files: the
 * TSV format, its errors, and that every region and industry the demo population produces
 * (client/population.c) has a name at the level people read it. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "client/population.h"
#include "common/names.h"
#include "tests/unit/check.h"

#ifndef ZD_SOURCE_DATA_DIR
#error "ZD_SOURCE_DATA_DIR must name the source tree's data/ folder"
#endif

static char tmp_path[64];

static const char *write_tmp(const char *text)
{
    snprintf(tmp_path, sizeof(tmp_path), "/tmp/zd-names-XXXXXX");
    int fd = mkstemp(tmp_path);
    if (fd < 0)
        return NULL;
    size_t n = strlen(text);
    if (write(fd, text, n) != (ssize_t)n) {
        close(fd);
        return NULL;
    }
    close(fd);
    return tmp_path;
}

static void test_format(void)
{
    zd_names *n = zd_names_new();
    zd_error e = {0};
    const char *p = write_tmp("# comment\n\n3301\t杭州市\r\n330106\t西湖区\nC\t制造业\nC13\t农副"
                              "食品加工业");
    CHECK(p != NULL);
    CHECK_INT(zd_names_load(n, p, &e), 0);
    CHECK_INT(zd_names_count(n), 4);
    CHECK_STR(zd_names_get(n, "3301"), "杭州市");
    CHECK_STR(zd_names_get(n, "330106"), "西湖区");
    CHECK_STR(zd_names_get(n, "C13"), "农副食品加工业");
    CHECK(zd_names_get(n, "3302") == NULL);
    CHECK(zd_names_get(n, "330") == NULL);
    size_t plen = 0;
    CHECK_STR(zd_names_get_prefix(n, "330106001", &plen), "西湖区");
    CHECK_INT(plen, 6);
    CHECK_STR(zd_names_get_prefix(n, "330199", &plen), "杭州市");
    CHECK_INT(plen, 4);
    CHECK_STR(zd_names_get_prefix(n, "C1810", &plen), "制造业");
    CHECK_INT(plen, 1);
    CHECK(zd_names_get_prefix(n, "9999", &plen) == NULL);
    CHECK(zd_names_get(NULL, "3301") == NULL);
    unlink(p);

    /* The same entry again in a second file is fine; another name for a code is not. */
    p = write_tmp("3301\t杭州市\n3302\t宁波市\n");
    CHECK_INT(zd_names_load(n, p, &e), 0);
    CHECK_INT(zd_names_count(n), 5);
    unlink(p);
    p = write_tmp("3303\t温州市\n3301\t宁波市\n");
    CHECK_INT(zd_names_load(n, p, &e), -EINVAL);
    CHECK(strstr(e.message, ":2:") != NULL);
    CHECK(strstr(e.message, "杭州市") != NULL);
    CHECK_STR(zd_names_get(n, "3301"), "杭州市");
    unlink(p);
    zd_names_free(n);
}

static void test_errors(void)
{
    static const char *const bad[] = {
        "3301 杭州市\n",    /* no tab */
        "\t杭州市\n",       /* no code */
        "33-01\t杭州市\n",  /* code with a dash */
        "3301\t\n",         /* empty name */
        "3301\t杭州\t市\n", /* tab in the name */
        "3301\t\xe6\x9d\n", /* truncated UTF-8 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        zd_names *n = zd_names_new();
        zd_error e = {0};
        char text[128];
        snprintf(text, sizeof(text), "# header\n%s", bad[i]);
        const char *p = write_tmp(text);
        CHECK_INT(zd_names_load(n, p, &e), -EINVAL);
        CHECK(strstr(e.message, ":2:") != NULL);
        CHECK_INT(zd_names_count(n), 0);
        unlink(p);
        zd_names_free(n);
    }
    zd_names *n = zd_names_new();
    zd_error e = {0};
    CHECK_INT(zd_names_load(n, "/nonexistent/zd-names.tsv", &e), -ENOENT);
    CHECK(strstr(e.message, "/nonexistent/zd-names.tsv") != NULL);
    zd_names_free(n);
    zd_names_free(NULL);
}

static zd_names *load_shipped(const char *file)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", ZD_SOURCE_DATA_DIR, file);
    zd_names *n = zd_names_new();
    zd_error e = {0};
    int rc = zd_names_load(n, path, &e);
    if (rc != 0)
        fprintf(stderr, "%s: %s\n", path, e.message);
    CHECK_INT(rc, 0);
    return n;
}

static void test_shipped_regions(void)
{
    zd_names *r = load_shipped("regions-zj.tsv");
    static const char *const cities[][2] = {
        {"3301", "杭州市"}, {"3302", "宁波市"}, {"3303", "温州市"}, {"3304", "嘉兴市"},
        {"3305", "湖州市"}, {"3306", "绍兴市"}, {"3307", "金华市"}, {"3308", "衢州市"},
        {"3309", "舟山市"}, {"3310", "台州市"}, {"3311", "丽水市"},
    };
    CHECK_STR(zd_names_get(r, "33"), "浙江省");
    for (size_t i = 0; i < sizeof(cities) / sizeof(cities[0]); i++)
        CHECK_STR(zd_names_get(r, cities[i][0]), cities[i][1]);
    CHECK_STR(zd_names_get(r, "330106"), "西湖区");
    CHECK_STR(zd_names_get(r, "330113"), "临平区");
    CHECK_STR(zd_names_get(r, "330383"), "龙港市");
    CHECK_STR(zd_names_get(r, "331127"), "景宁畲族自治县");
    /* The province, its 11 cities and the 90 counties of the demo population. */
    CHECK_INT(zd_names_count(r), 1 + 11 + 90);
    zd_names_free(r);
}

static void test_shipped_industries(void)
{
    zd_names *ind = load_shipped("industries.tsv");
    CHECK_STR(zd_names_get(ind, "C"), "制造业");
    CHECK_STR(zd_names_get(ind, "I65"), "软件和信息技术服务业");
    CHECK_STR(zd_names_get(ind, "C1311"), "稻谷加工");
    CHECK_STR(zd_names_get(ind, "C3484"), "机械零部件加工");
    /* All 20 sections A..T and the 97 divisions 01..97. */
    int sections = 0, divisions = 0;
    for (char s = 'A'; s <= 'T'; s++) {
        char code[2] = {s, 0};
        sections += zd_names_get(ind, code) != NULL;
    }
    for (int d = 1; d <= 97; d++) {
        char code[8];
        bool found = false;
        for (char s = 'A'; s <= 'T' && !found; s++) {
            snprintf(code, sizeof(code), "%c%02d", s, d);
            found = zd_names_get(ind, code) != NULL;
        }
        divisions += found;
    }
    CHECK_INT(sections, 20);
    CHECK_INT(divisions, 97);
    zd_names_free(ind);
}

/* Every county (6 digits) and every industry division of the demo population has a name, and
 * every industry class has one except the 2011-edition classes the header of the file lists. */
static void test_population_is_covered(void)
{
    zd_names *r = load_shipped("regions-zj.tsv");
    zd_names *ind = load_shipped("industries.tsv");
    zd_popgen *g = zd_popgen_new(2021);
    char *buf = malloc(ZD_POPGEN_LINE_MAX);
    int missing = 0;
    for (uint64_t i = 1; i <= 40000; i++) {
        if (i <= 20000)
            zd_popgen_citizen(g, i, buf);
        else
            zd_popgen_enterprise(g, i - 20000, buf);
        cJSON *doc = cJSON_Parse(buf);
        const cJSON *reg = cJSON_GetObjectItemCaseSensitive(doc, "region");
        char county[7] = {0};
        if (cJSON_IsString(reg))
            memcpy(county, reg->valuestring, 6);
        if (!zd_names_get(r, county) && missing++ < 5)
            fprintf(stderr, "no name for county %s\n", county);
        const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(doc, "attrs");
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(attrs, "industry");
        if (cJSON_IsString(in)) {
            const char *c = in->valuestring;
            char div[4] = {c[0], c[1], c[2], 0};
            bool old = strcmp(c, "C1810") == 0 || strcmp(c, "E5010") == 0 ||
                       strcmp(c, "G5430") == 0 || strcmp(c, "I6510") == 0;
            if ((!zd_names_get(ind, div) || (!old && !zd_names_get(ind, c))) && missing++ < 5)
                fprintf(stderr, "no name for industry %s\n", c);
        }
        cJSON_Delete(doc);
    }
    CHECK_INT(missing, 0);
    free(buf);
    zd_popgen_free(g);
    zd_names_free(r);
    zd_names_free(ind);
}

int main(void)
{
    test_format();
    test_errors();
    test_shipped_regions();
    test_shipped_industries();
    test_population_is_covered();
    return check_report("names");
}
