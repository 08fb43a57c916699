/* zhida import: NDJSON streamed to POST /v1/profiles:import in chunks of whole lines, two
 * requests in flight on a curl multi handle, per-line errors renumbered to the file's lines. */
#include "client/import.h"

#include "common/clock.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "client/output.h"

#define IMPORT_PARALLEL 2
/* Errors kept (those with the smallest line numbers): all go into the JSON report, as the
 * API lists at most 100 per request; the table shows the first IMPORT_ERRORS_TABLE. */
#define IMPORT_ERRORS_KEPT 100
#define IMPORT_ERRORS_TABLE 20

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
    zd_buf body;
    uint64_t *lines;
    size_t nlines, lines_cap;
    uint64_t input_bytes; /* bytes of the file this chunk covers, for the progress bar */
    zd_buf resp;
    bool busy;
} import_job;

typedef struct importer {
    const zd_cli *c;
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
    uint64_t imported, unchanged, failed;
    line_error *kept; /* IMPORT_ERRORS_KEPT slots, sorted by line */
    int nkept;

    bool tty;
    int last_decile;
    double started, last_draw;
} importer;

static double now_s(void)
{
    return (double)zd_mono_ns() / 1e9;
}

static size_t on_body(char *p, size_t size, size_t n, void *udata)
{
    zd_buf_append(udata, p, size * n);
    return size * n;
}

static void job_add_line(import_job *j, uint64_t line)
{
    if (j->nlines == j->lines_cap) {
        size_t cap = j->lines_cap ? j->lines_cap * 2 : 1024;
        uint64_t *p = realloc(j->lines, cap * sizeof(*p));
        if (!p)
            zd_cli_oom();
        j->lines = p;
        j->lines_cap = cap;
    }
    j->lines[j->nlines++] = line;
}

/* Keeps the IMPORT_ERRORS_KEPT errors with the smallest line numbers, so the report is the
 * same whichever of two parallel chunks answers first. */
static void record_error(importer *im, const line_error *e)
{
    int n = im->nkept;
    if (n == IMPORT_ERRORS_KEPT && im->kept[n - 1].line <= e->line)
        return;
    if (n < IMPORT_ERRORS_KEPT)
        n++;
    int i = n - 1;
    while (i > 0 && im->kept[i - 1].line > e->line) {
        im->kept[i] = im->kept[i - 1];
        i--;
    }
    im->kept[i] = *e;
    im->nkept = n;
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

static uint64_t counted(const importer *im)
{
    return im->imported + im->unchanged + im->failed;
}

static void draw_progress(importer *im, bool final)
{
    double t = now_s();
    double el = t - im->started;
    double rate = el > 0 ? (double)counted(im) / el : 0;
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
                    counted(im), rate);
        } else {
            fprintf(stderr, "\rimport %" PRIu64 " lines  %.0f/s ", counted(im), rate);
        }
        if (final)
            fputc('\n', stderr);
        return;
    }
    /* Not a terminal: a line per ~10% (or per 100,000 lines when the size is unknown). */
    int decile = pct >= 0 ? pct / 10 : (int)(counted(im) / 100000);
    if (decile == im->last_decile)
        return;
    im->last_decile = decile;
    if (pct >= 0)
        fprintf(stderr, "import: %d%%  %" PRIu64 " lines  %.0f/s\n", pct, counted(im), rate);
    else
        fprintf(stderr, "import: %" PRIu64 " lines  %.0f/s\n", counted(im), rate);
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
        zd_buf_append(&j->body, im->line, n);
        zd_buf_append(&j->body, "\n", 1);
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
    curl_easy_setopt(j->easy, CURLOPT_URL, im->url);
    curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, im->hdrs);
    curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, &j->resp);
    curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(j->easy, CURLOPT_CONNECTTIMEOUT, 10L);
    /* A stalled server must not hang the client forever; a slow one may take its time. */
    curl_easy_setopt(j->easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(j->easy, CURLOPT_LOW_SPEED_TIME, 120L);
    curl_easy_setopt(j->easy, CURLOPT_USERAGENT, "zhida-client/" ZHIDA_VERSION);
    curl_easy_setopt(j->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, j->body.data);
    curl_easy_setopt(j->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body.len);
    curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
    curl_multi_add_handle(im->multi, j->easy);
    j->busy = true;
}

/* Takes a finished request's answer into the totals. Returns 0, or the exit status after
 * printing what went wrong. */
static int finish_job(importer *im, import_job *j, CURLcode result)
{
    j->busy = false;
    curl_multi_remove_handle(im->multi, j->easy);
    uint64_t first = j->nlines ? j->lines[0] : 0;
    char what[96];
    snprintf(what, sizeof(what), "import: the chunk from line %" PRIu64, first);
    if (result != CURLE_OK) {
        fprintf(stderr, "%szhida: %s: POST %s: %s\n", im->tty ? "\n" : "", what, im->url,
                curl_easy_strerror(result));
        return ZD_EXIT_TRANSPORT;
    }
    long status = 0;
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status >= 300) {
        if (im->tty)
            fputc('\n', stderr);
        return zd_cli_http_error(im->c, what, status, j->resp.data, j->resp.len);
    }
    cJSON *ans = cJSON_ParseWithLength(j->resp.data ? j->resp.data : "", j->resp.len);
    if (!cJSON_IsObject(ans)) {
        fprintf(stderr, "%szhida: %s: HTTP %ld with an answer that is no JSON object\n",
                im->tty ? "\n" : "", what, status);
        cJSON_Delete(ans);
        return ZD_EXIT_5XX;
    }
    uint64_t got[3] = {0};
    static const char *const keys[3] = {"imported", "unchanged", "failed"};
    for (int k = 0; k < 3; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(ans, keys[k]);
        got[k] = cJSON_IsNumber(v) && v->valuedouble > 0 ? (uint64_t)v->valuedouble : 0;
    }
    im->imported += got[0];
    im->unchanged += got[1];
    im->failed += got[2];
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(ans, "errors"))
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
    if (got[0] + got[1] + got[2] != j->nlines)
        fprintf(stderr,
                "%szhida: import: warning: the server counted %" PRIu64 " of the %zu lines of "
                "the chunk from line %" PRIu64 "\n",
                im->tty ? "\n" : "", got[0] + got[1] + got[2], j->nlines, first);
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
            int rc = j ? finish_job(im, j, msg->data.result) : 0;
            if (rc && !ret)
                ret = rc;
        }
        if (ret)
            return ret;
        bool busy = false;
        for (int k = 0; k < IMPORT_PARALLEL; k++)
            busy = busy || im->jobs[k].busy;
        if (!busy && im->eof)
            return ferror(im->in) ? -EIO : 0;
        if (busy && (im->eof || (im->jobs[0].busy && im->jobs[1].busy)))
            curl_multi_wait(im->multi, NULL, 0, 100, NULL);
    }
}

static void report_table(const importer *im, double elapsed)
{
    printf("imported %" PRIu64 ", unchanged %" PRIu64 ", failed %" PRIu64
           " in %.2f s (%.0f profiles/s)\n",
           im->imported, im->unchanged, im->failed, elapsed,
           elapsed > 0 ? (double)(im->imported + im->unchanged) / elapsed : 0.0);
    int shown = im->nkept < IMPORT_ERRORS_TABLE ? im->nkept : IMPORT_ERRORS_TABLE;
    for (int i = 0; i < shown; i++) {
        const line_error *e = &im->kept[i];
        printf("line %" PRIu64 "%s%s%s: %s%s%s%s %s\n", e->line, e->id[0] ? " (id " : "", e->id,
               e->id[0] ? ")" : "", e->code, e->field[0] ? " [" : "", e->field,
               e->field[0] ? "]" : "", e->message);
    }
    if (im->failed > (uint64_t)shown)
        printf("... %" PRIu64 " more failed lines not shown\n", im->failed - (uint64_t)shown);
}

/* The API's answer shape for the whole file: counts, and errors with the file's lines. */
static void report_json(const importer *im, double elapsed)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "lines", (double)counted(im));
    cJSON_AddNumberToObject(o, "imported", (double)im->imported);
    cJSON_AddNumberToObject(o, "unchanged", (double)im->unchanged);
    cJSON_AddNumberToObject(o, "failed", (double)im->failed);
    cJSON_AddNumberToObject(o, "took_ms", elapsed * 1e3);
    cJSON *errs = cJSON_AddArrayToObject(o, "errors");
    for (int i = 0; i < im->nkept; i++) {
        const line_error *e = &im->kept[i];
        cJSON *item = cJSON_CreateObject(), *err = cJSON_CreateObject();
        cJSON_AddNumberToObject(item, "line", (double)e->line);
        if (e->id[0])
            cJSON_AddStringToObject(item, "id", e->id);
        cJSON_AddStringToObject(err, "code", e->code);
        if (e->field[0])
            cJSON_AddStringToObject(err, "field", e->field);
        cJSON_AddStringToObject(err, "message", e->message);
        cJSON_AddItemToObject(item, "error", err);
        cJSON_AddItemToArray(errs, item);
    }
    zd_out_json(stdout, o);
    cJSON_Delete(o);
}

int zd_import_run(const zd_cli *c, const char *path, size_t chunk_bytes)
{
    importer im = {.c = c, .chunk_bytes = chunk_bytes, .last_decile = -1};
    im.in = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!im.in) {
        fprintf(stderr, "zhida: import: cannot open %s: %s\n", path, strerror(errno));
        return ZD_EXIT_USAGE;
    }
    struct stat st;
    if (fstat(fileno(im.in), &st) == 0 && S_ISREG(st.st_mode))
        im.total_bytes = (uint64_t)st.st_size;
    im.tty = isatty(STDERR_FILENO);
    size_t n = strlen(c->url) + sizeof("/v1/profiles:import");
    if (!(im.url = malloc(n)) || !(im.kept = calloc(IMPORT_ERRORS_KEPT, sizeof(line_error))))
        zd_cli_oom();
    snprintf(im.url, n, "%s/v1/profiles:import", c->url);
    if (c->auth)
        im.hdrs = curl_slist_append(im.hdrs, c->auth);
    im.hdrs = curl_slist_append(im.hdrs, "Content-Type: application/x-ndjson");
    /* zhidad answers at once; waiting a second for "100 Continue" would only slow imports. */
    im.hdrs = curl_slist_append(im.hdrs, "Expect:");
    if (!im.hdrs || !(im.multi = curl_multi_init()))
        zd_cli_oom();
    for (int k = 0; k < IMPORT_PARALLEL; k++)
        if (!(im.jobs[k].easy = curl_easy_init()))
            zd_cli_oom();

    im.started = now_s();
    int ret = run_import(&im);
    double elapsed = now_s() - im.started;
    if (ret == 0) {
        draw_progress(&im, true);
        if (c->out == ZD_OUT_JSON)
            report_json(&im, elapsed);
        else
            report_table(&im, elapsed);
        ret = im.failed ? ZD_EXIT_PARTIAL : ZD_EXIT_OK;
        if (fflush(stdout) != 0 || ferror(stdout)) {
            fprintf(stderr, "zhida: import: cannot write the report: %s\n", strerror(errno));
            ret = ZD_EXIT_LOCAL;
        }
    } else {
        if (ret == -EIO) {
            fprintf(stderr, "zhida: import: reading %s failed\n", path);
            ret = ZD_EXIT_LOCAL;
        }
        fprintf(stderr,
                "zhida: import stopped after %" PRIu64 " imported, %" PRIu64 " unchanged, %" PRIu64
                " failed\n",
                im.imported, im.unchanged, im.failed);
    }

    for (int k = 0; k < IMPORT_PARALLEL; k++) {
        if (im.jobs[k].busy)
            curl_multi_remove_handle(im.multi, im.jobs[k].easy);
        curl_easy_cleanup(im.jobs[k].easy);
        zd_buf_free(&im.jobs[k].body);
        zd_buf_free(&im.jobs[k].resp);
        free(im.jobs[k].lines);
    }
    curl_multi_cleanup(im.multi);
    curl_slist_free_all(im.hdrs);
    free(im.url);
    free(im.kept);
    free(im.line);
    if (im.in != stdin)
        fclose(im.in);
    return ret;
}
