/* Console sign-in sessions in memory: random ids, CSRF tokens, idle and absolute expiry. */
#include "zhidad/session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct zd_sessions {
    zd_session *v;
    int n, max;
    int64_t idle_ns, max_ns;
    int idle_s, max_s;
};

zd_sessions *zd_sessions_new(int max, int idle_s, int max_s)
{
    zd_sessions *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->v = calloc((size_t)(max > 0 ? max : 1), sizeof(zd_session));
    if (!s->v) {
        free(s);
        return NULL;
    }
    s->max = max > 0 ? max : 1;
    s->idle_s = idle_s;
    s->max_s = max_s;
    s->idle_ns = (int64_t)idle_s * 1000000000LL;
    s->max_ns = (int64_t)max_s * 1000000000LL;
    return s;
}

void zd_sessions_free(zd_sessions *s)
{
    if (!s)
        return;
    explicit_bzero(s->v, (size_t)s->max * sizeof(zd_session));
    free(s->v);
    free(s);
}

static void remove_at(zd_sessions *s, int i)
{
    /* The last entry takes the slot; the vacated one is wiped so no id lingers in memory. */
    s->v[i] = s->v[s->n - 1];
    explicit_bzero(&s->v[s->n - 1], sizeof(zd_session));
    s->n--;
}

static bool expired(const zd_sessions *s, const zd_session *x, int64_t now_ns)
{
    return now_ns - x->used_ns >= s->idle_ns || now_ns - x->created_ns >= s->max_ns;
}

static int random_hex(char *out, size_t nbytes)
{
    unsigned char b[64];
    if (nbytes > sizeof(b))
        return -EINVAL;
    size_t got = 0;
    while (got < nbytes) {
        ssize_t r = getrandom(b + got, nbytes - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -EIO;
        got += (size_t)r;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * nbytes] = '\0';
    explicit_bzero(b, sizeof(b));
    return 0;
}

const zd_session *zd_sessions_create(zd_sessions *s, const char *key_name, int64_t now_ns,
                                     int64_t now_unix_ms, int *err)
{
    for (int i = s->n - 1; i >= 0; i--) {
        if (expired(s, &s->v[i], now_ns))
            remove_at(s, i);
    }
    if (s->n == s->max) {
        int lru = 0;
        for (int i = 1; i < s->n; i++) {
            if (s->v[i].used_ns < s->v[lru].used_ns)
                lru = i;
        }
        remove_at(s, lru);
    }
    zd_session *x = &s->v[s->n];
    memset(x, 0, sizeof(*x));
    int rc = random_hex(x->id, ZD_SESSION_ID_LEN / 2);
    if (rc == 0)
        rc = random_hex(x->csrf, ZD_SESSION_ID_LEN / 2);
    if (rc != 0) {
        explicit_bzero(x, sizeof(*x));
        *err = rc;
        return NULL;
    }
    snprintf(x->key_name, sizeof(x->key_name), "%s", key_name);
    x->created_ns = x->used_ns = now_ns;
    x->created_unix_ms = now_unix_ms;
    s->n++;
    *err = 0;
    return x;
}

bool zd_session_token_eq(const char *a, const char *b)
{
    if (!a || !b)
        return false;
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb)
        return false;
    unsigned char d = 0;
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

const zd_session *zd_sessions_find(zd_sessions *s, const char *id, size_t len, int64_t now_ns,
                                   bool touch)
{
    if (len != ZD_SESSION_ID_LEN)
        return NULL;
    /* Every entry is compared over its whole length, so the time taken tells nothing about
     * how much of an id matched. */
    int found = -1;
    for (int i = 0; i < s->n; i++) {
        unsigned char d = 0;
        for (size_t k = 0; k < ZD_SESSION_ID_LEN; k++)
            d |= (unsigned char)(s->v[i].id[k] ^ id[k]);
        if (d == 0)
            found = i;
    }
    if (found < 0)
        return NULL;
    if (expired(s, &s->v[found], now_ns)) {
        remove_at(s, found);
        return NULL;
    }
    if (touch)
        s->v[found].used_ns = now_ns;
    return &s->v[found];
}

bool zd_sessions_end(zd_sessions *s, const char *id)
{
    for (int i = 0; i < s->n; i++) {
        if (strcmp(s->v[i].id, id) == 0) {
            remove_at(s, i);
            return true;
        }
    }
    return false;
}

int zd_sessions_end_key(zd_sessions *s, const char *key_name)
{
    int ended = 0;
    for (int i = s->n - 1; i >= 0; i--) {
        if (strcmp(s->v[i].key_name, key_name) == 0) {
            remove_at(s, i);
            ended++;
        }
    }
    return ended;
}

int zd_sessions_count(const zd_sessions *s)
{
    return s->n;
}

int64_t zd_session_expires_unix_ms(const zd_sessions *s, const zd_session *sess)
{
    return sess->created_unix_ms + (int64_t)s->max_s * 1000;
}

int zd_sessions_idle_s(const zd_sessions *s)
{
    return s->idle_s;
}

const char *zd_cookie_value(const char *header, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    const char *p = header;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        if (plen > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            const char *v = p + nlen + 1;
            size_t vlen = plen - nlen - 1;
            while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
                vlen--;
            *len = vlen;
            return v;
        }
        p = end;
    }
    return NULL;
}
