/* GET /console/...: the operator console's static files, built into the binary
 * (console_assets.h), with a strict Content-Security-Policy and ETag revalidation. */
#include <errno.h>
#include <string.h>

#include "zhidad/api.h"
#include "zhidad/console_assets.h"
#include "zhidad/http.h"
#include "zhidad/service.h"

/* Scripts and styles only from our own files (no inline script or style, no eval), data only
 * from our own API, no framing. */
#define CONSOLE_CSP                                                                                \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "                    \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static const zd_console_asset *find_asset(const char *name)
{
    for (int i = 0; i < zd_console_nassets; i++) {
        if (strcmp(zd_console_assets[i].name, name) == 0)
            return &zd_console_assets[i];
    }
    return NULL;
}

/* Whether an If-None-Match value lists etag (or is "*"). */
static bool etag_listed(const char *inm, const char *etag)
{
    if (!inm)
        return false;
    if (strcmp(inm, "*") == 0)
        return true;
    size_t n = strlen(etag);
    for (const char *p = strstr(inm, etag); p; p = strstr(p + 1, etag)) {
        /* A weak W/"x" matches too: If-None-Match compares weakly (RFC 9110 13.1.2). */
        char after = p[n];
        if (after == '\0' || after == ',' || after == ' ')
            return true;
    }
    return false;
}

static void serve(zd_req *req, const zd_console_asset *a)
{
    zd_req_set_header(req, "Content-Security-Policy", CONSOLE_CSP);
    zd_req_set_header(req, "X-Frame-Options", "DENY");
    zd_req_set_header(req, "Referrer-Policy", "no-referrer");
    /* The files change with the binary: revalidate every time, answered 304 by ETag. */
    zd_req_set_header(req, "Cache-Control", "no-cache");
    zd_req_set_header(req, "ETag", a->etag);
    if (etag_listed(zd_req_header(req, "If-None-Match"), a->etag)) {
        zd_req_reply_empty(req, 304);
        return;
    }
    zd_req_reply_text(req, 200, a->content_type, (const char *)a->data, a->len);
}

static void handle_index(zd_req *req, void *udata)
{
    serve(req, find_asset("index.html"));
}

static void handle_file(zd_req *req, void *udata)
{
    const zd_console_asset *a = find_asset(zd_req_param(req, "file"));
    if (!a) {
        zd_req_reply_error(req, 404, "not_found", "no such console file");
        return;
    }
    serve(req, a);
}

static void handle_redirect(zd_req *req, void *udata)
{
    zd_req_set_header(req, "Location", "/console/");
    /* With a body of its own: evhttp would otherwise label the empty answer text/html. */
    static const char where[] = "/console/\n";
    zd_req_reply_text(req, 308, "text/plain; charset=utf-8", where, sizeof(where) - 1);
}

int zd_api_console_register(zd_service *svc)
{
    int rc = zd_http_route(svc->http, "GET", "/console", 0, handle_redirect, svc);
    rc |= zd_http_route(svc->http, "GET", "/console/", 0, handle_index, svc);
    rc |= zd_http_route(svc->http, "GET", "/console/{file}", 0, handle_file, svc);
    return rc ? -EINVAL : 0;
}
