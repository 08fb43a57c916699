/* zhidad's configuration: a JSON file (comments allowed) read once at start-up into a plain,
 * read-only struct. Every option and its default is documented in docs/CONFIG.md. */
#ifndef ZD_CONFIG_H
#define ZD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "profiles/profile.h" /* ZD_PARTITIONS_MAX */
#include "profiles/schema.h"
#include "redis/redis.h"
/* Longest API key accepted; lookups take the same time for every key up to this length. */
#define ZD_APIKEY_MAX 256

enum zd_role { ZD_ROLE_VIEWER = 1, ZD_ROLE_APP = 2, ZD_ROLE_PUBLISHER = 4, ZD_ROLE_ADMIN = 8 };
#define ZD_ROLES_ALL 15

typedef struct zd_apikey {
    char name[64]; /* unique, safe to log */
    enum zd_role role;
    char scope[16]; /* publisher only: region prefix at a whole level; "" for other roles */
    char *key;      /* the secret; never log it */
    size_t keylen;
} zd_apikey;

/* What zhidad does when the Redis it stores profiles in would lose them (AOF off, an evicting
 * maxmemory-policy), or cannot be asked: "redis_durability" in the config. */
enum zd_durability_mode {
    ZD_DURABILITY_REQUIRE, /* refuse to start; later: not ready (/readyz 503), error log */
    ZD_DURABILITY_WARN,    /* one warning per connection */
    ZD_DURABILITY_OFF,     /* not checked */
};

typedef struct zd_config {
    char listen[128];     /* "127.0.0.1:8700" */
    char redis[256];      /* "127.0.0.1:6379" or "unix:/path" */
    char *redis_password; /* NULL, config "redis_password" or env ZHIDA_REDIS_PASSWORD */
    int nkeys;
    zd_apikey *keys;
    char timezone[64];         /* "Asia/Shanghai" */
    zd_schema *schema;         /* from "schema" + gateway names (zd_schema_from_json) */
    cJSON *gateways;           /* the raw "gateways" object, kept for the delivery issue */
    char plugin_dir[512];      /* "plugin_dir": gateway plugins (.so) loaded at start; "" none */
    int partitions;            /* "partitions", default 16, 1..ZD_PARTITIONS_MAX */
    long change_stream_maxlen; /* per partition, default 10000 */
    int key_audit_interval_s;  /* how often API key use is summed into the audit stream: 60 */
    int erase_grace_s; /* an erased profile's change-stream entries are removed after this: 10 */
    bool metrics_key_names; /* /metrics labels API key counters with key names: false */
    enum zd_durability_mode redis_durability; /* "require" */
    /* "limits": {...} */
    size_t body_max;        /* 1 MiB */
    size_t import_body_max; /* 64 MiB: routes registered with ZD_ROUTE_LARGE_BODY only */
    size_t header_max;      /* 16 KiB */
    int json_depth_max;     /* 32 */
    int http_timeout_s;     /* 30: silence on a connection */
    int request_timeout_s;  /* 60: first byte of a request to the end of its body */
    int max_connections;    /* 1024 */
    /* bounds of the work of one rule request */
    int rule_max_cost;        /* 1000: a compiled rule's cost after segment expansion */
    int breakdown_max_groups; /* 100: groups per preview breakdown dimension */
    /* "delivery": {...} */
    int dry_run_read_max; /* 200000: a dry run reads at most this many recipients' contacts */
    /* "console": {...}, the browser console's sign-in sessions (zhidad/session.h) */
    int session_idle_s; /* 1800: a session unused this long ends */
    int session_max_s;  /* 28800: a session ends this long after sign-in, used or not */
    int max_sessions;   /* 1000 per instance: a sign-in beyond ends the least recently used */
    bool cookie_secure; /* false: mark the cookie Secure (when a TLS proxy fronts zhidad) */
    /* "redis_client": {...} */
    int redis_deadline_ms;           /* 5000: per command */
    int redis_max_inflight;          /* 1024 */
    size_t redis_max_inflight_bytes; /* 4 MiB */
    int redis_queue_max;             /* 100000 commands waiting while over inflight/disconnected */
    int redis_reconnect_min_ms, redis_reconnect_max_ms; /* 100, 5000 */

    /* "delivery": {...} (docs/CONFIG.md) */
    char delivery_consumer[128]; /* "" = "<hostname>-<listen port>", filled at service start */
    int delivery_chunk;          /* 500 profiles per fan-out chunk */
    int delivery_claim_idle_ms;  /* 60000: above every gateway's timeout */
    int delivery_inflight;       /* 32 work entries in progress per instance */
    int delivery_lease_ms;       /* 5000: the scheduler lease */
    int delivery_poll_ms;        /* 100: the sweep interval */
    bool delivery_enabled;       /* true; false = an API-only instance */
    int delivery_cap_count;      /* 0 = no frequency cap; else notices per profile ... */
    int delivery_cap_days;       /* ... in a sliding window of this many days (7) */
    char log_level[16];          /* "info" */
    char log_format[16]; /* "auto": journal priorities under systemd, else text; or "json" */
} zd_config;

/* Loads the config file at path: JSON with // and block comments. Unknown keys (at every level
 * parsed here) and bad values are errors naming the key path, e.g.
 * `config: unknown key "limits.bodymax" (did you mean "body_max"?)`,
 * `config: "partitions" must be an integer 1..64`. The environment variable
 * ZHIDA_REDIS_PASSWORD, when set and not empty, overrides "redis_password".
 * Returns 0 and *out (caller frees with zd_config_free()), or a negative code with a message
 * in err (capacity errlen; never holds a key or password). */
int zd_config_load(const char *path, zd_config **out, char *err, size_t errlen);

/* The same for a config text of len bytes (need not be NUL-terminated). */
int zd_config_from_text(const char *text, size_t len, zd_config **out, char *err, size_t errlen);

/* zd_config_free(NULL) is a no-op. Wipes the secrets before freeing them. */
void zd_config_free(zd_config *c);

/* Finds the key whose secret equals token[0..len). Every configured key is compared over the
 * same number of bytes whatever the token, so the time taken does not tell how much of a key
 * matched. Returns the key (borrowed from c) or NULL. */
const zd_apikey *zd_config_find_key(const zd_config *c, const char *token, size_t len);
/* The same over keys[0..n) (borrowed; a key without a secret never matches). */
const zd_apikey *zd_apikey_find(const zd_apikey *keys, int n, const char *token, size_t len);
/* Whether a and b have the same secret, compared in constant time like the lookup. */
bool zd_apikey_same_secret(const zd_apikey *a, const zd_apikey *b);

/* The checks the loader applies to "listen" and "redis", for command-line overrides.
 * 0, or -EINVAL with a message in err. */
int zd_config_check_listen(const char *addr, char *err, size_t errlen);
int zd_config_check_redis_addr(const char *addr, char *err, size_t errlen);

/* The Redis client options the config gives (address, password, deadlines, queue sizes);
 * strings are borrowed from c. */
zd_redis_opts zd_config_redis_opts(const zd_config *c, const char *name);

/* "admin", "publisher", "app", "viewer". */
const char *zd_role_name(enum zd_role role);

#endif
