/* Reasons: the clauses a match needed, in words a citizen reads. Which clauses are needed is
 * decided on the same per-profile evaluation as explain (zd_rleaf_true / zd_rnode_true); the
 * wording knows the default schema's attributes (SPEC §2) and writes any other attribute by
 * its name. Region and industry codes are named from the GB/T tables (common/names.h). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/date.h"
#include "matcher/reasons.h"
#include "matcher/rule_internal.h"

/* ---- which clauses ------------------------------------------------------------------------ */

typedef void (*reason_fn)(const zd_reason *rs, void *udata);

static int count_leaves(const zd_rnode *n)
{
    if (n->kind == ZD_RN_LEAF)
        return 1;
    int c = 0;
    for (int i = 0; i < n->nkids; i++)
        c += count_leaves(n->kids[i]);
    return c;
}

/* Visits the needed leaves of n, which has truth `want` for p, in source order. *leaf is the
 * explain index of n's first leaf on entry and of the leaf after n's last on return.
 * An `and` that holds needs every conjunct; an `or` that holds needs its first true branch;
 * a failing `and` needs its first failing conjunct; a failing `or` needs every branch. */
static void needed(const zd_rnode *n, bool want, const zd_profile *p, int32_t today, int *leaf,
                   reason_fn fn, void *udata)
{
    switch (n->kind) {
    case ZD_RN_LEAF: {
        zd_reason rs = {.clause = *leaf, .negated = !want, .text = n->text, .leaf = n};
        fn(&rs, udata);
        (*leaf)++;
        return;
    }
    case ZD_RN_NOT:
        needed(n->kids[0], !want, p, today, leaf, fn, udata);
        return;
    case ZD_RN_AND:
    case ZD_RN_OR: {
        /* all: every kid (and that holds, or that fails); else the first kid with truth want. */
        bool all = (n->kind == ZD_RN_AND) == want;
        bool done = false;
        for (int i = 0; i < n->nkids; i++) {
            const zd_rnode *k = n->kids[i];
            if (!done && (all || zd_rnode_true(k, p, today) == want)) {
                needed(k, want, p, today, leaf, fn, udata);
                done = !all;
            } else {
                *leaf += count_leaves(k);
            }
        }
        return;
    }
    }
}

typedef struct collect {
    zd_reason *out;
    int max, n;
} collect;

static void collect_one(const zd_reason *rs, void *udata)
{
    collect *c = udata;
    if (c->n < c->max)
        c->out[c->n] = *rs;
    c->n++;
}

int zd_rule_reason_clauses(const zd_rule *r, const zd_profile *p, int32_t today, zd_reason *out,
                           int max)
{
    if (!zd_rnode_true(r->root, p, today))
        return 0;
    collect c = {.out = out, .max = max};
    int leaf = 0;
    needed(r->root, true, p, today, &leaf, collect_one, &c);
    return c.n;
}

/* ---- a bounded writer ------------------------------------------------------------------- */

/* Appends into a fixed buffer; once something does not fit, the text ends at the last whole
 * UTF-8 character that did and later appends are dropped. */
typedef struct wbuf {
    char *p;
    size_t cap, len;
    bool full;
} wbuf;

static void put(wbuf *w, const char *s, size_t n)
{
    if (w->full || w->cap == 0)
        return;
    size_t room = w->cap - 1 - w->len;
    if (n > room) {
        n = room;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
        w->full = true;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
    w->p[w->len] = '\0';
}

static void puts_(wbuf *w, const char *s)
{
    put(w, s, strlen(s));
}

static void putf(wbuf *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(wbuf *w, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        put(w, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* ---- wording ------------------------------------------------------------------------------ */

/* How the default schema's attributes read. A number attribute: its label and unit ("员工",
 * "人") with "少于/多于" (counted things) or "低于/高于" (amounts); a date attribute: the event
 * its date records ("成立", "出生"). */
typedef struct attr_words {
    const char *name, *label, *unit;
    bool counted;
} attr_words;

static const attr_words ATTRS[] = {
    {"kind", "主体类型", "", false},     {"region", "所在地区", "", false},
    {"industry", "所属行业", "", false}, {"scale", "企业规模", "", false},
    {"employees", "员工", "人", true},   {"registered_capital", "注册资本", "", false},
    {"revenue", "营业收入", "", false},  {"birth_date", "出生日期", "", false},
    {"founded", "成立日期", "", false},  {"tags", "标签", "", false},
    {"follows", "关注", "", false},
};

static const attr_words *words_of(const zd_attr *a)
{
    for (size_t i = 0; i < sizeof(ATTRS) / sizeof(ATTRS[0]); i++)
        if (strcmp(ATTRS[i].name, a->name) == 0)
            return &ATTRS[i];
    return NULL;
}

static const char *label_of(const zd_attr *a)
{
    const attr_words *w = words_of(a);
    return w ? w->label : a->name;
}

/* Readable keyword values and tags of the default schema; others are quoted as 「value」. */
static const char *const KEYWORDS[][3] = {
    /* attribute, value, wording */
    {"kind", "enterprise", "企业"}, {"kind", "citizen", "个人"}, {"scale", "micro", "微型"},
    {"scale", "small", "小型"},     {"scale", "medium", "中型"}, {"scale", "large", "大型"},
};

/* A tag's wording when the profile has it and when it has not. */
static const char *const TAGS[][3] = {
    {"hightech", "是高新技术企业", "不是高新技术企业"},
    {"srdi", "是专精特新企业", "不是专精特新企业"},
    {"dishonest", "有失信记录", "无失信记录"},
};

static void put_keyword(wbuf *w, const zd_attr *a, const char *v)
{
    for (size_t i = 0; i < sizeof(KEYWORDS) / sizeof(KEYWORDS[0]); i++)
        if (strcmp(KEYWORDS[i][0], a->name) == 0 && strcmp(KEYWORDS[i][1], v) == 0) {
            puts_(w, KEYWORDS[i][2]);
            return;
        }
    puts_(w, "「");
    puts_(w, v);
    puts_(w, "」");
}

/* A code's name: regions as "杭州市" (city), "杭州市西湖区" (a county under its city), industries
 * by their own name; a code the tables do not know stays a code. */
static void put_code(wbuf *w, const zd_attr *a, const char *code, const zd_reason_names *names)
{
    bool region = a->index == ZD_ATTR_REGION;
    const zd_names *t = !names                             ? NULL
                        : region                           ? names->regions
                        : strcmp(a->name, "industry") == 0 ? names->industries
                                                           : NULL;
    const char *full = zd_names_get(t, code);
    if (!full) {
        puts_(w, region ? "行政区划" : a->type == ZD_T_CODE ? "代码" : "");
        puts_(w, code);
        return;
    }
    size_t len = strlen(code);
    if (region && len > 4) {
        /* The county alone is ambiguous ("西湖区" exists in two provinces): lead with its city
         * and every level between. */
        char pre[ZD_CODE_MAX + 1];
        for (int i = 0; i < a->nlevels && (size_t)a->levels[i] < len; i++) {
            if (a->levels[i] < 4)
                continue;
            memcpy(pre, code, (size_t)a->levels[i]);
            pre[a->levels[i]] = '\0';
            const char *nm = zd_names_get(t, pre);
            if (nm)
                puts_(w, nm);
        }
    }
    puts_(w, full);
}

/* A number stored scaled by 10^decimals, without trailing zeros. */
static void put_num(wbuf *w, const zd_attr *a, int64_t v)
{
    int64_t scale = 1;
    for (int i = 0; i < a->decimals; i++)
        scale *= 10;
    uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    putf(w, "%s%" PRIu64, v < 0 ? "-" : "", m / (uint64_t)scale);
    uint64_t frac = m % (uint64_t)scale;
    int digits = a->decimals;
    if (frac) {
        while (frac % 10 == 0) {
            frac /= 10;
            digits--;
        }
        putf(w, ".%0*" PRIu64, digits, frac);
    }
}

static void put_date(wbuf *w, int64_t day)
{
    int y, m, d;
    zd_date_to_ymd((int32_t)day, &y, &m, &d);
    putf(w, "%d年%d月%d日", y, m, d);
}

/* The comparison that holds, given the leaf's and its negation: `not employees < 300` holds
 * as employees >= 300. */
static zd_cmp flip(zd_cmp op)
{
    switch (op) {
    case ZD_CMP_LT:
        return ZD_CMP_GE;
    case ZD_CMP_LE:
        return ZD_CMP_GT;
    case ZD_CMP_GT:
        return ZD_CMP_LE;
    case ZD_CMP_GE:
        return ZD_CMP_LT;
    case ZD_CMP_EQ:
        return ZD_CMP_EQ;
    }
    return op;
}

/* Ages are whole years: > n is >= n + 1 and <= n is < n + 1, which read better ("年满61周岁"). */
static void age_sentence(wbuf *w, const zd_attr *a, zd_cmp op, int64_t n)
{
    if (op == ZD_CMP_GT) {
        op = ZD_CMP_GE;
        n++;
    } else if (op == ZD_CMP_LE) {
        op = ZD_CMP_LT;
        n++;
    }
    bool ge = op == ZD_CMP_GE;
    if (strcmp(a->name, "birth_date") == 0)
        putf(w, ge ? "年满%" PRId64 "周岁" : "未满%" PRId64 "周岁", n);
    else if (strcmp(a->name, "founded") == 0)
        putf(w, ge ? "成立满%" PRId64 "年" : "成立不满%" PRId64 "年", n);
    else
        putf(w, ge ? "%s已满%" PRId64 "年" : "%s不满%" PRId64 "年", label_of(a), n);
}

static void num_sentence(wbuf *w, const zd_attr *a, zd_cmp op, int64_t v)
{
    const attr_words *aw = words_of(a);
    bool counted = aw && aw->counted;
    static const char *const counted_words[] = {"少于", "不超过", "多于", "不少于", "为"};
    static const char *const amount_words[] = {"低于", "不超过", "高于", "不低于", "为"};
    int k = op == ZD_CMP_LT   ? 0
            : op == ZD_CMP_LE ? 1
            : op == ZD_CMP_GT ? 2
            : op == ZD_CMP_GE ? 3
                              : 4;
    puts_(w, label_of(a));
    puts_(w, counted ? counted_words[k] : amount_words[k]);
    put_num(w, a, v);
    puts_(w, aw ? aw->unit : "");
}

static void date_sentence(wbuf *w, const zd_attr *a, zd_cmp op, int64_t day)
{
    static const char *const when[] = {"之前", "或之前", "之后", "或之后", ""};
    int k = op == ZD_CMP_LT   ? 0
            : op == ZD_CMP_LE ? 1
            : op == ZD_CMP_GT ? 2
            : op == ZD_CMP_GE ? 3
                              : 4;
    const char *event = strcmp(a->name, "founded") == 0      ? "成立"
                        : strcmp(a->name, "birth_date") == 0 ? "出生"
                                                             : NULL;
    if (event) {
        puts_(w, "于");
        put_date(w, day);
        puts_(w, when[k]);
        puts_(w, event);
        return;
    }
    static const char *const cmp[] = {"早于", "不晚于", "晚于", "不早于", "为"};
    puts_(w, label_of(a));
    puts_(w, cmp[k]);
    put_date(w, day);
}

/* "注册地在" for an enterprise, "居住在" for a person: region is where either is registered. */
static const char *region_verb(const zd_profile *p, bool yes)
{
    const zd_value *k = p->nvals > ZD_ATTR_KIND ? &p->vals[ZD_ATTR_KIND] : NULL;
    bool citizen = k && k->present && k->str && strcmp(k->str, "citizen") == 0;
    if (citizen)
        return yes ? "居住在" : "不居住在";
    return yes ? "注册地在" : "注册地不在";
}

/* A list of values: "杭州市或宁波市". */
static void put_values(wbuf *w, const zd_rnode *n, const zd_reason_names *names)
{
    for (int i = 0; i < n->nvals; i++) {
        if (i)
            puts_(w, "或");
        if (n->form == ZD_RL_STR_IN)
            put_keyword(w, n->attr, n->strs[i]);
        else
            put_code(w, n->attr, n->strs[i], names);
    }
}

/* A membership clause (`=`, `in`, `within`): yes = the value is one of them. */
static void member_sentence(wbuf *w, const zd_rnode *n, const zd_profile *p, bool yes,
                            const zd_reason_names *names)
{
    const zd_attr *a = n->attr;
    if (a->index == ZD_ATTR_REGION) {
        puts_(w, region_verb(p, yes));
        put_values(w, n, names);
        return;
    }
    if (a->index == ZD_ATTR_KIND) {
        puts_(w, yes ? "是" : "不是");
        put_values(w, n, names);
        return;
    }
    puts_(w, label_of(a));
    puts_(w, yes ? "为" : "不是");
    put_values(w, n, names);
}

static void nums_sentence(wbuf *w, const zd_rnode *n, bool yes)
{
    const zd_attr *a = n->attr;
    if (n->form == ZD_RL_AGE_IN && (strcmp(a->name, "birth_date") == 0)) {
        puts_(w, yes ? "年龄为" : "年龄不是");
    } else if (n->form == ZD_RL_AGE_IN && strcmp(a->name, "founded") == 0) {
        puts_(w, yes ? "成立年数为" : "成立年数不是");
    } else {
        puts_(w, label_of(a));
        puts_(w,
              n->form == ZD_RL_AGE_IN ? (yes ? "的年数为" : "的年数不是") : (yes ? "为" : "不是"));
    }
    for (int i = 0; i < n->nvals; i++) {
        if (i)
            puts_(w, "或");
        if (n->form == ZD_RL_AGE_IN)
            putf(w, "%" PRId64, n->nums[i]);
        else if (a->type == ZD_T_DATE)
            put_date(w, n->nums[i]);
        else
            put_num(w, a, n->nums[i]);
    }
    if (n->form == ZD_RL_AGE_IN)
        puts_(w, strcmp(a->name, "birth_date") == 0 ? "周岁" : "年");
    else if (a->type == ZD_T_NUMBER && words_of(a))
        puts_(w, words_of(a)->unit);
}

static void tag_sentence(wbuf *w, const zd_attr *a, const char *tag, bool yes)
{
    if (strcmp(a->name, "tags") == 0) {
        for (size_t i = 0; i < sizeof(TAGS) / sizeof(TAGS[0]); i++)
            if (strcmp(TAGS[i][0], tag) == 0) {
                puts_(w, TAGS[i][yes ? 1 : 2]);
                return;
            }
        puts_(w, yes ? "具有「" : "没有「");
        puts_(w, tag);
        puts_(w, "」标签");
        return;
    }
    if (strcmp(a->name, "follows") == 0) {
        puts_(w, yes ? "关注了「" : "未关注「");
    } else {
        puts_(w, label_of(a));
        puts_(w, yes ? "包含「" : "不包含「");
    }
    puts_(w, tag);
    puts_(w, "」");
}

size_t zd_reason_word(const zd_reason *rs, const zd_profile *p, int32_t today,
                      const zd_reason_names *names, char *buf, size_t cap)
{
    const zd_rnode *n = rs->leaf;
    const zd_attr *a = n->attr;
    wbuf w = {.p = buf, .cap = cap};
    if (cap)
        buf[0] = '\0';
    /* A clause that counts because it is false: when the profile lacks the attribute, that is
     * the reason ("未登记员工"), whatever the comparison was. */
    if (rs->negated && !zd_rleaf_value(n, p)) {
        puts_(&w, "未登记");
        puts_(&w, label_of(a));
        if (a->type == ZD_T_NUMBER && words_of(a) && words_of(a)->counted)
            puts_(&w, "人数");
        return w.len;
    }
    bool yes = !rs->negated;
    switch (n->form) {
    case ZD_RL_EXISTS:
        puts_(&w, "已登记");
        puts_(&w, label_of(a));
        if (a->type == ZD_T_NUMBER && words_of(a) && words_of(a)->counted)
            puts_(&w, "人数");
        break;
    case ZD_RL_HAS:
        tag_sentence(&w, a, n->strs[0], yes);
        break;
    case ZD_RL_STR_IN:
    case ZD_RL_CODE_IN:
        member_sentence(&w, n, p, yes != n->negate, names);
        break;
    case ZD_RL_WITHIN:
        member_sentence(&w, n, p, yes, names);
        break;
    case ZD_RL_NUM_CMP: {
        zd_cmp op = yes ? n->op : flip(n->op);
        if (a->type == ZD_T_DATE)
            date_sentence(&w, a, op, n->v);
        else
            num_sentence(&w, a, op, n->v);
        break;
    }
    case ZD_RL_AGE_CMP:
        age_sentence(&w, a, yes ? n->op : flip(n->op), n->v);
        break;
    case ZD_RL_NUM_IN:
    case ZD_RL_AGE_IN:
        nums_sentence(&w, n, yes != n->negate);
        break;
    }
    (void)today;
    return w.len;
}

/* ---- the text ------------------------------------------------------------------------------ */

static const char *override_of(const cJSON *overrides, const zd_reason *rs)
{
    if (!overrides)
        return NULL;
    for (const cJSON *it = overrides->child; it; it = it->next) {
        const char *k = it->string;
        if (!k || !cJSON_IsString(it))
            continue;
        if (rs->negated ? strncmp(k, "not ", 4) == 0 && strcmp(k + 4, rs->text) == 0
                        : strcmp(k, rs->text) == 0)
            return it->valuestring;
    }
    return NULL;
}

typedef struct text_ctx {
    wbuf w;
    const zd_profile *p;
    int32_t today;
    const zd_reason_names *names;
    const cJSON *overrides;
    const char *sep;
    int n;
} text_ctx;

static void text_one(const zd_reason *rs, void *udata)
{
    text_ctx *t = udata;
    if (t->w.full)
        return;
    if (t->n++)
        puts_(&t->w, t->sep);
    const char *o = override_of(t->overrides, rs);
    if (o) {
        puts_(&t->w, o);
        return;
    }
    if (t->w.full)
        return;
    t->w.len +=
        zd_reason_word(rs, t->p, t->today, t->names, t->w.p + t->w.len, t->w.cap - t->w.len);
    if (t->w.len + 1 >= t->w.cap)
        t->w.full = true;
}

size_t zd_rule_reasons(const zd_rule *r, const zd_profile *p, int32_t today,
                       const zd_reason_names *names, const cJSON *overrides, const char *sep,
                       char *buf, size_t cap)
{
    text_ctx t = {.w = {.p = buf, .cap = cap},
                  .p = p,
                  .today = today,
                  .names = names,
                  .overrides = overrides,
                  .sep = sep ? sep : "，"};
    if (cap)
        buf[0] = '\0';
    if (!zd_rnode_true(r->root, p, today))
        return 0;
    int leaf = 0;
    needed(r->root, true, p, today, &leaf, text_one, &t);
    return t.w.len;
}

typedef struct json_ctx {
    cJSON *arr;
    const zd_profile *p;
    int32_t today;
    const zd_reason_names *names;
    const cJSON *overrides;
    bool nomem;
} json_ctx;

static void json_one(const zd_reason *rs, void *udata)
{
    json_ctx *j = udata;
    char buf[1024];
    const char *o = override_of(j->overrides, rs);
    if (!o) {
        zd_reason_word(rs, j->p, j->today, j->names, buf, sizeof(buf));
        o = buf;
    }
    cJSON *s = cJSON_CreateString(o);
    if (!s)
        j->nomem = true;
    else
        cJSON_AddItemToArray(j->arr, s);
}

cJSON *zd_rule_reasons_json(const zd_rule *r, const zd_profile *p, int32_t today,
                            const zd_reason_names *names, const cJSON *overrides)
{
    json_ctx j = {
        .arr = cJSON_CreateArray(), .p = p, .today = today, .names = names, .overrides = overrides};
    if (!j.arr)
        return NULL;
    if (zd_rnode_true(r->root, p, today)) {
        int leaf = 0;
        needed(r->root, true, p, today, &leaf, json_one, &j);
    }
    if (j.nomem) {
        cJSON_Delete(j.arr);
        return NULL;
    }
    return j.arr;
}

/* ---- publishers' wording ------------------------------------------------------------------ */

static bool has_clause(const zd_rnode *n, const char *text)
{
    if (n->kind == ZD_RN_LEAF)
        return strcmp(n->text, text) == 0;
    for (int i = 0; i < n->nkids; i++)
        if (has_clause(n->kids[i], text))
            return true;
    return false;
}

int zd_rule_check_reason_texts(const zd_rule *r, const cJSON *texts, char *bad, size_t badcap,
                               char *msg, size_t msgcap)
{
    if (badcap)
        bad[0] = '\0';
    if (!cJSON_IsObject(texts)) {
        snprintf(msg, msgcap, "reason_texts must be an object of clause text to wording");
        return -EINVAL;
    }
    for (const cJSON *it = texts->child; it; it = it->next) {
        const char *k = it->string ? it->string : "";
        const char *clause = strncmp(k, "not ", 4) == 0 ? k + 4 : k;
        if (!has_clause(r->root, k) && !(clause != k && has_clause(r->root, clause))) {
            snprintf(bad, badcap, "%s", k);
            snprintf(msg, msgcap,
                     "reason_texts key is not a clause of the rule as written (nor \"not \" and "
                     "one): %.200s",
                     k);
            return -EINVAL;
        }
        if (!cJSON_IsString(it) || !it->valuestring[0] || strlen(it->valuestring) > 512) {
            snprintf(bad, badcap, "%s", k);
            snprintf(msg, msgcap, "reason_texts values are non-empty strings of at most 512 bytes");
            return -EINVAL;
        }
    }
    return 0;
}
