/* Console sessions (zhidad/session.c): ids and tokens, idle and absolute expiry, the least
 * recently used one ended when full, ending by key, and the Cookie header parser. */
#include <string.h>

#include "check.h"
#include "zhidad/session.h"

#define S 1000000000LL

static void test_create_find_expire(void)
{
    zd_sessions *s = zd_sessions_new(4, 60, 600);
    CHECK(s != NULL);
    int err;
    const zd_session *a = zd_sessions_create(s, "ops", 100 * S, 0, &err);
    CHECK(a && err == 0);
    char id[ZD_SESSION_ID_LEN + 1], csrf[ZD_SESSION_ID_LEN + 1];
    strcpy(id, a->id);
    strcpy(csrf, a->csrf);
    CHECK(strlen(id) == 64 && strspn(id, "0123456789abcdef") == 64);
    CHECK(strcmp(id, csrf) != 0);
    CHECK(zd_sessions_find(s, id, 64, 101 * S, true) != NULL);
    /* A wrong or short id finds nothing. */
    char bad[65];
    strcpy(bad, id);
    bad[63] = bad[63] == '0' ? '1' : '0';
    CHECK(zd_sessions_find(s, bad, 64, 101 * S, false) == NULL);
    CHECK(zd_sessions_find(s, id, 63, 101 * S, false) == NULL);
    /* Used at 101 s: alive at 160 s (59 s idle), gone at 161 s. */
    CHECK(zd_sessions_find(s, id, 64, 160 * S, false) != NULL);
    CHECK(zd_sessions_find(s, id, 64, 161 * S, false) == NULL);
    CHECK(zd_sessions_count(s) == 0);
    /* The absolute limit holds however often it is used. */
    const zd_session *b = zd_sessions_create(s, "ops", 0, 0, &err);
    strcpy(id, b->id);
    for (long long t = 50; t < 600; t += 50)
        CHECK(zd_sessions_find(s, id, 64, t * S, true) != NULL);
    CHECK(zd_sessions_find(s, id, 64, 600 * S, true) == NULL);
    zd_sessions_free(s);
}

static void test_full_table_and_end(void)
{
    zd_sessions *s = zd_sessions_new(2, 60, 600);
    int err;
    char ids[3][65];
    for (int i = 0; i < 3; i++) {
        const zd_session *x = zd_sessions_create(s, i == 2 ? "b" : "a", (i + 1) * S, 0, &err);
        strcpy(ids[i], x->id);
        if (i == 1) /* the first is used after the second: the second is the LRU */
            CHECK(zd_sessions_find(s, ids[0], 64, 2 * S + 1, true) != NULL);
    }
    CHECK(zd_sessions_count(s) == 2);
    CHECK(zd_sessions_find(s, ids[1], 64, 4 * S, false) == NULL);
    CHECK(zd_sessions_find(s, ids[0], 64, 4 * S, false) != NULL);
    CHECK(zd_sessions_end_key(s, "a") == 1);
    CHECK(zd_sessions_end(s, ids[2]) && !zd_sessions_end(s, ids[2]));
    CHECK(zd_sessions_count(s) == 0);
    zd_sessions_free(s);
}

static void test_cookie_and_tokens(void)
{
    size_t n;
    const char *v = zd_cookie_value("a=1; zd_session=abc ; b=2", "zd_session", &n);
    CHECK(v && n == 3 && memcmp(v, "abc", 3) == 0);
    v = zd_cookie_value("xzd_session=1;zd_session=2", "zd_session", &n);
    CHECK(v && n == 1 && *v == '2');
    CHECK(zd_cookie_value("zd_sessionx=1", "zd_session", &n) == NULL);
    CHECK(zd_cookie_value("", "zd_session", &n) == NULL);
    CHECK(zd_session_token_eq("abc", "abc") && !zd_session_token_eq("abc", "abd"));
    CHECK(!zd_session_token_eq("abc", "ab") && !zd_session_token_eq(NULL, "a"));
}

int main(void)
{
    test_create_find_expire();
    test_full_table_and_end();
    test_cookie_and_tokens();
    return check_report("session");
}
