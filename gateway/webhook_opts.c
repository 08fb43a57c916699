/* The webhook gateway's options: parsed and checked the same way at start-up (config check)
 * and at create(), so that a bad option stops zhidad before anything is sent. */
#include "gateway/webhook.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "common/text.h"
#include "gateway/opts.h"

#define URL_MAX 2048
#define HEADER_VALUE_MAX 1024

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
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0])
        rc = fail(err, errlen, "\"%surl\" is not a valid http:// or https:// URL", pfx);
    else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
        rc = fail(err, errlen, "\"%surl\" must be an http:// or https:// URL", pfx);
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

static int get_secrets(const cJSON *v, const char *pfx, zd_webhook_opts *o, char *err,
                       size_t errlen)
{
    if (!v)
        return fail(err, errlen,
                    "\"%ssecret\" is required: the signing key \"whsec_<base64>\" the receiver "
                    "verifies",
                    pfx);
    const cJSON *one = v;
    int n = 1;
    if (cJSON_IsArray(v)) {
        n = cJSON_GetArraySize(v);
        if (n < 1 || n > ZD_WEBHOOK_SECRETS_MAX)
            return fail(err, errlen, "\"%ssecret\" must be a string or a list of 1..%d strings",
                        pfx, ZD_WEBHOOK_SECRETS_MAX);
        one = v->child;
    }
    for (int i = 0; i < n; i++, one = one->next) {
        char where[128];
        if (cJSON_IsArray(v))
            snprintf(where, sizeof(where), "%ssecret[%d]", pfx, i);
        else
            snprintf(where, sizeof(where), "%ssecret", pfx);
        if (!cJSON_IsString(one))
            return fail(err, errlen, "\"%s\" must be a string \"whsec_<base64>\"", where);
        if (strstr(one->valuestring, "CHANGE-ME"))
            return fail(err, errlen,
                        "\"%s\" is the example's placeholder: put the receiver's own "
                        "\"whsec_...\" secret here",
                        where);
        char why[128];
        if (zd_sign_key_parse(one->valuestring, &o->secrets[i], why, sizeof(why)) != 0)
            return fail(err, errlen, "\"%s\" %s", where, why);
        o->nsecrets++;
    }
    return 0;
}

static bool token_char(int c)
{
    return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Headers zhida sets itself, or that would change how the request is framed. */
static bool reserved_header(const char *name)
{
    static const char *const names[] = {
        "content-type", "content-length",  "host",       "transfer-encoding", "connection",
        "expect",       "idempotency-key", "webhook-id", "webhook-timestamp", "webhook-signature",
        "te",           "upgrade",         NULL};
    for (int i = 0; names[i]; i++) {
        if (strcasecmp(name, names[i]) == 0)
            return true;
    }
    return false;
}

static int get_headers(const cJSON *v, const char *pfx, zd_webhook_opts *o, char *err,
                       size_t errlen)
{
    if (!cJSON_IsObject(v))
        return fail(err, errlen, "\"%sheaders\" must be an object of \"Name\": \"value\"", pfx);
    const cJSON *h;
    cJSON_ArrayForEach(h, v)
    {
        const char *name = h->string;
        if (o->nheaders == ZD_WEBHOOK_HEADERS_MAX)
            return fail(err, errlen, "\"%sheaders\" may hold at most %d headers", pfx,
                        ZD_WEBHOOK_HEADERS_MAX);
        size_t nl = strlen(name);
        bool ok = nl > 0 && nl <= 64;
        for (size_t i = 0; ok && i < nl; i++)
            ok = token_char((unsigned char)name[i]);
        if (!ok)
            return fail(err, errlen, "\"%sheaders.%.64s\" is not a valid header name", pfx, name);
        if (reserved_header(name))
            return fail(err, errlen, "\"%sheaders.%s\": zhida sets this header itself", pfx, name);
        for (int i = 0; i < o->nheaders; i++) {
            if (strncasecmp(o->headers[i], name, nl) == 0 && o->headers[i][nl] == ':')
                return fail(err, errlen, "\"%sheaders.%s\" is given twice", pfx, name);
        }
        if (!cJSON_IsString(h))
            return fail(err, errlen, "\"%sheaders.%s\" must be a string", pfx, name);
        const char *val = h->valuestring;
        size_t vl = strlen(val);
        ok = vl <= HEADER_VALUE_MAX;
        for (size_t i = 0; ok && i < vl; i++)
            ok = (unsigned char)val[i] >= 0x20 && (unsigned char)val[i] != 0x7f;
        if (!ok)
            return fail(err, errlen,
                        "\"%sheaders.%s\" must be at most %d characters without control "
                        "characters",
                        pfx, name, HEADER_VALUE_MAX);
        size_t len = nl + 2 + vl + 1;
        char *line = malloc(len);
        if (!line)
            return -ENOMEM;
        snprintf(line, len, "%s: %s", name, val);
        o->headers[o->nheaders++] = line;
    }
    return 0;
}

int zd_webhook_opts_parse(const char *options_json, const char *pfx, zd_webhook_opts *o, char *err,
                          size_t errlen)
{
    static const char *const keys[] = {"url",         "secret",  "batch",   "timeout_ms", "rate",
                                       "concurrency", "headers", "ca_file", NULL};
    memset(o, 0, sizeof(*o));
    o->batch = 100;
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
            fail(err, errlen, "\"%surl\" is required: the receiver's http:// or https:// URL", pfx);
        goto fail;
    }
    if ((rc = check_url(v->valuestring, pfx, err, errlen)))
        goto fail;
    rc = -ENOMEM;
    if (!(o->url = strdup(v->valuestring)))
        goto fail;
    if ((rc = get_secrets(cJSON_GetObjectItemCaseSensitive(root, "secret"), pfx, o, err, errlen)))
        goto fail;

    double batch = o->batch, timeout = (double)o->timeout_ms, conc = o->concurrency;
    if ((rc = zd_gw_opt_number(root, pfx, "batch", 1, 1000, true, &batch, err, errlen)) ||
        (rc =
             zd_gw_opt_number(root, pfx, "timeout_ms", 100, 600000, true, &timeout, err, errlen)) ||
        (rc = zd_gw_opt_number(root, pfx, "concurrency", 1, 1024, true, &conc, err, errlen)) ||
        (rc = zd_gw_opt_number(root, pfx, "rate", 0, 1000000, false, &o->rate, err, errlen)))
        goto fail;
    o->batch = (int)batch;
    o->timeout_ms = (long)timeout;
    o->concurrency = (int)conc;

    if ((v = cJSON_GetObjectItemCaseSensitive(root, "headers")) &&
        (rc = get_headers(v, pfx, o, err, errlen)))
        goto fail;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "ca_file"))) {
        if (!cJSON_IsString(v) || v->valuestring[0] != '/') {
            rc = fail(err, errlen, "\"%sca_file\" must be an absolute path", pfx);
            goto fail;
        }
        if (access(v->valuestring, R_OK) != 0) {
            rc = fail(err, errlen, "\"%sca_file\": cannot read %.200s: %s", pfx, v->valuestring,
                      strerror(errno));
            goto fail;
        }
        rc = -ENOMEM;
        if (!(o->ca_file = strdup(v->valuestring)))
            goto fail;
    }
    cJSON_Delete(root);
    return 0;
fail:
    if (rc == -ENOMEM)
        fail(err, errlen, "out of memory");
    cJSON_Delete(root);
    zd_webhook_opts_free(o);
    return rc;
}

void zd_webhook_opts_free(zd_webhook_opts *o)
{
    free(o->url);
    free(o->ca_file);
    for (int i = 0; i < o->nheaders; i++)
        free(o->headers[i]);
    explicit_bzero(o->secrets, sizeof(o->secrets));
    memset(o, 0, sizeof(*o));
}
