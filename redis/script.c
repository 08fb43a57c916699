/* EVALSHA with a NOSCRIPT fallback (redis/script.h). */
#include "redis/script.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

void zd_script_sha1(const char *text, size_t len, char out[41])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)text, len, md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[40] = '\0';
}

/* Scripts are static strings, few and fixed: a small table keyed by address. Single-threaded
 * (everything runs on the loop). */
#define SHA_CACHE 64
static struct {
    const char *text;
    char sha[41];
} cache[SHA_CACHE];
static int ncache;

static const char *sha_of(const char *text, size_t len, char buf[41])
{
    for (int i = 0; i < ncache; i++) {
        if (cache[i].text == text)
            return cache[i].sha;
    }
    if (ncache < SHA_CACHE) {
        cache[ncache].text = text;
        zd_script_sha1(text, len, cache[ncache].sha);
        return cache[ncache++].sha;
    }
    zd_script_sha1(text, len, buf);
    return buf;
}

/* One call in flight: a copy of its arguments (one block) for the NOSCRIPT retry. */
typedef struct eval_call {
    zd_redis_cb cb;
    void *udata;
    bool retried;
    int argc;
    const char **argv;
    size_t *argvlen;
    const char *text;
    size_t text_len;
} eval_call;

static void eval_done(zd_redis *r, int status, const zd_reply *reply, void *udata)
{
    eval_call *c = udata;
    const char *s =
        status == 0 && zd_reply_is(reply, ZD_REPLY_ERROR) ? zd_reply_str(reply, NULL) : NULL;
    if (s && !c->retried && strncmp(s, "NOSCRIPT", 8) == 0) {
        c->retried = true;
        c->argv[0] = "EVAL";
        c->argv[1] = c->text;
        c->argvlen[0] = 4;
        c->argvlen[1] = c->text_len;
        if (zd_redis_cmdargv(r, eval_done, c, c->argc, c->argv, c->argvlen) == 0)
            return;
        /* Could not queue the retry: answer with the NOSCRIPT error itself. */
    }
    c->cb(r, status, reply, c->udata);
    free(c);
}

int zd_redis_eval(zd_redis *r, zd_redis_cb cb, void *udata, int argc, const char **argv,
                  const size_t *argvlen)
{
    if (argc < 3)
        return -EINVAL;
    size_t total = 0;
    for (int i = 2; i < argc; i++)
        total += argvlen ? argvlen[i] : strlen(argv[i]);
    /* The struct, the pointer and length vectors, then the argument bytes. */
    size_t head = sizeof(eval_call) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
    eval_call *c = malloc(head + total + (size_t)argc + 41);
    if (!c)
        return -ENOMEM;
    *c = (eval_call){.cb = cb, .udata = udata, .argc = argc, .text = argv[1]};
    c->argv = (const char **)(c + 1);
    c->argvlen = (size_t *)(c->argv + argc);
    char *p = (char *)(c->argvlen + argc);
    c->text_len = argvlen ? argvlen[1] : strlen(argv[1]);
    char shabuf[41];
    c->argv[0] = "EVALSHA";
    c->argvlen[0] = 7;
    c->argv[1] = sha_of(argv[1], c->text_len, shabuf);
    c->argvlen[1] = 40;
    if (c->argv[1] == shabuf) {
        /* Not cached (table full): keep a copy in the block. */
        memcpy(p, shabuf, 41);
        c->argv[1] = p;
        p += 41;
    }
    for (int i = 2; i < argc; i++) {
        size_t n = argvlen ? argvlen[i] : strlen(argv[i]);
        memcpy(p, argv[i], n);
        p[n] = '\0';
        c->argv[i] = p;
        c->argvlen[i] = n;
        p += n + 1;
    }
    int rc = zd_redis_cmdargv(r, eval_done, c, argc, c->argv, c->argvlen);
    if (rc != 0)
        free(c);
    return rc;
}
