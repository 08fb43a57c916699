/* zhida's Redis client: the one adapter of hiredis 0.14 async on libevent, plus what 0.14
 * lacks — per-command deadlines, a bounded queue that holds commands while disconnected,
 * reconnects with back-off, AUTH, and the guarantee that every callback runs exactly once.
 * Callers see replies through the opaque zd_reply and its accessors, never hiredis types. */
#ifndef ZD_REDIS_H
#define ZD_REDIS_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;

typedef struct zd_redis zd_redis;

/* A reply, valid only during the callback that receives it (and its elements with it). */
typedef struct zd_reply zd_reply;

typedef enum zd_reply_type {
    ZD_REPLY_STRING,
    ZD_REPLY_ARRAY,
    ZD_REPLY_INTEGER,
    ZD_REPLY_NIL,
    ZD_REPLY_STATUS,
    ZD_REPLY_ERROR,
} zd_reply_type;

zd_reply_type zd_reply_kind(const zd_reply *r);
bool zd_reply_is(const zd_reply *r, zd_reply_type t);
/* The bytes of a string, status or error reply (NUL-terminated; len may be NULL), else NULL. */
const char *zd_reply_str(const zd_reply *r, size_t *len);
/* An integer reply's value, else 0. */
long long zd_reply_int(const zd_reply *r);
/* The number of elements of an array reply, else 0. */
size_t zd_reply_len(const zd_reply *r);
/* Element i of an array reply (borrowed), or NULL when r is not an array or i is out of range. */
const zd_reply *zd_reply_at(const zd_reply *r, size_t i);
/* True when a string, status or error reply holds exactly the text s. */
bool zd_reply_eq(const zd_reply *r, const char *s);

/* Options; a 0 number takes the default in brackets. All strings are copied. */
typedef struct zd_redis_opts {
    const char *addr;          /* "IP:PORT" or "unix:/path" [127.0.0.1:6379] */
    const char *password;      /* NULL: no AUTH */
    const char *name;          /* CLIENT SETNAME zhidad-<name> and log prefix; NULL: "main" */
    int deadline_ms;           /* per command: the longest wait in the queue, and then the longest
                                  wait for the reply once handed to hiredis [5000] */
    int max_inflight;          /* commands handed to hiredis at once [1024] ... */
    size_t max_inflight_bytes; /* ... and their formatted bytes at once [4 MiB]; one command
                                  larger than this is sent alone */
    int queue_max;             /* commands waiting behind them [100000] */
    int reconnect_min_ms;      /* back-off after the first failure [100] ... */
    int reconnect_max_ms;      /* ... doubling up to this, with jitter [5000] */
} zd_redis_opts;

/* status: 0 with a reply, or -ETIMEDOUT (deadline_ms passed while it was queued, or after it
 * was sent: then the connection is taken as stalled and reopened), -ECONNRESET (connection lost
 * while in flight: the command may or may not have run), -EAGAIN (queue full), -ECANCELED (client
 * freed). reply is valid only during the callback and NULL when status != 0; never free it.
 * A Redis error reply is status 0 with a reply of type ZD_REPLY_ERROR.
 * Called exactly once per accepted command, always from the event loop, never from inside
 * the zd_redis_cmd* call that submitted it. */
typedef void (*zd_redis_cb)(zd_redis *r, int status, const zd_reply *reply, void *udata);

/* Creates a client and starts connecting (asynchronously). base and o are borrowed.
 * Returns NULL on a bad address or ENOMEM. Caller frees with zd_redis_free(). */
zd_redis *zd_redis_new(struct event_base *base, const zd_redis_opts *o);

/* Submits a command (hiredis format: %s, %b, %d...). It is formatted now and sent in order
 * when the connection allows. Returns 0: cb will be called exactly once. Returns -EINVAL (the
 * command could not be formatted), -ENOMEM, or -ECANCELED (the client is being freed): cb will
 * not be called. */
int zd_redis_cmd(zd_redis *r, zd_redis_cb cb, void *udata, const char *fmt, ...);
/* The same with an argument vector (argv and argvlen borrowed; argvlen NULL: strlen). */
int zd_redis_cmdargv(zd_redis *r, zd_redis_cb cb, void *udata, int argc, const char **argv,
                     const size_t *argvlen);
/* Like zd_redis_cmdargv with a deadline of its own (deadline_ms > 0), for XREAD BLOCK. Note a
 * long-blocking command delays every command behind it on the same connection: give it a
 * client of its own. */
int zd_redis_cmdargv_deadline(zd_redis *r, int deadline_ms, zd_redis_cb cb, void *udata, int argc,
                              const char **argv, const size_t *argvlen);

/* fn(r, udata) is called after every successful (re)connect, once AUTH has passed, before
 * queued commands are sent. Replaces a previous handler; fn NULL removes it. */
void zd_redis_on_connect(zd_redis *r, void (*fn)(zd_redis *r, void *udata), void *udata);

/* Connected and authenticated. */
bool zd_redis_ready(const zd_redis *r);

/* Fails every queued and in-flight command with -ECANCELED (their callbacks run inside this
 * call), closes the connection and frees r. Called from inside one of r's callbacks, the
 * cancelling and freeing happen right after that callback returns. zd_redis_free(NULL) is a
 * no-op. */
void zd_redis_free(zd_redis *r);

/* The server version in the text of an INFO (or INFO server) reply: reads the
 * "redis_version:MAJOR.MINOR.PATCH" line. Returns 0, or -EINVAL when there is none. */
int zd_redis_info_version(const char *info, size_t len, int *major, int *minor, int *patch);

/* For metrics. inflight, inflight_bytes and queued are current; the rest count since
 * zd_redis_new():
 * reconnects = successful connects after the first, timeouts = commands failed -ETIMEDOUT,
 * errors = Redis error replies plus commands failed -ECONNRESET or -EAGAIN. */
typedef struct zd_redis_stats {
    long inflight, inflight_bytes, queued, reconnects, timeouts, errors;
} zd_redis_stats;
void zd_redis_get_stats(const zd_redis *r, zd_redis_stats *st);

#endif
