/* Random profiles and random rule texts over the default schema, shared by the property tests
 * of tests/unit/test_rule.c (index vs per-profile evaluation) and tests/unit/test_reasons.c
 * (reasons vs explain). The includer defines `static zd_schema *schema;` (the default schema)
 * first, and seeds rng_state. */
#ifndef ZD_RULE_GEN_H
#define ZD_RULE_GEN_H

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/date.h"
#include "profiles/profile.h"

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* xorshift64*: small, fast and good enough for test data. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * UINT64_C(2685821657736338717);
}

static int rn(int n)
{
    return (int)(rnd() % (uint64_t)n);
}

static bool chance(int percent)
{
    return rn(100) < percent;
}

typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_add(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n + 64;
        b->s = realloc(b->s, b->cap);
    }
}

static const char *const kinds[] = {"citizen", "enterprise"};
static const char *const scales[] = {"micro", "small", "medium", "large"};
static const char *const tags[] = {"hightech", "srdi",    "dishonest", "export",
                                   "startup",  "veteran", "disabled"};
static const char *const sections[] = {"A", "C", "F", "I", "M"};
#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void rand_region(char *out, int level)
{
    /* Zhejiang: 33, cities 01-11, counties 02-12, then towns and villages. */
    int city = 1 + rn(4), county = 2 + rn(5), town = 1 + rn(3), village = 1 + rn(3);
    int len = level == 0 ? 6 : level == 1 ? 9 : 12;
    char full[64];
    snprintf(full, sizeof(full), "33%02d%02d%03d%03d", city, county, town, village);
    memcpy(out, full, (size_t)len);
    out[len] = '\0';
}

static void rand_industry(char *out, int len)
{
    char full[64];
    snprintf(full, sizeof(full), "%s%d%d%d", sections[rn(N_OF(sections))], 1 + rn(2), 3 + rn(2),
             1 + rn(2));
    static const int lens[] = {1, 3, 4, 5};
    int n = len ? len : lens[rn(4)];
    memcpy(out, full, (size_t)n);
    out[n] = '\0';
}

static void rand_date(char *out, int y0, int y1)
{
    int32_t d;
    if (chance(10)) {
        /* Birthdays around the evaluation days, and 29 February. */
        int y = y0 + rn(y1 - y0 + 1);
        static const int md[][2] = {{6, 15}, {6, 14}, {6, 16}, {2, 29}, {2, 28}, {3, 1}};
        int k = rn(N_OF(md));
        if (md[k][0] == 2 && md[k][1] == 29)
            y = y - y % 4; /* a leap year (none of 1900, 2100 in range) */
        d = zd_date_from_ymd(y, md[k][0], md[k][1]);
    } else {
        d = zd_date_from_ymd(y0, 1, 1) + rn(365 * (y1 - y0));
    }
    zd_date_format(d, out);
}

static zd_profile *rand_profile(const char *id)
{
    cJSON *o = cJSON_CreateObject();
    bool ent = chance(50);
    cJSON_AddStringToObject(o, "kind", kinds[ent]);
    char buf[32];
    if (chance(92)) {
        rand_region(buf, rn(10) < 6 ? 0 : rn(10) < 8 ? 1 : 2);
        cJSON_AddStringToObject(o, "region", buf);
    }
    cJSON *attrs = cJSON_AddObjectToObject(o, "attrs");
    if (ent || chance(5)) {
        if (chance(85)) {
            rand_industry(buf, 0);
            cJSON_AddStringToObject(attrs, "industry", buf);
        }
        if (chance(80))
            cJSON_AddStringToObject(attrs, "scale", scales[rn(N_OF(scales))]);
        if (chance(85))
            cJSON_AddNumberToObject(attrs, "employees", chance(20) ? rn(12) * 25 : rn(600));
        if (chance(70))
            cJSON_AddNumberToObject(attrs, "registered_capital",
                                    (double)(rn(5) * 2500 + rn(2000)) / 100.0);
        if (chance(30))
            cJSON_AddNumberToObject(attrs, "revenue", (double)rn(1000000) / 100.0);
        if (chance(85)) {
            rand_date(buf, 1985, 2024);
            cJSON_AddStringToObject(attrs, "founded", buf);
        }
    }
    if (!ent || chance(5)) {
        if (chance(90)) {
            rand_date(buf, 1930, 2015);
            cJSON_AddStringToObject(attrs, "birth_date", buf);
        }
    }
    if (chance(75)) {
        cJSON *t = cJSON_AddArrayToObject(o, "tags");
        int n = rn(4);
        for (int i = 0; i < n; i++)
            cJSON_AddItemToArray(t, cJSON_CreateString(tags[rn(N_OF(tags))]));
    }
    zd_profile *p = NULL;
    zd_error err;
    if (zd_profile_from_json(schema, id, o, &p, &err) != 0) {
        char *s = cJSON_PrintUnformatted(o);
        fprintf(stderr, "random profile rejected: %s: %s\n", err.message, s);
        exit(2);
    }
    cJSON_Delete(o);
    return p;
}

static const char *kw(const char *k)
{
    /* Keywords in random case, to exercise case-insensitivity. */
    static char buf[4][16];
    static int slot;
    char *b = buf[slot++ % 4];
    size_t n = strlen(k);
    int mode = rn(10);
    for (size_t i = 0; i <= n; i++)
        b[i] = mode == 0             ? (char)(k[i] >= 'a' && k[i] <= 'z' ? k[i] - 32 : k[i])
               : mode == 1 && i == 0 ? (char)(k[i] - 32)
                                     : k[i];
    return b;
}

static void rand_number(sbuf *b, int lo, int hi, int maxdec)
{
    int v = lo + rn(hi - lo + 1);
    int dec = chance(60) ? 0 : 1 + rn(maxdec);
    if (dec == 0) {
        sb_add(b, "%d", v);
        return;
    }
    int frac = rn(10);
    for (int i = 1; i < dec; i++)
        frac = frac * 10 + (chance(50) ? 0 : rn(10));
    sb_add(b, "%s%d.%0*d", v < 0 || (v == 0 && chance(20)) ? "-" : "", v < 0 ? -v : v, dec, frac);
}

static const char *rand_op(void)
{
    static const char *const ops[] = {"=", "!=", "<", "<=", ">", ">="};
    return ops[rn(6)];
}

static void rand_leaf(sbuf *b)
{
    char buf[32];
    switch (rn(16)) {
    case 0: {
        int op = rn(3);
        if (op == 2)
            sb_add(b, "kind %s [\"%s\"]", kw("in"), kinds[rn(2)]);
        else
            sb_add(b, "kind %s \"%s\"", op ? "!=" : "=", kinds[rn(2)]);
        break;
    }
    case 1: {
        int k = rn(4);
        if (k == 0) {
            sb_add(b, "scale %s [\"%s\", \"%s\"]", kw("in"), scales[rn(4)], scales[rn(4)]);
        } else {
            sb_add(b, "scale %s \"%s\"", k == 1 ? "!=" : "=", scales[rn(4)]);
        }
        break;
    }
    case 2:
    case 3: {
        int k = rn(5);
        rand_region(buf, rn(3));
        if (k <= 1) {
            static const int lens[] = {2, 4, 6, 9};
            buf[lens[rn(4)]] = '\0';
            sb_add(b, "region %s \"%s\"", kw("within"), buf);
        } else if (k == 2) {
            char b2[16];
            rand_region(b2, 0);
            b2[4] = '\0';
            sb_add(b, "region %s [\"%s\", \"%s\"]", kw("within"), buf, b2);
        } else if (k == 3) {
            sb_add(b, "region %s \"%s\"", chance(70) ? "=" : "!=", buf);
        } else {
            char b2[16];
            rand_region(b2, rn(2));
            sb_add(b, "region %s [\"%s\", \"%s\"]", kw("in"), buf, b2);
        }
        break;
    }
    case 4: {
        rand_industry(buf, 0);
        int k = rn(3);
        sb_add(b, "industry %s \"%s\"", k == 0 ? kw("within") : k == 1 ? "=" : "!=", buf);
        break;
    }
    case 5:
    case 6: {
        sb_add(b, "employees %s ", rand_op());
        rand_number(b, -5, 600, 3);
        break;
    }
    case 7:
        if (chance(50)) {
            sb_add(b, "registered_capital %s ", rand_op());
            rand_number(b, -1, 120, 4);
        } else {
            sb_add(b, "employees %s [", kw("in"));
            int n = 1 + rn(3);
            for (int i = 0; i < n; i++) {
                if (i)
                    sb_add(b, ", ");
                rand_number(b, 0, 300, 1);
            }
            sb_add(b, "]");
        }
        break;
    case 8: {
        bool birth = chance(50);
        rand_date(buf, birth ? 1930 : 1985, birth ? 2015 : 2024);
        sb_add(b, "%s %s \"%s\"", birth ? "birth_date" : "founded", rand_op(), buf);
        break;
    }
    case 9:
    case 10: {
        bool birth = chance(60);
        sb_add(b, "%s(%s) ", kw("age"), birth ? "birth_date" : "founded");
        if (chance(15)) {
            sb_add(b, "%s [", kw("in"));
            int n = 1 + rn(3);
            for (int i = 0; i < n; i++)
                sb_add(b, "%s%d", i ? ", " : "", birth ? rn(100) : rn(40));
            sb_add(b, "]");
        } else {
            sb_add(b, "%s ", rand_op());
            rand_number(b, birth ? -1 : -1, birth ? 95 : 40, 2);
        }
        break;
    }
    case 11:
    case 12:
        sb_add(b, "tags %s \"%s\"", kw("has"), tags[rn(N_OF(tags))]);
        break;
    case 13: {
        static const char *const fields[] = {"kind",       "region",         "tags",
                                             "industry",   "scale",          "employees",
                                             "birth_date", "founded",        "registered_capital",
                                             "revenue",    "age(birth_date)"};
        sb_add(b, "%s %s", kw("exists"), fields[rn(N_OF(fields))]);
        break;
    }
    case 14: {
        static const char *const segs[] = {"hz", "smallbiz", "senior", "nested", "clean"};
        sb_add(b, "%s \"%s\"", kw("segment"), segs[rn(N_OF(segs))]);
        break;
    }
    default:
        sb_add(b, "revenue %s ", rand_op());
        rand_number(b, 0, 10000, 3);
        break;
    }
}

static void rand_expr(sbuf *b, int depth)
{
    static const char *const ws[] = {" ", " ", " ", "\n", "  ", "\t"};
    int k = depth <= 0 ? 0 : rn(10);
    if (k <= 3) {
        rand_leaf(b);
    } else if (k <= 5 || k == 6) {
        const char *op = k == 6 ? "or" : chance(60) ? "and" : "or";
        int n = 2 + rn(3);
        bool paren = chance(70);
        if (paren)
            sb_add(b, "(");
        for (int i = 0; i < n; i++) {
            if (i)
                sb_add(b, "%s%s ", ws[rn(N_OF(ws))], kw(op));
            rand_expr(b, depth - 1);
        }
        if (paren)
            sb_add(b, ")");
    } else if (k <= 8) {
        sb_add(b, "%s ", kw("not"));
        if (chance(50)) {
            sb_add(b, "(");
            rand_expr(b, depth - 1);
            sb_add(b, ")");
        } else {
            rand_leaf(b);
        }
    } else {
        sb_add(b, "(");
        rand_expr(b, depth - 1);
        sb_add(b, ")");
    }
}

#endif
