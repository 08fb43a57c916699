/* The sms_http gateway's options, body template and answer mapping: pure functions, checked
 * the same way at start-up (config check) and at create(). */
#include "gateway/sms_http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "common/text.h"
#include "gateway/opts.h"
#include "gateway/retry.h"

#define URL_MAX 2048
#define BODY_MAX 8192
#define HEADER_MAX 2048
#define VALUE_MAX 64

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static const struct {
    const char *name;
    zd_sms_field field;
} placeholders[] = {
    {"to", ZD_SMS_TO},       {"body", ZD_SMS_BODY},     {"id", ZD_SMS_ID},
    {"title", ZD_SMS_TITLE}, {"policy", ZD_SMS_POLICY}, {"url", ZD_SMS_URL},
};
#define NPLACEHOLDERS (sizeof(placeholders) / sizeof(placeholders[0]))

static int check_url(const char *url, const char *pfx, char *err, size_t errlen)
{
    if (strlen(url) > URL_MAX)
        return fail(err, errlen, "\"%surl\" is longer than %d characters", pfx, URL_MAX);
    CURLU *u = curl_url();
    if (!u)
        return -ENOMEM;
    char *scheme = NULL, *host = NULL;
    int rc = 0;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0] ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
        rc = fail(err, errlen, "\"%surl\" must be an http:// or https:// URL", pfx);
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

/* Splits the template into literal pieces and placeholders. */
static int compile(zd_sms_http_opts *o, const char *pfx, char *err, size_t errlen)
{
    const char *s = o->body;
    size_t cap = 8;
    o->pieces = calloc(cap, sizeof(*o->pieces));
    if (!o->pieces)
        return -ENOMEM;
    while (*s) {
        if (o->npieces + 2 > (int)cap) {
            cap *= 2;
            zd_sms_piece *p = realloc(o->pieces, cap * sizeof(*p));
            if (!p)
                return -ENOMEM;
            o->pieces = p;
        }
        const char *open = strstr(s, "{{");
        if (open != s) {
            size_t len = open ? (size_t)(open - s) : strlen(s);
            o->pieces[o->npieces++] = (zd_sms_piece){ZD_SMS_LITERAL, s, len};
            s += len;
            continue;
        }
        const char *close = strstr(s + 2, "}}");
        size_t at = (size_t)(s - o->body);
        if (!close)
            return fail(err, errlen, "\"%sbody\": \"{{\" at byte %zu is not closed by \"}}\"", pfx,
                        at);
        size_t nl = (size_t)(close - (s + 2));
        zd_sms_field f = ZD_SMS_LITERAL;
        for (size_t i = 0; i < NPLACEHOLDERS; i++) {
            if (strlen(placeholders[i].name) == nl && strncmp(placeholders[i].name, s + 2, nl) == 0)
                f = placeholders[i].field;
        }
        if (f == ZD_SMS_LITERAL)
            return fail(
                err, errlen,
                "\"%sbody\": unknown placeholder \"{{%.*s}}\" at byte %zu (known: to, body, "
                "id, title, policy, url)",
                pfx, (int)(nl > 32 ? 32 : nl), s + 2, at);
        o->pieces[o->npieces++] = (zd_sms_piece){f, NULL, 0};
        s = close + 2;
    }
    return 0;
}

static int get_values(const cJSON *obj, const char *pfx, const char *key, char **out, int *n,
                      char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        return 0;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > ZD_SMS_VALUES_MAX)
        return fail(err, errlen, "\"%sanswer.%s\" must be a list of at most %d values", pfx, key,
                    ZD_SMS_VALUES_MAX);
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        char buf[VALUE_MAX + 1];
        if (cJSON_IsString(e) && strlen(e->valuestring) <= VALUE_MAX)
            snprintf(buf, sizeof(buf), "%s", e->valuestring);
        else if (cJSON_IsNumber(e) && e->valuedouble == (double)(long long)e->valuedouble)
            snprintf(buf, sizeof(buf), "%lld", (long long)e->valuedouble);
        else if (cJSON_IsBool(e))
            snprintf(buf, sizeof(buf), "%s", cJSON_IsTrue(e) ? "true" : "false");
        else
            return fail(err, errlen,
                        "\"%sanswer.%s\" values must be strings (at most %d bytes), integers or "
                        "booleans",
                        pfx, key, VALUE_MAX);
        if (!(out[(*n)++] = strdup(buf)))
            return -ENOMEM;
    }
    return 0;
}

static int get_answer(const cJSON *v, const char *pfx, zd_sms_http_opts *o, char *err,
                      size_t errlen)
{
    if (!cJSON_IsObject(v))
        return fail(err, errlen,
                    "\"%sanswer\" must be an object {\"field\": ..., \"delivered\": [...], "
                    "\"permanent\": [...]}",
                    pfx);
    const cJSON *m;
    cJSON_ArrayForEach(m, v)
    {
        if (strcmp(m->string, "field") && strcmp(m->string, "delivered") &&
            strcmp(m->string, "permanent"))
            return fail(err, errlen, "unknown key \"%sanswer.%.64s\"", pfx, m->string);
    }
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(v, "field");
    if (!cJSON_IsString(f) || !f->valuestring[0] || strlen(f->valuestring) > 128 ||
        strstr(f->valuestring, "..") || f->valuestring[0] == '.')
        return fail(err, errlen,
                    "\"%sanswer.field\" is required: the path of the provider's result code in "
                    "its JSON answer, e.g. \"result.code\"",
                    pfx);
    if (!(o->answer_field = strdup(f->valuestring)))
        return -ENOMEM;
    int rc;
    if ((rc = get_values(v, pfx, "delivered", o->delivered, &o->ndelivered, err, errlen)) ||
        (rc = get_values(v, pfx, "permanent", o->permanent, &o->npermanent, err, errlen)))
        return rc;
    if (o->ndelivered == 0)
        return fail(err, errlen,
                    "\"%sanswer.delivered\" must list at least one value that means the message "
                    "was accepted",
                    pfx);
    return 0;
}

static int get_auth(const cJSON *v, const char *pfx, zd_sms_http_opts *o, char *err, size_t errlen)
{
    /* The value is a secret: messages name the key, never quote it. */
    const char *s = cJSON_IsString(v) ? v->valuestring : NULL;
    const char *colon = s ? strchr(s, ':') : NULL;
    bool ok = s && colon && colon > s && strlen(s) <= HEADER_MAX && colon[1];
    for (const char *p = s; ok && p < colon; p++)
        ok = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
             *p == '-' || *p == '_';
    for (const char *p = colon; ok && *p; p++)
        ok = (unsigned char)*p >= 0x20 && *p != 0x7f;
    if (!ok)
        return fail(err, errlen,
                    "\"%sauth_header\" must be one header line \"Name: value\", e.g. "
                    "\"Authorization: Bearer <token>\", at most %d characters without control "
                    "characters",
                    pfx, HEADER_MAX);
    if (!(o->auth_header = strdup(s)))
        return -ENOMEM;
    return 0;
}

/* A notice whose strings need escaping, for the JSON template check. */
static const zd_notice sample = {
    .id = "p:e1:sms",
    .policy = "p",
    .profile = "e1",
    .gateway = "sms",
    .to = "1\"\\3",
    .title = "t\"\n",
    .body = "b\"\\\n\t<&>",
    .url = "https://x/?a=1&b=\"",
    .category = "c",
};

int zd_sms_http_opts_parse(const char *options_json, const char *pfx, zd_sms_http_opts *o,
                           char *err, size_t errlen)
{
    static const char *const keys[] = {"url",    "method",     "auth_header", "format", "body",
                                       "answer", "timeout_ms", "concurrency", "rate",   NULL};
    memset(o, 0, sizeof(*o));
    o->timeout_ms = 10000;
    o->concurrency = 16;
    int rc = -EINVAL;
    cJSON *root = cJSON_Parse(options_json);
    if (!cJSON_IsObject(root)) {
        rc = fail(err, errlen, "\"%s\" must be an object", pfx);
        goto fail;
    }
    if ((rc = zd_gw_opt_known_keys(root, keys, pfx, err, errlen)))
        goto fail;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "url");
    if (!cJSON_IsString(v)) {
        rc =
            fail(err, errlen, "\"%surl\" is required: the provider's http:// or https:// URL", pfx);
        goto fail;
    }
    if ((rc = check_url(v->valuestring, pfx, err, errlen)))
        goto fail;
    rc = -ENOMEM;
    if (!(o->url = strdup(v->valuestring)))
        goto fail;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "method"))) {
        if (!cJSON_IsString(v) ||
            (strcmp(v->valuestring, "POST") != 0 && strcmp(v->valuestring, "PUT") != 0)) {
            rc = fail(err, errlen, "\"%smethod\" must be \"POST\" or \"PUT\"", pfx);
            goto fail;
        }
        o->put = strcmp(v->valuestring, "PUT") == 0;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "auth_header")) &&
        (rc = get_auth(v, pfx, o, err, errlen)))
        goto fail;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "format"))) {
        if (!cJSON_IsString(v) ||
            (strcmp(v->valuestring, "json") != 0 && strcmp(v->valuestring, "form") != 0)) {
            rc = fail(err, errlen, "\"%sformat\" must be \"json\" or \"form\"", pfx);
            goto fail;
        }
        o->format = strcmp(v->valuestring, "form") == 0 ? ZD_SMS_FORM : ZD_SMS_JSON;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "body");
    if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > BODY_MAX ||
        !zd_utf8_valid(v->valuestring, strlen(v->valuestring))) {
        rc = fail(err, errlen,
                  "\"%sbody\" is required: the request body template (1..%d bytes of UTF-8) with "
                  "placeholders {{to}}, {{body}}, {{id}}, {{title}}, {{policy}}, {{url}}",
                  pfx, BODY_MAX);
        goto fail;
    }
    rc = -ENOMEM;
    if (!(o->body = strdup(v->valuestring)))
        goto fail;
    if ((rc = compile(o, pfx, err, errlen)))
        goto fail;
    if (o->format == ZD_SMS_JSON) {
        /* Every request must be JSON, whatever the notice holds. */
        size_t len;
        char *text = zd_sms_http_render(o, &sample, &len);
        rc = -ENOMEM;
        if (!text)
            goto fail;
        cJSON *j = cJSON_ParseWithLength(text, len);
        free(text);
        if (!j) {
            rc = fail(err, errlen,
                      "\"%sbody\" is not JSON once its placeholders are filled: a placeholder "
                      "goes inside a string, e.g. {\"mobile\": \"{{to}}\"}",
                      pfx);
            goto fail;
        }
        cJSON_Delete(j);
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "answer")) &&
        (rc = get_answer(v, pfx, o, err, errlen)))
        goto fail;
    double timeout = (double)o->timeout_ms, conc = o->concurrency;
    if ((rc =
             zd_gw_opt_number(root, pfx, "timeout_ms", 100, 600000, true, &timeout, err, errlen)) ||
        (rc = zd_gw_opt_number(root, pfx, "concurrency", 1, 1024, true, &conc, err, errlen)) ||
        (rc = zd_gw_opt_number(root, pfx, "rate", 0, 1000000, false, &o->rate, err, errlen)))
        goto fail;
    o->timeout_ms = (long)timeout;
    o->concurrency = (int)conc;
    cJSON_Delete(root);
    return 0;
fail:
    if (rc == -ENOMEM)
        fail(err, errlen, "out of memory");
    cJSON_Delete(root);
    zd_sms_http_opts_free(o);
    return rc;
}

void zd_sms_http_opts_free(zd_sms_http_opts *o)
{
    free(o->url);
    if (o->auth_header) {
        explicit_bzero(o->auth_header, strlen(o->auth_header));
        free(o->auth_header);
    }
    free(o->body);
    free(o->pieces);
    free(o->answer_field);
    for (int i = 0; i < o->ndelivered; i++)
        free(o->delivered[i]);
    for (int i = 0; i < o->npermanent; i++)
        free(o->permanent[i]);
    memset(o, 0, sizeof(*o));
}

/* ---- rendering -------------------------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
    bool oom;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void put_json(buf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(b, esc, 2);
        } else if (c == '\n') {
            put(b, "\\n", 2);
        } else if (c == '\r') {
            put(b, "\\r", 2);
        } else if (c == '\t') {
            put(b, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(b, esc, 6);
        } else {
            put(b, s, 1);
        }
    }
}

/* application/x-www-form-urlencoded: unreserved bytes as they are, space as '+'. */
static void put_form(buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '*') {
            put(b, s, 1);
        } else if (c == ' ') {
            put(b, "+", 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            put(b, e, 3);
        }
    }
}

char *zd_sms_http_render(const zd_sms_http_opts *o, const zd_notice *n, size_t *len)
{
    buf b = {0};
    for (int i = 0; i < o->npieces; i++) {
        const zd_sms_piece *p = &o->pieces[i];
        const char *v = NULL;
        switch (p->field) {
        case ZD_SMS_LITERAL:
            put(&b, p->text, p->len);
            continue;
        case ZD_SMS_TO:
            v = n->to;
            break;
        case ZD_SMS_BODY:
            v = n->body;
            break;
        case ZD_SMS_ID:
            v = n->id;
            break;
        case ZD_SMS_TITLE:
            v = n->title;
            break;
        case ZD_SMS_POLICY:
            v = n->policy;
            break;
        case ZD_SMS_URL:
            v = n->url;
            break;
        }
        if (o->format == ZD_SMS_JSON)
            put_json(&b, v ? v : "");
        else
            put_form(&b, v ? v : "");
    }
    put(&b, "", 0);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

/* ---- answers ---------------------------------------------------------------------------- */

static bool listed(char *const *values, int n, const char *v)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(values[i], v) == 0)
            return true;
    }
    return false;
}

void zd_sms_http_classify(const zd_sms_http_opts *o, int curl_rc, long http_status,
                          const char *retry_after, const char *answer, size_t len,
                          long long now_unix_s, zd_gw_result *r)
{
    zd_retry_classify(curl_rc, http_status, retry_after, now_unix_s, o->timeout_ms, r);
    if (r->outcome != ZD_GW_DELIVERED || !o->answer_field)
        return;
    cJSON *root = answer && len ? cJSON_ParseWithLength(answer, len) : NULL;
    const cJSON *v = root;
    /* Walk "a.b.c" one object member at a time. */
    const char *path = o->answer_field;
    while (v && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        char key[129];
        snprintf(key, sizeof(key), "%.*s", (int)n, path);
        v = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, key) : NULL;
        path += n + (dot ? 1 : 0);
    }
    char text[VALUE_MAX + 1] = "";
    bool have = true;
    if (cJSON_IsString(v))
        snprintf(text, sizeof(text), "%s", v->valuestring);
    else if (cJSON_IsNumber(v) && v->valuedouble == (double)(long long)v->valuedouble)
        snprintf(text, sizeof(text), "%lld", (long long)v->valuedouble);
    else if (cJSON_IsBool(v))
        snprintf(text, sizeof(text), "%s", cJSON_IsTrue(v) ? "true" : "false");
    else
        have = false;
    cJSON_Delete(root);
    /* The provider's code is safe to log (not personal data), but keep it short. */
    char shown[24];
    snprintf(shown, sizeof(shown), "%.20s", text);
    for (char *c = shown; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            *c = '?';
    if (!have) {
        r->outcome = ZD_GW_TRANSIENT;
        snprintf(r->detail, sizeof(r->detail), "HTTP %ld without %.40s in the answer", http_status,
                 o->answer_field);
    } else if (listed(o->delivered, o->ndelivered, text)) {
        snprintf(r->detail, sizeof(r->detail), "HTTP %ld, %.40s %s", http_status, o->answer_field,
                 shown);
    } else if (listed(o->permanent, o->npermanent, text)) {
        r->outcome = ZD_GW_PERMANENT;
        snprintf(r->detail, sizeof(r->detail), "HTTP %ld, %.40s %s: refused", http_status,
                 o->answer_field, shown);
    } else {
        r->outcome = ZD_GW_TRANSIENT;
        snprintf(r->detail, sizeof(r->detail), "HTTP %ld, %.40s %s: not accepted", http_status,
                 o->answer_field, shown);
    }
}
