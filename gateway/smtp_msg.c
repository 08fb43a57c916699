/* The smtp gateway's options and messages: pure functions (gateway/smtp.h). */
#include "gateway/smtp.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "common/text.h"
#include "gateway/opts.h"

#define URL_MAX 2048
#define CRED_MAX 256

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

/* ---- addresses -------------------------------------------------------------------------- */

static bool atext(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

bool zd_smtp_address_ok(const char *s)
{
    size_t n = strlen(s);
    const char *at = strrchr(s, '@');
    if (n < 5 || n > 254 || !at || at == s || at - s > 64)
        return false;
    /* Local part: a dot-atom, no leading, trailing or double dots. */
    for (const char *p = s; p < at; p++) {
        if (*p == '.') {
            if (p == s || p + 1 == at || p[1] == '.')
                return false;
        } else if (!atext((unsigned char)*p)) {
            return false;
        }
    }
    /* Domain: labels of letters, digits and inner hyphens, at least two of them. */
    int labels = 0;
    const char *label = at + 1;
    for (const char *p = at + 1;; p++) {
        if (*p == '.' || *p == '\0') {
            size_t len = (size_t)(p - label);
            if (len == 0 || len > 63 || label[0] == '-' || p[-1] == '-')
                return false;
            labels++;
            if (*p == '\0')
                break;
            label = p + 1;
        } else if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                     (*p >= '0' && *p <= '9') || *p == '-')) {
            return false;
        }
    }
    return labels >= 2;
}

/* ---- options ---------------------------------------------------------------------------- */

static int get_str(const cJSON *root, const char *pfx, const char *key, size_t max, char **out,
                   char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v)
        return 0;
    if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > max)
        return fail(err, errlen, "\"%s%s\" must be a string of 1..%zu bytes", pfx, key, max);
    for (const char *p = v->valuestring; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return fail(err, errlen, "\"%s%s\" must not hold control characters", pfx, key);
    }
    if (!(*out = strdup(v->valuestring)))
        return -ENOMEM;
    return 0;
}

static int check_url(const char *url, const char *pfx, char *err, size_t errlen)
{
    if (strlen(url) > URL_MAX)
        return fail(err, errlen, "\"%surl\" is longer than %d characters", pfx, URL_MAX);
    CURLU *u = curl_url();
    if (!u)
        return -ENOMEM;
    char *scheme = NULL, *host = NULL, *user = NULL;
    int rc = 0;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0] ||
        (strcmp(scheme, "smtp") != 0 && strcmp(scheme, "smtps") != 0))
        rc = fail(err, errlen,
                  "\"%surl\" must be an smtp:// or smtps:// URL, e.g. "
                  "\"smtps://mail.example.gov.cn:465\"",
                  pfx);
    else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
        rc = fail(err, errlen,
                  "\"%surl\" must not hold credentials: use \"%susername\" and \"%spassword\"", pfx,
                  pfx, pfx);
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_url_cleanup(u);
    return rc;
}

int zd_smtp_opts_parse(const char *options_json, const char *pfx, zd_smtp_opts *o, char *err,
                       size_t errlen)
{
    static const char *const keys[] = {"url",      "from",     "from_name",  "username",
                                       "password", "starttls", "timeout_ms", "concurrency",
                                       "rate",     NULL};
    memset(o, 0, sizeof(*o));
    o->timeout_ms = 10000;
    o->concurrency = 4;
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
        rc = fail(err, errlen, "\"%surl\" is required: the mail server, smtp:// or smtps://", pfx);
        goto fail;
    }
    if ((rc = check_url(v->valuestring, pfx, err, errlen)))
        goto fail;
    rc = -ENOMEM;
    if (!(o->url = strdup(v->valuestring)))
        goto fail;
    v = cJSON_GetObjectItemCaseSensitive(root, "from");
    if (!cJSON_IsString(v) || !zd_smtp_address_ok(v->valuestring)) {
        rc = fail(err, errlen,
                  "\"%sfrom\" is required: the sender's address, e.g. "
                  "\"noreply@example.gov.cn\"",
                  pfx);
        goto fail;
    }
    rc = -ENOMEM;
    if (!(o->from = strdup(v->valuestring)))
        goto fail;
    if ((rc = get_str(root, pfx, "from_name", 128, &o->from_name, err, errlen)))
        goto fail;
    if (o->from_name && !zd_utf8_valid(o->from_name, strlen(o->from_name))) {
        rc = fail(err, errlen, "\"%sfrom_name\" must be UTF-8", pfx);
        goto fail;
    }
    if ((rc = get_str(root, pfx, "username", CRED_MAX, &o->username, err, errlen)))
        goto fail;
    /* The password: checked without quoting it. */
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "password"))) {
        if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > CRED_MAX) {
            rc = fail(err, errlen, "\"%spassword\" must be a string of 1..%d bytes", pfx, CRED_MAX);
            goto fail;
        }
        rc = -ENOMEM;
        if (!(o->password = strdup(v->valuestring)))
            goto fail;
    }
    if (!o->username != !o->password) {
        rc = fail(err, errlen, "\"%susername\" and \"%spassword\" go together", pfx, pfx);
        goto fail;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "starttls"))) {
        const char *s = cJSON_IsString(v) ? v->valuestring : "";
        if (strcmp(s, "try") == 0)
            o->starttls = ZD_SMTP_TLS_TRY;
        else if (strcmp(s, "require") == 0)
            o->starttls = ZD_SMTP_TLS_REQUIRE;
        else if (strcmp(s, "off") == 0)
            o->starttls = ZD_SMTP_TLS_OFF;
        else {
            rc = fail(err, errlen, "\"%sstarttls\" must be \"try\", \"require\" or \"off\"", pfx);
            goto fail;
        }
    }
    double timeout = (double)o->timeout_ms, conc = o->concurrency;
    if ((rc =
             zd_gw_opt_number(root, pfx, "timeout_ms", 100, 600000, true, &timeout, err, errlen)) ||
        (rc = zd_gw_opt_number(root, pfx, "concurrency", 1, 256, true, &conc, err, errlen)) ||
        (rc = zd_gw_opt_number(root, pfx, "rate", 0, 100000, false, &o->rate, err, errlen)))
        goto fail;
    o->timeout_ms = (long)timeout;
    o->concurrency = (int)conc;
    cJSON_Delete(root);
    return 0;
fail:
    if (rc == -ENOMEM)
        fail(err, errlen, "out of memory");
    cJSON_Delete(root);
    zd_smtp_opts_free(o);
    return rc;
}

void zd_smtp_opts_free(zd_smtp_opts *o)
{
    free(o->url);
    free(o->from);
    free(o->from_name);
    free(o->username);
    if (o->password) {
        explicit_bzero(o->password, strlen(o->password));
        free(o->password);
    }
    memset(o, 0, sizeof(*o));
}

/* ---- the message ------------------------------------------------------------------------ */

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
        size_t cap = b->cap ? b->cap : 2048;
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

static void puts_(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void put_b64(buf *b, const unsigned char *s, size_t n, size_t line)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t col = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);
        char q[4] = {tab[v >> 18 & 63], tab[v >> 12 & 63], i + 1 < n ? tab[v >> 6 & 63] : '=',
                     i + 2 < n ? tab[v & 63] : '='};
        put(b, q, 4);
        col += 4;
        if (line && col >= line && i + 3 < n) {
            put(b, "\r\n", 2);
            col = 0;
        }
    }
}

/* An RFC 2047 header value: UTF-8 in "B" encoded-words of at most 75 characters (45 bytes of
 * text each, split between characters), folded onto continuation lines. */
static void put_encoded_words(buf *b, const char *s)
{
    size_t n = strlen(s);
    bool first = true;
    while (n > 0 || first) {
        size_t take = n < 45 ? n : 45;
        /* Back up to the start of a character. */
        while (take < n && take > 0 && ((unsigned char)s[take] & 0xC0) == 0x80)
            take--;
        if (!first)
            puts_(b, "\r\n ");
        puts_(b, "=?UTF-8?B?");
        put_b64(b, (const unsigned char *)s, take, 0);
        puts_(b, "?=");
        s += take;
        n -= take;
        first = false;
    }
}

static void put_html_escaped(buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<':
            puts_(b, "&lt;");
            break;
        case '>':
            puts_(b, "&gt;");
            break;
        case '&':
            puts_(b, "&amp;");
            break;
        case '"':
            puts_(b, "&quot;");
            break;
        case '\'':
            puts_(b, "&#39;");
            break;
        case '\n':
            puts_(b, "<br>\r\n");
            break;
        case '\r':
            break;
        default:
            put(b, s, 1);
        }
    }
}

/* A Message-ID's left part from the notice id: letters, digits, '-' and '_' as they are,
 * every other byte as "=XX", so it is a dot-atom and the same on every attempt. */
static void put_msgid_left(buf *b, const char *id)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *id; id++) {
        unsigned char c = (unsigned char)*id;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_') {
            put(b, id, 1);
        } else {
            char e[3] = {'=', hex[c >> 4], hex[c & 15]};
            put(b, e, 3);
        }
    }
}

static void put_part(buf *b, const char *boundary, const char *type, const char *text, size_t len)
{
    puts_(b, "--");
    puts_(b, boundary);
    puts_(b, "\r\nContent-Type: ");
    puts_(b, type);
    puts_(b, "; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    put_b64(b, (const unsigned char *)text, len, 76);
    puts_(b, "\r\n");
}

char *zd_smtp_message(const zd_smtp_opts *o, const zd_notice *n, int64_t unix_ms, size_t *len)
{
    buf b = {0}, text = {0}, html = {0};
    char line[160];
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    /* RFC 5322 §3.3; English names whatever the locale. */
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    snprintf(line, sizeof(line), "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n",
             days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
             tm.tm_min, tm.tm_sec);
    puts_(&b, line);
    puts_(&b, "From: ");
    if (o->from_name) {
        put_encoded_words(&b, o->from_name);
        puts_(&b, " ");
    }
    puts_(&b, "<");
    puts_(&b, o->from);
    puts_(&b, ">\r\nTo: <");
    puts_(&b, n->to);
    puts_(&b, ">\r\nSubject: ");
    put_encoded_words(&b, n->title[0] ? n->title : n->policy);
    puts_(&b, "\r\nMessage-ID: <");
    put_msgid_left(&b, n->id);
    puts_(&b, "@");
    puts_(&b, strrchr(o->from, '@') + 1);
    puts_(&b, ">\r\nMIME-Version: 1.0\r\n");
    /* "=_" cannot occur in base64 text, so the boundary never appears in a part. */
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = n->id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    char boundary[48];
    snprintf(boundary, sizeof(boundary), "=_zhida_%016llx", (unsigned long long)h);
    puts_(&b, "Content-Type: multipart/alternative; boundary=\"");
    puts_(&b, boundary);
    puts_(&b, "\"\r\n\r\n");

    /* The plain part: the body, then the link. */
    puts_(&text, n->body);
    if (n->url[0]) {
        puts_(&text, "\n\n");
        puts_(&text, n->url);
    }
    puts_(&text, "\n");
    /* The HTML part: the same text, escaped (SPEC §4: HTML escaping for e-mail). */
    puts_(&html, "<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"><title>");
    put_html_escaped(&html, n->title);
    puts_(&html, "</title></head>\r\n<body>\r\n<p>");
    put_html_escaped(&html, n->body);
    puts_(&html, "</p>\r\n");
    if (n->url[0]) {
        puts_(&html, "<p><a href=\"");
        put_html_escaped(&html, n->url);
        puts_(&html, "\">");
        put_html_escaped(&html, n->url);
        puts_(&html, "</a></p>\r\n");
    }
    puts_(&html, "</body></html>\r\n");
    if (!text.oom && !html.oom) {
        put_part(&b, boundary, "text/plain", text.p, text.len);
        put_part(&b, boundary, "text/html", html.p, html.len);
    }
    puts_(&b, "--");
    puts_(&b, boundary);
    puts_(&b, "--\r\n");
    bool oom = b.oom || text.oom || html.oom;
    free(text.p);
    free(html.p);
    if (oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
