/* Incremental parsers for the framing of an HTTP/1.1 request as its bytes arrive: the head
 * (request line and header fields) and a chunked body. The HTTP server uses them to decide a
 * request's route, key and size from its headers, before evhttp reads any body, and to cut a
 * chunked body at the route's limit. They read exactly what evhttp 2.1 reads, so that both
 * agree where a request ends. Plain C: no libevent, so they can be unit-tested and fuzzed. */
#ifndef ZD_HTTP_HEAD_H
#define ZD_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum zd_head_status {
    ZD_HEAD_MORE,      /* the head is not complete yet: feed more */
    ZD_HEAD_DONE,      /* complete: the fields below are set */
    ZD_HEAD_BAD,       /* malformed: error says how (400) */
    ZD_HEAD_TOO_LARGE, /* longer than max bytes without its end (431) */
} zd_head_status;

typedef struct zd_head {
    size_t max; /* longest head accepted, its line ends included */
    char *buf;  /* the head's bytes, NUL-terminated per line once parsed */
    size_t len, cap;
    size_t scan;       /* where the search for the next line end resumes */
    size_t line_start; /* start of the line being read */
    int lines;
    zd_head_status status;
    /* Valid after ZD_HEAD_DONE, pointing into buf (the first of repeated fields): */
    const char *method, *target;
    const char *authorization; /* NULL when absent */
    const char *request_id;    /* X-Request-Id, NULL when absent */
    const char *traceparent;   /* NULL when absent */
    const char *cookie;        /* Cookie, NULL when absent */
    const char *csrf;          /* X-CSRF-Token, NULL when absent */
    long long content_length;  /* -1 when absent */
    bool chunked;              /* Transfer-Encoding: chunked */
    char error[128];           /* set with ZD_HEAD_BAD; names no header value */
} zd_head;

/* Prepares hd for heads of at most max bytes. Allocates nothing yet. */
void zd_head_init(zd_head *hd, size_t max);
/* Forgets the head (for the next request); keeps the buffer for reuse. */
void zd_head_reset(zd_head *hd);
/* Frees the buffer. The struct itself is the caller's. */
void zd_head_free(zd_head *hd);

/* Feeds the next n bytes of the connection. Sets *used to how many belong to the head: after
 * ZD_HEAD_DONE the rest are the body (or the next request). Once DONE, BAD or TOO_LARGE, the
 * status stays until zd_head_reset(). -ENOMEM is reported as ZD_HEAD_TOO_LARGE. */
zd_head_status zd_head_feed(zd_head *hd, const char *p, size_t n, size_t *used);

typedef enum zd_chunked_status {
    ZD_CHUNKED_MORE,      /* inside the body */
    ZD_CHUNKED_DONE,      /* the last chunk and the trailer were read */
    ZD_CHUNKED_BAD,       /* malformed size line or trailer (400) */
    ZD_CHUNKED_TOO_LARGE, /* a chunk size takes the body past max_body (413) */
} zd_chunked_status;

typedef struct zd_chunked {
    int state;
    uint64_t max_body, total, left;
    size_t max_trailer, trailer;
    char line[64]; /* the chunk size line being read */
    size_t line_len;
    bool line_empty; /* trailer: the current line has no bytes yet */
    zd_chunked_status status;
} zd_chunked;

/* Prepares c for a body of at most max_body bytes and a trailer of at most max_trailer. */
void zd_chunked_init(zd_chunked *c, uint64_t max_body, size_t max_trailer);
/* Feeds the next n bytes of the body. *used: how many belong to it (the rest, after DONE, to
 * the next request). The status sticks once it is not ZD_CHUNKED_MORE. */
zd_chunked_status zd_chunked_feed(zd_chunked *c, const char *p, size_t n, size_t *used);

#endif
