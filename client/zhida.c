/* zhida: the command-line client of zhidad's HTTP API (preview, explain, segments, profiles,
 * import) and the generator of the synthetic demo population. This file reads the command
 * line (getopt_long, options anywhere), the API key (environment or file, never argv), finds
 * the name tables, runs single requests and hands answers to client/output.c. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "client/cli.h"
#include "client/import.h"
#include "client/output.h"
#include "client/policies.h"
#include "client/population.h"
#include "zhida/limits.h"

#ifndef ZHIDA_DATADIR
#define ZHIDA_DATADIR "/usr/local/share/zhida"
#endif

#define DEFAULT_URL "http://127.0.0.1:8700"
#define KEY_MAX 4096

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: zhida [OPTIONS] COMMAND ARGS... [OPTIONS]\n"
        "\n"
        "Options may stand anywhere on the line; \"--\" ends them (for a RULE or ID that\n"
        "starts with \"-\").\n"
        "\n"
        "commands:\n"
        "  preview RULE [--sample N] [--breakdown FIELD[,FIELD...]] [--breakdown-limit N]\n"
        "      the audience of a rule: its size, up to N sample ids (0..%d, default 10) and\n"
        "      counts by up to %d distinct fields (region, region:6, industry, industry:3,\n"
        "      kind, scale, tags; --breakdown may be repeated), each its N largest groups\n"
        "      (default: the server's limits.breakdown_max_groups)\n"
        "  explain RULE PROFILE_ID\n"
        "      why a profile does or does not match, clause by clause\n"
        "  segment put NAME RULE | segment get NAME | segment delete NAME\n"
        "  profile get ID | profile put ID FILE | profile delete ID\n"
        "  import [FILE|-] [--chunk-bytes N]\n"
        "      stream NDJSON profiles to the server in chunks of whole lines (default 4 MiB,\n"
        "      1 KiB..64 MiB); progress on stderr; failed lines reported by line number\n"
        "  demo-population [--n N | --citizens N --enterprises N] [--seed S]\n"
        "      a synthetic Zhejiang population as NDJSON (--n alone: 70%% citizens, 30%%\n"
        "      enterprises; default --n 10000)\n"
        "  publish FILE|-\n"
        "      publish a policy document (JSON, docs/API.md); \"dry_run\": true only counts\n"
        "  status ID\n"
        "      a policy's funnel: JSON when stdout is not a terminal, else a table redrawn\n"
        "      every second until the policy is done or withdrawn\n"
        "  withdraw ID\n"
        "  dlq list [--policy P] [--gateway G]\n"
        "  dlq replay --policy P | --gateway G | NOTICE_ID...\n"
        "      dead letters: list them, or send them again\n"
        "  A RULE written as @FILE is read from FILE (@- reads stdin).\n"
        "\n"
        "options:\n"
        "  -u, --url URL        the server: $ZHIDA_URL, else " DEFAULT_URL "\n"
        "      --key-file PATH  read the API key from the first line of PATH; without it\n"
        "                       the key is $ZHIDA_KEY, else the first line of $ZHIDA_KEY_FILE.\n"
        "                       A key is never taken from the command line (--key is refused):\n"
        "                       every user of the machine could read it in ps.\n"
        "  -o, --output FORMAT  table or json. Default: table when stdout is a terminal, else\n"
        "                       json (the server's answer, pretty-printed). Errors go to stderr\n"
        "                       (as the server's JSON error document with --output json).\n"
        "                       demo-population writes NDJSON unless --output table is given.\n"
        "  -h, --help           this text\n"
        "  -V, --version        the version\n"
        "\n"
        "Tables show region (GB/T 2260) and industry (GB/T 4754) codes with their names, from\n"
        "the name tables (regions-*.tsv, industries.tsv) in $ZHIDA_DATA_DIR, else beside the\n"
        "binary (../data, ../share/zhida), else " ZHIDA_DATADIR ".\n"
        "\n"
        "exit status:\n"
        "  0  success\n"
        "  1  import: some lines failed, all others were imported\n"
        "  2  usage: bad command line or option value (such as --sample over the server's\n"
        "     limit of %d), a key file or input file that cannot be read\n"
        "  3  the server refused the request (HTTP 4xx: a bad rule, no such profile, no key)\n"
        "  4  the server failed (HTTP 5xx, such as 503 while its Redis is unreachable)\n"
        "  5  no answer from the server (connection refused, timeout)\n"
        "  6  local failure (the output cannot be written, out of memory)\n",
        ZD_PREVIEW_SAMPLE_MAX, ZD_PREVIEW_BREAKDOWN_MAX, ZD_PREVIEW_SAMPLE_MAX);
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
    return ZD_EXIT_USAGE;
}

/* ---- the command line ------------------------------------------------------------------- */

typedef enum command {
    CMD_PREVIEW = 1 << 0,
    CMD_EXPLAIN = 1 << 1,
    CMD_SEGMENT = 1 << 2,
    CMD_PROFILE = 1 << 3,
    CMD_IMPORT = 1 << 4,
    CMD_DEMO = 1 << 5,
    CMD_PUBLISH = 1 << 6,
    CMD_STATUS = 1 << 7,
    CMD_WITHDRAW = 1 << 8,
    CMD_DLQ = 1 << 9,
} command;
#define CMD_ALL 0x3ff

static const struct {
    const char *name;
    command cmd;
} commands[] = {
    {"preview", CMD_PREVIEW}, {"explain", CMD_EXPLAIN}, {"segment", CMD_SEGMENT},
    {"profile", CMD_PROFILE}, {"import", CMD_IMPORT},   {"demo-population", CMD_DEMO},
    {"publish", CMD_PUBLISH}, {"status", CMD_STATUS},   {"withdraw", CMD_WITHDRAW},
    {"dlq", CMD_DLQ},
};

enum {
    OPT_KEY = 256,
    OPT_KEY_FILE,
    OPT_SAMPLE,
    OPT_BREAKDOWN,
    OPT_BREAKDOWN_LIMIT,
    OPT_CHUNK,
    OPT_CITIZENS,
    OPT_ENTERPRISES,
    OPT_N,
    OPT_SEED,
    OPT_POLICY,
    OPT_GATEWAY,
};

static const struct option longopts[] = {
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {"url", required_argument, NULL, 'u'},
    {"output", required_argument, NULL, 'o'},
    {"key", required_argument, NULL, OPT_KEY},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"sample", required_argument, NULL, OPT_SAMPLE},
    {"breakdown", required_argument, NULL, OPT_BREAKDOWN},
    {"breakdown-limit", required_argument, NULL, OPT_BREAKDOWN_LIMIT},
    {"chunk-bytes", required_argument, NULL, OPT_CHUNK},
    {"citizens", required_argument, NULL, OPT_CITIZENS},
    {"enterprises", required_argument, NULL, OPT_ENTERPRISES},
    {"n", required_argument, NULL, OPT_N},
    {"seed", required_argument, NULL, OPT_SEED},
    {"policy", required_argument, NULL, OPT_POLICY},
    {"gateway", required_argument, NULL, OPT_GATEWAY},
    {NULL, 0, NULL, 0},
};

/* Which commands take a command option (global options go with every command). */
static const struct {
    int opt;
    const char *name;
    unsigned cmds;
} opt_cmds[] = {
    {OPT_SAMPLE, "--sample", CMD_PREVIEW},
    {OPT_BREAKDOWN, "--breakdown", CMD_PREVIEW},
    {OPT_BREAKDOWN_LIMIT, "--breakdown-limit", CMD_PREVIEW},
    {OPT_CHUNK, "--chunk-bytes", CMD_IMPORT},
    {OPT_CITIZENS, "--citizens", CMD_DEMO},
    {OPT_ENTERPRISES, "--enterprises", CMD_DEMO},
    {OPT_N, "--n", CMD_DEMO},
    {OPT_SEED, "--seed", CMD_DEMO},
    {OPT_POLICY, "--policy", CMD_DLQ},
    {OPT_GATEWAY, "--gateway", CMD_DLQ},
};

typedef struct opts {
    const char *url, *key_file, *output;
    const char *sample, *chunk, *citizens, *enterprises, *n, *seed; /* as given */
    const char *breakdown_limit;
    const char *policy, *gateway;                    /* dlq */
    const char *breakdown[ZD_PREVIEW_BREAKDOWN_MAX]; /* distinct fields, in order */
    int nbreakdown;
    char *breakdown_copy[16]; /* the --breakdown arguments split in place; freed at exit */
    int ncopies;
    uint64_t given; /* bit (opt - OPT_KEY) per command option seen */
    char **pos;     /* positional arguments in order, pos[0] the command */
    int npos;
    bool help, version;
} opts;

static void opts_free(opts *o)
{
    for (int i = 0; i < o->ncopies; i++)
        free(o->breakdown_copy[i]);
    free(o->pos);
}

/* Splits "region,kind" into o->breakdown, the same field twice counting once as the server
 * counts it. Returns false when there are more distinct fields than the server takes. */
static bool add_breakdown(opts *o, const char *arg)
{
    if (o->ncopies == (int)(sizeof(o->breakdown_copy) / sizeof(o->breakdown_copy[0])))
        return false;
    char *copy = strdup(arg), *save = NULL;
    if (!copy)
        zd_cli_oom();
    o->breakdown_copy[o->ncopies++] = copy;
    for (char *f = strtok_r(copy, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
        bool seen = false;
        for (int i = 0; i < o->nbreakdown; i++)
            seen = seen || strcmp(o->breakdown[i], f) == 0;
        if (seen)
            continue;
        if (o->nbreakdown == ZD_PREVIEW_BREAKDOWN_MAX)
            return false;
        o->breakdown[o->nbreakdown++] = f;
    }
    return true;
}

/* Parses argv into o. Returns 0 or an exit status after printing the usage error. */
static int parse_args(int argc, char **argv, opts *o)
{
    o->pos = calloc((size_t)argc + 1, sizeof(char *));
    if (!o->pos)
        zd_cli_oom();
    opterr = 0;
    /* "-": non-options come back in order as option 1, so options may stand anywhere even
     * under POSIXLY_CORRECT; ":": a missing option argument is reported as ':'. */
    int ch;
    while ((ch = getopt_long(argc, argv, "-:hVu:o:", longopts, NULL)) != -1) {
        switch (ch) {
        case 1:
            o->pos[o->npos++] = optarg;
            break;
        case 'h':
            o->help = true;
            break;
        case 'V':
            o->version = true;
            break;
        case 'u':
            o->url = optarg;
            break;
        case 'o':
            o->output = optarg;
            break;
        case OPT_KEY:
            /* Never echo optarg: it is the secret. */
            return usage_error("--key is refused: a key on the command line is visible to every "
                               "user in ps; set ZHIDA_KEY or use --key-file PATH");
        case OPT_KEY_FILE:
            o->key_file = optarg;
            break;
        case OPT_BREAKDOWN:
            if (!add_breakdown(o, optarg))
                return usage_error("preview: --breakdown names at most %d distinct fields (the "
                                   "server's limit)",
                                   ZD_PREVIEW_BREAKDOWN_MAX);
            break;
        case OPT_SAMPLE:
            o->sample = optarg;
            break;
        case OPT_BREAKDOWN_LIMIT:
            o->breakdown_limit = optarg;
            break;
        case OPT_CHUNK:
            o->chunk = optarg;
            break;
        case OPT_CITIZENS:
            o->citizens = optarg;
            break;
        case OPT_ENTERPRISES:
            o->enterprises = optarg;
            break;
        case OPT_N:
            o->n = optarg;
            break;
        case OPT_SEED:
            o->seed = optarg;
            break;
        case OPT_POLICY:
            o->policy = optarg;
            break;
        case OPT_GATEWAY:
            o->gateway = optarg;
            break;
        case ':':
            return usage_error("option %s needs a value", argv[optind - 1]);
        default: {
            /* Show an unknown "--name=value" without its value, which might be a secret. */
            const char *bad = argv[optind - 1];
            int n = (int)strcspn(bad, "=");
            if (optopt && bad[0] == '-' && bad[1] != '-')
                return usage_error("unknown option -%c", optopt);
            return usage_error("unknown or ambiguous option %.*s", n, bad);
        }
        }
        if (ch >= OPT_KEY)
            o->given |= 1ull << (ch - OPT_KEY);
    }
    while (optind < argc)
        o->pos[o->npos++] = argv[optind++];
    return 0;
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

/* ---- the API key ------------------------------------------------------------------------ */

/* A key becomes an HTTP header line, so it must be printable ASCII without spaces. */
static bool key_ok(const char *k)
{
    if (!*k)
        return false;
    for (; *k; k++)
        if (*k < 0x21 || *k > 0x7e)
            return false;
    return true;
}

/* Reads the first line of path into key (KEY_MAX bytes). Returns 0 or an exit status after
 * printing why not. */
static int read_key_file(const char *path, char *key)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "zhida: cannot read the key file %s: %s\n", path, strerror(errno));
        return ZD_EXIT_USAGE;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
        fprintf(stderr,
                "zhida: warning: the key file %s is readable by other users (mode %04o); "
                "chmod 600 it\n",
                path, (unsigned)(st.st_mode & 07777));
    key[0] = '\0';
    bool got = fgets(key, KEY_MAX, f) != NULL;
    fclose(f);
    size_t n = got ? strlen(key) : 0;
    while (n && isspace((unsigned char)key[n - 1]))
        key[--n] = '\0';
    if (!key_ok(key)) {
        fprintf(stderr,
                "zhida: the key file %s must hold the key on its first line (printable ASCII "
                "without spaces)\n",
                path);
        memset(key, 0, KEY_MAX);
        return ZD_EXIT_USAGE;
    }
    return 0;
}

/* "Authorization: Bearer <key>" from --key-file, $ZHIDA_KEY or $ZHIDA_KEY_FILE, or NULL when
 * there is none. Returns 0 or an exit status. *auth is freed by the caller (zeroed first). */
static int load_key(const opts *o, char **auth)
{
    char key[KEY_MAX];
    const char *env = getenv("ZHIDA_KEY"), *env_file = getenv("ZHIDA_KEY_FILE");
    *auth = NULL;
    if (o->key_file || (!(env && *env) && env_file && *env_file)) {
        int rc = read_key_file(o->key_file ? o->key_file : env_file, key);
        if (rc)
            return rc;
    } else if (env && *env) {
        if (!key_ok(env)) {
            fputs("zhida: ZHIDA_KEY must be printable ASCII without spaces\n", stderr);
            return ZD_EXIT_USAGE;
        }
        snprintf(key, sizeof(key), "%s", env);
    } else {
        return 0;
    }
    size_t n = strlen(key) + 32;
    if (!(*auth = malloc(n)))
        zd_cli_oom();
    snprintf(*auth, n, "Authorization: Bearer %s", key);
    /* The key should not linger on the stack either. */
    memset(key, 0, sizeof(key));
    return 0;
}

/* ---- name tables ------------------------------------------------------------------------ */

static bool is_dir_with(const char *dir, const char *file)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    return access(path, R_OK) == 0;
}

static int is_region_table(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return strncmp(d->d_name, "regions", 7) == 0 && n > 4 && strcmp(d->d_name + n - 4, ".tsv") == 0;
}

static void load_table(zd_names *t, const char *dir, const char *file)
{
    char path[PATH_MAX];
    zd_error e = {0};
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    if (zd_names_load(t, path, &e) < 0)
        fprintf(stderr, "zhida: warning: %s\n", e.message);
}

/* Loads the region and industry name tables from the first data directory that has them:
 * $ZHIDA_DATA_DIR, beside the binary (the build tree's data/, an installed share/zhida),
 * then the configured datadir. A missing table only means codes without names. */
static void load_names(zd_names *regions, zd_names *industries)
{
    char exe[PATH_MAX], beside[2][PATH_MAX + 32];
    const char *dirs[4];
    int n = 0;
    const char *env = getenv("ZHIDA_DATA_DIR");
    if (env && *env)
        dirs[n++] = env;
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(beside[0], sizeof(beside[0]), "%s/../data", exe);
            snprintf(beside[1], sizeof(beside[1]), "%s/../share/zhida", exe);
            dirs[n++] = beside[0];
            dirs[n++] = beside[1];
        }
    }
    dirs[n++] = ZHIDA_DATADIR;
    for (int i = 0; i < n; i++) {
        if (!is_dir_with(dirs[i], "industries.tsv"))
            continue;
        load_table(industries, dirs[i], "industries.tsv");
        struct dirent **list = NULL;
        int k = scandir(dirs[i], &list, is_region_table, alphasort);
        for (int j = 0; j < k; j++) {
            load_table(regions, dirs[i], list[j]->d_name);
            free(list[j]);
        }
        free(list);
        return;
    }
    fprintf(stderr,
            "zhida: warning: no name tables (industries.tsv) in %s%s" ZHIDA_DATADIR
            "; codes are shown without names\n",
            env && *env ? "$ZHIDA_DATA_DIR, " : "", len > 0 ? "../data beside zhida, " : "");
}

/* ---- HTTP ------------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *udata)
{
    zd_buf_append(udata, p, size * n);
    return size * n;
}

/* One synchronous request; body may be NULL. Returns 0 with *status and the answer in resp,
 * or ZD_EXIT_TRANSPORT after printing why there is no answer. */
static int http_call(const zd_cli *c, const char *method, const char *path, const char *body,
                     size_t len, long *status, zd_buf *resp)
{
    CURL *e = curl_easy_init();
    if (!e)
        zd_cli_oom();
    size_t ulen = strlen(c->url) + strlen(path) + 1;
    char *url = malloc(ulen);
    if (!url)
        zd_cli_oom();
    snprintf(url, ulen, "%s%s", c->url, path);
    struct curl_slist *h = NULL;
    if (c->auth)
        h = curl_slist_append(h, c->auth);
    if (body)
        h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT, 300L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "zhida-client/" ZHIDA_VERSION);
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
        ret = ZD_EXIT_TRANSPORT;
    } else {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    }
    curl_slist_free_all(h);
    free(url);
    curl_easy_cleanup(e);
    return ret;
}

typedef void (*render_fn)(const zd_cli *c, FILE *f, const cJSON *ans);

/* Runs one request and prints the answer: a 2xx as JSON or through render (tables) on
 * stdout, anything else on stderr. body[0..len) is borrowed (NULL: none). Returns the exit
 * status. */
static int request(const zd_cli *c, const char *method, const char *path, const char *body,
                   size_t len, render_fn render)
{
    zd_buf resp = {0};
    long status = 0;
    int ret = http_call(c, method, path, body, len, &status, &resp);
    if (ret == 0 && (status < 200 || status >= 300)) {
        char what[512];
        snprintf(what, sizeof(what), "%s %s", method, path);
        ret = zd_cli_http_error(c, what, status, resp.data, resp.len);
    } else if (ret == 0 && resp.len > 0) {
        cJSON *ans = cJSON_ParseWithLength(resp.data, resp.len);
        if (!ans) {
            fprintf(stderr, "zhida: %s %s: HTTP %ld with an answer that is no JSON\n", method, path,
                    status);
            ret = ZD_EXIT_5XX;
        } else if (c->out == ZD_OUT_JSON) {
            zd_out_json(stdout, ans);
        } else {
            render(c, stdout, ans);
        }
        cJSON_Delete(ans);
    }
    zd_buf_free(&resp);
    if (ret == 0 && (fflush(stdout) != 0 || ferror(stdout))) {
        fprintf(stderr, "zhida: cannot write the answer: %s\n", strerror(errno));
        ret = ZD_EXIT_LOCAL;
    }
    return ret;
}

char *zd_cli_escape(const char *s)
{
    char *esc = curl_easy_escape(NULL, s, 0);
    char *copy = esc ? strdup(esc) : NULL;
    curl_free(esc);
    if (!copy)
        zd_cli_oom();
    return copy;
}

int zd_cli_call(const zd_cli *c, const char *method, const char *path, const char *body, size_t len,
                long *status, zd_buf *resp)
{
    return http_call(c, method, path, body, len, status, resp);
}

int zd_cli_request(const zd_cli *c, const char *method, const char *path, const char *body,
                   size_t len, void (*render)(const zd_cli *c, FILE *f, const cJSON *ans))
{
    return request(c, method, path, body, len, render);
}

/* Sends a cJSON body (takes ownership of j). */
static int request_json(const zd_cli *c, const char *method, const char *path, cJSON *j,
                        render_fn render)
{
    char *body = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!body)
        zd_cli_oom();
    int ret = request(c, method, path, body, strlen(body), render);
    free(body);
    return ret;
}

/* "/v1/<collection>/<escaped name>". Caller frees. */
static char *resource_path(const char *collection, const char *name)
{
    char *esc = curl_easy_escape(NULL, name, 0);
    if (!esc)
        zd_cli_oom();
    size_t n = strlen(collection) + strlen(esc) + 8;
    char *p = malloc(n);
    if (!p)
        zd_cli_oom();
    snprintf(p, n, "/v1/%s/%s", collection, esc);
    curl_free(esc);
    return p;
}

/* Reads a whole file ("-" is stdin) into b. Returns 0 or -errno. */
static int read_file(const char *path, zd_buf *b)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        return -errno;
    char tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        zd_buf_append(b, tmp, n);
    int rc = ferror(f) ? -EIO : 0;
    if (f != stdin)
        fclose(f);
    zd_buf_append(b, "", 0);
    return rc;
}

/* A rule argument, or with a leading '@' the contents of that file. Caller frees; NULL after
 * printing why the file cannot be read. */
static char *rule_arg(const char *arg)
{
    if (arg[0] != '@') {
        char *s = strdup(arg);
        if (!s)
            zd_cli_oom();
        return s;
    }
    zd_buf b = {0};
    int rc = read_file(arg + 1, &b);
    if (rc < 0) {
        fprintf(stderr, "zhida: cannot read %s: %s\n", arg + 1, strerror(-rc));
        zd_buf_free(&b);
        return NULL;
    }
    while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
        b.data[--b.len] = '\0';
    return b.data;
}

/* ---- commands --------------------------------------------------------------------------- */

static int cmd_preview(const zd_cli *c, const opts *o, char **args, int nargs)
{
    if (nargs != 1)
        return usage_error("preview: usage: preview RULE [--sample N] [--breakdown F,...] "
                           "[--breakdown-limit N]");
    uint64_t sample = 10;
    if (o->sample && !parse_count(o->sample, ZD_PREVIEW_SAMPLE_MAX, &sample))
        return usage_error("preview: --sample %s: a count 0..%d is expected (the server's limit)",
                           o->sample, ZD_PREVIEW_SAMPLE_MAX);
    /* The upper bound of breakdown_limit is the server's configuration: it checks that. */
    uint64_t limit = 0;
    if (o->breakdown_limit && !parse_count(o->breakdown_limit, INT_MAX, &limit))
        return usage_error("preview: --breakdown-limit %s: a count is expected",
                           o->breakdown_limit);
    char *rule = rule_arg(args[0]);
    if (!rule)
        return ZD_EXIT_USAGE;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "rule", rule);
    cJSON_AddNumberToObject(j, "sample", (double)sample);
    if (o->breakdown_limit)
        cJSON_AddNumberToObject(j, "breakdown_limit", (double)limit);
    if (o->nbreakdown) {
        cJSON *arr = cJSON_AddArrayToObject(j, "breakdown");
        for (int i = 0; i < o->nbreakdown; i++)
            cJSON_AddItemToArray(arr, cJSON_CreateString(o->breakdown[i]));
    }
    free(rule);
    return request_json(c, "POST", "/v1/rules:preview", j, zd_out_preview);
}

static int cmd_explain(const zd_cli *c, char **args, int nargs)
{
    if (nargs != 2)
        return usage_error("explain: usage: explain RULE PROFILE_ID");
    char *rule = rule_arg(args[0]);
    if (!rule)
        return ZD_EXIT_USAGE;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "rule", rule);
    cJSON_AddStringToObject(j, "profile", args[1]);
    free(rule);
    return request_json(c, "POST", "/v1/rules:explain", j, zd_out_explain);
}

static int cmd_segment(const zd_cli *c, char **args, int nargs)
{
    const char *op = nargs > 0 ? args[0] : "";
    bool put = strcmp(op, "put") == 0;
    if (!(put && nargs == 3) &&
        !((strcmp(op, "get") == 0 || strcmp(op, "delete") == 0) && nargs == 2))
        return usage_error("segment: usage: segment put NAME RULE | get NAME | delete NAME");
    char *path = resource_path("segments", args[1]);
    int ret;
    if (put) {
        char *rule = rule_arg(args[2]);
        if (!rule) {
            free(path);
            return ZD_EXIT_USAGE;
        }
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "rule", rule);
        free(rule);
        ret = request_json(c, "PUT", path, j, zd_out_object);
    } else {
        ret = request(c, op[0] == 'g' ? "GET" : "DELETE", path, NULL, 0, zd_out_object);
    }
    free(path);
    return ret;
}

static int cmd_profile(const zd_cli *c, char **args, int nargs)
{
    const char *op = nargs > 0 ? args[0] : "";
    bool put = strcmp(op, "put") == 0;
    if (!(put && nargs == 3) &&
        !((strcmp(op, "get") == 0 || strcmp(op, "delete") == 0) && nargs == 2))
        return usage_error("profile: usage: profile get ID | put ID FILE | delete ID");
    char *path = resource_path("profiles", args[1]);
    int ret;
    if (put) {
        zd_buf body = {0};
        int rc = read_file(args[2], &body);
        if (rc < 0) {
            fprintf(stderr, "zhida: cannot read %s: %s\n", args[2], strerror(-rc));
            ret = ZD_EXIT_USAGE;
        } else {
            ret = request(c, "PUT", path, body.data, body.len, zd_out_object);
        }
        zd_buf_free(&body);
    } else {
        ret = request(c, op[0] == 'g' ? "GET" : "DELETE", path, NULL, 0, zd_out_object);
    }
    free(path);
    return ret;
}

static int cmd_import(const zd_cli *c, const opts *o, char **args, int nargs)
{
    if (nargs > 1)
        return usage_error("import: usage: import [FILE|-] [--chunk-bytes N]");
    uint64_t chunk = ZD_IMPORT_CHUNK_DEFAULT;
    if (o->chunk &&
        (!parse_count(o->chunk, ZD_IMPORT_BODY_DEFAULT_MAX, &chunk) || chunk < ZD_IMPORT_CHUNK_MIN))
        return usage_error("import: --chunk-bytes %s: a byte count %u..%u is expected (the "
                           "server's default import body limit)",
                           o->chunk, ZD_IMPORT_CHUNK_MIN, ZD_IMPORT_BODY_DEFAULT_MAX);
    return zd_import_run(c, nargs ? args[0] : "-", (size_t)chunk);
}

static int cmd_demo_population(const zd_cli *c, const opts *o, int nargs)
{
    const uint64_t max = 1000000000ull;
    uint64_t citizens = 0, enterprises = 0, n = 10000, seed = 1;
    if (nargs)
        return usage_error("demo-population takes no arguments, only options");
    const struct {
        const char *arg, *name;
        uint64_t *out, max;
    } counts[] = {
        {o->citizens, "--citizens", &citizens, max},
        {o->enterprises, "--enterprises", &enterprises, max},
        {o->n, "--n", &n, max},
        {o->seed, "--seed", &seed, UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        if (counts[i].arg && !parse_count(counts[i].arg, counts[i].max, counts[i].out))
            return usage_error("demo-population: %s %s: a count 0..%" PRIu64 " is expected",
                               counts[i].name, counts[i].arg, counts[i].max);
    if (!o->citizens && !o->enterprises) {
        citizens = n * 7 / 10;
        enterprises = n - citizens;
    }
    zd_popgen *g = zd_popgen_new(seed);
    if (!g)
        zd_cli_oom();
    int rc = 0;
    if (c->out == ZD_OUT_JSON) {
        rc = zd_popgen_write(g, citizens, enterprises, stdout);
    } else {
        char line[ZD_POPGEN_LINE_MAX];
        zd_out_population_row(c, stdout, NULL);
        for (uint64_t i = 0; i < citizens + enterprises && rc == 0; i++) {
            zd_popgen_line(g, citizens, enterprises, i, line);
            cJSON *doc = cJSON_Parse(line);
            if (!doc)
                zd_cli_oom();
            zd_out_population_row(c, stdout, doc);
            cJSON_Delete(doc);
            rc = ferror(stdout) ? -EIO : 0;
        }
        if (rc == 0 && fflush(stdout) != 0)
            rc = -EIO;
    }
    zd_popgen_free(g);
    if (rc < 0) {
        fprintf(stderr, "zhida: demo-population: write failed: %s\n", strerror(-rc));
        return ZD_EXIT_LOCAL;
    }
    return 0;
}

static int cmd_dlq(const zd_cli *c, const opts *o, char **args, int nargs)
{
    const char *op = nargs > 0 ? args[0] : "";
    if (strcmp(op, "list") == 0 && nargs == 1)
        return zd_dlq_list(c, o->policy, o->gateway);
    int given = (o->policy != NULL) + (o->gateway != NULL) + (nargs > 1);
    if (strcmp(op, "replay") == 0 && given == 1)
        return zd_dlq_replay(c, o->policy, o->gateway, args + 1, nargs - 1);
    return usage_error("dlq: usage: dlq list [--policy P] [--gateway G] | dlq replay (--policy "
                       "P | --gateway G | NOTICE_ID...)");
}

/* ---- main ------------------------------------------------------------------------------- */

/* Checks that every command option given belongs to cmd. */
static int check_opts(const opts *o, const char *name, command cmd)
{
    for (size_t i = 0; i < sizeof(opt_cmds) / sizeof(opt_cmds[0]); i++)
        if ((o->given & (1ull << (opt_cmds[i].opt - OPT_KEY))) && !(opt_cmds[i].cmds & cmd))
            return usage_error("%s does not take %s", name, opt_cmds[i].name);
    return 0;
}

static int run(const opts *o, command cmd, zd_cli *c)
{
    char **args = o->pos + 1;
    int nargs = o->npos - 1;
    switch (cmd) {
    case CMD_PREVIEW:
        return cmd_preview(c, o, args, nargs);
    case CMD_EXPLAIN:
        return cmd_explain(c, args, nargs);
    case CMD_SEGMENT:
        return cmd_segment(c, args, nargs);
    case CMD_PROFILE:
        return cmd_profile(c, args, nargs);
    case CMD_IMPORT:
        return cmd_import(c, o, args, nargs);
    case CMD_DEMO:
        return cmd_demo_population(c, o, nargs);
    case CMD_PUBLISH:
        if (nargs != 1)
            return usage_error("publish: usage: publish FILE|-");
        return zd_policy_publish(c, args[0]);
    case CMD_STATUS:
    case CMD_WITHDRAW:
        if (nargs != 1)
            return usage_error("%s: usage: %s ID", o->pos[0], o->pos[0]);
        return cmd == CMD_STATUS ? zd_policy_status(c, args[0]) : zd_policy_withdraw(c, args[0]);
    case CMD_DLQ:
        return cmd_dlq(c, o, args, nargs);
    }
    return ZD_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    opts o = {0};
    int ret = parse_args(argc, argv, &o);
    if (ret)
        goto done;
    if (o.help) {
        usage(stdout);
        goto done;
    }
    if (o.version) {
        printf("zhida " ZHIDA_VERSION "\n");
        goto done;
    }
    if (o.npos == 0) {
        ret = usage_error("a command is missing: preview, explain, segment, profile, import or "
                          "demo-population");
        goto done;
    }
    command cmd = 0;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(o.pos[0], commands[i].name) == 0)
            cmd = commands[i].cmd;
    if (!cmd) {
        ret = usage_error("unknown command %s", o.pos[0]);
        goto done;
    }
    if ((ret = check_opts(&o, o.pos[0], cmd)))
        goto done;

    zd_cli c = {0};
    if (!o.output)
        /* demo-population writes data, not an answer: NDJSON unless a table is asked for. */
        c.out = cmd == CMD_DEMO || !isatty(STDOUT_FILENO) ? ZD_OUT_JSON : ZD_OUT_TABLE;
    else if (strcmp(o.output, "json") == 0)
        c.out = ZD_OUT_JSON;
    else if (strcmp(o.output, "table") == 0)
        c.out = ZD_OUT_TABLE;
    else {
        ret = usage_error("--output %s: json or table is expected", o.output);
        goto done;
    }

    const char *url = o.url ? o.url : getenv("ZHIDA_URL");
    char *base = strdup(url && *url ? url : DEFAULT_URL), *auth = NULL;
    if (!base)
        zd_cli_oom();
    for (size_t n = strlen(base); n && base[n - 1] == '/'; n--)
        base[n - 1] = '\0';
    c.url = base;
    zd_names *regions = NULL, *industries = NULL;
    if (cmd != CMD_DEMO && (ret = load_key(&o, &auth)))
        goto out;
    c.auth = auth;
    if (c.out == ZD_OUT_TABLE) {
        if (!(regions = zd_names_new()) || !(industries = zd_names_new()))
            zd_cli_oom();
        load_names(regions, industries);
        c.regions = regions;
        c.industries = industries;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    ret = run(&o, cmd, &c);
    curl_global_cleanup();
out:
    if (auth) {
        /* The key should not linger in freed heap memory either. */
        memset(auth, 0, strlen(auth));
        free(auth);
    }
    zd_names_free(regions);
    zd_names_free(industries);
    free(base);
done:
    opts_free(&o);
    return ret;
}
