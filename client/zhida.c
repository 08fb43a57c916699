/* zhida: the command-line client of zhidad's HTTP API (import, preview, explain, segments,
 * profiles) and the generator of the synthetic demo population. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "client/population.h"

#define DEFAULT_URL "http://127.0.0.1:8700"
#define DEFAULT_CHUNK_BYTES (4u << 20)
#define IMPORT_PARALLEL 2
#define IMPORT_ERRORS_SHOWN 20

/* Exit statuses: 0 success, 1 some import lines failed, 2 usage, transport or HTTP error. */
enum { EXIT_PARTIAL = 1, EXIT_ERROR = 2 };

typedef struct cli {
    const char *url; /* base URL without a trailing slash */
    char *auth;      /* "Authorization: Bearer ..." or NULL; never printed */
} cli;

typedef struct buf {
    char *data;
    size_t len, cap;
} buf;

static void die_oom(void)
{
    fputs("zhida: out of memory\n", stderr);
    exit(EXIT_ERROR);
}

static void buf_reserve(buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        die_oom();
    b->data = p;
    b->cap = cap;
}

static void buf_append(buf *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void buf_free(buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *udata)
{
    buf_append(udata, p, size * n);
    return size * n;
}

static void usage(FILE *f)
{
    fputs("usage: zhida [--url URL] [--key KEY] COMMAND ...\n"
          "\n"
          "  URL defaults to $ZHIDA_URL or " DEFAULT_URL ", KEY to $ZHIDA_KEY.\n"
          "\n"
          "commands:\n"
          "  demo-population [--citizens N] [--enterprises N] [--n N] [--seed S]\n"
          "      write a synthetic Zhejiang population as NDJSON to stdout\n"
          "      (--n N alone: 70% citizens, 30% enterprises; default --n 10000)\n"
          "  import [FILE|-] [--chunk-bytes N]\n"
          "      stream NDJSON profiles to POST /v1/profiles:import in chunks of whole\n"
          "      lines (default 4 MiB); exit 0 all imported, 1 some failed, 2 error\n"
          "  preview RULE [--sample N] [--breakdown F,...]\n"
          "  explain RULE PROFILE_ID\n"
          "  segment put NAME RULE | segment get NAME | segment delete NAME\n"
          "  profile get ID | profile put ID FILE | profile delete ID\n"
          "\n"
          "  A RULE written as @FILE is read from FILE (@- reads stdin).\n",
          f);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("zhida: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n(see zhida --help)\n", stderr);
    va_end(ap);
    return EXIT_ERROR;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parses a non-negative decimal count; false on anything else. */
static bool parse_count(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return false;
    *out = v;
    return true;
}

/* Reads a whole file ("-" is stdin) into b. Returns 0 or -errno. */
static int read_file(const char *path, buf *b)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return -errno;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        buf_append(b, tmp, n);
    int rc = ferror(f) ? -EIO : 0;
    if (f != stdin)
        fclose(f);
    if (!b->data)
        buf_append(b, "", 0);
    return rc;
}

/* A rule argument, or with a leading '@' the contents of that file. Caller frees. */
static char *rule_arg(const char *arg)
{
    if (arg[0] != '@')
        return strdup(arg);
    buf b = {0};
    int rc = read_file(arg + 1, &b);
    if (rc < 0) {
        fprintf(stderr, "zhida: cannot read %s: %s\n", arg + 1, strerror(-rc));
        buf_free(&b);
        return NULL;
    }
    while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
        b.data[--b.len] = '\0';
    return b.data;
}

/* ---- HTTP ---- */

static struct curl_slist *make_headers(const cli *c, const char *content_type)
{
    struct curl_slist *h = NULL;
    if (c->auth)
        h = curl_slist_append(h, c->auth);
    if (content_type)
        h = curl_slist_append(h, content_type);
    /* zhidad answers at once; waiting a second for "100 Continue" would only slow imports. */
    h = curl_slist_append(h, "Expect:");
    return h;
}

static char *make_url(const cli *c, const char *path)
{
    size_t n = strlen(c->url) + strlen(path) + 1;
    char *u = malloc(n);
    if (!u)
        die_oom();
    snprintf(u, n, "%s%s", c->url, path);
    return u;
}

/* Sets the options every request shares. */
static void setup_easy(CURL *e, const char *url, struct curl_slist *hdrs, buf *resp)
{
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
    /* A stalled server must not hang the client forever; a slow one may take its time. */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 120L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "zhida-client/0.1");
}

/* One synchronous request. body may be NULL (no body). On a transport error prints it and
 * returns -1; otherwise returns 0 with *status and the answer in resp. */
static int http_call(const cli *c, const char *method, const char *path, const char *body,
                     size_t len, const char *content_type, long *status, buf *resp)
{
    CURL *e = curl_easy_init();
    if (!e)
        die_oom();
    char *url = make_url(c, path);
    struct curl_slist *hdrs = make_headers(c, body ? content_type : NULL);
    setup_easy(e, url, hdrs, resp);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 300L);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    CURLcode rc = curl_easy_perform(e);
    int ret = 0;
    if (rc != CURLE_OK) {
        fprintf(stderr, "zhida: %s %s: %s\n", method, url, curl_easy_strerror(rc));
        ret = -1;
    } else {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    }
    curl_slist_free_all(hdrs);
    free(url);
    curl_easy_cleanup(e);
    return ret;
}

/* Prints a JSON answer pretty (or as is when it is not JSON). */
static void print_answer(FILE *f, const buf *b)
{
    if (!b->len)
        return;
    cJSON *j = cJSON_ParseWithLength(b->data, b->len);
    char *s = j ? cJSON_Print(j) : NULL;
    if (s)
        fprintf(f, "%s\n", s);
    else
        fprintf(f, "%.*s%s", (int)b->len, b->data, b->data[b->len - 1] == '\n' ? "" : "\n");
    free(s);
    cJSON_Delete(j);
}

/* Runs one request and prints the answer: 2xx to stdout (exit 0), anything else to stderr
 * (exit 2). body is borrowed. */
static int request_and_print(const cli *c, const char *method, const char *path, const char *body,
                             size_t len, const char *content_type)
{
    buf resp = {0};
    long status = 0;
    int ret = EXIT_ERROR;
    if (http_call(c, method, path, body, len, content_type, &status, &resp) < 0)
        goto done;
    if (status >= 200 && status < 300) {
        print_answer(stdout, &resp);
        ret = 0;
    } else {
        fprintf(stderr, "zhida: %s %s: HTTP %ld\n", method, path, status);
        print_answer(stderr, &resp);
    }
done:
    buf_free(&resp);
    return ret;
}

/* Sends a cJSON body (takes ownership of j). */
static int request_json(const cli *c, const char *method, const char *path, cJSON *j)
{
    char *body = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!body)
        die_oom();
    int ret =
        request_and_print(c, method, path, body, strlen(body), "Content-Type: application/json");
    free(body);
    return ret;
}

/* "/v1/<collection>/<escaped name>". Caller frees. */
static char *resource_path(const char *collection, const char *name)
{
    char *esc = curl_easy_escape(NULL, name, 0);
    if (!esc)
        die_oom();
    size_t n = strlen(collection) + strlen(esc) + 8;
    char *p = malloc(n);
    if (!p)
        die_oom();
    snprintf(p, n, "/v1/%s/%s", collection, esc);
    curl_free(esc);
    return p;
}

/* ---- demo-population ---- */

static int cmd_demo_population(int argc, char **argv)
{
    uint64_t citizens = 0, enterprises = 0, n = 10000, seed = 1;
    bool have_c = false, have_e = false;
    const uint64_t max = 1000000000ull;
    for (int i = 0; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok;
        if (strcmp(a, "--citizens") == 0)
            ok = have_c = parse_count(v, max, &citizens);
        else if (strcmp(a, "--enterprises") == 0)
            ok = have_e = parse_count(v, max, &enterprises);
        else if (strcmp(a, "--n") == 0)
            ok = parse_count(v, max, &n);
        else if (strcmp(a, "--seed") == 0)
            ok = parse_count(v, UINT64_MAX, &seed);
        else
            return usage_error("demo-population: unknown argument %s", a);
        if (!ok)
            return usage_error("demo-population: %s needs a count (0..%" PRIu64 ")", a, max);
    }
    if (!have_c && !have_e) {
        citizens = n * 7 / 10;
        enterprises = n - citizens;
    }
    zd_popgen *g = zd_popgen_new(seed);
    if (!g)
        die_oom();
    int rc = zd_popgen_write(g, citizens, enterprises, stdout);
    zd_popgen_free(g);
    if (rc < 0) {
        fprintf(stderr, "zhida: demo-population: write failed: %s\n", strerror(-rc));
        return EXIT_ERROR;
    }
    return 0;
}

/* ---- import ---- */

/* One per-line error as reported by the server, renumbered to the input file's lines. */
typedef struct line_error {
    uint64_t line;
    char id[132];
    char code[40];
    char field[64];
    char message[320];
} line_error;

/* One request in flight: a body of whole lines and, for each of them, its line in the file
 * (blank lines are not sent, so request line k is not simply first + k - 1). */
typedef struct import_job {
    CURL *easy;
    buf body;
    uint64_t *lines;
    size_t nlines, lines_cap;
    uint64_t input_bytes; /* bytes of the file this chunk covers, for the progress bar */
    buf resp;
    bool busy;
} import_job;

typedef struct importer {
    const cli *c;
    FILE *in;
    size_t chunk_bytes;
    char *url;
    struct curl_slist *hdrs;
    CURLM *multi;
    import_job jobs[IMPORT_PARALLEL];

    /* reader state: a line read but not yet placed in a chunk stays in `line` */
    char *line;
    size_t line_cap;
    ssize_t line_len;
    bool pending, eof;
    uint64_t line_no;

    uint64_t total_bytes; /* 0 when unknown (a pipe) */
    uint64_t done_bytes;
    uint64_t imported, failed, reported_errors;
    line_error shown[IMPORT_ERRORS_SHOWN];
    int nshown;

    bool tty;
    int last_decile;
    double started, last_draw;
} importer;

static void job_add_line(import_job *j, uint64_t line)
{
    if (j->nlines == j->lines_cap) {
        size_t cap = j->lines_cap ? j->lines_cap * 2 : 1024;
        uint64_t *p = realloc(j->lines, cap * sizeof(*p));
        if (!p)
            die_oom();
        j->lines = p;
        j->lines_cap = cap;
    }
    j->lines[j->nlines++] = line;
}

/* Keeps the IMPORT_ERRORS_SHOWN errors with the smallest line numbers, so the report is the
 * same whichever of two parallel chunks answers first. */
static void record_error(importer *im, const line_error *e)
{
    im->reported_errors++;
    int n = im->nshown;
    if (n == IMPORT_ERRORS_SHOWN && im->shown[n - 1].line <= e->line)
        return;
    if (n < IMPORT_ERRORS_SHOWN)
        n++;
    int i = n - 1;
    while (i > 0 && im->shown[i - 1].line > e->line) {
        im->shown[i] = im->shown[i - 1];
        i--;
    }
    im->shown[i] = *e;
    im->nshown = n;
}

static void local_error(importer *im, uint64_t line, const char *code, const char *msg)
{
    line_error e = {.line = line};
    snprintf(e.code, sizeof(e.code), "%s", code);
    snprintf(e.message, sizeof(e.message), "%s", msg);
    record_error(im, &e);
    im->failed++;
}

static void copy_json_str(char *dst, size_t cap, const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    snprintf(dst, cap, "%s", cJSON_IsString(v) && v->valuestring ? v->valuestring : "");
}

static void draw_progress(importer *im, bool final)
{
    double t = now_s();
    double el = t - im->started;
    double rate = el > 0 ? (double)(im->imported + im->failed) / el : 0;
    int pct =
        im->total_bytes ? (int)(100.0 * (double)im->done_bytes / (double)im->total_bytes) : -1;
    if (pct > 100)
        pct = 100;
    if (im->tty) {
        if (!final && t - im->last_draw < 0.1)
            return;
        im->last_draw = t;
        if (pct >= 0) {
            char bar[31];
            int fill = pct * 30 / 100;
            for (int i = 0; i < 30; i++)
                bar[i] = i < fill ? '#' : '.';
            bar[30] = '\0';
            fprintf(stderr, "\rimport [%s] %3d%%  %" PRIu64 " lines  %.0f/s ", bar, pct,
                    im->imported + im->failed, rate);
        } else {
            fprintf(stderr, "\rimport %" PRIu64 " lines  %.0f/s ", im->imported + im->failed, rate);
        }
        if (final)
            fputc('\n', stderr);
        return;
    }
    /* Not a terminal: a line per ~10% (or per ten chunks when the size is unknown). */
    int decile = pct >= 0 ? pct / 10 : (int)((im->imported + im->failed) / 100000);
    if (decile == im->last_decile && !final)
        return;
    if (final && decile == im->last_decile)
        return;
    im->last_decile = decile;
    if (pct >= 0)
        fprintf(stderr, "import: %d%%  %" PRIu64 " lines  %.0f/s\n", pct, im->imported + im->failed,
                rate);
    else
        fprintf(stderr, "import: %" PRIu64 " lines  %.0f/s\n", im->imported + im->failed, rate);
}

/* Fills job with whole lines up to chunk_bytes. Returns the number of lines placed. */
static size_t fill_job(importer *im, import_job *j)
{
    j->body.len = 0;
    j->nlines = 0;
    j->input_bytes = 0;
    while (!im->eof) {
        if (!im->pending) {
            im->line_len = getline(&im->line, &im->line_cap, im->in);
            if (im->line_len < 0) {
                im->eof = true;
                break;
            }
            im->line_no++;
            im->pending = true;
        }
        size_t n = (size_t)im->line_len;
        size_t raw = n;
        while (n && (im->line[n - 1] == '\n' || im->line[n - 1] == '\r'))
            n--;
        size_t content = n;
        while (content && isspace((unsigned char)im->line[content - 1]))
            content--;
        size_t lead = 0;
        while (lead < content && isspace((unsigned char)im->line[lead]))
            lead++;
        if (lead == content) {
            /* Blank lines are no profiles; skip them without a request line. */
            j->input_bytes += raw;
            im->pending = false;
            continue;
        }
        if (n + 1 > im->chunk_bytes) {
            local_error(im, im->line_no, "line_too_long",
                        "line is longer than --chunk-bytes; not sent");
            im->done_bytes += raw;
            im->pending = false;
            continue;
        }
        if (j->body.len + n + 1 > im->chunk_bytes)
            break; /* the line stays pending for the next chunk */
        buf_append(&j->body, im->line, n);
        buf_append(&j->body, "\n", 1);
        job_add_line(j, im->line_no);
        j->input_bytes += raw;
        im->pending = false;
    }
    if (!j->nlines)
        im->done_bytes += j->input_bytes;
    return j->nlines;
}

static void start_job(importer *im, import_job *j)
{
    j->resp.len = 0;
    curl_easy_reset(j->easy);
    setup_easy(j->easy, im->url, im->hdrs, &j->resp);
    curl_easy_setopt(j->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, j->body.data);
    curl_easy_setopt(j->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body.len);
    curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
    curl_multi_add_handle(im->multi, j->easy);
    j->busy = true;
}

/* Takes a finished request's answer into the totals. Returns 0, or EXIT_ERROR after printing
 * what went wrong. */
static int finish_job(importer *im, import_job *j, CURLcode result)
{
    j->busy = false;
    curl_multi_remove_handle(im->multi, j->easy);
    uint64_t first = j->nlines ? j->lines[0] : 0;
    if (result != CURLE_OK) {
        fprintf(stderr, "\nzhida: import: POST %s (lines from %" PRIu64 "): %s\n", im->url, first,
                curl_easy_strerror(result));
        return EXIT_ERROR;
    }
    long status = 0;
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
    cJSON *ans = cJSON_ParseWithLength(j->resp.data ? j->resp.data : "", j->resp.len);
    if (status < 200 || status >= 300 || !cJSON_IsObject(ans)) {
        fprintf(stderr, "\nzhida: import: HTTP %ld for the chunk starting at line %" PRIu64 "\n",
                status, first);
        print_answer(stderr, &j->resp);
        cJSON_Delete(ans);
        return EXIT_ERROR;
    }
    const cJSON *imp = cJSON_GetObjectItemCaseSensitive(ans, "imported");
    const cJSON *fail = cJSON_GetObjectItemCaseSensitive(ans, "failed");
    uint64_t ni = cJSON_IsNumber(imp) && imp->valuedouble > 0 ? (uint64_t)imp->valuedouble : 0;
    uint64_t nf = cJSON_IsNumber(fail) && fail->valuedouble > 0 ? (uint64_t)fail->valuedouble : 0;
    im->imported += ni;
    im->failed += nf;
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(ans, "errors");
    const cJSON *e;
    cJSON_ArrayForEach(e, errs)
    {
        const cJSON *ln = cJSON_GetObjectItemCaseSensitive(e, "line");
        line_error le = {0};
        if (cJSON_IsNumber(ln) && ln->valuedouble >= 1 && (size_t)ln->valuedouble <= j->nlines)
            le.line = j->lines[(size_t)ln->valuedouble - 1];
        copy_json_str(le.id, sizeof(le.id), e, "id");
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(e, "error");
        copy_json_str(le.code, sizeof(le.code), err, "code");
        copy_json_str(le.field, sizeof(le.field), err, "field");
        copy_json_str(le.message, sizeof(le.message), err, "message");
        record_error(im, &le);
    }
    if (ni + nf != j->nlines)
        fprintf(stderr,
                "\nzhida: import: warning: server counted %" PRIu64 " of %zu lines in the chunk "
                "starting at line %" PRIu64 "\n",
                ni + nf, j->nlines, first);
    im->done_bytes += j->input_bytes;
    cJSON_Delete(ans);
    draw_progress(im, false);
    return 0;
}

static int run_import(importer *im)
{
    int ret = 0;
    for (;;) {
        for (int k = 0; k < IMPORT_PARALLEL && !im->eof; k++) {
            import_job *j = &im->jobs[k];
            if (!j->busy && fill_job(im, j) > 0)
                start_job(im, j);
        }
        int running = 0;
        curl_multi_perform(im->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(im->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            char *priv = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            import_job *j = (import_job *)(void *)priv;
            if (j && finish_job(im, j, msg->data.result) != 0)
                ret = EXIT_ERROR;
        }
        if (ret)
            return ret;
        bool busy = false;
        for (int k = 0; k < IMPORT_PARALLEL; k++)
            busy = busy || im->jobs[k].busy;
        if (!busy && im->eof)
            return 0;
        if (busy && (im->eof || (im->jobs[0].busy && im->jobs[1].busy)))
            curl_multi_wait(im->multi, NULL, 0, 100, NULL);
    }
}

static int cmd_import(const cli *c, int argc, char **argv)
{
    const char *path = NULL;
    uint64_t chunk = DEFAULT_CHUNK_BYTES;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--chunk-bytes") == 0) {
            if (!parse_count(i + 1 < argc ? argv[i + 1] : NULL, 1ull << 32, &chunk) || chunk < 1024)
                return usage_error("import: --chunk-bytes needs a byte count >= 1024");
            i++;
        } else if (!path && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0)) {
            path = argv[i];
        } else {
            return usage_error("import: unexpected argument %s", argv[i]);
        }
    }
    if (!path)
        path = "-";

    importer im = {.c = c, .chunk_bytes = (size_t)chunk, .last_decile = -1};
    im.in = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!im.in) {
        fprintf(stderr, "zhida: import: cannot open %s: %s\n", path, strerror(errno));
        return EXIT_ERROR;
    }
    struct stat st;
    if (fstat(fileno(im.in), &st) == 0 && S_ISREG(st.st_mode))
        im.total_bytes = (uint64_t)st.st_size;
    im.tty = isatty(STDERR_FILENO);
    im.url = make_url(c, "/v1/profiles:import");
    im.hdrs = make_headers(c, "Content-Type: application/x-ndjson");
    im.multi = curl_multi_init();
    if (!im.multi)
        die_oom();
    for (int k = 0; k < IMPORT_PARALLEL; k++)
        if (!(im.jobs[k].easy = curl_easy_init()))
            die_oom();

    im.started = now_s();
    int ret = run_import(&im);
    double elapsed = now_s() - im.started;
    if (ret == 0) {
        draw_progress(&im, true);
        printf("imported %" PRIu64 ", failed %" PRIu64 " in %.2f s (%.0f profiles/s)\n",
               im.imported, im.failed, elapsed, elapsed > 0 ? (double)im.imported / elapsed : 0.0);
        for (int i = 0; i < im.nshown; i++) {
            const line_error *e = &im.shown[i];
            printf("line %" PRIu64 "%s%s%s: %s%s%s%s %s\n", e->line, e->id[0] ? " (id " : "", e->id,
                   e->id[0] ? ")" : "", e->code, e->field[0] ? " [" : "", e->field,
                   e->field[0] ? "]" : "", e->message);
        }
        if (im.failed > (uint64_t)im.nshown)
            printf("... %" PRIu64 " more failed lines not shown\n",
                   im.failed - (uint64_t)im.nshown);
        ret = im.failed ? EXIT_PARTIAL : 0;
    } else {
        fprintf(stderr, "zhida: import stopped after %" PRIu64 " imported, %" PRIu64 " failed\n",
                im.imported, im.failed);
    }

    for (int k = 0; k < IMPORT_PARALLEL; k++) {
        if (im.jobs[k].busy)
            curl_multi_remove_handle(im.multi, im.jobs[k].easy);
        curl_easy_cleanup(im.jobs[k].easy);
        buf_free(&im.jobs[k].body);
        buf_free(&im.jobs[k].resp);
        free(im.jobs[k].lines);
    }
    curl_multi_cleanup(im.multi);
    curl_slist_free_all(im.hdrs);
    free(im.url);
    free(im.line);
    if (im.in != stdin)
        fclose(im.in);
    return ret;
}

/* ---- rules, segments, profiles ---- */

static int cmd_preview(const cli *c, int argc, char **argv)
{
    const char *rule_text = NULL, *breakdown = NULL;
    uint64_t sample = 10;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--sample") == 0) {
            if (!parse_count(i + 1 < argc ? argv[i + 1] : NULL, 100000, &sample))
                return usage_error("preview: --sample needs a count");
            i++;
        } else if (strcmp(argv[i], "--breakdown") == 0) {
            if (i + 1 >= argc)
                return usage_error("preview: --breakdown needs a list of fields");
            breakdown = argv[++i];
        } else if (!rule_text) {
            rule_text = argv[i];
        } else {
            return usage_error("preview: unexpected argument %s", argv[i]);
        }
    }
    if (!rule_text)
        return usage_error("preview: RULE missing");
    char *rule = rule_arg(rule_text);
    if (!rule)
        return EXIT_ERROR;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "rule", rule);
    cJSON_AddNumberToObject(j, "sample", (double)sample);
    if (breakdown) {
        cJSON *arr = cJSON_AddArrayToObject(j, "breakdown");
        char *copy = strdup(breakdown), *save = NULL;
        if (!copy)
            die_oom();
        for (char *f = strtok_r(copy, ",", &save); f; f = strtok_r(NULL, ",", &save))
            if (*f)
                cJSON_AddItemToArray(arr, cJSON_CreateString(f));
        free(copy);
    }
    free(rule);
    return request_json(c, "POST", "/v1/rules:preview", j);
}

static int cmd_explain(const cli *c, int argc, char **argv)
{
    if (argc != 2)
        return usage_error("explain: usage: explain RULE PROFILE_ID");
    char *rule = rule_arg(argv[0]);
    if (!rule)
        return EXIT_ERROR;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "rule", rule);
    cJSON_AddStringToObject(j, "profile", argv[1]);
    free(rule);
    return request_json(c, "POST", "/v1/rules:explain", j);
}

static int cmd_segment(const cli *c, int argc, char **argv)
{
    if (argc < 2)
        return usage_error("segment: usage: segment put NAME RULE | get NAME | delete NAME");
    const char *op = argv[0];
    char *path = resource_path("segments", argv[1]);
    int ret;
    if (strcmp(op, "put") == 0 && argc == 3) {
        char *rule = rule_arg(argv[2]);
        if (!rule) {
            free(path);
            return EXIT_ERROR;
        }
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "rule", rule);
        free(rule);
        ret = request_json(c, "PUT", path, j);
    } else if (strcmp(op, "get") == 0 && argc == 2) {
        ret = request_and_print(c, "GET", path, NULL, 0, NULL);
    } else if (strcmp(op, "delete") == 0 && argc == 2) {
        ret = request_and_print(c, "DELETE", path, NULL, 0, NULL);
    } else {
        ret = usage_error("segment: usage: segment put NAME RULE | get NAME | delete NAME");
    }
    free(path);
    return ret;
}

static int cmd_profile(const cli *c, int argc, char **argv)
{
    if (argc < 2)
        return usage_error("profile: usage: profile get ID | put ID FILE | delete ID");
    const char *op = argv[0];
    char *path = resource_path("profiles", argv[1]);
    int ret;
    if (strcmp(op, "put") == 0 && argc == 3) {
        buf body = {0};
        int rc = read_file(argv[2], &body);
        if (rc < 0) {
            fprintf(stderr, "zhida: cannot read %s: %s\n", argv[2], strerror(-rc));
            ret = EXIT_ERROR;
        } else {
            ret = request_and_print(c, "PUT", path, body.data, body.len,
                                    "Content-Type: application/json");
        }
        buf_free(&body);
    } else if (strcmp(op, "get") == 0 && argc == 2) {
        ret = request_and_print(c, "GET", path, NULL, 0, NULL);
    } else if (strcmp(op, "delete") == 0 && argc == 2) {
        ret = request_and_print(c, "DELETE", path, NULL, 0, NULL);
    } else {
        ret = usage_error("profile: usage: profile get ID | put ID FILE | delete ID");
    }
    free(path);
    return ret;
}

int main(int argc, char **argv)
{
    const char *url = getenv("ZHIDA_URL"), *key = getenv("ZHIDA_KEY");
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--url") == 0 && i + 1 < argc) {
            url = argv[++i];
        } else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc) {
            key = argv[++i];
        } else {
            return usage_error("unknown option %s", argv[i]);
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_ERROR;
    }
    const char *cmd = argv[i++];
    int sub_argc = argc - i;
    char **sub_argv = argv + i;
    for (int k = 0; k < sub_argc; k++)
        if (strcmp(sub_argv[k], "--help") == 0) {
            usage(stdout);
            return 0;
        }
    if (strcmp(cmd, "demo-population") == 0)
        return cmd_demo_population(sub_argc, sub_argv);

    if (!url || !*url)
        url = DEFAULT_URL;
    char *base = strdup(url);
    if (!base)
        die_oom();
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        base[--bl] = '\0';
    cli c = {.url = base};
    if (key && *key) {
        size_t n = strlen(key) + 32;
        c.auth = malloc(n);
        if (!c.auth)
            die_oom();
        snprintf(c.auth, n, "Authorization: Bearer %s", key);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);

    int ret;
    if (strcmp(cmd, "import") == 0)
        ret = cmd_import(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "preview") == 0)
        ret = cmd_preview(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "explain") == 0)
        ret = cmd_explain(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "segment") == 0)
        ret = cmd_segment(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "profile") == 0)
        ret = cmd_profile(&c, sub_argc, sub_argv);
    else
        ret = usage_error("unknown command %s", cmd);

    curl_global_cleanup();
    if (c.auth) {
        /* The key should not linger in freed heap memory either. */
        memset(c.auth, 0, strlen(c.auth));
        free(c.auth);
    }
    free(base);
    return ret;
}
