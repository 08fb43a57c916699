/* The other side of the audience benchmark: loads the same NDJSON population into PostgreSQL
 * (COPY) and into a Redis set-algebra model, and times the rules of bench/rules.txt against
 * PostgreSQL, Redis, or a running zhidad over HTTP. Client-side timing, machine-readable output
 * ("info ..." and "result ..." lines) for bench/report.py. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "bench/rules_file.h"
#include "common/date.h"

#define REDIS_BATCH_PROFILES 2000
#define TAGS_MAX 64

static void usage(void)
{
    fputs("usage:\n"
          "  zd_bench_baseline pg-load --pg CONNINFO FILE\n"
          "  zd_bench_baseline redis-load --redis HOST:PORT FILE\n"
          "  zd_bench_baseline query --engine pg|redis|http [--rules FILE] [--runs N]\n"
          "        [--pg CONNINFO] [--redis HOST:PORT] [--url URL] [--plans FILE]\n"
          "  (http: the API key is read from $ZHIDA_KEY; the day from $ZHIDA_TODAY)\n",
          stderr);
}

/* ---- reading the population ---- */

/* The indexed part of one profile; strings point into the cJSON document. */
typedef struct row {
    const char *id, *kind, *region, *industry, *scale;
    bool has_employees, has_capital, has_revenue, has_birth, has_founded;
    double employees, capital, revenue;
    const char *birth, *founded;
    int ntags;
    const char *tags[TAGS_MAX];
} row;

static const char *str_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool num_of(const cJSON *o, const char *k, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v))
        return false;
    *out = v->valuedouble;
    return true;
}

static bool row_from_json(const cJSON *doc, row *r)
{
    memset(r, 0, sizeof(*r));
    r->id = str_of(doc, "id");
    r->kind = str_of(doc, "kind");
    r->region = str_of(doc, "region");
    if (!r->id || !r->kind || !r->region)
        return false;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(doc, "attrs");
    r->industry = str_of(a, "industry");
    r->scale = str_of(a, "scale");
    r->has_employees = num_of(a, "employees", &r->employees);
    r->has_capital = num_of(a, "registered_capital", &r->capital);
    r->has_revenue = num_of(a, "revenue", &r->revenue);
    r->birth = str_of(a, "birth_date");
    r->founded = str_of(a, "founded");
    r->has_birth = r->birth != NULL;
    r->has_founded = r->founded != NULL;
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(doc, "tags"))
    {
        if (cJSON_IsString(t) && r->ntags < TAGS_MAX)
            r->tags[r->ntags++] = t->valuestring;
    }
    return true;
}

typedef int (*row_fn)(const row *r, void *udata);

/* Calls fn for every profile line of path. Returns the number of rows or -1. */
static long long for_each_row(const char *path, row_fn fn, void *udata)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long long rows = 0, lineno = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (n <= 1)
            continue;
        cJSON *doc = cJSON_ParseWithLength(line, (size_t)n);
        row r;
        if (!doc || !row_from_json(doc, &r)) {
            fprintf(stderr, "%s:%lld: not a profile line, skipped\n", path, lineno);
            cJSON_Delete(doc);
            continue;
        }
        int rc = fn(&r, udata);
        cJSON_Delete(doc);
        if (rc < 0) {
            rows = -1;
            break;
        }
        rows++;
    }
    free(line);
    if (f != stdin)
        fclose(f);
    return rows;
}

/* ---- PostgreSQL ---- */

typedef struct pg_copy {
    PGconn *conn;
    char *buf;
    size_t len, cap;
} pg_copy;

static void pg_put(pg_copy *c, const char *s)
{
    size_t n = strlen(s);
    memcpy(c->buf + c->len, s, n);
    c->len += n;
}

static void pg_put_num(pg_copy *c, bool has, double v)
{
    char tmp[32];
    if (!has) {
        pg_put(c, "\\N");
        return;
    }
    snprintf(tmp, sizeof(tmp), "%.0f", v);
    pg_put(c, tmp);
}

static int pg_flush(pg_copy *c)
{
    if (c->len && PQputCopyData(c->conn, c->buf, (int)c->len) != 1) {
        fprintf(stderr, "COPY: %s", PQerrorMessage(c->conn));
        return -1;
    }
    c->len = 0;
    return 0;
}

/* One COPY text-format line. Generated values contain no tabs, backslashes or quotes, so the
 * only escaping needed is \N for missing values. */
static int pg_copy_row(const row *r, void *udata)
{
    pg_copy *c = udata;
    if (c->cap - c->len < 8192 && pg_flush(c) < 0)
        return -1;
    pg_put(c, r->id);
    pg_put(c, "\t");
    pg_put(c, r->kind);
    pg_put(c, "\t");
    pg_put(c, r->region);
    pg_put(c, "\t");
    pg_put(c, r->industry ? r->industry : "\\N");
    pg_put(c, "\t");
    pg_put_num(c, r->has_employees, r->employees);
    pg_put(c, "\t");
    pg_put_num(c, r->has_capital, r->capital);
    pg_put(c, "\t");
    pg_put_num(c, r->has_revenue, r->revenue);
    pg_put(c, "\t");
    pg_put(c, r->birth ? r->birth : "\\N");
    pg_put(c, "\t");
    pg_put(c, r->founded ? r->founded : "\\N");
    pg_put(c, "\t");
    pg_put(c, r->scale ? r->scale : "\\N");
    pg_put(c, "\t{");
    for (int i = 0; i < r->ntags; i++) {
        if (i)
            pg_put(c, ",");
        pg_put(c, r->tags[i]);
    }
    pg_put(c, "}\n");
    return 0;
}

static PGconn *pg_connect(const char *conninfo)
{
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "postgres: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

static int cmd_pg_load(const char *conninfo, const char *path)
{
    PGconn *conn = pg_connect(conninfo);
    if (!conn)
        return 1;
    int ret = 1;
    pg_copy c = {.conn = conn, .cap = 1 << 20};
    c.buf = malloc(c.cap);
    double t0 = zd_bench_now_ms();
    PGresult *res = PQexec(conn, "COPY profiles (id, kind, region, industry, employees, "
                                 "registered_capital, revenue, birth_date, founded, scale, tags) "
                                 "FROM STDIN");
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        fprintf(stderr, "COPY: %s", PQerrorMessage(conn));
        PQclear(res);
        goto done;
    }
    PQclear(res);
    long long rows = for_each_row(path, pg_copy_row, &c);
    if (rows < 0 || pg_flush(&c) < 0) {
        PQputCopyEnd(conn, "load failed");
        goto done;
    }
    if (PQputCopyEnd(conn, NULL) != 1) {
        fprintf(stderr, "COPY end: %s", PQerrorMessage(conn));
        goto done;
    }
    while ((res = PQgetResult(conn))) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            fprintf(stderr, "COPY: %s", PQresultErrorMessage(res));
            PQclear(res);
            goto done;
        }
        PQclear(res);
    }
    double t1 = zd_bench_now_ms();
    printf("info engine=pg rows=%lld copy_s=%.3f copy_rate=%.0f\n", rows, (t1 - t0) / 1e3,
           rows / ((t1 - t0) / 1e3));
    ret = 0;
done:
    free(c.buf);
    PQfinish(conn);
    return ret;
}

/* ---- Redis set-algebra model ---- */

typedef struct redis_load {
    redisContext *rc;
    long long pending; /* commands appended, replies not yet read */
    long long profiles;
} redis_load;

/* Appends one command; the caller reads the replies in batches. */
static void r_cmd(redis_load *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisvAppendCommand(l->rc, fmt, ap);
    va_end(ap);
    l->pending++;
}

static int r_drain(redis_load *l)
{
    for (; l->pending > 0; l->pending--) {
        redisReply *reply = NULL;
        if (redisGetReply(l->rc, (void **)&reply) != REDIS_OK) {
            fprintf(stderr, "redis: %s\n", l->rc->errstr);
            return -1;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "redis: %s\n", reply->str);
            freeReplyObject(reply);
            return -1;
        }
        freeReplyObject(reply);
    }
    return 0;
}

static void r_code_prefixes(redis_load *l, const char *attr, const char *code, const int *levels,
                            int nlevels, const char *id)
{
    size_t len = strlen(code);
    for (int i = 0; i < nlevels && (size_t)levels[i] <= len; i++)
        r_cmd(l, "SADD c:%s:%b %s", attr, code, (size_t)levels[i], id);
}

static void r_date(redis_load *l, const char *attr, const char *date, const char *id)
{
    int32_t d;
    if (date && zd_date_parse(date, &d) == 0)
        r_cmd(l, "ZADD z:%s %d %s", attr, (int)d, id);
}

static int redis_row(const row *r, void *udata)
{
    static const int region_levels[] = {2, 4, 6, 9, 12};
    static const int industry_levels[] = {1, 3, 4, 5};
    redis_load *l = udata;
    r_cmd(l, "SADD all %s", r->id);
    r_cmd(l, "SADD k:kind:%s %s", r->kind, r->id);
    r_code_prefixes(l, "region", r->region, region_levels, 5, r->id);
    if (r->industry)
        r_code_prefixes(l, "industry", r->industry, industry_levels, 4, r->id);
    if (r->scale)
        r_cmd(l, "SADD k:scale:%s %s", r->scale, r->id);
    for (int i = 0; i < r->ntags; i++)
        r_cmd(l, "SADD t:%s %s", r->tags[i], r->id);
    if (r->has_employees)
        r_cmd(l, "ZADD z:employees %.0f %s", r->employees, r->id);
    if (r->has_capital)
        r_cmd(l, "ZADD z:registered_capital %.0f %s", r->capital, r->id);
    if (r->has_revenue)
        r_cmd(l, "ZADD z:revenue %.0f %s", r->revenue, r->id);
    r_date(l, "birth_date", r->birth, r->id);
    r_date(l, "founded", r->founded, r->id);
    if (++l->profiles % REDIS_BATCH_PROFILES == 0)
        return r_drain(l);
    return 0;
}

static redisContext *redis_connect(const char *hostport)
{
    char host[256];
    int port = 6379;
    const char *colon = strrchr(hostport, ':');
    if (colon) {
        snprintf(host, sizeof(host), "%.*s", (int)(colon - hostport), hostport);
        port = atoi(colon + 1);
    } else {
        snprintf(host, sizeof(host), "%s", hostport);
    }
    redisContext *rc = redisConnect(host, port);
    if (!rc || rc->err) {
        fprintf(stderr, "redis %s: %s\n", hostport, rc ? rc->errstr : "out of memory");
        redisFree(rc);
        return NULL;
    }
    return rc;
}

/* used_memory from INFO memory, or -1. */
static long long redis_used_memory(redisContext *rc)
{
    redisReply *r = redisCommand(rc, "INFO memory");
    long long v = -1;
    if (r && r->type == REDIS_REPLY_STRING) {
        const char *p = strstr(r->str, "used_memory:");
        if (p)
            v = atoll(p + strlen("used_memory:"));
    }
    freeReplyObject(r);
    return v;
}

static int cmd_redis_load(const char *hostport, const char *path)
{
    redis_load l = {.rc = redis_connect(hostport)};
    if (!l.rc)
        return 1;
    long long m0 = redis_used_memory(l.rc);
    double t0 = zd_bench_now_ms();
    long long rows = for_each_row(path, redis_row, &l);
    int ret = rows < 0 || r_drain(&l) < 0;
    double t1 = zd_bench_now_ms();
    long long m1 = redis_used_memory(l.rc);
    redisReply *dbs = redisCommand(l.rc, "DBSIZE");
    if (!ret)
        printf("info engine=redis rows=%lld load_s=%.3f load_rate=%.0f keys=%lld "
               "used_memory=%lld bytes_per_profile=%.1f\n",
               rows, (t1 - t0) / 1e3, rows / ((t1 - t0) / 1e3),
               dbs && dbs->type == REDIS_REPLY_INTEGER ? dbs->integer : -1LL, m1,
               rows ? (double)(m1 - m0) / (double)rows : 0.0);
    freeReplyObject(dbs);
    redisFree(l.rc);
    return ret;
}

/* ---- timing the rules ---- */

typedef struct engine {
    const char *name;
    PGconn *pg;
    redisContext *redis;
    CURL *http;
    struct curl_slist *hdrs;
    const char *url;
    FILE *plans;
    int32_t today;
} engine;

/* Runs one rule once; sets *count. server_ms gets zhidad's own took_ms (http only). */
typedef int (*run_fn)(engine *e, const zd_bench_rule *r, long long *count, double *server_ms);

static int run_pg(engine *e, const zd_bench_rule *r, long long *count, double *server_ms)
{
    char *q = malloc(strlen(r->sql) + 64);
    if (!q)
        return -1;
    sprintf(q, "SELECT count(*) FROM profiles WHERE %s", r->sql);
    PGresult *res = PQexec(e->pg, q);
    free(q);
    int rc = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        *count = atoll(PQgetvalue(res, 0, 0));
        rc = 0;
    } else {
        fprintf(stderr, "pg %s: %s", r->name, PQresultErrorMessage(res));
    }
    PQclear(res);
    (void)server_ms;
    return rc;
}

static void pg_plan(engine *e, const zd_bench_rule *r)
{
    char *q = malloc(strlen(r->sql) + 128);
    if (!q)
        return;
    sprintf(q, "EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM profiles WHERE %s", r->sql);
    PGresult *res = PQexec(e->pg, q);
    free(q);
    fprintf(e->plans, "-- %s\n", r->name);
    for (int i = 0; i < PQntuples(res); i++)
        fprintf(e->plans, "%s\n", PQgetvalue(res, i, 0));
    fputc('\n', e->plans);
    PQclear(res);
}

/* Splits a command line on blanks into argv (pointers into a copy the caller frees). */
static int split_args(char *s, const char **argv, size_t *lens, int max)
{
    int n = 0;
    for (char *save = NULL, *t = strtok_r(s, " \t", &save); t && n < max;
         t = strtok_r(NULL, " \t", &save)) {
        argv[n] = t;
        lens[n] = strlen(t);
        n++;
    }
    return n;
}

static int run_redis(engine *e, const zd_bench_rule *r, long long *count, double *server_ms)
{
    /* The rule's commands go out in one pipeline: no command depends on another's reply. */
    for (int i = 0; i < r->nredis; i++) {
        char *copy = strdup(r->redis[i]);
        const char *argv[64];
        size_t lens[64];
        int argc = split_args(copy, argv, lens, 64);
        redisAppendCommandArgv(e->redis, argc, argv, lens);
        free(copy);
    }
    int rc = 0;
    for (int i = 0; i < r->nredis; i++) {
        redisReply *reply = NULL;
        if (redisGetReply(e->redis, (void **)&reply) != REDIS_OK) {
            fprintf(stderr, "redis %s: %s\n", r->name, e->redis->errstr);
            return -1;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "redis %s: %s: %s\n", r->name, r->redis[i], reply->str);
            rc = -1;
        } else if (i == r->nredis - 1) {
            if (reply->type == REDIS_REPLY_INTEGER)
                *count = reply->integer;
            else
                rc = -1;
        }
        freeReplyObject(reply);
    }
    (void)server_ms;
    return rc;
}

typedef struct http_buf {
    char *data;
    size_t len;
} http_buf;

static size_t on_http_body(char *p, size_t size, size_t n, void *udata)
{
    http_buf *b = udata;
    char *q = realloc(b->data, b->len + size * n + 1);
    if (!q)
        return 0;
    memcpy(q + b->len, p, size * n);
    b->data = q;
    b->len += size * n;
    q[b->len] = '\0';
    return size * n;
}

/* One request on the engine's keep-alive handle. Returns the HTTP status or -1. */
static long http_do(engine *e, const char *method, const char *path, const char *body,
                    http_buf *resp)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", e->url, path);
    curl_easy_setopt(e->http, CURLOPT_URL, url);
    curl_easy_setopt(e->http, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e->http, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e->http, CURLOPT_WRITEFUNCTION, on_http_body);
    curl_easy_setopt(e->http, CURLOPT_WRITEDATA, resp);
    CURLcode rc = curl_easy_perform(e->http);
    if (rc != CURLE_OK) {
        fprintf(stderr, "http %s %s: %s\n", method, path, curl_easy_strerror(rc));
        return -1;
    }
    long status = 0;
    curl_easy_getinfo(e->http, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

static int run_http(engine *e, const zd_bench_rule *r, long long *count, double *server_ms)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "rule", r->zhida);
    cJSON_AddNumberToObject(req, "sample", 0);
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    http_buf resp = {0};
    long status = http_do(e, "POST", "/v1/rules:preview", body, &resp);
    free(body);
    int rc = -1;
    cJSON *ans = resp.data ? cJSON_Parse(resp.data) : NULL;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(ans, "count");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(ans, "took_ms");
    if (status == 200 && cJSON_IsNumber(c)) {
        *count = (long long)c->valuedouble;
        *server_ms = cJSON_IsNumber(t) ? t->valuedouble : -1;
        rc = 0;
    } else {
        fprintf(stderr, "http %s: status %ld: %s\n", r->name, status, resp.data ? resp.data : "");
    }
    cJSON_Delete(ans);
    free(resp.data);
    return rc;
}

/* The zhida side of segments: zhidad must know them before rules may reference them. */
static int http_put_segments(engine *e, const zd_bench_rules *rules)
{
    for (int i = 0; i < rules->nsegments; i++) {
        cJSON *req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "rule", rules->segment_texts[i]);
        char *body = cJSON_PrintUnformatted(req);
        cJSON_Delete(req);
        char path[256];
        snprintf(path, sizeof(path), "/v1/segments/%s", rules->segment_names[i]);
        http_buf resp = {0};
        long status = http_do(e, "PUT", path, body, &resp);
        free(body);
        if (status < 200 || status >= 300) {
            fprintf(stderr, "http PUT %s: status %ld: %s\n", path, status,
                    resp.data ? resp.data : "");
            free(resp.data);
            return -1;
        }
        free(resp.data);
    }
    return 0;
}

static int cmd_query(engine *e, const char *rules_path, int runs)
{
    zd_bench_rules *rules = NULL;
    if (zd_bench_rules_load(rules_path, e->today, &rules) < 0)
        return 2;
    run_fn run = strcmp(e->name, "pg") == 0      ? run_pg
                 : strcmp(e->name, "redis") == 0 ? run_redis
                                                 : run_http;
    if (run == run_http && http_put_segments(e, rules) < 0) {
        zd_bench_rules_free(rules);
        return 1;
    }
    double *xs = malloc(sizeof(double) * (size_t)runs);
    double *srv = malloc(sizeof(double) * (size_t)runs);
    int status = 0;
    for (int i = 0; i < rules->n && xs && srv; i++) {
        const zd_bench_rule *r = &rules->rules[i];
        long long count = -1;
        bool bad = false;
        /* Two unmeasured runs warm the buffer cache / allocator, as for zhida. */
        for (int k = -2; k < runs; k++) {
            double server_ms = -1;
            double a = zd_bench_now_ms();
            if (run(e, r, &count, &server_ms) < 0) {
                bad = true;
                break;
            }
            double b = zd_bench_now_ms();
            if (k >= 0) {
                xs[k] = b - a;
                srv[k] = server_ms;
            }
        }
        if (bad) {
            printf("result engine=%s rule=%s error=query\n", e->name, r->name);
            status = 1;
            continue;
        }
        if (e->plans)
            pg_plan(e, r);
        double med = zd_bench_quantile(xs, runs, 0.5), p95 = zd_bench_quantile(xs, runs, 0.95);
        printf("result engine=%s rule=%s count=%lld median_ms=%.4f p95_ms=%.4f runs=%d", e->name,
               r->name, count, med, p95, runs);
        if (run == run_http)
            printf(" server_median_ms=%.4f", zd_bench_quantile(srv, runs, 0.5));
        printf("\n");
        fflush(stdout);
    }
    free(xs);
    free(srv);
    zd_bench_rules_free(rules);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *cmd = argv[1], *pg = NULL, *redis = NULL, *url = NULL, *file = NULL;
    const char *rules = "bench/rules.txt", *engine_name = NULL, *plans = NULL;
    int runs = 15;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--pg") == 0 && v)
            pg = argv[++i];
        else if (strcmp(a, "--redis") == 0 && v)
            redis = argv[++i];
        else if (strcmp(a, "--url") == 0 && v)
            url = argv[++i];
        else if (strcmp(a, "--rules") == 0 && v)
            rules = argv[++i];
        else if (strcmp(a, "--engine") == 0 && v)
            engine_name = argv[++i];
        else if (strcmp(a, "--plans") == 0 && v)
            plans = argv[++i];
        else if (strcmp(a, "--runs") == 0 && v)
            runs = atoi(argv[++i]);
        else if (!file && (a[0] != '-' || strcmp(a, "-") == 0))
            file = a;
        else {
            usage();
            return 2;
        }
    }
    if (strcmp(cmd, "pg-load") == 0 && pg && file)
        return cmd_pg_load(pg, file);
    if (strcmp(cmd, "redis-load") == 0 && redis && file)
        return cmd_redis_load(redis, file);
    if (strcmp(cmd, "query") != 0 || !engine_name || runs < 1) {
        usage();
        return 2;
    }

    engine e = {.name = engine_name, .today = zd_bench_today()};
    int ret = 2;
    if (strcmp(engine_name, "pg") == 0 && pg) {
        if (!(e.pg = pg_connect(pg)))
            return 1;
        /* Fresh plans: the benchmark measures what an operator's ad-hoc count would cost. */
        if (plans && !(e.plans = fopen(plans, "w")))
            fprintf(stderr, "%s: %s\n", plans, strerror(errno));
        ret = cmd_query(&e, rules, runs);
        if (e.plans)
            fclose(e.plans);
        PQfinish(e.pg);
    } else if (strcmp(engine_name, "redis") == 0 && redis) {
        if (!(e.redis = redis_connect(redis)))
            return 1;
        ret = cmd_query(&e, rules, runs);
        redisFree(e.redis);
    } else if (strcmp(engine_name, "http") == 0 && url) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        e.url = url;
        e.http = curl_easy_init();
        const char *key = getenv("ZHIDA_KEY");
        char auth[512];
        if (key && *key) {
            snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
            e.hdrs = curl_slist_append(e.hdrs, auth);
        }
        e.hdrs = curl_slist_append(e.hdrs, "Content-Type: application/json");
        curl_easy_setopt(e.http, CURLOPT_HTTPHEADER, e.hdrs);
        curl_easy_setopt(e.http, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e.http, CURLOPT_TIMEOUT, 60L);
        ret = cmd_query(&e, rules, runs);
        curl_slist_free_all(e.hdrs);
        curl_easy_cleanup(e.http);
        curl_global_cleanup();
    } else {
        usage();
    }
    return ret;
}
