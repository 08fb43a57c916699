/* zhida publish / status / withdraw / dlq: thin wrappers of the policy endpoints. status on a
 * terminal redraws the funnel every second until the policy is done or withdrawn. */
#include "client/policies.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/output.h"

static char *escaped_path(const char *prefix, const char *id, const char *suffix)
{
    char *esc = zd_cli_escape(id);
    size_t n = strlen(prefix) + strlen(esc) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (!p)
        zd_cli_oom();
    snprintf(p, n, "%s%s%s", prefix, esc, suffix);
    free(esc);
    return p;
}

int zd_policy_publish(const zd_cli *c, const char *file)
{
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "zhida: cannot read %s: %s\n", file, strerror(errno));
        return ZD_EXIT_USAGE;
    }
    zd_buf b = {0};
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        zd_buf_append(&b, tmp, n);
    bool failed = ferror(f);
    if (f != stdin)
        fclose(f);
    if (failed) {
        fprintf(stderr, "zhida: cannot read %s\n", file);
        zd_buf_free(&b);
        return ZD_EXIT_USAGE;
    }
    zd_buf_append(&b, "", 0);
    int ret = zd_cli_request(c, "POST", "/v1/policies", b.data, b.len, zd_out_object);
    zd_buf_free(&b);
    return ret;
}

static void print_buckets(FILE *f, const char *name, const cJSON *o)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "suppressed");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "pending");
    double sup = 0, pend = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, s) sup += it->valuedouble;
    cJSON_ArrayForEach(it, p) pend += it->valuedouble;
    fprintf(f, "  %-24s %10.0f %10.0f %10.0f %10.0f %10.0f\n", name, sup, pend,
            cJSON_GetObjectItemCaseSensitive(o, "delivered")->valuedouble,
            cJSON_GetObjectItemCaseSensitive(o, "dead")->valuedouble,
            cJSON_GetObjectItemCaseSensitive(o, "withdrawn")->valuedouble);
}

/* One funnel as a small table. */
static void print_funnel(FILE *f, const cJSON *ans)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(ans, "id");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(ans, "status");
    const cJSON *funnel = cJSON_GetObjectItemCaseSensitive(ans, "funnel");
    if (!cJSON_IsString(id) || !cJSON_IsString(st) || !cJSON_IsObject(funnel)) {
        zd_out_json(f, ans);
        return;
    }
    fprintf(f, "policy %s  status %s  matched %.0f  notices %.0f\n\n", id->valuestring,
            st->valuestring, cJSON_GetObjectItemCaseSensitive(ans, "matched")->valuedouble,
            cJSON_GetObjectItemCaseSensitive(ans, "notices")->valuedouble);
    fprintf(f, "  %-24s %10s %10s %10s %10s %10s\n", "route", "suppressed", "pending", "delivered",
            "dead", "withdrawn");
    print_buckets(f, "total", funnel);
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(ans, "routes"))
    {
        char name[128] = "";
        const cJSON *route = cJSON_GetObjectItemCaseSensitive(r, "route");
        if (cJSON_IsString(route)) {
            snprintf(name, sizeof(name), "%s", route->valuestring);
        } else {
            const cJSON *g;
            cJSON_ArrayForEach(g, route)
            {
                size_t l = strlen(name);
                snprintf(name + l, sizeof(name) - l, "%s%s", l ? ">" : "",
                         cJSON_IsString(g) ? g->valuestring : "?");
            }
        }
        print_buckets(f, name, r);
    }
    /* A held-out share: the uptake of both groups side by side (docs/API.md "outcomes"). */
    const cJSON *oc = cJSON_GetObjectItemCaseSensitive(ans, "outcomes");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(oc, "treated");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(oc, "holdout");
    const cJSON *hn = cJSON_GetObjectItemCaseSensitive(h, "recipients");
    if (cJSON_IsNumber(hn) && hn->valuedouble > 0) {
        fprintf(f, "\n  %-24s %10s %10s\n", "group", "recipients", "applied");
        fprintf(f, "  %-24s %10.0f %10.0f\n", "treated",
                cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(t, "recipients")),
                cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(t, "applied")));
        fprintf(f, "  %-24s %10.0f %10.0f\n", "holdout", hn->valuedouble,
                cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(h, "applied")));
    }
}

static void render_funnel(const zd_cli *c, FILE *f, const cJSON *ans)
{
    (void)c;
    print_funnel(f, ans);
}

int zd_policy_status(const zd_cli *c, const char *id)
{
    char *path = escaped_path("/v1/policies/", id, "");
    if (c->out == ZD_OUT_JSON || !isatty(STDOUT_FILENO)) {
        int ret = zd_cli_request(c, "GET", path, NULL, 0, render_funnel);
        free(path);
        return ret;
    }
    /* A live funnel: redrawn every second until the policy reaches a final status. */
    int ret = 0;
    for (;;) {
        zd_buf resp = {0};
        long status = 0;
        ret = zd_cli_call(c, "GET", path, NULL, 0, &status, &resp);
        if (ret == 0 && (status < 200 || status >= 300)) {
            ret = zd_cli_http_error(c, "GET policy", status, resp.data, resp.len);
        }
        cJSON *ans = ret == 0 ? cJSON_ParseWithLength(resp.data, resp.len) : NULL;
        zd_buf_free(&resp);
        if (ret != 0)
            break;
        if (!ans) {
            fprintf(stderr, "zhida: GET %s: an answer that is no JSON\n", path);
            ret = ZD_EXIT_5XX;
            break;
        }
        fputs("\033[H\033[J", stdout);
        print_funnel(stdout, ans);
        fflush(stdout);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(ans, "status");
        /* "active": dispatched, and kept for reverse matching until its deadline. */
        bool final = cJSON_IsString(st) && (strcmp(st->valuestring, "done") == 0 ||
                                            strcmp(st->valuestring, "active") == 0 ||
                                            strcmp(st->valuestring, "withdrawn") == 0);
        cJSON_Delete(ans);
        if (final)
            break;
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
    free(path);
    return ret;
}

int zd_policy_withdraw(const zd_cli *c, const char *id)
{
    char *path = escaped_path("/v1/policies/", id, ":withdraw");
    int ret = zd_cli_request(c, "POST", path, "{}", 2, zd_out_object);
    free(path);
    return ret;
}

static void render_dlq(const zd_cli *c, FILE *f, const cJSON *ans)
{
    (void)c;
    fprintf(f, "%-40s %-8s %4s %5s %s\n", "notice", "gateway", "att", "http", "at");
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(ans, "deadletters"))
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(d, "id");
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(d, "http_status");
        char http[16] = "-";
        if (cJSON_IsNumber(h))
            snprintf(http, sizeof(http), "%d", h->valueint);
        fprintf(f, "%-40s %-8s %4.0f %5s %s\n",
                cJSON_IsString(id) ? id->valuestring : "(erased profile)",
                cJSON_GetObjectItemCaseSensitive(d, "gateway")->valuestring,
                cJSON_GetObjectItemCaseSensitive(d, "attempts")->valuedouble, http,
                cJSON_GetObjectItemCaseSensitive(d, "at")->valuestring);
    }
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(ans, "next_cursor");
    if (cJSON_IsString(next))
        fprintf(f, "(more: GET /v1/deadletters?cursor=%s)\n", next->valuestring);
}

int zd_dlq_list(const zd_cli *c, const char *policy, const char *gateway)
{
    char path[512] = "/v1/deadletters?limit=500";
    const char *names[] = {"policy", "gateway"};
    const char *vals[] = {policy, gateway};
    for (int i = 0; i < 2; i++) {
        if (!vals[i])
            continue;
        char *esc = zd_cli_escape(vals[i]);
        size_t l = strlen(path);
        snprintf(path + l, sizeof(path) - l, "&%s=%s", names[i], esc);
        free(esc);
    }
    return zd_cli_request(c, "GET", path, NULL, 0, render_dlq);
}

int zd_dlq_replay(const zd_cli *c, const char *policy, const char *gateway, char **ids, int n)
{
    cJSON *j = cJSON_CreateObject();
    if (!j)
        zd_cli_oom();
    if (policy) {
        cJSON_AddStringToObject(j, "policy", policy);
    } else if (gateway) {
        cJSON_AddStringToObject(j, "gateway", gateway);
    } else {
        cJSON *a = cJSON_AddArrayToObject(j, "ids");
        for (int i = 0; i < n; i++)
            cJSON_AddItemToArray(a, cJSON_CreateString(ids[i]));
    }
    char *body = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!body)
        zd_cli_oom();
    int ret =
        zd_cli_request(c, "POST", "/v1/deadletters:replay", body, strlen(body), zd_out_object);
    free(body);
    return ret;
}
