/* Shared helpers of the zhida CLI: the growable buffer, exit statuses and error reports. */
#include "client/cli.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "client/output.h"

_Noreturn void zd_cli_oom(void)
{
    fputs("zhida: out of memory\n", stderr);
    exit(ZD_EXIT_LOCAL);
}

void zd_buf_append(zd_buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            zd_cli_oom();
        b->data = d;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void zd_buf_free(zd_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int zd_cli_exit_for_status(long status)
{
    return status >= 400 && status < 500 ? ZD_EXIT_4XX : ZD_EXIT_5XX;
}

static const char *str_item(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : NULL;
}

static void add_detail(char *out, size_t cap, const char *text)
{
    size_t n = strlen(out);
    if (n + 1 < cap)
        snprintf(out + n, cap - n, "%s%s", n ? ", " : "", text);
}

int zd_cli_http_error(const zd_cli *c, const char *what, long status, const char *body, size_t len)
{
    int ret = zd_cli_exit_for_status(status);
    cJSON *doc = len ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
    if (c->out == ZD_OUT_JSON && cJSON_IsObject(e)) {
        /* Scripts get the whole document (code, message, field, position ...) to parse, and
         * the HTTP status beside it. */
        cJSON_AddNumberToObject(doc, "status", (double)status);
        zd_out_json(stderr, doc);
    } else if (cJSON_IsObject(e)) {
        char detail[256] = "";
        char tmp[128];
        const char *field = str_item(e, "field"), *seg = str_item(e, "segment");
        const cJSON *line = cJSON_GetObjectItemCaseSensitive(e, "line");
        const cJSON *col = cJSON_GetObjectItemCaseSensitive(e, "column");
        if (field && *field) {
            snprintf(tmp, sizeof(tmp), "field %s", field);
            add_detail(detail, sizeof(detail), tmp);
        }
        if (seg) {
            snprintf(tmp, sizeof(tmp), "in segment \"%s\"", seg);
            add_detail(detail, sizeof(detail), tmp);
        }
        if (cJSON_IsNumber(line) && cJSON_IsNumber(col)) {
            snprintf(tmp, sizeof(tmp), "line %d, column %d", line->valueint, col->valueint);
            add_detail(detail, sizeof(detail), tmp);
        }
        const char *code = str_item(e, "code"), *msg = str_item(e, "message");
        fprintf(stderr, "zhida: %s: HTTP %ld %s: %s%s%s%s\n", what, status, code ? code : "?",
                msg ? msg : "", detail[0] ? " (" : "", detail, detail[0] ? ")" : "");
    } else {
        /* Not zhidad's error shape (a proxy in between?): show the start of what came. */
        int n = len > 300 ? 300 : (int)len;
        while (n > 0 && (body[n - 1] == '\n' || body[n - 1] == '\r'))
            n--;
        fprintf(stderr, "zhida: %s: HTTP %ld%s%.*s\n", what, status, n ? ": " : "", n,
                n ? body : "");
    }
    cJSON_Delete(doc);
    return ret;
}
