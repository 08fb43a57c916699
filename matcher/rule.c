/* The rule compiler of SPEC §3: lexer, recursive-descent parser and type checker in one pass,
 * producing the plan of rule_internal.h. Segments are expanded here, at compile time. */
#include "matcher/rule.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/date.h"
#include "common/text.h"
#include "matcher/rule_internal.h"

/* A rule with its segments expanded may parse at most this much text. Segments can refer to
 * each other several times over, so without a cap a few small segments expand exponentially. */
#define EXPANDED_MAX (16 * ZD_RULE_MAX_BYTES)
#define SEGMENT_NAME_MAX 63

typedef enum tok_type {
    T_EOF,
    T_IDENT,
    T_STRING,
    T_NUMBER,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_LPAREN,
    T_RPAREN,
    T_LBRACK,
    T_RBRACK,
    T_COMMA,
} tok_type;

typedef struct token {
    tok_type type;
    size_t start, len;
} token;

/* State of one compilation, shared by the parsers of the rule and of its segments. */
typedef struct compiler {
    const zd_schema *schema;
    zd_segment_lookup_fn lookup;
    void *udata;
    zd_rule_error *err;
    zd_rule *rule;
    int depth;
    size_t expanded;
    int nstack; /* segments being expanded, innermost last, for cycle detection */
    const char *stack[ZD_RULE_MAX_DEPTH + 1];
    bool failed, nomem;
} compiler;

/* The parser of one text: the rule itself or one segment's text. */
typedef struct parser {
    compiler *c;
    const char *text;
    size_t len;
    int segment; /* index into c->rule->segments, -1 for the rule's own text */
    token tok;   /* the current, not yet consumed token */
    size_t prev_end;
} parser;

/* A field as written: an attribute, or age(attribute). */
typedef struct field {
    const zd_attr *attr;
    bool age;
    size_t start;
    char name[ZD_ATTR_NAME_MAX + 8]; /* for messages: employees, age(founded) */
} field;

/* ---- errors ---------------------------------------------------------------------------- */

static void set_error(parser *p, size_t pos, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_error(parser *p, size_t pos, const char *code, const char *fmt, ...)
{
    compiler *c = p->c;
    if (c->failed)
        return;
    c->failed = true;
    zd_rule_error *e = c->err;
    memset(e, 0, sizeof(*e));
    snprintf(e->code, sizeof(e->code), "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    if (p->segment >= 0)
        snprintf(e->segment, sizeof(e->segment), "%s", c->rule->segments[p->segment]);
    if (pos > p->len)
        pos = p->len;
    int line = 1;
    size_t bol = 0;
    for (size_t i = 0; i < pos; i++) {
        if (p->text[i] == '\n') {
            line++;
            bol = i + 1;
        }
    }
    e->position = (int)pos;
    e->line = line;
    e->column = (int)(pos - bol) + 1;
}

static void *nomem(parser *p)
{
    p->c->nomem = true;
    set_error(p, 0, "out_of_memory", "out of memory");
    return NULL;
}

/* Length of the UTF-8 sequence led by byte b, or 0 for a byte that cannot lead one. */
static int utf8_seq_len(unsigned char b)
{
    if (b < 0x80)
        return 1;
    if (b >= 0xC2 && b <= 0xDF)
        return 2;
    if (b >= 0xE0 && b <= 0xEF)
        return 3;
    if (b >= 0xF0 && b <= 0xF4)
        return 4;
    return 0;
}

/* Writes a short quotation of token t for a message ("300", "\"many\"", the end of the rule).
 * Long tokens are cut at a character boundary so that the message stays valid UTF-8. */
static const char *describe(const parser *p, const token *t, char *buf, size_t size)
{
    if (t->type == T_EOF)
        return "the end of the rule";
    const size_t max = 40;
    size_t n = t->len;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)p->text[t->start + n] & 0xC0) == 0x80)
            n--;
    }
    const char *q = t->type == T_STRING ? "" : "\"";
    snprintf(buf, size, "%s%.*s%s%s", q, (int)n, p->text + t->start, n < t->len ? "..." : "", q);
    return buf;
}

/* ---- lexer ----------------------------------------------------------------------------- */

static bool is_ident_start(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}

static bool is_ident_char(char ch)
{
    return is_ident_start(ch) || (ch >= '0' && ch <= '9');
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static int lex_string(parser *p, size_t start, token *t)
{
    const char *s = p->text;
    size_t i = start + 1;
    for (;;) {
        if (i >= p->len) {
            set_error(p, start, "syntax_error", "unterminated string: expected a closing \"");
            return -EINVAL;
        }
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"')
            break;
        if (ch == '\\') {
            if (i + 1 < p->len && (s[i + 1] == '"' || s[i + 1] == '\\')) {
                i += 2;
                continue;
            }
            if (i + 1 >= p->len) {
                set_error(p, start, "syntax_error", "unterminated string: expected a closing \"");
                return -EINVAL;
            }
            set_error(p, i, "syntax_error",
                      "invalid escape in string: only \\\" and \\\\ are allowed");
            return -EINVAL;
        }
        if (ch < 0x20 || ch == 0x7F) {
            set_error(p, i, "syntax_error",
                      "control character 0x%02X in string: strings hold printable text only", ch);
            return -EINVAL;
        }
        int n = utf8_seq_len(ch);
        if (n == 0 || i + (size_t)n > p->len || !zd_utf8_valid(s + i, (size_t)n)) {
            set_error(p, i, "syntax_error", "invalid UTF-8 in string");
            return -EINVAL;
        }
        i += (size_t)n;
    }
    t->type = T_STRING;
    t->start = start;
    t->len = i + 1 - start;
    return 0;
}

static int lex_number(parser *p, size_t start, token *t)
{
    const char *s = p->text;
    size_t i = start;
    bool ok = true;
    if (s[i] == '-')
        i++;
    while (i < p->len && is_digit(s[i]))
        i++;
    if (i < p->len && s[i] == '.') {
        i++;
        if (i >= p->len || !is_digit(s[i]))
            ok = false;
        while (i < p->len && is_digit(s[i]))
            i++;
    }
    if (i < p->len && (is_ident_char(s[i]) || s[i] == '.'))
        ok = false;
    if (!ok) {
        size_t end = i;
        while (end < p->len && (is_ident_char(s[end]) || s[end] == '.' || s[end] == '-'))
            end++;
        size_t n = end - start > 40 ? 40 : end - start;
        set_error(p, start, "syntax_error",
                  "invalid number \"%.*s\": numbers are decimal, like 12, -3 or 0.25", (int)n,
                  s + start);
        return -EINVAL;
    }
    t->type = T_NUMBER;
    t->start = start;
    t->len = i - start;
    return 0;
}

/* Lexes the token at or after pos into *t. Returns 0, or -EINVAL with the error set. */
static int lex_at(parser *p, size_t pos, token *t)
{
    const char *s = p->text;
    while (pos < p->len && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n' || s[pos] == '\r'))
        pos++;
    t->start = pos;
    t->len = 1;
    if (pos >= p->len) {
        t->type = T_EOF;
        t->len = 0;
        return 0;
    }
    char ch = s[pos];
    char next = pos + 1 < p->len ? s[pos + 1] : '\0';
    switch (ch) {
    case '"':
        return lex_string(p, pos, t);
    case '=':
        t->type = T_EQ;
        return 0;
    case '!':
        if (next != '=') {
            set_error(p, pos, "syntax_error", "unexpected \"!\": did you mean \"!=\"?");
            return -EINVAL;
        }
        t->type = T_NE;
        t->len = 2;
        return 0;
    case '<':
    case '>':
        t->type = ch == '<' ? (next == '=' ? T_LE : T_LT) : (next == '=' ? T_GE : T_GT);
        t->len = next == '=' ? 2 : 1;
        return 0;
    case '(':
        t->type = T_LPAREN;
        return 0;
    case ')':
        t->type = T_RPAREN;
        return 0;
    case '[':
        t->type = T_LBRACK;
        return 0;
    case ']':
        t->type = T_RBRACK;
        return 0;
    case ',':
        t->type = T_COMMA;
        return 0;
    default:
        break;
    }
    if (is_digit(ch) || (ch == '-' && is_digit(next)))
        return lex_number(p, pos, t);
    if (is_ident_start(ch)) {
        size_t i = pos;
        while (i < p->len && is_ident_char(s[i]))
            i++;
        t->type = T_IDENT;
        t->len = i - pos;
        return 0;
    }
    int n = utf8_seq_len((unsigned char)ch);
    if (ch == '\'')
        set_error(p, pos, "syntax_error", "unexpected \"'\": strings are written in double quotes");
    else if (n > 0 && (unsigned char)ch >= 0x21 && (unsigned char)ch < 0x7F)
        set_error(p, pos, "syntax_error", "unexpected character \"%c\"", ch);
    else if (n > 1 && pos + (size_t)n <= p->len && zd_utf8_valid(s + pos, (size_t)n))
        set_error(p, pos, "syntax_error", "unexpected character \"%.*s\"", n, s + pos);
    else
        set_error(p, pos, "syntax_error", "unexpected byte 0x%02X", (unsigned char)ch);
    return -EINVAL;
}

/* Consumes the current token and lexes the next one. */
static int advance(parser *p)
{
    p->prev_end = p->tok.start + p->tok.len;
    return lex_at(p, p->prev_end, &p->tok);
}

static bool is_kw(const parser *p, const token *t, const char *kw)
{
    size_t n = strlen(kw);
    return t->type == T_IDENT && t->len == n && strncasecmp(p->text + t->start, kw, n) == 0;
}

static bool is_reserved(const parser *p, const token *t)
{
    return t->type == T_IDENT && zd_schema_is_keyword(p->text + t->start, t->len);
}

/* The decoded contents of string token t (escapes resolved). Caller frees with free(). */
static char *decode_string(parser *p, const token *t)
{
    char *out = malloc(t->len);
    if (!out)
        return nomem(p);
    size_t n = 0;
    for (size_t i = t->start + 1; i < t->start + t->len - 1; i++) {
        if (p->text[i] == '\\')
            i++;
        out[n++] = p->text[i];
    }
    out[n] = '\0';
    return out;
}

/* ---- plan nodes ------------------------------------------------------------------------ */

static void node_free(zd_rnode *n)
{
    if (!n)
        return;
    for (int i = 0; i < n->nkids; i++)
        node_free(n->kids[i]);
    free(n->kids);
    for (int i = 0; n->strs && i < n->nvals; i++)
        free(n->strs[i]);
    free(n->strs);
    free(n->nums);
    free(n->text);
    free(n);
}

/* Records where n was written: [start, end) of the parser's text. */
static void node_span(zd_rnode *n, size_t start, size_t end)
{
    n->position = (int)start;
    n->end = (int)end;
}

static zd_rnode *node_new(parser *p, zd_rnode_kind kind)
{
    zd_rnode *n = calloc(1, sizeof(*n));
    if (!n)
        return nomem(p);
    n->kind = kind;
    n->segment = p->segment;
    return n;
}

/* Appends kid to an AND/OR node under construction, splicing in the children of a kid of the
 * same kind (from parentheses or a segment): `a and (b and c)` is one three-way AND, which
 * gives the audience evaluator more freedom to order. Takes ownership of kid. */
static int node_add_kid(parser *p, zd_rnode *n, zd_rnode *kid, int *cap)
{
    int add = kid->kind == n->kind ? kid->nkids : 1;
    if (n->nkids + add > *cap) {
        int ncap = *cap ? *cap * 2 : 4;
        while (ncap < n->nkids + add)
            ncap *= 2;
        zd_rnode **k = realloc(n->kids, sizeof(*k) * (size_t)ncap);
        if (!k) {
            node_free(kid);
            nomem(p);
            return -ENOMEM;
        }
        n->kids = k;
        *cap = ncap;
    }
    if (kid->kind == n->kind) {
        memcpy(n->kids + n->nkids, kid->kids, sizeof(*kid->kids) * (size_t)kid->nkids);
        n->nkids += kid->nkids;
        free(kid->kids);
        free(kid);
    } else {
        n->kids[n->nkids++] = kid;
    }
    return 0;
}

/* ---- parser ---------------------------------------------------------------------------- */

static zd_rnode *parse_or(parser *p);

static int depth_enter(parser *p, size_t pos)
{
    if (++p->c->depth > ZD_RULE_MAX_DEPTH) {
        set_error(p, pos, "too_deep",
                  "the rule nests deeper than %d levels (parentheses, \"not\" and segments "
                  "together)",
                  ZD_RULE_MAX_DEPTH);
        return -EINVAL;
    }
    return 0;
}

static int resolve_attr(parser *p, const token *t, const zd_attr **out)
{
    char name[ZD_ATTR_NAME_MAX];
    *out = NULL;
    if (t->len < sizeof(name)) {
        memcpy(name, p->text + t->start, t->len);
        name[t->len] = '\0';
        *out = zd_schema_find(p->c->schema, name);
    }
    if (*out)
        return 0;
    const char *near = t->len < sizeof(name) ? zd_schema_suggest(p->c->schema, name) : NULL;
    if (near)
        set_error(p, t->start, "unknown_field", "unknown field \"%.*s\"; did you mean \"%s\"?",
                  (int)(t->len > 48 ? 48 : t->len), p->text + t->start, near);
    else
        set_error(p, t->start, "unknown_field",
                  "unknown field \"%.*s\": fields are kind, region, tags, follows and the schema's "
                  "attributes",
                  (int)(t->len > 48 ? 48 : t->len), p->text + t->start);
    return -EINVAL;
}

/* field := name | "age" "(" name ")" */
static int parse_field(parser *p, field *f, const char *after)
{
    char buf[64];
    memset(f, 0, sizeof(*f));
    f->start = p->tok.start;
    if (is_kw(p, &p->tok, "age")) {
        if (advance(p) != 0)
            return -EINVAL;
        if (p->tok.type != T_LPAREN) {
            set_error(p, p->tok.start, "syntax_error", "expected \"(\" after \"age\", found %s",
                      describe(p, &p->tok, buf, sizeof(buf)));
            return -EINVAL;
        }
        if (advance(p) != 0)
            return -EINVAL;
        if (p->tok.type != T_IDENT || is_reserved(p, &p->tok)) {
            set_error(p, p->tok.start, "syntax_error",
                      "expected the name of a date attribute inside age(...), found %s",
                      describe(p, &p->tok, buf, sizeof(buf)));
            return -EINVAL;
        }
        if (resolve_attr(p, &p->tok, &f->attr) != 0)
            return -EINVAL;
        if (f->attr->type != ZD_T_DATE) {
            set_error(p, p->tok.start, "type_mismatch",
                      "type mismatch: age() needs a date attribute, \"%s\" is a %s", f->attr->name,
                      zd_type_name(f->attr->type));
            return -EINVAL;
        }
        if (advance(p) != 0)
            return -EINVAL;
        if (p->tok.type != T_RPAREN) {
            set_error(p, p->tok.start, "syntax_error", "expected \")\" after age(%s, found %s",
                      f->attr->name, describe(p, &p->tok, buf, sizeof(buf)));
            return -EINVAL;
        }
        f->age = true;
        snprintf(f->name, sizeof(f->name), "age(%s)", f->attr->name);
        return advance(p);
    }
    if (p->tok.type != T_IDENT || is_reserved(p, &p->tok)) {
        set_error(p, p->tok.start, "syntax_error", "expected %s, found %s", after,
                  describe(p, &p->tok, buf, sizeof(buf)));
        return -EINVAL;
    }
    if (resolve_attr(p, &p->tok, &f->attr) != 0)
        return -EINVAL;
    snprintf(f->name, sizeof(f->name), "%s", f->attr->name);
    return advance(p);
}

/* What the value tokens of a comparison must be. */
typedef enum value_ctx { V_EQ, V_ORDER, V_WITHIN, V_HAS } value_ctx;

static const char *field_type(const field *f)
{
    return f->age ? "number of years" : zd_type_name(f->attr->type);
}

/* Rejects an operator that does not apply to the field's type; op is the operator token. */
static int check_operator(parser *p, const field *f, const token *op, value_ctx ctx)
{
    const zd_type ty = f->attr->type;
    const char *fn = f->name;
    int opn = (int)op->len;
    const char *ops = p->text + op->start;
    if (ctx == V_HAS) {
        if (ty == ZD_T_TAGS && !f->age)
            return 0;
        set_error(p, op->start, "type_mismatch",
                  "type mismatch: \"has\" applies only to sets (tags has \"x\", follows has "
                  "\"x\"), \"%s\" is a %s",
                  fn, field_type(f));
        return -EINVAL;
    }
    if (ty == ZD_T_TAGS) {
        set_error(p, op->start, "type_mismatch",
                  "type mismatch: \"%s\" is a set: write %s has \"x\" (or exists %s), not %s "
                  "%.*s",
                  fn, fn, fn, fn, opn, ops);
        return -EINVAL;
    }
    if (ctx == V_WITHIN && (ty != ZD_T_CODE || f->age)) {
        set_error(p, op->start, "type_mismatch",
                  "type mismatch: \"within\" applies only to codes, \"%s\" is a %s", fn,
                  field_type(f));
        return -EINVAL;
    }
    if (ctx == V_ORDER && !f->age && ty != ZD_T_NUMBER && ty != ZD_T_DATE) {
        set_error(p, op->start, "type_mismatch",
                  "type mismatch: \"%.*s\" compares numbers and dates, \"%s\" is a %s", opn, ops,
                  fn, field_type(f));
        return -EINVAL;
    }
    return 0;
}

/* Parses number token t at the given decimals into *c, *rem (see zd_decimal_parse). */
static int parse_number(parser *p, const token *t, int decimals, int64_t *c, int *rem)
{
    /* zd_decimal_parse detects overflow, but counting digits first keeps every scaled value,
     * and its ceiling or floor, well inside int64. */
    const char *s = p->text + t->start;
    size_t i = s[0] == '-', digits = 0;
    while (i < t->len && s[i] == '0')
        i++;
    for (; i < t->len && is_digit(s[i]); i++)
        digits++;
    if (digits + (size_t)decimals > 18 || zd_decimal_parse(s, t->len, decimals, c, rem) != 0) {
        set_error(p, t->start, "invalid_value", "number %.*s is out of range",
                  (int)(t->len > 40 ? 40 : t->len), s);
        return -EINVAL;
    }
    return 0;
}

static int push_str(parser *p, zd_rnode *n, char *s, int *cap)
{
    if (n->nvals == *cap) {
        int ncap = *cap ? *cap * 2 : 2;
        char **v = realloc(n->strs, sizeof(*v) * (size_t)ncap);
        if (!v) {
            free(s);
            nomem(p);
            return -ENOMEM;
        }
        n->strs = v;
        *cap = ncap;
    }
    n->strs[n->nvals++] = s;
    return 0;
}

static int push_num(parser *p, zd_rnode *n, int64_t v, int *cap)
{
    if (n->nvals == *cap) {
        int ncap = *cap ? *cap * 2 : 2;
        int64_t *a = realloc(n->nums, sizeof(*a) * (size_t)ncap);
        if (!a) {
            nomem(p);
            return -ENOMEM;
        }
        n->nums = a;
        *cap = ncap;
    }
    n->nums[n->nvals++] = v;
    return 0;
}

static int64_t clamp_age(int64_t v)
{
    return v > ZD_RULE_AGE_MAX ? ZD_RULE_AGE_MAX : v < -ZD_RULE_AGE_MAX ? -ZD_RULE_AGE_MAX : v;
}

/* Checks that a string value fits the field and returns it decoded (caller frees). */
static char *check_string(parser *p, const field *f, const token *t, value_ctx ctx)
{
    const zd_attr *a = f->attr;
    char buf[64];
    char *s = decode_string(p, t);
    if (!s)
        return NULL;
    size_t len = strlen(s);
    if (a->type == ZD_T_KEYWORD || a->type == ZD_T_TAGS) {
        if (len == 0 || len > ZD_KEYWORD_MAX) {
            set_error(p, t->start, "invalid_value", "%s %s is not a possible %s: %s are 1-%d bytes",
                      a->type == ZD_T_TAGS ? "tag" : "value", describe(p, t, buf, sizeof(buf)),
                      a->type == ZD_T_TAGS ? "tag" : "keyword",
                      a->type == ZD_T_TAGS ? "tags" : "keywords", ZD_KEYWORD_MAX);
            goto fail;
        }
        if (a->type == ZD_T_KEYWORD && !zd_keyword_allowed(a, s)) {
            char list[200];
            zd_keyword_list(a, list, sizeof(list));
            set_error(p, t->start, "invalid_value",
                      "%s is not an allowed value of \"%s\" (expected one of %s)",
                      describe(p, t, buf, sizeof(buf)), a->name, list);
            goto fail;
        }
    } else if (a->type == ZD_T_CODE) {
        if (len > ZD_CODE_MAX || !zd_code_valid(a, s, (int)len)) {
            char lv[64];
            zd_attr_levels_text(a, lv, sizeof(lv));
            set_error(p, t->start, "invalid_value",
                      "%s is not a whole-level code of \"%s\": expected %s of %s characters%s",
                      describe(p, t, buf, sizeof(buf)), a->name,
                      a->style == ZD_CODE_DIGITS ? "digits" : "a section letter and digits", lv,
                      ctx == V_WITHIN ? " (within matches whole levels only)" : "");
            goto fail;
        }
    } else if (a->type == ZD_T_DATE) {
        int32_t d;
        if (len != 10 || zd_date_parse(s, &d) != 0) {
            set_error(p, t->start, "invalid_value",
                      "%s is not a date: expected \"YYYY-MM-DD\" (years 1000-9999)",
                      describe(p, t, buf, sizeof(buf)));
            goto fail;
        }
    }
    return s;
fail:
    free(s);
    return NULL;
}

/* Parses one value of a comparison on field f and adds it to leaf n. op is the operator
 * (for messages and for the bound of an ordering comparison). */
static int parse_value(parser *p, const field *f, zd_rnode *n, value_ctx ctx, const token *op,
                       int *cap)
{
    char buf[64];
    token t = p->tok;
    const zd_attr *a = f->attr;
    bool want_number = f->age || a->type == ZD_T_NUMBER;
    if (t.type != T_STRING && t.type != T_NUMBER) {
        const char *what = ctx == V_HAS || ctx == V_WITHIN ? "a string"
                           : want_number                   ? "a number"
                           : a->type == ZD_T_DATE          ? "a date string"
                                                           : "a string";
        set_error(p, t.start, "syntax_error", "expected %s after \"%.*s\", found %s", what,
                  (int)op->len, p->text + op->start, describe(p, &t, buf, sizeof(buf)));
        return -EINVAL;
    }
    if (want_number && t.type != T_NUMBER) {
        set_error(p, t.start, "type_mismatch",
                  "type mismatch: \"%s\" is a %s, so it compares with a number, not the string %s",
                  f->name, field_type(f), describe(p, &t, buf, sizeof(buf)));
        return -EINVAL;
    }
    if (!want_number && t.type == T_NUMBER) {
        if (a->type == ZD_T_DATE)
            set_error(p, t.start, "type_mismatch",
                      "type mismatch: \"%s\" is a date: compare it with a \"YYYY-MM-DD\" string, "
                      "or use age(%s) for years",
                      a->name, a->name);
        else
            set_error(p, t.start, "type_mismatch",
                      "type mismatch: \"%s\" is a %s, so it compares with a string, not the "
                      "number %s (write \"%.*s\")",
                      a->name, zd_type_name(a->type), describe(p, &t, buf, sizeof(buf)),
                      (int)(t.len > 30 ? 30 : t.len), p->text + t.start);
        return -EINVAL;
    }
    int64_t v = 0;
    int rem = 0;
    if (t.type == T_NUMBER) {
        if (parse_number(p, &t, f->age ? 0 : a->decimals, &v, &rem) != 0)
            return -EINVAL;
    } else if (a->type == ZD_T_DATE) {
        char *s = check_string(p, f, &t, ctx);
        if (!s)
            return -EINVAL;
        int32_t d = 0;
        zd_date_parse(s, &d);
        free(s);
        v = d;
    } else {
        char *s = check_string(p, f, &t, ctx);
        if (!s || push_str(p, n, s, cap) != 0)
            return -EINVAL;
        return advance(p);
    }

    if (ctx == V_ORDER) {
        /* x < c' <=> x < ceil(c'), x <= c' <=> x <= floor(c'), and the mirror images. */
        int64_t ceil_v = v + (rem > 0), floor_v = v - (rem < 0);
        n->v = n->op == ZD_CMP_LT || n->op == ZD_CMP_GE ? ceil_v : floor_v;
        if (f->age)
            n->v = clamp_age(n->v);
    } else if (rem == 0 && (!f->age || (v >= -ZD_RULE_AGE_MAX && v <= ZD_RULE_AGE_MAX))) {
        /* A constant that no stored value can equal simply adds nothing to the list. */
        if (push_num(p, n, v, cap) != 0)
            return -EINVAL;
    }
    return advance(p);
}

static int expect(parser *p, tok_type type, const char *what, const char *ctx)
{
    char buf[64];
    if (p->tok.type != type) {
        set_error(p, p->tok.start, "syntax_error", "expected %s %s, found %s", what, ctx,
                  describe(p, &p->tok, buf, sizeof(buf)));
        return -EINVAL;
    }
    return advance(p);
}

/* value ("," value)* "]" — the list of `in [...]` and `within [...]`, past its "[". */
static int parse_value_list(parser *p, const field *f, zd_rnode *n, value_ctx ctx, const token *op,
                            int *cap)
{
    for (;;) {
        if (parse_value(p, f, n, ctx, op, cap) != 0)
            return -1;
        if (p->tok.type == T_RBRACK)
            return advance(p);
        if (expect(p, T_COMMA, "\",\" or \"]\"", "in the list") != 0)
            return -1;
    }
}

/* cmp := field op value | field "in" [...] | field "within" ... | "tags" "has" string */
static zd_rnode *parse_cmp(parser *p)
{
    char buf[64];
    field f;
    if (parse_field(p, &f,
                    "a condition (a field name, \"not\", \"(\", \"exists\" or "
                    "\"segment\")") != 0)
        return NULL;
    zd_rnode *n = node_new(p, ZD_RN_LEAF);
    if (!n)
        return NULL;
    n->attr = f.attr;
    n->age = f.age;
    int cap = 0;
    token op = p->tok;
    const zd_type ty = f.attr->type;
    const bool numeric = f.age || ty == ZD_T_NUMBER || ty == ZD_T_DATE;

    if (op.type == T_EQ || op.type == T_NE) {
        if (check_operator(p, &f, &op, V_EQ) != 0 || advance(p) != 0)
            goto fail;
        n->negate = op.type == T_NE;
        if (parse_value(p, &f, n, V_EQ, &op, &cap) != 0)
            goto fail;
        n->form = f.age             ? ZD_RL_AGE_IN
                  : numeric         ? ZD_RL_NUM_IN
                  : ty == ZD_T_CODE ? ZD_RL_CODE_IN
                                    : ZD_RL_STR_IN;
    } else if (op.type >= T_LT && op.type <= T_GE) {
        static const zd_cmp ops[] = {ZD_CMP_LT, ZD_CMP_LE, ZD_CMP_GT, ZD_CMP_GE};
        if (check_operator(p, &f, &op, V_ORDER) != 0 || advance(p) != 0)
            goto fail;
        n->op = ops[op.type - T_LT];
        if (parse_value(p, &f, n, V_ORDER, &op, &cap) != 0)
            goto fail;
        n->form = f.age ? ZD_RL_AGE_CMP : ZD_RL_NUM_CMP;
    } else if (is_kw(p, &op, "in")) {
        if (check_operator(p, &f, &op, V_EQ) != 0 || advance(p) != 0 ||
            expect(p, T_LBRACK, "\"[\"", "after \"in\"") != 0 ||
            parse_value_list(p, &f, n, V_EQ, &op, &cap) != 0)
            goto fail;
        n->form = f.age             ? ZD_RL_AGE_IN
                  : numeric         ? ZD_RL_NUM_IN
                  : ty == ZD_T_CODE ? ZD_RL_CODE_IN
                                    : ZD_RL_STR_IN;
    } else if (is_kw(p, &op, "within")) {
        if (check_operator(p, &f, &op, V_WITHIN) != 0 || advance(p) != 0)
            goto fail;
        n->form = ZD_RL_WITHIN;
        if (p->tok.type == T_LBRACK) {
            if (advance(p) != 0 || parse_value_list(p, &f, n, V_WITHIN, &op, &cap) != 0)
                goto fail;
        } else if (p->tok.type == T_STRING) {
            if (parse_value(p, &f, n, V_WITHIN, &op, &cap) != 0)
                goto fail;
        } else {
            set_error(p, p->tok.start, "syntax_error",
                      "expected a code string or a list [\"...\", ...] after \"within\", found %s",
                      describe(p, &p->tok, buf, sizeof(buf)));
            goto fail;
        }
    } else if (is_kw(p, &op, "has")) {
        if (check_operator(p, &f, &op, V_HAS) != 0 || advance(p) != 0)
            goto fail;
        n->form = ZD_RL_HAS;
        if (p->tok.type != T_STRING) {
            set_error(p, p->tok.start, "syntax_error",
                      "expected a tag (a string) after \"has\", found %s",
                      describe(p, &p->tok, buf, sizeof(buf)));
            goto fail;
        }
        if (parse_value(p, &f, n, V_HAS, &op, &cap) != 0)
            goto fail;
    } else {
        set_error(p, op.start, "syntax_error",
                  "expected a comparison operator after \"%s\", found %s", f.name,
                  describe(p, &op, buf, sizeof(buf)));
        goto fail;
    }
    node_span(n, f.start, p->prev_end);
    n->text = strndup(p->text + f.start, p->prev_end - f.start);
    if (!n->text) {
        nomem(p);
        goto fail;
    }
    return n;
fail:
    node_free(n);
    return NULL;
}

/* The index of segment `name` in the rule's list, adding it with a copy of its text (borrowed
 * from the lookup only while compiling) on first use. */
static int segment_register(parser *p, const char *name, const char *text, size_t len)
{
    zd_rule *r = p->c->rule;
    for (int i = 0; i < r->nsegments; i++)
        if (strcmp(r->segments[i], name) == 0)
            return i;
    size_t want = sizeof(char *) * (size_t)(r->nsegments + 1);
    char **v = realloc(r->segments, want);
    if (!v)
        return -ENOMEM;
    r->segments = v;
    char **t = realloc(r->segment_sources, want);
    if (!t)
        return -ENOMEM;
    r->segment_sources = t;
    v[r->nsegments] = strdup(name);
    t[r->nsegments] = strndup(text, len);
    if (!v[r->nsegments] || !t[r->nsegments]) {
        free(v[r->nsegments]);
        free(t[r->nsegments]);
        return -ENOMEM;
    }
    return r->nsegments++;
}

static zd_rnode *parse_text(parser *p, bool is_segment);

/* "segment" string: compiles the named rule's text in place. */
static zd_rnode *parse_segment(parser *p)
{
    compiler *c = p->c;
    char buf[64];
    token kw = p->tok;
    if (advance(p) != 0)
        return NULL;
    if (p->tok.type != T_STRING) {
        set_error(p, p->tok.start, "syntax_error",
                  "expected a segment name (a string) after \"segment\", found %s",
                  describe(p, &p->tok, buf, sizeof(buf)));
        return NULL;
    }
    char *name = decode_string(p, &p->tok);
    if (!name)
        return NULL;
    zd_rnode *n = NULL;
    size_t len = strlen(name);
    if (len == 0 || len > SEGMENT_NAME_MAX) {
        set_error(p, p->tok.start, "unknown_segment", "segment names are 1-%d bytes",
                  SEGMENT_NAME_MAX);
        goto done;
    }
    for (int i = 0; i < c->nstack; i++) {
        if (strcmp(c->stack[i], name) == 0) {
            if (i == c->nstack - 1)
                set_error(p, kw.start, "segment_cycle", "segment \"%s\" refers to itself", name);
            else
                set_error(p, kw.start, "segment_cycle",
                          "segment \"%s\" refers back to itself through segment \"%s\"", name,
                          c->stack[c->nstack - 1]);
            goto done;
        }
    }
    const char *text = c->lookup ? c->lookup(name, c->udata) : NULL;
    if (!text) {
        set_error(p, kw.start, "unknown_segment", "unknown segment \"%s\"", name);
        goto done;
    }
    size_t tlen = strlen(text);
    if (tlen > ZD_RULE_MAX_BYTES) {
        set_error(p, kw.start, "rule_too_large", "segment \"%s\" is longer than %d bytes", name,
                  ZD_RULE_MAX_BYTES);
        goto done;
    }
    c->expanded += tlen;
    if (c->expanded > EXPANDED_MAX) {
        set_error(p, kw.start, "rule_too_large",
                  "the rule with its segments expanded is longer than %d bytes", EXPANDED_MAX);
        goto done;
    }
    if (advance(p) != 0)
        goto done;
    int idx = segment_register(p, name, text, tlen);
    if (idx < 0) {
        nomem(p);
        goto done;
    }
    parser q = {.c = c, .text = text, .len = tlen, .segment = idx};
    c->stack[c->nstack++] = name;
    n = parse_text(&q, true);
    c->nstack--;
done:
    free(name);
    return n;
}

/* unary := "not" unary | "(" expr ")" | "exists" field | "segment" string | cmp */
static zd_rnode *parse_unary(parser *p)
{
    char buf[64];
    token t = p->tok;
    zd_rnode *n = NULL;
    if (is_kw(p, &t, "not")) {
        if (depth_enter(p, t.start) != 0 || advance(p) != 0)
            return NULL;
        zd_rnode *kid = parse_unary(p);
        if (!kid)
            return NULL;
        if (!(n = node_new(p, ZD_RN_NOT)) || !(n->kids = malloc(sizeof(*n->kids)))) {
            node_free(n);
            node_free(kid);
            return nomem(p);
        }
        n->kids[0] = kid;
        n->nkids = 1;
        node_span(n, t.start, p->prev_end);
        p->c->depth--;
        return n;
    }
    if (t.type == T_LPAREN) {
        if (depth_enter(p, t.start) != 0 || advance(p) != 0)
            return NULL;
        if (!(n = parse_or(p)))
            return NULL;
        if (p->tok.type != T_RPAREN) {
            int line = 1, col = 1;
            for (size_t i = 0; i < t.start; i++, col++)
                if (p->text[i] == '\n') {
                    line++;
                    col = 0;
                }
            set_error(p, p->tok.start, "syntax_error",
                      "expected \"and\", \"or\" or \")\" to close the \"(\" at line %d column %d, "
                      "found %s",
                      line, col, describe(p, &p->tok, buf, sizeof(buf)));
            node_free(n);
            return NULL;
        }
        if (advance(p) != 0) {
            node_free(n);
            return NULL;
        }
        /* A group written here spans its parentheses (clause counts quote it as written). A
         * leaf keeps its own span, the comparison; a node a segment contributed keeps the
         * segment's. */
        if (n->kind != ZD_RN_LEAF && n->segment == p->segment)
            node_span(n, t.start, p->prev_end);
        p->c->depth--;
        return n;
    }
    if (is_kw(p, &t, "exists")) {
        if (advance(p) != 0)
            return NULL;
        field f;
        if (parse_field(p, &f, "a field name after \"exists\"") != 0 ||
            !(n = node_new(p, ZD_RN_LEAF)))
            return NULL;
        n->form = ZD_RL_EXISTS;
        n->attr = f.attr;
        n->age = f.age;
        node_span(n, t.start, p->prev_end);
        if (!(n->text = strndup(p->text + t.start, p->prev_end - t.start))) {
            node_free(n);
            return nomem(p);
        }
        return n;
    }
    if (is_kw(p, &t, "segment")) {
        if (depth_enter(p, t.start) != 0)
            return NULL;
        n = parse_segment(p);
        if (n)
            p->c->depth--;
        return n;
    }
    return parse_cmp(p);
}

/* and := unary ("and" unary)*    or := and ("or" and)* */
static zd_rnode *parse_chain(parser *p, zd_rnode_kind kind)
{
    const char *kw = kind == ZD_RN_AND ? "and" : "or";
    size_t start = p->tok.start;
    zd_rnode *first = kind == ZD_RN_AND ? parse_unary(p) : parse_chain(p, ZD_RN_AND);
    if (!first || !is_kw(p, &p->tok, kw))
        return first;
    zd_rnode *n = node_new(p, kind);
    int cap = 0;
    if (!n || node_add_kid(p, n, first, &cap) != 0) {
        if (!n)
            node_free(first);
        node_free(n);
        return NULL;
    }
    while (is_kw(p, &p->tok, kw)) {
        if (advance(p) != 0)
            goto fail;
        zd_rnode *kid = kind == ZD_RN_AND ? parse_unary(p) : parse_chain(p, ZD_RN_AND);
        if (!kid || node_add_kid(p, n, kid, &cap) != 0)
            goto fail;
    }
    node_span(n, start, p->prev_end);
    return n;
fail:
    node_free(n);
    return NULL;
}

static zd_rnode *parse_or(parser *p)
{
    return parse_chain(p, ZD_RN_OR);
}

/* A whole text: the rule's own or a segment's. */
static zd_rnode *parse_text(parser *p, bool is_segment)
{
    char buf[64];
    if (lex_at(p, 0, &p->tok) != 0)
        return NULL;
    if (p->tok.type == T_EOF) {
        set_error(p, p->tok.start, "syntax_error",
                  is_segment ? "empty segment: expected a condition"
                             : "empty rule: expected a condition");
        return NULL;
    }
    zd_rnode *n = parse_or(p);
    if (n && p->tok.type != T_EOF) {
        set_error(p, p->tok.start, "syntax_error",
                  "expected \"and\", \"or\" or the end of the rule, found %s",
                  describe(p, &p->tok, buf, sizeof(buf)));
        node_free(n);
        return NULL;
    }
    return n;
}

int zd_rule_compile(const zd_schema *s, const char *text, size_t len, zd_segment_lookup_fn lookup,
                    void *udata, zd_rule **out, zd_rule_error *err)
{
    zd_rule_error scratch;
    *out = NULL;
    if (!err)
        err = &scratch;
    memset(err, 0, sizeof(*err));
    zd_rule *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->schema = s;
    compiler c = {.schema = s, .lookup = lookup, .udata = udata, .err = err, .rule = r};
    parser p = {.c = &c, .text = text ? text : "", .len = text ? len : 0, .segment = -1};
    if (len > ZD_RULE_MAX_BYTES) {
        p.len = ZD_RULE_MAX_BYTES;
        set_error(&p, ZD_RULE_MAX_BYTES, "rule_too_large",
                  "the rule is %zu bytes long; the limit is %d bytes", len, ZD_RULE_MAX_BYTES);
        zd_rule_free(r);
        return -EINVAL;
    }
    c.expanded = len;
    if (!(r->source = strndup(p.text, p.len))) {
        zd_rule_free(r);
        return -ENOMEM;
    }
    r->root = parse_text(&p, false);
    if (!r->root) {
        zd_rule_free(r);
        return c.nomem ? -ENOMEM : -EINVAL;
    }
    *out = r;
    return 0;
}

void zd_rule_free(zd_rule *r)
{
    if (!r)
        return;
    node_free(r->root);
    for (int i = 0; i < r->nsegments; i++) {
        free(r->segments[i]);
        free(r->segment_sources[i]);
    }
    free(r->segments);
    free(r->segment_sources);
    free(r->source);
    free(r);
}
