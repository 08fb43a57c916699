/* Incremental request-head and chunked-body framing, mirroring evhttp 2.1's own reading (its
 * evhttp_parse_request_line, evhttp_parse_headers_ and evhttp_handle_chunked_read) so that the
 * server's early checks and evhttp agree on every byte. */
#include "zhidad/http_head.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ABSENT ((size_t)-1)

/* Offsets into buf while it may still move; turned into pointers once the head is done. */
typedef struct head_fields {
    size_t method, target, authorization, content_length, transfer_encoding, request_id,
        traceparent, cookie, csrf;
} head_fields;

void zd_head_init(zd_head *hd, size_t max)
{
    memset(hd, 0, sizeof(*hd));
    hd->max = max;
    zd_head_reset(hd);
}

void zd_head_reset(zd_head *hd)
{
    hd->len = hd->scan = hd->line_start = 0;
    hd->lines = 0;
    hd->status = ZD_HEAD_MORE;
    hd->method = hd->target = hd->authorization = hd->request_id = hd->traceparent = NULL;
    hd->cookie = hd->csrf = NULL;
    hd->content_length = -1;
    hd->chunked = false;
    hd->error[0] = '\0';
}

void zd_head_free(zd_head *hd)
{
    free(hd->buf);
    hd->buf = NULL;
    hd->cap = 0;
    zd_head_reset(hd);
}

static zd_head_status bad(zd_head *hd, const char *msg)
{
    snprintf(hd->error, sizeof(hd->error), "%s", msg);
    return hd->status = ZD_HEAD_BAD;
}

/* The fields found so far live in the buffer itself, after the head's bytes: the buffer is
 * sized max + 1 + sizeof(head_fields) so that they never move separately. */
static head_fields *fields(zd_head *hd)
{
    return (head_fields *)(void *)(hd->buf + hd->cap - sizeof(head_fields));
}

static int reserve(zd_head *hd)
{
    if (hd->buf)
        return 0;
    /* One allocation of the largest size a head may reach: heads are small (header_max, 16 KiB
     * by default) and a buffer that never moves keeps the parsing simple. */
    size_t cap = hd->max + 1 + sizeof(head_fields);
    cap = (cap + _Alignof(head_fields) - 1) / _Alignof(head_fields) * _Alignof(head_fields);
    hd->buf = malloc(cap);
    if (!hd->buf)
        return -ENOMEM;
    hd->cap = cap;
    return 0;
}

static bool is_lws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The request line, as evhttp_parse_request_line reads it: trailing spaces dropped, the method
 * up to the first space, the version after the last one, the target in between. */
static zd_head_status request_line(zd_head *hd, char *line, size_t len)
{
    head_fields *f = fields(hd);
    while (len && line[len - 1] == ' ')
        line[--len] = '\0';
    if (len < sizeof("GET / HTTP/1.0") - 1)
        return bad(hd, "the request line is malformed");
    char *sp = strchr(line, ' ');
    char *last = strrchr(line, ' ');
    if (!sp || last == sp)
        return bad(hd, "the request line is malformed");
    *sp = '\0';
    *last = '\0';
    int major, minor;
    char extra;
    if (sscanf(last + 1, "HTTP/%d.%d%c", &major, &minor, &extra) != 2 || major > 1)
        return bad(hd, "the request line is malformed: unknown HTTP version");
    f->method = (size_t)(line - hd->buf);
    f->target = (size_t)(sp + 1 - hd->buf);
    return ZD_HEAD_MORE;
}

/* One header field line, as evhttp_parse_headers_ reads it. Only the fields that decide a
 * request's route, key and body are kept. */
static zd_head_status header_line(zd_head *hd, char *line)
{
    head_fields *f = fields(hd);
    if (line[0] == ' ' || line[0] == '\t')
        return bad(hd, "folded header lines are not supported");
    char *colon = strchr(line, ':');
    if (!colon)
        return bad(hd, "a header line has no colon");
    *colon = '\0';
    char *value = colon + 1;
    value += strspn(value, " ");
    size_t vlen = strlen(value);
    while (vlen && is_lws(value[vlen - 1]))
        value[--vlen] = '\0';
    if (strchr(line, '\r') || strchr(value, '\r'))
        return bad(hd, "a header line holds a carriage return");
    size_t off = (size_t)(value - hd->buf);
    if (strcasecmp(line, "Authorization") == 0) {
        if (f->authorization == ABSENT)
            f->authorization = off;
    } else if (strcasecmp(line, "Content-Length") == 0) {
        if (f->content_length == ABSENT)
            f->content_length = off;
        else if (strcmp(hd->buf + f->content_length, value) != 0)
            return bad(hd, "conflicting Content-Length headers");
    } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
        if (f->transfer_encoding == ABSENT)
            f->transfer_encoding = off;
    } else if (strcasecmp(line, "X-Request-Id") == 0) {
        /* For the request id of an answer given from the head (zhidad/request_id.h). */
        if (f->request_id == ABSENT)
            f->request_id = off;
    } else if (strcasecmp(line, "traceparent") == 0) {
        if (f->traceparent == ABSENT)
            f->traceparent = off;
    } else if (strcasecmp(line, "Cookie") == 0) {
        /* A console session stands for a key (zhidad/session.h), with its CSRF token. */
        if (f->cookie == ABSENT)
            f->cookie = off;
    } else if (strcasecmp(line, "X-CSRF-Token") == 0) {
        if (f->csrf == ABSENT)
            f->csrf = off;
    }
    return ZD_HEAD_MORE;
}

static zd_head_status finish(zd_head *hd)
{
    head_fields *f = fields(hd);
    hd->method = hd->buf + f->method;
    hd->target = hd->buf + f->target;
    hd->authorization = f->authorization == ABSENT ? NULL : hd->buf + f->authorization;
    hd->request_id = f->request_id == ABSENT ? NULL : hd->buf + f->request_id;
    hd->traceparent = f->traceparent == ABSENT ? NULL : hd->buf + f->traceparent;
    hd->cookie = f->cookie == ABSENT ? NULL : hd->buf + f->cookie;
    hd->csrf = f->csrf == ABSENT ? NULL : hd->buf + f->csrf;
    if (f->transfer_encoding != ABSENT) {
        if (strcasecmp(hd->buf + f->transfer_encoding, "chunked") != 0)
            return bad(hd, "Transfer-Encoding other than chunked is not supported");
        hd->chunked = true;
    }
    if (f->content_length != ABSENT) {
        const char *v = hd->buf + f->content_length;
        char *end;
        long long n = strtoll(v, &end, 10);
        if (!*v || *end || n < 0)
            return bad(hd, "the Content-Length header is not a number");
        hd->content_length = n; /* saturated at LLONG_MAX: too large for any limit anyway */
    }
    return hd->status = ZD_HEAD_DONE;
}

zd_head_status zd_head_feed(zd_head *hd, const char *p, size_t n, size_t *used)
{
    size_t i = 0;
    if (hd->status != ZD_HEAD_MORE || n == 0)
        goto out;
    if (reserve(hd) != 0) {
        hd->status = ZD_HEAD_TOO_LARGE;
        goto out;
    }
    if (hd->len == 0) {
        head_fields *f = fields(hd);
        *f = (head_fields){ABSENT, ABSENT, ABSENT, ABSENT, ABSENT, ABSENT, ABSENT, ABSENT, ABSENT};
    }
    while (i < n && hd->status == ZD_HEAD_MORE) {
        /* Only the bytes that fit are looked at, so that where the input was split does not
         * change the outcome. */
        size_t room = hd->max - hd->len;
        size_t avail = n - i < room ? n - i : room;
        const char *nl = memchr(p + i, '\n', avail);
        size_t take = nl ? (size_t)(nl - (p + i)) + 1 : avail;
        if (memchr(p + i, '\0', take)) {
            bad(hd, "the request head holds a NUL byte");
            break;
        }
        if (!nl && n - i > room) {
            hd->status = ZD_HEAD_TOO_LARGE;
            break;
        }
        memcpy(hd->buf + hd->len, p + i, take);
        hd->len += take;
        i += take;
        if (!nl)
            break;
        /* A line ends at "\n", with an optional "\r" before it (EVBUFFER_EOL_CRLF). */
        char *line = hd->buf + hd->line_start;
        size_t llen = hd->len - 1 - hd->line_start;
        if (llen && line[llen - 1] == '\r')
            llen--;
        line[llen] = '\0';
        hd->line_start = hd->len;
        if (hd->lines++ == 0)
            request_line(hd, line, llen);
        else if (llen == 0)
            finish(hd);
        else
            header_line(hd, line);
    }
out:
    *used = i;
    return hd->status;
}

/* ---- chunked bodies ------------------------------------------------------------------------ */

enum { CH_SIZE, CH_DATA, CH_TRAILER, CH_DONE };

void zd_chunked_init(zd_chunked *c, uint64_t max_body, size_t max_trailer)
{
    memset(c, 0, sizeof(*c));
    c->state = CH_SIZE;
    c->max_body = max_body;
    c->max_trailer = max_trailer;
    c->status = ZD_CHUNKED_MORE;
}

/* A complete size line (without its "\n"), as evhttp_handle_chunked_read reads it. */
static void size_line(zd_chunked *c)
{
    size_t len = c->line_len;
    if (len && c->line[len - 1] == '\r')
        len--;
    c->line[len] = '\0';
    c->line_len = 0;
    if (len == 0)
        return; /* the line end after a chunk's data */
    char *end;
    long long n = strtoll(c->line, &end, 16);
    if ((*end != '\0' && *end != ' ') || n < 0) {
        c->status = ZD_CHUNKED_BAD;
        return;
    }
    if ((uint64_t)n > c->max_body - c->total) {
        c->status = ZD_CHUNKED_TOO_LARGE;
        return;
    }
    c->total += (uint64_t)n;
    if (n == 0) {
        c->state = CH_TRAILER;
        c->line_empty = true;
    } else {
        c->left = (uint64_t)n;
        c->state = CH_DATA;
    }
}

zd_chunked_status zd_chunked_feed(zd_chunked *c, const char *p, size_t n, size_t *used)
{
    size_t i = 0;
    while (i < n && c->status == ZD_CHUNKED_MORE && c->state != CH_DONE) {
        if (c->state == CH_SIZE) {
            const char *nl = memchr(p + i, '\n', n - i);
            size_t take = nl ? (size_t)(nl - (p + i)) : n - i;
            if (c->line_len + take >= sizeof(c->line)) {
                c->status = ZD_CHUNKED_BAD;
                break;
            }
            memcpy(c->line + c->line_len, p + i, take);
            c->line_len += take;
            i += take;
            if (nl) {
                i++;
                size_line(c);
            }
        } else if (c->state == CH_DATA) {
            uint64_t take = n - i < c->left ? n - i : c->left;
            i += (size_t)take;
            c->left -= take;
            if (c->left == 0)
                c->state = CH_SIZE;
        } else {
            /* The trailer: header lines up to an empty one ("\n" or "\r\n"). */
            char ch = p[i++];
            if (++c->trailer > c->max_trailer) {
                c->status = ZD_CHUNKED_BAD;
                break;
            }
            if (ch == '\n') {
                if (c->line_empty) {
                    c->state = CH_DONE;
                    c->status = ZD_CHUNKED_DONE;
                }
                c->line_empty = true;
                c->line_len = 0;
            } else {
                /* A lone "\r" before the "\n" still leaves the line empty. */
                c->line_len++;
                c->line_empty = c->line_len == 1 && ch == '\r';
            }
        }
    }
    *used = i;
    return c->status;
}
