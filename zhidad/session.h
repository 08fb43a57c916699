/* Console sign-in sessions: an API key exchanged for a random session id (the cookie) and a
 * CSRF token, kept in this process's memory with an idle and an absolute lifetime. Plain C
 * (libc only), used by the HTTP server's authentication (http.c, http_conn.c). A session holds
 * the name of the key it was made from, never the secret: every request resolves the name in
 * the current key set, so a reload that removes or changes the key ends its sessions. */
#ifndef ZD_SESSION_H
#define ZD_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZD_SESSION_ID_LEN 64 /* hex digits of 32 random bytes */
#define ZD_SESSION_COOKIE "zd_session"

typedef struct zd_session {
    char id[ZD_SESSION_ID_LEN + 1];   /* the cookie's value; a secret, never logged */
    char csrf[ZD_SESSION_ID_LEN + 1]; /* required in X-CSRF-Token on writes */
    char key_name[64];                /* the key it stands for (zd_apikey.name) */
    int64_t created_ns, used_ns;      /* zd_mono_ns() readings */
    int64_t created_unix_ms;          /* for the answers' expires_at */
} zd_session;

typedef struct zd_sessions zd_sessions;

/* A table of at most max sessions that expire idle_s after their last use and max_s after
 * their creation. NULL on ENOMEM. Caller frees with zd_sessions_free(). */
zd_sessions *zd_sessions_new(int max, int idle_s, int max_s);
/* Wipes every id and token, then frees. NULL is a no-op. */
void zd_sessions_free(zd_sessions *s);

/* Makes a session for key_name (copied), with fresh random id and CSRF token from the
 * kernel's generator. When the table is full the least recently used session is ended.
 * Returns the session (borrowed from s; valid until the next call that changes s), or NULL
 * with errno-style *err (-EIO: no random bytes). */
const zd_session *zd_sessions_create(zd_sessions *s, const char *key_name, int64_t now_ns,
                                     int64_t now_unix_ms, int *err);

/* The live session whose id is id[0..len), compared in constant time against every entry; or
 * NULL (unknown, or expired: then it is ended). touch marks it used now (an authenticated
 * request), which moves its idle deadline. Borrowed, valid until the next change of s. */
const zd_session *zd_sessions_find(zd_sessions *s, const char *id, size_t len, int64_t now_ns,
                                   bool touch);

/* Ends the session with this id (exact, as from zd_sessions_find). True if it existed. */
bool zd_sessions_end(zd_sessions *s, const char *id);

/* Ends every session of key_name (the key was removed or changed). Returns how many. */
int zd_sessions_end_key(zd_sessions *s, const char *key_name);

/* Live sessions (expired ones are counted until a lookup or a create sweeps them). */
int zd_sessions_count(const zd_sessions *s);

/* When sess expires at the latest if it keeps being used (Unix ms), and its idle lifetime. */
int64_t zd_session_expires_unix_ms(const zd_sessions *s, const zd_session *sess);
int zd_sessions_idle_s(const zd_sessions *s);

/* Whether a and b (NUL-terminated, possibly NULL) are equal, in time that depends only on
 * their lengths. */
bool zd_session_token_eq(const char *a, const char *b);

/* The value of cookie `name` in a Cookie header ("a=1; zd_session=..."), or NULL; *len is its
 * length. Points into header. */
const char *zd_cookie_value(const char *header, const char *name, size_t *len);

#endif
