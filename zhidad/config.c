/* Reads and validates zhidad's JSON config. Anything not understood is an error that names the
 * key path, so a typo never silently falls back to a default. */
#include "zhidad/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>

#include "common/addr.h"
#include "common/log.h"
#include "common/text.h"
#include "gateway/gateway.h"
#include "gateway/plugin.h"
#include "profiles/json.h"

#define CONFIG_FILE_MAX (16 * 1024 * 1024)
#define PASSWORD_MAX 512
#define APIKEY_MIN 24

static int seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        int n = snprintf(err, errlen, "config: ");
        if (n > 0 && (size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -EINVAL;
}

const char *zd_role_name(enum zd_role role)
{
    switch (role) {
    case ZD_ROLE_VIEWER:
        return "viewer";
    case ZD_ROLE_APP:
        return "app";
    case ZD_ROLE_PUBLISHER:
        return "publisher";
    case ZD_ROLE_ADMIN:
        return "admin";
    }
    return "?";
}

zd_redis_opts zd_config_redis_opts(const zd_config *c, const char *name)
{
    zd_redis_opts o = {
        .addr = c->redis,
        .password = c->redis_password,
        .name = name,
        .deadline_ms = c->redis_deadline_ms,
        .max_inflight = c->redis_max_inflight,
        .max_inflight_bytes = c->redis_max_inflight_bytes,
        .queue_max = c->redis_queue_max,
        .reconnect_min_ms = c->redis_reconnect_min_ms,
        .reconnect_max_ms = c->redis_reconnect_max_ms,
    };
    return o;
}

/* ---- comments ----------------------------------------------------------------------------- */

/* Blanks out // and block comments in place (newlines kept), so that byte offsets, lines and
 * columns of a later JSON syntax error still point into the file as written. cJSON_Minify would
 * also strip them, but it joins tokens ("1 6" becomes 16) and loses positions. */
static int strip_comments(char *s, size_t len, char *err, size_t errlen)
{
    size_t i = 0;
    int line = 1;
    while (i < len) {
        char c = s[i];
        if (c == '\n') {
            line++;
            i++;
        } else if (c == '"') {
            for (i++; i < len && s[i] != '"'; i++) {
                if (s[i] == '\\' && i + 1 < len)
                    i++;
                else if (s[i] == '\n')
                    break; /* an unterminated string is cJSON's error to report */
            }
            if (i < len && s[i] == '"')
                i++;
        } else if (c == '/' && i + 1 < len && s[i + 1] == '/') {
            while (i < len && s[i] != '\n')
                s[i++] = ' ';
        } else if (c == '/' && i + 1 < len && s[i + 1] == '*') {
            int start_line = line;
            s[i++] = ' ';
            s[i++] = ' ';
            while (i < len && !(s[i] == '*' && i + 1 < len && s[i + 1] == '/')) {
                if (s[i] == '\n')
                    line++;
                else
                    s[i] = ' ';
                i++;
            }
            if (i >= len)
                return seterr(err, errlen, "line %d: comment \"/*\" is never closed", start_line);
            s[i++] = ' ';
            s[i++] = ' ';
        } else {
            i++;
        }
    }
    return 0;
}

static void position_of(const char *s, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (s[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* ---- generic checks ----------------------------------------------------------------------- */

static void join_path(char *out, size_t cap, const char *path, const char *key)
{
    if (path[0])
        snprintf(out, cap, "%s.%s", path, key);
    else
        snprintf(out, cap, "%s", key);
}

/* Every member of obj must be named in allowed (NULL-terminated), and appear once. */
static int check_keys(const cJSON *obj, const char *path, const char *const *allowed, char *err,
                      size_t errlen)
{
    char full[256];
    const cJSON *m;
    cJSON_ArrayForEach(m, obj)
    {
        const char *k = m->string ? m->string : "";
        for (const cJSON *p = obj->child; p != m; p = p->next) {
            if (strcmp(p->string, k) == 0) {
                join_path(full, sizeof(full), path, k);
                return seterr(err, errlen, "duplicate key \"%.200s\"", full);
            }
        }
        const char *best = NULL;
        int bestd = 3;
        bool known = false;
        for (int i = 0; allowed[i]; i++) {
            if (strcmp(allowed[i], k) == 0) {
                known = true;
                break;
            }
            int d = zd_edit_distance(allowed[i], k, 2);
            if (d < bestd) {
                bestd = d;
                best = allowed[i];
            }
        }
        if (known)
            continue;
        join_path(full, sizeof(full), path, k);
        if (best)
            return seterr(err, errlen, "unknown key \"%.200s\" (did you mean \"%s\"?)", full, best);
        return seterr(err, errlen, "unknown key \"%.200s\"", full);
    }
    return 0;
}

/* Reads integer member `name` of obj into *out when present; lo..hi inclusive. */
static int get_int(const cJSON *obj, const char *path, const char *name, long long lo, long long hi,
                   long long *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v)
        return 0;
    char full[256];
    join_path(full, sizeof(full), path, name);
    double d = cJSON_IsNumber(v) ? v->valuedouble : 0;
    /* The range check comes first: converting an out-of-range double to an integer is UB. */
    if (!cJSON_IsNumber(v) || !(d >= (double)lo && d <= (double)hi) || d != (double)(long long)d)
        return seterr(err, errlen, "\"%s\" must be an integer %lld..%lld", full, lo, hi);
    *out = (long long)d;
    return 0;
}

static int get_int_field(const cJSON *obj, const char *path, const char *name, long long lo,
                         long long hi, int *out, char *err, size_t errlen)
{
    long long v = *out;
    int rc = get_int(obj, path, name, lo, hi, &v, err, errlen);
    *out = (int)v;
    return rc;
}

static int get_size_field(const cJSON *obj, const char *path, const char *name, long long lo,
                          long long hi, size_t *out, char *err, size_t errlen)
{
    long long v = (long long)*out;
    int rc = get_int(obj, path, name, lo, hi, &v, err, errlen);
    *out = (size_t)v;
    return rc;
}

/* Reads boolean member `name` of obj into *out when present. */
static int get_bool(const cJSON *obj, const char *path, const char *name, bool *out, char *err,
                    size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v)
        return 0;
    if (!cJSON_IsBool(v)) {
        char full[256];
        join_path(full, sizeof(full), path, name);
        return seterr(err, errlen, "\"%s\" must be true or false", full);
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

/* Reads string member `name` into dst (capacity cap) when present. */
static int get_str(const cJSON *obj, const char *path, const char *name, char *dst, size_t cap,
                   char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v)
        return 0;
    char full[256];
    join_path(full, sizeof(full), path, name);
    if (!cJSON_IsString(v))
        return seterr(err, errlen, "\"%s\" must be a string", full);
    size_t n = strlen(v->valuestring);
    if (n == 0 || n >= cap)
        return seterr(err, errlen, "\"%s\" must be 1..%zu characters", full, cap - 1);
    memcpy(dst, v->valuestring, n + 1);
    return 0;
}

/* ---- addresses ---------------------------------------------------------------------------- */

static int check_listen(const char *s, char *err, size_t errlen)
{
    char host[64];
    int port;
    if (zd_addr_split(s, host, sizeof(host), &port) != 0)
        return seterr(err, errlen,
                      "\"listen\" must be IP:PORT, e.g. \"127.0.0.1:8700\" or \"[::1]:8700\"");
    return 0;
}

static int check_redis_addr(const char *addr, const char *what, char *err, size_t errlen)
{
    char msg[256];
    if (zd_addr_check_redis(addr, what, msg, sizeof(msg)) != 0)
        return seterr(err, errlen, "%s", msg);
    return 0;
}

int zd_config_check_redis_addr(const char *addr, char *err, size_t errlen)
{
    return check_redis_addr(addr, "redis", err, errlen);
}

int zd_config_check_listen(const char *addr, char *err, size_t errlen)
{
    return check_listen(addr, err, errlen);
}

static int check_timezone(const char *tz, char *err, size_t errlen)
{
    for (const char *p = tz; *p; p++) {
        if (!isalnum((unsigned char)*p) && !strchr("_+-/", *p))
            return seterr(err, errlen,
                          "\"timezone\" must be an IANA zone name like "
                          "\"Asia/Shanghai\"");
    }
    if (tz[0] == '/' || strstr(tz, ".."))
        return seterr(err, errlen, "\"timezone\" must be an IANA zone name like \"Asia/Shanghai\"");
    /* Only when the zone database is installed can we tell a typo from a real zone. */
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir)
        dir = "/usr/share/zoneinfo";
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, tz);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return seterr(err, errlen, "\"timezone\": unknown time zone \"%s\"", tz);
    return 0;
}

/* ---- sections ----------------------------------------------------------------------------- */

static int parse_limits(zd_config *c, const cJSON *o, char *err, size_t errlen)
{
    static const char *const keys[] = {"body_max",
                                       "import_body_max",
                                       "header_max",
                                       "json_depth_max",
                                       "http_timeout_s",
                                       "request_timeout_s",
                                       "max_connections",
                                       "rule_max_cost",
                                       "breakdown_max_groups",
                                       NULL};
    if (!cJSON_IsObject(o))
        return seterr(err, errlen, "\"limits\" must be an object");
    if (check_keys(o, "limits", keys, err, errlen) ||
        get_size_field(o, "limits", "body_max", 1024, 1LL << 30, &c->body_max, err, errlen) ||
        get_size_field(o, "limits", "import_body_max", 1024, 1LL << 34, &c->import_body_max, err,
                       errlen) ||
        get_size_field(o, "limits", "header_max", 1024, 1 << 20, &c->header_max, err, errlen) ||
        get_int_field(o, "limits", "json_depth_max", 2, 1000, &c->json_depth_max, err, errlen) ||
        get_int_field(o, "limits", "http_timeout_s", 1, 3600, &c->http_timeout_s, err, errlen) ||
        get_int_field(o, "limits", "request_timeout_s", 1, 3600, &c->request_timeout_s, err,
                      errlen) ||
        get_int_field(o, "limits", "max_connections", 1, 1000000, &c->max_connections, err,
                      errlen) ||
        get_int_field(o, "limits", "rule_max_cost", 1, 100000000, &c->rule_max_cost, err, errlen) ||
        get_int_field(o, "limits", "breakdown_max_groups", 1, 10000, &c->breakdown_max_groups, err,
                      errlen))
        return -EINVAL;
    return 0;
}

/* "console": the browser console's sign-in sessions (zhidad/session.h). */
static int parse_console(zd_config *c, const cJSON *o, char *err, size_t errlen)
{
    static const char *const keys[] = {"session_idle_s", "session_max_s", "max_sessions",
                                       "cookie_secure", NULL};
    const char *p = "console";
    if (!cJSON_IsObject(o))
        return seterr(err, errlen, "\"console\" must be an object");
    if (check_keys(o, p, keys, err, errlen) ||
        get_int_field(o, p, "session_idle_s", 10, 86400, &c->session_idle_s, err, errlen) ||
        get_int_field(o, p, "session_max_s", 10, 7 * 86400, &c->session_max_s, err, errlen) ||
        get_int_field(o, p, "max_sessions", 1, 1000000, &c->max_sessions, err, errlen) ||
        get_bool(o, p, "cookie_secure", &c->cookie_secure, err, errlen))
        return -EINVAL;
    if (c->session_max_s < c->session_idle_s)
        return seterr(err, errlen,
                      "\"console.session_max_s\" must be at least \"console.session_idle_s\"");
    return 0;
}

static int parse_redis_client(zd_config *c, const cJSON *o, char *err, size_t errlen)
{
    static const char *const keys[] = {"deadline_ms", "max_inflight",     "max_inflight_bytes",
                                       "queue_max",   "reconnect_min_ms", "reconnect_max_ms",
                                       NULL};
    const char *p = "redis_client";
    if (!cJSON_IsObject(o))
        return seterr(err, errlen, "\"redis_client\" must be an object");
    if (check_keys(o, p, keys, err, errlen) ||
        get_int_field(o, p, "deadline_ms", 10, 3600000, &c->redis_deadline_ms, err, errlen) ||
        get_int_field(o, p, "max_inflight", 1, 1000000, &c->redis_max_inflight, err, errlen) ||
        get_size_field(o, p, "max_inflight_bytes", 1024, 1LL << 30, &c->redis_max_inflight_bytes,
                       err, errlen) ||
        get_int_field(o, p, "queue_max", 0, 100000000, &c->redis_queue_max, err, errlen) ||
        get_int_field(o, p, "reconnect_min_ms", 10, 600000, &c->redis_reconnect_min_ms, err,
                      errlen) ||
        get_int_field(o, p, "reconnect_max_ms", 10, 600000, &c->redis_reconnect_max_ms, err,
                      errlen))
        return -EINVAL;
    return 0;
}

static int parse_delivery(zd_config *c, const cJSON *o, char *err, size_t errlen)
{
    static const char *const keys[] = {"consumer", "chunk",   "claim_idle_ms",    "inflight",
                                       "lease_ms", "poll_ms", "dry_run_read_max", "enabled",
                                       "cap",      NULL};
    const char *p = "delivery";
    if (!cJSON_IsObject(o))
        return seterr(err, errlen, "\"delivery\" must be an object");
    if (check_keys(o, p, keys, err, errlen) ||
        get_str(o, p, "consumer", c->delivery_consumer, sizeof(c->delivery_consumer), err,
                errlen) ||
        get_int_field(o, p, "chunk", 1, 10000, &c->delivery_chunk, err, errlen) ||
        get_int_field(o, p, "claim_idle_ms", 1000, 86400000, &c->delivery_claim_idle_ms, err,
                      errlen) ||
        get_int_field(o, p, "inflight", 1, 10000, &c->delivery_inflight, err, errlen) ||
        get_int_field(o, p, "lease_ms", 300, 600000, &c->delivery_lease_ms, err, errlen) ||
        get_int_field(o, p, "poll_ms", 10, 60000, &c->delivery_poll_ms, err, errlen) ||
        get_bool(o, p, "enabled", &c->delivery_enabled, err, errlen) ||
        get_int_field(o, p, "dry_run_read_max", 1, 10000000, &c->dry_run_read_max, err, errlen))
        return -EINVAL;
    const cJSON *cap = cJSON_GetObjectItemCaseSensitive(o, "cap");
    if (cap) {
        static const char *const cap_keys[] = {"count", "days", NULL};
        if (!cJSON_IsObject(cap))
            return seterr(err, errlen,
                          "\"delivery.cap\" must be an object like {\"count\": 3, \"days\": 7}");
        if (check_keys(cap, "delivery.cap", cap_keys, err, errlen) ||
            get_int_field(cap, "delivery.cap", "count", 0, 1000, &c->delivery_cap_count, err,
                          errlen) ||
            get_int_field(cap, "delivery.cap", "days", 1, 365, &c->delivery_cap_days, err, errlen))
            return -EINVAL;
    }
    for (const char *s = c->delivery_consumer; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.' && *s != ':')
            return seterr(err, errlen,
                          "\"delivery.consumer\" must be characters of A-Z a-z 0-9 - _ . :");
    return 0;
}

/* An entry in progress is heartbeated, but one whose instance died is reclaimed after
 * claim_idle_ms: that must exceed the longest a gateway may take over one batch, or a slow
 * answer would be sent again by another instance while the first still waits for it. */
static int check_claim_idle(const zd_config *c, char *err, size_t errlen)
{
    const cJSON *g;
    cJSON_ArrayForEach(g, c->gateways)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(g, "timeout_ms");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(g, "type");
        double ms = cJSON_IsNumber(t) ? t->valuedouble
                    : cJSON_IsString(type) && strcmp(type->valuestring, "inbox") != 0 ? 10000
                                                                                      : 0;
        if ((double)c->delivery_claim_idle_ms <= ms)
            return seterr(err, errlen,
                          "\"delivery.claim_idle_ms\" (%d) must exceed the timeout of gateway "
                          "\"%s\" (%.0f ms)",
                          c->delivery_claim_idle_ms, g->string, ms);
    }
    return 0;
}

static bool gateway_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++) {
        /* No ':' — the name is the last part of a notice id "policy:profile:gateway". */
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
            return false;
    }
    return true;
}

/* Validates "gateways": names and types here, each type's options by the gateway host. */
static int check_gateways(const cJSON *g, char *err, size_t errlen)
{
    if (!cJSON_IsObject(g))
        return seterr(err, errlen, "\"gateways\" must be an object of name: {\"type\": ...}");
    const cJSON *m;
    cJSON_ArrayForEach(m, g)
    {
        for (const cJSON *p = g->child; p != m; p = p->next) {
            if (strcmp(p->string, m->string) == 0)
                return seterr(err, errlen, "duplicate key \"gateways.%.64s\"", m->string);
        }
        if (!gateway_name_ok(m->string))
            return seterr(err, errlen,
                          "gateway name \"%.64s\" must be 1..32 characters of A-Z a-z 0-9 _ -",
                          m->string);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(m, "type");
        if (!cJSON_IsObject(m))
            return seterr(err, errlen, "\"gateways.%s\" must be an object with a \"type\"",
                          m->string);
        if (!cJSON_IsString(t) || !t->valuestring[0])
            return seterr(err, errlen, "\"gateways.%s.type\" must be a non-empty string",
                          m->string);
        /* Each type checks its own options, so a bad URL or secret stops zhidad here. */
        char gwerr[400];
        if (zd_gateway_check(m->string, m, gwerr, sizeof(gwerr)) != 0)
            return seterr(err, errlen, "%s", gwerr);
    }
    return 0;
}

static bool key_chars_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    }
    return true;
}

static bool key_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof(((zd_apikey *)0)->name))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)s[i]) && !strchr("_.:-", s[i]))
            return false;
    }
    return true;
}

static bool scope_ok(const zd_schema *s, const char *scope)
{
    const zd_attr *region = zd_schema_find(s, "region");
    size_t n = strlen(scope);
    if (!region)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)scope[i]))
            return false;
    }
    return n <= 64 && zd_attr_has_level(region, (int)n);
}

static int parse_key(zd_config *c, const cJSON *o, int idx, char *err, size_t errlen)
{
    static const char *const keys[] = {"name", "role", "key", "scope", NULL};
    char path[32];
    snprintf(path, sizeof(path), "api_keys[%d]", idx);
    if (!cJSON_IsObject(o))
        return seterr(err, errlen, "\"%s\" must be an object {\"name\", \"role\", \"key\"}", path);
    if (check_keys(o, path, keys, err, errlen))
        return -EINVAL;
    zd_apikey *k = &c->keys[idx];

    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    if (!cJSON_IsString(name) || !key_name_ok(name->valuestring))
        return seterr(err, errlen, "\"%s.name\" must be 1..63 characters of A-Z a-z 0-9 _ . : -",
                      path);
    snprintf(k->name, sizeof(k->name), "%s", name->valuestring);
    for (int i = 0; i < idx; i++) {
        if (strcmp(c->keys[i].name, k->name) == 0)
            return seterr(err, errlen, "\"%s.name\": \"%s\" is used by api_keys[%d] too", path,
                          k->name, i);
    }

    const cJSON *role = cJSON_GetObjectItemCaseSensitive(o, "role");
    static const enum zd_role roles[] = {ZD_ROLE_ADMIN, ZD_ROLE_PUBLISHER, ZD_ROLE_APP,
                                         ZD_ROLE_VIEWER};
    k->role = 0;
    for (int i = 0; i < 4 && cJSON_IsString(role); i++) {
        if (strcmp(role->valuestring, zd_role_name(roles[i])) == 0)
            k->role = roles[i];
    }
    if (!k->role)
        return seterr(err, errlen, "\"%s.role\" must be one of admin, publisher, app, viewer",
                      path);

    /* Messages about the secret never quote it. */
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(o, "key");
    if (!cJSON_IsString(key))
        return seterr(err, errlen, "\"%s.key\" (key \"%s\") must be a string", path, k->name);
    size_t kl = strlen(key->valuestring);
    if (kl < APIKEY_MIN || kl > ZD_APIKEY_MAX || !key_chars_ok(key->valuestring, kl))
        return seterr(err, errlen,
                      "\"%s.key\" (key \"%s\") must be %d..%d printable ASCII characters "
                      "without spaces",
                      path, k->name, APIKEY_MIN, ZD_APIKEY_MAX);
    /* The example config's placeholders would otherwise be live keys anyone can read. */
    if (strcasestr(key->valuestring, "change-me"))
        return seterr(err, errlen,
                      "\"%s.key\" (key \"%s\") is the example's placeholder: replace it with a "
                      "fresh secret (e.g. `openssl rand -hex 24`)",
                      path, k->name);
    for (int i = 0; i < idx; i++) {
        if (c->keys[i].keylen == kl && memcmp(c->keys[i].key, key->valuestring, kl) == 0)
            return seterr(err, errlen, "\"%s.key\" (key \"%s\") is the same secret as key \"%s\"",
                          path, k->name, c->keys[i].name);
    }
    k->key = malloc(kl + 1);
    if (!k->key)
        return seterr(err, errlen, "out of memory");
    memcpy(k->key, key->valuestring, kl + 1);
    k->keylen = kl;

    const cJSON *scope = cJSON_GetObjectItemCaseSensitive(o, "scope");
    if (k->role != ZD_ROLE_PUBLISHER) {
        if (scope)
            return seterr(err, errlen, "\"%s.scope\" is only allowed for a publisher key", path);
        return 0;
    }
    /* A publisher without a scope would reach every region: make that explicit ("33"). */
    if (!scope)
        return seterr(err, errlen,
                      "\"%s.scope\" is required for a publisher key: a region code prefix such "
                      "as \"3301\"",
                      path);
    if (!cJSON_IsString(scope) || strlen(scope->valuestring) >= sizeof(k->scope) ||
        !scope_ok(c->schema, scope->valuestring))
        return seterr(err, errlen,
                      "\"%s.scope\" must be a region code at a whole level (digits, e.g. \"33\", "
                      "\"3301\", \"330106\")",
                      path);
    snprintf(k->scope, sizeof(k->scope), "%s", scope->valuestring);
    return 0;
}

static int parse_keys(zd_config *c, const cJSON *arr, char *err, size_t errlen)
{
    if (!cJSON_IsArray(arr))
        return seterr(err, errlen,
                      "\"api_keys\" must be an array of {\"name\", \"role\", \"key\"}");
    int n = cJSON_GetArraySize(arr);
    if (n > 10000)
        return seterr(err, errlen, "\"api_keys\" has more than 10000 keys");
    if (n == 0)
        return 0;
    c->keys = calloc((size_t)n, sizeof(zd_apikey));
    if (!c->keys)
        return seterr(err, errlen, "out of memory");
    int i = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, arr)
    {
        c->nkeys = i + 1; /* so that zd_config_free frees what was set so far */
        if (parse_key(c, o, i, err, errlen))
            return -EINVAL;
        i++;
    }
    return 0;
}

static void set_defaults(zd_config *c)
{
    snprintf(c->listen, sizeof(c->listen), "127.0.0.1:8700");
    snprintf(c->redis, sizeof(c->redis), "127.0.0.1:6379");
    snprintf(c->timezone, sizeof(c->timezone), "Asia/Shanghai");
    snprintf(c->log_level, sizeof(c->log_level), "info");
    snprintf(c->log_format, sizeof(c->log_format), "auto");
    c->partitions = 16;
    c->change_stream_maxlen = 10000;
    c->body_max = 1 << 20;
    c->import_body_max = 64 << 20;
    c->header_max = 16 << 10;
    c->json_depth_max = ZD_JSON_DEPTH_DEFAULT;
    c->http_timeout_s = 30;
    c->request_timeout_s = 60;
    c->max_connections = 1024;
    c->rule_max_cost = 1000;
    c->breakdown_max_groups = 100;
    c->dry_run_read_max = 200000;
    c->redis_deadline_ms = 5000;
    c->redis_max_inflight = 1024;
    c->redis_max_inflight_bytes = 4 << 20;
    c->redis_queue_max = 100000;
    c->redis_reconnect_min_ms = 100;
    c->redis_reconnect_max_ms = 5000;
    c->key_audit_interval_s = 60;
    c->erase_grace_s = 10;
    c->delivery_chunk = 500;
    c->delivery_claim_idle_ms = 60000;
    c->delivery_inflight = 32;
    c->delivery_cap_days = 7;
    c->delivery_lease_ms = 5000;
    c->delivery_poll_ms = 100;
    c->delivery_enabled = true;
    c->session_idle_s = 30 * 60;
    c->session_max_s = 8 * 3600;
    c->max_sessions = 1000;
}

static int parse_root(zd_config *c, cJSON *root, char *err, size_t errlen)
{
    static const char *const keys[] = {"listen",
                                       "redis",
                                       "redis_password",
                                       "api_keys",
                                       "timezone",
                                       "schema",
                                       "gateways",
                                       "plugin_dir",
                                       "partitions",
                                       "change_stream_maxlen",
                                       "limits",
                                       "redis_client",
                                       "delivery",
                                       "log_level",
                                       "log_format",
                                       "key_audit_interval_s",
                                       "erase_grace_s",
                                       "metrics_key_names",
                                       "redis_durability",
                                       "console",
                                       NULL};
    if (!cJSON_IsObject(root))
        return seterr(err, errlen, "the top level must be a JSON object");
    if (check_keys(root, "", keys, err, errlen))
        return -EINVAL;

    if (get_str(root, "", "listen", c->listen, sizeof(c->listen), err, errlen) ||
        check_listen(c->listen, err, errlen))
        return -EINVAL;
    if (get_str(root, "", "redis", c->redis, sizeof(c->redis), err, errlen) ||
        check_redis_addr(c->redis, "redis", err, errlen))
        return -EINVAL;

    const cJSON *pw = cJSON_GetObjectItemCaseSensitive(root, "redis_password");
    if (pw && !cJSON_IsNull(pw)) {
        if (!cJSON_IsString(pw) || !pw->valuestring[0] || strlen(pw->valuestring) > PASSWORD_MAX)
            return seterr(err, errlen,
                          "\"redis_password\" must be null or a string of 1..%d "
                          "characters",
                          PASSWORD_MAX);
        c->redis_password = strdup(pw->valuestring);
        if (!c->redis_password)
            return seterr(err, errlen, "out of memory");
    }

    if (get_str(root, "", "timezone", c->timezone, sizeof(c->timezone), err, errlen) ||
        check_timezone(c->timezone, err, errlen))
        return -EINVAL;

    long long maxlen = c->change_stream_maxlen;
    if (get_int_field(root, "", "partitions", 1, ZD_PARTITIONS_MAX, &c->partitions, err, errlen) ||
        get_int(root, "", "change_stream_maxlen", 1000, 1000000000, &maxlen, err, errlen))
        return -EINVAL;
    c->change_stream_maxlen = (long)maxlen;
    if (get_int_field(root, "", "key_audit_interval_s", 1, 86400, &c->key_audit_interval_s, err,
                      errlen) ||
        get_int_field(root, "", "erase_grace_s", 1, 50, &c->erase_grace_s, err, errlen) ||
        get_bool(root, "", "metrics_key_names", &c->metrics_key_names, err, errlen))
        return -EINVAL;
    char durability[16] = "require";
    if (get_str(root, "", "redis_durability", durability, sizeof(durability), err, errlen))
        return -EINVAL;
    if (strcmp(durability, "require") == 0)
        c->redis_durability = ZD_DURABILITY_REQUIRE;
    else if (strcmp(durability, "warn") == 0)
        c->redis_durability = ZD_DURABILITY_WARN;
    else if (strcmp(durability, "off") == 0)
        c->redis_durability = ZD_DURABILITY_OFF;
    else
        return seterr(err, errlen, "\"redis_durability\" must be one of require, warn, off");

    const cJSON *o;
    if ((o = cJSON_GetObjectItemCaseSensitive(root, "limits")) && parse_limits(c, o, err, errlen))
        return -EINVAL;
    if (c->import_body_max < c->body_max)
        return seterr(err, errlen,
                      "\"limits.import_body_max\" must be at least "
                      "\"limits.body_max\"");
    if ((o = cJSON_GetObjectItemCaseSensitive(root, "delivery")) &&
        parse_delivery(c, o, err, errlen))
        return -EINVAL;
    if ((o = cJSON_GetObjectItemCaseSensitive(root, "console")) && parse_console(c, o, err, errlen))
        return -EINVAL;
    if ((o = cJSON_GetObjectItemCaseSensitive(root, "redis_client")) &&
        parse_redis_client(c, o, err, errlen))
        return -EINVAL;
    if (c->redis_reconnect_max_ms < c->redis_reconnect_min_ms)
        return seterr(err, errlen,
                      "\"redis_client.reconnect_max_ms\" must be at least "
                      "\"redis_client.reconnect_min_ms\"");

    enum zd_log_level lvl;
    if (get_str(root, "", "log_level", c->log_level, sizeof(c->log_level), err, errlen))
        return -EINVAL;
    if (zd_log_level_parse(c->log_level, &lvl) != 0)
        return seterr(err, errlen, "\"log_level\" must be one of debug, info, warn, error");
    enum zd_log_format fmt;
    if (get_str(root, "", "log_format", c->log_format, sizeof(c->log_format), err, errlen))
        return -EINVAL;
    if (zd_log_format_parse(c->log_format, &fmt) != 0)
        return seterr(err, errlen, "\"log_format\" must be one of auto, text, journal, json");

    /* Plugins first: their types must be known before the gateways using them are checked.
     * Loading is idempotent per file, so a reload (SIGHUP) loads only files added since. */
    if (get_str(root, "", "plugin_dir", c->plugin_dir, sizeof(c->plugin_dir), err, errlen))
        return -EINVAL;
    if (c->plugin_dir[0]) {
        if (c->plugin_dir[0] != '/')
            return seterr(err, errlen, "\"plugin_dir\" must be an absolute path");
        char perr[512];
        if (zd_gateway_plugins_load(c->plugin_dir, perr, sizeof(perr)) != 0)
            return seterr(err, errlen, "\"plugin_dir\": %s", perr);
    }

    /* Without a "gateways" section the inbox, which needs no options, is the one channel. */
    cJSON *g = cJSON_DetachItemFromObjectCaseSensitive(root, "gateways");
    if (!g) {
        g = cJSON_CreateObject();
        cJSON *inbox = cJSON_AddObjectToObject(g, "inbox");
        if (!inbox || !cJSON_AddStringToObject(inbox, "type", "inbox")) {
            cJSON_Delete(g);
            return seterr(err, errlen, "out of memory");
        }
    }
    c->gateways = g;
    if (check_gateways(g, err, errlen))
        return -EINVAL;
    if (check_claim_idle(c, err, errlen))
        return -EINVAL;

    int ngw = cJSON_GetArraySize(g);
    const char **names = calloc((size_t)ngw + 1, sizeof(char *));
    if (!names)
        return seterr(err, errlen, "out of memory");
    int i = 0;
    cJSON_ArrayForEach(o, g) names[i++] = o->string;
    zd_error e = {{0}, {0}, {0}};
    c->schema = zd_schema_from_json(cJSON_GetObjectItemCaseSensitive(root, "schema"),
                                    (const char *const *)names, ngw, &e);
    free(names);
    if (!c->schema)
        return seterr(err, errlen, "%s", e.message[0] ? e.message : "schema: out of memory");

    const cJSON *keys_json = cJSON_GetObjectItemCaseSensitive(root, "api_keys");
    if (keys_json && parse_keys(c, keys_json, err, errlen))
        return -EINVAL;

    /* The environment wins so that the secret can stay out of the file. */
    const char *envpw = getenv("ZHIDA_REDIS_PASSWORD");
    if (envpw && envpw[0]) {
        if (strlen(envpw) > PASSWORD_MAX)
            return seterr(err, errlen, "ZHIDA_REDIS_PASSWORD is longer than %d characters",
                          PASSWORD_MAX);
        if (c->redis_password) {
            explicit_bzero(c->redis_password, strlen(c->redis_password));
            free(c->redis_password);
        }
        c->redis_password = strdup(envpw);
        if (!c->redis_password)
            return seterr(err, errlen, "out of memory");
    }
    return 0;
}

int zd_config_from_text(const char *text, size_t len, zd_config **out, char *err, size_t errlen)
{
    *out = NULL;
    char *buf = NULL;
    cJSON *root = NULL;
    zd_config *c = calloc(1, sizeof(*c));
    int rc = -ENOMEM;
    if (!c)
        goto fail_nomem;
    set_defaults(c);
    buf = malloc(len + 1);
    if (!buf)
        goto fail_nomem;
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (strlen(buf) != len) {
        rc = seterr(err, errlen, "byte %zu: NUL byte in the config", strlen(buf));
        goto fail;
    }
    if (!zd_utf8_valid(buf, len)) {
        rc = seterr(err, errlen, "the config is not valid UTF-8");
        goto fail;
    }
    if ((rc = strip_comments(buf, len, err, errlen)) != 0)
        goto fail;

    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    size_t off = end ? (size_t)(end - buf) : 0;
    if (root) {
        while (off < len && isspace((unsigned char)buf[off]))
            off++;
    }
    if (!root || off < len) {
        /* On failure cJSON points `end` at the byte where parsing stopped. */
        int line, col;
        position_of(buf, off > len ? len : off, &line, &col);
        rc = seterr(err, errlen, "line %d, column %d: %s", line, col,
                    root ? "unexpected text after the top-level object" : "JSON syntax error");
        goto fail;
    }
    if ((rc = parse_root(c, root, err, errlen)) != 0)
        goto fail;
    cJSON_Delete(root);
    free(buf);
    *out = c;
    return 0;
fail_nomem:
    seterr(err, errlen, "out of memory");
    rc = -ENOMEM;
fail:
    cJSON_Delete(root);
    free(buf);
    zd_config_free(c);
    return rc;
}

int zd_config_load(const char *path, zd_config **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        seterr(err, errlen, "cannot open %s: %s", path, strerror(e));
        return -e;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len == cap) {
            if (cap >= CONFIG_FILE_MAX) {
                rc = seterr(err, errlen, "%s is larger than %d bytes", path, CONFIG_FILE_MAX);
                goto fail;
            }
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb) {
                seterr(err, errlen, "out of memory");
                rc = -ENOMEM;
                goto fail;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                seterr(err, errlen, "cannot read %s", path);
                rc = -EIO;
                goto fail;
            }
            break;
        }
    }
    rc = zd_config_from_text(buf ? buf : "", len, out, err, errlen);
fail:
    /* The file may hold the Redis password and the API keys. */
    if (buf)
        explicit_bzero(buf, cap);
    free(buf);
    fclose(f);
    return rc;
}

void zd_config_free(zd_config *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->nkeys; i++) {
        if (c->keys[i].key) {
            explicit_bzero(c->keys[i].key, c->keys[i].keylen);
            free(c->keys[i].key);
        }
    }
    free(c->keys);
    if (c->redis_password) {
        explicit_bzero(c->redis_password, strlen(c->redis_password));
        free(c->redis_password);
    }
    zd_schema_free(c->schema);
    cJSON_Delete(c->gateways);
    free(c);
}

const zd_apikey *zd_apikey_find(const zd_apikey *keys, int n, const char *token, size_t len)
{
    /* A token longer than any key cannot match; its length is no secret. */
    if (!keys || !token || len == 0 || len > ZD_APIKEY_MAX)
        return NULL;
    const zd_apikey *found = NULL;
    for (int i = 0; i < n; i++) {
        const zd_apikey *k = &keys[i];
        /* Always ZD_APIKEY_MAX rounds, reading past neither string; only the lengths (known to
         * whoever sent the token) decide which bytes take part. */
        volatile unsigned diff = (unsigned)(k->keylen ^ len);
        for (size_t j = 0; j < ZD_APIKEY_MAX; j++) {
            unsigned char a = j < k->keylen ? (unsigned char)k->key[j] : 0;
            unsigned char b = j < len ? (unsigned char)token[j] : 0;
            diff |= (unsigned)(a ^ b);
        }
        if (diff == 0)
            found = k;
    }
    return found;
}

bool zd_apikey_same_secret(const zd_apikey *a, const zd_apikey *b)
{
    volatile unsigned diff = (unsigned)(a->keylen ^ b->keylen);
    for (size_t j = 0; j < ZD_APIKEY_MAX; j++) {
        unsigned char x = j < a->keylen ? (unsigned char)a->key[j] : 0;
        unsigned char y = j < b->keylen ? (unsigned char)b->key[j] : 0;
        diff |= (unsigned)(x ^ y);
    }
    return diff == 0;
}

const zd_apikey *zd_config_find_key(const zd_config *c, const char *token, size_t len)
{
    return c ? zd_apikey_find(c->keys, c->nkeys, token, len) : NULL;
}
