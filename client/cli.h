/* What the parts of the zhida command-line client share: exit statuses, the invocation
 * context (server, key, output mode, name tables), a growable buffer and error reports. */
#ifndef ZD_CLI_H
#define ZD_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common/names.h"

/* meson passes the project version; a build without it still says what it is. */
#ifndef ZHIDA_VERSION
#define ZHIDA_VERSION "unknown"
/* One synchronous request (client/zhida.c): 0 with *status and the answer appended to resp, or
 * ZD_EXIT_TRANSPORT after printing why there is none. body may be NULL. */
int zd_cli_call(const zd_cli *c, const char *method, const char *path, const char *body, size_t len,
                long *status, zd_buf *resp);
/* One request whose answer is printed: a 2xx as JSON, or through render for tables, on stdout;
 * anything else on stderr. Returns the exit status. */
/* s percent-encoded for a URL path segment or query value (client/zhida.c). Caller frees with
 * free(); exits with ZD_EXIT_LOCAL when memory runs out. */
char *zd_cli_escape(const char *s);
typedef struct cJSON cJSON;
int zd_cli_request(const zd_cli *c, const char *method, const char *path, const char *body,
                   size_t len, void (*render)(const zd_cli *c, FILE *f, const cJSON *ans));

#endif

/* Exit statuses (documented in `zhida --help` and docs/CLI.md). */
enum {
    ZD_EXIT_OK = 0,
    ZD_EXIT_PARTIAL = 1,   /* import: some lines failed, all others were imported */
    ZD_EXIT_USAGE = 2,     /* bad command line, a value beyond the server's limits, a named
                              file (input, key) that cannot be read */
    ZD_EXIT_4XX = 3,       /* the server refused the request (4xx) */
    ZD_EXIT_5XX = 4,       /* the server failed (5xx) or answered something unintelligible */
    ZD_EXIT_TRANSPORT = 5, /* no answer: connection refused, timeout, DNS, TLS */
    ZD_EXIT_LOCAL = 6,     /* the output could not be written, out of memory */
};

typedef enum zd_out_mode { ZD_OUT_TABLE, ZD_OUT_JSON } zd_out_mode;

/* One invocation. All pointers are borrowed from main(), which frees them at exit. */
typedef struct zd_cli {
    const char *url;                      /* base URL without a trailing slash */
    const char *auth;                     /* "Authorization: Bearer ..." or NULL; never printed */
    zd_out_mode out;                      /* what stdout gets */
    const zd_names *regions, *industries; /* loaded for table output only; may be NULL */
} zd_cli;

typedef struct zd_buf {
    char *data; /* NUL-terminated once anything was appended */
    size_t len, cap;
} zd_buf;

/* Appends n bytes (exits with ZD_EXIT_LOCAL when memory runs out). */
void zd_buf_append(zd_buf *b, const void *p, size_t n);
/* Frees the data and empties b. */
void zd_buf_free(zd_buf *b);

/* Prints "zhida: out of memory" and exits with ZD_EXIT_LOCAL. */
_Noreturn void zd_cli_oom(void);

/* The exit status for an HTTP status that is not 2xx. */
int zd_cli_exit_for_status(long status);

/* Reports a non-2xx answer on stderr and returns its exit status. With JSON output stderr
 * gets the server's error document pretty-printed, with "status": the HTTP status added;
 * otherwise one line
 * "zhida: WHAT: HTTP 400 code: message (field ..., line 1, column 7)". what names the
 * request ("POST /v1/rules:preview"); body[0..len) is the answer, borrowed. */
int zd_cli_http_error(const zd_cli *c, const char *what, long status, const char *body, size_t len);

/* One synchronous request (client/zhida.c): 0 with *status and the answer appended to resp, or
 * ZD_EXIT_TRANSPORT after printing why there is none. body may be NULL. */
int zd_cli_call(const zd_cli *c, const char *method, const char *path, const char *body, size_t len,
                long *status, zd_buf *resp);
/* One request whose answer is printed: a 2xx as JSON, or through render for tables, on stdout;
 * anything else on stderr. Returns the exit status. */
/* s percent-encoded for a URL path segment or query value (client/zhida.c). Caller frees with
 * free(); exits with ZD_EXIT_LOCAL when memory runs out. */
char *zd_cli_escape(const char *s);
typedef struct cJSON cJSON;
int zd_cli_request(const zd_cli *c, const char *method, const char *path, const char *body,
                   size_t len, void (*render)(const zd_cli *c, FILE *f, const cJSON *ans));

#endif
