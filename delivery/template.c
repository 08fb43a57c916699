/* The notice template language: compile `{{path|fallback}}` text into parts, render parts. */
#include "delivery/template.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/text.h"

typedef enum part_kind {
    PART_LITERAL,
    PART_POLICY,
    PART_FIELD,
    PART_ATTR,
    PART_PROFILE_ID,
    PART_REASONS,
} part_kind;

typedef enum policy_field {
    PF_TITLE,
    PF_SUMMARY,
    PF_URL,
    PF_ISSUER,
    PF_CATEGORY,
    PF_DEADLINE,
    PF_ID,
} policy_field;

static const char *const POLICY_FIELDS[] = {"title",    "summary",  "url", "issuer",
                                            "category", "deadline", "id"};
#define NPOLICY_FIELDS ((int)(sizeof(POLICY_FIELDS) / sizeof(POLICY_FIELDS[0])))

/* A part: literal text, or a placeholder with its name (fields./attrs.) and fallback, all as
 * offsets into the template's string pool, names NUL-terminated there for cJSON lookups. */
typedef struct part {
    part_kind kind;
    policy_field field;
    uint32_t off, len;       /* literal text, or the name after "fields." / "attrs." */
    uint32_t fb_off, fb_len; /* the fallback (empty when none) */
} part;

struct zd_template {
    int nparts;
    unsigned uses;
    part *parts;
    char *pool;
};

zd_escape zd_escape_for_type(const char *type)
{
    /* Every built-in type takes plain text: webhook and inbox JSON-encode the notice, sms_http
     * sends text, and smtp itself HTML-escapes the whole body (values and literal text alike)
     * into its text/html part while sending it unchanged as text/plain (gateway/smtp_msg.c).
     * Escaping the values here too would show "&amp;" in both parts. ZD_ESCAPE_HTML is for a
     * gateway whose body is HTML as given; none is configured today. */
    (void)type;
    return ZD_ESCAPE_NONE;
}

void zd_template_free(zd_template *t)
{
    if (!t)
        return;
    free(t->parts);
    free(t->pool);
    free(t);
}

unsigned zd_template_uses(const zd_template *t)
{
    return t ? t->uses : 0;
}

static int tfail(zd_template_error *err, const char *code, int position, const char *path,
                 size_t pathlen, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int tfail(zd_template_error *err, const char *code, int position, const char *path,
                 size_t pathlen, const char *fmt, ...)
{
    if (!err)
        return -EINVAL;
    snprintf(err->code, sizeof(err->code), "%s", code);
    if (pathlen >= sizeof(err->path))
        pathlen = sizeof(err->path) - 1;
    memcpy(err->path, path ? path : "", path ? pathlen : 0);
    err->path[path ? pathlen : 0] = '\0';
    err->position = position;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* A name after "fields." or "attrs.": letters, digits, '_', '-' and non-ASCII (Chinese field
 * names), 1..64 bytes. */
static bool name_ok(const char *s, size_t n)
{
    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* The known path nearest to path (edit distance <= 3), for did-you-mean; NULL if none. */
static const char *suggest(const char *path, size_t n)
{
    static const char *const known[] = {
        "policy.title",    "policy.summary",  "policy.url", "policy.issuer",
        "policy.category", "policy.deadline", "policy.id",  "profile.id",
        "reasons",         "fields.",         "attrs.",
    };
    char buf[72];
    if (n >= sizeof(buf))
        return NULL;
    memcpy(buf, path, n);
    buf[n] = '\0';
    const char *best = NULL;
    int bestd = 4;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        int d = zd_edit_distance(buf, known[i], 3);
        if (d < bestd) {
            bestd = d;
            best = known[i];
        }
    }
    return best;
}

typedef struct builder {
    part *parts;
    int n, cap;
    char *pool;
    size_t plen, pcap;
} builder;

/* Appends s[0..n) and a NUL to the pool; returns its offset, or UINT32_MAX on ENOMEM. */
static uint32_t pool_add(builder *b, const char *s, size_t n)
{
    if (b->plen + n + 1 > b->pcap) {
        size_t nc = (b->pcap + n + 1) * 2;
        char *np = realloc(b->pool, nc);
        if (!np)
            return UINT32_MAX;
        b->pool = np;
        b->pcap = nc;
    }
    uint32_t off = (uint32_t)b->plen;
    memcpy(b->pool + b->plen, s, n);
    b->pool[b->plen + n] = '\0';
    b->plen += n + 1;
    return off;
}

static part *part_add(builder *b)
{
    if (b->n == b->cap) {
        int nc = b->cap ? b->cap * 2 : 8;
        part *np = realloc(b->parts, (size_t)nc * sizeof(*np));
        if (!np)
            return NULL;
        b->parts = np;
        b->cap = nc;
    }
    part *p = &b->parts[b->n++];
    memset(p, 0, sizeof(*p));
    return p;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Resolves the path text[ps..pe) into p; 0 or -EINVAL with *err. */
static int resolve(const char *text, size_t ps, size_t pe, const zd_schema *schema, builder *b,
                   part *p, unsigned *uses, zd_template_error *err)
{
    const char *path = text + ps;
    size_t n = pe - ps;
    if (n == 0)
        return tfail(err, "syntax_error", (int)ps, "", 0,
                     "empty placeholder at byte %zu: write {{policy.title}}, {{fields.name}}, "
                     "{{attrs.employees}}, {{profile.id}} or {{reasons}}",
                     ps);
    if (n > 7 && memcmp(path, "policy.", 7) == 0) {
        for (int i = 0; i < NPOLICY_FIELDS; i++)
            if (strlen(POLICY_FIELDS[i]) == n - 7 &&
                memcmp(path + 7, POLICY_FIELDS[i], n - 7) == 0) {
                p->kind = PART_POLICY;
                p->field = (policy_field)i;
                return 0;
            }
    } else if (n == 10 && memcmp(path, "profile.id", 10) == 0) {
        p->kind = PART_PROFILE_ID;
        return 0;
    } else if (n == 7 && memcmp(path, "reasons", 7) == 0) {
        p->kind = PART_REASONS;
        *uses |= ZD_TPL_USES_REASONS;
        return 0;
    } else if ((n > 7 && memcmp(path, "fields.", 7) == 0) ||
               (n > 6 && memcmp(path, "attrs.", 6) == 0)) {
        bool field = path[0] == 'f';
        size_t skip = field ? 7 : 6;
        const char *name = path + skip;
        size_t nl = n - skip;
        bool ok = name_ok(name, nl);
        if (ok && !field && schema) {
            char nb[80];
            memcpy(nb, name, nl);
            nb[nl] = '\0';
            ok = zd_schema_find(schema, nb) != NULL;
        }
        if (ok) {
            p->kind = field ? PART_FIELD : PART_ATTR;
            *uses |= field ? ZD_TPL_USES_FIELDS : ZD_TPL_USES_ATTRS;
            p->len = (uint32_t)nl;
            if ((p->off = pool_add(b, name, nl)) == UINT32_MAX)
                return -ENOMEM;
            return 0;
        }
        if (!field && schema && name_ok(name, nl))
            return tfail(err, "unknown_path", (int)ps, path, n,
                         "unknown template path \"%.*s\" at byte %zu: the schema declares no "
                         "attribute \"%.*s\"",
                         (int)(n > 64 ? 64 : n), path, ps, (int)(nl > 64 ? 64 : nl), name);
    }
    const char *s = suggest(path, n);
    return tfail(err, "unknown_path", (int)ps, path, n,
                 "unknown template path \"%.*s\" at byte %zu%s%s%s", (int)(n > 64 ? 64 : n), path,
                 ps, s ? " (did you mean \"" : "", s ? s : "", s ? "\"?)" : "");
}

int zd_template_compile(const char *text, size_t len, const zd_schema *schema, zd_template **out,
                        zd_template_error *err)
{
    *out = NULL;
    builder b = {0};
    unsigned uses = 0;
    int rc = -ENOMEM;
    size_t i = 0;
    while (i < len) {
        const char *open = NULL;
        for (size_t k = i; k + 1 < len; k++)
            if (text[k] == '{' && text[k + 1] == '{') {
                open = text + k;
                break;
            }
        size_t lit_end = open ? (size_t)(open - text) : len;
        if (lit_end > i) {
            part *p = part_add(&b);
            if (!p || (p->off = pool_add(&b, text + i, lit_end - i)) == UINT32_MAX)
                goto fail;
            p->kind = PART_LITERAL;
            p->len = (uint32_t)(lit_end - i);
        }
        if (!open)
            break;
        size_t start = lit_end + 2, close = 0;
        bool found = false;
        for (size_t k = start; k + 1 < len; k++)
            if (text[k] == '}' && text[k + 1] == '}') {
                close = k;
                found = true;
                break;
            }
        if (!found) {
            rc = tfail(err, "syntax_error", (int)lit_end, "", 0,
                       "\"{{\" at byte %zu is never closed by \"}}\"", lit_end);
            goto fail;
        }
        size_t bar = close;
        for (size_t k = start; k < close; k++)
            if (text[k] == '|') {
                bar = k;
                break;
            }
        size_t ps = start, pe = bar;
        while (ps < pe && is_space(text[ps]))
            ps++;
        while (pe > ps && is_space(text[pe - 1]))
            pe--;
        part *p = part_add(&b);
        if (!p)
            goto fail;
        if ((rc = resolve(text, ps, pe, schema, &b, p, &uses, err)) != 0)
            goto fail;
        rc = -ENOMEM;
        if (bar < close) {
            p->fb_len = (uint32_t)(close - bar - 1);
            if ((p->fb_off = pool_add(&b, text + bar + 1, p->fb_len)) == UINT32_MAX)
                goto fail;
        }
        i = close + 2;
    }
    zd_template *t = calloc(1, sizeof(*t));
    if (!t)
        goto fail;
    t->nparts = b.n;
    t->parts = b.parts;
    t->pool = b.pool;
    t->uses = uses;
    *out = t;
    return 0;
fail:
    if (rc == -ENOMEM && err)
        tfail(err, "out_of_memory", 0, "", 0, "out of memory compiling a template");
    free(b.parts);
    free(b.pool);
    return rc;
}

/* ---- rendering --------------------------------------------------------------------------- */

typedef struct out {
    char *buf;
    size_t cap, len; /* len counts what the whole rendering needs, also past cap */
} out;

static void emit(out *o, const char *s, size_t n)
{
    /* Fills the whole buffer, so that the cut at the end can see whether its last byte
     * starts a character. */
    if (o->len < o->cap) {
        size_t room = o->cap - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void emit_escaped(out *o, const char *s, size_t n, zd_escape esc)
{
    if (esc == ZD_ESCAPE_NONE) {
        emit(o, s, n);
        return;
    }
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            continue;
        }
        emit(o, s + run, i - run);
        emit(o, rep, strlen(rep));
        run = i + 1;
    }
    emit(o, s + run, n - run);
}

/* Writes a JSON value as text: strings as they are, numbers without a needless ".0", true and
 * false as 是/否, arrays (tags) joined by "、". Returns false when there is nothing to write. */
static bool emit_json(out *o, const cJSON *v, zd_escape esc)
{
    if (cJSON_IsString(v)) {
        if (!v->valuestring[0])
            return false;
        emit_escaped(o, v->valuestring, strlen(v->valuestring), esc);
        return true;
    }
    if (cJSON_IsNumber(v)) {
        char nb[40];
        double d = v->valuedouble;
        int n = (d == floor(d) && fabs(d) < 1e15) ? snprintf(nb, sizeof(nb), "%.0f", d)
                                                  : snprintf(nb, sizeof(nb), "%.15g", d);
        emit(o, nb, (size_t)n);
        return true;
    }
    if (cJSON_IsBool(v)) {
        emit(o, cJSON_IsTrue(v) ? "是" : "否", 3);
        return true;
    }
    if (cJSON_IsArray(v)) {
        bool any = false;
        for (const cJSON *it = v->child; it; it = it->next) {
            if (!cJSON_IsString(it) || !it->valuestring[0])
                continue;
            if (any)
                emit(o, "、", 3);
            emit_escaped(o, it->valuestring, strlen(it->valuestring), esc);
            any = true;
        }
        return any;
    }
    return false;
}

static const cJSON *member(const cJSON *obj, const char *name)
{
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, name) : NULL;
}

static const char *policy_value(const zd_policy *p, policy_field f)
{
    if (!p)
        return NULL;
    switch (f) {
    case PF_TITLE:
        return p->title;
    case PF_SUMMARY:
        return p->summary;
    case PF_URL:
        return p->url;
    case PF_ISSUER:
        return p->issuer;
    case PF_CATEGORY:
        return p->category;
    case PF_DEADLINE:
        return p->deadline;
    case PF_ID:
        return p->id;
    }
    return NULL;
}

static bool emit_str(out *o, const char *s, zd_escape esc)
{
    if (!s || !s[0])
        return false;
    emit_escaped(o, s, strlen(s), esc);
    return true;
}

size_t zd_template_render(const zd_template *t, const zd_template_data *d, zd_escape esc, char *buf,
                          size_t cap)
{
    out o = {.buf = buf, .cap = cap};
    for (int i = 0; i < t->nparts; i++) {
        const part *p = &t->parts[i];
        /* A template with no text of its own has no pool: no offset into NULL (UBSan). */
        const char *name = t->pool ? t->pool + p->off : "";
        bool wrote = true;
        switch (p->kind) {
        case PART_LITERAL:
            emit(&o, name, p->len);
            continue;
        case PART_POLICY:
            wrote = emit_str(&o, policy_value(d->policy, p->field), esc);
            break;
        case PART_PROFILE_ID:
            wrote = emit_str(&o, d->profile_id, esc);
            break;
        case PART_REASONS:
            wrote = emit_str(&o, d->reasons, esc);
            break;
        case PART_FIELD:
            wrote = emit_json(&o, member(d->fields, name), esc);
            break;
        case PART_ATTR: {
            const cJSON *v = member(member(d->profile, "attrs"), name);
            wrote = emit_json(&o, v ? v : member(d->profile, name), esc);
            break;
        }
        }
        if (!wrote && p->fb_len)
            emit(&o, t->pool + p->fb_off, p->fb_len);
    }
    if (cap) {
        size_t end = o.len < cap ? o.len : cap - 1;
        /* Cut: do not leave half a UTF-8 character at the end. */
        if (o.len >= cap)
            while (end > 0 && ((unsigned char)buf[end] & 0xC0) == 0x80)
                end--;
        buf[end] = '\0';
    }
    return o.len;
}
